/* Unit tests for telemetry/metrics*, process and contract: registry semantics,
 * snapshots and deltas, threads, /proc parsing, the contract metrics. */
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "telemetry/contract.h"
#include "telemetry/metrics.h"
#include "telemetry/process.h"

static int setup_reg(void **state)
{
	struct kf_metrics *reg;
	if (kf_metrics_new(&reg))
		return -1;
	*state = reg;
	return 0;
}

static int teardown_reg(void **state)
{
	kf_metrics_free(*state);
	return 0;
}

static const char *const one_label[] = { "status" };

static struct kf_msnap_series *find_series(const struct kf_msnap *snap, const char *family,
					   const char *const *values)
{
	struct kf_msnap_family *f = kf_msnap_find_family(snap, family);
	return f ? kf_msnap_family_find_series(f, values) : NULL;
}

/* --- names and descriptors --------------------------------------------------------- */

static void test_name_validation(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		bool metric, label;
	} cases[] = {
		{ "a", true, true },
		{ "_x", true, true },
		{ "keyforge_jobs_total", true, true },
		{ "rule:rate5m", true, false },
		{ ":x", true, false },
		{ "A9_z", true, true },
		{ "", false, false },
		{ "9a", false, false },
		{ "a-b", false, false },
		{ "a.b", false, false },
		{ "a b", false, false },
		{ "é", false, false },
		{ "__name__", true, false },
		{ "_", true, true },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_int_equal(kf_metric_name_valid(cases[i].name), cases[i].metric);
		assert_int_equal(kf_metric_label_name_valid(cases[i].name), cases[i].label);
	}
	assert_false(kf_metric_name_valid(NULL));
	assert_false(kf_metric_label_name_valid(NULL));
}

