/*
 * bench_store.c — jobs per second through the job store alone:
 * submit -> claim -> complete, with group commit and with one transaction
 * per request (max_batch = 1), at PostgreSQL's default durability.
 *
 *   bench_store [--jobs N] [--inflight C] [--mode group|single|both|phases]
 *
 * C chains run at once, like C clients and workers: each submits a job,
 * claims one when the submit is durable, completes it when the claim is
 * durable, and starts over. Prints jobs/s, transactions, the mean batch and
 * submit->claimed latency percentiles. Uses KEYFORGE_DB when set (each run
 * in a fresh schema), otherwise starts its own cluster with scripts/pgtmp.
 * --mode phases instead queues N submits at once, then N claims, then N
 * completes, and prints the cost of each request type (CPU of the server
 * process and of this one, per request).
 * Figures, the command and the machine are in docs/database.md.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "broker/store.h"
#include "common/clock.h"
#include "kf_config.h"

struct bench;

struct chain {
	struct bench *b;
	uint64_t submitted_ns;
	int64_t job_id;
	uint64_t token;
};

struct bench {
	struct kf_store *store;
	int jobs;                  /* to complete */
	int started;               /* submits issued */
	int completed;
	int errors;
	uint64_t *latency_ns;      /* submit call -> claim completion */
	int n_latency;
};

static void chain_next(struct chain *c);

static void die(const char *what, enum kf_err err)
{
	fprintf(stderr, "bench_store: %s: %s\n", what, kf_strerror(err));
	exit(1);
}

static void on_complete(void *arg, const struct kf_store_result *res)
{
	struct chain *c = arg;

	if (res->err)
		c->b->errors++;
	c->b->completed++;
	chain_next(c);
}

static void on_claim(void *arg, const struct kf_store_result *res)
{
	struct chain *c = arg;
	struct kf_store_complete_args a = {
		.outcome = KF_STORE_SUCCEEDED, .best_cost = NAN,
		.result = "{\"layout\": \"qwertyuiopasdfghjkl;zxcvbnm,./\", \"cost\": 1}",
	};
	enum kf_err err;

	if (res->err || !res->claim.job) {
		/* Never expected (each chain's own submit is durable first). */
		c->b->errors++;
		if ((err = kf_store_claim(c->b->store, "bench-worker", 1, on_claim, c)))
			die("claim", err);
		return;
	}
	if (c->b->n_latency < c->b->jobs)
		c->b->latency_ns[c->b->n_latency++] = kf_clock_mono_ns() - c->submitted_ns;
	a.job_id = res->claim.job->id;
	a.lease_token = res->claim.job->lease_token;
	if ((err = kf_store_complete(c->b->store, &a, on_complete, c)))
		die("complete", err);
}

static void on_submit(void *arg, const struct kf_store_result *res)
{
	struct chain *c = arg;
	enum kf_err err;

	if (res->err)
		die("submit result", res->err);
	if ((err = kf_store_claim(c->b->store, "bench-worker", 1, on_claim, c)))
		die("claim", err);
}

