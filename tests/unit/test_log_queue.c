/*
 * Unit tests for the writer side: queue overflow accounting and the
 * "N events dropped" warning, long lines, the writer thread with two
 * producers, flushing at shutdown and at exit(), the fatal-signal handler
 * (in forked children), sinks, and initialisation from options and from the
 * environment.
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "telemetry/log.h"
#include "telemetry/log_internal.h"
#include "test_log_util.h"

#define TGT "keyforge::test"

static int out_fd = -1;

static void start(enum kf_log_mode mode, enum kf_log_format format, size_t capacity)
{
	struct kf_log_options o = KF_LOG_OPTIONS_INIT;
	o.filter = "debug";
	o.format = format;
	o.fd = out_fd = cap_open();
	o.mode = mode;
	o.queue_capacity = capacity;
	assert_int_equal(kf_log_init(&o), KF_OK);
}

static void stop(void)
{
	kf_log_shutdown();
	close(out_fd);
	out_fd = -1;
}

static struct tj *parse_line(const char *out, size_t i)
{
	const char *line = cap_line(out, i);
	assert_non_null(line);
	struct tj *v = tj_parse(line, strlen(line));
	assert_non_null(v);
	return v;
}

static void assert_tj_str(const struct tj *v, const char *path, const char *want)
{
	const struct tj *x = tj_path(v, path);
	if (!x || x->type != TJ_STRING || strcmp(x->text, want) != 0)
		fail_msg("%s: want \"%s\", got \"%s\"", path, want, x && x->text ? x->text : "?");
}

static void assert_tj_num(const struct tj *v, const char *path, double want)
{
	const struct tj *x = tj_path(v, path);
	assert_non_null(x);
	assert_int_equal(x->type, TJ_NUMBER);
	assert_true(x->num == want);
}

/* ---- overflow ---------------------------------------------------------------- */

static void test_overflow_counts_and_warns(void **state)
{
	(void)state;
	start(KF_LOG_MODE_MANUAL, KF_LOG_FORMAT_JSON, 4);
	uint64_t before = kf_log_dropped_total();
	for (unsigned i = 0; i < 10; i++)
		KF_INFO(TGT, "event", KF_U64("i", i));
	assert_int_equal(kf_log_dropped_total() - before, 6);
	assert_string_equal(cap_read(out_fd), ""); /* the writer is stopped */
	kf_log_flush();
	const char *out = cap_read(out_fd);
	assert_int_equal(cap_count_lines(out), 5);
	for (unsigned i = 0; i < 4; i++) {
		struct tj *v = parse_line(out, i);
		assert_tj_num(v, "fields.i", i);
		tj_free(v);
	}
	struct tj *warn = parse_line(out, 4);
	assert_tj_str(warn, "level", "WARN");
	assert_tj_str(warn, "target", "keyforge::telemetry");
	assert_tj_str(warn, "fields.message", "6 events dropped");
	assert_tj_num(warn, "fields.dropped", 6);
	tj_free(warn);

	/* nothing dropped since: no second warning */
	kf_log_flush();
	KF_INFO(TGT, "later", KF_U64("i", 10));
	KF_INFO(TGT, "later", KF_U64("i", 11));
	kf_log_flush();
	out = cap_read(out_fd);
	assert_int_equal(cap_count_lines(out), 7);
	assert_null(strstr(strstr(out, "dropped\":6}}") + 1, "dropped"));
	assert_int_equal(kf_log_dropped_total() - before, 6);
	stop();
}

static uint64_t fixed_wall(void)
{
	return 1795897898123456789ull;
}

static void test_overflow_warning_human_text(void **state)
{
	(void)state;
	struct kf_log_options o = KF_LOG_OPTIONS_INIT;
	o.fd = out_fd = cap_open();
	o.mode = KF_LOG_MODE_MANUAL;
	o.queue_capacity = 2;
	o.wall_ns = fixed_wall;
	o.color = KF_LOG_COLOR_NEVER;
	assert_int_equal(kf_log_init(&o), KF_OK);
	for (int i = 0; i < 5; i++)
		KF_INFO(TGT, "x");
	kf_log_flush();
	assert_string_equal(cap_line(cap_read(out_fd), 2),
			    "2026-11-28T20:31:38.123456Z  WARN keyforge::telemetry: "
			    "3 events dropped dropped=3");
	stop();
}

static void test_long_line_goes_through(void **state)
{
	(void)state;
	start(KF_LOG_MODE_MANUAL, KF_LOG_FORMAT_JSON, 4);
	static char big[3001];
	memset(big, 'x', 3000);
	KF_INFO(TGT, "big", KF_STR("payload", big));
	KF_INFO(TGT, "small");
	kf_log_flush();
	const char *out = cap_read(out_fd);
	struct tj *v = parse_line(out, 0);
	assert_int_equal(tj_path(v, "fields.payload")->len, 3000);
	tj_free(v);
	v = parse_line(out, 1);
	assert_tj_str(v, "fields.message", "small");
	tj_free(v);
	stop();
}

