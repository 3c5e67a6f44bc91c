/*
 * broker/config.h — keyforge-broker's settings: flags over environment over
 * defaults (DESIGN.md §10, docs/operations.md "keyforge-broker").
 *
 * Pure: parsing reads argv and the environment it is given and writes
 * nothing but `cfg` and `msg`. Not thread-safe (getopt); call it from main.
 */
#ifndef KF_BROKER_CONFIG_H
#define KF_BROKER_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "bus/addr.h"
#include "bus/bundle.h"
#include "common/err.h"
#include "common/strbuf.h"

#define KF_BROKER_INGEST_RATE_DEFAULT 500     /* log + metric messages/s per source */
#define KF_BROKER_INGEST_BURST_DEFAULT 2000   /* bucket size per source */
#define KF_BROKER_LOG_RING_DEFAULT 1000       /* events kept for log tail */
#define KF_BROKER_CONTEXTS_DEFAULT 16384      /* rpc requests in flight, at most */
#define KF_BROKER_MAX_WAIT_DEFAULT 30000      /* cap of a lease long-poll, ms */
#define KF_BROKER_DB_TIMEOUT_DEFAULT 30000    /* an unanswered transaction: reconnect */
#define KF_BROKER_DB_SLOW_DEFAULT 1000        /* a transaction this long: WARN */
#define KF_BROKER_THREAD_NICE_DEFAULT (-5)    /* loop and database thread */
#define KF_BROKER_EVENT_BUNDLE_DEFAULT KF_BUS_BUNDLE_MAX_PARTS /* events per message */

struct kf_broker_config {
	const char *conninfo;          /* libpq string; "" = libpq's PG* defaults */
	struct kf_bus_addrs addrs;     /* ingest, events, rpc */
	const char *token_file;        /* NULL = no authorisation (warned) */
	bool worker_auth;              /* hello/lease/progress/complete need the token too */
	uint32_t ingest_rate;          /* msgs/s per source (log, metric) */
	uint32_t ingest_burst;
	uint32_t log_ring;             /* events kept for log tail */
	uint32_t contexts;             /* rpc contexts */
	uint32_t max_wait_ms;          /* cap of lease wait_ms */
	uint32_t event_bundle;         /* most events in one message on events; 1 = no bundles */
	uint32_t db_timeout_ms;        /* store answer timeout; 0 = wait for ever */
	uint32_t db_slow_ms;           /* WARN of a transaction this long; 0 = never */
	int thread_nice;               /* nice of the loop and database threads; 0 = leave */
};

enum kf_broker_config_action {
	KF_BROKER_RUN = 0,
	KF_BROKER_HELP = 1,     /* --help: usage on stdout, exit 0 */
	KF_BROKER_VERSION = 2,  /* --version: exit 0 */
};

/*
 * Fills cfg from argv (getopt_long) and the environment (getenv). On a
 * usage error returns KF_EINVAL with a lower-case message in msg (the caller
 * prints it and exits 2). Strings in cfg point into argv or the environment.
 */
enum kf_err kf_broker_config_parse(struct kf_broker_config *cfg, int argc, char **argv,
	enum kf_broker_config_action *action, struct kf_strbuf *msg);

/* The --help text. */
const char *kf_broker_usage(void);

#endif
