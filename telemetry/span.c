/*
 * span.c — span objects, the per-thread stack of entered spans, busy/idle
 * accounting and the close event.
 *
 * A span is one allocation: the struct, its fields, then a string arena
 * holding its name, its target (kf_span_new only) and its string values.
 * Values recorded later get their own allocation (owned_mask says which).
 *
 * The level a span takes from dynamic filter directives is cached with the
 * filter generation it was computed for, so a filter change or a record()
 * makes the next event recompute it.
 */
#include "telemetry/log_internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct kf_span {
	struct kf_span_info info; /* first: the thread stack points here */
	_Atomic unsigned refs;
	struct kf_span *parent;
	unsigned enter_count;
	uint64_t created_ns, entered_ns, busy_ns;
	uint64_t scope_generation; /* 0: scope_level not computed */
	int scope_level;
	uint64_t owned_mask;       /* fields[i].v.str was malloc'ed by record */
	struct kf_field fields[];
};

_Thread_local struct kf__span_stack kf__tl_spans;
/* Entries that did not fit on the stack (deeper than KF_SPAN_MAX_DEPTH). */
static _Thread_local unsigned tl_overflow;
static _Atomic uint64_t next_span_id = 1;

static struct kf_span *span_of(const struct kf_span_info *info)
{
	return (struct kf_span *)info;
}

static int scope_level(struct kf_span *s, const struct kf__active_filter *af)
{
	if (s->scope_generation != af->generation) {
		s->scope_level = kf_log_filter_span_level(af->filter, s->info.target, s->info.name,
							  s->fields, s->info.n_fields);
		s->scope_generation = af->generation;
	}
	return s->scope_level;
}

bool kf__spans_grant(const struct kf__active_filter *af, enum kf_log_level level)
{
	if (!af || kf_log_filter_dynamic_max(af->filter) < level)
		return false;
	const struct kf__span_stack *st = &kf__tl_spans;
	for (unsigned i = 0; i < st->depth; i++)
		if (scope_level(span_of(st->items[i]), af) >= (int)level)
			return true;
	return false;
}

/* ---- creation -------------------------------------------------------------- */

static size_t arena_size(const char *name, const char *target_copy,
			 const struct kf_field *fields, size_t n)
{
	size_t size = strlen(name) + 1 + (target_copy ? strlen(target_copy) + 1 : 0);
	for (size_t i = 0; i < n; i++)
		if (fields[i].type == KF_FIELD_STR)
			size += fields[i].len + 1;
	return size;
}

static char *arena_put(char **arena, const char *s, size_t len)
{
	char *p = *arena;
	memcpy(p, s, len);
	p[len] = '\0';
	*arena += len + 1;
	return p;
}

/* Allocates a span; `target_copy` non-NULL when the target is not static. */
static struct kf_span *span_create(enum kf_log_level level, const char *target,
				   const char *target_copy, const char *name,
				   const struct kf_field *fields, size_t n)
{
	size_t head = sizeof(struct kf_span) + n * sizeof(struct kf_field);
	struct kf_span *s = calloc(1, head + arena_size(name, target_copy, fields, n));
	if (!s)
		return NULL;
	char *arena = (char *)s + head;
	s->info.id = atomic_fetch_add_explicit(&next_span_id, 1, memory_order_relaxed);
	s->info.level = level;
	s->info.name = arena_put(&arena, name, strlen(name));
	s->info.target = target_copy ? arena_put(&arena, target_copy, strlen(target_copy)) : target;
	s->info.fields = s->fields;
	s->info.n_fields = n;
	for (size_t i = 0; i < n; i++) {
		s->fields[i] = fields[i];
		if (fields[i].type == KF_FIELD_STR)
			s->fields[i].v.str = arena_put(&arena, fields[i].v.str, fields[i].len);
	}
	atomic_init(&s->refs, 1);
	struct kf_span *cur = kf_span_current();
	s->parent = kf_span_ref(cur);
	s->created_ns = kf__log_cfg.mono_ns();
	return s;
}

static void measure(struct kf_field *fields, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (fields[i].type != KF_FIELD_STR)
			continue;
		if (!fields[i].v.str) {
			fields[i].v.str = "(null)";
			fields[i].len = 6;
		} else if (fields[i].len == SIZE_MAX) {
			fields[i].len = strlen(fields[i].v.str);
		}
	}
}

