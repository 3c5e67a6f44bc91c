/*
 * wmetrics.c — the worker's metric families (docs/operations.md
 * "keyforge-worker" lists them).
 *
 * Of the four contract metrics the worker publishes only
 * keyforge_score_latency_ns: the broker owns keyforge_jobs_total,
 * keyforge_jobs_active and keyforge_worker_heartbeats (it counts them from
 * the database and from what it receives), and the gateway sums every
 * source — a worker publishing them too would count each job twice. What a
 * worker did with its jobs is keyforge_worker_jobs_total{outcome}.
 */
#include "worker/worker_int.h"

#include <string.h>

#include "telemetry/contract.h"
#include "telemetry/metrics.h"
#include "telemetry/metrics_snap.h"
#include "telemetry/process.h"

static const char *const outcome_label[] = { "outcome" };
static const char *const method_label[] = { "method" };
static const char *const outcome_names[KF__OUT_COUNT] = {
	[KF__OUT_SUCCEEDED] = "succeeded", [KF__OUT_FAILED] = "failed",
	[KF__OUT_KILLED] = "killed", [KF__OUT_DROPPED] = "dropped",
	[KF__OUT_HANDED_BACK] = "handed_back",
};
static const char *const method_names[KF__M_COUNT] = {
	[KF__M_HELLO] = "hello", [KF__M_LEASE] = "lease", [KF__M_PROGRESS] = "progress",
	[KF__M_COMPLETE] = "complete",
};
static const double job_seconds_buckets[] = { 0.001, 0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60,
	300, 1800 };

enum fam {
	F_JOBS, F_RUNNING, F_STEPS, F_JOB_SECONDS, F_RPC_FAIL, F_COMMANDS, F_OUTBOX, F_RESENT,
	F_TEL_DROPPED, F_CORPUS_LOADS, F_LEASED_AHEAD, F_COUNT
};

static const struct kf_metric_desc descs[F_COUNT] = {
	[F_JOBS] = { "keyforge_worker_jobs_total", "Job attempts this worker ended, by outcome "
		"(succeeded, failed, killed, dropped: stale lease, handed_back: shutdown).",
		KF_METRIC_COUNTER, outcome_label, 1, NULL, 0, 0 },
	[F_RUNNING] = { "keyforge_worker_jobs_running", "Jobs this worker is running now.",
		KF_METRIC_GAUGE, NULL, 0, NULL, 0, 0 },
	[F_STEPS] = { "keyforge_worker_anneal_steps_total",
		"Annealing steps (swap attempts) this worker ran.",
		KF_METRIC_COUNTER, NULL, 0, NULL, 0, 0 },
	[F_JOB_SECONDS] = { "keyforge_worker_job_duration_seconds",
		"Wall time of one job attempt on this worker, corpus loading included.",
		KF_METRIC_HISTOGRAM, NULL, 0, job_seconds_buckets,
		sizeof job_seconds_buckets / sizeof job_seconds_buckets[0], 0 },
	[F_RPC_FAIL] = { "keyforge_worker_rpc_failures_total",
		"Requests to the broker that got no answer (timeout, connection lost), by method.",
		KF_METRIC_COUNTER, method_label, 1, NULL, 0, 0 },
	[F_COMMANDS] = { "keyforge_worker_commands_total",
		"Commands received on cmd.<worker> (cancel, drain).",
		KF_METRIC_COUNTER, NULL, 0, NULL, 0, 0 },
	[F_OUTBOX] = { "keyforge_worker_results_unacknowledged",
		"Results sent to the broker and not acknowledged yet.",
		KF_METRIC_GAUGE, NULL, 0, NULL, 0, 0 },
	[F_RESENT] = { "keyforge_worker_results_resent_total",
		"Complete requests sent again because no acknowledgement came.",
		KF_METRIC_COUNTER, NULL, 0, NULL, 0, 0 },
	[F_TEL_DROPPED] = { "keyforge_worker_telemetry_dropped_total",
		"Heartbeats, log events and metric updates dropped because the publish queue "
		"was full (broker unreachable for long).",
		KF_METRIC_COUNTER, NULL, 0, NULL, 0, 0 },
	[F_CORPUS_LOADS] = { "keyforge_worker_corpus_loads_total",
		"Corpus files loaded (each once per process).",
		KF_METRIC_COUNTER, NULL, 0, NULL, 0, 0 },
	[F_LEASED_AHEAD] = { "keyforge_worker_jobs_leased_ahead_total",
		"Jobs this worker leased ahead: asked for while every slot was taken or "
		"asked for, to run next (--lease-ahead).",
		KF_METRIC_COUNTER, NULL, 0, NULL, 0, 0 },
};

