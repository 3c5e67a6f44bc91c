/*
 * Unit tests for proto/: every message type round-trips with every field
 * set and with its optional fields absent; encoder validation; names;
 * topics and the topic framing. Malformed input: test_proto_decode.c.
 *
 * The comparisons are written out field by field on purpose: they must not
 * share the schema tables with the codec, or a forgotten row would go
 * unnoticed in both directions.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/proto.h"

#define SENDER "worker-7@host.example"
#define TS 1732800000123456789ull

/* ---- comparison helpers ----------------------------------------------- */

static void str_eq(const char *want, const char *got)
{
	if (!want) {
		assert_null(got);
		return;
	}
	assert_non_null(got);
	assert_string_equal(want, got);
}

/* Bitwise: NaN and -0.0 must survive too. */
static void f64_eq(double want, double got)
{
	assert_memory_equal(&want, &got, sizeof want);
}

static void value_eq(const struct kf_msg_value *w, const struct kf_msg_value *g)
{
	assert_int_equal(w->kind, g->kind);
	switch (w->kind) {
	case KF_VALUE_STR: str_eq(w->str, g->str); break;
	case KF_VALUE_I64: assert_true(w->i64 == g->i64); break;
	case KF_VALUE_U64: assert_true(w->u64 == g->u64); break;
	case KF_VALUE_F64: f64_eq(w->f64, g->f64); break;
	default: assert_int_equal(w->b, g->b); break;
	}
}

static void fields_eq(const struct kf_msg_field *w, size_t nw, const struct kf_msg_field *g,
	size_t ng)
{
	assert_int_equal(nw, ng);
	if (!nw)
		assert_null(g);
	for (size_t i = 0; i < nw; i++) {
		str_eq(w[i].name, g[i].name);
		value_eq(&w[i].value, &g[i].value);
	}
}

static void log_eq(const struct kf_msg_log *w, const struct kf_msg_log *g)
{
	assert_int_equal(w->level, g->level);
	str_eq(w->target, g->target);
	str_eq(w->message, g->message);
	fields_eq(w->fields, w->n_fields, g->fields, g->n_fields);
	assert_int_equal(w->n_spans, g->n_spans);
	for (size_t i = 0; i < w->n_spans; i++) {
		str_eq(w->spans[i].name, g->spans[i].name);
		fields_eq(w->spans[i].fields, w->spans[i].n_fields, g->spans[i].fields,
			g->spans[i].n_fields);
	}
	assert_true(w->ts_ns == g->ts_ns);
	str_eq(w->source, g->source);
}

static void heartbeat_eq(const struct kf_msg_heartbeat *w, const struct kf_msg_heartbeat *g)
{
	str_eq(w->worker_id, g->worker_id);
	str_eq(w->host, g->host);
	assert_int_equal(w->pid, g->pid);
	assert_true(w->incarnation == g->incarnation);
	assert_int_equal(w->state, g->state);
	f64_eq(w->cpu_process, g->cpu_process);
	f64_eq(w->cpu_host, g->cpu_host);
	assert_true(w->rss_bytes == g->rss_bytes);
	assert_int_equal(w->slots_total, g->slots_total);
	assert_int_equal(w->slots_busy, g->slots_busy);
	assert_true(w->job_id == g->job_id);
	f64_eq(w->job_progress, g->job_progress);
	f64_eq(w->job_best_cost, g->job_best_cost);
	assert_true(w->uptime_ms == g->uptime_ms);
	assert_int_equal(w->held_listed, g->held_listed);
	assert_int_equal(w->n_held, g->n_held);
	for (size_t i = 0; i < w->n_held; i++) {
		assert_true(w->held[i].job_id == g->held[i].job_id);
		assert_true(w->held[i].lease_token == g->held[i].lease_token);
	}
}

static void series_eq(const struct kf_msg_series *w, const struct kf_msg_series *g)
{
	str_eq(w->name, g->name);
	assert_int_equal(w->type, g->type);
	str_eq(w->help, g->help);
	assert_int_equal(w->n_labels, g->n_labels);
	for (size_t i = 0; i < w->n_labels; i++) {
		str_eq(w->labels[i].name, g->labels[i].name);
		str_eq(w->labels[i].value, g->labels[i].value);
	}
	f64_eq(w->value, g->value);
	assert_int_equal(w->n_buckets, g->n_buckets);
	for (size_t i = 0; i < w->n_buckets; i++) {
		f64_eq(w->bucket_le[i], g->bucket_le[i]);
		assert_true(w->bucket_count[i] == g->bucket_count[i]);
	}
	f64_eq(w->sum, g->sum);
	assert_true(w->count == g->count);
}

static void metric_eq(const struct kf_msg_metric *w, const struct kf_msg_metric *g)
{
	str_eq(w->source, g->source);
	assert_true(w->incarnation == g->incarnation);
	assert_int_equal(w->full, g->full);
	assert_int_equal(w->n_series, g->n_series);
	for (size_t i = 0; i < w->n_series; i++)
		series_eq(&w->series[i], &g->series[i]);
}

static void job_event_eq(const struct kf_msg_job_event *w, const struct kf_msg_job_event *g)
{
	assert_true(w->job_id == g->job_id);
	assert_int_equal(w->state, g->state);
	assert_int_equal(w->attempt, g->attempt);
	str_eq(w->worker_id, g->worker_id);
	f64_eq(w->progress, g->progress);
	f64_eq(w->best_cost, g->best_cost);
	str_eq(w->message, g->message);
}

static void cluster_eq(const struct kf_msg_cluster_status *w, const struct kf_msg_cluster_status *g)
{
	assert_int_equal(w->n_workers, g->n_workers);
	for (size_t i = 0; i < w->n_workers; i++) {
		const struct kf_msg_worker_status *a = &w->workers[i], *b = &g->workers[i];
		str_eq(a->worker_id, b->worker_id);
		str_eq(a->host, b->host);
		assert_int_equal(a->pid, b->pid);
		assert_true(a->incarnation == b->incarnation);
		assert_int_equal(a->liveness, b->liveness);
		assert_int_equal(a->state, b->state);
		f64_eq(a->cpu_process, b->cpu_process);
		f64_eq(a->cpu_host, b->cpu_host);
		assert_true(a->rss_bytes == b->rss_bytes);
		assert_int_equal(a->slots_total, b->slots_total);
		assert_int_equal(a->slots_busy, b->slots_busy);
		assert_true(a->job_id == b->job_id);
		f64_eq(a->job_progress, b->job_progress);
		assert_true(a->last_heartbeat_age_ms == b->last_heartbeat_age_ms);
		assert_int_equal(a->unheard, b->unheard);
	}
	for (int s = 0; s < KF_JOB_STATE_COUNT; s++)
		assert_true(w->job_counts[s] == g->job_counts[s]);
}

static void named_eq(const struct kf_msg_named_value *w, size_t nw,
	const struct kf_msg_named_value *g, size_t ng)
{
	assert_int_equal(nw, ng);
	for (size_t i = 0; i < nw; i++) {
		str_eq(w[i].name, g[i].name);
		f64_eq(w[i].value, g[i].value);
	}
}

