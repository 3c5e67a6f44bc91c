/*
 * reaper.c — the broker's periodic work, once a second, inside a `reaper`
 * span: worker liveness (stale, dead, requeue), retry promotion, job
 * deadlines, orphaned jobs, job counts; then status.cluster and the
 * broker's metric update. Also the heartbeat path, which feeds liveness.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_int.h"
#include "broker/metrics_pub.h"
#include "common/clock.h"
#include "proto/topic.h"

/* A sweep in flight: the span it belongs to and what it is about. */
struct sweep {
	struct kf_broker *b;
	struct kf_span *span;
	const char *reason;
	char worker[KF_MSG_MAX_NAME + 1];
};

static struct sweep *sweep_new(struct kf_broker *b, const char *reason, const char *worker)
{
	struct sweep *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->b = b;
	s->span = kf_span_ref(kf_span_current());
	s->reason = reason;
	snprintf(s->worker, sizeof(s->worker), "%s", worker ? worker : "");
	return s;
}

static void sweep_free(struct sweep *s)
{
	kf_span_close(s->span);
	free(s);
}

/* One job moved by a sweep: log it, count it, announce it. Returns true
 * when it became claimable. */
static bool sweep_change(struct kf_broker *b, enum kf_store_op op, const struct kf_store_change *ch,
	const char *reason)
{
	uint64_t id = (uint64_t)ch->job_id;
	bool claimable = ch->state == KF_JOB_PENDING;

	if (op == KF_STORE_PROMOTE) {
		KF_DEBUG(KF__TARGET_REAPER, "job ready for another attempt", KF_U64("job_id", id),
			 KF_I64("attempt", ch->attempt));
		kf__job_event(b, id, ch->state, (uint32_t)ch->attempt, NULL, 0, NAN, NULL);
		return claimable;
	}
	if (ch->state == KF_JOB_PENDING)
		KF_WARN(KF__TARGET_REAPER, "job retrying", KF_U64("job_id", id),
			KF_I64("attempt", ch->attempt),
			KF_STR("worker_id", ch->worker_id ? ch->worker_id : ""),
			KF_STR("reason", reason));
	else if (ch->state == KF_JOB_FAILED)
		KF_WARN(KF__TARGET_REAPER, op == KF_STORE_EXPIRE ? "job deadline exceeded" : "job failed",
			KF_U64("job_id", id), KF_I64("attempt", ch->attempt),
			KF_STR("reason", reason));
	else if (ch->state == KF_JOB_KILLED)
		KF_INFO(KF__TARGET_REAPER, "job killed", KF_U64("job_id", id));
	kf__job_outcome(b, ch->state);
	kf__job_event(b, id, ch->state, (uint32_t)ch->attempt, ch->worker_id, 0, NAN, reason);
	/* The attempt is over: should its worker still be running it, stop it.
	 * Only a kill is the job's outcome; anything else ended the attempt
	 * here, and the worker's report of it would be refused. */
	kf__cmd_cancel(b, ch->worker_id, id, ch->lease_token,
		       ch->state == KF_JOB_KILLED ? NULL : reason);
	kf__lease_forget(b, id);
	return claimable;
}

