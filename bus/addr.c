/* addr.c — default addresses, environment overrides and URL checks. */
#include "bus/addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

struct role_desc {
	const char *name;
	const char *env;
	const char *url;
};

static const struct role_desc roles[KF_BUS_ROLE_COUNT] = {
	[KF_BUS_INGEST] = { "ingest", "KEYFORGE_INGEST", "tcp://127.0.0.1:7400" },
	[KF_BUS_EVENTS] = { "events", "KEYFORGE_EVENTS", "tcp://127.0.0.1:7401" },
	[KF_BUS_RPC] = { "rpc", "KEYFORGE_RPC", "tcp://127.0.0.1:7402" },
	[KF_BUS_COMMANDS] = { "commands", "KEYFORGE_COMMANDS", "tcp://127.0.0.1:7403" },
	[KF_BUS_MONITOR] = { "monitor", "KEYFORGE_MONITOR", "tcp://127.0.0.1:7404" },
};

struct scheme_desc {
	const char *prefix;
	enum kf_bus_transport transport;
	const char *refused; /* non-NULL: why this scheme is not accepted */
};

static const struct scheme_desc schemes[] = {
	{ "tcp://", KF_BUS_TCP, NULL },
	{ "tcp4://", KF_BUS_TCP, NULL },
	{ "tcp6://", KF_BUS_TCP, NULL },
	{ "tls+tcp://", KF_BUS_TLS_TCP, NULL },
	{ "tls+tcp4://", KF_BUS_TLS_TCP, NULL },
	{ "tls+tcp6://", KF_BUS_TLS_TCP, NULL },
	{ "ipc://", KF_BUS_IPC, NULL },
	{ "inproc://", KF_BUS_INPROC, NULL },
	{ "ws://", KF_BUS_TCP, "nng's websocket transport runs on its HTTP server, "
		"which is not used; use tcp:// or tls+tcp://" },
	{ "wss://", KF_BUS_TCP, "nng's websocket transport runs on its HTTP server, "
		"which is not used; use tls+tcp://" },
};

static bool role_valid(enum kf_bus_role role)
{
	return (unsigned)role < KF_BUS_ROLE_COUNT;
}

const char *kf_bus_role_name(enum kf_bus_role role)
{
	return role_valid(role) ? roles[role].name : "?";
}

const char *kf_bus_role_env(enum kf_bus_role role)
{
	return role_valid(role) ? roles[role].env : NULL;
}

const char *kf_bus_role_default(enum kf_bus_role role)
{
	return role_valid(role) ? roles[role].url : NULL;
}

void kf_bus_addrs_init(struct kf_bus_addrs *addrs)
{
	for (int r = 0; r < KF_BUS_ROLE_COUNT; r++)
		strcpy(addrs->url[r], roles[r].url);
}

enum kf_err kf_bus_addrs_set(struct kf_bus_addrs *addrs, enum kf_bus_role role,
	const char *url, struct kf_strbuf *why)
{
	struct kf_bus_url_info info;
	enum kf_err err;

	if (!role_valid(role) || url == NULL)
		return KF_EINVAL;
	err = kf_bus_url_parse(url, &info, why);
	if (err != KF_OK)
		return err;
	strcpy(addrs->url[role], url); /* parse checked the length */
	return KF_OK;
}

enum kf_err kf_bus_addrs_from_env(struct kf_bus_addrs *addrs, struct kf_strbuf *why)
{
	enum kf_err first = KF_OK;

	for (int r = 0; r < KF_BUS_ROLE_COUNT; r++) {
		const char *v = getenv(roles[r].env);
		enum kf_err err;

		if (v == NULL || *v == '\0')
			continue;
		err = kf_bus_addrs_set(addrs, (enum kf_bus_role)r, v,
			first == KF_OK ? why : NULL);
		if (err != KF_OK && first == KF_OK) {
			if (why)
				kf_strbuf_addf(why, " (from %s)", roles[r].env);
			first = err;
		}
	}
	return first;
}

const char *kf_bus_addrs_get(const struct kf_bus_addrs *addrs, enum kf_bus_role role)
{
	return role_valid(role) ? addrs->url[role] : NULL;
}

