/*
 * cmd_corpus.c — `keyforge-layout corpus build|info|convert`: make a corpus
 * from text, describe one, convert Oxeylyzer JSON to the compact format.
 * docs/corpus.md describes the rules and the file format.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/json.h"
#include "common/strbuf.h"
#include "layout/cli/cli.h"
#include "layout/corpus.h"
#include "layout/corpus_internal.h"

#define TOP_GRAMS 10

static const char build_usage[] =
	"usage: keyforge-layout corpus build TEXT... -o FILE [--name NAME]\n"
	"\n"
	"Counts characters, bigrams, skip-1 grams and trigrams of UTF-8 text files\n"
	"('-' is standard input) and writes them as a compact corpus (.kfc).\n"
	"Capitals and shifted symbols count as the shift symbol U+21D1 followed by\n"
	"the unshifted key, n-grams do not cross whitespace (docs/corpus.md).\n"
	"\n"
	"  -o, --output FILE  the corpus to write (replaced atomically)\n"
	"  --name NAME        its name (default: the first file's base name)\n"
	"  -h, --help         this text\n";

static const char info_usage[] =
	"usage: keyforge-layout corpus info FILE [--json]\n"
	"\n"
	"Describes a corpus, compact (.kfc) or Oxeylyzer JSON: totals, distinct\n"
	"n-grams, the most frequent characters and n-grams, and the load time.\n"
	"\n"
	"  --json      one JSON object instead of text\n"
	"  -h, --help  this text\n";

static const char convert_usage[] =
	"usage: keyforge-layout corpus convert IN -o FILE [--name NAME]\n"
	"\n"
	"Reads a corpus (Oxeylyzer JSON or .kfc) and writes it as .kfc, which\n"
	"loads about twenty times faster.\n"
	"\n"
	"  -o, --output FILE  the corpus to write (replaced atomically)\n"
	"  --name NAME        a new name (default: the one it has)\n"
	"  -h, --help         this text\n";

struct opts {
	const char *output, *name;
	bool json;
};

/* Parses options of a sub-command; positionals are left in argv[optind..].
 * Returns -1 to go on, otherwise the exit status. */
static int parse_opts(int argc, char **argv, const char *usage, bool allow_json,
		      struct opts *o)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "name", required_argument, NULL, 'N' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;
	optind = 0; /* glibc: start over, argv differs from the last call */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, allow_json ? ":h" : ":ho:", longopts, NULL)) != -1) {
		if (opt == 'h') {
			fputs(usage, stdout);
			return 0;
		}
		if (opt == 'o' && !allow_json) {
			o->output = optarg;
		} else if (opt == 'N' && !allow_json) {
			o->name = optarg;
		} else if (opt == 'j' && allow_json) {
			o->json = true;
		} else {
			const char *arg = argv[optind - 1];
			fprintf(stderr,
				"keyforge-layout corpus %s: %s '%s'; see 'keyforge-layout corpus %s "
				"--help'\n",
				argv[0], opt == ':' ? "missing value for" : "unknown option", arg,
				argv[0]);
			return 2;
		}
	}
	return -1;
}

static int usage_error(const char *cmd, const char *what)
{
	fprintf(stderr, "keyforge-layout corpus %s: %s; see 'keyforge-layout corpus %s --help'\n",
		cmd, what, cmd);
	return 2;
}

static int failed(const char *cmd, enum kf_err err, const struct kf_strbuf *why)
{
	fprintf(stderr, "keyforge-layout corpus %s: %s\n", cmd,
		why->len ? why->buf : kf_strerror(err));
	return 1;
}

/* ---- build ----------------------------------------------------------------- */

static void print_written(const char *path, const struct kf_corpus *c, uint64_t ns)
{
	printf("wrote %s: corpus '%s', %llu characters (%u distinct), %zu bigrams, "
	       "%zu skipgrams, %zu trigrams, in %.2f s\n",
	       path, c->name, (unsigned long long)c->char_total, c->nchars, c->nbigrams,
	       c->nskipgrams, c->ntrigrams, ns / 1e9);
}

