/*
 * broker/workers.h — worker liveness from heartbeats (DESIGN.md §3).
 *
 * A worker is known from its first heartbeat or hello. Every heartbeat (or
 * hello) makes it alive; kf_workers_sweep() then ages it: silent for
 * KF_WORKERS_STALE_AFTER heartbeat intervals it is stale, for
 * KF_WORKERS_DEAD_AFTER it is dead (the broker requeues its jobs), and
 * KF_WORKERS_FORGET_MS after that it is forgotten. A heartbeat with another
 * incarnation than the one known means the worker restarted: whatever the
 * old process held is lost (the caller requeues it) — but only once the
 * known incarnation is no longer alive (silent for KF_WORKERS_STALE_AFTER
 * intervals). While it is, the other incarnation is a second process
 * started with the same id: its heartbeats and hellos are refused
 * (KF_EBUSY) and the record stays the live worker's. Taking them as
 * restarts would requeue the live worker's jobs at every heartbeat of
 * either process.
 *
 * Time is passed in (monotonic ns) so tests need no clock. Pure data: no
 * I/O, no logging. Not thread-safe: the broker's owner thread owns it.
 * Record pointers stay valid until the record is forgotten by a sweep.
 */
#ifndef KF_BROKER_WORKERS_H
#define KF_BROKER_WORKERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "proto/msg.h"

#define KF_WORKERS_HB_MS 1000            /* heartbeat interval told to workers */
#define KF_WORKERS_STALE_AFTER 3         /* intervals of silence */
#define KF_WORKERS_DEAD_AFTER 10
#define KF_WORKERS_FORGET_MS (10u * 60u * 1000u)
#define KF_WORKERS_MAX KF_MSG_MAX_WORKERS

struct kf_worker {
	char id[KF_MSG_MAX_NAME + 1];
	char host[KF_MSG_MAX_NAME + 1];
	uint32_t pid;
	uint64_t incarnation;
	enum kf_worker_state state;        /* from its last heartbeat */
	enum kf_worker_liveness liveness;  /* from the sweep */
	double cpu_process, cpu_host;
	uint64_t rss_bytes;
	uint32_t slots_total, slots_busy;
	uint64_t job_id;
	double job_progress;
	uint64_t last_seen_ns;             /* monotonic: last heartbeat or hello */
	uint64_t dead_since_ns;
	bool requeue_pending;              /* dead; its jobs not yet requeued */
	bool requeue_inflight;             /* the broker's requeue request is running */
	bool others_pending;               /* jobs of its other incarnations still to requeue */
	bool others_inflight;              /* ... and that request is running */
	uint64_t conflict_warned_ns;       /* last WARN about a second process with this id */
	uint64_t lease_refused_ns;         /* monotonic: the last lease refused because it is
	                                    * dead here; a worker still asking is not forgotten */
	bool drain_requested;              /* an operator drained this process: it gets no
	                                    * job (rpc_handlers.c), and the command is sent
	                                    * again with each heartbeat that is not draining */
	bool heard;                        /* a heartbeat came since its hello registered this
	                                    * process or brought it back from the dead: only
	                                    * then is it given jobs (rpc_handlers.c) */
	/* The attempts its last heartbeat listed (protocol 1.2), when
	 * held_listed: kf_workers_lease_lost() reads them. */
	bool held_listed;
	struct kf_msg_held_job *held;
	size_t n_held, held_cap;
	struct kf_worker *hnext;           /* private: hash chain */
};

/* What one heartbeat or hello changed. */
enum kf_worker_event {
	KF_WORKER_EV_NONE = 0,       /* known and alive */
	KF_WORKER_EV_JOINED,         /* first time seen */
	KF_WORKER_EV_RESTARTED,      /* incarnation changed: *old_incarnation set */
	KF_WORKER_EV_RECOVERED,      /* stale -> alive */
	KF_WORKER_EV_REJOINED,       /* dead -> alive */
};

struct kf_workers;

