/*
 * Unit tests for the corpus code of layout/: building from text (counts
 * worked out by hand), the Oxeylyzer JSON reader, the .kfc format and every
 * class of malformed input, and the reference corpora of ../shared/corpora
 * when they exist.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "kf_config.h"
#include "layout/corpus.h"
#include "layout/corpus_internal.h"

#define SHAI KF_SOURCE_ROOT "/../shared/corpora/shai.json"
#define MONKEYRACER KF_SOURCE_ROOT "/../shared/corpora/monkeyracer.json"
#define SHIFT_UTF8 "\xE2\x87\x91" /* ⇑ */

/* ---- helpers --------------------------------------------------------------- */

static struct kf_corpus *build(const char *text)
{
	struct kf_corpus *c = NULL;
	struct kf_strbuf why = KF_STRBUF_INIT;
	enum kf_err err = kf_corpus_build_mem(text, strlen(text), "t", &c, &why);
	if (err)
		fprintf(stderr, "build: %s\n", why.buf);
	assert_int_equal(err, KF_OK);
	kf_strbuf_release(&why);
	return c;
}

/* Decodes a UTF-8 n-gram text into codepoints; returns how many. */
static unsigned decode(const char *s, uint32_t cps[3])
{
	unsigned n = 0;
	size_t len = strlen(s);
	while (len) {
		int k = kf__utf8_decode((const unsigned char *)s, len, &cps[n++]);
		assert_true(k > 0 && n <= 3);
		s += k, len -= (size_t)k;
	}
	return n;
}

static int32_t id_of(const struct kf_corpus *c, uint32_t cp)
{
	return kf_corpus_char_id(c, cp);
}

/* Percentage of an n-gram given as UTF-8 text ("ab", "⇑a", "the"), or -1. */
static double pct(const struct kf_corpus *c, const char *gram, bool skip)
{
	uint32_t cps[3];
	int32_t id[3] = { -1, -1, -1 };
	unsigned n = decode(gram, cps);
	for (unsigned k = 0; k < n; k++)
		if ((id[k] = id_of(c, cps[k])) < 0)
			return -1.0;
	if (n == 1)
		return c->chars[id[0]];
	if (n == 2) {
		const struct kf_ngram2 *g = skip ? c->skipgrams : c->bigrams;
		size_t count = skip ? c->nskipgrams : c->nbigrams;
		for (size_t i = 0; i < count; i++)
			if (g[i].a == (uint32_t)id[0] && g[i].b == (uint32_t)id[1])
				return g[i].freq;
		return -1.0;
	}
	for (size_t i = 0; i < c->ntrigrams; i++)
		if (c->trigrams[i].a == (uint32_t)id[0] && c->trigrams[i].b == (uint32_t)id[1] &&
		    c->trigrams[i].c == (uint32_t)id[2])
			return c->trigrams[i].freq;
	return -1.0;
}

#define assert_pct(c, gram, skip, want) assert_true(fabs_(pct(c, gram, skip) - (want)) < 1e-12)

static double fabs_(double x)
{
	return x < 0 ? -x : x;
}

static void assert_totals(const struct kf_corpus *c, uint64_t chars, uint64_t bi, uint64_t skip,
			  uint64_t tri)
{
	assert_int_equal(c->char_total, chars);
	assert_int_equal(c->bigram_total, bi);
	assert_int_equal(c->skipgram_total, skip);
	assert_int_equal(c->trigram_total, tri);
}

/* Parses JSON text; returns the error and leaves the message in *why. */
static enum kf_err parse_json(const char *text, struct kf_corpus **c, struct kf_strbuf *why)
{
	kf_strbuf_reset(why);
	return kf_corpus_parse_json(text, strlen(text), "t.json", c, why);
}

static void assert_json_error(const char *text, const char *message)
{
	struct kf_strbuf why = KF_STRBUF_INIT;
	struct kf_corpus *c = (struct kf_corpus *)1;
	enum kf_err err = parse_json(text, &c, &why);
	if (err != KF_ECORPUS || !strstr(why.buf, message))
		fprintf(stderr, "input %s\n  got %d '%s', want '%s'\n", text, err, why.buf, message);
	assert_int_equal(err, KF_ECORPUS);
	assert_null(c);
	assert_non_null(strstr(why.buf, message));
	kf_strbuf_release(&why);
}

/* A small valid document; %s is spliced in front of the last key. */
static const char doc_fmt[] =
	"{\"name\":\"mini\",\"char_total\":10,\"bigram_total\":8,\"skipgram_total\":6,"
	"\"trigram_total\":4,%s"
	"\"chars\":{\"a\":60,\"b\":40},\"bigrams\":{\"ab\":75,\"ba\":25},"
	"\"skipgrams\":{\"aa\":100},\"trigrams\":{\"aba\":100}}";

static char *doc_with(const char *extra)
{
	size_t len = sizeof doc_fmt + strlen(extra);
	char *s = malloc(len);
	assert_non_null(s);
	snprintf(s, len, doc_fmt, extra);
	return s;
}

/* ---- building from text ---------------------------------------------------- */

