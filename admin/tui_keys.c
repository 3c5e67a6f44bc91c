/*
 * tui_keys.c — keys, in the k9s/htop/lnav tradition (DESIGN.md §7): views
 * on 1-3 and Tab, j/k and the arrows to move, g/G to the ends, / to filter,
 * ? for help, q to quit. Kill, Retry and Drain ask first; a prompt takes
 * every key until Enter or Esc.
 */
#include <curses.h>
#include <stdlib.h>
#include <string.h>

#include "admin/tui.h"

#define KEY_ESC 27
#define KEY_TAB '\t'
#define HSHIFT_STEP 20    /* columns per < or > */
#define HSHIFT_MAX 4000   /* longer than any line drawn */

static bool is_enter(wint_t ch, bool is_key)
{
	return is_key ? ch == KEY_ENTER : (ch == '\n' || ch == '\r');
}

static bool is_backspace(wint_t ch, bool is_key)
{
	return is_key ? ch == KEY_BACKSPACE : (ch == 127 || ch == 8);
}

/* ---- prompts ------------------------------------------------------------------- */

static void open_prompt(struct kf__tui *t, enum kf__tui_prompt p, uint64_t job)
{
	t->prompt = p;
	t->prompt_job = job;
	t->input_len = 0;
	t->input[0] = L'\0';
}

static void apply_regex(struct kf__tui *t)
{
	char text[sizeof t->input * 2], why[256];
	size_t n = wcstombs(text, t->input, sizeof text);

	if (n == (size_t)-1) {
		kf__tui_message(t, "bad regex: not valid text in this locale");
		return;
	}
	text[sizeof text - 1] = '\0';
	if (!kf__tui_logs_set_regex(&t->logs, text, why, sizeof why)) {
		kf__tui_message(t, "bad regex: %s (the filter stays as it was)", why);
		return;
	}
	t->log_back = 0;
	if (*text)
		kf__tui_message(t, "filter: %s", text);
	else
		kf__tui_message(t, "filter cleared");
}

static void prompt_key(struct kf__tui *t, wint_t ch, bool is_key)
{
	enum kf__tui_prompt p = t->prompt;

	if (p == KF__TUI_PROMPT_KILL || p == KF__TUI_PROMPT_RETRY || p == KF__TUI_PROMPT_DRAIN) {
		bool yes = !is_key && (ch == 'y' || ch == 'Y');

		t->prompt = KF__TUI_NO_PROMPT;
		if (yes && p == KF__TUI_PROMPT_DRAIN)
			kf__tui_drain_worker(t, t->prompt_worker);
		else if (yes)
			kf__tui_act(t, p == KF__TUI_PROMPT_KILL, t->prompt_job);
		else
			kf__tui_message(t, "cancelled");
		return;
	}
	/* the regex prompt: a line editor of one line */
	if (!is_key && ch == KEY_ESC) {
		t->prompt = KF__TUI_NO_PROMPT;
	} else if (is_enter(ch, is_key)) {
		t->prompt = KF__TUI_NO_PROMPT;
		apply_regex(t);
	} else if (is_backspace(ch, is_key)) {
		if (t->input_len)
			t->input[--t->input_len] = L'\0';
	} else if (!is_key && ch >= L' ' && t->input_len + 1 < sizeof t->input / sizeof t->input[0]) {
		t->input[t->input_len++] = (wchar_t)ch;
		t->input[t->input_len] = L'\0';
	}
}

/* ---- Job Queue -------------------------------------------------------------------- */

/* Moves the selection to row `sel` (clamped), so to the job shown there,
 * and the window with it. A window the list does not hold is fetched at
 * once; one it holds (it has a page either side) on the next turn. */
static void select_job(struct kf__tui *t, long long sel)
{
	size_t rows = t->rows ? t->rows : 1, old_top = t->top;

	if (sel >= (long long)t->total)
		sel = (long long)t->total - 1;
	if (sel < 0)
		sel = 0;
	t->sel = (size_t)sel;
	if (t->sel < t->top)
		t->top = t->sel;
	else if (t->sel >= t->top + rows)
		t->top = t->sel - rows + 1;
	t->sel_id = kf__tui_selected(t);  /* 0 if not held: the fetch takes the row's */
	if (!kf__tui_list_covers(t))
		kf__tui_fetch_jobs(t);
	else if (t->top != old_top)
		t->jobs_dirty = true;
	if (t->detail)
		kf__tui_fetch_detail(t);
}

