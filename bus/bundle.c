/* bundle.c — the bytes of a bundle (bundle.h). */
#include "bus/bundle.h"

#include <stdint.h>
#include <string.h>

bool kf_bus_bundle_is(const void *buf, size_t len)
{
	return len >= KF_BUS_BUNDLE_MAGIC_LEN &&
	       memcmp(buf, KF_BUS_BUNDLE_MAGIC, KF_BUS_BUNDLE_MAGIC_LEN) == 0;
}

size_t kf_bus_bundle_size(const struct kf_bus_part *parts, size_t n)
{
	size_t size = KF_BUS_BUNDLE_MAGIC_LEN;

	for (size_t i = 0; i < n; i++)
		size += KF_BUS_BUNDLE_LEN_BYTES + parts[i].len;
	return size;
}

void kf_bus_bundle_write(void *out, const struct kf_bus_part *parts, size_t n)
{
	unsigned char *p = out;

	memcpy(p, KF_BUS_BUNDLE_MAGIC, KF_BUS_BUNDLE_MAGIC_LEN);
	p += KF_BUS_BUNDLE_MAGIC_LEN;
	for (size_t i = 0; i < n; i++) {
		uint32_t len = (uint32_t)parts[i].len;

		p[0] = (unsigned char)(len >> 24);
		p[1] = (unsigned char)(len >> 16);
		p[2] = (unsigned char)(len >> 8);
		p[3] = (unsigned char)len;
		memcpy(p + KF_BUS_BUNDLE_LEN_BYTES, parts[i].buf, parts[i].len);
		p += KF_BUS_BUNDLE_LEN_BYTES + parts[i].len;
	}
}

void kf_bus_bundle_iter_init(struct kf_bus_bundle_iter *it, const void *buf, size_t len)
{
	it->p = buf;
	it->end = it->p + len;
	it->parts = 0;
	it->err = KF_OK;
	if (!kf_bus_bundle_is(buf, len))
		it->err = KF_ETOPIC;
	else if (len == KF_BUS_BUNDLE_MAGIC_LEN)
		it->err = KF_EMALFORMED; /* a bundle of nothing is never sent */
	else
		it->p += KF_BUS_BUNDLE_MAGIC_LEN;
}

static enum kf_err next_part(struct kf_bus_bundle_iter *it, struct kf_bus_part *part)
{
	size_t left = (size_t)(it->end - it->p);
	uint32_t len;

	if (left == 0)
		return KF_ENOENT;
	if (it->parts == KF_BUS_BUNDLE_MAX_PARTS)
		return KF_ETOOBIG;
	if (left < KF_BUS_BUNDLE_LEN_BYTES)
		return KF_ETRUNCATED;
	len = (uint32_t)it->p[0] << 24 | (uint32_t)it->p[1] << 16 | (uint32_t)it->p[2] << 8 |
	      (uint32_t)it->p[3];
	if (len == 0)
		return KF_EMALFORMED;
	if (len > left - KF_BUS_BUNDLE_LEN_BYTES)
		return KF_ETRUNCATED;
	part->buf = it->p + KF_BUS_BUNDLE_LEN_BYTES;
	part->len = len;
	it->p += KF_BUS_BUNDLE_LEN_BYTES + len;
	it->parts++;
	return KF_OK;
}

enum kf_err kf_bus_bundle_next(struct kf_bus_bundle_iter *it, struct kf_bus_part *part)
{
	if (it->err == KF_OK) {
		enum kf_err err = next_part(it, part);

		if (err != KF_OK && err != KF_ENOENT)
			it->err = err;
		return err;
	}
	return it->err;
}

enum kf_err kf_bus_bundle_check(const void *buf, size_t len, size_t *n_parts)
{
	struct kf_bus_bundle_iter it;
	struct kf_bus_part part;
	enum kf_err err;

	kf_bus_bundle_iter_init(&it, buf, len);
	while ((err = kf_bus_bundle_next(&it, &part)) == KF_OK)
		;
	*n_parts = it.parts;
	return err == KF_ENOENT ? KF_OK : err;
}
