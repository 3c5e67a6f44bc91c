/*
 * The ipc guard: nng 1.5.2's ipc:// listener stops handing connections to
 * its socket after a peer disconnects mid-handshake. These tests reproduce
 * the defect with a raw AF_UNIX client, check the probe tells a healthy
 * listener from a wedged one, and check the guard recreates it.
 *
 * If a later nng fixes the defect, test_defect_reproduces fails: then the
 * guard can go (docs/bus.md).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/util/platform.h>

#include "bus/bus.h"
#include "bus/bus_internal.h"
#include "common/clock.h"

/* Under -Dsanitizers=address: nng 1.5.2 never frees a wedged listener's
 * endpoint and the pipes stuck in it (its own leak, a few KB per wedge,
 * reachable only from each other). This binary wedges listeners on
 * purpose, so its allocations inside libnng are not reported; test_bus,
 * which wedges nothing, runs without suppressions and checks our code. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libnng.so\n";
}

static char tmpdir[64];

static int group_setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/kf-bus-ipc-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static uint64_t ms_since(uint64_t t0)
{
	return (kf_clock_mono_ns() - t0) / 1000000u;
}

/* Connects to the ipc path and closes at once, before the handshake: the
 * trigger of the defect. */
static void hangup_mid_handshake(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_true(strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path));
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
}

/* One hang-up wedges the listener only when nng's negotiation fails with
 * NNG_ECLOSED while the listener core waits for a pipe; it can also fail
 * with another code (the listener then backs off and carries on). So hang
 * up every 25 ms until `wedged` says it worked (the guard needs one failed
 * probe, up to 600 ms, to say so). Returns the number of hang-ups. */
static int wedge_until(const char *path, bool (*wedged)(void *), void *arg)
{
	uint64_t t0 = kf_clock_mono_ns();
	int n = 0;

	while (ms_since(t0) < 4000) {
		hangup_mid_handshake(path);
		n++;
		nng_msleep(25);
		if (wedged(arg))
			return n;
	}
	fail_msg("%d hang-ups in 4 s did not wedge the ipc listener: is nng fixed?", n);
	return 0;
}

struct echo {
	struct kf_rpc_server *srv;
	pthread_t thread;
	int answered;
};

/* A minimal owner thread: answers every request with its own bytes. */
static void *echo_main(void *arg)
{
	struct echo *e = arg;
	struct kf_rpc_req *req;

	while (kf_rpc_server_next(e->srv, NNG_DURATION_INFINITE, &req) == KF_OK) {
		size_t len;
		const void *body = kf_rpc_req_body(req, &len);

		if (kf_rpc_req_reply(req, body, len) == KF_OK)
			e->answered++;
	}
	return NULL;
}

static void echo_start(struct echo *e, const char *url, nng_duration probe_ms)
{
	struct kf_bus_opts o = { .ipc_probe_ms = probe_ms };

	memset(e, 0, sizeof(*e));
	assert_int_equal(kf_rpc_server_new(&e->srv, 4, url, &o, NULL), KF_OK);
	assert_int_equal(pthread_create(&e->thread, NULL, echo_main, e), 0);
}

static void echo_stop(struct echo *e)
{
	kf_bus_sock_close(kf_rpc_server_sock(e->srv));
	pthread_join(e->thread, NULL);
	kf_rpc_server_free(e->srv);
}

/* A fresh client's round trip: KF_OK when the listener serves it. */
static enum kf_err fresh_call(const char *url, nng_duration timeout_ms)
{
	struct kf_rpc_call_opts o = { .timeout_ms = timeout_ms };
	struct kf_rpc_client *cli;
	nng_msg *reply = NULL;
	enum kf_err err;

	assert_int_equal(kf_rpc_client_new(&cli, url, NULL, NULL), KF_OK);
	err = kf_rpc_client_call(cli, "ping", 4, &o, &reply);
	if (err == KF_OK) {
		assert_int_equal(nng_msg_len(reply), 4);
		assert_memory_equal(nng_msg_body(reply), "ping", 4);
		nng_msg_free(reply);
	}
	kf_rpc_client_free(cli);
	return err;
}