static void on_sweep(void *arg, const struct kf_store_result *res)
{
	struct sweep *s = arg;
	struct kf_broker *b = s->b;
	uint32_t claimable = 0;

	kf_span_enter(s->span);
	if (res->err == KF_OK) {
		for (size_t i = 0; i < res->sweep.n_changes; i++)
			claimable += sweep_change(b, res->op, &res->sweep.changes[i], s->reason);
	} else if (res->err != KF_EUNAVAIL && res->err != KF_ECANCELED) {
		KF_WARN(KF__TARGET_REAPER, "sweep failed", KF_STR("op", kf_store_op_name(res->op)),
			KF_ERR(res->err), KF_STR("detail", res->message ? res->message : ""));
	}
	switch (res->op) {
	case KF_STORE_PROMOTE:
		b->promote_inflight = false;
		if (res->err == KF_OK && res->sweep.next_due_ms >= 0)
			b->promote_at_ns = kf_clock_mono_ns() +
				(uint64_t)res->sweep.next_due_ms * KF_NS_PER_MS;
		break;
	case KF_STORE_EXPIRE:
		b->expire_inflight = false;
		break;
	case KF_STORE_JOB_LOST:
		break;
	default: { /* KF_STORE_REQUEUE_WORKER, KF_STORE_REQUEUE_OTHERS */
		struct kf_worker *w = kf_workers_find(b->workers, s->worker);
		bool others = res->op == KF_STORE_REQUEUE_OTHERS;

		if (w) {
			*(others ? &w->others_inflight : &w->requeue_inflight) = false;
			if (res->err == KF_OK)
				*(others ? &w->others_pending : &w->requeue_pending) = false;
			else if (w->liveness != KF_WORKER_DEAD)
				/* A restart's requeue failed (the database away):
				 * the tick retries it as the requeue of the other
				 * incarnations' jobs — by then the new process may
				 * hold jobs of its own. */
				w->others_pending = true;
		}
		break;
	}
	}
	if (claimable)
		kf__lease_wake(b, claimable);
	kf_span_exit(s->span);
	sweep_free(s);
}

void kf__requeue_worker(struct kf_broker *b, const char *worker_id, const char *reason)
{
	struct sweep *s = sweep_new(b, reason, worker_id);
	struct kf_worker *w = kf_workers_find(b->workers, worker_id);

	if (!s)
		return;
	if (kf_store_requeue_worker(b->store, worker_id, reason, on_sweep, s) != KF_OK) {
		sweep_free(s);
		return;
	}
	if (w)
		w->requeue_inflight = true;
}

void kf__requeue_others(struct kf_broker *b, struct kf_worker *w)
{
	struct sweep *s;

	w->others_pending = w->incarnation != 0;
	if (!w->others_pending || w->others_inflight || !(s = sweep_new(b, "worker restarted", w->id)))
		return;
	if (kf_store_requeue_others(b->store, w->id, w->incarnation, "worker restarted", on_sweep,
				    s) != KF_OK) {
		sweep_free(s);
		return;
	}
	w->others_inflight = true;
}

/* ---- workers -------------------------------------------------------------------------- */

static void on_upsert(void *arg, const struct kf_store_result *res)
{
	(void)arg;
	if (res->err && res->err != KF_EUNAVAIL && res->err != KF_ECANCELED)
		KF_DEBUG(KF__TARGET, "worker not recorded", KF_ERR(res->err));
}

static void record_worker(struct kf_broker *b, const struct kf_worker *w)
{
	struct kf_store_worker_args a = { .id = w->id, .host = w->host, .pid = (int32_t)w->pid,
		.incarnation = (int64_t)w->incarnation, .slots = (int32_t)w->slots_total,
		.liveness = w->liveness };

	kf_store_worker_upsert(b->store, &a, on_upsert, b);
}

void kf__worker_event(struct kf_broker *b, struct kf_worker *w, enum kf_worker_event ev,
	uint64_t old_incarnation, const char *version, bool record)
{
	switch (ev) {
	case KF_WORKER_EV_NONE:
		return;
	case KF_WORKER_EV_JOINED:
		KF_INFO(KF__TARGET, "worker joined", KF_STR("worker_id", w->id),
			KF_STR("host", w->host), KF_U64("pid", w->pid),
			KF_STR("version", version ? version : ""));
		break;
	case KF_WORKER_EV_RESTARTED:
		/* The old process is gone with whatever it held. */
		KF_WARN(KF__TARGET, "worker restarted", KF_STR("worker_id", w->id),
			KF_U64("old_incarnation", old_incarnation),
			KF_U64("incarnation", w->incarnation));
		kf__requeue_worker(b, w->id, "worker restarted");
		break;
	case KF_WORKER_EV_RECOVERED:
		KF_INFO(KF__TARGET, "worker recovered", KF_STR("worker_id", w->id));
		return;
	case KF_WORKER_EV_REJOINED:
		KF_INFO(KF__TARGET, "worker rejoined", KF_STR("worker_id", w->id));
		break;
	}
	if (record)
		record_worker(b, w);
}

