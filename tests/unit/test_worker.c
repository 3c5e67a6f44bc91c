/*
 * test_worker.c — the pure parts of keyforge-worker: flags and environment,
 * /proc parsing and load arithmetic, the token file, text sanitising, log
 * records as proto events, the outbox's reading of replies and its back-off,
 * corpus name resolution, job parameters and a job run on a tiny corpus.
 * (The worker against a real broker: tests/integration/test_worker.c.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bus/bus.h"
#include "common/clock.h"
#include "layout/corpus.h"
#include "layout/layout.h"
#include "proto/proto.h"
#include "worker/config.h"
#include "worker/gate.h"
#include "worker/heartbeat.h"
#include "worker/job.h"
#include "worker/outbox.h"
#include "worker/publish.h"
#include "worker/rpc.h"
#include "worker/stop.h"

/* ---- config --------------------------------------------------------------------- */

static const char *const env_vars[] = { "KEYFORGE_INGEST", "KEYFORGE_EVENTS", "KEYFORGE_RPC",
	"KEYFORGE_TOKEN_FILE", "KEYFORGE_WORKER_ID", "KEYFORGE_CORPUS_DIR",
	"KEYFORGE_DEFAULT_CORPUS", "KEYFORGE_SLOTS", "KEYFORGE_ON_TERM", "KEYFORGE_LEASE_AHEAD" };

static void clear_env(void)
{
	for (size_t i = 0; i < sizeof env_vars / sizeof env_vars[0]; i++)
		unsetenv(env_vars[i]);
}

static enum kf_err parse(struct kf_worker_config *cfg, enum kf_worker_config_action *action,
	int argc, const char **argv)
{
	struct kf_strbuf msg = KF_STRBUF_INIT;
	enum kf_err err = kf_worker_config_parse(cfg, argc, (char **)argv, "vm", 42, action, &msg);

	if (err)
		assert_true(msg.len > 0); /* every refusal says why */
	kf_strbuf_release(&msg);
	return err;
}

static void test_config_defaults(void **state)
{
	const char *argv[] = { "keyforge-worker", NULL };
	enum kf_worker_config_action action;
	struct kf_worker_config cfg;

	(void)state;
	clear_env();
	assert_int_equal(parse(&cfg, &action, 1, argv), KF_OK);
	assert_int_equal(action, KF_WORKER_RUN);
	assert_string_equal(cfg.id, "vm-42");
	assert_int_equal(cfg.slots, 1);
	assert_int_equal(cfg.lease_ahead, 8);
	assert_int_equal(cfg.on_term, KF_WORKER_TERM_FINISH);
	assert_int_equal(cfg.lease_wait_ms, KF_WORKER_LEASE_WAIT_DEFAULT);
	assert_int_equal(cfg.progress_ms, 250);
	assert_null(cfg.token_file);
	assert_string_equal(kf_bus_addrs_get(&cfg.addrs, KF_BUS_RPC), "tcp://127.0.0.1:7402");
	assert_string_equal(kf_bus_addrs_get(&cfg.addrs, KF_BUS_INGEST), "tcp://127.0.0.1:7400");
	assert_non_null(strstr(cfg.default_corpus, "brown.kfc"));
}

static void test_config_flags_over_env(void **state)
{
	const char *argv[] = { "keyforge-worker", "--slots", "5", "--id", "flag-id", "--on-term",
		"handback", "--token-file", "/tmp/t", "--lease-wait", "0", "--lease-ahead", "0",
		"--term-timeout", "2.5s", NULL };
	enum kf_worker_config_action action;
	struct kf_worker_config cfg;

	(void)state;
	clear_env();
	setenv("KEYFORGE_SLOTS", "3", 1);
	setenv("KEYFORGE_WORKER_ID", "env-id", 1);
	setenv("KEYFORGE_RPC", "tcp://127.0.0.1:9999", 1);
	setenv("KEYFORGE_CORPUS_DIR", "/a:/b", 1);
	setenv("KEYFORGE_LEASE_AHEAD", "4", 1);
	assert_int_equal(parse(&cfg, &action, 15, argv), KF_OK);
	assert_int_equal(cfg.lease_ahead, 0);
	assert_int_equal(cfg.term_timeout_ms, 2500);
	assert_int_equal(cfg.slots, 5);
	assert_string_equal(cfg.id, "flag-id");
	assert_int_equal(cfg.on_term, KF_WORKER_TERM_HANDBACK);
	assert_string_equal(cfg.token_file, "/tmp/t");
	assert_int_equal(cfg.lease_wait_ms, 0);
	assert_string_equal(kf_bus_addrs_get(&cfg.addrs, KF_BUS_RPC), "tcp://127.0.0.1:9999");
	assert_string_equal(cfg.corpus_dirs, "/a:/b");
	assert_int_equal(parse(&cfg, &action, 11, argv), KF_OK);
	assert_int_equal(cfg.lease_ahead, 4); /* from the environment */
	clear_env();
}

static void test_config_errors(void **state)
{
	static const struct {
		const char *args[3];
		enum kf_err err;
		enum kf_worker_config_action action;
	} cases[] = {
		{ { "--slots", "0" }, KF_EINVAL, KF_WORKER_RUN },
		{ { "--slots", "65" }, KF_EINVAL, KF_WORKER_RUN },
		{ { "--slots", "2x" }, KF_EINVAL, KF_WORKER_RUN },
		{ { "--lease-ahead", "65" }, KF_EINVAL, KF_WORKER_RUN },
		{ { "--lease-ahead", "-1" }, KF_EINVAL, KF_WORKER_RUN },
		{ { "--lease-ahead", "64" }, KF_OK, KF_WORKER_RUN },
		{ { "--on-term", "later" }, KF_EINVAL, KF_WORKER_RUN },
		{ { "--id", "a b" }, KF_EINVAL, KF_WORKER_RUN },
		{ { "--id", "a/b" }, KF_EINVAL, KF_WORKER_RUN },
		{ { "--id", "" }, KF_EINVAL, KF_WORKER_RUN },
		{ { "--rpc", "ws://127.0.0.1:1" }, KF_EINVAL, KF_WORKER_RUN },
		{ { "--progress-interval", "5" }, KF_EINVAL, KF_WORKER_RUN },
		{ { "--progress-interval", "5ms" }, KF_EINVAL, KF_WORKER_RUN },
		{ { "--progress-interval", "1m" }, KF_OK, KF_WORKER_RUN },
		{ { "--progress-interval", "1.1m" }, KF_EINVAL, KF_WORKER_RUN },
		{ { "--lease-wait", "10m" }, KF_OK, KF_WORKER_RUN },
		{ { "--lease-wait", "-1" }, KF_EINVAL, KF_WORKER_RUN },
		{ { "--term-timeout", "2 s" }, KF_EINVAL, KF_WORKER_RUN },
		{ { "--bogus" }, KF_EINVAL, KF_WORKER_RUN },
		{ { "--slots" }, KF_EINVAL, KF_WORKER_RUN },
		{ { "extra" }, KF_EINVAL, KF_WORKER_RUN },
		{ { "--help" }, KF_OK, KF_WORKER_HELP },
		{ { "-V" }, KF_OK, KF_WORKER_VERSION },
	};

	(void)state;
	clear_env();
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *argv[4] = { "keyforge-worker" };
		enum kf_worker_config_action action;
		struct kf_worker_config cfg;
		int argc = 1;

		for (int k = 0; k < 2 && cases[i].args[k]; k++)
			argv[argc++] = cases[i].args[k];
		assert_int_equal(parse(&cfg, &action, argc, argv), cases[i].err);
		if (!cases[i].err)
			assert_int_equal(action, cases[i].action);
	}
	setenv("KEYFORGE_SLOTS", "abc", 1);
	{
		const char *argv[] = { "keyforge-worker", NULL };
		enum kf_worker_config_action action;
		struct kf_worker_config cfg;

		assert_int_equal(parse(&cfg, &action, 1, argv), KF_EINVAL);
	}
	clear_env();
}

/* ---- the lease-ahead gate ------------------------------------------------------------ */

#define MS 1000000ull
#define SHORT (MS / 10)          /* the last job: a zero-step one, 0.1 ms */
#define LONG (20 * MS)           /* the last job ran past the horizon */
#define UNKNOWN KF__GATE_UNKNOWN