static void test_text_ab_ab(void **state)
{
	(void)state;
	/* a b _ a b: 4 chars, bigrams ab ab, skipgram b_a across one space. */
	struct kf_corpus *c = build("ab ab");
	assert_int_equal(c->nchars, 2);
	assert_int_equal(c->codepoints[0], 'a'); /* tie: lower codepoint first */
	assert_int_equal(c->codepoints[1], 'b');
	assert_totals(c, 4, 2, 1, 0);
	assert_pct(c, "a", false, 50.0);
	assert_pct(c, "ab", false, 100.0);
	assert_pct(c, "ba", true, 100.0);
	assert_int_equal(c->nbigrams, 1);
	assert_int_equal(c->nskipgrams, 1);
	assert_int_equal(c->ntrigrams, 0);
	assert_string_equal(c->name, "t");
	kf_corpus_free(c);
}

static void test_text_the_cat(void **state)
{
	(void)state;
	/* the cat: chars t2 h e c a; bigrams th he ca at; trigrams the cat;
	 * skipgrams te (in "the"), e_c (one space), ct (in "cat"). */
	struct kf_corpus *c = build("the cat");
	assert_totals(c, 6, 4, 3, 2);
	assert_int_equal(c->codepoints[0], 't');
	assert_pct(c, "t", false, 100.0 * 2 / 6);
	assert_pct(c, "h", false, 100.0 / 6);
	assert_pct(c, "th", false, 25.0);
	assert_pct(c, "at", false, 25.0);
	assert_pct(c, "ec", false, -1.0); /* no bigram across the space */
	assert_pct(c, "the", false, 50.0);
	assert_pct(c, "cat", false, 50.0);
	assert_pct(c, "te", true, 100.0 / 3);
	assert_pct(c, "ec", true, 100.0 / 3);
	assert_pct(c, "ct", true, 100.0 / 3);
	assert_pct(c, "hc", true, -1.0);
	kf_corpus_free(c);
}

static void test_text_breaks(void **state)
{
	(void)state;
	/* Two spaces: no skipgram; tab and newline: one break each. */
	struct kf_corpus *c = build("ab  cd\tef\ngh");
	assert_totals(c, 8, 4, 2, 0);
	assert_pct(c, "bc", true, -1.0);
	assert_pct(c, "de", true, 50.0);
	assert_pct(c, "fg", true, 50.0);
	kf_corpus_free(c);

	c = build("aaa");
	assert_totals(c, 3, 2, 1, 1);
	assert_pct(c, "a", false, 100.0);
	assert_pct(c, "aa", false, 100.0);
	assert_pct(c, "aa", true, 100.0);
	assert_pct(c, "aaa", false, 100.0);
	kf_corpus_free(c);
}

static void test_text_shift(void **state)
{
	(void)state;
	/* "Ab" = ⇑ a b */
	struct kf_corpus *c = build("Ab");
	assert_totals(c, 3, 2, 1, 1);
	assert_int_equal(id_of(c, 'A'), -1);
	assert_pct(c, SHIFT_UTF8, false, 100.0 / 3);
	assert_pct(c, SHIFT_UTF8 "a", false, 50.0);
	assert_pct(c, "ab", false, 50.0);
	assert_pct(c, SHIFT_UTF8 "b", true, 100.0);
	assert_pct(c, SHIFT_UTF8 "ab", false, 100.0);
	kf_corpus_free(c);

	/* Shifted symbols of the US layout: ? ! : " < > become ⇑ / 1 ; ' , . */
	c = build("?!:\"<>");
	assert_totals(c, 12, 11, 10, 10);
	assert_pct(c, SHIFT_UTF8, false, 50.0);
	assert_int_equal(id_of(c, '?'), -1);
	assert_pct(c, "/", false, 100.0 / 12);
	assert_pct(c, "1", false, 100.0 / 12);
	assert_pct(c, ";", false, 100.0 / 12);
	assert_pct(c, SHIFT_UTF8 "/", false, 100.0 / 11);
	kf_corpus_free(c);

	/* Latin-1 and Cyrillic capitals: É -> ⇑ é, Ж -> ⇑ ж; ß has no shift. */
	c = build("\xC3\x89\xD0\x96\xC3\x9F");
	assert_totals(c, 5, 4, 3, 3);
	assert_pct(c, SHIFT_UTF8, false, 40.0);
	assert_pct(c, "\xC3\xA9", false, 20.0);
	assert_pct(c, "\xD0\xB6", false, 20.0);
	assert_pct(c, "\xC3\x9F", false, 20.0);
	kf_corpus_free(c);
}

static void test_text_normalization(void **state)
{
	(void)state;
	/* don’t -> don't; “x” -> ⇑'x⇑'; … -> ...; a<soft hyphen>b -> ab */
	struct kf_corpus *c = build("don\xE2\x80\x99t \xE2\x80\x9Cx\xE2\x80\x9D \xE2\x80\xA6 a\xC2\xAD"
				    "b");
	assert_pct(c, "n'", false, pct(c, "'t", false));
	assert_true(pct(c, "n'", false) > 0);
	assert_true(pct(c, SHIFT_UTF8 "'", false) > 0);
	assert_true(pct(c, "..", false) > 0);
	assert_true(pct(c, "ab", false) > 0);
	assert_int_equal(id_of(c, 0x2019), -1);
	assert_int_equal(id_of(c, 0x00AD), -1);
	/* chars: d o n ' t | ⇑ ' x ⇑ ' | . . . | a b = 15 */
	assert_int_equal(c->char_total, 15);
	kf_corpus_free(c);

	/* No-break space and ideographic space are breaks. */
	c = build("a\xC2\xA0" "b\xE3\x80\x80" "c");
	assert_totals(c, 3, 0, 2, 0);
	kf_corpus_free(c);
}

