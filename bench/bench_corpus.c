/*
 * bench_corpus — load times of corpora (issue 4: JSON of the 2 MB shai file
 * <= 100 ms, compact corpus <= 5 ms). Prints the best and the median of N
 * loads; never asserts anything.
 *
 *   bench_corpus [--runs N] [--json FILE] [--kfc FILE] [--text FILE]
 *
 * Defaults: --json ../shared/corpora/shai.json beside the source tree,
 * --kfc corpora/brown.kfc (run it from the build directory after
 * scripts/default-corpus). The JSON file is also converted to a temporary
 * .kfc and that load is measured, so the two formats compare on one corpus.
 * --text times kf_corpus_build_text() on a text file (MB/s).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "kf_config.h"
#include "layout/corpus.h"

typedef enum kf_err (*load_fn)(const char *path, struct kf_corpus **out, struct kf_strbuf *why);

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

static long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) ? -1 : (long)st.st_size;
}

/* Loads `path` `runs` times; prints best and median. 0, or 1 on failure. */
static int bench_load(const char *label, load_fn load, const char *path, int runs)
{
	uint64_t *ns = calloc((size_t)runs, sizeof *ns);
	struct kf_strbuf why = KF_STRBUF_INIT;
	struct kf_corpus *c = NULL;
	if (!ns)
		return 1;
	for (int i = 0; i < runs; i++) {
		uint64_t t0 = kf_clock_mono_ns();
		enum kf_err err = load(path, &c, &why);
		ns[i] = kf_clock_mono_ns() - t0;
		if (err) {
			fprintf(stderr, "bench_corpus: %s: %s\n", kf_strerror(err), why.buf);
			free(ns);
			kf_strbuf_release(&why);
			return 1;
		}
		if (i + 1 < runs)
			kf_corpus_free(c);
	}
	qsort(ns, (size_t)runs, sizeof *ns, cmp_u64);
	printf("%-5s %-48s %9ld bytes  %5u chars %6zu trigrams  best %8.3f ms  median %8.3f ms  "
	       "(%d runs)\n",
	       label, path, file_size(path), c->nchars, c->ntrigrams, ns[0] / 1e6,
	       ns[runs / 2] / 1e6, runs);
	kf_corpus_free(c);
	free(ns);
	kf_strbuf_release(&why);
	return 0;
}

/* Converts a JSON corpus to a temporary .kfc and benchmarks loading that. */
static int bench_converted(const char *json, int runs)
{
	char tmp[] = "/tmp/bench_corpus_XXXXXX.kfc";
	struct kf_strbuf why = KF_STRBUF_INIT;
	struct kf_corpus *c;
	int fd = mkstemps(tmp, 4);
	if (fd < 0)
		return 1;
	close(fd);
	int rc = 1;
	if (!kf_corpus_load_json(json, &c, &why)) {
		if (!kf_corpus_save(c, tmp, &why))
			rc = bench_load("kfc", kf_corpus_load_file, tmp, runs);
		kf_corpus_free(c);
	}
	if (why.len)
		fprintf(stderr, "bench_corpus: %s\n", why.buf);
	unlink(tmp);
	kf_strbuf_release(&why);
	return rc;
}

static int bench_text(const char *path, int runs)
{
	uint64_t best = UINT64_MAX;
	struct kf_strbuf why = KF_STRBUF_INIT;
	struct kf_corpus *c = NULL;
	for (int i = 0; i < runs; i++) {
		kf_corpus_free(c);
		uint64_t t0 = kf_clock_mono_ns();
		enum kf_err err = kf_corpus_build_text(&path, 1, NULL, &c, &why);
		uint64_t dt = kf_clock_mono_ns() - t0;
		if (err) {
			fprintf(stderr, "bench_corpus: %s: %s\n", kf_strerror(err), why.buf);
			kf_strbuf_release(&why);
			return 1;
		}
		best = dt < best ? dt : best;
	}
	long size = file_size(path);
	printf("text  %-48s %9ld bytes  %5u chars %6zu trigrams  best %8.3f ms  = %.1f MB/s\n",
	       path, size, c->nchars, c->ntrigrams, best / 1e6, size / (best / 1e9) / 1e6);
	kf_corpus_free(c);
	kf_strbuf_release(&why);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "runs", required_argument, NULL, 'n' }, { "json", required_argument, NULL, 'j' },
		{ "kfc", required_argument, NULL, 'k' },  { "text", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },       { NULL, 0, NULL, 0 },
	};
	const char *json = KF_SOURCE_ROOT "/../shared/corpora/shai.json";
	const char *kfc = "corpora/brown.kfc", *text = NULL;
	int runs = 20, opt;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			runs = atoi(optarg);
			break;
		case 'j':
			json = optarg;
			break;
		case 'k':
			kfc = optarg;
			break;
		case 't':
			text = optarg;
			break;
		default:
			fprintf(opt == 'h' ? stdout : stderr,
				"usage: bench_corpus [--runs N] [--json FILE] [--kfc FILE] "
				"[--text FILE]\n");
			return opt == 'h' ? 0 : 2;
		}
	}
	if (runs < 1)
		runs = 1;
	int rc = 0;
	if (file_size(json) >= 0) {
		rc |= bench_load("json", kf_corpus_load_json, json, runs);
		rc |= bench_converted(json, runs);
	} else {
		printf("json  %s: missing, skipped\n", json);
	}
	if (file_size(kfc) >= 0)
		rc |= bench_load("kfc", kf_corpus_load_file, kfc, runs);
	else
		printf("kfc   %s: missing, skipped (run scripts/default-corpus BUILD_DIR)\n", kfc);
	if (text)
		rc |= bench_text(text, runs < 3 ? runs : 3);
	return rc;
}
