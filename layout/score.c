/*
 * score.c — precomputed cost tables, full score and swap delta.
 *
 * Why it is fast: every term of the cost is a table lookup that depends on
 * where characters sit, so a swap of positions p and q only touches
 *  - the per-position terms of the two characters (finger and home-row
 *    weights) and the hand balance,
 *  - the bigram terms of the position pairs that have a relation (same
 *    finger, LSB, scissor) and involve p or q: each position has a short
 *    partner list, and pair_cost[type][a][b] already folds the weights with
 *    the symmetric bigram and skip-gram frequencies of characters a and b,
 *  - the trigram terms of the scored trigrams that contain one of the two
 *    characters (per-character lists), weighted through a 32×32×32 table
 *    of the class weight of any three positions. Each list is evaluated as
 *    if its character alone moved, and the trigrams holding both characters
 *    are corrected from a per-pair list: no branch per trigram. A state
 *    caches each trigram's table index, so the delta reads one index
 *    instead of three positions.
 * All table entries are integers (score.h explains the exactness).
 */
#include "layout/score.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "layout/stats.h"

#define FIXED 1e6         /* fixed-point steps per percent, and per unit weight */
#define PER_UNIT 1e12     /* 1 / KF_SCORE_UNIT = FIXED · FIXED */
#define NPOS KF_LAYOUT_KEYS
#define STRIDE 32         /* row stride of the char×char and class tables */
#define MAX_TYPES 8       /* distinct non-zero enum kf_pair_flag sets */

/* A scored trigram: its characters and frequency. */
struct tri {
	uint8_t c[3];  /* char indexes */
	uint8_t pad;
	int32_t freq;  /* FIXED per percent */
};

/* A trigram in a per-character or per-pair list: id_roles = id << 8 | roles,
 * where id indexes scorer->tri and roles has bit k set when the list's
 * character is c[k] (per pair: bits 0-2 for the lower char index, 3-5 for
 * the higher one). */
struct tri_ref {
	uint32_t id_roles;
	int32_t freq;
};

struct kf_scorer {
	struct kf_board board;
	struct kf_weights weights;
	struct kf_layout charset;

	int64_t char_freq[NPOS];  /* FIXED per percent of the layout's characters */
	int64_t char_total;       /* Σ char_freq */
	int64_t pos_weight[NPOS]; /* FIXED per unit: finger + home-row weight */
	uint8_t left[NPOS];       /* position is on the left hand */
	int64_t hand_weight;      /* FIXED */

	/* bigram relations: unordered pairs, and per position its partners */
	uint32_t npairs;
	uint8_t pair_p[NPOS * NPOS / 2], pair_q[NPOS * NPOS / 2], pair_type[NPOS * NPOS / 2];
	uint8_t npartners[NPOS];
	uint8_t partner[NPOS][NPOS];
	uint8_t partner_type[NPOS][NPOS];
	uint32_t ntypes;
	int64_t pair_cost[MAX_TYPES][STRIDE * STRIDE]; /* KF_SCORE_UNIT, symmetric */

	/* trigrams */
	uint32_t ntri;
	struct tri *tri;                 /* [ntri], most frequent first */
	uint32_t tri_start[NPOS + 1];    /* by_char[tri_start[c] .. tri_start[c+1]) */
	struct tri_ref *by_char;         /* trigrams containing char c, once each */
	uint32_t pair_start[NPOS * NPOS + 1]; /* by_pair[..] for chars c < d at c*30+d */
	struct tri_ref *by_pair;         /* trigrams containing both c and d */
	bool cached;                     /* states cache the class-table indexes */
	/* FIXED weight of the class of positions (p1, p2, p3), one load away:
	 * |weight| ≤ 2 · KF_WEIGHT_MAX · FIXED fits in int32 */
	int32_t tri_cost[STRIDE * STRIDE * STRIDE];
};

/* ---- weights ---------------------------------------------------------- */

#define W(key, field) { key, offsetof(struct kf_weights, field) }

