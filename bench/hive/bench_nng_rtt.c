/*
 * bench_nng_rtt.c — what a bare nng REQ/REP round trip costs on this machine,
 * the floor under every RPC of the hive (docs/performance.md, "How long one
 * slot waits").
 *
 *   bench_nng_rtt [--url URL] [--n N] [--hop]
 *
 * Forks a REP server and runs a synchronous REQ client against it: N round
 * trips of a 64-byte message, then mean, p50 and p99. The server answers
 * from nng's completion callback, or with --hop from a second thread woken
 * through a mutex-guarded slot and an eventfd, as the broker's owner thread
 * is (bus/rpc_server.c): the difference is the price of that one hop.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "bench/hive/hbench.h"
#include "common/clock.h"

#define MSG_BYTES 64

/* The server: one REP context, one aio; receiving or sending. */
static struct {
	nng_ctx ctx;
	nng_aio *aio;
	bool sending, hop;
	int efd;
	pthread_mutex_t mu;
	nng_msg *handed;  /* --hop: the request waiting for the owner thread */
} srv = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void send_reply(nng_msg *m)
{
	srv.sending = true;
	nng_aio_set_msg(srv.aio, m);
	nng_ctx_send(srv.ctx, srv.aio);
}

static void server_cb(void *arg)
{
	uint64_t one = 1;
	nng_msg *m;

	(void)arg;
	if (nng_aio_result(srv.aio) != 0)
		_exit(1);
	if (srv.sending) {
		srv.sending = false;
		nng_ctx_recv(srv.ctx, srv.aio);
		return;
	}
	m = nng_aio_get_msg(srv.aio);
	if (!srv.hop) {
		send_reply(m);
		return;
	}
	pthread_mutex_lock(&srv.mu);
	srv.handed = m;
	pthread_mutex_unlock(&srv.mu);
	if (write(srv.efd, &one, sizeof(one)) < 0)
		_exit(1);
}

static void *owner_main(void *arg)
{
	struct pollfd p = { .fd = srv.efd, .events = POLLIN };
	uint64_t v;
	nng_msg *m;

	(void)arg;
	for (;;) {
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			_exit(1);
		if (read(srv.efd, &v, sizeof(v)) < 0)
			continue;
		pthread_mutex_lock(&srv.mu);
		m = srv.handed;
		srv.handed = NULL;
		pthread_mutex_unlock(&srv.mu);
		if (m)
			send_reply(m);
	}
	return NULL;
}

static void run_server(const char *url, int ready_fd)
{
	nng_socket s;
	pthread_t t;
	char ok = 1;

	srv.efd = eventfd(0, 0);
	if (srv.efd < 0 || nng_rep0_open(&s) || nng_ctx_open(&srv.ctx, s) ||
	    nng_aio_alloc(&srv.aio, server_cb, NULL) || nng_listen(s, url, NULL, 0))
		_exit(1);
	if (srv.hop && pthread_create(&t, NULL, owner_main, NULL))
		_exit(1);
	nng_ctx_recv(srv.ctx, srv.aio);
	if (write(ready_fd, &ok, 1) != 1)
		_exit(1);
	for (;;)
		pause();
}

static void usage(FILE *f)
{
	fputs("usage: bench_nng_rtt [--url URL] [--n N] [--hop]\n"
	      "  --url URL   where the server listens (default tcp://127.0.0.1:17699)\n"
	      "  --n N       round trips (default 5000)\n"
	      "  --hop       answer from a second thread, as the broker does\n", f);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' }, { "n", required_argument, NULL, 'n' },
		{ "hop", no_argument, NULL, 'H' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *url = "tcp://127.0.0.1:17699";
	int c, n = 5000, pipefd[2], status;
	uint64_t t0, total;
	double *lat, p50, p99;
	nng_socket req;
	char ready;
	pid_t pid;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'u': url = optarg; break;
		case 'n': n = atoi(optarg); break;
		case 'H': srv.hop = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (n < 100) {
		fputs("bench_nng_rtt: --n must be at least 100\n", stderr);
		return 2;
	}
	if (pipe(pipefd) != 0 || (pid = fork()) < 0)
		return 1;
	if (pid == 0) {
		close(pipefd[0]);
		run_server(url, pipefd[1]);
	}
	close(pipefd[1]);
	if (read(pipefd[0], &ready, 1) != 1) {
		fprintf(stderr, "bench_nng_rtt: the server did not start on %s\n", url);
		return 1;
	}
	if (nng_req0_open(&req) || nng_dial(req, url, NULL, 0) || !(lat = calloc(n, sizeof(*lat)))) {
		fprintf(stderr, "bench_nng_rtt: cannot dial %s\n", url);
		kill(pid, SIGKILL);
		return 1;
	}
	t0 = kf_clock_mono_ns();
	for (int i = 0; i < n; i++) {
		uint64_t a = kf_clock_mono_ns();
		nng_msg *m;

		if (nng_msg_alloc(&m, MSG_BYTES) || nng_sendmsg(req, m, 0) || nng_recvmsg(req, &m, 0)) {
			fprintf(stderr, "bench_nng_rtt: round trip %d failed\n", i);
			kill(pid, SIGKILL);
			return 1;
		}
		nng_msg_free(m);
		lat[i] = (double)(kf_clock_mono_ns() - a) * 1e-3;   /* us */
	}
	total = kf_clock_mono_ns() - t0;
	p50 = kf_hbench_percentile(lat, (size_t)n, 50);   /* sorts lat */
	p99 = kf_hbench_percentile_sorted(lat, (size_t)n, 99);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	printf("bench_nng_rtt %s: %d round trips of %d bytes, %.0f/s, mean %.0f us, "
	       "p50 %.0f us, p99 %.0f us\n", srv.hop ? "hop" : "callback", n, MSG_BYTES,
	       n / ((double)total * 1e-9), (double)total * 1e-3 / n,
	       p50, p99);
	free(lat);
	nng_close(req);
	return 0;
}
