/*
 * bench_jobs — jobs per second through submit → lease → complete, and the
 * latency from submit to running (issue 5, "Speed and memory").
 *
 * Against a running broker with workers (bench/hive/run-all starts them):
 * W submitter threads send N zero-step jobs (synchronous submit RPCs, W in
 * flight), either as fast as the broker acknowledges them (--rate 0) or on
 * an open-loop schedule of R jobs/s (job i is due at start + i/R, whatever
 * happened to the earlier ones). A subscriber on the events socket records
 * every job event (job.<id>) as it arrives.
 *
 *   jobs/s             N / (last job's "succeeded" event − first submit sent)
 *   submit→running     "running" event received − submit sent, per job
 *   submit→announced   the running event's own timestamp − submit sent: set
 *                      when the broker, the claim committed, answers the
 *                      worker and queues the event (sent at the end of its
 *                      loop's turn); the same wall clock, one machine. What
 *                      submit→running adds to it is the event's way to this
 *                      observer, which shares the two cores.
 *   submit→succeeded   "succeeded" event received − submit sent
 *   submit ack         submit RPC round trip (durable in PostgreSQL)
 *
 * With --no-events nothing subscribes: the generator then costs the machine
 * only its submits, as beanstalkd's client does, and every job is timed
 * from the broker's record instead (get: started and finished, taken in
 * the claim's and the report's statements, a little before their commits).
 *
 *   submit→started     started (broker's record) − submit sent (wall clock)
 *   jobs/s             N / (last job's finished − first submit sent)
 *
 * Job events are pub/sub and may be lost; the broker numbers them, so the
 * gaps are counted. A job whose running event is missing is timed with
 * the started timestamp the get RPC returns (the claim inside the database
 * transaction, a little before the commit), and the count of such jobs is
 * printed. The last line is machine-readable: RESULT key=value ...
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "bench/hive/hbench.h"
#include "common/clock.h"

struct submit_rec {
	uint64_t job_id;       /* 0: failed */
	uint64_t t_send;       /* mono ns */
	uint64_t wall_send;    /* wall ns, for the get fallback */
	uint64_t t_ack;
};

struct event_rec {
	uint64_t job_id;
	uint64_t t_recv;       /* mono ns */
	uint64_t ts_wall;      /* the broker's stamp: when it queued the event */
	uint32_t attempt;
	uint8_t state;
};

struct cpu_pid {
	char name[32];
	pid_t pid;
	long long t0, t1;         /* CPU ticks */
	long long cs0, cs1;       /* context switches, all threads */
};

/* The broker's store series that the run reads from its metric updates. */
enum db_series { DB_BATCHES, DB_REQUESTS, DB_TXN_SECONDS, DB_N };
static const char *const db_names[DB_N] = {
	[DB_BATCHES] = "keyforge_db_batches_total",
	[DB_REQUESTS] = "keyforge_db_requests_total",
	[DB_TXN_SECONDS] = "keyforge_db_transaction_seconds",
};

struct bench {
	/* options */
	const char *rpc_url, *events_url, *token_file, *corpus, *label, *trace;
	bool no_events;                     /* --no-events: times from the broker's record */
	bool event_lag;                     /* --event-lag: running event − broker's started */
	uint64_t jobs, inflight;
	double rate;
	uint64_t timeout_s;
	struct cpu_pid cpu[16];
	size_t n_cpu;
	struct kf_hbench_machine machine0, machine1;  /* the run's window */
	bool have_machine;

	struct kf_hbench_rpc rpc;
	struct kf_bus_sub *sub;
	pthread_t ev_thread;
	atomic_bool ev_stop;

	struct submit_rec *subs;
	atomic_uint_fast64_t next;          /* next job index to submit */
	atomic_uint_fast64_t submit_errors;
	uint64_t t_start;

	/* The broker's store counters from its metric updates (metric.broker). */
	pthread_mutex_t db_mu;
	double db[DB_N];                    /* the latest values, by enum db_series */
	unsigned db_seen;                   /* bit i: db[i] known */
	uint64_t db_update_ns;              /* mono ns of the last update seen */
	double db0[DB_N], db1[DB_N];        /* before, after */

