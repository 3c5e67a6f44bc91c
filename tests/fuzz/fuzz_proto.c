/*
 * fuzz_proto.c — libFuzzer target for proto/ decoding.
 *
 * Each input is decoded three ways:
 *   1. as an envelope (kf_msg_decode),
 *   2. as pub/sub framing (kf_msg_decode_pub),
 *   3. as the BODY of a valid envelope whose type is chosen by the first byte,
 *      so that every body decoder is reached without the fuzzer having to
 *      discover the envelope first.
 * Whatever decodes must re-encode, decode again and re-encode to the same
 * bytes (encode(decode(x)) is a fixed point); a violation aborts.
 *
 * Built as a libFuzzer binary with -Dfuzz=true (clang) and, in every build,
 * into a replay program (replay.c) that feeds the seed corpus through the
 * same function: meson test --suite fuzz-seeds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "proto/proto.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const enum kf_msg_type types[] = {
	KF_MSG_HEARTBEAT, KF_MSG_LOG, KF_MSG_METRIC, KF_MSG_JOB_EVENT, KF_MSG_CLUSTER_STATUS,
	KF_MSG_COMMAND, KF_MSG_HELLO_REQ, KF_MSG_HELLO_REP, KF_MSG_LEASE_REQ, KF_MSG_LEASE_REP,
	KF_MSG_PROGRESS_REQ, KF_MSG_PROGRESS_REP, KF_MSG_COMPLETE_REQ, KF_MSG_COMPLETE_REP,
	KF_MSG_SUBMIT_REQ, KF_MSG_SUBMIT_REP, KF_MSG_LIST_REQ, KF_MSG_LIST_REP, KF_MSG_GET_REQ,
	KF_MSG_GET_REP, KF_MSG_KILL_REQ, KF_MSG_KILL_REP, KF_MSG_RETRY_REQ, KF_MSG_RETRY_REP,
	KF_MSG_CLUSTER_REQ, KF_MSG_CLUSTER_REP, KF_MSG_LOG_TAIL_REQ, KF_MSG_LOG_TAIL_REP,
	KF_MSG_ERROR_REP,
};

/* encode(decode(x)) must decode and re-encode to itself. */
static void check_fixed_point(const struct kf_msg *msg)
{
	struct kf_strbuf a = KF_STRBUF_INIT, b = KF_STRBUF_INIT;
	struct kf_msg *again = NULL;
	enum kf_err err = kf_msg_encode(msg, &a);
	/* Floats sent as small integers grow to 9 bytes when re-encoded. */
	if (err == KF_ETOOBIG)
		goto out;
	CHECK(err == KF_OK, "a decoded message does not encode");
	CHECK(kf_msg_decode(a.buf, a.len, &again, NULL) == KF_OK, "re-encoded message does not decode");
	CHECK(again->type == msg->type, "type changed in a round trip");
	CHECK(kf_msg_encode(again, &b) == KF_OK, "second encode failed");
	CHECK(a.len == b.len && memcmp(a.buf, b.buf, a.len) == 0, "encoding is not a fixed point");
out:
	kf_msg_free(again);
	kf_strbuf_release(&a);
	kf_strbuf_release(&b);
}

static void decode_one(enum kf_err (*decode)(const void *, size_t, struct kf_msg **,
	struct kf_strbuf *), const void *buf, size_t len)
{
	struct kf_msg *msg = NULL;
	struct kf_strbuf why = KF_STRBUF_INIT;
	enum kf_err err = decode(buf, len, &msg, &why);
	CHECK((err == KF_OK) == (msg != NULL), "result and error disagree");
	CHECK(err == KF_OK || why.len > 0, "an error without an explanation");
	if (msg)
		check_fixed_point(msg);
	kf_msg_free(msg);
	kf_strbuf_release(&why);
}

static int sb_write(void *data, const char *buf, size_t len)
{
	kf_strbuf_add(data, buf, len);
	return 0;
}

/* A valid envelope of the type picked by data[0], with data[1..] as body. */
static void decode_as_body(const uint8_t *data, size_t size)
{
	if (size < 1)
		return;
	struct kf_strbuf sb = KF_STRBUF_INIT;
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, sb_write);
	msgpack_pack_map(&pk, 6);
	msgpack_pack_str(&pk, 1); msgpack_pack_str_body(&pk, "v", 1);
	msgpack_pack_uint8(&pk, KF_PROTO_MAJOR);
	msgpack_pack_str(&pk, 1); msgpack_pack_str_body(&pk, "t", 1);
	msgpack_pack_uint8(&pk, (uint8_t)types[data[0] % (sizeof types / sizeof types[0])]);
	msgpack_pack_str(&pk, 1); msgpack_pack_str_body(&pk, "s", 1);
	msgpack_pack_str(&pk, 1); msgpack_pack_str_body(&pk, "f", 1);
	msgpack_pack_str(&pk, 1); msgpack_pack_str_body(&pk, "q", 1);
	msgpack_pack_uint8(&pk, 1);
	msgpack_pack_str(&pk, 2); msgpack_pack_str_body(&pk, "ts", 2);
	msgpack_pack_uint8(&pk, 1);
	msgpack_pack_str(&pk, 1); msgpack_pack_str_body(&pk, "b", 1);
	kf_strbuf_add(&sb, data + 1, size - 1);
	if (!sb.oom) {
		/* Decode from an exact-size copy so ASan sees reads past the end. */
		void *copy = malloc(sb.len);
		if (copy) {
			memcpy(copy, sb.buf, sb.len);
			decode_one(kf_msg_decode, copy, sb.len);
			free(copy);
		}
	}
	kf_strbuf_release(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	decode_one(kf_msg_decode, data, size);
	decode_one(kf_msg_decode_pub, data, size);
	decode_as_body(data, size);
	return 0;
}
