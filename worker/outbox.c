/* outbox.c — unacknowledged results, sent in the background and resent. */
#include "worker/outbox.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "telemetry/log.h"

#define TARGET "keyforge::worker::outbox"
#define CALL_TIMEOUT_MS 5000
#define CALL_RESEND_MS 1000

struct entry {
	struct entry *next;
	struct kf__outbox *ob;
	struct kf__completion c;
	struct kf_msg_request_id id;
	struct kf_rpc_call *call;
	bool inflight, done;
	uint32_t tries;          /* sends started */
	uint64_t due_ns;         /* monotonic: when to (re)send */
};

struct kf__outbox {
	struct kf__rpc *rpc;
	kf__outbox_done_fn done;
	void *done_ctx;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct entry *head;
	size_t pending;          /* entries not done */
	bool stop;
	pthread_t thread;
	uint64_t rng;
	struct kf__outbox_stats st;
};

/* ---- pure parts ---------------------------------------------------------- */

enum kf__verdict kf__complete_verdict(enum kf_err err, const struct kf_msg *rep)
{
	const struct kf_msg_rep *h;

	if (err || !rep)
		return KF__VERDICT_RETRY;
	if (rep->type == KF_MSG_ERROR_REP)
		return KF__VERDICT_REFUSED; /* the broker could not read it */
	if (rep->type != KF_MSG_COMPLETE_REP || !(h = kf_msg_reply(rep)))
		return KF__VERDICT_RETRY;
	if (rep->complete_rep.drop)
		return KF__VERDICT_DROP;
	switch (h->status) {
	case KF_OK:
		return KF__VERDICT_ACKED;
	case KF_ESTALE: case KF_ENOENT:
		return KF__VERDICT_DROP;
	case KF_EPERM:
		return KF__VERDICT_REAUTH;
	case KF_EUNAVAIL: case KF_ETIMEDOUT: case KF_ECANCELED: case KF_ENOMEM: case KF_EFULL:
	case KF_EDB: case KF_EBUSY:
		return KF__VERDICT_RETRY;
	default:
		return KF__VERDICT_REFUSED;
	}
}

uint32_t kf__outbox_backoff_ms(uint32_t tries, double jitter)
{
	double ms = kf_backoff_ms(tries, KF__OUTBOX_BACKOFF_MIN_MS, KF__OUTBOX_BACKOFF_MAX_MS);

	if (jitter < 0)
		jitter = 0;
	if (jitter > 1)
		jitter = 1;
	return (uint32_t)(ms * (0.5 + jitter / 2));
}

void kf__completion_to_req(const struct kf__completion *c, struct kf_msg_job_result *res_buf,
	struct kf_msg *req)
{
	memset(req, 0, sizeof(*req));
	req->type = KF_MSG_COMPLETE_REQ;
	req->ts_ns = kf_clock_wall_ns();
	req->complete_req.job_id = c->job_id;
	req->complete_req.lease_token = c->lease_token;
	req->complete_req.outcome = c->outcome;
	req->complete_req.released = c->released;
	req->complete_req.expired = c->expired;
	req->complete_req.error = c->error[0] ? c->error : NULL;
	if (!c->has_result)
		return;
	*res_buf = (struct kf_msg_job_result){ .layout = c->layout, .cost = c->cost,
		.stats = c->stats, .n_stats = c->n_stats, .steps = c->steps,
		.steps_per_sec = c->steps_per_sec, .elapsed_ms = c->elapsed_ms };
	memcpy(res_buf->finger_usage, c->finger_usage, sizeof res_buf->finger_usage);
	req->complete_req.result = res_buf;
}

/* ---- sending ------------------------------------------------------------------ */

static double jitter(struct kf__outbox *ob)
{
	/* xorshift64: jitter needs spread, not quality */
	ob->rng ^= ob->rng << 13;
	ob->rng ^= ob->rng >> 7;
	ob->rng ^= ob->rng << 17;
	return (double)(ob->rng >> 11) * 0x1.0p-53;
}

static void schedule_retry_locked(struct kf__outbox *ob, struct entry *e)
{
	e->due_ns = kf_clock_mono_ns() +
		    (uint64_t)kf__outbox_backoff_ms(e->tries, jitter(ob)) * KF_NS_PER_MS;
}

static void finish(struct entry *e, enum kf__verdict v)
{
	struct kf__outbox *ob = e->ob;

	if (ob->done)
		ob->done(ob->done_ctx, &e->c, v);
	pthread_mutex_lock(&ob->mu);
	e->done = true;
	e->inflight = false;
	ob->pending--;
	pthread_cond_broadcast(&ob->cond);
	pthread_mutex_unlock(&ob->mu);
}