/* ---- the writer thread ----------------------------------------------------- */

#define PER_THREAD 2000

static void *producer(void *arg)
{
	uint64_t id = (uintptr_t)arg;
	for (uint64_t i = 0; i < PER_THREAD; i++)
		KF_INFO(TGT, "tick", KF_U64("thread", id), KF_U64("seq", i));
	return NULL;
}

static void test_two_producers_thread_mode(void **state)
{
	(void)state;
	start(KF_LOG_MODE_THREAD, KF_LOG_FORMAT_JSON, 8192);
	uint64_t before = kf_log_dropped_total();
	pthread_t t[2];
	for (uintptr_t i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, producer, (void *)i), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	kf_log_flush();
	assert_int_equal(kf_log_dropped_total(), before);
	const char *out = cap_read(out_fd);
	assert_int_equal(cap_count_lines(out), 2 * PER_THREAD);
	/* each producer's events stay in order */
	double next[2] = { 0, 0 };
	for (size_t i = 0; i < 2 * PER_THREAD; i++) {
		struct tj *v = parse_line(out, i);
		int id = (int)tj_path(v, "fields.thread")->num;
		assert_true(tj_path(v, "fields.seq")->num == next[id]);
		next[id]++;
		tj_free(v);
	}
	stop();
}

/* Voluntary context switches of this process's writer thread so far. */
static long writer_switches(void)
{
	DIR *d = opendir("/proc/self/task");
	char path[300], line[128];
	struct dirent *e;
	long n = -1;
	FILE *f;

	assert_non_null(d);
	while (n < 0 && (e = readdir(d))) {
		bool writer;

		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		writer = fgets(line, sizeof(line), f) && !strcmp(line, "kf:logwriter\n");
		fclose(f);
		if (!writer)
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/status", e->d_name);
		assert_non_null(f = fopen(path, "r"));
		while (fgets(line, sizeof(line), f))
			if (!strncmp(line, "voluntary_ctxt_switches:", 24))
				n = atol(line + 24);
		fclose(f);
	}
	closedir(d);
	assert_true(n >= 0);
	return n;
}

/* Written lines so far that contain needle. */
static bool written(const char *needle)
{
	return strstr(cap_read(out_fd), needle) != NULL;
}

/* A writer with nothing to write goes idle: it no longer wakes every 20 ms
 * (a second of quiet costs it a few wake-ups, not fifty), and the next line
 * of any level wakes it at once: the idle bound is set to 30 s here, so a
 * line that waited for it would not show within the 10 s allowed. */
static void test_quiet_writer_idles(void **state)
{
	long before;

	(void)state;
	start(KF_LOG_MODE_THREAD, KF_LOG_FORMAT_JSON, 1024);
	kf__writer_set_idle_ns(30L * 1000000000L);
	KF_INFO(TGT, "before the quiet");
	kf_log_flush();
	usleep(300 * 1000);   /* past the 5 naps of 20 ms: idle */
	before = writer_switches();
	usleep(1000 * 1000);
	assert_in_range(writer_switches() - before, 0, 3);
	KF_INFO(TGT, "after the quiet");
	for (int i = 0; i < 1000 && !written("after the quiet"); i++)
		usleep(10 * 1000);
	assert_true(written("after the quiet"));
	kf__writer_set_idle_ns(1000000000L);
	stop();
}

static void test_shutdown_flushes(void **state)
{
	(void)state;
	start(KF_LOG_MODE_THREAD, KF_LOG_FORMAT_HUMAN, 256);
	for (int i = 0; i < 100; i++)
		KF_INFO(TGT, "queued");
	int fd = dup(out_fd);
	stop();
	assert_int_equal(cap_count_lines(cap_read(fd)), 100);
	close(fd);
}

/* ---- exit and fatal signals (in children) ------------------------------------ */

static char child_out[1 << 16];

/* Runs `body` in a child whose log goes to a pipe; returns its wait status
 * and leaves its output in child_out. */