static void test_gate_may_ask(void **state)
{
	/* slots, ahead, running, held, asking, ending, ending_ns, last_ns;
	 * after_job; answer */
	static const struct {
		struct kf__gate_counts n;
		bool after_job;
		enum kf__gate_ask want;
		const char *why;
	} cases[] = {
		{ { 1, 1, 0, 0, 0, 0, 0, UNKNOWN }, false, KF__GATE_SLOT, "idle: ask for the free slot" },
		{ { 1, 1, 0, 0, 1, 0, 0, SHORT }, false, KF__GATE_NO,
		  "idle, one ask out: no second request parked, even after short jobs" },
		{ { 1, 1, 1, 0, 0, 0, 0, SHORT }, false, KF__GATE_NO, "a long job runs: wait" },
		{ { 1, 1, 1, 0, 0, 1, 4 * MS, LONG }, false, KF__GATE_AHEAD,
		  "the job runs to its end: ahead" },
		{ { 1, 1, 1, 1, 0, 2, 0, SHORT }, false, KF__GATE_NO, "one ahead already held" },
		{ { 1, 0, 1, 0, 0, 1, 0, SHORT }, false, KF__GATE_NO, "--lease-ahead 0" },
		{ { 1, 1, 0, 0, 1, 0, 0, SHORT }, true, KF__GATE_AHEAD,
		  "a short job ended, the other lane's ask is out: ask ahead with the report" },
		{ { 1, 1, 0, 0, 1, 0, 0, LONG }, true, KF__GATE_NO,
		  "... but not after a long job: that ask may bring a long one" },
		{ { 1, 1, 0, 0, 1, 0, 0, UNKNOWN }, true, KF__GATE_NO,
		  "... nor before any job has run" },
		{ { 1, 1, 0, 1, 0, 0, 0, SHORT }, true, KF__GATE_NO,
		  "a long job is held for the free slot" },
		{ { 1, 1, 0, 1, 0, 1, MS, SHORT }, true, KF__GATE_AHEAD,
		  "a short job is held for the free slot" },
		{ { 4, 1, 2, 1, 0, 0, 0, LONG }, false, KF__GATE_SLOT, "free slots beyond what is held" },
		{ { 4, 1, 4, 0, 0, 3, 3 * MS, SHORT }, false, KF__GATE_NO, "one of four jobs is long" },
		{ { 4, 2, 4, 1, 0, 5, 12 * MS, SHORT }, false, KF__GATE_AHEAD,
		  "all short, one of two ahead held" },
		{ { 4, 2, 4, 2, 0, 6, 12 * MS, SHORT }, false, KF__GATE_NO, "both ahead held" },
		/* The jobs in hand must end together within the horizon (per slot). */
		{ { 1, 8, 1, 3, 0, 4, 0, SHORT }, false, KF__GATE_AHEAD,
		  "zero-step jobs: a fifth in hand" },
		{ { 1, 8, 1, 2, 3, 3, 0, SHORT }, false, KF__GATE_AHEAD,
		  "zero-step jobs: three asks out of 0.1 ms each fit" },
		{ { 1, 8, 1, 0, 0, 1, 3 * MS, 3 * MS }, false, KF__GATE_AHEAD,
		  "3 ms jobs: one ahead" },
		{ { 1, 8, 1, 1, 0, 2, 6 * MS, 3 * MS }, false, KF__GATE_NO,
		  "3 ms jobs: a second one held would wait 6 ms" },
		{ { 1, 8, 1, 0, 1, 1, 3 * MS, 3 * MS }, false, KF__GATE_NO,
		  "3 ms jobs, one ask out: what this one brings would wait 3 + 3 ms" },
		{ { 4, 8, 4, 0, 0, 4, 16 * MS, LONG }, false, KF__GATE_AHEAD,
		  "four slots share the wait: 16 ms over four" },
		{ { 4, 8, 4, 2, 0, 6, 24 * MS, LONG }, false, KF__GATE_NO,
		  "24 ms over four slots is past the horizon" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		enum kf__gate_ask got = kf__gate_may_ask(&cases[i].n, cases[i].after_job);

		if (got != cases[i].want)
			fail_msg("case %zu (%s): %d, want %d", i, cases[i].why, got, cases[i].want);
	}
}

static void test_gate_predict_ns(void **state)
{
	(void)state;
	assert_int_equal(kf__gate_predict_ns(0, 0, 0, 0), 0);                 /* zero steps */
	assert_true(kf__gate_predict_ns(1000, 0, 0, 0) == KF__GATE_UNKNOWN);  /* no pace */
	/* 1,000 steps at 1 µs each: 1 ms; at 10 µs: 10 ms */
	assert_int_equal(kf__gate_predict_ns(1000, 0, 0, 1000000), MS);
	assert_int_equal(kf__gate_predict_ns(1000, 0, 0, 10000000), 10 * MS);
	/* its own pace counts over the last jobs': 100 steps took 1 ms, the
	 * 400 left take 4 ms */
	assert_int_equal(kf__gate_predict_ns(500, 100, MS, 1), 4 * MS);
	assert_int_equal(kf__gate_predict_ns(700, 700, MS, 0), 0);            /* done */
	assert_int_equal(kf__gate_predict_ns(700, 900, MS, 0), 0);            /* past it: no wrap */
	/* beyond any count of ns: very long, still not "unknown", no overflow */
	assert_true(kf__gate_predict_ns(UINT64_MAX, 0, 0, 1000000000000ull) == KF__GATE_UNKNOWN / 2);
}

/* The counts through a lane's life, two lanes of one slot: the second
 * lane waits while a long job runs, asks once it ends soon, and its job
 * waits for the slot. */
static void test_gate_counts(void **state)
{
	atomic_bool stop = false;
	struct kf__gate g;
	struct kf__gate_lane l1 = { 0 }, l2 = { 0 };

	(void)state;
	kf__gate_init(&g, 1, 1, &stop);
	assert_int_equal(kf__gate_try_ask(&g), KF__GATE_SLOT);          /* lane 1 */
	kf__gate_answered(&g, KF__GATE_SLOT, true, KF__GATE_UNKNOWN, &l1); /* a long job */
	assert_int_equal(g.n.held, 1);
	assert_false(l1.ending);
	kf__gate_run(&g);
	assert_int_equal(g.n.running, 1);
	assert_int_equal(g.n.held, 0);
	assert_int_equal(kf__gate_try_ask(&g), KF__GATE_NO);            /* lane 2 waits */
	kf__gate_ending(&g, &l1, 6 * MS);                               /* past the horizon */
	assert_false(l1.ending);
	assert_int_equal(kf__gate_try_ask(&g), KF__GATE_NO);
	kf__gate_ending(&g, &l1, 4 * MS);
	assert_true(l1.ending);
	assert_int_equal(g.n.ending_ns, 4 * MS);
	assert_int_equal(kf__gate_try_ask(&g), KF__GATE_AHEAD);         /* lane 2 */
	kf__gate_answered(&g, KF__GATE_AHEAD, true, 0, &l2);            /* zero steps */
	assert_int_equal(atomic_load(&g.leased_ahead), 1);
	kf__gate_done(&g, &l1, 20 * KF__GATE_HORIZON_NS);               /* lane 1's job ends */
	assert_false(l1.ending);
	assert_int_equal(g.n.ending, 1);
	assert_int_equal(g.n.ending_ns, 0);
	assert_int_equal(g.n.last_ns, 20 * KF__GATE_HORIZON_NS);
	kf__gate_run(&g);                                               /* lane 2's job runs */
	/* lane 1 reports: the job that runs takes no time, so ask ahead */
	assert_int_equal(kf__gate_try_ask(&g), KF__GATE_AHEAD);
	kf__gate_answered(&g, KF__GATE_AHEAD, false, 0, &l1);           /* no job pending */
	assert_int_equal(atomic_load(&g.leased_ahead), 1);
	kf__gate_done(&g, &l2, 1000);
	assert_int_equal(g.n.last_ns, 1000);
	assert_int_equal(g.n.ending, 0);
	assert_int_equal(g.n.running + g.n.held + g.n.asking, 0);
	atomic_store(&stop, true);
	assert_int_equal(kf__gate_ask(&g), KF__GATE_NO);                /* draining: no wait */
	kf__gate_release(&g);
}

struct asker {
	struct kf__gate *g;
	atomic_int answer; /* -1 until kf__gate_ask returned */
};

static void *ask_main(void *arg)
{
	struct asker *a = arg;

	atomic_store(&a->answer, (int)kf__gate_ask(a->g));
	return NULL;
}

/* A lane waiting to ask sleeps until there is news: the stop flag alone
 * does not wake it (nothing polls), kf__gate_wake does, and it answers
 * KF__GATE_NO. */
static void test_gate_wait_ends_on_wake(void **state)
{
	atomic_bool stop = false;
	struct kf__gate g;
	struct kf__gate_lane l1 = { 0 };
	struct asker a = { .g = &g, .answer = -1 };
	pthread_t th;

	(void)state;
	kf__gate_init(&g, 1, 1, &stop);
	assert_int_equal(kf__gate_try_ask(&g), KF__GATE_SLOT);
	kf__gate_answered(&g, KF__GATE_SLOT, true, KF__GATE_UNKNOWN, &l1); /* a long job */
	kf__gate_run(&g);
	assert_int_equal(pthread_create(&th, NULL, ask_main, &a), 0);
	kf_sleep_ms(100);
	assert_int_equal(atomic_load(&a.answer), -1);                    /* it waits */
	atomic_store(&stop, true);
	kf_sleep_ms(300);
	assert_int_equal(atomic_load(&a.answer), -1);                    /* still: no polling */
	kf__gate_wake(&g);
	pthread_join(th, NULL);
	assert_int_equal(atomic_load(&a.answer), KF__GATE_NO);
	kf__gate_done(&g, &l1, 1000);
	kf__gate_release(&g);
}

/* Four lanes ahead of one slot: zero-step jobs fill them all; jobs of
 * 3 ms only one, since a second would wait past the horizon. */
static void test_gate_horizon_bounds_the_wait(void **state)
{
	atomic_bool stop = false;
	struct kf__gate g;
	struct kf__gate_lane l[5] = { { 0 } };

	(void)state;
	kf__gate_init(&g, 1, 4, &stop);
	assert_int_equal(kf__gate_try_ask(&g), KF__GATE_SLOT);
	kf__gate_answered(&g, KF__GATE_SLOT, true, 0, &l[0]);
	kf__gate_run(&g);
	kf__gate_done(&g, &l[0], SHORT);      /* one zero-step job done: its pace is known */
	assert_int_equal(kf__gate_try_ask(&g), KF__GATE_SLOT);
	kf__gate_answered(&g, KF__GATE_SLOT, true, 0, &l[0]);
	kf__gate_run(&g);
	for (int i = 1; i <= 4; i++) {        /* all four asks ahead, at once */
		assert_int_equal(kf__gate_try_ask(&g), KF__GATE_AHEAD);
	}
	assert_int_equal(kf__gate_try_ask(&g), KF__GATE_NO);   /* slots + ahead reached */
	for (int i = 1; i <= 4; i++)
		kf__gate_answered(&g, KF__GATE_AHEAD, true, 0, &l[i]);
	assert_int_equal(g.n.held, 4);
	assert_int_equal(g.n.ending, 5);
	assert_int_equal(atomic_load(&g.leased_ahead), 4);
	for (int i = 0; i <= 4; i++) {        /* they run one after another */
		kf__gate_done(&g, &l[i], 3 * MS);
		if (i < 4)
			kf__gate_run(&g);
	}
	assert_int_equal(g.n.running + g.n.held + g.n.ending, 0);
	assert_int_equal(g.n.ending_ns, 0);

	/* Now 3 ms jobs: one ahead of the running one, no more. */
	assert_int_equal(kf__gate_try_ask(&g), KF__GATE_SLOT);
	kf__gate_answered(&g, KF__GATE_SLOT, true, 3 * MS, &l[0]);
	kf__gate_run(&g);
	assert_int_equal(kf__gate_try_ask(&g), KF__GATE_AHEAD);
	assert_int_equal(kf__gate_try_ask(&g), KF__GATE_NO);   /* 3 + 3 ms > 5 ms */
	kf__gate_answered(&g, KF__GATE_AHEAD, true, 3 * MS, &l[1]);
	assert_int_equal(g.n.ending_ns, 6 * MS);
	assert_int_equal(kf__gate_try_ask(&g), KF__GATE_NO);   /* 6 ms in hand */
	kf__gate_done(&g, &l[0], 3 * MS);
	kf__gate_run(&g);
	assert_int_equal(kf__gate_try_ask(&g), KF__GATE_AHEAD);  /* 3 ms in hand again */
	kf__gate_answered(&g, KF__GATE_AHEAD, false, 0, &l[0]);
	kf__gate_done(&g, &l[1], 3 * MS);
	assert_int_equal(g.n.ending_ns, 0);
	kf__gate_release(&g);
}

struct napper {
	struct kf__gate *g;
	uint32_t ms;
	atomic_bool done;
};

static void *nap_main(void *arg)
{
	struct napper *n = arg;

	kf__gate_nap(n->g, n->ms);
	atomic_store(&n->done, true);
	return NULL;
}

static bool nap_done_within(struct napper *n, int ms)
{
	for (int waited = 0; waited < ms && !atomic_load(&n->done); waited += 5)
		kf_sleep_ms(5);
	return atomic_load(&n->done);
}

/* A lane napping after an empty ask (a minute here) sleeps through news
 * that says nothing of the queue — an ask ahead that came back empty, a
 * job for a free slot (handed over by the broker, maybe the only one) — and
 * wakes when an ask ahead brings a job (jobs are queued) or the worker
 * drains. A short nap simply ends. */
static void test_gate_nap_ends_when_jobs_are_queued(void **state)
{
	atomic_bool stop = false;
	struct kf__gate g;
	struct kf__gate_lane l[3] = { { 0 } };
	struct napper n = { .g = &g, .ms = 60000 };
	pthread_t th;

	(void)state;
	kf__gate_init(&g, 1, 2, &stop);
	n.done = false;
	assert_int_equal(pthread_create(&th, NULL, nap_main, &n), 0);
	assert_int_equal(kf__gate_try_ask(&g), KF__GATE_SLOT);
	kf__gate_answered(&g, KF__GATE_SLOT, true, 0, &l[0]);
	kf__gate_run(&g);
	assert_int_equal(kf__gate_try_ask(&g), KF__GATE_AHEAD);
	kf__gate_answered(&g, KF__GATE_AHEAD, false, 0, &l[1]);
	assert_false(nap_done_within(&n, 200));            /* no job ahead: still napping */
	assert_int_equal(kf__gate_try_ask(&g), KF__GATE_AHEAD);
	kf__gate_answered(&g, KF__GATE_AHEAD, true, 0, &l[1]);
	assert_true(nap_done_within(&n, 5000));            /* a job was queued: ask */
	pthread_join(th, NULL);

	n = (struct napper){ .g = &g, .ms = 60000 };
	assert_int_equal(pthread_create(&th, NULL, nap_main, &n), 0);
	assert_false(nap_done_within(&n, 100));
	atomic_store(&stop, true);
	kf__gate_wake(&g);
	assert_true(nap_done_within(&n, 5000));            /* draining */
	pthread_join(th, NULL);

	atomic_store(&stop, false);
	n = (struct napper){ .g = &g, .ms = 20 };
	assert_int_equal(pthread_create(&th, NULL, nap_main, &n), 0);
	assert_true(nap_done_within(&n, 5000));            /* the nap's own end */
	pthread_join(th, NULL);
	kf__gate_done(&g, &l[0], SHORT);
	kf__gate_release(&g);
}

/* How many of the askers have their answer; waits up to ms for `want`. */
static int answered_within(struct asker *a, int n, int want, int ms)
{
	int got = 0;

	for (int waited = 0;; waited += 5) {
		got = 0;
		for (int i = 0; i < n; i++)
			got += atomic_load(&a[i].answer) != -1;
		if (got >= want || waited >= ms)
			return got;
		kf_sleep_ms(5);
	}
}

struct runner {
	struct kf__gate *g;
	atomic_bool running;
};

static void *run_main(void *arg)
{
	struct runner *r = arg;

	kf__gate_run(r->g);
	atomic_store(&r->running, true);
	return NULL;
}

/* Waiting lanes are woken one at a time (gate.h): a change that lets four
 * ask ahead admits four through the hand-on from one to the next, the
 * fifth waits until an ask comes back, and each slot freed runs one held
 * job. A wake-up lost on the way leaves a lane waiting here. */
static void test_gate_wakes_as_many_as_may_go(void **state)
{
	atomic_bool stop = false;
	struct kf__gate g;
	struct kf__gate_lane l[6] = { { 0 } };
	struct asker a[5];
	struct runner r[2];
	pthread_t th[5], rth[2];

	(void)state;
	kf__gate_init(&g, 1, 4, &stop);
	assert_int_equal(kf__gate_try_ask(&g), KF__GATE_SLOT);
	kf__gate_answered(&g, KF__GATE_SLOT, true, 0, &l[0]);
	kf__gate_run(&g);
	kf__gate_done(&g, &l[0], SHORT);      /* the pace of a short job is known */
	assert_int_equal(kf__gate_try_ask(&g), KF__GATE_SLOT);
	kf__gate_answered(&g, KF__GATE_SLOT, true, KF__GATE_UNKNOWN, &l[0]); /* a long job */
	kf__gate_run(&g);
	for (int i = 0; i < 5; i++) {
		a[i] = (struct asker){ .g = &g, .answer = -1 };
		assert_int_equal(pthread_create(&th[i], NULL, ask_main, &a[i]), 0);
	}
	assert_int_equal(answered_within(a, 5, 1, 100), 0);   /* the job is not ending */
	kf__gate_ending(&g, &l[0], 0);        /* now it is: four may ask ahead */
	assert_int_equal(answered_within(a, 5, 4, 5000), 4);
	assert_int_equal(answered_within(a, 5, 5, 100), 4);   /* slots + ahead reached */
	for (int i = 0; i < 5; i++) {
		if (atomic_load(&a[i].answer) != -1)
			assert_int_equal(atomic_load(&a[i].answer), KF__GATE_AHEAD);
	}
	kf__gate_answered(&g, KF__GATE_AHEAD, false, 0, &l[5]);  /* one came back empty */
	assert_int_equal(answered_within(a, 5, 5, 5000), 5);
	for (int i = 0; i < 5; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(g.n.asking, 4);

	/* Two of the asks bring jobs; each waits for the slot, and each end
	 * of a job runs one of them. */
	kf__gate_answered(&g, KF__GATE_AHEAD, true, 0, &l[1]);
	kf__gate_answered(&g, KF__GATE_AHEAD, true, 0, &l[2]);
	for (int i = 0; i < 2; i++) {
		r[i] = (struct runner){ .g = &g, .running = false };
		assert_int_equal(pthread_create(&rth[i], NULL, run_main, &r[i]), 0);
	}
	kf_sleep_ms(50);
	assert_false(atomic_load(&r[0].running) || atomic_load(&r[1].running));
	kf__gate_done(&g, &l[0], SHORT);
	for (int waited = 0; waited < 5000 && !(atomic_load(&r[0].running) ||
						atomic_load(&r[1].running)); waited += 5)
		kf_sleep_ms(5);
	kf_sleep_ms(50);
	assert_int_equal(atomic_load(&r[0].running) + atomic_load(&r[1].running), 1);
	kf__gate_done(&g, atomic_load(&r[0].running) ? &l[1] : &l[2], SHORT);
	for (int i = 0; i < 2; i++)
		pthread_join(rth[i], NULL);
	assert_int_equal(g.n.running, 1);
	assert_int_equal(g.n.held, 0);
	kf__gate_release(&g);
}

/* ---- why a job stops (stop.c) ------------------------------------------------- */

/* Reasons that meet: the first stands, except that a stale lease trumps
 * everything and a kill trumps a hand-back (a released job would run
 * again elsewhere although the operator killed it). */
static void test_stop_merge(void **state)
{
	static const enum kf__stop all[] = { KF__STOP_NONE, KF__STOP_KILL, KF__STOP_DROP,
		KF__STOP_HANDBACK, KF__STOP_EXPIRE };

	(void)state;
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		assert_int_equal(kf__stop_merge(all[i], KF__STOP_NONE), all[i]);
		assert_int_equal(kf__stop_merge(KF__STOP_NONE, all[i]), all[i]);
		assert_int_equal(kf__stop_merge(all[i], KF__STOP_DROP), KF__STOP_DROP);
		assert_int_equal(kf__stop_merge(KF__STOP_DROP, all[i]), KF__STOP_DROP);
	}
	assert_int_equal(kf__stop_merge(KF__STOP_HANDBACK, KF__STOP_KILL), KF__STOP_KILL);
	assert_int_equal(kf__stop_merge(KF__STOP_KILL, KF__STOP_HANDBACK), KF__STOP_KILL);
	assert_int_equal(kf__stop_merge(KF__STOP_EXPIRE, KF__STOP_KILL), KF__STOP_EXPIRE);
	assert_int_equal(kf__stop_merge(KF__STOP_KILL, KF__STOP_EXPIRE), KF__STOP_KILL);
	assert_int_equal(kf__stop_merge(KF__STOP_HANDBACK, KF__STOP_EXPIRE), KF__STOP_HANDBACK);
}

static void test_stop_settle(void **state)
{
	(void)state;
	assert_int_equal(kf__stop_settle(KF__STOP_NONE, KF_OK), KF__SETTLE_SUCCEEDED);
	assert_int_equal(kf__stop_settle(KF__STOP_NONE, KF_EIO), KF__SETTLE_FAILED);
	assert_int_equal(kf__stop_settle(KF__STOP_DROP, KF_OK), KF__SETTLE_DROPPED);
	assert_int_equal(kf__stop_settle(KF__STOP_DROP, KF_ECANCELED), KF__SETTLE_DROPPED);
	assert_int_equal(kf__stop_settle(KF__STOP_KILL, KF_ECANCELED), KF__SETTLE_KILLED);
	assert_int_equal(kf__stop_settle(KF__STOP_KILL, KF_OK), KF__SETTLE_KILLED);
	assert_int_equal(kf__stop_settle(KF__STOP_EXPIRE, KF_ECANCELED), KF__SETTLE_EXPIRED);
	assert_int_equal(kf__stop_settle(KF__STOP_EXPIRE, KF_OK), KF__SETTLE_SUCCEEDED);
	/* A hand-back gives back what did not finish, and reports what did:
	 * a finished run (a zero-step job leased ahead, a job done as the
	 * shutdown began) is not thrown away to be run again. */
	assert_int_equal(kf__stop_settle(KF__STOP_HANDBACK, KF_ECANCELED), KF__SETTLE_RELEASED);
	assert_int_equal(kf__stop_settle(KF__STOP_HANDBACK, KF_EIO), KF__SETTLE_RELEASED);
	assert_int_equal(kf__stop_settle(KF__STOP_HANDBACK, KF_OK), KF__SETTLE_SUCCEEDED);
}

/* A cancel ahead of its lease is kept for that attempt alone, taken once,
 * and forgotten when old or pushed out by newer ones. */
static void test_early_cancels(void **state)
{
	struct kf__early_cancels m = { 0 };
	uint64_t t = 5 * KF__EARLY_CANCEL_NS;

	(void)state;
	assert_int_equal(kf__early_take(&m, 7, 70, t), KF__STOP_NONE);
	kf__early_note(&m, 7, 70, false, t);
	assert_int_equal(kf__early_take(&m, 7, 71, t), KF__STOP_NONE);  /* another attempt */
	assert_int_equal(kf__early_take(&m, 8, 70, t), KF__STOP_NONE);  /* another job */
	assert_int_equal(kf__early_take(&m, 7, 70, t + 1), KF__STOP_KILL);
	assert_int_equal(kf__early_take(&m, 7, 70, t + 1), KF__STOP_NONE); /* taken once */

	kf__early_note(&m, 9, 90, true, t);
	assert_int_equal(kf__early_take(&m, 9, 90, t), KF__STOP_DROP);
	kf__early_note(&m, 9, 0, false, t);                    /* no token: not kept */
	assert_int_equal(kf__early_take(&m, 9, 91, t), KF__STOP_NONE);
	assert_int_equal(kf__early_take(&m, 9, 0, t), KF__STOP_NONE);
	kf__early_note(&m, 9, 90, false, t);                             /* kill, then drop */
	kf__early_note(&m, 9, 90, true, t);
	assert_int_equal(kf__early_take(&m, 9, 90, t), KF__STOP_DROP);
	assert_int_equal(kf__early_take(&m, 9, 90, t), KF__STOP_NONE);

	kf__early_note(&m, 10, 100, false, t);                           /* too old */
	assert_int_equal(kf__early_take(&m, 10, 100, t + KF__EARLY_CANCEL_NS), KF__STOP_NONE);
	kf__early_note(&m, 0, 1, false, t);                              /* not a job */
	assert_int_equal(kf__early_take(&m, 0, 1, t), KF__STOP_NONE);

	kf__early_note(&m, 11, 110, false, t);                           /* pushed out */
	for (uint64_t j = 100; j < 100 + KF__EARLY_CANCELS; j++)
		kf__early_note(&m, j, j, false, t);
	assert_int_equal(kf__early_take(&m, 11, 110, t), KF__STOP_NONE);
	assert_int_equal(kf__early_take(&m, 100 + KF__EARLY_CANCELS - 1,
					100 + KF__EARLY_CANCELS - 1, t), KF__STOP_KILL);
}

/* ---- /proc and loads ------------------------------------------------------------ */

static void test_host_cpu_parse(void **state)
{
	struct kf__host_cpu c;

	(void)state;
	assert_int_equal(kf__parse_host_cpu("cpu  10 20 30 400 50 6 7 8 9 10\ncpu0 1 2 3 4\n", &c),
			 KF_OK);
	assert_int_equal(c.busy, 10 + 20 + 30 + 6 + 7 + 8);  /* guest is inside user */
	assert_int_equal(c.total, 81 + 400 + 50);
	assert_int_equal(kf__parse_host_cpu("cpu 1 2 3 4\n", &c), KF_OK); /* old kernels */
	assert_int_equal(c.busy, 6);
	assert_int_equal(c.total, 10);
	assert_int_equal(kf__parse_host_cpu("cpu  1 2 3\n", &c), KF_EINVAL);
	assert_int_equal(kf__parse_host_cpu("intr 1 2 3 4\n", &c), KF_EINVAL);
	assert_int_equal(kf__parse_host_cpu("cpu  1 2 x 4\n", &c), KF_EINVAL);
	assert_int_equal(kf__parse_host_cpu("", &c), KF_EINVAL);
}

static void test_loads(void **state)
{
	struct kf__host_cpu a = { 100, 1000 }, b = { 150, 1100 }, back = { 90, 1200 };

	(void)state;
	assert_true(kf__host_load(&a, &b) == 0.5);
	assert_true(kf__host_load(&a, &a) == 0);
	assert_true(kf__host_load(&a, &back) == 0);
	assert_true(kf__process_load(1.0, 1.5, 500000000ull) == 1.0);
	assert_true(kf__process_load(1.0, 3.0, 1000000000ull) == 2.0); /* two cores busy */
	assert_true(kf__process_load(1.0, 1.5, 0) == 0);
	assert_true(kf__process_load(2.0, 1.0, 1000000000ull) == 0);
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Spends ms of this thread's CPU time (not wall time: a busy machine
 * only makes it take longer). */
static void burn_cpu_ms(unsigned ms)
{
	uint64_t end = thread_cpu_ns() + ms * KF_NS_PER_MS;
	volatile uint64_t x = 0;

	while (thread_cpu_ns() < end)
		for (int i = 0; i < 10000; i++)
			x = x + 1;
}

static void test_load_sample(void **state)
{
	struct kf__load_sampler s;
	struct kf__load l;

	(void)state;
	/* The first sample counts from the sampler's start: not the CPU
	 * spent before it (300 ms here), and with a host figure already.
	 * This thread alone runs, so at most one core. */
	burn_cpu_ms(300);
	kf__load_sampler_init(&s);
	burn_cpu_ms(KF__LOAD_MIN_INTERVAL_MS + 50);
	assert_int_equal(kf__load_sample(&s, &l), KF_OK);
	assert_true(l.rss_bytes > 0);
	assert_true(l.cpu_process > 0 && l.cpu_process <= 1.2);
	assert_true(l.cpu_host > 0 && l.cpu_host <= 1);
	assert_int_equal(kf__load_sample(&s, &l), KF_OK);
	assert_true(l.cpu_host >= 0 && l.cpu_host <= 1);
	assert_true(l.cpu_process >= 0);
}

/* A sample a few milliseconds after the previous one — the heartbeat right
 * after a hello follows the last tick by any time from 0 to 1 s — must not
 * read the process's CPU from the kernel's 10 ms ticks over that sliver: one
 * tick in 5 ms said 2 cores for this one thread. */
static void test_load_sample_soon_after(void **state)
{
	struct kf__load_sampler s;
	struct kf__load l;

	(void)state;
	kf__load_sampler_init(&s);
	burn_cpu_ms(300);
	assert_int_equal(kf__load_sample(&s, &l), KF_OK);
	assert_true(l.cpu_process > 0 && l.cpu_process <= 1.2);
	for (int i = 0; i < 20; i++) {
		burn_cpu_ms(5);
		assert_int_equal(kf__load_sample(&s, &l), KF_OK);
		assert_true(l.cpu_process <= 1.2);
		assert_true(l.cpu_host >= 0 && l.cpu_host <= 1);
		assert_true(l.rss_bytes > 0);
	}
}

/* ---- token, text, log records --------------------------------------------------- */

static void test_token_parse(void **state)
{
	char tok[KF__TOKEN_MAX + 1], big[400];
	const char *t = "  ab12cd \nrest";

	(void)state;
	assert_int_equal(kf__token_parse(t, strlen(t), tok), KF_OK);
	assert_string_equal(tok, "ab12cd");
	assert_int_equal(kf__token_parse("xyz", 3, tok), KF_OK);
	assert_string_equal(tok, "xyz");
	assert_int_equal(kf__token_parse("", 0, tok), KF_EINVAL);
	assert_int_equal(kf__token_parse("  \n", 3, tok), KF_EINVAL);
	memset(big, 'a', sizeof big);
	assert_int_equal(kf__token_parse(big, sizeof big, tok), KF_EINVAL);
}

static void test_utf8_sanitize(void **state)
{
	char out[32];

	(void)state;
	assert_int_equal(kf__utf8_sanitize(out, sizeof out, "h\xC3\xA9llo", 6), 6);
	assert_string_equal(out, "h\xC3\xA9llo");
	assert_int_equal(kf__utf8_sanitize(out, sizeof out, "a\xFF" "b", 3), 5);
	assert_string_equal(out, "a\xEF\xBF\xBD" "b");
	assert_int_equal(kf__utf8_sanitize(out, sizeof out, "a\0b", 3), 5);
	assert_string_equal(out, "a\xEF\xBF\xBD" "b");
	/* cut at a character boundary: 4 bytes of room hold one 2-byte é */
	assert_int_equal(kf__utf8_sanitize(out, 4, "\xC3\xA9\xC3\xA9\xC3\xA9", 6), 2);
	assert_string_equal(out, "\xC3\xA9");
	assert_int_equal(kf__utf8_sanitize(out, 1, "abc", 3), 0);
	assert_string_equal(out, "");
}

static void test_log_record_to_msg(void **state)
{
	struct kf_field job_fields[] = { KF_U64("job_id", 42), KF_STR("worker_id", "w-1"),
		KF_EMPTY("result") };
	struct kf_field ev_fields[] = { KF_STRN("path", "a\xFFz", 3), KF_I64("delta", -5),
		KF_F64("score", 1.5), KF_BOOL("ok", true), KF_EMPTY("later") };
	struct kf_span_info root = { .id = 1, .level = KF_LEVEL_INFO, .target = "t",
		.name = "job_execution", .fields = job_fields, .n_fields = 3 };
	struct kf_span_info inner = { .id = 2, .level = KF_LEVEL_INFO, .target = "t",
		.name = "annealing_loop", .fields = NULL, .n_fields = 0 };
	const struct kf_span_info *spans[] = { &root, &inner };
	struct kf_log_record rec = { .level = KF_LEVEL_WARN, .target = "keyforge::worker::job",
		.message = "job failed", .fields = ev_fields, .n_fields = 5, .spans = spans,
		.n_spans = 2, .timestamp_ns = 1234567890123ull };
	struct kf__scratch s = KF__SCRATCH_INIT;
	struct kf_strbuf sb = KF_STRBUF_INIT;
	struct kf_msg m, *d = NULL;

	(void)state;
	kf_msg_init(&m, KF_MSG_LOG, "w-1", 7);
	assert_int_equal(kf__log_record_to_msg(&rec, &s, &m.log), KF_OK);
	assert_int_equal(kf_msg_encode_pub("log.WARN.w-1", &m, &sb), KF_OK);
	kf__scratch_release(&s);
	assert_int_equal(kf_msg_decode_pub(sb.buf, sb.len, &d, NULL), KF_OK);
	assert_string_equal(d->topic, "log.WARN.w-1");
	assert_int_equal(d->log.level, KF_MSG_LEVEL_WARN);
	assert_string_equal(d->log.target, "keyforge::worker::job");
	assert_string_equal(d->log.message, "job failed");
	assert_int_equal(d->log.n_fields, 4); /* the empty one is left out */
	assert_string_equal(d->log.fields[0].name, "path");
	assert_string_equal(d->log.fields[0].value.str, "a\xEF\xBF\xBDz");
	assert_int_equal(d->log.fields[1].value.kind, KF_VALUE_I64);
	assert_int_equal(d->log.fields[1].value.i64, -5);
	assert_true(d->log.fields[2].value.f64 == 1.5);
	assert_true(d->log.fields[3].value.b);
	assert_int_equal(d->log.n_spans, 2);
	assert_string_equal(d->log.spans[0].name, "job_execution");
	assert_int_equal(d->log.spans[0].n_fields, 2);
	assert_int_equal(d->log.spans[0].fields[0].value.u64, 42);
	assert_string_equal(d->log.spans[0].fields[1].value.str, "w-1");
	assert_string_equal(d->log.spans[1].name, "annealing_loop");
	assert_int_equal(d->log.ts_ns, 1234567890123ull);
	kf_msg_free(d);
	kf_strbuf_release(&sb);
}

/* ---- outbox ------------------------------------------------------------------------ */

/* ---- the telemetry publisher ------------------------------------------------ */

/* Heartbeats n, from seq, received in order, each a message of its own. */
static void expect_heartbeats(struct kf_bus_sub *sub, uint64_t from, int n)
{
	for (int i = 0; i < n; i++) {
		struct kf_msg *m = NULL;
		nng_msg *nm = NULL;

		assert_int_equal(kf_bus_sub_recv(sub, 3000, &nm), KF_OK);
		assert_int_equal(kf_msg_decode_pub(nng_msg_body(nm), nng_msg_len(nm), &m, NULL),
			KF_OK);
		assert_int_equal(m->type, KF_MSG_HEARTBEAT);
		assert_int_equal(m->seq, from + (uint64_t)i);
		kf_msg_free(m);
		nng_msg_free(nm);
	}
}

/* Messages the publisher's socket has sent since `before`, once it has
 * counted at least `want` or 3 s passed: the count follows the send, and a
 * subscriber may hold the message before the sender's thread counts it. */
static uint64_t sent_since(struct kf_bus_pub *pub, const struct kf_bus_pub_stats *before,
	uint64_t want)
{
	struct kf_bus_pub_stats now;

	for (int i = 0; i < 300; i++) {
		kf_bus_pub_stats(pub, &now);
		if (now.sent - before->sent >= want)
			break;
		kf_sleep_ms(10);
	}
	return now.sent - before->sent;
}

/* The end of a publisher test: the publisher stopped (1 s to flush) and
 * freed, then its socket, the subscriber and the URL. */
static void publisher_test_end(struct kf__publisher *p, struct kf_bus_pub *pub,
	struct kf_bus_sub *sub, struct kf_strbuf *url)
{
	kf__publisher_stop(p, 1000);
	kf__publisher_free(p);
	kf_bus_pub_free(pub);
	kf_bus_sub_free(sub);
	kf_strbuf_release(url);
}

/* With bundles on, what waits for a connection leaves in one bundle once
 * it is up; the broker's side reads the same messages, in order. Without
 * bundles each message goes alone. */
static void test_publisher_bundles(void **state)
{
	struct kf_msg_heartbeat hb = { .worker_id = "w-pub", .host = "h", .pid = 1,
		.incarnation = 7, .slots_total = 1 };
	struct kf__publisher_opts o = { .source = "w-pub", .incarnation = 7 };
	struct kf_bus_pub_stats before;
	struct kf__publisher *p;
	struct kf_strbuf url = KF_STRBUF_INIT;
	struct kf_bus_sub *sub;
	struct kf_bus_pub *pub;

	(void)state;
	/* A free port: bound by a listener that goes away again. */
	assert_int_equal(kf_bus_sub_new(&sub, KF_BUS_LISTEN, "tcp://127.0.0.1:0", NULL, NULL),
		KF_OK);
	assert_int_equal(kf_bus_sock_bound_url(kf_bus_sub_sock(sub), &url), KF_OK);
	kf_bus_sub_free(sub);
	assert_int_equal(kf_bus_pub_new(&pub, KF_BUS_DIAL, url.buf, NULL, NULL), KF_OK);
	o.pub = pub;
	assert_int_equal(kf__publisher_new(&o, &p), KF_OK);
	assert_int_equal(kf__publisher_start(p), KF_OK);
	kf__publisher_set_bundle(p, KF_BUS_BUNDLE_MAX_PARTS);
	for (int i = 0; i < 20; i++)
		assert_int_equal(kf__publisher_heartbeat(p, &hb), KF_OK);

	kf_bus_pub_stats(pub, &before);
	/* Subscribed before it listens: nothing can arrive unfiltered. */
	assert_int_equal(kf_bus_sub_new(&sub, KF_BUS_LISTEN, NULL, NULL, NULL), KF_OK);
	assert_int_equal(kf_bus_sub_subscribe(sub, "hb.", 3), KF_OK);
	assert_int_equal(kf_bus_sock_listen(kf_bus_sub_sock(sub), url.buf, NULL, NULL), KF_OK);
	expect_heartbeats(sub, 1, 20);
	assert_int_equal(sent_since(pub, &before, 1), 1);

	kf__publisher_set_bundle(p, 1);
	kf_bus_pub_stats(pub, &before);
	for (int i = 0; i < 20; i++)
		assert_int_equal(kf__publisher_heartbeat(p, &hb), KF_OK);
	expect_heartbeats(sub, 21, 20);
	assert_int_equal(sent_since(pub, &before, 20), 20);

	publisher_test_end(p, pub, sub, &url);
}

struct hb_tick {
	struct kf_msg_heartbeat hb;
};

static void queue_heartbeat(void *ctx, struct kf__publisher *p, uint64_t tick)
{
	struct hb_tick *t = ctx;

	(void)tick;
	assert_int_equal(kf__publisher_heartbeat(p, &t->hb), KF_OK);
}

/* The heartbeat that kf__publisher_tick_now queues after a hello (the
 * broker leases to a new process only once it has one) leaves at once,
 * with what was queued before it, however long the publisher would
 * otherwise gather: here a minute, against a 3 s wait for it. */
static void test_publisher_tick_now_not_gathered(void **state)
{
	struct hb_tick t = { .hb = { .worker_id = "w-pub", .host = "h", .pid = 1,
		.incarnation = 7, .slots_total = 1 } };
	struct kf__publisher_opts o = { .source = "w-pub", .incarnation = 7, .tick = queue_heartbeat,
		.tick_ctx = &t, .gather_ms = 60000 };
	struct kf_bus_pub_stats before;
	struct kf__publisher *p;
	struct kf_strbuf url = KF_STRBUF_INIT;
	struct kf_bus_sub *sub;
	struct kf_bus_pub *pub;

	(void)state;
	assert_int_equal(kf_bus_sub_new(&sub, KF_BUS_LISTEN, "tcp://127.0.0.1:0", NULL, NULL),
		KF_OK);
	assert_int_equal(kf_bus_sub_subscribe(sub, "hb.", 3), KF_OK);
	assert_int_equal(kf_bus_sock_bound_url(kf_bus_sub_sock(sub), &url), KF_OK);
	assert_int_equal(kf_bus_pub_new(&pub, KF_BUS_DIAL, url.buf, NULL, NULL), KF_OK);
	o.pub = pub;
	assert_int_equal(kf__publisher_new(&o, &p), KF_OK);
	kf__publisher_set_bundle(p, KF_BUS_BUNDLE_MAX_PARTS);
	assert_int_equal(kf__publisher_start(p), KF_OK);
	for (int i = 0; i < 200 && !kf_bus_sock_peers(kf_bus_pub_sock(pub)); i++)
		kf_sleep_ms(10);
	assert_true(kf_bus_sock_peers(kf_bus_pub_sock(pub)) > 0);
	kf_bus_pub_stats(pub, &before);
	for (int i = 0; i < 3; i++)
		assert_int_equal(kf__publisher_heartbeat(p, &t.hb), KF_OK);
	kf__publisher_tick_now(p);
	expect_heartbeats(sub, 1, 4);
	assert_int_equal(sent_since(pub, &before, 1), 1);   /* one bundle of four */

	publisher_test_end(p, pub, sub, &url);
}

static void test_complete_verdict(void **state)
{
	static const struct {
		enum kf_msg_type type;
		enum kf_err status;
		bool drop;
		enum kf__verdict want;
	} cases[] = {
		{ KF_MSG_COMPLETE_REP, KF_OK, false, KF__VERDICT_ACKED },
		{ KF_MSG_COMPLETE_REP, KF_ESTALE, true, KF__VERDICT_DROP },
		{ KF_MSG_COMPLETE_REP, KF_ENOENT, true, KF__VERDICT_DROP },
		{ KF_MSG_COMPLETE_REP, KF_ESTALE, false, KF__VERDICT_DROP },
		{ KF_MSG_COMPLETE_REP, KF_EPERM, false, KF__VERDICT_REAUTH },
		{ KF_MSG_COMPLETE_REP, KF_EUNAVAIL, false, KF__VERDICT_RETRY },
		{ KF_MSG_COMPLETE_REP, KF_ENOMEM, false, KF__VERDICT_RETRY },
		{ KF_MSG_COMPLETE_REP, KF_EINVAL, false, KF__VERDICT_REFUSED },
		{ KF_MSG_COMPLETE_REP, KF_ETOOBIG, false, KF__VERDICT_REFUSED },
		{ KF_MSG_ERROR_REP, KF_EMALFORMED, false, KF__VERDICT_REFUSED },
		{ KF_MSG_LEASE_REP, KF_OK, false, KF__VERDICT_RETRY },
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct kf_msg rep;

		kf_msg_init(&rep, cases[i].type, "broker", 1);
		kf_msg_reply_mut(&rep)->status = cases[i].status;
		if (cases[i].type == KF_MSG_COMPLETE_REP)
			rep.complete_rep.drop = cases[i].drop;
		assert_int_equal(kf__complete_verdict(KF_OK, &rep), cases[i].want);
	}
	assert_int_equal(kf__complete_verdict(KF_ETIMEDOUT, NULL), KF__VERDICT_RETRY);
	assert_int_equal(kf__complete_verdict(KF_ECANCELED, NULL), KF__VERDICT_RETRY);
}

static void test_backoff(void **state)
{
	(void)state;
	assert_int_equal(kf__outbox_backoff_ms(1, 0), 50);
	assert_int_equal(kf__outbox_backoff_ms(1, 1), 100);
	assert_int_equal(kf__outbox_backoff_ms(2, 1), 200);
	assert_int_equal(kf__outbox_backoff_ms(3, 1), 400);
	assert_int_equal(kf__outbox_backoff_ms(7, 1), 5000);  /* 6400 capped */
	assert_int_equal(kf__outbox_backoff_ms(40, 1), 5000);
	assert_int_equal(kf__outbox_backoff_ms(40, 0), 2500);
	assert_int_equal(kf__outbox_backoff_ms(1, 7), 100);   /* jitter clamped */
}

static void test_completion_round_trip(void **state)
{
	struct kf__completion c = { .job_id = 9, .lease_token = 77, .attempt = 2,
		.outcome = KF_JOB_KILLED, .has_result = true, .layout =
		"qwertyuiopasdfghjkl;zxcvbnm,./", .cost = 12.5, .n_stats = 2, .steps = 1000,
		.steps_per_sec = 2e6, .elapsed_ms = 3 };
	struct kf_msg_job_result res;
	struct kf_strbuf sb = KF_STRBUF_INIT;
	struct kf_msg req, *d = NULL;

	(void)state;
	c.stats[0] = (struct kf_msg_named_value){ "sfb", 1.25 };
	c.stats[1] = (struct kf_msg_named_value){ "lsb", 0.5 };
	c.finger_usage[0] = 7.5;
	kf__completion_to_req(&c, &res, &req);
	req.sender = "w-1";
	req.complete_req.req.id = (struct kf_msg_request_id){ 5, 6 };
	assert_int_equal(kf_msg_encode(&req, &sb), KF_OK);
	assert_int_equal(kf_msg_decode(sb.buf, sb.len, &d, NULL), KF_OK);
	assert_int_equal(d->type, KF_MSG_COMPLETE_REQ);
	assert_int_equal(d->complete_req.job_id, 9);
	assert_int_equal(d->complete_req.lease_token, 77);
	assert_int_equal(d->complete_req.outcome, KF_JOB_KILLED);
	assert_null(d->complete_req.error);
	assert_non_null(d->complete_req.result);
	assert_string_equal(d->complete_req.result->layout, c.layout);
	assert_int_equal(d->complete_req.result->n_stats, 2);
	assert_string_equal(d->complete_req.result->stats[1].name, "lsb");
	assert_true(d->complete_req.result->finger_usage[0] == 7.5);
	assert_int_equal(d->complete_req.result->steps, 1000);
	kf_msg_free(d);
	/* A failure without a result carries its error. */
	c.has_result = false;
	c.outcome = KF_JOB_FAILED;
	snprintf(c.error, sizeof c.error, "corpus 'x' not found");
	kf__completion_to_req(&c, &res, &req);
	req.sender = "w-1";
	kf_strbuf_reset(&sb);
	assert_int_equal(kf_msg_encode(&req, &sb), KF_OK);
	assert_int_equal(kf_msg_decode(sb.buf, sb.len, &d, NULL), KF_OK);
	assert_null(d->complete_req.result);
	assert_string_equal(d->complete_req.error, "corpus 'x' not found");
	assert_false(d->complete_req.expired);
	kf_msg_free(d);
	/* Stopped at the deadline: failed, expired, with the best so far. */
	c.has_result = true;
	c.expired = true;
	kf__completion_to_req(&c, &res, &req);
	req.sender = "w-1";
	kf_strbuf_reset(&sb);
	assert_int_equal(kf_msg_encode(&req, &sb), KF_OK);
	assert_int_equal(kf_msg_decode(sb.buf, sb.len, &d, NULL), KF_OK);
	assert_int_equal(d->complete_req.outcome, KF_JOB_FAILED);
	assert_true(d->complete_req.expired);
	assert_false(d->complete_req.released);
	assert_non_null(d->complete_req.result);
	kf_msg_free(d);
	kf_strbuf_release(&sb);
}

/* ---- corpora and jobs ------------------------------------------------------------- */

static char g_tmp[64];
static char g_tiny[128];

static void touch(const char *dir, const char *name)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("x", f);
	fclose(f);
}

