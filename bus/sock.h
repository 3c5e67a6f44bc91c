/*
 * sock.h — one nng socket with its listeners and dialers, set up with
 * deliberate options (docs/bus.md says why each value).
 *
 * A struct kf_bus_sock is created by the role objects (kf_bus_pub,
 * kf_bus_sub, kf_rpc_server, kf_rpc_client), which own it; reach it through
 * their _sock() accessor to add endpoints (a broker may serve rpc on tcp and
 * on ipc at once) or to read its counters.
 *
 * Every endpoint gets:
 *  - NNG_OPT_RECVMAXSZ: `recv_max`, else the socket's default (1 MiB for
 *    pub/sub telemetry, 4 MiB for rpc, + 64 KiB). nng 1.5.2 has no limit
 *    otherwise.
 *    A larger message makes nng close the connection that carried it (the
 *    message is never delivered); a dialer reconnects after its back-off.
 *  - dialers: NNG_OPT_RECONNMINT/MAXT (100 ms doubling to 2 s) and a
 *    non-blocking start: dialing succeeds before the peer exists and
 *    connects in the background, so any process may start first.
 *  - tcp: keep-alive on; Nagle off (nng's default).
 *  - tls+tcp: a TLS configuration built from `tls` (see tls.h).
 *  - ipc listeners: file mode `ipc_mode` (default 0600) and a guard thread
 *    that detects nng 1.5.2's wedged ipc listener (it stops accepting after
 *    a peer disconnects mid-handshake) and recreates it. The guard's probe
 *    connects to the listener like a peer; it shows in the pipe counters.
 *
 * Thread-safety: all functions may be called from any thread; listen/dial
 * calls on one socket are serialised internally. Errors: enum kf_err; when
 * `why` is non-NULL a lower-case message naming the address is appended.
 */
#ifndef KF_BUS_SOCK_H
#define KF_BUS_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

#include "bus/addr.h"
#include "bus/tls.h"
#include "common/err.h"
#include "common/strbuf.h"

/* Receive limits: 1 MiB for telemetry, 4 MiB for rpc replies (job lists,
 * log tails), each plus 64 KiB for the envelope and topic around a body of
 * the limit (proto's KF_MSG_MAX_WIRE is 4 MiB + 256 B). */
#define KF_BUS_RECV_MAX_TELEMETRY (((size_t)1 << 20) + ((size_t)64 << 10))
#define KF_BUS_RECV_MAX_RPC (((size_t)4 << 20) + ((size_t)64 << 10))
#define KF_BUS_RECONNECT_MIN_MS 100
#define KF_BUS_RECONNECT_MAX_MS 2000
#define KF_BUS_IPC_PROBE_MS 1000  /* ipc guard: period between probes */
#define KF_BUS_MAX_ENDPOINTS 8    /* listeners + dialers per socket */

enum kf_bus_mode {
	KF_BUS_LISTEN = 0,
	KF_BUS_DIAL = 1,
};

/* Options of one endpoint. The zero value (or a NULL pointer) means every
 * default; only `tls` has no default and is required for tls+tcp://. */
struct kf_bus_opts {
	size_t recv_max;                 /* bytes; 0 = the socket's default */
	int queue_len;                   /* pub: per-subscriber send queue (256);
	                                    sub: receive queue (1024); messages;
	                                    socket-wide, applied at creation */
	nng_duration reconnect_min_ms;   /* dialers; 0 = 100 */
	nng_duration reconnect_max_ms;   /* dialers; 0 = 2000 */
	const struct kf_bus_tls_opts *tls; /* tls+tcp:// only; ignored otherwise */
	nng_duration ipc_probe_ms;       /* ipc listeners; 0 = 1000, < 0 = no guard */
	int ipc_mode;                    /* ipc listeners; 0 = 0600 */
};

/* Who sent a request (kf_rpc_req_peer). */
struct kf_bus_peer {
	enum kf_bus_transport transport;
	bool has_cred;      /* ipc: uid, gid, pid come from the kernel (SO_PEERCRED) */
	uint64_t uid, gid, pid;
	bool tls_verified;  /* tls+tcp: the peer's certificate was verified */
	char addr[128];     /* "127.0.0.1:41234", "[::1]:41234", ipc path, inproc name */
};

struct kf_bus_sock_stats {
	uint64_t pipes_added;    /* connections completed (both directions) */
	uint64_t pipes_removed;  /* connections closed */
	uint64_t ipc_probes;     /* guard probes run */
	uint64_t ipc_wedged;     /* probes that found the listener not accepting */
	uint64_t ipc_recreated;  /* listeners the guard closed and opened again */
};

