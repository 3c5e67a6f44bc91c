/*
 * tui_data.c — what keyforge-admin shows and where it comes from.
 *
 * Events (pub/sub, may be lost): status.cluster once a second from the
 * broker (the Cluster Map and the job counts), job.<id> (a job changed: the
 * Job Queue is fetched again), log.<LEVEL>.<source> (the Log Stream).
 * RPC (req/rep): the job list of the open tab, a job's detail, kill and
 * retry, the log tail at start, and the cluster when status events stop.
 *
 * The broker counts as unreachable when no status event came for
 * STATUS_STALE_MS and the last RPC could not reach it either. After an RPC
 * that got no answer, no refresh is tried for RETRY_MS — neither the rest of
 * that turn's nor one a key asks for — so that the keys stay responsive (a
 * call blocks for up to its timeout).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "admin/tui.h"
#include "common/clock.h"

#define STATUS_STALE_MS 3000   /* the broker publishes status every 1,000 ms */
#define RETRY_MS 2000          /* RPCs while the broker is unreachable */
#define JOBS_EVERY_MS 1000     /* the job list, even without job events */
#define JOBS_DIRTY_MS 200      /* at most this often on job events */
#define DEEP_ROWS 10000        /* a window this far from both ends of a tab ... */
#define JOBS_DEEP_EVERY_MS 10000  /* ... is fetched again this often */
#define MESSAGE_MS 5000
#define BACKGROUND_MS 1000     /* the longest a refresh may block the keys */

void kf__tui_message(struct kf__tui *t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t->msg, sizeof t->msg, fmt, ap);
	va_end(ap);
	t->msg_until_mono_ns = kf_clock_mono_ns() + MESSAGE_MS * KF_NS_PER_MS;
}

const struct kf_msg_cluster_status *kf__tui_status(const struct kf__tui *t)
{
	if (!t->cluster)
		return NULL;
	return t->cluster->type == KF_MSG_CLUSTER_STATUS ? &t->cluster->cluster_status
							  : &t->cluster->cluster_rep.status;
}

bool kf__tui_reachable(const struct kf__tui *t, uint64_t now)
{
	return kf__tui_elapsed_ns(t->status_mono_ns, now) < STATUS_STALE_MS * KF_NS_PER_MS ||
	       !t->rpc_failed;
}

/* One RPC (kf__ctl_call_quiet); the connection state follows whether any
 * reply came back — a refusal (the database is away, say) still means the
 * broker is there. The cause of a failure goes to why. A background call
 * (refreshes, details) waits at most BACKGROUND_MS, so that a broker that
 * went away freezes the keys for no longer; kill and retry get --timeout. */
static int call(struct kf__tui *t, struct kf_msg *req, struct kf_msg **rep,
	struct kf_strbuf *why, bool background)
{
	nng_duration timeout = t->ctl.timeout_ms;
	int status;

	if (background && timeout > BACKGROUND_MS)
		t->ctl.timeout_ms = BACKGROUND_MS;
	t->rpc_tried_mono_ns = kf_clock_mono_ns();
	t->ctl.answered = false;
	status = kf__ctl_call_quiet(&t->ctl, req, rep, why);
	t->rpc_failed = !t->ctl.answered;
	t->ctl.timeout_ms = timeout;
	return status;
}

/* A background call; when the broker refuses it (the database is away,
 * say), the cause goes to the message line after `what` — an unreachable
 * broker is the header's to tell. */
static bool call_say(struct kf__tui *t, struct kf_msg *req, struct kf_msg **rep, const char *what)
{
	struct kf_strbuf why = KF_STRBUF_INIT;
	int status = call(t, req, rep, &why, true);

	if (status != KF__CTL_OK && what && !t->rpc_failed)
		kf__tui_message(t, "%s: %s", what, why.len ? why.buf : "request failed");
	kf_strbuf_release(&why);
	return status == KF__CTL_OK;
}

/* The retry gate of every refresh (kf__tui_may_call); kill, retry and drain,
 * which the operator confirmed, are always sent. */
static bool may_call(const struct kf__tui *t, uint64_t now)
{
	return kf__tui_may_call(t->rpc_failed, t->rpc_tried_mono_ns, now, RETRY_MS * KF_NS_PER_MS);
}

static void set_cluster(struct kf__tui *t, struct kf_msg *m)
{
	kf_msg_free(t->cluster);
	t->cluster = m;
}

static void refresh_cluster(struct kf__tui *t)
{
	struct kf_msg req, *rep = NULL;

	kf__ctl_msg_init(&t->ctl, &req, KF_MSG_CLUSTER_REQ);
	if (call_say(t, &req, &rep, "cluster"))
		set_cluster(t, rep);
}

/* ---- events ------------------------------------------------------------------ */

static void on_event(struct kf__tui *t, struct kf_msg *ev)
{
	switch (ev->type) {
	case KF_MSG_CLUSTER_STATUS:
		t->status_mono_ns = kf_clock_mono_ns();
		t->rpc_failed = false;  /* it is there: let the next call tell */
		set_cluster(t, ev);
		return;                 /* kept */
	case KF_MSG_JOB_EVENT:
		t->jobs_dirty = true;
		break;
	case KF_MSG_LOG:
		kf__tui_logs_add(&t->logs, &ev->log, false);
		break;
	default:
		break;                  /* metric updates and commands are not ours */
	}
	kf_msg_free(ev);
}

