/*
 * gateway/aggregate.h — the gateway's metric aggregator (DESIGN.md §5,
 * docs/gateway.md "Aggregation").
 *
 * Producers (workers, the broker) publish metric updates: the series that
 * changed, each with its CUMULATIVE value for the producer's (source,
 * incarnation), plus a full update every few seconds. The aggregator turns
 * them into one set of series, summed over sources, that never lies to
 * Prometheus:
 *
 *  - An instance is one (source, incarnation). Each keeps the last value of
 *    each of its series.
 *  - Exposed counter/histogram = retired sum + the live instances' values.
 *    Exposed gauge = the live instances' values (sum). Histograms are summed
 *    bucket by bucket (identical bounds are required).
 *  - Restart: an update with a new incarnation for a source retires the old
 *    instance: its counters and histograms are folded into the retired sum
 *    (so the exposed total never goes down), its gauges are dropped, and
 *    later updates of that old incarnation are ignored as stale.
 *  - Expiry: a series not updated for `series_ttl_ns`, a series missing from
 *    a full update, or every series of an instance the broker reports dead
 *    (kf_gw_agg_depart) is expired: a counter/histogram is folded into the
 *    retired sum and kept as a tombstone; a gauge is dropped. If the same
 *    incarnation later reports that series again (a network partition
 *    healed), the tombstone is taken back out of the retired sum before the
 *    new value counts, so nothing is counted twice.
 *  - Within one instance a counter or histogram that goes DOWN is a reset:
 *    the old value is folded into the retired sum first.
 *  - A counter/histogram series, once seen, stays exposed for the life of
 *    the gateway (it must not decrease); a gauge series disappears with its
 *    last live instance.
 *  - Rounding: a counter, and a histogram's _sum, is never exposed below
 *    what the previous snapshot showed. The floating-point sum is taken in
 *    another order and grouping once a series is folded or a source joins,
 *    and can come out an ulp lower, which Prometheus would read as a reset.
 *    Exempt: a _sum one of whose producers lowered its own without a reset
 *    (observations below 0); it is exposed as computed.
 *  - Ordering: the envelope sequence number of each instance must grow.
 *    An update whose seq is not newer than the last one applied is ignored
 *    (stale). When the update says its producer numbers metric updates in
 *    a sequence of their own (seq_gaps), a jump counts a sequence gap and
 *    the messages missed; a producer that numbers all its messages in one
 *    sequence (workers: heartbeats and logs in between) jumps normally.
 *    seq 0 means "not numbered": no check.
 *  - Caps: max_series label sets per family, max_families families,
 *    max_sources sources (a source whose instance has only tombstones left
 *    is evicted to make room, least recently active first). A refused
 *    series is counted by reason (enum kf_gw_drop), every time.
 *  - Eviction forgets the instance but not its values, which stay in the
 *    retired sum. The last 1024 evicted (source, incarnation) pairs are
 *    remembered, with the incarnations the source had retired. If that
 *    instance reports again, its counters and histograms count on from the
 *    first values it reports then, instead of adding their whole cumulative
 *    values on top of their own tombstones. What it counted while forgotten
 *    is lost. A retired incarnation of it is stale, as before.
 *  - The four contract metrics (telemetry/contract.h) are pre-declared with
 *    their exact types, labels and buckets: a producer's series that
 *    disagrees with them is dropped (type/labels/buckets). Any other family
 *    takes its type, label names and buckets from the first series seen.
 *
 * Time comes from the caller (now_ns, monotonic), so tests control it.
 * Not thread-safe: the gateway serialises every call with one mutex.
 * The aggregator has its own plain types (struct kf_gw_series) so that it
 * depends on neither proto/ nor the registry: ingest.c converts messages.
 */
#ifndef KF_GATEWAY_AGGREGATE_H
#define KF_GATEWAY_AGGREGATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct kf_msnap;
struct kf_gw_agg;

enum kf_gw_mtype {
	KF_GW_COUNTER = 0,
	KF_GW_GAUGE = 1,
	KF_GW_HISTOGRAM = 2,
};

struct kf_gw_label {
	const char *name;
	const char *value;
};

/* One series of an update. Borrowed for the duration of the call. */
struct kf_gw_series {
	const char *name;
	enum kf_gw_mtype type;
	const char *help;                 /* may be NULL */
	const struct kf_gw_label *labels;
	size_t n_labels;
	double value;                     /* counter (>= 0, finite), gauge */
	const double *bucket_le;          /* histogram: finite, increasing */
	const uint64_t *bucket_count;     /* cumulative, <= count */
	size_t n_buckets;
	double sum;
	uint64_t count;
};

struct kf_gw_update {
	const char *source;
	uint64_t incarnation;
	uint64_t seq;                     /* envelope sequence number; 0 = none */
	bool seq_gaps;                    /* seq numbers metric updates only: count jumps */
	bool full;                        /* every series of the instance */
	const struct kf_gw_series *series;
	size_t n_series;
};

