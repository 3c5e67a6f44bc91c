/* telemetry_relay.c — ingest thread: decode, account, rate-limit, republish. */
#include "broker/telemetry_relay.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "broker/jobjson.h"
#include "broker/workers.h"
#include "bus/sub.h"
#include "common/clock.h"
#include "common/json.h"
#include "proto/topic.h"
#include "telemetry/log.h"

#define TARGET "keyforge::broker::relay"
#define SRC_BUCKETS 1024u
#define RECV_BATCH 256
#define RECV_GRACE ((size_t)64 << 10) /* above the limit: still delivered, so counted */

enum { T_HB = 0, T_LOG = 1, T_METRIC = 2, T_COUNT };

struct source {
	char name[KF_MSG_MAX_NAME + 1];
	double tokens, hb_tokens;
	uint64_t refill_ns, hb_refill_ns;
	uint64_t last_seq[T_COUNT], last_any;
	uint64_t dropped_since_warn, last_warn_ns, last_seen_ns;
	uint64_t incarnation, inc_seen_ns;   /* from its heartbeats (see route) */
	struct kf_counter *gaps, *limited;
	struct source *hnext;
};

struct lbuf {
	struct lbuf *next;
	size_t len;
	char data[];
};

struct kf_relay {
	struct kf_relay_opts o;
	struct kf_bus_sub *sub;
	int recv_fd, local_efd, hb_efd;
	pthread_t thread;
	bool started, sink_attached;
	atomic_bool stop;

	/* relay thread only */
	struct source *src_buckets[SRC_BUCKETS];
	size_t n_sources;
	/* What one batch republishes on events, sent together at its end as
	 * bundles: each part a copy under the topic the relay gave it. */
	struct kf_bus_part out[RECV_BATCH];
	size_t n_out;
	uint64_t malformed_since_warn, malformed_warn_ns;
	enum kf_err malformed_last;

	pthread_mutex_t hb_mu;     /* heartbeat queue to the owner */
	struct kf_msg **hb_q;
	size_t hb_head, hb_n;

	pthread_mutex_t local_mu;  /* broker's own events from the sink */
	struct lbuf *local_head, **local_tail;
	size_t local_n;
	atomic_uint_fast64_t log_seq;

	pthread_mutex_t ring_mu;
	struct kf_msg **ring;
	size_t ring_start, ring_n;

	atomic_uint_fast64_t st_received, st_hb, st_logs, st_metrics, st_decode, st_oversized,
		st_limited, st_gaps, st_hb_drops;
	atomic_size_t st_sources;
};

/* ---- pure helpers ------------------------------------------------------------ */

uint64_t kf_relay_gap(uint64_t last_type, uint64_t last_any, uint64_t seq)
{
	uint64_t g_type, g_any;

	if (last_type == 0 || seq <= last_type)
		return 0;
	g_type = seq - last_type - 1;
	if (last_any && seq > last_any) {
		g_any = seq - last_any - 1;
		return g_any < g_type ? g_any : g_type;
	}
	return g_type;
}

bool kf_relay_bucket_take(double *tokens, uint64_t *last_ns, uint64_t now_ns, double rate,
	double burst)
{
	if (*last_ns == 0) {
		*tokens = burst;
	} else if (now_ns > *last_ns) {
		*tokens += (double)(now_ns - *last_ns) * rate / 1e9;
		if (*tokens > burst)
			*tokens = burst;
	}
	*last_ns = now_ns;
	if (*tokens < 1.0)
		return false;
	*tokens -= 1.0;
	return true;
}

static void efd_signal(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) < 0)
		return; /* only EAGAIN at a saturated counter: already readable */
}

static void efd_reset(int fd)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0)
		return; /* EAGAIN: nothing to reset */
}

/* ---- sources -------------------------------------------------------------------- */

static unsigned src_hash(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h & (SRC_BUCKETS - 1);
}

static void src_unlink(struct kf_relay *r, struct source *victim)
{
	struct source **pp = &r->src_buckets[src_hash(victim->name)];

	while (*pp && *pp != victim)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = victim->hnext;
	r->n_sources--;
	atomic_store(&r->st_sources, r->n_sources);
	free(victim);
}

/* Forgets the source heard from least recently (a full table is rare: it
 * takes KF_RELAY_MAX_SOURCES distinct senders). */
