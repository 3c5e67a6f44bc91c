/* Unit tests for bus/addr and bus/tls option parsing: no sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bus/addr.h"
#include "bus/tls.h"
#include "common/strbuf.h"

static void test_defaults(void **state)
{
	struct kf_bus_addrs a;

	(void)state;
	kf_bus_addrs_init(&a);
	assert_string_equal(kf_bus_addrs_get(&a, KF_BUS_INGEST), "tcp://127.0.0.1:7400");
	assert_string_equal(kf_bus_addrs_get(&a, KF_BUS_EVENTS), "tcp://127.0.0.1:7401");
	assert_string_equal(kf_bus_addrs_get(&a, KF_BUS_RPC), "tcp://127.0.0.1:7402");
	assert_string_equal(kf_bus_addrs_get(&a, KF_BUS_COMMANDS), "tcp://127.0.0.1:7403");
	assert_string_equal(kf_bus_role_env(KF_BUS_RPC), "KEYFORGE_RPC");
	assert_string_equal(kf_bus_role_env(KF_BUS_COMMANDS), "KEYFORGE_COMMANDS");
	assert_string_equal(kf_bus_role_name(KF_BUS_COMMANDS), "commands");
	assert_string_equal(kf_bus_role_name(KF_BUS_EVENTS), "events");
	assert_string_equal(kf_bus_addrs_get(&a, KF_BUS_MONITOR), "tcp://127.0.0.1:7404");
	assert_string_equal(kf_bus_role_env(KF_BUS_MONITOR), "KEYFORGE_MONITOR");
	assert_string_equal(kf_bus_role_name(KF_BUS_MONITOR), "monitor");
	assert_null(kf_bus_role_env((enum kf_bus_role)7));
	assert_string_equal(kf_bus_role_name((enum kf_bus_role)7), "?");
}

static void test_env_then_flag(void **state)
{
	struct kf_strbuf why = KF_STRBUF_INIT;
	struct kf_bus_addrs a;

	(void)state;
	kf_bus_addrs_init(&a);
	setenv("KEYFORGE_INGEST", "ipc:///tmp/kf-ingest.ipc", 1);
	setenv("KEYFORGE_EVENTS", "", 1); /* empty: ignored */
	setenv("KEYFORGE_RPC", "tls+tcp://broker.example:7502", 1);
	assert_int_equal(kf_bus_addrs_from_env(&a, &why), KF_OK);
	assert_string_equal(a.url[KF_BUS_INGEST], "ipc:///tmp/kf-ingest.ipc");
	assert_string_equal(a.url[KF_BUS_EVENTS], "tcp://127.0.0.1:7401");
	assert_string_equal(a.url[KF_BUS_RPC], "tls+tcp://broker.example:7502");
	/* A flag wins over the environment. */
	assert_int_equal(kf_bus_addrs_set(&a, KF_BUS_RPC, "tcp://127.0.0.1:9000", &why), KF_OK);
	assert_string_equal(a.url[KF_BUS_RPC], "tcp://127.0.0.1:9000");
	assert_int_equal(why.len, 0);
	unsetenv("KEYFORGE_INGEST");
	unsetenv("KEYFORGE_EVENTS");
	unsetenv("KEYFORGE_RPC");
	kf_strbuf_release(&why);
}

static void test_env_invalid_keeps_default(void **state)
{
	struct kf_strbuf why = KF_STRBUF_INIT;
	struct kf_bus_addrs a;

	(void)state;
	kf_bus_addrs_init(&a);
	setenv("KEYFORGE_EVENTS", "ws://127.0.0.1:7401", 1);
	setenv("KEYFORGE_RPC", "tcp://127.0.0.1:9100", 1);
	assert_int_equal(kf_bus_addrs_from_env(&a, &why), KF_EINVAL);
	assert_string_equal(a.url[KF_BUS_EVENTS], "tcp://127.0.0.1:7401");
	assert_string_equal(a.url[KF_BUS_RPC], "tcp://127.0.0.1:9100");
	assert_non_null(strstr(why.buf, "'ws://127.0.0.1:7401'"));
	assert_non_null(strstr(why.buf, "HTTP server"));
	assert_non_null(strstr(why.buf, "(from KEYFORGE_EVENTS)"));
	unsetenv("KEYFORGE_EVENTS");
	unsetenv("KEYFORGE_RPC");
	kf_strbuf_release(&why);
}

