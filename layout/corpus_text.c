/*
 * corpus_text.c — building a corpus from raw UTF-8 text.
 *
 * The rules (docs/corpus.md has them with examples), chosen to produce the
 * same kind of data as Oxeylyzer's files so that statistics compare:
 *
 * 1. The text is decoded as UTF-8. Each maximal invalid subsequence (Unicode
 *    §3.9) counts as one word break and is counted in invalid_utf8.
 * 2. Each codepoint becomes a word break, nothing, or one to three symbols:
 *    - whitespace and control characters (space, tab, newlines, NBSP, the
 *      Unicode spaces, C0/C1 controls) are word breaks;
 *    - soft hyphen, zero-width (non-)joiners/space, word joiner and BOM are
 *      dropped;
 *    - typographic punctuation is normalised: ‘ ’ ‚ ‛ ′ -> ', “ ” „ ‟ ″ « » -> ",
 *      the dashes ‐ ‑ ‒ – — ― and minus − -> -, … -> ... ;
 *    - an uppercase letter (ASCII, Latin-1, Latin Extended-A, basic Greek and
 *      Cyrillic) becomes the shift symbol ⇑ (U+21D1) followed by its lowercase
 *      letter, one ⇑ per letter, as in Oxeylyzer's data;
 *    - a shifted symbol of the US layout becomes ⇑ followed by its unshifted
 *      key: ~!@#$%^&*()_+{}|:"<>? -> ⇑ followed by `1234567890-=[]\;',./ ;
 *    - everything else (lowercase letters, digits, other symbols, letters of
 *      other scripts, and a literal ⇑) is a symbol as it is.
 * 3. Over the stream of symbols and breaks: every symbol is a character; two
 *    adjacent symbols are a bigram; three adjacent symbols are a trigram; a
 *    skip-1 gram is symbols x and z in "x y z" where y is a symbol or exactly
 *    one break (Oxeylyzer counts "e t" in "the tea" as a skipgram: the space
 *    is one keystroke between them; shai.json's skipgram_total exceeds its
 *    bigram_total only because of this). Nothing spans two breaks, a file
 *    boundary or a document break.
 * 4. The totals are the number of all characters, bigrams, skip-1 grams and
 *    trigrams counted, so percentages keep symbols that are not on a layout
 *    (digits, ⇑, ...) in the denominator.
 */
#include "layout/corpus.h"
#include "layout/corpus_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SHIFT KF_CORPUS_SHIFT
#define BMP 0x10000u
#define READ_CHUNK (1u << 20)

enum { GRAM_BI, GRAM_SKIP, GRAM_TRI, NGRAMS };

struct kf_corpus_builder {
	uint32_t *bmp_pages[BMP / 256]; /* codepoint -> temp id + 1 (0 = unseen), in
					 * pages of 256 made on first use */
	struct kf__u64map astral; /* codepoints >= BMP -> temp id + 1 */
	uint32_t *cps;            /* temp id -> codepoint (first-seen order) */
	uint64_t *counts;         /* temp id -> occurrences */
	uint32_t nchars, cap;
	struct kf__u64map grams[NGRAMS]; /* packed temp ids -> occurrences */
	uint64_t totals[1 + NGRAMS];     /* chars, bigrams, skipgrams, trigrams */
	int64_t t1, t2;           /* last two tokens: temp id, or -1 for a break */
	unsigned char pend[4];    /* a UTF-8 sequence split across add() calls */
	size_t npend;
	struct kf_corpus_build_stats stats;
	bool broken;              /* an allocation failed */
	/* ASCII fast path: what each byte < 0x80 becomes. */
	uint8_t ascii_kind[128];  /* MAP_BREAK, MAP_ONE, MAP_SHIFTED */
	uint8_t ascii_sym[128];
};

/* ---- codepoint -> symbols -------------------------------------------------- */

enum map_kind { MAP_BREAK, MAP_ONE, MAP_SHIFTED, MAP_DROP, MAP_SEQ };

static const char us_shifted[] = "~!@#$%^&*()_+{}|:\"<>?";
static const char us_unshifted[] = "`1234567890-=[]\\;',./";

