/*
 * broker/broker_int.h — what the files of keyforge-broker share (kf__
 * names): the broker struct, the RPC call object and the handler table.
 * Everything here belongs to the owner thread unless a comment says
 * otherwise.
 *
 *   broker.c         lifecycle, the owner loop, request dispatch, replies,
 *                    publishing helpers, lease parking
 *   rpc_handlers.c   the handler table: one function per request type
 *   reaper.c         the 1 s tick: liveness, requeue, promote, expire,
 *                    orphans, job counts, cluster status, metrics
 */
#ifndef KF_BROKER_BROKER_INT_H
#define KF_BROKER_BROKER_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/auth.h"
#include "broker/bmetrics.h"
#include "broker/broker.h"
#include "broker/config.h"
#include "broker/jobjson.h"
#include "broker/replies.h"
#include "broker/store.h"
#include "broker/telemetry_relay.h"
#include "broker/workers.h"
#include "bus/pub.h"
#include "bus/rpc_server.h"
#include "common/clock.h"
#include "proto/msg.h"
#include "telemetry/log.h"

#define KF__TARGET "keyforge::broker"
#define KF__TARGET_RPC "keyforge::broker::rpc"
#define KF__TARGET_REAPER "keyforge::broker::reaper"
#define KF__TARGET_DB "keyforge::broker::db"

#define KF__TICK_MS 1000
/* A tick this much later than due means the broker did not run meanwhile:
 * the workers' silence of that time is not counted (kf__tick). */
#define KF__STALL_MS 1000
#define KF__DRAIN_MS 5000            /* SIGTERM: longest wait for in-flight work */
#define KF__EXPIRE_GRACE_MS 2000     /* deadline + this before a job is expired */
/* After a time in which the broker could hear no report — the database
 * (re)connected, which includes the broker's start, or the broker stalled
 * — it expires no job for this long: a worker that stopped a job at its
 * deadline meanwhile holds the report (and the best layout) and resends it
 * at most 5 s apart (worker/outbox.c), or within 1 s once reconnected. */
#define KF__EXPIRE_HOLD_MS 6000
/* Messages queued per subscriber of `events` (docs/bus.md): nng's PUB sends
 * one message at a time per pipe, so this queue, not the socket buffer,
 * carries a subscriber through a moment when nng's sending thread gets no
 * CPU. A job is about 4 messages (3 job events, the relayed log line): at
 * 1,300 jobs/s, 256 last 50 ms. With 256, floods of 5,000 jobs on 32 slots
 * lost 571-2,875 of their 15,000 job events; with 2,048, none. */
#define KF__EVENTS_QUEUE 2048
#define KF__ORPHAN_EVERY 5           /* ticks between orphan checks */
/* Lost leases (reaper.c): checked every KF__ORPHAN_EVERY ticks among the
 * jobs claimed at least this long ago — a lease younger than that may
 * still be on its way to its worker. */
#define KF__LEASE_LOST_AGE_MS 10000

/* A running attempt its worker's heartbeat did not list (reaper.c). */
struct kf__lease_suspect {
	int64_t job_id;
	uint64_t lease_token;
};
#define KF__METRICS_FULL_EVERY 5     /* ticks between full metric updates */
#define KF__LIST_DEFAULT 100
#define KF__SUMMARY_ERROR_MAX 1024   /* bytes of last_error in a list line */
#define KF__DEFAULT_MAX_ATTEMPTS 3
#define KF__CALL_MAX_COPIES 8        /* resends of one request answered together */
#define KF__LEASE_SLOTS 16384        /* progress fraction cache (job -> steps) */
#define KF__REPLIES_MAX 16384
#define KF__REPLIES_BYTES ((size_t)32 << 20)
#define KF__DEFERRED_MAX 256         /* events held back until a turn's replies are out */
#define KF__COUNTS_SHARE 100         /* counting jobs: at most 1/this of the time */
#define KF__COUNTS_MAX_MS 30000      /* ... and at least once in this long */

enum kf__auth_class {
	KF__AUTH_NONE = 0,     /* read-only: list, get, cluster, log tail */
	KF__AUTH_WORKER,       /* hello, lease, progress, complete: token with --worker-auth */
	KF__AUTH_OPERATOR,     /* submit, kill, retry: token always (when auth is on) */
};

struct kf__call;
struct kf_broker;
typedef void kf__rpc_fn(struct kf_broker *b, struct kf__call *c);

struct kf__rpc_handler {
	enum kf_msg_type type;
	const char *method;           /* label of keyforge_rpc_requests_total */
	enum kf__auth_class auth;
	bool idempotent_cache;        /* keep the reply for resends */
	kf__rpc_fn *fn;
};

/* The handler of a request type, or NULL. */
const struct kf__rpc_handler *kf__rpc_handler_find(enum kf_msg_type type);

