/*
 * log.h — structured logging with the semantics of Rust's `tracing` crate.
 *
 * Events have a level, a target (module path such as "keyforge::broker::rpc"),
 * a message and typed fields:
 *
 *	KF_INFO("keyforge::worker", "job completed",
 *		KF_U64("job_id", id), KF_STR("worker", name));
 *	KF_WARN(KF_TARGET, "job retrying", KF_U64("attempt", n), KF_ERR(err));
 *
 * Rules:
 *  - The target must be a string literal or a static array: it is stored in
 *    a per-callsite static struct. Field keys must be string literals (or
 *    otherwise outlive the program). The message and field values may be any
 *    expression; they are evaluated only when the event is enabled.
 *  - A disabled event costs one relaxed atomic load and a branch: each macro
 *    expansion owns a static `struct kf_callsite` whose interest
 *    (never/sometimes/always) is recomputed whenever the filter changes.
 *  - Levels above KF_MAX_LOG_LEVEL (set by meson: 1 = error .. 5 = trace)
 *    expand to nothing: their arguments are not evaluated and their strings
 *    are not in the binary. Variables used only there still count as used.
 *  - All macros and functions may be called from any thread, before
 *    kf_log_init (events are then discarded) and after kf_log_shutdown.
 *  - Emitting never blocks on I/O: lines go to a bounded queue drained by a
 *    writer thread; when it is full the event is dropped and counted, and the
 *    writer later writes a WARN "N events dropped".
 *
 * Spans (nesting contexts with busy time) are declared in telemetry/span.h,
 * which this header includes. The filter grammar is in telemetry/filter.h
 * and docs/logging.md.
 */
#ifndef KF_TELEMETRY_LOG_H
#define KF_TELEMETRY_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#ifndef KF_MAX_LOG_LEVEL
#define KF_MAX_LOG_LEVEL 5
#endif

/* Numerically ordered: an event of level L passes a filter of level F when
 * L <= F. KF_LEVEL_OFF is only meaningful in filters. */
enum kf_log_level {
	KF_LEVEL_OFF = 0,
	KF_LEVEL_ERROR = 1,
	KF_LEVEL_WARN = 2,
	KF_LEVEL_INFO = 3,
	KF_LEVEL_DEBUG = 4,
	KF_LEVEL_TRACE = 5,
};

/* "ERROR", "WARN", ...; "OFF" for 0; "?" out of range. Never NULL. */
const char *kf_log_level_name(enum kf_log_level level);

/* ---- fields -------------------------------------------------------------- */

enum kf_field_type {
	KF_FIELD_EMPTY = 0, /* declared, no value yet (spans: kf_span_record) */
	KF_FIELD_STR,
	KF_FIELD_I64,
	KF_FIELD_U64,
	KF_FIELD_F64,
	KF_FIELD_BOOL,
};

/* One typed key/value. Borrowed: the event copies what it needs before the
 * emitting call returns. `len` is the byte length of a KF_FIELD_STR value;
 * SIZE_MAX means "NUL-terminated, measure it" (what KF_STR builds). Records
 * handed to sinks always carry the measured length. */
struct kf_field {
	const char *key;
	enum kf_field_type type;
	size_t len;
	union {
		const char *str;
		int64_t i64;
		uint64_t u64;
		double f64;
		bool b;
	} v;
};

#define KF_STR(k, s) \
	((struct kf_field){ .key = (k), .type = KF_FIELD_STR, .len = SIZE_MAX, .v.str = (s) })
#define KF_STRN(k, s, n) \
	((struct kf_field){ .key = (k), .type = KF_FIELD_STR, .len = (n), .v.str = (s) })
#define KF_I64(k, x) \
	((struct kf_field){ .key = (k), .type = KF_FIELD_I64, .v.i64 = (int64_t)(x) })
#define KF_U64(k, x) \
	((struct kf_field){ .key = (k), .type = KF_FIELD_U64, .v.u64 = (uint64_t)(x) })
#define KF_F64(k, x) \
	((struct kf_field){ .key = (k), .type = KF_FIELD_F64, .v.f64 = (double)(x) })
#define KF_BOOL(k, x) \
	((struct kf_field){ .key = (k), .type = KF_FIELD_BOOL, .v.b = (x) ? true : false })
