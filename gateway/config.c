/*
 * config.c — flags and environment of keyforge-gateway.
 */
#include "gateway/config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/addr.h"
#include "common/clock.h"
#include "common/parse.h"
#include "gateway/aggregate.h"

static const char usage[] =
	"usage: keyforge-gateway [OPTIONS]\n"
	"\n"
	"Serves the hive's metrics to Prometheus (/metrics) and its health\n"
	"(/health/live, /health/ready), aggregating the metric updates the broker\n"
	"republishes on its monitor socket.\n"
	"\n"
	"  --http HOST:PORT       listen address (KEYFORGE_HTTP; default " KF_GW_HTTP_DEFAULT ")\n"
	"  --monitor URL          broker's monitor socket: metric updates and cluster\n"
	"                         status (KEYFORGE_MONITOR; default tcp://127.0.0.1:7404)\n"
	"  --db CONNINFO          PostgreSQL for /health/ready (KEYFORGE_DB)\n"
	"  --auth-file PATH       require basic or bearer auth on /metrics\n"
	"                         (KEYFORGE_GATEWAY_AUTH_FILE; format in docs/gateway.md)\n"
	"  --tls-cert PATH        serve HTTPS with this PEM certificate\n"
	"                         (KEYFORGE_HTTP_TLS_CERT)\n"
	"  --tls-key PATH         its PEM private key (KEYFORGE_HTTP_TLS_KEY;\n"
	"                         default: the certificate file)\n"
	"  --series-ttl DUR       expire series not updated for DUR (default 60s; 0 = never)\n"
	"  --max-series N         label sets per metric (default 1000)\n"
	"  --max-connections N    concurrent HTTP connections (default 256; at least\n"
	"                         --http-threads)\n"
	"  --idle-timeout DUR     close idle or stalled connections (default 15s)\n"
	"  --max-request-size N   bytes of request line + headers (default 16384)\n"
	"  --http-threads N       HTTP worker threads (default 2)\n"
	"  --shutdown-delay DUR   on SIGTERM, answer 503 on /health/ready for DUR\n"
	"                         before closing (default 1s)\n"
	"  --probe-interval DUR   readiness probe period (default 1s)\n"
	"  --help, --version\n"
	"\n"
	"DUR: a number with an optional unit ms, s, m or h (default s).\n"
	"Logging: KEYFORGE_LOG (filter, e.g. info,keyforge::gateway=debug),\n"
	"KEYFORGE_LOG_FORMAT (human or json).\n";

const char *kf_gw_config_usage(void)
{
	return usage;
}

void kf_gw_config_init(struct kf_gw_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->http, sizeof(cfg->http), "%s", KF_GW_HTTP_DEFAULT);
	kf_gw_parse_hostport(cfg->http, cfg->http_host, &cfg->http_port);
	snprintf(cfg->monitor, sizeof(cfg->monitor), "%s", kf_bus_role_default(KF_BUS_MONITOR));
	cfg->series_ttl_ns = KF_GW_SERIES_TTL_DEFAULT_NS;
	cfg->max_series = KF_GW_MAX_SERIES_DEFAULT;
	cfg->max_connections = 256;
	cfg->idle_timeout_s = 15;
	cfg->max_request_bytes = 16384;
	cfg->http_threads = 2;
	cfg->shutdown_delay_ns = KF_NS_PER_S;
	cfg->probe_interval_ns = KF_NS_PER_S;
}

enum kf_err kf_gw_parse_hostport(const char *s, char host[KF_GW_HOST_MAX], unsigned *port)
{
	const char *colon;
	size_t hlen;
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			return KF_EINVAL;
		hlen = (size_t)(rb - s - 1);
		s++;
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return KF_EINVAL;
		hlen = (size_t)(colon - s);
		if (memchr(s, ':', hlen))
			return KF_EINVAL; /* a bare IPv6 address needs brackets */
	}
	if (hlen >= KF_GW_HOST_MAX)
		return KF_EINVAL;
	const char *p = colon + 1;
	if (!*p || strlen(p) > 5 || strspn(p, "0123456789") != strlen(p))
		return KF_EINVAL;
	unsigned long v = strtoul(p, NULL, 10);
	if (v > 65535)
		return KF_EINVAL;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	*port = (unsigned)v;
	return KF_OK;
}

/* Every duration flag of the gateway: seconds when bare, at most a day. */
static enum kf_err parse_duration(const char *s, uint64_t *ns)
{
	return kf_parse_duration_ns(s, KF_NS_PER_S, 86400 * KF_NS_PER_S, ns) ? KF_OK : KF_EINVAL;
}

