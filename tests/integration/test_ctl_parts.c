/*
 * test_ctl_parts.c — keyforgectl's pure parts (admin/ctl_fmt.c,
 * admin/ctl_json.c): command-line values, durations, state lists, the
 * table printer, the JSON of a job and broker strings made safe for a
 * terminal. No sockets: suite 'unit'.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "admin/ctl.h"

/* The syntax is kf_parse_duration_ns's (test_common); here, what ctl adds:
 * seconds when bare, whole ms, and the broker's limit for a deadline. */
static void test_durations(void **state)
{
	static const struct {
		const char *text;
		uint64_t want;
	} ok[] = {
		{ "90", 90000 }, { "30s", 30000 }, { "1.5m", 90000 }, { "250ms", 250 },
		{ "0", 0 }, { "0.5", 500 }, { "0.4ms", 0 }, { "0.5ms", 1 },
		{ "9223372036854ms", 9223372036854 },
	};
	static const char *const bad[] = { "", "-1", "5x", "1e3", "9223372036855ms", NULL };
	uint64_t ms;

	(void)state;
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		ms = 12345;
		assert_true(kf__ctl_parse_duration_ms(ok[i].text, &ms));
		assert_int_equal(ms, ok[i].want);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_false(kf__ctl_parse_duration_ms(bad[i], &ms));
}

static void test_numbers(void **state)
{
	uint64_t u;
	int64_t i;

	(void)state;
	assert_true(kf__ctl_parse_count("1e6", UINT64_MAX, &u));
	assert_int_equal(u, 1000000);
	assert_true(kf__ctl_parse_count("2.5e5", UINT64_MAX, &u));
	assert_int_equal(u, 250000);
	assert_true(kf__ctl_parse_count("18446744073709551615", UINT64_MAX, &u));
	assert_int_equal(u, UINT64_MAX);
	assert_false(kf__ctl_parse_count("2.5", UINT64_MAX, &u));
	assert_false(kf__ctl_parse_count("-3", UINT64_MAX, &u));
	assert_false(kf__ctl_parse_count("1e20", UINT64_MAX, &u));
	assert_false(kf__ctl_parse_count("many", UINT64_MAX, &u));
	assert_false(kf__ctl_parse_u64("1001", 1000, &u));
	assert_true(kf__ctl_parse_job_id("42", &u));
	assert_int_equal(u, 42);
	assert_false(kf__ctl_parse_job_id("0", &u));
	assert_false(kf__ctl_parse_job_id("9223372036854775808", &u));
	assert_true(kf__ctl_parse_i64("-5", INT32_MIN, INT32_MAX, &i));
	assert_int_equal(i, -5);
	assert_false(kf__ctl_parse_i64("2147483648", INT32_MIN, INT32_MAX, &i));
	assert_false(kf__ctl_parse_i64("5a", INT32_MIN, INT32_MAX, &i));
}

static void test_states(void **state)
{
	uint32_t m;

	(void)state;
	assert_true(kf__ctl_parse_states("pending", &m));
	assert_int_equal(m, KF_JOB_STATE_BIT(KF_JOB_PENDING));
	assert_true(kf__ctl_parse_states("running,FAILED", &m));
	assert_int_equal(m, KF_JOB_STATE_BIT(KF_JOB_RUNNING) | KF_JOB_STATE_BIT(KF_JOB_FAILED));
	assert_true(kf__ctl_parse_states("final", &m));
	assert_int_equal(m, KF_JOB_STATE_BIT(KF_JOB_SUCCEEDED) | KF_JOB_STATE_BIT(KF_JOB_FAILED) |
			    KF_JOB_STATE_BIT(KF_JOB_KILLED));
	assert_true(kf__ctl_parse_states("active,killed", &m));
	assert_int_equal(m, 0x27u);
	assert_true(kf__ctl_parse_states("all", &m));
	assert_int_equal(m, 0x3fu);
	assert_false(kf__ctl_parse_states("", &m));
	assert_false(kf__ctl_parse_states("pending,", &m));
	assert_false(kf__ctl_parse_states("done", &m));
}