void kf__on_heartbeat(struct kf_broker *b, struct kf_msg *msg, uint64_t now_ns)
{
	struct kf_worker *w = kf_workers_find(b->workers, msg->heartbeat.worker_id);
	bool was_heard = w && w->heard;
	enum kf_worker_event ev;
	uint64_t old_inc;

	switch (kf_workers_heartbeat(b->workers, &msg->heartbeat, now_ns, &w, &ev, &old_inc)) {
	case KF_OK:
		kf__worker_event(b, w, ev, old_inc, NULL, true);
		/* Commands are pub/sub: until the worker says it drains, say it
		 * again, once a heartbeat. */
		if (w->drain_requested && msg->heartbeat.state != KF_WORKER_DRAINING)
			kf__cmd_drain(b, w->id);
		/* Its leases were held until now (kf__lease_fenced): let one look. */
		if (!was_heard && b->n_parked)
			kf__lease_wake(b, 1);
		break;
	case KF_EBUSY:
		kf_counter_inc(b->m.dropped[KF_BM_DROP_ID_CONFLICT]);
		kf__worker_id_conflict(w, msg->heartbeat.host, msg->heartbeat.pid, "heartbeat", now_ns);
		break;
	default:
		break;
	}
	kf_msg_free(msg);
}

#define ID_CONFLICT_WARN_NS (10 * 1000 * KF_NS_PER_MS)

void kf__worker_id_conflict(struct kf_worker *w, const char *host, uint32_t pid,
	const char *via, uint64_t now_ns)
{
	if (w->conflict_warned_ns && now_ns - w->conflict_warned_ns < ID_CONFLICT_WARN_NS)
		return;
	w->conflict_warned_ns = now_ns;
	KF_WARN(KF__TARGET, "worker id in use", KF_STR("worker_id", w->id),
		KF_STR("host", w->host), KF_U64("pid", w->pid), KF_STR("other_host", host ? host : ""),
		KF_U64("other_pid", pid), KF_STR("refused", via),
		KF_STR("hint", "a second worker was started with the id of a live one; "
		       "give each worker its own --id"));
}

static void on_liveness(void *arg, struct kf_worker *w, enum kf_worker_liveness from,
	enum kf_worker_liveness to)
{
	uint64_t silent_ms = (kf_clock_mono_ns() - w->last_seen_ns) / KF_NS_PER_MS;

	(void)arg;
	(void)from;
	if (to == KF_WORKER_STALE)
		KF_WARN(KF__TARGET_REAPER, "worker stale", KF_STR("worker_id", w->id),
			KF_U64("silent_ms", silent_ms));
	else
		KF_WARN(KF__TARGET_REAPER, "worker dead", KF_STR("worker_id", w->id),
			KF_U64("silent_ms", silent_ms), KF_U64("job_id", w->job_id));
}

/* ---- orphans: running jobs whose worker no broker has seen lately (it died
 * while its broker was down). Brokers share the database (DESIGN.md §1):
 * each records in workers.last_seen, every KF__ORPHAN_EVERY ticks, the
 * workers it hears from, and a job is an orphan only when its worker's
 * record is older than ORPHAN_STALE_MS — a worker attached to another
 * broker is not. Checked once this broker has been up long enough for every
 * live worker to have sent it a heartbeat. ---------------------------------- */

/* Dead here (KF_WORKERS_DEAD_AFTER heartbeats missed), plus two refresh
 * periods of the broker that may still be hearing from it. */
#define ORPHAN_STALE_MS \
	((int64_t)KF_WORKERS_DEAD_AFTER * KF_WORKERS_HB_MS + 2 * KF__ORPHAN_EVERY * KF__TICK_MS)

