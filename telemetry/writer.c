/*
 * writer.c — the bounded queue between emitting threads and the output fd.
 *
 * The queue is a lock-free multi-producer ring of fixed 512-byte slots
 * (D. Vyukov's bounded queue): a producer claims a position with one CAS on
 * `head`, copies its formatted line into the slot (lines longer than a slot
 * go to a malloc'ed copy) and publishes it by storing the slot's sequence
 * number. A full ring makes the producer drop the line and count it; nothing
 * on the producer side waits for anything.
 *
 * One consumer at a time (the `consumer` flag: the writer thread, a manual
 * flush, or the fatal-signal handler) copies ready slots into a batch and
 * writes it with one write(2). After each drain, if lines were dropped, it
 * writes a WARN "N events dropped".
 *
 * The writer thread naps on a futex with a 20 ms timeout. Producers wake it
 * early only for WARN/ERROR events or a ring one-eighth full, so a steady stream
 * of INFO events costs no system call on the emitting thread. After 100 ms
 * without a line it goes idle: it sleeps up to a second, and the next line
 * of any level wakes it (one system call after each quiet spell). A quiet
 * process so wakes about once a second instead of fifty times; forty idle
 * workers on one machine made 2,000 such wake-ups a second.
 */
#include "common/io.h"
#include "telemetry/log_internal.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SLOT_SIZE 512
#define BATCH_MAX 65536
#define NAP_NS 20000000L        /* while lines come: INFO waits this long at most */
#define IDLE_AFTER_NAPS 5        /* naps without a line before the writer idles */
#define IDLE_NS 1000000000L      /* bound of an idle sleep, should a wake-up be lost */
#define FLUSH_TIMEOUT_NS 2000000000LL

struct slot {
	_Atomic size_t seq; /* == position + 1 when filled, position (+capacity) when free */
	uint32_t len;
	char *heap;         /* line too long for data[], or NULL */
	char data[SLOT_SIZE - 24];
};
_Static_assert(sizeof(struct slot) == SLOT_SIZE, "slot layout");

static struct {
	struct slot *slots;
	size_t mask;
	int fd;
	enum kf_log_mode mode;
	bool thread_running;
	pthread_t thread;
	struct kf_strbuf batch;  /* consumer only */
	pthread_mutex_t sync_lock;
	alignas(64) _Atomic size_t head;
	alignas(64) _Atomic size_t tail;  /* written by the consumer only */
	_Atomic size_t consumed;          /* tail after the last completed write */
	_Atomic int consumer;             /* 0 free, 1 drain, 2 fatal handler */
	_Atomic uint32_t wake;            /* futex word */
	_Atomic int sleeping;             /* AWAKE, NAPPING or IDLE */
	_Atomic bool stop;
	_Atomic uint64_t dropped_pending;
} w = { .fd = -1, .sync_lock = PTHREAD_MUTEX_INITIALIZER };

enum { AWAKE = 0, NAPPING = 1, IDLE = 2 };

static _Atomic uint64_t dropped_total;
static _Atomic long idle_ns = IDLE_NS;
static _Thread_local bool tl_is_writer;

/* write(2) until done; async-signal-safe. Errors are ignored: a log line has
 * nowhere else to go. */
static void write_all(int fd, const char *p, size_t len)
{
	(void)kf_write_all(fd, p, len);
}

/* ---- producers ------------------------------------------------------------- */

static bool ring_push(const char *line, size_t len)
{
	size_t pos = atomic_load_explicit(&w.head, memory_order_relaxed);
	struct slot *s;
	for (;;) {
		s = &w.slots[pos & w.mask];
		size_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
		intptr_t diff = (intptr_t)seq - (intptr_t)pos;
		if (diff == 0) {
			if (atomic_compare_exchange_weak_explicit(&w.head, &pos, pos + 1,
								  memory_order_relaxed,
								  memory_order_relaxed))
				break;
		} else if (diff < 0) {
			return false; /* the consumer has not freed this slot: full */
		} else {
			pos = atomic_load_explicit(&w.head, memory_order_relaxed);
		}
	}
	bool ok = true;
	s->heap = NULL;
	if (len <= sizeof s->data) {
		memcpy(s->data, line, len);
	} else if ((s->heap = malloc(len))) {
		memcpy(s->heap, line, len);
	} else {
		len = 0; /* the position is ours: publish it empty */
		ok = false;
	}
	s->len = (uint32_t)len;
	atomic_store_explicit(&s->seq, pos + 1, memory_order_release);
	return ok;
}

