/*
 * test_tui_window.c — which end of a Job Queue tab keyforge-admin reads a
 * window from (admin/tui_window.c). Every window of every small tab is
 * checked against the tab itself: the rows asked for from the chosen end,
 * turned round when read from the far end, must be the rows [top, top+rows)
 * of the tab, and no list may walk more than half the tab. And the
 * selection follows its job when rows move between two lists (killed or
 * leased above it, new ones above it in a newest-first tab), stays on its
 * row when the job left, and is clamped when the tab shrank; the Cluster
 * Map's selection follows its worker the same way. No curses, no sockets:
 * suite 'unit'.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "admin/tui.h"

/* What a broker answers for (offset, limit) over a tab whose jobs are
 * 1..total in the tab's order (reversed: read from the other end). */
static size_t answer(uint64_t total, struct kf__tui_window w, struct kf_msg_job_summary *out)
{
	size_t n = 0;

	for (uint64_t i = w.offset; i < total && n < w.limit; i++, n++)
		out[n].id = w.reversed ? total - i : i + 1;
	return n;
}

static void test_every_window_of_small_tabs(void **state)
{
	struct kf_msg_job_summary jobs[16];

	(void)state;
	for (uint64_t total = 0; total <= 40; total++)
		for (uint64_t top = 0; top <= total; top++)
			for (uint32_t rows = 1; rows <= 16; rows++) {
				struct kf__tui_window w = kf__tui_window(total, top, rows);
				struct kf_msg_list_rep l = { .jobs = jobs };
				uint64_t want = top + rows < total ? rows : total - top;

				l.n_jobs = answer(total, w, jobs);
				if (w.reversed)
					kf__tui_window_flip(&l);
				assert_int_equal(l.n_jobs, want);
				for (size_t i = 0; i < l.n_jobs; i++)
					assert_int_equal(l.jobs[i].id, top + i + 1);
				/* the walk is at most half the tab (a window
				 * past its end is refetched once the selection
				 * has followed the tab back) */
				assert_true(top == total || w.offset <= total / 2);
				assert_int_equal(w.offset, kf__tui_window_depth(total, top) -
						 (w.reversed ? want : 0));
			}
}

/* 100,000 finished jobs, `G`: the last page is the first one read from the
 * other end. The middle is read from the top; just past it, from the end. */
static void test_far_end_of_a_long_tab(void **state)
{
	struct kf__tui_window w;

	(void)state;
	w = kf__tui_window(100000, 100000 - 30, 30);
	assert_true(w.reversed);
	assert_int_equal(w.offset, 0);
	assert_int_equal(w.limit, 30);
	w = kf__tui_window(100000, 50000, 30);
	assert_false(w.reversed);
	assert_int_equal(w.offset, 50000);
	w = kf__tui_window(100000, 50001, 30);
	assert_true(w.reversed);
	assert_int_equal(w.offset, 100000 - 50031);
	assert_int_equal(kf__tui_window_depth(100000, 99970), 30);
	assert_int_equal(kf__tui_window_depth(100000, 20), 20);
}

/* Before the first reply the size of the tab is not known (total 0): the
 * window is read from the top, as it is with a broker that cannot reverse
 * the order (before protocol 1.4, where the caller passes 0). */
static void test_unknown_total_reads_from_the_top(void **state)
{
	struct kf__tui_window w = kf__tui_window(0, 500, 20);

	(void)state;
	assert_false(w.reversed);
	assert_int_equal(w.offset, 500);
	assert_int_equal(w.limit, 20);
	assert_int_equal(kf__tui_window_depth(0, 500), 500);
}

/* A list of the jobs ids[0..n) as rows first.. of a tab. */
static size_t list(struct kf_msg_job_summary *out, const uint64_t *ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = (struct kf_msg_job_summary){ .id = ids[i] };
	return n;
}

/* The review's case: the Pending tab, the cursor on job 4 (row 3); job 2
 * is killed from another shell. In the next list job 4 is on row 2, and the
 * selection goes there — on row 3 it would be job 5, and x would ask to
 * kill job 5. Leased jobs above leave the same way. */
static void test_follows_its_job_when_one_above_goes(void **state)
{
	static const uint64_t before[] = { 1, 2, 3, 4, 5, 6 }, after[] = { 1, 3, 4, 5, 6 },
		leased[] = { 3, 4, 5, 6 };
	struct kf_msg_job_summary jobs[8];
	size_t n = list(jobs, before, 6);
	uint64_t row;

	(void)state;
	assert_int_equal(kf__tui_follow(jobs, n, 0, 6, 4, 3), 3);  /* nothing moved */
	n = list(jobs, after, 5);
	row = kf__tui_follow(jobs, n, 0, 5, 4, 3);
	assert_int_equal(row, 2);
	assert_int_equal(jobs[row].id, 4);
	/* two leased above it at once */
	n = list(jobs, leased, 4);
	assert_int_equal(kf__tui_follow(jobs, n, 0, 4, 4, 3), 1);
}

/* The Succeeded tab, newest first, the cursor on job 7 (row 2): three jobs
 * finish and come on top. The selection moves down with job 7. */
static void test_follows_its_job_when_new_ones_come_above(void **state)
{
	static const uint64_t after[] = { 12, 11, 10, 9, 8, 7, 6, 5 };
	struct kf_msg_job_summary jobs[8];
	size_t n = list(jobs, after, 8);

	(void)state;
	assert_int_equal(kf__tui_follow(jobs, n, 0, 8, 7, 2), 5);
}