static void open_tab(struct kf__tui *t, int tab)
{
	t->tab = (tab + KF__TUI_TAB_COUNT) % KF__TUI_TAB_COUNT;
	t->sel = t->top = t->list_top = 0;
	t->sel_id = 0;
	t->total = 0;
	kf_msg_free(t->list);
	t->list = NULL;
	kf__tui_fetch_jobs(t);
	if (t->detail)
		kf__tui_fetch_detail(t);
}

/* x and r: a prompt about the job the screen shows selected. Keys typed
 * ahead are read together: after one that moved the selection (or a fetch
 * it made), the job now selected was not drawn yet, and is not asked about. */
static void ask_about_job(struct kf__tui *t, enum kf__tui_prompt p, wint_t ch)
{
	uint64_t id = kf__tui_selected(t);

	if (!id)
		kf__tui_message(t, "no job selected");
	else if (id != t->shown_id)
		kf__tui_message(t, "the selection moved to job %llu before it was shown; %c again "
				"to ask about it", (unsigned long long)id, (int)ch);
	else
		open_prompt(t, p, id);
}

static void jobs_key(struct kf__tui *t, wint_t ch, bool is_key)
{
	long long page = (long long)(t->rows ? t->rows : 1);

	if (is_enter(ch, is_key)) {
		t->detail = !t->detail;
		if (t->detail)
			kf__tui_fetch_detail(t);
		return;
	}
	if (is_key) {
		switch (ch) {
		case KEY_LEFT: open_tab(t, t->tab - 1); break;
		case KEY_RIGHT: open_tab(t, t->tab + 1); break;
		case KEY_DOWN: select_job(t, (long long)t->sel + 1); break;
		case KEY_UP: select_job(t, (long long)t->sel - 1); break;
		case KEY_NPAGE: select_job(t, (long long)t->sel + page); break;
		case KEY_PPAGE: select_job(t, (long long)t->sel - page); break;
		case KEY_HOME: select_job(t, 0); break;
		case KEY_END: select_job(t, (long long)t->total - 1); break;
		default: break;
		}
		return;
	}
	switch (ch) {
	case 'h': open_tab(t, t->tab - 1); break;
	case 'l': open_tab(t, t->tab + 1); break;
	case 'j': select_job(t, (long long)t->sel + 1); break;
	case 'k': select_job(t, (long long)t->sel - 1); break;
	case 'g': select_job(t, 0); break;
	case 'G': select_job(t, (long long)t->total - 1); break;
	case 'x': ask_about_job(t, KF__TUI_PROMPT_KILL, ch); break;
	case 'r': ask_about_job(t, KF__TUI_PROMPT_RETRY, ch); break;
	case KEY_ESC: t->detail = false; break;
	default: break;
	}
}

/* ---- Log Stream --------------------------------------------------------------------- */

static void scroll_logs(struct kf__tui *t, long long by)
{
	long long back = (long long)t->log_back + by;

	t->log_back = back < 0 ? 0 : (size_t)back;  /* the top is clamped when drawing */
}

static void logs_key(struct kf__tui *t, wint_t ch, bool is_key)
{
	/* after INFO comes WARN, ERROR, then round through TRACE and DEBUG */
	static const enum kf_msg_level next_level[] = {
		[KF_MSG_LEVEL_INFO] = KF_MSG_LEVEL_WARN, [KF_MSG_LEVEL_WARN] = KF_MSG_LEVEL_ERROR,
		[KF_MSG_LEVEL_ERROR] = KF_MSG_LEVEL_TRACE, [KF_MSG_LEVEL_TRACE] = KF_MSG_LEVEL_DEBUG,
		[KF_MSG_LEVEL_DEBUG] = KF_MSG_LEVEL_INFO,
	};
	long long page = (long long)(t->log_rows ? t->log_rows : 1);

	if (is_key) {
		switch (ch) {
		case KEY_DOWN: scroll_logs(t, -1); break;
		case KEY_UP: scroll_logs(t, 1); break;
		case KEY_NPAGE: scroll_logs(t, -page); break;
		case KEY_PPAGE: scroll_logs(t, page); break;
		case KEY_HOME: t->log_back = SIZE_MAX / 2; break;
		case KEY_END: t->log_back = 0; t->paused = false; break;
		default: break;
		}
		return;
	}
	switch (ch) {
	case '/': open_prompt(t, KF__TUI_PROMPT_REGEX, 0); break;
	case 'v':
		kf__tui_logs_set_level(&t->logs, next_level[t->logs.min_level]);
		t->log_back = 0;
		break;
	case 'p':
	case ' ':
		t->paused = !t->paused;
		t->paused_upto = t->logs.added;
		break;
	case 'w': t->wrap = !t->wrap; break;
	case 'j': scroll_logs(t, -1); break;
	case 'k': scroll_logs(t, 1); break;
	case 'g': t->log_back = SIZE_MAX / 2; break;
	case 'G': t->log_back = 0; t->paused = false; break;
	default: break;
	}
}

