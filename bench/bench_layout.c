/*
 * bench_layout — speed of the layout engine on one thread (issue 4):
 *   full score and swap delta, bigram statistics only and with the 1,000
 *   most frequent trigrams; annealing steps per second.
 *
 * usage: bench_layout [CORPUS] [--synthetic] [--reps N]
 * CORPUS defaults to ../shared/corpora/shai.json next to the source tree;
 * when it cannot be loaded (or with --synthetic) a deterministic synthetic
 * corpus of 44 characters (every bigram and skip-gram, 20,000 trigrams) is
 * used and the output says so. Full score and delta are timed in 41 short
 * windows, annealing in --reps runs (5) of 1 M (4 M bigram-only) steps; the
 * median and the best are printed. Results go to docs/layout.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "kf_config.h"
#include "layout/anneal.h"
#include "layout/corpus.h"
#include "layout/score.h"

#define NSTATES 64
#define NSWAPS 4096
#define WINDOWS 41 /* timing windows per figure */

static volatile int64_t sink;

/* CPU time of this thread: on a shared, loaded machine it leaves out the
 * time the thread waited for a core, which wall-clock time would count. */
static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct kf_corpus *synthetic_corpus(void)
{
	static const char alphabet[] = "etaoinsrhldcumfpgywb.v,k'0-x1j92q;z/54378=6";
	uint32_t n = (uint32_t)strlen(alphabet) + 1; /* + shift */
	struct kf_corpus *c = calloc(1, sizeof(*c));
	struct kf_rng rng;
	double sum = 0;

	kf_rng_seed(&rng, 12345);
	snprintf(c->name, sizeof(c->name), "synthetic");
	c->nchars = n;
	c->codepoints = calloc(n, sizeof(*c->codepoints));
	c->chars = calloc(n, sizeof(*c->chars));
	c->nbigrams = c->nskipgrams = (size_t)n * n;
	c->bigrams = calloc(c->nbigrams, sizeof(*c->bigrams));
	c->skipgrams = calloc(c->nskipgrams, sizeof(*c->skipgrams));
	c->ntrigrams = 20000;
	c->trigrams = calloc(c->ntrigrams, sizeof(*c->trigrams));
	for (uint32_t i = 0; i < n; i++) {
		c->codepoints[i] = i + 1 < n ? (unsigned char)alphabet[i] : KF_CORPUS_SHIFT;
		c->chars[i] = 100.0 / (i + 2); /* Zipf-like */
		sum += c->chars[i];
	}
	for (uint32_t i = 0; i < n; i++)
		c->chars[i] *= 100.0 / sum;
	for (uint32_t i = 0; i < n * n; i++) {
		double f = c->chars[i / n] * c->chars[i % n] / 100.0;

		c->bigrams[i] = (struct kf_ngram2){ i / n, i % n, f * 2 * kf_rng_double(&rng) };
		c->skipgrams[i] = (struct kf_ngram2){ i / n, i % n, f * 2 * kf_rng_double(&rng) };
	}
	for (size_t i = 0; i < c->ntrigrams; i++) {
		uint32_t a = kf_rng_below(&rng, n), b = kf_rng_below(&rng, n), d = kf_rng_below(&rng, n);

		c->trigrams[i] = (struct kf_ngram3){ a, b, d, 0.01 * kf_rng_double(&rng) };
	}
	return c;
}