static const struct weight_desc {
	const char *key;
	size_t offset;
} weight_descs[] = {
	W("sfb", sfb), W("sfs", sfs), W("lsb", lsb), W("scissors", scissors),
	W("alternate", alternate), W("alt_sfs", alt_sfs), W("inroll", inroll),
	W("outroll", outroll), W("onehand", onehand), W("redirect", redirect),
	W("bad_redirect", bad_redirect), W("sfb_trigram", sfb_trigram), W("sft", sft),
	W("finger_lp", finger[KF_FINGER_LP]), W("finger_lr", finger[KF_FINGER_LR]),
	W("finger_lm", finger[KF_FINGER_LM]), W("finger_li", finger[KF_FINGER_LI]),
	W("finger_ri", finger[KF_FINGER_RI]), W("finger_rm", finger[KF_FINGER_RM]),
	W("finger_rr", finger[KF_FINGER_RR]), W("finger_rp", finger[KF_FINGER_RP]),
	W("home_row", home_row), W("hand_balance", hand_balance),
};

#define NWEIGHTS (sizeof(weight_descs) / sizeof(weight_descs[0]))

void kf_weights_default(struct kf_weights *w)
{
	static const double finger[KF_FINGER_COUNT] = { 1.0, 0.5, 0.1, 0.0, 0.0, 0.1, 0.5, 1.0 };

	memset(w, 0, sizeof(*w));
	w->sfb = 10.0;
	w->sfs = 3.0;
	w->lsb = 2.0;
	w->scissors = 4.0;
	w->alternate = -0.3;
	w->alt_sfs = 0.0;
	w->inroll = -0.6;
	w->outroll = -0.4;
	w->onehand = -0.2;
	w->redirect = 1.0;
	w->bad_redirect = 2.0;
	w->sfb_trigram = 0.0;
	w->sft = 0.0;
	memcpy(w->finger, finger, sizeof(finger));
	w->home_row = -0.3;
	w->hand_balance = 0.3;
	w->trigrams = KF_TRIGRAMS_DEFAULT;
}

static enum kf_err set_weight(struct kf_weights *w, const char *key, size_t keylen,
			      const char *value, size_t vallen, struct kf_strbuf *why)
{
	char buf[64], *end;
	double v;

	if (vallen == 0 || vallen >= sizeof(buf))
		goto bad_value;
	memcpy(buf, value, vallen);
	buf[vallen] = '\0';
	v = strtod(buf, &end);
	if (end != buf + vallen || !isfinite(v))
		goto bad_value;
	if (keylen == 8 && !memcmp(key, "trigrams", 8)) {
		if (v < 0 || v > KF_TRIGRAMS_MAX || v != floor(v))
			goto bad_value;
		w->trigrams = (uint32_t)v;
		return KF_OK;
	}
	for (size_t i = 0; i < NWEIGHTS; i++) {
		if (strlen(weight_descs[i].key) == keylen &&
		    !memcmp(weight_descs[i].key, key, keylen)) {
			if (fabs(v) > KF_WEIGHT_MAX)
				goto bad_value;
			*(double *)((char *)w + weight_descs[i].offset) = v;
			return KF_OK;
		}
	}
	if (why)
		kf_strbuf_addf(why, "unknown weight '%.*s' (see docs/layout.md for the names)",
			       (int)keylen, key);
	return KF_EWEIGHTS;
bad_value:
	if (why)
		kf_strbuf_addf(why, "weight '%.*s' has value '%.*s'; expected a number between "
			       "-%g and %g (trigrams: an integer 0..%d)", (int)keylen, key,
			       (int)vallen, value, KF_WEIGHT_MAX, KF_WEIGHT_MAX, KF_TRIGRAMS_MAX);
	return KF_EWEIGHTS;
}

static const char *skip_ws(const char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	return s;
}

static enum kf_err json_syntax(struct kf_strbuf *why, const char *text, const char *at)
{
	if (why)
		kf_strbuf_addf(why, "weights JSON: syntax error at byte %d (a flat object of "
			       "numbers is expected)", (int)(at - text));
	return KF_EWEIGHTS;
}

static enum kf_err parse_json(struct kf_weights *w, const char *text, struct kf_strbuf *why)
{
	const char *s = skip_ws(text) + 1; /* past '{' */

