/*
 * bench_beanstalkd — the same job flow through beanstalkd, for a ratio.
 *
 * A minimal client of beanstalkd's text protocol (doc/protocol.txt of
 * beanstalkd): `use`/`watch`/`ignore` a tube, `put`, `reserve-with-timeout`,
 * `delete`. P producer connections put N jobs (one put in flight each,
 * like bench_jobs' submitters: as fast as acknowledged, or on an open-loop
 * schedule of R jobs/s); C consumer connections reserve and delete them.
 * Each job body carries the monotonic time its put was sent, so that
 *
 *   jobs/s          N / (last delete acknowledged − first put sent)
 *   put→reserved    reservation received − put sent (the analogue of the
 *                   hive's submit→running)
 *   put ack         put round trip
 *
 * Start beanstalkd with a binlog (-b DIR) for durability comparable to the
 * hive: with its default -f 50 it fsyncs at most every 50 ms (a put is
 * acknowledged before it is on disk); -f 0 fsyncs every write.
 * The last line is machine-readable: RESULT key=value ...
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "bench/hive/hbench.h"
#include "common/clock.h"

#define CONN_BUF 65536

/* One connection with a read buffer. */
struct conn {
	int fd;
	char buf[CONN_BUF];
	size_t off, len;
};

struct bench {
	const char *host, *tube, *label;
	unsigned port;
	uint64_t jobs, producers, consumers, size;
	double rate;
	uint64_t timeout_s;

	uint64_t t_start;
	atomic_uint_fast64_t next_put, consumed, put_errors;
	atomic_bool stop;
	double *put_ack;           /* per job index, ms */
	uint64_t *put_sent;        /* per job index, mono ns */
	double *to_reserved;       /* per consumed job, ms (index = consume order) */
	atomic_uint_fast64_t last_delete_ns;
};

/* ---- connection --------------------------------------------------------------------- */

