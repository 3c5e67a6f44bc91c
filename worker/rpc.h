/*
 * worker/rpc.h — the worker's side of the rpc socket: request ids, the
 * broker's token, registration (hello) and its renewal.
 *
 * Request ids (proto/rpc.h): `client` is random per process, `seq` grows per
 * new request. A request that got no reply (timeout, broker restart) is sent
 * again with the SAME id, so that a broker which did act on it answers with
 * what it answered the first time instead of acting twice (a lease granted
 * twice, a result stored twice).
 *
 * Token: read from the token file at start and again whenever the broker
 * answers KF_EPERM (a restarted broker writes a fresh token).
 *
 * Registration: hello tells the broker who the worker is before it leases.
 * It is repeated (kf__rpc_need_hello) after an RPC failed in transport —
 * the broker may have restarted and forgotten the worker — and whenever the
 * REQ socket has made a new connection since the last hello.
 *
 * Thread-safety: every function may be called from any thread.
 */
#ifndef KF_WORKER_RPC_H
#define KF_WORKER_RPC_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus/rpc_client.h"
#include "common/err.h"
#include "proto/msg.h"

#define KF__TOKEN_MAX 256

struct kf__rpc {
	struct kf_rpc_client *cli;      /* owned */
	const char *sender;             /* borrowed: the envelope's sender (worker id) */
	uint64_t client_id;
	atomic_uint_fast64_t seq;
	const char *token_file;         /* borrowed; NULL = no token */
	pthread_mutex_t token_mu;
	char token[KF__TOKEN_MAX + 1];  /* "" = none */
	bool token_warned;
	atomic_bool need_hello;
	atomic_uint_fast64_t hello_pipes; /* pipes_added at the last successful hello */
};

/* Creates the REQ socket (dialing in the background) and reads the token
 * file if there is one (a missing file is not an error: the broker may not
 * have written it yet). Errors as kf_rpc_client_new, with `why`. */
enum kf_err kf__rpc_init(struct kf__rpc *r, const char *url, const struct kf_bus_opts *opts,
	const char *sender, const char *token_file, struct kf_strbuf *why);
void kf__rpc_release(struct kf__rpc *r);

/* A fresh request id. */
struct kf_msg_request_id kf__rpc_next_id(struct kf__rpc *r);

/* Sets req's sender, its id (a fresh one when id is NULL) and the current
 * token. */
void kf__rpc_stamp(struct kf__rpc *r, struct kf_msg *req, const struct kf_msg_request_id *id);

/*
 * Encodes req (stamp it first), calls, decodes. On KF_OK *rep is the reply
 * (kf_msg_free it) and its type is the request's reply type or
 * KF_MSG_ERROR_REP; the reply's own status may still be an error. A
 * transport failure (KF_ETIMEDOUT, KF_ECANCELED, ...) sets need_hello. A
 * reply that does not decode, or answers another request, is KF_EMALFORMED.
 */
enum kf_err kf__rpc_call(struct kf__rpc *r, const struct kf_msg *req, nng_duration timeout_ms,
	nng_duration resend_ms, struct kf_msg **rep);

/* Reads the token file again (after KF_EPERM). KF_OK, or KF_ENOENT/KF_EIO
 * (the old token is kept). *changed (may be NULL): the file held another
 * token than the one in use. */
enum kf_err kf__rpc_reload_token(struct kf__rpc *r, bool *changed);

/* True when a hello is due: after a transport failure or a reconnection. */
bool kf__rpc_need_hello(struct kf__rpc *r);
void kf__rpc_set_need_hello(struct kf__rpc *r);
/* Records a successful hello (remembers the connection count). */
void kf__rpc_hello_done(struct kf__rpc *r, uint64_t pipes_at_start);
/* The REQ socket's connection count now (for kf__rpc_hello_done). */
uint64_t kf__rpc_pipes(struct kf__rpc *r);

/* Pure: the token from a token file's text (first line, blanks trimmed);
 * KF_EINVAL when empty or longer than KF__TOKEN_MAX. */
enum kf_err kf__token_parse(const char *text, size_t len, char out[KF__TOKEN_MAX + 1]);

#endif