/* ---- Cluster Map ---------------------------------------------------------------------- */

/* d: a prompt about the worker the screen shows selected. Keys read
 * together after one that moved the selection (as x and r). */
static void ask_about_worker(struct kf__tui *t, const char *worker)
{
	if (strcmp(worker, t->shown_worker) != 0) {
		kf__tui_message(t, "the selection moved to worker %s before it was shown; d again "
				"to ask about it", worker);
		return;
	}
	snprintf(t->prompt_worker, sizeof t->prompt_worker, "%s", worker);
	open_prompt(t, KF__TUI_PROMPT_DRAIN, 0);
}

/* Moves the worker selection (the rows scrolled to it when drawing); `d`
 * asks to drain the selected worker. The selection is a worker, not a row:
 * a status that came since the last draw may have moved its row. */
static void cluster_key(struct kf__tui *t, wint_t ch, bool is_key)
{
	const struct kf_msg_cluster_status *st = kf__tui_status(t);
	size_t n = st ? st->n_workers : 0;

	if (!n) {
		if (!is_key && ch == 'd')
			kf__tui_message(t, "no worker selected");
		return;
	}
	t->cluster_sel = kf__tui_worker_row(st->workers, n, t->cluster_sel_id, t->cluster_sel);
	if ((is_key && ch == KEY_DOWN) || (!is_key && ch == 'j'))
		t->cluster_sel++;
	else if (((is_key && ch == KEY_UP) || (!is_key && ch == 'k')) && t->cluster_sel)
		t->cluster_sel--;
	else if ((is_key && ch == KEY_HOME) || (!is_key && ch == 'g'))
		t->cluster_sel = 0;
	else if ((is_key && ch == KEY_END) || (!is_key && ch == 'G'))
		t->cluster_sel = n - 1;
	if (t->cluster_sel >= n)
		t->cluster_sel = n - 1;
	snprintf(t->cluster_sel_id, sizeof t->cluster_sel_id, "%s",
		 st->workers[t->cluster_sel].worker_id);
	if (!is_key && ch == 'd')
		ask_about_worker(t, st->workers[t->cluster_sel].worker_id);
}

/* ---- every key ------------------------------------------------------------------------ */

static void set_view(struct kf__tui *t, enum kf__tui_view v)
{
	t->view = v;
	if (v == KF__TUI_JOBS)
		kf__tui_fetch_jobs(t);
}

void kf__tui_key(struct kf__tui *t, wint_t ch, bool is_key)
{
	if (is_key && ch == KEY_RESIZE)
		return;                          /* the loop redraws */
	if (t->help) {
		t->help = false;                 /* any key closes it */
		return;
	}
	if (t->prompt != KF__TUI_NO_PROMPT) {
		prompt_key(t, ch, is_key);
		return;
	}
	if (!is_key) {
		switch (ch) {
		case 'q': t->quit = true; return;
		case '?': t->help = true; return;
		case '1': set_view(t, KF__TUI_CLUSTER); return;
		case '2': set_view(t, KF__TUI_JOBS); return;
		case '3': set_view(t, KF__TUI_LOGS); return;
		case KEY_TAB: set_view(t, (t->view + 1) % KF__TUI_VIEW_COUNT); return;
		case '<': t->hshift = t->hshift > HSHIFT_STEP ? t->hshift - HSHIFT_STEP : 0; return;
		case '>':
			if (t->hshift < HSHIFT_MAX)
				t->hshift += HSHIFT_STEP;
			return;
		case '0': t->hshift = 0; return;
		default: break;
		}
	}
	switch (t->view) {
	case KF__TUI_CLUSTER: cluster_key(t, ch, is_key); break;
	case KF__TUI_JOBS: jobs_key(t, ch, is_key); break;
	case KF__TUI_LOGS: logs_key(t, ch, is_key); break;
	default: break;
	}
}