static int setup_files(void **state)
{
	static const char text[] =
		"the quick brown fox jumps over the lazy dog; a wizard's job is to vex chumps "
		"quickly in fog. pack my box with five dozen liquor jugs, then sphinx of black "
		"quartz, judge my vow. how vexingly quick daft zebras jump!\n";
	struct kf_corpus *c = NULL;

	(void)state;
	snprintf(g_tmp, sizeof g_tmp, "/tmp/kf-worker-unit-XXXXXX");
	if (!mkdtemp(g_tmp))
		return -1;
	snprintf(g_tiny, sizeof g_tiny, "%s/tiny.kfc", g_tmp);
	if (kf_corpus_build_mem(text, sizeof text - 1, "tiny", &c, NULL) ||
	    kf_corpus_save(c, g_tiny, NULL))
		return -1;
	kf_corpus_free(c);
	return 0;
}

static int teardown_files(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_corpus_resolve(void **state)
{
	static const struct {
		const char *name;
		enum kf_err err;
		const char *file; /* expected, relative to the folder; NULL: none */
	} cases[] = {
		{ "a", KF_OK, "d1/a.kfc" },
		{ "b", KF_OK, "d2/b.json" },
		{ "c", KF_OK, "d1/c" },
		{ "default", KF_OK, "d2/b.json" },
		{ "missing", KF_ENOENT, NULL },
		{ "", KF_EINVAL, NULL },
		{ "d9/nothing.kfc", KF_ENOENT, NULL },
	};
	char d1[96], d2[96], dirs[200], def[128];

	(void)state;
	snprintf(d1, sizeof d1, "%s/d1", g_tmp);
	snprintf(d2, sizeof d2, "%s/d2", g_tmp);
	assert_int_equal(mkdir(d1, 0755), 0);
	assert_int_equal(mkdir(d2, 0755), 0);
	touch(d1, "a.kfc");
	touch(d1, "c");
	touch(d2, "b.json");
	touch(d2, "a.kfc"); /* shadowed by d1's */
	snprintf(dirs, sizeof dirs, "%s:%s", d1, d2);
	snprintf(def, sizeof def, "%s/b.json", d2);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct kf_strbuf path = KF_STRBUF_INIT, why = KF_STRBUF_INIT;
		char want[256];

		assert_int_equal(kf__corpus_resolve(cases[i].name, dirs, def, &path, &why),
				 cases[i].err);
		if (cases[i].file) {
			snprintf(want, sizeof want, "%s/%s", g_tmp, cases[i].file);
			assert_string_equal(path.buf, want);
		} else {
			assert_int_equal(path.len, 0);
			assert_true(why.len > 0);
		}
		kf_strbuf_release(&path);
		kf_strbuf_release(&why);
	}
	/* An absolute path is taken as it is. */
	{
		struct kf_strbuf path = KF_STRBUF_INIT, why = KF_STRBUF_INIT;

		assert_int_equal(kf__corpus_resolve(g_tiny, NULL, NULL, &path, &why), KF_OK);
		assert_string_equal(path.buf, g_tiny);
		kf_strbuf_release(&path);
		assert_int_equal(kf__corpus_resolve("default", NULL, NULL, &path, &why), KF_ENOENT);
		kf_strbuf_release(&path);
		kf_strbuf_release(&why);
	}
}

