/*
 * test_layout_util.c — see test_layout_util.h.
 */
#include "test_layout_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "layout/anneal.h"

void tc_assert_close(double a, double b, const char *expr, const char *file, int line)
{
	if (!(fabs(a - b) <= 1e-9)) {
		print_error("%s:%d: %s = %.12f, expected %.12f\n", file, line, expr, a, b);
		fail();
	}
}

static int id_of(const struct kf_corpus *c, char ch)
{
	for (uint32_t i = 0; i < c->nchars; i++)
		if (c->codepoints[i] == (uint32_t)(unsigned char)ch)
			return (int)i;
	print_error("test corpus: '%c' is not in the chars spec\n", ch);
	fail();
	return -1;
}

/* Calls fn(text of the n-gram, its length, percent) for each spec item. */
static size_t each_item(const char *spec, void (*fn)(void *, const char *, size_t, double),
			void *ctx)
{
	size_t n = 0;

	while (spec && *spec) {
		const char *eq = strchr(spec, '='), *end;
		char *num_end;
		double v;

		while (*spec == ' ')
			spec++;
		if (!*spec)
			break;
		eq = strchr(spec, '=');
		assert_non_null(eq);
		v = strtod(eq + 1, &num_end);
		end = num_end;
		if (fn)
			fn(ctx, spec, (size_t)(eq - spec), v);
		n++;
		spec = end;
	}
	return n;
}

struct fill {
	struct kf_corpus *c;
	size_t n;
	int kind; /* 1 chars, 2 bigrams, 3 skipgrams, 4 trigrams */
};

static void fill_item(void *ctx, const char *gram, size_t len, double v)
{
	struct fill *f = ctx;
	struct kf_corpus *c = f->c;

	switch (f->kind) {
	case 1:
		assert_int_equal(len, 1);
		c->codepoints[f->n] = (unsigned char)gram[0];
		c->chars[f->n] = v;
		break;
	case 2:
	case 3: {
		struct kf_ngram2 *g = f->kind == 2 ? &c->bigrams[f->n] : &c->skipgrams[f->n];

		assert_int_equal(len, 2);
		g->a = (uint32_t)id_of(c, gram[0]);
		g->b = (uint32_t)id_of(c, gram[1]);
		g->freq = v;
		break;
	}
	default:
		assert_int_equal(len, 3);
		c->trigrams[f->n].a = (uint32_t)id_of(c, gram[0]);
		c->trigrams[f->n].b = (uint32_t)id_of(c, gram[1]);
		c->trigrams[f->n].c = (uint32_t)id_of(c, gram[2]);
		c->trigrams[f->n].freq = v;
		break;
	}
	f->n++;
}

struct kf_corpus *tc_corpus(const char *chars, const char *bigrams, const char *skipgrams,
			    const char *trigrams)
{
	struct kf_corpus *c = calloc(1, sizeof(*c));
	struct fill f = { .c = c };

	assert_non_null(c);
	snprintf(c->name, sizeof(c->name), "test");
	c->nchars = (uint32_t)each_item(chars, NULL, NULL);
	c->nbigrams = each_item(bigrams, NULL, NULL);
	c->nskipgrams = each_item(skipgrams, NULL, NULL);
	c->ntrigrams = each_item(trigrams, NULL, NULL);
	c->codepoints = calloc(c->nchars + 1, sizeof(*c->codepoints));
	c->chars = calloc(c->nchars + 1, sizeof(*c->chars));
	c->bigrams = calloc(c->nbigrams + 1, sizeof(*c->bigrams));
	c->skipgrams = calloc(c->nskipgrams + 1, sizeof(*c->skipgrams));
	c->trigrams = calloc(c->ntrigrams + 1, sizeof(*c->trigrams));
	assert_true(c->codepoints && c->chars && c->bigrams && c->skipgrams && c->trigrams);
	f.kind = 1;
	each_item(chars, fill_item, &f);
	f.kind = 2, f.n = 0;
	each_item(bigrams, fill_item, &f);
	f.kind = 3, f.n = 0;
	each_item(skipgrams, fill_item, &f);
	f.kind = 4, f.n = 0;
	each_item(trigrams, fill_item, &f);
	c->char_total = c->bigram_total = c->skipgram_total = c->trigram_total = 1000;
	return c;
}

static void normalise2(struct kf_ngram2 *g, size_t n)
{
	double sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += g[i].freq;
	for (size_t i = 0; i < n; i++)
		g[i].freq *= 100.0 / sum;
}

