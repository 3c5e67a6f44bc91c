/* Unit tests for the gateway's aggregator (gateway/aggregate.h) and its hash
 * map (gateway/map.h): sums over sources, restarts folded into the retired
 * sum, gauges dropped, ttl expiry and tombstones, caps, sequence gaps, and
 * the refusals counted by reason. Time is passed in, so nothing sleeps. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/aggregate.h"
#include "gateway/map.h"
#include "telemetry/contract.h"
#include "telemetry/expo.h"
#include "telemetry/metrics_snap.h"

#define SEC 1000000000ULL

/* ---- helpers ------------------------------------------------------------- */

static struct kf_gw_agg *agg_with(uint64_t ttl_ns, size_t max_series, size_t max_sources)
{
	static const char *const reserved[] = { "process_", "keyforge_gateway_", NULL };
	struct kf_gw_agg_config cfg = KF_GW_AGG_CONFIG_INIT;
	cfg.series_ttl_ns = ttl_ns;
	cfg.max_series = max_series;
	cfg.max_sources = max_sources;
	cfg.reserved_prefixes = reserved;
	struct kf_gw_agg *agg;
	assert_int_equal(kf_gw_agg_new(&agg, &cfg), KF_OK);
	return agg;
}

static struct kf_gw_series counter(const char *name, double v)
{
	return (struct kf_gw_series){ .name = name, .type = KF_GW_COUNTER, .value = v };
}

static struct kf_gw_series gauge(const char *name, double v)
{
	return (struct kf_gw_series){ .name = name, .type = KF_GW_GAUGE, .value = v };
}

static enum kf_err push(struct kf_gw_agg *agg, const char *src, uint64_t inc, uint64_t seq,
			bool full, const struct kf_gw_series *s, size_t n, uint64_t now)
{
	struct kf_gw_update u = { .source = src, .incarnation = inc, .seq = seq, .seq_gaps = true,
				  .full = full, .series = s, .n_series = n };
	return kf_gw_agg_update(agg, &u, now);
}

static enum kf_err push1(struct kf_gw_agg *agg, const char *src, uint64_t inc, uint64_t seq,
			 struct kf_gw_series s, uint64_t now)
{
	return push(agg, src, inc, seq, false, &s, 1, now);
}

/* The exposed series (NULL when absent) of a fresh snapshot at `now`. */
struct view {
	struct kf_msnap snap;
};

static void view_take(struct view *v, struct kf_gw_agg *agg, uint64_t now)
{
	kf_msnap_init(&v->snap);
	assert_int_equal(kf_gw_agg_snapshot(agg, now, &v->snap), KF_OK);
	assert_int_equal(kf_msnap_check(&v->snap), KF_OK);
}

static struct kf_msnap_series *view_series(struct view *v, const char *family,
					   const char *const *values)
{
	struct kf_msnap_family *f = kf_msnap_find_family(&v->snap, family);
	return f ? kf_msnap_family_find_series(f, values) : NULL;
}

/* Value of an unlabelled series, NAN when absent. */
static double value_at(struct kf_gw_agg *agg, const char *family, uint64_t now)
{
	struct view v;
	view_take(&v, agg, now);
	struct kf_msnap_series *s = view_series(&v, family, NULL);
	double r = s ? s->value : NAN;
	kf_msnap_release(&v.snap);
	return r;
}

static struct kf_gw_agg_stats stats_of(struct kf_gw_agg *agg)
{
	struct kf_gw_agg_stats st;
	kf_gw_agg_stats(agg, &st);
	return st;
}

/* ---- the map --------------------------------------------------------------- */

static void test_map_basic(void **state)
{
	(void)state;
	struct kf__gw_map m;
	kf__gw_map_init(&m, 42);
	static char keys[2000][8];
	for (int i = 0; i < 2000; i++) {
		snprintf(keys[i], sizeof keys[i], "k%d", i);
		assert_int_equal(kf__gw_map_put(&m, keys[i], strlen(keys[i]), keys[i]), KF_OK);
	}
	assert_int_equal(m.n, 2000);
	assert_int_equal(kf__gw_map_put(&m, "k7", 2, keys[0]), KF_EEXIST);
	assert_int_equal(kf__gw_map_put(&m, "zz", 2, NULL), KF_EINVAL);
	assert_ptr_equal(kf__gw_map_get(&m, "k1999", 5), keys[1999]);
	assert_null(kf__gw_map_get(&m, "k2000", 5));
	/* An empty key is a key like any other. */
	assert_int_equal(kf__gw_map_put(&m, "", 0, keys[1]), KF_OK);
	assert_ptr_equal(kf__gw_map_get(&m, "x", 0), keys[1]);
	assert_ptr_equal(kf__gw_map_del(&m, "", 0), keys[1]);

	/* Deleting under the iterator visits every entry exactly once. */
	size_t it = 0, seen = 0;
	char *v;
	while ((v = kf__gw_map_next(&m, &it))) {
		seen++;
		if (atoi(v + 1) % 2)
			assert_ptr_equal(kf__gw_map_del(&m, v, strlen(v)), v);
	}
	assert_int_equal(seen, 2000);
	assert_int_equal(m.n, 1000);
	assert_null(kf__gw_map_get(&m, "k3", 2));
	assert_ptr_equal(kf__gw_map_get(&m, "k4", 2), keys[4]);
	assert_null(kf__gw_map_del(&m, "k3", 2));
	/* Re-inserting after deletion reuses tombstones without losing entries. */
	for (int i = 1; i < 2000; i += 2)
		assert_int_equal(kf__gw_map_put(&m, keys[i], strlen(keys[i]), keys[i]), KF_OK);
	assert_int_equal(m.n, 2000);
	for (int i = 0; i < 2000; i++)
		assert_ptr_equal(kf__gw_map_get(&m, keys[i], strlen(keys[i])), keys[i]);
	kf__gw_map_release(&m);
}

