/*
 * codec.c — the table-driven body codec.
 *
 * Every wire struct is described once in schema.c (key, kind, offset, limit)
 * and both directions walk that table, so the encoder and the decoder cannot
 * drift apart. Decoding runs only after kf__prescan() accepted the bytes; it
 * still checks every read, because a schema bug must not become a crash.
 */
#include "proto/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/json.h"

/* ---- decode: errors with a field path ---------------------------------- */

static void path_push(struct kf__dec *d, const char *key, int64_t index)
{
	int cap = (int)(sizeof d->path_key / sizeof d->path_key[0]);
	if (d->depth < cap) {
		d->path_key[d->depth] = key;
		d->path_index[d->depth] = index;
	}
	d->depth++;
}

static void path_pop(struct kf__dec *d)
{
	d->depth--;
}

enum kf_err kf__dec_fail(struct kf__dec *d, enum kf_err err, const char *fmt, ...)
{
	if (!d->why || d->failed)
		return err;
	d->failed = true;
	int cap = (int)(sizeof d->path_key / sizeof d->path_key[0]);
	for (int i = 0; i < d->depth && i < cap; i++) {
		if (d->path_index[i] >= 0)
			kf_strbuf_addf(d->why, "[%lld]", (long long)d->path_index[i]);
		else
			kf_strbuf_addf(d->why, "%s%s", i ? "." : "", d->path_key[i]);
	}
	if (d->depth)
		kf_strbuf_addstr(d->why, ": ");
	va_list ap;
	va_start(ap, fmt);
	kf_strbuf_vaddf(d->why, fmt, ap);
	va_end(ap);
	return err;
}

static const char *kind_name(enum kf__mp_kind k)
{
	static const char *const names[] = {
		[KF__MP_NIL] = "nil", [KF__MP_BOOL] = "bool", [KF__MP_UINT] = "integer",
		[KF__MP_INT] = "negative integer", [KF__MP_FLOAT] = "float",
		[KF__MP_STR] = "string", [KF__MP_BIN] = "binary", [KF__MP_EXT] = "extension",
		[KF__MP_ARRAY] = "array", [KF__MP_MAP] = "map",
	};
	return names[k];
}

static enum kf_err next(struct kf__dec *d, struct kf__mp_obj *o)
{
	enum kf_err err = kf__rd_next(&d->rd, o);
	return err ? kf__dec_fail(d, err, "unreadable value") : KF_OK;
}

static enum kf_err want(struct kf__dec *d, const struct kf__mp_obj *o, enum kf__mp_kind kind)
{
	if (o->kind == kind)
		return KF_OK;
	return kf__dec_fail(d, KF_ETYPE, "expected %s, got %s", kind_name(kind), kind_name(o->kind));
}

/* ---- decode: scalars --------------------------------------------------- */

static enum kf_err get_u64(struct kf__dec *d, const struct kf__mp_obj *o, uint64_t max, uint64_t *v)
{
	if (o->kind == KF__MP_UINT && o->u <= max) {
		*v = o->u;
		return KF_OK;
	}
	if (o->kind == KF__MP_UINT || o->kind == KF__MP_INT)
		return kf__dec_fail(d, KF_ERANGE, "integer out of range 0..%llu",
			(unsigned long long)max);
	return want(d, o, KF__MP_UINT);
}

static enum kf_err get_i64(struct kf__dec *d, const struct kf__mp_obj *o, int64_t lo, int64_t hi,
	int64_t *v)
{
	if (o->kind == KF__MP_UINT && o->u <= (uint64_t)hi) {
		*v = (int64_t)o->u;
		return KF_OK;
	}
	if (o->kind == KF__MP_INT && o->i >= lo) {
		*v = o->i;
		return KF_OK;
	}
	if (o->kind == KF__MP_UINT || o->kind == KF__MP_INT)
		return kf__dec_fail(d, KF_ERANGE, "integer out of range %lld..%lld",
			(long long)lo, (long long)hi);
	return want(d, o, KF__MP_INT);
}

