/* job.c — one job on the layout engine, with corpus and scorer caches. */
#include "worker/job.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "layout/board.h"
#include "layout/corpus.h"
#include "layout/score.h"
#include "layout/stats.h"
#include "telemetry/log.h"

#define TARGET "keyforge::worker::job"

struct corpus_entry {
	struct corpus_entry *next;
	char *path;
	struct kf_corpus *corpus;
};

struct scorer_entry {
	const struct kf_corpus *corpus;
	enum kf_board_kind board;
	char charset[KF_LAYOUT_KEYS + 1];   /* sorted */
	struct kf_weights weights;
	struct kf_scorer *scorer;
	unsigned refs;
	uint64_t last_used;
	bool memo_valid;                    /* stats of memo_layout */
	struct kf_layout memo_layout;
	struct kf_stats memo_stats;
};

struct kf__engine {
	char *corpus_dirs, *default_corpus;
	pthread_mutex_t mu;
	struct corpus_entry *corpora;
	struct scorer_entry *scorers;
	uint32_t n_scorers;
	uint64_t clock;                     /* use counter for LRU */
	uint64_t corpus_loads, scorer_builds;
};

/* ---- pure parts --------------------------------------------------------------- */

static bool readable(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, R_OK) == 0;
}

static bool try_path(struct kf_strbuf *path, const char *dir, size_t dir_len, const char *name,
	const char *suffix)
{
	size_t start = path->len;

	if (dir_len)
		kf_strbuf_addf(path, "%.*s/", (int)dir_len, dir);
	kf_strbuf_addf(path, "%s%s", name, suffix);
	if (!path->oom && readable(path->buf + start))
		return true;
	path->len = start;
	path->buf[start] = '\0';
	return false;
}

enum kf_err kf__corpus_resolve(const char *name, const char *dirs, const char *default_corpus,
	struct kf_strbuf *path, struct kf_strbuf *why)
{
	static const char *const suffixes[] = { "", ".kfc", ".json" };

	if (!name || !*name) {
		kf_strbuf_addstr(why, "the job names no corpus");
		return KF_EINVAL;
	}
	if (!strcmp(name, "default")) {
		if (default_corpus && try_path(path, NULL, 0, default_corpus, ""))
			return KF_OK;
		kf_strbuf_addf(why, "default corpus '%s' not found; build it with "
			       "scripts/default-corpus or set --default-corpus",
			       default_corpus ? default_corpus : "(none)");
		return KF_ENOENT;
	}
	if (strchr(name, '/')) {
		if (try_path(path, NULL, 0, name, ""))
			return KF_OK;
		kf_strbuf_addf(why, "corpus file '%s' not found or not readable on this worker",
			       name);
		return KF_ENOENT;
	}
	for (const char *d = dirs; d && *d;) {
		const char *end = strchr(d, ':');
		size_t n = end ? (size_t)(end - d) : strlen(d);

		for (size_t i = 0; n && i < sizeof suffixes / sizeof suffixes[0]; i++)
			if (try_path(path, d, n, name, suffixes[i]))
				return KF_OK;
		d = end ? end + 1 : d + n;
	}
	kf_strbuf_addf(why, "corpus '%s' not found as NAME, NAME.kfc or NAME.json in '%s' "
		       "(--corpus-dir)", name, dirs ? dirs : "");
	return KF_ENOENT;
}

enum kf_err kf__job_weights(const struct kf_msg_job_params *p, struct kf_weights *out,
	struct kf_strbuf *why)
{
	struct kf_strbuf text = KF_STRBUF_INIT;
	enum kf_err err;

	kf_weights_default(out);
	if (!p->n_weights)
		return KF_OK;
	for (size_t i = 0; i < p->n_weights; i++)
		kf_strbuf_addf(&text, "%s = %.17g\n", p->weights[i].name, p->weights[i].value);
	err = text.oom ? KF_ENOMEM : kf_weights_parse(out, text.buf, why);
	kf_strbuf_release(&text);
	return err;
}

