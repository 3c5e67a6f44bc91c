/*
 * schema.c — the wire layout of every body: one table row per field.
 *
 * To add a field (a MINOR version bump, see proto/msg.h): add the member to
 * the struct in the header, add an OPTIONAL row here (O* macros or opt
 * numbers), document it in docs/protocol.md. Never reuse a key. Keys are
 * short because they travel in every message; keep them unique per struct.
 *
 * The macros check at compile time that each member has the C type its
 * kind reads and writes (a mismatch is a build error, not a memory bug).
 */
#include "proto/internal.h"

#include <assert.h>

/* 0, but a compile error unless T::m has type `type` (after lvalue conversion). */
#define IS(T, m, type) (0 * sizeof(_Generic(((T *)0)->m, type : 1)))
#define IS4(T, m) (0 * sizeof(char[sizeof(((T *)0)->m) == 4 ? 1 : -1]))

#define ROW(k, kind_, opt_, off_, ...) { .key = k, .kind = kind_, .opt = opt_, .off = off_, __VA_ARGS__ }
#define BOOL_(T, k, m) ROW(k, KF__F_BOOL, false, offsetof(T, m) + IS(T, m, bool))
#define OBOOL(T, k, m) ROW(k, KF__F_BOOL, true, offsetof(T, m) + IS(T, m, bool))
#define U32(T, k, m) ROW(k, KF__F_U32, false, offsetof(T, m) + IS(T, m, uint32_t))
#define OU32(T, k, m) ROW(k, KF__F_U32, true, offsetof(T, m) + IS(T, m, uint32_t))
#define U64(T, k, m) ROW(k, KF__F_U64, false, offsetof(T, m) + IS(T, m, uint64_t))
#define OU64(T, k, m) ROW(k, KF__F_U64, true, offsetof(T, m) + IS(T, m, uint64_t))
#define I32(T, k, m) ROW(k, KF__F_I32, false, offsetof(T, m) + IS(T, m, int32_t))
#define F64(T, k, m) ROW(k, KF__F_F64, false, offsetof(T, m) + IS(T, m, double))
#define OF64(T, k, m) ROW(k, KF__F_F64, true, offsetof(T, m) + IS(T, m, double))
#define ENUM(T, k, m, lo_, hi_) \
	ROW(k, KF__F_ENUM, false, offsetof(T, m) + IS4(T, m), .lo = lo_, .hi = hi_)
#define STR(T, k, m, max_) \
	ROW(k, KF__F_STR, false, offsetof(T, m) + IS(T, m, const char *), .max = max_)
#define OSTR(T, k, m, max_) \
	ROW(k, KF__F_STR, true, offsetof(T, m) + IS(T, m, const char *), .max = max_)
#define STRUCT(T, k, m, ST, sub_) \
	ROW(k, KF__F_STRUCT, false, offsetof(T, m) + IS(T, m, ST), .sub = &sub_)
#define PSTRUCT(T, k, m, ST, sub_) \
	ROW(k, KF__F_PSTRUCT, true, offsetof(T, m) + IS(T, m, const ST *), .sub = &sub_)
