/* Unit tests for common/: the error table and the clocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/err.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strerror_known_codes),
		cmocka_unit_test(test_strerror_unknown_code),
		cmocka_unit_test(test_clocks_advance),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
