/* rpc_server.c — REP contexts feeding an owner thread through a queue. */
#include "bus/rpc_server.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <nng/protocol/reqrep0/rep.h>

#include "bus/bus_internal.h"
#include "common/clock.h"

/* A reply that cannot be handed to its connection within this time is
 * dropped, so that a peer that stopped reading cannot pin a context. */
#define REPLY_SEND_TIMEOUT_MS 5000

/* Who may touch a slot: the nng callback in RECV and SEND, the queue in
 * QUEUED, the holder in HELD; nobody in DEAD. Ownership moves through the
 * queue mutex or through nng's aio completion, which order the accesses. */
enum slot_state {
	SLOT_RECV,
	SLOT_QUEUED,
	SLOT_HELD,
	SLOT_SEND,
	SLOT_DEAD,
};

/* One per context: a REP context holds at most one request. */
struct kf_rpc_req {
	struct kf_rpc_server *srv;
	nng_ctx ctx;
	nng_aio *aio;
	nng_msg *msg;   /* the request, while QUEUED or HELD */
	nng_pipe pipe;
	uint64_t id;
	enum slot_state state;
	struct kf_rpc_req *next; /* queue link */
};

struct kf_rpc_server {
	struct kf_bus_sock *sock;
	struct kf_rpc_req *slots;
	unsigned n_slots;
	int efd;
	atomic_bool stopping;

	pthread_mutex_t mu;   /* queue, closing; never held across nng calls */
	pthread_cond_t cv;
	struct kf_rpc_req *head, *tail;
	unsigned queued;
	bool closed;          /* a context saw the socket closed */

	atomic_uint held;
	atomic_uint_fast64_t next_id, received, replied, dropped, send_failed;
};

static void efd_signal(struct kf_rpc_server *srv)
{
	uint64_t one = 1;

	/* Cannot fail short of a counter overflow, which reads drain. */
	if (write(srv->efd, &one, sizeof(one)) < 0)
		return;
}

static void efd_reset(struct kf_rpc_server *srv)
{
	uint64_t v;

	if (read(srv->efd, &v, sizeof(v)) < 0)
		return; /* EAGAIN: already reset */
}

static void enqueue(struct kf_rpc_server *srv, struct kf_rpc_req *req)
{
	pthread_mutex_lock(&srv->mu);
	req->state = SLOT_QUEUED;
	req->next = NULL;
	if (srv->tail)
		srv->tail->next = req;
	else
		srv->head = req;
	srv->tail = req;
	if (srv->queued++ == 0)
		efd_signal(srv);
	pthread_cond_signal(&srv->cv);
	pthread_mutex_unlock(&srv->mu);
}

static void mark_dead(struct kf_rpc_req *req)
{
	struct kf_rpc_server *srv = req->srv;

	pthread_mutex_lock(&srv->mu);
	req->state = SLOT_DEAD;
	if (!srv->closed) {
		srv->closed = true;
		efd_signal(srv);
	}
	pthread_cond_broadcast(&srv->cv);
	pthread_mutex_unlock(&srv->mu);
}

static void arm_recv(struct kf_rpc_req *req)
{
	if (atomic_load(&req->srv->stopping)) {
		mark_dead(req);
		return;
	}
	req->state = SLOT_RECV;
	nng_aio_set_timeout(req->aio, NNG_DURATION_INFINITE);
	nng_ctx_recv(req->ctx, req->aio);
}

static bool fatal(int rv)
{
	return rv == NNG_ECLOSED || rv == NNG_ECANCELED;
}

/* nng callback: never blocks and never calls the application. */
static void slot_cb(void *arg)
{
	struct kf_rpc_req *req = arg;
	struct kf_rpc_server *srv = req->srv;
	int rv = nng_aio_result(req->aio);

	if (req->state == SLOT_SEND) {
		if (rv != 0) {
			nng_msg_free(nng_aio_get_msg(req->aio));
			nng_aio_set_msg(req->aio, NULL);
			atomic_fetch_add(&srv->send_failed, 1);
		}
		if (fatal(rv))
			mark_dead(req);
		else
			arm_recv(req);
		return;
	}
	if (rv != 0) {
		if (fatal(rv) || atomic_load(&srv->stopping))
			mark_dead(req);
		else
			arm_recv(req);
		return;
	}
	req->msg = nng_aio_get_msg(req->aio);
	nng_aio_set_msg(req->aio, NULL);
	req->pipe = nng_msg_get_pipe(req->msg);
	req->id = atomic_fetch_add(&srv->next_id, 1) + 1;
	atomic_fetch_add(&srv->received, 1);
	enqueue(srv, req);
}

