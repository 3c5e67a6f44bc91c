/*
 * ctl_main.c — keyforgectl: the command table, global flags, help, exit.
 *
 *   keyforgectl [GLOBAL FLAGS] COMMAND [ARGS] [FLAGS]
 *
 * Global flags may also follow the command. Addresses come from flags over
 * the environment over the defaults (bus/addr.h).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/ctl.h"
#include "kf_config.h"

static const struct kf__ctl_cmd commands[] = {
	{ "submit", "--corpus FILE [JOB FLAGS]", "queue a layout optimization; prints its id",
	  "  --corpus FILE     corpus (.kfc or Oxeylyzer JSON) as the workers see it; a\n"
	  "                    relative path that exists here is made absolute\n"
	  "  --start L         start layout: qwerty, dvorak, colemak, colemak-dh, workman,\n"
	  "                    a 30-character string, or random (default qwerty)\n"
	  "  --board B         ansi (default) or ortho\n"
	  "  --steps N         swap attempts per restart (default 1000000)\n"
	  "  --restarts N      independent annealings, best one kept (default 1)\n"
	  "  --seed S          random seed (default: from the clock; with --key, from\n"
	  "                    the key, so that submitting again sends the same job)\n"
	  "  --temp T          start temperature (default 0: calibrated)\n"
	  "  --pin KEYS        characters that keep their place, e.g. ',./;'\n"
	  "  --weights FILE    score weights ('name = value' lines or a JSON object),\n"
	  "                    read here and sent as the values that differ from the\n"
	  "                    defaults\n"
	  "  --priority N      higher runs first (default 0)\n"
	  "  --max-attempts N  attempts before the job fails (default: the broker's, 3)\n"
	  "  --deadline D      time limit per attempt: seconds or 30s, 5m, 1h (default\n"
	  "                    none); the job is stopped there and fails, not retried,\n"
	  "                    keeping the best layout found\n"
	  "  --key KEY         idempotency key (1 to 200 bytes of text): the broker\n"
	  "                    queues at most one job per key, so a submit that timed\n"
	  "                    out can be sent again; again with the same key and flags\n"
	  "                    prints the first job's id and queues nothing, with other\n"
	  "                    flags it is refused (exit 1)\n",
	  kf__ctl_submit },
	{ "list", "[--state S] [--limit N] [--after ID] [--newest-first] [--json [--brief]]",
	  "list jobs, oldest first (or newest first)",
	  "  --state S         pending, running, retrying, succeeded, failed, killed, or\n"
	  "                    active, final, all; comma-separated (default all)\n"
	  "  --limit N         at most N jobs (default 50, at most 1000)\n"
	  "  --after ID        jobs with an id above ID (the next page); with\n"
	  "                    --newest-first, below ID\n"
	  "  --newest-first    the newest jobs first (a broker of protocol 1.4 or\n"
	  "                    later; an older one lists the oldest first)\n"
	  "  --json            a JSON array of full job records (as `show --json`)\n"
	  "  --brief           with --json: the list lines only (one request, no params\n"
	  "                    or statistics)\n",
	  kf__ctl_list },
	{ "show", "ID [--json]", "one job: parameters, progress, result, errors",
	  "  --json            the job record as JSON (id, state, attempt, worker, params,\n"
	  "                    result with layout, score and statistics, errors)\n",
	  kf__ctl_show },
	{ "kill", "ID", "kill a job: at once when pending, by a cancel when running",
	  "", kf__ctl_kill },
	{ "retry", "ID", "queue a failed or killed job again, with a new attempt",
	  "", kf__ctl_retry },
	{ "wait", "[ID...] [--timeout D] [--strict] [--quiet]",
	  "wait until every job is final (succeeded, failed or killed)",
	  "  ID...             the jobs; none: those pending, running or retrying now\n"
	  "                    (not the ones submitted later)\n"
	  "  --timeout D, -t D give up after D (seconds or 30s, 5m; default: never);\n"
	  "                    exit status 3. (Here --timeout is the wait; the time per\n"
	  "                    request is the global --timeout before the command.)\n"
	  "  --strict          exit status 5 when a job did not succeed\n"
	  "  --quiet, -q       print nothing; the exit status says it all\n"
	  "  Prints a line per job as it becomes final: ID STATE [score S | error].\n",
	  kf__ctl_wait },
	{ "workers", "[--json]", "the workers the broker knows and the job counts",
	  "  --json            {\"workers\":[...], \"jobs\":{\"pending\":n,...}}\n",
	  kf__ctl_workers },
	{ "drain", "WORKER [--json]",
	  "drain a worker: it takes no new job, finishes the jobs it holds and exits",
	  "  WORKER            the worker's id (keyforgectl workers lists them)\n"
	  "  --json            {\"worker\":..., \"liveness\":..., \"leases_ended\":n}\n"
	  "  The broker gives the worker no job from then on, until it restarts (a\n"
	  "  new process under the id is not drained). Needs the token file.\n",
	  kf__ctl_drain },
	{ "logs", "[--follow] [--level L] [--regex RE] [--tail N] [--source S] [--json]",
	  "recent log events of the hive; --follow streams new ones",
	  "  --tail N, -n N    recent events to show first (default 20; 0 = none)\n"
	  "  --level L         error, warn, info, debug or trace: that level and more\n"
	  "                    severe (default info)\n"
	  "  --regex RE        only lines matching RE (POSIX extended, case-sensitive)\n"
	  "  --source S        only events from source S (a worker id, \"broker\")\n"
	  "  --follow, -f      then print new events as they come (events socket),\n"
	  "                    until interrupted\n"
	  "  --json            JSON lines (timestamp, level, target, source, fields, spans)\n",
	  kf__ctl_logs },
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

const struct kf__ctl_cmd *kf__ctl_find(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static const char global_help[] =
	"global flags (before or after the command):\n"
	"  --rpc URL         broker's rpc socket [KEYFORGE_RPC] (tcp://127.0.0.1:7402)\n"
	"  --events URL      broker's events socket [KEYFORGE_EVENTS] (tcp://127.0.0.1:7401)\n"
	"  --token-file F    the broker's token file, needed for submit, kill, retry and\n"
	"                    drain when the broker uses one [KEYFORGE_TOKEN_FILE]\n"
	"  --timeout D       time allowed per request (default 5s)\n"
	"  -h, --help        help (of a command: keyforgectl COMMAND --help)\n"
	"  -V, --version     version\n";

static const char exit_help[] =
	"exit status: 0 done; 1 refused or failed (no such job, wrong state, not\n"
	"authorised); 2 usage error; 3 wait timed out; 4 broker unreachable or\n"
	"unavailable (try again later); 5 wait --strict and a job did not succeed.\n";

static void usage(FILE *out)
{
	fputs("usage: keyforgectl [GLOBAL FLAGS] COMMAND [ARGS]\n\n"
	      "Controls a KeyForge Hive from scripts: jobs, workers, logs.\n\ncommands:\n", out);
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n%s\n%s", global_help, exit_help);
}

static void cmd_usage(const struct kf__ctl_cmd *cmd, FILE *out)
{
	fprintf(out, "usage: keyforgectl %s %s\n\n%s.\n", cmd->name, cmd->synopsis, cmd->summary);
	if (*cmd->options)
		fprintf(out, "\n%s", cmd->options);
	fprintf(out, "\n%s\n%s", global_help, exit_help);
}

/* ---- global flags ------------------------------------------------------------- */

