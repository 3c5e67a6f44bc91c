/* publish.c — the ordered telemetry queue, the log sink, metric updates. */
#include "worker/publish.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/json.h"
#include "proto/topic.h"
#include "telemetry/metrics.h"
#include "telemetry/metrics_snap.h"

#define SEND_BATCH 64
#define NO_PEER_POLL_MS 50

struct item {
	char *buf;
	size_t len;
};

struct kf__publisher {
	struct kf_bus_pub *pub;
	char *source;
	uint64_t incarnation;
	uint32_t tick_ms;
	kf__publish_tick_fn tick;
	void *tick_ctx;

	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct item *ring;
	size_t cap, head, n;
	uint64_t seq;
	bool started, stop;
	bool tick_now;                 /* kf__publisher_tick_now(): tick at once */
	bool send_now;                 /* ... and send what it queued, ungathered */
	uint32_t gather_ms;
	size_t bundle;                 /* most messages per nng message; 1 = no bundles */
	uint64_t first_ns;             /* when the oldest queued message was queued */
	uint64_t flush_deadline_ns;
	pthread_t thread;
	struct kf__publisher_stats st;

	uint64_t metrics_gen;          /* generation of the previous snapshot */
};

/* ---- scratch memory ---------------------------------------------------------- */

struct kf__scratch_chunk {
	struct kf__scratch_chunk *next;
	size_t used, cap;
	max_align_t data[];
};

static void *scratch_alloc(struct kf__scratch *s, size_t n)
{
	struct kf__scratch_chunk *c = s->head;
	size_t need = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
	void *p;

	if (!c || c->cap - c->used < need) {
		size_t cap = need > 4096 ? need : 4096;

		if (!(c = malloc(sizeof(*c) + cap)))
			return NULL;
		c->next = s->head;
		c->used = 0;
		c->cap = cap;
		s->head = c;
	}
	p = (char *)c->data + c->used;
	c->used += need;
	return p;
}

void kf__scratch_release(struct kf__scratch *s)
{
	while (s->head) {
		struct kf__scratch_chunk *next = s->head->next;

		free(s->head);
		s->head = next;
	}
}

/* ---- text -------------------------------------------------------------------- */

size_t kf__utf8_sanitize(char *dst, size_t cap, const char *src, size_t len)
{
	static const char repl[] = "\xEF\xBF\xBD"; /* U+FFFD */
	const unsigned char *s = (const unsigned char *)src;
	size_t out = 0, i = 0;

	while (i < len) {
		size_t n = s[i] ? kf_utf8_seq_len(s + i, len - i) : 0;
		const char *from = n ? src + i : repl;
		size_t take = n ? n : 3;

		if (out + take > cap - 1)
			break;
		memcpy(dst + out, from, take);
		out += take;
		i += n ? n : 1;
	}
	dst[out] = '\0';
	return out;
}

/* A sanitised copy of at most max bytes in scratch; NULL on OOM. */
static const char *copy_text(struct kf__scratch *s, const char *src, size_t len, size_t max)
{
	size_t worst = len * 3 + 1;
	size_t cap = worst < max + 1 ? worst : max + 1;
	char *dst = scratch_alloc(s, cap);

	if (dst)
		kf__utf8_sanitize(dst, cap, src ? src : "", src ? len : 0);
	return dst;
}

static const char *copy_cstr(struct kf__scratch *s, const char *src, size_t max)
{
	return copy_text(s, src, src ? strlen(src) : 0, max);
}

/* ---- log records ------------------------------------------------------------- */