/* A span field whose value comes later (kf_span_record). */
#define KF_EMPTY(k) ((struct kf_field){ .key = (k), .type = KF_FIELD_EMPTY })
/* The usual way to attach an enum kf_err: error="<kf_strerror text>". */
#define KF_ERR(e) KF_STR("error", kf_strerror(e))

/* ---- events -------------------------------------------------------------- */

#define KF_ERROR(target, ...) KF__EVENT_L1(target, __VA_ARGS__)
#define KF_WARN(target, ...) KF__EVENT_L2(target, __VA_ARGS__)
#define KF_INFO(target, ...) KF__EVENT_L3(target, __VA_ARGS__)
#define KF_DEBUG(target, ...) KF__EVENT_L4(target, __VA_ARGS__)
#define KF_TRACE(target, ...) KF__EVENT_L5(target, __VA_ARGS__)
/* With the level as a parameter; it must be a constant expression (it lives
 * in the static callsite). Above KF_MAX_LOG_LEVEL the optimizer removes it.
 * For a level chosen at run time, use kf_log_event. */
#define KF_EVENT(level, target, ...)                                  \
	do {                                                          \
		if ((int)(level) <= KF_MAX_LOG_LEVEL)                  \
			KF__EVENT((level), target, __VA_ARGS__);       \
	} while (0)

/*
 * Events with a target known only at run time (relays, tests). No callsite
 * cache: the filter is evaluated on every call. `fields` is borrowed; at most
 * KF_LOG_MAX_FIELDS are kept.
 */
#define KF_LOG_MAX_FIELDS 32
void kf_log_event(enum kf_log_level level, const char *target, const char *message,
		  const struct kf_field *fields, size_t n_fields);

/* True when an event of `level` and `target` would pass the filter on this
 * thread now (its entered spans count). For guarding expensive preparation
 * when no macro fits; costs a filter evaluation, not a load. */
bool kf_log_enabled(enum kf_log_level level, const char *target);

/* ---- what sinks receive -------------------------------------------------- */

/* Read-only view of a span, valid during the sink call. Fields of type
 * KF_FIELD_EMPTY were declared but not recorded; formatters skip them. */
struct kf_span_info {
	uint64_t id;            /* unique in this process, never 0 */
	enum kf_log_level level;
	const char *target;
	const char *name;
	const struct kf_field *fields;
	size_t n_fields;
};

/* One event that passed the filter. Everything is borrowed for the duration
 * of the sink call only: copy what you keep. */
struct kf_log_record {
	enum kf_log_level level;
	const char *target;
	const char *message;
	const struct kf_field *fields;   /* string lengths measured */
	size_t n_fields;
	const struct kf_span_info *const *spans; /* root first, innermost last */
	size_t n_spans;
	uint64_t timestamp_ns;           /* wall clock, ns since the Unix epoch */
	const char *file;                /* NULL for kf_log_event and span close */
	unsigned line;
};

/*
 * A sink receives every event that passes the filter, on the emitting thread,
 * before the event is formatted. It must not block (no I/O, no lock that a
 * slow thread may hold): copy into your own bounded queue and return. Events
 * logged from inside a sink are discarded (no recursion). At most
 * KF_LOG_MAX_SINKS sinks. The drop warning of the local writer is not
 * delivered to sinks (they saw the events).
 */
#define KF_LOG_MAX_SINKS 4
typedef void (*kf_log_sink_fn)(void *ctx, const struct kf_log_record *rec);

/* KF_OK; KF_EEXIST when (fn, ctx) is registered; KF_EFULL when all slots are
 * taken. Any thread; independent of kf_log_init. */
enum kf_err kf_log_sink_add(kf_log_sink_fn fn, void *ctx);
/* Unregisters and waits until no thread is inside `fn`, so `ctx` may be freed
 * on return. Must not be called from inside a sink. KF_ENOENT if unknown. */
enum kf_err kf_log_sink_remove(kf_log_sink_fn fn, void *ctx);

/* ---- initialisation ------------------------------------------------------ */

enum kf_log_format {
	KF_LOG_FORMAT_HUMAN = 0,
	KF_LOG_FORMAT_JSON = 1,
};

