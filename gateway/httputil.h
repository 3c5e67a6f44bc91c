/*
 * gateway/httputil.h — the pieces of HTTP the gateway parses itself, out of
 * bytes a client chose: request ids, Accept-Encoding, the path unescaper.
 * (Accept is parsed by telemetry/expo.h, Authorization by gateway/auth.h.)
 *
 * All functions are pure (kf_gw_request_id_new uses an atomic counter) and
 * thread-safe. Inputs are NUL-terminated strings of any content; none is
 * read past its NUL. tests/fuzz/fuzz_gateway_http.c feeds them random bytes.
 */
#ifndef KF_GATEWAY_HTTPUTIL_H
#define KF_GATEWAY_HTTPUTIL_H

#include <stdbool.h>
#include <stddef.h>

/* Longest X-Request-Id honoured; longer ones are replaced. */
#define KF_GW_REQUEST_ID_MAX 128
/* Size of a buffer for a generated id (32 hex digits + NUL). */
#define KF_GW_REQUEST_ID_GEN_SIZE 33

/*
 * True when a client's X-Request-Id may be used as is: 1..KF_GW_REQUEST_ID_MAX
 * bytes, each printable ASCII without space (0x21..0x7e), so it can be echoed
 * in a header and logged without escaping surprises. NULL is not valid.
 */
bool kf_gw_request_id_valid(const char *id);

/* Writes a new id: 16 hex digits of a per-process random prefix, then 16 of
 * a counter, so ids are unique within a process and unlikely to repeat
 * across restarts. */
void kf_gw_request_id_new(char out[KF_GW_REQUEST_ID_GEN_SIZE]);

/*
 * True when an Accept-Encoding header (RFC 9110 §12.5.3) accepts gzip:
 * "gzip" or "x-gzip" with q > 0, or "*" with q > 0 when gzip is not listed
 * with q=0. Case-insensitive. Elements with an unparsable q are ignored.
 * NULL or "" → false (identity).
 */
bool kf_gw_accept_gzip(const char *accept_encoding);

/*
 * Unescapes %XX in place (the URL path and query arguments, installed as
 * libmicrohttpd's unescape callback) and returns the new length. A '%' not
 * followed by two hex digits, or one that would decode to NUL, is left as it
 * is, so "/metrics%00" and "/metrics%2" never become "/metrics".
 */
size_t kf_gw_unescape(char *s);

#endif