/* Fields of a record or span; EMPTY ones (declared, never recorded) skipped. */
static enum kf_err copy_fields(struct kf__scratch *s, const struct kf_field *in, size_t n_in,
	const struct kf_msg_field **out, size_t *n_out)
{
	struct kf_msg_field *f;
	size_t n = 0;

	*out = NULL;
	*n_out = 0;
	if (n_in > KF_MSG_MAX_FIELDS)
		n_in = KF_MSG_MAX_FIELDS;
	if (!n_in)
		return KF_OK;
	if (!(f = scratch_alloc(s, n_in * sizeof(*f))))
		return KF_ENOMEM;
	for (size_t i = 0; i < n_in; i++) {
		const struct kf_field *x = &in[i];
		struct kf_msg_field *y = &f[n];

		if (x->type == KF_FIELD_EMPTY || !x->key)
			continue;
		if (!(y->name = copy_cstr(s, x->key, KF_MSG_MAX_NAME)))
			return KF_ENOMEM;
		switch (x->type) {
		case KF_FIELD_STR:
			y->value.kind = KF_VALUE_STR;
			/* SIZE_MAX: "NUL-terminated" (KF_STR); sinks get measured
			 * lengths, but a record built by hand may not have them. */
			y->value.str = copy_text(s, x->v.str, !x->v.str ? 0 : x->len == SIZE_MAX ?
						 strlen(x->v.str) : x->len, KF_MSG_MAX_TEXT);
			if (!y->value.str)
				return KF_ENOMEM;
			break;
		case KF_FIELD_I64: y->value.kind = KF_VALUE_I64; y->value.i64 = x->v.i64; break;
		case KF_FIELD_U64: y->value.kind = KF_VALUE_U64; y->value.u64 = x->v.u64; break;
		case KF_FIELD_F64: y->value.kind = KF_VALUE_F64; y->value.f64 = x->v.f64; break;
		default: y->value.kind = KF_VALUE_BOOL; y->value.b = x->v.b; break;
		}
		n++;
	}
	*out = f;
	*n_out = n;
	return KF_OK;
}

enum kf_err kf__log_record_to_msg(const struct kf_log_record *rec, struct kf__scratch *s,
	struct kf_msg_log *out)
{
	size_t first = rec->n_spans > KF_MSG_MAX_SPANS ? rec->n_spans - KF_MSG_MAX_SPANS : 0;
	struct kf_msg_span *spans = NULL;
	enum kf_err err;

	memset(out, 0, sizeof(*out));
	out->level = (enum kf_msg_level)rec->level; /* same numbers (proto/telemetry_msgs.h) */
	if (!(out->target = copy_cstr(s, rec->target, KF_MSG_MAX_NAME)) ||
	    !(out->message = copy_cstr(s, rec->message, KF_MSG_MAX_TEXT)))
		return KF_ENOMEM;
	if ((err = copy_fields(s, rec->fields, rec->n_fields, &out->fields, &out->n_fields)))
		return err;
	out->n_spans = rec->n_spans - first;
	if (out->n_spans && !(spans = scratch_alloc(s, out->n_spans * sizeof(*spans))))
		return KF_ENOMEM;
	for (size_t i = 0; i < out->n_spans; i++) {
		const struct kf_span_info *si = rec->spans[first + i];

		if (!(spans[i].name = copy_cstr(s, si->name, KF_MSG_MAX_NAME)))
			return KF_ENOMEM;
		if ((err = copy_fields(s, si->fields, si->n_fields, &spans[i].fields,
				       &spans[i].n_fields)))
			return err;
	}
	out->spans = spans;
	out->ts_ns = rec->timestamp_ns;
	return KF_OK;
}

/* ---- the queue ------------------------------------------------------------- */

/* Encodes msg with the next sequence number and appends it; under p->mu. */
static enum kf_err enqueue_locked(struct kf__publisher *p, const char *topic, struct kf_msg *msg)
{
	struct kf_strbuf sb = KF_STRBUF_INIT;
	struct item item;
	enum kf_err err;

