/*
 * test_store.c — the job store and the migrations against a real PostgreSQL.
 *
 * The group setup starts a throwaway cluster with scripts/pgtmp in a fresh
 * /tmp/keyforge-pg-XXXXXX and the group teardown removes it. Each test gets
 * its own schema (search_path in the connection string), so tests never see
 * each other's jobs and nobody pays for CREATE DATABASE. The outage test
 * pauses and resumes the whole cluster, so it runs last.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "pgtmp_fixture.h"
#include "broker/migrate.h"
#include "common/clock.h"
#include "broker/store.h"
#include "broker/store_pq.h"
#include "kf_config.h"
#include "sql/migrations.h"

#define WAIT_MS 10000

static struct kf_pgtmp g_pg; /* the throwaway cluster */
static char g_conninfo[256];
static int g_schema_seq;

/* ---- the cluster ------------------------------------------------------- */

static int run_pgtmp(const char *cmd, char *out, size_t out_size)
{
	return kf_pgtmp_run(&g_pg, cmd, out, out_size);
}

static int group_setup(void **state)
{
	(void)state;
	if (kf_pgtmp_start(&g_pg, g_conninfo, sizeof(g_conninfo)) != 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	return run_pgtmp("stop", NULL, 0) == 0 ? 0 : -1;
}

static PGconn *admin_conn(void)
{
	PGconn *c = PQconnectdb(g_conninfo);

	assert_int_equal(PQstatus(c), CONNECTION_OK);
	return c;
}

static void admin_exec(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		fail_msg("'%s': %s", sql, PQerrorMessage(c));
	PQclear(res);
}

static long long admin_ll(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);
	long long v;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		fail_msg("'%s': %s", sql, PQerrorMessage(c));
	v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return v;
}

/* A fresh, empty schema and a connection string whose search_path is it. */
static void new_schema(char *conninfo, size_t size, char *schema, size_t schema_size)
{
	PGconn *c = admin_conn();
	char sql[128];

	snprintf(schema, schema_size, "t%d", ++g_schema_seq);
	snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", schema);
	admin_exec(c, sql);
	PQfinish(c);
	snprintf(conninfo, size, "%s options='-c search_path=%s'", g_conninfo, schema);
}

/* ---- synchronous calls over the asynchronous store ---------------------- */

#define MAX_ROWS 64

struct outcome {
	bool done;
	enum kf_err err;
	char message[512];
	struct kf_store_result res;     /* scalars only: pointers nulled */
	struct kf_store_job *job;       /* claim, get */
	char kill_worker[64];
	size_t n;                       /* list jobs, sweep changes, get attempts */
	int64_t ids[MAX_ROWS];
	enum kf_job_state states[MAX_ROWS];
	int32_t attempts[MAX_ROWS];
	char outcomes[MAX_ROWS][16];    /* get: attempt outcomes */
	char texts[MAX_ROWS][64];       /* get: attempt messages; list: corpus */
	bool has_params[MAX_ROWS];      /* list */
	uint64_t tokens[MAX_ROWS], incarnations[MAX_ROWS]; /* running */
};

static void copy_rows(struct outcome *o, const struct kf_store_result *res)
{
	size_t i;

	switch (res->op) {
	case KF_STORE_LIST:
		for (i = 0; i < res->list.n_jobs && i < MAX_ROWS; i++, o->n++) {
			o->ids[i] = res->list.jobs[i].id;
			o->states[i] = res->list.jobs[i].state;
			o->attempts[i] = res->list.jobs[i].attempt;
			o->has_params[i] = res->list.jobs[i].params != NULL;
			snprintf(o->texts[i], sizeof(o->texts[i]), "%s",
				 res->list.jobs[i].corpus ? res->list.jobs[i].corpus : "");
		}
		break;
	case KF_STORE_REQUEUE_WORKER: case KF_STORE_PROMOTE: case KF_STORE_EXPIRE:
	case KF_STORE_REQUEUE_OTHERS: case KF_STORE_JOB_LOST:
		for (i = 0; i < res->sweep.n_changes && i < MAX_ROWS; i++, o->n++) {
			o->ids[i] = res->sweep.changes[i].job_id;
			o->states[i] = res->sweep.changes[i].state;
			o->attempts[i] = res->sweep.changes[i].attempt;
		}
		break;
	case KF_STORE_RUNNING:
		for (i = 0; i < res->running.n && i < MAX_ROWS; i++, o->n++) {
			o->ids[i] = res->running.jobs[i].job_id;
			o->tokens[i] = res->running.jobs[i].lease_token;
			o->incarnations[i] = res->running.jobs[i].incarnation;
			snprintf(o->texts[i], sizeof(o->texts[i]), "%s", res->running.jobs[i].worker_id);
		}
		break;
	case KF_STORE_ORPHANS:
		for (i = 0; i < res->orphans.n && i < MAX_ROWS; i++, o->n++)
			snprintf(o->texts[i], sizeof(o->texts[i]), "%s", res->orphans.worker_ids[i]);
		break;
	case KF_STORE_GET:
		for (i = 0; i < res->get.n_attempts && i < MAX_ROWS; i++, o->n++) {
			o->attempts[i] = res->get.attempts[i].attempt;
			snprintf(o->outcomes[i], sizeof(o->outcomes[i]), "%s",
				 res->get.attempts[i].outcome);
			snprintf(o->texts[i], sizeof(o->texts[i]), "%s",
				 res->get.attempts[i].message ? res->get.attempts[i].message : "");
		}
		break;
	default:
		break;
	}
}

static void on_done(void *arg, const struct kf_store_result *res)
{
	struct outcome *o = arg;

	assert_false(o->done);   /* exactly once */
	o->done = true;
	o->err = res->err;
	snprintf(o->message, sizeof(o->message), "%s", res->message ? res->message : "");
	o->res = *res;
	o->res.message = NULL;
	if (res->op == KF_STORE_CLAIM && res->claim.job)
		o->job = kf_store_job_dup(res->claim.job);
	if (res->op == KF_STORE_GET && res->get.job)
		o->job = kf_store_job_dup(res->get.job);
	if (res->op == KF_STORE_KILL && res->kill.worker_id)
		snprintf(o->kill_worker, sizeof(o->kill_worker), "%s", res->kill.worker_id);
	copy_rows(o, res);
}

struct status_log {
	int n;
	enum kf_store_conn conn[16];
	enum kf_err err[16];
	char message[16][256];
};

static void on_status(void *arg, const struct kf_store_status_change *ch)
{
	struct status_log *log = arg;

	if (log->n < 16) {
		log->conn[log->n] = ch->conn;
		log->err[log->n] = ch->err;
		snprintf(log->message[log->n], sizeof(log->message[0]), "%s", ch->message);
		log->n++;
	}
}

struct fixture {
	struct kf_store *store;
	char conninfo[384];
	char schema[32];
	struct status_log status;
	struct outcome o[8];            /* scratch outcomes, reset by call() */
};

static void drain_until(struct fixture *f, const bool *done)
{
	int waited = 0;

	while (!*done) {
		if (kf_store_wait_completions(f->store, 100))
			kf_store_drain(f->store, 0);
		else if ((waited += 100) > WAIT_MS)
			fail_msg("no completion within %d ms", WAIT_MS);
	}
}

static struct outcome *reset(struct outcome *o)
{
	kf_store_job_free(o->job);
	memset(o, 0, sizeof(*o));
	return o;
}

/* Runs one request to completion: CALL(f, kf_store_get(f->store, id, on_done, o)). */
#define CALL(f, o, expr) do { \
		reset(o); \
		assert_int_equal((expr), KF_OK); \
		drain_until((f), &(o)->done); \
	} while (0)

/* Polls until the store reaches `conn` (timing-independent under load). */
static void wait_conn(struct kf_store *s, enum kf_store_conn conn)
{
	struct kf_store_status st;
	int waited;

	for (waited = 0; waited < WAIT_MS; waited += 10) {
		kf_store_status(s, &st);
		if (st.conn == conn)
			return;
		kf_sleep_ms(10);
	}
	fail_msg("store not %s within %d ms", kf_store_conn_name(conn), WAIT_MS);
}

static struct kf_store *open_store_timeout(const char *conninfo, struct status_log *log,
	bool migrate, uint32_t answer_timeout_ms)
{
	struct kf_store_opts opts = KF_STORE_OPTS_INIT;
	struct kf_store *s = NULL;

	opts.answer_timeout_ms = answer_timeout_ms;
	opts.conninfo = conninfo;
	opts.migrate = migrate;
	opts.backoff_base_ms = 400;
	opts.backoff_max_ms = 1600;
	opts.reconnect_min_ms = 50;
	opts.reconnect_max_ms = 400;
	opts.health_ms = 200;
	opts.seed = 42;
	opts.on_status = on_status;
	opts.status_arg = log;
	assert_int_equal(kf_store_new(&opts, &s), KF_OK);
	return s;
}

static struct kf_store *open_store(const char *conninfo, struct status_log *log, bool migrate)
{
	return open_store_timeout(conninfo, log, migrate, KF_STORE_OPTS_INIT_ANSWER_TIMEOUT);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	new_schema(f->conninfo, sizeof(f->conninfo), f->schema, sizeof(f->schema));
	f->store = open_store(f->conninfo, &f->status, true);
	if (kf_store_wait_up(f->store, WAIT_MS) != KF_OK)
		return -1;
	/* Up means the change is queued too: drained now, it is reported now,
	 * not later in the middle of a test that expects nothing to complete. */
	kf_store_drain(f->store, 0);
	if (f->status.n != 1 || f->status.conn[0] != KF_STORE_UP)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	size_t i;

	kf_store_free(f->store);
	for (i = 0; i < sizeof(f->o) / sizeof(f->o[0]); i++)
		reset(&f->o[i]);
	free(f);
	return 0;
}

static int64_t submit(struct fixture *f, int32_t priority, int32_t max_attempts,
		      int64_t deadline_ms, const char *key)
{
	struct kf_store_submit_args a = {
		.params = "{\"corpus\": \"shai\", \"steps\": 1000}",
		.priority = priority, .max_attempts = max_attempts,
		.deadline_ms = deadline_ms, .submit_key = key,
	};
	struct outcome *o = &f->o[7];

	CALL(f, o, kf_store_submit(f->store, &a, on_done, o));
	assert_int_equal(o->err, KF_OK);
	assert_true(o->res.submit.job_id > 0);
	return o->res.submit.job_id;
}

/* Claims for `worker` as its process `incarnation` (0: not known); returns
 * the job (NULL when none), owned by f->o[6]. */
static const struct kf_store_job *claim_as(struct fixture *f, const char *worker,
	uint64_t incarnation)
{
	struct outcome *o = &f->o[6];

	CALL(f, o, kf_store_claim(f->store, worker, incarnation, on_done, o));
	assert_int_equal(o->err, KF_OK);
	return o->job;
}

static const struct kf_store_job *claim(struct fixture *f, const char *worker)
{
	return claim_as(f, worker, 0);
}

static struct outcome *complete(struct fixture *f, int64_t id, uint64_t token,
				enum kf_store_outcome outcome, const char *result,
				const char *error)
{
	struct kf_store_complete_args a = {
		.job_id = id, .lease_token = token, .outcome = outcome,
		.result = result, .error = error, .best_cost = NAN,
	};
	struct outcome *o = &f->o[5];

	CALL(f, o, kf_store_complete(f->store, &a, on_done, o));
	return o;
}

static struct outcome *get(struct fixture *f, int64_t id)
{
	struct outcome *o = &f->o[4];

	CALL(f, o, kf_store_get(f->store, id, on_done, o));
	return o;
}

/* ---- migrations -------------------------------------------------------------- */

static PGconn *schema_conn(char *conninfo, size_t size)
{
	char schema[32];
	PGconn *c;

	new_schema(conninfo, size, schema, sizeof(schema));
	c = PQconnectdb(conninfo);
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	return c;
}

