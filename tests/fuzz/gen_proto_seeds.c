/*
 * gen_proto_seeds.c — writes the seed corpus of fuzz_proto into a folder:
 * a valid encoding of every message type (full and minimal), pub/sub framed
 * messages, and a few malformed inputs, one per error class.
 *
 * Usage: gen_proto_seeds DIR   (the committed corpus is tests/fuzz/seeds/proto;
 * regenerate it when the protocol changes, keep crash-* files).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

static const char *dir;
static int written;

static void put(const char *name, const void *buf, size_t len)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
	written++;
}

static void put_msg(const char *variant, const struct kf_msg *m)
{
	struct kf_strbuf sb = KF_STRBUF_INIT;
	char name[128];
	enum kf_err err = kf_msg_encode(m, &sb);
	if (err) {
		fprintf(stderr, "%s %s: %s\n", kf_msg_type_name(m->type), variant, kf_strerror(err));
		exit(1);
	}
	snprintf(name, sizeof name, "%s-%s", kf_msg_type_name(m->type), variant);
	put(name, sb.buf, sb.len);
	kf_strbuf_release(&sb);
}

static struct kf_msg msg(enum kf_msg_type type)
{
	struct kf_msg m = { .type = type, .sender = "worker-1", .seq = 7, .ts_ns = 1700000000000000000ull };
	return m;
}

static const struct kf_msg_req req = { { 0x1234, 5 }, "token" };
static const struct kf_msg_req req_min = { { 1, 1 }, NULL };
static const struct kf_msg_rep rep = { { 0x1234, 5 }, KF_OK, NULL };
static const struct kf_msg_rep rep_err = { { 0x1234, 5 }, KF_ESTALE, "stale lease" };
static const struct kf_msg_field fields[] = {
	{ "s", { .kind = KF_VALUE_STR, .str = "caf\xc3\xa9" } }, { "i", { .kind = KF_VALUE_I64, .i64 = -5 } },
	{ "u", { .kind = KF_VALUE_U64, .u64 = 5 } }, { "f", { .kind = KF_VALUE_F64, .f64 = 0.5 } },
	{ "b", { .kind = KF_VALUE_BOOL, .b = true } },
};
static const struct kf_msg_span spans[] = { { "job_execution", fields, 2 }, { "annealing_loop", NULL, 0 } };
static const struct kf_msg_log log_full = { KF_MSG_LEVEL_WARN, "keyforge::worker", "job retrying",
	fields, 5, spans, 2, 1, "w1" };
static const struct kf_msg_log log_min = { KF_MSG_LEVEL_INFO, "t", "m", NULL, 0, NULL, 0, 0, NULL };
static const struct kf_msg_named_value nv[] = { { "sfb", 1.5 }, { "lsb", 0.5 } };
/* A macro too: C11 does not let one static object initialise another. */
#define PARAMS { "shai", KF_MSG_BOARD_ANSI, \
	"qwertyuiopasdfghjkl;zxcvbnm,./", 1000000, 42, 0, 2, "aeiou", nv, 2, 60000, 3, -1 }