/* Non-ASCII codepoints that are not symbols as they are; sorted, disjoint. */
static const struct special {
	uint32_t lo, hi;
	enum map_kind kind;
	const char *seq; /* MAP_SEQ: the ASCII text it becomes (then mapped) */
} specials[] = {
	{ 0x0080, 0x00A0, MAP_BREAK, NULL }, /* C1 controls, NEL, no-break space */
	{ 0x00AB, 0x00AB, MAP_SEQ, "\"" },   /* « */
	{ 0x00AD, 0x00AD, MAP_DROP, NULL },  /* soft hyphen */
	{ 0x00BB, 0x00BB, MAP_SEQ, "\"" },   /* » */
	{ 0x1680, 0x1680, MAP_BREAK, NULL },
	{ 0x2000, 0x200A, MAP_BREAK, NULL }, /* en quad .. hair space */
	{ 0x200B, 0x200D, MAP_DROP, NULL },  /* zero-width space, (non-)joiner */
	{ 0x2010, 0x2015, MAP_SEQ, "-" },    /* hyphen .. horizontal bar */
	{ 0x2018, 0x201B, MAP_SEQ, "'" },
	{ 0x201C, 0x201F, MAP_SEQ, "\"" },
	{ 0x2026, 0x2026, MAP_SEQ, "..." },
	{ 0x2028, 0x2029, MAP_BREAK, NULL }, /* line and paragraph separators */
	{ 0x202F, 0x202F, MAP_BREAK, NULL },
	{ 0x2032, 0x2032, MAP_SEQ, "'" },
	{ 0x2033, 0x2033, MAP_SEQ, "\"" },
	{ 0x205F, 0x205F, MAP_BREAK, NULL },
	{ 0x2060, 0x2060, MAP_DROP, NULL },  /* word joiner */
	{ 0x2212, 0x2212, MAP_SEQ, "-" },
	{ 0x3000, 0x3000, MAP_BREAK, NULL },
	{ 0xFEFF, 0xFEFF, MAP_DROP, NULL },  /* byte order mark */
};

static const struct special *find_special(uint32_t cp)
{
	size_t lo = 0, hi = sizeof specials / sizeof specials[0];
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (cp < specials[mid].lo)
			hi = mid;
		else if (cp > specials[mid].hi)
			lo = mid + 1;
		else
			return &specials[mid];
	}
	return NULL;
}

/* The lowercase letter of an uppercase one, or 0. */
static uint32_t lower_of(uint32_t cp)
{
	if (cp >= 'A' && cp <= 'Z')
		return cp + 0x20;
	if (cp < 0xC0)
		return 0;
	if (cp <= 0xDE)
		return cp == 0xD7 ? 0 : cp + 0x20; /* Latin-1, but × */
	if (cp == 0x130)
		return 'i'; /* İ */
	if ((cp >= 0x100 && cp <= 0x137) || (cp >= 0x14A && cp <= 0x177))
		return cp % 2 ? 0 : cp + 1; /* Latin Extended-A: upper even */
	if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E))
		return cp % 2 ? cp + 1 : 0; /* ... upper odd */
	if (cp == 0x178)
		return 0xFF; /* Ÿ */
	if (cp >= 0x391 && cp <= 0x3AB)
		return cp == 0x3A2 ? 0 : cp + 0x20; /* Greek */
	if (cp >= 0x400 && cp <= 0x40F)
		return cp + 0x50; /* Cyrillic Ѐ..Џ */
	if (cp >= 0x410 && cp <= 0x42F)
		return cp + 0x20; /* Cyrillic А..Я */
	return 0;
}

static void init_ascii(struct kf_corpus_builder *b)
{
	for (unsigned c = 0; c < 128; c++) {
		b->ascii_kind[c] = c <= ' ' || c == 0x7F ? MAP_BREAK : MAP_ONE;
		b->ascii_sym[c] = (uint8_t)c;
		const char *hit = strchr(us_shifted, (int)c);
		if (c && hit) {
			b->ascii_kind[c] = MAP_SHIFTED;
			b->ascii_sym[c] = (uint8_t)us_unshifted[hit - us_shifted];
		} else if (lower_of(c)) {
			b->ascii_kind[c] = MAP_SHIFTED;
			b->ascii_sym[c] = (uint8_t)lower_of(c);
		}
	}
}

/* ---- counting -------------------------------------------------------------- */

static uint32_t new_char(struct kf_corpus_builder *b, uint32_t cp)
{
	if (b->nchars == b->cap) {
		uint32_t cap = b->cap ? b->cap * 2 : 256;
		uint32_t *cps = realloc(b->cps, cap * sizeof *cps);
		if (cps)
			b->cps = cps;
		uint64_t *counts = cps ? realloc(b->counts, cap * sizeof *counts) : NULL;
		if (!counts) {
			b->broken = true;
			return UINT32_MAX;
		}
		b->counts = counts;
		b->cap = cap;
	}
	b->cps[b->nchars] = cp;
	b->counts[b->nchars] = 0;
	return b->nchars++;
}