static void test_desc_check(void **state)
{
	(void)state;
	static const char *const bad_label[] = { "__x" };
	static const char *const le_label[] = { "le" };
	static const char *const dup_labels[] = { "a", "a" };
	static const double up[] = { 1, 2 }, flat[] = { 1, 1 }, down[] = { 2, 1 };
	const double inf[] = { 1, INFINITY }, nan_b[] = { NAN };
	static const struct {
		struct kf_metric_desc d;
		enum kf_err want;
	} cases[] = {
		{ { .name = "ok", .help = "h", .type = KF_METRIC_GAUGE }, KF_OK },
		{ { .name = "ok", .help = "", .type = KF_METRIC_GAUGE }, KF_OK },
		{ { .name = "1bad", .help = "h", .type = KF_METRIC_GAUGE }, KF_EMETRICNAME },
		{ { .name = NULL, .help = "h", .type = KF_METRIC_GAUGE }, KF_EMETRICNAME },
		{ { .name = "ok", .help = NULL, .type = KF_METRIC_GAUGE }, KF_EINVAL },
		{ { .name = "ok", .help = "\xff", .type = KF_METRIC_GAUGE }, KF_EUTF8 },
		{ { .name = "ok", .help = "h", .type = (enum kf_metric_type)7 }, KF_EINVAL },
		{ { .name = "ok", .help = "h", .type = KF_METRIC_GAUGE, .label_names = bad_label,
		    .n_labels = 1 }, KF_EMETRICNAME },
		{ { .name = "ok", .help = "h", .type = KF_METRIC_GAUGE, .label_names = le_label,
		    .n_labels = 1 }, KF_OK },
		{ { .name = "ok", .help = "h", .type = KF_METRIC_HISTOGRAM, .label_names = le_label,
		    .n_labels = 1 }, KF_EMETRICNAME },
		{ { .name = "ok", .help = "h", .type = KF_METRIC_GAUGE, .label_names = dup_labels,
		    .n_labels = 2 }, KF_EMETRICNAME },
		{ { .name = "ok", .help = "h", .type = KF_METRIC_GAUGE, .n_labels = 1 }, KF_EINVAL },
		{ { .name = "h", .help = "h", .type = KF_METRIC_HISTOGRAM, .buckets = up,
		    .n_buckets = 2 }, KF_OK },
		{ { .name = "h", .help = "h", .type = KF_METRIC_HISTOGRAM }, KF_OK },
		{ { .name = "h", .help = "h", .type = KF_METRIC_HISTOGRAM, .buckets = flat,
		    .n_buckets = 2 }, KF_EINVAL },
		{ { .name = "h", .help = "h", .type = KF_METRIC_HISTOGRAM, .buckets = down,
		    .n_buckets = 2 }, KF_EINVAL },
		{ { .name = "g", .help = "h", .type = KF_METRIC_GAUGE, .buckets = up,
		    .n_buckets = 2 }, KF_EINVAL },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		assert_int_equal(kf_metric_desc_check(&cases[i].d), cases[i].want);
	struct kf_metric_desc d = { .name = "h", .help = "h", .type = KF_METRIC_HISTOGRAM,
				    .buckets = inf, .n_buckets = 2 };
	assert_int_equal(kf_metric_desc_check(&d), KF_EINVAL);
	d.buckets = nan_b;
	d.n_buckets = 1;
	assert_int_equal(kf_metric_desc_check(&d), KF_EINVAL);
}

static void test_desc_collide(void **state)
{
	(void)state;
	static const struct {
		const char *a;
		enum kf_metric_type ta;
		const char *b;
		enum kf_metric_type tb;
		bool collide;
	} cases[] = {
		{ "x", KF_METRIC_HISTOGRAM, "x_count", KF_METRIC_GAUGE, true },
		{ "x", KF_METRIC_HISTOGRAM, "x_bucket", KF_METRIC_COUNTER, true },
		{ "x", KF_METRIC_HISTOGRAM, "x_sum", KF_METRIC_GAUGE, true },
		{ "x", KF_METRIC_HISTOGRAM, "x_total", KF_METRIC_GAUGE, false },
		{ "y", KF_METRIC_COUNTER, "y_total", KF_METRIC_COUNTER, true },
		{ "y", KF_METRIC_COUNTER, "y_total", KF_METRIC_GAUGE, true },
		{ "y_total", KF_METRIC_COUNTER, "y", KF_METRIC_GAUGE, true },
		{ "y", KF_METRIC_GAUGE, "y_total", KF_METRIC_GAUGE, false },
		{ "a", KF_METRIC_GAUGE, "b", KF_METRIC_GAUGE, false },
		{ "a", KF_METRIC_GAUGE, "a", KF_METRIC_GAUGE, true },
		/* OpenMetrics family "jobs_count" would shadow the histogram's sample. */
		{ "jobs", KF_METRIC_HISTOGRAM, "jobs_count_total", KF_METRIC_COUNTER, true },
		{ "jobs", KF_METRIC_HISTOGRAM, "jobs_counted_total", KF_METRIC_COUNTER, false },
		{ "jobs", KF_METRIC_HISTOGRAM, "jobs_count", KF_METRIC_COUNTER, true },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct kf_metric_desc a = { .name = cases[i].a, .help = "h", .type = cases[i].ta };
		struct kf_metric_desc b = { .name = cases[i].b, .help = "h", .type = cases[i].tb };
		assert_int_equal(kf_metric_desc_collide(&a, &b), cases[i].collide);
		assert_int_equal(kf_metric_desc_collide(&b, &a), cases[i].collide);
	}
}

/* --- registry ------------------------------------------------------------------ */

static void test_register(void **state)
{
	struct kf_metrics *reg = *state;
	struct kf_metric_desc d = { .name = "kf_things_total", .help = "Things.",
				    .type = KF_METRIC_COUNTER, .label_names = one_label,
				    .n_labels = 1 };
	struct kf_metric_family *f1 = NULL, *f2 = NULL;
	assert_int_equal(kf_metrics_register(reg, &d, &f1), KF_OK);
	assert_non_null(f1);
	/* The identical descriptor again: the same family. */
	assert_int_equal(kf_metrics_register(reg, &d, &f2), KF_OK);
	assert_ptr_equal(f1, f2);
	assert_ptr_equal(kf_metrics_find(reg, "kf_things_total"), f1);
	assert_null(kf_metrics_find(reg, "kf_things"));
	assert_string_equal(kf_metric_family_desc(f1)->help, "Things.");
	assert_int_equal(kf_metric_family_desc(f1)->max_series, KF_METRICS_MAX_SERIES);

	/* Same name, other help or type: taken. */
	struct kf_metric_desc other = d;
	other.help = "Other.";
	assert_int_equal(kf_metrics_register(reg, &other, &f2), KF_EEXIST);
	other = d;
	other.n_labels = 0;
	assert_int_equal(kf_metrics_register(reg, &other, &f2), KF_EEXIST);
	/* Counter "kf_things" would be OpenMetrics family "kf_things" too. */
	other = d;
	other.name = "kf_things";
	assert_int_equal(kf_metrics_register(reg, &other, &f2), KF_EMETRICNAME);
	/* Empty help is refused by the registry. */
	struct kf_metric_desc nohelp = { .name = "kf_nohelp", .help = "", .type = KF_METRIC_GAUGE };
	assert_int_equal(kf_metrics_register(reg, &nohelp, &f2), KF_EINVAL);
	struct kf_metric_desc badname = { .name = "kf-bad", .help = "x", .type = KF_METRIC_GAUGE };
	assert_int_equal(kf_metrics_register(reg, &badname, &f2), KF_EMETRICNAME);
	assert_null(kf_metrics_find(reg, "kf-bad"));
}

static void test_children(void **state)
{
	struct kf_metrics *reg = *state;
	struct kf_metric_desc d = { .name = "kf_c_total", .help = "c", .type = KF_METRIC_COUNTER,
				    .label_names = one_label, .n_labels = 1, .max_series = 3 };
	struct kf_metric_family *fam;
	assert_int_equal(kf_metrics_register(reg, &d, &fam), KF_OK);
	struct kf_counter *a, *a2, *b;
	assert_int_equal(kf_metric_family_counter(fam, (const char *[]){ "a" }, &a), KF_OK);
	assert_int_equal(kf_metric_family_counter(fam, (const char *[]){ "a" }, &a2), KF_OK);
	assert_ptr_equal(a, a2);
	assert_int_equal(kf_metric_family_counter(fam, (const char *[]){ "b" }, &b), KF_OK);
	assert_ptr_not_equal(a, b);

	struct kf_gauge *g;
	struct kf_histogram *h;
	assert_int_equal(kf_metric_family_gauge(fam, (const char *[]){ "a" }, &g), KF_EINVAL);
	assert_int_equal(kf_metric_family_histogram(fam, (const char *[]){ "a" }, &h), KF_EINVAL);
	assert_int_equal(kf_metric_family_counter(fam, NULL, &b), KF_EINVAL);
	assert_int_equal(kf_metric_family_counter(fam, (const char *[]){ NULL }, &b), KF_EINVAL);
	assert_int_equal(kf_metric_family_counter(fam, (const char *[]){ "\xc3\x28" }, &b),
			 KF_EUTF8);
	/* "" is a value like any other. */
	assert_int_equal(kf_metric_family_counter(fam, (const char *[]){ "" }, &b), KF_OK);
	/* max_series = 3: a, b, "" exist; a fourth is refused, old ones still work. */
	assert_int_equal(kf_metric_family_counter(fam, (const char *[]){ "d" }, &b),
			 KF_ECARDINALITY);
	assert_int_equal(kf_metric_family_counter(fam, (const char *[]){ "a" }, &a2), KF_OK);
	assert_ptr_equal(a, a2);
}

static void test_many_children_hash(void **state)
{
	struct kf_metrics *reg = *state;
	struct kf_metric_desc d = { .name = "kf_many", .help = "m", .type = KF_METRIC_GAUGE,
				    .label_names = one_label, .n_labels = 1 };
	struct kf_metric_family *fam;
	assert_int_equal(kf_metrics_register(reg, &d, &fam), KF_OK);
	struct kf_gauge *handles[200];
	char name[16];
	for (int i = 0; i < 200; i++) {
		snprintf(name, sizeof name, "v%d", i);
		assert_int_equal(kf_metric_family_gauge(fam, (const char *[]){ name }, &handles[i]),
				 KF_OK);
		kf_gauge_set(handles[i], i);
	}
	for (int i = 0; i < 200; i++) {
		struct kf_gauge *g;
		snprintf(name, sizeof name, "v%d", i);
		assert_int_equal(kf_metric_family_gauge(fam, (const char *[]){ name }, &g), KF_OK);
		assert_ptr_equal(g, handles[i]);
	}
	struct kf_msnap snap = KF_MSNAP_INIT;
	assert_int_equal(kf_metrics_snapshot(reg, 0, &snap), KF_OK);
	struct kf_msnap_family *f = kf_msnap_find_family(&snap, "kf_many");
	assert_non_null(f);
	assert_int_equal(f->n_series, 200);
	/* Sorted by label value, byte order: v0, v1, v10, v100, ... */
	assert_string_equal(f->series[0]->label_values[0], "v0");
	assert_string_equal(f->series[1]->label_values[0], "v1");
	assert_string_equal(f->series[2]->label_values[0], "v10");
	assert_string_equal(f->series[3]->label_values[0], "v100");
	assert_true(f->series[3]->value == 100);
	kf_msnap_release(&snap);
}

static void test_counter(void **state)
{
	struct kf_metrics *reg = *state;
	struct kf_counter *c;
	assert_int_equal(kf_metrics_counter(reg, "kf_count_total", "n", &c), KF_OK);
	assert_true(kf_counter_value(c) == 0);
	kf_counter_inc(c);
	kf_counter_add_u64(c, 41);
	assert_true(kf_counter_value(c) == 42);
	assert_int_equal(kf_counter_add(c, 0.25), KF_OK);
	assert_int_equal(kf_counter_add(c, 2), KF_OK);
	assert_true(kf_counter_value(c) == 44.25);
	assert_int_equal(kf_counter_add(c, -1), KF_ERANGE);
	assert_int_equal(kf_counter_add(c, NAN), KF_ERANGE);
	assert_int_equal(kf_counter_add(c, INFINITY), KF_ERANGE);
	assert_int_equal(kf_counter_add(c, -0.0), KF_OK);
	assert_true(kf_counter_value(c) == 44.25);
	assert_int_equal(kf_counter_add(c, 1e30), KF_OK); /* beyond uint64: the double path */
	assert_true(kf_counter_value(c) == 1e30 + 44.25);
	assert_int_equal(kf_counter_set(c, 7.5), KF_OK);
	assert_true(kf_counter_value(c) == 7.5);
	assert_int_equal(kf_counter_set(c, -1), KF_ERANGE);
	assert_true(kf_counter_value(c) == 7.5);
}

static void test_gauge(void **state)
{
	struct kf_metrics *reg = *state;
	struct kf_gauge *g;
	assert_int_equal(kf_metrics_gauge(reg, "kf_level", "l", &g), KF_OK);
	assert_true(kf_gauge_value(g) == 0);
	kf_gauge_inc(g);
	kf_gauge_inc(g);
	kf_gauge_dec(g);
	assert_true(kf_gauge_value(g) == 1);
	kf_gauge_add(g, -3.5);
	assert_true(kf_gauge_value(g) == -2.5);
	kf_gauge_set(g, 1e300);
	assert_true(kf_gauge_value(g) == 1e300);
	kf_gauge_set(g, NAN);
	assert_true(isnan(kf_gauge_value(g)));
	/* The shorthand of another type under a taken name. */
	struct kf_counter *c;
	assert_int_equal(kf_metrics_counter(reg, "kf_level", "l", &c), KF_EEXIST);
}

static void test_histogram(void **state)
{
	struct kf_metrics *reg = *state;
	static const double bounds[] = { 1, 10, 100 };
	struct kf_histogram *h;
	assert_int_equal(kf_metrics_histogram(reg, "kf_h", "h", bounds, 3, &h), KF_OK);
	/* le is inclusive: 1 goes into le=1, 1.5 into le=10. */
	const double obs[] = { -5, 0, 1, 1.5, 10, 10.000001, 100, 1e9, INFINITY };
	for (size_t i = 0; i < sizeof obs / sizeof obs[0] - 1; i++)
		kf_histogram_observe(h, obs[i]);
	kf_histogram_observe(h, NAN); /* ignored */
	kf_histogram_observe_u64(h, 7);
	kf_histogram_observe_u64(h, 1000);
	assert_int_equal(kf_histogram_count(h), 10);
	assert_true(kf_histogram_sum(h) == -5 + 0 + 1 + 1.5 + 10 + 10.000001 + 100 + 1e9 + 1007);

	struct kf_msnap snap = KF_MSNAP_INIT;
	assert_int_equal(kf_metrics_snapshot(reg, 0, &snap), KF_OK);
	struct kf_msnap_series *s = find_series(&snap, "kf_h", NULL);
	assert_non_null(s);
	/* <=1: -5 0 1 ; <=10: + 1.5 10 7 ; <=100: + 10.000001 100 ; +Inf: + 1e9 1000 */
	assert_int_equal(s->buckets[0], 3);
	assert_int_equal(s->buckets[1], 6);
	assert_int_equal(s->buckets[2], 8);
	assert_int_equal(s->count, 10);
	assert_int_equal(kf_msnap_check(&snap), KF_OK);
	kf_msnap_release(&snap);

	/* An infinite observation counts in +Inf and makes the sum infinite. */
	kf_histogram_observe(h, INFINITY);
	assert_int_equal(kf_histogram_count(h), 11);
	assert_true(isinf(kf_histogram_sum(h)));
}

static void test_histogram_many_buckets(void **state)
{
	struct kf_metrics *reg = *state;
	double bounds[40];
	for (int i = 0; i < 40; i++)
		bounds[i] = (i + 1) * 10;
	struct kf_histogram *h;
	assert_int_equal(kf_metrics_histogram(reg, "kf_h40", "h", bounds, 40, &h), KF_OK);
	/* Binary search path: exact bounds, between, below, above. */
	kf_histogram_observe(h, 10);
	kf_histogram_observe(h, 10.5);
	kf_histogram_observe(h, 400);
	kf_histogram_observe(h, 400.5);
	kf_histogram_observe(h, 0);
	kf_histogram_observe_u64(h, 250);
	struct kf_msnap snap = KF_MSNAP_INIT;
	assert_int_equal(kf_metrics_snapshot(reg, 0, &snap), KF_OK);
	struct kf_msnap_series *s = find_series(&snap, "kf_h40", NULL);
	assert_int_equal(s->buckets[0], 2);   /* 0, 10 */
	assert_int_equal(s->buckets[1], 3);   /* 10.5 */
	assert_int_equal(s->buckets[23], 3);
	assert_int_equal(s->buckets[24], 4);  /* 250 */
	assert_int_equal(s->buckets[39], 5);  /* 400 */
	assert_int_equal(s->count, 6);        /* 400.5 in +Inf */
	kf_msnap_release(&snap);
}

/* --- snapshots and deltas ----------------------------------------------------------- */

static void test_snapshot_full(void **state)
{
	struct kf_metrics *reg = *state;
	struct kf_metric_desc d = { .name = "kf_by_status_total", .help = "s",
				    .type = KF_METRIC_COUNTER, .label_names = one_label,
				    .n_labels = 1 };
	struct kf_metric_family *fam;
	assert_int_equal(kf_metrics_register(reg, &d, &fam), KF_OK);
	struct kf_gauge *g;
	assert_int_equal(kf_metrics_gauge(reg, "kf_a_gauge", "g", &g), KF_OK);

	struct kf_msnap snap = KF_MSNAP_INIT;
	assert_int_equal(kf_metrics_snapshot(reg, 0, &snap), KF_OK);
	assert_int_equal(snap.generation, 1);
	assert_false(snap.delta);
	assert_int_equal(snap.n_families, 2);
	/* Sorted by name; the labelled family has no series yet but is there. */
	assert_string_equal(snap.families[0]->name, "kf_a_gauge");
	assert_int_equal(snap.families[0]->n_series, 1);
	assert_string_equal(snap.families[1]->name, "kf_by_status_total");
	assert_int_equal(snap.families[1]->n_series, 0);
	assert_string_equal(snap.families[1]->label_names[0], "status");
	assert_int_equal(snap.families[1]->type, KF_METRIC_COUNTER);
	/* A second snapshot into the same struct replaces the first. */
	assert_int_equal(kf_metrics_snapshot(reg, 0, &snap), KF_OK);
	assert_int_equal(snap.generation, 2);
	assert_int_equal(snap.n_families, 2);
	kf_msnap_release(&snap);
	assert_int_equal(snap.n_families, 0);
}

static void test_snapshot_delta(void **state)
{
	struct kf_metrics *reg = *state;
	struct kf_metric_desc d = { .name = "kf_jobs_total", .help = "j",
				    .type = KF_METRIC_COUNTER, .label_names = one_label,
				    .n_labels = 1 };
	struct kf_metric_family *fam;
	struct kf_counter *ok, *bad;
	struct kf_gauge *g;
	assert_int_equal(kf_metrics_register(reg, &d, &fam), KF_OK);
	assert_int_equal(kf_metric_family_counter(fam, (const char *[]){ "ok" }, &ok), KF_OK);
	assert_int_equal(kf_metric_family_counter(fam, (const char *[]){ "bad" }, &bad), KF_OK);
	assert_int_equal(kf_metrics_gauge(reg, "kf_g", "g", &g), KF_OK);

	struct kf_msnap snap = KF_MSNAP_INIT;
	assert_int_equal(kf_metrics_snapshot(reg, 0, &snap), KF_OK);
	uint64_t publisher = snap.generation, other_reader = snap.generation;

	/* Nothing changed: an empty delta. */
	assert_int_equal(kf_metrics_snapshot(reg, publisher, &snap), KF_OK);
	assert_true(snap.delta);
	assert_int_equal(snap.n_families, 0);
	publisher = snap.generation;

	/* One series changes: only it, with its cumulative value. */
	kf_counter_add_u64(ok, 5);
	assert_int_equal(kf_metrics_snapshot(reg, publisher, &snap), KF_OK);
	assert_int_equal(snap.n_families, 1);
	assert_int_equal(snap.families[0]->n_series, 1);
	assert_string_equal(snap.families[0]->series[0]->label_values[0], "ok");
	assert_true(snap.families[0]->series[0]->value == 5);
	assert_int_equal(snap.families[0]->series[0]->changed_gen, snap.generation);
	publisher = snap.generation;

	/* A new child and a gauge change; ok unchanged. */
	struct kf_counter *late;
	assert_int_equal(kf_metric_family_counter(fam, (const char *[]){ "late" }, &late), KF_OK);
	kf_gauge_set(g, 3);
	assert_int_equal(kf_metrics_snapshot(reg, publisher, &snap), KF_OK);
	assert_int_equal(snap.n_families, 2);
	assert_non_null(find_series(&snap, "kf_g", NULL));
	assert_non_null(find_series(&snap, "kf_jobs_total", (const char *[]){ "late" }));
	assert_null(find_series(&snap, "kf_jobs_total", (const char *[]){ "ok" }));
	assert_null(find_series(&snap, "kf_jobs_total", (const char *[]){ "bad" }));

	/* A reader that last looked at generation 1 sees everything since. */
	assert_int_equal(kf_metrics_snapshot(reg, other_reader, &snap), KF_OK);
	assert_non_null(find_series(&snap, "kf_jobs_total", (const char *[]){ "ok" }));
	assert_non_null(find_series(&snap, "kf_jobs_total", (const char *[]){ "late" }));
	assert_non_null(find_series(&snap, "kf_g", NULL));
	assert_null(find_series(&snap, "kf_jobs_total", (const char *[]){ "bad" }));
	kf_msnap_release(&snap);
}

static void test_snapshot_delta_histogram(void **state)
{
	struct kf_metrics *reg = *state;
	static const double bounds[] = { 10 };
	struct kf_histogram *h;
	assert_int_equal(kf_metrics_histogram(reg, "kf_lat", "l", bounds, 1, &h), KF_OK);
	struct kf_msnap snap = KF_MSNAP_INIT;
	assert_int_equal(kf_metrics_snapshot(reg, 0, &snap), KF_OK);
	uint64_t gen = snap.generation;
	kf_histogram_observe(h, 0); /* count changes, sum does not */
	assert_int_equal(kf_metrics_snapshot(reg, gen, &snap), KF_OK);
	assert_int_equal(snap.n_families, 1);
	assert_int_equal(snap.families[0]->series[0]->count, 1);
	assert_int_equal(snap.families[0]->series[0]->buckets[0], 1);
	kf_msnap_release(&snap);
}

static int collected;
static int released;

static void count_collect(struct kf_metrics *reg, void *arg)
{
	(void)reg;
	collected++;
	kf_gauge_set(arg, collected);
}

static void count_release(void *arg)
{
	(void)arg;
	released++;
}

static void test_collector(void **state)
{
	(void)state;
	struct kf_metrics *reg;
	struct kf_gauge *g;
	assert_int_equal(kf_metrics_new(&reg), KF_OK);
	assert_int_equal(kf_metrics_gauge(reg, "kf_collected", "c", &g), KF_OK);
	collected = released = 0;
	assert_int_equal(kf_metrics_add_collector(reg, NULL, NULL, NULL), KF_EINVAL);
	assert_int_equal(kf_metrics_add_collector(reg, count_collect, count_release, g), KF_OK);
	struct kf_msnap snap = KF_MSNAP_INIT;
	assert_int_equal(kf_metrics_snapshot(reg, 0, &snap), KF_OK);
	assert_int_equal(kf_metrics_snapshot(reg, 0, &snap), KF_OK);
	assert_int_equal(collected, 2);
	assert_true(find_series(&snap, "kf_collected", NULL)->value == 2);
	kf_msnap_release(&snap);
	kf_metrics_free(reg);
	assert_int_equal(released, 1);
	kf_metrics_free(NULL);
}

/* --- threads -------------------------------------------------------------------- */

#define THREAD_ITERS 200000

struct thread_arg {
	struct kf_counter *c;
	struct kf_histogram *h;
	struct kf_gauge *g;
};

static void *hammer(void *p)
{
	struct thread_arg *a = p;
	for (uint64_t i = 0; i < THREAD_ITERS; i++) {
		kf_counter_inc(a->c);
		kf_histogram_observe_u64(a->h, i & 127);
		kf_gauge_add(a->g, 1);
	}
	return NULL;
}

static void test_threads_exact(void **state)
{
	struct kf_metrics *reg = *state;
	static const double bounds[] = { 63 };
	struct thread_arg a;
	assert_int_equal(kf_metrics_counter(reg, "kf_t_total", "t", &a.c), KF_OK);
	assert_int_equal(kf_metrics_histogram(reg, "kf_t_h", "t", bounds, 1, &a.h), KF_OK);
	assert_int_equal(kf_metrics_gauge(reg, "kf_t_g", "t", &a.g), KF_OK);
	pthread_t t[3];
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer, &a), 0);
	/* Snapshots while the threads run must not disturb them. */
	struct kf_msnap snap = KF_MSNAP_INIT;
	for (int i = 0; i < 20; i++)
		assert_int_equal(kf_metrics_snapshot(reg, 0, &snap), KF_OK);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	assert_true(kf_counter_value(a.c) == 3.0 * THREAD_ITERS);
	assert_int_equal(kf_histogram_count(a.h), 3 * THREAD_ITERS);
	/* Each thread: values 0..127 repeating; sum 0..127 = 8128 per 128. */
	assert_true(kf_histogram_sum(a.h) == 3.0 * (THREAD_ITERS / 128) * 8128 +
						     3.0 * ((THREAD_ITERS % 128) *
							    (THREAD_ITERS % 128 - 1) / 2));
	assert_true(kf_gauge_value(a.g) == 3.0 * THREAD_ITERS);
	assert_int_equal(kf_metrics_snapshot(reg, 0, &snap), KF_OK);
	struct kf_msnap_series *s = find_series(&snap, "kf_t_h", NULL);
	assert_int_equal(s->count, 3 * THREAD_ITERS);
	/* Values 0..63 of each 128 are <= 63. */
	uint64_t rem = THREAD_ITERS % 128;
	assert_int_equal(s->buckets[0], 3 * ((THREAD_ITERS / 128) * 64 + (rem < 64 ? rem : 64)));
	kf_msnap_release(&snap);
}