/* Why a series was refused; each has its own counter. */
enum kf_gw_drop {
	KF_GW_DROP_CAP = 0,      /* family already holds max_series label sets */
	KF_GW_DROP_FAMILIES,     /* max_families reached */
	KF_GW_DROP_SOURCES,      /* max_sources reached, none evictable */
	KF_GW_DROP_TYPE,         /* type differs from the family's */
	KF_GW_DROP_LABELS,       /* label names differ from the family's */
	KF_GW_DROP_BUCKETS,      /* histogram bounds differ from the family's */
	KF_GW_DROP_INVALID,      /* bad name, bad value, name collision */
	KF_GW_DROP_RESERVED,     /* a name the gateway exposes itself */
	KF_GW_DROP_COUNT
};

/* "cap", "families", "sources", "type", "labels", "buckets", "invalid",
 * "reserved"; "?" otherwise. */
const char *kf_gw_drop_name(enum kf_gw_drop why);

struct kf_gw_agg_config {
	uint64_t series_ttl_ns;   /* 0 = series never expire by time */
	size_t max_series;        /* label sets per family (>= 1) */
	size_t max_families;      /* contract families not counted */
	size_t max_sources;
	/* Family names (prefixes) the gateway exposes itself; NULL-terminated,
	 * may be NULL. The strings must outlive the aggregator. */
	const char *const *reserved_prefixes;
};

/* HELP text of a family whose producers sent none. */
#define KF_GW_NO_HELP "Aggregated by keyforge-gateway; its producers sent no help text."

#define KF_GW_SERIES_TTL_DEFAULT_NS (60ULL * 1000000000ULL)
#define KF_GW_MAX_SERIES_DEFAULT 1000
#define KF_GW_MAX_FAMILIES_DEFAULT 1000
#define KF_GW_MAX_SOURCES_DEFAULT 4096
#define KF_GW_AGG_CONFIG_INIT                                                         \
	{ .series_ttl_ns = KF_GW_SERIES_TTL_DEFAULT_NS, .max_series = KF_GW_MAX_SERIES_DEFAULT, \
	  .max_families = KF_GW_MAX_FAMILIES_DEFAULT, .max_sources = KF_GW_MAX_SOURCES_DEFAULT, \
	  .reserved_prefixes = NULL }

struct kf_gw_agg_stats {
	uint64_t updates;            /* updates applied (possibly with drops) */
	uint64_t stale_updates;      /* ignored: old seq or retired incarnation */
	uint64_t sequence_gaps;      /* seq jumps (updates with seq_gaps only) */
	uint64_t messages_missed;    /* sum of the jumps' sizes */
	uint64_t series_dropped[KF_GW_DROP_COUNT];
	uint64_t series_expired;     /* by ttl, absence from a full update, departure */
	uint64_t counter_resets;     /* a counter/histogram went down in one instance */
	uint64_t restarts;           /* instances retired by a new incarnation */
	uint64_t sources_evicted;    /* tombstone-only sources evicted for room */
	/* current sizes */
	uint64_t sources;            /* sources with an instance */
	uint64_t families;           /* families known, contract included */
	uint64_t series;             /* label sets held over all families */
	uint64_t instance_series;    /* live (not expired) series of all instances */
};

/* Creates an aggregator. KF_EINVAL for max_series == 0, KF_ENOMEM. The
 * config is copied. */
enum kf_err kf_gw_agg_new(struct kf_gw_agg **out, const struct kf_gw_agg_config *cfg);
/* NULL-safe. */
void kf_gw_agg_free(struct kf_gw_agg *agg);

/*
 * Applies one update. Returns KF_OK when it was applied (individual series
 * may still have been dropped: see the stats), KF_ESTALE when it was ignored
 * as stale, KF_EINVAL for a NULL/empty source, KF_EFULL when the source was
 * refused (max_sources), KF_ENOMEM (the aggregator stays consistent; the
 * update may be partly applied).
 */
enum kf_err kf_gw_agg_update(struct kf_gw_agg *agg, const struct kf_gw_update *upd,
			     uint64_t now_ns);

/*
 * The source has departed (the broker declared it dead): expires every
 * series of its instance now. incarnation 0 means "whatever incarnation is
 * current". KF_OK, KF_ENOENT when there is no such instance.
 */
enum kf_err kf_gw_agg_depart(struct kf_gw_agg *agg, const char *source, uint64_t incarnation,
			     uint64_t now_ns);

/* Expires the series not updated since now_ns - series_ttl_ns. Returns how
 * many series expired. Cheap when nothing is due. */
size_t kf_gw_agg_expire(struct kf_gw_agg *agg, uint64_t now_ns);

/*
 * Appends the aggregated families to snap (expiring what is due first): the
 * four contract families always (every keyforge_jobs_total status at 0 until
 * reported), then every other family with at least one series. Sorted.
 * Errors: what kf_msnap_* return (KF_ENOMEM); snap may then hold part.
 */
enum kf_err kf_gw_agg_snapshot(struct kf_gw_agg *agg, uint64_t now_ns, struct kf_msnap *snap);

void kf_gw_agg_stats(const struct kf_gw_agg *agg, struct kf_gw_agg_stats *out);

/*
 * Whether something stamped at at_ns (monotonic) is still fresh at now_ns:
 * not older than ttl_ns, or ttl_ns is 0 (never stale). A stamp at or after
 * now_ns has age 0: another thread may stamp between the caller's reading
 * of the clock and its reading of the stamp, and an unsigned now - at would
 * wrap and call it stale. Pure; any thread.
 */
bool kf_gw_fresh(uint64_t at_ns, uint64_t now_ns, uint64_t ttl_ns);

#endif
