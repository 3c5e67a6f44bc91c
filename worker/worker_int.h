/*
 * worker/worker_int.h — what the files of keyforge-worker share (kf__ names).
 *
 *   worker.c   lifecycle, signals, the command subscriber, the heartbeat tick
 *   lane.c     one lane: hello, lease, run the job, progress, hand to the outbox
 *   gate.c     when a lane may lease and when it may run (lease-ahead)
 *   stop.c     why a job stops and what its report says; cancels before their lease
 *   wmetrics.c the worker's metric families
 */
#ifndef KF_WORKER_WORKER_INT_H
#define KF_WORKER_WORKER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus/bus.h"
#include "common/clock.h"
#include "proto/proto.h"
#include "telemetry/log.h"
#include "worker/config.h"
#include "worker/gate.h"
#include "worker/heartbeat.h"
#include "worker/job.h"
#include "worker/outbox.h"
#include "worker/publish.h"
#include "worker/rpc.h"
#include "worker/stop.h"
#include "worker/worker.h"

#define KF__TARGET "keyforge::worker"
#define KF__TARGET_JOB "keyforge::worker::job"
#define KF__TARGET_RPC "keyforge::worker::rpc"
#define KF__METRICS_FULL_EVERY 5     /* ticks (s) between full metric updates */
#define KF__PROGRESS_STEPS 1024      /* engine steps between progress callbacks */

/* Outcomes the worker counts (keyforge_worker_jobs_total{outcome}). */
enum kf__outcome {
	KF__OUT_SUCCEEDED = 0,
	KF__OUT_FAILED,
	KF__OUT_KILLED,
	KF__OUT_DROPPED,
	KF__OUT_HANDED_BACK,
	KF__OUT_COUNT
};

enum kf__method { KF__M_HELLO = 0, KF__M_LEASE, KF__M_PROGRESS, KF__M_COMPLETE, KF__M_COUNT };

struct kf_metrics;
struct kf_counter;
struct kf_gauge;
struct kf_histogram;

struct kf__wmetrics {
	struct kf_metrics *reg;
	struct kf_histogram *score_latency;          /* keyforge_score_latency_ns */
	struct kf_counter *jobs[KF__OUT_COUNT];
	struct kf_gauge *jobs_running;
	struct kf_counter *steps;
	struct kf_histogram *job_seconds;
	struct kf_counter *rpc_failures[KF__M_COUNT];
	struct kf_counter *commands;
	/* mirrors refreshed by a collector */
	struct kf_gauge *outbox_pending;
	struct kf_counter *results_resent;
	struct kf_counter *telemetry_dropped;
	struct kf_counter *corpus_loads;
	struct kf_counter *leased_ahead;
};

/*
 * One lane: a thread (named kf:laneN) that leases, runs and reports one
 * job at a time. A worker has slots + lease_ahead of them, at most `slots`
 * running a job (gate.h); the others hold a job that waits for a slot, or
 * ask for one, or wait to ask.
 */
struct kf__lane {
	struct kf_worker *w;
	unsigned index;
	pthread_t thread;
	bool started;
	struct kf__gate_lane gate;      /* its part in the gate's counts (lane's thread) */
	uint64_t run_ns;                /* when its job got a slot (lane's thread) */
	atomic_bool cancel;             /* the engine's cancel flag */
	struct kf_rpc_call *progress_call;
	atomic_bool progress_busy;
	uint64_t progress_gen;          /* generation the call in flight is about */

	pthread_mutex_t mu;             /* guards the job fields below */
	uint64_t generation;            /* ++ per job: late replies of older jobs are ignored */
	uint64_t job_id;                /* 0 = idle; set from the lease on */
	bool running;                   /* the job has its slot (else it waits for one) */
	uint64_t lease_token;
	uint32_t attempt;
	uint64_t step, total_steps;
	double temperature, cost, best_cost;
	enum kf__stop stop;
	uint64_t last_report_ns;
	uint64_t expire_ns;             /* stop the job here (monotonic); 0 = never */

	/* The attempt this lane holds, for the heartbeat's list (protocol
	 * 1.2): from the lease until its result is acknowledged or in the
	 * outbox — longer than job_id, which ends with the run (under mu). */
	uint64_t held_job, held_token;

	bool lease_id_valid;            /* resend the last lease with its id */
	struct kf_msg_request_id lease_id;
};

struct kf_worker {
	struct kf_worker_config cfg;
	/* The heartbeat's list of held attempts (publisher thread only). */
	struct kf_msg_held_job held_buf[KF_MSG_MAX_HELD];
	char host[KF_MSG_MAX_NAME + 1];
	uint32_t pid;
	uint64_t incarnation;
	uint64_t start_mono_ns;

