/*
 * tui_logs.c — the Log Stream's ring of lines and its filters.
 *
 * A line keeps its text as keyforgectl logs prints it, so that the regex
 * filter matches exactly what an operator sees (and what `keyforgectl logs
 * --regex` would match). Whether a line passes is cached per filter
 * generation: a redraw runs regexec only on lines it has not judged under
 * the current filter.
 *
 * The ring is bounded in bytes as well as in lines: a line keeps at most
 * KF__TUI_LOG_LINE_MAX bytes of text, in an allocation of its own length
 * (not the strbuf it was built in, whose capacity runs up to twice that),
 * so 5,000 lines hold at most 20 MiB — whole events of up to 1 MiB, as the
 * broker relays them, took 1.1 MB each.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/tui.h"
#include "common/regex_guard.h"

bool kf__tui_logs_init(struct kf__tui_logs *lg, size_t cap)
{
	memset(lg, 0, sizeof(*lg));
	lg->min_level = KF_MSG_LEVEL_INFO;
	lg->gen = 1;
	lg->cap = cap ? cap : 1;
	lg->ring = calloc(lg->cap, sizeof(*lg->ring));
	return lg->ring != NULL;
}

void kf__tui_logs_free(struct kf__tui_logs *lg)
{
	for (size_t i = 0; lg->ring && i < lg->len; i++)
		free(lg->ring[(lg->head + i) % lg->cap].text);
	free(lg->ring);
	free(lg->tail);
	if (lg->have_re)
		regfree(&lg->re);
	free(lg->re_text);
	memset(lg, 0, sizeof(*lg));
}

/* A live event the tail reply already brought (the subscription starts
 * before the tail is asked for, so that nothing falls between them). */
static bool in_tail(const struct kf__tui_logs *lg, uint64_t ts_ns, uint64_t hash)
{
	if (ts_ns > lg->tail_max_ts)
		return false;
	for (size_t i = 0; i < lg->n_tail; i++)
		if (lg->tail[i].ts_ns == ts_ns && lg->tail[i].hash == hash)
			return true;
	return false;
}

static bool remember_tail(struct kf__tui_logs *lg, uint64_t ts_ns, uint64_t hash)
{
	void *p = realloc(lg->tail, (lg->n_tail + 1) * sizeof(*lg->tail));

	if (!p)
		return false;
	lg->tail = p;
	lg->tail[lg->n_tail].ts_ns = ts_ns;
	lg->tail[lg->n_tail].hash = hash;
	lg->n_tail++;
	if (ts_ns > lg->tail_max_ts)
		lg->tail_max_ts = ts_ns;
	return true;
}

/* A copy of the len bytes at s to keep as a line: cut, when longer than
 * KF__TUI_LOG_LINE_MAX, before the first character that would not fit with
 * the '…' after it. NULL when out of memory. */
static char *line_text(const char *s, size_t len)
{
	static const char ellipsis[] = "\xe2\x80\xa6";  /* U+2026 in UTF-8 */
	size_t keep = len, mark = 0;
	char *text;

	if (len > KF__TUI_LOG_LINE_MAX) {
		mark = sizeof ellipsis - 1;
		keep = KF__TUI_LOG_LINE_MAX - mark;
		/* s[keep] a continuation byte: the cut would split its
		 * character. At most 3 back: past that the text was not UTF-8. */
		for (int i = 0; i < 3 && keep && ((unsigned char)s[keep] & 0xc0) == 0x80; i++)
			keep--;
	}
	if (!(text = malloc(keep + mark + 1)))
		return NULL;
	memcpy(text, s, keep);
	memcpy(text + keep, ellipsis, mark);
	text[keep + mark] = '\0';
	return text;
}

bool kf__tui_logs_add(struct kf__tui_logs *lg, const struct kf_msg_log *ev, bool from_tail)
{
	struct kf_strbuf sb = KF_STRBUF_INIT;
	struct kf__tui_logline *l;
	uint64_t hash = kf__ctl_log_hash(ev);
	char *text;

	if (!from_tail && in_tail(lg, ev->ts_ns, hash))
		return false;
	if (from_tail && !remember_tail(lg, ev->ts_ns, hash))
		return false;
	kf__ctl_log_text(&sb, ev);
	text = sb.oom ? NULL : line_text(sb.buf, sb.len);
	kf_strbuf_release(&sb);
	if (!text)
		return false;
	if (lg->len == lg->cap) {  /* full: the oldest goes */
		l = &lg->ring[lg->head];
		lg->bytes -= strlen(l->text) + 1;
		free(l->text);
		lg->head = (lg->head + 1) % lg->cap;
		lg->len--;
	}
	l = &lg->ring[(lg->head + lg->len) % lg->cap];
	*l = (struct kf__tui_logline){ .text = text, .level = ev->level,
		.ts_ns = ev->ts_ns, .hash = hash };
	lg->bytes += strlen(text) + 1;
	lg->len++;
	lg->added++;
	return true;
}

bool kf__tui_logs_set_regex(struct kf__tui_logs *lg, const char *re, char *why, size_t why_len)
{
	regex_t fresh;
	char *text;

	if (!re || !*re) {
		if (lg->have_re)
			regfree(&lg->re);
		lg->have_re = false;
		free(lg->re_text);
		lg->re_text = NULL;
		lg->gen++;
		return true;
	}
	if (!kf_regex_compile(&fresh, re, why, why_len))
		return false; /* invalid, or one glibc would stall on (regex_guard.h) */
	if (!(text = strdup(re))) {
		regfree(&fresh);
		snprintf(why, why_len, "out of memory");
		return false;
	}
	if (lg->have_re)
		regfree(&lg->re);
	free(lg->re_text);
	lg->re = fresh;
	lg->re_text = text;
	lg->have_re = true;
	lg->gen++;
	return true;
}

void kf__tui_logs_set_level(struct kf__tui_logs *lg, enum kf_msg_level min_level)
{
	lg->min_level = min_level;
	lg->gen++;
}

static bool passes(struct kf__tui_logs *lg, struct kf__tui_logline *l)
{
	if (l->gen != lg->gen) {
		l->match = l->level <= lg->min_level &&
			(!lg->have_re || kf_regex_match(&lg->re, l->text));
		l->gen = lg->gen;
	}
	return l->match;
}

size_t kf__tui_logs_window(struct kf__tui_logs *lg, uint64_t upto, size_t back,
	const struct kf__tui_logline **out, size_t n, size_t *out_n)
{
	uint64_t first = lg->added - lg->len;  /* number of the oldest line kept */
	size_t end, matching = 0, skipped = 0, got = 0;

	if (upto > lg->added)
		upto = lg->added;
	end = upto > first ? (size_t)(upto - first) : 0;
	/* newest to oldest: skip `back` matches, then collect n */
	for (size_t i = end; i-- > 0;) {
		struct kf__tui_logline *l = &lg->ring[(lg->head + i) % lg->cap];

		if (!passes(lg, l))
			continue;
		matching++;
		if (skipped < back) {
			skipped++;
		} else if (got < n) {
			got++;
			out[n - got] = l;
		}
	}
	/* move them to the front, oldest first */
	if (got && got < n)
		memmove(out, out + (n - got), got * sizeof(*out));
	*out_n = got;
	return matching;
}
