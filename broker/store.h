/*
 * broker/store.h — the job store: jobs and workers in PostgreSQL, behind a
 * request queue served by one database thread with GROUP COMMIT.
 *
 * The rules, first:
 *
 *  - Nothing here blocks on the database. kf_store_<op>() copies its
 *    arguments into a request, queues it and returns at once. The database
 *    thread takes EVERY queued request (up to opts.max_batch), runs them in
 *    ONE transaction, commits once, and only then completes them all: every
 *    state change is durable before its completion fires. While one batch
 *    commits (an fsync, ~1.3 ms here), the next batch gathers, so throughput
 *    grows with load instead of being capped by the fsync rate.
 *
 *  - Completions are delivered on YOUR thread: the database thread appends
 *    them to a completion queue and calls opts.notify (which must only wake
 *    your thread: no store call, no blocking); your thread then calls
 *    kf_store_drain(), which runs each request's callback in completion
 *    order. The broker's owner thread is the intended drainer; only one
 *    thread may drain at a time. Callbacks may queue new requests.
 *
 *  - libuv's rule: if kf_store_<op>() returns KF_OK its callback runs exactly
 *    once (from kf_store_drain(), or from kf_store_free()); if it returns an
 *    error the callback never runs.
 *
 *  - The kf_store_result handed to a callback, and every pointer in it, is
 *    valid only during the callback: copy what you keep (kf_store_job_dup()).
 *
 *  - Request functions, kf_store_status() and kf_store_wait_*() may be
 *    called from any thread. kf_store_drain() from one thread at a time.
 *
 *  - Database outages: when the connection breaks (a failed command, or the
 *    socket closing while idle) the requests of the batch in flight and all
 *    queued ones complete with KF_EUNAVAIL (never silently dropped); the
 *    thread reconnects in the background with exponential back-off plus
 *    jitter (opts.reconnect_min_ms .. reconnect_max_ms), and requests queued
 *    meanwhile fail fast with KF_EUNAVAIL. Every change of connection state
 *    is delivered ONCE, through kf_store_drain(), to opts.on_status, in order
 *    with the completions (the broker logs ERROR "database connection
 *    failed" there). KF_EUNAVAIL on a commit is ambiguous (the commit may or
 *    may not have happened): the requests are idempotent when resent
 *    (submit by submit_key, complete by lease token), so resend.
 *
 *  - On each (re)connection the store applies the migrations when
 *    opts.migrate is set (the broker), or checks that the schema is current
 *    (others); a mismatch keeps the store down with KF_EMIGRATION in its
 *    status (the message names the file) and requests fail with KF_EUNAVAIL.
 *
 * The job state machine (docs/database.md has the diagram):
 *   pending -> running -> succeeded | failed | killed
 *   running -> retrying (failure reported by the job; backoff) -> pending
 *   running -> pending (worker dead, budget left) | failed (budget exhausted)
 *   pending|retrying -> killed (kill);   running + kill -> cancel requested,
 *   killed when the worker reports (any outcome) or dies
 *   failed|killed -> pending (operator retry, fresh attempt budget)
 *   running -> failed (deadline exceeded, via kf_store_expire)
 * `attempt` counts claims: it is incremented when a job starts running.
 */
#ifndef KF_BROKER_STORE_H
#define KF_BROKER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "proto/telemetry_msgs.h" /* enum kf_job_state, enum kf_worker_liveness */

struct kf_store;

/* ---- results ------------------------------------------------------------ */

enum kf_store_op {
	KF_STORE_SUBMIT = 0,
	KF_STORE_CLAIM,
	KF_STORE_PROGRESS,
	KF_STORE_COMPLETE,
	KF_STORE_KILL,
	KF_STORE_RETRY,
	KF_STORE_GET,
	KF_STORE_LIST,
	KF_STORE_COUNTS,
	KF_STORE_REQUEUE_WORKER,
	KF_STORE_PROMOTE,
	KF_STORE_EXPIRE,
	KF_STORE_WORKER_UPSERT,
	KF_STORE_WORKERS_SEEN,
	KF_STORE_ORPHANS,
	KF_STORE_REQUEUE_OTHERS,
	KF_STORE_RUNNING,
	KF_STORE_JOB_LOST,
	KF_STORE_OP_COUNT
};