	struct event_rec *events;           /* written by the events thread only */
	size_t n_events, cap_events;
	atomic_uint_fast64_t succeeded_seen;
	uint64_t ev_gaps, ev_last_seq, ev_overflow, ev_bad;
};

/* ---- events --------------------------------------------------------------------- */

static void on_event(struct bench *b, const struct kf_msg *m, uint64_t now)
{
	const struct kf_msg_job_event *e = &m->job_event;

	if (b->ev_last_seq && m->seq > b->ev_last_seq + 1)
		b->ev_gaps += m->seq - b->ev_last_seq - 1;
	b->ev_last_seq = m->seq;
	if (b->n_events == b->cap_events) {
		b->ev_overflow++;
		return;
	}
	b->events[b->n_events++] = (struct event_rec){ .job_id = e->job_id, .t_recv = now,
		.ts_wall = m->ts_ns, .attempt = e->attempt, .state = (uint8_t)e->state };
	if (e->state == KF_JOB_SUCCEEDED)
		atomic_fetch_add(&b->succeeded_seen, 1);
}

static void on_metric(struct bench *b, const struct kf_msg_metric *m, uint64_t now)
{
	pthread_mutex_lock(&b->db_mu);
	for (size_t i = 0; i < m->n_series; i++) {
		for (int k = 0; k < DB_N; k++) {
			if (strcmp(m->series[i].name, db_names[k]) != 0)
				continue;
			/* the histogram's sum: seconds spent in transactions */
			b->db[k] = k == DB_TXN_SECONDS ? m->series[i].sum : m->series[i].value;
			b->db_seen |= 1u << k;
		}
	}
	b->db_update_ns = now;
	pthread_mutex_unlock(&b->db_mu);
}

/* The store's series once an update newer than `after` (mono ns) arrived
 * and all are known (a delta update carries only what changed; a full one
 * comes every 5 s); gives up after 7 s. */
static void db_counters(struct bench *b, uint64_t after, double out[DB_N])
{
	uint64_t give_up = kf_clock_mono_ns() + 7 * KF_HBENCH_NS_PER_S;

	for (;;) {
		bool fresh;

		pthread_mutex_lock(&b->db_mu);
		memcpy(out, b->db, sizeof(b->db));
		fresh = b->db_update_ns > after && b->db_seen == (1u << DB_N) - 1;
		pthread_mutex_unlock(&b->db_mu);
		if (fresh || kf_clock_mono_ns() > give_up)
			return;
		kf_hbench_sleep_until(kf_clock_mono_ns() + 20 * KF_HBENCH_NS_PER_MS);
	}
}

static void *events_main(void *arg)
{
	struct bench *b = arg;

	while (!atomic_load(&b->ev_stop)) {
		nng_msg *nm = NULL;
		struct kf_msg *m = NULL;
		enum kf_err err = kf_bus_sub_recv(b->sub, 100, &nm);
		uint64_t now = kf_clock_mono_ns();

		if (err == KF_ETIMEDOUT)
			continue;
		if (err)
			break;
		if (kf_msg_decode_pub(nng_msg_body(nm), nng_msg_len(nm), &m, NULL) != KF_OK)
			b->ev_bad++;
		else if (m->type == KF_MSG_JOB_EVENT)
			on_event(b, m, now);
		else if (m->type == KF_MSG_METRIC)
			on_metric(b, &m->metric, now);
		kf_msg_free(m);
		nng_msg_free(nm);
	}
	return NULL;
}

/* ---- submitters --------------------------------------------------------------------- */

