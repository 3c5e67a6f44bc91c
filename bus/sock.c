/* sock.c — nng sockets, their endpoints, options and pipe counters. */
#include "bus/bus_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"

struct err_map {
	int nng;
	enum kf_err kf;
};

static const struct err_map err_table[] = {
	{ NNG_EADDRINUSE, KF_EBUSY },       { NNG_ETIMEDOUT, KF_ETIMEDOUT },
	{ NNG_EAGAIN, KF_ETIMEDOUT },       { NNG_ECLOSED, KF_ECANCELED },
	{ NNG_ECANCELED, KF_ECANCELED },    { NNG_ENOMEM, KF_ENOMEM },
	{ NNG_EMSGSIZE, KF_ETOOBIG },       { NNG_EPERM, KF_EPERM },
	{ NNG_EPEERAUTH, KF_EPERM },        { NNG_ECRYPTO, KF_EPERM },
	{ NNG_EINVAL, KF_EINVAL },          { NNG_EADDRINVAL, KF_EINVAL },
	{ NNG_ENOENT, KF_ENOENT },          { NNG_ECONNREFUSED, KF_EUNAVAIL },
	{ NNG_EUNREACHABLE, KF_EUNAVAIL },  { NNG_ESTATE, KF_ESTATE },
	/* A connection lost under a request that is never resent. */
	{ NNG_ECONNRESET, KF_EUNAVAIL },    { NNG_ECONNSHUT, KF_EUNAVAIL },
	{ NNG_ECONNABORTED, KF_EUNAVAIL },
};

enum kf_err kf_bus_err_from_nng(int rv)
{
	if (rv == 0)
		return KF_OK;
	for (size_t i = 0; i < sizeof(err_table) / sizeof(err_table[0]); i++)
		if (err_table[i].nng == rv)
			return err_table[i].kf;
	return KF_ENNG;
}

/* ADD_PRE and REM_POST pair exactly in nng 1.5.2 (a pipe that saw ADD_PRE
 * always gets REM_POST, even when closed before ADD_POST), so the peer
 * count cannot drift. Runs on nng threads: atomics and a signal only. */
static void pipe_event(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	struct kf_bus_sock *bs = arg;

	if (ev == NNG_PIPE_EV_ADD_PRE) {
		atomic_fetch_add(&bs->peers, 1);
		atomic_fetch_add(&bs->added, 1);
		kf__ipc_guard_pipe_added(bs, nng_listener_id(nng_pipe_listener(pipe)));
	} else if (ev == NNG_PIPE_EV_REM_POST) {
		atomic_fetch_sub(&bs->peers, 1);
		atomic_fetch_add(&bs->removed, 1);
	}
}

static enum kf_err sock_init_sync(struct kf_bus_sock *bs)
{
	if (pthread_mutex_init(&bs->mu, NULL) != 0)
		return KF_ENOMEM;
	if (pthread_mutex_init(&bs->probe_mu, NULL) != 0)
		goto fail_mu;
	/* The guard sleeps until monotonic deadlines. */
	if (kf_clock_mono_cond_init(&bs->probe_cv) == 0)
		return KF_OK;
	pthread_mutex_destroy(&bs->probe_mu);
fail_mu:
	pthread_mutex_destroy(&bs->mu);
	return KF_ENOMEM;
}

enum kf_err kf__bus_sock_new(struct kf_bus_sock **out, int (*open_fn)(nng_socket *),
	size_t default_recv_max)
{
	struct kf_bus_sock *bs = calloc(1, sizeof(*bs));
	int rv;

	*out = NULL;
	if (bs == NULL)
		return KF_ENOMEM;
	if (sock_init_sync(bs) != KF_OK) {
		free(bs);
		return KF_ENOMEM;
	}
	rv = open_fn(&bs->sock);
	if (rv != 0) {
		pthread_cond_destroy(&bs->probe_cv);
		pthread_mutex_destroy(&bs->probe_mu);
		pthread_mutex_destroy(&bs->mu);
		free(bs);
		return kf_bus_err_from_nng(rv);
	}
	bs->default_recv_max = default_recv_max;
	if ((rv = nng_socket_get_int(bs->sock, NNG_OPT_PROTO, &bs->self_proto)) == 0
		&& (rv = nng_socket_get_int(bs->sock, NNG_OPT_PEER, &bs->peer_proto)) == 0
		&& (rv = nng_socket_set_size(bs->sock, NNG_OPT_RECVMAXSZ, default_recv_max)) == 0
		&& (rv = nng_pipe_notify(bs->sock, NNG_PIPE_EV_ADD_PRE, pipe_event, bs)) == 0)
		rv = nng_pipe_notify(bs->sock, NNG_PIPE_EV_REM_POST, pipe_event, bs);
	if (rv != 0) {
		kf__bus_sock_free(bs);
		return kf_bus_err_from_nng(rv);
	}
	*out = bs;
	return KF_OK;
}

