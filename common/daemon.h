/*
 * daemon.h — what the long-running programs (broker, worker) share at start.
 */
#ifndef KF_COMMON_DAEMON_H
#define KF_COMMON_DAEMON_H

#include <stdint.h>

/* Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (threads created
 * later inherit the mask; the program takes them with a signalfd or
 * sigtimedwait) and ignores SIGPIPE. Call first thing in main, before any
 * thread exists. */
void kf_daemon_block_signals(void);

/* A random 64-bit value that is never 0 (incarnations, client ids):
 * getrandom(2), or the clock and pid when that fails. Thread-safe. */
uint64_t kf_random_u64_nonzero(void);

#endif
