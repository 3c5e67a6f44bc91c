/*
 * corpus.c — the corpus object: freeing, the char index, the invariant check
 * that every loader ends with, loading by content, and the small helpers
 * (hash map, UTF-8, names, whole-file reads) that the other corpus_*.c share.
 */
#include "layout/corpus.h"
#include "layout/corpus_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* A percentage may exceed 100 by rounding when one n-gram is all there is. */
#define PERCENT_MAX (100.0 + 1e-9)

void kf_corpus_free(struct kf_corpus *corpus)
{
	if (!corpus)
		return;
	if (corpus->storage) {
		free(corpus->storage);
	} else {
		free(corpus->codepoints);
		free(corpus->chars);
		free(corpus->bigrams);
		free(corpus->skipgrams);
		free(corpus->trigrams);
	}
	free(corpus->index_slots);
	free(corpus);
}

/* ---- char index ---------------------------------------------------------- */

static inline uint32_t cp_slot(uint32_t cp, uint32_t mask)
{
	uint32_t h = cp * 0x9E3779B1u;
	return (h ^ h >> 16) & mask;
}

int32_t kf_corpus_char_id(const struct kf_corpus *corpus, uint32_t codepoint)
{
	if (!corpus->index_slots) {
		/* A corpus filled by hand that skipped kf_corpus_check(). */
		for (uint32_t id = 0; id < corpus->nchars; id++)
			if (corpus->codepoints[id] == codepoint)
				return (int32_t)id;
		return -1;
	}
	uint32_t mask = corpus->index_mask;
	for (uint32_t h = cp_slot(codepoint, mask);; h = (h + 1) & mask) {
		uint32_t slot = corpus->index_slots[h];
		if (!slot)
			return -1;
		if (corpus->codepoints[slot - 1] == codepoint)
			return (int32_t)(slot - 1);
	}
}

static bool is_scalar(uint32_t cp)
{
	return cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF);
}

enum kf_err kf__corpus_index(struct kf_corpus *corpus, const char *origin, struct kf_strbuf *why)
{
	uint32_t slots = 16;
	while (slots < 2 * corpus->nchars)
		slots <<= 1;
	uint32_t *table = calloc(slots, sizeof *table);
	if (!table)
		return KF_ENOMEM;
	uint32_t mask = slots - 1;
	for (uint32_t id = 0; id < corpus->nchars; id++) {
		uint32_t cp = corpus->codepoints[id];
		if (!is_scalar(cp)) {
			kf__corpus_fail(why, origin, "character id %u is U+%04X, not a Unicode scalar value",
					id, cp);
			free(table);
			return KF_ECORPUS;
		}
		uint32_t h = cp_slot(cp, mask);
		for (; table[h]; h = (h + 1) & mask) {
			if (corpus->codepoints[table[h] - 1] != cp)
				continue;
			struct kf_strbuf c = KF_STRBUF_INIT;
			kf__add_char_for_humans(&c, cp);
			kf__corpus_fail(why, origin, "character '%s' appears twice", c.buf);
			kf_strbuf_release(&c);
			free(table);
			return KF_ECORPUS;
		}
		table[h] = id + 1;
	}
	free(corpus->index_slots);
	corpus->index_slots = table;
	corpus->index_mask = mask;
	return KF_OK;
}

/* ---- invariants ---------------------------------------------------------- */

static bool percent_ok(double f)
{
	return f >= 0.0 && f <= PERCENT_MAX; /* false for NaN */
}

static enum kf_err check_chars(const struct kf_corpus *c, const char *origin, struct kf_strbuf *why)
{
	for (uint32_t id = 0; id < c->nchars; id++) {
		if (!percent_ok(c->chars[id])) {
			kf__corpus_fail(why, origin, "character id %u has percentage %g, not in [0, 100]",
					id, c->chars[id]);
			return KF_ECORPUS;
		}
		if (id && c->chars[id] > c->chars[id - 1]) {
			kf__corpus_fail(why, origin,
					"characters are not sorted by descending frequency at id %u", id);
			return KF_ECORPUS;
		}
	}
	return KF_OK;
}

