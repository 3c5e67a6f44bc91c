/*
 * child.h — the programs an integration test starts die with it.
 *
 * A test that ends abnormally (an assertion outside a running test, a
 * crash, exit from a helper) skips its teardown, and the brokers and
 * workers it started would go on running: they dial ports that a later
 * test may draw again. A CI dry run left such strays behind. Each child
 * asks the kernel for SIGKILL when the process that started it goes.
 */
#ifndef KF_TESTS_CHILD_H
#define KF_TESTS_CHILD_H

#include <sys/types.h>

/* Call in the child, right after fork(), with the parent's pid as the
 * parent read it before fork(). Tests fork from their main thread: the
 * signal follows the thread that forked, and the main thread lives as long
 * as the test. */
void kf_test_child_dies_with(pid_t parent);

#endif
