/*
 * log_fatal.c — the last words of a crashing process.
 *
 * On SIGSEGV, SIGBUS, SIGABRT, SIGFPE or SIGILL the handler writes the lines
 * still queued and one ERROR event naming the signal, then re-raises it with
 * the default action. Only async-signal-safe operations are used: write(2),
 * clock_gettime(2), nanosleep(2), plain memory reads. That is why this file
 * has its own small formatter instead of the strbuf-based one (which may
 * allocate): it writes into a fixed stack buffer, truncating if it must, and
 * prints float fields of spans as null (shortest-float formatting needs
 * snprintf).
 */
#include "telemetry/log_internal.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

struct line {
	char *p;
	size_t len, cap;
};

static const struct {
	int sig;
	const char *name;
} fatal_signals[] = {
	{ SIGSEGV, "SIGSEGV" }, { SIGBUS, "SIGBUS" }, { SIGABRT, "SIGABRT" },
	{ SIGFPE, "SIGFPE" },   { SIGILL, "SIGILL" },
};

static char panic_message[256] = "fatal signal";
static char altstack[65536];
static _Atomic int fatal_entered;

static void put(struct line *l, const char *s, size_t n)
{
	if (n > l->cap - l->len)
		n = l->cap - l->len;
	memcpy(l->p + l->len, s, n);
	l->len += n;
}

static void puts_(struct line *l, const char *s)
{
	put(l, s, strlen(s));
}

static void put_u64(struct line *l, uint64_t v)
{
	char tmp[20];
	put(l, tmp, kf__format_u64(tmp, v));
}

static void put_i64(struct line *l, int64_t v)
{
	if (v < 0)
		puts_(l, "-");
	put_u64(l, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v);
}

/* Quoted, with '"', '\\' and control bytes escaped (valid for JSON and for
 * the human format alike). Other bytes are copied. */
static void put_quoted(struct line *l, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	puts_(l, "\"");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			char esc[2] = { '\\', (char)c };
			put(l, esc, 2);
		} else if (c < 0x20 || c == 0x7f) {
			char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
			put(l, esc, 6);
		} else {
			put(l, (const char *)&c, 1);
		}
	}
	puts_(l, "\"");
}

static void put_value(struct line *l, const struct kf_field *f)
{
	switch (f->type) {
	case KF_FIELD_STR: put_quoted(l, f->v.str, f->len); break;
	case KF_FIELD_I64: put_i64(l, f->v.i64); break;
	case KF_FIELD_U64: put_u64(l, f->v.u64); break;
	case KF_FIELD_BOOL: puts_(l, f->v.b ? "true" : "false"); break;
	case KF_FIELD_F64:
	case KF_FIELD_EMPTY: puts_(l, "null"); break;
	}
}

static void put_fields(struct line *l, const struct kf_span_info *s, bool json)
{
	bool first = true;
	for (size_t i = 0; i < s->n_fields; i++) {
		const struct kf_field *f = &s->fields[i];
		if (f->type == KF_FIELD_EMPTY)
			continue;
		if (json) {
			puts_(l, ",");
			put_quoted(l, f->key, strlen(f->key));
			puts_(l, ":");
		} else {
			puts_(l, first ? "{" : " ");
			puts_(l, f->key);
			puts_(l, "=");
		}
		put_value(l, f);
		first = false;
	}
	if (!json && !first)
		puts_(l, "}");
}

static void put_json_span(struct line *l, const struct kf_span_info *s)
{
	puts_(l, "{\"name\":");
	put_quoted(l, s->name, strlen(s->name));
	put_fields(l, s, true);
	puts_(l, "}");
}

static void format_json(struct line *l, const char *ts, const char *signame)
{
	const struct kf__span_stack *st = &kf__tl_spans;
	puts_(l, "{\"timestamp\":\"");
	put(l, ts, KF__TIMESTAMP_LEN);
	puts_(l, "\",\"level\":\"ERROR\",\"target\":");
	put_quoted(l, kf__log_cfg.program, strlen(kf__log_cfg.program));
	puts_(l, ",\"fields\":{\"message\":");
	put_quoted(l, panic_message, strlen(panic_message));
	puts_(l, ",\"signal\":\"");
	puts_(l, signame);
	puts_(l, "\"}");
	if (st->depth) {
		puts_(l, ",\"span\":");
		put_json_span(l, st->items[st->depth - 1]);
		puts_(l, ",\"spans\":[");
		for (unsigned i = 0; i < st->depth; i++) {
			if (i)
				puts_(l, ",");
			put_json_span(l, st->items[i]);
		}
		puts_(l, "]");
	}
	puts_(l, "}");
}

static void format_human(struct line *l, const char *ts, const char *signame)
{
	const struct kf__span_stack *st = &kf__tl_spans;
	put(l, ts, KF__TIMESTAMP_LEN);
	puts_(l, " ERROR ");
	for (unsigned i = 0; i < st->depth; i++) {
		puts_(l, st->items[i]->name);
		put_fields(l, st->items[i], false);
		puts_(l, i + 1 == st->depth ? ": " : ":");
	}
	puts_(l, kf__log_cfg.program);
	puts_(l, ": ");
	puts_(l, panic_message);
	puts_(l, " signal=\"");
	puts_(l, signame);
	puts_(l, "\"");
}

static const char *signal_name(int sig)
{
	for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++)
		if (fatal_signals[i].sig == sig)
			return fatal_signals[i].name;
	return "SIG?";
}

static void fatal_handler(int sig, siginfo_t *info, void *uctx)
{
	(void)info;
	(void)uctx;
	int saved_errno = errno;
	if (!atomic_exchange(&fatal_entered, 1)) {
		int fd = kf__writer_fatal_drain();
		if (fd >= 0) {
			char buf[8192], ts[KF__TIMESTAMP_LEN];
			struct line l = { buf, 0, sizeof buf - 1 };
			kf__format_timestamp(ts, kf__log_cfg.wall_ns());
			if (kf__log_cfg.format == KF_LOG_FORMAT_JSON)
				format_json(&l, ts, signal_name(sig));
			else
				format_human(&l, ts, signal_name(sig));
			buf[l.len++] = '\n';
			for (size_t off = 0; off < l.len;) {
				ssize_t n = write(fd, buf + off, l.len - off);
				if (n <= 0 && errno != EINTR)
					break;
				off += n > 0 ? (size_t)n : 0;
			}
		}
	}
	errno = saved_errno;
	/* SA_RESETHAND restored the default action; the signal is blocked until
	 * we return, then it kills the process with its usual status. */
	raise(sig);
}

enum kf_err kf_log_install_fatal_handler(const char *message)
{
	if (!kf__log_active())
		return KF_ESTATE;
	size_t n = strlen(message ? message : "fatal signal");
	if (n >= sizeof panic_message)
		n = sizeof panic_message - 1;
	memcpy(panic_message, message ? message : "fatal signal", n);
	panic_message[n] = '\0';

	/* A stack overflow's SIGSEGV needs a stack to run on. */
	stack_t ss = { .ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0 };
	sigaltstack(&ss, NULL);

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = fatal_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++)
		if (sigaction(fatal_signals[i].sig, &sa, NULL) != 0)
			return KF_EIO;
	atomic_store(&fatal_entered, 0);
	return KF_OK;
}
