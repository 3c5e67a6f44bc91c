/*
 * metrics_snap.h — the plain data model of metrics: descriptors, names, and
 * snapshots (families → series → value or histogram buckets).
 *
 * A snapshot ("msnap") is what the exposition writers (expo.h) print and what
 * the bus carries. The registry (metrics.h) produces one with
 * kf_metrics_snapshot(); any other code (the gateway aggregating the series
 * of many workers) can build one by hand with the functions below and print
 * it with the same writers.
 *
 * Rules:
 *  - Values are cumulative: a counter's total since its (source, incarnation)
 *    started, a histogram's bucket counts since then. Deltas are "the series
 *    that changed", never differences.
 *  - A snapshot owns every string and array it points at; it copies what it is
 *    given. Families and series are heap objects whose addresses stay valid
 *    until kf_msnap_release(), whatever is added later.
 *  - Histogram buckets are cumulative (`buckets[i]` = observations <= bounds[i])
 *    and the +Inf bucket is not stored: it is `count`, so `+Inf == _count`
 *    holds by construction.
 *  - Not thread-safe: one owner at a time.
 */
#ifndef KF_TELEMETRY_METRICS_SNAP_H
#define KF_TELEMETRY_METRICS_SNAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

enum kf_metric_type {
	KF_METRIC_COUNTER = 0,
	KF_METRIC_GAUGE = 1,
	KF_METRIC_HISTOGRAM = 2,
};

/* Returns "counter", "gauge" or "histogram"; "unknown" for other values. */
const char *kf_metric_type_name(enum kf_metric_type type);

/*
 * What a metric family is. Used to register a family (metrics.h) and to add
 * one to a snapshot; the callee copies everything, so a descriptor may live on
 * the stack. telemetry/contract.h holds the descriptors of the contract
 * metrics; new metrics are declared the same way, in tables.
 */
struct kf_metric_desc {
	const char *name;                 /* [a-zA-Z_:][a-zA-Z0-9_:]* */
	const char *help;                 /* UTF-8; required by the registry, may be "" in a snapshot */
	enum kf_metric_type type;
	const char *const *label_names;   /* n_labels names, [a-zA-Z_][a-zA-Z0-9_]*, not "__*" */
	size_t n_labels;
	const double *buckets;            /* histogram: finite, strictly increasing upper bounds */
	size_t n_buckets;                 /* (+Inf is implicit and must not be listed) */
	size_t max_series;                /* registry: cap on children; 0 = KF_METRICS_MAX_SERIES */
};

/* Default cap on the series of one family (cardinality guard). */
#define KF_METRICS_MAX_SERIES 1000

/* Prometheus data-model name rules. Thread-safe, pure. */
bool kf_metric_name_valid(const char *name);
/* Also rejects names starting with "__" (reserved for Prometheus itself). */
bool kf_metric_label_name_valid(const char *name);

/*
 * Checks a descriptor: valid names (KF_EMETRICNAME for the metric name, a
 * label name, a duplicate label name, or "le" on a histogram), help not NULL
 * and valid UTF-8 (KF_EUTF8), buckets finite and strictly increasing, none on
 * other types (KF_EINVAL). Returns KF_OK when the descriptor may be used.
 */
enum kf_err kf_metric_desc_check(const struct kf_metric_desc *desc);

/*
 * True when two families could not be exposed side by side because a sample
 * or family name of one is a sample or family name of the other (histogram
 * "x" owns x_bucket, x_sum, x_count; counter "x" and counter "x_total" both
 * become OpenMetrics family "x"). Both descriptors must be valid.
 */
bool kf_metric_desc_collide(const struct kf_metric_desc *a, const struct kf_metric_desc *b);

struct kf_msnap_series {
	char **label_values;   /* family->n_labels UTF-8 strings, owned */
	double value;          /* counter, gauge */
	uint64_t *buckets;     /* histogram: family->n_bounds cumulative counts, owned */
	uint64_t count;        /* histogram: number of observations (the +Inf bucket) */
	double sum;            /* histogram: sum of observations */
	uint64_t changed_gen;  /* registry generation of its last change; 0 when built by hand */
};

struct kf_msnap_family {
	char *name;
	char *help;
	enum kf_metric_type type;
	char **label_names;
	size_t n_labels;
	double *bounds;        /* histogram upper bounds, without +Inf */
	size_t n_bounds;
	struct kf_msnap_series **series;
	size_t n_series;
	size_t alloc_series;
};

struct kf_msnap {
	struct kf_msnap_family **families;
	size_t n_families;
	size_t alloc_families;
	uint64_t generation;   /* registry snapshots: pass it as since_gen next time */
	bool delta;            /* only the series changed since some generation */
};

#define KF_MSNAP_INIT { NULL, 0, 0, 0, false }

void kf_msnap_init(struct kf_msnap *snap);
/* Frees every family and series; leaves an empty snapshot. */
void kf_msnap_release(struct kf_msnap *snap);

/*
 * Appends a family described by desc (checked with kf_metric_desc_check; its
 * max_series is ignored). KF_EEXIST when a family of that name is already in
 * the snapshot, KF_EMETRICNAME when it collides with one (see
 * kf_metric_desc_collide), KF_ENOMEM. *out (may be NULL) receives the family.
 */
enum kf_err kf_msnap_add_family(struct kf_msnap *snap, const struct kf_metric_desc *desc,
				struct kf_msnap_family **out);

/* The family called name, or NULL. Linear in the number of families. */
struct kf_msnap_family *kf_msnap_find_family(const struct kf_msnap *snap, const char *name);

/*
 * Appends a zeroed series with these label values (fam->n_labels strings,
 * copied; NULL when the family has no labels). Does NOT look for a duplicate:
 * use kf_msnap_family_find_series first when one may exist. KF_EINVAL for a
 * NULL value, KF_EUTF8 for invalid UTF-8, KF_ENOMEM.
 */
enum kf_err kf_msnap_family_add_series(struct kf_msnap_family *fam,
				       const char *const *label_values,
				       struct kf_msnap_series **out);

/* The series with exactly these label values, or NULL. Linear. */
struct kf_msnap_series *kf_msnap_family_find_series(const struct kf_msnap_family *fam,
						    const char *const *label_values);

/*
 * Sorts families by name and series by label values (byte order, label by
 * label), the stable order the writers and the golden files rely on.
 */
void kf_msnap_sort(struct kf_msnap *snap);

/*
 * Checks what a hand-built snapshot could get wrong: duplicate label tuples in
 * a family (KF_EEXIST; the snapshot must be sorted), histogram buckets that
 * decrease or exceed count (KF_ERANGE), a counter that is negative or NaN
 * (KF_ERANGE: OpenMetrics totals are non-NaN and start at 0). KF_OK when the
 * writers may print it.
 */
enum kf_err kf_msnap_check(const struct kf_msnap *snap);

#endif
