/*
 * expose.c — what /metrics serves: the aggregated families, the job counts
 * per state, and the gateway's own registry (process_* and
 * keyforge_gateway_*; docs/gateway.md "Metrics of the gateway").
 *
 * The gateway's own counters live where they are counted (the aggregator's
 * stats, the bus atomics, the health cache); a collector copies them into the
 * registry just before each snapshot, so the hot paths never touch it. HTTP
 * request counts are the exception: counted directly, with the handles
 * cached per (route, status).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "gateway/gateway.h"
#include "gateway/health.h"
#include "kf_config.h"
#include "telemetry/contract.h"
#include "telemetry/expo.h"
#include "telemetry/log.h"
#include "telemetry/metrics.h"
#include "telemetry/process.h"

/* The broker publishes this gauge itself; the gateway fills it from cluster
 * status only when no producer does. */
#define JOBS_BY_STATE "keyforge_jobs_by_state"
#define STATUS_MIN 100
#define STATUS_MAX 599

static const char *const kind_label[] = { "kind" };
static const char *const error_label[] = { "error" };
static const char *const reason_label[] = { "reason" };
static const char *const http_labels[] = { "route", "code" };
static const char *const version_label[] = { "version" };
static const char *const state_label[] = { "state" };

enum fam {
	F_BUS_MESSAGES, F_BUS_DECODE_ERRORS, F_BUS_CONNECTED, F_BUS_GAPS, F_BUS_MISSED,
	F_SOURCES_REFUSED, F_UPDATES, F_UPDATES_STALE, F_DROPPED, F_EXPIRED, F_RESETS,
	F_RESTARTS, F_EVICTED, F_SOURCES, F_SERIES, F_HTTP, F_AUTH_FAILURES, F_READY,
	F_LOG_DROPPED, F_BUILD_INFO, F_COUNT
};

#define C KF_METRIC_COUNTER
#define G KF_METRIC_GAUGE
static const struct kf_metric_desc descs[F_COUNT] = {
	[F_BUS_MESSAGES] = { "keyforge_gateway_bus_messages_total",
		"Messages received from the broker's monitor socket, by kind (metric, status, other).",
		C, kind_label, 1, NULL, 0, 0 },
	[F_BUS_DECODE_ERRORS] = { "keyforge_gateway_bus_decode_errors_total",
		"Messages from the monitor socket dropped because they could not be decoded, by error.",
		C, error_label, 1, NULL, 0, 0 },
	[F_BUS_CONNECTED] = { "keyforge_gateway_bus_connected",
		"1 while the gateway is connected to the broker's monitor socket.",
		G, NULL, 0, NULL, 0, 0 },
	[F_BUS_GAPS] = { "keyforge_gateway_bus_sequence_gaps_total",
		"Jumps in the broker's sequence numbers seen on the monitor socket (messages "
		"lost between broker and gateway).", C, NULL, 0, NULL, 0, 0 },
	[F_BUS_MISSED] = { "keyforge_gateway_bus_messages_missed_total",
		"Messages from the broker missing according to its sequence numbers.",
		C, NULL, 0, NULL, 0, 0 },
	[F_SOURCES_REFUSED] = { "keyforge_gateway_updates_refused_total",
		"Metric updates refused because the gateway holds its maximum of sources.",
		C, NULL, 0, NULL, 0, 0 },
	[F_UPDATES] = { "keyforge_gateway_updates_total",
		"Metric updates applied to the aggregate.", C, NULL, 0, NULL, 0, 0 },
	[F_UPDATES_STALE] = { "keyforge_gateway_updates_stale_total",
		"Metric updates ignored as stale (old sequence number or a retired incarnation).",
		C, NULL, 0, NULL, 0, 0 },
	[F_DROPPED] = { "keyforge_gateway_series_dropped_total",
		"Series of metric updates refused, by reason (cap, families, sources, type, "
		"labels, buckets, invalid, reserved).", C, reason_label, 1, NULL, 0, 0 },
	[F_EXPIRED] = { "keyforge_gateway_series_expired_total",
		"Series of a source expired (ttl, absent from a full update, or the source "
		"departed): counters folded into the retired sum, gauges dropped.",
		C, NULL, 0, NULL, 0, 0 },
	[F_RESETS] = { "keyforge_gateway_series_resets_total",
		"Counters or histograms that went down within one incarnation (folded, not lost).",
		C, NULL, 0, NULL, 0, 0 },
	[F_RESTARTS] = { "keyforge_gateway_source_restarts_total",
		"New incarnations of a known source (the old one's counters were folded).",
		C, NULL, 0, NULL, 0, 0 },
	[F_EVICTED] = { "keyforge_gateway_sources_evicted_total",
		"Departed sources forgotten to make room for new ones.", C, NULL, 0, NULL, 0, 0 },
	[F_SOURCES] = { "keyforge_gateway_sources",
		"Metric sources the gateway currently holds.", G, NULL, 0, NULL, 0, 0 },
	[F_SERIES] = { "keyforge_gateway_series",
		"Aggregated label sets the gateway currently holds.", G, NULL, 0, NULL, 0, 0 },
	[F_HTTP] = { "keyforge_gateway_http_requests_total",
		"HTTP requests answered, by route and status code.", C, http_labels, 2, NULL, 0, 0 },
	[F_AUTH_FAILURES] = { "keyforge_gateway_auth_failures_total",
		"Requests to /metrics refused by authentication, by reason (missing, "
		"malformed, denied).", C, reason_label, 1, NULL, 0, 0 },
	[F_READY] = { "keyforge_gateway_ready",
		"1 when /health/ready answers 200.", G, NULL, 0, NULL, 0, 0 },
	[F_LOG_DROPPED] = { "keyforge_gateway_log_events_dropped_total",
		"Log events dropped because the log queue was full.", C, NULL, 0, NULL, 0, 0 },
	[F_BUILD_INFO] = { "keyforge_gateway_build_info",
		"Always 1; the label carries the gateway's version.", G, version_label, 1,
		NULL, 0, 0 },
};
#undef C
#undef G

