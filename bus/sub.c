/* sub.c — the SUB side of pub/sub.
 *
 * A SUB socket here always has exactly one receive posted in nng, with no
 * timeout, and that receive is never cancelled while the socket is open.
 * Its callback moves each message into the subscriber's own queue, which
 * is what callers wait on, with their timeouts, and what the descriptor of
 * kf_bus_sub_recv_fd reports.
 *
 * Why: in nng 1.5.2 a SUB receive that is cancelled — its timeout expiring,
 * or nng_aio_stop — just as a message is delivered to it can unlink the
 * receive from a list it is no longer on (sub0_ctx_cancel against
 * sub0_recv_cb; nng issues #1523 and #1682, fixed in 1.6.0). The process
 * dies with SIGSEGV in nni_list_remove. bench/bench_sub_race reproduces it
 * in minutes with receives of 1 ms against a steady stream. A receive that
 * never times out is never cancelled, so the window does not exist; closing
 * the socket ends it through sub0_ctx_close, which only takes receives
 * still queued on the context.
 *
 * Bundles (bundle.h) are taken apart here, in the callback: each part that
 * matches one of the subscriber's prefixes is queued as a message of its
 * own, so readers never see a bundle. nng filters on the bundle's magic,
 * which every subscription adds, and this file filters the parts with its
 * own copy of the prefixes. A bundle that does
 * not parse is queued whole, as the bytes arrived: the reader's decoder
 * refuses it (an empty topic) and counts it as it counts any malformed
 * message.
 */
#include "bus/sub.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <nng/protocol/pubsub0/sub.h>

#include "bus/bundle.h"
#include "bus/bus_internal.h"
#include "common/clock.h"

struct prefix {
	void *bytes;
	size_t len;
};

struct kf_bus_sub {
	struct kf_bus_sock *sock;
	nng_aio *aio;            /* the one receive posted in nng */
	int ready_fd;            /* eventfd: readable while n > 0 or closed */

	pthread_mutex_t sub_mu;  /* orders subscribe/unsubscribe; never taken by on_recv */
	pthread_mutex_t mu;      /* guards the rest; never held across a wait in nng */
	pthread_cond_t cv;       /* CLOCK_MONOTONIC; a message queued, or closed */
	nng_msg **ring;          /* received, not yet taken: ring[(head + i) % size] */
	size_t cap, size, head, n; /* size = cap + room for one bundle's parts */
	struct prefix *prefixes; /* what the reader subscribed to, to filter parts */
	size_t n_prefixes;
	bool armed;              /* aio is posted (or its callback is about to run) */
	bool closed;             /* nng reported the socket closed */
	bool raised;             /* ready_fd holds a count */
};

static void raise_ready(struct kf_bus_sub *sub)
{
	uint64_t one = 1;

	if (!sub->raised && write(sub->ready_fd, &one, sizeof(one)) == sizeof(one))
		sub->raised = true;
}

static void clear_ready(struct kf_bus_sub *sub)
{
	uint64_t v;

	if (sub->raised && read(sub->ready_fd, &v, sizeof(v)) == sizeof(v))
		sub->raised = false;
}

/* Posts the receive again unless the queue is full or the socket closed;
 * mu held. Returns whether the caller must call nng_recv_aio (after
 * unlocking: nng takes its own socket lock there). */
static bool claim_rearm(struct kf_bus_sub *sub)
{
	if (sub->armed || sub->closed || sub->n >= sub->cap)
		return false;
	sub->armed = true;
	return true;
}

static void enqueue(struct kf_bus_sub *sub, nng_msg *msg)
{
	sub->ring[(sub->head + sub->n) % sub->size] = msg;
	sub->n++;
}

static bool wanted(const struct kf_bus_sub *sub, const void *buf, size_t len)
{
	for (size_t i = 0; i < sub->n_prefixes; i++)
		if (len >= sub->prefixes[i].len &&
		    memcmp(buf, sub->prefixes[i].bytes, sub->prefixes[i].len) == 0)
			return true;
	return false;
}