/* "submit", "claim", ...; never NULL. */
const char *kf_store_op_name(enum kf_store_op op);

/* A job as stored. Timestamps: ns since the Unix epoch (microsecond
 * resolution), 0 = not set. Doubles: NaN = not set. */
struct kf_store_job {
	int64_t id;
	enum kf_job_state state;
	int32_t priority;          /* higher runs first */
	int32_t attempt;           /* claims so far, the running one included */
	int32_t max_attempts;
	bool cancel_requested;     /* running job asked to stop (kill) */
	const char *worker_id;     /* current or last worker; NULL = never claimed */
	uint64_t lease_token;      /* 0 = none */
	int64_t deadline_ms;       /* run-time limit per attempt, 0 = none */
	double progress;           /* 0..1, last progress report */
	double best_cost;          /* NaN = none reported */
	int64_t created_ns;
	int64_t started_ns;        /* start of the current/last attempt */
	int64_t finished_ns;       /* set in succeeded, failed, killed */
	int64_t deadline_ns;       /* running: started + deadline_ms */
	int64_t next_attempt_ns;   /* retrying: end of the backoff */
	const char *submit_key;    /* NULL = submitted without one */
	const char *params;        /* JSON text (jsonb-normalised); NULL in a list without payload */
	const char *result;        /* JSON text or NULL; NULL in a list without payload */
	const char *error;         /* last error message or NULL */
	const char *corpus;        /* params->>'corpus', or NULL */
	const char *layout;        /* result->>'layout', or NULL */
};

/* One ended attempt (the error history). */
struct kf_store_attempt {
	int32_t attempt;
	const char *worker_id;     /* may be NULL */
	const char *outcome;       /* succeeded failed killed released lost expired */
	const char *message;       /* may be NULL */
	int64_t started_ns;
	int64_t finished_ns;
};

/* A job moved by a sweep (requeue, promote, expire). */
struct kf_store_change {
	int64_t job_id;
	enum kf_job_state state;   /* its new state */
	int32_t attempt;           /* the attempt that ended (promote: the last one) */
	const char *worker_id;     /* the worker that held it, may be NULL */
	uint64_t lease_token;      /* the token that is no longer valid, 0 = none */
};

struct kf_store_result {
	enum kf_store_op op;
	/*
	 * KF_OK, or:
	 *   KF_EUNAVAIL   database unavailable (or the commit's fate unknown)
	 *   KF_ECANCELED  the store stopped before running the request
	 *   KF_ENOENT     no such job (progress, complete, kill, retry, get)
	 *   KF_ESTALE     lease token not current: the worker must drop its
	 *                 result / stop (progress, complete)
	 *   KF_ESTATE     kill of a succeeded/failed job; retry of a job that is
	 *                 not failed or killed
	 *   KF_EINVAL     the database refused the data (e.g. invalid JSON)
	 *   KF_EDB        other database error (message has the SQLSTATE)
	 */
	enum kf_err err;
	const char *message;       /* why, when err != KF_OK (may be NULL) */
	union {
		struct {
			int64_t job_id;
			bool created;      /* false: an earlier submit had this submit_key */
			bool same_params;  /* created, or the earlier job has these params */
		} submit;
		struct {
			const struct kf_store_job *job; /* NULL = no pending job */
		} claim;
		struct {
			bool cancel;       /* stop and complete as killed */
		} progress;
		struct {
			enum kf_job_state state; /* the job's state now */
			int32_t attempt;
			bool duplicate;    /* already recorded by an earlier send of it */
			int64_t retry_in_ms; /* state retrying: backoff chosen; else 0 */
		} complete;
		struct {
			enum kf_job_state state; /* killed, or running (cancel requested) */
			/* This kill did something: pending|retrying -> killed, or
			 * the first cancel request of a running job. False when the
			 * job was already killed or its cancel already requested
			 * (count and log only on change). */
			bool changed;
			bool cancel_requested;   /* running: send cmd.<worker> cancel
						  * (again, harmless, when !changed) */
			const char *worker_id;   /* NULL unless cancel_requested */
			uint64_t lease_token;
		} kill;
		struct {
			enum kf_job_state state; /* pending */
		} retry;
		struct {
			const struct kf_store_job *job;
			const struct kf_store_attempt *attempts; /* oldest first */
			size_t n_attempts;
		} get;
		struct {
			const struct kf_store_job *jobs;
			size_t n_jobs;
			int64_t next_cursor; /* id of the last job returned (0 = none): pass as cursor */
			int64_t total;       /* jobs matching the state filter; -1 unless with_total */
		} list;
		struct {
			int64_t n[KF_JOB_STATE_COUNT]; /* index: enum kf_job_state */
		} counts;
		struct {
			const struct kf_store_change *changes; /* by job id */
			size_t n_changes;
			int64_t next_due_ms; /* promote: ms until the next retrying job is due,
					      * -1 = none retrying; otherwise -1 */
		} sweep;           /* requeue_worker, promote, expire */
		struct {
			const char *const *worker_ids; /* distinct, at most 64 */
			size_t n;
		} orphans;
		struct {
			const struct kf_store_running_job *jobs; /* by id */
			size_t n;
		} running;
	};
};

