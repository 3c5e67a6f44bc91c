/*
 * bench_heartbeats — heartbeats per second the broker absorbs from
 * simulated workers, with no gap, and its CPU share doing it (issue 5).
 *
 * One process plays N workers: it publishes proto heartbeats on the
 * broker's ingest (topic hb.<id>, one sequence number series per id, like
 * keyforge-worker) from C PUB connections, on an even schedule. It runs a
 * list of steps "IDS:HZ" (IDS simulated workers at HZ heartbeats each per
 * second) for S seconds each. The broker's side is read from its own metric
 * updates on the events socket (metric.broker, one a second):
 *
 *   keyforge_worker_heartbeats               heartbeats accepted
 *   keyforge_bus_sequence_gaps_total{source} heartbeats lost on the way
 *   keyforge_bus_rate_limited_total{source}  dropped by the per-source limit
 *                                            (heartbeats: 20/s, burst 40)
 *   keyforge_bus_dropped_total{reason}       queue_full: lost inside the broker
 *
 * and its CPU time from /proc/<pid>/stat (utime + stime) over the sending
 * interval. A step is "absorbed" when every heartbeat sent was accepted:
 * no gap, no drop, nothing rate-limited. Between steps the broker is given
 * time to publish the counters that cover the step (--settle-ms).
 * The last lines are machine-readable: RESULT key=value ...
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "bench/hive/hbench.h"
#include "common/clock.h"

#define MAX_STEPS 32
#define MAX_IDS 4000           /* below the broker's 4096 sources and workers */
#define TABLE_SIZE 16384       /* metric series kept (power of two) */

struct step {
	uint32_t ids;
	double hz;
};

/* Cumulative value of one broker series, keyed "name{labels}". */
struct series {
	char *key;
	double value;
};

/* What the broker's counters say, summed over series. */
struct counters {
	double heartbeats, gaps, rate_limited, queue_full, decode_errors, rx_ingest;
};

struct bench {
	const char *ingest_url, *events_url, *prefix, *label;
	pid_t broker_pid;
	struct step steps[MAX_STEPS];
	size_t n_steps;
	double secs;
	uint64_t settle_ms, conns;
	double idle_cpu;                /* broker CPU % with no heartbeats */

	struct kf_bus_pub **pubs;
	uint64_t *seq;                  /* per simulated worker */
	uint32_t ids_seen;              /* workers 0..ids_seen-1 have joined */
	uint64_t incarnation, t0;

	struct kf_bus_sub *sub;
	pthread_t thread;
	atomic_bool stop;
	pthread_mutex_t mu;             /* guards table, updates, last_update_ns */
	struct series table[TABLE_SIZE];
	uint64_t updates, last_update_ns;
	bool full_seen;                 /* a full update arrived: every series known */
};

/* ---- the broker's metric updates ------------------------------------------------------------ */

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static void table_set(struct bench *b, const char *key, double value)
{
	for (uint64_t i = fnv1a(key);; i++) {
		struct series *s = &b->table[i & (TABLE_SIZE - 1)];

		if (!s->key) {
			if (!(s->key = strdup(key)))
				kf_hbench_die("out of memory");
		}
		if (!strcmp(s->key, key)) {
			s->value = value;
			return;
		}
	}
}

static bool wanted(const char *name)
{
	static const char *const names[] = {
		"keyforge_worker_heartbeats", "keyforge_bus_sequence_gaps_total",
		"keyforge_bus_rate_limited_total", "keyforge_bus_dropped_total",
		"keyforge_bus_decode_errors_total", "keyforge_bus_messages_received_total",
	};

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (!strcmp(name, names[i]))
			return true;
	return false;
}

static void on_metric(struct bench *b, const struct kf_msg_metric *m)
{
	struct kf_strbuf key = KF_STRBUF_INIT;

	pthread_mutex_lock(&b->mu);
	for (size_t i = 0; i < m->n_series; i++) {
		const struct kf_msg_series *s = &m->series[i];

		if (!wanted(s->name))
			continue;
		kf_strbuf_reset(&key);
		kf_strbuf_addstr(&key, s->name);
		for (size_t l = 0; l < s->n_labels; l++)
			kf_strbuf_addf(&key, "%c%s=%s", l ? ',' : '{', s->labels[l].name,
				       s->labels[l].value);
		if (s->n_labels)
			kf_strbuf_addch(&key, '}');
		table_set(b, key.buf, s->value);
	}
	b->updates++;
	b->full_seen |= m->full;
	b->last_update_ns = kf_clock_mono_ns();
	pthread_mutex_unlock(&b->mu);
	kf_strbuf_release(&key);
}

