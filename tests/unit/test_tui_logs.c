/*
 * test_tui_logs.c — keyforge-admin's Log Stream ring (admin/tui_logs.c):
 * the text a line gets, the ring's wrap, the level and regex filters, a bad
 * regex keeping the old filter, scroll-back windows, pause, the broker's
 * tail not shown twice when its events also arrive live, and a huge event
 * kept cut at KF__TUI_LOG_LINE_MAX bytes on a character boundary. No
 * curses, no sockets: suite 'unit'.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <malloc.h>

#include "admin/tui.h"

#define T0 1795998541000000000ull  /* 2026-11-30T00:29:01Z, in ns */

/* A worker's "job completed" event for job `id` at T0 + id ms. */
static struct kf_msg_log event(enum kf_msg_level level, uint64_t id, const char *message)
{
	static struct kf_msg_field fields[64];
	static struct kf_msg_field span_fields[1];
	static struct kf_msg_span spans[1];
	static size_t next;
	struct kf_msg_field *f = &fields[next++ % 64];

	*f = (struct kf_msg_field){ "job_id", { .kind = KF_VALUE_U64, .u64 = id } };
	span_fields[0] = (struct kf_msg_field){ "worker_id", { .kind = KF_VALUE_STR, .str = "w1" } };
	spans[0] = (struct kf_msg_span){ "job_execution", span_fields, 1 };
	return (struct kf_msg_log){ .level = level, .target = "keyforge::worker::job",
		.message = message, .fields = f, .n_fields = 1, .spans = spans, .n_spans = 1,
		.ts_ns = T0 + id * 1000000ull, .source = "w1" };
}

/* The window as texts: up to n lines, back lines from the newest. */
static size_t window(struct kf__tui_logs *lg, uint64_t upto, size_t back,
	const struct kf__tui_logline **out, size_t n, size_t *got)
{
	return kf__tui_logs_window(lg, upto, back, out, n, got);
}

static void test_text_is_keyforgectl_logs_line(void **state)
{
	struct kf__tui_logs lg;
	struct kf_msg_log ev = event(KF_MSG_LEVEL_INFO, 7, "job completed");
	const struct kf__tui_logline *w[4];
	size_t got;

	(void)state;
	assert_true(kf__tui_logs_init(&lg, 8));
	assert_true(kf__tui_logs_add(&lg, &ev, false));
	assert_int_equal(window(&lg, lg.added, 0, w, 4, &got), 1);
	assert_int_equal(got, 1);
	assert_string_equal(w[0]->text, "2026-11-30T00:29:01.007Z  INFO w1 "
			    "job_execution{worker_id=\"w1\"}: keyforge::worker::job: job completed "
			    "job_id=7");
	kf__tui_logs_free(&lg);
}

static void test_ring_keeps_the_newest(void **state)
{
	struct kf__tui_logs lg;
	const struct kf__tui_logline *w[8];
	size_t got;

	(void)state;
	assert_true(kf__tui_logs_init(&lg, 5));
	for (uint64_t i = 1; i <= 12; i++) {
		struct kf_msg_log ev = event(KF_MSG_LEVEL_INFO, i, "job completed");

		assert_true(kf__tui_logs_add(&lg, &ev, false));
	}
	assert_int_equal(lg.len, 5);
	assert_int_equal(lg.added, 12);
	assert_int_equal(window(&lg, lg.added, 0, w, 8, &got), 5);
	assert_int_equal(got, 5);
	assert_non_null(strstr(w[0]->text, "job_id=8"));   /* oldest kept, first */
	assert_non_null(strstr(w[4]->text, "job_id=12"));  /* newest, last */
	kf__tui_logs_free(&lg);
}

