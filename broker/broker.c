/* broker.c — lifecycle, the owner loop, dispatch and replies. */
#include "broker/broker_int.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "common/daemon.h"
#include "common/clock.h"
#include "common/thread.h"
#include "kf_config.h"
#include "proto/topic.h"

#define RPC_RECV_GRACE ((size_t)64 << 10)
#define DISPATCH_BATCH 1024
#define HB_BATCH 256
#define MALFORMED_WARN_MS 10000

/* ---- small helpers ------------------------------------------------------------ */

static void efd_signal(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) < 0)
		return; /* saturated counter: already readable */
}

static void efd_reset(int fd)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0)
		return; /* EAGAIN: nothing pending */
}

/* ---- publishing ------------------------------------------------------------------ */

/* sb: an encoded publication, which starts with its topic and a NUL.
 * Metric updates and the cluster status go on monitor too, one message
 * each: they are few, and the gateway reads nothing else. */
static void send_monitor_copy(struct kf_broker *b, const struct kf_strbuf *sb)
{
	if (kf_topic_monitored(sb->buf, strlen(sb->buf)) &&
	    kf_bus_pub_send(b->monitor, NULL, 0, sb->buf, sb->len) == KF_OK)
		kf_counter_inc(b->m.tx_monitor);
}

static void send_event(struct kf_broker *b, const struct kf_strbuf *sb)
{
	enum kf_err err = kf_bus_pub_send(b->events, NULL, 0, sb->buf, sb->len);

	if (err)
		KF_DEBUG(KF__TARGET, "event not published", KF_STR("topic", sb->buf), KF_ERR(err));
	else
		kf_counter_inc(b->m.tx_events);
	send_monitor_copy(b, sb);
}

/*
 * Events wait for the end of the loop's turn. A report's answer is what
 * its worker waits for before it runs the next job; the two or three job
 * events the same callbacks publish are for observers. Sending those first
 * put nng's send path, and the wake-up of one of its threads, between the
 * commit and the answer. They keep their order among themselves.
 *
 * The turn's events leave in bundles (bus/bundle.h) of up to
 * --event-bundle: a turn that answered a transaction of ten reports holds
 * twenty-odd events, and each message costs every subscriber, and the
 * broker, more in nng's threads than its bytes do. Monitor gets its
 * copies one message each (send_monitor_copy).
 */
void kf__publish_flush(struct kf_broker *b)
{
	struct kf_bus_part parts[KF__DEFERRED_MAX];
	size_t n = b->n_deferred;
	enum kf_err err;

	if (n == 0)
		return;
	for (size_t i = 0; i < n; i++) {
		parts[i] = (struct kf_bus_part){ b->deferred[i].buf, b->deferred[i].len };
		send_monitor_copy(b, &b->deferred[i]);
	}
	err = kf_bus_pub_send_parts(b->events, parts, n, b->cfg.event_bundle, NULL);
	if (err)
		KF_DEBUG(KF__TARGET, "events not published", KF_ERR(err));
	else
		kf_counter_add(b->m.tx_events, (double)n);
	for (size_t i = 0; i < n; i++)
		kf_strbuf_release(&b->deferred[i]);
	b->n_deferred = 0;
}

/* Encodes once; on `events` at the end of the turn, or now (after those
 * waiting, to keep the order) and on `commands` too when `commands` is set:
 * a cancel goes out at once. */
static void publish_on(struct kf_broker *b, const char *topic, const struct kf_msg *msg,
	bool commands)
{
	struct kf_strbuf sb = KF_STRBUF_INIT;
	enum kf_err err = kf_msg_encode_pub(topic, msg, &sb);

	if (err) {
		KF_DEBUG(KF__TARGET, "event not published", KF_STR("topic", topic), KF_ERR(err));
		kf_strbuf_release(&sb);
		return;
	}
	if (!commands) {
		if (b->n_deferred == KF__DEFERRED_MAX)
			kf__publish_flush(b);
		b->deferred[b->n_deferred++] = sb;
		return;
	}
	kf__publish_flush(b);
	send_event(b, &sb);
	if ((err = kf_bus_pub_send(b->commands, NULL, 0, sb.buf, sb.len)))
		KF_DEBUG(KF__TARGET, "command not published", KF_STR("topic", topic), KF_ERR(err));
	else
		kf_counter_inc(b->m.tx_commands);
	kf_strbuf_release(&sb);
}

void kf__publish(struct kf_broker *b, const char *topic, const struct kf_msg *msg)
{
	publish_on(b, topic, msg, false);
}