/* --- hand-built snapshots -------------------------------------------------------------- */

static void test_msnap_build(void **state)
{
	(void)state;
	struct kf_msnap snap = KF_MSNAP_INIT;
	static const double b[] = { 1, 2 };
	struct kf_metric_desc hd = { .name = "w_h", .help = "", .type = KF_METRIC_HISTOGRAM,
				     .buckets = b, .n_buckets = 2, .label_names = one_label,
				     .n_labels = 1 };
	struct kf_msnap_family *f;
	struct kf_msnap_series *s1, *s2;
	assert_int_equal(kf_msnap_add_family(&snap, &hd, &f), KF_OK);
	assert_int_equal(kf_msnap_add_family(&snap, &hd, NULL), KF_EEXIST);
	struct kf_metric_desc clash = { .name = "w_h_sum", .help = "", .type = KF_METRIC_GAUGE };
	assert_int_equal(kf_msnap_add_family(&snap, &clash, NULL), KF_EMETRICNAME);
	assert_ptr_equal(kf_msnap_find_family(&snap, "w_h"), f);
	assert_int_equal(kf_msnap_family_add_series(f, (const char *[]){ "z" }, &s1), KF_OK);
	assert_int_equal(kf_msnap_family_add_series(f, (const char *[]){ "a" }, &s2), KF_OK);
	assert_int_equal(kf_msnap_family_add_series(f, NULL, NULL), KF_EINVAL);
	assert_int_equal(kf_msnap_family_add_series(f, (const char *[]){ "\x80" }, NULL),
			 KF_EUTF8);
	assert_ptr_equal(kf_msnap_family_find_series(f, (const char *[]){ "a" }), s2);
	assert_null(kf_msnap_family_find_series(f, (const char *[]){ "b" }));
	/* Zeroed on creation. */
	assert_int_equal(s1->buckets[0] + s1->buckets[1] + s1->count, 0);
	s1->buckets[0] = 1;
	s1->buckets[1] = 3;
	s1->count = 3;
	kf_msnap_sort(&snap);
	assert_ptr_equal(f->series[0], s2);
	assert_int_equal(kf_msnap_check(&snap), KF_OK);
	s1->count = 2; /* +Inf below le=2 */
	assert_int_equal(kf_msnap_check(&snap), KF_ERANGE);
	s1->count = 3;
	s1->buckets[0] = 4; /* not cumulative */
	assert_int_equal(kf_msnap_check(&snap), KF_ERANGE);
	s1->buckets[0] = 1;
	assert_int_equal(kf_msnap_family_add_series(f, (const char *[]){ "a" }, NULL), KF_OK);
	kf_msnap_sort(&snap);
	assert_int_equal(kf_msnap_check(&snap), KF_EEXIST);

	struct kf_metric_desc cd = { .name = "w_c_total", .help = "", .type = KF_METRIC_COUNTER };
	struct kf_msnap_family *cf;
	kf_msnap_release(&snap);
	assert_int_equal(snap.n_families, 0);

	assert_int_equal(kf_msnap_add_family(&snap, &cd, &cf), KF_OK);
	assert_int_equal(kf_msnap_family_add_series(cf, NULL, &s1), KF_OK);
	s1->value = -1;
	assert_int_equal(kf_msnap_check(&snap), KF_ERANGE);
	s1->value = NAN;
	assert_int_equal(kf_msnap_check(&snap), KF_ERANGE);
	s1->value = 0;
	assert_int_equal(kf_msnap_check(&snap), KF_OK);
	kf_msnap_release(&snap);
}

