/*
 * ingest.c — the gateway's subscriber: metric updates and cluster status
 * from the broker's monitor socket, into the aggregator. The monitor
 * socket carries only metric.* and status.* (the events socket carries
 * them too, with every job event and log line, which the gateway would
 * receive and throw away: nng 1.5.2's SUB filters on the subscriber's
 * side, docs/bus.md).
 *
 * The only file of the gateway that sees proto/: it converts decoded
 * messages into aggregate.h's plain structs (proto's KF_MSG_METRIC_* wire
 * types into KF_GW_*).
 *
 * Sequence numbers: the envelope's seq is per sender. It is handed to the
 * aggregator only when the sender is the metric update's own source (a
 * producer's update, forwarded as it was published); an update that some
 * other sender re-enveloped carries that sender's numbering, which says
 * nothing about this source, and is treated as unnumbered.
 *
 * Gaps: only where the numbering is known to count what the gateway sees.
 * Workers number heartbeats, logs and metric updates in one sequence
 * (worker/publish.c), and the gateway sees only the metric updates, so the
 * jumps between them are normal: their seq orders updates (stale ones are
 * ignored) but counts no gap — the broker's ingest relay, which sees every
 * message, counts their losses (keyforge_bus_sequence_gaps_total{source}).
 * The broker numbers its own metric updates and its cluster status each in
 * a sequence of its own (broker/reaper.c), so gaps in those measure what the
 * monitor socket lost on its way to the gateway.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bus/sub.h"
#include "common/clock.h"
#include "gateway/gateway.h"
#include "proto/proto.h"
#include "telemetry/log.h"

#define TARGET "keyforge::gateway::ingest"
#define RECV_TIMEOUT_MS 250
#define HOUSEKEEPING_NS 1000000000ULL
/* Not connected this long after the start: say so once. A gateway pointed
 * at nothing, or at a broker older than the monitor socket, would
 * otherwise serve no hive metric without a word. */
#define NO_LINK_WARN_NS (5 * KF_NS_PER_S)

/* Senders that number each message type in a sequence of its own
 * (broker/telemetry_relay.h KF_RELAY_SOURCE). */
static const char *const per_type_senders[] = { "broker" };

struct kf__gw_ingest {
	struct kf_bus_sub *sub;
	pthread_t thread;
	uint64_t status_seq;          /* last cluster status seq of a per-type sender */
	/* scratch, ingest thread only */
	struct kf_gw_series *series;
	size_t series_cap;
	struct kf_gw_label *labels;
	size_t labels_cap;
	bool refused_warned;
};

static const struct {
	enum kf_err err;
	const char *label;
} decode_errors[KF__GW_DECODE_ERR_COUNT] = {
	{ KF_ETOOBIG, "too_big" },
	{ KF_ETRUNCATED, "truncated" },
	{ KF_EMALFORMED, "malformed" },
	{ KF_ETOODEEP, "too_deep" },
	{ KF_ETRAILING, "trailing" },
	{ KF_EVERSION, "version" },
	{ KF_EUNKNOWNTYPE, "unknown_type" },
	{ KF_ETYPE, "type" },
	{ KF_ERANGE, "range" },
	{ KF_EUTF8, "utf8" },
	{ KF_EMISSING, "missing" },
	{ KF_ETOPIC, "topic" },
	{ KF_ENOMEM, "no_memory" },
	{ KF_OK, "other" }, /* everything else; must stay last */
};

const char *kf__gw_decode_error_label(size_t i)
{
	return i < KF__GW_DECODE_ERR_COUNT ? decode_errors[i].label : "other";
}

size_t kf__gw_job_state_names(const char **names, size_t cap)
{
	size_t n = 0;
	for (; n < KF_JOB_STATE_COUNT && n < cap; n++)
		names[n] = kf_job_state_name((enum kf_job_state)n);
	return n;
}