void kf__job_event(struct kf_broker *b, uint64_t job_id, enum kf_job_state state,
	uint32_t attempt, const char *worker_id, double progress, double best_cost,
	const char *message)
{
	char topic[KF_TOPIC_SIZE];
	struct kf_msg m;

	kf_msg_init(&m, KF_MSG_JOB_EVENT, KF_RELAY_SOURCE, ++b->seq_job);
	m.job_event = (struct kf_msg_job_event){
		.job_id = job_id, .state = state, .attempt = attempt,
		.worker_id = worker_id && *worker_id ? worker_id : NULL,
		.progress = progress != progress ? 0 : progress,
		.best_cost = best_cost != best_cost ? 0 : best_cost,
		.message = message,
	};
	kf_topic_job(topic, job_id);
	kf__publish(b, topic, &m);
}

void kf__cmd_cancel(struct kf_broker *b, const char *worker_id, uint64_t job_id,
	uint64_t lease_token, const char *dropped)
{
	char topic[KF_TOPIC_SIZE];
	struct kf_msg m;

	if (!worker_id || !*worker_id)
		return;
	kf_msg_init(&m, KF_MSG_COMMAND, KF_RELAY_SOURCE, ++b->seq_cmd);
	m.command = (struct kf_msg_command){ .worker_id = worker_id, .action = KF_CMD_CANCEL,
		.job_id = job_id, .lease_token = lease_token, .drop = dropped != NULL,
		.reason = dropped };
	kf_topic_cmd(topic, worker_id);
	/* Workers listen on commands; events keeps a copy for observers. */
	publish_on(b, topic, &m, true);
}

void kf__cmd_drain(struct kf_broker *b, const char *worker_id)
{
	char topic[KF_TOPIC_SIZE];
	struct kf_msg m;

	kf_msg_init(&m, KF_MSG_COMMAND, KF_RELAY_SOURCE, ++b->seq_cmd);
	m.command = (struct kf_msg_command){ .worker_id = worker_id, .action = KF_CMD_DRAIN };
	kf_topic_cmd(topic, worker_id);
	publish_on(b, topic, &m, true);
}

void kf__job_outcome(struct kf_broker *b, enum kf_job_state state)
{
	static const int outcome_of[KF_JOB_STATE_COUNT] = {
		[KF_JOB_PENDING] = KF_JOB_OUTCOME_RETRIED, [KF_JOB_RUNNING] = -1,
		[KF_JOB_RETRYING] = KF_JOB_OUTCOME_RETRIED,
		[KF_JOB_SUCCEEDED] = KF_JOB_OUTCOME_SUCCESS,
		[KF_JOB_FAILED] = KF_JOB_OUTCOME_FAILED, [KF_JOB_KILLED] = KF_JOB_OUTCOME_KILLED,
	};

	if ((unsigned)state < KF_JOB_STATE_COUNT && outcome_of[state] >= 0)
		kf_counter_inc(b->m.contract.jobs_total[outcome_of[state]]);
}

struct kf__lease_slot *kf__lease_slot(struct kf_broker *b, uint64_t job_id)
{
	struct kf__lease_slot *s = &b->leases[job_id % KF__LEASE_SLOTS];

	return s->job_id == job_id ? s : NULL;
}

void kf__lease_forget(struct kf_broker *b, uint64_t job_id)
{
	struct kf__lease_slot *s = kf__lease_slot(b, job_id);

	if (s)
		s->job_id = 0;
}

/* ---- calls and replies ------------------------------------------------------------ */

static void call_unpark(struct kf_broker *b, struct kf__call *c)
{
	if (!c->parked)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		b->park_head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		b->park_tail = c->prev;
	c->prev = c->next = NULL;
	c->parked = false;
	b->n_parked--;
}

static void call_free(struct kf__call *c)
{
	struct kf_broker *b = c->b;

	call_unpark(b, c);
	kf_msg_free(c->msg);
	kf_jarena_release(&c->arena);
	free(c);
	b->n_calls--;
}

bool kf__call_alive(const struct kf__call *c)
{
	for (size_t i = 0; i < c->n_reqs; i++)
		if (kf_rpc_req_peer_alive(c->reqs[i]))
			return true;
	return false;
}

void kf__call_drop(struct kf__call *c)
{
	for (size_t i = 0; i < c->n_reqs; i++)
		kf_rpc_req_drop(c->reqs[i]);
	if (c->entry)
		kf_replies_finish(&c->b->replies, c->entry, NULL, 0, false);
	call_free(c);
}

/* A failure worth remembering for a resend: the same request would fail the
 * same way. Transient ones (database away, shutting down) are retried. */
static bool cacheable(enum kf_err status)
{
	switch (status) {
	case KF_OK: case KF_ENOENT: case KF_ESTATE: case KF_ESTALE: case KF_EINVAL:
	case KF_ERANGE:
		return true;
	default:
		return false;
	}
}