static void *metrics_main(void *arg)
{
	struct bench *b = arg;

	while (!atomic_load(&b->stop)) {
		nng_msg *nm = NULL;
		struct kf_msg *m = NULL;
		enum kf_err err = kf_bus_sub_recv(b->sub, 100, &nm);

		if (err == KF_ETIMEDOUT)
			continue;
		if (err)
			break;
		if (kf_msg_decode_pub(nng_msg_body(nm), nng_msg_len(nm), &m, NULL) == KF_OK &&
		    m->type == KF_MSG_METRIC)
			on_metric(b, &m->metric);
		kf_msg_free(m);
		nng_msg_free(nm);
	}
	return NULL;
}

static bool prefixed(const char *key, const char *prefix)
{
	return !strncmp(key, prefix, strlen(prefix));
}

/* True when key's label set is {source=<one of ours>}. */
static bool ours(const struct bench *b, const char *key)
{
	const char *p = strstr(key, "{source=");

	return p && !strncmp(p + 8, b->prefix, strlen(b->prefix)) && p[8 + strlen(b->prefix)] == '-';
}

static void read_counters(struct bench *b, struct counters *c)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_lock(&b->mu);
	for (size_t i = 0; i < TABLE_SIZE; i++) {
		const struct series *s = &b->table[i];

		if (!s->key)
			continue;
		if (!strcmp(s->key, "keyforge_worker_heartbeats"))
			c->heartbeats = s->value;
		else if (prefixed(s->key, "keyforge_bus_sequence_gaps_total") && ours(b, s->key))
			c->gaps += s->value;
		else if (prefixed(s->key, "keyforge_bus_rate_limited_total") && ours(b, s->key))
			c->rate_limited += s->value;
		else if (!strcmp(s->key, "keyforge_bus_dropped_total{reason=queue_full}"))
			c->queue_full = s->value;
		else if (prefixed(s->key, "keyforge_bus_decode_errors_total{socket=ingest"))
			c->decode_errors += s->value;
		else if (!strcmp(s->key, "keyforge_bus_messages_received_total{socket=ingest}"))
			c->rx_ingest = s->value;
	}
	pthread_mutex_unlock(&b->mu);
}

/* Waits until the broker has published a metric update at least `after_ms`
 * after `since` (mono ns), i.e. one whose counters include everything sent
 * before `since`, and a full update has arrived at some point (deltas carry
 * only the series that changed). Gives up after 10 s. */
static void wait_update(struct bench *b, uint64_t since, uint64_t after_ms)
{
	uint64_t want = since + after_ms * KF_HBENCH_NS_PER_MS;
	uint64_t give_up = kf_clock_mono_ns() + 10 * KF_HBENCH_NS_PER_S;

	for (;;) {
		uint64_t last;

		pthread_mutex_lock(&b->mu);
		last = b->full_seen ? b->last_update_ns : 0;
		pthread_mutex_unlock(&b->mu);
		if (last >= want)
			return;
		if (kf_clock_mono_ns() > give_up) {
			fprintf(stderr, "bench_heartbeats: no metric update from the broker on '%s'\n",
				b->events_url);
			return;
		}
		kf_hbench_sleep_until(kf_clock_mono_ns() + 20 * KF_HBENCH_NS_PER_MS);
	}
}

/* ---- sending ------------------------------------------------------------------------------------ */

static void send_hb(struct bench *b, uint32_t id, struct kf_strbuf *sb)
{
	char wid[64], topic[KF_TOPIC_SIZE];
	struct kf_msg m;
	enum kf_err err;

	snprintf(wid, sizeof wid, "%s-%04u", b->prefix, id);
	kf_topic_hb(topic, wid);
	kf_msg_init(&m, KF_MSG_HEARTBEAT, wid, ++b->seq[id]);
	m.heartbeat = (struct kf_msg_heartbeat){ .worker_id = wid, .host = "bench-host",
		.pid = 100000 + id, .incarnation = b->incarnation + id, .state = KF_WORKER_IDLE,
		.cpu_process = 0.01, .cpu_host = 0.5, .rss_bytes = 8u << 20, .slots_total = 1,
		.uptime_ms = (kf_clock_mono_ns() - b->t0) / KF_HBENCH_NS_PER_MS };
	kf_strbuf_reset(sb);
	if ((err = kf_msg_encode_pub(topic, &m, sb)))
		kf_hbench_die("cannot encode a heartbeat: %s", kf_strerror(err));
	if ((err = kf_bus_pub_send(b->pubs[id % b->conns], NULL, 0, sb->buf, sb->len)))
		kf_hbench_die("cannot publish a heartbeat: %s", kf_strerror(err));
}

