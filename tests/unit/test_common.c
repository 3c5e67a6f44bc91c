/* Unit tests for common/: the error table and the clocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cliopt.h"
#include "common/clock.h"
#include "common/daemon.h"
#include "common/err.h"
#include "common/io.h"
#include "common/json.h"
#include "common/parse.h"
#include "common/regex_guard.h"
#include "common/strbuf.h"
#include "common/thread.h"

static void test_strerror_known_codes(void **state)
{
	(void)state;
	assert_string_equal(kf_strerror(KF_OK), "success");
	assert_string_equal(kf_strerror(KF_ETRUNCATED), "message truncated");
	assert_string_equal(kf_errname(KF_ETOODEEP), "KF_ETOODEEP");
}

static void test_strerror_unknown_code(void **state)
{
	(void)state;
	assert_string_equal(kf_strerror((enum kf_err)99999), "unknown error");
	assert_string_equal(kf_errname((enum kf_err)99999), "KF_EUNKNOWN");
}

static void test_clocks_advance(void **state)
{
	(void)state;
	uint64_t m0 = kf_clock_mono_ns(), m1 = kf_clock_mono_ns();
	assert_true(m1 >= m0);
	/* After 2020-01-01 and before 2100-01-01. */
	uint64_t w = kf_clock_wall_ns();
	assert_true(w > 1577836800ull * 1000000000ull);
	assert_true(w < 4102444800ull * 1000000000ull);
}

static void test_strbuf_grows_and_formats(void **state)
{
	(void)state;
	struct kf_strbuf sb = KF_STRBUF_INIT;
	assert_string_equal(sb.buf, "");
	for (int i = 0; i < 1000; i++)
		kf_strbuf_addf(&sb, "%d,", i % 10);
	assert_int_equal(sb.len, 2000);
	assert_memory_equal(sb.buf + 1990, "5,6,7,8,9,", 10);
	assert_false(sb.oom);
	kf_strbuf_release(&sb);
	assert_int_equal(sb.len, 0);
}

static void test_json_string_escaping(void **state)
{
	(void)state;
	struct kf_strbuf sb = KF_STRBUF_INIT;
	kf_json_add_string(&sb, "a\"b\\c\n\x01\0z", 9);
	assert_string_equal(sb.buf, "\"a\\\"b\\\\c\\n\\u0001\\u0000z\"");
	kf_strbuf_reset(&sb);
	/* Valid UTF-8 is copied, an invalid byte becomes U+FFFD. */
	kf_json_add_cstr(&sb, "\xe2\x87\x91\xff");
	assert_string_equal(sb.buf, "\"\xe2\x87\x91\xef\xbf\xbd\"");
	kf_strbuf_release(&sb);
}

static void test_json_double_shortest(void **state)
{
	(void)state;
	struct kf_strbuf sb = KF_STRBUF_INIT;
	kf_json_add_double(&sb, 0.1);
	kf_strbuf_addch(&sb, ' ');
	kf_json_add_double(&sb, 1.0 / 3.0);
	kf_strbuf_addch(&sb, ' ');
	kf_json_add_double(&sb, 1.0 / 0.0);
	kf_strbuf_addch(&sb, ' ');
	kf_json_add_double(&sb, 10.0);
	kf_strbuf_addch(&sb, ' ');
	kf_json_add_double(&sb, -2.5e-7);
	kf_strbuf_addch(&sb, ' ');
	kf_json_add_double(&sb, 1e300);
	assert_string_equal(sb.buf, "0.1 0.3333333333333333 null 10 -2.5e-07 1e+300");
	kf_strbuf_release(&sb);
}