/*
 * A close that may never return. nng 1.5.2 can leave nng_close waiting for
 * ever when a peer is sending as the connection closes: if the transport
 * has read a message's length and goes on to read its body
 * (tcptran_pipe_recv_cb) after the close stopped its read aio, that read
 * is refused without completing (nni_aio_begin on a stopped aio), the
 * protocol's receive stays queued on the pipe, nng's single reaper thread
 * waits for it in pipe_destroy, and nng_close waits for the reaper. Seen
 * here in about a third of runs of a plain nng_recvmsg reader closed while
 * a PUB floods it; test_bus_close meets it within its first ten closes.
 * Closes happen at shutdown, where a leak is harmless and
 * a hang is not: nng_close runs on a helper thread and the caller waits for
 * it at most KF_BUS_CLOSE_WAIT_MS. A close that does not return by then is
 * left behind with its socket and this struct (its pipe callbacks may still
 * run) and counted. Once nng's reaper is stuck no later close can finish
 * either, so those wait only KF_BUS_CLOSE_WAIT_STUCK_MS.
 */
static atomic_uint stuck_closes;

struct closer {
	nng_socket sock;
	pthread_mutex_t mu;
	pthread_cond_t cv;    /* CLOCK_MONOTONIC */
	bool done;
	int refs;             /* the caller and the helper thread */
};

static void closer_put(struct closer *c)
{
	bool last;

	pthread_mutex_lock(&c->mu);
	last = --c->refs == 0;
	pthread_mutex_unlock(&c->mu);
	if (last) {
		pthread_cond_destroy(&c->cv);
		pthread_mutex_destroy(&c->mu);
		free(c);
	}
}

static void *closer_main(void *arg)
{
	struct closer *c = arg;

	pthread_setname_np(pthread_self(), "kf:close");
	nng_close(c->sock);
	pthread_mutex_lock(&c->mu);
	c->done = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	closer_put(c);
	return NULL;
}

/* nng_close(sock), waiting at most wait_ms; whether it returned. */
static bool close_within(nng_socket sock, unsigned wait_ms)
{
	struct closer *c = calloc(1, sizeof(*c));
	pthread_attr_t ta;
	pthread_t t;
	struct timespec until;
	bool done, started;

	if (c == NULL || pthread_mutex_init(&c->mu, NULL) != 0)
		goto no_helper;
	if (kf_clock_mono_cond_init(&c->cv) != 0)
		goto no_helper_mu;
	c->sock = sock;
	c->refs = 2;
	pthread_attr_init(&ta);
	pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
	started = pthread_create(&t, &ta, closer_main, c) == 0;
	pthread_attr_destroy(&ta);
	if (!started) {
		pthread_cond_destroy(&c->cv);
		goto no_helper_mu;
	}
	until = kf_clock_mono_timespec(kf_clock_mono_ns() + (uint64_t)wait_ms * 1000000u);
	pthread_mutex_lock(&c->mu);
	while (!c->done && pthread_cond_timedwait(&c->cv, &c->mu, &until) != ETIMEDOUT)
		;
	done = c->done;
	pthread_mutex_unlock(&c->mu);
	closer_put(c);
	return done;

no_helper_mu:
	pthread_mutex_destroy(&c->mu);
no_helper:
	free(c);
	nng_close(sock); /* no helper thread: wait as nng does */
	return true;
}

enum kf_err kf_bus_sock_close(struct kf_bus_sock *bs)
{
	if (bs == NULL || atomic_exchange(&bs->closed, true))
		return KF_OK;
	if (bs->on_close)
		bs->on_close(bs->on_close_arg);
	/* The guard must not recreate a listener on a closing socket. */
	kf__ipc_guard_stop(bs);
	/* nng_close returns after every pipe's REM_POST callback has run. */
	if (kf_bus_nng_close(bs->sock) == KF_OK)
		return KF_OK;
	atomic_store(&bs->close_stuck, true);
	return KF_ETIMEDOUT;
}

