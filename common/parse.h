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

/* A duration as operators write it in flags: a decimal number ("90", "1.5",
 * ".5") and an optional unit, ms, s, m or h ("250ms", "30s", "1.5m"); a bare
 * number counts in bare_unit_ns. Nothing else: no sign, exponent, hex,
 * blank or other unit. Rounded to the nearest ns. False when text is not
 * such a duration or is longer than max_ns; *out_ns is then untouched.
 * The digits are read by hand, not by strtod, whose decimal point follows
 * the locale (the admin TUI sets one for ncurses). */
bool kf_parse_duration_ns(const char *text, uint64_t bare_unit_ns, uint64_t max_ns,
			  uint64_t *out_ns);

/* The same rounded to whole milliseconds, at most max_ms. */
bool kf_parse_duration_ms(const char *text, uint64_t bare_unit_ns, uint64_t max_ms,
			  uint64_t *out_ms);

/* A duration flag kept in whole milliseconds, from lo_ms to hi_ms: a bare
 * number is milliseconds ("250"), a unit says otherwise ("30s", "1.5m").
 * On error returns KF_EINVAL and appends "<what>: '<text>' is not a
 * duration from <lo> ms to <hi> ms (e.g. 250, 250ms, 30s)" to msg. */
enum kf_err kf_parse_ms(const char *text, uint32_t lo_ms, uint32_t hi_ms, const char *what,
			uint32_t *out_ms, struct kf_strbuf *msg);

/* The value of a hexadecimal digit (0-9, a-f, A-F), or -1. */
int kf_hex_digit(int c);

/* Whether s (NUL-terminated) holds an ASCII control character (below 0x20,
 * or DEL): text an operator typed that goes into logs and replies. */
bool kf_text_has_control(const char *s);

#endif