static void test_level_and_regex_filters(void **state)
{
	struct kf__tui_logs lg;
	const struct kf__tui_logline *w[16];
	char why[128] = "";
	size_t got;

	(void)state;
	assert_true(kf__tui_logs_init(&lg, 64));
	for (uint64_t i = 1; i <= 9; i++) {
		enum kf_msg_level l = i % 3 == 0 ? KF_MSG_LEVEL_WARN :
			i % 3 == 1 ? KF_MSG_LEVEL_INFO : KF_MSG_LEVEL_DEBUG;
		struct kf_msg_log ev = event(l, i, i % 3 == 0 ? "job retrying" : "job completed");

		kf__tui_logs_add(&lg, &ev, false);
	}
	/* INFO by default: DEBUG lines (2, 5, 8) hidden */
	assert_int_equal(window(&lg, lg.added, 0, w, 16, &got), 6);
	kf__tui_logs_set_level(&lg, KF_MSG_LEVEL_WARN);
	assert_int_equal(window(&lg, lg.added, 0, w, 16, &got), 3);
	for (size_t i = 0; i < got; i++)
		assert_int_equal(w[i]->level, KF_MSG_LEVEL_WARN);
	kf__tui_logs_set_level(&lg, KF_MSG_LEVEL_TRACE);
	assert_int_equal(window(&lg, lg.added, 0, w, 16, &got), 9);
	/* a regex over the whole line, with the level filter */
	assert_true(kf__tui_logs_set_regex(&lg, "job_id=[15]$", why, sizeof why));
	assert_int_equal(window(&lg, lg.added, 0, w, 16, &got), 2);
	assert_non_null(strstr(w[0]->text, "job_id=1"));
	assert_non_null(strstr(w[1]->text, "job_id=5"));
	assert_string_equal(lg.re_text, "job_id=[15]$");
	/* a bad one keeps the old filter and says why */
	assert_false(kf__tui_logs_set_regex(&lg, "(", why, sizeof why));
	assert_true(why[0] != '\0');
	assert_string_equal(lg.re_text, "job_id=[15]$");
	assert_int_equal(window(&lg, lg.added, 0, w, 16, &got), 2);
	/* empty clears */
	assert_true(kf__tui_logs_set_regex(&lg, "", why, sizeof why));
	assert_null(lg.re_text);
	assert_int_equal(window(&lg, lg.added, 0, w, 16, &got), 9);
	kf__tui_logs_free(&lg);
}

static void test_scroll_back_and_pause(void **state)
{
	struct kf__tui_logs lg;
	const struct kf__tui_logline *w[3];
	size_t got, paused_at;

	(void)state;
	assert_true(kf__tui_logs_init(&lg, 100));
	for (uint64_t i = 1; i <= 10; i++) {
		struct kf_msg_log ev = event(KF_MSG_LEVEL_INFO, i, "job completed");

		kf__tui_logs_add(&lg, &ev, false);
	}
	/* three lines, four back from the newest: jobs 4, 5, 6 */
	assert_int_equal(window(&lg, lg.added, 4, w, 3, &got), 10);
	assert_int_equal(got, 3);
	assert_non_null(strstr(w[0]->text, "job_id=4"));
	assert_non_null(strstr(w[2]->text, "job_id=6"));
	/* past the oldest: what is left */
	window(&lg, lg.added, 9, w, 3, &got);
	assert_int_equal(got, 1);
	assert_non_null(strstr(w[0]->text, "job_id=1"));
	/* paused: lines added later stay out of the window */
	paused_at = (size_t)lg.added;
	for (uint64_t i = 11; i <= 12; i++) {
		struct kf_msg_log ev = event(KF_MSG_LEVEL_INFO, i, "job completed");

		kf__tui_logs_add(&lg, &ev, false);
	}
	assert_int_equal(window(&lg, paused_at, 0, w, 3, &got), 10);
	assert_non_null(strstr(w[2]->text, "job_id=10"));
	assert_int_equal(window(&lg, lg.added, 0, w, 3, &got), 12);
	assert_non_null(strstr(w[2]->text, "job_id=12"));
	kf__tui_logs_free(&lg);
}

