#include "common/clock.h"

#include <time.h>

static uint64_t clock_read(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t kf_clock_wall_ns(void)
{
	return clock_read(CLOCK_REALTIME);
}

uint64_t kf_clock_mono_ns(void)
{
	return clock_read(CLOCK_MONOTONIC);
}

struct timespec kf_clock_mono_timespec(uint64_t mono_ns)
{
	return (struct timespec){ .tv_sec = (time_t)(mono_ns / 1000000000u),
				  .tv_nsec = (long)(mono_ns % 1000000000u) };
}

int kf_clock_mono_cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t ca;
	int rc;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	rc = pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
	return rc;
}

uint32_t kf_backoff_ms(uint32_t n, uint32_t min_ms, uint32_t max_ms)
{
	uint64_t ms = min_ms;

	for (uint32_t i = 1; i < n && ms < max_ms; i++)
		ms *= 2;
	return ms < max_ms ? (uint32_t)ms : max_ms;
}

void kf_sleep_ms(uint32_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}