static enum kf_err build(char **paths, int npaths, const char *name, struct kf_corpus **out,
			 struct kf_strbuf *why)
{
	struct kf_corpus_builder *b = kf_corpus_builder_new();
	enum kf_err err = b ? KF_OK : KF_ENOMEM;
	for (int i = 0; i < npaths && !err; i++)
		err = kf_corpus_builder_add_file(b, paths[i], why);
	if (!err) {
		struct kf_corpus_build_stats st;
		kf_corpus_builder_stats(b, &st);
		if (st.invalid_utf8)
			fprintf(stderr,
				"keyforge-layout corpus build: warning: %llu invalid UTF-8 "
				"sequences were counted as word breaks\n",
				(unsigned long long)st.invalid_utf8);
		err = kf_corpus_builder_finish(b, name, out, why);
	}
	kf_corpus_builder_free(b);
	return err;
}

static int cmd_build(int argc, char **argv)
{
	struct opts o = { 0 };
	int rc = parse_opts(argc, argv, build_usage, false, &o);
	if (rc >= 0)
		return rc;
	if (optind >= argc)
		return usage_error("build", "no text file given");
	if (!o.output)
		return usage_error("build", "missing -o FILE");
	if (o.name && (!*o.name || strlen(o.name) > 63))
		return usage_error("build", "--name must have 1 to 63 bytes");
	char *base = NULL;
	if (!o.name) { /* the first file's base name, without extension */
		const char *slash = strrchr(argv[optind], '/');
		base = strdup(slash ? slash + 1 : argv[optind]);
		char *dot = base ? strrchr(base, '.') : NULL;
		if (dot && dot != base)
			*dot = '\0';
		o.name = base && *base && strcmp(base, "-") ? base : "stdin";
	}
	struct kf_strbuf why = KF_STRBUF_INIT;
	struct kf_corpus *c = NULL;
	uint64_t t0 = kf_clock_mono_ns();
	enum kf_err err = build(argv + optind, argc - optind, o.name, &c, &why);
	if (!err)
		err = kf_corpus_save(c, o.output, &why);
	rc = err ? failed("build", err, &why) : 0;
	if (!err)
		print_written(o.output, c, kf_clock_mono_ns() - t0);
	kf_corpus_free(c);
	kf_strbuf_release(&why);
	free(base);
	return rc;
}

/* ---- convert --------------------------------------------------------------- */

static int cmd_convert(int argc, char **argv)
{
	struct opts o = { 0 };
	int rc = parse_opts(argc, argv, convert_usage, false, &o);
	if (rc >= 0)
		return rc;
	if (optind + 1 != argc)
		return usage_error("convert", "give exactly one input corpus");
	if (!o.output)
		return usage_error("convert", "missing -o FILE");
	if (o.name && (!*o.name || strlen(o.name) > 63))
		return usage_error("convert", "--name must have 1 to 63 bytes");
	struct kf_strbuf why = KF_STRBUF_INIT;
	struct kf_corpus *c = NULL;
	uint64_t t0 = kf_clock_mono_ns();
	enum kf_err err = kf_corpus_load(argv[optind], &c, &why);
	if (!err && o.name) {
		memset(c->name, 0, sizeof c->name);
		memcpy(c->name, o.name, strlen(o.name));
	}
	if (!err)
		err = kf_corpus_save(c, o.output, &why);
	rc = err ? failed("convert", err, &why) : 0;
	if (!err)
		print_written(o.output, c, kf_clock_mono_ns() - t0);
	kf_corpus_free(c);
	kf_strbuf_release(&why);
	return rc;
}

/* ---- info ------------------------------------------------------------------ */

struct info {
	const char *path;
	const char *format;
	long long bytes;
	double load_ms;
};

static void add_gram(struct kf_strbuf *sb, const struct kf_corpus *c, const uint32_t *ids,
		     unsigned n)
{
	char u[4];
	for (unsigned k = 0; k < n; k++)
		kf_strbuf_add(sb, u, kf__utf8_put(u, c->codepoints[ids[k]]));
}

