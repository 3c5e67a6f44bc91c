/*
 * corpus_internal.h — helpers shared by the corpus_*.c files of layout/
 * (kf__ names: not part of the public corpus API).
 */
#ifndef KF_LAYOUT_CORPUS_INTERNAL_H
#define KF_LAYOUT_CORPUS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/strbuf.h"
#include "layout/corpus.h"

/* Largest corpus file the loaders read into memory. */
#define KF__CORPUS_MAX_FILE ((size_t)1 << 30)

/* A u64 -> u64 hash map with open addressing and linear probing. Keys are
 * any value but KF__U64MAP_EMPTY, which marks a free slot (iterate over
 * keys[0..mask] and skip it). Not thread-safe. */
#define KF__U64MAP_EMPTY UINT64_MAX

struct kf__u64map {
	uint64_t *keys;
	uint64_t *vals;
	size_t mask;  /* slots - 1; slots is a power of two */
	size_t count;
	unsigned shift; /* 64 - log2(slots) */
};

enum kf_err kf__u64map_init(struct kf__u64map *map, size_t hint);
void kf__u64map_release(struct kf__u64map *map);
/* The value slot of `key`, inserted as 0 (with *inserted = true) when absent;
 * NULL when growing the table failed. The pointer is valid until the next
 * insertion. */
uint64_t *kf__u64map_upsert(struct kf__u64map *map, uint64_t key, bool *inserted);
/* The value slot of `key`, or NULL. */
uint64_t *kf__u64map_find(const struct kf__u64map *map, uint64_t key);

/* N-gram keys pack char ids (< 2^21, as KF_CORPUS_MAX_CHARS is) into a u64. */
static inline uint64_t kf__key2(uint64_t a, uint64_t b)
{
	return a << 21 | b;
}

static inline uint64_t kf__key3(uint64_t a, uint64_t b, uint64_t c)
{
	return a << 42 | b << 21 | c;
}

/* Appends one line "origin: message" (no newline) to `why` (may be NULL). */
void kf__corpus_fail(struct kf_strbuf *why, const char *origin, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Writes codepoint `cp` as UTF-8 into out (4 bytes of room); returns the
 * length. Invalid scalars are written as U+FFFD. */
size_t kf__utf8_put(char *out, uint32_t cp);

/* Appends a codepoint for a human message: printable as itself, otherwise
 * as U+XXXX. */
void kf__add_char_for_humans(struct kf_strbuf *sb, uint32_t cp);

/* Copies a name into corpus->name: at most 63 bytes, cut at a UTF-8
 * boundary, invalid UTF-8 and control characters replaced by '?'. */
void kf__corpus_set_name(struct kf_corpus *corpus, const char *name, size_t len);
/* The default name of a corpus read from `path`: its base name without the
 * extension. */
void kf__corpus_name_from_path(struct kf_corpus *corpus, const char *path);

/* kf_corpus_check() with `origin` naming the source in the message. */
enum kf_err kf__corpus_check(struct kf_corpus *corpus, const char *origin, struct kf_strbuf *why);

/* Builds the char index; KF_ECORPUS when a codepoint repeats or is not a
 * Unicode scalar value. */
enum kf_err kf__corpus_index(struct kf_corpus *corpus, const char *origin, struct kf_strbuf *why);

/* Sorts an n-gram array by descending frequency, then ascending ids, so
 * that equal inputs give byte-identical corpora. */
void kf__sort_ngram2(struct kf_ngram2 *grams, size_t n);
void kf__sort_ngram3(struct kf_ngram3 *grams, size_t n);

/* A whole file in memory: malloc'd, NUL-terminated, 8-byte aligned. */
struct kf__filebuf {
	char *data;
	size_t len;
};

/* Reads a whole file (at most KF__CORPUS_MAX_FILE bytes); "-" is standard
 * input. Release the buffer with kf__filebuf_release(). */
enum kf_err kf__read_file(const char *path, struct kf__filebuf *buf, struct kf_strbuf *why);
void kf__filebuf_release(struct kf__filebuf *buf);

/* CRC-32 (IEEE 802.3, the zlib/PNG one): kf__crc32(0, data, len). */
uint32_t kf__crc32(uint32_t crc, const void *data, size_t len);

/* Decodes one UTF-8 sequence at s[0..len): returns its length (1..4) and
 * sets *cp; returns 0 when s[0..len) is a proper prefix of a valid sequence
 * (more bytes needed); returns -n when the first n bytes are a maximal
 * invalid subpart (Unicode §3.9: replace each by one U+FFFD). len >= 1. */
int kf__utf8_decode(const unsigned char *s, size_t len, uint32_t *cp);

/* The loaders behind kf_corpus_load*() and kf_corpus_parse_*(). The JSON
 * one only reads `data`; the .kfc one takes ownership of the buffer (the
 * corpus arrays point into it) and releases it on failure. */
enum kf_err kf__corpus_from_json(const char *data, size_t len, const char *origin,
				 const char *default_name, struct kf_corpus **out,
				 struct kf_strbuf *why);
enum kf_err kf__corpus_from_kfc(struct kf__filebuf *buf, const char *origin,
				struct kf_corpus **out, struct kf_strbuf *why);

#endif
