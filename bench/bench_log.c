/*
 * bench_log — what logging costs the caller (docs/logging.md has figures).
 *
 *   disabled event       KF_DEBUG under filter "info": the callsite's load and branch
 *   enabled JSON event   KF_INFO with two fields, formatted and queued (default
 *                        queue, 1024 slots); the writer thread writes to /dev/null
 *   enabled human event  the same in the human format
 *   hot loop             a loop with and without a KF_TRACE per iteration
 *                        (compiled out when KF_MAX_LOG_LEVEL < 5, i.e. release)
 *   queue push           the library's lock-free ring against a mutex+trylock ring of
 *                        the same size and consumer policy, 200-byte lines
 *
 * Each figure is the best of several runs (the machine is shared and noisy),
 * in nanoseconds of the calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID)
 * per event, for 1 and 2 threads: what the caller pays, without the time the
 * scheduler kept it waiting.
 *
 *   usage: bench_log [scale]     scale multiplies the iteration counts (default 1)
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "telemetry/log.h"
#include "telemetry/log_internal.h"

#define TGT "keyforge::bench"
#define RUNS 5

static double scale = 1.0;

static uint64_t iters(uint64_t base)
{
	return (uint64_t)((double)base * scale) + 1;
}

/* ---- the loops measured ------------------------------------------------------------ */

static void loop_disabled(uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		KF_DEBUG(TGT, "disabled event", KF_U64("i", i));
}

static void loop_enabled(uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		KF_INFO(TGT, "job completed", KF_U64("job_id", i), KF_STR("worker", "worker-1"));
}

static volatile uint64_t sink_value;

/* A hot loop of cheap work (xorshift), as the annealer's inner loop. */
static void loop_work_plain(uint64_t n)
{
	uint64_t x = 88172645463325252ull, acc = 0;
	for (uint64_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		acc += x;
	}
	sink_value = acc;
}

static void loop_work_traced(uint64_t n)
{
	uint64_t x = 88172645463325252ull, acc = 0;
	for (uint64_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		acc += x;
		KF_TRACE("keyforge::layout::score", "score calculated", KF_U64("score", x));
	}
	sink_value = acc;
}

/* ---- harness -------------------------------------------------------------------------- */

struct job {
	void (*fn)(uint64_t);
	uint64_t n;
	pthread_barrier_t *start;
	double ns;
};

/* CPU time of the calling thread: on a shared machine, wall time mostly
 * measures how long the scheduler kept us waiting. */
static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *run_job(void *arg)
{
	struct job *j = arg;
	pthread_barrier_wait(j->start);
	uint64_t t0 = thread_cpu_ns();
	j->fn(j->n);
	j->ns = (double)(thread_cpu_ns() - t0) / (double)j->n;
	return NULL;
}

static void flush_log(void)
{
	kf_log_flush();
}

/* Best over RUNS of the mean ns/event per thread, with `threads` threads;
 * `settle` runs between runs (empties the queue). */
static double measure_runs(void (*fn)(uint64_t), uint64_t n, int threads, void (*settle)(void),
			   int runs)
{
	double best = 1e30;
	for (int r = 0; r < runs; r++) {
		pthread_barrier_t start;
		pthread_barrier_init(&start, NULL, (unsigned)threads);
		struct job jobs[2];
		pthread_t tid[2];
		for (int t = 0; t < threads; t++) {
			jobs[t] = (struct job){ fn, n, &start, 0 };
			pthread_create(&tid[t], NULL, run_job, &jobs[t]);
		}
		double sum = 0;
		for (int t = 0; t < threads; t++) {
			pthread_join(tid[t], NULL);
			sum += jobs[t].ns;
		}
		pthread_barrier_destroy(&start);
		settle();
		if (sum / threads < best)
			best = sum / threads;
	}
	return best;
}

static double measure_with(void (*fn)(uint64_t), uint64_t n, int threads, void (*settle)(void))
{
	return measure_runs(fn, n, threads, settle, RUNS);
}

static double measure(void (*fn)(uint64_t), uint64_t n, int threads)
{
	return measure_with(fn, n, threads, flush_log);
}

static int devnull;

static void log_start(const char *filter, enum kf_log_format format, size_t capacity)
{
	struct kf_log_options o = KF_LOG_OPTIONS_INIT;
	o.filter = filter;
	o.format = format;
	o.fd = devnull;
	o.queue_capacity = capacity;
	if (kf_log_init(&o) != KF_OK) {
		fprintf(stderr, "bench_log: kf_log_init failed\n");
		exit(1);
	}
}

/* Enabled events in bursts the queue can hold (no drops: every event is
 * formatted and queued), then bursts into the default 1024-slot queue. */
