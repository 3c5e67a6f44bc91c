/*
 * gateway/health.h — the readiness probe (DESIGN.md §4, §6): a thread that
 * checks PostgreSQL every interval and caches the answer, so /health/ready
 * answers at once whatever the database does.
 *
 * "Ready" means: a connection works, and the highest version recorded in
 * schema_migrations equals the newest migration this binary carries
 * (kf_migrate_newest(), from broker/migrate.h and the embedded sql/).
 *
 * The probe never waits on PostgreSQL without a bound: connecting uses
 * libpq's connect_timeout (2 s, unless the conninfo says otherwise) and the
 * query runs asynchronously with a 2 s deadline, after which the connection
 * is dropped and the next probe connects again. A result older than three
 * intervals is reported as not ready by the HTTP handler (the probe is
 * stuck), so a hung server cannot keep the gateway "ready".
 *
 * Threads: start/stop from the main thread; kf_gw_health_get from any.
 */
#ifndef KF_GATEWAY_HEALTH_H
#define KF_GATEWAY_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

#define KF_GW_HEALTH_DETAIL 256

struct kf_gw_health_result {
	bool probed;                   /* at least one probe finished */
	bool db_ok;                    /* connected and the query answered */
	bool migrations_ok;            /* applied == newest */
	int applied;                   /* -1 when unknown */
	int newest;
	uint64_t checked_ns;           /* monotonic time of the result */
	uint64_t probes;               /* probes run */
	char db_detail[KF_GW_HEALTH_DETAIL];
	char migrations_detail[KF_GW_HEALTH_DETAIL];
};

struct kf_gw_health;

/*
 * Starts the probe thread. conninfo may be NULL (libpq's defaults: PGHOST,
 * ...); it is copied. KF_ENOMEM, KF_EIO (thread).
 */
enum kf_err kf_gw_health_start(struct kf_gw_health **out, const char *conninfo,
			       uint64_t interval_ns);
/* Wakes the thread, waits for it (at most the current probe's deadline),
 * closes the connection, frees. NULL-safe. */
void kf_gw_health_stop(struct kf_gw_health *h);
/* Copies the cached result. */
void kf_gw_health_get(struct kf_gw_health *h, struct kf_gw_health_result *out);
uint64_t kf_gw_health_interval_ns(const struct kf_gw_health *h);

/*
 * The readiness verdict of a cached result at monotonic time now_ns:
 * probed, database answered, migrations at the newest, and the result not
 * older than KF_GW_HEALTH_STALE_INTERVALS intervals. Pure.
 */
#define KF_GW_HEALTH_STALE_INTERVALS 3
bool kf_gw_health_ready(const struct kf_gw_health_result *r, uint64_t interval_ns,
			uint64_t now_ns);

#endif
