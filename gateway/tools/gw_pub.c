/*
 * kf-gw-pub — publishes metric updates and cluster status on a PUB socket,
 * as a worker (dialing the broker's ingest) or a broker (listening on
 * events) would. A test and bench helper for keyforge-gateway; not installed.
 *
 *   kf-gw-pub --url URL [--listen | --dial]            commands on stdin
 *   kf-gw-pub --url URL --listen --simulate N [--interval-ms MS] [--duration-s S]
 *   kf-gw-pub --text I                                  source I's series as
 *                                                       Prometheus text (stdout)
 *
 * Commands (one per line; each is answered "ok" or "error: ..." on stdout):
 *   metric SENDER SEQ SOURCE INCARNATION FULL(0|1) N   then N series lines:
 *     c NAME VALUE [k=v ...]                 counter
 *     g NAME VALUE [k=v ...]                 gauge
 *     h NAME SUM COUNT LE:CUM,LE:CUM,... [k=v ...]   histogram (cumulative)
 *   status SENDER SEQ PENDING RUNNING RETRYING SUCCEEDED FAILED KILLED
 *          [WORKER:INCARNATION:alive|stale|dead ...]
 *   raw TOPIC HEX                            TOPIC NUL then the bytes (garbage)
 *   peers N TIMEOUT_MS                       wait until N peers are connected
 *   sleep MS
 *
 * --simulate publishes, every interval, a full update for each of N sources
 * "sim-<i>" (incarnation i+1) with the series of sim_series() below: what a
 * worker's registry holds (10 series, one a histogram with the contract's
 * buckets). --text prints the same series for source I, for pushing them to
 * prometheus-pushgateway in the benchmark.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus/pub.h"
#include "common/clock.h"
#include "proto/proto.h"

#define MAX_SERIES 4096
#define MAX_LABELS 32
#define MAX_BUCKETS 128
#define LINE_MAX_LEN 65536

static struct kf_bus_pub *pub;

static void reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void reply(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static enum kf_err send_msg(const char *topic, const struct kf_msg *m)
{
	struct kf_strbuf sb = KF_STRBUF_INIT;
	enum kf_err err = kf_msg_encode_pub(topic, m, &sb);
	if (!err)
		err = kf_bus_pub_send(pub, NULL, 0, sb.buf, sb.len);
	kf_strbuf_release(&sb);
	return err;
}

/* ---- series text ---------------------------------------------------------- */

struct series_buf {
	struct kf_msg_series s[MAX_SERIES];
	struct kf_msg_label labels[MAX_SERIES][MAX_LABELS];
	double le[MAX_SERIES][MAX_BUCKETS];
	uint64_t cum[MAX_SERIES][MAX_BUCKETS];
};

static struct series_buf sb_;

/* Parses "c NAME VALUE k=v..." (tokens already split in place). */
static bool parse_series(char **tok, int n, size_t i)
{
	struct kf_msg_series *s = &sb_.s[i];
	memset(s, 0, sizeof(*s));
	if (n < 3 || strlen(tok[0]) != 1)
		return false;
	s->name = tok[1];
	int first_label;
	switch (tok[0][0]) {
	case 'c': s->type = KF_MSG_METRIC_COUNTER; s->value = strtod(tok[2], NULL); first_label = 3;
		break;
	case 'g': s->type = KF_MSG_METRIC_GAUGE; s->value = strtod(tok[2], NULL); first_label = 3;
		break;
	case 'h':
		if (n < 5)
			return false;
		s->type = KF_MSG_METRIC_HISTOGRAM;
		s->sum = strtod(tok[2], NULL);
		s->count = strtoull(tok[3], NULL, 10);
		for (char *p = strtok(tok[4], ","); p; p = strtok(NULL, ",")) {
			char *colon = strchr(p, ':');
			if (!colon || s->n_buckets >= MAX_BUCKETS)
				return false;
			sb_.le[i][s->n_buckets] = strtod(p, NULL);
			sb_.cum[i][s->n_buckets++] = strtoull(colon + 1, NULL, 10);
		}
		s->bucket_le = sb_.le[i];
		s->bucket_count = sb_.cum[i];
		first_label = 5;
		break;
	default:
		return false;
	}
	for (int k = first_label; k < n && s->n_labels < MAX_LABELS; k++) {
		char *eq = strchr(tok[k], '=');
		if (!eq)
			return false;
		*eq = '\0';
		sb_.labels[i][s->n_labels++] = (struct kf_msg_label){ tok[k], eq + 1 };
	}
	s->labels = sb_.labels[i];
	return true;
}

