/*
 * log_format.c — the two text formats of an event.
 *
 * JSON follows tracing-subscriber's json formatter (with_current_span and
 * with_span_list):
 *   {"timestamp":"2026-11-28T20:31:38.123456Z","level":"INFO",
 *    "target":"keyforge::worker","fields":{"message":"job completed","job_id":42},
 *    "span":{"name":"job_execution","job_id":42},
 *    "spans":[{"name":"job_execution","job_id":42}]}
 * "span" and "spans" are omitted outside any span. Unrecorded span fields are
 * omitted. Non-finite floats become null.
 *
 * Human follows tracing-subscriber's full formatter:
 *   2026-11-28T20:31:38.123456Z  INFO job_execution{job_id=42}: keyforge::worker: job completed job_id=42 worker="w-1"
 * String field values are quoted and escaped; control characters in the
 * message are escaped too, so a log line can never drive the terminal.
 */
#include "telemetry/log_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/json.h"

/* ---- appending without a call per piece --------------------------------------- */

/* A formatted event is ~40 small appends; with room reserved up front these
 * are inline copies instead of calls into strbuf (half the cost of an event
 * was there). The strbuf invariants hold: NUL-terminated, oom respected. */
static inline void put(struct kf_strbuf *sb, const void *p, size_t n)
{
	if (KF__LIKELY(sb->alloc - sb->len > n)) {
		memcpy(sb->buf + sb->len, p, n);
		sb->len += n;
		sb->buf[sb->len] = '\0';
	} else {
		kf_strbuf_add(sb, p, n);
	}
}

#define PUT_LIT(sb, lit) put((sb), (lit), sizeof(lit) - 1)

static inline void put_ch(struct kf_strbuf *sb, char c)
{
	put(sb, &c, 1);
}

static inline void put_str(struct kf_strbuf *sb, const char *s)
{
	put(sb, s, strlen(s));
}

/* ---- numbers and time --------------------------------------------------------- */

size_t kf__format_u64(char *out, uint64_t v)
{
	char tmp[20];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

static void put2(char *out, unsigned v)
{
	out[0] = (char)('0' + v / 10 % 10);
	out[1] = (char)('0' + v % 10);
}

/* Days since 1970-01-01 to a civil date (H. Hinnant's algorithm). */
static void civil_from_days(uint64_t days, unsigned *y, unsigned *m, unsigned *d)
{
	uint64_t z = days + 719468;
	uint64_t era = z / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (unsigned)(yoe + era * 400) + (*m <= 2);
}

void kf__format_timestamp(char *out, uint64_t wall_ns)
{
	uint64_t secs = wall_ns / 1000000000u;
	unsigned usec = (unsigned)(wall_ns % 1000000000u / 1000u);
	unsigned y, mo, d;
	civil_from_days(secs / 86400, &y, &mo, &d);
	unsigned sod = (unsigned)(secs % 86400);
	put2(out, y / 100);
	put2(out + 2, y % 100);
	out[4] = '-';
	put2(out + 5, mo);
	out[7] = '-';
	put2(out + 8, d);
	out[10] = 'T';
	put2(out + 11, sod / 3600);
	out[13] = ':';
	put2(out + 14, sod / 60 % 60);
	out[16] = ':';
	put2(out + 17, sod % 60);
	out[19] = '.';
	for (int i = 25; i >= 20; i--) {
		out[i] = (char)('0' + usec % 10);
		usec /= 10;
	}
	out[26] = 'Z';
}

void kf__format_duration(char *out, size_t cap, uint64_t ns)
{
	static const char *const units[] = { "ns", "\xc2\xb5s", "ms", "s" };
	double t = (double)ns;
	for (size_t i = 0; i < 4; i++) {
		if (t < 10.0) {
			snprintf(out, cap, "%.2f%s", t, units[i]);
			return;
		}
		if (t < 100.0) {
			snprintf(out, cap, "%.1f%s", t, units[i]);
			return;
		}
		if (t < 1000.0 || i == 3) {
			snprintf(out, cap, "%.0f%s", t, units[i]);
			return;
		}
		t /= 1000.0;
	}
}

static void add_u64(struct kf_strbuf *sb, uint64_t v)
{
	char tmp[20];
	put(sb, tmp, kf__format_u64(tmp, v));
}

static void add_i64(struct kf_strbuf *sb, int64_t v)
{
	if (v < 0) {
		put_ch(sb, '-');
		add_u64(sb, (uint64_t)0 - (uint64_t)v);
	} else {
		add_u64(sb, (uint64_t)v);
	}
}

/* Timestamps of one thread mostly share their second: cache its text. Not
 * for the fatal-signal path, which may interrupt an update of the cache. */
static void format_timestamp_cached(char *out, uint64_t wall_ns)
{
	static _Thread_local uint64_t cached_sec = UINT64_MAX;
	static _Thread_local char cached[KF__TIMESTAMP_LEN];
	uint64_t sec = wall_ns / 1000000000u;
	if (sec != cached_sec) {
		kf__format_timestamp(cached, wall_ns);
		cached_sec = sec;
	}
	memcpy(out, cached, 20); /* "2026-11-28T20:31:38." */
	unsigned usec = (unsigned)(wall_ns % 1000000000u / 1000u);
	for (int i = 25; i >= 20; i--) {
		out[i] = (char)('0' + usec % 10);
		usec /= 10;
	}
	out[26] = 'Z';
}

/* ---- JSON ------------------------------------------------------------------ */

/* Quoted JSON string. Printable ASCII without '"' and '\\' (keys, targets,
 * most values) is copied in one piece; anything else goes through
 * common/json.h, which does the escaping and UTF-8 repair. */
static void json_str(struct kf_strbuf *sb, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len && p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\')
		i++;
	if (i < len) {
		kf_json_add_string(sb, s, len);
		return;
	}
	if (!kf_strbuf_grow(sb, len + 2))
		return;
	put_ch(sb, '"');
	put(sb, s, len);
	put_ch(sb, '"');
}

static void json_cstr(struct kf_strbuf *sb, const char *s)
{
	json_str(sb, s, strlen(s));
}

static void json_value(struct kf_strbuf *sb, const struct kf_field *f)
{
	switch (f->type) {
	case KF_FIELD_STR: json_str(sb, f->v.str, f->len); break;
	case KF_FIELD_I64: add_i64(sb, f->v.i64); break;
	case KF_FIELD_U64: add_u64(sb, f->v.u64); break;
	case KF_FIELD_F64: kf_json_add_double(sb, f->v.f64); break;
	case KF_FIELD_BOOL: put_str(sb, f->v.b ? "true" : "false"); break;
	case KF_FIELD_EMPTY: put_str(sb, "null"); break;
	}
}

/* `,"key":value` for each recorded field. */
static void json_fields(struct kf_strbuf *sb, const struct kf_field *fields, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (fields[i].type == KF_FIELD_EMPTY || !fields[i].key)
			continue;
		put_ch(sb, ',');
		json_cstr(sb, fields[i].key);
		put_ch(sb, ':');
		json_value(sb, &fields[i]);
	}
}