static void params_eq(const struct kf_msg_job_params *w, const struct kf_msg_job_params *g)
{
	str_eq(w->corpus, g->corpus);
	assert_int_equal(w->board, g->board);
	str_eq(w->start_layout, g->start_layout);
	assert_true(w->steps == g->steps);
	assert_true(w->seed == g->seed);
	f64_eq(w->start_temp, g->start_temp);
	assert_int_equal(w->restarts, g->restarts);
	str_eq(w->pinned, g->pinned);
	named_eq(w->weights, w->n_weights, g->weights, g->n_weights);
	assert_true(w->deadline_ms == g->deadline_ms);
	assert_int_equal(w->max_attempts, g->max_attempts);
	assert_int_equal(w->priority, g->priority);
}

static void result_eq(const struct kf_msg_job_result *w, const struct kf_msg_job_result *g)
{
	if (!w) {
		assert_null(g);
		return;
	}
	assert_non_null(g);
	str_eq(w->layout, g->layout);
	f64_eq(w->cost, g->cost);
	named_eq(w->stats, w->n_stats, g->stats, g->n_stats);
	for (int i = 0; i < KF_MSG_FINGERS; i++)
		f64_eq(w->finger_usage[i], g->finger_usage[i]);
	assert_true(w->steps == g->steps);
	f64_eq(w->steps_per_sec, g->steps_per_sec);
	assert_true(w->elapsed_ms == g->elapsed_ms);
}

static void job_eq(const struct kf_msg_job *w, const struct kf_msg_job *g)
{
	if (!w) {
		assert_null(g);
		return;
	}
	assert_non_null(g);
	assert_true(w->id == g->id);
	assert_int_equal(w->state, g->state);
	assert_int_equal(w->attempt, g->attempt);
	assert_int_equal(w->max_attempts, g->max_attempts);
	assert_int_equal(w->priority, g->priority);
	str_eq(w->worker_id, g->worker_id);
	f64_eq(w->progress, g->progress);
	f64_eq(w->best_cost, g->best_cost);
	params_eq(&w->params, &g->params);
	result_eq(w->result, g->result);
	assert_int_equal(w->n_errors, g->n_errors);
	for (size_t i = 0; i < w->n_errors; i++) {
		assert_int_equal(w->errors[i].attempt, g->errors[i].attempt);
		str_eq(w->errors[i].message, g->errors[i].message);
		assert_true(w->errors[i].at_ns == g->errors[i].at_ns);
	}
	assert_true(w->created_ns == g->created_ns);
	assert_true(w->started_ns == g->started_ns);
	assert_true(w->finished_ns == g->finished_ns);
}

static void summary_eq(const struct kf_msg_job_summary *w, const struct kf_msg_job_summary *g)
{
	assert_true(w->id == g->id);
	assert_int_equal(w->state, g->state);
	assert_int_equal(w->attempt, g->attempt);
	assert_int_equal(w->max_attempts, g->max_attempts);
	assert_int_equal(w->priority, g->priority);
	str_eq(w->worker_id, g->worker_id);
	str_eq(w->corpus, g->corpus);
	f64_eq(w->progress, g->progress);
	f64_eq(w->best_cost, g->best_cost);
	str_eq(w->layout, g->layout);
	str_eq(w->last_error, g->last_error);
	assert_true(w->created_ns == g->created_ns);
	assert_true(w->started_ns == g->started_ns);
	assert_true(w->finished_ns == g->finished_ns);
}

static void lease_eq(const struct kf_msg_lease *w, const struct kf_msg_lease *g)
{
	if (!w) {
		assert_null(g);
		return;
	}
	assert_non_null(g);
	assert_true(w->job_id == g->job_id);
	assert_int_equal(w->attempt, g->attempt);
	assert_true(w->lease_token == g->lease_token);
	params_eq(&w->params, &g->params);
}

static void req_eq(const struct kf_msg_req *w, const struct kf_msg_req *g)
{
	assert_true(w->id.client == g->id.client);
	assert_true(w->id.seq == g->id.seq);
	str_eq(w->auth_token, g->auth_token);
}

static void rep_eq(const struct kf_msg_rep *w, const struct kf_msg_rep *g)
{
	assert_true(w->id.client == g->id.client);
	assert_true(w->id.seq == g->id.seq);
	assert_int_equal(w->status, g->status);
	str_eq(w->error, g->error);
}

/* The body of every type, compared by the test's own knowledge of it. */
static void body_eq(const struct kf_msg *w, const struct kf_msg *g)
{
	const struct kf_msg_req *wq = kf_msg_request(w);
	const struct kf_msg_rep *wp = kf_msg_reply(w);
	if (wq)
		req_eq(wq, kf_msg_request(g));
	if (wp)
		rep_eq(wp, kf_msg_reply(g));
	switch (w->type) {
	case KF_MSG_HEARTBEAT: heartbeat_eq(&w->heartbeat, &g->heartbeat); break;
	case KF_MSG_LOG: log_eq(&w->log, &g->log); break;
	case KF_MSG_METRIC: metric_eq(&w->metric, &g->metric); break;
	case KF_MSG_JOB_EVENT: job_event_eq(&w->job_event, &g->job_event); break;
	case KF_MSG_CLUSTER_STATUS: cluster_eq(&w->cluster_status, &g->cluster_status); break;
	case KF_MSG_COMMAND:
		str_eq(w->command.worker_id, g->command.worker_id);
		assert_int_equal(w->command.action, g->command.action);
		assert_true(w->command.job_id == g->command.job_id);
		assert_true(w->command.lease_token == g->command.lease_token);
		break;
	case KF_MSG_HELLO_REQ:
		str_eq(w->hello_req.worker_id, g->hello_req.worker_id);
		str_eq(w->hello_req.host, g->hello_req.host);
		assert_int_equal(w->hello_req.pid, g->hello_req.pid);
		assert_int_equal(w->hello_req.slots, g->hello_req.slots);
		assert_true(w->hello_req.incarnation == g->hello_req.incarnation);
		str_eq(w->hello_req.version, g->hello_req.version);
		break;
	case KF_MSG_HELLO_REP:
		assert_int_equal(w->hello_rep.heartbeat_ms, g->hello_rep.heartbeat_ms);
		break;
	case KF_MSG_LEASE_REQ:
		str_eq(w->lease_req.worker_id, g->lease_req.worker_id);
		assert_int_equal(w->lease_req.wait_ms, g->lease_req.wait_ms);
		assert_true(w->lease_req.incarnation == g->lease_req.incarnation);
		break;
	case KF_MSG_LEASE_REP:
		lease_eq(w->lease_rep.lease, g->lease_rep.lease);
		break;
	case KF_MSG_PROGRESS_REQ: {
		const struct kf_msg_progress_req *a = &w->progress_req, *b = &g->progress_req;
		assert_true(a->job_id == b->job_id);
		assert_true(a->lease_token == b->lease_token);
		assert_true(a->step == b->step);
		f64_eq(a->temperature, b->temperature);
		f64_eq(a->cost, b->cost);
		f64_eq(a->best_cost, b->best_cost);
		break;
	}
	case KF_MSG_PROGRESS_REP:
		assert_int_equal(w->progress_rep.cancel, g->progress_rep.cancel);
		assert_int_equal(w->progress_rep.drop, g->progress_rep.drop);
		break;
	case KF_MSG_COMPLETE_REQ:
		assert_true(w->complete_req.job_id == g->complete_req.job_id);
		assert_true(w->complete_req.lease_token == g->complete_req.lease_token);
		assert_int_equal(w->complete_req.outcome, g->complete_req.outcome);
		result_eq(w->complete_req.result, g->complete_req.result);
		str_eq(w->complete_req.error, g->complete_req.error);
		assert_int_equal(w->complete_req.released, g->complete_req.released);
		assert_int_equal(w->complete_req.lease_next, g->complete_req.lease_next);
		assert_int_equal(w->complete_req.lease_next_wait_ms, g->complete_req.lease_next_wait_ms);
		str_eq(w->complete_req.worker_id, g->complete_req.worker_id);
		assert_true(w->complete_req.incarnation == g->complete_req.incarnation);
		assert_int_equal(w->complete_req.expired, g->complete_req.expired);
		break;
	case KF_MSG_COMPLETE_REP:
		assert_int_equal(w->complete_rep.drop, g->complete_rep.drop);
		lease_eq(w->complete_rep.lease, g->complete_rep.lease);
		break;
	case KF_MSG_SUBMIT_REQ: params_eq(&w->submit_req.params, &g->submit_req.params); break;
	case KF_MSG_SUBMIT_REP: assert_true(w->submit_rep.job_id == g->submit_rep.job_id); break;
	case KF_MSG_LIST_REQ:
		assert_int_equal(w->list_req.state_mask, g->list_req.state_mask);
		assert_true(w->list_req.after_id == g->list_req.after_id);
		assert_int_equal(w->list_req.offset, g->list_req.offset);
		assert_int_equal(w->list_req.limit, g->list_req.limit);
		break;
	case KF_MSG_LIST_REP:
		assert_int_equal(w->list_rep.n_jobs, g->list_rep.n_jobs);
		for (size_t i = 0; i < w->list_rep.n_jobs; i++)
			summary_eq(&w->list_rep.jobs[i], &g->list_rep.jobs[i]);
		assert_true(w->list_rep.total == g->list_rep.total);
		break;
	case KF_MSG_GET_REQ: assert_true(w->get_req.job_id == g->get_req.job_id); break;
	case KF_MSG_GET_REP: job_eq(w->get_rep.job, g->get_rep.job); break;
	case KF_MSG_KILL_REQ:
	case KF_MSG_RETRY_REQ: assert_true(w->kill_req.job_id == g->kill_req.job_id); break;
	case KF_MSG_KILL_REP:
	case KF_MSG_RETRY_REP: assert_int_equal(w->kill_rep.state, g->kill_rep.state); break;
	case KF_MSG_CLUSTER_REQ: break;
	case KF_MSG_CLUSTER_REP: cluster_eq(&w->cluster_rep.status, &g->cluster_rep.status); break;
	case KF_MSG_LOG_TAIL_REQ:
		assert_int_equal(w->log_tail_req.count, g->log_tail_req.count);
		assert_int_equal(w->log_tail_req.min_level, g->log_tail_req.min_level);
		str_eq(w->log_tail_req.source, g->log_tail_req.source);
		break;
	case KF_MSG_LOG_TAIL_REP:
		assert_int_equal(w->log_tail_rep.n_events, g->log_tail_rep.n_events);
		for (size_t i = 0; i < w->log_tail_rep.n_events; i++)
			log_eq(&w->log_tail_rep.events[i], &g->log_tail_rep.events[i]);
		break;
	case KF_MSG_DRAIN_REQ: str_eq(w->drain_req.worker_id, g->drain_req.worker_id); break;
	case KF_MSG_DRAIN_REP:
		assert_int_equal(w->drain_rep.liveness, g->drain_rep.liveness);
		assert_int_equal(w->drain_rep.leases_ended, g->drain_rep.leases_ended);
		break;
	case KF_MSG_ERROR_REP: break;
	default: fail_msg("type %d not covered by body_eq", w->type);
	}
}