static int split(char *line, char **tok, int max)
{
	int n = 0;
	for (char *p = strtok(line, " \t\r\n"); p && n < max; p = strtok(NULL, " \t\r\n"))
		tok[n++] = p;
	return n;
}

/* Lines of one "metric" command are kept until the update is sent. */
static char *series_lines[MAX_SERIES];

static void cmd_metric(char **tok, int n)
{
	if (n != 7) {
		reply("error: metric SENDER SEQ SOURCE INCARNATION FULL N");
		return;
	}
	size_t count = strtoul(tok[6], NULL, 10);
	bool ok = count <= MAX_SERIES;
	char line[LINE_MAX_LEN];
	for (size_t i = 0; ok && i < count; i++) {
		if (!fgets(line, sizeof(line), stdin)) {
			ok = false;
			break;
		}
		free(series_lines[i]);
		series_lines[i] = strdup(line);
		char *st[MAX_LABELS + 8];
		int sn = split(series_lines[i], st, MAX_LABELS + 8);
		ok = parse_series(st, sn, i);
	}
	if (!ok) {
		reply("error: bad series line");
		return;
	}
	struct kf_msg m;
	kf_msg_init(&m, KF_MSG_METRIC, tok[1], strtoull(tok[2], NULL, 10));
	m.metric = (struct kf_msg_metric){ .source = tok[3],
		.incarnation = strtoull(tok[4], NULL, 10), .full = atoi(tok[5]) != 0,
		.series = sb_.s, .n_series = count };
	char topic[KF_TOPIC_SIZE];
	kf_topic_metric(topic, tok[3]);
	enum kf_err err = send_msg(topic, &m);
	if (err)
		reply("error: %s", kf_strerror(err));
	else
		reply("ok");
}

static void cmd_status(char **tok, int n)
{
	static struct kf_msg_worker_status ws[64];
	if (n < 9) {
		reply("error: status SENDER SEQ P R RT S F K [W:INC:LIVENESS ...]");
		return;
	}
	struct kf_msg m;
	kf_msg_init(&m, KF_MSG_CLUSTER_STATUS, tok[1], strtoull(tok[2], NULL, 10));
	for (int i = 0; i < KF_JOB_STATE_COUNT; i++)
		m.cluster_status.job_counts[i] = strtoull(tok[3 + i], NULL, 10);
	size_t nw = 0;
	for (int k = 9; k < n && nw < 64; k++, nw++) {
		char *a = strchr(tok[k], ':'), *b = a ? strchr(a + 1, ':') : NULL;
		if (!b) {
			reply("error: worker WORKER:INCARNATION:LIVENESS");
			return;
		}
		*a = *b = '\0';
		ws[nw] = (struct kf_msg_worker_status){ .worker_id = tok[k], .host = "localhost",
			.incarnation = strtoull(a + 1, NULL, 10),
			.liveness = strcmp(b + 1, "dead") == 0 ? KF_WORKER_DEAD
				    : strcmp(b + 1, "stale") == 0 ? KF_WORKER_STALE : KF_WORKER_ALIVE };
	}
	m.cluster_status.workers = ws;
	m.cluster_status.n_workers = nw;
	enum kf_err err = send_msg(KF_TOPIC_STATUS_CLUSTER, &m);
	if (err)
		reply("error: %s", kf_strerror(err));
	else
		reply("ok");
}

static void cmd_raw(char **tok, int n)
{
	if (n != 3) {
		reply("error: raw TOPIC HEX");
		return;
	}
	struct kf_strbuf sb = KF_STRBUF_INIT;
	kf_strbuf_add(&sb, tok[1], strlen(tok[1]) + 1);
	for (const char *p = tok[2]; p[0] && p[1]; p += 2) {
		char hex[3] = { p[0], p[1], 0 };
		kf_strbuf_addch(&sb, (char)strtoul(hex, NULL, 16));
	}
	enum kf_err err = kf_bus_pub_send(pub, NULL, 0, sb.buf, sb.len);
	kf_strbuf_release(&sb);
	if (err)
		reply("error: %s", kf_strerror(err));
	else
		reply("ok");
}