struct url_case {
	const char *url;
	enum kf_err err;
	enum kf_bus_transport transport;
	bool loopback;
	unsigned port;
	const char *host;
};

static const struct url_case url_cases[] = {
	{ "tcp://127.0.0.1:7400", KF_OK, KF_BUS_TCP, true, 7400, "127.0.0.1" },
	{ "tcp://127.8.9.10:1", KF_OK, KF_BUS_TCP, true, 1, "127.8.9.10" },
	{ "tcp://localhost:7400", KF_OK, KF_BUS_TCP, true, 7400, "localhost" },
	{ "tcp://[::1]:7400", KF_OK, KF_BUS_TCP, true, 7400, "::1" },
	{ "tcp://[::ffff:127.0.0.1]:7400", KF_OK, KF_BUS_TCP, true, 7400, "::ffff:127.0.0.1" },
	{ "tcp://0.0.0.0:7400", KF_OK, KF_BUS_TCP, false, 7400, "0.0.0.0" },
	{ "tcp://*:7400", KF_OK, KF_BUS_TCP, false, 7400, "" },
	{ "tcp://:7400", KF_OK, KF_BUS_TCP, false, 7400, "" },
	{ "tcp://[::]:7400", KF_OK, KF_BUS_TCP, false, 7400, "::" },
	{ "tcp://10.1.2.3:0", KF_OK, KF_BUS_TCP, false, 0, "10.1.2.3" },
	{ "tcp4://128.0.0.1:7400", KF_OK, KF_BUS_TCP, false, 7400, "128.0.0.1" },
	{ "tls+tcp://broker.example:7402", KF_OK, KF_BUS_TLS_TCP, false, 7402, "broker.example" },
	{ "tls+tcp://127.0.0.1:7402", KF_OK, KF_BUS_TLS_TCP, true, 7402, "127.0.0.1" },
	{ "ipc:///run/keyforge/rpc.ipc", KF_OK, KF_BUS_IPC, true, 0, "/run/keyforge/rpc.ipc" },
	{ "inproc://test", KF_OK, KF_BUS_INPROC, true, 0, "test" },
	{ "tcp://127.0.0.1", KF_EINVAL, 0, false, 0, "" },
	{ "tcp://127.0.0.1:", KF_EINVAL, 0, false, 0, "" },
	{ "tcp://127.0.0.1:65536", KF_EINVAL, 0, false, 0, "" },
	{ "tcp://127.0.0.1:74x0", KF_EINVAL, 0, false, 0, "" },
	{ "tcp://[::1:7400", KF_EINVAL, 0, false, 0, "" },
	{ "ipc://", KF_EINVAL, 0, false, 0, "" },
	{ "ws://127.0.0.1:7400", KF_EINVAL, 0, false, 0, "" },
	{ "wss://127.0.0.1:7400", KF_EINVAL, 0, false, 0, "" },
	{ "http://127.0.0.1:7400", KF_EINVAL, 0, false, 0, "" },
	{ "127.0.0.1:7400", KF_EINVAL, 0, false, 0, "" },
};

static void test_url_parse_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(url_cases) / sizeof(url_cases[0]); i++) {
		const struct url_case *c = &url_cases[i];
		struct kf_bus_url_info info;
		enum kf_err err = kf_bus_url_parse(c->url, &info, NULL);

		if (err != c->err)
			fail_msg("%s: got %d, want %d", c->url, err, c->err);
		if (err != KF_OK)
			continue;
		if (info.transport != c->transport || info.loopback != c->loopback
			|| info.port != c->port || strcmp(info.host, c->host) != 0)
			fail_msg("%s: transport %d loopback %d port %u host '%s'", c->url,
				info.transport, info.loopback, info.port, info.host);
		assert_int_equal(kf_bus_url_is_loopback(c->url), c->loopback);
	}
}