static void bench_enabled(enum kf_log_format format, const char *name)
{
	uint64_t n = iters(20000);
	log_start("info", format, 65536);
	for (int i = 0; i < 3; i++) { /* page faults of the fresh queue are not measured */
		loop_enabled(30000);
		kf_log_flush();
	}
	for (int t = 1; t <= 2; t++) {
		uint64_t dropped = kf_log_dropped_total();
		double ns = measure(loop_enabled, n, t);
		printf("enabled %-5s event, formatted+queued    %d thread%s  %8.1f ns/event"
		       "  (dropped %llu)\n", name, t, t > 1 ? "s" : " ", ns,
		       (unsigned long long)(kf_log_dropped_total() - dropped));
	}
	kf_log_shutdown();
	log_start("info", format, 0);
	for (int t = 1; t <= 2; t++) {
		uint64_t dropped = kf_log_dropped_total();
		double ns = measure(loop_enabled, iters(200000), t);
		printf("  same, bursts into the default queue    %d thread%s  %8.1f ns/event"
		       "  (dropped %.1f%%)\n", t, t > 1 ? "s" : " ", ns,
		       100.0 * (double)(kf_log_dropped_total() - dropped) /
			       (double)(RUNS * iters(200000) * (uint64_t)t));
	}
	kf_log_shutdown();
}

static void bench_events(void)
{
	log_start("info", KF_LOG_FORMAT_JSON, 0);
	for (int t = 1; t <= 2; t++)
		printf("disabled event (KF_DEBUG, filter info)   %d thread%s  %8.2f ns/event\n", t,
		       t > 1 ? "s" : " ", measure(loop_disabled, iters(100000000), t));
	kf_log_shutdown();
	bench_enabled(KF_LOG_FORMAT_JSON, "JSON");
	bench_enabled(KF_LOG_FORMAT_HUMAN, "human");
}

/* Plain and traced loops alternate, so that both see the same machine
 * (this one is shared); each keeps its best run. */
static void bench_hot_loop(void)
{
	log_start("info", KF_LOG_FORMAT_JSON, 0);
	uint64_t n = iters(100000000);
	double plain = 1e30, traced = 1e30;
	for (int r = 0; r < 2 * RUNS; r++) {
		double p = measure_runs(loop_work_plain, n, 1, flush_log, 1);
		double t = measure_runs(loop_work_traced, n, 1, flush_log, 1);
		plain = p < plain ? p : plain;
		traced = t < traced ? t : traced;
	}
	printf("hot loop, KF_MAX_LOG_LEVEL=%d: plain %.3f ns/iter, with KF_TRACE %.3f ns/iter "
	       "(%+.3f ns)%s\n", KF_MAX_LOG_LEVEL, plain, traced, traced - plain,
	       KF_MAX_LOG_LEVEL < 5 ? "  [TRACE compiled out]" : "  [TRACE compiled in, disabled]");
	kf_log_shutdown();
}

/* ---- lock-free ring against a mutex ring ------------------------------------------------ */

/*
 * The alternative the design allowed: a ring under a mutex, taken with
 * trylock first (a failed trylock is counted, then the producer blocks on the
 * lock for the short copy). Same geometry and the same consumer policy as the
 * library's ring: 1024 slots of 512 bytes; the consumer drains everything,
 * then sleeps up to 20 ms; producers wake it when one eighth is queued.
 */
#define MSLOTS 65536
#define MSLOT 512

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	size_t head, tail;
	size_t slots; /* in use, <= MSLOTS */
	bool sleeping;
	uint32_t len[MSLOTS];
	char data[MSLOTS][MSLOT];
	bool stop;
	uint64_t dropped, contended;
} mring = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER,
	    .slots = MSLOTS };

/* A JSON-like line padded to 200 bytes (built in main). */
static char line200[200];

static void mring_push(const char *line, size_t len)
{
	if (pthread_mutex_trylock(&mring.lock) != 0) {
		pthread_mutex_lock(&mring.lock);
		mring.contended++;
	}
	if (mring.head - mring.tail < mring.slots) {
		size_t i = mring.head++ % mring.slots;
		memcpy(mring.data[i], line, len);
		mring.len[i] = (uint32_t)len;
	} else {
		mring.dropped++;
	}
	if (mring.sleeping && mring.head - mring.tail > mring.slots / 8) {
		mring.sleeping = false;
		pthread_cond_signal(&mring.wake);
	}
	pthread_mutex_unlock(&mring.lock);
}

static void *mring_consumer(void *arg)
{
	(void)arg;
	static char batch[1 << 16];
	pthread_mutex_lock(&mring.lock);
	while (!mring.stop) {
		size_t n = 0;
		while (mring.tail != mring.head && n + MSLOT <= sizeof batch) {
			size_t i = mring.tail++ % mring.slots;
			memcpy(batch + n, mring.data[i], mring.len[i]);
			n += mring.len[i];
		}
		if (n) {
			pthread_mutex_unlock(&mring.lock);
			if (write(devnull, batch, n) < 0)
				return NULL;
			pthread_mutex_lock(&mring.lock);
			continue;
		}
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 20000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		mring.sleeping = true;
		pthread_cond_timedwait(&mring.wake, &mring.lock, &until);
		mring.sleeping = false;
	}
	pthread_mutex_unlock(&mring.lock);
	return NULL;
}

