/*
 * lane.c — one lane (gate.h): register, lease (long-poll) when the gate
 * lets it, wait for a free slot, run the job inside job_execution{job_id,
 * worker_id, attempt}, report progress, hand the result to the outbox,
 * lease again at once.
 */
#include "worker/worker_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "kf_config.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define HELLO_TIMEOUT_MS 3000
/* How long hellos refused because our id is a live worker's are retried:
 * twice the 3 heartbeat intervals after which the broker takes a silent
 * worker's id as free (a restart with a fixed --id waits that long). */
#define ID_IN_USE_GIVE_UP_MS 6000
/* ... and how often meanwhile: a restart under a fixed --id registers
 * within this of the broker taking the old process for gone (3 s), not
 * after the exponential back-off's next step (up to 2 s later). */
#define ID_IN_USE_RETRY_MS 250
/* Refusals further apart than this (a hello that timed out, a broker
 * frozen or stalled between them) do not count the time between them
 * towards giving up: the broker does not count its own stalls in a
 * worker's silence (reaper.c, forgive_stall), so neither may we. */
#define ID_IN_USE_GAP_MAX_MS 1500
#define PROGRESS_TIMEOUT_MS 2000
/* After a lease that found no job at once (an ask ahead, or --lease-wait
 * 0): no stream of empty claims. Cut short when an ask ahead of this
 * worker brings a job (kf__gate_nap). */
#define EMPTY_LEASE_NAP_MS 50

/* ---- small helpers ---------------------------------------------------------- */

/* Sleeps ms, waking early when the worker starts draining. */
static void nap(struct kf_worker *w, uint32_t ms)
{
	while (ms && !atomic_load(&w->draining)) {
		uint32_t step = ms < 50 ? ms : 50;
		struct timespec ts = { 0, (long)step * 1000000L };

		nanosleep(&ts, NULL);
		ms -= step;
	}
}

static bool transport(enum kf_err err)
{
	return err == KF_ETIMEDOUT || err == KF_ECANCELED || err == KF_ENNG || err == KF_EUNAVAIL ||
	       err == KF_ETOOBIG || err == KF_EMALFORMED;
}

void kf__rpc_outcome(struct kf_worker *w, enum kf__method m, enum kf_err err)
{
	static const char *const names[KF__M_COUNT] = { "hello", "lease", "progress", "complete" };

	if (err && transport(err)) {
		kf__wmetrics_rpc_failure(&w->m, m);
		if (!atomic_exchange(&w->broker_down, true))
			KF_WARN(KF__TARGET_RPC, "broker not answering; retrying",
				KF_STR("method", names[m]), KF_ERR(err),
				KF_STR("rpc", kf_bus_addrs_get(&w->cfg.addrs, KF_BUS_RPC)));
	} else if (!err && atomic_exchange(&w->broker_down, false)) {
		KF_INFO(KF__TARGET_RPC, "broker answering again", KF_STR("method", names[m]));
	}
}

/* The status of a reply, KF_EPERM handled (token reloaded). */
static enum kf_err reply_status(struct kf_worker *w, const struct kf_msg *rep, const char *what)
{
	const struct kf_msg_rep *h = kf_msg_reply(rep);
	enum kf_err st = h ? h->status : KF_EMALFORMED;

	if (rep->type == KF_MSG_ERROR_REP && st == KF_OK)
		st = KF_EMALFORMED;
	if (st == KF_EPERM) {
		enum kf_err err = kf__rpc_reload_token(&w->rpc, NULL);

		KF_WARN(KF__TARGET_RPC, "broker refused the token; reading the token file again",
			KF_STR("method", what), KF_STR("error", h && h->error ? h->error : ""),
			KF_STR("token_file", w->cfg.token_file ? w->cfg.token_file : "(none)"),
			KF_STR("reload", kf_strerror(err)));
	}
	return st;
}

/* ---- hello ---------------------------------------------------------------- */

/*
 * The broker refused our hello: it hears from a live worker with our id. A
 * worker that took the place of one that just died (a fixed --id) waits for
 * the broker to see the old one go silent; after ID_IN_USE_GIVE_UP_MS of
 * refusals the other one is alive, and this worker stops (exit status 1)
 * rather than fight it for the id. The time counted is that of refusals
 * in quick succession only: a broker frozen for longer than the give-up
 * time, with the old process dead all along, still reports it heard from
 * it lately once it wakes (it takes its stall off every silence), and the
 * new process must wait on. Under hello_mu.
 */
