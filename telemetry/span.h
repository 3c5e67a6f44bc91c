/*
 * span.h — spans: named periods of work with fields, entered and exited per
 * thread, nested, closing with their busy and idle time (tracing's spans).
 *
 *	struct kf_span *job = KF_INFO_SPAN("keyforge::worker", "job_execution",
 *		KF_U64("job_id", id), KF_STR("worker_id", wid),
 *		KF_U64("attempt", attempt), KF_EMPTY("result"));
 *	kf_span_enter(job);
 *	... events logged here carry `span` and `spans` ...
 *	kf_span_record(job, KF_STR("result", "ok"));
 *	kf_span_exit(job);
 *	kf_span_close(job);   // DEBUG "close" time.busy=… time.idle=…
 *
 * or, for a lexical scope (GCC/Clang cleanup attribute):
 *
 *	KF_SPAN_SCOPE(KF_INFO_SPAN("keyforge::layout", "annealing_loop",
 *		KF_U64("steps", steps), KF_F64("start_temp", t0)));
 *
 * Rules:
 *  - A span is a heap object; the creator holds one reference. Children hold
 *    a reference to their parent (the span entered on the creating thread),
 *    so a parent closes after its last child, as in tracing.
 *  - Disabled spans are NULL, and every function here accepts NULL: callers
 *    never test. A disabled span costs one load and a branch, like an event.
 *  - The thread-local stack of entered spans is what events see. Enter and
 *    exit on the same thread; exits out of order are tolerated. Nesting
 *    deeper than KF_SPAN_MAX_DEPTH is not recorded on the stack.
 *  - A span is used by one thread at a time (enter, exit, record, close); it
 *    may move to another thread while it is not entered. A child's close
 *    event reads its ancestors' fields: do not kf_span_record a span while
 *    its children close on other threads.
 *  - Field values are copied (strings too); keys must be string literals.
 *  - Busy time is the time a span spent entered on some thread; idle time is
 *    its lifetime minus busy time. Both appear on its close event, which is a
 *    DEBUG event with the span's target, message "close" and the fields
 *    time.busy, time.idle (tracing's text: "1.25ms") and time.busy_ns,
 *    time.idle_ns (integers).
 */
#ifndef KF_TELEMETRY_SPAN_H
#define KF_TELEMETRY_SPAN_H

#include "telemetry/log.h"

#define KF_SPAN_MAX_DEPTH 64
#define KF_SPAN_MAX_FIELDS 32

struct kf_span;

#define KF_ERROR_SPAN(target, ...) KF__SPAN_L1(target, __VA_ARGS__)
#define KF_WARN_SPAN(target, ...) KF__SPAN_L2(target, __VA_ARGS__)
#define KF_INFO_SPAN(target, ...) KF__SPAN_L3(target, __VA_ARGS__)
#define KF_DEBUG_SPAN(target, ...) KF__SPAN_L4(target, __VA_ARGS__)
#define KF_TRACE_SPAN(target, ...) KF__SPAN_L5(target, __VA_ARGS__)

/* Creates, enters, and exits+closes at the end of the enclosing block. */
#define KF_SPAN_SCOPE(span_expr)                                           \
	struct kf_span *KF__CAT(kf__scope_, __LINE__)                      \
		__attribute__((cleanup(kf__span_scope_end), unused)) =     \
			kf_span_enter(span_expr)

/*
 * Span with a name and target known only at run time (no callsite cache; the
 * filter is evaluated on each call). Returns NULL when the span is disabled
 * or memory ran out. At most KF_SPAN_MAX_FIELDS fields are kept.
 */
struct kf_span *kf_span_new(enum kf_log_level level, const char *target, const char *name,
			    const struct kf_field *fields, size_t n_fields);

/* Pushes the span on this thread's stack and starts its busy clock (first
 * entry only when re-entered). Returns `span` for chaining. */
struct kf_span *kf_span_enter(struct kf_span *span);
/* Removes the span from this thread's stack; stops its busy clock when its
 * last entry exits. No-op when it is not entered on this thread. */
