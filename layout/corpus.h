/*
 * corpus.h — n-gram frequencies of a text corpus (DESIGN.md §8).
 *
 * Frequencies are percentages of ALL n-grams of their kind in the corpus
 * (Oxeylyzer's convention): characters that are not on a layout stay in the
 * denominator. Characters are identified by a dense id 0..nchars-1; ids are
 * assigned in descending order of character frequency. Shift is the
 * codepoint U+21D1 '⇑' (KF_CORPUS_SHIFT), as in Oxeylyzer's files.
 *
 * A corpus is immutable once loaded and may be shared read-only between
 * threads. Every loader returns a heap corpus that the caller frees with
 * kf_corpus_free().
 *
 * (Contract fixed by the lead engineer so that the corpus and engine code can
 * be written in parallel; extend it by adding fields at the end.)
 */
#ifndef KF_LAYOUT_CORPUS_H
#define KF_LAYOUT_CORPUS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/strbuf.h"

#define KF_CORPUS_SHIFT 0x21D1u

struct kf_ngram2 {
	uint32_t a, b; /* char ids */
	double freq;   /* percent */
};

struct kf_ngram3 {
	uint32_t a, b, c; /* char ids */
	double freq;      /* percent */
};

struct kf_corpus {
	char name[64];
	uint32_t nchars;
	uint32_t *codepoints; /* [nchars] Unicode scalar values; index = char id */
	double *chars;        /* [nchars] percent of char_total */
	uint64_t char_total, bigram_total, skipgram_total, trigram_total;
	struct kf_ngram2 *bigrams;   /* sorted by freq, descending */
	size_t nbigrams;
	struct kf_ngram2 *skipgrams; /* skip-1 grams, sorted by freq, descending */
	size_t nskipgrams;
	struct kf_ngram3 *trigrams;  /* sorted by freq, descending */
	size_t ntrigrams;

	/* --- added by the corpus code; all zero in a corpus filled by hand --- */
	void *storage;          /* not NULL: one malloc'd block that holds the
				 * arrays above (a loaded .kfc); kf_corpus_free()
				 * frees only it */
	uint32_t *index_slots;  /* codepoint -> id+1, open addressing; 0 = empty.
				 * Built by kf_corpus_check(); NULL: linear search */
	uint32_t index_mask;    /* number of slots - 1 */
};

/* Frees everything; NULL is safe. */
void kf_corpus_free(struct kf_corpus *corpus);

/* Char id of a codepoint, or -1 when the corpus never saw it. O(1) for
 * codepoints < 0x10000 after the first call (a lazily built table is not
 * used: the loaders build the index eagerly, so this is thread-safe). */
int32_t kf_corpus_char_id(const struct kf_corpus *corpus, uint32_t codepoint);

/* Oxeylyzer JSON (`chars`, `bigrams`, `skipgrams`, `trigrams`, `*_total`).
 * On error returns KF_ECORPUS (or KF_EIO/KF_ENOMEM) and, when `why` is not
 * NULL, appends one human-readable line naming the file and the problem. */
enum kf_err kf_corpus_load_json(const char *path, struct kf_corpus **out, struct kf_strbuf *why);

/* Builds a corpus from raw UTF-8 text files (see corpus_text.c for the rules
 * on case folding, shift and word boundaries). */
enum kf_err kf_corpus_build_text(const char *const *paths, size_t npaths, const char *name,
				 struct kf_corpus **out, struct kf_strbuf *why);

/* The project's compact binary format (.kfc): versioned, checksummed. */
enum kf_err kf_corpus_save(const struct kf_corpus *corpus, const char *path, struct kf_strbuf *why);
enum kf_err kf_corpus_load_file(const char *path, struct kf_corpus **out, struct kf_strbuf *why);

/* Loads by content: compact file if it starts with the .kfc magic, JSON
 * otherwise. What programs call for a user-supplied --corpus. */
enum kf_err kf_corpus_load(const char *path, struct kf_corpus **out, struct kf_strbuf *why);

/* ---- additions by the corpus code (see docs/corpus.md) ------------------- */

/* Notes on the functions above: kf_corpus_build_text() reads standard input
 * for the path "-" and names the corpus after the first file when `name` is
 * NULL; a JSON file without the *_total keys gives totals of 0 (unknown). */

