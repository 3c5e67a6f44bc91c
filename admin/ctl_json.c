/*
 * ctl_json.c — keyforgectl's JSON: jobs, workers and log events, with the
 * key names of DESIGN.md §10 (statistics as in `keyforge-layout --json`).
 *
 * Optional values are null rather than absent, so that `jq .result.sfb`
 * reads null, not an error, before a job is final.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "admin/ctl.h"
#include "common/json.h"
#include "layout/board.h"

/* A member key with its comma: `"name":`. */
static void key(struct kf_strbuf *sb, const char *name, bool *first)
{
	if (!*first)
		kf_strbuf_addch(sb, ',');
	*first = false;
	kf_json_add_cstr(sb, name);
	kf_strbuf_addch(sb, ':');
}

static void str_or_null(struct kf_strbuf *sb, const char *s)
{
	if (s)
		kf_json_add_cstr(sb, s);
	else
		kf_strbuf_addstr(sb, "null");
}

static void time_or_null(struct kf_strbuf *sb, uint64_t ns)
{
	if (!ns) {
		kf_strbuf_addstr(sb, "null");
		return;
	}
	kf_strbuf_addch(sb, '"');
	kf__ctl_add_time(sb, ns);
	kf_strbuf_addch(sb, '"');
}

static void u64(struct kf_strbuf *sb, uint64_t v)
{
	kf_strbuf_addf(sb, "%llu", (unsigned long long)v);
}

static void named_object(struct kf_strbuf *sb, const struct kf_msg_named_value *v, size_t n)
{
	kf_strbuf_addch(sb, '{');
	for (size_t i = 0; i < n; i++) {
		if (i)
			kf_strbuf_addch(sb, ',');
		kf_json_add_cstr(sb, v[i].name);
		kf_strbuf_addch(sb, ':');
		kf_json_add_double(sb, v[i].value);
	}
	kf_strbuf_addch(sb, '}');
}

void kf__ctl_json_params(struct kf_strbuf *sb, const struct kf_msg_job_params *p)
{
	bool first = true;

	kf_strbuf_addch(sb, '{');
	key(sb, "corpus", &first);
	str_or_null(sb, p->corpus);
	key(sb, "board", &first);
	kf_json_add_cstr(sb, kf_msg_board_name(p->board));
	key(sb, "start_layout", &first);
	str_or_null(sb, p->start_layout);
	key(sb, "steps", &first);
	u64(sb, p->steps);
	key(sb, "restarts", &first);
	u64(sb, p->restarts);
	key(sb, "seed", &first);
	u64(sb, p->seed);
	key(sb, "start_temp", &first);
	kf_json_add_double(sb, p->start_temp);
	key(sb, "pinned", &first);
	str_or_null(sb, p->pinned);
	key(sb, "weights", &first);
	named_object(sb, p->weights, p->n_weights);
	key(sb, "deadline_ms", &first);
	u64(sb, p->deadline_ms);
	key(sb, "max_attempts", &first);
	u64(sb, p->max_attempts);
	key(sb, "priority", &first);
	kf_strbuf_addf(sb, "%d", (int)p->priority);
	kf_strbuf_addch(sb, '}');
}

bool kf__ctl_result_stat(const struct kf_msg_job_result *r, const char *name, double *out)
{
	for (size_t i = 0; i < r->n_stats; i++) {
		if (r->stats[i].name && !strcmp(r->stats[i].name, name)) {
			*out = r->stats[i].value;
			return true;
		}
	}
	return false;
}

void kf__ctl_json_result(struct kf_strbuf *sb, const struct kf_msg_job_result *r)
{
	bool first = true;

	kf_strbuf_addch(sb, '{');
	key(sb, "layout", &first);
	str_or_null(sb, r->layout);
	key(sb, "score", &first);
	kf_json_add_double(sb, r->cost);
	for (size_t i = 0; i < r->n_stats; i++) {
		/* layout and score are ours; a statistic of that name would be a
		 * duplicate key */
		if (!r->stats[i].name || !strcmp(r->stats[i].name, "layout") ||
		    !strcmp(r->stats[i].name, "score"))
			continue;
		key(sb, r->stats[i].name, &first);
		kf_json_add_double(sb, r->stats[i].value);
	}
	/* Named like keyforge-layout's JSON: one member per finger of layout/
	 * (LP..RP); proto carries room for ten. */
	key(sb, "finger_usage", &first);
	kf_strbuf_addch(sb, '{');
	for (int f = 0; f < KF_FINGER_COUNT; f++) {
		if (f)
			kf_strbuf_addch(sb, ',');
		kf_json_add_cstr(sb, kf_finger_name((enum kf_finger)f));
		kf_strbuf_addch(sb, ':');
		kf_json_add_double(sb, r->finger_usage[f]);
	}
	kf_strbuf_addch(sb, '}');
	key(sb, "steps", &first);
	u64(sb, r->steps);
	key(sb, "steps_per_sec", &first);
	kf_json_add_double(sb, r->steps_per_sec);
	key(sb, "elapsed_ms", &first);
	u64(sb, r->elapsed_ms);
	kf_strbuf_addch(sb, '}');
}

