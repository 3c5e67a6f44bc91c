/*
 * tui_draw.c — the screen of keyforge-admin.
 *
 *   line 0        header: the views, the connection state
 *   line 1        the view's title (counts, filters)
 *   lines 2..H-2  the view
 *   line H-1      a prompt, a message, or the view's keys
 *
 * Text is UTF-8 and is clipped by display columns (wcwidth), not bytes, so
 * wide characters in worker ids, hosts or log messages keep the columns
 * straight. Everything is redrawn each time: the screens are small, and
 * curses sends only what changed.
 */
#include <curses.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "admin/tui.h"
#include "common/clock.h"

enum {
	PAIR_ERROR = 1, PAIR_WARN, PAIR_INFO, PAIR_DEBUG, PAIR_TRACE, PAIR_OK, PAIR_TITLE,
};

void kf__tui_colors(void)
{
	if (!has_colors())
		return;
	start_color();
	use_default_colors();
	init_pair(PAIR_ERROR, COLOR_RED, -1);
	init_pair(PAIR_WARN, COLOR_YELLOW, -1);
	init_pair(PAIR_INFO, COLOR_GREEN, -1);
	init_pair(PAIR_DEBUG, COLOR_BLUE, -1);
	init_pair(PAIR_TRACE, COLOR_MAGENTA, -1);
	init_pair(PAIR_OK, COLOR_GREEN, -1);
	init_pair(PAIR_TITLE, COLOR_CYAN, -1);
}

static attr_t color(int pair)
{
	return has_colors() ? COLOR_PAIR(pair) : A_NORMAL;
}

/* ---- clipped UTF-8 text ---------------------------------------------------------- */

/* What the terminal is sent for one character, and its columns: control
 * characters become spaces and what has no width ('\033', C1 controls)
 * a '?', so that text from the bus can never steer the terminal. */
static int char_cols(wchar_t *wc)
{
	int w;

	if (*wc < L' ')
		*wc = L' ';
	if ((w = wcwidth(*wc)) < 0) {
		*wc = L'?';
		w = 1;
	}
	return w;
}

/* Decodes the next character of s (left bytes); an invalid byte is a '?'.
 * Returns the bytes taken. */
static size_t next_char(const char *s, size_t left, mbstate_t *st, wchar_t *wc)
{
	size_t n = mbrtowc(wc, s, left, st);

	if (n == (size_t)-1 || n == (size_t)-2) {
		memset(st, 0, sizeof(*st));
		*wc = L'?';
		return 1;
	}
	return n ? n : 1;
}

/* Display columns of s, as put() draws it. */
static int text_width(const char *s)
{
	mbstate_t st = { 0 };
	size_t left = strlen(s), n;
	int cols = 0;
	wchar_t wc;

	while (left) {
		n = next_char(s, left, &st, &wc);
		cols += char_cols(&wc);
		s += n;
		left -= n;
	}
	return cols;
}

/* Draws s at (y, x) in at most maxcols columns, leaving out its first
 * `skip` columns (the view shifted sideways; a wide character cut by that
 * edge shows as a space); returns the columns used. */
static int put_skip(int y, int x, int maxcols, const char *s, attr_t attr, int skip)
{
	mbstate_t st = { 0 };
	size_t left = strlen(s), n;
	wchar_t wc[2] = { 0, 0 };
	int used = 0, skipped = 0, w;

	if (maxcols <= 0 || y < 0 || y >= LINES)
		return 0;
	attron(attr);
	move(y, x);
	while (left && used < maxcols) {
		n = next_char(s, left, &st, &wc[0]);
		w = char_cols(&wc[0]);
		s += n;
		left -= n;
		if (skipped < skip) {
			skipped += w;
			if (skipped <= skip)
				continue;
			wc[0] = L' ';  /* the right half of a wide character */
			w = 1;
		}
		if (used + w > maxcols)
			break;
		addnwstr(wc, 1);
		used += w;
	}
	attroff(attr);
	return used;
}

