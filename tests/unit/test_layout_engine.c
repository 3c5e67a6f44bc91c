/*
 * Unit tests for the layout engine's geometry, layouts, statistics and
 * weights (layout/board, layout, stats, score weights). Every expected
 * statistic below is worked out by hand in the comments.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "layout/board.h"
#include "layout/layout.h"
#include "layout/score.h"
#include "layout/stats.h"
#include "test_layout_util.h"

static struct kf_board ansi, ortho;
static struct kf_layout qwerty;

static int setup(void **state)
{
	(void)state;
	kf_board_init(&ansi, KF_BOARD_ANSI);
	kf_board_init(&ortho, KF_BOARD_ORTHO);
	return kf_layout_named("qwerty", &qwerty) == KF_OK ? 0 : -1;
}

static int at(char c)
{
	int p = kf_layout_find(&qwerty, c);

	assert_true(p >= 0);
	return p;
}

/* ---- board --------------------------------------------------------------- */

static void test_board_geometry(void **state)
{
	(void)state;
	/* q: top row, column 0, x = 0 − 0.25 */
	assert_close(ansi.x[0], -0.25);
	assert_close(ansi.x[10], 0.0);  /* a */
	assert_close(ansi.x[20], 0.5);  /* z */
	assert_close(ansi.x[29], 9.5);  /* / */
	assert_close(ortho.x[20], 0.0);
	assert_close(ansi.y[25], 2.0);
	static const enum kf_finger cols[10] = {
		KF_FINGER_LP, KF_FINGER_LR, KF_FINGER_LM, KF_FINGER_LI, KF_FINGER_LI,
		KF_FINGER_RI, KF_FINGER_RI, KF_FINGER_RM, KF_FINGER_RR, KF_FINGER_RP,
	};
	for (int p = 0; p < KF_BOARD_KEYS; p++) {
		assert_int_equal(ansi.finger[p], cols[p % 10]);
		assert_int_equal(ortho.finger[p], cols[p % 10]);
		assert_int_equal(ansi.row[p], p / 10);
	}
	assert_int_equal(kf_finger_rank(KF_FINGER_LP), 0);
	assert_int_equal(kf_finger_rank(KF_FINGER_RI), 3);
	assert_int_equal(kf_finger_rank(KF_FINGER_RP), 0);
	assert_int_equal(kf_finger_hand(KF_FINGER_LI), KF_HAND_LEFT);
	assert_int_equal(kf_finger_hand(KF_FINGER_RI), KF_HAND_RIGHT);
	assert_string_equal(kf_finger_name(KF_FINGER_RM), "RM");
}

static void test_board_kind_parse(void **state)
{
	enum kf_board_kind kind = KF_BOARD_ANSI;

	(void)state;
	assert_int_equal(kf_board_kind_parse("ortho", &kind), KF_OK);
	assert_int_equal(kind, KF_BOARD_ORTHO);
	assert_int_equal(kf_board_kind_parse("ansi", &kind), KF_OK);
	assert_int_equal(kind, KF_BOARD_ANSI);
	assert_int_equal(kf_board_kind_parse("iso", &kind), KF_EINVAL);
	assert_string_equal(kf_board_kind_name(KF_BOARD_ORTHO), "ortho");
}

/* ---- layouts ------------------------------------------------------------- */

static int cmp_char(const void *a, const void *b)
{
	return *(const char *)a - *(const char *)b;
}

static void test_named_layouts_are_permutations(void **state)
{
	size_t n;
	const char *const *names = kf_layout_names(&n);
	char ref[31], sorted[31];

	(void)state;
	assert_int_equal(n, 5);
	memcpy(ref, "abcdefghijklmnopqrstuvwxyz;,./", 31);
	qsort(ref, 30, 1, cmp_char);
	for (size_t i = 0; i < n; i++) {
		struct kf_layout l, parsed;

		assert_int_equal(kf_layout_named(names[i], &l), KF_OK);
		/* each is a valid layout string ... */
		assert_int_equal(kf_layout_parse(l.keys, &parsed, NULL), KF_OK);
		/* ... of exactly the same 30 characters */
		memcpy(sorted, l.keys, 31);
		qsort(sorted, 30, 1, cmp_char);
		assert_string_equal(sorted, ref);
		assert_true(kf_layout_same_set(&l, &qwerty));
	}
	assert_string_equal(qwerty.keys, "qwertyuiopasdfghjkl;zxcvbnm,./");
	struct kf_layout l;
	assert_int_equal(kf_layout_named("colemak-dh", &l), KF_OK);
	assert_string_equal(l.keys, "qwfpbjluy;arstgmneiozxcdvkh,./");
	assert_int_equal(kf_layout_named("azerty", &l), KF_ENOENT);
}

