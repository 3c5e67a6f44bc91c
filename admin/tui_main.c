/*
 * tui_main.c — keyforge-admin: flags, the terminal, and the loop.
 *
 * One thread waits in poll() on the terminal and on the events
 * subscription's eventfd, at most TICK_MS at a time; each turn takes the
 * keys, then the events, then the periodic RPCs (tui_data.c), and redraws
 * — at once after a key or a new job list (so that the next key acts on
 * what the screen shows), at most every DRAW_EVERY_MS for events.
 * A broker that goes away shows as "broker unreachable" in the header; the
 * subscription and the RPC socket redial by themselves when it returns.
 */
#include <curses.h>
#include <errno.h>
#include <getopt.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/tui.h"
#include "common/clock.h"
#include "kf_config.h"

#define TICK_MS 250        /* the longest wait for a key or an event */
#define DRAW_EVERY_MS 100  /* redraws for events, at most this often */

static const char usage_text[] =
	"usage: keyforge-admin [--rpc URL] [--events URL] [--token-file FILE] [--timeout D]\n"
	"                      [--view cluster|jobs|logs] [--regex RE] [--level LEVEL]\n"
	"\n"
	"The terminal control plane of a KeyForge Hive: Cluster Map (workers, their\n"
	"liveness, load and jobs), Job Queue (jobs by state; Kill and Retry after a\n"
	"confirmation) and Log Stream (live log events with regex and level filters).\n"
	"Press ? inside for the keys.\n"
	"\n"
	"  --rpc URL         broker's rpc socket [KEYFORGE_RPC] (tcp://127.0.0.1:7402)\n"
	"  --events URL      broker's events socket [KEYFORGE_EVENTS] (tcp://127.0.0.1:7401)\n"
	"  --token-file F    the broker's token file, needed for kill, retry and drain\n"
	"                    when the broker uses one [KEYFORGE_TOKEN_FILE]\n"
	"  --timeout D       time allowed for a kill, a retry or a drain (default 5s;\n"
	"                    refreshes and job details wait at most 1s)\n"
	"  --view NAME       the view to open: cluster (default), jobs or logs\n"
	"  --regex RE        Log Stream filter to start with (POSIX extended)\n"
	"  --level LEVEL     Log Stream level to start with: error, warn, info\n"
	"                    (default), debug or trace\n"
	"  -h, --help        this help\n"
	"  -V, --version     version\n"
	"\n"
	"Over SSH: ssh -L 7401:127.0.0.1:7401 -L 7402:127.0.0.1:7402 HOST, then run\n"
	"keyforge-admin here. A local hive: eval \"$(./keyforge env)\"; keyforge-admin.\n"
	"exit status: 0 quit with q; 1 no terminal or a setup failure; 2 usage error.\n";

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line "keyforge-admin: ...; see keyforge-admin --help", status 2. */
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("keyforge-admin: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("; see keyforge-admin --help\n", stderr);
	return 2;
}

/* ---- flags --------------------------------------------------------------------------- */

struct flags {
	const char *view, *regex, *level;
};

