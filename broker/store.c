/*
 * store.c — the store's request queue, completion queue and database
 * thread: connection, reconnection with back-off, and group commit.
 *
 * Threads: any thread queues requests (lock, append, wake the db thread
 * through an eventfd when the queue was empty); the db thread runs batches;
 * the draining thread runs callbacks. The lock guards both queues and the
 * status; the db thread never holds it while talking to PostgreSQL.
 */
#include "broker/store.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "broker/migrate.h"
#include "broker/store_int.h"
#include "broker/store_pq.h"
#include "common/clock.h"
#include "common/thread.h"

/* A batch whose transaction hit a serialization failure or deadlock is
 * re-run request by request; each of those gets this many tries. */
#define SINGLE_TRIES 3

struct kf_store {
	struct kf_store_opts opts;
	char *conninfo;
	pthread_t thread;
	int wake_fd;                       /* eventfd: requests arrived, or stop */
	unsigned held;                     /* kf_store_hold depth */

	pthread_mutex_t lock;
	pthread_cond_t cond;               /* completions or status changed */
	struct kf__store_req *q_head, *q_tail;  /* requests */
	struct kf__store_req *c_head, *c_tail;  /* completions and status changes */
	size_t q_len;
	bool stopping;
	bool joined;
	struct kf_store_status st;
	atomic_bool up;

	struct kf__store_db db;            /* db thread only */
};

/* ---- names ------------------------------------------------------------------ */

static const char *const op_names[KF_STORE_OP_COUNT] = {
	[KF_STORE_SUBMIT] = "submit", [KF_STORE_CLAIM] = "claim",
	[KF_STORE_PROGRESS] = "progress", [KF_STORE_COMPLETE] = "complete",
	[KF_STORE_KILL] = "kill", [KF_STORE_RETRY] = "retry", [KF_STORE_GET] = "get",
	[KF_STORE_LIST] = "list", [KF_STORE_COUNTS] = "counts",
	[KF_STORE_REQUEUE_WORKER] = "requeue_worker", [KF_STORE_PROMOTE] = "promote",
	[KF_STORE_EXPIRE] = "expire", [KF_STORE_WORKER_UPSERT] = "worker_upsert",
	[KF_STORE_WORKERS_SEEN] = "workers_seen", [KF_STORE_ORPHANS] = "orphans",
	[KF_STORE_REQUEUE_OTHERS] = "requeue_others", [KF_STORE_RUNNING] = "running",
	[KF_STORE_JOB_LOST] = "job_lost",
};

static const char *const state_names[KF_JOB_STATE_COUNT] = {
	[KF_JOB_PENDING] = "pending", [KF_JOB_RUNNING] = "running",
	[KF_JOB_RETRYING] = "retrying", [KF_JOB_SUCCEEDED] = "succeeded",
	[KF_JOB_FAILED] = "failed", [KF_JOB_KILLED] = "killed",
};

const char *kf_store_op_name(enum kf_store_op op)
{
	return (unsigned)op < KF_STORE_OP_COUNT ? op_names[op] : "?";
}

const char *kf_store_conn_name(enum kf_store_conn c)
{
	static const char *const names[] = { "connecting", "up", "down", "stopped" };

	return (unsigned)c < sizeof(names) / sizeof(names[0]) ? names[c] : "?";
}

const char *kf_store_state_name(enum kf_job_state s)
{
	return (unsigned)s < KF_JOB_STATE_COUNT ? state_names[s] : NULL;
}

enum kf_err kf_store_state_parse(const char *name, enum kf_job_state *out)
{
	int s;

	for (s = 0; name && s < KF_JOB_STATE_COUNT; s++) {
		if (strcmp(name, state_names[s]) == 0) {
			*out = (enum kf_job_state)s;
			return KF_OK;
		}
	}
	return KF_EINVAL;
}

/* ---- requests ----------------------------------------------------------------- */

static void req_free(struct kf__store_req *r)
{
	int i;

	if (!r)
		return;
	kf__store_req_reset(r);
	kf_strbuf_release(&r->msg);
	for (i = 0; i < KF__STORE_MAX_STR; i++)
		free(r->own[i]);
	free((char *)r->status.message);
	free(r);
}

static struct kf__store_req *req_new(enum kf_store_op op, kf_store_cb *cb, void *arg)
{
	struct kf__store_req *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->op = op;
	r->cb = cb;
	r->arg = arg;
	r->res.op = op;
	kf_strbuf_init(&r->msg, 0);
	return r;
}

/* Copies s into r->own[slot] and stores the copy in *field. false: ENOMEM. */
static bool req_str(struct kf__store_req *r, int slot, const char *s, const char **field)
{
	*field = NULL;
	if (!s)
		return true;
	if (!(r->own[slot] = strdup(s)))
		return false;
	*field = r->own[slot];
	return true;
}