	if (p->n == p->cap) {
		p->st.dropped++;
		return KF_EFULL;
	}
	msg->sender = p->source;
	msg->seq = p->seq + 1;
	if ((err = kf_msg_encode_pub(topic, msg, &sb))) {
		p->st.encode_errors++;
		kf_strbuf_release(&sb);
		return err;
	}
	p->seq++;
	item.len = sb.len;
	item.buf = kf_strbuf_detach(&sb, NULL);
	p->ring[(p->head + p->n) % p->cap] = item;
	p->n++;
	p->st.queued++;
	/* The thread sends at once without bundles; with them it wakes for the
	 * first message, sleeps until the gathering ends, and is woken early
	 * only by a full batch. */
	if (p->n == 1)
		p->first_ns = kf_clock_mono_ns();
	if (p->bundle <= 1 || p->n == 1 || p->n == SEND_BATCH)
		pthread_cond_signal(&p->cond);
	return KF_OK;
}

static enum kf_err enqueue(struct kf__publisher *p, const char *topic, struct kf_msg *msg)
{
	enum kf_err err;

	pthread_mutex_lock(&p->mu);
	err = enqueue_locked(p, topic, msg);
	pthread_mutex_unlock(&p->mu);
	return err;
}

void kf__publisher_log_sink(void *ctx, const struct kf_log_record *rec)
{
	struct kf__publisher *p = ctx;
	struct kf__scratch s = KF__SCRATCH_INIT;
	char topic[KF_TOPIC_SIZE];
	struct kf_msg m;

	kf_msg_init(&m, KF_MSG_LOG, p->source, 0);
	if (kf__log_record_to_msg(rec, &s, &m.log) == KF_OK) {
		m.ts_ns = rec->timestamp_ns;
		m.log.ts_ns = 0; /* carried by the envelope */
		kf_topic_log(topic, m.log.level, p->source);
		enqueue(p, topic, &m);
	} else {
		pthread_mutex_lock(&p->mu);
		p->st.dropped++;
		pthread_mutex_unlock(&p->mu);
	}
	kf__scratch_release(&s);
}

enum kf_err kf__publisher_heartbeat(struct kf__publisher *p, const struct kf_msg_heartbeat *hb)
{
	char topic[KF_TOPIC_SIZE];
	struct kf_msg m;

	kf_msg_init(&m, KF_MSG_HEARTBEAT, p->source, 0);
	m.heartbeat = *hb;
	kf_topic_hb(topic, p->source);
	return enqueue(p, topic, &m);
}

/* ---- metric updates --------------------------------------------------------- */

static size_t count_series(const struct kf_msnap *snap)
{
	size_t n = 0;

	for (size_t i = 0; i < snap->n_families; i++)
		n += snap->families[i]->n_series;
	return n;
}

/* snap -> proto series; label arrays in scratch, strings borrowed from snap. */
static enum kf_err snap_to_series(const struct kf_msnap *snap, struct kf__scratch *s,
	struct kf_msg_series *series)
{
	size_t k = 0;

	for (size_t i = 0; i < snap->n_families; i++) {
		const struct kf_msnap_family *f = snap->families[i];
		struct kf_msg_label *labels = NULL;

		if (f->n_bounds > KF_MSG_MAX_BUCKETS || f->n_labels > KF_MSG_MAX_LABELS)
			return KF_ETOOBIG;
		for (size_t j = 0; j < f->n_series; j++) {
			const struct kf_msnap_series *x = f->series[j];
			struct kf_msg_series *y = &series[k++];

			if (f->n_labels && !(labels = scratch_alloc(s, f->n_labels * sizeof(*labels))))
				return KF_ENOMEM;
			for (size_t l = 0; l < f->n_labels; l++)
				labels[l] = (struct kf_msg_label){ f->label_names[l], x->label_values[l] };
			*y = (struct kf_msg_series){ .name = f->name,
				.type = (enum kf_msg_metric_type)f->type, .help = f->help,
				.labels = labels, .n_labels = f->n_labels };
			if (f->type == KF_METRIC_HISTOGRAM) {
				y->bucket_le = f->bounds;
				y->bucket_count = x->buckets;
				y->n_buckets = f->n_bounds;
				y->sum = x->sum;
				y->count = x->count;
			} else {
				y->value = x->value;
			}
		}
	}
	return KF_OK;
}

