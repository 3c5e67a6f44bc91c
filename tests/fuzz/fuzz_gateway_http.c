/*
 * fuzz_gateway_http.c — libFuzzer target for what keyforge-gateway parses
 * out of client bytes (gateway/httputil.h, gateway/auth.h) and the Accept
 * negotiation it relies on (telemetry/expo.h).
 *
 * Each input is used twice:
 *   1. as a header value (cut at its first NUL): Authorization against a
 *      fixed credential set, Accept-Encoding, Accept, X-Request-Id, and the
 *      path unescaper;
 *   2. as a credentials file (kf_gw_creds_parse), and when it parses, the
 *      same input checked against it as an Authorization header;
 *   3. as the value of a flag (gateway/config.h): --listen's HOST:PORT and
 *      the durations, which must come back within their documented bounds.
 * Invariants that must hold for every input abort when they do not.
 *
 * Built as a libFuzzer binary with -Dfuzz=true (clang), and in every build as
 * a replay program (replay.c) over seeds/gateway_http (suite fuzz-seeds).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/parse.h"
#include "gateway/auth.h"
#include "gateway/config.h"
#include "gateway/httputil.h"
#include "telemetry/expo.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fixed_creds[] =
	"basic alice secret\n"
	"bearer prometheus sha256:fb07916a0e7daf7f3f4823b7773f85a839a8dd46fbf3858b8f53d3fa463c8ef3\n";

static struct kf_gw_creds *creds(void)
{
	static struct kf_gw_creds *c;
	if (!c && kf_gw_creds_parse(fixed_creds, sizeof(fixed_creds) - 1, &c, NULL) != KF_OK)
		abort();
	return c;
}

static void check_principal(enum kf_err err, const char *who)
{
	size_t n = strnlen(who, KF_GW_PRINCIPAL_MAX + 1);
	if (n > KF_GW_PRINCIPAL_MAX || (err == KF_OK) != (n > 0))
		abort();
	if (err != KF_OK && err != KF_ENOENT && err != KF_EINVAL && err != KF_EPERM)
		abort();
}

static void as_header(const char *s)
{
	char who[KF_GW_PRINCIPAL_MAX + 1];
	check_principal(kf_gw_creds_check(creds(), s, who), who);
	(void)kf_gw_accept_gzip(s);
	const char *ctype = NULL;
	enum kf_expo_format fmt = kf_expo_negotiate(s, &ctype);
	if (!ctype || (fmt != KF_EXPO_TEXT && fmt != KF_EXPO_OPENMETRICS))
		abort();
	if (kf_gw_request_id_valid(s)) {
		for (const char *p = s; *p; p++)
			if (*p < 0x21 || *p > 0x7e)
				abort();
		if (strlen(s) > KF_GW_REQUEST_ID_MAX)
			abort();
	}
	size_t len = strlen(s);
	char *u = malloc(len + 1);
	if (!u)
		return;
	memcpy(u, s, len + 1);
	size_t n = kf_gw_unescape(u);
	/* Never longer, NUL-terminated at n, no NUL made up from "%00". */
	if (n > len || strlen(u) != n || (!strchr(s, '%') && strcmp(u, s) != 0))
		abort();
	free(u);
}

static void as_flag(const char *s)
{
	char host[KF_GW_HOST_MAX];
	unsigned port = 70000;
	uint64_t ns = 0;

	memset(host, 'x', sizeof host);
	if (kf_gw_parse_hostport(s, host, &port) == KF_OK) {
		if (!memchr(host, '\0', sizeof host) || strlen(host) >= strlen(s) || port > 65535)
			abort();
	}
	if (kf_parse_duration_ns(s, 1000000000ull, 86400ull * 1000000000ull, &ns) &&
	    ns > 86400ull * 1000000000ull)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = kf_fuzz_text(data, size);
	if (!s)
		return 0;
	as_header(s);
	as_flag(s);
	struct kf_gw_creds *c = NULL;
	if (kf_gw_creds_parse((const char *)data, size, &c, NULL) == KF_OK) {
		if (!c || kf_gw_creds_count(c) == 0)
			abort();
		char who[KF_GW_PRINCIPAL_MAX + 1];
		check_principal(kf_gw_creds_check(c, s, who), who);
		kf_gw_creds_free(c);
	} else if (c) {
		abort();
	}
	free(s);
	return 0;
}
