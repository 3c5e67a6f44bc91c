/*
 * aggregate.c — the metric aggregator (see aggregate.h for the rules).
 *
 * Objects:
 *   family   one metric name: type, label names, bounds, help; a map of its
 *            label sets (aseries)
 *   aseries  one exposed series (family + label values): the retired sum and
 *            a scratch accumulator used while a snapshot is built
 *   source   one producer, with its current instance (incarnation, last seq,
 *            a map aseries* -> iseries) and its recently retired incarnations
 *   iseries  one instance's last value of one aseries; `expired` marks a
 *            tombstone whose value has been folded into the retired sum
 *   evicted  a ring of the (source, incarnation) pairs forgotten at the
 *            source cap, so that one coming back is not counted twice
 *
 * Exposed values are recomputed from scratch at each snapshot (retired +
 * the sum of live iseries), so gauges never accumulate rounding drift. A
 * counter or a histogram's _sum is then held at no less than it last showed
 * (see fill): the order and grouping of that floating-point sum change, and
 * an ulp lower would read as a reset.
 */
#include "gateway/aggregate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/json.h"
#include "common/strbuf.h"
#include "gateway/map.h"
#include "telemetry/contract.h"
#include "telemetry/log.h"
#include "telemetry/metrics_snap.h"

#define TARGET "keyforge::gateway::aggregate"

/* Incarnations of one source remembered as retired (late messages of an
 * older process are ignored rather than flipping the source back). */
#define RETIRED_INCARNATIONS 4
/* Instances forgotten at the source cap that are remembered (evict_one). */
#define EVICTED_REMEMBERED 1024
/* Histogram bounds accepted from producers (proto's limit). */
#define MAX_BOUNDS 128
/* Labels per series (proto's limit). */
#define MAX_LABELS 32
/* Results of the family checks besides the refusal reasons. */
#define FITS ((enum kf_gw_drop)KF_GW_DROP_COUNT)
#define NOMEM ((enum kf_gw_drop)(KF_GW_DROP_COUNT + 1))

struct val {
	double value;    /* counter, gauge */
	double sum;      /* histogram */
	uint64_t count;
	uint64_t *buckets; /* n_bounds cumulative counts */
};

struct family {
	char *name;
	size_t name_len;
	char *help;
	enum kf_gw_mtype type;
	char **label_names;
	size_t n_labels;
	double *bounds;
	size_t n_bounds;
	bool contract;
	bool cap_warned;
	struct kf__gw_map series;  /* label key -> struct aseries */
};

struct aseries {
	struct family *fam;
	char *key;                 /* encoded label values (see encode_key) */
	size_t key_len;
	char **label_values;       /* fam->n_labels strings */
	size_t refs;               /* iseries (live or tombstone) pointing here */
	struct val retired;
	struct val acc;
	uint64_t acc_gen;          /* == agg->gen when acc holds this snapshot's sum */
	double shown_value;        /* counter: the last value exposed */
	double shown_sum;          /* histogram: the last _sum exposed */
	bool sum_falls;            /* an instance's _sum fell: negative observations */
};

struct iseries {
	struct aseries *as;        /* also the map key (its address bytes) */
	uint64_t last_ns;
	uint64_t mark;
	bool expired;
	struct val v;              /* what counts: the value reported, less base */
	struct val *base;          /* NULL, or the first value reported after the
				    * instance came back from eviction */
};

struct source {
	char *name;
	size_t name_len;
	uint64_t incarnation;
	uint64_t last_seq;
	uint64_t last_ns;          /* last update applied */
	uint64_t mark;             /* generation of the update being applied */
	size_t n_live;             /* iseries not expired */
	struct kf__gw_map series;  /* &iseries->as -> struct iseries */
	uint64_t retired_inc[RETIRED_INCARNATIONS];
	size_t n_retired_inc;      /* total ever retired; ring index = n % N */
	bool came_back;            /* this instance was evicted before: counters
				    * count on from their first value since */
};

/* An instance (or a retired incarnation) of an evicted source. */
struct evicted {
	uint64_t name_hash;
	uint64_t incarnation;
	bool retired;              /* an incarnation the source had retired */
};

struct kf_gw_agg {
	struct kf_gw_agg_config cfg;
	uint64_t seed;
	struct kf__gw_map families;
	struct kf__gw_map sources;
	size_t n_plain_families;   /* families that are not contract families */
	uint64_t n_aseries;
	uint64_t n_live;
	uint64_t next_expiry_ns;   /* no live series expires before this */
	uint64_t gen;              /* snapshot generation (aseries.acc_gen) */
	struct kf_strbuf key;      /* scratch: label key being built */
	struct kf_gw_agg_stats stats;
	struct evicted evicted[EVICTED_REMEMBERED];
	size_t n_evicted;          /* total ever noted; ring index = n % N */
};

static const char *const drop_names[KF_GW_DROP_COUNT] = {
	[KF_GW_DROP_CAP] = "cap",
	[KF_GW_DROP_FAMILIES] = "families",
	[KF_GW_DROP_SOURCES] = "sources",
	[KF_GW_DROP_TYPE] = "type",
	[KF_GW_DROP_LABELS] = "labels",
	[KF_GW_DROP_BUCKETS] = "buckets",
	[KF_GW_DROP_INVALID] = "invalid",
	[KF_GW_DROP_RESERVED] = "reserved",
};