static void test_migrate_once_and_idempotent(void **state)
{
	struct kf_strbuf msg = KF_STRBUF_INIT;
	char conninfo[384];
	PGconn *c = schema_conn(conninfo, sizeof(conninfo));
	int applied = -2, ran = -2;
	char *first_at;
	PGresult *res;

	(void)state;
	assert_false(kf_migrate_ready(c, &applied));
	assert_int_equal(applied, 0);
	assert_int_equal(kf_migrate_apply(c, 0, &applied, &ran, &msg), KF_OK);
	assert_int_equal(applied, kf_migrate_newest());
	assert_int_equal(ran, kf_migrate_newest());
	assert_true(kf_migrate_ready(c, &applied));
	assert_int_equal(applied, kf_migrate_newest());

	res = PQexec(c, "SELECT version, name, checksum, applied_at::text FROM schema_migrations "
			"ORDER BY version");
	assert_int_equal(PQntuples(res), kf_migrations_count);
	assert_string_equal(PQgetvalue(res, 0, 0), "1");
	assert_string_equal(PQgetvalue(res, 0, 1), "initial");
	assert_string_equal(PQgetvalue(res, 0, 2), kf_migrations[0].checksum);
	assert_int_equal(strlen(PQgetvalue(res, 0, 2)), 64);
	first_at = strdup(PQgetvalue(res, 0, 3));
	PQclear(res);

	/* Second start: nothing to do, nothing rewritten. */
	assert_int_equal(kf_migrate_apply(c, 0, &applied, &ran, &msg), KF_OK);
	assert_int_equal(ran, 0);
	assert_int_equal(applied, kf_migrate_newest());
	res = PQexec(c, "SELECT count(*), min(applied_at)::text FROM schema_migrations");
	assert_int_equal(atoi(PQgetvalue(res, 0, 0)), kf_migrations_count);
	assert_string_equal(PQgetvalue(res, 0, 1), first_at);
	PQclear(res);
	/* Left outside any transaction. */
	assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);
	free(first_at);
	kf_strbuf_release(&msg);
	PQfinish(c);
}

static void test_migrate_checksum_mismatch(void **state)
{
	struct kf_strbuf msg = KF_STRBUF_INIT;
	struct status_log log = { 0 };
	struct kf_store_status st;
	char conninfo[384];
	PGconn *c = schema_conn(conninfo, sizeof(conninfo));
	struct kf_store *s;
	int applied;

	(void)state;
	assert_int_equal(kf_migrate_apply(c, 0, NULL, NULL, NULL), KF_OK);
	admin_exec(c, "UPDATE schema_migrations SET checksum = "
		      "'0000000000000000000000000000000000000000000000000000000000000000' "
		      "WHERE version = 1");
	assert_int_equal(kf_migrate_apply(c, 0, &applied, NULL, &msg), KF_EMIGRATION);
	assert_non_null(strstr(msg.buf, "'sql/001_initial.sql'"));
	assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);

	/* The store refuses to serve and says why, once. */
	s = open_store(conninfo, &log, true);
	wait_conn(s, KF_STORE_DOWN);
	assert_int_equal(kf_store_wait_up(s, 0), KF_EMIGRATION);
	kf_store_status(s, &st);
	assert_int_equal(st.conn, KF_STORE_DOWN);
	assert_int_equal(st.err, KF_EMIGRATION);
	assert_non_null(strstr(st.message, "sql/001_initial.sql"));
	kf_store_drain(s, 0);
	assert_int_equal(log.n, 1);
	assert_int_equal(log.conn[0], KF_STORE_DOWN);
	assert_int_equal(log.err[0], KF_EMIGRATION);
	kf_store_free(s);

	/* A database newer than the binary is refused as well. */
	{
		char sql[256];

		snprintf(sql, sizeof(sql), "UPDATE schema_migrations SET checksum = '%s' "
			 "WHERE version = 1; "
			 "INSERT INTO schema_migrations (version, name, checksum) "
			 "VALUES (%d, 'future', 'x')", kf_migrations[0].checksum,
			 kf_migrate_newest() + 1);
		admin_exec(c, sql);
	}
	kf_strbuf_release(&msg);
	assert_int_equal(kf_migrate_apply(c, 0, NULL, NULL, &msg), KF_EMIGRATION);
	assert_non_null(strstr(msg.buf, "newer keyforge-broker"));
	kf_strbuf_release(&msg);
	PQfinish(c);
}

struct mig_thread {
	char *conninfo;
	enum kf_err err;
	int ran;
};

static void *migrate_thread(void *arg)
{
	struct mig_thread *t = arg;
	PGconn *c = PQconnectdb(t->conninfo);

	t->err = kf_migrate_apply(c, 0, NULL, &t->ran, NULL);
	PQfinish(c);
	return NULL;
}

/* Two brokers starting together: the advisory lock makes one apply. */
static void test_migrate_concurrent(void **state)
{
	char conninfo[384];
	PGconn *c = schema_conn(conninfo, sizeof(conninfo));
	struct mig_thread t[2] = { { conninfo, KF_EINTERNAL, -1 }, { conninfo, KF_EINTERNAL, -1 } };
	pthread_t th[2];
	int i;

	(void)state;
	for (i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, migrate_thread, &t[i]), 0);
	for (i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(t[0].err, KF_OK);
	assert_int_equal(t[1].err, KF_OK);
	assert_int_equal(t[0].ran + t[1].ran, kf_migrate_newest());
	assert_int_equal(admin_ll(c, "SELECT count(*) FROM schema_migrations"), kf_migrate_newest());
	PQfinish(c);
}

/* Backends of this database waiting for a lock. */
static long long lock_waiters(PGconn *c)
{
	return admin_ll(c, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
			   "AND datname = current_database()");
}

/* Migrations whose lock another session holds — a broker stuck in its own
 * migration, an operator's open transaction — give up at their deadline
 * instead of waiting for ever: kf_migrate_apply() returns KF_EUNAVAIL, and
 * the store says why, connects again, and comes up once the lock is free.
 * The backends it gave up on do not pile up meanwhile. */
static void test_migrate_deadline(void **state)
{
	struct kf_strbuf msg = KF_STRBUF_INIT;
	struct status_log log = { 0 };
	struct kf_store_status st;
	char conninfo[384], lock_sql[96];
	PGconn *c = schema_conn(conninfo, sizeof(conninfo));
	PGconn *holder = PQconnectdb(conninfo), *watch = PQconnectdb(conninfo);
	struct kf_store *s;
	uint64_t t0, ms;
	long long n;

	(void)state;
	snprintf(lock_sql, sizeof(lock_sql), "BEGIN; SELECT pg_advisory_xact_lock(%lld)",
		 (long long)KF_MIGRATE_LOCK_KEY);
	admin_exec(holder, lock_sql);
	t0 = kf_clock_mono_ns();
	assert_int_equal(kf_migrate_apply(c, t0 + 300 * 1000000ull, NULL, NULL, &msg), KF_EUNAVAIL);
	ms = (kf_clock_mono_ns() - t0) / 1000000u;
	assert_true(ms >= 300 && ms < 5000);
	assert_int_not_equal(PQstatus(c), CONNECTION_OK);
	PQfinish(c);
	kf_strbuf_release(&msg);
	/* That backend waits on: the connection did not ask to be checked. */
	admin_exec(watch, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
			  "WHERE wait_event_type = 'Lock' AND datname = current_database()");

	s = open_store_timeout(conninfo, &log, true, 300);
	wait_conn(s, KF_STORE_DOWN);
	kf_store_status(s, &st);
	assert_int_equal(st.err, KF_EUNAVAIL);
	assert_non_null(strstr(st.message, "no answer from the database within 300 ms while "
					   "checking the schema"));
	/* Six seconds of attempts, one every 350-700 ms: each leaves a backend
	 * waiting for the lock unless the server ends it (within a second,
	 * client_connection_check_interval). */
	kf_sleep_ms(6000);
	n = lock_waiters(watch);
	fprintf(stderr, "# %lld backends wait for the lock\n", n);
	/* At most 3-4 in flight; a check the loaded server runs late makes one
	 * or two more. Without the check: one more every attempt, 12 or so. */
	assert_true(n <= 6);
	admin_exec(holder, "COMMIT");
	assert_int_equal(kf_store_wait_up(s, WAIT_MS), KF_OK);
	kf_store_status(s, &st);
	assert_int_equal(st.schema_applied, kf_migrate_newest());
	kf_store_free(s);
	PQfinish(holder);
	PQfinish(watch);
}

/* A program that does not migrate (migrate = false) waits for the schema. */
static void test_store_without_migrate_needs_schema(void **state)
{
	struct status_log log = { 0 };
	char conninfo[384];
	PGconn *c = schema_conn(conninfo, sizeof(conninfo));
	struct kf_store *s = open_store(conninfo, &log, false);
	struct kf_store_status st;

	(void)state;
	wait_conn(s, KF_STORE_DOWN);
	assert_int_equal(kf_store_wait_up(s, 0), KF_EMIGRATION);
	kf_store_status(s, &st);
	assert_non_null(strstr(st.message, "schema is at version 0"));
	assert_int_equal(kf_migrate_apply(c, 0, NULL, NULL, NULL), KF_OK);
	assert_int_equal(kf_store_wait_up(s, WAIT_MS), KF_OK);
	kf_store_status(s, &st);
	assert_int_equal(st.schema_applied, kf_migrate_newest());
	assert_int_equal(st.schema_newest, kf_migrate_newest());
	kf_store_free(s);
	/* Down (migration), then up, then stopped: each reported once. */
	assert_int_equal(log.n, 3);
	assert_int_equal(log.conn[0], KF_STORE_DOWN);
	assert_int_equal(log.conn[1], KF_STORE_UP);
	assert_int_equal(log.conn[2], KF_STORE_STOPPED);
	PQfinish(c);
}

/* No server at all: requests complete with KF_EUNAVAIL, reported once. */
static void test_no_database(void **state)
{
	struct status_log log = { 0 };
	struct kf_store *s = open_store("host=/nonexistent/keyforge dbname=x connect_timeout=1",
					&log, true);
	struct kf_store_submit_args a = { .params = "{}", .max_attempts = 1 };
	struct kf_store_status st;
	struct outcome o;
	int i;

	(void)state;
	memset(&o, 0, sizeof(o));
	wait_conn(s, KF_STORE_DOWN);
	for (i = 0; i < 3; i++) {
		reset(&o);
		assert_int_equal(kf_store_submit(s, &a, on_done, &o), KF_OK);
		while (!o.done)
			if (kf_store_wait_completions(s, 100))
				kf_store_drain(s, 0);
		assert_int_equal(o.err, KF_EUNAVAIL);
		assert_non_null(strstr(o.message, "database unavailable"));
		assert_non_null(strstr(o.message, "/nonexistent/keyforge"));
		/* libpq's two lines, joined into one that reads as two:
		 * "...: No such file or directory; Is the server running...". */
		assert_null(strchr(o.message, '\n'));
		assert_non_null(strstr(o.message, "directory; Is the server running"));
		kf_sleep_ms(100);   /* across reconnect attempts */
	}
	kf_store_status(s, &st);
	assert_int_equal(st.err, KF_EUNAVAIL);
	assert_int_equal(st.connects, 0);
	assert_int_equal(st.unavailable, 3);
	assert_false(kf_store_is_up(s));
	kf_store_stop(s);
	assert_int_equal(kf_store_submit(s, &a, on_done, &o), KF_ECANCELED);
	kf_store_free(s);
	assert_int_equal(log.n, 2);
	assert_int_equal(log.conn[0], KF_STORE_DOWN);
	assert_int_equal(log.conn[1], KF_STORE_STOPPED);
	reset(&o);
}

/* ---- jobs ----------------------------------------------------------------------- */

static void test_submit_idempotent(void **state)
{
	struct fixture *f = *state;
	struct kf_store_submit_args a = { .params = "{\"corpus\": \"x\"}", .max_attempts = 3,
					  .submit_key = "c1:7" };
	struct outcome *o1 = &f->o[0], *o2 = &f->o[1], *o3 = &f->o[2];
	int64_t id;

	/* Twice in one batch, then once more later: one job. */
	reset(o1);
	reset(o2);
	assert_int_equal(kf_store_submit(f->store, &a, on_done, o1), KF_OK);
	assert_int_equal(kf_store_submit(f->store, &a, on_done, o2), KF_OK);
	drain_until(f, &o1->done);
	drain_until(f, &o2->done);
	assert_int_equal(o1->err, KF_OK);
	assert_int_equal(o2->err, KF_OK);
	assert_true(o1->res.submit.created);
	assert_false(o2->res.submit.created);
	id = o1->res.submit.job_id;
	assert_int_equal(o2->res.submit.job_id, id);
	CALL(f, o3, kf_store_submit(f->store, &a, on_done, o3));
	assert_int_equal(o3->res.submit.job_id, id);
	assert_false(o3->res.submit.created);
	assert_true(o1->res.submit.same_params && o2->res.submit.same_params &&
		    o3->res.submit.same_params);

	/* The same document written otherwise is the same job (jsonb
	 * equality); another document under the key is told apart. */
	a.params = "{ \"corpus\" :\"x\" }";
	CALL(f, o3, kf_store_submit(f->store, &a, on_done, o3));
	assert_true(!o3->res.submit.created && o3->res.submit.same_params);
	a.params = "{\"corpus\": \"y\"}";
	CALL(f, o3, kf_store_submit(f->store, &a, on_done, o3));
	assert_int_equal(o3->err, KF_OK);
	assert_int_equal(o3->res.submit.job_id, id);
	assert_false(o3->res.submit.created);
	assert_false(o3->res.submit.same_params);
	a.params = "{\"corpus\": \"x\"}";

	/* Without a key every submit is a new job. */
	assert_int_not_equal(submit(f, 0, 1, 0, NULL), submit(f, 0, 1, 0, NULL));

	/* Arguments checked before queueing; the database refuses bad JSON. */
	a.max_attempts = 0;
	assert_int_equal(kf_store_submit(f->store, &a, on_done, o1), KF_EINVAL);
	a.max_attempts = 1;
	a.params = "{not json";
	a.submit_key = NULL;
	CALL(f, o1, kf_store_submit(f->store, &a, on_done, o1));
	assert_int_equal(o1->err, KF_EINVAL);
	assert_non_null(strstr(o1->message, "22P02"));
	assert_int_equal(get(f, id)->err, KF_OK);
	assert_string_equal(get(f, id)->job->submit_key, "c1:7");
}

