/*
 * gate.c — the lease-ahead rule (gate.h): slots taken and freed, asks
 * admitted, under one mutex per worker.
 */
#include "worker/gate.h"


#include "common/clock.h"

enum kf__gate_ask kf__gate_may_ask(const struct kf__gate_counts *n, bool after_job)
{
	uint64_t free_slots = n->running < n->slots ? n->slots - n->running : 0;
	uint64_t demand = (uint64_t)n->held + n->asking;
	uint64_t budget;

	if (demand < free_slots)
		return KF__GATE_SLOT; /* a free slot: as without lease-ahead */
	/* Ahead: every job in hand ends soon, a job runs (or just ended) ... */
	if ((uint64_t)n->running + demand >= (uint64_t)n->slots + n->ahead ||
	    n->ending < (uint64_t)n->running + n->held || (n->running == 0 && !after_job))
		return KF__GATE_NO;
	/* ... and the job this ask brings would not wait past the horizon:
	 * the jobs in hand, and the asks out taken as long as the last job,
	 * shared among the slots. Divided rather than multiplied: no overflow. */
	budget = KF__GATE_HORIZON_NS * n->slots;
	if (n->ending_ns > budget)
		return KF__GATE_NO;
	budget -= n->ending_ns;
	if (n->asking && (n->last_ns == KF__GATE_UNKNOWN || n->last_ns > budget / n->asking))
		return KF__GATE_NO;
	return KF__GATE_AHEAD;
}

uint64_t kf__gate_predict_ns(uint64_t total_steps, uint64_t done, uint64_t elapsed_ns,
	uint64_t ps_per_step)
{
	uint64_t left = total_steps > done ? total_steps - done : 0;
	long double pace, ns; /* ps a step; ns left */

	if (left == 0)
		return 0;
	/* The job's own pace once it has one, else the last jobs'. */
	if (done > 0 && elapsed_ns > 0)
		pace = (long double)elapsed_ns * 1000.0L / (long double)done;
	else if (ps_per_step > 0)
		pace = (long double)ps_per_step;
	else
		return KF__GATE_UNKNOWN;
	ns = (long double)left * pace / 1000.0L;
	return ns < (long double)(KF__GATE_UNKNOWN / 2) ? (uint64_t)ns : KF__GATE_UNKNOWN / 2;
}

void kf__gate_init(struct kf__gate *g, uint32_t slots, uint32_t ahead, const atomic_bool *stop)
{
	*g = (struct kf__gate){ .n = { .slots = slots, .ahead = ahead, .last_ns = KF__GATE_UNKNOWN },
		.stop = stop };
	pthread_mutex_init(&g->mu, NULL);
	kf_clock_mono_cond_init(&g->ask_cv);
	kf_clock_mono_cond_init(&g->slot_cv);
	kf_clock_mono_cond_init(&g->nap_cv);
	atomic_init(&g->leased_ahead, 0);
}

void kf__gate_wake(struct kf__gate *g)
{
	pthread_mutex_lock(&g->mu);
	pthread_cond_broadcast(&g->ask_cv);
	pthread_cond_broadcast(&g->slot_cv);
	pthread_cond_broadcast(&g->nap_cv);
	pthread_mutex_unlock(&g->mu);
}

void kf__gate_release(struct kf__gate *g)
{
	pthread_cond_destroy(&g->ask_cv);
	pthread_cond_destroy(&g->slot_cv);
	pthread_cond_destroy(&g->nap_cv);
	pthread_mutex_destroy(&g->mu);
}

/* Under mu: the answer, counted in asking unless it is no. */
static enum kf__gate_ask ask_locked(struct kf__gate *g, bool after_job)
{
	enum kf__gate_ask a = atomic_load(g->stop) ? KF__GATE_NO : kf__gate_may_ask(&g->n, after_job);

	if (a != KF__GATE_NO)
		g->n.asking++;
	return a;
}

/* Under mu, after the counts changed: wakes one lane waiting to ask if a
 * lane may ask now. Every waiter asks the same question (after_job false),
 * so when the answer is no, none would get further. */
static void wake_asker_locked(struct kf__gate *g)
{
	if (kf__gate_may_ask(&g->n, false) != KF__GATE_NO)
		pthread_cond_signal(&g->ask_cv);
}

