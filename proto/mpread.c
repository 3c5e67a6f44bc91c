/*
 * mpread.c — a minimal msgpack reader over untrusted bytes.
 *
 * Why our own reader: msgpack-c's unpacker allocates containers from their
 * declared counts before it has seen the elements, so a 5-byte array32
 * header claiming 4e9 elements becomes a multi-GB allocation. This reader
 * allocates nothing; it returns views into the input. kf__prescan() walks the
 * whole message once, iteratively, before any decoding allocates.
 */
#include "proto/internal.h"

#include <string.h>

static uint64_t be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* Reads an n-byte big-endian number at r->off. */
static enum kf_err take(struct kf__rd *r, size_t n, uint64_t *v)
{
	if (r->len - r->off < n)
		return KF_ETRUNCATED;
	*v = be(r->p + r->off, n);
	r->off += n;
	return KF_OK;
}

/* Consumes a payload of n bytes (str, bin, ext) as a view. */
static enum kf_err payload(struct kf__rd *r, uint64_t n, struct kf__mp_obj *o)
{
	if (r->len - r->off < n)
		return KF_ETRUNCATED;
	o->s.ptr = r->p + r->off;
	o->s.len = (uint32_t)n;
	r->off += n;
	return KF_OK;
}

static enum kf_err sized(struct kf__rd *r, enum kf__mp_kind kind, size_t lenbytes,
	struct kf__mp_obj *o)
{
	uint64_t n;
	enum kf_err err = take(r, lenbytes, &n);
	if (err)
		return err;
	o->kind = kind;
	if (kind == KF__MP_ARRAY || kind == KF__MP_MAP) {
		o->n = (uint32_t)n;
		return KF_OK;
	}
	if (kind == KF__MP_EXT)
		n += 1; /* the type byte travels with the payload */
	return payload(r, n, o);
}

static enum kf_err number(struct kf__rd *r, uint8_t tag, struct kf__mp_obj *o)
{
	static const uint8_t width[] = { 4, 8, 1, 2, 4, 8, 1, 2, 4, 8 }; /* 0xca..0xd3 */
	uint64_t v;
	enum kf_err err = take(r, width[tag - 0xca], &v);
	if (err)
		return err;
	if (tag == 0xca) {
		uint32_t bits = (uint32_t)v;
		float f;
		memcpy(&f, &bits, sizeof f);
		o->kind = KF__MP_FLOAT;
		o->f = f;
	} else if (tag == 0xcb) {
		memcpy(&o->f, &v, sizeof o->f);
		o->kind = KF__MP_FLOAT;
	} else if (tag <= 0xcf) {
		o->kind = KF__MP_UINT;
		o->u = v;
	} else {
		/* Sign-extend from the encoded width, then normalise: a
		 * non-negative value in an int format is a UINT. */
		unsigned shift = 64 - 8 * width[tag - 0xca];
		int64_t i = (int64_t)(v << shift) >> shift;
		o->kind = i < 0 ? KF__MP_INT : KF__MP_UINT;
		if (i < 0)
			o->i = i;
		else
			o->u = (uint64_t)i;
	}
	return KF_OK;
}

enum kf_err kf__rd_next(struct kf__rd *r, struct kf__mp_obj *o)
{
	if (r->off >= r->len)
		return KF_ETRUNCATED;
	uint8_t tag = r->p[r->off++];