static enum kf_err slots_open(struct kf_rpc_server *srv)
{
	for (unsigned i = 0; i < srv->n_slots; i++) {
		struct kf_rpc_req *req = &srv->slots[i];
		int rv;

		req->srv = srv;
		req->state = SLOT_DEAD;
		rv = nng_aio_alloc(&req->aio, slot_cb, req);
		if (rv == 0 && (rv = nng_ctx_open(&req->ctx, srv->sock->sock)) != 0) {
			nng_aio_free(req->aio);
			req->aio = NULL;
		}
		if (rv != 0)
			return kf_bus_err_from_nng(rv);
	}
	return KF_OK;
}

static enum kf_err server_init(struct kf_rpc_server *srv, unsigned contexts)
{
	srv->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (srv->efd < 0)
		return KF_EIO;
	srv->n_slots = contexts;
	srv->slots = calloc(contexts, sizeof(*srv->slots));
	if (srv->slots == NULL)
		return KF_ENOMEM;
	if (pthread_mutex_init(&srv->mu, NULL) != 0)
		return KF_ENOMEM;
	return kf_clock_mono_cond_init(&srv->cv) == 0 ? KF_OK : KF_ENOMEM;
}

enum kf_err kf_rpc_server_new(struct kf_rpc_server **out, unsigned contexts,
	const char *url, const struct kf_bus_opts *opts, struct kf_strbuf *why)
{
	struct kf_rpc_server *srv;
	enum kf_err err;

	*out = NULL;
	if (contexts == 0)
		contexts = KF_RPC_CONTEXTS_DEFAULT;
	if (contexts > KF_RPC_CONTEXTS_MAX)
		return KF_ERANGE;
	srv = calloc(1, sizeof(*srv));
	if (srv == NULL)
		return KF_ENOMEM;
	srv->efd = -1;
	err = server_init(srv, contexts);
	if (err != KF_OK) {
		/* Only the parts server_init made exist: undo them here. */
		if (srv->efd >= 0)
			close(srv->efd);
		free(srv->slots);
		free(srv);
		return err;
	}
	err = kf__bus_sock_new(&srv->sock, nng_rep0_open, KF_BUS_RECV_MAX_RPC);
	if (err == KF_OK)
		err = slots_open(srv);
	if (err == KF_OK)
		err = kf__bus_sock_attach(srv->sock, KF_BUS_LISTEN, url, opts, why);
	if (err != KF_OK) {
		kf_rpc_server_free(srv);
		return err;
	}
	for (unsigned i = 0; i < srv->n_slots; i++)
		arm_recv(&srv->slots[i]);
	*out = srv;
	return KF_OK;
}

void kf_rpc_server_free(struct kf_rpc_server *srv)
{
	if (srv == NULL)
		return;
	atomic_store(&srv->stopping, true);
	/* stop: cancel pending operations and wait for their callbacks, which
	 * see `stopping` and do not re-arm. */
	for (unsigned i = 0; i < srv->n_slots; i++)
		if (srv->slots[i].aio)
			nng_aio_stop(srv->slots[i].aio);
	/* close: contexts, then the socket with its listeners and guard. */
	for (unsigned i = 0; i < srv->n_slots; i++) {
		struct kf_rpc_req *req = &srv->slots[i];

		if (req->msg)
			nng_msg_free(req->msg);
		if (req->aio)
			nng_ctx_close(req->ctx);
	}
	kf__bus_sock_free(srv->sock);
	/* free */
	for (unsigned i = 0; i < srv->n_slots; i++)
		nng_aio_free(srv->slots[i].aio);
	pthread_cond_destroy(&srv->cv);
	pthread_mutex_destroy(&srv->mu);
	close(srv->efd);
	free(srv->slots);
	free(srv);
}

struct kf_bus_sock *kf_rpc_server_sock(struct kf_rpc_server *srv)
{
	return srv->sock;
}

int kf_rpc_server_fd(const struct kf_rpc_server *srv)
{
	return srv->efd;
}

static struct kf_rpc_req *dequeue(struct kf_rpc_server *srv)
{
	struct kf_rpc_req *req = srv->head;

