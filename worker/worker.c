/* worker.c — keyforge-worker's lifecycle: set up, run, shut down. */
#include "worker/worker_int.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/daemon.h"
#include "common/clock.h"
#include "kf_config.h"

#define TICK_MS 1000
#define FINAL_FLUSH_MS 1000

/* ---- heartbeat and metrics: the publisher's tick ---------------------------------- */

/*
 * The attempts the process holds (protocol 1.2): the lanes' and the
 * outbox's. Read lanes first: an attempt moves from a lane to the outbox,
 * so read in that order it may be listed twice, never missed. More than
 * KF_MSG_MAX_HELD: not listed at all, and the broker concludes nothing.
 */
static void fill_held(struct kf_worker *w, struct kf_msg_held_job *held,
	struct kf_msg_heartbeat *hb)
{
	size_t n = 0, in_outbox;

	for (uint32_t i = 0; i < w->n_lanes && n < KF_MSG_MAX_HELD; i++)
		n += kf__lane_held(&w->lanes[i], &held[n]);
	in_outbox = kf__outbox_held(w->outbox, held + n, KF_MSG_MAX_HELD - n);
	if (n + in_outbox > KF_MSG_MAX_HELD)
		return;
	hb->held_listed = true;
	hb->held = held;
	hb->n_held = n + in_outbox;
}

static void fill_heartbeat(struct kf_worker *w, const struct kf__load *load,
	struct kf_msg_held_job *held, struct kf_msg_heartbeat *hb)
{
	uint32_t busy = 0;

	*hb = (struct kf_msg_heartbeat){ .worker_id = w->cfg.id, .host = w->host, .pid = w->pid,
		.incarnation = w->incarnation, .cpu_process = load->cpu_process,
		.cpu_host = load->cpu_host, .rss_bytes = load->rss_bytes,
		.slots_total = w->cfg.slots,
		.uptime_ms = (kf_clock_mono_ns() - w->start_mono_ns) / KF_NS_PER_MS };
	for (uint32_t i = 0; i < w->n_lanes; i++) {
		uint64_t job;
		double progress, best;

		if (!kf__lane_peek(&w->lanes[i], &job, &progress, &best))
			continue;
		if (!busy++) { /* the heartbeat has room for one job: the first */
			hb->job_id = job;
			hb->job_progress = progress;
			hb->job_best_cost = isfinite(best) ? best : 0;
		}
	}
	hb->slots_busy = busy;
	hb->state = atomic_load(&w->draining) ? KF_WORKER_DRAINING :
		    busy ? KF_WORKER_BUSY : KF_WORKER_IDLE;
	fill_held(w, held, hb);
}

static void publish_heartbeat(struct kf_worker *w)
{
	struct kf_msg_heartbeat hb;
	struct kf__load load;

	kf__load_sample(&w->load, &load);
	fill_heartbeat(w, &load, w->held_buf, &hb);
	kf__publisher_heartbeat(w->publisher, &hb);
}

static void on_tick(void *ctx, struct kf__publisher *p, uint64_t tick)
{
	struct kf_worker *w = ctx;
	enum kf_err err;

	/* Nobody listens without a connection: queueing heartbeats and metric
	 * deltas would only replay stale ones at the next broker. The metric
	 * generation stays put, so the first delta afterwards has every change. */
	if (kf_bus_sock_peers(kf_bus_pub_sock(w->pub)) == 0)
		return;
	publish_heartbeat(w);
	if ((err = kf__publisher_metrics(p, w->m.reg, tick == KF__PUBLISH_FINAL_TICK ||
						      tick % KF__METRICS_FULL_EVERY == 0)) &&
	    err != KF_EFULL)
		KF_DEBUG(KF__TARGET, "metric update not published", KF_ERR(err));
}

/* ---- commands (cmd.<id> on the commands socket) ------------------------------------------------ */