/* Another broker's submit of the same key, committed while ours waited on
 * it: our statement's snapshot is older than that job, so it finds neither
 * a row to insert nor one to read. The store runs it again in a
 * transaction of its own and answers with the job that is there; before,
 * the batch committed and the submit was answered KF_EBUSY. */
static void test_submit_key_taken_meanwhile(void **state)
{
	struct fixture *f = *state;
	PGconn *other = PQconnectdb(f->conninfo), *watch = PQconnectdb(f->conninfo);
	struct kf_store_submit_args a = { .params = "{\"corpus\": \"x\"}", .max_attempts = 3,
					  .submit_key = "c2:race" };
	struct outcome *o = reset(&f->o[0]);
	int waited = 0;
	long long id;

	assert_int_equal(PQstatus(other), CONNECTION_OK);
	assert_int_equal(PQstatus(watch), CONNECTION_OK);
	admin_exec(other, "BEGIN");
	id = admin_ll(other, "INSERT INTO jobs (max_attempts, attempt_limit, submit_key, params) "
			     "VALUES (3, 3, 'c2:race', '{\"corpus\": \"x\"}') RETURNING id");
	assert_int_equal(kf_store_submit(f->store, &a, on_done, o), KF_OK);
	while (lock_waiters(watch) < 1) {                /* ours waits on that key */
		assert_true((waited += 10) < WAIT_MS);
		kf_sleep_ms(10);
	}
	admin_exec(other, "COMMIT");
	drain_until(f, &o->done);
	assert_int_equal(o->err, KF_OK);
	assert_int_equal(o->res.submit.job_id, id);
	assert_false(o->res.submit.created);
	assert_true(o->res.submit.same_params);
	assert_int_equal(admin_ll(watch, "SELECT count(*) FROM jobs"), 1);
	PQfinish(other);
	PQfinish(watch);
}

static void test_claim_priority_order(void **state)
{
	struct fixture *f = *state;
	int64_t low = submit(f, 0, 1, 0, NULL);
	int64_t hi1 = submit(f, 5, 1, 60000, NULL);
	int64_t hi2 = submit(f, 5, 1, 0, NULL);
	int64_t mid = submit(f, 1, 1, 0, NULL);
	const struct kf_store_job *j;
	uint64_t first_token;

	j = claim(f, "w1");
	assert_non_null(j);
	assert_int_equal(j->id, hi1);
	assert_int_equal(j->state, KF_JOB_RUNNING);
	assert_int_equal(j->attempt, 1);
	assert_string_equal(j->worker_id, "w1");
	assert_true(j->lease_token != 0);
	assert_true(j->started_ns > 0);
	assert_int_equal(j->deadline_ms, 60000);
	assert_int_equal(j->deadline_ns - j->started_ns, 60000LL * 1000000);
	assert_string_equal(j->params, "{\"steps\": 1000, \"corpus\": \"shai\"}");
	assert_string_equal(j->corpus, "shai");
	first_token = j->lease_token;
	j = claim(f, "w2");
	assert_int_equal(j->id, hi2);
	assert_int_equal(j->deadline_ns, 0);
	assert_true(j->lease_token != first_token);
	assert_int_equal(claim(f, "w1")->id, mid);
	assert_int_equal(claim(f, "w1")->id, low);
	assert_null(claim(f, "w1"));
}

/* The claim path skips a row another transaction holds instead of waiting. */
static void test_claim_skip_locked(void **state)
{
	struct fixture *f = *state;
	int64_t a = submit(f, 0, 1, 0, NULL);
	int64_t b = submit(f, 0, 1, 0, NULL);
	PGconn *c = PQconnectdb(f->conninfo);
	PGresult *res;
	char sql[128];

	assert_int_equal(PQstatus(c), CONNECTION_OK);
	snprintf(sql, sizeof(sql), "SELECT id FROM jobs WHERE id = %lld FOR UPDATE", (long long)a);
	admin_exec(c, "BEGIN");
	res = PQexec(c, sql);
	assert_int_equal(PQntuples(res), 1);
	PQclear(res);
	assert_int_equal(claim(f, "w1")->id, b);    /* within WAIT_MS: did not block */
	assert_null(claim(f, "w1"));                /* a is locked, not claimable */
	admin_exec(c, "ROLLBACK");
	assert_int_equal(claim(f, "w1")->id, a);
	PQfinish(c);
}

/* Two stores (two connections, as two brokers) claim concurrently. */
struct claimer {
	struct fixture *f;
	struct kf_store *store;
	int64_t ids[64];
	int n;
};

static void *claim_loop(void *arg)
{
	struct claimer *c = arg;
	struct outcome o;

	memset(&o, 0, sizeof(o));
	for (;;) {
		bool got;

		reset(&o);
		if (kf_store_claim(c->store, "wx", 0, on_done, &o) != KF_OK)
			break;
		while (!o.done)
			if (kf_store_wait_completions(c->store, 100))
				kf_store_drain(c->store, 0);
		got = o.err == KF_OK && o.job;
		if (got && c->n < 64)
			c->ids[c->n++] = o.job->id;
		if (!got)
			break;
	}
	reset(&o);
	return NULL;
}

static void test_claim_two_brokers(void **state)
{
	struct fixture *f = *state;
	struct status_log log = { 0 };
	struct claimer c[2] = { { f, f->store, { 0 }, 0 }, { f, NULL, { 0 }, 0 } };
	bool seen[64] = { false };
	pthread_t th[2];
	int64_t first = 0;
	int i, k;

	for (i = 0; i < 40; i++) {
		int64_t id = submit(f, 0, 1, 0, NULL);

		first = first ? first : id;
	}
	c[1].store = open_store(f->conninfo, &log, true);
	assert_int_equal(kf_store_wait_up(c[1].store, WAIT_MS), KF_OK);
	for (i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, claim_loop, &c[i]), 0);
	for (i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(c[0].n + c[1].n, 40);
	for (i = 0; i < 2; i++) {
		for (k = 0; k < c[i].n; k++) {
			int64_t slot = c[i].ids[k] - first;

			assert_true(slot >= 0 && slot < 40);
			assert_false(seen[slot]);   /* never claimed twice */
			seen[slot] = true;
		}
	}
	kf_store_free(c[1].store);
}

static void test_lease_fencing(void **state)
{
	struct fixture *f = *state;
	int64_t id = submit(f, 0, 2, 0, NULL);
	const struct kf_store_job *j = claim(f, "w1");
	uint64_t token = j->lease_token;
	struct outcome *o = &f->o[0];

	CALL(f, o, kf_store_progress(f->store, id, token + 1, 0.5, 10.0, on_done, o));
	assert_int_equal(o->err, KF_ESTALE);
	CALL(f, o, kf_store_progress(f->store, id, token, 0.5, 10.0, on_done, o));
	assert_int_equal(o->err, KF_OK);
	assert_false(o->res.progress.cancel);
	assert_true(fabs(get(f, id)->job->progress - 0.5) < 1e-9);
	assert_true(fabs(get(f, id)->job->best_cost - 10.0) < 1e-9);
	CALL(f, o, kf_store_progress(f->store, id + 1000, token, NAN, NAN, on_done, o));
	assert_int_equal(o->err, KF_ENOENT);

	assert_int_equal(complete(f, id, token + 1, KF_STORE_SUCCEEDED, "{}", NULL)->err, KF_ESTALE);
	assert_int_equal(complete(f, id + 1000, token, KF_STORE_SUCCEEDED, "{}", NULL)->err,
			 KF_ENOENT);
	o = complete(f, id, token, KF_STORE_SUCCEEDED, "{\"layout\": \"abc\", \"cost\": 1.5}", NULL);
	assert_int_equal(o->err, KF_OK);
	assert_int_equal(o->res.complete.state, KF_JOB_SUCCEEDED);
	assert_false(o->res.complete.duplicate);
	/* The worker resends (its ack was lost): recognised, nothing changes. */
	o = complete(f, id, token, KF_STORE_SUCCEEDED, "{\"layout\": \"abc\", \"cost\": 1.5}", NULL);
	assert_int_equal(o->err, KF_OK);
	assert_true(o->res.complete.duplicate);
	assert_int_equal(o->res.complete.state, KF_JOB_SUCCEEDED);
	o = &f->o[0];
	CALL(f, o, kf_store_progress(f->store, id, token, 0.9, NAN, on_done, o));
	assert_int_equal(o->err, KF_ESTALE);
}

static void test_complete_succeeded(void **state)
{
	struct fixture *f = *state;
	int64_t id = submit(f, 0, 3, 0, "k-success");
	uint64_t token = claim(f, "w9")->lease_token;
	struct outcome *g;

	assert_int_equal(complete(f, id, token, KF_STORE_SUCCEEDED,
				  "{\"layout\": \"qwertyuiopasdfghjkl;zxcvbnm,./\"}", NULL)->err, KF_OK);
	g = get(f, id);
	assert_int_equal(g->err, KF_OK);
	assert_int_equal(g->job->state, KF_JOB_SUCCEEDED);
	assert_int_equal(g->job->attempt, 1);
	assert_string_equal(g->job->layout, "qwertyuiopasdfghjkl;zxcvbnm,./");
	assert_string_equal(g->job->result, "{\"layout\": \"qwertyuiopasdfghjkl;zxcvbnm,./\"}");
	assert_true(g->job->finished_ns >= g->job->started_ns);
	assert_true(g->job->started_ns >= g->job->created_ns);
	assert_int_equal(g->n, 1);
	assert_int_equal(g->attempts[0], 1);
	assert_string_equal(g->outcomes[0], "succeeded");
	assert_int_equal(get(f, id + 1000)->err, KF_ENOENT);
}

static void test_failure_retrying_backoff(void **state)
{
	struct fixture *f = *state;
	int64_t id = submit(f, 0, 3, 0, NULL);
	uint64_t token = claim(f, "w1")->lease_token;
	struct outcome *o, *p = &f->o[0];
	const struct kf_store_job *j;

	o = complete(f, id, token, KF_STORE_FAILED, NULL, "boom");
	assert_int_equal(o->err, KF_OK);
	assert_int_equal(o->res.complete.state, KF_JOB_RETRYING);
	/* attempt 1: base 400 ms * 2^0, jitter [0.5, 1) */
	assert_true(o->res.complete.retry_in_ms >= 200 && o->res.complete.retry_in_ms <= 400);
	assert_null(claim(f, "w1"));            /* waiting for its backoff */
	CALL(f, p, kf_store_promote(f->store, on_done, p));
	assert_int_equal(p->n, 0);
	assert_true(p->res.sweep.next_due_ms >= 0 && p->res.sweep.next_due_ms <= 400);
	kf_sleep_ms(410);
	CALL(f, p, kf_store_promote(f->store, on_done, p));
	assert_int_equal(p->n, 1);
	assert_int_equal(p->ids[0], id);
	assert_int_equal(p->states[0], KF_JOB_PENDING);
	assert_int_equal(p->res.sweep.next_due_ms, -1);
	j = claim(f, "w2");
	assert_int_equal(j->id, id);
	assert_int_equal(j->attempt, 2);
	/* attempt 2 fails: backoff doubles to [400, 800] */
	o = complete(f, id, j->lease_token, KF_STORE_FAILED, NULL, "boom again");
	assert_int_equal(o->res.complete.state, KF_JOB_RETRYING);
	assert_true(o->res.complete.retry_in_ms >= 400 && o->res.complete.retry_in_ms <= 800);
	o = get(f, id);
	assert_string_equal(o->job->error, "boom again");
	assert_true(o->job->next_attempt_ns > 0);
	assert_int_equal(o->n, 2);
	assert_string_equal(o->outcomes[1], "failed");
	assert_string_equal(o->texts[0], "boom");
}

