/*
 * broker/metrics_pub.h — a metrics snapshot as a proto metric update.
 *
 * An adapter: bus/ has no proto-aware metric sink yet, so the broker turns
 * kf_metrics_snapshot() output into struct kf_msg_metric itself. Values stay
 * cumulative; a delta snapshot (since a generation) gives a delta update
 * (full = false), every few seconds the broker sends a full one.
 */
#ifndef KF_BROKER_METRICS_PUB_H
#define KF_BROKER_METRICS_PUB_H

#include <stdbool.h>

#include "broker/jobjson.h"
#include "telemetry/metrics.h"
#include "telemetry/metrics_snap.h"
#include "proto/msg.h"

/* Fills out (arrays in `a`, strings borrowed from snap: keep snap alive
 * until out is encoded). KF_OK, KF_ENOMEM, KF_ETOOBIG (more series than
 * KF_MSG_MAX_SERIES or buckets than KF_MSG_MAX_BUCKETS). */
enum kf_err kf_metrics_pub_build(const struct kf_msnap *snap, const char *source,
	uint64_t incarnation, bool full, struct kf_jarena *a, struct kf_msg_metric *out);

#endif
