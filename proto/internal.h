/*
 * proto/internal.h — shared between the files of proto/ only (kf__ names).
 *
 *   arena.c   bump allocator with a byte budget, one per decoded message
 *   mpread.c  minimal msgpack reader and the bounded structural pre-scan
 *   codec.c   table-driven encoder (msgpack-c) and decoder (mpread) of bodies
 *   schema.c  the tables: one struct kf__schema per wire struct
 *   msg.c     envelope, type registry, public encode/decode
 */
#ifndef KF_PROTO_INTERNAL_H
#define KF_PROTO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "common/err.h"
#include "common/strbuf.h"
#include "proto/msg.h"

/* ---- arena -------------------------------------------------------------- */

/* Allocations stop with KF_ETOOBIG once `budget` bytes are handed out. */
struct kf__arena *kf__arena_new(size_t budget);
/* Zeroed memory aligned to `align` (1, 2, 4, 8). KF_ETOOBIG or KF_ENOMEM. */
enum kf_err kf__arena_alloc(struct kf__arena *a, size_t size, size_t align, void **out);
void kf__arena_free(struct kf__arena *a);

/* ---- msgpack reader ---------------------------------------------------- */

enum kf__mp_kind {
	KF__MP_NIL,
	KF__MP_BOOL,
	KF__MP_UINT,  /* any non-negative integer, whatever its encoding */
	KF__MP_INT,   /* negative integer */
	KF__MP_FLOAT, /* float 32 or 64 */
	KF__MP_STR,
	KF__MP_BIN,
	KF__MP_EXT,
	KF__MP_ARRAY,
	KF__MP_MAP,
};

struct kf__mp_obj {
	enum kf__mp_kind kind;
	union {
		bool b;
		uint64_t u;
		int64_t i;
		double f;
		uint32_t n;                      /* array / map: element / pair count */
		struct {
			const uint8_t *ptr;      /* str / bin / ext payload, in the input */
			uint32_t len;
		} s;
	};
};

struct kf__rd {
	const uint8_t *p;
	size_t len;
	size_t off;
};

/* Reads one object header at r->off (for str/bin/ext also their payload;
 * for containers only the count). KF_ETRUNCATED, KF_EMALFORMED (0xc1).
 * Counts of containers are NOT checked here: kf__prescan does that. */
enum kf_err kf__rd_next(struct kf__rd *r, struct kf__mp_obj *o);
/* Kind of the next object without consuming it; KF_ETRUNCATED at the end. */
enum kf_err kf__rd_peek(const struct kf__rd *r, enum kf__mp_kind *kind);
/* Skips one complete object (after a successful prescan this cannot fail). */
enum kf_err kf__rd_skip(struct kf__rd *r);
/*
 * Structural validation of p[0..len) as exactly one msgpack object: every
 * length and count fits the bytes left, depth <= KF_MSG_MAX_DEPTH, at most
 * KF_MSG_MAX_OBJECTS objects, nothing after it. Allocates nothing.
 */
enum kf_err kf__prescan(const uint8_t *p, size_t len);

/* ---- schemas ------------------------------------------------------------ */

enum kf__fkind {
	KF__F_BOOL,
	KF__F_U32,
	KF__F_U64,
	KF__F_I32,
	KF__F_I64,
	KF__F_F64,
	KF__F_ENUM,      /* stored as a 4-byte enum; value in [lo, hi) */
	KF__F_STR,       /* const char *; max = byte limit */
	KF__F_STRUCT,    /* embedded struct; sub */
	KF__F_PSTRUCT,   /* const struct *; always optional */
	KF__F_ARRAY,     /* const struct * + size_t at off_n; max = count limit */
	KF__F_F64_FIXED, /* double[max]; wire array of <= 64, extra ignored, missing 0 */
	KF__F_U64_FIXED, /* uint64_t[max]; same rule */
	KF__F_VALUE,     /* struct kf_msg_value as [kind, value] */
	KF__F_HIST,      /* double *le at off, uint64_t *count at off2, size_t n at off_n;
	                  * wire: flat array le0, c0, le1, c1, ... */
};

struct kf__schema;

struct kf__field {
	const char *key;
	uint8_t kind;          /* enum kf__fkind */
	bool opt;              /* may be absent: NULL / 0 / empty, omitted on encode */
	uint32_t off;
	uint32_t off_n;
	uint32_t off2;
	uint32_t lo, hi;       /* KF__F_ENUM range */
	uint32_t max;          /* string bytes, array elements, fixed length */
	const struct kf__schema *sub;
};

struct kf__schema {
	const char *name;
	size_t size;
	size_t align;
	const struct kf__field *fields;
	size_t n_fields;       /* <= 64 */
	/* Semantic check after decode and before encode; may be NULL. */
	enum kf_err (*check)(const void *obj);
};

/* The body schema of a message type, NULL when unknown. */
const struct kf__schema *kf__schema_of(enum kf_msg_type type);

/* ---- codec -------------------------------------------------------------- */

struct kf__dec {
	struct kf__rd rd;
	struct kf__arena *arena;
	struct kf_strbuf *why;  /* may be NULL */
	bool failed;            /* `why` already holds the first error */
	int depth;
	const char *path_key[KF_MSG_MAX_DEPTH * 2 + 2];
	int64_t path_index[KF_MSG_MAX_DEPTH * 2 + 2]; /* -1 = a key, else an array index */
};

/* Decodes one map at d->rd into obj (zeroed, schema->size bytes). */
enum kf_err kf__decode_struct(struct kf__dec *d, const struct kf__schema *s, void *obj);
/* Records err with a path and printf-style reason in d->why (first error
 * only) and returns err. */
enum kf_err kf__dec_fail(struct kf__dec *d, enum kf_err err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Copies a validated text string (UTF-8, no NUL, <= max) into the arena. */
enum kf_err kf__dec_text(struct kf__dec *d, const struct kf__mp_obj *o, uint32_t max,
	const char **out);

/* Decodes the envelope map at d->rd into msg (phases: version, type,
 * envelope fields, body). msg->topic and msg->arena are left alone. */
enum kf_err kf__decode_envelope(struct kf__dec *d, struct kf_msg *msg);

/* Appends obj as a map to pk. */
enum kf_err kf__encode_struct(msgpack_packer *pk, const struct kf__schema *s, const void *obj);
/* Validates and packs one text string (NULL is KF_EINVAL). */
enum kf_err kf__encode_text(msgpack_packer *pk, const char *s, uint32_t max);

#endif