	s = skip_ws(s);
	if (*s == '}')
		return *skip_ws(s + 1) ? json_syntax(why, text, s + 1) : KF_OK;
	for (;;) {
		const char *key, *val;
		size_t keylen, vallen;
		enum kf_err err;

		if (*s != '"')
			return json_syntax(why, text, s);
		key = ++s;
		while (*s && *s != '"' && *s != '\\')
			s++;
		if (*s != '"')
			return json_syntax(why, text, s);
		keylen = (size_t)(s - key);
		s = skip_ws(s + 1);
		if (*s != ':')
			return json_syntax(why, text, s);
		val = s = skip_ws(s + 1);
		while (*s && strchr("+-.0123456789eE", *s))
			s++;
		vallen = (size_t)(s - val);
		err = set_weight(w, key, keylen, val, vallen, why);
		if (err)
			return err;
		s = skip_ws(s);
		if (*s == '}')
			return *skip_ws(s + 1) ? json_syntax(why, text, s + 1) : KF_OK;
		if (*s != ',')
			return json_syntax(why, text, s);
		s = skip_ws(s + 1);
	}
}

static void trim(const char **start, const char **end)
{
	while (*start < *end && (**start == ' ' || **start == '\t'))
		(*start)++;
	while (*end > *start && ((*end)[-1] == ' ' || (*end)[-1] == '\t' || (*end)[-1] == '\r'))
		(*end)--;
}

static enum kf_err parse_lines(struct kf_weights *w, const char *text, struct kf_strbuf *why)
{
	int lineno = 0;

	for (const char *line = text; *line;) {
		const char *eol = strchr(line, '\n'), *end, *eq, *hash;
		const char *next;
		enum kf_err err;

		lineno++;
		end = eol ? eol : line + strlen(line);
		next = eol ? eol + 1 : end;
		hash = memchr(line, '#', (size_t)(end - line));
		if (hash)
			end = hash;
		trim(&line, &end);
		if (line == end) {
			line = next;
			continue;
		}
		eq = memchr(line, '=', (size_t)(end - line));
		if (!eq) {
			if (why)
				kf_strbuf_addf(why, "weights line %d: expected 'name = value'", lineno);
			return KF_EWEIGHTS;
		}
		{
			const char *kend = eq, *vstart = eq + 1;

			trim(&line, &kend);
			trim(&vstart, &end);
			err = set_weight(w, line, (size_t)(kend - line), vstart,
					 (size_t)(end - vstart), why);
		}
		if (err) {
			if (why)
				kf_strbuf_addf(why, " (line %d)", lineno);
			return err;
		}
		line = next;
	}
	return KF_OK;
}

enum kf_err kf_weights_parse(struct kf_weights *weights, const char *text, struct kf_strbuf *why)
{
	if (*skip_ws(text) == '{')
		return parse_json(weights, text, why);
	return parse_lines(weights, text, why);
}

enum kf_err kf_weights_load(struct kf_weights *weights, const char *path, struct kf_strbuf *why)
{
	struct kf_strbuf text = KF_STRBUF_INIT;
	char chunk[4096];
	size_t n;
	enum kf_err err;
	FILE *f = fopen(path, "r");