/* Encodes, decodes, compares; checks that re-encoding gives the same bytes. */
static void roundtrip(const struct kf_msg *in, bool reencode_same)
{
	struct kf_strbuf sb = KF_STRBUF_INIT, again = KF_STRBUF_INIT, why = KF_STRBUF_INIT;
	struct kf_msg *out = NULL;
	assert_int_equal(kf_msg_encode(in, &sb), KF_OK);
	enum kf_err err = kf_msg_decode(sb.buf, sb.len, &out, &why);
	if (err)
		fail_msg("%s: %s (%s)", kf_msg_type_name(in->type), kf_errname(err), why.buf);
	assert_int_equal(out->major, KF_PROTO_MAJOR);
	assert_int_equal(out->minor, KF_PROTO_MINOR);
	assert_int_equal(out->type, in->type);
	str_eq(in->sender, out->sender);
	assert_true(out->seq == in->seq);
	assert_true(out->ts_ns == in->ts_ns);
	assert_null(out->topic);
	body_eq(in, out);
	if (reencode_same) {
		assert_int_equal(kf_msg_encode(out, &again), KF_OK);
		assert_int_equal(again.len, sb.len);
		assert_memory_equal(again.buf, sb.buf, sb.len);
	}
	kf_msg_free(out);
	kf_strbuf_release(&sb);
	kf_strbuf_release(&again);
	kf_strbuf_release(&why);
}

static void init(struct kf_msg *m, enum kf_msg_type type)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
	m->sender = SENDER;
	m->seq = UINT64_MAX - 3;
	m->ts_ns = TS;
}

/* ---- fixtures ------------------------------------------------------------ */

static const struct kf_msg_field some_fields[] = {
	{ "path", { .kind = KF_VALUE_STR, .str = "/tmp/caf\xc3\xa9 \xe2\x9c\x93" } },
	{ "delta", { .kind = KF_VALUE_I64, .i64 = INT64_MIN } },
	{ "count", { .kind = KF_VALUE_U64, .u64 = UINT64_MAX } },
	{ "ratio", { .kind = KF_VALUE_F64, .f64 = -0.125 } },
	{ "ok", { .kind = KF_VALUE_BOOL, .b = true } },
	{ "empty", { .kind = KF_VALUE_STR, .str = "" } },
};
static const struct kf_msg_field span_fields[] = {
	{ "job_id", { .kind = KF_VALUE_U64, .u64 = 42 } },
	{ "attempt", { .kind = KF_VALUE_I64, .i64 = 2 } },
};
static const struct kf_msg_span some_spans[] = {
	{ "job_execution", span_fields, 2 },
	{ "annealing_loop", NULL, 0 },
};

static const struct kf_msg_log full_log = {
	.level = KF_MSG_LEVEL_WARN,
	.target = "keyforge::worker::anneal",
	.message = "job retrying \"soon\"\n\ttab",
	.fields = some_fields, .n_fields = 6,
	.spans = some_spans, .n_spans = 2,
	.ts_ns = TS - 5,
	.source = "worker-3",
};

static const struct kf_msg_named_value weights[] = { { "sfb", 3.5 }, { "lsb", -1e-300 } };
static const struct kf_msg_named_value stats[] = {
	{ "sfb", 0.91 }, { "sfs", 5.5 }, { "lsb", 1.25 }, { "scissors", 0.1 },
	{ "alternate", 31.0 }, { "alt_sfs", 4.0 }, { "inroll", 20.0 }, { "outroll", 18.0 },
	{ "onehand", 2.0 }, { "redirect", 3.0 }, { "bad_redirect", 0.5 }, { "home_row", 70.0 },
	{ "left_hand", 48.0 },
};

/* A macro as well as an object: C11 does not let one static object initialise
 * another (GCC allows it as an extension, clang does not). */
