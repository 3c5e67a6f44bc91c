/*
 * The layout engine on real corpora, read through the corpus loaders:
 *  - the default corpus (BUILD/corpora/brown.kfc, made by
 *    scripts/default-corpus; path in KF_DEFAULT_CORPUS): optimizing QWERTY
 *    lowers its cost and its SFB share;
 *  - Oxeylyzer's shai corpus (../shared/corpora/shai.json; folder in
 *    KF_SHARED_CORPORA): statistics of the named layouts equal the values of
 *    an independent implementation of docs/layout.md's definitions,
 *    test_layout_reference.py, run on the same JSON.
 * Each test is skipped, not failed, when its corpus is absent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "layout/anneal.h"
#include "layout/corpus.h"
#include "layout/score.h"
#include "layout/stats.h"

static struct kf_corpus *load_or_skip(const char *env, const char *file)
{
	const char *dir = getenv(env);
	char path[4096];
	struct kf_corpus *c = NULL;
	struct kf_strbuf why = KF_STRBUF_INIT;

	if (!dir)
		skip();
	snprintf(path, sizeof(path), file ? "%s/%s" : "%s", dir, file ? file : "");
	if (access(path, R_OK) != 0) {
		print_message("# %s is absent: skipped\n", path);
		skip();
	}
	if (kf_corpus_load(path, &c, &why) != KF_OK)
		fail_msg("%s", why.buf);
	kf_strbuf_release(&why);
	return c;
}

static void test_default_corpus_optimize_qwerty(void **state)
{
	struct kf_corpus *c = load_or_skip("KF_DEFAULT_CORPUS", NULL);
	struct kf_board board;
	struct kf_layout qwerty;
	struct kf_weights w;
	struct kf_scorer *s;
	struct kf_anneal_params p;
	struct kf_anneal_result r;
	struct kf_stats before, after;

	(void)state;
	kf_board_init(&board, KF_BOARD_ANSI);
	kf_layout_named("qwerty", &qwerty);
	kf_weights_default(&w);
	assert_int_equal(kf_scorer_new(&board, c, &qwerty, &w, &s), KF_OK);
	kf_anneal_params_init(&p);
	p.steps = 300000;
	p.seed = 1;
	assert_int_equal(kf_anneal_run(s, &qwerty, &p, &r, NULL), KF_OK);
	assert_true(r.best_cost < r.start_cost);
	assert_int_equal(kf_stats_compute(&board, c, &qwerty, &before), KF_OK);
	assert_int_equal(kf_stats_compute(&board, c, &r.best, &after), KF_OK);
	print_message("# brown: cost %.3f -> %.3f, sfb %.3f -> %.3f %% (%s)\n", r.start_cost,
		      r.best_cost, before.sfb, after.sfb, r.best.keys);
	assert_true(after.sfb < before.sfb);
	kf_scorer_free(s);
	kf_corpus_free(c);
}

struct reference {
	const char *layout;
	double sfb, sfs, lsb, scissors, alternate, alt_sfs, inroll, outroll, onehand, redirect,
		bad_redirect;
};

/* python3 tests/unit/test_layout_reference.py LAYOUT (shai.json, ANSI board) */
static const struct reference shai_refs[] = {
	{ "qwerty", 6.263731572087598, 10.258588234900005, 4.673772446654516,
	  0.9885462606862077, 19.382970641024727, 5.176169812506506, 18.805336435660283,
	  15.738268137181441, 2.602294204836685, 12.272010610828572, 1.3348804324985022 },
	{ "colemak-dh", 1.2818246658569374, 7.8768420688887435, 2.1241107035173337,
	  0.16662463329169558, 23.17506132686764, 5.064733303123107, 23.40218635313581,
	  19.48779598833318, 2.254395946341365, 9.793224783053006, 1.390531414423056 },
	{ "dvorak", 2.617780361451245, 6.329500305083472, 1.867769096447372, 0.078149120281415,
	  35.78316999990846, 5.334598100674868, 21.975363400391636, 13.573730914084871,
	  0.493632451967068, 3.0380812925076466, 0.7679663729645804 },
};

static void test_shai_reference_stats(void **state)
{
	struct kf_corpus *c = load_or_skip("KF_SHARED_CORPORA", "shai.json");
	struct kf_board board;

	(void)state;
	kf_board_init(&board, KF_BOARD_ANSI);
	for (size_t i = 0; i < sizeof(shai_refs) / sizeof(shai_refs[0]); i++) {
		const struct reference *ref = &shai_refs[i];
		struct kf_layout l;
		struct kf_stats st;

		assert_int_equal(kf_layout_named(ref->layout, &l), KF_OK);
		assert_int_equal(kf_stats_compute(&board, c, &l, &st), KF_OK);
		/* summation order differs from the script's: allow rounding */
		assert_true(fabs(st.sfb - ref->sfb) < 1e-9);
		assert_true(fabs(st.sfs - ref->sfs) < 1e-9);
		assert_true(fabs(st.lsb - ref->lsb) < 1e-9);
		assert_true(fabs(st.scissors - ref->scissors) < 1e-9);
		assert_true(fabs(st.alternate - ref->alternate) < 1e-9);
		assert_true(fabs(st.alt_sfs - ref->alt_sfs) < 1e-9);
		assert_true(fabs(st.inroll - ref->inroll) < 1e-9);
		assert_true(fabs(st.outroll - ref->outroll) < 1e-9);
		assert_true(fabs(st.onehand - ref->onehand) < 1e-9);
		assert_true(fabs(st.redirect - ref->redirect) < 1e-9);
		assert_true(fabs(st.bad_redirect - ref->bad_redirect) < 1e-9);
	}
	kf_corpus_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_corpus_optimize_qwerty),
		cmocka_unit_test(test_shai_reference_stats),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