static void src_evict_one(struct kf_relay *r)
{
	struct source *oldest = NULL;

	for (unsigned b = 0; b < SRC_BUCKETS; b++)
		for (struct source *s = r->src_buckets[b]; s; s = s->hnext)
			if (!oldest || s->last_seen_ns < oldest->last_seen_ns)
				oldest = s;
	if (oldest)
		src_unlink(r, oldest);
}

static struct source *src_get(struct kf_relay *r, const char *name, uint64_t now)
{
	unsigned h = src_hash(name);
	struct source *s;

	for (s = r->src_buckets[h]; s; s = s->hnext)
		if (!strcmp(s->name, name))
			goto found;
	if (r->n_sources >= KF_RELAY_MAX_SOURCES)
		src_evict_one(r);
	if (!(s = calloc(1, sizeof(*s))))
		return NULL;
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->hnext = r->src_buckets[h];
	r->src_buckets[h] = s;
	r->n_sources++;
	atomic_store(&r->st_sources, r->n_sources);
found:
	s->last_seen_ns = now;
	return s;
}

static struct kf_counter *src_counter(struct kf_metric_family *fam, struct kf_counter **slot,
	const char *name)
{
	if (!*slot && kf_metric_family_counter(fam, (const char *const[]){ name }, slot) != KF_OK)
		*slot = NULL;
	return *slot;
}

/* ---- queues -------------------------------------------------------------------- */

static void ring_put(struct kf_relay *r, struct kf_msg *m)
{
	struct kf_msg *evicted = NULL;
	size_t cap = r->o.ring_size;

	pthread_mutex_lock(&r->ring_mu);
	if (r->ring_n == cap) {
		evicted = r->ring[r->ring_start];
		r->ring[r->ring_start] = m;
		r->ring_start = (r->ring_start + 1) % cap;
	} else {
		r->ring[(r->ring_start + r->ring_n++) % cap] = m;
	}
	pthread_mutex_unlock(&r->ring_mu);
	kf_msg_free(evicted);
}

static bool hb_push(struct kf_relay *r, struct kf_msg *m)
{
	bool ok;

	pthread_mutex_lock(&r->hb_mu);
	ok = r->hb_n < KF_RELAY_HB_QUEUE;
	if (ok)
		r->hb_q[(r->hb_head + r->hb_n++) % KF_RELAY_HB_QUEUE] = m;
	pthread_mutex_unlock(&r->hb_mu);
	if (ok)
		efd_signal(r->hb_efd);
	return ok;
}

size_t kf_relay_take(struct kf_relay *r, struct kf_msg **out, size_t max)
{
	size_t n = 0;

	efd_reset(r->hb_efd);
	pthread_mutex_lock(&r->hb_mu);
	while (n < max && r->hb_n) {
		out[n++] = r->hb_q[r->hb_head];
		r->hb_head = (r->hb_head + 1) % KF_RELAY_HB_QUEUE;
		r->hb_n--;
	}
	if (r->hb_n)
		efd_signal(r->hb_efd); /* more than max: stay readable */
	pthread_mutex_unlock(&r->hb_mu);
	return n;
}

int kf_relay_fd(const struct kf_relay *r)
{
	return r->hb_efd;
}

/* ---- republishing --------------------------------------------------------------- */

/* The envelope as received, under the topic the relay derived from its
 * sender (not the one it came with); on events it leaves with the batch
 * (flush_out). */
static void publish(struct kf_relay *r, const char *topic, size_t topic_len, const void *env,
	size_t env_len)
{
	char *copy = malloc(topic_len + 1 + env_len);

	/* A batch is at most RECV_BATCH messages, each published once. Without
	 * memory the copy is lost, as telemetry may be; the ring has it. */
	if (copy) {
		memcpy(copy, topic, topic_len);
		copy[topic_len] = '\0'; /* the framing's NUL (proto/topic.h) */
		memcpy(copy + topic_len + 1, env, env_len);
		r->out[r->n_out++] = (struct kf_bus_part){ copy, topic_len + 1 + env_len };
	}
	if (r->o.monitor && kf_topic_monitored(topic, topic_len) &&
	    kf_bus_pub_send(r->o.monitor, topic, topic_len + 1, env, env_len) == KF_OK)
		kf_counter_inc(r->o.metrics->tx_monitor);
}

static void malformed(struct kf_relay *r, const char *kind, enum kf_err err)
{
	kf_bmetrics_count(r->o.metrics->decode_errors, (const char *const[]){ "ingest", kind });
	atomic_fetch_add(&r->st_decode, 1);
	r->malformed_since_warn++;
	r->malformed_last = err;
}