/* Floats also accept integers: a peer may pack a whole number compactly. */
static enum kf_err get_f64(struct kf__dec *d, const struct kf__mp_obj *o, double *v)
{
	switch (o->kind) {
	case KF__MP_FLOAT: *v = o->f; return KF_OK;
	case KF__MP_UINT: *v = (double)o->u; return KF_OK;
	case KF__MP_INT: *v = (double)o->i; return KF_OK;
	default: return want(d, o, KF__MP_FLOAT);
	}
}

enum kf_err kf__dec_text(struct kf__dec *d, const struct kf__mp_obj *o, uint32_t max,
	const char **out)
{
	enum kf_err err = want(d, o, KF__MP_STR);
	if (err)
		return err;
	if (o->s.len > max)
		return kf__dec_fail(d, KF_ETOOBIG, "string of %u bytes exceeds %u", o->s.len, max);
	if (memchr(o->s.ptr, 0, o->s.len) || !kf_utf8_valid((const char *)o->s.ptr, o->s.len))
		return kf__dec_fail(d, KF_EUTF8, "text is not valid UTF-8 (or holds NUL)");
	if (o->s.len == 0) {
		*out = "";
		return KF_OK;
	}
	char *s;
	err = kf__arena_alloc(d->arena, (size_t)o->s.len + 1, 1, (void **)&s);
	if (err)
		return kf__dec_fail(d, err, "no room for string");
	memcpy(s, o->s.ptr, o->s.len);
	*out = s;
	return KF_OK;
}

/* ---- decode: containers ---------------------------------------------- */

static enum kf_err alloc_n(struct kf__dec *d, size_t n, size_t size, size_t align, void **out)
{
	enum kf_err err = kf__arena_alloc(d->arena, n * size, align, out);
	return err ? kf__dec_fail(d, err, "no room for %zu elements", n) : KF_OK;
}

static enum kf_err array_hdr(struct kf__dec *d, const struct kf__mp_obj *o, uint32_t max)
{
	enum kf_err err = want(d, o, KF__MP_ARRAY);
	if (err)
		return err;
	if (o->n > max)
		return kf__dec_fail(d, KF_ETOOBIG, "array of %u elements exceeds %u", o->n, max);
	return KF_OK;
}

static enum kf_err decode_map(struct kf__dec *d, const struct kf__schema *s, uint32_t pairs,
	void *obj);

static enum kf_err dec_array(struct kf__dec *d, const struct kf__field *f,
	const struct kf__mp_obj *o, char *obj)
{
	enum kf_err err = array_hdr(d, o, f->max);
	if (err || o->n == 0)
		return err;
	const struct kf__schema *sub = f->sub;
	char *elems;
	err = alloc_n(d, o->n, sub->size, sub->align, (void **)&elems);
	for (uint32_t i = 0; !err && i < o->n; i++) {
		struct kf__mp_obj m;
		path_push(d, NULL, i);
		err = next(d, &m);
		if (!err)
			err = want(d, &m, KF__MP_MAP);
		if (!err)
			err = decode_map(d, sub, m.n, elems + i * sub->size);
		path_pop(d);
	}
	if (err)
		return err;
	memcpy(obj + f->off, &elems, sizeof elems);
	size_t n = o->n;
	memcpy(obj + f->off_n, &n, sizeof n);
	return KF_OK;
}

static enum kf_err dec_fixed(struct kf__dec *d, const struct kf__field *f,
	const struct kf__mp_obj *o, char *obj)
{
	enum kf_err err = array_hdr(d, o, 64);
	for (uint32_t i = 0; !err && i < o->n; i++) {
		struct kf__mp_obj m;
		path_push(d, NULL, i);
		err = next(d, &m);
		if (!err && f->kind == KF__F_F64_FIXED) {
			double v = 0;
			err = get_f64(d, &m, &v);
			if (!err && i < f->max)
				memcpy(obj + f->off + i * sizeof v, &v, sizeof v);
		} else if (!err) {
			uint64_t v = 0;
			err = get_u64(d, &m, UINT64_MAX, &v);
			if (!err && i < f->max)
				memcpy(obj + f->off + i * sizeof v, &v, sizeof v);
		}
		path_pop(d);
	}
	return err;
}

