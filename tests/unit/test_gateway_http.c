/* Unit tests for what keyforge-gateway parses out of client bytes and its
 * command line: request ids, Accept-Encoding, path unescaping, base64, the
 * credentials file and Authorization checks (gateway/httputil.h,
 * gateway/auth.h), flags and environment (gateway/config.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/auth.h"
#include "gateway/config.h"
#include "gateway/httputil.h"

/* ---- request ids ------------------------------------------------------------ */

static void test_request_id(void **state)
{
	(void)state;
	char long_ok[KF_GW_REQUEST_ID_MAX + 1], too_long[KF_GW_REQUEST_ID_MAX + 2];
	memset(long_ok, 'a', KF_GW_REQUEST_ID_MAX);
	long_ok[KF_GW_REQUEST_ID_MAX] = '\0';
	memset(too_long, 'a', KF_GW_REQUEST_ID_MAX + 1);
	too_long[KF_GW_REQUEST_ID_MAX + 1] = '\0';
	static const struct {
		const char *id;
		bool ok;
	} cases[] = {
		{ "abc-123", true }, { "6f1e2d3c-aaaa-bbbb-cccc-0123456789ab", true },
		{ "!~", true }, { "", false }, { "a b", false }, { "tab\t", false },
		{ "del\x7f", false }, { "caf\xc3\xa9", false }, { "new\nline", false },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		assert_int_equal(kf_gw_request_id_valid(cases[i].id), cases[i].ok);
	assert_false(kf_gw_request_id_valid(NULL));
	assert_true(kf_gw_request_id_valid(long_ok));
	assert_false(kf_gw_request_id_valid(too_long));

	char a[KF_GW_REQUEST_ID_GEN_SIZE], b[KF_GW_REQUEST_ID_GEN_SIZE];
	kf_gw_request_id_new(a);
	kf_gw_request_id_new(b);
	assert_int_equal(strlen(a), 32);
	assert_int_equal(strspn(a, "0123456789abcdef"), 32);
	assert_true(kf_gw_request_id_valid(a));
	assert_string_not_equal(a, b);
	assert_memory_equal(a, b, 16); /* same process prefix */
}

/* ---- Accept-Encoding --------------------------------------------------------- */

static void test_accept_gzip(void **state)
{
	(void)state;
	static const struct {
		const char *ae;
		bool gzip;
	} cases[] = {
		{ "", false }, { "gzip", true }, { "GZip", true }, { "x-gzip", true },
		{ "identity", false }, { "deflate", false }, { "gzipx", false },
		{ "deflate, gzip", true }, { "gzip;q=0", false }, { "gzip;q=0.0", false },
		{ "gzip; q=0.000", false }, { "gzip;q=0.001", true }, { "gzip;q=1.000", true },
		{ "gzip;q=1.5", false }, { "gzip;q=2", false }, { "gzip;q=", false },
		{ "gzip;q=0.1234", false }, { "gzip ; q=0.5", true }, { "*", true },
		{ "*;q=0", false }, { "*, gzip;q=0", false }, { "gzip;q=0, *", false },
		{ "br;q=1.0, gzip;q=0.8, *;q=0.1", true }, { ",,gzip,,", true },
		{ "gzip;level=9;q=0", false }, { ";;;", false }, { "Q=1", false },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		if (kf_gw_accept_gzip(cases[i].ae) != cases[i].gzip)
			fail_msg("Accept-Encoding '%s': expected %d", cases[i].ae, cases[i].gzip);
	}
	assert_false(kf_gw_accept_gzip(NULL));
}

/* ---- unescaping -------------------------------------------------------------- */

static void test_unescape(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "/metrics", "/metrics" }, { "/metrics%2", "/metrics%2" },
		{ "/metrics%", "/metrics%" }, { "/metrics%00", "/metrics%00" },
		{ "/met%72ics", "/metrics" }, { "%41%4a%4A", "AJJ" }, { "%zz%4", "%zz%4" },
		{ "/a%2Fb", "/a/b" }, { "%%41", "%A" }, { "%2541", "%41" }, { "", "" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char buf[64];
		snprintf(buf, sizeof buf, "%s", cases[i].in);
		size_t n = kf_gw_unescape(buf);
		assert_string_equal(buf, cases[i].out);
		assert_int_equal(n, strlen(cases[i].out));
	}
}