static void warn_malformed(struct kf_relay *r, uint64_t now)
{
	if (!r->malformed_since_warn ||
	    now - r->malformed_warn_ns < KF_RELAY_WARN_INTERVAL_MS * KF_NS_PER_MS)
		return;
	KF_WARN(TARGET, "malformed message dropped", KF_STR("socket", "ingest"),
		KF_U64("count", r->malformed_since_warn),
		KF_STR("last_error", kf_strerror(r->malformed_last)));
	r->malformed_since_warn = 0;
	r->malformed_warn_ns = now;
}

static void rate_limited(struct kf_relay *r, struct source *s, uint64_t now, bool heartbeat)
{
	struct kf_counter *c = src_counter(r->o.metrics->rate_limited, &s->limited, s->name);

	kf_counter_inc(r->o.metrics->dropped[KF_BM_DROP_RATE_LIMIT]);
	if (c)
		kf_counter_inc(c);
	atomic_fetch_add(&r->st_limited, 1);
	s->dropped_since_warn++;
	if (s->last_warn_ns && now - s->last_warn_ns < KF_RELAY_WARN_INTERVAL_MS * KF_NS_PER_MS)
		return;
	/* The limit of the kind just dropped: heartbeats have their own. */
	KF_WARN(TARGET, "rate limit exceeded", KF_STR("source", s->name),
		KF_U64("dropped", s->dropped_since_warn),
		KF_U64("rate", heartbeat ? KF_RELAY_HB_RATE : r->o.rate),
		KF_U64("burst", heartbeat ? 2 * KF_RELAY_HB_RATE : r->o.burst));
	s->dropped_since_warn = 0;
	s->last_warn_ns = now;
}

static void account_seq(struct kf_relay *r, struct source *s, int t, uint64_t seq)
{
	uint64_t gap = kf_relay_gap(s->last_seq[t], s->last_any, seq);
	struct kf_counter *c;

	if (gap) {
		atomic_fetch_add(&r->st_gaps, gap);
		if ((c = src_counter(r->o.metrics->seq_gaps, &s->gaps, s->name)))
			kf_counter_add_u64(c, gap);
	}
	s->last_seq[t] = seq;
	s->last_any = seq;
}

static int type_slot(enum kf_msg_type type)
{
	switch (type) {
	case KF_MSG_HEARTBEAT: return T_HB;
	case KF_MSG_LOG: return T_LOG;
	case KF_MSG_METRIC: return T_METRIC;
	default: return -1;
	}
}

/*
 * The incarnation a source's heartbeats carry, with the rule of the owner's
 * worker table (workers.h): another one replaces it only once it has been
 * silent for KF_WORKERS_STALE_AFTER intervals — until then the other is a
 * second process started with the same id. The owner refuses that
 * process's heartbeats and hello; here its metric updates are dropped too,
 * or the gateway would take each of them for a restart of the source and
 * then ignore the live worker's updates as those of a retired incarnation.
 * Its log events are relayed: they say what is wrong.
 */
static void track_incarnation(struct source *s, uint64_t incarnation, uint64_t now)
{
	if (!incarnation || !kf_workers_incarnation_ok(s->incarnation, s->inc_seen_ns, incarnation,
							 now))
		return;
	s->incarnation = incarnation;
	s->inc_seen_ns = now;
}

static bool other_incarnation(const struct source *s, uint64_t incarnation)
{
	return s->incarnation && incarnation && incarnation != s->incarnation;
}