static void test_url_limits(void **state)
{
	struct kf_strbuf why = KF_STRBUF_INIT;
	struct kf_bus_url_info info;
	char url[400];

	(void)state;
	memset(url, 'a', sizeof(url));
	memcpy(url, "ipc:///", 7);
	url[6 + 108] = '\0'; /* 108-byte path: one more than sun_path holds */
	assert_int_equal(kf_bus_url_parse(url, &info, &why), KF_ERANGE);
	assert_non_null(strstr(why.buf, "at most 107 bytes"));
	url[6 + 107] = '\0';
	assert_int_equal(kf_bus_url_parse(url, &info, NULL), KF_OK);
	memset(url, 'a', sizeof(url));
	memcpy(url, "tcp://", 6);
	url[sizeof(url) - 1] = '\0';
	assert_int_equal(kf_bus_url_parse(url, &info, NULL), KF_ERANGE);
	assert_int_equal(kf_bus_url_parse(NULL, &info, NULL), KF_EINVAL);
	assert_false(kf_bus_url_is_loopback("garbage"));
	kf_strbuf_release(&why);
}

static void test_listen_exposed(void **state)
{
	struct kf_strbuf w = KF_STRBUF_INIT;

	(void)state;
	assert_false(kf_bus_listen_exposed("tcp://127.0.0.1:7400", &w));
	assert_false(kf_bus_listen_exposed("ipc:///tmp/x.ipc", &w));
	assert_false(kf_bus_listen_exposed("not-a-url", &w));
	assert_int_equal(w.len, 0);
	assert_true(kf_bus_listen_exposed("tcp://0.0.0.0:7400", &w));
	assert_string_equal(w.buf, "listening on 'tcp://0.0.0.0:7400', reachable from "
		"other hosts without authentication or encryption; use tls+tcp:// with "
		"client certificates or an SSH tunnel to 127.0.0.1");
	kf_strbuf_reset(&w);
	assert_true(kf_bus_listen_exposed("tls+tcp://*:7402", &w));
	assert_non_null(strstr(w.buf, "authenticated by TLS certificates"));
	assert_true(kf_bus_listen_exposed("tcp://*:7400", NULL));
	kf_strbuf_release(&w);
}

static void test_tls_opts_from_env(void **state)
{
	struct kf_bus_tls_opts o;

	(void)state;
	unsetenv("KEYFORGE_TLS_CERT");
	unsetenv("KEYFORGE_TLS_KEY");
	unsetenv("KEYFORGE_TLS_CA");
	unsetenv("KEYFORGE_TLS_SERVER_NAME");
	assert_false(kf_bus_tls_opts_from_env(&o));
	assert_null(o.cert_file);
	setenv("KEYFORGE_TLS_CERT", "/etc/kf/broker.pem", 1);
	setenv("KEYFORGE_TLS_KEY", "", 1);
	setenv("KEYFORGE_TLS_CA", "/etc/kf/ca.pem", 1);
	assert_true(kf_bus_tls_opts_from_env(&o));
	assert_string_equal(o.cert_file, "/etc/kf/broker.pem");
	assert_null(o.key_file);
	assert_string_equal(o.ca_file, "/etc/kf/ca.pem");
	assert_int_equal(o.verify_peer, KF_BUS_TLS_VERIFY_REQUIRED);
	unsetenv("KEYFORGE_TLS_CERT");
	unsetenv("KEYFORGE_TLS_KEY");
	unsetenv("KEYFORGE_TLS_CA");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_env_then_flag),
		cmocka_unit_test(test_env_invalid_keeps_default),
		cmocka_unit_test(test_url_parse_table),
		cmocka_unit_test(test_url_limits),
		cmocka_unit_test(test_listen_exposed),
		cmocka_unit_test(test_tls_opts_from_env),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
