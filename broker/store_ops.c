/*
 * store_ops.c — the SQL of each store request: a table of prepared
 * statements, and per request type a builder (which statements, with which
 * parameters) and a parser (what the rows mean). Runs on the database thread
 * only. store.c sends the statements of a whole batch in one pipeline inside
 * one transaction, then hands each request its results: a builder never
 * depends on the rows of an earlier statement, so nothing waits for a round
 * trip in the middle of a batch.
 *
 * Parameters and results travel as text. The state transitions themselves
 * are PL/pgSQL functions (sql/001_initial.sql): one statement each, and the
 * same rules for every broker sharing the database.
 */
#include "broker/store_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/store_pq.h"

/* ---- statements -------------------------------------------------------- */

#define US(col) "(extract(epoch FROM " col ") * 1000000)::bigint"
#define JOB_COLS(params, result) \
	"id, state, priority, attempt, max_attempts, cancel_requested, worker_id, " \
	"lease_token, deadline_ms, progress, best_cost, " US("created_at") ", " \
	US("started_at") ", " US("finished_at") ", " US("deadline_at") ", " \
	US("next_attempt_at") ", submit_key, " params ", " result ", error, " \
	"params->>'corpus', result->>'layout'"
#define JOB_COLS_FULL JOB_COLS("params::text", "result::text")
#define JOB_COLS_LIST JOB_COLS("CASE WHEN $5::boolean THEN params::text END", \
			       "CASE WHEN $5::boolean THEN result::text END")
#define STATE_FILTER "($1::text[] IS NULL OR state = ANY ($1::text[]))"
/* Jobs per state: the active states through their indexes, the final
 * states from job_final_counts (sql/002; kept by the state machine's
 * functions since sql/008) — never a scan of every job ever run
 * (docs/database.md). */
#define STATE_COUNTS \
	"SELECT 'pending' AS state, count(*) AS n FROM jobs WHERE state = 'pending' UNION ALL " \
	"SELECT 'running', count(*) FROM jobs WHERE state = 'running' UNION ALL " \
	"SELECT 'retrying', count(*) FROM jobs WHERE state = 'retrying' UNION ALL " \
	"SELECT state, n FROM job_final_counts"

/* Column numbers of JOB_COLS. */
enum {
	C_ID, C_STATE, C_PRIORITY, C_ATTEMPT, C_MAX_ATTEMPTS, C_CANCEL, C_WORKER,
	C_TOKEN, C_DEADLINE_MS, C_PROGRESS, C_BEST_COST, C_CREATED, C_STARTED,
	C_FINISHED, C_DEADLINE, C_NEXT_ATTEMPT, C_SUBMIT_KEY, C_PARAMS, C_RESULT,
	C_ERROR, C_CORPUS, C_LAYOUT, C_JOB_COLS
};

enum stmt {
	ST_SUBMIT, ST_CLAIM, ST_PROGRESS, ST_COMPLETE, ST_KILL,
	ST_RETRY, ST_GET, ST_ATTEMPTS, ST_LIST_ASC, ST_LIST_DESC, ST_LIST_TOTAL,
	ST_COUNTS, ST_REQUEUE, ST_PROMOTE, ST_NEXT_DUE, ST_EXPIRE, ST_WORKER_UPSERT,
	ST_WORKERS_SEEN, ST_ORPHANS, ST_REQUEUE_OTHERS, ST_RUNNING, ST_JOB_LOST,
	ST_COUNT
};

