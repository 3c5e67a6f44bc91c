/* pub.c — the PUB side of pub/sub. */
#include "bus/pub.h"

#include <stdatomic.h>
#include <stdlib.h>

#include <nng/protocol/pubsub0/pub.h>

#include "bus/bus_internal.h"

struct kf_bus_pub {
	struct kf_bus_sock *sock;
	atomic_uint_fast64_t sent, failed;
};

enum kf_err kf_bus_pub_new(struct kf_bus_pub **out, enum kf_bus_mode mode,
	const char *url, const struct kf_bus_opts *opts, struct kf_strbuf *why)
{
	struct kf_bus_pub *pub = calloc(1, sizeof(*pub));
	int queue = opts && opts->queue_len > 0 ? opts->queue_len : KF_BUS_PUB_QUEUE_DEFAULT;
	enum kf_err err;
	int rv;

	*out = NULL;
	if (pub == NULL)
		return KF_ENOMEM;
	err = kf__bus_sock_new(&pub->sock, nng_pub0_open, KF_BUS_RECV_MAX_TELEMETRY);
	if (err != KF_OK) {
		free(pub);
		return err;
	}
	/* Per-subscriber queue: a slow subscriber loses its oldest messages. */
	rv = nng_socket_set_int(pub->sock->sock, NNG_OPT_SENDBUF, queue);
	err = rv ? kf_bus_err_from_nng(rv) : kf__bus_sock_attach(pub->sock, mode, url, opts, why);
	if (err != KF_OK) {
		kf_bus_pub_free(pub);
		return err;
	}
	*out = pub;
	return KF_OK;
}

void kf_bus_pub_free(struct kf_bus_pub *pub)
{
	if (pub == NULL)
		return;
	kf__bus_sock_free(pub->sock);
	free(pub);
}

struct kf_bus_sock *kf_bus_pub_sock(struct kf_bus_pub *pub)
{
	return pub->sock;
}

enum kf_err kf_bus_pub_sendmsg(struct kf_bus_pub *pub, nng_msg *msg)
{
	/* PUB never blocks; NONBLOCK makes that a promise of this API. */
	int rv = nng_sendmsg(pub->sock->sock, msg, NNG_FLAG_NONBLOCK);

	if (rv != 0) {
		nng_msg_free(msg);
		atomic_fetch_add(&pub->failed, 1);
		return kf_bus_err_from_nng(rv);
	}
	atomic_fetch_add(&pub->sent, 1);
	return KF_OK;
}

enum kf_err kf_bus_pub_send(struct kf_bus_pub *pub, const void *topic, size_t topic_len,
	const void *payload, size_t payload_len)
{
	nng_msg *msg = NULL;
	int rv;

	/* Allocate the final size once, then append front to back. */
	rv = nng_msg_alloc(&msg, 0);
	if (rv == 0)
		rv = nng_msg_reserve(msg, topic_len + payload_len);
	if (rv == 0 && topic_len)
		rv = nng_msg_append(msg, topic, topic_len);
	if (rv == 0 && payload_len)
		rv = nng_msg_append(msg, payload, payload_len);
	if (rv != 0) {
		if (msg)
			nng_msg_free(msg);
		atomic_fetch_add(&pub->failed, 1);
		return kf_bus_err_from_nng(rv);
	}
	return kf_bus_pub_sendmsg(pub, msg);
}

void kf_bus_pub_stats(const struct kf_bus_pub *pub, struct kf_bus_pub_stats *out)
{
	out->sent = atomic_load(&pub->sent);
	out->failed = atomic_load(&pub->failed);
}