static int put(int y, int x, int maxcols, const char *s, attr_t attr)
{
	return put_skip(y, x, maxcols, s, attr, 0);
}

static void fill_line(int y, attr_t attr)
{
	attron(attr);
	mvhline(y, 0, ' ', COLS);
	attroff(attr);
}

/* ---- header and footer -------------------------------------------------------------- */

static void header(struct kf__tui *t, uint64_t now)
{
	static const char *const names[KF__TUI_VIEW_COUNT] = { " 1 Cluster ", " 2 Jobs ",
		" 3 Logs " };
	bool up = kf__tui_reachable(t, now);
	const char *conn = up ? "connected" : "broker unreachable";
	int x = 0, w = text_width(conn);

	fill_line(0, A_REVERSE);
	x += put(0, x, COLS - x, " KeyForge Hive ", A_REVERSE | A_BOLD);
	for (int v = 0; v < KF__TUI_VIEW_COUNT; v++)
		x += put(0, x + 1, COLS - x - 1, names[v],
			 v == (int)t->view ? A_BOLD : A_REVERSE) + 1;
	if (t->hshift) {
		char shifted[64];

		snprintf(shifted, sizeof shifted, " shifted +%d ", t->hshift);
		x += put(0, x + 1, COLS - x - w - 3, shifted, A_REVERSE) + 1;
	}
	if (COLS - w - 1 > x + 1)
		put(0, COLS - w - 1, w, conn,
		    up ? (A_REVERSE | color(PAIR_OK)) : (A_BOLD | color(PAIR_ERROR)));
}

/* "Drain worker W (...)? [y/N]" on line y: a worker id too long for the
 * line (up to 256 bytes) is cut, and ends in '…', so that the question and
 * its [y/N] are on the screen. */
static void drain_prompt(const struct kf__tui *t, int y)
{
	static const char *const tails[] = {
		" (no new job; it finishes its jobs and exits)? [y/N]", "? [y/N]",
	};
	attr_t attr = A_BOLD | color(PAIR_WARN);
	int x = put(y, 0, COLS, "Drain worker ", attr), id = text_width(t->prompt_worker);
	const char *tail = x + id + text_width(tails[0]) <= COLS ? tails[0] : tails[1];
	int room = COLS - x - text_width(tail);

	if (id <= room) {
		x += put(y, x, room, t->prompt_worker, attr);
	} else {
		x += put(y, x, room - 1, t->prompt_worker, attr);
		x += put(y, x, 1, "\xe2\x80\xa6", attr);  /* U+2026 */
	}
	put(y, x, COLS - x, tail, attr);
}

static void footer(struct kf__tui *t, uint64_t now)
{
	static const char *const hints[KF__TUI_VIEW_COUNT] = {
		"1-3/Tab views  j/k move  d drain  < > sideways  ? help  q quit",
		"h/l state  j/k move  Enter details  x kill  r retry  < > sideways  ? help  q quit",
		"/ filter  v level  p pause  w wrap  j/k scroll  g/G oldest/newest  < > sideways  ? help  q quit",
	};
	char line[600];
	int y = LINES - 1;

	move(y, 0);
	clrtoeol();
	switch (t->prompt) {
	case KF__TUI_PROMPT_REGEX: {
		int x = put(y, 0, COLS, "/", A_BOLD);

		attron(A_BOLD);
		mvaddnwstr(y, x, t->input, COLS - x - 1 > 0 ? COLS - x - 1 : 0);
		attroff(A_BOLD);
		return;
	}
	case KF__TUI_PROMPT_KILL:
	case KF__TUI_PROMPT_RETRY:
		snprintf(line, sizeof line, "%s job %llu? [y/N]",
			 t->prompt == KF__TUI_PROMPT_KILL ? "Kill" : "Retry",
			 (unsigned long long)t->prompt_job);
		put(y, 0, COLS, line, A_BOLD | color(PAIR_WARN));
		return;
	case KF__TUI_PROMPT_DRAIN:
		drain_prompt(t, y);
		return;
	default:
		break;
	}
	if (t->msg[0] && now < t->msg_until_mono_ns)
		put(y, 0, COLS, t->msg, A_BOLD);
	else
		put(y, 0, COLS, hints[t->view], A_DIM);
}

