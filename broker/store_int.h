/*
 * broker/store_int.h — shared between store.c (queue, thread, transactions)
 * and store_ops.c (the SQL of each request). Component-internal.
 */
#ifndef KF_BROKER_STORE_INT_H
#define KF_BROKER_STORE_INT_H

#include <libpq-fe.h>

#include "broker/store.h"
#include "common/strbuf.h"

/* What the database thread owns: used by store_ops.c only on that thread. */
struct kf__store_db {
	PGconn *conn;
	uint64_t deadline_ns;      /* monotonic: the answer being read is due (0 = none) */
	bool timed_out;            /* it did not come: the socket was shut down */
	uint64_t rng;              /* splitmix64 state: lease tokens, jitter */
	uint32_t backoff_base_ms;
	uint32_t backoff_max_ms;
};

#define KF__STORE_MAX_STR 3

/* One request and, once run, its result. Owned by the queue it is in. */
struct kf__store_req {
	struct kf__store_req *next;
	enum kf_store_op op;
	kf_store_cb *cb;
	void *arg;
	uint64_t queued_ns;        /* when it joined the queue (monotonic) */

	/* Arguments. The const char * inside point at own[]. */
	union {
		struct kf_store_submit_args submit;
		struct kf_store_complete_args complete;
		struct kf_store_list_args list;
		struct kf_store_worker_args worker;
		struct {
			int64_t job_id;
			uint64_t lease_token;
			double progress;
			double best_cost;
		} progress;
		struct {
			int64_t job_id;
			const char *text;  /* kill, job_lost: reason */
			uint64_t lease_token;  /* job_lost */
		} job;
		struct {
			const char *worker_id;
			const char *reason;  /* requeue */
			uint64_t incarnation;  /* claim, requeue_others */
		} worker_ref;
		int64_t ms;                /* expire: grace; orphans: staleness; running: age */
		const char *worker_ids;    /* workers_seen: a text[] literal */
	} a;
	char *own[KF__STORE_MAX_STR];

	/* Result: everything the callback sees lives here until it returns. */
	struct kf_store_result res;
	struct kf_strbuf msg;      /* res.message */
	PGresult *pg[2];           /* rows that res points into */
	int st[2];                 /* the statements sent (store_ops.c's enum) */
	int n_sent;                /* how many */
	struct kf_store_job job;   /* claim, get */
	void *array;               /* jobs, attempts or changes */

	/* A status change travelling through the completion queue instead. */
	bool is_status;
	struct kf_store_status_change status;
};

/* kf_strbuf_reset() of a never-grown strbuf writes its NUL into the
 * shared kf_strbuf_empty[]: harmless, but a data race (ThreadSanitizer) when
 * two threads do it. Reset only what was grown. */
static inline void kf__msg_clear(struct kf_strbuf *sb)
{
	if (sb->alloc)
		kf_strbuf_reset(sb);
}

/* Prepares every statement on db->conn, each answer awaited until
 * db->deadline_ns. KF_OK, or the error with msg. */
enum kf_err kf__store_prepare(struct kf__store_db *db, struct kf_strbuf *msg);

/*
 * Pipeline halves (the connection is in pipeline mode, inside the batch's
 * transaction). kf__store_send() forgets any earlier result of r, queues r's
 * statements and adds their parameter bytes to *bytes; it returns how many
 * statements it queued (1 or 2, pass it to kf__store_recv), or -1 when the
 * connection failed (cause in r->msg).
 * kf__store_recv() reads those results and fills r->res (r->res.err holds
 * the request's own outcome: KF_OK, KF_ENOENT, KF_ESTALE, KF_ESTATE, ...).
 * It returns KF_OK; KF_ECANCELED when an earlier statement of the pipeline
 * failed (this one was skipped); KF_EBUSY when r must run again in a
 * transaction of its own; or the database error that aborted the
 * transaction (kf__pq_error() codes), with the cause in r->msg.
 */
int kf__store_send(struct kf__store_db *db, struct kf__store_req *r, size_t *bytes);
enum kf_err kf__store_recv(struct kf__store_db *db, struct kf__store_req *r, int n);

/* Forgets a previous run's result (before re-running r). */
void kf__store_req_reset(struct kf__store_req *r);

uint64_t kf__store_rand(struct kf__store_db *db);

#endif
