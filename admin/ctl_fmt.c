/*
 * ctl_fmt.c — keyforgectl's helpers without sockets: the error line;
 * numbers, durations and state lists from the command line; times,
 * durations, sizes and tables for the screen.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "admin/ctl.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/parse.h"

/* ---- messages ---------------------------------------------------------------- */

int kf__ctl_fail(int status, const char *fmt, ...)
{
	struct kf_strbuf msg = KF_STRBUF_INIT;
	va_list ap;

	fflush(stdout);
	va_start(ap, fmt);
	kf_strbuf_vaddf(&msg, fmt, ap);
	va_end(ap);
	/* the message may carry the broker's words (a refusal, a job's error) */
	fputs("keyforgectl: ", stderr);
	kf__ctl_fputs_safe(msg.buf, stderr); /* truncated on oom */
	fputc('\n', stderr);
	kf_strbuf_release(&msg);
	return status;
}

int kf__ctl_bad_value(const char *cmd, const char *flag, const char *value, const char *expected)
{
	bool top = !cmd || !*cmd;

	fprintf(stderr, "keyforgectl%s%s: %s '%s' is not %s; see keyforgectl%s%s --help\n",
		top ? "" : " ", top ? "" : cmd, flag, value, expected, top ? "" : " ",
		top ? "" : cmd);
	return KF__CTL_USAGE;
}

/* ---- parsing ---------------------------------------------------------------------- */

bool kf__ctl_parse_u64(const char *text, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!text || *text < '0' || *text > '9')
		return false;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno || *end || v > max)
		return false;
	*out = v;
	return true;
}

bool kf__ctl_parse_count(const char *text, uint64_t max, uint64_t *out)
{
	double v;

	if (kf__ctl_parse_u64(text, max, out))
		return true;
	/* 1e6, 2.5e5: what keyforge-layout accepts, when the value is whole */
	if (!text || *text < '0' || *text > '9' || !kf__ctl_parse_double(text, &v) ||
	    v != floor(v) || v > (double)max || v >= 18446744073709551616.0)
		return false;
	*out = (uint64_t)v;
	return true;
}

bool kf__ctl_parse_i64(const char *text, int64_t min, int64_t max, int64_t *out)
{
	long long v;
	char *end;

	if (!text || !*text || (*text != '-' && *text != '+' && (*text < '0' || *text > '9')))
		return false;
	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

bool kf__ctl_parse_double(const char *text, double *out)
{
	char *end;
	double v;

	if (!text || !*text)
		return false;
	errno = 0;
	v = strtod(text, &end);
	if (errno || *end || !isfinite(v))
		return false;
	*out = v;
	return true;
}

bool kf__ctl_parse_duration_ms(const char *text, uint64_t *out_ms)
{
	/* The broker refuses a deadline whose ns do not fit an int64. */
	return text && kf_parse_duration_ms(text, KF_NS_PER_S, (uint64_t)INT64_MAX / KF_NS_PER_MS,
					    out_ms);
}

bool kf__ctl_parse_job_id(const char *text, uint64_t *out)
{
	uint64_t v;

	if (!kf__ctl_parse_u64(text, (uint64_t)INT64_MAX, &v) || v == 0)
		return false;
	*out = v;
	return true;
}

/* One word of a state list: a state name or a group. */
static bool state_word(const char *w, size_t len, uint32_t *mask)
{
	static const struct {
		const char *name;
		uint32_t bits;
	} groups[] = {
		{ "all", (1u << KF_JOB_STATE_COUNT) - 1 },
		{ "active", KF_JOB_STATE_BIT(KF_JOB_PENDING) | KF_JOB_STATE_BIT(KF_JOB_RUNNING) |
			KF_JOB_STATE_BIT(KF_JOB_RETRYING) },
		{ "final", KF_JOB_STATE_BIT(KF_JOB_SUCCEEDED) | KF_JOB_STATE_BIT(KF_JOB_FAILED) |
			KF_JOB_STATE_BIT(KF_JOB_KILLED) },
	};
	char name[32];
	enum kf_job_state s;

	if (len == 0 || len >= sizeof name)
		return false;
	memcpy(name, w, len);
	name[len] = '\0';
	for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) {
		if (!strcasecmp(name, groups[i].name)) {
			*mask |= groups[i].bits;
			return true;
		}
	}
	if (kf_job_state_parse(name, &s) != KF_OK)
		return false;
	*mask |= KF_JOB_STATE_BIT(s);
	return true;
}

