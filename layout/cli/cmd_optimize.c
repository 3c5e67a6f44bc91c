/*
 * cmd_optimize.c — `keyforge-layout optimize`: simulated annealing from a
 * start layout, then the best layout beside the start (docs/layout.md).
 */
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/json.h"
#include "layout/anneal.h"
#include "layout/cli/cli.h"
#include "layout/cli/engine_cli.h"

static const char usage[] =
	"usage: keyforge-layout optimize --corpus FILE [--start NAME|STRING] [--board ansi|ortho]\n"
	"                                [--steps N] [--restarts N] [--seed S] [--temp T]\n"
	"                                [--pin KEYS] [--weights FILE] [--json]\n"
	"\n"
	"Searches for a layout of the start layout's 30 characters with a lower\n"
	"score by simulated annealing over key swaps, then prints the best layout,\n"
	"its statistics beside the start layout's, and the improvement. Progress\n"
	"is shown on stderr when it is a terminal. Ctrl-C stops the search and\n"
	"prints the best layout so far.\n"
	"\n"
	"  --corpus FILE   a corpus: compact .kfc or Oxeylyzer JSON\n"
	"  --start L       start layout: a name or a 30-character string (qwerty)\n"
	"  --board B       ansi (row-staggered, default) or ortho\n"
	"  --steps N       swap attempts per restart (1000000)\n"
	"  --restarts N    independent annealings from the start layout (1)\n"
	"  --seed S        random seed; the same seed gives the same result\n"
	"                  (default: from the clock, printed)\n"
	"  --temp T        start temperature (default 0: calibrated)\n"
	"  --pin KEYS      characters that keep their place, e.g. ',./;'\n"
	"  --weights FILE  score weights, 'name = value' lines or a JSON object\n"
	"  --json          one JSON object: start, best, improvement, run figures\n"
	"  -h, --help      this text\n";

struct optimize_opts {
	const char *corpus, *start, *board, *weights, *pin;
	const char *steps, *restarts, *seed, *temp;
	bool json;
};

static atomic_bool interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	atomic_store(&interrupted, true);
}

static void on_opt(void *ctx, int opt, const char *arg)
{
	struct optimize_opts *o = ctx;

	switch (opt) {
	case 'c': o->corpus = arg; break;
	case 's': o->start = arg; break;
	case 'b': o->board = arg; break;
	case 'n': o->steps = arg; break;
	case 'r': o->restarts = arg; break;
	case 'S': o->seed = arg; break;
	case 't': o->temp = arg; break;
	case 'p': o->pin = arg; break;
	case 'w': o->weights = arg; break;
	case 'j': o->json = true; break;
	}
}