static enum kf_err parse_count(const char *s, unsigned long min, unsigned long max,
			       unsigned long *out)
{
	char *end;
	errno = 0;
	if (!s[0] || strspn(s, "0123456789") != strlen(s))
		return KF_EINVAL;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || v < min || v > max)
		return KF_EINVAL;
	*out = v;
	return KF_OK;
}

static const char *nonempty_env(const char *name)
{
	const char *v = getenv(name);
	return v && v[0] ? v : NULL;
}

static enum kf_err set_http(struct kf_gw_config *cfg, const char *v, struct kf_strbuf *why)
{
	if (strlen(v) >= sizeof(cfg->http) ||
	    kf_gw_parse_hostport(v, cfg->http_host, &cfg->http_port) != KF_OK) {
		kf_strbuf_addf(why, "invalid HTTP address '%s': expected HOST:PORT, "
			       "[IPV6]:PORT or :PORT", v);
		return KF_EINVAL;
	}
	snprintf(cfg->http, sizeof(cfg->http), "%s", v);
	return KF_OK;
}

static enum kf_err set_monitor(struct kf_gw_config *cfg, const char *v, struct kf_strbuf *why)
{
	struct kf_bus_url_info info;
	if (strlen(v) >= sizeof(cfg->monitor) || kf_bus_url_parse(v, &info, why) != KF_OK) {
		if (!why->len)
			kf_strbuf_addf(why, "invalid monitor address '%s'", v);
		return KF_EINVAL;
	}
	snprintf(cfg->monitor, sizeof(cfg->monitor), "%s", v);
	return KF_OK;
}

static void apply_env(struct kf_gw_config *cfg, struct kf_strbuf *why, enum kf_err *err)
{
	const char *v;
	if (!*err && (v = nonempty_env("KEYFORGE_HTTP")))
		*err = set_http(cfg, v, why);
	if (!*err && (v = nonempty_env("KEYFORGE_MONITOR")))
		*err = set_monitor(cfg, v, why);
	if ((v = nonempty_env("KEYFORGE_DB")))
		cfg->db = v;
	if ((v = nonempty_env("KEYFORGE_GATEWAY_AUTH_FILE")))
		cfg->auth_file = v;
	if ((v = nonempty_env("KEYFORGE_HTTP_TLS_CERT")))
		cfg->tls_cert = v;
	if ((v = nonempty_env("KEYFORGE_HTTP_TLS_KEY")))
		cfg->tls_key = v;
}

enum opt_id {
	OPT_HTTP = 256, OPT_MONITOR, OPT_DB, OPT_AUTH, OPT_CERT, OPT_KEY, OPT_TTL,
	OPT_MAX_SERIES, OPT_MAX_CONN, OPT_IDLE, OPT_MAX_REQ, OPT_THREADS, OPT_SHUTDOWN,
	OPT_PROBE, OPT_HELP, OPT_VERSION, OPT_EVENTS_RENAMED,
};

/* In enum opt_id's order: messages name a flag by options[id - OPT_HTTP]. */
static const struct option options[] = {
	{ "http", required_argument, NULL, OPT_HTTP },
	{ "monitor", required_argument, NULL, OPT_MONITOR },
	{ "db", required_argument, NULL, OPT_DB },
	{ "auth-file", required_argument, NULL, OPT_AUTH },
	{ "tls-cert", required_argument, NULL, OPT_CERT },
	{ "tls-key", required_argument, NULL, OPT_KEY },
	{ "series-ttl", required_argument, NULL, OPT_TTL },
	{ "max-series", required_argument, NULL, OPT_MAX_SERIES },
	{ "max-connections", required_argument, NULL, OPT_MAX_CONN },
	{ "idle-timeout", required_argument, NULL, OPT_IDLE },
	{ "max-request-size", required_argument, NULL, OPT_MAX_REQ },
	{ "http-threads", required_argument, NULL, OPT_THREADS },
	{ "shutdown-delay", required_argument, NULL, OPT_SHUTDOWN },
	{ "probe-interval", required_argument, NULL, OPT_PROBE },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ "events", required_argument, NULL, OPT_EVENTS_RENAMED },
	{ NULL, 0, NULL, 0 },
};

