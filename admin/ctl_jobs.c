/*
 * ctl_jobs.c — `keyforgectl list | show | kill | retry`.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "admin/ctl.h"
#include "layout/board.h"
#include "layout/layout.h"
#include "layout/stats.h"

#define LIST_LIMIT_DEFAULT 50

/* Options of the job commands that take only --json. */
struct json_opts {
	bool json;
	bool brief;
	bool newest;                 /* list --newest-first */
	const char *state, *limit, *after;
};

static int on_opt(void *state, int id, const char *arg)
{
	struct json_opts *o = state;

	switch (id) {
	case 'j': o->json = true; return -1;
	case 'B': o->brief = true; return -1;
	case 's': o->state = arg; return -1;
	case 'l': o->limit = arg; return -1;
	case 'a': o->after = arg; return -1;
	case 'n': o->newest = true; return -1;
	default: return KF__CTL_USAGE;
	}
}

static const struct option json_only[] = {
	{ "json", no_argument, NULL, 'j' },
	{ NULL, 0, NULL, 0 },
};

/* Parses "NAME ID [--json]". -1 to go on, else an exit status. */
static int one_id(struct kf__ctl *ctl, const char *name, int argc, char **argv,
	const struct option *opts, struct json_opts *o, uint64_t *id)
{
	int first, status;

	status = kf__ctl_getopt(ctl, kf__ctl_find(name), argc, argv, "", opts, on_opt, o, &first);
	if (status >= 0)
		return status;
	if (first >= argc) {
		fprintf(stderr, "keyforgectl %s: which job? give its id (keyforgectl list shows "
			"them)\n", name);
		return KF__CTL_USAGE;
	}
	if (first + 1 < argc) {
		fprintf(stderr, "keyforgectl %s: one job id only (got '%s' too); see "
			"keyforgectl %s --help\n", name, argv[first + 1], name);
		return KF__CTL_USAGE;
	}
	if (!kf__ctl_parse_job_id(argv[first], id))
		return kf__ctl_bad_value(name, "job id", argv[first], "a job id (1, 2, ...)");
	return -1;
}

/* ---- list ------------------------------------------------------------------------ */

static void list_table(const struct kf_msg_list_rep *r)
{
	struct kf__ctl_table t;

	kf__ctl_jobs_fill(r->jobs, r->n_jobs, &t);
	kf__ctl_table_print(&t, stdout);
	kf__ctl_table_release(&t);
}

/* --json without --brief: one get per job, so that each element is the
 * full record DESIGN.md §10 describes. */
static int list_json_full(struct kf__ctl *ctl, const struct kf_msg_list_rep *r)
{
	struct kf_strbuf sb = KF_STRBUF_INIT, why = KF_STRBUF_INIT;
	int status = KF__CTL_OK;

	kf_strbuf_addch(&sb, '[');
	for (size_t i = 0; i < r->n_jobs && status == KF__CTL_OK; i++) {
		struct kf_msg *rep = NULL;

		status = kf__ctl_get_job(ctl, r->jobs[i].id, &rep, &why);
		if (status != KF__CTL_OK && !strncmp(why.buf, "no job", 6)) {
			status = KF__CTL_OK; /* removed meanwhile */
			kf_strbuf_reset(&why);
			continue;
		}
		if (status == KF__CTL_OK) {
			if (sb.len > 1)
				kf_strbuf_addch(&sb, ',');
			kf__ctl_json_job(&sb, rep->get_rep.job);
		}
		kf_msg_free(rep);
	}
	kf_strbuf_addch(&sb, ']');
	if (status == KF__CTL_OK)
		status = kf__ctl_print_json(&sb);
	else
		kf__ctl_fail(status, "%s", why.buf);
	kf_strbuf_release(&sb);
	kf_strbuf_release(&why);
	return status;
}

static int list_json_brief(const struct kf_msg_list_rep *r)
{
	struct kf_strbuf sb = KF_STRBUF_INIT;
	int status;

	kf_strbuf_addch(&sb, '[');
	for (size_t i = 0; i < r->n_jobs; i++) {
		if (i)
			kf_strbuf_addch(&sb, ',');
		kf__ctl_json_summary(&sb, &r->jobs[i]);
	}
	kf_strbuf_addch(&sb, ']');
	status = kf__ctl_print_json(&sb);
	kf_strbuf_release(&sb);
	return status;
}