typedef void kf_store_cb(void *arg, const struct kf_store_result *res);

/* ---- connection status ------------------------------------------------- */

enum kf_store_conn {
	KF_STORE_CONNECTING = 0,   /* first attempt in progress */
	KF_STORE_UP = 1,           /* connected, schema current, serving */
	KF_STORE_DOWN = 2,         /* unavailable; reconnecting in the background */
	KF_STORE_STOPPED = 3,      /* kf_store_stop() was called */
};

/* "connecting", "up", "down", "stopped". */
const char *kf_store_conn_name(enum kf_store_conn c);

/* Delivered to opts.on_status by kf_store_drain() on every change of
 * (conn, err). Pointers valid during the callback only. */
struct kf_store_status_change {
	enum kf_store_conn conn;
	enum kf_err err;           /* KF_OK when up; KF_EUNAVAIL, KF_EMIGRATION, ... */
	const char *message;       /* libpq's or the migration's message; "" when up */
	int schema_applied;        /* applied migration version (when up) */
};

struct kf_store_status {
	enum kf_store_conn conn;
	enum kf_err err;
	char message[256];
	int schema_newest;         /* newest migration this binary carries */
	int schema_applied;        /* version found at the last connection, -1 unknown */
	uint64_t requests;         /* requests completed (any result) */
	uint64_t batches;          /* transactions committed (or attempted) */
	uint64_t unavailable;      /* requests completed with KF_EUNAVAIL */
	uint64_t connects;         /* successful connections, the first included */
	uint64_t queued;           /* requests waiting now */
	uint32_t last_batch;       /* size of the last batch */
	uint32_t largest_batch;
};

/* One transaction of the database thread, for opts.on_txn. */
struct kf_store_txn {
	uint64_t ns;                      /* BEGIN sent to the last answer read */
	uint64_t wait_ns;                 /* how long its oldest request had been queued */
	uint32_t requests;
	uint32_t ops[KF_STORE_OP_COUNT];  /* requests of each kind */
	/* The whole batch was committed at once. False: it failed and its
	 * requests ran again one by one (ns includes those), or the connection
	 * was lost. */
	bool committed;
};

/* ---- lifecycle ------------------------------------------------------------ */

struct kf_store_opts {
	const char *conninfo;        /* libpq connection string (KEYFORGE_DB); copied */
	bool migrate;                /* apply migrations on connect (the broker) */
	uint32_t max_batch;          /* requests per transaction (1024); 1 = no group commit */
	uint32_t reconnect_min_ms;   /* first reconnect delay */
	uint32_t reconnect_max_ms;   /* cap of the doubling */
	uint32_t backoff_base_ms;    /* job retry backoff: base * 2^(attempt-1) ... */
	uint32_t backoff_max_ms;     /* ... capped here, times a jitter in [0.5, 1) */
	uint32_t health_ms;          /* idle connection check interval */
	/* A transaction or a check unanswered this long: the connection is
	 * dropped as lost (its requests fail with KF_EUNAVAIL) and made again.
	 * A server that hangs — stopped, its disk stalled, a lock held by
	 * someone else — would otherwise hang the store with it. 0 = wait for
	 * ever. */
	uint32_t answer_timeout_ms;
	int thread_nice;             /* the database thread's nice value; 0 = leave it */
	uint64_t seed;               /* lease tokens and jitter; 0 = from getrandom() */
	/* Database thread: completions are waiting. Must not block or call the
	 * store; wake the draining thread. May be NULL (poll with
	 * kf_store_wait_completions() or drain periodically). */
	void (*notify)(void *arg);
	void *notify_arg;
	/* Draining thread, from kf_store_drain(): the connection state changed. */
	void (*on_status)(void *arg, const struct kf_store_status_change *change);
	void *status_arg;
	/* Database thread, after each transaction's requests were handed to
	 * the drainer: how long it took and what it carried (the broker's
	 * keyforge_db_*_seconds histograms and its slow-transaction warning).
	 * Must not block or call the store. May be NULL. */
	void (*on_txn)(void *arg, const struct kf_store_txn *txn);
	void *txn_arg;
};

