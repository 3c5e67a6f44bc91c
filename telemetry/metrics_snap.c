/*
 * metrics_snap.c — names, descriptors and the snapshot data model.
 */
#include "telemetry/metrics_snap.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"

const char *kf_metric_type_name(enum kf_metric_type type)
{
	switch (type) {
	case KF_METRIC_COUNTER:
		return "counter";
	case KF_METRIC_GAUGE:
		return "gauge";
	case KF_METRIC_HISTOGRAM:
		return "histogram";
	}
	return "unknown";
}

static bool is_alpha_(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

bool kf_metric_name_valid(const char *name)
{
	if (!name || !(is_alpha_(name[0]) || name[0] == ':'))
		return false;
	for (const char *p = name + 1; *p; p++)
		if (!is_alpha_(*p) && !is_digit(*p) && *p != ':')
			return false;
	return true;
}

bool kf_metric_label_name_valid(const char *name)
{
	if (!name || !is_alpha_(name[0]))
		return false;
	if (name[0] == '_' && name[1] == '_')
		return false;
	for (const char *p = name + 1; *p; p++)
		if (!is_alpha_(*p) && !is_digit(*p))
			return false;
	return true;
}

static enum kf_err check_labels(const struct kf_metric_desc *desc)
{
	if (desc->n_labels && !desc->label_names)
		return KF_EINVAL;
	for (size_t i = 0; i < desc->n_labels; i++) {
		const char *l = desc->label_names[i];
		if (!kf_metric_label_name_valid(l))
			return KF_EMETRICNAME;
		/* "le" is how a histogram's buckets are told apart. */
		if (desc->type == KF_METRIC_HISTOGRAM && strcmp(l, "le") == 0)
			return KF_EMETRICNAME;
		for (size_t j = 0; j < i; j++)
			if (strcmp(l, desc->label_names[j]) == 0)
				return KF_EMETRICNAME;
	}
	return KF_OK;
}

static enum kf_err check_buckets(const struct kf_metric_desc *desc)
{
	if (desc->type != KF_METRIC_HISTOGRAM)
		return desc->n_buckets ? KF_EINVAL : KF_OK;
	if (desc->n_buckets && !desc->buckets)
		return KF_EINVAL;
	for (size_t i = 0; i < desc->n_buckets; i++) {
		if (!isfinite(desc->buckets[i]))
			return KF_EINVAL;
		if (i && !(desc->buckets[i] > desc->buckets[i - 1]))
			return KF_EINVAL;
	}
	return KF_OK;
}

enum kf_err kf_metric_desc_check(const struct kf_metric_desc *desc)
{
	if (!desc)
		return KF_EINVAL;
	if (desc->type != KF_METRIC_COUNTER && desc->type != KF_METRIC_GAUGE &&
	    desc->type != KF_METRIC_HISTOGRAM)
		return KF_EINVAL;
	if (!kf_metric_name_valid(desc->name))
		return KF_EMETRICNAME;
	if (!desc->help)
		return KF_EINVAL;
	if (!kf_utf8_valid(desc->help, strlen(desc->help)))
		return KF_EUTF8;
	enum kf_err err = check_labels(desc);
	if (err)
		return err;
	return check_buckets(desc);
}

/* --- name collisions ------------------------------------------------------- */

/* A name a family occupies: stem[0..stem_len) followed by suffix. */
struct occupied {
	const char *stem;
	size_t stem_len;
	const char *suffix;
};

static bool ends_with(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);
	return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

/* Fills out[] (room for 5) with every family and sample name of desc. */
static size_t occupied_names(const struct kf_metric_desc *desc, struct occupied *out)
{
	static const char *const counter_sfx[] = { "", "_total", "_created" };
	static const char *const histo_sfx[] = { "", "_bucket", "_sum", "_count", "_created" };
	const char *const *sfx = counter_sfx;
	size_t n = 1, len = strlen(desc->name);

	if (desc->type == KF_METRIC_COUNTER) {
		n = 3;
		if (ends_with(desc->name, len, "_total"))
			len -= strlen("_total");
	} else if (desc->type == KF_METRIC_HISTOGRAM) {
		sfx = histo_sfx;
		n = 5;
	}
	for (size_t i = 0; i < n; i++)
		out[i] = (struct occupied){ desc->name, len, sfx[i] };
	return n;
}

static bool occupied_equal(const struct occupied *a, const struct occupied *b)
{
	size_t la = a->stem_len + strlen(a->suffix), lb = b->stem_len + strlen(b->suffix);
	if (la != lb)
		return false;
	for (size_t i = 0; i < la; i++) {
		char ca = i < a->stem_len ? a->stem[i] : a->suffix[i - a->stem_len];
		char cb = i < b->stem_len ? b->stem[i] : b->suffix[i - b->stem_len];
		if (ca != cb)
			return false;
	}
	return true;
}

bool kf_metric_desc_collide(const struct kf_metric_desc *a, const struct kf_metric_desc *b)
{
	struct occupied na[5], nb[5];
	size_t ca = occupied_names(a, na), cb = occupied_names(b, nb);
	for (size_t i = 0; i < ca; i++)
		for (size_t j = 0; j < cb; j++)
			if (occupied_equal(&na[i], &nb[j]))
				return true;
	return false;
}

/* --- snapshots --------------------------------------------------------------- */

void kf_msnap_init(struct kf_msnap *snap)
{
	*snap = (struct kf_msnap)KF_MSNAP_INIT;
}

static void free_strv(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void series_free(struct kf_msnap_series *s, size_t n_labels)
{
	if (!s)
		return;
	free_strv(s->label_values, n_labels);
	free(s->buckets);
	free(s);
}

static void family_free(struct kf_msnap_family *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n_series; i++)
		series_free(f->series[i], f->n_labels);
	free(f->series);
	free(f->name);
	free(f->help);
	free_strv(f->label_names, f->n_labels);
	free(f->bounds);
	free(f);
}

void kf_msnap_release(struct kf_msnap *snap)
{
	for (size_t i = 0; i < snap->n_families; i++)
		family_free(snap->families[i]);
	free(snap->families);
	kf_msnap_init(snap);
}

/* Copies n strings; NULL on allocation failure (nothing leaks). */
static char **dup_strv(const char *const *v, size_t n)
{
	char **out = calloc(n ? n : 1, sizeof *out);
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		out[i] = strdup(v[i]);
		if (!out[i]) {
			free_strv(out, i);
			return NULL;
		}
	}
	return out;
}