/* One request being answered. Created by dispatch, freed by finish/drop. */
struct kf__call {
	struct kf_broker *b;
	const struct kf__rpc_handler *h;
	struct kf_msg *msg;                         /* decoded request (owned) */
	struct kf_rpc_req *reqs[KF__CALL_MAX_COPIES]; /* [0] first copy, then resends */
	size_t n_reqs;
	struct kf_reply_entry *entry;               /* idempotency entry, or NULL */
	struct kf_jarena arena;                     /* reply data built from JSON */
	uint64_t started_ns;
	/* lease long-poll (a lease, or a complete with lease_next) */
	uint64_t deadline_ns;
	bool parked, from_park;
	bool woke_lease;   /* submit: a parked lease was sent to claim already */
	/* complete with lease_next: the completion and a claim are queued
	 * together (one group-commit batch); the reply waits for both. */
	struct {
		bool wanted, complete_seen, claim_seen, claim_ok;
		struct kf_msg_complete_rep rep;   /* the completion's answer */
		char error[256];                  /* rep.rep.error points here */
		const struct kf_msg_lease *lease; /* in arena; NULL = none */
		uint64_t job_id, lease_token;     /* of lease, to hand it back */
	} nx;
	struct kf__call *prev, *next;               /* parked list / all calls */
};

/* What the broker remembers of a leased job (progress fraction, events). */
struct kf__lease_slot {
	uint64_t job_id;        /* 0 = empty */
	uint64_t steps;
	uint64_t lease_token;
	char worker_id[64];
};

struct kf_broker {
	struct kf_broker_config cfg;
	struct kf_bus_tls_opts tls;
	bool have_tls;
	struct kf_bmetrics m;
	struct kf_auth auth;
	struct kf_rpc_server *rpc;
	struct kf_bus_pub *events;
	struct kf_bus_pub *commands;   /* cmd.<worker> only (bus/addr.h) */
	struct kf_bus_pub *monitor;    /* metric.* and status.* only (bus/addr.h) */
	struct kf_relay *relay;
	struct kf_store *store;
	struct kf_workers *workers;
	struct kf_replies replies;
	int store_efd, sig_fd;
	uint64_t incarnation;
	uint64_t started_ns;

	/* per-type sequence numbers of what the broker publishes / replies */
	uint64_t seq_job, seq_status, seq_cmd, seq_metric, seq_rpc;

	/* Events encoded during a turn of the loop and sent at its end
	 * (kf__publish_flush), so that the turn's replies leave first. */
	struct kf_strbuf deferred[KF__DEFERRED_MAX];
	size_t n_deferred;

	/* calls in flight (parked ones included) */
	size_t n_calls;
	struct kf__call *park_head, *park_tail;
	size_t n_parked;
	uint32_t wake_budget;       /* claims that parked leases may issue now */
	uint64_t rpc_exhausted_seen; /* the rpc pool's count at the last tick */
	uint64_t rpc_warned_ns;      /* last WARN "rpc contexts exhausted" */

	/* reaper */
	uint64_t next_tick_ns, last_tick_ns, ticks;
	bool promote_inflight, expire_inflight, counts_inflight, orphans_inflight;
	uint64_t expire_hold_ns;        /* no expiry sweep before this (monotonic) */
	bool running_inflight;               /* the lost-lease check's query */
	struct kf__lease_suspect *suspects;  /* found not held by the last check */
	size_t n_suspects;
	uint64_t promote_at_ns;
	int64_t counts[KF_JOB_STATE_COUNT];
	bool counts_valid;
	uint64_t counts_sent_ns, counts_due_ns;   /* the last count's request; the next */
	uint64_t counts_took_ms;                  /* how long the last count took */
	uint64_t metrics_gen;
	struct kf_msg_worker_status *status_buf;
	size_t status_cap;

	/* database */
	enum kf_store_conn db_conn;
	bool db_was_down;

	/* shutdown */
	bool draining;
	uint64_t drain_deadline_ns;
	enum kf_err fatal;          /* set: leave the loop and exit 1 */
	uint64_t malformed_since_warn, malformed_warn_ns;

	struct kf__lease_slot leases[KF__LEASE_SLOTS];
};

/* ---- broker.c --------------------------------------------------------------- */

/* Replies with `rep` (its type, header id, sender and seq are filled in here)
 * to every copy of the request, stores it for resends, frees the call. */
void kf__call_finish(struct kf__call *c, struct kf_msg *rep);
/* Replies with an empty reply of the right type carrying status `err` and a
 * message (printf format), then frees the call. */
