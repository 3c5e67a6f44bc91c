/*
 * test_broker.c — the real keyforge-broker against a throwaway PostgreSQL,
 * driven over loopback with proto/ and bus/ like a worker and an operator.
 *
 * The group setup starts a cluster with scripts/pgtmp and the broker (path
 * in KF_BROKER_BIN) on free ports with a token file and a low ingest rate
 * limit; the tests run in order against that one broker (each submits its
 * own jobs and looks only at them); the last tests stop the database, then
 * the broker with SIGTERM. The broker's stderr goes to a file the tests
 * read for its log lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>

#include "pgtmp_fixture.h"
#include "child.h"
#include "events.h"
#include "ports.h"
#include "bus/bus.h"
#include "common/clock.h"
#include "kf_config.h"
#include "proto/proto.h"

#define RATE 100
#define BURST 50
#define WAIT_MS 10000

static struct kf_pgtmp g_pg; /* the throwaway cluster */
static char g_tmp[64];         /* token file, broker log */
static char g_conninfo[256];
static char g_url[5][64];      /* ingest, events, rpc, commands, monitor */
static char g_token_path[128], g_log_path[128];
static char g_token[80];
static pid_t g_broker;
static struct kf_rpc_client *g_cli;
static uint64_t g_client_id;
static atomic_uint_fast64_t g_seq;  /* request ids; threads send too */

static uint64_t next_seq(void)
{
	return atomic_fetch_add(&g_seq, 1) + 1;
}

/* ---- processes ------------------------------------------------------------ */

static int run_pgtmp(const char *cmd, char *out, size_t out_size)
{
	return kf_pgtmp_run(&g_pg, cmd, out, out_size);
}

static const char *broker_bin(void)
{
	const char *p = getenv("KF_BROKER_BIN");

	return p && *p ? p : "broker/keyforge-broker";
}

/* Starts a broker on urls (ingest, events, rpc, commands, monitor) with
 * `extra` flags (NULL-terminated; NULL for none); its stdout+stderr go to
 * log. */
static pid_t spawn_broker_with(char urls[5][64], const char *log, const char *token_path,
	const char *const *extra)
{
	pid_t parent = getpid(), pid;

	fflush(NULL);
	pid = fork();
	if (pid != 0)
		return pid;
	kf_test_child_dies_with(parent);
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	char rate[16], burst[16];
	const char *argv[40] = { "keyforge-broker", "--db", g_conninfo, "--ingest", urls[0],
		"--events", urls[1], "--rpc", urls[2], "--commands", urls[3], "--monitor", urls[4],
		"--token-file", token_path, "--ingest-rate", rate, "--ingest-burst", burst,
		"--max-wait", "5000" };
	size_t n = 21;

	dup2(fd, 1);
	dup2(fd, 2);
	snprintf(rate, sizeof(rate), "%d", RATE);
	snprintf(burst, sizeof(burst), "%d", BURST);
	for (; extra && *extra && n + 1 < sizeof(argv) / sizeof(argv[0]); extra++)
		argv[n++] = *extra;
	argv[n] = NULL;
	/* The broker's per-job lines ("job submitted", "job completed") are
	 * DEBUG; the tests look for them. */
	setenv("KEYFORGE_LOG", "info,keyforge::broker=debug", 1);
	setenv("KEYFORGE_LOG_FORMAT", "human", 1);
	setenv("NO_COLOR", "1", 1);
	execv(broker_bin(), (char *const *)argv);
	_exit(127);
}

static pid_t spawn_broker_at(char urls[5][64], const char *log, const char *token_path)
{
	return spawn_broker_with(urls, log, token_path, NULL);
}

/* Starts a broker on the test's addresses. */
static pid_t spawn_broker(const char *log, const char *token_path)
{
	return spawn_broker_at(g_url, log, token_path);
}

/* Whether a line of the broker log contains needle (and `also` too,
 * unless it is NULL). */
static bool log_line_has(const char *needle, const char *also)
{
	char line[4096];
	bool found = false;
	FILE *f = fopen(g_log_path, "r");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) && (!also || strstr(line, also));
	fclose(f);
	return found;
}

static bool log_has(const char *needle)
{
	return log_line_has(needle, NULL);
}

/* Lines of the log at path that contain needle. */
static int log_count_in(const char *path, const char *needle)
{
	char line[4096];
	int n = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

static int log_count(const char *needle)
{
	return log_count_in(g_log_path, needle);
}

/* Lines of the broker log with `message` about job `id` (human format:
 * "message job_id=ID" then a space or the end of the line). */
static int log_count_job(const char *message, uint64_t id)
{
	char line[4096], needle[160];
	int n = 0;
	FILE *f = fopen(g_log_path, "r");

	if (!f)
		return 0;
	snprintf(needle, sizeof(needle), "%s job_id=%llu", message, (unsigned long long)id);
	while (fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, needle);

		n += p && (p[strlen(needle)] == ' ' || p[strlen(needle)] == '\n');
	}
	fclose(f);
	return n;
}

static bool wait_log(const char *needle, int ms)
{
	for (int t = 0; t < ms; t += 50) {
		if (log_has(needle))
			return true;
		kf_sleep_ms(50);
	}
	return log_has(needle);
}

/* ---- rpc ------------------------------------------------------------------- */

static struct kf_msg *rpc_raw(const void *buf, size_t len, int timeout_ms)
{
	struct kf_rpc_call_opts o = { .timeout_ms = timeout_ms, .resend_ms = 1000 };
	struct kf_msg *rep = NULL;
	nng_msg *m;
	enum kf_err err;

	if (timeout_ms > 1000)
		o.resend_ms = timeout_ms + 1000; /* long polls are not resent */
	err = kf_rpc_client_call(g_cli, buf, len, &o, &m);
	if (err)
		return NULL;
	if (kf_msg_decode(nng_msg_body(m), nng_msg_len(m), &rep, NULL) != KF_OK)
		rep = NULL;
	nng_msg_free(m);
	return rep;
}

/* Sends req (id assigned unless already set) and returns the decoded reply
 * to it; NULL when none came, or not its reply. Asserts nothing, so that a
 * thread other than the test's may call it (a cmocka assertion there exits
 * the process with status 255 and no message). */
static struct kf_msg *rpc_try(struct kf_msg *req, bool with_token, int timeout_ms)
{
	struct kf_strbuf sb = KF_STRBUF_INIT;
	struct kf_msg_req *h = kf_msg_request_mut(req);
	struct kf_msg *rep = NULL;

	if (!h->id.client && !h->id.seq) {
		h->id.client = g_client_id;
		h->id.seq = next_seq();
	}
	h->auth_token = with_token ? g_token : NULL;
	if (kf_msg_encode(req, &sb) == KF_OK)
		rep = rpc_raw(sb.buf, sb.len, timeout_ms);
	kf_strbuf_release(&sb);
	if (rep && (rep->type != kf_msg_reply_type(req->type) ||
		    kf_msg_reply(rep)->id.seq != h->id.seq)) {
		kf_msg_free(rep);
		rep = NULL;
	}
	return rep;
}

static struct kf_msg *rpc_timeout(struct kf_msg *req, bool with_token, int timeout_ms)
{
	struct kf_msg *rep = rpc_try(req, with_token, timeout_ms);

	assert_non_null(rep);
	return rep;
}

static struct kf_msg *rpc(struct kf_msg *req, bool with_token)
{
	return rpc_timeout(req, with_token, 5000);
}

static void req_init(struct kf_msg *m, enum kf_msg_type type)
{
	kf_msg_init(m, type, "test-client", 0);
}

static enum kf_err status_of(const struct kf_msg *rep)
{
	return kf_msg_reply(rep)->status;
}

static uint64_t submit_job_until(int32_t priority, uint64_t steps, uint64_t deadline_ms)
{
	struct kf_msg req, *rep;
	uint64_t id;

	req_init(&req, KF_MSG_SUBMIT_REQ);
	req.submit_req.params = (struct kf_msg_job_params){ .corpus = "shai", .steps = steps,
		.seed = 42, .restarts = 1, .priority = priority, .max_attempts = 2,
		.deadline_ms = deadline_ms };
	rep = rpc(&req, true);
	assert_int_equal(status_of(rep), KF_OK);
	id = rep->submit_rep.job_id;
	assert_true(id > 0);
	kf_msg_free(rep);
	return id;
}

static uint64_t submit_job(int32_t priority, uint64_t steps)
{
	return submit_job_until(priority, steps, 0);
}

/* A lease as process `inc` of `worker` (0: not said, as before 1.2); the
 * reply whatever its status. */
static struct kf_msg *lease_as(const char *worker, uint64_t inc, uint32_t wait_ms)
{
	struct kf_msg req;

	req_init(&req, KF_MSG_LEASE_REQ);
	req.lease_req.worker_id = worker;
	req.lease_req.wait_ms = wait_ms;
	req.lease_req.incarnation = inc;
	return rpc_timeout(&req, false, (int)wait_ms + 5000);
}

static struct kf_msg *lease(const char *worker, uint32_t wait_ms)
{
	struct kf_msg *rep = lease_as(worker, 0, wait_ms);

	assert_int_equal(status_of(rep), KF_OK);
	return rep;
}

static void hello_as(const char *worker, uint64_t inc)
{
	struct kf_msg req, *rep;

	req_init(&req, KF_MSG_HELLO_REQ);
	req.hello_req = (struct kf_msg_hello_req){ .worker_id = worker, .host = "testhost",
		.pid = 4242, .slots = 1, .incarnation = inc, .version = "0.1.0" };
	rep = rpc(&req, false);
	assert_int_equal(status_of(rep), KF_OK);
	kf_msg_free(rep);
}

static void hello(const char *worker)
{
	hello_as(worker, 77);
}

static struct kf_msg *lease_heard(const char *worker, uint64_t inc);

/* Introduces `worker` (a worker the broker has never heard of would have
 * its jobs requeued as orphans) and leases, expecting job `id`. */
static struct kf_msg *lease_job(const char *worker, uint64_t id)
{
	struct kf_msg *rep;

	hello(worker);
	rep = lease_heard(worker, 77);
	assert_int_equal(status_of(rep), KF_OK);
	assert_non_null(rep->lease_rep.lease);
	assert_int_equal(rep->lease_rep.lease->job_id, id);
	return rep;
}

/* Runs sql in the hive's database as an operator would; its first row in out. */
static void psql(const char *sql, char *out, size_t out_size)
{
	char cmd[768], line[256];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "'%s/scripts/pgtmp' psql '%s' -X -q -t -A -v ON_ERROR_STOP=1 "
		 "-c \"%s\"", KF_SOURCE_ROOT, g_pg.dir, sql);
	assert_non_null(p = popen(cmd, "r"));
	if (out) {
		out[0] = '\0';
		if (fgets(out, (int)out_size, p))
			out[strcspn(out, "\n")] = '\0';
	}
	while (fgets(line, sizeof(line), p))
		;
	assert_int_equal(pclose(p), 0);
}

/* Kills job id (with the token); its state after the kill. */
static enum kf_job_state kill_job(uint64_t id)
{
	struct kf_msg req, *rep;
	enum kf_job_state st;

	req_init(&req, KF_MSG_KILL_REQ);
	req.kill_req.job_id = id;
	rep = rpc(&req, true);
	assert_int_equal(status_of(rep), KF_OK);
	st = rep->kill_rep.state;
	kf_msg_free(rep);
	return st;
}

static struct kf_msg *get_job(uint64_t id)
{
	struct kf_msg req, *rep;

	req_init(&req, KF_MSG_GET_REQ);
	req.get_req.job_id = id;
	rep = rpc(&req, false);
	assert_int_equal(status_of(rep), KF_OK);
	assert_non_null(rep->get_rep.job);
	return rep;
}

static enum kf_job_state job_state(uint64_t id)
{
	struct kf_msg *rep = get_job(id);
	enum kf_job_state st = rep->get_rep.job->state;

	kf_msg_free(rep);
	return st;
}

static struct kf_msg *progress(uint64_t job, uint64_t token, uint64_t step)
{
	struct kf_msg req;

	req_init(&req, KF_MSG_PROGRESS_REQ);
	req.progress_req = (struct kf_msg_progress_req){ .job_id = job, .lease_token = token,
		.step = step, .temperature = 1.0, .cost = 12.5, .best_cost = 10.25 };
	return rpc(&req, false);
}

static struct kf_msg *complete(uint64_t job, uint64_t token, enum kf_job_state outcome,
	const char *error)
{
	static const struct kf_msg_named_value stats[] = { { "sfb", 1.25 }, { "lsb", 0.5 } };
	struct kf_msg_job_result res = { .layout = "qwertyuiopasdfghjkl;zxcvbnm,./", .cost = 9.5,
		.stats = stats, .n_stats = 2, .steps = 100, .steps_per_sec = 1e6, .elapsed_ms = 3 };
	struct kf_msg req;

	req_init(&req, KF_MSG_COMPLETE_REQ);
	req.complete_req = (struct kf_msg_complete_req){ .job_id = job, .lease_token = token,
		.outcome = outcome, .result = outcome == KF_JOB_FAILED ? NULL : &res,
		.error = error };
	return rpc(&req, false);
}

/* ---- events and ingest ------------------------------------------------------ */

static struct kf_bus_sub *events_sub(const char *prefix, size_t len)
{
	return kf_test_sub_on(g_url[1], prefix, len);
}

static struct kf_bus_pub *ingest_pub(void)
{
	struct kf_bus_pub *pub;

	assert_int_equal(kf_bus_pub_new(&pub, KF_BUS_DIAL, g_url[0], NULL, NULL), KF_OK);
	for (int i = 0; i < 200 && kf_bus_sock_peers(kf_bus_pub_sock(pub)) == 0; i++)
		kf_sleep_ms(10);
	assert_true(kf_bus_sock_peers(kf_bus_pub_sock(pub)) > 0);
	kf_sleep_ms(100);
	return pub;
}

/* Without asserting: for threads other than the test's (a cmocka assertion
 * there exits the process with status 255 and no message). */
static bool publish_ok(struct kf_bus_pub *pub, const char *topic, const struct kf_msg *m)
{
	struct kf_strbuf sb = KF_STRBUF_INIT;
	bool ok = kf_msg_encode_pub(topic, m, &sb) == KF_OK &&
		  kf_bus_pub_send(pub, NULL, 0, sb.buf, sb.len) == KF_OK;

	kf_strbuf_release(&sb);
	return ok;
}

static void publish(struct kf_bus_pub *pub, const char *topic, const struct kf_msg *m)
{
	assert_true(publish_ok(pub, topic, m));
}

/* A heartbeat of process `inc` of `worker` (one slot, running `job` or idle). */
static void heartbeat_of(struct kf_bus_pub *pub, const char *worker, uint64_t inc, uint64_t seq,
	uint64_t job)
{
	char topic[KF_TOPIC_SIZE];
	struct kf_msg m;

	kf_msg_init(&m, KF_MSG_HEARTBEAT, worker, seq);
	m.heartbeat = (struct kf_msg_heartbeat){ .worker_id = worker, .host = "testhost",
		.pid = 4242, .incarnation = inc, .state = job ? KF_WORKER_BUSY : KF_WORKER_IDLE,
		.slots_total = 1, .slots_busy = job ? 1 : 0, .job_id = job };
	kf_topic_hb(topic, worker);
	publish(pub, topic, &m);
}

