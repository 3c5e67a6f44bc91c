/*
 * rpc_server.h — the broker's REP socket: many requests in flight, one
 * owner thread, replies whenever the owner is ready.
 *
 * Threading model. The server keeps nng REP contexts, each with its own
 * aio, all receiving at once. When a request arrives on a context, the nng
 * callback appends it to a queue and returns: it never blocks and never
 * calls the application. The owner thread takes requests with
 * kf_rpc_server_next() (or polls kf_rpc_server_fd()), and later answers each
 * one with kf_rpc_req_reply() — at once, or after a database commit, or
 * when a long-poll lease finds a job. Until it is answered or dropped, a
 * request holds its context.
 *
 * The pool of contexts grows with the requests held: it starts with
 * KF_RPC_CONTEXTS_INITIAL, and whenever next() hands out a request and
 * fewer than KF_RPC_CONTEXTS_SPARE contexts are left receiving, it opens
 * KF_RPC_CONTEXTS_CHUNK more, up to the server's max. So a thousand parked
 * long-polls do not keep a short request out. At the max, further requests
 * wait in nng's pipes, unread, until a context is free (their REQ peers
 * resend meanwhile); stats count how often next() found the pool so.
 * Contexts are never closed before the server: a pool sized by a burst
 * stays, at about a kilobyte a context with its request held.
 *
 *   nng thread:  recv done → queue request ──────────────┐
 *   owner:       next() → decode → (maybe defer) → reply()/drop()
 *   nng thread:  send done → receive again on that context
 *
 * Duplicates. A REQ peer resends an unanswered request after its resend
 * time and when its connection is replaced; each copy arrives here as a new
 * request on another context. Requests carry an idempotency id (proto/):
 * the owner answers one copy and drops the others (kf_rpc_req_drop), and
 * repeats the stored answer for a copy that arrives after the first was
 * answered. A reply to a peer that has disconnected is discarded by nng.
 *
 * A struct kf_rpc_req belongs to exactly one thread at a time: the owner
 * from next() until reply()/drop(); it may hand it to another thread
 * (e.g. the database thread) in between. All other functions are
 * thread-safe.
 */
#ifndef KF_BUS_RPC_SERVER_H
#define KF_BUS_RPC_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

#include "bus/sock.h"

#define KF_RPC_CONTEXTS_DEFAULT 1024 /* max when 0 is given */
#define KF_RPC_CONTEXTS_MAX 65536
#define KF_RPC_CONTEXTS_INITIAL 64   /* opened at start (at most the max) */
#define KF_RPC_CONTEXTS_CHUNK 64     /* opened at a time when growing */
#define KF_RPC_CONTEXTS_SPARE 16     /* receiving contexts kept while below the max */

struct kf_rpc_server;
struct kf_rpc_req;

struct kf_rpc_server_stats {
	uint64_t received;     /* requests taken off the wire */
	uint64_t replied;      /* replies handed to nng */
	uint64_t dropped;      /* requests dropped without a reply */
	uint64_t send_failed;  /* replies nng could not send (socket closing) */
	unsigned queued;       /* waiting for next() */
	unsigned held;         /* given out by next(), not yet answered */
	unsigned receiving;    /* contexts waiting for a request */
	unsigned contexts;     /* open now; held + queued == contexts means full */
	unsigned max_contexts; /* the pool's bound */
	uint64_t exhausted;    /* next() found no context receiving and could not open
	                        * more (at the max, or out of memory) */
};

/* Creates a REP socket whose pool of contexts may grow to max_contexts
 * (0 = KF_RPC_CONTEXTS_DEFAULT; at most KF_RPC_CONTEXTS_MAX) and, when url
 * is non-NULL, listens on it (recv_max defaults to KF_BUS_RECV_MAX_RPC).
 * Receiving starts at once. Errors as kf_bus_sock_listen (KF_EBUSY:
 * another broker has the address); KF_ERANGE for too many contexts. */
enum kf_err kf_rpc_server_new(struct kf_rpc_server **out, unsigned max_contexts,
	const char *url, const struct kf_bus_opts *opts, struct kf_strbuf *why);

/* Shuts down in nng's order: stop every aio (callbacks finish, none
 * re-arms), close the contexts, close the socket (listeners, ipc guard),
 * free. Requests still held become invalid: call it from the owner thread
 * once no other thread holds one. Replies queued in nng a moment before may
 * be lost; their peers resend to the next broker. NULL-safe. */
void kf_rpc_server_free(struct kf_rpc_server *srv);

struct kf_bus_sock *kf_rpc_server_sock(struct kf_rpc_server *srv);

/* Takes the oldest queued request, waiting up to timeout_ms (0 = don't
 * wait, NNG_DURATION_INFINITE = forever), and grows the pool if it runs
 * short. KF_OK, KF_ETIMEDOUT, KF_ECANCELED (socket closed; the queue is
 * empty). */
enum kf_err kf_rpc_server_next(struct kf_rpc_server *srv, nng_duration timeout_ms,
	struct kf_rpc_req **out);

/* An eventfd that poll() reports readable while a request is queued (and
 * once the socket is closed), for an owner loop that also waits on other
 * things. Do not read or close it: next() resets it. */
int kf_rpc_server_fd(const struct kf_rpc_server *srv);

void kf_rpc_server_stats(struct kf_rpc_server *srv, struct kf_rpc_server_stats *out);

/* The request bytes; valid until reply()/drop(). */
const void *kf_rpc_req_body(const struct kf_rpc_req *req, size_t *len);

/* A number unique per server for this request, for logs. */
uint64_t kf_rpc_req_id(const struct kf_rpc_req *req);

/* Who sent it: transport, address, and for ipc the peer's uid/gid/pid
 * from the kernel (the broker authorises state changes on them), for TLS
 * whether the certificate was verified. KF_ENOENT once the peer has
 * disconnected. */
enum kf_err kf_rpc_req_peer(const struct kf_rpc_req *req, struct kf_bus_peer *out);

/* False once the connection the request came on has closed: a deferred
 * reply would be discarded (the peer will resend on its new connection). */
bool kf_rpc_req_peer_alive(const struct kf_rpc_req *req);

/* Sends len bytes as the reply (built with nng_msg_append into the
 * request's own message) and returns the context to receiving. On KF_OK
 * req is gone. KF_ENOMEM leaves req held: retry or drop it. */
enum kf_err kf_rpc_req_reply(struct kf_rpc_req *req, const void *bytes, size_t len);

/* Same with a message the caller built; takes ownership of msg on KF_OK
 * only. */
enum kf_err kf_rpc_req_reply_msg(struct kf_rpc_req *req, nng_msg *msg);

/* Forgets the request without answering (malformed, duplicate, or
 * shutting down) and returns the context to receiving. req is gone. */
void kf_rpc_req_drop(struct kf_rpc_req *req);

#endif
