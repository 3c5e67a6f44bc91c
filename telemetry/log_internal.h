/*
 * log_internal.h — what the files of the logging half of telemetry/ share
 * (log.c, span.c, filter.c, log_format.c, writer.c, log_fatal.c). Not for
 * use outside telemetry/.
 */
#ifndef KF_TELEMETRY_LOG_INTERNAL_H
#define KF_TELEMETRY_LOG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/strbuf.h"
#include "telemetry/filter.h"
#include "telemetry/log.h"

#define KF__LOG_TARGET "keyforge::telemetry"

/* ---- configuration (log.c) ----------------------------------------------- */

/* Written by kf_log_init/kf_log_shutdown only, while no other thread logs. */
struct kf__log_config {
	enum kf_log_format format;
	bool color;
	int fd;       /* formatted output, -1 = none */
	int error_fd;
	char program[64];
	uint64_t (*wall_ns)(void);
	uint64_t (*mono_ns)(void);
};
extern struct kf__log_config kf__log_cfg;

/* The filter in force, with the generation that span scope caches compare
 * against. Replaced filters are retired, never freed before shutdown, so a
 * reader that loaded one may keep using it. */
struct kf__active_filter {
	struct kf_log_filter *filter;
	uint64_t generation;
	struct kf__active_filter *retired_next;
};
/* NULL before kf_log_init and after kf_log_shutdown. Acquire load. */
const struct kf__active_filter *kf__log_active(void);

/* The callsite's interest, registering it on first use. */
unsigned kf__callsite_interest(struct kf_callsite *cs);

/* Sinks, then formatting and the writer. Discards events raised inside a
 * sink or formatter on the same thread. */
void kf__log_dispatch(struct kf_log_record *rec);
/* Formats `rec` in the configured format, newline included. */
void kf__log_format(struct kf_strbuf *sb, const struct kf_log_record *rec);

/* ---- spans (span.c) ------------------------------------------------------- */

struct kf__span_stack {
	const struct kf_span_info *items[KF_SPAN_MAX_DEPTH];
	unsigned depth;
};
/* Spans entered on this thread, root first. */
extern _Thread_local struct kf__span_stack kf__tl_spans;

/* True when a span entered on this thread grants `level` under `af`. */
bool kf__spans_grant(const struct kf__active_filter *af, enum kf_log_level level);

/* ---- formatting (log_format.c) --------------------------------------------- */

#define KF__TIMESTAMP_LEN 27 /* 2026-11-28T20:31:38.123456Z */

/* RFC 3339, UTC, microseconds; writes KF__TIMESTAMP_LEN bytes, no NUL.
 * Async-signal-safe (integer arithmetic only). */
void kf__format_timestamp(char *out, uint64_t wall_ns);
/* Decimal digits of v, no NUL; returns the count (<= 20). Async-signal-safe. */
size_t kf__format_u64(char *out, uint64_t v);
/* tracing's duration text: "9.12ns", "45.6µs", "123ms", "2.00s". */
void kf__format_duration(char *out, size_t cap, uint64_t ns);

void kf__format_json(struct kf_strbuf *sb, const struct kf_log_record *rec);
void kf__format_human(struct kf_strbuf *sb, const struct kf_log_record *rec, bool color);

/* ---- writer (writer.c) ---------------------------------------------------- */

/* Starts the queue (and the thread in KF_LOG_MODE_THREAD). */
enum kf_err kf__writer_start(int fd, enum kf_log_mode mode, size_t capacity);
/* Queues (or, in SYNC mode, writes) one formatted line. Never blocks in
 * THREAD and MANUAL modes: a full queue drops and counts. */
void kf__writer_submit(const char *line, size_t len, enum kf_log_level level);
void kf__writer_flush(void);
/* Flushes and stops the thread; with `release`, frees the queue too. */
void kf__writer_stop(bool release);
uint64_t kf__writer_dropped_total(void);
/* How long an idle writer sleeps at most (default 1 s), for tests that
 * must tell the producer's wake-up from the timeout. */
void kf__writer_set_idle_ns(long ns);
/* Fatal-signal path: writes the committed lines still queued with write(2),
 * touching no lock and no allocator. Returns the output fd (or -1). */
int kf__writer_fatal_drain(void);

#endif
