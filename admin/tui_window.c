/*
 * tui_window.c — which end of a Job Queue tab a window is read from.
 *
 * A list reply is a page of `limit` jobs after `offset` others, and the
 * database walks the offset row by row on the one connection every job
 * waits for. An operator who jumps to the far end of a tab of 100,000
 * finished jobs (`G`) would make it walk 100,000 rows for every refresh;
 * read in the other order, the same rows are the first page. So a window
 * past the middle of the tab is asked for from the other end, and the
 * longest walk is half the tab.
 *
 * The selection is a job, not a row: between two fetches jobs above it
 * come (newest first tabs) and go (leased, killed), and a row index would
 * then point at another job — the one x or r would act on. Each list holds
 * a page either side of the window, so a job that moved by up to a page is
 * found again (kf__tui_follow). The Cluster Map's selection is a worker in
 * the same way (kf__tui_worker_row): its rows are the broker's table of
 * workers, in which one that is forgotten gives its row to the last.
 */
#include <string.h>

#include "admin/tui.h"

uint64_t kf__tui_window_depth(uint64_t total, uint64_t top)
{
	if (!total || top >= total)
		return top;
	return top < total - top ? top : total - top;
}

struct kf__tui_window kf__tui_window(uint64_t total, uint64_t top, uint32_t rows)
{
	uint64_t end;

	if (!total || top >= total || top <= total - top)
		return (struct kf__tui_window){ .offset = top > UINT32_MAX ? UINT32_MAX :
						(uint32_t)top, .limit = rows };
	/* Rows top .. end-1 are rows total-end .. total-1-top counted from
	 * the other end. */
	end = top + rows < total ? top + rows : total;
	return (struct kf__tui_window){ .offset = (uint32_t)(total - end),
					.limit = (uint32_t)(end - top), .reversed = true };
}

/* The reply was decoded into an arena of its own that only its owner
 * reads; the array is const for its readers, not read-only memory. */
void kf__tui_window_flip(struct kf_msg_list_rep *l)
{
	struct kf_msg_job_summary *jobs = (struct kf_msg_job_summary *)l->jobs;
	size_t n = l->n_jobs;

	for (size_t i = 0; i < n / 2; i++) {
		struct kf_msg_job_summary j = jobs[i];

		jobs[i] = jobs[n - 1 - i];
		jobs[n - 1 - i] = j;
	}
}

bool kf__tui_window_covers(uint64_t first, size_t n, uint64_t total, uint64_t top, size_t rows)
{
	uint64_t end = top + rows < total ? top + rows : total;  /* the window's rows that exist */

	return top >= end || (first <= top && end <= first + n);
}

uint64_t kf__tui_follow(const struct kf_msg_job_summary *jobs, size_t n, uint64_t first,
	uint64_t total, uint64_t id, uint64_t sel)
{
	for (size_t i = 0; id && i < n; i++)
		if (jobs[i].id == id)
			return first + i;
	if (!total)
		return 0;
	return sel < total ? sel : total - 1;
}

size_t kf__tui_worker_row(const struct kf_msg_worker_status *workers, size_t n, const char *id,
	size_t sel)
{
	if (!n)
		return 0;
	if (id && *id && !(sel < n && !strcmp(workers[sel].worker_id, id))) {
		for (size_t i = 0; i < n; i++)
			if (!strcmp(workers[i].worker_id, id))
				return i;
	}
	return sel < n ? sel : n - 1;
}
