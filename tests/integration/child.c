/* child.c — children that die with their test (child.h says why). */
#include "child.h"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

void kf_test_child_dies_with(pid_t parent)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
		_exit(126);
	/* The parent may have gone between fork() and prctl(). */
	if (getppid() != parent)
		_exit(126);
}