/* ---- contract metrics before anything arrives ------------------------------- */

static void test_contract_from_zero(void **state)
{
	(void)state;
	struct kf_gw_agg *agg = agg_with(60 * SEC, 100, 100);
	struct view v;
	view_take(&v, agg, 1);
	for (size_t i = 0; i < KF_JOB_OUTCOME_COUNT; i++) {
		struct kf_msnap_series *s =
			view_series(&v, KF_METRIC_JOBS_TOTAL, &kf_job_outcome_names[i]);
		assert_non_null(s);
		assert_true(s->value == 0);
	}
	assert_non_null(view_series(&v, KF_METRIC_JOBS_ACTIVE, NULL));
	assert_non_null(view_series(&v, KF_METRIC_WORKER_HEARTBEATS, NULL));
	struct kf_msnap_series *h = view_series(&v, KF_METRIC_SCORE_LATENCY, NULL);
	assert_non_null(h);
	assert_int_equal(h->count, 0);
	assert_int_equal(v.snap.n_families, KF_CONTRACT_COUNT);
	/* The exposition is what promtool and Prometheus read. */
	struct kf_strbuf sb = KF_STRBUF_INIT;
	assert_int_equal(kf_expo_write(&sb, &v.snap, KF_EXPO_TEXT), KF_OK);
	assert_non_null(strstr(sb.buf, "keyforge_jobs_total{status=\"success\"} 0\n"));
	assert_non_null(strstr(sb.buf, "# TYPE keyforge_worker_heartbeats counter\n"));
	kf_strbuf_release(&sb);
	kf_msnap_release(&v.snap);
	kf_gw_agg_free(agg);
}

/* ---- sums and restarts ----------------------------------------------------------- */

static void test_counter_sum_and_restart(void **state)
{
	(void)state;
	struct kf_gw_agg *agg = agg_with(60 * SEC, 100, 100);
	assert_int_equal(push1(agg, "w1", 111, 1, counter("hb", 10), SEC), KF_OK);
	assert_int_equal(push1(agg, "w2", 222, 1, counter("hb", 3), SEC), KF_OK);
	assert_true(value_at(agg, "hb", SEC) == 13);

	/* w1 restarts: its 10 are kept in the retired sum, the new process
	 * counts from 0. */
	assert_int_equal(push1(agg, "w1", 112, 1, counter("hb", 2), 2 * SEC), KF_OK);
	assert_true(value_at(agg, "hb", 2 * SEC) == 15);
	assert_int_equal(push1(agg, "w1", 112, 2, counter("hb", 5), 3 * SEC), KF_OK);
	assert_true(value_at(agg, "hb", 3 * SEC) == 18);

	/* A late message of the old incarnation is ignored, not a flip back. */
	assert_int_equal(push1(agg, "w1", 111, 9, counter("hb", 11), 4 * SEC), KF_ESTALE);
	assert_true(value_at(agg, "hb", 4 * SEC) == 18);

	struct kf_gw_agg_stats st = stats_of(agg);
	assert_int_equal(st.restarts, 1);
	assert_int_equal(st.stale_updates, 1);
	assert_int_equal(st.updates, 4);
	assert_int_equal(st.sources, 2);
	assert_int_equal(st.instance_series, 2);
	kf_gw_agg_free(agg);
}

static void test_counter_reset_within_incarnation(void **state)
{
	(void)state;
	struct kf_gw_agg *agg = agg_with(60 * SEC, 100, 100);
	assert_int_equal(push1(agg, "w1", 1, 0, counter("c_total", 10), SEC), KF_OK);
	assert_int_equal(push1(agg, "w1", 1, 0, counter("c_total", 4), SEC), KF_OK);
	assert_true(value_at(agg, "c_total", SEC) == 14);
	assert_int_equal(push1(agg, "w1", 1, 0, counter("c_total", 6), SEC), KF_OK);
	assert_true(value_at(agg, "c_total", SEC) == 16);
	assert_int_equal(stats_of(agg).counter_resets, 1);
	kf_gw_agg_free(agg);
}

static void test_gauges_dropped_on_restart(void **state)
{
	(void)state;
	struct kf_gw_agg *agg = agg_with(60 * SEC, 100, 100);
	assert_int_equal(push1(agg, "w1", 1, 1, gauge("busy", 7), SEC), KF_OK);
	assert_int_equal(push1(agg, "w2", 1, 1, gauge("busy", 1.5), SEC), KF_OK);
	assert_int_equal(push1(agg, "w1", 1, 2, gauge("load", -2), SEC), KF_OK);
	assert_true(value_at(agg, "busy", SEC) == 8.5);
	assert_true(value_at(agg, "load", SEC) == -2);

	/* w1 restarts and reports only "busy": its old gauges are gone. */
	assert_int_equal(push1(agg, "w1", 2, 1, gauge("busy", 1), 2 * SEC), KF_OK);
	assert_true(value_at(agg, "busy", 2 * SEC) == 2.5);
	assert_true(isnan(value_at(agg, "load", 2 * SEC))); /* family gone */
	assert_int_equal(stats_of(agg).series, 1); /* busy; "load" went with w1 */
	kf_gw_agg_free(agg);
}