const char *kf_gw_drop_name(enum kf_gw_drop why)
{
	return (unsigned)why < KF_GW_DROP_COUNT ? drop_names[why] : "?";
}

static enum kf_metric_type snap_type(enum kf_gw_mtype t)
{
	static const enum kf_metric_type map[] = {
		[KF_GW_COUNTER] = KF_METRIC_COUNTER,
		[KF_GW_GAUGE] = KF_METRIC_GAUGE,
		[KF_GW_HISTOGRAM] = KF_METRIC_HISTOGRAM,
	};
	return map[t];
}

static bool cumulative(enum kf_gw_mtype t)
{
	return t != KF_GW_GAUGE;
}

/* ---- values ------------------------------------------------------------ */

static void val_zero(struct val *v, size_t n_bounds)
{
	v->value = v->sum = 0;
	v->count = 0;
	if (n_bounds)
		memset(v->buckets, 0, n_bounds * sizeof(*v->buckets));
}

static void val_add(struct val *dst, const struct val *src, size_t n_bounds)
{
	dst->value += src->value;
	dst->sum += src->sum;
	dst->count += src->count;
	for (size_t i = 0; i < n_bounds; i++)
		dst->buckets[i] += src->buckets[i];
}

/* dst -= src, for taking a tombstone back out of the retired sum. Counts
 * never underflow: the tombstone was added to dst before. */
static void val_sub(struct val *dst, const struct val *src, size_t n_bounds)
{
	dst->value -= src->value;
	if (dst->value < 0)
		dst->value = 0; /* rounding of fractional counters */
	dst->sum -= src->sum;
	dst->count -= src->count <= dst->count ? src->count : dst->count;
	for (size_t i = 0; i < n_bounds; i++)
		dst->buckets[i] -= src->buckets[i] <= dst->buckets[i] ? src->buckets[i]
								       : dst->buckets[i];
}

/* True when cumulative value b is not below a (a counter did not reset). */
static bool val_ge(const struct val *b, const struct val *a, enum kf_gw_mtype t, size_t n_bounds)
{
	if (t == KF_GW_COUNTER)
		return b->value >= a->value;
	if (b->count < a->count)
		return false;
	for (size_t i = 0; i < n_bounds; i++)
		if (b->buckets[i] < a->buckets[i])
			return false;
	return true;
}

static void val_from_series(struct val *v, const struct kf_gw_series *s, size_t n_bounds)
{
	v->value = s->type == KF_GW_HISTOGRAM ? 0 : s->value;
	v->sum = s->type == KF_GW_HISTOGRAM ? s->sum : 0;
	v->count = s->type == KF_GW_HISTOGRAM ? s->count : 0;
	for (size_t i = 0; i < n_bounds; i++)
		v->buckets[i] = s->bucket_count[i];
}

/* ---- families ----------------------------------------------------------- */

static void family_free(struct family *f)
{
	if (!f)
		return;
	size_t it = 0;
	struct aseries *as;
	while ((as = kf__gw_map_next(&f->series, &it)))
		free(as);
	kf__gw_map_release(&f->series);
	for (size_t i = 0; i < f->n_labels; i++)
		free(f->label_names[i]);
	free(f->label_names);
	free(f->bounds);
	free(f->help);
	free(f->name);
	free(f);
}

static struct family *family_new(struct kf_gw_agg *agg, const char *name, enum kf_gw_mtype type,
				 const char *help, const char *const *label_names,
				 size_t n_labels, const double *bounds, size_t n_bounds)
{
	struct family *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->name = strdup(name);
	f->name_len = f->name ? strlen(name) : 0;
	f->help = strdup(help ? help : "");
	f->type = type;
	f->label_names = n_labels ? calloc(n_labels, sizeof(char *)) : NULL;
	f->bounds = n_bounds ? malloc(n_bounds * sizeof(double)) : NULL;
	kf__gw_map_init(&f->series, agg->seed ^ 0x5e1e5);
	bool ok = f->name && f->help && (!n_labels || f->label_names) &&
		  (!n_bounds || f->bounds);
	for (size_t i = 0; ok && i < n_labels; i++) {
		f->label_names[i] = strdup(label_names[i]);
		f->n_labels = i + 1;
		ok = f->label_names[i] != NULL;
	}
	if (ok && n_bounds) {
		memcpy(f->bounds, bounds, n_bounds * sizeof(double));
		f->n_bounds = n_bounds;
	}
	if (!ok) {
		family_free(f);
		return NULL;
	}
	return f;
}

static void family_desc(const struct family *f, struct kf_metric_desc *d)
{
	*d = (struct kf_metric_desc){
		.name = f->name,
		.help = f->help,
		.type = snap_type(f->type),
		.label_names = (const char *const *)f->label_names,
		.n_labels = f->n_labels,
		.buckets = f->bounds,
		.n_buckets = f->n_bounds,
	};
}