enum kf_err kf_bus_nng_close(nng_socket sock)
{
	if (close_within(sock, atomic_load(&stuck_closes) ? KF_BUS_CLOSE_WAIT_STUCK_MS
							  : KF_BUS_CLOSE_WAIT_MS))
		return KF_OK;
	atomic_fetch_add(&stuck_closes, 1);
	return KF_ETIMEDOUT;
}

unsigned kf_bus_stuck_closes(void)
{
	return atomic_load(&stuck_closes);
}

void kf__bus_sock_free(struct kf_bus_sock *bs)
{
	if (bs == NULL)
		return;
	kf_bus_sock_close(bs);
	if (atomic_load(&bs->close_stuck))
		return; /* nng may still call pipe_event with it: leave it */
	pthread_cond_destroy(&bs->probe_cv);
	pthread_mutex_destroy(&bs->probe_mu);
	pthread_mutex_destroy(&bs->mu);
	free(bs);
}

nng_socket kf_bus_sock_nng(const struct kf_bus_sock *bs)
{
	return bs->sock;
}

unsigned kf_bus_sock_peers(const struct kf_bus_sock *bs)
{
	return atomic_load(&bs->peers);
}

void kf_bus_sock_stats(const struct kf_bus_sock *bs, struct kf_bus_sock_stats *out)
{
	out->pipes_added = atomic_load(&bs->added);
	out->pipes_removed = atomic_load(&bs->removed);
	out->ipc_probes = atomic_load(&bs->probes);
	out->ipc_wedged = atomic_load(&bs->wedged);
	out->ipc_recreated = atomic_load(&bs->recreated);
}

static bool is_tcp(const struct kf__bus_ep *ep)
{
	return ep->info.transport == KF_BUS_TCP || ep->info.transport == KF_BUS_TLS_TCP;
}

static enum kf_err endpoint_fail(int rv, const char *verb, const char *url,
	struct kf_strbuf *why)
{
	enum kf_err err = kf_bus_err_from_nng(rv);

	if (why == NULL)
		return err;
	if (err == KF_EBUSY)
		kf_strbuf_addf(why, "address %s already in use; is another broker running?", url);
	else
		kf_strbuf_addf(why, "cannot %s '%s': %s", verb, url, nng_strerror(rv));
	return err;
}

/* Builds the TLS configuration and hands it to the endpoint, which holds
 * its own reference. */
static enum kf_err apply_tls(struct kf__bus_ep *ep, const struct kf_bus_opts *opts,
	struct kf_strbuf *why)
{
	bool server = ep->mode == KF_BUS_LISTEN;
	nng_tls_config *cfg = NULL;
	enum kf_err err;
	int rv;

	err = kf__bus_tls_config(opts ? opts->tls : NULL, server, ep->url, ep->info.host,
		&cfg, why);
	if (err != KF_OK)
		return err;
	rv = server ? nng_listener_set_ptr(ep->listener, NNG_OPT_TLS_CONFIG, cfg)
		: nng_dialer_set_ptr(ep->dialer, NNG_OPT_TLS_CONFIG, cfg);
	nng_tls_config_free(cfg);
	return rv ? endpoint_fail(rv, "configure TLS for", ep->url, why) : KF_OK;
}

/* nng 1.5.2 decides that an ipc path is taken by connecting to it and
 * hanging up at once — which wedges the listener behind it (ipc_guard.c).
 * We ask first, politely: a full handshake, then close. */
