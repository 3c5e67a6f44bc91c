/*
 * expo.h — exposition: a metrics snapshot (metrics_snap.h) as Prometheus text
 * 0.0.4 or OpenMetrics 1.0 text, and the choice between them from an HTTP
 * Accept header. No sockets: the gateway owns HTTP.
 *
 * What the writers guarantee, per family (in snapshot order; registry
 * snapshots are sorted):
 *  - one HELP and one TYPE line before the samples (0.0.4: HELP, TYPE;
 *    OpenMetrics: TYPE, HELP, the order its spec recommends); an empty help
 *    text writes no HELP line;
 *  - label values escaped as \\ \" \n; help text as \\ \n (0.0.4) or
 *    \\ \" \n (OpenMetrics);
 *  - floats in their shortest round-trip form, spelled as Prometheus's Go
 *    client spells them (strconv 'g', -1: 0.25, 2500, 1e+06, 1.5e-07), and
 *    +Inf, -Inf, NaN; OpenMetrics adds ".0" to integral floats ("1.0"),
 *    including `le` values; counts (buckets, _count) are written as integers;
 *  - histograms: cumulative _bucket lines in bound order, then le="+Inf"
 *    whose value is _count, then _sum and _count;
 *  - OpenMetrics counters: the TYPE/HELP family name loses a `_total` suffix
 *    and the sample is always `<family>_total` (keyforge_worker_heartbeats →
 *    sample keyforge_worker_heartbeats_total); 0.0.4 prints the registered
 *    name as is. `_created` samples are not written. The body ends "# EOF\n".
 * Thread-safety: pure functions of their arguments.
 */
#ifndef KF_TELEMETRY_EXPO_H
#define KF_TELEMETRY_EXPO_H

#include "common/err.h"
#include "common/strbuf.h"
#include "telemetry/metrics_snap.h"

enum kf_expo_format {
	KF_EXPO_TEXT = 0,        /* Prometheus text exposition 0.0.4 (the default) */
	KF_EXPO_OPENMETRICS = 1, /* OpenMetrics 1.0.0 text */
};

#define KF_EXPO_TEXT_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define KF_EXPO_OPENMETRICS_CONTENT_TYPE \
	"application/openmetrics-text; version=1.0.0; charset=utf-8"

/* The Content-Type of a format's 1.0.0 / 0.0.4 body; static, never NULL. */
const char *kf_expo_content_type(enum kf_expo_format fmt);

/*
 * Picks the format for an HTTP Accept header (NULL or "" → 0.0.4). Media
 * ranges are weighed by their q (RFC 9110: 0..1, three decimals; q=0 means
 * "not this"; a range with an unparsable q is ignored); the highest q wins, a
 * tie goes to the more specific range, then to the earlier one.
 *  - application/openmetrics-text with version 1.0.0, 0.0.1 or none → OpenMetrics;
 *  - text/plain with version 0.0.4 or none, text/ *, * / *  → 0.0.4;
 *  - anything else (other versions, other types) is not acceptable.
 * When nothing acceptable remains, 0.0.4 (what Prometheus's Go client does).
 * *content_type (may be NULL) receives the Content-Type to answer with: the
 * OpenMetrics one names version 0.0.1 when that is the range that won.
 */
enum kf_expo_format kf_expo_negotiate(const char *accept, const char **content_type);

/*
 * Appends the exposition of snap in fmt (with "# EOF" for OpenMetrics).
 * Returns KF_ENOMEM when sb ran out of memory (sb->oom), else KF_OK. The
 * snapshot is printed as it is: run kf_msnap_check() on hand-built ones.
 */
enum kf_err kf_expo_write(struct kf_strbuf *sb, const struct kf_msnap *snap,
			  enum kf_expo_format fmt);

/*
 * The same in parts, to print several snapshots into one body (their family
 * names must differ): kf_expo_write_families() for each, then
 * kf_expo_write_end() once (it writes "# EOF\n" for OpenMetrics).
 */
void kf_expo_write_families(struct kf_strbuf *sb, const struct kf_msnap *snap,
			    enum kf_expo_format fmt);
enum kf_err kf_expo_write_end(struct kf_strbuf *sb, enum kf_expo_format fmt);

/* A sample value as the format spells it (see above). */
void kf_expo_add_double(struct kf_strbuf *sb, double v, enum kf_expo_format fmt);

/* Escaped text: label values (quotes escaped) or help (quotes escaped only in
 * OpenMetrics). */
void kf_expo_add_label_value(struct kf_strbuf *sb, const char *s);
void kf_expo_add_help(struct kf_strbuf *sb, const char *s, enum kf_expo_format fmt);

#endif
