/*
 * msg.c — the public face of proto/: envelope encode/decode, framing, and
 * the message type registry.
 */
#include "proto/internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "proto/topic.h"

/* Every request body starts with its kf_msg_req, every reply with its
 * kf_msg_rep: kf_msg_request()/kf_msg_reply() rely on it. */
#define AT0(T, m) static_assert(offsetof(T, m) == 0, #T " must start with " #m);
AT0(struct kf_msg_hello_req, req) AT0(struct kf_msg_lease_req, req)
AT0(struct kf_msg_progress_req, req) AT0(struct kf_msg_complete_req, req)
AT0(struct kf_msg_submit_req, req) AT0(struct kf_msg_list_req, req)
AT0(struct kf_msg_get_req, req) AT0(struct kf_msg_job_action_req, req)
AT0(struct kf_msg_cluster_req, req) AT0(struct kf_msg_log_tail_req, req)
AT0(struct kf_msg_drain_req, req)
AT0(struct kf_msg_hello_rep, rep) AT0(struct kf_msg_lease_rep, rep)
AT0(struct kf_msg_progress_rep, rep) AT0(struct kf_msg_complete_rep, rep)
AT0(struct kf_msg_submit_rep, rep) AT0(struct kf_msg_list_rep, rep)
AT0(struct kf_msg_get_rep, rep) AT0(struct kf_msg_job_action_rep, rep)
AT0(struct kf_msg_cluster_rep, rep) AT0(struct kf_msg_log_tail_rep, rep)
AT0(struct kf_msg_drain_rep, rep)
AT0(struct kf_msg_error_rep, rep)

/* Decoding may allocate this much per message at most (proto/msg.h). */
#define ARENA_BUDGET(len) (16 * (size_t)(len) + 16384)

static const struct {
	enum kf_msg_type type;
	const char *name;
} type_names[] = {
	{ KF_MSG_HEARTBEAT, "heartbeat" }, { KF_MSG_LOG, "log" }, { KF_MSG_METRIC, "metric" },
	{ KF_MSG_JOB_EVENT, "job_event" }, { KF_MSG_CLUSTER_STATUS, "cluster_status" },
	{ KF_MSG_COMMAND, "command" },
	{ KF_MSG_HELLO_REQ, "hello_req" }, { KF_MSG_HELLO_REP, "hello_rep" },
	{ KF_MSG_LEASE_REQ, "lease_req" }, { KF_MSG_LEASE_REP, "lease_rep" },
	{ KF_MSG_PROGRESS_REQ, "progress_req" }, { KF_MSG_PROGRESS_REP, "progress_rep" },
	{ KF_MSG_COMPLETE_REQ, "complete_req" }, { KF_MSG_COMPLETE_REP, "complete_rep" },
	{ KF_MSG_SUBMIT_REQ, "submit_req" }, { KF_MSG_SUBMIT_REP, "submit_rep" },
	{ KF_MSG_LIST_REQ, "list_req" }, { KF_MSG_LIST_REP, "list_rep" },
	{ KF_MSG_GET_REQ, "get_req" }, { KF_MSG_GET_REP, "get_rep" },
	{ KF_MSG_KILL_REQ, "kill_req" }, { KF_MSG_KILL_REP, "kill_rep" },
	{ KF_MSG_RETRY_REQ, "retry_req" }, { KF_MSG_RETRY_REP, "retry_rep" },
	{ KF_MSG_CLUSTER_REQ, "cluster_req" }, { KF_MSG_CLUSTER_REP, "cluster_rep" },
	{ KF_MSG_LOG_TAIL_REQ, "log_tail_req" }, { KF_MSG_LOG_TAIL_REP, "log_tail_rep" },
	{ KF_MSG_DRAIN_REQ, "drain_req" }, { KF_MSG_DRAIN_REP, "drain_rep" },
	{ KF_MSG_ERROR_REP, "error_rep" },
};

const char *kf_msg_type_name(enum kf_msg_type type)
{
	for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
		if (type_names[i].type == type)
			return type_names[i].name;
	return "unknown";
}

bool kf_msg_type_known(enum kf_msg_type type)
{
	return kf__schema_of(type) != NULL;
}

