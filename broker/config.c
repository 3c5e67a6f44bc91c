/* config.c — flags and environment of keyforge-broker. */
#include "common/cliopt.h"
#include "common/parse.h"
#include "broker/config.h"
#include "bus/rpc_server.h"

#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char usage_text[] =
	"usage: keyforge-broker [OPTIONS]\n"
	"\n"
	"The KeyForge Hive broker: owns the job state (PostgreSQL), serves the rpc\n"
	"socket, takes worker telemetry on ingest and republishes events.\n"
	"\n"
	"  --db CONNINFO        libpq connection string            [KEYFORGE_DB]\n"
	"  --ingest URL         SUB listen address (telemetry in)  [KEYFORGE_INGEST]\n"
	"                       default tcp://127.0.0.1:7400\n"
	"  --events URL         PUB listen address (events out)    [KEYFORGE_EVENTS]\n"
	"                       default tcp://127.0.0.1:7401\n"
	"  --rpc URL            REP listen address (requests)      [KEYFORGE_RPC]\n"
	"                       default tcp://127.0.0.1:7402\n"
	"  --commands URL       PUB listen address (cmd.<worker> out, for workers)\n"
	"                       [KEYFORGE_COMMANDS] default tcp://127.0.0.1:7403\n"
	"  --monitor URL        PUB listen address (metric.* and status.* only, for the\n"
	"                       gateway) [KEYFORGE_MONITOR] default tcp://127.0.0.1:7404\n"
	"  --token-file PATH    write a fresh random token here (mode 0600) at start;\n"
	"                       submit, kill and retry must carry it [KEYFORGE_TOKEN_FILE]\n"
	"  --worker-auth        hello, lease, progress and complete need the token too\n"
	"                       [KEYFORGE_WORKER_AUTH=1]\n"
	"  --ingest-rate N      log+metric messages per second per source (default 500)\n"
	"                       [KEYFORGE_INGEST_RATE]\n"
	"  --ingest-burst N     burst allowed above that rate (default 2000)\n"
	"                       [KEYFORGE_INGEST_BURST]\n"
	"  --log-ring N         log events kept for the log tail request (default 1000)\n"
	"  --rpc-contexts N     most requests in flight at once, parked leases\n"
	"                       included (default 16384; 4-65536)\n"
	"  --max-wait MS        longest lease long-poll (default 30000)\n"
	"  --event-bundle N     most events sent in one message on events (default 64,\n"
	"                       1-64; 1 = one message each, for subscribers older than\n"
	"                       protocol 1.8) [KEYFORGE_EVENT_BUNDLE]\n"
	"  --db-timeout MS      a database transaction unanswered this long counts as\n"
	"                       a lost connection: its requests fail as unavailable\n"
	"                       and the broker connects again (default 30000;\n"
	"                       0 = wait for ever) [KEYFORGE_DB_TIMEOUT]\n"
	"  --db-slow MS         log a WARN \"slow database transaction\" for each one\n"
	"                       that takes this long (default 1000; 0 = never)\n"
	"                       [KEYFORGE_DB_SLOW]\n"
	"  --thread-nice N      nice value (-20..0) of the two threads every job waits\n"
	"                       for, the loop and the database thread (default -5;\n"
	"                       0 = leave them; needs CAP_SYS_NICE) [KEYFORGE_THREAD_NICE]\n"
	"  -h, --help           this text\n"
	"  -V, --version        print the version\n"
	"\n"
	"MS is milliseconds (30000), or a number with a unit: 250ms, 30s, 1.5m, 1h.\n"
	"Logging: KEYFORGE_LOG (filter, e.g. info,keyforge::broker=debug) and\n"
	"KEYFORGE_LOG_FORMAT (human|json). TLS for tls+tcp:// addresses:\n"
	"KEYFORGE_TLS_CERT, KEYFORGE_TLS_KEY, KEYFORGE_TLS_CA.\n"
	"Exit status: 0 after SIGTERM/SIGINT, 1 on a runtime error (address in use,\n"
	"migration mismatch, token file), 2 on a usage error.\n";

const char *kf_broker_usage(void)
{
	return usage_text;
}

enum opt_id {
	OPT_DB = 1000, OPT_INGEST, OPT_EVENTS, OPT_RPC, OPT_COMMANDS, OPT_MONITOR, OPT_TOKEN_FILE,
	OPT_WORKER_AUTH, OPT_INGEST_RATE, OPT_INGEST_BURST, OPT_LOG_RING, OPT_CONTEXTS, OPT_MAX_WAIT,
	OPT_THREAD_NICE, OPT_DB_TIMEOUT, OPT_DB_SLOW, OPT_EVENT_BUNDLE,
};