/* A received message into the queue; a bundle as its wanted parts, each
 * copied into a message of its own. mu held. The receive is posted only
 * while n < cap, and the ring has room for cap + KF_BUS_BUNDLE_MAX_PARTS,
 * so the parts always fit. A part that cannot be allocated is dropped, as
 * nng drops what does not fit its queue. */
static void queue_received(struct kf_bus_sub *sub, nng_msg *msg)
{
	struct kf_bus_part parts[KF_BUS_BUNDLE_MAX_PARTS];
	struct kf_bus_bundle_iter it;
	size_t n = 0;
	enum kf_err err;

	/* One pass: a bundle is split only once all of it has parsed. */
	kf_bus_bundle_iter_init(&it, nng_msg_body(msg), nng_msg_len(msg));
	while ((err = kf_bus_bundle_next(&it, &parts[n])) == KF_OK)
		n++;
	if (err != KF_ENOENT) { /* a plain message, or a malformed bundle */
		enqueue(sub, msg);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		nng_msg *one = NULL;

		if (!wanted(sub, parts[i].buf, parts[i].len) ||
		    nng_msg_alloc(&one, parts[i].len) != 0)
			continue;
		memcpy(nng_msg_body(one), parts[i].buf, parts[i].len);
		enqueue(sub, one);
	}
	nng_msg_free(msg);
}

/* nng's completion of the posted receive, on one of nng's threads. A full
 * queue leaves the receive unposted: messages then wait in nng's own queue
 * (NNG_OPT_RECVBUF), which drops the oldest as before, and the next
 * kf_bus_sub_recv posts it again. */
static void on_recv(void *arg)
{
	struct kf_bus_sub *sub = arg;
	int rv = nng_aio_result(sub->aio);
	bool rearm;

	pthread_mutex_lock(&sub->mu);
	sub->armed = false;
	if (rv == 0) {
		queue_received(sub, nng_aio_get_msg(sub->aio));
		raise_ready(sub);
		pthread_cond_broadcast(&sub->cv);
	} else if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
		sub->closed = true;
		raise_ready(sub);
		pthread_cond_broadcast(&sub->cv);
	}
	/* Any other error (NNG_ENOMEM) is nng's to report again: post anew. */
	rearm = claim_rearm(sub);
	pthread_mutex_unlock(&sub->mu);
	if (rearm)
		nng_recv_aio(sub->sock->sock, sub->aio);
}

/* kf_bus_sock_close, first thing: receivers waiting see the socket closed
 * now, even when nng's close is left behind and on_recv never hears of it
 * (sock.c); so they wait without a timeout of their own. */
static void on_sock_close(void *arg)
{
	struct kf_bus_sub *sub = arg;

	pthread_mutex_lock(&sub->mu);
	raise_ready(sub);
	pthread_cond_broadcast(&sub->cv);
	pthread_mutex_unlock(&sub->mu);
}

static enum kf_err sub_init_sync(struct kf_bus_sub *sub, int queue)
{
	sub->cap = (size_t)queue;
	sub->size = sub->cap + KF_BUS_BUNDLE_MAX_PARTS;
	sub->ring = calloc(sub->size, sizeof(*sub->ring));
	if (sub->ring == NULL)
		return KF_ENOMEM;
	sub->ready_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sub->ready_fd < 0) {
		free(sub->ring);
		return KF_EIO;
	}
	if (pthread_mutex_init(&sub->mu, NULL) != 0)
		goto fail;
	if (pthread_mutex_init(&sub->sub_mu, NULL) != 0)
		goto fail_mu;
	if (kf_clock_mono_cond_init(&sub->cv) == 0)
		return KF_OK;
	pthread_mutex_destroy(&sub->sub_mu);
fail_mu:
	pthread_mutex_destroy(&sub->mu);
fail:
	close(sub->ready_fd);
	free(sub->ring);
	return KF_ENOMEM;
}

