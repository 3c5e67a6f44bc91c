/*
 * ipc_guard.c — detects and repairs nng 1.5.2's wedged ipc:// listener.
 *
 * The defect: when a peer connects to an ipc listener and closes before the
 * 8-byte SP handshake completes, nng's negotiation fails with NNG_ECLOSED,
 * which the listener core takes for "listener closed" and never accepts
 * again. The listening socket stays open and the transport still answers
 * the handshake, but the pipes it makes are never handed to the socket:
 * clients connect "successfully" and then nothing they send arrives. (Later
 * nng maps that error to NNG_ECONNSHUT; tcp:// is not affected.)
 *
 * So a probe that only checks the handshake would report a wedged listener
 * healthy. Ours connects a raw AF_UNIX socket, completes the handshake as a
 * peer of the socket's protocol, keeps the connection open and waits for
 * the socket's ADD_PRE pipe event from that listener (any pipe from it
 * counts: another client connecting proves the same). Two failed probes in
 * a row close the listener (which unlinks the path and drops its pipes;
 * their dialers reconnect) and open it again.
 */
#include "bus/bus_internal.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"

/* A local handshake takes well under a millisecond; 500 ms leaves room for
 * a loaded machine, and a false alarm costs only a reconnect. Short probe
 * periods (tests) get shorter timeouts, never under 200 ms. */
static nng_duration probe_timeout(const struct kf__bus_ep *ep)
{
	nng_duration t = 2 * ep->probe_ms;

	return t < 200 ? 200 : t > 500 ? 500 : t;
}

static struct timespec mono_deadline(uint64_t deadline_ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(deadline_ns / 1000000000u),
		.tv_nsec = (long)(deadline_ns % 1000000000u),
	};
	return ts;
}

void kf__ipc_guard_pipe_added(struct kf_bus_sock *bs, int listener_id)
{
	unsigned n = atomic_load(&bs->n_eps);
	bool hit = false;

	/* Dialed pipes have no listener (-1), nor has a listener being reopened. */
	if (listener_id <= 0)
		return;
	for (unsigned i = 0; i < n; i++) {
		struct kf__bus_ep *ep = &bs->eps[i];

		/* Every listener counts, guarded or not: the probe works on any. */
		if (ep->mode == KF_BUS_LISTEN && atomic_load(&ep->listener_id) == listener_id) {
			atomic_fetch_add(&ep->adds, 1);
			hit = true;
		}
	}
	if (hit) {
		pthread_mutex_lock(&bs->probe_mu);
		pthread_cond_broadcast(&bs->probe_cv);
		pthread_mutex_unlock(&bs->probe_mu);
	}
}

/* Waits for fd to become readable until deadline; true when it is. */
static bool wait_readable(int fd, uint64_t deadline_ns)
{
	for (;;) {
		uint64_t now = kf_clock_mono_ns();
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int rc;

		if (now >= deadline_ns)
			return false;
		rc = poll(&pfd, 1, (int)((deadline_ns - now) / 1000000u) + 1);
		if (rc > 0)
			return true;
		if (rc < 0 && errno != EINTR)
			return false;
	}
}

int kf__ipc_handshake(const struct kf_bus_sock *bs, const char *path, uint64_t deadline_ns)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	unsigned char hello[8] = { 0, 'S', 'P', 0, (unsigned char)(bs->peer_proto >> 8),
		(unsigned char)bs->peer_proto, 0, 0 };
	unsigned char reply[8];
	size_t got = 0;
	int fd;

	/* kf_bus_url_parse bounded the path by sun_path. */
	memcpy(sa.sun_path, path, strnlen(path, sizeof(sa.sun_path) - 1));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	/* A fresh Unix stream socket has room for 8 bytes: no partial send. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0
		|| send(fd, hello, sizeof(hello), MSG_NOSIGNAL) != (ssize_t)sizeof(hello))
		goto fail;
	while (got < sizeof(reply)) {
		ssize_t n;

		if (!wait_readable(fd, deadline_ns))
			goto fail;
		n = recv(fd, reply + got, sizeof(reply) - got, 0);
		if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR)))
			goto fail;
		if (n > 0)
			got += (size_t)n;
	}
	if (memcmp(reply, "\0SP\0", 4) != 0
		|| ((reply[4] << 8) | reply[5]) != bs->self_proto)
		goto fail;
	return fd;
fail:
	close(fd);
	return -1;
}

bool kf__ipc_guard_probe(struct kf_bus_sock *bs, struct kf__bus_ep *ep,
	nng_duration timeout_ms)
{
	uint64_t before = atomic_load(&ep->adds);
	uint64_t deadline = kf_clock_mono_ns() + (uint64_t)timeout_ms * 1000000u;
	struct timespec ts = mono_deadline(deadline);
	bool ok;
	int fd;

	atomic_fetch_add(&bs->probes, 1);
	fd = kf__ipc_handshake(bs, ep->info.host, deadline);
	if (fd < 0)
		return false;
	/* Hold the connection open until the socket has the pipe: closing
	 * earlier could itself wedge a slow listener. */
	pthread_mutex_lock(&bs->probe_mu);
	while (atomic_load(&ep->adds) == before && !bs->guard_stop
		&& pthread_cond_timedwait(&bs->probe_cv, &bs->probe_mu, &ts) != ETIMEDOUT)
		;
	ok = atomic_load(&ep->adds) != before;
	pthread_mutex_unlock(&bs->probe_mu);
	close(fd);
	return ok;
}