/* Sends ids × hz heartbeats a second for `secs`: message k is due at
 * start + k / rate and goes to worker k % ids. Returns how many were sent;
 * *late_ms is how far behind schedule the sender fell at worst. */
static uint64_t send_step(struct bench *b, const struct step *s, double *late_ms)
{
	double rate = s->ids * s->hz;
	uint64_t total = (uint64_t)llround(rate * b->secs), k = 0;
	uint64_t start = kf_clock_mono_ns();
	struct kf_strbuf sb = KF_STRBUF_INIT;

	*late_ms = 0;
	while (k < total) {
		uint64_t now = kf_clock_mono_ns();
		uint64_t due = (uint64_t)((double)(now - start) * rate / 1e9) + 1;

		if (due > total)
			due = total;
		if (k < due) {
			double late = (double)(now - start) / 1e6 - (double)k * 1e3 / rate;

			if (late > *late_ms)
				*late_ms = late;
		}
		for (; k < due; k++)
			send_hb(b, (uint32_t)(k % s->ids), &sb);
		/* Next message's time; sleep at least until it is due. */
		if (k < total)
			kf_hbench_sleep_until(start + (uint64_t)((double)k * 1e9 / rate));
	}
	kf_strbuf_release(&sb);
	return total;
}

/* A worker the broker has not seen joins: it logs it and records it in the
 * database. That happens once per worker, not per heartbeat, so new ids
 * send one heartbeat each before the step is measured. */
static void warm_up(struct bench *b, const struct step *s)
{
	struct kf_strbuf sb = KF_STRBUF_INIT;
	uint64_t t;

	if (s->ids <= b->ids_seen)
		return;
	for (uint32_t id = b->ids_seen; id < s->ids; id++)
		send_hb(b, id, &sb);
	b->ids_seen = s->ids;
	kf_strbuf_release(&sb);
	t = kf_clock_mono_ns();
	kf_hbench_sleep_until(t + KF_HBENCH_NS_PER_S);
	wait_update(b, t + KF_HBENCH_NS_PER_S, b->settle_ms);
}

/* ---- steps ------------------------------------------------------------------------------------ */

static void counters_diff(const struct counters *a, const struct counters *z, struct counters *d)
{
	d->heartbeats = z->heartbeats - a->heartbeats;
	d->gaps = z->gaps - a->gaps;
	d->rate_limited = z->rate_limited - a->rate_limited;
	d->queue_full = z->queue_full - a->queue_full;
	d->decode_errors = z->decode_errors - a->decode_errors;
	d->rx_ingest = z->rx_ingest - a->rx_ingest;
}

static bool run_step(struct bench *b, size_t n, const struct step *s)
{
	struct counters c0, c1, d;
	long long cpu0, cpu1, self0, self1;
	uint64_t t_start, t_end, sent;
	double secs, cpu, self_cpu, late_ms, tps = kf_hbench_ticks_per_s();
	char load0[64], load1[64];
	bool absorbed;

	warm_up(b, s);
	read_counters(b, &c0);
	kf_hbench_loadavg(load0);
	cpu0 = kf_hbench_cpu_ticks(b->broker_pid);
	self0 = kf_hbench_cpu_ticks(getpid());
	t_start = kf_clock_mono_ns();
	sent = send_step(b, s, &late_ms);
	t_end = kf_clock_mono_ns();
	cpu1 = kf_hbench_cpu_ticks(b->broker_pid);
	self1 = kf_hbench_cpu_ticks(getpid());
	kf_hbench_loadavg(load1);
	secs = (double)(t_end - t_start) / 1e9;
	cpu = cpu0 >= 0 && cpu1 >= 0 ? 100.0 * (double)(cpu1 - cpu0) / tps / secs : NAN;
	self_cpu = 100.0 * (double)(self1 - self0) / tps / secs;
	wait_update(b, t_end, b->settle_ms);
	read_counters(b, &c1);
	counters_diff(&c0, &c1, &d);
	/* >=: heartbeats of real workers, if any, count too. */
	absorbed = d.heartbeats >= (double)sent && d.gaps == 0 && d.rate_limited == 0 &&
		   d.queue_full == 0;
	printf("step %zu %s: %u workers x %g Hz = %.0f heartbeats/s offered, %.1f s\n", n + 1,
	       b->label, s->ids, s->hz, s->ids * s->hz, secs);
	printf("  sent %llu (%.0f/s, at worst %.1f ms behind schedule); broker accepted %.0f "
	       "(%.0f/s); gaps %.0f, rate-limited %.0f, queue-full %.0f, decode errors %.0f -> %s\n",
	       (unsigned long long)sent, (double)sent / secs, late_ms, d.heartbeats,
	       d.heartbeats / secs, d.gaps, d.rate_limited, d.queue_full, d.decode_errors,
	       absorbed ? "absorbed" : "NOT absorbed");
	printf("  broker CPU %.1f%% of one core (idle %.1f%%; %.1f us per heartbeat above idle); "
	       "generator %.1f%%; load %s -> %s\n", cpu, b->idle_cpu,
	       (cpu - b->idle_cpu) / 100.0 * secs * 1e6 / (double)(sent ? sent : 1), self_cpu,
	       load0, load1);
	printf("RESULT label=%s step=%zu ids=%u hz=%g offered=%.0f sent_rate=%.0f accepted_rate=%.0f "
	       "gaps=%.0f rate_limited=%.0f queue_full=%.0f broker_cpu_pct=%.1f absorbed=%d "
	       "load=\"%s\"\n", *b->label ? b->label : "-", n + 1, s->ids, s->hz, s->ids * s->hz,
	       (double)sent / secs, d.heartbeats / secs, d.gaps, d.rate_limited, d.queue_full, cpu,
	       absorbed, load0);
	fflush(stdout);
	return absorbed;
}

