/*
 * Unit tests for proto/ decoding of untrusted bytes: each malformed-input
 * class returns its exact error code, unknown keys are ignored, and a decode
 * never holds more memory than the documented bound.
 *
 * Inputs are built by hand with msgpack-c's packer (not with kf_msg_encode,
 * which refuses to produce most of them).
 */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "proto/internal.h" /* the arena, tested directly below */
#include "proto/proto.h"

/* ---- building raw messages ------------------------------------------ */

struct raw {
	struct kf_strbuf sb;
	msgpack_packer pk;
};

static int sb_write(void *data, const char *buf, size_t len)
{
	kf_strbuf_add(data, buf, len);
	return 0;
}

static void raw_init(struct raw *r)
{
	kf_strbuf_init(&r->sb, 0);
	msgpack_packer_init(&r->pk, &r->sb, sb_write);
}

static void pstr(msgpack_packer *pk, const char *s, size_t n)
{
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

static void key(msgpack_packer *pk, const char *k)
{
	pstr(pk, k, strlen(k));
}

static void bytes(struct raw *r, const char *b, size_t n)
{
	kf_strbuf_add(&r->sb, b, n);
}

/* Envelope map header and fields up to the body key "b"; the caller writes
 * the body next, then `extra` more key/value pairs. */
static void env_open(struct raw *r, uint64_t major, uint64_t type, unsigned extra)
{
	msgpack_packer *pk = &r->pk;
	msgpack_pack_map(pk, 7 + extra);
	key(pk, "v");
	msgpack_pack_uint64(pk, major);
	key(pk, "vm");
	msgpack_pack_uint64(pk, 0);
	key(pk, "t");
	msgpack_pack_uint64(pk, type);
	key(pk, "s");
	key(pk, "sender");
	key(pk, "q");
	msgpack_pack_uint64(pk, 1);
	key(pk, "ts");
	msgpack_pack_uint64(pk, 2);
	key(pk, "b");
}

typedef void (*val_fn)(msgpack_packer *pk);

static void v_str_w(msgpack_packer *pk) { key(pk, "w1"); }
static void v_u1(msgpack_packer *pk) { msgpack_pack_uint64(pk, 1); }
static void v_f(msgpack_packer *pk) { msgpack_pack_double(pk, 0.5); }

static const struct {
	const char *key;
	val_fn val;
} hb_fields[] = {
	{ "w", v_str_w }, { "host", v_str_w }, { "pid", v_u1 }, { "inc", v_u1 },
	{ "st", v_u1 }, { "cp", v_f }, { "ch", v_f }, { "rss", v_u1 }, { "sl", v_u1 },
	{ "sb", v_u1 }, { "j", v_u1 }, { "jp", v_f }, { "jc", v_f }, { "up", v_u1 },
};
#define HB_N (sizeof hb_fields / sizeof hb_fields[0])

/* A heartbeat body with `omit` left out and `k` set to `val` (replacing or
 * adding). */
static void hb_body(msgpack_packer *pk, const char *omit, const char *k, val_fn val)
{
	size_t n = HB_N;
	bool replaces = false;
	for (size_t i = 0; i < HB_N; i++) {
		if (omit && !strcmp(hb_fields[i].key, omit))
			n--;
		if (k && !strcmp(hb_fields[i].key, k))
			replaces = true;
	}
	if (k && !replaces)
		n++;
	msgpack_pack_map(pk, n);
	for (size_t i = 0; i < HB_N; i++) {
		if (omit && !strcmp(hb_fields[i].key, omit))
			continue;
		key(pk, hb_fields[i].key);
		(k && !strcmp(hb_fields[i].key, k) ? val : hb_fields[i].val)(pk);
	}
	if (k && !replaces) {
		key(pk, k);
		val(pk);
	}
}

static void hb_msg(struct raw *r, const char *omit, const char *k, val_fn val)
{
	raw_init(r);
	env_open(r, KF_PROTO_MAJOR, KF_MSG_HEARTBEAT, 0);
	hb_body(&r->pk, omit, k, val);
}

/* Decodes and checks the exact code; a failure prints the decoder's reason. */
static void expect_bytes(const void *buf, size_t len, enum kf_err want)
{
	struct kf_msg *m = (struct kf_msg *)&m; /* must be overwritten */
	struct kf_strbuf why = KF_STRBUF_INIT;
	enum kf_err got = kf_msg_decode(buf, len, &m, &why);
	if (got != want)
		fail_msg("want %s, got %s (%s)", kf_errname(want), kf_errname(got), why.buf);
	if (want == KF_OK) {
		assert_non_null(m);
		kf_msg_free(m);
	} else {
		assert_null(m);
		assert_true(why.len > 0);
	}
	kf_strbuf_release(&why);
}

static void expect(struct raw *r, enum kf_err want)
{
	expect_bytes(r->sb.buf, r->sb.len, want);
	kf_strbuf_release(&r->sb);
}

static void hb_expect(const char *omit, const char *k, val_fn val, enum kf_err want)
{
	struct raw r;
	hb_msg(&r, omit, k, val);
	expect(&r, want);
}

/* ---- valid baselines ------------------------------------------------------ */

static void test_baseline_valid(void **state)
{
	(void)state;
	struct raw r;
	struct kf_msg *m;
	hb_msg(&r, NULL, NULL, NULL);
	assert_int_equal(kf_msg_decode(r.sb.buf, r.sb.len, &m, NULL), KF_OK);
	assert_string_equal(m->heartbeat.worker_id, "w1");
	assert_int_equal(m->heartbeat.state, KF_WORKER_BUSY);
	assert_true(m->heartbeat.cpu_host == 0.5);
	assert_string_equal(m->sender, "sender");
	kf_msg_free(m);
	kf_strbuf_release(&r.sb);
}

/* ---- truncated and trailing ----------------------------------------------- */

static void encode_log(struct kf_strbuf *sb)
{
	static const struct kf_msg_field f[] = {
		{ "a", { .kind = KF_VALUE_STR, .str = "xyz" } },
		{ "b", { .kind = KF_VALUE_F64, .f64 = 1.5 } },
	};
	static const struct kf_msg_span sp[] = { { "s", f, 2 } };
	struct kf_msg m = { .type = KF_MSG_LOG, .sender = "w", .seq = 70000, .ts_ns = 1ull << 40 };
	m.log = (struct kf_msg_log){ KF_MSG_LEVEL_INFO, "t", "message", f, 2, sp, 1, 0, NULL };
	assert_int_equal(kf_msg_encode(&m, sb), KF_OK);
}

static void test_truncated_every_prefix(void **state)
{
	(void)state;
	struct kf_strbuf sb = KF_STRBUF_INIT;
	encode_log(&sb);
	expect_bytes(sb.buf, sb.len, KF_OK);
	for (size_t len = 0; len < sb.len; len++) {
		/* A private copy, so ASan sees any read past len. */
		char *copy = malloc(len ? len : 1);
		memcpy(copy, sb.buf, len);
		expect_bytes(copy, len, KF_ETRUNCATED);
		free(copy);
	}
	kf_strbuf_release(&sb);
}

static void test_trailing(void **state)
{
	(void)state;
	struct kf_strbuf sb = KF_STRBUF_INIT;
	encode_log(&sb);
	size_t one = sb.len;
	kf_strbuf_addch(&sb, '\0');
	expect_bytes(sb.buf, sb.len, KF_ETRAILING);
	sb.len = one;
	encode_log(&sb); /* two envelopes back to back */
	expect_bytes(sb.buf, sb.len, KF_ETRAILING);
	kf_strbuf_release(&sb);
}

/* ---- wrong types ---------------------------------------------------------- */

static void v_str_1(msgpack_packer *pk) { key(pk, "1"); }
static void v_bin(msgpack_packer *pk) { msgpack_pack_bin(pk, 2); msgpack_pack_bin_body(pk, "w1", 2); }
static void v_array(msgpack_packer *pk) { msgpack_pack_array(pk, 0); }
static void v_true(msgpack_packer *pk) { msgpack_pack_true(pk); }
static void v_u2(msgpack_packer *pk) { msgpack_pack_uint64(pk, 2); }
static void v_neg(msgpack_packer *pk) { msgpack_pack_int64(pk, -1); }
static void v_nil(msgpack_packer *pk) { msgpack_pack_nil(pk); }

static void test_wrong_types(void **state)
{
	(void)state;
	struct raw r;
	hb_expect(NULL, "pid", v_str_1, KF_ETYPE);
	hb_expect(NULL, "w", v_u1, KF_ETYPE);
	hb_expect(NULL, "w", v_bin, KF_ETYPE);     /* bytes are not text */
	hb_expect(NULL, "cp", v_str_1, KF_ETYPE);
	hb_expect(NULL, "cp", v_true, KF_ETYPE);
	hb_expect(NULL, "st", v_f, KF_ETYPE);
	hb_expect(NULL, "up", v_array, KF_ETYPE);
	hb_expect(NULL, "cp", v_u2, KF_OK);         /* a whole number is a fine double */

	/* The envelope must be a map. */
	raw_init(&r);
	msgpack_pack_array(&r.pk, 1);
	msgpack_pack_uint64(&r.pk, 1);
	expect(&r, KF_ETYPE);
	raw_init(&r);
	msgpack_pack_uint64(&r.pk, 5);
	expect(&r, KF_ETYPE);

	/* Envelope fields. */
	raw_init(&r);
	msgpack_pack_map(&r.pk, 6);
	key(&r.pk, "v"); msgpack_pack_uint64(&r.pk, 1);
	key(&r.pk, "t"); key(&r.pk, "1");
	key(&r.pk, "s"); key(&r.pk, "x");
	key(&r.pk, "q"); msgpack_pack_uint64(&r.pk, 1);
	key(&r.pk, "ts"); msgpack_pack_uint64(&r.pk, 1);
	key(&r.pk, "b"); msgpack_pack_map(&r.pk, 0);
	expect(&r, KF_ETYPE);

	raw_init(&r);
	env_open(&r, 1, KF_MSG_HEARTBEAT, 0);
	msgpack_pack_array(&r.pk, 0); /* body not a map */
	expect(&r, KF_ETYPE);

	/* A map key that is not a string, in the body and in the envelope. */
	raw_init(&r);
	env_open(&r, 1, KF_MSG_CLUSTER_REQ, 0);
	msgpack_pack_map(&r.pk, 1);
	msgpack_pack_uint64(&r.pk, 7);
	msgpack_pack_uint64(&r.pk, 7);
	expect(&r, KF_ETYPE);
	raw_init(&r);
	env_open(&r, 1, KF_MSG_HEARTBEAT, 1);
	hb_body(&r.pk, NULL, NULL, NULL);
	msgpack_pack_nil(&r.pk);
	msgpack_pack_nil(&r.pk);
	expect(&r, KF_ETYPE);
}

/* A log body whose one field value is written by `val`. */
static void log_with_value(struct raw *r, val_fn val)
{
	msgpack_packer *pk = &r->pk;
	raw_init(r);
	env_open(r, 1, KF_MSG_LOG, 0);
	msgpack_pack_map(pk, 4);
	key(pk, "l"); msgpack_pack_uint64(pk, 3);
	key(pk, "tg"); key(pk, "t");
	key(pk, "m"); key(pk, "m");
	key(pk, "f");
	msgpack_pack_array(pk, 2);
	msgpack_pack_map(pk, 2);
	key(pk, "n"); key(pk, "ok");
	key(pk, "v"); msgpack_pack_array(pk, 2); msgpack_pack_uint64(pk, 0); key(pk, "s");
	msgpack_pack_map(pk, 2);
	key(pk, "n"); key(pk, "x");
	key(pk, "v"); val(pk);
}

static void val_bool_as_str(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 2);
	msgpack_pack_uint64(pk, KF_VALUE_BOOL);
	key(pk, "yes");
}
static void val_three(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 3);
	msgpack_pack_uint64(pk, KF_VALUE_U64);
	msgpack_pack_uint64(pk, 1);
	msgpack_pack_uint64(pk, 1);
}
static void val_kind_9(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 2);
	msgpack_pack_uint64(pk, 9);
	msgpack_pack_uint64(pk, 1);
}
static void val_u64_neg(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 2);
	msgpack_pack_uint64(pk, KF_VALUE_U64);
	msgpack_pack_int64(pk, -5);
}
static void val_i64_pos(msgpack_packer *pk)
{
	/* msgpack-c packs a positive int64 as uint: still an i64 field. */
	msgpack_pack_array(pk, 2);
	msgpack_pack_uint64(pk, KF_VALUE_I64);
	msgpack_pack_int64(pk, 5);
}
static void val_i64_too_big(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 2);
	msgpack_pack_uint64(pk, KF_VALUE_I64);
	msgpack_pack_uint64(pk, (uint64_t)INT64_MAX + 1);
}
static void val_bad_utf8(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 2);
	msgpack_pack_uint64(pk, KF_VALUE_STR);
	pstr(pk, "ok\xed\xa0\x80", 5); /* a UTF-16 surrogate */
}

