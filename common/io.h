/*
 * io.h — small POSIX I/O helpers shared by the programs.
 */
#ifndef KF_COMMON_IO_H
#define KF_COMMON_IO_H

#include <stdbool.h>
#include <stddef.h>

/* Writes all of p[0..len) to fd, retrying short writes and EINTR. Returns
 * false on any other failure (errno says why). Async-signal-safe. */
bool kf_write_all(int fd, const void *p, size_t len);

/* Reads at most cap-1 bytes of the file at path into buf and ends them with
 * a NUL: for the small text files of /proc and /sys. False when the file
 * cannot be opened or read (errno says why). */
bool kf_read_text(const char *path, char *buf, size_t cap);

#endif