static void test_tail_not_shown_twice(void **state)
{
	struct kf__tui_logs lg;
	struct kf_msg_log a = event(KF_MSG_LEVEL_INFO, 1, "job completed");
	struct kf_msg_log b = event(KF_MSG_LEVEL_INFO, 2, "job completed");
	struct kf_msg_log c = event(KF_MSG_LEVEL_INFO, 3, "job completed");
	struct kf_msg_log same_time_other = event(KF_MSG_LEVEL_INFO, 2, "job started");

	(void)state;
	assert_true(kf__tui_logs_init(&lg, 16));
	assert_true(kf__tui_logs_add(&lg, &a, true));
	assert_true(kf__tui_logs_add(&lg, &b, true));
	/* the live stream brings b again, then something new */
	assert_false(kf__tui_logs_add(&lg, &b, false));
	assert_true(kf__tui_logs_add(&lg, &same_time_other, false));
	assert_true(kf__tui_logs_add(&lg, &c, false));
	assert_int_equal(lg.added, 4);
	kf__tui_logs_free(&lg);
}

/* Bytes of the UTF-8 character whose first byte is c; 0 for a continuation
 * byte or one that starts none. */
static size_t utf8_len(unsigned char c)
{
	return c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 :
		(c & 0xf8) == 0xf0 ? 4 : 0;
}

/* The broker relays log events of up to 1 MiB. A line keeps the first
 * KF__TUI_LOG_LINE_MAX bytes of its text at most, cut between two
 * characters and marked with '…', in an allocation of about that size; the
 * ring's bytes stay below its lines times that (30 such events into a ring
 * of 8). The message is 3-byte characters after 0-2 ASCII letters, so that
 * for two of the three shifts a cut at a fixed byte would split one. */
static void test_huge_line_is_cut(void **state)
{
	size_t n_chars = 350000, cap = 8;  /* 1 MiB of U+65E5 */
	char *message = malloc(2 + n_chars * 3 + 1);
	struct kf__tui_logs lg;

	(void)state;
	assert_non_null(message);
	assert_true(kf__tui_logs_init(&lg, cap));
	for (size_t k = 0; k < 30; k++) {
		struct kf_msg_log ev = event(KF_MSG_LEVEL_INFO, k, NULL);
		struct kf_strbuf full = KF_STRBUF_INIT;
		const struct kf__tui_logline *w[1];
		size_t got, len, kept, at = 0;
		const char *text;

		for (size_t i = 0; i < k % 3; i++)
			message[at++] = 'a';
		for (size_t i = 0; i < n_chars; i++, at += 3)
			memcpy(message + at, "\xe6\x97\xa5", 3);
		message[at] = '\0';
		ev.message = message;
		kf__ctl_log_text(&full, &ev);
		assert_true(kf__tui_logs_add(&lg, &ev, false));
		window(&lg, lg.added, 0, w, 1, &got);
		assert_int_equal(got, 1);
		text = w[0]->text;
		len = strlen(text);
		/* at most the bound, with the mark at its end */
		assert_true(len <= KF__TUI_LOG_LINE_MAX);
		assert_true(len >= KF__TUI_LOG_LINE_MAX - 2);  /* less one character at most */
		assert_memory_equal(text + len - 3, "\xe2\x80\xa6", 3);
		kept = len - 3;
		/* what is kept is the text's start, whole characters only */
		assert_memory_equal(text, full.buf, kept);
		for (size_t i = 0; i < kept;) {
			size_t n = utf8_len((unsigned char)text[i]);

			assert_true(n > 0 && i + n <= kept);
			i += n;
		}
		/* its own allocation, not the 1 MiB it was built in */
		assert_true(malloc_usable_size(w[0]->text) < 2 * KF__TUI_LOG_LINE_MAX);
		kf_strbuf_release(&full);
	}
	assert_int_equal(lg.len, cap);
	assert_true(lg.bytes <= cap * (KF__TUI_LOG_LINE_MAX + 1));
	kf__tui_logs_free(&lg);
	free(message);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_is_keyforgectl_logs_line),
		cmocka_unit_test(test_ring_keeps_the_newest),
		cmocka_unit_test(test_level_and_regex_filters),
		cmocka_unit_test(test_scroll_back_and_pause),
		cmocka_unit_test(test_tail_not_shown_twice),
		cmocka_unit_test(test_huge_line_is_cut),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