#define KF_STORE_OPTS_INIT_ANSWER_TIMEOUT 30000
#define KF_STORE_OPTS_INIT { \
	.conninfo = NULL, .migrate = false, .max_batch = 1024, \
	.reconnect_min_ms = 100, .reconnect_max_ms = 5000, \
	.backoff_base_ms = 1000, .backoff_max_ms = 300000, \
	.health_ms = 1000, .answer_timeout_ms = KF_STORE_OPTS_INIT_ANSWER_TIMEOUT, \
	.thread_nice = 0, .seed = 0, \
	.notify = NULL, .notify_arg = NULL, .on_status = NULL, .status_arg = NULL, \
	.on_txn = NULL, .txn_arg = NULL }

/* Starts the database thread, which connects in the background: the
 * result is KF_OK even when the database is away (watch the status).
 * Returns KF_EINVAL (no conninfo, max_batch 0), KF_ENOMEM, KF_EIO (thread
 * or eventfd could not be created). */
enum kf_err kf_store_new(const struct kf_store_opts *opts, struct kf_store **out);

/* Stops the database thread: the batch in flight finishes (commits), queued
 * requests complete with KF_ECANCELED, later requests are refused with
 * KF_ECANCELED. Completions stay queued for kf_store_drain(). Idempotent;
 * not from a store callback or notify. */
void kf_store_stop(struct kf_store *s);

/* kf_store_stop(), then runs the remaining callbacks on the calling thread,
 * then frees. NULL-safe. */
void kf_store_free(struct kf_store *s);

/* Keeps the database thread from taking queued requests until the
 * matching kf_store_release(), which wakes it: requests queued in between
 * go into one batch (one transaction, in queue order) instead of the first
 * starting a transaction of its own while the next is being queued. For
 * a request that should see another's effect at once — the broker's claim
 * for a waiting worker right behind the submit that inserts the job. Nests;
 * keep the window short (nothing blocking inside). Any thread. */
void kf_store_hold(struct kf_store *s);
void kf_store_release(struct kf_store *s);

/* Runs up to `max` completions (0 = all that are queued now) and status
 * changes, in order, on the calling thread. Returns how many ran. */
size_t kf_store_drain(struct kf_store *s, size_t max);

/* Blocks until a completion is queued or timeout_ms passes (-1 = forever).
 * true when something is ready to drain. For tests and simple tools; the
 * broker wakes on opts.notify instead. */
bool kf_store_wait_completions(struct kf_store *s, int timeout_ms);

/* Blocks until the store is up (KF_OK), stopped (KF_ECANCELED), or
 * timeout_ms passes: then the last error (KF_EUNAVAIL, KF_EMIGRATION, ...)
 * or KF_ETIMEDOUT while still connecting. For start-up and tests. */
enum kf_err kf_store_wait_up(struct kf_store *s, int timeout_ms);

/* A snapshot of the connection state and counters. Any thread. */
void kf_store_status(struct kf_store *s, struct kf_store_status *out);

/* Cheap "is it up" for the hot path (an atomic load). Any thread. */
bool kf_store_is_up(struct kf_store *s);

/* ---- requests --------------------------------------------------------------
 * All strings are copied. Each returns KF_OK (callback will run), KF_EINVAL
 * (argument out of range: nothing queued), KF_ENOMEM, or KF_ECANCELED (the
 * store is stopped).
 */