static enum kf_err dec_hist(struct kf__dec *d, const struct kf__field *f,
	const struct kf__mp_obj *o, char *obj)
{
	enum kf_err err = want(d, o, KF__MP_ARRAY);
	if (err)
		return err;
	if (o->n % 2)
		return kf__dec_fail(d, KF_ETYPE, "bucket array needs (le, count) pairs");
	size_t n = o->n / 2;
	if (n > f->max)
		return kf__dec_fail(d, KF_ETOOBIG, "%zu buckets exceed %u", n, f->max);
	if (n == 0)
		return KF_OK;
	double *le;
	uint64_t *count;
	err = alloc_n(d, n, sizeof *le, 8, (void **)&le);
	if (!err)
		err = alloc_n(d, n, sizeof *count, 8, (void **)&count);
	for (size_t i = 0; !err && i < n; i++) {
		struct kf__mp_obj m;
		path_push(d, NULL, (int64_t)i);
		err = next(d, &m);
		if (!err)
			err = get_f64(d, &m, &le[i]);
		if (!err)
			err = next(d, &m);
		if (!err)
			err = get_u64(d, &m, UINT64_MAX, &count[i]);
		path_pop(d);
	}
	if (err)
		return err;
	memcpy(obj + f->off, &le, sizeof le);
	memcpy(obj + f->off2, &count, sizeof count);
	memcpy(obj + f->off_n, &n, sizeof n);
	return KF_OK;
}

static enum kf_err dec_value(struct kf__dec *d, const struct kf__mp_obj *o,
	struct kf_msg_value *v)
{
	enum kf_err err = want(d, o, KF__MP_ARRAY);
	if (err)
		return err;
	if (o->n != 2)
		return kf__dec_fail(d, KF_ETYPE, "value must be [kind, value]");
	struct kf__mp_obj m;
	/* Set by get_u64 on success; initialised because GCC -O3 cannot see that. */
	uint64_t kind = 0;
	if ((err = next(d, &m)) || (err = get_u64(d, &m, KF_VALUE_KIND_COUNT - 1, &kind)))
		return err;
	if ((err = next(d, &m)))
		return err;
	v->kind = (enum kf_msg_value_kind)kind;
	switch (v->kind) {
	case KF_VALUE_STR: return kf__dec_text(d, &m, KF_MSG_MAX_TEXT, &v->str);
	case KF_VALUE_I64: return get_i64(d, &m, INT64_MIN, INT64_MAX, &v->i64);
	case KF_VALUE_U64: return get_u64(d, &m, UINT64_MAX, &v->u64);
	case KF_VALUE_F64: return get_f64(d, &m, &v->f64);
	case KF_VALUE_BOOL:
		err = want(d, &m, KF__MP_BOOL);
		v->b = !err && m.b;
		return err;
	default: return KF_EINTERNAL;
	}
}

/* ---- decode: one field -------------------------------------------------- */

static enum kf_err dec_int(struct kf__dec *d, const struct kf__field *f,
	const struct kf__mp_obj *o, char *p)
{
	enum kf_err err;
	uint64_t u = 0;
	int64_t i = 0;
	switch (f->kind) {
	case KF__F_U32:
		if (!(err = get_u64(d, o, UINT32_MAX, &u)))
			memcpy(p, &(uint32_t){ (uint32_t)u }, 4);
		return err;
	case KF__F_U64:
		if (!(err = get_u64(d, o, UINT64_MAX, &u)))
			memcpy(p, &u, 8);
		return err;
	case KF__F_I32:
		if (!(err = get_i64(d, o, INT32_MIN, INT32_MAX, &i)))
			memcpy(p, &(int32_t){ (int32_t)i }, 4);
		return err;
	case KF__F_I64:
		if (!(err = get_i64(d, o, INT64_MIN, INT64_MAX, &i)))
			memcpy(p, &i, 8);
		return err;
	default: /* KF__F_ENUM */
		if (o->kind == KF__MP_UINT && (o->u < f->lo || o->u >= f->hi))
			return kf__dec_fail(d, KF_ERANGE, "unknown enum value %llu",
				(unsigned long long)o->u);
		if (!(err = get_u64(d, o, UINT32_MAX, &u)))
			memcpy(p, &(uint32_t){ (uint32_t)u }, 4);
		return err;
	}
}