/* The list starts a page above the window (rows 10..): the row is counted
 * in the tab, and a job that moved out of the window but not out of the
 * list is still found — above it or below. */
static void test_follows_within_a_list_that_starts_lower(void **state)
{
	struct kf_msg_job_summary jobs[30];

	(void)state;
	for (size_t i = 0; i < 30; i++)
		jobs[i].id = 1000 - i;  /* rows 10..39 of a tab of 500 */
	assert_int_equal(kf__tui_follow(jobs, 30, 10, 500, 1000 - 13, 20), 23);
	assert_int_equal(kf__tui_follow(jobs, 30, 10, 500, 1000 - 0, 20), 10);
	assert_int_equal(kf__tui_follow(jobs, 30, 10, 500, 1000 - 29, 20), 39);
}

/* The job left the tab (or moved beyond the list, or none was chosen): the
 * selection stays on its row, clamped to the tab. */
static void test_stays_on_its_row_when_the_job_left(void **state)
{
	static const uint64_t after[] = { 1, 2, 3, 5, 6 };
	struct kf_msg_job_summary jobs[8];
	size_t n = list(jobs, after, 5);

	(void)state;
	assert_int_equal(kf__tui_follow(jobs, n, 0, 5, 4, 3), 3);   /* job 4 left: job 5's row */
	assert_int_equal(kf__tui_follow(jobs, n, 0, 5, 0, 3), 3);   /* none chosen yet */
	assert_int_equal(kf__tui_follow(jobs, n, 0, 5, 9, 7), 4);   /* the tab shrank below it */
	assert_int_equal(kf__tui_follow(jobs, 0, 0, 0, 4, 3), 0);   /* and emptied */
	assert_int_equal(kf__tui_follow(jobs, 0, 40, 100, 4, 45), 45); /* a window past the list */
}

/* Whether a list holds a window: every row of it that the tab has. */
static void test_list_covers_window(void **state)
{
	(void)state;
	assert_true(kf__tui_window_covers(0, 30, 100, 10, 20));
	assert_true(kf__tui_window_covers(0, 30, 100, 0, 30));
	assert_false(kf__tui_window_covers(0, 30, 100, 11, 20));   /* one row short */
	assert_false(kf__tui_window_covers(10, 30, 100, 9, 20));   /* above it */
	assert_true(kf__tui_window_covers(80, 20, 100, 90, 20));   /* the tab ends first */
	assert_false(kf__tui_window_covers(80, 19, 100, 90, 20));
	assert_true(kf__tui_window_covers(0, 0, 0, 0, 20));        /* an empty tab */
	assert_true(kf__tui_window_covers(0, 5, 5, 7, 20));        /* a window past the end */
}

/* The Cluster Map: the broker's table of workers gives a forgotten
 * worker's row to the last one, and a restarted broker lists them in the
 * order they come back. */
static void test_worker_row_follows_its_worker(void **state)
{
	struct kf_msg_worker_status before[3] = { { .worker_id = "w1" }, { .worker_id = "w2" },
		{ .worker_id = "w3" } };
	struct kf_msg_worker_status forgot_w1[2] = { { .worker_id = "w3" }, { .worker_id = "w2" } };
	struct kf_msg_worker_status swapped[2] = { { .worker_id = "w2" }, { .worker_id = "w1" } };

	(void)state;
	assert_int_equal(kf__tui_worker_row(before, 3, "w3", 2), 2);
	/* w1 forgotten: w3 took its row 0, w2 stays on 1 */
	assert_int_equal(kf__tui_worker_row(forgot_w1, 2, "w3", 2), 0);
	assert_int_equal(kf__tui_worker_row(forgot_w1, 2, "w2", 1), 1);
	/* rows swapped since the draw: the worker, not the row */
	assert_int_equal(kf__tui_worker_row(swapped, 2, "w1", 0), 1);
	assert_int_equal(kf__tui_worker_row(swapped, 2, "w2", 1), 0);
}

static void test_worker_row_stays_when_the_worker_left(void **state)
{
	struct kf_msg_worker_status two[2] = { { .worker_id = "w1" }, { .worker_id = "w2" } };
	/* ids are the broker's and unique; a forged status may repeat one */
	struct kf_msg_worker_status twice[3] = { { .worker_id = "x" }, { .worker_id = "x" },
		{ .worker_id = "x" } };

	(void)state;
	assert_int_equal(kf__tui_worker_row(two, 2, "gone", 1), 1);
	assert_int_equal(kf__tui_worker_row(two, 2, "gone", 5), 1);   /* clamped */
	assert_int_equal(kf__tui_worker_row(two, 2, "", 0), 0);       /* none chosen yet */
	assert_int_equal(kf__tui_worker_row(two, 0, "w1", 3), 0);     /* no workers */
	assert_int_equal(kf__tui_worker_row(twice, 3, "x", 1), 1);    /* its own row first */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_window_of_small_tabs),
		cmocka_unit_test(test_far_end_of_a_long_tab),
		cmocka_unit_test(test_unknown_total_reads_from_the_top),
		cmocka_unit_test(test_follows_its_job_when_one_above_goes),
		cmocka_unit_test(test_follows_its_job_when_new_ones_come_above),
		cmocka_unit_test(test_follows_within_a_list_that_starts_lower),
		cmocka_unit_test(test_stays_on_its_row_when_the_job_left),
		cmocka_unit_test(test_list_covers_window),
		cmocka_unit_test(test_worker_row_follows_its_worker),
		cmocka_unit_test(test_worker_row_stays_when_the_worker_left),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
