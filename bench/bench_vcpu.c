/*
 * bench_vcpu.c — how much CPU the machine under the hive really gives, and
 * when it takes it away.
 *
 * Each thread runs a fixed unit of arithmetic (a chain of dependent
 * multiplications: no memory, no system call, the same work every time)
 * again and again, and notes how long each unit took. On a machine of its
 * own a unit always takes the same time; a unit that takes much longer was
 * slowed by something outside the program: another thread on the same CPU,
 * or — the case this was written for — a hypervisor that gave the virtual
 * CPU to someone else or slowed it. A guest without steal-time accounting
 * (Firecracker's) shows such time as its own, so /proc/stat cannot tell.
 *
 *	bench_vcpu [--seconds N] [--threads N] [--duty PCT]
 *
 * --duty runs each thread that share of the time (units back to back for
 * a tenth of the period, then a sleep), to see whether the loss depends on
 * how busy the machine is. It prints the median unit time, the share of the
 * run lost to slow units (a unit slower than twice the median), and each
 * "dip" — slow units less than 50 ms apart — with its start, length and
 * distance from the previous one. Figures: docs/performance.md, "The
 * machine's CPU".
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define UNIT_STEPS 100000     /* ~0.1 ms of dependent multiplications here */
#define MAX_THREADS 16
#define SLOW_FACTOR 2.0       /* a unit this much slower than the median is slow */
#define DIP_GAP_NS 50000000ull
#define PERIOD_NS 10000000ull /* --duty: one period of work and sleep */

struct unit {
	uint64_t start, ns;
};

struct worker {
	pthread_t th;
	uint64_t t0, end;
	double duty;
	struct unit *units;
	size_t n, cap;
	uint64_t sink;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / 1000000000ull),
			       .tv_nsec = (long)(t % 1000000000ull) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* The work: a linear congruential chain, each step waiting for the last. */
static uint64_t unit_of_work(uint64_t x)
{
	for (int i = 0; i < UNIT_STEPS; i++)
		x = x * 6364136223846793005ull + 1442695040888963407ull;
	return x;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t x = (uint64_t)(uintptr_t)w, period = w->t0;

	sleep_until(w->t0);  /* every thread starts together */
	while (mono_ns() < w->end && w->n < w->cap) {
		uint64_t busy_until = period + (uint64_t)(w->duty * PERIOD_NS);

		do {
			uint64_t a = mono_ns();

			x = unit_of_work(x);
			w->units[w->n++] = (struct unit){ a - w->t0, mono_ns() - a };
		} while (w->n < w->cap && mono_ns() < busy_until);
		period += PERIOD_NS;
		if (w->duty < 1.0)
			sleep_until(period);
	}
	w->sink = x;
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* The dips of one thread: runs of slow units, merged across gaps shorter
 * than DIP_GAP_NS. Returns the time lost to slow units (beyond the median);
 * adds the thread's busy time (every unit's) to *busy. */
static uint64_t report_thread(int i, const struct worker *w, uint64_t median, uint64_t *busy)
{
	uint64_t lost = 0, dip_start = 0, dip_end = 0, prev_start = 0, slow = 0, mine = 0;
	int dips = 0;

	for (size_t k = 0; k <= w->n; k++) {
		const struct unit *u = k < w->n ? &w->units[k] : NULL;
		bool is_slow = u && (double)u->ns > SLOW_FACTOR * (double)median;

		if (u)
			mine += u->ns;
		if (is_slow) {
			lost += u->ns - median;
			slow++;
		}
		if (dip_end && (!u || (is_slow && u->start > dip_end + DIP_GAP_NS))) {
			if (dips < 40) {
				printf("  thread %d  dip at %7.3f s  %6.1f ms", i, dip_start / 1e9,
				       (dip_end - dip_start) / 1e6);
				if (prev_start)
					printf("  (%.2f s after the last)", (dip_start - prev_start) / 1e9);
				printf("\n");
			}
			dips++;
			prev_start = dip_start;
			dip_end = 0;
		}
		if (is_slow) {
			if (!dip_end)
				dip_start = u->start;
			dip_end = u->start + u->ns;
		}
	}
	printf("thread %d: %zu units, %llu slow (> %.0fx the median), %d dips, "
	       "%.1f%% of its busy time lost\n", i, w->n, (unsigned long long)slow, SLOW_FACTOR,
	       dips, mine ? 100.0 * (double)lost / (double)mine : 0.0);
	*busy += mine;
	return lost;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_vcpu [--seconds N] [--threads N] [--duty PCT]\n"
		"Times a fixed unit of arithmetic again and again on N threads (default 1)\n"
		"for N seconds (default 20), busy PCT %% of each 10 ms (default 100), and\n"
		"prints when the units ran slow: CPU the host took away.\n");
}