static const struct option long_opts[] = {
	{ "db", required_argument, NULL, OPT_DB },
	{ "ingest", required_argument, NULL, OPT_INGEST },
	{ "events", required_argument, NULL, OPT_EVENTS },
	{ "rpc", required_argument, NULL, OPT_RPC },
	{ "commands", required_argument, NULL, OPT_COMMANDS },
	{ "monitor", required_argument, NULL, OPT_MONITOR },
	{ "token-file", required_argument, NULL, OPT_TOKEN_FILE },
	{ "worker-auth", no_argument, NULL, OPT_WORKER_AUTH },
	{ "ingest-rate", required_argument, NULL, OPT_INGEST_RATE },
	{ "ingest-burst", required_argument, NULL, OPT_INGEST_BURST },
	{ "log-ring", required_argument, NULL, OPT_LOG_RING },
	{ "rpc-contexts", required_argument, NULL, OPT_CONTEXTS },
	{ "max-wait", required_argument, NULL, OPT_MAX_WAIT },
	{ "event-bundle", required_argument, NULL, OPT_EVENT_BUNDLE },
	{ "db-timeout", required_argument, NULL, OPT_DB_TIMEOUT },
	{ "db-slow", required_argument, NULL, OPT_DB_SLOW },
	{ "thread-nice", required_argument, NULL, OPT_THREAD_NICE },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static bool env_true(const char *v)
{
	return v && (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes"));
}

/* A nice value the broker may ask for: -20..0 (above 0 would only slow
 * every job down). */
static enum kf_err parse_nice(const char *v, const char *what, int *out, struct kf_strbuf *msg)
{
	struct kf_strbuf ignored = KF_STRBUF_INIT;
	uint32_t n = 1;

	if (!strcmp(v, "0"))
		n = 0;
	else if (v[0] != '-' || v[1] < '1' || v[1] > '9' ||
		 kf_parse_u32(v + 1, 1, 20, what, &n, &ignored) != KF_OK)
		n = 21;
	kf_strbuf_release(&ignored);
	if (n > 20) {
		kf_strbuf_addf(msg, "%s: '%s' is not a number from -20 to 0", what, v);
		return KF_EINVAL;
	}
	*out = -(int)n;
	return KF_OK;
}

static enum kf_err from_env(struct kf_broker_config *cfg, struct kf_strbuf *msg)
{
	static const struct {
		const char *name;
		size_t off;
		uint32_t lo, hi;
	} nums[] = {
		{ "KEYFORGE_INGEST_RATE", offsetof(struct kf_broker_config, ingest_rate), 1, 10000000 },
		{ "KEYFORGE_INGEST_BURST", offsetof(struct kf_broker_config, ingest_burst), 1, 100000000 },
		{ "KEYFORGE_EVENT_BUNDLE", offsetof(struct kf_broker_config, event_bundle), 1,
		  KF_BUS_BUNDLE_MAX_PARTS },
	};
	const char *v;
	enum kf_err err;

	if ((err = kf_bus_addrs_from_env(&cfg->addrs, msg)))
		return err;
	if ((v = getenv("KEYFORGE_DB")) && *v)
		cfg->conninfo = v;
	if ((v = getenv("KEYFORGE_TOKEN_FILE")) && *v)
		cfg->token_file = v;
	cfg->worker_auth = env_true(getenv("KEYFORGE_WORKER_AUTH"));
	if ((v = getenv("KEYFORGE_THREAD_NICE")) && *v &&
	    (err = parse_nice(v, "KEYFORGE_THREAD_NICE", &cfg->thread_nice, msg)))
		return err;
	for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
		if (!(v = getenv(nums[i].name)) || !*v)
			continue;
		if ((err = kf_parse_u32(v, nums[i].lo, nums[i].hi, nums[i].name,
				     (uint32_t *)((char *)cfg + nums[i].off), msg)))
			return err;
	}
	if ((v = getenv("KEYFORGE_DB_TIMEOUT")) && *v &&
	    (err = kf_parse_ms(v, 0, 3600000, "KEYFORGE_DB_TIMEOUT", &cfg->db_timeout_ms, msg)))
		return err;
	if ((v = getenv("KEYFORGE_DB_SLOW")) && *v &&
	    (err = kf_parse_ms(v, 0, 3600000, "KEYFORGE_DB_SLOW", &cfg->db_slow_ms, msg)))
		return err;
	return KF_OK;
}

static enum kf_err apply_flag(struct kf_broker_config *cfg, int id, const char *arg,
	struct kf_strbuf *msg)
{
	switch (id) {
	case OPT_DB: cfg->conninfo = arg; return KF_OK;
	case OPT_INGEST: return kf_bus_addrs_set(&cfg->addrs, KF_BUS_INGEST, arg, msg);
	case OPT_EVENTS: return kf_bus_addrs_set(&cfg->addrs, KF_BUS_EVENTS, arg, msg);
	case OPT_RPC: return kf_bus_addrs_set(&cfg->addrs, KF_BUS_RPC, arg, msg);
	case OPT_COMMANDS: return kf_bus_addrs_set(&cfg->addrs, KF_BUS_COMMANDS, arg, msg);
	case OPT_MONITOR: return kf_bus_addrs_set(&cfg->addrs, KF_BUS_MONITOR, arg, msg);
	case OPT_TOKEN_FILE: cfg->token_file = *arg ? arg : NULL; return KF_OK;
	case OPT_WORKER_AUTH: cfg->worker_auth = true; return KF_OK;
	case OPT_INGEST_RATE: return kf_parse_u32(arg, 1, 10000000, "--ingest-rate", &cfg->ingest_rate, msg);
	case OPT_INGEST_BURST:
		return kf_parse_u32(arg, 1, 100000000, "--ingest-burst", &cfg->ingest_burst, msg);
	case OPT_LOG_RING: return kf_parse_u32(arg, 1, 100000, "--log-ring", &cfg->log_ring, msg);
	case OPT_CONTEXTS: return kf_parse_u32(arg, 4, KF_RPC_CONTEXTS_MAX, "--rpc-contexts", &cfg->contexts, msg);
	case OPT_MAX_WAIT: return kf_parse_ms(arg, 0, 600000, "--max-wait", &cfg->max_wait_ms, msg);
	case OPT_EVENT_BUNDLE:
		return kf_parse_u32(arg, 1, KF_BUS_BUNDLE_MAX_PARTS, "--event-bundle",
				    &cfg->event_bundle, msg);
	case OPT_DB_TIMEOUT:
		return kf_parse_ms(arg, 0, 3600000, "--db-timeout", &cfg->db_timeout_ms, msg);
	case OPT_DB_SLOW: return kf_parse_ms(arg, 0, 3600000, "--db-slow", &cfg->db_slow_ms, msg);
	case OPT_THREAD_NICE: return parse_nice(arg, "--thread-nice", &cfg->thread_nice, msg);
	default:
		kf_strbuf_addf(msg, "unknown option; see --help");
		return KF_EINVAL;
	}
}

/* kf_cliopt_apply_fn over apply_flag. */
static enum kf_err apply_option(void *ctx, int id, const char *arg, struct kf_strbuf *msg)
{
	return apply_flag(ctx, id, arg, msg);
}

enum kf_err kf_broker_config_parse(struct kf_broker_config *cfg, int argc, char **argv,
	enum kf_broker_config_action *action, struct kf_strbuf *msg)
{
	enum kf_err err;
	int special;

	*cfg = (struct kf_broker_config){
		.conninfo = "",
		.ingest_rate = KF_BROKER_INGEST_RATE_DEFAULT,
		.ingest_burst = KF_BROKER_INGEST_BURST_DEFAULT,
		.log_ring = KF_BROKER_LOG_RING_DEFAULT,
		.contexts = KF_BROKER_CONTEXTS_DEFAULT,
		.max_wait_ms = KF_BROKER_MAX_WAIT_DEFAULT,
		.event_bundle = KF_BROKER_EVENT_BUNDLE_DEFAULT,
		.db_timeout_ms = KF_BROKER_DB_TIMEOUT_DEFAULT,
		.db_slow_ms = KF_BROKER_DB_SLOW_DEFAULT,
		.thread_nice = KF_BROKER_THREAD_NICE_DEFAULT,
	};
	*action = KF_BROKER_RUN;
	kf_bus_addrs_init(&cfg->addrs);
	if ((err = from_env(cfg, msg)))
		return err;
	if ((err = kf_cliopt_parse(argc, argv, long_opts, apply_option, cfg, &special, msg)))
		return err;
	if (special)
		*action = special == 'h' ? KF_BROKER_HELP : KF_BROKER_VERSION;
	return KF_OK;
}
