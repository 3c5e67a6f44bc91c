/* Unit tests for telemetry/expo: number spelling, escaping, Accept
 * negotiation, hand-built snapshots, and the golden files of both formats.
 *
 * KF_UPDATE_GOLDEN=1 rewrites tests/unit/golden/ from the current output
 * (then review the diff: the golden files are the contract). */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kf_config.h"
#include "telemetry/contract.h"
#include "telemetry/expo.h"
#include "telemetry/metrics.h"
#include "test_metrics_sample.h"

#define GOLDEN_DIR KF_SOURCE_ROOT "/tests/unit/golden/"

static void test_doubles(void **state)
{
	(void)state;
	static const struct {
		double v;
		const char *text, *om;
	} cases[] = {
		{ 0, "0", "0.0" },
		{ -0.0, "0", "0.0" },
		{ 1, "1", "1.0" },
		{ -1, "-1", "-1.0" },
		{ 0.25, "0.25", "0.25" },
		{ 2500, "2500", "2500.0" },
		{ 123456, "123456", "123456.0" },
		{ 100000, "100000", "100000.0" },
		{ 999999, "999999", "999999.0" },
		{ 1e6, "1e+06", "1e+06" },
		{ 1234567, "1.234567e+06", "1.234567e+06" },
		{ 1.5e-7, "1.5e-07", "1.5e-07" },
		{ 0.0001, "0.0001", "0.0001" },
		{ 0.00001, "1e-05", "1e-05" },
		{ 0.1 + 0.2, "0.30000000000000004", "0.30000000000000004" },
		{ 1e21, "1e+21", "1e+21" },
		{ 1e100, "1e+100", "1e+100" },
		{ DBL_MAX, "1.7976931348623157e+308", "1.7976931348623157e+308" },
		{ 5e-324, "5e-324", "5e-324" },
		{ -2.5, "-2.5", "-2.5" },
		{ 1.0 / 3, "0.3333333333333333", "0.3333333333333333" },
		{ 1700000000.5, "1.7000000005e+09", "1.7000000005e+09" },
		{ INFINITY, "+Inf", "+Inf" },
		{ -INFINITY, "-Inf", "-Inf" },
		{ NAN, "NaN", "NaN" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct kf_strbuf a = KF_STRBUF_INIT, b = KF_STRBUF_INIT;
		kf_expo_add_double(&a, cases[i].v, KF_EXPO_TEXT);
		kf_expo_add_double(&b, cases[i].v, KF_EXPO_OPENMETRICS);
		assert_string_equal(a.buf, cases[i].text);
		assert_string_equal(b.buf, cases[i].om);
		/* Finite values read back exactly. */
		if (isfinite(cases[i].v))
			assert_true(strtod(a.buf, NULL) == cases[i].v);
		kf_strbuf_release(&a);
		kf_strbuf_release(&b);
	}
}

static void test_escaping(void **state)
{
	(void)state;
	static const char in[] = "a\\b\"c\nd\te\xc3\xa9";
	struct kf_strbuf sb = KF_STRBUF_INIT;
	kf_expo_add_label_value(&sb, in);
	assert_string_equal(sb.buf, "a\\\\b\\\"c\\nd\te\xc3\xa9");
	kf_strbuf_reset(&sb);
	kf_expo_add_help(&sb, in, KF_EXPO_TEXT);
	assert_string_equal(sb.buf, "a\\\\b\"c\\nd\te\xc3\xa9");
	kf_strbuf_reset(&sb);
	kf_expo_add_help(&sb, in, KF_EXPO_OPENMETRICS);
	assert_string_equal(sb.buf, "a\\\\b\\\"c\\nd\te\xc3\xa9");
	kf_strbuf_reset(&sb);
	kf_expo_add_label_value(&sb, "");
	assert_string_equal(sb.buf, "");
	kf_strbuf_release(&sb);
}

#define OM KF_EXPO_OPENMETRICS_CONTENT_TYPE
#define OM001 "application/openmetrics-text; version=0.0.1; charset=utf-8"
#define TXT KF_EXPO_TEXT_CONTENT_TYPE

static void test_negotiate(void **state)
{
	(void)state;
	static const struct {
		const char *accept;
		enum kf_expo_format fmt;
		const char *ctype;
	} cases[] = {
		{ NULL, KF_EXPO_TEXT, TXT },
		{ "", KF_EXPO_TEXT, TXT },
		{ "*/*", KF_EXPO_TEXT, TXT },
		{ "text/plain", KF_EXPO_TEXT, TXT },
		{ "text/html", KF_EXPO_TEXT, TXT },
		{ "application/json", KF_EXPO_TEXT, TXT },
		/* What Prometheus 2.42 sends. */
		{ "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
		  "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
		  KF_EXPO_OPENMETRICS, OM },
		/* Prometheus with scrape_classic... older: text first. */
		{ "text/plain;version=0.0.4;q=1,*/*;q=0.1", KF_EXPO_TEXT, TXT },
		{ "application/openmetrics-text", KF_EXPO_OPENMETRICS, OM },
		{ "Application/OpenMetrics-Text; Version=1.0.0", KF_EXPO_OPENMETRICS, OM },
		{ "application/openmetrics-text; version=\"1.0.0\"", KF_EXPO_OPENMETRICS, OM },
		{ "application/openmetrics-text;version=0.0.1", KF_EXPO_OPENMETRICS, OM001 },
		{ "application/openmetrics-text;version=2.0.0", KF_EXPO_TEXT, TXT },
		{ "text/plain;version=1.0.0", KF_EXPO_TEXT, TXT },
		/* q decides; ties go to the more specific, then to the first. */
		{ "text/plain;q=0.5, application/openmetrics-text;q=0.6", KF_EXPO_OPENMETRICS, OM },
		{ "text/plain;q=0.7, application/openmetrics-text;q=0.6", KF_EXPO_TEXT, TXT },
		{ "text/plain, application/openmetrics-text", KF_EXPO_TEXT, TXT },
		{ "application/openmetrics-text, text/plain", KF_EXPO_OPENMETRICS, OM },
		{ "*/*, application/openmetrics-text", KF_EXPO_OPENMETRICS, OM },
		{ "*/*;q=1, application/openmetrics-text;q=0.999", KF_EXPO_TEXT, TXT },
		{ "text/*;q=0.5, application/openmetrics-text;q=0.4", KF_EXPO_TEXT, TXT },
		/* q=0 excludes; an unparsable q drops the range. */
		{ "application/openmetrics-text;q=0", KF_EXPO_TEXT, TXT },
		{ "application/openmetrics-text;q=0.000, text/plain;q=0.001", KF_EXPO_TEXT, TXT },
		{ "application/openmetrics-text;q=1.5", KF_EXPO_TEXT, TXT },
		{ "application/openmetrics-text;q=abc", KF_EXPO_TEXT, TXT },
		{ "application/openmetrics-text;q=0.12345", KF_EXPO_TEXT, TXT },
		{ "application/openmetrics-text;q=1.000", KF_EXPO_OPENMETRICS, OM },
		{ "application/openmetrics-text ; q=0.3 ; version=1.0.0 , text/plain;q=0.2",
		  KF_EXPO_OPENMETRICS, OM },
		{ ",,;,application/openmetrics-text;;", KF_EXPO_OPENMETRICS, OM },
		{ "application/openmetrics-text;version", KF_EXPO_OPENMETRICS, OM },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *ctype = NULL;
		enum kf_expo_format fmt = kf_expo_negotiate(cases[i].accept, &ctype);
		if (fmt != cases[i].fmt || strcmp(ctype, cases[i].ctype) != 0)
			fail_msg("Accept \"%s\": got %d %s", cases[i].accept ? cases[i].accept : "(null)",
				 fmt, ctype);
	}
	assert_int_equal(kf_expo_negotiate("application/openmetrics-text", NULL),
			 KF_EXPO_OPENMETRICS);
	assert_string_equal(kf_expo_content_type(KF_EXPO_TEXT),
			    "text/plain; version=0.0.4; charset=utf-8");
	assert_string_equal(kf_expo_content_type(KF_EXPO_OPENMETRICS),
			    "application/openmetrics-text; version=1.0.0; charset=utf-8");
}

/* A snapshot built by hand, as the gateway will: exact output. */
static void test_handbuilt(void **state)
{
	(void)state;
	/* The contract families, at 0, as the gateway starts them. */
	struct kf_msnap snap = KF_MSNAP_INIT;
	assert_int_equal(kf_contract_add_to_snapshot(&snap, true), KF_OK);
	struct kf_msnap_family *jt = kf_msnap_find_family(&snap, "keyforge_jobs_total");
	kf_msnap_family_find_series(jt, (const char *[]){ "killed" })->value = 2;
	kf_msnap_sort(&snap);
	/* Two counters, in the order they were added (not sorted). */
	struct kf_msnap two = KF_MSNAP_INIT;
	static const char *const st[] = { "status" };
	struct kf_metric_desc hd = kf_contract_descs[KF_CONTRACT_WORKER_HEARTBEATS];
	struct kf_metric_desc jd = { .name = "keyforge_jobs_total", .help = "Jobs.",
				     .type = KF_METRIC_COUNTER, .label_names = st, .n_labels = 1 };
	struct kf_msnap_family *f;
	struct kf_msnap_series *s;
	assert_int_equal(kf_msnap_add_family(&two, &hd, &f), KF_OK);
	assert_int_equal(kf_msnap_family_add_series(f, NULL, &s), KF_OK);
	s->value = 12;
	assert_int_equal(kf_msnap_add_family(&two, &jd, &f), KF_OK);
	assert_int_equal(kf_msnap_family_add_series(f, (const char *[]){ "killed" }, &s), KF_OK);
	s->value = 2;
	assert_int_equal(kf_msnap_family_add_series(f, (const char *[]){ "a\"b" }, &s), KF_OK);
	s->value = 0.5;

	struct kf_strbuf sb = KF_STRBUF_INIT;
	assert_int_equal(kf_expo_write(&sb, &two, KF_EXPO_TEXT), KF_OK);
	assert_string_equal(sb.buf,
		"# HELP keyforge_worker_heartbeats Heartbeats received from workers, the "
		"liveness signal of connected workers.\n"
		"# TYPE keyforge_worker_heartbeats counter\n"
		"keyforge_worker_heartbeats 12\n"
		"# HELP keyforge_jobs_total Jobs.\n"
		"# TYPE keyforge_jobs_total counter\n"
		"keyforge_jobs_total{status=\"killed\"} 2\n"
		"keyforge_jobs_total{status=\"a\\\"b\"} 0.5\n");
	kf_strbuf_reset(&sb);
	assert_int_equal(kf_expo_write(&sb, &two, KF_EXPO_OPENMETRICS), KF_OK);
	assert_string_equal(sb.buf,
		"# TYPE keyforge_worker_heartbeats counter\n"
		"# HELP keyforge_worker_heartbeats Heartbeats received from workers, the "
		"liveness signal of connected workers.\n"
		"keyforge_worker_heartbeats_total 12.0\n"
		"# TYPE keyforge_jobs counter\n"
		"# HELP keyforge_jobs Jobs.\n"
		"keyforge_jobs_total{status=\"killed\"} 2.0\n"
		"keyforge_jobs_total{status=\"a\\\"b\"} 0.5\n"
		"# EOF\n");

	/* Two snapshots in one body: one # EOF, at the end. */
	kf_strbuf_reset(&sb);
	kf_expo_write_families(&sb, &snap, KF_EXPO_OPENMETRICS);
	struct kf_msnap g = KF_MSNAP_INIT;
	struct kf_metric_desc gd = { .name = "gw_up", .help = "", .type = KF_METRIC_GAUGE };
	assert_int_equal(kf_msnap_add_family(&g, &gd, &f), KF_OK);
	assert_int_equal(kf_msnap_family_add_series(f, NULL, &s), KF_OK);
	s->value = 1;
	kf_expo_write_families(&sb, &g, KF_EXPO_OPENMETRICS);
	assert_int_equal(kf_expo_write_end(&sb, KF_EXPO_OPENMETRICS), KF_OK);
	const char *tail = "# TYPE gw_up gauge\ngw_up 1.0\n# EOF\n";
	assert_true(sb.len > strlen(tail));
	assert_string_equal(sb.buf + sb.len - strlen(tail), tail);
	assert_non_null(strstr(sb.buf, "keyforge_jobs_total{status=\"killed\"} 2.0\n"));
	assert_null(strstr(sb.buf, "# EOF\n# TYPE"));
	kf_strbuf_release(&sb);
	kf_msnap_release(&g);
	kf_msnap_release(&two);
	kf_msnap_release(&snap);
}

static void test_histogram_text(void **state)
{
	(void)state;
	struct kf_msnap snap = KF_MSNAP_INIT;
	static const double b[] = { 0.5, 1, 1e6 };
	static const char *const l[] = { "x" };
	struct kf_metric_desc d = { .name = "h", .help = "A histogram.", .type = KF_METRIC_HISTOGRAM,
				    .buckets = b, .n_buckets = 3, .label_names = l, .n_labels = 1 };
	struct kf_msnap_family *f;
	struct kf_msnap_series *s;
	assert_int_equal(kf_msnap_add_family(&snap, &d, &f), KF_OK);
	assert_int_equal(kf_msnap_family_add_series(f, (const char *[]){ "y" }, &s), KF_OK);
	s->buckets[0] = 1;
	s->buckets[1] = 2;
	s->buckets[2] = 2;
	s->count = 3;
	s->sum = 1e7 + 1.25;
	struct kf_strbuf sb = KF_STRBUF_INIT;
	assert_int_equal(kf_expo_write(&sb, &snap, KF_EXPO_TEXT), KF_OK);
	assert_string_equal(sb.buf,
		"# HELP h A histogram.\n"
		"# TYPE h histogram\n"
		"h_bucket{x=\"y\",le=\"0.5\"} 1\n"
		"h_bucket{x=\"y\",le=\"1\"} 2\n"
		"h_bucket{x=\"y\",le=\"1e+06\"} 2\n"
		"h_bucket{x=\"y\",le=\"+Inf\"} 3\n"
		"h_sum{x=\"y\"} 1.000000125e+07\n"
		"h_count{x=\"y\"} 3\n");
	kf_strbuf_reset(&sb);
	assert_int_equal(kf_expo_write(&sb, &snap, KF_EXPO_OPENMETRICS), KF_OK);
	assert_string_equal(sb.buf,
		"# TYPE h histogram\n"
		"# HELP h A histogram.\n"
		"h_bucket{x=\"y\",le=\"0.5\"} 1\n"
		"h_bucket{x=\"y\",le=\"1.0\"} 2\n"
		"h_bucket{x=\"y\",le=\"1e+06\"} 2\n"
		"h_bucket{x=\"y\",le=\"+Inf\"} 3\n"
		"h_sum{x=\"y\"} 1.000000125e+07\n"
		"h_count{x=\"y\"} 3\n"
		"# EOF\n");
	kf_strbuf_release(&sb);
	kf_msnap_release(&snap);
}

static void test_empty(void **state)
{
	(void)state;
	struct kf_msnap snap = KF_MSNAP_INIT;
	struct kf_strbuf sb = KF_STRBUF_INIT;
	assert_int_equal(kf_expo_write(&sb, &snap, KF_EXPO_TEXT), KF_OK);
	assert_string_equal(sb.buf, "");
	assert_int_equal(kf_expo_write(&sb, &snap, KF_EXPO_OPENMETRICS), KF_OK);
	assert_string_equal(sb.buf, "# EOF\n");
	kf_strbuf_release(&sb);
}

/* --- golden files -------------------------------------------------------------- */

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct kf_strbuf sb = KF_STRBUF_INIT;
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		kf_strbuf_add(&sb, buf, n);
	fclose(f);
	return kf_strbuf_detach(&sb, NULL);
}