static void id_in_use(struct kf_worker *w, const char *reason)
{
	uint64_t now = kf_clock_mono_ns(), gap;

	if (!atomic_exchange(&w->id_refused, true)) {
		w->id_in_use_last_ns = now;
		w->id_in_use_refused_ns = 0;
		KF_WARN(KF__TARGET, "worker id in use; waiting for the other worker to go silent",
			KF_STR("worker_id", w->cfg.id), KF_STR("reason", reason),
			KF_U64("give_up_ms", ID_IN_USE_GIVE_UP_MS));
		return;
	}
	gap = now - w->id_in_use_last_ns;
	w->id_in_use_last_ns = now;
	if (gap <= ID_IN_USE_GAP_MAX_MS * KF_NS_PER_MS)
		w->id_in_use_refused_ns += gap;
	if (w->id_in_use_refused_ns < ID_IN_USE_GIVE_UP_MS * KF_NS_PER_MS ||
	    atomic_exchange(&w->id_in_use, true))
		return;
	KF_ERROR(KF__TARGET, "worker id in use by another live worker; stopping",
		 KF_STR("worker_id", w->cfg.id), KF_STR("reason", reason));
	kf__worker_drain(w);
}

static enum kf_err hello_once(struct kf_worker *w)
{
	struct kf_msg req, *rep = NULL;
	uint64_t pipes = kf__rpc_pipes(&w->rpc);
	enum kf_err err;

	kf_msg_init(&req, KF_MSG_HELLO_REQ, w->cfg.id, 0);
	req.hello_req = (struct kf_msg_hello_req){ .worker_id = w->cfg.id, .host = w->host,
		.pid = w->pid, .slots = w->cfg.slots, .incarnation = w->incarnation,
		.version = KF_VERSION };
	kf__rpc_stamp(&w->rpc, &req, NULL);
	err = kf__rpc_call(&w->rpc, &req, HELLO_TIMEOUT_MS, 1000, &rep);
	kf__rpc_outcome(w, KF__M_HELLO, err);
	if (err)
		return err;
	if ((err = reply_status(w, rep, "hello")) == KF_EBUSY) {
		id_in_use(w, kf_msg_reply(rep)->error ? kf_msg_reply(rep)->error : "");
	} else if (err) {
		KF_WARN(KF__TARGET_RPC, "hello refused", KF_ERR(err),
			KF_STR("reason", kf_msg_reply(rep) && kf_msg_reply(rep)->error ?
			       kf_msg_reply(rep)->error : ""));
	} else {
		atomic_store(&w->id_refused, false);
		kf__rpc_hello_done(&w->rpc, pipes);
		/* Bundled telemetry only for a broker that reads it; a hello
		 * follows every new connection, so a broker replaced by an
		 * older one is told apart here too. */
		kf__publisher_set_bundle(w->publisher, rep->minor >= KF_PROTO_MINOR_BUNDLES ?
					 KF_BUS_BUNDLE_MAX_PARTS : 1);
		/* The broker holds our leases until a heartbeat of this process
		 * reaches it (the hello proves the rpc path only): send one now
		 * rather than at the next tick. */
		kf__publisher_tick_now(w->publisher);
		KF_INFO(KF__TARGET, "registered with the broker", KF_STR("worker_id", w->cfg.id),
			KF_U64("heartbeat_ms", rep->hello_rep.heartbeat_ms),
			KF_U64("slots", w->cfg.slots));
	}
	kf_msg_free(rep);
	return err;
}

/* One hello for all lanes: the others wait for it, then see it done. */
static bool ensure_hello(struct kf_worker *w)
{
	bool ok = true;

	if (!kf__rpc_need_hello(&w->rpc))
		return true;
	pthread_mutex_lock(&w->hello_mu);
	if (kf__rpc_need_hello(&w->rpc))
		ok = hello_once(w) == KF_OK;
	pthread_mutex_unlock(&w->hello_mu);
	return ok;
}

/* ---- progress --------------------------------------------------------------- */

