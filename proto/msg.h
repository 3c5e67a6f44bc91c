/*
 * proto/msg.h — the envelope, the message type registry, encode and decode.
 *
 * A message on the wire is one msgpack map (the envelope):
 *   { "v": major, "vm": minor, "t": type, "s": sender, "q": seq,
 *     "ts": ns since the epoch, "b": { body map } }
 * preceded, on pub/sub sockets only, by a topic and a NUL byte
 * (proto/topic.h). docs/protocol.md describes every body.
 *
 * Encoding: fill a struct kf_msg (envelope fields, `type`, and the union
 * member that matches `type`) and call kf_msg_encode(). Encoders validate
 * what decoders check (required strings present, UTF-8, limits, enum
 * ranges), so whatever encodes also decodes.
 *
 * Decoding: kf_msg_decode() takes untrusted bytes and returns a heap struct
 * kf_msg whose strings and arrays live in one arena owned by it; free all of
 * it with kf_msg_free(). It never reads outside [buf, buf+len), never recurses
 * deeper than KF_MSG_MAX_DEPTH, and allocates at most about
 * 16 * len + 16 KiB. Errors (enum kf_err):
 *   KF_ETOOBIG       message > KF_MSG_MAX_BYTES, a string/array over its limit,
 *                    more than KF_MSG_MAX_OBJECTS objects
 *   KF_ETRUNCATED    input ends inside a value, or a length/count claims more
 *                    bytes than are left (the 5-byte "array of 4e9" case)
 *   KF_EMALFORMED    not msgpack (0xc1), duplicate key in a map
 *   KF_ETOODEEP      nesting deeper than KF_MSG_MAX_DEPTH
 *   KF_ETRAILING     bytes after the envelope
 *   KF_EVERSION      envelope major version != KF_PROTO_MAJOR
 *   KF_EUNKNOWNTYPE  type this build does not know
 *   KF_ETYPE         a known field (or a map key) has the wrong msgpack type
 *   KF_ERANGE        integer does not fit its field, enum value unknown,
 *                    complete outcome not final
 *   KF_EUTF8         text is not valid UTF-8 or contains NUL
 *   KF_EMISSING      required field absent (or nil)
 *   KF_ETOPIC        (kf_msg_decode_pub) no NUL within KF_TOPIC_MAX+1
 *                    bytes, or a byte outside 0x21..0x7e in the topic
 *   KF_ENOMEM        allocation failed
 * Checks run in that order of phases: size, structural pre-scan (truncated,
 * malformed, depth, trailing), version, type, then fields.
 *
 * Thread-safety: all functions are reentrant; a decoded message may be read
 * from several threads, freed by one.
 */
#ifndef KF_PROTO_MSG_H
#define KF_PROTO_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/strbuf.h"
#include "proto/rpc.h"
#include "proto/telemetry_msgs.h"

/*
 * Protocol version. How to bump it:
 *  - MINOR: adding an optional field (decoded as NULL / 0 / absent when an
 *    older peer omits it), a new message type, or relaxing a limit. Older
 *    peers ignore unknown keys and count unknown types; nothing breaks.
 *  - MAJOR: removing or renaming a key, changing a field's type or meaning,
 *    making an optional field required, adding an enum value (older peers
 *    reject it with KF_ERANGE), tightening a limit. Peers of another major
 *    reject every message with KF_EVERSION, so deploy brokers first and
 *    say so in the release notes.
 * Write the change into docs/protocol.md ("Version history") in the same
 * change that bumps the number.
 */
#define KF_PROTO_MAJOR 1
#define KF_PROTO_MINOR 8
/* The first minor whose peers read pub/sub bundles (bus/bundle.h): a
 * worker bundles its telemetry only for such a broker. */
#define KF_PROTO_MINOR_BUNDLES 8

/* ---- limits (docs/protocol.md "Limits") -------------------------------- */
#define KF_MSG_MAX_BYTES   (4u << 20)  /* whole envelope; set NNG_OPT_RECVMAXSZ
                                        * to KF_MSG_MAX_WIRE (topic included) */
