/*
 * tls.h — certificates for tls+tcp:// endpoints (nng's TLS, mbedTLS inside).
 *
 * The options only name files; they are read when an endpoint is created
 * (kf_bus_sock_listen / kf_bus_sock_dial), so a bad path is reported there,
 * with the path in the message. The zero value of `verify_peer` is
 * KF_BUS_TLS_VERIFY_REQUIRED: a listener demands a client certificate signed
 * by `ca_file` (mutual TLS) and a dialer verifies the server's, unless the
 * operator lowers it explicitly.
 *
 * mbedTLS 2.28 (Debian 12) matches the server name against the DNS names of
 * the certificate, not IP addresses: when dialing tls+tcp://10.0.0.5:7402,
 * set `server_name` to a DNS name the broker's certificate carries.
 */
#ifndef KF_BUS_TLS_H
#define KF_BUS_TLS_H

#include <stdbool.h>

enum kf_bus_tls_verify {
	KF_BUS_TLS_VERIFY_REQUIRED = 0, /* peer certificate required and verified */
	KF_BUS_TLS_VERIFY_OPTIONAL = 1, /* verified when the peer presents one */
	KF_BUS_TLS_VERIFY_NONE = 2,     /* no verification: encryption only */
};

struct kf_bus_tls_opts {
	const char *cert_file;   /* PEM certificate (chain) of this side */
	const char *key_file;    /* PEM private key; may be the cert file; NULL = cert_file */
	const char *key_password; /* for an encrypted key; else NULL */
	const char *ca_file;     /* PEM CA bundle the peer is verified against */
	const char *server_name; /* dialer: expected server name; NULL = URL host */
	enum kf_bus_tls_verify verify_peer;
};

/* Fills `opts` from KEYFORGE_TLS_CERT, KEYFORGE_TLS_KEY, KEYFORGE_TLS_CA,
 * KEYFORGE_TLS_SERVER_NAME (unset or empty → NULL); verify_peer = REQUIRED.
 * The pointers point into the environment: do not setenv() those variables
 * while opts is in use. Returns true when at least a certificate or a CA is
 * configured, i.e. when TLS endpoints can be created. */
bool kf_bus_tls_opts_from_env(struct kf_bus_tls_opts *opts);

#endif