static void test_attempts_exhausted(void **state)
{
	struct fixture *f = *state;
	int64_t id = submit(f, 0, 1, 0, NULL);
	uint64_t token = claim(f, "w1")->lease_token;
	struct outcome *o = complete(f, id, token, KF_STORE_FAILED, NULL, "bad corpus");

	assert_int_equal(o->err, KF_OK);
	assert_int_equal(o->res.complete.state, KF_JOB_FAILED);
	assert_int_equal(o->res.complete.retry_in_ms, 0);
	o = get(f, id);
	assert_int_equal(o->job->state, KF_JOB_FAILED);
	assert_string_equal(o->job->error, "bad corpus");
	assert_true(o->job->finished_ns > 0);
}

static void test_dead_worker_requeue(void **state)
{
	struct fixture *f = *state;
	int64_t id = submit(f, 0, 2, 0, NULL);
	int64_t other = submit(f, 0, 2, 0, NULL);
	uint64_t token = claim(f, "w1")->lease_token;
	struct outcome *o = &f->o[0];
	const struct kf_store_job *j;

	assert_int_equal(claim(f, "w-alive")->id, other);
	CALL(f, o, kf_store_requeue_worker(f->store, "w1", NULL, on_done, o));
	assert_int_equal(o->err, KF_OK);
	assert_int_equal(o->n, 1);           /* not the other worker's job */
	assert_int_equal(o->ids[0], id);
	assert_int_equal(o->states[0], KF_JOB_PENDING);
	assert_int_equal(o->attempts[0], 1);
	/* The dead worker's late report is stale. */
	assert_int_equal(complete(f, id, token, KF_STORE_SUCCEEDED, "{}", NULL)->err, KF_ESTALE);
	j = claim(f, "w2");
	assert_int_equal(j->id, id);
	assert_int_equal(j->attempt, 2);
	CALL(f, o, kf_store_requeue_worker(f->store, "w2", "worker w2 silent for 10 s", on_done, o));
	assert_int_equal(o->n, 1);
	assert_int_equal(o->states[0], KF_JOB_FAILED);  /* budget of 2 exhausted */
	o = get(f, id);
	assert_int_equal(o->job->state, KF_JOB_FAILED);
	assert_string_equal(o->job->error, "worker w2 silent for 10 s");
	assert_int_equal(o->n, 2);
	assert_string_equal(o->outcomes[0], "lost");
	assert_string_equal(o->outcomes[1], "lost");
	assert_string_equal(o->texts[0], "worker lost");
}

/* A worker registered as a new process (incarnation 9): the running jobs
 * its id's previous process claimed (7) end as lost, not those the new one
 * claimed, nor one claimed with no incarnation known, nor another
 * worker's. The worker row stays alive. */
static void test_requeue_other_incarnations(void **state)
{
	struct fixture *f = *state;
	int64_t old_job = submit(f, 0, 3, 0, NULL), unknown = submit(f, 0, 3, 0, NULL);
	int64_t new_job = submit(f, 0, 3, 0, NULL), others = submit(f, 0, 3, 0, NULL);
	struct outcome *o = &f->o[0];
	uint64_t token;

	token = claim_as(f, "w1", 7)->lease_token;
	assert_int_equal(claim_as(f, "w1", 0)->id, unknown);
	assert_int_equal(claim_as(f, "w1", 9)->id, new_job);
	assert_int_equal(claim_as(f, "w2", 7)->id, others);
	CALL(f, o, kf_store_requeue_others(f->store, "w1", 9, NULL, on_done, o));
	assert_int_equal(o->err, KF_OK);
	assert_int_equal(o->n, 1);
	assert_int_equal(o->ids[0], old_job);
	assert_int_equal(o->states[0], KF_JOB_PENDING);
	assert_int_equal(o->attempts[0], 1);
	/* The old process's report is stale; the others still run. */
	assert_int_equal(complete(f, old_job, token, KF_STORE_SUCCEEDED, "{}", NULL)->err,
			 KF_ESTALE);
	assert_int_equal(get(f, unknown)->job->state, KF_JOB_RUNNING);
	assert_int_equal(get(f, new_job)->job->state, KF_JOB_RUNNING);
	assert_int_equal(get(f, others)->job->state, KF_JOB_RUNNING);
	o = get(f, old_job);
	assert_string_equal(o->outcomes[0], "lost");
	assert_string_equal(o->texts[0], "worker restarted");
	/* Nothing left to move; an incarnation of 0 is refused. */
	CALL(f, o, kf_store_requeue_others(f->store, "w1", 9, NULL, on_done, o));
	assert_int_equal(o->n, 0);
	assert_int_equal(kf_store_requeue_others(f->store, "w1", 0, NULL, on_done, o), KF_EINVAL);
}

/* Migration 5: the running jobs with the process that claimed them (only
 * those whose claim recorded one, and only claims old enough), and the end
 * of one attempt as "lost" — that very attempt, while it runs. */
static void test_running_and_job_lost(void **state)
{
	struct fixture *f = *state;
	int64_t known = submit(f, 0, 3, 0, NULL), unknown = submit(f, 0, 3, 0, NULL);
	int64_t pending = submit(f, 0, 3, 0, NULL);
	struct outcome *o = &f->o[0];
	uint64_t token;

	token = claim_as(f, "w1", 7)->lease_token;
	assert_int_equal(claim_as(f, "w1", 0)->id, unknown);
	CALL(f, o, kf_store_running(f->store, 0, on_done, o));
	assert_int_equal(o->err, KF_OK);
	assert_int_equal(o->n, 1);
	assert_int_equal(o->ids[0], known);
	assert_string_equal(o->texts[0], "w1");
	assert_true(o->incarnations[0] == 7);
	assert_true(o->tokens[0] == token);
	CALL(f, o, kf_store_running(f->store, 60000, on_done, o)); /* claimed just now */
	assert_int_equal(o->n, 0);

	CALL(f, o, kf_store_job_lost(f->store, known, token + 1, "lease lost", on_done, o));
	assert_int_equal(o->err, KF_OK);
	assert_int_equal(o->n, 0);                      /* another attempt: untouched */
	assert_int_equal(get(f, known)->job->state, KF_JOB_RUNNING);
	CALL(f, o, kf_store_job_lost(f->store, known, token, "lease lost: test", on_done, o));
	assert_int_equal(o->n, 1);
	assert_int_equal(o->ids[0], known);
	assert_int_equal(o->states[0], KF_JOB_PENDING);
	assert_int_equal(o->attempts[0], 1);
	CALL(f, o, kf_store_job_lost(f->store, known, token, "lease lost: test", on_done, o));
	assert_int_equal(o->n, 0);                      /* once */
	assert_int_equal(complete(f, known, token, KF_STORE_SUCCEEDED, "{}", NULL)->err, KF_ESTALE);
	o = get(f, known);
	assert_string_equal(o->outcomes[0], "lost");
	assert_string_equal(o->texts[0], "lease lost: test");
	assert_int_equal(get(f, unknown)->job->state, KF_JOB_RUNNING);
	assert_int_equal(get(f, pending)->job->state, KF_JOB_PENDING);
	assert_int_equal(kf_store_job_lost(f->store, 0, token, NULL, on_done, o), KF_EINVAL);
	assert_int_equal(kf_store_job_lost(f->store, known, 0, NULL, on_done, o), KF_EINVAL);
	assert_int_equal(kf_store_running(f->store, -1, on_done, o), KF_EINVAL);
}

static void test_kill(void **state)
{
	struct fixture *f = *state;
	int64_t running = submit(f, 9, 3, 0, NULL);
	int64_t pending = submit(f, 0, 3, 0, NULL);
	uint64_t token = claim(f, "w1")->lease_token;
	struct outcome *o = &f->o[0];

	CALL(f, o, kf_store_kill(f->store, pending, "killed by operator", on_done, o));
	assert_int_equal(o->err, KF_OK);
	assert_int_equal(o->res.kill.state, KF_JOB_KILLED);
	assert_true(o->res.kill.changed);
	assert_false(o->res.kill.cancel_requested);
	CALL(f, o, kf_store_kill(f->store, pending, NULL, on_done, o));
	assert_int_equal(o->err, KF_OK);                 /* idempotent */
	assert_int_equal(o->res.kill.state, KF_JOB_KILLED);
	assert_false(o->res.kill.changed);               /* nothing to count again */
	assert_null(claim(f, "w2"));                     /* never runs */

	CALL(f, o, kf_store_kill(f->store, running, NULL, on_done, o));
	assert_int_equal(o->err, KF_OK);
	assert_int_equal(o->res.kill.state, KF_JOB_RUNNING);
	assert_true(o->res.kill.cancel_requested);
	assert_true(o->res.kill.changed);
	assert_string_equal(o->kill_worker, "w1");
	assert_int_equal(o->res.kill.lease_token, token);
	CALL(f, o, kf_store_kill(f->store, running, NULL, on_done, o));
	assert_int_equal(o->res.kill.state, KF_JOB_RUNNING);
	assert_true(o->res.kill.cancel_requested);      /* the cancel may be resent */
	assert_false(o->res.kill.changed);               /* but it was requested already */
	CALL(f, o, kf_store_progress(f->store, running, token, 0.3, NAN, on_done, o));
	assert_int_equal(o->err, KF_OK);
	assert_true(o->res.progress.cancel);
	/* The worker stops and reports a failure: still killed, never retried. */
	o = complete(f, running, token, KF_STORE_FAILED, "{\"layout\": \"best\"}", "canceled");
	assert_int_equal(o->res.complete.state, KF_JOB_KILLED);
	o = get(f, running);
	assert_int_equal(o->job->state, KF_JOB_KILLED);
	assert_string_equal(o->job->layout, "best");

	/* Final states other than killed cannot be killed. */
	running = submit(f, 0, 1, 0, NULL);
	token = claim(f, "w1")->lease_token;
	complete(f, running, token, KF_STORE_SUCCEEDED, "{}", NULL);
	o = &f->o[0];
	CALL(f, o, kf_store_kill(f->store, running, NULL, on_done, o));
	assert_int_equal(o->err, KF_ESTATE);
	CALL(f, o, kf_store_kill(f->store, running + 1000, NULL, on_done, o));
	assert_int_equal(o->err, KF_ENOENT);
	assert_false(o->res.kill.changed);

	/* Cancel requested and then the worker dies: killed. */
	running = submit(f, 0, 3, 0, NULL);
	claim(f, "w3");
	CALL(f, o, kf_store_kill(f->store, running, NULL, on_done, o));
	CALL(f, o, kf_store_requeue_worker(f->store, "w3", NULL, on_done, o));
	assert_int_equal(o->n, 1);
	assert_int_equal(o->states[0], KF_JOB_KILLED);
}

static void test_retry(void **state)
{
	struct fixture *f = *state;
	int64_t id = submit(f, 0, 1, 0, NULL);
	uint64_t token = claim(f, "w1")->lease_token;
	struct outcome *o = &f->o[0];
	const struct kf_store_job *j;

	complete(f, id, token, KF_STORE_FAILED, NULL, "boom");
	CALL(f, o, kf_store_retry(f->store, id, on_done, o));
	assert_int_equal(o->err, KF_OK);
	assert_int_equal(o->res.retry.state, KF_JOB_PENDING);
	CALL(f, o, kf_store_retry(f->store, id, on_done, o));
	assert_int_equal(o->err, KF_ESTATE);             /* pending: nothing to retry */
	j = claim(f, "w2");
	assert_int_equal(j->id, id);
	assert_int_equal(j->attempt, 2);                 /* a new attempt */
	assert_true(j->lease_token != token);
	assert_int_equal(j->finished_ns, 0);
	/* The old attempt's token stays stale. */
	assert_int_equal(complete(f, id, token, KF_STORE_SUCCEEDED, "{}", NULL)->err, KF_ESTALE);
	CALL(f, o, kf_store_retry(f->store, id, on_done, o));
	assert_int_equal(o->err, KF_ESTATE);             /* running */
	/* Killed jobs can be retried too. */
	token = j->lease_token;
	CALL(f, o, kf_store_kill(f->store, id, NULL, on_done, o));
	assert_true(o->res.kill.cancel_requested);
	o = complete(f, id, token, KF_STORE_KILLED, "{}", NULL);
	assert_int_equal(o->res.complete.state, KF_JOB_KILLED);
	o = &f->o[0];
	CALL(f, o, kf_store_retry(f->store, id, on_done, o));
	assert_int_equal(o->err, KF_OK);
	assert_int_equal(claim(f, "w3")->attempt, 3);
	CALL(f, o, kf_store_retry(f->store, 999999, on_done, o));
	assert_int_equal(o->err, KF_ENOENT);
}