static uint32_t char_id(struct kf_corpus_builder *b, uint32_t cp)
{
	if (cp < BMP) {
		uint32_t **page = &b->bmp_pages[cp / 256];
		if (!*page && !(*page = calloc(256, sizeof **page))) {
			b->broken = true;
			return UINT32_MAX;
		}
		uint32_t *slot = &(*page)[cp % 256];
		if (*slot)
			return *slot - 1;
		uint32_t id = new_char(b, cp);
		if (id != UINT32_MAX)
			*slot = id + 1;
		return id;
	}
	bool inserted;
	uint64_t *slot = kf__u64map_upsert(&b->astral, cp, &inserted);
	if (!slot) {
		b->broken = true;
		return UINT32_MAX;
	}
	if (!inserted)
		return (uint32_t)*slot - 1;
	uint32_t id = new_char(b, cp);
	*slot = (uint64_t)id + 1; /* UINT32_MAX + 1 on failure: never read again */
	return id;
}

static inline void bump(struct kf_corpus_builder *b, unsigned gram, uint64_t key)
{
	bool inserted;
	uint64_t *count = kf__u64map_upsert(&b->grams[gram], key, &inserted);
	if (!count) {
		b->broken = true;
		return;
	}
	++*count;
	b->totals[1 + gram]++;
}

static void emit(struct kf_corpus_builder *b, uint32_t cp)
{
	uint32_t id = char_id(b, cp);
	if (id == UINT32_MAX)
		return;
	b->counts[id]++;
	b->totals[0]++;
	if (b->t1 >= 0) {
		bump(b, GRAM_BI, kf__key2((uint64_t)b->t1, id));
		if (b->t2 >= 0)
			bump(b, GRAM_TRI, kf__key3((uint64_t)b->t2, (uint64_t)b->t1, id));
	}
	if (b->t2 >= 0)
		bump(b, GRAM_SKIP, kf__key2((uint64_t)b->t2, id));
	b->t2 = b->t1;
	b->t1 = id;
}

static void word_break(struct kf_corpus_builder *b)
{
	b->t2 = b->t1;
	b->t1 = -1;
}

static void emit_ascii(struct kf_corpus_builder *b, unsigned char c)
{
	switch (b->ascii_kind[c]) {
	case MAP_BREAK:
		word_break(b);
		break;
	case MAP_SHIFTED:
		b->stats.shifted++;
		emit(b, SHIFT);
		emit(b, b->ascii_sym[c]);
		break;
	default:
		emit(b, c);
		break;
	}
}

static void emit_codepoint(struct kf_corpus_builder *b, uint32_t cp)
{
	if (cp < 0x80) {
		emit_ascii(b, (unsigned char)cp);
		return;
	}
	const struct special *sp = find_special(cp);
	uint32_t lower = sp ? 0 : lower_of(cp);
	if (sp && sp->kind == MAP_BREAK) {
		word_break(b);
	} else if (sp && sp->kind == MAP_DROP) {
		b->stats.ignored++;
	} else if (sp) {
		for (const char *s = sp->seq; *s; s++)
			emit_ascii(b, (unsigned char)*s);
	} else if (lower) {
		b->stats.shifted++;
		emit(b, SHIFT);
		emit(b, lower);
	} else {
		emit(b, cp);
	}
}

static void invalid_utf8(struct kf_corpus_builder *b)
{
	b->stats.invalid_utf8++;
	word_break(b);
}

/* Completes a sequence split across calls; returns the bytes of s used. */
static size_t finish_pending(struct kf_corpus_builder *b, const unsigned char *s, size_t len)
{
	unsigned char tmp[8];
	size_t take = len < 4 - b->npend ? len : 4 - b->npend;
	memcpy(tmp, b->pend, b->npend);
	memcpy(tmp + b->npend, s, take);
	uint32_t cp;
	int n = kf__utf8_decode(tmp, b->npend + take, &cp);
	if (n == 0) { /* still a prefix: all of s fits in pend */
		memcpy(b->pend + b->npend, s, take);
		b->npend += take;
		return take;
	}
	/* The pending bytes are a valid prefix, so a failure lies past them. */
	size_t used = (size_t)(n > 0 ? n : -n) - b->npend;
	b->npend = 0;
	if (n > 0)
		emit_codepoint(b, cp);
	else
		invalid_utf8(b);
	return used;
}