static void errors(struct kf_strbuf *sb, const struct kf_msg_job_error *e, size_t n)
{
	kf_strbuf_addch(sb, '[');
	for (size_t i = 0; i < n; i++) {
		bool first = true;

		if (i)
			kf_strbuf_addch(sb, ',');
		kf_strbuf_addch(sb, '{');
		key(sb, "attempt", &first);
		u64(sb, e[i].attempt);
		key(sb, "message", &first);
		str_or_null(sb, e[i].message);
		key(sb, "at", &first);
		time_or_null(sb, e[i].at_ns);
		kf_strbuf_addch(sb, '}');
	}
	kf_strbuf_addch(sb, ']');
}

void kf__ctl_json_job(struct kf_strbuf *sb, const struct kf_msg_job *j)
{
	bool first = true;

	kf_strbuf_addch(sb, '{');
	key(sb, "id", &first);
	u64(sb, j->id);
	key(sb, "state", &first);
	kf_json_add_cstr(sb, kf_job_state_name(j->state));
	key(sb, "attempt", &first);
	u64(sb, j->attempt);
	key(sb, "max_attempts", &first);
	u64(sb, j->max_attempts);
	key(sb, "priority", &first);
	kf_strbuf_addf(sb, "%d", (int)j->priority);
	key(sb, "worker", &first);
	str_or_null(sb, j->worker_id);
	key(sb, "progress", &first);
	kf_json_add_double(sb, j->progress);
	key(sb, "best_cost", &first);
	if (j->best_cost != 0)
		kf_json_add_double(sb, j->best_cost);
	else
		kf_strbuf_addstr(sb, "null");
	key(sb, "created_at", &first);
	time_or_null(sb, j->created_ns);
	key(sb, "started_at", &first);
	time_or_null(sb, j->started_ns);
	key(sb, "finished_at", &first);
	time_or_null(sb, j->finished_ns);
	key(sb, "key", &first);
	str_or_null(sb, j->key);
	key(sb, "params", &first);
	kf__ctl_json_params(sb, &j->params);
	key(sb, "result", &first);
	if (j->result)
		kf__ctl_json_result(sb, j->result);
	else
		kf_strbuf_addstr(sb, "null");
	key(sb, "errors", &first);
	errors(sb, j->errors, j->n_errors);
	kf_strbuf_addch(sb, '}');
}

void kf__ctl_json_summary(struct kf_strbuf *sb, const struct kf_msg_job_summary *s)
{
	bool first = true;

	kf_strbuf_addch(sb, '{');
	key(sb, "id", &first);
	u64(sb, s->id);
	key(sb, "state", &first);
	kf_json_add_cstr(sb, kf_job_state_name(s->state));
	key(sb, "attempt", &first);
	u64(sb, s->attempt);
	key(sb, "max_attempts", &first);
	u64(sb, s->max_attempts);
	key(sb, "priority", &first);
	kf_strbuf_addf(sb, "%d", (int)s->priority);
	key(sb, "worker", &first);
	str_or_null(sb, s->worker_id);
	key(sb, "corpus", &first);
	str_or_null(sb, s->corpus);
	key(sb, "progress", &first);
	kf_json_add_double(sb, s->progress);
	key(sb, "best_cost", &first);
	if (s->best_cost != 0)
		kf_json_add_double(sb, s->best_cost);
	else
		kf_strbuf_addstr(sb, "null");
	key(sb, "layout", &first);
	str_or_null(sb, s->layout);
	key(sb, "last_error", &first);
	str_or_null(sb, s->last_error);
	key(sb, "created_at", &first);
	time_or_null(sb, s->created_ns);
	key(sb, "started_at", &first);
	time_or_null(sb, s->started_ns);
	key(sb, "finished_at", &first);
	time_or_null(sb, s->finished_ns);
	kf_strbuf_addch(sb, '}');
}

