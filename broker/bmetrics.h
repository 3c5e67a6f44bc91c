/*
 * broker/bmetrics.h — the broker's own metrics (docs/operations.md
 * "Broker metrics"): the contract metrics it owns, per-state job and
 * per-liveness worker gauges, bus figures and database figures. They are
 * published as metric updates on `metric.broker` (broker/metrics_pub.h).
 *
 * Handles are created once at start; updates are lock-free and may come
 * from any thread (the relay thread counts ingest, the owner the rest).
 * kf_bmetrics_count() looks a labelled child up (a registry mutex): use it
 * for rare events (errors), keep handles for frequent ones.
 */
#ifndef KF_BROKER_BMETRICS_H
#define KF_BROKER_BMETRICS_H

#include "telemetry/contract.h"
#include "telemetry/metrics.h"
#include "telemetry/metrics_snap.h"
#include "proto/telemetry_msgs.h"

enum kf_bm_drop {
	KF_BM_DROP_RATE_LIMIT = 0,  /* a source exceeded its ingest rate */
	KF_BM_DROP_OVERSIZED,       /* ingest message above the telemetry limit */
	KF_BM_DROP_QUEUE_FULL,      /* heartbeat queue to the owner full */
	KF_BM_DROP_SOURCE,          /* reserved or mismatched source id */
	KF_BM_DROP_LOG_QUEUE,       /* broker's own log event not relayed */
	KF_BM_DROP_ID_CONFLICT,     /* heartbeat or metric update of a second process
	                             * with a live worker's id */
	KF_BM_DROP_COUNT
};

struct kf_bmetrics {
	struct kf_metrics *reg;
	struct kf_contract_metrics contract;
	struct kf_counter *rx_ingest, *rx_rpc;       /* messages received, by socket */
	/* messages sent, by socket */
	struct kf_counter *tx_events, *tx_commands, *tx_monitor, *tx_rpc;
	struct kf_counter *dropped[KF_BM_DROP_COUNT];
	struct kf_metric_family *decode_errors;      /* {socket, kind} */
	struct kf_metric_family *seq_gaps;           /* {source} */
	struct kf_metric_family *rate_limited;       /* {source} */
	struct kf_metric_family *rpc_requests;       /* {method, status} */
	struct kf_gauge *jobs_by_state[KF_JOB_STATE_COUNT];
	struct kf_gauge *workers[KF_WORKER_LIVENESS_COUNT];
	struct kf_gauge *parked_leases;
	struct kf_gauge *rpc_contexts, *rpc_in_flight; /* the rpc server's pool */
	struct kf_counter *rpc_exhausted;
	struct kf_gauge *db_up, *db_queue_depth, *db_batch_size, *db_largest_batch;
	struct kf_counter *db_outages, *db_requests, *db_batches, *db_unavailable;
	/* Observed by the database thread, once per transaction. */
	struct kf_histogram *db_txn_seconds, *db_wait_seconds;
	struct kf_counter *replies_replayed;
	struct kf_counter *leases_refused_replaced, *leases_refused_silent; /* the lease fences */
};

/* Creates the registry and every family. KF_OK or what registration returns. */
enum kf_err kf_bmetrics_init(struct kf_bmetrics *m);
void kf_bmetrics_release(struct kf_bmetrics *m);

/* Increments the child of fam with these label values (created on first
 * use; silently skipped past the family's series cap). Any thread. */
void kf_bmetrics_count(struct kf_metric_family *fam, const char *const *labels);

/* A short lower-case name for an error kind: KF_ETOOBIG -> "toobig".
 * Points into a thread-local buffer valid until the next call. */
const char *kf_bmetrics_err_kind(enum kf_err err);

#endif