static void test_job_params(void **state)
{
	struct kf_msg_named_value w[] = { { "sfb", 5 }, { "trigrams", 0 } };
	struct kf_msg_named_value bad[] = { { "nonsense", 1 } };
	struct kf_msg_job_params p = { .corpus = "x", .weights = w, .n_weights = 2, .seed = 1 };
	struct kf_layout l1, l2, qwerty, colemak;
	struct kf_strbuf why = KF_STRBUF_INIT;
	struct kf_weights wt;

	(void)state;
	assert_int_equal(kf__job_weights(&p, &wt, &why), KF_OK);
	assert_true(wt.sfb == 5);
	assert_int_equal(wt.trigrams, 0);
	p.weights = bad;
	p.n_weights = 1;
	assert_int_equal(kf__job_weights(&p, &wt, &why), KF_EWEIGHTS);
	assert_true(why.len > 0);
	kf_strbuf_release(&why);

	kf_layout_named("qwerty", &qwerty);
	kf_layout_named("colemak", &colemak);
	p.start_layout = "colemak";
	assert_int_equal(kf__job_start_layout(&p, &l1, NULL), KF_OK);
	assert_string_equal(l1.keys, colemak.keys);
	p.start_layout = "qwertz";
	assert_int_equal(kf__job_start_layout(&p, &l1, NULL), KF_ELAYOUT_LEN);
	/* No start layout: QWERTY's keys shuffled by the seed, pins in place. */
	p.start_layout = NULL;
	p.pinned = ",./";
	assert_int_equal(kf__job_start_layout(&p, &l1, NULL), KF_OK);
	assert_int_equal(kf__job_start_layout(&p, &l2, NULL), KF_OK);
	assert_string_equal(l1.keys, l2.keys);
	assert_true(kf_layout_same_set(&l1, &qwerty));
	assert_string_not_equal(l1.keys, qwerty.keys);
	for (const char *c = ",./"; *c; c++)
		assert_int_equal(kf_layout_find(&l1, *c), kf_layout_find(&qwerty, *c));
	p.seed = 2;
	assert_int_equal(kf__job_start_layout(&p, &l2, NULL), KF_OK);
	assert_string_not_equal(l1.keys, l2.keys);
}

