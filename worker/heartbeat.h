/*
 * worker/heartbeat.h — the machine figures a heartbeat carries: CPU load of
 * the process and of the host, resident memory (DESIGN.md §3, §7 Cluster Map).
 *
 * Loads are rates, so they come from two samples: the sampler keeps the
 * previous one and each kf__load_sample() call returns the load over the
 * interval since the previous call (the first call: since
 * kf__load_sampler_init), measured over at least KF__LOAD_MIN_INTERVAL_MS.
 *
 * The parsers and the arithmetic are pure functions of text and numbers so
 * that the unit tests feed them fixed /proc contents. Thread-safety: the
 * pure functions are reentrant; a struct kf__load_sampler has one owner
 * (the telemetry thread).
 */
#ifndef KF_WORKER_HEARTBEAT_H
#define KF_WORKER_HEARTBEAT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

/* The aggregate "cpu " line of /proc/stat, in clock ticks. */
struct kf__host_cpu {
	uint64_t busy;   /* user + nice + system + irq + softirq + steal */
	uint64_t total;  /* busy + idle + iowait */
};

/*
 * Parses the first line of /proc/stat text ("cpu  user nice system idle
 * iowait irq softirq steal guest guest_nice"; kernels before 2.6.11 print
 * fewer columns, missing ones count 0; guest time is already inside user
 * and is not added again). KF_EINVAL when the text does not start with such
 * a line (at least four numbers).
 */
enum kf_err kf__parse_host_cpu(const char *text, struct kf__host_cpu *out);

/* Busy fraction of the host between two samples, 0..1; 0 when no tick
 * passed or the counters went backwards (a wrapped or reset counter). */
double kf__host_load(const struct kf__host_cpu *prev, const struct kf__host_cpu *cur);

/* Cores used by the process between two readings of its CPU seconds taken
 * wall_ns apart: 0..N; 0 when no time passed or the counter went back. */
double kf__process_load(double prev_cpu_s, double cur_cpu_s, uint64_t wall_ns);

/* The shortest interval a load is measured over. The kernel counts CPU
 * time in ticks of 10 ms (USER_HZ 100): over 5 ms one tick more or less
 * reads as 0 or 2 cores for one busy thread. A sample sooner than this after
 * the one that set the baseline (the heartbeat right after a hello, at any
 * point between two ticks of 1 s) repeats the loads last measured and keeps
 * the baseline; 250 ms bounds the error to 4 % of a core. */
#define KF__LOAD_MIN_INTERVAL_MS 250

struct kf__load_sampler {
	bool have_host;
	struct kf__host_cpu host;
	double cpu_s;        /* process CPU seconds at the baseline */
	uint64_t mono_ns;    /* when the baseline was taken */
	double cpu_process, cpu_host; /* the loads last measured (0 before any) */
};

struct kf__load {
	double cpu_process;  /* cores */
	double cpu_host;     /* 0..1 */
	uint64_t rss_bytes;
};

/* Starts the sampler now, with a reading of the process's CPU and the
 * host's: the first sample's figures are rates since this call, as every
 * later one's are since the sample before. (Counting from process start
 * put the CPU of the start-up before it into the first few milliseconds:
 * a first heartbeat of an idle worker said 161 %, and no host figure.) */
void kf__load_sampler_init(struct kf__load_sampler *s);

/* Reads /proc/self and /proc/stat and fills *out: the loads since the
 * baseline, which moves to now — or, less than KF__LOAD_MIN_INTERVAL_MS
 * after it, the loads last measured (0 before the first), with the baseline
 * kept; the resident memory is always read now. KF_EIO when /proc cannot
 * be read (the fields keep 0 then). */
enum kf_err kf__load_sample(struct kf__load_sampler *s, struct kf__load *out);

#endif