struct kf_store_submit_args {
	const char *params;        /* job parameters, JSON text (required) */
	int32_t priority;          /* higher runs first */
	int32_t max_attempts;      /* >= 1 */
	int64_t deadline_ms;       /* run-time limit per attempt, 0 = none, >= 0 */
	const char *submit_key;    /* idempotency key, e.g. "<client>:<seq>"; NULL = none */
};
/* New job in state pending. A submit_key seen before returns that job's id
 * with created = false, and same_params says whether the earlier job was
 * submitted with these params (the caller decides what a mismatch means). */
enum kf_err kf_store_submit(struct kf_store *s, const struct kf_store_submit_args *args,
			    kf_store_cb *cb, void *arg);

/* Claims the best pending job (priority DESC, id ASC; FOR UPDATE SKIP
 * LOCKED, so several brokers never claim the same job): running, attempt+1,
 * worker_id, the incarnation of the worker's process (0: not known, stored
 * as NULL), a fresh random non-zero lease token, started_at, deadline.
 * res.claim.job is NULL when nothing is pending (long-polling is the
 * broker's: claim again when a submit, retry, requeue or promote lands). */
enum kf_err kf_store_claim(struct kf_store *s, const char *worker_id, uint64_t incarnation,
			   kf_store_cb *cb, void *arg);

/* Progress of a running job, fenced by its lease token: KF_OK with
 * res.progress.cancel, KF_ESTALE (stop and drop), KF_ENOENT. progress (0..1)
 * and best_cost are recorded unless NaN. */
enum kf_err kf_store_progress(struct kf_store *s, int64_t job_id, uint64_t lease_token,
			      double progress, double best_cost, kf_store_cb *cb, void *arg);

enum kf_store_outcome {
	KF_STORE_SUCCEEDED = 0,    /* result holds the job's result */
	KF_STORE_FAILED,           /* error says why; retried after a backoff while
				    * the budget lasts (killed instead when a
				    * cancel was requested) */
	KF_STORE_KILLED,           /* stopped on request; result = best so far */
	KF_STORE_RELEASED,         /* handed back unfinished (worker shutting down):
				    * pending again, not counted against the budget */
	KF_STORE_EXPIRED,          /* stopped at its deadline (migration 006):
				    * failed, never retried (killed when a cancel
				    * was requested); result = best so far */
	KF_STORE_OUTCOME_COUNT
};

struct kf_store_complete_args {
	int64_t job_id;
	uint64_t lease_token;
	enum kf_store_outcome outcome;
	const char *result;        /* JSON text or NULL */
	const char *error;         /* failure message or NULL */
	double best_cost;          /* NaN = not given */
};
/* The end of an attempt, fenced by its lease token. KF_OK (res.complete:
 * new state, duplicate when this report was already recorded, e.g. a resend
 * after a lost reply), KF_ESTALE (drop the result), KF_ENOENT. */
enum kf_err kf_store_complete(struct kf_store *s, const struct kf_store_complete_args *args,
			      kf_store_cb *cb, void *arg);

/* Operator kill. See the state machine; reason (may be NULL) is recorded as
 * the job's error when it is killed at once. */
enum kf_err kf_store_kill(struct kf_store *s, int64_t job_id, const char *reason,
			  kf_store_cb *cb, void *arg);

/* Operator retry of a failed or killed job. */
enum kf_err kf_store_retry(struct kf_store *s, int64_t job_id, kf_store_cb *cb, void *arg);

/* A job with its params, result and attempt history. */
enum kf_err kf_store_get(struct kf_store *s, int64_t job_id, kf_store_cb *cb, void *arg);

struct kf_store_list_args {
	uint32_t states;           /* OR of 1u << enum kf_job_state; 0 = every state */
	int64_t cursor;            /* keyset paging: ids after it (0 = from the start) */
	uint32_t offset;           /* then skip this many */
	uint32_t limit;            /* 1..10000 */
	bool newest_first;         /* ids descending: "after" means smaller ids */
	bool payload;              /* include params and result */
	bool with_total;           /* count all matching jobs too (one more query) */
};
enum kf_err kf_store_list(struct kf_store *s, const struct kf_store_list_args *args,
			  kf_store_cb *cb, void *arg);

/* Number of jobs in each state. */
enum kf_err kf_store_counts(struct kf_store *s, kf_store_cb *cb, void *arg);