static void wake_writer(void)
{
	atomic_fetch_add_explicit(&w.wake, 1, memory_order_release);
	syscall(SYS_futex, &w.wake, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void count_drop(void)
{
	atomic_fetch_add_explicit(&w.dropped_pending, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&dropped_total, 1, memory_order_relaxed);
}

void kf__writer_submit(const char *line, size_t len, enum kf_log_level level)
{
	if (!w.slots)
		return;
	if (w.mode == KF_LOG_MODE_SYNC) {
		pthread_mutex_lock(&w.sync_lock);
		write_all(w.fd, line, len);
		pthread_mutex_unlock(&w.sync_lock);
		return;
	}
	if (len > UINT32_MAX || !ring_push(line, len)) {
		count_drop();
		return;
	}
	if (w.mode != KF_LOG_MODE_THREAD)
		return;
	/* Pairs with the writer's fence between setting `sleeping` and looking
	 * at the ring: either it sees this line, or this sees it asleep. */
	atomic_thread_fence(memory_order_seq_cst);
	int sleeping = atomic_load_explicit(&w.sleeping, memory_order_relaxed);
	if (sleeping == AWAKE)
		return;
	size_t backlog = atomic_load_explicit(&w.head, memory_order_relaxed) -
			 atomic_load_explicit(&w.consumed, memory_order_relaxed);
	/* Only the producer that clears `sleeping` makes the system call;
	 * the others see AWAKE until the writer sleeps again. */
	if ((sleeping == IDLE || level <= KF_LEVEL_WARN || backlog > (w.mask + 1) / 8) &&
	    atomic_exchange_explicit(&w.sleeping, AWAKE, memory_order_relaxed))
		wake_writer();
}

/* ---- consumer -------------------------------------------------------------- */

static bool try_consume(int role)
{
	int expected = 0;
	return atomic_compare_exchange_strong(&w.consumer, &expected, role);
}

static void write_drop_warning(void)
{
	uint64_t n = atomic_exchange_explicit(&w.dropped_pending, 0, memory_order_relaxed);
	if (!n)
		return;
	char msg[48];
	snprintf(msg, sizeof msg, "%llu events dropped", (unsigned long long)n);
	struct kf_field fields[] = { KF_U64("dropped", n) };
	struct kf_log_record rec = {
		.level = KF_LEVEL_WARN,
		.target = KF__LOG_TARGET,
		.message = msg,
		.fields = fields,
		.n_fields = 1,
		.timestamp_ns = kf__log_cfg.wall_ns(),
	};
	struct kf_strbuf sb = KF_STRBUF_INIT;
	kf__log_format(&sb, &rec);
	write_all(w.fd, sb.buf, sb.len);
	kf_strbuf_release(&sb);
}

/* Writes every ready line; caller holds the consumer role. */
static size_t drain_locked(void)
{
	size_t n = 0, tail = atomic_load_explicit(&w.tail, memory_order_relaxed);
	kf_strbuf_reset(&w.batch);
	for (;;) {
		struct slot *s = &w.slots[tail & w.mask];
		if (atomic_load_explicit(&s->seq, memory_order_acquire) != tail + 1)
			break;
		kf_strbuf_add(&w.batch, s->heap ? s->heap : s->data, s->len);
		free(s->heap);
		s->heap = NULL;
		atomic_store_explicit(&s->seq, tail + w.mask + 1, memory_order_release);
		atomic_store_explicit(&w.tail, ++tail, memory_order_relaxed);
		n++;
		if (w.batch.len >= BATCH_MAX) {
			write_all(w.fd, w.batch.buf, w.batch.len);
			kf_strbuf_reset(&w.batch);
		}
	}
	write_all(w.fd, w.batch.buf, w.batch.len);
	kf_strbuf_reset(&w.batch);
	write_drop_warning();
	atomic_store_explicit(&w.consumed, tail, memory_order_release);
	return n;
}

static size_t drain(void)
{
	if (!try_consume(1))
		return 0;
	size_t n = drain_locked();
	atomic_store(&w.consumer, 0);
	return n;
}

static bool ring_ready(void)
{
	size_t tail = atomic_load_explicit(&w.tail, memory_order_relaxed);
	return atomic_load_explicit(&w.slots[tail & w.mask].seq, memory_order_acquire) == tail + 1;
}

static void *writer_main(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "kf:logwriter");  /* top -H, perf */
	tl_is_writer = true;
	unsigned quiet = 0; /* naps in a row that found no line */
	for (;;) {
		uint32_t seen = atomic_load_explicit(&w.wake, memory_order_acquire);
		if (drain()) {
			quiet = 0;
			continue;
		}
		if (atomic_load(&w.stop))
			break;
		int how = quiet < IDLE_AFTER_NAPS ? NAPPING : IDLE;
		atomic_store_explicit(&w.sleeping, how, memory_order_relaxed);
		atomic_thread_fence(memory_order_seq_cst); /* see kf__writer_submit */
		if (!ring_ready() && !atomic_load(&w.stop)) {
			long ns = how == NAPPING ? NAP_NS : atomic_load(&idle_ns);
			struct timespec ts = { ns / 1000000000L, ns % 1000000000L };
			syscall(SYS_futex, &w.wake, FUTEX_WAIT_PRIVATE, seen, &ts, NULL, 0);
		}
		atomic_store(&w.sleeping, AWAKE);
		quiet += quiet < IDLE_AFTER_NAPS;
	}
	drain();
	return NULL;
}

/* ---- lifecycle -------------------------------------------------------------- */

static enum kf_err start_thread(void)
{
	/* The writer takes no asynchronous signal meant for the program. */
	sigset_t all, old;
	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGFPE);
	sigdelset(&all, SIGILL);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&w.thread, NULL, writer_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc)
		return KF_EIO;
	w.thread_running = true;
	return KF_OK;
}