static void on_orphans(void *arg, const struct kf_store_result *res)
{
	struct kf_broker *b = arg;

	b->orphans_inflight = false;
	if (res->err)
		return;
	for (size_t i = 0; i < res->orphans.n; i++) {
		const char *wid = res->orphans.worker_ids[i];
		struct kf_worker *w = kf_workers_find(b->workers, wid);

		/* Alive here after all (its record is written a tick late), or
		 * already being requeued. */
		if (!*wid || (w && (w->liveness != KF_WORKER_DEAD || w->requeue_inflight)))
			continue;
		kf__requeue_worker(b, wid, w ? "worker dead" : "worker unknown to this broker");
	}
}

static void on_seen(void *arg, const struct kf_store_result *res)
{
	(void)arg;
	(void)res; /* a failure is retried by the next refresh */
}

/* workers.last_seen = now for every worker not dead here. */
static void record_seen(struct kf_broker *b)
{
	size_t n = kf_workers_count(b->workers), k = 0;
	const char **ids;

	if (n == 0 || !(ids = malloc(n * sizeof(*ids))))
		return;
	for (size_t i = 0; i < n; i++) {
		struct kf_worker *w = kf_workers_at(b->workers, i);

		if (w->liveness != KF_WORKER_DEAD)
			ids[k++] = w->id;
	}
	if (k)
		kf_store_workers_seen(b->store, ids, k, on_seen, b);
	free(ids);
}

static void check_orphans(struct kf_broker *b, uint64_t now)
{
	uint64_t dead_after = (uint64_t)KF_WORKERS_DEAD_AFTER * KF_WORKERS_HB_MS * KF_NS_PER_MS;

	if (b->ticks % KF__ORPHAN_EVERY != 0)
		return;
	record_seen(b);
	if (b->orphans_inflight || now - b->started_ns < dead_after)
		return;
	if (kf_store_orphans(b->store, ORPHAN_STALE_MS, on_orphans, b) == KF_OK)
		b->orphans_inflight = true;
}

/* ---- lost leases: a claim commits before its reply leaves; a broker that
 * dies in between leaves the job running under a worker that never heard
 * of it, alive and of the right process, so neither death nor restart nor
 * the orphan check ends it. Workers list in their heartbeats what they hold
 * (protocol 1.2); a job claimed KF__LEASE_LOST_AGE_MS ago or more that its
 * live worker's fresh heartbeat does not list, at two checks in a row
 * (5 s apart: an attempt moving from a slot to the outbox cannot be missed
 * twice), ends as "lost" (kf_store_job_lost: only that very attempt). ---- */

#define LEASE_LOST_REASON "lease lost: its worker never held it"

static bool was_suspect(const struct kf_broker *b, const struct kf_store_running_job *j)
{
	for (size_t i = 0; i < b->n_suspects; i++)
		if (b->suspects[i].job_id == j->job_id && b->suspects[i].lease_token == j->lease_token)
			return true;
	return false;
}

static void end_lost_lease(struct kf_broker *b, const struct kf_store_running_job *j)
{
	struct sweep *s = sweep_new(b, LEASE_LOST_REASON, j->worker_id);

	KF_WARN(KF__TARGET_REAPER, "lease lost: the worker does not hold its running job",
		KF_I64("job_id", j->job_id), KF_STR("worker_id", j->worker_id),
		KF_U64("incarnation", j->incarnation));
	if (s && kf_store_job_lost(b->store, j->job_id, j->lease_token, LEASE_LOST_REASON,
				   on_sweep, s) != KF_OK)
		sweep_free(s);
}

static void on_running(void *arg, const struct kf_store_result *res)
{
	struct kf_broker *b = arg;
	struct kf__lease_suspect *next = NULL;
	uint64_t now = kf_clock_mono_ns();
	size_t n = 0;

	b->running_inflight = false;
	if (res->err || (res->running.n && !(next = calloc(res->running.n, sizeof(*next)))))
		return; /* the next check asks again */
	for (size_t i = 0; i < res->running.n; i++) {
		const struct kf_store_running_job *j = &res->running.jobs[i];

		if (!kf_workers_lease_lost(kf_workers_find(b->workers, j->worker_id), j->incarnation,
					   (uint64_t)j->job_id, j->lease_token, now))
			continue;
		if (was_suspect(b, j))
			end_lost_lease(b, j);
		else
			next[n++] = (struct kf__lease_suspect){ j->job_id, j->lease_token };
	}
	free(b->suspects);
	b->suspects = next;
	b->n_suspects = n;
}