/* --- process ---------------------------------------------------------------------- */

static void test_process_parse(void **state)
{
	(void)state;
	/* A command name with ") " inside; utime 250, stime 150, starttime 1000,
	 * vsize 123456789, rss 2000 pages. */
	static const char stat[] =
		"4242 (evil) (name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 "
		"3 0 1000 123456789 2000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 "
		"0 0 0 0 0\n";
	struct kf_process_sample s = { 0 };
	assert_int_equal(kf_process_parse_stat(stat, 100, 4096, 1700000000.0, &s), KF_OK);
	assert_true(s.cpu_seconds == 4.0);
	assert_true(s.start_time_seconds == 1700000010.0);
	assert_true(s.virtual_bytes == 123456789.0);
	assert_true(s.resident_bytes == 2000.0 * 4096);
	assert_int_equal(kf_process_parse_stat("no parens here", 100, 4096, 0, &s), KF_EINVAL);
	assert_int_equal(kf_process_parse_stat("1 (x) S 1 2", 100, 4096, 0, &s), KF_EINVAL);
	assert_int_equal(kf_process_parse_stat(stat, 0, 4096, 0, &s), KF_EINVAL);
	assert_int_equal(kf_process_parse_stat(NULL, 100, 4096, 0, &s), KF_EINVAL);

	double bt = 0;
	assert_int_equal(kf_process_parse_btime("cpu  1 2 3\nintr 5\nbtime 1699999999\nx 1\n",
						&bt), KF_OK);
	assert_true(bt == 1699999999.0);
	assert_int_equal(kf_process_parse_btime("cpu 1\nxbtime 5\n", &bt), KF_ENOENT);
}