/* The decision for a span the static directives did not enable. */
static bool dynamically_enabled(const struct kf__active_filter *af, enum kf_log_level level,
				const char *target, const char *name,
				const struct kf_field *fields, size_t n)
{
	if (!af)
		return false;
	if (kf_log_filter_static_level(af->filter, target) >= level)
		return true;
	if (!kf_log_filter_has_dynamic(af->filter))
		return false;
	return kf_log_filter_names_span(af->filter, target, name, fields, n) ||
	       kf__spans_grant(af, level);
}

struct kf_span *kf__span_new(struct kf_callsite *cs, unsigned interest, const char *name,
			     struct kf_field *fields, size_t n)
{
	if (interest == KF__INTEREST_UNREGISTERED)
		interest = kf__callsite_interest(cs);
	if (interest == KF__INTEREST_NEVER)
		return NULL;
	if (n > KF_SPAN_MAX_FIELDS)
		n = KF_SPAN_MAX_FIELDS;
	measure(fields, n);
	enum kf_log_level level = (enum kf_log_level)cs->level;
	if (!name)
		name = "";
	if (interest == KF__INTEREST_SOMETIMES &&
	    !dynamically_enabled(kf__log_active(), level, cs->target, name, fields, n))
		return NULL;
	return span_create(level, cs->target, NULL, name, fields, n);
}

struct kf_span *kf_span_new(enum kf_log_level level, const char *target, const char *name,
			    const struct kf_field *fields, size_t n)
{
	struct kf_field copy[KF_SPAN_MAX_FIELDS];
	if (n > KF_SPAN_MAX_FIELDS)
		n = KF_SPAN_MAX_FIELDS;
	if (n)
		memcpy(copy, fields, n * sizeof *copy);
	measure(copy, n);
	if (!target)
		target = "";
	if (!name)
		name = "";
	if (level == KF_LEVEL_OFF ||
	    !dynamically_enabled(kf__log_active(), level, target, name, copy, n))
		return NULL;
	return span_create(level, target, target, name, copy, n);
}

/* ---- enter / exit ---------------------------------------------------------- */

struct kf_span *kf_span_enter(struct kf_span *s)
{
	if (!s)
		return NULL;
	struct kf__span_stack *st = &kf__tl_spans;
	if (st->depth < KF_SPAN_MAX_DEPTH)
		st->items[st->depth++] = &s->info;
	else
		tl_overflow++;
	if (s->enter_count++ == 0)
		s->entered_ns = kf__log_cfg.mono_ns();
	return s;
}

/* Removes the innermost occurrence of `s` from this thread's stack. */
static bool stack_remove(struct kf_span *s)
{
	struct kf__span_stack *st = &kf__tl_spans;
	for (unsigned i = st->depth; i-- > 0;) {
		if (st->items[i] != &s->info)
			continue;
		memmove(&st->items[i], &st->items[i + 1],
			(st->depth - i - 1) * sizeof st->items[0]);
		st->depth--;
		return true;
	}
	return false;
}

static bool exit_once(struct kf_span *s)
{
	if (!stack_remove(s)) {
		if (!tl_overflow || !s->enter_count)
			return false;
		tl_overflow--;
	}
	if (--s->enter_count == 0)
		s->busy_ns += kf__log_cfg.mono_ns() - s->entered_ns;
	return true;
}

void kf_span_exit(struct kf_span *s)
{
	if (s)
		exit_once(s);
}

struct kf_span *kf_span_current(void)
{
	const struct kf__span_stack *st = &kf__tl_spans;
	return st->depth ? span_of(st->items[st->depth - 1]) : NULL;
}

/* ---- close ------------------------------------------------------------------ */

struct kf_span *kf_span_ref(struct kf_span *s)
{
	if (s)
		atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}

/* Whether the close event (DEBUG, the span's target) passes, judged inside
 * the span's own ancestry. */
static bool close_enabled(struct kf_span *s)
{
	const struct kf__active_filter *af = kf__log_active();
	if (!af)
		return false;
	if (kf_log_filter_static_level(af->filter, s->info.target) >= KF_LEVEL_DEBUG)
		return true;
	if (kf_log_filter_dynamic_max(af->filter) < KF_LEVEL_DEBUG)
		return false;
	if (scope_level(s, af) >= KF_LEVEL_DEBUG)
		return true;
	/* Ancestors may be entered on another thread: read, do not cache. */
	for (struct kf_span *p = s->parent; p; p = p->parent)
		if (kf_log_filter_span_level(af->filter, p->info.target, p->info.name, p->fields,
					     p->info.n_fields) >= KF_LEVEL_DEBUG)
			return true;
	return false;
}