static void chain_next(struct chain *c)
{
	struct kf_store_submit_args a = {
		.params = "{\"corpus\": \"shai\", \"steps\": 0, \"seed\": 1}",
		.max_attempts = 3,
	};
	enum kf_err err;

	if (c->b->started >= c->b->jobs)
		return;
	c->b->started++;
	c->submitted_ns = kf_clock_mono_ns();
	if ((err = kf_store_submit(c->b->store, &a, on_submit, c)))
		die("submit", err);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct_ms(const uint64_t *v, int n, double p)
{
	int i = (int)ceil(p / 100.0 * n) - 1;

	return n ? (double)v[i < 0 ? 0 : i] / 1e6 : 0;
}

/* CPU seconds (user + system) a process used so far; -1 when unknown
 * (the server runs on another machine, or /proc is not readable). */
static double proc_cpu_s(long pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if (pid <= 0 || !(f = fopen(path, "r")))
		return -1;
	p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
	fclose(f);
	/* after "pid (comm)": state ppid pgrp session tty tpgid flags minflt
	 * cminflt majflt cmajflt utime stime */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
			 &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* The server process serving the store's connection. */
static long backend_pid(const char *conninfo)
{
	PGconn *c = PQconnectdb(conninfo);
	PGresult *res = PQexec(c, "SELECT pid FROM pg_stat_activity "
				  "WHERE application_name = 'keyforge-broker' "
				  "AND datname = current_database() AND pid <> pg_backend_pid()");
	long pid = PQntuples(res) == 1 ? atol(PQgetvalue(res, 0, 0)) : -1;

	PQclear(res);
	PQfinish(c);
	return pid;
}

static double self_cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void run(const char *conninfo, const char *mode, uint32_t max_batch, int jobs,
		int inflight)
{
	struct kf_store_opts opts = KF_STORE_OPTS_INIT;
	struct bench b = { .jobs = jobs };
	struct chain *chains = calloc((size_t)inflight, sizeof(*chains));
	struct kf_store_status st;
	double srv0, srv1, cli0, cli1;
	uint64_t t0, t1;
	enum kf_err err;
	long pid;
	int i;

	b.latency_ns = calloc((size_t)jobs, sizeof(*b.latency_ns));
	if (!chains || !b.latency_ns)
		die("calloc", KF_ENOMEM);
	opts.conninfo = conninfo;
	opts.migrate = true;
	opts.max_batch = max_batch;
	if ((err = kf_store_new(&opts, &b.store)) || (err = kf_store_wait_up(b.store, 30000)))
		die("store", err);
	pid = backend_pid(conninfo);
	srv0 = proc_cpu_s(pid);
	cli0 = self_cpu_s();
	t0 = kf_clock_mono_ns();
	for (i = 0; i < inflight; i++) {
		chains[i].b = &b;
		chain_next(&chains[i]);
	}
	while (b.completed < jobs) {
		if (kf_store_wait_completions(b.store, 1000))
			kf_store_drain(b.store, 0);
	}
	t1 = kf_clock_mono_ns();
	srv1 = proc_cpu_s(pid);
	cli1 = self_cpu_s();
	kf_store_status(b.store, &st);
	qsort(b.latency_ns, (size_t)b.n_latency, sizeof(uint64_t), cmp_u64);
	printf("%-6s max_batch=%-5u jobs=%d inflight=%d: %8.0f jobs/s  %7.0f requests/s  "
	       "%lu transactions (mean batch %.1f, largest %u)  submit->claimed p50 %.2f ms "
	       "p99 %.2f ms  errors %d\n"
	       "       CPU per job: server backend %.0f us, this process (store thread + "
	       "callbacks) %.0f us\n",
	       mode, max_batch, jobs, inflight, jobs / ((double)(t1 - t0) / 1e9),
	       3.0 * jobs / ((double)(t1 - t0) / 1e9), (unsigned long)st.batches,
	       st.batches ? (double)st.requests / (double)st.batches : 0.0, st.largest_batch,
	       pct_ms(b.latency_ns, b.n_latency, 50), pct_ms(b.latency_ns, b.n_latency, 99),
	       b.errors, srv0 < 0 || srv1 < 0 ? -1.0 : (srv1 - srv0) / jobs * 1e6,
	       (cli1 - cli0) / jobs * 1e6);
	fflush(stdout);
	kf_store_free(b.store);
	free(b.latency_ns);
	free(chains);
}

/* ---- phases: the cost of each request type ------------------------------ */

struct phase {
	int done;
	int errors;
	int64_t *ids;
	uint64_t *tokens;
};

static void on_phase(void *arg, const struct kf_store_result *res)
{
	struct phase *p = arg;

	if (res->err) {
		p->errors++;
	} else if (res->op == KF_STORE_CLAIM && res->claim.job) {
		p->ids[p->done] = res->claim.job->id;
		p->tokens[p->done] = res->claim.job->lease_token;
	}
	p->done++;
}

/* Queues n requests of one type at once (all in the queue before the
 * database thread wakes, so batches are as large as they get) and reports
 * wall time and CPU per request. */
static void phase(struct kf_store *store, long pid, const char *name, int n, struct phase *p)
{
	struct kf_store_submit_args sa = {
		.params = "{\"corpus\": \"shai\", \"steps\": 0, \"seed\": 1}",
		.max_attempts = 3,
	};
	struct kf_store_complete_args ca = {
		.outcome = KF_STORE_SUCCEEDED, .best_cost = NAN, .result = "{\"cost\": 1}",
	};
	struct kf_store_status st0, st1;
	double srv0 = proc_cpu_s(pid), cli0 = self_cpu_s();
	uint64_t t0 = kf_clock_mono_ns();
	enum kf_err err = KF_OK;
	int i;

	kf_store_status(store, &st0);
	p->done = p->errors = 0;
	for (i = 0; i < n && !err; i++) {
		if (name[1] == 'u')
			err = kf_store_submit(store, &sa, on_phase, p);
		else if (name[0] == 'c' && name[1] == 'l')
			err = kf_store_claim(store, "bench-worker", 1, on_phase, p);
		else {
			ca.job_id = p->ids[i];
			ca.lease_token = p->tokens[i];
			err = kf_store_complete(store, &ca, on_phase, p);
		}
	}
	if (err)
		die(name, err);
	while (p->done < n)
		if (kf_store_wait_completions(store, 1000))
			kf_store_drain(store, 0);
	kf_store_status(store, &st1);
	printf("  %-8s %6d requests in %7.1f ms: %7.0f/s  %lu transactions  CPU per request: "
	       "server %.0f us, client %.0f us  errors %d\n", name, n,
	       (double)(kf_clock_mono_ns() - t0) / 1e6,
	       n / ((double)(kf_clock_mono_ns() - t0) / 1e9),
	       (unsigned long)(st1.batches - st0.batches),
	       (proc_cpu_s(pid) - srv0) / n * 1e6, (self_cpu_s() - cli0) / n * 1e6, p->errors);
}

static void run_phases(const char *conninfo, int jobs)
{
	struct kf_store_opts opts = KF_STORE_OPTS_INIT;
	struct phase p = { 0 };
	struct kf_store *store;
	enum kf_err err;
	long pid;

	p.ids = calloc((size_t)jobs, sizeof(*p.ids));
	p.tokens = calloc((size_t)jobs, sizeof(*p.tokens));
	opts.conninfo = conninfo;
	opts.migrate = true;
	if (!p.ids || !p.tokens)
		die("calloc", KF_ENOMEM);
	if ((err = kf_store_new(&opts, &store)) || (err = kf_store_wait_up(store, 30000)))
		die("store", err);
	pid = backend_pid(conninfo);
	printf("phases (all requests queued at once, max_batch=1024):\n");
	phase(store, pid, "submit", jobs, &p);
	phase(store, pid, "claim", jobs, &p);
	phase(store, pid, "complete", jobs, &p);
	fflush(stdout);
	kf_store_free(store);
	free(p.ids);
	free(p.tokens);
}

/* A fresh schema per run, so runs do not see each other's jobs. */
static void schema_conninfo(const char *base, const char *schema, char *out, size_t size)
{
	PGconn *c = PQconnectdb(base);
	char sql[128];

	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "bench_store: %s", PQerrorMessage(c));
		exit(1);
	}
	snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s",
		 schema, schema);
	PQclear(PQexec(c, sql));
	PQfinish(c);
	snprintf(out, size, "%s options='-c search_path=%s'", base, schema);
}