static void settle_mring(void)
{
	for (;;) {
		pthread_mutex_lock(&mring.lock);
		bool empty = mring.tail == mring.head;
		if (!empty && mring.sleeping) {
			mring.sleeping = false;
			pthread_cond_signal(&mring.wake);
		}
		pthread_mutex_unlock(&mring.lock);
		if (empty)
			return;
		struct timespec ts = { 0, 100000 };
		nanosleep(&ts, NULL);
	}
}

static void loop_mring(uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		mring_push(line200, 200);
}

static void loop_lockfree(uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		kf__writer_submit(line200, 200, KF_LEVEL_INFO);
}

/* Bursts that fit the default 1024-slot ring (512 lines, then the queue
 * is emptied): both rings then stay in cache. One producer thread; CPU time
 * around the pushes only. */
static double burst_cost(void (*loop)(uint64_t), void (*settle)(void))
{
	double best = 1e30;
	for (int r = 0; r < RUNS; r++) {
		uint64_t cpu = 0;
		for (int b = 0; b < 200; b++) {
			uint64_t t0 = thread_cpu_ns();
			loop(512);
			cpu += thread_cpu_ns() - t0;
			settle();
		}
		double ns = (double)cpu / (200.0 * 512.0);
		best = ns < best ? ns : best;
	}
	return best;
}

static void bench_queues(void)
{
	log_start("info", KF_LOG_FORMAT_JSON, 1024);
	printf("(1024 slots, bursts of 512:)\n");
	printf("queue push, lock-free ring               1 thread   %8.1f ns/push\n",
	       burst_cost(loop_lockfree, flush_log));
	kf_log_shutdown();
	mring.slots = 1024;
	pthread_t consumer;
	pthread_create(&consumer, NULL, mring_consumer, NULL);
	printf("queue push, mutex+trylock ring           1 thread   %8.1f ns/push\n",
	       burst_cost(loop_mring, settle_mring));
	pthread_mutex_lock(&mring.lock); /* empty now: the geometry may change */
	mring.slots = MSLOTS;
	pthread_mutex_unlock(&mring.lock);

	uint64_t n = iters(20000);
	log_start("info", KF_LOG_FORMAT_JSON, MSLOTS);
	printf("(65536 slots, bursts of %llu per thread:)\n", (unsigned long long)n);
	/* touch every slot once so that page faults are not measured */
	for (int i = 0; i < 4; i++) {
		loop_lockfree(MSLOTS / 2);
		kf_log_flush();
	}
	for (int t = 1; t <= 2; t++) {
		uint64_t dropped = kf_log_dropped_total();
		double ns = measure(loop_lockfree, n, t);
		printf("queue push, lock-free ring               %d thread%s  %8.1f ns/push"
		       "  (dropped %.1f%%)\n", t, t > 1 ? "s" : " ", ns,
		       100.0 * (double)(kf_log_dropped_total() - dropped) / (double)(RUNS * n * t));
	}
	kf_log_shutdown();
	for (int i = 0; i < 4; i++) {
		loop_mring(MSLOTS / 2);
		settle_mring();
	}
	for (int t = 1; t <= 2; t++) {
		pthread_mutex_lock(&mring.lock);
		mring.dropped = mring.contended = 0;
		pthread_mutex_unlock(&mring.lock);
		double ns = measure_with(loop_mring, n, t, settle_mring);
		printf("queue push, mutex+trylock ring (same)    %d thread%s  %8.1f ns/push"
		       "  (dropped %.1f%%, trylock failed %.1f%%)\n", t, t > 1 ? "s" : " ", ns,
		       100.0 * (double)mring.dropped / (double)(RUNS * n * t),
		       100.0 * (double)mring.contended / (double)(RUNS * n * t));
	}
	pthread_mutex_lock(&mring.lock);
	mring.stop = true;
	pthread_cond_signal(&mring.wake);
	pthread_mutex_unlock(&mring.lock);
	pthread_join(consumer, NULL);
}

int main(int argc, char **argv)
{
	if (argc > 1)
		scale = atof(argv[1]) > 0 ? atof(argv[1]) : 1.0;
	memset(line200, 'x', sizeof line200);
	memcpy(line200, "{\"level\":\"INFO\",\"pad\":\"", 24);
	memcpy(line200 + sizeof line200 - 3, "\"}\n", 3);
	devnull = open("/dev/null", O_WRONLY);
	if (devnull < 0) {
		perror("bench_log: /dev/null");
		return 1;
	}
	printf("bench_log: KF_MAX_LOG_LEVEL=%d, best of %d runs, scale %.2f, "
	       "ns of thread CPU time per event\n", KF_MAX_LOG_LEVEL, RUNS, scale);
	bench_events();
	bench_hot_loop();
	bench_queues();
	close(devnull);
	return 0;
}