static void on_command(struct kf_worker *w, const struct kf_msg_command *cmd)
{
	bool hit = false;

	kf__wmetrics_command(&w->m);
	if (strcmp(cmd->worker_id, w->cfg.id) != 0)
		return; /* a prefix match of a longer id cannot happen (NUL), but be sure */
	if (cmd->action == KF_CMD_DRAIN) {
		if (kf__worker_drain(w))
			KF_INFO(KF__TARGET, "drain requested; taking no new job",
				KF_STR("via", "command"));
		return;
	}
	/* drop (1.6): the broker has ended this attempt itself (a requeue, a
	 * failure, a deadline); a report of it would be refused, and "killed"
	 * would be untrue. A cancel no lane runs yet may be ahead of its
	 * lease: noted for the lane that begins it (stop.h). */
	pthread_mutex_lock(&w->early_mu);
	for (uint32_t i = 0; i < w->n_lanes; i++)
		hit |= kf__lane_stop_job(&w->lanes[i], cmd->job_id, cmd->lease_token,
					 cmd->drop ? KF__STOP_DROP : KF__STOP_KILL);
	if (!hit)
		kf__early_note(&w->early, cmd->job_id, cmd->lease_token, cmd->drop,
			       kf_clock_mono_ns());
	pthread_mutex_unlock(&w->early_mu);
	if (hit && cmd->drop)
		KF_INFO(KF__TARGET_JOB, "job attempt ended by the broker; abandoning it",
			KF_U64("job_id", cmd->job_id),
			KF_STR("reason", cmd->reason ? cmd->reason : ""), KF_STR("via", "command"));
	else if (hit)
		KF_INFO(KF__TARGET_JOB, "job cancel received", KF_U64("job_id", cmd->job_id),
			KF_STR("via", "command"));
	else
		KF_DEBUG(KF__TARGET_JOB, "cancel for a job not running here; noted for its lease",
			 KF_U64("job_id", cmd->job_id));
}

static void *cmd_main(void *arg)
{
	struct kf_worker *w = arg;

	pthread_setname_np(pthread_self(), "kf:commands");  /* top -H, perf */
	while (!atomic_load(&w->quit)) {
		struct kf_msg *msg = NULL;
		nng_msg *m;
		/* No timeout: kf_worker_free closes the socket, which ends it. */
		enum kf_err err = kf_bus_sub_recv(w->cmd_sub, NNG_DURATION_INFINITE, &m);

		if (err == KF_ECANCELED)
			break;
		if (err)
			continue;
		err = kf_msg_decode_pub(nng_msg_body(m), nng_msg_len(m), &msg, NULL);
		nng_msg_free(m);
		if (err) {
			KF_DEBUG(KF__TARGET, "unreadable command ignored", KF_ERR(err));
			continue;
		}
		if (msg->type == KF_MSG_COMMAND)
			on_command(w, &msg->command);
		kf_msg_free(msg);
	}
	return NULL;
}

/* ---- setup -------------------------------------------------------------------------- */

static const struct kf_bus_opts *opts_for(struct kf_worker *w, const char *url,
	struct kf_bus_opts *o)
{
	memset(o, 0, sizeof(*o));
	if (!strncmp(url, "tls+", 4))
		o->tls = &w->tls;
	return o;
}

static enum kf_err open_sockets(struct kf_worker *w, struct kf_strbuf *why)
{
	const char *ingest = kf_bus_addrs_get(&w->cfg.addrs, KF_BUS_INGEST);
	const char *commands = kf_bus_addrs_get(&w->cfg.addrs, KF_BUS_COMMANDS);
	const char *rpc = kf_bus_addrs_get(&w->cfg.addrs, KF_BUS_RPC);
	char topic[KF_TOPIC_SIZE];
	struct kf_bus_opts o;
	size_t tl;
	enum kf_err err;

