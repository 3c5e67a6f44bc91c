/*
 * ctl_wait.c — `keyforgectl wait [ID...]`: polls the jobs until every one
 * is final (DESIGN.md §10: exit 0 then, whatever the outcome; --strict
 * makes an unsuccessful outcome exit 5). Without ids, the jobs that are not
 * final when it starts: "wait for what I queued", for a script that
 * submitted without keeping the ids. Jobs submitted later are not waited
 * for, so a hive that never empties does not keep it waiting.
 *
 * Polling (get) rather than job events: events are lossy and say nothing
 * about a job that finished before we subscribed; a get every 200–1000 ms
 * per unfinished job costs the broker one indexed row read.
 *
 * A broker outage during the wait (a restart, the database away) is
 * waited out — jobs keep running meanwhile — but a broker never reached
 * at all is an error at once, so that a wrong address does not hang. A
 * broker that answers "database unavailable" to the very first request was
 * reached: that outage is waited out too.
 */
#include <stdlib.h>
#include <string.h>

#include "admin/ctl.h"
#include "common/clock.h"

#define POLL_MIN_MS 200
#define POLL_MAX_MS 1000

struct wait_opts {
	const char *timeout;
	bool strict, quiet;
};

struct waited {
	uint64_t id;
	bool final;
	bool known;                  /* state and progress are a reply's */
	enum kf_job_state state;
	double progress;
};

/* The wait's clock: its start and the --timeout it was given. */
struct wait_clock {
	uint64_t start_ns;
	uint64_t timeout_ms;         /* with wait_opts.timeout */
	nng_duration per_call_ms;    /* the global --timeout */
};

static int on_opt(void *state, int id, const char *arg)
{
	struct wait_opts *o = state;

	switch (id) {
	case 't': o->timeout = arg; return -1;
	case 's': o->strict = true; return -1;
	case 'q': o->quiet = true; return -1;
	default: return KF__CTL_USAGE;
	}
}

/* ID STATE, then the last attempt's error ("OUTCOME: message") when it
 * says more: its outcome is usually the job's state, written once. The
 * layout and the error are the broker's strings (kf__ctl_safe). */
static void print_final(const struct kf_msg_job *j)
{
	const char *state = kf_job_state_name(j->state);
	const char *err = j->n_errors ? j->errors[j->n_errors - 1].message : NULL;
	struct kf_strbuf safe = KF_STRBUF_INIT;
	size_t n = strlen(state);

	if (j->state == KF_JOB_SUCCEEDED && j->result)
		printf("%llu succeeded score %.4f layout %s\n", (unsigned long long)j->id,
		       j->result->cost, kf__ctl_safe(&safe, j->result->layout));
	else if (err && !strncmp(err, state, n) && (!err[n] || !strncmp(err + n, ": ", 2)))
		printf("%llu %s\n", (unsigned long long)j->id, kf__ctl_safe(&safe, err));
	else if (err)
		printf("%llu %s: %s\n", (unsigned long long)j->id, state, kf__ctl_safe(&safe, err));
	else
		printf("%llu %s\n", (unsigned long long)j->id, state);
	fflush(stdout);
	kf_strbuf_release(&safe);
}

static void timed_out(const struct wait_opts *o, const struct waited *w, size_t n)
{
	struct kf_strbuf sb = KF_STRBUF_INIT;

	for (size_t i = 0; i < n; i++) {
		if (w[i].final)
			continue;
		kf_strbuf_addf(&sb, "%s%llu (%s", sb.len ? ", " : "", (unsigned long long)w[i].id,
			       w[i].known ? kf_job_state_name(w[i].state) : "state unknown");
		if (w[i].known && w[i].state == KF_JOB_RUNNING)
			kf_strbuf_addf(&sb, " %.0f%%", 100.0 * w[i].progress);
		kf_strbuf_addch(&sb, ')');
	}
	kf__ctl_fail(KF__CTL_TIMEOUT, "wait: timed out after %s; not final yet: %s", o->timeout,
		     sb.buf);
	kf_strbuf_release(&sb);
}

static uint64_t elapsed_ms(const struct wait_clock *c)
{
	return (kf_clock_mono_ns() - c->start_ns) / 1000000u;
}

/* The time one request may take: the global --timeout, but once the broker
 * has answered, no more than is left of the wait's --timeout (and at least
 * POLL_MIN_MS, so that a healthy broker is always asked): a broker that
 * stops answering does not hold `wait --timeout 2s` for 5 s more. The
 * first request keeps the whole time: a broker never reached is exit 4. */
static nng_duration call_timeout(const struct wait_opts *o, const struct wait_clock *c,
	bool reached)
{
	uint64_t el, left;

	if (!o->timeout || !reached)
		return c->per_call_ms;
	el = elapsed_ms(c);
	left = el < c->timeout_ms ? c->timeout_ms - el : 0;
	if (left < POLL_MIN_MS)
		left = POLL_MIN_MS;
	return left < (uint64_t)c->per_call_ms ? (nng_duration)left : c->per_call_ms;
}

/* One round over the unfinished jobs. Returns -1 to go on, else a status. */
static int poll_round(struct kf__ctl *ctl, const struct wait_opts *o, const struct wait_clock *c,
	struct waited *w, size_t n, bool *reached, bool *warned)
{
	struct kf_strbuf why = KF_STRBUF_INIT;
	int status = -1;