static void send_bytes(struct kf_broker *b, struct kf_rpc_req *req, const void *buf, size_t len)
{
	if (kf_rpc_req_reply(req, buf, len) == KF_OK)
		kf_counter_inc(b->m.tx_rpc);
	else
		kf_rpc_req_drop(req);
}

static void count_request(struct kf_broker *b, const char *method, enum kf_err status)
{
	kf_bmetrics_count(b->m.rpc_requests, (const char *const[]){ method,
		status ? kf_bmetrics_err_kind(status) : "ok" });
}

void kf__call_finish(struct kf__call *c, struct kf_msg *rep)
{
	struct kf_broker *b = c->b;
	struct kf_strbuf sb = KF_STRBUF_INIT;
	struct kf_msg_rep *h;
	enum kf_err err;

	rep->type = kf_msg_reply_type(c->msg->type);
	rep->sender = KF_RELAY_SOURCE;
	rep->seq = ++b->seq_rpc;
	rep->ts_ns = kf_clock_wall_ns();
	h = kf_msg_reply_mut(rep);
	h->id = kf_msg_request(c->msg)->id;
	if ((err = kf_msg_encode(rep, &sb))) {
		/* A reply we cannot encode is a bug or a limit (a huge list):
		 * say so rather than leave the client waiting. */
		struct kf_msg fallback;

		KF_ERROR(KF__TARGET_RPC, "reply could not be encoded",
			 KF_STR("method", c->h->method), KF_ERR(err));
		kf_msg_init(&fallback, rep->type, KF_RELAY_SOURCE, rep->seq);
		h = kf_msg_reply_mut(&fallback);
		h->id = kf_msg_request(c->msg)->id;
		h->status = err == KF_ETOOBIG ? KF_ETOOBIG : KF_EINTERNAL;
		h->error = "the reply could not be encoded; see the broker's log";
		kf_strbuf_reset(&sb);
		kf_msg_encode(&fallback, &sb);
	}
	h = kf_msg_reply_mut(rep);
	count_request(b, c->h->method, err ? KF_EINTERNAL : h->status);
	for (size_t i = 0; i < c->n_reqs; i++)
		send_bytes(b, c->reqs[i], sb.buf, sb.len);
	if (c->entry)
		kf_replies_finish(&b->replies, c->entry, sb.buf, sb.len,
				  !sb.oom && !err && cacheable(h->status));
	KF_TRACE(KF__TARGET_RPC, "replied", KF_STR("method", c->h->method),
		 KF_U64("status", (uint64_t)h->status),
		 KF_U64("elapsed_us", (kf_clock_mono_ns() - c->started_ns) / 1000));
	kf_strbuf_release(&sb);
	call_free(c);
}

void kf__call_fail(struct kf__call *c, enum kf_err err, const char *fmt, ...)
{
	struct kf_strbuf text = KF_STRBUF_INIT;
	struct kf_msg rep;
	struct kf_msg_rep *h;
	va_list ap;

	va_start(ap, fmt);
	kf_strbuf_vaddf(&text, fmt, ap);
	va_end(ap);
	memset(&rep, 0, sizeof(rep));
	rep.type = kf_msg_reply_type(c->msg->type);
	h = kf_msg_reply_mut(&rep);
	h->status = err;
	h->error = text.buf;
	/* Reply bodies with required strings must still encode: list and log
	 * tail have none; get and lease have optional pointers; cluster has
	 * an empty worker array. */
	kf__call_finish(c, &rep);
	kf_strbuf_release(&text);
}

/* An unreadable request: answer KF_MSG_ERROR_REP so the client stops
 * resending, count it by kind, warn now and then. */
static void refuse(struct kf_broker *b, struct kf_rpc_req *req, enum kf_err err, const char *why)
{
	struct kf_strbuf sb = KF_STRBUF_INIT;
	uint64_t now = kf_clock_mono_ns();
	struct kf_msg rep;

	kf_bmetrics_count(b->m.decode_errors,
			  (const char *const[]){ "rpc", kf_bmetrics_err_kind(err) });
	count_request(b, "invalid", err);
	b->malformed_since_warn++;
	if (now - b->malformed_warn_ns >= MALFORMED_WARN_MS * KF_NS_PER_MS) {
		KF_WARN(KF__TARGET_RPC, "malformed request refused", KF_ERR(err),
			KF_STR("why", why && *why ? why : kf_strerror(err)),
			KF_U64("count", b->malformed_since_warn));
		b->malformed_since_warn = 0;
		b->malformed_warn_ns = now;
	}
	kf_msg_init(&rep, KF_MSG_ERROR_REP, KF_RELAY_SOURCE, ++b->seq_rpc);
	rep.error_rep.rep.status = err;
	rep.error_rep.rep.error = why && *why ? why : kf_strerror(err);
	if (kf_msg_encode(&rep, &sb) == KF_OK)
		send_bytes(b, req, sb.buf, sb.len);
	else
		kf_rpc_req_drop(req);
	kf_strbuf_release(&sb);
}

