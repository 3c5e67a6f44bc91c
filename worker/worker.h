/*
 * worker/worker.h — keyforge-worker's lifecycle (DESIGN.md §1, §3;
 * docs/operations.md "keyforge-worker").
 *
 *	kf_daemon_block_signals();              // in main, before any thread
 *	kf_worker_new(&w, &cfg, &why);        // sockets dial in the background
 *	status = kf_worker_run(w);            // until SIGTERM/SIGINT or a drain
 *	kf_worker_free(w);
 *
 * Threads while it runs: one per lane, slots + lease-ahead of them (hello,
 * lease, run the job; kf:laneN), the command subscriber (cmd.<id> on the
 * commands socket: cancel, drain), the publisher (heartbeat and metrics
 * every second, queued log events), the outbox (complete requests until
 * acknowledged), and nng's own.
 *
 * Shutdown: the first SIGTERM/SIGINT (or a drain command) stops leasing;
 * running jobs finish (--on-term finish) or are stopped and handed back
 * (--on-term handback, or a second signal). Then the worker waits up to
 * --term-timeout for the broker to acknowledge every result, publishes a
 * last heartbeat and exits.
 */
#ifndef KF_WORKER_WORKER_H
#define KF_WORKER_WORKER_H

#include "common/err.h"
#include "common/strbuf.h"
#include "worker/config.h"

struct kf_worker;

/* Sets everything up: metrics, the telemetry publisher and log sink, the
 * three sockets (dialing in the background: the broker may start later),
 * the engine's caches. Nothing is leased yet. KF_OK, or an error with one
 * line in why (a bad address or TLS file, out of memory). cfg is copied. */
enum kf_err kf_worker_new(struct kf_worker **out, const struct kf_worker_config *cfg,
	struct kf_strbuf *why);

/* Runs until shut down (see above). Call from the thread that blocked the
 * signals. Returns the exit status: 0 when every result was acknowledged,
 * 1 when some could not be delivered in time. */
int kf_worker_run(struct kf_worker *w);

/* Frees everything; the log sink is removed. NULL-safe. */
void kf_worker_free(struct kf_worker *w);

#endif