static int run_child(void (*body)(int fd))
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit no_core = { 0, 0 };
		setrlimit(RLIMIT_CORE, &no_core);
		close(p[0]);
		body(p[1]);
		_exit(99);
	}
	close(p[1]);
	size_t len = 0;
	ssize_t n;
	while ((n = read(p[0], child_out + len, sizeof child_out - 1 - len)) > 0)
		len += (size_t)n;
	child_out[len] = '\0';
	close(p[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void child_init(int fd, enum kf_log_mode mode, enum kf_log_format format)
{
	struct kf_log_options o = KF_LOG_OPTIONS_INIT;
	o.fd = fd;
	o.mode = mode;
	o.format = format;
	o.program = "keyforge-worker";
	if (kf_log_init(&o) != KF_OK)
		_exit(98);
}

static void body_exit(int fd)
{
	child_init(fd, KF_LOG_MODE_THREAD, KF_LOG_FORMAT_HUMAN);
	for (int i = 0; i < 50; i++)
		KF_INFO(TGT, "before exit");
	exit(0); /* no kf_log_shutdown: atexit flushes */
}

static void test_exit_flushes(void **state)
{
	(void)state;
	int status = run_child(body_exit);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(cap_count_lines(child_out), 50);
}

static void body_segv(int fd)
{
	child_init(fd, KF_LOG_MODE_MANUAL, KF_LOG_FORMAT_JSON);
	if (kf_log_install_fatal_handler("worker panic") != KF_OK)
		_exit(97);
	for (int i = 0; i < 3; i++)
		KF_INFO(TGT, "queued before the crash", KF_U64("i", i));
	kf_span_enter(KF_INFO_SPAN("keyforge::worker", "job_execution", KF_U64("job_id", 42),
				   KF_STR("worker_id", "w\"1"), KF_BOOL("retry", 0)));
	/* a real fault, on a page we may not touch (not NULL: UBSan would
	 * stop the child before the fault) */
	volatile int *forbidden = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	*forbidden = 1;
}

static void test_fatal_segv_writes_queue_and_panic(void **state)
{
	(void)state;
	int status = run_child(body_segv);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSEGV);
	assert_int_equal(cap_count_lines(child_out), 4);
	for (int i = 0; i < 3; i++) {
		struct tj *v = parse_line(child_out, (size_t)i);
		assert_tj_num(v, "fields.i", i);
		tj_free(v);
	}
	struct tj *v = parse_line(child_out, 3);
	assert_int_equal(v->n, 6);
	assert_int_equal(tj_get(v, "timestamp")->len, 27);
	assert_tj_str(v, "level", "ERROR");
	assert_tj_str(v, "target", "keyforge-worker");
	assert_tj_str(v, "fields.message", "worker panic");
	assert_tj_str(v, "fields.signal", "SIGSEGV");
	assert_tj_str(v, "span.name", "job_execution");
	assert_tj_num(v, "span.job_id", 42);
	assert_tj_str(v, "span.worker_id", "w\"1");
	assert_false(tj_path(v, "span.retry")->b);
	assert_tj_str(v, "spans.0.name", "job_execution");
	tj_free(v);
}

static void body_abort(int fd)
{
	child_init(fd, KF_LOG_MODE_THREAD, KF_LOG_FORMAT_HUMAN);
	if (kf_log_install_fatal_handler(NULL) != KF_OK)
		_exit(97);
	KF_INFO(TGT, "last words");
	abort();
}

static void test_fatal_abort_human(void **state)
{
	(void)state;
	int status = run_child(body_abort);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGABRT);
	assert_int_equal(cap_count_lines(child_out), 2);
	assert_non_null(strstr(cap_line(child_out, 0), " INFO keyforge::test: last words"));
	const char *panic = cap_line(child_out, 1);
	assert_string_equal(panic + 27, " ERROR keyforge-worker: fatal signal signal=\"SIGABRT\"");
}

/* ---- sinks -------------------------------------------------------------------- */

static void sink_a(void *ctx, const struct kf_log_record *r)
{
	(void)ctx;
	(void)r;
}

static unsigned reentered;

static void sink_that_logs(void *ctx, const struct kf_log_record *r)
{
	rec_sink(ctx, r);
	KF_ERROR(TGT, "from inside a sink"); /* discarded */
	reentered++;
}

static void test_sinks(void **state)
{
	(void)state;
	static struct rec rec;
	static int dummies[3];
	start(KF_LOG_MODE_SYNC, KF_LOG_FORMAT_JSON, 0);
	assert_int_equal(kf_log_sink_add(sink_that_logs, &rec), KF_OK);
	assert_int_equal(kf_log_sink_add(sink_that_logs, &rec), KF_EEXIST);
	for (int i = 0; i < 3; i++)
		assert_int_equal(kf_log_sink_add(sink_a, &dummies[i]), KF_OK);
	assert_int_equal(kf_log_sink_add(sink_a, NULL), KF_EFULL);

	char worker[] = "w-7";
	KF_INFO(TGT, "job completed", KF_U64("job_id", 9), KF_STR("worker", worker));
	struct kf_field dyn[] = { KF_I64("delta", -1) };
	kf_log_event(KF_LEVEL_WARN, "relay::target", "relayed", dyn, 1);
	kf_log_event(KF_LEVEL_TRACE, "relay::target", "filtered", dyn, 1);
	assert_int_equal(rec.n, 2);
	assert_int_equal(reentered, 2);
	assert_string_equal(rec.ev[0].message, "job completed");
	assert_int_equal(rec.ev[0].level, KF_LEVEL_INFO);
	assert_int_equal(rec.ev[0].fields[1].len, 3); /* measured for the sink */
	assert_string_equal(rec_field(&rec.ev[0], "worker")->v.str, "w-7");
	assert_string_equal(rec.ev[1].target, "relay::target");
	assert_int_equal(rec_field(&rec.ev[1], "delta")->v.i64, -1);
	/* the output saw the same two events, not the one from inside the sink */
	assert_int_equal(cap_count_lines(cap_read(out_fd)), 2);

	assert_int_equal(kf_log_sink_remove(sink_that_logs, &rec), KF_OK);
	assert_int_equal(kf_log_sink_remove(sink_that_logs, &rec), KF_ENOENT);
	for (int i = 0; i < 3; i++)
		assert_int_equal(kf_log_sink_remove(sink_a, &dummies[i]), KF_OK);
	KF_INFO(TGT, "after removal");
	assert_int_equal(rec.n, 2);
	stop();
}

