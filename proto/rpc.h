/*
 * proto/rpc.h — jobs (params, result, full record) and the RPC requests and
 * replies carried over REQ/REP on the rpc socket.
 *
 * Conventions as in proto/telemetry_msgs.h (borrowed pointers, optional =
 * NULL, arrays are pointer + n_<name>).
 *
 * Every request body starts with `struct kf_msg_req req` and every reply body
 * with `struct kf_msg_rep rep`, so kf_msg_request()/kf_msg_reply() (msg.h)
 * can reach them whatever the type. A reply whose rep.status != KF_OK carries
 * no meaningful payload (optional parts NULL, numbers 0).
 *
 * Idempotency: REQ resends a request on timeout, so the broker may see the
 * same request twice. (req.id.client, req.id.seq) identifies it: a client
 * picks `client` at random at start and increments `seq` per new request;
 * a resend reuses the id. The broker answers a repeated id with the reply it
 * gave the first time.
 */
#ifndef KF_PROTO_RPC_H
#define KF_PROTO_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "proto/telemetry_msgs.h"

/* ---- request / reply headers ------------------------------------------ */

struct kf_msg_request_id {
	uint64_t client;  /* random per client process (never 0 in practice) */
	uint64_t seq;     /* per-client counter of distinct requests */
};

struct kf_msg_req {
	struct kf_msg_request_id id;
	const char *auth_token;  /* optional: token from the broker's 0600 file */
};

struct kf_msg_rep {
	struct kf_msg_request_id id;  /* copied from the request */
	enum kf_err status;           /* KF_OK or why it failed; any code passes */
	const char *error;            /* optional human-readable cause */
};

/* ---- jobs ---------------------------------------------------------------- */

enum kf_msg_board {
	KF_MSG_BOARD_ANSI = 0,   /* row-staggered */
	KF_MSG_BOARD_ORTHO = 1,  /* ortholinear */
	KF_MSG_BOARD_COUNT
};
const char *kf_msg_board_name(enum kf_msg_board b);   /* "ansi", "ortho" */
enum kf_err kf_msg_board_parse(const char *name, enum kf_msg_board *out);

/* A name and a number: score weights and layout statistics. */
struct kf_msg_named_value {
	const char *name;
	double value;
};

struct kf_msg_job_params {
	const char *corpus;          /* path or name of the corpus */
	enum kf_msg_board board;
	const char *start_layout;    /* optional: 30 characters; NULL = random */
	uint64_t steps;
	uint64_t seed;
	double start_temp;           /* 0 = calibrate */
	uint32_t restarts;
	const char *pinned;          /* optional: characters that stay in place */
	const struct kf_msg_named_value *weights; /* overrides of default weights */
	size_t n_weights;            /* <= KF_MSG_MAX_NAMED */
	uint64_t deadline_ms;        /* 0 = none */
	uint32_t max_attempts;
	int32_t priority;            /* higher runs first */
};

#define KF_MSG_FINGERS 10

struct kf_msg_job_result {
	const char *layout;          /* 30 characters */
	double cost;
	/* sfb, sfs, lsb, scissors, alternate, alt_sfs, inroll, outroll, onehand,
	 * redirect, bad_redirect, home_row, left_hand (percentages). */
	const struct kf_msg_named_value *stats;
	size_t n_stats;              /* <= KF_MSG_MAX_NAMED */
	double finger_usage[KF_MSG_FINGERS]; /* percent per finger, left pinky
						 * first, in the order layout/ defines */
	uint64_t steps;
	double steps_per_sec;
	uint64_t elapsed_ms;
};

struct kf_msg_job_error {
	uint32_t attempt;
	const char *message;
	uint64_t at_ns;
};

/* The full job record (get). Timestamps are ns since the epoch, 0 = not yet. */
struct kf_msg_job {
	uint64_t id;
	enum kf_job_state state;
	uint32_t attempt;
	uint32_t max_attempts;
	int32_t priority;
	const char *worker_id;       /* optional: last/current worker */
	double progress;             /* 0..1 */
	double best_cost;            /* best cost reported so far, 0 = none */
	struct kf_msg_job_params params;
	const struct kf_msg_job_result *result;  /* optional */
	const struct kf_msg_job_error *errors;   /* history, oldest first */
	size_t n_errors;             /* <= KF_MSG_MAX_ERRORS */
	uint64_t created_ns;
	uint64_t started_ns;
	uint64_t finished_ns;
	const char *key;             /* 1.5, optional: the submit's idempotency key */
};