static void test_histogram_sum_and_restart(void **state)
{
	(void)state;
	struct kf_gw_agg *agg = agg_with(60 * SEC, 100, 100);
	const double le[] = { 1, 10 };
	const uint64_t b1[] = { 1, 3 }, b2[] = { 0, 2 }, b3[] = { 1, 1 };
	struct kf_gw_series h = { .name = "lat", .type = KF_GW_HISTOGRAM, .bucket_le = le,
				  .bucket_count = b1, .n_buckets = 2, .sum = 12.5, .count = 4 };
	assert_int_equal(push1(agg, "a", 1, 1, h, SEC), KF_OK);
	h.bucket_count = b2;
	h.sum = 9;
	h.count = 2;
	assert_int_equal(push1(agg, "b", 1, 1, h, SEC), KF_OK);
	/* a restarts with one observation. */
	h.bucket_count = b3;
	h.sum = 0.5;
	h.count = 1;
	assert_int_equal(push1(agg, "a", 2, 1, h, 2 * SEC), KF_OK);

	struct view v;
	view_take(&v, agg, 2 * SEC);
	struct kf_msnap_series *s = view_series(&v, "lat", NULL);
	assert_non_null(s);
	assert_int_equal(s->buckets[0], 1 + 0 + 1);
	assert_int_equal(s->buckets[1], 3 + 2 + 1);
	assert_int_equal(s->count, 4 + 2 + 1);
	assert_true(s->sum == 12.5 + 9 + 0.5);
	kf_msnap_release(&v.snap);

	/* Other bounds for the same family are refused. */
	const double le2[] = { 1, 20 };
	h.bucket_le = le2;
	assert_int_equal(push1(agg, "b", 1, 2, h, 2 * SEC), KF_OK);
	assert_int_equal(stats_of(agg).series_dropped[KF_GW_DROP_BUCKETS], 1);
	/* Non-cumulative buckets are invalid. */
	const uint64_t bad[] = { 3, 1 };
	h.bucket_le = le;
	h.bucket_count = bad;
	h.count = 3;
	assert_int_equal(push1(agg, "b", 1, 3, h, 2 * SEC), KF_OK);
	assert_int_equal(stats_of(agg).series_dropped[KF_GW_DROP_INVALID], 1);
	kf_gw_agg_free(agg);
}

static void test_contract_histogram_buckets_enforced(void **state)
{
	(void)state;
	struct kf_gw_agg *agg = agg_with(60 * SEC, 100, 100);
	uint64_t counts[32] = { 0 };
	for (size_t i = 0; i < kf_score_latency_n_buckets; i++)
		counts[i] = i < 3 ? i : 3;
	struct kf_gw_series h = {
		.name = KF_METRIC_SCORE_LATENCY, .type = KF_GW_HISTOGRAM,
		.bucket_le = kf_score_latency_buckets, .bucket_count = counts,
		.n_buckets = kf_score_latency_n_buckets, .sum = 300, .count = 4,
	};
	assert_int_equal(push1(agg, "w", 1, 1, h, SEC), KF_OK);
	h.n_buckets = 3; /* a prefix of the contract's bounds: not the contract */
	assert_int_equal(push1(agg, "w", 1, 2, h, SEC), KF_OK);
	/* keyforge_jobs_total as a gauge, or without its label: refused. */
	struct kf_gw_label st = { "status", "success" };
	struct kf_gw_series jt = { .name = KF_METRIC_JOBS_TOTAL, .type = KF_GW_GAUGE,
				   .labels = &st, .n_labels = 1, .value = 1 };
	assert_int_equal(push1(agg, "w", 1, 3, jt, SEC), KF_OK);
	jt.type = KF_GW_COUNTER;
	jt.n_labels = 0;
	assert_int_equal(push1(agg, "w", 1, 4, jt, SEC), KF_OK);
	jt.n_labels = 1;
	jt.value = 5;
	assert_int_equal(push1(agg, "w", 1, 5, jt, SEC), KF_OK);

	struct kf_gw_agg_stats s = stats_of(agg);
	assert_int_equal(s.series_dropped[KF_GW_DROP_BUCKETS], 1);
	assert_int_equal(s.series_dropped[KF_GW_DROP_TYPE], 1);
	assert_int_equal(s.series_dropped[KF_GW_DROP_LABELS], 1);

	struct view v;
	view_take(&v, agg, SEC);
	struct kf_msnap_series *hs = view_series(&v, KF_METRIC_SCORE_LATENCY, NULL);
	assert_int_equal(hs->count, 4);
	assert_int_equal(hs->buckets[1], 1);
	assert_true(view_series(&v, KF_METRIC_JOBS_TOTAL, (const char *[]){ "success" })->value
		    == 5);
	assert_true(view_series(&v, KF_METRIC_JOBS_TOTAL, (const char *[]){ "failed" })->value
		    == 0);
	/* One family per name: no duplicate contract family. */
	assert_int_equal(v.snap.n_families, KF_CONTRACT_COUNT);
	kf_msnap_release(&v.snap);
	kf_gw_agg_free(agg);
}