static void test_formats(void **state)
{
	static const struct {
		uint64_t ms;
		const char *want;
	} d[] = {
		{ 0, "0ms" }, { 999, "999ms" }, { 5000, "5s" }, { 12345, "12.3s" },
		{ 245000, "4m05s" }, { 12000000, "3h20m" }, { 187200000, "2d04h" },
	};
	struct kf_strbuf sb = KF_STRBUF_INIT;

	(void)state;
	for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
		kf_strbuf_reset(&sb);
		kf__ctl_add_duration(&sb, d[i].ms);
		assert_string_equal(sb.buf, d[i].want);
	}
	kf_strbuf_reset(&sb);
	kf__ctl_add_time(&sb, 1700000000123456789ull);
	assert_string_equal(sb.buf, "2023-11-14T22:13:20.123Z");
	kf_strbuf_reset(&sb);
	kf__ctl_add_bytes(&sb, 512);
	assert_string_equal(sb.buf, "512 B");
	kf_strbuf_reset(&sb);
	kf__ctl_add_bytes(&sb, 12900000);
	assert_string_equal(sb.buf, "12.3 MiB");
	kf_strbuf_release(&sb);
}

/* A dead worker's last heartbeat is history: its readings are not shown as
 * if current, and a live one's are. An unheard one has none to show. */
static void test_workers_table(void **state)
{
	struct kf_msg_worker_status ws[3] = {
		{ .worker_id = "w-live", .host = "h1", .pid = 11, .liveness = KF_WORKER_ALIVE,
		  .state = KF_WORKER_BUSY, .cpu_process = 0.97, .cpu_host = 0.5,
		  .rss_bytes = 4u << 20, .slots_total = 1, .slots_busy = 1, .job_id = 42,
		  .job_progress = 0.25, .last_heartbeat_age_ms = 300 },
		{ .worker_id = "w-dead", .host = "h2", .pid = 22, .liveness = KF_WORKER_DEAD,
		  .state = KF_WORKER_BUSY, .cpu_process = 0.97, .cpu_host = 0.5,
		  .rss_bytes = 4u << 20, .slots_total = 1, .slots_busy = 1, .job_id = 43,
		  .job_progress = 0.5, .last_heartbeat_age_ms = 15500 },
		{ .worker_id = "w-deaf", .host = "h3", .pid = 33, .liveness = KF_WORKER_ALIVE,
		  .state = KF_WORKER_IDLE, .slots_total = 1, .last_heartbeat_age_ms = 2100,
		  .unheard = true },
	};
	struct kf_msg_cluster_status st = { .workers = ws, .n_workers = 3 };
	char buf[1024] = "", *live, *dead, *deaf;
	FILE *f = fmemopen(buf, sizeof buf, "w");

	(void)state;
	assert_non_null(f);
	kf__ctl_workers_table(&st, f);
	fclose(f);
	assert_non_null(live = strstr(buf, "w-live"));
	assert_non_null(dead = strstr(buf, "w-dead"));
	assert_non_null(deaf = strstr(buf, "w-deaf"));
	*strchr(live, '\n') = '\0';
	*strchr(dead, '\n') = '\0';
	/* Registered by its hello, never heard: what is missing, not an age. */
	assert_non_null(strstr(deaf, "none since hello 2.1s ago"));
	assert_non_null(strstr(live, " 300ms ago"));
	assert_null(strstr(live, "none since hello"));
	assert_non_null(strstr(live, " busy "));
	assert_non_null(strstr(live, " 97% "));
	assert_non_null(strstr(live, " 1/1 "));
	assert_non_null(strstr(live, " 42 "));
	assert_non_null(strstr(dead, " dead "));
	assert_null(strstr(dead, "busy"));
	assert_null(strstr(dead, "97%"));
	assert_null(strstr(dead, "MiB"));
	assert_null(strstr(dead, " 43 "));
	assert_non_null(strstr(dead, " -/1 "));
	assert_non_null(strstr(dead, "15.5s ago"));
}