static void info_grams(struct kf_strbuf *sb, const struct kf_corpus *c, const char *label,
		       const struct kf_ngram2 *g2, const struct kf_ngram3 *g3, size_t count,
		       bool json)
{
	size_t n = count < TOP_GRAMS ? count : TOP_GRAMS;
	if (json)
		kf_strbuf_addf(sb, ",\"top_%s\":{", label);
	else
		kf_strbuf_addf(sb, "top %-9s", label);
	for (size_t i = 0; i < n; i++) {
		uint32_t ids[3] = { g2 ? g2[i].a : g3[i].a, g2 ? g2[i].b : g3[i].b, g3 ? g3[i].c : 0 };
		double freq = g2 ? g2[i].freq : g3[i].freq;
		struct kf_strbuf s = KF_STRBUF_INIT;
		add_gram(&s, c, ids, g2 ? 2 : 3);
		if (json) {
			kf_strbuf_addstr(sb, i ? "," : "");
			kf_json_add_string(sb, s.buf, s.len);
			kf_strbuf_addch(sb, ':');
			kf_json_add_double(sb, freq);
		} else {
			kf_strbuf_addf(sb, " %s %.3f", s.buf, freq);
		}
		kf_strbuf_release(&s);
	}
	kf_strbuf_addstr(sb, json ? "}" : "\n");
}

static void info_text(struct kf_strbuf *sb, const struct kf_corpus *c, const struct info *in)
{
	kf_strbuf_addf(sb, "corpus        %s\n", c->name);
	kf_strbuf_addf(sb, "file          %s (%s, %lld bytes, loaded in %.2f ms)\n", in->path,
		       in->format, in->bytes, in->load_ms);
	kf_strbuf_addf(sb, "characters    %u distinct, %llu counted\n", c->nchars,
		       (unsigned long long)c->char_total);
	kf_strbuf_addf(sb, "bigrams       %zu distinct, %llu counted\n", c->nbigrams,
		       (unsigned long long)c->bigram_total);
	kf_strbuf_addf(sb, "skipgrams     %zu distinct, %llu counted\n", c->nskipgrams,
		       (unsigned long long)c->skipgram_total);
	kf_strbuf_addf(sb, "trigrams      %zu distinct, %llu counted\n", c->ntrigrams,
		       (unsigned long long)c->trigram_total);
	kf_strbuf_addstr(sb, "chars (%)\n ");
	for (uint32_t id = 0; id < c->nchars; id++) {
		char u[4];
		struct kf_strbuf s = KF_STRBUF_INIT;
		kf_strbuf_add(&s, u, kf__utf8_put(u, c->codepoints[id]));
		kf_strbuf_addf(sb, " %s %.3f%s", c->codepoints[id] == ' ' ? "' '" : s.buf,
			       c->chars[id], id % 10 == 9 && id + 1 < c->nchars ? "\n " : "");
		kf_strbuf_release(&s);
	}
	kf_strbuf_addch(sb, '\n');
	info_grams(sb, c, "bigrams", c->bigrams, NULL, c->nbigrams, false);
	info_grams(sb, c, "skipgrams", c->skipgrams, NULL, c->nskipgrams, false);
	info_grams(sb, c, "trigrams", NULL, c->trigrams, c->ntrigrams, false);
}

