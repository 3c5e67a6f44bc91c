/*
 * pub.h — publishing topic-prefixed messages (nng PUB).
 *
 * A pub/sub message is TOPIC bytes followed by the payload, in one nng
 * message (DESIGN.md §2); subscribers filter on byte prefixes of it. The
 * topic names, how the topic ends and the payload's encoding belong to
 * proto/ — this layer only concatenates bytes.
 *
 * Workers dial the broker's ingest with a PUB; the broker listens with a
 * PUB on events. Sending never blocks: nng's PUB gives each subscriber
 * connection a queue of `queue_len` messages (default 256) and drops the
 * oldest when a subscriber is slow; before a dial completes nothing is
 * delivered at all. Pub/sub is lossy by design: proto's sequence numbers
 * tell receivers what they missed.
 *
 * Thread-safety: kf_bus_pub_send* may be called from any number of threads
 * at once (nng sockets are thread-safe). _new/_free from one owner.
 */
#ifndef KF_BUS_PUB_H
#define KF_BUS_PUB_H

#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

#include "bus/bundle.h"
#include "bus/sock.h"

#define KF_BUS_PUB_QUEUE_DEFAULT 256

struct kf_bus_pub;

struct kf_bus_pub_stats {
	uint64_t sent;     /* handed to nng (each subscriber may still drop it) */
	uint64_t failed;   /* not sent: out of memory or socket closed */
};

/* Creates a PUB socket and, when url is non-NULL, listens on or dials it
 * (mode) with opts (NULL = defaults; recv_max defaults to
 * KF_BUS_RECV_MAX_TELEMETRY). Errors as kf_bus_sock_listen/_dial; nothing
 * is left allocated on failure. */
enum kf_err kf_bus_pub_new(struct kf_bus_pub **out, enum kf_bus_mode mode,
	const char *url, const struct kf_bus_opts *opts, struct kf_strbuf *why);

/* Closes the socket (queued messages are discarded) and frees. NULL-safe. */
void kf_bus_pub_free(struct kf_bus_pub *pub);

/* The socket, to add endpoints or read counters. Owned by pub. */
struct kf_bus_sock *kf_bus_pub_sock(struct kf_bus_pub *pub);

/* Sends topic (topic_len bytes, may be 0) followed by payload as one
 * message, built front to back with nng_msg_append (nng_msg_insert
 * corrupts the heap in nng 1.5.2). Never blocks. KF_OK (queued for the
 * current subscribers, possibly none), KF_ENOMEM, KF_ECANCELED (closed). */
enum kf_err kf_bus_pub_send(struct kf_bus_pub *pub, const void *topic, size_t topic_len,
	const void *payload, size_t payload_len);

/* Sends parts[0..n) (each a whole message: topic, then payload) in as few
 * nng messages as bundle.h allows: bundles of at most max_parts parts
 * (clamped to 1..KF_BUS_BUNDLE_MAX_PARTS) and KF_BUS_BUNDLE_MAX_BYTES
 * bytes, in order. A part that would be a bundle alone, or is too large
 * for one, goes as a plain message; max_parts 1 sends every part plainly,
 * for subscribers older than bundles. Never blocks. KF_OK when every
 * message was queued, otherwise the first error (the other messages are
 * still sent); *messages (may be NULL) counts the nng messages queued. */
enum kf_err kf_bus_pub_send_parts(struct kf_bus_pub *pub, const struct kf_bus_part *parts,
	size_t n, size_t max_parts, size_t *messages);

/* Sends a message the caller built (with nng_msg_append). Takes ownership
 * of msg in every case. Same results as kf_bus_pub_send. */
enum kf_err kf_bus_pub_sendmsg(struct kf_bus_pub *pub, nng_msg *msg);

void kf_bus_pub_stats(const struct kf_bus_pub *pub, struct kf_bus_pub_stats *out);

#endif