static int list_args(const struct json_opts *o, struct kf_msg_list_req *q)
{
	uint64_t v;

	q->limit = LIST_LIMIT_DEFAULT;
	if (o->state && !kf__ctl_parse_states(o->state, &q->state_mask))
		return kf__ctl_bad_value("list", "--state", o->state, "a list of states (pending, "
					 "running, retrying, succeeded, failed, killed, active, "
					 "final, all)");
	if (o->limit) {
		if (!kf__ctl_parse_u64(o->limit, KF_MSG_MAX_JOBS, &v) || v == 0)
			return kf__ctl_bad_value("list", "--limit", o->limit,
						 "a number from 1 to 1000");
		q->limit = (uint32_t)v;
	}
	if (o->after && !kf__ctl_parse_u64(o->after, INT64_MAX, &q->after_id))
		return kf__ctl_bad_value("list", "--after", o->after, "a job id");
	q->newest_first = o->newest;
	if (o->brief && !o->json) {
		fprintf(stderr, "keyforgectl list: --brief goes with --json\n");
		return KF__CTL_USAGE;
	}
	return KF__CTL_OK;
}

/*
 * The state filter as the broker builds it ("{pending,running}") must fit
 * its 32-byte parameter buffer (broker/store_ops.c states_array, issue 5;
 * longer masks overflow it). Every state is no filter at all; other long
 * masks are filtered here, over pages of every state.
 */
#define BROKER_STATES_TEXT_MAX 31

static bool broker_can_filter(uint32_t mask)
{
	size_t len = 2;

	for (int s = 0; s < KF_JOB_STATE_COUNT; s++)
		if (mask & KF_JOB_STATE_BIT(s))
			len += strlen(kf_job_state_name((enum kf_job_state)s)) + 1;
	return len - 1 <= BROKER_STATES_TEXT_MAX;
}

/* What `list` shows: the broker's reply, or pages filtered here. */
struct listing {
	struct kf_msg_list_rep rep;       /* jobs point into msgs[] */
	struct kf_msg_job_summary *jobs;  /* heap, filtered case only */
	struct kf_msg **msgs;
	size_t n_msgs;
	bool more;                        /* a job after the page matches too */
};

static void listing_release(struct listing *l)
{
	for (size_t i = 0; i < l->n_msgs; i++)
		kf_msg_free(l->msgs[i]);
	free(l->msgs);
	free(l->jobs);
}

static int keep_msg(struct listing *l, struct kf_msg *m)
{
	struct kf_msg **msgs = realloc(l->msgs, (l->n_msgs + 1) * sizeof(*msgs));

	if (!msgs) {
		kf_msg_free(m);
		return kf__ctl_fail(KF__CTL_FAIL, "out of memory");
	}
	l->msgs = msgs;
	l->msgs[l->n_msgs++] = m;
	return KF__CTL_OK;
}

static int fetch_filtered(struct kf__ctl *ctl, const struct kf_msg_list_req *want,
	struct listing *l)
{
	uint64_t after = want->after_id;
	int status;

	if (!(l->jobs = calloc(want->limit, sizeof(*l->jobs))))
		return kf__ctl_fail(KF__CTL_FAIL, "out of memory");
	l->rep.jobs = l->jobs;
	for (;;) {
		struct kf_msg req, *rep = NULL;
		const struct kf_msg_list_rep *r;

		kf__ctl_msg_init(ctl, &req, KF_MSG_LIST_REQ);
		req.list_req.after_id = after;
		req.list_req.newest_first = want->newest_first;  /* then `after` bounds from above */
		req.list_req.limit = KF_MSG_MAX_JOBS;
		if ((status = kf__ctl_call(ctl, &req, &rep)) || (status = keep_msg(l, rep)))
			return status;
		r = &rep->list_rep;
		for (size_t i = 0; i < r->n_jobs; i++) {
			if (!(want->state_mask & KF_JOB_STATE_BIT(r->jobs[i].state)))
				continue;
			if (l->rep.n_jobs == want->limit) {
				l->more = true;
				break;
			}
			l->jobs[l->rep.n_jobs++] = r->jobs[i];
		}
		if (l->more || r->n_jobs < KF_MSG_MAX_JOBS || r->n_jobs == 0)
			break;
		after = r->jobs[r->n_jobs - 1].id;
	}
	l->rep.total = l->rep.n_jobs + l->more; /* unknown beyond this page */
	return KF__CTL_OK;
}