static void test_released_does_not_count(void **state)
{
	struct fixture *f = *state;
	int64_t id = submit(f, 0, 1, 0, NULL);
	uint64_t token = claim(f, "w1")->lease_token;
	struct outcome *o = complete(f, id, token, KF_STORE_RELEASED, NULL, NULL);
	const struct kf_store_job *j;

	assert_int_equal(o->res.complete.state, KF_JOB_PENDING);
	j = claim(f, "w2");
	assert_int_equal(j->attempt, 2);
	/* max_attempts 1 and the released attempt did not count: attempt 2 is
	 * the job's one real attempt, so losing it exhausts the budget. */
	o = &f->o[0];
	CALL(f, o, kf_store_requeue_worker(f->store, "w2", NULL, on_done, o));
	assert_int_equal(o->states[0], KF_JOB_FAILED);
}

static void test_expire_deadline(void **state)
{
	struct fixture *f = *state;
	int64_t id = submit(f, 0, 3, 40, NULL);
	int64_t other = submit(f, 0, 3, 60000, NULL);
	uint64_t token = claim(f, "w1")->lease_token;
	struct outcome *o = &f->o[0];

	claim(f, "w2");
	/* A grace of a minute: nothing is that late, whatever the load. */
	CALL(f, o, kf_store_expire(f->store, 60000, on_done, o));
	assert_int_equal(o->n, 0);
	kf_sleep_ms(60);
	CALL(f, o, kf_store_expire(f->store, 60000, on_done, o));
	assert_int_equal(o->n, 0);                      /* late, but within the grace */
	CALL(f, o, kf_store_expire(f->store, 0, on_done, o));
	assert_int_equal(o->n, 1);
	assert_int_equal(o->ids[0], id);
	assert_int_equal(o->states[0], KF_JOB_FAILED);
	assert_int_not_equal(o->ids[0], other);
	assert_int_equal(complete(f, id, token, KF_STORE_SUCCEEDED, "{}", NULL)->err, KF_ESTALE);
	o = get(f, id);
	assert_string_equal(o->job->error, "deadline exceeded");
	assert_string_equal(o->outcomes[0], "expired");

	/* The longest deadline the broker takes (INT64_MAX ns, 292 years)
	 * ends past 2262, where nanoseconds since 1970 no longer fit: read
	 * back as the largest time, not a negative one. */
	id = submit(f, 50, 1, INT64_MAX / 1000000, NULL);
	assert_int_equal(claim(f, "w3")->id, id);
	assert_int_equal(f->o[6].job->deadline_ns, INT64_MAX);
	assert_int_equal(get(f, id)->job->deadline_ns, INT64_MAX);
}

/* A worker that stopped at the deadline itself (migration 006): the job
 * fails at once, with budget left, and keeps the best result reported; a
 * kill asked for meanwhile wins, as for a failure. */
static void test_expired_report_keeps_result(void **state)
{
	struct fixture *f = *state;
	int64_t id = submit(f, 9, 3, 40, NULL);
	uint64_t token = claim(f, "w1")->lease_token;
	int64_t asked = submit(f, 0, 3, 60000, NULL);
	uint64_t asked_token = claim(f, "w2")->lease_token;
	struct outcome *o = complete(f, id, token, KF_STORE_EXPIRED,
		"{\"layout\": \"qwertyuiopasdfghjkl;zxcvbnm,./\"}",
		"deadline exceeded: stopped after 40 ms");

	assert_int_equal(o->err, KF_OK);
	assert_int_equal(o->res.complete.state, KF_JOB_FAILED); /* 2 attempts left: no retry */
	assert_int_equal(o->res.complete.retry_in_ms, 0);
	o = get(f, id);
	assert_int_equal(o->job->state, KF_JOB_FAILED);
	assert_int_equal(o->job->attempt, 1);
	assert_string_equal(o->job->layout, "qwertyuiopasdfghjkl;zxcvbnm,./");
	assert_string_equal(o->job->error, "deadline exceeded: stopped after 40 ms");
	assert_true(o->job->finished_ns > 0);
	assert_int_equal(o->n, 1);
	assert_string_equal(o->outcomes[0], "expired");
	assert_null(claim(f, "w3"));                    /* nothing to run again */
	/* The sweep finds nothing left to end, and a resent report is a
	 * duplicate. */
	CALL(f, &f->o[1], kf_store_expire(f->store, 0, on_done, &f->o[1]));
	assert_int_equal(f->o[1].n, 0);
	assert_true(complete(f, id, token, KF_STORE_EXPIRED, NULL, NULL)->res.complete.duplicate);

	o = &f->o[0];
	CALL(f, o, kf_store_kill(f->store, asked, NULL, on_done, o));
	assert_true(o->res.kill.cancel_requested);
	o = complete(f, asked, asked_token, KF_STORE_EXPIRED, NULL, NULL);
	assert_int_equal(o->res.complete.state, KF_JOB_KILLED);
	o = get(f, asked);
	assert_string_equal(o->job->error, "deadline exceeded"); /* the default text */
	assert_string_equal(o->outcomes[0], "expired");
}

static void test_list_and_counts(void **state)
{
	struct fixture *f = *state;
	struct kf_store_list_args la = { .limit = 2 };
	struct outcome *o = &f->o[0];
	int64_t ids[5];
	int i;

	for (i = 0; i < 5; i++)
		ids[i] = submit(f, 0, 1, 0, NULL);
	claim(f, "w1");
	claim(f, "w1");

	CALL(f, o, kf_store_list(f->store, &la, on_done, o));
	assert_int_equal(o->n, 2);
	assert_int_equal(o->ids[0], ids[0]);
	assert_int_equal(o->ids[1], ids[1]);
	assert_false(o->has_params[0]);
	assert_string_equal(o->texts[0], "shai");
	la.cursor = o->res.list.next_cursor;
	la.with_total = true;
	la.payload = true;
	CALL(f, o, kf_store_list(f->store, &la, on_done, o));
	assert_int_equal(o->n, 2);
	assert_int_equal(o->ids[0], ids[2]);
	assert_true(o->has_params[0]);
	assert_int_equal(o->res.list.total, 5);

	la = (struct kf_store_list_args){ .limit = 10, .states = 1u << KF_JOB_RUNNING,
					  .with_total = true };
	CALL(f, o, kf_store_list(f->store, &la, on_done, o));
	assert_int_equal(o->n, 2);
	assert_int_equal(o->states[0], KF_JOB_RUNNING);
	assert_int_equal(o->res.list.total, 2);

	la = (struct kf_store_list_args){ .limit = 2, .newest_first = true, .offset = 1,
					  .states = (1u << KF_JOB_PENDING) | (1u << KF_JOB_RUNNING) };
	CALL(f, o, kf_store_list(f->store, &la, on_done, o));
	assert_int_equal(o->n, 2);
	assert_int_equal(o->ids[0], ids[3]);
	assert_int_equal(o->ids[1], ids[2]);
	assert_int_equal(o->res.list.total, -1);
	la.cursor = o->res.list.next_cursor;
	la.offset = 0;
	CALL(f, o, kf_store_list(f->store, &la, on_done, o));
	assert_int_equal(o->n, 2);
	assert_int_equal(o->ids[0], ids[1]);

	/* Every state at once: the filter's text[] literal must not be cut. */
	la = (struct kf_store_list_args){ .limit = 10, .with_total = true,
					  .states = (1u << KF_JOB_STATE_COUNT) - 1 };
	CALL(f, o, kf_store_list(f->store, &la, on_done, o));
	assert_int_equal(o->n, 5);
	assert_int_equal(o->res.list.total, 5);

	la.limit = 0;
	assert_int_equal(kf_store_list(f->store, &la, on_done, o), KF_EINVAL);

	CALL(f, o, kf_store_counts(f->store, on_done, o));
	assert_int_equal(o->res.counts.n[KF_JOB_PENDING], 3);
	assert_int_equal(o->res.counts.n[KF_JOB_RUNNING], 2);
	assert_int_equal(o->res.counts.n[KF_JOB_SUCCEEDED], 0);
}

/* kf_store_counts equals a scan of the jobs, state by state. */
static void assert_counts_match_scan(struct fixture *f, PGconn *c)
{
	struct outcome *o = &f->o[0];
	char sql[160];

	CALL(f, o, kf_store_counts(f->store, on_done, o));
	assert_int_equal(o->err, KF_OK);
	for (int st = 0; st < KF_JOB_STATE_COUNT; st++) {
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM jobs WHERE state = '%s'",
			 kf_store_state_name((enum kf_job_state)st));
		assert_int_equal(o->res.counts.n[st], admin_ll(c, sql));
	}
}

/* Teardown of the tests that move jobs through their states: whatever
 * path a test took into or out of a final state (sql/008: the state
 * machine's functions count them), the counts still match a scan. */
static int teardown_counted(void **state)
{
	struct fixture *f = *state;
	PGconn *c = PQconnectdb(f->conninfo);

	assert_int_equal(PQstatus(c), CONNECTION_OK);
	assert_counts_match_scan(f, c);
	PQfinish(c);
	return teardown(state);
}

/* Every way into and out of a final state keeps the counts exact: the
 * state machine's transitions (sql/008), and deletes and TRUNCATE
 * (triggers, sql/002). A change by hand that bypasses the functions is
 * made good by kf_job_final_recount(). */
static void test_final_counts_follow_transitions(void **state)
{
	struct fixture *f = *state;
	PGconn *c = PQconnectdb(f->conninfo);
	struct outcome *o = &f->o[0];
	int64_t ok = submit(f, 9, 1, 0, NULL), bad = submit(f, 8, 1, 0, NULL);
	int64_t canceled = submit(f, 7, 3, 0, NULL), dropped = submit(f, 0, 3, 0, NULL);
	int64_t id;
	uint64_t token;

	assert_int_equal(PQstatus(c), CONNECTION_OK);
	complete(f, ok, claim(f, "w1")->lease_token, KF_STORE_SUCCEEDED, "{}", NULL);
	complete(f, bad, claim(f, "w1")->lease_token, KF_STORE_FAILED, NULL, "boom");
	token = claim(f, "w1")->lease_token;                 /* canceled: running */
	CALL(f, o, kf_store_kill(f->store, canceled, NULL, on_done, o));
	complete(f, canceled, token, KF_STORE_KILLED, "{}", NULL);
	CALL(f, o, kf_store_kill(f->store, dropped, NULL, on_done, o));  /* pending */
	submit(f, 0, 3, 0, NULL);                            /* stays pending */
	assert_counts_match_scan(f, c);
	assert_int_equal(o->res.counts.n[KF_JOB_SUCCEEDED], 1);
	assert_int_equal(o->res.counts.n[KF_JOB_FAILED], 1);
	assert_int_equal(o->res.counts.n[KF_JOB_KILLED], 2);
	/* A list's total comes from the same counts. */
	CALL(f, o, kf_store_list(f->store, &(struct kf_store_list_args){ .limit = 1,
		.with_total = true, .states = (1u << KF_JOB_FAILED) | (1u << KF_JOB_KILLED) },
		on_done, o));
	assert_int_equal(o->res.list.total, 3);
	CALL(f, o, kf_store_list(f->store, &(struct kf_store_list_args){ .limit = 1,
		.with_total = true }, on_done, o));
	assert_int_equal(o->res.list.total, admin_ll(c, "SELECT count(*) FROM jobs"));

	/* Out of the final states: retried, and deleted. */
	CALL(f, o, kf_store_retry(f->store, bad, on_done, o));
	CALL(f, o, kf_store_retry(f->store, dropped, on_done, o));
	admin_exec(c, "DELETE FROM jobs WHERE state = 'succeeded'");
	assert_counts_match_scan(f, c);
	assert_int_equal(o->res.counts.n[KF_JOB_SUCCEEDED], 0);
	assert_int_equal(o->res.counts.n[KF_JOB_FAILED], 0);
	assert_int_equal(o->res.counts.n[KF_JOB_KILLED], 1);
	assert_int_equal(o->res.counts.n[KF_JOB_PENDING], 3);

	/* Through the attempt's end without a report: lost with the budget
	 * spent, lost after a kill, expired.
	 * (Priority 20: claimed before the pending jobs above.) */
	id = submit(f, 20, 1, 0, NULL);
	assert_int_equal(claim(f, "w-dead")->id, id);
	CALL(f, o, kf_store_requeue_worker(f->store, "w-dead", NULL, on_done, o));
	assert_int_equal(o->states[0], KF_JOB_FAILED);
	id = submit(f, 20, 3, 0, NULL);
	token = claim(f, "w1")->lease_token;
	CALL(f, o, kf_store_kill(f->store, id, NULL, on_done, o));
	CALL(f, o, kf_store_job_lost(f->store, id, token, "lease lost", on_done, o));
	assert_int_equal(o->states[0], KF_JOB_KILLED);
	id = submit(f, 20, 3, 1, NULL);
	assert_int_equal(claim(f, "w1")->id, id);
	usleep(5000);                                        /* past its 1 ms */
	CALL(f, o, kf_store_expire(f->store, 0, on_done, o));
	assert_int_equal(o->n, 1);
	assert_int_equal(o->states[0], KF_JOB_FAILED);
	assert_counts_match_scan(f, c);
	assert_int_equal(o->res.counts.n[KF_JOB_FAILED], 2);
	assert_int_equal(o->res.counts.n[KF_JOB_KILLED], 2);

	/* By hand, past the functions: a job inserted finished, a state
	 * written. The counts lag until the recount. */
	admin_exec(c, "INSERT INTO jobs (state, max_attempts, attempt_limit, deadline_ms, params) "
		      "VALUES ('failed', 1, 1, 1000, '{}')");
	admin_exec(c, "UPDATE jobs SET state = 'succeeded' WHERE state = 'pending'");
	CALL(f, o, kf_store_counts(f->store, on_done, o));
	assert_int_equal(o->res.counts.n[KF_JOB_FAILED], 2);
	assert_int_equal(o->res.counts.n[KF_JOB_SUCCEEDED], 0);
	admin_exec(c, "SELECT kf_job_final_recount()");
	assert_counts_match_scan(f, c);
	assert_int_equal(o->res.counts.n[KF_JOB_FAILED], 3);
	assert_int_equal(o->res.counts.n[KF_JOB_SUCCEEDED], 3);

	admin_exec(c, "TRUNCATE jobs CASCADE");
	assert_counts_match_scan(f, c);
	assert_int_equal(o->res.counts.n[KF_JOB_FAILED], 0);
	PQfinish(c);
}