	kf_bus_tls_opts_from_env(&w->tls);
	if ((err = kf_bus_pub_new(&w->pub, KF_BUS_DIAL, ingest, opts_for(w, ingest, &o), why)) ||
	    (err = kf_bus_sub_new(&w->cmd_sub, KF_BUS_DIAL, commands, opts_for(w, commands, &o),
				  why)))
		return err;
	/* topic + NUL: "cmd.w-1" must not also match cmd.w-10's commands. */
	tl = kf_topic_cmd(topic, w->cfg.id);
	if ((err = kf_bus_sub_subscribe(w->cmd_sub, topic, tl + 1)))
		return err;
	if ((err = kf__rpc_init(&w->rpc, rpc, opts_for(w, rpc, &o), w->cfg.id, w->cfg.token_file,
				 why)))
		return err;
	w->rpc_ready = true;
	return KF_OK;
}

static enum kf_err start_telemetry(struct kf_worker *w)
{
	struct kf__publisher_opts po = { .pub = w->pub, .source = w->cfg.id,
		.incarnation = w->incarnation, .tick_ms = TICK_MS, .tick = on_tick, .tick_ctx = w };
	enum kf_err err;

	if ((err = kf__publisher_new(&po, &w->publisher)))
		return err;
	if ((err = kf_log_sink_add(kf__publisher_log_sink, w->publisher)))
		return err;
	w->sink_added = true;
	return KF_OK;
}

enum kf_err kf_worker_new(struct kf_worker **out, const struct kf_worker_config *cfg,
	struct kf_strbuf *why)
{
	struct kf__engine_opts eo = { .corpus_dirs = cfg->corpus_dirs,
		.default_corpus = cfg->default_corpus, .max_running = cfg->slots };
	struct kf_worker *w = calloc(1, sizeof(*w));
	enum kf_err err;

	*out = NULL;
	if (!w)
		return KF_ENOMEM;
	w->cfg = *cfg;
	w->n_lanes = cfg->slots + cfg->lease_ahead;
	kf__gate_init(&w->gate, cfg->slots, cfg->lease_ahead, &w->draining);
	w->pid = (uint32_t)getpid();
	w->incarnation = kf_random_u64_nonzero();
	w->start_mono_ns = kf_clock_mono_ns();
	if (gethostname(w->host, sizeof w->host - 1) != 0 || !w->host[0])
		snprintf(w->host, sizeof w->host, "unknown");
	pthread_mutex_init(&w->hello_mu, NULL);
	pthread_mutex_init(&w->early_mu, NULL);
	kf__load_sampler_init(&w->load);
	if ((err = kf__wmetrics_init(&w->m, w))) {
		kf_strbuf_addf(why, "metrics: %s", kf_strerror(err));
		goto fail;
	}
	if ((err = open_sockets(w, why)) || (err = start_telemetry(w)) ||
	    (err = kf__engine_new(&eo, &w->engine)) ||
	    (err = kf__outbox_new(&w->rpc, kf__on_result_done, w, &w->outbox)))
		goto fail;
	if (!(w->lanes = calloc(w->n_lanes, sizeof(*w->lanes)))) {
		err = KF_ENOMEM;
		goto fail;
	}
	for (uint32_t i = 0; i < w->n_lanes; i++)
		if ((err = kf__lane_init(&w->lanes[i], w, i)))
			goto fail;
	*out = w;
	return KF_OK;
fail:
	if (!why->len)
		kf_strbuf_addstr(why, kf_strerror(err));
	kf_worker_free(w);
	return err;
}

/* ---- running ------------------------------------------------------------------------ */

/* Running jobs are told here; a job leased ahead sees the flag when it
 * gets its slot (job_start). */
static void hand_back_all(struct kf_worker *w)
{
	atomic_store(&w->handback, true);
	for (uint32_t i = 0; i < w->n_lanes; i++) {
		uint64_t job;
		double progress, best;

		if (kf__lane_peek(&w->lanes[i], &job, &progress, &best))
			kf__lane_stop_job(&w->lanes[i], job, 0, KF__STOP_HANDBACK);
	}
}