static void free_synthetic(struct kf_corpus *c)
{
	free(c->codepoints);
	free(c->chars);
	free(c->bigrams);
	free(c->skipgrams);
	free(c->trigrams);
	free(c);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct workload {
	const struct kf_scorer *scorer;
	struct kf_score_state states[NSTATES];
	uint8_t p[NSWAPS], q[NSWAPS];
};

static void make_workload(struct workload *w, const struct kf_scorer *scorer,
			  const struct kf_layout *start)
{
	struct kf_rng rng;

	kf_rng_seed(&rng, 99);
	w->scorer = scorer;
	for (int i = 0; i < NSTATES; i++) {
		struct kf_layout l = *start;

		for (int k = KF_LAYOUT_KEYS - 1; k > 0; k--)
			kf_layout_swap(&l, k, (int)kf_rng_below(&rng, (uint32_t)k + 1));
		kf_score_state_init(scorer, &l, &w->states[i]);
	}
	for (int i = 0; i < NSWAPS; i++) {
		w->p[i] = (uint8_t)kf_rng_below(&rng, 30);
		w->q[i] = (uint8_t)kf_rng_below(&rng, 29);
		w->q[i] += w->q[i] >= w->p[i];
	}
}

/* ns per full score */
static double time_full(const struct workload *w, uint64_t iters)
{
	int64_t acc = 0;
	uint64_t t0 = cpu_ns();

	for (uint64_t i = 0; i < iters; i++)
		acc += kf_score_full(w->scorer, &w->states[i % NSTATES]);
	sink = acc;
	return (double)(cpu_ns() - t0) / (double)iters;
}

/* ns per swap delta */
static double time_delta(const struct workload *w, uint64_t iters)
{
	int64_t acc = 0;
	uint64_t t0 = cpu_ns();

	for (uint64_t i = 0; i < iters; i++)
		acc += kf_score_delta(w->scorer, &w->states[(i >> 12) % NSTATES],
				      w->p[i % NSWAPS], w->q[i % NSWAPS]);
	sink = acc;
	return (double)(cpu_ns() - t0) / (double)iters;
}

/* steps per CPU second of a whole annealing run (calibration included);
 * *wall gets the run's own wall-clock figure */
static double time_anneal(const struct kf_scorer *scorer, const struct kf_layout *start,
			  uint64_t steps, double *wall)
{
	struct kf_anneal_params p;
	struct kf_anneal_result r;
	uint64_t t0 = cpu_ns();

	kf_anneal_params_init(&p);
	p.steps = steps;
	p.seed = 7;
	if (kf_anneal_run(scorer, start, &p, &r, NULL) != KF_OK)
		return 0;
	sink = (int64_t)r.accepted;
	*wall = r.steps_per_second;
	return (double)r.steps / ((double)(cpu_ns() - t0) * 1e-9);
}

static void report(const char *what, const char *unit, double *v, int reps)
{
	qsort(v, (size_t)reps, sizeof(*v), cmp_double);
	printf("  %-40s median %10.1f  best %10.1f  %s\n", what, v[reps / 2],
	       strcmp(unit, "steps/s") ? v[0] : v[reps - 1], unit);
}

static void bench(const struct kf_board *board, const struct kf_corpus *corpus,
		  const struct kf_layout *qwerty, uint32_t trigrams, int reps)
{
	struct kf_weights weights;
	struct kf_scorer *scorer;
	struct workload *w = calloc(1, sizeof(*w));
	double full[WINDOWS], delta[WINDOWS], steps[32], wall[32];

	kf_weights_default(&weights);
	weights.trigrams = trigrams;
	if (!w || kf_scorer_new(board, corpus, qwerty, &weights, &scorer) != KF_OK) {
		fprintf(stderr, "bench_layout: out of memory\n");
		exit(1);
	}
	make_workload(w, scorer, qwerty);
	/* many short windows: the best one is the least disturbed by the other
	 * programs on the machine */
	for (int r = 0; r < WINDOWS; r++) {
		full[r] = time_full(w, trigrams ? 20000 : 200000);
		delta[r] = time_delta(w, trigrams ? 100000 : 1000000);
	}
	for (int r = 0; r < reps; r++)
		steps[r] = time_anneal(scorer, qwerty, trigrams ? 1000000 : 4000000, &wall[r]);
	printf("%s (%u trigrams scored)\n", trigrams ? "bigram + trigram statistics"
						     : "bigram statistics only",
	       kf_scorer_trigram_count(scorer));
	report("full score", "ns", full, WINDOWS);
	report("swap delta", "ns", delta, WINDOWS);
	report("annealing (CPU time)", "steps/s", steps, reps);
	report("annealing (wall clock)", "steps/s", wall, reps);
	kf_scorer_free(scorer);
	free(w);
}

int main(int argc, char **argv)
{
	const char *path = KF_SOURCE_ROOT "/../shared/corpora/shai.json";
	struct kf_corpus *corpus = NULL;
	struct kf_board board;
	struct kf_layout qwerty;
	bool synthetic = false;
	int reps = 5;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--synthetic"))
			synthetic = true;
		else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
			reps = atoi(argv[++i]);
		else
			path = argv[i];
	}
	if (reps < 1 || reps > 32)
		reps = 5;
	if (!synthetic) {
		struct kf_strbuf why = KF_STRBUF_INIT;
		uint64_t t0 = kf_clock_mono_ns();

		if (kf_corpus_load(path, &corpus, &why) != KF_OK) {
			fprintf(stderr, "bench_layout: %s; using a synthetic corpus\n", why.buf);
			corpus = NULL;
		} else {
			printf("corpus %s (%s), loaded in %.1f ms\n", corpus->name, path,
			       (double)(kf_clock_mono_ns() - t0) / 1e6);
		}
		kf_strbuf_release(&why);
	}
	if (!corpus) {
		synthetic = true;
		corpus = synthetic_corpus();
		printf("corpus: synthetic (44 characters, 20000 trigrams)\n");
	}
	kf_board_init(&board, KF_BOARD_ANSI);
	kf_layout_named("qwerty", &qwerty);
	printf("one thread, ANSI board, default weights; ns are CPU time (median and best of %d "
	       "windows), annealing: %d runs\n\n", WINDOWS, reps);
	bench(&board, corpus, &qwerty, 0, reps);
	bench(&board, corpus, &qwerty, KF_TRIGRAMS_DEFAULT, reps);
	printf("\nfor comparison: Oxeylyzer's README reports ~12 M layout permutations/s on all "
	       "cores of a Ryzen 7 laptop (~1-1.5 M per core)\n");
	if (synthetic)
		free_synthetic(corpus);
	else
		kf_corpus_free(corpus);
	return 0;
}