void kf__call_fail(struct kf__call *c, enum kf_err err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* True while at least one copy's connection is open. */
bool kf__call_alive(const struct kf__call *c);
/* Forgets the call without answering (every copy's peer is gone). */
void kf__call_drop(struct kf__call *c);

/* Lease long-poll: park until a job may be claimable or the deadline. */
void kf__lease_park(struct kf_broker *b, struct kf__call *c, bool front);
/* Answers a lease call, or a complete with lease_next (its saved completion
 * answer plus the lease), with `lease` (NULL = no job now). Frees c. */
void kf__lease_reply(struct kf__call *c, const struct kf_msg_lease *lease);
/* Jobs became claimable: let up to n parked leases claim. */
void kf__lease_wake(struct kf_broker *b, uint32_t n);
/* The lease fences (rpc_handlers.c): returns true when c may not claim now
 * and was answered here (refused: another process holds the worker id, or
 * the worker is dead here) or is held, parked until the worker's first
 * heartbeat or the end of its wait. */
bool kf__lease_fenced(struct kf_broker *b, struct kf__call *c);
/* Issues the claim of a lease call (handler and pump). */
void kf__lease_claim(struct kf_broker *b, struct kf__call *c);

/* The wait before the next count of jobs per state, after one that took
 * took_ms from request to answer and one before it that took prev_took_ms
 * (0 before the second count): a tick while counting is cheap, and
 * KF__COUNTS_SHARE times as long as the quicker of the two once it is not,
 * up to KF__COUNTS_MAX_MS. The pending jobs are counted through their
 * index, so a count grows with the backlog (9 ms with 100,000 pending here,
 * 71-142 ms with 500,000), and it runs on the connection every submit and
 * report waits for. The quicker of two because one slow count is not a
 * backlog: the first on a new connection, or one that waited behind a burst
 * of requests on a loaded machine, would otherwise leave the counts seconds
 * behind (a job running, the Job Queue showing none). */
uint64_t kf__counts_interval_ms(uint64_t took_ms, uint64_t prev_took_ms);

/* Publishing on events; failures are counted, never fatal. The message is
 * encoded at once and sent by the next kf__publish_flush, which the loop
 * runs at the end of every turn. */
void kf__publish(struct kf_broker *b, const char *topic, const struct kf_msg *msg);
void kf__publish_flush(struct kf_broker *b);
void kf__job_event(struct kf_broker *b, uint64_t job_id, enum kf_job_state state,
	uint32_t attempt, const char *worker_id, double progress, double best_cost,
	const char *message);
/* Tells worker_id to stop job_id: an operator's kill (dropped = NULL: it
 * reports the job killed), or an attempt this broker has already ended
 * (dropped = why: it stops and reports nothing). */
void kf__cmd_cancel(struct kf_broker *b, const char *worker_id, uint64_t job_id,
	uint64_t lease_token, const char *dropped);
/* Tells worker_id to drain: take no new job, end what it holds, exit. */
void kf__cmd_drain(struct kf_broker *b, const char *worker_id);
/* Answers worker_id's parked lease calls "no job" now; returns how many. */
uint32_t kf__lease_end_for(struct kf_broker *b, const char *worker_id);
/* The worker a lease call (or a complete with lease_next) leases for. */
const char *kf__call_worker(const struct kf__call *c);
/* keyforge_jobs_total for a job that reached `state` (retrying/pending = retried). */
void kf__job_outcome(struct kf_broker *b, enum kf_job_state state);

/* The lease cache (direct-mapped by job id; a miss is harmless). */
struct kf__lease_slot *kf__lease_slot(struct kf_broker *b, uint64_t job_id);
void kf__lease_forget(struct kf_broker *b, uint64_t job_id);

/* ---- reaper.c ------------------------------------------------------------------ */

void kf__tick(struct kf_broker *b, uint64_t now_ns);
void kf__stall_check(struct kf_broker *b, uint64_t now_ns);
/* No expiry sweep for KF__EXPIRE_HOLD_MS from now (reports may be on
 * their way after a time the broker could not hear them). */
void kf__expire_hold(struct kf_broker *b, uint64_t now_ns);
/* A job went retrying, due in due_ms: the next promote sweep runs by then. */
void kf__promote_due(struct kf_broker *b, int64_t due_ms);
/* Requeues a dead or restarted worker's jobs now. */
void kf__requeue_worker(struct kf_broker *b, const char *worker_id, const char *reason);
/* Requeues the running jobs of w's id claimed by another process of it
 * (another incarnation): after a restart this broker did not see, or whose
 * requeue failed. Until that succeeds w->others_pending stays set and the
 * tick tries again. */
void kf__requeue_others(struct kf_broker *b, struct kf_worker *w);
/* Publishes status.cluster / fills a cluster reply: borrowed pointers valid
 * until the next call. */
void kf__cluster_status(struct kf_broker *b, uint64_t now_ns, struct kf_msg_cluster_status *out);
void kf__publish_metrics(struct kf_broker *b, bool full);
/* The heartbeat path of the owner. Takes ownership of msg. */
void kf__on_heartbeat(struct kf_broker *b, struct kf_msg *msg, uint64_t now_ns);
/* What hello and heartbeats share: log a worker's arrival, return or
 * restart (requeueing what the old process held), and record it in the
 * database when `record` (hello records it itself). */
void kf__worker_event(struct kf_broker *b, struct kf_worker *w, enum kf_worker_event ev,
	uint64_t old_incarnation, const char *version, bool record);
/* A second process (host, pid) sent a hello or heartbeat (`via`) with the
 * id of live worker w, and was refused: WARN "worker id in use", at most
 * once per id every 10 s. */
void kf__worker_id_conflict(struct kf_worker *w, const char *host, uint32_t pid,
	const char *via, uint64_t now_ns);

#endif