static bool authorised(struct kf_broker *b, const struct kf__call *c)
{
	const struct kf_msg_req *q = kf_msg_request(c->msg);
	struct kf_bus_peer peer;
	bool have_peer;

	if (c->h->auth == KF__AUTH_NONE || (c->h->auth == KF__AUTH_WORKER && !b->cfg.worker_auth))
		return true;
	/* The peer costs a system call and several of nng's option lookups:
	 * ask for it only when the token alone does not do (an ipc peer's
	 * credentials). */
	if (kf_auth_check(&b->auth, q->auth_token, NULL))
		return true;
	have_peer = kf_rpc_req_peer(c->reqs[0], &peer) == KF_OK;
	return kf_auth_check(&b->auth, q->auth_token, have_peer ? &peer : NULL);
}

/* A resend of a request we know: join the one in flight, or replay. */
static bool replay(struct kf_broker *b, struct kf_rpc_req *req, const struct kf_msg *msg)
{
	const struct kf_msg_req *q = kf_msg_request(msg);
	struct kf_reply_entry *e;
	struct kf__call *c;

	if (!q->id.client && !q->id.seq)
		return false;
	if (!(e = kf_replies_find(&b->replies, q->id.client, q->id.seq, msg->type)))
		return false;
	kf_counter_inc(b->m.replies_replayed);
	if (!e->inflight) {
		send_bytes(b, req, e->bytes, e->len);
		return true;
	}
	c = e->inflight;
	if (c->n_reqs < KF__CALL_MAX_COPIES)
		c->reqs[c->n_reqs++] = req;
	else
		kf_rpc_req_drop(req); /* its client has other copies waiting */
	return true;
}

static void dispatch(struct kf_broker *b, struct kf_rpc_req *req)
{
	struct kf_strbuf why = KF_STRBUF_INIT;
	const struct kf__rpc_handler *h;
	const struct kf_msg_req *q;
	struct kf_msg *msg;
	struct kf__call *c;
	size_t len;
	const void *body = kf_rpc_req_body(req, &len);
	enum kf_err err;

	kf_counter_inc(b->m.rx_rpc);
	if ((err = kf_msg_decode(body, len, &msg, &why))) {
		refuse(b, req, err, why.buf);
		kf_strbuf_release(&why);
		return;
	}
	kf_strbuf_release(&why);
	if (!(h = kf__rpc_handler_find(msg->type))) {
		refuse(b, req, KF_EUNKNOWNTYPE, "not a request type this broker serves");
		kf_msg_free(msg);
		return;
	}
	if (replay(b, req, msg)) {
		kf_msg_free(msg);
		return;
	}
	if (!(c = calloc(1, sizeof(*c)))) {
		kf_rpc_req_drop(req); /* the client resends */
		kf_msg_free(msg);
		return;
	}
	b->n_calls++;
	*c = (struct kf__call){ .b = b, .h = h, .msg = msg, .reqs = { req }, .n_reqs = 1,
		.started_ns = kf_clock_mono_ns() };
	q = kf_msg_request(msg);
	if (h->idempotent_cache && (q->id.client || q->id.seq))
		c->entry = kf_replies_add(&b->replies, q->id.client, q->id.seq, msg->type, c);
	if (!authorised(b, c)) {
		KF_DEBUG(KF__TARGET_RPC, "request not authorised", KF_STR("method", h->method));
		kf__call_fail(c, KF_EPERM, "not authorised: %s needs the token from the broker's "
			      "token file (KEYFORGE_TOKEN_FILE); read it again if the broker "
			      "restarted", h->method);
		return;
	}
	if (b->draining) {
		kf__call_fail(c, KF_EUNAVAIL, "the broker is shutting down; try again shortly");
		return;
	}
	h->fn(b, c);
}

/* ---- lease parking ------------------------------------------------------------------ */

void kf__lease_park(struct kf_broker *b, struct kf__call *c, bool front)
{
	c->parked = true;
	if (front) {
		c->prev = NULL;
		c->next = b->park_head;
		if (b->park_head)
			b->park_head->prev = c;
		else
			b->park_tail = c;
		b->park_head = c;
	} else {
		c->next = NULL;
		c->prev = b->park_tail;
		if (b->park_tail)
			b->park_tail->next = c;
		else
			b->park_head = c;
		b->park_tail = c;
	}
	b->n_parked++;
}

