/*
 * bench_requeue — how long a dead worker's job waits before it runs again
 * (issue 5: ≤ 12 s after the worker's last heartbeat).
 *
 * Against a broker with at least two idle keyforge-worker processes on this
 * machine (bench/hive/bench_requeue.sh starts them):
 *   1. submit a job too long to finish (--steps) and wait for its "running"
 *      event: the worker that took it is the victim;
 *   2. let it run --run-ms, find the victim's pid in the cluster reply and
 *      kill -9 it; once it is gone, ask the cluster again: its last
 *      heartbeat was last_heartbeat_age_ms before that reply;
 *   3. wait for the job's events: "pending" (the broker declared the worker
 *      dead and requeued the job), then "running" again on another worker
 *      with attempt 2; check it with the get RPC;
 *   4. kill the job so that the other worker is free again.
 *
 * Prints last heartbeat → running again, kill → running, and the two parts
 * (last heartbeat → requeued, requeued → running). The victim's id is in the
 * RESULT line so that the script can start a replacement.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/hive/hbench.h"
#include "common/clock.h"

struct bench {
	const char *rpc_url, *events_url, *token_file, *corpus, *label;
	uint64_t steps, run_ms, timeout_s;
	struct kf_hbench_rpc rpc;
	struct kf_bus_sub *sub;
};

/* Waits for a job event of job_id in `state` (and attempt >= min_attempt).
 * On success copies the worker id (may be "") and returns the receive time
 * (mono ns); 0 on timeout. */
static uint64_t wait_event(struct bench *b, uint64_t job_id, enum kf_job_state state,
	uint32_t min_attempt, uint64_t timeout_ms, char *worker, size_t cap)
{
	uint64_t until = kf_clock_mono_ns() + timeout_ms * KF_HBENCH_NS_PER_MS;

	while (kf_clock_mono_ns() < until) {
		nng_msg *nm = NULL;
		struct kf_msg *m = NULL;
		uint64_t now;
		bool hit = false;

		if (kf_bus_sub_recv(b->sub, 100, &nm))
			continue;
		now = kf_clock_mono_ns();
		if (kf_msg_decode_pub(nng_msg_body(nm), nng_msg_len(nm), &m, NULL) == KF_OK &&
		    m->type == KF_MSG_JOB_EVENT && m->job_event.job_id == job_id &&
		    m->job_event.state == state && m->job_event.attempt >= min_attempt) {
			hit = true;
			snprintf(worker, cap, "%s", m->job_event.worker_id ? m->job_event.worker_id : "");
		}
		kf_msg_free(m);
		nng_msg_free(nm);
		if (hit)
			return now;
	}
	return 0;
}

static uint64_t submit(struct bench *b)
{
	struct kf_strbuf why = KF_STRBUF_INIT;
	struct kf_msg req, *rep = NULL;
	uint64_t id;
	enum kf_err err;

	kf_msg_init(&req, KF_MSG_SUBMIT_REQ, NULL, 0);
	req.submit_req.params = (struct kf_msg_job_params){ .corpus = b->corpus,
		.start_layout = "qwertyuiopasdfghjkl;zxcvbnm,./", .steps = b->steps, .seed = 1,
		.restarts = 1, .max_attempts = 3 };
	if ((err = kf_hbench_rpc_call(&b->rpc, &req, 10000, &rep, &why)))
		kf_hbench_die("submit failed: %s (%s)", kf_strerror(err), why.buf);
	id = rep->submit_rep.job_id;
	kf_msg_free(rep);
	kf_strbuf_release(&why);
	return id;
}

/* The victim's record in a cluster reply: pid and heartbeat age. The age is
 * turned into a time on our clock with the middle of the round trip. */
static bool find_worker(struct bench *b, const char *id, uint32_t *pid, uint64_t *last_hb_ns)
{
	struct kf_msg req, *rep = NULL;
	uint64_t t0 = kf_clock_mono_ns(), t1;
	bool found = false;

	kf_msg_init(&req, KF_MSG_CLUSTER_REQ, NULL, 0);
	if (kf_hbench_rpc_call(&b->rpc, &req, 5000, &rep, NULL))
		kf_hbench_die("cluster request failed");
	t1 = kf_clock_mono_ns();
	for (size_t i = 0; i < rep->cluster_rep.status.n_workers; i++) {
		const struct kf_msg_worker_status *w = &rep->cluster_rep.status.workers[i];

		if (strcmp(w->worker_id, id))
			continue;
		*pid = w->pid;
		*last_hb_ns = t0 + (t1 - t0) / 2 - w->last_heartbeat_age_ms * KF_HBENCH_NS_PER_MS;
		found = true;
	}
	kf_msg_free(rep);
	return found;
}