static void log_final(const struct entry *e, enum kf__verdict v, const struct kf_msg *rep)
{
	const struct kf_msg_rep *h = rep ? kf_msg_reply(rep) : NULL;
	const char *why = h && h->error ? h->error : "";

	if (v == KF__VERDICT_ACKED)
		KF_DEBUG(TARGET, "result acknowledged", KF_U64("job_id", e->c.job_id),
			 KF_STR("outcome", kf_job_state_name(e->c.outcome)), KF_U64("sends", e->tries));
	else if (v == KF__VERDICT_DROP)
		KF_WARN(TARGET, "result dropped: the lease is stale", KF_U64("job_id", e->c.job_id),
			KF_U64("attempt", e->c.attempt), KF_STR("reason", why));
	else
		KF_ERROR(TARGET, "result refused by the broker; it is lost",
			 KF_U64("job_id", e->c.job_id), KF_U64("attempt", e->c.attempt),
			 KF_STR("error", why),
			 KF_STR("status", h ? kf_errname(h->status) : "unreadable request"));
}

static void on_reply(void *arg, enum kf_err err, nng_msg *reply)
{
	struct entry *e = arg;
	struct kf__outbox *ob = e->ob;
	struct kf_msg *rep = NULL;
	bool fresh_token = false;
	enum kf__verdict v;

	if (!err && reply && kf_msg_decode(nng_msg_body(reply), nng_msg_len(reply), &rep, NULL))
		err = KF_EMALFORMED;
	nng_msg_free(reply);
	if (rep && kf_msg_reply(rep) && rep->type != KF_MSG_ERROR_REP &&
	    kf_msg_reply(rep)->id.seq != e->id.seq)
		err = KF_EMALFORMED; /* not our answer: resend */
	v = kf__complete_verdict(err, err ? NULL : rep);
	if (v == KF__VERDICT_ACKED || v == KF__VERDICT_DROP || v == KF__VERDICT_REFUSED) {
		log_final(e, v, rep);
		kf_msg_free(rep);
		finish(e, v);
		return;
	}
	if (err && err != KF_EMALFORMED)
		kf__rpc_set_need_hello(ob->rpc);
	if (e->tries == 1 || e->tries % 20 == 0) {
		const struct kf_msg_rep *h = !err && rep ? kf_msg_reply(rep) : NULL;
		const char *why = !h ? kf_strerror(err ? err : KF_EMALFORMED) :
				  h->error ? h->error : kf_strerror(h->status);

		KF_WARN(TARGET, "result not acknowledged yet; resending",
			KF_U64("job_id", e->c.job_id), KF_U64("sends", e->tries), KF_STR("error", why));
	}
	kf_msg_free(rep);
	/* "Not authorised": the broker restarted with a new token. A token
	 * file that holds a new one is tried at once; the same one again waits
	 * its back-off like any refusal (resent at once, a worker whose token
	 * file lags behind sent thousands of reports a second). */
	if (v == KF__VERDICT_REAUTH && kf__rpc_reload_token(ob->rpc, &fresh_token) != KF_OK)
		fresh_token = false;
	pthread_mutex_lock(&ob->mu);
	e->inflight = false;
	schedule_retry_locked(ob, e);
	if (fresh_token)
		e->due_ns = kf_clock_mono_ns();
	pthread_cond_broadcast(&ob->cond);
	pthread_mutex_unlock(&ob->mu);
}

/* Starts one send of e; under ob->mu. */
static void start_locked(struct kf__outbox *ob, struct entry *e)
{
	struct kf_rpc_call_opts o = { .timeout_ms = CALL_TIMEOUT_MS, .resend_ms = CALL_RESEND_MS };
	struct kf_strbuf sb = KF_STRBUF_INIT;
	struct kf_msg_job_result res;
	struct kf_msg req;
	enum kf_err err;

	kf__completion_to_req(&e->c, &res, &req);
	kf__rpc_stamp(ob->rpc, &req, &e->id);
	if ((err = kf_msg_encode(&req, &sb)) && err != KF_ENOMEM) {
		/* It will never encode: resending cannot help. */
		KF_ERROR(TARGET, "result cannot be encoded; it is lost",
			 KF_U64("job_id", e->c.job_id), KF_ERR(err));
		kf_strbuf_release(&sb);
		e->done = true;
		ob->pending--;
		return;
	}
	if (!err)
		err = kf_rpc_call_start(e->call, sb.buf, sb.len, &o);
	kf_strbuf_release(&sb);
	e->tries++;
	if (e->tries > 1)
		ob->st.resent++;
	if (err) {
		if (e->tries == 1 || e->tries % 20 == 0)
			KF_ERROR(TARGET, "result could not be sent; retrying",
				 KF_U64("job_id", e->c.job_id), KF_ERR(err));
		schedule_retry_locked(ob, e);
		return;
	}
	e->inflight = true;
}

size_t kf__outbox_held(struct kf__outbox *ob, struct kf_msg_held_job *out, size_t cap)
{
	size_t n = 0;

	pthread_mutex_lock(&ob->mu);
	for (const struct entry *e = ob->head; e; e = e->next) {
		if (e->done)
			continue;
		if (n < cap)
			out[n] = (struct kf_msg_held_job){ e->c.job_id, e->c.lease_token };
		n++;
	}
	pthread_mutex_unlock(&ob->mu);
	return n;
}

