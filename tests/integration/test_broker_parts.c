/*
 * test_broker_parts.c — the broker's pure parts, without sockets or a
 * database: job JSON, the recent-replies cache, worker liveness, the relay's
 * gap and token-bucket arithmetic, flags and environment, the token file.
 * (Kept beside test_broker.c because they belong to the broker; suite
 * 'unit' because they need nothing running.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/auth.h"
#include "broker/broker_int.h"
#include "broker/config.h"
#include "broker/jobjson.h"
#include "broker/replies.h"
#include "broker/telemetry_relay.h"
#include "broker/workers.h"

#define S (1000000000ull)

/* ---- jobjson ------------------------------------------------------------------ */

static void test_params_round_trip(void **state)
{
	static const struct kf_msg_named_value w[] = { { "sfb", 2.5 }, { "lsb", -0.125 } };
	struct kf_msg_job_params in = { .corpus = "corpora/shai \"x\"\n.json",
		.board = KF_MSG_BOARD_ORTHO, .start_layout = "qwertyuiopasdfghjkl;zxcvbnm,./",
		.steps = 1000000, .seed = UINT64_MAX, .start_temp = 0.1, .restarts = 3,
		.pinned = "aé", .weights = w, .n_weights = 2, .deadline_ms = 60000,
		.max_attempts = 4, .priority = -7 };
	struct kf_strbuf sb = KF_STRBUF_INIT;
	struct kf_jarena a = KF_JARENA_INIT;
	struct kf_msg_job_params out;

	(void)state;
	assert_int_equal(kf_jobjson_params(&in, &sb), KF_OK);
	assert_int_equal(kf_jobjson_parse_params(sb.buf, &a, &out), KF_OK);
	assert_string_equal(out.corpus, in.corpus);
	assert_int_equal(out.board, KF_MSG_BOARD_ORTHO);
	assert_string_equal(out.start_layout, in.start_layout);
	assert_int_equal(out.steps, 1000000);
	assert_true(out.seed == UINT64_MAX);
	assert_true(out.start_temp == 0.1);
	assert_int_equal(out.restarts, 3);
	assert_string_equal(out.pinned, "aé");
	assert_int_equal(out.n_weights, 2);
	assert_string_equal(out.weights[1].name, "lsb");
	assert_true(out.weights[1].value == -0.125);
	assert_int_equal(out.deadline_ms, 60000);
	assert_int_equal(out.max_attempts, 4);
	assert_int_equal(out.priority, -7);
	kf_strbuf_release(&sb);
	kf_jarena_release(&a);
}

/* What PostgreSQL's jsonb gives back: keys reordered, spaces, numbers
 * rewritten, unknown keys, escapes. */
static void test_params_from_jsonb(void **state)
{
	const char *text = "{\"seed\": 18446744073709551615, \"board\": \"ansi\", \"steps\": 1e3, "
		"\"corpus\": \"\\u00e9t\\u00e9 \\ud83d\\ude00\", \"future\": [1, {\"x\": null}], "
		"\"weights\": {\"sfb\": 1.0, \"sfb\": 3}, \"priority\": 2147483648, "
		"\"start_temp\": null, \"pinned\": null}";
	struct kf_jarena a = KF_JARENA_INIT;
	struct kf_msg_job_params p;

	(void)state;
	assert_int_equal(kf_jobjson_parse_params(text, &a, &p), KF_OK);
	assert_true(p.seed == UINT64_MAX);
	assert_int_equal(p.steps, 1000);
	assert_string_equal(p.corpus, "\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80");
	assert_int_equal(p.n_weights, 2);
	assert_true(p.weights[1].value == 3);
	assert_int_equal(p.priority, INT32_MAX);
	assert_true(p.start_temp == 0);
	assert_null(p.pinned);
	assert_null(p.start_layout);
	kf_jarena_release(&a);
}

static void test_json_malformed(void **state)
{
	static const char *const bad[] = {
		"", "[]", "{", "{\"a\":}", "{\"a\" 1}", "{\"a\":1,}", "{\"a\":\"x}", "{} x",
		"{\"a\":tru}", "{\"a\":\"\\u12\"}", "nul",
		"{\"a\":[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}", /* deeper than 16 */
	};
	struct kf_jarena a = KF_JARENA_INIT;
	struct kf_msg_job_params p;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(kf_jobjson_parse_params(bad[i], &a, &p), KF_EMALFORMED);
		assert_string_equal(p.corpus, "");
	}
	assert_int_equal(kf_jobjson_parse_params(NULL, &a, &p), KF_EMALFORMED);
	/* \u0000 never reaches a proto string. */
	assert_int_equal(kf_jobjson_parse_params("{\"corpus\":\"a\\u0000b\"}", &a, &p), KF_OK);
	assert_string_equal(p.corpus, "a?b");
	kf_jarena_release(&a);
}