/* Migration 2 counts the final jobs a version-1 database already holds. */
/* A job the operator killed while its worker handed it back (a shutdown
 * with --on-term handback, or the broker giving back a claim whose client
 * left): the release ends it as killed, counted, never queued again
 * (sql/011; before it, the release cleared the kill and the job ran again). */
static void test_released_after_kill_is_killed(void **state)
{
	struct fixture *f = *state;
	PGconn *c = PQconnectdb(f->conninfo);
	int64_t id = submit(f, 0, 3, 0, NULL);
	uint64_t token = claim(f, "w1")->lease_token;
	struct outcome *o = &f->o[0];
	const struct kf_store_job *j;

	assert_int_equal(PQstatus(c), CONNECTION_OK);
	CALL(f, o, kf_store_kill(f->store, id, NULL, on_done, o));
	assert_true(o->res.kill.cancel_requested);
	o = complete(f, id, token, KF_STORE_RELEASED, "{\"layout\": \"best\"}",
		     "handed back: worker 'w1' is shutting down");
	assert_int_equal(o->err, KF_OK);
	assert_int_equal(o->res.complete.state, KF_JOB_KILLED);
	assert_null(claim(f, "w2"));                     /* never runs again */
	o = get(f, id);
	assert_int_equal(o->job->state, KF_JOB_KILLED);
	assert_string_equal(o->job->layout, "best");
	assert_int_equal(admin_ll(c, "SELECT attempt_limit FROM jobs"), 3); /* none given back */
	assert_counts_match_scan(f, c);
	assert_int_equal(f->o[0].res.counts.n[KF_JOB_KILLED], 1);
	/* An operator retry still brings it back, as any killed job. */
	o = &f->o[0];
	CALL(f, o, kf_store_retry(f->store, id, on_done, o));
	assert_int_equal(o->err, KF_OK);
	j = claim(f, "w2");
	assert_int_equal(j->id, id);
	assert_int_equal(j->attempt, 2);
	PQfinish(c);
}

static void test_final_counts_seeded_on_upgrade(void **state)
{
	struct fixture *f = *state;
	PGconn *c = PQconnectdb(f->conninfo);
	const struct kf_store_job *j;
	int ran = -1;

	assert_int_equal(PQstatus(c), CONNECTION_OK);
	submit(f, 0, 1, 0, NULL);
	j = claim(f, "w1");
	complete(f, j->id, j->lease_token, KF_STORE_SUCCEEDED, "{}", NULL);
	/* Back to version 1, then final jobs the triggers never saw. */
	admin_exec(c, "DROP TABLE job_final_counts; "
		      "DROP FUNCTION kf_job_final_count, kf_job_final_count_truncate, "
		      "kf_job_final_recount CASCADE; "
		      "ALTER TABLE jobs DROP COLUMN worker_incarnation; "
		      "DROP FUNCTION kf_worker_requeue_others, kf__requeue_running CASCADE; "
		      "DROP FUNCTION kf_job_lost; "
		      "ALTER TABLE jobs ALTER COLUMN state TYPE text, "
		      "ALTER COLUMN max_attempts TYPE integer, ALTER COLUMN deadline_ms TYPE bigint, "
		      "ADD CONSTRAINT jobs_state_check CHECK (state IN ('pending', 'running', "
		      "'retrying', 'succeeded', 'failed', 'killed')), "
		      "ADD CONSTRAINT jobs_max_attempts_check CHECK (max_attempts >= 1), "
		      "ADD CONSTRAINT jobs_deadline_ms_check CHECK (deadline_ms > 0); "
		      "ALTER TABLE job_attempts ALTER COLUMN outcome TYPE text, "
		      "ADD CONSTRAINT job_attempts_outcome_check CHECK (outcome IN ('succeeded', "
		      "'failed', 'killed', 'released', 'lost', 'expired')); "
		      "DROP DOMAIN kf_job_state, kf_attempt_outcome, kf_final_state, kf_attempts, "
		      "kf_duration_ms, kf_count; "
		      "CREATE INDEX jobs_running_worker ON jobs (worker_id) WHERE state = 'running'; "
		      "CREATE INDEX jobs_running_deadline ON jobs (deadline_at) "
		      "WHERE state = 'running' AND deadline_at IS NOT NULL; "
		      "DELETE FROM schema_migrations WHERE version >= 2");
	admin_exec(c, "INSERT INTO jobs (state, max_attempts, attempt_limit, deadline_ms, params) "
		      "SELECT s, 1, 1, 1000, '{}' FROM unnest(ARRAY['killed', 'killed', 'failed']) s");
	assert_int_equal(kf_migrate_apply(c, 0, NULL, &ran, NULL), KF_OK);
	assert_int_equal(ran, kf_migrate_newest() - 1);
	assert_counts_match_scan(f, c);
	assert_int_equal(f->o[0].res.counts.n[KF_JOB_SUCCEEDED], 1);
	assert_int_equal(f->o[0].res.counts.n[KF_JOB_KILLED], 2);
	PQfinish(c);
}

/* The SQLSTATE that sql fails with ("" when it succeeds). */
static const char *admin_fails(PGconn *c, const char *sql, char *state, size_t cap)
{
	PGresult *res = PQexec(c, sql);
	const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	snprintf(state, cap, "%s", code ? code : "");
	PQclear(res);
	return state;
}

/* Migration 7 moved the CHECK constraints of jobs, job_attempts and
 * job_final_counts into domains: the same values are refused, as check
 * violations (23514), and the ones the state machine writes still pass. */
static void test_domains_keep_the_rules(void **state)
{
	struct fixture *f = *state;
	PGconn *c = PQconnectdb(f->conninfo);
	const struct kf_store_job *j;
	char code[8];
	static const char *const refused[] = {
		"INSERT INTO jobs (state, max_attempts, attempt_limit, params) "
		"VALUES ('sleeping', 1, 1, '{}')",
		"INSERT INTO jobs (max_attempts, attempt_limit, params) VALUES (0, 1, '{}')",
		"INSERT INTO jobs (max_attempts, attempt_limit, deadline_ms, params) "
		"VALUES (1, 1, 0, '{}')",
		"UPDATE jobs SET state = 'done'",
		"UPDATE job_attempts SET outcome = 'vanished'",
		"UPDATE job_final_counts SET n = -1",
		"INSERT INTO job_final_counts (state, n) VALUES ('pending', 0)",
	};

	assert_int_equal(PQstatus(c), CONNECTION_OK);
	submit(f, 0, 1, 0, NULL);
	j = claim(f, "w1");
	complete(f, j->id, j->lease_token, KF_STORE_SUCCEEDED, "{}", NULL);
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		if (strcmp(admin_fails(c, refused[i], code, sizeof code), "23514") != 0)
			fail_msg("'%s': SQLSTATE '%s', want 23514", refused[i], code);
	}
	assert_string_equal(admin_fails(c, "UPDATE jobs SET state = 'killed'", code, sizeof code), "");
	assert_string_equal(admin_fails(c, "SELECT kf_job_final_recount()", code, sizeof code), "");
	assert_int_equal(admin_ll(c, "SELECT n FROM job_final_counts WHERE state = 'killed'"), 1);
	assert_int_equal(admin_ll(c, "SELECT count(*) FROM pg_constraint WHERE contype = 'c' AND "
				     "conrelid IN ('jobs'::regclass, 'job_attempts'::regclass, "
				     "'job_final_counts'::regclass)"), 0);
	PQfinish(c);
}

/* EXPLAIN's plan of sql, its lines joined by '\n' into buf. */
static const char *plan_of(PGconn *c, const char *sql, char *buf, size_t cap)
{
	char explain[512];
	PGresult *res;
	size_t len = 0;

	snprintf(explain, sizeof(explain), "EXPLAIN %s", sql);
	res = PQexec(c, explain);
	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	buf[0] = '\0';
	for (int i = 0; i < PQntuples(res) && len < cap; i++)
		len += (size_t)snprintf(buf + len, cap - len, "%s\n", PQgetvalue(res, i, 0));
	PQclear(res);
	return buf;
}

/* Migration 9: the sweeps over the running jobs (a dead worker's, the
 * deadlines, the lost leases and orphans) read them through
 * jobs_state_id, not the whole history. */
static void test_running_jobs_through_state_index(void **state)
{
	static const char *const sweeps[] = {
		"SELECT id FROM jobs WHERE state = 'running' AND worker_id = 'w1'",
		"SELECT id FROM jobs WHERE state = 'running' AND deadline_at IS NOT NULL "
		"AND deadline_at <= clock_timestamp()",
		"SELECT id FROM jobs WHERE state = 'running' AND worker_id IS NOT NULL "
		"ORDER BY id LIMIT 4096",
	};
	struct fixture *f = *state;
	PGconn *c = PQconnectdb(f->conninfo);
	struct outcome *o = &f->o[0];
	char plan[2048];

	assert_int_equal(PQstatus(c), CONNECTION_OK);
	admin_exec(c, "INSERT INTO jobs (state, max_attempts, attempt_limit, params, finished_at) "
		      "SELECT 'succeeded', 1, 1, '{}', clock_timestamp() "
		      "FROM generate_series(1, 20000)");
	admin_exec(c, "SELECT kf_job_final_recount()");
	for (int i = 0; i < 3; i++) {
		submit(f, 0, 1, 60000, NULL);
		claim(f, "w1");
	}
	admin_exec(c, "ANALYZE jobs");
	assert_int_equal(admin_ll(c, "SELECT count(*) FROM pg_indexes WHERE schemaname = "
				     "current_schema() AND tablename = 'jobs' AND indexname IN "
				     "('jobs_running_worker', 'jobs_running_deadline')"), 0);
	for (size_t i = 0; i < sizeof(sweeps) / sizeof(sweeps[0]); i++) {
		plan_of(c, sweeps[i], plan, sizeof(plan));
		if (!strstr(plan, "jobs_state_id") || strstr(plan, "Seq Scan"))
			fail_msg("'%s' does not read jobs_state_id:\n%s", sweeps[i], plan);
	}
	CALL(f, o, kf_store_requeue_worker(f->store, "w1", NULL, on_done, o));
	assert_int_equal(o->n, 3);
	PQfinish(c);
}

/* Migration 3: ANALYZE leaves the wide columns of jobs out (their
 * statistics cost most of its time and no plan uses them) and still
 * describes the ones the queries filter on. */