#define FULL_PARAMS { \
	.corpus = "/work/shared/corpora/shai.json", .board = KF_MSG_BOARD_ORTHO, \
	.start_layout = "qwertyuiopasdfghjkl;zxcvbnm,./", .steps = 5000000000ull, \
	.seed = 0xdeadbeefcafef00dull, .start_temp = 12.75, .restarts = 3, .pinned = "aeiou", \
	.weights = weights, .n_weights = 2, .deadline_ms = 3600000, .max_attempts = 5, \
	.priority = -7, \
}
static const struct kf_msg_job_params full_params = FULL_PARAMS;
static const struct kf_msg_job_params min_params = { .corpus = "shai", .steps = 1 };

static const struct kf_msg_job_result full_result = {
	.layout = "flhvzqwuoysrntkcdeaixjbmgp,./;", .cost = 123.456,
	.stats = stats, .n_stats = 13,
	.finger_usage = { 7.5, 9.0, 14.0, 19.5, 0, 0, 18.0, 15.0, 10.0, 7.0 },
	.steps = 1000000, .steps_per_sec = 2.5e6, .elapsed_ms = 400,
};
static const struct kf_msg_job_result min_result = { .layout = "x" };

static const struct kf_msg_job_error errors[] = {
	{ 1, "worker \"w1\" died", TS - 100 }, { 2, "deadline passed", TS - 50 },
};

static const struct kf_msg_job full_job = {
	.id = 99, .state = KF_JOB_FAILED, .attempt = 2, .max_attempts = 3, .priority = 10,
	.worker_id = "w1", .progress = 0.75, .best_cost = 130.5, .params = FULL_PARAMS,
	.result = &full_result, .errors = errors, .n_errors = 2,
	.created_ns = TS - 1000, .started_ns = TS - 900, .finished_ns = TS - 10,
	.key = "nightly/2026-11-29",
};

static const struct kf_msg_worker_status workers[] = {
	{ "w1", "host-a", 1234, 0x1122334455667788ull, KF_WORKER_ALIVE, KF_WORKER_BUSY,
		1.5, 0.25, 1ull << 33, 4, 1, 77, 0.5, 800, false },
	{ "w2", "host-b", 99, 1, KF_WORKER_DEAD, KF_WORKER_DRAINING, 0, 1, 0, 1, 0, 0, 0,
		UINT64_MAX, true },
};

static const struct kf_msg_cluster_status full_cluster = {
	.workers = workers, .n_workers = 2, .job_counts = { 1, 2, 3, 4, 5, UINT64_MAX },
};

/* ---- round trips: telemetry -------------------------------------------- */

static void expect_encode(const struct kf_msg *m, enum kf_err want);

static void test_heartbeat(void **state)
{
	(void)state;
	struct kf_msg m;
	init(&m, KF_MSG_HEARTBEAT);
	m.heartbeat = (struct kf_msg_heartbeat){
		.worker_id = "w-1", .host = "h\xc3\xb6st", .pid = UINT32_MAX,
		.incarnation = 0x8000000000000001ull, .state = KF_WORKER_DRAINING,
		.cpu_process = 3.75, .cpu_host = 0.5, .rss_bytes = UINT64_MAX,
		.slots_total = 8, .slots_busy = 7, .job_id = 123456789012ull,
		.job_progress = 1.0 / 3.0, .job_best_cost = NAN, .uptime_ms = 86400000,
	};
	roundtrip(&m, true);
	m.heartbeat = (struct kf_msg_heartbeat){ .worker_id = "", .host = "" };
	roundtrip(&m, true);
	/* 1.2: the attempts held — several, or none (listed, and empty). */
	static struct kf_msg_held_job held[KF_MSG_MAX_HELD + 1];
	for (size_t i = 0; i <= KF_MSG_MAX_HELD; i++)
		held[i] = (struct kf_msg_held_job){ 1000 + i, UINT64_MAX - i };
	m.heartbeat = (struct kf_msg_heartbeat){ .worker_id = "w", .host = "h",
		.held_listed = true, .held = held, .n_held = 3 };
	roundtrip(&m, true);
	m.heartbeat.n_held = KF_MSG_MAX_HELD;
	roundtrip(&m, true);
	m.heartbeat.n_held = 0;
	roundtrip(&m, true);
	m.heartbeat.n_held = KF_MSG_MAX_HELD + 1;
	expect_encode(&m, KF_ETOOBIG);
}

static void test_log_full(void **state)
{
	(void)state;
	struct kf_msg m;
	init(&m, KF_MSG_LOG);
	m.log = full_log;
	roundtrip(&m, true);
}

static void test_log_minimal_takes_envelope_defaults(void **state)
{
	(void)state;
	struct kf_msg m;
	struct kf_strbuf sb = KF_STRBUF_INIT;
	struct kf_msg *out;
	init(&m, KF_MSG_LOG);
	m.log = (struct kf_msg_log){ .level = KF_MSG_LEVEL_TRACE, .target = "t", .message = "" };
	assert_int_equal(kf_msg_encode(&m, &sb), KF_OK);
	assert_int_equal(kf_msg_decode(sb.buf, sb.len, &out, NULL), KF_OK);
	assert_int_equal(out->log.level, KF_MSG_LEVEL_TRACE);
	assert_string_equal(out->log.message, "");
	assert_int_equal(out->log.n_fields, 0);
	assert_null(out->log.fields);
	assert_int_equal(out->log.n_spans, 0);
	assert_true(out->log.ts_ns == TS);
	assert_string_equal(out->log.source, SENDER);
	kf_msg_free(out);
	kf_strbuf_release(&sb);
}

static void test_metric(void **state)
{
	(void)state;
	static const struct kf_msg_label labels[] = { { "status", "success" }, { "le", "a\"b\\c\n" } };
	static const double le[] = { 10, 100, 1e3, 1e4 };
	static const uint64_t cnt[] = { 1, 5, 9, 9 };
	const struct kf_msg_series series[] = {
		{ .name = "keyforge_jobs_total", .type = KF_MSG_METRIC_COUNTER, .help = "Jobs.",
			.labels = labels, .n_labels = 2, .value = 17 },
		{ .name = "keyforge_jobs_active", .type = KF_MSG_METRIC_GAUGE, .value = -2.5 },
		{ .name = "keyforge_score_latency_ns", .type = KF_MSG_METRIC_HISTOGRAM,
			.help = "Score time.", .bucket_le = le, .bucket_count = cnt, .n_buckets = 4,
			.sum = 12345.5, .count = 10 },
		{ .name = "g_inf", .type = KF_MSG_METRIC_GAUGE, .value = INFINITY },
	};
	struct kf_msg m;
	init(&m, KF_MSG_METRIC);
	m.metric = (struct kf_msg_metric){ .source = "broker", .incarnation = 5, .full = true,
		.series = series, .n_series = 4 };
	roundtrip(&m, true);
	m.metric = (struct kf_msg_metric){ .source = "w" };
	roundtrip(&m, true);
}

static void test_job_event(void **state)
{
	(void)state;
	struct kf_msg m;
	init(&m, KF_MSG_JOB_EVENT);
	m.job_event = (struct kf_msg_job_event){ .job_id = 42, .state = KF_JOB_RETRYING,
		.attempt = 2, .worker_id = "w1", .progress = 0.25, .best_cost = 99.5,
		.message = "worker w1 died" };
	roundtrip(&m, true);
	m.job_event = (struct kf_msg_job_event){ .job_id = 1, .state = KF_JOB_KILLED };
	roundtrip(&m, true);
}

static void test_cluster_status(void **state)
{
	(void)state;
	struct kf_msg m;
	init(&m, KF_MSG_CLUSTER_STATUS);
	m.cluster_status = full_cluster;
	roundtrip(&m, true);
	m.cluster_status = (struct kf_msg_cluster_status){ 0 };
	roundtrip(&m, true);
}