static void test_text_invalid_utf8(void **state)
{
	(void)state;
	struct kf_corpus_builder *b = kf_corpus_builder_new();
	struct kf_corpus_build_stats st;
	struct kf_corpus *c;
	struct kf_strbuf why = KF_STRBUF_INIT;
	assert_non_null(b);
	/* 0xFF: one break; E2 82 (a truncated 3-byte sequence): one break. */
	assert_int_equal(kf_corpus_builder_add(b, "a\xFF" "b\xE2\x82" "c", 6), KF_OK);
	kf_corpus_builder_stats(b, &st);
	assert_int_equal(st.invalid_utf8, 2);
	assert_int_equal(st.bytes, 6);
	/* A sequence cut at the end of the text is one more. */
	assert_int_equal(kf_corpus_builder_add(b, " d\xF0\x9F", 4), KF_OK);
	kf_corpus_builder_break(b);
	kf_corpus_builder_stats(b, &st);
	assert_int_equal(st.invalid_utf8, 3);
	assert_int_equal(kf_corpus_builder_finish(b, "x", &c, &why), KF_OK);
	assert_totals(c, 4, 0, 3, 0); /* a_b, b_c and c_d: one break between each */
	assert_pct(c, "ab", true, 100.0 / 3);
	assert_pct(c, "cd", true, 100.0 / 3);
	kf_corpus_free(c);
	kf_corpus_builder_free(b);
	kf_strbuf_release(&why);
}

static void test_text_split_sequences(void **state)
{
	(void)state;
	/* "Éé😀" fed one byte at a time equals the whole. */
	static const char text[] = "x\xC3\x89\xC3\xA9\xF0\x9F\x98\x80y";
	struct kf_corpus_builder *b = kf_corpus_builder_new();
	struct kf_corpus *whole = build(text), *parts;
	struct kf_strbuf why = KF_STRBUF_INIT;
	for (size_t i = 0; i < sizeof text - 1; i++)
		assert_int_equal(kf_corpus_builder_add(b, text + i, 1), KF_OK);
	assert_int_equal(kf_corpus_builder_finish(b, "t", &parts, &why), KF_OK);
	struct kf_corpus_build_stats st;
	kf_corpus_builder_stats(b, &st);
	assert_int_equal(st.invalid_utf8, 0);
	assert_int_equal(st.shifted, 1);
	assert_int_equal(parts->nchars, whole->nchars);
	assert_int_equal(parts->nchars, 5); /* x ⇑ é 😀 y */
	assert_memory_equal(parts->codepoints, whole->codepoints, 5 * 4);
	assert_int_equal(parts->ntrigrams, whole->ntrigrams);
	assert_true(id_of(parts, 0x1F600) >= 0);
	kf_corpus_free(whole);
	kf_corpus_free(parts);
	kf_corpus_builder_free(b);
	kf_strbuf_release(&why);
}

static void test_text_documents(void **state)
{
	(void)state;
	struct kf_corpus_builder *b = kf_corpus_builder_new();
	struct kf_corpus *c;
	struct kf_strbuf why = KF_STRBUF_INIT;
	assert_int_equal(kf_corpus_builder_add(b, "ab", 2), KF_OK);
	kf_corpus_builder_break(b);
	assert_int_equal(kf_corpus_builder_add(b, "cd", 2), KF_OK);
	assert_int_equal(kf_corpus_builder_finish(b, "docs", &c, &why), KF_OK);
	assert_totals(c, 4, 2, 0, 0); /* no bc bigram, no skipgram across */
	assert_pct(c, "bc", false, -1.0);
	kf_corpus_free(c);
	/* The builder goes on after finish(). */
	assert_int_equal(kf_corpus_builder_add(b, "x", 1), KF_OK);
	assert_int_equal(kf_corpus_builder_finish(b, "docs", &c, &why), KF_OK);
	assert_int_equal(c->char_total, 5);
	assert_int_equal(c->bigram_total, 3); /* d x */
	kf_corpus_free(c);
	kf_corpus_builder_free(b);
	kf_strbuf_release(&why);
}

static void test_text_empty(void **state)
{
	(void)state;
	struct kf_corpus *c = (struct kf_corpus *)1;
	struct kf_strbuf why = KF_STRBUF_INIT;
	assert_int_equal(kf_corpus_build_mem(" \n\t ", 4, "blank", &c, &why), KF_ECORPUS);
	assert_null(c);
	assert_string_equal(why.buf, "blank: the text has no characters to count");
	kf_strbuf_release(&why);
}

