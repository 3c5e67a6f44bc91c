/*
 * filter.h — KEYFORGE_LOG, the EnvFilter grammar of tracing-subscriber.
 *
 * A spec is a comma-separated list of directives (commas inside [] and {}
 * belong to the directive):
 *
 *	level                       default for every target ("info", "off", "3")
 *	target                      target and below at TRACE
 *	target=level                target and below (prefix match, as tracing)
 *	target[span]=level          inside spans named `span` whose target
 *	                            starts with `target`
 *	[span{field=value,…}]=level inside spans with those field values
 *	[{field}]=level             inside any span that declares `field`
 *
 * Levels: off error warn info debug trace (any case) or 0..5. A missing
 * "=level" means trace. Values: true/false match bool fields, numbers match
 * integer and float fields numerically, and the text (optionally in double
 * quotes) matches string fields exactly.
 *
 * Decision (tracing's EnvFilter): directives without [..] are static: the
 * most specific one whose target is a prefix of the event's target decides
 * (longest target, then the later one); none matching means disabled.
 * Directives with [..] are dynamic: each span takes the level of the most
 * specific dynamic directive it matches (longest target prefix of the
 * span's target, then having a span name, then more fields, then later), and
 * an event is also enabled when any span entered on its thread has a level
 * that allows it. A span itself is enabled by the static directives, by its
 * enclosing spans, or when some dynamic directive names it.
 *
 * An empty spec, or one with no valid directive, means "info". Invalid
 * directives are reported through the callback (once each) and skipped.
 *
 * A parsed filter is immutable and may be read from any thread.
 */
#ifndef KF_TELEMETRY_FILTER_H
#define KF_TELEMETRY_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "telemetry/log.h"

/* Longest spec accepted; longer ones fail with KF_ETOOBIG. */
#define KF_LOG_FILTER_MAX_SPEC 65536

struct kf_log_filter;

/* Called once per invalid directive, in order; `directive` points into the
 * spec given to kf_log_filter_parse (not NUL-terminated), `reason` is a
 * static lower-case phrase. */
typedef void (*kf_log_filter_report_fn)(void *ctx, const char *directive, size_t len,
					const char *reason);

/* Parses `spec` (NULL = ""). On KF_OK *out owns a new filter (free it with
 * kf_log_filter_free). KF_ETOOBIG for an overlong spec, KF_ENOMEM. Invalid
 * directives do not fail the parse. `report` may be NULL. */
enum kf_err kf_log_filter_parse(const char *spec, struct kf_log_filter **out,
				kf_log_filter_report_fn report, void *ctx);
void kf_log_filter_free(struct kf_log_filter *filter);

/* Directives kept, and directives skipped as invalid. */
size_t kf_log_filter_directive_count(const struct kf_log_filter *filter);
size_t kf_log_filter_invalid_count(const struct kf_log_filter *filter);

/* Level from the static directives for `target` (KF_LEVEL_OFF if none). */
enum kf_log_level kf_log_filter_static_level(const struct kf_log_filter *filter,
					     const char *target);
/* Most verbose level any dynamic directive grants; KF_LEVEL_OFF if none. */
enum kf_log_level kf_log_filter_dynamic_max(const struct kf_log_filter *filter);
/* True when the filter has at least one dynamic directive. */
bool kf_log_filter_has_dynamic(const struct kf_log_filter *filter);

/* Level a span with these properties takes from the dynamic directives, or
 * -1 when none matches. Fields of type KF_FIELD_EMPTY match only
 * presence-only matchers. String lengths must be measured (not SIZE_MAX). */
int kf_log_filter_span_level(const struct kf_log_filter *filter, const char *target,
			     const char *name, const struct kf_field *fields, size_t n_fields);
/* True when a dynamic directive names such a span (target prefix, name and
 * declared field names; values are not compared). */
bool kf_log_filter_names_span(const struct kf_log_filter *filter, const char *target,
			      const char *name, const struct kf_field *fields, size_t n_fields);

/* The whole decision for an event of `level` and `target` inside `spans`
 * (root first). */
bool kf_log_filter_enabled(const struct kf_log_filter *filter, enum kf_log_level level,
			   const char *target, const struct kf_span_info *const *spans,
			   size_t n_spans);

/* Parses a level name ("info", "OFF", "3"); false if it is none. */
bool kf_log_level_parse(const char *s, size_t len, enum kf_log_level *out);

#endif
