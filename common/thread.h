/*
 * common/thread.h — per-thread scheduling: the nice value of the calling
 * thread only (Linux keeps it per thread, not per process; setpriority(2)).
 *
 * Threads created afterwards by the calling thread inherit the value, so a
 * program raises a thread's priority after it has started the threads that
 * should keep the default (nng's among them).
 */
#ifndef KF_COMMON_THREAD_H
#define KF_COMMON_THREAD_H

/* Sets the calling thread's nice value (-20..19). 0 on success, else the
 * errno: EACCES or EPERM when lowering it needs CAP_SYS_NICE or a higher
 * RLIMIT_NICE, EINVAL out of range. */
int kf_thread_set_nice(int nice);

#endif