static void test_text_files(void **state)
{
	(void)state;
	char p1[] = "/tmp/test_corpus_XXXXXX", p2[] = "/tmp/test_corpus_XXXXXX";
	int f1 = mkstemp(p1), f2 = mkstemp(p2);
	assert_true(f1 >= 0 && f2 >= 0);
	assert_int_equal(write(f1, "ab", 2), 2);
	assert_int_equal(write(f2, "cd", 2), 2);
	close(f1);
	close(f2);
	const char *paths[] = { p1, p2 };
	struct kf_corpus *c;
	struct kf_strbuf why = KF_STRBUF_INIT;
	assert_int_equal(kf_corpus_build_text(paths, 2, NULL, &c, &why), KF_OK);
	assert_totals(c, 4, 2, 0, 0); /* files do not join */
	assert_string_equal(c->name, p1 + 5); /* base name; it has no extension */
	kf_corpus_free(c);
	const char *missing[] = { "/nonexistent/x.txt" };
	assert_int_equal(kf_corpus_build_text(missing, 1, "m", &c, &why), KF_EIO);
	assert_null(c);
	assert_non_null(strstr(why.buf, "/nonexistent/x.txt: cannot open"));
	unlink(p1);
	unlink(p2);
	kf_strbuf_release(&why);
}

static void test_name_truncated(void **state)
{
	(void)state;
	struct kf_corpus *c;
	struct kf_strbuf why = KF_STRBUF_INIT;
	char name[100];
	/* 62 x then é (2 bytes): é does not fit in 63 bytes and is dropped whole. */
	memset(name, 'x', 62);
	strcpy(name + 62, "\xC3\xA9zzz");
	assert_int_equal(kf_corpus_build_mem("a", 1, name, &c, &why), KF_OK);
	assert_int_equal(strlen(c->name), 62);
	kf_corpus_free(c);
	assert_int_equal(kf_corpus_build_mem("a", 1, "bad\x01name", &c, &why), KF_OK);
	assert_string_equal(c->name, "bad?name");
	kf_corpus_free(c);
	kf_strbuf_release(&why);
}

/* ---- hand-made corpora and kf_corpus_check() -------------------------------- */

static struct kf_corpus *hand_made(void)
{
	struct kf_corpus *c = calloc(1, sizeof *c);
	strcpy(c->name, "hand");
	c->nchars = 3;
	c->codepoints = malloc(3 * sizeof *c->codepoints);
	c->chars = malloc(3 * sizeof *c->chars);
	c->codepoints[0] = 'x', c->codepoints[1] = 'y', c->codepoints[2] = 0x21D1;
	c->chars[0] = 50, c->chars[1] = 30, c->chars[2] = 20;
	c->nbigrams = 2;
	c->bigrams = malloc(2 * sizeof *c->bigrams);
	c->bigrams[0] = (struct kf_ngram2){ 0, 1, 60 };
	c->bigrams[1] = (struct kf_ngram2){ 1, 0, 40 };
	c->ntrigrams = 1;
	c->trigrams = calloc(1, sizeof *c->trigrams);
	c->trigrams[0] = (struct kf_ngram3){ 0, 1, 2, 100 };
	return c;
}

static void test_check_hand_made(void **state)
{
	(void)state;
	struct kf_strbuf why = KF_STRBUF_INIT;
	struct kf_corpus *c = hand_made();
	assert_int_equal(kf_corpus_char_id(c, 'y'), 1); /* linear search, no index yet */
	assert_int_equal(kf_corpus_check(c, &why), KF_OK);
	assert_non_null(c->index_slots);
	assert_int_equal(kf_corpus_char_id(c, 'x'), 0);
	assert_int_equal(kf_corpus_char_id(c, KF_CORPUS_SHIFT), 2);
	assert_int_equal(kf_corpus_char_id(c, 'z'), -1);

	c->bigrams[1].freq = 70; /* not sorted */
	assert_int_equal(kf_corpus_check(c, &why), KF_ECORPUS);
	assert_string_equal(why.buf, "hand: bigrams are not sorted by descending frequency at index 1");
	c->bigrams[1] = (struct kf_ngram2){ 0, 1, 40 }; /* duplicate */
	kf_strbuf_reset(&why);
	assert_int_equal(kf_corpus_check(c, &why), KF_ECORPUS);
	assert_string_equal(why.buf, "hand: bigram 'xy' appears twice");
	c->bigrams[1] = (struct kf_ngram2){ 0, 3, 40 }; /* id >= nchars */
	kf_strbuf_reset(&why);
	assert_int_equal(kf_corpus_check(c, &why), KF_ECORPUS);
	assert_string_equal(why.buf, "hand: bigram 1 uses a character id >= 3");
	c->bigrams[1] = (struct kf_ngram2){ 1, 0, 40 };
	c->codepoints[1] = 'x'; /* duplicate character */
	kf_strbuf_reset(&why);
	assert_int_equal(kf_corpus_check(c, &why), KF_ECORPUS);
	assert_string_equal(why.buf, "hand: character 'x' appears twice");
	c->codepoints[1] = 0xD800;
	kf_strbuf_reset(&why);
	assert_int_equal(kf_corpus_check(c, &why), KF_ECORPUS);
	assert_string_equal(why.buf, "hand: character id 1 is U+D800, not a Unicode scalar value");
	c->codepoints[1] = 'y';
	c->chars[2] = NAN;
	kf_strbuf_reset(&why);
	assert_int_equal(kf_corpus_check(c, &why), KF_ECORPUS);
	assert_non_null(strstr(why.buf, "character id 2 has percentage"));
	kf_corpus_free(c);
	kf_strbuf_release(&why);
}