	srv->head = req->next;
	if (srv->head == NULL)
		srv->tail = NULL;
	if (--srv->queued == 0 && !srv->closed)
		efd_reset(srv);
	req->next = NULL;
	req->state = SLOT_HELD;
	atomic_fetch_add(&srv->held, 1);
	return req;
}

static bool is_closed(struct kf_rpc_server *srv)
{
	return srv->closed || atomic_load(&srv->sock->closed);
}

enum kf_err kf_rpc_server_next(struct kf_rpc_server *srv, nng_duration timeout_ms,
	struct kf_rpc_req **out)
{
	uint64_t deadline = kf_clock_mono_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
	struct timespec ts = { .tv_sec = (time_t)(deadline / 1000000000u),
		.tv_nsec = (long)(deadline % 1000000000u) };
	enum kf_err err = KF_OK;

	*out = NULL;
	pthread_mutex_lock(&srv->mu);
	while (srv->head == NULL && !is_closed(srv) && err == KF_OK) {
		if (timeout_ms == 0)
			err = KF_ETIMEDOUT;
		else if (timeout_ms < 0)
			pthread_cond_wait(&srv->cv, &srv->mu);
		else if (pthread_cond_timedwait(&srv->cv, &srv->mu, &ts) == ETIMEDOUT)
			err = srv->head ? KF_OK : KF_ETIMEDOUT;
	}
	if (srv->head != NULL)
		*out = dequeue(srv);
	else if (err == KF_OK)
		err = KF_ECANCELED;
	pthread_mutex_unlock(&srv->mu);
	return err;
}

void kf_rpc_server_stats(struct kf_rpc_server *srv, struct kf_rpc_server_stats *out)
{
	out->received = atomic_load(&srv->received);
	out->replied = atomic_load(&srv->replied);
	out->dropped = atomic_load(&srv->dropped);
	out->send_failed = atomic_load(&srv->send_failed);
	out->held = atomic_load(&srv->held);
	out->contexts = srv->n_slots;
	pthread_mutex_lock(&srv->mu);
	out->queued = srv->queued;
	pthread_mutex_unlock(&srv->mu);
}

const void *kf_rpc_req_body(const struct kf_rpc_req *req, size_t *len)
{
	*len = nng_msg_len(req->msg);
	return nng_msg_body(req->msg);
}

uint64_t kf_rpc_req_id(const struct kf_rpc_req *req)
{
	return req->id;
}

enum kf_err kf_rpc_req_peer(const struct kf_rpc_req *req, struct kf_bus_peer *out)
{
	return kf__bus_pipe_peer(req->pipe, out);
}

bool kf_rpc_req_peer_alive(const struct kf_rpc_req *req)
{
	nng_sockaddr sa;

	/* nng forgets a pipe's id once the closed pipe is reaped. */
	return nng_pipe_get_addr(req->pipe, NNG_OPT_REMADDR, &sa) == 0;
}

static void release(struct kf_rpc_req *req)
{
	nng_msg_free(req->msg);
	req->msg = NULL;
	atomic_fetch_sub(&req->srv->held, 1);
}

enum kf_err kf_rpc_req_reply_msg(struct kf_rpc_req *req, nng_msg *msg)
{
	release(req);
	atomic_fetch_add(&req->srv->replied, 1);
	req->state = SLOT_SEND;
	nng_aio_set_msg(req->aio, msg);
	nng_aio_set_timeout(req->aio, REPLY_SEND_TIMEOUT_MS);
	nng_ctx_send(req->ctx, req->aio);
	return KF_OK;
}

enum kf_err kf_rpc_req_reply(struct kf_rpc_req *req, const void *bytes, size_t len)
{
	nng_msg *msg = NULL;
	int rv;

	/* A fresh message keeps the request intact if allocation fails. */
	rv = nng_msg_alloc(&msg, 0);
	if (rv == 0 && len)
		rv = nng_msg_append(msg, bytes, len);
	if (rv != 0) {
		if (msg)
			nng_msg_free(msg);
		return kf_bus_err_from_nng(rv);
	}
	return kf_rpc_req_reply_msg(req, msg);
}

void kf_rpc_req_drop(struct kf_rpc_req *req)
{
	release(req);
	atomic_fetch_add(&req->srv->dropped, 1);
	arm_recv(req);
}