static void wake(struct kf_store *s)
{
	uint64_t one = 1;

	/* The counter only needs to become non-zero; EAGAIN means it is. */
	if (write(s->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		perror("keyforge store: eventfd write");
}

static void unwake(struct kf_store *s)
{
	uint64_t n;

	if (read(s->wake_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		perror("keyforge store: eventfd read");
}

/* Takes ownership of r in every case. */
static enum kf_err enqueue(struct kf_store *s, struct kf__store_req *r)
{
	bool wake_db;

	r->queued_ns = kf_clock_mono_ns();
	pthread_mutex_lock(&s->lock);
	if (s->stopping) {
		pthread_mutex_unlock(&s->lock);
		req_free(r);
		return KF_ECANCELED;
	}
	wake_db = !s->q_head && !s->held;
	if (s->q_tail)
		s->q_tail->next = r;
	else
		s->q_head = r;
	s->q_tail = r;
	s->q_len++;
	pthread_mutex_unlock(&s->lock);
	if (wake_db)
		wake(s);
	return KF_OK;
}

void kf_store_hold(struct kf_store *s)
{
	pthread_mutex_lock(&s->lock);
	s->held++;
	pthread_mutex_unlock(&s->lock);
}

void kf_store_release(struct kf_store *s)
{
	bool wake_db;

	pthread_mutex_lock(&s->lock);
	wake_db = s->held && --s->held == 0 && s->q_head;
	pthread_mutex_unlock(&s->lock);
	if (wake_db)
		wake(s);
}

/* ---- completion side ---------------------------------------------------------- */

static size_t list_len(const struct kf__store_req *r)
{
	size_t n = 0;

	for (; r; r = r->next)
		n++;
	return n;
}

static struct kf__store_req *list_tail(struct kf__store_req *r)
{
	while (r && r->next)
		r = r->next;
	return r;
}

/* Appends a list of finished requests (or status items) to the completion
 * queue; under s->lock. */
static void append_completions_locked(struct kf_store *s, struct kf__store_req *list)
{
	struct kf__store_req *r;

	for (r = list; r; r = r->next) {
		if (r->is_status)
			continue;
		s->st.requests++;
		if (r->res.err == KF_EUNAVAIL)
			s->st.unavailable++;
	}
	if (s->c_tail)
		s->c_tail->next = list;
	else
		s->c_head = list;
	s->c_tail = list_tail(list);
	pthread_cond_broadcast(&s->cond);
}

/* Queues finished requests for the drainer, then wakes it. */
static void push_completions(struct kf_store *s, struct kf__store_req *list)
{
	if (!list)
		return;
	pthread_mutex_lock(&s->lock);
	append_completions_locked(s, list);
	pthread_mutex_unlock(&s->lock);
	if (s->opts.notify)
		s->opts.notify(s->opts.notify_arg);
}

/* Completes every request of `list` with err and message. */
static void fail_list(struct kf_store *s, struct kf__store_req *list, enum kf_err err,
		      const char *message)
{
	struct kf__store_req *r;

	for (r = list; r; r = r->next) {
		kf__store_req_reset(r);
		r->res.err = err;
		kf_strbuf_addstr(&r->msg, message);
		r->res.message = r->msg.buf;
	}
	push_completions(s, list);
}

/* Up to max queued requests, or NULL; NULL too while the queue is held,
 * unless `all` (failing the queue ignores holds). */
static struct kf__store_req *take(struct kf_store *s, size_t max, bool all)
{
	struct kf__store_req *head, *last;
	size_t n = 1;

	pthread_mutex_lock(&s->lock);
	head = last = s->held && !all ? NULL : s->q_head;
	if (head) {
		while (n < max && last->next) {
			last = last->next;
			n++;
		}
		s->q_head = last->next;
		if (!s->q_head)
			s->q_tail = NULL;
		last->next = NULL;
		s->q_len -= n;
	}
	pthread_mutex_unlock(&s->lock);
	return head;
}

static struct kf__store_req *take_queue(struct kf_store *s, size_t max)
{
	return take(s, max, false);
}

static void fail_queue(struct kf_store *s, enum kf_err err, const char *message)
{
	fail_list(s, take(s, SIZE_MAX, true), err, message);
}

/* libpq's messages span lines ("...: No such file or directory\n\tIs the
 * server running...?\n"): one line is what a log event and a reply want.
 * Runs of blanks become one space, and a line that ends without
 * punctuation is ended with "; " so that the next does not run on. */
static void one_line(char *dst, size_t size, const char *src)
{
	bool line_ended = false;
	size_t i, n = 0;

	for (i = 0; src && src[i] && n + 1 < size; i++) {
		char c = src[i];

		if (c == '\n') {
			line_ended = n > 0;
			continue;
		}
		if (c == '\t')
			c = ' ';
		if (c == ' ' && (!n || dst[n - 1] == ' '))
			continue;
		if (line_ended && c != ' ') {
			while (n && dst[n - 1] == ' ')
				n--;
			if (!strchr(".:;,!?", dst[n - 1]) && n + 1 < size)
				dst[n++] = ';';
			if (n + 1 < size)
				dst[n++] = ' ';
			line_ended = false;
			if (n + 1 >= size)
				break;
		}
		dst[n++] = c;
	}
	while (n && dst[n - 1] == ' ')
		n--;
	dst[n] = '\0';
}

/* Records a connection state; on a change of (conn, err) queues one status
 * item for the drainer, so the change is reported once, in order. The item
 * is queued under the same lock as the new state: whoever sees the state
 * (kf_store_wait_up, kf_store_status) and then drains gets the item too. */
static void set_conn(struct kf_store *s, enum kf_store_conn conn, enum kf_err err,
		     const char *message, int applied)
{
	struct kf__store_req *item = req_new(KF_STORE_OP_COUNT, NULL, NULL);
	char line[sizeof(s->st.message)];
	bool changed;

	one_line(line, sizeof(line), message);
	if (item) {
		item->is_status = true;
		item->status.conn = conn;
		item->status.err = err;
		item->status.message = strdup(line);
		item->status.schema_applied = applied;
	}
	pthread_mutex_lock(&s->lock);
	changed = s->st.conn != conn || s->st.err != err;
	s->st.conn = conn;
	s->st.err = err;
	memcpy(s->st.message, line, sizeof(line));
	if (conn == KF_STORE_UP) {
		s->st.schema_applied = applied;
		s->st.connects++;
	}
	atomic_store(&s->up, conn == KF_STORE_UP);
	if (changed && item)
		append_completions_locked(s, item);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (!changed || !item) {
		req_free(item);
		return;
	}
	if (s->opts.notify)
		s->opts.notify(s->opts.notify_arg);
}

/* ---- connection ---------------------------------------------------------------- */

static void quiet_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

static void disconnect(struct kf_store *s)
{
	PQfinish(s->db.conn);
	s->db.conn = NULL;
}

/* The database went away under a command: report it before failing work.
 * message may be PQerrorMessage(), which dies with the connection: use it
 * first. */
static void conn_lost(struct kf_store *s, const char *message)
{
	char timeout[128];

	if (s->db.timed_out) {
		snprintf(timeout, sizeof(timeout), "no answer from the database within %u ms; "
			 "connecting again", s->opts.answer_timeout_ms);
		message = timeout;
	}
	set_conn(s, KF_STORE_DOWN, KF_EUNAVAIL, message, -1);
	disconnect(s);
}

/* When the answer to what is sent now is due (0: never). */
static uint64_t answer_deadline(const struct kf_store *s)
{
	return s->opts.answer_timeout_ms ?
		kf_clock_mono_ns() + (uint64_t)s->opts.answer_timeout_ms * 1000000u : 0;
}

/* The next result on the connection, within the answer deadline. */
static PGresult *result(struct kf_store *s)
{
	return kf__pq_result(s->db.conn, s->db.deadline_ns, &s->db.timed_out);
}

/* Schema: migrate (broker) or require it current (anyone else). */
static enum kf_err check_schema(struct kf_store *s, int *applied, struct kf_strbuf *msg)
{
	enum kf_err err;

	if (s->opts.migrate)
		return kf_migrate_apply(s->db.conn, s->db.deadline_ns, applied, NULL, msg);
	if ((err = kf_migrate_applied(s->db.conn, s->db.deadline_ns, applied, msg)))
		return err;
	if (*applied != kf_migrate_newest()) {
		kf_strbuf_addf(msg, "the database schema is at version %d, this program needs "
			       "%d: start keyforge-broker, which applies the migrations",
			       *applied, kf_migrate_newest());
		return KF_EMIGRATION;
	}
	return KF_OK;
}

/* A backend we gave up on (the answer deadline shuts our socket) goes on
 * waiting for its lock or query; told to look for its client every second
 * (PostgreSQL 14+), it ends then, rather than piling up with every
 * reconnect until max_connections. Set here, not in the connection's
 * "options": the caller's conninfo may set those. An older server's
 * refusal is no reason not to serve. */
static enum kf_err watch_client(struct kf_store *s, struct kf_strbuf *msg)
{
	struct kf_strbuf ignored = KF_STRBUF_INIT;
	enum kf_err err = kf__pq_exec(s->db.conn, "SET client_connection_check_interval = 1000",
				      PGRES_COMMAND_OK, s->db.deadline_ns, &s->db.timed_out, &ignored);

	if (err == KF_EUNAVAIL)
		kf_strbuf_addstr(msg, ignored.buf);
	kf_strbuf_release(&ignored);
	return err == KF_EUNAVAIL ? err : KF_OK;
}

static enum kf_err connect_db(struct kf_store *s)
{
	static const char *const keys[] = {
		"connect_timeout", "fallback_application_name", "keepalives_idle",
		"keepalives_interval", "keepalives_count", "dbname", NULL,
	};
	const char *values[] = { "5", "keyforge-broker", "10", "5", "3", s->conninfo, NULL };
	struct kf_strbuf msg = KF_STRBUF_INIT;
	enum kf_err err = KF_OK;
	int applied = -1;

	/* keys[] before dbname are defaults: the caller's string overrides them. */
	s->db.conn = PQconnectdbParams(keys, values, 1);
	s->db.timed_out = false;
	if (PQstatus(s->db.conn) != CONNECTION_OK) {
		kf_strbuf_addf(&msg, "%s", PQerrorMessage(s->db.conn));
		while (msg.len && msg.buf[msg.len - 1] == '\n')
			msg.buf[--msg.len] = '\0';
		err = KF_EUNAVAIL;
	} else {
		PQsetNoticeProcessor(s->db.conn, quiet_notice, NULL);
		/* One deadline for the schema and the statements: PQexec()
		 * would wait for ever on a server that stopped after accepting
		 * us, or on a lock another session holds. */
		s->db.deadline_ns = answer_deadline(s);
		err = watch_client(s, &msg);
		if (!err)
			err = check_schema(s, &applied, &msg);
		if (!err)
			err = kf__store_prepare(&s->db, &msg);
		if (err == KF_EUNAVAIL && s->db.deadline_ns &&
		    kf_clock_mono_ns() >= s->db.deadline_ns) {
			kf_strbuf_reset(&msg);
			kf_strbuf_addf(&msg, "no answer from the database within %u ms while "
				       "checking the schema (--db-timeout); connecting again",
				       s->opts.answer_timeout_ms);
		}
	}
	if (err) {
		if (err != KF_EUNAVAIL && err != KF_EMIGRATION)
			err = KF_EDB;
		disconnect(s);
		set_conn(s, KF_STORE_DOWN, err, msg.buf, -1);
	} else {
		set_conn(s, KF_STORE_UP, KF_OK, "", applied);
	}
	kf_strbuf_release(&msg);
	return err;
}

static bool stop_requested(struct kf_store *s)
{
	bool stop;

	pthread_mutex_lock(&s->lock);
	stop = s->stopping;
	pthread_mutex_unlock(&s->lock);
	return stop;
}

/* While down: wait `ms`, failing whatever gets queued meanwhile. */
static void wait_down(struct kf_store *s, uint32_t ms)
{
	uint64_t deadline = kf_clock_mono_ns() + (uint64_t)ms * 1000000u;
	struct pollfd pfd = { .fd = s->wake_fd, .events = POLLIN };
	char message[300];
	uint64_t now;

	pthread_mutex_lock(&s->lock);
	snprintf(message, sizeof(message), "database unavailable: %s", s->st.message);
	pthread_mutex_unlock(&s->lock);
	fail_queue(s, KF_EUNAVAIL, message);
	while (!stop_requested(s) && (now = kf_clock_mono_ns()) < deadline) {
		if (poll(&pfd, 1, (int)((deadline - now) / 1000000u) + 1) > 0) {
			unwake(s);
			fail_queue(s, KF_EUNAVAIL, message);
		}
	}
}

/* Idle and up: wait for requests; notice a connection the server closed
 * (the socket becomes readable) at once, and ping every health_ms. */
static void wait_idle(struct kf_store *s)
{
	struct pollfd pfd[2] = {
		{ .fd = s->wake_fd, .events = POLLIN },
		{ .fd = PQsocket(s->db.conn), .events = POLLIN },
	};
	PGresult *res;
	int n = poll(pfd, 2, (int)s->opts.health_ms);
	bool ok;

	if (n > 0 && (pfd[0].revents & POLLIN))
		unwake(s);
	if (n > 0 && pfd[1].revents) {
		if (!PQconsumeInput(s->db.conn) || PQstatus(s->db.conn) != CONNECTION_OK)
			conn_lost(s, PQerrorMessage(s->db.conn));
		return;
	}
	if (n == 0) { /* the check: an empty query, answered in time */
		s->db.deadline_ns = answer_deadline(s);
		ok = PQsendQuery(s->db.conn, "");
		if (ok) {
			res = result(s);
			ok = PQresultStatus(res) == PGRES_EMPTY_QUERY;
			PQclear(res);
			while ((res = result(s)))
				PQclear(res);
		}
		if (!ok || PQstatus(s->db.conn) != CONNECTION_OK)
			conn_lost(s, PQerrorMessage(s->db.conn));
	}
}

/* ---- transactions -------------------------------------------------------- */

/*
 * A batch is sent as a pipeline (libpq's pipeline mode): BEGIN, the
 * statements of every request, COMMIT, without waiting for one answer before
 * sending the next, so a batch costs about one round trip per chunk instead
 * of one per statement. Chunks end with a Sync and are read back before the
 * next is sent, which keeps both directions of the socket from filling at
 * once (libpq blocks while sending; the server blocks while answering): a
 * chunk carries at most CHUNK_REQUESTS requests and about CHUNK_BYTES of
 * parameters, and ends after a read that may return many rows (list, get).
 * A Sync inside an explicit transaction does not commit.
 *
 * The COMMIT travels in the last chunk, so that a batch of one chunk — the
 * usual case — is a single round trip. If a statement fails, the server
 * skips everything up to the Sync, the COMMIT included, and the batch is
 * rolled back and run again request by request (run_batch). Only an answer
 * this side cannot read (a parse error: a bug, not a database condition)
 * can meet a COMMIT that went through; that request alone fails, and the
 * others keep their committed results (*committed tells run_batch).
 */
#define CHUNK_REQUESTS 64
#define CHUNK_BYTES 65536

/* One command's result and the NULL after it. */
static enum kf_err recv_command(struct kf_store *s, struct kf_strbuf *msg)
{
	PGconn *conn = s->db.conn;
	PGresult *res = result(s);
	enum kf_err err = KF_OK;

	if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
		err = kf__pq_error(conn, res, msg);
	if (res) {
		PQclear(res);
		while ((res = result(s)))
			PQclear(res);
	}
	return err;
}

/* The PGRES_PIPELINE_SYNC that ends a chunk. */
static enum kf_err recv_sync(struct kf_store *s, struct kf_strbuf *msg)
{
	PGconn *conn = s->db.conn;
	PGresult *res;
	int nulls = 0;

	while (nulls < 2) {
		if (!(res = result(s))) {
			if (PQstatus(conn) != CONNECTION_OK)
				break;
			nulls++;
			continue;
		}
		nulls = 0;
		if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
			PQclear(res);
			return KF_OK;
		}
		PQclear(res);
	}
	return kf__pq_error(conn, NULL, msg) == KF_EUNAVAIL ? KF_EUNAVAIL : KF_EINTERNAL;
}

static bool ends_chunk(const struct kf__store_req *r, size_t n, size_t bytes)
{
	return n >= CHUNK_REQUESTS || bytes >= CHUNK_BYTES || r->op == KF_STORE_LIST ||
	       r->op == KF_STORE_GET;
}

/* Sends the chunk starting at r, then COMMIT if it is the last one, then
 * its Sync; returns the request after the chunk (NULL at the end of the
 * list) and sets *commit when the COMMIT went with it. */
static struct kf__store_req *send_chunk(struct kf_store *s, struct kf__store_req *r,
					bool *commit, enum kf_err *err, struct kf_strbuf *msg)
{
	size_t n = 0, bytes = 0;
	bool end = false;

	while (r && !end) {
		if ((r->n_sent = kf__store_send(&s->db, r, &bytes)) < 0) {
			kf_strbuf_addstr(msg, r->msg.buf);
			*err = KF_EUNAVAIL;
			return NULL;
		}
		end = ends_chunk(r, ++n, bytes);
		r = r->next;
	}
	*commit = r == NULL;
	if ((*commit && !PQsendQueryParams(s->db.conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0)) ||
	    !PQpipelineSync(s->db.conn))
		*err = kf__pq_error(s->db.conn, NULL, msg);
	return r;
}

/* Reads the answers to a chunk [r, end), then the COMMIT's when `commit`;
 * the first failure wins. A request whose answer failed keeps its error in
 * its result, for the case where the COMMIT went through regardless. */
static void recv_chunk(struct kf_store *s, struct kf__store_req *r, struct kf__store_req *end,
		       bool begin, bool commit, bool *committed, enum kf_err *err,
		       struct kf_strbuf *msg)
{
	enum kf_err e;

	if (begin && (e = recv_command(s, msg)) && !*err)
		*err = e;
	for (; r != end && *err != KF_EUNAVAIL; r = r->next) {
		e = kf__store_recv(&s->db, r, r->n_sent);
		if (e) {
			r->res.err = e;
			r->res.message = r->msg.buf;
		}
		if (e && (!*err || e == KF_EUNAVAIL)) {
			if (!*err)
				kf_strbuf_addstr(msg, r->msg.buf);
			*err = e;
		}
	}
	if (commit && *err != KF_EUNAVAIL) {
		e = recv_command(s, msg);
		*committed = !e;
		if (e && (!*err || e == KF_EUNAVAIL))
			*err = e;
	}
	if (*err != KF_EUNAVAIL && (e = recv_sync(s, msg)) && (!*err || e == KF_EUNAVAIL))
		*err = e;
}

/* BEGIN, every request of the list, COMMIT, as one pipeline. On failure
 * the transaction is rolled back (when the connection still works) and
 * the first error returned, with its cause in *msg; *committed says
 * whether the COMMIT went through all the same (see above). */
static enum kf_err run_txn(struct kf_store *s, struct kf__store_req *list, struct kf_strbuf *msg,
			   bool *committed)
{
	PGconn *conn = s->db.conn;
	struct kf__store_req *r = list, *next;
	enum kf_err err = KF_OK;
	bool begin = true, commit = false;

	*committed = false;
	s->db.deadline_ns = answer_deadline(s); /* the whole transaction's */
	if (!PQenterPipelineMode(conn))
		return kf__pq_error(conn, NULL, msg);
	if (!PQsendQueryParams(conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0))
		err = kf__pq_error(conn, NULL, msg);
	while (!err && r) {
		next = send_chunk(s, r, &commit, &err, msg);
		if (err == KF_EUNAVAIL)
			break;
		recv_chunk(s, r, next, begin, commit, committed, &err, msg);
		begin = false;
		r = next;
	}
	if (err == KF_EUNAVAIL)
		return err;
	if (!PQexitPipelineMode(conn))
		return kf__pq_error(conn, NULL, msg), KF_EUNAVAIL;  /* unread results: start over */
	if (err && PQtransactionStatus(conn) != PQTRANS_IDLE &&
	    kf__pq_exec(conn, "ROLLBACK", PGRES_COMMAND_OK, s->db.deadline_ns, &s->db.timed_out,
			NULL))
		err = KF_EUNAVAIL;
	return err;
}

/* One request in its own transaction (isolating a request that failed a
 * batch). Returns false when the connection was lost. */
static bool run_single(struct kf_store *s, struct kf__store_req *r)
{
	struct kf__store_req *next = r->next;
	struct kf_strbuf msg = KF_STRBUF_INIT;
	enum kf_err err = KF_EBUSY;
	bool committed = false;
	int tries;

	r->next = NULL;
	/* KF_EBUSY (a submit whose key a newer transaction took) changed
	 * nothing, so its transaction may have committed: run it again all
	 * the same, in a transaction whose snapshot sees that key. */
	for (tries = 0; tries < SINGLE_TRIES && err == KF_EBUSY; tries++) {
		kf__msg_clear(&msg);
		err = run_txn(s, r, &msg, &committed);
	}
	r->next = next;
	if (err && err != KF_EUNAVAIL && !committed) {
		kf__store_req_reset(r);
		r->res.err = err;
		kf_strbuf_addstr(&r->msg, msg.buf);
		r->res.message = r->msg.buf;
	}
	if (err == KF_EUNAVAIL)
		conn_lost(s, msg.buf);
	kf_strbuf_release(&msg);
	return err != KF_EUNAVAIL;
}

/* What on_txn will be told about a batch, noted before it runs (the batch
 * belongs to the drainer once its requests are pushed); returns the start. */
static uint64_t txn_begin(const struct kf__store_req *batch, size_t n, struct kf_store_txn *t)
{
	uint64_t now = kf_clock_mono_ns();

	memset(t, 0, sizeof(*t));
	t->requests = (uint32_t)n;
	/* The queue is first in, first out: the head waited longest. */
	t->wait_ns = now > batch->queued_ns ? now - batch->queued_ns : 0;
	for (const struct kf__store_req *r = batch; r; r = r->next)
		t->ops[r->op]++;
	return now;
}

static void txn_end(struct kf_store *s, struct kf_store_txn *t, uint64_t start, bool committed)
{
	t->ns = kf_clock_mono_ns() - start;
	t->committed = committed;
	if (s->opts.on_txn)
		s->opts.on_txn(s->opts.txn_arg, t);
}

/* Group commit: the whole list in one transaction; if a request breaks it,
 * every request is run again alone so that only the culprit fails. */
/* A submit that found its key taken by a transaction newer than its
 * statement's snapshot (another broker's) got no row and changed nothing
 * (store_ops.c, parse_submit: KF_EBUSY); the rest of its batch committed
 * without it. It runs again alone, in a transaction that sees the key, and
 * is answered with the job already there. */
static void rerun_busy(struct kf_store *s, struct kf__store_req *batch)
{
	for (struct kf__store_req *r = batch; r; r = r->next) {
		if (r->res.err != KF_EBUSY)
			continue;
		if (!run_single(s, r)) {
			kf__store_req_reset(r);
			r->res.err = KF_EUNAVAIL;
			kf_strbuf_addstr(&r->msg, "database connection lost");
			r->res.message = r->msg.buf;
			return; /* the others keep what their batch gave them */
		}
	}
}

static void run_batch(struct kf_store *s, struct kf__store_req *batch)
{
	struct kf_strbuf msg = KF_STRBUF_INIT;
	struct kf__store_req *r, *prev = NULL;
	size_t n = list_len(batch);
	struct kf_store_txn txn;
	uint64_t start;
	bool committed;
	enum kf_err err;

	pthread_mutex_lock(&s->lock);
	s->st.batches++;
	s->st.last_batch = (uint32_t)n;
	if (n > s->st.largest_batch)
		s->st.largest_batch = (uint32_t)n;
	pthread_mutex_unlock(&s->lock);

	start = txn_begin(batch, n, &txn);
	err = run_txn(s, batch, &msg, &committed);
	if (err == KF_EUNAVAIL) {
		conn_lost(s, msg.buf);
		fail_list(s, batch, KF_EUNAVAIL, msg.buf);
		committed = false;
	} else if (err && !committed) {
		for (r = batch; r && run_single(s, r); r = r->next)
			prev = r;
		if (r && prev) {
			/* What ran before the connection was lost stays done. */
			prev->next = NULL;
			push_completions(s, batch);
		}
		if (r)
			fail_list(s, r, KF_EUNAVAIL, "database connection lost");
		else
			push_completions(s, batch);
	} else {
		rerun_busy(s, batch);
		push_completions(s, batch);
	}
	txn_end(s, &txn, start, committed);
	kf_strbuf_release(&msg);
}

/* ---- the database thread ---------------------------------------------------- */

static uint32_t jittered(struct kf_store *s, uint32_t ms)
{
	return ms / 2 + (uint32_t)(kf__store_rand(&s->db) % (ms / 2 + 1));
}

static void *db_main(void *arg)
{
	struct kf_store *s = arg;
	uint32_t delay = s->opts.reconnect_min_ms;
	struct kf__store_req *batch;

	pthread_setname_np(pthread_self(), "kf:store");  /* top -H, perf */
	if (s->opts.thread_nice)
		kf_thread_set_nice(s->opts.thread_nice); /* refused: the broker says so */
	while (!stop_requested(s)) {
		if (!s->db.conn) {
			if (connect_db(s) != KF_OK) {
				wait_down(s, jittered(s, delay));
				delay = delay * 2 < s->opts.reconnect_max_ms ? delay * 2
									   : s->opts.reconnect_max_ms;
				continue;
			}
			delay = s->opts.reconnect_min_ms;
		}
		batch = take_queue(s, s->opts.max_batch);
		if (batch)
			run_batch(s, batch);
		else
			wait_idle(s);
	}
	fail_queue(s, KF_ECANCELED, "the store is stopping");
	disconnect(s);
	set_conn(s, KF_STORE_STOPPED, KF_ECANCELED, "stopped", -1);
	return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------ */

static uint64_t seed_from(uint64_t seed)
{
	uint64_t x = 0;

	if (seed)
		return seed;
	if (getrandom(&x, sizeof(x), 0) != (ssize_t)sizeof(x))
		x = kf_clock_wall_ns() ^ ((uint64_t)getpid() << 32);
	return x;
}

enum kf_err kf_store_new(const struct kf_store_opts *opts, struct kf_store **out)
{
	struct kf_store *s;

	*out = NULL;
	if (!opts || !opts->conninfo || !opts->max_batch || !opts->reconnect_min_ms ||
	    opts->reconnect_max_ms < opts->reconnect_min_ms || !opts->health_ms)
		return KF_EINVAL;
	if (!(s = calloc(1, sizeof(*s))))
		return KF_ENOMEM;
	s->opts = *opts;
	s->wake_fd = -1;
	if (!(s->conninfo = strdup(opts->conninfo))) {
		free(s);
		return KF_ENOMEM;
	}
	s->opts.conninfo = s->conninfo;
	s->db.rng = seed_from(opts->seed);
	s->db.backoff_base_ms = opts->backoff_base_ms;
	s->db.backoff_max_ms = opts->backoff_max_ms;
	s->st.schema_newest = kf_migrate_newest();
	s->st.schema_applied = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->wake_fd < 0 || pthread_create(&s->thread, NULL, db_main, s) != 0) {
		s->joined = true;   /* no thread to join */
		kf_store_free(s);
		return KF_EIO;
	}
	*out = s;
	return KF_OK;
}

void kf_store_stop(struct kf_store *s)
{
	bool join;

	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	join = !s->joined;
	s->joined = true;
	pthread_mutex_unlock(&s->lock);
	if (!join)
		return;
	wake(s);
	pthread_join(s->thread, NULL);
}

void kf_store_free(struct kf_store *s)
{
	if (!s)
		return;
	kf_store_stop(s);
	while (kf_store_drain(s, 0))
		;
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s->conninfo);
	free(s);
}

size_t kf_store_drain(struct kf_store *s, size_t max)
{
	struct kf__store_req *list, *r;
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	list = s->c_head;
	for (r = list; r && (max == 0 || n < max); r = r->next)
		n++;
	if (max && r) {   /* leave the rest queued */
		struct kf__store_req *last = list;

		while (last->next != r)
			last = last->next;
		last->next = NULL;
		s->c_head = r;
	} else {
		s->c_head = s->c_tail = NULL;
	}
	pthread_mutex_unlock(&s->lock);

	while ((r = list)) {
		list = r->next;
		if (r->is_status) {
			struct kf_store_status_change change = r->status;

			if (!change.message)   /* strdup failed: the change still counts */
				change.message = "";
			if (s->opts.on_status)
				s->opts.on_status(s->opts.status_arg, &change);
		} else if (r->cb) {
			r->cb(r->arg, &r->res);
		}
		req_free(r);
	}
	return n;
}

/* Absolute CLOCK_REALTIME deadline for pthread_cond_timedwait. */
static struct timespec deadline_in(int timeout_ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

bool kf_store_wait_completions(struct kf_store *s, int timeout_ms)
{
	struct timespec ts = deadline_in(timeout_ms < 0 ? 0 : timeout_ms);
	bool ready;

	pthread_mutex_lock(&s->lock);
	while (!s->c_head) {
		if (timeout_ms < 0)
			pthread_cond_wait(&s->cond, &s->lock);
		else if (pthread_cond_timedwait(&s->cond, &s->lock, &ts) != 0)
			break;
	}
	ready = s->c_head != NULL;
	pthread_mutex_unlock(&s->lock);
	return ready;
}

enum kf_err kf_store_wait_up(struct kf_store *s, int timeout_ms)
{
	struct timespec ts = deadline_in(timeout_ms < 0 ? 0 : timeout_ms);
	enum kf_err err;

	pthread_mutex_lock(&s->lock);
	while (s->st.conn != KF_STORE_UP && s->st.conn != KF_STORE_STOPPED) {
		if (timeout_ms < 0)
			pthread_cond_wait(&s->cond, &s->lock);
		else if (pthread_cond_timedwait(&s->cond, &s->lock, &ts) != 0)
			break;
	}
	if (s->st.conn == KF_STORE_UP)
		err = KF_OK;
	else if (s->st.conn == KF_STORE_STOPPED)
		err = KF_ECANCELED;
	else if (s->st.conn == KF_STORE_CONNECTING)
		err = KF_ETIMEDOUT;
	else
		err = s->st.err;
	pthread_mutex_unlock(&s->lock);
	return err;
}

void kf_store_status(struct kf_store *s, struct kf_store_status *out)
{
	pthread_mutex_lock(&s->lock);
	*out = s->st;
	out->queued = s->q_len;
	pthread_mutex_unlock(&s->lock);
}

bool kf_store_is_up(struct kf_store *s)
{
	return atomic_load(&s->up);
}

/* ---- request constructors ---------------------------------------------------- */

enum kf_err kf_store_submit(struct kf_store *s, const struct kf_store_submit_args *args,
			    kf_store_cb *cb, void *arg)
{
	struct kf__store_req *r;

	if (!args || !args->params || args->max_attempts < 1 || args->deadline_ms < 0)
		return KF_EINVAL;
	if (!(r = req_new(KF_STORE_SUBMIT, cb, arg)))
		return KF_ENOMEM;
	r->a.submit = *args;
	if (!req_str(r, 0, args->params, &r->a.submit.params) ||
	    !req_str(r, 1, args->submit_key, &r->a.submit.submit_key)) {
		req_free(r);
		return KF_ENOMEM;
	}
	return enqueue(s, r);
}

/* Requests about one worker: its id, an optional reason and incarnation. */
static enum kf_err worker_req(struct kf_store *s, enum kf_store_op op, const char *worker_id,
			      uint64_t incarnation, const char *reason, kf_store_cb *cb, void *arg)
{
	struct kf__store_req *r;

	if (!worker_id || !*worker_id)
		return KF_EINVAL;
	if (!(r = req_new(op, cb, arg)))
		return KF_ENOMEM;
	r->a.worker_ref.incarnation = incarnation;
	if (!req_str(r, 0, worker_id, &r->a.worker_ref.worker_id) ||
	    !req_str(r, 1, reason, &r->a.worker_ref.reason)) {
		req_free(r);
		return KF_ENOMEM;
	}
	return enqueue(s, r);
}

enum kf_err kf_store_claim(struct kf_store *s, const char *worker_id, uint64_t incarnation,
			   kf_store_cb *cb, void *arg)
{
	return worker_req(s, KF_STORE_CLAIM, worker_id, incarnation, NULL, cb, arg);
}

enum kf_err kf_store_requeue_worker(struct kf_store *s, const char *worker_id,
				    const char *reason, kf_store_cb *cb, void *arg)
{
	return worker_req(s, KF_STORE_REQUEUE_WORKER, worker_id, 0,
			  reason ? reason : "worker lost", cb, arg);
}

enum kf_err kf_store_requeue_others(struct kf_store *s, const char *worker_id,
				    uint64_t incarnation, const char *reason,
				    kf_store_cb *cb, void *arg)
{
	if (!incarnation)
		return KF_EINVAL;
	return worker_req(s, KF_STORE_REQUEUE_OTHERS, worker_id, incarnation,
			  reason ? reason : "worker restarted", cb, arg);
}

enum kf_err kf_store_progress(struct kf_store *s, int64_t job_id, uint64_t lease_token,
			      double progress, double best_cost, kf_store_cb *cb, void *arg)
{
	struct kf__store_req *r;

	if (job_id <= 0)
		return KF_EINVAL;
	if (!(r = req_new(KF_STORE_PROGRESS, cb, arg)))
		return KF_ENOMEM;
	r->a.progress.job_id = job_id;
	r->a.progress.lease_token = lease_token;
	r->a.progress.progress = progress;
	r->a.progress.best_cost = best_cost;
	return enqueue(s, r);
}

enum kf_err kf_store_complete(struct kf_store *s, const struct kf_store_complete_args *args,
			      kf_store_cb *cb, void *arg)
{
	struct kf__store_req *r;

	if (!args || args->job_id <= 0 || (unsigned)args->outcome >= KF_STORE_OUTCOME_COUNT)
		return KF_EINVAL;
	if (!(r = req_new(KF_STORE_COMPLETE, cb, arg)))
		return KF_ENOMEM;
	r->a.complete = *args;
	if (!req_str(r, 0, args->result, &r->a.complete.result) ||
	    !req_str(r, 1, args->error, &r->a.complete.error)) {
		req_free(r);
		return KF_ENOMEM;
	}
	return enqueue(s, r);
}

/* Requests about one job: kill (with a reason), retry, get. */
static enum kf_err job_req(struct kf_store *s, enum kf_store_op op, int64_t job_id,
			   const char *text, kf_store_cb *cb, void *arg)
{
	struct kf__store_req *r;

	if (job_id <= 0)
		return KF_EINVAL;
	if (!(r = req_new(op, cb, arg)))
		return KF_ENOMEM;
	r->a.job.job_id = job_id;
	if (!req_str(r, 0, text, &r->a.job.text)) {
		req_free(r);
		return KF_ENOMEM;
	}
	return enqueue(s, r);
}

enum kf_err kf_store_kill(struct kf_store *s, int64_t job_id, const char *reason,
			  kf_store_cb *cb, void *arg)
{
	return job_req(s, KF_STORE_KILL, job_id, reason, cb, arg);
}

enum kf_err kf_store_job_lost(struct kf_store *s, int64_t job_id, uint64_t lease_token,
			      const char *reason, kf_store_cb *cb, void *arg)
{
	struct kf__store_req *r;

	if (job_id <= 0 || !lease_token)
		return KF_EINVAL;
	if (!(r = req_new(KF_STORE_JOB_LOST, cb, arg)))
		return KF_ENOMEM;
	r->a.job.job_id = job_id;
	r->a.job.lease_token = lease_token;
	if (!req_str(r, 0, reason ? reason : "lease lost", &r->a.job.text)) {
		req_free(r);
		return KF_ENOMEM;
	}
	return enqueue(s, r);
}

enum kf_err kf_store_retry(struct kf_store *s, int64_t job_id, kf_store_cb *cb, void *arg)
{
	return job_req(s, KF_STORE_RETRY, job_id, NULL, cb, arg);
}

enum kf_err kf_store_get(struct kf_store *s, int64_t job_id, kf_store_cb *cb, void *arg)
{
	return job_req(s, KF_STORE_GET, job_id, NULL, cb, arg);
}

enum kf_err kf_store_list(struct kf_store *s, const struct kf_store_list_args *args,
			  kf_store_cb *cb, void *arg)
{
	struct kf__store_req *r;

	if (!args || args->limit < 1 || args->limit > 10000 || args->cursor < 0 ||
	    (args->states >> KF_JOB_STATE_COUNT))
		return KF_EINVAL;
	if (!(r = req_new(KF_STORE_LIST, cb, arg)))
		return KF_ENOMEM;
	r->a.list = *args;
	return enqueue(s, r);
}

static enum kf_err plain_req(struct kf_store *s, enum kf_store_op op, int64_t ms,
			     kf_store_cb *cb, void *arg)
{
	struct kf__store_req *r = req_new(op, cb, arg);

	if (!r)
		return KF_ENOMEM;
	r->a.ms = ms;
	return enqueue(s, r);
}

enum kf_err kf_store_counts(struct kf_store *s, kf_store_cb *cb, void *arg)
{
	return plain_req(s, KF_STORE_COUNTS, 0, cb, arg);
}

enum kf_err kf_store_promote(struct kf_store *s, kf_store_cb *cb, void *arg)
{
	return plain_req(s, KF_STORE_PROMOTE, 0, cb, arg);
}

enum kf_err kf_store_expire(struct kf_store *s, int64_t grace_ms, kf_store_cb *cb, void *arg)
{
	if (grace_ms < 0)
		return KF_EINVAL;
	return plain_req(s, KF_STORE_EXPIRE, grace_ms, cb, arg);
}

enum kf_err kf_store_worker_upsert(struct kf_store *s, const struct kf_store_worker_args *args,
				   kf_store_cb *cb, void *arg)
{
	struct kf__store_req *r;

	if (!args || !args->id || !*args->id ||
	    (unsigned)args->liveness >= KF_WORKER_LIVENESS_COUNT)
		return KF_EINVAL;
	if (!(r = req_new(KF_STORE_WORKER_UPSERT, cb, arg)))
		return KF_ENOMEM;
	r->a.worker = *args;
	if (!req_str(r, 0, args->id, &r->a.worker.id) ||
	    !req_str(r, 1, args->host, &r->a.worker.host)) {
		req_free(r);
		return KF_ENOMEM;
	}
	return enqueue(s, r);
}

/* ids as a PostgreSQL text[] literal: every element double-quoted, with
 * '\\' and '"' escaped, so that any bytes a worker chose for its id stay
 * one element. */
static void text_array(struct kf_strbuf *sb, const char *const *ids, size_t n)
{
	kf_strbuf_addch(sb, '{');
	for (size_t i = 0; i < n; i++) {
		if (i)
			kf_strbuf_addch(sb, ',');
		kf_strbuf_addch(sb, '"');
		for (const char *c = ids[i]; *c; c++) {
			if (*c == '\\' || *c == '"')
				kf_strbuf_addch(sb, '\\');
			kf_strbuf_addch(sb, *c);
		}
		kf_strbuf_addch(sb, '"');
	}
	kf_strbuf_addch(sb, '}');
}

enum kf_err kf_store_workers_seen(struct kf_store *s, const char *const *ids, size_t n,
				  kf_store_cb *cb, void *arg)
{
	struct kf_strbuf lit = KF_STRBUF_INIT;
	struct kf__store_req *r;
	bool ok;

	if (!ids || n == 0)
		return KF_EINVAL;
	if (!(r = req_new(KF_STORE_WORKERS_SEEN, cb, arg)))
		return KF_ENOMEM;
	text_array(&lit, ids, n);
	ok = req_str(r, 0, lit.buf, &r->a.worker_ids);
	kf_strbuf_release(&lit);
	if (!ok) {
		req_free(r);
		return KF_ENOMEM;
	}
	return enqueue(s, r);
}

enum kf_err kf_store_orphans(struct kf_store *s, int64_t stale_ms, kf_store_cb *cb, void *arg)
{
	if (stale_ms < 0)
		return KF_EINVAL;
	return plain_req(s, KF_STORE_ORPHANS, stale_ms, cb, arg);
}

enum kf_err kf_store_running(struct kf_store *s, int64_t min_age_ms, kf_store_cb *cb, void *arg)
{
	if (min_age_ms < 0)
		return KF_EINVAL;
	return plain_req(s, KF_STORE_RUNNING, min_age_ms, cb, arg);
}

/* ---- job copies ------------------------------------------------------------- */

static size_t str_size(const char *s)
{
	return s ? strlen(s) + 1 : 0;
}

static const char *str_put(char **dst, const char *s)
{
	size_t n = str_size(s);
	char *at = *dst;

	if (!s)
		return NULL;
	memcpy(at, s, n);
	*dst += n;
	return at;
}

struct kf_store_job *kf_store_job_dup(const struct kf_store_job *job)
{
	const char *const *src[] = {
		&job->worker_id, &job->submit_key, &job->params, &job->result,
		&job->error, &job->corpus, &job->layout,
	};
	size_t i, size = sizeof(*job);
	struct kf_store_job *copy;
	char *tail;

	for (i = 0; i < sizeof(src) / sizeof(src[0]); i++)
		size += str_size(*src[i]);
	if (!(copy = malloc(size)))
		return NULL;
	*copy = *job;
	tail = (char *)(copy + 1);
	copy->worker_id = str_put(&tail, job->worker_id);
	copy->submit_key = str_put(&tail, job->submit_key);
	copy->params = str_put(&tail, job->params);
	copy->result = str_put(&tail, job->result);
	copy->error = str_put(&tail, job->error);
	copy->corpus = str_put(&tail, job->corpus);
	copy->layout = str_put(&tail, job->layout);
	return copy;
}

void kf_store_job_free(struct kf_store_job *job)
{
	free(job);
}
