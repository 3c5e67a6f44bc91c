/* heartbeat.c — CPU load of the process and the host, resident memory. */
#include "worker/heartbeat.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "telemetry/process.h"

enum { COL_USER, COL_NICE, COL_SYSTEM, COL_IDLE, COL_IOWAIT, COL_IRQ, COL_SOFTIRQ, COL_STEAL,
       N_COLS };

enum kf_err kf__parse_host_cpu(const char *text, struct kf__host_cpu *out)
{
	uint64_t col[N_COLS] = { 0 };
	const char *p = text;
	int n = 0;

	if (strncmp(p, "cpu ", 4) != 0)
		return KF_EINVAL;
	p += 4;
	while (n < N_COLS) {
		char *end;
		unsigned long long v;

		while (*p == ' ')
			p++;
		if (*p < '0' || *p > '9')
			break;
		errno = 0;
		v = strtoull(p, &end, 10);
		if (errno)
			return KF_EINVAL;
		col[n++] = v;
		p = end;
	}
	if (n < 4 || (*p != ' ' && *p != '\n' && *p != '\0'))
		return KF_EINVAL;
	out->busy = col[COL_USER] + col[COL_NICE] + col[COL_SYSTEM] + col[COL_IRQ] +
		    col[COL_SOFTIRQ] + col[COL_STEAL];
	out->total = out->busy + col[COL_IDLE] + col[COL_IOWAIT];
	return KF_OK;
}

double kf__host_load(const struct kf__host_cpu *prev, const struct kf__host_cpu *cur)
{
	double load;

	if (cur->total <= prev->total || cur->busy < prev->busy)
		return 0;
	load = (double)(cur->busy - prev->busy) / (double)(cur->total - prev->total);
	return load > 1 ? 1 : load;
}

double kf__process_load(double prev_cpu_s, double cur_cpu_s, uint64_t wall_ns)
{
	if (wall_ns == 0 || !(cur_cpu_s >= prev_cpu_s))
		return 0;
	return (cur_cpu_s - prev_cpu_s) / ((double)wall_ns * 1e-9);
}

/* The first line of /proc/stat is all we need: 256 bytes hold it. */
static enum kf_err read_host(struct kf__host_cpu *out)
{
	char buf[512];
	ssize_t n;
	int fd = open("/proc/stat", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return KF_EIO;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return KF_EIO;
	buf[n] = '\0';
	return kf__parse_host_cpu(buf, out);
}

void kf__load_sampler_init(struct kf__load_sampler *s)
{
	struct kf_process_sample ps;

	memset(s, 0, sizeof(*s));
	s->mono_ns = kf_clock_mono_ns();
	if (kf_process_read(&ps) == KF_OK)
		s->cpu_s = ps.cpu_seconds;
	s->have_host = read_host(&s->host) == KF_OK;
}

enum kf_err kf__load_sample(struct kf__load_sampler *s, struct kf__load *out)
{
	struct kf_process_sample ps;
	struct kf__host_cpu host;
	uint64_t now = kf_clock_mono_ns();
	enum kf_err err = KF_OK;
	bool proc_ok = false;
	bool soon = now - s->mono_ns < KF__LOAD_MIN_INTERVAL_MS * KF_NS_PER_MS;

	memset(out, 0, sizeof(*out));
	if (kf_process_read(&ps) == KF_OK) {
		out->rss_bytes = ps.resident_bytes > 0 ? (uint64_t)ps.resident_bytes : 0;
		if (!soon) {
			s->cpu_process = kf__process_load(s->cpu_s, ps.cpu_seconds,
							  now - s->mono_ns);
			s->cpu_s = ps.cpu_seconds;
		}
		out->cpu_process = s->cpu_process;
		proc_ok = true;
	} else {
		err = KF_EIO;
	}
	if (read_host(&host) == KF_OK) {
		if (!soon || !s->have_host) {
			s->cpu_host = s->have_host ? kf__host_load(&s->host, &host) : 0;
			s->host = host;
			s->have_host = true;
		}
		out->cpu_host = s->cpu_host;
	} else {
		err = KF_EIO;
	}
	if (!soon && proc_ok)
		s->mono_ns = now;
	return err;
}