static void on_progress_reply(void *arg, enum kf_err err, nng_msg *reply)
{
	struct kf__lane *s = arg;
	struct kf_worker *w = s->w;
	struct kf_msg *rep = NULL;

	if (err == KF_ECANCELED && atomic_load(&w->quit)) {
		atomic_store(&s->progress_busy, false); /* shutting down: not the broker's fault */
		return;
	}
	if (!err && kf_msg_decode(nng_msg_body(reply), nng_msg_len(reply), &rep, NULL))
		err = KF_EMALFORMED;
	nng_msg_free(reply);
	kf__rpc_outcome(w, KF__M_PROGRESS, err);
	if (err && transport(err))
		kf__rpc_set_need_hello(&w->rpc);
	if (!err && rep->type == KF_MSG_PROGRESS_REP) {
		const struct kf_msg_progress_rep *p = &rep->progress_rep;
		enum kf_err st = reply_status(w, rep, "progress");

		if (p->drop || p->cancel) {
			uint64_t job_id = 0, token = 0;

			/* The attempt the report was about, by its token: once
			 * the lock is let go, the lane may have moved on to
			 * another attempt of the same job, which this reply
			 * must not stop. */
			pthread_mutex_lock(&s->mu);
			if (s->generation == s->progress_gen && s->job_id) {
				job_id = s->job_id;
				token = s->lease_token;
			}
			pthread_mutex_unlock(&s->mu);
			if (job_id && kf__lane_stop_job(s, job_id, token, p->drop ? KF__STOP_DROP
										  : KF__STOP_KILL))
				KF_INFO(KF__TARGET_JOB, p->drop ? "job lease lost; abandoning it"
						: "job cancel received", KF_U64("job_id", job_id),
					KF_STR("via", "progress reply"),
					KF_STR("reason", st && kf_msg_reply(rep)->error ?
					       kf_msg_reply(rep)->error : ""));
		}
	}
	kf_msg_free(rep);
	atomic_store(&s->progress_busy, false);
}

/* Starts a progress request unless one is in flight; on the job's thread. */
static void send_progress(struct kf__lane *s, uint64_t gen, const struct kf_msg_progress_req *pr)
{
	struct kf_rpc_call_opts o = { .timeout_ms = PROGRESS_TIMEOUT_MS, .resend_ms = 1000 };
	struct kf_strbuf sb = KF_STRBUF_INIT;
	struct kf_msg req;

	if (atomic_exchange(&s->progress_busy, true))
		return;
	s->progress_gen = gen;
	kf_msg_init(&req, KF_MSG_PROGRESS_REQ, s->w->cfg.id, 0);
	req.progress_req = *pr;
	kf__rpc_stamp(&s->w->rpc, &req, NULL);
	if (kf_msg_encode(&req, &sb) != KF_OK ||
	    kf_rpc_call_start(s->progress_call, sb.buf, sb.len, &o) != KF_OK)
		atomic_store(&s->progress_busy, false);
	kf_strbuf_release(&sb);
}

/* The engine's progress callback (every KF__PROGRESS_STEPS steps). */
static void on_progress(void *ctx, const struct kf_anneal_progress *p)
{
	struct kf__lane *s = ctx;
	uint64_t now = kf_clock_mono_ns(), gen;
	struct kf_msg_progress_req pr;
	bool due;

	pthread_mutex_lock(&s->mu);
	if (s->expire_ns && now >= s->expire_ns && s->stop == KF__STOP_NONE) {
		s->stop = KF__STOP_EXPIRE;
		atomic_store(&s->cancel, true); /* the engine stops within a step */
	}
	s->step = p->step;
	s->total_steps = p->total_steps;
	s->temperature = p->temperature;
	s->cost = p->current_cost;
	s->best_cost = p->best_cost;
	due = now - s->last_report_ns >= (uint64_t)s->w->cfg.progress_ms * KF_NS_PER_MS &&
	      s->stop == KF__STOP_NONE;
	if (due)
		s->last_report_ns = now;
	gen = s->generation;
	pr = (struct kf_msg_progress_req){ .job_id = s->job_id, .lease_token = s->lease_token,
		.step = p->step, .temperature = p->temperature, .cost = p->current_cost,
		.best_cost = p->best_cost };
	pthread_mutex_unlock(&s->mu);
	if (due)
		send_progress(s, gen, &pr);
	/* Near its end the job's slot is about to come free: the gate may
	 * let another lane lease the next job now (gate.h). */
	if (!s->gate.ending)
		kf__gate_ending(&s->w->gate, &s->gate,
				kf__gate_predict_ns(p->total_steps, p->step, now - s->run_ns, 0));
}

