/*
 * anneal.h — simulated annealing over key swaps (DESIGN.md §8).
 *
 * Schedule (docs/layout.md has the reasoning):
 *  - a run is `restarts` independent annealings, each of `steps` swap
 *    attempts, each starting from the start layout; the result is the best
 *    layout seen in any of them;
 *  - a step picks two different unpinned positions uniformly, computes the
 *    exact cost change (kf_score_delta) and accepts it when it does not
 *    worsen the cost, or with probability exp(−delta / T) when it does;
 *  - T falls geometrically from the start temperature to start ×
 *    end_temp_ratio over each restart's steps;
 *  - a start temperature of 0 is calibrated: the mean cost increase of the
 *    worsening swaps among KF_ANNEAL_CALIBRATION random swaps (a random walk
 *    from the start layout), divided by ln 2, so that an average worsening
 *    swap is at first accepted half of the time;
 *  - randomness comes from one xoshiro256** stream seeded (splitmix64) by
 *    `seed`: the same scorer, start, parameters and seed give the same
 *    result on any machine, whatever the callbacks do.
 *
 * Telemetry (DESIGN.md §5): each run is an INFO span `annealing_loop{steps,
 * start_temp, restarts, seed, best_cost}` (target keyforge::layout::anneal),
 * entered on the calling thread. One score (swap evaluation) in every
 * 2^sample_shift (1024 by default) is timed with CLOCK_MONOTONIC around
 * kf_score_delta; that latency goes to `score_latency` (the
 * keyforge_score_latency_ns histogram, when given), to the observer, and to
 * a TRACE event "score calculated" {score, latency_ns, step}, which release
 * builds compile out. Timing 1 score in 1024 costs two clock reads per 1024
 * steps, well under 0.1 ns per step.
 *
 * Threads: kf_anneal_run runs on the calling thread and calls the callbacks
 * there. Any thread may set *cancel; the loop reads it before every step
 * (a relaxed atomic load), so it stops within one step — microseconds.
 */
#ifndef KF_LAYOUT_ANNEAL_H
#define KF_LAYOUT_ANNEAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/strbuf.h"
#include "layout/layout.h"
#include "layout/score.h"

struct kf_histogram; /* telemetry/metrics.h */

#define KF_ANNEAL_CALIBRATION 1000   /* random swaps sampled to calibrate T */
#define KF_ANNEAL_DEFAULT_STEPS 1000000
#define KF_ANNEAL_DEFAULT_END_RATIO 1e-3
#define KF_ANNEAL_DEFAULT_PROGRESS 65536
#define KF_ANNEAL_DEFAULT_SAMPLE_SHIFT 10 /* time one score in 1024 */

struct kf_anneal_progress {
	uint64_t step;        /* swap attempts so far, all restarts */
	uint64_t total_steps; /* steps × restarts */
	uint32_t restart;     /* 0-based */
	double temperature;   /* weight·percent, like the costs */
	double current_cost;
	double best_cost;     /* best of the whole run so far */
};

typedef void (*kf_anneal_progress_fn)(void *ctx, const struct kf_anneal_progress *progress);

/* Called for one score (swap evaluation) in every 2^sample_shift, with the
 * time that evaluation took (CLOCK_MONOTONIC around kf_score_delta) and the
 * cost of the layout it evaluated. Meant for a latency histogram and a TRACE
 * event; keep it cheap. */
typedef void (*kf_anneal_observer_fn)(void *ctx, uint64_t latency_ns, double cost);

struct kf_anneal_params {
	uint64_t steps;           /* swap attempts per restart */
	uint32_t restarts;        /* ≥ 1 */
	uint64_t seed;
	double start_temp;        /* 0: calibrate */
	double end_temp_ratio;    /* in (0, 1]: final T = start T × this */
	const char *pinned;       /* characters that never move; NULL or "" for none */
	const atomic_bool *cancel; /* may be NULL */
	kf_anneal_progress_fn progress; /* may be NULL */
	void *progress_ctx;
	uint64_t progress_interval; /* steps between progress calls (also one at the end) */
	kf_anneal_observer_fn observer; /* may be NULL */
	void *observer_ctx;
	struct kf_histogram *score_latency; /* sampled latencies, ns; may be NULL */
	uint32_t sample_shift;    /* observe one score in 2^sample_shift (≤ 30) */
};

struct kf_anneal_result {
	struct kf_layout best;
	double best_cost;         /* weight·percent */
	double start_cost;
	double start_temp;        /* the one used (calibrated or given) */
	uint64_t steps;           /* swap attempts made, all restarts (without calibration) */
	uint64_t accepted;
	uint32_t restarts;        /* restarts begun */
	double seconds;           /* wall time of the run, calibration included */
	double steps_per_second;
	bool cancelled;
};

/* Defaults: the KF_ANNEAL_DEFAULT_* values, 1 restart, seed 0, calibrated
 * start temperature, nothing pinned, no callbacks. */
void kf_anneal_params_init(struct kf_anneal_params *params);

/* Optimizes from `start`, which must hold the scorer's character set.
 * Returns KF_OK with *out filled; KF_ECANCELED when *cancel was set, with
 * *out holding the best layout found so far; KF_EINVAL for a start layout of
 * another character set, a pinned character that is not on the layout, zero
 * restarts or a bad end_temp_ratio / sample_shift (one line in `why`).
 * With fewer than two unpinned keys the start layout is the result. */
enum kf_err kf_anneal_run(const struct kf_scorer *scorer, const struct kf_layout *start,
			  const struct kf_anneal_params *params, struct kf_anneal_result *out,
			  struct kf_strbuf *why);

/* The PRNG, exposed for tests and benches: splitmix64-seeded xoshiro256**. */
struct kf_rng {
	uint64_t s[4];
};
void kf_rng_seed(struct kf_rng *rng, uint64_t seed);
uint64_t kf_rng_next(struct kf_rng *rng);
/* Uniform in [0, n), n ≥ 1 (Lemire's multiply-shift; bias < n / 2^32). */
static inline uint32_t kf_rng_below(struct kf_rng *rng, uint32_t n)
{
	return (uint32_t)(((kf_rng_next(rng) >> 32) * (uint64_t)n) >> 32);
}
/* Uniform in [0, 1). */
static inline double kf_rng_double(struct kf_rng *rng)
{
	return (double)(kf_rng_next(rng) >> 11) * 0x1.0p-53;
}

#endif