/* Unlinks finished entries into *reaped (freed by the caller, unlocked). */
static void reap_locked(struct kf__outbox *ob, struct entry **reaped)
{
	struct entry **pp = &ob->head;

	while (*pp) {
		struct entry *e = *pp;

		if (e->done && !e->inflight) {
			*pp = e->next;
			e->next = *reaped;
			*reaped = e;
		} else {
			pp = &e->next;
		}
	}
}

static void free_entries(struct entry *e)
{
	while (e) {
		struct entry *next = e->next;

		kf_rpc_call_free(e->call);
		free(e);
		e = next;
	}
}

static void *outbox_main(void *arg)
{
	struct kf__outbox *ob = arg;
	struct timespec ts;

	pthread_setname_np(pthread_self(), "kf:outbox");  /* top -H, perf */
	pthread_mutex_lock(&ob->mu);
	while (!ob->stop) {
		uint64_t now = kf_clock_mono_ns(), next = now + 1000 * KF_NS_PER_MS;
		struct entry *reaped = NULL;

		reap_locked(ob, &reaped);
		if (reaped) {
			pthread_mutex_unlock(&ob->mu);
			free_entries(reaped);
			pthread_mutex_lock(&ob->mu);
			continue;
		}
		for (struct entry *e = ob->head; e; e = e->next) {
			if (e->done || e->inflight)
				continue;
			if (e->due_ns <= now)
				start_locked(ob, e);
			if (!e->inflight && e->due_ns < next)
				next = e->due_ns;
		}
		ts = kf_clock_mono_timespec(next);
		pthread_cond_timedwait(&ob->cond, &ob->mu, &ts);
	}
	pthread_mutex_unlock(&ob->mu);
	return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------ */

enum kf_err kf__outbox_new(struct kf__rpc *rpc, kf__outbox_done_fn done, void *done_ctx,
	struct kf__outbox **out)
{
	struct kf__outbox *ob = calloc(1, sizeof(*ob));

	*out = NULL;
	if (!ob)
		return KF_ENOMEM;
	ob->rpc = rpc;
	ob->done = done;
	ob->done_ctx = done_ctx;
	ob->rng = kf_clock_mono_ns() | 1;
	pthread_mutex_init(&ob->mu, NULL);
	kf_clock_mono_cond_init(&ob->cond);
	if (pthread_create(&ob->thread, NULL, outbox_main, ob) != 0) {
		pthread_cond_destroy(&ob->cond);
		pthread_mutex_destroy(&ob->mu);
		free(ob);
		return KF_EIO;
	}
	*out = ob;
	return KF_OK;
}

void kf__outbox_free(struct kf__outbox *ob)
{
	struct entry *all;

	if (!ob)
		return;
	pthread_mutex_lock(&ob->mu);
	ob->stop = true;
	pthread_cond_broadcast(&ob->cond);
	pthread_mutex_unlock(&ob->mu);
	pthread_join(ob->thread, NULL);
	/* kf_rpc_call_free cancels a call in flight and waits for its callback. */
	pthread_mutex_lock(&ob->mu);
	all = ob->head;
	ob->head = NULL;
	pthread_mutex_unlock(&ob->mu);
	free_entries(all);
	pthread_cond_destroy(&ob->cond);
	pthread_mutex_destroy(&ob->mu);
	free(ob);
}

enum kf_err kf__outbox_put(struct kf__outbox *ob, const struct kf__completion *c)
{
	struct entry *e = calloc(1, sizeof(*e));

	if (!e)
		return KF_ENOMEM;
	e->ob = ob;
	e->c = *c;
	e->id = kf__rpc_next_id(ob->rpc);
	if (kf_rpc_call_new(ob->rpc->cli, on_reply, e, &e->call) != KF_OK) {
		free(e);
		return KF_ENOMEM;
	}
	pthread_mutex_lock(&ob->mu);
	e->due_ns = 0;
	/* Append: results go out in the order the jobs finished. */
	struct entry **pp = &ob->head;

	while (*pp)
		pp = &(*pp)->next;
	*pp = e;
	ob->pending++;
	start_locked(ob, e);
	pthread_cond_broadcast(&ob->cond);
	pthread_mutex_unlock(&ob->mu);
	return KF_OK;
}

bool kf__outbox_wait_empty(struct kf__outbox *ob, uint32_t timeout_ms)
{
	uint64_t deadline = kf_clock_mono_ns() + (uint64_t)timeout_ms * KF_NS_PER_MS;
	struct timespec ts;
	bool empty;

	pthread_mutex_lock(&ob->mu);
	while (ob->pending && kf_clock_mono_ns() < deadline) {
		ts = kf_clock_mono_timespec(deadline);
		pthread_cond_timedwait(&ob->cond, &ob->mu, &ts);
	}
	empty = ob->pending == 0;
	pthread_mutex_unlock(&ob->mu);
	return empty;
}

void kf__outbox_stats(struct kf__outbox *ob, struct kf__outbox_stats *out)
{
	pthread_mutex_lock(&ob->mu);
	*out = ob->st;
	out->pending = ob->pending;
	pthread_mutex_unlock(&ob->mu);
}