static void test_job_run(void **state)
{
	struct kf__engine_opts eo = { .corpus_dirs = g_tmp, .default_corpus = NULL };
	struct kf_msg_job_params p = { .corpus = "tiny", .start_layout = "qwerty", .steps = 0,
		.seed = 3, .restarts = 1 };
	struct kf_strbuf why = KF_STRBUF_INIT;
	struct kf__completion *c = calloc(1, sizeof(*c));
	struct kf__job_ctl ctl = { 0 };
	atomic_bool cancel = true;
	struct kf__engine *e;
	uint64_t loads, builds;
	double start_cost;

	(void)state;
	assert_non_null(c);
	assert_int_equal(kf__engine_new(&eo, &e), KF_OK);
	/* zero steps: the start layout, scored, with its statistics */
	assert_int_equal(kf__job_run(e, &p, &ctl, c, &why), KF_OK);
	assert_true(c->has_result);
	assert_string_equal(c->layout, "qwertyuiopasdfghjkl;zxcvbnm,./");
	assert_int_equal(c->steps, 0);
	assert_true(c->n_stats >= 13);
	assert_string_equal(c->stats[0].name, "sfb");
	assert_true(c->cost > 0);
	start_cost = c->cost;
	/* a real search: no worse than the start */
	p.steps = 3000;
	assert_int_equal(kf__job_run(e, &p, &ctl, c, &why), KF_OK);
	assert_int_equal(c->steps, 3000);
	assert_true(c->cost <= start_cost);
	assert_true(c->steps_per_sec > 0);
	/* cancelled before it starts: the start layout, KF_ECANCELED */
	ctl.cancel = &cancel;
	assert_int_equal(kf__job_run(e, &p, &ctl, c, &why), KF_ECANCELED);
	assert_true(c->has_result);
	assert_string_equal(c->layout, "qwertyuiopasdfghjkl;zxcvbnm,./");
	assert_int_equal(c->steps, 0);
	ctl.cancel = NULL;
	/* one corpus load, one scorer for all of them */
	kf__engine_counts(e, &loads, &builds);
	assert_int_equal(loads, 1);
	assert_int_equal(builds, 1);
	/* other weights: another scorer; the same corpus */
	struct kf_msg_named_value w[] = { { "sfb", 3 } };

	p.weights = w;
	p.n_weights = 1;
	assert_int_equal(kf__job_run(e, &p, &ctl, c, &why), KF_OK);
	kf__engine_counts(e, &loads, &builds);
	assert_int_equal(loads, 1);
	assert_int_equal(builds, 2);
	/* failures: no result, one line why */
	p.pinned = "\xC3\xA9";
	kf_strbuf_reset(&why);
	assert_int_equal(kf__job_run(e, &p, &ctl, c, &why), KF_EINVAL);
	assert_false(c->has_result);
	assert_true(why.len > 0);
	p.pinned = NULL;
	p.corpus = "nowhere";
	kf_strbuf_reset(&why);
	assert_int_equal(kf__job_run(e, &p, &ctl, c, &why), KF_ENOENT);
	assert_false(c->has_result);
	assert_non_null(strstr(why.buf, "nowhere"));
	kf_strbuf_release(&why);
	kf__engine_free(e);
	free(c);
}