static void test_result_round_trip(void **state)
{
	static const struct kf_msg_named_value st[] = { { "sfb", 1.5 }, { "home_row", 61.25 } };
	struct kf_msg_job_result in = { .layout = "abcdefghijklmnopqrstuvwxyz;,./", .cost = 123.456,
		.stats = st, .n_stats = 2, .finger_usage = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10.5 },
		.steps = 5000, .steps_per_sec = 2.5e6, .elapsed_ms = 2 };
	struct kf_strbuf sb = KF_STRBUF_INIT;
	struct kf_jarena a = KF_JARENA_INIT;
	struct kf_msg_job_result out;

	(void)state;
	assert_int_equal(kf_jobjson_result(&in, &sb), KF_OK);
	assert_non_null(strstr(sb.buf, "\"score\":123.456"));
	assert_int_equal(kf_jobjson_parse_result(sb.buf, &a, &out), KF_OK);
	assert_string_equal(out.layout, in.layout);
	assert_true(out.cost == 123.456);
	assert_int_equal(out.n_stats, 2);
	assert_string_equal(out.stats[1].name, "home_row");
	assert_true(out.finger_usage[9] == 10.5);
	assert_int_equal(out.steps, 5000);
	assert_true(out.steps_per_sec == 2.5e6);
	assert_int_equal(out.elapsed_ms, 2);
	kf_strbuf_release(&sb);
	kf_jarena_release(&a);
}

/* ---- replies ------------------------------------------------------------------- */

static void test_replies(void **state)
{
	struct kf_replies r;
	struct kf_reply_entry *e;
	int call;

	(void)state;
	assert_int_equal(kf_replies_init(&r, 3, 1000), KF_OK);
	e = kf_replies_add(&r, 1, 1, 40, &call);
	assert_ptr_equal(kf_replies_find(&r, 1, 1, 40), e);
	assert_ptr_equal(e->inflight, &call);
	assert_null(kf_replies_find(&r, 1, 1, 46));   /* another type: a miss */
	assert_null(kf_replies_find(&r, 1, 2, 40));
	kf_replies_finish(&r, e, "abc", 3, true);
	e = kf_replies_find(&r, 1, 1, 40);
	assert_non_null(e);
	assert_null(e->inflight);
	assert_memory_equal(e->bytes, "abc", 3);
	/* Not kept: forgotten. */
	e = kf_replies_add(&r, 1, 2, 40, &call);
	kf_replies_finish(&r, e, "x", 1, false);
	assert_null(kf_replies_find(&r, 1, 2, 40));
	/* Over the entry limit the oldest finished goes; in-flight ones stay. */
	e = kf_replies_add(&r, 2, 1, 40, &call);          /* in flight */
	kf_replies_finish(&r, kf_replies_add(&r, 2, 2, 40, &call), "y", 1, true);
	kf_replies_finish(&r, kf_replies_add(&r, 2, 3, 40, &call), "z", 1, true);
	assert_null(kf_replies_find(&r, 1, 1, 40));
	assert_non_null(kf_replies_find(&r, 2, 1, 40));
	assert_int_equal(r.n, 3);
	/* Over the byte limit. */
	{
		char big[900] = { 0 };

		kf_replies_finish(&r, e, big, sizeof big, true);
		kf_replies_finish(&r, kf_replies_add(&r, 3, 1, 40, &call), big, 200, true);
		assert_true(r.bytes <= 1000);
	}
	kf_replies_release(&r);
}

/* ---- workers ---------------------------------------------------------------------- */

struct changes {
	int stale, dead;
};

static void count_change(void *arg, struct kf_worker *w, enum kf_worker_liveness from,
	enum kf_worker_liveness to)
{
	struct changes *c = arg;

	(void)w;
	(void)from;
	if (to == KF_WORKER_STALE)
		c->stale++;
	if (to == KF_WORKER_DEAD)
		c->dead++;
}