/* Waits until pid is gone or a zombie (its parent may reap it later). */
static void wait_dead(pid_t pid)
{
	uint64_t until = kf_clock_mono_ns() + 5 * KF_HBENCH_NS_PER_S;

	while (kf_clock_mono_ns() < until) {
		char path[64], buf[512], *p;
		size_t n;
		FILE *f;

		snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
		if (!(f = fopen(path, "r")))
			return;
		n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[n] = '\0';
		if ((p = strrchr(buf, ')')) && (p[2] == 'Z' || p[2] == 'X'))
			return;
		kf_hbench_sleep_until(kf_clock_mono_ns() + 2 * KF_HBENCH_NS_PER_MS);
	}
	kf_hbench_die("worker pid %d still alive 5 s after SIGKILL", (int)pid);
}

static void check_get(struct bench *b, uint64_t id, const char *victim, uint32_t *attempt,
	char *worker, size_t cap)
{
	struct kf_msg req, *rep = NULL;

	kf_msg_init(&req, KF_MSG_GET_REQ, NULL, 0);
	req.get_req.job_id = id;
	if (kf_hbench_rpc_call(&b->rpc, &req, 5000, &rep, NULL) || !rep->get_rep.job)
		kf_hbench_die("get of job %llu failed", (unsigned long long)id);
	*attempt = rep->get_rep.job->attempt;
	snprintf(worker, cap, "%s", rep->get_rep.job->worker_id ? rep->get_rep.job->worker_id : "");
	if (rep->get_rep.job->state != KF_JOB_RUNNING || !strcmp(worker, victim))
		fprintf(stderr, "bench_requeue: job %llu is %s on '%s' (attempt %u), expected running "
			"elsewhere than '%s'\n", (unsigned long long)id,
			kf_job_state_name(rep->get_rep.job->state), worker, *attempt, victim);
	kf_msg_free(rep);
}

static void kill_job(struct bench *b, uint64_t id)
{
	struct kf_msg req, *rep = NULL;
	char w[8];

	kf_msg_init(&req, KF_MSG_KILL_REQ, NULL, 0);
	req.kill_req.job_id = id;
	if (kf_hbench_rpc_call(&b->rpc, &req, 5000, &rep, NULL) == KF_OK)
		wait_event(b, id, KF_JOB_KILLED, 0, 5000, w, sizeof w);
	kf_msg_free(rep);
}

static void usage(int status)
{
	fputs("usage: bench_requeue --rpc URL --events URL --token-file FILE [--steps N]\n"
	      "                     [--run-ms MS] [--timeout S] [--corpus NAME] [--label TEXT]\n"
	      "  --steps N    annealing steps of the job: long enough not to finish (default 1e12)\n"
	      "  --run-ms MS  let the job run this long before the kill (default 1500)\n"
	      "  --timeout S  longest wait for the job to run again (default 60)\n",
	      status ? stderr : stdout);
	exit(status);
}

static void parse(struct bench *b, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "rpc", required_argument, NULL, 'r' }, { "events", required_argument, NULL, 'e' },
		{ "token-file", required_argument, NULL, 't' }, { "steps", required_argument, NULL, 's' },
		{ "run-ms", required_argument, NULL, 'm' }, { "timeout", required_argument, NULL, 'T' },
		{ "corpus", required_argument, NULL, 'c' }, { "label", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	int c;

	*b = (struct bench){ .corpus = "default", .steps = 1000000000000ull, .run_ms = 1500,
		.timeout_s = 60, .label = "" };
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'r': b->rpc_url = optarg; break;
		case 'e': b->events_url = optarg; break;
		case 't': b->token_file = optarg; break;
		case 's': b->steps = kf_hbench_u64_arg("--steps", optarg); break;
		case 'm': b->run_ms = kf_hbench_u64_arg("--run-ms", optarg); break;
		case 'T': b->timeout_s = kf_hbench_u64_arg("--timeout", optarg); break;
		case 'c': b->corpus = optarg; break;
		case 'l': b->label = optarg; break;
		case 'h': usage(0); break;
		default: usage(2);
		}
	}
	if (!b->rpc_url || !b->events_url || !b->token_file || optind != argc)
		usage(2);
}

