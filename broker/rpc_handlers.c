/*
 * rpc_handlers.c — one function per request type, and the table that maps
 * types to them (docs/operations.md "RPC semantics" is the contract).
 *
 * A handler validates, issues one store request with the call as its
 * argument and returns; the store's completion (on the owner thread, after
 * the commit) builds the reply and calls kf__call_finish. Handlers that
 * need no database (cluster, log tail) reply at once.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_int.h"
#include "common/clock.h"
#include "common/parse.h"

#define MAX_ATTEMPTS_LIMIT 1000

static bool id_ok(uint64_t id)
{
	return id > 0 && id <= (uint64_t)INT64_MAX;
}

static uint64_t ns_u64(int64_t ns)
{
	return ns > 0 ? (uint64_t)ns : 0;
}

static double or_zero(double v)
{
	return isnan(v) ? 0 : v;
}

/* A store failure as the reply's status; the store's message when it has one. */
static void fail_store(struct kf__call *c, const struct kf_store_result *res)
{
	if (res->err == KF_ECANCELED)
		kf__call_fail(c, KF_EUNAVAIL, "the broker is shutting down; try again shortly");
	else if (res->err == KF_EUNAVAIL)
		kf__call_fail(c, KF_EUNAVAIL, "%s", res->message ? res->message :
			      "database unavailable; try again later");
	else
		kf__call_fail(c, res->err, "%s", res->message ? res->message : kf_strerror(res->err));
}

/* kf_store_<op>() refused the request synchronously. */
static void fail_queue(struct kf__call *c, enum kf_err err)
{
	if (err == KF_ECANCELED)
		kf__call_fail(c, KF_EUNAVAIL, "the broker is shutting down; try again shortly");
	else
		kf__call_fail(c, err, "%s: %s", c->h->method, kf_strerror(err));
}

/* ---- hello -------------------------------------------------------------------- */

static void on_hello(void *arg, const struct kf_store_result *res)
{
	struct kf__call *c = arg;
	struct kf_msg rep;

	if (res->err && res->err != KF_EUNAVAIL && res->err != KF_ECANCELED)
		KF_WARN(KF__TARGET_RPC, "worker not recorded in the database",
			KF_STR("worker_id", c->msg->hello_req.worker_id), KF_ERR(res->err));
	memset(&rep, 0, sizeof(rep));
	rep.type = KF_MSG_HELLO_REP;
	rep.hello_rep.heartbeat_ms = KF_WORKERS_HB_MS;
	kf__call_finish(c, &rep);
}

static void h_hello(struct kf_broker *b, struct kf__call *c)
{
	const struct kf_msg_hello_req *q = &c->msg->hello_req;
	uint64_t now = kf_clock_mono_ns();
	enum kf_worker_event ev;
	struct kf_worker *w;
	uint64_t old_inc;
	enum kf_err err;

	if (!*q->worker_id) {
		kf__call_fail(c, KF_EINVAL, "hello: worker_id is empty");
		return;
	}
	err = kf_workers_hello(b->workers, q, now, &w, &ev, &old_inc);
	if (err == KF_EBUSY) {
		kf__worker_id_conflict(w, q->host, q->pid, "hello", now);
		kf__call_fail(c, err, "worker id '%s' is in use by a live worker (host %s, pid %u, "
			      "heard from %llu ms ago); give each worker its own --id",
			      q->worker_id, w->host, (unsigned)w->pid,
			      (unsigned long long)(now > w->last_seen_ns ?
						   (now - w->last_seen_ns) / KF_NS_PER_MS : 0));
		return;
	}
	if (err) {
		kf__call_fail(c, err, "hello: cannot track worker '%s': %s", q->worker_id,
			      kf_strerror(err));
		return;
	}
	kf__worker_event(b, w, ev, old_inc, q->version, false);
	/* A restart this broker saw requeued the old process's jobs already;
	 * one it did not see (it was down, or is new) left them running under
	 * an id that is alive: they carry the old process's incarnation. */
	if (ev != KF_WORKER_EV_RESTARTED)
		kf__requeue_others(b, w);
	struct kf_store_worker_args wa = { .id = q->worker_id, .host = q->host,
		.pid = (int32_t)q->pid, .incarnation = (int64_t)q->incarnation,
		.slots = (int32_t)q->slots, .liveness = KF_WORKER_ALIVE };
	if (kf_store_worker_upsert(b->store, &wa, on_hello, c) != KF_OK)
		on_hello(c, &(struct kf_store_result){ .op = KF_STORE_WORKER_UPSERT,
			     .err = KF_EUNAVAIL });
}

/* ---- lease ------------------------------------------------------------------------ */

const char *kf__call_worker(const struct kf__call *c)
{
	return c->msg->type == KF_MSG_COMPLETE_REQ ? c->msg->complete_req.worker_id
						   : c->msg->lease_req.worker_id;
}

void kf__lease_reply(struct kf__call *c, const struct kf_msg_lease *lease)
{
	struct kf_msg rep;

	memset(&rep, 0, sizeof(rep));
	if (c->msg->type == KF_MSG_COMPLETE_REQ) {
		rep.complete_rep = c->nx.rep;
		rep.complete_rep.lease = lease;
	} else {
		rep.lease_rep.lease = lease;
	}
	kf__call_finish(c, &rep);
}

/* The lease of a claimed job, in c's arena (NULL: out of memory); records
 * the lease slot and publishes the job event. */
static const struct kf_msg_lease *build_lease(struct kf__call *c, const struct kf_store_job *job)
{
	struct kf_broker *b = c->b;
	struct kf_msg_lease *lease = kf_jarena_alloc(&c->arena, sizeof(*lease));
	struct kf__lease_slot *slot = &b->leases[(uint64_t)job->id % KF__LEASE_SLOTS];

	if (!lease)
		return NULL;
	lease->job_id = (uint64_t)job->id;
	lease->attempt = (uint32_t)job->attempt;
	lease->lease_token = job->lease_token;
	if (kf_jobjson_parse_params(job->params, &c->arena, &lease->params) != KF_OK)
		KF_WARN(KF__TARGET_RPC, "job parameters unreadable", KF_U64("job_id", lease->job_id));
	/* A progress report's step counts every restart (layout/anneal.h). */
	*slot = (struct kf__lease_slot){ .job_id = lease->job_id,
		.steps = lease->params.steps * (lease->params.restarts ? lease->params.restarts : 1),
		.lease_token = job->lease_token };
	snprintf(slot->worker_id, sizeof(slot->worker_id), "%s", job->worker_id ? job->worker_id : "");
	kf__job_event(b, lease->job_id, KF_JOB_RUNNING, lease->attempt, job->worker_id, 0,
		      NAN, NULL);
	KF_DEBUG(KF__TARGET_RPC, "job leased", KF_U64("job_id", lease->job_id),
		 KF_STR("worker_id", job->worker_id ? job->worker_id : ""),
		 KF_U64("attempt", lease->attempt));
	return lease;
}