/* QWERTY's characters in random places, pinned ones where QWERTY has them. */
static void random_layout(uint64_t seed, const char *pinned, struct kf_layout *out)
{
	struct kf_rng rng;
	int free_pos[KF_LAYOUT_KEYS], n = 0;

	kf_layout_named("qwerty", out);
	for (int i = 0; i < KF_LAYOUT_KEYS; i++)
		if (!pinned || !strchr(pinned, out->keys[i]))
			free_pos[n++] = i;
	/* Its own stream: the annealing uses `seed` for its swaps. */
	kf_rng_seed(&rng, seed ^ 0x9e3779b97f4a7c15ull);
	for (int i = n - 1; i > 0; i--) {
		int j = (int)kf_rng_below(&rng, (uint32_t)i + 1);

		kf_layout_swap(out, free_pos[i], free_pos[j]);
	}
}

enum kf_err kf__job_start_layout(const struct kf_msg_job_params *p, struct kf_layout *out,
	struct kf_strbuf *why)
{
	if (p->start_layout && *p->start_layout)
		return kf_layout_resolve(p->start_layout, out, why);
	random_layout(p->seed, p->pinned, out);
	return KF_OK;
}

static void sorted_charset(const struct kf_layout *l, char out[KF_LAYOUT_KEYS + 1])
{
	memcpy(out, l->keys, KF_LAYOUT_KEYS);
	out[KF_LAYOUT_KEYS] = '\0';
	for (int i = 1; i < KF_LAYOUT_KEYS; i++)
		for (int j = i; j > 0 && out[j - 1] > out[j]; j--) {
			char t = out[j];

			out[j] = out[j - 1];
			out[j - 1] = t;
		}
}

/* ---- caches ------------------------------------------------------------------- */

enum kf_err kf__engine_new(const struct kf__engine_opts *o, struct kf__engine **out)
{
	struct kf__engine *e = calloc(1, sizeof(*e));

	*out = NULL;
	if (!e)
		return KF_ENOMEM;
	e->corpus_dirs = o->corpus_dirs ? strdup(o->corpus_dirs) : NULL;
	e->default_corpus = o->default_corpus ? strdup(o->default_corpus) : NULL;
	e->n_scorers = o->max_running > KF__SCORERS_KEPT ? o->max_running : KF__SCORERS_KEPT;
	e->scorers = calloc(e->n_scorers, sizeof(*e->scorers));
	if ((o->corpus_dirs && !e->corpus_dirs) || (o->default_corpus && !e->default_corpus) ||
	    !e->scorers) {
		kf__engine_free(e);
		return KF_ENOMEM;
	}
	pthread_mutex_init(&e->mu, NULL);
	*out = e;
	return KF_OK;
}

void kf__engine_free(struct kf__engine *e)
{
	if (!e)
		return;
	for (uint32_t i = 0; e->scorers && i < e->n_scorers; i++)
		kf_scorer_free(e->scorers[i].scorer);
	free(e->scorers);
	while (e->corpora) {
		struct corpus_entry *next = e->corpora->next;

		kf_corpus_free(e->corpora->corpus);
		free(e->corpora->path);
		free(e->corpora);
		e->corpora = next;
	}
	pthread_mutex_destroy(&e->mu);
	free(e->corpus_dirs);
	free(e->default_corpus);
	free(e);
}

void kf__engine_counts(struct kf__engine *e, uint64_t *corpus_loads, uint64_t *scorer_builds)
{
	pthread_mutex_lock(&e->mu);
	*corpus_loads = e->corpus_loads;
	*scorer_builds = e->scorer_builds;
	pthread_mutex_unlock(&e->mu);
}

/* Under e->mu. Loading holds the lock: other lanes wait for the same
 * corpus rather than load it twice. */
static enum kf_err corpus_get(struct kf__engine *e, const char *path,
	const struct kf_corpus **out, struct kf_strbuf *why)
{
	struct corpus_entry *c;
	struct kf_corpus *corpus;
	uint64_t t0 = kf_clock_mono_ns();
	enum kf_err err;

	for (c = e->corpora; c; c = c->next) {
		if (!strcmp(c->path, path)) {
			*out = c->corpus;
			return KF_OK;
		}
	}
	if ((err = kf_corpus_load(path, &corpus, why)))
		return err;
	if (!(c = calloc(1, sizeof(*c))) || !(c->path = strdup(path))) {
		free(c);
		kf_corpus_free(corpus);
		return KF_ENOMEM;
	}
	c->corpus = corpus;
	c->next = e->corpora;
	e->corpora = c;
	e->corpus_loads++;
	KF_INFO(TARGET, "corpus loaded", KF_STR("path", path), KF_STR("name", corpus->name),
		KF_U64("chars", corpus->nchars), KF_U64("trigrams", corpus->ntrigrams),
		KF_U64("elapsed_us", (kf_clock_mono_ns() - t0) / 1000));
	*out = corpus;
	return KF_OK;
}

