/*
 * engine_cli.h — what `analyze` and `optimize` share: option values, loading
 * the inputs with one clear line on error, the statistics table and JSON.
 * Internal to keyforge-layout (kf__ names).
 */
#ifndef KF_LAYOUT_CLI_ENGINE_CLI_H
#define KF_LAYOUT_CLI_ENGINE_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct option;

#include "common/strbuf.h"
#include "layout/board.h"
#include "layout/corpus.h"
#include "layout/layout.h"
#include "layout/score.h"
#include "layout/stats.h"

#define KF__EXIT_FAIL 1
#define KF__EXIT_USAGE 2

/* Runs getopt_long over the options of `cmd`: on_opt(ctx, opt, optarg) for
 * each one; --help (mapped to 'h' in longopts) prints `usage` and returns 0;
 * an unknown option, a missing value or a stray argument prints one line on
 * stderr and returns KF__EXIT_USAGE; -1 means parsing went through. */
int kf__cli_getopt(const char *cmd, int argc, char **argv, const struct option *longopts,
		   const char *usage, void (*on_opt)(void *ctx, int opt, const char *arg),
		   void *ctx);

/* Unsigned decimal integer (also 1e6 / 2.5e5 when integral); false if not. */
bool kf__cli_parse_u64(const char *text, uint64_t *out);
bool kf__cli_parse_double(const char *text, double *out);

/* Each prints "keyforge-layout <cmd>: ..." on stderr and returns the exit
 * status to use when it fails (0 on success). */
int kf__cli_load_corpus(const char *cmd, const char *path, struct kf_corpus **out);
int kf__cli_layout(const char *cmd, const char *what, const char *text, struct kf_layout *out);
int kf__cli_board(const char *cmd, const char *text, struct kf_board *out);
int kf__cli_weights(const char *cmd, const char *path, struct kf_weights *out);

/* A layout with its statistics and cost, as the commands print them. */
struct kf__scored {
	const char *title; /* column heading: "qwerty", "best", ... */
	struct kf_layout layout;
	struct kf_stats stats;
	double cost;
};

/* Computes stats (over the whole corpus) and cost (with `scorer`). */
int kf__cli_score(const char *cmd, const struct kf_board *board, const struct kf_corpus *corpus,
		  const struct kf_scorer *scorer, struct kf__scored *out);

/* The statistics table: one column per layout, plus a change column when
 * there are two. */
void kf__cli_print_table(FILE *out, const struct kf__scored *cols, int ncols);

/* {"layout":"...","score":x,"sfb":..,...,"left_hand":..} */
void kf__cli_add_json(struct kf_strbuf *sb, const struct kf__scored *s);

/* A display name for a corpus: its name, else the file's base name. */
const char *kf__cli_corpus_name(const struct kf_corpus *corpus, const char *path);

#endif