static void check_lost_leases(struct kf_broker *b)
{
	if (b->ticks % KF__ORPHAN_EVERY != 0 || b->running_inflight)
		return;
	if (kf_store_running(b->store, KF__LEASE_LOST_AGE_MS, on_running, b) == KF_OK)
		b->running_inflight = true;
}

/* ---- counts ------------------------------------------------------------------------ */

uint64_t kf__counts_interval_ms(uint64_t took_ms, uint64_t prev_took_ms)
{
	if (prev_took_ms < took_ms)
		took_ms = prev_took_ms;
	if (took_ms > KF__COUNTS_MAX_MS / KF__COUNTS_SHARE)
		return KF__COUNTS_MAX_MS;
	return took_ms * KF__COUNTS_SHARE > KF__TICK_MS ? took_ms * KF__COUNTS_SHARE : KF__TICK_MS;
}

static void on_counts(void *arg, const struct kf_store_result *res)
{
	struct kf_broker *b = arg;
	uint64_t took_ms = (kf_clock_mono_ns() - b->counts_sent_ns) / KF_NS_PER_MS;

	b->counts_inflight = false;
	b->counts_due_ns = b->counts_sent_ns +
		kf__counts_interval_ms(took_ms, b->counts_took_ms) * KF_NS_PER_MS;
	b->counts_took_ms = took_ms;
	if (res->err)
		return;
	for (int i = 0; i < KF_JOB_STATE_COUNT; i++) {
		b->counts[i] = res->counts.n[i];
		kf_gauge_set(b->m.jobs_by_state[i], (double)res->counts.n[i]);
	}
	kf_gauge_set(b->m.contract.jobs_active, (double)res->counts.n[KF_JOB_RUNNING]);
	b->counts_valid = true;
}

/* A job went retrying, due in due_ms: the next promote sweep runs by then.
 * The last sweep set its time from the jobs retrying when it ran, and a
 * later failure with a shorter backoff would otherwise wait for those (a
 * job due in 0.7 s waited 55 s behind one due in 58 s). Callbacks run in
 * commit order: a sweep that ran before this job existed has set its time
 * already, one after it saw the job. */
void kf__promote_due(struct kf_broker *b, int64_t due_ms)
{
	uint64_t at = kf_clock_mono_ns() + (uint64_t)(due_ms > 0 ? due_ms : 0) * KF_NS_PER_MS;

	if (at < b->promote_at_ns)
		b->promote_at_ns = at;
}

/* ---- the tick ------------------------------------------------------------------------- */

static void store_sweeps(struct kf_broker *b, uint64_t now)
{
	struct sweep *s;

	for (size_t i = 0; i < kf_workers_count(b->workers); i++) {
		struct kf_worker *w = kf_workers_at(b->workers, i);

		if (w->liveness == KF_WORKER_DEAD && w->requeue_pending && !w->requeue_inflight)
			kf__requeue_worker(b, w->id, "worker dead");
		else if (w->liveness != KF_WORKER_DEAD && w->others_pending && !w->others_inflight)
			kf__requeue_others(b, w);
	}
	if (!b->promote_inflight && now >= b->promote_at_ns && (s = sweep_new(b, "backoff over", NULL))) {
		if (kf_store_promote(b->store, on_sweep, s) == KF_OK)
			b->promote_inflight = true;
		else
			sweep_free(s);
	}
	if (!b->expire_inflight && now >= b->expire_hold_ns &&
	    (s = sweep_new(b, "deadline exceeded", NULL))) {
		if (kf_store_expire(b->store, KF__EXPIRE_GRACE_MS, on_sweep, s) == KF_OK)
			b->expire_inflight = true;
		else
			sweep_free(s);
	}
	if (!b->counts_inflight && now >= b->counts_due_ns &&
	    kf_store_counts(b->store, on_counts, b) == KF_OK) {
		b->counts_inflight = true;
		b->counts_sent_ns = now;
	}
	check_orphans(b, now);
	check_lost_leases(b);
}

