/*
 * strbuf.h — a growable byte buffer, always NUL-terminated (after git's strbuf).
 *
 * Lifecycle: struct kf_strbuf sb = KF_STRBUF_INIT; ... kf_strbuf_release(&sb);
 * A strbuf whose allocation failed stays valid and remembers the failure in
 * `oom`: appends become no-ops, so callers check once at the end.
 * Not thread-safe; one owner at a time.
 */
#ifndef KF_COMMON_STRBUF_H
#define KF_COMMON_STRBUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct kf_strbuf {
	char *buf;    /* NUL-terminated; never NULL after init (points at "" when empty) */
	size_t len;   /* bytes used, excluding the NUL */
	size_t alloc; /* bytes allocated; 0 while buf points at the static "" */
	bool oom;     /* an allocation failed; contents are truncated */
};

extern char kf_strbuf_empty[];
#define KF_STRBUF_INIT { kf_strbuf_empty, 0, 0, false }

void kf_strbuf_init(struct kf_strbuf *sb, size_t hint);
void kf_strbuf_release(struct kf_strbuf *sb);
/* Empties the buffer but keeps its allocation. */
void kf_strbuf_reset(struct kf_strbuf *sb);
/* Makes room for `extra` more bytes; false (and oom set) when it cannot. */
bool kf_strbuf_grow(struct kf_strbuf *sb, size_t extra);
void kf_strbuf_add(struct kf_strbuf *sb, const void *data, size_t len);
void kf_strbuf_addstr(struct kf_strbuf *sb, const char *s);
void kf_strbuf_addch(struct kf_strbuf *sb, char c);
void kf_strbuf_addf(struct kf_strbuf *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void kf_strbuf_vaddf(struct kf_strbuf *sb, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* Hands the buffer to the caller (free() it) and resets sb; NULL on oom. */
char *kf_strbuf_detach(struct kf_strbuf *sb, size_t *len);

#endif