	if (!f) {
		if (why)
			kf_strbuf_addf(why, "cannot read weights file '%s'", path);
		return KF_EIO;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		kf_strbuf_add(&text, chunk, n);
	err = ferror(f) ? KF_EIO : text.oom ? KF_ENOMEM : KF_OK;
	fclose(f);
	if (err == KF_OK && memchr(text.buf, '\0', text.len)) {
		err = KF_EWEIGHTS;
		if (why)
			kf_strbuf_addf(why, "weights file '%s' is not text", path);
	} else if (err == KF_OK) {
		err = kf_weights_parse(weights, text.buf, why);
		if (err && why)
			kf_strbuf_addf(why, " in '%s'", path);
	} else if (why) {
		kf_strbuf_addf(why, "cannot read weights file '%s'", path);
	}
	kf_strbuf_release(&text);
	return err;
}

static double weight_at(const struct kf_weights *weights, size_t i)
{
	return *(const double *)((const char *)weights + weight_descs[i].offset);
}

bool kf_weights_equal(const struct kf_weights *a, const struct kf_weights *b)
{
	for (size_t i = 0; i < NWEIGHTS; i++) {
		if (weight_at(a, i) != weight_at(b, i))
			return false;
	}
	return a->trigrams == b->trigrams;
}

void kf_weights_add_json(const struct kf_weights *weights, struct kf_strbuf *sb)
{
	kf_strbuf_addch(sb, '{');
	for (size_t i = 0; i < NWEIGHTS; i++) {
		kf_strbuf_addf(sb, "\"%s\":", weight_descs[i].key);
		kf_json_add_double(sb, weight_at(weights, i));
		kf_strbuf_addch(sb, ',');
	}
	kf_strbuf_addf(sb, "\"trigrams\":%u}", weights->trigrams);
}

/* ---- building the tables --------------------------------------------- */

static int64_t fixed(double v)
{
	return (int64_t)llround(v * FIXED);
}

static double class_weight(const struct kf_weights *w, enum kf_trigram_class cls)
{
	switch (cls) {
	case KF_TRI_SFT: return w->sft;
	case KF_TRI_SFB: return w->sfb_trigram;
	case KF_TRI_ALTERNATE: return w->alternate;
	case KF_TRI_ALT_SFS: return w->alt_sfs;
	case KF_TRI_INROLL: return w->inroll;
	case KF_TRI_OUTROLL: return w->outroll;
	case KF_TRI_ONEHAND: return w->onehand;
	case KF_TRI_REDIRECT: return w->redirect;
	case KF_TRI_BAD_REDIRECT: return w->redirect + w->bad_redirect;
	default: return 0.0;
	}
}

/* Weight of a bigram (w2) and of a skip-1 gram (ws) on a related pair. */
static void pair_weights(const struct kf_weights *w, unsigned flags, double *w2, double *ws)
{
	*w2 = (flags & KF_PAIR_SFB ? w->sfb : 0) + (flags & KF_PAIR_LSB ? w->lsb : 0) +
	      (flags & KF_PAIR_SCISSOR ? w->scissors : 0);
	*ws = flags & KF_PAIR_SFB ? w->sfs : 0;
}

static void build_chars(struct kf_scorer *s, const struct kf_corpus *corpus,
			const int32_t *id_of_char)
{
	double freq[NPOS], total = 0;

	for (int c = 0; c < NPOS; c++) {
		freq[c] = id_of_char[c] >= 0 ? corpus->chars[id_of_char[c]] : 0.0;
		total += freq[c];
	}
	s->char_total = 0;
	for (int c = 0; c < NPOS; c++) {
		s->char_freq[c] = total > 0 ? fixed(freq[c] * 100.0 / total) : 0;
		s->char_total += s->char_freq[c];
	}
	for (int p = 0; p < NPOS; p++) {
		double w = s->weights.finger[s->board.finger[p]];

		if (s->board.row[p] == KF_BOARD_HOME_ROW)
			w += s->weights.home_row;
		s->pos_weight[p] = fixed(w);
		s->left[p] = kf_finger_hand(s->board.finger[p]) == KF_HAND_LEFT;
	}
	s->hand_weight = fixed(s->weights.hand_balance);
}

/* freq[c][d] of bigrams (or skip-grams) of two layout characters. */
static void gather_pairs(const struct kf_ngram2 *grams, size_t n, const int8_t *char_of_id,
			 uint32_t nchars, double freq[NPOS][NPOS])
{
	memset(freq, 0, sizeof(double) * NPOS * NPOS);
	for (size_t i = 0; i < n; i++) {
		if (grams[i].a >= nchars || grams[i].b >= nchars)
			continue;
		int c = char_of_id[grams[i].a], d = char_of_id[grams[i].b];

		if (c >= 0 && d >= 0)
			freq[c][d] += grams[i].freq;
	}
}

static int type_of_flags(struct kf_scorer *s, unsigned flags, uint8_t *type_ids)
{
	if (type_ids[flags] == 0xff)
		type_ids[flags] = (uint8_t)s->ntypes++;
	return type_ids[flags];
}

static enum kf_err build_bigrams(struct kf_scorer *s, const struct kf_corpus *corpus,
				 const int8_t *char_of_id)
{
	double (*big)[NPOS] = malloc(sizeof(double) * NPOS * NPOS * 2);
	double (*skip)[NPOS];
	uint8_t type_ids[MAX_TYPES];
	unsigned type_flags[MAX_TYPES];

	if (!big)
		return KF_ENOMEM;
	skip = big + NPOS;
	gather_pairs(corpus->bigrams, corpus->nbigrams, char_of_id, corpus->nchars, big);
	gather_pairs(corpus->skipgrams, corpus->nskipgrams, char_of_id, corpus->nchars, skip);
	memset(type_ids, 0xff, sizeof(type_ids));
	for (int p = 0; p < NPOS; p++) {
		for (int q = p + 1; q < NPOS; q++) {
			unsigned flags = kf_pair_flags(&s->board, p, q);
			double w2, ws;
			int t;

			pair_weights(&s->weights, flags, &w2, &ws);
			if (!flags || (w2 == 0 && ws == 0))
				continue;
			t = type_of_flags(s, flags, type_ids);
			type_flags[t] = flags;
			s->pair_p[s->npairs] = (uint8_t)p;
			s->pair_q[s->npairs] = (uint8_t)q;
			s->pair_type[s->npairs++] = (uint8_t)t;
			s->partner[p][s->npartners[p]] = (uint8_t)q;
			s->partner_type[p][s->npartners[p]++] = (uint8_t)t;
			s->partner[q][s->npartners[q]] = (uint8_t)p;
			s->partner_type[q][s->npartners[q]++] = (uint8_t)t;
		}
	}
	for (uint32_t t = 0; t < s->ntypes; t++) {
		double w2, ws;

		pair_weights(&s->weights, type_flags[t], &w2, &ws);
		for (int c = 0; c < NPOS; c++)
			for (int d = 0; d < NPOS; d++)
				s->pair_cost[t][c * STRIDE + d] = llround(
					(w2 * (big[c][d] + big[d][c]) +
					 ws * (skip[c][d] + skip[d][c])) * PER_UNIT);
	}
	free(big);
	return KF_OK;
}

static int tri_cmp(const void *va, const void *vb)
{
	const struct tri *a = va, *b = vb;

	if (a->freq != b->freq)
		return a->freq > b->freq ? -1 : 1;
	return memcmp(a->c, b->c, 3);
}

static unsigned roles_of(const struct tri *t, int c)
{
	return (t->c[0] == c) | (t->c[1] == c) << 1 | (t->c[2] == c) << 2;
}

/* Fills a CSR list: the references of key k (0..nkeys-1) at out[start[k] ..
 * start[k+1]); keys_of() gives the keys of a trigram and their roles. */
static struct tri_ref *build_csr(const struct kf_scorer *s, uint32_t *start, int nkeys,
				 int (*keys_of)(const struct tri *, int *, uint8_t *))
{
	uint32_t *fill = calloc((size_t)nkeys, sizeof(*fill));
	struct tri_ref *out;
	int keys[3];
	uint8_t roles[3];

	if (!fill)
		return NULL;
	memset(start, 0, sizeof(*start) * (size_t)(nkeys + 1));
	for (uint32_t i = 0; i < s->ntri; i++)
		for (int k = keys_of(&s->tri[i], keys, roles) - 1; k >= 0; k--)
			start[keys[k] + 1]++;
	for (int k = 0; k < nkeys; k++)
		start[k + 1] += start[k];
	out = malloc(sizeof(*out) * (start[nkeys] ? start[nkeys] : 1));
	for (uint32_t i = 0; out && i < s->ntri; i++) {
		for (int k = keys_of(&s->tri[i], keys, roles) - 1; k >= 0; k--) {
			struct tri_ref *r = &out[start[keys[k]] + fill[keys[k]]++];

			r->id_roles = i << 8 | roles[k];
			r->freq = s->tri[i].freq;
		}
	}
	free(fill);
	return out;
}

static int chars_of(const struct tri *t, int *keys, uint8_t *roles)
{
	int n = 0;

	for (int c = 0; c < NPOS; c++) {
		unsigned r = roles_of(t, c);

		if (r) {
			keys[n] = c;
			roles[n++] = (uint8_t)r;
		}
	}
	return n;
}

static int pairs_of(const struct tri *t, int *keys, uint8_t *roles)
{
	int chars[3], n = 0;
	uint8_t char_roles[3];
	int nchars = chars_of(t, chars, char_roles);

	for (int i = 0; i < nchars; i++)
		for (int j = i + 1; j < nchars; j++) {
			keys[n] = chars[i] * NPOS + chars[j];
			roles[n++] = (uint8_t)(char_roles[i] | char_roles[j] << 3);
		}
	return n;
}

static enum kf_err build_trigram_lists(struct kf_scorer *s)
{
	s->by_char = build_csr(s, s->tri_start, NPOS, chars_of);
	s->by_pair = build_csr(s, s->pair_start, NPOS * NPOS, pairs_of);
	s->cached = s->ntri <= KF_SCORE_TRIGRAM_CACHE;
	return s->by_char && s->by_pair ? KF_OK : KF_ENOMEM;
}

static enum kf_err build_trigrams(struct kf_scorer *s, const struct kf_corpus *corpus,
				  const int8_t *char_of_id)
{
	size_t n = 0;
	int32_t cost_of_class[KF_TRI_CLASS_COUNT];

	for (int cls = 0; cls < KF_TRI_CLASS_COUNT; cls++)
		cost_of_class[cls] = (int32_t)fixed(class_weight(&s->weights, cls));
	for (int p1 = 0; p1 < NPOS; p1++)
		for (int p2 = 0; p2 < NPOS; p2++)
			for (int p3 = 0; p3 < NPOS; p3++)
				s->tri_cost[(p1 * STRIDE + p2) * STRIDE + p3] = cost_of_class[
					kf_trigram_classify(&s->board, p1, p2, p3)];
	if (s->weights.trigrams == 0)
		return KF_OK;
	s->tri = malloc(sizeof(*s->tri) * (corpus->ntrigrams ? corpus->ntrigrams : 1));
	if (!s->tri)
		return KF_ENOMEM;
	for (size_t i = 0; i < corpus->ntrigrams; i++) {
		const struct kf_ngram3 *g = &corpus->trigrams[i];
		int c1, c2, c3;

		if (g->a >= corpus->nchars || g->b >= corpus->nchars || g->c >= corpus->nchars)
			continue;
		c1 = char_of_id[g->a];
		c2 = char_of_id[g->b];
		c3 = char_of_id[g->c];
		if (c1 < 0 || c2 < 0 || c3 < 0 || !(g->freq > 0))
			continue;
		s->tri[n] = (struct tri){ { (uint8_t)c1, (uint8_t)c2, (uint8_t)c3 }, 0,
					  (int32_t)fixed(g->freq) };
		n++;
	}
	qsort(s->tri, n, sizeof(*s->tri), tri_cmp);
	s->ntri = (uint32_t)(n < s->weights.trigrams ? n : s->weights.trigrams);
	return build_trigram_lists(s);
}

enum kf_err kf_scorer_new(const struct kf_board *board, const struct kf_corpus *corpus,
			  const struct kf_layout *charset, const struct kf_weights *weights,
			  struct kf_scorer **out)
{
	struct kf_scorer *s = calloc(1, sizeof(*s));
	int32_t id_of_char[NPOS];
	int8_t *char_of_id;
	enum kf_err err;