bool kf__ctl_parse_states(const char *text, uint32_t *mask)
{
	const char *p = text;

	*mask = 0;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		if (!state_word(p, len, mask))
			return false;
		if (!comma)
			return true;
		p = comma + 1;
	}
}

void kf__ctl_add_time(struct kf_strbuf *sb, uint64_t ns)
{
	time_t secs = (time_t)(ns / 1000000000u);
	struct tm tm;
	char buf[40];

	gmtime_r(&secs, &tm);
	strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
	kf_strbuf_addf(sb, "%s.%03uZ", buf, (unsigned)(ns / 1000000u % 1000u));
}

void kf__ctl_add_duration(struct kf_strbuf *sb, uint64_t ms)
{
	uint64_t s = ms / 1000;

	if (ms < 1000)
		kf_strbuf_addf(sb, "%llums", (unsigned long long)ms);
	else if (ms < 60000 && ms % 1000 == 0)
		kf_strbuf_addf(sb, "%llus", (unsigned long long)(ms / 1000));
	else if (ms < 60000)
		kf_strbuf_addf(sb, "%.1fs", (double)ms / 1000.0);
	else if (s < 3600)
		kf_strbuf_addf(sb, "%llum%02llus", (unsigned long long)(s / 60),
			       (unsigned long long)(s % 60));
	else if (s < 86400)
		kf_strbuf_addf(sb, "%lluh%02llum", (unsigned long long)(s / 3600),
			       (unsigned long long)(s / 60 % 60));
	else
		kf_strbuf_addf(sb, "%llud%02lluh", (unsigned long long)(s / 86400),
			       (unsigned long long)(s / 3600 % 24));
}

void kf__ctl_add_bytes(struct kf_strbuf *sb, uint64_t bytes)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	size_t u = 0;

	while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		kf_strbuf_addf(sb, "%llu B", (unsigned long long)bytes);
	else
		kf_strbuf_addf(sb, "%.1f %s", v, units[u]);
}

uint64_t kf__ctl_age_ms(uint64_t then_ns)
{
	uint64_t now = kf_clock_wall_ns();

	return then_ns && now > then_ns ? (now - then_ns) / 1000000u : 0;
}

/* ---- text from the broker on a terminal ------------------------------------------ */

/*
 * The unit at p (left bytes, left > 0): *n bytes, and what to write instead
 * of them, or 0 to write them as they are. A C0 control, DEL, a C1 control
 * (U+0080..U+009F, 0xC2 0x80..0x9F in UTF-8) or a byte that is not UTF-8 is
 * one '?'; a tab is a space.
 */
static char safe_unit(const unsigned char *p, size_t left, size_t *n)
{
	*n = kf_utf8_seq_len(p, left);
	if (*n == 0) {
		*n = 1;
		return '?';
	}
	if (*n == 1 && (*p < 0x20 || *p == 0x7f))
		return *p == '\t' ? ' ' : '?';
	if (*n == 2 && p[0] == 0xc2 && p[1] < 0xa0)
		return '?';
	return 0;
}

/* Writes s through put(ctx, bytes, len), each unit safe_unit replaces as
 * its substitute. */
static void walk_safe(const char *s, void (*put)(void *ctx, const void *p, size_t len),
	void *ctx)
{
	const unsigned char *p = (const unsigned char *)(s ? s : ""), *run = p;
	size_t left = strlen((const char *)p), n;
	char sub;

	for (; left; p += n, left -= n) {
		if (!(sub = safe_unit(p, left, &n)))
			continue;
		put(ctx, run, (size_t)(p - run));
		put(ctx, &sub, 1);
		run = p + n;
	}
	put(ctx, run, (size_t)(p - run));
}

static void put_strbuf(void *ctx, const void *p, size_t len)
{
	kf_strbuf_add(ctx, p, len);
}

static void put_file(void *ctx, const void *p, size_t len)
{
	fwrite(p, 1, len, ctx);
}

void kf__ctl_add_safe(struct kf_strbuf *sb, const char *s)
{
	walk_safe(s, put_strbuf, sb);
}

const char *kf__ctl_safe(struct kf_strbuf *sb, const char *s)
{
	kf_strbuf_reset(sb);
	kf__ctl_add_safe(sb, s);
	return sb->oom ? "?" : sb->buf;
}

void kf__ctl_fputs_safe(const char *s, FILE *out)
{
	walk_safe(s, put_file, out);
}

/* ---- tables -------------------------------------------------------------------- */

