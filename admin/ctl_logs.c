/*
 * ctl_logs.c — `keyforgectl logs`: the broker's recent log events (log
 * tail request), then with --follow the live ones on the events socket
 * (topics log.<LEVEL>.<source>).
 *
 * With --follow we subscribe before asking for the tail, so that nothing
 * falls between the two; events present in both are printed once. The
 * stream is lossy by design (DESIGN.md §1): under a log storm some live
 * events may be missing; the broker counts the drops in its bus metrics.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "admin/ctl.h"
#include "bus/sub.h"
#include "common/clock.h"
#include "common/regex_guard.h"

#define TAIL_DEFAULT 20
#define SEEN_MAX 1000 /* = KF_MSG_MAX_EVENTS: every tail event */

struct logs_opts {
	const char *tail, *level, *regex, *source;
	bool follow, json;
};

struct logs {
	struct kf__ctl *ctl;
	struct logs_opts o;
	enum kf_msg_level min_level;
	uint32_t tail;
	regex_t re;
	bool have_re;
	/* tail events, to skip their copies in the stream */
	struct seen {
		uint64_t ts_ns;
		uint64_t hash;
	} seen[SEEN_MAX];
	size_t n_seen;
	uint64_t seen_max_ts;
	struct kf_strbuf line, out;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int on_opt(void *state, int id, const char *arg)
{
	struct logs_opts *o = state;

