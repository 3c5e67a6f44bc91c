/*
 * bundle.h — several pub/sub messages in one nng message.
 *
 * nng 1.5.2 moves every message through two or three of its threads on
 * each side, and on this project's machines a thread hand-off costs more
 * than everything else a small message costs (docs/performance.md). The
 * broker publishes three job events a job, and at the end of each turn of
 * its loop it holds the events of every request the turn answered; sent
 * as one bundle, they cost its subscribers one receive instead of one
 * each. Subscribers never see a bundle: kf_bus_sub takes its parts apart
 * and queues each one that matches a subscription, as if it had arrived
 * alone (sub.h).
 *
 * Wire format (docs/protocol.md §1):
 *
 *     bundle := 0x00 'K' 'B' '1' part{1..KF_BUS_BUNDLE_MAX_PARTS}
 *     part   := length (4 bytes, big-endian, 1..remaining) message
 *
 * where each message is what would have been published alone (topic bytes,
 * then the payload). The leading NUL is an empty topic, which no message
 * has (proto/topic.h): a subscriber older than bundles that subscribed to
 * everything drops a bundle as malformed rather than misreading it, and
 * one that subscribed to prefixes is never sent it.
 *
 * This file knows only the bytes; kf_bus_bundle_next is the parser of
 * untrusted input (fuzz target bus_bundle).
 */
#ifndef KF_BUS_BUNDLE_H
#define KF_BUS_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

#define KF_BUS_BUNDLE_MAGIC "\0KB1"
#define KF_BUS_BUNDLE_MAGIC_LEN 4
#define KF_BUS_BUNDLE_LEN_BYTES 4
/* Most parts a bundle may carry; a subscriber's queue keeps room for them. */
#define KF_BUS_BUNDLE_MAX_PARTS 64
/* Largest bundle a publisher builds, well under any receive limit here
 * (KF_BUS_RECV_MAX_TELEMETRY); a larger message goes alone. */
#define KF_BUS_BUNDLE_MAX_BYTES ((size_t)256 << 10)

/* One message of a bundle: bytes borrowed from the caller or the bundle. */
struct kf_bus_part {
	const void *buf;
	size_t len;
};

/* Whether buf starts like a bundle (the magic); says nothing of the rest. */
bool kf_bus_bundle_is(const void *buf, size_t len);

/* Bytes a bundle of parts[0..n) takes on the wire. */
size_t kf_bus_bundle_size(const struct kf_bus_part *parts, size_t n);

/* Writes the bundle of parts[0..n) into out, which holds
 * kf_bus_bundle_size(parts, n) bytes; every part must be 1..UINT32_MAX
 * bytes. */
void kf_bus_bundle_write(void *out, const struct kf_bus_part *parts, size_t n);

/* Walks a received bundle. Initialise with the whole message (magic
 * included); each call gives the next part. */
struct kf_bus_bundle_iter {
	const unsigned char *p, *end;
	size_t parts;    /* parts returned so far */
	enum kf_err err; /* the first error, returned again by every later call */
};

void kf_bus_bundle_iter_init(struct kf_bus_bundle_iter *it, const void *buf, size_t len);

/* KF_OK and *part (pointing into the bundle); KF_ENOENT after the last
 * part. Malformed input: KF_ETOPIC (no magic), KF_EMALFORMED (no part at
 * all, or a part of length 0), KF_ETRUNCATED (the input ends inside a
 * length or a part), KF_ETOOBIG (more than KF_BUS_BUNDLE_MAX_PARTS). After
 * an error every later call returns it again. */
enum kf_err kf_bus_bundle_next(struct kf_bus_bundle_iter *it, struct kf_bus_part *part);

/* Walks the whole bundle: KF_OK and its number of parts, or the first
 * error kf_bus_bundle_next found. */
enum kf_err kf_bus_bundle_check(const void *buf, size_t len, size_t *n_parts);

#endif