static void test_workers_liveness(void **state)
{
	struct kf_msg_heartbeat hb = { .worker_id = "w1", .host = "h", .pid = 9, .incarnation = 7,
		.state = KF_WORKER_BUSY, .slots_total = 2, .slots_busy = 1, .job_id = 42 };
	struct kf_workers *ws;
	struct kf_worker *w;
	struct changes ch = { 0 };
	enum kf_worker_event ev;
	struct kf_msg_worker_status st[2];
	uint64_t old, t0 = 1000 * S;

	(void)state;
	assert_int_equal(kf_workers_new(&ws), KF_OK);
	assert_int_equal(kf_workers_heartbeat(ws, &hb, t0, &w, &ev, &old), KF_OK);
	assert_int_equal(ev, KF_WORKER_EV_JOINED);
	assert_int_equal(kf_workers_heartbeat(ws, &hb, t0, &w, &ev, &old), KF_OK);
	assert_int_equal(ev, KF_WORKER_EV_NONE);
	kf_workers_sweep(ws, t0 + 3 * S - 1, count_change, &ch);
	assert_int_equal(w->liveness, KF_WORKER_ALIVE);
	kf_workers_sweep(ws, t0 + 3 * S, count_change, &ch);
	assert_int_equal(w->liveness, KF_WORKER_STALE);
	assert_int_equal(ch.stale, 1);
	assert_int_equal(kf_workers_status(ws, t0 + 3 * S, st, 2), 1);
	assert_int_equal(st[0].last_heartbeat_age_ms, 3000);
	assert_int_equal(st[0].job_id, 42);
	kf_workers_sweep(ws, t0 + 10 * S, count_change, &ch);
	assert_int_equal(w->liveness, KF_WORKER_DEAD);
	assert_true(w->requeue_pending);
	assert_int_equal(ch.dead, 1);
	kf_workers_sweep(ws, t0 + 11 * S, count_change, &ch);
	assert_int_equal(ch.dead, 1);    /* once */
	/* Back before its jobs were requeued: they stay its own. */
	assert_int_equal(kf_workers_heartbeat(ws, &hb, t0 + 12 * S, &w, &ev, &old), KF_OK);
	assert_int_equal(ev, KF_WORKER_EV_REJOINED);
	assert_false(w->requeue_pending);
	/* Another incarnation while this one is alive: a second process with
	 * the same id, refused; the record stays the live one's. */
	hb.incarnation = 8;
	hb.pid = 10;
	assert_int_equal(kf_workers_heartbeat(ws, &hb, t0 + 13 * S, &w, &ev, &old), KF_EBUSY);
	assert_int_equal(w->incarnation, 7);
	assert_int_equal(w->pid, 9);
	assert_int_equal(w->last_seen_ns, t0 + 12 * S);
	assert_int_equal(kf_workers_hello(ws, &(struct kf_msg_hello_req){ .worker_id = "w1",
		.host = "h", .pid = 10, .slots = 1, .incarnation = 8 }, t0 + 15 * S - 1, &w, &ev,
		&old), KF_EBUSY);
	assert_int_equal(w->incarnation, 7);
	/* Silent for three intervals: the other incarnation is a restart. */
	assert_int_equal(kf_workers_heartbeat(ws, &hb, t0 + 15 * S, &w, &ev, &old), KF_OK);
	assert_int_equal(ev, KF_WORKER_EV_RESTARTED);
	assert_int_equal(old, 7);
	assert_int_equal(w->pid, 10);
	/* Dead and requeued: forgotten ten minutes later — or ten minutes after
	 * the last lease the silent-worker fence refused it, if later. */
	kf_workers_sweep(ws, t0 + 25 * S, count_change, &ch);
	w->requeue_pending = false;
	w->lease_refused_ns = t0 + 100 * S;
	kf_workers_sweep(ws, t0 + 25 * S + 600 * S, NULL, NULL);
	assert_int_equal(kf_workers_count(ws), 1);
	w->lease_refused_ns = 0;
	kf_workers_sweep(ws, t0 + 25 * S + 600 * S - 1, NULL, NULL);
	assert_int_equal(kf_workers_count(ws), 1);
	kf_workers_sweep(ws, t0 + 25 * S + 600 * S, NULL, NULL);
	assert_int_equal(kf_workers_count(ws), 0);
	assert_null(kf_workers_find(ws, "w1"));
	hb.worker_id = "";
	assert_int_equal(kf_workers_heartbeat(ws, &hb, t0, &w, &ev, &old), KF_EINVAL);
	kf_workers_free(ws);
}

/* When a worker counts as heard (given jobs): a hello proves its rpc path
 * only, so a new process, or one back after a silence, is heard from its
 * next heartbeat on; a hello of a heard, live process changes nothing. */