static void test_table(void **state)
{
	static const char *const heads[] = { ">ID", "STATE", "NOTE" };
	struct kf__ctl_table t;
	char buf[512] = "";
	FILE *f = fmemopen(buf, sizeof buf, "w");

	(void)state;
	assert_non_null(f);
	kf__ctl_table_init(&t, heads, 3);
	kf__ctl_table_cell(&t, "%d", 7);
	kf__ctl_table_cell(&t, "running");
	kf__ctl_table_cell(&t, "x");
	kf__ctl_table_cell(&t, "%d", 12);
	kf__ctl_table_cell(&t, "ok");
	kf__ctl_table_cell(&t, "%s", "");
	kf__ctl_table_print(&t, f);
	kf__ctl_table_release(&t);
	fclose(f);
	assert_string_equal(buf, "ID  STATE    NOTE\n"
				 " 7  running  x\n"
				 "12  ok       \n");
}

/* What a terminal would act on becomes visible; text stays as it is. */
static void test_safe_text(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "plain: qwerty \xc3\xbc \xe6\x97\xa5\xe6\x9c\xac", NULL },      /* unchanged */
		{ "a\033[2Jb", "a?[2Jb" },                                  /* ESC */
		{ "\033]0;title\a", "?]0;title?" },                         /* OSC, BEL */
		{ "tab\there", "tab here" },
		{ "one\ntwo\r", "one?two?" },                              /* one line */
		{ "del\x7f", "del?" },
		{ "\x01\x1f ", "?? " },
		{ "c1\xc2\x9b" "1;1H\xc2\x80\xc2\x9f", "c1?1;1H??" },      /* U+009B CSI */
		{ "nbsp\xc2\xa0", NULL },                                   /* U+00A0 is text */
		{ "bad\x9b\xff", "bad??" },                                /* not UTF-8 */
		{ "cut\xe6\x97", "cut??" },
		{ "", NULL },
	};
	struct kf_strbuf sb = KF_STRBUF_INIT;
	char buf[128];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *want = cases[i].want ? cases[i].want : cases[i].in;
		FILE *f;

		buf[0] = '\0'; /* fmemopen writes its NUL after output only */
		f = fmemopen(buf, sizeof buf, "w");
		assert_string_equal(kf__ctl_safe(&sb, cases[i].in), want);
		assert_non_null(f);
		kf__ctl_fputs_safe(cases[i].in, f);
		fclose(f);
		assert_string_equal(buf, want);
	}
	kf_strbuf_reset(&sb);
	kf_strbuf_addstr(&sb, "x=");
	kf__ctl_add_safe(&sb, "\033c");
	kf__ctl_add_safe(&sb, NULL);
	assert_string_equal(sb.buf, "x=?c");
	kf_strbuf_release(&sb);
}

/* A worker id with escapes (any publisher on the ingest can choose one):
 * printed without them, and the columns still line up. */
static void test_table_controls(void **state)
{
	static const char *const heads[] = { "WORKER", ">PID", "HOST" };
	struct kf__ctl_table t;
	char buf[512] = "";
	FILE *f = fmemopen(buf, sizeof buf, "w");

	(void)state;
	assert_non_null(f);
	kf__ctl_table_init(&t, heads, 3);
	kf__ctl_table_cell(&t, "%s", "w\033[2J\xc2\x9b" "1");
	kf__ctl_table_cell(&t, "%d", 7);
	kf__ctl_table_cell(&t, "%s", "h\t\xe6\x97\xa5\n");
	kf__ctl_table_cell(&t, "%s", "w2");
	kf__ctl_table_cell(&t, "%d", 12);
	kf__ctl_table_cell(&t, "%s", "h2");
	kf__ctl_table_print(&t, f);
	kf__ctl_table_release(&t);
	fclose(f);
	assert_string_equal(buf, "WORKER   PID  HOST\n"
				 "w?[2J?1    7  h \xe6\x97\xa5?\n"
				 "w2        12  h2\n");
}