/* ---- tables ----------------------------------------------------------------------------- */

/*
 * Draws rows [first, first + n) of table t from line y on (header first),
 * columns sized to the widest cell, the view shifted `shift` columns
 * sideways; `sel` (an index into the table, or -1) is highlighted, and
 * row_attr gives a row its colour. Returns the lines used.
 */
static int draw_table(const struct kf__ctl_table *t, int y, size_t first, size_t n, long sel,
	int shift, attr_t (*row_attr)(const struct kf__ctl_table *, size_t, void *), void *arg)
{
	size_t rows = t->ncols ? t->ncells / t->ncols : 0;
	struct kf_strbuf row = KF_STRBUF_INIT;
	int width[16] = { 0 };
	int line = y;

	if (t->ncols > 16)
		return 0;
	for (size_t c = 0; c < t->ncols; c++)
		width[c] = text_width(t->cells[c] + (t->cells[c][0] == '>'));
	for (size_t r = 1; r < rows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			int w = text_width(t->cells[r * t->ncols + c]);

			if (w > width[c])
				width[c] = w;
		}
	for (size_t r = 0; r < rows && line < LINES - 1; r++) {
		attr_t attr;

		if (r && (r - 1 < first || r - 1 >= first + n))
			continue;
		attr = !r ? A_BOLD : (long)(r - 1) == sel ? A_REVERSE :
			row_attr ? row_attr(t, r - 1, arg) : A_NORMAL;
		if (r && (long)(r - 1) == sel)
			fill_line(line, A_REVERSE);
		/* the row as one line of text, then drawn from `shift` on */
		kf_strbuf_reset(&row);
		for (size_t c = 0; c < t->ncols; c++) {
			const char *cell = t->cells[r * t->ncols + c];
			bool right = t->cells[c][0] == '>';
			int pad;

			if (!r && right)
				cell++;
			pad = width[c] - text_width(cell);
			for (int k = 0; right && k < pad; k++)
				kf_strbuf_addch(&row, ' ');
			kf_strbuf_addstr(&row, cell);
			for (int k = 0; c + 1 < t->ncols && k < (right ? 0 : pad) + 2; k++)
				kf_strbuf_addch(&row, ' ');
		}
		put_skip(line, 0, COLS, row.buf, attr, shift);
		line++;
	}
	kf_strbuf_release(&row);
	return line - y;
}

/* ---- Cluster Map ---------------------------------------------------------------------- */

static attr_t worker_attr(const struct kf__ctl_table *t, size_t row, void *arg)
{
	const char *liveness = t->cells[(row + 1) * t->ncols + 3];

	(void)arg;
	if (!strcmp(liveness, "dead"))
		return color(PAIR_ERROR);
	if (!strcmp(liveness, "stale"))
		return color(PAIR_WARN);
	return A_NORMAL;
}

