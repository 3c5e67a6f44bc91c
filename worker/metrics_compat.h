/*
 * worker/metrics_compat.h — telemetry's metrics headers, includable next to
 * proto/.
 *
 * An adapter for a clash between two libraries: proto/telemetry_msgs.h
 * (enum kf_msg_metric_type) and telemetry/metrics_snap.h (enum
 * kf_metric_type) both name their enumerators KF_METRIC_COUNTER,
 * KF_METRIC_GAUGE and KF_METRIC_HISTOGRAM, so no translation unit can include
 * both. Files of worker/ include telemetry's metrics only through this
 * header, which renames telemetry's enumerators KF_TM_METRIC_*; the values
 * are the same (0, 1, 2). The broker has the same adapter
 * (broker/metrics_compat.h); remove both when the libraries agree.
 */
#ifndef KF_WORKER_METRICS_COMPAT_H
#define KF_WORKER_METRICS_COMPAT_H

#ifdef KF_TELEMETRY_METRICS_SNAP_H
#error "include telemetry/metrics*.h through worker/metrics_compat.h in worker/"
#endif

#define KF_METRIC_COUNTER KF_TM_METRIC_COUNTER
#define KF_METRIC_GAUGE KF_TM_METRIC_GAUGE
#define KF_METRIC_HISTOGRAM KF_TM_METRIC_HISTOGRAM
#include "telemetry/contract.h"
#include "telemetry/metrics.h"
#include "telemetry/metrics_snap.h"
#include "telemetry/process.h"
#undef KF_METRIC_COUNTER
#undef KF_METRIC_GAUGE
#undef KF_METRIC_HISTOGRAM

#endif