/* ---- expiry ------------------------------------------------------------------ */

static void test_ttl_expiry_and_tombstone(void **state)
{
	(void)state;
	struct kf_gw_agg *agg = agg_with(10 * SEC, 100, 100);
	struct kf_gw_series s[] = { counter("jobs_total", 10), gauge("busy", 1) };
	assert_int_equal(push(agg, "w1", 1, 1, false, s, 2, 0), KF_OK);
	assert_int_equal(kf_gw_agg_expire(agg, 9 * SEC), 0);
	assert_true(value_at(agg, "busy", 9 * SEC) == 1);

	/* Silent for the ttl: the counter keeps its 10, the gauge goes. */
	assert_true(value_at(agg, "jobs_total", 10 * SEC) == 10);
	assert_true(isnan(value_at(agg, "busy", 10 * SEC)));
	struct kf_gw_agg_stats st = stats_of(agg);
	assert_int_equal(st.series_expired, 2);
	assert_int_equal(st.instance_series, 0);

	/* The same process comes back (partition healed) with 12: exposed is 12,
	 * not 10 + 12. */
	s[0].value = 12;
	assert_int_equal(push(agg, "w1", 1, 2, false, s, 2, 20 * SEC), KF_OK);
	assert_true(value_at(agg, "jobs_total", 20 * SEC) == 12);
	assert_true(value_at(agg, "busy", 20 * SEC) == 1);

	/* It expires again, then comes back having restarted its counter
	 * without a new incarnation: what was counted stays counted. */
	assert_int_equal(kf_gw_agg_expire(agg, 31 * SEC), 2);
	s[0].value = 3;
	assert_int_equal(push(agg, "w1", 1, 3, false, s, 2, 32 * SEC), KF_OK);
	assert_true(value_at(agg, "jobs_total", 32 * SEC) == 15);
	assert_int_equal(stats_of(agg).counter_resets, 1);
	kf_gw_agg_free(agg);
}

static void test_ttl_zero_never_expires(void **state)
{
	(void)state;
	struct kf_gw_agg *agg = agg_with(0, 100, 100);
	assert_int_equal(push1(agg, "w1", 1, 1, gauge("busy", 4), 0), KF_OK);
	assert_int_equal(kf_gw_agg_expire(agg, 1000000 * SEC), 0);
	assert_true(value_at(agg, "busy", 1000000 * SEC) == 4);
	kf_gw_agg_free(agg);
}

static void test_full_update_expires_missing(void **state)
{
	(void)state;
	struct kf_gw_agg *agg = agg_with(60 * SEC, 100, 100);
	struct kf_gw_series s[] = { counter("a_total", 5), gauge("g", 2), gauge("h", 3) };
	assert_int_equal(push(agg, "w1", 1, 1, true, s, 3, SEC), KF_OK);
	/* A delta with only "g" leaves the others alone... */
	assert_int_equal(push(agg, "w1", 1, 2, false, &s[1], 1, SEC), KF_OK);
	assert_true(value_at(agg, "h", SEC) == 3);
	/* ...a full update with only "g" expires the rest. */
	assert_int_equal(push(agg, "w1", 1, 3, true, &s[1], 1, SEC), KF_OK);
	assert_true(isnan(value_at(agg, "h", SEC)));
	assert_true(value_at(agg, "a_total", SEC) == 5);
	assert_true(value_at(agg, "g", SEC) == 2);
	assert_int_equal(stats_of(agg).series_expired, 2);
	kf_gw_agg_free(agg);
}

static void test_depart(void **state)
{
	(void)state;
	struct kf_gw_agg *agg = agg_with(60 * SEC, 100, 100);
	struct kf_gw_series s[] = { counter("a_total", 5), gauge("g", 2) };
	assert_int_equal(push(agg, "w1", 7, 1, false, s, 2, SEC), KF_OK);
	assert_int_equal(push(agg, "w2", 8, 1, false, s, 2, SEC), KF_OK);
	assert_int_equal(kf_gw_agg_depart(agg, "w1", 6, SEC), KF_ENOENT); /* other incarnation */
	assert_int_equal(kf_gw_agg_depart(agg, "nobody", 0, SEC), KF_ENOENT);
	assert_int_equal(kf_gw_agg_depart(agg, "w1", 7, SEC), KF_OK);
	assert_int_equal(kf_gw_agg_depart(agg, "w1", 7, SEC), KF_ENOENT); /* nothing live */
	assert_true(value_at(agg, "g", SEC) == 2);
	assert_true(value_at(agg, "a_total", SEC) == 10);
	kf_gw_agg_free(agg);
}

/* ---- rounding ------------------------------------------------------------------ */

/* The exposed value of a counter or a histogram's _sum is recomputed at each
 * snapshot as retired + the live instances, in hash-map order. Floating-point
 * addition depends on order and grouping, and both change when a series is
 * folded into the retired sum or a source joins (the map is rebuilt, with a
 * seed of its own per aggregator). Prometheus reads any drop as a counter
 * reset, so none may show. Each case runs on many aggregators (seeds):
 * without the guard about a third of them dropped by an ulp. */