static bool ipc_in_use(struct kf_bus_sock *bs, const struct kf__bus_ep *ep)
{
	int fd = kf__ipc_handshake(bs, ep->info.host, kf_clock_mono_ns() + 500000000u);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

enum kf_err kf__bus_listener_open(struct kf_bus_sock *bs, struct kf__bus_ep *ep,
	const struct kf_bus_opts *opts, struct kf_strbuf *why)
{
	enum kf_err err = KF_OK;
	int rv;

	atomic_store(&ep->listener_id, -1);
	if (ep->info.transport == KF_BUS_IPC && ipc_in_use(bs, ep))
		return endpoint_fail(NNG_EADDRINUSE, "listen on", ep->url, why);
	rv = nng_listener_create(&ep->listener, bs->sock, ep->url);
	if (rv != 0)
		return endpoint_fail(rv, "listen on", ep->url, why);
	/* TLS must be configured between create and start. */
	if (ep->info.transport == KF_BUS_TLS_TCP)
		err = apply_tls(ep, opts, why);
	if (err == KF_OK) {
		rv = nng_listener_set_size(ep->listener, NNG_OPT_RECVMAXSZ, ep->recv_max);
		if (rv == 0 && is_tcp(ep))
			rv = nng_listener_set_bool(ep->listener, NNG_OPT_TCP_KEEPALIVE, true);
		if (rv == 0 && ep->info.transport == KF_BUS_IPC)
			rv = nng_listener_set_int(ep->listener, NNG_OPT_IPC_PERMISSIONS,
				ep->ipc_mode);
		if (rv == 0)
			rv = nng_listener_start(ep->listener, 0);
		if (rv != 0)
			err = endpoint_fail(rv, "listen on", ep->url, why);
	}
	if (err != KF_OK) {
		nng_listener_close(ep->listener);
		return err;
	}
	atomic_store(&ep->listener_id, nng_listener_id(ep->listener));
	return KF_OK;
}

static enum kf_err dialer_setup(struct kf_bus_sock *bs, struct kf__bus_ep *ep,
	const struct kf_bus_opts *opts, struct kf_strbuf *why)
{
	nng_duration rmin = opts && opts->reconnect_min_ms > 0
		? opts->reconnect_min_ms : KF_BUS_RECONNECT_MIN_MS;
	nng_duration rmax = opts && opts->reconnect_max_ms > 0
		? opts->reconnect_max_ms : KF_BUS_RECONNECT_MAX_MS;
	enum kf_err err = KF_OK;
	int rv;

	rv = nng_dialer_create(&ep->dialer, bs->sock, ep->url);
	if (rv != 0)
		return endpoint_fail(rv, "dial", ep->url, why);
	if (ep->info.transport == KF_BUS_TLS_TCP)
		err = apply_tls(ep, opts, why);
	if (err == KF_OK) {
		rv = nng_dialer_set_size(ep->dialer, NNG_OPT_RECVMAXSZ, ep->recv_max);
		if (rv == 0)
			rv = nng_dialer_set_ms(ep->dialer, NNG_OPT_RECONNMINT, rmin);
		if (rv == 0)
			rv = nng_dialer_set_ms(ep->dialer, NNG_OPT_RECONNMAXT,
				rmax > rmin ? rmax : rmin);
		if (rv == 0 && is_tcp(ep))
			rv = nng_dialer_set_bool(ep->dialer, NNG_OPT_TCP_KEEPALIVE, true);
		/* Non-blocking: connect in the background, retry forever. */
		if (rv == 0)
			rv = nng_dialer_start(ep->dialer, NNG_FLAG_NONBLOCK);
		if (rv != 0)
			err = endpoint_fail(rv, "dial", ep->url, why);
	}
	if (err != KF_OK)
		nng_dialer_close(ep->dialer);
	return err;
}

static void ep_prepare(struct kf_bus_sock *bs, struct kf__bus_ep *ep,
	enum kf_bus_mode mode, const char *url, const struct kf_bus_url_info *info,
	const struct kf_bus_opts *opts)
{
	memset(ep, 0, sizeof(*ep));
	strcpy(ep->url, url); /* kf_bus_url_parse checked the length */
	ep->info = *info;
	ep->mode = mode;
	ep->recv_max = opts && opts->recv_max ? opts->recv_max : bs->default_recv_max;
	ep->ipc_mode = opts && opts->ipc_mode ? opts->ipc_mode : 0600;
	ep->probe_ms = opts && opts->ipc_probe_ms ? opts->ipc_probe_ms : KF_BUS_IPC_PROBE_MS;
	atomic_init(&ep->listener_id, -1);
	atomic_init(&ep->adds, 0);
}

static enum kf_err sock_add(struct kf_bus_sock *bs, enum kf_bus_mode mode,
	const char *url, const struct kf_bus_opts *opts, struct kf_strbuf *why)
{
	struct kf_bus_url_info info;
	struct kf__bus_ep *ep;
	unsigned n;
	enum kf_err err;

	if (atomic_load(&bs->closed))
		return KF_ECANCELED;
	err = kf_bus_url_parse(url, &info, why);
	if (err != KF_OK)
		return err;
	pthread_mutex_lock(&bs->mu);
	n = atomic_load(&bs->n_eps);
	if (n == KF_BUS_MAX_ENDPOINTS) {
		pthread_mutex_unlock(&bs->mu);
		if (why)
			kf_strbuf_addf(why, "cannot add '%s': a socket holds at most %d "
				"endpoints", url, KF_BUS_MAX_ENDPOINTS);
		return KF_EFULL;
	}
	ep = &bs->eps[n];
	ep_prepare(bs, ep, mode, url, &info, opts);
	err = mode == KF_BUS_LISTEN ? kf__bus_listener_open(bs, ep, opts, why)
		: dialer_setup(bs, ep, opts, why);
	if (err == KF_OK) {
		ep->guarded = mode == KF_BUS_LISTEN && ep->info.transport == KF_BUS_IPC
			&& ep->probe_ms > 0;
		/* Publishes the slot to the pipe callback and the guard. */
		atomic_store(&bs->n_eps, n + 1);
	}
	pthread_mutex_unlock(&bs->mu);
	if (err == KF_OK && ep->guarded)
		err = kf__ipc_guard_start(bs);
	return err;
}

enum kf_err kf_bus_sock_listen(struct kf_bus_sock *bs, const char *url,
	const struct kf_bus_opts *opts, struct kf_strbuf *why)
{
	return sock_add(bs, KF_BUS_LISTEN, url, opts, why);
}

enum kf_err kf_bus_sock_dial(struct kf_bus_sock *bs, const char *url,
	const struct kf_bus_opts *opts, struct kf_strbuf *why)
{
	return sock_add(bs, KF_BUS_DIAL, url, opts, why);
}

enum kf_err kf__bus_sock_attach(struct kf_bus_sock *bs, enum kf_bus_mode mode,
	const char *url, const struct kf_bus_opts *opts, struct kf_strbuf *why)
{
	if (url == NULL)
		return KF_OK;
	return sock_add(bs, mode, url, opts, why);
}

enum kf_err kf_bus_sock_bound_url(struct kf_bus_sock *bs, struct kf_strbuf *out)
{
	enum kf_err err = KF_ENOENT;

	pthread_mutex_lock(&bs->mu);
	for (unsigned i = atomic_load(&bs->n_eps); i-- > 0;) {
		struct kf__bus_ep *ep = &bs->eps[i];
		int port;

		if (ep->mode != KF_BUS_LISTEN)
			continue;
		err = KF_OK;
		if (!is_tcp(ep) || nng_listener_get_int(ep->listener,
				NNG_OPT_TCP_BOUND_PORT, &port) != 0) {
			kf_strbuf_addstr(out, ep->url);
			break;
		}
		kf_strbuf_add(out, ep->url, (size_t)(strrchr(ep->url, ':') - ep->url));
		kf_strbuf_addf(out, ":%d", port);
		break;
	}
	pthread_mutex_unlock(&bs->mu);
	return err;
}

static void format_sockaddr(const nng_sockaddr *sa, struct kf_bus_peer *out)
{
	char ip[INET6_ADDRSTRLEN] = "";

	switch (sa->s_family) {
	case NNG_AF_INET:
		inet_ntop(AF_INET, &sa->s_in.sa_addr, ip, sizeof(ip));
		snprintf(out->addr, sizeof(out->addr), "%s:%u", ip, ntohs(sa->s_in.sa_port));
		break;
	case NNG_AF_INET6:
		inet_ntop(AF_INET6, sa->s_in6.sa_addr, ip, sizeof(ip));
		snprintf(out->addr, sizeof(out->addr), "[%s]:%u", ip,
			ntohs(sa->s_in6.sa_port));
		break;
	case NNG_AF_IPC:
		snprintf(out->addr, sizeof(out->addr), "%s", sa->s_ipc.sa_path);
		out->transport = KF_BUS_IPC;
		break;
	case NNG_AF_INPROC:
		snprintf(out->addr, sizeof(out->addr), "%s", sa->s_inproc.sa_name);
		out->transport = KF_BUS_INPROC;
		break;
	default:
		break;
	}
}

enum kf_err kf__bus_pipe_peer(nng_pipe pipe, struct kf_bus_peer *out)
{
	nng_sockaddr sa;
	bool verified;
	int rv;

	memset(out, 0, sizeof(*out));
	rv = nng_pipe_get_addr(pipe, NNG_OPT_REMADDR, &sa);
	if (rv != 0)
		return kf_bus_err_from_nng(rv);
	out->transport = KF_BUS_TCP;
	format_sockaddr(&sa, out);
	/* Only TLS pipes know NNG_OPT_TLS_VERIFIED. */
	if (nng_pipe_get_bool(pipe, NNG_OPT_TLS_VERIFIED, &verified) == 0) {
		out->transport = KF_BUS_TLS_TCP;
		out->tls_verified = verified;
	}
	if (out->transport == KF_BUS_IPC
		&& nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_UID, &out->uid) == 0
		&& nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_GID, &out->gid) == 0
		&& nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_PID, &out->pid) == 0)
		out->has_cred = true;
	return KF_OK;
}