/* ---- the job ------------------------------------------------------------------- */

bool kf__lane_stop_job(struct kf__lane *s, uint64_t job_id, uint64_t lease_token,
	enum kf__stop why)
{
	bool hit;

	pthread_mutex_lock(&s->mu);
	hit = s->job_id && s->job_id == job_id && (!lease_token || lease_token == s->lease_token);
	if (hit) {
		s->stop = kf__stop_merge(s->stop, why);
		atomic_store(&s->cancel, true);
	}
	pthread_mutex_unlock(&s->mu);
	return hit;
}

bool kf__lane_peek(struct kf__lane *s, uint64_t *job_id, double *progress, double *best_cost)
{
	bool busy;

	pthread_mutex_lock(&s->mu);
	busy = s->job_id != 0 && s->running;
	*job_id = s->job_id;
	*progress = s->total_steps ? fmin(1.0, (double)s->step / (double)s->total_steps) : 0;
	*best_cost = s->best_cost;
	pthread_mutex_unlock(&s->mu);
	return busy;
}

bool kf__lane_held(struct kf__lane *s, struct kf_msg_held_job *out)
{
	bool held;

	pthread_mutex_lock(&s->mu);
	held = s->held_job != 0;
	*out = (struct kf_msg_held_job){ s->held_job, s->held_token };
	pthread_mutex_unlock(&s->mu);
	return held;
}

/* The lane no longer holds its attempt: acknowledged, dropped, or in the
 * outbox (which lists it from then on). */
static void held_end(struct kf__lane *s)
{
	pthread_mutex_lock(&s->mu);
	s->held_job = s->held_token = 0;
	pthread_mutex_unlock(&s->mu);
}

/* The steps a leased job takes in all: steps per restart, at least one run. */
static uint64_t lease_total_steps(const struct kf_msg_lease *l)
{
	return l->params.steps * (l->params.restarts ? l->params.restarts : 1);
}

/* self_expire: the worker watches the job's deadline itself (the lease
 * came from a broker that takes an `expired` report, protocol 1.3). The
 * clock starts when the lease arrives, a little after the broker's
 * deadline_at starts, well inside the 2 s of grace its sweep allows. */
static void job_begin(struct kf__lane *s, const struct kf_msg_lease *l, bool self_expire)
{
	uint64_t now = kf_clock_mono_ns();
	enum kf__stop early;

	pthread_mutex_lock(&s->w->early_mu); /* before s->mu, as on_command */
	early = kf__early_take(&s->w->early, l->job_id, l->lease_token, now);
	pthread_mutex_lock(&s->mu);
	s->generation++;
	s->held_job = l->job_id;
	s->held_token = l->lease_token;
	s->job_id = l->job_id;
	s->lease_token = l->lease_token;
	s->attempt = l->attempt;
	s->step = 0;
	s->total_steps = lease_total_steps(l);
	s->temperature = s->cost = s->best_cost = 0;
	s->stop = kf__stop_merge(atomic_load(&s->w->handback) ? KF__STOP_HANDBACK : KF__STOP_NONE,
				 early);
	s->last_report_ns = now;
	s->expire_ns = self_expire && l->params.deadline_ms ?
		now + l->params.deadline_ms * KF_NS_PER_MS : 0;
	atomic_store(&s->cancel, s->stop != KF__STOP_NONE);
	pthread_mutex_unlock(&s->mu);
	pthread_mutex_unlock(&s->w->early_mu);
	if (early == KF__STOP_KILL)
		KF_INFO(KF__TARGET_JOB, "job cancel received", KF_U64("job_id", l->job_id),
			KF_STR("via", "command, before the lease"));
	else if (early == KF__STOP_DROP)
		KF_INFO(KF__TARGET_JOB, "job attempt ended by the broker; abandoning it",
			KF_U64("job_id", l->job_id), KF_STR("via", "command, before the lease"));
}

/* The job got its slot (kf__gate_run): from here it runs. A shutdown that
 * began while it waited hands it back as it would a running one. */
static void job_start(struct kf__lane *s)
{
	uint64_t now = kf_clock_mono_ns();

	pthread_mutex_lock(&s->mu);
	s->running = true;
	s->last_report_ns = now;
	if (s->stop == KF__STOP_NONE && atomic_load(&s->w->handback)) {
		s->stop = KF__STOP_HANDBACK;
		atomic_store(&s->cancel, true);
	}
	pthread_mutex_unlock(&s->mu);
	s->run_ns = now;
}

