/*
 * proto/telemetry_msgs.h — bodies of the pub/sub messages: heartbeat, log
 * event, metric update, job event, cluster status, worker command.
 *
 * These are plain data. Every pointer is borrowed: when you encode, the
 * pointers are yours and must stay valid for the kf_msg_encode() call; when
 * you decode, they point into the arena of the decoded struct kf_msg and
 * live until kf_msg_free().
 *
 * Conventions for every struct in proto/ (see docs/protocol.md):
 *  - `const char *` is NUL-terminated, valid UTF-8 without embedded NUL.
 *    Fields marked "optional" may be NULL (absent on the wire); all other
 *    string fields are required (encoding NULL fails with KF_EINVAL).
 *  - An array is a pointer plus `n_<name>` count; n == 0 may have ptr NULL.
 *  - Numbers are always on the wire. "0 = none" is spelled out per field.
 *  - Enums stored as C enums; an out-of-range value on the wire is
 *    KF_ERANGE (adding an enum value is therefore a major version bump, or
 *    a new optional field).
 */
#ifndef KF_PROTO_TELEMETRY_MSGS_H
#define KF_PROTO_TELEMETRY_MSGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* ---- shared enums ------------------------------------------------------ */

/* What a worker is doing (it says so in its heartbeat). */
enum kf_worker_state {
	KF_WORKER_IDLE = 0,
	KF_WORKER_BUSY = 1,
	KF_WORKER_DRAINING = 2, /* finishing its job, taking no new lease */
	KF_WORKER_STATE_COUNT
};

/* What the broker concludes from heartbeats (DESIGN.md §3: silent for 3
 * intervals = stale, for 10 = dead). */
enum kf_worker_liveness {
	KF_WORKER_ALIVE = 0,
	KF_WORKER_STALE = 1,
	KF_WORKER_DEAD = 2,
	KF_WORKER_LIVENESS_COUNT
};

/* The job state machine (docs/protocol.md and the broker's docs):
 * pending -> running -> succeeded | failed | killed, running -> retrying
 * (backoff) -> pending; failed|killed -> pending on operator retry. */
enum kf_job_state {
	KF_JOB_PENDING = 0,
	KF_JOB_RUNNING = 1,
	KF_JOB_RETRYING = 2,
	KF_JOB_SUCCEEDED = 3,
	KF_JOB_FAILED = 4,
	KF_JOB_KILLED = 5,
	KF_JOB_STATE_COUNT
};

/* Log levels, numbered like the meson max_log_level option (KF_MAX_LOG_LEVEL):
 * a telemetry level converts by value. Lower = more severe. */
enum kf_msg_level {
	KF_MSG_LEVEL_ERROR = 1,
	KF_MSG_LEVEL_WARN = 2,
	KF_MSG_LEVEL_INFO = 3,
	KF_MSG_LEVEL_DEBUG = 4,
	KF_MSG_LEVEL_TRACE = 5,
};

/* Lower-case names ("idle", "stale", "pending", ...), upper-case for levels
 * ("WARN", used in topics). Never NULL ("?" when out of range). */
const char *kf_worker_state_name(enum kf_worker_state s);
const char *kf_worker_liveness_name(enum kf_worker_liveness l);
const char *kf_job_state_name(enum kf_job_state s);
const char *kf_msg_level_name(enum kf_msg_level l);
/* Parse those names back (case-insensitive); KF_EINVAL when unknown. */
enum kf_err kf_job_state_parse(const char *name, enum kf_job_state *out);
enum kf_err kf_msg_level_parse(const char *name, enum kf_msg_level *out);
/* succeeded, failed, killed. */
bool kf_job_state_final(enum kf_job_state s);

/* ---- typed values (log fields, span fields) ---------------------------- */

enum kf_msg_value_kind {
	KF_VALUE_STR = 0,
	KF_VALUE_I64 = 1,
	KF_VALUE_U64 = 2,
	KF_VALUE_F64 = 3,
	KF_VALUE_BOOL = 4,
	KF_VALUE_KIND_COUNT
};

struct kf_msg_value {
	enum kf_msg_value_kind kind;
	union {
		const char *str; /* required (non-NULL) when kind == KF_VALUE_STR */
		int64_t i64;
		uint64_t u64;
		double f64;
		bool b;
	};
};

struct kf_msg_field {
	const char *name;         /* <= KF_MSG_MAX_NAME bytes */
	struct kf_msg_value value;
};

struct kf_msg_span {
	const char *name;
	const struct kf_msg_field *fields;
	size_t n_fields;          /* <= KF_MSG_MAX_FIELDS */
};

/* ---- heartbeat (topic hb.<worker> on ingest) --------------------------- */

/* An attempt a worker holds: running in a slot, or its result not yet
 * acknowledged. */
struct kf_msg_held_job {
	uint64_t job_id;
	uint64_t lease_token;
};

struct kf_msg_heartbeat {
	const char *worker_id;
	const char *host;
	uint32_t pid;
	uint64_t incarnation;     /* random at worker start: tells restarts apart */
	enum kf_worker_state state;
	double cpu_process;       /* cores used by the process, 0..N */
	double cpu_host;          /* host CPU busy fraction, 0..1 */
	uint64_t rss_bytes;
	uint32_t slots_total;
	uint32_t slots_busy;
	uint64_t job_id;          /* current job, 0 = none */
	double job_progress;      /* 0..1; 0 when no job */
	double job_best_cost;     /* best cost so far; 0 when no job */
	uint64_t uptime_ms;
	/*
	 * Optional (1.2): with held_listed, held lists every attempt the
	 * process holds. A job the broker has running under this process for
	 * a while that is not listed was claimed for it, but the lease never
	 * arrived (the broker died between the claim's commit and its reply):
	 * the broker requeues it. Without held_listed (older workers, or more
	 * than KF_MSG_MAX_HELD held) nothing is concluded.
	 */
	bool held_listed;
	const struct kf_msg_held_job *held;
	size_t n_held;            /* <= KF_MSG_MAX_HELD */
};