enum kf_err kf_corpus_builder_add(struct kf_corpus_builder *b, const void *text, size_t len)
{
	const unsigned char *s = text;
	size_t i = 0;
	if (b->broken)
		return KF_ENOMEM;
	b->stats.bytes += len;
	if (b->npend && len)
		i = finish_pending(b, s, len);
	while (i < len) {
		if (s[i] < 0x80) {
			emit_ascii(b, s[i++]);
			continue;
		}
		uint32_t cp;
		int n = kf__utf8_decode(s + i, len - i, &cp);
		if (n == 0) { /* a prefix at the end: keep it for the next call */
			b->npend = len - i;
			memcpy(b->pend, s + i, b->npend);
			break;
		}
		if (n < 0) {
			invalid_utf8(b);
			i += (size_t)-n;
			continue;
		}
		emit_codepoint(b, cp);
		i += (size_t)n;
	}
	return b->broken ? KF_ENOMEM : KF_OK;
}

void kf_corpus_builder_break(struct kf_corpus_builder *b)
{
	if (b->npend) {
		b->npend = 0;
		invalid_utf8(b); /* the text ended inside a sequence */
	}
	b->t1 = b->t2 = -1;
}

void kf_corpus_builder_stats(const struct kf_corpus_builder *b, struct kf_corpus_build_stats *stats)
{
	*stats = b->stats;
}

/* ---- lifecycle ------------------------------------------------------------- */

struct kf_corpus_builder *kf_corpus_builder_new(void)
{
	struct kf_corpus_builder *b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	b->t1 = b->t2 = -1;
	init_ascii(b);
	bool ok = !kf__u64map_init(&b->astral, 16);
	for (unsigned g = 0; g < NGRAMS && ok; g++)
		ok = !kf__u64map_init(&b->grams[g], 64);
	if (!ok) {
		kf_corpus_builder_free(b);
		return NULL;
	}
	return b;
}

void kf_corpus_builder_free(struct kf_corpus_builder *b)
{
	if (!b)
		return;
	for (size_t p = 0; p < BMP / 256; p++)
		free(b->bmp_pages[p]);
	kf__u64map_release(&b->astral);
	for (unsigned g = 0; g < NGRAMS; g++)
		kf__u64map_release(&b->grams[g]);
	free(b->cps);
	free(b->counts);
	free(b);
}

enum kf_err kf_corpus_builder_add_file(struct kf_corpus_builder *b, const char *path,
				       struct kf_strbuf *why)
{
	bool is_stdin = !strcmp(path, "-");
	int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		kf__corpus_fail(why, path, "cannot open: %s", strerror(errno));
		return KF_EIO;
	}
	char *buf = malloc(READ_CHUNK);
	enum kf_err err = buf ? KF_OK : KF_ENOMEM;
	while (!err) {
		ssize_t n = read(fd, buf, READ_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			kf__corpus_fail(why, path, "read failed: %s", strerror(errno));
			err = KF_EIO;
		} else if (n == 0) {
			break;
		} else {
			err = kf_corpus_builder_add(b, buf, (size_t)n);
		}
	}
	free(buf);
	if (!is_stdin)
		close(fd);
	kf_corpus_builder_break(b);
	return err;
}

/* ---- the corpus ------------------------------------------------------------ */

struct char_rank {
	uint64_t count;
	uint32_t cp, temp_id;
};

static int cmp_rank(const void *pa, const void *pb)
{
	const struct char_rank *a = pa, *b = pb;
	if (a->count != b->count)
		return a->count > b->count ? -1 : 1;
	return (a->cp > b->cp) - (a->cp < b->cp);
}

/* Char ids by descending count, ties by codepoint; perm[temp id] = id. */
static enum kf_err finish_chars(const struct kf_corpus_builder *b, struct kf_corpus *c,
				uint32_t *perm)
{
	struct char_rank *rank = malloc(b->nchars * sizeof *rank);
	c->codepoints = malloc(b->nchars * sizeof *c->codepoints);
	c->chars = malloc(b->nchars * sizeof *c->chars);
	if (!rank || !c->codepoints || !c->chars) {
		free(rank);
		return KF_ENOMEM;
	}
	for (uint32_t i = 0; i < b->nchars; i++)
		rank[i] = (struct char_rank){ b->counts[i], b->cps[i], i };
	qsort(rank, b->nchars, sizeof *rank, cmp_rank);
	c->nchars = b->nchars;
	for (uint32_t id = 0; id < b->nchars; id++) {
		perm[rank[id].temp_id] = id;
		c->codepoints[id] = rank[id].cp;
		c->chars[id] = (double)rank[id].count * 100.0 / (double)b->totals[0];
	}
	free(rank);
	return KF_OK;
}

