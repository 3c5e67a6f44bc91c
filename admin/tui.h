/*
 * admin/tui.h — what the files of keyforge-admin share (kf__tui names).
 *
 * keyforge-admin is the ncurses control plane of DESIGN.md §7: Cluster Map,
 * Job Queue (Kill and Retry behind a confirmation) and Log Stream (regex and
 * level filters, pause, scroll-back). One thread: a poll() loop over the
 * terminal and the events subscription (tui_main.c); the broker's status,
 * job and log events arrive on the events socket, lists, details and
 * actions go over rpc through keyforgectl's RPC layer (ctl_rpc.c).
 *
 *   tui_main.c   flags, terminal, the loop
 *   tui_data.c   events and RPC: connection state, cluster, jobs, actions
 *   tui_keys.c   keys and prompts
 *   tui_draw.c   the screen
 *   tui_logs.c   the log ring and its filters (pure: no curses, no sockets)
 */
#ifndef KF_ADMIN_TUI_H
#define KF_ADMIN_TUI_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <wchar.h>

#include "admin/ctl.h"
#include "bus/sub.h"
#include "proto/proto.h"

/* ---- the log ring (tui_logs.c) ---------------------------------------------- */

/* The most text a line keeps, in bytes with its '…' (no NUL): the broker
 * relays log events of up to 1 MiB, and 5,000 of those would take GiBs. */
#define KF__TUI_LOG_LINE_MAX 4096

struct kf__tui_logline {
	char *text;                  /* kf__ctl_log_text(), cut: what the filter matches */
	enum kf_msg_level level;
	uint64_t ts_ns;
	uint64_t hash;               /* of source, target and message: tail dedup */
	unsigned gen;                /* filter generation `match` belongs to */
	bool match;
};

struct kf__tui_logs {
	struct kf__tui_logline *ring;
	size_t cap, head, len;       /* oldest at ring[head] */
	uint64_t added;              /* lines ever added; line k (0-based) is the k-th */
	size_t bytes;                /* held by the lines' texts (with their NULs) */
	enum kf_msg_level min_level; /* shown: this level and more severe */
	regex_t re;
	bool have_re;
	char *re_text;
	unsigned gen;                /* bumped whenever the filter changes */
	/* the broker's tail: its events are skipped when they arrive again live */
	struct { uint64_t ts_ns, hash; } *tail;
	size_t n_tail;
	uint64_t tail_max_ts;
};

/* false when out of memory. */
bool kf__tui_logs_init(struct kf__tui_logs *lg, size_t cap);
void kf__tui_logs_free(struct kf__tui_logs *lg);
/* Adds an event as a line (the oldest goes when full). Its text is kept in
 * an allocation of its own length; a text longer than KF__TUI_LOG_LINE_MAX
 * bytes is cut before it, at a UTF-8 character boundary, and ends in '…'.
 * from_tail: the event came in the broker's tail reply; a live copy of it is
 * dropped later. Returns false when it was such a copy, or on allocation
 * failure. */
bool kf__tui_logs_add(struct kf__tui_logs *lg, const struct kf_msg_log *ev, bool from_tail);
/* Sets the regex filter (POSIX extended); "" or NULL clears it. On a bad
 * regex the old filter stays, the reason goes to why, and it returns false. */
bool kf__tui_logs_set_regex(struct kf__tui_logs *lg, const char *re, char *why, size_t why_len);
void kf__tui_logs_set_level(struct kf__tui_logs *lg, enum kf_msg_level min_level);
/* Lines that pass both filters among the first `upto` lines ever added (the
 * ones still in the ring): how many there are, and up to n of them, oldest
 * first, ending `back` matching lines before the newest. *out_n says how many
 * were written. */
size_t kf__tui_logs_window(struct kf__tui_logs *lg, uint64_t upto, size_t back,
	const struct kf__tui_logline **out, size_t n, size_t *out_n);

/* ---- a window of the Job Queue (tui_window.c) ------------------------------------ */

/* How to ask for the rows [top, top + rows) of a tab of `total` jobs: a list
 * reads them with an OFFSET the database walks, so a window in the far half
 * of the tab is read from the tab's other end (the order flipped, `reversed`:
 * the reply's rows are then put back in the tab's order). total = 0 (not
 * known yet) reads from the top. */