	switch (id) {
	case 'f': o->follow = true; return -1;
	case 'j': o->json = true; return -1;
	case 'n': o->tail = arg; return -1;
	case 'l': o->level = arg; return -1;
	case 'r': o->regex = arg; return -1;
	case 's': o->source = arg; return -1;
	default: return KF__CTL_USAGE;
	}
}

static const char *level_color(enum kf_msg_level l)
{
	static const char *const colors[] = {
		[KF_MSG_LEVEL_ERROR] = "\033[31m", [KF_MSG_LEVEL_WARN] = "\033[33m",
		[KF_MSG_LEVEL_INFO] = "\033[32m", [KF_MSG_LEVEL_DEBUG] = "\033[34m",
		[KF_MSG_LEVEL_TRACE] = "\033[35m",
	};

	return l >= KF_MSG_LEVEL_ERROR && l <= KF_MSG_LEVEL_TRACE ? colors[l] : "";
}

static void print_colored(const struct logs *lg, const struct kf_msg_log *ev)
{
	const char *l = lg->line.buf;
	size_t ts = strcspn(l, " "), lv;

	/* timestamp dim, level coloured (both ours), the rest plain */
	lv = ts + 1 + strspn(l + ts + 1, " ");
	lv += strcspn(l + lv, " ");
	printf("\033[2m%.*s\033[0m%s%.*s\033[0m", (int)ts, l, level_color(ev->level),
	       (int)(lv - ts), l + ts);
	kf__ctl_fputs_safe(l + lv, stdout);
	putchar('\n');
}

/*
 * Prints ev when it passes the filters. KF__CTL_OK, or KF__CTL_FAIL (said)
 * when stdout is gone: a pipe whose reader exited gives EPIPE here when
 * SIGPIPE is ignored (a shell's `trap '' PIPE`, many process supervisors),
 * and nothing else would end a --follow.
 */
static int print_event(struct logs *lg, const struct kf_msg_log *ev)
{
	if (lg->o.source && (!ev->source || strcmp(ev->source, lg->o.source) != 0))
		return KF__CTL_OK;
	if (ev->level > lg->min_level)
		return KF__CTL_OK;
	kf_strbuf_reset(&lg->line);
	kf__ctl_log_text(&lg->line, ev);
	if (lg->have_re && !kf_regex_match(&lg->re, lg->line.buf))
		return KF__CTL_OK;
	errno = 0;
	if (lg->o.json) {
		kf_strbuf_reset(&lg->out);
		kf__ctl_json_log(&lg->out, ev);
		printf("%s\n", lg->out.buf);
	} else if (lg->ctl->color) {
		print_colored(lg, ev);
	} else {
		kf__ctl_fputs_safe(lg->line.buf, stdout);
		putchar('\n');
	}
	if (fflush(stdout) != 0 || ferror(stdout))
		return kf__ctl_fail(KF__CTL_FAIL, "logs: cannot write to stdout: %s",
				    strerror(errno ? errno : EIO));
	return KF__CTL_OK;
}

/* ---- the tail ------------------------------------------------------------------ */

static int print_tail(struct logs *lg)
{
	struct kf_msg req, *rep = NULL;
	int status;

	kf__ctl_msg_init(lg->ctl, &req, KF_MSG_LOG_TAIL_REQ);
	req.log_tail_req.count = lg->tail;
	req.log_tail_req.min_level = lg->min_level;
	req.log_tail_req.source = lg->o.source;
	if ((status = kf__ctl_call(lg->ctl, &req, &rep)))
		return status;
	for (size_t i = 0; i < rep->log_tail_rep.n_events && !status; i++) {
		const struct kf_msg_log *ev = &rep->log_tail_rep.events[i];

		if (lg->n_seen < SEEN_MAX)
			lg->seen[lg->n_seen++] = (struct seen){ ev->ts_ns, kf__ctl_log_hash(ev) };
		if (ev->ts_ns > lg->seen_max_ts)
			lg->seen_max_ts = ev->ts_ns;
		status = print_event(lg, ev);
	}
	kf_msg_free(rep);
	return status;
}

static bool seen_in_tail(const struct logs *lg, const struct kf_msg_log *ev)
{
	uint64_t h;

	if (ev->ts_ns > lg->seen_max_ts)
		return false;
	h = kf__ctl_log_hash(ev);
	for (size_t i = 0; i < lg->n_seen; i++)
		if (lg->seen[i].ts_ns == ev->ts_ns && lg->seen[i].hash == h)
			return true;
	return false;
}

/* ---- following ---------------------------------------------------------------- */

static int open_stream(struct logs *lg, struct kf_bus_sub **out)
{
	struct kf_strbuf why = KF_STRBUF_INIT;
	char topic[32];
	int status = KF__CTL_OK;

	if (kf__ctl_events_open(lg->ctl, 0, out, &why) != KF_OK) {
		status = kf__ctl_fail(KF__CTL_FAIL, "logs: events socket: %s", why.buf);
		goto out;
	}
	/* one prefix per level at or above the threshold: nng filters by prefix */
	for (int l = KF_MSG_LEVEL_ERROR; l <= (int)lg->min_level; l++) {
		snprintf(topic, sizeof topic, "%s%s.", KF_TOPIC_LOG,
			 kf_msg_level_name((enum kf_msg_level)l));
		kf_bus_sub_subscribe(*out, topic, strlen(topic));
	}
	kf__ctl_events_wait_dial(*out, 1000);
out:
	kf_strbuf_release(&why);
	return status;
}

/* One message of the stream; as print_event. */
static int handle(struct logs *lg, nng_msg *m)
{
	struct kf_msg *ev = NULL;
	int status = KF__CTL_OK;

	if (kf_msg_decode_pub(nng_msg_body(m), nng_msg_len(m), &ev, NULL) != KF_OK ||
	    ev->type != KF_MSG_LOG) {
		kf_msg_free(ev);
		return KF__CTL_OK; /* not ours to show; the broker counts bad messages */
	}
	if (!seen_in_tail(lg, &ev->log))
		status = print_event(lg, &ev->log);
	kf_msg_free(ev);
	return status;
}

static int follow(struct logs *lg, struct kf_bus_sub *sub)
{
	struct sigaction sa = { .sa_handler = on_signal };
	uint64_t since = kf_clock_mono_ns();
	bool warned = false;

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	while (!stop) {
		nng_msg *m = NULL;
		enum kf_err err = kf_bus_sub_recv(sub, 250, &m);

		if (err == KF_OK) {
			int status = handle(lg, m);

			nng_msg_free(m);
			if (status)
				return status;
		} else if (err != KF_ETIMEDOUT) {
			return kf__ctl_fail(KF__CTL_FAIL, "logs: events socket: %s", kf_strerror(err));
		}
		if (!warned && !kf_bus_sock_peers(kf_bus_sub_sock(sub)) &&
		    kf_clock_mono_ns() - since > 3000000000ull) {
			kf__ctl_fail(0, "logs: not connected to the events socket at %s yet; still "
				     "trying (--events or KEYFORGE_EVENTS)",
				     kf_bus_addrs_get(&lg->ctl->addrs, KF_BUS_EVENTS));
			warned = true;
		}
	}
	return KF__CTL_OK;
}

/* ---- command -------------------------------------------------------------------- */

static int setup(struct logs *lg, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "follow", no_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ "tail", required_argument, NULL, 'n' },
		{ "level", required_argument, NULL, 'l' },
		{ "regex", required_argument, NULL, 'r' },
		{ "source", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t n = TAIL_DEFAULT;
	int first, status;
	char msg[256];

	status = kf__ctl_getopt(lg->ctl, kf__ctl_find("logs"), argc, argv, "fn:", opts, on_opt,
				&lg->o, &first);
	if (status >= 0)
		return status;
	if (first < argc) {
		fprintf(stderr, "keyforgectl logs: unexpected argument '%s'\n", argv[first]);
		return KF__CTL_USAGE;
	}
	if (lg->o.tail && !kf__ctl_parse_u64(lg->o.tail, KF_MSG_MAX_EVENTS, &n))
		return kf__ctl_bad_value("logs", "--tail", lg->o.tail, "a number from 0 to 1000");
	lg->tail = (uint32_t)n;
	lg->min_level = KF_MSG_LEVEL_INFO;
	if (lg->o.level && kf_msg_level_parse(lg->o.level, &lg->min_level) != KF_OK)
		return kf__ctl_bad_value("logs", "--level", lg->o.level,
					 "error, warn, info, debug or trace");
	if (lg->o.regex) {
		if (!kf_regex_compile(&lg->re, lg->o.regex, msg, sizeof msg)) {
			/* invalid, or one glibc would stall on (regex_guard.h) */
			fprintf(stderr, "keyforgectl logs: --regex '%s' is not a valid regular "
				"expression: %s\n", lg->o.regex, msg);
			return KF__CTL_USAGE;
		}
		lg->have_re = true;
	}
	return -1;
}

int kf__ctl_logs(struct kf__ctl *ctl, int argc, char **argv)
{
	struct logs *lg = calloc(1, sizeof(*lg));
	struct kf_bus_sub *sub = NULL;
	int status;

	if (!lg)
		return kf__ctl_fail(KF__CTL_FAIL, "out of memory");
	lg->ctl = ctl;
	kf_strbuf_init(&lg->line, 256);
	kf_strbuf_init(&lg->out, 256);
	if ((status = setup(lg, argc, argv)) >= 0)
		goto out;
	if (lg->o.follow && (status = open_stream(lg, &sub)))
		goto out;
	if (lg->tail && (status = print_tail(lg)))
		goto out;
	status = lg->o.follow ? follow(lg, sub) : KF__CTL_OK;
out:
	kf_bus_sub_free(sub);
	if (lg->have_re)
		regfree(&lg->re);
	kf_strbuf_release(&lg->line);
	kf_strbuf_release(&lg->out);
	free(lg);
	return status;
}