struct gram_view {
	const char *what;   /* "bigram", ... for messages */
	unsigned n;         /* 2 or 3 */
	size_t count;
	const void *base;
	size_t stride;
};

static void gram_ids(const struct gram_view *v, size_t i, uint32_t ids[3], double *freq)
{
	if (v->n == 2) {
		const struct kf_ngram2 *g = (const struct kf_ngram2 *)v->base + i;
		ids[0] = g->a, ids[1] = g->b, ids[2] = 0;
		*freq = g->freq;
	} else {
		const struct kf_ngram3 *g = (const struct kf_ngram3 *)v->base + i;
		ids[0] = g->a, ids[1] = g->b, ids[2] = g->c;
		*freq = g->freq;
	}
}

static void add_gram_text(struct kf_strbuf *sb, const struct kf_corpus *c, const uint32_t *ids,
			  unsigned n)
{
	for (unsigned k = 0; k < n; k++)
		kf__add_char_for_humans(sb, c->codepoints[ids[k]]);
}

/* Duplicate detection over n-grams: a bitmap of every id tuple when that is
 * small in itself (256 KiB at most: alphabets up to 128 characters for
 * trigrams; 12 KiB for English) and next to the hash set it replaces
 * (16 bytes a slot, two slots an n-gram), else the hash set. */
#define BITMAP_MAX_BITS ((uint64_t)1 << 21)

struct seen_set {
	uint64_t *bits;
	struct kf__u64map map;
};

static enum kf_err seen_init(struct seen_set *set, uint64_t space, size_t count)
{
	*set = (struct seen_set){ 0 };
	if (space <= BITMAP_MAX_BITS && space / 8 <= 32 * (uint64_t)count + 4096) {
		set->bits = calloc((size_t)(space + 63) / 64 + 1, sizeof *set->bits);
		return set->bits ? KF_OK : KF_ENOMEM;
	}
	return kf__u64map_init(&set->map, count);
}

static void seen_release(struct seen_set *set)
{
	if (set->bits)
		free(set->bits);
	else
		kf__u64map_release(&set->map);
}

/* 1 when `dense` (< space) was new, 0 when seen before, -1 out of memory. */
static int seen_add(struct seen_set *set, uint64_t dense)
{
	if (set->bits) {
		uint64_t bit = (uint64_t)1 << (dense % 64), *word = &set->bits[dense / 64];
		int fresh = !(*word & bit);
		*word |= bit;
		return fresh;
	}
	bool inserted;
	return kf__u64map_upsert(&set->map, dense, &inserted) ? inserted : -1;
}

static enum kf_err check_grams(const struct kf_corpus *c, const struct gram_view *v,
			       const char *origin, struct kf_strbuf *why)
{
	if (v->count && !v->base) {
		kf__corpus_fail(why, origin, "%s array missing", v->what);
		return KF_ECORPUS;
	}
	uint64_t n = c->nchars, space = v->n == 2 ? n * n : n * n * n;
	struct seen_set seen;
	if (seen_init(&seen, space, v->count))
		return KF_ENOMEM;
	enum kf_err err = KF_OK;
	double prev = 0.0;
	for (size_t i = 0; i < v->count && !err; i++) {
		uint32_t ids[3];
		double freq;
		gram_ids(v, i, ids, &freq);
		err = KF_ECORPUS;
		if (ids[0] >= n || ids[1] >= n || ids[2] >= n) {
			kf__corpus_fail(why, origin, "%s %zu uses a character id >= %u", v->what, i,
					c->nchars);
			break;
		}
		if (!percent_ok(freq)) {
			kf__corpus_fail(why, origin, "%s %zu has percentage %g, not in [0, 100]",
					v->what, i, freq);
			break;
		}
		if (i && freq > prev) {
			kf__corpus_fail(why, origin,
					"%ss are not sorted by descending frequency at index %zu",
					v->what, i);
			break;
		}
		uint64_t dense = v->n == 2 ? ids[0] * n + ids[1] : (ids[0] * n + ids[1]) * n + ids[2];
		int fresh = seen_add(&seen, dense);
		if (fresh < 0) {
			err = KF_ENOMEM;
			break;
		}
		if (!fresh) {
			struct kf_strbuf s = KF_STRBUF_INIT;
			add_gram_text(&s, c, ids, v->n);
			kf__corpus_fail(why, origin, "%s '%s' appears twice", v->what, s.buf);
			kf_strbuf_release(&s);
			break;
		}
		prev = freq;
		err = KF_OK;
	}
	seen_release(&seen);
	return err;
}

