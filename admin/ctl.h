/*
 * admin/ctl.h — what the files of keyforgectl share (kf__ctl names).
 * keyforge-admin (admin/tui_*.c) uses the RPC layer (ctl_rpc.c) and the
 * pure helpers of ctl_fmt.c and ctl_json.c as well; the commands and their
 * flag handling are keyforgectl's alone.
 *
 * keyforgectl is a table of commands (ctl_main.c). Each command parses its
 * own flags with kf__ctl_getopt() — which also accepts the global flags
 * anywhere on the line — talks to the broker through kf__ctl_call(), and
 * returns the process exit status. Errors are printed once, here at the
 * edge, as one line "keyforgectl: ..." on stderr (docs/operations.md
 * "keyforgectl" lists the exit statuses).
 *
 * Single-threaded: the CLI owns everything; `logs --follow` adds no thread.
 */
#ifndef KF_ADMIN_CTL_H
#define KF_ADMIN_CTL_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <nng/nng.h>

#include "bus/addr.h"
#include "bus/rpc_client.h"
#include "bus/sub.h"
#include "common/strbuf.h"
#include "proto/proto.h"

/* Exit statuses scripts can rely on (docs/operations.md). */
enum kf__ctl_exit {
	KF__CTL_OK = 0,          /* done; `wait`: every job is final */
	KF__CTL_FAIL = 1,        /* refused or failed: no such job, wrong state,
	                          * not authorised, bad reply, local I/O */
	KF__CTL_USAGE = 2,       /* bad command line: flag, value, regex */
	KF__CTL_TIMEOUT = 3,     /* `wait --timeout` ran out before all were final */
	KF__CTL_UNAVAIL = 4,     /* try again later: the broker cannot be reached,
	                          * or it answered that it cannot serve now
	                          * (database away, shutting down) */
	KF__CTL_UNSUCCESSFUL = 5 /* `wait --strict`: all final, not all succeeded */
};

struct kf__ctl {
	const char *program;         /* sender id prefix; NULL = "keyforgectl" */
	struct kf_bus_addrs addrs;
	const char *token_file;      /* NULL = send no token */
	char *token;                 /* heap; NULL when none was read */
	char token_why[160];         /* why no token was read, for KF_EPERM */
	nng_duration timeout_ms;     /* per RPC call */
	struct kf_rpc_client *rpc;   /* dialled on the first call */
	uint64_t client_id;          /* random per process (request ids) */
	uint64_t seq;
	char sender[64];
	bool color;                  /* stdout is a terminal and NO_COLOR unset */
	bool answered;               /* a reply of any kind came back: the address is right */
};

/* ---- commands (one file each: ctl_submit.c, ctl_jobs.c, ...) ----------- */

typedef int (*kf__ctl_run_fn)(struct kf__ctl *ctl, int argc, char **argv);

struct kf__ctl_cmd {
	const char *name;
	const char *synopsis;        /* after "keyforgectl NAME " */
	const char *summary;         /* one line for the command list */
	const char *options;         /* the option lines of `NAME --help` */
	kf__ctl_run_fn run;          /* argv[0] is the command name */
};

int kf__ctl_submit(struct kf__ctl *ctl, int argc, char **argv);
int kf__ctl_list(struct kf__ctl *ctl, int argc, char **argv);
int kf__ctl_show(struct kf__ctl *ctl, int argc, char **argv);
int kf__ctl_kill(struct kf__ctl *ctl, int argc, char **argv);
int kf__ctl_retry(struct kf__ctl *ctl, int argc, char **argv);
int kf__ctl_wait(struct kf__ctl *ctl, int argc, char **argv);
int kf__ctl_workers(struct kf__ctl *ctl, int argc, char **argv);
int kf__ctl_drain(struct kf__ctl *ctl, int argc, char **argv);
int kf__ctl_logs(struct kf__ctl *ctl, int argc, char **argv);



/* The table entry of a command by name; NULL when unknown. */
const struct kf__ctl_cmd *kf__ctl_find(const char *name);

/* ---- flags (ctl_main.c) --------------------------------------------------- */

/*
 * getopt_long over argv with the command's short options (getopt syntax,
 * without the leading ':') and long options plus the global ones (--rpc,
 * --events, --token-file, --timeout, --help, -h, --version, -V; a command
 * option of the same long name wins, as `wait --timeout` does). Global
 * options are applied to ctl; --help prints the command's help, --version
 * the version. Each command option
 * is passed to on_opt(state, opt->val, optarg), which returns -1 to go on
 * or an exit status. On return *first_arg indexes the first positional
 * argument (GNU getopt moves them to the end).
 * Returns -1 to go on, 0 after --help or --version, KF__CTL_USAGE on a
 * bad flag (message printed).
 */
int kf__ctl_getopt(struct kf__ctl *ctl, const struct kf__ctl_cmd *cmd, int argc, char **argv,
	const char *shortopts, const struct option *cmd_opts,
	int (*on_opt)(void *state, int id, const char *arg), void *state, int *first_arg);