void kf__cluster_status(struct kf_broker *b, uint64_t now_ns, struct kf_msg_cluster_status *out)
{
	size_t n = kf_workers_count(b->workers);

	if (n > b->status_cap) {
		struct kf_msg_worker_status *p = realloc(b->status_buf, n * sizeof(*p));

		if (p) {
			b->status_buf = p;
			b->status_cap = n;
		}
	}
	memset(out, 0, sizeof(*out));
	out->workers = b->status_buf;
	out->n_workers = kf_workers_status(b->workers, now_ns, b->status_buf, b->status_cap);
	for (int i = 0; i < KF_JOB_STATE_COUNT; i++)
		out->job_counts[i] = b->counts_valid && b->counts[i] > 0 ? (uint64_t)b->counts[i] : 0;
}

static void publish_cluster(struct kf_broker *b, uint64_t now)
{
	struct kf_msg m;

	kf_msg_init(&m, KF_MSG_CLUSTER_STATUS, KF_RELAY_SOURCE, ++b->seq_status);
	kf__cluster_status(b, now, &m.cluster_status);
	kf__publish(b, KF_TOPIC_STATUS_CLUSTER, &m);
}

static void refresh_gauges(struct kf_broker *b)
{
	size_t tally[KF_WORKER_LIVENESS_COUNT];
	struct kf_rpc_server_stats rs;
	struct kf_store_status st;

	kf_workers_tally(b->workers, tally);
	for (int i = 0; i < KF_WORKER_LIVENESS_COUNT; i++)
		kf_gauge_set(b->m.workers[i], (double)tally[i]);
	kf_gauge_set(b->m.parked_leases, (double)b->n_parked);
	kf_rpc_server_stats(b->rpc, &rs);
	kf_gauge_set(b->m.rpc_contexts, rs.contexts);
	kf_gauge_set(b->m.rpc_in_flight, rs.held + rs.queued);
	kf_counter_set(b->m.rpc_exhausted, (double)rs.exhausted);
	kf_store_status(b->store, &st);
	kf_gauge_set(b->m.db_up, st.conn == KF_STORE_UP ? 1 : 0);
	kf_gauge_set(b->m.db_queue_depth, (double)st.queued);
	kf_gauge_set(b->m.db_batch_size, st.last_batch);
	kf_gauge_set(b->m.db_largest_batch, st.largest_batch);
	/* Mirrors of the store's own cumulative counters. */
	kf_counter_set(b->m.db_requests, (double)st.requests);
	kf_counter_set(b->m.db_batches, (double)st.batches);
	kf_counter_set(b->m.db_unavailable, (double)st.unavailable);
}

void kf__publish_metrics(struct kf_broker *b, bool full)
{
	struct kf_jarena a = KF_JARENA_INIT;
	struct kf_msnap snap = KF_MSNAP_INIT;
	char topic[KF_TOPIC_SIZE];
	struct kf_msg m;
	enum kf_err err;

	refresh_gauges(b);
	if ((err = kf_metrics_snapshot(b->m.reg, full ? 0 : b->metrics_gen, &snap)))
		goto out;
	b->metrics_gen = snap.generation;
	if (!full && snap.n_families == 0)
		goto out; /* nothing changed */
	kf_msg_init(&m, KF_MSG_METRIC, KF_RELAY_SOURCE, ++b->seq_metric);
	if ((err = kf_metrics_pub_build(&snap, KF_RELAY_SOURCE, b->incarnation, full, &a,
					&m.metric)))
		goto out;
	kf_topic_metric(topic, KF_RELAY_SOURCE);
	kf__publish(b, topic, &m);
out:
	if (err)
		KF_DEBUG(KF__TARGET, "metric update not published", KF_ERR(err));
	kf_msnap_release(&snap);
	kf_jarena_release(&a);
}