/* ---- log event (topic log.<LEVEL>.<source>) ---------------------------- */

struct kf_msg_log {
	enum kf_msg_level level;
	const char *target;       /* module path, e.g. "keyforge::worker::anneal" */
	const char *message;
	const struct kf_msg_field *fields;
	size_t n_fields;          /* <= KF_MSG_MAX_FIELDS */
	const struct kf_msg_span *spans; /* span stack, root first */
	size_t n_spans;           /* <= KF_MSG_MAX_SPANS */
	/*
	 * Optional: when the event is carried in its own envelope these are the
	 * envelope's timestamp and sender, and may be left 0/NULL when encoding
	 * (they are then omitted). kf_msg_decode() always fills them: from the
	 * body when present, else from the envelope. Set them when the event is
	 * republished by someone else or sits in a log tail reply.
	 */
	uint64_t ts_ns;
	const char *source;
};

/* ---- metric update (topic metric.<source>) ----------------------------- */

enum kf_msg_metric_type {
	KF_MSG_METRIC_COUNTER = 0,
	KF_MSG_METRIC_GAUGE = 1,
	KF_MSG_METRIC_HISTOGRAM = 2,
	KF_MSG_METRIC_TYPE_COUNT
};
const char *kf_msg_metric_type_name(enum kf_msg_metric_type t); /* "counter"... */

struct kf_msg_label {
	const char *name;
	const char *value;
};

/*
 * One series, with its CUMULATIVE value for (source, incarnation) — never a
 * delta — so that a lost update is corrected by the next one.
 * Counter/gauge use `value`; histogram uses the buckets, sum and count and
 * has value == 0. Buckets: n_buckets finite upper bounds in ascending order
 * (`bucket_le`) and their cumulative counts (`bucket_count`); the +Inf
 * bucket is implicit and equals `count`. Both arrays have n_buckets
 * elements (one wire array of pairs, so they cannot disagree).
 */
struct kf_msg_series {
	const char *name;                /* metric family name */
	enum kf_msg_metric_type type;
	const char *help;                /* optional */
	const struct kf_msg_label *labels;
	size_t n_labels;                 /* <= KF_MSG_MAX_LABELS */
	double value;
	const double *bucket_le;
	const uint64_t *bucket_count;
	size_t n_buckets;                /* <= KF_MSG_MAX_BUCKETS */
	double sum;
	uint64_t count;
};

struct kf_msg_metric {
	const char *source;              /* program instance, e.g. worker id */
	uint64_t incarnation;            /* random per process start */
	bool full;                       /* true: every series of the source */
	const struct kf_msg_series *series;
	size_t n_series;                 /* <= KF_MSG_MAX_SERIES */
};

/* ---- job event (topic job.<id>) ---------------------------------------- */

struct kf_msg_job_event {
	uint64_t job_id;
	enum kf_job_state state;
	uint32_t attempt;
	const char *worker_id;           /* optional (no worker when pending) */
	double progress;                 /* 0..1 */
	double best_cost;                /* 0 when unknown */
	const char *message;             /* optional, e.g. the failure */
};

/* ---- cluster status (topic status.cluster; also the cluster RPC reply) -- */

struct kf_msg_worker_status {
	const char *worker_id;
	const char *host;
	uint32_t pid;
	uint64_t incarnation;
	enum kf_worker_liveness liveness;
	enum kf_worker_state state;      /* from its last heartbeat */
	double cpu_process;
	double cpu_host;
	uint64_t rss_bytes;
	uint32_t slots_total;
	uint32_t slots_busy;
	uint64_t job_id;                 /* 0 = none */
	double job_progress;
	uint64_t last_heartbeat_age_ms;  /* since its last heartbeat (or hello: unheard) */
	/* 1.6, optional: no heartbeat of this process has reached the broker
	 * since its hello, which registered it or brought it back after a
	 * silence; the broker gives it no job until one does. */
	bool unheard;
};

struct kf_msg_cluster_status {
	const struct kf_msg_worker_status *workers;
	size_t n_workers;                /* <= KF_MSG_MAX_WORKERS */
	/* Jobs per state, indexed by enum kf_job_state. On the wire an array;
	 * a peer's extra (newer) states are ignored, missing ones read as 0. */
	uint64_t job_counts[KF_JOB_STATE_COUNT];
};

/* ---- command to one worker (topic cmd.<worker> on events) -------------- */

enum kf_msg_command_action {
	KF_CMD_CANCEL = 0,   /* stop job_id (if lease_token matches), report killed (or, drop: nothing) */
	KF_CMD_DRAIN = 1,    /* finish the current job, take no new lease */
	KF_CMD_ACTION_COUNT
};

struct kf_msg_command {
	const char *worker_id;
	enum kf_msg_command_action action;
	uint64_t job_id;                 /* 0 for actions not about a job */
	uint64_t lease_token;            /* 0 = any lease of job_id */
	/* 1.6, optional, cancel only: the broker has already ended this
	 * attempt (requeued it, failed it, its deadline passed), so the
	 * worker stops and reports nothing, as for a stale lease. Without it
	 * (an operator's kill, or a broker older than 1.6) the worker reports
	 * the job killed with its best result. */
	bool drop;
	const char *reason;              /* 1.6, optional: why, for the worker's log */
};

#endif