static void cmd_peers(char **tok, int n)
{
	unsigned want = n > 1 ? (unsigned)atoi(tok[1]) : 1;
	uint64_t deadline = kf_clock_mono_ns() + (n > 2 ? strtoull(tok[2], NULL, 10) : 5000) * 1000000;
	while (kf_bus_sock_peers(kf_bus_pub_sock(pub)) < want) {
		if (kf_clock_mono_ns() > deadline) {
			reply("error: %u peers", kf_bus_sock_peers(kf_bus_pub_sock(pub)));
			return;
		}
		usleep(10000);
	}
	reply("ok");
}

static int run_commands(void)
{
	char line[LINE_MAX_LEN];
	while (fgets(line, sizeof(line), stdin)) {
		char *tok[80];
		int n = split(line, tok, 80);
		if (!n || tok[0][0] == '#')
			continue;
		if (strcmp(tok[0], "metric") == 0)
			cmd_metric(tok, n);
		else if (strcmp(tok[0], "status") == 0)
			cmd_status(tok, n);
		else if (strcmp(tok[0], "raw") == 0)
			cmd_raw(tok, n);
		else if (strcmp(tok[0], "peers") == 0)
			cmd_peers(tok, n);
		else if (strcmp(tok[0], "sleep") == 0 && n == 2) {
			usleep((useconds_t)atoi(tok[1]) * 1000);
			reply("ok");
		} else
			reply("error: unknown command '%s'", tok[0]);
	}
	for (size_t i = 0; i < MAX_SERIES; i++)
		free(series_lines[i]);
	return 0;
}

/* ---- simulation ----------------------------------------------------------- */

static const double score_le[] = { 25, 50, 100, 250, 500, 1e3, 2.5e3, 5e3, 1e4, 2.5e4, 5e4,
				   1e5, 2.5e5, 5e5, 1e6, 1e7 };
#define N_SCORE_LE (sizeof(score_le) / sizeof(score_le[0]))
static const struct kf_msg_label topic_hb = { "topic", "hb" }, topic_log = { "topic", "log" },
				 topic_metric = { "topic", "metric" };

/* The series of source i after `tick` intervals. */
static size_t sim_series(size_t i, uint64_t tick, struct kf_msg_series *s, uint64_t *cum)
{
	uint64_t obs = (tick + 1) * 1000 + i;
	for (size_t b = 0; b < N_SCORE_LE; b++)
		cum[b] = b < 2 ? 0 : obs * (b - 1) / (N_SCORE_LE - 1);
	size_t n = 0;
	s[n++] = (struct kf_msg_series){ .name = "keyforge_jobs_active", .type = KF_MSG_METRIC_GAUGE,
		.value = (double)((i + tick) % 2) };
	s[n++] = (struct kf_msg_series){ .name = "keyforge_score_latency_ns",
		.type = KF_MSG_METRIC_HISTOGRAM, .bucket_le = score_le, .bucket_count = cum,
		.n_buckets = N_SCORE_LE, .sum = (double)obs * 850.0, .count = obs };
	s[n++] = (struct kf_msg_series){ .name = "keyforge_worker_anneal_steps_total",
		.type = KF_MSG_METRIC_COUNTER, .value = (double)obs * 50 };
	s[n++] = (struct kf_msg_series){ .name = "keyforge_worker_restarts_total",
		.type = KF_MSG_METRIC_COUNTER, .value = (double)(tick / 10) };
	s[n++] = (struct kf_msg_series){ .name = "keyforge_worker_cpu_ratio",
		.type = KF_MSG_METRIC_GAUGE, .value = 0.25 + (double)(i % 4) / 8 };
	s[n++] = (struct kf_msg_series){ .name = "keyforge_worker_best_cost",
		.type = KF_MSG_METRIC_GAUGE, .value = 1000.5 - (double)tick };
	s[n++] = (struct kf_msg_series){ .name = "keyforge_worker_bus_sent_total",
		.type = KF_MSG_METRIC_COUNTER, .labels = &topic_hb, .n_labels = 1,
		.value = (double)tick };
	s[n++] = (struct kf_msg_series){ .name = "keyforge_worker_bus_sent_total",
		.type = KF_MSG_METRIC_COUNTER, .labels = &topic_log, .n_labels = 1,
		.value = (double)tick * 3 };
	s[n++] = (struct kf_msg_series){ .name = "keyforge_worker_bus_sent_total",
		.type = KF_MSG_METRIC_COUNTER, .labels = &topic_metric, .n_labels = 1,
		.value = (double)tick };
	s[n++] = (struct kf_msg_series){ .name = "keyforge_worker_bus_dropped_total",
		.type = KF_MSG_METRIC_COUNTER, .value = 0 };
	return n;
}