static const char *const auth_reasons[] = { "missing", "malformed", "denied" };
#define N_AUTH (sizeof(auth_reasons) / sizeof(auth_reasons[0]))

/* What one scrape reads of the ingest side, in one critical section of
 * gw->lock: the ingest thread handles messages in order and applies each
 * under that lock, bumping the bus counters between applications, so
 * everything read inside one section is a cut of that order — a scrape
 * never shows a counter ahead of the series that came before it, nor the
 * other way round. */
struct capture {
	struct kf_gw_agg_stats st;
	uint64_t received[KF__GW_MSG_KIND_COUNT];
	uint64_t decode_errors[KF__GW_DECODE_ERR_COUNT];
	uint64_t sources_refused, status_gaps, status_missed;
};

struct kf__gw_expose {
	struct kf_metrics *reg;
	struct capture cap;                   /* the scrape's, for collect() */
	struct kf_metric_family *fam[F_COUNT];
	struct kf_counter *messages[KF__GW_MSG_KIND_COUNT];
	struct kf_counter *decode_errors[KF__GW_DECODE_ERR_COUNT];
	struct kf_counter *dropped[KF_GW_DROP_COUNT];
	struct kf_counter *auth[N_AUTH];
	struct kf_counter *single[F_COUNT];   /* unlabelled counters */
	struct kf_gauge *gauge[F_COUNT];      /* unlabelled gauges */
	_Atomic(struct kf_counter *) requests[KF__GW_ROUTES_MAX][STATUS_MAX - STATUS_MIN + 1];
};

static void set_c(struct kf_counter *c, uint64_t v)
{
	if (c)
		kf_counter_set(c, (double)v);
}

/* Under gw->lock. */
static void capture_locked(struct kf__gw *gw, struct capture *c)
{
	kf_gw_agg_stats(gw->agg, &c->st);
	for (size_t i = 0; i < KF__GW_MSG_KIND_COUNT; i++)
		c->received[i] = atomic_load(&gw->bus.received[i]);
	for (size_t i = 0; i < KF__GW_DECODE_ERR_COUNT; i++)
		c->decode_errors[i] = atomic_load(&gw->bus.decode_errors[i]);
	c->sources_refused = atomic_load(&gw->bus.sources_refused);
	c->status_gaps = atomic_load(&gw->bus.status_gaps);
	c->status_missed = atomic_load(&gw->bus.status_missed);
}

/* Runs inside kf_metrics_snapshot(), which kf__gw_render_metrics calls
 * after capturing; only that thread renders, one scrape at a time. */
