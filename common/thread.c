/* thread.c — per-thread nice values (see thread.h). */
#include "common/thread.h"

#include <errno.h>
#include <sys/resource.h>
#include <unistd.h>

int kf_thread_set_nice(int nice)
{
	if (nice < -20 || nice > 19)
		return EINVAL;
	/* PRIO_PROCESS with a thread id addresses that one thread on Linux. */
	return setpriority(PRIO_PROCESS, (id_t)gettid(), nice) == 0 ? 0 : errno;
}