void kf__ctl_table_init(struct kf__ctl_table *t, const char *const *headers, size_t ncols)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
	for (size_t i = 0; i < ncols; i++)
		kf__ctl_table_cell(t, "%s", headers[i]);
}

void kf__ctl_table_cell(struct kf__ctl_table *t, const char *fmt, ...)
{
	va_list ap;
	char *cell = NULL;

	if (t->ncells == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 64;
		char **cells = realloc(t->cells, cap * sizeof(*cells));

		if (!cells)
			return; /* the table prints what it has */
		t->cells = cells;
		t->cap = cap;
	}
	va_start(ap, fmt);
	if (vasprintf(&cell, fmt, ap) < 0)
		cell = NULL;
	va_end(ap);
	t->cells[t->ncells++] = cell;
}

/* Columns on a terminal of s as kf__ctl_fputs_safe writes it: one per
 * character or replacement (wide characters are not told apart). */
static size_t width(const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t left = strlen((const char *)p), n, w = 0;

	for (; left; p += n, left -= n, w++)
		safe_unit(p, left, &n);
	return w;
}

static void pad(FILE *out, size_t n)
{
	while (n--)
		fputc(' ', out);
}

void kf__ctl_table_print(const struct kf__ctl_table *t, FILE *out)
{
	size_t *w = calloc(t->ncols ? t->ncols : 1, sizeof(*w));

	if (!w || !t->ncols)
		goto out;
	for (size_t i = 0; i < t->ncells; i++) {
		const char *c = t->cells[i] ? t->cells[i] : "";
		size_t cw = width(c) - (i < t->ncols && c[0] == '>');

		if (cw > w[i % t->ncols])
			w[i % t->ncols] = cw;
	}
	for (size_t i = 0; i < t->ncells; i++) {
		size_t col = i % t->ncols;
		const char *head = t->cells[col] ? t->cells[col] : "";
		const char *c = t->cells[i] ? t->cells[i] : "";
		bool right = head[0] == '>';
		bool last = col + 1 == t->ncols;

		if (i < t->ncols && right)
			c++;
		if (right)
			pad(out, w[col] - width(c));
		kf__ctl_fputs_safe(c, out);
		if (!right && !last)
			pad(out, w[col] - width(c));
		fputs(last ? "\n" : "  ", out);
	}
	if (t->ncells % t->ncols)
		fputc('\n', out);
out:
	free(w);
}

void kf__ctl_table_release(struct kf__ctl_table *t)
{
	for (size_t i = 0; i < t->ncells; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

/* ---- text form (tracing-subscriber's fmt layout, plus the source) -------- */

static void add_value(struct kf_strbuf *sb, const struct kf_msg_value *v)
{
	if (v->kind == KF_VALUE_STR) {
		kf_strbuf_addch(sb, '"');
		kf_strbuf_addstr(sb, v->str);
		kf_strbuf_addch(sb, '"');
	} else {
		kf__ctl_json_value(sb, v);
	}
}

static void add_fields(struct kf_strbuf *sb, const struct kf_msg_field *f, size_t n, bool lead)
{
	for (size_t i = 0; i < n; i++) {
		if (lead || i)
			kf_strbuf_addch(sb, ' ');
		kf_strbuf_addf(sb, "%s=", f[i].name);
		add_value(sb, &f[i].value);
	}
}

void kf__ctl_log_text(struct kf_strbuf *sb, const struct kf_msg_log *ev)
{
	kf__ctl_add_time(sb, ev->ts_ns);
	kf_strbuf_addf(sb, " %5s %s ", kf_msg_level_name(ev->level), ev->source ? ev->source : "?");
	for (size_t i = 0; i < ev->n_spans; i++) {
		kf_strbuf_addstr(sb, ev->spans[i].name);
		if (ev->spans[i].n_fields) {
			kf_strbuf_addch(sb, '{');
			add_fields(sb, ev->spans[i].fields, ev->spans[i].n_fields, false);
			kf_strbuf_addch(sb, '}');
		}
		kf_strbuf_addstr(sb, ":");
	}
	if (ev->n_spans)
		kf_strbuf_addch(sb, ' ');
	kf_strbuf_addf(sb, "%s: %s", ev->target, ev->message);
	add_fields(sb, ev->fields, ev->n_fields, true);
}

static uint64_t fnv(const char *s, uint64_t h)
{
	for (; s && *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

uint64_t kf__ctl_log_hash(const struct kf_msg_log *ev)
{
	return fnv(ev->message, fnv(ev->target, fnv(ev->source, 0xcbf29ce484222325ull)));
}