#define KF_MSG_MAX_WIRE    (KF_MSG_MAX_BYTES + 256u)
#define KF_MSG_MAX_DEPTH   16          /* nested containers, envelope = 1 */
#define KF_MSG_MAX_OBJECTS (1u << 20)  /* msgpack objects per message */
#define KF_MSG_MAX_NAME    256         /* ids, names, keys, hosts, targets */
#define KF_MSG_MAX_TEXT    65536       /* messages, help, error text, values */
#define KF_MSG_MAX_FIELDS  64          /* fields per log event or span */
#define KF_MSG_MAX_SPANS   32          /* span stack depth of a log event */
#define KF_MSG_MAX_LABELS  32          /* labels per series */
#define KF_MSG_MAX_BUCKETS 128         /* finite buckets per histogram */
#define KF_MSG_MAX_SERIES  16384       /* series per metric update */
#define KF_MSG_MAX_WORKERS 4096        /* workers in a cluster status */
#define KF_MSG_MAX_JOBS    1000        /* job summaries per list reply */
#define KF_MSG_MAX_EVENTS  1000        /* events per log tail reply */
#define KF_MSG_MAX_NAMED   64          /* weights, statistics */
#define KF_MSG_MAX_ERRORS  256         /* error history of a job */
#define KF_MSG_MAX_HELD    256         /* attempts a heartbeat lists as held */

/*
 * Message types. Values are wire values: never reuse or renumber one.
 * Requests are even numbers from 32; a request's reply is request + 1.
 */
enum kf_msg_type {
	KF_MSG_HEARTBEAT = 1,       /* struct kf_msg_heartbeat      .heartbeat */
	KF_MSG_LOG = 2,             /* struct kf_msg_log            .log */
	KF_MSG_METRIC = 3,          /* struct kf_msg_metric         .metric */
	KF_MSG_JOB_EVENT = 4,       /* struct kf_msg_job_event      .job_event */
	KF_MSG_CLUSTER_STATUS = 5,  /* struct kf_msg_cluster_status .cluster_status */
	KF_MSG_COMMAND = 6,         /* struct kf_msg_command        .command */

	KF_MSG_HELLO_REQ = 32,      /* .hello_req */
	KF_MSG_HELLO_REP = 33,      /* .hello_rep */
	KF_MSG_LEASE_REQ = 34,      /* .lease_req */
	KF_MSG_LEASE_REP = 35,      /* .lease_rep */
	KF_MSG_PROGRESS_REQ = 36,   /* .progress_req */
	KF_MSG_PROGRESS_REP = 37,   /* .progress_rep */
	KF_MSG_COMPLETE_REQ = 38,   /* .complete_req */
	KF_MSG_COMPLETE_REP = 39,   /* .complete_rep */
	KF_MSG_SUBMIT_REQ = 40,     /* .submit_req */
	KF_MSG_SUBMIT_REP = 41,     /* .submit_rep */
	KF_MSG_LIST_REQ = 42,       /* .list_req */
	KF_MSG_LIST_REP = 43,       /* .list_rep */
	KF_MSG_GET_REQ = 44,        /* .get_req */
	KF_MSG_GET_REP = 45,        /* .get_rep */
	KF_MSG_KILL_REQ = 46,       /* .kill_req  (struct kf_msg_job_action_req) */
	KF_MSG_KILL_REP = 47,       /* .kill_rep  (struct kf_msg_job_action_rep) */
	KF_MSG_RETRY_REQ = 48,      /* .retry_req (struct kf_msg_job_action_req) */
	KF_MSG_RETRY_REP = 49,      /* .retry_rep (struct kf_msg_job_action_rep) */
	KF_MSG_CLUSTER_REQ = 50,    /* .cluster_req */
	KF_MSG_CLUSTER_REP = 51,    /* .cluster_rep */
	KF_MSG_LOG_TAIL_REQ = 52,   /* .log_tail_req */
	KF_MSG_LOG_TAIL_REP = 53,   /* .log_tail_rep */
	KF_MSG_DRAIN_REQ = 54,      /* .drain_req (1.7) */
	KF_MSG_DRAIN_REP = 55,      /* .drain_rep (1.7) */

	KF_MSG_ERROR_REP = 127,     /* .error_rep: answer to an unreadable request */
};

struct kf__arena;

struct kf_msg {
	/* envelope */
	uint16_t major;             /* decode: as received; encode: ignored (KF_PROTO_MAJOR) */
	uint16_t minor;             /* decode: as received; encode: ignored (KF_PROTO_MINOR) */
	enum kf_msg_type type;
	const char *sender;         /* sender id (worker id, "broker", client id) */
	uint64_t seq;               /* per-sender sequence number (gap detection) */
	uint64_t ts_ns;             /* ns since the Unix epoch */
	const char *topic;          /* kf_msg_decode_pub only, else NULL; ignored by encode */

	union {
		struct kf_msg_heartbeat heartbeat;
		struct kf_msg_log log;
		struct kf_msg_metric metric;
		struct kf_msg_job_event job_event;
		struct kf_msg_cluster_status cluster_status;
		struct kf_msg_command command;

