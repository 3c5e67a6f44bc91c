/*
 * bench_sub_race.c — a SUB reader with short receive timeouts against a
 * steady publisher: the pattern that crashes nng 1.5.2 (a receive cancelled
 * by its timeout just as a message reaches it; nng issues #1523 and #1682)
 * and that kf_bus_sub_recv is built to survive (bus/sub.c).
 *
 *   bench_sub_race [--secs N] [--subs N] [--timeout-ms N] [--raw]
 *
 * One PUB listens on loopback and sends without pause, sleeping a few
 * hundred microseconds at random; --subs SUB sockets (default 4) dial it,
 * each read by a thread that receives with a timeout of --timeout-ms
 * (default 1) for --secs seconds (default 60). Default: through
 * kf_bus_sub_recv. --raw: through an nng aio with that timeout, as
 * kf_bus_sub_recv did before, to show the defect. Prints what each reader
 * received and how many of its receives timed out; the defect shows as the
 * process dying with SIGSEGV (exit status 139 from a shell) or, once, as
 * nng_close never returning. Figures:
 * docs/bus.md.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/supplemental/util/platform.h>

#include "bus/bus.h"
#include "common/clock.h"
#include "common/strbuf.h"

#define SUBS_MAX 64

static atomic_bool stop;
static int timeout_ms = 1;
static bool raw;

struct reader {
	pthread_t thread;
	struct kf_bus_sub *sub;  /* kf_bus_sub_recv */
	nng_socket raw;          /* --raw: a bare nng SUB socket */
	unsigned long got, timeouts;
};

static void *publish(void *arg)
{
	struct kf_bus_pub *pub = arg;
	unsigned seed = 12345;

	while (!atomic_load(&stop)) {
		kf_bus_pub_send(pub, "t.race", 6, "payload", 7);
		seed = seed * 1103515245u + 12345u;
		if ((seed >> 16) % 4 == 0) {
			struct timespec ts = { 0, (long)((seed >> 8) % 1500) * 1000 };
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

/* The receive kf_bus_sub_recv had until the fix: an aio with a timeout. */
static int raw_recv(nng_socket sock, nng_msg **out)
{
	nng_aio *aio;
	int rv;

	if ((rv = nng_aio_alloc(&aio, NULL, NULL)) != 0)
		return rv;
	nng_aio_set_timeout(aio, timeout_ms);
	nng_recv_aio(sock, aio);
	nng_aio_wait(aio);
	rv = nng_aio_result(aio);
	*out = rv == 0 ? nng_aio_get_msg(aio) : NULL;
	nng_aio_free(aio);
	return rv;
}

static void *read_loop(void *arg)
{
	struct reader *r = arg;

	while (!atomic_load(&stop)) {
		nng_msg *m = NULL;
		bool ok = raw ? raw_recv(r->raw, &m) == 0
			      : kf_bus_sub_recv(r->sub, timeout_ms, &m) == KF_OK;

		if (ok) {
			r->got++;
			nng_msg_free(m);
		} else {
			r->timeouts++;
		}
	}
	return NULL;
}

static void usage(FILE *f)
{
	fputs("usage: bench_sub_race [--secs N] [--subs N] [--timeout-ms N] [--raw]\n"
	      "  --secs N        how long to run (default 60)\n"
	      "  --subs N        SUB sockets, one reader thread each, 1..64 (default 4)\n"
	      "  --timeout-ms N  each receive's timeout (default 1)\n"
	      "  --raw           receive through an nng aio with that timeout (the nng 1.5.2\n"
	      "                  defect: expect a SIGSEGV within minutes) instead of\n"
	      "                  kf_bus_sub_recv\n", f);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "secs", required_argument, NULL, 's' },
		{ "subs", required_argument, NULL, 'n' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "raw", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct reader readers[SUBS_MAX];
	struct kf_strbuf url = KF_STRBUF_INIT;
	struct kf_bus_pub *pub;
	int secs = 60, subs = 4, c;
	unsigned long got = 0, timeouts = 0;
	pthread_t publisher;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's': secs = atoi(optarg); break;
		case 'n': subs = atoi(optarg); break;
		case 't': timeout_ms = atoi(optarg); break;
		case 'r': raw = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (secs < 1 || subs < 1 || subs > SUBS_MAX || timeout_ms < 1) {
		usage(stderr);
		return 2;
	}
	if (kf_bus_pub_new(&pub, KF_BUS_LISTEN, "tcp://127.0.0.1:0", NULL, NULL) != KF_OK ||
	    kf_bus_sock_bound_url(kf_bus_pub_sock(pub), &url) != KF_OK) {
		fprintf(stderr, "bench_sub_race: cannot listen on loopback\n");
		return 1;
	}
	for (int i = 0; i < subs; i++) {
		struct reader *r = &readers[i];
		bool ok;

		*r = (struct reader){ 0 };
		if (raw)
			ok = nng_sub0_open(&r->raw) == 0 &&
			     nng_socket_set(r->raw, NNG_OPT_SUB_SUBSCRIBE, "", 0) == 0 &&
			     nng_dial(r->raw, url.buf, NULL, NNG_FLAG_NONBLOCK) == 0;
		else
			ok = kf_bus_sub_new(&r->sub, KF_BUS_DIAL, url.buf, NULL, NULL) == KF_OK &&
			     kf_bus_sub_subscribe(r->sub, "", 0) == KF_OK;
		if (!ok) {
			fprintf(stderr, "bench_sub_race: cannot dial %s\n", url.buf);
			return 1;
		}
	}
	nng_msleep(200); /* let the readers connect */
	printf("%d readers, receive timeout %d ms, %s, %d s\n", subs, timeout_ms,
	       raw ? "raw nng aio (the defect's pattern)" : "kf_bus_sub_recv", secs);
	fflush(stdout);
	for (int i = 0; i < subs; i++)
		pthread_create(&readers[i].thread, NULL, read_loop, &readers[i]);
	pthread_create(&publisher, NULL, publish, pub);
	nng_msleep(secs * 1000);
	atomic_store(&stop, true);
	pthread_join(publisher, NULL);
	for (int i = 0; i < subs; i++) {
		pthread_join(readers[i].thread, NULL);
		got += readers[i].got;
		timeouts += readers[i].timeouts;
		if (raw)
			nng_close(readers[i].raw);
		else
			kf_bus_sub_free(readers[i].sub);
	}
	kf_bus_pub_free(pub);
	kf_strbuf_release(&url);
	printf("received %lu messages (%.0f/s per reader), %lu receives timed out; no crash\n",
	       got, (double)got / secs / subs, timeouts);
	printf("RESULT mode=%s secs=%d subs=%d timeout_ms=%d received=%lu timeouts=%lu\n",
	       raw ? "raw" : "kf", secs, subs, timeout_ms, got, timeouts);
	return 0;
}