static enum kf_err add_contract_families(struct kf_gw_agg *agg)
{
	static const enum kf_gw_mtype types[] = {
		[KF_METRIC_COUNTER] = KF_GW_COUNTER,
		[KF_METRIC_GAUGE] = KF_GW_GAUGE,
		[KF_METRIC_HISTOGRAM] = KF_GW_HISTOGRAM,
	};
	for (size_t i = 0; i < KF_CONTRACT_COUNT; i++) {
		const struct kf_metric_desc *d = &kf_contract_descs[i];
		struct family *f = family_new(agg, d->name, types[d->type], d->help,
					      d->label_names, d->n_labels, d->buckets,
					      d->n_buckets);
		if (!f)
			return KF_ENOMEM;
		f->contract = true;
		enum kf_err err = kf__gw_map_put(&agg->families, f->name, f->name_len, f);
		if (err) {
			family_free(f);
			return err;
		}
	}
	return KF_OK;
}

static bool reserved(const struct kf_gw_agg *agg, const char *name)
{
	const char *const *p = agg->cfg.reserved_prefixes;
	for (; p && *p; p++)
		if (strncmp(name, *p, strlen(*p)) == 0)
			return true;
	return false;
}

/* Checks a series' own shape: label names, bounds, value. */
static enum kf_gw_drop check_series(const struct kf_gw_series *s)
{
	if ((unsigned)s->type > KF_GW_HISTOGRAM || s->n_labels > MAX_LABELS ||
	    (s->n_labels && !s->labels))
		return KF_GW_DROP_INVALID;
	for (size_t i = 0; i < s->n_labels; i++) {
		const struct kf_gw_label *l = &s->labels[i];
		if (!l->name || !l->value || !kf_metric_label_name_valid(l->name) ||
		    !kf_utf8_valid(l->value, strlen(l->value)))
			return KF_GW_DROP_INVALID;
		if (s->type == KF_GW_HISTOGRAM && strcmp(l->name, "le") == 0)
			return KF_GW_DROP_INVALID;
		for (size_t j = 0; j < i; j++)
			if (strcmp(s->labels[j].name, l->name) == 0)
				return KF_GW_DROP_INVALID;
	}
	if (s->type == KF_GW_COUNTER && !(s->value >= 0 && isfinite(s->value)))
		return KF_GW_DROP_INVALID;
	if (s->type != KF_GW_HISTOGRAM)
		return FITS;
	if (s->n_buckets > MAX_BOUNDS || (s->n_buckets && (!s->bucket_le || !s->bucket_count)))
		return KF_GW_DROP_INVALID;
	for (size_t i = 0; i < s->n_buckets; i++) {
		if (!isfinite(s->bucket_le[i]) || (i && s->bucket_le[i] <= s->bucket_le[i - 1]))
			return KF_GW_DROP_INVALID;
		if ((i && s->bucket_count[i] < s->bucket_count[i - 1]) ||
		    s->bucket_count[i] > s->count)
			return KF_GW_DROP_INVALID;
	}
	return FITS;
}

/* A new family from its first series; FITS when created. */
static enum kf_gw_drop family_create(struct kf_gw_agg *agg, const struct kf_gw_series *s,
				     struct family **out)
{
	if (reserved(agg, s->name))
		return KF_GW_DROP_RESERVED;
	if (!kf_metric_name_valid(s->name))
		return KF_GW_DROP_INVALID;
	const char *names[MAX_LABELS];
	for (size_t i = 0; i < s->n_labels; i++)
		names[i] = s->labels[i].name;
	const char *help = s->help && kf_utf8_valid(s->help, strlen(s->help)) ? s->help : "";
	struct kf_metric_desc d = {
		.name = s->name, .help = help, .type = snap_type(s->type),
		.label_names = names, .n_labels = s->n_labels,
		.buckets = s->type == KF_GW_HISTOGRAM ? s->bucket_le : NULL,
		.n_buckets = s->type == KF_GW_HISTOGRAM ? s->n_buckets : 0,
	};
	if (kf_metric_desc_check(&d) != KF_OK)
		return KF_GW_DROP_INVALID;
	size_t it = 0;
	struct family *other;
	while ((other = kf__gw_map_next(&agg->families, &it))) {
		struct kf_metric_desc od;
		family_desc(other, &od);
		if (kf_metric_desc_collide(&od, &d))
			return KF_GW_DROP_INVALID;
	}
	if (agg->n_plain_families >= agg->cfg.max_families)
		return KF_GW_DROP_FAMILIES;
	struct family *f = family_new(agg, s->name, s->type, help, names, s->n_labels,
				      d.buckets, d.n_buckets);
	if (!f || kf__gw_map_put(&agg->families, f->name, f->name_len, f) != KF_OK) {
		family_free(f);
		return NOMEM;
	}
	agg->n_plain_families++;
	*out = f;
	return FITS;
}

/* Finds or creates the family of s and checks s against it. Returns FITS
 * when s fits *out, NOMEM when memory ran out, else the refusal reason. */