static void *submitter_main(void *arg)
{
	struct bench *b = arg;
	uint64_t i;

	while ((i = atomic_fetch_add(&b->next, 1)) < b->jobs) {
		struct submit_rec *s = &b->subs[i];
		struct kf_strbuf why = KF_STRBUF_INIT;
		struct kf_msg req, *rep = NULL;
		enum kf_err err;

		if (b->rate > 0)
			kf_hbench_sleep_until(b->t_start + (uint64_t)((double)i * 1e9 / b->rate));
		kf_msg_init(&req, KF_MSG_SUBMIT_REQ, NULL, 0);
		req.submit_req.params = (struct kf_msg_job_params){ .corpus = b->corpus,
			.start_layout = "qwertyuiopasdfghjkl;zxcvbnm,./", .steps = 0, .seed = i + 1,
			.restarts = 1 };
		s->wall_send = kf_clock_wall_ns();
		s->t_send = kf_clock_mono_ns();
		err = kf_hbench_rpc_call(&b->rpc, &req, 30000, &rep, &why);
		s->t_ack = kf_clock_mono_ns();
		if (err) {
			if (atomic_fetch_add(&b->submit_errors, 1) < 5)
				fprintf(stderr, "bench_jobs: submit %llu failed: %s (%s)\n",
					(unsigned long long)i, kf_strerror(err), why.buf);
		} else {
			s->job_id = rep->submit_rep.job_id;
		}
		kf_msg_free(rep);
		kf_strbuf_release(&why);
	}
	return NULL;
}

/* ---- waiting for the end --------------------------------------------------------------- */

/* Jobs not final yet, from the broker (list of active states, total only). */
static int64_t active_jobs(struct bench *b)
{
	struct kf_msg req, *rep = NULL;
	int64_t n = -1;

	kf_msg_init(&req, KF_MSG_LIST_REQ, NULL, 0);
	req.list_req.state_mask = KF_JOB_STATE_BIT(KF_JOB_PENDING) |
		KF_JOB_STATE_BIT(KF_JOB_RUNNING) | KF_JOB_STATE_BIT(KF_JOB_RETRYING);
	req.list_req.limit = 1;
	if (kf_hbench_rpc_call(&b->rpc, &req, 5000, &rep, NULL) == KF_OK)
		n = (int64_t)rep->list_rep.total;
	kf_msg_free(rep);
	return n;
}

/* Waits until every submitted job succeeded (events), or the broker has no
 * active job left; returns the mono time the wait ended. */
static uint64_t wait_final(struct bench *b, uint64_t ok_submits)
{
	uint64_t deadline = kf_clock_mono_ns() + b->timeout_s * KF_HBENCH_NS_PER_S;
	uint64_t last_poll = 0;

	for (;;) {
		uint64_t now = kf_clock_mono_ns();

		if (atomic_load(&b->succeeded_seen) >= ok_submits)
			return now;
		/* Without events the list is the only sign of the end: poll it
		 * often enough that the idle tail does not dilute the CPU and
		 * machine figures. */
		if (now - last_poll > (b->no_events ? 20 : 500) * KF_HBENCH_NS_PER_MS) {
			last_poll = now;
			if (active_jobs(b) == 0)
				return now;
		}
		if (now > deadline) {
			fprintf(stderr, "bench_jobs: timed out after %llu s waiting for the jobs\n",
				(unsigned long long)b->timeout_s);
			return now;
		}
		kf_hbench_sleep_until(now + 2 * KF_HBENCH_NS_PER_MS);
	}
}

/* ---- results -------------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *x)
{
	uint64_t p = *(const uint64_t *)a, q = *(const uint64_t *)x;

	return (p > q) - (p < q);
}

/* Index of job_id in the sorted id table, or -1. */
static int64_t find_job(const uint64_t *ids, size_t n, uint64_t id)
{
	const uint64_t *p = bsearch(&id, ids, n, sizeof(*ids), cmp_u64);

	return p ? p - ids : -1;
}

/* A job's started and finished times from the get RPC (wall ns; 0 when
 * unknown, and finished only for a job that succeeded). */
static void times_from_get(struct bench *b, uint64_t id, uint64_t *started, uint64_t *finished)
{
	struct kf_msg req, *rep = NULL;

	*started = *finished = 0;
	kf_msg_init(&req, KF_MSG_GET_REQ, NULL, 0);
	req.get_req.job_id = id;
	if (kf_hbench_rpc_call(&b->rpc, &req, 5000, &rep, NULL) == KF_OK && rep->get_rep.job) {
		*started = rep->get_rep.job->started_ns;
		if (rep->get_rep.job->state == KF_JOB_SUCCEEDED)
			*finished = rep->get_rep.job->finished_ns;
	}
	kf_msg_free(rep);
}