static void lease_none(struct kf__call *c)
{
	kf__lease_reply(c, NULL); /* no job now */
}

/* Lets parked leases claim while the budget lasts, oldest first. Only the
 * call at hand is answered or freed on the way: `next` stays valid. */
static void lease_pump(struct kf_broker *b)
{
	struct kf__call *c, *next;

	for (c = b->park_head; c && b->wake_budget && !b->draining && kf_store_is_up(b->store);
	     c = next) {
		next = c->next;
		if (!kf__call_alive(c)) {
			kf__call_drop(c);
			continue;
		}
		if (kf__lease_fenced(b, c))
			continue; /* answered, or held for its worker's first heartbeat;
				   * the budget goes to the next one */
		call_unpark(b, c);
		b->wake_budget--;
		c->from_park = true;
		kf__lease_claim(b, c);
	}
}

void kf__lease_wake(struct kf_broker *b, uint32_t n)
{
	uint64_t budget = (uint64_t)b->wake_budget + n;

	b->wake_budget = budget > UINT32_MAX ? UINT32_MAX : (uint32_t)budget;
	lease_pump(b);
}

uint32_t kf__lease_end_for(struct kf_broker *b, const char *worker_id)
{
	uint32_t n = 0;

	for (struct kf__call *c = b->park_head, *next; c; c = next) {
		const char *w = kf__call_worker(c);

		next = c->next;
		if (!w || strcmp(w, worker_id) != 0)
			continue;
		call_unpark(b, c);
		lease_none(c);
		n++;
	}
	return n;
}

/* Parked leases whose wait is over get "no job"; gone clients are forgotten.
 * Returns ms until the next deadline (-1 = none). */
static int64_t lease_expire(struct kf_broker *b, uint64_t now)
{
	int64_t next = -1;

	for (struct kf__call *c = b->park_head, *n; c; c = n) {
		n = c->next;
		if (now >= c->deadline_ns || b->draining) {
			call_unpark(b, c);
			lease_none(c);
		} else {
			int64_t ms = (int64_t)((c->deadline_ns - now) / KF_NS_PER_MS) + 1;

			if (next < 0 || ms < next)
				next = ms;
		}
	}
	return next;
}

/* ---- the database's status ------------------------------------------------------------ */

static void store_notify(void *arg)
{
	efd_signal(((struct kf_broker *)arg)->store_efd);
}

static void on_store_status(void *arg, const struct kf_store_status_change *ch)
{
	struct kf_broker *b = arg;
	enum kf_store_conn was = b->db_conn;

	b->db_conn = ch->conn;
	if (ch->conn == KF_STORE_DOWN && ch->err == KF_EMIGRATION) {
		KF_ERROR(KF__TARGET_DB, "database schema does not match this broker",
			 KF_STR("error", ch->message));
		b->fatal = KF_EMIGRATION;
	} else if (ch->conn == KF_STORE_DOWN && was != KF_STORE_DOWN) {
		/* Once per outage, not per request (DESIGN.md §5). */
		KF_ERROR(KF__TARGET_DB, "database connection failed", KF_STR("error", ch->message),
			 KF_STR("hint", "submissions are refused until it is back; "
				"the broker reconnects by itself"));
		kf_counter_inc(b->m.db_outages);
		b->db_was_down = true;
	} else if (ch->conn == KF_STORE_UP) {
		if (b->db_was_down)
			KF_INFO(KF__TARGET_DB, "database connection restored",
				KF_I64("schema_version", ch->schema_applied));
		else
			KF_INFO(KF__TARGET_DB, "database connected",
				KF_I64("schema_version", ch->schema_applied));
		b->db_was_down = false;
		kf__expire_hold(b, kf_clock_mono_ns());
		kf__lease_wake(b, (uint32_t)b->n_parked);
	}
}

/* ---- lifecycle ------------------------------------------------------------------------- */

static void warn_exposed(const char *role, const char *url)
{
	struct kf_strbuf w = KF_STRBUF_INIT;

	if (kf_bus_listen_exposed(url, &w))
		KF_WARN(KF__TARGET, "listening beyond loopback", KF_STR("socket", role),
			KF_STR("url", url), KF_STR("warning", w.buf));
	kf_strbuf_release(&w);
}