static enum kf_err finish_grams2(const struct kf_corpus_builder *b, unsigned gram,
				 const uint32_t *perm, struct kf_ngram2 **out, size_t *count)
{
	const struct kf__u64map *map = &b->grams[gram];
	struct kf_ngram2 *g = malloc((map->count + 1) * sizeof *g);
	if (!g)
		return KF_ENOMEM;
	size_t n = 0;
	double total = (double)b->totals[1 + gram];
	for (size_t i = 0; i <= map->mask; i++) {
		uint64_t key = map->keys[i];
		if (key == KF__U64MAP_EMPTY)
			continue;
		g[n].a = perm[key >> 21];
		g[n].b = perm[key & 0x1FFFFF];
		g[n].freq = (double)map->vals[i] * 100.0 / total;
		n++;
	}
	kf__sort_ngram2(g, n);
	*out = g;
	*count = n;
	return KF_OK;
}

static enum kf_err finish_grams3(const struct kf_corpus_builder *b, const uint32_t *perm,
				 struct kf_corpus *c)
{
	const struct kf__u64map *map = &b->grams[GRAM_TRI];
	struct kf_ngram3 *g = calloc(map->count + 1, sizeof *g);
	if (!g)
		return KF_ENOMEM;
	size_t n = 0;
	double total = (double)b->totals[1 + GRAM_TRI];
	for (size_t i = 0; i <= map->mask; i++) {
		uint64_t key = map->keys[i];
		if (key == KF__U64MAP_EMPTY)
			continue;
		g[n].a = perm[key >> 42];
		g[n].b = perm[key >> 21 & 0x1FFFFF];
		g[n].c = perm[key & 0x1FFFFF];
		g[n].freq = (double)map->vals[i] * 100.0 / total;
		n++;
	}
	kf__sort_ngram3(g, n);
	c->trigrams = g;
	c->ntrigrams = n;
	return KF_OK;
}

enum kf_err kf_corpus_builder_finish(struct kf_corpus_builder *b, const char *name,
				     struct kf_corpus **out, struct kf_strbuf *why)
{
	*out = NULL;
	if (b->broken)
		return KF_ENOMEM;
	const char *origin = name && *name ? name : "text";
	if (!b->nchars) {
		kf__corpus_fail(why, origin, "the text has no characters to count");
		return KF_ECORPUS;
	}
	struct kf_corpus *c = calloc(1, sizeof *c);
	uint32_t *perm = malloc(b->nchars * sizeof *perm);
	enum kf_err err = c && perm ? KF_OK : KF_ENOMEM;
	if (!err) {
		kf__corpus_set_name(c, origin, strlen(origin));
		c->char_total = b->totals[0];
		c->bigram_total = b->totals[1 + GRAM_BI];
		c->skipgram_total = b->totals[1 + GRAM_SKIP];
		c->trigram_total = b->totals[1 + GRAM_TRI];
		err = finish_chars(b, c, perm);
	}
	if (!err)
		err = finish_grams2(b, GRAM_BI, perm, &c->bigrams, &c->nbigrams);
	if (!err)
		err = finish_grams2(b, GRAM_SKIP, perm, &c->skipgrams, &c->nskipgrams);
	if (!err)
		err = finish_grams3(b, perm, c);
	if (!err)
		err = kf__corpus_check(c, origin, why);
	free(perm);
	if (err) {
		kf_corpus_free(c);
		return err;
	}
	*out = c;
	return KF_OK;
}

enum kf_err kf_corpus_build_mem(const void *text, size_t len, const char *name,
				struct kf_corpus **out, struct kf_strbuf *why)
{
	*out = NULL;
	struct kf_corpus_builder *b = kf_corpus_builder_new();
	if (!b)
		return KF_ENOMEM;
	enum kf_err err = kf_corpus_builder_add(b, text, len);
	kf_corpus_builder_break(b);
	if (!err)
		err = kf_corpus_builder_finish(b, name, out, why);
	kf_corpus_builder_free(b);
	return err;
}

enum kf_err kf_corpus_build_text(const char *const *paths, size_t npaths, const char *name,
				 struct kf_corpus **out, struct kf_strbuf *why)
{
	*out = NULL;
	struct kf_corpus_builder *b = kf_corpus_builder_new();
	if (!b)
		return KF_ENOMEM;
	enum kf_err err = KF_OK;
	for (size_t i = 0; i < npaths && !err; i++)
		err = kf_corpus_builder_add_file(b, paths[i], why);
	struct kf_corpus tmp = { .nchars = 0 };
	if (!name && npaths) {
		kf__corpus_name_from_path(&tmp, paths[0]);
		name = tmp.name;
	}
	if (!err)
		err = kf_corpus_builder_finish(b, name, out, why);
	kf_corpus_builder_free(b);
	return err;
}