enum kf_err kf__corpus_check(struct kf_corpus *c, const char *origin, struct kf_strbuf *why)
{
	if (!memchr(c->name, '\0', sizeof c->name)) {
		kf__corpus_fail(why, origin, "name is not terminated");
		return KF_ECORPUS;
	}
	if (c->nchars == 0) {
		kf__corpus_fail(why, origin, "the corpus has no characters");
		return KF_ECORPUS;
	}
	if (c->nchars > KF_CORPUS_MAX_CHARS) {
		kf__corpus_fail(why, origin, "too many characters (%u)", c->nchars);
		return KF_ECORPUS;
	}
	if (!c->codepoints || !c->chars) {
		kf__corpus_fail(why, origin, "character arrays missing");
		return KF_ECORPUS;
	}
	enum kf_err err = check_chars(c, origin, why);
	if (!err)
		err = kf__corpus_index(c, origin, why);
	const struct gram_view views[] = {
		{ "bigram", 2, c->nbigrams, c->bigrams, sizeof *c->bigrams },
		{ "skipgram", 2, c->nskipgrams, c->skipgrams, sizeof *c->skipgrams },
		{ "trigram", 3, c->ntrigrams, c->trigrams, sizeof *c->trigrams },
	};
	for (size_t i = 0; i < sizeof views / sizeof views[0] && !err; i++)
		err = check_grams(c, &views[i], origin, why);
	return err;
}

enum kf_err kf_corpus_check(struct kf_corpus *corpus, struct kf_strbuf *why)
{
	return kf__corpus_check(corpus, corpus->name[0] ? corpus->name : "corpus", why);
}

/* ---- sorting ------------------------------------------------------------- */

#define CMP(x, y) ((x) < (y) ? -1 : (x) > (y))

static int cmp_ngram2(const void *pa, const void *pb)
{
	const struct kf_ngram2 *a = pa, *b = pb;
	if (a->freq != b->freq)
		return a->freq > b->freq ? -1 : 1;
	return a->a != b->a ? CMP(a->a, b->a) : CMP(a->b, b->b);
}

static int cmp_ngram3(const void *pa, const void *pb)
{
	const struct kf_ngram3 *a = pa, *b = pb;
	if (a->freq != b->freq)
		return a->freq > b->freq ? -1 : 1;
	if (a->a != b->a)
		return CMP(a->a, b->a);
	return a->b != b->b ? CMP(a->b, b->b) : CMP(a->c, b->c);
}

void kf__sort_ngram2(struct kf_ngram2 *grams, size_t n)
{
	if (n > 1)
		qsort(grams, n, sizeof *grams, cmp_ngram2);
}

void kf__sort_ngram3(struct kf_ngram3 *grams, size_t n)
{
	if (n > 1)
		qsort(grams, n, sizeof *grams, cmp_ngram3);
}

/* ---- u64 hash map -------------------------------------------------------- */

#define EMPTY KF__U64MAP_EMPTY

static enum kf_err map_alloc(struct kf__u64map *map, unsigned bits)
{
	size_t slots = (size_t)1 << bits;
	map->keys = malloc(slots * sizeof *map->keys);
	map->vals = malloc(slots * sizeof *map->vals);
	if (!map->keys || !map->vals) {
		free(map->keys);
		free(map->vals);
		map->keys = map->vals = NULL;
		return KF_ENOMEM;
	}
	memset(map->keys, 0xff, slots * sizeof *map->keys);
	map->mask = slots - 1;
	map->shift = 64 - bits;
	map->count = 0;
	return KF_OK;
}

