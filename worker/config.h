/*
 * worker/config.h — keyforge-worker's settings: flags over environment over
 * defaults (DESIGN.md §10, docs/operations.md "keyforge-worker").
 *
 * Pure: parsing reads the argv and environment it is given and writes
 * nothing but `cfg` and `msg` (no files, no sockets). Not thread-safe
 * (getopt); call it from main before any thread exists.
 */
#ifndef KF_WORKER_CONFIG_H
#define KF_WORKER_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "bus/addr.h"
#include "common/err.h"
#include "common/strbuf.h"

#define KF_WORKER_ID_MAX 128            /* bytes of a worker id */
#define KF_WORKER_SLOTS_MAX 64
#define KF_WORKER_LEASE_WAIT_DEFAULT 2000   /* ms of a lease long-poll */
#define KF_WORKER_PROGRESS_DEFAULT 250      /* ms between progress reports */
#define KF_WORKER_TERM_TIMEOUT_DEFAULT 30000 /* ms to get results acknowledged at exit */
#define KF_WORKER_LEASE_AHEAD_DEFAULT 8     /* jobs leased beyond the free slots (gate.h) */

/* What SIGTERM does to a running job. */
enum kf_worker_on_term {
	KF_WORKER_TERM_FINISH = 0,   /* let it finish, report it, then exit */
	KF_WORKER_TERM_HANDBACK = 1, /* stop it now and give it back to the broker */
};

struct kf_worker_config {
	struct kf_bus_addrs addrs;    /* ingest (PUB dial), commands (SUB dial), rpc (REQ dial) */
	const char *token_file;       /* NULL: send no token */
	char id[KF_WORKER_ID_MAX + 1];/* worker id; default "<host>-<pid>" */
	const char *corpus_dirs;      /* ':'-separated folders where corpus names are looked up */
	const char *default_corpus;   /* the corpus called "default"; NULL = none */
	uint32_t slots;               /* jobs run at once, 1..KF_WORKER_SLOTS_MAX */
	uint32_t lease_ahead;         /* jobs leased while the slots are busy, 0..KF_WORKER_SLOTS_MAX */
	enum kf_worker_on_term on_term;
	uint32_t lease_wait_ms;       /* long-poll of one lease request */
	uint32_t progress_ms;         /* progress report interval */
	uint32_t term_timeout_ms;     /* how long exit waits for unacknowledged results */
};

enum kf_worker_config_action {
	KF_WORKER_RUN = 0,
	KF_WORKER_HELP = 1,     /* --help: usage on stdout, exit 0 */
	KF_WORKER_VERSION = 2,  /* --version: exit 0 */
};

/*
 * Fills cfg from argv (getopt_long) and the environment: KEYFORGE_INGEST,
 * KEYFORGE_EVENTS, KEYFORGE_RPC, KEYFORGE_TOKEN_FILE, KEYFORGE_WORKER_ID,
 * KEYFORGE_CORPUS_DIR, KEYFORGE_DEFAULT_CORPUS, KEYFORGE_SLOTS,
 * KEYFORGE_LEASE_AHEAD, KEYFORGE_ON_TERM. `host` and `pid` make the default id. Built-in
 * defaults for the corpus folder and the default corpus come from the
 * build (the build's corpora/ folder and corpora/brown.kfc in it).
 *
 * On a usage error returns KF_EINVAL (KF_ERANGE for a too-long address)
 * with one lower-case line in msg; the caller prints it and exits 2.
 * Strings in cfg point into argv, the environment or static storage.
 */
enum kf_err kf_worker_config_parse(struct kf_worker_config *cfg, int argc, char **argv,
	const char *host, long pid, enum kf_worker_config_action *action, struct kf_strbuf *msg);

/* The --help text. */
const char *kf_worker_usage(void);

/* "finish" / "handback"; never NULL. */
const char *kf_worker_on_term_name(enum kf_worker_on_term t);

#endif