static enum kf_err dec_field(struct kf__dec *d, const struct kf__field *f,
	const struct kf__mp_obj *o, char *obj)
{
	char *p = obj + f->off;
	enum kf_err err;
	switch (f->kind) {
	case KF__F_BOOL:
		if (!(err = want(d, o, KF__MP_BOOL)))
			*(bool *)p = o->b;
		return err;
	case KF__F_F64:
		return get_f64(d, o, (double *)p);
	case KF__F_STR:
		return kf__dec_text(d, o, f->max, (const char **)p);
	case KF__F_STRUCT:
		if ((err = want(d, o, KF__MP_MAP)))
			return err;
		return decode_map(d, f->sub, o->n, p);
	case KF__F_PSTRUCT: {
		void *sub;
		if ((err = want(d, o, KF__MP_MAP)) ||
		    (err = alloc_n(d, 1, f->sub->size, f->sub->align, &sub)) ||
		    (err = decode_map(d, f->sub, o->n, sub)))
			return err;
		memcpy(p, &sub, sizeof sub);
		return KF_OK;
	}
	case KF__F_ARRAY:
		return dec_array(d, f, o, obj);
	case KF__F_F64_FIXED:
	case KF__F_U64_FIXED:
		return dec_fixed(d, f, o, obj);
	case KF__F_VALUE:
		return dec_value(d, o, (struct kf_msg_value *)p);
	case KF__F_HIST:
		return dec_hist(d, f, o, obj);
	default:
		return dec_int(d, f, o, p);
	}
}

static const struct kf__field *find_field(const struct kf__schema *s, const struct kf__mp_obj *key)
{
	for (size_t i = 0; i < s->n_fields; i++) {
		const char *k = s->fields[i].key;
		if (strlen(k) == key->s.len && memcmp(k, key->s.ptr, key->s.len) == 0)
			return &s->fields[i];
	}
	return NULL;
}

static enum kf_err decode_map(struct kf__dec *d, const struct kf__schema *s, uint32_t pairs,
	void *obj)
{
	uint64_t seen = 0, present = 0;
	enum kf_err err;
	for (uint32_t i = 0; i < pairs; i++) {
		struct kf__mp_obj key, val;
		if ((err = next(d, &key)))
			return err;
		if (key.kind != KF__MP_STR)
			return kf__dec_fail(d, KF_ETYPE, "map key is a %s, not a string",
				kind_name(key.kind));
		const struct kf__field *f = find_field(s, &key);
		if (!f) {
			/* Unknown keys are how newer minor versions add fields. */
			if ((err = kf__rd_skip(&d->rd)))
				return kf__dec_fail(d, err, "unreadable value");
			continue;
		}
		uint64_t bit = 1ull << (f - s->fields);
		path_push(d, f->key, -1);
		if (seen & bit) {
			err = kf__dec_fail(d, KF_EMALFORMED, "duplicate key");
		} else if (!(err = next(d, &val)) && val.kind != KF__MP_NIL) {
			err = dec_field(d, f, &val, obj);
			present |= bit;
		}
		seen |= bit;
		path_pop(d);
		if (err)
			return err;
	}
	for (size_t i = 0; i < s->n_fields; i++) {
		if (s->fields[i].opt || (present & (1ull << i)))
			continue;
		return kf__dec_fail(d, KF_EMISSING, "required field \"%s\" of %s missing",
			s->fields[i].key, s->name);
	}
	if (s->check && (err = s->check(obj)))
		return kf__dec_fail(d, err, "invalid %s", s->name);
	return KF_OK;
}