static enum kf_gw_drop family_for(struct kf_gw_agg *agg, const struct kf_gw_series *s,
				  struct family **out)
{
	if (!s->name)
		return KF_GW_DROP_INVALID;
	enum kf_gw_drop why = check_series(s);
	if (why != FITS)
		return why;
	struct family *f = kf__gw_map_get(&agg->families, s->name, strlen(s->name));
	if (!f)
		return family_create(agg, s, out);
	if (f->type != s->type)
		return KF_GW_DROP_TYPE;
	if (f->n_labels != s->n_labels)
		return KF_GW_DROP_LABELS;
	if (f->type == KF_GW_HISTOGRAM &&
	    (f->n_bounds != s->n_buckets ||
	     (f->n_bounds && memcmp(f->bounds, s->bucket_le, f->n_bounds * sizeof(double)))))
		return KF_GW_DROP_BUCKETS;
	if (!f->help[0] && s->help && s->help[0] && kf_utf8_valid(s->help, strlen(s->help))) {
		char *h = strdup(s->help);
		if (h) {
			free(f->help);
			f->help = h;
		}
	}
	*out = f;
	return FITS;
}

/*
 * The label key of s in the family's label order: for each label, a 4-byte
 * length then the value's bytes. False when a family label is missing from
 * s (the count was checked before, so that also catches renamed labels).
 */
static bool encode_key(struct kf_gw_agg *agg, const struct family *f,
		       const struct kf_gw_series *s, const char **values)
{
	kf_strbuf_reset(&agg->key);
	for (size_t i = 0; i < f->n_labels; i++) {
		const char *v = NULL;
		for (size_t j = 0; j < s->n_labels && !v; j++)
			if (strcmp(s->labels[j].name, f->label_names[i]) == 0)
				v = s->labels[j].value;
		if (!v)
			return false;
		uint32_t len = (uint32_t)strlen(v);
		kf_strbuf_add(&agg->key, &len, sizeof(len));
		kf_strbuf_add(&agg->key, v, len);
		values[i] = v;
	}
	return true;
}

/* ---- exposed series ------------------------------------------------------ */

/* One allocation: struct, bucket arrays, label pointers, key, strings. */
static struct aseries *aseries_new(struct kf_gw_agg *agg, struct family *f,
				   const char *const *values)
{
	size_t nb = f->n_bounds, nl = f->n_labels, klen = agg->key.len, strs = 0;
	for (size_t i = 0; i < nl; i++)
		strs += strlen(values[i]) + 1;
	size_t size = sizeof(struct aseries) + 2 * nb * sizeof(uint64_t) + nl * sizeof(char *) +
		      klen + strs;
	struct aseries *as = calloc(1, size);
	if (!as)
		return NULL;
	char *p = (char *)(as + 1);
	as->retired.buckets = (uint64_t *)p;
	as->acc.buckets = as->retired.buckets + nb;
	p += 2 * nb * sizeof(uint64_t);
	as->label_values = (char **)p;
	p += nl * sizeof(char *);
	as->key = p;
	as->key_len = klen;
	memcpy(p, agg->key.buf, klen);
	p += klen;
	for (size_t i = 0; i < nl; i++) {
		size_t len = strlen(values[i]);
		as->label_values[i] = memcpy(p, values[i], len + 1);
		p += len + 1;
	}
	as->fam = f;
	if (kf__gw_map_put(&f->series, as->key, as->key_len, as) != KF_OK) {
		free(as);
		return NULL;
	}
	agg->n_aseries++;
	return as;
}

/* A gauge series lives only while an instance holds it; counters stay. */
static void aseries_unref(struct kf_gw_agg *agg, struct aseries *as)
{
	if (--as->refs || cumulative(as->fam->type))
		return;
	kf__gw_map_del(&as->fam->series, as->key, as->key_len);
	agg->n_aseries--;
	free(as);
}

/* ---- instance series ---------------------------------------------------- */

static struct iseries *iseries_new(struct source *src, struct aseries *as)
{
	size_t nb = as->fam->n_bounds;
	bool based = src->came_back && cumulative(as->fam->type);
	size_t size = sizeof(struct iseries) + nb * sizeof(uint64_t) +
		      (based ? sizeof(struct val) + nb * sizeof(uint64_t) : 0);
	struct iseries *is = calloc(1, size);
	if (!is)
		return NULL;
	is->as = as;
	is->v.buckets = (uint64_t *)(is + 1);
	if (based) {
		is->base = (struct val *)(is->v.buckets + nb);
		is->base->buckets = (uint64_t *)(is->base + 1);
	}
	if (kf__gw_map_put(&src->series, &is->as, sizeof(is->as), is) != KF_OK) {
		free(is);
		return NULL;
	}
	as->refs++;
	return is;
}

static void iseries_free(struct kf_gw_agg *agg, struct source *src, struct iseries *is)
{
	kf__gw_map_del(&src->series, &is->as, sizeof(is->as));
	aseries_unref(agg, is->as);
	free(is);
}

/* Folds a live counter/histogram into the retired sum (tombstone), or drops
 * a gauge. */
static void iseries_expire(struct kf_gw_agg *agg, struct source *src, struct iseries *is)
{
	src->n_live--;
	agg->n_live--;
	agg->stats.series_expired++;
	if (!cumulative(is->as->fam->type)) {
		iseries_free(agg, src, is);
		return;
	}
	val_add(&is->as->retired, &is->v, is->as->fam->n_bounds);
	is->expired = true;
}