/* Takes ownership of msg. */
static void route(struct kf_relay *r, struct source *s, struct kf_msg *msg, const void *env,
	size_t env_len, uint64_t now)
{
	char topic[KF_TOPIC_SIZE];
	size_t tl;

	switch (msg->type) {
	case KF_MSG_HEARTBEAT:
		track_incarnation(s, msg->heartbeat.incarnation, now);
		atomic_fetch_add(&r->st_hb, 1);
		if (!hb_push(r, msg)) {
			kf_counter_inc(r->o.metrics->dropped[KF_BM_DROP_QUEUE_FULL]);
			atomic_fetch_add(&r->st_hb_drops, 1);
			kf_msg_free(msg);
		}
		return;
	case KF_MSG_LOG:
		/* The event names its source, and readers filter on it
		 * (keyforgectl logs --source): it must be the sender's own
		 * name, which also keeps anyone from speaking as the broker. */
		if (strcmp(msg->log.source, msg->sender) != 0) {
			kf_counter_inc(r->o.metrics->dropped[KF_BM_DROP_SOURCE]);
			kf_msg_free(msg);
			return;
		}
		atomic_fetch_add(&r->st_logs, 1);
		tl = kf_topic_log(topic, msg->log.level, msg->sender);
		/* Ring first: whoever saw the event may ask for the tail at once. */
		ring_put(r, msg);
		publish(r, topic, tl, env, env_len);
		return;
	default: /* KF_MSG_METRIC */
		if (strcmp(msg->metric.source, msg->sender) != 0) {
			kf_counter_inc(r->o.metrics->dropped[KF_BM_DROP_SOURCE]);
		} else if (other_incarnation(s, msg->metric.incarnation)) {
			kf_counter_inc(r->o.metrics->dropped[KF_BM_DROP_ID_CONFLICT]);
		} else {
			atomic_fetch_add(&r->st_metrics, 1);
			tl = kf_topic_metric(topic, msg->sender);
			publish(r, topic, tl, env, env_len);
		}
		kf_msg_free(msg);
		return;
	}
}

static void handle(struct kf_relay *r, const void *buf, size_t len, uint64_t now)
{
	const char *topic;
	const void *env;
	size_t topic_len, env_len;
	struct kf_msg *msg;
	struct source *s;
	enum kf_err err;
	int t;

	kf_counter_inc(r->o.metrics->rx_ingest);
	atomic_fetch_add(&r->st_received, 1);
	if (len > KF_RELAY_MAX_MESSAGE) {
		kf_counter_inc(r->o.metrics->dropped[KF_BM_DROP_OVERSIZED]);
		atomic_fetch_add(&r->st_oversized, 1);
		malformed(r, "toobig", KF_ETOOBIG);
		return;
	}
	if ((err = kf_msg_decode_pub(buf, len, &msg, NULL))) {
		malformed(r, kf_bmetrics_err_kind(err), err);
		return;
	}
	if ((t = type_slot(msg->type)) < 0) {
		malformed(r, "unexpected_type", KF_EUNKNOWNTYPE);
		kf_msg_free(msg);
		return;
	}
	if (!strcmp(msg->sender, KF_RELAY_SOURCE) || !(s = src_get(r, msg->sender, now))) {
		kf_counter_inc(r->o.metrics->dropped[KF_BM_DROP_SOURCE]);
		kf_msg_free(msg);
		return;
	}
	account_seq(r, s, t, msg->seq);
	if (t == T_HB) /* the contract counts heartbeats received (docs/operations.md) */
		kf_counter_inc(r->o.metrics->contract.worker_heartbeats);
	if (!(t == T_HB ? kf_relay_bucket_take(&s->hb_tokens, &s->hb_refill_ns, now,
					      KF_RELAY_HB_RATE, 2 * KF_RELAY_HB_RATE)
			: kf_relay_bucket_take(&s->tokens, &s->refill_ns, now, r->o.rate, r->o.burst))) {
		rate_limited(r, s, now, t == T_HB);
		kf_msg_free(msg);
		return;
	}
	kf_topic_split(buf, len, &topic, &topic_len, &env, &env_len);
	route(r, s, msg, env, env_len, now);
}

/* One of the broker's own events: keep it in the ring, publish the framed
 * bytes. Any thread (nng's pub socket is thread-safe). */
static void local_publish(struct kf_relay *r, const void *buf, size_t len)
{
	struct kf_msg *msg;

	if (kf_msg_decode_pub(buf, len, &msg, NULL) == KF_OK)
		ring_put(r, msg);
	if (kf_bus_pub_send(r->o.events, NULL, 0, buf, len) == KF_OK)
		kf_counter_inc(r->o.metrics->tx_events);
}

/* The broker's own events queued by push_local. */
static void drain_local(struct kf_relay *r)
{
	struct lbuf *list, *next;

	pthread_mutex_lock(&r->local_mu);
	list = r->local_head;
	r->local_head = NULL;
	r->local_tail = &r->local_head;
	r->local_n = 0;
	pthread_mutex_unlock(&r->local_mu);
	for (; list; list = next) {
		next = list->next;
		local_publish(r, list->data, list->len);
		free(list);
	}
}