static const struct {
	const char *name;
	const char *sql;
	ExecStatusType want;
} stmts[ST_COUNT] = {
	/* A resend (same submit_key) answers with the first job, and whether
	 * it asked for the same job (jsonb equality: key order and spacing do
	 * not count): the conflict also covers a first send earlier in the same
	 * batch. */
	/* $2 fills max_attempts (a domain since sql/007) and attempt_limit
	 * (an integer): without the casts PostgreSQL refuses the statement,
	 * "inconsistent types deduced for parameter $2". */
	[ST_SUBMIT] = { "kf_submit",
		"WITH ins AS (INSERT INTO jobs (priority, max_attempts, attempt_limit, "
		"deadline_ms, submit_key, params) VALUES ($1, $2::integer, $2::integer, $3, $4, $5) "
		"ON CONFLICT (submit_key) DO NOTHING RETURNING id) "
		"SELECT id, true, true FROM ins UNION ALL "
		"SELECT id, false, params = $5::jsonb FROM jobs WHERE submit_key = $4::text "
		"AND NOT EXISTS (SELECT 1 FROM ins)", PGRES_TUPLES_OK },
	[ST_CLAIM] = { "kf_claim",
		"UPDATE jobs SET state = 'running', attempt = attempt + 1, worker_id = $1, "
		"worker_incarnation = NULLIF($3::bigint, 0), "
		"lease_token = $2, started_at = now_.t, finished_at = NULL, "
		"progress = 0, best_cost = NULL, result = NULL, "
		"cancel_requested = false, next_attempt_at = NULL, "
		"deadline_at = now_.t + deadline_ms * interval '1 millisecond' "
		"FROM (SELECT clock_timestamp() AS t) AS now_ "
		"WHERE id = (SELECT id FROM jobs WHERE state = 'pending' "
		"ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED) "
		"AND state = 'pending' RETURNING " JOB_COLS_FULL, PGRES_TUPLES_OK },
	[ST_PROGRESS] = { "kf_progress",
		"SELECT rc, cancel FROM kf_job_progress($1, $2, $3, $4)", PGRES_TUPLES_OK },
	[ST_COMPLETE] = { "kf_complete",
		"SELECT rc, new_state, attempt, next_attempt_ms "
		"FROM kf_job_complete($1, $2, $3, $4, $5, $6, $7, $8, $9)", PGRES_TUPLES_OK },
	/* kf_job_kill() does not say whether it changed anything, so the row
	 * is locked and read first: kf_job_kill's argument comes from that
	 * row (a LATERAL dependency), which orders the read before the kill.
	 * A missing job: p is NULL, kf_job_kill(a.id) answers rc 1. */
	[ST_KILL] = { "kf_kill",
		"SELECT k.rc, k.new_state, k.worker_id, k.lease_token, "
		"k.rc = 0 AND (p.state IS DISTINCT FROM k.new_state OR "
		"(k.new_state = 'running' AND NOT p.cancel_requested)) "
		"FROM (SELECT $1::bigint AS id) AS a "
		"LEFT JOIN LATERAL (SELECT id, state, cancel_requested FROM jobs "
		"WHERE id = a.id FOR UPDATE) AS p ON true "
		"CROSS JOIN LATERAL kf_job_kill(COALESCE(p.id, a.id), $2) AS k", PGRES_TUPLES_OK },
	[ST_RETRY] = { "kf_retry", "SELECT rc, new_state FROM kf_job_retry($1)", PGRES_TUPLES_OK },
	[ST_GET] = { "kf_get", "SELECT " JOB_COLS_FULL " FROM jobs WHERE id = $1", PGRES_TUPLES_OK },
	[ST_ATTEMPTS] = { "kf_attempts",
		"SELECT attempt, worker_id, outcome, message, " US("started_at") ", "
		US("finished_at") " FROM job_attempts WHERE job_id = $1 ORDER BY attempt", PGRES_TUPLES_OK },
	[ST_LIST_ASC] = { "kf_list_asc",
		"SELECT " JOB_COLS_LIST " FROM jobs WHERE " STATE_FILTER " AND id > $2::bigint "
		"ORDER BY id LIMIT $3::bigint OFFSET $4::bigint", PGRES_TUPLES_OK },
	[ST_LIST_DESC] = { "kf_list_desc",
		"SELECT " JOB_COLS_LIST " FROM jobs WHERE " STATE_FILTER
		" AND ($2::bigint = 0 OR id < $2::bigint) ORDER BY id DESC LIMIT $3::bigint OFFSET $4::bigint", PGRES_TUPLES_OK },
	[ST_LIST_TOTAL] = { "kf_list_total",
		"SELECT COALESCE(sum(n), 0)::bigint FROM (" STATE_COUNTS ") AS c WHERE "
		STATE_FILTER, PGRES_TUPLES_OK },
	[ST_COUNTS] = { "kf_counts", STATE_COUNTS, PGRES_TUPLES_OK },
	[ST_REQUEUE] = { "kf_requeue",
		"SELECT job_id, new_state, attempt, NULL::text, lease_token "
		"FROM kf_worker_requeue($1, $2)", PGRES_TUPLES_OK },
	[ST_PROMOTE] = { "kf_promote",
		"WITH p AS (UPDATE jobs SET state = 'pending', next_attempt_at = NULL "
		"WHERE id IN (SELECT id FROM jobs WHERE state = 'retrying' "
		"AND next_attempt_at <= clock_timestamp() FOR UPDATE SKIP LOCKED) "
		"RETURNING id, state, attempt, worker_id) "
		"SELECT id, state, attempt, worker_id, NULL::bigint FROM p ORDER BY id", PGRES_TUPLES_OK },
	[ST_NEXT_DUE] = { "kf_next_due",
		"SELECT CASE WHEN min(next_attempt_at) IS NULL THEN -1 ELSE GREATEST(0, "
		"ceil(extract(epoch FROM min(next_attempt_at) - clock_timestamp()) * 1000)"
		")::bigint END FROM jobs WHERE state = 'retrying'", PGRES_TUPLES_OK },
	[ST_EXPIRE] = { "kf_expire",
		"SELECT job_id, new_state, attempt, worker_id, lease_token "
		"FROM kf_jobs_expire($1)", PGRES_TUPLES_OK },
	[ST_WORKER_UPSERT] = { "kf_worker_upsert",
		"INSERT INTO workers (id, host, pid, incarnation, slots, state) "
		"VALUES ($1, coalesce($2, ''), $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET "
		"host = EXCLUDED.host, pid = EXCLUDED.pid, incarnation = EXCLUDED.incarnation, "
		"slots = EXCLUDED.slots, state = EXCLUDED.state, last_seen = clock_timestamp()",
		PGRES_COMMAND_OK },
	[ST_WORKERS_SEEN] = { "kf_workers_seen",
		"UPDATE workers SET last_seen = clock_timestamp() WHERE id = ANY ($1::text[])",
		PGRES_COMMAND_OK },
	/* Through jobs_state_id: the running jobs only (sql/009). */
	[ST_ORPHANS] = { "kf_orphans",
		"SELECT DISTINCT j.worker_id FROM jobs j LEFT JOIN workers w ON w.id = j.worker_id "
		"WHERE j.state = 'running' AND j.worker_id IS NOT NULL AND (w.id IS NULL OR "
		"w.last_seen < clock_timestamp() - $1::bigint * interval '1 millisecond') "
		"ORDER BY 1 LIMIT 64", PGRES_TUPLES_OK },
	[ST_REQUEUE_OTHERS] = { "kf_requeue_others",
		"SELECT job_id, new_state, attempt, NULL::text, lease_token "
		"FROM kf_worker_requeue_others($1, $2, $3)", PGRES_TUPLES_OK },
	/* Through jobs_state_id, in id order: the running jobs only (sql/009). */
	[ST_RUNNING] = { "kf_running",
		"SELECT id, worker_id, worker_incarnation, lease_token FROM jobs "
		"WHERE state = 'running' AND worker_id IS NOT NULL AND worker_incarnation IS NOT NULL "
		"AND lease_token IS NOT NULL "
		"AND started_at <= clock_timestamp() - $1::bigint * interval '1 millisecond' "
		"ORDER BY id LIMIT 4096", PGRES_TUPLES_OK },
	[ST_JOB_LOST] = { "kf_job_lost",
		"SELECT job_id, new_state, attempt, worker_id, lease_token "
		"FROM kf_job_lost($1, $2, $3)", PGRES_TUPLES_OK },
};