/* The reference: the first precision, scanning up, whose text reads back. */
static void linear_shortest(char *out, size_t cap, double v)
{
	double mag = fabs(v);
	int plain = mag == 0 || (mag >= 1e-4 && mag < 1e16);
	for (int p = plain ? 0 : 1; p <= (plain ? 20 : 17); p++) {
		snprintf(out, cap, plain ? "%.*f" : "%.*g", p, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

static void test_json_double_matches_linear_scan(void **state)
{
	(void)state;
	struct kf_strbuf sb = KF_STRBUF_INIT;
	char want[64];
	uint64_t x = 0x9E3779B97F4A7C15ull;
	/* Exact ties at the 17th digit (printf rounds them to even), short
	 * decimals, powers of two (left to printf), values next to powers
	 * of ten. */
	static const double fixed[] = { 12345678901234.0625, 1234567890123.03125, -0.00078125,
		0.125, 1234.5, 0.001, 8.0, 0.0625, 4096.0, 1e-3, 1e13, 99.99999999999999,
		100.00000000000001, 0.0001000000000000001 };
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
		kf_strbuf_reset(&sb);
		kf_json_add_double(&sb, fixed[i]);
		linear_shortest(want, sizeof want, fixed[i]);
		if (strcmp(sb.buf, want) != 0)
			fail_msg("%.17g: got %s, want %s", fixed[i], sb.buf, want);
	}
	for (int i = 0; i < 300000; i++) {
		/* splitmix64: random bit patterns, then a few everyday ranges */
		x += 0x9E3779B97F4A7C15ull;
		uint64_t z = x;
		z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
		z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
		z ^= z >> 31;
		double v;
		if (i % 3 == 1) {
			memcpy(&v, &z, sizeof v);
			if (!isfinite(v))
				continue;
		} else if (i % 3 == 2) {
			/* Anywhere in [1e-4, 1e14), either sign: the range
			 * formatted in integers (common/json.c). */
			v = pow(10, (double)(z >> 11) / 9007199254740992.0 * 18 - 4);
			v = z & 1 ? -v : v;
		} else {
			v = (double)(z >> 11) / 9007199254740992.0 * pow(10, (int)(z % 13) - 4);
		}
		if (i < 24) {
			/* The edges of the three-format range, from either side. */
			static const double edges[] = { 1e-4, 1e14, 99999999999999.99, 1e15, 9.999999999999999e14,
				0.00009999999999999999, 9.999999999999999e-5, 0.1 + 0.2 };
			v = i % 3 == 1 ? edges[i / 3] : nextafter(edges[i / 3], i % 3 ? INFINITY : -INFINITY);
		}
		kf_strbuf_reset(&sb);
		kf_json_add_double(&sb, v);
		linear_shortest(want, sizeof want, v);
		if (strcmp(sb.buf, want) != 0)
			fail_msg("%.17g: got %s, want %s", v, sb.buf, want);
		assert_true(strtod(sb.buf, NULL) == v);
	}
	kf_strbuf_release(&sb);
}

static void test_utf8_validation(void **state)
{
	(void)state;
	assert_true(kf_utf8_valid("plain", 5));
	assert_true(kf_utf8_valid("\xf0\x9f\x98\x80", 4));
	assert_false(kf_utf8_valid("\xc0\xaf", 2));     /* overlong */
	assert_false(kf_utf8_valid("\xed\xa0\x80", 3)); /* surrogate */
	assert_false(kf_utf8_valid("\xe2\x87", 2));     /* truncated */
}

static void test_parse_u32_bounds_and_errors(void **state)
{
	(void)state;
	struct kf_strbuf msg = KF_STRBUF_INIT;
	uint32_t v = 0;
	assert_int_equal(kf_parse_u32("42", 1, 100, "--n", &v, &msg), KF_OK);
	assert_int_equal(v, 42);
	assert_int_equal(kf_parse_u32("101", 1, 100, "--n", &v, &msg), KF_EINVAL);
	assert_string_equal(msg.buf, "--n: '101' is not a number from 1 to 100");
	assert_int_equal(kf_parse_u32("-1", 0, 100, "--n", &v, &msg), KF_EINVAL);
	assert_int_equal(kf_parse_u32("", 0, 100, "--n", &v, &msg), KF_EINVAL);
	assert_int_equal(kf_parse_u32("7x", 0, 100, "--n", &v, &msg), KF_EINVAL);
	assert_int_equal(kf_parse_u32("99999999999999999999", 0, 100, "--n", &v, &msg), KF_EINVAL);
	assert_int_equal(v, 42);
	kf_strbuf_release(&msg);
}

static void test_parse_duration(void **state)
{
	static const uint64_t S = 1000000000ull, DAY = 86400 * S;
	static const struct {
		const char *text;
		uint64_t bare, max, want;
	} ok[] = {
		{ "0", S, DAY, 0 },
		{ "90", S, DAY, 90 * S },
		{ "7", 1000000, DAY, 7000000 },          /* bare unit other than s */
		{ "2s", S, DAY, 2 * S },
		{ "250ms", S, DAY, 250000000 },
		{ "1.5m", S, DAY, 90 * S },
		{ "2h", S, DAY, 7200 * S },
		{ ".5s", S, DAY, S / 2 },
		{ "5.", S, DAY, 5 * S },
		{ "0.5", S, DAY, S / 2 },
		{ "0.0000000004", S, DAY, 0 },          /* rounded to the nearest ns */
		{ "0.0000000006", S, DAY, 1 },
		{ "24h", S, DAY, DAY },                  /* the maximum itself */
		{ "18446744073", S, UINT64_MAX, 18446744073 * S },
	};
	static const char *const bad[] = {
		"", ".", "s", "-1", "+5", " 1s", "1 s", "1s ", "5x", "1d", "m5", "1.2.3",
		"inf", "nan", "0x10", "1e3", "1e400", "25h", "86400.001",
		"1000000000000000000000000000000000000000000000000000000000000000000000",
	};
	uint64_t ns;

	(void)state;
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		ns = 12345;
		if (!kf_parse_duration_ns(ok[i].text, ok[i].bare, ok[i].max, &ns) || ns != ok[i].want)
			fail_msg("'%s': want %llu ns, got %llu", ok[i].text,
				 (unsigned long long)ok[i].want, (unsigned long long)ns);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ns = 12345;
		if (kf_parse_duration_ns(bad[i], S, DAY, &ns) || ns != 12345)
			fail_msg("'%s' was taken as %llu ns", bad[i], (unsigned long long)ns);
	}
	/* Just past the largest uint64: refused, not wrapped. */
	assert_false(kf_parse_duration_ns("18446744074", S, UINT64_MAX, &ns));
}

static void test_parse_ms(void **state)
{
	struct kf_strbuf msg = KF_STRBUF_INIT;
	uint32_t ms = 7;

	(void)state;
	assert_int_equal(kf_parse_ms("250", 0, 1000, "--w", &ms, &msg), KF_OK);
	assert_int_equal(ms, 250); /* bare: milliseconds */
	assert_int_equal(kf_parse_ms("0.5s", 0, 1000, "--w", &ms, &msg), KF_OK);
	assert_int_equal(ms, 500);
	assert_int_equal(kf_parse_ms("1s", 0, 1000, "--w", &ms, &msg), KF_OK);
	assert_int_equal(ms, 1000);
	assert_int_equal(kf_parse_ms("0.4", 1, 1000, "--w", &ms, &msg), KF_EINVAL); /* 0 < lo */
	assert_int_equal(kf_parse_ms("1001ms", 0, 1000, "--w", &ms, &msg), KF_EINVAL);
	assert_int_equal(ms, 1000);
	kf_strbuf_reset(&msg);
	assert_int_equal(kf_parse_ms("2x", 0, 1000, "--w", &ms, &msg), KF_EINVAL);
	assert_string_equal(msg.buf, "--w: '2x' is not a duration from 0 ms to 1000 ms "
				     "(e.g. 250, 250ms, 30s)");
	kf_strbuf_release(&msg);
}

/* kf_read_text: a whole small file, a file cut to the buffer, no file. */
static void test_read_text(void **state)
{
	(void)state;
	char path[] = "/tmp/kf-test-read-XXXXXX", buf[16];
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_true(kf_write_all(fd, "0123456789", 10));
	close(fd);
	assert_true(kf_read_text(path, buf, sizeof buf));
	assert_string_equal(buf, "0123456789");
	assert_true(kf_read_text(path, buf, 8));
	assert_string_equal(buf, "0123456");
	unlink(path);
	assert_false(kf_read_text(path, buf, sizeof buf));
	/* /proc files report size 0: read anyway, up to the buffer. */
	assert_true(kf_read_text("/proc/self/stat", buf, sizeof buf));
	assert_int_equal(strlen(buf), sizeof buf - 1);
}

static void test_write_all_through_a_pipe(void **state)
{
	(void)state;
	int fds[2];
	char big[100000], back[100000];
	assert_int_equal(pipe(fds), 0);
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (char)(i * 7);
	/* More than a pipe holds at once: the reader runs in a child. */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		_exit(kf_write_all(fds[1], big, sizeof big) ? 0 : 1);
	}
	close(fds[1]);
	size_t got = 0;
	ssize_t n;
	while ((n = read(fds[0], back + got, sizeof back - got)) > 0)
		got += (size_t)n;
	close(fds[0]);
	int status;
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(got, sizeof big);
	assert_memory_equal(back, big, sizeof big);
	/* A closed descriptor fails instead of looping. */
	assert_false(kf_write_all(-1, "x", 1));
}