/* Sends what the batch republishes. */
static void flush_out(struct kf_relay *r)
{
	if (r->n_out &&
	    kf_bus_pub_send_parts(r->o.events, r->out, r->n_out, r->o.bundle, NULL) == KF_OK)
		kf_counter_add(r->o.metrics->tx_events, (double)r->n_out);
	for (size_t i = 0; i < r->n_out; i++)
		free((void *)r->out[i].buf);
	r->n_out = 0;
}

static void *relay_main(void *arg)
{
	struct kf_relay *r = arg;
	struct pollfd pfd[2] = { { .fd = r->recv_fd, .events = POLLIN },
				 { .fd = r->local_efd, .events = POLLIN } };

	pthread_setname_np(pthread_self(), "kf:relay");  /* top -H, perf */
	while (!atomic_load(&r->stop)) {
		uint64_t now;
		nng_msg *m;

		if (poll(pfd, 2, 1000) < 0)
			continue;
		efd_reset(r->local_efd);
		drain_local(r);
		now = kf_clock_mono_ns();
		for (int i = 0; i < RECV_BATCH && kf_bus_sub_recv(r->sub, 0, &m) == KF_OK; i++) {
			handle(r, nng_msg_body(m), nng_msg_len(m), now);
			nng_msg_free(m);
		}
		flush_out(r);
		warn_malformed(r, now);
	}
	drain_local(r);
	return NULL;
}

/* ---- the log sink ------------------------------------------------------------------ */

/* Set while this thread runs kf_relay_tail's callback (it holds ring_mu). */
static _Thread_local bool tl_in_tail;

/* A copy of s[0..len) that proto accepts: valid UTF-8, no NUL, at most max
 * bytes (cut at a character boundary). In the arena; "" on out of memory. */
static const char *clean(struct kf_jarena *a, const char *s, size_t len, size_t max)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	char *out, *o;

	if (!s)
		len = 0;
	if (!(o = out = kf_jarena_alloc(a, (len < max ? len : max) + 1)))
		return "";
	while (len && (size_t)(o - out) < max) {
		size_t n = kf_utf8_seq_len(p, len);

		if (n == 0 || *p == 0) {
			*o++ = '?';
			n = 1;
		} else if ((size_t)(o - out) + n > max) {
			break;
		} else {
			memcpy(o, p, n);
			o += n;
		}
		p += n;
		len -= n;
	}
	*o = '\0';
	return out;
}

static bool field_value(struct kf_jarena *a, const struct kf_field *f, struct kf_msg_value *v)
{
	switch (f->type) {
	case KF_FIELD_STR:
		v->kind = KF_VALUE_STR;
		v->str = clean(a, f->v.str, f->len, KF_MSG_MAX_TEXT);
		return true;
	case KF_FIELD_I64: v->kind = KF_VALUE_I64; v->i64 = f->v.i64; return true;
	case KF_FIELD_U64: v->kind = KF_VALUE_U64; v->u64 = f->v.u64; return true;
	case KF_FIELD_F64: v->kind = KF_VALUE_F64; v->f64 = f->v.f64; return true;
	case KF_FIELD_BOOL: v->kind = KF_VALUE_BOOL; v->b = f->v.b; return true;
	default: return false; /* declared, not recorded */
	}
}

static size_t fields(struct kf_jarena *a, const struct kf_field *in, size_t n,
	const struct kf_msg_field **out)
{
	struct kf_msg_field *f;
	size_t k = 0;

	if (n > KF_MSG_MAX_FIELDS)
		n = KF_MSG_MAX_FIELDS;
	*out = NULL;
	if (!n || !(f = kf_jarena_alloc(a, n * sizeof(*f))))
		return 0;
	for (size_t i = 0; i < n; i++) {
		f[k].name = clean(a, in[i].key, strlen(in[i].key ? in[i].key : ""),
				  KF_MSG_MAX_NAME);
		if (field_value(a, &in[i], &f[k].value))
			k++;
	}
	*out = f;
	return k;
}

static void push_local(struct kf_relay *r, const struct kf_strbuf *sb)
{
	struct lbuf *b = malloc(sizeof(*b) + sb->len);
	bool queued = false;

	if (b) {
		b->next = NULL;
		b->len = sb->len;
		memcpy(b->data, sb->buf, sb->len);
		pthread_mutex_lock(&r->local_mu);
		if (r->local_n < KF_RELAY_LOCAL_QUEUE) {
			*r->local_tail = b;
			r->local_tail = &b->next;
			r->local_n++;
			queued = true;
		}
		pthread_mutex_unlock(&r->local_mu);
	}
	if (!queued) {
		free(b);
		kf_counter_inc(r->o.metrics->dropped[KF_BM_DROP_LOG_QUEUE]);
		return;
	}
	efd_signal(r->local_efd);
}

