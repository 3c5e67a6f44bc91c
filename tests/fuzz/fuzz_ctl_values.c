/*
 * fuzz_ctl_values.c — libFuzzer target for keyforgectl's readers of flag
 * values (admin/ctl_fmt.c): counts, integers, numbers, durations, job ids
 * and state lists, as typed by people and scripts.
 *
 * Any input is refused (false) or gives a value inside the bounds the caller
 * asked for: a count or id within its maximum, an integer within [min, max],
 * a finite number, a duration of at most 1e15 ms, a non-empty state mask of
 * known states. The conversions from double are where undefined behaviour
 * would hide (UBSan's float-cast-overflow). A violation aborts.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/ctl.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The bounds the commands use: --steps, --limit, --priority, job ids. */
static const uint64_t u64_max[] = { UINT64_MAX, 1000000000000ull, 1000, 0 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = kf_fuzz_text(data, size);
	uint64_t u, ms;
	int64_t i;
	uint32_t mask;
	double d;

	if (!text)
		return 0;
	for (size_t k = 0; k < sizeof u64_max / sizeof u64_max[0]; k++) {
		if (kf__ctl_parse_u64(text, u64_max[k], &u))
			CHECK(u <= u64_max[k], "u64 above its maximum");
		if (kf__ctl_parse_count(text, u64_max[k], &u))
			CHECK(u <= u64_max[k], "count above its maximum");
	}
	if (kf__ctl_parse_i64(text, -1000, 1000, &i))
		CHECK(i >= -1000 && i <= 1000, "i64 outside [min, max]");
	/* Unsigned text ("-0" and "+7" are integers, not counts): both agree. */
	if (kf__ctl_parse_i64(text, INT64_MIN, INT64_MAX, &i) && text[0] >= '0' && text[0] <= '9')
		CHECK(kf__ctl_parse_u64(text, UINT64_MAX, &u) && u == (uint64_t)i,
		      "an unsigned integer read differently as u64 and i64");
	if (kf__ctl_parse_double(text, &d))
		CHECK(isfinite(d), "a number that is not finite");
	if (kf__ctl_parse_duration_ms(text, &ms))
		CHECK(ms <= (uint64_t)INT64_MAX / 1000000, "a duration beyond the broker's limit");
	if (kf__ctl_parse_job_id(text, &u))
		CHECK(u >= 1 && u <= (uint64_t)INT64_MAX, "a job id out of range");
	if (kf__ctl_parse_states(text, &mask))
		CHECK(mask != 0 && !(mask & ~((1u << KF_JOB_STATE_COUNT) - 1)),
		      "a state mask with no state or an unknown one");
	free(text);
	return 0;
}