static const struct kf_msg_job_params params = PARAMS;
static const struct kf_msg_job_params params_min = { .corpus = "shai", .steps = 1 };
static const struct kf_msg_job_result result = { "qwertyuiopasdfghjkl;zxcvbnm,./", 100.5, nv, 2,
	{ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, 1000, 5e5, 2 };
static const struct kf_msg_job_error errs[] = { { 1, "worker died", 5 } };
static const struct kf_msg_job job = { 9, KF_JOB_SUCCEEDED, 1, 3, 0, "w1", 1, 100.5, PARAMS,
	&result, errs, 1, 1, 2, 3, "nightly-42" };
static const double le[] = { 10, 100 };
static const uint64_t bc[] = { 1, 3 };
static const struct kf_msg_label labels[] = { { "status", "success" } };
static const struct kf_msg_series series[] = {
	{ "keyforge_jobs_total", KF_MSG_METRIC_COUNTER, "Jobs.", labels, 1, 3, NULL, NULL, 0, 0, 0 },
	{ "keyforge_score_latency_ns", KF_MSG_METRIC_HISTOGRAM, NULL, NULL, 0, 0, le, bc, 2, 250, 4 },
};
static const struct kf_msg_worker_status ws[] = {
	{ "w1", "host", 1, 2, KF_WORKER_STALE, KF_WORKER_BUSY, 1, 0.5, 1000, 2, 1, 9, 0.5, 3000,
	  true },
};

static void valid_messages(void)
{
	struct kf_msg m;
	static const struct kf_msg_held_job held[] = { { 9, 77 }, { 8, 76 } };
	m = msg(KF_MSG_HEARTBEAT);
	m.heartbeat = (struct kf_msg_heartbeat){ "w1", "host", 10, 11, KF_WORKER_BUSY, 1.5, 0.25,
		1 << 20, 2, 1, 9, 0.5, NAN, 1000, true, held, 2 };
	put_msg("full", &m);
	m = msg(KF_MSG_LOG); m.log = log_full; put_msg("full", &m);
	m.log = log_min; put_msg("min", &m);
	m = msg(KF_MSG_METRIC);
	m.metric = (struct kf_msg_metric){ "w1", 3, true, series, 2 };
	put_msg("full", &m);
	m.metric = (struct kf_msg_metric){ "w1", 3, false, NULL, 0 };
	put_msg("min", &m);
	m = msg(KF_MSG_JOB_EVENT);
	m.job_event = (struct kf_msg_job_event){ 9, KF_JOB_FAILED, 2, "w1", 0.5, 10, "boom" };
	put_msg("full", &m);
	m.job_event = (struct kf_msg_job_event){ 9, KF_JOB_PENDING, 0, NULL, 0, 0, NULL };
	put_msg("min", &m);
	m = msg(KF_MSG_CLUSTER_STATUS);
	m.cluster_status = (struct kf_msg_cluster_status){ ws, 1, { 1, 2, 3, 4, 5, 6 } };
	put_msg("full", &m);
	m = msg(KF_MSG_COMMAND);
	m.command = (struct kf_msg_command){ "w1", KF_CMD_CANCEL, 9, 77, true, "worker dead" };
	put_msg("full", &m);
	m.command = (struct kf_msg_command){ "w1", KF_CMD_CANCEL, 9, 77, false, NULL };
	put_msg("min", &m);

	m = msg(KF_MSG_HELLO_REQ);
	m.hello_req = (struct kf_msg_hello_req){ req, "w1", "host", 1, 2, 3, "0.1.0" };
	put_msg("full", &m);
	m = msg(KF_MSG_HELLO_REP); m.hello_rep = (struct kf_msg_hello_rep){ rep, 1000 }; put_msg("full", &m);
	m = msg(KF_MSG_LEASE_REQ); m.lease_req = (struct kf_msg_lease_req){ req_min, "w1", 500, 0 }; put_msg("min", &m);
	m.lease_req.incarnation = 0x0123456789abcdefull; put_msg("full", &m);
	const struct kf_msg_lease lease = { 9, 1, 77, params };
	m = msg(KF_MSG_LEASE_REP); m.lease_rep = (struct kf_msg_lease_rep){ rep, &lease }; put_msg("full", &m);
	m.lease_rep.lease = NULL; put_msg("min", &m);
	m = msg(KF_MSG_PROGRESS_REQ);
	m.progress_req = (struct kf_msg_progress_req){ req, 9, 77, 500, 0.1, 120, 110 };
	put_msg("full", &m);
	m = msg(KF_MSG_PROGRESS_REP);
	m.progress_rep = (struct kf_msg_progress_rep){ rep, true, false };
	put_msg("full", &m);
	m = msg(KF_MSG_COMPLETE_REQ);
	m.complete_req = (struct kf_msg_complete_req){ req, 9, 77, KF_JOB_KILLED, &result, "killed",
		false, false, 0, NULL, 0, false };
	put_msg("full", &m);
	m.complete_req = (struct kf_msg_complete_req){ req_min, 9, 77, KF_JOB_FAILED, NULL, NULL,
		false, false, 0, NULL, 0, false };
	put_msg("min", &m);
	m.complete_req = (struct kf_msg_complete_req){ req_min, 9, 77, KF_JOB_FAILED, NULL,
		"handed back", true, false, 0, NULL, 0, false };
	put_msg("released", &m);
	m.complete_req = (struct kf_msg_complete_req){ req_min, 9, 77, KF_JOB_FAILED, &result,
		"deadline exceeded", false, false, 0, NULL, 0, true };
	put_msg("expired", &m);
	m.complete_req = (struct kf_msg_complete_req){ req, 9, 77, KF_JOB_SUCCEEDED, &result, NULL,
		false, true, 500, "w1", 0x0123456789abcdefull, false };
	put_msg("next", &m);
	m = msg(KF_MSG_COMPLETE_REP);
	m.complete_rep = (struct kf_msg_complete_rep){ rep_err, true, NULL };
	put_msg("full", &m);
	m.complete_rep = (struct kf_msg_complete_rep){ rep, false, &lease };
	put_msg("next", &m);
	m = msg(KF_MSG_SUBMIT_REQ); m.submit_req = (struct kf_msg_submit_req){ req, params, "nightly-42" }; put_msg("full", &m);
	m.submit_req.params = params_min; m.submit_req.key = NULL; put_msg("min", &m);
	m = msg(KF_MSG_SUBMIT_REP); m.submit_rep = (struct kf_msg_submit_rep){ rep, 9, true }; put_msg("full", &m);
	m = msg(KF_MSG_LIST_REQ); m.list_req = (struct kf_msg_list_req){ req, 3, 1, 2, 50, true }; put_msg("full", &m);
	const struct kf_msg_job_summary sum[] = {
		{ 9, KF_JOB_SUCCEEDED, 1, 3, 0, "w1", "shai", 1, 100.5, "abc", "e", 1, 2, 3 },
		{ 10, KF_JOB_PENDING, 0, 3, 0, NULL, "shai", 0, 0, NULL, NULL, 4, 0, 0 },
	};
	m = msg(KF_MSG_LIST_REP); m.list_rep = (struct kf_msg_list_rep){ rep, sum, 2, 2 }; put_msg("full", &m);
	m = msg(KF_MSG_GET_REQ); m.get_req = (struct kf_msg_get_req){ req, 9 }; put_msg("full", &m);
	m = msg(KF_MSG_GET_REP); m.get_rep = (struct kf_msg_get_rep){ rep, &job }; put_msg("full", &m);
	m.get_rep = (struct kf_msg_get_rep){ rep_err, NULL }; put_msg("min", &m);
	m = msg(KF_MSG_KILL_REQ); m.kill_req = (struct kf_msg_job_action_req){ req, 9 }; put_msg("full", &m);
	m = msg(KF_MSG_KILL_REP); m.kill_rep = (struct kf_msg_job_action_rep){ rep, KF_JOB_KILLED }; put_msg("full", &m);
	m = msg(KF_MSG_RETRY_REQ); m.retry_req = (struct kf_msg_job_action_req){ req, 9 }; put_msg("full", &m);
	m = msg(KF_MSG_RETRY_REP); m.retry_rep = (struct kf_msg_job_action_rep){ rep, KF_JOB_PENDING }; put_msg("full", &m);
	m = msg(KF_MSG_CLUSTER_REQ); m.cluster_req.req = req; put_msg("full", &m);
	m = msg(KF_MSG_CLUSTER_REP);
	m.cluster_rep = (struct kf_msg_cluster_rep){ rep, { ws, 1, { 0, 1, 0, 0, 0, 0 } } };
	put_msg("full", &m);
	m = msg(KF_MSG_LOG_TAIL_REQ);
	m.log_tail_req = (struct kf_msg_log_tail_req){ req, 100, KF_MSG_LEVEL_DEBUG, "w1" };
	put_msg("full", &m);
	const struct kf_msg_log events[] = { log_full, log_min };
	m = msg(KF_MSG_LOG_TAIL_REP); m.log_tail_rep = (struct kf_msg_log_tail_rep){ rep, events, 2 }; put_msg("full", &m);
	m = msg(KF_MSG_DRAIN_REQ); m.drain_req = (struct kf_msg_drain_req){ req, "w1" }; put_msg("full", &m);
	m = msg(KF_MSG_DRAIN_REP); m.drain_rep = (struct kf_msg_drain_rep){ rep, KF_WORKER_ALIVE, 2 }; put_msg("full", &m);
	m = msg(KF_MSG_ERROR_REP); m.error_rep.rep = rep_err; put_msg("full", &m);
}

/* A string literal without its terminating NUL. */
#define PUT_LIT(name, lit) put(name, lit, sizeof(lit) - 1)

static void framed_and_malformed(void)
{
	struct kf_strbuf sb = KF_STRBUF_INIT;
	struct kf_msg m = msg(KF_MSG_LOG);
	char topic[KF_TOPIC_SIZE];
	m.log = log_full;
	kf_topic_log(topic, m.log.level, m.sender);
	if (kf_msg_encode_pub(topic, &m, &sb))
		exit(1);
	put("pub-log", sb.buf, sb.len);
	put("bad-truncated", sb.buf + strlen(topic) + 1, sb.len - strlen(topic) - 10);
	kf_strbuf_add(&sb, "\0", 1);
	put("bad-trailing", sb.buf + strlen(topic) + 1, sb.len - strlen(topic) - 1);

	PUT_LIT("bad-array32-4e9", "\xdd\xee\x6b\x28\x00");
	PUT_LIT("bad-str32-huge", "\x81\xa1v\xdb\xff\xff\xff\xff");
	PUT_LIT("bad-reserved-c1", "\x81\xa1v\xc1");
	char deep[20];
	memset(deep, 0x91, sizeof deep);
	deep[sizeof deep - 1] = (char)0x90;
	put("bad-too-deep", deep, sizeof deep);
	/* {v:2, t:1, s:"x", q:1, ts:1, b:{}} and the same with t:99, s:"\xff". */
	PUT_LIT("bad-version", "\x86\xa1v\x02\xa1t\x01\xa1s\xa1x\xa1q\x01\xa2ts\x01\xa1" "b\x80");
	PUT_LIT("bad-type", "\x86\xa1v\x01\xa1t\x63\xa1s\xa1x\xa1q\x01\xa2ts\x01\xa1" "b\x80");
	PUT_LIT("bad-utf8", "\x86\xa1v\x01\xa1t\x32\xa1s\xa1\xff\xa1q\x01\xa2ts\x01\xa1" "b\x80");
	PUT_LIT("bad-missing", "\x85\xa1v\x01\xa1t\x01\xa1s\xa1x\xa1q\x01\xa1" "b\x80");
	kf_strbuf_release(&sb);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen_proto_seeds DIR\n");
		return 2;
	}
	dir = argv[1];
	valid_messages();
	framed_and_malformed();
	printf("wrote %d seeds to %s\n", written, dir);
	return 0;
}
