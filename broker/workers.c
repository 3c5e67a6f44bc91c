/* workers.c — the worker table: a hash by id plus an array for iteration. */
#include "broker/workers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"

#define BUCKETS 1024u

struct kf_workers {
	struct kf_worker *buckets[BUCKETS];
	struct kf_worker **all;
	size_t n, alloc;
};

static unsigned hash_id(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h & (BUCKETS - 1);
}

enum kf_err kf_workers_new(struct kf_workers **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? KF_OK : KF_ENOMEM;
}

void kf_workers_free(struct kf_workers *ws)
{
	if (!ws)
		return;
	for (size_t i = 0; i < ws->n; i++) {
		free(ws->all[i]->held);
		free(ws->all[i]);
	}
	free(ws->all);
	free(ws);
}

struct kf_worker *kf_workers_find(struct kf_workers *ws, const char *id)
{
	struct kf_worker *w;

	for (w = ws->buckets[hash_id(id)]; w; w = w->hnext)
		if (!strcmp(w->id, id))
			return w;
	return NULL;
}

static void copy_name(char dst[KF_MSG_MAX_NAME + 1], const char *src)
{
	snprintf(dst, KF_MSG_MAX_NAME + 1, "%s", src ? src : "");
}

static enum kf_err add(struct kf_workers *ws, const char *id, struct kf_worker **out)
{
	struct kf_worker *w;
	unsigned h;

	if (ws->n >= KF_WORKERS_MAX)
		return KF_EFULL;
	if (ws->n == ws->alloc) {
		size_t na = ws->alloc ? ws->alloc * 2 : 16;
		struct kf_worker **p = realloc(ws->all, na * sizeof(*p));

		if (!p)
			return KF_ENOMEM;
		ws->all = p;
		ws->alloc = na;
	}
	if (!(w = calloc(1, sizeof(*w))))
		return KF_ENOMEM;
	copy_name(w->id, id);
	h = hash_id(w->id);
	w->hnext = ws->buckets[h];
	ws->buckets[h] = w;
	ws->all[ws->n++] = w;
	*out = w;
	return KF_OK;
}

static void forget(struct kf_workers *ws, size_t i)
{
	struct kf_worker *w = ws->all[i], **pp;

	for (pp = &ws->buckets[hash_id(w->id)]; *pp; pp = &(*pp)->hnext) {
		if (*pp == w) {
			*pp = w->hnext;
			break;
		}
	}
	ws->all[i] = ws->all[--ws->n];
	free(w->held);
	free(w);
}

/* Keeps what a heartbeat says w holds; on no memory, that nothing is known. */
static void keep_held(struct kf_worker *w, const struct kf_msg_heartbeat *hb)
{
	w->held_listed = false;
	if (!hb->held_listed)
		return;
	if (hb->n_held > w->held_cap) {
		struct kf_msg_held_job *p = realloc(w->held, hb->n_held * sizeof(*p));

		if (!p)
			return;
		w->held = p;
		w->held_cap = hb->n_held;
	}
	if (hb->n_held)
		memcpy(w->held, hb->held, hb->n_held * sizeof(*w->held));
	w->n_held = hb->n_held;
	w->held_listed = true;
}