static void recreate(struct kf_bus_sock *bs, struct kf__bus_ep *ep)
{
	pthread_mutex_lock(&bs->mu);
	if (!atomic_load(&bs->closed)) {
		if (atomic_load(&ep->listener_id) >= 0)
			nng_listener_close(ep->listener);
		/* On failure listener_id stays -1 and the next round retries. */
		if (kf__bus_listener_open(bs, ep, NULL, NULL) == KF_OK)
			atomic_fetch_add(&bs->recreated, 1);
	}
	pthread_mutex_unlock(&bs->mu);
}

static void check(struct kf_bus_sock *bs, struct kf__bus_ep *ep)
{
	if (atomic_load(&ep->listener_id) < 0) {
		recreate(bs, ep);
		return;
	}
	if (kf__ipc_guard_probe(bs, ep, probe_timeout(ep)))
		return;
	atomic_fetch_add(&bs->wedged, 1);
	if (kf__ipc_guard_probe(bs, ep, probe_timeout(ep)))
		return;
	atomic_fetch_add(&bs->wedged, 1);
	recreate(bs, ep);
}

/* One pass over the guarded listeners; returns the next deadline.
 * Called and returns with probe_mu held. */
static uint64_t guard_pass(struct kf_bus_sock *bs)
{
	uint64_t next = UINT64_MAX;
	unsigned n = atomic_load(&bs->n_eps);

	for (unsigned i = 0; i < n && !bs->guard_stop; i++) {
		struct kf__bus_ep *ep = &bs->eps[i];

		if (!ep->guarded)
			continue;
		if (ep->next_probe_ns <= kf_clock_mono_ns()) {
			pthread_mutex_unlock(&bs->probe_mu);
			check(bs, ep);
			pthread_mutex_lock(&bs->probe_mu);
			ep->next_probe_ns = kf_clock_mono_ns()
				+ (uint64_t)ep->probe_ms * 1000000u;
		}
		if (ep->next_probe_ns < next)
			next = ep->next_probe_ns;
	}
	return next;
}

static void *guard_main(void *arg)
{
	struct kf_bus_sock *bs = arg;

	pthread_setname_np(pthread_self(), "kf:ipcguard");  /* top -H, perf */
	pthread_mutex_lock(&bs->probe_mu);
	while (!bs->guard_stop) {
		uint64_t next = guard_pass(bs);
		struct timespec ts;

		if (bs->guard_stop)
			break;
		if (next == UINT64_MAX)
			next = kf_clock_mono_ns() + (uint64_t)KF_BUS_IPC_PROBE_MS * 1000000u;
		ts = mono_deadline(next);
		pthread_cond_timedwait(&bs->probe_cv, &bs->probe_mu, &ts);
	}
	pthread_mutex_unlock(&bs->probe_mu);
	return NULL;
}

enum kf_err kf__ipc_guard_start(struct kf_bus_sock *bs)
{
	enum kf_err err = KF_OK;

	pthread_mutex_lock(&bs->probe_mu);
	if (!bs->guard_started && !bs->guard_stop) {
		if (pthread_create(&bs->guard, NULL, guard_main, bs) == 0)
			bs->guard_started = true;
		else
			err = KF_ENOMEM;
	}
	/* A new listener was added: let the guard schedule it. */
	pthread_cond_broadcast(&bs->probe_cv);
	pthread_mutex_unlock(&bs->probe_mu);
	return err;
}

void kf__ipc_guard_stop(struct kf_bus_sock *bs)
{
	bool started;

	pthread_mutex_lock(&bs->probe_mu);
	bs->guard_stop = true;
	started = bs->guard_started;
	bs->guard_started = false;
	pthread_cond_broadcast(&bs->probe_cv);
	pthread_mutex_unlock(&bs->probe_mu);
	if (started)
		pthread_join(bs->guard, NULL);
}
