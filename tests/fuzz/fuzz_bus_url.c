/*
 * fuzz_bus_url.c — libFuzzer target for the bus address parser
 * (bus/addr.c kf_bus_url_parse): every program takes its nng addresses from
 * flags and KEYFORGE_* variables, and decides from the parse whether to
 * warn that a listener is reachable from other hosts.
 *
 * Any input must either be refused with KF_EINVAL or KF_ERANGE and a
 * message, or be described consistently: a NUL-terminated host shorter than
 * the URL, a port only for tcp and within 0-65535, and the loopback verdict
 * that kf_bus_url_is_loopback and kf_bus_listen_exposed agree with. A
 * violation aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/addr.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kf_strbuf why = KF_STRBUF_INIT, warning = KF_STRBUF_INIT;
	struct kf_bus_url_info info;
	struct kf_bus_addrs addrs;
	char *url = kf_fuzz_text(data, size);
	enum kf_err err;
	bool tcp;

	if (!url)
		return 0;
	kf_bus_addrs_init(&addrs);
	err = kf_bus_url_parse(url, &info, &why);
	if (err) {
		CHECK(err == KF_EINVAL || err == KF_ERANGE, "an unexpected error code");
		CHECK(why.len > 0, "an error without a message");
		CHECK(!kf_bus_url_is_loopback(url), "an invalid address called loopback");
		CHECK(!kf_bus_listen_exposed(url, &warning), "an invalid address called exposed");
		CHECK(kf_bus_addrs_set(&addrs, KF_BUS_RPC, url, NULL) == err, "set disagrees");
		CHECK(!strcmp(kf_bus_addrs_get(&addrs, KF_BUS_RPC), kf_bus_role_default(KF_BUS_RPC)),
		      "a refused address replaced the default");
	} else {
		tcp = info.transport == KF_BUS_TCP || info.transport == KF_BUS_TLS_TCP;
		CHECK(why.len == 0, "a message without an error");
		CHECK(memchr(info.host, '\0', sizeof info.host) != NULL, "host not terminated");
		CHECK(strlen(info.host) < strlen(url), "a host longer than its URL");
		CHECK(info.port <= 65535 && (tcp || info.port == 0), "a port out of place");
		CHECK(tcp || info.loopback, "an ipc or inproc address that is not local");
		CHECK(kf_bus_url_is_loopback(url) == info.loopback, "loopback verdicts differ");
		CHECK(kf_bus_listen_exposed(url, &warning) == !info.loopback, "exposure differs");
		CHECK(info.loopback || warning.len > 0, "exposed without a warning");
		CHECK(kf_bus_addrs_set(&addrs, KF_BUS_RPC, url, NULL) == KF_OK, "set refused it");
		CHECK(!strcmp(kf_bus_addrs_get(&addrs, KF_BUS_RPC), url), "set kept another address");
	}
	kf_strbuf_release(&why);
	kf_strbuf_release(&warning);
	free(url);
	return 0;
}
