/*
 * bus_internal.h — what the files of bus/ share (kf__ names); not for
 * other components.
 */
#ifndef KF_BUS_INTERNAL_H
#define KF_BUS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "bus/addr.h"
#include "bus/sock.h"
#include "bus/tls.h"
#include "common/err.h"
#include "common/strbuf.h"

/* One listener or dialer. Slots of kf_bus_sock.eps are filled in order and
 * never removed, so a slot index stays valid for the socket's life. */
struct kf__bus_ep {
	char url[KF_BUS_URL_MAX];
	enum kf_bus_mode mode;
	struct kf_bus_url_info info;
	nng_listener listener;     /* guarded by kf_bus_sock.mu */
	nng_dialer dialer;
	size_t recv_max;
	int ipc_mode;
	/* ipc guard */
	bool guarded;
	nng_duration probe_ms;
	uint64_t next_probe_ns;    /* guard thread only */
	atomic_int listener_id;    /* read by the pipe callback */
	atomic_uint_fast64_t adds; /* pipes this listener delivered */
};

struct kf_bus_sock {
	nng_socket sock;
	int self_proto, peer_proto;
	size_t default_recv_max;
	atomic_bool closed;
	atomic_bool close_stuck;   /* nng_close did not return: never freed */
	/* Called once by kf_bus_sock_close, first thing, from the closing
	 * thread: wakes the socket's own waiters (sub.c) even when nng's close
	 * is left behind. Set before the socket is shared; NULL for none. */
	void (*on_close)(void *arg);
	void *on_close_arg;
	atomic_uint peers;
	atomic_uint_fast64_t added, removed, probes, wedged, recreated;

	/* Serialises listen/dial and the guard's recreation of a listener.
	 * Never taken from an nng callback. */
	pthread_mutex_t mu;
	struct kf__bus_ep eps[KF_BUS_MAX_ENDPOINTS];
	atomic_uint n_eps;

	/* The guard thread sleeps and waits for probe results on probe_cv;
	 * the pipe callback only signals it (short critical section). */
	pthread_mutex_t probe_mu;
	pthread_cond_t probe_cv;
	bool guard_started, guard_stop; /* under probe_mu */
	pthread_t guard;
};

/* Opens the socket with `open_fn` (nng_pub0_open, ...), sets RECVMAXSZ to
 * `default_recv_max` and installs the pipe counters. */
enum kf_err kf__bus_sock_new(struct kf_bus_sock **out, int (*open_fn)(nng_socket *),
	size_t default_recv_max);
/* Stops the guard, closes the socket, frees. NULL-safe. Callers stop and
 * free their own aios/contexts first. */
void kf__bus_sock_free(struct kf_bus_sock *bs);
/* Listen or dial `url` when it is non-NULL; KF_OK for NULL. */
enum kf_err kf__bus_sock_attach(struct kf_bus_sock *bs, enum kf_bus_mode mode,
	const char *url, const struct kf_bus_opts *opts, struct kf_strbuf *why);
/* Creates and starts ep's listener with its stored options (opts only
 * supplies TLS, and may be NULL for other transports); mu held. */
enum kf_err kf__bus_listener_open(struct kf_bus_sock *bs, struct kf__bus_ep *ep,
	const struct kf_bus_opts *opts, struct kf_strbuf *why);
/* Who is at the other end of a pipe. */
enum kf_err kf__bus_pipe_peer(nng_pipe pipe, struct kf_bus_peer *out);

/* tls.c: a configuration for one endpoint; the caller frees its reference. */
enum kf_err kf__bus_tls_config(const struct kf_bus_tls_opts *opts, bool server,
	const char *url, const char *url_host, nng_tls_config **out,
	struct kf_strbuf *why);

/* ipc_guard.c */
enum kf_err kf__ipc_guard_start(struct kf_bus_sock *bs);
void kf__ipc_guard_stop(struct kf_bus_sock *bs);
/* From the pipe callback (nng thread): a pipe came from `listener_id`. */
void kf__ipc_guard_pipe_added(struct kf_bus_sock *bs, int listener_id);
/* Connects to an ipc path and completes the SP handshake as a peer of
 * bs's protocol (sending first, so that closing after the reply cannot
 * leave the listener mid-handshake). Returns the connected fd, or -1. */
int kf__ipc_handshake(const struct kf_bus_sock *bs, const char *path, uint64_t deadline_ns);
/* One probe of ep: true when the listener delivered a pipe within
 * timeout_ms. Exposed for the unit test. */
bool kf__ipc_guard_probe(struct kf_bus_sock *bs, struct kf__bus_ep *ep,
	nng_duration timeout_ms);

#endif