static int parse_flags(struct kf__tui *t, struct flags *f, int argc, char **argv)
{
	enum { OPT_RPC = 256, OPT_EVENTS, OPT_TOKEN_FILE, OPT_TIMEOUT, OPT_VIEW, OPT_REGEX,
		OPT_LEVEL };
	static const struct option opts[] = {
		{ "rpc", required_argument, NULL, OPT_RPC },
		{ "events", required_argument, NULL, OPT_EVENTS },
		{ "token-file", required_argument, NULL, OPT_TOKEN_FILE },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "view", required_argument, NULL, OPT_VIEW },
		{ "regex", required_argument, NULL, OPT_REGEX },
		{ "level", required_argument, NULL, OPT_LEVEL },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct kf_strbuf why = KF_STRBUF_INIT;
	uint64_t ms;
	int c, status = -1;

	opterr = 0;
	while (status < 0 && (c = getopt_long(argc, argv, ":hV", opts, NULL)) != -1) {
		switch (c) {
		case 'h': fputs(usage_text, stdout); status = 0; break;
		case 'V':
			printf("keyforge-admin %s (protocol %d.%d)\n", KF_VERSION, KF_PROTO_MAJOR,
			       KF_PROTO_MINOR);
			status = 0;
			break;
		case OPT_RPC:
		case OPT_EVENTS:
			if (kf_bus_addrs_set(&t->ctl.addrs, c == OPT_RPC ? KF_BUS_RPC : KF_BUS_EVENTS,
					     optarg, &why) != KF_OK)
				status = usage_error("%s: %s", c == OPT_RPC ? "--rpc" : "--events",
						     why.buf);
			break;
		case OPT_TOKEN_FILE: t->ctl.token_file = *optarg ? optarg : NULL; break;
		case OPT_TIMEOUT:
			if (!kf__ctl_parse_duration_ms(optarg, &ms) || !ms || ms > 86400000)
				status = usage_error("--timeout '%s' is not %s", optarg,
						     "a duration from 1ms to 24h (5, 5s, 500ms)");
			else
				t->ctl.timeout_ms = (nng_duration)ms;
			break;
		case OPT_VIEW: f->view = optarg; break;
		case OPT_REGEX: f->regex = optarg; break;
		case OPT_LEVEL: f->level = optarg; break;
		case ':':
			status = usage_error("missing value for '%s'", argv[optind - 1]);
			break;
		default:
			status = usage_error("unknown option '%s'", argv[optind - 1]);
			break;
		}
	}
	if (status < 0 && optind < argc)
		status = usage_error("unexpected argument '%s'", argv[optind]);
	kf_strbuf_release(&why);
	return status;
}

/* The flags that configure the views; -1 to go on, else the exit status. */
static int apply_flags(struct kf__tui *t, const struct flags *f)
{
	static const char *const views[KF__TUI_VIEW_COUNT] = { "cluster", "jobs", "logs" };
	enum kf_msg_level level;
	char why[256];

	if (f->view) {
		int v = 0;

		while (v < KF__TUI_VIEW_COUNT && strcmp(f->view, views[v]))
			v++;
		if (v == KF__TUI_VIEW_COUNT)
			return usage_error("--view '%s' is not %s", f->view,
					   "cluster, jobs or logs");
		t->view = (enum kf__tui_view)v;
	}
	if (f->level) {
		if (kf_msg_level_parse(f->level, &level) != KF_OK)
			return usage_error("--level '%s' is not %s", f->level,
					   "error, warn, info, debug or trace");
		kf__tui_logs_set_level(&t->logs, level);
	}
	if (f->regex && !kf__tui_logs_set_regex(&t->logs, f->regex, why, sizeof why)) {
		fprintf(stderr, "keyforge-admin: --regex '%s' is not a valid regular expression: "
			"%s\n", f->regex, why);
		return 2;
	}
	return -1;
}

/* ---- setup --------------------------------------------------------------------------- */

static int setup(struct kf__tui *t, int argc, char **argv)
{
	struct kf_strbuf why = KF_STRBUF_INIT;
	struct flags f = { 0 };
	const char *v;
	int status;

	memset(t, 0, sizeof(*t));
	t->ctl.program = "keyforge-admin";
	t->ctl.timeout_ms = KF_RPC_TIMEOUT_DEFAULT_MS;
	kf_bus_addrs_init(&t->ctl.addrs);
	if (!kf__tui_logs_init(&t->logs, KF__TUI_LOG_LINES)) {
		fputs("keyforge-admin: out of memory\n", stderr);
		return 1;
	}
	if (kf_bus_addrs_from_env(&t->ctl.addrs, &why) != KF_OK) {
		status = usage_error("environment: %s", why.buf);
		kf_strbuf_release(&why);
		return status;
	}
	kf_strbuf_release(&why);
	if ((v = getenv("KEYFORGE_TOKEN_FILE")) && *v)
		t->ctl.token_file = v;
	if ((status = parse_flags(t, &f, argc, argv)) >= 0)
		return status;
	if ((status = apply_flags(t, &f)) >= 0)
		return status;
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		fputs("keyforge-admin: needs a terminal (standard input and output); for scripts "
		      "use keyforgectl\n", stderr);
		return 1;
	}
	kf__ctl_load_token(&t->ctl);  /* none: kill, retry and drain say why when refused */
	return -1;
}