/* A wall-clock time of the broker's as this process's monotonic clock,
 * through the pair read when the job was submitted. */
static uint64_t as_mono(const struct submit_rec *s, uint64_t wall)
{
	return wall ? s->t_send + (wall - s->wall_send) : 0;
}

struct tally {
	double *to_running, *to_done, *ack, *lag, *to_stamp;
	size_t n_running, n_done, n_ack, n_fallback, n_unknown, n_not_succeeded, n_lag, n_stamp;
	uint64_t t_first, t_last_done, t_last_ack;
};

/* --trace: one line per job, times in ms since the first submit ("-":
 * never seen). */
static void put_ms(FILE *f, uint64_t t, uint64_t t0)
{
	if (t)
		fprintf(f, " %.3f", (double)(t - t0) / 1e6);
	else
		fputs(" -", f);
}

static void write_trace(const struct bench *b, size_t n_ids, const size_t *of_id,
			const uint64_t *run, const uint64_t *done, uint64_t t0)
{
	FILE *f = fopen(b->trace, "w");

	if (!f)
		kf_hbench_die("cannot write %s: %s", b->trace, strerror(errno));
	/* The wall clock of the first submit, to line the trace up with logs. */
	fprintf(f, "# first submit at %.6f (wall clock, s)\n",
		(double)(kf_clock_wall_ns() - (kf_clock_mono_ns() - t0)) / 1e9);
	fputs("# job_id submit_ms ack_ms running_ms succeeded_ms (since the first submit)\n", f);
	for (size_t j = 0; j < n_ids; j++) {
		const struct submit_rec *sub = &b->subs[of_id[j]];

		fprintf(f, "%" PRIu64, sub->job_id);
		put_ms(f, sub->t_send, t0);
		put_ms(f, sub->t_ack, t0);
		put_ms(f, run[j], t0);
		put_ms(f, done[j], t0);
		fputc('\n', f);
	}
	if (fclose(f))
		kf_hbench_die("cannot write %s: %s", b->trace, strerror(errno));
}

static void tally(struct bench *b, struct tally *t)
{
	uint64_t *ids = calloc(b->jobs, sizeof(*ids));
	uint64_t *run = calloc(b->jobs, sizeof(*run)), *done = calloc(b->jobs, sizeof(*done));
	uint64_t *stamp = calloc(b->jobs, sizeof(*stamp));
	size_t *of_id = calloc(b->jobs, sizeof(*of_id));
	size_t n_ids = 0;

	if (!ids || !run || !done || !of_id || !stamp)
		kf_hbench_die("out of memory");
	/* Sorted ids, and where each id's submit record is. */
	for (size_t i = 0; i < b->jobs; i++)
		if (b->subs[i].job_id)
			ids[n_ids++] = b->subs[i].job_id;
	qsort(ids, n_ids, sizeof(*ids), cmp_u64);
	for (size_t i = 0; i < b->jobs; i++)
		if (b->subs[i].job_id)
			of_id[find_job(ids, n_ids, b->subs[i].job_id)] = i;
	for (size_t j = 0; b->no_events && j < n_ids; j++) {
		const struct submit_rec *s = &b->subs[of_id[j]];
		uint64_t started, finished;

		times_from_get(b, ids[j], &started, &finished);
		run[j] = as_mono(s, started);
		done[j] = as_mono(s, finished);
	}
	for (size_t k = 0; k < b->n_events; k++) {
		const struct event_rec *e = &b->events[k];
		int64_t j = find_job(ids, n_ids, e->job_id);

		if (j < 0)
			continue;
		if (e->state == KF_JOB_RUNNING && !run[j]) {
			run[j] = e->t_recv;
			stamp[j] = e->ts_wall;
		}
		if (e->state == KF_JOB_SUCCEEDED && !done[j])
			done[j] = e->t_recv;
	}
	t->t_first = UINT64_MAX;
	for (size_t j = 0; j < n_ids; j++) {
		const struct submit_rec *s = &b->subs[of_id[j]];

		if (s->t_send < t->t_first)
			t->t_first = s->t_send;
		if (s->t_ack > t->t_last_ack)
			t->t_last_ack = s->t_ack;
		t->ack[t->n_ack++] = (double)(s->t_ack - s->t_send) / 1e6;
		if (run[j]) {
			t->to_running[t->n_running++] = (double)(run[j] - s->t_send) / 1e6;
			if (stamp[j])
				t->to_stamp[t->n_stamp++] =
					((double)stamp[j] - (double)s->wall_send) / 1e6;
			if (b->event_lag && !b->no_events) {
				uint64_t st, fin;

				times_from_get(b, ids[j], &st, &fin);
				if (st)
					t->lag[t->n_lag++] =
						((double)run[j] - (double)as_mono(s, st)) / 1e6;
			}
		} else {
			uint64_t st, fin;

			times_from_get(b, ids[j], &st, &fin);
			if (st) {
				t->to_running[t->n_running++] =
					((double)st - (double)s->wall_send) / 1e6;
				t->n_fallback++;
			} else {
				t->n_unknown++;
			}
		}
		if (done[j]) {
			t->to_done[t->n_done++] = (double)(done[j] - s->t_send) / 1e6;
			if (done[j] > t->t_last_done)
				t->t_last_done = done[j];
		} else {
			t->n_not_succeeded++;
		}
	}
	if (b->trace)
		write_trace(b, n_ids, of_id, run, done, t->t_first);
	free(ids);
	free(run);
	free(done);
	free(stamp);
	free(of_id);
}