/* Finds or adds `id` and says what seeing it now means. */
static enum kf_err seen(struct kf_workers *ws, const char *id, uint64_t incarnation,
	uint64_t now_ns, struct kf_worker **out, enum kf_worker_event *ev, uint64_t *old_inc)
{
	struct kf_worker *w;
	enum kf_err err;

	*ev = KF_WORKER_EV_NONE;
	*old_inc = 0;
	if (!id || !*id)
		return KF_EINVAL;
	if ((w = kf_workers_find(ws, id)) &&
	    !kf_workers_incarnation_ok(w->incarnation, w->last_seen_ns, incarnation, now_ns)) {
		*out = w;   /* a second process with the id of this live one: untouched */
		return KF_EBUSY;
	}
	if (!w) {
		if ((err = add(ws, id, &w)))
			return err;
		*ev = KF_WORKER_EV_JOINED;
	} else if (w->incarnation && incarnation && w->incarnation != incarnation) {
		*ev = KF_WORKER_EV_RESTARTED;
		*old_inc = w->incarnation;
	} else if (w->liveness == KF_WORKER_DEAD) {
		/* Back before its jobs were requeued (database away): they are
		 * still its own, leave them. */
		*ev = KF_WORKER_EV_REJOINED;
		w->requeue_pending = false;
	} else if (w->liveness == KF_WORKER_STALE) {
		*ev = KF_WORKER_EV_RECOVERED;
	}
	if (incarnation && incarnation != w->incarnation) {
		w->incarnation = incarnation;
		w->drain_requested = false; /* a new process: not the one drained */
	}
	w->liveness = KF_WORKER_ALIVE;
	w->last_seen_ns = now_ns;
	w->dead_since_ns = 0;
	*out = w;
	return KF_OK;
}

enum kf_err kf_workers_heartbeat(struct kf_workers *ws, const struct kf_msg_heartbeat *hb,
	uint64_t now_ns, struct kf_worker **out, enum kf_worker_event *ev,
	uint64_t *old_incarnation)
{
	struct kf_worker *w = NULL;
	enum kf_err err;

	if ((err = seen(ws, hb->worker_id, hb->incarnation, now_ns, &w, ev, old_incarnation))) {
		*out = w;
		return err;
	}
	w->heard = true;
	copy_name(w->host, hb->host);
	w->pid = hb->pid;
	w->state = hb->state;
	w->cpu_process = hb->cpu_process;
	w->cpu_host = hb->cpu_host;
	w->rss_bytes = hb->rss_bytes;
	w->slots_total = hb->slots_total;
	w->slots_busy = hb->slots_busy;
	w->job_id = hb->job_id;
	w->job_progress = hb->job_progress;
	keep_held(w, hb);
	*out = w;
	return KF_OK;
}

enum kf_err kf_workers_hello(struct kf_workers *ws, const struct kf_msg_hello_req *hello,
	uint64_t now_ns, struct kf_worker **out, enum kf_worker_event *ev,
	uint64_t *old_incarnation)
{
	struct kf_worker *w = NULL;
	enum kf_err err;

	if ((err = seen(ws, hello->worker_id, hello->incarnation, now_ns, &w, ev,
			old_incarnation))) {
		*out = w;
		return err;
	}
	/* A hello proves the rpc path only: a new process, or one back after
	 * a silence, waits for a heartbeat before it is given jobs. */
	if (*ev == KF_WORKER_EV_JOINED || *ev == KF_WORKER_EV_RESTARTED ||
	    *ev == KF_WORKER_EV_REJOINED)
		w->heard = false;
	copy_name(w->host, hello->host);
	w->pid = hello->pid;
	w->slots_total = hello->slots;
	if (*ev == KF_WORKER_EV_JOINED || *ev == KF_WORKER_EV_RESTARTED) {
		w->state = KF_WORKER_IDLE;
		w->slots_busy = 0;
		w->job_id = 0;
		w->job_progress = 0;
		w->held_listed = false; /* the old process's list: until a heartbeat */
	}
	*out = w;
	return KF_OK;
}

enum kf_worker_liveness kf_workers_liveness(uint64_t age_ns)
{
	if (age_ns >= (uint64_t)KF_WORKERS_DEAD_AFTER * KF_WORKERS_HB_MS * KF_NS_PER_MS)
		return KF_WORKER_DEAD;
	if (age_ns >= (uint64_t)KF_WORKERS_STALE_AFTER * KF_WORKERS_HB_MS * KF_NS_PER_MS)
		return KF_WORKER_STALE;
	return KF_WORKER_ALIVE;
}

bool kf_workers_incarnation_ok(uint64_t known, uint64_t seen_ns, uint64_t incarnation,
	uint64_t now_ns)
{
	return !known || !incarnation || incarnation == known ||
	       kf_workers_liveness(now_ns > seen_ns ? now_ns - seen_ns : 0) != KF_WORKER_ALIVE;
}