static void test_layout_parse_errors(void **state)
{
	struct kf_layout l = { "untouched" };
	struct kf_strbuf why = KF_STRBUF_INIT;

	(void)state;
	assert_int_equal(kf_layout_parse("qwerty", &l, &why), KF_ELAYOUT_LEN);
	assert_non_null(strstr(why.buf, "has 6 characters"));
	assert_int_equal(kf_layout_parse("qwertyuiopasdfghjkl;zxcvbnm,./1", &l, NULL),
			 KF_ELAYOUT_LEN);
	assert_int_equal(kf_layout_parse("Qwertyuiopasdfghjkl;zxcvbnm,./", &l, NULL),
			 KF_ELAYOUT_CHAR);
	assert_int_equal(kf_layout_parse("qwertyuiopasdfghjkl zxcvbnm,./", &l, NULL),
			 KF_ELAYOUT_CHAR);
	/* 29 ASCII characters and an é: 30 characters, one unsupported */
	assert_int_equal(kf_layout_parse("qwertyuiopasdfghjkl;zxcvbnm,.\xc3\xa9", &l, NULL),
			 KF_ELAYOUT_CHAR);
	kf_strbuf_reset(&why);
	assert_int_equal(kf_layout_parse("qwertyuiopasdfghjkl;zxcvbnm,.q", &l, &why),
			 KF_ELAYOUT_DUP);
	assert_non_null(strstr(why.buf, "character 30 repeats character 1"));
	assert_string_equal(l.keys, "untouched");
	assert_int_equal(kf_layout_parse("1234567890-=[]\\';`~!@#$%^&*()_", &l, NULL), KF_OK);
	kf_strbuf_reset(&why);
	assert_int_equal(kf_layout_resolve("qwertz", &l, &why), KF_ELAYOUT_LEN);
	assert_non_null(strstr(why.buf, "neither a layout name"));
	assert_int_equal(kf_layout_resolve("dvorak", &l, NULL), KF_OK);
	assert_string_equal(l.keys, "/,.pyfgcrlaoeuidhtns;qjkxbmwvz");
	assert_int_equal(kf_layout_resolve("qwfpgjluy;arstdhneiozxcvbkm,./", &l, NULL), KF_OK);
	assert_int_equal(kf_layout_resolve("qwfpgjluy;arstdhneiozxcvbkm,.q", &l, NULL),
			 KF_ELAYOUT_DUP);
	kf_strbuf_release(&why);
}

static void test_layout_draw(void **state)
{
	struct kf_strbuf sb = KF_STRBUF_INIT;

	(void)state;
	kf_layout_draw(&qwerty, &ansi, "  ", &sb);
	assert_string_equal(sb.buf, "  q w e r t   y u i o p\n"
				    "   a s d f g   h j k l ;\n"
				    "    z x c v b   n m , . /\n");
	kf_strbuf_reset(&sb);
	kf_layout_draw(&qwerty, &ortho, "", &sb);
	assert_string_equal(sb.buf, "q w e r t   y u i o p\n"
				    "a s d f g   h j k l ;\n"
				    "z x c v b   n m , . /\n");
	kf_strbuf_release(&sb);
}

/* ---- bigram relations and trigram classes -------------------------------- */

static unsigned flags(const struct kf_board *b, char x, char y)
{
	return kf_pair_flags(b, at(x), at(y));
}

