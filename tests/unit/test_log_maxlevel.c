/*
 * Compile-time removal: this file is built with KF_MAX_LOG_LEVEL=3 (info),
 * so DEBUG and TRACE macros expand to nothing: their arguments are never
 * evaluated, their strings are not in the executable, and variables used
 * only by them still count as used (this file compiles under -Werror).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "telemetry/log.h"
#include "test_log_util.h"

#if KF_MAX_LOG_LEVEL != 3
#error "test_log_maxlevel must be built with KF_MAX_LOG_LEVEL=3"
#endif

#define TGT "keyforge::test"

static unsigned evaluated;

static uint64_t bump(void)
{
	return ++evaluated;
}

static const char *message(void)
{
	evaluated++;
	return "message";
}

static struct rec rec;

static int setup(void **state)
{
	(void)state;
	struct kf_log_options o = KF_LOG_OPTIONS_INIT;
	o.filter = "trace";
	o.fd = -1;
	o.mode = KF_LOG_MODE_SYNC;
	memset(&rec, 0, sizeof rec);
	evaluated = 0;
	if (kf_log_init(&o) != KF_OK || kf_log_sink_add(rec_sink, &rec) != KF_OK)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	kf_log_sink_remove(rec_sink, &rec);
	kf_log_shutdown();
	return 0;
}

static void test_arguments_not_evaluated(void **state)
{
	(void)state;
	uint64_t only_traced = 5; /* used by TRACE alone: must not warn */
	KF_TRACE(TGT, message(), KF_U64("n", bump()), KF_U64("v", only_traced));
	KF_DEBUG(TGT, message(), KF_U64("n", bump()));
	KF_EVENT(KF_LEVEL_TRACE, TGT, message(), KF_U64("n", bump()));
	assert_int_equal(evaluated, 0);
	assert_int_equal(rec.n, 0);
	KF_INFO(TGT, message(), KF_U64("n", bump()));
	assert_int_equal(evaluated, 2);
	assert_int_equal(rec.n, 1);
	assert_int_equal(rec.ev[0].fields[0].v.u64, 1); /* fields are built before the message */
}

static void test_spans_compiled_out(void **state)
{
	(void)state;
	assert_null(KF_TRACE_SPAN(TGT, message(), KF_U64("n", bump())));
	assert_null(KF_DEBUG_SPAN(TGT, message()));
	assert_int_equal(evaluated, 0);
	struct kf_span *s = KF_INFO_SPAN(TGT, message());
	assert_non_null(s);
	assert_int_equal(evaluated, 1);
	kf_span_close(s);
}

static void marker_sites(void)
{
	KF_TRACE(TGT, "trace-compiled-out-marker-7f3a");
	KF_DEBUG(TGT, "debug-compiled-out-marker-7f3a");
	KF_INFO(TGT, "info-compiled-in-marker-7f3a");
}

/* Whether the reverse of `reversed` occurs in this executable. The needle
 * is built at run time so that it is not itself in the file. */
static bool in_executable(const char *reversed)
{
	volatile char needle[64];
	size_t n = strlen(reversed);
	for (size_t i = 0; i < n; i++)
		needle[i] = reversed[n - 1 - i];
	char plain[64];
	for (size_t i = 0; i < n; i++)
		plain[i] = needle[i];
	FILE *f = fopen("/proc/self/exe", "rb");
	assert_non_null(f);
	static char buf[1 << 24];
	size_t len = fread(buf, 1, sizeof buf, f);
	fclose(f);
	return memmem(buf, len, plain, n) != NULL;
}

static void test_strings_not_in_binary(void **state)
{
	(void)state;
	marker_sites();
	assert_int_equal(rec.n, 1);
	assert_string_equal(rec.ev[0].message, "info-compiled-in-marker-7f3a");
	/* the search works: the INFO message is found (needles are written
	 * reversed here so that they are not themselves in the file) */
	assert_true(in_executable("a3f7-rekram-ni-delipmoc-ofni"));
	assert_false(in_executable("a3f7-rekram-tuo-delipmoc-ecart"));
	assert_false(in_executable("a3f7-rekram-tuo-delipmoc-gubed"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_arguments_not_evaluated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spans_compiled_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_strings_not_in_binary, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