void kf_span_exit(struct kf_span *span);
/* Drops the caller's reference (exiting it first if it is entered on this
 * thread). The close event is emitted when the last reference goes. */
void kf_span_close(struct kf_span *span);
/* Takes another reference (release it with kf_span_close). */
struct kf_span *kf_span_ref(struct kf_span *span);

/* Sets the value of a field declared at creation (typically KF_EMPTY). The
 * value's type may differ from the declaration. KF_OK; KF_ENOENT if `key`
 * was not declared (the value is ignored, as tracing does); KF_ENOMEM. */
enum kf_err kf_span_record(struct kf_span *span, struct kf_field field);

/* The innermost span entered on this thread, or NULL. Borrowed. */
struct kf_span *kf_span_current(void);
/* Read-only view (name, target, fields, id); NULL for NULL. */
const struct kf_span_info *kf_span_info(const struct kf_span *span);
/* Busy nanoseconds so far (including the current entry). */
uint64_t kf_span_busy_ns(const struct kf_span *span);

/* ---- implementation details used by the macros --------------------------- */

#define KF__CAT2(a, b) a##b
#define KF__CAT(a, b) KF__CAT2(a, b)

struct kf_span *kf__span_new(struct kf_callsite *cs, unsigned interest, const char *name,
			     struct kf_field *fields, size_t n_fields);
void kf__span_scope_end(struct kf_span **span);

#define KF__SPAN(lvl, tgt, name, ...)                                                  \
	__extension__({                                                                \
		static struct kf_callsite kf__cs_ =                                    \
			KF__CALLSITE_INIT(lvl, tgt, KF__CALLSITE_SPAN);                \
		struct kf_span *kf__sp_ = NULL;                                        \
		unsigned kf__i_ = atomic_load_explicit(&kf__cs_.interest,              \
						       memory_order_relaxed);          \
		if (KF__UNLIKELY(kf__i_ != KF__INTEREST_NEVER)) {                      \
			struct kf_field kf__f_[] = { KF__FIELD_NONE, __VA_ARGS__ };     \
			kf__sp_ = kf__span_new(&kf__cs_, kf__i_, (name), kf__f_ + 1,    \
					       KF__NFIELDS(kf__f_));                   \
		}                                                                      \
		kf__sp_;                                                               \
	})

#define KF__SPAN_OFF(tgt, name, ...)                                                   \
	__extension__({                                                                \
		(void)sizeof(tgt);                                                     \
		(void)sizeof(name);                                                    \
		(void)sizeof((struct kf_field[]){ KF__FIELD_NONE, __VA_ARGS__ });       \
		(struct kf_span *)NULL;                                                \
	})

#define KF__SPAN_L1(t, ...) KF__SPAN(KF_LEVEL_ERROR, t, __VA_ARGS__)
#if KF_MAX_LOG_LEVEL >= 2
#define KF__SPAN_L2(t, ...) KF__SPAN(KF_LEVEL_WARN, t, __VA_ARGS__)
#else
#define KF__SPAN_L2(t, ...) KF__SPAN_OFF(t, __VA_ARGS__)
#endif
#if KF_MAX_LOG_LEVEL >= 3
#define KF__SPAN_L3(t, ...) KF__SPAN(KF_LEVEL_INFO, t, __VA_ARGS__)
#else
#define KF__SPAN_L3(t, ...) KF__SPAN_OFF(t, __VA_ARGS__)
#endif
#if KF_MAX_LOG_LEVEL >= 4
#define KF__SPAN_L4(t, ...) KF__SPAN(KF_LEVEL_DEBUG, t, __VA_ARGS__)
#else
#define KF__SPAN_L4(t, ...) KF__SPAN_OFF(t, __VA_ARGS__)
#endif
#if KF_MAX_LOG_LEVEL >= 5
#define KF__SPAN_L5(t, ...) KF__SPAN(KF_LEVEL_TRACE, t, __VA_ARGS__)
#else
#define KF__SPAN_L5(t, ...) KF__SPAN_OFF(t, __VA_ARGS__)
#endif

#endif
