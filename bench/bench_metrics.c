/*
 * bench_metrics — nanoseconds per metric update on the hot path.
 *
 *	bench_metrics [iterations]      (default 20000000 per thread and case)
 *
 * Cases: counter increment, histogram observation (double and integer ns,
 * the contract's 16 buckets, latencies spread over them), each on one
 * thread, on two threads updating the SAME series (contended) and on two
 * threads updating SEPARATE series. ns/op is wall time per operation as one
 * thread sees it. Goals (issue 3): counter <= 10 ns, histogram <= 25 ns.
 * bench_metrics_1shard is the same program built with KF_METRICS_SHARDS=1
 * (one cache line per series for all threads), to show what sharding buys.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/clock.h"
#include "telemetry/contract.h"
#include "telemetry/metrics.h"

enum op { OP_COUNTER, OP_HIST_DOUBLE, OP_HIST_U64 };

#define N_VALUES 1024 /* power of two */

struct worker {
	enum op op;
	uint64_t iters;
	struct kf_counter *counter;
	struct kf_histogram *hist;
	const uint64_t *values;
	pthread_barrier_t *start;
	uint64_t ns;
};

static void *run(void *p)
{
	struct worker *w = p;
	const uint64_t *v = w->values;
	if (w->start)
		pthread_barrier_wait(w->start);
	uint64_t t0 = kf_clock_mono_ns();
	switch (w->op) {
	case OP_COUNTER:
		for (uint64_t i = 0; i < w->iters; i++)
			kf_counter_inc(w->counter);
		break;
	case OP_HIST_DOUBLE:
		for (uint64_t i = 0; i < w->iters; i++)
			kf_histogram_observe(w->hist, (double)v[i & (N_VALUES - 1)]);
		break;
	case OP_HIST_U64:
		for (uint64_t i = 0; i < w->iters; i++)
			kf_histogram_observe_u64(w->hist, v[i & (N_VALUES - 1)]);
		break;
	}
	w->ns = kf_clock_mono_ns() - t0;
	return NULL;
}

/* Latencies shaped like layout scores: mostly 60 ns .. 3 µs, a tail to 2 ms. */
static void fill_values(uint64_t *v)
{
	uint64_t x = 88172645463325252ull; /* xorshift64 */
	for (int i = 0; i < N_VALUES; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		v[i] = (x % 16 == 0) ? 3000 + x % 2000000 : 60 + x % 3000;
	}
}

struct series {
	struct kf_counter *counter;
	struct kf_histogram *hist;
};

static double bench(enum op op, int threads, struct series *s[2], uint64_t iters,
		    const uint64_t *values)
{
	struct worker w[2];
	pthread_t tid[2];
	pthread_barrier_t start;
	pthread_barrier_init(&start, NULL, (unsigned)threads);
	for (int t = 0; t < threads; t++) {
		w[t] = (struct worker){ op, iters, s[t]->counter, s[t]->hist, values,
					threads > 1 ? &start : NULL, 0 };
		if (threads == 1)
			run(&w[t]);
		else
			pthread_create(&tid[t], NULL, run, &w[t]);
	}
	double worst = 0;
	for (int t = 0; t < threads; t++) {
		if (threads > 1)
			pthread_join(tid[t], NULL);
		double ns = (double)w[t].ns / (double)iters;
		if (ns > worst)
			worst = ns;
	}
	pthread_barrier_destroy(&start);
	return worst;
}

static int make_series(struct kf_metrics *reg, struct kf_metric_family *cf,
		       struct kf_metric_family *hf, const char *name, struct series *out)
{
	const char *v[] = { name };
	return kf_metric_family_counter(cf, v, &out->counter) ||
	       kf_metric_family_histogram(hf, v, &out->hist) || !reg;
}

int main(int argc, char **argv)
{
	uint64_t iters = argc > 1 ? strtoull(argv[1], NULL, 10) : 20000000;
	static const char *const label[] = { "series" };
	struct kf_metric_desc cd = { .name = "bench_ops_total", .help = "b",
				     .type = KF_METRIC_COUNTER, .label_names = label, .n_labels = 1 };
	struct kf_metric_desc hd = kf_contract_descs[KF_CONTRACT_SCORE_LATENCY];
	hd.label_names = label;
	hd.n_labels = 1;
	struct kf_metrics *reg;
	struct kf_metric_family *cf, *hf;
	struct series a, b;
	uint64_t values[N_VALUES];
	fill_values(values);
	if (kf_metrics_new(&reg) || kf_metrics_register(reg, &cd, &cf) ||
	    kf_metrics_register(reg, &hd, &hf) || make_series(reg, cf, hf, "a", &a) ||
	    make_series(reg, cf, hf, "b", &b)) {
		fprintf(stderr, "bench_metrics: setup failed\n");
		return 1;
	}
	static const struct {
		enum op op;
		const char *name;
	} ops[] = {
		{ OP_COUNTER, "counter inc" },
		{ OP_HIST_DOUBLE, "histogram observe (double)" },
		{ OP_HIST_U64, "histogram observe_u64 (ns)" },
	};
	printf("bench_metrics: %llu iterations per thread, KF_METRICS_SHARDS=%d\n",
	       (unsigned long long)iters, KF_METRICS_SHARDS);
	printf("%-28s %12s %16s %16s\n", "ns/op", "1 thread", "2 thr same", "2 thr separate");
	for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
		struct series *one[2] = { &a, &a }, *two[2] = { &a, &b };
		double single = bench(ops[i].op, 1, one, iters, values);
		double same = bench(ops[i].op, 2, one, iters, values);
		double sep = bench(ops[i].op, 2, two, iters, values);
		printf("%-28s %12.2f %16.2f %16.2f\n", ops[i].name, single, same, sep);
	}
	/* Keep the work observable so nothing is optimised away. */
	printf("(check: counter a = %.0f)\n", kf_counter_value(a.counter));
	kf_metrics_free(reg);
	return 0;
}