void kf__tui_drain_events(struct kf__tui *t)
{
	nng_msg *m;

	/* bounded, so that a storm of events cannot starve the keys */
	for (int i = 0; i < 4096 && kf_bus_sub_recv(t->sub, 0, &m) == KF_OK; i++) {
		struct kf_msg *ev = NULL;

		if (kf_msg_decode_pub(nng_msg_body(m), nng_msg_len(m), &ev, NULL) == KF_OK)
			on_event(t, ev);
		else
			kf_msg_free(ev);  /* malformed: skipped; the broker counts its own */
		nng_msg_free(m);
	}
}

void kf__tui_load_tail(struct kf__tui *t)
{
	struct kf_msg req, *rep = NULL;

	kf__ctl_msg_init(&t->ctl, &req, KF_MSG_LOG_TAIL_REQ);
	req.log_tail_req.count = KF__TUI_TAIL;
	req.log_tail_req.min_level = KF_MSG_LEVEL_TRACE;
	if (!call_say(t, &req, &rep, "log tail"))
		return;
	for (size_t i = 0; i < rep->log_tail_rep.n_events; i++)
		kf__tui_logs_add(&t->logs, &rep->log_tail_rep.events[i], true);
	kf_msg_free(rep);
}

/* ---- jobs -------------------------------------------------------------------- */

uint64_t kf__tui_selected(const struct kf__tui *t)
{
	const struct kf_msg_list_rep *l;

	if (!t->list || t->sel < t->list_top)
		return 0;
	l = &t->list->list_rep;
	return t->sel - t->list_top < l->n_jobs ? l->jobs[t->sel - t->list_top].id : 0;
}

static size_t table_rows(const struct kf__tui *t)
{
	return t->rows ? t->rows : 20;  /* not drawn yet */
}

bool kf__tui_list_covers(const struct kf__tui *t)
{
	return t->list && kf__tui_window_covers(t->list_top, t->list->list_rep.n_jobs, t->total,
						t->top, table_rows(t));
}

/* Finished jobs pile up, and the newest are the ones an operator looks for:
 * the final states' tabs and All list them newest first — from the top of an
 * index rather than an OFFSET through the whole history. Pending, running
 * and retrying jobs stay in the queue's order, oldest first. */
static bool wants_newest_first(int tab)
{
	return tab == KF__TUI_TAB_ALL || kf_job_state_final((enum kf_job_state)tab);
}

bool kf__tui_newest_first(const struct kf__tui *t)
{
	/* a broker older than 1.4 ignores the flag: its lists are oldest first */
	return wants_newest_first(t->tab) && t->order_known;
}

/* A list has come: the selection goes back on its job (on its row when the
 * job is not in the list), the window follows it and stays within the tab,
 * and a window the list does not hold is fetched on the next turn. */
static void follow_selection(struct kf__tui *t)
{
	const struct kf_msg_list_rep *l = &t->list->list_rep;
	size_t rows = table_rows(t);

	t->sel = (size_t)kf__tui_follow(l->jobs, l->n_jobs, t->list_top, t->total, t->sel_id,
					t->sel);
	t->sel_id = kf__tui_selected(t);
	if (t->top + rows > t->total)  /* the tab shrank under the window */
		t->top = t->total > rows ? (size_t)t->total - rows : 0;
	if (t->sel < t->top)
		t->top = t->sel;
	else if (t->sel >= t->top + rows)
		t->top = t->sel - rows + 1;
	if (!kf__tui_list_covers(t))
		t->jobs_dirty = true;
}

void kf__tui_fetch_jobs(struct kf__tui *t)
{
	struct kf_msg req, *rep = NULL;
	size_t rows = table_rows(t);
	bool newest = wants_newest_first(t->tab);
	/* The window and up to a page either side (tui_window.c), within the
	 * most a reply carries. */
	size_t window = rows < KF_MSG_MAX_JOBS ? rows : KF_MSG_MAX_JOBS;
	size_t spare = (KF_MSG_MAX_JOBS - window) / 2;
	size_t margin = window < spare ? window : spare;
	size_t first = t->top > margin ? t->top - margin : 0;
	/* From the far end only with a broker that takes the order (1.4). */
	struct kf__tui_window w = kf__tui_window(t->order_known ? t->total : 0, first,
		(uint32_t)(t->top - first + window + margin));

	if (!may_call(t, kf_clock_mono_ns())) {
		t->jobs_dirty = true;  /* the turn after the retry gate opens */
		return;
	}
	kf__ctl_msg_init(&t->ctl, &req, KF_MSG_LIST_REQ);
	req.list_req.state_mask = t->tab == KF__TUI_TAB_ALL ? 0 : KF_JOB_STATE_BIT(t->tab);
	req.list_req.newest_first = newest != w.reversed;
	req.list_req.offset = w.offset;
	req.list_req.limit = w.limit;
	t->jobs_mono_ns = kf_clock_mono_ns();
	t->jobs_dirty = false;
	if (!call_say(t, &req, &rep, "job list"))
		return;
	t->order_known = rep->minor >= KF_PROTO_MINOR_NEWEST_FIRST;
	if (w.reversed)
		kf__tui_window_flip(&rep->list_rep);
	kf_msg_free(t->list);
	t->list = rep;
	t->list_top = first;
	t->total = rep->list_rep.total;
	follow_selection(t);
	t->redraw = true;  /* before the next key: x acts on the job it sees */
}