/* ---- jobs at once, each with its own scorer ---------------------------------- */

/* More than the KF__SCORERS_KEPT that the cache keeps: a worker of that
 * many slots runs them all at once, with different weights. */
#define AT_ONCE (KF__SCORERS_KEPT + 2)

struct at_once_job {
	struct kf__engine *e;
	unsigned index;
	bool met;                 /* reached the meeting point */
	enum kf_err err;
};

static atomic_uint g_at_once_met;

/* Progress of a running job, which holds its scorer: the first call waits
 * until every job runs (10 s at most, so that a job that never starts
 * fails the test rather than hanging it). */
static void at_once_meet(void *ctx, const struct kf_anneal_progress *progress)
{
	struct at_once_job *j = ctx;
	uint64_t end = kf_clock_mono_ns() + 10000 * KF_NS_PER_MS;

	(void)progress;
	if (j->met)
		return;
	j->met = true;
	atomic_fetch_add(&g_at_once_met, 1);
	while (atomic_load(&g_at_once_met) < AT_ONCE && kf_clock_mono_ns() < end)
		nanosleep(&(struct timespec){ 0, 1000000L }, NULL);
}

static void *at_once_run(void *arg)
{
	struct at_once_job *j = arg;
	struct kf_msg_named_value w[] = { { "sfb", 1.0 + j->index } };
	struct kf_msg_job_params p = { .corpus = "tiny", .start_layout = "qwerty", .steps = 2000,
		.seed = j->index, .restarts = 1, .weights = w, .n_weights = 1 };
	struct kf__job_ctl ctl = { .progress = at_once_meet, .progress_ctx = j,
		.progress_interval = 100 };
	struct kf_strbuf why = KF_STRBUF_INIT;
	struct kf__completion *c = calloc(1, sizeof(*c));

	j->err = c ? kf__job_run(j->e, &p, &ctl, c, &why) : KF_ENOMEM;
	kf_strbuf_release(&why);
	free(c);
	return NULL;
}