static void test_log_values(void **state)
{
	(void)state;
	static const struct {
		val_fn val;
		enum kf_err want;
	} cases[] = {
		{ val_bool_as_str, KF_ETYPE }, { val_three, KF_ETYPE }, { val_kind_9, KF_ERANGE },
		{ val_u64_neg, KF_ERANGE }, { val_i64_pos, KF_OK }, { val_i64_too_big, KF_ERANGE },
		{ val_bad_utf8, KF_EUTF8 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct raw r;
		log_with_value(&r, cases[i].val);
		expect(&r, cases[i].want);
	}
}

/* ---- ranges ------------------------------------------------------------- */

static void v_u3(msgpack_packer *pk) { msgpack_pack_uint64(pk, 3); }
static void v_2p32(msgpack_packer *pk) { msgpack_pack_uint64(pk, 1ull << 32); }

static void test_ranges(void **state)
{
	(void)state;
	hb_expect(NULL, "st", v_u3, KF_ERANGE);   /* worker states end at draining = 2 */
	hb_expect(NULL, "st", v_u2, KF_OK);
	hb_expect(NULL, "pid", v_2p32, KF_ERANGE);
	hb_expect(NULL, "pid", v_neg, KF_ERANGE);
	hb_expect(NULL, "rss", v_neg, KF_ERANGE);

	/* complete: the outcome must be final. */
	struct raw r;
	raw_init(&r);
	env_open(&r, 1, KF_MSG_COMPLETE_REQ, 0);
	msgpack_pack_map(&r.pk, 4);
	key(&r.pk, "h");
	msgpack_pack_map(&r.pk, 1);
	key(&r.pk, "id");
	msgpack_pack_map(&r.pk, 2);
	key(&r.pk, "c"); msgpack_pack_uint64(&r.pk, 1);
	key(&r.pk, "n"); msgpack_pack_uint64(&r.pk, 1);
	key(&r.pk, "j"); msgpack_pack_uint64(&r.pk, 1);
	key(&r.pk, "lt"); msgpack_pack_uint64(&r.pk, 1);
	size_t at = r.sb.len;
	key(&r.pk, "o"); msgpack_pack_uint64(&r.pk, KF_JOB_RUNNING);
	expect_bytes(r.sb.buf, r.sb.len, KF_ERANGE);
	r.sb.len = at;
	key(&r.pk, "o"); msgpack_pack_uint64(&r.pk, KF_JOB_SUCCEEDED);
	expect(&r, KF_OK);
}

/* ---- sizes ----------------------------------------------------------------- */

static char big_text[KF_MSG_MAX_TEXT + 2];

static void v_name_max(msgpack_packer *pk) { pstr(pk, big_text, KF_MSG_MAX_NAME); }
static void v_name_over(msgpack_packer *pk) { pstr(pk, big_text, KF_MSG_MAX_NAME + 1); }

/* A log event with a message of n bytes and `nfields` nil fields. */
static void log_sized(struct raw *r, size_t n, uint32_t nfields)
{
	msgpack_packer *pk = &r->pk;
	raw_init(r);
	env_open(r, 1, KF_MSG_LOG, 0);
	msgpack_pack_map(pk, 4);
	key(pk, "l"); msgpack_pack_uint64(pk, 1);
	key(pk, "tg"); key(pk, "t");
	key(pk, "m"); pstr(pk, big_text, n);
	key(pk, "f");
	msgpack_pack_array(pk, nfields);
	for (uint32_t i = 0; i < nfields; i++)
		msgpack_pack_nil(pk);
}

/* A body {key: [n nils]} of the given type, after a valid reply header. */
static void rep_array(struct raw *r, enum kf_msg_type type, const char *k, uint32_t n)
{
	msgpack_packer *pk = &r->pk;
	raw_init(r);
	env_open(r, 1, type, 0);
	msgpack_pack_map(pk, 1);
	key(pk, k);
	msgpack_pack_array(pk, n);
	for (uint32_t i = 0; i < n; i++)
		msgpack_pack_nil(pk);
}

static void test_oversize(void **state)
{
	(void)state;
	struct raw r;
	memset(big_text, 'a', sizeof big_text);
	hb_expect(NULL, "w", v_name_max, KF_OK);
	hb_expect(NULL, "w", v_name_over, KF_ETOOBIG);

	log_sized(&r, KF_MSG_MAX_TEXT, 0);
	expect(&r, KF_OK);
	log_sized(&r, KF_MSG_MAX_TEXT + 1, 0);
	expect(&r, KF_ETOOBIG);
	/* The count is checked before any element is looked at (nil elements
	 * would be KF_ETYPE otherwise). */
	log_sized(&r, 1, KF_MSG_MAX_FIELDS + 1);
	expect(&r, KF_ETOOBIG);
	log_sized(&r, 1, 1);
	expect(&r, KF_ETYPE);

	rep_array(&r, KF_MSG_METRIC, "s", KF_MSG_MAX_SERIES + 1);
	expect(&r, KF_ETOOBIG);
	rep_array(&r, KF_MSG_LIST_REP, "jobs", KF_MSG_MAX_JOBS + 1);
	expect(&r, KF_ETOOBIG);
	rep_array(&r, KF_MSG_LOG_TAIL_REP, "ev", KF_MSG_MAX_EVENTS + 1);
	expect(&r, KF_ETOOBIG);
	rep_array(&r, KF_MSG_CLUSTER_STATUS, "jc", 65); /* fixed arrays: 64 at most */
	expect(&r, KF_ETOOBIG);

	/* Whole message over the limit: refused before it is even scanned. */
	size_t n = KF_MSG_MAX_BYTES + 1;
	char *huge = calloc(1, n);
	expect_bytes(huge, n, KF_ETOOBIG);
	free(huge);

	/* More objects than KF_MSG_MAX_OBJECTS, in an ignored key. */
	raw_init(&r);
	env_open(&r, 1, KF_MSG_HEARTBEAT, 1);
	hb_body(&r.pk, NULL, NULL, NULL);
	key(&r.pk, "junk");
	msgpack_pack_array(&r.pk, KF_MSG_MAX_OBJECTS);
	for (uint32_t i = 0; i < KF_MSG_MAX_OBJECTS; i++)
		msgpack_pack_nil(&r.pk);
	expect(&r, KF_ETOOBIG);
}

/* ---- nesting ------------------------------------------------------------ */

/* A heartbeat with an extra key holding `levels` nested arrays. */
static void nested(struct raw *r, int levels)
{
	raw_init(r);
	env_open(r, 1, KF_MSG_HEARTBEAT, 0);
	msgpack_pack_map(&r->pk, HB_N + 1);
	for (size_t i = 0; i < HB_N; i++) {
		key(&r->pk, hb_fields[i].key);
		hb_fields[i].val(&r->pk);
	}
	key(&r->pk, "deep");
	for (int i = 0; i < levels; i++)
		msgpack_pack_array(&r->pk, i + 1 < levels ? 1 : 0);
}

static void test_too_deep(void **state)
{
	(void)state;
	struct raw r;
	/* envelope (1) + body (2) + 14 arrays = 16 levels: allowed. */
	nested(&r, KF_MSG_MAX_DEPTH - 2);
	expect(&r, KF_OK);
	nested(&r, KF_MSG_MAX_DEPTH - 1);
	expect(&r, KF_ETOODEEP);

	/* Deep before anything else: depth is found by the pre-scan. */
	char deep[KF_MSG_MAX_DEPTH + 1];
	memset(deep, 0x91, sizeof deep);
	deep[KF_MSG_MAX_DEPTH] = (char)0x90;
	expect_bytes(deep, sizeof deep, KF_ETOODEEP);
	expect_bytes(deep + 1, sizeof deep - 1, KF_ETYPE); /* 16 deep, but not a map */
}

/* ---- huge declared lengths ----------------------------------------------- */

static void test_huge_declared_lengths(void **state)
{
	(void)state;
	static const struct {
		const char *bytes;
		size_t len;
	} cases[] = {
		{ "\xdd\xee\x6b\x28\x00", 5 },         /* array32 of 4e9 elements */
		{ "\xdf\xff\xff\xff\xff", 5 },         /* map32 of 2^32-1 pairs */
		{ "\xdb\xff\xff\xff\xff", 5 },         /* str32 of 4 GiB */
		{ "\xc6\xff\xff\xff\xff", 5 },         /* bin32 */
		{ "\xc9\xff\xff\xff\xff\x01", 6 },     /* ext32 */
		{ "\xdc\xff\xff\xc0\xc0\xc0", 6 },     /* array16 of 65535, 3 present */
		{ "\x81\xa1v\xdd\xee\x6b\x28\x00", 8 }, /* inside a map */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		expect_bytes(cases[i].bytes, cases[i].len, KF_ETRUNCATED);

	/* Inside a valid envelope, under an ignored key. */
	struct raw r;
	raw_init(&r);
	env_open(&r, 1, KF_MSG_HEARTBEAT, 1);
	hb_body(&r.pk, NULL, NULL, NULL);
	key(&r.pk, "junk");
	bytes(&r, "\xdd\xee\x6b\x28\x00\xc0\xc0", 7);
	expect(&r, KF_ETRUNCATED);
}

/* ---- UTF-8 ----------------------------------------------------------------- */

static const char *bad_utf8[] = {
	"\xff", "\xc0\xaf" /* overlong '/' */, "\xed\xa0\x80" /* surrogate */,
	"\xe2\x9c" /* cut short */, "\xf4\x90\x80\x80" /* > U+10FFFF */,
};

static int utf8_case;
static void v_bad_utf8(msgpack_packer *pk)
{
	pstr(pk, bad_utf8[utf8_case], strlen(bad_utf8[utf8_case]));
}
static void v_nul(msgpack_packer *pk) { pstr(pk, "a\0b", 3); }
static void v_emoji(msgpack_packer *pk) { pstr(pk, "\xf0\x9f\x98\x80", 4); }

static void test_utf8(void **state)
{
	(void)state;
	for (utf8_case = 0; utf8_case < (int)(sizeof bad_utf8 / sizeof bad_utf8[0]); utf8_case++) {
		hb_expect(NULL, "host", v_bad_utf8, KF_EUTF8);
		/* The sender, in the envelope. */
		struct raw r;
		raw_init(&r);
		msgpack_pack_map(&r.pk, 6);
		key(&r.pk, "v"); msgpack_pack_uint64(&r.pk, 1);
		key(&r.pk, "t"); msgpack_pack_uint64(&r.pk, KF_MSG_CLUSTER_REQ);
		key(&r.pk, "s"); v_bad_utf8(&r.pk);
		key(&r.pk, "q"); msgpack_pack_uint64(&r.pk, 1);
		key(&r.pk, "ts"); msgpack_pack_uint64(&r.pk, 1);
		key(&r.pk, "b"); msgpack_pack_map(&r.pk, 1);
		key(&r.pk, "h"); msgpack_pack_map(&r.pk, 1);
		key(&r.pk, "id"); msgpack_pack_map(&r.pk, 2);
		key(&r.pk, "c"); msgpack_pack_uint64(&r.pk, 1);
		key(&r.pk, "n"); msgpack_pack_uint64(&r.pk, 1);
		expect(&r, KF_EUTF8);
	}
	hb_expect(NULL, "w", v_nul, KF_EUTF8);
	hb_expect(NULL, "w", v_emoji, KF_OK);
}

/* ---- type and version ------------------------------------------------------- */

static void test_unknown_type(void **state)
{
	(void)state;
	static const uint64_t types[] = { 0, 7, 31, 56, 99, 126, 128, 65536, UINT64_MAX };
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
		struct raw r;
		raw_init(&r);
		env_open(&r, 1, types[i], 0);
		msgpack_pack_map(&r.pk, 0);
		expect(&r, KF_EUNKNOWNTYPE);
	}
}

static void test_version(void **state)
{
	(void)state;
	struct raw r;
	struct kf_msg *m;
	/* Newer major: refused before type and body are looked at. */
	raw_init(&r);
	env_open(&r, KF_PROTO_MAJOR + 1, 999, 0);
	msgpack_pack_uint64(&r.pk, 5);
	expect(&r, KF_EVERSION);
	raw_init(&r);
	env_open(&r, 0, KF_MSG_HEARTBEAT, 0);
	hb_body(&r.pk, NULL, NULL, NULL);
	expect(&r, KF_EVERSION);
	raw_init(&r);
	env_open(&r, UINT64_MAX, KF_MSG_HEARTBEAT, 0);
	hb_body(&r.pk, NULL, NULL, NULL);
	expect(&r, KF_EVERSION);

	/* Newer minor with an unknown envelope key and unknown body keys: fine. */
	raw_init(&r);
	msgpack_pack_map(&r.pk, 8);
	key(&r.pk, "zz"); msgpack_pack_map(&r.pk, 1); key(&r.pk, "a"); v_array(&r.pk);
	key(&r.pk, "v"); msgpack_pack_uint64(&r.pk, KF_PROTO_MAJOR);
	key(&r.pk, "vm"); msgpack_pack_uint64(&r.pk, 9);
	key(&r.pk, "t"); msgpack_pack_uint64(&r.pk, KF_MSG_HEARTBEAT);
	key(&r.pk, "s"); key(&r.pk, "x");
	key(&r.pk, "q"); msgpack_pack_uint64(&r.pk, 1);
	key(&r.pk, "ts"); msgpack_pack_uint64(&r.pk, 1);
	key(&r.pk, "b"); hb_body(&r.pk, NULL, "new_field", v_bin);
	assert_int_equal(kf_msg_decode(r.sb.buf, r.sb.len, &m, NULL), KF_OK);
	assert_int_equal(m->minor, 9);
	assert_int_equal(m->heartbeat.pid, 1);
	kf_msg_free(m);
	kf_strbuf_release(&r.sb);
}

/* ---- missing fields ---------------------------------------------------------- */

static void test_missing(void **state)
{
	(void)state;
	static const char *const env_keys[] = { "v", "t", "s", "q", "ts", "b" };
	hb_expect("pid", NULL, NULL, KF_EMISSING);
	hb_expect("w", NULL, NULL, KF_EMISSING);
	hb_expect(NULL, "pid", v_nil, KF_EMISSING); /* nil is absent */
	hb_expect(NULL, "host", v_nil, KF_EMISSING);

	for (size_t omit = 0; omit <= 6; omit++) { /* 6: none omitted */
		struct raw r;
		raw_init(&r);
		msgpack_pack_map(&r.pk, omit < 6 ? 5 : 6);
		for (size_t i = 0; i < 6; i++) {
			if (i == omit)
				continue;
			key(&r.pk, env_keys[i]);
			if (i == 2) {
				key(&r.pk, "x");
			} else if (i == 5) { /* a complete error reply body */
				msgpack_pack_map(&r.pk, 1);
				key(&r.pk, "h"); msgpack_pack_map(&r.pk, 2);
				key(&r.pk, "id"); msgpack_pack_map(&r.pk, 2);
				key(&r.pk, "c"); msgpack_pack_uint64(&r.pk, 1);
				key(&r.pk, "n"); msgpack_pack_uint64(&r.pk, 1);
				key(&r.pk, "st"); msgpack_pack_uint64(&r.pk, 1);
			} else
				msgpack_pack_uint64(&r.pk, i == 1 ? KF_MSG_ERROR_REP : 1);
		}
		expect(&r, omit < 6 ? KF_EMISSING : KF_OK);
	}
}

/* ---- malformed ----------------------------------------------------------------- */

static void v_c1(msgpack_packer *pk)
{
	msgpack_pack_str(pk, 1);
	msgpack_pack_str_body(pk, "a", 1);
	/* overwritten below: a reserved byte as the value of the next key */
}

static void test_malformed(void **state)
{
	(void)state;
	struct raw r;
	expect_bytes("\xc1", 1, KF_EMALFORMED);
	expect_bytes("\x81\xa1v\xc1", 4, KF_EMALFORMED);

	hb_msg(&r, NULL, "zz", v_c1);
	r.sb.buf[r.sb.len - 2] = (char)0xc1; /* replaces the str header */
	expect(&r, KF_EMALFORMED);

	/* Duplicate key in the body and in the envelope. */
	raw_init(&r);
	env_open(&r, 1, KF_MSG_HEARTBEAT, 0);
	msgpack_pack_map(&r.pk, HB_N + 1);
	for (size_t i = 0; i < HB_N; i++) {
		key(&r.pk, hb_fields[i].key);
		hb_fields[i].val(&r.pk);
	}
	key(&r.pk, "pid");
	msgpack_pack_uint64(&r.pk, 2);
	expect(&r, KF_EMALFORMED);

	raw_init(&r);
	env_open(&r, 1, KF_MSG_HEARTBEAT, 1);
	hb_body(&r.pk, NULL, NULL, NULL);
	key(&r.pk, "q");
	msgpack_pack_uint64(&r.pk, 2);
	expect(&r, KF_EMALFORMED);
}

/* ---- error text names the place ----------------------------------------------- */

static void val_u64_1(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 2);
	msgpack_pack_uint64(pk, KF_VALUE_U64);
	msgpack_pack_uint64(pk, 1);
}