enum kf_err kf__publisher_metrics(struct kf__publisher *p, struct kf_metrics *reg, bool full)
{
	struct kf_msnap snap = KF_MSNAP_INIT;
	struct kf__scratch s = KF__SCRATCH_INIT;
	struct kf_msg_series *series = NULL;
	char topic[KF_TOPIC_SIZE];
	struct kf_msg m;
	size_t n;
	enum kf_err err;

	if ((err = kf_metrics_snapshot(reg, full ? 0 : p->metrics_gen, &snap)))
		return err;
	p->metrics_gen = snap.generation;
	n = count_series(&snap);
	if (!full && n == 0)
		goto out;
	err = KF_ETOOBIG;
	if (n > KF_MSG_MAX_SERIES)
		goto out;
	err = KF_ENOMEM;
	if (n && !(series = scratch_alloc(&s, n * sizeof(*series))))
		goto out;
	if ((err = snap_to_series(&snap, &s, series)))
		goto out;
	kf_msg_init(&m, KF_MSG_METRIC, p->source, 0);
	m.metric = (struct kf_msg_metric){ .source = p->source, .incarnation = p->incarnation,
		.full = full, .series = series, .n_series = n };
	kf_topic_metric(topic, p->source);
	err = enqueue(p, topic, &m);
out:
	kf__scratch_release(&s);
	kf_msnap_release(&snap);
	return err;
}

/* ---- the publisher thread ---------------------------------------------------- */

static bool have_peer(struct kf__publisher *p)
{
	return kf_bus_sock_peers(kf_bus_pub_sock(p->pub)) > 0;
}

void kf__publisher_set_bundle(struct kf__publisher *p, size_t bundle)
{
	pthread_mutex_lock(&p->mu);
	p->bundle = bundle ? bundle : 1;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->mu);
}

/* When the queued messages are due: at once without bundles, else once the
 * oldest has gathered others for gather_ms or a batch is full. Stopping and
 * kf__publisher_tick_now send everything at once. mu held. */
static uint64_t due_ns(const struct kf__publisher *p)
{
	if (p->bundle <= 1 || p->stop || p->send_now || p->n >= SEND_BATCH)
		return 0;
	return p->first_ns + (uint64_t)p->gather_ms * 1000000u;
}

/* Sends up to SEND_BATCH queued messages with the lock released, as
 * bundles when they are on. */
static void send_some_locked(struct kf__publisher *p)
{
	struct item batch[SEND_BATCH];
	struct kf_bus_part parts[SEND_BATCH];
	size_t n = 0, bundle = p->bundle;

	while (p->n && n < SEND_BATCH) {
		batch[n] = p->ring[p->head];
		parts[n] = (struct kf_bus_part){ batch[n].buf, batch[n].len };
		n++;
		p->head = (p->head + 1) % p->cap;
		p->n--;
	}
	pthread_mutex_unlock(&p->mu);
	kf_bus_pub_send_parts(p->pub, parts, n, bundle, NULL);
	for (size_t i = 0; i < n; i++)
		free(batch[i].buf);
	pthread_mutex_lock(&p->mu);
	p->st.sent += n;
	if (!p->n)
		p->send_now = false;
}

