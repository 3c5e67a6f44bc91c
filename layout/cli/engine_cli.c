/*
 * engine_cli.c — helpers shared by `keyforge-layout analyze` and `optimize`.
 */
#include "layout/cli/engine_cli.h"

#include <getopt.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"

bool kf__cli_parse_u64(const char *text, uint64_t *out)
{
	char *end;
	unsigned long long v;
	double d;

	if (!text || !*text || *text == '-' || *text == '+')
		return false;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (!*end && errno == 0) {
		*out = v;
		return true;
	}
	/* 1e6, 2.5e5: convenient for step counts */
	d = strtod(text, &end);
	if (*end || !(d >= 0) || d > 1e18 || d != floor(d))
		return false;
	*out = (uint64_t)d;
	return true;
}

bool kf__cli_parse_double(const char *text, double *out)
{
	char *end;
	double v;

	if (!text || !*text)
		return false;
	v = strtod(text, &end);
	if (*end || !isfinite(v))
		return false;
	*out = v;
	return true;
}

int kf__cli_load_corpus(const char *cmd, const char *path, struct kf_corpus **out)
{
	struct kf_strbuf why = KF_STRBUF_INIT;
	enum kf_err err = kf_corpus_load(path, out, &why);

	if (err != KF_OK) {
		fprintf(stderr, "keyforge-layout %s: %s\n", cmd,
			why.len ? why.buf : kf_strerror(err));
		kf_strbuf_release(&why);
		return KF__EXIT_FAIL;
	}
	kf_strbuf_release(&why);
	return 0;
}

int kf__cli_layout(const char *cmd, const char *what, const char *text, struct kf_layout *out)
{
	struct kf_strbuf why = KF_STRBUF_INIT;
	enum kf_err err = kf_layout_resolve(text, out, &why);

	if (err != KF_OK)
		fprintf(stderr, "keyforge-layout %s: bad %s: %s\n", cmd, what, why.buf);
	kf_strbuf_release(&why);
	return err == KF_OK ? 0 : KF__EXIT_USAGE;
}

int kf__cli_board(const char *cmd, const char *text, struct kf_board *out)
{
	enum kf_board_kind kind = KF_BOARD_ANSI;

	if (text && kf_board_kind_parse(text, &kind) != KF_OK) {
		fprintf(stderr, "keyforge-layout %s: board '%s' is unknown; use 'ansi' or 'ortho'\n",
			cmd, text);
		return KF__EXIT_USAGE;
	}
	kf_board_init(out, kind);
	return 0;
}

int kf__cli_weights(const char *cmd, const char *path, struct kf_weights *out)
{
	struct kf_strbuf why = KF_STRBUF_INIT;
	enum kf_err err;

	kf_weights_default(out);
	if (!path)
		return 0;
	err = kf_weights_load(out, path, &why);
	if (err != KF_OK)
		fprintf(stderr, "keyforge-layout %s: %s\n", cmd, why.len ? why.buf : kf_strerror(err));
	kf_strbuf_release(&why);
	return err == KF_OK ? 0 : KF__EXIT_FAIL;
}

int kf__cli_score(const char *cmd, const struct kf_board *board, const struct kf_corpus *corpus,
		  const struct kf_scorer *scorer, struct kf__scored *out)
{
	enum kf_err err = kf_stats_compute(board, corpus, &out->layout, &out->stats);

	if (err == KF_OK)
		err = kf_score_layout(scorer, &out->layout, &out->cost);
	if (err != KF_OK)
		fprintf(stderr, "keyforge-layout %s: cannot score '%s': %s\n", cmd,
			out->layout.keys, kf_strerror(err));
	return err == KF_OK ? 0 : KF__EXIT_FAIL;
}

static void print_row(FILE *out, const char *label, const double *v, int n, const char *unit)
{
	fprintf(out, "  %-14s", label);
	for (int i = 0; i < n; i++)
		fprintf(out, " %10.3f%s", v[i], unit);
	if (n == 2)
		fprintf(out, " %+10.3f", v[1] - v[0]);
	fputc('\n', out);
}

void kf__cli_print_table(FILE *out, const struct kf__scored *cols, int ncols)
{
	size_t n;
	const struct kf_stat_desc *descs = kf_stat_descs(&n);
	double v[2];

	fprintf(out, "  %-14s", "statistic (%)");
	for (int i = 0; i < ncols; i++)
		fprintf(out, " %10.10s ", cols[i].title);
	if (ncols == 2)
		fprintf(out, " %10s", "change");
	fputc('\n', out);
	for (size_t d = 0; d < n; d++) {
		for (int i = 0; i < ncols; i++)
			v[i] = kf_stat_get(&cols[i].stats, &descs[d]);
		print_row(out, descs[d].label, v, ncols, " ");
	}
	for (int f = 0; f < KF_FINGER_COUNT; f++) {
		char label[32];

		snprintf(label, sizeof(label), "finger %s", kf_finger_name((enum kf_finger)f));
		for (int i = 0; i < ncols; i++)
			v[i] = cols[i].stats.finger_usage[f];
		print_row(out, label, v, ncols, " ");
	}
	for (int i = 0; i < ncols; i++)
		v[i] = cols[i].cost;
	print_row(out, "score", v, ncols, " ");
}

void kf__cli_add_json(struct kf_strbuf *sb, const struct kf__scored *s)
{
	kf_strbuf_addstr(sb, "{\"layout\":");
	kf_json_add_cstr(sb, s->layout.keys);
	kf_strbuf_addstr(sb, ",\"score\":");
	kf_json_add_double(sb, s->cost);
	kf_strbuf_addch(sb, ',');
	kf_stats_add_json(&s->stats, sb);
	kf_strbuf_addch(sb, '}');
}

const char *kf__cli_corpus_name(const struct kf_corpus *corpus, const char *path)
{
	const char *slash;

	if (corpus->name[0])
		return corpus->name;
	slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

int kf__cli_getopt(const char *cmd, int argc, char **argv, const struct option *longopts,
		   const char *usage, void (*on_opt)(void *ctx, int opt, const char *arg),
		   void *ctx)
{
	int opt;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			fputs(usage, stdout);
			return 0;
		case ':':
			fprintf(stderr, "keyforge-layout %s: '%s' needs a value; see --help\n", cmd,
				argv[optind - 1]);
			return KF__EXIT_USAGE;
		case '?':
			fprintf(stderr, "keyforge-layout %s: unknown option '%s'; see --help\n", cmd,
				argv[optind - 1]);
			return KF__EXIT_USAGE;
		default:
			on_opt(ctx, opt, optarg);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "keyforge-layout %s: unexpected argument '%s'; see --help\n", cmd,
			argv[optind]);
		return KF__EXIT_USAGE;
	}
	return -1;
}