static void test_pair_flags(void **state)
{
	(void)state;
	assert_int_equal(flags(&ansi, 'd', 'e'), KF_PAIR_SFB);
	assert_int_equal(flags(&ansi, 'e', 'e'), 0);             /* a repeat is no SFB */
	assert_int_equal(flags(&ansi, 'q', 'z'), KF_PAIR_SFB);
	assert_int_equal(flags(&ansi, 'r', 'b'), KF_PAIR_SFB);   /* both index columns */
	/* t (x 3.75) – e (x 1.75): 2.0 apart */
	assert_int_equal(flags(&ansi, 't', 'e'), KF_PAIR_LSB);
	/* f (x 3) – e (x 1.75): 1.25 apart */
	assert_int_equal(flags(&ansi, 'f', 'e'), 0);
	/* v (x 3.5) – e (x 1.75): 1.75 apart on ANSI; 1.0 on ortho. The index
	 * is on the lower row: no scissor. */
	assert_int_equal(flags(&ansi, 'v', 'e'), KF_PAIR_LSB);
	assert_int_equal(flags(&ortho, 'v', 'e'), 0);
	/* b (x 4.5) – e (x 1.75): LSB; middle-index adjacent, index lower */
	assert_int_equal(flags(&ansi, 'e', 'b'), KF_PAIR_LSB);
	/* t (x 3.75, top) – c (x 2.5, bottom): 1.25 on ANSI, scissor (index
	 * higher); on ortho 2.0 apart: LSB and scissor */
	assert_int_equal(flags(&ansi, 't', 'c'), KF_PAIR_SCISSOR);
	assert_int_equal(flags(&ortho, 't', 'c'), KF_PAIR_SCISSOR | KF_PAIR_LSB);
	assert_int_equal(flags(&ansi, 'r', 'c'), KF_PAIR_SCISSOR);
	assert_int_equal(flags(&ansi, 'e', 'x'), KF_PAIR_SCISSOR);
	assert_int_equal(flags(&ansi, 'w', 'z'), KF_PAIR_SCISSOR);
	assert_int_equal(flags(&ansi, 'q', 'c'), 0);              /* not adjacent */
	/* right hand: h (5) – k (7) LSB; n (5.5) – i (6.75) not; j (6) – , (7.5) */
	assert_int_equal(flags(&ansi, 'h', 'k'), KF_PAIR_LSB);
	assert_int_equal(flags(&ansi, 'n', 'i'), 0);
	assert_int_equal(flags(&ansi, 'j', ','), KF_PAIR_LSB);
	assert_int_equal(flags(&ansi, 'm', 'i'), 0);              /* index lower */
	/* index higher: scissor; u (5.75) – , (7.5) is also 1.75 apart */
	assert_int_equal(flags(&ansi, 'u', ','), KF_PAIR_SCISSOR | KF_PAIR_LSB);
	assert_int_equal(flags(&ansi, 'o', ','), KF_PAIR_SCISSOR);
	assert_int_equal(flags(&ansi, 'p', '.'), KF_PAIR_SCISSOR);
	assert_int_equal(flags(&ansi, 'f', 'j'), 0);              /* two hands */
}

static enum kf_trigram_class cls(const char *t)
{
	return kf_trigram_classify(&ansi, at(t[0]), at(t[1]), at(t[2]));
}