/* Prints "keyforgectl: " + the message + "\n" on stderr and returns status.
 * The message is written as kf__ctl_fputs_safe writes: it may carry the
 * broker's words. */
int kf__ctl_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "keyforgectl NAME: ... is not ...; see keyforgectl NAME --help", status 2. */
int kf__ctl_bad_value(const char *cmd, const char *flag, const char *value,
	const char *expected);

/* ---- parsing helpers (ctl_fmt.c; pure) ------------------------------------ */

/* A decimal unsigned integer (no sign, no spaces) that fits max. */
bool kf__ctl_parse_u64(const char *text, uint64_t max, uint64_t *out);
/* Same, also accepting a whole number in exponent form (1e6, 2.5e5). */
bool kf__ctl_parse_count(const char *text, uint64_t max, uint64_t *out);
/* A decimal integer in [min, max]. */
bool kf__ctl_parse_i64(const char *text, int64_t min, int64_t max, int64_t *out);
bool kf__ctl_parse_double(const char *text, double *out);
/* A duration (kf_parse_duration_ns: "90", "30s", "1.5m", "250ms"; a bare
 * number is seconds), rounded to whole ms, up to the broker's limit for a
 * deadline (INT64_MAX ns). */
bool kf__ctl_parse_duration_ms(const char *text, uint64_t *out_ms);
/* A job id: 1 .. INT64_MAX. */
bool kf__ctl_parse_job_id(const char *text, uint64_t *out);
/* A state list "pending,running" (also "active" = pending+running+retrying,
 * "final" = succeeded+failed+killed, "all") into a KF_JOB_STATE_BIT mask. */
bool kf__ctl_parse_states(const char *text, uint32_t *mask);

/* ---- formatting helpers (ctl_fmt.c) ----------------------------------------- */

/*
 * Text from the broker on a terminal. Its strings are UTF-8 without NUL
 * (proto/ checks no more), so a job's corpus or error, a worker's id or a
 * log message published on the ingest socket could carry escape sequences
 * that clear the screen, move the cursor or set the title. Every string
 * keyforgectl prints in text mode from the broker goes through these: each
 * C0 control, DEL, C1 control (U+0080..U+009F) and byte that is not UTF-8
 * becomes '?', a tab a space. So a newline in a log message cannot split
 * the event's line either. (--json escapes them instead: kf_json_add_string.)
 */
/* Appends s made safe as above; NULL is "". */
void kf__ctl_add_safe(struct kf_strbuf *sb, const char *s);
/* s made safe, in sb (reset first): for a printf argument. Returns sb->buf,
 * or "?" when out of memory. */
const char *kf__ctl_safe(struct kf_strbuf *sb, const char *s);
/* Writes s made safe to out, as fputs. */
void kf__ctl_fputs_safe(const char *s, FILE *out);

/* "2024-05-01T12:00:00.123Z" (UTC, ms) for ns since the epoch. */
void kf__ctl_add_time(struct kf_strbuf *sb, uint64_t ns);
/* "850ms", "12.3s", "4m05s", "3h20m", "2d04h". */
void kf__ctl_add_duration(struct kf_strbuf *sb, uint64_t ms);
/* A log event as one line of text: "TIME LEVEL SOURCE spans: target:
 * message k=v ..." (tracing-subscriber's fmt layout, plus the source);
 * what `logs --regex` and the admin's filter match. */
void kf__ctl_log_text(struct kf_strbuf *sb, const struct kf_msg_log *ev);
/* FNV-1a of an event's source, target and message: with its timestamp, how
 * an event of the broker's log tail is known again when it also arrives
 * live (keyforgectl logs --follow, the admin's Log Stream). */
uint64_t kf__ctl_log_hash(const struct kf_msg_log *ev);
/* "512 KiB", "12.3 MiB". */
void kf__ctl_add_bytes(struct kf_strbuf *sb, uint64_t bytes);
/* Milliseconds from then_ns to now (0 when then is 0 or in the future). */
uint64_t kf__ctl_age_ms(uint64_t then_ns);

/* A text table: cells added row by row, printed with aligned columns. */
struct kf__ctl_table {
	size_t ncols;
	size_t ncells;
	size_t cap;
	char **cells;               /* row-major; heap strings */
};