enum kf_err kf__u64map_init(struct kf__u64map *map, size_t hint)
{
	unsigned bits = 4;
	while (bits < 40 && ((size_t)1 << bits) < hint * 2)
		bits++;
	return map_alloc(map, bits);
}

void kf__u64map_release(struct kf__u64map *map)
{
	free(map->keys);
	free(map->vals);
	map->keys = map->vals = NULL;
	map->count = 0;
}

static inline size_t map_slot(const struct kf__u64map *map, uint64_t key)
{
	return (size_t)((key * 0x9E3779B97F4A7C15ull) >> map->shift);
}

static enum kf_err map_grow(struct kf__u64map *map)
{
	struct kf__u64map bigger;
	if (map_alloc(&bigger, 64 - map->shift + 1))
		return KF_ENOMEM;
	for (size_t i = 0; i <= map->mask; i++) {
		if (map->keys[i] == EMPTY)
			continue;
		size_t h = map_slot(&bigger, map->keys[i]);
		while (bigger.keys[h] != EMPTY)
			h = (h + 1) & bigger.mask;
		bigger.keys[h] = map->keys[i];
		bigger.vals[h] = map->vals[i];
	}
	bigger.count = map->count;
	kf__u64map_release(map);
	*map = bigger;
	return KF_OK;
}

uint64_t *kf__u64map_upsert(struct kf__u64map *map, uint64_t key, bool *inserted)
{
	size_t h = map_slot(map, key);
	for (; map->keys[h] != EMPTY; h = (h + 1) & map->mask) {
		if (map->keys[h] == key) {
			*inserted = false;
			return &map->vals[h];
		}
	}
	/* Keep the load at most one half so probes stay short. */
	if ((map->count + 1) * 2 > map->mask + 1) {
		if (map_grow(map))
			return NULL;
		h = map_slot(map, key);
		while (map->keys[h] != EMPTY)
			h = (h + 1) & map->mask;
	}
	map->keys[h] = key;
	map->vals[h] = 0;
	map->count++;
	*inserted = true;
	return &map->vals[h];
}

uint64_t *kf__u64map_find(const struct kf__u64map *map, uint64_t key)
{
	for (size_t h = map_slot(map, key); map->keys[h] != EMPTY; h = (h + 1) & map->mask)
		if (map->keys[h] == key)
			return &map->vals[h];
	return NULL;
}

/* ---- UTF-8 and names ----------------------------------------------------- */

int kf__utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xBF;
	int n;
	uint32_t v;
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF) {
		n = 2, v = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3, v = c & 0x0F;
		lo = c == 0xE0 ? 0xA0 : 0x80; /* no overlongs */
		hi = c == 0xED ? 0x9F : 0xBF; /* no surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4, v = c & 0x07;
		lo = c == 0xF0 ? 0x90 : 0x80;
		hi = c == 0xF4 ? 0x8F : 0xBF; /* nothing above U+10FFFF */
	} else {
		return -1;
	}
	for (int i = 1; i < n; i++) {
		if ((size_t)i >= len)
			return 0;
		if (s[i] < lo || s[i] > hi)
			return -i;
		lo = 0x80, hi = 0xBF;
		v = v << 6 | (s[i] & 0x3F);
	}
	*cp = v;
	return n;
}