static size_t decode_error_index(enum kf_err err)
{
	for (size_t i = 0; i + 1 < KF__GW_DECODE_ERR_COUNT; i++)
		if (decode_errors[i].err == err)
			return i;
	return KF__GW_DECODE_ERR_COUNT - 1;
}

static bool ensure_scratch(struct kf__gw_ingest *ing, size_t n_series, size_t n_labels)
{
	if (n_series > ing->series_cap) {
		struct kf_gw_series *s = realloc(ing->series, n_series * sizeof(*s));
		if (!s)
			return false;
		ing->series = s;
		ing->series_cap = n_series;
	}
	if (n_labels > ing->labels_cap) {
		struct kf_gw_label *l = realloc(ing->labels, n_labels * sizeof(*l));
		if (!l)
			return false;
		ing->labels = l;
		ing->labels_cap = n_labels;
	}
	return true;
}

static const enum kf_gw_mtype mtypes[KF_MSG_METRIC_TYPE_COUNT] = {
	[KF_MSG_METRIC_COUNTER] = KF_GW_COUNTER,
	[KF_MSG_METRIC_GAUGE] = KF_GW_GAUGE,
	[KF_MSG_METRIC_HISTOGRAM] = KF_GW_HISTOGRAM,
};

/* proto's series → aggregate.h's, in the ingest scratch arrays. */
static bool convert(struct kf__gw_ingest *ing, const struct kf_msg_metric *m)
{
	size_t n_labels = 0;
	for (size_t i = 0; i < m->n_series; i++)
		n_labels += m->series[i].n_labels;
	if (!ensure_scratch(ing, m->n_series, n_labels))
		return false;
	struct kf_gw_label *l = ing->labels;
	for (size_t i = 0; i < m->n_series; i++) {
		const struct kf_msg_series *ps = &m->series[i];
		struct kf_gw_series *s = &ing->series[i];
		*s = (struct kf_gw_series){
			.name = ps->name, .type = mtypes[ps->type], .help = ps->help,
			.labels = l, .n_labels = ps->n_labels, .value = ps->value,
			.bucket_le = ps->bucket_le, .bucket_count = ps->bucket_count,
			.n_buckets = ps->n_buckets, .sum = ps->sum, .count = ps->count,
		};
		for (size_t j = 0; j < ps->n_labels; j++)
			*l++ = (struct kf_gw_label){ ps->labels[j].name, ps->labels[j].value };
	}
	return true;
}

static bool numbers_per_type(const char *sender)
{
	for (size_t i = 0; i < sizeof(per_type_senders) / sizeof(per_type_senders[0]); i++)
		if (strcmp(sender, per_type_senders[i]) == 0)
			return true;
	return false;
}

static void apply_metric(struct kf__gw *gw, struct kf__gw_ingest *ing, const struct kf_msg *msg)
{
	const struct kf_msg_metric *m = &msg->metric;
	if (!convert(ing, m)) {
		KF_ERROR(TARGET, "out of memory; metric update dropped", KF_STR("source", m->source));
		return;
	}
	bool own = strcmp(msg->sender, m->source) == 0;
	struct kf_gw_update u = {
		.source = m->source, .incarnation = m->incarnation,
		.seq = own ? msg->seq : 0, .seq_gaps = own && numbers_per_type(msg->sender),
		.full = m->full, .series = ing->series, .n_series = m->n_series,
	};
	pthread_mutex_lock(&gw->lock);
	enum kf_err err = kf_gw_agg_update(gw->agg, &u, kf_clock_mono_ns());
	pthread_mutex_unlock(&gw->lock);
	if (err == KF_EFULL) {
		atomic_fetch_add(&gw->bus.sources_refused, 1);
		if (!ing->refused_warned)
			KF_WARN(TARGET, "too many metric sources; updates of new sources dropped",
				KF_STR("source", m->source));
		ing->refused_warned = true;
	} else if (err == KF_ENOMEM) {
		KF_ERROR(TARGET, "out of memory applying a metric update",
			 KF_STR("source", m->source));
	} else if (err == KF_ESTALE) {
		KF_DEBUG(TARGET, "stale metric update ignored", KF_STR("source", m->source),
			 KF_U64("seq", msg->seq), KF_U64("incarnation", m->incarnation));
	}
}