static void *publisher_main(void *arg)
{
	struct kf__publisher *p = arg;
	uint64_t tick_ns = (uint64_t)p->tick_ms * 1000000u, next_tick = kf_clock_mono_ns();
	uint64_t ticks = 0;
	struct timespec ts;
	bool final_done = false;

	pthread_setname_np(pthread_self(), "kf:publish");  /* top -H, perf */

	pthread_mutex_lock(&p->mu);
	for (;;) {
		uint64_t now = kf_clock_mono_ns(), wake;
		bool peer = have_peer(p);

		if (p->stop && !final_done) {
			final_done = true;
			if (p->tick) {
				pthread_mutex_unlock(&p->mu);
				p->tick(p->tick_ctx, p, KF__PUBLISH_FINAL_TICK);
				pthread_mutex_lock(&p->mu);
			}
			continue;
		}
		if (p->stop && (!p->n || !peer || now >= p->flush_deadline_ns))
			break;
		if (p->n && peer && now >= due_ns(p)) {
			send_some_locked(p);
			continue;
		}
		if (!p->stop && p->tick && p->tick_now) {
			p->tick_now = false;
			pthread_mutex_unlock(&p->mu);
			p->tick(p->tick_ctx, p, ticks++);
			pthread_mutex_lock(&p->mu);
			p->send_now = p->n > 0;
			continue;
		}
		if (!p->stop && p->tick && tick_ns && now >= next_tick) {
			pthread_mutex_unlock(&p->mu);
			p->tick(p->tick_ctx, p, ticks++);
			pthread_mutex_lock(&p->mu);
			next_tick += tick_ns;
			if (next_tick <= now)
				next_tick = now + tick_ns; /* fell behind: do not burst */
			continue;
		}
		wake = p->tick && tick_ns && !p->stop ? next_tick : now + 1000000000u;
		if (p->n && !peer && wake > now + NO_PEER_POLL_MS * 1000000u)
			wake = now + NO_PEER_POLL_MS * 1000000u;
		if (p->n && peer && wake > due_ns(p))
			wake = due_ns(p);
		if (p->stop && wake > p->flush_deadline_ns)
			wake = p->flush_deadline_ns;
		ts = kf_clock_mono_timespec(wake);
		pthread_cond_timedwait(&p->cond, &p->mu, &ts);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------- */

enum kf_err kf__publisher_new(const struct kf__publisher_opts *o, struct kf__publisher **out)
{
	struct kf__publisher *p = calloc(1, sizeof(*p));

	*out = NULL;
	if (!p)
		return KF_ENOMEM;
	p->cap = o->queue_cap ? o->queue_cap : KF__PUBLISH_QUEUE_DEFAULT;
	p->bundle = 1;
	p->ring = calloc(p->cap, sizeof(*p->ring));
	p->source = strdup(o->source);
	if (!p->ring || !p->source) {
		free(p->ring);
		free(p->source);
		free(p);
		return KF_ENOMEM;
	}
	p->pub = o->pub;
	p->incarnation = o->incarnation;
	p->tick_ms = o->tick_ms;
	p->gather_ms = o->gather_ms ? o->gather_ms : KF__PUBLISH_GATHER_MS;
	p->tick = o->tick;
	p->tick_ctx = o->tick_ctx;
	pthread_mutex_init(&p->mu, NULL);
	kf_clock_mono_cond_init(&p->cond);
	*out = p;
	return KF_OK;
}

enum kf_err kf__publisher_start(struct kf__publisher *p)
{
	if (p->started)
		return KF_OK;
	if (pthread_create(&p->thread, NULL, publisher_main, p) != 0)
		return KF_EIO;
	p->started = true;
	return KF_OK;
}

void kf__publisher_tick_now(struct kf__publisher *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->tick_now = true;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->mu);
}

void kf__publisher_stop(struct kf__publisher *p, uint32_t flush_ms)
{
	if (!p->started)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	p->flush_deadline_ns = kf_clock_mono_ns() + (uint64_t)flush_ms * 1000000u;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);
	p->started = false;
}

void kf__publisher_free(struct kf__publisher *p)
{
	if (!p)
		return;
	kf__publisher_stop(p, 0);
	while (p->n) {
		free(p->ring[p->head].buf);
		p->head = (p->head + 1) % p->cap;
		p->n--;
	}
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->mu);
	free(p->ring);
	free(p->source);
	free(p);
}

void kf__publisher_stats(struct kf__publisher *p, struct kf__publisher_stats *out)
{
	pthread_mutex_lock(&p->mu);
	*out = p->st;
	out->seq = p->seq;
	pthread_mutex_unlock(&p->mu);
}