static void test_analyze_skips_wide_columns(void **state)
{
	struct fixture *f = *state;
	PGconn *c = PQconnectdb(f->conninfo);
	const struct kf_store_job *j;
	int i;

	assert_int_equal(PQstatus(c), CONNECTION_OK);
	for (i = 0; i < 20; i++) {
		char key[32];

		snprintf(key, sizeof(key), "key-%d", i);
		submit(f, 0, 1, 0, key);
	}
	for (i = 0; i < 10; i++) {
		j = claim(f, "w1");
		complete(f, j->id, j->lease_token, KF_STORE_SUCCEEDED, "{\"score\": 1}", NULL);
	}
	admin_exec(c, "ANALYZE jobs");
	/* This test's schema only: autovacuum may have analyzed the jobs
	 * table of an earlier test's schema meanwhile (a CI dry run counted
	 * 8 rows for the 4 columns). */
	assert_int_equal(admin_ll(c, "SELECT count(*) FROM pg_stats WHERE tablename = 'jobs' "
				     "AND schemaname = current_schema() "
				     "AND attname IN ('params', 'result', 'error', 'submit_key')"), 0);
	assert_int_equal(admin_ll(c, "SELECT count(*) FROM pg_stats WHERE tablename = 'jobs' "
				     "AND schemaname = current_schema() "
				     "AND attname IN ('state', 'worker_id', 'priority', 'id')"), 4);
	PQfinish(c);
}

/* Migration 10: every other column of jobs has a statistics target of
 * 10, so ANALYZE samples 3,000 rows, not 30,000, and builds histograms of
 * at most 11 bounds; every state in the table (four here) is still among
 * state's common values. A column added later without a target of its own
 * fails here: decide. */
static void test_analyze_samples_few_rows(void **state)
{
	struct fixture *f = *state;
	PGconn *c = PQconnectdb(f->conninfo);

	assert_int_equal(PQstatus(c), CONNECTION_OK);
	admin_exec(c, "INSERT INTO jobs (state, max_attempts, attempt_limit, params, finished_at) "
		      "SELECT (ARRAY['succeeded', 'failed', 'killed'])[1 + g % 3], 1, 1, '{}', "
		      "clock_timestamp() FROM generate_series(1, 20000) AS g");
	admin_exec(c, "INSERT INTO jobs (state, max_attempts, attempt_limit, params) "
		      "SELECT 'pending', 1, 1, '{}' FROM generate_series(1, 2000)");
	admin_exec(c, "ANALYZE jobs");
	assert_int_equal(admin_ll(c, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'jobs'::regclass "
				     "AND attnum > 0 AND NOT attisdropped AND attname NOT IN "
				     "('params', 'result', 'error', 'submit_key') AND attstattarget <> 10"), 0);
	assert_int_equal(admin_ll(c, "SELECT array_length(histogram_bounds, 1) FROM pg_stats "
				     "WHERE tablename = 'jobs' AND schemaname = current_schema() "
				     "AND attname = 'id'"), 11);
	assert_int_equal(admin_ll(c, "SELECT array_length(most_common_vals, 1) FROM pg_stats "
				     "WHERE tablename = 'jobs' AND schemaname = current_schema() "
				     "AND attname = 'state'"), 4);
	PQfinish(c);
}

static void test_worker_upsert(void **state)
{
	struct fixture *f = *state;
	struct kf_store_worker_args w = { .id = "w1", .host = "box", .pid = 10,
					  .incarnation = 1, .slots = 2 };
	struct outcome *o = &f->o[0];
	PGconn *c = PQconnectdb(f->conninfo);

	CALL(f, o, kf_store_worker_upsert(f->store, &w, on_done, o));
	assert_int_equal(o->err, KF_OK);
	w.incarnation = 2;
	w.liveness = KF_WORKER_STALE;
	CALL(f, o, kf_store_worker_upsert(f->store, &w, on_done, o));
	assert_int_equal(o->err, KF_OK);
	assert_int_equal(admin_ll(c, "SELECT incarnation FROM workers WHERE id = 'w1' "
				     "AND state = 'stale' AND host = 'box' AND slots = 2"), 2);
	assert_int_equal(admin_ll(c, "SELECT count(*) FROM workers"), 1);
	w.id = NULL;
	assert_int_equal(kf_store_worker_upsert(f->store, &w, on_done, o), KF_EINVAL);
	PQfinish(c);
}

/* Brokers record the workers they hear from (workers.last_seen, one
 * statement for all, any bytes in an id); a running job is an orphan when
 * its worker has no record or a stale one. */
static void test_workers_seen_and_orphans(void **state)
{
	struct fixture *f = *state;
	static const char *const odd[] = { "q\"uote", "back\\slash", "com,ma", "{brace}" };
	struct kf_store_worker_args w = { .host = "box", .slots = 1 };
	struct outcome *o = &f->o[0];
	PGconn *c = PQconnectdb(f->conninfo);
	const char *fresh = "fresh";

	for (size_t i = 0; i < 4; i++) {
		w.id = odd[i];
		CALL(f, o, kf_store_worker_upsert(f->store, &w, on_done, o));
	}
	w.id = "bystander";
	CALL(f, o, kf_store_worker_upsert(f->store, &w, on_done, o));
	admin_exec(c, "UPDATE workers SET last_seen = now() - interval '1 hour'");
	CALL(f, o, kf_store_workers_seen(f->store, odd, 4, on_done, o));
	assert_int_equal(o->err, KF_OK);
	assert_int_equal(admin_ll(c, "SELECT count(*) FROM workers "
				     "WHERE last_seen > now() - interval '1 minute'"), 4);
	assert_int_equal(admin_ll(c, "SELECT count(*) FROM workers WHERE id = 'bystander' "
				     "AND last_seen < now() - interval '1 minute'"), 1);
	assert_int_equal(kf_store_workers_seen(f->store, odd, 0, on_done, o), KF_EINVAL);

	/* Running jobs of: a fresh record, a stale one, none at all. */
	w.id = fresh;
	CALL(f, o, kf_store_worker_upsert(f->store, &w, on_done, o));
	submit(f, 0, 3, 0, NULL);
	submit(f, 0, 3, 0, NULL);
	submit(f, 0, 3, 0, NULL);
	claim(f, fresh);
	claim(f, "bystander");
	claim(f, "nobody");
	CALL(f, o, kf_store_orphans(f->store, 60000, on_done, o));
	assert_int_equal(o->err, KF_OK);
	assert_int_equal(o->n, 2);
	assert_string_equal(o->texts[0], "bystander");
	assert_string_equal(o->texts[1], "nobody");
	CALL(f, o, kf_store_workers_seen(f->store, (const char *const[]){ "bystander" }, 1,
					 on_done, o));
	CALL(f, o, kf_store_orphans(f->store, 60000, on_done, o));
	assert_int_equal(o->n, 1);
	assert_string_equal(o->texts[0], "nobody");
	assert_int_equal(kf_store_orphans(f->store, -1, on_done, o), KF_EINVAL);
	PQfinish(c);
}

/* Requests queued together share one transaction; one bad request in a
 * batch fails alone. */
static void test_group_commit(void **state)
{
	struct fixture *f = *state;
	struct kf_store_submit_args a = { .params = "{}", .max_attempts = 1 };
	struct kf_store_submit_args bad = { .params = "{oops", .max_attempts = 1 };
	enum { N = 200 };
	struct outcome *o = calloc(N, sizeof(*o));
	struct kf_store_status st;
	int i;

	assert_non_null(o);
	for (i = 0; i < N; i++)
		assert_int_equal(kf_store_submit(f->store, i == N / 2 ? &bad : &a, on_done, &o[i]),
				 KF_OK);
	for (i = 0; i < N; i++)
		drain_until(f, &o[i].done);
	for (i = 0; i < N; i++) {
		if (i == N / 2) {
			assert_int_equal(o[i].err, KF_EINVAL);
			continue;
		}
		assert_int_equal(o[i].err, KF_OK);
		if (i > 0 && i - 1 != N / 2)
			assert_true(o[i].res.submit.job_id > o[i - 1].res.submit.job_id);
	}
	kf_store_status(f->store, &st);
	assert_true(st.largest_batch > 1);
	assert_true(st.batches < N);
	assert_int_equal(st.queued, 0);
	free(o);
}

/* Held, the store runs nothing; released, what was queued meanwhile is one
 * batch in queue order: a claim queued right behind a submit takes that
 * job in the same transaction (the broker's hand-off to a waiting worker). */
static void test_hold_one_batch(void **state)
{
	struct fixture *f = *state;
	struct kf_store_submit_args a = { .params = "{\"corpus\":\"held\"}", .max_attempts = 1 };
	struct outcome *sub = calloc(1, sizeof(*sub)), *cl = calloc(1, sizeof(*cl));
	struct kf_store_status before, after;

	assert_non_null(sub);
	assert_non_null(cl);
	kf_store_status(f->store, &before);
	kf_store_hold(f->store);
	assert_int_equal(kf_store_submit(f->store, &a, on_done, sub), KF_OK);
	assert_int_equal(kf_store_claim(f->store, "w-held", 0, on_done, cl), KF_OK);
	/* Nothing runs while held. */
	assert_false(kf_store_wait_completions(f->store, 300));
	kf_store_release(f->store);
	drain_until(f, &sub->done);
	drain_until(f, &cl->done);
	assert_int_equal(sub->err, KF_OK);
	assert_int_equal(cl->err, KF_OK);
	assert_non_null(cl->job);
	assert_int_equal(cl->job->id, sub->res.submit.job_id);
	kf_store_status(f->store, &after);
	assert_int_equal(after.batches, before.batches + 1);
	assert_int_equal(after.last_batch, 2);
	kf_store_job_free(cl->job);
	kf_store_job_free(sub->job);
	free(sub);
	free(cl);
}

/* ---- transaction times (opts.on_txn) ------------------------------------- */

struct txn_log {
	pthread_mutex_t lock;
	int n;
	struct kf_store_txn t[16];
};

static void on_txn(void *arg, const struct kf_store_txn *t)
{
	struct txn_log *log = arg;

	pthread_mutex_lock(&log->lock);
	if (log->n < 16)
		log->t[log->n++] = *t;
	pthread_mutex_unlock(&log->lock);
}

/* The hook runs after the requests were handed over: wait for it. */
static struct kf_store_txn txn_wait(struct txn_log *log, int i)
{
	struct kf_store_txn t;

	for (int waited = 0; ; waited += 10) {
		pthread_mutex_lock(&log->lock);
		if (log->n > i) {
			t = log->t[i];
			pthread_mutex_unlock(&log->lock);
			return t;
		}
		pthread_mutex_unlock(&log->lock);
		if (waited > WAIT_MS)
			fail_msg("transaction %d not reported within %d ms", i, WAIT_MS);
		kf_sleep_ms(10);
	}
}

/* Each transaction is reported once, with what it carried, how long its
 * oldest request was queued, and how long it took: a request held back
 * by the queue shows as queue wait, a lock held by another session as a
 * long transaction, and a batch that failed as not committed. */
static void test_txn_hook(void **state)
{
	struct fixture *f = *state;
	struct kf_store_opts opts = KF_STORE_OPTS_INIT;
	struct kf_store_submit_args a = { .params = "{\"corpus\":\"timed\"}", .max_attempts = 1 };
	struct kf_store_submit_args bad = { .params = "{oops", .max_attempts = 1 };
	struct txn_log log = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct outcome *o = calloc(4, sizeof(*o));
	struct fixture g = *f;
	struct kf_store_txn t;
	PGconn *c = PQconnectdb(f->conninfo);

	assert_non_null(o);
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	opts.conninfo = f->conninfo;
	opts.on_txn = on_txn;
	opts.txn_arg = &log;
	assert_int_equal(kf_store_new(&opts, &g.store), KF_OK);
	assert_int_equal(kf_store_wait_up(g.store, WAIT_MS), KF_OK);

	/* Queued 300 ms behind a hold: one transaction of two requests. */
	kf_store_hold(g.store);
	assert_int_equal(kf_store_submit(g.store, &a, on_done, &o[0]), KF_OK);
	assert_int_equal(kf_store_claim(g.store, "w-timed", 0, on_done, &o[1]), KF_OK);
	kf_sleep_ms(300);
	kf_store_release(g.store);
	drain_until(&g, &o[1].done);
	t = txn_wait(&log, 0);
	assert_int_equal(t.requests, 2);
	assert_int_equal(t.ops[KF_STORE_SUBMIT], 1);
	assert_int_equal(t.ops[KF_STORE_CLAIM], 1);
	assert_int_equal(t.ops[KF_STORE_COMPLETE], 0);
	assert_true(t.wait_ns >= 300 * KF_NS_PER_MS);
	assert_true(t.ns > 0 && t.ns < t.wait_ns);
	assert_true(t.committed);

	/* Another session holds the table 250 ms: the transaction waits. */
	admin_exec(c, "BEGIN");
	admin_exec(c, "LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE");
	assert_int_equal(kf_store_submit(g.store, &a, on_done, &o[2]), KF_OK);
	kf_sleep_ms(250);
	admin_exec(c, "COMMIT");
	drain_until(&g, &o[2].done);
	assert_int_equal(o[2].err, KF_OK);
	t = txn_wait(&log, 1);
	assert_int_equal(t.requests, 1);
	assert_true(t.ns >= 250 * KF_NS_PER_MS);
	assert_true(t.wait_ns < t.ns);
	assert_true(t.committed);

	/* A batch broken by one request is not committed as a whole. */
	assert_int_equal(kf_store_submit(g.store, &bad, on_done, &o[3]), KF_OK);
	drain_until(&g, &o[3].done);
	assert_int_equal(o[3].err, KF_EINVAL);
	t = txn_wait(&log, 2);
	assert_int_equal(t.requests, 1);
	assert_false(t.committed);

	kf_store_free(g.store);
	PQfinish(c);
	for (int i = 0; i < 4; i++)
		kf_store_job_free(o[i].job);
	free(o);
}