static bool host_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (strcasecmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1) {
		if (IN6_IS_ADDR_LOOPBACK(&a6))
			return true;
		return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
	}
	return false;
}

/* Splits "host:port" or "[v6]:port"; fills info->host and info->port. */
static enum kf_err parse_host_port(const char *url, const char *rest,
	struct kf_bus_url_info *info, struct kf_strbuf *why)
{
	const char *colon, *host = rest;
	size_t host_len;
	char *end;
	unsigned long port;

	if (*rest == '[') {
		const char *close = strchr(rest, ']');
		if (close == NULL || close[1] != ':')
			goto bad;
		host = rest + 1;
		host_len = (size_t)(close - host);
		colon = close + 1;
	} else {
		colon = strrchr(rest, ':');
		if (colon == NULL)
			goto bad;
		host_len = (size_t)(colon - rest);
	}
	if (colon[1] < '0' || colon[1] > '9')
		goto bad;
	port = strtoul(colon + 1, &end, 10);
	if (*end != '\0' || port > 65535)
		goto bad;
	memcpy(info->host, host, host_len);
	info->host[host_len] = '\0';
	if (strcmp(info->host, "*") == 0)
		info->host[0] = '\0';
	info->port = (unsigned)port;
	info->loopback = info->host[0] != '\0' && host_is_loopback(info->host);
	return KF_OK;
bad:
	if (why)
		kf_strbuf_addf(why, "invalid address '%s': expected host:port "
			"(e.g. tcp://127.0.0.1:7402)", url);
	return KF_EINVAL;
}

static const struct scheme_desc *find_scheme(const char *url)
{
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (strncmp(url, schemes[i].prefix, strlen(schemes[i].prefix)) == 0)
			return &schemes[i];
	return NULL;
}

enum kf_err kf_bus_url_parse(const char *url, struct kf_bus_url_info *info,
	struct kf_strbuf *why)
{
	const struct scheme_desc *sc;
	const char *rest;

	memset(info, 0, sizeof(*info));
	if (url == NULL || strlen(url) >= KF_BUS_URL_MAX) {
		if (why)
			kf_strbuf_addf(why, "address too long (limit %d bytes)",
				KF_BUS_URL_MAX - 1);
		return url == NULL ? KF_EINVAL : KF_ERANGE;
	}
	sc = find_scheme(url);
	if (sc == NULL || sc->refused != NULL) {
		if (why)
			kf_strbuf_addf(why, "invalid address '%s': %s", url, sc ? sc->refused
				: "expected tcp://, tls+tcp://, ipc:// or inproc://");
		return KF_EINVAL;
	}
	info->transport = sc->transport;
	rest = url + strlen(sc->prefix);
	if (sc->transport == KF_BUS_TCP || sc->transport == KF_BUS_TLS_TCP)
		return parse_host_port(url, rest, info, why);
	if (*rest == '\0') {
		if (why)
			kf_strbuf_addf(why, "invalid address '%s': empty %s", url,
				sc->transport == KF_BUS_IPC ? "path" : "name");
		return KF_EINVAL;
	}
	if (sc->transport == KF_BUS_IPC
		&& strlen(rest) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		if (why)
			kf_strbuf_addf(why, "invalid address '%s': a Unix socket path "
				"holds at most %zu bytes", url,
				sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		return KF_ERANGE;
	}
	strcpy(info->host, rest);
	info->loopback = true;
	return KF_OK;
}

bool kf_bus_url_is_loopback(const char *url)
{
	struct kf_bus_url_info info;

	return kf_bus_url_parse(url, &info, NULL) == KF_OK && info.loopback;
}

bool kf_bus_listen_exposed(const char *url, struct kf_strbuf *warning)
{
	struct kf_bus_url_info info;

	if (kf_bus_url_parse(url, &info, NULL) != KF_OK || info.loopback)
		return false;
	if (warning == NULL)
		return true;
	if (info.transport == KF_BUS_TLS_TCP)
		kf_strbuf_addf(warning, "listening on '%s', reachable from other "
			"hosts; peers are authenticated by TLS certificates", url);
	else
		kf_strbuf_addf(warning, "listening on '%s', reachable from other "
			"hosts without authentication or encryption; use tls+tcp:// "
			"with client certificates or an SSH tunnel to 127.0.0.1", url);
	return true;
}
