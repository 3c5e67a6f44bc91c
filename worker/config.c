/* config.c — flags and environment of keyforge-worker. */
#include "common/cliopt.h"
#include "common/parse.h"
#include "worker/config.h"

#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef KF_WORKER_CORPUS_DIR
#define KF_WORKER_CORPUS_DIR "corpora"
#endif
#define DEFAULT_CORPUS_FILE KF_WORKER_CORPUS_DIR "/brown.kfc"

static const char usage_text[] =
	"usage: keyforge-worker [OPTIONS]\n"
	"\n"
	"A KeyForge Hive worker: registers with the broker, leases layout\n"
	"optimization jobs, runs them with the layout engine and reports progress\n"
	"and results; publishes heartbeats, logs and metrics on the broker's ingest.\n"
	"\n"
	"  --ingest URL          PUB dial address (telemetry out)   [KEYFORGE_INGEST]\n"
	"                        default tcp://127.0.0.1:7400\n"
	"  --commands URL        SUB dial address (cmd.<id> in)   [KEYFORGE_COMMANDS]\n"
	"                        default tcp://127.0.0.1:7403\n"
	"  --rpc URL             REQ dial address (requests)        [KEYFORGE_RPC]\n"
	"                        default tcp://127.0.0.1:7402\n"
	"  --token-file PATH     the broker's token file, sent with every request and\n"
	"                        read again when the broker refuses it [KEYFORGE_TOKEN_FILE]\n"
	"  --id ID               worker id (default HOST-PID)        [KEYFORGE_WORKER_ID]\n"
	"  --corpus-dir DIRS     ':'-separated folders where a job's corpus NAME is\n"
	"                        found as NAME, NAME.kfc or NAME.json [KEYFORGE_CORPUS_DIR]\n"
	"                        default " KF_WORKER_CORPUS_DIR "\n"
	"  --default-corpus PATH the corpus a job names \"default\"  [KEYFORGE_DEFAULT_CORPUS]\n"
	"                        default " DEFAULT_CORPUS_FILE "\n"
	"  --slots N             jobs run at once, 1..64 (default 1)  [KEYFORGE_SLOTS]\n"
	"  --lease-ahead N       jobs leased while every slot is busy, to run next, 0..64;\n"
	"                        only while the jobs in hand end within 5 ms (default 8)\n"
	"                        [KEYFORGE_LEASE_AHEAD]\n"
	"  --on-term MODE        on SIGTERM: finish the running job, or handback (stop it\n"
	"                        and give it back); a second SIGTERM hands back\n"
	"                        (default finish)                      [KEYFORGE_ON_TERM]\n"
	"  --lease-wait MS       long-poll of one lease request (default 2000)\n"
	"  --progress-interval MS  progress report interval (default 250)\n"
	"  --term-timeout MS     at exit, how long to keep resending unacknowledged\n"
	"                        results (default 30000)\n"
	"  -h, --help            this text\n"
	"  -V, --version         print the version\n"
	"\n"
	"MS is milliseconds (30000), or a number with a unit: 250ms, 30s, 1.5m, 1h.\n"
	"Logging: KEYFORGE_LOG (filter, e.g. info,keyforge::worker=debug) and\n"
	"KEYFORGE_LOG_FORMAT (human|json); log events also go to the broker.\n"
	"TLS for tls+tcp:// addresses: KEYFORGE_TLS_CERT, KEYFORGE_TLS_KEY,\n"
	"KEYFORGE_TLS_CA, KEYFORGE_TLS_SERVER_NAME.\n"
	"Exit status: 0 after SIGTERM/SIGINT with every result acknowledged, 1 on a\n"
	"runtime error or when results could not be delivered, 2 on a usage error.\n";

const char *kf_worker_usage(void)
{
	return usage_text;
}

const char *kf_worker_on_term_name(enum kf_worker_on_term t)
{
	return t == KF_WORKER_TERM_HANDBACK ? "handback" : "finish";
}