static enum kf_err open_sockets(struct kf_broker *b, struct kf_strbuf *why)
{
	const struct kf_bus_addrs *a = &b->cfg.addrs;
	struct kf_bus_opts ro = { .recv_max = KF_MSG_MAX_WIRE + RPC_RECV_GRACE,
				  .tls = b->have_tls ? &b->tls : NULL };
	struct kf_bus_opts eo = { .tls = b->have_tls ? &b->tls : NULL };
	struct kf_bus_opts evo = { .tls = eo.tls, .queue_len = KF__EVENTS_QUEUE };
	struct kf_relay_opts rel = {
		.url = kf_bus_addrs_get(a, KF_BUS_INGEST), .tls = eo.tls, .metrics = &b->m,
		.rate = b->cfg.ingest_rate, .burst = b->cfg.ingest_burst,
		.ring_size = b->cfg.log_ring, .bundle = b->cfg.event_bundle,
	};
	enum kf_err err;

	for (int role = 0; role < KF_BUS_ROLE_COUNT; role++)
		warn_exposed(kf_bus_role_name(role), kf_bus_addrs_get(a, role));
	if ((err = kf_rpc_server_new(&b->rpc, b->cfg.contexts, kf_bus_addrs_get(a, KF_BUS_RPC),
				     &ro, why)))
		return err;
	if ((err = kf_bus_pub_new(&b->events, KF_BUS_LISTEN, kf_bus_addrs_get(a, KF_BUS_EVENTS),
				  &evo, why)))
		return err;
	if ((err = kf_bus_pub_new(&b->commands, KF_BUS_LISTEN,
				  kf_bus_addrs_get(a, KF_BUS_COMMANDS), &eo, why)))
		return err;
	if ((err = kf_bus_pub_new(&b->monitor, KF_BUS_LISTEN,
				  kf_bus_addrs_get(a, KF_BUS_MONITOR), &eo, why)))
		return err;
	rel.events = b->events;
	rel.monitor = b->monitor;
	return kf_relay_new(&b->relay, &rel, why);
}

/* "submit=3 claim=2": the kinds of request a transaction carried. */
static void txn_ops(const struct kf_store_txn *t, char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (int op = 0; op < KF_STORE_OP_COUNT && len < size; op++) {
		int n;

		if (!t->ops[op])
			continue;
		n = snprintf(buf + len, size - len, "%s%s=%u", len ? " " : "",
			     kf_store_op_name(op), t->ops[op]);
		if (n < 0)
			break;
		len += (size_t)n;
	}
}

/* The database thread, after each transaction. Every submit, lease and
 * report waits for these transactions in turn, so their times are the
 * database's share of a job's latency: the histograms show how it is
 * spread, and each transaction over --db-slow is logged with what it
 * carried, so that a stall can be placed on a time line. */
static void on_store_txn(void *arg, const struct kf_store_txn *t)
{
	struct kf_broker *b = arg;
	char ops[256];

	kf_histogram_observe(b->m.db_txn_seconds, (double)t->ns / 1e9);
	kf_histogram_observe(b->m.db_wait_seconds, (double)t->wait_ns / 1e9);
	if (!b->cfg.db_slow_ms || t->ns < (uint64_t)b->cfg.db_slow_ms * KF_NS_PER_MS)
		return;
	txn_ops(t, ops, sizeof ops);
	KF_WARN(KF__TARGET_DB, "slow database transaction",
		KF_F64("ms", (double)t->ns / 1e6), KF_U64("requests", t->requests),
		KF_STR("ops", ops), KF_F64("queued_ms", (double)t->wait_ns / 1e6),
		KF_BOOL("committed", t->committed));
}

static enum kf_err start_store(struct kf_broker *b)
{
	struct kf_store_opts so = KF_STORE_OPTS_INIT;

	so.conninfo = b->cfg.conninfo;
	so.migrate = true;
	so.thread_nice = b->cfg.thread_nice;
	so.answer_timeout_ms = b->cfg.db_timeout_ms;
	so.notify = store_notify;
	so.notify_arg = b;
	so.on_status = on_store_status;
	so.status_arg = b;
	so.on_txn = on_store_txn;
	so.txn_arg = b;
	return kf_store_new(&so, &b->store);
}

static enum kf_err open_fds(struct kf_broker *b)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	b->store_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	b->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return b->store_efd < 0 || b->sig_fd < 0 ? KF_EIO : KF_OK;
}

static bool any_tls(const struct kf_bus_addrs *a)
{
	for (int role = 0; role < KF_BUS_ROLE_COUNT; role++)
		if (!strncmp(kf_bus_addrs_get(a, role), "tls+", 4))
			return true;
	return false;
}