static struct kf__bus_ep *first_ep(struct kf_rpc_server *srv)
{
	struct kf_bus_sock *bs = kf_rpc_server_sock(srv);

	assert_int_equal(atomic_load(&bs->n_eps), 1);
	return &bs->eps[0];
}

static bool probe_fails(void *arg)
{
	struct kf_rpc_server *srv = arg;

	return !kf__ipc_guard_probe(kf_rpc_server_sock(srv), first_ep(srv), 200);
}

static void test_defect_reproduces(void **state)
{
	char url[KF_BUS_URL_MAX], path[128];
	struct kf_bus_sock_stats st;
	struct echo e;
	int tries;

	(void)state;
	snprintf(path, sizeof(path), "%s/wedge.ipc", tmpdir);
	snprintf(url, sizeof(url), "ipc://%s", path);
	echo_start(&e, url, -1); /* no guard */
	assert_int_equal(fresh_call(url, 2000), KF_OK);
	assert_true(kf__ipc_guard_probe(kf_rpc_server_sock(e.srv), first_ep(e.srv), 500));

	tries = wedge_until(path, probe_fails, e.srv);
	print_message("# ipc listener wedged after %d hang-up(s)\n", tries);
	/* For good: a new client connects at its end, but the socket never
	 * gets the pipe and its request goes nowhere. */
	nng_msleep(200);
	assert_false(kf__ipc_guard_probe(kf_rpc_server_sock(e.srv), first_ep(e.srv), 200));
	assert_int_equal(fresh_call(url, 300), KF_ETIMEDOUT);
	kf_bus_sock_stats(kf_rpc_server_sock(e.srv), &st);
	assert_int_equal(st.ipc_recreated, 0);
	echo_stop(&e);
	assert_int_equal(e.answered, 1);
}

static bool guard_noticed(void *arg)
{
	struct kf_bus_sock_stats st;

	kf_bus_sock_stats(kf_rpc_server_sock(arg), &st);
	return st.ipc_wedged > 0;
}

static void test_guard_recreates(void **state)
{
	char url[KF_BUS_URL_MAX], path[128];
	struct kf_bus_sock_stats st;
	struct echo e;
	uint64_t t0;

	(void)state;
	snprintf(path, sizeof(path), "%s/guarded.ipc", tmpdir);
	snprintf(url, sizeof(url), "ipc://%s", path);
	echo_start(&e, url, 100);
	assert_int_equal(fresh_call(url, 2000), KF_OK);
	/* Healthy probes recreate nothing. */
	nng_msleep(250);
	kf_bus_sock_stats(kf_rpc_server_sock(e.srv), &st);
	assert_true(st.ipc_probes >= 2);
	assert_int_equal(st.ipc_recreated, 0);

	/* Hang up until the guard's probe fails, then watch it repair. */
	print_message("# guard noticed after %d hang-up(s)\n",
		wedge_until(path, guard_noticed, e.srv));
	t0 = kf_clock_mono_ns();
	do {
		nng_msleep(20);
		kf_bus_sock_stats(kf_rpc_server_sock(e.srv), &st);
	} while (st.ipc_recreated == 0 && ms_since(t0) < 5000);
	assert_int_equal(st.ipc_recreated, 1);
	assert_true(st.ipc_wedged >= 2);
	/* The second failed probe (200 ms at this period) follows the first. */
	assert_in_range(ms_since(t0), 100, 2000);
	assert_int_equal(fresh_call(url, 2000), KF_OK);
	echo_stop(&e);
	assert_int_equal(e.answered, 2);
}

/* nng 1.5.2 decides that an ipc path is in use by connecting to it and
 * hanging up at once: the very trigger of the defect. A second KeyForge
 * broker asks with a full handshake first and leaves the first one
 * healthy; a plain nng listener on the same path wedges it, and the
 * first one's guard repairs that. */