enum kf_log_color {
	KF_LOG_COLOR_AUTO = 0, /* when the output fd is a tty and NO_COLOR is unset or empty */
	KF_LOG_COLOR_ALWAYS,
	KF_LOG_COLOR_NEVER,
};

enum kf_log_mode {
	KF_LOG_MODE_THREAD = 0, /* bounded queue drained by a writer thread (programs) */
	KF_LOG_MODE_SYNC,       /* written on the emitting thread (tests, tools) */
	KF_LOG_MODE_MANUAL,     /* queued; written only by kf_log_flush (tests) */
};

struct kf_log_options {
	const char *filter;       /* KEYFORGE_LOG syntax; NULL or "" = "info" */
	enum kf_log_format format;
	enum kf_log_color color;
	int fd;                   /* formatted output; -1 = none (sinks only). Not closed. */
	int error_fd;             /* invalid directives are reported here; -1 = silent */
	size_t queue_capacity;    /* events; rounded up to a power of two; 0 = 1024 */
	enum kf_log_mode mode;
	const char *program;      /* target of the fatal-signal event; NULL = "keyforge" */
	uint64_t (*wall_ns)(void); /* timestamps; NULL = kf_clock_wall_ns */
	uint64_t (*mono_ns)(void); /* span busy/idle time; NULL = kf_clock_mono_ns */
};

#define KF_LOG_OPTIONS_INIT                                                  \
	{ .filter = NULL, .format = KF_LOG_FORMAT_HUMAN, .color = KF_LOG_COLOR_AUTO, \
	  .fd = 2, .error_fd = 2, .queue_capacity = 0, .mode = KF_LOG_MODE_THREAD,  \
	  .program = NULL, .wall_ns = NULL, .mono_ns = NULL }

/*
 * Starts logging. Invalid filter directives are reported once each on
 * error_fd and skipped. Registers an atexit handler that flushes. Returns
 * KF_OK; KF_ESTATE when already initialised (call kf_log_shutdown first);
 * KF_EINVAL for a bad option; KF_ENOMEM; KF_EIO when the writer thread
 * cannot start. Call from one thread, before other threads log.
 */
enum kf_err kf_log_init(const struct kf_log_options *opts);

/*
 * kf_log_init from the environment: KEYFORGE_LOG (filter), KEYFORGE_LOG_FORMAT
 * (human|json; anything else is reported on stderr and human is used),
 * NO_COLOR; output on stderr through the writer thread. `program_name`
 * (e.g. "keyforge-worker") is the target of the fatal-signal event.
 */
enum kf_err kf_log_init_from_env(const char *program_name);

/* Replaces the filter at run time (any thread). Invalid directives are
 * reported on error_fd. KF_ESTATE before init, KF_ENOMEM. */
enum kf_err kf_log_set_filter(const char *spec);

/* Writes everything queued before the call (THREAD: waits up to 2 s for the
 * writer; MANUAL: drains on this thread). Any thread. */
void kf_log_flush(void);

/*
 * Flushes, stops the writer thread, releases everything. Afterwards events are
 * discarded until the next kf_log_init. Call when no other thread logs (after
 * joining them); programs that exit() need not call it (atexit flushes).
 */
void kf_log_shutdown(void);

/* Events dropped because the queue was full, since the process started. */
uint64_t kf_log_dropped_total(void);

/*
 * Installs handlers for SIGSEGV, SIGBUS, SIGABRT, SIGFPE and SIGILL (and an
 * alternate signal stack for the calling thread). On such a signal the
 * handler writes, with async-signal-safe write(2) only, the lines already in
 * the queue and then an ERROR event `panic_message` (NULL = "fatal signal")
 * with field signal="SIGSEGV" and the crashing thread's spans, then re-raises
 * the signal with its default action (core dump, exit status). Call after
 * kf_log_init. KF_ESTATE before init; KF_EIO if sigaction fails.
 */
enum kf_err kf_log_install_fatal_handler(const char *panic_message);

/* ---- implementation details used by the macros --------------------------- */