enum kf_err kf_bus_sub_new(struct kf_bus_sub **out, enum kf_bus_mode mode,
	const char *url, const struct kf_bus_opts *opts, struct kf_strbuf *why)
{
	struct kf_bus_sub *sub = calloc(1, sizeof(*sub));
	int queue = opts && opts->queue_len > 0 ? opts->queue_len : KF_BUS_SUB_QUEUE_DEFAULT;
	enum kf_err err;
	int rv;

	*out = NULL;
	if (sub == NULL)
		return KF_ENOMEM;
	/* nng 1.5.2 caps its receive queue at 8192 messages; ours follows it. */
	if (queue > KF_BUS_SUB_QUEUE_MAX) {
		if (why)
			kf_strbuf_addf(why, "receive queue of %d messages refused; at most %d",
				       queue, KF_BUS_SUB_QUEUE_MAX);
		free(sub);
		return KF_EINVAL;
	}
	err = sub_init_sync(sub, queue);
	if (err != KF_OK) {
		free(sub);
		return err;
	}
	err = kf__bus_sock_new(&sub->sock, nng_sub0_open, KF_BUS_RECV_MAX_TELEMETRY);
	if (err == KF_OK) {
		sub->sock->on_close = on_sock_close;
		sub->sock->on_close_arg = sub;
	}
	if (err == KF_OK && (rv = nng_aio_alloc(&sub->aio, on_recv, sub)) != 0)
		err = kf_bus_err_from_nng(rv);
	if (err == KF_OK && (rv = nng_socket_set_int(sub->sock->sock, NNG_OPT_RECVBUF, queue)))
		err = kf_bus_err_from_nng(rv);
	if (err == KF_OK)
		err = kf__bus_sock_attach(sub->sock, mode, url, opts, why);
	if (err != KF_OK) {
		kf_bus_sub_free(sub);
		return err;
	}
	/* No timeout: the receive stays posted until a message or the close. */
	sub->armed = true;
	nng_recv_aio(sub->sock->sock, sub->aio);
	*out = sub;
	return KF_OK;
}

void kf_bus_sub_free(struct kf_bus_sub *sub)
{
	if (sub == NULL)
		return;
	/* Close first: nng then completes the posted receive with NNG_ECLOSED
	 * (no cancel involved), and nng_aio_free waits for that callback. A
	 * close left behind (sock.c) leaves the receive posted; nng_aio_free
	 * cancels it then, and no message can race that cancel any more: the
	 * socket's connections are closed. */
	if (sub->sock)
		kf_bus_sock_close(sub->sock);
	if (sub->aio)
		nng_aio_free(sub->aio);
	kf__bus_sock_free(sub->sock);
	for (size_t i = 0; i < sub->n; i++)
		nng_msg_free(sub->ring[(sub->head + i) % sub->size]);
	for (size_t i = 0; i < sub->n_prefixes; i++)
		free(sub->prefixes[i].bytes);
	free(sub->prefixes);
	pthread_cond_destroy(&sub->cv);
	pthread_mutex_destroy(&sub->sub_mu);
	pthread_mutex_destroy(&sub->mu);
	close(sub->ready_fd);
	free(sub->ring);
	free(sub);
}

struct kf_bus_sock *kf_bus_sub_sock(struct kf_bus_sub *sub)
{
	return sub->sock;
}

static ptrdiff_t find_prefix(const struct kf_bus_sub *sub, const void *prefix, size_t len)
{
	for (size_t i = 0; i < sub->n_prefixes; i++)
		if (sub->prefixes[i].len == len && (len == 0 ||
		    memcmp(sub->prefixes[i].bytes, prefix, len) == 0))
			return (ptrdiff_t)i;
	return -1;
}

static int nng_sub_opt(struct kf_bus_sub *sub, const char *opt, const void *prefix, size_t len)
{
	return nng_socket_set(sub->sock->sock, opt, prefix, len);
}

/* nng filters whole messages; a bundle passes on its magic, which is
 * subscribed with every prefix (nng keeps one copy) and unsubscribed with
 * the last. sub_mu orders these changes; mu, which on_recv takes, guards
 * only the list and is never held across a call into nng. */
enum kf_err kf_bus_sub_subscribe(struct kf_bus_sub *sub, const void *prefix, size_t len)
{
	struct prefix *grown;
	void *copy = malloc(len ? len : 1);
	int rv;