static enum kf_err record_opt(void *ctx, int opt, const char *arg, struct kf_strbuf *msg)
{
	struct kf_strbuf *seen = ctx;
	if (opt == 'f' && !strcmp(arg, "bad")) {
		kf_strbuf_addstr(msg, "--file: bad");
		return KF_EINVAL;
	}
	kf_strbuf_addf(seen, "%c=%s;", opt, arg ? arg : "-");
	return KF_OK;
}

static enum kf_err run_cliopt(struct kf_strbuf *seen, struct kf_strbuf *msg, int *special,
			      int argc, char **argv)
{
	static const struct option opts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	kf_strbuf_reset(seen);
	kf_strbuf_reset(msg);
	return kf_cliopt_parse(argc, argv, opts, record_opt, seen, special, msg);
}

static void test_cliopt_parse(void **state)
{
	(void)state;
	struct kf_strbuf seen = KF_STRBUF_INIT, msg = KF_STRBUF_INIT;
	int special = -1;
	char *ok[] = { "prog", "--file", "a", "--quiet", "--file=b", NULL };
	assert_int_equal(run_cliopt(&seen, &msg, &special, 5, ok), KF_OK);
	assert_string_equal(seen.buf, "f=a;q=-;f=b;");
	assert_int_equal(special, 0);

	char *help[] = { "prog", "--quiet", "--help", "--bogus", NULL };
	assert_int_equal(run_cliopt(&seen, &msg, &special, 4, help), KF_OK);
	assert_int_equal(special, 'h');

	char *unknown[] = { "prog", "--bogus", NULL };
	assert_int_equal(run_cliopt(&seen, &msg, &special, 2, unknown), KF_EINVAL);
	assert_string_equal(msg.buf, "unknown option '--bogus'; see --help");

	char *missing[] = { "prog", "--file", NULL };
	assert_int_equal(run_cliopt(&seen, &msg, &special, 2, missing), KF_EINVAL);
	assert_string_equal(msg.buf, "missing value for option '--file'; see --help");

	char *operand[] = { "prog", "--quiet", "stray", NULL };
	assert_int_equal(run_cliopt(&seen, &msg, &special, 3, operand), KF_EINVAL);
	assert_string_equal(msg.buf, "unexpected argument 'stray'; see --help");

	char *refused[] = { "prog", "--file", "bad", "--quiet", NULL };
	assert_int_equal(run_cliopt(&seen, &msg, &special, 4, refused), KF_EINVAL);
	assert_string_equal(msg.buf, "--file: bad");
	assert_string_equal(seen.buf, "");
	kf_strbuf_release(&seen);
	kf_strbuf_release(&msg);
}