bool kf_msg_type_is_request(enum kf_msg_type type)
{
	return type >= KF_MSG_HELLO_REQ && type < KF_MSG_ERROR_REP && type % 2 == 0 &&
	       kf_msg_type_known(type);
}

bool kf_msg_type_is_reply(enum kf_msg_type type)
{
	return type == KF_MSG_ERROR_REP ||
	       (type > KF_MSG_HELLO_REQ && type % 2 == 1 && kf_msg_type_known(type));
}

enum kf_msg_type kf_msg_reply_type(enum kf_msg_type request_type)
{
	if (!kf_msg_type_is_request(request_type))
		return KF_MSG_ERROR_REP;
	return (enum kf_msg_type)(request_type + 1);
}

const struct kf_msg_req *kf_msg_request(const struct kf_msg *msg)
{
	return kf_msg_type_is_request(msg->type) ? &msg->hello_req.req : NULL;
}

const struct kf_msg_rep *kf_msg_reply(const struct kf_msg *msg)
{
	return kf_msg_type_is_reply(msg->type) ? &msg->hello_rep.rep : NULL;
}

struct kf_msg_req *kf_msg_request_mut(struct kf_msg *msg)
{
	return kf_msg_type_is_request(msg->type) ? &msg->hello_req.req : NULL;
}

struct kf_msg_rep *kf_msg_reply_mut(struct kf_msg *msg)
{
	return kf_msg_type_is_reply(msg->type) ? &msg->hello_rep.rep : NULL;
}

void kf_msg_init(struct kf_msg *msg, enum kf_msg_type type, const char *sender, uint64_t seq)
{
	memset(msg, 0, sizeof(*msg));
	msg->type = type;
	msg->sender = sender;
	msg->seq = seq;
	msg->ts_ns = kf_clock_wall_ns();
}

/* ---- encode -------------------------------------------------------------- */

static int strbuf_write(void *data, const char *buf, size_t len)
{
	struct kf_strbuf *sb = data;
	kf_strbuf_add(sb, buf, len);
	return sb->oom ? -1 : 0;
}

static void strbuf_truncate(struct kf_strbuf *sb, size_t len)
{
	sb->len = len;
	if (sb->alloc)
		sb->buf[len] = '\0';
}

static void pack_key(msgpack_packer *pk, const char *key)
{
	size_t n = strlen(key);
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, key, n);
}

static enum kf_err encode_envelope(const struct kf_msg *msg, struct kf_strbuf *out)
{
	const struct kf__schema *body = kf__schema_of(msg->type);
	if (!body)
		return KF_EUNKNOWNTYPE;
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, strbuf_write);
	msgpack_pack_map(&pk, 7);
	pack_key(&pk, "v");
	msgpack_pack_uint16(&pk, KF_PROTO_MAJOR);
	pack_key(&pk, "vm");
	msgpack_pack_uint16(&pk, KF_PROTO_MINOR);
	pack_key(&pk, "t");
	msgpack_pack_uint16(&pk, (uint16_t)msg->type);
	pack_key(&pk, "s");
	enum kf_err err = kf__encode_text(&pk, msg->sender, KF_MSG_MAX_NAME);
	if (err)
		return err;
	pack_key(&pk, "q");
	msgpack_pack_uint64(&pk, msg->seq);
	pack_key(&pk, "ts");
	msgpack_pack_uint64(&pk, msg->ts_ns);
	pack_key(&pk, "b");
	return kf__encode_struct(&pk, body, &msg->heartbeat);
}

enum kf_err kf_msg_encode(const struct kf_msg *msg, struct kf_strbuf *out)
{
	if (out->oom)
		return KF_ENOMEM;
	size_t start = out->len;
	enum kf_err err = encode_envelope(msg, out);
	if (!err && out->oom)
		err = KF_ENOMEM;
	if (!err && out->len - start > KF_MSG_MAX_BYTES)
		err = KF_ETOOBIG;
	if (err && !out->oom)
		strbuf_truncate(out, start);
	return err;
}