void kf_workers_sweep(struct kf_workers *ws, uint64_t now_ns, kf_workers_change_fn *fn, void *arg)
{
	size_t i = 0;

	while (i < ws->n) {
		struct kf_worker *w = ws->all[i];
		uint64_t age = now_ns > w->last_seen_ns ? now_ns - w->last_seen_ns : 0;
		enum kf_worker_liveness now_l = kf_workers_liveness(age), was = w->liveness;

		if (now_l > was) {
			w->liveness = now_l;
			if (now_l == KF_WORKER_DEAD) {
				w->dead_since_ns = now_ns;
				w->requeue_pending = true;
			}
			if (fn)
				fn(arg, w, was, now_l);
		}
		/* Forgotten, a worker whose heartbeats never arrive but whose
		 * leases do would be unknown, and so leased jobs again (the
		 * silent-worker fence knows only the workers on record). */
		if (w->liveness == KF_WORKER_DEAD && !w->requeue_pending && !w->requeue_inflight &&
		    now_ns - w->dead_since_ns >= (uint64_t)KF_WORKERS_FORGET_MS * KF_NS_PER_MS &&
		    (!w->lease_refused_ns ||
		     now_ns - w->lease_refused_ns >= (uint64_t)KF_WORKERS_FORGET_MS * KF_NS_PER_MS)) {
			forget(ws, i);
			continue;
		}
		i++;
	}
}

bool kf_workers_lease_lost(const struct kf_worker *w, uint64_t incarnation, uint64_t job_id,
	uint64_t lease_token, uint64_t now_ns)
{
	/* Alive now, by its last heartbeat: the list is that fresh. */
	if (!w || !incarnation || w->incarnation != incarnation || !w->held_listed ||
	    kf_workers_liveness(now_ns > w->last_seen_ns ? now_ns - w->last_seen_ns : 0) !=
		    KF_WORKER_ALIVE)
		return false;
	for (size_t i = 0; i < w->n_held; i++)
		if (w->held[i].job_id == job_id && w->held[i].lease_token == lease_token)
			return false;
	return true;
}

void kf_workers_forgive(struct kf_workers *ws, uint64_t pause_ns, uint64_t now_ns)
{
	for (size_t i = 0; i < ws->n; i++) {
		struct kf_worker *w = ws->all[i];
		uint64_t seen = w->last_seen_ns + pause_ns;

		w->last_seen_ns = seen < now_ns ? seen : now_ns;
	}
}

size_t kf_workers_count(const struct kf_workers *ws)
{
	return ws->n;
}

struct kf_worker *kf_workers_at(struct kf_workers *ws, size_t i)
{
	return i < ws->n ? ws->all[i] : NULL;
}

void kf_workers_tally(const struct kf_workers *ws, size_t out[KF_WORKER_LIVENESS_COUNT])
{
	memset(out, 0, sizeof(size_t) * KF_WORKER_LIVENESS_COUNT);
	for (size_t i = 0; i < ws->n; i++)
		out[ws->all[i]->liveness]++;
}

size_t kf_workers_status(const struct kf_workers *ws, uint64_t now_ns,
	struct kf_msg_worker_status *out, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < ws->n && n < cap; i++, n++) {
		const struct kf_worker *w = ws->all[i];

		out[n] = (struct kf_msg_worker_status){
			.worker_id = w->id, .host = w->host, .pid = w->pid,
			.incarnation = w->incarnation, .liveness = w->liveness, .state = w->state,
			.cpu_process = w->cpu_process, .cpu_host = w->cpu_host,
			.rss_bytes = w->rss_bytes, .slots_total = w->slots_total,
			.slots_busy = w->slots_busy,
			.job_id = w->liveness == KF_WORKER_DEAD ? 0 : w->job_id,
			.job_progress = w->job_progress,
			.last_heartbeat_age_ms = now_ns > w->last_seen_ns ?
				(now_ns - w->last_seen_ns) / KF_NS_PER_MS : 0,
			.unheard = !w->heard,
		};
	}
	return n;
}