/* One flag with a value. */
static enum kf_err apply_opt(struct kf_gw_config *cfg, int id, const char *v,
			     struct kf_strbuf *why)
{
	unsigned long n = 0;
	uint64_t ns = 0;
	enum kf_err err = KF_OK;
	switch (id) {
	case OPT_HTTP: return set_http(cfg, v, why);
	case OPT_MONITOR: return set_monitor(cfg, v, why);
	case OPT_EVENTS_RENAMED:
		/* The flag of earlier versions: say what replaced it rather
		 * than "unknown option". */
		kf_strbuf_addf(why, "--events is now --monitor: the gateway reads the broker's "
			       "monitor socket (default %s), which carries only metric updates and "
			       "status", kf_bus_role_default(KF_BUS_MONITOR));
		return KF_EINVAL;
	case OPT_DB: cfg->db = v; return KF_OK;
	case OPT_AUTH: cfg->auth_file = v; return KF_OK;
	case OPT_CERT: cfg->tls_cert = v; return KF_OK;
	case OPT_KEY: cfg->tls_key = v; return KF_OK;
	case OPT_TTL:
		if (!(err = parse_duration(v, &ns)))
			cfg->series_ttl_ns = ns;
		break;
	case OPT_MAX_SERIES:
		if (!(err = parse_count(v, 1, 1000000, &n)))
			cfg->max_series = n;
		break;
	case OPT_MAX_CONN:
		if (!(err = parse_count(v, 1, 65536, &n)))
			cfg->max_connections = (unsigned)n;
		break;
	case OPT_IDLE:
		if (!(err = parse_duration(v, &ns)) && ns < KF_NS_PER_S)
			err = KF_EINVAL;
		if (!err)
			cfg->idle_timeout_s = (unsigned)((ns + KF_NS_PER_S / 2) / KF_NS_PER_S);
		break;
	case OPT_MAX_REQ:
		if (!(err = parse_count(v, 1024, 1 << 20, &n)))
			cfg->max_request_bytes = n;
		break;
	case OPT_THREADS:
		if (!(err = parse_count(v, 1, 64, &n)))
			cfg->http_threads = (unsigned)n;
		break;
	case OPT_SHUTDOWN:
		if (!(err = parse_duration(v, &ns)))
			cfg->shutdown_delay_ns = ns;
		break;
	case OPT_PROBE:
		if (!(err = parse_duration(v, &ns)) && ns < KF_NS_PER_S / 100)
			err = KF_EINVAL;
		if (!err)
			cfg->probe_interval_ns = ns;
		break;
	default:
		err = KF_EINVAL;
	}
	if (err)
		kf_strbuf_addf(why, "invalid value '%s' for --%s", v, options[id - OPT_HTTP].name);
	return err;
}

enum kf_err kf_gw_config_parse(struct kf_gw_config *cfg, int argc, char **argv,
			       enum kf_gw_config_action *action, struct kf_strbuf *why)
{
	enum kf_err err = KF_OK;
	*action = KF_GW_RUN;
	apply_env(cfg, why, &err);
	optind = 0; /* full reinitialisation (glibc), so tests may parse twice */
	opterr = 0;
	int c;
	while (!err && (c = getopt_long(argc, argv, ":", options, NULL)) != -1) {
		if (c == OPT_HELP || c == OPT_VERSION) {
			*action = c == OPT_HELP ? KF_GW_HELP : KF_GW_VERSION;
			return KF_OK;
		}
		if (c == '?' || c == ':') {
			kf_strbuf_addf(why, "%s '%s' (see --help)",
				       c == ':' ? "missing value for" : "unknown option",
				       argv[optind - 1]);
			return KF_EINVAL;
		}
		err = apply_opt(cfg, c, optarg, why);
	}
	if (!err && optind < argc) {
		kf_strbuf_addf(why, "unexpected argument '%s' (see --help)", argv[optind]);
		err = KF_EINVAL;
	}
	if (!err && cfg->tls_key && !cfg->tls_cert) {
		kf_strbuf_addstr(why, "--tls-key needs --tls-cert");
		err = KF_EINVAL;
	}
	/* libmicrohttpd gives each thread its share of the limit: a thread
	 * with a share of 0 would never accept a connection. */
	if (!err && cfg->max_connections < cfg->http_threads) {
		kf_strbuf_addf(why, "--max-connections %u is below --http-threads %u: each HTTP "
			       "thread needs at least one connection; raise --max-connections or "
			       "lower --http-threads", cfg->max_connections, cfg->http_threads);
		err = KF_EINVAL;
	}
	return err;
}
