/*
 * metrics.c — the registry, its children and their lock-free updates.
 *
 * Locks, always taken in this order: reg->snap_lock (one snapshot and its
 * collectors at a time) → reg->lock (the family array) → fam->lock (a
 * family's children). The hot path takes none of them.
 */
#include "telemetry/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"

#define CACHE_LINE 64
#define LINE_WORDS (CACHE_LINE / sizeof(uint64_t))

_Static_assert((KF_METRICS_SHARDS & (KF_METRICS_SHARDS - 1)) == 0,
	       "KF_METRICS_SHARDS must be a power of two");

/* What every child starts with; the hot path never touches it. */
struct series {
	struct series *next;      /* family list, in creation order */
	struct series *hash_next; /* family hash chain */
	uint64_t hash;
	char **values;            /* fam->desc.n_labels strings */
	/* Change tracking, owned by the snapshot in progress (reg->snap_lock). */
	bool seen;
	uint64_t last_a, last_b;
	uint64_t changed_gen;
};

struct cshard {
	_Alignas(CACHE_LINE) _Atomic uint64_t n; /* integer increments */
	_Atomic uint64_t fbits;                  /* fractional adds, a double */
};

struct kf_counter {
	struct series s;
	struct cshard shard[KF_METRICS_SHARDS];
};

struct kf_gauge {
	struct series s;
	_Alignas(CACHE_LINE) _Atomic uint64_t bits; /* a double */
};

/* Cells of one shard: [0] integer sum, [1] double sum, [2 + i] bucket i
 * (non-cumulative; i == n_bounds is +Inf). Shards are stride words apart. */
enum { CELL_ISUM = 0, CELL_FSUM = 1, CELL_BUCKETS = 2 };

struct kf_histogram {
	struct series s;
	const double *bounds; /* the family's */
	size_t n_bounds;
	size_t stride;
	_Atomic uint64_t *cells;
};

struct kf_metric_family {
	struct kf_metric_desc desc; /* deep copy, owned */
	pthread_mutex_t lock;
	struct series **table;      /* hash buckets, table_size a power of two */
	size_t table_size;
	size_t n_series;
	struct series *head, **tail;
};

struct collector {
	kf_metrics_collect_fn fn;
	void (*release)(void *arg);
	void *arg;
};

struct kf_metrics {
	pthread_mutex_t snap_lock;
	pthread_mutex_t lock;
	struct kf_metric_family **families;
	size_t n_families, alloc_families;
	struct collector *collectors;
	size_t n_collectors, alloc_collectors;
	uint64_t generation; /* of the last snapshot; under snap_lock */
};

/* --- doubles in atomics ----------------------------------------------------- */

static uint64_t dbits(double v)
{
	uint64_t b;
	memcpy(&b, &v, sizeof b);
	return b;
}

static double bitsd(uint64_t b)
{
	double v;
	memcpy(&v, &b, sizeof v);
	return v;
}

static void atomic_add_double(_Atomic uint64_t *cell, double v)
{
	uint64_t old = atomic_load_explicit(cell, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(cell, &old, dbits(bitsd(old) + v),
						      memory_order_relaxed, memory_order_relaxed))
		;
}

/* --- per-thread shard ----------------------------------------------------- */

static atomic_uint next_slot;
static _Thread_local unsigned thread_slot; /* slot + 1; 0 until the first update */

static inline unsigned my_slot(void)
{
	unsigned s = thread_slot;
	if (__builtin_expect(s == 0, 0)) {
		s = (atomic_fetch_add_explicit(&next_slot, 1, memory_order_relaxed) &
		     (KF_METRICS_SHARDS - 1)) + 1;
		thread_slot = s;
	}
	return s - 1;
}

/* --- hot path ----------------------------------------------------------------- */

void kf_counter_inc(struct kf_counter *c)
{
	atomic_fetch_add_explicit(&c->shard[my_slot()].n, 1, memory_order_relaxed);
}

void kf_counter_add_u64(struct kf_counter *c, uint64_t n)
{
	atomic_fetch_add_explicit(&c->shard[my_slot()].n, n, memory_order_relaxed);
}