static void test_random_nonzero_and_varied(void **state)
{
	(void)state;
	uint64_t a = kf_random_u64_nonzero(), b = kf_random_u64_nonzero();
	assert_true(a != 0 && b != 0);
	assert_true(a != b); /* 2^-64 chance of a false failure */
}

static void test_hex_digit(void **state)
{
	(void)state;
	assert_int_equal(kf_hex_digit('0'), 0);
	assert_int_equal(kf_hex_digit('9'), 9);
	assert_int_equal(kf_hex_digit('a'), 10);
	assert_int_equal(kf_hex_digit('F'), 15);
	assert_int_equal(kf_hex_digit('g'), -1);
	assert_int_equal(kf_hex_digit('/'), -1);
	assert_int_equal(kf_hex_digit(-61), -1); /* a byte >= 0x80 as a signed char */
}

static void test_text_has_control(void **state)
{
	(void)state;
	assert_false(kf_text_has_control(""));
	assert_false(kf_text_has_control("nightly/2026-11-29 ~ \xc3\xa9"));  /* UTF-8 is text */
	assert_true(kf_text_has_control("a\tb"));
	assert_true(kf_text_has_control("\x1f"));
	assert_true(kf_text_has_control("end\x7f"));
}

static void test_mono_timespec(void **state)
{
	(void)state;
	struct timespec ts = kf_clock_mono_timespec(3999999999ull);
	assert_int_equal(ts.tv_sec, 3);
	assert_int_equal(ts.tv_nsec, 999999999);
}

static void test_backoff(void **state)
{
	(void)state;
	assert_int_equal(kf_backoff_ms(0, 100, 2000), 100);
	assert_int_equal(kf_backoff_ms(1, 100, 2000), 100);
	assert_int_equal(kf_backoff_ms(2, 100, 2000), 200);
	assert_int_equal(kf_backoff_ms(5, 100, 2000), 1600);
	assert_int_equal(kf_backoff_ms(6, 100, 2000), 2000);     /* 3200 capped */
	assert_int_equal(kf_backoff_ms(UINT32_MAX, 100, 2000), 2000);
	assert_int_equal(kf_backoff_ms(40, 3000000000u, UINT32_MAX), UINT32_MAX); /* no wrap */
	assert_int_equal(kf_backoff_ms(3, 500, 100), 100);       /* min above max */
}