static void test_stop_cancels_queued(void **state)
{
	struct fixture *f = *state;
	struct kf_store_submit_args a = { .params = "{}", .max_attempts = 1 };
	struct outcome o[50];
	int i, ok = 0, canceled = 0;

	memset(o, 0, sizeof(o));
	for (i = 0; i < 50; i++)
		assert_int_equal(kf_store_submit(f->store, &a, on_done, &o[i]), KF_OK);
	kf_store_stop(f->store);
	assert_int_equal(kf_store_submit(f->store, &a, on_done, &o[0]), KF_ECANCELED);
	kf_store_drain(f->store, 0);
	for (i = 0; i < 50; i++) {
		assert_true(o[i].done);
		ok += o[i].err == KF_OK;
		canceled += o[i].err == KF_ECANCELED;
	}
	assert_int_equal(ok + canceled, 50);
}

/* Sends sig to every process of the cluster: the postmaster (its pid file)
 * and its children (from /proc). */
static void signal_cluster(int sig)
{
	char path[300], line[512];
	FILE *fp;
	DIR *proc;
	struct dirent *d;
	long pm = 0;

	snprintf(path, sizeof path, "%s/data/postmaster.pid", g_pg.dir);
	assert_non_null(fp = fopen(path, "r"));
	assert_int_equal(fscanf(fp, "%ld", &pm), 1);
	fclose(fp);
	assert_int_equal(kill((pid_t)pm, sig), 0);
	assert_non_null(proc = opendir("/proc"));
	while ((d = readdir(proc))) {
		const char *rp;
		long ppid = 0;

		snprintf(path, sizeof path, "/proc/%s/stat", d->d_name);
		if (!(fp = fopen(path, "r")))
			continue;
		/* "pid (comm) state ppid ...": comm may hold spaces and ')' */
		if (fgets(line, sizeof line, fp) && (rp = strrchr(line, ')')) &&
		    sscanf(rp + 1, " %*c %ld", &ppid) == 1 && ppid == pm)
			kill((pid_t)atol(d->d_name), sig);
		fclose(fp);
	}
	closedir(proc);
}

/* PostgreSQL hangs (every process of it stopped) under a running store: a
 * transaction unanswered for answer_timeout_ms counts as a lost connection
 * — its requests fail as unavailable, with a message that says so, and the
 * store connects again — instead of hanging the store with the server.
 * Woken, the server is used again. */
static void test_database_hangs(void **state)
{
	struct fixture *f = *state;
	struct kf_store *fixture_store = f->store;
	struct status_log log = { 0 };
	struct outcome *o = &f->o[0];
	struct timespec t0, t1;
	long ms;

	f->store = open_store_timeout(f->conninfo, &log, false, 1500);
	assert_int_equal(kf_store_wait_up(f->store, WAIT_MS), KF_OK);
	kf_store_drain(f->store, 0);
	log.n = 0;
	signal_cluster(SIGSTOP);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CALL(f, o, kf_store_counts(f->store, on_done, o));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	fprintf(stderr, "# a request to the stopped server failed after %ld ms\n", ms);
	assert_int_equal(o->err, KF_EUNAVAIL);
	kf_store_drain(f->store, 0);
	assert_true(log.n >= 1);
	assert_int_equal(log.conn[0], KF_STORE_DOWN);
	assert_non_null(strstr(log.message[0], "no answer from the database within 1500 ms"));
	signal_cluster(SIGCONT);
	assert_int_equal(kf_store_wait_up(f->store, 20000), KF_OK);
	CALL(f, o, kf_store_counts(f->store, on_done, o));
	assert_int_equal(o->err, KF_OK);
	kf_store_free(f->store);
	f->store = fixture_store;
}

/* The ROLLBACK after a failed statement, unanswered: kf__pq_exec says it
 * timed out, so that the store's message says "no answer within N ms"
 * rather than libpq's "server closed the connection". A server that goes
 * away instead is not a timeout. Only this connection's backend is
 * stopped. */
static void test_pq_exec_timeout(void **state)
{
	struct fixture *f = *state;
	struct kf_strbuf msg = KF_STRBUF_INIT;
	PGconn *conn = PQconnectdb(f->conninfo), *other = PQconnectdb(f->conninfo);
	char sql[64];
	bool timed_out = false;
	pid_t backend;

	assert_int_equal(PQstatus(conn), CONNECTION_OK);
	assert_int_equal(PQstatus(other), CONNECTION_OK);
	assert_int_equal(kf__pq_exec(conn, "BEGIN", PGRES_COMMAND_OK, 0, &timed_out, &msg), KF_OK);
	assert_int_equal(kf__pq_exec(conn, "SELECT 1/0", PGRES_TUPLES_OK, 0, &timed_out, &msg),
			 KF_EINVAL);
	assert_non_null(strstr(msg.buf, "22012"));
	assert_false(timed_out);

	backend = (pid_t)PQbackendPID(conn);
	assert_int_equal(kill(backend, SIGSTOP), 0);
	kf_strbuf_reset(&msg);
	assert_int_equal(kf__pq_exec(conn, "ROLLBACK", PGRES_COMMAND_OK,
				     kf_clock_mono_ns() + 300000000u, &timed_out, &msg), KF_EUNAVAIL);
	assert_int_equal(kill(backend, SIGCONT), 0);
	assert_true(timed_out);
	PQfinish(conn);

	/* Ended by the server: unavailable too, but answered. */
	conn = PQconnectdb(f->conninfo);
	assert_int_equal(PQstatus(conn), CONNECTION_OK);
	timed_out = false;
	assert_int_equal(kf__pq_exec(conn, "BEGIN", PGRES_COMMAND_OK, 0, &timed_out, &msg), KF_OK);
	snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)", PQbackendPID(conn));
	assert_int_equal(kf__pq_exec(other, sql, PGRES_TUPLES_OK, 0, NULL, &msg), KF_OK);
	kf_strbuf_reset(&msg);
	assert_int_equal(kf__pq_exec(conn, "ROLLBACK", PGRES_COMMAND_OK,
				     kf_clock_mono_ns() + 5000000000u, &timed_out, &msg), KF_EUNAVAIL);
	assert_false(timed_out);
	assert_true(msg.len > 0);
	PQfinish(conn);
	PQfinish(other);
	kf_strbuf_release(&msg);
}

/* PostgreSQL stops and starts again under a running store. */
static void test_outage(void **state)
{
	struct fixture *f = *state;
	struct outcome *o = &f->o[0];
	struct kf_store_status st;
	int64_t before[3];
	int i, waited;

	for (i = 0; i < 3; i++)
		before[i] = submit(f, 0, 1, 0, NULL);
	kf_store_drain(f->store, 0);
	f->status.n = 0;

	assert_int_equal(run_pgtmp("pause", NULL, 0), 0);
	/* The idle connection is noticed without a request. */
	for (waited = 0; kf_store_is_up(f->store) && waited < WAIT_MS; waited += 20)
		kf_sleep_ms(20);
	assert_false(kf_store_is_up(f->store));
	CALL(f, o, kf_store_counts(f->store, on_done, o));
	assert_int_equal(o->err, KF_EUNAVAIL);
	assert_non_null(strstr(o->message, "database unavailable"));
	kf_sleep_ms(300);                      /* several reconnect attempts */
	CALL(f, o, kf_store_claim(f->store, "w1", 0, on_done, o));
	assert_int_equal(o->err, KF_EUNAVAIL);
	kf_store_status(f->store, &st);
	assert_int_equal(st.conn, KF_STORE_DOWN);
	assert_int_equal(st.err, KF_EUNAVAIL);
	assert_true(st.unavailable >= 2);

	assert_int_equal(run_pgtmp("resume", NULL, 0), 0);
	assert_int_equal(kf_store_wait_up(f->store, WAIT_MS), KF_OK);
	kf_store_drain(f->store, 0);
	/* Reported once each way, however many reconnects failed. */
	assert_int_equal(f->status.n, 2);
	assert_int_equal(f->status.conn[0], KF_STORE_DOWN);
	assert_int_equal(f->status.err[0], KF_EUNAVAIL);
	assert_int_equal(f->status.conn[1], KF_STORE_UP);
	assert_int_equal(f->status.err[1], KF_OK);

	/* Nothing lost, and it works again. */
	CALL(f, o, kf_store_counts(f->store, on_done, o));
	assert_int_equal(o->err, KF_OK);
	assert_int_equal(o->res.counts.n[KF_JOB_PENDING], 3);
	assert_int_equal(claim(f, "w1")->id, before[0]);
	submit(f, 0, 1, 0, "after-outage");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_migrate_once_and_idempotent),
		cmocka_unit_test(test_migrate_checksum_mismatch),
		cmocka_unit_test(test_migrate_concurrent),
		cmocka_unit_test(test_migrate_deadline),
		cmocka_unit_test(test_store_without_migrate_needs_schema),
		cmocka_unit_test(test_no_database),
		cmocka_unit_test_setup_teardown(test_submit_idempotent, setup, teardown_counted),
		cmocka_unit_test_setup_teardown(test_submit_key_taken_meanwhile, setup, teardown_counted),
		cmocka_unit_test_setup_teardown(test_claim_priority_order, setup, teardown_counted),
		cmocka_unit_test_setup_teardown(test_claim_skip_locked, setup, teardown_counted),
		cmocka_unit_test_setup_teardown(test_claim_two_brokers, setup, teardown_counted),
		cmocka_unit_test_setup_teardown(test_lease_fencing, setup, teardown_counted),
		cmocka_unit_test_setup_teardown(test_complete_succeeded, setup, teardown_counted),
		cmocka_unit_test_setup_teardown(test_failure_retrying_backoff, setup, teardown_counted),
		cmocka_unit_test_setup_teardown(test_attempts_exhausted, setup, teardown_counted),
		cmocka_unit_test_setup_teardown(test_requeue_other_incarnations, setup, teardown_counted),
		cmocka_unit_test_setup_teardown(test_running_and_job_lost, setup, teardown_counted),
		cmocka_unit_test_setup_teardown(test_dead_worker_requeue, setup, teardown_counted),
		cmocka_unit_test_setup_teardown(test_kill, setup, teardown_counted),
		cmocka_unit_test_setup_teardown(test_retry, setup, teardown_counted),
		cmocka_unit_test_setup_teardown(test_released_does_not_count, setup, teardown_counted),
		cmocka_unit_test_setup_teardown(test_expire_deadline, setup, teardown_counted),
		cmocka_unit_test_setup_teardown(test_expired_report_keeps_result, setup, teardown_counted),
		cmocka_unit_test_setup_teardown(test_list_and_counts, setup, teardown_counted),
		cmocka_unit_test_setup_teardown(test_final_counts_follow_transitions, setup, teardown_counted),
		cmocka_unit_test_setup_teardown(test_released_after_kill_is_killed, setup, teardown_counted),
		cmocka_unit_test_setup_teardown(test_final_counts_seeded_on_upgrade, setup, teardown),
		cmocka_unit_test_setup_teardown(test_analyze_skips_wide_columns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_analyze_samples_few_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_running_jobs_through_state_index, setup,
						teardown_counted),
		cmocka_unit_test_setup_teardown(test_domains_keep_the_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_worker_upsert, setup, teardown),
		cmocka_unit_test_setup_teardown(test_workers_seen_and_orphans, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hold_one_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_txn_hook, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_cancels_queued, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pq_exec_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_database_hangs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outage, setup, teardown),
	};

	return cmocka_run_group_tests_name("store", tests, group_setup, group_teardown);
}