/* 2^64 as a double: larger values do not fit a uint64_t. */
#define TWO_POW_64 18446744073709551616.0

enum kf_err kf_counter_add(struct kf_counter *c, double v)
{
	if (!(v >= 0) || isinf(v))
		return KF_ERANGE;
	struct cshard *sh = &c->shard[my_slot()];
	if (v < TWO_POW_64 && v == (double)(uint64_t)v)
		atomic_fetch_add_explicit(&sh->n, (uint64_t)v, memory_order_relaxed);
	else
		atomic_add_double(&sh->fbits, v);
	return KF_OK;
}

double kf_counter_value(const struct kf_counter *c)
{
	uint64_t n = 0;
	double f = 0;
	for (size_t i = 0; i < KF_METRICS_SHARDS; i++) {
		n += atomic_load_explicit(&c->shard[i].n, memory_order_relaxed);
		f += bitsd(atomic_load_explicit(&c->shard[i].fbits, memory_order_relaxed));
	}
	return (double)n + f;
}

enum kf_err kf_counter_set(struct kf_counter *c, double v)
{
	if (!(v >= 0) || isinf(v))
		return KF_ERANGE;
	for (size_t i = 0; i < KF_METRICS_SHARDS; i++) {
		atomic_store_explicit(&c->shard[i].n, 0, memory_order_relaxed);
		atomic_store_explicit(&c->shard[i].fbits, dbits(i ? 0.0 : v),
				      memory_order_relaxed);
	}
	return KF_OK;
}

void kf_gauge_set(struct kf_gauge *g, double v)
{
	atomic_store_explicit(&g->bits, dbits(v), memory_order_relaxed);
}

void kf_gauge_add(struct kf_gauge *g, double v)
{
	atomic_add_double(&g->bits, v);
}

void kf_gauge_inc(struct kf_gauge *g)
{
	atomic_add_double(&g->bits, 1.0);
}

void kf_gauge_dec(struct kf_gauge *g)
{
	atomic_add_double(&g->bits, -1.0);
}

double kf_gauge_value(const struct kf_gauge *g)
{
	return bitsd(atomic_load_explicit(&g->bits, memory_order_relaxed));
}

/* Index of the first bound >= v, n_bounds for +Inf. Few buckets are the
 * common case and a forward scan stops early on small latencies. */
static inline size_t bucket_index(const double *bounds, size_t n, double v)
{
	if (n <= 16) {
		size_t i = 0;
		while (i < n && v > bounds[i])
			i++;
		return i;
	}
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v > bounds[mid])
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void kf_histogram_observe(struct kf_histogram *h, double v)
{
	if (isnan(v))
		return;
	_Atomic uint64_t *cells = h->cells + (size_t)my_slot() * h->stride;
	size_t i = bucket_index(h->bounds, h->n_bounds, v);
	atomic_fetch_add_explicit(&cells[CELL_BUCKETS + i], 1, memory_order_relaxed);
	atomic_add_double(&cells[CELL_FSUM], v);
}

