/* hbench.c — helpers shared by the hive benchmarks (hbench.h). */
#include "bench/hive/hbench.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"

void kf_hbench_die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", program_invocation_short_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static char *read_token(const char *path)
{
	char buf[256];
	size_t n;
	FILE *f = fopen(path, "r");

	if (!f)
		kf_hbench_die("cannot read token file '%s': %s", path, strerror(errno));
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n \t")] = '\0';
	if (!buf[0])
		kf_hbench_die("token file '%s' is empty", path);
	return strdup(buf);
}

void kf_hbench_rpc_open(struct kf_hbench_rpc *r, const char *url, const char *token_file)
{
	struct kf_strbuf why = KF_STRBUF_INIT;

	memset(r, 0, sizeof(*r));
	if (kf_rpc_client_new(&r->cli, url, NULL, &why))
		kf_hbench_die("rpc client for '%s': %s", url, why.buf);
	kf_strbuf_release(&why);
	if (getrandom(&r->client_id, sizeof r->client_id, 0) != sizeof r->client_id)
		r->client_id = kf_clock_wall_ns() ^ ((uint64_t)getpid() << 40);
	r->client_id |= 1;
	atomic_init(&r->seq, 0);
	snprintf(r->sender, sizeof r->sender, "%s-%d", program_invocation_short_name, (int)getpid());
	r->token = token_file ? read_token(token_file) : NULL;
}

void kf_hbench_rpc_close(struct kf_hbench_rpc *r)
{
	kf_rpc_client_free(r->cli);
	free(r->token);
	memset(r, 0, sizeof(*r));
}

enum kf_err kf_hbench_rpc_call(struct kf_hbench_rpc *r, struct kf_msg *req,
	nng_duration timeout_ms, struct kf_msg **rep, struct kf_strbuf *why)
{
	struct kf_rpc_call_opts opts = { .timeout_ms = timeout_ms };
	struct kf_strbuf bytes = KF_STRBUF_INIT;
	struct kf_msg_req *hdr = kf_msg_request_mut(req);
	const struct kf_msg_rep *h;
	nng_msg *reply = NULL;
	enum kf_err err;

	*rep = NULL;
	req->sender = r->sender;
	req->seq = atomic_fetch_add(&r->seq, 1) + 1;
	hdr->id.client = r->client_id;
	hdr->id.seq = req->seq;
	hdr->auth_token = r->token;
	if ((err = kf_msg_encode(req, &bytes)))
		goto out;
	if ((err = kf_rpc_client_call(r->cli, bytes.buf, bytes.len, &opts, &reply)))
		goto out;
	if ((err = kf_msg_decode(nng_msg_body(reply), nng_msg_len(reply), rep, why)))
		goto out;
	h = kf_msg_reply(*rep);
	if ((*rep)->type != kf_msg_reply_type(req->type))
		err = h && h->status ? h->status : KF_EMALFORMED;
	else
		err = h ? h->status : KF_EMALFORMED;
	if (err && why && h && h->error)
		kf_strbuf_addstr(why, h->error);
out:
	if (err) {
		kf_msg_free(*rep);
		*rep = NULL;
	}
	nng_msg_free(reply);
	kf_strbuf_release(&bytes);
	return err;
}

struct kf_bus_sub *kf_hbench_sub_open(const char *url, const char *prefix, size_t prefix_len,
	int queue_len, nng_duration wait_ms)
{
	struct kf_bus_opts opts = { .queue_len = queue_len };
	struct kf_strbuf why = KF_STRBUF_INIT;
	struct kf_bus_sub *sub;
	uint64_t until = kf_clock_mono_ns() + (uint64_t)wait_ms * KF_HBENCH_NS_PER_MS;
	enum kf_err err;

	if ((err = kf_bus_sub_new(&sub, KF_BUS_DIAL, url, &opts, &why)))
		kf_hbench_die("events subscriber for '%s': %s %s", url, kf_strerror(err), why.buf);
	kf_strbuf_release(&why);
	if (kf_bus_sub_subscribe(sub, prefix, prefix_len))
		kf_hbench_die("cannot subscribe on '%s'", url);
	while (kf_bus_sock_peers(kf_bus_sub_sock(sub)) == 0) {
		if (kf_clock_mono_ns() > until)
			kf_hbench_die("no connection to the events socket '%s'", url);
		kf_hbench_sleep_until(kf_clock_mono_ns() + 10 * KF_HBENCH_NS_PER_MS);
	}
	return sub;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double kf_hbench_percentile_sorted(const double *v, size_t n, double p)
{
	size_t rank;

	if (!n)
		return NAN;
	/* Nearest rank: the smallest value with at least p% at or below it. */
	rank = (size_t)ceil(p / 100.0 * (double)n);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

double kf_hbench_percentile(double *v, size_t n, double p)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return kf_hbench_percentile_sorted(v, n, p);
}

long long kf_hbench_cpu_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	size_t n;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "r")))
		return -1;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: skip to the last ')'. */
	if (!(p = strrchr(buf, ')')))
		return -1;
	/* After ')': state(3) ppid pgrp session tty tpgid flags minflt cminflt
	 * majflt cmajflt utime(14) stime(15). */
	if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (long long)(ut + st);
}