static void test_process_read(void **state)
{
	(void)state;
	struct kf_process_sample a, b;
	assert_int_equal(kf_process_read(&a), KF_OK);
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC); /* CI may run without stdin */
	assert_true(fd >= 0);
	assert_int_equal(kf_process_read(&b), KF_OK);
	close(fd);
	assert_true(b.open_fds == a.open_fds + 1);
	struct rlimit rl;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_true(a.max_fds == (double)rl.rlim_cur);
	assert_true(a.resident_bytes > 0);
	assert_true(a.virtual_bytes >= a.resident_bytes);
	assert_true(a.cpu_seconds >= 0);
	/* Started within the last 10 minutes (the test binary just began). */
	double now = (double)time(NULL);
	assert_true(a.start_time_seconds <= now + 1);
	assert_true(a.start_time_seconds > now - 600);
}

static void test_process_register(void **state)
{
	struct kf_metrics *reg = *state;
	assert_int_equal(kf_process_register(reg), KF_OK);
	struct kf_msnap snap = KF_MSNAP_INIT;
	assert_int_equal(kf_metrics_snapshot(reg, 0, &snap), KF_OK);
	static const struct {
		const char *name;
		enum kf_metric_type type;
	} want[] = {
		{ "process_cpu_seconds_total", KF_METRIC_COUNTER },
		{ "process_max_fds", KF_METRIC_GAUGE },
		{ "process_open_fds", KF_METRIC_GAUGE },
		{ "process_resident_memory_bytes", KF_METRIC_GAUGE },
		{ "process_start_time_seconds", KF_METRIC_GAUGE },
		{ "process_virtual_memory_bytes", KF_METRIC_GAUGE },
	};
	assert_int_equal(snap.n_families, 6);
	for (size_t i = 0; i < 6; i++) {
		assert_string_equal(snap.families[i]->name, want[i].name);
		assert_int_equal(snap.families[i]->type, want[i].type);
		assert_int_equal(snap.families[i]->n_series, 1);
	}
	assert_true(find_series(&snap, "process_open_fds", NULL)->value >= 1);
	assert_true(find_series(&snap, "process_resident_memory_bytes", NULL)->value > 0);
	kf_msnap_release(&snap);
}