/*
 * A tick far later than due: the broker was stopped (SIGSTOP, a stalled
 * VM) or its loop held up, and heard nothing meanwhile. Judged by its own
 * clock, every worker would look silent for that long — past 10 s all of
 * them dead, and every running job requeued, work lost (a 12 s SIGSTOP of
 * the broker did exactly that). The heartbeats sent during the stall are
 * still in the sockets or lost, so the stall is taken off every worker's
 * silence instead; a worker that really died is found dead that much
 * later. (Cassandra's failure detector does the same after a local pause.)
 */
static bool forgive_stall(struct kf_broker *b, uint64_t now)
{
	uint64_t due = b->last_tick_ns + (uint64_t)KF__TICK_MS * KF_NS_PER_MS;

	if (!b->last_tick_ns || now < due + (uint64_t)KF__STALL_MS * KF_NS_PER_MS)
		return false;
	KF_WARN(KF__TARGET_REAPER, "broker stalled; the workers' silence meanwhile is not counted",
		KF_U64("stalled_ms", (now - due) / KF_NS_PER_MS));
	kf_workers_forgive(b->workers, now - due, now);
	/* Reports sent meanwhile are still in the sockets. */
	kf__expire_hold(b, now);
	/* The heartbeats it holds are from before the stall: suspect nothing
	 * on their word. */
	free(b->suspects);
	b->suspects = NULL;
	b->n_suspects = 0;
	return true;
}

/* First thing in every turn of the loop, so that after a stall no hello
 * or heartbeat of that turn is judged against the unforgiven silence: a
 * hello taken before the tick found the stall would see a live worker
 * silent for the whole stall and hand its id to a second process. The
 * stall counts as the tick's (no second forgiveness when the tick runs). */
void kf__stall_check(struct kf_broker *b, uint64_t now)
{
	if (forgive_stall(b, now))
		b->last_tick_ns = now;
}

void kf__expire_hold(struct kf_broker *b, uint64_t now)
{
	uint64_t until = now + (uint64_t)KF__EXPIRE_HOLD_MS * KF_NS_PER_MS;

	if (until > b->expire_hold_ns)
		b->expire_hold_ns = until;
}

#define RPC_EXHAUSTED_WARN_NS (60 * 1000 * KF_NS_PER_MS)

/* The rpc pool at its bound means requests wait unread — a submit or a
 * keyforgectl call behind a wall of parked leases — so say so, with the
 * knob, at most once a minute. */
static void watch_rpc_pool(struct kf_broker *b, uint64_t now)
{
	struct kf_rpc_server_stats rs;

	kf_rpc_server_stats(b->rpc, &rs);
	if (rs.exhausted == b->rpc_exhausted_seen)
		return;
	b->rpc_exhausted_seen = rs.exhausted;
	if (b->rpc_warned_ns && now - b->rpc_warned_ns < RPC_EXHAUSTED_WARN_NS)
		return;
	b->rpc_warned_ns = now;
	KF_WARN(KF__TARGET_RPC, "rpc contexts exhausted", KF_U64("contexts", rs.contexts),
		KF_U64("parked_leases", b->n_parked),
		KF_STR("hint", "every context holds a request; new requests wait unread "
		       "until one is answered; raise --rpc-contexts"));
}

void kf__tick(struct kf_broker *b, uint64_t now)
{
	struct kf_span *span = KF_INFO_SPAN(KF__TARGET_REAPER, "reaper", KF_U64("tick", b->ticks));

	kf_span_enter(span);
	forgive_stall(b, now);
	b->last_tick_ns = now;
	kf_workers_sweep(b->workers, now, on_liveness, b);
	if (kf_store_is_up(b->store) && !b->draining)
		store_sweeps(b, now);
	/* A job may be claimable without our knowing (another broker, a lost
	 * wake-up): let one parked lease look every tick. A budget left over
	 * (a wake that found only fenced leases) is spent the same way: no
	 * lease parking later runs the pump by itself. */
	if (b->n_parked)
		kf__lease_wake(b, b->wake_budget ? 0 : 1);
	watch_rpc_pool(b, now);
	publish_cluster(b, now);
	kf__publish_metrics(b, b->ticks % KF__METRICS_FULL_EVERY == 0);
	kf_span_exit(span);
	kf_span_close(span);
	b->ticks++;
}
