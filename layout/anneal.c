/*
 * anneal.c — the annealing loop (schedule and guarantees in anneal.h).
 */
#include "layout/anneal.h"

#include <math.h>
#include <string.h>

#include "common/clock.h"
#include "telemetry/log.h"
#include "telemetry/metrics.h"

#define TARGET "keyforge::layout::anneal"

/* Beyond exp(-40) ≈ 4e-18 an acceptance cannot happen with a 53-bit draw. */
#define MAX_EXPONENT 40.0

/* ---- PRNG ---------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void kf_rng_seed(struct kf_rng *rng, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		rng->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t kf_rng_next(struct kf_rng *rng)
{
	uint64_t *s = rng->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* ---- the run ------------------------------------------------------------- */

struct run {
	const struct kf_scorer *scorer;
	const struct kf_anneal_params *params;
	struct kf_rng rng;
	uint8_t free_pos[KF_LAYOUT_KEYS]; /* unpinned positions */
	uint32_t nfree;
	struct kf_score_state start;
	struct kf_score_state best; /* only key and cost are kept up to date */
	uint64_t step, total_steps, accepted;
	uint64_t sample_mask;
	const atomic_bool *cancel;
	bool cancelled;
};

static const atomic_bool never_cancelled = false;

void kf_anneal_params_init(struct kf_anneal_params *params)
{
	memset(params, 0, sizeof(*params));
	params->steps = KF_ANNEAL_DEFAULT_STEPS;
	params->restarts = 1;
	params->end_temp_ratio = KF_ANNEAL_DEFAULT_END_RATIO;
	params->progress_interval = KF_ANNEAL_DEFAULT_PROGRESS;
	params->sample_shift = KF_ANNEAL_DEFAULT_SAMPLE_SHIFT;
}

static void pick_pair(struct run *run, int *p, int *q)
{
	/* both indexes from one 64-bit draw (Lemire's multiply-shift per half) */
	uint64_t r = kf_rng_next(&run->rng);
	uint32_t i = (uint32_t)(((r & 0xffffffffu) * run->nfree) >> 32);
	uint32_t j = (uint32_t)(((r >> 32) * (run->nfree - 1)) >> 32);

	j += j >= i; /* a different position, uniformly */
	*p = run->free_pos[i];
	*q = run->free_pos[j];
}

static enum kf_err setup_pins(struct run *run, const struct kf_layout *start,
			      struct kf_strbuf *why)
{
	bool pinned[KF_LAYOUT_KEYS] = { false };
	const char *pins = run->params->pinned ? run->params->pinned : "";

	for (const char *c = pins; *c; c++) {
		int p = kf_layout_find(start, *c);

		if (p < 0) {
			if (why)
				kf_strbuf_addf(why, "pinned key '%c' is not on the layout '%s'", *c,
					       start->keys);
			return KF_EINVAL;
		}
		pinned[p] = true;
	}
	run->nfree = 0;
	for (int p = 0; p < KF_LAYOUT_KEYS; p++)
		if (!pinned[p])
			run->free_pos[run->nfree++] = (uint8_t)p;
	return KF_OK;
}

static enum kf_err check_params(const struct kf_anneal_params *params, struct kf_strbuf *why)
{
	const char *bad = NULL;

	if (params->restarts == 0)
		bad = "restarts must be at least 1";
	else if (!(params->end_temp_ratio > 0 && params->end_temp_ratio <= 1))
		bad = "end temperature ratio must be in (0, 1]";
	else if (params->sample_shift > 30)
		bad = "sample shift must be at most 30";
	else if (!(params->start_temp >= 0) || isinf(params->start_temp))
		bad = "start temperature must be a finite number >= 0 (0 calibrates)";
	if (bad && why)
		kf_strbuf_addstr(why, bad);
	return bad ? KF_EINVAL : KF_OK;
}

/* Mean increase of the worsening swaps along a random walk, / ln 2. */
static double calibrate(struct run *run)
{
	struct kf_score_state walk = run->start;
	double sum = 0;
	uint64_t worse = 0;

	for (int i = 0; i < KF_ANNEAL_CALIBRATION; i++) {
		int p, q;
		int64_t d;

		pick_pair(run, &p, &q);
		d = kf_score_delta(run->scorer, &walk, p, q);
		if (d > 0) {
			sum += kf_score_value(d);
			worse++;
		}
		kf_score_apply(run->scorer, &walk, p, q, d);
	}
	if (worse == 0 || !(sum > 0))
		return 1.0;
	return sum / (double)worse / M_LN2;
}

static void report(struct run *run, uint32_t restart, double temp, int64_t current)
{
	struct kf_anneal_progress pr = {
		.step = run->step,
		.total_steps = run->total_steps,
		.restart = restart,
		.temperature = temp,
		.current_cost = kf_score_value(current),
		.best_cost = kf_score_value(run->best.cost),
	};

	run->params->progress(run->params->progress_ctx, &pr);
}