static void test_trigram_classes(void **state)
{
	(void)state;
	assert_int_equal(cls("the"), KF_TRI_ALTERNATE);
	assert_int_equal(cls("tit"), KF_TRI_ALTERNATE);   /* same key: no SFS */
	assert_int_equal(cls("rhv"), KF_TRI_ALT_SFS);
	assert_int_equal(cls("sdh"), KF_TRI_INROLL);
	assert_int_equal(cls("hsd"), KF_TRI_INROLL);
	assert_int_equal(cls("hds"), KF_TRI_OUTROLL);
	assert_int_equal(cls("lkf"), KF_TRI_INROLL);      /* right hand ring → middle */
	assert_int_equal(cls("ast"), KF_TRI_ONEHAND);
	assert_int_equal(cls("tsa"), KF_TRI_ONEHAND);
	assert_int_equal(cls("sat"), KF_TRI_REDIRECT);
	assert_int_equal(cls("sax"), KF_TRI_BAD_REDIRECT); /* redirect SFS, no index */
	assert_int_equal(cls("das"), KF_TRI_BAD_REDIRECT);
	assert_int_equal(cls("ftf"), KF_TRI_SFT);
	assert_int_equal(cls("ded"), KF_TRI_SFT);
	assert_int_equal(cls("dea"), KF_TRI_SFB);
	assert_int_equal(cls("eed"), KF_TRI_SFB);         /* e-d is an SFB */
	assert_int_equal(cls("see"), KF_TRI_REPEAT);
	assert_int_equal(cls("eee"), KF_TRI_REPEAT);
	assert_string_equal(kf_trigram_class_name(KF_TRI_ALT_SFS), "alt_sfs");
}

/* ---- statistics of a hand-made corpus ------------------------------------ */

/*
 * Characters (percent of all characters): 94 % are on the layout, '1' is not.
 *   LP: a q z = 12   LR: s x = 12   LM: e d c = 33   LI: t r v = 22
 *   RI: h = 10       RM: i = 5
 *   left = 79, home row (a s d h) = 40
 * Bigrams (sum 100):
 *   SFB:     de 20 + ed 10 + qz 3                      = 33
 *   LSB:     te 15 + ev 7 (ANSI only; ortho: te)       = 22 (ortho 15)
 *   scissor: rc 4 + ex 6                               = 10
 *   nothing: ee 5 (repeat), t1 30 (off layout)
 * Skip-grams: de 8 (SFS), ee 2 (repeat), te 5, 11 85  → sfs 8
 * Trigrams (sum 100): alternate the 10 + tit 2 = 12; alt_sfs rhv 3;
 *   inroll sdh 6 + hsd 1 = 7; outroll hds 4; onehand ast 5 + tsa 1 = 6;
 *   redirect sat 3 + sax 2 + das 1 = 6 of which bad (no index) 3;
 *   sft ded 2; sfb_trigram dea 3; repeat see 4 (nowhere); t1e 53 (off).
 */
static struct kf_corpus *hand_corpus(void)
{
	return tc_corpus("e=20 t=15 a=10 s=10 d=10 h=10 i=5 r=5 c=3 x=2 v=2 q=1 z=1 1=6",
			 "de=20 ed=10 qz=3 te=15 ev=7 rc=4 ex=6 ee=5 t1=30",
			 "de=8 ee=2 te=5 11=85",
			 "the=10 tit=2 rhv=3 sdh=6 hsd=1 hds=4 ast=5 tsa=1 sat=3 sax=2 das=1 "
			 "ded=2 dea=3 see=4 t1e=53");
}

static void test_stats_hand_corpus(void **state)
{
	struct kf_corpus *c = hand_corpus();
	struct kf_stats st;

	(void)state;
	assert_int_equal(kf_stats_compute(&ansi, c, &qwerty, &st), KF_OK);
	assert_close(st.sfb, 33);
	assert_close(st.lsb, 22);
	assert_close(st.scissors, 10);
	assert_close(st.sfs, 8);
	assert_close(st.alternate, 12);
	assert_close(st.alt_sfs, 3);
	assert_close(st.inroll, 7);
	assert_close(st.outroll, 4);
	assert_close(st.onehand, 6);
	assert_close(st.redirect, 6);
	assert_close(st.bad_redirect, 3);
	assert_close(st.sft, 2);
	assert_close(st.sfb_trigram, 3);
	assert_close(st.finger_usage[KF_FINGER_LP], 100.0 * 12 / 94);
	assert_close(st.finger_usage[KF_FINGER_LR], 100.0 * 12 / 94);
	assert_close(st.finger_usage[KF_FINGER_LM], 100.0 * 33 / 94);
	assert_close(st.finger_usage[KF_FINGER_LI], 100.0 * 22 / 94);
	assert_close(st.finger_usage[KF_FINGER_RI], 100.0 * 10 / 94);
	assert_close(st.finger_usage[KF_FINGER_RM], 100.0 * 5 / 94);
	assert_close(st.finger_usage[KF_FINGER_RR], 0);
	assert_close(st.finger_usage[KF_FINGER_RP], 0);
	assert_close(st.left_hand, 100.0 * 79 / 94);
	assert_close(st.home_row, 100.0 * 40 / 94);

	assert_int_equal(kf_stats_compute(&ortho, c, &qwerty, &st), KF_OK);
	assert_close(st.lsb, 15);
	assert_close(st.scissors, 10);
	assert_close(st.sfb, 33);
	tc_corpus_free(c);
}

