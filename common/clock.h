/*
 * clock.h — time sources, injectable where timing matters in tests.
 */
#ifndef KF_COMMON_CLOCK_H
#define KF_COMMON_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#define KF_NS_PER_MS 1000000ull
#define KF_NS_PER_S 1000000000ull

/* Nanoseconds since the Unix epoch (CLOCK_REALTIME). Thread-safe. */
uint64_t kf_clock_wall_ns(void);

/* Nanoseconds from an arbitrary fixed point (CLOCK_MONOTONIC). Thread-safe. */
uint64_t kf_clock_mono_ns(void);

/* A CLOCK_MONOTONIC instant in ns (kf_clock_mono_ns() + a wait) as the
 * absolute timespec that pthread_cond_timedwait expects from a condition
 * variable set to CLOCK_MONOTONIC (pthread_condattr_setclock). A deadline
 * already past makes the wait return at once. */
struct timespec kf_clock_mono_timespec(uint64_t mono_ns);

/* pthread_cond_init with CLOCK_MONOTONIC, for kf_clock_mono_timespec
 * deadlines; pthread_cond_init's result. */
int kf_clock_mono_cond_init(pthread_cond_t *cv);

/* Sleeps ms milliseconds (a signal may end it early). */
void kf_sleep_ms(uint32_t ms);

/* A doubling back-off: min_ms·2^(n−1) capped at max_ms, for the n-th
 * failure in a row (n = 0 counts as 1). Callers add their own jitter. */
uint32_t kf_backoff_ms(uint32_t n, uint32_t min_ms, uint32_t max_ms);

#endif
