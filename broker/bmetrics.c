/* bmetrics.c — descriptors of the broker's metrics, in one table. */
#include "broker/bmetrics.h"

#include <ctype.h>
#include <string.h>

static const char *const l_socket[] = { "socket" };
static const char *const l_socket_kind[] = { "socket", "kind" };
static const char *const l_reason[] = { "reason" };
static const char *const l_source[] = { "source" };
static const char *const l_method_status[] = { "method", "status" };
static const char *const l_state[] = { "state" };
static const char *const l_liveness[] = { "liveness" };

/* Seconds: a transaction of one request takes 0.2-1 ms here, a commit's
 * flush 0.1 ms, a new WAL segment file 10-15 ms; the broker's --db-timeout
 * (30 s by default) ends the longest. */
static const double db_seconds_buckets[] = { 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 };

#define C KF_METRIC_COUNTER
#define G KF_METRIC_GAUGE
enum {
	F_RX, F_TX, F_DROPPED, F_DECODE, F_GAPS, F_RATE, F_RPC, F_JOBS, F_WORKERS,
	F_PARKED, F_RPC_CONTEXTS, F_RPC_IN_FLIGHT, F_RPC_EXHAUSTED, F_DB_UP, F_DB_QUEUE, F_DB_BATCH, F_DB_LARGEST, F_DB_OUTAGES,
	F_DB_REQUESTS, F_DB_BATCHES, F_DB_UNAVAIL, F_DB_TXN_SECONDS, F_DB_WAIT_SECONDS, F_REPLAYED,
	F_LEASE_REFUSED, F_COUNT
};

/* Designated initializers: clang's -Wmissing-field-initializers wants them. */
#define DL(n, h, t, l, max) \
	{ .name = (n), .help = (h), .type = (t), .label_names = (l), \
	  .n_labels = sizeof(l) / sizeof((l)[0]), .max_series = (max) }
#define D0(n, h, t) { .name = (n), .help = (h), .type = (t) }
#define DH(n, h, b) { .name = (n), .help = (h), .type = KF_METRIC_HISTOGRAM, \
	.buckets = (b), .n_buckets = sizeof(b) / sizeof((b)[0]) }