/* New capacity for one more element, or 0 when it would overflow. */
static size_t next_alloc(size_t alloc)
{
	if (alloc == 0)
		return 8;
	return alloc > SIZE_MAX / 2 / sizeof(void *) ? 0 : alloc * 2;
}

static bool grow_families(struct kf_msnap *snap)
{
	if (snap->n_families < snap->alloc_families)
		return true;
	size_t n = next_alloc(snap->alloc_families);
	struct kf_msnap_family **p = n ? realloc(snap->families, n * sizeof *p) : NULL;
	if (!p)
		return false;
	snap->families = p;
	snap->alloc_families = n;
	return true;
}

static bool grow_series(struct kf_msnap_family *fam)
{
	if (fam->n_series < fam->alloc_series)
		return true;
	size_t n = next_alloc(fam->alloc_series);
	struct kf_msnap_series **p = n ? realloc(fam->series, n * sizeof *p) : NULL;
	if (!p)
		return false;
	fam->series = p;
	fam->alloc_series = n;
	return true;
}

static struct kf_msnap_family *family_from_desc(const struct kf_metric_desc *d)
{
	struct kf_msnap_family *f = calloc(1, sizeof *f);
	if (!f)
		return NULL;
	f->type = d->type;
	f->n_labels = d->n_labels;
	f->n_bounds = d->n_buckets;
	f->name = strdup(d->name);
	f->help = strdup(d->help);
	f->label_names = dup_strv(d->label_names, d->n_labels);
	f->bounds = malloc((d->n_buckets ? d->n_buckets : 1) * sizeof *f->bounds);
	if (!f->name || !f->help || !f->label_names || !f->bounds) {
		if (!f->label_names)
			f->n_labels = 0;
		family_free(f);
		return NULL;
	}
	if (d->n_buckets)
		memcpy(f->bounds, d->buckets, d->n_buckets * sizeof *f->bounds);
	return f;
}

static struct kf_metric_desc desc_of(const struct kf_msnap_family *f)
{
	return (struct kf_metric_desc){
		.name = f->name, .help = f->help, .type = f->type,
		.label_names = (const char *const *)f->label_names, .n_labels = f->n_labels,
		.buckets = f->bounds, .n_buckets = f->n_bounds,
	};
}