static void collect(struct kf_metrics *reg, void *arg)
{
	(void)reg;
	struct kf__gw *gw = arg;
	struct kf__gw_expose *e = gw->expose;
	const struct capture *c = &e->cap;
	const struct kf_gw_agg_stats st = c->st;

	for (size_t i = 0; i < KF__GW_MSG_KIND_COUNT; i++)
		set_c(e->messages[i], c->received[i]);
	for (size_t i = 0; i < KF__GW_DECODE_ERR_COUNT; i++)
		set_c(e->decode_errors[i], c->decode_errors[i]);
	for (size_t i = 0; i < KF_GW_DROP_COUNT; i++)
		set_c(e->dropped[i], st.series_dropped[i]);
	set_c(e->single[F_SOURCES_REFUSED], c->sources_refused);
	set_c(e->single[F_BUS_GAPS], st.sequence_gaps + c->status_gaps);
	set_c(e->single[F_BUS_MISSED], st.messages_missed + c->status_missed);
	set_c(e->single[F_UPDATES], st.updates);
	set_c(e->single[F_UPDATES_STALE], st.stale_updates);
	set_c(e->single[F_EXPIRED], st.series_expired);
	set_c(e->single[F_RESETS], st.counter_resets);
	set_c(e->single[F_RESTARTS], st.restarts);
	set_c(e->single[F_EVICTED], st.sources_evicted);
	set_c(e->single[F_LOG_DROPPED], kf_log_dropped_total());
	kf_gauge_set(e->gauge[F_SOURCES], (double)st.sources);
	kf_gauge_set(e->gauge[F_SERIES], (double)st.series);
	kf_gauge_set(e->gauge[F_BUS_CONNECTED], kf__gw_ingest_peers(gw) ? 1 : 0);
	bool ready = false;
	if (gw->health && !atomic_load(&gw->shutting_down)) {
		struct kf_gw_health_result r;
		kf_gw_health_get(gw->health, &r);
		ready = kf_gw_health_ready(&r, kf_gw_health_interval_ns(gw->health),
					   kf_clock_mono_ns());
	}
	kf_gauge_set(e->gauge[F_READY], ready ? 1 : 0);
}

/* Children of the labelled families, all created at 0 so rate() and alerts
 * work before the first event. */
static enum kf_err make_children(struct kf__gw_expose *e)
{
	enum kf_err err = KF_OK;
	for (size_t i = 0; !err && i < KF__GW_MSG_KIND_COUNT; i++) {
		static const char *const kinds[] = { "metric", "status", "other" };
		err = kf_metric_family_counter(e->fam[F_BUS_MESSAGES], &kinds[i], &e->messages[i]);
	}
	for (size_t i = 0; !err && i < KF__GW_DECODE_ERR_COUNT; i++) {
		const char *l = kf__gw_decode_error_label(i);
		err = kf_metric_family_counter(e->fam[F_BUS_DECODE_ERRORS], &l,
					       &e->decode_errors[i]);
	}
	for (size_t i = 0; !err && i < KF_GW_DROP_COUNT; i++) {
		const char *l = kf_gw_drop_name((enum kf_gw_drop)i);
		err = kf_metric_family_counter(e->fam[F_DROPPED], &l, &e->dropped[i]);
	}
	for (size_t i = 0; !err && i < N_AUTH; i++)
		err = kf_metric_family_counter(e->fam[F_AUTH_FAILURES], &auth_reasons[i],
					       &e->auth[i]);
	struct kf_gauge *info = NULL;
	const char *version = KF_VERSION;
	if (!err)
		err = kf_metric_family_gauge(e->fam[F_BUILD_INFO], &version, &info);
	if (info)
		kf_gauge_set(info, 1);
	for (size_t i = 0; !err && i < F_COUNT; i++) {
		if (descs[i].n_labels)
			continue;
		if (descs[i].type == KF_METRIC_COUNTER)
			err = kf_metric_family_counter(e->fam[i], NULL, &e->single[i]);
		else
			err = kf_metric_family_gauge(e->fam[i], NULL, &e->gauge[i]);
	}
	return err;
}

enum kf_err kf__gw_expose_new(struct kf__gw *gw)
{
	struct kf__gw_expose *e = calloc(1, sizeof(*e));
	if (!e)
		return KF_ENOMEM;
	enum kf_err err = kf_metrics_new(&e->reg);
	for (size_t i = 0; !err && i < F_COUNT; i++)
		err = kf_metrics_register(e->reg, &descs[i], &e->fam[i]);
	if (!err)
		err = make_children(e);
	if (!err) {
		/* Without /proc the gateway still serves; it says so once. */
		enum kf_err perr = kf_process_register(e->reg);
		if (perr)
			KF_WARN(KF__GW_TARGET, "process metrics unavailable", KF_ERR(perr));
		err = kf_metrics_add_collector(e->reg, collect, NULL, gw);
	}
	if (err) {
		kf_metrics_free(e->reg);
		free(e);
		return err;
	}
	gw->expose = e;
	return KF_OK;
}