static void heartbeat(struct kf_bus_pub *pub, const char *worker, uint64_t seq, uint64_t job)
{
	heartbeat_of(pub, worker, 77, seq, job);
}

static struct kf_bus_pub *g_hb_pub;  /* the heartbeats of lease_heard() */
static uint64_t g_hb_seq;

/* A lease of process `inc` of `worker`, which has said hello, sent once its
 * heartbeat has reached the broker — as a live worker's is — since the
 * broker holds the leases of a worker it has not heard. A heartbeat lost
 * (the broker restarted meanwhile) is sent again. */
static struct kf_msg *lease_heard(const char *worker, uint64_t inc)
{
	struct kf_msg *rep = NULL;

	if (!g_hb_pub)
		g_hb_pub = ingest_pub();
	for (int i = 0; i < 5; i++) {
		kf_msg_free(rep);
		heartbeat_of(g_hb_pub, worker, inc, ++g_hb_seq, 0);
		rep = lease_as(worker, inc, 1000);
		if (status_of(rep) != KF_OK || rep->lease_rep.lease)
			break;
	}
	return rep;
}

/* A metric update from `worker` (one counter) as incarnation `inc`. */
static void metric_update(struct kf_bus_pub *pub, const char *worker, uint64_t seq, uint64_t inc,
	double value)
{
	struct kf_msg_series series = { .name = "keyforge_it_steps_total",
		.type = KF_MSG_METRIC_COUNTER, .value = value };
	char topic[KF_TOPIC_SIZE];
	struct kf_msg m;

	kf_msg_init(&m, KF_MSG_METRIC, worker, seq);
	m.metric = (struct kf_msg_metric){ .source = worker, .incarnation = inc, .full = true,
		.series = &series, .n_series = 1 };
	kf_topic_metric(topic, worker);
	publish(pub, topic, &m);
}

/* The cluster reply's record of `worker` (its strings not kept); false when
 * it is not listed. */
static bool worker_status(const char *worker, struct kf_msg_worker_status *out)
{
	struct kf_msg req, *rep;
	bool found = false;

	req_init(&req, KF_MSG_CLUSTER_REQ);
	rep = rpc(&req, false);
	assert_int_equal(status_of(rep), KF_OK);
	for (size_t i = 0; i < rep->cluster_rep.status.n_workers && !found; i++) {
		if (strcmp(rep->cluster_rep.status.workers[i].worker_id, worker))
			continue;
		*out = rep->cluster_rep.status.workers[i];
		out->worker_id = out->host = NULL;
		found = true;
	}
	kf_msg_free(rep);
	return found;
}

/* The worker's liveness in a cluster reply; -1 when not listed. */
static int liveness_of(const char *worker)
{
	struct kf_msg_worker_status st;

	return worker_status(worker, &st) ? (int)st.liveness : -1;
}

static double broker_metric(struct kf_bus_sub *sub, const char *name, const char *label,
	const char *value, double min)
{
	return kf_test_broker_metric(sub, name, label, value, NULL, NULL, min);
}

/* ---- setup ------------------------------------------------------------------ */

static bool broker_ready(void)
{
	for (int i = 0; i < 100; i++) {
		struct kf_strbuf sb = KF_STRBUF_INIT;
		struct kf_msg req, *rep;

		req_init(&req, KF_MSG_CLUSTER_REQ);
		req.cluster_req.req.id.client = g_client_id;
		req.cluster_req.req.id.seq = next_seq();
		kf_msg_encode(&req, &sb);
		rep = rpc_raw(sb.buf, sb.len, 500);
		kf_strbuf_release(&sb);
		if (rep) {
			kf_msg_free(rep);
			return wait_log("database connected", WAIT_MS);
		}
		kf_sleep_ms(100);
	}
	return false;
}

static bool read_token(void)
{
	FILE *f = fopen(g_token_path, "r");
	struct stat st;
	bool ok;

	if (!f)
		return false;
	ok = fgets(g_token, sizeof(g_token), f) != NULL;
	fclose(f);
	g_token[strcspn(g_token, "\n")] = '\0';
	return ok && strlen(g_token) == 64 && stat(g_token_path, &st) == 0 &&
	       (st.st_mode & 0777) == 0600;
}

