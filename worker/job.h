/*
 * worker/job.h — running one job with the layout engine (DESIGN.md §3, §8).
 *
 * The engine object holds what jobs share, so that a stream of small jobs
 * costs only their annealing:
 *  - corpora, loaded once per resolved path and kept for the life of the
 *    process (a corpus file replaced on disk is seen after a restart);
 *  - scorers (about 20 ms to build on the default corpus), by corpus,
 *    board, character set and weights: the KF__SCORERS_KEPT most recently
 *    used, or one per job that may run at once when that is more (every
 *    running job holds one, and a job never waits for another's);
 *  - per scorer, the statistics of the last result layout (a zero-step job
 *    returns its start layout: the same statistics every time).
 *
 * Corpus names (kf__corpus_resolve): "default" is the default corpus; an
 * absolute path is used as it is; a relative path with a '/' is relative to
 * the worker's working directory; a bare NAME is looked up in each corpus
 * folder as NAME, NAME.kfc, NAME.json.
 *
 * Thread-safety: kf__job_run may run on several threads at once (one per
 * running job); the caches are guarded by one mutex and shared scorers are
 * read-only.
 */
#ifndef KF_WORKER_JOB_H
#define KF_WORKER_JOB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/strbuf.h"
#include "layout/anneal.h"
#include "proto/rpc.h"
#include "worker/outbox.h"

#define KF__SCORERS_KEPT 8

struct kf__engine;

struct kf__engine_opts {
	const char *corpus_dirs;     /* ':'-separated; may be NULL */
	const char *default_corpus;  /* may be NULL */
	uint32_t max_running;        /* jobs kf__job_run runs at once, at most (the slots) */
};

enum kf_err kf__engine_new(const struct kf__engine_opts *o, struct kf__engine **out);
void kf__engine_free(struct kf__engine *e);

/* Corpora loaded and scorers built so far (for metrics). */
void kf__engine_counts(struct kf__engine *e, uint64_t *corpus_loads, uint64_t *scorer_builds);

/* How the caller watches and steers a run. Every member may be 0/NULL. */
struct kf__job_ctl {
	const atomic_bool *cancel;            /* set: stop within a step */
	kf_anneal_progress_fn progress;       /* on the running thread */
	void *progress_ctx;
	uint64_t progress_interval;           /* steps between progress calls */
	kf_anneal_observer_fn observer;       /* sampled score latency */
	void *observer_ctx;
};

/*
 * Runs the job described by p and fills the result part of *out (has_result,
 * layout, cost, stats, finger_usage, steps, steps_per_sec, elapsed_ms);
 * the caller fills the rest. Returns
 *   KF_OK         finished: *out holds the best layout;
 *   KF_ECANCELED  *cancel was set: *out holds the best layout so far (the
 *                 start layout when the run had not begun);
 *   other         the job cannot run (corpus missing or malformed, bad
 *                 layout, weights or pins): one lower-case line in why,
 *                 out->has_result false.
 */
enum kf_err kf__job_run(struct kf__engine *e, const struct kf_msg_job_params *p,
	const struct kf__job_ctl *ctl, struct kf__completion *out, struct kf_strbuf *why);

/* Pure (it only looks at the file system): the file a corpus name means,
 * appended to path. KF_OK; KF_ENOENT (nothing found, `why` lists where it
 * looked); KF_EINVAL (empty name). */
enum kf_err kf__corpus_resolve(const char *name, const char *dirs, const char *default_corpus,
	struct kf_strbuf *path, struct kf_strbuf *why);

/* Pure: the start layout of a job: p->start_layout (a name or 30
 * characters), or, when it is NULL or empty, QWERTY's characters shuffled
 * by p->seed with the pinned characters left in their QWERTY places.
 * Errors of kf_layout_resolve, with why. */
enum kf_err kf__job_start_layout(const struct kf_msg_job_params *p, struct kf_layout *out,
	struct kf_strbuf *why);

/* Pure: weights = defaults + the job's overrides. KF_EWEIGHTS with why. */
enum kf_err kf__job_weights(const struct kf_msg_job_params *p, struct kf_weights *out,
	struct kf_strbuf *why);

#endif
