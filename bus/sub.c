/* sub.c — the SUB side of pub/sub. */
#include "bus/sub.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include <nng/protocol/pubsub0/sub.h>

#include "bus/bus_internal.h"
#include "common/clock.h"

/* Longest single poll() of a receive that waits for ever: a socket closed
 * meanwhile is noticed within this. */
#define WAIT_SLICE_MS 100

struct kf_bus_sub {
	struct kf_bus_sock *sock;
	int recv_fd;               /* NNG_OPT_RECVFD: readable while a message waits */
};

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
	err = kf__bus_sock_new(&sub->sock, nng_sub0_open, KF_BUS_RECV_MAX_TELEMETRY);
	if (err != KF_OK) {
		free(sub);
		return err;
	}
	/* nng 1.5.2 caps the receive queue at 8192 messages. */
	rv = nng_socket_set_int(sub->sock->sock, NNG_OPT_RECVBUF, queue);
	if (rv && why)
		kf_strbuf_addf(why, "receive queue of %d messages refused (%s); at most %d",
			       queue, nng_strerror(rv), KF_BUS_SUB_QUEUE_MAX);
	err = rv ? kf_bus_err_from_nng(rv) : kf__bus_sock_attach(sub->sock, mode, url, opts, why);
	if (err == KF_OK)
		err = kf_bus_err_from_nng(nng_socket_get_int(sub->sock->sock, NNG_OPT_RECVFD,
							     &sub->recv_fd));
	if (err != KF_OK) {
		kf_bus_sub_free(sub);
		return err;
	}
	*out = sub;
	return KF_OK;
}

void kf_bus_sub_free(struct kf_bus_sub *sub)
{
	if (sub == NULL)
		return;
	kf__bus_sock_free(sub->sock);
	free(sub);
}

struct kf_bus_sock *kf_bus_sub_sock(struct kf_bus_sub *sub)
{
	return sub->sock;
}

enum kf_err kf_bus_sub_subscribe(struct kf_bus_sub *sub, const void *prefix, size_t len)
{
	/* nng copies the prefix. */
	return kf_bus_err_from_nng(nng_socket_set(sub->sock->sock, NNG_OPT_SUB_SUBSCRIBE,
		prefix, len));
}

enum kf_err kf_bus_sub_unsubscribe(struct kf_bus_sub *sub, const void *prefix, size_t len)
{
	return kf_bus_err_from_nng(nng_socket_set(sub->sock->sock, NNG_OPT_SUB_UNSUBSCRIBE,
		prefix, len));
}

/*
 * No receive here ever waits inside nng. In nng 1.5.2 a SUB receive that
 * expires (its timeout) just as a message arrives can corrupt the socket's
 * list of waiting receives: a rare SIGSEGV in nni_list_remove, from
 * sub0_recv_cb or sub0_ctx_cancel (nng issues #1523 and #1682, the latter
 * reproduced on 1.5.2 with a receive timeout; fixed in 1.6.0). A receive
 * without waiting (NNG_FLAG_NONBLOCK: a zero timeout, which nng completes
 * at once and never queues) takes what is there; the waiting is a poll()
 * on the socket's receive descriptor, as the broker's relay has always
 * done.
 */
enum kf_err kf_bus_sub_recv(struct kf_bus_sub *sub, nng_duration timeout_ms, nng_msg **out)
{
	uint64_t deadline = timeout_ms > 0 ?
		kf_clock_mono_ns() + (uint64_t)timeout_ms * 1000000u : 0;

	for (;;) {
		struct pollfd pfd = { .fd = sub->recv_fd, .events = POLLIN };
		int rv, wait = WAIT_SLICE_MS;

		*out = NULL;
		rv = nng_recvmsg(sub->sock->sock, out, NNG_FLAG_NONBLOCK);
		if (rv != NNG_EAGAIN && rv != NNG_ETIMEDOUT)
			return kf_bus_err_from_nng(rv); /* KF_OK, or closed */
		*out = NULL;
		if (timeout_ms == 0)
			return KF_ETIMEDOUT;
		if (timeout_ms > 0) {
			uint64_t now = kf_clock_mono_ns();

			if (now >= deadline)
				return KF_ETIMEDOUT;
			if (deadline - now < (uint64_t)WAIT_SLICE_MS * 1000000u)
				wait = (int)((deadline - now + 999999u) / 1000000u);
		}
		if (poll(&pfd, 1, wait) < 0 && errno != EINTR)
			return KF_ENNG;
	}
}

enum kf_err kf_bus_sub_recv_fd(struct kf_bus_sub *sub, int *fd)
{
	*fd = sub->recv_fd;
	return KF_OK;
}