static void test_job_json(void **state)
{
	static const struct kf_msg_named_value weights[] = { { "sfb", 12.5 } };
	static const struct kf_msg_named_value stats[] = { { "sfb", 0.75 }, { "alt_sfs", 5 } };
	static const struct kf_msg_job_error errs[] = { { 1, "lost: worker dead", 0 } };
	struct kf_msg_job_result r = {
		.layout = "qwertyuiopasdfghjkl;zxcvbnm,./", .cost = 14.5, .stats = stats,
		.n_stats = 2, .finger_usage = { 1, 2, 3, 4, 5, 6, 7, 8 }, .steps = 100,
		.steps_per_sec = 2e6, .elapsed_ms = 3,
	};
	struct kf_msg_job j = {
		.id = 7, .state = KF_JOB_SUCCEEDED, .attempt = 2, .max_attempts = 3,
		.worker_id = "w\"1", .progress = 1, .best_cost = 14.5,
		.params = { .corpus = "/c.kfc", .board = KF_MSG_BOARD_ORTHO, .steps = 100,
			    .seed = 9, .restarts = 1, .weights = weights, .n_weights = 1,
			    .max_attempts = 3, .priority = -2 },
		.result = &r, .errors = errs, .n_errors = 1, .created_ns = 1700000000000000000ull,
		.key = "nightly \"7\"",
	};
	struct kf_strbuf sb = KF_STRBUF_INIT;

	(void)state;
	kf__ctl_json_job(&sb, &j);
	assert_string_equal(sb.buf,
		"{\"id\":7,\"state\":\"succeeded\",\"attempt\":2,\"max_attempts\":3,"
		"\"priority\":0,\"worker\":\"w\\\"1\",\"progress\":1,\"best_cost\":14.5,"
		"\"created_at\":\"2023-11-14T22:13:20.000Z\",\"started_at\":null,"
		"\"finished_at\":null,\"key\":\"nightly \\\"7\\\"\",\"params\":{\"corpus\":\"/c.kfc\",\"board\":\"ortho\","
		"\"start_layout\":null,\"steps\":100,\"restarts\":1,\"seed\":9,\"start_temp\":0,"
		"\"pinned\":null,\"weights\":{\"sfb\":12.5},\"deadline_ms\":0,"
		"\"max_attempts\":3,\"priority\":-2},\"result\":{\"layout\":"
		"\"qwertyuiopasdfghjkl;zxcvbnm,./\",\"score\":14.5,\"sfb\":0.75,\"alt_sfs\":5,"
		"\"finger_usage\":{\"LP\":1,\"LR\":2,\"LM\":3,\"LI\":4,\"RI\":5,\"RM\":6,"
		"\"RR\":7,\"RP\":8},\"steps\":100,\"steps_per_sec\":2000000,\"elapsed_ms\":3},"
		"\"errors\":[{\"attempt\":1,\"message\":\"lost: worker dead\",\"at\":null}]}");
	kf_strbuf_release(&sb);
}

static void test_log_json(void **state)
{
	static const struct kf_msg_field f[] = {
		{ "job_id", { .kind = KF_VALUE_U64, .u64 = 3 } },
		{ "ok", { .kind = KF_VALUE_BOOL, .b = true } },
	};
	static const struct kf_msg_field sf[] = { { "attempt", { .kind = KF_VALUE_I64, .i64 = -1 } } };
	static const struct kf_msg_span sp[] = { { "job_execution", sf, 1 } };
	struct kf_msg_log ev = { .level = KF_MSG_LEVEL_WARN, .target = "keyforge::broker",
		.message = "job retrying", .fields = f, .n_fields = 2, .spans = sp, .n_spans = 1,
		.ts_ns = 1700000000000000000ull, .source = "broker" };
	struct kf_strbuf sb = KF_STRBUF_INIT;

	(void)state;
	kf__ctl_json_log(&sb, &ev);
	assert_string_equal(sb.buf,
		"{\"timestamp\":\"2023-11-14T22:13:20.000Z\",\"level\":\"WARN\","
		"\"target\":\"keyforge::broker\",\"source\":\"broker\",\"fields\":{\"message\":"
		"\"job retrying\",\"job_id\":3,\"ok\":true},\"span\":{\"name\":\"job_execution\","
		"\"attempt\":-1},\"spans\":[{\"name\":\"job_execution\",\"attempt\":-1}]}");
	kf_strbuf_release(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_states),
		cmocka_unit_test(test_formats),
		cmocka_unit_test(test_workers_table),
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_safe_text),
		cmocka_unit_test(test_table_controls),
		cmocka_unit_test(test_job_json),
		cmocka_unit_test(test_log_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