static void check_golden(const char *name, const char *got)
{
	char path[512];
	snprintf(path, sizeof path, "%s%s", GOLDEN_DIR, name);
	const char *update = getenv("KF_UPDATE_GOLDEN");
	if (update && strcmp(update, "1") == 0) {
		FILE *f = fopen(path, "wb");
		assert_non_null(f);
		fputs(got, f);
		fclose(f);
		return;
	}
	char *want = read_file(path);
	if (!want)
		fail_msg("missing golden file %s (KF_UPDATE_GOLDEN=1 writes it)", path);
	if (strcmp(want, got) != 0) {
		/* Point at the first line that differs. */
		size_t i = 0, line = 1;
		while (want[i] && want[i] == got[i])
			line += want[i++] == '\n';
		free(want);
		fail_msg("%s differs from the output at line %zu", path, line);
	}
	free(want);
}

static void test_golden(void **state)
{
	(void)state;
	struct kf_metrics *reg;
	assert_int_equal(kf_metrics_new(&reg), KF_OK);
	assert_int_equal(kf_test_metrics_sample(reg), KF_OK);
	struct kf_msnap snap = KF_MSNAP_INIT;
	assert_int_equal(kf_metrics_snapshot(reg, 0, &snap), KF_OK);
	assert_int_equal(kf_msnap_check(&snap), KF_OK);
	struct kf_strbuf sb = KF_STRBUF_INIT;
	assert_int_equal(kf_expo_write(&sb, &snap, KF_EXPO_TEXT), KF_OK);
	check_golden("sample.prom", sb.buf);
	kf_strbuf_reset(&sb);
	assert_int_equal(kf_expo_write(&sb, &snap, KF_EXPO_OPENMETRICS), KF_OK);
	check_golden("sample.om", sb.buf);
	kf_strbuf_release(&sb);
	kf_msnap_release(&snap);
	kf_metrics_free(reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_doubles),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_negotiate),
		cmocka_unit_test(test_handbuilt),
		cmocka_unit_test(test_histogram_text),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_golden),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
