/*
 * parse.h — parsing numbers from flags and environment variables, and
 * checking text that came from them.
 */
#ifndef KF_COMMON_PARSE_H
#define KF_COMMON_PARSE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/strbuf.h"

/* A decimal number in [lo, hi] (no sign, no blanks, nothing after it).
 * On error returns KF_EINVAL and appends "<what>: '<text>' is not a number
 * from <lo> to <hi>" to msg; `what` names the flag or variable. */
enum kf_err kf_parse_u32(const char *text, uint32_t lo, uint32_t hi, const char *what,
			 uint32_t *out, struct kf_strbuf *msg);

/* The value of a hexadecimal digit (0-9, a-f, A-F), or -1. */
int kf_hex_digit(int c);

/* Whether s (NUL-terminated) holds an ASCII control character (below 0x20,
 * or DEL): text an operator typed that goes into logs and replies. */
bool kf_text_has_control(const char *s);

#endif
