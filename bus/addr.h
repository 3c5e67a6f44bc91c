/*
 * addr.h — the bus addresses of a hive and the checks on nng URLs.
 *
 * Every program knows these addresses (DESIGN.md §1, §10):
 *
 *   role      default                 variable           broker       others
 *   ingest    tcp://127.0.0.1:7400    KEYFORGE_INGEST    SUB listen   PUB dial
 *   events    tcp://127.0.0.1:7401    KEYFORGE_EVENTS    PUB listen   SUB dial
 *   rpc       tcp://127.0.0.1:7402    KEYFORGE_RPC       REP listen   REQ dial
 *   commands  tcp://127.0.0.1:7403    KEYFORGE_COMMANDS  PUB listen   SUB dial (workers)
 *   monitor   tcp://127.0.0.1:7404    KEYFORGE_MONITOR   PUB listen   SUB dial (gateway)
 *
 * commands carries only cmd.<worker>, monitor only metric.* and status.*
 * (both also on events). They exist because nng 1.5.2's SUB filters on the
 * subscriber's side: a worker subscribed to events for its commands, or a
 * gateway for its metric updates, would be sent every log line and job
 * event of the hive, which costs both the broker and the subscriber a send
 * and a receive per message (docs/bus.md).
 *
 * Precedence: a command-line flag (kf_bus_addrs_set) over the environment
 * (kf_bus_addrs_from_env) over the default (kf_bus_addrs_init). Call them in
 * that order: init, from_env, then set for each flag given.
 *
 * Accepted schemes: tcp:// tcp4:// tcp6:// tls+tcp:// tls+tcp4:// tls+tcp6://
 * ipc:// inproc://. ws:// and wss:// are refused: nng runs them on its HTTP
 * server, which this project does not expose (DESIGN.md §6).
 *
 * Everything here is pure string work: no sockets, no allocation, no
 * global state; all functions are thread-safe. `why`, where present, may be
 * NULL; on failure a lower-case message naming the address is appended.
 */
#ifndef KF_BUS_ADDR_H
#define KF_BUS_ADDR_H

#include <stdbool.h>

#include "common/err.h"
#include "common/strbuf.h"

/* Longest URL kept (NUL included); longer ones are KF_ERANGE. */
#define KF_BUS_URL_MAX 256

enum kf_bus_role {
	KF_BUS_INGEST = 0,
	KF_BUS_EVENTS = 1,
	KF_BUS_RPC = 2,
	KF_BUS_COMMANDS = 3,
	KF_BUS_MONITOR = 4,
	KF_BUS_ROLE_COUNT
};

enum kf_bus_transport {
	KF_BUS_TCP = 0,
	KF_BUS_TLS_TCP = 1,
	KF_BUS_IPC = 2,
	KF_BUS_INPROC = 3,
};

struct kf_bus_addrs {
	char url[KF_BUS_ROLE_COUNT][KF_BUS_URL_MAX];
};

/* What kf_bus_url_parse learned about a URL. */
struct kf_bus_url_info {
	enum kf_bus_transport transport;
	/* Reachable from this host only: ipc, inproc, or tcp on 127.0.0.0/8,
	 * ::1 or "localhost". False for "*", an empty host, 0.0.0.0, ::. */
	bool loopback;
	/* tcp ports: the number (0 = let the kernel choose); else 0. */
	unsigned port;
	/* ipc: the file system path; tcp: the host ("" for all interfaces);
	 * inproc: the name. NUL-terminated. */
	char host[KF_BUS_URL_MAX];
};

/* "ingest", "events", "rpc", "commands", "monitor"; "?" for an invalid role. */
const char *kf_bus_role_name(enum kf_bus_role role);
/* "KEYFORGE_INGEST", ...; NULL for an invalid role. */
const char *kf_bus_role_env(enum kf_bus_role role);
/* "tcp://127.0.0.1:7400", ...; NULL for an invalid role. */
const char *kf_bus_role_default(enum kf_bus_role role);

/* Fills every role with its default. Cannot fail. */
void kf_bus_addrs_init(struct kf_bus_addrs *addrs);

/* Overrides each role whose variable is set and non-empty. Every variable
 * is validated; the first invalid one is reported (KF_EINVAL or KF_ERANGE)
 * and leaves that role unchanged, the others are still applied. */
enum kf_err kf_bus_addrs_from_env(struct kf_bus_addrs *addrs, struct kf_strbuf *why);

/* Sets one role (from a flag) after validating the URL. */
enum kf_err kf_bus_addrs_set(struct kf_bus_addrs *addrs, enum kf_bus_role role,
	const char *url, struct kf_strbuf *why);

/* The URL of a role; never NULL for a valid role. */
const char *kf_bus_addrs_get(const struct kf_bus_addrs *addrs, enum kf_bus_role role);

/* Validates an nng URL and describes it. KF_OK, KF_EINVAL (unknown or
 * refused scheme, missing host/port/path, bad port), KF_ERANGE (too long,
 * or an ipc path longer than a Unix socket address holds). */
enum kf_err kf_bus_url_parse(const char *url, struct kf_bus_url_info *info,
	struct kf_strbuf *why);

/* True when `url` is valid and only reachable from this host. */
bool kf_bus_url_is_loopback(const char *url);

/* The check a program runs before listening: returns true (and appends a
 * warning to `warning`, which may be NULL) when `url` is reachable from
 * other hosts. The caller logs it at WARN; binding beyond loopback is the
 * operator's explicit choice (DESIGN.md §1), not an error. Plain tcp gets a
 * sharper text than tls+tcp. An invalid URL returns false: listening will
 * report it. */
bool kf_bus_listen_exposed(const char *url, struct kf_strbuf *warning);

#endif
