/*
 * rpc_client.h — requests to the broker's rpc socket (nng REQ).
 *
 * One client is one REQ socket with one dialer; every call runs on its own
 * nng context, so any number of threads may call at once and each gets its
 * own reply. That is how a worker long-polls for a lease on one thread and
 * reports progress on another over a single connection.
 *
 * Resend. nng's REQ resends an unanswered request after the resend time
 * (nng's own default is 60 s) and at once when its connection is replaced
 * (broker restart). The default here is 1 s, safe because every request
 * carries an idempotency id (proto/) that the broker uses to answer a copy
 * with the stored result. A call that is meant to wait — a lease long-poll
 * that the broker parks for up to N seconds — must set resend_ms above N,
 * or each second would park another copy on the broker.
 *
 * The client dials without blocking: calls made before the broker is up
 * wait (within their timeout) for the connection.
 */
#ifndef KF_BUS_RPC_CLIENT_H
#define KF_BUS_RPC_CLIENT_H

#include <stddef.h>

#include <nng/nng.h>

#include "bus/sock.h"

#define KF_RPC_TIMEOUT_DEFAULT_MS 5000
#define KF_RPC_RESEND_DEFAULT_MS 1000

struct kf_rpc_client;
struct kf_rpc_call;

/* Per-call settings; a NULL pointer or a 0 field means the default. */
struct kf_rpc_call_opts {
	nng_duration timeout_ms; /* whole call, send and reply; default 5 s */
	nng_duration resend_ms;  /* default 1 s; NNG_DURATION_INFINITE: never */
};

/* Creates a REQ socket and dials url (non-blocking; url NULL = add
 * endpoints later through the sock). recv_max defaults to
 * KF_BUS_RECV_MAX_RPC. Errors as kf_bus_sock_dial. */
enum kf_err kf_rpc_client_new(struct kf_rpc_client **out, const char *url,
	const struct kf_bus_opts *opts, struct kf_strbuf *why);

/* Closes the socket and frees. Every call must have returned and every
 * kf_rpc_call been freed. NULL-safe. */
void kf_rpc_client_free(struct kf_rpc_client *cli);

struct kf_bus_sock *kf_rpc_client_sock(struct kf_rpc_client *cli);

/* Sends len bytes and waits for the reply; on KF_OK the caller owns
 * *reply (nng_msg_free). Thread-safe. KF_OK, KF_ETIMEDOUT (no connection,
 * or no reply in time; the request is abandoned and no longer resent),
 * KF_EUNAVAIL (the connection was lost under a request that is never
 * resent, resend_ms NNG_DURATION_INFINITE), KF_ECANCELED (socket closed,
 * or kf_rpc_client_abort_calls), KF_ENOMEM. */
enum kf_err kf_rpc_client_call(struct kf_rpc_client *cli, const void *req, size_t len,
	const struct kf_rpc_call_opts *opts, nng_msg **reply);

/* Ends every kf_rpc_client_call in flight at once with KF_ECANCELED (a
 * request already answered keeps its reply). Calls started afterwards run
 * normally. For a process that is stopping and must not wait out a long
 * timeout, e.g. a lease long-poll to a broker that is gone. Any thread. */
void kf_rpc_client_abort_calls(struct kf_rpc_client *cli);

/*
 * Asynchronous calls, for event loops (admin) that must not block. A
 * struct kf_rpc_call is a reusable context: start one request, get one
 * callback, start the next.
 *
 * The callback runs on an nng thread, exactly once per successful
 * kf_rpc_call_start, with KF_OK and the reply (owned by the callback) or an
 * error and NULL. It must not block; it may call kf_rpc_call_start again
 * on the same call, but not kf_rpc_call_free.
 */
typedef void (*kf_rpc_done_fn)(void *arg, enum kf_err err, nng_msg *reply);

enum kf_err kf_rpc_call_new(struct kf_rpc_client *cli, kf_rpc_done_fn done, void *arg,
	struct kf_rpc_call **out);

/* Starts a request. KF_OK (the callback will run), KF_EBUSY (a request is
 * in flight on this call), KF_ENOMEM. Call it from the callback or from a
 * thread that knows the previous callback has returned. */
enum kf_err kf_rpc_call_start(struct kf_rpc_call *call, const void *req, size_t len,
	const struct kf_rpc_call_opts *opts);

/* Aborts the request in flight, if any: its callback runs soon with
 * KF_ECANCELED. Does not wait. Any thread. */
void kf_rpc_call_cancel(struct kf_rpc_call *call);

/* Cancels, waits for the callback to return, frees. Not from the
 * callback. NULL-safe. */
void kf_rpc_call_free(struct kf_rpc_call *call);

#endif