static const struct kf_metric_desc descs[F_COUNT] = {
	[F_RX] = DL("keyforge_bus_messages_received_total",
		"Messages the broker received, by socket (ingest, rpc).", C, l_socket, 0),
	[F_TX] = DL("keyforge_bus_messages_sent_total",
		"Messages the broker sent, by socket (events, commands, monitor, rpc).", C, l_socket, 0),
	[F_DROPPED] = DL("keyforge_bus_dropped_total",
		"Messages the broker dropped, by reason.", C, l_reason, 0),
	[F_DECODE] = DL("keyforge_bus_decode_errors_total",
		"Messages refused because they could not be decoded, by socket and kind.",
		C, l_socket_kind, 0),
	[F_GAPS] = DL("keyforge_bus_sequence_gaps_total",
		"Telemetry messages lost between a source and the broker (sequence gaps).",
		C, l_source, 1000),
	[F_RATE] = DL("keyforge_bus_rate_limited_total",
		"Ingest messages dropped by the per-source rate limit.", C, l_source, 1000),
	[F_RPC] = DL("keyforge_rpc_requests_total",
		"RPC requests answered, by method and status.", C, l_method_status, 0),
	[F_JOBS] = DL("keyforge_jobs_by_state",
		"Jobs in the database per state (refreshed every second).", G, l_state, 0),
	[F_WORKERS] = DL("keyforge_workers",
		"Workers known to the broker per liveness.", G, l_liveness, 0),
	[F_PARKED] = D0("keyforge_rpc_parked_leases",
		"Lease requests waiting (long-poll) for a job.", G),
	[F_RPC_CONTEXTS] = D0("keyforge_rpc_contexts",
		"RPC contexts open: the pool grows with the requests in flight, up to "
		"--rpc-contexts.", G),
	[F_RPC_IN_FLIGHT] = D0("keyforge_rpc_requests_in_flight",
		"RPC requests received and not yet answered, parked leases included.", G),
	[F_RPC_EXHAUSTED] = D0("keyforge_rpc_contexts_exhausted_total",
		"Times the broker took a request and found every context in use, unable to "
		"open more (the --rpc-contexts bound, or out of memory): further requests "
		"wait unread in their connections.", C),
	[F_DB_UP] = D0("keyforge_db_up", "1 while the database is connected and current.", G),
	[F_DB_QUEUE] = D0("keyforge_db_queue_depth", "Store requests waiting for the database.", G),
	[F_DB_BATCH] = D0("keyforge_db_commit_batch_size",
		"Requests in the last committed transaction (group commit).", G),
	[F_DB_LARGEST] = D0("keyforge_db_commit_batch_size_max",
		"Largest group-commit batch since the broker started.", G),
	[F_DB_OUTAGES] = D0("keyforge_db_outages_total",
		"Times the database connection was lost.", C),
	[F_DB_REQUESTS] = D0("keyforge_db_requests_total", "Store requests completed.", C),
	[F_DB_BATCHES] = D0("keyforge_db_batches_total", "Transactions run by the store.", C),
	[F_DB_UNAVAIL] = D0("keyforge_db_unavailable_total",
		"Store requests refused because the database was unavailable.", C),
	[F_DB_TXN_SECONDS] = DH("keyforge_db_transaction_seconds",
		"Time of one store transaction, from its BEGIN to the last answer (the commit's "
		"flush to disk included).", db_seconds_buckets),
	[F_DB_WAIT_SECONDS] = DH("keyforge_db_queue_wait_seconds",
		"How long the oldest request of a store transaction waited in the queue before "
		"the transaction began.", db_seconds_buckets),
	[F_REPLAYED] = D0("keyforge_rpc_replayed_total",
		"Resent requests answered from the recent-replies cache.", C),
	[F_LEASE_REFUSED] = DL("keyforge_rpc_leases_refused_total",
		"Leases (and claims of complete with lease_next) refused by a fence, by reason: "
		"replaced (another process holds the worker id), silent (no heartbeat of the "
		"worker reaches the broker).", C, l_reason, 0),
};
#undef DL
#undef D0
#undef DH
#undef C
#undef G

static const char *const drop_reasons[KF_BM_DROP_COUNT] = {
	[KF_BM_DROP_RATE_LIMIT] = "rate_limit", [KF_BM_DROP_OVERSIZED] = "oversized",
	[KF_BM_DROP_QUEUE_FULL] = "queue_full", [KF_BM_DROP_SOURCE] = "source",
	[KF_BM_DROP_LOG_QUEUE] = "log_queue", [KF_BM_DROP_ID_CONFLICT] = "id_conflict",
};

static enum kf_err counter(struct kf_metric_family *f, const char *label, struct kf_counter **out)
{
	return kf_metric_family_counter(f, label ? (const char *const[]){ label } : NULL, out);
}

static enum kf_err gauge(struct kf_metric_family *f, const char *label, struct kf_gauge **out)
{
	return kf_metric_family_gauge(f, label ? (const char *const[]){ label } : NULL, out);
}

static enum kf_err children(struct kf_bmetrics *m, struct kf_metric_family **f)
{
	enum kf_err err = KF_OK;