static void test_command(void **state)
{
	(void)state;
	struct kf_msg m;
	init(&m, KF_MSG_COMMAND);
	m.command = (struct kf_msg_command){ "w9", KF_CMD_CANCEL, 42, 0xabcdefull, false, NULL };
	roundtrip(&m, true);
	m.command = (struct kf_msg_command){ "w9", KF_CMD_CANCEL, 42, 7, true, "worker dead" };
	roundtrip(&m, true);
	m.command = (struct kf_msg_command){ "w9", KF_CMD_DRAIN, 0, 0, false, NULL };
	roundtrip(&m, true);
}

/* ---- round trips: RPC ------------------------------------------------- */

static const struct kf_msg_req full_req = { { 0xfeedfacecafebeefull, 17 }, "0123456789abcdef" };
static const struct kf_msg_req min_req = { { 1, 0 }, NULL };
static const struct kf_msg_rep ok_rep = { { 0xfeedfacecafebeefull, 17 }, KF_OK, NULL };
static const struct kf_msg_rep err_rep = { { 3, 4 }, KF_ESTALE, "lease 7 is stale" };

static void test_hello(void **state)
{
	(void)state;
	struct kf_msg m;
	init(&m, KF_MSG_HELLO_REQ);
	m.hello_req = (struct kf_msg_hello_req){ full_req, "w1", "host-a", 4242, 4, 777, "0.1.0" };
	roundtrip(&m, true);
	m.hello_req.req = min_req;
	roundtrip(&m, true);
	init(&m, KF_MSG_HELLO_REP);
	m.hello_rep = (struct kf_msg_hello_rep){ ok_rep, 1000 };
	roundtrip(&m, true);
	m.hello_rep.rep = err_rep;
	roundtrip(&m, true);
}

static void test_lease(void **state)
{
	(void)state;
	struct kf_msg m;
	init(&m, KF_MSG_LEASE_REQ);
	m.lease_req = (struct kf_msg_lease_req){ full_req, "w1", 5000, 0 };
	roundtrip(&m, true);
	/* 1.2: the leasing process; absent (0) from older workers. */
	m.lease_req.incarnation = 0xfedcba9876543210ull;
	roundtrip(&m, true);
	const struct kf_msg_lease lease = { 42, 3, 0x0102030405060708ull, full_params };
	init(&m, KF_MSG_LEASE_REP);
	m.lease_rep = (struct kf_msg_lease_rep){ ok_rep, &lease };
	roundtrip(&m, true);
	const struct kf_msg_lease lease_min = { 1, 1, 1, min_params };
	m.lease_rep.lease = &lease_min;
	roundtrip(&m, true);
	m.lease_rep.lease = NULL; /* no job right now */
	roundtrip(&m, true);
}

static void test_progress(void **state)
{
	(void)state;
	struct kf_msg m;
	init(&m, KF_MSG_PROGRESS_REQ);
	m.progress_req = (struct kf_msg_progress_req){ full_req, 42, 77, 123456, 0.001, 140.0,
		130.25 };
	roundtrip(&m, true);
	init(&m, KF_MSG_PROGRESS_REP);
	m.progress_rep = (struct kf_msg_progress_rep){ ok_rep, true, false };
	roundtrip(&m, true);
	m.progress_rep = (struct kf_msg_progress_rep){ err_rep, false, true };
	roundtrip(&m, true);
}

static void test_complete(void **state)
{
	(void)state;
	struct kf_msg m;
	init(&m, KF_MSG_COMPLETE_REQ);
	m.complete_req = (struct kf_msg_complete_req){ full_req, 42, 77, KF_JOB_KILLED,
		&full_result, "killed by operator", false, false, 0, NULL, 0, false };
	roundtrip(&m, true);
	m.complete_req = (struct kf_msg_complete_req){ min_req, 42, 77, KF_JOB_FAILED, NULL, NULL,
		false, false, 0, NULL, 0, false };
	roundtrip(&m, true);
	m.complete_req = (struct kf_msg_complete_req){ min_req, 1, 1, KF_JOB_SUCCEEDED,
		&min_result, NULL, false, false, 0, NULL, 0, false };
	roundtrip(&m, true);
	init(&m, KF_MSG_COMPLETE_REP);
	m.complete_rep = (struct kf_msg_complete_rep){ ok_rep, true, NULL };
	roundtrip(&m, true);
}

/* Protocol 1.1: the released outcome (a flag riding on "failed") and
 * complete-with-next (lease_next in the request, the lease in the reply). */
static void test_complete_1_1(void **state)
{
	(void)state;
	struct kf_msg m, *out;
	struct kf_strbuf sb = KF_STRBUF_INIT;

	init(&m, KF_MSG_COMPLETE_REQ);
	m.complete_req = (struct kf_msg_complete_req){ min_req, 42, 77, KF_JOB_FAILED, NULL,
		"handed back", .released = true };
	roundtrip(&m, true);
	assert_int_equal(kf_msg_encode(&m, &sb), KF_OK);
	assert_int_equal(kf_msg_decode(sb.buf, sb.len, &out, NULL), KF_OK);
	assert_true(out->complete_req.released);
	assert_int_equal(out->complete_req.outcome, KF_JOB_FAILED);
	assert_false(out->complete_req.lease_next);
	assert_null(out->complete_req.worker_id);
	kf_msg_free(out);
	kf_strbuf_release(&sb);
	/* released only with "failed", which an older broker understands. */
	m.complete_req.outcome = KF_JOB_SUCCEEDED;
	expect_encode(&m, KF_ERANGE);
	m.complete_req.outcome = KF_JOB_KILLED;
	expect_encode(&m, KF_ERANGE);

	m.complete_req = (struct kf_msg_complete_req){ full_req, 42, 77, KF_JOB_SUCCEEDED,
		&min_result, NULL, .lease_next = true, .lease_next_wait_ms = 1500,
		.worker_id = "w1" };
	roundtrip(&m, true);
	m.complete_req.incarnation = 0xfedcba9876543210ull; /* 1.2 */
	roundtrip(&m, true);
	m.complete_req.lease_next_wait_ms = 0; /* "answer at once" is still lease_next */
	roundtrip(&m, true);
	m.complete_req.worker_id = NULL;      /* who leases? */
	expect_encode(&m, KF_EMISSING);

	const struct kf_msg_lease lease = { 43, 1, 0x0102030405060708ull, full_params };
	init(&m, KF_MSG_COMPLETE_REP);
	m.complete_rep = (struct kf_msg_complete_rep){ ok_rep, false, &lease };
	roundtrip(&m, true);
	m.complete_rep.drop = true;           /* the claim is independent of the drop */
	roundtrip(&m, true);
}

/* Protocol 1.3: the expired outcome, a flag riding on "failed" like
 * released, with the best result so far (roundtrip compares every field,
 * expired and released too). */
static void test_complete_1_3(void **state)
{
	(void)state;
	struct kf_msg m;

	init(&m, KF_MSG_COMPLETE_REQ);
	m.complete_req = (struct kf_msg_complete_req){ min_req, 42, 77, KF_JOB_FAILED,
		&full_result, "deadline exceeded: stopped after 1500 ms", .expired = true };
	roundtrip(&m, true);
	/* Only with "failed", which an older broker understands ... */
	m.complete_req.outcome = KF_JOB_SUCCEEDED;
	expect_encode(&m, KF_ERANGE);
	m.complete_req.outcome = KF_JOB_KILLED;
	expect_encode(&m, KF_ERANGE);
	/* ... and an attempt ends one way: not also handed back. */
	m.complete_req.outcome = KF_JOB_FAILED;
	m.complete_req.released = true;
	expect_encode(&m, KF_ERANGE);
}