static enum kf_err start_threads(struct kf_worker *w)
{
	if (kf__publisher_start(w->publisher))
		return KF_EIO;
	if (pthread_create(&w->cmd_thread, NULL, cmd_main, w) != 0)
		return KF_EIO;
	w->cmd_started = true;
	for (uint32_t i = 0; i < w->n_lanes; i++) {
		if (pthread_create(&w->lanes[i].thread, NULL, kf__lane_main, &w->lanes[i]) != 0)
			return KF_EIO;
		w->lanes[i].started = true;
	}
	return KF_OK;
}

bool kf__worker_drain(struct kf_worker *w)
{
	bool first = !atomic_exchange(&w->draining, true);

	kf__gate_wake(&w->gate);
	if (atomic_load(&w->signal_waiting))
		pthread_kill(w->signal_thread, SIGHUP);
	return first;
}

static bool lanes_done(struct kf_worker *w)
{
	for (uint32_t i = 0; i < w->n_lanes; i++)
		if (w->lanes[i].started && pthread_tryjoin_np(w->lanes[i].thread, NULL) == 0)
			w->lanes[i].started = false;
	for (uint32_t i = 0; i < w->n_lanes; i++)
		if (w->lanes[i].started)
			return false;
	return true;
}

/* Draining with no connection to the broker: nothing in flight can be
 * answered, so the lanes' calls (a lease long-poll above all, whose
 * timeout is --lease-wait + 5 s) end now instead of running out their
 * time. A result whose report is cut short goes to the outbox, which keeps
 * resending it for --term-timeout. Called on every tick, since a lane may
 * start a call just after the previous abort. */
static void abort_calls_if_alone(struct kf_worker *w)
{
	if (kf_bus_sock_peers(kf_rpc_client_sock(w->rpc.cli)) == 0)
		kf_rpc_client_abort_calls(w->rpc.cli);
}

/* Waits for signals until every lane has stopped (after a drain). Idle, it
 * sleeps until a signal comes (kf__worker_drain sends SIGHUP); draining,
 * it looks every tick for the lanes' end and a lost broker. */
static void signal_loop(struct kf_worker *w)
{
	struct timespec tick = { 0, 100 * 1000000L }, idle = { 3600, 0 };
	unsigned n_signals = 0;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	/* Already blocked by main (every thread inherits that); blocked here
	 * too, so that the SIGHUP of kf__worker_drain cannot end the process. */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	w->signal_thread = pthread_self();
	atomic_store(&w->signal_waiting, true);
	while (!(atomic_load(&w->draining) && lanes_done(w))) {
		int sig = sigtimedwait(&set, NULL, atomic_load(&w->draining) ? &tick : &idle);

		if (atomic_load(&w->draining) && w->rpc_ready)
			abort_calls_if_alone(w);
		if (sig < 0 || sig == SIGHUP)
			continue;
		if (++n_signals == 1) {
			kf__worker_drain(w);
			KF_INFO(KF__TARGET, "shutdown requested; taking no new job",
				KF_STR("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"),
				KF_STR("on_term", kf_worker_on_term_name(w->cfg.on_term)));
			if (w->cfg.on_term == KF_WORKER_TERM_HANDBACK)
				hand_back_all(w);
		} else if (!atomic_load(&w->handback)) {
			KF_INFO(KF__TARGET, "second signal: handing running jobs back");
			hand_back_all(w);
		}
	}
	atomic_store(&w->signal_waiting, false);
}

/* Says at start what would otherwise surface only as failed jobs: a corpus
 * folder or default corpus this worker cannot read. Jobs naming a corpus by
 * absolute path are unaffected, so the worker runs anyway. */
static void check_corpus_paths(const struct kf_worker_config *cfg)
{
	const char *dirs = cfg->corpus_dirs ? cfg->corpus_dirs : "";

	while (*dirs) {
		size_t n = strcspn(dirs, ":");
		char dir[PATH_MAX];
		struct stat st;

		if (n && n < sizeof dir) {
			memcpy(dir, dirs, n);
			dir[n] = '\0';
			if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || access(dir, R_OK | X_OK))
				KF_WARN(KF__TARGET, "corpus folder not readable", KF_STR("path", dir),
					KF_STR("hint", "jobs naming a corpus in it will fail; "
					       "see --corpus-dir"));
		}
		dirs += n + (dirs[n] == ':');
	}
	if (cfg->default_corpus && access(cfg->default_corpus, R_OK))
		KF_WARN(KF__TARGET, "default corpus not readable", KF_STR("path", cfg->default_corpus),
			KF_STR("hint", "jobs with corpus 'default' will fail; see --default-corpus"));
}

