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

/* The pool grows by whole chunks, so that a slot never moves: nng's
 * callbacks hold pointers to slots. */
#define CHUNK KF_RPC_CONTEXTS_CHUNK
/* A failed growth (out of memory, nng refusing a context) is tried again
 * no sooner than this, not on every request. */
#define GROW_RETRY_NS (1000u * 1000u * 1000u)

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
	/* Slot k is chunks[k / CHUNK][k % CHUNK]. Only the owner thread (in
	 * next()) and free() change the pool; nng's callbacks touch one slot. */
	struct kf_rpc_req **chunks;
	atomic_uint n_open;   /* slots with a context, 0..max */
	unsigned max;
	uint64_t grow_retry_ns; /* after a failed growth: not before this */
	int efd;
	atomic_bool stopping;

	pthread_mutex_t mu;   /* queue, closing; never held across nng calls */
	pthread_cond_t cv;
	struct kf_rpc_req *head, *tail;
	unsigned queued;
	bool closed;          /* a context saw the socket closed */

	atomic_uint held;
	atomic_uint receiving;  /* contexts with a receive posted */
	atomic_uint_fast64_t next_id, received, replied, dropped, send_failed;
	atomic_uint_fast64_t exhausted;
};

static struct kf_rpc_req *slot_at(struct kf_rpc_server *srv, unsigned k)
{
	return &srv->chunks[k / CHUNK][k % CHUNK];
}

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

/* The socket is closed: wakes next() and makes the fd readable, once.
 * Under mu. */
static void wake_closed(struct kf_rpc_server *srv)
{
	if (!srv->closed) {
		srv->closed = true;
		efd_signal(srv);
	}
	pthread_cond_broadcast(&srv->cv);
}

static void mark_dead(struct kf_rpc_req *req)
{
	struct kf_rpc_server *srv = req->srv;

	pthread_mutex_lock(&srv->mu);
	req->state = SLOT_DEAD;
	wake_closed(srv);
	pthread_mutex_unlock(&srv->mu);
}

/* The socket closed (kf_bus_sock_close, any thread). mark_dead wakes the
 * server when a context's receive ends with the close; with every context
 * holding a request none is receiving, and only this would. */
static void on_sock_close(void *arg)
{
	struct kf_rpc_server *srv = arg;

	pthread_mutex_lock(&srv->mu);
	wake_closed(srv);
	pthread_mutex_unlock(&srv->mu);
}

