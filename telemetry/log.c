/*
 * log.c — the logging core: configuration, the filter in force, the callsite
 * registry that keeps each macro's interest current, sinks and dispatch.
 *
 * Interest cache (as tracing's callsite registry): a callsite starts
 * UNREGISTERED (its static zero value); its first use takes the registry lock,
 * computes its interest under the current filter and links it into the list.
 * Replacing the filter recomputes every registered callsite under the same
 * lock, so the hot path is a single relaxed load: a stale value is seen at
 * most for the duration of the swap.
 */
#include "telemetry/log_internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/clock.h"

struct kf__log_config kf__log_cfg = {
	.fd = -1,
	.error_fd = 2,
	.program = "keyforge",
	.wall_ns = kf_clock_wall_ns,
	.mono_ns = kf_clock_mono_ns,
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kf_callsite *registry;
static _Atomic(struct kf__active_filter *) active;
static struct kf__active_filter *retired;
static uint64_t generation;
static bool initialised;

static _Thread_local bool tl_in_dispatch;

const char *kf_log_level_name(enum kf_log_level level)
{
	static const char *const names[] = { "OFF", "ERROR", "WARN", "INFO", "DEBUG", "TRACE" };
	if ((unsigned)level >= sizeof names / sizeof names[0])
		return "?";
	return names[level];
}

const struct kf__active_filter *kf__log_active(void)
{
	return atomic_load_explicit(&active, memory_order_acquire);
}

/* ---- interest ------------------------------------------------------------ */

static unsigned compute_interest(const struct kf__active_filter *af, const struct kf_callsite *cs)
{
	if (!af)
		return KF__INTEREST_NEVER;
	const struct kf_log_filter *f = af->filter;
	if (kf_log_filter_static_level(f, cs->target) >= (enum kf_log_level)cs->level)
		return KF__INTEREST_ALWAYS;
	if (!kf_log_filter_has_dynamic(f))
		return KF__INTEREST_NEVER;
	/* A span may be named by a dynamic directive whatever its level. */
	if (cs->kind == KF__CALLSITE_SPAN ||
	    kf_log_filter_dynamic_max(f) >= (enum kf_log_level)cs->level)
		return KF__INTEREST_SOMETIMES;
	return KF__INTEREST_NEVER;
}

static unsigned register_callsite(struct kf_callsite *cs)
{
	pthread_mutex_lock(&registry_lock);
	unsigned interest = atomic_load_explicit(&cs->interest, memory_order_relaxed);
	if (interest == KF__INTEREST_UNREGISTERED) {
		interest = compute_interest(kf__log_active(), cs);
		cs->next = registry;
		registry = cs;
		atomic_store_explicit(&cs->interest, interest, memory_order_relaxed);
	}
	pthread_mutex_unlock(&registry_lock);
	return interest;
}

/* Publishes `af` (NULL = everything off) and recomputes every callsite.
 * Caller holds registry_lock. */
static void publish_filter_locked(struct kf__active_filter *af)
{
	struct kf__active_filter *old = atomic_load_explicit(&active, memory_order_relaxed);
	if (af)
		af->generation = ++generation;
	atomic_store_explicit(&active, af, memory_order_release);
	if (old) {
		old->retired_next = retired;
		retired = old;
	}
	for (struct kf_callsite *cs = registry; cs; cs = cs->next)
		atomic_store_explicit(&cs->interest, compute_interest(af, cs),
				      memory_order_relaxed);
}

static void free_filters_locked(void)
{
	struct kf__active_filter *af = atomic_load_explicit(&active, memory_order_relaxed);
	if (af) {
		af->retired_next = retired;
		retired = af;
	}
	atomic_store_explicit(&active, NULL, memory_order_release);
	while (retired) {
		struct kf__active_filter *next = retired->retired_next;
		kf_log_filter_free(retired->filter);
		free(retired);
		retired = next;
	}
}

unsigned kf__callsite_interest(struct kf_callsite *cs)
{
	unsigned interest = atomic_load_explicit(&cs->interest, memory_order_relaxed);
	return interest == KF__INTEREST_UNREGISTERED ? register_callsite(cs) : interest;
}

bool kf__callsite_check(struct kf_callsite *cs, unsigned interest)
{
	if (interest == KF__INTEREST_UNREGISTERED)
		interest = register_callsite(cs);
	if (interest == KF__INTEREST_ALWAYS)
		return true;
	if (interest == KF__INTEREST_NEVER)
		return false;
	return kf__spans_grant(kf__log_active(), (enum kf_log_level)cs->level);
}

bool kf_log_enabled(enum kf_log_level level, const char *target)
{
	const struct kf__active_filter *af = kf__log_active();
	if (!af || level == KF_LEVEL_OFF)
		return false;
	if (kf_log_filter_static_level(af->filter, target) >= level)
		return true;
	if (kf_log_filter_dynamic_max(af->filter) < level)
		return false;
	return kf__spans_grant(af, level);
}

/* ---- sinks --------------------------------------------------------------- */

struct sink {
	_Atomic(kf_log_sink_fn) fn;
	_Atomic(void *) ctx;
	_Atomic unsigned busy; /* threads inside fn; removal waits for 0 */
};

static struct sink sinks[KF_LOG_MAX_SINKS];
static _Atomic unsigned sink_count;
static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;

enum kf_err kf_log_sink_add(kf_log_sink_fn fn, void *ctx)
{
	enum kf_err err = KF_EFULL;
	pthread_mutex_lock(&sink_lock);
	for (size_t i = 0; i < KF_LOG_MAX_SINKS; i++) {
		if (atomic_load(&sinks[i].fn) == fn && atomic_load(&sinks[i].ctx) == ctx) {
			err = KF_EEXIST;
			goto out;
		}
	}
	for (size_t i = 0; i < KF_LOG_MAX_SINKS; i++) {
		if (!atomic_load(&sinks[i].fn)) {
			atomic_store(&sinks[i].ctx, ctx);
			atomic_store(&sinks[i].fn, fn);
			atomic_fetch_add(&sink_count, 1);
			err = KF_OK;
			goto out;
		}
	}
out:
	pthread_mutex_unlock(&sink_lock);
	return err;
}

enum kf_err kf_log_sink_remove(kf_log_sink_fn fn, void *ctx)
{
	enum kf_err err = KF_ENOENT;
	pthread_mutex_lock(&sink_lock);
	for (size_t i = 0; i < KF_LOG_MAX_SINKS; i++) {
		struct sink *s = &sinks[i];
		if (atomic_load(&s->fn) != fn || atomic_load(&s->ctx) != ctx)
			continue;
		/* Dekker with call_sinks: either the caller sees NULL after its
		 * increment, or we see its increment and wait it out. */
		atomic_store(&s->fn, NULL);
		while (atomic_load(&s->busy))
			sched_yield();
		atomic_store(&s->ctx, NULL);
		atomic_fetch_sub(&sink_count, 1);
		err = KF_OK;
		break;
	}
	pthread_mutex_unlock(&sink_lock);
	return err;
}

static void call_sinks(const struct kf_log_record *rec)
{
	if (!atomic_load_explicit(&sink_count, memory_order_relaxed))
		return;
	for (size_t i = 0; i < KF_LOG_MAX_SINKS; i++) {
		struct sink *s = &sinks[i];
		if (!atomic_load_explicit(&s->fn, memory_order_relaxed))
			continue;
		atomic_fetch_add(&s->busy, 1);
		kf_log_sink_fn fn = atomic_load(&s->fn);
		if (fn)
			fn(atomic_load(&s->ctx), rec);
		atomic_fetch_sub(&s->busy, 1);
	}
}

/* ---- dispatch ------------------------------------------------------------ */

static pthread_key_t buf_key;
static pthread_once_t buf_once = PTHREAD_ONCE_INIT;
static _Thread_local struct kf_strbuf tl_buf = KF_STRBUF_INIT;
static _Thread_local bool tl_buf_keyed;

static void release_thread_buf(void *p)
{
	kf_strbuf_release(p);
}

static void make_buf_key(void)
{
	pthread_key_create(&buf_key, release_thread_buf);
}

/* This thread's formatting buffer, released when the thread exits. It is
 * always allocated before use: resetting an unallocated strbuf writes into
 * the shared kf_strbuf_empty, a (benign) race between threads. */
static struct kf_strbuf *thread_buf(void)
{
	if (!tl_buf_keyed) {
		pthread_once(&buf_once, make_buf_key);
		pthread_setspecific(buf_key, &tl_buf);
		tl_buf_keyed = true;
	}
	if (!tl_buf.alloc)
		kf_strbuf_init(&tl_buf, 1024);
	return &tl_buf;
}

void kf__log_format(struct kf_strbuf *sb, const struct kf_log_record *rec)
{
	if (kf__log_cfg.format == KF_LOG_FORMAT_JSON)
		kf__format_json(sb, rec);
	else
		kf__format_human(sb, rec, kf__log_cfg.color);
	kf_strbuf_addch(sb, '\n');
}

void kf__log_dispatch(struct kf_log_record *rec)
{
	if (tl_in_dispatch)
		return;
	tl_in_dispatch = true;
	call_sinks(rec);
	if (kf__log_cfg.fd >= 0) {
		struct kf_strbuf *sb = thread_buf();
		kf_strbuf_reset(sb);
		kf__log_format(sb, rec);
		if (!sb->oom)
			kf__writer_submit(sb->buf, sb->len, rec->level);
		/* One huge event must not pin its buffer for the thread's life. */
		if (sb->alloc > 65536)
			kf_strbuf_release(sb);
	}
	tl_in_dispatch = false;
}

static void measure_strings(struct kf_field *fields, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct kf_field *f = &fields[i];
		if (f->type != KF_FIELD_STR)
			continue;
		if (!f->v.str) {
			f->v.str = "(null)";
			f->len = 6;
		} else if (f->len == SIZE_MAX) {
			f->len = strlen(f->v.str);
		}
	}
}