/* /proc/PID/cgroup as cgroup v1 (hybrid), v2 alone, and malformed: the cpu
 * hierarchy's path, which kf_thread_in_autogroup compares with "/". */
static void test_cgroup_cpu_path(void **state)
{
	char p[64];
	bool v2;

	(void)state;
	/* v1: the line whose controller list holds the word "cpu" wins over
	 * cpuacct alone and over v2's "0::" line. */
	assert_true(kf_cgroup_cpu_path("4:memory:/x\n2:cpuacct:/y\n1:cpu:/keyforge-hive-7402\n0::/\n",
				       p, sizeof p, &v2));
	assert_string_equal(p, "/keyforge-hive-7402");
	assert_false(v2);
	assert_true(kf_cgroup_cpu_path("3:cpu,cpuacct:/\n0::/user.slice\n", p, sizeof p, &v2));
	assert_string_equal(p, "/");
	assert_false(v2);
	/* v2 alone; no newline at the end. */
	assert_true(kf_cgroup_cpu_path("0::/system.slice/pg.service", p, sizeof p, &v2));
	assert_string_equal(p, "/system.slice/pg.service");
	assert_true(v2);
	/* Neither hierarchy, an empty path, a path that does not fit. */
	assert_false(kf_cgroup_cpu_path("2:cpuacct:/\n9:name=systemd:/\n", p, sizeof p, &v2));
	assert_false(kf_cgroup_cpu_path("1:cpu:\n", p, sizeof p, &v2));
	assert_false(kf_cgroup_cpu_path("", p, sizeof p, &v2));
	assert_false(kf_cgroup_cpu_path("garbage without colons", p, sizeof p, &v2));
	assert_false(kf_cgroup_cpu_path("1:cpu:/0123456789", p, 8, &v2));
	assert_true(kf_cgroup_cpu_path("1:cpu:/012345", p, 8, &v2));
	assert_string_equal(p, "/012345");
}

/* ---- regex ----------------------------------------------------------------- */

static bool compiles(const char *pattern, char *why, size_t why_len)
{
	regex_t re;

	if (!kf_regex_compile(&re, pattern, why, why_len))
		return false;
	regfree(&re);
	return true;
}

static long cost_of(const char *pattern)
{
	long cost = -1;

	assert_int_equal(kf_regex_check(pattern, &cost), KF_REGEX_FINE);
	return cost;
}

/* Patterns people filter logs with compile; the kinds glibc can spend
 * seconds or minutes on are refused with a reason, before regcomp sees
 * them (regex_guard.h has the times measured for the kinds). */
