/* The sample registry of test_metrics_sample.h. */
#include "test_metrics_sample.h"

#include <float.h>
#include <math.h>

#include "telemetry/contract.h"

static enum kf_err sample_contract(struct kf_metrics *reg)
{
	struct kf_contract_metrics m;
	enum kf_err err = kf_contract_register(reg, &m);
	if (err)
		return err;
	kf_gauge_set(m.jobs_active, 3);
	kf_counter_add_u64(m.jobs_total[KF_JOB_OUTCOME_SUCCESS], 7);
	kf_counter_inc(m.jobs_total[KF_JOB_OUTCOME_FAILED]);
	kf_counter_add_u64(m.jobs_total[KF_JOB_OUTCOME_RETRIED], 2);
	static const uint64_t ns[] = { 10, 30, 100, 260, 2600, 20000000 };
	for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
		kf_histogram_observe_u64(m.score_latency_ns, ns[i]);
	kf_counter_add_u64(m.worker_heartbeats, 5);
	return KF_OK;
}

static enum kf_err sample_escapes(struct kf_metrics *reg)
{
	static const char *const labels[] = { "path", "note" };
	static const struct kf_metric_desc d = {
		.name = "kf_test_escapes", .type = KF_METRIC_GAUGE,
		.help = "Label values with \\ backslash, \"quotes\"\nand a newline.",
		.label_names = labels, .n_labels = 2,
	};
	static const struct {
		const char *v[2];
		double value;
	} rows[] = {
		{ { "C:\\dir\\", "say \"hi\"" }, 1 },
		{ { "line1\nline2", "Gr\xc3\xbc\xc3\x9f" "e \xe2\x9c\x93" }, 2 },
		{ { "", "empty path" }, 3 },
	};
	struct kf_metric_family *fam;
	enum kf_err err = kf_metrics_register(reg, &d, &fam);
	for (size_t i = 0; !err && i < sizeof rows / sizeof rows[0]; i++) {
		struct kf_gauge *g;
		if (!(err = kf_metric_family_gauge(fam, rows[i].v, &g)))
			kf_gauge_set(g, rows[i].value);
	}
	return err;
}

static enum kf_err sample_special(struct kf_metrics *reg)
{
	static const char *const labels[] = { "case" };
	static const struct kf_metric_desc d = {
		.name = "kf_test_special", .type = KF_METRIC_GAUGE,
		.help = "Special and awkward float values.",
		.label_names = labels, .n_labels = 1,
	};
	const struct {
		const char *name;
		double value;
	} rows[] = {
		{ "nan", NAN }, { "pos_inf", INFINITY }, { "neg_inf", -INFINITY },
		{ "neg_zero", -0.0 }, { "tiny", 1.5e-7 }, { "small", 0.0001 },
		{ "big", 1234567 }, { "hundred_k", 100000 }, { "point3", 0.1 + 0.2 },
		{ "huge", 1e21 }, { "max", DBL_MAX }, { "min_sub", 5e-324 }, { "neg", -2.5 },
	};
	struct kf_metric_family *fam;
	enum kf_err err = kf_metrics_register(reg, &d, &fam);
	for (size_t i = 0; !err && i < sizeof rows / sizeof rows[0]; i++) {
		struct kf_gauge *g;
		if (!(err = kf_metric_family_gauge(fam, &rows[i].name, &g)))
			kf_gauge_set(g, rows[i].value);
	}
	return err;
}

static enum kf_err sample_request_seconds(struct kf_metrics *reg)
{
	static const char *const labels[] = { "method", "code" };
	static const double bounds[] = { 0.005, 0.1, 1, 2.5 };
	static const struct kf_metric_desc d = {
		.name = "kf_test_request_seconds", .type = KF_METRIC_HISTOGRAM,
		.help = "Request latency in seconds.",
		.label_names = labels, .n_labels = 2, .buckets = bounds, .n_buckets = 4,
	};
	struct kf_metric_family *fam;
	struct kf_histogram *get, *post, *put;
	enum kf_err err = kf_metrics_register(reg, &d, &fam);
	if (!err)
		err = kf_metric_family_histogram(fam, (const char *[]){ "GET", "200" }, &get);
	if (!err)
		err = kf_metric_family_histogram(fam, (const char *[]){ "POST", "500" }, &post);
	if (!err)
		err = kf_metric_family_histogram(fam, (const char *[]){ "PUT", "201" }, &put);
	if (err)
		return err;
	kf_histogram_observe(get, 0.001);
	kf_histogram_observe(get, 0.05);
	kf_histogram_observe(get, 0.05);
	kf_histogram_observe(get, 3);
	kf_histogram_observe(post, 0.1);
	return KF_OK;
}

enum kf_err kf_test_metrics_sample(struct kf_metrics *reg)
{
	struct kf_counter *secs;
	enum kf_err err = sample_contract(reg);
	if (!err)
		err = sample_escapes(reg);
	if (!err)
		err = sample_special(reg);
	if (!err)
		err = sample_request_seconds(reg);
	if (!err)
		err = kf_metrics_counter(reg, "kf_test_seconds_total", "Fractional counter.", &secs);
	if (!err)
		err = kf_counter_add(secs, 1.25);
	return err;
}