/* The events subscription: status, job and log events. */
static int subscribe(struct kf__tui *t)
{
	static const char *const topics[] = { KF_TOPIC_STATUS, KF_TOPIC_JOB, KF_TOPIC_LOG };
	struct kf_strbuf why = KF_STRBUF_INIT;

	if (kf__ctl_events_open(&t->ctl, KF_BUS_SUB_QUEUE_MAX, &t->sub, &why) != KF_OK) {
		fprintf(stderr, "keyforge-admin: events socket %s: %s\n",
			kf_bus_addrs_get(&t->ctl.addrs, KF_BUS_EVENTS), why.buf);
		kf_strbuf_release(&why);
		return 1;
	}
	kf_strbuf_release(&why);
	for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++)
		kf_bus_sub_subscribe(t->sub, topics[i], strlen(topics[i]));
	return -1;
}

/* The broker's recent log events, once the subscription's dial is up (at
 * most 500 ms: a broker that is down does not hold the screen), so that the
 * live stream starts where the tail ends. */
static void load_tail(struct kf__tui *t)
{
	kf__ctl_events_wait_dial(t->sub, 500);
	kf__tui_load_tail(t);
}

/* ---- the loop ---------------------------------------------------------------------------- */

/* Every key waiting; true when there was one. */
static bool read_keys(struct kf__tui *t)
{
	bool any = false;
	wint_t ch;
	int rc;

	while (!t->quit && (rc = get_wch(&ch)) != ERR) {
		kf__tui_key(t, ch, rc == KEY_CODE_YES);
		any = true;
	}
	return any;
}

static void run(struct kf__tui *t)
{
	struct pollfd pfd[2] = { { .fd = STDIN_FILENO, .events = POLLIN } };
	uint64_t drawn = 0;
	bool keyed = true;
	int sub_fd = -1;

	kf_bus_sub_recv_fd(t->sub, &sub_fd);
	pfd[1] = (struct pollfd){ .fd = sub_fd, .events = POLLIN };
	while (!t->quit && !stop_signal) {
		uint64_t now = kf_clock_mono_ns();

		/* A key and a list fetched are drawn at once; events redraw
		 * at most every DRAW_EVERY_MS, so that a storm of them costs
		 * decoding, not screens. */
		if (keyed || t->redraw || now - drawn >= DRAW_EVERY_MS * 1000000ull) {
			kf__tui_draw(t);
			drawn = now;
		}
		if (poll(pfd, sub_fd >= 0 ? 2 : 1, TICK_MS) < 0 && errno != EINTR)
			break;
		keyed = read_keys(t);  /* KEY_RESIZE too: the draw uses the new size */
		kf__tui_drain_events(t);
		kf__tui_tick(t, kf_clock_mono_ns());
	}
}

static void release(struct kf__tui *t)
{
	kf_bus_sub_free(t->sub);
	kf_msg_free(t->cluster);
	kf_msg_free(t->list);
	kf_msg_free(t->job);
	kf__tui_logs_free(&t->logs);
	kf__ctl_release(&t->ctl);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct kf__tui *t = calloc(1, sizeof(*t));
	int status;

	setlocale(LC_ALL, "");  /* wide characters: ncursesw and mbrtowc need it */
	if (!t) {
		fputs("keyforge-admin: out of memory\n", stderr);
		return 1;
	}
	if ((status = setup(t, argc, argv)) >= 0 || (status = subscribe(t)) >= 0) {
		release(t);
		free(t);
		return status;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	t->status_mono_ns = kf_clock_mono_ns();  /* the 3 s before "unreachable" start now */
	initscr();
	cbreak();
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	nodelay(stdscr, TRUE);
	set_escdelay(25);
	kf__tui_colors();
	kf__tui_draw(t);  /* at once: the tail may take a moment */
	load_tail(t);
	run(t);
	endwin();
	release(t);
	free(t);
	return stop_signal ? 128 + stop_signal : 0;
}
