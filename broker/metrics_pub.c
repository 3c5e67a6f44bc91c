/* metrics_pub.c — struct kf_msnap -> struct kf_msg_metric. */
#include "broker/metrics_pub.h"

static enum kf_err one_series(const struct kf_msnap_family *f, const struct kf_msnap_series *s,
	struct kf_jarena *a, struct kf_msg_series *out)
{
	struct kf_msg_label *labels = NULL;

	if (f->n_bounds > KF_MSG_MAX_BUCKETS || f->n_labels > KF_MSG_MAX_LABELS)
		return KF_ETOOBIG;
	if (f->n_labels && !(labels = kf_jarena_alloc(a, f->n_labels * sizeof(*labels))))
		return KF_ENOMEM;
	for (size_t i = 0; i < f->n_labels; i++)
		labels[i] = (struct kf_msg_label){ f->label_names[i], s->label_values[i] };
	*out = (struct kf_msg_series){
		.name = f->name, .type = (enum kf_msg_metric_type)f->type, .help = f->help,
		.labels = labels, .n_labels = f->n_labels,
	};
	if (f->type != KF_METRIC_HISTOGRAM) {
		out->value = s->value;
		return KF_OK;
	}
	out->bucket_le = f->bounds;
	out->bucket_count = s->buckets;
	out->n_buckets = f->n_bounds;
	out->sum = s->sum;
	out->count = s->count;
	return KF_OK;
}

enum kf_err kf_metrics_pub_build(const struct kf_msnap *snap, const char *source,
	uint64_t incarnation, bool full, struct kf_jarena *a, struct kf_msg_metric *out)
{
	struct kf_msg_series *series = NULL;
	size_t n = 0, k = 0;
	enum kf_err err;

	for (size_t i = 0; i < snap->n_families; i++)
		n += snap->families[i]->n_series;
	if (n > KF_MSG_MAX_SERIES)
		return KF_ETOOBIG;
	if (n && !(series = kf_jarena_alloc(a, n * sizeof(*series))))
		return KF_ENOMEM;
	for (size_t i = 0; i < snap->n_families; i++) {
		const struct kf_msnap_family *f = snap->families[i];

		for (size_t j = 0; j < f->n_series; j++)
			if ((err = one_series(f, f->series[j], a, &series[k++])))
				return err;
	}
	*out = (struct kf_msg_metric){ .source = source, .incarnation = incarnation,
		.full = full, .series = series, .n_series = n };
	return KF_OK;
}