static void print_dist(const char *what, double *v, size_t n)
{
	kf_hbench_percentile(v, n, 50);
	printf("  %-18s n=%zu  p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms\n", what, n,
	       kf_hbench_percentile_sorted(v, n, 50), kf_hbench_percentile_sorted(v, n, 90),
	       kf_hbench_percentile_sorted(v, n, 99), n ? v[n - 1] : NAN);
}

/* ---- options ---------------------------------------------------------------------------- */

static void usage(int status)
{
	fputs("usage: bench_jobs --rpc URL (--events URL | --no-events) [--token-file FILE]\n"
	      "                  [--jobs N] [--inflight W] [--rate R] [--corpus NAME]\n"
	      "                  [--timeout S] [--cpu NAME=PID]... [--label TEXT] [--trace FILE]\n"
	      "  --events URL    the broker's events socket: jobs are timed by their events\n"
	      "  --no-events     subscribe to nothing (--events is then ignored) and time\n"
	      "                  each job from the broker's record (started, finished: a\n"
	      "                  little before their commits), so that the generator costs\n"
	      "                  the machine only its submits\n"
	      "  --event-lag     with --events: also fetch each job's record and print how\n"
	      "                  long after the broker's started its running event came\n"
	      "                  (what --no-events timing leaves out)\n"
	      "  --jobs N        zero-step jobs to push through (default 5000)\n"
	      "  --inflight W    submit RPCs in flight (threads; default 64)\n"
	      "  --rate R        open loop: submit R jobs/s on a fixed schedule;\n"
	      "                  0 (default) = as fast as the broker acknowledges\n"
	      "  --corpus NAME   corpus parameter of the jobs (default \"default\")\n"
	      "  --timeout S     give up waiting for the jobs after S seconds (default 300)\n"
	      "  --cpu NAME=PID  report the CPU time PID used during the run (repeatable)\n"
	      "  --trace FILE    write each job's submit, ack, running and succeeded times\n"
	      "                  (ms since the first submit) to FILE, to find where a tail is\n",
	      status ? stderr : stdout);
	exit(status);
}

static void add_cpu(struct bench *b, const char *arg)
{
	const char *eq = strchr(arg, '=');
	struct cpu_pid *c;

	if (!eq || eq == arg || b->n_cpu == sizeof b->cpu / sizeof b->cpu[0])
		usage(2);
	c = &b->cpu[b->n_cpu++];
	snprintf(c->name, sizeof c->name, "%.*s", (int)(eq - arg), arg);
	c->pid = (pid_t)kf_hbench_u64_arg("--cpu", eq + 1);
}