static void log_sink(void *ctx, const struct kf_log_record *rec)
{
	struct kf_relay *r = ctx;
	struct kf_jarena a = KF_JARENA_INIT;
	struct kf_strbuf sb = KF_STRBUF_INIT;
	struct kf_msg_span *spans = NULL;
	char topic[KF_TOPIC_SIZE];
	size_t n_spans = rec->n_spans > KF_MSG_MAX_SPANS ? KF_MSG_MAX_SPANS : rec->n_spans;
	struct kf_msg m;

	if (rec->level < KF_LEVEL_ERROR || rec->level > KF_LEVEL_TRACE)
		return;
	kf_msg_init(&m, KF_MSG_LOG, KF_RELAY_SOURCE, atomic_fetch_add(&r->log_seq, 1) + 1);
	m.ts_ns = rec->timestamp_ns;
	m.log.level = (enum kf_msg_level)rec->level;
	m.log.target = clean(&a, rec->target, strlen(rec->target), KF_MSG_MAX_NAME);
	m.log.message = clean(&a, rec->message, rec->message ? strlen(rec->message) : 0,
			      KF_MSG_MAX_TEXT);
	m.log.n_fields = fields(&a, rec->fields, rec->n_fields, &m.log.fields);
	if (n_spans && (spans = kf_jarena_alloc(&a, n_spans * sizeof(*spans)))) {
		for (size_t i = 0; i < n_spans; i++) {
			const struct kf_span_info *si = rec->spans[i];

			spans[i].name = clean(&a, si->name, strlen(si->name), KF_MSG_MAX_NAME);
			spans[i].n_fields = fields(&a, si->fields, si->n_fields, &spans[i].fields);
		}
		m.log.spans = spans;
		m.log.n_spans = n_spans;
	}
	m.log.ts_ns = rec->timestamp_ns;
	m.log.source = KF_RELAY_SOURCE;
	kf_topic_log(topic, m.log.level, KF_RELAY_SOURCE);
	if (kf_msg_encode_pub(topic, &m, &sb) == KF_OK) {
		/* Published here rather than handed to the relay thread: the
		 * hand-off (an eventfd write, the relay thread's wake-up and
		 * its context switches) cost more than the publish itself,
		 * twice per job. Only inside kf_relay_tail's callback, where
		 * this thread holds ring_mu, is the event queued instead. */
		if (tl_in_tail)
			push_local(r, &sb);
		else
			local_publish(r, sb.buf, sb.len);
	}
	kf_strbuf_release(&sb);
	kf_jarena_release(&a);
}

enum kf_err kf_relay_attach_log(struct kf_relay *r)
{
	enum kf_err err = kf_log_sink_add(log_sink, r);

	if (!err)
		r->sink_attached = true;
	return err;
}

void kf_relay_detach_log(struct kf_relay *r)
{
	if (r && r->sink_attached) {
		kf_log_sink_remove(log_sink, r);
		r->sink_attached = false;
	}
}

/* ---- log tail ------------------------------------------------------------------- */

static bool tail_match(const struct kf_msg *m, enum kf_msg_level min_level, const char *source)
{
	return m->log.level <= min_level &&
	       (!source || !strcmp(m->log.source ? m->log.source : m->sender, source));
}

enum kf_err kf_relay_tail(struct kf_relay *r, uint32_t count, enum kf_msg_level min_level,
	const char *source, kf_relay_tail_fn *fn, void *arg)
{
	struct kf_msg_log *events;
	size_t n = 0, cap = count > KF_MSG_MAX_EVENTS ? KF_MSG_MAX_EVENTS : count;
	enum kf_err err;

	if (!(events = malloc((cap ? cap : 1) * sizeof(*events))))
		return KF_ENOMEM;
	pthread_mutex_lock(&r->ring_mu);
	/* Newest first into the tail of the array, so it ends oldest first. */
	for (size_t i = r->ring_n; i-- > 0 && n < cap;) {
		const struct kf_msg *m = r->ring[(r->ring_start + i) % r->o.ring_size];

		if (tail_match(m, min_level, source))
			events[cap - ++n] = m->log;
	}
	tl_in_tail = true;
	err = fn(arg, events + (cap - n), n);
	tl_in_tail = false;
	pthread_mutex_unlock(&r->ring_mu);
	free(events);
	return err;
}

