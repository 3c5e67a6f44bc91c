/* rpc_client.c — REQ calls, one nng context per call. */
#include "bus/rpc_client.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include <nng/protocol/reqrep0/req.h>

#include "bus/bus_internal.h"
#include "common/clock.h"

/* A synchronous call in flight, so that kf_rpc_client_abort_calls can
 * reach its aio. */
struct sync_call {
	struct sync_call *next, *prev;
	nng_aio *aio;
	uint64_t gen;      /* cli->abort_gen when the call started */
};

struct kf_rpc_client {
	struct kf_bus_sock *sock;
	pthread_mutex_t mu;          /* calls, abort_gen */
	struct sync_call *calls;
	uint64_t abort_gen;
};

enum call_phase { CALL_IDLE, CALL_SEND, CALL_RECV };

struct kf_rpc_call {
	struct kf_rpc_client *cli;
	nng_ctx ctx;
	nng_aio *aio;
	kf_rpc_done_fn done;
	void *arg;
	atomic_int phase;
	atomic_bool stopping;
	uint64_t deadline_ns;
	/* Makes cancel sticky: between the send completing and the receive
	 * being posted there is no operation for nng_aio_cancel to abort. */
	pthread_mutex_t mu;
	bool cancelled;
};

enum kf_err kf_rpc_client_new(struct kf_rpc_client **out, const char *url,
	const struct kf_bus_opts *opts, struct kf_strbuf *why)
{
	struct kf_rpc_client *cli = calloc(1, sizeof(*cli));
	enum kf_err err;

	*out = NULL;
	if (cli == NULL)
		return KF_ENOMEM;
	if (pthread_mutex_init(&cli->mu, NULL) != 0) {
		free(cli);
		return KF_ENOMEM;
	}
	err = kf__bus_sock_new(&cli->sock, nng_req0_open, KF_BUS_RECV_MAX_RPC);
	if (err == KF_OK)
		err = kf__bus_sock_attach(cli->sock, KF_BUS_DIAL, url, opts, why);
	if (err != KF_OK) {
		kf_rpc_client_free(cli);
		return err;
	}
	*out = cli;
	return KF_OK;
}

void kf_rpc_client_free(struct kf_rpc_client *cli)
{
	if (cli == NULL)
		return;
	kf__bus_sock_free(cli->sock);
	pthread_mutex_destroy(&cli->mu);
	free(cli);
}

struct kf_bus_sock *kf_rpc_client_sock(struct kf_rpc_client *cli)
{
	return cli->sock;
}

static void resolve(const struct kf_rpc_call_opts *o, nng_duration *timeout,
	nng_duration *resend)
{
	*timeout = o && o->timeout_ms ? o->timeout_ms : KF_RPC_TIMEOUT_DEFAULT_MS;
	*resend = o && o->resend_ms ? o->resend_ms : KF_RPC_RESEND_DEFAULT_MS;
}

/* Front to back with nng_msg_append (nng_msg_insert is broken in 1.5.2). */
static int build(const void *req, size_t len, nng_msg **out)
{
	int rv = nng_msg_alloc(out, 0);

	if (rv == 0 && len && (rv = nng_msg_append(*out, req, len)) != 0)
		nng_msg_free(*out);
	return rv;
}

static nng_duration remaining_ms(uint64_t deadline_ns)
{
	uint64_t now = kf_clock_mono_ns();

	/* At least 1 ms: 0 would mean "poll" to nng, not "expired". */
	return now >= deadline_ns ? 1 : (nng_duration)((deadline_ns - now + 999999u) / 1000000u);
}

static uint64_t deadline_after(nng_duration timeout)
{
	if (timeout < 0)
		return UINT64_MAX;
	return kf_clock_mono_ns() + (uint64_t)timeout * 1000000u;
}

/* Starts one step of a synchronous call unless an abort came since the
 * call began. Under cli->mu, so that an abort either sees the operation
 * and cancels it or comes first and prevents it. The aio has no callback:
 * nng completes it without calling back into us, so holding the mutex
 * across nng_ctx_send/recv cannot deadlock. */
