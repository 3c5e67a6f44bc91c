/*
 * metrics.h — the metrics registry: counters, gauges and histograms with
 * label sets, updated lock-free on the hot path, read as snapshots.
 *
 * Model (Prometheus's): a registry holds families, registered once with a
 * name, help text, type and label names (struct kf_metric_desc in
 * metrics_snap.h). A family holds one child per tuple of label values,
 * created on first use; the child is the handle (struct kf_counter, ...) that
 * hot code caches and updates. Families and children live until
 * kf_metrics_free(): a cached handle never dangles while the registry lives.
 *
 *	struct kf_metrics *reg;
 *	struct kf_metric_family *fam;
 *	struct kf_counter *ok;
 *	kf_metrics_new(&reg);
 *	kf_metrics_register(reg, &desc, &fam);          // once, at start
 *	kf_metric_family_counter(fam, (const char *[]){ "success" }, &ok);
 *	kf_counter_inc(ok);                              // hot path: a few ns
 *
 * Threads: every function is thread-safe. Updates are relaxed atomic adds on
 * per-thread shards (KF_METRICS_SHARDS cache lines per child, a thread picks
 * one at its first update), so two threads updating the same series do not
 * share a cache line until there are more threads than shards. Registration
 * and child lookup take a mutex: do them once, keep the handle.
 *
 * Reading: kf_metrics_snapshot() runs the collectors, then copies every
 * series into a struct kf_msnap (metrics_snap.h). A snapshot taken while
 * updates run sees each shard's value at some instant; a histogram's _sum may
 * lag its buckets by the observations in flight, its buckets never disagree
 * with its _count (the count is their sum).
 */
#ifndef KF_TELEMETRY_METRICS_H
#define KF_TELEMETRY_METRICS_H

#include <stdint.h>

#include "common/err.h"
#include "telemetry/metrics_snap.h"

/* Cache lines of counters per child. 2 cores here; 4 leaves room for helper
 * threads. Must be a power of two. */
#ifndef KF_METRICS_SHARDS
#define KF_METRICS_SHARDS 4
#endif

struct kf_metrics;
struct kf_metric_family;
struct kf_counter;
struct kf_gauge;
struct kf_histogram;

/* --- registry -------------------------------------------------------------- */

/* Creates an empty registry. KF_ENOMEM. */
enum kf_err kf_metrics_new(struct kf_metrics **out);
/* Frees the registry, its families and every handle. NULL is safe. No thread
 * may use a handle of it any more. */
void kf_metrics_free(struct kf_metrics *reg);

/*
 * Registers a family (desc is copied) and sets *out (may be NULL). Registering
 * a descriptor identical to a registered one (name, help, type, labels,
 * buckets) returns KF_OK and that family, so two modules may declare the same
 * metric. Errors: what kf_metric_desc_check() returns; KF_EINVAL for empty
 * help text; KF_EEXIST when the name is taken by a different descriptor;
 * KF_EMETRICNAME when its sample names collide with another family's
 * (kf_metric_desc_collide); KF_ENOMEM. A family without labels gets its only
 * child at once, so it is exposed (at 0) from registration on.
 */
enum kf_err kf_metrics_register(struct kf_metrics *reg, const struct kf_metric_desc *desc,
				struct kf_metric_family **out);

/* The family registered under name, or NULL. */
struct kf_metric_family *kf_metrics_find(struct kf_metrics *reg, const char *name);

/* The family's type and descriptor (strings owned by the registry). */
const struct kf_metric_desc *kf_metric_family_desc(const struct kf_metric_family *fam);

/*
 * The child for these label values (n_labels UTF-8 strings, copied; NULL when
 * the family has no labels), created on first use. Errors: KF_EINVAL (the
 * family is of another type, or a NULL value), KF_EUTF8, KF_ECARDINALITY (the
 * family already has max_series children), KF_ENOMEM.
 */
enum kf_err kf_metric_family_counter(struct kf_metric_family *fam, const char *const *label_values,
				     struct kf_counter **out);