static void test_workers_heard(void **state)
{
	struct kf_msg_heartbeat hb = { .worker_id = "w1", .host = "h", .pid = 9, .incarnation = 7 };
	struct kf_msg_hello_req hello = { .worker_id = "w1", .host = "h", .pid = 9, .slots = 1,
		.incarnation = 7 };
	struct kf_workers *ws;
	struct kf_worker *w;
	enum kf_worker_event ev;
	uint64_t old, t0 = 1000 * S;

	(void)state;
	assert_int_equal(kf_workers_new(&ws), KF_OK);
	assert_int_equal(kf_workers_hello(ws, &hello, t0, &w, &ev, &old), KF_OK);
	assert_int_equal(ev, KF_WORKER_EV_JOINED);
	assert_false(w->heard);
	assert_int_equal(kf_workers_heartbeat(ws, &hb, t0 + S, &w, &ev, &old), KF_OK);
	assert_true(w->heard);
	assert_int_equal(kf_workers_hello(ws, &hello, t0 + 2 * S, &w, &ev, &old), KF_OK);
	assert_int_equal(ev, KF_WORKER_EV_NONE);   /* a new rpc connection, same process */
	assert_true(w->heard);
	/* Dead, then a hello: not heard until a heartbeat comes again. */
	kf_workers_sweep(ws, t0 + 20 * S, NULL, NULL);
	assert_int_equal(w->liveness, KF_WORKER_DEAD);
	assert_int_equal(kf_workers_hello(ws, &hello, t0 + 21 * S, &w, &ev, &old), KF_OK);
	assert_int_equal(ev, KF_WORKER_EV_REJOINED);
	assert_false(w->heard);
	assert_int_equal(kf_workers_heartbeat(ws, &hb, t0 + 22 * S, &w, &ev, &old), KF_OK);
	assert_true(w->heard);
	/* A restart (another incarnation after three silent intervals). */
	hello.incarnation = 8;
	assert_int_equal(kf_workers_hello(ws, &hello, t0 + 25 * S, &w, &ev, &old), KF_OK);
	assert_int_equal(ev, KF_WORKER_EV_RESTARTED);
	assert_false(w->heard);
	/* A heartbeat first (a broker that just started): heard, and the
	 * hello after it keeps it so. */
	assert_int_equal(kf_workers_heartbeat(ws, &(struct kf_msg_heartbeat){ .worker_id = "w2",
		.host = "h", .pid = 3, .incarnation = 5 }, t0, &w, &ev, &old), KF_OK);
	assert_true(w->heard);
	assert_int_equal(kf_workers_hello(ws, &(struct kf_msg_hello_req){ .worker_id = "w2",
		.host = "h", .pid = 3, .slots = 1, .incarnation = 5 }, t0, &w, &ev, &old), KF_OK);
	assert_true(w->heard);
	kf_workers_free(ws);
}

/* The broker stalled (SIGSTOP) for 11 s of a worker's 12 s of silence: only
 * one second counts, and the worker stays alive; forgiving never moves a
 * heartbeat into the future. */
static void test_workers_forgive(void **state)
{
	struct kf_msg_heartbeat hb = { .worker_id = "w1", .host = "h", .pid = 9, .incarnation = 7,
		.state = KF_WORKER_IDLE, .slots_total = 1 };
	struct kf_workers *ws;
	struct kf_worker *w;
	struct changes ch = { 0 };
	enum kf_worker_event ev;
	uint64_t old, t0 = 1000 * S;

	(void)state;
	assert_int_equal(kf_workers_new(&ws), KF_OK);
	assert_int_equal(kf_workers_heartbeat(ws, &hb, t0, &w, &ev, &old), KF_OK);
	kf_workers_forgive(ws, 11 * S, t0 + 12 * S);
	assert_int_equal(w->last_seen_ns, t0 + 11 * S);
	kf_workers_sweep(ws, t0 + 12 * S, count_change, &ch);
	assert_int_equal(w->liveness, KF_WORKER_ALIVE);
	assert_int_equal(ch.stale + ch.dead, 0);
	/* Silent for real afterwards: dead 10 s after the forgiven heartbeat. */
	kf_workers_sweep(ws, t0 + 21 * S - 1, count_change, &ch);
	assert_int_equal(w->liveness, KF_WORKER_STALE);
	kf_workers_sweep(ws, t0 + 21 * S, count_change, &ch);
	assert_int_equal(w->liveness, KF_WORKER_DEAD);
	/* A pause longer than the silence: heard from now, not later. */
	assert_int_equal(kf_workers_heartbeat(ws, &hb, t0 + 30 * S, &w, &ev, &old), KF_OK);
	kf_workers_forgive(ws, 50 * S, t0 + 32 * S);
	assert_int_equal(w->last_seen_ns, t0 + 32 * S);
	kf_workers_free(ws);
}

/* What a heartbeat says a worker holds decides whether a running attempt is
 * a lease that never arrived: only for the registered process, only from a
 * fresh list, never for an attempt listed (job and token both). */
