/*
 * worker/gate.h — when a worker runs a job it holds, and when it may ask the
 * broker for another: the rule that lets a worker lease ahead.
 *
 * A worker has `slots` slots (jobs run at once) and `slots + ahead` lanes,
 * threads that each lease, run and report one job at a time. A lane that
 * holds a leased job runs it only when a slot is free; so at most `ahead`
 * jobs wait on the worker, leased but not started. That lets a short job's
 * lease travel while the job before it runs: with one slot, the lanes of a
 * worker busy with short jobs keep up to 1 + ahead requests in flight
 * instead of one, and the broker commits that many together
 * (docs/operations.md "Lease ahead"; docs/performance.md, item 9).
 *
 * A worker must not sit on a job that another worker could start now. So
 * a lane asks ahead (beyond the free slots) only when the jobs the worker
 * holds are all expected to end soon, and together within
 * KF__GATE_HORIZON_NS per slot: a job leased ahead then waits about that
 * long at most, however many are leased ahead. A zero-step job is expected
 * to take no time, a longer one is predicted from its own progress (near
 * its end) or, not started yet, from the pace of the worker's last jobs.
 * Asks still out count as jobs as long as the last one: a stream of
 * zero-step jobs fills all `ahead` lanes, a stream of 3 ms jobs one of
 * them, and a job of seconds is leased ahead only in its last 5 ms. An ask
 * ahead does not wait at the broker (a job now or none), so an idle worker
 * parks no more lease requests than it has slots, as without lease-ahead.
 *
 * Counts, all under mu: running (lanes running a job, ≤ slots), held
 * (lanes holding a job that waits for a slot), asking (lanes with a
 * request out that may bring a job), ending (jobs, held or running,
 * expected to end within the horizon; each lane counts its job once, by
 * its struct kf__gate_lane) with the sum of their predicted times, and how
 * long the last job ran. Thread-safe.
 */