static void test_why_names_the_path(void **state)
{
	(void)state;
	struct raw r;
	struct kf_msg *m;
	struct kf_strbuf why = KF_STRBUF_INIT;
	log_with_value(&r, val_kind_9);
	assert_int_equal(kf_msg_decode(r.sb.buf, r.sb.len, &m, &why), KF_ERANGE);
	assert_string_equal(why.buf, "b.f[1].v: integer out of range 0..4");
	kf_strbuf_release(&r.sb);
	kf_strbuf_reset(&why);

	hb_msg(&r, "host", NULL, NULL);
	assert_int_equal(kf_msg_decode(r.sb.buf, r.sb.len, &m, &why), KF_EMISSING);
	assert_string_equal(why.buf, "b: required field \"host\" of struct kf_msg_heartbeat missing");
	kf_strbuf_release(&r.sb);
	kf_strbuf_reset(&why);

	log_with_value(&r, val_u64_1);
	assert_int_equal(kf_msg_decode(r.sb.buf, r.sb.len - 1, &m, &why), KF_ETRUNCATED);
	assert_string_equal(why.buf, "not one well-formed msgpack value: message truncated");
	kf_strbuf_release(&r.sb);
	kf_strbuf_release(&why);
}

/* ---- pub/sub framing errors ------------------------------------------------ */