	err = err ? err : counter(f[F_RX], "ingest", &m->rx_ingest);
	err = err ? err : counter(f[F_RX], "rpc", &m->rx_rpc);
	err = err ? err : counter(f[F_TX], "events", &m->tx_events);
	err = err ? err : counter(f[F_TX], "commands", &m->tx_commands);
	err = err ? err : counter(f[F_TX], "monitor", &m->tx_monitor);
	err = err ? err : counter(f[F_TX], "rpc", &m->tx_rpc);
	for (int i = 0; !err && i < KF_BM_DROP_COUNT; i++)
		err = counter(f[F_DROPPED], drop_reasons[i], &m->dropped[i]);
	for (int i = 0; !err && i < KF_JOB_STATE_COUNT; i++)
		err = gauge(f[F_JOBS], kf_job_state_name(i), &m->jobs_by_state[i]);
	for (int i = 0; !err && i < KF_WORKER_LIVENESS_COUNT; i++)
		err = gauge(f[F_WORKERS], kf_worker_liveness_name(i), &m->workers[i]);
	err = err ? err : gauge(f[F_PARKED], NULL, &m->parked_leases);
	err = err ? err : gauge(f[F_RPC_CONTEXTS], NULL, &m->rpc_contexts);
	err = err ? err : gauge(f[F_RPC_IN_FLIGHT], NULL, &m->rpc_in_flight);
	err = err ? err : counter(f[F_RPC_EXHAUSTED], NULL, &m->rpc_exhausted);
	err = err ? err : gauge(f[F_DB_UP], NULL, &m->db_up);
	err = err ? err : gauge(f[F_DB_QUEUE], NULL, &m->db_queue_depth);
	err = err ? err : gauge(f[F_DB_BATCH], NULL, &m->db_batch_size);
	err = err ? err : gauge(f[F_DB_LARGEST], NULL, &m->db_largest_batch);
	err = err ? err : counter(f[F_DB_OUTAGES], NULL, &m->db_outages);
	err = err ? err : counter(f[F_DB_REQUESTS], NULL, &m->db_requests);
	err = err ? err : counter(f[F_DB_BATCHES], NULL, &m->db_batches);
	err = err ? err : counter(f[F_DB_UNAVAIL], NULL, &m->db_unavailable);
	err = err ? err : kf_metric_family_histogram(f[F_DB_TXN_SECONDS], NULL, &m->db_txn_seconds);
	err = err ? err : kf_metric_family_histogram(f[F_DB_WAIT_SECONDS], NULL, &m->db_wait_seconds);
	err = err ? err : counter(f[F_REPLAYED], NULL, &m->replies_replayed);
	err = err ? err : counter(f[F_LEASE_REFUSED], "replaced", &m->leases_refused_replaced);
	err = err ? err : counter(f[F_LEASE_REFUSED], "silent", &m->leases_refused_silent);
	return err;
}

enum kf_err kf_bmetrics_init(struct kf_bmetrics *m)
{
	struct kf_metric_family *f[F_COUNT];
	enum kf_err err;

	memset(m, 0, sizeof(*m));
	if ((err = kf_metrics_new(&m->reg)))
		return err;
	if ((err = kf_contract_register(m->reg, &m->contract)))
		return err;
	for (int i = 0; i < F_COUNT; i++)
		if ((err = kf_metrics_register(m->reg, &descs[i], &f[i])))
			return err;
	m->decode_errors = f[F_DECODE];
	m->seq_gaps = f[F_GAPS];
	m->rate_limited = f[F_RATE];
	m->rpc_requests = f[F_RPC];
	return children(m, f);
}

void kf_bmetrics_release(struct kf_bmetrics *m)
{
	kf_metrics_free(m->reg);
	memset(m, 0, sizeof(*m));
}

void kf_bmetrics_count(struct kf_metric_family *fam, const char *const *labels)
{
	struct kf_counter *c;

	if (fam && kf_metric_family_counter(fam, labels, &c) == KF_OK)
		kf_counter_inc(c);
}

const char *kf_bmetrics_err_kind(enum kf_err err)
{
	/* Per thread: valid until this thread's next call. */
	static _Thread_local char buf[40];
	const char *name = kf_errname(err);
	size_t i = 0;

	if (!strncmp(name, "KF_E", 4))
		name += 4;
	for (; name[i] && i < sizeof(buf) - 1; i++)
		buf[i] = (char)tolower((unsigned char)name[i]);
	buf[i] = '\0';
	return buf;
}
