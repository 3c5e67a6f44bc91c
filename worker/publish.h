/*
 * worker/publish.h — what the worker publishes on the broker's ingest:
 * heartbeats (hb.<id>), its log events (log.<LEVEL>.<id>) and its metric
 * updates (metric.<id>), as proto envelopes with one sequence number per
 * sender (DESIGN.md §2, §5).
 *
 * One ordered queue. Every message is encoded by the caller's thread with
 * the next sequence number and appended to a bounded queue under one
 * mutex, so that the numbers leave in order whatever thread produced them
 * (the broker counts a gap whenever a number is skipped). A publisher
 * thread sends the queue through the PUB socket. While the socket has no
 * connected peer nothing is sent (nng would drop it): messages wait, up to
 * the queue's capacity; beyond it new messages are dropped and counted. (The
 * worker's tick does not queue heartbeats and metrics meanwhile.)
 * The same thread calls a tick function every tick_ms (heartbeat, metrics).
 *
 * The log sink (kf__publisher_log_sink, registered with kf_log_sink_add)
 * never blocks on I/O: it converts the record (strings copied, invalid UTF-8
 * replaced by U+FFFD, over-long text cut at a character boundary, at most
 * KF_MSG_MAX_FIELDS fields and the innermost KF_MSG_MAX_SPANS spans),
 * encodes it and queues it.
 *
 * Metric updates: kf__publisher_metrics() takes a registry snapshot — only
 * the series changed since its previous call (a delta) or all of them
 * (full) — and sends the cumulative values with the source and the
 * incarnation; a lost delta is corrected by the next full update.
 *
 * Thread-safety: log sink, heartbeat and metrics calls from any thread;
 * new/start/stop/free from one owner. Metrics calls must not run
 * concurrently with each other (the delta generation is the publisher's).
 */
#ifndef KF_WORKER_PUBLISH_H
#define KF_WORKER_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus/pub.h"
#include "common/err.h"
#include "proto/msg.h"
#include "telemetry/log.h"

#define KF__PUBLISH_QUEUE_DEFAULT 4096
/* The tick number of the last call, made by kf__publisher_stop(): publish
 * final figures then. */
#define KF__PUBLISH_FINAL_TICK UINT64_MAX

struct kf__publisher;
struct kf_metrics;

typedef void (*kf__publish_tick_fn)(void *ctx, struct kf__publisher *p, uint64_t tick);

struct kf__publisher_opts {
	struct kf_bus_pub *pub;     /* borrowed; must outlive the publisher */
	const char *source;         /* sender id (copied): the worker id */
	uint64_t incarnation;       /* random per process start */
	size_t queue_cap;           /* messages; 0 = KF__PUBLISH_QUEUE_DEFAULT */
	uint32_t tick_ms;           /* 0 = no tick */
	kf__publish_tick_fn tick;   /* on the publisher thread; may be NULL */
	void *tick_ctx;
	uint32_t gather_ms;         /* 0 = KF__PUBLISH_GATHER_MS (tests set more) */
};

struct kf__publisher_stats {
	uint64_t queued;         /* messages accepted into the queue */
	uint64_t sent;           /* handed to nng */
	uint64_t dropped;        /* queue full */
	uint64_t encode_errors;  /* could not be encoded (a bug or a limit) */
	uint64_t seq;            /* last sequence number used */
};

/* How long the first message queued waits for others to join it in a
 * bundle, when bundles are on. */
#define KF__PUBLISH_GATHER_MS 10

/* Bundles (bus/bundle.h). With bundle > 1 the publisher lets a message wait
 * up to KF__PUBLISH_GATHER_MS for others and sends what is queued as
 * bundles of up to `bundle` messages: a worker at hundreds of jobs a second
 * sends a log line per job, and each message costs the worker, the broker's
 * ingest and every subscriber of events nng's thread hand-offs. 1 (the
 * start) sends each message alone at once: a broker older than protocol 1.8
 * cannot read a bundle, heartbeats included, so the worker turns bundles on
 * only after a hello that a 1.8 broker answered (lane.c). Any thread. */
void kf__publisher_set_bundle(struct kf__publisher *p, size_t bundle);

/* KF_OK, KF_ENOMEM. Nothing runs until kf__publisher_start(). */
enum kf_err kf__publisher_new(const struct kf__publisher_opts *o, struct kf__publisher **out);
/* Starts the publisher thread. KF_OK or KF_EIO. */
enum kf_err kf__publisher_start(struct kf__publisher *p);
/* Stops ticking (after one last tick numbered KF__PUBLISH_FINAL_TICK),
 * sends what is queued for up to flush_ms (if a peer is connected), joins
 * the thread. Idempotent. */
void kf__publisher_stop(struct kf__publisher *p, uint32_t flush_ms);
/* Runs the tick now rather than at its time (the next ones keep theirs),
 * and sends what is queued then without gathering: the heartbeat after a
 * hello, which the broker waits for before it leases to this process.
 * Any thread; NULL-safe. */
void kf__publisher_tick_now(struct kf__publisher *p);

/* Stops (without waiting to flush) and frees. NULL-safe. */
void kf__publisher_free(struct kf__publisher *p);

/* The log sink: ctx is the publisher. */
void kf__publisher_log_sink(void *ctx, const struct kf_log_record *rec);

/* Queues a heartbeat (hb->worker_id should be the source). KF_OK, KF_EFULL
 * (dropped), KF_ENOMEM, or the encoder's error. */
enum kf_err kf__publisher_heartbeat(struct kf__publisher *p, const struct kf_msg_heartbeat *hb);

/* Queues a metric update from reg: full, or the series changed since the
 * previous call (nothing is queued when nothing changed). Errors as above
 * plus KF_ETOOBIG (more series than a message holds). */
enum kf_err kf__publisher_metrics(struct kf__publisher *p, struct kf_metrics *reg, bool full);

void kf__publisher_stats(struct kf__publisher *p, struct kf__publisher_stats *out);

/* ---- pure helpers, exposed for the unit tests ------------------------------ */

/*
 * Copies src[0..len) into dst (cap >= 1 bytes, NUL-terminated) as valid
 * UTF-8 without NUL: each invalid byte and each NUL becomes U+FFFD; the copy
 * is cut at a character boundary so that it fits. Returns the bytes written
 * (without the NUL).
 */
size_t kf__utf8_sanitize(char *dst, size_t cap, const char *src, size_t len);

/* Scratch memory for a conversion: freed at once by kf__scratch_release. */
struct kf__scratch {
	struct kf__scratch_chunk *head;
};
#define KF__SCRATCH_INIT { NULL }
void kf__scratch_release(struct kf__scratch *s);

/* A log record as a proto log body; strings and arrays live in `s`.
 * KF_OK or KF_ENOMEM. */
enum kf_err kf__log_record_to_msg(const struct kf_log_record *rec, struct kf__scratch *s,
	struct kf_msg_log *out);

#endif