static void log_started(struct kf_broker *b)
{
	const struct kf_bus_addrs *a = &b->cfg.addrs;

	KF_INFO(KF__TARGET, "server started", KF_STR("version", KF_VERSION),
		KF_STR("ingest", kf_bus_addrs_get(a, KF_BUS_INGEST)),
		KF_STR("events", kf_bus_addrs_get(a, KF_BUS_EVENTS)),
		KF_STR("rpc", kf_bus_addrs_get(a, KF_BUS_RPC)),
		KF_STR("commands", kf_bus_addrs_get(a, KF_BUS_COMMANDS)),
		KF_STR("monitor", kf_bus_addrs_get(a, KF_BUS_MONITOR)),
		KF_U64("pid", (uint64_t)getpid()),
		KF_STR("token_file", b->auth.enabled ? b->auth.path : "(none)"));
	if (!b->auth.enabled)
		KF_WARN(KF__TARGET, "authorisation is off",
			KF_STR("hint", "without --token-file anyone who reaches the rpc socket "
			       "may submit, kill and retry jobs"));
}

enum kf_err kf_broker_new(struct kf_broker **out, const struct kf_broker_config *cfg,
	struct kf_strbuf *why)
{
	struct kf_broker *b = calloc(1, sizeof(*b));
	enum kf_err err;

	*out = NULL;
	if (!b)
		return KF_ENOMEM;
	b->cfg = *cfg;
	b->store_efd = b->sig_fd = -1;
	b->started_ns = kf_clock_mono_ns();
	b->incarnation = kf_random_u64_nonzero();
	b->db_conn = KF_STORE_CONNECTING;
	b->have_tls = any_tls(&cfg->addrs) && kf_bus_tls_opts_from_env(&b->tls);
	if ((err = kf_bmetrics_init(&b->m)) || (err = kf_workers_new(&b->workers)) ||
	    (err = kf_replies_init(&b->replies, KF__REPLIES_MAX, KF__REPLIES_BYTES)) ||
	    (err = open_fds(b)))
		goto fail;
	/* Bind before anything else: a second broker stops here, before it
	 * touches the token file or the database. */
	if ((err = open_sockets(b, why)))
		goto fail;
	if ((err = kf_auth_init(&b->auth, cfg->token_file, why)))
		goto fail;
	kf_relay_attach_log(b->relay);
	if ((err = start_store(b)))
		goto fail;
	b->next_tick_ns = kf_clock_mono_ns();
	log_started(b);
	*out = b;
	return KF_OK;
fail:
	kf_broker_free(b);
	return err;
}

/* ---- the owner loop ------------------------------------------------------------------------ */

static void begin_shutdown(struct kf_broker *b, const char *why)
{
	if (b->draining)
		return;
	b->draining = true;
	b->drain_deadline_ns = kf_clock_mono_ns() + KF__DRAIN_MS * KF_NS_PER_MS;
	KF_INFO(KF__TARGET, "shutting down", KF_STR("signal", why),
		KF_U64("requests_in_flight", b->n_calls));
	lease_expire(b, kf_clock_mono_ns()); /* parked leases: "no job" now */
}

