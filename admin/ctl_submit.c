/*
 * ctl_submit.c — `keyforgectl submit`: the job flags of `keyforge-layout
 * optimize` plus priority, attempts and deadline, checked here as far as
 * they can be without the corpus (the worker loads it), then one submit
 * request. Prints the new job id alone on stdout.
 *
 * --key makes the submit idempotent across processes: a script whose submit
 * timed out (exit 4: the job may or may not be queued) runs the same command
 * again and gets the one job. The seed then defaults to a hash of the key,
 * since a seed from the clock would make the second submit another job.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin/ctl.h"
#include "common/clock.h"
#include "common/parse.h"
#include "layout/layout.h"
#include "layout/score.h"

#define STEPS_DEFAULT 1000000
#define RESTARTS_MAX 1000000
#define MAX_ATTEMPTS_MAX 1000

struct submit_opts {
	const char *corpus, *start, *board, *weights, *pin;
	const char *steps, *restarts, *seed, *temp;
	const char *priority, *max_attempts, *deadline;
	const char *key;
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "keyforgectl submit: ..." on stderr; exit status 2. */
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("keyforgectl submit: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return KF__CTL_USAGE;
}

static int on_opt(void *state, int id, const char *arg)
{
	struct submit_opts *o = state;
	const char **slot[] = {
		['c'] = &o->corpus, ['s'] = &o->start, ['b'] = &o->board, ['w'] = &o->weights,
		['p'] = &o->pin, ['n'] = &o->steps, ['r'] = &o->restarts, ['S'] = &o->seed,
		['t'] = &o->temp, ['P'] = &o->priority, ['m'] = &o->max_attempts,
		['d'] = &o->deadline, ['k'] = &o->key,
	};

	if (id < 0 || (size_t)id >= sizeof slot / sizeof slot[0] || !slot[id])
		return KF__CTL_USAGE;
	*slot[id] = arg;
	return -1;
}

/* A local file is sent as an absolute path (a worker's working folder is
 * not ours); anything else as given, for workers that know it by name. */
static int corpus_path(const char *text, char **out)
{
	char *abs;

	if (!*text)
		return kf__ctl_bad_value("submit", "--corpus", text, "a corpus file");
	if (access(text, F_OK) == 0 && (abs = realpath(text, NULL))) {
		*out = abs;
		return KF__CTL_OK;
	}
	if (strchr(text, '/'))
		fprintf(stderr, "keyforgectl submit: note: corpus '%s' is not a file here; the "
			"worker must find it\n", text);
	*out = strdup(text);
	return *out ? KF__CTL_OK : kf__ctl_fail(KF__CTL_FAIL, "out of memory");
}

static int start_layout(const struct submit_opts *o, struct kf_layout *lay, bool *random)
{
	struct kf_strbuf why = KF_STRBUF_INIT;
	const char *text = o->start ? o->start : "qwerty";
	int status = KF__CTL_OK;

	*random = !strcmp(text, "random");
	if (*random)
		text = "qwerty"; /* the character set, to check pins against */
	if (kf_layout_resolve(text, lay, &why) != KF_OK)
		status = usage_error("--start '%s': %s", text, why.buf);
	kf_strbuf_release(&why);
	return status;
}

static int check_pins(const char *pin, const struct kf_layout *lay)
{
	for (const char *p = pin; *p; p++) {
		if (kf_layout_find(lay, *p) < 0)
			return usage_error("--pin '%s': '%c' is not on the "
					    "start layout", pin, *p);
		if (strchr(p + 1, *p))
			return usage_error("--pin '%s': '%c' is there twice",
					    pin, *p);
	}
	return KF__CTL_OK;
}

/* ---- weights: the file's values that differ from the defaults --------- */

/* The next "name":number of a flat JSON object written by
 * kf_weights_add_json (no strings with escapes, no nesting). */
static bool next_member(const char **p, char *name, size_t cap, double *value)
{
	const char *q = strchr(*p, '"'), *e;
	char *end;

	if (!q || !(e = strchr(q + 1, '"')) || (size_t)(e - q - 1) >= cap || e[1] != ':')
		return false;
	memcpy(name, q + 1, (size_t)(e - q - 1));
	name[e - q - 1] = '\0';
	*value = strtod(e + 2, &end);
	*p = end;
	return end != e + 2;
}

static int weights_pairs(const char *path, struct kf_msg_named_value **out, size_t *n_out,
	struct kf_strbuf *names)
{
	struct kf_strbuf why = KF_STRBUF_INIT, mine = KF_STRBUF_INIT, dflt = KF_STRBUF_INIT;
	struct kf_weights w, d;
	struct kf_msg_named_value *v = NULL;
	const char *p, *q;
	char name[64], dname[64];
	double val, dval;
	size_t n = 0;
	int status = KF__CTL_OK;