void kf_histogram_observe_u64(struct kf_histogram *h, uint64_t v)
{
	_Atomic uint64_t *cells = h->cells + (size_t)my_slot() * h->stride;
	size_t i = bucket_index(h->bounds, h->n_bounds, (double)v);
	atomic_fetch_add_explicit(&cells[CELL_BUCKETS + i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&cells[CELL_ISUM], v, memory_order_relaxed);
}

/* Sums bucket i (non-cumulative) over the shards. */
static uint64_t histogram_bucket(const struct kf_histogram *h, size_t i)
{
	uint64_t n = 0;
	for (size_t s = 0; s < KF_METRICS_SHARDS; s++)
		n += atomic_load_explicit(&h->cells[s * h->stride + CELL_BUCKETS + i],
					  memory_order_relaxed);
	return n;
}

uint64_t kf_histogram_count(const struct kf_histogram *h)
{
	uint64_t n = 0;
	for (size_t i = 0; i <= h->n_bounds; i++)
		n += histogram_bucket(h, i);
	return n;
}

double kf_histogram_sum(const struct kf_histogram *h)
{
	uint64_t isum = 0;
	double fsum = 0;
	for (size_t s = 0; s < KF_METRICS_SHARDS; s++) {
		const _Atomic uint64_t *cells = h->cells + s * h->stride;
		isum += atomic_load_explicit(&cells[CELL_ISUM], memory_order_relaxed);
		fsum += bitsd(atomic_load_explicit(&cells[CELL_FSUM], memory_order_relaxed));
	}
	return (double)isum + fsum;
}

/* --- descriptors ------------------------------------------------------------- */

static void desc_free(struct kf_metric_desc *d)
{
	if (d->label_names)
		for (size_t i = 0; i < d->n_labels; i++)
			free((char *)d->label_names[i]);
	free((void *)d->label_names);
	free((void *)d->buckets);
	free((char *)d->name);
	free((char *)d->help);
}

static enum kf_err desc_copy(struct kf_metric_desc *dst, const struct kf_metric_desc *src)
{
	char **labels = calloc(src->n_labels + 1, sizeof *labels);
	double *buckets = malloc((src->n_buckets + 1) * sizeof *buckets);
	*dst = *src;
	dst->name = strdup(src->name);
	dst->help = strdup(src->help);
	dst->label_names = (const char *const *)labels;
	dst->buckets = buckets;
	if (!dst->max_series)
		dst->max_series = KF_METRICS_MAX_SERIES;
	bool ok = labels && buckets && dst->name && dst->help;
	for (size_t i = 0; ok && i < src->n_labels; i++)
		ok = (labels[i] = strdup(src->label_names[i])) != NULL;
	if (!ok) {
		desc_free(dst);
		return KF_ENOMEM;
	}
	if (src->n_buckets)
		memcpy(buckets, src->buckets, src->n_buckets * sizeof *buckets);
	return KF_OK;
}

static bool desc_equal(const struct kf_metric_desc *a, const struct kf_metric_desc *b)
{
	if (strcmp(a->name, b->name) || strcmp(a->help, b->help) || a->type != b->type ||
	    a->n_labels != b->n_labels || a->n_buckets != b->n_buckets)
		return false;
	for (size_t i = 0; i < a->n_labels; i++)
		if (strcmp(a->label_names[i], b->label_names[i]))
			return false;
	for (size_t i = 0; i < a->n_buckets; i++)
		if (a->buckets[i] != b->buckets[i])
			return false;
	return true;
}

/* --- children --------------------------------------------------------------- */

static uint64_t hash_values(const char *const *values, size_t n)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (size_t i = 0; i < n; i++) {
		for (const unsigned char *p = (const unsigned char *)values[i]; *p; p++)
			h = (h ^ *p) * 1099511628211ull;
		h = (h ^ 0xff) * 1099511628211ull; /* 0xff never occurs in UTF-8 */
	}
	return h;
}

static bool same_values(char *const *a, const char *const *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(a[i], b[i]))
			return false;
	return true;
}