enum kf_err kf__decode_struct(struct kf__dec *d, const struct kf__schema *s, void *obj)
{
	struct kf__mp_obj o;
	enum kf_err err = next(d, &o);
	if (!err)
		err = want(d, &o, KF__MP_MAP);
	return err ? err : decode_map(d, s, o.n, obj);
}

/* ---- encode ------------------------------------------------------------- */

static void pack_key(msgpack_packer *pk, const char *key)
{
	size_t n = strlen(key);
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, key, n);
}

enum kf_err kf__encode_text(msgpack_packer *pk, const char *s, uint32_t max)
{
	if (!s)
		return KF_EINVAL;
	size_t n = strlen(s);
	if (n > max)
		return KF_ETOOBIG;
	if (!kf_utf8_valid(s, n))
		return KF_EUTF8;
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
	return KF_OK;
}

static const void *get_ptr(const char *obj, uint32_t off)
{
	const void *p;
	memcpy(&p, obj + off, sizeof p);
	return p;
}

static size_t get_size(const char *obj, uint32_t off)
{
	size_t n;
	memcpy(&n, obj + off, sizeof n);
	return n;
}

/* Whether an optional field is sent: absent means NULL, 0, false or empty. */
static bool is_present(const struct kf__field *f, const char *obj)
{
	static const char zero[8];
	const char *p = obj + f->off;
	if (!f->opt)
		return true;
	switch (f->kind) {
	case KF__F_STR:
	case KF__F_PSTRUCT: return get_ptr(obj, f->off) != NULL;
	case KF__F_ARRAY:
	case KF__F_HIST: return get_size(obj, f->off_n) != 0;
	case KF__F_BOOL: return *(const bool *)p;
	case KF__F_U32:
	case KF__F_I32:
	case KF__F_ENUM: return memcmp(p, zero, 4) != 0;
	case KF__F_U64:
	case KF__F_I64: return memcmp(p, zero, 8) != 0;
	case KF__F_F64: return *(const double *)p != 0;
	default: return true;
	}
}

static enum kf_err enc_value(msgpack_packer *pk, const struct kf_msg_value *v)
{
	if ((unsigned)v->kind >= KF_VALUE_KIND_COUNT)
		return KF_ERANGE;
	msgpack_pack_array(pk, 2);
	msgpack_pack_uint32(pk, (uint32_t)v->kind);
	switch (v->kind) {
	case KF_VALUE_STR: return kf__encode_text(pk, v->str, KF_MSG_MAX_TEXT);
	case KF_VALUE_I64: msgpack_pack_int64(pk, v->i64); break;
	case KF_VALUE_U64: msgpack_pack_uint64(pk, v->u64); break;
	case KF_VALUE_F64: msgpack_pack_double(pk, v->f64); break;
	default: v->b ? msgpack_pack_true(pk) : msgpack_pack_false(pk); break;
	}
	return KF_OK;
}

static enum kf_err enc_array(msgpack_packer *pk, const struct kf__field *f, const char *obj)
{
	size_t n = get_size(obj, f->off_n);
	const char *elems = get_ptr(obj, f->off);
	if (n > f->max)
		return KF_ETOOBIG;
	if (n && !elems)
		return KF_EINVAL;
	msgpack_pack_array(pk, n);
	for (size_t i = 0; i < n; i++) {
		enum kf_err err = kf__encode_struct(pk, f->sub, elems + i * f->sub->size);
		if (err)
			return err;
	}
	return KF_OK;
}

static enum kf_err enc_hist(msgpack_packer *pk, const struct kf__field *f, const char *obj)
{
	size_t n = get_size(obj, f->off_n);
	const double *le = get_ptr(obj, f->off);
	const uint64_t *count = get_ptr(obj, f->off2);
	if (n > f->max)
		return KF_ETOOBIG;
	if (n && (!le || !count))
		return KF_EINVAL;
	msgpack_pack_array(pk, 2 * n);
	for (size_t i = 0; i < n; i++) {
		msgpack_pack_double(pk, le[i]);
		msgpack_pack_uint64(pk, count[i]);
	}
	return KF_OK;
}

