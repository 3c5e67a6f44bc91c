/*
 * test_tui_window.c — which end of a Job Queue tab keyforge-admin reads a
 * window from (admin/tui_window.c). Every window of every small tab is
 * checked against the tab itself: the rows asked for from the chosen end,
 * turned round when read from the far end, must be the rows [top, top+rows)
 * of the tab, and no list may walk more than half the tab. No curses, no
 * sockets: suite 'unit'.
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_window_of_small_tabs),
		cmocka_unit_test(test_far_end_of_a_long_tab),
		cmocka_unit_test(test_unknown_total_reads_from_the_top),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