enum {
	KF__INTEREST_UNREGISTERED = 0, /* static initial value: first use registers */
	KF__INTEREST_NEVER = 1,
	KF__INTEREST_SOMETIMES = 2,    /* depends on the thread's spans */
	KF__INTEREST_ALWAYS = 3,
};

enum { KF__CALLSITE_EVENT = 0, KF__CALLSITE_SPAN = 1 };

struct kf_callsite {
	_Atomic unsigned interest;
	unsigned char level;
	unsigned char kind;
	unsigned line;
	const char *target;
	const char *file;
	struct kf_callsite *next; /* registry list, under the registry lock */
};

#define KF__CALLSITE_INIT(lvl, tgt, knd) \
	{ .interest = 0, .level = (lvl), .kind = (knd), .line = __LINE__, \
	  .target = (tgt), .file = __FILE__, .next = NULL }

#define KF__LIKELY(x) __builtin_expect(!!(x), 1)
#define KF__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define KF__FIELD_NONE ((struct kf_field){ .key = NULL })
#define KF__NFIELDS(arr) (sizeof(arr) / sizeof((arr)[0]) - 1)

/* Slow path of an enabled-looking callsite: registers it on first use,
 * evaluates the thread's spans for SOMETIMES. */
bool kf__callsite_check(struct kf_callsite *cs, unsigned interest);
/* Emits; `fields` is writable so string lengths can be measured in place. */
void kf__event(struct kf_callsite *cs, const char *message, struct kf_field *fields,
	       size_t n_fields);

#define KF__EVENT(lvl, tgt, msg, ...)                                              \
	do {                                                                       \
		static struct kf_callsite kf__cs_ =                                \
			KF__CALLSITE_INIT(lvl, tgt, KF__CALLSITE_EVENT);           \
		unsigned kf__i_ = atomic_load_explicit(&kf__cs_.interest,          \
						       memory_order_relaxed);      \
		if (KF__UNLIKELY(kf__i_ != KF__INTEREST_NEVER) &&                  \
		    (kf__i_ == KF__INTEREST_ALWAYS ||                              \
		     kf__callsite_check(&kf__cs_, kf__i_))) {                      \
			struct kf_field kf__f_[] = { KF__FIELD_NONE, __VA_ARGS__ }; \
			kf__event(&kf__cs_, (msg), kf__f_ + 1, KF__NFIELDS(kf__f_)); \
		}                                                                  \
	} while (0)

/* Compiled-out event: nothing is evaluated and no string reaches the binary
 * (sizeof does not evaluate its operand), but variables still count as used. */
#define KF__EVENT_OFF(tgt, msg, ...)                                              \
	do {                                                                      \
		(void)sizeof(tgt);                                                \
		(void)sizeof(msg);                                                \
		(void)sizeof((struct kf_field[]){ KF__FIELD_NONE, __VA_ARGS__ });  \
	} while (0)

#define KF__EVENT_L1(t, ...) KF__EVENT(KF_LEVEL_ERROR, t, __VA_ARGS__)
#if KF_MAX_LOG_LEVEL >= 2
#define KF__EVENT_L2(t, ...) KF__EVENT(KF_LEVEL_WARN, t, __VA_ARGS__)
#else
#define KF__EVENT_L2(t, ...) KF__EVENT_OFF(t, __VA_ARGS__)
#endif
#if KF_MAX_LOG_LEVEL >= 3
#define KF__EVENT_L3(t, ...) KF__EVENT(KF_LEVEL_INFO, t, __VA_ARGS__)
#else
#define KF__EVENT_L3(t, ...) KF__EVENT_OFF(t, __VA_ARGS__)
#endif
#if KF_MAX_LOG_LEVEL >= 4
#define KF__EVENT_L4(t, ...) KF__EVENT(KF_LEVEL_DEBUG, t, __VA_ARGS__)
#else
#define KF__EVENT_L4(t, ...) KF__EVENT_OFF(t, __VA_ARGS__)
#endif
#if KF_MAX_LOG_LEVEL >= 5
#define KF__EVENT_L5(t, ...) KF__EVENT(KF_LEVEL_TRACE, t, __VA_ARGS__)
#else
#define KF__EVENT_L5(t, ...) KF__EVENT_OFF(t, __VA_ARGS__)
#endif

#include "telemetry/span.h"

#endif