static int group_setup(void **state)
{
	(void)state;
	snprintf(g_tmp, sizeof(g_tmp), "/tmp/kf-broker-test-XXXXXX");
	if (!mkdtemp(g_tmp) || kf_pgtmp_start(&g_pg, g_conninfo, sizeof(g_conninfo)) != 0)
		return -1;
	for (int i = 0; i < 5; i++)
		snprintf(g_url[i], sizeof(g_url[i]), "tcp://127.0.0.1:%u", kf_test_free_port());
	snprintf(g_token_path, sizeof(g_token_path), "%s/token", g_tmp);
	snprintf(g_log_path, sizeof(g_log_path), "%s/broker.log", g_tmp);
	g_client_id = kf_clock_wall_ns() ^ ((uint64_t)getpid() << 40);
	if (kf_rpc_client_new(&g_cli, g_url[2], NULL, NULL) != KF_OK)
		return -1;
	g_broker = spawn_broker(g_log_path, g_token_path);
	if (g_broker < 0 || !broker_ready() || !read_token()) {
		fprintf(stderr, "broker did not start; its log: %s\n", g_log_path);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[160];

	(void)state;
	if (g_broker > 0 && kill(g_broker, 0) == 0) {
		kill(g_broker, SIGKILL);
		waitpid(g_broker, NULL, 0);
	}
	kf_rpc_client_free(g_cli);
	kf_bus_pub_free(g_hb_pub);
	run_pgtmp("stop", NULL, 0);
	if (getenv("KF_KEEP_LOG")) {
		fprintf(stderr, "broker log kept in %s\n", g_log_path);
		return 0;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_tmp);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- tests --------------------------------------------------------------------- */

/* The nice value of the first thread of pid named `name` (its comm), or
 * 99 when there is none. */
static int thread_nice(pid_t pid, const char *name)
{
	char path[320], comm[32], stat[1024];
	struct dirent *d;
	int nice = 99;
	DIR *dir;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	assert_non_null(dir = opendir(path));
	while (nice == 99 && (d = readdir(dir))) {
		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/comm", (int)pid, d->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		comm[0] = '\0';
		if (fgets(comm, sizeof(comm), f))
			comm[strcspn(comm, "\n")] = '\0';
		fclose(f);
		snprintf(path, sizeof(path), "/proc/%d/task/%s/stat", (int)pid, d->d_name);
		if (strcmp(comm, name) || !(f = fopen(path, "r")))
			continue;
		if (fgets(stat, sizeof(stat), f)) {
			/* After "(comm) ": state is field 3, nice field 19. */
			char *p = strrchr(stat, ')');
			int field = 2;

			for (; p && *p; p++)
				if (*p == ' ' && ++field == 19) {
					nice = atoi(p + 1);
					break;
				}
		}
		fclose(f);
	}
	closedir(dir);
	return nice;
}

static void test_started(void **state)
{
	(void)state;
	assert_true(log_has("server started"));
	assert_true(log_has(g_url[2]));
	assert_int_equal(log_count("database connection failed"), 0);
	/* The loop and the database thread run at nice -5 (--thread-nice),
	 * nng's threads and the relay as they were. Without CAP_SYS_NICE the
	 * broker says why it could not. */
	if (geteuid() == 0) {
		assert_int_equal(thread_nice(g_broker, "keyforge-broker"), -5);
		assert_int_equal(thread_nice(g_broker, "kf:store"), -5);
		assert_int_equal(thread_nice(g_broker, "kf:relay"), 0);
		assert_int_equal(thread_nice(g_broker, "nng:task"), 0);
	} else {
		assert_true(log_has("thread priority not raised"));
	}
}

static void test_hello(void **state)
{
	struct kf_msg req, *rep;

	(void)state;
	req_init(&req, KF_MSG_HELLO_REQ);
	req.hello_req = (struct kf_msg_hello_req){ .worker_id = "w-hello", .host = "testhost",
		.pid = 1, .slots = 1, .incarnation = 5, .version = "0.1.0" };
	rep = rpc(&req, false);
	assert_int_equal(status_of(rep), KF_OK);
	assert_int_equal(rep->hello_rep.heartbeat_ms, 1000);
	kf_msg_free(rep);
	assert_int_equal(liveness_of("w-hello"), KF_WORKER_ALIVE);
	assert_true(wait_log("worker joined", 2000));
}

static void test_submit_needs_token(void **state)
{
	struct kf_msg req, *rep;

	(void)state;
	req_init(&req, KF_MSG_SUBMIT_REQ);
	req.submit_req.params = (struct kf_msg_job_params){ .corpus = "shai", .steps = 10 };
	rep = rpc(&req, false);
	assert_int_equal(status_of(rep), KF_EPERM);
	assert_non_null(strstr(kf_msg_reply(rep)->error, "token"));
	kf_msg_free(rep);

	req_init(&req, KF_MSG_SUBMIT_REQ);
	req.submit_req.params = (struct kf_msg_job_params){ .corpus = "shai", .steps = 10 };
	req.submit_req.req.auth_token = "0000000000000000000000000000000000000000000000000000000000000000";
	req.submit_req.req.id = (struct kf_msg_request_id){ g_client_id, next_seq() };
	{
		struct kf_strbuf sb = KF_STRBUF_INIT;

		assert_int_equal(kf_msg_encode(&req, &sb), KF_OK);
		rep = rpc_raw(sb.buf, sb.len, 5000);
		kf_strbuf_release(&sb);
	}
	assert_non_null(rep);
	assert_int_equal(status_of(rep), KF_EPERM);
	kf_msg_free(rep);

	req_init(&req, KF_MSG_KILL_REQ);
	req.kill_req.job_id = 1;
	rep = rpc(&req, false);
	assert_int_equal(status_of(rep), KF_EPERM);
	kf_msg_free(rep);
	req_init(&req, KF_MSG_RETRY_REQ);
	req.retry_req.job_id = 1;
	rep = rpc(&req, false);
	assert_int_equal(status_of(rep), KF_EPERM);
	kf_msg_free(rep);
}

static void test_submit_idempotent(void **state)
{
	struct kf_msg req, *a, *b, *c;

	(void)state;
	req_init(&req, KF_MSG_SUBMIT_REQ);
	req.submit_req.params = (struct kf_msg_job_params){ .corpus = "shai", .steps = 10 };
	a = rpc(&req, true);
	/* A resend: same request id, same reply, no second job. */
	b = rpc(&req, true);
	assert_int_equal(status_of(a), KF_OK);
	assert_int_equal(status_of(b), KF_OK);
	assert_int_equal(a->submit_rep.job_id, b->submit_rep.job_id);
	assert_false(a->submit_rep.existing);
	/* A new request: a new job. */
	memset(&req.submit_req.req.id, 0, sizeof(req.submit_req.req.id));
	c = rpc(&req, true);
	assert_true(c->submit_rep.job_id > a->submit_rep.job_id);
	assert_int_equal(job_state(a->submit_rep.job_id), KF_JOB_PENDING);
	kf_msg_free(a);
	kf_msg_free(b);
	kf_msg_free(c);
	/* Invalid parameters are refused before the database. */
	req_init(&req, KF_MSG_SUBMIT_REQ);
	req.submit_req.params = (struct kf_msg_job_params){ .corpus = "", .steps = 10 };
	a = rpc(&req, true);
	assert_int_equal(status_of(a), KF_EINVAL);
	kf_msg_free(a);
}

/* A submit of `steps` steps under `key`, with a request id of its own as a
 * second process would send it. */
static struct kf_msg *submit_keyed(const char *key, uint64_t steps)
{
	struct kf_msg req;

	req_init(&req, KF_MSG_SUBMIT_REQ);
	req.submit_req.params = (struct kf_msg_job_params){ .corpus = "shai", .steps = steps };
	req.submit_req.key = key;
	return rpc(&req, true);
}

/* The caller's key (1.5) spans requests: the same key again answers the
 * first job; other parameters under it are refused. */
static void test_submit_key(void **state)
{
	struct kf_msg *a, *b, *c;

	(void)state;
	a = submit_keyed("test-key-1", 10);
	b = submit_keyed("test-key-1", 10);
	assert_int_equal(status_of(a), KF_OK);
	assert_int_equal(status_of(b), KF_OK);
	assert_false(a->submit_rep.existing);
	assert_true(b->submit_rep.existing);
	assert_int_equal(a->submit_rep.job_id, b->submit_rep.job_id);
	assert_int_equal(b->minor, KF_PROTO_MINOR);
	kf_msg_free(b);
	/* Other parameters under the key: refused, nothing queued. */
	c = submit_keyed("test-key-1", 11);
	assert_int_equal(status_of(c), KF_EEXIST);
	assert_non_null(strstr(kf_msg_reply(c)->error, "other parameters"));
	kf_msg_free(c);
	/* Another key, another job. */
	c = submit_keyed("test-key-2", 10);
	assert_int_equal(status_of(c), KF_OK);
	assert_true(c->submit_rep.job_id > a->submit_rep.job_id);
	kf_msg_free(a);
	kf_msg_free(c);
	/* A key is text: a control character is refused. */
	a = submit_keyed("bad\x01key", 10);
	assert_int_equal(status_of(a), KF_EINVAL);
	kf_msg_free(a);
}

/* Kill every pending job so the lease tests see only their own. */
static void drain_pending(void)
{
	struct kf_msg req, *rep;

	req_init(&req, KF_MSG_LIST_REQ);
	req.list_req.state_mask = KF_JOB_STATE_BIT(KF_JOB_PENDING);
	req.list_req.limit = 1000;
	rep = rpc(&req, false);
	assert_int_equal(status_of(rep), KF_OK);
	for (size_t i = 0; i < rep->list_rep.n_jobs; i++)
		assert_int_equal(kill_job(rep->list_rep.jobs[i].id), KF_JOB_KILLED);
	kf_msg_free(rep);
}

static void test_lease_progress_complete(void **state)
{
	struct kf_msg *l, *p, *c, *g;
	const struct kf_msg_lease *ls;
	uint64_t id;

	(void)state;
	drain_pending();
	id = submit_job(5, 1000);
	l = lease_job("w-1", id);
	ls = l->lease_rep.lease;
	assert_int_equal(ls->attempt, 1);
	assert_true(ls->lease_token != 0);
	assert_string_equal(ls->params.corpus, "shai");
	assert_int_equal(ls->params.steps, 1000);
	assert_int_equal(ls->params.seed, 42);
	assert_int_equal(ls->params.priority, 5);
	assert_int_equal(ls->params.max_attempts, 2);

	p = progress(id, ls->lease_token, 500);
	assert_int_equal(status_of(p), KF_OK);
	assert_false(p->progress_rep.cancel);
	assert_false(p->progress_rep.drop);
	kf_msg_free(p);
	/* A wrong token is stale: drop. */
	p = progress(id, ls->lease_token + 1, 600);
	assert_int_equal(status_of(p), KF_ESTALE);
	assert_true(p->progress_rep.drop);
	kf_msg_free(p);

	g = get_job(id);
	assert_int_equal(g->get_rep.job->state, KF_JOB_RUNNING);
	assert_string_equal(g->get_rep.job->worker_id, "w-1");
	assert_true(fabs(g->get_rep.job->progress - 0.5) < 1e-9);
	assert_true(fabs(g->get_rep.job->best_cost - 10.25) < 1e-9);
	kf_msg_free(g);

	c = complete(id, ls->lease_token, KF_JOB_SUCCEEDED, NULL);
	assert_int_equal(status_of(c), KF_OK);
	assert_false(c->complete_rep.drop);
	kf_msg_free(c);
	/* The worker resends (new request id): recorded once, still OK. */
	c = complete(id, ls->lease_token, KF_JOB_SUCCEEDED, NULL);
	assert_int_equal(status_of(c), KF_OK);
	kf_msg_free(c);
	/* A stale completion is told to drop its result. */
	c = complete(id, ls->lease_token + 1, KF_JOB_SUCCEEDED, NULL);
	assert_int_equal(status_of(c), KF_ESTALE);
	assert_true(c->complete_rep.drop);
	kf_msg_free(c);

	g = get_job(id);
	assert_int_equal(g->get_rep.job->state, KF_JOB_SUCCEEDED);
	assert_non_null(g->get_rep.job->result);
	assert_string_equal(g->get_rep.job->result->layout, "qwertyuiopasdfghjkl;zxcvbnm,./");
	assert_true(g->get_rep.job->result->cost == 9.5);
	assert_int_equal(g->get_rep.job->result->n_stats, 2);
	kf_msg_free(g);
	kf_msg_free(l);
	/* A finished job cannot be killed. */
	{
		struct kf_msg req;

		req_init(&req, KF_MSG_KILL_REQ);
		req.kill_req.job_id = id;
		c = rpc(&req, true);
		assert_int_equal(status_of(c), KF_ESTATE);
		assert_non_null(strstr(kf_msg_reply(c)->error, "already finished"));
		kf_msg_free(c);
	}
	assert_true(wait_log("job completed", 2000));
}

static void test_list_paging(void **state)
{
	struct kf_msg req, *rep;
	uint64_t ids[3];

	(void)state;
	drain_pending();
	for (int i = 0; i < 3; i++)
		ids[i] = submit_job(0, 10);
	req_init(&req, KF_MSG_LIST_REQ);
	req.list_req.state_mask = KF_JOB_STATE_BIT(KF_JOB_PENDING);
	req.list_req.limit = 2;
	rep = rpc(&req, false);
	assert_int_equal(status_of(rep), KF_OK);
	assert_int_equal(rep->list_rep.n_jobs, 2);
	assert_int_equal(rep->list_rep.total, 3);
	assert_int_equal(rep->list_rep.jobs[0].id, ids[0]);
	assert_string_equal(rep->list_rep.jobs[0].corpus, "shai");
	req.list_req.after_id = rep->list_rep.jobs[1].id;
	kf_msg_free(rep);
	memset(&req.list_req.req.id, 0, sizeof(req.list_req.req.id));
	rep = rpc(&req, false);
	assert_int_equal(rep->list_rep.n_jobs, 1);
	assert_int_equal(rep->list_rep.jobs[0].id, ids[2]);
	kf_msg_free(rep);
	/* 1.4: newest first, then the page below the last id seen */
	req.list_req.newest_first = true;
	req.list_req.after_id = 0;
	memset(&req.list_req.req.id, 0, sizeof(req.list_req.req.id));
	rep = rpc(&req, false);
	assert_int_equal(status_of(rep), KF_OK);
	assert_true(rep->minor >= KF_PROTO_MINOR_NEWEST_FIRST);
	assert_int_equal(rep->list_rep.total, 3);
	assert_int_equal(rep->list_rep.n_jobs, 2);
	assert_int_equal(rep->list_rep.jobs[0].id, ids[2]);
	assert_int_equal(rep->list_rep.jobs[1].id, ids[1]);
	req.list_req.after_id = rep->list_rep.jobs[1].id;
	kf_msg_free(rep);
	memset(&req.list_req.req.id, 0, sizeof(req.list_req.req.id));
	rep = rpc(&req, false);
	assert_int_equal(rep->list_rep.n_jobs, 1);
	assert_int_equal(rep->list_rep.jobs[0].id, ids[0]);
	kf_msg_free(rep);
	drain_pending();
}

static void test_kill_pending_and_retry(void **state)
{
	struct kf_msg req, *rep;
	uint64_t id;

	(void)state;
	id = submit_job(0, 10);
	req_init(&req, KF_MSG_KILL_REQ);
	req.kill_req.job_id = id;
	rep = rpc(&req, true);
	assert_int_equal(status_of(rep), KF_OK);
	assert_int_equal(rep->kill_rep.state, KF_JOB_KILLED);
	kf_msg_free(rep);
	/* Resend: the same answer from the reply cache. */
	rep = rpc(&req, true);
	assert_int_equal(rep->kill_rep.state, KF_JOB_KILLED);
	kf_msg_free(rep);
	/* A new kill of a killed job: nothing to do, still killed. */
	memset(&req.kill_req.req.id, 0, sizeof(req.kill_req.req.id));
	rep = rpc(&req, true);
	assert_int_equal(status_of(rep), KF_OK);
	assert_int_equal(rep->kill_rep.state, KF_JOB_KILLED);
	kf_msg_free(rep);
	/* ...and it is neither logged nor counted again: one "job killed" (and
	 * one keyforge_jobs_total{status="killed"}, incremented beside it) for
	 * three kills. The log is written by a thread: give it time to show a
	 * second line, were there one. */
	for (int t = 0; t < 40 && log_count_job("job killed", id) == 0; t++)
		kf_sleep_ms(50);
	kf_sleep_ms(300);
	assert_int_equal(log_count_job("job killed", id), 1);

	req_init(&req, KF_MSG_RETRY_REQ);
	req.retry_req.job_id = id;
	rep = rpc(&req, true);
	assert_int_equal(status_of(rep), KF_OK);
	assert_int_equal(rep->retry_rep.state, KF_JOB_PENDING);
	kf_msg_free(rep);
	assert_int_equal(job_state(id), KF_JOB_PENDING);
	/* Retry of a pending job is refused; unknown jobs are ENOENT. */
	memset(&req.retry_req.req.id, 0, sizeof(req.retry_req.req.id));
	rep = rpc(&req, true);
	assert_int_equal(status_of(rep), KF_ESTATE);
	kf_msg_free(rep);
	req_init(&req, KF_MSG_GET_REQ);
	req.get_req.job_id = 999999;
	rep = rpc(&req, false);
	assert_int_equal(status_of(rep), KF_ENOENT);
	kf_msg_free(rep);
	drain_pending();
}

/* Protocol 1.1 complete with lease_next: one round trip reports a job and
 * leases the next; a resend gets the same job (no second claim); with
 * nothing pending the reply waits up to lease_next_wait_ms and carries no
 * job; without lease_next the reply never carries one. */
static void test_complete_with_next(void **state)
{
	struct kf_msg req, *l, *c, *again;
	uint64_t a, b, d, f, tok, t0, ms;

	(void)state;
	drain_pending();
	a = submit_job(0, 100);
	l = lease_job("w-next", a);
	tok = l->lease_rep.lease->lease_token;
	kf_msg_free(l);
	b = submit_job(0, 100);

	req_init(&req, KF_MSG_COMPLETE_REQ);
	req.complete_req = (struct kf_msg_complete_req){ .job_id = a, .lease_token = tok,
		.outcome = KF_JOB_SUCCEEDED, .lease_next = true, .lease_next_wait_ms = 0,
		.worker_id = "w-next" };
	c = rpc(&req, false);
	assert_int_equal(status_of(c), KF_OK);
	assert_false(c->complete_rep.drop);
	assert_non_null(c->complete_rep.lease);
	assert_int_equal(c->complete_rep.lease->job_id, b);
	assert_int_equal(c->complete_rep.lease->attempt, 1);
	assert_true(c->complete_rep.lease->lease_token != 0);
	assert_int_equal(c->complete_rep.lease->params.steps, 100);
	tok = c->complete_rep.lease->lease_token;
	again = rpc(&req, false); /* a resend: the same id */
	assert_int_equal(status_of(again), KF_OK);
	assert_non_null(again->complete_rep.lease);
	assert_int_equal(again->complete_rep.lease->job_id, b);
	assert_true(again->complete_rep.lease->lease_token == tok);
	kf_msg_free(again);
	kf_msg_free(c);
	assert_int_equal(job_state(a), KF_JOB_SUCCEEDED);
	assert_int_equal(job_state(b), KF_JOB_RUNNING);

	/* Nothing pending: the completion is stored, the reply waits for a
	 * job up to lease_next_wait_ms, then says "none". */
	req_init(&req, KF_MSG_COMPLETE_REQ);
	req.complete_req = (struct kf_msg_complete_req){ .job_id = b, .lease_token = tok,
		.outcome = KF_JOB_SUCCEEDED, .lease_next = true, .lease_next_wait_ms = 400,
		.worker_id = "w-next" };
	t0 = kf_clock_mono_ns();
	c = rpc(&req, false);
	ms = (kf_clock_mono_ns() - t0) / 1000000u;
	assert_int_equal(status_of(c), KF_OK);
	assert_null(c->complete_rep.lease);
	assert_true(ms >= 350);
	kf_msg_free(c);
	assert_int_equal(job_state(b), KF_JOB_SUCCEEDED);

	/* A stale completion is dropped; its claim still leases a job. */
	f = submit_job(0, 100);
	req_init(&req, KF_MSG_COMPLETE_REQ);
	req.complete_req = (struct kf_msg_complete_req){ .job_id = b, .lease_token = tok + 1,
		.outcome = KF_JOB_SUCCEEDED, .lease_next = true, .worker_id = "w-next" };
	c = rpc(&req, false);
	assert_true(c->complete_rep.drop);
	assert_non_null(c->complete_rep.lease);
	assert_int_equal(c->complete_rep.lease->job_id, f);
	tok = c->complete_rep.lease->lease_token;
	kf_msg_free(c);

	/* Without lease_next (a 1.0 worker): no job, though one is pending. */
	d = submit_job(0, 100);
	c = complete(f, tok, KF_JOB_SUCCEEDED, NULL);
	assert_int_equal(status_of(c), KF_OK);
	assert_null(c->complete_rep.lease);
	kf_msg_free(c);
	assert_int_equal(job_state(f), KF_JOB_SUCCEEDED);
	assert_int_equal(job_state(d), KF_JOB_PENDING);
	drain_pending();
}

/* The next raw message on a plain nng SUB that is a bundle, or NULL once
 * the monotonic clock passes deadline_ns; the caller frees it. */
static nng_msg *next_bundle(nng_socket raw, uint64_t deadline_ns)
{
	nng_msg *m;

	while (kf_clock_mono_ns() < deadline_ns) {
		if (nng_recvmsg(raw, &m, NNG_FLAG_NONBLOCK) != 0) {
			kf_sleep_ms(5);
			continue;
		}
		if (kf_bus_bundle_is(nng_msg_body(m), nng_msg_len(m)))
			return m;
		nng_msg_free(m);
	}
	return NULL;
}

static uint64_t in_ms(int ms)
{
	return kf_clock_mono_ns() + (uint64_t)ms * KF_NS_PER_MS;
}

/* A plain nng SUB on events that receives bundles only (no bus/), once
 * the broker's side has attached it: a dial completes before the publisher
 * adds the pipe. Each tick's metric update and cluster status travel as a
 * bundle, so the first one to arrive proves the connection. */
static nng_socket raw_bundles(void)
{
	nng_socket raw;
	nng_msg *m;

	assert_int_equal(nng_sub0_open(&raw), 0);
	assert_int_equal(nng_socket_set(raw, NNG_OPT_SUB_SUBSCRIBE, KF_BUS_BUNDLE_MAGIC,
		KF_BUS_BUNDLE_MAGIC_LEN), 0);
	assert_int_equal(nng_dial(raw, g_url[1], NULL, 0), 0);
	m = next_bundle(raw, in_ms(5000));
	assert_non_null(m);
	nng_msg_free(m);
	return raw;
}

/* A report that also claims the next job publishes two job events in one
 * turn of the loop: on the wire (a plain nng SUB, no bus/) they travel as
 * one bundle, succeeded then running, each part a whole message; a
 * subscriber through bus/ receives them as two messages. */
static void test_events_bundled(void **state)
{
	struct kf_msg req, *l, *c, *ev;
	struct kf_bus_bundle_iter it;
	struct kf_bus_part part;
	struct kf_bus_sub *sub;
	uint64_t a, b, tok;
	nng_socket raw;
	size_t found = 0;
	nng_msg *m;

	(void)state;
	drain_pending();
	raw = raw_bundles();
	sub = events_sub("job.", 4);
	a = submit_job(0, 100);
	l = lease_job("w-bundle", a);
	tok = l->lease_rep.lease->lease_token;
	kf_msg_free(l);
	b = submit_job(0, 100);
	for (uint64_t end = in_ms(300); (m = next_bundle(raw, end)) != NULL;)
		nng_msg_free(m); /* anything from before */
	while ((ev = kf_test_next_event(sub, "job.", 300)) != NULL)
		kf_msg_free(ev);

	req_init(&req, KF_MSG_COMPLETE_REQ);
	req.complete_req = (struct kf_msg_complete_req){ .job_id = a, .lease_token = tok,
		.outcome = KF_JOB_SUCCEEDED, .lease_next = true, .worker_id = "w-bundle" };
	c = rpc(&req, false);
	assert_int_equal(status_of(c), KF_OK);
	assert_non_null(c->complete_rep.lease);
	assert_int_equal(c->complete_rep.lease->job_id, b);
	tok = c->complete_rep.lease->lease_token;
	kf_msg_free(c);

	/* Other turns send bundles too (each tick's metric update and cluster
	 * status): look for the one that carries both events. */
	for (uint64_t end = in_ms(5000); found < 2 && (m = next_bundle(raw, end)) != NULL;) {
		found = 0;
		kf_bus_bundle_iter_init(&it, nng_msg_body(m), nng_msg_len(m));
		while (kf_bus_bundle_next(&it, &part) == KF_OK) {
			assert_int_equal(kf_msg_decode_pub(part.buf, part.len, &ev, NULL), KF_OK);
			if (ev->type == KF_MSG_JOB_EVENT && found == 0 && ev->job_event.job_id == a &&
			    ev->job_event.state == KF_JOB_SUCCEEDED)
				found++;
			else if (ev->type == KF_MSG_JOB_EVENT && found == 1 &&
				 ev->job_event.job_id == b && ev->job_event.state == KF_JOB_RUNNING)
				found++;
			kf_msg_free(ev);
		}
		nng_msg_free(m);
	}
	assert_int_equal(found, 2);

	/* Through bus/: the same two, one message each, in order. */
	ev = kf_test_next_event(sub, "job.", 2000);
	assert_non_null(ev);
	assert_int_equal(ev->job_event.job_id, a);
	assert_int_equal(ev->job_event.state, KF_JOB_SUCCEEDED);
	kf_msg_free(ev);
	ev = kf_test_next_event(sub, "job.", 2000);
	assert_non_null(ev);
	assert_int_equal(ev->job_event.job_id, b);
	assert_int_equal(ev->job_event.state, KF_JOB_RUNNING);
	kf_msg_free(ev);
	kf_bus_sub_free(sub);
	kf_bus_nng_close(raw);  /* nng 1.5.2 may never return from a receiving SUB */
	c = complete(b, tok, KF_JOB_SUCCEEDED, NULL);
	assert_int_equal(status_of(c), KF_OK);
	kf_msg_free(c);
}

static void expect_cancel(struct kf_bus_sub *sub, const char *prefix, uint64_t id,
	uint64_t token)
{
	struct kf_msg *cmd = kf_test_next_event(sub, prefix, 3000);

	assert_non_null(cmd);
	assert_int_equal(cmd->type, KF_MSG_COMMAND);
	assert_int_equal(cmd->command.action, KF_CMD_CANCEL);
	assert_int_equal(cmd->command.job_id, id);
	assert_int_equal(cmd->command.lease_token, token);
	assert_string_equal(cmd->command.worker_id, "w-kill");
	assert_false(cmd->command.drop);           /* an operator's kill: report it */
	kf_msg_free(cmd);
}

static void test_kill_running(void **state)
{
	struct kf_bus_sub *sub, *cmds;
	struct kf_msg req, *l, *rep;
	uint64_t id, token;

	(void)state;
	drain_pending();
	sub = events_sub("cmd.w-kill", strlen("cmd.w-kill"));
	/* Everything on the commands socket: the job events of the submit and
	 * the lease below must not be there, only the cancel. */
	cmds = kf_test_sub_on(g_url[3], "", 0);
	id = submit_job(0, 1000000);
	l = lease_job("w-kill", id);
	token = l->lease_rep.lease->lease_token;
	kf_msg_free(l);

	req_init(&req, KF_MSG_KILL_REQ);
	req.kill_req.job_id = id;
	rep = rpc(&req, true);
	assert_int_equal(status_of(rep), KF_OK);
	assert_int_equal(rep->kill_rep.state, KF_JOB_RUNNING); /* cancel requested */
	kf_msg_free(rep);

	expect_cancel(sub, "cmd.w-kill", id, token);
	expect_cancel(cmds, "", id, token);
	kf_bus_sub_free(sub);
	kf_bus_sub_free(cmds);

	rep = progress(id, token, 10);
	assert_int_equal(status_of(rep), KF_OK);
	assert_true(rep->progress_rep.cancel);
	kf_msg_free(rep);
	rep = complete(id, token, KF_JOB_KILLED, NULL);
	assert_int_equal(status_of(rep), KF_OK);
	kf_msg_free(rep);
	assert_int_equal(job_state(id), KF_JOB_KILLED);

	/* Retried, the job keeps the killed attempt's best until a new attempt
	 * starts; that one starts with no result and no best cost of its own. */
	req_init(&req, KF_MSG_RETRY_REQ);
	req.retry_req.job_id = id;
	rep = rpc(&req, true);
	assert_int_equal(status_of(rep), KF_OK);
	kf_msg_free(rep);
	rep = get_job(id);
	assert_non_null(rep->get_rep.job->result);
	assert_true(rep->get_rep.job->best_cost == 9.5);
	kf_msg_free(rep);
	l = lease_job("w-kill", id);
	token = l->lease_rep.lease->lease_token;
	assert_int_equal(l->lease_rep.lease->attempt, 2);
	kf_msg_free(l);
	rep = get_job(id);
	assert_int_equal(rep->get_rep.job->state, KF_JOB_RUNNING);
	assert_null(rep->get_rep.job->result);
	assert_true(rep->get_rep.job->best_cost == 0); /* none */
	kf_msg_free(rep);
	rep = complete(id, token, KF_JOB_SUCCEEDED, NULL);
	assert_int_equal(status_of(rep), KF_OK);
	kf_msg_free(rep);
	assert_int_equal(job_state(id), KF_JOB_SUCCEEDED);
}

struct poll_arg {
	struct kf_msg *rep;
	uint64_t elapsed_ms;
};

static void *long_poll(void *p)
{
	struct poll_arg *a = p;
	uint64_t t0 = kf_clock_mono_ns();

	struct kf_msg req;

	req_init(&req, KF_MSG_LEASE_REQ);
	req.lease_req.worker_id = "w-poll";
	req.lease_req.wait_ms = 4000;
	a->rep = rpc_try(&req, false, 4000 + 5000);
	a->elapsed_ms = (kf_clock_mono_ns() - t0) / 1000000u;
	return NULL;
}

static void test_lease_long_poll(void **state)
{
	struct poll_arg a = { 0 };
	struct kf_msg *rep, *keyed;
	pthread_t th;
	uint64_t id;

	(void)state;
	drain_pending();
	/* Nothing to lease: the request waits its whole wait_ms. */
	rep = lease("w-poll", 300);
	assert_null(rep->lease_rep.lease);
	kf_msg_free(rep);
	/* A submission wakes a parked lease at once. */
	assert_int_equal(pthread_create(&th, NULL, long_poll, &a), 0);
	kf_sleep_ms(400);
	id = submit_job(0, 10);
	pthread_join(th, NULL);
	assert_non_null(a.rep);
	assert_int_equal(status_of(a.rep), KF_OK);
	assert_non_null(a.rep->lease_rep.lease);
	assert_int_equal(a.rep->lease_rep.lease->job_id, id);
	assert_int_equal(a.rep->lease_rep.lease->attempt, 1);
	assert_true(a.elapsed_ms < 3500);  /* 400 ms, then a submit: not the 4 s wait */
	/* The claim behind the submit (one batch) is in the database too. */
	rep = get_job(id);
	assert_int_equal(rep->get_rep.job->state, KF_JOB_RUNNING);
	assert_string_equal(rep->get_rep.job->worker_id, "w-poll");
	kf_msg_free(rep);
	rep = complete(id, a.rep->lease_rep.lease->lease_token, KF_JOB_SUCCEEDED, NULL);
	assert_int_equal(status_of(rep), KF_OK);
	kf_msg_free(rep);
	kf_msg_free(a.rep);

	/* A submit that queues nothing new (its key names a job already)
	 * leaves the waiting lease waiting, for the next job. */
	rep = submit_keyed("poll-key", 10);
	assert_int_equal(status_of(rep), KF_OK);
	id = rep->submit_rep.job_id;
	kf_msg_free(rep);
	keyed = lease_job("w-poll", id);        /* the key's job, out of the way */
	memset(&a, 0, sizeof(a));
	assert_int_equal(pthread_create(&th, NULL, long_poll, &a), 0);
	kf_sleep_ms(400);
	rep = submit_keyed("poll-key", 10);
	assert_int_equal(status_of(rep), KF_OK);
	assert_true(rep->submit_rep.existing);
	kf_msg_free(rep);
	kf_sleep_ms(300);
	id = submit_job(0, 10);
	pthread_join(th, NULL);
	assert_int_equal(status_of(a.rep), KF_OK);
	assert_non_null(a.rep->lease_rep.lease);
	assert_int_equal(a.rep->lease_rep.lease->job_id, id);
	assert_true(a.elapsed_ms >= 700 && a.elapsed_ms < 3500);
	/* Both jobs end, so that no later test meets them running. */
	rep = complete(id, a.rep->lease_rep.lease->lease_token, KF_JOB_SUCCEEDED, NULL);
	assert_int_equal(status_of(rep), KF_OK);
	kf_msg_free(rep);
	rep = complete(keyed->lease_rep.lease->job_id, keyed->lease_rep.lease->lease_token,
		       KF_JOB_SUCCEEDED, NULL);
	assert_int_equal(status_of(rep), KF_OK);
	kf_msg_free(rep);
	kf_msg_free(keyed);
	kf_msg_free(a.rep);
}

/* ---- the rpc pool ---------------------------------------------------------- */

struct parked {
	struct kf_rpc_call *call;
	atomic_int done;
};

static void on_parked_done(void *arg, enum kf_err err, nng_msg *reply)
{
	struct parked *p = arg;

	(void)err;
	if (reply)
		nng_msg_free(reply);
	atomic_store(&p->done, 1);
}

/* Starts n lease long-polls of wait_ms from `worker` on cli, each on a
 * call of its own (so each holds a context of the broker's rpc socket). */
static void park_leases(struct kf_rpc_client *cli, struct parked *p, int n, const char *worker,
	uint32_t wait_ms)
{
	struct kf_rpc_call_opts o = { .timeout_ms = (nng_duration)wait_ms + 5000,
		.resend_ms = NNG_DURATION_INFINITE };

	for (int i = 0; i < n; i++) {
		struct kf_strbuf sb = KF_STRBUF_INIT;
		struct kf_msg req;
		struct kf_msg_req *h;

		req_init(&req, KF_MSG_LEASE_REQ);
		req.lease_req.worker_id = worker;
		req.lease_req.wait_ms = wait_ms;
		h = kf_msg_request_mut(&req);
		h->id.client = g_client_id;
		h->id.seq = next_seq();
		atomic_store(&p[i].done, 0);
		assert_int_equal(kf_msg_encode(&req, &sb), KF_OK);
		assert_int_equal(kf_rpc_call_new(cli, on_parked_done, &p[i], &p[i].call), KF_OK);
		assert_int_equal(kf_rpc_call_start(p[i].call, sb.buf, sb.len, &o), KF_OK);
		kf_strbuf_release(&sb);
	}
}

/* Waits for the n polls to end (their wait, or the broker's answer). */
static void unpark_leases(struct parked *p, int n)
{
	uint64_t t0 = kf_clock_mono_ns();

	for (int i = 0; i < n; i++) {
		while (!atomic_load(&p[i].done) && kf_clock_mono_ns() - t0 < 15 * 1000000000ull)
			kf_sleep_ms(10);
		assert_true(atomic_load(&p[i].done));
		kf_rpc_call_free(p[i].call);
	}
}

/* A list on cli, answered within ms: its status; -1 when no answer came. */
static int list_on(struct kf_rpc_client *cli, int ms)
{
	struct kf_rpc_call_opts o = { .timeout_ms = ms, .resend_ms = NNG_DURATION_INFINITE };
	struct kf_strbuf sb = KF_STRBUF_INIT;
	struct kf_msg req, *rep = NULL;
	nng_msg *m;
	int status = -1;

	req_init(&req, KF_MSG_LIST_REQ);
	req.list_req.limit = 1;
	kf_msg_request_mut(&req)->id.client = g_client_id;
	kf_msg_request_mut(&req)->id.seq = next_seq();
	assert_int_equal(kf_msg_encode(&req, &sb), KF_OK);
	if (kf_rpc_client_call(cli, sb.buf, sb.len, &o, &m) == KF_OK) {
		if (kf_msg_decode(nng_msg_body(m), nng_msg_len(m), &rep, NULL) == KF_OK &&
		    rep->type == KF_MSG_LIST_REP)
			status = (int)status_of(rep);
		kf_msg_free(rep);
		nng_msg_free(m);
	}
	kf_strbuf_release(&sb);
	return status;
}

/* More lease long-polls parked at once than the rpc socket starts with
 * contexts (64): its pool grows, so a list is answered at once rather than
 * when the polls end, and the metrics show the pool. */
static void test_rpc_pool_grows(void **state)
{
	enum { PARK = 150 };
	static struct parked p[PARK];
	struct kf_bus_sub *mets = events_sub("metric.broker", 13);

	(void)state;
	drain_pending();
	park_leases(g_cli, p, PARK, "w-pool", 4000);
	assert_true(broker_metric(mets, "keyforge_rpc_requests_in_flight", NULL, NULL, PARK) >=
		PARK);
	assert_int_equal(list_on(g_cli, 1500), KF_OK);
	assert_true(broker_metric(mets, "keyforge_rpc_contexts", NULL, NULL, PARK + 16) >=
		PARK + 16);
	unpark_leases(p, PARK);
	assert_int_equal(log_count("rpc contexts exhausted"), 0);
	kf_bus_sub_free(mets);
}

/* A drain request for `worker`, with or without the token. */
static struct kf_msg *drain(const char *worker, bool with_token)
{
	struct kf_msg req;

	req_init(&req, KF_MSG_DRAIN_REQ);
	req.drain_req.worker_id = worker;
	return rpc(&req, with_token);
}

static void expect_drain(struct kf_bus_sub *cmds, const char *worker)
{
	struct kf_msg *cmd = kf_test_next_event(cmds, "cmd.", 3000);

	assert_non_null(cmd);
	assert_int_equal(cmd->type, KF_MSG_COMMAND);
	assert_int_equal(cmd->command.action, KF_CMD_DRAIN);
	assert_string_equal(cmd->command.worker_id, worker);
	kf_msg_free(cmd);
}

/* keyforgectl drain: refused without the token, for an empty or unknown
 * worker; for a live one, the drain command goes out on the commands
 * socket, its parked lease is answered "no job" at once, and it gets no
 * job after (its leases are held, the pending job goes to another
 * worker). A heartbeat that does not say draining brings the command
 * again; a new process under the id is not drained. */
static void test_drain(void **state)
{
	static struct parked p[1];
	struct kf_bus_sub *cmds = kf_test_sub_on(g_url[3], "cmd.w-drain", 11);
	struct kf_msg *rep;
	uint64_t id, t0;

	(void)state;
	drain_pending();
	assert_int_equal(status_of(rep = drain("w-drain", false)), KF_EPERM);
	kf_msg_free(rep);
	assert_int_equal(status_of(rep = drain("", true)), KF_EINVAL);
	kf_msg_free(rep);
	assert_int_equal(status_of(rep = drain("w-nobody", true)), KF_ENOENT);
	assert_non_null(strstr(kf_msg_reply(rep)->error, "no worker 'w-nobody'"));
	kf_msg_free(rep);

	hello_as("w-drain", 301);
	kf_msg_free(lease_heard("w-drain", 301));   /* heard: alive, nothing pending */
	park_leases(g_cli, p, 1, "w-drain", 4000);
	kf_sleep_ms(300);
	rep = drain("w-drain", true);
	t0 = kf_clock_mono_ns();
	assert_int_equal(status_of(rep), KF_OK);
	assert_int_equal(rep->drain_rep.liveness, KF_WORKER_ALIVE);
	assert_int_equal(rep->drain_rep.leases_ended, 1);
	kf_msg_free(rep);
	while (!atomic_load(&p[0].done) && kf_clock_mono_ns() - t0 < 1000 * 1000000ull)
		kf_sleep_ms(10);
	assert_true(atomic_load(&p[0].done));      /* not after its 4 s */
	unpark_leases(p, 1);
	expect_drain(cmds, "w-drain");
	assert_true(wait_log("worker drain requested", 2000));

	/* Drained: a pending job is not for it. */
	id = submit_job(0, 10);
	rep = lease_as("w-drain", 301, 300);
	assert_int_equal(status_of(rep), KF_OK);
	assert_null(rep->lease_rep.lease);
	kf_msg_free(rep);
	assert_int_equal(job_state(id), KF_JOB_PENDING);
	/* Its heartbeat says idle, not draining: the command again. */
	heartbeat_of(g_hb_pub, "w-drain", 301, ++g_hb_seq, 0);
	expect_drain(cmds, "w-drain");

	/* A restart (301 silent, 302 registers): not drained, it gets the job. */
	kf_sleep_ms(3300);
	hello_as("w-drain", 302);
	rep = lease_heard("w-drain", 302);
	assert_int_equal(status_of(rep), KF_OK);
	assert_non_null(rep->lease_rep.lease);
	assert_int_equal(rep->lease_rep.lease->job_id, id);
	kf_msg_free(complete(id, rep->lease_rep.lease->lease_token, KF_JOB_SUCCEEDED, NULL));
	kf_msg_free(rep);
	assert_int_equal(job_state(id), KF_JOB_SUCCEEDED);
	kf_bus_sub_free(cmds);
}

/* A broker started with --rpc-contexts 16: 16 parked polls take every
 * context, a list waits unread until one of them ends, and the broker says
 * why (WARN "rpc contexts exhausted", the counter). */
static void test_rpc_pool_exhausted(void **state)
{
	enum { MAX = 16 };
	static struct parked p[MAX];
	const char *const extra[] = { "--rpc-contexts", "16", NULL };
	char urls[5][64], log2[160], token2[160];
	struct kf_rpc_client *cli;
	struct kf_bus_sub *mets;
	uint64_t t0;
	int status;
	pid_t pid;

	(void)state;
	for (int i = 0; i < 5; i++)
		snprintf(urls[i], sizeof(urls[i]), "tcp://127.0.0.1:%u", kf_test_free_port());
	snprintf(log2, sizeof(log2), "%s/small-pool.log", g_tmp);
	snprintf(token2, sizeof(token2), "%s/small-pool.token", g_tmp);
	pid = spawn_broker_with(urls, log2, token2, extra);
	assert_true(pid > 0);
	assert_int_equal(kf_rpc_client_new(&cli, urls[2], NULL, NULL), KF_OK);
	mets = kf_test_sub_on(urls[1], "metric.broker", 13);
	park_leases(cli, p, MAX, "w-small-pool", 3000);
	/* Unanswered while the polls hold every context (for 3 s)... */
	t0 = kf_clock_mono_ns();
	assert_int_equal(list_on(cli, 1500), -1);
	assert_true(kf_clock_mono_ns() - t0 >= 1400 * 1000000ull);
	assert_true(broker_metric(mets, "keyforge_rpc_contexts_exhausted_total", NULL, NULL, 1) >= 1);
	assert_true(broker_metric(mets, "keyforge_rpc_contexts", NULL, NULL, MAX) == MAX);
	assert_int_equal(log_count_in(log2, "rpc contexts exhausted"), 1);
	unpark_leases(p, MAX);
	/* ... and answered once they have ended. */
	assert_int_equal(list_on(cli, 1500), KF_OK);
	kf_bus_sub_free(mets);
	kf_rpc_client_free(cli);
	kill(pid, SIGTERM);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void *fenced_poll(void *p)
{
	struct poll_arg *a = p;

	struct kf_msg req;

	req_init(&req, KF_MSG_LEASE_REQ);
	req.lease_req = (struct kf_msg_lease_req){ .worker_id = "w-fence", .wait_ms = 6000,
		.incarnation = 101 };
	a->rep = rpc_try(&req, false, 6000 + 5000);
	return NULL;
}

/* The silent-worker fence. w-silent says hello and sends no heartbeat: 10 s
 * on it is dead here and would have its jobs requeued. A lease from it is
 * refused (KF_ESTATE, the reason names the ingest address) and a pending
 * job stays pending; the refusal is logged and counted. A heartbeat makes
 * it alive again, and its next lease claims the job. */
static void test_silent_worker_fence(void **state)
{
	struct kf_bus_sub *mets = events_sub("metric.broker", 13);
	struct kf_bus_pub *pub = ingest_pub();
	struct kf_msg *l, *c;
	uint64_t j;

	(void)state;
	drain_pending();
	hello("w-silent");
	for (int i = 0; i < 150 && liveness_of("w-silent") != KF_WORKER_DEAD; i++)
		kf_sleep_ms(100);
	assert_int_equal(liveness_of("w-silent"), KF_WORKER_DEAD);
	j = submit_job(0, 10);
	l = lease_as("w-silent", 77, 0);
	assert_int_equal(status_of(l), KF_ESTATE);
	assert_null(l->lease_rep.lease);
	assert_non_null(strstr(kf_msg_reply(l)->error, "ingest address"));
	kf_msg_free(l);
	assert_int_equal(job_state(j), KF_JOB_PENDING);
	assert_true(wait_log("lease refused: no heartbeat from the worker", 2000));
	assert_true(broker_metric(mets, "keyforge_rpc_leases_refused_total", "reason", "silent",
				  1) >= 1);
	heartbeat(pub, "w-silent", 1, 0);
	for (int i = 0; i < 50 && liveness_of("w-silent") != KF_WORKER_ALIVE; i++)
		kf_sleep_ms(20);
	l = lease_as("w-silent", 77, 0);
	assert_int_equal(status_of(l), KF_OK);
	assert_non_null(l->lease_rep.lease);
	assert_int_equal(l->lease_rep.lease->job_id, j);
	/* Finished here: w-silent stays silent, and its job would otherwise be
	 * requeued ~10 s on, into a later test's drained queue. */
	c = complete(j, l->lease_rep.lease->lease_token, KF_JOB_SUCCEEDED, NULL);
	assert_int_equal(status_of(c), KF_OK);
	kf_msg_free(c);
	kf_msg_free(l);
	kf_bus_sub_free(mets);
	kf_bus_pub_free(pub);
}

static void *unheard_poll(void *p)
{
	struct poll_arg *a = p;
	uint64_t t0 = kf_clock_mono_ns();
	struct kf_msg req;

	req_init(&req, KF_MSG_LEASE_REQ);
	req.lease_req = (struct kf_msg_lease_req){ .worker_id = "w-unheard", .wait_ms = 5000,
		.incarnation = 77 };
	a->rep = rpc_try(&req, false, 5000 + 5000);
	a->elapsed_ms = (kf_clock_mono_ns() - t0) / 1000000u;
	return NULL;
}

/* The time before the silent-worker fence: w-unheard said hello, and no
 * heartbeat of it has arrived (one that cannot reach ingest never would),
 * so though not dead yet it gets no job: a lease that does not wait gets
 * none with a job pending, a long poll is held. Its first heartbeat wakes
 * the long poll, which claims the job. */
static void test_unheard_worker_held(void **state)
{
	struct kf_bus_pub *pub = ingest_pub();
	struct kf_msg_worker_status st;
	struct poll_arg a = { 0 };
	struct kf_msg *l;
	pthread_t th;
	uint64_t j;

	(void)state;
	drain_pending();
	hello("w-unheard");
	j = submit_job(0, 10);
	l = lease_as("w-unheard", 77, 0);
	assert_int_equal(status_of(l), KF_OK);
	assert_null(l->lease_rep.lease);
	kf_msg_free(l);
	assert_int_equal(pthread_create(&th, NULL, unheard_poll, &a), 0);
	kf_sleep_ms(1500);
	assert_int_equal(job_state(j), KF_JOB_PENDING);
	assert_true(wait_log("lease held: no heartbeat from the worker yet", 2000));
	/* What keyforgectl workers and the admin's Cluster Map say. */
	assert_true(worker_status("w-unheard", &st));
	assert_int_equal(st.liveness, KF_WORKER_ALIVE);
	assert_true(st.unheard);
	heartbeat(pub, "w-unheard", 1, 0);
	pthread_join(th, NULL);
	assert_true(worker_status("w-unheard", &st));
	assert_false(st.unheard);
	assert_non_null(a.rep);
	assert_int_equal(status_of(a.rep), KF_OK);
	assert_non_null(a.rep->lease_rep.lease);
	assert_int_equal(a.rep->lease_rep.lease->job_id, j);
	assert_true(a.elapsed_ms < 4500);          /* woken, not the end of its 5 s wait */
	l = complete(j, a.rep->lease_rep.lease->lease_token, KF_JOB_SUCCEEDED, NULL);
	assert_int_equal(status_of(l), KF_OK);
	kf_msg_free(l);
	kf_msg_free(a.rep);
	kf_bus_pub_free(pub);
}

static void *tick_poll(void *p)
{
	struct poll_arg *a = p;
	uint64_t t0 = kf_clock_mono_ns();

	a->rep = lease_as("w-tick", 77, 8000);
	a->elapsed_ms = (kf_clock_mono_ns() - t0) / 1000000u;
	return NULL;
}

/* A job that became claimable without a wake here (another broker's, or
 * one written in SQL) is found by the tick within a second, even when a
 * wake earlier found only a held lease and left its budget unspent: the
 * tick used to look only when the budget was zero, and the parked lease
 * waited out its whole wait. */
static void test_tick_looks_despite_leftover_budget(void **state)
{
	struct poll_arg held = { 0 }, a = { 0 };
	pthread_t th_held, th;
	char out[64];
	struct kf_msg *l;
	uint64_t j;

	(void)state;
	drain_pending();
	hello("w-tick");
	l = lease_heard("w-tick", 77);              /* heard; nothing pending */
	assert_int_equal(status_of(l), KF_OK);
	assert_null(l->lease_rep.lease);
	kf_msg_free(l);
	hello("w-unheard");                         /* no heartbeat: its lease is held */
	assert_int_equal(pthread_create(&th_held, NULL, unheard_poll, &held), 0);
	assert_true(wait_log("lease held: no heartbeat from the worker yet", 3000));
	kill_job(submit_job(0, 10));                /* its wake finds only the held lease */
	assert_int_equal(pthread_create(&th, NULL, tick_poll, &a), 0);
	kf_sleep_ms(300);                           /* parked, with the budget unspent */
	psql("INSERT INTO jobs (max_attempts, attempt_limit, params) VALUES (3, 3, "
	     "jsonb_build_object('corpus', 'shai', 'steps', 1)) RETURNING id", out, sizeof out);
	j = strtoull(out, NULL, 10);
	pthread_join(th, NULL);
	assert_non_null(a.rep);
	assert_int_equal(status_of(a.rep), KF_OK);
	assert_non_null(a.rep->lease_rep.lease);
	assert_int_equal(a.rep->lease_rep.lease->job_id, j);
	assert_true(a.elapsed_ms < 5000);           /* a tick, not the end of its 8 s wait */
	l = complete(j, a.rep->lease_rep.lease->lease_token, KF_JOB_SUCCEEDED, NULL);
	assert_int_equal(status_of(l), KF_OK);
	kf_msg_free(l);
	kf_msg_free(a.rep);
	pthread_join(th_held, NULL);
	kf_msg_free(held.rep);
}

/* The lease fence (protocol 1.2). Process 101 of w-fence parks a lease and
 * goes silent; after 3 s process 202 registers under the id. The job
 * submitted next wakes 101's parked lease, which is refused (KF_EBUSY)
 * instead of claiming it; so is a new lease from 101, and the claim of a
 * complete with lease_next from 101 (its completion stands). 202 gets
 * both jobs. */
static void test_lease_fence(void **state)
{
	struct kf_bus_sub *mets = events_sub("metric.broker", 13);
	struct poll_arg a = { 0 };
	struct kf_msg req, *l, *c;
	uint64_t j1, j2;
	pthread_t th;

	(void)state;
	drain_pending();
	hello_as("w-fence", 101);
	assert_int_equal(pthread_create(&th, NULL, fenced_poll, &a), 0);
	kf_sleep_ms(3300);                     /* 101 silent for 3 heartbeat intervals */
	hello_as("w-fence", 202);              /* a restart: the id is 202's now */
	j1 = submit_job(0, 10);
	pthread_join(th, NULL);
	assert_non_null(a.rep);
	assert_int_equal(status_of(a.rep), KF_EBUSY);
	assert_null(a.rep->lease_rep.lease);
	kf_msg_free(a.rep);
	assert_true(wait_log("lease refused: worker id held by another process", 2000));

	l = lease_as("w-fence", 101, 0);
	assert_int_equal(status_of(l), KF_EBUSY);
	kf_msg_free(l);
	/* 202 said hello but was never heard: held, no job for a lease that
	 * does not wait, though j1 is pending. */
	l = lease_as("w-fence", 202, 0);
	assert_int_equal(status_of(l), KF_OK);
	assert_null(l->lease_rep.lease);
	kf_msg_free(l);
	assert_int_equal(job_state(j1), KF_JOB_PENDING);
	l = lease_heard("w-fence", 202);       /* heard: its lease claims */
	assert_int_equal(status_of(l), KF_OK);
	assert_non_null(l->lease_rep.lease);
	assert_int_equal(l->lease_rep.lease->job_id, j1);

	j2 = submit_job(0, 10);
	req_init(&req, KF_MSG_COMPLETE_REQ);
	req.complete_req = (struct kf_msg_complete_req){ .job_id = j1,
		.lease_token = l->lease_rep.lease->lease_token, .outcome = KF_JOB_SUCCEEDED,
		.lease_next = true, .worker_id = "w-fence", .incarnation = 101 };
	c = rpc(&req, false);
	assert_int_equal(status_of(c), KF_OK);
	assert_false(c->complete_rep.drop);
	assert_null(c->complete_rep.lease);
	kf_msg_free(c);
	kf_msg_free(l);
	assert_int_equal(job_state(j1), KF_JOB_SUCCEEDED);
	assert_int_equal(job_state(j2), KF_JOB_PENDING);
	l = lease_as("w-fence", 202, 0);
	assert_int_equal(status_of(l), KF_OK);
	assert_non_null(l->lease_rep.lease);
	assert_int_equal(l->lease_rep.lease->job_id, j2);
	c = complete(j2, l->lease_rep.lease->lease_token, KF_JOB_SUCCEEDED, NULL);
	assert_int_equal(status_of(c), KF_OK);
	kf_msg_free(c);
	kf_msg_free(l);
	/* The parked lease, the new lease and the complete's claim of 101. */
	assert_true(broker_metric(mets, "keyforge_rpc_leases_refused_total", "reason", "replaced",
				  3) >= 3);
	kf_bus_sub_free(mets);
}

/* A new job, leased by `worker` and reported failed: retrying (its first
 * backoff, 0.5-1 s). Its id. */
static uint64_t fail_once(const char *worker)
{
	uint64_t id = submit_job(0, 10);
	struct kf_msg *l = lease_job(worker, id);
	struct kf_msg *rep = complete(id, l->lease_rep.lease->lease_token, KF_JOB_FAILED,
				      "corpus not found");

	assert_int_equal(status_of(rep), KF_OK);
	kf_msg_free(rep);
	kf_msg_free(l);
	assert_int_equal(job_state(id), KF_JOB_RETRYING);
	return id;
}

static void test_failure_retries(void **state)
{
	struct kf_msg *rep;
	uint64_t id;

	(void)state;
	drain_pending();
	id = fail_once("w-fail");
	assert_true(wait_log("job retrying", 2000));
	rep = get_job(id);
	assert_true(rep->get_rep.job->n_errors >= 1);
	assert_non_null(strstr(rep->get_rep.job->errors[0].message, "corpus not found"));
	kf_msg_free(rep);
	/* A job waiting for its backoff is killed at once. */
	assert_int_equal(kill_job(id), KF_JOB_KILLED);
}

#define SP_REQ 0x30  /* nng's protocol numbers, in the SP header */
#define SP_SUB 0x21

/* A peer of protocol `proto` speaking nng's TCP framing by hand on the
 * broker's socket at url (a REQ socket would keep resending the message):
 * the SP header, then a frame that claims 1 GiB. True when the broker
 * closed the connection instead of reading it. */
static bool raw_oversized_frame(const char *url, unsigned char proto)
{
	const unsigned char sp_hdr[8] = { 0, 'S', 'P', 0, 0x00, proto, 0, 0 };
	static const unsigned char frame[8] = { 0, 0, 0, 0, 0x40, 0, 0, 0 };
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	unsigned char buf[4096];
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	unsigned port = (unsigned)atoi(strrchr(url, ':') + 1);
	struct timeval tv = { 5, 0 };
	bool closed = false;
	ssize_t n;

	a.sin_port = htons((uint16_t)port);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
		return false;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (write(fd, sp_hdr, 8) != 8 || read(fd, buf, 8) != 8 || write(fd, frame, 8) != 8) {
		close(fd);
		return false;
	}
	memset(buf, 0, sizeof(buf));
	for (int i = 0; i < 64 && !closed; i++)
		closed = write(fd, buf, sizeof(buf)) < 0 && (errno == EPIPE || errno == ECONNRESET);
	if (!closed) {
		n = read(fd, buf, sizeof(buf)); /* EOF: the broker hung up; a timeout: it did not */
		closed = n == 0 || (n < 0 && errno == ECONNRESET);
	}
	close(fd);
	return closed;
}

static void test_malformed_rpc(void **state)
{
	static const unsigned char garbage[] = { 0xdd, 0xff, 0xff, 0xff, 0xff }; /* array of 4e9 */
	struct kf_msg *rep;
	size_t big = (4u << 20) + 4096;
	unsigned char *huge;

	(void)state;
	rep = rpc_raw(garbage, sizeof(garbage), 3000);
	assert_non_null(rep);
	assert_int_equal(rep->type, KF_MSG_ERROR_REP);
	assert_int_equal(rep->error_rep.rep.status, KF_ETRUNCATED);
	kf_msg_free(rep);
	rep = rpc_raw("hello", 5, 3000);
	assert_non_null(rep);
	assert_int_equal(rep->type, KF_MSG_ERROR_REP);
	assert_true(rep->error_rep.rep.status != KF_OK);
	kf_msg_free(rep);
	/* Above the protocol's limit but within what nng delivers: refused. */
	huge = calloc(1, big);
	assert_non_null(huge);
	rep = rpc_raw(huge, big, 5000);
	assert_non_null(rep);
	assert_int_equal(rep->error_rep.rep.status, KF_ETOOBIG);
	kf_msg_free(rep);
	free(huge);
	/* Far above: nng drops the connection; the broker keeps serving. */
	assert_true(raw_oversized_frame(g_url[2], SP_REQ));
	assert_int_equal(liveness_of("nobody"), -1);
	assert_true(wait_log("malformed request refused", 2000));
}

/* The broker's PUB sockets (events, commands, monitor) read nothing from
 * their subscribers, but nng does read their frames: one that claims 1 GiB
 * closes that connection, and everyone else goes on being served. */
static void test_oversized_on_pub_sockets(void **state)
{
	struct kf_bus_sub *mon = kf_test_sub_on(g_url[4], "metric.broker", 13);
	struct kf_msg *m;

	(void)state;
	assert_true(raw_oversized_frame(g_url[1], SP_SUB));
	assert_true(raw_oversized_frame(g_url[3], SP_SUB));
	assert_true(raw_oversized_frame(g_url[4], SP_SUB));
	assert_int_equal(liveness_of("nobody"), -1);   /* rpc answers */
	assert_non_null(m = kf_test_next_event(mon, "metric.broker", 3000));
	kf_msg_free(m);
	kf_bus_sub_free(mon);
}

/* A worker's bundle of five log lines on ingest (as a 1.8 worker sends
 * them) is read as five messages and forwarded on events as one bundle,
 * in order, with the worker's own sequence numbers. */
static void test_ingest_bundles(void **state)
{
	struct kf_bus_pub *pub = ingest_pub();
	struct kf_strbuf sb[5];
	struct kf_bus_part parts[5];
	struct kf_bus_bundle_iter it;
	struct kf_bus_part part;
	char topic[KF_TOPIC_SIZE];
	struct kf_msg m, *ev;
	nng_socket raw;
	uint64_t want = 2;
	nng_msg *b;

	(void)state;
	raw = raw_bundles();
	heartbeat(pub, "w-bundled", 1, 0);
	for (int i = 0; i < 50 && liveness_of("w-bundled") != KF_WORKER_ALIVE; i++)
		kf_sleep_ms(50);
	kf_topic_log(topic, KF_MSG_LEVEL_INFO, "w-bundled");
	for (int i = 0; i < 5; i++) {
		kf_msg_init(&m, KF_MSG_LOG, "w-bundled", 2 + (uint64_t)i);
		m.log = (struct kf_msg_log){ .level = KF_MSG_LEVEL_INFO, .target = "t",
			.message = "bundled line" };
		sb[i] = (struct kf_strbuf)KF_STRBUF_INIT;
		assert_int_equal(kf_msg_encode_pub(topic, &m, &sb[i]), KF_OK);
		parts[i] = (struct kf_bus_part){ sb[i].buf, sb[i].len };
	}
	assert_int_equal(kf_bus_pub_send_parts(pub, parts, 5, 64, NULL), KF_OK);

	/* The broker's own events come in bundles too: find the one with ours. */
	for (uint64_t end = in_ms(5000); want < 7 && (b = next_bundle(raw, end)) != NULL;) {
		kf_bus_bundle_iter_init(&it, nng_msg_body(b), nng_msg_len(b));
		while (kf_bus_bundle_next(&it, &part) == KF_OK) {
			assert_int_equal(kf_msg_decode_pub(part.buf, part.len, &ev, NULL), KF_OK);
			if (ev->type == KF_MSG_LOG && !strcmp(ev->sender, "w-bundled")) {
				assert_int_equal(ev->seq, want);
				assert_string_equal(ev->log.message, "bundled line");
				want++;
			}
			kf_msg_free(ev);
		}
		nng_msg_free(b);
	}
	assert_int_equal(want, 7);
	for (int i = 0; i < 5; i++)
		kf_strbuf_release(&sb[i]);
	kf_bus_nng_close(raw);  /* nng 1.5.2 may never return from a receiving SUB */
	kf_bus_pub_free(pub);
}

static void test_ingest(void **state)
{
	struct kf_bus_sub *logs = events_sub("log.", 4), *mets = events_sub("metric.broker", 13);
	struct kf_bus_pub *pub = ingest_pub();
	char topic[KF_TOPIC_SIZE];
	struct kf_msg m, *ev, req, *rep;
	double rl;
	bool found = false;

	(void)state;
	/* Garbage and an oversized message are counted and dropped. */
	assert_int_equal(kf_bus_pub_send(pub, "log.INFO.x", 11, "\xc1\xc1", 2), KF_OK);
	{
		size_t n = (1u << 20) + 1024;
		char *big = calloc(1, n);

		assert_non_null(big);
		assert_int_equal(kf_bus_pub_send(pub, "log.INFO.x", 11, big, n), KF_OK);
		free(big);
	}
	heartbeat(pub, "w-ingest", 1, 0);
	for (int i = 0; i < 50 && liveness_of("w-ingest") != KF_WORKER_ALIVE; i++)
		kf_sleep_ms(50);
	assert_int_equal(liveness_of("w-ingest"), KF_WORKER_ALIVE);

	kf_msg_init(&m, KF_MSG_LOG, "w-ingest", 2);
	m.log = (struct kf_msg_log){ .level = KF_MSG_LEVEL_WARN, .target = "keyforge::worker",
		.message = "hello from the worker" };
	kf_topic_log(topic, KF_MSG_LEVEL_WARN, "w-ingest");
	publish(pub, topic, &m);
	ev = kf_test_next_event(logs, "log.WARN.w-ingest", 3000);
	assert_non_null(ev);
	assert_string_equal(ev->log.message, "hello from the worker");
	assert_string_equal(ev->sender, "w-ingest");
	kf_msg_free(ev);

	/* The log tail has it too, for late subscribers. */
	req_init(&req, KF_MSG_LOG_TAIL_REQ);
	req.log_tail_req = (struct kf_msg_log_tail_req){ .count = 50,
		.min_level = KF_MSG_LEVEL_WARN, .source = "w-ingest" };
	rep = rpc(&req, false);
	assert_int_equal(status_of(rep), KF_OK);
	for (size_t i = 0; i < rep->log_tail_rep.n_events; i++)
		found |= !strcmp(rep->log_tail_rep.events[i].message, "hello from the worker");
	assert_true(found);
	kf_msg_free(rep);

	/* A sequence gap of 5 (seq 3..7 lost), then a flood over the rate. */
	kf_msg_init(&m, KF_MSG_LOG, "w-ingest", 8);
	m.log = (struct kf_msg_log){ .level = KF_MSG_LEVEL_INFO, .target = "t", .message = "x" };
	kf_topic_log(topic, KF_MSG_LEVEL_INFO, "w-ingest");
	publish(pub, topic, &m);
	for (uint64_t s = 9; s < 9 + 4 * BURST; s++) {
		m.seq = s;
		publish(pub, topic, &m);
	}
	assert_true(wait_log("rate limit exceeded", 3000));
	rl = broker_metric(mets, "keyforge_bus_rate_limited_total", "source", "w-ingest", BURST);
	assert_true(rl >= BURST);
	assert_true(broker_metric(mets, "keyforge_bus_sequence_gaps_total", "source", "w-ingest",
				  5) == 5);
	assert_true(broker_metric(mets, "keyforge_bus_decode_errors_total", "socket", "ingest",
				  1) >= 1);
	assert_true(broker_metric(mets, "keyforge_worker_heartbeats", NULL, NULL, 1) >= 1);
	assert_true(broker_metric(mets, "keyforge_bus_dropped_total", "reason", "oversized", 1) == 1);
	/* The refused requests of the earlier tests are counted too. */
	assert_true(kf_test_broker_metric(mets, "keyforge_rpc_requests_total", "method", "submit",
				   "status", "perm", 2) >= 2);
	assert_true(kf_test_broker_metric(mets, "keyforge_bus_decode_errors_total", "socket", "rpc",
				   "kind", "toobig", 1) >= 1);
	assert_int_equal(log_count("rate limit exceeded"), 1); /* once per source per interval */
	/* The broker's own events travel the same way, under source "broker". */
	ev = kf_test_next_event(logs, "log.WARN.broker", 3000);
	assert_non_null(ev);
	assert_string_equal(ev->sender, "broker");
	kf_msg_free(ev);
	req_init(&req, KF_MSG_LOG_TAIL_REQ);
	req.log_tail_req = (struct kf_msg_log_tail_req){ .count = 1000,
		.min_level = KF_MSG_LEVEL_INFO, .source = "broker" };
	rep = rpc(&req, false);
	assert_int_equal(status_of(rep), KF_OK);
	found = false;
	for (size_t i = 0; i < rep->log_tail_rep.n_events; i++) {
		assert_string_equal(rep->log_tail_rep.events[i].source, "broker");
		found |= !strcmp(rep->log_tail_rep.events[i].message, "server started");
	}
	assert_true(found);
	kf_msg_free(rep);
	kf_bus_pub_free(pub);
	kf_bus_sub_free(logs);
	kf_bus_sub_free(mets);
}

/* Two rules of the relay. A log event names its sender as its source: one
 * that claims another's (the broker's) is dropped, so that nobody speaks as
 * the broker to keyforgectl logs --source broker. And the contract's
 * keyforge_worker_heartbeats counts every heartbeat received, those over
 * the rate limit too (docs/operations.md); it counted only those let
 * through. */
static void test_ingest_source_and_heartbeats(void **state)
{
	struct kf_bus_sub *logs = events_sub("log.", 4), *mets = events_sub("metric.broker", 13);
	struct kf_bus_pub *pub = ingest_pub();
	char topic[KF_TOPIC_SIZE];
	struct kf_msg m, *ev, req, *rep;
	double before, after;

	(void)state;
	kf_msg_init(&m, KF_MSG_LOG, "w-forger", 1);
	m.log = (struct kf_msg_log){ .level = KF_MSG_LEVEL_ERROR, .target = "keyforge::broker",
		.source = "broker", .message = "FORGED: database connection failed" };
	kf_topic_log(topic, KF_MSG_LEVEL_ERROR, "w-forger");
	publish(pub, topic, &m);
	m.seq = 2;
	m.log.source = "w-forger";
	m.log.message = "genuine";
	publish(pub, topic, &m);
	ev = kf_test_next_event(logs, "log.ERROR.w-forger", 3000);
	assert_non_null(ev);
	assert_string_equal(ev->log.message, "genuine");   /* the first never came */
	kf_msg_free(ev);
	req_init(&req, KF_MSG_LOG_TAIL_REQ);
	req.log_tail_req = (struct kf_msg_log_tail_req){ .count = 1000,
		.min_level = KF_MSG_LEVEL_ERROR };
	rep = rpc(&req, false);
	assert_int_equal(status_of(rep), KF_OK);
	for (size_t i = 0; i < rep->log_tail_rep.n_events; i++)
		assert_null(strstr(rep->log_tail_rep.events[i].message, "FORGED"));
	kf_msg_free(rep);

	before = broker_metric(mets, "keyforge_worker_heartbeats", NULL, NULL, 0);
	for (uint64_t seq = 1; seq <= 100; seq++)       /* 20/s with a burst of 40 let through */
		heartbeat(pub, "w-hbflood", seq, 0);
	after = broker_metric(mets, "keyforge_worker_heartbeats", NULL, NULL, before + 100);
	assert_true(after >= before + 100);
	kf_bus_pub_free(pub);
	kf_bus_sub_free(logs);
	kf_bus_sub_free(mets);
}

/* The monitor socket (bus/addr.h) carries metric updates and the cluster
 * status — the broker's own and the workers' relayed ones — and nothing
 * else: a job's events and a worker's log line go out on events only. The
 * gateway reads it, so that it is not sent every job event of the hive. */
static void test_monitor_socket(void **state)
{
	struct kf_bus_sub *mon = kf_test_sub_on(g_url[4], "", 0);
	struct kf_bus_sub *ev = events_sub("", 0);
	struct kf_bus_pub *pub = ingest_pub();
	char topic[KF_TOPIC_SIZE], job_topic[KF_TOPIC_SIZE], other[KF_TOPIC_SIZE] = "";
	int own_metrics = 0, relayed = 0, status = 0, others = 0;
	bool job_seen = false, log_seen = false;
	struct kf_msg m, *got;
	uint64_t id, end;

	(void)state;
	heartbeat(pub, "w-mon", 1, 0);
	metric_update(pub, "w-mon", 2, 77, 5);
	kf_msg_init(&m, KF_MSG_LOG, "w-mon", 3);
	m.log = (struct kf_msg_log){ .level = KF_MSG_LEVEL_INFO, .target = "keyforge::worker",
		.message = "a line for events only" };
	kf_topic_log(topic, KF_MSG_LEVEL_INFO, "w-mon");
	publish(pub, topic, &m);
	id = submit_job(0, 1000);
	kf_topic_job(job_topic, id);

	/* The broker publishes its metrics and the cluster status every second. */
	end = kf_clock_mono_ns() + 3500 * KF_NS_PER_MS;
	while (kf_clock_mono_ns() < end && (!own_metrics || !relayed || !status)) {
		if (!(got = kf_test_next_event(mon, "", 200)))
			continue;
		if (!strcmp(got->topic, "metric.broker"))
			own_metrics++;
		else if (!strcmp(got->topic, "metric.w-mon"))
			relayed++;
		else if (!strcmp(got->topic, KF_TOPIC_STATUS_CLUSTER))
			status++;
		else if (strncmp(got->topic, KF_TOPIC_METRIC, strlen(KF_TOPIC_METRIC)) &&
			 others++ == 0)
			snprintf(other, sizeof other, "%s", got->topic);
		kf_msg_free(got);
	}
	fprintf(stderr, "# monitor: %d broker metric updates, %d relayed, %d cluster status, "
		"%d others (%s)\n", own_metrics, relayed, status, others, other);
	assert_true(own_metrics >= 1);
	assert_int_equal(relayed, 1);
	assert_true(status >= 1);
	assert_int_equal(others, 0);

	/* events had the job's event and the log line all along. */
	end = kf_clock_mono_ns() + 3000 * KF_NS_PER_MS;
	while (kf_clock_mono_ns() < end && (!job_seen || !log_seen)) {
		if (!(got = kf_test_next_event(ev, "", 200)))
			continue;
		job_seen |= !strcmp(got->topic, job_topic);
		log_seen |= !strcmp(got->topic, topic) && !strcmp(got->log.message,
								   "a line for events only");
		kf_msg_free(got);
	}
	assert_true(job_seen);
	assert_true(log_seen);
	kf_bus_pub_free(pub);
	kf_bus_sub_free(ev);
	kf_bus_sub_free(mon);
}

static void test_worker_death_requeues(void **state)
{
	struct kf_bus_pub *pub = ingest_pub();
	struct kf_bus_sub *cmds = events_sub("cmd.w-dies", strlen("cmd.w-dies"));
	struct kf_msg *l, *rep, *cmd;
	uint64_t id, token;
	char line[64];

	(void)state;
	drain_pending();
	id = submit_job(0, 10);
	heartbeat(pub, "w-dies", 1, 0);
	l = lease_job("w-dies", id);
	token = l->lease_rep.lease->lease_token;
	kf_msg_free(l);
	heartbeat(pub, "w-dies", 2, id);
	/* Silence: stale after 3 s, dead after 10 s, then the job is requeued. */
	for (int i = 0; i < 150 && job_state(id) == KF_JOB_RUNNING; i++)
		kf_sleep_ms(100);
	assert_int_equal(job_state(id), KF_JOB_PENDING);
	assert_int_equal(liveness_of("w-dies"), KF_WORKER_DEAD);
	/* This worker's lines, not an earlier test's; written by the broker's
	 * log thread, maybe a moment after the requeue is visible. */
	assert_true(wait_log("worker stale worker_id=\"w-dies\"", 2000));
	assert_true(wait_log("worker dead worker_id=\"w-dies\"", 2000));
	snprintf(line, sizeof line, "job retrying job_id=%llu ", (unsigned long long)id);
	assert_true(wait_log(line, 2000));
	/* The worker, should it still run the job, is told to drop it: the
	 * attempt is over, and no kill happened. */
	cmd = kf_test_next_event(cmds, "cmd.w-dies", 3000);
	assert_non_null(cmd);
	assert_int_equal(cmd->type, KF_MSG_COMMAND);
	assert_int_equal(cmd->command.action, KF_CMD_CANCEL);
	assert_int_equal(cmd->command.job_id, id);
	assert_int_equal(cmd->command.lease_token, token);
	assert_true(cmd->command.drop);
	assert_string_equal(cmd->command.reason, "worker dead");
	kf_msg_free(cmd);
	kf_bus_sub_free(cmds);
	/* The old lease is fenced off. */
	rep = progress(id, token, 5);
	assert_true(rep->progress_rep.drop);
	kf_msg_free(rep);
	l = lease_job("w-other", id);
	assert_int_equal(l->lease_rep.lease->attempt, 2);
	rep = complete(id, l->lease_rep.lease->lease_token, KF_JOB_SUCCEEDED, NULL);
	assert_int_equal(status_of(rep), KF_OK);
	kf_msg_free(rep);
	kf_msg_free(l);
	kf_bus_pub_free(pub);
}

/* A heartbeat of process 77 of `worker` (protocol 1.2) listing what it
 * holds: the n attempts in held. */
static bool heartbeat_holding(struct kf_bus_pub *pub, const char *worker, uint64_t seq,
	const struct kf_msg_held_job *held, size_t n)
{
	char topic[KF_TOPIC_SIZE];
	struct kf_msg m;

	kf_msg_init(&m, KF_MSG_HEARTBEAT, worker, seq);
	m.heartbeat = (struct kf_msg_heartbeat){ .worker_id = worker, .host = "testhost",
		.pid = 4242, .incarnation = 77, .state = n ? KF_WORKER_BUSY : KF_WORKER_IDLE,
		.slots_total = 2, .slots_busy = (uint32_t)n, .job_id = n ? held[0].job_id : 0,
		.held_listed = true, .held = held, .n_held = n };
	kf_topic_hb(topic, worker);
	return publish_ok(pub, topic, &m);
}

/* A lease that never reached its worker: the claim committed, the reply was
 * lost (the broker died in between). The worker, alive and the process
 * that claimed, lists what it holds in its heartbeats without that job; at
 * two checks in a row, the job claimed 10 s ago or more ends as "lost" and
 * is requeued. Another job it does hold stays running. */
static void test_lost_lease_requeued(void **state)
{
	struct kf_bus_pub *pub = ingest_pub();
	struct kf_msg_held_job held[1];
	struct kf_msg *l, *rep;
	uint64_t lost, kept, t0 = kf_clock_mono_ns();
	bool requeued = false;

	(void)state;
	drain_pending();
	lost = submit_job(0, 10);
	l = lease_job("w-lost", lost);           /* "never arrived" */
	kf_msg_free(l);
	kept = submit_job(0, 10);
	l = lease("w-lost", 0);
	assert_int_equal(l->lease_rep.lease->job_id, kept);
	held[0] = (struct kf_msg_held_job){ kept, l->lease_rep.lease->lease_token };
	kf_msg_free(l);
	for (uint64_t seq = 1; seq <= 40 && !requeued; seq++) {
		assert_true(heartbeat_holding(pub, "w-lost", seq, held, 1));
		kf_sleep_ms(1000);
		requeued = job_state(lost) == KF_JOB_PENDING;
	}
	assert_true(requeued);
	fprintf(stderr, "# requeued %llu ms after its claim\n",
		(unsigned long long)((kf_clock_mono_ns() - t0) / 1000000u));
	assert_true(log_has("lease lost: the worker does not hold its running job"));
	rep = get_job(lost);
	assert_int_equal(rep->get_rep.job->n_errors, 1);
	assert_non_null(strstr(rep->get_rep.job->errors[0].message, "lease lost"));
	kf_msg_free(rep);
	assert_int_equal(job_state(kept), KF_JOB_RUNNING);
	drain_pending();                          /* the requeued one */
	rep = complete(kept, held[0].lease_token, KF_JOB_SUCCEEDED, NULL);
	assert_int_equal(status_of(rep), KF_OK);
	kf_msg_free(rep);
	kf_bus_pub_free(pub);
}

/* A second process publishing with a live worker's id: its metric updates
 * are not forwarded (the gateway would take each for a restart of the
 * source and then ignore the live worker's as a retired incarnation's), and
 * its heartbeats are counted as dropped; the live worker's still flow. */
static void test_second_incarnation_metrics_dropped(void **state)
{
	struct kf_bus_sub *fwd = events_sub("metric.w-twin", 13);
	struct kf_bus_sub *mets = events_sub("metric.broker", 13);
	struct kf_bus_pub *pub = ingest_pub();
	struct kf_msg_heartbeat hb = { .worker_id = "w-twin", .host = "testhost", .pid = 4243,
		.incarnation = 78, .slots_total = 1 };
	char topic[KF_TOPIC_SIZE];
	struct kf_msg m, *got;
	int from_live = 0, from_twin = 0;

	(void)state;
	heartbeat(pub, "w-twin", 1, 0);                 /* incarnation 77: the live one */
	for (int i = 0; i < 50 && liveness_of("w-twin") != KF_WORKER_ALIVE; i++)
		kf_sleep_ms(20);
	assert_int_equal(liveness_of("w-twin"), KF_WORKER_ALIVE);
	kf_msg_init(&m, KF_MSG_HEARTBEAT, "w-twin", 2);
	m.heartbeat = hb;                               /* incarnation 78: the twin */
	kf_topic_hb(topic, "w-twin");
	publish(pub, topic, &m);
	metric_update(pub, "w-twin", 3, 78, 5);
	metric_update(pub, "w-twin", 4, 77, 10);
	while ((got = kf_test_next_event(fwd, "metric.w-twin", 1000))) {
		from_live += got->metric.incarnation == 77;
		from_twin += got->metric.incarnation == 78;
		kf_msg_free(got);
	}
	assert_int_equal(from_live, 1);
	assert_int_equal(from_twin, 0);
	/* One heartbeat and one metric update of the twin. */
	assert_true(broker_metric(mets, "keyforge_bus_dropped_total", "reason", "id_conflict", 2) >= 2);
	assert_true(wait_log("worker id in use", 2000));
	kf_bus_sub_free(fwd);
	kf_bus_sub_free(mets);
	kf_bus_pub_free(pub);
}

static void test_second_broker_refused(void **state)
{
	char log2[160], line[512];
	int status;
	pid_t pid;
	FILE *f;
	bool clear = false;

	(void)state;
	snprintf(log2, sizeof(log2), "%s/second.log", g_tmp);
	pid = spawn_broker(log2, "/dev/null/never-written");
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	assert_non_null(f = fopen(log2, "r"));
	while (fgets(line, sizeof(line), f))
		clear |= strstr(line, "already in use") != NULL;
	fclose(f);
	assert_true(clear);
	/* The first broker's token is untouched and it still serves. */
	assert_true(read_token());
	assert_int_equal(liveness_of("nobody"), -1);
}

/* Waits up to ms for pid to exit and returns its wait status; a process
 * still running then is killed and -1 returned (a broker that should have
 * refused to start fails the test instead of hanging it). */
static int exit_status_within(pid_t pid, int ms)
{
	int status;

	for (int waited = 0; waited < ms; waited += 50) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return status;
		kf_sleep_ms(50);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

/* A second broker on other addresses but the first one's token file: it
 * refuses to start instead of replacing the token the first one checks. */
static void test_second_broker_token_file(void **state)
{
	char log2[160], urls[5][64], before[80];
	struct kf_msg req, *rep;
	int status;
	pid_t pid;

	(void)state;
	assert_true(read_token());
	snprintf(before, sizeof(before), "%s", g_token);
	for (int i = 0; i < 5; i++)
		snprintf(urls[i], sizeof(urls[i]), "tcp://127.0.0.1:%u", kf_test_free_port());
	snprintf(log2, sizeof(log2), "%s/same-token.log", g_tmp);
	pid = spawn_broker_at(urls, log2, g_token_path);
	assert_true(pid > 0);
	status = exit_status_within(pid, 10000);   /* it waits 2 s for the lock */
	assert_int_not_equal(status, -1);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	assert_int_equal(log_count_in(log2, "belongs to another running broker"), 1);
	/* The token is the first broker's still, and it accepts it. */
	assert_true(read_token());
	assert_string_equal(g_token, before);
	req_init(&req, KF_MSG_KILL_REQ);
	req.kill_req.job_id = 999999999;
	rep = rpc(&req, true);
	assert_int_equal(status_of(rep), KF_ENOENT);    /* authorised: not KF_EPERM */
	kf_msg_free(rep);
}

/* Teardown of the tests that pause the database: a failed assertion in
 * the outage must not leave it down for every later test. */
static int resume_database(void **state)
{
	(void)state;
	return run_pgtmp("resume", NULL, 0) == 0 ? 0 : -1;
}

static void test_database_outage(void **state)
{
	struct kf_msg req, *rep = NULL;
	bool back = false;

	(void)state;
	assert_int_equal(run_pgtmp("pause", NULL, 0), 0);
	assert_true(wait_log("database connection failed", 8000));
	req_init(&req, KF_MSG_SUBMIT_REQ);
	req.submit_req.params = (struct kf_msg_job_params){ .corpus = "shai", .steps = 10 };
	rep = rpc(&req, true);
	assert_int_equal(status_of(rep), KF_EUNAVAIL);
	assert_non_null(strstr(kf_msg_reply(rep)->error, "database"));
	kf_msg_free(rep);
	/* Once per outage, not per request. */
	rep = rpc(&(struct kf_msg){ .type = KF_MSG_SUBMIT_REQ, .sender = "t",
		.submit_req.params = { .corpus = "shai" } }, true);
	kf_msg_free(rep);
	assert_int_equal(log_count("database connection failed"), 1);

	assert_int_equal(run_pgtmp("resume", NULL, 0), 0);
	assert_true(wait_log("database connection restored", 15000));
	for (int i = 0; i < 50 && !back; i++) {
		req_init(&req, KF_MSG_SUBMIT_REQ);
		req.submit_req.params = (struct kf_msg_job_params){ .corpus = "shai", .steps = 10 };
		rep = rpc(&req, true);
		back = status_of(rep) == KF_OK;
		kf_msg_free(rep);
		if (!back)
			kf_sleep_ms(200);
	}
	assert_true(back);
}

/* Heartbeats of a test worker, every 500 ms, on a thread of their own. */
struct hb_loop {
	struct kf_bus_pub *pub;
	const char *worker;
	struct kf_msg_held_job held[2];
	size_t n_held;
	atomic_bool stop;
	atomic_int failed;      /* asserted by the test's thread */
};

static void *hb_loop_main(void *arg)
{
	struct hb_loop *h = arg;

	for (uint64_t seq = 1; !atomic_load(&h->stop); seq++) {
		if (!heartbeat_holding(h->pub, h->worker, seq, h->held, h->n_held))
			atomic_fetch_add(&h->failed, 1);
		kf_sleep_ms(500);
	}
	return NULL;
}

/* Waits until the broker log has more lines with needle than `before`. */
static bool wait_log_more(const char *needle, int before, int ms)
{
	for (int t = 0; t < ms && log_count(needle) <= before; t += 50)
		kf_sleep_ms(50);
	return log_count(needle) > before;
}

/* Two jobs whose 300 ms deadlines pass while the database is away. Their
 * worker stopped one at its deadline and holds the report (an outbox
 * resends at most 5 s apart): sent 2.5 s after the database is back, it
 * still counts, and the job keeps its best layout — for 6 s after a
 * reconnect (a start, a stall) the broker expires nothing. The other job,
 * which nobody reports, is still failed by the sweep after that. */
static void test_expiry_held_after_outage(void **state)
{
	static const struct kf_msg_named_value stats[] = { { "sfb", 1.25 } };
	struct kf_msg_job_result res = { .layout = "qwertyuiopasdfghjkl;zxcvbnm,./", .cost = 9.5,
		.stats = stats, .n_stats = 1, .steps = 100, .steps_per_sec = 1e6, .elapsed_ms = 300 };
	struct hb_loop hb = { .worker = "w-dl" };
	int failed = log_count("database connection failed");
	int restored = log_count("database connection restored");
	struct kf_msg req, *rep, *l;
	uint64_t id, silent, t0 = kf_clock_mono_ns();
	pthread_t th;

	(void)state;
	drain_pending();
	id = submit_job_until(0, 10, 300);
	l = lease_job("w-dl", id);
	hb.held[0] = (struct kf_msg_held_job){ id, l->lease_rep.lease->lease_token };
	kf_msg_free(l);
	silent = submit_job_until(0, 10, 300);
	l = lease("w-dl", 0);
	assert_int_equal(l->lease_rep.lease->job_id, silent);
	hb.held[1] = (struct kf_msg_held_job){ silent, l->lease_rep.lease->lease_token };
	hb.n_held = 2;
	kf_msg_free(l);
	hb.pub = ingest_pub();
	assert_int_equal(pthread_create(&th, NULL, hb_loop_main, &hb), 0);

	assert_int_equal(run_pgtmp("pause", NULL, 0), 0);
	assert_true(wait_log_more("database connection failed", failed, 8000));
	while (kf_clock_mono_ns() - t0 < 3000 * 1000000ull) /* deadline + grace */
		kf_sleep_ms(50);
	assert_int_equal(run_pgtmp("resume", NULL, 0), 0);
	assert_true(wait_log_more("database connection restored", restored, 15000));
	kf_sleep_ms(2500);

	req_init(&req, KF_MSG_COMPLETE_REQ);
	req.complete_req = (struct kf_msg_complete_req){ .job_id = id,
		.lease_token = hb.held[0].lease_token, .outcome = KF_JOB_FAILED, .result = &res,
		.error = "deadline exceeded: stopped after 300 ms", .expired = true };
	rep = rpc(&req, false);
	assert_int_equal(status_of(rep), KF_OK);
	kf_msg_free(rep);
	rep = get_job(id);
	assert_int_equal(rep->get_rep.job->state, KF_JOB_FAILED);
	assert_non_null(rep->get_rep.job->result);
	assert_string_equal(rep->get_rep.job->result->layout, res.layout);
	assert_string_equal(rep->get_rep.job->errors[0].message,
			    "expired: deadline exceeded: stopped after 300 ms");
	kf_msg_free(rep);

	for (int t = 0; t < 200 && job_state(silent) == KF_JOB_RUNNING; t++)
		kf_sleep_ms(50);
	rep = get_job(silent);
	assert_int_equal(rep->get_rep.job->state, KF_JOB_FAILED);
	assert_null(rep->get_rep.job->result);
	assert_string_equal(rep->get_rep.job->errors[0].message, "expired: deadline exceeded");
	kf_msg_free(rep);
	atomic_store(&hb.stop, true);
	pthread_join(th, NULL);
	kf_bus_pub_free(hb.pub);
	assert_int_equal(atomic_load(&hb.failed), 0);
}

/* Observations of histogram `name` in the broker's metric updates above
 * `over` (a bucket bound), once at least `min`; the last seen otherwise. */
static uint64_t broker_histogram_over(struct kf_bus_sub *sub, const char *name, double over,
	uint64_t min)
{
	uint64_t end = kf_clock_mono_ns() + 8000 * KF_NS_PER_MS, last = 0;

	while (kf_clock_mono_ns() < end && last < min) {
		struct kf_msg *m = kf_test_next_event(sub, "metric.broker", 1500);

		if (!m)
			continue;
		for (size_t i = 0; i < m->metric.n_series; i++) {
			const struct kf_msg_series *se = &m->metric.series[i];

			if (strcmp(se->name, name))
				continue;
			for (size_t b = 0; b < se->n_buckets; b++)
				if (se->bucket_le[b] == over)
					last = se->count - se->bucket_count[b];
		}
		kf_msg_free(m);
	}
	return last;
}

/* Another session inserts a job under the key "slow-txn" and holds it,
 * uncommitted, for 2 s: a submit under that key waits for it on the
 * unique index, and nothing else does (the sweeps of the broker's tick
 * would wait for a lock on the whole table too, and could be the slow
 * transaction instead). */
static void *hold_key_main(void *arg)
{
	(void)arg;
	psql("BEGIN; INSERT INTO jobs (max_attempts, attempt_limit, submit_key, params) "
	     "VALUES (1, 1, 'key:slow-txn', '{}'); SELECT pg_sleep(2); ROLLBACK", NULL, 0);
	return NULL;
}

/* A transaction held up in the database is logged as slow with what it
 * carried, once it took --db-slow (1 s by default), and counted in
 * keyforge_db_transaction_seconds; the submit that waited succeeds. */
static void test_slow_transaction_logged(void **state)
{
	struct kf_bus_sub *mets = events_sub("metric.broker", 13);
	int lines = log_count("slow database transaction");
	char held[16] = "";
	uint64_t before, t0;
	struct kf_msg *rep;
	pthread_t th;

	(void)state;
	before = broker_histogram_over(mets, "keyforge_db_transaction_seconds", 1.0, 0);
	assert_int_equal(pthread_create(&th, NULL, hold_key_main, NULL), 0);
	for (int i = 0; i < 100 && strcmp(held, "1"); i++) {
		psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'",
		     held, sizeof(held));
		if (strcmp(held, "1"))
			kf_sleep_ms(20);
	}
	assert_string_equal(held, "1");
	t0 = kf_clock_mono_ns();
	rep = submit_keyed("slow-txn", 10);
	assert_int_equal(status_of(rep), KF_OK);
	assert_false(rep->submit_rep.existing);  /* the other insert was rolled back */
	kf_msg_free(rep);
	assert_true(kf_clock_mono_ns() - t0 >= 1000 * KF_NS_PER_MS); /* it did wait */
	pthread_join(th, NULL);
	for (int t = 0; t < 3000 && log_count("slow database transaction") == lines; t += 50)
		kf_sleep_ms(50);
	assert_true(log_count("slow database transaction") > lines);
	assert_true(log_line_has("slow database transaction", "submit=1"));
	assert_true(broker_histogram_over(mets, "keyforge_db_transaction_seconds", 1.0,
					  before + 1) >= before + 1);
	kf_bus_sub_free(mets);
}

/* Brokers may share a database (DESIGN.md §1). A second one, on addresses
 * of its own, leaves alone the running job of a worker that only the first
 * one hears from; a running job whose worker no broker has seen (it died
 * with its broker) is requeued as an orphan. */

/* A failure with a short backoff is promoted when its backoff ends, not
 * when that of a job retrying before it does: the promote sweep's next
 * time comes from the jobs retrying when it ran, and used to stay there
 * (a job due in 0.7 s waited 55 s behind one due in 58 s). */
static void test_short_backoff_not_behind_long(void **state)
{
	char out[64];
	uint64_t late, id, end;

	(void)state;
	drain_pending();
	psql("INSERT INTO jobs (state, attempt, max_attempts, attempt_limit, next_attempt_at, "
	     "params) VALUES ('retrying', 1, 3, 3, now() + interval '60 s', "
	     "jsonb_build_object('corpus', 'shai', 'steps', 1)) RETURNING id", out, sizeof out);
	late = strtoull(out, NULL, 10);
	assert_true(late > 0);
	kf_sleep_ms(2500);               /* a promote sweep has seen it: next one in 60 s */
	id = fail_once("w-backoff");                                /* backoff 0.5-1 s */
	end = kf_clock_mono_ns() + 8000 * KF_NS_PER_MS;
	while (job_state(id) == KF_JOB_RETRYING && kf_clock_mono_ns() < end)
		kf_sleep_ms(100);
	assert_int_equal(job_state(id), KF_JOB_PENDING);
	assert_int_equal(job_state(late), KF_JOB_RETRYING);
	kill_job(late);
	kill_job(id);
}

static void test_second_broker_shares_database(void **state)
{
	char urls[5][64], log2[160], token2[160], sql[160];
	struct kf_bus_pub *pub = ingest_pub();
	uint64_t id, ghost, token, seq = 1, t0;
	struct kf_msg *l, *rep, req;
	int status;
	pid_t pid;

	(void)state;
	drain_pending();
	id = submit_job(0, 10);
	heartbeat(pub, "w-at-a", seq++, 0);
	l = lease_job("w-at-a", id);
	token = l->lease_rep.lease->lease_token;
	kf_msg_free(l);
	ghost = submit_job(0, 10);
	snprintf(sql, sizeof(sql), "UPDATE jobs SET state = 'running', worker_id = 'w-ghost', "
		 "attempt = 1, lease_token = 7, started_at = now() WHERE id = %llu",
		 (unsigned long long)ghost);
	psql(sql, NULL, 0);

	for (int i = 0; i < 5; i++)
		snprintf(urls[i], sizeof(urls[i]), "tcp://127.0.0.1:%u", kf_test_free_port());
	snprintf(log2, sizeof(log2), "%s/sharing.log", g_tmp);
	snprintf(token2, sizeof(token2), "%s/sharing.token", g_tmp);
	t0 = kf_clock_mono_ns();
	pid = spawn_broker_at(urls, log2, token2);
	assert_true(pid > 0);
	/* The second broker checks for orphans 10 s after it started, then
	 * every 5 s: give it two checks. The worker keeps heartbeating to the
	 * first broker meanwhile. */
	while (kf_clock_mono_ns() - t0 < 17 * 1000000000ull ||
	       job_state(ghost) == KF_JOB_RUNNING) {
		assert_true(kf_clock_mono_ns() - t0 < 40 * 1000000000ull);
		heartbeat(pub, "w-at-a", seq++, id);
		kf_sleep_ms(500);
	}
	assert_int_equal(waitpid(pid, &status, WNOHANG), 0);   /* it ran all along */
	assert_int_equal(job_state(id), KF_JOB_RUNNING);
	assert_int_not_equal(job_state(ghost), KF_JOB_RUNNING);
	assert_true(log_has("worker unknown to this broker") ||
		    log_count_in(log2, "worker unknown to this broker") > 0);
	assert_int_equal(log_count_in(log2, "w-at-a"), 0);

	kill(pid, SIGTERM);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	/* The first worker's lease was never fenced off. */
	rep = complete(id, token, KF_JOB_SUCCEEDED, NULL);
	assert_int_equal(status_of(rep), KF_OK);
	kf_msg_free(rep);
	req_init(&req, KF_MSG_KILL_REQ);
	req.kill_req.job_id = ghost;   /* not left for the tests after this one */
	kf_msg_free(rpc(&req, true));
	kf_bus_pub_free(pub);
}

/* A database whose recorded migration differs from the binary's: the broker
 * refuses to run on it (exit 1), it does not silently skip. */
static void test_migration_mismatch(void **state)
{
	char saved[128], sql[256], log2[160], urls[5][64];
	int status;
	pid_t pid;

	(void)state;
	psql("SELECT checksum FROM schema_migrations WHERE version = 1", saved, sizeof(saved));
	assert_int_equal(strlen(saved), 64);
	psql("UPDATE schema_migrations SET checksum = repeat('0', 64) WHERE version = 1", NULL, 0);
	memcpy(urls, g_url, sizeof(urls));
	for (int i = 0; i < 5; i++)
		snprintf(g_url[i], sizeof(g_url[i]), "tcp://127.0.0.1:%u", kf_test_free_port());
	snprintf(log2, sizeof(log2), "%s/mismatch.log", g_tmp);
	snprintf(sql, sizeof(sql), "%s/token-mismatch", g_tmp);
	pid = spawn_broker(log2, sql);
	memcpy(g_url, urls, sizeof(urls));
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	snprintf(sql, sizeof(sql), "UPDATE schema_migrations SET checksum = '%s' WHERE version = 1",
		 saved);
	psql(sql, NULL, 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	{
		char line[1024];
		bool said = false;
		FILE *f = fopen(log2, "r");

		assert_non_null(f);
		while (fgets(line, sizeof(line), f))
			said |= strstr(line, "database schema does not match") != NULL;
		fclose(f);
		assert_true(said);
	}
}

static void test_sigterm(void **state)
{
	int status;

	(void)state;
	assert_int_equal(kill(g_broker, SIGTERM), 0);
	assert_int_equal(waitpid(g_broker, &status, 0), g_broker);
	g_broker = 0;
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_true(log_has("shutting down"));
	assert_true(log_has("server stopped"));
	assert_int_equal(access(g_token_path, F_OK), -1); /* removed on a clean exit */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_started),
		cmocka_unit_test(test_hello),
		cmocka_unit_test(test_submit_needs_token),
		cmocka_unit_test(test_submit_idempotent),
		cmocka_unit_test(test_submit_key),
		cmocka_unit_test(test_lease_progress_complete),
		cmocka_unit_test(test_list_paging),
		cmocka_unit_test(test_kill_pending_and_retry),
		cmocka_unit_test(test_complete_with_next),
		cmocka_unit_test(test_events_bundled),
		cmocka_unit_test(test_kill_running),
		cmocka_unit_test(test_lease_long_poll),
		cmocka_unit_test(test_rpc_pool_grows),
		cmocka_unit_test(test_rpc_pool_exhausted),
		cmocka_unit_test(test_drain),
		cmocka_unit_test(test_lease_fence),
		cmocka_unit_test(test_silent_worker_fence),
		cmocka_unit_test(test_unheard_worker_held),
		cmocka_unit_test(test_tick_looks_despite_leftover_budget),
		cmocka_unit_test(test_failure_retries),
		cmocka_unit_test(test_short_backoff_not_behind_long),
		cmocka_unit_test(test_malformed_rpc),
		cmocka_unit_test(test_oversized_on_pub_sockets),
		cmocka_unit_test(test_ingest),
		cmocka_unit_test(test_ingest_source_and_heartbeats),
		cmocka_unit_test(test_ingest_bundles),
		cmocka_unit_test(test_monitor_socket),
		cmocka_unit_test(test_worker_death_requeues),
		cmocka_unit_test(test_lost_lease_requeued),
		cmocka_unit_test(test_second_incarnation_metrics_dropped),
		cmocka_unit_test(test_second_broker_refused),
		cmocka_unit_test(test_second_broker_token_file),
		cmocka_unit_test(test_second_broker_shares_database),
		cmocka_unit_test(test_slow_transaction_logged),
		cmocka_unit_test_teardown(test_database_outage, resume_database),
		cmocka_unit_test_teardown(test_expiry_held_after_outage, resume_database),
		cmocka_unit_test(test_migration_mismatch),
		cmocka_unit_test(test_sigterm),
	};

	/* TAP lines leave at once: a run that dies shows how far it got, and a
	 * child forked meanwhile holds no copy of them. */
	setvbuf(stdout, NULL, _IOLBF, 0);

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