/* One line of a job list. */
struct kf_msg_job_summary {
	uint64_t id;
	enum kf_job_state state;
	uint32_t attempt;
	uint32_t max_attempts;
	int32_t priority;
	const char *worker_id;       /* optional */
	const char *corpus;
	double progress;
	double best_cost;            /* result cost when final, else best so far; 0 = none */
	const char *layout;          /* optional: result layout once succeeded */
	const char *last_error;      /* optional */
	uint64_t created_ns;
	uint64_t started_ns;
	uint64_t finished_ns;
};

/* ---- hello: a worker introduces itself -------------------------------- */

struct kf_msg_hello_req {
	struct kf_msg_req req;
	const char *worker_id;
	const char *host;
	uint32_t pid;
	uint32_t slots;
	uint64_t incarnation;
	const char *version;         /* software version, e.g. "0.1.0" */
};

struct kf_msg_hello_rep {
	struct kf_msg_rep rep;
	uint32_t heartbeat_ms;       /* interval the worker must keep */
};

/* ---- lease: ask for a job, waiting up to wait_ms ---------------------- */

struct kf_msg_lease_req {
	struct kf_msg_req req;
	const char *worker_id;
	uint32_t wait_ms;            /* long poll; 0 = answer at once */
	/* Optional (1.2): the leasing process's incarnation (its hello's), 0 =
	 * not said. A broker that knows another live process under worker_id
	 * refuses the lease (KF_EBUSY): the id was taken over while this
	 * process was frozen or cut off, and its jobs were requeued. */
	uint64_t incarnation;
};

struct kf_msg_lease {
	uint64_t job_id;
	uint32_t attempt;
	uint64_t lease_token;        /* fences progress/complete of this attempt */
	struct kf_msg_job_params params;
};

struct kf_msg_lease_rep {
	struct kf_msg_rep rep;
	const struct kf_msg_lease *lease;  /* optional: NULL = no job now */
};

/* ---- progress: a running job reports, learns whether to stop ---------- */

struct kf_msg_progress_req {
	struct kf_msg_req req;
	uint64_t job_id;
	uint64_t lease_token;
	uint64_t step;
	double temperature;
	double cost;
	double best_cost;
};

struct kf_msg_progress_rep {
	struct kf_msg_rep rep;
	bool cancel;                 /* stop now and complete as killed */
	bool drop;                   /* lease is stale: stop, report nothing */
};

/* ---- complete: final outcome of an attempt ---------------------------- */

struct kf_msg_complete_req {
	struct kf_msg_req req;
	uint64_t job_id;
	uint64_t lease_token;
	enum kf_job_state outcome;   /* succeeded, failed or killed (else KF_ERANGE) */
	const struct kf_msg_job_result *result;  /* optional (best so far when killed) */
	const char *error;           /* optional: why it failed */
	/*
	 * Optional (1.1), the `released` outcome: the attempt is handed back
	 * unfinished (the worker is shutting down). The broker puts the job
	 * back to pending at once without charging an attempt. It is a flag
	 * beside `outcome`, not a new enum value, because a new value is a
	 * major version bump (older peers reject it with KF_ERANGE): with
	 * released the outcome must be KF_JOB_FAILED (else KF_ERANGE), so a
	 * 1.0 broker, which skips the key, sees the failure it always saw.
	 */
	bool released;
	/*
	 * Optional (1.1): "and lease my next job". With lease_next the broker
	 * commits this completion and a claim for the worker in one batch and
	 * may answer with the next job in complete_rep.lease, waiting up to
	 * lease_next_wait_ms for one (like kf_msg_lease_req.wait_ms). Without
	 * it (and from 1.0 peers) the reply never carries a lease. A 1.0
	 * broker ignores the keys: a worker that gets no lease simply leases.
	 */
	bool lease_next;
	uint32_t lease_next_wait_ms;
	const char *worker_id;       /* optional; required with lease_next: who leases */
	uint64_t incarnation;        /* optional (1.2), with lease_next: as in kf_msg_lease_req */
	/*
	 * Optional (1.3), the `expired` outcome: the worker stopped the
	 * attempt at the job's deadline_ms and reports its best result so
	 * far. The broker fails the job without a retry (as its own deadline
	 * sweep does) and keeps the result. Like `released` it rides on
	 * KF_JOB_FAILED (else KF_ERANGE), and not together with released. A
	 * worker sets it only for a job leased by a 1.3 broker: an older one
	 * would read a failure and retry the job.
	 */
	bool expired;
};
/* The first minor version whose brokers take complete_req.expired. */
#define KF_PROTO_MINOR_EXPIRED 3