	struct kf_bus_tls_opts tls;
	struct kf_bus_pub *pub;
	struct kf_bus_sub *cmd_sub;
	struct kf__rpc rpc;
	bool rpc_ready;
	struct kf__publisher *publisher;
	bool sink_added;
	struct kf__outbox *outbox;
	struct kf__engine *engine;
	struct kf__wmetrics m;
	struct kf__load_sampler load;   /* publisher thread only */

	atomic_bool draining;           /* take no new lease; set by kf__worker_drain */
	atomic_bool handback;           /* stop running jobs and give them back */
	atomic_bool quit;               /* background threads exit */
	/* The thread in the signal loop, while it is there: kf__worker_drain
	 * wakes it (SIGHUP, which the loop takes and ignores). */
	pthread_t signal_thread;
	atomic_bool signal_waiting;
	atomic_bool broker_down;        /* last RPC failed in transport (for the log) */
	atomic_bool unheard;            /* a lease was refused: no heartbeat reached the broker */
	/* Leases failed in a row, by any lane (reset by one that succeeds):
	 * the worker backs off as one, not as one stream per lane. */
	atomic_uint lease_failures;
	/* Results the broker answered, by verdict, whichever way they went:
	 * with the next lease request (lane.c) or through the outbox. */
	atomic_uint_fast64_t results_acked, results_dropped, results_refused;
	pthread_mutex_t hello_mu;       /* one hello at a time */
	atomic_bool id_refused;         /* the last hello was refused: our id is a live worker's (set under hello_mu) */
	uint64_t id_in_use_last_ns;     /* the last refusal (under hello_mu) */
	uint64_t id_in_use_refused_ns;  /* refused time counted towards giving up (under hello_mu) */
	atomic_bool id_in_use;          /* gave up on it: stopping, exit status 1 */

	struct kf__lane *lanes;         /* cfg.slots + cfg.lease_ahead of them */
	uint32_t n_lanes;
	struct kf__gate gate;
	atomic_uint_fast64_t ps_per_step; /* pace of the last job with steps (ps), 0 = none yet */
	pthread_t cmd_thread;
	bool cmd_started;
	/* Cancels that came before their lease (stop.h). Taken before a
	 * lane's mu, by the command thread around its look at the lanes and
	 * by a lane beginning a job, so a cancel is either seen by the lane
	 * or noted before the lane looks. */
	pthread_mutex_t early_mu;
	struct kf__early_cancels early;
};

/* ---- lane.c ---------------------------------------------------------------- */

/* Takes no new job from now on: sets draining and wakes whoever waits
 * for it (the lanes at the gate, the signal loop). True for the call that
 * started the drain. Any thread. */
bool kf__worker_drain(struct kf_worker *w);

enum kf_err kf__lane_init(struct kf__lane *s, struct kf_worker *w, unsigned index);
void kf__lane_release(struct kf__lane *s);
void *kf__lane_main(void *arg);
/* Tells the lane's job to stop for `why` when it is job_id (and lease_token
 * matches, 0 = any). True when a job was told. Any thread. */
bool kf__lane_stop_job(struct kf__lane *s, uint64_t job_id, uint64_t lease_token,
	enum kf__stop why);
/* Snapshot of the lane's running job for the heartbeat; false when it runs
 * none (idle, or holding a job that waits for a slot). */
bool kf__lane_peek(struct kf__lane *s, uint64_t *job_id, double *progress, double *best_cost);
/* The attempt the lane holds (see held_job); false when none. */
bool kf__lane_held(struct kf__lane *s, struct kf_msg_held_job *out);
/* A result's final verdict, from a lane or the outbox: counts it. */
void kf__on_result_done(void *ctx, const struct kf__completion *c, enum kf__verdict v);

/* Notes an RPC's transport result for the "broker unreachable" log lines. */
void kf__rpc_outcome(struct kf_worker *w, enum kf__method m, enum kf_err err);

/* ---- wmetrics.c -------------------------------------------------------------- */

enum kf_err kf__wmetrics_init(struct kf__wmetrics *m, struct kf_worker *w);
void kf__wmetrics_release(struct kf__wmetrics *m);
void kf__wmetrics_outcome(struct kf__wmetrics *m, enum kf__outcome o);
void kf__wmetrics_rpc_failure(struct kf__wmetrics *m, enum kf__method method);
void kf__wmetrics_job_done(struct kf__wmetrics *m, uint64_t steps, double seconds);
void kf__wmetrics_running(struct kf__wmetrics *m, int delta);
void kf__wmetrics_command(struct kf__wmetrics *m);
void kf__wmetrics_score(void *ctx, uint64_t latency_ns, double cost); /* anneal observer */

#endif