/* The broker's CPU share with no heartbeats (its 1 s tick, metric updates). */
static void idle_step(struct bench *b)
{
	long long cpu0 = kf_hbench_cpu_ticks(b->broker_pid), cpu1;
	uint64_t t0 = kf_clock_mono_ns(), t1;
	char load[64];

	kf_hbench_sleep_until(t0 + (uint64_t)(b->secs * 1e9));
	cpu1 = kf_hbench_cpu_ticks(b->broker_pid);
	t1 = kf_clock_mono_ns();
	b->idle_cpu = 100.0 * (double)(cpu1 - cpu0) / kf_hbench_ticks_per_s() /
		      ((double)(t1 - t0) / 1e9);
	kf_hbench_loadavg(load);
	printf("idle %s: broker CPU %.1f%% of one core with no heartbeats for %.1f s; load %s\n",
	       b->label, b->idle_cpu, (double)(t1 - t0) / 1e9, load);
}

/* ---- options ------------------------------------------------------------------------------ */

static void usage(int status)
{
	fputs("usage: bench_heartbeats --ingest URL --events URL --broker-pid PID\n"
	      "                        [--steps IDS:HZ,...] [--secs S] [--settle-ms MS]\n"
	      "                        [--conns C] [--prefix P] [--label TEXT]\n"
	      "  --steps   simulated workers and heartbeats per second each, per step\n"
	      "            (default 200:1,200:5,200:10,200:20,1000:20,2000:20,4000:20)\n"
	      "  --secs    seconds per step (default 10)\n"
	      "  --settle-ms  wait for a broker metric update this long after a step\n"
	      "            (default 1500; the broker publishes one a second)\n"
	      "  --conns   PUB connections the workers are spread over (default 200)\n"
	      "  --prefix  worker ids are PREFIX-0000... (default sim)\n",
	      status ? stderr : stdout);
	exit(status);
}

static void parse_steps(struct bench *b, const char *text)
{
	const char *p = text;

	b->n_steps = 0;
	while (*p) {
		unsigned ids;
		double hz;
		int used;

		if (b->n_steps == MAX_STEPS || sscanf(p, "%u:%lf%n", &ids, &hz, &used) != 2 ||
		    !ids || ids > MAX_IDS || !(hz > 0) || hz > 1000)
			kf_hbench_die("--steps: cannot read '%s' (IDS:HZ, IDS 1..%d, HZ up to 1000)", p,
				      MAX_IDS);
		b->steps[b->n_steps++] = (struct step){ ids, hz };
		p += used;
		if (*p == ',')
			p++;
	}
	if (!b->n_steps)
		usage(2);
}