static void test_rounding_never_lowers_a_counter(void **state)
{
	(void)state;
	int dropped = 0;
	for (int trial = 0; trial < 200; trial++) {
		struct kf_gw_agg *agg = agg_with(10 * SEC, 100, 100);
		assert_int_equal(push1(agg, "a", 1, 1, counter("x_seconds_total", 0.1), 100 * SEC),
				 KF_OK);
		assert_int_equal(push1(agg, "b", 1, 1, counter("x_seconds_total", 0.2), 100 * SEC),
				 KF_OK);
		assert_int_equal(push1(agg, "c", 1, 1, counter("x_seconds_total", 0.3), 100 * SEC),
				 KF_OK);
		double before = value_at(agg, "x_seconds_total", 100 * SEC);
		/* b and c stay fresh; a expires into the retired sum. */
		assert_int_equal(push1(agg, "b", 1, 2, counter("x_seconds_total", 0.2), 105 * SEC),
				 KF_OK);
		assert_int_equal(push1(agg, "c", 1, 2, counter("x_seconds_total", 0.3), 105 * SEC),
				 KF_OK);
		double after = value_at(agg, "x_seconds_total", 111 * SEC);
		dropped += after < before;
		assert_int_equal(stats_of(agg).series_expired, 1);
		/* A real increase still shows in full. */
		assert_int_equal(push1(agg, "b", 1, 3, counter("x_seconds_total", 1.2), 112 * SEC),
				 KF_OK);
		double grown = value_at(agg, "x_seconds_total", 112 * SEC);
		assert_true(grown > after + 0.99 && grown < after + 1.01);
		kf_gw_agg_free(agg);
	}
	if (dropped)
		fail_msg("the counter went down (0.1 + 0.2 + 0.3, then one expired) with %d of 200 "
			 "seeds", dropped);
}

static enum kf_err push_hist(struct kf_gw_agg *agg, const char *src, double sum, uint64_t count,
			     uint64_t seq, uint64_t now)
{
	static const double le[] = { 1 };
	uint64_t cum[] = { count };
	struct kf_gw_series h = { .name = "job_seconds", .type = KF_GW_HISTOGRAM, .help = "h",
				  .bucket_le = le, .bucket_count = cum, .n_buckets = 1,
				  .sum = sum, .count = count };
	return push(agg, src, 7, seq, true, &h, 1, now);
}

static double hist_sum_at(struct kf_gw_agg *agg, uint64_t now)
{
	struct view v;
	view_take(&v, agg, now);
	struct kf_msnap_series *s = view_series(&v, "job_seconds", NULL);
	double r = s ? s->sum : NAN;
	kf_msnap_release(&v.snap);
	return r;
}

static void test_rounding_never_lowers_a_histogram_sum(void **state)
{
	(void)state;
	int dropped = 0;
	for (int trial = 0; trial < 200; trial++) {
		struct kf_gw_agg *agg = agg_with(60 * SEC, 100, 100);
		char name[32];
		for (int i = 0; i < 11; i++) {
			snprintf(name, sizeof name, "worker-%d", i);
			assert_int_equal(push_hist(agg, name, 0.1 * (i + 1) + 0.01 * trial, 1, 1, SEC),
					 KF_OK);
		}
		double before = hist_sum_at(agg, SEC);
		/* A twelfth worker joins, nothing observed yet. */
		assert_int_equal(push_hist(agg, "worker-new", 0, 0, 1, 2 * SEC), KF_OK);
		dropped += hist_sum_at(agg, 2 * SEC) < before;
		kf_gw_agg_free(agg);
	}
	if (dropped)
		fail_msg("_sum went down when a worker with nothing observed joined, with %d of 200 "
			 "seeds", dropped);

	/* Negative observations may lower a histogram's _sum (Prometheus allows
	 * them, and so does kf_histogram_observe): such a fall is real, and shows. */
	struct kf_gw_agg *agg = agg_with(60 * SEC, 100, 100);
	assert_int_equal(push_hist(agg, "w", 5, 1, 1, SEC), KF_OK);
	assert_true(hist_sum_at(agg, SEC) == 5);
	assert_int_equal(push_hist(agg, "w", 2, 2, 2, SEC), KF_OK);
	assert_true(hist_sum_at(agg, SEC) == 2);
	kf_gw_agg_free(agg);
}

/* ---- caps, gaps, refusals ------------------------------------------------------- */

static void test_series_cap(void **state)
{
	(void)state;
	struct kf_gw_agg *agg = agg_with(60 * SEC, 2, 100);
	const char *vals[] = { "a", "b", "c" };
	for (int i = 0; i < 3; i++) {
		struct kf_gw_label l = { "k", vals[i] };
		struct kf_gw_series s = counter("x_total", i + 1);
		s.labels = &l;
		s.n_labels = 1;
		assert_int_equal(push1(agg, "w1", 1, (uint64_t)i + 1, s, SEC), KF_OK);
	}
	/* An existing label set keeps updating at the cap. */
	struct kf_gw_label la = { "k", "a" };
	struct kf_gw_series s = counter("x_total", 9);
	s.labels = &la;
	s.n_labels = 1;
	assert_int_equal(push1(agg, "w1", 1, 4, s, SEC), KF_OK);

	struct view v;
	view_take(&v, agg, SEC);
	assert_int_equal(kf_msnap_find_family(&v.snap, "x_total")->n_series, 2);
	assert_true(view_series(&v, "x_total", (const char *[]){ "a" })->value == 9);
	assert_null(view_series(&v, "x_total", (const char *[]){ "c" }));
	kf_msnap_release(&v.snap);
	assert_int_equal(stats_of(agg).series_dropped[KF_GW_DROP_CAP], 1);
	kf_gw_agg_free(agg);
}