enum kf_err kf__writer_start(int fd, enum kf_log_mode mode, size_t capacity)
{
	size_t cap = 2;
	while (cap < capacity)
		cap *= 2;
	w.slots = calloc(cap, sizeof *w.slots);
	if (!w.slots)
		return KF_ENOMEM;
	for (size_t i = 0; i < cap; i++)
		atomic_init(&w.slots[i].seq, i);
	w.mask = cap - 1;
	w.fd = fd;
	w.mode = mode;
	atomic_store(&w.head, 0);
	atomic_store(&w.tail, 0);
	atomic_store(&w.consumed, 0);
	atomic_store(&w.consumer, 0);
	atomic_store(&w.stop, false);
	atomic_store(&w.dropped_pending, 0);
	kf_strbuf_init(&w.batch, 4096);
	enum kf_err err = mode == KF_LOG_MODE_THREAD ? start_thread() : KF_OK;
	if (err)
		kf__writer_stop(true);
	return err;
}

void kf__writer_flush(void)
{
	if (!w.slots || w.mode == KF_LOG_MODE_SYNC)
		return;
	if (!w.thread_running) {
		while (!try_consume(1))
			sched_yield();
		drain_locked();
		atomic_store(&w.consumer, 0);
		return;
	}
	size_t target = atomic_load(&w.head);
	wake_writer();
	struct timespec pause = { 0, 200000 };
	for (long long waited = 0; waited < FLUSH_TIMEOUT_NS; waited += pause.tv_nsec) {
		if ((intptr_t)(atomic_load(&w.consumed) - target) >= 0)
			return;
		nanosleep(&pause, NULL);
	}
}

void kf__writer_stop(bool release)
{
	if (!w.slots)
		return;
	if (w.thread_running) {
		atomic_store(&w.stop, true);
		wake_writer();
		pthread_join(w.thread, NULL);
		w.thread_running = false;
	}
	kf__writer_flush(); /* without the thread: drains here */
	if (w.mode == KF_LOG_MODE_THREAD)
		w.mode = KF_LOG_MODE_MANUAL; /* later flushes drain on the caller */
	if (!release)
		return;
	for (size_t i = 0; i <= w.mask; i++)
		free(w.slots[i].heap);
	free(w.slots);
	w.slots = NULL;
	w.fd = -1;
	kf_strbuf_release(&w.batch);
}

void kf__writer_set_idle_ns(long ns)
{
	atomic_store(&idle_ns, ns);
}

uint64_t kf__writer_dropped_total(void)
{
	return atomic_load_explicit(&dropped_total, memory_order_relaxed);
}

int kf__writer_fatal_drain(void)
{
	if (!w.slots || w.mode == KF_LOG_MODE_SYNC)
		return w.fd;
	/* Let a drain in progress on another thread finish its write; if the
	 * writer itself crashed, its batch is lost. */
	struct timespec pause = { 0, 1000000 };
	for (int i = 0; i < 100 && !tl_is_writer && !try_consume(2); i++)
		nanosleep(&pause, NULL);
	size_t tail = atomic_load_explicit(&w.tail, memory_order_relaxed);
	for (size_t k = 0; k <= w.mask; k++, tail++) {
		struct slot *s = &w.slots[tail & w.mask];
		if (atomic_load_explicit(&s->seq, memory_order_acquire) != tail + 1)
			break;
		write_all(w.fd, s->heap ? s->heap : s->data, s->len);
	}
	return w.fd;
}
