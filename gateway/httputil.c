/*
 * httputil.c — request ids, Accept-Encoding, path unescaping.
 */
#include "gateway/httputil.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "common/clock.h"
#include "common/parse.h"

bool kf_gw_request_id_valid(const char *id)
{
	if (!id || !id[0])
		return false;
	size_t n = 0;
	for (; id[n]; n++) {
		unsigned char c = (unsigned char)id[n];
		if (n >= KF_GW_REQUEST_ID_MAX || c < 0x21 || c > 0x7e)
			return false;
	}
	return true;
}

void kf_gw_request_id_new(char out[KF_GW_REQUEST_ID_GEN_SIZE])
{
	static _Atomic uint64_t prefix;
	static _Atomic uint64_t counter;
	uint64_t p = atomic_load_explicit(&prefix, memory_order_relaxed);
	if (!p) {
		uint64_t r = 0;
		if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
			r = kf_clock_wall_ns();
		r |= 1; /* never 0, the "not yet chosen" value */
		uint64_t expected = 0;
		atomic_compare_exchange_strong(&prefix, &expected, r);
		p = atomic_load(&prefix);
	}
	uint64_t n = atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed) + 1;
	snprintf(out, KF_GW_REQUEST_ID_GEN_SIZE, "%016llx%016llx", (unsigned long long)p,
		 (unsigned long long)n);
}

static const char *skip_ows(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

/*
 * Parses a qvalue ("0", "0.5", "1", "1.000"; RFC 9110 §12.4.2) at s, which
 * ends at the first of ",;" or NUL after optional whitespace. Returns the
 * weight in thousandths, or -1 when it is not a valid qvalue.
 */
static int parse_q(const char *s)
{
	int q;
	if (*s == '0')
		q = 0;
	else if (*s == '1')
		q = 1000;
	else
		return -1;
	s++;
	if (*s == '.') {
		s++;
		int scale = 100;
		for (int i = 0; i < 3 && *s >= '0' && *s <= '9'; i++, s++, scale /= 10) {
			if (q == 1000 && *s != '0')
				return -1;
			q += (*s - '0') * scale;
		}
	}
	s = skip_ows(s);
	return (*s == '\0' || *s == ',' || *s == ';') ? q : -1;
}

/* Weight of one list element's parameters (";q=..."), 1000 without q. */
static int element_q(const char *p)
{
	int q = 1000;
	while (*p == ';') {
		p = skip_ows(p + 1);
		if ((p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
			q = parse_q(p + 2);
			if (q < 0)
				return -1;
		}
		while (*p && *p != ';' && *p != ',')
			p++;
	}
	return q;
}

bool kf_gw_accept_gzip(const char *ae)
{
	int gzip_q = -1, star_q = -1;
	if (!ae)
		return false;
	for (const char *p = ae; *p;) {
		p = skip_ows(p);
		const char *tok = p;
		while (*p && *p != ',' && *p != ';' && *p != ' ' && *p != '\t')
			p++;
		size_t len = (size_t)(p - tok);
		p = skip_ows(p);
		int q = element_q(p);
		while (*p && *p != ',')
			p++;
		if (*p == ',')
			p++;
		if (q < 0)
			continue;
		if ((len == 4 && strncasecmp(tok, "gzip", 4) == 0) ||
		    (len == 6 && strncasecmp(tok, "x-gzip", 6) == 0))
			gzip_q = q > gzip_q ? q : gzip_q;
		else if (len == 1 && tok[0] == '*')
			star_q = q > star_q ? q : star_q;
	}
	if (gzip_q >= 0)
		return gzip_q > 0;
	return star_q > 0;
}

size_t kf_gw_unescape(char *s)
{
	char *w = s;
	for (const char *r = s; *r;) {
		int hi, lo;
		if (r[0] == '%' && (hi = kf_hex_digit(r[1])) >= 0 && (lo = kf_hex_digit(r[2])) >= 0 &&
		    (hi | lo)) {
			*w++ = (char)(hi << 4 | lo);
			r += 3;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
	return (size_t)(w - s);
}