struct kf_corpus *tc_random_corpus(uint64_t seed, const char *alphabet, size_t ntrigrams)
{
	struct kf_corpus *c = calloc(1, sizeof(*c));
	struct kf_rng rng;
	uint32_t n = (uint32_t)strlen(alphabet);
	double sum = 0;
	uint8_t *used;

	assert_non_null(c);
	assert_true(n <= 64);
	kf_rng_seed(&rng, seed);
	snprintf(c->name, sizeof(c->name), "random-%llu", (unsigned long long)seed);
	c->nchars = n;
	c->codepoints = calloc(n, sizeof(*c->codepoints));
	c->chars = calloc(n, sizeof(*c->chars));
	c->nbigrams = c->nskipgrams = (size_t)n * n;
	c->bigrams = calloc(c->nbigrams, sizeof(*c->bigrams));
	c->skipgrams = calloc(c->nskipgrams, sizeof(*c->skipgrams));
	c->trigrams = calloc(ntrigrams + 1, sizeof(*c->trigrams));
	used = calloc((size_t)n * n * n, 1);
	assert_true(c->codepoints && c->chars && c->bigrams && c->skipgrams && c->trigrams && used);
	for (uint32_t i = 0; i < n; i++) {
		c->codepoints[i] = (unsigned char)alphabet[i];
		c->chars[i] = kf_rng_double(&rng);
		sum += c->chars[i];
	}
	for (uint32_t i = 0; i < n; i++)
		c->chars[i] *= 100.0 / sum;
	for (uint32_t i = 0; i < n * n; i++) {
		/* skewed, like real text: many rare pairs, a few frequent ones */
		double u = kf_rng_double(&rng), v = kf_rng_double(&rng);

		c->bigrams[i] = (struct kf_ngram2){ i / n, i % n, u * u * u };
		c->skipgrams[i] = (struct kf_ngram2){ i / n, i % n, v * v * v };
	}
	normalise2(c->bigrams, c->nbigrams);
	normalise2(c->skipgrams, c->nskipgrams);
	sum = 0;
	while (c->ntrigrams < ntrigrams && c->ntrigrams < (size_t)n * n * n) {
		uint32_t a = kf_rng_below(&rng, n), b = kf_rng_below(&rng, n),
			 d = kf_rng_below(&rng, n);
		double u = kf_rng_double(&rng);

		if (used[(a * n + b) * n + d])
			continue;
		used[(a * n + b) * n + d] = 1;
		c->trigrams[c->ntrigrams++] = (struct kf_ngram3){ a, b, d, u * u * u * u };
		sum += u * u * u * u;
	}
	for (size_t i = 0; i < c->ntrigrams; i++)
		c->trigrams[i].freq *= 100.0 / sum;
	free(used);
	c->char_total = c->bigram_total = c->skipgram_total = c->trigram_total = 1000000;
	return c;
}

const char tc_english[] =
	"The quick brown fox jumps over the lazy dog. A keyboard layout decides which "
	"finger presses each key, and a good one lets the hands alternate, roll inward "
	"and stay on the home row. When the same finger must press two different keys "
	"one after the other, typing slows down; these same finger bigrams are what "
	"most people notice first on the old typewriter arrangement. Writers, "
	"programmers and anyone who spends the whole day at a desk have searched for "
	"something better for more than a century. Some of them measured their own "
	"text, counted every pair and triple of letters, and moved the common ones "
	"under the strongest fingers. Others built machines that tried thousands of "
	"arrangements each second and kept the best. The results look strange at "
	"first: vowels gathered on one hand, consonants on the other, rare letters "
	"pushed into the corners where the little fingers wait. Yet after a few weeks "
	"of practice most of those who switched said their hands felt calmer, their "
	"speed returned and then grew, and the small aches of a long working day were "
	"gone. Nobody can promise that for every person, because hands differ and so "
	"do languages; the numbers only describe how often each motion happens in a "
	"given body of text. Still, a careful analysis is a fair place to start. It "
	"tells you how often you reach sideways, how often one finger jumps between "
	"rows, and how often the work passes smoothly from one hand to the other. "
	"With that knowledge you can judge a layout before you spend a month learning "
	"it, and you can ask a computer to search for one that suits your own writing "
	"rather than somebody else's. That is the whole idea behind this program: "
	"describe the costs, let the search run, and look at what it found.";

struct counter {
	double cf[128], bf[128][128], sf[128][128];
	struct kf_ngram3 *tri;
	size_t ntri, cap;
};