int main(int argc, char **argv)
{
	static const char prefix[] = KF_TOPIC_JOB;
	struct bench b;
	char victim[KF_MSG_MAX_NAME + 1], other[KF_MSG_MAX_NAME + 1], got[KF_MSG_MAX_NAME + 1];
	uint64_t job, t_kill, t_last_hb, t_requeued, t_running;
	uint32_t pid, attempt;
	char load[64];

	parse(&b, argc, argv);
	kf_hbench_rpc_open(&b.rpc, b.rpc_url, b.token_file);
	b.sub = kf_hbench_sub_open(b.events_url, prefix, sizeof prefix - 1, 8192, 5000);
	kf_hbench_sleep_until(kf_clock_mono_ns() + 200 * KF_HBENCH_NS_PER_MS);
	kf_hbench_loadavg(load);

	job = submit(&b);
	if (!wait_event(&b, job, KF_JOB_RUNNING, 1, 30000, victim, sizeof victim) || !*victim)
		kf_hbench_die("job %llu did not start within 30 s", (unsigned long long)job);
	kf_hbench_sleep_until(kf_clock_mono_ns() + b.run_ms * KF_HBENCH_NS_PER_MS);
	if (!find_worker(&b, victim, &pid, &t_last_hb) || !pid)
		kf_hbench_die("worker '%s' is not in the cluster reply", victim);
	if (kill((pid_t)pid, SIGKILL))
		kf_hbench_die("kill -9 %u ('%s'): %s", pid, victim, strerror(errno));
	t_kill = kf_clock_mono_ns();
	wait_dead((pid_t)pid);
	if (!find_worker(&b, victim, &pid, &t_last_hb))
		kf_hbench_die("worker '%s' vanished from the cluster reply", victim);

	t_requeued = wait_event(&b, job, KF_JOB_PENDING, 1, b.timeout_s * 1000, got, sizeof got);
	t_running = wait_event(&b, job, KF_JOB_RUNNING, 2, b.timeout_s * 1000, other, sizeof other);
	if (!t_running)
		kf_hbench_die("job %llu did not run again within %llu s of the kill",
			      (unsigned long long)job, (unsigned long long)b.timeout_s);
	check_get(&b, job, victim, &attempt, got, sizeof got);
	kill_job(&b, job);

	printf("bench_requeue %s: job %llu on '%s' (pid %u) killed with SIGKILL; load %s\n", b.label,
	       (unsigned long long)job, victim, pid, load);
	printf("  last heartbeat -> kill          %.0f ms\n", (double)(t_kill - t_last_hb) / 1e6);
	if (t_requeued)
		printf("  last heartbeat -> requeued      %.0f ms  (worker declared dead)\n",
		       (double)(t_requeued - t_last_hb) / 1e6);
	else
		printf("  last heartbeat -> requeued      (event lost)\n");
	printf("  requeued -> running again       %s%.0f ms  on '%s', attempt %u\n",
	       t_requeued ? "" : "(n/a) ", t_requeued ? (double)(t_running - t_requeued) / 1e6 : 0.0,
	       other, attempt);
	printf("  last heartbeat -> running again %.3f s  (goal <= 12 s)\n",
	       (double)(t_running - t_last_hb) / 1e9);
	printf("  kill -> running again           %.3f s\n", (double)(t_running - t_kill) / 1e9);
	printf("RESULT label=%s victim=%s job=%llu hb_to_running_s=%.3f kill_to_running_s=%.3f "
	       "hb_to_requeued_s=%.3f attempt=%u worker=%s load=\"%s\"\n", *b.label ? b.label : "-",
	       victim, (unsigned long long)job, (double)(t_running - t_last_hb) / 1e9,
	       (double)(t_running - t_kill) / 1e9,
	       t_requeued ? (double)(t_requeued - t_last_hb) / 1e9 : NAN, attempt, other, load);
	kf_bus_sub_free(b.sub);
	kf_hbench_rpc_close(&b.rpc);
	return 0;
}