static void json_span(struct kf_strbuf *sb, const struct kf_span_info *s)
{
	put_str(sb, "{\"name\":");
	json_cstr(sb, s->name);
	json_fields(sb, s->fields, s->n_fields);
	put_ch(sb, '}');
}

void kf__format_json(struct kf_strbuf *sb, const struct kf_log_record *rec)
{
	/* {"timestamp":"2026-11-28T20:31:38.123456Z","level":" */
	char head[] = "{\"timestamp\":\"YYYY-MM-DDTHH:MM:SS.uuuuuuZ\",\"level\":\"";
	format_timestamp_cached(head + 14, rec->timestamp_ns);
	kf_strbuf_grow(sb, 256);
	PUT_LIT(sb, head);
	put_str(sb, kf_log_level_name(rec->level));
	PUT_LIT(sb, "\",\"target\":");
	json_cstr(sb, rec->target);
	PUT_LIT(sb, ",\"fields\":{\"message\":");
	json_cstr(sb, rec->message);
	json_fields(sb, rec->fields, rec->n_fields);
	put_ch(sb, '}');
	if (rec->n_spans) {
		PUT_LIT(sb, ",\"span\":");
		json_span(sb, rec->spans[rec->n_spans - 1]);
		PUT_LIT(sb, ",\"spans\":[");
		for (size_t i = 0; i < rec->n_spans; i++) {
			if (i)
				put_ch(sb, ',');
			json_span(sb, rec->spans[i]);
		}
		put_ch(sb, ']');
	}
	put_ch(sb, '}');
}

/* ---- human ---------------------------------------------------------------- */

#define ANSI_RESET "\x1b[0m"
#define ANSI_DIM "\x1b[2m"
#define ANSI_BOLD "\x1b[1m"
#define ANSI_ITALIC "\x1b[3m"

/* tracing's level column: right-aligned in five characters, coloured. */
static const struct {
	const char *text;
	const char *color;
} level_style[] = {
	[KF_LEVEL_OFF] = { "  OFF", "" },
	[KF_LEVEL_ERROR] = { "ERROR", "\x1b[31m" },
	[KF_LEVEL_WARN] = { " WARN", "\x1b[33m" },
	[KF_LEVEL_INFO] = { " INFO", "\x1b[32m" },
	[KF_LEVEL_DEBUG] = { "DEBUG", "\x1b[34m" },
	[KF_LEVEL_TRACE] = { "TRACE", "\x1b[35m" },
};

static void style(struct kf_strbuf *sb, bool color, const char *code)
{
	if (color)
		put_str(sb, code);
}

/* Copies text, escaping control characters and invalid UTF-8 (U+FFFD);
 * with `quote`, wraps it in double quotes and escapes '"' and '\\'. */