static void read_signals(struct kf_broker *b)
{
	struct signalfd_siginfo si;

	while (read(b->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			KF_INFO(KF__TARGET, "SIGHUP ignored", KF_STR("hint", "use SIGTERM to stop"));
			continue;
		}
		begin_shutdown(b, si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
	}
}

static void take_heartbeats(struct kf_broker *b)
{
	struct kf_msg *hb[HB_BATCH];
	size_t n;

	while ((n = kf_relay_take(b->relay, hb, HB_BATCH)) > 0) {
		uint64_t now = kf_clock_mono_ns();

		for (size_t i = 0; i < n; i++)
			kf__on_heartbeat(b, hb[i], now);
		if (n < HB_BATCH)
			break;
	}
}

static void take_requests(struct kf_broker *b)
{
	struct kf_rpc_req *req;

	for (int i = 0; i < DISPATCH_BATCH && kf_rpc_server_next(b->rpc, 0, &req) == KF_OK; i++)
		dispatch(b, req);
}

static int poll_timeout(struct kf_broker *b, uint64_t now, int64_t lease_ms)
{
	int64_t ms = now >= b->next_tick_ns ? 0 :
		(int64_t)((b->next_tick_ns - now) / KF_NS_PER_MS) + 1;

	if (lease_ms >= 0 && lease_ms < ms)
		ms = lease_ms;
	if (b->draining && ms > 50)
		ms = 50;
	return (int)ms;
}

/* Every job waits for two threads: this loop and the database thread (it
 * raises its own, store.c). On a busy host they otherwise queue behind
 * nng's I/O threads, the workers and PostgreSQL at each wakeup: with two
 * one-slot workers on two cores, nice -5 took the flood from 622 to 707
 * jobs/s on average over seven interleaved pairs (docs/performance.md).
 * Done here, after every other thread of the broker exists, because new
 * threads inherit it. */
static void raise_priority(struct kf_broker *b)
{
	int err;

	if (!b->cfg.thread_nice)
		return;
	if ((err = kf_thread_set_nice(b->cfg.thread_nice)))
		KF_INFO(KF__TARGET, "thread priority not raised", KF_I64("nice", b->cfg.thread_nice),
			KF_STR("error", strerror(err)),
			KF_STR("hint", "needs CAP_SYS_NICE or RLIMIT_NICE; --thread-nice 0 to "
			       "leave the threads alone"));
	else if (kf_thread_in_autogroup())
		/* The nice value holds, but the kernel shares the CPUs between
		 * sessions first: the two threads gain nothing over the workers
		 * and PostgreSQL's backend, each a session of its own. */
		KF_INFO(KF__TARGET, "thread priority only ranks threads of the broker's session",
			KF_I64("nice", b->cfg.thread_nice),
			KF_STR("reason", "kernel.sched_autogroup_enabled = 1 makes this process's "
			       "session a scheduling group of its own"),
			KF_STR("hint", "run the broker and PostgreSQL in one CPU cgroup "
			       "(scripts/cpugroup, as ./keyforge up does), or set "
			       "kernel.sched_autogroup_enabled = 0"));
	else
		KF_DEBUG(KF__TARGET, "thread priority raised", KF_I64("nice", b->cfg.thread_nice));
}

enum kf_err kf_broker_run(struct kf_broker *b)
{
	struct pollfd pfd[4] = {
		{ .fd = kf_rpc_server_fd(b->rpc), .events = POLLIN },
		{ .fd = b->store_efd, .events = POLLIN },
		{ .fd = kf_relay_fd(b->relay), .events = POLLIN },
		{ .fd = b->sig_fd, .events = POLLIN },
	};
	int64_t lease_ms = -1;

	raise_priority(b);
	while (!b->fatal) {
		uint64_t now = kf_clock_mono_ns();

		if (poll(pfd, 4, poll_timeout(b, now, lease_ms)) < 0) {
			if (errno != EINTR)
				break;
			for (int i = 0; i < 4; i++)
				pfd[i].revents = 0;
		}
		kf__stall_check(b, kf_clock_mono_ns());
		/* Only the sources poll found ready: each eventfd read is a
		 * syscall, and the loop turns several times per job. Every
		 * producer makes its fd readable after queueing, so nothing
		 * queued is missed. */
		if (pfd[3].revents)
			read_signals(b);
		if (pfd[1].revents) {
			efd_reset(b->store_efd);
			kf_store_drain(b->store, 0);
		}
		if (pfd[2].revents)
			take_heartbeats(b);
		take_requests(b);
		now = kf_clock_mono_ns();
		lease_ms = lease_expire(b, now);
		if (now >= b->next_tick_ns) {
			kf__tick(b, now);
			b->next_tick_ns = now + KF__TICK_MS * KF_NS_PER_MS;
		}
		kf__publish_flush(b);
		if (b->draining && (b->n_calls == 0 || now >= b->drain_deadline_ns))
			break;
	}
	/* Whatever still waits for the database completes with KF_ECANCELED
	 * and is answered "unavailable": its client resends to the next broker. */
	kf_store_stop(b->store);
	kf_store_drain(b->store, 0);
	for (struct kf__call *c = b->park_head, *n; c; c = n) {
		n = c->next;
		call_unpark(b, c);
		lease_none(c);
	}
	kf__publish_metrics(b, true);
	kf__publish_flush(b);
	return b->fatal;
}

void kf_broker_free(struct kf_broker *b)
{
	if (!b)
		return;
	kf_store_free(b->store); /* runs callbacks still queued: they reply */
	if (b->events)
		kf__publish_flush(b);  /* and publish */
	for (size_t i = 0; i < b->n_deferred; i++)
		kf_strbuf_release(&b->deferred[i]);   /* no events socket to send them on */
	if (b->rpc) {
		/* nng sends replies asynchronously: give the last ones a moment
		 * to leave before the contexts close. */
		struct timespec ts = { 0, 200 * 1000000L };

		nanosleep(&ts, NULL);
	}
	kf_relay_free(b->relay);
	kf_rpc_server_free(b->rpc);
	kf_bus_pub_free(b->events);
	kf_bus_pub_free(b->commands);
	kf_bus_pub_free(b->monitor);
	kf_auth_release(&b->auth);
	kf_replies_release(&b->replies);
	kf_workers_free(b->workers);
	free(b->suspects);
	kf_bmetrics_release(&b->m);
	free(b->status_buf);
	if (b->store_efd >= 0)
		close(b->store_efd);
	if (b->sig_fd >= 0)
		close(b->sig_fd);
	free(b);
}