static void note_live(struct kf_gw_agg *agg, uint64_t now_ns)
{
	uint64_t due = now_ns + agg->cfg.series_ttl_ns;
	if (agg->cfg.series_ttl_ns && due < agg->next_expiry_ns)
		agg->next_expiry_ns = due;
}

/*
 * An instance that came back after its source was evicted counts from the
 * first value it reports since: its values from before are in the retired
 * sum (its tombstones), but which values they were was forgotten with it.
 * Turns nv into what counts (nv - base); a value below the base is a reset
 * of the producer, and counts from 0 again.
 */
static void rebase(struct iseries *is, struct val *nv, bool fresh, enum kf_gw_mtype t,
		   size_t nb)
{
	if (fresh) {
		val_zero(is->base, nb);
		val_add(is->base, nv, nb);
	}
	if (val_ge(nv, is->base, t, nb))
		val_sub(nv, is->base, nb);
	else
		val_zero(is->base, nb);
}

/* Applies one value to an instance series (new, tombstone or live). */
static void iseries_set(struct kf_gw_agg *agg, struct source *src, struct iseries *is,
			const struct kf_gw_series *s, bool fresh, uint64_t now_ns)
{
	struct aseries *as = is->as;
	size_t nb = as->fam->n_bounds;
	uint64_t nv_buckets[MAX_BOUNDS];
	struct val nv = { .buckets = nv_buckets };
	val_from_series(&nv, s, nb);
	if (is->base)
		rebase(is, &nv, fresh, as->fam->type, nb);
	if (nv.sum < 0)
		as->sum_falls = true;
	if (!fresh && cumulative(as->fam->type)) {
		bool ge = val_ge(&nv, &is->v, as->fam->type, nb);
		/* Counts did not go down but the sum did: observations below 0,
		 * which Prometheus allows. Then the _sum may really fall. */
		if (ge && nv.sum < is->v.sum)
			as->sum_falls = true;
		if (is->expired && ge)
			val_sub(&as->retired, &is->v, nb); /* the tombstone comes back */
		else if (!is->expired && !ge)
			val_add(&as->retired, &is->v, nb); /* a reset: keep what was counted */
		if (!ge)
			agg->stats.counter_resets++;
	}
	if (fresh || is->expired) {
		is->expired = false;
		src->n_live++;
		agg->n_live++;
	}
	is->v.value = nv.value;
	is->v.sum = nv.sum;
	is->v.count = nv.count;
	if (nb)
		memcpy(is->v.buckets, nv.buckets, nb * sizeof(uint64_t));
	is->last_ns = now_ns;
	is->mark = src->mark;
	note_live(agg, now_ns);
}

/* ---- sources ------------------------------------------------------------ */

/* Retires every series of the instance: counters fold, gauges drop, and
 * tombstones (already folded) are freed. */
static void source_clear(struct kf_gw_agg *agg, struct source *src)
{
	size_t it = 0;
	struct iseries *is;
	while ((is = kf__gw_map_next(&src->series, &it))) {
		if (!is->expired) {
			if (cumulative(is->as->fam->type))
				val_add(&is->as->retired, &is->v, is->as->fam->n_bounds);
			agg->n_live--;
		}
		iseries_free(agg, src, is);
	}
	src->n_live = 0;
	kf__gw_map_release(&src->series);
	kf__gw_map_init(&src->series, agg->seed ^ 0x15e);
}

static void source_free(struct kf_gw_agg *agg, struct source *src)
{
	source_clear(agg, src);
	kf__gw_map_release(&src->series);
	free(src->name);
	free(src);
}

static bool incarnation_retired(const struct source *src, uint64_t inc)
{
	size_t n = src->n_retired_inc < RETIRED_INCARNATIONS ? src->n_retired_inc
							     : RETIRED_INCARNATIONS;
	for (size_t i = 0; i < n; i++)
		if (src->retired_inc[i] == inc)
			return true;
	return false;
}

static void source_restart(struct kf_gw_agg *agg, struct source *src, uint64_t inc)
{
	source_clear(agg, src);
	src->retired_inc[src->n_retired_inc++ % RETIRED_INCARNATIONS] = src->incarnation;
	src->incarnation = inc;
	src->last_seq = 0;
	src->came_back = false;
	agg->stats.restarts++;
}

static uint64_t evicted_hash(const struct kf_gw_agg *agg, const char *name, size_t len)
{
	return kf__gw_hash(agg->seed ^ 0xe71c7ed, name, len);
}

static void note_evicted(struct kf_gw_agg *agg, uint64_t name_hash, uint64_t inc, bool retired)
{
	agg->evicted[agg->n_evicted++ % EVICTED_REMEMBERED] =
		(struct evicted){ .name_hash = name_hash, .incarnation = inc, .retired = retired };
}

/* The latest remembered eviction of (source, incarnation), or NULL. Latest:
 * an instance evicted, back, then retired and evicted again is retired. */
