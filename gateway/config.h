/*
 * gateway/config.h — keyforge-gateway's settings: flags over environment over
 * defaults (DESIGN.md §10, docs/gateway.md "Configuration").
 *
 *   flag                 variable                 default
 *   --http HOST:PORT     KEYFORGE_HTTP            127.0.0.1:9469
 *   --monitor URL        KEYFORGE_MONITOR         tcp://127.0.0.1:7404
 *   --db CONNINFO        KEYFORGE_DB              libpq defaults (PG* variables)
 *   --auth-file PATH     KEYFORGE_GATEWAY_AUTH_FILE   none: /metrics is open
 *   --tls-cert PATH      KEYFORGE_HTTP_TLS_CERT   none: plain HTTP
 *   --tls-key PATH       KEYFORGE_HTTP_TLS_KEY    the certificate file
 *   --series-ttl DUR     -                        60s (0 = never)
 *   --max-series N       -                        1000 label sets per metric
 *   --max-connections N  -                        256 (at least --http-threads)
 *   --idle-timeout DUR   -                        15s (whole seconds, >= 1s)
 *   --max-request-size N -                        16384 bytes (request line + headers)
 *   --http-threads N     -                        2
 *   --shutdown-delay DUR -                        1s: /health/ready answers 503
 *                                                 while requests are still served
 *   --probe-interval DUR -                        1s
 *
 * DUR is a number with an optional unit: ms, s (the default), m, h.
 * Not thread-safe; the parsed config is read-only afterwards.
 */
#ifndef KF_GATEWAY_CONFIG_H
#define KF_GATEWAY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/strbuf.h"

#define KF_GW_HTTP_DEFAULT "127.0.0.1:9469"
#define KF_GW_HOST_MAX 256
#define KF_GW_PATH_MAX 4096

struct kf_gw_config {
	char http[KF_GW_HOST_MAX + 8];    /* as given, for messages */
	char http_host[KF_GW_HOST_MAX];   /* "" = every interface */
	unsigned http_port;               /* 0 = the kernel chooses */
	char monitor[KF_GW_PATH_MAX];     /* nng URL (bus/addr.h checked) */
	const char *db;                   /* libpq conninfo; NULL = libpq defaults */
	const char *auth_file;            /* NULL = no authentication */
	const char *tls_cert;             /* NULL = plain HTTP */
	const char *tls_key;
	uint64_t series_ttl_ns;
	size_t max_series;
	unsigned max_connections;
	unsigned idle_timeout_s;
	size_t max_request_bytes;
	unsigned http_threads;
	uint64_t shutdown_delay_ns;
	uint64_t probe_interval_ns;
};

enum kf_gw_config_action {
	KF_GW_RUN = 0,
	KF_GW_HELP,
	KF_GW_VERSION,
};

/* Fills the defaults. */
void kf_gw_config_init(struct kf_gw_config *cfg);

/*
 * Applies the environment, then argv (getopt_long; argv[0] is the program).
 * The config keeps pointers into argv and the environment. KF_OK with
 * *action = RUN, HELP or VERSION; KF_EINVAL with a lower-case message in
 * `why` for an unknown flag, a bad value, a stray argument, --tls-key
 * without --tls-cert, or --max-connections below --http-threads.
 */
enum kf_err kf_gw_config_parse(struct kf_gw_config *cfg, int argc, char **argv,
			       enum kf_gw_config_action *action, struct kf_strbuf *why);

/* The --help text. */
const char *kf_gw_config_usage(void);

/*
 * "HOST:PORT", "[V6]:PORT" or ":PORT" (every interface). KF_EINVAL when the
 * port is missing or not 0..65535, or the host is too long.
 */
enum kf_err kf_gw_parse_hostport(const char *s, char host[KF_GW_HOST_MAX], unsigned *port);

#endif