static void reply_lease(struct kf__call *c, const struct kf_store_job *job)
{
	const struct kf_msg_lease *lease = build_lease(c, job);

	if (!lease && c->msg->type == KF_MSG_LEASE_REQ) {
		kf__call_fail(c, KF_ENOMEM, "lease: out of memory");
		return;
	}
	kf__lease_reply(c, lease);
}

struct release {
	struct kf_broker *b;
	int64_t job_id;
};

/* The lease's client is gone: give the job back at once rather than wait
 * for the worker's next heartbeat to disagree. A kill asked for since the
 * claim ends the job instead (sql/011): an outcome, counted and announced
 * as the worker's report of it would have been. */
static void on_release(void *arg, const struct kf_store_result *res)
{
	struct release *r = arg;
	struct kf_broker *b = r->b;

	if (res->err == KF_OK && res->complete.state == KF_JOB_PENDING) {
		kf__lease_wake(b, 1);
	} else if (res->err == KF_OK && res->complete.state == KF_JOB_KILLED &&
		   !res->complete.duplicate) {
		KF_INFO(KF__TARGET, "job killed", KF_I64("job_id", r->job_id),
			KF_I64("attempt", res->complete.attempt));
		kf__job_outcome(b, KF_JOB_KILLED);
		kf__job_event(b, (uint64_t)r->job_id, KF_JOB_KILLED,
			      (uint32_t)res->complete.attempt, NULL, 0, NAN, NULL);
	}
	free(r);
}

static void release_id(struct kf_broker *b, int64_t job_id, uint64_t lease_token)
{
	struct kf_store_complete_args a = { .job_id = job_id, .lease_token = lease_token,
		.outcome = KF_STORE_RELEASED, .best_cost = NAN };
	struct release *r = malloc(sizeof(*r));

	KF_DEBUG(KF__TARGET_RPC, "lease abandoned by its client", KF_I64("job_id", job_id));
	kf__lease_forget(b, (uint64_t)job_id);
	/* Not handed back: the orphan sweep finds the lease nobody holds. */
	if (!r)
		return;
	*r = (struct release){ b, job_id };
	if (kf_store_complete(b->store, &a, on_release, r) != KF_OK)
		free(r);
}

static void release(struct kf_broker *b, const struct kf_store_job *job)
{
	release_id(b, job->id, job->lease_token);
}

static void on_claim(void *arg, const struct kf_store_result *res)
{
	struct kf__call *c = arg;
	struct kf_broker *b = c->b;
	bool is_lease = c->msg->type == KF_MSG_LEASE_REQ;
	bool time_left = kf_clock_mono_ns() < c->deadline_ns && !b->draining;

	if (res->err == KF_OK && res->claim.job) {
		if (!kf__call_alive(c)) {
			release(b, res->claim.job);
			kf__call_drop(c);
			return;
		}
		bool from_park = c->from_park;

		reply_lease(c, res->claim.job); /* frees c */
		if (from_park || b->wake_budget)
			kf__lease_wake(b, 0);
		return;
	}
	/* A complete's answer stands whatever the claim did: no job then. */
	if (res->err && res->err != KF_EUNAVAIL && res->err != KF_ECANCELED) {
		if (is_lease)
			fail_store(c, res);
		else
			kf__lease_reply(c, NULL);
		return;
	}
	if (res->err == KF_OK && c->from_park)
		b->wake_budget = 0; /* the database has nothing claimable now */
	if (time_left && res->err != KF_ECANCELED) {
		kf__lease_park(b, c, c->from_park);
		return;
	}
	if (res->err && is_lease && c->msg->lease_req.wait_ms == 0)
		fail_store(c, res);
	else
		kf__lease_reply(c, NULL);
}

/* The incarnation of the worker's process as this broker knows it (0: not
 * known). */
static uint64_t incarnation_of(struct kf_broker *b, const char *worker_id)
{
	const struct kf_worker *w = kf_workers_find(b->workers, worker_id);

	return w ? w->incarnation : 0;
}

/* The process a lease call (or a complete with lease_next) leases for, as
 * it says (protocol 1.2); 0 from older workers. */
static uint64_t call_incarnation(const struct kf__call *c)
{
	return c->msg->type == KF_MSG_COMPLETE_REQ ? c->msg->complete_req.incarnation
						   : c->msg->lease_req.incarnation;
}

/* The incarnation a claim for c records: the asker's own when it says, else
 * the one this broker knows for the id. */
static uint64_t claim_incarnation(struct kf_broker *b, const struct kf__call *c)
{
	uint64_t inc = call_incarnation(c);

	return inc ? inc : incarnation_of(b, kf__call_worker(c));
}

/* The fences a claim passes first (kf__lease_fenced explains them). */
enum fence { FENCE_NONE, FENCE_REPLACED, FENCE_SILENT, FENCE_UNHEARD, FENCE_DRAINED };

/* Which fence holds back a claim for worker_id by process `asker` (0: not
 * said), with a refusal counted; *w is the worker on record, NULL when
 * none. One lookup: this runs for every lease. */
static enum fence claim_fence(struct kf_broker *b, const char *worker_id, uint64_t asker,
	struct kf_worker **w)
{
	*w = kf_workers_find(b->workers, worker_id);
	if (!*w)
		return FENCE_NONE;
	if (asker && (*w)->incarnation && asker != (*w)->incarnation) {
		kf_counter_inc(b->m.leases_refused_replaced);
		return FENCE_REPLACED;
	}
	if ((*w)->liveness == KF_WORKER_DEAD) {
		kf_counter_inc(b->m.leases_refused_silent);
		return FENCE_SILENT;
	}
	if ((*w)->drain_requested)
		return FENCE_DRAINED;
	return (*w)->heard ? FENCE_NONE : FENCE_UNHEARD;
}