static void draw_cluster(struct kf__tui *t)
{
	const struct kf_msg_cluster_status *st = kf__tui_status(t);
	size_t alive = 0, stale = 0, dead = 0, fit;
	struct kf__ctl_table tab;
	char line[512];

	if (!st) {
		put(1, 0, COLS, "Cluster Map  waiting for the broker's status...", A_BOLD);
		return;
	}
	for (size_t i = 0; i < st->n_workers; i++) {
		alive += st->workers[i].liveness == KF_WORKER_ALIVE;
		stale += st->workers[i].liveness == KF_WORKER_STALE;
		dead += st->workers[i].liveness == KF_WORKER_DEAD;
	}
	snprintf(line, sizeof line, "Cluster Map  %zu worker%s (%zu alive, %zu stale, %zu dead)   "
		 "pending %llu  running %llu  retrying %llu  succeeded %llu  failed %llu  killed %llu",
		 st->n_workers, st->n_workers == 1 ? "" : "s", alive, stale, dead,
		 (unsigned long long)st->job_counts[KF_JOB_PENDING],
		 (unsigned long long)st->job_counts[KF_JOB_RUNNING],
		 (unsigned long long)st->job_counts[KF_JOB_RETRYING],
		 (unsigned long long)st->job_counts[KF_JOB_SUCCEEDED],
		 (unsigned long long)st->job_counts[KF_JOB_FAILED],
		 (unsigned long long)st->job_counts[KF_JOB_KILLED]);
	put(1, 0, COLS, line, A_BOLD | color(PAIR_TITLE));
	if (!st->n_workers) {
		put(3, 2, COLS - 2, "no workers yet: start keyforge-worker (./keyforge up starts some)",
		    A_DIM);
		return;
	}
	/* The selection follows its worker when the rows move (a worker
	 * joined or was forgotten); a worker gone leaves it where it was. */
	t->cluster_sel = kf__tui_worker_row(st->workers, st->n_workers, t->cluster_sel_id,
					    t->cluster_sel);
	snprintf(t->cluster_sel_id, sizeof t->cluster_sel_id, "%s",
		 st->workers[t->cluster_sel].worker_id);
	fit = LINES > 5 ? (size_t)(LINES - 5) : 1;
	if (t->cluster_sel < t->cluster_top)
		t->cluster_top = t->cluster_sel;
	else if (t->cluster_sel >= t->cluster_top + fit)
		t->cluster_top = t->cluster_sel - fit + 1;
	if (t->cluster_top + fit > st->n_workers)
		t->cluster_top = st->n_workers > fit ? st->n_workers - fit : 0;
	kf__ctl_workers_fill(st, &tab);
	draw_table(&tab, 3, t->cluster_top, fit, (long)t->cluster_sel, t->hshift, worker_attr,
		   NULL);
	kf__ctl_table_release(&tab);
	snprintf(t->shown_worker, sizeof t->shown_worker, "%s", t->cluster_sel_id);
}

/* ---- Job Queue ------------------------------------------------------------------------- */

static const char *const tab_names[KF__TUI_TAB_COUNT] = {
	"Pending", "Running", "Retrying", "Succeeded", "Failed", "Killed", "All",
};

static void draw_tabs(struct kf__tui *t, int y)
{
	const struct kf_msg_cluster_status *st = kf__tui_status(t);
	uint64_t all = 0;
	char cell[64];
	int x = 0;

	for (int i = 0; i < KF_JOB_STATE_COUNT && st; i++)
		all += st->job_counts[i];
	for (int i = 0; i < KF__TUI_TAB_COUNT && x < COLS; i++) {
		uint64_t n = !st ? 0 : i == KF__TUI_TAB_ALL ? all : st->job_counts[i];

		snprintf(cell, sizeof cell, " %s %llu ", tab_names[i], (unsigned long long)n);
		x += put(y, x, COLS - x, cell, i == t->tab ? (A_REVERSE | A_BOLD) : A_NORMAL) + 1;
	}
}

