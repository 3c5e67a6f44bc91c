/*
 * contract.h — the four metrics of DESIGN.md §5, declared once for every
 * program. Dashboards depend on these exact names, types, labels and help
 * texts: change them only together with DESIGN.md and docs/metrics.md.
 *
 *	keyforge_jobs_active        gauge      jobs currently running
 *	keyforge_jobs_total         counter    {status} jobs that reached an outcome
 *	keyforge_score_latency_ns   histogram  ns to calculate one layout score
 *	keyforge_worker_heartbeats  counter    heartbeats received (no _total: the
 *	                                       contract fixes the name; OpenMetrics
 *	                                       exposes the sample with _total)
 *
 * keyforge_jobs_total{status} counts outcomes of attempts, one per attempt
 * that ends, so that every value exists from 0 on:
 *	success  the job succeeded
 *	failed   the job failed for good (no attempt left, or not retryable)
 *	killed   an operator killed it (never retried automatically)
 *	retried  an attempt failed or its worker died, and the job went back to
 *	         pending for another attempt
 */
#ifndef KF_TELEMETRY_CONTRACT_H
#define KF_TELEMETRY_CONTRACT_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "telemetry/metrics.h"

#define KF_METRIC_JOBS_ACTIVE "keyforge_jobs_active"
#define KF_METRIC_JOBS_TOTAL "keyforge_jobs_total"
#define KF_METRIC_SCORE_LATENCY "keyforge_score_latency_ns"
#define KF_METRIC_WORKER_HEARTBEATS "keyforge_worker_heartbeats"

enum kf_contract_metric {
	KF_CONTRACT_JOBS_ACTIVE,
	KF_CONTRACT_JOBS_TOTAL,
	KF_CONTRACT_SCORE_LATENCY,
	KF_CONTRACT_WORKER_HEARTBEATS,
	KF_CONTRACT_COUNT
};

/* The values of keyforge_jobs_total's "status" label, in this order. */
enum kf_job_outcome {
	KF_JOB_OUTCOME_SUCCESS,
	KF_JOB_OUTCOME_FAILED,
	KF_JOB_OUTCOME_KILLED,
	KF_JOB_OUTCOME_RETRIED,
	KF_JOB_OUTCOME_COUNT
};

/* Indexed by enum kf_contract_metric: name, type, labels, help, buckets. */
extern const struct kf_metric_desc kf_contract_descs[KF_CONTRACT_COUNT];
/* Indexed by enum kf_job_outcome: "success", "failed", "killed", "retried". */
extern const char *const kf_job_outcome_names[KF_JOB_OUTCOME_COUNT];
/* keyforge_score_latency_ns upper bounds, in ns: 25 ns … 10 ms. */
extern const double kf_score_latency_buckets[];
extern const size_t kf_score_latency_n_buckets;

/* Handles to the contract metrics of one registry. */
struct kf_contract_metrics {
	struct kf_gauge *jobs_active;
	struct kf_counter *jobs_total[KF_JOB_OUTCOME_COUNT];
	struct kf_histogram *score_latency_ns;
	struct kf_counter *worker_heartbeats;
};

/*
 * Registers the four families in reg (idempotent: a second call returns the
 * same handles) and creates every status of keyforge_jobs_total at 0.
 * Errors: what kf_metrics_register returns (KF_EEXIST if reg already has a
 * different metric of one of these names).
 */
enum kf_err kf_contract_register(struct kf_metrics *reg, struct kf_contract_metrics *out);

/*
 * Adds the four families to a hand-built snapshot (the gateway, before it
 * fills in what it aggregated), so that they carry the one help text. With
 * with_zero_series, each gets its series at 0 as a registry would expose
 * them: the unlabelled three, and jobs_total for each status (find them with
 * kf_msnap_family_find_series). Errors: what kf_msnap_add_family and
 * kf_msnap_family_add_series return.
 */
enum kf_err kf_contract_add_to_snapshot(struct kf_msnap *snap, bool with_zero_series);

#endif