static enum kf__stop job_end(struct kf__lane *s)
{
	enum kf__stop stop;

	pthread_mutex_lock(&s->mu);
	stop = s->stop;
	s->running = false;
	s->job_id = 0;
	s->lease_token = 0;
	s->expire_ns = 0;
	s->step = s->total_steps = 0;
	s->best_cost = 0;
	pthread_mutex_unlock(&s->mu);
	return stop;
}

/* Decides the outcome, logs it (inside job_execution) and fills c. */
static enum kf__outcome settle(struct kf__lane *s, enum kf__stop stop, enum kf_err err,
	const struct kf_strbuf *why, struct kf__completion *c)
{
	switch (kf__stop_settle(stop, err)) {
	case KF__SETTLE_DROPPED:
		KF_WARN(KF__TARGET_JOB, "job dropped: the lease is stale", KF_U64("job_id", c->job_id),
			KF_U64("attempt", c->attempt));
		return KF__OUT_DROPPED;
	case KF__SETTLE_RELEASED:
		/* released: pending again at once, no attempt charged; "failed"
		 * is what a broker older than protocol 1.1 sees instead. */
		c->outcome = KF_JOB_FAILED;
		c->released = true;
		snprintf(c->error, sizeof c->error, "handed back: worker '%s' is shutting down",
			 s->w->cfg.id);
		KF_INFO(KF__TARGET_JOB, "job handed back", KF_U64("job_id", c->job_id),
			KF_U64("steps", c->steps));
		return KF__OUT_HANDED_BACK;
	case KF__SETTLE_EXPIRED:
		/* Failed, not retried, with the best result so far. */
		c->outcome = KF_JOB_FAILED;
		c->expired = true;
		snprintf(c->error, sizeof c->error, "deadline exceeded: stopped after %llu ms",
			 (unsigned long long)c->elapsed_ms);
		KF_WARN(KF__TARGET_JOB, "job deadline exceeded", KF_U64("job_id", c->job_id),
			KF_U64("steps", c->steps), KF_F64("best_cost", c->has_result ? c->cost : NAN),
			KF_U64("elapsed_ms", c->elapsed_ms));
		return KF__OUT_FAILED;
	case KF__SETTLE_KILLED:
		c->outcome = KF_JOB_KILLED;
		KF_INFO(KF__TARGET_JOB, "job killed", KF_U64("job_id", c->job_id),
			KF_U64("steps", c->steps), KF_F64("best_cost", c->has_result ? c->cost : NAN));
		return KF__OUT_KILLED;
	case KF__SETTLE_SUCCEEDED:
		c->outcome = KF_JOB_SUCCEEDED;
		KF_INFO(KF__TARGET_JOB, "job completed", KF_U64("job_id", c->job_id),
			KF_F64("score", c->cost), KF_STR("layout", c->layout), KF_U64("steps", c->steps),
			KF_F64("steps_per_sec", c->steps_per_sec), KF_U64("elapsed_ms", c->elapsed_ms));
		return KF__OUT_SUCCEEDED;
	case KF__SETTLE_FAILED:
		break;
	}
	c->outcome = KF_JOB_FAILED;
	if (why->len)
		kf__utf8_sanitize(c->error, sizeof c->error, why->buf, why->len);
	else
		snprintf(c->error, sizeof c->error, "%s", kf_strerror(err));
	KF_WARN(KF__TARGET_JOB, "job failed", KF_U64("job_id", c->job_id), KF_ERR(err),
		KF_STR("reason", c->error));
	return KF__OUT_FAILED;
}

/*
 * Reports c and, when `ask` (the gate admitted it), asks for the next job in
 * the same request (protocol 1.1 lease_next): the broker commits the
 * completion and the claim in one batch, so a busy hive costs one round
 * trip and one commit per job instead of two. True when the broker took
 * the report (acknowledged or dropped);
 * *next is then its reply when it carries a job (the caller runs
 * (*next)->complete_rep.lease and frees it), else NULL. False: c is not
 * acknowledged (transport, database away, token), and the caller hands it
 * to the outbox, which resends it. A broker older than 1.1 ignores the
 * request for a job: the reply has none, and the lane leases as before.
 */