/* Returns -1 to go on, else the exit status. */
static int parse(int argc, char **argv, struct optimize_opts *o)
{
	static const struct option longopts[] = {
		{ "corpus", required_argument, NULL, 'c' },
		{ "start", required_argument, NULL, 's' },
		{ "board", required_argument, NULL, 'b' },
		{ "steps", required_argument, NULL, 'n' },
		{ "restarts", required_argument, NULL, 'r' },
		{ "seed", required_argument, NULL, 'S' },
		{ "temp", required_argument, NULL, 't' },
		{ "pin", required_argument, NULL, 'p' },
		{ "weights", required_argument, NULL, 'w' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int status = kf__cli_getopt("optimize", argc, argv, longopts, usage, on_opt, o);

	if (status >= 0)
		return status;
	if (!o->corpus) {
		fprintf(stderr, "keyforge-layout optimize: --corpus is required; see --help\n");
		return KF__EXIT_USAGE;
	}
	return -1;
}

static int bad_value(const char *flag, const char *value, const char *expected)
{
	fprintf(stderr, "keyforge-layout optimize: %s '%s' is not %s\n", flag, value, expected);
	return KF__EXIT_USAGE;
}

/* Turns the numeric options into anneal parameters. */
static int numbers(const struct optimize_opts *o, struct kf_anneal_params *p)
{
	uint64_t v;

	if (o->steps && (!kf__cli_parse_u64(o->steps, &p->steps) || p->steps == 0))
		return bad_value("--steps", o->steps, "a positive integer");
	if (o->restarts) {
		if (!kf__cli_parse_u64(o->restarts, &v) || v == 0 || v > 1000000)
			return bad_value("--restarts", o->restarts, "an integer 1..1000000");
		p->restarts = (uint32_t)v;
	}
	if (o->seed && !kf__cli_parse_u64(o->seed, &p->seed))
		return bad_value("--seed", o->seed, "an unsigned integer");
	if (!o->seed)
		p->seed = kf_clock_wall_ns() ^ ((uint64_t)getpid() << 32);
	if (o->temp && (!kf__cli_parse_double(o->temp, &p->start_temp) || p->start_temp < 0))
		return bad_value("--temp", o->temp, "a number >= 0");
	if (p->steps > UINT64_MAX / p->restarts)
		return bad_value("--steps", o->steps, "small enough for that many restarts");
	return 0;
}

struct progress_line {
	uint64_t last_ns;
	bool shown;
};

static void on_progress(void *ctx, const struct kf_anneal_progress *pr)
{
	struct progress_line *line = ctx;
	uint64_t now = kf_clock_mono_ns();

	if (now - line->last_ns < 100000000 && pr->step < pr->total_steps)
		return; /* ten updates a second are plenty */
	line->last_ns = now;
	line->shown = true;
	fprintf(stderr, "\r\033[K  restart %u  step %llu/%llu (%.0f%%)  T %.4g  cost %.4f  best %.4f",
		pr->restart + 1, (unsigned long long)pr->step, (unsigned long long)pr->total_steps,
		100.0 * (double)pr->step / (double)pr->total_steps, pr->temperature,
		pr->current_cost, pr->best_cost);
}

static void print_text(const struct kf_board *board, const struct kf__scored *cols,
		       const struct kf_anneal_params *p, const struct kf_anneal_result *r)
{
	struct kf_strbuf sb = KF_STRBUF_INIT;
	double gain = cols[0].cost != 0 ? 100.0 * (cols[0].cost - cols[1].cost) / fabs(cols[0].cost)
					: 0;

	kf_layout_draw(&cols[1].layout, board, "  ", &sb);
	printf("best layout%s: %s\n\n%s\n", r->cancelled ? " (search interrupted)" : "",
	       cols[1].layout.keys, sb.buf);
	kf__cli_print_table(stdout, cols, 2);
	printf("\nscore %.4f -> %.4f (%.1f%% better)\n", cols[0].cost, cols[1].cost, gain);
	printf("%llu steps in %u restart(s), %.2f s, %.0f steps/s; seed %llu, start "
	       "temperature %.4g%s\n", (unsigned long long)r->steps, r->restarts, r->seconds,
	       r->steps_per_second, (unsigned long long)p->seed, r->start_temp,
	       p->start_temp == 0 ? " (calibrated)" : "");
	kf_strbuf_release(&sb);
}

static void print_json(const struct kf__scored *cols, const struct kf_anneal_params *p,
		       const struct kf_anneal_result *r, const char *corpus_name,
		       const struct kf_board *board, const struct kf_weights *w)
{
	struct kf_strbuf sb = KF_STRBUF_INIT;

	kf_strbuf_addstr(&sb, "{\"start\":");
	kf__cli_add_json(&sb, &cols[0]);
	kf_strbuf_addstr(&sb, ",\"best\":");
	kf__cli_add_json(&sb, &cols[1]);
	kf_strbuf_addstr(&sb, ",\"improvement\":");
	kf_json_add_double(&sb, cols[0].cost - cols[1].cost);
	kf_strbuf_addstr(&sb, ",\"improvement_pct\":");
	kf_json_add_double(&sb, cols[0].cost != 0 ? 100.0 * (cols[0].cost - cols[1].cost) /
							     fabs(cols[0].cost) : 0.0);
	kf_strbuf_addf(&sb, ",\"steps\":%llu,\"restarts\":%u,\"seed\":%llu,\"start_temp\":",
		       (unsigned long long)r->steps, r->restarts, (unsigned long long)p->seed);
	kf_json_add_double(&sb, r->start_temp);
	kf_strbuf_addstr(&sb, ",\"seconds\":");
	kf_json_add_double(&sb, r->seconds);
	kf_strbuf_addstr(&sb, ",\"steps_per_second\":");
	kf_json_add_double(&sb, r->steps_per_second);
	kf_strbuf_addf(&sb, ",\"cancelled\":%s,\"board\":", r->cancelled ? "true" : "false");
	kf_json_add_cstr(&sb, kf_board_kind_name(board->kind));
	kf_strbuf_addstr(&sb, ",\"corpus\":");
	kf_json_add_cstr(&sb, corpus_name);
	kf_strbuf_addstr(&sb, ",\"weights\":");
	kf_weights_add_json(w, &sb);
	kf_strbuf_addstr(&sb, "}\n");
	fputs(sb.buf, stdout);
	kf_strbuf_release(&sb);
}

static int run(const struct optimize_opts *o, struct kf_anneal_params *p,
	       const struct kf_board *board, const struct kf_corpus *corpus,
	       const struct kf_scorer *scorer, struct kf__scored *cols)
{
	struct kf_anneal_result r;
	struct kf_strbuf why = KF_STRBUF_INIT;
	struct progress_line line = { 0, false };
	struct sigaction sa = { .sa_handler = on_sigint, .sa_flags = SA_RESETHAND }, old;
	enum kf_err err;
	int rc;

	if (!o->json && isatty(STDERR_FILENO)) {
		p->progress = on_progress;
		p->progress_ctx = &line;
		p->progress_interval = 16384;
	}
	p->cancel = &interrupted;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old);
	err = kf_anneal_run(scorer, &cols[0].layout, p, &r, &why);
	sigaction(SIGINT, &old, NULL);
	if (line.shown)
		fputs("\r\033[K", stderr);
	if (err != KF_OK && err != KF_ECANCELED) {
		fprintf(stderr, "keyforge-layout optimize: %s\n", why.len ? why.buf : kf_strerror(err));
		kf_strbuf_release(&why);
		return err == KF_EINVAL ? KF__EXIT_USAGE : KF__EXIT_FAIL;
	}
	kf_strbuf_release(&why);
	cols[1].layout = r.best;
	if ((rc = kf__cli_score("optimize", board, corpus, scorer, &cols[1])))
		return rc;
	if (o->json)
		print_json(cols, p, &r, kf__cli_corpus_name(corpus, o->corpus), board,
			   kf_scorer_weights(scorer));
	else
		print_text(board, cols, p, &r);
	return r.cancelled ? 130 : 0;
}

int kf_cli_optimize(int argc, char **argv)
{
	struct optimize_opts o = { 0 };
	struct kf_anneal_params params;
	struct kf_board board;
	struct kf_weights weights;
	struct kf__scored cols[2] = { { .title = "start" }, { .title = "best" } };
	struct kf_corpus *corpus = NULL;
	struct kf_scorer *scorer = NULL;
	int rc = parse(argc, argv, &o);

	if (rc >= 0)
		return rc;
	kf_anneal_params_init(&params);
	params.pinned = o.pin;
	if ((rc = numbers(&o, &params)) || (rc = kf__cli_board("optimize", o.board, &board)) ||
	    (rc = kf__cli_layout("optimize", "--start", o.start ? o.start : "qwerty",
				 &cols[0].layout)) ||
	    (rc = kf__cli_weights("optimize", o.weights, &weights)) ||
	    (rc = kf__cli_load_corpus("optimize", o.corpus, &corpus)))
		goto out;
	if (o.start && kf_layout_named(o.start, &cols[0].layout) == KF_OK)
		cols[0].title = o.start;
	else if (!o.start)
		cols[0].title = "qwerty";
	if (kf_scorer_new(&board, corpus, &cols[0].layout, &weights, &scorer) != KF_OK) {
		fprintf(stderr, "keyforge-layout optimize: out of memory\n");
		rc = KF__EXIT_FAIL;
		goto out;
	}
	if ((rc = kf__cli_score("optimize", &board, corpus, scorer, &cols[0])))
		goto out;
	rc = run(&o, &params, &board, corpus, scorer, cols);
out:
	kf_scorer_free(scorer);
	kf_corpus_free(corpus);
	return rc;
}