static void test_submit(void **state)
{
	(void)state;
	struct kf_msg m;
	char key[KF_MSG_MAX_SUBMIT_KEY + 2];

	init(&m, KF_MSG_SUBMIT_REQ);
	m.submit_req = (struct kf_msg_submit_req){ full_req, full_params, "nightly/2026-11-29" };
	roundtrip(&m, true);
	m.submit_req = (struct kf_msg_submit_req){ min_req, min_params, NULL };
	roundtrip(&m, true);
	/* The key (1.5) is bounded: the broker stores it in a unique index. */
	memset(key, 'k', sizeof key - 1);
	key[sizeof key - 1] = '\0';
	m.submit_req.key = key;
	expect_encode(&m, KF_ETOOBIG);
	key[KF_MSG_MAX_SUBMIT_KEY] = '\0';
	roundtrip(&m, true);
	init(&m, KF_MSG_SUBMIT_REP);
	m.submit_rep = (struct kf_msg_submit_rep){ ok_rep, UINT64_MAX, false };
	roundtrip(&m, true);
	m.submit_rep.existing = true;   /* 1.5 */
	roundtrip(&m, true);
}

static void test_list(void **state)
{
	(void)state;
	const struct kf_msg_job_summary jobs[] = {
		{ 7, KF_JOB_SUCCEEDED, 1, 3, 5, "w1", "shai", 1.0, 120.5,
			"flhvzqwuoysrntkcdeaixjbmgp,./;", "first try failed", 10, 20, 30 },
		{ 8, KF_JOB_PENDING, 0, 3, -1, NULL, "shai", 0, 0, NULL, NULL, 11, 0, 0 },
	};
	struct kf_msg m;
	init(&m, KF_MSG_LIST_REQ);
	m.list_req = (struct kf_msg_list_req){ full_req,
		KF_JOB_STATE_BIT(KF_JOB_PENDING) | KF_JOB_STATE_BIT(KF_JOB_FAILED), 6, 10, 50, false };
	roundtrip(&m, true);
	m.list_req.newest_first = true;  /* 1.4 */
	roundtrip(&m, true);
	init(&m, KF_MSG_LIST_REP);
	m.list_rep = (struct kf_msg_list_rep){ ok_rep, jobs, 2, 1000 };
	roundtrip(&m, true);
	m.list_rep = (struct kf_msg_list_rep){ ok_rep, NULL, 0, 0 };
	roundtrip(&m, true);
}

static void test_get(void **state)
{
	(void)state;
	struct kf_msg m;
	init(&m, KF_MSG_GET_REQ);
	m.get_req = (struct kf_msg_get_req){ full_req, 99 };
	roundtrip(&m, true);
	init(&m, KF_MSG_GET_REP);
	m.get_rep = (struct kf_msg_get_rep){ ok_rep, &full_job };
	roundtrip(&m, true);
	const struct kf_msg_job pending = { .id = 5, .params = min_params, .created_ns = 1 };
	m.get_rep.job = &pending;
	roundtrip(&m, true);
	m.get_rep = (struct kf_msg_get_rep){ { { 1, 2 }, KF_ENOENT, "no job 5" }, NULL };
	roundtrip(&m, true);
}

static void test_kill_retry(void **state)
{
	(void)state;
	struct kf_msg m;
	init(&m, KF_MSG_KILL_REQ);
	m.kill_req = (struct kf_msg_job_action_req){ full_req, 42 };
	roundtrip(&m, true);
	init(&m, KF_MSG_KILL_REP);
	m.kill_rep = (struct kf_msg_job_action_rep){ ok_rep, KF_JOB_KILLED };
	roundtrip(&m, true);
	init(&m, KF_MSG_RETRY_REQ);
	m.retry_req = (struct kf_msg_job_action_req){ min_req, 43 };
	roundtrip(&m, true);
	init(&m, KF_MSG_RETRY_REP);
	m.retry_rep = (struct kf_msg_job_action_rep){ err_rep, KF_JOB_RUNNING };
	roundtrip(&m, true);
}

static void test_cluster_rpc(void **state)
{
	(void)state;
	struct kf_msg m;
	init(&m, KF_MSG_CLUSTER_REQ);
	m.cluster_req.req = full_req;
	roundtrip(&m, true);
	init(&m, KF_MSG_CLUSTER_REP);
	m.cluster_rep = (struct kf_msg_cluster_rep){ ok_rep, full_cluster };
	roundtrip(&m, true);
}

static void test_log_tail(void **state)
{
	(void)state;
	const struct kf_msg_log events[] = {
		full_log,
		{ .level = KF_MSG_LEVEL_ERROR, .target = "keyforge::broker::db",
			.message = "database connection failed", .ts_ns = 1, .source = "broker" },
	};
	struct kf_msg m;
	init(&m, KF_MSG_LOG_TAIL_REQ);
	m.log_tail_req = (struct kf_msg_log_tail_req){ full_req, 500, KF_MSG_LEVEL_DEBUG, "w1" };
	roundtrip(&m, true);
	m.log_tail_req = (struct kf_msg_log_tail_req){ min_req, 10, KF_MSG_LEVEL_ERROR, NULL };
	roundtrip(&m, true);
	init(&m, KF_MSG_LOG_TAIL_REP);
	m.log_tail_rep = (struct kf_msg_log_tail_rep){ ok_rep, events, 2 };
	roundtrip(&m, true);
	m.log_tail_rep = (struct kf_msg_log_tail_rep){ ok_rep, NULL, 0 };
	roundtrip(&m, true);
}

static void test_drain_rpc(void **state)
{
	(void)state;
	struct kf_msg m;
	init(&m, KF_MSG_DRAIN_REQ);
	m.drain_req = (struct kf_msg_drain_req){ full_req, "w-7" };
	roundtrip(&m, true);
	init(&m, KF_MSG_DRAIN_REP);
	m.drain_rep = (struct kf_msg_drain_rep){ ok_rep, KF_WORKER_STALE, 3 };
	roundtrip(&m, true);
	m.drain_rep = (struct kf_msg_drain_rep){ err_rep, KF_WORKER_ALIVE, 0 };
	roundtrip(&m, true);
	/* A request names its worker: an empty id is the broker's to refuse,
	 * a missing one the decoder's. */
	assert_true(kf_msg_type_is_request(KF_MSG_DRAIN_REQ));
	assert_int_equal(kf_msg_reply_type(KF_MSG_DRAIN_REQ), KF_MSG_DRAIN_REP);
	assert_string_equal(kf_msg_type_name(KF_MSG_DRAIN_REP), "drain_rep");
}

static void test_error_rep(void **state)
{
	(void)state;
	struct kf_msg m;
	init(&m, KF_MSG_ERROR_REP);
	m.error_rep.rep = (struct kf_msg_rep){ { 0, 0 }, KF_EUNKNOWNTYPE, "unknown type 99" };
	roundtrip(&m, true);
	/* A status code this build does not know still passes through. */
	m.error_rep.rep.status = (enum kf_err)4242;
	roundtrip(&m, true);
}

/* ---- framing, buffers ------------------------------------------------ */