/*
 * The lease fences. True when c was answered here, or is held (parked).
 *
 * Replaced: a process that was frozen (SIGSTOP, a VM pause) or cut off long
 * enough for another process to register under its id finds, when it wakes,
 * that its jobs were requeued and its heartbeats are refused; without this
 * it would still lease new jobs, which nobody would requeue if it then
 * died, because the id is alive. A lease from any incarnation other than
 * the registered one is refused with KF_EBUSY; the worker registers again,
 * and the hello's rule (kf_workers_incarnation_ok) decides who holds the id.
 *
 * Silent: a worker whose heartbeats do not reach this broker. Liveness is
 * its heartbeats (DESIGN §3); one silent for KF_WORKERS_DEAD_AFTER intervals
 * is dead here and its jobs are requeued, so a job it leased now would be
 * requeued by the next orphan sweep too, an attempt spent for nothing —
 * again and again while, say, its ingest address is wrong or cut off and
 * its rpc connection is not. It gets no job (KF_ESTATE: not a reason to
 * register again) until a heartbeat makes it alive; WARN at the first
 * refusal of a silence, and the worker logs the reason. The time of the
 * refusal keeps its record from being forgotten (kf_workers_sweep).
 *
 * Unheard: the same worker before it counts as dead. Its hello registered
 * it (a new process, or one back after a silence), and no heartbeat has come
 * since; it might never come. A job leased now would be requeued once the
 * worker counts as dead, 10 s on. So the lease is held, parked as a
 * long poll that no job wakes, until a heartbeat arrives
 * (kf__on_heartbeat wakes it) or its wait ends with no job; and a
 * complete's claim is skipped. A worker sends a heartbeat right after its
 * hello, so only a worker that cannot be heard waits more than moments.
 *
 * Drained: an operator drained this process (h_drain). The command travels
 * on the commands socket and the worker's leases on rpc, so a lease may
 * come after the drain and before the worker has the command; it is held
 * like an unheard worker's, and no job goes to a worker being drained.
 * A restart of the worker (another incarnation) ends the drain.
 */
bool kf__lease_fenced(struct kf_broker *b, struct kf__call *c)
{
	uint64_t asker = call_incarnation(c), now, silent_s;
	struct kf_worker *w;

	switch (claim_fence(b, kf__call_worker(c), asker, &w)) {
	case FENCE_NONE:
		return false;
	case FENCE_REPLACED:
		KF_WARN(KF__TARGET_RPC, "lease refused: worker id held by another process",
			KF_STR("worker_id", w->id), KF_U64("incarnation", asker),
			KF_U64("registered_incarnation", w->incarnation));
		if (c->msg->type == KF_MSG_COMPLETE_REQ)
			kf__lease_reply(c, NULL); /* the completion's answer stands; no job */
		else
			kf__call_fail(c, KF_EBUSY, "lease: worker '%s' is registered by another "
				      "process (incarnation %llu, not %llu): register again", w->id,
				      (unsigned long long)w->incarnation, (unsigned long long)asker);
		return true;
	case FENCE_UNHEARD:
	case FENCE_DRAINED:
		if (c->parked)
			return true;        /* stays parked: the pump passes it by */
		if (kf_clock_mono_ns() < c->deadline_ns && !b->draining) {
			KF_DEBUG(KF__TARGET_RPC, w->drain_requested ? "lease held: the worker is "
				 "drained" : "lease held: no heartbeat from the worker yet",
				 KF_STR("worker_id", w->id));
			kf__lease_park(b, c, false);
		} else {
			kf__lease_reply(c, NULL);
		}
		return true;
	case FENCE_SILENT:
		now = kf_clock_mono_ns();
		silent_s = now > w->last_seen_ns ? (now - w->last_seen_ns) / (1000 * KF_NS_PER_MS) : 0;
		if (w->lease_refused_ns < w->dead_since_ns)   /* none since it died */
			KF_WARN(KF__TARGET_RPC, "lease refused: no heartbeat from the worker",
				KF_STR("worker_id", w->id), KF_U64("silent_s", silent_s));
		w->lease_refused_ns = now;
		if (c->msg->type == KF_MSG_COMPLETE_REQ)
			kf__lease_reply(c, NULL);
		else
			kf__call_fail(c, KF_ESTATE, "lease: no heartbeat from worker '%s' has reached "
				      "the broker for %llu s, so it counts as dead and gets no job until "
				      "one does; can it reach the broker's ingest address?", w->id,
				      (unsigned long long)silent_s);
		return true;
	}
	return false;
}

void kf__lease_claim(struct kf_broker *b, struct kf__call *c)
{
	enum kf_err err = kf_store_claim(b->store, kf__call_worker(c), claim_incarnation(b, c),
					 on_claim, c);

	if (err && c->msg->type == KF_MSG_COMPLETE_REQ)
		kf__lease_reply(c, NULL); /* the completion's answer, no job */
	else if (err)
		fail_queue(c, err);
}

static void h_lease(struct kf_broker *b, struct kf__call *c)
{
	const struct kf_msg_lease_req *q = &c->msg->lease_req;
	uint32_t wait = q->wait_ms < b->cfg.max_wait_ms ? q->wait_ms : b->cfg.max_wait_ms;

	if (!*q->worker_id) {
		kf__call_fail(c, KF_EINVAL, "lease: worker_id is empty");
		return;
	}
	c->deadline_ns = c->started_ns + (uint64_t)wait * KF_NS_PER_MS;
	if (kf__lease_fenced(b, c))
		return;
	if (!kf_store_is_up(b->store)) {
		if (wait > 0)
			kf__lease_park(b, c, false); /* claims resume when it is back */
		else
			kf__call_fail(c, KF_EUNAVAIL, "database unavailable; no job can be leased now");
		return;
	}
	kf__lease_claim(b, c);
}

/* ---- progress ----------------------------------------------------------------------- */

