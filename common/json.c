#include "common/json.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
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

/* ---- the everyday range in integers ----
 *
 * snprintf and strtod cost about a microsecond each here (glibc works in
 * multi-precision), and dbl_everyday needs up to three of one and two of
 * the other per double: the broker's main thread spent about a sixth of its
 * CPU on the ~25 doubles of each job's result. In [1e-4, 1e14) a double is
 * f * 2^-s with f < 2^53 and 6 <= s <= 66, and the texts tried have 15 to 17
 * digits, so the same rounding and the same read-back test fit in 128-bit
 * integers. What comes out is the text dbl_everyday prints, byte for byte
 * (test_json_double_matches_linear_scan compares both with the search). */
typedef unsigned __int128 kf__u128;

static const uint64_t pow10_u64[] = {
	1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull, 10000000ull,
	100000000ull, 1000000000ull, 10000000000ull, 100000000000ull, 1000000000000ull,
	10000000000000ull, 100000000000000ull, 1000000000000000ull, 10000000000000000ull,
	100000000000000000ull, 1000000000000000000ull, 10000000000000000000ull,
};

static kf__u128 pow10_u128(int k)
{
	return k < 20 ? pow10_u64[k] : (kf__u128)pow10_u64[19] * 10;
}

/* n / 2^s rounded to nearest, ties to even: printf's rounding. */
static uint64_t shift_round(kf__u128 n, int s)
{
	kf__u128 half = (kf__u128)1 << (s - 1), rest = n & (((kf__u128)1 << s) - 1);
	uint64_t m = (uint64_t)(n >> s);

	return m + (rest > half || (rest == half && (m & 1)));
}

/* Writes m (p digits) as %g does for a decimal exponent x in [-4, p): no
 * exponent, no trailing zeros after the point, no point without digits. */
static void put_fixed(char *out, bool neg, uint64_t m, int p, int x)
{
	char d[20];
	int n = p;

	for (int i = p - 1; i >= 0; i--, m /= 10)
		d[i] = (char)('0' + m % 10);
	while (n > (x >= 0 ? x + 1 : 0) && d[n - 1] == '0')
		n--;
	if (neg)
		*out++ = '-';
	if (x >= 0) {
		memcpy(out, d, (size_t)x + 1);
		out += x + 1;
		if (n > x + 1) {
			*out++ = '.';
			memcpy(out, d + x + 1, (size_t)(n - x - 1));
			out += n - x - 1;
		}
	} else {
		*out++ = '0';
		*out++ = '.';
		for (int i = 0; i < -x - 1; i++)
			*out++ = '0';
		memcpy(out, d, (size_t)n);
		out += n;
	}
	*out = '\0';
}

/* dbl_everyday in integers, for 1e-4 <= |v| < 1e14; false: not handled
 * (a power of two, whose lower neighbour is nearer; the caller formats it).
 * out holds at least 32 bytes. */
static bool dbl_everyday_exact(char *out, double v)
{
	uint64_t bits, f;
	int s, x;

	memcpy(&bits, &v, sizeof bits);
	f = (bits & ((1ull << 52) - 1)) | (1ull << 52);
	s = 1075 - (int)(bits >> 52 & 0x7ff);   /* |v| = f * 2^-s */
	if (s < 1 || s > 70 || f == 1ull << 52)
		return false;
	/* x: the decimal exponent of |v|, floor(log10 |v|), exactly: log10
	 * may be one off near a power of ten, |v| * 10^(14 - x) truncated has
	 * 15 digits for the right one. */
	x = (int)floor(log10(fabs(v)));
	for (int tries = 0;; tries++) {
		int k = 14 - x;
		uint64_t t;

		if (tries == 3 || k < 0 || k > 20)
			return false;
		t = (uint64_t)(((kf__u128)f * pow10_u128(k)) >> s);
		if (t < pow10_u64[14])
			x--;
		else if (t >= pow10_u64[15])
			x++;
		else
			break;
	}
	for (int p = 15; p <= 17; p++) {
		int k = p - 1 - x, xp = x;
		kf__u128 n;
		uint64_t m;

		if (k > 20)
			return false;
		/* m: |v| rounded to p digits, |v| * 10^k; rounding up may reach
		 * the next power of ten, whose exponent is one more. */
		n = (kf__u128)f * pow10_u128(k);
		m = shift_round(n, s);
		/* Reads back to v when m / 10^k is within half an ulp of |v|
		 * (2^-s-1), a tie going to the even f: scaled by 10^k * 2^(s+1),
		 * |m * 2^(s+1) - 2 * f * 10^k| against 10^k. 17 digits always do. */
		if (p < 17) {
			kf__u128 a = (kf__u128)m << (s + 1), b = n << 1, ulp_half = pow10_u128(k);
			kf__u128 diff = a > b ? a - b : b - a;

			if (diff > ulp_half || (diff == ulp_half && (f & 1)))
				continue;
		}
		if (m == pow10_u64[p]) {
			m = pow10_u64[p - 1];
			xp++;
		}
		put_fixed(out, bits >> 63, m, p, xp);
		return true;
	}
	return false;
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
	if (mag >= 1e-4 && mag < 1e14) {
		if (!dbl_everyday_exact(tmp, v))
			dbl_everyday(tmp, sizeof(tmp), v);
	} else if (mag == 0 || (mag >= 1e-4 && mag < 1e16))
		dbl_shortest(tmp, sizeof(tmp), false, 0, 20, v);
	else
		dbl_shortest(tmp, sizeof(tmp), true, 1, 17, v);
	kf_strbuf_addstr(sb, tmp);
}