struct kf__tui_window {
	uint32_t offset, limit;
	bool reversed;
};
struct kf__tui_window kf__tui_window(uint64_t total, uint64_t top, uint32_t rows);
/* How far the window is from the nearer end of the tab: the OFFSET it costs. */
uint64_t kf__tui_window_depth(uint64_t total, uint64_t top);
/* Turns a reversed window's list reply round, into the tab's order. */
void kf__tui_window_flip(struct kf_msg_list_rep *l);
/* Whether a list of the rows [first, first + n) holds every row of the
 * window [top, top + rows) that a tab of `total` jobs has. */
bool kf__tui_window_covers(uint64_t first, size_t n, uint64_t total, uint64_t top, size_t rows);
/* The row the Job Queue's selection goes to when a list of the rows
 * [first, first + n) of a tab of `total` jobs arrives: the row of job `id`
 * when the list has it (jobs above it came or went), else `sel`, the row it
 * was on, clamped to the tab (the job left the tab, or moved farther than
 * the list reaches; id 0: none chosen yet). 0 for an empty tab. */
uint64_t kf__tui_follow(const struct kf_msg_job_summary *jobs, size_t n, uint64_t first,
	uint64_t total, uint64_t id, uint64_t sel);
/* The Cluster Map's row of worker `id` among the n workers of a status:
 * `sel` when that row is the worker's, else the worker's row when the
 * status has it (the rows moved: a worker joined or was forgotten, the
 * broker restarted), else `sel` clamped to the rows (the worker is gone;
 * id "": none chosen yet). 0 when n is 0. */
size_t kf__tui_worker_row(const struct kf_msg_worker_status *workers, size_t n, const char *id,
	size_t sel);

/* ---- the retry gate (pure) ------------------------------------------------------ */

/* Nanoseconds from `since` to `now` on the monotonic clock; 0 when `now` is
 * the earlier one (a time read before `since` was taken), not 584 years. */
static inline uint64_t kf__tui_elapsed_ns(uint64_t since, uint64_t now)
{
	return now > since ? now - since : 0;
}

/* Whether a refresh RPC (the cluster, a job list, a job's details; a turn's
 * or one a key asks for) may go out at `now`: yes, unless the last RPC,
 * tried at `tried`, got no answer (`failed`); then only once `retry_ns` have
 * passed since. A broker that is away costs the keys one call's timeout per
 * retry_ns, not one for each call of a turn. */
static inline bool kf__tui_may_call(bool failed, uint64_t tried, uint64_t now, uint64_t retry_ns)
{
	return !failed || kf__tui_elapsed_ns(tried, now) >= retry_ns;
}

/* ---- the program's state ----------------------------------------------------- */

enum kf__tui_view { KF__TUI_CLUSTER, KF__TUI_JOBS, KF__TUI_LOGS, KF__TUI_VIEW_COUNT };

/* Job Queue tabs: one per job state (enum kf_job_state order), then all. */
#define KF__TUI_TAB_ALL KF_JOB_STATE_COUNT
#define KF__TUI_TAB_COUNT (KF_JOB_STATE_COUNT + 1)

enum kf__tui_prompt { KF__TUI_NO_PROMPT, KF__TUI_PROMPT_REGEX, KF__TUI_PROMPT_KILL,
	KF__TUI_PROMPT_RETRY, KF__TUI_PROMPT_DRAIN };

#define KF__TUI_LOG_LINES 5000       /* the ring */
#define KF__TUI_TAIL 500             /* log events asked of the broker at start */

struct kf__tui {
	struct kf__ctl ctl;          /* rpc client, addresses, token */
	struct kf_bus_sub *sub;      /* events: status., job., log. */
	enum kf__tui_view view;
	int hshift;                  /* columns the views are shifted left (< >) */
	bool help;
	bool quit;

	/* connection: events from the broker, and the last RPC's outcome */
	uint64_t status_mono_ns;     /* last status.cluster received, or the start */
	bool rpc_failed;             /* the last RPC could not reach the broker */
	uint64_t rpc_tried_mono_ns;