static int is_gram_char(unsigned char c)
{
	return c > ' ' && c < 0x7f;
}

static void count_word(struct counter *k, const unsigned char *w, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		k->cf[w[i]] += 1;
		if (i + 1 < n)
			k->bf[w[i]][w[i + 1]] += 1;
		if (i + 2 < n) {
			k->sf[w[i]][w[i + 2]] += 1;
			size_t j;
			for (j = 0; j < k->ntri; j++)
				if (k->tri[j].a == w[i] && k->tri[j].b == w[i + 1] &&
				    k->tri[j].c == w[i + 2])
					break;
			if (j == k->ntri) {
				if (k->ntri == k->cap) {
					k->cap = k->cap ? 2 * k->cap : 256;
					k->tri = realloc(k->tri, k->cap * sizeof(*k->tri));
					assert_non_null(k->tri);
				}
				k->tri[k->ntri++] = (struct kf_ngram3){ w[i], w[i + 1], w[i + 2], 0 };
			}
			k->tri[j].freq += 1;
		}
	}
}

struct kf_corpus *tc_text_corpus(const char *text)
{
	struct counter *k = calloc(1, sizeof(*k));
	struct kf_corpus *c = calloc(1, sizeof(*c));
	unsigned char word[256];
	size_t n = 0, len = strlen(text);
	int id[128];
	double ctot = 0, btot = 0, stot = 0, ttot = 0;

	assert_true(k && c);
	for (size_t i = 0; i <= len; i++) {
		unsigned char ch = i < len ? (unsigned char)text[i] : ' ';

		if (ch >= 'A' && ch <= 'Z')
			ch = (unsigned char)(ch - 'A' + 'a');
		if (is_gram_char(ch) && n < sizeof(word)) {
			word[n++] = ch;
			continue;
		}
		count_word(k, word, n);
		n = 0;
	}
	snprintf(c->name, sizeof(c->name), "english-test");
	c->codepoints = calloc(128, sizeof(*c->codepoints));
	c->chars = calloc(128, sizeof(*c->chars));
	c->bigrams = calloc(128 * 128, sizeof(*c->bigrams));
	c->skipgrams = calloc(128 * 128, sizeof(*c->skipgrams));
	c->trigrams = calloc(k->ntri + 1, sizeof(*c->trigrams));
	assert_true(c->codepoints && c->chars && c->bigrams && c->skipgrams && c->trigrams);
	for (int ch = 0; ch < 128; ch++) {
		id[ch] = -1;
		ctot += k->cf[ch];
		for (int d = 0; d < 128; d++) {
			btot += k->bf[ch][d];
			stot += k->sf[ch][d];
		}
	}
	for (int ch = 0; ch < 128; ch++) {
		if (k->cf[ch] == 0)
			continue;
		id[ch] = (int)c->nchars;
		c->codepoints[c->nchars] = (uint32_t)ch;
		c->chars[c->nchars++] = 100.0 * k->cf[ch] / ctot;
	}
	for (int a = 0; a < 128; a++) {
		for (int b = 0; b < 128; b++) {
			if (k->bf[a][b] > 0)
				c->bigrams[c->nbigrams++] = (struct kf_ngram2){
					(uint32_t)id[a], (uint32_t)id[b], 100.0 * k->bf[a][b] / btot };
			if (k->sf[a][b] > 0)
				c->skipgrams[c->nskipgrams++] = (struct kf_ngram2){
					(uint32_t)id[a], (uint32_t)id[b], 100.0 * k->sf[a][b] / stot };
		}
	}
	for (size_t i = 0; i < k->ntri; i++)
		ttot += k->tri[i].freq;
	for (size_t i = 0; i < k->ntri; i++)
		c->trigrams[c->ntrigrams++] = (struct kf_ngram3){
			(uint32_t)id[k->tri[i].a], (uint32_t)id[k->tri[i].b],
			(uint32_t)id[k->tri[i].c], 100.0 * k->tri[i].freq / ttot };
	c->char_total = (uint64_t)ctot;
	c->bigram_total = (uint64_t)btot;
	c->skipgram_total = (uint64_t)stot;
	c->trigram_total = (uint64_t)ttot;
	free(k->tri);
	free(k);
	return c;
}

void tc_corpus_free(struct kf_corpus *corpus)
{
	if (!corpus)
		return;
	free(corpus->codepoints);
	free(corpus->chars);
	free(corpus->bigrams);
	free(corpus->skipgrams);
	free(corpus->trigrams);
	free(corpus);
}