static int simulate(size_t n_sources, unsigned interval_ms, unsigned duration_s)
{
	struct kf_msg_series s[16];
	uint64_t cum[N_SCORE_LE];
	char name[64], topic[KF_TOPIC_SIZE];
	uint64_t end = kf_clock_mono_ns() + (uint64_t)duration_s * 1000000000ULL;
	for (uint64_t tick = 0; !duration_s || kf_clock_mono_ns() < end; tick++) {
		for (size_t i = 0; i < n_sources; i++) {
			snprintf(name, sizeof(name), "sim-%zu", i);
			struct kf_msg m;
			kf_msg_init(&m, KF_MSG_METRIC, name, tick + 1);
			size_t n = sim_series(i, tick, s, cum);
			m.metric = (struct kf_msg_metric){ .source = name, .incarnation = i + 1,
				.full = true, .series = s, .n_series = n };
			kf_topic_metric(topic, name);
			if (send_msg(topic, &m) != KF_OK)
				return 1;
		}
		usleep(interval_ms * 1000);
	}
	return 0;
}

/* Prometheus text of source i's series at tick 0 (for the pushgateway). */
static int print_text(size_t i)
{
	struct kf_msg_series s[16];
	uint64_t cum[N_SCORE_LE];
	size_t n = sim_series(i, 0, s, cum);
	const char *last = "";
	for (size_t k = 0; k < n; k++) {
		if (strcmp(last, s[k].name) != 0)
			printf("# TYPE %s %s\n", s[k].name, kf_msg_metric_type_name(s[k].type));
		last = s[k].name;
		char lab[64] = "";
		if (s[k].n_labels)
			snprintf(lab, sizeof(lab), "{%s=\"%s\"}", s[k].labels[0].name,
				 s[k].labels[0].value);
		if (s[k].type != KF_MSG_METRIC_HISTOGRAM) {
			printf("%s%s %.17g\n", s[k].name, lab, s[k].value);
			continue;
		}
		for (size_t b = 0; b < s[k].n_buckets; b++)
			printf("%s_bucket{le=\"%g\"} %" PRIu64 "\n", s[k].name, s[k].bucket_le[b],
			       s[k].bucket_count[b]);
		printf("%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", s[k].name, s[k].count);
		printf("%s_sum %.17g\n%s_count %" PRIu64 "\n", s[k].name, s[k].sum, s[k].name,
		       s[k].count);
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' }, { "listen", no_argument, NULL, 'l' },
		{ "dial", no_argument, NULL, 'd' }, { "simulate", required_argument, NULL, 's' },
		{ "interval-ms", required_argument, NULL, 'i' },
		{ "duration-s", required_argument, NULL, 'D' },
		{ "text", required_argument, NULL, 't' }, { NULL, 0, NULL, 0 },
	};
	const char *url = NULL;
	enum kf_bus_mode mode = KF_BUS_DIAL;
	long sim = -1, text = -1;
	unsigned interval = 1000, duration = 0;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'u': url = optarg; break;
		case 'l': mode = KF_BUS_LISTEN; break;
		case 'd': mode = KF_BUS_DIAL; break;
		case 's': sim = atol(optarg); break;
		case 'i': interval = (unsigned)atoi(optarg); break;
		case 'D': duration = (unsigned)atoi(optarg); break;
		case 't': text = atol(optarg); break;
		default: fprintf(stderr, "see the comment at the top of gw_pub.c\n"); return 2;
		}
	}
	if (text >= 0)
		return print_text((size_t)text);
	if (!url) {
		fprintf(stderr, "kf-gw-pub: --url is required\n");
		return 2;
	}
	struct kf_strbuf why = KF_STRBUF_INIT;
	enum kf_err err = kf_bus_pub_new(&pub, mode, url, NULL, &why);
	if (err) {
		fprintf(stderr, "kf-gw-pub: %s\n", why.len ? why.buf : kf_strerror(err));
		return 1;
	}
	kf_strbuf_release(&why);
	int rc = sim >= 0 ? simulate((size_t)sim, interval, duration) : run_commands();
	/* Let queued messages leave before the socket closes. */
	usleep(100000);
	kf_bus_pub_free(pub);
	return rc;
}