static const struct evicted *find_evicted(const struct kf_gw_agg *agg, const char *source,
					  uint64_t inc)
{
	uint64_t h = evicted_hash(agg, source, strlen(source));
	size_t n = agg->n_evicted < EVICTED_REMEMBERED ? agg->n_evicted : EVICTED_REMEMBERED;
	for (size_t k = 1; k <= n; k++) {
		const struct evicted *e = &agg->evicted[(agg->n_evicted - k) % EVICTED_REMEMBERED];
		if (e->name_hash == h && e->incarnation == inc)
			return e;
	}
	return NULL;
}

/* Evicts the least recently active source that has only tombstones left. */
static bool evict_one(struct kf_gw_agg *agg)
{
	struct source *victim = NULL, *src;
	size_t it = 0;
	while ((src = kf__gw_map_next(&agg->sources, &it)))
		if (!src->n_live && (!victim || src->last_ns < victim->last_ns))
			victim = src;
	if (!victim)
		return false;
	/* Its instances' values stay in the retired sum; the instances
	 * themselves are remembered, so that one coming back is neither
	 * counted again from 0 nor, if retired, taken for live. */
	uint64_t h = evicted_hash(agg, victim->name, victim->name_len);
	note_evicted(agg, h, victim->incarnation, false);
	size_t n = victim->n_retired_inc < RETIRED_INCARNATIONS ? victim->n_retired_inc
								 : RETIRED_INCARNATIONS;
	for (size_t i = 0; i < n; i++)
		note_evicted(agg, h, victim->retired_inc[i], true);
	kf__gw_map_del(&agg->sources, victim->name, victim->name_len);
	source_free(agg, victim);
	agg->stats.sources_evicted++;
	return true;
}

static enum kf_err source_new(struct kf_gw_agg *agg, const struct kf_gw_update *upd,
			      struct source **out)
{
	const struct evicted *ev = find_evicted(agg, upd->source, upd->incarnation);
	if (ev && ev->retired)
		return KF_ESTALE;
	bool came_back = ev != NULL;
	if (agg->sources.n >= agg->cfg.max_sources && !evict_one(agg))
		return KF_EFULL;
	struct source *src = calloc(1, sizeof(*src));
	if (!src || !(src->name = strdup(upd->source))) {
		free(src);
		return KF_ENOMEM;
	}
	src->name_len = strlen(src->name);
	src->incarnation = upd->incarnation;
	src->came_back = came_back;
	kf__gw_map_init(&src->series, agg->seed ^ 0x15e);
	if (kf__gw_map_put(&agg->sources, src->name, src->name_len, src) != KF_OK) {
		source_free(agg, src);
		return KF_ENOMEM;
	}
	if (came_back)
		KF_WARN(TARGET, "an evicted source came back; its counters count on from now, "
			"without what it counted while forgotten",
			KF_STR("source", src->name), KF_U64("incarnation", src->incarnation));
	*out = src;
	return KF_OK;
}

/* Finds the source's instance for upd, handling restarts and sequence
 * numbers. KF_ESTALE when upd must be ignored. */
static enum kf_err source_for(struct kf_gw_agg *agg, const struct kf_gw_update *upd,
			      struct source **out)
{
	struct source *src = kf__gw_map_get(&agg->sources, upd->source, strlen(upd->source));
	if (!src)
		return source_new(agg, upd, out);
	if (upd->incarnation != src->incarnation) {
		if (incarnation_retired(src, upd->incarnation))
			return KF_ESTALE;
		source_restart(agg, src, upd->incarnation);
	} else if (upd->seq && src->last_seq) {
		if (upd->seq <= src->last_seq)
			return KF_ESTALE;
		if (upd->seq_gaps && upd->seq > src->last_seq + 1) {
			agg->stats.sequence_gaps++;
			agg->stats.messages_missed += upd->seq - src->last_seq - 1;
		}
	}
	*out = src;
	return KF_OK;
}

/* ---- update ------------------------------------------------------------- */

static void drop(struct kf_gw_agg *agg, enum kf_gw_drop why, const char *name)
{
	agg->stats.series_dropped[why]++;
	KF_TRACE(TARGET, "series dropped", KF_STR("reason", kf_gw_drop_name(why)),
		 KF_STR("metric", name ? name : ""));
}

/* KF_OK or KF_ENOMEM; refusals are counted, not returned. */
static enum kf_err apply_series(struct kf_gw_agg *agg, struct source *src,
				const struct kf_gw_series *s, uint64_t now_ns)
{
	struct family *f = NULL;
	enum kf_gw_drop why = family_for(agg, s, &f);
	if (why == NOMEM)
		return KF_ENOMEM;
	const char *values[MAX_LABELS];
	if (why == FITS && !encode_key(agg, f, s, values))
		why = KF_GW_DROP_LABELS;
	if (why != FITS) {
		drop(agg, why, s->name);
		return KF_OK;
	}
	if (agg->key.oom)
		return KF_ENOMEM;
	struct aseries *as = kf__gw_map_get(&f->series, agg->key.buf, agg->key.len);
	if (!as) {
		if (f->series.n >= agg->cfg.max_series) {
			if (!f->cap_warned)
				KF_WARN(TARGET, "series cap reached; further label sets dropped",
					KF_STR("metric", f->name),
					KF_U64("max_series", agg->cfg.max_series));
			f->cap_warned = true;
			drop(agg, KF_GW_DROP_CAP, s->name);
			return KF_OK;
		}
		if (!(as = aseries_new(agg, f, values)))
			return KF_ENOMEM;
	}
	struct iseries *is = kf__gw_map_get(&src->series, &as, sizeof(as));
	bool fresh = !is;
	if (fresh && !(is = iseries_new(src, as))) {
		if (!as->refs) {
			as->refs = 1;
			aseries_unref(agg, as);
		}
		return KF_ENOMEM;
	}
	iseries_set(agg, src, is, s, fresh, now_ns);
	return KF_OK;
}