/* Under e->mu: a scorer for (corpus, board, charset, weights), referenced. */
static enum kf_err scorer_get(struct kf__engine *e, const struct kf_corpus *corpus,
	enum kf_board_kind board_kind, const struct kf_layout *start, const struct kf_weights *w,
	struct scorer_entry **out)
{
	struct scorer_entry *victim = NULL, *s;
	char charset[KF_LAYOUT_KEYS + 1];
	struct kf_board board;
	enum kf_err err;

	sorted_charset(start, charset);
	for (uint32_t i = 0; i < e->n_scorers; i++) {
		s = &e->scorers[i];
		if (s->scorer && s->corpus == corpus && s->board == board_kind &&
		    !strcmp(s->charset, charset) && kf_weights_equal(&s->weights, w)) {
			s->refs++;
			s->last_used = ++e->clock;
			*out = s;
			return KF_OK;
		}
		if (!s->refs && (!victim || !s->scorer ||
				 (victim->scorer && s->last_used < victim->last_used)))
			victim = s;
	}
	if (!victim)
		return KF_EFULL; /* more jobs at once than opts.max_running said */
	kf_board_init(&board, board_kind);
	kf_scorer_free(victim->scorer);
	memset(victim, 0, sizeof(*victim));
	if ((err = kf_scorer_new(&board, corpus, start, w, &victim->scorer)))
		return err;
	victim->corpus = corpus;
	victim->board = board_kind;
	memcpy(victim->charset, charset, sizeof charset);
	victim->weights = *w;
	victim->refs = 1;
	victim->last_used = ++e->clock;
	e->scorer_builds++;
	*out = victim;
	return KF_OK;
}

/* ---- the run ------------------------------------------------------------------- */

struct run_inputs {
	enum kf_board_kind board;
	struct kf_layout start;
	struct kf_weights weights;
	const struct kf_corpus *corpus;
	struct scorer_entry *scorer;
};

static enum kf_err prepare(struct kf__engine *e, const struct kf_msg_job_params *p,
	struct run_inputs *in, struct kf_strbuf *why)
{
	struct kf_strbuf path = KF_STRBUF_INIT;
	enum kf_err err;

	in->board = p->board == KF_MSG_BOARD_ORTHO ? KF_BOARD_ORTHO : KF_BOARD_ANSI;
	if (p->restarts > 1 && p->steps > UINT64_MAX / p->restarts) {
		kf_strbuf_addf(why, "steps (%llu) times restarts (%u) is too large",
			       (unsigned long long)p->steps, p->restarts);
		return KF_EINVAL;
	}
	if ((err = kf__job_start_layout(p, &in->start, why)) ||
	    (err = kf__job_weights(p, &in->weights, why)))
		return err;
	if ((err = kf__corpus_resolve(p->corpus, e->corpus_dirs, e->default_corpus, &path, why)))
		goto out;
	pthread_mutex_lock(&e->mu);
	err = corpus_get(e, path.buf, &in->corpus, why);
	if (!err && (err = scorer_get(e, in->corpus, in->board, &in->start, &in->weights,
				      &in->scorer)))
		kf_strbuf_addf(why, "cannot build a scorer: %s", kf_strerror(err));
	pthread_mutex_unlock(&e->mu);
out:
	kf_strbuf_release(&path);
	return err;
}

static void release_scorer(struct kf__engine *e, struct scorer_entry *s)
{
	pthread_mutex_lock(&e->mu);
	s->refs--;
	pthread_mutex_unlock(&e->mu);
}

