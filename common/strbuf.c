#include "common/strbuf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char kf_strbuf_empty[1];

void kf_strbuf_init(struct kf_strbuf *sb, size_t hint)
{
	*sb = (struct kf_strbuf)KF_STRBUF_INIT;
	if (hint)
		kf_strbuf_grow(sb, hint);
}

void kf_strbuf_release(struct kf_strbuf *sb)
{
	if (sb->alloc)
		free(sb->buf);
	*sb = (struct kf_strbuf)KF_STRBUF_INIT;
}

void kf_strbuf_reset(struct kf_strbuf *sb)
{
	sb->len = 0;
	/* An unallocated strbuf points at the shared kf_strbuf_empty: never
	 * write to it (threads share it). */
	if (sb->alloc)
		sb->buf[0] = '\0';
	sb->oom = false;
}

bool kf_strbuf_grow(struct kf_strbuf *sb, size_t extra)
{
	if (sb->oom)
		return false;
	if (extra >= SIZE_MAX / 2 - sb->len) {
		sb->oom = true;
		return false;
	}
	size_t need = sb->len + extra + 1;
	if (need <= sb->alloc)
		return true;
	size_t alloc = sb->alloc ? sb->alloc : 64;
	while (alloc < need)
		alloc *= 2;
	char *buf = realloc(sb->alloc ? sb->buf : NULL, alloc);
	if (!buf) {
		sb->oom = true;
		return false;
	}
	if (!sb->alloc)
		buf[0] = '\0';
	sb->buf = buf;
	sb->alloc = alloc;
	return true;
}

void kf_strbuf_add(struct kf_strbuf *sb, const void *data, size_t len)
{
	if (!kf_strbuf_grow(sb, len))
		return;
	memcpy(sb->buf + sb->len, data, len);
	sb->len += len;
	sb->buf[sb->len] = '\0';
}

void kf_strbuf_addstr(struct kf_strbuf *sb, const char *s)
{
	kf_strbuf_add(sb, s, strlen(s));
}

void kf_strbuf_addch(struct kf_strbuf *sb, char c)
{
	kf_strbuf_add(sb, &c, 1);
}

void kf_strbuf_vaddf(struct kf_strbuf *sb, const char *fmt, va_list ap)
{
	va_list cp;
	va_copy(cp, ap);
	int n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0 || !kf_strbuf_grow(sb, (size_t)n))
		return;
	vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
	sb->len += (size_t)n;
}

void kf_strbuf_addf(struct kf_strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kf_strbuf_vaddf(sb, fmt, ap);
	va_end(ap);
}

char *kf_strbuf_detach(struct kf_strbuf *sb, size_t *len)
{
	char *out = NULL;
	if (!sb->oom) {
		out = sb->alloc ? sb->buf : strdup("");
		if (len)
			*len = sb->len;
	} else if (sb->alloc) {
		free(sb->buf);
	}
	*sb = (struct kf_strbuf)KF_STRBUF_INIT;
	return out;
}
