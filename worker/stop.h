/*
 * worker/stop.h — why a job stops, and what its report then says.
 *
 * The rules a lane applies when several reasons to stop meet (a kill during
 * a hand-back, a stale lease during anything), the outcome a run settles
 * on from its stop reason and the engine's status, and the memo of cancels
 * that reach the worker before the lease they are about. Pure: the unit
 * tests hold them (tests/unit/test_worker.c); lane.c and worker.c use them
 * under their own locks.
 */
#ifndef KF_WORKER_STOP_H
#define KF_WORKER_STOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Why a running job was told to stop. */
enum kf__stop {
	KF__STOP_NONE = 0,
	KF__STOP_KILL,       /* operator kill: complete as killed with the best so far */
	KF__STOP_DROP,       /* stale lease: abandon silently */
	KF__STOP_HANDBACK,   /* shutting down: give it back */
	KF__STOP_EXPIRE,     /* the job's deadline_ms is up: report it expired with the
			      * best so far (protocol 1.3) */
};

/* The reason that stands when `why` arrives while `cur` holds. The first
 * reason stays, with two exceptions: a stale lease (DROP) trumps all, as
 * nothing may be reported then; and a kill trumps a hand-back, as a
 * released job would run again elsewhere although the operator killed it. */
enum kf__stop kf__stop_merge(enum kf__stop cur, enum kf__stop why);

/* What a run reports, from its stop reason and kf__job_run's status. */
enum kf__settle {
	KF__SETTLE_DROPPED = 0, /* nothing: the attempt is no longer ours */
	KF__SETTLE_RELEASED,    /* handed back: pending again, no attempt charged */
	KF__SETTLE_EXPIRED,     /* failed at its deadline, best so far kept */
	KF__SETTLE_KILLED,
	KF__SETTLE_SUCCEEDED,
	KF__SETTLE_FAILED,
};

/* A run that finished (KF_OK) during a hand-back reports its result: the
 * work is done, and giving it back would only have it done again. */
enum kf__settle kf__stop_settle(enum kf__stop stop, enum kf_err err);

/*
 * Cancels that came before their lease. The broker sends a cancel on
 * cmd.<worker> once, as soon as a kill commits; a kill right after the
 * claim can beat the lease's reply (another socket, another thread), find
 * no lane running the job, and be lost until the first progress reply
 * carries it again, a progress interval later — and never for a job that
 * ends before its first report. The command thread notes such a cancel
 * here, and the lane that begins the job takes it. A few slots are
 * plenty: each waits for a reply already on its way, and an entry older
 * than KF__EARLY_CANCEL_NS is ignored.
 */
#define KF__EARLY_CANCELS 8
#define KF__EARLY_CANCEL_NS (10ull * 1000 * 1000 * 1000)

struct kf__early_cancels {
	struct {
		uint64_t job_id, lease_token, at_ns; /* job_id 0: free */
		bool drop;
	} e[KF__EARLY_CANCELS];
	size_t next; /* the slot the next note takes (the oldest) */
};

/* Notes a cancel of the attempt (job_id, lease_token); one without a
 * token (0) is not kept, as it could stop a later attempt of the job. */
void kf__early_note(struct kf__early_cancels *m, uint64_t job_id, uint64_t lease_token,
	bool drop, uint64_t now_ns);
/* The stop noted for this attempt (and forgets it), or KF__STOP_NONE. */
enum kf__stop kf__early_take(struct kf__early_cancels *m, uint64_t job_id, uint64_t lease_token,
	uint64_t now_ns);

#endif
