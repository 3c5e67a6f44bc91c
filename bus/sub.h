/*
 * sub.h — receiving topic-prefixed messages (nng SUB).
 *
 * The broker listens with a SUB on ingest (every worker's telemetry);
 * gateway, admin, keyforgectl and workers dial the broker's events with a
 * SUB. A subscriber gets nothing until it subscribes: kf_bus_sub_subscribe
 * with a byte prefix ("log.", "cmd.w-17", or "" for everything).
 *
 * Received messages are whole nng messages: topic bytes then payload, as
 * published (pub.h). Hand nng_msg_body()/nng_msg_len() to proto/ and
 * nng_msg_free() the message. A bundle (bundle.h) is taken apart on
 * arrival: each part that matches a subscription comes out of
 * kf_bus_sub_recv as a message of its own, in order; a bundle that does not
 * parse comes out whole, for the decoder to refuse.
 *
 * The receive queue holds `queue_len` messages (default 1024, at most
 * KF_BUS_SUB_QUEUE_MAX = 8192, nng 1.5.2's cap: a larger value fails with
 * KF_EINVAL and says so in `why`; there is room for one bundle's parts
 * beyond it), and nng's own queue as many again; when the reader falls
 * behind nng drops the oldest. Messages larger than
 * `recv_max` (default KF_BUS_RECV_MAX_TELEMETRY) make nng close the
 * sending connection; they are never delivered.
 *
 * Receiving never times out inside nng: one receive stays posted in nng
 * and fills the subscriber's own queue, and kf_bus_sub_recv waits on that
 * queue. nng 1.5.2 can crash (SIGSEGV) when a SUB receive is cancelled —
 * by its timeout — just as a message reaches it (sub.c says more); readers
 * here may use any timeout.
 *
 * Thread-safety: subscribe/unsubscribe/recv from any thread; several
 * threads may call recv at once (each message goes to one of them).
 * kf_bus_sock_close(kf_bus_sub_sock(sub)) wakes blocked receivers with
 * KF_ECANCELED once the queue is empty; free only after they have
 * returned.
 */
#ifndef KF_BUS_SUB_H
#define KF_BUS_SUB_H

#include <stddef.h>

#include <nng/nng.h>

#include "bus/sock.h"

#define KF_BUS_SUB_QUEUE_DEFAULT 1024
#define KF_BUS_SUB_QUEUE_MAX 8192 /* nng 1.5.2 refuses a larger NNG_OPT_RECVBUF */

struct kf_bus_sub;

/* Creates a SUB socket and, when url is non-NULL, listens on or dials it.
 * As kf_bus_pub_new. */
enum kf_err kf_bus_sub_new(struct kf_bus_sub **out, enum kf_bus_mode mode,
	const char *url, const struct kf_bus_opts *opts, struct kf_strbuf *why);

/* Closes the socket, drops queued messages, frees. NULL-safe. */
void kf_bus_sub_free(struct kf_bus_sub *sub);

struct kf_bus_sock *kf_bus_sub_sock(struct kf_bus_sub *sub);

/* Adds a topic prefix (len bytes; 0 = everything). Subscribing twice to the
 * same prefix is harmless. KF_OK, KF_ENOMEM, KF_ECANCELED. */
enum kf_err kf_bus_sub_subscribe(struct kf_bus_sub *sub, const void *prefix, size_t len);

/* Removes a prefix. KF_OK, KF_ENOENT (not subscribed), KF_ECANCELED. */
enum kf_err kf_bus_sub_unsubscribe(struct kf_bus_sub *sub, const void *prefix, size_t len);

/* Waits up to timeout_ms (0 = only what is queued; NNG_DURATION_INFINITE =
 * forever) for one message; the caller owns *out. KF_OK, KF_ETIMEDOUT,
 * KF_ECANCELED (socket closed and nothing left queued). */
enum kf_err kf_bus_sub_recv(struct kf_bus_sub *sub, nng_duration timeout_ms, nng_msg **out);

/* A file descriptor that poll() reports readable while a message is
 * queued or the socket is closed (an eventfd of the subscriber's, not nng's
 * NNG_OPT_RECVFD), for event loops such as the broker's relay; take the
 * messages with kf_bus_sub_recv(sub, 0, ...). Do not read or close it.
 * KF_OK. */
enum kf_err kf_bus_sub_recv_fd(struct kf_bus_sub *sub, int *fd);

#endif
