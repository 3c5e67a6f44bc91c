/*
 * corpus_file.c — the compact corpus format (.kfc), version 1.
 *
 * Every integer and double is little-endian; every section starts at a
 * multiple of 8 bytes from the start of the file, so that a loaded file is
 * used in place: one read(), a validation pass, and the corpus arrays point
 * into the buffer (struct kf_ngram2/3 have exactly the record layout below).
 *
 *   offset size  field
 *   0      8     magic "KFCORPUS"
 *   8      4     u32 format version (KF_CORPUS_FILE_VERSION = 1)
 *   12     4     u32 header size = 160
 *   16     8     u64 file size in bytes, trailer included
 *   24     4     u32 nchars (1 .. KF_CORPUS_MAX_CHARS)
 *   28     4     u32 flags, 0
 *   32     32    u64 char_total, bigram_total, skipgram_total, trigram_total
 *   64     24    u64 nbigrams, nskipgrams, ntrigrams
 *   88     64    name: UTF-8, NUL-terminated, zero-padded
 *   152    8     reserved, 0
 *   160          u32 codepoints[nchars], zero-padded to a multiple of 8 bytes
 *                f64 chars[nchars]                          (percent)
 *                {u32 a, u32 b, f64 freq} bigrams[nbigrams]  16 bytes each
 *                {u32 a, u32 b, f64 freq} skipgrams[nskipgrams]
 *                {u32 a, b, c, u32 0, f64 freq} trigrams[ntrigrams], 24 bytes
 *   end-8  4     u32 CRC-32 (IEEE) of every byte before it
 *   end-4  4     u32 0
 *
 * A reader checks, in order: magic, version (KF_ECORPUS_VERSION when it
 * differs), header size, file size against the actual size, the counts
 * against the file size (the sections must fill the file exactly), the
 * checksum, then every field (zero padding, name, codepoints, ids <
 * nchars, percentages, sort order, no duplicate) via kf__corpus_check().
 *
 * How to change the format: bump KF_CORPUS_FILE_VERSION in corpus.h, write
 * the new layout here and in docs/corpus.md. Old files are then refused with
 * KF_ECORPUS_VERSION and rebuilt (scripts/default-corpus rebuilds the
 * default corpus on its own when `corpus info` refuses it).
 */
#include "common/io.h"
#include "layout/corpus.h"
#include "layout/corpus_internal.h"

#include "common/json.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "the .kfc loader uses little-endian records in place; a big-endian port "
	       "must decode them field by field");
_Static_assert(sizeof(struct kf_ngram2) == 16 && offsetof(struct kf_ngram2, freq) == 8,
	       "struct kf_ngram2 must match the 16-byte .kfc record");
_Static_assert(sizeof(struct kf_ngram3) == 24 && offsetof(struct kf_ngram3, freq) == 16,
	       "struct kf_ngram3 must match the 24-byte .kfc record");
_Static_assert(sizeof(double) == 8, "f64 records");

enum {
	HEADER_SIZE = 160,
	TRAILER_SIZE = 8,
	OFF_VERSION = 8,
	OFF_HEADER_SIZE = 12,
	OFF_FILE_SIZE = 16,
	OFF_NCHARS = 24,
	OFF_FLAGS = 28,
	OFF_TOTALS = 32,
	OFF_COUNTS = 64,
	OFF_NAME = 88,
	NAME_SIZE = 64,
	OFF_RESERVED = 152,
};

/* ---- CRC-32, slicing by 8 -------------------------------------------------- */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^
					  crc_table[0][crc_table[t - 1][i] & 0xFF];
}