static bool raw_nng_listen_busy(const char *url)
{
	nng_socket s;
	int rv;

	assert_int_equal(nng_rep0_open(&s), 0);
	rv = nng_listen(s, url, NULL, 0);
	nng_close(s);
	return rv == NNG_EADDRINUSE;
}

static void test_second_listener_on_ipc(void **state)
{
	char url[KF_BUS_URL_MAX], path[128], want[KF_BUS_URL_MAX + 64];
	struct kf_strbuf why = KF_STRBUF_INIT;
	struct kf_rpc_server *second;
	struct kf_bus_sock_stats st;
	struct echo e;
	int attempts = 0;
	uint64_t t0;

	(void)state;
	snprintf(path, sizeof(path), "%s/second.ipc", tmpdir);
	snprintf(url, sizeof(url), "ipc://%s", path);
	snprintf(want, sizeof(want), "address %s already in use; is another broker running?",
		url);
	echo_start(&e, url, -1);
	assert_int_equal(fresh_call(url, 2000), KF_OK);
	for (int i = 0; i < 10; i++) {
		kf_strbuf_reset(&why);
		assert_int_equal(kf_rpc_server_new(&second, 2, url, NULL, &why), KF_EBUSY);
		assert_string_equal(why.buf, want);
	}
	assert_false(probe_fails(e.srv));
	assert_int_equal(fresh_call(url, 2000), KF_OK);

	do {
		attempts++;
		assert_true(raw_nng_listen_busy(url));
		nng_msleep(25);
	} while (!probe_fails(e.srv) && attempts < 40);
	print_message("# plain nng_listen wedged the listener after %d attempt(s)\n", attempts);
	assert_true(probe_fails(e.srv));
	echo_stop(&e);

	/* With the guard on, it repairs the listener. */
	echo_start(&e, url, 100);
	assert_int_equal(fresh_call(url, 2000), KF_OK);
	t0 = kf_clock_mono_ns();
	do {
		kf_bus_sock_stats(kf_rpc_server_sock(e.srv), &st);
		if (st.ipc_wedged == 0)
			assert_true(raw_nng_listen_busy(url));
		nng_msleep(25);
	} while (st.ipc_recreated == 0 && ms_since(t0) < 5000);
	assert_int_equal(st.ipc_recreated, 1);
	assert_int_equal(fresh_call(url, 3000), KF_OK);
	echo_stop(&e);
	kf_strbuf_release(&why);
}

/* The probe speaks each protocol's peer: a healthy PUB or SUB listener
 * passes, so ingest and events may be offered on ipc as well. */
static void test_probe_pub_and_sub(void **state)
{
	char url[KF_BUS_URL_MAX];
	struct kf_bus_opts o = { .ipc_probe_ms = -1 };
	struct kf_bus_sock *bs;
	struct kf_bus_pub *pub;
	struct kf_bus_sub *sub;

	(void)state;
	snprintf(url, sizeof(url), "ipc://%s/events.ipc", tmpdir);
	assert_int_equal(kf_bus_pub_new(&pub, KF_BUS_LISTEN, url, &o, NULL), KF_OK);
	bs = kf_bus_pub_sock(pub);
	assert_true(kf__ipc_guard_probe(bs, &bs->eps[0], 500));
	snprintf(url, sizeof(url), "ipc://%s/ingest.ipc", tmpdir);
	assert_int_equal(kf_bus_sub_new(&sub, KF_BUS_LISTEN, url, &o, NULL), KF_OK);
	bs = kf_bus_sub_sock(sub);
	assert_true(kf__ipc_guard_probe(bs, &bs->eps[0], 500));
	kf_bus_sub_free(sub);
	kf_bus_pub_free(pub);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defect_reproduces),
		cmocka_unit_test(test_guard_recreates),
		cmocka_unit_test(test_second_listener_on_ipc),
		cmocka_unit_test(test_probe_pub_and_sub),
	};
	int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);

	/* nng closes listeners and pipes on its reaper thread after the calls
	 * return: without this, LeakSanitizer may see them in flight at exit
	 * and report them (nng.h recommends it for memory checkers). */
	nng_fini();
	return rc;
}