static int pgtmp(const char *cmd, const char *dir, char *out, size_t size)
{
	char line[512];
	FILE *p;

	snprintf(line, sizeof(line), "'%s/scripts/pgtmp' %s '%s'", KF_SOURCE_ROOT, cmd, dir);
	if (!(p = popen(line, "r")))
		return -1;
	if (out && fgets(out, (int)size, p))
		out[strcspn(out, "\n")] = '\0';
	while (fgets(line, sizeof(line), p))
		;
	return pclose(p);
}

int main(int argc, char **argv)
{
	const char *mode = "both", *env = getenv("KEYFORGE_DB");
	char dir[64] = "", base[256], conninfo[384];
	int i, jobs = 3000, inflight = 32;

	for (i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--jobs") == 0)
			jobs = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--inflight") == 0)
			inflight = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--mode") == 0)
			mode = argv[i + 1];
	}
	if (jobs < 1 || inflight < 1 || (argc % 2) == 0) {
		fprintf(stderr, "usage: bench_store [--jobs N] [--inflight C] "
				"[--mode group|single|both|phases]\n");
		return 2;
	}
	if (env && *env) {
		snprintf(base, sizeof(base), "%s", env);
	} else {
		snprintf(dir, sizeof(dir), "/tmp/keyforge-pg-XXXXXX");
		if (!mkdtemp(dir) || chmod(dir, 0755) || pgtmp("start", dir, base, sizeof(base))) {
			fprintf(stderr, "bench_store: scripts/pgtmp start failed\n");
			return 1;
		}
	}
	if (strcmp(mode, "phases") == 0) {
		schema_conninfo(base, "bench_phases", conninfo, sizeof(conninfo));
		run_phases(conninfo, jobs);
		mode = "none";
	}
	if (strcmp(mode, "single") != 0 && strcmp(mode, "none") != 0) {
		schema_conninfo(base, "bench_group", conninfo, sizeof(conninfo));
		run(conninfo, "group", 1024, jobs, inflight);
	}
	if (strcmp(mode, "group") != 0 && strcmp(mode, "none") != 0) {
		schema_conninfo(base, "bench_single", conninfo, sizeof(conninfo));
		run(conninfo, "single", 1, jobs, inflight);
	}
	if (dir[0])
		pgtmp("stop", dir, NULL, 0);
	return 0;
}
