/* sub.c — the SUB side of pub/sub. */
#include "bus/sub.h"

#include <stdlib.h>

#include <nng/protocol/pubsub0/sub.h>

#include "bus/bus_internal.h"

struct kf_bus_sub {
	struct kf_bus_sock *sock;
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

enum kf_err kf_bus_sub_recv(struct kf_bus_sub *sub, nng_duration timeout_ms, nng_msg **out)
{
	nng_aio *aio;
	int rv;

	*out = NULL;
	/* An aio per call keeps concurrent receivers independent; its cost
	 * (one allocation) is small next to decoding the message. */
	rv = nng_aio_alloc(&aio, NULL, NULL);
	if (rv != 0)
		return kf_bus_err_from_nng(rv);
	nng_aio_set_timeout(aio, timeout_ms);
	nng_recv_aio(sub->sock->sock, aio);
	nng_aio_wait(aio);
	rv = nng_aio_result(aio);
	if (rv == 0)
		*out = nng_aio_get_msg(aio);
	nng_aio_free(aio);
	return kf_bus_err_from_nng(rv);
}

enum kf_err kf_bus_sub_recv_fd(struct kf_bus_sub *sub, int *fd)
{
	return kf_bus_err_from_nng(nng_socket_get_int(sub->sock->sock, NNG_OPT_RECVFD, fd));
}