	kf_weights_default(&w);
	kf_weights_default(&d);
	if (kf_weights_load(&w, path, &why) != KF_OK) {
		status = usage_error("--weights '%s': %s", path, why.buf);
		goto out;
	}
	kf_weights_add_json(&w, &mine);
	kf_weights_add_json(&d, &dflt);
	if (!(v = calloc(KF_MSG_MAX_NAMED, sizeof(*v)))) {
		status = kf__ctl_fail(KF__CTL_FAIL, "out of memory");
		goto out;
	}
	/* Both objects list the same names in the same order. */
	for (p = mine.buf, q = dflt.buf; next_member(&p, name, sizeof name, &val) &&
	     next_member(&q, dname, sizeof dname, &dval) && n < KF_MSG_MAX_NAMED;) {
		if (val == dval || strcmp(name, dname) != 0)
			continue;
		/* names live in one buffer: offsets now, pointers once it stops growing */
		v[n].value = val;
		v[n].name = (const char *)(uintptr_t)names->len;
		kf_strbuf_add(names, name, strlen(name) + 1);
		n++;
	}
	for (size_t i = 0; i < n; i++)
		v[i].name = names->buf + (uintptr_t)v[i].name;
	*out = v;
	*n_out = n;
	v = NULL;
out:
	free(v);
	kf_strbuf_release(&why);
	kf_strbuf_release(&mine);
	kf_strbuf_release(&dflt);
	return status;
}

/* ---- the key ------------------------------------------------------------------ */

static int check_key(const char *key)
{
	size_t n = strlen(key);

	if (n == 0 || n > KF_MSG_MAX_SUBMIT_KEY)
		return kf__ctl_bad_value("submit", "--key", key, "1 to 200 bytes of text");
	if (kf_text_has_control(key))
		return kf__ctl_bad_value("submit", "--key", key, "text without control characters");
	return KF__CTL_OK;
}

/* FNV-1a, 64 bits: the default seed of a keyed submit. Any fixed function
 * of the key would do; this one is short and has no zero-key trap. */
static uint64_t key_seed(const char *key)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (const unsigned char *k = (const unsigned char *)key; *k; k++)
		h = (h ^ *k) * 0x100000001b3ull;
	return h;
}

/* ---- numbers ---------------------------------------------------------------- */

static int numbers(const struct submit_opts *o, struct kf_msg_job_params *p)
{
	uint64_t v;
	int64_t i;

	p->steps = STEPS_DEFAULT;
	p->restarts = 1;
	p->seed = o->key ? key_seed(o->key) : kf_clock_wall_ns() ^ ((uint64_t)getpid() << 32);
	if (o->steps && !kf__ctl_parse_count(o->steps, UINT64_MAX, &p->steps))
		return kf__ctl_bad_value("submit", "--steps", o->steps,
					 "an unsigned integer (1000000 or 1e6)");
	if (o->restarts) {
		if (!kf__ctl_parse_count(o->restarts, RESTARTS_MAX, &v) || v == 0)
			return kf__ctl_bad_value("submit", "--restarts", o->restarts,
						 "an integer from 1 to 1000000");
		p->restarts = (uint32_t)v;
	}
	if (o->seed && !kf__ctl_parse_u64(o->seed, UINT64_MAX, &p->seed))
		return kf__ctl_bad_value("submit", "--seed", o->seed, "an unsigned integer");
	if (o->temp && (!kf__ctl_parse_double(o->temp, &p->start_temp) || p->start_temp < 0))
		return kf__ctl_bad_value("submit", "--temp", o->temp, "a number >= 0");
	if (o->priority) {
		if (!kf__ctl_parse_i64(o->priority, INT32_MIN, INT32_MAX, &i))
			return kf__ctl_bad_value("submit", "--priority", o->priority,
						 "an integer (higher runs first)");
		p->priority = (int32_t)i;
	}
	if (o->max_attempts) {
		if (!kf__ctl_parse_u64(o->max_attempts, MAX_ATTEMPTS_MAX, &v) || v == 0)
			return kf__ctl_bad_value("submit", "--max-attempts", o->max_attempts,
						 "an integer from 1 to 1000");
		p->max_attempts = (uint32_t)v;
	}
	if (o->deadline && !kf__ctl_parse_duration_ms(o->deadline, &p->deadline_ms))
		return kf__ctl_bad_value("submit", "--deadline", o->deadline,
					 "a duration (seconds, or 30s, 5m, 1h)");
	if (p->steps > UINT64_MAX / p->restarts)
		return kf__ctl_bad_value("submit", "--steps", o->steps,
					 "small enough for that many restarts");
	return KF__CTL_OK;
}