static void test_pub_errors(void **state)
{
	(void)state;
	struct kf_msg *m = NULL;
	struct kf_strbuf sb = KF_STRBUF_INIT;
	assert_int_equal(kf_msg_decode_pub("log.INFO.x", 10, &m, NULL), KF_ETOPIC);
	assert_null(m);
	assert_int_equal(kf_msg_decode_pub("log\tx\0\x80", 7, &m, NULL), KF_ETOPIC);
	assert_int_equal(kf_msg_decode_pub("log.x\0", 6, &m, NULL), KF_ETRUNCATED);
	kf_strbuf_add(&sb, "hb.w1", 6);
	encode_log(&sb);
	assert_int_equal(kf_msg_decode_pub(sb.buf, sb.len, &m, NULL), KF_OK);
	assert_string_equal(m->topic, "hb.w1");
	kf_msg_free(m);
	assert_int_equal(kf_msg_decode_pub(sb.buf, sb.len - 1, &m, NULL), KF_ETRUNCATED);
	kf_strbuf_release(&sb);
}

/* ---- memory bound ------------------------------------------------------------ */

/* Bytes malloc has handed out and not taken back. */
static size_t heap_in_use(void)
{
	return mallinfo2().uordblks;
}

static void expect_bounded(struct raw *r, enum kf_err want)
{
	struct kf_msg *m;
	size_t before = heap_in_use();
	assert_int_equal(kf_msg_decode(r->sb.buf, r->sb.len, &m, NULL), want);
	size_t held = heap_in_use() - before;
	/* proto/msg.h promises about 16 * len + 16 KiB; malloc headers and the
	 * arena's last chunk come on top. */
	assert_true(held <= 16 * r->sb.len + 96 * 1024);
	kf_msg_free(m);
	kf_strbuf_release(&r->sb);
}