/* ---- initialisation ------------------------------------------------------------- */

static void test_init_errors(void **state)
{
	(void)state;
	assert_int_equal(kf_log_set_filter("info"), KF_ESTATE);
	assert_int_equal(kf_log_install_fatal_handler("x"), KF_ESTATE);
	assert_int_equal(kf_log_init(NULL), KF_EINVAL);
	struct kf_log_options o = KF_LOG_OPTIONS_INIT;
	o.format = (enum kf_log_format)7;
	assert_int_equal(kf_log_init(&o), KF_EINVAL);
	o = (struct kf_log_options)KF_LOG_OPTIONS_INIT;
	o.fd = -2;
	assert_int_equal(kf_log_init(&o), KF_EINVAL);
	start(KF_LOG_MODE_SYNC, KF_LOG_FORMAT_HUMAN, 0);
	o = (struct kf_log_options)KF_LOG_OPTIONS_INIT;
	assert_int_equal(kf_log_init(&o), KF_ESTATE);
	stop();
	kf_log_shutdown(); /* twice is harmless */
}

/* kf_log_init_from_env with stderr redirected into a memfd. */
static const char *init_from_env(const char *filter, const char *format)
{
	int cap = cap_open(), saved = dup(2);
	dup2(cap, 2);
	setenv("KEYFORGE_LOG", filter, 1);
	setenv("KEYFORGE_LOG_FORMAT", format, 1);
	setenv("NO_COLOR", "1", 1);
	assert_int_equal(kf_log_init_from_env("keyforge-test"), KF_OK);
	KF_WARN(TGT, "job retrying", KF_U64("attempt", 2));
	KF_INFO(TGT, "below the filter");
	kf_log_shutdown();
	dup2(saved, 2);
	close(saved);
	unsetenv("KEYFORGE_LOG");
	unsetenv("KEYFORGE_LOG_FORMAT");
	unsetenv("NO_COLOR");
	const char *out = cap_read(cap);
	close(cap);
	return out;
}

static void test_init_from_env(void **state)
{
	(void)state;
	const char *out = init_from_env("warn,bad=x", "yaml");
	assert_string_equal(cap_line(out, 0), "keyforge-test: KEYFORGE_LOG_FORMAT: unknown format "
					      "'yaml' (use human or json); using human");
	assert_string_equal(cap_line(out, 1), "keyforge-test: KEYFORGE_LOG: ignoring invalid "
					      "directive 'bad=x': unknown level (use off, error, "
					      "warn, info, debug or trace)");
	assert_string_equal(cap_line(out, 2) + 27, "  WARN keyforge::test: job retrying attempt=2");
	assert_int_equal(cap_count_lines(out), 3);

	out = init_from_env("", "JSON");
	assert_int_equal(cap_count_lines(out), 2); /* empty filter: info */
	struct tj *v = parse_line(out, 0);
	assert_tj_str(v, "fields.message", "job retrying");
	tj_free(v);
	v = parse_line(out, 1);
	assert_tj_str(v, "fields.message", "below the filter");
	tj_free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_overflow_counts_and_warns),
		cmocka_unit_test(test_overflow_warning_human_text),
		cmocka_unit_test(test_long_line_goes_through),
		cmocka_unit_test(test_two_producers_thread_mode),
		cmocka_unit_test(test_quiet_writer_idles),
		cmocka_unit_test(test_shutdown_flushes),
		cmocka_unit_test(test_exit_flushes),
		cmocka_unit_test(test_fatal_segv_writes_queue_and_panic),
		cmocka_unit_test(test_fatal_abort_human),
		cmocka_unit_test(test_sinks),
		cmocka_unit_test(test_init_errors),
		cmocka_unit_test(test_init_from_env),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