static void parse(struct bench *b, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "rpc", required_argument, NULL, 'r' }, { "events", required_argument, NULL, 'e' },
		{ "token-file", required_argument, NULL, 't' }, { "jobs", required_argument, NULL, 'n' },
		{ "inflight", required_argument, NULL, 'w' }, { "rate", required_argument, NULL, 'R' },
		{ "corpus", required_argument, NULL, 'c' }, { "timeout", required_argument, NULL, 'T' },
		{ "cpu", required_argument, NULL, 'p' }, { "label", required_argument, NULL, 'l' },
		{ "trace", required_argument, NULL, 'x' }, { "help", no_argument, NULL, 'h' },
		{ "no-events", no_argument, NULL, 'N' },
		{ "event-lag", no_argument, NULL, 'L' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*b = (struct bench){ .corpus = "default", .jobs = 5000, .inflight = 64, .timeout_s = 300,
		.label = "" };
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'r': b->rpc_url = optarg; break;
		case 'e': b->events_url = optarg; break;
		case 't': b->token_file = optarg; break;
		case 'n': b->jobs = kf_hbench_u64_arg("--jobs", optarg); break;
		case 'w': b->inflight = kf_hbench_u64_arg("--inflight", optarg); break;
		case 'R': b->rate = kf_hbench_f64_arg("--rate", optarg); break;
		case 'c': b->corpus = optarg; break;
		case 'T': b->timeout_s = kf_hbench_u64_arg("--timeout", optarg); break;
		case 'p': add_cpu(b, optarg); break;
		case 'l': b->label = optarg; break;
		case 'x': b->trace = optarg; break;
		case 'N': b->no_events = true; break;
		case 'L': b->event_lag = true; break;
		case 'h': usage(0); break;
		default: usage(2);
		}
	}
	if (!b->rpc_url || (!b->events_url && !b->no_events) || !b->jobs || !b->inflight ||
	    b->inflight > 1024 || optind != argc)
		usage(2);
}

/* ---- main ----------------------------------------------------------------------------------- */

static void run(struct bench *b, pthread_t *th)
{
	for (size_t i = 0; i < b->n_cpu; i++) {
		b->cpu[i].t0 = kf_hbench_cpu_ticks(b->cpu[i].pid);
		b->cpu[i].cs0 = kf_hbench_ctx_switches(b->cpu[i].pid);
	}
	b->have_machine = kf_hbench_machine(&b->machine0);
	b->t_start = kf_clock_mono_ns() + 20 * KF_HBENCH_NS_PER_MS;
	for (uint64_t i = 0; i < b->inflight; i++)
		if (pthread_create(&th[i], NULL, submitter_main, b))
			kf_hbench_die("cannot start submitter threads");
	for (uint64_t i = 0; i < b->inflight; i++)
		pthread_join(th[i], NULL);
}