/* After a full update: what the producer no longer has is expired. */
static void expire_unmarked(struct kf_gw_agg *agg, struct source *src)
{
	size_t it = 0;
	struct iseries *is;
	while ((is = kf__gw_map_next(&src->series, &it)))
		if (!is->expired && is->mark != src->mark)
			iseries_expire(agg, src, is);
}

enum kf_err kf_gw_agg_update(struct kf_gw_agg *agg, const struct kf_gw_update *upd,
			     uint64_t now_ns)
{
	if (!upd->source || !upd->source[0] || (upd->n_series && !upd->series))
		return KF_EINVAL;
	struct source *src;
	enum kf_err err = source_for(agg, upd, &src);
	if (err == KF_ESTALE) {
		agg->stats.stale_updates++;
		return err;
	}
	if (err == KF_EFULL)
		agg->stats.series_dropped[KF_GW_DROP_SOURCES] += upd->n_series;
	if (err)
		return err;
	if (upd->seq)
		src->last_seq = upd->seq;
	src->last_ns = now_ns;
	src->mark++;
	for (size_t i = 0; i < upd->n_series && !err; i++)
		err = apply_series(agg, src, &upd->series[i], now_ns);
	if (!err && upd->full)
		expire_unmarked(agg, src);
	agg->stats.updates++;
	return err;
}

enum kf_err kf_gw_agg_depart(struct kf_gw_agg *agg, const char *source, uint64_t incarnation,
			     uint64_t now_ns)
{
	(void)now_ns;
	struct source *src = kf__gw_map_get(&agg->sources, source, strlen(source));
	if (!src || (incarnation && src->incarnation != incarnation) || !src->n_live)
		return KF_ENOENT;
	size_t it = 0;
	struct iseries *is;
	while ((is = kf__gw_map_next(&src->series, &it)))
		if (!is->expired)
			iseries_expire(agg, src, is);
	return KF_OK;
}

size_t kf_gw_agg_expire(struct kf_gw_agg *agg, uint64_t now_ns)
{
	uint64_t ttl = agg->cfg.series_ttl_ns;
	if (!ttl || now_ns < agg->next_expiry_ns || now_ns < ttl)
		return 0;
	uint64_t cutoff = now_ns - ttl, oldest = UINT64_MAX;
	size_t n = 0, it = 0;
	struct source *src;
	while ((src = kf__gw_map_next(&agg->sources, &it))) {
		size_t jt = 0;
		struct iseries *is;
		while (src->n_live && (is = kf__gw_map_next(&src->series, &jt))) {
			if (is->expired)
				continue;
			if (is->last_ns <= cutoff) {
				iseries_expire(agg, src, is);
				n++;
			} else if (is->last_ns < oldest) {
				oldest = is->last_ns;
			}
		}
	}
	agg->next_expiry_ns = oldest == UINT64_MAX ? UINT64_MAX : oldest + ttl;
	return n;
}

/* ---- snapshot ------------------------------------------------------------ */

static void accumulate(struct kf_gw_agg *agg)
{
	agg->gen++;
	size_t it = 0;
	struct source *src;
	while ((src = kf__gw_map_next(&agg->sources, &it))) {
		size_t jt = 0;
		struct iseries *is;
		while (src->n_live && (is = kf__gw_map_next(&src->series, &jt))) {
			if (is->expired)
				continue;
			struct aseries *as = is->as;
			if (as->acc_gen != agg->gen) {
				val_zero(&as->acc, as->fam->n_bounds);
				as->acc_gen = agg->gen;
			}
			val_add(&as->acc, &is->v, as->fam->n_bounds);
		}
	}
}

static bool exposed(const struct kf_gw_agg *agg, const struct aseries *as)
{
	return cumulative(as->fam->type) || as->acc_gen == agg->gen;
}

/* The larger of the value computed now and the one shown last, which
 * becomes the one shown. */
static double not_below_shown(double computed, double *shown)
{
	if (computed < *shown)
		return *shown;
	*shown = computed;
	return computed;
}

/*
 * The exposed value: retired + the live instances (accumulate). That
 * floating-point sum is taken in hash-map order, and both order and grouping
 * change when a series is folded into the retired sum (expiry, restart,
 * departure) or a source joins (the map grows): computed again, a counter can
 * come out an ulp below what the last scrape showed, and Prometheus would
 * read a reset. The true value of a counter never falls (resets and
 * restarts are folded), so it is shown as at least what was shown last;
 * that absorbs rounding and nothing else. The same holds for a histogram's
 * _sum unless one of its producers lowered its own (sum_falls: observations
 * below 0). Counts and buckets are integers: exact, they cannot dip.
 */