	for (size_t i = 0; i < n && status < 0; i++) {
		struct kf_msg *rep = NULL;
		int st;

		if (w[i].final)
			continue;
		kf_strbuf_reset(&why);
		ctl->timeout_ms = call_timeout(o, c, *reached);
		st = kf__ctl_get_job(ctl, w[i].id, &rep, &why);
		ctl->timeout_ms = c->per_call_ms;
		*reached |= ctl->answered;
		if (st == KF__CTL_UNAVAIL && *reached) {
			/* the wait's own time is up: the caller says so */
			if (!*warned && !(o->timeout && elapsed_ms(c) >= c->timeout_ms))
				kf__ctl_fail(0, "wait: %s; still waiting", why.buf);
			*warned = true;
			break; /* try again next round */
		}
		if (st != KF__CTL_OK) {
			status = kf__ctl_fail(st, "%s", why.buf);
			break;
		}
		*reached = true;
		*warned = false;
		w[i].known = true;
		w[i].state = rep->get_rep.job->state;
		w[i].progress = rep->get_rep.job->progress;
		if (kf_job_state_final(w[i].state)) {
			w[i].final = true;
			if (!o->quiet)
				print_final(rep->get_rep.job);
		}
		kf_msg_free(rep);
	}
	kf_strbuf_release(&why);
	return status;
}

/* The jobs pending, running or retrying now, every page of them. */
static int active_jobs(struct kf__ctl *ctl, struct waited **w, size_t *n)
{
	uint64_t after = 0;
	size_t cap = 0;
	bool last;
	int status;

	for (;;) {
		struct kf_msg req, *rep = NULL;
		const struct kf_msg_list_rep *r;

		kf__ctl_msg_init(ctl, &req, KF_MSG_LIST_REQ);
		req.list_req.state_mask = KF_JOB_STATE_BIT(KF_JOB_PENDING) |
			KF_JOB_STATE_BIT(KF_JOB_RUNNING) | KF_JOB_STATE_BIT(KF_JOB_RETRYING);
		req.list_req.after_id = after;
		req.list_req.limit = KF_MSG_MAX_JOBS;
		if ((status = kf__ctl_call(ctl, &req, &rep)))
			return status;
		r = &rep->list_rep;
		if (*n + r->n_jobs > cap) {
			struct waited *more;

			cap = (*n + r->n_jobs) * 2;
			if (!(more = realloc(*w, cap * sizeof(**w)))) {
				kf_msg_free(rep);
				return kf__ctl_fail(KF__CTL_FAIL, "out of memory");
			}
			*w = more;
		}
		for (size_t i = 0; i < r->n_jobs; i++)
			(*w)[(*n)++] = (struct waited){ .id = r->jobs[i].id,
				.known = true, .state = r->jobs[i].state };
		last = r->n_jobs < KF_MSG_MAX_JOBS;
		if (!last)
			after = r->jobs[r->n_jobs - 1].id;
		kf_msg_free(rep);
		if (last)
			return -1; /* parsed: go on */
	}
}

static int parse(struct kf__ctl *ctl, int argc, char **argv, struct wait_opts *o,
	struct waited **w, size_t *n, uint64_t *timeout_ms)
{
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ "strict", no_argument, NULL, 's' },
		{ "quiet", no_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 },
	};
	int first, status;

	status = kf__ctl_getopt(ctl, kf__ctl_find("wait"), argc, argv, "t:q", opts, on_opt, o,
				&first);
	if (status >= 0)
		return status;
	if (o->timeout && !kf__ctl_parse_duration_ms(o->timeout, timeout_ms))
		return kf__ctl_bad_value("wait", "--timeout", o->timeout,
					 "a duration (seconds, or 30s, 5m)");
	if (first >= argc)
		return active_jobs(ctl, w, n);
	*n = (size_t)(argc - first);
	if (!(*w = calloc(*n, sizeof(**w))))
		return kf__ctl_fail(KF__CTL_FAIL, "out of memory");
	for (size_t i = 0; i < *n; i++)
		if (!kf__ctl_parse_job_id(argv[first + (int)i], &(*w)[i].id))
			return kf__ctl_bad_value("wait", "job id", argv[first + (int)i],
						 "a job id (1, 2, ...)");
	return -1;
}

int kf__ctl_wait(struct kf__ctl *ctl, int argc, char **argv)
{
	struct wait_opts o = { 0 };
	struct wait_clock c = { .start_ns = kf_clock_mono_ns() };
	struct waited *w = NULL;
	size_t n = 0;
	uint64_t timeout_ms = 0, pause = POLL_MIN_MS, elapsed;
	bool reached = false, warned = false, all_ok = true;
	int status;

	if ((status = parse(ctl, argc, argv, &o, &w, &n, &timeout_ms)) >= 0)
		goto out;
	c.timeout_ms = timeout_ms;
	c.per_call_ms = ctl->timeout_ms;
	if (!n && !o.quiet)
		fprintf(stderr, "keyforgectl wait: no job is pending, running or retrying\n");
	for (;;) {
		size_t left = 0;

		if ((status = poll_round(ctl, &o, &c, w, n, &reached, &warned)) >= 0)
			goto out;
		for (size_t i = 0; i < n; i++)
			left += !w[i].final;
		if (!left)
			break;
		elapsed = elapsed_ms(&c);
		if (o.timeout && elapsed >= timeout_ms) {
			timed_out(&o, w, n);
			status = KF__CTL_TIMEOUT;
			goto out;
		}
		kf_sleep_ms(o.timeout && timeout_ms - elapsed < pause ? timeout_ms - elapsed : pause);
		pause = pause * 3 / 2 < POLL_MAX_MS ? pause * 3 / 2 : POLL_MAX_MS;
	}
	for (size_t i = 0; i < n; i++)
		all_ok &= w[i].state == KF_JOB_SUCCEEDED;
	status = o.strict && !all_ok ? KF__CTL_UNSUCCESSFUL : KF__CTL_OK;
out:
	free(w);
	return status;
}