static bool complete_and_lease(struct kf__lane *s, const struct kf__completion *c,
	enum kf__gate_ask ask, struct kf_msg **next)
{
	struct kf_worker *w = s->w;
	uint32_t wait = ask == KF__GATE_SLOT ? w->cfg.lease_wait_ms : 0;
	struct kf_msg_job_result res;
	struct kf_msg req, *rep = NULL;
	enum kf__verdict v;
	enum kf_err err;

	*next = NULL;
	kf__completion_to_req(c, &res, &req);
	req.complete_req.lease_next = ask != KF__GATE_NO;
	req.complete_req.lease_next_wait_ms = wait;
	req.complete_req.worker_id = w->cfg.id;
	req.complete_req.incarnation = w->incarnation;
	kf__rpc_stamp(&w->rpc, &req, NULL);
	/* resend above the wait, as for a lease: each resend would park a copy */
	err = kf__rpc_call(&w->rpc, &req, (nng_duration)wait + 5000, (nng_duration)wait + 2000, &rep);
	kf__rpc_outcome(w, KF__M_COMPLETE, err);
	v = kf__complete_verdict(err, err ? NULL : rep);
	if (v != KF__VERDICT_ACKED && v != KF__VERDICT_DROP) {
		kf_msg_free(rep);
		return false;
	}
	if (v == KF__VERDICT_DROP)
		KF_WARN(KF__TARGET_JOB, "result dropped: the lease is stale",
			KF_U64("job_id", c->job_id), KF_U64("attempt", c->attempt));
	else
		KF_DEBUG(KF__TARGET_JOB, "result acknowledged", KF_U64("job_id", c->job_id),
			 KF_STR("outcome", c->released ? "released" : kf_job_state_name(c->outcome)));
	kf__on_result_done(w, c, v);
	if (ask != KF__GATE_NO && rep->complete_rep.lease)
		*next = rep;
	else
		kf_msg_free(rep);
	return true;
}

/* How long the job of lease l is expected to run: from the pace of the
 * worker's last jobs that had steps. */
static uint64_t lease_predict_ns(struct kf_worker *w, const struct kf_msg_lease *l)
{
	return kf__gate_predict_ns(lease_total_steps(l), 0, 0, atomic_load(&w->ps_per_step));
}

/* The answer to a lane's ask: the job it brought, if any, is held. */
static void answered(struct kf__lane *s, enum kf__gate_ask ask, const struct kf_msg_lease *l)
{
	kf__gate_answered(&s->w->gate, ask, l != NULL, l ? lease_predict_ns(s->w, l) : 0,
			  &s->gate);
}

/* Reports c, asking for the next job with it when the gate lets this lane
 * (see complete_and_lease). False: not acknowledged (c was not taken). */
static bool report(struct kf__lane *s, const struct kf__completion *c, struct kf_msg **next)
{
	enum kf__gate_ask ask = kf__gate_try_ask(&s->w->gate);
	bool taken = complete_and_lease(s, c, ask, next);

	if (ask != KF__GATE_NO)
		answered(s, ask, *next ? (*next)->complete_rep.lease : NULL);
	return taken;
}

/* Runs one leased job once a slot is free; returns a reply carrying the
 * next job (from a complete with lease_next) or NULL. */