enum kf_err kf_msnap_add_family(struct kf_msnap *snap, const struct kf_metric_desc *desc,
				struct kf_msnap_family **out)
{
	enum kf_err err = kf_metric_desc_check(desc);
	if (err)
		return err;
	for (size_t i = 0; i < snap->n_families; i++) {
		struct kf_metric_desc other = desc_of(snap->families[i]);
		if (strcmp(other.name, desc->name) == 0)
			return KF_EEXIST;
		if (kf_metric_desc_collide(&other, desc))
			return KF_EMETRICNAME;
	}
	if (!grow_families(snap))
		return KF_ENOMEM;
	struct kf_msnap_family *f = family_from_desc(desc);
	if (!f)
		return KF_ENOMEM;
	snap->families[snap->n_families++] = f;
	if (out)
		*out = f;
	return KF_OK;
}

struct kf_msnap_family *kf_msnap_find_family(const struct kf_msnap *snap, const char *name)
{
	for (size_t i = 0; i < snap->n_families; i++)
		if (strcmp(snap->families[i]->name, name) == 0)
			return snap->families[i];
	return NULL;
}

enum kf_err kf_msnap_family_add_series(struct kf_msnap_family *fam,
				       const char *const *label_values,
				       struct kf_msnap_series **out)
{
	if (fam->n_labels && !label_values)
		return KF_EINVAL;
	for (size_t i = 0; i < fam->n_labels; i++) {
		if (!label_values[i])
			return KF_EINVAL;
		if (!kf_utf8_valid(label_values[i], strlen(label_values[i])))
			return KF_EUTF8;
	}
	if (!grow_series(fam))
		return KF_ENOMEM;
	struct kf_msnap_series *s = calloc(1, sizeof *s);
	if (!s)
		return KF_ENOMEM;
	s->label_values = dup_strv(label_values, fam->n_labels);
	s->buckets = calloc(fam->n_bounds ? fam->n_bounds : 1, sizeof *s->buckets);
	if (!s->label_values || !s->buckets) {
		free(s->buckets);
		free_strv(s->label_values, fam->n_labels);
		free(s);
		return KF_ENOMEM;
	}
	fam->series[fam->n_series++] = s;
	if (out)
		*out = s;
	return KF_OK;
}

static bool values_equal(char *const *a, const char *const *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return true;
}

struct kf_msnap_series *kf_msnap_family_find_series(const struct kf_msnap_family *fam,
						    const char *const *label_values)
{
	for (size_t i = 0; i < fam->n_series; i++)
		if (values_equal(fam->series[i]->label_values, label_values, fam->n_labels))
			return fam->series[i];
	return NULL;
}

static int cmp_family(const void *a, const void *b)
{
	const struct kf_msnap_family *fa = *(struct kf_msnap_family *const *)a;
	const struct kf_msnap_family *fb = *(struct kf_msnap_family *const *)b;
	return strcmp(fa->name, fb->name);
}

static int cmp_series(const void *a, const void *b, void *n_labels)
{
	const struct kf_msnap_series *sa = *(struct kf_msnap_series *const *)a;
	const struct kf_msnap_series *sb = *(struct kf_msnap_series *const *)b;
	size_t n = *(const size_t *)n_labels;
	for (size_t i = 0; i < n; i++) {
		int c = strcmp(sa->label_values[i], sb->label_values[i]);
		if (c)
			return c;
	}
	return 0;
}

void kf_msnap_sort(struct kf_msnap *snap)
{
	if (snap->n_families > 1)
		qsort(snap->families, snap->n_families, sizeof *snap->families, cmp_family);
	for (size_t i = 0; i < snap->n_families; i++) {
		struct kf_msnap_family *f = snap->families[i];
		if (f->n_series > 1)
			qsort_r(f->series, f->n_series, sizeof *f->series, cmp_series, &f->n_labels);
	}
}

static enum kf_err check_series(const struct kf_msnap_family *f, const struct kf_msnap_series *s)
{
	if (f->type == KF_METRIC_COUNTER && !(s->value >= 0))
		return KF_ERANGE;
	if (f->type != KF_METRIC_HISTOGRAM)
		return KF_OK;
	for (size_t b = 0; b < f->n_bounds; b++) {
		if (b && s->buckets[b] < s->buckets[b - 1])
			return KF_ERANGE;
		if (s->buckets[b] > s->count)
			return KF_ERANGE;
	}
	return KF_OK;
}

enum kf_err kf_msnap_check(const struct kf_msnap *snap)
{
	for (size_t i = 0; i < snap->n_families; i++) {
		const struct kf_msnap_family *f = snap->families[i];
		size_t n = f->n_labels;
		for (size_t j = 0; j < f->n_series; j++) {
			enum kf_err err = check_series(f, f->series[j]);
			if (err)
				return err;
			if (j && cmp_series(&f->series[j - 1], &f->series[j], &n) == 0)
				return KF_EEXIST;
		}
	}
	return KF_OK;
}