/* ---- base64 and credentials ----------------------------------------------------- */

static void test_base64(void **state)
{
	(void)state;
	unsigned char out[64];
	assert_int_equal(kf_gw_base64_decode("YWxpY2U6c2VjcmV0", 16, out, sizeof out), 12);
	assert_memory_equal(out, "alice:secret", 12);
	assert_int_equal(kf_gw_base64_decode("YQ==", 4, out, sizeof out), 1);
	assert_int_equal(out[0], 'a');
	assert_int_equal(kf_gw_base64_decode("YWI=", 4, out, sizeof out), 2);
	assert_int_equal(kf_gw_base64_decode("", 0, out, sizeof out), 0);
	static const char *const bad[] = { "YQ=", "YR==", "YWJ=", "Y===", "YQ==YQ==", "Y=Q=",
					   "YW-x", "YW\nx", "====" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(kf_gw_base64_decode(bad[i], strlen(bad[i]), out, sizeof out), -1);
	assert_int_equal(kf_gw_base64_decode("YWxpY2U6c2VjcmV0", 16, out, 11), -1);
}

static const char creds_text[] =
	"# keyforge-gateway credentials\n"
	"\n"
	"basic alice secret\r\n"
	"basic\tbob   pass word  \n"
	"   # indented comment\n"
	"bearer prometheus sha256:fb07916a0e7daf7f3f4823b7773f85a839a8dd46fbf3858b8f53d3fa463c8ef3\n"
	"bearer grafana plain-token_1.x~";

static void test_creds(void **state)
{
	(void)state;
	struct kf_gw_creds *c;
	struct kf_strbuf why = KF_STRBUF_INIT;
	assert_int_equal(kf_gw_creds_parse(creds_text, strlen(creds_text), &c, &why), KF_OK);
	assert_int_equal(kf_gw_creds_count(c), 4);
	char who[KF_GW_PRINCIPAL_MAX + 1];
	static const struct {
		const char *header;
		enum kf_err err;
		const char *principal;
	} cases[] = {
		{ "Basic YWxpY2U6c2VjcmV0", KF_OK, "alice" },
		{ "basic   YWxpY2U6c2VjcmV0  ", KF_OK, "alice" },
		{ "Basic Ym9iOnBhc3Mgd29yZA==", KF_OK, "bob" },
		{ "Basic YWxpY2U6d3Jvbmc=", KF_EPERM, "" },
		{ "Basic bm9jb2xvbg==", KF_EINVAL, "" },
		{ "Basic !!!!", KF_EINVAL, "" },
		{ "Basic", KF_EINVAL, "" },
		{ "Bearer s3cr3t-token", KF_OK, "prometheus" },
		{ "BEARER plain-token_1.x~", KF_OK, "grafana" },
		{ "Bearer s3cr3t-tokeN", KF_EPERM, "" },
		{ "Bearer sha256:fb07916a0e7daf7f3f4823b7773f85a839a8dd46fbf3858b8f53d3fa463c8ef3",
		  KF_EINVAL, "" }, /* ':' is not token68: the hash is not a password */
		{ "Bearer a b", KF_EINVAL, "" },
		{ "Digest username=alice", KF_EINVAL, "" },
		{ "", KF_EINVAL, "" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		enum kf_err err = kf_gw_creds_check(c, cases[i].header, who);
		if (err != cases[i].err || strcmp(who, cases[i].principal) != 0)
			fail_msg("'%s': got %s '%s'", cases[i].header, kf_errname(err), who);
	}
	assert_int_equal(kf_gw_creds_check(c, NULL, who), KF_ENOENT);
	char big[KF_GW_AUTH_HEADER_MAX + 16];
	memset(big, 'A', sizeof big - 1);
	memcpy(big, "Basic ", 6);
	big[sizeof big - 1] = '\0';
	assert_int_equal(kf_gw_creds_check(c, big, who), KF_EINVAL);
	kf_gw_creds_free(c);
	kf_strbuf_release(&why);
}

static void test_creds_errors(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		const char *why;
	} cases[] = {
		{ "", "no credential" },
		{ "# only a comment\n\n", "no credential" },
		{ "basic alice\n", "line 1" },
		{ "\nbasic al:ice secret\n", "line 2" },
		{ "basic alice secret\ndigest bob x\n", "line 2" },
		{ "bearer  \n", "line 1" },
		{ "basic 01234567890123456789012345678901234567890123456789012345678901234 x\n",
		  "line 1" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct kf_gw_creds *c = (void *)1;
		struct kf_strbuf why = KF_STRBUF_INIT;
		assert_int_equal(kf_gw_creds_parse(cases[i].text, strlen(cases[i].text), &c, &why),
				 KF_EINVAL);
		assert_null(c);
		if (!strstr(why.buf, cases[i].why))
			fail_msg("'%s': message '%s'", cases[i].text, why.buf);
		kf_strbuf_release(&why);
	}
	struct kf_gw_creds *c;
	assert_int_equal(kf_gw_creds_parse("basic a b\0c\n", 12, &c, NULL), KF_EINVAL);
	struct kf_strbuf why = KF_STRBUF_INIT;
	assert_int_equal(kf_gw_creds_load("/nonexistent/creds", &c, &why), KF_ENOENT);
	assert_non_null(strstr(why.buf, "/nonexistent/creds"));
	kf_strbuf_release(&why);
}

/* ---- flags and environment ------------------------------------------------------ */

static void test_hostport(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		enum kf_err err;
		const char *host;
		unsigned port;
	} cases[] = {
		{ "127.0.0.1:9469", KF_OK, "127.0.0.1", 9469 },
		{ "localhost:0", KF_OK, "localhost", 0 },
		{ ":80", KF_OK, "", 80 },
		{ "[::1]:9469", KF_OK, "::1", 9469 },
		{ "[::]:65535", KF_OK, "::", 65535 },
		{ "::1:9469", KF_EINVAL, "", 0 },
		{ "127.0.0.1", KF_EINVAL, "", 0 },
		{ "127.0.0.1:", KF_EINVAL, "", 0 },
		{ "127.0.0.1:65536", KF_EINVAL, "", 0 },
		{ "127.0.0.1:-1", KF_EINVAL, "", 0 },
		{ "127.0.0.1:12a", KF_EINVAL, "", 0 },
		{ "[::1]9469", KF_EINVAL, "", 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char host[KF_GW_HOST_MAX] = "";
		unsigned port = 0;
		enum kf_err err = kf_gw_parse_hostport(cases[i].in, host, &port);
		if (err != cases[i].err)
			fail_msg("'%s': %s", cases[i].in, kf_errname(err));
		if (!err) {
			assert_string_equal(host, cases[i].host);
			assert_int_equal(port, cases[i].port);
		}
	}
}

static enum kf_err parse(struct kf_gw_config *cfg, enum kf_gw_config_action *action,
			 struct kf_strbuf *why, char **argv)
{
	int argc = 0;
	while (argv[argc])
		argc++;
	kf_gw_config_init(cfg);
	kf_strbuf_reset(why);
	return kf_gw_config_parse(cfg, argc, argv, action, why);
}

static void test_config(void **state)
{
	(void)state;
	struct kf_gw_config cfg;
	enum kf_gw_config_action action;
	struct kf_strbuf why = KF_STRBUF_INIT;
	unsetenv("KEYFORGE_HTTP");
	unsetenv("KEYFORGE_MONITOR");
	unsetenv("KEYFORGE_DB");

	char *none[] = { "gw", NULL };
	assert_int_equal(parse(&cfg, &action, &why, none), KF_OK);
	assert_int_equal(action, KF_GW_RUN);
	assert_string_equal(cfg.http_host, "127.0.0.1");
	assert_int_equal(cfg.http_port, 9469);
	assert_string_equal(cfg.monitor, "tcp://127.0.0.1:7404");
	assert_null(cfg.db);
	assert_int_equal(cfg.max_series, 1000);
	assert_true(cfg.series_ttl_ns == 60000000000ULL);

	/* The environment, then flags over it. */
	setenv("KEYFORGE_HTTP", "0.0.0.0:8080", 1);
	setenv("KEYFORGE_MONITOR", "ipc:///tmp/ev.sock", 1);
	setenv("KEYFORGE_DB", "dbname=x", 1);
	assert_int_equal(parse(&cfg, &action, &why, none), KF_OK);
	assert_string_equal(cfg.http, "0.0.0.0:8080");
	assert_string_equal(cfg.monitor, "ipc:///tmp/ev.sock");
	assert_string_equal(cfg.db, "dbname=x");
	char *flags[] = { "gw", "--http", "[::1]:1234", "--series-ttl", "500ms", "--max-series",
			  "7", "--idle-timeout", "2s", "--db", "dbname=y", "--tls-cert", "c.pem",
			  NULL };
	assert_int_equal(parse(&cfg, &action, &why, flags), KF_OK);
	assert_string_equal(cfg.http_host, "::1");
	assert_int_equal(cfg.http_port, 1234);
	assert_true(cfg.series_ttl_ns == 500000000ULL);
	assert_int_equal(cfg.max_series, 7);
	assert_int_equal(cfg.idle_timeout_s, 2);
	assert_string_equal(cfg.db, "dbname=y");
	assert_string_equal(cfg.tls_cert, "c.pem");

	char *help[] = { "gw", "--max-series", "3", "--help", NULL };
	assert_int_equal(parse(&cfg, &action, &why, help), KF_OK);
	assert_int_equal(action, KF_GW_HELP);
	char *version[] = { "gw", "--version", NULL };
	assert_int_equal(parse(&cfg, &action, &why, version), KF_OK);
	assert_int_equal(action, KF_GW_VERSION);

	static const struct {
		char *argv[4];
		const char *why;
	} bad[] = {
		{ { "gw", "--bogus", NULL }, "unknown option '--bogus'" },
		{ { "gw", "--http", NULL }, "missing value" },
		{ { "gw", "--http", "nohost", NULL }, "invalid HTTP address 'nohost'" },
		{ { "gw", "--monitor", "ws://x:1", NULL }, "ws://" },
		{ { "gw", "--events", "tcp://127.0.0.1:7401", NULL }, "--events is now --monitor" },
		{ { "gw", "--max-series", "0", NULL }, "--max-series" },
		{ { "gw", "--idle-timeout", "100ms", NULL }, "--idle-timeout" },
		{ { "gw", "--series-ttl", "soon", NULL }, "--series-ttl" },
		{ { "gw", "--series-ttl", "25h", NULL }, "--series-ttl" }, /* above a day */
		{ { "gw", "--tls-key", "k.pem", NULL }, "--tls-key needs --tls-cert" },
		{ { "gw", "stray", NULL }, "unexpected argument 'stray'" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(parse(&cfg, &action, &why, (char **)bad[i].argv), KF_EINVAL);
		if (!strstr(why.buf, bad[i].why))
			fail_msg("case %zu: message '%s'", i, why.buf);
	}
	/* libmicrohttpd gives each HTTP thread its share of --max-connections: a
	 * share of 0 is refused, against the default of 2 threads as well. */
	char *conn_low[] = { "gw", "--max-connections", "3", "--http-threads", "4", NULL };
	assert_int_equal(parse(&cfg, &action, &why, conn_low), KF_EINVAL);
	assert_string_equal(why.buf, "--max-connections 3 is below --http-threads 4: each HTTP "
				     "thread needs at least one connection; raise "
				     "--max-connections or lower --http-threads");
	char *conn_default[] = { "gw", "--max-connections", "1", NULL };
	assert_int_equal(parse(&cfg, &action, &why, conn_default), KF_EINVAL);
	assert_non_null(strstr(why.buf, "--max-connections 1 is below --http-threads 2"));
	char *conn_equal[] = { "gw", "--http-threads", "3", "--max-connections", "3", NULL };
	assert_int_equal(parse(&cfg, &action, &why, conn_equal), KF_OK);
	assert_int_equal(cfg.max_connections, 3);
	assert_int_equal(cfg.http_threads, 3);
	char *conn_one[] = { "gw", "--http-threads", "1", "--max-connections", "1", NULL };
	assert_int_equal(parse(&cfg, &action, &why, conn_one), KF_OK);

	setenv("KEYFORGE_HTTP", "bad", 1);
	assert_int_equal(parse(&cfg, &action, &why, none), KF_EINVAL);
	unsetenv("KEYFORGE_HTTP");
	unsetenv("KEYFORGE_MONITOR");
	unsetenv("KEYFORGE_DB");
	kf_strbuf_release(&why);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_id),
		cmocka_unit_test(test_accept_gzip),
		cmocka_unit_test(test_unescape),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_creds),
		cmocka_unit_test(test_creds_errors),
		cmocka_unit_test(test_hostport),
		cmocka_unit_test(test_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