/* ---- lifecycle ------------------------------------------------------------------- */

void kf_relay_stats(struct kf_relay *r, struct kf_relay_stats *out)
{
	out->received = atomic_load(&r->st_received);
	out->heartbeats = atomic_load(&r->st_hb);
	out->logs = atomic_load(&r->st_logs);
	out->metrics = atomic_load(&r->st_metrics);
	out->decode_errors = atomic_load(&r->st_decode);
	out->oversized = atomic_load(&r->st_oversized);
	out->rate_limited = atomic_load(&r->st_limited);
	out->gaps = atomic_load(&r->st_gaps);
	out->hb_queue_drops = atomic_load(&r->st_hb_drops);
	pthread_mutex_lock(&r->ring_mu);
	out->ring_len = r->ring_n;
	pthread_mutex_unlock(&r->ring_mu);
	out->sources = atomic_load(&r->st_sources);
}

static enum kf_err open_socket(struct kf_relay *r, struct kf_strbuf *why)
{
	struct kf_bus_opts bo = { .recv_max = KF_RELAY_MAX_MESSAGE + RECV_GRACE,
				  .tls = r->o.tls };
	enum kf_err err;

	if ((err = kf_bus_sub_new(&r->sub, KF_BUS_LISTEN, r->o.url, &bo, why)))
		return err;
	if ((err = kf_bus_sub_subscribe(r->sub, "", 0)))
		return err;
	return kf_bus_sub_recv_fd(r->sub, &r->recv_fd);
}

enum kf_err kf_relay_new(struct kf_relay **out, const struct kf_relay_opts *opts,
	struct kf_strbuf *why)
{
	struct kf_relay *r = calloc(1, sizeof(*r));
	enum kf_err err;

	*out = NULL;
	if (!r)
		return KF_ENOMEM;
	r->o = *opts;
	if (!r->o.ring_size)
		r->o.ring_size = 1;
	r->local_efd = r->hb_efd = -1;
	r->local_tail = &r->local_head;
	pthread_mutex_init(&r->hb_mu, NULL);
	pthread_mutex_init(&r->local_mu, NULL);
	pthread_mutex_init(&r->ring_mu, NULL);
	if (!(r->hb_q = calloc(KF_RELAY_HB_QUEUE, sizeof(*r->hb_q))) ||
	    !(r->ring = calloc(r->o.ring_size, sizeof(*r->ring)))) {
		err = KF_ENOMEM;
		goto fail;
	}
	r->local_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	r->hb_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->local_efd < 0 || r->hb_efd < 0) {
		err = KF_EIO;
		goto fail;
	}
	if ((err = open_socket(r, why)))
		goto fail;
	if (pthread_create(&r->thread, NULL, relay_main, r) != 0) {
		err = KF_EIO;
		goto fail;
	}
	r->started = true;
	*out = r;
	return KF_OK;
fail:
	kf_relay_free(r);
	return err;
}

void kf_relay_free(struct kf_relay *r)
{
	if (!r)
		return;
	kf_relay_detach_log(r);
	if (r->started) {
		atomic_store(&r->stop, true);
		efd_signal(r->local_efd);
		pthread_join(r->thread, NULL);
	}
	kf_bus_sub_free(r->sub);
	for (size_t i = 0; i < r->hb_n; i++)
		kf_msg_free(r->hb_q[(r->hb_head + i) % KF_RELAY_HB_QUEUE]);
	for (size_t i = 0; i < r->ring_n; i++)
		kf_msg_free(r->ring[(r->ring_start + i) % r->o.ring_size]);
	for (struct lbuf *b = r->local_head, *next; b; b = next) {
		next = b->next;
		free(b);
	}
	for (unsigned b = 0; b < SRC_BUCKETS; b++)
		while (r->src_buckets[b])
			src_unlink(r, r->src_buckets[b]);
	free(r->hb_q);
	free(r->ring);
	if (r->local_efd >= 0)
		close(r->local_efd);
	if (r->hb_efd >= 0)
		close(r->hb_efd);
	pthread_mutex_destroy(&r->hb_mu);
	pthread_mutex_destroy(&r->local_mu);
	pthread_mutex_destroy(&r->ring_mu);
	free(r);
}