	*out = NULL;
	if (!s)
		return KF_ENOMEM;
	char_of_id = malloc(corpus->nchars ? corpus->nchars : 1);
	if (!char_of_id) {
		free(s);
		return KF_ENOMEM;
	}
	s->board = *board;
	s->weights = *weights;
	s->charset = *charset;
	kf_stats_map_layout(corpus, charset, id_of_char);
	memset(char_of_id, -1, corpus->nchars);
	for (int c = 0; c < NPOS; c++)
		if (id_of_char[c] >= 0)
			char_of_id[id_of_char[c]] = (int8_t)c;
	build_chars(s, corpus, id_of_char);
	err = build_bigrams(s, corpus, char_of_id);
	if (err == KF_OK)
		err = build_trigrams(s, corpus, char_of_id);
	free(char_of_id);
	if (err != KF_OK) {
		kf_scorer_free(s);
		return err;
	}
	*out = s;
	return KF_OK;
}

void kf_scorer_free(struct kf_scorer *scorer)
{
	if (!scorer)
		return;
	free(scorer->tri);
	free(scorer->by_char);
	free(scorer->by_pair);
	free(scorer);
}

const struct kf_weights *kf_scorer_weights(const struct kf_scorer *scorer)
{
	return &scorer->weights;
}

uint32_t kf_scorer_trigram_count(const struct kf_scorer *scorer)
{
	return scorer->ntri;
}

/* ---- scoring ------------------------------------------------------------ */

static int64_t hand_cost(const struct kf_scorer *s, int64_t left)
{
	int64_t off = 2 * left - s->char_total;

	/* |left% − 50| = |2·left − total| / 2, both in FIXED per percent */
	return s->hand_weight * (off < 0 ? -off : off) / 2;
}

static inline int tri_index(int p1, int p2, int p3)
{
	return (p1 * STRIDE + p2) * STRIDE + p3;
}

/* Class-table index of scored trigram `id` where the state has its keys. */
static inline int tri_index_now(const struct kf_scorer *s, const uint8_t *pos, uint32_t id)
{
	const struct tri *t = &s->tri[id];

	return tri_index(pos[t->c[0]], pos[t->c[1]], pos[t->c[2]]);
}

enum kf_err kf_score_state_init(const struct kf_scorer *scorer, const struct kf_layout *layout,
				struct kf_score_state *state)
{
	memset(state->pos, 0xff, sizeof(state->pos));
	for (int p = 0; p < NPOS; p++) {
		int c = kf_layout_find(&scorer->charset, layout->keys[p]);

		if (c < 0 || state->pos[c] != 0xff)
			return KF_EINVAL; /* another character, or one twice */
		state->key[p] = (uint8_t)c;
		state->pos[c] = (uint8_t)p;
	}
	state->left = 0;
	for (int p = 0; p < NPOS; p++)
		state->left += scorer->left[p] ? scorer->char_freq[state->key[p]] : 0;
	for (uint32_t i = 0; scorer->cached && i < scorer->ntri; i++)
		state->tri_idx[i] = (uint16_t)tri_index_now(scorer, state->pos, i);
	state->cost = kf_score_full(scorer, state);
	return KF_OK;
}

void kf_score_state_layout(const struct kf_scorer *scorer, const struct kf_score_state *state,
			   struct kf_layout *out)
{
	for (int p = 0; p < NPOS; p++)
		out->keys[p] = scorer->charset.keys[state->key[p]];
	out->keys[NPOS] = '\0';
}

int64_t kf_score_full(const struct kf_scorer *s, const struct kf_score_state *st)
{
	int64_t cost = 0, left = 0;

	for (int p = 0; p < NPOS; p++) {
		int64_t f = s->char_freq[st->key[p]];

		cost += f * s->pos_weight[p];
		left += s->left[p] ? f : 0;
	}
	cost += hand_cost(s, left);
	for (uint32_t i = 0; i < s->npairs; i++)
		cost += s->pair_cost[s->pair_type[i]][st->key[s->pair_p[i]] * STRIDE +
						      st->key[s->pair_q[i]]];
	for (uint32_t i = 0; i < s->ntri; i++)
		cost += (int64_t)s->tri[i].freq * s->tri_cost[tri_index_now(s, st->pos, i)];
	return cost;
}

static int64_t bigram_delta(const struct kf_scorer *s, const struct kf_score_state *st, int p,
			    int q, int a, int b)
{
	int64_t d = 0;

	for (int k = 0; k < s->npartners[p]; k++) {
		int r = s->partner[p][k];
		const int64_t *row = s->pair_cost[s->partner_type[p][k]];

		if (r == q)
			continue; /* the pair (p, q) keeps its two characters */
		d += row[b * STRIDE + st->key[r]] - row[a * STRIDE + st->key[r]];
	}
	for (int k = 0; k < s->npartners[q]; k++) {
		int r = s->partner[q][k];
		const int64_t *row = s->pair_cost[s->partner_type[q][k]];

		if (r == p)
			continue;
		d += row[a * STRIDE + st->key[r]] - row[b * STRIDE + st->key[r]];
	}
	return d;
}

/* Index offsets of a character that moves by (q - p), for each roles mask. */
static void role_shifts(int p, int q, int shift[8])
{
	static const int stride[8] = { 0, STRIDE * STRIDE, STRIDE, STRIDE * STRIDE + STRIDE,
				       1, STRIDE * STRIDE + 1, STRIDE + 1,
				       STRIDE * STRIDE + STRIDE + 1 };

	for (int r = 0; r < 8; r++)
		shift[r] = (q - p) * stride[r];
}

/* Current class-table index of a trigram: from the state's cache when the
 * scorer has one, else from the key positions. `cached` is a constant at
 * each call site below, so each loop is compiled for one case. */
static inline int current_index(const struct kf_scorer *s, const struct kf_score_state *st,
				uint32_t id, bool cached)
{
	return cached ? st->tri_idx[id] : tri_index_now(s, st->pos, id);
}

/* Cost change of the trigrams in one character's list if that character
 * alone moved: its roles shift the index by shift[roles]. */
static inline int64_t moved_alone(const struct kf_scorer *s, const struct kf_score_state *st,
				  int c, const int *shift, bool cached)
{
	int64_t d = 0;

	for (uint32_t i = s->tri_start[c]; i < s->tri_start[c + 1]; i++) {
		const struct tri_ref *t = &s->by_char[i];
		int idx = current_index(s, st, t->id_roles >> 8, cached);

		d += (int64_t)t->freq *
		     (s->tri_cost[idx + shift[t->id_roles & 7]] - s->tri_cost[idx]);
	}
	return d;
}

/*
 * Trigrams holding a (moving p → q) or b (q → p). Each character's list is
 * evaluated as if it alone moved — no test, no branch — and the trigrams
 * that hold both, counted twice that way, are corrected from the pair list:
 * true change − change(a alone) − change(b alone).
 */
static inline int64_t trigram_delta(const struct kf_scorer *s, const struct kf_score_state *st,
				    int p, int q, int a, int b, bool cached)
{
	int shift_a[8], shift_b[8];
	int lo = a < b ? a : b, hi = a < b ? b : a;
	int64_t d;

	role_shifts(p, q, shift_a);
	role_shifts(q, p, shift_b);
	d = moved_alone(s, st, a, shift_a, cached) + moved_alone(s, st, b, shift_b, cached);
	for (uint32_t i = s->pair_start[lo * NPOS + hi]; i < s->pair_start[lo * NPOS + hi + 1];
	     i++) {
		const struct tri_ref *t = &s->by_pair[i];
		unsigned roles = t->id_roles & 0xff;
		int ra = a == lo ? roles & 7 : roles >> 3;
		int rb = a == lo ? roles >> 3 : roles & 7;
		int idx = current_index(s, st, t->id_roles >> 8, cached);
		int ia = idx + shift_a[ra], ib = idx + shift_b[rb];

		d += (int64_t)t->freq * (s->tri_cost[ia + shift_b[rb]] - s->tri_cost[ia] -
					 s->tri_cost[ib] + s->tri_cost[idx]);
	}
	return d;
}

/* After a swap: the cached index of every trigram holding c moves by
 * shift[roles]; a trigram holding both characters gets both shifts. */
static void shift_cache(const struct kf_scorer *s, struct kf_score_state *st, int c,
			const int *shift)
{
	for (uint32_t i = s->tri_start[c]; i < s->tri_start[c + 1]; i++) {
		const struct tri_ref *t = &s->by_char[i];

		st->tri_idx[t->id_roles >> 8] =
			(uint16_t)(st->tri_idx[t->id_roles >> 8] + shift[t->id_roles & 7]);
	}
}

int64_t kf_score_delta(const struct kf_scorer *s, const struct kf_score_state *st, int p, int q)
{
	int a = st->key[p], b = st->key[q];
	int64_t d = (s->char_freq[a] - s->char_freq[b]) * (s->pos_weight[q] - s->pos_weight[p]);

	if (s->left[p] != s->left[q]) {
		int64_t moved = s->char_freq[b] - s->char_freq[a];
		int64_t left = st->left + (s->left[p] ? moved : -moved);

		d += hand_cost(s, left) - hand_cost(s, st->left);
	}
	d += bigram_delta(s, st, p, q, a, b);
	if (s->cached)
		d += trigram_delta(s, st, p, q, a, b, true);
	else if (s->ntri)
		d += trigram_delta(s, st, p, q, a, b, false);
	return d;
}

void kf_score_apply(const struct kf_scorer *s, struct kf_score_state *st, int p, int q,
		    int64_t delta)
{
	int a = st->key[p], b = st->key[q];

	if (s->left[p] != s->left[q]) {
		int64_t moved = s->char_freq[b] - s->char_freq[a];

		st->left += s->left[p] ? moved : -moved;
	}
	if (s->cached && s->ntri) {
		int shift_a[8], shift_b[8];

		role_shifts(p, q, shift_a);
		role_shifts(q, p, shift_b);
		shift_cache(s, st, a, shift_a);
		shift_cache(s, st, b, shift_b);
	}
	st->key[p] = (uint8_t)b;
	st->key[q] = (uint8_t)a;
	st->pos[a] = (uint8_t)q;
	st->pos[b] = (uint8_t)p;
	st->cost += delta;
}

enum kf_err kf_score_layout(const struct kf_scorer *scorer, const struct kf_layout *layout,
			    double *cost)
{
	struct kf_score_state st;
	enum kf_err err = kf_score_state_init(scorer, layout, &st);

	if (err == KF_OK)
		*cost = kf_score_value(st.cost);
	return err;
}