struct kf_msg_complete_rep {
	struct kf_msg_rep rep;
	bool drop;                   /* stale lease: forget the result */
	/* Optional (1.1): the next job when the request asked lease_next and
	 * one was claimed, exactly as in kf_msg_lease_rep; NULL = none (lease
	 * again). May be set even with drop (the claim is independent). */
	const struct kf_msg_lease *lease;
};

/* ---- submit ------------------------------------------------------------ */

struct kf_msg_submit_req {
	struct kf_msg_req req;
	struct kf_msg_job_params params;
	/*
	 * Optional (1.5): the caller's idempotency key. The request id makes a
	 * resend within one client idempotent; the key does so across clients
	 * and processes (a script that submits again after a timeout). A key
	 * names at most one job: submitting it again answers that job's id and
	 * queues nothing, and with other parameters it is refused (KF_EEXIST).
	 * A 1.4 broker ignores it (the reply's minor version tells).
	 */
	const char *key;
};
/* The first minor version whose brokers take submit_req.key. */
#define KF_PROTO_MINOR_SUBMIT_KEY 5
#define KF_MSG_MAX_SUBMIT_KEY 200  /* bytes of submit_req.key */

struct kf_msg_submit_rep {
	struct kf_msg_rep rep;
	uint64_t job_id;
	bool existing;               /* 1.5, optional: the key (or request id) named a
	                              * job submitted before; nothing new was queued */
};

/* ---- list -------------------------------------------------------------- */

/* Bit for a state in kf_msg_list_req.state_mask. */
#define KF_JOB_STATE_BIT(s) (1u << (s))

struct kf_msg_list_req {
	struct kf_msg_req req;
	uint32_t state_mask;         /* OR of KF_JOB_STATE_BIT(); 0 = every state */
	uint64_t after_id;           /* keyset paging: ids > after_id; 0 = from the start
	                              * (newest_first: ids < after_id; 0 = from the newest) */
	uint32_t offset;             /* then skip this many */
	uint32_t limit;              /* 0 = broker default; capped by KF_MSG_MAX_JOBS */
	bool newest_first;           /* 1.4, optional: ids descending. An older broker
	                              * ignores it and answers oldest first (the
	                              * reply's minor version tells) */
};

/* The first minor version whose brokers take list_req.newest_first. */
#define KF_PROTO_MINOR_NEWEST_FIRST 4

struct kf_msg_list_rep {
	struct kf_msg_rep rep;
	const struct kf_msg_job_summary *jobs;
	size_t n_jobs;               /* <= KF_MSG_MAX_JOBS */
	uint64_t total;              /* jobs matching the filter, all pages */
};

/* ---- get ----------------------------------------------------------------- */

struct kf_msg_get_req {
	struct kf_msg_req req;
	uint64_t job_id;
};

struct kf_msg_get_rep {
	struct kf_msg_rep rep;
	const struct kf_msg_job *job;  /* optional: NULL when status != KF_OK */
};

/* ---- kill and retry (same shapes) ------------------------------------ */

struct kf_msg_job_action_req {
	struct kf_msg_req req;
	uint64_t job_id;
};

struct kf_msg_job_action_rep {
	struct kf_msg_rep rep;
	enum kf_job_state state;     /* the job's state after the action */
};

/* ---- cluster ------------------------------------------------------------- */

struct kf_msg_cluster_req {
	struct kf_msg_req req;
};

struct kf_msg_cluster_rep {
	struct kf_msg_rep rep;
	struct kf_msg_cluster_status status;
};

/* ---- log tail: the broker's recent log events ------------------------- */

struct kf_msg_log_tail_req {
	struct kf_msg_req req;
	uint32_t count;              /* newest `count` events; capped by KF_MSG_MAX_EVENTS */
	enum kf_msg_level min_level; /* events at this level or more severe */
	const char *source;          /* optional: only events from this source */
};

struct kf_msg_log_tail_rep {
	struct kf_msg_rep rep;
	const struct kf_msg_log *events;  /* oldest first; ts_ns and source set */
	size_t n_events;             /* <= KF_MSG_MAX_EVENTS */
};

/* ---- drain: a worker takes no new job, ends what it holds, exits (1.7) - */

struct kf_msg_drain_req {
	struct kf_msg_req req;
	const char *worker_id;
};

struct kf_msg_drain_rep {
	struct kf_msg_rep rep;
	enum kf_worker_liveness liveness; /* the worker's, when the command went out */
	uint32_t leases_ended;       /* its parked lease requests answered "no job" */
};

/* ---- error: the reply to a request that could not be decoded --------- */

struct kf_msg_error_rep {
	struct kf_msg_rep rep;       /* id is zero when the request was unreadable */
};

#endif
