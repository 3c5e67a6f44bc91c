/*
 * broker/telemetry_relay.h — the ingest side of the broker.
 *
 * One thread owns the ingest SUB socket (listening). For every message it:
 *   1. counts it, drops it when larger than KF_RELAY_MAX_MESSAGE
 *      (reason "oversized"; nng closes the connection of one larger than
 *      that + 64 KiB before we see it) or when it does not decode (decode error counter
 *      {socket="ingest", kind}); a WARN "malformed message dropped" at most
 *      every 10 s says how many;
 *   2. tracks the sender's sequence numbers and counts gaps per source;
 *   3. applies the sender's token bucket (log and metric share one of
 *      `rate`/s with `burst`; heartbeats have their own, 20/s): the excess is
 *      dropped and counted, WARN "rate limit exceeded" at most once per source
 *      per 10 s;
 *   4. heartbeat -> queued for the owner thread (kf_relay_take);
 *      log event -> republished on events as log.<LEVEL>.<source>, kept in
 *      the ring; metric update -> republished as metric.<source>, on
 *      events and on monitor.
 * The envelope bytes are forwarded unchanged (sender and sequence number
 * are the worker's); only the topic is rebuilt from the decoded message, so
 * a worker cannot publish under another topic. The source id "broker" is
 * reserved, and a metric update's body source must equal its sender.
 *
 * The broker's own log events reach the bus through a telemetry sink
 * (kf_relay_attach_log): the sink encodes each event and queues it; the
 * relay thread publishes it as log.<LEVEL>.broker and keeps it in the ring.
 *
 * Threads: kf_relay_new/free from the owner; kf_relay_take and
 * kf_relay_tail from the owner; the sink from any thread.
 */
#ifndef KF_BROKER_TELEMETRY_RELAY_H
#define KF_BROKER_TELEMETRY_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include "broker/bmetrics.h"
#include "bus/pub.h"
#include "bus/tls.h"
#include "common/err.h"
#include "common/strbuf.h"
#include "proto/msg.h"

#define KF_RELAY_SOURCE "broker"        /* the broker's sender id and source */
#define KF_RELAY_MAX_MESSAGE ((size_t)1 << 20) /* larger ingest messages: dropped, counted */
#define KF_RELAY_WARN_INTERVAL_MS 10000
#define KF_RELAY_HB_RATE 20             /* heartbeats/s per source */
#define KF_RELAY_HB_QUEUE 4096
#define KF_RELAY_LOCAL_QUEUE 4096
#define KF_RELAY_MAX_SOURCES 4096

struct kf_relay_opts {
	const char *url;                    /* ingest listen address */
	const struct kf_bus_tls_opts *tls;  /* for tls+tcp://, else NULL */
	struct kf_bus_pub *events;          /* republish here; not owned */
	struct kf_bus_pub *monitor;         /* and metric updates here; not owned */
	struct kf_bmetrics *metrics;        /* not owned */
	uint32_t rate, burst;               /* log+metric messages per source */
	uint32_t ring_size;                 /* log events kept */
	uint32_t bundle;                    /* most messages per bundle on events (1 = none) */
};

struct kf_relay_stats {
	uint64_t received, heartbeats, logs, metrics;
	uint64_t decode_errors, oversized, rate_limited, gaps, hb_queue_drops;
	size_t ring_len, sources;
};

struct kf_relay;

/* Listens on opts->url and starts the thread. Errors as kf_bus_sub_new
 * (KF_EBUSY: address in use), KF_ENOMEM, KF_EIO (thread, eventfd). */
enum kf_err kf_relay_new(struct kf_relay **out, const struct kf_relay_opts *opts,
	struct kf_strbuf *why);

/* Detaches the log sink, stops the thread, closes the socket, frees the
 * ring and what is queued. NULL-safe. */
void kf_relay_free(struct kf_relay *r);

/* Registers the telemetry sink that relays the broker's own events. */
enum kf_err kf_relay_attach_log(struct kf_relay *r);
void kf_relay_detach_log(struct kf_relay *r);

/* Readable (poll) while heartbeats wait for kf_relay_take. */
int kf_relay_fd(const struct kf_relay *r);

/* Moves up to max queued heartbeats (decoded, type KF_MSG_HEARTBEAT) to
 * out; the caller kf_msg_free()s them. Returns how many. */
size_t kf_relay_take(struct kf_relay *r, struct kf_msg **out, size_t max);

/* Selects, oldest first, the newest `count` ring events at `min_level` or
 * more severe (and from `source` when not NULL), and calls fn with them
 * while the ring is locked; the events are valid during the call only.
 * Returns what fn returns. */
typedef enum kf_err kf_relay_tail_fn(void *arg, const struct kf_msg_log *events, size_t n);
enum kf_err kf_relay_tail(struct kf_relay *r, uint32_t count, enum kf_msg_level min_level,
	const char *source, kf_relay_tail_fn *fn, void *arg);

void kf_relay_stats(struct kf_relay *r, struct kf_relay_stats *out);

/* Sequence-gap arithmetic, exposed for tests: given the last sequence number
 * seen from this sender for this message type (0 = none) and for any type,
 * the number of messages missed before `seq`. A sender may number each type
 * on its own or all its messages in one series: the smaller count is taken
 * when both apply. A number that does not increase means a restart: 0. */
uint64_t kf_relay_gap(uint64_t last_type, uint64_t last_any, uint64_t seq);

/* Token bucket, exposed for tests: refills `rate`/s up to `burst` since
 * *last_ns, then takes one token. True when the message may pass. */
bool kf_relay_bucket_take(double *tokens, uint64_t *last_ns, uint64_t now_ns, double rate,
	double burst);

#endif