static void emit(enum kf_log_level level, const char *target, const char *message,
		 struct kf_field *fields, size_t n, const struct kf_callsite *cs)
{
	measure_strings(fields, n);
	struct kf_log_record rec = {
		.level = level,
		.target = target,
		.message = message ? message : "",
		.fields = fields,
		.n_fields = n,
		.spans = kf__tl_spans.items,
		.n_spans = kf__tl_spans.depth,
		.timestamp_ns = kf__log_cfg.wall_ns(),
		.file = cs ? cs->file : NULL,
		.line = cs ? cs->line : 0,
	};
	kf__log_dispatch(&rec);
}

void kf__event(struct kf_callsite *cs, const char *message, struct kf_field *fields, size_t n)
{
	emit((enum kf_log_level)cs->level, cs->target, message, fields, n, cs);
}

void kf_log_event(enum kf_log_level level, const char *target, const char *message,
		  const struct kf_field *fields, size_t n)
{
	if (!kf_log_enabled(level, target))
		return;
	struct kf_field copy[KF_LOG_MAX_FIELDS];
	if (n > KF_LOG_MAX_FIELDS)
		n = KF_LOG_MAX_FIELDS;
	if (n)
		memcpy(copy, fields, n * sizeof *copy);
	emit(level, target, message, copy, n, NULL);
}