struct kf_bus_sock;

/* Adds a listener. KF_OK; KF_EBUSY when the address is in use (the message
 * reads "address URL already in use; is another broker running?");
 * KF_EINVAL (bad URL, missing TLS files), KF_ENOENT/KF_EIO (unreadable
 * certificate), KF_EPERM, KF_EFULL (KF_BUS_MAX_ENDPOINTS reached),
 * KF_ECANCELED (socket closed), KF_ENNG (other nng failure). */
enum kf_err kf_bus_sock_listen(struct kf_bus_sock *bs, const char *url,
	const struct kf_bus_opts *opts, struct kf_strbuf *why);

/* Adds a dialer that connects in the background and reconnects forever.
 * Returns before any connection exists; failures are only those of the URL
 * and options (same codes as listen, never KF_EBUSY). */
enum kf_err kf_bus_sock_dial(struct kf_bus_sock *bs, const char *url,
	const struct kf_bus_opts *opts, struct kf_strbuf *why);

/* The URL of the newest listener with the port the kernel chose filled in
 * (tcp://127.0.0.1:0 → tcp://127.0.0.1:41234), appended to `out`.
 * KF_ENOENT when the socket has no listener. */
enum kf_err kf_bus_sock_bound_url(struct kf_bus_sock *bs, struct kf_strbuf *out);

/* Connections currently attached to the socket (a dialer that has reached
 * its peer counts one). Lock-free. */
unsigned kf_bus_sock_peers(const struct kf_bus_sock *bs);

void kf_bus_sock_stats(const struct kf_bus_sock *bs, struct kf_bus_sock_stats *out);

/* How long a close waits for nng_close, and how long once a close has
 * been left behind (sock.c: nng 1.5.2 can wait for ever there). */
#define KF_BUS_CLOSE_WAIT_MS 2000
#define KF_BUS_CLOSE_WAIT_STUCK_MS 200

/* Closes the nng socket: every blocked or later call on it (sub recv, rpc
 * next/call) returns KF_ECANCELED. Any thread, idempotent. The owning
 * object must still be freed, after the threads using it are done.
 * KF_OK, or KF_ETIMEDOUT when nng_close did not return within
 * KF_BUS_CLOSE_WAIT_MS: the socket is then left open inside nng (and its
 * memory is never freed) and kf_bus_stuck_closes() counts it. Readers that
 * look at the close themselves (kf_bus_sub_recv within 100 ms,
 * kf_rpc_server_next at its next call) still return KF_ECANCELED; RPC
 * calls in flight end at their timeouts. */
enum kf_err kf_bus_sock_close(struct kf_bus_sock *bs);

/* The same bounded close for an nng socket this module does not own (a
 * plain nng socket of a test or a tool): KF_OK, or KF_ETIMEDOUT when it was
 * left behind (and counted). */
enum kf_err kf_bus_nng_close(nng_socket sock);

/* Closes of this process that were left behind (kf_bus_sock_close,
 * kf_bus_nng_close). */
unsigned kf_bus_stuck_closes(void);
/* Why, in the words the programs log at exit when kf_bus_stuck_closes() > 0. */
#define KF_BUS_STUCK_CLOSE_WHY \
	"nng 1.5.2 could not finish closing a connection that was receiving (docs/bus.md)"

/* The nng socket, for what this module does not wrap. Do not nng_close()
 * it and do not replace its pipe notifications (the counters use them). */
nng_socket kf_bus_sock_nng(const struct kf_bus_sock *bs);

/* nng error → enum kf_err: NNG_EADDRINUSE → KF_EBUSY, NNG_ETIMEDOUT and
 * NNG_EAGAIN → KF_ETIMEDOUT, NNG_ECLOSED and NNG_ECANCELED → KF_ECANCELED,
 * NNG_ENOMEM → KF_ENOMEM, NNG_EMSGSIZE → KF_ETOOBIG, NNG_EPERM,
 * NNG_EPEERAUTH and NNG_ECRYPTO → KF_EPERM, NNG_EINVAL and NNG_EADDRINVAL →
 * KF_EINVAL, NNG_ENOENT → KF_ENOENT, NNG_ECONNREFUSED, NNG_EUNREACHABLE,
 * NNG_ECONNRESET, NNG_ECONNSHUT and NNG_ECONNABORTED → KF_EUNAVAIL,
 * NNG_ESTATE → KF_ESTATE; any other → KF_ENNG. */
enum kf_err kf_bus_err_from_nng(int rv);

#endif