	/* Cluster Map: the last cluster status (event or reply), owned */
	struct kf_msg *cluster;
	size_t cluster_top;          /* first worker row shown */
	size_t cluster_sel;          /* selected worker row */
	/* its id: the selection follows the worker when the rows move */
	char cluster_sel_id[KF_MSG_MAX_NAME + 1];
	/* the worker the last draw showed selected ("": none): d asks about
	 * it and no other */
	char shown_worker[KF_MSG_MAX_NAME + 1];

	/* Job Queue */
	int tab;
	size_t sel, top;             /* selected row and first row shown (indexes in the tab) */
	/* the selected job: the selection follows it when rows move (0 until
	 * a list has the selected row) */
	uint64_t sel_id;
	/* the job the last draw showed selected (0: none): x and r ask about
	 * it and no other */
	uint64_t shown_id;
	size_t rows;                 /* table rows that fit (set when drawing) */
	/* the last list reply, owned: rows [list_top, list_top + n_jobs) of the
	 * tab, the window [top, top + rows) and up to a page either side */
	struct kf_msg *list;
	size_t list_top;
	bool redraw;                 /* a list or details came: draw before the next key */
	uint64_t total;              /* jobs in the tab */
	bool order_known;            /* the broker takes list_req.newest_first (1.4) */
	bool jobs_dirty;             /* a job event came, or the view moved: fetch again */
	uint64_t jobs_mono_ns;       /* last fetch */
	bool detail;
	struct kf_msg *job;          /* the detail's get reply, owned */

	/* Log Stream */
	struct kf__tui_logs logs;
	size_t log_back;             /* matching lines scrolled back from the newest */
	bool paused;
	bool wrap;                   /* long lines over several rows */
	uint64_t paused_upto;        /* logs.added when paused */
	size_t log_rows;             /* log lines that fit (set when drawing) */

	/* prompt and the message line */
	enum kf__tui_prompt prompt;
	uint64_t prompt_job;
	char prompt_worker[KF_MSG_MAX_NAME + 1]; /* of a drain prompt */
	wchar_t input[256];
	size_t input_len;
	char msg[512];
	uint64_t msg_until_mono_ns;
};

/* tui_data.c */
void kf__tui_message(struct kf__tui *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool kf__tui_reachable(const struct kf__tui *t, uint64_t now_mono_ns);
/* Takes every queued event off the subscription. */
void kf__tui_drain_events(struct kf__tui *t);
/* The periodic work: the job list when due or dirty, the cluster by RPC
 * when no status event came lately, the detail. */
void kf__tui_tick(struct kf__tui *t, uint64_t now_mono_ns);
/* The open tab's list for the window (and a page either side); the
 * selection follows its job (sel_id) into it. Skipped, and left dirty for
 * the next turn, while the retry gate is shut. */
void kf__tui_fetch_jobs(struct kf__tui *t);
/* The selected job's record for the detail box (with the refreshes' short
 * timeout: it follows every move of the selection). */
void kf__tui_fetch_detail(struct kf__tui *t);
void kf__tui_load_tail(struct kf__tui *t);
/* Kill or retry job id (the prompt said yes); the outcome goes to the
 * message line. */
void kf__tui_act(struct kf__tui *t, bool kill, uint64_t id);
/* Drain worker (the prompt said yes); the outcome goes to the message line. */
void kf__tui_drain_worker(struct kf__tui *t, const char *worker);
/* The selected job's id, 0 when none or when the list does not hold its
 * row. */
uint64_t kf__tui_selected(const struct kf__tui *t);
/* Whether the last list holds the rows of the window [top, top + rows). */
bool kf__tui_list_covers(const struct kf__tui *t);
/* True when the Job Queue shows its tab newest first (the final states and
 * All, with a broker of protocol 1.4 or later). */
bool kf__tui_newest_first(const struct kf__tui *t);
const struct kf_msg_cluster_status *kf__tui_status(const struct kf__tui *t);

/* tui_keys.c: one key (a character when !is_key, a KEY_* code otherwise). */
void kf__tui_key(struct kf__tui *t, wint_t ch, bool is_key);

/* tui_draw.c: the whole screen. */
void kf__tui_colors(void);
void kf__tui_draw(struct kf__tui *t);

#endif