static void on_progress(void *arg, const struct kf_store_result *res)
{
	struct kf__call *c = arg;
	struct kf_msg rep;

	memset(&rep, 0, sizeof(rep));
	rep.type = KF_MSG_PROGRESS_REP;
	switch (res->err) {
	case KF_OK:
		rep.progress_rep.cancel = res->progress.cancel;
		break;
	case KF_ESTALE: case KF_ENOENT:
		/* The attempt is over for the broker: tell the worker to stop and
		 * forget it, with the status saying why. */
		rep.progress_rep.drop = true;
		rep.progress_rep.rep.status = res->err;
		rep.progress_rep.rep.error = res->err == KF_ESTALE ?
			"the lease is stale (the job was requeued or finished): stop and drop it" :
			"no such job: stop and drop it";
		break;
	default:
		fail_store(c, res);
		return;
	}
	kf__call_finish(c, &rep);
}

static void h_progress(struct kf_broker *b, struct kf__call *c)
{
	const struct kf_msg_progress_req *q = &c->msg->progress_req;
	struct kf__lease_slot *slot = kf__lease_slot(b, q->job_id);
	double frac = NAN;
	enum kf_err err;

	if (!id_ok(q->job_id)) {
		kf__call_fail(c, KF_EINVAL, "progress: job_id %llu is not a job id",
			      (unsigned long long)q->job_id);
		return;
	}
	if (slot && slot->steps)
		frac = fmin(1.0, (double)q->step / (double)slot->steps);
	err = kf_store_progress(b->store, (int64_t)q->job_id, q->lease_token, frac,
				isfinite(q->best_cost) ? q->best_cost : NAN, on_progress, c);
	if (err)
		fail_queue(c, err);
}

/* ---- complete ----------------------------------------------------------------------- */

static void log_completion(struct kf_broker *b, uint64_t job_id, const struct kf_store_result *res,
	const char *worker, const char *error, double cost, bool expired)
{
	uint32_t attempt = (uint32_t)res->complete.attempt;

	switch (res->complete.state) {
	case KF_JOB_SUCCEEDED:
		/* DEBUG, a state transition (DESIGN.md §5): the INFO line of a
		 * job's life is the worker's "job completed", in its
		 * job_execution span. At a thousand jobs a second, a second
		 * INFO line here cost the broker a quarter of its CPU
		 * (docs/performance.md). */
		KF_DEBUG(KF__TARGET, "job completed", KF_U64("job_id", job_id),
			KF_U64("attempt", attempt), KF_STR("worker_id", worker), KF_F64("score", cost));
		break;
	case KF_JOB_RETRYING:
		KF_WARN(KF__TARGET, "job retrying", KF_U64("job_id", job_id), KF_U64("attempt", attempt),
			KF_I64("retry_in_ms", res->complete.retry_in_ms),
			KF_STR("error", error ? error : "failed"));
		break;
	case KF_JOB_FAILED:
		/* The worker stopped at the deadline: the reaper's words for the
		 * same end, with the result kept this time. */
		KF_WARN(KF__TARGET, expired ? "job deadline exceeded" : "job failed",
			KF_U64("job_id", job_id), KF_U64("attempt", attempt),
			KF_STR("error", error ? error : "failed"));
		break;
	case KF_JOB_KILLED:
		KF_INFO(KF__TARGET, "job killed", KF_U64("job_id", job_id), KF_U64("attempt", attempt));
		break;
	default:
		break;
	}
	(void)b;
}

/*
 * Complete with lease_next. h_complete queues the completion and a claim
 * back to back, so that one group-commit batch carries both; the reply
 * waits for both callbacks (in either order) and then either carries the
 * claimed job, or parks the call like a lease long-poll (the completion is
 * already durable; only the reply waits), or says "no job". A job claimed
 * for a call whose completion failed, or whose client is gone, is handed
 * back at once (released: no attempt charged).
 */
static void next_finish(struct kf__call *c)
{
	struct kf_broker *b = c->b;
	enum kf_err st = c->nx.rep.rep.status;
	bool answered = st == KF_OK || c->nx.rep.drop;
	const struct kf_msg_lease *lease = c->nx.lease;

	if (lease && (!answered || !kf__call_alive(c))) {
		release_id(b, (int64_t)c->nx.job_id, c->nx.lease_token);
		lease = NULL;
	}
	if (!kf__call_alive(c)) {
		kf__call_drop(c); /* the worker resends its complete: a duplicate */
		return;
	}
	if (!lease && answered && c->nx.claim_ok && kf_clock_mono_ns() < c->deadline_ns &&
	    !b->draining && kf_store_is_up(b->store)) {
		kf__lease_park(b, c, false);
		return;
	}
	kf__lease_reply(c, lease);
}

static void complete_answer(struct kf__call *c, const struct kf_msg_complete_rep *rep)
{
	struct kf_msg m;

	if (!c->nx.wanted) {
		memset(&m, 0, sizeof(m));
		m.complete_rep = *rep;
		kf__call_finish(c, &m);
		return;
	}
	c->nx.rep = *rep;
	c->nx.complete_seen = true;
	if (c->nx.claim_seen)
		next_finish(c);
}

static void on_next_claim(void *arg, const struct kf_store_result *res)
{
	struct kf__call *c = arg;

	c->nx.claim_seen = true;
	c->nx.claim_ok = res->err == KF_OK;
	if (res->err == KF_OK && res->claim.job) {
		c->nx.job_id = (uint64_t)res->claim.job->id;
		c->nx.lease_token = res->claim.job->lease_token;
		c->nx.lease = build_lease(c, res->claim.job);
		if (!c->nx.lease) /* no memory for it: give it back */
			release(c->b, res->claim.job);
		c->nx.claim_ok = false; /* a job was found: no waiting */
	}
	if (c->nx.complete_seen)
		next_finish(c);
}