static void fill(const struct kf_gw_agg *agg, struct aseries *as, struct kf_msnap_series *ms)
{
	const struct family *f = as->fam;
	bool live = as->acc_gen == agg->gen;
	ms->value = as->retired.value + (live ? as->acc.value : 0);
	ms->sum = as->retired.sum + (live ? as->acc.sum : 0);
	ms->count = as->retired.count + (live ? as->acc.count : 0);
	for (size_t i = 0; i < f->n_bounds; i++)
		ms->buckets[i] = as->retired.buckets[i] + (live ? as->acc.buckets[i] : 0);
	if (f->type == KF_GW_COUNTER)
		ms->value = not_below_shown(ms->value, &as->shown_value);
	else if (f->type == KF_GW_HISTOGRAM && !as->sum_falls)
		ms->sum = not_below_shown(ms->sum, &as->shown_sum);
}

static enum kf_err snapshot_family(struct kf_gw_agg *agg, struct family *f,
				   struct kf_msnap *snap)
{
	struct kf_msnap_family *mf = NULL;
	size_t it = 0, n = 0;
	struct aseries *as;
	while ((as = kf__gw_map_next(&f->series, &it)))
		n += exposed(agg, as);
	if (f->contract) {
		mf = kf_msnap_find_family(snap, f->name);
	} else if (n) {
		struct kf_metric_desc d;
		family_desc(f, &d);
		/* Every family gets a HELP line: Prometheus tooling (promtool) flags
		 * families without one, and the operator learns where it came from. */
		if (!d.help[0])
			d.help = KF_GW_NO_HELP;
		enum kf_err err = kf_msnap_add_family(snap, &d, &mf);
		if (err == KF_ENOMEM)
			return err;
	}
	if (!mf)
		return KF_OK;
	it = 0;
	while ((as = kf__gw_map_next(&f->series, &it))) {
		if (!exposed(agg, as))
			continue;
		const char *const *values = (const char *const *)as->label_values;
		struct kf_msnap_series *ms = f->contract
			? kf_msnap_family_find_series(mf, f->n_labels ? values : NULL) : NULL;
		if (!ms) {
			enum kf_err err = kf_msnap_family_add_series(
				mf, f->n_labels ? values : NULL, &ms);
			if (err == KF_ENOMEM)
				return err;
			if (err)
				continue;
		}
		fill(agg, as, ms);
	}
	return KF_OK;
}

enum kf_err kf_gw_agg_snapshot(struct kf_gw_agg *agg, uint64_t now_ns, struct kf_msnap *snap)
{
	kf_gw_agg_expire(agg, now_ns);
	accumulate(agg);
	enum kf_err err = kf_contract_add_to_snapshot(snap, true);
	size_t it = 0;
	struct family *f;
	while (!err && (f = kf__gw_map_next(&agg->families, &it)))
		err = snapshot_family(agg, f, snap);
	kf_msnap_sort(snap);
	return err;
}

void kf_gw_agg_stats(const struct kf_gw_agg *agg, struct kf_gw_agg_stats *out)
{
	*out = agg->stats;
	out->sources = agg->sources.n;
	out->families = agg->families.n;
	out->series = agg->n_aseries;
	out->instance_series = agg->n_live;
}

bool kf_gw_fresh(uint64_t at_ns, uint64_t now_ns, uint64_t ttl_ns)
{
	uint64_t age = at_ns < now_ns ? now_ns - at_ns : 0;
	return !ttl_ns || age <= ttl_ns;
}

/* ---- lifecycle ----------------------------------------------------------- */

enum kf_err kf_gw_agg_new(struct kf_gw_agg **out, const struct kf_gw_agg_config *cfg)
{
	*out = NULL;
	if (!cfg->max_series)
		return KF_EINVAL;
	struct kf_gw_agg *agg = calloc(1, sizeof(*agg));
	if (!agg)
		return KF_ENOMEM;
	agg->cfg = *cfg;
	if (getrandom(&agg->seed, sizeof(agg->seed), GRND_NONBLOCK) != sizeof(agg->seed))
		agg->seed = (uint64_t)(uintptr_t)agg ^ 0x9e3779b97f4a7c15ULL;
	kf__gw_map_init(&agg->families, agg->seed);
	kf__gw_map_init(&agg->sources, agg->seed ^ 0x50c);
	kf_strbuf_init(&agg->key, 256);
	agg->next_expiry_ns = UINT64_MAX;
	enum kf_err err = add_contract_families(agg);
	if (err) {
		kf_gw_agg_free(agg);
		return err;
	}
	*out = agg;
	return KF_OK;
}

void kf_gw_agg_free(struct kf_gw_agg *agg)
{
	if (!agg)
		return;
	size_t it = 0;
	struct source *src;
	while ((src = kf__gw_map_next(&agg->sources, &it)))
		source_free(agg, src);
	kf__gw_map_release(&agg->sources);
	it = 0;
	struct family *f;
	while ((f = kf__gw_map_next(&agg->families, &it)))
		family_free(f);
	kf__gw_map_release(&agg->families);
	kf_strbuf_release(&agg->key);
	free(agg);
}