	if (tag <= 0x7f) {
		o->kind = KF__MP_UINT;
		o->u = tag;
		return KF_OK;
	}
	if (tag >= 0xe0) {
		o->kind = KF__MP_INT;
		o->i = (int8_t)tag;
		return KF_OK;
	}
	if (tag <= 0x8f) {
		o->kind = KF__MP_MAP;
		o->n = tag & 0x0f;
		return KF_OK;
	}
	if (tag <= 0x9f) {
		o->kind = KF__MP_ARRAY;
		o->n = tag & 0x0f;
		return KF_OK;
	}
	if (tag <= 0xbf) {
		o->kind = KF__MP_STR;
		return payload(r, tag & 0x1f, o);
	}
	switch (tag) {
	case 0xc0: o->kind = KF__MP_NIL; return KF_OK;
	case 0xc1: return KF_EMALFORMED;
	case 0xc2:
	case 0xc3: o->kind = KF__MP_BOOL; o->b = tag == 0xc3; return KF_OK;
	case 0xc4: return sized(r, KF__MP_BIN, 1, o);
	case 0xc5: return sized(r, KF__MP_BIN, 2, o);
	case 0xc6: return sized(r, KF__MP_BIN, 4, o);
	case 0xc7: return sized(r, KF__MP_EXT, 1, o);
	case 0xc8: return sized(r, KF__MP_EXT, 2, o);
	case 0xc9: return sized(r, KF__MP_EXT, 4, o);
	case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
		o->kind = KF__MP_EXT;
		return payload(r, 1 + (1u << (tag - 0xd4)), o);
	case 0xd9: return sized(r, KF__MP_STR, 1, o);
	case 0xda: return sized(r, KF__MP_STR, 2, o);
	case 0xdb: return sized(r, KF__MP_STR, 4, o);
	case 0xdc: return sized(r, KF__MP_ARRAY, 2, o);
	case 0xdd: return sized(r, KF__MP_ARRAY, 4, o);
	case 0xde: return sized(r, KF__MP_MAP, 2, o);
	case 0xdf: return sized(r, KF__MP_MAP, 4, o);
	default: return number(r, tag, o); /* 0xca..0xd3 */
	}
}

enum kf_err kf__rd_peek(const struct kf__rd *r, enum kf__mp_kind *kind)
{
	struct kf__rd copy = *r;
	struct kf__mp_obj o;
	enum kf_err err = kf__rd_next(&copy, &o);
	if (!err)
		*kind = o.kind;
	return err;
}

/* Elements still to read inside a container just read (0 for scalars). */
static uint64_t children(const struct kf__mp_obj *o)
{
	if (o->kind == KF__MP_ARRAY)
		return o->n;
	if (o->kind == KF__MP_MAP)
		return 2 * (uint64_t)o->n;
	return 0;
}

enum kf_err kf__rd_skip(struct kf__rd *r)
{
	/* Every object is at least one byte, so `left` is bounded by the input
	 * size and cannot overflow. */
	uint64_t left = 1;
	while (left) {
		struct kf__mp_obj o;
		enum kf_err err = kf__rd_next(r, &o);
		if (err)
			return err;
		left = left - 1 + children(&o);
		if (left > r->len - r->off)
			return KF_ETRUNCATED;
	}
	return KF_OK;
}

enum kf_err kf__prescan(const uint8_t *p, size_t len)
{
	struct kf__rd r = { p, len, 0 };
	uint64_t left[KF_MSG_MAX_DEPTH + 1];
	int depth = 0; /* containers open around the next object */
	uint64_t objects = 0;

	left[0] = 1;
	for (;;) {
		while (depth > 0 && left[depth] == 0)
			depth--;
		if (left[depth] == 0)
			break;
		left[depth]--;

		struct kf__mp_obj o;
		enum kf_err err = kf__rd_next(&r, &o);
		if (err)
			return err;
		if (++objects > KF_MSG_MAX_OBJECTS)
			return KF_ETOOBIG;
		if (o.kind != KF__MP_ARRAY && o.kind != KF__MP_MAP)
			continue;
		/* Each element needs at least one byte: a count beyond the bytes
		 * left is a lie, whatever memory it would have cost. */
		if (children(&o) > r.len - r.off)
			return KF_ETRUNCATED;
		if (depth + 1 > KF_MSG_MAX_DEPTH)
			return KF_ETOODEEP;
		if (children(&o) > 0)
			left[++depth] = children(&o);
	}
	return r.off == len ? KF_OK : KF_ETRAILING;
}