static void on_complete(void *arg, const struct kf_store_result *res)
{
	struct kf__call *c = arg;
	struct kf_broker *b = c->b;
	const struct kf_msg_complete_req *q = &c->msg->complete_req;
	struct kf__lease_slot *slot = kf__lease_slot(b, q->job_id);
	const char *worker = slot ? slot->worker_id : NULL;
	struct kf_msg rep;

	memset(&rep, 0, sizeof(rep));
	rep.type = KF_MSG_COMPLETE_REP;
	if (res->err == KF_ESTALE || res->err == KF_ENOENT) {
		rep.complete_rep.drop = true;
		rep.complete_rep.rep.status = res->err;
		rep.complete_rep.rep.error = res->err == KF_ESTALE ?
			"the lease is stale: this attempt no longer counts, drop its result" :
			"no such job: drop the result";
		complete_answer(c, &rep.complete_rep);
		return;
	}
	if (res->err) {
		if (!c->nx.wanted) {
			fail_store(c, res); /* the worker keeps the result and resends */
			return;
		}
		rep.complete_rep.rep.status = res->err == KF_ECANCELED ? KF_EUNAVAIL : res->err;
		snprintf(c->nx.error, sizeof(c->nx.error), "%s", res->message ? res->message :
			 kf_strerror(rep.complete_rep.rep.status));
		rep.complete_rep.rep.error = c->nx.error;
		complete_answer(c, &rep.complete_rep);
		return;
	}
	if (!res->complete.duplicate) {
		double cost = q->result ? q->result->cost : NAN;

		log_completion(b, q->job_id, res, worker ? worker : "", q->error, cost, q->expired);
		/* A hand-back is no outcome of the job: nothing to count, unless
		 * a kill was asked for meanwhile and it ended the job (sql/011). */
		if (!q->released || res->complete.state != KF_JOB_PENDING)
			kf__job_outcome(b, res->complete.state);
		else
			KF_INFO(KF__TARGET, "job handed back", KF_U64("job_id", q->job_id),
				KF_STR("worker_id", worker ? worker : ""));
		kf__job_event(b, q->job_id, res->complete.state, (uint32_t)res->complete.attempt,
			      worker, res->complete.state == KF_JOB_SUCCEEDED ? 1.0 : 0, cost, q->error);
		if (res->complete.state == KF_JOB_PENDING)
			kf__lease_wake(b, 1);
		else if (res->complete.state == KF_JOB_RETRYING)
			kf__promote_due(b, res->complete.retry_in_ms);
		kf__lease_forget(b, q->job_id);
	}
	complete_answer(c, &rep.complete_rep);
}

static void h_complete(struct kf_broker *b, struct kf__call *c)
{
	static const enum kf_store_outcome outcome_of[KF_JOB_STATE_COUNT] = {
		[KF_JOB_SUCCEEDED] = KF_STORE_SUCCEEDED, [KF_JOB_FAILED] = KF_STORE_FAILED,
		[KF_JOB_KILLED] = KF_STORE_KILLED,
	};
	const struct kf_msg_complete_req *q = &c->msg->complete_req;
	struct kf_strbuf json = KF_STRBUF_INIT;
	struct kf_store_complete_args a = { .job_id = (int64_t)q->job_id,
		.lease_token = q->lease_token,
		.outcome = q->released ? KF_STORE_RELEASED :
			   q->expired ? KF_STORE_EXPIRED : outcome_of[q->outcome],
		.error = q->error, .best_cost = q->result ? q->result->cost : NAN };
	struct kf_worker *w;
	enum kf_err err;
	bool next;

	if (!id_ok(q->job_id)) {
		kf__call_fail(c, KF_EINVAL, "complete: job_id %llu is not a job id",
			      (unsigned long long)q->job_id);
		return;
	}
	if (q->result && (err = kf_jobjson_result(q->result, &json))) {
		kf_strbuf_release(&json);
		kf__call_fail(c, err, "complete: result not stored: %s", kf_strerror(err));
		return;
	}
	if (!isfinite(a.best_cost))
		a.best_cost = NAN;
	a.result = q->result ? json.buf : NULL;
	/* "and lease my next job": queued right behind the completion and
	 * held with it, so that one batch commits both (one round trip, one
	 * commit) even when the database thread is idle and would otherwise
	 * take the completion alone. */
	/* A replaced, silent or unheard process's completion is taken (its
	 * lease token fences it); only the claim is skipped (the lease fences,
	 * above): the worker's next lease waits, if it must. */
	next = q->lease_next && q->worker_id && *q->worker_id && !b->draining &&
	       claim_fence(b, q->worker_id, q->incarnation, &w) == FENCE_NONE;
	if (next)
		kf_store_hold(b->store);
	err = kf_store_complete(b->store, &a, on_complete, c);
	kf_strbuf_release(&json);
	if (!err && next) {
		uint32_t wait = q->lease_next_wait_ms < b->cfg.max_wait_ms ? q->lease_next_wait_ms
									    : b->cfg.max_wait_ms;

		c->deadline_ns = c->started_ns + (uint64_t)wait * KF_NS_PER_MS;
		c->nx.wanted = kf_store_claim(b->store, q->worker_id, claim_incarnation(b, c),
					      on_next_claim, c) == KF_OK;
	}
	if (next)
		kf_store_release(b->store);
	if (err)
		fail_queue(c, err);
}

/* ---- submit ------------------------------------------------------------------------- */

static void on_submit(void *arg, const struct kf_store_result *res)
{
	struct kf__call *c = arg;
	struct kf_broker *b = c->b;
	const struct kf_msg_job_params *p = &c->msg->submit_req.params;
	struct kf_msg rep;

	if (res->err) {
		fail_store(c, res);
		return;
	}
	if (!res->submit.same_params) {
		/* A key names one job: queueing another, or answering as if this
		 * one had been queued, would both be wrong. */
		kf__call_fail(c, KF_EEXIST, "submit: %s already names job %lld, submitted with "
			      "other parameters; nothing was queued",
			      c->msg->submit_req.key ? "the key" : "the request id",
			      (long long)res->submit.job_id);
		return;
	}
	if (res->submit.created) {
		KF_DEBUG(KF__TARGET, "job submitted", KF_I64("job_id", res->submit.job_id),
			KF_STR("corpus", p->corpus), KF_I64("priority", p->priority),
			KF_U64("steps", p->steps));
		kf__job_event(b, (uint64_t)res->submit.job_id, KF_JOB_PENDING, 0, NULL, 0, NAN, NULL);
		if (!c->woke_lease)
			kf__lease_wake(b, 1);
	}
	memset(&rep, 0, sizeof(rep));
	rep.type = KF_MSG_SUBMIT_REP;
	rep.submit_rep.job_id = (uint64_t)res->submit.job_id;
	rep.submit_rep.existing = !res->submit.created;
	kf__call_finish(c, &rep);
}

/* The checks the broker can make; the layout engine checks the rest when
 * the job runs (a bad corpus path fails the job, not the submission). */