/*
 * Whether a job after a full page matches as well: the same request for one
 * job after the page's last. The reply's total cannot tell: it counts every
 * job that matches the states, those before --after too. (Asking for
 * limit + 1 jobs would save this request but not at --limit 1000, the
 * most a reply holds.)
 */
static int probe_more(struct kf__ctl *ctl, const struct kf_msg_list_req *page, uint64_t last_id,
	bool *more)
{
	struct kf_msg req, *rep = NULL;
	int status;

	kf__ctl_msg_init(ctl, &req, KF_MSG_LIST_REQ);
	req.list_req.state_mask = page->state_mask;
	req.list_req.newest_first = page->newest_first;
	req.list_req.after_id = last_id;
	req.list_req.limit = 1;
	if ((status = kf__ctl_call(ctl, &req, &rep)))
		return status;
	*more = rep->list_rep.n_jobs > 0;
	kf_msg_free(rep);
	return KF__CTL_OK;
}

/* The page, and with want_more whether a next one has jobs (l->more). */
static int fetch(struct kf__ctl *ctl, struct kf_msg *req, bool want_more, struct listing *l)
{
	struct kf_msg *rep = NULL;
	int status;

	if (req->list_req.state_mask == (1u << KF_JOB_STATE_COUNT) - 1)
		req->list_req.state_mask = 0;
	if (!broker_can_filter(req->list_req.state_mask))
		return fetch_filtered(ctl, &req->list_req, l);
	if ((status = kf__ctl_call(ctl, req, &rep)) || (status = keep_msg(l, rep)))
		return status;
	l->rep = rep->list_rep;
	if (!want_more || l->rep.n_jobs < req->list_req.limit)
		return KF__CTL_OK;
	return probe_more(ctl, &req->list_req, l->rep.jobs[l->rep.n_jobs - 1].id, &l->more);
}

int kf__ctl_list(struct kf__ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "limit", required_argument, NULL, 'l' },
		{ "after", required_argument, NULL, 'a' },
		{ "newest-first", no_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "brief", no_argument, NULL, 'B' },
		{ NULL, 0, NULL, 0 },
	};
	struct json_opts o = { 0 };
	struct listing l = { 0 };
	struct kf_msg req;
	const struct kf_msg_list_rep *r = &l.rep;
	int first, status;

	status = kf__ctl_getopt(ctl, kf__ctl_find("list"), argc, argv, "", opts, on_opt, &o,
				&first);
	if (status >= 0)
		return status;
	if (first < argc) {
		fprintf(stderr, "keyforgectl list: unexpected argument '%s' (for one job: "
			"keyforgectl show ID)\n", argv[first]);
		return KF__CTL_USAGE;
	}
	kf__ctl_msg_init(ctl, &req, KF_MSG_LIST_REQ);
	if ((status = list_args(&o, &req.list_req)) || (status = fetch(ctl, &req, !o.json, &l)))
		goto out;
	if (o.json)
		status = o.brief ? list_json_brief(r) : list_json_full(ctl, r);
	else if (r->n_jobs == 0)
		printf("no jobs%s\n", o.state || o.after ? " match" :
		       " yet (keyforgectl submit --help)");
	else {
		list_table(r);
		if (l.more)  /* the same command, after the last job shown */
			printf("\nmore jobs match; next page: keyforgectl list --after %llu%s%s%s%s%s\n",
			       (unsigned long long)r->jobs[r->n_jobs - 1].id,
			       o.limit ? " --limit " : "", o.limit ? o.limit : "",
			       o.newest ? " --newest-first" : "", o.state ? " --state " : "",
			       o.state ? o.state : "");
	}
out:
	listing_release(&l);
	return status;
}

/* ---- show --------------------------------------------------------------------------- */