static void test_pub_framing(void **state)
{
	(void)state;
	struct kf_msg m;
	struct kf_msg *out;
	struct kf_strbuf sb = KF_STRBUF_INIT;
	char topic[KF_TOPIC_SIZE];
	init(&m, KF_MSG_LOG);
	m.log = full_log;
	kf_topic_log(topic, m.log.level, m.sender);
	assert_string_equal(topic, "log.WARN.worker-7@host.example");
	assert_int_equal(kf_msg_encode_pub(topic, &m, &sb), KF_OK);
	assert_int_equal(sb.buf[strlen(topic)], '\0');
	assert_int_equal(kf_msg_decode_pub(sb.buf, sb.len, &out, NULL), KF_OK);
	assert_string_equal(out->topic, topic);
	log_eq(&m.log, &out->log);
	kf_msg_free(out);
	/* The same bytes without the topic are not one envelope: "l" is a
	 * positive fixint followed by more bytes. */
	assert_int_equal(kf_msg_decode(sb.buf, sb.len, &out, NULL), KF_ETRAILING);
	assert_null(out);
	/* An invalid topic is refused and nothing is appended. */
	size_t len = sb.len;
	assert_int_equal(kf_msg_encode_pub("bad topic", &m, &sb), KF_ETOPIC);
	assert_int_equal(kf_msg_encode_pub("", &m, &sb), KF_ETOPIC);
	assert_int_equal(sb.len, len);
	kf_strbuf_release(&sb);
}

static void test_encode_to_buffer(void **state)
{
	(void)state;
	struct kf_msg m;
	struct kf_strbuf sb = KF_STRBUF_INIT;
	char buf[4096];
	size_t len = 99;
	init(&m, KF_MSG_GET_REQ);
	m.get_req = (struct kf_msg_get_req){ full_req, 99 };
	assert_int_equal(kf_msg_encode(&m, &sb), KF_OK);
	assert_int_equal(kf_msg_encode_to(&m, buf, sizeof buf, &len), KF_OK);
	assert_int_equal(len, sb.len);
	assert_memory_equal(buf, sb.buf, len);
	assert_int_equal(kf_msg_encode_to(&m, buf, sb.len - 1, &len), KF_ETOOBIG);
	assert_int_equal(len, 0);
	kf_strbuf_release(&sb);
}

/* ---- encoder validation -------------------------------------------------- */

static void expect_encode(const struct kf_msg *m, enum kf_err want)
{
	struct kf_strbuf sb = KF_STRBUF_INIT;
	kf_strbuf_addstr(&sb, "keep");
	assert_int_equal(kf_msg_encode(m, &sb), want);
	/* A failed encode leaves the buffer as it was. */
	assert_int_equal(sb.len, 4);
	assert_string_equal(sb.buf, "keep");
	kf_strbuf_release(&sb);
}

static void test_encode_rejects(void **state)
{
	(void)state;
	struct kf_msg m;
	static char long_name[KF_MSG_MAX_NAME + 2];
	memset(long_name, 'a', KF_MSG_MAX_NAME + 1);

	init(&m, (enum kf_msg_type)99);
	expect_encode(&m, KF_EUNKNOWNTYPE);

	init(&m, KF_MSG_HEARTBEAT);
	m.heartbeat = (struct kf_msg_heartbeat){ .worker_id = "w", .host = NULL };
	expect_encode(&m, KF_EINVAL);
	m.heartbeat.host = "\xff";
	expect_encode(&m, KF_EUTF8);
	m.heartbeat.host = long_name;
	expect_encode(&m, KF_ETOOBIG);
	m.heartbeat.host = "h";
	m.heartbeat.state = KF_WORKER_STATE_COUNT;
	expect_encode(&m, KF_ERANGE);
	m.sender = NULL;
	m.heartbeat.state = KF_WORKER_IDLE;
	expect_encode(&m, KF_EINVAL);

	init(&m, KF_MSG_LOG);
	m.log = (struct kf_msg_log){ .level = 0, .target = "t", .message = "m" };
	expect_encode(&m, KF_ERANGE);
	m.log.level = KF_MSG_LEVEL_INFO;
	m.log.n_fields = 1; /* count without an array */
	expect_encode(&m, KF_EINVAL);
	struct kf_msg_field many[KF_MSG_MAX_FIELDS + 1];
	for (int i = 0; i <= KF_MSG_MAX_FIELDS; i++)
		many[i] = (struct kf_msg_field){ "f", { .kind = KF_VALUE_BOOL } };
	m.log.fields = many;
	m.log.n_fields = KF_MSG_MAX_FIELDS + 1;
	expect_encode(&m, KF_ETOOBIG);
	m.log.n_fields = 1;
	many[0].value.kind = KF_VALUE_STR; /* with str NULL */
	expect_encode(&m, KF_EINVAL);

	init(&m, KF_MSG_COMPLETE_REQ);
	m.complete_req = (struct kf_msg_complete_req){ min_req, 1, 1, KF_JOB_RUNNING, NULL, NULL,
		false, false, 0, NULL, 0, false };
	expect_encode(&m, KF_ERANGE);
}

static void test_encode_oom_buffer(void **state)
{
	(void)state;
	struct kf_msg m;
	struct kf_strbuf sb = KF_STRBUF_INIT;
	init(&m, KF_MSG_GET_REQ);
	sb.oom = true;
	assert_int_equal(kf_msg_encode(&m, &sb), KF_ENOMEM);
}

/* ---- names, types, headers ------------------------------------------------ */

static void test_names(void **state)
{
	(void)state;
	enum kf_job_state js;
	enum kf_msg_level lv;
	enum kf_msg_board b;
	assert_string_equal(kf_job_state_name(KF_JOB_RETRYING), "retrying");
	assert_string_equal(kf_job_state_name((enum kf_job_state)77), "?");
	assert_string_equal(kf_worker_state_name(KF_WORKER_DRAINING), "draining");
	assert_string_equal(kf_worker_liveness_name(KF_WORKER_STALE), "stale");
	assert_string_equal(kf_msg_level_name(KF_MSG_LEVEL_WARN), "WARN");
	assert_string_equal(kf_msg_level_name((enum kf_msg_level)0), "?");
	assert_string_equal(kf_msg_metric_type_name(KF_MSG_METRIC_HISTOGRAM), "histogram");
	assert_string_equal(kf_msg_board_name(KF_MSG_BOARD_ORTHO), "ortho");
	assert_int_equal(kf_job_state_parse("Killed", &js), KF_OK);
	assert_int_equal(js, KF_JOB_KILLED);
	assert_int_equal(kf_job_state_parse("dead", &js), KF_EINVAL);
	assert_int_equal(kf_msg_level_parse("debug", &lv), KF_OK);
	assert_int_equal(lv, KF_MSG_LEVEL_DEBUG);
	assert_int_equal(kf_msg_level_parse("", &lv), KF_EINVAL);
	assert_int_equal(kf_msg_board_parse("ANSI", &b), KF_OK);
	assert_int_equal(b, KF_MSG_BOARD_ANSI);
	assert_true(kf_job_state_final(KF_JOB_SUCCEEDED));
	assert_false(kf_job_state_final(KF_JOB_RETRYING));
}