enum kf__gate_ask kf__gate_ask(struct kf__gate *g)
{
	enum kf__gate_ask a;

	pthread_mutex_lock(&g->mu);
	/* A change of the counts that lets a lane ask wakes one, and
	 * kf__gate_wake all for the stop flag: an idle lane sleeps until
	 * there is news for it. */
	while ((a = ask_locked(g, false)) == KF__GATE_NO && !atomic_load(g->stop))
		pthread_cond_wait(&g->ask_cv, &g->mu);
	if (a != KF__GATE_NO)
		wake_asker_locked(g); /* room for one more? pass it on */
	pthread_mutex_unlock(&g->mu);
	return a;
}

enum kf__gate_ask kf__gate_try_ask(struct kf__gate *g)
{
	enum kf__gate_ask a;

	pthread_mutex_lock(&g->mu);
	a = ask_locked(g, true);
	pthread_mutex_unlock(&g->mu);
	return a;
}

/* Under mu: the lane's job counts as ending, predicted at ns. */
static void count_ending(struct kf__gate *g, struct kf__gate_lane *lane, uint64_t ns)
{
	lane->ending = true;
	lane->ns = ns;
	g->n.ending++;
	g->n.ending_ns += ns;
}

void kf__gate_answered(struct kf__gate *g, enum kf__gate_ask ask, bool got_job, uint64_t job_ns,
	struct kf__gate_lane *lane)
{
	pthread_mutex_lock(&g->mu);
	if (g->n.asking)
		g->n.asking--;
	if (got_job) {
		if (ask == KF__GATE_AHEAD) {
			atomic_fetch_add(&g->leased_ahead, 1);
			g->nap_gen++;  /* jobs are queued: the nappers ask too */
			pthread_cond_broadcast(&g->nap_cv);
		}
		g->n.held++;
		if (job_ns <= KF__GATE_HORIZON_NS && !lane->ending)
			count_ending(g, lane, job_ns);
	}
	wake_asker_locked(g); /* fewer asking: another lane may ask */
	pthread_mutex_unlock(&g->mu);
}

void kf__gate_nap(struct kf__gate *g, uint32_t ms)
{
	struct timespec until = kf_clock_mono_timespec(kf_clock_mono_ns() +
						       (uint64_t)ms * 1000000u);
	uint64_t gen;

	pthread_mutex_lock(&g->mu);
	gen = g->nap_gen;
	while (g->nap_gen == gen && !atomic_load(g->stop) &&
	       pthread_cond_timedwait(&g->nap_cv, &g->mu, &until) == 0)
		;
	pthread_mutex_unlock(&g->mu);
}

void kf__gate_run(struct kf__gate *g)
{
	pthread_mutex_lock(&g->mu);
	while (g->n.running >= g->n.slots)
		pthread_cond_wait(&g->slot_cv, &g->mu);
	if (g->n.held)
		g->n.held--;
	g->n.running++;
	pthread_mutex_unlock(&g->mu);
}

void kf__gate_ending(struct kf__gate *g, struct kf__gate_lane *lane, uint64_t left_ns)
{
	/* The lane's own part: only its thread writes it, so no lock to
	 * look, and most progress callbacks of a long job end here. */
	if (lane->ending || left_ns > KF__GATE_HORIZON_NS)
		return;
	pthread_mutex_lock(&g->mu);
	count_ending(g, lane, left_ns);
	wake_asker_locked(g);
	pthread_mutex_unlock(&g->mu);
}

void kf__gate_done(struct kf__gate *g, struct kf__gate_lane *lane, uint64_t run_ns)
{
	pthread_mutex_lock(&g->mu);
	g->n.last_ns = run_ns;
	if (g->n.running)
		g->n.running--;
	if (lane->ending) {
		if (g->n.ending)
			g->n.ending--;
		g->n.ending_ns -= lane->ns <= g->n.ending_ns ? lane->ns : g->n.ending_ns;
	}
	*lane = (struct kf__gate_lane){ 0 };
	pthread_cond_signal(&g->slot_cv); /* a held job may run */
	wake_asker_locked(g);
	pthread_mutex_unlock(&g->mu);
}