#ifndef KF_WORKER_GATE_H
#define KF_WORKER_GATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* A job expected to end within this is "ending": a slot about to come
 * free; and the jobs a worker holds must end within this, together (per
 * slot), before it asks ahead. About three times a lease's round trip
 * through a busy hive (1.7 ms, docs/performance.md "How long one slot
 * waits"), so that the next job's lease arrives by the time the slot frees. */
#define KF__GATE_HORIZON_NS (5ull * 1000000ull)

/* A time nobody can predict yet (a job with steps before any pace is
 * known; the last job's run before there was one). */
#define KF__GATE_UNKNOWN UINT64_MAX

struct kf__gate_counts {
	uint32_t slots, ahead;
	uint32_t running, held, asking, ending;
	uint64_t ending_ns;    /* the ending jobs' predicted times, as each was counted */
	uint64_t last_ns;      /* how long the last job ran, or KF__GATE_UNKNOWN */
};

/* A lane's part in the counts: whether its job is counted as ending, and
 * the time it was predicted at then (what kf__gate_done takes back). Only
 * the lane's own thread passes it. */
struct kf__gate_lane {
	bool ending;
	uint64_t ns;
};

struct kf__gate {
	pthread_mutex_t mu;
	/* Lanes waiting to ask all wait for the same condition, so a change
	 * of the counts wakes one of them, and only when one may ask; the one
	 * admitted wakes the next if another may (a broadcast woke every idle
	 * lane of the worker, two or three times a job, to find the answer
	 * unchanged). Lanes holding a job wait on their own, one woken per
	 * slot freed. */
	pthread_cond_t ask_cv;
	pthread_cond_t slot_cv;
	/* Lanes napping after an ask that found no job (kf__gate_nap). An ask
	 * ahead never waits at the broker, so one that brings a job means
	 * jobs were queued: the nappers are woken to ask too (nap_gen). */
	pthread_cond_t nap_cv;
	uint64_t nap_gen;
	struct kf__gate_counts n;
	const atomic_bool *stop; /* the worker is draining: asks answer KF__GATE_NO;
	                          * its setter calls kf__gate_wake */
	atomic_uint_fast64_t leased_ahead; /* jobs an ask ahead brought */
};

enum kf__gate_ask {
	KF__GATE_NO = 0,
	KF__GATE_SLOT,   /* for a free slot: may wait at the broker (long-poll) */
	KF__GATE_AHEAD,  /* ahead of a slot: must not wait (a job now, or none) */
};

/*
 * Pure: may a lane ask for a job now, and which kind of ask? SLOT when
 * what is held and asked for is less than the free slots (as without
 * lease-ahead). Else AHEAD, up to `ahead` jobs beyond the slots, when every
 * job in hand is ending, a job runs (or the lane has just ended one:
 * after_job), and the job this ask brings would wait no longer than the
 * horizon: the predicted times of the jobs in hand, plus the asks already
 * out taken as long as the last job, shared among the slots. An ask ahead
 * does not wait at the broker, so an idle worker parks no more lease
 * requests than it has slots.
 */
enum kf__gate_ask kf__gate_may_ask(const struct kf__gate_counts *n, bool after_job);

/* Pure: how long a job of total_steps, with done of them taken in
 * elapsed_ns, is expected to run on: from its own pace once it has one,
 * else ps_per_step (picoseconds a step of the worker's last jobs; 0 = not
 * measured yet). 0 for a zero-step job or one at its end; KF__GATE_UNKNOWN
 * when there is no pace to go by. */
uint64_t kf__gate_predict_ns(uint64_t total_steps, uint64_t done, uint64_t elapsed_ns,
	uint64_t ps_per_step);

void kf__gate_init(struct kf__gate *g, uint32_t slots, uint32_t ahead, const atomic_bool *stop);
void kf__gate_release(struct kf__gate *g);

/* The stop flag was set: lanes waiting in kf__gate_ask look at it. Whoever
 * sets the flag calls this (lanes wait without a timeout). */
void kf__gate_wake(struct kf__gate *g);

/* Blocks until the lane may ask (counted in asking) or the worker drains
 * (KF__GATE_NO; see kf__gate_wake). */
enum kf__gate_ask kf__gate_ask(struct kf__gate *g);
/* For the report of the job a lane has just ended: the same without
 * waiting (KF__GATE_NO: report without asking). */
enum kf__gate_ask kf__gate_try_ask(struct kf__gate *g);
/* The answer to an ask of kind `ask` came (or the request failed): got_job
 * says whether the lane now holds a job, job_ns how long that job is
 * predicted to run (kf__gate_predict_ns); within the horizon it is counted
 * as ending, in the lane's part. */
void kf__gate_answered(struct kf__gate *g, enum kf__gate_ask ask, bool got_job, uint64_t job_ns,
	struct kf__gate_lane *lane);

/* Sleeps up to ms after an ask that brought no job, so that a lane does
 * not ask in a loop; ends early when an ask ahead of this worker brings a
 * job (jobs are queued: a backlog drains with every lane asking, not at the
 * pace of one report's round trip) or when the worker drains. */
void kf__gate_nap(struct kf__gate *g, uint32_t ms);

/* Blocks until a slot is free and takes it for the lane's held job. Not
 * interrupted by draining: a leased job runs (or is handed back by it). */
void kf__gate_run(struct kf__gate *g);
/* The lane's running job is now expected to end within left_ns
 * (kf__gate_predict_ns): within the horizon it is counted as ending, if it
 * was not yet. */
void kf__gate_ending(struct kf__gate *g, struct kf__gate_lane *lane, uint64_t left_ns);
/* The lane's job ended after run_ns (KF__GATE_UNKNOWN: it never ran) with
 * its slot: the slot is free, and the lane's part is taken back. */
void kf__gate_done(struct kf__gate *g, struct kf__gate_lane *lane, uint64_t run_ns);

#endif