/* ---- JSON ------------------------------------------------------------------ */

static void test_json_minimal(void **state)
{
	(void)state;
	struct kf_strbuf why = KF_STRBUF_INIT;
	struct kf_corpus *c;
	/* Unknown keys of any shape are skipped; maps may come in any order. */
	char *doc = doc_with("\"skipgrams2\":{\"ab\":1},\"x\":[1,-2.5e3,true,false,null,"
			     "{\"y\":[[]]},\"s\\n\\u00e9\"],");
	assert_int_equal(parse_json(doc, &c, &why), KF_OK);
	assert_string_equal(c->name, "mini");
	assert_totals(c, 10, 8, 6, 4);
	assert_int_equal(c->nchars, 2);
	assert_int_equal(c->codepoints[0], 'a');
	assert_true(c->chars[0] == 60.0 && c->chars[1] == 40.0);
	assert_int_equal(c->nbigrams, 2);
	assert_true(c->bigrams[0].a == 0 && c->bigrams[0].b == 1 && c->bigrams[0].freq == 75.0);
	assert_int_equal(c->nskipgrams, 1);
	assert_int_equal(c->ntrigrams, 1);
	assert_true(c->trigrams[0].a == 0 && c->trigrams[0].b == 1 && c->trigrams[0].c == 0);
	kf_corpus_free(c);
	free(doc);

	/* Sorting: chars given in ascending order get ids by frequency; no
	 * totals and no name (then the origin's base name). */
	assert_int_equal(parse_json(" \xEF\xBB\xBF", &c, &why), KF_ECORPUS); /* BOM not first */
	assert_int_equal(parse_json("\xEF\xBB\xBF{\"trigrams\":{},\"skipgrams\":{},\"bigrams\":"
				    "{\"\\u0062\\u0061\":1e1, \"ab\":2E+1},\"chars\":{\"a\":1,"
				    "\"b\":9.5e1,\"\\ud83d\\ude00\":4}}",
				    &c, &why),
			 KF_OK);
	assert_string_equal(c->name, "t");
	assert_totals(c, 0, 0, 0, 0);
	assert_int_equal(c->nchars, 3);
	assert_int_equal(c->codepoints[0], 'b');
	assert_int_equal(c->codepoints[1], 0x1F600);
	assert_int_equal(c->codepoints[2], 'a');
	assert_true(c->bigrams[0].freq == 20.0 && c->bigrams[0].a == 2 && c->bigrams[0].b == 0);
	assert_true(c->bigrams[1].freq == 10.0 && c->bigrams[1].a == 0 && c->bigrams[1].b == 2);
	kf_corpus_free(c);
	kf_strbuf_release(&why);
}

static void test_json_errors(void **state)
{
	(void)state;
	char *doc;
	assert_json_error("", "t.json:1:1: expected a JSON object, found end of input (byte 0)");
	assert_json_error("[1]", "expected a JSON object, found '['");
	assert_json_error("{\"chars\":{\"a\":1", "t.json:1:16: expected ',' or '}', found end of input");
	assert_json_error("{\"chars\":{\"a\":1}} x", "expected end of input after the top-level object");
	assert_json_error("{\"chars\":{\"a\":1},\"bigrams\":{},\"skipgrams\":{}}", "missing \"trigrams\"");
	assert_json_error("{\"chars\":{\"a\":01}}", "expected ',' or '}', found '1'");
	assert_json_error("{\"chars\":{\"a\":1.}}", "invalid number (digit expected after '.')");
	assert_json_error("{\"chars\":{\"a\":1e}}", "invalid number (digit expected in the exponent)");
	assert_json_error("{\"chars\":{\"a\":-}}", "expected a number, found '-'");
	assert_json_error("{\"chars\":{\"a\":+1}}", "expected a number, found '+'");
	assert_json_error("{\"chars\":{\"a\":1e999}}", "number out of range");
	assert_json_error("{\"chars\":{\"a\":-1}}", "t.json:1:15: percentage -1 not in [0, 100]");
	assert_json_error("{\"chars\":{\"a\":100.5}}", "percentage 100.5 not in [0, 100]");
	assert_json_error("{\"chars\":{\"ab\":1}}", "\"chars\" key 'ab' has 2 characters, expected 1");
	assert_json_error("{\"trigrams\":{\"th\":1}}", "\"trigrams\" key 'th' has 2 characters, expected 3");
	assert_json_error("{\"chars\":[]}", "expected an object, found '['");
	assert_json_error("{\"chars\":{},\"chars\":{}}", "duplicate key \"chars\"");
	assert_json_error("{\"chars\":{},\"characters\":{}}", "duplicate key \"characters\"");
	assert_json_error("{\"name\":1}", "expected a string, found '1'");
	assert_json_error("{\"char_total\":1.5}", "expected a non-negative integer");
	assert_json_error("{\"char_total\":-1}", "expected a non-negative integer");
	assert_json_error("{\"char_total\":18446744073709551616}", "integer too large");
	assert_json_error("{\"chars\":{\"a\xFF\":1}}", "invalid UTF-8 in a string");
	assert_json_error("{\"chars\":{\"a\x01\":1}}", "control character 0x01 in a string");
	assert_json_error("{\"chars\":{\"\\udc00\":1}}", "lone low surrogate \\uDC00");
	assert_json_error("{\"chars\":{\"\\ud800x\":1}}", "high surrogate \\uD800 not followed by a low one");
	assert_json_error("{\"chars\":{\"\\u12g4\":1}}", "invalid \\u escape");
	assert_json_error("{\"chars\":{\"\\x\":1}}", "invalid escape '\\x'");
	assert_json_error("{\"chars\":{\"a", "unterminated string");
	assert_json_error("{\"x\":tru}", "expected a value, found 't'");
	assert_json_error("{\"x\":{1:2}}", "expected a string key, found '1'");
	assert_json_error("{\"x\":[1 2]}", "expected ',' or ']', found '2'");
	assert_json_error("{\n  \"chars\": {\n    \"a\" 1", "t.json:3:9: expected ':', found '1' (byte 23)");

	/* Deep nesting in a skipped value is bounded. */
	char deep[300] = "{\"x\":";
	memset(deep + 5, '[', 200);
	deep[205] = '\0';
	assert_json_error(deep, "nesting deeper than 64 levels");

	/* Content errors found after parsing. */
	doc = doc_with("");
	doc[strlen(doc) - 8] = 'c'; /* trigram "aba" -> "abc": 'c' is not a char */
	assert_json_error(doc, "trigram 'abc' uses 'c', which is not in \"chars\"");
	free(doc);
	assert_json_error("{\"chars\":{\"a\":1,\"a\":2},\"bigrams\":{},\"skipgrams\":{},\"trigrams\":{}}",
			  "character 'a' appears twice");
	assert_json_error("{\"chars\":{\"a\":1},\"bigrams\":{\"aa\":1,\"aa\":1},\"skipgrams\":{},"
			  "\"trigrams\":{}}",
			  "bigram 'aa' appears twice");
	assert_json_error("{\"chars\":{},\"bigrams\":{},\"skipgrams\":{},\"trigrams\":{}}",
			  "the corpus has no characters");
}