static void test_workers_lease_lost(void **state)
{
	struct kf_msg_held_job held[2] = { { 5, 50 }, { 6, 60 } };
	struct kf_msg_heartbeat hb = { .worker_id = "w1", .host = "h", .pid = 9, .incarnation = 7,
		.state = KF_WORKER_BUSY, .slots_total = 2, .slots_busy = 2, .job_id = 5 };
	struct kf_workers *ws;
	struct kf_worker *w;
	enum kf_worker_event ev;
	uint64_t old, t0 = 1000 * S;

	(void)state;
	assert_int_equal(kf_workers_new(&ws), KF_OK);
	assert_false(kf_workers_lease_lost(NULL, 7, 8, 80, t0));
	assert_int_equal(kf_workers_heartbeat(ws, &hb, t0, &w, &ev, &old), KF_OK);
	assert_false(kf_workers_lease_lost(w, 7, 8, 80, t0)); /* a 1.1 heartbeat: no list */
	hb.held_listed = true;
	hb.held = held;
	hb.n_held = 2;
	assert_int_equal(kf_workers_heartbeat(ws, &hb, t0, &w, &ev, &old), KF_OK);
	assert_false(kf_workers_lease_lost(w, 7, 5, 50, t0));  /* held */
	assert_false(kf_workers_lease_lost(w, 7, 6, 60, t0));
	assert_true(kf_workers_lease_lost(w, 7, 8, 80, t0));   /* not held */
	assert_true(kf_workers_lease_lost(w, 7, 5, 51, t0));   /* another attempt of job 5 */
	assert_false(kf_workers_lease_lost(w, 8, 8, 80, t0));  /* claimed by another process */
	assert_false(kf_workers_lease_lost(w, 0, 8, 80, t0));  /* by an unknown one */
	assert_false(kf_workers_lease_lost(w, 7, 8, 80, t0 + 3 * S)); /* the list is stale */
	hb.n_held = 0;                                         /* listed: holds nothing */
	assert_int_equal(kf_workers_heartbeat(ws, &hb, t0 + S, &w, &ev, &old), KF_OK);
	assert_true(kf_workers_lease_lost(w, 7, 5, 50, t0 + S));
	hb.held_listed = false;                                /* too many to list */
	assert_int_equal(kf_workers_heartbeat(ws, &hb, t0 + 2 * S, &w, &ev, &old), KF_OK);
	assert_false(kf_workers_lease_lost(w, 7, 5, 50, t0 + 2 * S));
	kf_workers_free(ws);
}

/* ---- relay arithmetic --------------------------------------------------------------- */

static void test_relay_gap(void **state)
{
	(void)state;
	/* first message of a type, restart, in order */
	assert_int_equal(kf_relay_gap(0, 0, 5), 0);
	assert_int_equal(kf_relay_gap(7, 7, 3), 0);
	assert_int_equal(kf_relay_gap(4, 4, 5), 0);
	/* one series per type: 3 and 4 lost */
	assert_int_equal(kf_relay_gap(2, 100, 5), 2);
	/* one series for all types: hb 5, log 6, hb 7 is no gap */
	assert_int_equal(kf_relay_gap(5, 6, 7), 0);
	/* ... but hb 5, log 6, [7 lost], hb 8 is one */
	assert_int_equal(kf_relay_gap(5, 6, 8), 1);
	/* per type with another type numbered lower */
	assert_int_equal(kf_relay_gap(5, 3, 7), 1);
}

static void test_relay_bucket(void **state)
{
	double tokens = 0;
	uint64_t last = 0, t = 5 * S;
	int passed = 0;

	(void)state;
	for (int i = 0; i < 20; i++)
		passed += kf_relay_bucket_take(&tokens, &last, t, 10, 5);
	assert_int_equal(passed, 5);              /* the burst */
	assert_false(kf_relay_bucket_take(&tokens, &last, t + S / 20, 10, 5)); /* half a token */
	assert_true(kf_relay_bucket_take(&tokens, &last, t + S / 10, 10, 5));  /* one more */
	assert_false(kf_relay_bucket_take(&tokens, &last, t + S / 10, 10, 5));
	passed = 0;
	for (int i = 0; i < 20; i++)
		passed += kf_relay_bucket_take(&tokens, &last, t + 100 * S, 10, 5);
	assert_int_equal(passed, 5);              /* refills to the burst, no more */
}

/* ---- config ------------------------------------------------------------------------- */

