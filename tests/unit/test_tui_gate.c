/*
 * test_tui_gate.c — keyforge-admin's retry gate (admin/tui.h,
 * kf__tui_may_call): after an RPC that got no answer, no refresh goes out
 * for RETRY_MS, also when the time it is asked with was read before that
 * RPC (a turn reads the clock once, then calls); before, `now - tried`
 * wrapped round there and let the turn's next calls through, each blocking
 * the keys for another second. No curses, no sockets: suite 'unit'.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "admin/tui.h"

#define MS 1000000ull
#define RETRY (2000 * MS)          /* tui_data.c's RETRY_MS */
#define T 5000000000000ull         /* a monotonic time, ns */

static void test_elapsed_never_wraps(void **state)
{
	(void)state;
	assert_int_equal(kf__tui_elapsed_ns(T, T + 7), 7);
	assert_int_equal(kf__tui_elapsed_ns(T, T), 0);
	assert_int_equal(kf__tui_elapsed_ns(T + 1, T), 0);  /* read before: no time */
	assert_int_equal(kf__tui_elapsed_ns(0, UINT64_MAX), UINT64_MAX);
	assert_int_equal(kf__tui_elapsed_ns(UINT64_MAX, 0), 0);
}

/* A broker that answers (or refuses) is asked whenever a refresh is due. */
static void test_open_while_answered(void **state)
{
	(void)state;
	assert_true(kf__tui_may_call(false, 0, 0, RETRY));
	assert_true(kf__tui_may_call(false, T, T, RETRY));
	assert_true(kf__tui_may_call(false, T + MS, T, RETRY));
}

/* The last call got no answer: shut for RETRY from when it was tried. */
static void test_shut_for_retry_after_no_answer(void **state)
{
	(void)state;
	assert_false(kf__tui_may_call(true, T, T, RETRY));
	/* the next call of the same turn, or a key's, after its 1 s timeout */
	assert_false(kf__tui_may_call(true, T, T + 1000 * MS, RETRY));
	assert_false(kf__tui_may_call(true, T, T + RETRY - 1, RETRY));
	assert_true(kf__tui_may_call(true, T, T + RETRY, RETRY));
	assert_true(kf__tui_may_call(true, T, T + 60000 * MS, RETRY));
	/* the first call of a program, at a monotonic time under RETRY */
	assert_false(kf__tui_may_call(true, 0, RETRY - 1, RETRY));
}

/* The turn read `now` before its cluster call was tried and failed: the
 * turn's list and detail ask with that older time, and stay shut. */
static void test_shut_for_a_time_read_before_the_try(void **state)
{
	(void)state;
	assert_false(kf__tui_may_call(true, T, T - 1, RETRY));
	assert_false(kf__tui_may_call(true, T, T - 3 * MS, RETRY));
	assert_false(kf__tui_may_call(true, T, 0, RETRY));
	assert_false(kf__tui_may_call(true, UINT64_MAX, 0, RETRY));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_elapsed_never_wraps),
		cmocka_unit_test(test_open_while_answered),
		cmocka_unit_test(test_shut_for_retry_after_no_answer),
		cmocka_unit_test(test_shut_for_a_time_read_before_the_try),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