uint32_t kf__crc32(uint32_t crc, const void *data, size_t len)
{
	const unsigned char *p = data;
	pthread_once(&crc_once, crc_init);
	crc = ~crc;
	while (len >= 8) {
		uint32_t lo, hi;
		memcpy(&lo, p, 4);
		memcpy(&hi, p + 4, 4);
		lo ^= crc;
		crc = crc_table[7][lo & 0xFF] ^ crc_table[6][lo >> 8 & 0xFF] ^
		      crc_table[5][lo >> 16 & 0xFF] ^ crc_table[4][lo >> 24] ^
		      crc_table[3][hi & 0xFF] ^ crc_table[2][hi >> 8 & 0xFF] ^
		      crc_table[1][hi >> 16 & 0xFF] ^ crc_table[0][hi >> 24];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = crc_table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
	return ~crc;
}

/* ---- little-endian fields -------------------------------------------------- */

static uint32_t rd32(const char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint64_t rd64(const char *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static void wr32(char *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void wr64(char *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static size_t pad8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

/* Where each section lives, from the counts. */
struct layout {
	size_t codepoints, chars, bigrams, skipgrams, trigrams, trailer, size;
};

static void plan(struct layout *l, uint64_t nchars, uint64_t nbi, uint64_t nskip, uint64_t ntri)
{
	l->codepoints = HEADER_SIZE;
	l->chars = l->codepoints + pad8(nchars * 4);
	l->bigrams = l->chars + nchars * 8;
	l->skipgrams = l->bigrams + nbi * sizeof(struct kf_ngram2);
	l->trigrams = l->skipgrams + nskip * sizeof(struct kf_ngram2);
	l->trailer = l->trigrams + ntri * sizeof(struct kf_ngram3);
	l->size = l->trailer + TRAILER_SIZE;
}

/* ---- writing --------------------------------------------------------------- */

static void encode_header(char *f, const struct kf_corpus *c, const struct layout *l)
{
	memcpy(f, KF_CORPUS_FILE_MAGIC, 8);
	wr32(f + OFF_VERSION, KF_CORPUS_FILE_VERSION);
	wr32(f + OFF_HEADER_SIZE, HEADER_SIZE);
	wr64(f + OFF_FILE_SIZE, l->size);
	wr32(f + OFF_NCHARS, c->nchars);
	wr64(f + OFF_TOTALS, c->char_total);
	wr64(f + OFF_TOTALS + 8, c->bigram_total);
	wr64(f + OFF_TOTALS + 16, c->skipgram_total);
	wr64(f + OFF_TOTALS + 24, c->trigram_total);
	wr64(f + OFF_COUNTS, c->nbigrams);
	wr64(f + OFF_COUNTS + 8, c->nskipgrams);
	wr64(f + OFF_COUNTS + 16, c->ntrigrams);
	memcpy(f + OFF_NAME, c->name, strnlen(c->name, NAME_SIZE - 1));
}

static void encode_grams2(char *p, const struct kf_ngram2 *g, size_t n)
{
	for (size_t i = 0; i < n; i++, p += sizeof *g) {
		wr32(p, g[i].a);
		wr32(p + 4, g[i].b);
		memcpy(p + 8, &g[i].freq, 8);
	}
}

enum kf_err kf_corpus_encode(const struct kf_corpus *c, struct kf_strbuf *out)
{
	struct layout l;
	plan(&l, c->nchars, c->nbigrams, c->nskipgrams, c->ntrigrams);
	if (!kf_strbuf_grow(out, l.size))
		return KF_ENOMEM;
	char *f = out->buf + out->len;
	memset(f, 0, l.size); /* every padding and reserved byte is zero */
	encode_header(f, c, &l);
	for (uint32_t i = 0; i < c->nchars; i++) {
		wr32(f + l.codepoints + 4 * i, c->codepoints[i]);
		memcpy(f + l.chars + 8 * i, &c->chars[i], 8);
	}
	encode_grams2(f + l.bigrams, c->bigrams, c->nbigrams);
	encode_grams2(f + l.skipgrams, c->skipgrams, c->nskipgrams);
	for (size_t i = 0; i < c->ntrigrams; i++) {
		char *p = f + l.trigrams + i * sizeof(struct kf_ngram3);
		wr32(p, c->trigrams[i].a);
		wr32(p + 4, c->trigrams[i].b);
		wr32(p + 8, c->trigrams[i].c);
		memcpy(p + 16, &c->trigrams[i].freq, 8);
	}
	wr32(f + l.trailer, kf__crc32(0, f, l.trailer));
	out->len += l.size;
	out->buf[out->len] = '\0';
	return KF_OK;
}

/* Writes `bytes` to a new file `tmp` (a mkostemp template); 0 or an errno. */
static int write_new_file(char *tmp, const struct kf_strbuf *bytes)
{
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return errno;
	int err = kf_write_all(fd, bytes->buf, bytes->len) && fchmod(fd, 0644) == 0 &&
			  fsync(fd) == 0 ? 0 : errno;
	if (close(fd) && !err)
		err = errno;
	if (err)
		unlink(tmp);
	return err;
}

/* Writes to a temporary file beside `path`, then renames it over `path`, so
 * that a reader never sees half a corpus. */
enum kf_err kf_corpus_save(const struct kf_corpus *corpus, const char *path, struct kf_strbuf *why)
{
	struct kf_strbuf bytes = KF_STRBUF_INIT, tmp = KF_STRBUF_INIT;
	enum kf_err err = kf_corpus_encode(corpus, &bytes);
	kf_strbuf_addf(&tmp, "%s.tmpXXXXXX", path);
	if (err || tmp.oom) {
		err = KF_ENOMEM;
	} else {
		int e = write_new_file(tmp.buf, &bytes);
		if (!e && rename(tmp.buf, path)) {
			e = errno;
			unlink(tmp.buf);
		}
		if (e) {
			kf__corpus_fail(why, path, "cannot write: %s", strerror(e));
			err = KF_EIO;
		}
	}
	kf_strbuf_release(&bytes);
	kf_strbuf_release(&tmp);
	return err;
}

/* ---- reading --------------------------------------------------------------- */

static enum kf_err check_frame(const char *f, size_t len, const char *origin,
			       struct kf_strbuf *why)
{
	if (len < 8 || memcmp(f, KF_CORPUS_FILE_MAGIC, 8)) {
		kf__corpus_fail(why, origin, "not a .kfc corpus (bad magic)");
		return KF_ECORPUS;
	}
	if (len < OFF_VERSION + 4) {
		kf__corpus_fail(why, origin, "truncated: %zu bytes, the header alone has %d", len,
				HEADER_SIZE);
		return KF_ECORPUS;
	}
	uint32_t version = rd32(f + OFF_VERSION);
	if (version != KF_CORPUS_FILE_VERSION) {
		kf__corpus_fail(why, origin,
				"format version %u, this build reads version %u; rebuild the corpus "
				"with 'keyforge-layout corpus build'",
				version, KF_CORPUS_FILE_VERSION);
		return KF_ECORPUS_VERSION;
	}
	if (len < HEADER_SIZE) {
		kf__corpus_fail(why, origin, "truncated: %zu bytes, the header alone has %d", len,
				HEADER_SIZE);
		return KF_ECORPUS;
	}
	if (rd32(f + OFF_HEADER_SIZE) != HEADER_SIZE) {
		kf__corpus_fail(why, origin, "header size %u, expected %d",
				rd32(f + OFF_HEADER_SIZE), HEADER_SIZE);
		return KF_ECORPUS;
	}
	uint64_t size = rd64(f + OFF_FILE_SIZE);
	if (size != len) {
		kf__corpus_fail(why, origin,
				size > len ? "truncated: the header says %llu bytes, there are %zu"
					   : "the header says %llu bytes, there are %zu (trailing data)",
				(unsigned long long)size, len);
		return KF_ECORPUS;
	}
	if (rd32(f + OFF_FLAGS) || rd64(f + OFF_RESERVED)) {
		kf__corpus_fail(why, origin, "reserved header fields are not zero");
		return KF_ECORPUS;
	}
	return KF_OK;
}

static enum kf_err check_counts(const char *f, size_t len, struct layout *l, const char *origin,
				struct kf_strbuf *why)
{
	uint64_t nchars = rd32(f + OFF_NCHARS);
	uint64_t nbi = rd64(f + OFF_COUNTS), nskip = rd64(f + OFF_COUNTS + 8);
	uint64_t ntri = rd64(f + OFF_COUNTS + 16);
	/* Each bound keeps the products below far from overflow. */
	if (nchars > KF_CORPUS_MAX_CHARS || nbi > len / 16 || nskip > len / 16 || ntri > len / 24) {
		kf__corpus_fail(why, origin,
				"counts (%llu chars, %llu bigrams, %llu skipgrams, %llu trigrams) "
				"exceed what %zu bytes can hold",
				(unsigned long long)nchars, (unsigned long long)nbi,
				(unsigned long long)nskip, (unsigned long long)ntri, len);
		return KF_ECORPUS;
	}
	plan(l, nchars, nbi, nskip, ntri);
	if (l->size != len) {
		kf__corpus_fail(why, origin, "the counts need %zu bytes, the file has %zu", l->size,
				len);
		return KF_ECORPUS;
	}
	uint32_t crc = kf__crc32(0, f, l->trailer);
	if (rd32(f + l->trailer) != crc) {
		kf__corpus_fail(why, origin,
				"checksum mismatch (stored %08x, computed %08x): the file is corrupt",
				rd32(f + l->trailer), crc);
		return KF_ECORPUS;
	}
	return KF_OK;
}

static bool all_zero(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static enum kf_err check_padding(const char *f, const struct layout *l, uint64_t nchars,
				 uint64_t ntri, const char *origin, struct kf_strbuf *why)
{
	const char *name = f + OFF_NAME;
	size_t name_len = strnlen(name, NAME_SIZE);
	bool ok = name_len < NAME_SIZE && all_zero(name + name_len, NAME_SIZE - name_len) &&
		  kf_utf8_valid(name, name_len);
	for (size_t i = 0; ok && i < name_len; i++)
		ok = (unsigned char)name[i] >= 0x20 && name[i] != 0x7F;
	if (!ok) {
		kf__corpus_fail(why, origin, "the name is not NUL-terminated printable UTF-8");
		return KF_ECORPUS;
	}
	ok = all_zero(f + l->codepoints + nchars * 4, l->chars - l->codepoints - nchars * 4) &&
	     rd32(f + l->trailer + 4) == 0;
	for (uint64_t i = 0; ok && i < ntri; i++)
		ok = rd32(f + l->trigrams + i * sizeof(struct kf_ngram3) + 12) == 0;
	if (!ok) {
		kf__corpus_fail(why, origin, "padding bytes are not zero");
		return KF_ECORPUS;
	}
	return KF_OK;
}

/* Points the corpus arrays into the file, which becomes the corpus storage. */
static void adopt(struct kf_corpus *c, struct kf__filebuf *buf, const struct layout *l)
{
	char *f = buf->data;
	memcpy(c->name, f + OFF_NAME, NAME_SIZE);
	c->nchars = rd32(f + OFF_NCHARS);
	c->char_total = rd64(f + OFF_TOTALS);
	c->bigram_total = rd64(f + OFF_TOTALS + 8);
	c->skipgram_total = rd64(f + OFF_TOTALS + 16);
	c->trigram_total = rd64(f + OFF_TOTALS + 24);
	c->nbigrams = rd64(f + OFF_COUNTS);
	c->nskipgrams = rd64(f + OFF_COUNTS + 8);
	c->ntrigrams = rd64(f + OFF_COUNTS + 16);
	c->codepoints = (uint32_t *)(void *)(f + l->codepoints);
	c->chars = (double *)(void *)(f + l->chars);
	c->bigrams = (struct kf_ngram2 *)(void *)(f + l->bigrams);
	c->skipgrams = (struct kf_ngram2 *)(void *)(f + l->skipgrams);
	c->trigrams = (struct kf_ngram3 *)(void *)(f + l->trigrams);
	c->storage = f;
	*buf = (struct kf__filebuf){ NULL, 0 };
}

enum kf_err kf__corpus_from_kfc(struct kf__filebuf *buf, const char *origin,
				struct kf_corpus **out, struct kf_strbuf *why)
{
	struct layout l;
	const char *f = buf->data;
	size_t len = buf->len;
	*out = NULL;
	enum kf_err err = check_frame(f, len, origin, why);
	if (!err)
		err = check_counts(f, len, &l, origin, why);
	if (!err)
		err = check_padding(f, &l, rd32(f + OFF_NCHARS), rd64(f + OFF_COUNTS + 16), origin,
				    why);
	struct kf_corpus *c = err ? NULL : calloc(1, sizeof *c);
	if (!err && !c)
		err = KF_ENOMEM;
	if (err) {
		kf__filebuf_release(buf);
		return err;
	}
	adopt(c, buf, &l);
	err = kf__corpus_check(c, origin, why);
	if (err) {
		kf_corpus_free(c);
		return err;
	}
	*out = c;
	return KF_OK;
}

enum kf_err kf_corpus_parse_file(const void *data, size_t len, const char *origin,
				 struct kf_corpus **out, struct kf_strbuf *why)
{
	/* malloc'd memory is aligned for the doubles used in place. */
	struct kf__filebuf buf = { malloc(len ? len : 1), len };
	*out = NULL;
	if (!buf.data)
		return KF_ENOMEM;
	if (len)
		memcpy(buf.data, data, len);
	return kf__corpus_from_kfc(&buf, origin, out, why);
}

enum kf_err kf_corpus_load_file(const char *path, struct kf_corpus **out, struct kf_strbuf *why)
{
	struct kf__filebuf buf;
	*out = NULL;
	enum kf_err err = kf__read_file(path, &buf, why);
	if (err)
		return err;
	return kf__corpus_from_kfc(&buf, path, out, why);
}