static const char *invalid_params(const struct kf_msg_job_params *p)
{
	if (!*p->corpus)
		return "corpus is empty";
	if (p->max_attempts > MAX_ATTEMPTS_LIMIT)
		return "max_attempts is above 1000";
	if (p->deadline_ms > (uint64_t)INT64_MAX / KF_NS_PER_MS)
		return "deadline_ms is too large";
	if (!isfinite(p->start_temp) || p->start_temp < 0)
		return "start_temp must be 0 (calibrate) or positive";
	for (size_t i = 0; i < p->n_weights; i++)
		if (!*p->weights[i].name || !isfinite(p->weights[i].value))
			return "a weight has an empty name or a value that is not finite";
	return NULL;
}

/* submit_key holds the caller's key behind this prefix, else a request id. */
#define KEY_PREFIX "key:"

/* The caller's key of a stored submit_key; NULL for a request id. */
static const char *caller_key(const char *submit_key)
{
	size_t n = strlen(KEY_PREFIX);

	return submit_key && !strncmp(submit_key, KEY_PREFIX, n) ? submit_key + n : NULL;
}

/* A key is text an operator typed: it appears in logs and error replies. */
static const char *invalid_key(const char *key)
{
	return key && kf_text_has_control(key) ? "the key has a control character" : NULL;
}

static void h_submit(struct kf_broker *b, struct kf__call *c)
{
	const struct kf_msg_submit_req *q = &c->msg->submit_req;
	struct kf_msg_job_params p = q->params;
	struct kf_strbuf json = KF_STRBUF_INIT, key = KF_STRBUF_INIT;
	const char *bad;
	bool handoff;
	enum kf_err err;

	if ((bad = invalid_params(&p)) || (bad = invalid_key(q->key))) {
		kf__call_fail(c, KF_EINVAL, "submit: %s", bad);
		return;
	}
	if (!kf_store_is_up(b->store)) {
		kf__call_fail(c, KF_EUNAVAIL, "database unavailable: the job was not accepted; "
			      "submit it again once the database is back");
		return;
	}
	if (!p.max_attempts)
		p.max_attempts = KF__DEFAULT_MAX_ATTEMPTS;
	if ((err = kf_jobjson_params(&p, &json)))
		goto out;
	/* The caller's key outlives its process; the request id only covers
	 * the resends of one request. The prefix keeps the two apart (a
	 * request id is 16 hex digits, a colon and a number). */
	if (q->key && *q->key)
		kf_strbuf_addf(&key, KEY_PREFIX "%s", q->key);
	else if (q->req.id.client || q->req.id.seq)
		kf_strbuf_addf(&key, "%016llx:%llu", (unsigned long long)q->req.id.client,
			       (unsigned long long)q->req.id.seq);
	struct kf_store_submit_args a = { .params = json.buf, .priority = p.priority,
		.max_attempts = (int32_t)p.max_attempts, .deadline_ms = (int64_t)p.deadline_ms,
		.submit_key = key.len ? key.buf : NULL };
	/* A worker waits: send it to claim now rather than after the submit
	 * commits. Held together, the INSERT and the claim go into one batch,
	 * in that order, so the claim finds the job: submit → running costs one
	 * commit and no extra round through this loop. (The store runs batches
	 * in order on one connection: were the two ever split — a batch is cut
	 * at max_batch requests — the claim would still come after the INSERT,
	 * one commit later.) */
	handoff = b->park_head != NULL;
	if (handoff)
		kf_store_hold(b->store);
	err = kf_store_submit(b->store, &a, on_submit, c);
	if (!err && handoff) {
		c->woke_lease = true;
		kf__lease_wake(b, 1);
	}
	if (handoff)
		kf_store_release(b->store);
out:
	kf_strbuf_release(&json);
	kf_strbuf_release(&key);
	if (err)
		fail_queue(c, err);
}

/* ---- list and get ------------------------------------------------------------------ */

