/*
 * bench/hive/hbench.h — what the hive benchmarks share: an RPC client that
 * stamps request ids and the operator token, an events subscriber,
 * percentiles, and /proc readings (CPU time, resident memory, load).
 *
 * Benchmarks only: nothing here is used by the programs. Figures and the
 * commands that produce them: docs/performance.md.
 *
 * Thread-safety: kf_hbench_rpc_call may be called from many threads at once
 * on one struct kf_hbench_rpc (one nng context per call); the rest are
 * plain functions.
 */
#ifndef KF_BENCH_HIVE_HBENCH_H
#define KF_BENCH_HIVE_HBENCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bus/bus.h"
#include "common/err.h"
#include "proto/proto.h"

#define KF_HBENCH_NS_PER_MS 1000000ull
#define KF_HBENCH_NS_PER_S 1000000000ull

struct kf_hbench_rpc {
	struct kf_rpc_client *cli;
	uint64_t client_id;           /* random, never 0 */
	atomic_uint_fast64_t seq;     /* per request */
	char *token;                  /* NULL: none sent */
	char sender[64];
};

/* Dials url (non-blocking) and reads the token from token_file (NULL: no
 * token). Exits the process with a message on failure: benchmarks have
 * nothing sensible to do without their broker. */
void kf_hbench_rpc_open(struct kf_hbench_rpc *r, const char *url, const char *token_file);
void kf_hbench_rpc_close(struct kf_hbench_rpc *r);

/* Stamps req (sender, request id, token), calls, decodes. On KF_OK *rep is
 * the decoded reply of the right type with status KF_OK (free with
 * kf_msg_free); otherwise *rep is NULL and the error is the transport's,
 * the decoder's or the reply's status (copied into why when not NULL). */
enum kf_err kf_hbench_rpc_call(struct kf_hbench_rpc *r, struct kf_msg *req,
	nng_duration timeout_ms, struct kf_msg **rep, struct kf_strbuf *why);

/* Subscribes to `prefix` on the events socket at url and waits up to
 * wait_ms for the connection. Exits on failure. */
struct kf_bus_sub *kf_hbench_sub_open(const char *url, const char *prefix, size_t prefix_len,
	int queue_len, nng_duration wait_ms);

/* Sorts v (n values) in place and returns the p-th percentile (0..100,
 * nearest rank); NAN when n == 0. */
double kf_hbench_percentile(double *v, size_t n, double p);
/* Sorted already: no sort. */
double kf_hbench_percentile_sorted(const double *v, size_t n, double p);

/* utime + stime of pid in clock ticks (/proc/PID/stat); -1 when gone. */
long long kf_hbench_cpu_ticks(pid_t pid);
/* Voluntary + involuntary context switches of every thread of pid
 * (/proc/PID/task/TID/status); -1 when gone. */
long long kf_hbench_ctx_switches(pid_t pid);
/* The whole machine's CPU time by kind, in clock ticks summed over every
 * CPU (/proc/stat's first line): what the hive's processes leave to others,
 * and what the hypervisor took (steal). */
struct kf_hbench_machine {
	long long busy;    /* user + nice + system + irq + softirq */
	long long idle;    /* idle + iowait */
	long long steal;
};
/* false when /proc/stat cannot be read. */
bool kf_hbench_machine(struct kf_hbench_machine *m);
/* "68% busy, 31% idle, 0% steal" of both readings' difference into out. */
void kf_hbench_machine_share(const struct kf_hbench_machine *a,
			     const struct kf_hbench_machine *b, char out[96]);
/* Ticks per second (sysconf(_SC_CLK_TCK)). */
double kf_hbench_ticks_per_s(void);
/* VmRSS and VmHWM of pid in bytes (/proc/PID/status); false when gone. */
bool kf_hbench_rss(pid_t pid, uint64_t *rss, uint64_t *hwm);
/* The first three fields of /proc/loadavg, "1.23 0.98 0.80". */
void kf_hbench_loadavg(char out[64]);

/* Sleeps until CLOCK_MONOTONIC reaches t_ns. */
void kf_hbench_sleep_until(uint64_t t_ns);

/* Parses a decimal argument or exits 2 naming the flag. */
uint64_t kf_hbench_u64_arg(const char *flag, const char *text);
double kf_hbench_f64_arg(const char *flag, const char *text);

/* Prints to stderr, prefixed with the program name, and exits 1. */
void kf_hbench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