static void human_text(struct kf_strbuf *sb, const char *s, size_t len, bool quote)
{
	const unsigned char *p = (const unsigned char *)s;
	if (quote)
		put_ch(sb, '"');
	while (len) {
		size_t run = 0;
		while (run < len && p[run] >= 0x20 && p[run] < 0x7f &&
		       !(quote && (p[run] == '"' || p[run] == '\\')))
			run++;
		put(sb, p, run);
		p += run;
		len -= run;
		if (!len)
			break;
		size_t n = *p >= 0x80 ? kf_utf8_seq_len(p, len) : 0;
		if (n) {
			put(sb, p, n);
		} else if (*p >= 0x80) {
			put_str(sb, "\xEF\xBF\xBD");
			n = 1;
		} else {
			n = 1;
			switch (*p) {
			case '"': put_str(sb, "\\\""); break;
			case '\\': put_str(sb, "\\\\"); break;
			case '\n': put_str(sb, "\\n"); break;
			case '\r': put_str(sb, "\\r"); break;
			case '\t': put_str(sb, "\\t"); break;
			default: kf_strbuf_addf(sb, "\\u{%x}", *p);
			}
		}
		p += n;
		len -= n;
	}
	if (quote)
		put_ch(sb, '"');
}

static void human_value(struct kf_strbuf *sb, const struct kf_field *f)
{
	switch (f->type) {
	case KF_FIELD_STR: human_text(sb, f->v.str, f->len, true); break;
	case KF_FIELD_I64: add_i64(sb, f->v.i64); break;
	case KF_FIELD_U64: add_u64(sb, f->v.u64); break;
	case KF_FIELD_F64:
		if (isfinite(f->v.f64))
			kf_json_add_double(sb, f->v.f64); /* shortest round-trip text */
		else
			put_str(sb, isnan(f->v.f64) ? "NaN" : f->v.f64 > 0 ? "inf" : "-inf");
		break;
	case KF_FIELD_BOOL: put_str(sb, f->v.b ? "true" : "false"); break;
	case KF_FIELD_EMPTY: break;
	}
}

/* `key=value` for each recorded field, separated by `sep`. */
static void human_fields(struct kf_strbuf *sb, const struct kf_field *fields, size_t n,
			 bool color, bool leading_sep)
{
	bool first = !leading_sep;
	for (size_t i = 0; i < n; i++) {
		if (fields[i].type == KF_FIELD_EMPTY || !fields[i].key)
			continue;
		if (!first)
			put_ch(sb, ' ');
		first = false;
		style(sb, color, ANSI_ITALIC);
		put_str(sb, fields[i].key);
		style(sb, color, ANSI_RESET);
		put_ch(sb, '=');
		human_value(sb, &fields[i]);
	}
}

static bool has_recorded(const struct kf_span_info *s)
{
	for (size_t i = 0; i < s->n_fields; i++)
		if (s->fields[i].type != KF_FIELD_EMPTY)
			return true;
	return false;
}

static void human_spans(struct kf_strbuf *sb, const struct kf_log_record *rec, bool color)
{
	for (size_t i = 0; i < rec->n_spans; i++) {
		const struct kf_span_info *s = rec->spans[i];
		style(sb, color, ANSI_BOLD);
		put_str(sb, s->name);
		if (has_recorded(s)) {
			put_ch(sb, '{');
			style(sb, color, ANSI_RESET);
			human_fields(sb, s->fields, s->n_fields, color, false);
			style(sb, color, ANSI_BOLD);
			put_ch(sb, '}');
		}
		style(sb, color, ANSI_RESET);
		put_ch(sb, ':');
	}
	if (rec->n_spans)
		put_ch(sb, ' ');
}

void kf__format_human(struct kf_strbuf *sb, const struct kf_log_record *rec, bool color)
{
	char ts[KF__TIMESTAMP_LEN];
	unsigned lvl = (unsigned)rec->level <= KF_LEVEL_TRACE ? (unsigned)rec->level : 0;
	format_timestamp_cached(ts, rec->timestamp_ns);
	kf_strbuf_grow(sb, 256);
	style(sb, color, ANSI_DIM);
	put(sb, ts, sizeof ts);
	style(sb, color, ANSI_RESET);
	put_ch(sb, ' ');
	style(sb, color, level_style[lvl].color);
	put_str(sb, level_style[lvl].text);
	style(sb, color, ANSI_RESET);
	put_ch(sb, ' ');
	human_spans(sb, rec, color);
	style(sb, color, ANSI_DIM);
	put_str(sb, rec->target);
	put_ch(sb, ':');
	style(sb, color, ANSI_RESET);
	put_ch(sb, ' ');
	human_text(sb, rec->message, strlen(rec->message), false);
	human_fields(sb, rec->fields, rec->n_fields, color, rec->message[0] != '\0');
}