static void test_types(void **state)
{
	(void)state;
	assert_string_equal(kf_msg_type_name(KF_MSG_LOG_TAIL_REP), "log_tail_rep");
	assert_string_equal(kf_msg_type_name((enum kf_msg_type)7), "unknown");
	assert_true(kf_msg_type_known(KF_MSG_COMMAND));
	assert_false(kf_msg_type_known((enum kf_msg_type)56));
	assert_true(kf_msg_type_is_request(KF_MSG_LOG_TAIL_REQ));
	assert_false(kf_msg_type_is_request(KF_MSG_HEARTBEAT));
	assert_false(kf_msg_type_is_request(KF_MSG_HELLO_REP));
	assert_true(kf_msg_type_is_reply(KF_MSG_ERROR_REP));
	assert_true(kf_msg_type_is_reply(KF_MSG_KILL_REP));
	assert_false(kf_msg_type_is_reply(KF_MSG_KILL_REQ));
	assert_int_equal(kf_msg_reply_type(KF_MSG_SUBMIT_REQ), KF_MSG_SUBMIT_REP);
	assert_int_equal(kf_msg_reply_type(KF_MSG_HEARTBEAT), KF_MSG_ERROR_REP);

	struct kf_msg m;
	init(&m, KF_MSG_PROGRESS_REQ);
	m.progress_req.req.id.seq = 5;
	assert_ptr_equal(kf_msg_request(&m), &m.progress_req.req);
	assert_null(kf_msg_reply(&m));
	kf_msg_request_mut(&m)->id.client = 9;
	assert_true(m.progress_req.req.id.client == 9);
	init(&m, KF_MSG_LIST_REP);
	assert_ptr_equal(kf_msg_reply(&m), &m.list_rep.rep);
	kf_msg_reply_mut(&m)->status = KF_EPERM;
	assert_int_equal(m.list_rep.rep.status, KF_EPERM);
	init(&m, KF_MSG_HEARTBEAT);
	assert_null(kf_msg_request(&m));
	assert_null(kf_msg_reply(&m));
}

static void test_init_sets_clock(void **state)
{
	(void)state;
	struct kf_msg m;
	kf_msg_init(&m, KF_MSG_HEARTBEAT, "w", 3);
	assert_int_equal(m.type, KF_MSG_HEARTBEAT);
	assert_string_equal(m.sender, "w");
	assert_true(m.seq == 3);
	assert_true(m.ts_ns > 1577836800ull * 1000000000ull);
	assert_null(m.arena);
}

/* ---- topics ------------------------------------------------------------------ */

static void test_topics(void **state)
{
	(void)state;
	char t[KF_TOPIC_SIZE];
	assert_int_equal(kf_topic_hb(t, "w1"), 5);
	assert_string_equal(t, "hb.w1");
	assert_int_equal(kf_topic_log(t, KF_MSG_LEVEL_ERROR, "broker"), 16);
	assert_string_equal(t, "log.ERROR.broker");
	kf_topic_metric(t, "w 1\xc3\xa9");
	assert_string_equal(t, "metric.w_1__");
	assert_int_equal(kf_topic_job(t, UINT64_MAX), 24);
	assert_string_equal(t, "job.18446744073709551615");
	kf_topic_status(t, "cluster");
	assert_string_equal(t, KF_TOPIC_STATUS_CLUSTER);
	kf_topic_cmd(t, "");
	assert_string_equal(t, "cmd._");
	kf_topic_cmd(t, NULL);
	assert_string_equal(t, "cmd._");

	char long_id[300];
	memset(long_id, 'x', sizeof long_id - 1);
	long_id[sizeof long_id - 1] = '\0';
	assert_int_equal(kf_topic_hb(t, long_id), KF_TOPIC_MAX);
	assert_true(kf_topic_valid(t, strlen(t)));
	assert_false(kf_topic_valid("", 0));
	assert_false(kf_topic_valid("a b", 3));
	assert_false(kf_topic_valid("a\x7f", 2));

	/* What the monitor socket carries: metric updates and status only. */
	kf_topic_metric(t, "w1");
	assert_true(kf_topic_monitored(t, strlen(t)));
	assert_true(kf_topic_monitored(KF_TOPIC_STATUS_CLUSTER, strlen(KF_TOPIC_STATUS_CLUSTER)));
	kf_topic_job(t, 42);
	assert_false(kf_topic_monitored(t, strlen(t)));
	kf_topic_log(t, KF_MSG_LEVEL_INFO, "w1");
	assert_false(kf_topic_monitored(t, strlen(t)));
	kf_topic_cmd(t, "w1");
	assert_false(kf_topic_monitored(t, strlen(t)));
	assert_false(kf_topic_monitored("metric", 6));          /* the prefix needs its dot */
	assert_false(kf_topic_monitored("metric.w1", 6));       /* only len bytes count */
}

static void test_topic_split(void **state)
{
	(void)state;
	const char *topic;
	const void *env;
	size_t tlen, elen;
	static const char ok[] = "job.42\0\x81\xa1v\x01";
	assert_int_equal(kf_topic_split(ok, sizeof ok - 1, &topic, &tlen, &env, &elen), KF_OK);
	assert_int_equal(tlen, 6);
	assert_memory_equal(topic, "job.42", 6);
	assert_ptr_equal(env, ok + 7);
	assert_int_equal(elen, 4);
	/* Topic followed by NUL and nothing: an empty envelope is the decoder's problem. */
	assert_int_equal(kf_topic_split("a", 2, &topic, &tlen, &env, &elen), KF_OK);
	assert_int_equal(elen, 0);
	assert_int_equal(kf_topic_split("job.42", 6, &topic, &tlen, &env, &elen), KF_ETOPIC);
	assert_int_equal(kf_topic_split("\0abc", 4, &topic, &tlen, &env, &elen), KF_ETOPIC);
	assert_int_equal(kf_topic_split("a b\0", 4, &topic, &tlen, &env, &elen), KF_ETOPIC);
	assert_int_equal(kf_topic_split(NULL, 0, &topic, &tlen, &env, &elen), KF_ETOPIC);
	char big[KF_TOPIC_MAX + 10];
	memset(big, 'a', sizeof big);
	big[KF_TOPIC_MAX] = '\0';
	assert_int_equal(kf_topic_split(big, sizeof big, &topic, &tlen, &env, &elen), KF_OK);
	big[KF_TOPIC_MAX] = 'a';
	big[KF_TOPIC_MAX + 1] = '\0';
	assert_int_equal(kf_topic_split(big, sizeof big, &topic, &tlen, &env, &elen), KF_ETOPIC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_heartbeat),
		cmocka_unit_test(test_log_full),
		cmocka_unit_test(test_log_minimal_takes_envelope_defaults),
		cmocka_unit_test(test_metric),
		cmocka_unit_test(test_job_event),
		cmocka_unit_test(test_cluster_status),
		cmocka_unit_test(test_command),
		cmocka_unit_test(test_hello),
		cmocka_unit_test(test_lease),
		cmocka_unit_test(test_progress),
		cmocka_unit_test(test_complete),
		cmocka_unit_test(test_complete_1_1),
		cmocka_unit_test(test_complete_1_3),
		cmocka_unit_test(test_submit),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_get),
		cmocka_unit_test(test_kill_retry),
		cmocka_unit_test(test_cluster_rpc),
		cmocka_unit_test(test_log_tail),
		cmocka_unit_test(test_drain_rpc),
		cmocka_unit_test(test_error_rep),
		cmocka_unit_test(test_pub_framing),
		cmocka_unit_test(test_encode_to_buffer),
		cmocka_unit_test(test_encode_rejects),
		cmocka_unit_test(test_encode_oom_buffer),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_types),
		cmocka_unit_test(test_init_sets_clock),
		cmocka_unit_test(test_topics),
		cmocka_unit_test(test_topic_split),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