		struct kf_msg_hello_req hello_req;
		struct kf_msg_hello_rep hello_rep;
		struct kf_msg_lease_req lease_req;
		struct kf_msg_lease_rep lease_rep;
		struct kf_msg_progress_req progress_req;
		struct kf_msg_progress_rep progress_rep;
		struct kf_msg_complete_req complete_req;
		struct kf_msg_complete_rep complete_rep;
		struct kf_msg_submit_req submit_req;
		struct kf_msg_submit_rep submit_rep;
		struct kf_msg_list_req list_req;
		struct kf_msg_list_rep list_rep;
		struct kf_msg_get_req get_req;
		struct kf_msg_get_rep get_rep;
		struct kf_msg_job_action_req kill_req;
		struct kf_msg_job_action_rep kill_rep;
		struct kf_msg_job_action_req retry_req;
		struct kf_msg_job_action_rep retry_rep;
		struct kf_msg_cluster_req cluster_req;
		struct kf_msg_cluster_rep cluster_rep;
		struct kf_msg_log_tail_req log_tail_req;
		struct kf_msg_log_tail_rep log_tail_rep;
		struct kf_msg_drain_req drain_req;
		struct kf_msg_drain_rep drain_rep;
		struct kf_msg_error_rep error_rep;
	};

	struct kf__arena *arena;    /* private: owner of decoded memory; NULL when built by hand */
};

/* Zeroes *msg and sets type, sender, seq and ts_ns = kf_clock_wall_ns(). */
void kf_msg_init(struct kf_msg *msg, enum kf_msg_type type, const char *sender, uint64_t seq);

/*
 * Appends the envelope of msg to out (no topic). On error nothing is
 * appended (out keeps its length) and the code says why: KF_EUNKNOWNTYPE,
 * KF_EINVAL (required string NULL, array with count but NULL pointer),
 * KF_EUTF8, KF_ETOOBIG, KF_ERANGE (enum out of range, outcome not final),
 * KF_ENOMEM (out->oom).
 * The bus builds an nng message from out->buf/out->len with nng_msg_append
 * (never nng_msg_insert: it corrupts the heap in nng 1.5.2).
 */
enum kf_err kf_msg_encode(const struct kf_msg *msg, struct kf_strbuf *out);

/* Same into a caller's buffer: *len = bytes written. KF_ETOOBIG when the
 * envelope does not fit in cap bytes (nothing useful is left in buf then),
 * other errors as kf_msg_encode. */
enum kf_err kf_msg_encode_to(const struct kf_msg *msg, void *buf, size_t cap, size_t *len);

/* Appends topic, a NUL byte, then the envelope (pub/sub framing). The topic
 * must be 1..KF_TOPIC_MAX bytes of 0x21..0x7e, else KF_ETOPIC (build it
 * with proto/topic.h, which sanitises). */
enum kf_err kf_msg_encode_pub(const char *topic, const struct kf_msg *msg, struct kf_strbuf *out);

/*
 * Decodes one envelope occupying exactly buf[0..len). On KF_OK *out is a new
 * message (free with kf_msg_free); on error *out is NULL. `why`, if not NULL,
 * receives a one-line explanation naming the field path
 * ("b.series[2].labels: array longer than 32"), for logs; it may be NULL.
 */
enum kf_err kf_msg_decode(const void *buf, size_t len, struct kf_msg **out, struct kf_strbuf *why);

/* Same for pub/sub framing: topic, NUL, envelope. msg->topic is set. */
enum kf_err kf_msg_decode_pub(const void *buf, size_t len, struct kf_msg **out,
	struct kf_strbuf *why);

/* Frees a decoded message and everything it points to. NULL is a no-op.
 * Do not call it on a message you built by hand. */
void kf_msg_free(struct kf_msg *msg);

/* "heartbeat", "hello_req", ...; "unknown" for an unknown type. */
const char *kf_msg_type_name(enum kf_msg_type type);
bool kf_msg_type_known(enum kf_msg_type type);
bool kf_msg_type_is_request(enum kf_msg_type type);
bool kf_msg_type_is_reply(enum kf_msg_type type);
/* The reply type of a request type (KF_MSG_HELLO_REQ -> KF_MSG_HELLO_REP);
 * KF_MSG_ERROR_REP for anything that is not a known request. */
enum kf_msg_type kf_msg_reply_type(enum kf_msg_type request_type);

/* The common request / reply header of msg, or NULL when msg is not a
 * request / reply. Points into msg. */
const struct kf_msg_req *kf_msg_request(const struct kf_msg *msg);
const struct kf_msg_rep *kf_msg_reply(const struct kf_msg *msg);
struct kf_msg_req *kf_msg_request_mut(struct kf_msg *msg);
struct kf_msg_rep *kf_msg_reply_mut(struct kf_msg *msg);

#endif