/* The .kfc file starts with these 8 bytes, then a little-endian u32 format
 * version. Bump KF_CORPUS_FILE_VERSION on any change of the layout described
 * in corpus_file.c; older files are then refused with KF_ECORPUS_VERSION and
 * rebuilt by scripts/default-corpus. */
#define KF_CORPUS_FILE_MAGIC "KFCORPUS"
#define KF_CORPUS_FILE_VERSION 1u
/* Largest number of distinct characters (every Unicode scalar value). */
#define KF_CORPUS_MAX_CHARS 0x110000u

/* Checks every invariant of a corpus (nchars >= 1, valid distinct codepoints,
 * finite percentages in [0, 100], each array sorted by descending frequency,
 * ids < nchars, no n-gram twice) and builds the char index that makes
 * kf_corpus_char_id() O(1). Every loader calls it; code that fills a struct
 * kf_corpus by hand (calloc + malloc'd arrays) calls it once before sharing
 * the corpus. Returns KF_OK, KF_ECORPUS (with one line in `why`) or
 * KF_ENOMEM. Not thread-safe on the same corpus (it writes the index). */
enum kf_err kf_corpus_check(struct kf_corpus *corpus, struct kf_strbuf *why);

/* Same as the file loaders, from bytes in memory (`origin` names the source
 * in messages). The bytes are not modified or kept. Any input is safe: these
 * are the fuzz targets' entry points. */
enum kf_err kf_corpus_parse_json(const void *data, size_t len, const char *origin,
				 struct kf_corpus **out, struct kf_strbuf *why);
enum kf_err kf_corpus_parse_file(const void *data, size_t len, const char *origin,
				 struct kf_corpus **out, struct kf_strbuf *why);

/* Encodes a corpus (one that passed kf_corpus_check()) as .kfc bytes,
 * appended to `out`. KF_ENOMEM or KF_OK. */
enum kf_err kf_corpus_encode(const struct kf_corpus *corpus, struct kf_strbuf *out);

/* Streaming construction from raw UTF-8 text, for callers that do not have
 * files (tests, stdin, generated text). kf_corpus_build_text() uses it.
 * One owner at a time; not thread-safe. */
struct kf_corpus_builder;

struct kf_corpus_build_stats {
	uint64_t bytes;         /* bytes fed */
	uint64_t invalid_utf8;  /* maximal invalid UTF-8 subsequences (each one a word break) */
	uint64_t shifted;       /* shift symbols (U+21D1) emitted for capitals and shifted symbols */
	uint64_t ignored;       /* format characters dropped (soft hyphen, zero-width, BOM) */
};

/* NULL when out of memory. */
struct kf_corpus_builder *kf_corpus_builder_new(void);
/* Feeds text; a UTF-8 sequence may be split across calls. KF_OK or KF_ENOMEM
 * (the builder is then unusable: free it). */
enum kf_err kf_corpus_builder_add(struct kf_corpus_builder *builder, const void *text, size_t len);
/* Ends a document: no n-gram spans the break (files are documents). */
void kf_corpus_builder_break(struct kf_corpus_builder *builder);
void kf_corpus_builder_stats(const struct kf_corpus_builder *builder,
			     struct kf_corpus_build_stats *stats);
/* Makes the corpus (name truncated to 63 bytes). The builder stays valid and
 * may be fed more and finished again. KF_ECORPUS when the text held no
 * character, KF_ENOMEM. */
enum kf_err kf_corpus_builder_finish(struct kf_corpus_builder *builder, const char *name,
				     struct kf_corpus **out, struct kf_strbuf *why);
void kf_corpus_builder_free(struct kf_corpus_builder *builder);

/* Feeds a whole file ("-" is standard input), then ends the document.
 * KF_OK, KF_EIO (with one line in `why`) or KF_ENOMEM. */
enum kf_err kf_corpus_builder_add_file(struct kf_corpus_builder *builder, const char *path,
				       struct kf_strbuf *why);

/* One-shot build from a buffer: kf_corpus_builder_{new,add,finish,free}. */
enum kf_err kf_corpus_build_mem(const void *text, size_t len, const char *name,
				struct kf_corpus **out, struct kf_strbuf *why);

#endif