/* "qwerty" when the layout is a named one, else NULL. */
static const char *layout_name(const char *keys)
{
	size_t n;
	const char *const *names = kf_layout_names(&n);
	struct kf_layout lay;

	for (size_t i = 0; keys && i < n; i++)
		if (kf_layout_named(names[i], &lay) == KF_OK && !strcmp(lay.keys, keys))
			return names[i];
	return NULL;
}

/* The strings of a job are the broker's: printed through kf__ctl_safe, with
 * `safe` as scratch. */
static void show_params(const struct kf_msg_job *j, struct kf_strbuf *safe)
{
	const struct kf_msg_job_params *p = &j->params;
	const char *name = layout_name(p->start_layout);

	printf("  corpus     %s\n", kf__ctl_safe(safe, p->corpus));
	printf("  search     start %s%s%s%s, %s board, %llu steps x %u restart%s, seed %llu, ",
	       p->start_layout ? kf__ctl_safe(safe, p->start_layout) : "random", name ? " (" : "",
	       name ? name : "",
	       name ? ")" : "", kf_msg_board_name(p->board), (unsigned long long)p->steps,
	       p->restarts, p->restarts == 1 ? "" : "s", (unsigned long long)p->seed);
	if (p->start_temp > 0)
		printf("start temperature %g\n", p->start_temp);
	else
		printf("temperature calibrated\n");
	if (p->pinned)
		printf("  pinned     %s\n", kf__ctl_safe(safe, p->pinned));
	if (p->n_weights) {
		printf("  weights   ");
		for (size_t i = 0; i < p->n_weights; i++)
			printf(" %s=%g", kf__ctl_safe(safe, p->weights[i].name), p->weights[i].value);
		printf("\n");
	}
	if (p->deadline_ms) {
		struct kf_strbuf d = KF_STRBUF_INIT;

		kf__ctl_add_duration(&d, p->deadline_ms);
		printf("  deadline   %s per attempt\n", d.buf);
		kf_strbuf_release(&d);
	}
}

static void show_times(const struct kf_msg_job *j, struct kf_strbuf *safe)
{
	struct kf_strbuf sb = KF_STRBUF_INIT;

	kf_strbuf_addstr(&sb, "  created    ");
	kf__ctl_add_time(&sb, j->created_ns);
	if (j->started_ns) {
		kf_strbuf_addstr(&sb, "   started ");
		kf__ctl_add_time(&sb, j->started_ns);
	}
	if (j->finished_ns) {
		kf_strbuf_addstr(&sb, "   finished ");
		kf__ctl_add_time(&sb, j->finished_ns);
	}
	printf("%s\n", sb.buf);
	if (j->key)
		printf("  key        %s\n", kf__ctl_safe(safe, j->key));
	kf_strbuf_release(&sb);
}

static void show_result(const struct kf_msg_job *j, struct kf_strbuf *safe)
{
	const struct kf_msg_job_result *r = j->result;
	struct kf_strbuf sb = KF_STRBUF_INIT;
	struct kf_layout lay;
	struct kf_board board;
	const struct kf_stat_desc *d;
	size_t n;
	double v;

	/* Pending or retrying again: the result on record is the last
	 * attempt's (a new attempt starts without one). */
	if (j->state == KF_JOB_KILLED)
		printf("\nresult (best before the kill)");
	else if (j->state == KF_JOB_FAILED)
		printf("\nresult (best before it stopped)"); /* at its deadline */
	else if (j->state == KF_JOB_PENDING || j->state == KF_JOB_RETRYING)
		printf("\nresult of attempt %u", j->attempt);
	else
		printf("\nresult");
	printf(": score %.4f   (%llu steps, %.0f steps/s, ", r->cost, (unsigned long long)r->steps,
	       r->steps_per_sec);
	kf__ctl_add_duration(&sb, r->elapsed_ms);
	printf("%s)\n  layout     %s\n\n", sb.buf, kf__ctl_safe(safe, r->layout));
	kf_strbuf_reset(&sb);
	kf_board_init(&board, j->params.board == KF_MSG_BOARD_ORTHO ? KF_BOARD_ORTHO : KF_BOARD_ANSI);
	if (kf_layout_parse(r->layout, &lay, NULL) == KF_OK) {
		kf_layout_draw(&lay, &board, "    ", &sb);
		printf("%s\n", sb.buf);
	}
	d = kf_stat_descs(&n);
	printf("  %-14s %9s\n", "statistic (%)", "value");
	for (size_t i = 0; i < n; i++)
		if (kf__ctl_result_stat(r, d[i].key, &v))
			printf("  %-14s %9.3f\n", d[i].label, v);
	for (int f = 0; f < KF_FINGER_COUNT; f++)
		printf("  finger %-7s %9.3f\n", kf_finger_name((enum kf_finger)f), r->finger_usage[f]);
	kf_strbuf_release(&sb);
}