_Static_assert(KF_STORE_RUNNING_MAX == 4096, "kf_running's LIMIT says KF_STORE_RUNNING_MAX");

enum kf_err kf__store_prepare(struct kf__store_db *db, struct kf_strbuf *msg)
{
	enum kf_err err = KF_OK;
	PGresult *res;
	int i;

	for (i = 0; i < ST_COUNT && !err; i++) {
		res = PQsendPrepare(db->conn, stmts[i].name, stmts[i].sql, 0, NULL)
			? kf__pq_results(db->conn, db->deadline_ns, &db->timed_out) : NULL;
		if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
			err = kf__pq_error(db->conn, res, msg);
			kf_strbuf_addf(msg, " (preparing %s)", stmts[i].name);
		}
		PQclear(res);
	}
	return err;
}

/* ---- values ---------------------------------------------------------------- */

uint64_t kf__store_rand(struct kf__store_db *db)
{
	/* splitmix64: tokens only need to differ, not to be secret. */
	uint64_t z = (db->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double rand_unit(struct kf__store_db *db)
{
	return (double)(kf__store_rand(db) >> 11) / 9007199254740992.0;
}

#define MAX_PARAMS 10
#define MAX_CALLS 2

/* One statement of a request with its text parameters. */
struct call {
	enum stmt st;
	int n;
	const char *v[MAX_PARAMS];
	char num[MAX_PARAMS][32];
	/* A state filter as a text[] literal: every state name once, with
	 * braces and commas (longest today: 50 bytes). */
	char states[96];
};

static struct call *call_new(struct call *calls, int *n, enum stmt st)
{
	struct call *c = &calls[(*n)++];

	c->st = st;
	c->n = 0;
	return c;
}

static void p_str(struct call *c, const char *s)
{
	c->v[c->n++] = s;
}

static void p_ll(struct call *c, long long x)
{
	snprintf(c->num[c->n], sizeof(c->num[0]), "%lld", x);
	c->v[c->n] = c->num[c->n];
	c->n++;
}

static void p_double(struct call *c, double x)
{
	if (isnan(x)) {
		c->v[c->n++] = NULL;
		return;
	}
	snprintf(c->num[c->n], sizeof(c->num[0]), "%.17g", x);
	c->v[c->n] = c->num[c->n];
	c->n++;
}

static void p_token(struct call *c, uint64_t token)
{
	p_ll(c, (long long)(int64_t)token);   /* bigint holds the bits */
}

static double get_double(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NAN : strtod(PQgetvalue(res, row, col), NULL);
}

/* Microseconds since the epoch, as nanoseconds. A time past 2262 — the
 * deadline of a job submitted with one of centuries — is held at the
 * largest value rather than overflowing. */
static int64_t get_ns(const PGresult *res, int row, int col)
{
	long long us = kf__pq_ll(res, row, col);

	if (us > INT64_MAX / 1000)
		return INT64_MAX;
	if (us < INT64_MIN / 1000)
		return INT64_MIN;
	return (int64_t)us * 1000;
}

static enum kf_job_state get_state(const PGresult *res, int row, int col)
{
	enum kf_job_state st = KF_JOB_PENDING;

	kf_store_state_parse(PQgetvalue(res, row, col), &st);
	return st;
}

static void job_from_row(const PGresult *res, int row, struct kf_store_job *j)
{
	j->id = kf__pq_ll(res, row, C_ID);
	j->state = get_state(res, row, C_STATE);
	j->priority = (int32_t)kf__pq_ll(res, row, C_PRIORITY);
	j->attempt = (int32_t)kf__pq_ll(res, row, C_ATTEMPT);
	j->max_attempts = (int32_t)kf__pq_ll(res, row, C_MAX_ATTEMPTS);
	j->cancel_requested = kf__pq_bool(res, row, C_CANCEL);
	j->worker_id = kf__pq_str(res, row, C_WORKER);
	j->lease_token = (uint64_t)kf__pq_ll(res, row, C_TOKEN);
	j->deadline_ms = kf__pq_ll(res, row, C_DEADLINE_MS);
	j->progress = get_double(res, row, C_PROGRESS);
	j->best_cost = get_double(res, row, C_BEST_COST);
	j->created_ns = get_ns(res, row, C_CREATED);
	j->started_ns = get_ns(res, row, C_STARTED);
	j->finished_ns = get_ns(res, row, C_FINISHED);
	j->deadline_ns = get_ns(res, row, C_DEADLINE);
	j->next_attempt_ns = get_ns(res, row, C_NEXT_ATTEMPT);
	j->submit_key = kf__pq_str(res, row, C_SUBMIT_KEY);
	j->params = kf__pq_str(res, row, C_PARAMS);
	j->result = kf__pq_str(res, row, C_RESULT);
	j->error = kf__pq_str(res, row, C_ERROR);
	j->corpus = kf__pq_str(res, row, C_CORPUS);
	j->layout = kf__pq_str(res, row, C_LAYOUT);
}

/* The request's own outcome (not a database failure), with a message. */
static void set_outcome(struct kf__store_req *r, enum kf_err err)
{
	static const char *const why[] = {
		[KF_ENOMEM] = "out of memory",
		[KF_ENOENT] = "no such job",
		[KF_ESTALE] = "stale lease token: the attempt is no longer current",
		[KF_ESTATE] = "not valid in the job's state",
		[KF_EINTERNAL] = "unexpected answer from the database",
	};

	r->res.err = err;
	if (err && (size_t)err < sizeof(why) / sizeof(why[0]) && why[err])
		kf_strbuf_addstr(&r->msg, why[err]);
}

/* The rc column of the state-machine functions (sql/001_initial.sql). */
static void set_rc(struct kf__store_req *r, const PGresult *res, bool *duplicate)
{
	static const enum kf_err map[] = { KF_OK, KF_ENOENT, KF_ESTALE, KF_OK, KF_ESTATE };
	long long rc = PQntuples(res) == 1 ? kf__pq_ll(res, 0, 0) : -1;

	if (duplicate)
		*duplicate = rc == 3;
	set_outcome(r, rc >= 0 && rc < (long long)(sizeof(map) / sizeof(map[0])) ? map[rc]
										   : KF_EINTERNAL);
}

static void *alloc_rows(struct kf__store_req *r, int n, size_t size)
{
	if (n <= 0)
		return NULL;
	if (!(r->array = calloc((size_t)n, size)))
		set_outcome(r, KF_ENOMEM);
	return r->array;
}

/* ---- requests: builders and parsers ---------------------------------------
 * build_X fills calls[] and returns how many; parse_X reads r->pg[] (the
 * rows of those calls, in order) into r->res and returns KF_OK, or KF_EBUSY
 * when the request must run again in a transaction of its own.
 */

static int build_submit(struct kf__store_db *db, struct kf__store_req *r, struct call *calls)
{
	const struct kf_store_submit_args *a = &r->a.submit;
	int n = 0;
	struct call *c = call_new(calls, &n, ST_SUBMIT);

	(void)db;
	p_ll(c, a->priority);
	p_ll(c, a->max_attempts);
	if (a->deadline_ms > 0)
		p_ll(c, a->deadline_ms);
	else
		p_str(c, NULL);
	p_str(c, a->submit_key);
	p_str(c, a->params);
	return n;
}

static enum kf_err parse_submit(struct kf__store_req *r)
{
	/* No row: another broker committed this key after our statement's
	 * snapshot was taken; a fresh transaction will see it. */
	if (PQntuples(r->pg[0]) != 1)
		return KF_EBUSY;
	r->res.submit.job_id = kf__pq_ll(r->pg[0], 0, 0);
	r->res.submit.created = kf__pq_bool(r->pg[0], 0, 1);
	r->res.submit.same_params = kf__pq_bool(r->pg[0], 0, 2);
	return KF_OK;
}

static int build_claim(struct kf__store_db *db, struct kf__store_req *r, struct call *calls)
{
	int n = 0;
	struct call *c = call_new(calls, &n, ST_CLAIM);
	uint64_t token;

	do
		token = kf__store_rand(db);
	while (token == 0);
	p_str(c, r->a.worker_ref.worker_id);
	p_token(c, token);
	p_token(c, r->a.worker_ref.incarnation);   /* the bits in a bigint, as workers.incarnation */
	return n;
}

static enum kf_err parse_claim(struct kf__store_req *r)
{
	if (PQntuples(r->pg[0]) == 1) {
		job_from_row(r->pg[0], 0, &r->job);
		r->res.claim.job = &r->job;
	}
	return KF_OK;
}

static int build_progress(struct kf__store_db *db, struct kf__store_req *r, struct call *calls)
{
	int n = 0;
	struct call *c = call_new(calls, &n, ST_PROGRESS);

	(void)db;
	p_ll(c, r->a.progress.job_id);
	p_token(c, r->a.progress.lease_token);
	p_double(c, r->a.progress.progress);
	p_double(c, r->a.progress.best_cost);
	return n;
}

static enum kf_err parse_progress(struct kf__store_req *r)
{
	set_rc(r, r->pg[0], NULL);
	r->res.progress.cancel = !r->res.err && kf__pq_bool(r->pg[0], 0, 1);
	return KF_OK;
}

static const char *const outcome_names[KF_STORE_OUTCOME_COUNT] = {
	[KF_STORE_SUCCEEDED] = "succeeded",
	[KF_STORE_FAILED] = "failed",
	[KF_STORE_KILLED] = "killed",
	[KF_STORE_RELEASED] = "released",
	[KF_STORE_EXPIRED] = "expired",
};

static int build_complete(struct kf__store_db *db, struct kf__store_req *r, struct call *calls)
{
	const struct kf_store_complete_args *a = &r->a.complete;
	int n = 0;
	struct call *c = call_new(calls, &n, ST_COMPLETE);

	p_ll(c, a->job_id);
	p_token(c, a->lease_token);
	p_str(c, outcome_names[a->outcome]);
	p_str(c, a->result);
	p_str(c, a->error);
	p_double(c, a->best_cost);
	p_ll(c, db->backoff_base_ms);
	p_ll(c, db->backoff_max_ms);
	p_double(c, rand_unit(db));
	return n;
}

static enum kf_err parse_complete(struct kf__store_req *r)
{
	const PGresult *res = r->pg[0];

	set_rc(r, res, &r->res.complete.duplicate);
	if (PQntuples(res) == 1) {
		r->res.complete.state = get_state(res, 0, 1);
		r->res.complete.attempt = (int32_t)kf__pq_ll(res, 0, 2);
		r->res.complete.retry_in_ms = kf__pq_ll(res, 0, 3);
	}
	return KF_OK;
}

/* kill (with its reason), retry, get: by job id. */
static int build_job(struct kf__store_db *db, struct kf__store_req *r, struct call *calls)
{
	static const enum stmt first[KF_STORE_OP_COUNT] = {
		[KF_STORE_KILL] = ST_KILL, [KF_STORE_RETRY] = ST_RETRY, [KF_STORE_GET] = ST_GET,
	};
	int n = 0;
	struct call *c = call_new(calls, &n, first[r->op]);

	(void)db;
	p_ll(c, r->a.job.job_id);
	if (r->op == KF_STORE_KILL)
		p_str(c, r->a.job.text);
	if (r->op == KF_STORE_GET) {
		c = call_new(calls, &n, ST_ATTEMPTS);
		p_ll(c, r->a.job.job_id);
	}
	return n;
}

static enum kf_err parse_kill(struct kf__store_req *r)
{
	const PGresult *res = r->pg[0];

	set_rc(r, res, NULL);
	if (PQntuples(res) != 1)
		return KF_OK;
	r->res.kill.state = get_state(res, 0, 1);
	r->res.kill.cancel_requested = !r->res.err && r->res.kill.state == KF_JOB_RUNNING;
	r->res.kill.changed = !r->res.err && kf__pq_bool(res, 0, 4);
	if (r->res.kill.cancel_requested) {
		r->res.kill.worker_id = kf__pq_str(res, 0, 2);
		r->res.kill.lease_token = (uint64_t)kf__pq_ll(res, 0, 3);
	}
	return KF_OK;
}

static enum kf_err parse_retry(struct kf__store_req *r)
{
	set_rc(r, r->pg[0], NULL);
	if (PQntuples(r->pg[0]) == 1)
		r->res.retry.state = get_state(r->pg[0], 0, 1);
	return KF_OK;
}

static enum kf_err parse_get(struct kf__store_req *r)
{
	const PGresult *res = r->pg[1];
	struct kf_store_attempt *at;
	int i, n = PQntuples(res);

	if (PQntuples(r->pg[0]) != 1) {
		set_outcome(r, KF_ENOENT);
		return KF_OK;
	}
	job_from_row(r->pg[0], 0, &r->job);
	r->res.get.job = &r->job;
	if (!(at = alloc_rows(r, n, sizeof(*at))))
		return KF_OK;
	for (i = 0; i < n; i++) {
		at[i].attempt = (int32_t)kf__pq_ll(res, i, 0);
		at[i].worker_id = kf__pq_str(res, i, 1);
		at[i].outcome = kf__pq_str(res, i, 2);
		at[i].message = kf__pq_str(res, i, 3);
		at[i].started_ns = get_ns(res, i, 4);
		at[i].finished_ns = get_ns(res, i, 5);
	}
	r->res.get.attempts = at;
	r->res.get.n_attempts = (size_t)n;
	return KF_OK;
}

/* "{pending,running}" from a state mask; NULL for every state. */
static const char *states_array(uint32_t mask, char *buf, size_t size)
{
	struct kf_strbuf sb = KF_STRBUF_INIT;
	int s;

	if (!mask)
		return NULL;
	kf_strbuf_addch(&sb, '{');
	for (s = 0; s < KF_JOB_STATE_COUNT; s++)
		if (mask & (1u << s)) {
			if (sb.len > 1)
				kf_strbuf_addch(&sb, ',');
			kf_strbuf_addstr(&sb, kf_store_state_name((enum kf_job_state)s));
		}
	kf_strbuf_addch(&sb, '}');
	/* Never truncated: states[] holds every name at once (checked here so
	 * that a new state cannot silently cut the filter). */
	if (sb.oom || sb.len >= size) {
		kf_strbuf_release(&sb);
		return NULL;
	}
	memcpy(buf, sb.buf, sb.len + 1);
	kf_strbuf_release(&sb);
	return buf;
}

static int build_list(struct kf__store_db *db, struct kf__store_req *r, struct call *calls)
{
	const struct kf_store_list_args *a = &r->a.list;
	int n = 0;
	struct call *c = call_new(calls, &n, a->newest_first ? ST_LIST_DESC : ST_LIST_ASC);

	(void)db;
	/* The state array text lives in num[] like the numbers. */
	p_str(c, states_array(a->states, c->states, sizeof(c->states)));
	p_ll(c, a->cursor);
	p_ll(c, a->limit);
	p_ll(c, a->offset);
	p_str(c, a->payload ? "true" : "false");
	if (a->with_total) {
		struct call *t = call_new(calls, &n, ST_LIST_TOTAL);

		p_str(t, states_array(a->states, t->states, sizeof(t->states)));
	}
	return n;
}

static enum kf_err parse_list(struct kf__store_req *r)
{
	struct kf_store_job *jobs;
	int i, n = PQntuples(r->pg[0]);

	r->res.list.total = r->a.list.with_total ? kf__pq_ll(r->pg[1], 0, 0) : -1;
	if (!(jobs = alloc_rows(r, n, sizeof(*jobs))))
		return KF_OK;
	for (i = 0; i < n; i++)
		job_from_row(r->pg[0], i, &jobs[i]);
	r->res.list.jobs = jobs;
	r->res.list.n_jobs = (size_t)n;
	r->res.list.next_cursor = jobs[n - 1].id;
	return KF_OK;
}

/* counts, promote, expire, requeue, orphans, running, job_lost: a sweep
 * or a summary. */
static int build_sweep(struct kf__store_db *db, struct kf__store_req *r, struct call *calls)
{
	int n = 0;
	struct call *c;

	(void)db;
	switch (r->op) {
	case KF_STORE_COUNTS:
		call_new(calls, &n, ST_COUNTS);
		break;
	case KF_STORE_PROMOTE:
		call_new(calls, &n, ST_PROMOTE);
		call_new(calls, &n, ST_NEXT_DUE);   /* runs after the promotion */
		break;
	case KF_STORE_EXPIRE: case KF_STORE_ORPHANS: case KF_STORE_RUNNING:
		/* one parameter, a time in ms: grace, staleness, age */
		c = call_new(calls, &n, r->op == KF_STORE_EXPIRE ? ST_EXPIRE :
					r->op == KF_STORE_ORPHANS ? ST_ORPHANS : ST_RUNNING);
		p_ll(c, r->a.ms);
		break;
	case KF_STORE_JOB_LOST:
		c = call_new(calls, &n, ST_JOB_LOST);
		p_ll(c, r->a.job.job_id);
		p_token(c, r->a.job.lease_token);
		p_str(c, r->a.job.text);
		break;
	case KF_STORE_REQUEUE_OTHERS:
		c = call_new(calls, &n, ST_REQUEUE_OTHERS);
		p_str(c, r->a.worker_ref.worker_id);
		p_token(c, r->a.worker_ref.incarnation);
		p_str(c, r->a.worker_ref.reason);
		break;
	default:   /* KF_STORE_REQUEUE_WORKER */
		c = call_new(calls, &n, ST_REQUEUE);
		p_str(c, r->a.worker_ref.worker_id);
		p_str(c, r->a.worker_ref.reason);
		break;
	}
	return n;
}

static enum kf_err parse_counts(struct kf__store_req *r)
{
	enum kf_job_state st;
	int i;

	for (i = 0; i < PQntuples(r->pg[0]); i++)
		if (kf_store_state_parse(PQgetvalue(r->pg[0], i, 0), &st) == KF_OK)
			r->res.counts.n[st] = kf__pq_ll(r->pg[0], i, 1);
	return KF_OK;
}

/* Rows (job_id, new_state, attempt, worker_id, lease_token) into res.sweep. */
static enum kf_err parse_sweep(struct kf__store_req *r)
{
	const PGresult *res = r->pg[0];
	struct kf_store_change *ch;
	int i, n = PQntuples(res);

	r->res.sweep.next_due_ms = r->op == KF_STORE_PROMOTE ? kf__pq_ll(r->pg[1], 0, 0) : -1;
	if (!(ch = alloc_rows(r, n, sizeof(*ch))))
		return KF_OK;
	for (i = 0; i < n; i++) {
		ch[i].job_id = kf__pq_ll(res, i, 0);
		ch[i].state = get_state(res, i, 1);
		ch[i].attempt = (int32_t)kf__pq_ll(res, i, 2);
		ch[i].worker_id = r->op == KF_STORE_REQUEUE_WORKER ||
				  r->op == KF_STORE_REQUEUE_OTHERS ? r->a.worker_ref.worker_id
								   : kf__pq_str(res, i, 3);
		ch[i].lease_token = (uint64_t)kf__pq_ll(res, i, 4);
	}
	r->res.sweep.changes = ch;
	r->res.sweep.n_changes = (size_t)n;
	return KF_OK;
}

static int build_worker(struct kf__store_db *db, struct kf__store_req *r, struct call *calls)
{
	static const char *const liveness[KF_WORKER_LIVENESS_COUNT] = {
		[KF_WORKER_ALIVE] = "alive", [KF_WORKER_STALE] = "stale", [KF_WORKER_DEAD] = "dead",
	};
	const struct kf_store_worker_args *a = &r->a.worker;
	int n = 0;
	struct call *c = call_new(calls, &n, ST_WORKER_UPSERT);

	(void)db;
	p_str(c, a->id);
	p_str(c, a->host);
	p_ll(c, a->pid);
	p_ll(c, a->incarnation);
	p_ll(c, a->slots);
	p_str(c, liveness[a->liveness]);
	return n;
}

static int build_workers_seen(struct kf__store_db *db, struct kf__store_req *r,
			      struct call *calls)
{
	int n = 0;
	struct call *c = call_new(calls, &n, ST_WORKERS_SEEN);

	(void)db;
	p_str(c, r->a.worker_ids);
	return n;
}

static enum kf_err parse_orphans(struct kf__store_req *r)
{
	int n = PQntuples(r->pg[0]);
	const char **ids;

	if (!(ids = alloc_rows(r, n, sizeof(*ids))))
		return KF_OK;
	for (int i = 0; i < n; i++)
		ids[i] = kf__pq_str(r->pg[0], i, 0);
	r->res.orphans.worker_ids = ids;
	r->res.orphans.n = (size_t)n;
	return KF_OK;
}

static enum kf_err parse_running(struct kf__store_req *r)
{
	int n = PQntuples(r->pg[0]);
	struct kf_store_running_job *jobs;

	if (!(jobs = alloc_rows(r, n, sizeof(*jobs))))
		return KF_OK;
	for (int i = 0; i < n; i++)
		jobs[i] = (struct kf_store_running_job){ .job_id = kf__pq_ll(r->pg[0], i, 0),
			.worker_id = kf__pq_str(r->pg[0], i, 1),
			.incarnation = (uint64_t)kf__pq_ll(r->pg[0], i, 2),
			.lease_token = (uint64_t)kf__pq_ll(r->pg[0], i, 3) };
	r->res.running.jobs = jobs;
	r->res.running.n = (size_t)n;
	return KF_OK;
}

static enum kf_err parse_nothing(struct kf__store_req *r)
{
	(void)r;
	return KF_OK;
}

static const struct {
	int (*build)(struct kf__store_db *db, struct kf__store_req *r, struct call *calls);
	enum kf_err (*parse)(struct kf__store_req *r);
} ops[KF_STORE_OP_COUNT] = {
	[KF_STORE_SUBMIT] = { build_submit, parse_submit },
	[KF_STORE_CLAIM] = { build_claim, parse_claim },
	[KF_STORE_PROGRESS] = { build_progress, parse_progress },
	[KF_STORE_COMPLETE] = { build_complete, parse_complete },
	[KF_STORE_KILL] = { build_job, parse_kill },
	[KF_STORE_RETRY] = { build_job, parse_retry },
	[KF_STORE_GET] = { build_job, parse_get },
	[KF_STORE_LIST] = { build_list, parse_list },
	[KF_STORE_COUNTS] = { build_sweep, parse_counts },
	[KF_STORE_REQUEUE_WORKER] = { build_sweep, parse_sweep },
	[KF_STORE_PROMOTE] = { build_sweep, parse_sweep },
	[KF_STORE_EXPIRE] = { build_sweep, parse_sweep },
	[KF_STORE_WORKER_UPSERT] = { build_worker, parse_nothing },
	[KF_STORE_WORKERS_SEEN] = { build_workers_seen, parse_nothing },
	[KF_STORE_ORPHANS] = { build_sweep, parse_orphans },
	[KF_STORE_REQUEUE_OTHERS] = { build_sweep, parse_sweep },
	[KF_STORE_RUNNING] = { build_sweep, parse_running },
	[KF_STORE_JOB_LOST] = { build_sweep, parse_sweep },
};

/* ---- pipeline: send, then receive ------------------------------------------- */

int kf__store_send(struct kf__store_db *db, struct kf__store_req *r, size_t *bytes)
{
	struct call calls[MAX_CALLS];
	int i, k, n;

	kf__store_req_reset(r);
	n = ops[r->op].build(db, r, calls);
	for (i = 0; i < n; i++) {
		for (k = 0; k < calls[i].n; k++)
			*bytes += calls[i].v[k] ? strlen(calls[i].v[k]) : 0;
		if (!PQsendQueryPrepared(db->conn, stmts[calls[i].st].name, calls[i].n,
					 calls[i].v, NULL, NULL, 0)) {
			kf__pq_error(db->conn, NULL, &r->msg);
			return -1;
		}
		r->st[i] = (int)calls[i].st;
	}
	return n;
}

/* The next result of the pipeline and the NULL that ends it. */
static PGresult *next_result(struct kf__store_db *db)
{
	PGresult *res = kf__pq_result(db->conn, db->deadline_ns, &db->timed_out), *extra;

	if (!res || PQresultStatus(res) == PGRES_PIPELINE_SYNC)
		return res;
	while ((extra = kf__pq_result(db->conn, db->deadline_ns, &db->timed_out))) { /* normally none */
		if (PQresultStatus(extra) == PGRES_PIPELINE_SYNC) {
			PQclear(extra);   /* unexpected: the caller will miss it */
			break;
		}
		PQclear(extra);
	}
	return res;
}

enum kf_err kf__store_recv(struct kf__store_db *db, struct kf__store_req *r, int n)
{
	enum kf_err err = KF_OK;
	PGresult *res;
	int i;

	for (i = 0; i < n; i++) {
		res = next_result(db);
		if (err || !res || PQresultStatus(res) != stmts[r->st[i]].want) {
			if (!err && res && PQresultStatus(res) == PGRES_PIPELINE_ABORTED)
				err = KF_ECANCELED;   /* an earlier request broke the batch */
			else if (!err)
				err = kf__pq_error(db->conn, res, &r->msg);
			PQclear(res);
			if (!res)
				return err;
			continue;
		}
		r->pg[i] = res;
	}
	if (!err)
		err = ops[r->op].parse(r);
	if (!err && r->res.err && r->msg.len)
		r->res.message = r->msg.buf;
	return err;
}

void kf__store_req_reset(struct kf__store_req *r)
{
	PQclear(r->pg[0]);
	PQclear(r->pg[1]);
	r->pg[0] = r->pg[1] = NULL;
	free(r->array);
	r->array = NULL;
	kf__msg_clear(&r->msg);
	memset(&r->job, 0, sizeof(r->job));
	memset(&r->res, 0, sizeof(r->res));
	r->res.op = r->op;
}
