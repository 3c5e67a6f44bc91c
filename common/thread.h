/*
 * common/thread.h — per-thread scheduling: the nice value of the calling
 * thread only (Linux keeps it per thread, not per process; setpriority(2)),
 * and whether the kernel lets that value count against other processes.
 *
 * Threads created afterwards by the calling thread inherit the value, so a
 * program raises a thread's priority after it has started the threads that
 * should keep the default (nng's among them).
 */
#ifndef KF_COMMON_THREAD_H
#define KF_COMMON_THREAD_H

#include <stdbool.h>
#include <stddef.h>

/* Sets the calling thread's nice value (-20..19). 0 on success, else the
 * errno: EACCES or EPERM when lowering it needs CAP_SYS_NICE or a higher
 * RLIMIT_NICE, EINVAL out of range. */
int kf_thread_set_nice(int nice);

/* The CPU cgroup named by TEXT, the contents of /proc/PID/cgroup: the path
 * of cgroup v1's hierarchy that holds the cpu controller ("7:cpu,cpuacct:/a"
 * gives "/a"), else of cgroup v2's ("0::/a"; *v2 set). Copies it into OUT
 * (at most N bytes, NUL included); false when TEXT names neither or the
 * path does not fit. */
bool kf_cgroup_cpu_path(const char *text, char *out, size_t n, bool *v2);

/* True when the kernel schedules this process as part of an autogroup: the
 * sysctl kernel.sched_autogroup_enabled is 1 and the process is in the root
 * CPU task group (the root cgroup, or under cgroup v2 a group without the
 * cpu controller), the only place the kernel applies autogroups. Then each
 * session is a scheduling group of its own and a thread's nice value ranks
 * it only among its session's threads (docs/operations.md, "Scheduling
 * groups"). False when it cannot tell. */
bool kf_thread_in_autogroup(void);

#endif