enum kf_err kf_workers_new(struct kf_workers **out);
void kf_workers_free(struct kf_workers *ws);

/* Records a heartbeat. *out is the record; *ev what changed. KF_OK,
 * KF_EBUSY (another incarnation of a live worker: nothing recorded, *out is
 * the live worker's record), KF_EFULL (KF_WORKERS_MAX known: ignored),
 * KF_ENOMEM, KF_EINVAL (empty id). */
enum kf_err kf_workers_heartbeat(struct kf_workers *ws, const struct kf_msg_heartbeat *hb,
	uint64_t now_ns, struct kf_worker **out, enum kf_worker_event *ev,
	uint64_t *old_incarnation);

/* Records a hello (same rules; state idle, no job). A new process, or one
 * that was dead here, is not `heard` until its next heartbeat. */
enum kf_err kf_workers_hello(struct kf_workers *ws, const struct kf_msg_hello_req *hello,
	uint64_t now_ns, struct kf_worker **out, enum kf_worker_event *ev,
	uint64_t *old_incarnation);

/* The record of `id`, or NULL. */
struct kf_worker *kf_workers_find(struct kf_workers *ws, const char *id);

typedef void kf_workers_change_fn(void *arg, struct kf_worker *w,
	enum kf_worker_liveness from, enum kf_worker_liveness to);

/* Ages every worker at now_ns: calls fn (may be NULL) for each liveness
 * change (alive -> stale, alive|stale -> dead), sets requeue_pending on the
 * newly dead, and forgets workers dead for KF_WORKERS_FORGET_MS whose jobs
 * were requeued. fn must not add or remove workers. */
void kf_workers_sweep(struct kf_workers *ws, uint64_t now_ns, kf_workers_change_fn *fn, void *arg);

/*
 * Whether the attempt (job_id, lease_token), which the database has running
 * under process `incarnation` of w, is one w does not hold: w is alive,
 * that process is the one registered, and its last heartbeat (fresh: less
 * than KF_WORKERS_STALE_AFTER intervals old) listed what it holds without
 * it. Such a lease never reached the worker. The caller asks again a while
 * later before acting: an attempt is listed from the moment its lease
 * arrives, so a claim older than a few heartbeats is either listed or lost.
 */
bool kf_workers_lease_lost(const struct kf_worker *w, uint64_t incarnation, uint64_t job_id,
	uint64_t lease_token, uint64_t now_ns);

/* The broker itself did not run for pause_ns (SIGSTOP, a stalled VM, its
 * loop held up): the silence of that time is its own, not the workers'.
 * Moves every record's last heartbeat forward by pause_ns, never past
 * now_ns, so that sweeps judge only the silence outside the pause. */
void kf_workers_forgive(struct kf_workers *ws, uint64_t pause_ns, uint64_t now_ns);

/* Liveness for a silence of age_ns. */
enum kf_worker_liveness kf_workers_liveness(uint64_t age_ns);

/* Whether a heartbeat or hello of `incarnation` at now_ns may stand for the
 * worker whose known incarnation was last heard from at seen_ns: none is
 * known or given, it is the same one, or the known one is no longer alive
 * (the rule above). Pure: the telemetry relay applies it on its own thread. */
bool kf_workers_incarnation_ok(uint64_t known, uint64_t seen_ns, uint64_t incarnation,
	uint64_t now_ns);

size_t kf_workers_count(const struct kf_workers *ws);
/* The i-th record (0 <= i < count), in no particular order. */
struct kf_worker *kf_workers_at(struct kf_workers *ws, size_t i);

/* Workers per liveness. */
void kf_workers_tally(const struct kf_workers *ws, size_t out[KF_WORKER_LIVENESS_COUNT]);

/* Fills up to cap entries (strings borrowed from the records, valid until
 * the next call that changes ws). Returns how many. */
size_t kf_workers_status(const struct kf_workers *ws, uint64_t now_ns,
	struct kf_msg_worker_status *out, size_t cap);

#endif
