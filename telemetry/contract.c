/*
 * contract.c — the one definition of the DESIGN.md §5 metrics.
 */
#include "telemetry/contract.h"

/*
 * From tens of nanoseconds (a swap delta on a small corpus) to milliseconds
 * (a full recompute over a large corpus), in 1-2.5-5 steps; a score slower
 * than 10 ms lands in +Inf.
 */
const double kf_score_latency_buckets[] = {
	25, 50, 100, 250, 500,
	1e3, 2.5e3, 5e3, 1e4, 2.5e4, 5e4,
	1e5, 2.5e5, 5e5, 1e6, 1e7,
};
const size_t kf_score_latency_n_buckets =
	sizeof kf_score_latency_buckets / sizeof kf_score_latency_buckets[0];

const char *const kf_job_outcome_names[KF_JOB_OUTCOME_COUNT] = {
	[KF_JOB_OUTCOME_SUCCESS] = "success",
	[KF_JOB_OUTCOME_FAILED] = "failed",
	[KF_JOB_OUTCOME_KILLED] = "killed",
	[KF_JOB_OUTCOME_RETRIED] = "retried",
};

static const char *const status_label[] = { "status" };

const struct kf_metric_desc kf_contract_descs[KF_CONTRACT_COUNT] = {
	[KF_CONTRACT_JOBS_ACTIVE] = {
		.name = KF_METRIC_JOBS_ACTIVE,
		.type = KF_METRIC_GAUGE,
		.help = "Jobs currently running.",
	},
	[KF_CONTRACT_JOBS_TOTAL] = {
		.name = KF_METRIC_JOBS_TOTAL,
		.type = KF_METRIC_COUNTER,
		.help = "Job attempts that reached an outcome, by status "
			"(success, failed, killed, retried).",
		.label_names = status_label,
		.n_labels = 1,
	},
	[KF_CONTRACT_SCORE_LATENCY] = {
		.name = KF_METRIC_SCORE_LATENCY,
		.type = KF_METRIC_HISTOGRAM,
		.help = "Time to calculate a single layout score, in nanoseconds.",
		.buckets = kf_score_latency_buckets,
		.n_buckets = sizeof kf_score_latency_buckets / sizeof kf_score_latency_buckets[0],
	},
	[KF_CONTRACT_WORKER_HEARTBEATS] = {
		.name = KF_METRIC_WORKER_HEARTBEATS,
		.type = KF_METRIC_COUNTER,
		.help = "Heartbeats received from workers, the liveness signal of "
			"connected workers.",
	},
};

enum kf_err kf_contract_register(struct kf_metrics *reg, struct kf_contract_metrics *out)
{
	struct kf_metric_family *fam[KF_CONTRACT_COUNT];
	for (size_t i = 0; i < KF_CONTRACT_COUNT; i++) {
		enum kf_err err = kf_metrics_register(reg, &kf_contract_descs[i], &fam[i]);
		if (err)
			return err;
	}
	enum kf_err err = kf_metric_family_gauge(fam[KF_CONTRACT_JOBS_ACTIVE], NULL,
						 &out->jobs_active);
	for (size_t i = 0; !err && i < KF_JOB_OUTCOME_COUNT; i++)
		err = kf_metric_family_counter(fam[KF_CONTRACT_JOBS_TOTAL],
					       &kf_job_outcome_names[i], &out->jobs_total[i]);
	if (!err)
		err = kf_metric_family_histogram(fam[KF_CONTRACT_SCORE_LATENCY], NULL,
						 &out->score_latency_ns);
	if (!err)
		err = kf_metric_family_counter(fam[KF_CONTRACT_WORKER_HEARTBEATS], NULL,
					       &out->worker_heartbeats);
	return err;
}

enum kf_err kf_contract_add_to_snapshot(struct kf_msnap *snap, bool with_zero_series)
{
	for (size_t i = 0; i < KF_CONTRACT_COUNT; i++) {
		struct kf_msnap_family *fam;
		enum kf_err err = kf_msnap_add_family(snap, &kf_contract_descs[i], &fam);
		if (err)
			return err;
		if (!with_zero_series)
			continue;
		if (i != KF_CONTRACT_JOBS_TOTAL) {
			if ((err = kf_msnap_family_add_series(fam, NULL, NULL)))
				return err;
			continue;
		}
		for (size_t s = 0; s < KF_JOB_OUTCOME_COUNT; s++)
			if ((err = kf_msnap_family_add_series(fam, &kf_job_outcome_names[s], NULL)))
				return err;
	}
	return KF_OK;
}