int main(int argc, char **argv)
{
	double seconds = 20, duty = 1.0, wall_t0;
	int threads = 1;
	struct worker w[MAX_THREADS];
	uint64_t *all, median, lost = 0, busy = 0;
	size_t total = 0;

	/* Flags take a value each: --name VALUE. */
	for (int i = 1; i < argc; i += 2) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else if (v && !strcmp(argv[i], "--seconds")) {
			seconds = atof(v);
		} else if (v && !strcmp(argv[i], "--threads")) {
			threads = atoi(v);
		} else if (v && !strcmp(argv[i], "--duty")) {
			duty = atof(v) / 100.0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (seconds <= 0 || seconds > 3600 || threads < 1 || threads > MAX_THREADS ||
	    duty <= 0 || duty > 1) {
		fprintf(stderr, "bench_vcpu: --seconds 0-3600, --threads 1-%d, --duty 1-100\n",
			MAX_THREADS);
		return 2;
	}
	uint64_t t0 = mono_ns() + 10000000ull;
	struct timespec wall;

	/* The wall clock at t0, to line the dips up with another program's log. */
	clock_gettime(CLOCK_REALTIME, &wall);
	wall_t0 = (double)wall.tv_sec + (double)wall.tv_nsec / 1e9 + 0.010;

	for (int i = 0; i < threads; i++) {
		w[i] = (struct worker){ .t0 = t0, .end = t0 + (uint64_t)(seconds * 1e9),
					.duty = duty, .cap = (size_t)(seconds * 1e9 / 20000) + 16 };
		if (!(w[i].units = malloc(w[i].cap * sizeof(*w[i].units))) ||
		    pthread_create(&w[i].th, NULL, worker_main, &w[i])) {
			fprintf(stderr, "bench_vcpu: out of memory or threads\n");
			return 1;
		}
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(w[i].th, NULL);
		total += w[i].n;
	}
	if (!total || !(all = malloc(total * sizeof(*all)))) {
		fprintf(stderr, "bench_vcpu: no units ran\n");
		return 1;
	}
	total = 0;
	for (int i = 0; i < threads; i++)
		for (size_t k = 0; k < w[i].n; k++)
			all[total++] = w[i].units[k].ns;
	qsort(all, total, sizeof(*all), cmp_u64);
	median = all[total / 2];
	printf("bench_vcpu: %d thread(s), %.0f s, busy %.0f%% of each 10 ms, from %.3f "
	       "(wall clock, s)\n", threads, seconds, duty * 100, wall_t0);
	printf("unit: median %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f ms\n", median / 1e3,
	       all[total * 99 / 100] / 1e3, all[total * 999 / 1000] / 1e3, all[total - 1] / 1e6);
	for (int i = 0; i < threads; i++)
		lost += report_thread(i, &w[i], median, &busy);
	printf("lost: %.1f%% of the busy time of all threads (what slow units took beyond "
	       "the median)\n", busy ? 100.0 * (double)lost / (double)busy : 0.0);
	for (int i = 0; i < threads; i++)
		free(w[i].units);
	free(all);
	return 0;
}
