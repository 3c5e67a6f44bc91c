/*
 * bench_bus_cost.c — what bus/ costs per message: a publish through
 * kf_bus_pub_send against nng used the plain way, and a synchronous call.
 *
 *   bench_bus_cost [--publishes N] [--threads T] [--calls M]
 *
 * 1. N publishes of 64 bytes on a PUB socket listening on loopback with no
 *    subscriber (the send itself: nng drops what no pipe takes), through
 *    kf_bus_pub_send, which keeps one aio (bus/pub.c), and through
 *    nng_sendmsg(NNG_FLAG_NONBLOCK), which sets up an aio per message.
 *    Prints the wall time per publish; the two alternate three times.
 * 2. T threads × M synchronous calls of 16 bytes through
 *    kf_rpc_client_call against an echo server in the same process
 *    (kf_rpc_server, answered from its owner thread, as the broker does),
 *    three times. Prints calls per second and the process's CPU per call,
 *    client and server together.
 *
 * Figures: docs/bus.md.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>

#include "bus/bus.h"
#include "common/clock.h"
#include "common/strbuf.h"

#define PUB_URL "tcp://127.0.0.1:0"
#define RPC_URL "tcp://127.0.0.1:0"

static long n_publishes = 200000, n_calls = 500;
static int n_threads = 64;

static _Noreturn void die(const char *what)
{
	fprintf(stderr, "bench_bus_cost: %s\n", what);
	exit(1);
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
	       ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) * 1e-6;
}

/* ---- publishes ------------------------------------------------------------- */

static void publishes(struct kf_bus_pub *pub, bool plain)
{
	static const char body[64];
	nng_socket s = kf_bus_sock_nng(kf_bus_pub_sock(pub));
	uint64_t t0 = kf_clock_mono_ns();

	for (long i = 0; i < n_publishes; i++) {
		nng_msg *m;

		if (!plain) {
			if (kf_bus_pub_send(pub, "t.", 2, body, sizeof body))
				die("publish failed");
			continue;
		}
		if (nng_msg_alloc(&m, 0) || nng_msg_append(m, "t.", 2) ||
		    nng_msg_append(m, body, sizeof body) || nng_sendmsg(s, m, NNG_FLAG_NONBLOCK))
			die("nng_sendmsg failed");
	}
	printf("  publish %-24s %.2f us\n", plain ? "nng_sendmsg" : "kf_bus_pub_send",
	       (double)(kf_clock_mono_ns() - t0) / 1e3 / (double)n_publishes);
}

/* ---- calls ----------------------------------------------------------------- */

struct rpc_bench {
	struct kf_rpc_client *cli;
};

static void *caller(void *arg)
{
	struct rpc_bench *rb = arg;
	struct kf_rpc_call_opts o = { .timeout_ms = 5000 };

	for (long i = 0; i < n_calls; i++) {
		nng_msg *reply = NULL;

		if (kf_rpc_client_call(rb->cli, "hello-request-16", 16, &o, &reply))
			die("call failed");
		nng_msg_free(reply);
	}
	return NULL;
}

static void *echo_main(void *arg)
{
	struct kf_rpc_server *srv = arg;
	struct kf_rpc_req *q;

	while (kf_rpc_server_next(srv, NNG_DURATION_INFINITE, &q) == KF_OK) {
		size_t n;
		const void *body = kf_rpc_req_body(q, &n);

		kf_rpc_req_reply(q, body, n);
	}
	return NULL;
}

static void calls(struct rpc_bench *rb)
{
	pthread_t *th = calloc((size_t)n_threads, sizeof(*th));
	uint64_t t0 = kf_clock_mono_ns();
	double c0 = cpu_s(), secs, total = (double)n_threads * (double)n_calls;

	if (!th)
		die("out of memory");
	for (int i = 0; i < n_threads; i++)
		if (pthread_create(&th[i], NULL, caller, rb))
			die("cannot start a caller");
	for (int i = 0; i < n_threads; i++)
		pthread_join(th[i], NULL);
	secs = (double)(kf_clock_mono_ns() - t0) / 1e9;
	printf("  calls kf_rpc_client_call %.0f calls/s, %.1f us of CPU per call\n",
	       total / secs, (cpu_s() - c0) * 1e6 / total);
	free(th);
}

static void usage(FILE *f)
{
	fputs("usage: bench_bus_cost [--publishes N] [--threads T] [--calls M]\n", f);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "publishes", required_argument, NULL, 'p' },
		{ "threads", required_argument, NULL, 't' },
		{ "calls", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct kf_strbuf url = KF_STRBUF_INIT;
	struct kf_rpc_server *srv;
	struct kf_bus_pub *pub;
	struct rpc_bench rb = { 0 };
	pthread_t echo;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'p': n_publishes = atol(optarg); break;
		case 't': n_threads = atoi(optarg); break;
		case 'c': n_calls = atol(optarg); break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (n_publishes < 1 || n_threads < 1 || n_threads > 1024 || n_calls < 1) {
		fputs("bench_bus_cost: --publishes, --threads and --calls must be positive "
		      "(threads at most 1024)\n", stderr);
		return 2;
	}
	if (kf_bus_pub_new(&pub, KF_BUS_LISTEN, PUB_URL, NULL, NULL) ||
	    kf_rpc_server_new(&srv, 256, RPC_URL, NULL, NULL) ||
	    kf_bus_sock_bound_url(kf_rpc_server_sock(srv), &url) ||
	    kf_rpc_client_new(&rb.cli, url.buf, NULL, NULL))
		die("cannot open the sockets on loopback");
	if (pthread_create(&echo, NULL, echo_main, srv))
		die("cannot start the echo server");
	printf("bench_bus_cost: %ld publishes of 64 bytes; %d threads x %ld calls of 16 bytes\n",
	       n_publishes, n_threads, n_calls);
	for (int round = 0; round < 3; round++) {
		publishes(pub, false);
		publishes(pub, true);
	}
	for (int round = 0; round < 3; round++)
		calls(&rb);
	kf_rpc_client_free(rb.cli);
	kf_bus_sock_close(kf_rpc_server_sock(srv)); /* ends the echo thread's wait */
	pthread_join(echo, NULL);
	kf_rpc_server_free(srv);
	kf_bus_pub_free(pub);
	kf_strbuf_release(&url);
	return 0;
}