static void detail_line(int *y, int bottom, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void detail_line(int *y, int bottom, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (*y >= bottom)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	put(*y, 2, COLS - 3, line, A_NORMAL);
	(*y)++;
}

static void draw_detail(struct kf__tui *t, int top, int bottom)
{
	const struct kf_msg_job *j = t->job ? t->job->get_rep.job : NULL;
	struct kf_strbuf a = KF_STRBUF_INIT, b = KF_STRBUF_INIT, c = KF_STRBUF_INIT;
	uint64_t id = kf__tui_selected(t);
	int y = top + 1;

	for (int l = top; l < bottom; l++) {
		move(l, 0);
		clrtoeol();
	}
	fill_line(top, A_REVERSE);  /* the box's title bar, plain: no line-drawing set needed */
	put(top, 1, COLS - 2, "Job details (Enter or Esc closes)", A_REVERSE);
	if (!j || j->id != id) {
		detail_line(&y, bottom, id ? "job %llu  loading..." : "no job selected",
			    (unsigned long long)id);
		return;
	}
	detail_line(&y, bottom, "job %llu  %s  attempt %u of %u  priority %d  worker %s",
		    (unsigned long long)j->id, kf_job_state_name(j->state), j->attempt,
		    j->max_attempts, (int)j->priority, j->worker_id ? j->worker_id : "-");
	kf__ctl_add_time(&a, j->created_ns);
	if (j->started_ns)
		kf__ctl_add_time(&b, j->started_ns);
	if (j->finished_ns)
		kf__ctl_add_time(&c, j->finished_ns);
	detail_line(&y, bottom, "created %s   started %s   finished %s", a.buf,
		    j->started_ns ? b.buf : "-", j->finished_ns ? c.buf : "-");
	if (j->key)
		detail_line(&y, bottom, "key %s", j->key);
	detail_line(&y, bottom, "corpus %s   %llu steps x %u restart%s   seed %llu   start %s",
		    j->params.corpus ? j->params.corpus : "-", (unsigned long long)j->params.steps,
		    j->params.restarts ? j->params.restarts : 1, j->params.restarts > 1 ? "s" : "",
		    (unsigned long long)j->params.seed,
		    j->params.start_layout ? j->params.start_layout : "random");
	if (j->state == KF_JOB_RUNNING)
		detail_line(&y, bottom, "progress %.0f%%   best so far %.4f", 100.0 * j->progress,
			    j->best_cost);
	if (j->result) {
		const struct kf_msg_job_result *r = j->result;

		kf_strbuf_reset(&a);
		kf__ctl_add_duration(&a, r->elapsed_ms);
		detail_line(&y, bottom, "result  score %.4f   layout %s   (%llu steps, %.0f steps/s, %s)",
			    r->cost, r->layout ? r->layout : "-", (unsigned long long)r->steps,
			    r->steps_per_sec, a.buf);
		kf_strbuf_reset(&b);
		for (size_t i = 0; i < r->n_stats; i++)
			kf_strbuf_addf(&b, "%s%s %.2f", i ? "  " : "", r->stats[i].name, r->stats[i].value);
		if (b.len)
			detail_line(&y, bottom, "%s", b.buf);
	}
	for (size_t i = j->n_errors > 3 ? j->n_errors - 3 : 0; i < j->n_errors; i++)
		detail_line(&y, bottom, "attempt %u: %s", j->errors[i].attempt,
			    j->errors[i].message ? j->errors[i].message : "-");
	kf_strbuf_release(&a);
	kf_strbuf_release(&b);
	kf_strbuf_release(&c);
}

static attr_t job_attr(const struct kf__ctl_table *t, size_t row, void *arg)
{
	const char *state = t->cells[(row + 1) * t->ncols + 1];

	(void)arg;
	if (!strcmp(state, "failed"))
		return color(PAIR_ERROR);
	if (!strcmp(state, "killed") || !strcmp(state, "retrying"))
		return color(PAIR_WARN);
	return A_NORMAL;
}

static void draw_jobs(struct kf__tui *t)
{
	const struct kf_msg_list_rep *l = t->list ? &t->list->list_rep : NULL;
	int detail_h = t->detail ? (LINES - 5) / 2 : 0;
	int bottom = LINES - 1 - detail_h;  /* first line below the table */
	struct kf__ctl_table tab;
	size_t first, n;
	char line[128];

	snprintf(line, sizeof line, "Job Queue  %s: %llu job%s, %s first", tab_names[t->tab],
		 (unsigned long long)t->total, t->total == 1 ? "" : "s",
		 kf__tui_newest_first(t) ? "newest" : "oldest");
	put(1, 0, COLS, line, A_BOLD | color(PAIR_TITLE));
	draw_tabs(t, 2);
	t->rows = bottom > 4 ? (size_t)(bottom - 4) : 1;
	/* The window keeps the selection when the terminal shrank (or the
	 * detail box opened): from the list, which holds a page either side,
	 * or fetched on the next turn. */
	if (t->sel >= t->top + t->rows || t->sel < t->top) {
		t->top = t->sel < t->top ? t->sel : t->sel - t->rows + 1;
		if (!kf__tui_list_covers(t))
			t->jobs_dirty = true;
	}
	/* the list holds the window and a page either side: its rows from top
	 * (from its first, while a window it does not hold is being fetched) */
	first = l && t->top > t->list_top ? t->top - t->list_top : 0;
	n = l && first < l->n_jobs ? l->n_jobs - first : 0;
	if (n > t->rows)
		n = t->rows;
	if (l && !l->total) {
		snprintf(line, sizeof line, "no %s%sjobs", t->tab == KF__TUI_TAB_ALL ? "" :
			 kf_job_state_name((enum kf_job_state)t->tab), t->tab == KF__TUI_TAB_ALL ? "" : " ");
		put(4, 2, COLS - 2, line, A_DIM);
	} else if (!n) {
		put(4, 2, COLS - 2, "loading...", A_DIM);  /* a tab or window not fetched yet */
	} else {
		long sel = (long)t->sel - (long)(t->list_top + first);

		kf__ctl_jobs_fill(l->jobs + first, n, &tab);
		draw_table(&tab, 3, 0, n, sel, t->hshift, job_attr, NULL);
		kf__ctl_table_release(&tab);
		if (sel >= 0 && (size_t)sel < n)
			t->shown_id = l->jobs[first + (size_t)sel].id;
	}
	if (t->detail)
		draw_detail(t, bottom, LINES - 1);
}

/* ---- Log Stream -------------------------------------------------------------------- */

static attr_t level_attr(enum kf_msg_level l)
{
	switch (l) {
	case KF_MSG_LEVEL_ERROR: return color(PAIR_ERROR) | A_BOLD;
	case KF_MSG_LEVEL_WARN: return color(PAIR_WARN);
	case KF_MSG_LEVEL_DEBUG: return color(PAIR_DEBUG);
	case KF_MSG_LEVEL_TRACE: return color(PAIR_TRACE);
	default: return A_NORMAL;
	}
}

static void draw_logs(struct kf__tui *t)
{
	const struct kf__tui_logline **win;
	size_t rows = LINES > 3 ? (size_t)(LINES - 3) : 1, got = 0, matching;
	uint64_t upto = t->paused ? t->paused_upto : t->logs.added;
	struct kf_strbuf title = KF_STRBUF_INIT;

	t->log_rows = rows;
	if (!(win = calloc(rows, sizeof(*win))))
		return;
	matching = kf__tui_logs_window(&t->logs, upto, t->log_back, win, rows, &got);
	if (t->log_back && t->log_back + rows > matching) {  /* clamp at the oldest */
		t->log_back = matching > rows ? matching - rows : 0;
		matching = kf__tui_logs_window(&t->logs, upto, t->log_back, win, rows, &got);
	}
	kf_strbuf_addf(&title, "Log Stream  level>=%s", kf_msg_level_name(t->logs.min_level));
	if (t->logs.re_text)
		kf_strbuf_addf(&title, "  filter: %s", t->logs.re_text);
	kf_strbuf_addf(&title, "  %zu of %zu lines", matching, t->logs.len);
	if (t->paused)
		kf_strbuf_addf(&title, "  PAUSED (%llu new)",
			       (unsigned long long)(t->logs.added - t->paused_upto));
	else if (t->log_back)
		kf_strbuf_addf(&title, "  scrolled back %zu (G: newest)", t->log_back);
	if (t->wrap)
		kf_strbuf_addstr(&title, "  WRAP");
	put(1, 0, COLS, title.buf, A_BOLD | color(PAIR_TITLE));
	if (!t->wrap) {
		for (size_t i = 0; i < got; i++)
			put_skip(2 + (int)i, 0, COLS, win[i]->text, level_attr(win[i]->level),
				 t->hshift);
	} else {
		/* As many of the newest lines as fit, each over as many rows as
		 * its text needs. */
		size_t first = got, used = 0;
		int y = 2;

		while (first > 0) {
			size_t need = (size_t)(text_width(win[first - 1]->text) + COLS - 1) / (size_t)COLS;

			need = need ? need : 1;
			if (used + need > rows && used)
				break;
			used += need;
			first--;
		}
		for (size_t i = first; i < got && y < LINES - 1; i++) {
			int w = text_width(win[i]->text);

			for (int part = 0; part == 0 || (part * COLS < w && y < LINES - 1); part++)
				put_skip(y++, 0, COLS, win[i]->text, level_attr(win[i]->level),
					 part * COLS);
		}
	}
	if (!got)
		put(3, 2, COLS - 2, t->logs.len ? "no line passes the filters" : "no log events yet",
		    A_DIM);
	kf_strbuf_release(&title);
	free(win);
}

/* ---- help --------------------------------------------------------------------------------- */

static void draw_help(void)
{
	static const char *const lines[] = {
		"Keys",
		"",
		"1 2 3, Tab     Cluster Map, Job Queue, Log Stream",
		"j k, Down Up   move or scroll     PgDn PgUp  a page",
		"g G, Home End  first, last        ?  this help   q  quit",
		"< >            shift the view sideways (0: back to the left edge)",
		"",
		"Cluster Map",
		"d  drain the worker: no new job, it finishes its jobs and exits (asks first)",
		"",
		"Job Queue",
		"h l, Left Right  the state tabs   Enter  details of the job",
		"x  kill the job   r  retry it     (each asks first: y to go on)",
		"",
		"Log Stream",
		"/  regex filter over the whole line (empty: none; Esc: keep)",
		"v  level filter   p, Space  pause and resume   G  newest, follow",
		"w  wrap long lines (and back)",
		"",
		"Any key closes this help.",
	};
	int n = (int)(sizeof lines / sizeof lines[0]), w = 0, top, left;

	for (int i = 0; i < n; i++)
		if (text_width(lines[i]) > w)
			w = text_width(lines[i]);
	w += 4;
	if (w > COLS)
		w = COLS;
	top = LINES > n + 2 ? (LINES - n - 2) / 2 : 0;
	left = (COLS - w) / 2;
	for (int i = -1; i <= n; i++) {
		move(top + 1 + i, left);
		for (int k = 0; k < w; k++)
			addch(' ' | A_REVERSE);
	}
	for (int i = 0; i < n; i++)
		put(top + 1 + i, left + 2, w - 4, lines[i], A_REVERSE | (i == 0 ? A_BOLD : 0));
}

void kf__tui_draw(struct kf__tui *t)
{
	uint64_t now = kf_clock_mono_ns();

	t->redraw = false;
	t->shown_id = 0;  /* draw_jobs sets it when it shows a selected job */
	t->shown_worker[0] = '\0';  /* draw_cluster, a selected worker */
	erase();
	if (LINES < 6 || COLS < 30) {
		put(0, 0, COLS, "keyforge-admin: the terminal is too small", A_BOLD);
		refresh();
		return;
	}
	header(t, now);
	switch (t->view) {
	case KF__TUI_CLUSTER: draw_cluster(t); break;
	case KF__TUI_JOBS: draw_jobs(t); break;
	case KF__TUI_LOGS: draw_logs(t); break;
	default: break;
	}
	if (t->help)
		draw_help();
	footer(t, now);
	if (t->prompt == KF__TUI_PROMPT_REGEX) {
		curs_set(1);
		move(LINES - 1, 1 + (int)wcswidth(t->input, t->input_len));
	} else {
		curs_set(0);
	}
	refresh();
}
