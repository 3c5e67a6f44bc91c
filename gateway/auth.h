/*
 * gateway/auth.h — optional basic or bearer authentication of /metrics
 * (DESIGN.md §6), from a credentials file (docs/gateway.md "Authentication").
 *
 * File format, one credential per line; '#' starts a comment line, blank
 * lines are ignored; fields are separated by spaces or tabs:
 *
 *	basic  USER       SECRET     # Authorization: Basic base64(USER:password)
 *	bearer PRINCIPAL  SECRET     # Authorization: Bearer token
 *
 * SECRET is the rest of the line (trailing whitespace removed): either the
 * password/token itself, or "sha256:" and 64 hex digits of its SHA-256, so
 * the file need not hold it in clear (use that form for random tokens; an
 * unsalted hash is weak protection for a guessable password). USER and
 * PRINCIPAL are 1..64 printable ASCII bytes without ':' or spaces; the
 * principal becomes the request span's user_id.
 *
 * Comparisons run in constant time in the length of the stored secret.
 * A loaded set is immutable: any thread may check against it.
 */
#ifndef KF_GATEWAY_AUTH_H
#define KF_GATEWAY_AUTH_H

#include <stddef.h>

#include "common/err.h"
#include "common/strbuf.h"

#define KF_GW_PRINCIPAL_MAX 64
/* Longest Authorization header looked at; longer is malformed. */
#define KF_GW_AUTH_HEADER_MAX 4096

struct kf_gw_creds;

/*
 * Parses credentials from text (len bytes, need not be NUL-terminated).
 * KF_OK and *out (free with kf_gw_creds_free); KF_EINVAL with a message
 * naming the line in `why` (may be NULL) for a malformed line or a file
 * without any credential; KF_ENOMEM.
 */
enum kf_err kf_gw_creds_parse(const char *text, size_t len, struct kf_gw_creds **out,
			      struct kf_strbuf *why);

/* kf_gw_creds_parse on a file's contents. KF_EIO/KF_ENOENT when it cannot
 * be read (why names the path), KF_ETOOBIG over 1 MiB. */
enum kf_err kf_gw_creds_load(const char *path, struct kf_gw_creds **out, struct kf_strbuf *why);

void kf_gw_creds_free(struct kf_gw_creds *creds);

/* Number of credentials (for the startup log). */
size_t kf_gw_creds_count(const struct kf_gw_creds *creds);

/*
 * Checks an Authorization header value (NULL when the request had none).
 * KF_OK: accepted, and principal (KF_GW_PRINCIPAL_MAX + 1 bytes) receives
 * the user or bearer principal. KF_ENOENT: no header. KF_EINVAL: malformed
 * (unknown scheme, bad base64, no ':' in basic, too long). KF_EPERM: well
 * formed but no credential matches.
 */
enum kf_err kf_gw_creds_check(const struct kf_gw_creds *creds, const char *authorization,
			      char principal[KF_GW_PRINCIPAL_MAX + 1]);

/* Standard base64 (RFC 4648 §4, padding required) of in[0..len) into out
 * (capacity cap). Returns the decoded length, or -1 when the input is not
 * canonical base64 or does not fit. Exposed for tests and the fuzzer. */
long kf_gw_base64_decode(const char *in, size_t len, unsigned char *out, size_t cap);

#endif