static void test_config(void **state)
{
	char *argv1[] = { "kb", "--rpc", "tcp://127.0.0.1:9", "--ingest-rate", "7",
		"--token-file", "/tmp/t", "--worker-auth", NULL };
	char *argv2[] = { "kb", "--ingest-rate", "0", NULL };
	char *argv3[] = { "kb", "--bogus", NULL };
	char *argv4[] = { "kb", "--rpc", "ws://127.0.0.1:1", NULL };
	char *argv5[] = { "kb", "--help", NULL };
	struct kf_strbuf msg = KF_STRBUF_INIT;
	enum kf_broker_config_action act;
	struct kf_broker_config cfg;

	(void)state;
	setenv("KEYFORGE_RPC", "tcp://127.0.0.1:8", 1);
	setenv("KEYFORGE_EVENTS", "tcp://127.0.0.1:7", 1);
	setenv("KEYFORGE_DB", "host=/x", 1);
	setenv("KEYFORGE_INGEST_RATE", "3", 1);
	assert_int_equal(kf_broker_config_parse(&cfg, 8, argv1, &act, &msg), KF_OK);
	assert_int_equal(act, KF_BROKER_RUN);
	assert_string_equal(kf_bus_addrs_get(&cfg.addrs, KF_BUS_RPC), "tcp://127.0.0.1:9");
	assert_string_equal(kf_bus_addrs_get(&cfg.addrs, KF_BUS_EVENTS), "tcp://127.0.0.1:7");
	assert_string_equal(kf_bus_addrs_get(&cfg.addrs, KF_BUS_INGEST), "tcp://127.0.0.1:7400");
	assert_string_equal(cfg.conninfo, "host=/x");
	assert_int_equal(cfg.ingest_rate, 7);     /* flag over environment */
	assert_int_equal(cfg.ingest_burst, KF_BROKER_INGEST_BURST_DEFAULT);
	assert_string_equal(cfg.token_file, "/tmp/t");
	assert_true(cfg.worker_auth);
	assert_int_equal(kf_broker_config_parse(&cfg, 3, argv2, &act, &msg), KF_EINVAL);
	assert_non_null(strstr(msg.buf, "--ingest-rate"));
	kf_strbuf_reset(&msg);
	assert_int_equal(kf_broker_config_parse(&cfg, 2, argv3, &act, &msg), KF_EINVAL);
	assert_non_null(strstr(msg.buf, "--bogus"));
	kf_strbuf_reset(&msg);
	assert_int_equal(kf_broker_config_parse(&cfg, 3, argv4, &act, &msg), KF_EINVAL);
	kf_strbuf_reset(&msg);
	assert_int_equal(kf_broker_config_parse(&cfg, 2, argv5, &act, &msg), KF_OK);
	assert_int_equal(act, KF_BROKER_HELP);
	setenv("KEYFORGE_INGEST_RATE", "x", 1);
	assert_int_equal(kf_broker_config_parse(&cfg, 1, argv5, &act, &msg), KF_EINVAL);
	assert_non_null(strstr(msg.buf, "KEYFORGE_INGEST_RATE"));
	unsetenv("KEYFORGE_RPC");
	unsetenv("KEYFORGE_EVENTS");
	unsetenv("KEYFORGE_DB");
	unsetenv("KEYFORGE_INGEST_RATE");
	kf_strbuf_release(&msg);
}

/* --db-timeout and --db-slow: 0..3600000 ms (bare) or with a unit, flag
 * over environment over default; 0 turns each off (wait for ever, never
 * warn). */
static void test_config_db_durations(void **state)
{
	static const struct {
		const char *flag, *env;
		uint32_t def;
		size_t off;
	} d[] = {
		{ "--db-timeout", "KEYFORGE_DB_TIMEOUT", KF_BROKER_DB_TIMEOUT_DEFAULT,
		  offsetof(struct kf_broker_config, db_timeout_ms) },
		{ "--db-slow", "KEYFORGE_DB_SLOW", KF_BROKER_DB_SLOW_DEFAULT,
		  offsetof(struct kf_broker_config, db_slow_ms) },
	};
	struct kf_strbuf msg = KF_STRBUF_INIT;
	enum kf_broker_config_action act;
	struct kf_broker_config cfg;

	(void)state;
	for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
		char *plain[] = { "kb", NULL };
		char *flag[] = { "kb", (char *)d[i].flag, "0", NULL };
		char *bad[] = { "kb", (char *)d[i].flag, "3600001", NULL };
		const uint32_t *ms = (const uint32_t *)((const char *)&cfg + d[i].off);

		assert_int_equal(kf_broker_config_parse(&cfg, 1, plain, &act, &msg), KF_OK);
		assert_int_equal(*ms, d[i].def);
		setenv(d[i].env, "5000", 1);
		assert_int_equal(kf_broker_config_parse(&cfg, 1, plain, &act, &msg), KF_OK);
		assert_int_equal(*ms, 5000);
		setenv(d[i].env, "1.5m", 1); /* a unit, as every duration flag takes */
		assert_int_equal(kf_broker_config_parse(&cfg, 1, plain, &act, &msg), KF_OK);
		assert_int_equal(*ms, 90000);
		setenv(d[i].env, "5000", 1);
		assert_int_equal(kf_broker_config_parse(&cfg, 3, flag, &act, &msg), KF_OK);
		assert_int_equal(*ms, 0);
		kf_strbuf_reset(&msg);
		assert_int_equal(kf_broker_config_parse(&cfg, 3, bad, &act, &msg), KF_EINVAL);
		assert_non_null(strstr(msg.buf, d[i].flag));
		unsetenv(d[i].env);
	}
	kf_strbuf_release(&msg);
}