	if (!copy)
		return KF_ENOMEM;
	if (len)
		memcpy(copy, prefix, len);
	pthread_mutex_lock(&sub->sub_mu);
	/* nng copies the prefix. */
	rv = nng_sub_opt(sub, NNG_OPT_SUB_SUBSCRIBE, prefix, len);
	if (rv == 0)
		rv = nng_sub_opt(sub, NNG_OPT_SUB_SUBSCRIBE, KF_BUS_BUNDLE_MAGIC,
				 KF_BUS_BUNDLE_MAGIC_LEN);
	pthread_mutex_lock(&sub->mu);
	if (rv == 0 && find_prefix(sub, prefix, len) < 0) {
		grown = realloc(sub->prefixes, (sub->n_prefixes + 1) * sizeof(*grown));
		if (grown) {
			sub->prefixes = grown;
			sub->prefixes[sub->n_prefixes++] = (struct prefix){ copy, len };
			copy = NULL;
		} else {
			rv = NNG_ENOMEM;
		}
	}
	pthread_mutex_unlock(&sub->mu);
	pthread_mutex_unlock(&sub->sub_mu);
	free(copy);
	return kf_bus_err_from_nng(rv);
}

enum kf_err kf_bus_sub_unsubscribe(struct kf_bus_sub *sub, const void *prefix, size_t len)
{
	bool last = false;
	ptrdiff_t i;
	int rv;

	pthread_mutex_lock(&sub->sub_mu);
	rv = nng_sub_opt(sub, NNG_OPT_SUB_UNSUBSCRIBE, prefix, len);
	pthread_mutex_lock(&sub->mu);
	if ((i = find_prefix(sub, prefix, len)) >= 0) {
		free(sub->prefixes[i].bytes);
		sub->prefixes[i] = sub->prefixes[--sub->n_prefixes];
		last = sub->n_prefixes == 0;
	}
	pthread_mutex_unlock(&sub->mu);
	if (last)
		nng_sub_opt(sub, NNG_OPT_SUB_UNSUBSCRIBE, KF_BUS_BUNDLE_MAGIC,
			    KF_BUS_BUNDLE_MAGIC_LEN);
	pthread_mutex_unlock(&sub->sub_mu);
	return kf_bus_err_from_nng(rv);
}

/* Closed, for a reader: nng said so, or a close has begun — which may never
 * reach nng's end (sock.c), so readers look at the flag as well. */
static bool sub_closed(const struct kf_bus_sub *sub)
{
	return sub->closed || atomic_load(&sub->sock->closed);
}

enum kf_err kf_bus_sub_recv(struct kf_bus_sub *sub, nng_duration timeout_ms, nng_msg **out)
{
	uint64_t deadline = 0;
	enum kf_err err;
	bool rearm;

	*out = NULL;
	if (timeout_ms > 0)
		deadline = kf_clock_mono_ns() + (uint64_t)timeout_ms * 1000000u;
	pthread_mutex_lock(&sub->mu);
	for (;;) {
		struct timespec until;

		if (sub->n > 0) {
			*out = sub->ring[sub->head];
			sub->head = (sub->head + 1) % sub->size;
			sub->n--;
			err = KF_OK;
			break;
		}
		if (sub_closed(sub)) {
			err = KF_ECANCELED;
			break;
		}
		if (timeout_ms == 0 || (timeout_ms > 0 && kf_clock_mono_ns() >= deadline)) {
			err = KF_ETIMEDOUT;
			break;
		}
		/* A message (on_recv) and the close (on_sock_close) signal cv. */
		if (timeout_ms < 0) {
			pthread_cond_wait(&sub->cv, &sub->mu);
			continue;
		}
		until = kf_clock_mono_timespec(deadline);
		pthread_cond_timedwait(&sub->cv, &sub->mu, &until);
	}
	if (sub->n == 0 && !sub_closed(sub))
		clear_ready(sub);
	rearm = claim_rearm(sub);
	pthread_mutex_unlock(&sub->mu);
	if (rearm)
		nng_recv_aio(sub->sock->sock, sub->aio);
	return err;
}

enum kf_err kf_bus_sub_recv_fd(struct kf_bus_sub *sub, int *fd)
{
	*fd = sub->ready_fd;
	return KF_OK;
}