static void test_json_file_errors(void **state)
{
	(void)state;
	struct kf_strbuf why = KF_STRBUF_INIT;
	struct kf_corpus *c = (struct kf_corpus *)1;
	assert_int_equal(kf_corpus_load_json("/nonexistent.json", &c, &why), KF_EIO);
	assert_null(c);
	assert_string_equal(why.buf, "/nonexistent.json: cannot open: No such file or directory");
	kf_strbuf_reset(&why);
	assert_int_equal(kf_corpus_load("/tmp", &c, &why), KF_EIO);
	assert_string_equal(why.buf, "/tmp: is a directory");
	/* Plain text given where a corpus is expected. */
	char path[] = "/tmp/test_corpus_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "hello", 5), 5);
	close(fd);
	kf_strbuf_reset(&why);
	assert_int_equal(kf_corpus_load(path, &c, &why), KF_ECORPUS);
	assert_null(c);
	assert_non_null(strstr(why.buf, ": neither a .kfc corpus nor Oxeylyzer JSON"));
	unlink(path);
	kf_strbuf_release(&why);
}

/* ---- .kfc -------------------------------------------------------------------- */

static void assert_same_corpus(const struct kf_corpus *a, const struct kf_corpus *b)
{
	assert_string_equal(a->name, b->name);
	assert_int_equal(a->nchars, b->nchars);
	assert_memory_equal(a->codepoints, b->codepoints, a->nchars * sizeof *a->codepoints);
	assert_memory_equal(a->chars, b->chars, a->nchars * sizeof *a->chars);
	assert_int_equal(a->char_total, b->char_total);
	assert_int_equal(a->bigram_total, b->bigram_total);
	assert_int_equal(a->skipgram_total, b->skipgram_total);
	assert_int_equal(a->trigram_total, b->trigram_total);
	assert_int_equal(a->nbigrams, b->nbigrams);
	assert_int_equal(a->nskipgrams, b->nskipgrams);
	assert_int_equal(a->ntrigrams, b->ntrigrams);
	if (a->nbigrams)
		assert_memory_equal(a->bigrams, b->bigrams, a->nbigrams * sizeof *a->bigrams);
	if (a->nskipgrams)
		assert_memory_equal(a->skipgrams, b->skipgrams, a->nskipgrams * sizeof *a->skipgrams);
	for (size_t i = 0; i < a->ntrigrams; i++) {
		assert_int_equal(a->trigrams[i].a, b->trigrams[i].a);
		assert_int_equal(a->trigrams[i].b, b->trigrams[i].b);
		assert_int_equal(a->trigrams[i].c, b->trigrams[i].c);
		assert_true(a->trigrams[i].freq == b->trigrams[i].freq);
	}
}

static const char sample_text[] = "The quick brown fox jumps over the lazy dog. \"Hello\", she said; "
				  "it's 10:30 \xE2\x80\x94 caf\xC3\xA9 \xF0\x9F\x98\x80!";

/* A valid .kfc image in *out (free it). */
static size_t sample_kfc(char **out)
{
	struct kf_corpus *c = build(sample_text);
	struct kf_strbuf bytes = KF_STRBUF_INIT;
	assert_int_equal(kf_corpus_encode(c, &bytes), KF_OK);
	kf_corpus_free(c);
	size_t len;
	*out = kf_strbuf_detach(&bytes, &len);
	return len;
}