/* ---- initialisation ------------------------------------------------------- */

static void report_invalid(void *ctx, const char *directive, size_t len, const char *reason)
{
	(void)ctx;
	int fd = kf__log_cfg.error_fd;
	if (fd < 0)
		return;
	struct kf_strbuf sb = KF_STRBUF_INIT;
	kf_strbuf_addf(&sb, "%s: KEYFORGE_LOG: ignoring invalid directive '%.*s': %s\n",
		       kf__log_cfg.program, (int)len, directive, reason);
	if (!sb.oom && write(fd, sb.buf, sb.len) < 0) {
		/* Nowhere left to report a failed report. */
	}
	kf_strbuf_release(&sb);
}

/* Parses `spec` into a new active filter; NULL on ENOMEM. */
static enum kf_err make_filter(const char *spec, struct kf__active_filter **out)
{
	struct kf__active_filter *af = calloc(1, sizeof *af);
	if (!af)
		return KF_ENOMEM;
	enum kf_err err = kf_log_filter_parse(spec, &af->filter, report_invalid, NULL);
	if (err) {
		free(af);
		return err;
	}
	*out = af;
	return KF_OK;
}

static void log_atexit(void)
{
	pthread_mutex_lock(&registry_lock);
	/* Other threads may still log while exit() runs: stop the writer
	 * after a last flush, but free nothing they might touch. */
	if (initialised)
		kf__writer_stop(false);
	pthread_mutex_unlock(&registry_lock);
}

