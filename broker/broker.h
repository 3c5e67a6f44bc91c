/*
 * broker/broker.h — keyforge-broker: one owner thread over the job state.
 *
 * The owner thread (the one that calls kf_broker_run) owns every piece of
 * job and worker state. Other threads only hand it work:
 *   - nng's threads queue RPC requests (bus/rpc_server.h);
 *   - the relay thread queues heartbeats (broker/telemetry_relay.h);
 *   - the database thread queues store completions (broker/store.h).
 * The owner waits on their eventfds and a signalfd in one poll(); no libpq
 * call happens on it or on an nng callback.
 *
 * Usage (broker/main.c):
 *	kf_daemon_block_signals();             // before any thread exists
 *	kf_log_init_from_env(...);
 *	kf_broker_new(&b, &cfg, &why);       // binds, writes the token, starts the store
 *	kf_broker_run(b);                    // until SIGTERM/SIGINT
 *	kf_broker_free(b);
 */
#ifndef KF_BROKER_BROKER_H
#define KF_BROKER_BROKER_H

#include "broker/config.h"
#include "common/err.h"
#include "common/strbuf.h"

struct kf_broker;

/*
 * Binds rpc, events and ingest (in that order), writes the token file,
 * starts the store (which connects and migrates in the background) and
 * logs INFO "server started". Errors: KF_EBUSY (an address is in use:
 * another broker runs; `why` says which), KF_EINVAL (bad address or TLS
 * files), KF_EIO (token file, threads), KF_ENOMEM, others from bus/.
 */
enum kf_err kf_broker_new(struct kf_broker **out, const struct kf_broker_config *cfg,
	struct kf_strbuf *why);

/*
 * Runs the owner loop until SIGTERM/SIGINT (then: stop taking work, answer
 * parked leases, wait up to 5 s for in-flight requests, stop the store)
 * or a fatal error. KF_OK after a signal; KF_EMIGRATION when the database
 * schema does not match this binary.
 */
enum kf_err kf_broker_run(struct kf_broker *b);

/* Frees everything and removes the token file. NULL-safe. */
void kf_broker_free(struct kf_broker *b);

#endif