/* Gaps in a per-type sender's cluster status sequence. A number that does
 * not grow is a restart of that sender: tracking starts again. */
static void status_gaps(struct kf__gw *gw, struct kf__gw_ingest *ing, const struct kf_msg *msg)
{
	if (!msg->seq || !numbers_per_type(msg->sender))
		return;
	if (ing->status_seq && msg->seq > ing->status_seq + 1) {
		atomic_fetch_add(&gw->bus.status_gaps, 1);
		atomic_fetch_add(&gw->bus.status_missed, msg->seq - ing->status_seq - 1);
	}
	ing->status_seq = msg->seq;
}

static void apply_status(struct kf__gw *gw, const struct kf_msg_cluster_status *cs)
{
	uint64_t now = kf_clock_mono_ns();
	pthread_mutex_lock(&gw->lock);
	gw->jobs.known = true;
	gw->jobs.at_ns = now;
	for (size_t i = 0; i < KF_JOB_STATE_COUNT && i < KF__GW_JOB_STATES_MAX; i++)
		gw->jobs.counts[i] = cs->job_counts[i];
	/* A worker the broker declared dead has departed: its gauges go now,
	 * not a ttl later. */
	for (size_t i = 0; i < cs->n_workers; i++)
		if (cs->workers[i].liveness == KF_WORKER_DEAD &&
		    kf_gw_agg_depart(gw->agg, cs->workers[i].worker_id,
				     cs->workers[i].incarnation, now) == KF_OK)
			KF_DEBUG(TARGET, "dead worker's series expired",
				 KF_STR("worker", cs->workers[i].worker_id));
	pthread_mutex_unlock(&gw->lock);
}

static void handle(struct kf__gw *gw, struct kf__gw_ingest *ing, const void *buf, size_t len)
{
	struct kf_msg *msg = NULL;
	enum kf_err err = kf_msg_decode_pub(buf, len, &msg, NULL);
	if (err) {
		atomic_fetch_add(&gw->bus.decode_errors[decode_error_index(err)], 1);
		KF_DEBUG(TARGET, "undecodable bus message dropped", KF_ERR(err),
			 KF_U64("bytes", len));
		return;
	}
	switch (msg->type) {
	case KF_MSG_METRIC:
		atomic_fetch_add(&gw->bus.received[KF__GW_MSG_METRIC], 1);
		apply_metric(gw, ing, msg);
		break;
	case KF_MSG_CLUSTER_STATUS:
		atomic_fetch_add(&gw->bus.received[KF__GW_MSG_STATUS], 1);
		status_gaps(gw, ing, msg);
		apply_status(gw, &msg->cluster_status);
		break;
	default:
		atomic_fetch_add(&gw->bus.received[KF__GW_MSG_OTHER], 1);
	}
	kf_msg_free(msg);
}

/* The broker link as housekeeping last saw it. */
struct link_state {
	unsigned peers;
	bool settled;           /* connected once, or said it was not: no "yet" line */
	uint64_t start_ns;
};