/* --thread-nice: -20..0, flag over KEYFORGE_THREAD_NICE over -5. */
static void test_config_thread_nice(void **state)
{
	static const char *const bad[] = { "5", "-21", "-", "--5", "-x", "1e3", "", "- 5" };
	char *argv[] = { "kb", "--thread-nice", NULL, NULL };
	struct kf_strbuf msg = KF_STRBUF_INIT;
	enum kf_broker_config_action act;
	struct kf_broker_config cfg;

	(void)state;
	assert_int_equal(kf_broker_config_parse(&cfg, 1, argv, &act, &msg), KF_OK);
	assert_int_equal(cfg.thread_nice, -5);
	setenv("KEYFORGE_THREAD_NICE", "-20", 1);
	assert_int_equal(kf_broker_config_parse(&cfg, 1, argv, &act, &msg), KF_OK);
	assert_int_equal(cfg.thread_nice, -20);
	argv[2] = "0";
	assert_int_equal(kf_broker_config_parse(&cfg, 3, argv, &act, &msg), KF_OK);
	assert_int_equal(cfg.thread_nice, 0);
	argv[2] = "-7";
	assert_int_equal(kf_broker_config_parse(&cfg, 3, argv, &act, &msg), KF_OK);
	assert_int_equal(cfg.thread_nice, -7);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		argv[2] = (char *)bad[i];
		kf_strbuf_reset(&msg);
		assert_int_equal(kf_broker_config_parse(&cfg, 3, argv, &act, &msg), KF_EINVAL);
		assert_non_null(strstr(msg.buf, "--thread-nice"));
		assert_non_null(strstr(msg.buf, "from -20 to 0"));
	}
	setenv("KEYFORGE_THREAD_NICE", "3", 1);
	kf_strbuf_reset(&msg);
	assert_int_equal(kf_broker_config_parse(&cfg, 1, argv, &act, &msg), KF_EINVAL);
	assert_non_null(strstr(msg.buf, "KEYFORGE_THREAD_NICE"));
	unsetenv("KEYFORGE_THREAD_NICE");
	kf_strbuf_release(&msg);
}

/* --event-bundle: 1..64, flag over KEYFORGE_EVENT_BUNDLE over 64. */
static void test_config_event_bundle(void **state)
{
	static const char *const bad[] = { "0", "65", "-1", "x", "" };
	char *argv[] = { "kb", "--event-bundle", NULL, NULL };
	struct kf_strbuf msg = KF_STRBUF_INIT;
	enum kf_broker_config_action act;
	struct kf_broker_config cfg;

	(void)state;
	assert_int_equal(kf_broker_config_parse(&cfg, 1, argv, &act, &msg), KF_OK);
	assert_int_equal(cfg.event_bundle, 64);
	setenv("KEYFORGE_EVENT_BUNDLE", "1", 1);
	assert_int_equal(kf_broker_config_parse(&cfg, 1, argv, &act, &msg), KF_OK);
	assert_int_equal(cfg.event_bundle, 1);
	argv[2] = "16";
	assert_int_equal(kf_broker_config_parse(&cfg, 3, argv, &act, &msg), KF_OK);
	assert_int_equal(cfg.event_bundle, 16);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		argv[2] = (char *)bad[i];
		kf_strbuf_reset(&msg);
		assert_int_equal(kf_broker_config_parse(&cfg, 3, argv, &act, &msg), KF_EINVAL);
		assert_non_null(strstr(msg.buf, "--event-bundle"));
	}
	setenv("KEYFORGE_EVENT_BUNDLE", "100", 1);
	kf_strbuf_reset(&msg);
	assert_int_equal(kf_broker_config_parse(&cfg, 1, argv, &act, &msg), KF_EINVAL);
	assert_non_null(strstr(msg.buf, "KEYFORGE_EVENT_BUNDLE"));
	unsetenv("KEYFORGE_EVENT_BUNDLE");
	kf_strbuf_release(&msg);
}

/* ---- counts ------------------------------------------------------------------------ */

/* Counting jobs per state: every tick while a count is cheap; with a large
 * backlog (slow counts), a hundred times as long as a count took, so that
 * it costs at most 1 % of the database connection; never less often than
 * every 30 s. One slow count alone is not a backlog. */
static void test_counts_interval(void **state)
{
	(void)state;
	/* two counts that took the same */
	assert_int_equal(kf__counts_interval_ms(0, 0), 1000);
	assert_int_equal(kf__counts_interval_ms(9, 9), 1000);
	assert_int_equal(kf__counts_interval_ms(10, 10), 1000);
	assert_int_equal(kf__counts_interval_ms(11, 11), 1100);
	assert_int_equal(kf__counts_interval_ms(40, 40), 4000);
	assert_int_equal(kf__counts_interval_ms(170, 170), 17000);
	assert_int_equal(kf__counts_interval_ms(300, 300), 30000);
	assert_int_equal(kf__counts_interval_ms(301, 301), 30000);
	assert_int_equal(kf__counts_interval_ms(UINT64_MAX / 50, UINT64_MAX), 30000); /* no overflow */
	/* the quicker of the two decides */
	assert_int_equal(kf__counts_interval_ms(300, 0), 1000);    /* the first count */
	assert_int_equal(kf__counts_interval_ms(300, 2), 1000);    /* one slow count */
	assert_int_equal(kf__counts_interval_ms(2, 300), 1000);    /* quick again */
	assert_int_equal(kf__counts_interval_ms(120, 40), 4000);   /* a backlog growing */
	assert_int_equal(kf__counts_interval_ms(40, 120), 4000);   /* ... and shrinking */
}

/* ---- auth ---------------------------------------------------------------------------- */