void kf__tui_fetch_detail(struct kf__tui *t)
{
	struct kf_msg req, *rep = NULL;
	struct kf_strbuf why = KF_STRBUF_INIT;
	uint64_t id = kf__tui_selected(t);

	if (!id || !may_call(t, kf_clock_mono_ns()))
		return;  /* the box says loading until the list's next fetch */
	kf__ctl_msg_init(&t->ctl, &req, KF_MSG_GET_REQ);
	req.get_req.job_id = id;
	if (call(t, &req, &rep, &why, true) == KF__CTL_OK) {
		kf_msg_free(t->job);
		t->job = rep;
		t->redraw = true;
	} else {
		kf__tui_message(t, "job %llu: %s", (unsigned long long)id, why.buf);
	}
	kf_strbuf_release(&why);
}

void kf__tui_act(struct kf__tui *t, bool kill, uint64_t id)
{
	struct kf_msg req, *rep = NULL;
	struct kf_strbuf why = KF_STRBUF_INIT;

	kf__ctl_msg_init(&t->ctl, &req, kill ? KF_MSG_KILL_REQ : KF_MSG_RETRY_REQ);
	if (kill)
		req.kill_req.job_id = id;
	else
		req.retry_req.job_id = id;
	if (call(t, &req, &rep, &why, false) == KF__CTL_OK) {
		enum kf_job_state st = kill ? rep->kill_rep.state : rep->retry_rep.state;

		/* A running job is killed once its worker has stopped it and
		 * said so: "now running" would read as a kill that failed. */
		if (kill && st == KF_JOB_RUNNING)
			kf__tui_message(t, "job %llu: kill accepted, cancel sent to its worker",
					(unsigned long long)id);
		else
			kf__tui_message(t, "job %llu: %s accepted, now %s", (unsigned long long)id,
					kill ? "kill" : "retry", kf_job_state_name(st));
		kf_msg_free(rep);
	} else {
		kf__tui_message(t, "job %llu: %s", (unsigned long long)id,
				why.len ? why.buf : "request failed");
	}
	kf_strbuf_release(&why);
	t->jobs_dirty = true;
}

void kf__tui_drain_worker(struct kf__tui *t, const char *worker)
{
	struct kf_msg req, *rep = NULL;
	struct kf_strbuf why = KF_STRBUF_INIT;

	kf__ctl_msg_init(&t->ctl, &req, KF_MSG_DRAIN_REQ);
	req.drain_req.worker_id = worker;
	if (call(t, &req, &rep, &why, false) == KF__CTL_OK) {
		kf__tui_message(t, "worker %s: drain sent; it finishes the jobs it holds and exits",
				worker);
		kf_msg_free(rep);
	} else {
		kf__tui_message(t, "worker %s: %s", worker, why.len ? why.buf : "request failed");
	}
	kf_strbuf_release(&why);
}

/* ---- the periodic work ---------------------------------------------------------- */

void kf__tui_tick(struct kf__tui *t, uint64_t now)
{
	uint64_t every_ms, dirty_ms, since;
	bool deep;

	/* `now` was read before this turn's calls: each fetch checks the gate
	 * again on the clock, so that once one call got no answer the others
	 * of the turn are skipped. */
	if (!may_call(t, now))
		return;
	/* Status events stopped (or never came): ask, which also tells whether
	 * the broker is there at all. */
	if (kf__tui_elapsed_ns(t->status_mono_ns, now) >= STATUS_STALE_MS * KF_NS_PER_MS &&
	    kf__tui_elapsed_ns(t->rpc_tried_mono_ns, now) >= RETRY_MS * KF_NS_PER_MS)
		refresh_cluster(t);
	/* Deep in a long tab (from both ends: tui_window.c) the list is an
	 * OFFSET the database walks: on the one connection every job waits
	 * for, so not every second. */
	deep = kf__tui_window_depth(t->order_known ? t->total : 0, t->top) >= DEEP_ROWS;
	every_ms = deep ? JOBS_DEEP_EVERY_MS : JOBS_EVERY_MS;
	dirty_ms = deep ? JOBS_DEEP_EVERY_MS : JOBS_DIRTY_MS;
	since = kf__tui_elapsed_ns(t->jobs_mono_ns, now);
	if (t->view == KF__TUI_JOBS && (since >= every_ms * KF_NS_PER_MS ||
					(t->jobs_dirty && since >= dirty_ms * KF_NS_PER_MS))) {
		kf__tui_fetch_jobs(t);
		if (t->detail)
			kf__tui_fetch_detail(t);
	}
}