static void info_json(struct kf_strbuf *sb, const struct kf_corpus *c, const struct info *in)
{
	kf_strbuf_addstr(sb, "{\"name\":");
	kf_json_add_cstr(sb, c->name);
	kf_strbuf_addstr(sb, ",\"path\":");
	kf_json_add_cstr(sb, in->path);
	kf_strbuf_addf(sb, ",\"format\":\"%s\",\"bytes\":%lld,\"load_ms\":", in->format,
		       in->bytes);
	kf_json_add_double(sb, in->load_ms);
	kf_strbuf_addf(sb,
		       ",\"nchars\":%u,\"nbigrams\":%zu,\"nskipgrams\":%zu,\"ntrigrams\":%zu,"
		       "\"char_total\":%llu,\"bigram_total\":%llu,\"skipgram_total\":%llu,"
		       "\"trigram_total\":%llu,\"chars\":{",
		       c->nchars, c->nbigrams, c->nskipgrams, c->ntrigrams,
		       (unsigned long long)c->char_total, (unsigned long long)c->bigram_total,
		       (unsigned long long)c->skipgram_total, (unsigned long long)c->trigram_total);
	for (uint32_t id = 0; id < c->nchars; id++) {
		char u[4];
		kf_strbuf_addstr(sb, id ? "," : "");
		kf_json_add_string(sb, u, kf__utf8_put(u, c->codepoints[id]));
		kf_strbuf_addch(sb, ':');
		kf_json_add_double(sb, c->chars[id]);
	}
	kf_strbuf_addch(sb, '}');
	info_grams(sb, c, "bigrams", c->bigrams, NULL, c->nbigrams, true);
	info_grams(sb, c, "skipgrams", c->skipgrams, NULL, c->nskipgrams, true);
	info_grams(sb, c, "trigrams", NULL, c->trigrams, c->ntrigrams, true);
	kf_strbuf_addstr(sb, "}\n");
}

static const char *sniff_format(const char *path)
{
	char magic[8];
	FILE *f = fopen(path, "rb");
	size_t n = f ? fread(magic, 1, sizeof magic, f) : 0;
	if (f)
		fclose(f);
	return n == 8 && !memcmp(magic, KF_CORPUS_FILE_MAGIC, 8) ? "kfc" : "json";
}

static int cmd_info(int argc, char **argv)
{
	struct opts o = { 0 };
	int rc = parse_opts(argc, argv, info_usage, true, &o);
	if (rc >= 0)
		return rc;
	if (optind + 1 != argc)
		return usage_error("info", "give exactly one corpus file");
	struct info in = { .path = argv[optind] };
	struct kf_strbuf why = KF_STRBUF_INIT, out = KF_STRBUF_INIT;
	struct kf_corpus *c = NULL;
	uint64_t t0 = kf_clock_mono_ns();
	enum kf_err err = kf_corpus_load(in.path, &c, &why);
	in.load_ms = (kf_clock_mono_ns() - t0) / 1e6;
	if (err) {
		rc = failed("info", err, &why);
	} else {
		struct stat st;
		in.bytes = stat(in.path, &st) ? -1 : (long long)st.st_size;
		in.format = strcmp(sniff_format(in.path), "kfc") ? "Oxeylyzer JSON" : "kfc";
		if (o.json) {
			in.format = strcmp(in.format, "kfc") ? "json" : "kfc";
			info_json(&out, c, &in);
		} else {
			info_text(&out, c, &in);
		}
		fwrite(out.buf, 1, out.len, stdout);
		rc = 0;
	}
	kf_corpus_free(c);
	kf_strbuf_release(&why);
	kf_strbuf_release(&out);
	return rc;
}

/* ---- dispatch -------------------------------------------------------------- */

static const struct subcommand {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} subcommands[] = {
	{ "build", cmd_build, "count the n-grams of UTF-8 text into a .kfc corpus" },
	{ "info", cmd_info, "describe a corpus (.kfc or Oxeylyzer JSON)" },
	{ "convert", cmd_convert, "write a corpus (e.g. Oxeylyzer JSON) as .kfc" },
};

static void corpus_usage(FILE *out)
{
	fprintf(out, "usage: keyforge-layout corpus <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
		fprintf(out, "  %-8s %s\n", subcommands[i].name, subcommands[i].summary);
	fprintf(out, "\n'keyforge-layout corpus <command> --help' describes its options.\n");
}

int kf_cli_corpus(int argc, char **argv)
{
	if (argc < 2) {
		corpus_usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		corpus_usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
		if (!strcmp(argv[1], subcommands[i].name))
			return subcommands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "keyforge-layout corpus: unknown command '%s'; see "
			"'keyforge-layout corpus --help'\n",
		argv[1]);
	return 2;
}
