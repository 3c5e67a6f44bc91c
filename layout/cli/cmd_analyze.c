/*
 * cmd_analyze.c — `keyforge-layout analyze`: one layout's statistics on a
 * corpus (docs/layout.md defines them).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "layout/cli/cli.h"
#include "layout/cli/engine_cli.h"

static const char usage[] =
	"usage: keyforge-layout analyze --corpus FILE --layout NAME|STRING\n"
	"                               [--board ansi|ortho] [--weights FILE] [--json]\n"
	"\n"
	"Draws the layout and prints its statistics on the corpus: SFB, SFS, LSB,\n"
	"scissors, trigram classes, finger usage, home-row and left-hand shares\n"
	"(percentages; docs/layout.md defines each one and its denominator), and\n"
	"its score (lower is better).\n"
	"\n"
	"  --corpus FILE   a corpus: compact .kfc or Oxeylyzer JSON\n"
	"  --layout L      qwerty, dvorak, colemak, colemak-dh, workman, or a\n"
	"                  30-character string, rows left to right, top row first\n"
	"  --board B       ansi (row-staggered, default) or ortho\n"
	"  --weights FILE  score weights, 'name = value' lines or a JSON object\n"
	"  --json          one JSON object: layout, score and the statistics\n"
	"  -h, --help      this text\n";

struct analyze_opts {
	const char *corpus, *layout, *board, *weights;
	bool json;
};

static void on_opt(void *ctx, int opt, const char *arg)
{
	struct analyze_opts *o = ctx;

	switch (opt) {
	case 'c': o->corpus = arg; break;
	case 'l': o->layout = arg; break;
	case 'b': o->board = arg; break;
	case 'w': o->weights = arg; break;
	case 'j': o->json = true; break;
	}
}

/* Returns -1 to go on, else the exit status. */
static int parse(int argc, char **argv, struct analyze_opts *o)
{
	static const struct option longopts[] = {
		{ "corpus", required_argument, NULL, 'c' },
		{ "layout", required_argument, NULL, 'l' },
		{ "board", required_argument, NULL, 'b' },
		{ "weights", required_argument, NULL, 'w' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int status = kf__cli_getopt("analyze", argc, argv, longopts, usage, on_opt, o);

	if (status >= 0)
		return status;
	if (!o->corpus || !o->layout) {
		fprintf(stderr, "keyforge-layout analyze: --corpus and --layout are required; "
			"see --help\n");
		return KF__EXIT_USAGE;
	}
	return -1;
}

static void print_text(const struct analyze_opts *o, const struct kf_board *board,
		       const struct kf_corpus *corpus, const struct kf__scored *s)
{
	struct kf_strbuf sb = KF_STRBUF_INIT;

	kf_layout_draw(&s->layout, board, "  ", &sb);
	printf("%s on %s (%s board)\n\n%s\n", s->title, kf__cli_corpus_name(corpus, o->corpus),
	       kf_board_kind_name(board->kind), sb.buf);
	kf__cli_print_table(stdout, s, 1);
	kf_strbuf_release(&sb);
}

static void print_json(const struct analyze_opts *o, const struct kf_board *board,
		       const struct kf_corpus *corpus, const struct kf__scored *s)
{
	struct kf_strbuf sb = KF_STRBUF_INIT;

	kf__cli_add_json(&sb, s);
	if (sb.len) /* reopen the object: add where it was measured */
		sb.buf[--sb.len] = '\0';
	kf_strbuf_addstr(&sb, ",\"board\":");
	kf_json_add_cstr(&sb, kf_board_kind_name(board->kind));
	kf_strbuf_addstr(&sb, ",\"corpus\":");
	kf_json_add_cstr(&sb, kf__cli_corpus_name(corpus, o->corpus));
	kf_strbuf_addstr(&sb, "}\n");
	fputs(sb.buf, stdout);
	kf_strbuf_release(&sb);
}

int kf_cli_analyze(int argc, char **argv)
{
	struct analyze_opts o = { 0 };
	struct kf_board board;
	struct kf_weights weights;
	struct kf__scored s = { .title = NULL };
	struct kf_corpus *corpus = NULL;
	struct kf_scorer *scorer = NULL;
	int rc = parse(argc, argv, &o);

	if (rc >= 0)
		return rc;
	if ((rc = kf__cli_board("analyze", o.board, &board)) ||
	    (rc = kf__cli_layout("analyze", "--layout", o.layout, &s.layout)) ||
	    (rc = kf__cli_weights("analyze", o.weights, &weights)) ||
	    (rc = kf__cli_load_corpus("analyze", o.corpus, &corpus)))
		goto out;
	s.title = o.layout;
	if (kf_scorer_new(&board, corpus, &s.layout, &weights, &scorer) != KF_OK) {
		fprintf(stderr, "keyforge-layout analyze: out of memory\n");
		rc = KF__EXIT_FAIL;
		goto out;
	}
	if ((rc = kf__cli_score("analyze", &board, corpus, scorer, &s)))
		goto out;
	if (o.json)
		print_json(&o, &board, corpus, &s);
	else
		print_text(&o, &board, corpus, &s);
out:
	kf_scorer_free(scorer);
	kf_corpus_free(corpus);
	return rc;
}