static bool step(struct kf_rpc_client *cli, struct sync_call *sc, nng_ctx ctx, bool send)
{
	bool go;

	pthread_mutex_lock(&cli->mu);
	go = sc->gen == cli->abort_gen;
	if (go && send)
		nng_ctx_send(ctx, sc->aio);
	else if (go)
		nng_ctx_recv(ctx, sc->aio);
	pthread_mutex_unlock(&cli->mu);
	return go;
}

/* The synchronous call: send then receive on a private context. */
static int call_on(struct kf_rpc_client *cli, struct sync_call *sc, nng_ctx ctx, nng_msg *msg,
	nng_duration timeout, nng_msg **reply)
{
	uint64_t deadline = deadline_after(timeout);
	nng_aio *aio = sc->aio;
	int rv;

	nng_aio_set_msg(aio, msg);
	nng_aio_set_timeout(aio, timeout);
	if (!step(cli, sc, ctx, true)) {
		nng_msg_free(msg);
		return NNG_ECANCELED;
	}
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) != 0) {
		/* A failed send leaves the message with us. */
		nng_msg_free(nng_aio_get_msg(aio));
		return rv;
	}
	nng_aio_set_timeout(aio, timeout < 0 ? timeout : remaining_ms(deadline));
	if (!step(cli, sc, ctx, false))
		return NNG_ECANCELED;
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) == 0)
		*reply = nng_aio_get_msg(aio);
	return rv;
}

static void track(struct kf_rpc_client *cli, struct sync_call *sc)
{
	pthread_mutex_lock(&cli->mu);
	sc->gen = cli->abort_gen;
	sc->prev = NULL;
	sc->next = cli->calls;
	if (cli->calls)
		cli->calls->prev = sc;
	cli->calls = sc;
	pthread_mutex_unlock(&cli->mu);
}

static void untrack(struct kf_rpc_client *cli, struct sync_call *sc)
{
	pthread_mutex_lock(&cli->mu);
	if (sc->prev)
		sc->prev->next = sc->next;
	else
		cli->calls = sc->next;
	if (sc->next)
		sc->next->prev = sc->prev;
	pthread_mutex_unlock(&cli->mu);
}

void kf_rpc_client_abort_calls(struct kf_rpc_client *cli)
{
	pthread_mutex_lock(&cli->mu);
	cli->abort_gen++;
	for (struct sync_call *sc = cli->calls; sc; sc = sc->next)
		nng_aio_cancel(sc->aio);
	pthread_mutex_unlock(&cli->mu);
}

enum kf_err kf_rpc_client_call(struct kf_rpc_client *cli, const void *req, size_t len,
	const struct kf_rpc_call_opts *opts, nng_msg **reply)
{
	struct sync_call sc = { .aio = NULL };
	nng_duration timeout, resend;
	nng_msg *msg = NULL;
	nng_ctx ctx;
	int rv;

	*reply = NULL;
	resolve(opts, &timeout, &resend);
	rv = nng_ctx_open(&ctx, cli->sock->sock);
	if (rv != 0)
		return kf_bus_err_from_nng(rv);
	rv = nng_ctx_set_ms(ctx, NNG_OPT_REQ_RESENDTIME, resend);
	if (rv == 0)
		rv = nng_aio_alloc(&sc.aio, NULL, NULL);
	if (rv == 0)
		rv = build(req, len, &msg);
	if (rv == 0) {
		track(cli, &sc);
		rv = call_on(cli, &sc, ctx, msg, timeout, reply);
		untrack(cli, &sc);
	}
	/* Closing the context abandons the request: no more resends. */
	nng_ctx_close(ctx);
	nng_aio_free(sc.aio);
	return kf_bus_err_from_nng(rv);
}

/* ---- asynchronous calls ---------------------------------------------- */

static void call_finish(struct kf_rpc_call *call, int rv, nng_msg *reply)
{
	atomic_store(&call->phase, CALL_IDLE);
	call->done(call->arg, kf_bus_err_from_nng(rv), reply);
}