static void report(struct bench *b, struct tally *t, uint64_t t_end, const char *load0)
{
	double secs, rate, submit_rate, tps = kf_hbench_ticks_per_s();
	double run_p50, run_p99, ack_p99, stamp_p99;
	char load1[64];

	kf_hbench_loadavg(load1);
	/* The last "succeeded" event ends the run, unless some were lost: then
	 * the moment the broker's list showed no active job does. */
	if (t->n_not_succeeded || !t->t_last_done)
		t->t_last_done = t_end;
	secs = (double)(t->t_last_done - t->t_first) / 1e9;
	rate = (double)t->n_ack / secs;
	submit_rate = (double)t->n_ack / ((double)(t->t_last_ack - t->t_first) / 1e9);
	printf("bench_jobs %s: %llu zero-step jobs, %llu submitters, %s\n", b->label,
	       (unsigned long long)b->jobs, (unsigned long long)b->inflight,
	       b->rate > 0 ? "open loop" : "as fast as acknowledged");
	if (b->rate > 0)
		printf("  offered rate       %.0f jobs/s\n", b->rate);
	printf("  load average       %s (start)  %s (end)\n", load0, load1);
	printf("  jobs/s             %.1f  (%zu final in %.3f s)\n", rate, t->n_ack, secs);
	printf("  submits/s          %.1f  (errors %llu)\n", submit_rate,
	       (unsigned long long)atomic_load(&b->submit_errors));
	print_dist("submit ack", t->ack, t->n_ack);
	print_dist(b->no_events ? "submit->started" : "submit->running", t->to_running,
		   t->n_running);
	if (t->n_stamp)
		print_dist("submit->announced", t->to_stamp, t->n_stamp);
	stamp_p99 = kf_hbench_percentile_sorted(t->to_stamp, t->n_stamp, 99);
	run_p50 = kf_hbench_percentile_sorted(t->to_running, t->n_running, 50);
	run_p99 = kf_hbench_percentile_sorted(t->to_running, t->n_running, 99);
	ack_p99 = kf_hbench_percentile_sorted(t->ack, t->n_ack, 99);
	print_dist("submit->succeeded", t->to_done, t->n_done);
	if (t->n_lag)
		print_dist("started->event", t->lag, t->n_lag);
	if (b->no_events)
		printf("  job events         none subscribed (--no-events): times from the broker's "
		       "record; unknown for %zu jobs, not succeeded %zu\n", t->n_unknown,
		       t->n_not_succeeded);
	else
		printf("  job events         %zu received, %llu lost (sequence gaps), %llu over "
		       "capacity; running time from get for %zu jobs, unknown for %zu; not seen "
		       "succeeded %zu%s\n", b->n_events, (unsigned long long)b->ev_gaps,
		       (unsigned long long)b->ev_overflow, t->n_fallback, t->n_unknown,
		       t->n_not_succeeded,
		       t->n_not_succeeded ? " (end taken from the broker's job list)" : "");
	if (!b->no_events) {
		double txns = b->db1[DB_BATCHES] - b->db0[DB_BATCHES];

		printf("  database           %.0f transactions (%.0f/s), %.0f store requests, %.1f "
		       "per transaction (group commit; +-1 s of the broker's own sweeps); in "
		       "transactions %.0f%% of the time\n", txns, txns / secs,
		       b->db1[DB_REQUESTS] - b->db0[DB_REQUESTS],
		       (b->db1[DB_REQUESTS] - b->db0[DB_REQUESTS]) / fmax(1, txns),
		       100 * (b->db1[DB_TXN_SECONDS] - b->db0[DB_TXN_SECONDS]) / secs);
	}
	for (size_t i = 0; i < b->n_cpu; i++) {
		double used = b->cpu[i].t0 >= 0 && b->cpu[i].t1 >= 0 ?
			(double)(b->cpu[i].t1 - b->cpu[i].t0) / tps : NAN;

		double jobs = (double)(t->n_ack ? t->n_ack : 1);

		printf("  cpu %-14s %.2f s = %.0f%% of one core, %.0f us and %.1f context switches "
		       "per job\n", b->cpu[i].name, used, 100.0 * used / secs, 1e6 * used / jobs,
		       (double)(b->cpu[i].cs1 - b->cpu[i].cs0) / jobs);
	}
	if (b->have_machine) {
		char share[96];

		/* Every process's share, the other tenants' and the hypervisor's
		 * too: how near the two cores were to full during the run. */
		kf_hbench_machine_share(&b->machine0, &b->machine1, share);
		printf("  machine            %s (both cores, every process)\n", share);
	}
	printf("RESULT label=%s jobs=%zu rate=%.1f offered=%.0f secs=%.3f submit_rate=%.1f "
	       "ack_p99_ms=%.2f run_p50_ms=%.2f run_p99_ms=%.2f lost_events=%llu fallback=%zu "
	       "errors=%llu timing=%s announced_p99_ms=%.2f load=\"%s\"\n",
	       *b->label ? b->label : "-", t->n_ack, rate, b->rate, secs, submit_rate, ack_p99,
	       run_p50, run_p99, (unsigned long long)b->ev_gaps, t->n_fallback,
	       (unsigned long long)atomic_load(&b->submit_errors),
	       b->no_events ? "record" : "events", t->n_stamp ? stamp_p99 : NAN, load0);
}

