/*
 * worker/gate.h — when a worker runs a job it holds, and when it may ask the
 * broker for another: the rule that lets a worker lease ahead.
 *
 * A worker has `slots` slots (jobs run at once) and `slots + ahead` lanes,
 * threads that each lease, run and report one job at a time. A lane that
 * holds a leased job runs it only when a slot is free; so at most `ahead`
 * jobs wait on the worker, leased but not started. That lets a short job's
 * lease travel while the job before it runs: with one slot, the lanes of a
 * busy worker keep two requests in flight instead of one (docs/operations.md
 * "Lease ahead"; the figures in docs/performance.md, item 9).
 *
 * A worker must not sit on a job that another worker could start now. So
 * a lane asks ahead (beyond the free slots) only when every job the worker
 * holds is expected to end within KF__GATE_HORIZON_NS — a zero-step job at
 * once, a longer one from its own progress near its end — and a job leased
 * ahead waits about that long at most. A second ask ahead, while one is
 * still out, is made only when the last job ran within the horizon too: a
 * stream of short jobs. An ask ahead does not wait at the broker (a job now
 * or none), so an idle worker parks no more lease requests than it has
 * slots, as without lease-ahead.
 *
 * Counts, all under mu: running (lanes running a job, ≤ slots), held
 * (lanes holding a job that waits for a slot), asking (lanes with a
 * request out that may bring a job), ending (jobs, held or running,
 * expected to end within the horizon; each lane counts its job once, by
 * its `ending` flag) and whether the last job was short. Thread-safe.
 */
#ifndef KF_WORKER_GATE_H
#define KF_WORKER_GATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* A job expected to end within this is "ending": a slot about to come
 * free. About three times a lease's round trip through a busy hive (1.7 ms,
 * docs/performance.md "How long one slot waits"), so that the next job's
 * lease arrives by the time the slot frees. */
#define KF__GATE_HORIZON_NS (5ull * 1000000ull)

struct kf__gate_counts {
	uint32_t slots, ahead;
	uint32_t running, held, asking, ending;
	bool short_jobs;       /* the last job ran within the horizon */
};

struct kf__gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;     /* a count changed: a slot freed, a job is ending */
	struct kf__gate_counts n;
	const atomic_bool *stop; /* the worker is draining: asks answer KF__GATE_NO */
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
 * after_job), and — if another ask is out already — the last job ran
 * within the horizon (short jobs: what those asks bring will end soon
 * too). An ask ahead does not wait at the broker, so an idle worker parks
 * no more lease requests than it has slots.
 */
enum kf__gate_ask kf__gate_may_ask(const struct kf__gate_counts *n, bool after_job);

/* Pure: is a job of total_steps, with done of them taken in elapsed_ns,
 * expected to end within the horizon? Its own pace once it has one, else
 * ps_per_step (picoseconds a step of the worker's last jobs; 0 = not
 * measured yet). A zero-step job is; an unmeasured one is not until its
 * own progress says so. */
bool kf__gate_predict_ending(uint64_t total_steps, uint64_t done, uint64_t elapsed_ns,
	uint64_t ps_per_step);

void kf__gate_init(struct kf__gate *g, uint32_t slots, uint32_t ahead, const atomic_bool *stop);
void kf__gate_release(struct kf__gate *g);

/* Blocks until the lane may ask (counted in asking) or the worker drains
 * (KF__GATE_NO). */
enum kf__gate_ask kf__gate_ask(struct kf__gate *g);
/* For the report of the job a lane has just ended: the same without
 * waiting (KF__GATE_NO: report without asking). */
enum kf__gate_ask kf__gate_try_ask(struct kf__gate *g);
/* The answer to an ask of kind `ask` came (or the request failed): got_job
 * says whether the lane now holds a job, job_ending whether that job is
 * expected to end within the horizon (then counted in ending, and
 * *lane_ending set). */
void kf__gate_answered(struct kf__gate *g, enum kf__gate_ask ask, bool got_job, bool job_ending,
	bool *lane_ending);

/* Blocks until a slot is free and takes it for the lane's held job. Not
 * interrupted by draining: a leased job runs (or is handed back by it). */
void kf__gate_run(struct kf__gate *g);
/* The lane's running job is now expected to end within the horizon. */
void kf__gate_ending(struct kf__gate *g, bool *lane_ending);
/* The lane's job ended after run_ns with its slot: the slot is free. */
void kf__gate_done(struct kf__gate *g, bool *lane_ending, uint64_t run_ns);

#endif