enum {
	OPT_RPC = 1000, OPT_EVENTS, OPT_TOKEN_FILE, OPT_TIMEOUT, OPT_HELP, OPT_VERSION,
};

static const struct option global_opts[] = {
	{ "rpc", required_argument, NULL, OPT_RPC },
	{ "events", required_argument, NULL, OPT_EVENTS },
	{ "token-file", required_argument, NULL, OPT_TOKEN_FILE },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "version", no_argument, NULL, OPT_VERSION },
};

#define NGLOBAL (sizeof global_opts / sizeof global_opts[0])

/* Applies one global flag. -1 to go on, else an exit status. */
static int apply_global(struct kf__ctl *ctl, const char *cmd, int id, const char *arg)
{
	struct kf_strbuf why = KF_STRBUF_INIT;
	enum kf_bus_role role = id == OPT_RPC ? KF_BUS_RPC : KF_BUS_EVENTS;
	uint64_t ms;
	int status = -1;

	switch (id) {
	case OPT_RPC:
	case OPT_EVENTS:
		if (kf_bus_addrs_set(&ctl->addrs, role, arg, &why) != KF_OK)
			status = kf__ctl_fail(KF__CTL_USAGE, "%s: %s", id == OPT_RPC ? "--rpc" :
					      "--events", why.buf);
		break;
	case OPT_TOKEN_FILE:
		ctl->token_file = *arg ? arg : NULL;
		break;
	case OPT_TIMEOUT:
		if (!kf__ctl_parse_duration_ms(arg, &ms) || ms == 0 || ms > 86400000)
			status = kf__ctl_bad_value(cmd, "--timeout", arg,
						   "a duration from 1ms to 24h (5, 5s, 500ms)");
		else
			ctl->timeout_ms = (nng_duration)ms;
		break;
	default:
		break;
	}
	kf_strbuf_release(&why);
	return status;
}

