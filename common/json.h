/*
 * json.h — writing JSON text into a strbuf (no parser here).
 *
 * kf_json_add_string escapes per RFC 8259: '"', '\\', control characters as
 * \n \t \r \b \f or \u00XX; bytes >= 0x80 are copied when they form valid
 * UTF-8 and replaced by U+FFFD when they do not, so the output is always
 * valid UTF-8 JSON whatever the input.
 */
#ifndef KF_COMMON_JSON_H
#define KF_COMMON_JSON_H

#include <stddef.h>

#include "common/strbuf.h"

/* Appends `s` (len bytes, may contain NUL) as a quoted JSON string. */
void kf_json_add_string(struct kf_strbuf *sb, const char *s, size_t len);
void kf_json_add_cstr(struct kf_strbuf *sb, const char *s);
/* Appends a number with the shortest text that round-trips; NaN and
 * infinities, which JSON cannot hold, become null. */
void kf_json_add_double(struct kf_strbuf *sb, double v);

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if s[0..len) does
 * not start with one. Rejects overlongs, surrogates and > U+10FFFF. */
size_t kf_utf8_seq_len(const unsigned char *s, size_t len);
/* True when all of s[0..len) is valid UTF-8. */
int kf_utf8_valid(const char *s, size_t len);

#endif