static void collect(struct kf_metrics *reg, void *arg)
{
	struct kf_worker *w = arg;
	struct kf__outbox_stats ob;
	struct kf__publisher_stats ps;
	uint64_t loads, builds;

	(void)reg;
	if (w->outbox) {
		kf__outbox_stats(w->outbox, &ob);
		kf_gauge_set(w->m.outbox_pending, (double)ob.pending);
		kf_counter_set(w->m.results_resent, (double)ob.resent);
	}
	if (w->publisher) {
		kf__publisher_stats(w->publisher, &ps);
		kf_counter_set(w->m.telemetry_dropped, (double)ps.dropped);
	}
	if (w->engine) {
		kf__engine_counts(w->engine, &loads, &builds);
		kf_counter_set(w->m.corpus_loads, (double)loads);
	}
	kf_counter_set(w->m.leased_ahead, (double)atomic_load(&w->gate.leased_ahead));
}

static enum kf_err labelled(struct kf_metric_family *fam, const char *const *names, size_t n,
	struct kf_counter **out)
{
	enum kf_err err;

	for (size_t i = 0; i < n; i++)
		if ((err = kf_metric_family_counter(fam, (const char *const[]){ names[i] }, &out[i])))
			return err;
	return KF_OK;
}

static enum kf_err register_all(struct kf__wmetrics *m)
{
	struct kf_metric_family *f[F_COUNT], *lat;
	enum kf_err err;

	for (int i = 0; i < F_COUNT; i++)
		if ((err = kf_metrics_register(m->reg, &descs[i], &f[i])))
			return err;
	if ((err = kf_metrics_register(m->reg, &kf_contract_descs[KF_CONTRACT_SCORE_LATENCY], &lat)) ||
	    (err = kf_metric_family_histogram(lat, NULL, &m->score_latency)) ||
	    (err = labelled(f[F_JOBS], outcome_names, KF__OUT_COUNT, m->jobs)) ||
	    (err = labelled(f[F_RPC_FAIL], method_names, KF__M_COUNT, m->rpc_failures)) ||
	    (err = kf_metric_family_gauge(f[F_RUNNING], NULL, &m->jobs_running)) ||
	    (err = kf_metric_family_counter(f[F_STEPS], NULL, &m->steps)) ||
	    (err = kf_metric_family_histogram(f[F_JOB_SECONDS], NULL, &m->job_seconds)) ||
	    (err = kf_metric_family_counter(f[F_COMMANDS], NULL, &m->commands)) ||
	    (err = kf_metric_family_gauge(f[F_OUTBOX], NULL, &m->outbox_pending)) ||
	    (err = kf_metric_family_counter(f[F_RESENT], NULL, &m->results_resent)) ||
	    (err = kf_metric_family_counter(f[F_TEL_DROPPED], NULL, &m->telemetry_dropped)) ||
	    (err = kf_metric_family_counter(f[F_CORPUS_LOADS], NULL, &m->corpus_loads)) ||
	    (err = kf_metric_family_counter(f[F_LEASED_AHEAD], NULL, &m->leased_ahead)))
		return err;
	return KF_OK;
}

enum kf_err kf__wmetrics_init(struct kf__wmetrics *m, struct kf_worker *w)
{
	enum kf_err err;

	memset(m, 0, sizeof(*m));
	if ((err = kf_metrics_new(&m->reg)))
		return err;
	if ((err = register_all(m)) || (err = kf_metrics_add_collector(m->reg, collect, NULL, w)))
		goto fail;
	/* /proc may be unreadable in odd sandboxes: the worker runs without
	 * process_* then. */
	if ((err = kf_process_register(m->reg)) && err != KF_EIO)
		goto fail;
	return KF_OK;
fail:
	kf_metrics_free(m->reg);
	memset(m, 0, sizeof(*m));
	return err;
}

void kf__wmetrics_release(struct kf__wmetrics *m)
{
	kf_metrics_free(m->reg);
	memset(m, 0, sizeof(*m));
}

void kf__wmetrics_outcome(struct kf__wmetrics *m, enum kf__outcome o)
{
	if ((unsigned)o < KF__OUT_COUNT)
		kf_counter_inc(m->jobs[o]);
}

void kf__wmetrics_rpc_failure(struct kf__wmetrics *m, enum kf__method method)
{
	if ((unsigned)method < KF__M_COUNT)
		kf_counter_inc(m->rpc_failures[method]);
}

void kf__wmetrics_job_done(struct kf__wmetrics *m, uint64_t steps, double seconds)
{
	kf_counter_add_u64(m->steps, steps);
	kf_histogram_observe(m->job_seconds, seconds);
}

void kf__wmetrics_running(struct kf__wmetrics *m, int delta)
{
	kf_gauge_add(m->jobs_running, delta);
}

void kf__wmetrics_command(struct kf__wmetrics *m)
{
	kf_counter_inc(m->commands);
}

void kf__wmetrics_score(void *ctx, uint64_t latency_ns, double cost)
{
	struct kf__wmetrics *m = ctx;

	(void)cost;
	kf_histogram_observe_u64(m->score_latency, latency_ns);
}