static const char *cut(struct kf__call *c, const char *s, size_t max)
{
	char *out;
	size_t n;

	if (!s || strlen(s) <= max)
		return s;
	n = max;
	while (n && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--; /* do not split a UTF-8 sequence */
	if (!(out = kf_jarena_alloc(&c->arena, n + 1)))
		return NULL;
	memcpy(out, s, n);
	out[n] = '\0';
	return out;
}

static void summary(struct kf__call *c, const struct kf_store_job *j, struct kf_msg_job_summary *s)
{
	*s = (struct kf_msg_job_summary){
		.id = (uint64_t)j->id, .state = j->state, .attempt = (uint32_t)j->attempt,
		.max_attempts = (uint32_t)j->max_attempts, .priority = j->priority,
		.worker_id = j->worker_id, .corpus = j->corpus ? j->corpus : "",
		.progress = or_zero(j->progress), .best_cost = or_zero(j->best_cost),
		.layout = j->layout, .last_error = cut(c, j->error, KF__SUMMARY_ERROR_MAX),
		.created_ns = ns_u64(j->created_ns), .started_ns = ns_u64(j->started_ns),
		.finished_ns = ns_u64(j->finished_ns),
	};
}

static void on_list(void *arg, const struct kf_store_result *res)
{
	struct kf__call *c = arg;
	struct kf_msg_job_summary *jobs = NULL;
	struct kf_msg rep;

	if (res->err) {
		fail_store(c, res);
		return;
	}
	if (res->list.n_jobs &&
	    !(jobs = kf_jarena_alloc(&c->arena, res->list.n_jobs * sizeof(*jobs)))) {
		kf__call_fail(c, KF_ENOMEM, "list: out of memory");
		return;
	}
	for (size_t i = 0; i < res->list.n_jobs; i++)
		summary(c, &res->list.jobs[i], &jobs[i]);
	memset(&rep, 0, sizeof(rep));
	rep.type = KF_MSG_LIST_REP;
	rep.list_rep.jobs = jobs;
	rep.list_rep.n_jobs = res->list.n_jobs;
	rep.list_rep.total = res->list.total > 0 ? (uint64_t)res->list.total : 0;
	kf__call_finish(c, &rep);
}

static void h_list(struct kf_broker *b, struct kf__call *c)
{
	const struct kf_msg_list_req *q = &c->msg->list_req;
	struct kf_store_list_args a = {
		.states = q->state_mask, .cursor = (int64_t)q->after_id, .offset = q->offset,
		.newest_first = q->newest_first,
		.limit = q->limit ? q->limit : KF__LIST_DEFAULT, .with_total = true,
	};
	enum kf_err err;

	if (q->state_mask >> KF_JOB_STATE_COUNT || q->after_id > (uint64_t)INT64_MAX) {
		kf__call_fail(c, KF_EINVAL, "list: state_mask or after_id out of range");
		return;
	}
	if (a.limit > KF_MSG_MAX_JOBS)
		a.limit = KF_MSG_MAX_JOBS;
	if ((err = kf_store_list(b->store, &a, on_list, c)))
		fail_queue(c, err);
}

static struct kf_msg_job_error *job_errors(struct kf__call *c, const struct kf_store_result *res,
	size_t *n_out)
{
	size_t n = 0, first = 0;
	struct kf_msg_job_error *e;

	*n_out = 0;
	for (size_t i = 0; i < res->get.n_attempts; i++)
		if (strcmp(res->get.attempts[i].outcome, "succeeded") != 0)
			n++;
	if (n > KF_MSG_MAX_ERRORS) {
		first = n - KF_MSG_MAX_ERRORS; /* keep the newest */
		n = KF_MSG_MAX_ERRORS;
	}
	if (!n || !(e = kf_jarena_alloc(&c->arena, n * sizeof(*e))))
		return NULL;
	for (size_t i = 0, k = 0, skip = first; i < res->get.n_attempts && k < n; i++) {
		const struct kf_store_attempt *at = &res->get.attempts[i];
		char *text;
		size_t len;

		if (!strcmp(at->outcome, "succeeded") || (skip && skip--))
			continue;
		len = strlen(at->outcome) + (at->message ? strlen(at->message) + 2 : 0) + 1;
		if (len > KF_MSG_MAX_TEXT)
			len = KF_MSG_MAX_TEXT;
		if (!(text = kf_jarena_alloc(&c->arena, len)))
			return NULL;
		snprintf(text, len, "%s%s%s", at->outcome, at->message ? ": " : "",
			 at->message ? at->message : "");
		e[k++] = (struct kf_msg_job_error){ .attempt = (uint32_t)at->attempt,
			.message = cut(c, text, KF_MSG_MAX_TEXT - 4), .at_ns = ns_u64(at->finished_ns) };
	}
	*n_out = n;
	return e;
}

static void on_get(void *arg, const struct kf_store_result *res)
{
	struct kf__call *c = arg;
	const struct kf_store_job *j = res->get.job;
	struct kf_msg_job *job;
	struct kf_msg_job_result *result = NULL;
	struct kf_msg rep;

	if (res->err) {
		fail_store(c, res);
		return;
	}
	if (!(job = kf_jarena_alloc(&c->arena, sizeof(*job))) ||
	    (j->result && !(result = kf_jarena_alloc(&c->arena, sizeof(*result))))) {
		kf__call_fail(c, KF_ENOMEM, "get: out of memory");
		return;
	}
	*job = (struct kf_msg_job){
		.id = (uint64_t)j->id, .state = j->state, .attempt = (uint32_t)j->attempt,
		.max_attempts = (uint32_t)j->max_attempts, .priority = j->priority,
		.worker_id = j->worker_id, .progress = or_zero(j->progress),
		.best_cost = or_zero(j->best_cost), .created_ns = ns_u64(j->created_ns),
		.started_ns = ns_u64(j->started_ns), .finished_ns = ns_u64(j->finished_ns),
		.key = caller_key(j->submit_key),
	};
	kf_jobjson_parse_params(j->params, &c->arena, &job->params);
	if (result && kf_jobjson_parse_result(j->result, &c->arena, result) == KF_OK)
		job->result = result;
	job->errors = job_errors(c, res, &job->n_errors);
	memset(&rep, 0, sizeof(rep));
	rep.type = KF_MSG_GET_REP;
	rep.get_rep.job = job;
	kf__call_finish(c, &rep);
}

static void h_get(struct kf_broker *b, struct kf__call *c)
{
	uint64_t id = c->msg->get_req.job_id;
	enum kf_err err;

	if (!id_ok(id)) {
		kf__call_fail(c, KF_ENOENT, "no job %llu", (unsigned long long)id);
		return;
	}
	if ((err = kf_store_get(b->store, (int64_t)id, on_get, c)))
		fail_queue(c, err);
}

/* ---- kill and retry ------------------------------------------------------------------ */

static void on_kill(void *arg, const struct kf_store_result *res)
{
	struct kf__call *c = arg;
	struct kf_broker *b = c->b;
	uint64_t id = c->msg->kill_req.job_id;
	struct kf_msg rep;

	if (res->err) {
		if (res->err == KF_ESTATE)
			kf__call_fail(c, KF_ESTATE, "job %llu has already finished; nothing to kill",
				      (unsigned long long)id);
		else if (res->err == KF_ENOENT)
			kf__call_fail(c, KF_ENOENT, "no job %llu", (unsigned long long)id);
		else
			fail_store(c, res);
		return;
	}
	if (res->kill.cancel_requested) {
		/* The cancel is resent on every kill (a lost one costs nothing
		 * to repeat); the log line and event only on the first. */
		if (res->kill.changed) {
			KF_INFO(KF__TARGET, "job cancel requested", KF_U64("job_id", id),
				KF_STR("worker_id", res->kill.worker_id ? res->kill.worker_id : ""));
			kf__job_event(b, id, KF_JOB_RUNNING, 0, res->kill.worker_id, 0, NAN,
				      "cancel requested");
		}
		kf__cmd_cancel(b, res->kill.worker_id, id, res->kill.lease_token, NULL);
	} else if (res->kill.state == KF_JOB_KILLED && res->kill.changed) {
		KF_INFO(KF__TARGET, "job killed", KF_U64("job_id", id));
		kf__job_outcome(b, KF_JOB_KILLED);
		kf__job_event(b, id, KF_JOB_KILLED, 0, NULL, 0, NAN, "killed by operator");
	}
	memset(&rep, 0, sizeof(rep));
	rep.type = KF_MSG_KILL_REP;
	rep.kill_rep.state = res->kill.state;
	kf__call_finish(c, &rep);
}

static void h_kill(struct kf_broker *b, struct kf__call *c)
{
	uint64_t id = c->msg->kill_req.job_id;
	enum kf_err err;

	if (!id_ok(id)) {
		kf__call_fail(c, KF_ENOENT, "no job %llu", (unsigned long long)id);
		return;
	}
	if ((err = kf_store_kill(b->store, (int64_t)id, "killed by operator", on_kill, c)))
		fail_queue(c, err);
}

static void on_retry(void *arg, const struct kf_store_result *res)
{
	struct kf__call *c = arg;
	struct kf_broker *b = c->b;
	uint64_t id = c->msg->retry_req.job_id;
	struct kf_msg rep;

	if (res->err) {
		if (res->err == KF_ESTATE)
			kf__call_fail(c, KF_ESTATE, "job %llu is neither failed nor killed; only "
				      "those can be retried", (unsigned long long)id);
		else if (res->err == KF_ENOENT)
			kf__call_fail(c, KF_ENOENT, "no job %llu", (unsigned long long)id);
		else
			fail_store(c, res);
		return;
	}
	KF_INFO(KF__TARGET, "job retried by operator", KF_U64("job_id", id));
	kf__job_event(b, id, KF_JOB_PENDING, 0, NULL, 0, NAN, "retried by operator");
	kf__lease_wake(b, 1);
	memset(&rep, 0, sizeof(rep));
	rep.type = KF_MSG_RETRY_REP;
	rep.retry_rep.state = res->retry.state;
	kf__call_finish(c, &rep);
}

static void h_retry(struct kf_broker *b, struct kf__call *c)
{
	uint64_t id = c->msg->retry_req.job_id;
	enum kf_err err;

	if (!id_ok(id)) {
		kf__call_fail(c, KF_ENOENT, "no job %llu", (unsigned long long)id);
		return;
	}
	if ((err = kf_store_retry(b->store, (int64_t)id, on_retry, c)))
		fail_queue(c, err);
}

/* ---- cluster and log tail (no database) --------------------------------------------------- */

static void h_cluster(struct kf_broker *b, struct kf__call *c)
{
	struct kf_msg rep;

	memset(&rep, 0, sizeof(rep));
	rep.type = KF_MSG_CLUSTER_REP;
	kf__cluster_status(b, kf_clock_mono_ns(), &rep.cluster_rep.status);
	kf__call_finish(c, &rep);
}

static enum kf_err tail_reply(void *arg, const struct kf_msg_log *events, size_t n)
{
	struct kf_msg rep;

	memset(&rep, 0, sizeof(rep));
	rep.type = KF_MSG_LOG_TAIL_REP;
	rep.log_tail_rep.events = events;
	rep.log_tail_rep.n_events = n;
	kf__call_finish(arg, &rep);
	return KF_OK;
}

static void h_log_tail(struct kf_broker *b, struct kf__call *c)
{
	const struct kf_msg_log_tail_req *q = &c->msg->log_tail_req;
	enum kf_err err;

	err = kf_relay_tail(b->relay, q->count ? q->count : KF__LIST_DEFAULT, q->min_level,
			    q->source, tail_reply, c);
	if (err)
		kf__call_fail(c, err, "log tail: %s", kf_strerror(err));
}

/* ---- drain ------------------------------------------------------------------------------ */

/* An operator's drain: the worker takes no new job, finishes the jobs it
 * holds and exits (docs/operations.md, the broker's requests). */
static void h_drain(struct kf_broker *b, struct kf__call *c)
{
	const char *id = c->msg->drain_req.worker_id;
	struct kf_msg rep;
	struct kf_worker *w;

	if (!*id) {
		kf__call_fail(c, KF_EINVAL, "drain: worker_id is empty");
		return;
	}
	if (!(w = kf_workers_find(b->workers, id))) {
		kf__call_fail(c, KF_ENOENT, "drain: no worker '%s' is known to this broker "
			      "(keyforgectl workers lists them)", id);
		return;
	}
	if (w->liveness == KF_WORKER_DEAD) {
		kf__call_fail(c, KF_ESTATE, "drain: worker '%s' is dead here (no heartbeat for "
			      "%llu s): it would not hear the command", id,
			      (unsigned long long)((kf_clock_mono_ns() - w->last_seen_ns) /
						   (1000 * KF_NS_PER_MS)));
		return;
	}
	w->drain_requested = true;
	kf__cmd_drain(b, w->id);
	memset(&rep, 0, sizeof(rep));
	rep.type = KF_MSG_DRAIN_REP;
	rep.drain_rep.liveness = w->liveness;
	rep.drain_rep.leases_ended = kf__lease_end_for(b, w->id);
	KF_INFO(KF__TARGET, "worker drain requested", KF_STR("worker_id", w->id),
		KF_STR("host", w->host), KF_U64("pid", w->pid),
		KF_U64("leases_ended", rep.drain_rep.leases_ended));
	kf__call_finish(c, &rep);
}

/* ---- the table -------------------------------------------------------------------------- */

static const struct kf__rpc_handler handlers[] = {
	{ KF_MSG_HELLO_REQ, "hello", KF__AUTH_WORKER, false, h_hello },
	{ KF_MSG_LEASE_REQ, "lease", KF__AUTH_WORKER, true, h_lease },
	{ KF_MSG_PROGRESS_REQ, "progress", KF__AUTH_WORKER, false, h_progress },
	{ KF_MSG_COMPLETE_REQ, "complete", KF__AUTH_WORKER, true, h_complete },
	{ KF_MSG_SUBMIT_REQ, "submit", KF__AUTH_OPERATOR, true, h_submit },
	{ KF_MSG_LIST_REQ, "list", KF__AUTH_NONE, false, h_list },
	{ KF_MSG_GET_REQ, "get", KF__AUTH_NONE, false, h_get },
	{ KF_MSG_KILL_REQ, "kill", KF__AUTH_OPERATOR, true, h_kill },
	{ KF_MSG_RETRY_REQ, "retry", KF__AUTH_OPERATOR, true, h_retry },
	{ KF_MSG_CLUSTER_REQ, "cluster", KF__AUTH_NONE, false, h_cluster },
	{ KF_MSG_LOG_TAIL_REQ, "log_tail", KF__AUTH_NONE, false, h_log_tail },
	{ KF_MSG_DRAIN_REQ, "drain", KF__AUTH_OPERATOR, true, h_drain },
};

const struct kf__rpc_handler *kf__rpc_handler_find(enum kf_msg_type type)
{
	for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++)
		if (handlers[i].type == type)
			return &handlers[i];
	return NULL;
}