void kf__ctl_json_worker(struct kf_strbuf *sb, const struct kf_msg_worker_status *w)
{
	bool first = true;

	kf_strbuf_addch(sb, '{');
	key(sb, "id", &first);
	str_or_null(sb, w->worker_id);
	key(sb, "host", &first);
	str_or_null(sb, w->host);
	key(sb, "pid", &first);
	u64(sb, w->pid);
	key(sb, "incarnation", &first);
	u64(sb, w->incarnation);
	key(sb, "liveness", &first);
	kf_json_add_cstr(sb, kf_worker_liveness_name(w->liveness));
	key(sb, "state", &first);
	kf_json_add_cstr(sb, kf_worker_state_name(w->state));
	key(sb, "cpu_process", &first);
	kf_json_add_double(sb, w->cpu_process);
	key(sb, "cpu_host", &first);
	kf_json_add_double(sb, w->cpu_host);
	key(sb, "rss_bytes", &first);
	u64(sb, w->rss_bytes);
	key(sb, "slots_total", &first);
	u64(sb, w->slots_total);
	key(sb, "slots_busy", &first);
	u64(sb, w->slots_busy);
	key(sb, "job", &first);
	if (w->job_id)
		u64(sb, w->job_id);
	else
		kf_strbuf_addstr(sb, "null");
	key(sb, "job_progress", &first);
	kf_json_add_double(sb, w->job_progress);
	key(sb, "last_heartbeat_age_ms", &first);
	u64(sb, w->last_heartbeat_age_ms);
	key(sb, "unheard", &first);
	kf_strbuf_addstr(sb, w->unheard ? "true" : "false");
	kf_strbuf_addch(sb, '}');
}

void kf__ctl_json_counts(struct kf_strbuf *sb, const uint64_t counts[KF_JOB_STATE_COUNT])
{
	kf_strbuf_addch(sb, '{');
	for (int s = 0; s < KF_JOB_STATE_COUNT; s++) {
		if (s)
			kf_strbuf_addch(sb, ',');
		kf_json_add_cstr(sb, kf_job_state_name((enum kf_job_state)s));
		kf_strbuf_addf(sb, ":%llu", (unsigned long long)counts[s]);
	}
	kf_strbuf_addch(sb, '}');
}

void kf__ctl_json_value(struct kf_strbuf *sb, const struct kf_msg_value *v)
{
	switch (v->kind) {
	case KF_VALUE_STR: str_or_null(sb, v->str); break;
	case KF_VALUE_I64: kf_strbuf_addf(sb, "%lld", (long long)v->i64); break;
	case KF_VALUE_U64: u64(sb, v->u64); break;
	case KF_VALUE_F64: kf_json_add_double(sb, v->f64); break;
	case KF_VALUE_BOOL: kf_strbuf_addstr(sb, v->b ? "true" : "false"); break;
	default: kf_strbuf_addstr(sb, "null"); break;
	}
}

static void fields(struct kf_strbuf *sb, const struct kf_msg_field *f, size_t n, bool *first)
{
	for (size_t i = 0; i < n; i++) {
		key(sb, f[i].name, first);
		kf__ctl_json_value(sb, &f[i].value);
	}
}

static void span(struct kf_strbuf *sb, const struct kf_msg_span *s)
{
	bool first = false;

	kf_strbuf_addstr(sb, "{\"name\":");
	str_or_null(sb, s->name);
	fields(sb, s->fields, s->n_fields, &first);
	kf_strbuf_addch(sb, '}');
}

void kf__ctl_json_log(struct kf_strbuf *sb, const struct kf_msg_log *ev)
{
	bool first = true;

	kf_strbuf_addch(sb, '{');
	key(sb, "timestamp", &first);
	time_or_null(sb, ev->ts_ns);
	key(sb, "level", &first);
	kf_json_add_cstr(sb, kf_msg_level_name(ev->level));
	key(sb, "target", &first);
	str_or_null(sb, ev->target);
	key(sb, "source", &first);
	str_or_null(sb, ev->source);
	key(sb, "fields", &first);
	kf_strbuf_addstr(sb, "{\"message\":");
	str_or_null(sb, ev->message);
	{
		bool f = false;

		fields(sb, ev->fields, ev->n_fields, &f);
	}
	kf_strbuf_addch(sb, '}');
	if (ev->n_spans) {
		key(sb, "span", &first);
		span(sb, &ev->spans[ev->n_spans - 1]);
		key(sb, "spans", &first);
		kf_strbuf_addch(sb, '[');
		for (size_t i = 0; i < ev->n_spans; i++) {
			if (i)
				kf_strbuf_addch(sb, ',');
			span(sb, &ev->spans[i]);
		}
		kf_strbuf_addch(sb, ']');
	}
	kf_strbuf_addch(sb, '}');
}

int kf__ctl_print_json(struct kf_strbuf *sb)
{
	if (sb->oom)
		return kf__ctl_fail(KF__CTL_FAIL, "out of memory writing JSON");
	kf_strbuf_addch(sb, '\n');
	if (fwrite(sb->buf, 1, sb->len, stdout) != sb->len || fflush(stdout) != 0)
		return kf__ctl_fail(KF__CTL_FAIL, "cannot write to stdout: %s", strerror(errno));
	return KF__CTL_OK;
}
