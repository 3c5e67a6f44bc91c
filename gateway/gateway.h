/*
 * gateway/gateway.h — what the files of keyforge-gateway share (kf__gw_*).
 *
 * Threads:
 *   main      parses the config, starts the others, waits for SIGTERM/SIGINT
 *   ingest    receives metric updates and cluster status from the broker's
 *             monitor socket, applies them to the aggregator (ingest.c)
 *   probe     readiness probe of PostgreSQL every ~1 s (health.c)
 *   http      libmicrohttpd's threads: every request (http.c, expose.c)
 *
 * `lock` guards the aggregator and the job counts: ingest writes, a /metrics
 * request copies a snapshot out, both hold it for microseconds. Counters of
 * the bus are atomics. Nothing blocks while holding `lock`.
 *
 * This header must not include telemetry/metrics.h or proto/ (their enums
 * clash): files that need one of them include it themselves.
 */
#ifndef KF_GATEWAY_GATEWAY_H
#define KF_GATEWAY_GATEWAY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/strbuf.h"
#include "gateway/aggregate.h"
#include "gateway/config.h"

#define KF__GW_TARGET "keyforge::gateway"

/* Kinds of bus messages received (label "kind" of
 * keyforge_gateway_bus_messages_total). */
enum kf__gw_msg_kind {
	KF__GW_MSG_METRIC = 0,   /* metric update */
	KF__GW_MSG_STATUS,       /* cluster status */
	KF__GW_MSG_OTHER,        /* any other valid message on those topics */
	KF__GW_MSG_KIND_COUNT
};

/* Decode error classes (label "error" of keyforge_gateway_bus_decode_errors_total). */
#define KF__GW_DECODE_ERR_COUNT 14
/* Job states carried by cluster status (proto's enum kf_job_state). */
#define KF__GW_JOB_STATES_MAX 16

struct kf__gw_bus_stats {
	_Atomic uint64_t received[KF__GW_MSG_KIND_COUNT];
	_Atomic uint64_t decode_errors[KF__GW_DECODE_ERR_COUNT];
	_Atomic uint64_t sources_refused;  /* updates refused: max_sources */
	_Atomic uint64_t status_gaps;      /* jumps in the broker's cluster status seq */
	_Atomic uint64_t status_missed;
};

struct kf__gw_jobs {
	bool known;                        /* a cluster status arrived */
	uint64_t at_ns;                    /* monotonic time of the last one */
	uint64_t counts[KF__GW_JOB_STATES_MAX];
};

struct kf_gw_creds;
struct kf_gw_health;
struct kf__gw_ingest;
struct kf__gw_expose;
struct kf__gw_http;

struct kf__gw {
	const struct kf_gw_config *cfg;
	pthread_mutex_t lock;              /* agg, jobs */
	pthread_mutex_t render_lock;       /* one /metrics rendering at a time (expose.c) */
	struct kf_gw_agg *agg;
	struct kf__gw_jobs jobs;
	struct kf__gw_bus_stats bus;
	struct kf__gw_ingest *ingest;
	struct kf_gw_health *health;
	struct kf_gw_creds *creds;         /* NULL: /metrics is open */
	struct kf__gw_expose *expose;
	struct kf__gw_http *http;
	_Atomic bool shutting_down;
};

/* ---- ingest.c ----------------------------------------------------------- */

/* Dials cfg->monitor and starts the ingest thread. KF_OK, or the bus error
 * with a message in why. */
enum kf_err kf__gw_ingest_start(struct kf__gw *gw, struct kf_strbuf *why);
/* Closes the socket and joins the thread. NULL-safe on gw->ingest. */
void kf__gw_ingest_stop(struct kf__gw *gw);
/* Connections to the broker's monitor socket now (0 or 1). Any thread. */
unsigned kf__gw_ingest_peers(struct kf__gw *gw);
/* Label of decode error class i (< KF__GW_DECODE_ERR_COUNT). */
const char *kf__gw_decode_error_label(size_t i);
/* Names of the job states, in proto's order; returns how many (<= cap). */
size_t kf__gw_job_state_names(const char **names, size_t cap);

/* ---- expose.c ----------------------------------------------------------- */

/* The gateway's own registry (process_*, keyforge_gateway_*). */
enum kf_err kf__gw_expose_new(struct kf__gw *gw);
void kf__gw_expose_free(struct kf__gw *gw);
/*
 * Writes the /metrics body: the aggregated families (contract first, at 0
 * until reported), the job counts per state, then the gateway's own. fmt is
 * an enum kf_expo_format. KF_OK or KF_ENOMEM.
 */
enum kf_err kf__gw_render_metrics(struct kf__gw *gw, int fmt, struct kf_strbuf *out);
/* Request accounting (any thread). route: index < KF__GW_ROUTES_MAX, with
 * its label (the same label for the same index every time); status: the
 * HTTP code (100..599). */
#define KF__GW_ROUTES_MAX 8
void kf__gw_count_request(struct kf__gw *gw, unsigned route, const char *route_label,
			  unsigned status);
/* reason: "missing", "malformed", "denied". */
void kf__gw_count_auth_failure(struct kf__gw *gw, const char *reason);

/* ---- http.c -------------------------------------------------------------- */

/* Binds cfg->http and starts libmicrohttpd. KF_EHTTP (or KF_EIO reading TLS
 * files) with a message in why. bound (may be NULL) receives "host:port"
 * with the real port. */
enum kf_err kf__gw_http_start(struct kf__gw *gw, struct kf_strbuf *bound, struct kf_strbuf *why);
/* Stops accepting, waits for the requests in flight, frees. NULL-safe. */
void kf__gw_http_stop(struct kf__gw *gw);

#endif