/* Posts the receive unless the call was cancelled meanwhile. */
static void call_recv(struct kf_rpc_call *call)
{
	bool cancelled;

	pthread_mutex_lock(&call->mu);
	cancelled = call->cancelled || atomic_load(&call->stopping);
	if (!cancelled) {
		atomic_store(&call->phase, CALL_RECV);
		nng_aio_set_timeout(call->aio, call->deadline_ns == UINT64_MAX
			? NNG_DURATION_INFINITE : remaining_ms(call->deadline_ns));
		/* Completion is dispatched to an nng thread, never run inline. */
		nng_ctx_recv(call->ctx, call->aio);
	}
	pthread_mutex_unlock(&call->mu);
	if (cancelled)
		call_finish(call, NNG_ECANCELED, NULL);
}

static void call_cb(void *arg)
{
	struct kf_rpc_call *call = arg;
	int rv = nng_aio_result(call->aio);

	if (atomic_load(&call->phase) == CALL_RECV) {
		call_finish(call, rv, rv == 0 ? nng_aio_get_msg(call->aio) : NULL);
		return;
	}
	if (rv == 0) {
		call_recv(call);
		return;
	}
	nng_msg_free(nng_aio_get_msg(call->aio));
	nng_aio_set_msg(call->aio, NULL);
	call_finish(call, rv, NULL);
}

enum kf_err kf_rpc_call_new(struct kf_rpc_client *cli, kf_rpc_done_fn done, void *arg,
	struct kf_rpc_call **out)
{
	struct kf_rpc_call *call = calloc(1, sizeof(*call));
	int rv;

	*out = NULL;
	if (call == NULL)
		return KF_ENOMEM;
	call->cli = cli;
	call->done = done;
	call->arg = arg;
	if (pthread_mutex_init(&call->mu, NULL) != 0) {
		free(call);
		return KF_ENOMEM;
	}
	rv = nng_aio_alloc(&call->aio, call_cb, call);
	if (rv == 0 && (rv = nng_ctx_open(&call->ctx, cli->sock->sock)) != 0)
		nng_aio_free(call->aio);
	if (rv != 0) {
		pthread_mutex_destroy(&call->mu);
		free(call);
		return kf_bus_err_from_nng(rv);
	}
	*out = call;
	return KF_OK;
}

enum kf_err kf_rpc_call_start(struct kf_rpc_call *call, const void *req, size_t len,
	const struct kf_rpc_call_opts *opts)
{
	int idle = CALL_IDLE;
	nng_duration timeout, resend;
	nng_msg *msg;
	int rv;

	if (!atomic_compare_exchange_strong(&call->phase, &idle, CALL_SEND))
		return KF_EBUSY;
	resolve(opts, &timeout, &resend);
	rv = nng_ctx_set_ms(call->ctx, NNG_OPT_REQ_RESENDTIME, resend);
	if (rv == 0)
		rv = build(req, len, &msg);
	if (rv != 0) {
		atomic_store(&call->phase, CALL_IDLE);
		return kf_bus_err_from_nng(rv);
	}
	pthread_mutex_lock(&call->mu);
	call->cancelled = false;
	call->deadline_ns = deadline_after(timeout);
	nng_aio_set_msg(call->aio, msg);
	nng_aio_set_timeout(call->aio, timeout);
	nng_ctx_send(call->ctx, call->aio);
	pthread_mutex_unlock(&call->mu);
	return KF_OK;
}

void kf_rpc_call_cancel(struct kf_rpc_call *call)
{
	pthread_mutex_lock(&call->mu);
	call->cancelled = true;
	nng_aio_cancel(call->aio);
	pthread_mutex_unlock(&call->mu);
}

void kf_rpc_call_free(struct kf_rpc_call *call)
{
	if (call == NULL)
		return;
	/* Under mu, as call_recv looks at it: either it sees stopping and
	 * finishes the call itself, or its receive is posted before the stop,
	 * which cancels it, and the callback runs. Set between its look and
	 * its post, the receive would meet a stopped aio, which refuses it
	 * without a callback. */
	pthread_mutex_lock(&call->mu);
	atomic_store(&call->stopping, true);
	pthread_mutex_unlock(&call->mu);
	nng_aio_stop(call->aio);
	nng_ctx_close(call->ctx);
	nng_aio_free(call->aio);
	pthread_mutex_destroy(&call->mu);
	free(call);
}