enum opt_id {
	OPT_INGEST = 1000, OPT_COMMANDS, OPT_RPC, OPT_TOKEN_FILE, OPT_ID, OPT_CORPUS_DIR,
	OPT_DEFAULT_CORPUS, OPT_SLOTS, OPT_LEASE_AHEAD, OPT_ON_TERM, OPT_LEASE_WAIT, OPT_PROGRESS,
	OPT_TERM_TIMEOUT,
};

static const struct option long_opts[] = {
	{ "ingest", required_argument, NULL, OPT_INGEST },
	{ "commands", required_argument, NULL, OPT_COMMANDS },
	{ "rpc", required_argument, NULL, OPT_RPC },
	{ "token-file", required_argument, NULL, OPT_TOKEN_FILE },
	{ "id", required_argument, NULL, OPT_ID },
	{ "corpus-dir", required_argument, NULL, OPT_CORPUS_DIR },
	{ "default-corpus", required_argument, NULL, OPT_DEFAULT_CORPUS },
	{ "slots", required_argument, NULL, OPT_SLOTS },
	{ "lease-ahead", required_argument, NULL, OPT_LEASE_AHEAD },
	{ "on-term", required_argument, NULL, OPT_ON_TERM },
	{ "lease-wait", required_argument, NULL, OPT_LEASE_WAIT },
	{ "progress-interval", required_argument, NULL, OPT_PROGRESS },
	{ "term-timeout", required_argument, NULL, OPT_TERM_TIMEOUT },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* Ids travel in topics (cmd.<id>) and file names: printable ASCII, no
 * space, no '/', so that what the operator typed is what the broker shows. */
static enum kf_err set_id(struct kf_worker_config *cfg, const char *id, const char *what,
	struct kf_strbuf *msg)
{
	size_t n = strlen(id);

	if (n == 0 || n > KF_WORKER_ID_MAX) {
		kf_strbuf_addf(msg, "%s: a worker id has 1 to %d bytes", what, KF_WORKER_ID_MAX);
		return KF_EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)id[i];

		if (c < 0x21 || c > 0x7e || c == '/') {
			kf_strbuf_addf(msg, "%s: worker id '%s' may hold only printable ASCII "
				       "without spaces or '/'", what, id);
			return KF_EINVAL;
		}
	}
	memcpy(cfg->id, id, n + 1);
	return KF_OK;
}

static enum kf_err set_on_term(struct kf_worker_config *cfg, const char *v, const char *what,
	struct kf_strbuf *msg)
{
	if (!strcmp(v, "finish"))
		cfg->on_term = KF_WORKER_TERM_FINISH;
	else if (!strcmp(v, "handback"))
		cfg->on_term = KF_WORKER_TERM_HANDBACK;
	else {
		kf_strbuf_addf(msg, "%s: '%s' is neither 'finish' nor 'handback'", what, v);
		return KF_EINVAL;
	}
	return KF_OK;
}

static enum kf_err from_env(struct kf_worker_config *cfg, struct kf_strbuf *msg)
{
	const char *v;
	enum kf_err err;

	if ((err = kf_bus_addrs_from_env(&cfg->addrs, msg)))
		return err;
	if ((v = getenv("KEYFORGE_TOKEN_FILE")) && *v)
		cfg->token_file = v;
	if ((v = getenv("KEYFORGE_WORKER_ID")) && *v &&
	    (err = set_id(cfg, v, "KEYFORGE_WORKER_ID", msg)))
		return err;
	if ((v = getenv("KEYFORGE_CORPUS_DIR")) && *v)
		cfg->corpus_dirs = v;
	if ((v = getenv("KEYFORGE_DEFAULT_CORPUS")) && *v)
		cfg->default_corpus = v;
	if ((v = getenv("KEYFORGE_SLOTS")) && *v &&
	    (err = kf_parse_u32(v, 1, KF_WORKER_SLOTS_MAX, "KEYFORGE_SLOTS", &cfg->slots, msg)))
		return err;
	if ((v = getenv("KEYFORGE_LEASE_AHEAD")) && *v &&
	    (err = kf_parse_u32(v, 0, KF_WORKER_SLOTS_MAX, "KEYFORGE_LEASE_AHEAD",
				&cfg->lease_ahead, msg)))
		return err;
	if ((v = getenv("KEYFORGE_ON_TERM")) && *v &&
	    (err = set_on_term(cfg, v, "KEYFORGE_ON_TERM", msg)))
		return err;
	return KF_OK;
}