static void test_stats_other_layout(void **state)
{
	/* The same corpus on a layout where d and a trade places: d moves to LP
	 * home, so de/ed stop being SFBs (and the de skip-gram an SFS):
	 *   SFB: qz 3 (d shares LP with q and z, but no bigram pairs them)
	 *   te 15 + ev 7 still LSB; rc 4, ex 6 still scissors. */
	struct kf_corpus *c = hand_corpus();
	struct kf_layout l;
	struct kf_stats st;

	(void)state;
	assert_int_equal(kf_layout_parse("qwertyuiopdsafghjkl;zxcvbnm,./", &l, NULL), KF_OK);
	assert_int_equal(kf_stats_compute(&ansi, c, &l, &st), KF_OK);
	assert_close(st.sfb, 3);
	assert_close(st.lsb, 22);
	assert_close(st.scissors, 10);
	assert_close(st.sfs, 0);
	/* LP now has d q z = 12, LM a e c = 33: usage unchanged */
	assert_close(st.finger_usage[KF_FINGER_LM], 100.0 * 33 / 94);
	tc_corpus_free(c);
}

static void test_stats_json(void **state)
{
	struct kf_corpus *c = hand_corpus();
	struct kf_stats st;
	struct kf_strbuf sb = KF_STRBUF_INIT;

	(void)state;
	assert_int_equal(kf_stats_compute(&ansi, c, &qwerty, &st), KF_OK);
	kf_stats_add_json(&st, &sb);
	/* keys in DESIGN.md §10's order, values read back as numbers (the
	 * number format is common/json's) */
	static const char *const keys[] = { "sfb", "sfs", "lsb", "scissors", "alternate",
					     "alt_sfs", "inroll", "outroll", "onehand",
					     "redirect", "bad_redirect" };
	static const double values[] = { 33, 8, 22, 10, 12, 3, 7, 4, 6, 6, 3 };
	const char *prev = sb.buf;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char key[32];
		snprintf(key, sizeof(key), "\"%s\":", keys[i]);
		const char *hit = strstr(sb.buf, key);
		if (!hit || hit < prev)
			fail_msg("key %s missing or out of order in %s", key, sb.buf);
		assert_close(strtod(hit + strlen(key), NULL), values[i]);
		prev = hit;
	}
	assert_non_null(strstr(sb.buf, "\"finger_usage\":{\"LP\":"));
	assert_non_null(strstr(sb.buf, "\"RR\":0,\"RP\":0}"));
	assert_non_null(strstr(sb.buf, "\"home_row\":"));
	assert_non_null(strstr(sb.buf, "\"left_hand\":"));
	kf_strbuf_release(&sb);
	tc_corpus_free(c);
}

/* ---- weights ------------------------------------------------------------- */

static void test_weights_lines(void **state)
{
	struct kf_weights w;

	(void)state;
	kf_weights_default(&w);
	assert_close(w.sfb, 10.0);
	assert_int_equal(w.trigrams, KF_TRIGRAMS_DEFAULT);
	assert_int_equal(kf_weights_parse(&w, "# mine\n\n sfb = 5.5 \nfinger_lp=2 # pinky\n"
					      "trigrams = 500\r\nhand_balance=-1e-1\n", NULL),
			 KF_OK);
	assert_close(w.sfb, 5.5);
	assert_close(w.finger[KF_FINGER_LP], 2.0);
	assert_close(w.hand_balance, -0.1);
	assert_int_equal(w.trigrams, 500);
	assert_close(w.sfs, 3.0); /* untouched */
}