/* --- contract ------------------------------------------------------------------ */

static void test_contract_descs(void **state)
{
	(void)state;
	const struct kf_metric_desc *d = kf_contract_descs;
	assert_string_equal(d[KF_CONTRACT_JOBS_ACTIVE].name, "keyforge_jobs_active");
	assert_int_equal(d[KF_CONTRACT_JOBS_ACTIVE].type, KF_METRIC_GAUGE);
	assert_string_equal(d[KF_CONTRACT_JOBS_TOTAL].name, "keyforge_jobs_total");
	assert_int_equal(d[KF_CONTRACT_JOBS_TOTAL].type, KF_METRIC_COUNTER);
	assert_int_equal(d[KF_CONTRACT_JOBS_TOTAL].n_labels, 1);
	assert_string_equal(d[KF_CONTRACT_JOBS_TOTAL].label_names[0], "status");
	assert_string_equal(d[KF_CONTRACT_SCORE_LATENCY].name, "keyforge_score_latency_ns");
	assert_int_equal(d[KF_CONTRACT_SCORE_LATENCY].type, KF_METRIC_HISTOGRAM);
	assert_string_equal(d[KF_CONTRACT_WORKER_HEARTBEATS].name, "keyforge_worker_heartbeats");
	assert_int_equal(d[KF_CONTRACT_WORKER_HEARTBEATS].type, KF_METRIC_COUNTER);
	for (size_t i = 0; i < KF_CONTRACT_COUNT; i++) {
		assert_int_equal(kf_metric_desc_check(&d[i]), KF_OK);
		assert_true(strlen(d[i].help) > 10);
	}
	/* Tens of ns to ms: first bound 25 ns, last 10 ms, 16 bounds. */
	assert_int_equal(d[KF_CONTRACT_SCORE_LATENCY].n_buckets, 16);
	assert_int_equal(kf_score_latency_n_buckets, 16);
	assert_true(kf_score_latency_buckets[0] == 25);
	assert_true(kf_score_latency_buckets[15] == 1e7);
	assert_string_equal(kf_job_outcome_names[KF_JOB_OUTCOME_SUCCESS], "success");
	assert_string_equal(kf_job_outcome_names[KF_JOB_OUTCOME_FAILED], "failed");
	assert_string_equal(kf_job_outcome_names[KF_JOB_OUTCOME_KILLED], "killed");
	assert_string_equal(kf_job_outcome_names[KF_JOB_OUTCOME_RETRIED], "retried");
}

