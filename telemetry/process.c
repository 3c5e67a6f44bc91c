/*
 * process.c — process_* metrics from /proc/self.
 */
#include "telemetry/process.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/io.h"

enum kf_err kf_process_parse_stat(const char *text, long clk_tck, long page_size,
				  double boot_time_s, struct kf_process_sample *out)
{
	/* The command name ends at the LAST ')': it may contain ") ". */
	const char *p = text ? strrchr(text, ')') : NULL;
	if (!p || clk_tck <= 0 || page_size <= 0)
		return KF_EINVAL;
	/* Fields after the name, numbered as in proc(5): 3 state, 14 utime,
	 * 15 stime, 22 starttime, 23 vsize, 24 rss. */
	unsigned long long utime, stime, start, vsize;
	long long rss;
	int n = sscanf(p + 1,
		       " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu"
		       " %*d %*d %*d %*d %*d %*d %llu %llu %lld",
		       &utime, &stime, &start, &vsize, &rss);
	if (n != 5)
		return KF_EINVAL;
	out->cpu_seconds = (double)(utime + stime) / (double)clk_tck;
	out->start_time_seconds = boot_time_s + (double)start / (double)clk_tck;
	out->virtual_bytes = (double)vsize;
	out->resident_bytes = rss > 0 ? (double)rss * (double)page_size : 0;
	return KF_OK;
}

enum kf_err kf_process_parse_btime(const char *text, double *boot_time_s)
{
	for (const char *line = text; line && *line;) {
		unsigned long long btime;
		if (strncmp(line, "btime ", 6) == 0 && sscanf(line + 6, "%llu", &btime) == 1) {
			*boot_time_s = (double)btime;
			return KF_OK;
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return KF_ENOENT;
}

static enum kf_err count_fds(double *out)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return KF_EIO;
	int own = dirfd(d);
	double n = 0;
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		if (atoi(e->d_name) != own) /* the directory we are reading */
			n++;
	}
	closedir(d);
	*out = n;
	return KF_OK;
}

static enum kf_err read_boot_time(double *boot_time_s)
{
	/* /proc/stat grows with the number of CPUs; 64 KiB holds hundreds. */
	size_t cap = 64 * 1024;
	char *buf = malloc(cap);
	if (!buf)
		return KF_ENOMEM;
	enum kf_err err = kf_read_text("/proc/stat", buf, cap) ? KF_OK : KF_EIO;
	if (!err)
		err = kf_process_parse_btime(buf, boot_time_s);
	free(buf);
	return err ? KF_EIO : KF_OK;
}

enum kf_err kf_process_read(struct kf_process_sample *out)
{
	char stat[1024];
	double boot;
	enum kf_err err = read_boot_time(&boot);
	if (!err)
		err = kf_read_text("/proc/self/stat", stat, sizeof stat) ? KF_OK : KF_EIO;
	if (!err)
		err = kf_process_parse_stat(stat, sysconf(_SC_CLK_TCK), sysconf(_SC_PAGESIZE), boot,
					    out);
	if (!err)
		err = count_fds(&out->open_fds);
	if (err)
		return KF_EIO;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return KF_EIO;
	out->max_fds = rl.rlim_cur == RLIM_INFINITY ? 0 : (double)rl.rlim_cur;
	return KF_OK;
}

/* --- the collector ------------------------------------------------------------ */

enum { P_CPU, P_RSS, P_VSIZE, P_START, P_OPEN_FDS, P_MAX_FDS, P_COUNT };

static const struct kf_metric_desc process_descs[P_COUNT] = {
	[P_CPU] = { .name = "process_cpu_seconds_total", .type = KF_METRIC_COUNTER,
		    .help = "Total user and system CPU time spent in seconds." },
	[P_RSS] = { .name = "process_resident_memory_bytes", .type = KF_METRIC_GAUGE,
		    .help = "Resident memory size in bytes." },
	[P_VSIZE] = { .name = "process_virtual_memory_bytes", .type = KF_METRIC_GAUGE,
		      .help = "Virtual memory size in bytes." },
	[P_START] = { .name = "process_start_time_seconds", .type = KF_METRIC_GAUGE,
		      .help = "Start time of the process since unix epoch in seconds." },
	[P_OPEN_FDS] = { .name = "process_open_fds", .type = KF_METRIC_GAUGE,
			 .help = "Number of open file descriptors." },
	[P_MAX_FDS] = { .name = "process_max_fds", .type = KF_METRIC_GAUGE,
			.help = "Maximum number of open file descriptors." },
};

struct process_collector {
	struct kf_counter *cpu;
	struct kf_gauge *gauges[P_COUNT]; /* P_CPU unused */
};

/* The collector's state lives as long as the registry, which frees it. */
static void collect(struct kf_metrics *reg, void *arg)
{
	(void)reg;
	struct process_collector *pc = arg;
	struct kf_process_sample s;
	if (kf_process_read(&s))
		return; /* keep the previous values */
	kf_counter_set(pc->cpu, s.cpu_seconds);
	kf_gauge_set(pc->gauges[P_RSS], s.resident_bytes);
	kf_gauge_set(pc->gauges[P_VSIZE], s.virtual_bytes);
	kf_gauge_set(pc->gauges[P_START], s.start_time_seconds);
	kf_gauge_set(pc->gauges[P_OPEN_FDS], s.open_fds);
	kf_gauge_set(pc->gauges[P_MAX_FDS], s.max_fds);
}

static enum kf_err register_all(struct kf_metrics *reg, struct process_collector *pc)
{
	for (size_t i = 0; i < P_COUNT; i++) {
		struct kf_metric_family *fam;
		enum kf_err err = kf_metrics_register(reg, &process_descs[i], &fam);
		if (!err)
			err = i == P_CPU ? kf_metric_family_counter(fam, NULL, &pc->cpu)
					 : kf_metric_family_gauge(fam, NULL, &pc->gauges[i]);
		if (err)
			return err;
	}
	return KF_OK;
}

enum kf_err kf_process_register(struct kf_metrics *reg)
{
	struct kf_process_sample probe;
	if (kf_process_read(&probe))
		return KF_EIO;
	struct process_collector *pc = calloc(1, sizeof *pc);
	if (!pc)
		return KF_ENOMEM;
	enum kf_err err = register_all(reg, pc);
	if (!err)
		err = kf_metrics_add_collector(reg, collect, free, pc);
	if (err) {
		free(pc);
		return err;
	}
	collect(reg, pc);
	return KF_OK;
}