/* Once a second: expiry, and a log line when the broker link changes. */
static void housekeeping(struct kf__gw *gw, struct link_state *link)
{
	uint64_t t = kf_clock_mono_ns();

	pthread_mutex_lock(&gw->lock);
	kf_gw_agg_expire(gw->agg, t);
	pthread_mutex_unlock(&gw->lock);
	unsigned now = kf__gw_ingest_peers(gw);
	if (now && !link->peers)
		KF_INFO(TARGET, "connected to the broker's monitor socket",
			KF_STR("monitor", gw->cfg->monitor));
	else if (!now && link->peers)
		KF_WARN(TARGET, "lost the broker's monitor socket; reconnecting",
			KF_STR("monitor", gw->cfg->monitor));
	else if (!now && !link->settled && t - link->start_ns >= NO_LINK_WARN_NS) {
		KF_WARN(TARGET, "no connection to the broker's monitor socket yet; still trying",
			KF_STR("monitor", gw->cfg->monitor),
			KF_U64("waited_ms", (t - link->start_ns) / KF_NS_PER_MS),
			KF_STR("hint", "the broker listens there with --monitor (port 7404 by "
			       "default); a broker without a monitor socket serves its "
			       "metric updates on events, which --monitor may name"));
		link->settled = true;
	}
	link->settled |= now != 0;
	link->peers = now;
}

static void *ingest_main(void *arg)
{
	struct kf__gw *gw = arg;
	struct kf__gw_ingest *ing = gw->ingest;

	pthread_setname_np(pthread_self(), "kf:ingest");  /* top -H, perf */
	KF_SPAN_SCOPE(KF_INFO_SPAN(TARGET, "ingest_loop", KF_STR("monitor", gw->cfg->monitor)));
	struct link_state link = { .start_ns = kf_clock_mono_ns() };
	uint64_t next = link.start_ns + HOUSEKEEPING_NS;
	for (;;) {
		nng_msg *m = NULL;
		enum kf_err err = kf_bus_sub_recv(ing->sub, RECV_TIMEOUT_MS, &m);
		if (err == KF_ECANCELED)
			break;
		if (!err) {
			handle(gw, ing, nng_msg_body(m), nng_msg_len(m));
			nng_msg_free(m);
		}
		if (kf_clock_mono_ns() >= next) {
			housekeeping(gw, &link);
			next = kf_clock_mono_ns() + HOUSEKEEPING_NS;
		}
	}
	return NULL;
}

enum kf_err kf__gw_ingest_start(struct kf__gw *gw, struct kf_strbuf *why)
{
	struct kf__gw_ingest *ing = calloc(1, sizeof(*ing));
	if (!ing)
		return KF_ENOMEM;
	struct kf_bus_tls_opts tls;
	kf_bus_tls_opts_from_env(&tls);
	/* Take anything the broker may forward: the broker's own ingest limit
	 * is lower, and an oversize message would make nng drop the link. */
	struct kf_bus_opts opts = { .recv_max = KF_MSG_MAX_WIRE, .tls = &tls };
	enum kf_err err = kf_bus_sub_new(&ing->sub, KF_BUS_DIAL, gw->cfg->monitor, &opts, why);
	if (!err)
		err = kf_bus_sub_subscribe(ing->sub, KF_TOPIC_METRIC, strlen(KF_TOPIC_METRIC));
	if (!err)
		err = kf_bus_sub_subscribe(ing->sub, KF_TOPIC_STATUS_CLUSTER,
					   strlen(KF_TOPIC_STATUS_CLUSTER));
	gw->ingest = ing;
	if (!err && pthread_create(&ing->thread, NULL, ingest_main, gw) != 0)
		err = KF_EIO;
	if (err) {
		kf_bus_sub_free(ing->sub);
		free(ing);
		gw->ingest = NULL;
	}
	return err;
}

void kf__gw_ingest_stop(struct kf__gw *gw)
{
	struct kf__gw_ingest *ing = gw->ingest;
	if (!ing)
		return;
	kf_bus_sock_close(kf_bus_sub_sock(ing->sub));
	pthread_join(ing->thread, NULL);
	kf_bus_sub_free(ing->sub);
	free(ing->series);
	free(ing->labels);
	free(ing);
	gw->ingest = NULL;
}

unsigned kf__gw_ingest_peers(struct kf__gw *gw)
{
	return gw->ingest ? kf_bus_sock_peers(kf_bus_sub_sock(gw->ingest->sub)) : 0;
}