void kf__ctl_table_init(struct kf__ctl_table *t, const char *const *headers, size_t ncols);
/* Appends the next cell (rows wrap every ncols cells). */
void kf__ctl_table_cell(struct kf__ctl_table *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Prints header and rows; the last column is not padded. Columns whose
 * header starts with '>' are right-aligned (the '>' is not printed). Cells
 * are written with kf__ctl_fputs_safe (they hold the broker's strings). */
void kf__ctl_table_print(const struct kf__ctl_table *t, FILE *out);
void kf__ctl_table_release(struct kf__ctl_table *t);

/* ---- the two tables (ctl_tables.c; pure) ------------------------------------ */

/* `keyforgectl workers`' table, and the admin's Cluster Map: one row per
 * worker. A dead worker's readings (state, CPU, memory, busy slots) are its
 * last heartbeat's, not the present: shown as "-" (--json keeps them).
 * Initialises t. */
void kf__ctl_workers_fill(const struct kf_msg_cluster_status *st, struct kf__ctl_table *t);
/* Fill and print. */
void kf__ctl_workers_table(const struct kf_msg_cluster_status *st, FILE *out);
/* `keyforgectl list`'s table, and the admin's Job Queue: one row per job.
 * Initialises t. */
void kf__ctl_jobs_fill(const struct kf_msg_job_summary *jobs, size_t n, struct kf__ctl_table *t);

/* ---- RPC (ctl_rpc.c) ----------------------------------------------------- */

/*
 * Sends a request and returns its decoded reply. The caller fills `req`
 * with kf_msg_init() and the body; the request id, auth token and sender
 * are set here. On KF__CTL_OK *rep is the reply of the matching type with
 * status KF_OK (free it with kf_msg_free). Otherwise the status to exit
 * with, and one line in `why` (no "keyforgectl: " prefix): KF__CTL_UNAVAIL
 * (cannot reach the broker, no answer in time, database away), KF__CTL_FAIL
 * (refused, or the reply is unreadable). A refusal for authorisation
 * (KF_EPERM) re-reads the token file once and retries: the broker writes a
 * fresh token at every start.
 */
int kf__ctl_call_quiet(struct kf__ctl *ctl, struct kf_msg *req, struct kf_msg **rep,
	struct kf_strbuf *why);

/* Same, printing the line on failure. */
int kf__ctl_call(struct kf__ctl *ctl, struct kf_msg *req, struct kf_msg **rep);

/* Reads the token file into ctl->token (replacing it); false when none. */
bool kf__ctl_load_token(struct kf__ctl *ctl);

/* kf_msg_init with the client's sender id. */
void kf__ctl_msg_init(struct kf__ctl *ctl, struct kf_msg *msg, enum kf_msg_type type);

/* A SUB dialled to the events address (TLS from the environment for
 * tls+tcp://), with a receive queue of queue_len messages (0 = the default);
 * subscribe before use. As kf_bus_sub_new. */
enum kf_err kf__ctl_events_open(struct kf__ctl *ctl, int queue_len, struct kf_bus_sub **out,
	struct kf_strbuf *why);

/* Waits at most max_ms for sub's dial to connect, so that a stream opened
 * before a log tail request starts where the tail ends; a broker that is
 * down does not hold the caller longer. */
void kf__ctl_events_wait_dial(struct kf_bus_sub *sub, unsigned max_ms);

/* Fetches one job (get RPC). As kf__ctl_call_quiet. */
int kf__ctl_get_job(struct kf__ctl *ctl, uint64_t id, struct kf_msg **rep,
	struct kf_strbuf *why);

void kf__ctl_release(struct kf__ctl *ctl);

/* ---- JSON (ctl_json.c) --------------------------------------------------------- */

/* A full job record: id, state, attempt, max_attempts, priority, worker,
 * progress, best_cost, created/started/finished_at, params{...},
 * result{layout, score, <statistics>, finger_usage{...}, steps,
 * steps_per_sec, elapsed_ms} or null, errors[...]. */
void kf__ctl_json_job(struct kf_strbuf *sb, const struct kf_msg_job *job);
/* A list line (the `--brief` shape of list). */
void kf__ctl_json_summary(struct kf_strbuf *sb, const struct kf_msg_job_summary *s);
void kf__ctl_json_params(struct kf_strbuf *sb, const struct kf_msg_job_params *p);
void kf__ctl_json_result(struct kf_strbuf *sb, const struct kf_msg_job_result *r);
void kf__ctl_json_worker(struct kf_strbuf *sb, const struct kf_msg_worker_status *w);
/* {"pending":n,...} indexed by enum kf_job_state. */
void kf__ctl_json_counts(struct kf_strbuf *sb, const uint64_t counts[KF_JOB_STATE_COUNT]);
/* One log event in tracing-subscriber's JSON shape (timestamp, level,
 * target, source, fields{message, ...}, span, spans). */
void kf__ctl_json_log(struct kf_strbuf *sb, const struct kf_msg_log *ev);
/* A value of a typed field as JSON. */
void kf__ctl_json_value(struct kf_strbuf *sb, const struct kf_msg_value *v);

/* The value of statistic `name` in a result; false when absent. */
bool kf__ctl_result_stat(const struct kf_msg_job_result *r, const char *name, double *out);

/* Writes sb and a newline to stdout; KF__CTL_FAIL when it cannot (oom, EPIPE). */
int kf__ctl_print_json(struct kf_strbuf *sb);

#endif