static void test_sequence_gaps(void **state)
{
	(void)state;
	struct kf_gw_agg *agg = agg_with(60 * SEC, 100, 100);
	struct kf_gw_series s = counter("c_total", 1);
	assert_int_equal(push1(agg, "w1", 1, 1, s, SEC), KF_OK);
	assert_int_equal(push1(agg, "w1", 1, 2, s, SEC), KF_OK);
	assert_int_equal(push1(agg, "w1", 1, 5, s, SEC), KF_OK);  /* 3, 4 lost */
	assert_int_equal(push1(agg, "w1", 1, 4, s, SEC), KF_ESTALE); /* late */
	assert_int_equal(push1(agg, "w1", 1, 5, s, SEC), KF_ESTALE); /* duplicate */
	assert_int_equal(push1(agg, "w1", 1, 9, s, SEC), KF_OK);  /* 6..8 lost */
	/* A new incarnation starts its own numbering: no gap. */
	assert_int_equal(push1(agg, "w1", 2, 1, s, SEC), KF_OK);
	/* Unnumbered updates are never stale. */
	assert_int_equal(push1(agg, "w2", 1, 0, s, SEC), KF_OK);
	assert_int_equal(push1(agg, "w2", 1, 0, s, SEC), KF_OK);
	struct kf_gw_agg_stats st = stats_of(agg);
	assert_int_equal(st.sequence_gaps, 2);
	assert_int_equal(st.messages_missed, 5);
	assert_int_equal(st.stale_updates, 2);
	/* A producer numbering all its messages in one sequence: jumps are
	 * normal, but an old number is still stale. */
	struct kf_gw_update u = { .source = "w3", .incarnation = 1, .seq = 10, .series = &s,
				  .n_series = 1 };
	assert_int_equal(kf_gw_agg_update(agg, &u, SEC), KF_OK);
	u.seq = 17;
	assert_int_equal(kf_gw_agg_update(agg, &u, SEC), KF_OK);
	u.seq = 12;
	assert_int_equal(kf_gw_agg_update(agg, &u, SEC), KF_ESTALE);
	st = stats_of(agg);
	assert_int_equal(st.sequence_gaps, 2);
	assert_int_equal(st.stale_updates, 3);
	kf_gw_agg_free(agg);
}

static void test_refusals(void **state)
{
	(void)state;
	struct kf_gw_agg *agg = agg_with(60 * SEC, 100, 100);
	struct kf_gw_label dup[] = { { "a", "1" }, { "a", "2" } };
	struct kf_gw_label le = { "le", "1" };
	struct kf_gw_label k1 = { "k", "1" }, j1 = { "j", "1" };
	struct kf_gw_label badutf = { "k", "\xff" };
	struct kf_gw_series s[] = {
		counter("process_cpu_seconds_total", 1),      /* reserved */
		counter("keyforge_gateway_up", 1),            /* reserved */
		counter("bad-name", 1),                       /* invalid */
		counter("neg_total", -1),                     /* invalid */
		counter("nan_total", NAN),                    /* invalid */
		{ .name = "d", .type = KF_GW_GAUGE, .labels = dup, .n_labels = 2 }, /* invalid */
		{ .name = "hl", .type = KF_GW_HISTOGRAM, .labels = &le, .n_labels = 1 },
		{ .name = "u", .type = KF_GW_GAUGE, .labels = &badutf, .n_labels = 1 },
		gauge("keyforge_jobs", 1),  /* collides with keyforge_jobs_total (OpenMetrics) */
		{ .name = "lab", .type = KF_GW_GAUGE, .labels = &k1, .n_labels = 1, .value = 1 },
		{ .name = "lab", .type = KF_GW_GAUGE, .labels = &j1, .n_labels = 1, .value = 1 },
		counter("lab", 1),                            /* type */
		gauge("gauge_nan_ok", NAN),                   /* gauges may be NaN */
	};
	assert_int_equal(push(agg, "w1", 1, 1, false, s, sizeof s / sizeof s[0], SEC), KF_OK);
	struct kf_gw_agg_stats st = stats_of(agg);
	assert_int_equal(st.series_dropped[KF_GW_DROP_RESERVED], 2);
	assert_int_equal(st.series_dropped[KF_GW_DROP_INVALID], 7);
	assert_int_equal(st.series_dropped[KF_GW_DROP_LABELS], 1);
	assert_int_equal(st.series_dropped[KF_GW_DROP_TYPE], 1);
	assert_true(isnan(value_at(agg, "gauge_nan_ok", SEC)) &&
		    stats_of(agg).instance_series == 2);
	struct kf_gw_update u = { .source = "", .n_series = 0 };
	assert_int_equal(kf_gw_agg_update(agg, &u, SEC), KF_EINVAL);
	kf_gw_agg_free(agg);
}