static void emit_close(struct kf_span *s, uint64_t now)
{
	const struct kf_span_info *chain[KF_SPAN_MAX_DEPTH];
	size_t depth = 0;
	for (struct kf_span *p = s; p && depth < KF_SPAN_MAX_DEPTH; p = p->parent)
		depth++;
	size_t i = depth;
	for (struct kf_span *p = s; p && i > 0; p = p->parent)
		chain[--i] = &p->info;

	uint64_t life = now - s->created_ns;
	uint64_t idle = life > s->busy_ns ? life - s->busy_ns : 0;
	char busy_text[32], idle_text[32];
	kf__format_duration(busy_text, sizeof busy_text, s->busy_ns);
	kf__format_duration(idle_text, sizeof idle_text, idle);
	struct kf_field fields[] = {
		KF_STR("time.busy", busy_text),
		KF_STR("time.idle", idle_text),
		KF_U64("time.busy_ns", s->busy_ns),
		KF_U64("time.idle_ns", idle),
	};
	fields[0].len = strlen(busy_text);
	fields[1].len = strlen(idle_text);
	struct kf_log_record rec = {
		.level = KF_LEVEL_DEBUG,
		.target = s->info.target,
		.message = "close",
		.fields = fields,
		.n_fields = sizeof fields / sizeof fields[0],
		.spans = chain,
		.n_spans = depth,
		.timestamp_ns = kf__log_cfg.wall_ns(),
	};
	kf__log_dispatch(&rec);
}

static void span_release(struct kf_span *s);

static void span_finish(struct kf_span *s)
{
	uint64_t now = kf__log_cfg.mono_ns();
	if (s->enter_count) { /* still entered on some other thread's stack */
		s->busy_ns += now - s->entered_ns;
		s->enter_count = 0;
	}
	if (close_enabled(s))
		emit_close(s, now);
	for (size_t i = 0; i < s->info.n_fields; i++)
		if (s->owned_mask & (1ull << i))
			free((char *)s->fields[i].v.str);
	struct kf_span *parent = s->parent;
	free(s);
	span_release(parent);
}

/* Drops one reference without touching any thread's stack: a child's
 * reference to its parent says nothing about the parent being entered. */
static void span_release(struct kf_span *s)
{
	if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
		span_finish(s);
}

void kf_span_close(struct kf_span *s)
{
	if (!s)
		return;
	while (stack_remove(s)) {
		if (--s->enter_count == 0)
			s->busy_ns += kf__log_cfg.mono_ns() - s->entered_ns;
	}
	span_release(s);
}

void kf__span_scope_end(struct kf_span **s)
{
	kf_span_exit(*s);
	kf_span_close(*s);
}

/* ---- fields ----------------------------------------------------------------- */

enum kf_err kf_span_record(struct kf_span *s, struct kf_field field)
{
	if (!s)
		return KF_OK;
	for (size_t i = 0; i < s->info.n_fields; i++) {
		struct kf_field *f = &s->fields[i];
		if (!field.key || strcmp(f->key, field.key) != 0)
			continue;
		measure(&field, 1);
		if (field.type == KF_FIELD_STR) {
			char *copy = malloc(field.len + 1);
			if (!copy)
				return KF_ENOMEM;
			memcpy(copy, field.v.str, field.len);
			copy[field.len] = '\0';
			field.v.str = copy;
		}
		if (s->owned_mask & (1ull << i))
			free((char *)f->v.str);
		s->owned_mask &= ~(1ull << i);
		if (field.type == KF_FIELD_STR)
			s->owned_mask |= 1ull << i;
		field.key = f->key;
		*f = field;
		s->scope_generation = 0; /* values changed: recompute the scope level */
		return KF_OK;
	}
	return KF_ENOENT;
}

const struct kf_span_info *kf_span_info(const struct kf_span *s)
{
	return s ? &s->info : NULL;
}

uint64_t kf_span_busy_ns(const struct kf_span *s)
{
	if (!s)
		return 0;
	uint64_t busy = s->busy_ns;
	if (s->enter_count)
		busy += kf__log_cfg.mono_ns() - s->entered_ns;
	return busy;
}
