/* A registry filled with every case the exposition must get right: the
 * contract metrics, escaping, special floats, fractional counters, labelled
 * histograms. Shared by test_expo (golden files) and test_metrics_promtool. */
#ifndef KF_TEST_METRICS_SAMPLE_H
#define KF_TEST_METRICS_SAMPLE_H

#include "common/err.h"
#include "telemetry/metrics.h"

/* Registers and updates the sample metrics in reg; deterministic. */
enum kf_err kf_test_metrics_sample(struct kf_metrics *reg);

#endif