static struct kf_msg *run_lease(struct kf__lane *s, const struct kf_msg_lease *l,
	bool self_expire)
{
	struct kf_worker *w = s->w;
	struct kf__job_ctl ctl = { .cancel = &s->cancel, .progress = on_progress, .progress_ctx = s,
		.progress_interval = KF__PROGRESS_STEPS, .observer = kf__wmetrics_score,
		.observer_ctx = &w->m };
	struct kf_strbuf why = KF_STRBUF_INIT;
	struct kf__completion *c = calloc(1, sizeof(*c)); /* 2 KiB: not on the stack */
	uint64_t t0 = kf_clock_mono_ns();
	struct kf_msg *next = NULL;
	struct kf_span *span;
	enum kf__outcome o;
	enum kf_err err;

	job_begin(s, l, self_expire); /* from here a kill or a drop finds it */
	kf__gate_run(&w->gate);       /* wait for a slot: a job leased ahead */
	if (!c) {
		KF_ERROR(KF__TARGET_JOB, "job not run: out of memory", KF_U64("job_id", l->job_id));
		job_end(s);
		kf__gate_done(&w->gate, &s->gate, KF__GATE_UNKNOWN);
		held_end(s);
		return NULL; /* the broker requeues it when the lease expires */
	}
	job_start(s);
	span = KF_INFO_SPAN(KF__TARGET_JOB, "job_execution", KF_U64("job_id", l->job_id),
		KF_STR("worker_id", w->cfg.id), KF_U64("attempt", l->attempt));
	kf_span_enter(span);
	KF_DEBUG(KF__TARGET_JOB, "job started", KF_STR("corpus", l->params.corpus),
		 KF_U64("steps", l->params.steps), KF_U64("restarts", l->params.restarts),
		 KF_U64("seed", l->params.seed), KF_STR("board", kf_msg_board_name(l->params.board)));
	kf__wmetrics_running(&w->m, 1);
	err = kf__job_run(w->engine, &l->params, &ctl, c, &why);
	c->job_id = l->job_id;
	c->lease_token = l->lease_token;
	c->attempt = l->attempt;
	o = settle(s, job_end(s), err, &why, c);
	/* a held job may run while this reports */
	kf__gate_done(&w->gate, &s->gate, kf_clock_mono_ns() - s->run_ns);
	if (err == KF_OK && c->steps > 0 && c->steps_per_sec > 0)
		atomic_store(&w->ps_per_step, (uint64_t)(1e12 / c->steps_per_sec));
	kf__wmetrics_running(&w->m, -1);
	kf__wmetrics_job_done(&w->m, c->steps, (double)(kf_clock_mono_ns() - t0) * 1e-9);
	if (o == KF__OUT_DROPPED)
		kf__wmetrics_outcome(&w->m, o);
	else if (!atomic_load(&w->draining) && report(s, c, &next))
		; /* acknowledged, perhaps with the next job */
	else if (kf__outbox_put(w->outbox, c) != KF_OK)
		KF_ERROR(KF__TARGET_JOB, "result lost: out of memory", KF_U64("job_id", l->job_id));
	held_end(s);
	kf_span_exit(span);
	kf_span_close(span);
	kf_strbuf_release(&why);
	free(c);
	return next;
}

void kf__on_result_done(void *ctx, const struct kf__completion *c, enum kf__verdict v)
{
	struct kf_worker *w = ctx;
	enum kf__outcome o;

	if (v == KF__VERDICT_DROP) {
		atomic_fetch_add(&w->results_dropped, 1);
		o = KF__OUT_DROPPED;
	} else if (v == KF__VERDICT_REFUSED) {
		atomic_fetch_add(&w->results_refused, 1);
		o = KF__OUT_FAILED; /* the broker never took it */
	} else if (c->outcome == KF_JOB_SUCCEEDED) {
		o = KF__OUT_SUCCEEDED;
	} else if (c->outcome == KF_JOB_KILLED) {
		o = KF__OUT_KILLED;
	} else {
		o = c->released ? KF__OUT_HANDED_BACK : KF__OUT_FAILED;
	}
	if (v == KF__VERDICT_ACKED)
		atomic_fetch_add(&w->results_acked, 1);
	kf__wmetrics_outcome(&w->m, o);
}

/* ---- lease ------------------------------------------------------------------------ */

/* One lease request (a long-poll when the gate said SLOT, none when
 * AHEAD). KF_OK with *rep set (lease or none). */
static enum kf_err lease(struct kf__lane *s, enum kf__gate_ask ask, struct kf_msg **rep)
{
	struct kf_worker *w = s->w;
	uint32_t wait = ask == KF__GATE_SLOT ? w->cfg.lease_wait_ms : 0;
	struct kf_msg req;
	enum kf_err err;