size_t kf__utf8_put(char *out, uint32_t cp)
{
	unsigned char *o = (unsigned char *)out;
	if (!is_scalar(cp))
		cp = 0xFFFD;
	if (cp < 0x80) {
		o[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (unsigned char)(0xC0 | cp >> 6);
		o[1] = (unsigned char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (unsigned char)(0xE0 | cp >> 12);
		o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
		o[2] = (unsigned char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (unsigned char)(0xF0 | cp >> 18);
	o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
	o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
	o[3] = (unsigned char)(0x80 | (cp & 0x3F));
	return 4;
}

static bool is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7F && cp < 0xA0);
}

void kf__add_char_for_humans(struct kf_strbuf *sb, uint32_t cp)
{
	if (!is_scalar(cp) || is_control(cp) || cp == ' ') {
		kf_strbuf_addf(sb, "U+%04X", cp);
		return;
	}
	char u[4];
	kf_strbuf_add(sb, u, kf__utf8_put(u, cp));
}

void kf__corpus_set_name(struct kf_corpus *corpus, const char *name, size_t len)
{
	const unsigned char *s = (const unsigned char *)name;
	size_t out = 0, cap = sizeof corpus->name - 1;
	memset(corpus->name, 0, sizeof corpus->name);
	while (len) {
		uint32_t cp;
		int n = kf__utf8_decode(s, len, &cp);
		size_t used = n > 0 ? (size_t)n : n < 0 ? (size_t)-n : len;
		bool bad = n <= 0 || is_control(cp);
		size_t w = bad ? 1 : used;
		if (out + w > cap)
			break;
		if (bad)
			corpus->name[out] = '?';
		else
			memcpy(corpus->name + out, s, used);
		out += w;
		s += used;
		len -= used;
	}
}

void kf__corpus_name_from_path(struct kf_corpus *corpus, const char *path)
{
	if (!strcmp(path, "-")) {
		kf__corpus_set_name(corpus, "stdin", 5);
		return;
	}
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	const char *dot = strrchr(base, '.');
	size_t len = dot && dot != base ? (size_t)(dot - base) : strlen(base);
	if (!len)
		kf__corpus_set_name(corpus, "corpus", 6);
	else
		kf__corpus_set_name(corpus, base, len);
}

void kf__corpus_fail(struct kf_strbuf *why, const char *origin, const char *fmt, ...)
{
	if (!why)
		return;
	va_list ap;
	va_start(ap, fmt);
	kf_strbuf_addf(why, "%s: ", origin);
	kf_strbuf_vaddf(why, fmt, ap);
	va_end(ap);
}

/* ---- files --------------------------------------------------------------- */

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14; older kernels say EINVAL */
#endif

/* Buffers at least this large are populated before read(). */
#define POPULATE_MIN ((size_t)64 * 1024)

void kf__filebuf_release(struct kf__filebuf *buf)
{
	free(buf->data);
	buf->data = NULL;
	buf->len = 0;
}

/* Room for `size` bytes and a NUL. A fresh large buffer would take one page
 * fault per 4 KiB inside read() (15 us each on the VMs measured: more than
 * the rest of a .kfc load); MADV_POPULATE_WRITE maps them in one system call
 * and costs nothing when the pages are already there (a reused heap). */
static bool buf_alloc(struct kf__filebuf *buf, size_t size)
{
	buf->data = malloc(size + 1);
	if (!buf->data)
		return false;
	if (size + 1 >= POPULATE_MIN) {
		uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
		uintptr_t start = ((uintptr_t)buf->data + page - 1) & ~(page - 1);
		uintptr_t end = ((uintptr_t)buf->data + size + 1) & ~(page - 1);
		if (end > start)
			(void)madvise((void *)start, end - start, MADV_POPULATE_WRITE);
	}
	return true;
}

static enum kf_err read_fail(struct kf__filebuf *buf, const char *path, struct kf_strbuf *why)
{
	kf__corpus_fail(why, path, "read failed: %s", strerror(errno));
	kf__filebuf_release(buf);
	return KF_EIO;
}

/* A regular file of known size: one read() in the common case. */
static enum kf_err read_sized(int fd, const char *path, size_t size, struct kf__filebuf *buf,
			      struct kf_strbuf *why)
{
	if (!buf_alloc(buf, size))
		return KF_ENOMEM;
	size_t used = 0;
	while (used < size) {
		ssize_t n = read(fd, buf->data + used, size - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return read_fail(buf, path, why);
		if (n == 0)
			break; /* the file shrank meanwhile: take what is there */
		used += (size_t)n;
	}
	buf->data[used] = '\0';
	buf->len = used;
	return KF_OK;
}

/* A pipe or terminal: grow as data comes. */
static enum kf_err read_stream(int fd, const char *path, struct kf__filebuf *buf,
			       struct kf_strbuf *why)
{
	size_t cap = 64 * 1024, used = 0;
	*buf = (struct kf__filebuf){ .data = malloc(cap) };
	if (!buf->data)
		return KF_ENOMEM;
	for (;;) {
		if (used + 1 == cap && cap > KF__CORPUS_MAX_FILE) {
			kf__corpus_fail(why, path, "larger than %zu MiB", KF__CORPUS_MAX_FILE >> 20);
			kf__filebuf_release(buf);
			return KF_ECORPUS;
		}
		if (used + 1 == cap) {
			char *bigger = realloc(buf->data, cap * 2);
			if (!bigger) {
				kf__filebuf_release(buf);
				return KF_ENOMEM;
			}
			buf->data = bigger, cap *= 2;
		}
		ssize_t n = read(fd, buf->data + used, cap - 1 - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return read_fail(buf, path, why);
		if (n == 0)
			break;
		used += (size_t)n;
	}
	buf->data[used] = '\0';
	buf->len = used;
	return KF_OK;
}

enum kf_err kf__read_file(const char *path, struct kf__filebuf *buf, struct kf_strbuf *why)
{
	bool is_stdin = !strcmp(path, "-");
	int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	*buf = (struct kf__filebuf){ NULL, 0 };
	if (fd < 0) {
		kf__corpus_fail(why, path, "cannot open: %s", strerror(errno));
		return KF_EIO;
	}
	struct stat st;
	enum kf_err err;
	bool have_stat = fstat(fd, &st) == 0;
	if (have_stat && S_ISDIR(st.st_mode)) {
		kf__corpus_fail(why, path, "is a directory");
		err = KF_EIO;
	} else if (have_stat && S_ISREG(st.st_mode) && (uint64_t)st.st_size > KF__CORPUS_MAX_FILE) {
		kf__corpus_fail(why, path, "larger than %zu MiB", KF__CORPUS_MAX_FILE >> 20);
		err = KF_ECORPUS;
	} else if (have_stat && S_ISREG(st.st_mode)) {
		err = read_sized(fd, path, (size_t)st.st_size, buf, why);
	} else {
		err = read_stream(fd, path, buf, why);
	}
	if (!is_stdin)
		close(fd);
	return err;
}

/* ---- loading by content -------------------------------------------------- */

/* True when the first byte after whitespace (and a byte order mark) opens
 * an object: then a JSON error message is the helpful one. */
static bool looks_like_json(const char *s, size_t len)
{
	size_t i = len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3) ? 3 : 0;
	while (i < len && strchr(" \t\r\n", s[i]) && s[i])
		i++;
	return i < len && s[i] == '{';
}

enum kf_err kf_corpus_load(const char *path, struct kf_corpus **out, struct kf_strbuf *why)
{
	struct kf__filebuf buf;
	*out = NULL;
	enum kf_err err = kf__read_file(path, &buf, why);
	if (err)
		return err;
	if (buf.len >= 8 && !memcmp(buf.data, KF_CORPUS_FILE_MAGIC, 8))
		return kf__corpus_from_kfc(&buf, path, out, why);
	if (!looks_like_json(buf.data, buf.len)) {
		kf__corpus_fail(why, path,
				"neither a .kfc corpus nor Oxeylyzer JSON (make one from text with "
				"'keyforge-layout corpus build')");
		kf__filebuf_release(&buf);
		return KF_ECORPUS;
	}
	err = kf__corpus_from_json(buf.data, buf.len, path, path, out, why);
	kf__filebuf_release(&buf);
	return err;
}