/* A worker is dead: its running jobs end with outcome "lost": requeued
 * (pending) while their budget lasts, else failed; killed when a cancel was
 * requested. Their lease tokens become stale. The worker row is marked dead.
 * res.sweep lists the jobs moved (log WARN "job retrying" for the pending ones). */
enum kf_err kf_store_requeue_worker(struct kf_store *s, const char *worker_id,
				    const char *reason, kf_store_cb *cb, void *arg);

/* A worker registered as process `incarnation` (non-zero): its id's running
 * jobs claimed by another process of it end like a dead worker's (outcome
 * "lost", with reason). Jobs claimed with no incarnation recorded are left
 * alone. The worker row is not touched. res.sweep lists the jobs moved. */
enum kf_err kf_store_requeue_others(struct kf_store *s, const char *worker_id,
				    uint64_t incarnation, const char *reason,
				    kf_store_cb *cb, void *arg);

/* Retrying jobs whose backoff elapsed become pending. res.sweep lists them
 * and says when the next one is due (schedule the next promote then). */
enum kf_err kf_store_promote(struct kf_store *s, kf_store_cb *cb, void *arg);

/* Running jobs whose deadline passed more than grace_ms ago end with
 * outcome "expired": failed ("deadline exceeded"), or killed when a cancel
 * was requested. res.sweep lists them (send those workers a cancel). */
enum kf_err kf_store_expire(struct kf_store *s, int64_t grace_ms, kf_store_cb *cb, void *arg);

struct kf_store_worker_args {
	const char *id;            /* required */
	const char *host;          /* may be NULL */
	int32_t pid;
	int64_t incarnation;
	int32_t slots;
	enum kf_worker_liveness liveness;
};
/* Records a worker (hello, liveness changes). Not meant for every heartbeat:
 * the broker keeps last-heartbeat times in memory. */
enum kf_err kf_store_worker_upsert(struct kf_store *s, const struct kf_store_worker_args *args,
				   kf_store_cb *cb, void *arg);

/* Sets workers.last_seen to now for these workers (those this broker hears
 * from), so that other brokers on the database know they live. One
 * statement for all of them; unknown ids are ignored. KF_EINVAL if n == 0. */
enum kf_err kf_store_workers_seen(struct kf_store *s, const char *const *ids, size_t n,
				  kf_store_cb *cb, void *arg);

/* Workers that hold running jobs but that no broker has recorded as seen
 * for stale_ms (or ever): orphans.worker_ids, at most 64. Their jobs are
 * for kf_store_requeue_worker(). */
enum kf_err kf_store_orphans(struct kf_store *s, int64_t stale_ms, kf_store_cb *cb, void *arg);

/* A running job and the process that claimed it (kf_store_running). */
struct kf_store_running_job {
	int64_t job_id;
	const char *worker_id;
	uint64_t incarnation;
	uint64_t lease_token;
};

/* Running jobs claimed at least min_age_ms ago by a known process (the
 * claim recorded its incarnation): running.jobs, at most
 * KF_STORE_RUNNING_MAX, oldest id first. For the check of what the workers
 * hold (docs/operations.md "Lost leases"). */
#define KF_STORE_RUNNING_MAX 4096
enum kf_err kf_store_running(struct kf_store *s, int64_t min_age_ms, kf_store_cb *cb, void *arg);

/* Ends attempt lease_token of job_id with outcome "lost" (reason): requeued
 * while its budget lasts, else failed; killed when a cancel was requested.
 * Only if that attempt is still running: res.sweep lists the job, or
 * nothing when it was not. */
enum kf_err kf_store_job_lost(struct kf_store *s, int64_t job_id, uint64_t lease_token,
			      const char *reason, kf_store_cb *cb, void *arg);

/* ---- helpers ---------------------------------------------------------------- */

/* Deep copy of a job (one allocation; free() it, or kf_store_job_free()).
 * NULL on out of memory. */
struct kf_store_job *kf_store_job_dup(const struct kf_store_job *job);
void kf_store_job_free(struct kf_store_job *job);

/* The database spelling of a state ("pending", ...), NULL when out of range;
 * and back (KF_EINVAL when unknown). Independent of proto/'s functions so
 * the store links without proto. */
const char *kf_store_state_name(enum kf_job_state s);
enum kf_err kf_store_state_parse(const char *name, enum kf_job_state *out);

#endif