static bool want_color(const struct kf_log_options *o)
{
	if (o->color != KF_LOG_COLOR_AUTO)
		return o->color == KF_LOG_COLOR_ALWAYS;
	const char *no_color = getenv("NO_COLOR");
	return o->fd >= 0 && isatty(o->fd) && !(no_color && *no_color);
}

static bool options_valid(const struct kf_log_options *o)
{
	return (unsigned)o->format <= KF_LOG_FORMAT_JSON &&
	       (unsigned)o->color <= KF_LOG_COLOR_NEVER &&
	       (unsigned)o->mode <= KF_LOG_MODE_MANUAL && o->fd >= -1 && o->error_fd >= -1 &&
	       o->queue_capacity <= (1u << 24);
}

static void configure(const struct kf_log_options *o)
{
	kf__log_cfg.format = o->format;
	kf__log_cfg.color = want_color(o);
	kf__log_cfg.fd = o->fd;
	kf__log_cfg.error_fd = o->error_fd;
	snprintf(kf__log_cfg.program, sizeof kf__log_cfg.program, "%s",
		 o->program ? o->program : "keyforge");
	kf__log_cfg.wall_ns = o->wall_ns ? o->wall_ns : kf_clock_wall_ns;
	kf__log_cfg.mono_ns = o->mono_ns ? o->mono_ns : kf_clock_mono_ns;
}

enum kf_err kf_log_init(const struct kf_log_options *o)
{
	static bool atexit_done;
	struct kf__active_filter *af = NULL;
	enum kf_err err = KF_OK;

	if (!o || !options_valid(o))
		return KF_EINVAL;
	pthread_mutex_lock(&registry_lock);
	if (initialised) {
		err = KF_ESTATE;
		goto out;
	}
	configure(o);
	err = make_filter(o->filter, &af);
	if (err)
		goto out;
	if (o->fd >= 0) {
		size_t capacity = o->queue_capacity ? o->queue_capacity : 1024;
		err = kf__writer_start(o->fd, o->mode, capacity);
		if (err)
			goto out;
	}
	publish_filter_locked(af);
	af = NULL;
	initialised = true;
	if (!atexit_done && atexit(log_atexit) == 0)
		atexit_done = true;
out:
	if (err)
		kf__log_cfg.fd = -1;
	if (af) {
		kf_log_filter_free(af->filter);
		free(af);
	}
	pthread_mutex_unlock(&registry_lock);
	return err;
}

static enum kf_log_format format_from_env(const char *program)
{
	const char *v = getenv("KEYFORGE_LOG_FORMAT");
	if (!v || !*v || strcasecmp(v, "human") == 0)
		return KF_LOG_FORMAT_HUMAN;
	if (strcasecmp(v, "json") == 0)
		return KF_LOG_FORMAT_JSON;
	fprintf(stderr, "%s: KEYFORGE_LOG_FORMAT: unknown format '%s' (use human or json); "
			"using human\n", program, v);
	return KF_LOG_FORMAT_HUMAN;
}

enum kf_err kf_log_init_from_env(const char *program_name)
{
	struct kf_log_options o = KF_LOG_OPTIONS_INIT;
	o.program = program_name;
	o.filter = getenv("KEYFORGE_LOG");
	o.format = format_from_env(program_name ? program_name : "keyforge");
	return kf_log_init(&o);
}

enum kf_err kf_log_set_filter(const char *spec)
{
	struct kf__active_filter *af;
	pthread_mutex_lock(&registry_lock);
	enum kf_err err = initialised ? make_filter(spec, &af) : KF_ESTATE;
	if (!err)
		publish_filter_locked(af);
	pthread_mutex_unlock(&registry_lock);
	return err;
}

void kf_log_flush(void)
{
	kf__writer_flush();
}

void kf_log_shutdown(void)
{
	pthread_mutex_lock(&registry_lock);
	if (initialised) {
		publish_filter_locked(NULL);
		kf__writer_stop(true);
		kf__log_cfg.fd = -1;
		free_filters_locked();
		initialised = false;
	}
	pthread_mutex_unlock(&registry_lock);
}

uint64_t kf_log_dropped_total(void)
{
	return kf__writer_dropped_total();
}
