/*
 * Unit tests for the output formats: RFC 3339 timestamps, tracing's duration
 * text, JSON lines parsed back field by field (escaping included), exact
 * human lines with and without colour, and the colour decision (tty,
 * NO_COLOR).
 */
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "telemetry/log.h"
#include "telemetry/log_internal.h"
#include "test_log_util.h"

#define T0 1795897898123456789ull /* 2026-11-28T20:31:38.123456789Z */

static uint64_t fixed_wall(void)
{
	return T0;
}

static int out_fd = -1;

static void start(enum kf_log_format format, enum kf_log_color color, const char *filter)
{
	struct kf_log_options o = KF_LOG_OPTIONS_INIT;
	o.filter = filter;
	o.format = format;
	o.color = color;
	o.fd = out_fd = cap_open();
	o.mode = KF_LOG_MODE_SYNC;
	o.wall_ns = fixed_wall;
	assert_int_equal(kf_log_init(&o), KF_OK);
}

static void stop(void)
{
	kf_log_shutdown();
	close(out_fd);
	out_fd = -1;
}

/* ---- timestamps and durations -------------------------------------------------- */

static void test_timestamp_table(void **state)
{
	(void)state;
	static const struct {
		uint64_t ns;
		const char *text;
	} cases[] = {
		{ 0, "1970-01-01T00:00:00.000000Z" },
		{ T0, "2026-11-28T20:31:38.123456Z" },
		{ 1709251199999999999ull, "2024-02-29T23:59:59.999999Z" },
		{ 1709251200000000000ull, "2024-03-01T00:00:00.000000Z" },
		{ 951782400000001000ull, "2000-02-29T00:00:00.000001Z" },
		{ 4107542400000000000ull, "2100-03-01T00:00:00.000000Z" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char out[KF__TIMESTAMP_LEN + 1] = { 0 };
		kf__format_timestamp(out, cases[i].ns);
		assert_string_equal(out, cases[i].text);
	}
}

/* Against the C library over many instants between 1970 and 2514. */
static void test_timestamp_matches_gmtime(void **state)
{
	(void)state;
	uint64_t x = 88172645463325252ull;
	for (int i = 0; i < 20000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		time_t secs = (time_t)(x % (1ull << 34));
		unsigned usec = (unsigned)(x >> 40) % 1000000;
		struct tm tm;
		gmtime_r(&secs, &tm);
		char want[64], got[KF__TIMESTAMP_LEN + 1] = { 0 };
		size_t n = strftime(want, sizeof want, "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(want + n, sizeof want - n, ".%06uZ", usec);
		kf__format_timestamp(got, (uint64_t)secs * 1000000000ull + usec * 1000ull + 999);
		assert_string_equal(got, want);
	}
}

static void test_duration_text(void **state)
{
	(void)state;
	static const struct {
		uint64_t ns;
		const char *text;
	} cases[] = {
		{ 0, "0.00ns" },          { 9, "9.00ns" },
		{ 15, "15.0ns" },         { 999, "999ns" },
		{ 1000, "1.00\xc2\xb5s" }, { 45600, "45.6\xc2\xb5s" },
		{ 1500000, "1.50ms" },     { 123000000, "123ms" },
		{ 2000000000, "2.00s" },   { 3600000000000ull, "3600s" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char out[32];
		kf__format_duration(out, sizeof out, cases[i].ns);
		assert_string_equal(out, cases[i].text);
	}
}

static uint64_t stepping_now;

static uint64_t stepping_wall(void)
{
	return stepping_now;
}

/* The formatters cache the text of the current second per thread. */
static void test_timestamps_across_seconds(void **state)
{
	(void)state;
	static const struct {
		uint64_t ns;
		const char *text;
	} steps[] = {
		{ 1709251199999999000ull, "2024-02-29T23:59:59.999999Z" },
		{ 1709251199000001000ull, "2024-02-29T23:59:59.000001Z" },
		{ 1709251200000000000ull, "2024-03-01T00:00:00.000000Z" },
		{ 1709251199500000000ull, "2024-02-29T23:59:59.500000Z" },
		{ 1709251260000042000ull, "2024-03-01T00:01:00.000042Z" },
	};
	struct kf_log_options o = KF_LOG_OPTIONS_INIT;
	o.format = KF_LOG_FORMAT_JSON;
	o.fd = out_fd = cap_open();
	o.mode = KF_LOG_MODE_SYNC;
	o.wall_ns = stepping_wall;
	assert_int_equal(kf_log_init(&o), KF_OK);
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		stepping_now = steps[i].ns;
		KF_INFO("keyforge::test", "tick");
		const char *line = cap_line(cap_read(out_fd), i);
		assert_non_null(line);
		struct tj *v = tj_parse(line, strlen(line));
		assert_non_null(v);
		assert_string_equal(tj_get(v, "timestamp")->text, steps[i].text);
		tj_free(v);
	}
	stop();
}

/* ---- JSON ---------------------------------------------------------------------- */

static void test_json_exact_line(void **state)
{
	(void)state;
	start(KF_LOG_FORMAT_JSON, KF_LOG_COLOR_NEVER, "info");
	KF_INFO("keyforge::worker", "job completed", KF_U64("job_id", 42), KF_STR("worker", "w-1"));
	KF_DEBUG("keyforge::worker", "filtered out");
	assert_string_equal(cap_read(out_fd),
			    "{\"timestamp\":\"2026-11-28T20:31:38.123456Z\",\"level\":\"INFO\","
			    "\"target\":\"keyforge::worker\",\"fields\":{\"message\":\"job completed\","
			    "\"job_id\":42,\"worker\":\"w-1\"}}\n");
	stop();
}

static const char tricky[] = "q\" b\\ n\n t\t c\x01 d\x7f \xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80 "
			     "bad\xff end";
static const char tricky_decoded[] = "q\" b\\ n\n t\t c\x01 d\x7f \xc3\xa9 \xe2\x9c\x93 "
				     "\xf0\x9f\x98\x80 bad\xef\xbf\xbd end";

static void assert_str(const struct tj *v, const char *want, size_t len)
{
	assert_non_null(v);
	assert_int_equal(v->type, TJ_STRING);
	assert_int_equal(v->len, len);
	assert_memory_equal(v->text, want, len);
}

static void assert_num(const struct tj *v, const char *text)
{
	assert_non_null(v);
	assert_int_equal(v->type, TJ_NUMBER);
	assert_string_equal(v->text, text);
}

static void check_span_objects(const struct tj *root)
{
	const struct tj *outer = tj_path(root, "spans.0"), *inner = tj_path(root, "spans.1");
	assert_int_equal(tj_get(root, "spans")->n, 2);
	assert_int_equal(outer->n, 3); /* name, job_id, worker_id; user_id unrecorded */
	assert_str(tj_get(outer, "name"), "job_execution", 13);
	assert_num(tj_get(outer, "job_id"), "42");
	assert_str(tj_get(outer, "worker_id"), tricky_decoded, sizeof tricky_decoded - 1);
	assert_null(tj_get(outer, "user_id"));
	assert_int_equal(inner->n, 3);
	assert_str(tj_get(inner, "name"), "annealing_loop", 14);
	assert_num(tj_get(inner, "steps"), "1000");
	assert_num(tj_get(inner, "start_temp"), "2.5");
	/* "span" is the innermost one, identical to the last of "spans" */
	const struct tj *span = tj_get(root, "span");
	assert_int_equal(span->n, 3);
	assert_str(tj_get(span, "name"), "annealing_loop", 14);
	assert_num(tj_get(span, "steps"), "1000");
}

static void test_json_parsed_back(void **state)
{
	(void)state;
	start(KF_LOG_FORMAT_JSON, KF_LOG_COLOR_NEVER, "trace");
	struct kf_span *outer = kf_span_enter(KF_INFO_SPAN("keyforge::worker", "job_execution",
		KF_U64("job_id", 42), KF_STR("worker_id", tricky), KF_EMPTY("user_id")));
	struct kf_span *inner = kf_span_enter(KF_DEBUG_SPAN("keyforge::layout", "annealing_loop",
		KF_U64("steps", 1000), KF_F64("start_temp", 2.5)));
	KF_WARN("keyforge::layout::anneal", tricky,
		KF_I64("min", INT64_MIN), KF_U64("max", UINT64_MAX), KF_F64("tenth", 0.1),
		KF_F64("big", 1e300), KF_F64("nan", NAN), KF_BOOL("yes", 1), KF_BOOL("no", 0),
		KF_STRN("nul", "a\0b", 3), KF_STR("null_ptr", NULL), KF_STR(tricky, "k"));
	const char *out = cap_read(out_fd);
	assert_int_equal(cap_count_lines(out), 1);
	struct tj *root = tj_parse(out, strlen(out));
	assert_non_null(root);
	assert_int_equal(root->type, TJ_OBJECT);
	assert_int_equal(root->n, 6);
	assert_str(tj_get(root, "timestamp"), "2026-11-28T20:31:38.123456Z", 27);
	assert_str(tj_get(root, "level"), "WARN", 4);
	assert_str(tj_get(root, "target"), "keyforge::layout::anneal", 24);
	const struct tj *fields = tj_get(root, "fields");
	assert_int_equal(fields->n, 11);
	assert_string_equal(fields->keys[0], "message");
	assert_str(tj_get(fields, "message"), tricky_decoded, sizeof tricky_decoded - 1);
	assert_num(tj_get(fields, "min"), "-9223372036854775808");
	assert_num(tj_get(fields, "max"), "18446744073709551615");
	assert_num(tj_get(fields, "tenth"), "0.1");
	assert_num(tj_get(fields, "big"), "1e+300");
	assert_int_equal(tj_get(fields, "nan")->type, TJ_NULL);
	assert_true(tj_get(fields, "yes")->b);
	assert_int_equal(tj_get(fields, "no")->type, TJ_BOOL);
	assert_false(tj_get(fields, "no")->b);
	assert_str(tj_get(fields, "nul"), "a\0b", 3);
	assert_str(tj_get(fields, "null_ptr"), "(null)", 6);
	assert_str(tj_get(fields, tricky_decoded), "k", 1);
	check_span_objects(root);
	tj_free(root);
	kf_span_exit(inner);
	kf_span_exit(outer);
	kf_span_close(inner);
	kf_span_close(outer);
	stop();
}

static void test_json_without_spans_has_four_keys(void **state)
{
	(void)state;
	start(KF_LOG_FORMAT_JSON, KF_LOG_COLOR_NEVER, "info");
	KF_ERROR("keyforge::broker", "database connection failed", KF_ERR(KF_EUNAVAIL));
	const char *out = cap_read(out_fd);
	struct tj *root = tj_parse(out, strlen(out));
	assert_non_null(root);
	assert_int_equal(root->n, 4);
	assert_null(tj_get(root, "span"));
	assert_null(tj_get(root, "spans"));
	assert_str(tj_path(root, "fields.error"), kf_strerror(KF_EUNAVAIL),
		   strlen(kf_strerror(KF_EUNAVAIL)));
	tj_free(root);
	stop();
}

/* ---- human ---------------------------------------------------------------------- */

static void test_human_exact_line(void **state)
{
	(void)state;
	start(KF_LOG_FORMAT_HUMAN, KF_LOG_COLOR_NEVER, "info");
	struct kf_span *job = kf_span_enter(KF_INFO_SPAN("keyforge::worker", "job_execution",
		KF_U64("job_id", 42), KF_STR("worker_id", "w-1"), KF_EMPTY("user_id")));
	struct kf_span *loop = kf_span_enter(KF_INFO_SPAN("keyforge::layout", "annealing_loop"));
	KF_INFO("keyforge::worker", "job completed", KF_STR("worker", "w\"1\n"), KF_BOOL("ok", 1),
		KF_F64("t", 0.5), KF_I64("neg", -5), KF_F64("inf", INFINITY));
	KF_INFO("keyforge::worker", "esc\x1b[31m\tmsg\n");
	kf_span_close(loop);
	kf_span_close(job);
	const char *out = cap_read(out_fd);
	assert_string_equal(cap_line(out, 0),
			    "2026-11-28T20:31:38.123456Z  INFO job_execution{job_id=42 "
			    "worker_id=\"w-1\"}:annealing_loop: keyforge::worker: job completed "
			    "worker=\"w\\\"1\\n\" ok=true t=0.5 neg=-5 inf=inf");
	assert_string_equal(cap_line(out, 1),
			    "2026-11-28T20:31:38.123456Z  INFO job_execution{job_id=42 "
			    "worker_id=\"w-1\"}:annealing_loop: keyforge::worker: "
			    "esc\\u{1b}[31m\\tmsg\\n");
	assert_int_equal(cap_count_lines(out), 2);
	stop();
}

static void test_human_color_line(void **state)
{
	(void)state;
	start(KF_LOG_FORMAT_HUMAN, KF_LOG_COLOR_ALWAYS, "info");
	struct kf_span *job = kf_span_enter(KF_INFO_SPAN("k", "job", KF_U64("id", 1)));
	KF_WARN("keyforge::broker", "rate limit exceeded", KF_U64("n", 3));
	kf_span_close(job);
	assert_string_equal(cap_read(out_fd),
			    "\x1b[2m2026-11-28T20:31:38.123456Z\x1b[0m \x1b[33m WARN\x1b[0m "
			    "\x1b[1mjob{\x1b[0m\x1b[3mid\x1b[0m=1\x1b[1m}\x1b[0m: "
			    "\x1b[2mkeyforge::broker:\x1b[0m rate limit exceeded "
			    "\x1b[3mn\x1b[0m=3\n");
	stop();
}

/* Colour on a terminal unless NO_COLOR is set to something non-empty. */
static bool pty_is_colored(const char *no_color)
{
	int master = posix_openpt(O_RDWR | O_NOCTTY);
	if (master < 0 || grantpt(master) || unlockpt(master))
		return false;
	int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
	assert_true(slave >= 0);
	if (no_color)
		setenv("NO_COLOR", no_color, 1);
	else
		unsetenv("NO_COLOR");
	struct kf_log_options o = KF_LOG_OPTIONS_INIT;
	o.fd = slave;
	o.mode = KF_LOG_MODE_SYNC;
	assert_int_equal(kf_log_init(&o), KF_OK);
	KF_INFO("keyforge::test", "hello");
	kf_log_shutdown();
	unsetenv("NO_COLOR");
	char buf[512] = { 0 };
	struct pollfd p = { .fd = master, .events = POLLIN };
	assert_int_equal(poll(&p, 1, 2000), 1);
	assert_true(read(master, buf, sizeof buf - 1) > 0);
	close(slave);
	close(master);
	assert_non_null(strstr(buf, "hello"));
	return strchr(buf, '\x1b') != NULL;
}

static void test_color_auto(void **state)
{
	(void)state;
	int probe = posix_openpt(O_RDWR | O_NOCTTY);
	if (probe < 0)
		skip();
	close(probe);
	assert_true(pty_is_colored(NULL));
	assert_true(pty_is_colored(""));
	assert_false(pty_is_colored("1"));
	/* not a terminal: no colour */
	start(KF_LOG_FORMAT_HUMAN, KF_LOG_COLOR_AUTO, "info");
	KF_INFO("keyforge::test", "plain");
	assert_null(strchr(cap_read(out_fd), '\x1b'));
	stop();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timestamp_table),
		cmocka_unit_test(test_timestamp_matches_gmtime),
		cmocka_unit_test(test_duration_text),
		cmocka_unit_test(test_timestamps_across_seconds),
		cmocka_unit_test(test_json_exact_line),
		cmocka_unit_test(test_json_parsed_back),
		cmocka_unit_test(test_json_without_spans_has_four_keys),
		cmocka_unit_test(test_human_exact_line),
		cmocka_unit_test(test_human_color_line),
		cmocka_unit_test(test_color_auto),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