static void arm_recv(struct kf_rpc_req *req)
{
	if (atomic_load(&req->srv->stopping)) {
		mark_dead(req);
		return;
	}
	req->state = SLOT_RECV;
	/* Counted before the receive is posted: its callback may run first. */
	atomic_fetch_add(&req->srv->receiving, 1);
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
	atomic_fetch_sub(&srv->receiving, 1);
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

static int slot_open(struct kf_rpc_server *srv, struct kf_rpc_req *req)
{
	int rv;

	req->srv = srv;
	req->state = SLOT_DEAD;
	rv = nng_aio_alloc(&req->aio, slot_cb, req);
	if (rv == 0 && (rv = nng_ctx_open(&req->ctx, srv->sock->sock)) != 0) {
		nng_aio_free(req->aio);
		req->aio = NULL;
	}
	return rv;
}

/* Opens up to n more contexts (within max), chunk by chunk, and starts
 * them receiving when `arm`. Returns the first error; the slots opened
 * before it stay open. */
static int pool_grow(struct kf_rpc_server *srv, unsigned n, bool arm)
{
	unsigned open = atomic_load(&srv->n_open);
	unsigned end = n < srv->max - open ? open + n : srv->max;

	for (unsigned k = open; k < end; k++) {
		int rv;

		if (k % CHUNK == 0 && srv->chunks[k / CHUNK] == NULL &&
		    (srv->chunks[k / CHUNK] = calloc(CHUNK, sizeof(struct kf_rpc_req))) == NULL)
			return NNG_ENOMEM;
		if ((rv = slot_open(srv, slot_at(srv, k))) != 0)
			return rv;
		atomic_store(&srv->n_open, k + 1);
		if (arm)
			arm_recv(slot_at(srv, k));
	}
	return 0;
}

/* Owner thread, after taking a request: keeps KF_RPC_CONTEXTS_SPARE
 * contexts receiving while the pool is below its max. Requests that find
 * no context wait in their connections, unread, until one is free: when
 * none is receiving and the pool could not grow (at its max, or out of
 * memory), that is counted. */
static void pool_keep_spare(struct kf_rpc_server *srv)
{
	if (atomic_load(&srv->receiving) >= KF_RPC_CONTEXTS_SPARE)
		return;
	if (atomic_load(&srv->n_open) < srv->max &&
	    (!srv->grow_retry_ns || kf_clock_mono_ns() >= srv->grow_retry_ns)) {
		if (pool_grow(srv, CHUNK, true) == 0) {
			srv->grow_retry_ns = 0;
			return;
		}
		srv->grow_retry_ns = kf_clock_mono_ns() + GROW_RETRY_NS;
	}
	if (atomic_load(&srv->receiving) == 0)
		atomic_fetch_add(&srv->exhausted, 1);
}

static enum kf_err server_init(struct kf_rpc_server *srv, unsigned max)
{
	srv->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (srv->efd < 0)
		return KF_EIO;
	srv->max = max;
	srv->chunks = calloc((max + CHUNK - 1) / CHUNK, sizeof(*srv->chunks));
	if (srv->chunks == NULL)
		return KF_ENOMEM;
	if (pthread_mutex_init(&srv->mu, NULL) != 0)
		return KF_ENOMEM;
	return kf_clock_mono_cond_init(&srv->cv) == 0 ? KF_OK : KF_ENOMEM;
}

enum kf_err kf_rpc_server_new(struct kf_rpc_server **out, unsigned max_contexts,
	const char *url, const struct kf_bus_opts *opts, struct kf_strbuf *why)
{
	struct kf_rpc_server *srv;
	enum kf_err err;
	int rv;

	*out = NULL;
	if (max_contexts == 0)
		max_contexts = KF_RPC_CONTEXTS_DEFAULT;
	if (max_contexts > KF_RPC_CONTEXTS_MAX)
		return KF_ERANGE;
	srv = calloc(1, sizeof(*srv));
	if (srv == NULL)
		return KF_ENOMEM;
	srv->efd = -1;
	err = server_init(srv, max_contexts);
	if (err != KF_OK) {
		/* Only the parts server_init made exist: undo them here. */
		if (srv->efd >= 0)
			close(srv->efd);
		free(srv->chunks);
		free(srv);
		return err;
	}
	err = kf__bus_sock_new(&srv->sock, nng_rep0_open, KF_BUS_RECV_MAX_RPC);
	if (err == KF_OK) {
		srv->sock->on_close = on_sock_close;
		srv->sock->on_close_arg = srv;
	}
	if (err == KF_OK && (rv = pool_grow(srv, KF_RPC_CONTEXTS_INITIAL, false)) != 0)
		err = kf_bus_err_from_nng(rv);
	if (err == KF_OK)
		err = kf__bus_sock_attach(srv->sock, KF_BUS_LISTEN, url, opts, why);
	if (err != KF_OK) {
		kf_rpc_server_free(srv);
		return err;
	}
	for (unsigned k = 0; k < atomic_load(&srv->n_open); k++)
		arm_recv(slot_at(srv, k));
	*out = srv;
	return KF_OK;
}

void kf_rpc_server_free(struct kf_rpc_server *srv)
{
	unsigned open;

	if (srv == NULL)
		return;
	open = atomic_load(&srv->n_open);
	atomic_store(&srv->stopping, true);
	/* stop: cancel pending operations and wait for their callbacks, which
	 * see `stopping` and do not re-arm. */
	for (unsigned k = 0; k < open; k++)
		nng_aio_stop(slot_at(srv, k)->aio);
	/* close: contexts, then the socket with its listeners and guard. */
	for (unsigned k = 0; k < open; k++) {
		struct kf_rpc_req *req = slot_at(srv, k);

		if (req->msg)
			nng_msg_free(req->msg);
		nng_ctx_close(req->ctx);
	}
	kf__bus_sock_free(srv->sock);
	/* free */
	for (unsigned k = 0; k < open; k++)
		nng_aio_free(slot_at(srv, k)->aio);
	pthread_cond_destroy(&srv->cv);
	pthread_mutex_destroy(&srv->mu);
	close(srv->efd);
	for (unsigned c = 0; c < (srv->max + CHUNK - 1) / CHUNK; c++)
		free(srv->chunks[c]);
	free(srv->chunks);
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
	if (*out != NULL)
		pool_keep_spare(srv);
	return err;
}

void kf_rpc_server_stats(struct kf_rpc_server *srv, struct kf_rpc_server_stats *out)
{
	out->received = atomic_load(&srv->received);
	out->replied = atomic_load(&srv->replied);
	out->dropped = atomic_load(&srv->dropped);
	out->send_failed = atomic_load(&srv->send_failed);
	out->held = atomic_load(&srv->held);
	out->receiving = atomic_load(&srv->receiving);
	out->contexts = atomic_load(&srv->n_open);
	out->max_contexts = srv->max;
	out->exhausted = atomic_load(&srv->exhausted);
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
