/*
 * bench_json — what writing a double as JSON costs (common/json.h), the
 * ~25 doubles of each job result the broker stores (docs/performance.md,
 * item 13).
 *
 *   kf_json_add_double   the shortest text that reads back, in 128-bit
 *                        integers for [1e-4, 1e14), printf beyond
 *   printf search        the same text from glibc: "%.15g", "%.16g" until
 *                        strtod reads it back, then "%.17g" (what the broker
 *                        did before)
 *
 * Doubles like a result's (ratios, scores, rates: 16 or 17 digits) and short
 * decimals (0.25, 1234.5). Best of 5 runs, in nanoseconds of the thread's CPU
 * time per double.
 *
 *   usage: bench_json [scale]     scale multiplies the iteration counts (default 1)
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/json.h"
#include "common/strbuf.h"

#define N_VALUES 1024

static double thread_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void printf_search(char *tmp, size_t cap, double v)
{
	for (int p = 15; p < 17; p++) {
		snprintf(tmp, cap, "%.*g", p, v);
		if (strtod(tmp, NULL) == v)
			return;
	}
	snprintf(tmp, cap, "%.17g", v);
}

static double run(const double *v, long rounds, int which)
{
	struct kf_strbuf sb = KF_STRBUF_INIT;
	char tmp[48];
	double best = INFINITY;

	for (int r = 0; r < 5; r++) {
		double t0 = thread_ns();

		for (long i = 0; i < rounds; i++) {
			for (int j = 0; j < N_VALUES; j++) {
				if (which == 0) {
					kf_strbuf_reset(&sb);
					kf_json_add_double(&sb, v[j]);
				} else {
					printf_search(tmp, sizeof tmp, v[j]);
				}
			}
		}
		double ns = (thread_ns() - t0) / ((double)rounds * N_VALUES);
		if (ns < best)
			best = ns;
	}
	kf_strbuf_release(&sb);
	return best;
}

int main(int argc, char **argv)
{
	long scale = argc > 1 ? atol(argv[1]) : 1;
	double ratios[N_VALUES], decimals[N_VALUES];
	uint64_t x = 0x9E3779B97F4A7C15ull;

	if (scale < 1) {
		fprintf(stderr, "usage: bench_json [scale]\n");
		return 2;
	}
	for (int i = 0; i < N_VALUES; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		/* a finger's share, a score, a rate: 0.0x to 10^6 */
		ratios[i] = (double)(x >> 11) / 9007199254740992.0 * pow(10, (int)(x % 8) - 2);
		decimals[i] = (double)(x % 100000) / 8.0;
	}
	printf("%-34s %12s %12s\n", "ns per double (best of 5)", "kf_json", "printf");
	printf("%-34s %12.0f %12.0f\n", "result-like (16-17 digits)", run(ratios, 20 * scale, 0),
	       run(ratios, 20 * scale, 1));
	printf("%-34s %12.0f %12.0f\n", "short decimals (x/8)", run(decimals, 20 * scale, 0),
	       run(decimals, 20 * scale, 1));
	return 0;
}
