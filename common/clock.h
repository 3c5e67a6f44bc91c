/*
 * clock.h — time sources, injectable where timing matters in tests.
 */
#ifndef KF_COMMON_CLOCK_H
#define KF_COMMON_CLOCK_H

#include <stdint.h>

/* Nanoseconds since the Unix epoch (CLOCK_REALTIME). Thread-safe. */
uint64_t kf_clock_wall_ns(void);

/* Nanoseconds from an arbitrary fixed point (CLOCK_MONOTONIC). Thread-safe. */
uint64_t kf_clock_mono_ns(void);

#endif