/* Statistics of `best` over the whole corpus, memoised per scorer. */
static enum kf_err result_stats(struct kf__engine *e, const struct run_inputs *in,
	const struct kf_layout *best, struct kf_stats *st)
{
	struct scorer_entry *s = in->scorer;
	struct kf_board board;
	enum kf_err err;

	pthread_mutex_lock(&e->mu);
	if (s->memo_valid && !memcmp(&s->memo_layout, best, sizeof(*best))) {
		*st = s->memo_stats;
		pthread_mutex_unlock(&e->mu);
		return KF_OK;
	}
	pthread_mutex_unlock(&e->mu);
	kf_board_init(&board, in->board);
	if ((err = kf_stats_compute(&board, in->corpus, best, st)))
		return err;
	pthread_mutex_lock(&e->mu);
	s->memo_layout = *best;
	s->memo_stats = *st;
	s->memo_valid = true;
	pthread_mutex_unlock(&e->mu);
	return KF_OK;
}

static void fill_result(const struct kf_layout *best, double cost, const struct kf_stats *st,
	struct kf__completion *out)
{
	size_t n;
	const struct kf_stat_desc *d = kf_stat_descs(&n);

	out->has_result = true;
	snprintf(out->layout, sizeof out->layout, "%s", best->keys);
	out->cost = cost;
	out->n_stats = 0;
	for (size_t i = 0; i < n && i < KF__OUTBOX_MAX_STATS; i++)
		out->stats[out->n_stats++] = (struct kf_msg_named_value){ d[i].key,
			kf_stat_get(st, &d[i]) };
	memset(out->finger_usage, 0, sizeof out->finger_usage);
	for (int f = 0; f < KF_FINGER_COUNT && f < KF_MSG_FINGERS; f++)
		out->finger_usage[f] = st->finger_usage[f];
}

static enum kf_err anneal(const struct kf_msg_job_params *p, const struct kf__job_ctl *ctl,
	const struct run_inputs *in, struct kf_anneal_result *r, struct kf_strbuf *why)
{
	struct kf_anneal_params ap;

	kf_anneal_params_init(&ap);
	ap.steps = p->steps;
	ap.restarts = p->restarts ? p->restarts : 1;
	ap.seed = p->seed;
	ap.start_temp = p->start_temp;
	ap.pinned = p->pinned;
	ap.cancel = ctl->cancel;
	ap.progress = ctl->progress;
	ap.progress_ctx = ctl->progress_ctx;
	if (ctl->progress_interval)
		ap.progress_interval = ctl->progress_interval;
	ap.observer = ctl->observer;
	ap.observer_ctx = ctl->observer_ctx;
	return kf_anneal_run(in->scorer->scorer, &in->start, &ap, r, why);
}

enum kf_err kf__job_run(struct kf__engine *e, const struct kf_msg_job_params *p,
	const struct kf__job_ctl *ctl, struct kf__completion *out, struct kf_strbuf *why)
{
	uint64_t t0 = kf_clock_mono_ns();
	struct run_inputs in = { 0 };
	struct kf_anneal_result r = { 0 };
	struct kf_stats st;
	enum kf_err err, serr;

	out->has_result = false;
	if ((err = prepare(e, p, &in, why)))
		return err;
	if (p->steps == 0 || (ctl->cancel && atomic_load(ctl->cancel))) {
		/* Nothing to search (or stopped before the start): the start
		 * layout is the result. No calibration either. */
		r.best = in.start;
		err = kf_score_layout(in.scorer->scorer, &in.start, &r.best_cost);
		if (!err && p->steps)
			err = KF_ECANCELED;
	} else {
		err = anneal(p, ctl, &in, &r, why);
	}
	if (err == KF_OK || err == KF_ECANCELED) {
		if ((serr = result_stats(e, &in, &r.best, &st))) {
			kf_strbuf_addf(why, "statistics of the result: %s", kf_strerror(serr));
			err = serr;
		} else {
			fill_result(&r.best, r.best_cost, &st, out);
			out->steps = r.steps;
			out->steps_per_sec = r.steps_per_second;
		}
	}
	out->elapsed_ms = (kf_clock_mono_ns() - t0) / 1000000u;
	release_scorer(e, in.scorer);
	return err;
}