static void *alloc_lines(size_t size)
{
	size = (size + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
	void *p = aligned_alloc(CACHE_LINE, size);
	if (p)
		memset(p, 0, size);
	return p;
}

static struct series *child_alloc(const struct kf_metric_family *fam)
{
	switch (fam->desc.type) {
	case KF_METRIC_COUNTER:
		return alloc_lines(sizeof(struct kf_counter));
	case KF_METRIC_GAUGE:
		return alloc_lines(sizeof(struct kf_gauge));
	case KF_METRIC_HISTOGRAM:
		break;
	}
	struct kf_histogram *h = alloc_lines(sizeof *h);
	if (!h)
		return NULL;
	h->bounds = fam->desc.buckets;
	h->n_bounds = fam->desc.n_buckets;
	/* Whole cache lines per shard, so shards never share one. */
	h->stride = (CELL_BUCKETS + h->n_bounds + 1 + LINE_WORDS - 1) / LINE_WORDS * LINE_WORDS;
	h->cells = alloc_lines(KF_METRICS_SHARDS * h->stride * sizeof(uint64_t));
	if (!h->cells) {
		free(h);
		return NULL;
	}
	return &h->s;
}

static void child_free(const struct kf_metric_family *fam, struct series *s)
{
	for (size_t i = 0; s->values && i < fam->desc.n_labels; i++)
		free(s->values[i]);
	free(s->values);
	if (fam->desc.type == KF_METRIC_HISTOGRAM)
		free(((struct kf_histogram *)s)->cells);
	free(s);
}

static enum kf_err check_values(const struct kf_metric_family *fam, const char *const *values)
{
	if (fam->desc.n_labels && !values)
		return KF_EINVAL;
	for (size_t i = 0; i < fam->desc.n_labels; i++) {
		if (!values[i])
			return KF_EINVAL;
		if (!kf_utf8_valid(values[i], strlen(values[i])))
			return KF_EUTF8;
	}
	return KF_OK;
}

/* Doubles the hash table when it is full; keeps the old one on failure
 * (chains just get longer). Under fam->lock. */
static void table_grow(struct kf_metric_family *fam)
{
	if (fam->n_series < fam->table_size)
		return;
	size_t n = fam->table_size * 2;
	struct series **t = calloc(n, sizeof *t);
	if (!t)
		return;
	for (struct series *s = fam->head; s; s = s->next) {
		s->hash_next = t[s->hash & (n - 1)];
		t[s->hash & (n - 1)] = s;
	}
	free(fam->table);
	fam->table = t;
	fam->table_size = n;
}

/* Creates the child; under fam->lock. */
static enum kf_err child_create(struct kf_metric_family *fam, const char *const *values,
				uint64_t hash, struct series **out)
{
	if (fam->n_series >= fam->desc.max_series)
		return KF_ECARDINALITY;
	struct series *s = child_alloc(fam);
	if (!s)
		return KF_ENOMEM;
	size_t n = fam->desc.n_labels;
	s->values = calloc(n + 1, sizeof *s->values);
	bool ok = s->values != NULL;
	for (size_t i = 0; ok && i < n; i++)
		ok = (s->values[i] = strdup(values[i])) != NULL;
	if (!ok) {
		child_free(fam, s);
		return KF_ENOMEM;
	}
	s->hash = hash;
	s->hash_next = fam->table[hash & (fam->table_size - 1)];
	fam->table[hash & (fam->table_size - 1)] = s;
	*fam->tail = s;
	fam->tail = &s->next;
	fam->n_series++;
	table_grow(fam);
	*out = s;
	return KF_OK;
}

static enum kf_err family_child(struct kf_metric_family *fam, enum kf_metric_type type,
				const char *const *values, struct series **out)
{
	if (!fam || fam->desc.type != type)
		return KF_EINVAL;
	enum kf_err err = check_values(fam, values);
	if (err)
		return err;
	uint64_t hash = hash_values(values, fam->desc.n_labels);
	pthread_mutex_lock(&fam->lock);
	struct series *s = fam->table[hash & (fam->table_size - 1)];
	while (s && !(s->hash == hash && same_values(s->values, values, fam->desc.n_labels)))
		s = s->hash_next;
	if (s)
		*out = s;
	else
		err = child_create(fam, values, hash, out);
	pthread_mutex_unlock(&fam->lock);
	return err;
}

enum kf_err kf_metric_family_counter(struct kf_metric_family *fam, const char *const *label_values,
				     struct kf_counter **out)
{
	struct series *s;
	enum kf_err err = family_child(fam, KF_METRIC_COUNTER, label_values, &s);
	if (!err)
		*out = (struct kf_counter *)s;
	return err;
}

enum kf_err kf_metric_family_gauge(struct kf_metric_family *fam, const char *const *label_values,
				   struct kf_gauge **out)
{
	struct series *s;
	enum kf_err err = family_child(fam, KF_METRIC_GAUGE, label_values, &s);
	if (!err)
		*out = (struct kf_gauge *)s;
	return err;
}

enum kf_err kf_metric_family_histogram(struct kf_metric_family *fam,
				       const char *const *label_values,
				       struct kf_histogram **out)
{
	struct series *s;
	enum kf_err err = family_child(fam, KF_METRIC_HISTOGRAM, label_values, &s);
	if (!err)
		*out = (struct kf_histogram *)s;
	return err;
}

/* --- families and the registry ----------------------------------------------- */

static void family_free(struct kf_metric_family *fam)
{
	if (!fam)
		return;
	struct series *s = fam->head;
	while (s) {
		struct series *next = s->next;
		child_free(fam, s);
		s = next;
	}
	free(fam->table);
	pthread_mutex_destroy(&fam->lock);
	desc_free(&fam->desc);
	free(fam);
}

static enum kf_err family_new(const struct kf_metric_desc *desc, struct kf_metric_family **out)
{
	struct kf_metric_family *fam = calloc(1, sizeof *fam);
	if (!fam)
		return KF_ENOMEM;
	if (desc_copy(&fam->desc, desc)) {
		free(fam);
		return KF_ENOMEM;
	}
	pthread_mutex_init(&fam->lock, NULL);
	fam->tail = &fam->head;
	fam->table_size = 8;
	fam->table = calloc(fam->table_size, sizeof *fam->table);
	struct series *only;
	if (!fam->table || (desc->n_labels == 0 && family_child(fam, desc->type, NULL, &only))) {
		family_free(fam);
		return KF_ENOMEM;
	}
	*out = fam;
	return KF_OK;
}

enum kf_err kf_metrics_new(struct kf_metrics **out)
{
	struct kf_metrics *reg = calloc(1, sizeof *reg);
	if (!reg)
		return KF_ENOMEM;
	pthread_mutex_init(&reg->snap_lock, NULL);
	pthread_mutex_init(&reg->lock, NULL);
	*out = reg;
	return KF_OK;
}

void kf_metrics_free(struct kf_metrics *reg)
{
	if (!reg)
		return;
	for (size_t i = 0; i < reg->n_families; i++)
		family_free(reg->families[i]);
	free(reg->families);
	for (size_t i = 0; i < reg->n_collectors; i++)
		if (reg->collectors[i].release)
			reg->collectors[i].release(reg->collectors[i].arg);
	free(reg->collectors);
	pthread_mutex_destroy(&reg->lock);
	pthread_mutex_destroy(&reg->snap_lock);
	free(reg);
}

/* Looks for a family that stands in the way of desc; under reg->lock. */
static enum kf_err find_conflict(struct kf_metrics *reg, const struct kf_metric_desc *desc,
				 struct kf_metric_family **same)
{
	*same = NULL;
	for (size_t i = 0; i < reg->n_families; i++) {
		struct kf_metric_family *f = reg->families[i];
		if (strcmp(f->desc.name, desc->name) == 0) {
			if (!desc_equal(&f->desc, desc))
				return KF_EEXIST;
			*same = f;
			return KF_OK;
		}
		if (kf_metric_desc_collide(&f->desc, desc))
			return KF_EMETRICNAME;
	}
	return KF_OK;
}

static bool grow_families(struct kf_metrics *reg)
{
	if (reg->n_families < reg->alloc_families)
		return true;
	size_t n = reg->alloc_families ? reg->alloc_families * 2 : 16;
	struct kf_metric_family **p = realloc(reg->families, n * sizeof *p);
	if (!p)
		return false;
	reg->families = p;
	reg->alloc_families = n;
	return true;
}

enum kf_err kf_metrics_register(struct kf_metrics *reg, const struct kf_metric_desc *desc,
				struct kf_metric_family **out)
{
	enum kf_err err = kf_metric_desc_check(desc);
	if (err)
		return err;
	if (desc->help[0] == '\0')
		return KF_EINVAL;
	struct kf_metric_family *fam = NULL;
	pthread_mutex_lock(&reg->lock);
	err = find_conflict(reg, desc, &fam);
	if (!err && !fam) {
		if (!grow_families(reg))
			err = KF_ENOMEM;
		else if (!(err = family_new(desc, &fam)))
			reg->families[reg->n_families++] = fam;
	}
	pthread_mutex_unlock(&reg->lock);
	if (!err && out)
		*out = fam;
	return err;
}

struct kf_metric_family *kf_metrics_find(struct kf_metrics *reg, const char *name)
{
	struct kf_metric_family *found = NULL;
	pthread_mutex_lock(&reg->lock);
	for (size_t i = 0; i < reg->n_families && !found; i++)
		if (strcmp(reg->families[i]->desc.name, name) == 0)
			found = reg->families[i];
	pthread_mutex_unlock(&reg->lock);
	return found;
}

const struct kf_metric_desc *kf_metric_family_desc(const struct kf_metric_family *fam)
{
	return &fam->desc;
}

static enum kf_err register_plain(struct kf_metrics *reg, const struct kf_metric_desc *desc,
				  struct series **out)
{
	struct kf_metric_family *fam;
	enum kf_err err = kf_metrics_register(reg, desc, &fam);
	if (err)
		return err;
	return family_child(fam, desc->type, NULL, out);
}

enum kf_err kf_metrics_counter(struct kf_metrics *reg, const char *name, const char *help,
			       struct kf_counter **out)
{
	struct kf_metric_desc d = { .name = name, .help = help, .type = KF_METRIC_COUNTER };
	struct series *s;
	enum kf_err err = register_plain(reg, &d, &s);
	if (!err)
		*out = (struct kf_counter *)s;
	return err;
}

enum kf_err kf_metrics_gauge(struct kf_metrics *reg, const char *name, const char *help,
			     struct kf_gauge **out)
{
	struct kf_metric_desc d = { .name = name, .help = help, .type = KF_METRIC_GAUGE };
	struct series *s;
	enum kf_err err = register_plain(reg, &d, &s);
	if (!err)
		*out = (struct kf_gauge *)s;
	return err;
}

enum kf_err kf_metrics_histogram(struct kf_metrics *reg, const char *name, const char *help,
				 const double *buckets, size_t n_buckets,
				 struct kf_histogram **out)
{
	struct kf_metric_desc d = { .name = name, .help = help, .type = KF_METRIC_HISTOGRAM,
				    .buckets = buckets, .n_buckets = n_buckets };
	struct series *s;
	enum kf_err err = register_plain(reg, &d, &s);
	if (!err)
		*out = (struct kf_histogram *)s;
	return err;
}

enum kf_err kf_metrics_add_collector(struct kf_metrics *reg, kf_metrics_collect_fn fn,
				     void (*release)(void *arg), void *arg)
{
	if (!fn)
		return KF_EINVAL;
	enum kf_err err = KF_OK;
	pthread_mutex_lock(&reg->lock);
	if (reg->n_collectors == reg->alloc_collectors) {
		size_t n = reg->alloc_collectors ? reg->alloc_collectors * 2 : 4;
		struct collector *p = realloc(reg->collectors, n * sizeof *p);
		if (p) {
			reg->collectors = p;
			reg->alloc_collectors = n;
		}
	}
	if (reg->n_collectors < reg->alloc_collectors)
		reg->collectors[reg->n_collectors++] = (struct collector){ fn, release, arg };
	else
		err = KF_ENOMEM;
	pthread_mutex_unlock(&reg->lock);
	return err;
}

/* --- snapshots ----------------------------------------------------------------- */

/* Reads one child into a scratch series; returns its change key. */
static void read_child(const struct kf_metric_family *fam, const struct series *s,
		       struct kf_msnap_series *out, uint64_t *key_a, uint64_t *key_b)
{
	*key_b = 0;
	switch (fam->desc.type) {
	case KF_METRIC_COUNTER:
		out->value = kf_counter_value((const struct kf_counter *)s);
		*key_a = dbits(out->value);
		return;
	case KF_METRIC_GAUGE:
		out->value = kf_gauge_value((const struct kf_gauge *)s);
		*key_a = dbits(out->value);
		return;
	case KF_METRIC_HISTOGRAM:
		break;
	}
	const struct kf_histogram *h = (const struct kf_histogram *)s;
	uint64_t cum = 0;
	for (size_t i = 0; i < h->n_bounds; i++) {
		cum += histogram_bucket(h, i);
		out->buckets[i] = cum;
	}
	out->count = cum + histogram_bucket(h, h->n_bounds);
	out->sum = kf_histogram_sum(h);
	*key_a = out->count;
	*key_b = dbits(out->sum);
}

/* Reads the family's children into snap; under fam->lock. */
static enum kf_err snap_family(struct kf_metric_family *fam, uint64_t gen, uint64_t since,
			       struct kf_msnap *snap, uint64_t *scratch)
{
	struct kf_msnap_family *out = NULL;
	struct kf_msnap_series tmp = { .buckets = scratch };
	enum kf_err err = KF_OK;

	if (since == 0 && (err = kf_msnap_add_family(snap, &fam->desc, &out)))
		return err;
	for (struct series *s = fam->head; s; s = s->next) {
		uint64_t a, b;
		read_child(fam, s, &tmp, &a, &b);
		if (!s->seen || s->last_a != a || s->last_b != b) {
			s->seen = true;
			s->last_a = a;
			s->last_b = b;
			s->changed_gen = gen;
		}
		if (s->changed_gen <= since)
			continue;
		struct kf_msnap_series *dst;
		if (!out && (err = kf_msnap_add_family(snap, &fam->desc, &out)))
			return err;
		if ((err = kf_msnap_family_add_series(out, (const char *const *)s->values, &dst)))
			return err;
		dst->value = tmp.value;
		dst->count = tmp.count;
		dst->sum = tmp.sum;
		dst->changed_gen = s->changed_gen;
		memcpy(dst->buckets, tmp.buckets, fam->desc.n_buckets * sizeof *dst->buckets);
	}
	return KF_OK;
}

static void run_collectors(struct kf_metrics *reg)
{
	/* Copy the list so a collector runs without reg->lock (it may look up
	 * children, which never takes reg->lock, or families, which does). */
	pthread_mutex_lock(&reg->lock);
	size_t n = reg->n_collectors;
	struct collector *list = n ? malloc(n * sizeof *list) : NULL;
	if (list)
		memcpy(list, reg->collectors, n * sizeof *list);
	pthread_mutex_unlock(&reg->lock);
	for (size_t i = 0; list && i < n; i++)
		list[i].fn(reg, list[i].arg);
	free(list);
}

static size_t max_buckets(struct kf_metrics *reg)
{
	size_t m = 0;
	for (size_t i = 0; i < reg->n_families; i++)
		if (reg->families[i]->desc.n_buckets > m)
			m = reg->families[i]->desc.n_buckets;
	return m;
}

enum kf_err kf_metrics_snapshot(struct kf_metrics *reg, uint64_t since_gen, struct kf_msnap *out)
{
	enum kf_err err = KF_OK;
	kf_msnap_release(out);
	pthread_mutex_lock(&reg->snap_lock);
	run_collectors(reg);
	uint64_t gen = ++reg->generation;
	pthread_mutex_lock(&reg->lock);
	uint64_t *scratch = calloc(max_buckets(reg) + 1, sizeof *scratch);
	if (!scratch)
		err = KF_ENOMEM;
	for (size_t i = 0; !err && i < reg->n_families; i++) {
		struct kf_metric_family *fam = reg->families[i];
		pthread_mutex_lock(&fam->lock);
		err = snap_family(fam, gen, since_gen, out, scratch);
		pthread_mutex_unlock(&fam->lock);
	}
	pthread_mutex_unlock(&reg->lock);
	pthread_mutex_unlock(&reg->snap_lock);
	free(scratch);
	if (err) {
		kf_msnap_release(out);
		return err;
	}
	out->generation = gen;
	out->delta = since_gen != 0;
	kf_msnap_sort(out);
	return KF_OK;
}