static void conn_open(struct conn *c, const char *host, unsigned port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int one = 1;

	memset(c, 0, sizeof(*c));
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		kf_hbench_die("'%s' is not an IPv4 address", host);
	if ((c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		kf_hbench_die("socket: %s", strerror(errno));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa))
		kf_hbench_die("cannot connect to beanstalkd at %s:%u: %s", host, port, strerror(errno));
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static void conn_write(struct conn *c, const void *data, size_t len)
{
	const char *p = data;

	while (len) {
		ssize_t n = write(c->fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			kf_hbench_die("write to beanstalkd: %s", n ? strerror(errno) : "closed");
		p += n;
		len -= (size_t)n;
	}
}

static void conn_fill(struct conn *c)
{
	ssize_t n;

	if (c->off == c->len) {
		c->off = c->len = 0;
	} else if (c->off > 0) {
		memmove(c->buf, c->buf + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
	}
	if (c->len == sizeof c->buf)
		kf_hbench_die("beanstalkd reply longer than %d bytes", CONN_BUF);
	do
		n = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		kf_hbench_die("read from beanstalkd: %s", n ? strerror(errno) : "connection closed");
	c->len += (size_t)n;
}

/* Reads one "\r\n"-terminated line into line (NUL-terminated, no CRLF). */
static void conn_line(struct conn *c, char *line, size_t cap)
{
	for (;;) {
		char *s = c->buf + c->off, *e = memmem(s, c->len - c->off, "\r\n", 2);

		if (e) {
			size_t n = (size_t)(e - s);

			if (n >= cap)
				kf_hbench_die("beanstalkd line too long");
			memcpy(line, s, n);
			line[n] = '\0';
			c->off += n + 2;
			return;
		}
		conn_fill(c);
	}
}

/* Reads exactly n bytes (the job body) plus its "\r\n". */
static void conn_body(struct conn *c, char *out, size_t n)
{
	while (c->len - c->off < n + 2)
		conn_fill(c);
	memcpy(out, c->buf + c->off, n);
	out[n] = '\0';
	c->off += n + 2;
}

/* Sends a command line and expects a reply starting with `want`. */
static void command(struct conn *c, const char *want, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void command(struct conn *c, const char *want, const char *fmt, ...)
{
	char line[512], reply[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line - 2, fmt, ap);
	va_end(ap);
	memcpy(line + n, "\r\n", 2);
	conn_write(c, line, (size_t)n + 2);
	conn_line(c, reply, sizeof reply);
	if (strncmp(reply, want, strlen(want)))
		kf_hbench_die("beanstalkd answered '%s' to '%.*s'", reply, n, line);
}

/* ---- producers and consumers ----------------------------------------------------------- */

static void *producer_main(void *arg)
{
	struct bench *b = arg;
	struct conn *c = malloc(sizeof(*c));
	char *req = malloc(b->size + 128), reply[128];
	uint64_t i;

	if (!c || !req)
		kf_hbench_die("out of memory");
	conn_open(c, b->host, b->port);
	command(c, "USING", "use %s", b->tube);
	while ((i = atomic_fetch_add(&b->next_put, 1)) < b->jobs) {
		int head, body;
		uint64_t t;

		if (b->rate > 0)
			kf_hbench_sleep_until(b->t_start + (uint64_t)((double)i * 1e9 / b->rate));
		t = kf_clock_mono_ns();
		/* Body: "<send ns> <index> " padded with 'x' to --size bytes. */
		body = snprintf(req + 64, b->size + 64, "%llu %llu ", (unsigned long long)t,
				(unsigned long long)i);
		if ((uint64_t)body < b->size) {
			memset(req + 64 + body, 'x', b->size - (uint64_t)body);
			body = (int)b->size;
		}
		head = snprintf(reply, sizeof reply, "put 0 0 60 %d\r\n", body);
		memcpy(req + 64 - head, reply, (size_t)head);
		memcpy(req + 64 + body, "\r\n", 2);
		b->put_sent[i] = t;
		conn_write(c, req + 64 - head, (size_t)(head + body + 2));
		conn_line(c, reply, sizeof reply);
		b->put_ack[i] = (double)(kf_clock_mono_ns() - t) / 1e6;
		if (strncmp(reply, "INSERTED ", 9) && atomic_fetch_add(&b->put_errors, 1) < 5)
			fprintf(stderr, "bench_beanstalkd: put %llu: %s\n", (unsigned long long)i, reply);
	}
	conn_close(c);
	free(c);
	free(req);
	return NULL;
}

static void *consumer_main(void *arg)
{
	struct bench *b = arg;
	struct conn *c = malloc(sizeof(*c));
	char *body = malloc(b->size + 256), line[256];

	if (!c || !body)
		kf_hbench_die("out of memory");
	conn_open(c, b->host, b->port);
	command(c, "WATCHING", "watch %s", b->tube);
	command(c, "WATCHING", "ignore default");
	while (!atomic_load(&b->stop) && atomic_load(&b->consumed) < b->jobs) {
		unsigned long long id, bytes, sent;
		uint64_t now, k;
		int n;

		n = snprintf(line, sizeof line, "reserve-with-timeout 1\r\n");
		conn_write(c, line, (size_t)n);
		conn_line(c, line, sizeof line);
		if (!strcmp(line, "TIMED_OUT") || !strcmp(line, "DEADLINE_SOON"))
			continue;
		if (sscanf(line, "RESERVED %llu %llu", &id, &bytes) != 2 || bytes > b->size + 200)
			kf_hbench_die("beanstalkd answered '%s' to reserve", line);
		now = kf_clock_mono_ns();
		conn_body(c, body, bytes);
		if (sscanf(body, "%llu", &sent) != 1)
			kf_hbench_die("job %llu has no timestamp", id);
		n = snprintf(line, sizeof line, "delete %llu\r\n", id);
		conn_write(c, line, (size_t)n);
		conn_line(c, line, sizeof line);
		if (strcmp(line, "DELETED"))
			kf_hbench_die("beanstalkd answered '%s' to delete %llu", line, id);
		k = atomic_fetch_add(&b->consumed, 1);
		if (k < b->jobs)
			b->to_reserved[k] = (double)(now - sent) / 1e6;
		atomic_store(&b->last_delete_ns, kf_clock_mono_ns());
	}
	conn_close(c);
	free(c);
	free(body);
	return NULL;
}

/* ---- main ------------------------------------------------------------------------------- */

static void usage(int status)
{
	fputs("usage: bench_beanstalkd --addr HOST:PORT [--jobs N] [--producers P]\n"
	      "                        [--consumers C] [--rate R] [--size BYTES] [--tube NAME]\n"
	      "                        [--timeout S] [--label TEXT]\n"
	      "  --jobs N        jobs to put, reserve and delete (default 5000)\n"
	      "  --producers P   put connections, one put in flight each (default 64)\n"
	      "  --consumers C   reserve/delete connections (default 2)\n"
	      "  --rate R        open loop: R puts/s on a fixed schedule; 0 = as fast as acked\n"
	      "  --size BYTES    job body size (default 256, about a hive job's parameters)\n",
	      status ? stderr : stdout);
	exit(status);
}

static void parse(struct bench *b, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "addr", required_argument, NULL, 'a' }, { "jobs", required_argument, NULL, 'n' },
		{ "producers", required_argument, NULL, 'p' },
		{ "consumers", required_argument, NULL, 'c' }, { "rate", required_argument, NULL, 'R' },
		{ "size", required_argument, NULL, 's' }, { "tube", required_argument, NULL, 'u' },
		{ "timeout", required_argument, NULL, 'T' }, { "label", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	static char host[64];
	const char *colon;
	int c;

	*b = (struct bench){ .host = "127.0.0.1", .port = 11300, .jobs = 5000, .producers = 64,
		.consumers = 2, .size = 256, .tube = "kfbench", .timeout_s = 300, .label = "" };
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			if (!(colon = strrchr(optarg, ':')) || colon - optarg >= (long)sizeof host)
				usage(2);
			snprintf(host, sizeof host, "%.*s", (int)(colon - optarg), optarg);
			b->host = host;
			b->port = (unsigned)kf_hbench_u64_arg("--addr", colon + 1);
			break;
		case 'n': b->jobs = kf_hbench_u64_arg("--jobs", optarg); break;
		case 'p': b->producers = kf_hbench_u64_arg("--producers", optarg); break;
		case 'c': b->consumers = kf_hbench_u64_arg("--consumers", optarg); break;
		case 'R': b->rate = kf_hbench_f64_arg("--rate", optarg); break;
		case 's': b->size = kf_hbench_u64_arg("--size", optarg); break;
		case 'u': b->tube = optarg; break;
		case 'T': b->timeout_s = kf_hbench_u64_arg("--timeout", optarg); break;
		case 'l': b->label = optarg; break;
		case 'h': usage(0); break;
		default: usage(2);
		}
	}
	if (!b->jobs || !b->producers || b->producers > 1024 || !b->consumers ||
	    b->consumers > 64 || b->size < 48 || b->size > 60000 || optind != argc)
		usage(2);
}

static void report(struct bench *b, const char *load0, const char *machine)
{
	uint64_t n = atomic_load(&b->consumed), t_first = UINT64_MAX, t_last_ack = 0;
	double secs, rate, p99_res, p50_res;
	char load1[64];

	if (n > b->jobs)
		n = b->jobs;
	for (uint64_t i = 0; i < b->jobs; i++) {
		if (b->put_sent[i] && b->put_sent[i] < t_first)
			t_first = b->put_sent[i];
		if (b->put_sent[i] + (uint64_t)(b->put_ack[i] * 1e6) > t_last_ack)
			t_last_ack = b->put_sent[i] + (uint64_t)(b->put_ack[i] * 1e6);
	}
	kf_hbench_loadavg(load1);
	secs = (double)(atomic_load(&b->last_delete_ns) - t_first) / 1e9;
	rate = (double)n / secs;
	kf_hbench_percentile(b->to_reserved, n, 50);
	kf_hbench_percentile(b->put_ack, b->jobs, 50);
	p50_res = kf_hbench_percentile_sorted(b->to_reserved, n, 50);
	p99_res = kf_hbench_percentile_sorted(b->to_reserved, n, 99);
	printf("bench_beanstalkd %s: %llu jobs, %llu producers, %llu consumers, %s\n", b->label,
	       (unsigned long long)b->jobs, (unsigned long long)b->producers,
	       (unsigned long long)b->consumers, b->rate > 0 ? "open loop" : "as fast as acknowledged");
	if (b->rate > 0)
		printf("  offered rate       %.0f jobs/s\n", b->rate);
	printf("  load average       %s (start)  %s (end)\n", load0, load1);
	printf("  jobs/s             %.1f  (%llu put, reserved and deleted in %.3f s)\n", rate,
	       (unsigned long long)n, secs);
	printf("  puts/s             %.1f  (errors %llu)\n",
	       (double)b->jobs / ((double)(t_last_ack - t_first) / 1e9),
	       (unsigned long long)atomic_load(&b->put_errors));
	printf("  put ack            p50 %.2f ms  p99 %.2f ms  max %.2f ms\n",
	       kf_hbench_percentile_sorted(b->put_ack, b->jobs, 50),
	       kf_hbench_percentile_sorted(b->put_ack, b->jobs, 99), b->put_ack[b->jobs - 1]);
	printf("  put->reserved      p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms\n", p50_res,
	       kf_hbench_percentile_sorted(b->to_reserved, n, 90), p99_res,
	       n ? b->to_reserved[n - 1] : NAN);
	if (machine)
		printf("  machine            %s (both cores, every process)\n", machine);
	printf("RESULT label=%s jobs=%llu rate=%.1f offered=%.0f secs=%.3f run_p50_ms=%.2f "
	       "run_p99_ms=%.2f errors=%llu load=\"%s\"\n", *b->label ? b->label : "-",
	       (unsigned long long)n, rate, b->rate, secs, p50_res, p99_res,
	       (unsigned long long)atomic_load(&b->put_errors), load0);
}

int main(int argc, char **argv)
{
	struct bench b;
	pthread_t *th;
	uint64_t nth, deadline;
	struct kf_hbench_machine m0, m1;
	bool have_machine;
	char load0[64], machine[96];

	parse(&b, argc, argv);
	nth = b.producers + b.consumers;
	b.put_ack = calloc(b.jobs, sizeof(double));
	b.put_sent = calloc(b.jobs, sizeof(uint64_t));
	b.to_reserved = calloc(b.jobs, sizeof(double));
	th = calloc(nth, sizeof(*th));
	if (!b.put_ack || !b.put_sent || !b.to_reserved || !th)
		kf_hbench_die("out of memory");
	atomic_init(&b.next_put, 0);
	atomic_init(&b.consumed, 0);
	atomic_init(&b.put_errors, 0);
	atomic_init(&b.stop, false);
	atomic_init(&b.last_delete_ns, 0);
	kf_hbench_loadavg(load0);
	have_machine = kf_hbench_machine(&m0);
	b.t_start = kf_clock_mono_ns() + 20 * KF_HBENCH_NS_PER_MS;
	for (uint64_t i = 0; i < nth; i++)
		if (pthread_create(&th[i], NULL, i < b.consumers ? consumer_main : producer_main, &b))
			kf_hbench_die("cannot start threads");
	deadline = kf_clock_mono_ns() + b.timeout_s * KF_HBENCH_NS_PER_S;
	while (atomic_load(&b.consumed) < b.jobs && kf_clock_mono_ns() < deadline)
		kf_hbench_sleep_until(kf_clock_mono_ns() + 5 * KF_HBENCH_NS_PER_MS);
	if ((have_machine = have_machine && kf_hbench_machine(&m1)))
		kf_hbench_machine_share(&m0, &m1, machine);
	atomic_store(&b.stop, true);
	for (uint64_t i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	report(&b, load0, have_machine ? machine : NULL);
	free(th);
	free(b.put_ack);
	free(b.put_sent);
	free(b.to_reserved);
	return atomic_load(&b.consumed) < b.jobs || atomic_load(&b.put_errors) ? 1 : 0;
}