long long kf_hbench_ctx_switches(pid_t pid)
{
	char path[300], line[256];
	long long total = 0, v;
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	if (!(d = opendir(path)))
		return -1;
	while ((de = readdir(d))) {
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "/proc/%d/task/%s/status", (int)pid, de->d_name);
		if (!(f = fopen(path, "r")))
			continue; /* the thread ended meanwhile */
		while (fgets(line, sizeof line, f))
			if (sscanf(line, "voluntary_ctxt_switches: %lld", &v) == 1 ||
			    sscanf(line, "nonvoluntary_ctxt_switches: %lld", &v) == 1)
				total += v;
		fclose(f);
	}
	closedir(d);
	return total;
}

bool kf_hbench_machine(struct kf_hbench_machine *m)
{
	long long user, nice, sys, idle, iowait, irq, softirq, steal;
	FILE *f = fopen("/proc/stat", "r");
	int n;

	if (!f)
		return false;
	n = fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld %lld", &user, &nice, &sys, &idle,
		   &iowait, &irq, &softirq, &steal);
	fclose(f);
	if (n != 8)
		return false;
	m->busy = user + nice + sys + irq + softirq;
	m->idle = idle + iowait;
	m->steal = steal;
	return true;
}

void kf_hbench_machine_share(const struct kf_hbench_machine *a,
			     const struct kf_hbench_machine *b, char out[96])
{
	double busy = (double)(b->busy - a->busy), idle = (double)(b->idle - a->idle);
	double steal = (double)(b->steal - a->steal), all = busy + idle + steal;

	if (all <= 0) {
		snprintf(out, 96, "unknown");
		return;
	}
	snprintf(out, 96, "%.0f%% busy, %.0f%% idle, %.0f%% steal", 100 * busy / all,
		 100 * idle / all, 100 * steal / all);
}

double kf_hbench_ticks_per_s(void)
{
	long t = sysconf(_SC_CLK_TCK);

	return t > 0 ? (double)t : 100.0;
}

bool kf_hbench_rss(pid_t pid, uint64_t *rss, uint64_t *hwm)
{
	char path[64], line[256];
	unsigned long long kb;
	int found = 0;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	if (!(f = fopen(path, "r")))
		return false;
	*rss = *hwm = 0;
	while (fgets(line, sizeof line, f)) {
		if (sscanf(line, "VmRSS: %llu kB", &kb) == 1) {
			*rss = kb * 1024;
			found++;
		} else if (sscanf(line, "VmHWM: %llu kB", &kb) == 1) {
			*hwm = kb * 1024;
			found++;
		}
	}
	fclose(f);
	return found == 2;
}

void kf_hbench_loadavg(char out[64])
{
	double a = 0, b = 0, c = 0;
	FILE *f = fopen("/proc/loadavg", "r");

	if (!f || fscanf(f, "%lf %lf %lf", &a, &b, &c) != 3)
		snprintf(out, 64, "?");
	else
		snprintf(out, 64, "%.2f %.2f %.2f", a, b, c);
	if (f)
		fclose(f);
}

void kf_hbench_sleep_until(uint64_t t_ns)
{
	struct timespec ts = { (time_t)(t_ns / KF_HBENCH_NS_PER_S),
		(long)(t_ns % KF_HBENCH_NS_PER_S) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

uint64_t kf_hbench_u64_arg(const char *flag, const char *text)
{
	char *end;
	double d;

	errno = 0;
	/* Through double so that 1e5 works; exact for the sizes used here. */
	d = strtod(text, &end);
	if (!*text || *end || errno || d < 0 || d > 1e15 || d != floor(d)) {
		fprintf(stderr, "%s: %s: '%s' is not a whole number\n",
			program_invocation_short_name, flag, text);
		exit(2);
	}
	return (uint64_t)d;
}

double kf_hbench_f64_arg(const char *flag, const char *text)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(text, &end);
	if (!*text || *end || errno || !isfinite(d) || d < 0) {
		fprintf(stderr, "%s: %s: '%s' is not a number\n", program_invocation_short_name,
			flag, text);
		exit(2);
	}
	return d;
}