enum kf_err kf_metric_family_gauge(struct kf_metric_family *fam, const char *const *label_values,
				   struct kf_gauge **out);
enum kf_err kf_metric_family_histogram(struct kf_metric_family *fam,
				       const char *const *label_values,
				       struct kf_histogram **out);

/* Shorthands: register an unlabelled family and return its only child. */
enum kf_err kf_metrics_counter(struct kf_metrics *reg, const char *name, const char *help,
			       struct kf_counter **out);
enum kf_err kf_metrics_gauge(struct kf_metrics *reg, const char *name, const char *help,
			     struct kf_gauge **out);
enum kf_err kf_metrics_histogram(struct kf_metrics *reg, const char *name, const char *help,
				 const double *buckets, size_t n_buckets,
				 struct kf_histogram **out);

/*
 * A collector refreshes values that live elsewhere (the process metrics read
 * /proc) just before each snapshot. It is called with no registry lock held,
 * one snapshot at a time, and may use any handle of the registry. Collectors
 * run in the order they were added. release (may be NULL) is called with arg
 * by kf_metrics_free(). KF_EINVAL for a NULL fn, KF_ENOMEM (release is then
 * not called: arg stays the caller's).
 */
typedef void (*kf_metrics_collect_fn)(struct kf_metrics *reg, void *arg);
enum kf_err kf_metrics_add_collector(struct kf_metrics *reg, kf_metrics_collect_fn fn,
				     void (*release)(void *arg), void *arg);

/*
 * Takes a snapshot into out (initialised by the caller; what it held is
 * released first). Runs the collectors first, then sorts (kf_msnap_sort).
 *
 * Change tracking: every snapshot gets the next generation number
 * (out->generation, starting at 1). Each series remembers the generation in
 * which a snapshot first saw its current value. since_gen == 0 asks for every
 * family and series; since_gen == g asks only for the series whose value
 * changed after snapshot g was taken (out->delta is then true, and families
 * without such series are left out). A publisher keeps the generation of its
 * last snapshot and passes it back; several readers may do so independently.
 * Values are always cumulative. KF_ENOMEM (out is then empty).
 */
enum kf_err kf_metrics_snapshot(struct kf_metrics *reg, uint64_t since_gen, struct kf_msnap *out);

/* --- hot path (lock-free, thread-safe, no allocation) ----------------------- */

void kf_counter_inc(struct kf_counter *c);
void kf_counter_add_u64(struct kf_counter *c, uint64_t n);
/* Adds v >= 0. KF_ERANGE (and no change) for a negative, NaN or infinite v:
 * counters only go up. */
enum kf_err kf_counter_add(struct kf_counter *c, double v);
/* Sum of all shards; for tests and collectors. */
double kf_counter_value(const struct kf_counter *c);
/*
 * For collectors only: mirrors a cumulative value kept elsewhere (CPU seconds
 * from /proc). KF_ERANGE for a negative or non-finite v. Do not mix with
 * inc/add on the same counter: concurrent adds may be lost.
 */
enum kf_err kf_counter_set(struct kf_counter *c, double v);

void kf_gauge_set(struct kf_gauge *g, double v);
void kf_gauge_add(struct kf_gauge *g, double v);
void kf_gauge_inc(struct kf_gauge *g);
void kf_gauge_dec(struct kf_gauge *g);
double kf_gauge_value(const struct kf_gauge *g);

/* Counts v in the first bucket whose bound is >= v (Prometheus's "le") and
 * adds it to the sum. NaN is ignored (it would poison _sum forever). */
void kf_histogram_observe(struct kf_histogram *h, double v);
/* The same for integer observations (nanoseconds): cheaper, exact sum. */
void kf_histogram_observe_u64(struct kf_histogram *h, uint64_t v);
/* Totals over all shards; for tests. */
uint64_t kf_histogram_count(const struct kf_histogram *h);
double kf_histogram_sum(const struct kf_histogram *h);

#endif