static void test_jobs_at_once_past_kept_scorers(void **state)
{
	struct kf__engine_opts eo = { .corpus_dirs = g_tmp, .max_running = AT_ONCE };
	struct at_once_job jobs[AT_ONCE];
	pthread_t threads[AT_ONCE];
	uint64_t loads, builds;
	struct kf__engine *e;

	(void)state;
	assert_int_equal(kf__engine_new(&eo, &e), KF_OK);
	atomic_store(&g_at_once_met, 0);
	for (unsigned i = 0; i < AT_ONCE; i++) {
		jobs[i] = (struct at_once_job){ .e = e, .index = i };
		assert_int_equal(pthread_create(&threads[i], NULL, at_once_run, &jobs[i]), 0);
	}
	for (unsigned i = 0; i < AT_ONCE; i++)
		assert_int_equal(pthread_join(threads[i], NULL), 0);
	/* All ran together, each on a scorer of its own. */
	assert_int_equal(atomic_load(&g_at_once_met), AT_ONCE);
	for (unsigned i = 0; i < AT_ONCE; i++)
		assert_int_equal(jobs[i].err, KF_OK);
	kf__engine_counts(e, &loads, &builds);
	assert_int_equal(loads, 1);
	assert_int_equal(builds, AT_ONCE);
	kf__engine_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_defaults),
		cmocka_unit_test(test_config_flags_over_env),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_gate_may_ask),
		cmocka_unit_test(test_gate_predict_ns),
		cmocka_unit_test(test_gate_counts),
		cmocka_unit_test(test_gate_wait_ends_on_wake),
		cmocka_unit_test(test_gate_horizon_bounds_the_wait),
		cmocka_unit_test(test_gate_wakes_as_many_as_may_go),
		cmocka_unit_test(test_gate_nap_ends_when_jobs_are_queued),
		cmocka_unit_test(test_stop_merge),
		cmocka_unit_test(test_stop_settle),
		cmocka_unit_test(test_early_cancels),
		cmocka_unit_test(test_host_cpu_parse),
		cmocka_unit_test(test_loads),
		cmocka_unit_test(test_load_sample),
		cmocka_unit_test(test_load_sample_soon_after),
		cmocka_unit_test(test_token_parse),
		cmocka_unit_test(test_utf8_sanitize),
		cmocka_unit_test(test_log_record_to_msg),
		cmocka_unit_test(test_publisher_bundles),
		cmocka_unit_test(test_publisher_tick_now_not_gathered),
		cmocka_unit_test(test_complete_verdict),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_completion_round_trip),
		cmocka_unit_test(test_corpus_resolve),
		cmocka_unit_test(test_job_params),
		cmocka_unit_test(test_job_run),
		cmocka_unit_test(test_jobs_at_once_past_kept_scorers),
	};

	return cmocka_run_group_tests(tests, setup_files, teardown_files);
}