static void show_text(const struct kf_msg_job *j)
{
	struct kf_strbuf safe = KF_STRBUF_INIT;

	printf("job %llu: %s   attempt %u of %u   priority %d   worker %s\n",
	       (unsigned long long)j->id, kf_job_state_name(j->state), j->attempt, j->max_attempts,
	       (int)j->priority, j->worker_id ? kf__ctl_safe(&safe, j->worker_id) : "-");
	show_times(j, &safe);
	if (j->state == KF_JOB_RUNNING && j->best_cost != 0)
		printf("  progress   %.0f%%, best so far %.4f\n", 100.0 * j->progress, j->best_cost);
	else if (j->state == KF_JOB_RUNNING)   /* no report yet: best_cost 0 is "none" */
		printf("  progress   %.0f%%, no best yet\n", 100.0 * j->progress);
	show_params(j, &safe);
	if (j->result)
		show_result(j, &safe);
	if (j->n_errors) {
		printf("\nerrors (oldest first):\n");
		for (size_t i = 0; i < j->n_errors; i++)
			printf("  attempt %u: %s\n", j->errors[i].attempt,
			       kf__ctl_safe(&safe, j->errors[i].message));
	}
	kf_strbuf_release(&safe);
}

int kf__ctl_show(struct kf__ctl *ctl, int argc, char **argv)
{
	struct json_opts o = { 0 };
	struct kf_strbuf sb = KF_STRBUF_INIT;
	struct kf_msg *rep = NULL;
	uint64_t id;
	int status;

	if ((status = one_id(ctl, "show", argc, argv, json_only, &o, &id)) >= 0)
		return status;
	if ((status = kf__ctl_get_job(ctl, id, &rep, &sb)) != KF__CTL_OK) {
		kf__ctl_fail(status, "%s", sb.buf);
	} else if (o.json) {
		kf__ctl_json_job(&sb, rep->get_rep.job);
		status = kf__ctl_print_json(&sb);
	} else {
		show_text(rep->get_rep.job);
	}
	kf_msg_free(rep);
	kf_strbuf_release(&sb);
	return status;
}

/* ---- kill and retry ------------------------------------------------------------------- */

static int action(struct kf__ctl *ctl, const char *name, enum kf_msg_type type, int argc,
	char **argv)
{
	struct json_opts o = { 0 };
	struct kf_msg req, *rep = NULL;
	enum kf_job_state st;
	uint64_t id;
	int status;

	if ((status = one_id(ctl, name, argc, argv, NULL, &o, &id)) >= 0)
		return status;
	kf__ctl_msg_init(ctl, &req, type);
	if (type == KF_MSG_KILL_REQ)
		req.kill_req.job_id = id;
	else
		req.retry_req.job_id = id;
	if ((status = kf__ctl_call(ctl, &req, &rep)))
		return status;
	st = type == KF_MSG_KILL_REQ ? rep->kill_rep.state : rep->retry_rep.state;
	if (type == KF_MSG_KILL_REQ && st == KF_JOB_RUNNING)
		printf("job %llu: cancel sent to its worker; it stops and reports the job killed "
		       "(keyforgectl wait %llu)\n", (unsigned long long)id, (unsigned long long)id);
	else
		printf("job %llu: %s\n", (unsigned long long)id, kf_job_state_name(st));
	kf_msg_free(rep);
	return KF__CTL_OK;
}

int kf__ctl_kill(struct kf__ctl *ctl, int argc, char **argv)
{
	return action(ctl, "kill", KF_MSG_KILL_REQ, argc, argv);
}

int kf__ctl_retry(struct kf__ctl *ctl, int argc, char **argv)
{
	return action(ctl, "retry", KF_MSG_RETRY_REQ, argc, argv);
}