static void test_regex_guard(void **state)
{
	char why[160];
	uint64_t t0;

	(void)state;
	assert_true(compiles("job (failed|retrying)", why, sizeof why));
	assert_true(compiles("^[0-9:.]+ WARN .*rate limit", why, sizeof why));
	assert_true(compiles("worker_id=w[0-9]{1,3}", why, sizeof why));
	assert_true(compiles("[\\1]x", why, sizeof why));         /* in brackets: no reference */
	assert_true(compiles("a\\.b\\\\c", why, sizeof why));
	assert_true(compiles("(a{1,30}){1,30}", why, sizeof why));  /* 900: allowed */
	assert_true(compiles("(a+)*|(b?)+", why, sizeof why));      /* a group between */

	assert_false(compiles("(.*)(.*)\\2\\1z", why, sizeof why));
	assert_non_null(strstr(why, "back-references"));
	assert_int_equal(kf_regex_check("(a)\\1", NULL), KF_REGEX_BACKREF);

	t0 = kf_clock_mono_ns();
	assert_false(compiles("((a{1,100}){1,100}){1,100}", why, sizeof why));  /* 6.7 s */
	assert_non_null(strstr(why, "expand to more than 1000"));
	assert_false(compiles("\\S++++++++++++++++++++++++++", why, sizeof why)); /* 4 min */
	assert_non_null(strstr(why, "repetition of a repetition"));
	assert_true(kf_clock_mono_ns() - t0 < 1000 * KF_NS_PER_MS);
	assert_int_equal(kf_regex_check("a+?", NULL), KF_REGEX_STACKED);
	assert_int_equal(kf_regex_check("a{2}*", NULL), KF_REGEX_STACKED);
	assert_int_equal(kf_regex_check("(a|b|c){1,1000}", NULL), KF_REGEX_COSTLY);
	assert_int_equal(kf_regex_check("x{99999999999999999999}", NULL), KF_REGEX_COSTLY);
	assert_int_equal(kf_regex_check("((((((((((a+)+)+)+)+)+)+)+)+)+)+", NULL), KF_REGEX_COSTLY);

	assert_int_equal(cost_of("abc"), 3);
	assert_int_equal(cost_of("a{10}"), 10);
	assert_int_equal(cost_of("a{2,}"), 3);                      /* 2 copies and a star */
	assert_int_equal(cost_of("(ab){3}c"), 7);
	assert_int_equal(cost_of("(a|bc)+"), 6);                    /* x+ is x x* */
	assert_int_equal(cost_of("((a+)+)+"), 8);
	assert_int_equal(cost_of("[a-z]{4}"), 4);
	assert_int_equal(cost_of("[]{}]{4}"), 4);                   /* ']' first is a member */
	assert_int_equal(cost_of("[[:alpha:]]{5}"), 5);
	assert_int_equal(cost_of("a{,3}"), 3);                      /* glibc's {0,3} */
	assert_int_equal(cost_of("a{x}"), 4);                       /* not a bound: literal */
	assert_int_equal(kf_regex_check("(as1,100},104}){,31100}", NULL), KF_REGEX_COSTLY);

	assert_false(compiles("(unclosed", why, sizeof why));       /* regcomp's own word */
	assert_true(strlen(why) > 0);
}

/* A line is matched within its first KF_REGEX_MATCH_MAX bytes, which bounds
 * a search that is quadratic in the line's length. */
static void test_regex_match_bounded(void **state)
{
	char *line = malloc(KF_REGEX_MATCH_MAX + 100);
	char why[160];
	regex_t re;

	(void)state;
	assert_non_null(line);
	assert_true(kf_regex_compile(&re, "needle", why, sizeof why));
	memset(line, 'a', KF_REGEX_MATCH_MAX + 99);
	line[KF_REGEX_MATCH_MAX + 99] = '\0';
	memcpy(line + 10, "needle", 6);
	assert_true(kf_regex_match(&re, line));
	memset(line + 10, 'a', 6);
	memcpy(line + KF_REGEX_MATCH_MAX - 6, "needle", 6);         /* ends at the bound */
	assert_true(kf_regex_match(&re, line));
	memset(line + KF_REGEX_MATCH_MAX - 6, 'a', 6);
	memcpy(line + KF_REGEX_MATCH_MAX + 20, "needle", 6);        /* past it */
	assert_false(kf_regex_match(&re, line));
	assert_false(kf_regex_match(&re, ""));
	regfree(&re);

	/* The bound is not inside a character: "é" (2 bytes) across it is
	 * left out whole, not cut into a byte that matches nothing. */
	assert_true(kf_regex_compile(&re, "a$", why, sizeof why));
	memset(line, 'a', KF_REGEX_MATCH_MAX + 10);
	memcpy(line + KF_REGEX_MATCH_MAX - 1, "\xc3\xa9", 2);
	line[KF_REGEX_MATCH_MAX + 10] = '\0';
	assert_true(kf_regex_match(&re, line));
	regfree(&re);
	free(line);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strerror_known_codes),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_strerror_unknown_code),
		cmocka_unit_test(test_clocks_advance),
		cmocka_unit_test(test_strbuf_grows_and_formats),
		cmocka_unit_test(test_json_string_escaping),
		cmocka_unit_test(test_json_double_shortest),
		cmocka_unit_test(test_utf8_validation),
		cmocka_unit_test(test_json_double_matches_linear_scan),
		cmocka_unit_test(test_parse_u32_bounds_and_errors),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_parse_ms),
		cmocka_unit_test(test_write_all_through_a_pipe),
		cmocka_unit_test(test_read_text),
		cmocka_unit_test(test_cliopt_parse),
		cmocka_unit_test(test_random_nonzero_and_varied),
		cmocka_unit_test(test_hex_digit),
		cmocka_unit_test(test_text_has_control),
		cmocka_unit_test(test_mono_timespec),
		cmocka_unit_test(test_cgroup_cpu_path),
		cmocka_unit_test(test_regex_guard),
		cmocka_unit_test(test_regex_match_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