static enum kf_err enc_field(msgpack_packer *pk, const struct kf__field *f, const char *obj)
{
	const char *p = obj + f->off;
	uint32_t u32;
	int32_t i32;
	switch (f->kind) {
	case KF__F_BOOL: *(const bool *)p ? msgpack_pack_true(pk) : msgpack_pack_false(pk); break;
	case KF__F_U32: memcpy(&u32, p, 4); msgpack_pack_uint32(pk, u32); break;
	case KF__F_U64: msgpack_pack_uint64(pk, *(const uint64_t *)p); break;
	case KF__F_I32: memcpy(&i32, p, 4); msgpack_pack_int32(pk, i32); break;
	case KF__F_I64: msgpack_pack_int64(pk, *(const int64_t *)p); break;
	case KF__F_F64: msgpack_pack_double(pk, *(const double *)p); break;
	case KF__F_ENUM:
		memcpy(&u32, p, 4);
		if (u32 < f->lo || u32 >= f->hi)
			return KF_ERANGE;
		msgpack_pack_uint32(pk, u32);
		break;
	case KF__F_STR: return kf__encode_text(pk, get_ptr(obj, f->off), f->max);
	case KF__F_STRUCT: return kf__encode_struct(pk, f->sub, p);
	case KF__F_PSTRUCT: return kf__encode_struct(pk, f->sub, get_ptr(obj, f->off));
	case KF__F_ARRAY: return enc_array(pk, f, obj);
	case KF__F_F64_FIXED:
		msgpack_pack_array(pk, f->max);
		for (uint32_t i = 0; i < f->max; i++)
			msgpack_pack_double(pk, ((const double *)p)[i]);
		break;
	case KF__F_U64_FIXED:
		msgpack_pack_array(pk, f->max);
		for (uint32_t i = 0; i < f->max; i++)
			msgpack_pack_uint64(pk, ((const uint64_t *)p)[i]);
		break;
	case KF__F_VALUE: return enc_value(pk, (const struct kf_msg_value *)p);
	case KF__F_HIST: return enc_hist(pk, f, obj);
	default: return KF_EINTERNAL;
	}
	return KF_OK;
}

enum kf_err kf__encode_struct(msgpack_packer *pk, const struct kf__schema *s, const void *obj)
{
	enum kf_err err;
	if (!obj)
		return KF_EINVAL;
	if (s->check && (err = s->check(obj)))
		return err;
	size_t n = 0;
	for (size_t i = 0; i < s->n_fields; i++)
		n += is_present(&s->fields[i], obj);
	msgpack_pack_map(pk, n);
	for (size_t i = 0; i < s->n_fields; i++) {
		const struct kf__field *f = &s->fields[i];
		if (!is_present(f, obj))
			continue;
		pack_key(pk, f->key);
		if ((err = enc_field(pk, f, obj)))
			return err;
	}
	return KF_OK;
}

/* ---- envelope ------------------------------------------------------------ */

enum { ENV_V, ENV_VM, ENV_T, ENV_S, ENV_Q, ENV_TS, ENV_B, ENV_COUNT };
static const char *const env_keys[ENV_COUNT] = { "v", "vm", "t", "s", "q", "ts", "b" };

/* Seeks to a recorded value and reads it as an unsigned number. */
static enum kf_err env_u64(struct kf__dec *d, const size_t *at, int which, uint64_t max,
	uint64_t *v)
{
	struct kf__mp_obj o;
	enum kf_err err;
	if (at[which] == SIZE_MAX) {
		*v = 0;
		if (which == ENV_VM)
			return KF_OK; /* the minor version is optional */
		return kf__dec_fail(d, KF_EMISSING, "envelope field \"%s\" missing", env_keys[which]);
	}
	d->rd.off = at[which];
	path_push(d, env_keys[which], -1);
	err = next(d, &o);
	if (!err)
		err = get_u64(d, &o, max, v);
	path_pop(d);
	return err;
}