static void test_contract_register(void **state)
{
	struct kf_metrics *reg = *state;
	struct kf_contract_metrics m, again;
	assert_int_equal(kf_contract_register(reg, &m), KF_OK);
	assert_int_equal(kf_contract_register(reg, &again), KF_OK);
	assert_ptr_equal(m.jobs_active, again.jobs_active);
	assert_ptr_equal(m.jobs_total[KF_JOB_OUTCOME_KILLED], again.jobs_total[KF_JOB_OUTCOME_KILLED]);
	assert_ptr_equal(m.score_latency_ns, again.score_latency_ns);
	assert_ptr_equal(m.worker_heartbeats, again.worker_heartbeats);

	struct kf_msnap snap = KF_MSNAP_INIT;
	assert_int_equal(kf_metrics_snapshot(reg, 0, &snap), KF_OK);
	assert_int_equal(snap.n_families, 4);
	/* Every status from 0. */
	for (size_t i = 0; i < KF_JOB_OUTCOME_COUNT; i++) {
		struct kf_msnap_series *s =
			find_series(&snap, "keyforge_jobs_total", &kf_job_outcome_names[i]);
		assert_non_null(s);
		assert_true(s->value == 0);
	}
	assert_non_null(find_series(&snap, "keyforge_jobs_active", NULL));
	assert_non_null(find_series(&snap, "keyforge_score_latency_ns", NULL));
	assert_non_null(find_series(&snap, "keyforge_worker_heartbeats", NULL));
	kf_msnap_release(&snap);

	/* A registry that already uses one of the names differently. */
	struct kf_metrics *other;
	struct kf_gauge *g;
	assert_int_equal(kf_metrics_new(&other), KF_OK);
	assert_int_equal(kf_metrics_gauge(other, "keyforge_worker_heartbeats", "x", &g), KF_OK);
	assert_int_equal(kf_contract_register(other, &m), KF_EEXIST);
	kf_metrics_free(other);
}