void kf__gw_expose_free(struct kf__gw *gw)
{
	if (!gw->expose)
		return;
	kf_metrics_free(gw->expose->reg);
	free(gw->expose);
	gw->expose = NULL;
}

void kf__gw_count_request(struct kf__gw *gw, unsigned route, const char *route_label,
			  unsigned status)
{
	struct kf__gw_expose *e = gw->expose;
	if (route >= KF__GW_ROUTES_MAX || status < STATUS_MIN || status > STATUS_MAX)
		return;
	_Atomic(struct kf_counter *) *slot = &e->requests[route][status - STATUS_MIN];
	struct kf_counter *c = atomic_load_explicit(slot, memory_order_acquire);
	if (!c) {
		char code[4];
		code[0] = (char)('0' + status / 100);
		code[1] = (char)('0' + status / 10 % 10);
		code[2] = (char)('0' + status % 10);
		code[3] = '\0';
		const char *values[] = { route_label, code };
		/* Two threads may race here: the registry returns the same child. */
		if (kf_metric_family_counter(e->fam[F_HTTP], values, &c) != KF_OK)
			return;
		atomic_store_explicit(slot, c, memory_order_release);
	}
	kf_counter_inc(c);
}

void kf__gw_count_auth_failure(struct kf__gw *gw, const char *reason)
{
	for (size_t i = 0; i < N_AUTH; i++)
		if (strcmp(reason, auth_reasons[i]) == 0)
			kf_counter_inc(gw->expose->auth[i]);
}

/*
 * keyforge_jobs_by_state{state}: the broker publishes it as a metric update;
 * when no producer's update holds it (an older broker, or its update not
 * received yet), the broker's last cluster status fills it in, while that
 * status is fresher than the series ttl.
 */
static enum kf_err add_jobs(struct kf__gw *gw, const struct kf__gw_jobs *jobs, uint64_t now,
			    struct kf_msnap *snap)
{
	if (!jobs->known || !kf_gw_fresh(jobs->at_ns, now, gw->cfg->series_ttl_ns) ||
	    kf_msnap_find_family(snap, JOBS_BY_STATE))
		return KF_OK;
	static const struct kf_metric_desc d = {
		.name = JOBS_BY_STATE, .type = KF_METRIC_GAUGE, .label_names = state_label,
		.n_labels = 1,
		.help = "Jobs in each state (pending, running, retrying, succeeded, failed, "
			"killed), from the broker's last cluster status.",
	};
	struct kf_msnap_family *f;
	enum kf_err err = kf_msnap_add_family(snap, &d, &f);
	/* A producer's family holds one of its names (a counter
	 * keyforge_jobs_by_state_total): the producer's wins, and this one is
	 * left out rather than failing the whole scrape. */
	if (err == KF_EMETRICNAME)
		return KF_OK;
	const char *names[KF__GW_JOB_STATES_MAX];
	size_t n = kf__gw_job_state_names(names, KF__GW_JOB_STATES_MAX);
	for (size_t i = 0; !err && i < n; i++) {
		struct kf_msnap_series *s;
		if (!(err = kf_msnap_family_add_series(f, &names[i], &s)))
			s->value = (double)jobs->counts[i];
	}
	return err;
}

enum kf_err kf__gw_render_metrics(struct kf__gw *gw, int fmt, struct kf_strbuf *out)
{
	struct kf_msnap agg = KF_MSNAP_INIT, own = KF_MSNAP_INIT;
	struct kf__gw_jobs jobs;
	/* The aggregate and every counter of the ingest side in one critical
	 * section (struct capture says why). The clock is read inside it, so
	 * that nothing the ingest thread stamped is newer than `now`. */
	pthread_mutex_lock(&gw->render_lock);
	pthread_mutex_lock(&gw->lock);
	uint64_t now = kf_clock_mono_ns();
	enum kf_err err = kf_gw_agg_snapshot(gw->agg, now, &agg);
	capture_locked(gw, &gw->expose->cap);
	jobs = gw->jobs;
	pthread_mutex_unlock(&gw->lock);
	if (!err && !(err = add_jobs(gw, &jobs, now, &agg)))
		kf_msnap_sort(&agg);
	if (!err)
		err = kf_metrics_snapshot(gw->expose->reg, 0, &own);
	pthread_mutex_unlock(&gw->render_lock);
	if (!err) {
		kf_expo_write_families(out, &agg, (enum kf_expo_format)fmt);
		kf_expo_write_families(out, &own, (enum kf_expo_format)fmt);
		err = kf_expo_write_end(out, (enum kf_expo_format)fmt);
	}
	kf_msnap_release(&agg);
	kf_msnap_release(&own);
	return err;
}
