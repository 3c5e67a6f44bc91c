/*
 * process.h — the standard process_* metrics (the names and help texts of
 * Prometheus's client libraries), read from /proc/self at snapshot time.
 *
 *	process_cpu_seconds_total      counter  user + system CPU time
 *	process_resident_memory_bytes  gauge    resident set size
 *	process_virtual_memory_bytes   gauge    virtual memory size
 *	process_start_time_seconds     gauge    start time, seconds since the epoch
 *	process_open_fds               gauge    open file descriptors
 *	process_max_fds                gauge    soft RLIMIT_NOFILE
 *
 * Linux only. The parsers are separate so tests can feed them fixed text.
 */
#ifndef KF_TELEMETRY_PROCESS_H
#define KF_TELEMETRY_PROCESS_H

#include "common/err.h"
#include "telemetry/metrics.h"

struct kf_process_sample {
	double cpu_seconds;        /* utime + stime */
	double resident_bytes;
	double virtual_bytes;
	double start_time_seconds; /* since the Unix epoch */
	double open_fds;
	double max_fds;
};

/*
 * Parses the text of /proc/<pid>/stat (one line; the command name in
 * parentheses may hold spaces and parentheses) into cpu_seconds,
 * resident_bytes, virtual_bytes and start_time_seconds (start ticks after
 * boot + boot_time_s). clk_tck and page_size come from sysconf. Other fields
 * of out are untouched. KF_EINVAL when the text is not such a line.
 */
enum kf_err kf_process_parse_stat(const char *text, long clk_tck, long page_size,
				  double boot_time_s, struct kf_process_sample *out);

/* Finds the "btime N" line of /proc/stat text. KF_ENOENT when absent. */
enum kf_err kf_process_parse_btime(const char *text, double *boot_time_s);

/* Reads every field from /proc/self and getrlimit. KF_EIO when /proc cannot
 * be read. Thread-safe. */
enum kf_err kf_process_read(struct kf_process_sample *out);

/*
 * Registers the six families in reg and a collector that refreshes them
 * before each snapshot. KF_EIO when /proc/self cannot be read now (nothing
 * is registered then), else what kf_metrics_register returns. Call once per
 * registry.
 */
enum kf_err kf_process_register(struct kf_metrics *reg);

#endif