static int parse(struct kf__ctl *ctl, int argc, char **argv, struct submit_opts *o)
{
	static const struct option opts[] = {
		{ "corpus", required_argument, NULL, 'c' },
		{ "start", required_argument, NULL, 's' },
		{ "board", required_argument, NULL, 'b' },
		{ "steps", required_argument, NULL, 'n' },
		{ "restarts", required_argument, NULL, 'r' },
		{ "seed", required_argument, NULL, 'S' },
		{ "temp", required_argument, NULL, 't' },
		{ "pin", required_argument, NULL, 'p' },
		{ "weights", required_argument, NULL, 'w' },
		{ "priority", required_argument, NULL, 'P' },
		{ "max-attempts", required_argument, NULL, 'm' },
		{ "deadline", required_argument, NULL, 'd' },
		{ "key", required_argument, NULL, 'k' },
		{ NULL, 0, NULL, 0 },
	};
	int first, status;

	status = kf__ctl_getopt(ctl, kf__ctl_find("submit"), argc, argv, "", opts, on_opt, o,
				&first);
	if (status >= 0)
		return status;
	if (first < argc) {
		fprintf(stderr, "keyforgectl submit: unexpected argument '%s'; see keyforgectl "
			"submit --help\n", argv[first]);
		return KF__CTL_USAGE;
	}
	if (!o->corpus) {
		fprintf(stderr, "keyforgectl submit: --corpus is required (e.g. --corpus "
			"build/corpora/brown.kfc); see keyforgectl submit --help\n");
		return KF__CTL_USAGE;
	}
	return -1;
}

/* Whether the request can have left this process: REQ sends only over a
 * connection, so with none ever made the broker has not seen it. */
static bool ever_connected(struct kf__ctl *ctl)
{
	struct kf_bus_sock_stats st;

	kf_bus_sock_stats(kf_rpc_client_sock(ctl->rpc), &st);
	return st.pipes_added > 0;
}

/* The call, and on a timeout what a script may do next: whether the job
 * was queued is unknown then, unless the broker was never reached. */
static int send_submit(struct kf__ctl *ctl, struct kf_msg *req, struct kf_msg **rep)
{
	struct kf_strbuf why = KF_STRBUF_INIT;
	int status = kf__ctl_call_quiet(ctl, req, rep, &why);

	if (status != KF__CTL_OK) {
		if (status == KF__CTL_UNAVAIL && !ever_connected(ctl))
			kf_strbuf_addstr(&why, "; nothing was sent, so no job was queued");
		else if (status == KF__CTL_UNAVAIL && !ctl->answered)
			kf_strbuf_addstr(&why, req->submit_req.key
				? "; the job may have been queued: submit again with the same --key, "
				  "which queues it at most once"
				: "; the job may have been queued (keyforgectl list shows it); with "
				  "--key a submit can be sent again safely");
		kf__ctl_fail(status, "%s", why.len ? why.buf : "request failed");
	}
	kf_strbuf_release(&why);
	return status;
}

/* A keyed submit that found its job, or a broker that ignored the key. */
static void report_key(const struct submit_opts *o, const struct kf_msg *rep)
{
	if (!o->key)
		return;
	if (rep->minor < KF_PROTO_MINOR_SUBMIT_KEY)
		fprintf(stderr, "keyforgectl submit: warning: the broker speaks protocol %u.%u "
			"and ignores --key; a second submit with this key queues another job\n",
			rep->major, rep->minor);
	else if (rep->submit_rep.existing)
		fprintf(stderr, "keyforgectl submit: key '%s' already names job %llu; nothing "
			"new was queued\n", o->key, (unsigned long long)rep->submit_rep.job_id);
}

int kf__ctl_submit(struct kf__ctl *ctl, int argc, char **argv)
{
	struct submit_opts o = { 0 };
	struct kf_strbuf names = KF_STRBUF_INIT;
	struct kf_msg_named_value *weights = NULL;
	struct kf_msg req, *rep = NULL;
	struct kf_msg_job_params *p = &req.submit_req.params;
	struct kf_layout lay;
	char *corpus = NULL;
	bool random;
	int status;

	if ((status = parse(ctl, argc, argv, &o)) >= 0)
		return status;
	kf__ctl_msg_init(ctl, &req, KF_MSG_SUBMIT_REQ);
	if ((o.key && (status = check_key(o.key))) ||
	    (status = numbers(&o, p)) || (status = start_layout(&o, &lay, &random)) ||
	    (o.pin && (status = check_pins(o.pin, &lay))) ||
	    (status = corpus_path(o.corpus, &corpus)))
		goto out;
	if (o.board && kf_msg_board_parse(o.board, &p->board) != KF_OK) {
		status = kf__ctl_bad_value("submit", "--board", o.board, "ansi or ortho");
		goto out;
	}
	if (o.weights && (status = weights_pairs(o.weights, &weights, &p->n_weights, &names)))
		goto out;
	p->corpus = corpus;
	p->start_layout = random ? NULL : lay.keys;
	p->pinned = o.pin && *o.pin ? o.pin : NULL;
	p->weights = weights;
	req.submit_req.key = o.key;
	status = send_submit(ctl, &req, &rep);
	if (status == KF__CTL_OK) {
		printf("%llu\n", (unsigned long long)rep->submit_rep.job_id);
		report_key(&o, rep);
	}
out:
	kf_msg_free(rep);
	free(weights);
	free(corpus);
	kf_strbuf_release(&names);
	return status;
}
