/*
 * fuzz_corpus_text.c — libFuzzer target for building a corpus from raw text
 * (layout/corpus_text.c): any bytes, valid UTF-8 or not.
 *
 * The build must succeed unless the text has no symbol (KF_ECORPUS), the
 * totals must add up (each char, bigram, skipgram and trigram percentage
 * sums to 100 within rounding), and feeding the same bytes in two halves
 * must give the same corpus as feeding them at once (UTF-8 sequences split
 * across calls). A violation aborts. Seeds: seeds/corpus_text/.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layout/corpus.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static double sum2(const struct kf_ngram2 *g, size_t n)
{
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += g[i].freq;
	return s;
}

static void check_sums(const struct kf_corpus *c)
{
	double s = 0;
	for (uint32_t i = 0; i < c->nchars; i++)
		s += c->chars[i];
	CHECK(fabs(s - 100) < 1e-6, "chars do not sum to 100");
	CHECK(!c->nbigrams || fabs(sum2(c->bigrams, c->nbigrams) - 100) < 1e-6, "bigram sum");
	CHECK(!c->nskipgrams || fabs(sum2(c->skipgrams, c->nskipgrams) - 100) < 1e-6, "skip sum");
	s = 0;
	for (size_t i = 0; i < c->ntrigrams; i++)
		s += c->trigrams[i].freq;
	CHECK(!c->ntrigrams || fabs(s - 100) < 1e-6, "trigram sum");
	CHECK(c->char_total >= c->bigram_total && c->bigram_total >= c->trigram_total,
	      "totals out of order");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kf_strbuf why = KF_STRBUF_INIT, a = KF_STRBUF_INIT, b = KF_STRBUF_INIT;
	struct kf_corpus *whole = NULL, *halves = NULL;
	enum kf_err err = kf_corpus_build_mem(data, size, "fuzz", &whole, &why);
	CHECK(err == KF_OK || err == KF_ECORPUS, "unexpected error code");
	struct kf_corpus_builder *builder = kf_corpus_builder_new();
	CHECK(builder != NULL, "out of memory");
	CHECK(kf_corpus_builder_add(builder, data, size / 2) == KF_OK, "add failed");
	CHECK(kf_corpus_builder_add(builder, data + size / 2, size - size / 2) == KF_OK, "add");
	kf_corpus_builder_break(builder);
	enum kf_err err2 = kf_corpus_builder_finish(builder, "fuzz", &halves, &why);
	CHECK(err == err2, "halves and whole disagree on success");
	if (!err) {
		check_sums(whole);
		CHECK(kf_corpus_encode(whole, &a) == KF_OK && kf_corpus_encode(halves, &b) == KF_OK,
		      "encode failed");
		CHECK(a.len == b.len && !memcmp(a.buf, b.buf, a.len), "halves differ from whole");
	}
	kf_corpus_builder_free(builder);
	kf_corpus_free(whole);
	kf_corpus_free(halves);
	kf_strbuf_release(&why);
	kf_strbuf_release(&a);
	kf_strbuf_release(&b);
	return 0;
}