static void test_weights_json(void **state)
{
	struct kf_weights w, back;
	struct kf_strbuf sb = KF_STRBUF_INIT;

	(void)state;
	kf_weights_default(&w);
	assert_int_equal(kf_weights_parse(&w, " {\"sfb\": 7, \"inroll\":-1.25,\n\"trigrams\":0} ",
					  NULL), KF_OK);
	assert_close(w.sfb, 7);
	assert_close(w.inroll, -1.25);
	assert_int_equal(w.trigrams, 0);
	assert_int_equal(kf_weights_parse(&w, "{}", NULL), KF_OK);
	/* what add_json writes, parse reads back exactly */
	w.finger[KF_FINGER_RR] = 0.1 + 0.2;
	kf_weights_add_json(&w, &sb);
	memset(&back, 0, sizeof(back));
	assert_int_equal(kf_weights_parse(&back, sb.buf, NULL), KF_OK);
	assert_memory_equal(&w, &back, sizeof(w));
	kf_strbuf_release(&sb);
}

static void test_weights_equal(void **state)
{
	struct kf_weights a, b;

	(void)state;
	kf_weights_default(&a);
	b = a;
	assert_true(kf_weights_equal(&a, &b));
	/* each weight counts, the last finger and the trigram count too */
	b.finger[KF_FINGER_RP] += 0.5;
	assert_false(kf_weights_equal(&a, &b));
	b = a;
	b.hand_balance = a.hand_balance + 1;
	assert_false(kf_weights_equal(&a, &b));
	b = a;
	b.sfb = nextafter(a.sfb, INFINITY);
	assert_false(kf_weights_equal(&a, &b));
	b = a;
	b.trigrams = a.trigrams + 1;
	assert_false(kf_weights_equal(&a, &b));
	/* 0 and -0 score alike */
	a.alternate = 0.0;
	b = a;
	b.alternate = -0.0;
	assert_true(kf_weights_equal(&a, &b));
}

static void test_weights_errors(void **state)
{
	static const char *const bad[] = {
		"sfbs = 1\n", "sfb = abc\n", "sfb = 1e9\n", "sfb 5\n", "sfb =\n",
		"sfb = nan\n", "trigrams = 1.5\n", "trigrams = -1\n", "{\"sfb\": 1,}",
		"{\"sfb\": 1} x", "{\"sfb\" 1}", "{\"nope\": 1}", "{sfb: 1}", "{\"sfb\": \"1\"}",
	};
	struct kf_strbuf why = KF_STRBUF_INIT;
	struct kf_weights w;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		kf_weights_default(&w);
		kf_strbuf_reset(&why);
		if (kf_weights_parse(&w, bad[i], &why) != KF_EWEIGHTS)
			fail_msg("weights '%s' were accepted", bad[i]);
		assert_true(why.len > 0);
	}
	kf_strbuf_reset(&why);
	assert_int_equal(kf_weights_parse(&w, "sfb = 1\nlsb = x\n", &why), KF_EWEIGHTS);
	assert_non_null(strstr(why.buf, "line 2"));
	kf_strbuf_reset(&why);
	assert_int_equal(kf_weights_load(&w, "/nonexistent/weights", &why), KF_EIO);
	assert_non_null(strstr(why.buf, "/nonexistent/weights"));
	kf_strbuf_release(&why);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_board_geometry),
		cmocka_unit_test(test_board_kind_parse),
		cmocka_unit_test(test_named_layouts_are_permutations),
		cmocka_unit_test(test_layout_parse_errors),
		cmocka_unit_test(test_layout_draw),
		cmocka_unit_test(test_pair_flags),
		cmocka_unit_test(test_trigram_classes),
		cmocka_unit_test(test_stats_hand_corpus),
		cmocka_unit_test(test_stats_other_layout),
		cmocka_unit_test(test_stats_json),
		cmocka_unit_test(test_weights_lines),
		cmocka_unit_test(test_weights_json),
		cmocka_unit_test(test_weights_equal),
		cmocka_unit_test(test_weights_errors),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
