/*
 * names.c — names of the enums of proto/, for topics, logs, JSON and CLIs.
 * The tables are indexed by enum value; the wire carries numbers only.
 */
#include <strings.h>

#include "proto/msg.h"

#define NAME_OF(table, v) \
	((unsigned)(v) < sizeof(table) / sizeof(table[0]) && table[v] ? table[v] : "?")

static const char *const worker_states[] = { "idle", "busy", "draining" };
static const char *const liveness[] = { "alive", "stale", "dead" };
static const char *const job_states[] = {
	"pending", "running", "retrying", "succeeded", "failed", "killed",
};
static const char *const levels[] = { NULL, "ERROR", "WARN", "INFO", "DEBUG", "TRACE" };
static const char *const metric_types[] = { "counter", "gauge", "histogram" };
static const char *const boards[] = { "ansi", "ortho" };

_Static_assert(sizeof job_states / sizeof job_states[0] == KF_JOB_STATE_COUNT, "job state names");
_Static_assert(sizeof worker_states / sizeof worker_states[0] == KF_WORKER_STATE_COUNT, "names");
_Static_assert(sizeof liveness / sizeof liveness[0] == KF_WORKER_LIVENESS_COUNT, "names");
_Static_assert(sizeof boards / sizeof boards[0] == KF_MSG_BOARD_COUNT, "names");
_Static_assert(sizeof metric_types / sizeof metric_types[0] == KF_MSG_METRIC_TYPE_COUNT, "names");

const char *kf_worker_state_name(enum kf_worker_state s) { return NAME_OF(worker_states, s); }
const char *kf_worker_liveness_name(enum kf_worker_liveness l) { return NAME_OF(liveness, l); }
const char *kf_job_state_name(enum kf_job_state s) { return NAME_OF(job_states, s); }
const char *kf_msg_level_name(enum kf_msg_level l) { return NAME_OF(levels, l); }
const char *kf_msg_metric_type_name(enum kf_msg_metric_type t) { return NAME_OF(metric_types, t); }
const char *kf_msg_board_name(enum kf_msg_board b) { return NAME_OF(boards, b); }

static int lookup(const char *const *table, size_t n, const char *name)
{
	for (size_t i = 0; name && i < n; i++)
		if (table[i] && strcasecmp(table[i], name) == 0)
			return (int)i;
	return -1;
}

enum kf_err kf_job_state_parse(const char *name, enum kf_job_state *out)
{
	int i = lookup(job_states, KF_JOB_STATE_COUNT, name);
	if (i < 0)
		return KF_EINVAL;
	*out = (enum kf_job_state)i;
	return KF_OK;
}

enum kf_err kf_msg_level_parse(const char *name, enum kf_msg_level *out)
{
	int i = lookup(levels, sizeof levels / sizeof levels[0], name);
	if (i < 0)
		return KF_EINVAL;
	*out = (enum kf_msg_level)i;
	return KF_OK;
}

enum kf_err kf_msg_board_parse(const char *name, enum kf_msg_board *out)
{
	int i = lookup(boards, KF_MSG_BOARD_COUNT, name);
	if (i < 0)
		return KF_EINVAL;
	*out = (enum kf_msg_board)i;
	return KF_OK;
}

bool kf_job_state_final(enum kf_job_state s)
{
	return s == KF_JOB_SUCCEEDED || s == KF_JOB_FAILED || s == KF_JOB_KILLED;
}