static void test_auth(void **state)
{
	char dir[] = "/tmp/kf-auth-XXXXXX", path[64], token[80];
	struct kf_strbuf why = KF_STRBUF_INIT;
	struct kf_bus_peer tcp = { .transport = KF_BUS_TCP };
	struct kf_bus_peer ipc = { .transport = KF_BUS_IPC, .has_cred = true, .uid = geteuid() };
	struct kf_bus_peer stranger = { .transport = KF_BUS_IPC, .has_cred = true, .uid = 12345 };
	struct kf_auth a;
	struct stat st;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/token", dir);
	assert_int_equal(kf_auth_init(&a, path, &why), KF_OK);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_non_null(f = fopen(path, "r"));
	assert_non_null(fgets(token, sizeof(token), f));
	fclose(f);
	assert_int_equal(strlen(token), 65);      /* 64 hex digits and a newline */
	token[64] = '\0';
	assert_true(kf_auth_check(&a, token, &tcp));
	assert_false(kf_auth_check(&a, NULL, &tcp));
	assert_false(kf_auth_check(&a, "", &tcp));
	token[3] ^= 1;
	assert_false(kf_auth_check(&a, token, &tcp));
	assert_true(kf_auth_check(&a, NULL, &ipc));
	if (geteuid() != 12345)
		assert_false(kf_auth_check(&a, NULL, &stranger));
	kf_auth_release(&a);
	assert_int_equal(access(path, F_OK), -1);
	/* Disabled: everyone. An unwritable path: KF_EIO naming it. */
	assert_int_equal(kf_auth_init(&a, NULL, &why), KF_OK);
	assert_true(kf_auth_check(&a, NULL, &tcp));
	kf_auth_release(&a);
	assert_int_equal(kf_auth_init(&a, "/nonexistent-dir/token", &why), KF_EIO);
	assert_non_null(strstr(why.buf, "/nonexistent-dir/token"));
	kf_strbuf_release(&why);
	rmdir(dir);
}

/* The token file of a running broker is its own: a second one given the
 * same file refuses (after the 2 s a restart may need) and leaves the token
 * alone; the file of a broker that is gone is taken over. */
static void test_auth_token_file_owned(void **state)
{
	char dir[] = "/tmp/kf-auth-XXXXXX", path[64], first[80], now[80];
	struct kf_strbuf why = KF_STRBUF_INIT;
	struct kf_auth a, b;
	struct dirent *e;
	DIR *d;
	FILE *f;
	int n = 0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/token", dir);
	assert_int_equal(kf_auth_init(&a, path, &why), KF_OK);
	assert_non_null(f = fopen(path, "r"));
	assert_non_null(fgets(first, sizeof(first), f));
	fclose(f);

	assert_int_equal(kf_auth_init(&b, path, &why), KF_EBUSY);
	assert_non_null(strstr(why.buf, "another running broker"));
	assert_non_null(strstr(why.buf, path));
	assert_non_null(f = fopen(path, "r"));
	assert_non_null(fgets(now, sizeof(now), f));
	fclose(f);
	assert_string_equal(now, first);
	first[64] = '\0';
	assert_true(kf_auth_check(&a, first, NULL));
	assert_non_null(d = opendir(dir));     /* no temporary file left behind */
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	assert_int_equal(n, 1);
	kf_auth_release(&b);                   /* of a failed init: a no-op */
	assert_int_equal(access(path, F_OK), 0);

	kf_auth_release(&a);
	assert_int_equal(access(path, F_OK), -1);

	/* A file left by a broker that is gone (SIGKILL leaves it; nobody
	 * holds its lock) is taken over. */
	assert_non_null(f = fopen(path, "w"));
	fputs("0123\n", f);
	fclose(f);
	kf_strbuf_reset(&why);
	assert_int_equal(kf_auth_init(&b, path, &why), KF_OK);
	assert_int_equal(kf_auth_init(&a, path, &why), KF_EBUSY);   /* b holds it now */
	kf_auth_release(&b);
	assert_int_equal(access(path, F_OK), -1);
	kf_strbuf_release(&why);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_params_round_trip),
		cmocka_unit_test(test_params_from_jsonb),
		cmocka_unit_test(test_json_malformed),
		cmocka_unit_test(test_result_round_trip),
		cmocka_unit_test(test_replies),
		cmocka_unit_test(test_workers_liveness),
		cmocka_unit_test(test_workers_heard),
		cmocka_unit_test(test_workers_forgive),
		cmocka_unit_test(test_workers_lease_lost),
		cmocka_unit_test(test_relay_gap),
		cmocka_unit_test(test_relay_bucket),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_config_db_durations),
		cmocka_unit_test(test_config_thread_nice),
		cmocka_unit_test(test_config_event_bundle),
		cmocka_unit_test(test_counts_interval),
		cmocka_unit_test(test_auth),
		cmocka_unit_test(test_auth_token_file_owned),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