/* The sampled score: timed, then recorded where the caller asked. */
static int64_t timed_delta(struct run *run, const struct kf_score_state *st, int p, int q)
{
	const struct kf_anneal_params *params = run->params;
	uint64_t t0 = kf_clock_mono_ns();
	int64_t d = kf_score_delta(run->scorer, st, p, q);
	uint64_t ns = kf_clock_mono_ns() - t0;
	double score = kf_score_value(st->cost + d);

	if (params->score_latency)
		kf_histogram_observe_u64(params->score_latency, ns);
	if (params->observer)
		params->observer(params->observer_ctx, ns, score);
	KF_TRACE(TARGET, "score calculated", KF_F64("score", score), KF_U64("latency_ns", ns),
		 KF_U64("step", run->step));
	return d;
}

static bool accept(struct run *run, int64_t delta, double temp)
{
	double x;

	if (delta <= 0)
		return true;
	x = kf_score_value(delta) / temp;
	return x < MAX_EXPONENT && kf_rng_double(&run->rng) < exp(-x);
}

/* One annealing from the start layout; false when cancelled. */
static bool anneal_once(struct run *run, uint32_t restart, double t0)
{
	const struct kf_anneal_params *params = run->params;
	struct kf_score_state st = run->start;
	double temp = t0;
	double alpha = pow(params->end_temp_ratio, 1.0 / (double)params->steps);
	uint64_t interval = params->progress_interval ? params->progress_interval
						      : KF_ANNEAL_DEFAULT_PROGRESS;

	for (uint64_t i = 0; i < params->steps; i++) {
		int p, q;
		int64_t d;

		if (atomic_load_explicit(run->cancel, memory_order_relaxed))
			return false;
		pick_pair(run, &p, &q);
		if ((run->step & run->sample_mask) == 0)
			d = timed_delta(run, &st, p, q);
		else
			d = kf_score_delta(run->scorer, &st, p, q);
		if (accept(run, d, temp)) {
			kf_score_apply(run->scorer, &st, p, q, d);
			run->accepted++;
			if (st.cost < run->best.cost) {
				/* the best layout is its keys: skip the trigram cache */
				memcpy(run->best.key, st.key, sizeof(st.key));
				run->best.cost = st.cost;
			}
		}
		temp *= alpha;
		run->step++;
		if (params->progress && run->step % interval == 0)
			report(run, restart, temp, st.cost);
	}
	return true;
}

/* The restarts, inside the annealing_loop span (DESIGN.md §5). */
static void run_restarts(struct run *run, struct kf_anneal_result *out)
{
	const struct kf_anneal_params *params = run->params;
	struct kf_span *span = KF_INFO_SPAN(TARGET, "annealing_loop",
		KF_U64("steps", params->steps), KF_F64("start_temp", out->start_temp),
		KF_U64("restarts", params->restarts), KF_U64("seed", params->seed),
		KF_EMPTY("best_cost"));

	kf_span_enter(span);
	for (uint32_t r = 0; r < params->restarts && !run->cancelled; r++) {
		out->restarts = r + 1;
		run->cancelled = !anneal_once(run, r, out->start_temp);
	}
	kf_span_record(span, KF_F64("best_cost", kf_score_value(run->best.cost)));
	kf_span_exit(span);
	kf_span_close(span);
	if (params->progress)
		report(run, out->restarts - 1, out->start_temp * params->end_temp_ratio,
		       run->best.cost);
}

static void finish(struct run *run, struct kf_anneal_result *out, uint64_t t_start)
{
	kf_score_state_layout(run->scorer, &run->best, &out->best);
	out->best_cost = kf_score_value(run->best.cost);
	out->steps = run->step;
	out->accepted = run->accepted;
	out->seconds = (double)(kf_clock_mono_ns() - t_start) * 1e-9;
	out->steps_per_second = out->seconds > 0 ? (double)run->step / out->seconds : 0;
	out->cancelled = run->cancelled;
}

enum kf_err kf_anneal_run(const struct kf_scorer *scorer, const struct kf_layout *start,
			  const struct kf_anneal_params *params, struct kf_anneal_result *out,
			  struct kf_strbuf *why)
{
	struct run run = { .scorer = scorer, .params = params };
	uint64_t t_start = kf_clock_mono_ns();
	enum kf_err err;

	memset(out, 0, sizeof(*out));
	err = check_params(params, why);
	if (err)
		return err;
	if (kf_score_state_init(scorer, start, &run.start) != KF_OK) {
		if (why)
			kf_strbuf_addf(why, "start layout '%s' holds other characters than the "
				       "scorer's", start->keys);
		return KF_EINVAL;
	}
	err = setup_pins(&run, start, why);
	if (err)
		return err;
	kf_rng_seed(&run.rng, params->seed);
	run.best = run.start;
	run.cancel = params->cancel ? params->cancel : &never_cancelled;
	run.sample_mask = (1ull << params->sample_shift) - 1;
	run.total_steps = params->steps * params->restarts;
	out->start_cost = kf_score_value(run.start.cost);
	out->start_temp = params->start_temp;
	if (run.nfree >= 2) {
		if (out->start_temp == 0)
			out->start_temp = calibrate(&run);
		run_restarts(&run, out);
	}
	finish(&run, out, t_start);
	return run.cancelled ? KF_ECANCELED : KF_OK;
}