static void put32(char *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void put64(char *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static void fix_crc(char *f, size_t len)
{
	put32(f + len - 8, kf__crc32(0, f, len - 8));
}

static void assert_kfc_error(const char *f, size_t len, enum kf_err want, const char *message)
{
	struct kf_strbuf why = KF_STRBUF_INIT;
	struct kf_corpus *c = (struct kf_corpus *)1;
	enum kf_err err = kf_corpus_parse_file(f, len, "t.kfc", &c, &why);
	if (err != want || !strstr(why.buf, message))
		fprintf(stderr, "got %d '%s', want '%s'\n", err, why.buf, message);
	assert_int_equal(err, want);
	assert_null(c);
	assert_non_null(strstr(why.buf, message));
	kf_strbuf_release(&why);
}

static void test_kfc_round_trip(void **state)
{
	(void)state;
	struct kf_corpus *c = build(sample_text), *back;
	struct kf_strbuf why = KF_STRBUF_INIT, bytes = KF_STRBUF_INIT;
	char path[] = "/tmp/test_corpus_XXXXXX.kfc";
	int fd = mkstemps(path, 4);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(kf_corpus_save(c, path, &why), KF_OK);
	assert_int_equal(kf_corpus_load_file(path, &back, &why), KF_OK);
	assert_same_corpus(c, back);
	assert_non_null(back->storage); /* used in place */
	assert_int_equal(kf_corpus_char_id(back, 0x1F600), kf_corpus_char_id(c, 0x1F600));
	kf_corpus_free(back);
	/* kf_corpus_load sniffs the magic. */
	assert_int_equal(kf_corpus_load(path, &back, &why), KF_OK);
	assert_same_corpus(c, back);
	kf_corpus_free(back);
	/* The file is the encoding, byte for byte; encoding is deterministic. */
	assert_int_equal(kf_corpus_encode(c, &bytes), KF_OK);
	assert_int_equal(kf_corpus_parse_file(bytes.buf, bytes.len, "mem", &back, &why), KF_OK);
	assert_same_corpus(c, back);
	kf_corpus_free(back);
	/* JSON is refused by the .kfc loader. */
	assert_int_equal(kf_corpus_parse_file("{}", 2, "j", &back, &why), KF_ECORPUS);
	unlink(path);
	kf_corpus_free(c);
	kf_strbuf_release(&why);
	kf_strbuf_release(&bytes);
}

static void test_kfc_errors(void **state)
{
	(void)state;
	char *f;
	size_t len = sample_kfc(&f);
	char *g = malloc(len + 8);
	uint32_t nchars;
	memcpy(&nchars, f + 24, 4);

	assert_kfc_error(f, 0, KF_ECORPUS, "t.kfc: not a .kfc corpus (bad magic)");
	memcpy(g, f, len);
	g[0] = 'X';
	assert_kfc_error(g, len, KF_ECORPUS, "bad magic");
	/* Every truncation is refused. */
	for (size_t n = 0; n < len; n++) {
		struct kf_strbuf why = KF_STRBUF_INIT;
		struct kf_corpus *c;
		assert_int_equal(kf_corpus_parse_file(f, n, "t.kfc", &c, &why), KF_ECORPUS);
		kf_strbuf_release(&why);
	}
	assert_kfc_error(f, 100, KF_ECORPUS, "truncated: 100 bytes, the header alone has 160");
	assert_kfc_error(f, len - 8, KF_ECORPUS, "truncated: the header says");
	memcpy(g, f, len);
	memset(g + len, 0, 8);
	assert_kfc_error(g, len + 8, KF_ECORPUS, "(trailing data)");
	/* Version. */
	memcpy(g, f, len);
	put32(g + 8, 2);
	assert_kfc_error(g, len, KF_ECORPUS_VERSION, "format version 2, this build reads version 1");
	/* Checksum: one flipped bit in the last double. */
	memcpy(g, f, len);
	g[len - 9] ^= 1;
	assert_kfc_error(g, len, KF_ECORPUS, "checksum mismatch");
	/* Counts beyond the file size. */
	memcpy(g, f, len);
	put64(g + 64, UINT64_MAX / 2);
	fix_crc(g, len);
	assert_kfc_error(g, len, KF_ECORPUS, "exceed what");
	memcpy(g, f, len);
	put64(g + 72, 1 + *(uint64_t *)(void *)(f + 72));
	fix_crc(g, len);
	assert_kfc_error(g, len, KF_ECORPUS, "the counts need");
	memcpy(g, f, len);
	put32(g + 24, 0x200000);
	fix_crc(g, len);
	assert_kfc_error(g, len, KF_ECORPUS, "exceed what");
	/* Ids >= nchars: the first bigram's a. */
	size_t bigrams = 160 + ((nchars * 4 + 7) & ~7u) + nchars * 8;
	memcpy(g, f, len);
	put32(g + bigrams, nchars);
	fix_crc(g, len);
	assert_kfc_error(g, len, KF_ECORPUS, "bigram 0 uses a character id >=");
	/* A NaN percentage. */
	memcpy(g, f, len);
	put64(g + bigrams + 8, 0x7FF8000000000000ull);
	fix_crc(g, len);
	assert_kfc_error(g, len, KF_ECORPUS, "bigram 0 has percentage nan");
	/* Not sorted: the second char's percentage above the first. */
	memcpy(g, f, len);
	double big = 99.0;
	memcpy(g + bigrams - nchars * 8 + 8, &big, 8);
	fix_crc(g, len);
	assert_kfc_error(g, len, KF_ECORPUS, "characters are not sorted");
	/* A codepoint that is not a scalar value. */
	memcpy(g, f, len);
	put32(g + 160, 0x110000);
	fix_crc(g, len);
	assert_kfc_error(g, len, KF_ECORPUS, "not a Unicode scalar value");
	/* Name without terminator, reserved fields, padding. */
	memcpy(g, f, len);
	memset(g + 88, 'n', 64);
	fix_crc(g, len);
	assert_kfc_error(g, len, KF_ECORPUS, "the name is not NUL-terminated printable UTF-8");
	memcpy(g, f, len);
	put32(g + 28, 1);
	fix_crc(g, len);
	assert_kfc_error(g, len, KF_ECORPUS, "reserved header fields are not zero");
	memcpy(g, f, len);
	put32(g + len - 4, 1);
	assert_kfc_error(g, len, KF_ECORPUS, "padding bytes are not zero");
	memcpy(g, f, len);
	put32(g + 12, 128);
	assert_kfc_error(g, len, KF_ECORPUS, "header size 128, expected 160");
	free(f);
	free(g);
}

static void test_crc32(void **state)
{
	(void)state;
	assert_int_equal(kf__crc32(0, "123456789", 9), 0xCBF43926u);
	unsigned char buf[1000];
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (unsigned char)(i * 7919 >> 3);
	for (size_t n = 0; n < sizeof buf; n += 37)
		assert_int_equal(kf__crc32(0, buf + 1, n), crc32(0, buf + 1, (uInt)n));
	/* Incremental use continues a checksum. */
	assert_int_equal(kf__crc32(kf__crc32(0, buf, 300), buf + 300, 700), crc32(0, buf, 1000));
}

/* ---- the reference corpora ----------------------------------------------------- */

static void test_shai(void **state)
{
	(void)state;
	if (access(SHAI, R_OK)) {
		skip();
		return;
	}
	struct kf_strbuf why = KF_STRBUF_INIT, bytes = KF_STRBUF_INIT;
	struct kf_corpus *c, *back;
	assert_int_equal(kf_corpus_load(SHAI, &c, &why), KF_OK);
	assert_string_equal(c->name, "shai");
	assert_totals(c, 449763611, 359254204, 361792794, 271283623);
	assert_int_equal(c->nchars, 44);
	assert_int_equal(c->nbigrams, 1932);
	assert_int_equal(c->nskipgrams, 1935);
	assert_int_equal(c->ntrigrams, 57679);
	assert_int_equal(c->codepoints[0], 'e');
	assert_true(c->chars[0] == 11.227569497613269);
	assert_int_equal(kf_corpus_char_id(c, KF_CORPUS_SHIFT), 11);
	assert_true(c->chars[11] == 3.0501049138899767);
	assert_pct(c, "th", false, 2.981873525967145);
	assert_pct(c, "the", false, c->trigrams[0].freq);
	assert_pct(c, ".\xE2\x87\x91", true, c->skipgrams[3].freq); /* ". T" */
	assert_int_equal(kf_corpus_char_id(c, 'A'), -1);
	/* Converted to .kfc it loads back the same. */
	assert_int_equal(kf_corpus_encode(c, &bytes), KF_OK);
	assert_int_equal(kf_corpus_parse_file(bytes.buf, bytes.len, "shai.kfc", &back, &why), KF_OK);
	assert_same_corpus(c, back);
	kf_corpus_free(back);
	kf_corpus_free(c);
	if (access(MONKEYRACER, R_OK) == 0) {
		assert_int_equal(kf_corpus_load_json(MONKEYRACER, &c, &why), KF_OK);
		assert_int_equal(c->char_total, 1911891);
		assert_int_equal(c->nchars, 47);
		kf_corpus_free(c);
	}
	kf_strbuf_release(&why);
	kf_strbuf_release(&bytes);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_ab_ab),
		cmocka_unit_test(test_text_the_cat),
		cmocka_unit_test(test_text_breaks),
		cmocka_unit_test(test_text_shift),
		cmocka_unit_test(test_text_normalization),
		cmocka_unit_test(test_text_invalid_utf8),
		cmocka_unit_test(test_text_split_sequences),
		cmocka_unit_test(test_text_documents),
		cmocka_unit_test(test_text_empty),
		cmocka_unit_test(test_text_files),
		cmocka_unit_test(test_name_truncated),
		cmocka_unit_test(test_check_hand_made),
		cmocka_unit_test(test_json_minimal),
		cmocka_unit_test(test_json_errors),
		cmocka_unit_test(test_json_file_errors),
		cmocka_unit_test(test_kfc_round_trip),
		cmocka_unit_test(test_kfc_errors),
		cmocka_unit_test(test_crc32),
		cmocka_unit_test(test_shai),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