int kf_worker_run(struct kf_worker *w)
{
	struct kf__outbox_stats ob;
	bool delivered;

	KF_INFO(KF__TARGET, "worker started", KF_STR("worker_id", w->cfg.id),
		KF_STR("host", w->host), KF_U64("pid", w->pid), KF_U64("slots", w->cfg.slots),
		KF_U64("lease_ahead", w->cfg.lease_ahead), KF_STR("version", KF_VERSION),
		KF_STR("rpc", kf_bus_addrs_get(&w->cfg.addrs, KF_BUS_RPC)),
		KF_STR("ingest", kf_bus_addrs_get(&w->cfg.addrs, KF_BUS_INGEST)),
		KF_STR("commands", kf_bus_addrs_get(&w->cfg.addrs, KF_BUS_COMMANDS)));
	check_corpus_paths(&w->cfg);
	if (start_threads(w) != KF_OK) {
		KF_ERROR(KF__TARGET, "cannot start threads");
		kf__worker_drain(w);
	}
	signal_loop(w);
	delivered = kf__outbox_wait_empty(w->outbox, w->cfg.term_timeout_ms);
	kf__outbox_stats(w->outbox, &ob);
	if (!delivered)
		KF_ERROR(KF__TARGET, "results not acknowledged by the broker; they are lost",
			 KF_U64("count", ob.pending), KF_U64("waited_ms", w->cfg.term_timeout_ms));
	/* Every result the broker answered, not only those the outbox carried:
	 * most go with the next lease request and never touch it. */
	KF_INFO(KF__TARGET, "worker stopped", KF_STR("worker_id", w->cfg.id),
		KF_U64("results_acknowledged", atomic_load(&w->results_acked)),
		KF_U64("results_dropped", atomic_load(&w->results_dropped)),
		KF_U64("results_refused", atomic_load(&w->results_refused)),
		KF_U64("jobs_leased_ahead", atomic_load(&w->gate.leased_ahead)));
	/* A last tick (heartbeat: draining, idle; full metrics), then flush. */
	kf__publisher_stop(w->publisher, FINAL_FLUSH_MS);
	return delivered && !atomic_load(&w->id_in_use) ? 0 : 1;
}

void kf_worker_free(struct kf_worker *w)
{
	if (!w)
		return;
	kf__worker_drain(w);
	atomic_store(&w->quit, true);
	if (w->lanes)
		for (uint32_t i = 0; i < w->n_lanes; i++)
			if (w->lanes[i].started)
				pthread_join(w->lanes[i].thread, NULL);
	if (w->cmd_started) {
		kf_bus_sock_close(kf_bus_sub_sock(w->cmd_sub));
		pthread_join(w->cmd_thread, NULL);
	}
	if (w->sink_added)
		kf_log_sink_remove(kf__publisher_log_sink, w->publisher);
	kf__outbox_free(w->outbox);
	if (w->lanes)
		for (uint32_t i = 0; i < w->n_lanes; i++)
			if (w->lanes[i].w)
				kf__lane_release(&w->lanes[i]);
	free(w->lanes);
	kf__publisher_free(w->publisher);
	if (w->rpc_ready)
		kf__rpc_release(&w->rpc);
	kf_bus_sub_free(w->cmd_sub);
	kf_bus_pub_free(w->pub);
	kf__engine_free(w->engine);
	kf__wmetrics_release(&w->m);
	pthread_mutex_destroy(&w->hello_mu);
	pthread_mutex_destroy(&w->early_mu);
	kf__gate_release(&w->gate);
	free(w);
}