static void parse(struct bench *b, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ingest", required_argument, NULL, 'i' }, { "events", required_argument, NULL, 'e' },
		{ "broker-pid", required_argument, NULL, 'p' },
		{ "steps", required_argument, NULL, 's' }, { "secs", required_argument, NULL, 'S' },
		{ "settle-ms", required_argument, NULL, 'W' },
		{ "conns", required_argument, NULL, 'c' }, { "prefix", required_argument, NULL, 'P' },
		{ "label", required_argument, NULL, 'l' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(b, 0, sizeof(*b));
	b->prefix = "sim";
	b->label = "";
	b->secs = 10;
	b->settle_ms = 1500;
	b->conns = 200;
	parse_steps(b, "200:1,200:5,200:10,200:20,1000:20,2000:20,4000:20");
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'i': b->ingest_url = optarg; break;
		case 'e': b->events_url = optarg; break;
		case 'p': b->broker_pid = (pid_t)kf_hbench_u64_arg("--broker-pid", optarg); break;
		case 's': parse_steps(b, optarg); break;
		case 'S': b->secs = kf_hbench_f64_arg("--secs", optarg); break;
		case 'W': b->settle_ms = kf_hbench_u64_arg("--settle-ms", optarg); break;
		case 'c': b->conns = kf_hbench_u64_arg("--conns", optarg); break;
		case 'P': b->prefix = optarg; break;
		case 'l': b->label = optarg; break;
		case 'h': usage(0); break;
		default: usage(2);
		}
	}
	if (!b->ingest_url || !b->events_url || !b->broker_pid || !b->conns || b->conns > MAX_IDS ||
	    !(b->secs > 0) || optind != argc)
		usage(2);
}

/* ---- main ------------------------------------------------------------------------------------ */

static void open_pubs(struct bench *b)
{
	uint64_t until = kf_clock_mono_ns() + 10 * KF_HBENCH_NS_PER_S;

	if (!(b->pubs = calloc(b->conns, sizeof(*b->pubs))))
		kf_hbench_die("out of memory");
	for (uint64_t i = 0; i < b->conns; i++) {
		struct kf_strbuf why = KF_STRBUF_INIT;
		enum kf_err err = kf_bus_pub_new(&b->pubs[i], KF_BUS_DIAL, b->ingest_url, NULL, &why);

		if (err)
			kf_hbench_die("publisher for '%s': %s %s", b->ingest_url, kf_strerror(err),
				      why.buf);
		kf_strbuf_release(&why);
	}
	/* Nothing is delivered before a dial completes: wait for all of them. */
	for (uint64_t i = 0; i < b->conns; i++)
		while (kf_bus_sock_peers(kf_bus_pub_sock(b->pubs[i])) == 0) {
			if (kf_clock_mono_ns() > until)
				kf_hbench_die("no connection to the ingest socket '%s'", b->ingest_url);
			kf_hbench_sleep_until(kf_clock_mono_ns() + 10 * KF_HBENCH_NS_PER_MS);
		}
}

int main(int argc, char **argv)
{
	static const char topic[] = "metric.broker"; /* + its NUL: this source only */
	struct bench b;
	size_t absorbed_best = 0;
	bool any = false;

	parse(&b, argc, argv);
	b.t0 = kf_clock_mono_ns();
	if (getrandom(&b.incarnation, sizeof b.incarnation, 0) != sizeof b.incarnation)
		b.incarnation = kf_clock_wall_ns();
	b.incarnation &= ~0xffffull; /* + id: distinct per simulated worker */
	if (!(b.seq = calloc(MAX_IDS, sizeof(*b.seq))))
		kf_hbench_die("out of memory");
	pthread_mutex_init(&b.mu, NULL);
	atomic_init(&b.stop, false);
	b.sub = kf_hbench_sub_open(b.events_url, topic, sizeof topic, 1024, 5000);
	if (pthread_create(&b.thread, NULL, metrics_main, &b))
		kf_hbench_die("cannot start the metrics thread");
	open_pubs(&b);
	/* A baseline of the broker's counters before the first heartbeat. */
	wait_update(&b, kf_clock_mono_ns(), 0);
	idle_step(&b);
	for (size_t i = 0; i < b.n_steps; i++) {
		if (run_step(&b, i, &b.steps[i]) && (!any || b.steps[i].ids * b.steps[i].hz >
				b.steps[absorbed_best].ids * b.steps[absorbed_best].hz)) {
			absorbed_best = i;
			any = true;
		}
	}
	if (any)
		printf("RESULT label=%s ceiling_absorbed=%.0f ids=%u hz=%g\n",
		       *b.label ? b.label : "-", b.steps[absorbed_best].ids * b.steps[absorbed_best].hz,
		       b.steps[absorbed_best].ids, b.steps[absorbed_best].hz);
	else
		printf("RESULT label=%s ceiling_absorbed=0\n", *b.label ? b.label : "-");
	atomic_store(&b.stop, true);
	pthread_join(b.thread, NULL);
	for (uint64_t i = 0; i < b.conns; i++)
		kf_bus_pub_free(b.pubs[i]);
	free(b.pubs);
	kf_bus_sub_free(b.sub);
	for (size_t i = 0; i < TABLE_SIZE; i++)
		free(b.table[i].key);
	free(b.seq);
	return 0;
}