int main(int argc, char **argv)
{
	static const char prefix[] = KF_TOPIC_JOB;
	static const char metric_topic[] = "metric.broker"; /* + its NUL */
	struct bench b;
	struct tally t = { 0 };
	pthread_t *th;
	uint64_t ok = 0, t_end;
	char load0[64];

	parse(&b, argc, argv);
	add_cpu(&b, "bench_jobs=0"); /* itself: the load generator shares the machine */
	b.cpu[b.n_cpu - 1].pid = getpid();
	b.subs = calloc(b.jobs, sizeof(*b.subs));
	b.cap_events = 4 * b.jobs + 4096;
	b.events = calloc(b.cap_events, sizeof(*b.events));
	th = calloc(b.inflight, sizeof(*th));
	t.to_running = calloc(b.jobs, sizeof(double));
	t.to_done = calloc(b.jobs, sizeof(double));
	t.ack = calloc(b.jobs, sizeof(double));
	t.lag = calloc(b.jobs, sizeof(double));
	t.to_stamp = calloc(b.jobs, sizeof(double));
	if (!b.subs || !b.events || !th || !t.to_running || !t.to_done || !t.ack || !t.lag ||
	    !t.to_stamp)
		kf_hbench_die("out of memory");
	kf_hbench_rpc_open(&b.rpc, b.rpc_url, b.token_file);
	pthread_mutex_init(&b.db_mu, NULL);
	atomic_init(&b.ev_stop, false);
	if (!b.no_events) {
		/* Every job event, and the broker's metric updates; the deepest
		 * queue nng 1.5.2 allows (8192). */
		b.sub = kf_hbench_sub_open(b.events_url, prefix, sizeof prefix - 1, 8192, 5000);
		if (kf_bus_sub_subscribe(b.sub, metric_topic, sizeof metric_topic))
			kf_hbench_die("cannot subscribe to '%s'", metric_topic);
		if (pthread_create(&b.ev_thread, NULL, events_main, &b))
			kf_hbench_die("cannot start the events thread");
		/* A subscription takes effect once the connection is up; give
		 * the broker's side a moment to attach the pipe. */
		kf_hbench_sleep_until(kf_clock_mono_ns() + 200 * KF_HBENCH_NS_PER_MS);
	}
	kf_hbench_loadavg(load0);
	/* The store's counters before the run (the last update, up to 1 s old:
	 * an idle broker runs a few sweeps a second). */
	if (!b.no_events)
		db_counters(&b, kf_clock_mono_ns() - KF_HBENCH_NS_PER_S, b.db0);

	run(&b, th);
	for (size_t i = 0; i < b.jobs; i++)
		ok += b.subs[i].job_id != 0;
	t_end = wait_final(&b, ok);
	for (size_t i = 0; i < b.n_cpu; i++) {
		b.cpu[i].t1 = kf_hbench_cpu_ticks(b.cpu[i].pid);
		b.cpu[i].cs1 = kf_hbench_ctx_switches(b.cpu[i].pid);
	}
	b.have_machine = b.have_machine && kf_hbench_machine(&b.machine1);
	/* Late events (the last few) still in flight, and a metric update
	 * that covers the end of the run. */
	if (!b.no_events) {
		db_counters(&b, t_end + 50 * KF_HBENCH_NS_PER_MS, b.db1);
		kf_hbench_sleep_until(kf_clock_mono_ns() + 300 * KF_HBENCH_NS_PER_MS);
		atomic_store(&b.ev_stop, true);
		pthread_join(b.ev_thread, NULL);
	}

	tally(&b, &t);
	report(&b, &t, t_end, load0);
	kf_bus_sub_free(b.sub);
	kf_hbench_rpc_close(&b.rpc);
	free(t.to_running);
	free(t.to_done);
	free(t.ack);
	free(t.lag);
	free(t.to_stamp);
	free(th);
	free(b.events);
	free(b.subs);
	return atomic_load(&b.submit_errors) ? 1 : 0;
}