static void test_contract_snapshot(void **state)
{
	(void)state;
	struct kf_msnap snap = KF_MSNAP_INIT;
	assert_int_equal(kf_contract_add_to_snapshot(&snap, true), KF_OK);
	assert_int_equal(snap.n_families, 4);
	struct kf_msnap_family *f = kf_msnap_find_family(&snap, "keyforge_jobs_total");
	assert_int_equal(f->n_series, 4);
	assert_string_equal(f->help, kf_contract_descs[KF_CONTRACT_JOBS_TOTAL].help);
	assert_int_equal(kf_msnap_find_family(&snap, "keyforge_jobs_active")->n_series, 1);
	assert_int_equal(kf_contract_add_to_snapshot(&snap, true), KF_EEXIST);
	kf_msnap_release(&snap);
	assert_int_equal(kf_contract_add_to_snapshot(&snap, false), KF_OK);
	assert_int_equal(kf_msnap_find_family(&snap, "keyforge_jobs_total")->n_series, 0);
	kf_msnap_release(&snap);
}

#define REG_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup_reg, teardown_reg)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_validation),
		cmocka_unit_test(test_desc_check),
		cmocka_unit_test(test_desc_collide),
		REG_TEST(test_register),
		REG_TEST(test_children),
		REG_TEST(test_many_children_hash),
		REG_TEST(test_counter),
		REG_TEST(test_gauge),
		REG_TEST(test_histogram),
		REG_TEST(test_histogram_many_buckets),
		REG_TEST(test_snapshot_full),
		REG_TEST(test_snapshot_delta),
		REG_TEST(test_snapshot_delta_histogram),
		cmocka_unit_test(test_collector),
		REG_TEST(test_threads_exact),
		cmocka_unit_test(test_msnap_build),
		cmocka_unit_test(test_process_parse),
		cmocka_unit_test(test_process_read),
		REG_TEST(test_process_register),
		cmocka_unit_test(test_contract_descs),
		REG_TEST(test_contract_register),
		cmocka_unit_test(test_contract_snapshot),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