static void test_family_cap(void **state)
{
	(void)state;
	struct kf_gw_agg_config cfg = KF_GW_AGG_CONFIG_INIT;
	cfg.max_families = 1;
	struct kf_gw_agg *agg;
	assert_int_equal(kf_gw_agg_new(&agg, &cfg), KF_OK);
	struct kf_gw_series s[] = { gauge("one", 1), gauge("two", 2),
				    gauge(KF_METRIC_JOBS_ACTIVE, 3) };
	assert_int_equal(push(agg, "w1", 1, 1, false, s, 3, SEC), KF_OK);
	assert_int_equal(stats_of(agg).series_dropped[KF_GW_DROP_FAMILIES], 1);
	assert_true(value_at(agg, KF_METRIC_JOBS_ACTIVE, SEC) == 3);
	kf_gw_agg_free(agg);
}

static void test_source_cap_and_eviction(void **state)
{
	(void)state;
	struct kf_gw_agg *agg = agg_with(10 * SEC, 100, 1);
	struct kf_gw_series s[] = { counter("c_total", 4), gauge("g", 1) };
	assert_int_equal(push(agg, "w1", 1, 1, false, s, 2, 0), KF_OK);
	assert_int_equal(push(agg, "w2", 1, 1, false, s, 2, SEC), KF_EFULL);
	assert_int_equal(stats_of(agg).series_dropped[KF_GW_DROP_SOURCES], 2);
	/* Once w1 has only tombstones left, it makes room; its count stays. */
	kf_gw_agg_expire(agg, 10 * SEC);
	assert_int_equal(push(agg, "w2", 1, 1, false, s, 2, 11 * SEC), KF_OK);
	assert_int_equal(stats_of(agg).sources_evicted, 1);
	assert_true(value_at(agg, "c_total", 11 * SEC) == 8);
	assert_true(value_at(agg, "g", 11 * SEC) == 1);
	kf_gw_agg_free(agg);
}

static enum kf_err push_c_h(struct kf_gw_agg *agg, const char *src, uint64_t inc, uint64_t seq,
			    double c, uint64_t b0, uint64_t count, double sum, uint64_t now)
{
	static const double le[] = { 1, 10 };
	uint64_t cum[] = { b0, count };
	struct kf_gw_series s[] = {
		counter("c_total", c),
		{ .name = "lat", .type = KF_GW_HISTOGRAM, .bucket_le = le, .bucket_count = cum,
		  .n_buckets = 2, .sum = sum, .count = count },
	};
	return push(agg, src, inc, seq, false, s, 2, now);
}

/* A source evicted at the cap whose same incarnation reports again (a
 * partition that outlasted its tombstones): its tombstones are still in the
 * retired sum, so its cumulative values must not be added on top of them. It
 * counts on from what it reports when it comes back. */
static void test_evicted_incarnation_comes_back(void **state)
{
	(void)state;
	struct kf_gw_agg *agg = agg_with(10 * SEC, 100, 1);
	assert_int_equal(push_c_h(agg, "w1", 1, 1, 4, 1, 2, 3, 0), KF_OK);
	kf_gw_agg_expire(agg, 10 * SEC);
	assert_int_equal(push1(agg, "w2", 1, 1, counter("c_total", 4), 11 * SEC), KF_OK);
	kf_gw_agg_expire(agg, 21 * SEC);
	assert_true(value_at(agg, "c_total", 21 * SEC) == 8);

	/* w1, same process, comes back with 6 and evicts w2: not 4 + 4 + 6. */
	assert_int_equal(push_c_h(agg, "w1", 1, 2, 6, 2, 3, 5, 22 * SEC), KF_OK);
	assert_int_equal(stats_of(agg).sources_evicted, 2);
	struct view v;
	view_take(&v, agg, 22 * SEC);
	assert_true(view_series(&v, "c_total", NULL)->value == 8);
	struct kf_msnap_series *h = view_series(&v, "lat", NULL);
	assert_int_equal(h->count, 2);
	assert_int_equal(h->buckets[0], 1);
	assert_int_equal(h->buckets[1], 2);
	assert_true(h->sum == 3);
	kf_msnap_release(&v.snap);

	/* From there on, what it counts shows. */
	assert_int_equal(push_c_h(agg, "w1", 1, 3, 9, 3, 5, 9, 23 * SEC), KF_OK);
	view_take(&v, agg, 23 * SEC);
	assert_true(view_series(&v, "c_total", NULL)->value == 11);
	h = view_series(&v, "lat", NULL);
	assert_int_equal(h->count, 4);
	assert_int_equal(h->buckets[0], 2);
	assert_int_equal(h->buckets[1], 4);
	assert_true(h->sum == 7);
	kf_msnap_release(&v.snap);

	/* Its counter resets below the value it came back with: what it
	 * counted since stays, the new count adds. */
	assert_int_equal(push_c_h(agg, "w1", 1, 4, 1, 3, 5, 9, 24 * SEC), KF_OK);
	assert_true(value_at(agg, "c_total", 24 * SEC) == 12);
	assert_int_equal(push_c_h(agg, "w1", 1, 5, 2, 3, 5, 9, 25 * SEC), KF_OK);
	assert_true(value_at(agg, "c_total", 25 * SEC) == 13);

	/* A new process of that source counts from 0 as always. */
	kf_gw_agg_expire(agg, 35 * SEC);
	assert_int_equal(push_c_h(agg, "w1", 2, 1, 5, 0, 0, 0, 36 * SEC), KF_OK);
	assert_true(value_at(agg, "c_total", 36 * SEC) == 18);
	/* Evicted again, the first process is one the source had retired:
	 * late, it is stale, not back. */
	kf_gw_agg_expire(agg, 46 * SEC);
	assert_int_equal(push1(agg, "w3", 1, 1, counter("c_total", 1), 47 * SEC), KF_OK);
	kf_gw_agg_expire(agg, 57 * SEC);
	assert_int_equal(push_c_h(agg, "w1", 1, 6, 7, 3, 5, 9, 58 * SEC), KF_ESTALE);
	assert_true(value_at(agg, "c_total", 58 * SEC) == 19);
	assert_int_equal(stats_of(agg).sources_evicted, 3);
	kf_gw_agg_free(agg);

	/* A late update of an incarnation the evicted source had already
	 * retired is stale, as it was before the eviction. */
	agg = agg_with(10 * SEC, 100, 1);
	assert_int_equal(push1(agg, "w1", 1, 1, counter("c_total", 5), 0), KF_OK);
	assert_int_equal(push1(agg, "w1", 2, 1, counter("c_total", 2), SEC), KF_OK);
	kf_gw_agg_expire(agg, 11 * SEC);
	assert_int_equal(push1(agg, "w2", 1, 1, counter("c_total", 1), 12 * SEC), KF_OK);
	kf_gw_agg_expire(agg, 22 * SEC);
	assert_int_equal(push1(agg, "w1", 1, 2, counter("c_total", 5), 23 * SEC), KF_ESTALE);
	assert_true(value_at(agg, "c_total", 23 * SEC) == 8);
	kf_gw_agg_free(agg);
}

