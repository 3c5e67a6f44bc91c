/*
 * worker/outbox.h — results the broker has not acknowledged yet
 * (DESIGN.md §3: "a worker keeps an unacknowledged result and resends it
 * until the broker acknowledges it, across broker restarts").
 *
 * A finished attempt (succeeded, failed, killed; with its result) is put in
 * the outbox and the slot that ran it goes on to lease the next job: the
 * complete request travels in the background, so that reporting job N
 * overlaps leasing job N+1. Each entry keeps one request id for its whole
 * life: the broker answers a resend of a complete it already stored with
 * the same acknowledgement (and after a broker restart, the database says
 * "duplicate"), so resending is always safe.
 *
 * What a reply means (kf__complete_verdict):
 *   status OK                         acknowledged: forget it
 *   drop (stale lease, no such job)   the attempt no longer counts: forget it
 *   KF_EPERM                          read the token file again, resend
 *   KF_EUNAVAIL, transport errors     resend after a back-off (100 ms
 *                                     doubling to 5 s, with jitter)
 *   anything else (the broker refused the request itself: a bug or a
 *   limit)                            forget it, with an ERROR
 *
 * Memory: entries live in the process only; a worker killed with -9 loses
 * them, and the broker requeues the attempt when the worker is declared dead.
 *
 * Thread-safety: put/pending/wait from any thread. Reply callbacks run on
 * nng threads and only take the outbox mutex.
 */
#ifndef KF_WORKER_OUTBOX_H
#define KF_WORKER_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "proto/msg.h"
#include "worker/rpc.h"

#define KF__OUTBOX_BACKOFF_MIN_MS 100
#define KF__OUTBOX_BACKOFF_MAX_MS 5000
#define KF__OUTBOX_MAX_STATS 32
#define KF__OUTBOX_ERROR_MAX 1024

/* One attempt's report, owned by value (no pointers into other memory). */
struct kf__completion {
	uint64_t job_id;
	uint64_t lease_token;
	uint32_t attempt;
	enum kf_job_state outcome;      /* succeeded, failed or killed */
	bool released;                  /* handed back unfinished (outcome failed:
					 * what a 1.0 broker reads), see proto/rpc.h */
	bool expired;                   /* stopped at its deadline (outcome failed,
					 * protocol 1.3), see proto/rpc.h */
	bool has_result;
	char layout[32];
	double cost;
	struct kf_msg_named_value stats[KF__OUTBOX_MAX_STATS];
	size_t n_stats;                 /* names are static strings (layout/stats.c) */
	double finger_usage[KF_MSG_FINGERS];
	uint64_t steps;
	double steps_per_sec;
	uint64_t elapsed_ms;
	char error[KF__OUTBOX_ERROR_MAX]; /* "" = none */
};

enum kf__verdict {
	KF__VERDICT_ACKED = 0,
	KF__VERDICT_DROP,       /* stale: forget it quietly */
	KF__VERDICT_REAUTH,     /* reload the token, then resend */
	KF__VERDICT_RETRY,      /* resend after back-off */
	KF__VERDICT_REFUSED,    /* the broker will never take it */
};

/* Pure: what a complete's outcome means. `err` is the transport result;
 * rep is the decoded reply when err == KF_OK (may be an error reply). */
enum kf__verdict kf__complete_verdict(enum kf_err err, const struct kf_msg *rep);

/* Pure: the back-off before resend number `tries` (1 = first resend):
 * min(MAX, MIN·2^(tries−1)) × (0.5 + jitter/2), jitter in [0, 1]. */
uint32_t kf__outbox_backoff_ms(uint32_t tries, double jitter);

/* The complete request for c, unstamped (id and token come at send time);
 * res_buf holds the result the request points at. */
void kf__completion_to_req(const struct kf__completion *c, struct kf_msg_job_result *res_buf,
	struct kf_msg *req);

struct kf__outbox;

/* The worker counts results by verdict itself (its done hook sees every
 * result, sent with the next lease request or from here). */
struct kf__outbox_stats {
	uint64_t resent;
	size_t pending;
};

/* Optional hook, called (on an nng thread or the outbox thread, without
 * the outbox lock) when an entry leaves the outbox. */
typedef void (*kf__outbox_done_fn)(void *ctx, const struct kf__completion *c,
	enum kf__verdict verdict);

enum kf_err kf__outbox_new(struct kf__rpc *rpc, kf__outbox_done_fn done, void *done_ctx,
	struct kf__outbox **out);
/* Stops the sender thread, cancels calls in flight, frees entries. NULL-safe. */
void kf__outbox_free(struct kf__outbox *ob);

/* Copies c into the outbox and starts sending it. KF_OK, KF_ENOMEM. */
enum kf_err kf__outbox_put(struct kf__outbox *ob, const struct kf__completion *c);

/* The attempts whose results wait in the outbox, into out (at most cap);
 * returns how many there are (more than cap: out holds the first cap). */
size_t kf__outbox_held(struct kf__outbox *ob, struct kf_msg_held_job *out, size_t cap);

/* Waits until the outbox is empty or timeout_ms passed; true when empty. */
bool kf__outbox_wait_empty(struct kf__outbox *ob, uint32_t timeout_ms);

void kf__outbox_stats(struct kf__outbox *ob, struct kf__outbox_stats *out);

#endif
