/*
 * test_layout_util.h — in-memory corpora for the layout engine's tests.
 *
 * These build struct kf_corpus by hand (no loader involved), so the engine's
 * tests stand on their own. Free them with tc_corpus_free(), not
 * kf_corpus_free(): the engine tests do not link the corpus loaders' code.
 */
#ifndef KF_TEST_LAYOUT_UTIL_H
#define KF_TEST_LAYOUT_UTIL_H

#include <math.h>
#include <stdint.h>

#include "layout/corpus.h"

/* Fails the test when |a − b| > 1e-9 (percentages summed in doubles). */
#define assert_close(a, b) tc_assert_close((a), (b), #a, __FILE__, __LINE__)
void tc_assert_close(double a, double b, const char *expr, const char *file, int line);

/* A corpus from specs of space-separated `ngram=percent` items, each n-gram
 * written as 1, 2 or 3 ASCII characters (e.g. "e=40 d=30", "de=20 ed=10",
 * "the=10"). Character ids follow the order of `chars`; every character an
 * n-gram uses must be listed in `chars`. Any spec may be NULL. */
struct kf_corpus *tc_corpus(const char *chars, const char *bigrams, const char *skipgrams,
			    const char *trigrams);

/* A random corpus over `alphabet` (ASCII, ≤ 64 characters): random
 * character, bigram and skip-gram frequencies for every pair, and
 * `ntrigrams` distinct random trigrams, all normalised to 100 %. */
struct kf_corpus *tc_random_corpus(uint64_t seed, const char *alphabet, size_t ntrigrams);

/* A corpus counted from ASCII text: letters folded to lower case, every
 * other printable character kept, n-grams never cross white space. */
struct kf_corpus *tc_text_corpus(const char *text);

/* A few paragraphs of English prose (public-domain style text written for
 * these tests), about 3,000 characters. */
extern const char tc_english[];

void tc_corpus_free(struct kf_corpus *corpus);

#endif