static void test_label_order_and_help(void **state)
{
	(void)state;
	struct kf_gw_agg *agg = agg_with(60 * SEC, 100, 100);
	struct kf_gw_label ab[] = { { "a", "1" }, { "b", "2" } };
	struct kf_gw_label ba[] = { { "b", "2" }, { "a", "1" } };
	struct kf_gw_series s = { .name = "m_total", .type = KF_GW_COUNTER, .labels = ab,
				  .n_labels = 2, .value = 1 };
	assert_int_equal(push1(agg, "w1", 1, 1, s, SEC), KF_OK);
	struct view v0;
	view_take(&v0, agg, SEC);
	assert_string_equal(kf_msnap_find_family(&v0.snap, "m_total")->help, KF_GW_NO_HELP);
	kf_msnap_release(&v0.snap);
	/* The first help text a producer sends is kept. */
	s.labels = ba;
	s.help = "Things \"counted\".";
	s.value = 2;
	assert_int_equal(push1(agg, "w2", 1, 1, s, SEC), KF_OK);
	struct view v;
	view_take(&v, agg, SEC);
	struct kf_msnap_family *f = kf_msnap_find_family(&v.snap, "m_total");
	assert_int_equal(f->n_series, 1);
	assert_string_equal(f->label_names[0], "a");
	assert_string_equal(f->help, "Things \"counted\".");
	assert_true(f->series[0]->value == 3);
	kf_msnap_release(&v.snap);
	kf_gw_agg_free(agg);
}

/* The freshness of the broker's cluster status (expose.c's fallback for
 * keyforge_jobs_by_state). A scrape reads the clock, then waits for the
 * lock; the ingest thread may stamp a newer status in between. That stamp
 * is after `now`: age 0, fresh, not a wrapped difference that calls it
 * stale and makes the series vanish for that scrape. */
static void test_fresh(void **state)
{
	(void)state;
	const uint64_t now = 1000 * SEC, ttl = 60 * SEC;
	assert_true(kf_gw_fresh(now, now, ttl));
	assert_true(kf_gw_fresh(now + 1, now, ttl));            /* stamped after the clock read */
	assert_true(kf_gw_fresh(now + 3 * SEC, now, ttl));
	assert_true(kf_gw_fresh(now - ttl, now, ttl));          /* exactly ttl old */
	assert_false(kf_gw_fresh(now - ttl - 1, now, ttl));
	assert_false(kf_gw_fresh(0, now, ttl));
	assert_true(kf_gw_fresh(0, now, 0));                    /* ttl 0: never stale */
	assert_true(kf_gw_fresh(UINT64_MAX, 0, ttl));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_map_basic),
		cmocka_unit_test(test_contract_from_zero),
		cmocka_unit_test(test_counter_sum_and_restart),
		cmocka_unit_test(test_counter_reset_within_incarnation),
		cmocka_unit_test(test_gauges_dropped_on_restart),
		cmocka_unit_test(test_histogram_sum_and_restart),
		cmocka_unit_test(test_contract_histogram_buckets_enforced),
		cmocka_unit_test(test_ttl_expiry_and_tombstone),
		cmocka_unit_test(test_ttl_zero_never_expires),
		cmocka_unit_test(test_full_update_expires_missing),
		cmocka_unit_test(test_depart),
		cmocka_unit_test(test_rounding_never_lowers_a_counter),
		cmocka_unit_test(test_rounding_never_lowers_a_histogram_sum),
		cmocka_unit_test(test_series_cap),
		cmocka_unit_test(test_sequence_gaps),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_family_cap),
		cmocka_unit_test(test_source_cap_and_eviction),
		cmocka_unit_test(test_evicted_incarnation_comes_back),
		cmocka_unit_test(test_label_order_and_help),
		cmocka_unit_test(test_fresh),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