#define ARRAY(T, k, m, ST, sub_, max_) \
	ROW(k, KF__F_ARRAY, true, offsetof(T, m) + IS(T, m, const ST *), \
		.off_n = offsetof(T, n_##m) + IS(T, n_##m, size_t), .max = max_, .sub = &sub_)
#define F64FIX(T, k, m) \
	ROW(k, KF__F_F64_FIXED, false, offsetof(T, m) + IS(T, m, double *), \
		.max = sizeof(((T *)0)->m) / sizeof(double))
#define U64FIX(T, k, m) \
	ROW(k, KF__F_U64_FIXED, false, offsetof(T, m) + IS(T, m, uint64_t *), \
		.max = sizeof(((T *)0)->m) / sizeof(uint64_t))
#define VALUE(T, k, m) ROW(k, KF__F_VALUE, false, offsetof(T, m) + IS(T, m, struct kf_msg_value))

#define SCHEMA(var, T, check_) SCHEMA_(var, T, check_)
#define SCHEMA_(var, T, check_) \
	const struct kf__schema var = { #T, sizeof(T), _Alignof(T), var##_fields, \
		sizeof var##_fields / sizeof var##_fields[0], check_ }
#define FIELDS(var) static const struct kf__field var##_fields[]

#define ALL_ENUMS(X) X(kf_worker_state) X(kf_worker_liveness) X(kf_job_state) \
	X(kf_msg_level) X(kf_msg_value_kind) X(kf_msg_metric_type) X(kf_msg_command_action) \
	X(kf_msg_board) X(kf_err)
#define ENUM_IS_4(e) static_assert(sizeof(enum e) == 4, "enum " #e " must be 4 bytes");
ALL_ENUMS(ENUM_IS_4)

/* Status codes travel as any u16: a newer peer's code passes through. */
#define KF_ERR_HI 65536

/* ---- request / reply headers -------------------------------------------- */

FIELDS(s_request_id) = {
	U64(struct kf_msg_request_id, "c", client),
	U64(struct kf_msg_request_id, "n", seq),
};
static SCHEMA(s_request_id, struct kf_msg_request_id, NULL);

FIELDS(s_req) = {
	STRUCT(struct kf_msg_req, "id", id, struct kf_msg_request_id, s_request_id),
	OSTR(struct kf_msg_req, "tok", auth_token, KF_MSG_MAX_NAME),
};
static SCHEMA(s_req, struct kf_msg_req, NULL);

FIELDS(s_rep) = {
	STRUCT(struct kf_msg_rep, "id", id, struct kf_msg_request_id, s_request_id),
	ENUM(struct kf_msg_rep, "st", status, 0, KF_ERR_HI),
	OSTR(struct kf_msg_rep, "err", error, KF_MSG_MAX_TEXT),
};
static SCHEMA(s_rep, struct kf_msg_rep, NULL);

#define REQ_HDR(T) STRUCT(T, "h", req, struct kf_msg_req, s_req)
#define REP_HDR(T) STRUCT(T, "h", rep, struct kf_msg_rep, s_rep)

/* ---- telemetry ----------------------------------------------------------- */

FIELDS(s_field) = {
	STR(struct kf_msg_field, "n", name, KF_MSG_MAX_NAME),
	VALUE(struct kf_msg_field, "v", value),
};
static SCHEMA(s_field, struct kf_msg_field, NULL);

FIELDS(s_span) = {
	STR(struct kf_msg_span, "n", name, KF_MSG_MAX_NAME),
	ARRAY(struct kf_msg_span, "f", fields, struct kf_msg_field, s_field, KF_MSG_MAX_FIELDS),
};
static SCHEMA(s_span, struct kf_msg_span, NULL);

FIELDS(s_held_job) = {
	U64(struct kf_msg_held_job, "j", job_id),
	U64(struct kf_msg_held_job, "lt", lease_token),
};
static SCHEMA(s_held_job, struct kf_msg_held_job, NULL);

#define T struct kf_msg_heartbeat
FIELDS(s_heartbeat) = {
	STR(T, "w", worker_id, KF_MSG_MAX_NAME),
	STR(T, "host", host, KF_MSG_MAX_NAME),
	U32(T, "pid", pid),
	U64(T, "inc", incarnation),
	ENUM(T, "st", state, 0, KF_WORKER_STATE_COUNT),
	F64(T, "cp", cpu_process),
	F64(T, "ch", cpu_host),
	U64(T, "rss", rss_bytes),
	U32(T, "sl", slots_total),
	U32(T, "sb", slots_busy),
	U64(T, "j", job_id),
	F64(T, "jp", job_progress),
	F64(T, "jc", job_best_cost),
	U64(T, "up", uptime_ms),
	OBOOL(T, "hl", held_listed),                                          /* 1.2 */
	ARRAY(T, "hj", held, struct kf_msg_held_job, s_held_job, KF_MSG_MAX_HELD), /* 1.2 */
};
static SCHEMA(s_heartbeat, T, NULL);
#undef T

#define T struct kf_msg_log
FIELDS(s_log) = {
	ENUM(T, "l", level, KF_MSG_LEVEL_ERROR, KF_MSG_LEVEL_TRACE + 1),
	STR(T, "tg", target, KF_MSG_MAX_NAME),
	STR(T, "m", message, KF_MSG_MAX_TEXT),
	ARRAY(T, "f", fields, struct kf_msg_field, s_field, KF_MSG_MAX_FIELDS),
	ARRAY(T, "sp", spans, struct kf_msg_span, s_span, KF_MSG_MAX_SPANS),
	OU64(T, "ts", ts_ns),
	OSTR(T, "src", source, KF_MSG_MAX_NAME),
};
static SCHEMA(s_log, T, NULL);
#undef T

FIELDS(s_label) = {
	STR(struct kf_msg_label, "n", name, KF_MSG_MAX_NAME),
	STR(struct kf_msg_label, "v", value, KF_MSG_MAX_TEXT),
};
static SCHEMA(s_label, struct kf_msg_label, NULL);

#define T struct kf_msg_series
FIELDS(s_series) = {
	STR(T, "n", name, KF_MSG_MAX_NAME),
	ENUM(T, "t", type, 0, KF_MSG_METRIC_TYPE_COUNT),
	OSTR(T, "h", help, KF_MSG_MAX_TEXT),
	ARRAY(T, "l", labels, struct kf_msg_label, s_label, KF_MSG_MAX_LABELS),
	F64(T, "v", value),
	ROW("bk", KF__F_HIST, true, offsetof(T, bucket_le) + IS(T, bucket_le, const double *),
		.off2 = offsetof(T, bucket_count) + IS(T, bucket_count, const uint64_t *),
		.off_n = offsetof(T, n_buckets) + IS(T, n_buckets, size_t),
		.max = KF_MSG_MAX_BUCKETS),
	OF64(T, "sum", sum),
	OU64(T, "cnt", count),
};
static SCHEMA(s_series, T, NULL);
#undef T

#define T struct kf_msg_metric
FIELDS(s_metric) = {
	STR(T, "src", source, KF_MSG_MAX_NAME),
	U64(T, "inc", incarnation),
	BOOL_(T, "full", full),
	ARRAY(T, "s", series, struct kf_msg_series, s_series, KF_MSG_MAX_SERIES),
};
static SCHEMA(s_metric, T, NULL);
#undef T

#define T struct kf_msg_job_event
FIELDS(s_job_event) = {
	U64(T, "j", job_id),
	ENUM(T, "st", state, 0, KF_JOB_STATE_COUNT),
	U32(T, "a", attempt),
	OSTR(T, "w", worker_id, KF_MSG_MAX_NAME),
	F64(T, "p", progress),
	F64(T, "c", best_cost),
	OSTR(T, "m", message, KF_MSG_MAX_TEXT),
};
static SCHEMA(s_job_event, T, NULL);
#undef T

#define T struct kf_msg_worker_status
FIELDS(s_worker_status) = {
	STR(T, "w", worker_id, KF_MSG_MAX_NAME),
	STR(T, "host", host, KF_MSG_MAX_NAME),
	U32(T, "pid", pid),
	U64(T, "inc", incarnation),
	ENUM(T, "lv", liveness, 0, KF_WORKER_LIVENESS_COUNT),
	ENUM(T, "st", state, 0, KF_WORKER_STATE_COUNT),
	F64(T, "cp", cpu_process),
	F64(T, "ch", cpu_host),
	U64(T, "rss", rss_bytes),
	U32(T, "sl", slots_total),
	U32(T, "sb", slots_busy),
	U64(T, "j", job_id),
	F64(T, "jp", job_progress),
	U64(T, "age", last_heartbeat_age_ms),
	OBOOL(T, "uh", unheard),
};
static SCHEMA(s_worker_status, T, NULL);
#undef T

#define T struct kf_msg_cluster_status
FIELDS(s_cluster_status) = {
	ARRAY(T, "w", workers, struct kf_msg_worker_status, s_worker_status, KF_MSG_MAX_WORKERS),
	U64FIX(T, "jc", job_counts),
};
static SCHEMA(s_cluster_status, T, NULL);
#undef T

#define T struct kf_msg_command
FIELDS(s_command) = {
	STR(T, "w", worker_id, KF_MSG_MAX_NAME),
	ENUM(T, "a", action, 0, KF_CMD_ACTION_COUNT),
	U64(T, "j", job_id),
	U64(T, "lt", lease_token),
	OBOOL(T, "drop", drop),
	OSTR(T, "why", reason, KF_MSG_MAX_NAME),
};
static SCHEMA(s_command, T, NULL);
#undef T

/* ---- jobs ---------------------------------------------------------------- */

FIELDS(s_named) = {
	STR(struct kf_msg_named_value, "n", name, KF_MSG_MAX_NAME),
	F64(struct kf_msg_named_value, "v", value),
};
static SCHEMA(s_named, struct kf_msg_named_value, NULL);

#define T struct kf_msg_job_params
FIELDS(s_params) = {
	STR(T, "c", corpus, KF_MSG_MAX_NAME * 16),
	ENUM(T, "b", board, 0, KF_MSG_BOARD_COUNT),
	OSTR(T, "sl", start_layout, KF_MSG_MAX_NAME),
	U64(T, "n", steps),
	U64(T, "seed", seed),
	F64(T, "t0", start_temp),
	U32(T, "r", restarts),
	OSTR(T, "pin", pinned, KF_MSG_MAX_NAME),
	ARRAY(T, "w", weights, struct kf_msg_named_value, s_named, KF_MSG_MAX_NAMED),
	U64(T, "dl", deadline_ms),
	U32(T, "ma", max_attempts),
	I32(T, "pr", priority),
};
static SCHEMA(s_params, T, NULL);
#undef T

#define T struct kf_msg_job_result
FIELDS(s_result) = {
	STR(T, "l", layout, KF_MSG_MAX_NAME),
	F64(T, "c", cost),
	ARRAY(T, "st", stats, struct kf_msg_named_value, s_named, KF_MSG_MAX_NAMED),
	F64FIX(T, "fu", finger_usage),
	U64(T, "n", steps),
	F64(T, "sps", steps_per_sec),
	U64(T, "ms", elapsed_ms),
};
static SCHEMA(s_result, T, NULL);
#undef T

#define T struct kf_msg_job_error
FIELDS(s_job_error) = {
	U32(T, "a", attempt),
	STR(T, "m", message, KF_MSG_MAX_TEXT),
	U64(T, "at", at_ns),
};
static SCHEMA(s_job_error, T, NULL);
#undef T

#define T struct kf_msg_job
FIELDS(s_job) = {
	U64(T, "id", id),
	ENUM(T, "st", state, 0, KF_JOB_STATE_COUNT),
	U32(T, "a", attempt),
	U32(T, "ma", max_attempts),
	I32(T, "pr", priority),
	OSTR(T, "w", worker_id, KF_MSG_MAX_NAME),
	F64(T, "p", progress),
	F64(T, "bc", best_cost),
	STRUCT(T, "par", params, struct kf_msg_job_params, s_params),
	PSTRUCT(T, "res", result, struct kf_msg_job_result, s_result),
	ARRAY(T, "err", errors, struct kf_msg_job_error, s_job_error, KF_MSG_MAX_ERRORS),
	U64(T, "cr", created_ns),
	U64(T, "sa", started_ns),
	U64(T, "fi", finished_ns),
	OSTR(T, "key", key, KF_MSG_MAX_SUBMIT_KEY), /* 1.5 */
};
static SCHEMA(s_job, T, NULL);
#undef T

#define T struct kf_msg_job_summary
FIELDS(s_summary) = {
	U64(T, "id", id),
	ENUM(T, "st", state, 0, KF_JOB_STATE_COUNT),
	U32(T, "a", attempt),
	U32(T, "ma", max_attempts),
	I32(T, "pr", priority),
	OSTR(T, "w", worker_id, KF_MSG_MAX_NAME),
	STR(T, "c", corpus, KF_MSG_MAX_NAME * 16),
	F64(T, "p", progress),
	F64(T, "bc", best_cost),
	OSTR(T, "l", layout, KF_MSG_MAX_NAME),
	OSTR(T, "le", last_error, KF_MSG_MAX_TEXT),
	U64(T, "cr", created_ns),
	U64(T, "sa", started_ns),
	U64(T, "fi", finished_ns),
};
static SCHEMA(s_summary, T, NULL);
#undef T

/* ---- RPC bodies ---------------------------------------------------------- */

#define T struct kf_msg_hello_req
FIELDS(s_hello_req) = {
	REQ_HDR(T),
	STR(T, "w", worker_id, KF_MSG_MAX_NAME),
	STR(T, "host", host, KF_MSG_MAX_NAME),
	U32(T, "pid", pid),
	U32(T, "sl", slots),
	U64(T, "inc", incarnation),
	STR(T, "ver", version, KF_MSG_MAX_NAME),
};
static SCHEMA(s_hello_req, T, NULL);
#undef T

FIELDS(s_hello_rep) = {
	REP_HDR(struct kf_msg_hello_rep),
	U32(struct kf_msg_hello_rep, "hb", heartbeat_ms),
};
static SCHEMA(s_hello_rep, struct kf_msg_hello_rep, NULL);

FIELDS(s_lease_req) = {
	REQ_HDR(struct kf_msg_lease_req),
	STR(struct kf_msg_lease_req, "w", worker_id, KF_MSG_MAX_NAME),
	U32(struct kf_msg_lease_req, "wait", wait_ms),
	OU64(struct kf_msg_lease_req, "inc", incarnation),  /* 1.2 */
};
static SCHEMA(s_lease_req, struct kf_msg_lease_req, NULL);

#define T struct kf_msg_lease
FIELDS(s_lease) = {
	U64(T, "j", job_id),
	U32(T, "a", attempt),
	U64(T, "lt", lease_token),
	STRUCT(T, "par", params, struct kf_msg_job_params, s_params),
};
static SCHEMA(s_lease, T, NULL);
#undef T

FIELDS(s_lease_rep) = {
	REP_HDR(struct kf_msg_lease_rep),
	PSTRUCT(struct kf_msg_lease_rep, "l", lease, struct kf_msg_lease, s_lease),
};
static SCHEMA(s_lease_rep, struct kf_msg_lease_rep, NULL);

#define T struct kf_msg_progress_req
FIELDS(s_progress_req) = {
	REQ_HDR(T),
	U64(T, "j", job_id),
	U64(T, "lt", lease_token),
	U64(T, "n", step),
	F64(T, "t", temperature),
	F64(T, "c", cost),
	F64(T, "bc", best_cost),
};
static SCHEMA(s_progress_req, T, NULL);
#undef T

FIELDS(s_progress_rep) = {
	REP_HDR(struct kf_msg_progress_rep),
	BOOL_(struct kf_msg_progress_rep, "cancel", cancel),
	BOOL_(struct kf_msg_progress_rep, "drop", drop),
};
static SCHEMA(s_progress_rep, struct kf_msg_progress_rep, NULL);

static enum kf_err check_complete(const void *obj)
{
	const struct kf_msg_complete_req *c = obj;

	if (!kf_job_state_final(c->outcome))
		return KF_ERANGE;
	/* released rides on "failed" so that a 1.0 broker reads a failure. */
	if (c->released && c->outcome != KF_JOB_FAILED)
		return KF_ERANGE;
	/* expired likewise (1.3), and an attempt ends one way only. */
	if (c->expired && (c->outcome != KF_JOB_FAILED || c->released))
		return KF_ERANGE;
	if (c->lease_next && (!c->worker_id || !*c->worker_id))
		return KF_EMISSING;
	return KF_OK;
}

#define T struct kf_msg_complete_req
FIELDS(s_complete_req) = {
	REQ_HDR(T),
	U64(T, "j", job_id),
	U64(T, "lt", lease_token),
	ENUM(T, "o", outcome, 0, KF_JOB_STATE_COUNT),
	PSTRUCT(T, "res", result, struct kf_msg_job_result, s_result),
	OSTR(T, "err", error, KF_MSG_MAX_TEXT),
	OBOOL(T, "rel", released),            /* 1.1 */
	OBOOL(T, "nx", lease_next),           /* 1.1 */
	OU32(T, "nxw", lease_next_wait_ms),   /* 1.1 */
	OSTR(T, "w", worker_id, KF_MSG_MAX_NAME), /* 1.1 */
	OU64(T, "inc", incarnation),          /* 1.2 */
	OBOOL(T, "exp", expired),             /* 1.3 */
};
static SCHEMA(s_complete_req, T, check_complete);
#undef T

FIELDS(s_complete_rep) = {
	REP_HDR(struct kf_msg_complete_rep),
	BOOL_(struct kf_msg_complete_rep, "drop", drop),
	PSTRUCT(struct kf_msg_complete_rep, "l", lease, struct kf_msg_lease, s_lease), /* 1.1 */
};
static SCHEMA(s_complete_rep, struct kf_msg_complete_rep, NULL);

FIELDS(s_submit_req) = {
	REQ_HDR(struct kf_msg_submit_req),
	STRUCT(struct kf_msg_submit_req, "par", params, struct kf_msg_job_params, s_params),
	OSTR(struct kf_msg_submit_req, "key", key, KF_MSG_MAX_SUBMIT_KEY), /* 1.5 */
};
static SCHEMA(s_submit_req, struct kf_msg_submit_req, NULL);

FIELDS(s_submit_rep) = {
	REP_HDR(struct kf_msg_submit_rep),
	U64(struct kf_msg_submit_rep, "j", job_id),
	OBOOL(struct kf_msg_submit_rep, "ex", existing), /* 1.5 */
};
static SCHEMA(s_submit_rep, struct kf_msg_submit_rep, NULL);

#define T struct kf_msg_list_req
FIELDS(s_list_req) = {
	REQ_HDR(T),
	U32(T, "sm", state_mask),
	U64(T, "after", after_id),
	U32(T, "off", offset),
	U32(T, "lim", limit),
	OBOOL(T, "new", newest_first),
};
static SCHEMA(s_list_req, T, NULL);
#undef T

#define T struct kf_msg_list_rep
FIELDS(s_list_rep) = {
	REP_HDR(T),
	ARRAY(T, "jobs", jobs, struct kf_msg_job_summary, s_summary, KF_MSG_MAX_JOBS),
	U64(T, "total", total),
};
static SCHEMA(s_list_rep, T, NULL);
#undef T

FIELDS(s_get_req) = {
	REQ_HDR(struct kf_msg_get_req),
	U64(struct kf_msg_get_req, "j", job_id),
};
static SCHEMA(s_get_req, struct kf_msg_get_req, NULL);

FIELDS(s_get_rep) = {
	REP_HDR(struct kf_msg_get_rep),
	PSTRUCT(struct kf_msg_get_rep, "job", job, struct kf_msg_job, s_job),
};
static SCHEMA(s_get_rep, struct kf_msg_get_rep, NULL);

FIELDS(s_action_req) = {
	REQ_HDR(struct kf_msg_job_action_req),
	U64(struct kf_msg_job_action_req, "j", job_id),
};
static SCHEMA(s_action_req, struct kf_msg_job_action_req, NULL);

FIELDS(s_action_rep) = {
	REP_HDR(struct kf_msg_job_action_rep),
	ENUM(struct kf_msg_job_action_rep, "st", state, 0, KF_JOB_STATE_COUNT),
};
static SCHEMA(s_action_rep, struct kf_msg_job_action_rep, NULL);

FIELDS(s_cluster_req) = {
	REQ_HDR(struct kf_msg_cluster_req),
};
static SCHEMA(s_cluster_req, struct kf_msg_cluster_req, NULL);

FIELDS(s_cluster_rep) = {
	REP_HDR(struct kf_msg_cluster_rep),
	STRUCT(struct kf_msg_cluster_rep, "cs", status, struct kf_msg_cluster_status,
		s_cluster_status),
};
static SCHEMA(s_cluster_rep, struct kf_msg_cluster_rep, NULL);

#define T struct kf_msg_log_tail_req
FIELDS(s_log_tail_req) = {
	REQ_HDR(T),
	U32(T, "n", count),
	ENUM(T, "lvl", min_level, KF_MSG_LEVEL_ERROR, KF_MSG_LEVEL_TRACE + 1),
	OSTR(T, "src", source, KF_MSG_MAX_NAME),
};
static SCHEMA(s_log_tail_req, T, NULL);
#undef T

FIELDS(s_log_tail_rep) = {
	REP_HDR(struct kf_msg_log_tail_rep),
	ARRAY(struct kf_msg_log_tail_rep, "ev", events, struct kf_msg_log, s_log,
		KF_MSG_MAX_EVENTS),
};
static SCHEMA(s_log_tail_rep, struct kf_msg_log_tail_rep, NULL);

FIELDS(s_drain_req) = {
	REQ_HDR(struct kf_msg_drain_req),
	STR(struct kf_msg_drain_req, "w", worker_id, KF_MSG_MAX_NAME),
};
static SCHEMA(s_drain_req, struct kf_msg_drain_req, NULL);

FIELDS(s_drain_rep) = {
	REP_HDR(struct kf_msg_drain_rep),
	ENUM(struct kf_msg_drain_rep, "lv", liveness, 0, KF_WORKER_LIVENESS_COUNT),
	U32(struct kf_msg_drain_rep, "le", leases_ended),
};
static SCHEMA(s_drain_rep, struct kf_msg_drain_rep, NULL);

FIELDS(s_error_rep) = {
	REP_HDR(struct kf_msg_error_rep),
};
static SCHEMA(s_error_rep, struct kf_msg_error_rep, NULL);

/* ---- registry ------------------------------------------------------------ */

static const struct {
	enum kf_msg_type type;
	const struct kf__schema *schema;
} registry[] = {
	{ KF_MSG_HEARTBEAT, &s_heartbeat },
	{ KF_MSG_LOG, &s_log },
	{ KF_MSG_METRIC, &s_metric },
	{ KF_MSG_JOB_EVENT, &s_job_event },
	{ KF_MSG_CLUSTER_STATUS, &s_cluster_status },
	{ KF_MSG_COMMAND, &s_command },
	{ KF_MSG_HELLO_REQ, &s_hello_req },
	{ KF_MSG_HELLO_REP, &s_hello_rep },
	{ KF_MSG_LEASE_REQ, &s_lease_req },
	{ KF_MSG_LEASE_REP, &s_lease_rep },
	{ KF_MSG_PROGRESS_REQ, &s_progress_req },
	{ KF_MSG_PROGRESS_REP, &s_progress_rep },
	{ KF_MSG_COMPLETE_REQ, &s_complete_req },
	{ KF_MSG_COMPLETE_REP, &s_complete_rep },
	{ KF_MSG_SUBMIT_REQ, &s_submit_req },
	{ KF_MSG_SUBMIT_REP, &s_submit_rep },
	{ KF_MSG_LIST_REQ, &s_list_req },
	{ KF_MSG_LIST_REP, &s_list_rep },
	{ KF_MSG_GET_REQ, &s_get_req },
	{ KF_MSG_GET_REP, &s_get_rep },
	{ KF_MSG_KILL_REQ, &s_action_req },
	{ KF_MSG_KILL_REP, &s_action_rep },
	{ KF_MSG_RETRY_REQ, &s_action_req },
	{ KF_MSG_RETRY_REP, &s_action_rep },
	{ KF_MSG_CLUSTER_REQ, &s_cluster_req },
	{ KF_MSG_CLUSTER_REP, &s_cluster_rep },
	{ KF_MSG_LOG_TAIL_REQ, &s_log_tail_req },
	{ KF_MSG_LOG_TAIL_REP, &s_log_tail_rep },
	{ KF_MSG_DRAIN_REQ, &s_drain_req },
	{ KF_MSG_DRAIN_REP, &s_drain_rep },
	{ KF_MSG_ERROR_REP, &s_error_rep },
};

const struct kf__schema *kf__schema_of(enum kf_msg_type type)
{
	for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++)
		if (registry[i].type == type)
			return registry[i].schema;
	return NULL;
}