static enum kf_err apply_flag(struct kf_worker_config *cfg, int id, const char *arg,
	struct kf_strbuf *msg)
{
	switch (id) {
	case OPT_INGEST: return kf_bus_addrs_set(&cfg->addrs, KF_BUS_INGEST, arg, msg);
	case OPT_COMMANDS: return kf_bus_addrs_set(&cfg->addrs, KF_BUS_COMMANDS, arg, msg);
	case OPT_RPC: return kf_bus_addrs_set(&cfg->addrs, KF_BUS_RPC, arg, msg);
	case OPT_TOKEN_FILE: cfg->token_file = *arg ? arg : NULL; return KF_OK;
	case OPT_ID: return set_id(cfg, arg, "--id", msg);
	case OPT_CORPUS_DIR: cfg->corpus_dirs = arg; return KF_OK;
	case OPT_DEFAULT_CORPUS: cfg->default_corpus = *arg ? arg : NULL; return KF_OK;
	case OPT_SLOTS: return kf_parse_u32(arg, 1, KF_WORKER_SLOTS_MAX, "--slots", &cfg->slots, msg);
	case OPT_LEASE_AHEAD:
		return kf_parse_u32(arg, 0, KF_WORKER_SLOTS_MAX, "--lease-ahead", &cfg->lease_ahead, msg);
	case OPT_ON_TERM: return set_on_term(cfg, arg, "--on-term", msg);
	case OPT_LEASE_WAIT:
		return kf_parse_ms(arg, 0, 600000, "--lease-wait", &cfg->lease_wait_ms, msg);
	case OPT_PROGRESS:
		return kf_parse_ms(arg, 10, 60000, "--progress-interval", &cfg->progress_ms, msg);
	case OPT_TERM_TIMEOUT:
		return kf_parse_ms(arg, 0, 3600000, "--term-timeout", &cfg->term_timeout_ms, msg);
	default:
		kf_strbuf_addf(msg, "unknown option; see --help");
		return KF_EINVAL;
	}
}

static void defaults(struct kf_worker_config *cfg, const char *host, long pid)
{
	*cfg = (struct kf_worker_config){
		.corpus_dirs = KF_WORKER_CORPUS_DIR,
		.default_corpus = DEFAULT_CORPUS_FILE,
		.slots = 1,
		.lease_ahead = KF_WORKER_LEASE_AHEAD_DEFAULT,
		.on_term = KF_WORKER_TERM_FINISH,
		.lease_wait_ms = KF_WORKER_LEASE_WAIT_DEFAULT,
		.progress_ms = KF_WORKER_PROGRESS_DEFAULT,
		.term_timeout_ms = KF_WORKER_TERM_TIMEOUT_DEFAULT,
	};
	kf_bus_addrs_init(&cfg->addrs);
	/* host-pid, cut so that it fits; bad bytes of a host name become '_'. */
	snprintf(cfg->id, sizeof cfg->id, "%.100s-%ld", host && *host ? host : "worker", pid);
	for (char *p = cfg->id; *p; p++)
		if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e || *p == '/')
			*p = '_';
}

/* kf_cliopt_apply_fn over apply_flag. */
static enum kf_err apply_option(void *ctx, int id, const char *arg, struct kf_strbuf *msg)
{
	return apply_flag(ctx, id, arg, msg);
}

enum kf_err kf_worker_config_parse(struct kf_worker_config *cfg, int argc, char **argv,
	const char *host, long pid, enum kf_worker_config_action *action, struct kf_strbuf *msg)
{
	enum kf_err err;
	int special;

	defaults(cfg, host, pid);
	*action = KF_WORKER_RUN;
	if ((err = from_env(cfg, msg)))
		return err;
	if ((err = kf_cliopt_parse(argc, argv, long_opts, apply_option, cfg, &special, msg)))
		return err;
	if (special)
		*action = special == 'h' ? KF_WORKER_HELP : KF_WORKER_VERSION;
	return KF_OK;
}