	kf_msg_init(&req, KF_MSG_LEASE_REQ, w->cfg.id, 0);
	req.lease_req.worker_id = w->cfg.id;
	req.lease_req.wait_ms = wait;
	req.lease_req.incarnation = w->incarnation; /* the broker's fence (protocol 1.2) */
	/* After a lost reply, ask again with the same id: a broker that did
	 * lease a job to it answers with that job rather than leasing another. */
	if (!s->lease_id_valid) {
		s->lease_id = kf__rpc_next_id(&w->rpc);
		s->lease_id_valid = true;
	}
	kf__rpc_stamp(&w->rpc, &req, &s->lease_id);
	/* resend above the wait: each resend would park another copy. */
	err = kf__rpc_call(&w->rpc, &req, (nng_duration)wait + 5000, (nng_duration)wait + 2000, rep);
	kf__rpc_outcome(w, KF__M_LEASE, err);
	if (err)
		return err;
	s->lease_id_valid = false;
	if ((err = reply_status(w, *rep, "lease"))) {
		const struct kf_msg_rep *h = kf_msg_reply(*rep);

		/* "Who are you?", or "another process holds your id": register
		 * again; the hello's answer says whether this process may go on. */
		if (err == KF_ENOENT || err == KF_EBUSY)
			kf__rpc_set_need_hello(&w->rpc);
		/* KF_ESTATE: the broker hears no heartbeat from us. It says so
		 * at every lease until one arrives; once is enough here. */
		if (err != KF_EUNAVAIL && err != KF_EPERM &&
		    (err != KF_ESTATE || !atomic_exchange(&w->unheard, true)))
			KF_WARN(KF__TARGET_RPC, "lease refused", KF_ERR(err),
				KF_STR("reason", h && h->error ? h->error : ""));
		kf_msg_free(*rep);
		*rep = NULL;
	} else if (atomic_exchange(&w->unheard, false)) {
		KF_INFO(KF__TARGET_RPC, "the broker hears our heartbeats again; leasing");
	}
	return err;
}

void *kf__lane_main(void *arg)
{
	struct kf__lane *s = arg;
	struct kf_worker *w = s->w;
	struct kf_msg *next = NULL; /* a complete's reply that carries a job */
	char name[16];

	snprintf(name, sizeof(name), "kf:lane%u", s->index);
	pthread_setname_np(pthread_self(), name);  /* top -H, perf */

	/* A job that came with a completion's acknowledgement is leased to
	 * this lane: it runs even if draining began meanwhile (as a job
	 * leased just before SIGTERM does). */
	while (next || !atomic_load(&w->draining)) {
		struct kf_msg *rep = NULL;
		const struct kf_msg_lease *l;
		uint64_t t0 = kf_clock_mono_ns();
		enum kf__gate_ask ask;

		if (next) {
			rep = next;
			l = rep->complete_rep.lease;
		} else if ((ask = kf__gate_ask(&w->gate)) == KF__GATE_NO) {
			continue; /* draining */
		} else if (!ensure_hello(w) || lease(s, ask, &rep) != KF_OK) {
			/* Nap before giving the place back: another lane would
			 * take it at once and fail too, and a worker of one slot
			 * would ask in nine streams. */
			nap(w, atomic_load(&w->id_refused)
				       ? ID_IN_USE_RETRY_MS
				       : kf_backoff_ms(atomic_fetch_add(&w->lease_failures, 1) + 1,
						       BACKOFF_MIN_MS, BACKOFF_MAX_MS));
			answered(s, ask, NULL);
			continue;
		} else {
			l = rep->lease_rep.lease;
			answered(s, ask, l);
		}
		if (atomic_load(&w->lease_failures)) /* a load: the line stays shared */
			atomic_store(&w->lease_failures, 0);
		next = NULL;
		/* A 1.3 broker takes an `expired` report; an older one would
		 * retry the job, so its sweep keeps the deadline. */
		if (l)
			next = run_lease(s, l, rep->major == KF_PROTO_MAJOR &&
						 rep->minor >= KF_PROTO_MINOR_EXPIRED);
		else if (kf_clock_mono_ns() - t0 < EMPTY_LEASE_NAP_MS * KF_NS_PER_MS)
			kf__gate_nap(&w->gate, EMPTY_LEASE_NAP_MS); /* do not spin (--lease-wait 0, asks ahead) */
		kf_msg_free(rep);
	}
	return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------ */

enum kf_err kf__lane_init(struct kf__lane *s, struct kf_worker *w, unsigned index)
{
	memset(s, 0, sizeof(*s));
	s->w = w;
	s->index = index;
	pthread_mutex_init(&s->mu, NULL);
	return kf_rpc_call_new(w->rpc.cli, on_progress_reply, s, &s->progress_call);
}

void kf__lane_release(struct kf__lane *s)
{
	kf_rpc_call_free(s->progress_call);
	s->progress_call = NULL;
	pthread_mutex_destroy(&s->mu);
}