static void test_memory_bound(void **state)
{
	(void)state;
	struct raw r;
	/* The densest structs on the wire: metric series {n:"",t:0,v:0}. */
	raw_init(&r);
	env_open(&r, 1, KF_MSG_METRIC, 0);
	msgpack_pack_map(&r.pk, 4);
	key(&r.pk, "full"); msgpack_pack_false(&r.pk);
	key(&r.pk, "src"); key(&r.pk, "");
	key(&r.pk, "inc"); msgpack_pack_uint64(&r.pk, 0);
	key(&r.pk, "s"); msgpack_pack_array(&r.pk, KF_MSG_MAX_SERIES);
	for (int i = 0; i < KF_MSG_MAX_SERIES; i++) {
		msgpack_pack_map(&r.pk, 3);
		key(&r.pk, "n"); key(&r.pk, "");
		key(&r.pk, "t"); msgpack_pack_uint64(&r.pk, 0);
		key(&r.pk, "v"); msgpack_pack_uint64(&r.pk, 0);
	}
	expect_bounded(&r, KF_OK);

	/* Spans with empty names: 4 wire bytes for a 24-byte struct. */
	raw_init(&r);
	env_open(&r, 1, KF_MSG_LOG_TAIL_REP, 0);
	msgpack_pack_map(&r.pk, 2);
	key(&r.pk, "h"); msgpack_pack_map(&r.pk, 2);
	key(&r.pk, "id"); msgpack_pack_map(&r.pk, 2);
	key(&r.pk, "c"); msgpack_pack_uint64(&r.pk, 0);
	key(&r.pk, "n"); msgpack_pack_uint64(&r.pk, 0);
	key(&r.pk, "st"); msgpack_pack_uint64(&r.pk, 0);
	key(&r.pk, "ev"); msgpack_pack_array(&r.pk, KF_MSG_MAX_EVENTS);
	for (int i = 0; i < KF_MSG_MAX_EVENTS; i++) {
		msgpack_pack_map(&r.pk, 4);
		key(&r.pk, "l"); msgpack_pack_uint64(&r.pk, 1);
		key(&r.pk, "tg"); key(&r.pk, "");
		key(&r.pk, "m"); key(&r.pk, "");
		key(&r.pk, "sp"); msgpack_pack_array(&r.pk, KF_MSG_MAX_SPANS);
		for (int j = 0; j < KF_MSG_MAX_SPANS; j++) {
			msgpack_pack_map(&r.pk, 1);
			key(&r.pk, "n"); key(&r.pk, "");
		}
	}
	expect_bounded(&r, KF_OK);
}