enum kf_err kf_msg_encode_pub(const char *topic, const struct kf_msg *msg, struct kf_strbuf *out)
{
	if (!topic || !kf_topic_valid(topic, strlen(topic)))
		return KF_ETOPIC;
	if (out->oom)
		return KF_ENOMEM;
	size_t start = out->len;
	kf_strbuf_add(out, topic, strlen(topic) + 1); /* with its NUL */
	enum kf_err err = kf_msg_encode(msg, out);
	if (!err && out->oom)
		err = KF_ENOMEM;
	if (err && !out->oom)
		strbuf_truncate(out, start);
	return err;
}

struct fixed_buf {
	char *buf;
	size_t cap, len;
};

static int fixed_write(void *data, const char *buf, size_t len)
{
	struct fixed_buf *fb = data;
	if (len > fb->cap - fb->len) {
		fb->len = fb->cap + 1; /* remember the overflow */
		return -1;
	}
	memcpy(fb->buf + fb->len, buf, len);
	fb->len += len;
	return 0;
}

enum kf_err kf_msg_encode_to(const struct kf_msg *msg, void *buf, size_t cap, size_t *len)
{
	/* Encode into a strbuf, then copy: one code path for validation and
	 * limits; the copy is cheap next to the packing. */
	struct kf_strbuf sb = KF_STRBUF_INIT;
	struct fixed_buf fb = { buf, cap, 0 };
	*len = 0;
	enum kf_err err = kf_msg_encode(msg, &sb);
	if (!err && fixed_write(&fb, sb.buf, sb.len))
		err = KF_ETOOBIG;
	if (!err)
		*len = sb.len;
	kf_strbuf_release(&sb);
	return err;
}

/* ---- decode -------------------------------------------------------------- */

static enum kf_err fail_early(struct kf_strbuf *why, enum kf_err err, const char *what)
{
	if (why)
		kf_strbuf_addf(why, "%s: %s", what, kf_strerror(err));
	return err;
}

/* The log event's own timestamp and source default to the envelope's. */
static void fill_defaults(struct kf_msg *msg)
{
	if (msg->type != KF_MSG_LOG)
		return;
	if (!msg->log.ts_ns)
		msg->log.ts_ns = msg->ts_ns;
	if (!msg->log.source)
		msg->log.source = msg->sender;
}

static enum kf_err decode(const void *buf, size_t len, const char *topic, size_t topic_len,
	struct kf_msg **out, struct kf_strbuf *why)
{
	*out = NULL;
	if (len > KF_MSG_MAX_BYTES)
		return fail_early(why, KF_ETOOBIG, "message too large");
	enum kf_err err = kf__prescan(buf, len);
	if (err)
		return fail_early(why, err, "not one well-formed msgpack value");

	struct kf__arena *arena = kf__arena_new(ARENA_BUDGET(len + topic_len));
	if (!arena)
		return fail_early(why, KF_ENOMEM, "decode");
	struct kf_msg *msg;
	err = kf__arena_alloc(arena, sizeof(*msg), _Alignof(struct kf_msg), (void **)&msg);
	if (err) {
		kf__arena_free(arena);
		return fail_early(why, err, "decode");
	}
	struct kf__dec d = { .rd = { buf, len, 0 }, .arena = arena, .why = why };
	err = kf__decode_envelope(&d, msg);
	if (!err && topic) {
		char *t;
		err = kf__arena_alloc(arena, topic_len + 1, 1, (void **)&t);
		if (!err) {
			memcpy(t, topic, topic_len);
			msg->topic = t;
		}
	}
	if (err) {
		kf__arena_free(arena);
		return err;
	}
	fill_defaults(msg);
	msg->arena = arena;
	*out = msg;
	return KF_OK;
}

enum kf_err kf_msg_decode(const void *buf, size_t len, struct kf_msg **out, struct kf_strbuf *why)
{
	return decode(buf, len, NULL, 0, out, why);
}

enum kf_err kf_msg_decode_pub(const void *buf, size_t len, struct kf_msg **out,
	struct kf_strbuf *why)
{
	const char *topic;
	const void *env;
	size_t topic_len, env_len;
	*out = NULL;
	enum kf_err err = kf_topic_split(buf, len, &topic, &topic_len, &env, &env_len);
	if (err)
		return fail_early(why, err, "topic");
	return decode(env, env_len, topic, topic_len, out, why);
}

void kf_msg_free(struct kf_msg *msg)
{
	/* msg itself lives in its arena. */
	if (msg)
		kf__arena_free(msg->arena);
}