int kf__ctl_getopt(struct kf__ctl *ctl, const struct kf__ctl_cmd *cmd, int argc, char **argv,
	const char *shortopts, const struct option *cmd_opts,
	int (*on_opt)(void *state, int id, const char *arg), void *state, int *first_arg)
{
	struct option all[48];
	char shorts[32];
	size_t n = 0;
	int c;

	for (; cmd_opts && cmd_opts[n].name && n < 32; n++)
		all[n] = cmd_opts[n];
	for (size_t i = 0; i < NGLOBAL; i++) {
		bool shadowed = false; /* a command may take a global name (wait --timeout) */

		for (size_t k = 0; k < n && !shadowed; k++)
			shadowed = !strcmp(all[k].name, global_opts[i].name);
		if (!shadowed)
			all[n++] = global_opts[i];
	}
	all[n] = (struct option){ NULL, 0, NULL, 0 };
	snprintf(shorts, sizeof shorts, ":hV%s", shortopts ? shortopts : "");
	optind = 0; /* 0: full re-initialisation of GNU getopt */
	opterr = 0;
	while ((c = getopt_long(argc, argv, shorts, all, NULL)) != -1) {
		int status;

		if (c == 'h' || c == OPT_HELP) {
			cmd_usage(cmd, stdout);
			return 0;
		}
		if (c == '?' || c == ':') {
			fprintf(stderr, "keyforgectl %s: %s '%s'; see keyforgectl %s --help\n",
				cmd->name, c == ':' ? "missing value for" : "unknown option",
				argv[optind - 1], cmd->name);
			return KF__CTL_USAGE;
		}
		if (c == 'V' || c == OPT_VERSION) {
			printf("keyforgectl %s (protocol %d.%d)\n", KF_VERSION, KF_PROTO_MAJOR,
			       KF_PROTO_MINOR);
			return 0;
		}
		status = c >= OPT_RPC ? apply_global(ctl, cmd->name, c, optarg)
				      : on_opt(state, c, optarg);
		if (status >= 0)
			return status;
	}
	*first_arg = optind;
	return -1;
}

/* Global flags before the command; stops at the first non-option. */
static int leading_globals(struct kf__ctl *ctl, int argc, char **argv)
{
	struct option all[NGLOBAL + 1];
	int c;

	memcpy(all, global_opts, sizeof global_opts);
	all[NGLOBAL] = (struct option){ NULL, 0, NULL, 0 };
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:hV", all, NULL)) != -1) {
		int status;

		if (c == 'h' || c == OPT_HELP) {
			usage(stdout);
			return 0;
		}
		if (c == 'V' || c == OPT_VERSION) {
			printf("keyforgectl %s (protocol %d.%d)\n", KF_VERSION, KF_PROTO_MAJOR,
			       KF_PROTO_MINOR);
			return 0;
		}
		if (c == '?' || c == ':') {
			fprintf(stderr, "keyforgectl: %s '%s'; see keyforgectl --help\n",
				c == ':' ? "missing value for" : "unknown option", argv[optind - 1]);
			return KF__CTL_USAGE;
		}
		if ((status = apply_global(ctl, NULL, c, optarg)) >= 0)
			return status;
	}
	return -1;
}

static int setup(struct kf__ctl *ctl)
{
	struct kf_strbuf why = KF_STRBUF_INIT;
	const char *v;
	int status = -1;

	memset(ctl, 0, sizeof(*ctl));
	ctl->timeout_ms = KF_RPC_TIMEOUT_DEFAULT_MS;
	kf_bus_addrs_init(&ctl->addrs);
	if (kf_bus_addrs_from_env(&ctl->addrs, &why) != KF_OK)
		status = kf__ctl_fail(KF__CTL_USAGE, "environment: %s", why.buf);
	if ((v = getenv("KEYFORGE_TOKEN_FILE")) && *v)
		ctl->token_file = v;
	ctl->color = isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
	kf_strbuf_release(&why);
	return status;
}

int main(int argc, char **argv)
{
	const struct kf__ctl_cmd *cmd;
	struct kf__ctl ctl;
	int status;

	if ((status = setup(&ctl)) >= 0)
		return status;
	if ((status = leading_globals(&ctl, argc, argv)) >= 0)
		return status;
	if (optind >= argc) {
		usage(stderr);
		return KF__CTL_USAGE;
	}
	if (!(cmd = kf__ctl_find(argv[optind]))) {
		fprintf(stderr, "keyforgectl: unknown command '%s'; commands: ", argv[optind]);
		for (size_t i = 0; i < NCOMMANDS; i++)
			fprintf(stderr, "%s%s", i ? ", " : "", commands[i].name);
		fputs(" (keyforgectl --help)\n", stderr);
		return KF__CTL_USAGE;
	}
	kf__ctl_load_token(&ctl);
	status = cmd->run(&ctl, argc - optind, argv + optind);
	kf__ctl_release(&ctl);
	if (fflush(stdout) != 0 && status == KF__CTL_OK)
		status = KF__CTL_FAIL;
	return status;
}
