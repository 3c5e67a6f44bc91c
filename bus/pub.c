/* pub.c — the PUB side of pub/sub. */
#include "bus/pub.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include <nng/protocol/pubsub0/pub.h>

#include "bus/bus_internal.h"

struct kf_bus_pub {
	struct kf_bus_sock *sock;
	/* nng_sendmsg() sets up an aio for every message, and nng 1.5.2's
	 * setup makes a getrandom(2) call: 1.7-1.9 us a message here against
	 * 0.3 with an aio kept (bench/bench_bus_cost), and the broker publishes
	 * four messages a job (three job events and the worker's log line).
	 * The sender that finds this one free uses it; one that finds it
	 * taken falls back to nng_sendmsg() rather than wait for another
	 * thread's send. NULL when it could not be allocated. */
	pthread_mutex_t aio_mu;
	nng_aio *aio;
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
	if (pthread_mutex_init(&pub->aio_mu, NULL) != 0) {
		free(pub);
		return KF_ENOMEM;
	}
	err = kf__bus_sock_new(&pub->sock, nng_pub0_open, KF_BUS_RECV_MAX_TELEMETRY);
	if (err != KF_OK) {
		pthread_mutex_destroy(&pub->aio_mu);
		free(pub);
		return err;
	}
	if (nng_aio_alloc(&pub->aio, NULL, NULL) == 0)
		nng_aio_set_timeout(pub->aio, NNG_DURATION_ZERO); /* as NNG_FLAG_NONBLOCK */
	else
		pub->aio = NULL;
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
	nng_aio_free(pub->aio);
	pthread_mutex_destroy(&pub->aio_mu);
	free(pub);
}

struct kf_bus_sock *kf_bus_pub_sock(struct kf_bus_pub *pub)
{
	return pub->sock;
}

enum kf_err kf_bus_pub_sendmsg(struct kf_bus_pub *pub, nng_msg *msg)
{
	int rv;

	/* PUB never blocks; a zero timeout (NONBLOCK) makes that a promise of
	 * this API. A PUB send completes before nng_send_aio() returns. */
	if (pub->aio && pthread_mutex_trylock(&pub->aio_mu) == 0) {
		nng_aio_set_msg(pub->aio, msg);
		nng_send_aio(pub->sock->sock, pub->aio);
		nng_aio_wait(pub->aio);
		rv = nng_aio_result(pub->aio);
		nng_aio_set_msg(pub->aio, NULL); /* on failure msg is still ours */
		pthread_mutex_unlock(&pub->aio_mu);
	} else {
		rv = nng_sendmsg(pub->sock->sock, msg, NNG_FLAG_NONBLOCK);
	}
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

/* One bundle of parts[0..n), n >= 2, built in place in one allocation. */
static enum kf_err send_bundle(struct kf_bus_pub *pub, const struct kf_bus_part *parts, size_t n)
{
	size_t size = kf_bus_bundle_size(parts, n);
	nng_msg *msg = NULL;
	int rv = nng_msg_alloc(&msg, size);

	if (rv != 0) {
		atomic_fetch_add(&pub->failed, 1);
		return kf_bus_err_from_nng(rv);
	}
	kf_bus_bundle_write(nng_msg_body(msg), parts, n);
	return kf_bus_pub_sendmsg(pub, msg);
}

enum kf_err kf_bus_pub_send_parts(struct kf_bus_pub *pub, const struct kf_bus_part *parts,
	size_t n, size_t max_parts, size_t *messages)
{
	const size_t room = KF_BUS_BUNDLE_MAX_BYTES - KF_BUS_BUNDLE_MAGIC_LEN;
	enum kf_err first = KF_OK;
	size_t sent = 0;

	if (max_parts < 1)
		max_parts = 1;
	if (max_parts > KF_BUS_BUNDLE_MAX_PARTS)
		max_parts = KF_BUS_BUNDLE_MAX_PARTS;
	for (size_t i = 0; i < n;) {
		size_t k = 0, bytes = 0;
		enum kf_err err;

		/* As many parts as fit, in order; at least one. */
		while (i + k < n && k < max_parts &&
		       bytes + KF_BUS_BUNDLE_LEN_BYTES + parts[i + k].len <= room) {
			bytes += KF_BUS_BUNDLE_LEN_BYTES + parts[i + k].len;
			k++;
		}
		if (k <= 1) {
			k = 1;
			err = kf_bus_pub_send(pub, NULL, 0, parts[i].buf, parts[i].len);
		} else {
			err = send_bundle(pub, parts + i, k);
		}
		if (err == KF_OK)
			sent++;
		else if (first == KF_OK)
			first = err;
		i += k;
	}
	if (messages)
		*messages = sent;
	return first;
}

void kf_bus_pub_stats(const struct kf_bus_pub *pub, struct kf_bus_pub_stats *out)
{
	out->sent = atomic_load(&pub->sent);
	out->failed = atomic_load(&pub->failed);
}