/* The arena is the decoder's last line against amplification: it refuses
 * past its budget. Real messages stay well under it (see above), so it is
 * exercised directly. */
static void test_arena_budget(void **state)
{
	(void)state;
	struct kf__arena *a = kf__arena_new(100);
	void *p, *q;
	assert_non_null(a);
	assert_int_equal(kf__arena_alloc(a, 1, 1, &p), KF_OK);
	assert_int_equal(kf__arena_alloc(a, 8, 8, &q), KF_OK);
	assert_int_equal((uintptr_t)q % 8, 0);
	assert_ptr_equal(q, (char *)p + 8); /* 7 bytes of padding */
	assert_int_equal(kf__arena_alloc(a, 85, 1, &p), KF_ETOOBIG); /* 16 + 85 > 100 */
	assert_null(p);
	assert_int_equal(kf__arena_alloc(a, 84, 1, &p), KF_OK);
	assert_int_equal(kf__arena_alloc(a, 1, 1, &p), KF_ETOOBIG);
	assert_int_equal(kf__arena_alloc(a, SIZE_MAX, 8, &p), KF_ETOOBIG);
	kf__arena_free(a);
	kf__arena_free(NULL);

	/* Bigger than a chunk: gets a chunk of its own, zeroed. */
	a = kf__arena_new(1 << 20);
	unsigned char *big;
	assert_int_equal(kf__arena_alloc(a, 200000, 8, (void **)&big), KF_OK);
	for (size_t i = 0; i < 200000; i += 4096)
		assert_int_equal(big[i], 0);
	kf__arena_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_baseline_valid),
		cmocka_unit_test(test_truncated_every_prefix),
		cmocka_unit_test(test_trailing),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_log_values),
		cmocka_unit_test(test_ranges),
		cmocka_unit_test(test_oversize),
		cmocka_unit_test(test_too_deep),
		cmocka_unit_test(test_huge_declared_lengths),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_unknown_type),
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_missing),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_why_names_the_path),
		cmocka_unit_test(test_pub_errors),
		cmocka_unit_test(test_memory_bound),
		cmocka_unit_test(test_arena_budget),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