/* Records where each envelope value starts; they are read in a fixed order
 * afterwards, because the version decides how to read everything else. */
static enum kf_err env_scan(struct kf__dec *d, size_t *at)
{
	struct kf__mp_obj o, key;
	enum kf_err err = next(d, &o);
	if (!err && o.kind != KF__MP_MAP)
		return kf__dec_fail(d, KF_ETYPE, "envelope is a %s, not a map", kind_name(o.kind));
	for (uint32_t i = 0; !err && i < o.n; i++) {
		if ((err = next(d, &key)))
			break;
		if (key.kind != KF__MP_STR)
			return kf__dec_fail(d, KF_ETYPE, "envelope key is a %s, not a string",
				kind_name(key.kind));
		int which = ENV_COUNT;
		for (int k = 0; k < ENV_COUNT; k++)
			if (strlen(env_keys[k]) == key.s.len &&
			    memcmp(env_keys[k], key.s.ptr, key.s.len) == 0)
				which = k;
		if (which < ENV_COUNT && at[which] != SIZE_MAX)
			return kf__dec_fail(d, KF_EMALFORMED, "duplicate envelope key \"%s\"",
				env_keys[which]);
		enum kf__mp_kind kind = KF__MP_NIL;
		if (which < ENV_COUNT && !kf__rd_peek(&d->rd, &kind) && kind != KF__MP_NIL)
			at[which] = d->rd.off; /* nil counts as absent, as in bodies */
		if ((err = kf__rd_skip(&d->rd)))
			return kf__dec_fail(d, err, "unreadable value");
	}
	return err;
}

enum kf_err kf__decode_envelope(struct kf__dec *d, struct kf_msg *msg)
{
	size_t at[ENV_COUNT];
	uint64_t v, vm, t;
	struct kf__mp_obj o;
	enum kf_err err;

	for (int k = 0; k < ENV_COUNT; k++)
		at[k] = SIZE_MAX;
	if ((err = env_scan(d, at)))
		return err;
	size_t end = d->rd.off;

	/* Any number is a version or a type; the wrong one is reported as such. */
	if ((err = env_u64(d, at, ENV_V, UINT64_MAX, &v)))
		return err;
	if (v != KF_PROTO_MAJOR)
		return kf__dec_fail(d, KF_EVERSION, "protocol major version %llu, this build speaks %d",
			(unsigned long long)v, KF_PROTO_MAJOR);
	if ((err = env_u64(d, at, ENV_VM, UINT16_MAX, &vm)) ||
	    (err = env_u64(d, at, ENV_T, UINT64_MAX, &t)))
		return err;
	const struct kf__schema *body = t <= INT16_MAX ? kf__schema_of((enum kf_msg_type)t) : NULL;
	if (!body)
		return kf__dec_fail(d, KF_EUNKNOWNTYPE, "unknown message type %llu",
			(unsigned long long)t);
	msg->major = (uint16_t)v;
	msg->minor = (uint16_t)vm;
	msg->type = (enum kf_msg_type)t;
	if ((err = env_u64(d, at, ENV_Q, UINT64_MAX, &msg->seq)) ||
	    (err = env_u64(d, at, ENV_TS, UINT64_MAX, &msg->ts_ns)))
		return err;
	if (at[ENV_S] == SIZE_MAX || at[ENV_B] == SIZE_MAX)
		return kf__dec_fail(d, KF_EMISSING, "envelope field \"%s\" missing",
			at[ENV_S] == SIZE_MAX ? "s" : "b");

	d->rd.off = at[ENV_S];
	path_push(d, "s", -1);
	if (!(err = next(d, &o)))
		err = kf__dec_text(d, &o, KF_MSG_MAX_NAME, &msg->sender);
	path_pop(d);
	if (err)
		return err;

	d->rd.off = at[ENV_B];
	path_push(d, "b", -1);
	err = kf__decode_struct(d, body, &msg->heartbeat);
	path_pop(d);
	d->rd.off = end;
	return err;
}
