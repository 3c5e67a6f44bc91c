/* regex_guard.c — regular expressions that people type, compiled and matched so
 * that none can stall the program (regex_guard.h says why and how). */
#include "common/regex_guard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAT (KF_REGEX_MAX_COST + 1L)
#define MAX_DEPTH 64 /* groups inside groups; deeper is refused as too costly */

static long sat_add(long a, long b)
{
	return a + b > SAT ? SAT : a + b;
}

static long sat_mul(long a, long b)
{
	if (a == 0 || b == 0)
		return 0;
	return a > SAT / b ? SAT : (a * b > SAT ? SAT : a * b);
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* A decimal number at *p, saturated at SAT; *p moves past it. */
static long read_count(const char **p)
{
	long n = 0;

	while (is_digit(**p)) {
		n = sat_add(sat_mul(n, 10), **p - '0');
		(*p)++;
	}
	return n;
}

/* The character after the bracket expression that starts at p ('['), or
 * the end of the pattern when it has no end (regcomp says so then). */
static const char *skip_bracket(const char *p)
{
	p++;
	if (*p == '^')
		p++;
	if (*p == ']')
		p++; /* a ']' first is one of the characters */
	while (*p && *p != ']') {
		if (*p == '[' && (p[1] == ':' || p[1] == '=' || p[1] == '.')) {
			char close = p[1];
			const char *e = p + 2;

			while (*e && !(e[0] == close && e[1] == ']'))
				e++;
			if (!*e)
				return e;
			p = e + 2;
			continue;
		}
		p++;
	}
	return *p ? p + 1 : p;
}

/* "{m}", "{m,}", "{m,n}" or glibc's "{,n}" at p ('{'): the most copies of
 * the element before it that the engine builds ({m,}: m and a star, so
 * m + 1), and the character after it; NULL when p does not start a bound
 * (a literal '{'). */
static const char *read_bound(const char *p, long *copies)
{
	long m, n;

	p++;
	if (*p != ',' && !is_digit(*p))
		return NULL;
	m = n = read_count(&p); /* {,n}: from 0 */
	if (*p == ',') {
		p++;
		n = is_digit(*p) ? read_count(&p) : sat_add(m, 1);
	}
	if (*p != '}')
		return NULL;
	*copies = m > n ? m : n;
	return p + 1;
}

/*
 * Walks the pattern as glibc's compiler would build it. What its
 * repetitions expand to: every element counts 1, a group what its
 * alternatives hold together, x+ twice x (it is built as x x*), and a bound
 * {m,n} max(m, n) copies of the element before it. Alternatives are added,
 * not maxed: an upper bound is enough.
 */
enum kf_regex_refusal kf_regex_check(const char *pattern, long *cost)
{
	struct { long total, last; } st[MAX_DEPTH];
	const char *p = pattern;
	bool repeated = false; /* the element before is already repeated */
	int d = 0;

	st[0].total = st[0].last = 0;
	if (cost)
		*cost = 0;
	while (*p) {
		long atom = 1, copies;
		const char *q = NULL;

		switch (*p) {
		case '\\':
			if (p[1] >= '1' && p[1] <= '9')
				return KF_REGEX_BACKREF;
			p += p[1] ? 2 : 1;
			break;
		case '[':
			p = skip_bracket(p);
			break;
		case '(':
			if (++d == MAX_DEPTH)
				goto costly;
			st[d].total = st[d].last = 0;
			repeated = false;
			p++;
			continue;
		case ')':
			if (d > 0) {
				atom = st[d].total > 0 ? st[d].total : 1;
				d--;
			}
			p++;
			break;
		case '|':
			st[d].last = 0;
			repeated = false;
			p++;
			continue;
		case '{':
			if (!(q = read_bound(p, &copies))) {
				p++;
				break; /* a literal '{' */
			}
			/* fall through - a bound is a repetition */
		case '*':
		case '+':
		case '?':
			/* x** or x+? repeat a repetition: undefined in POSIX, and
			 * glibc spends seconds on a few dozen of them in a row. */
			if (repeated && st[d].last)
				return KF_REGEX_STACKED;
			repeated = true;
			if (*p == '+') {
				st[d].total = sat_add(st[d].total, st[d].last);
				st[d].last = sat_mul(st[d].last, 2);
			} else if (*p == '{' && copies > 1) {
				st[d].total = sat_add(st[d].total, sat_mul(st[d].last, copies - 1));
				st[d].last = sat_mul(st[d].last, copies);
			} else if (*p == '{') {
				st[d].last = sat_mul(st[d].last, copies);
			}
			p = q ? q : p + 1;
			continue;
		default:
			p++;
			break;
		}
		st[d].total = sat_add(st[d].total, atom);
		st[d].last = atom;
		repeated = false;
	}
	while (d > 0) { /* groups left open: regcomp refuses them anyway */
		st[d - 1].total = sat_add(st[d - 1].total, st[d].total);
		d--;
	}
	if (cost)
		*cost = st[0].total;
	return st[0].total > KF_REGEX_MAX_COST ? KF_REGEX_COSTLY : KF_REGEX_FINE;
costly:
	if (cost)
		*cost = SAT;
	return KF_REGEX_COSTLY;
}

bool kf_regex_compile(regex_t *re, const char *pattern, char *why, size_t why_len)
{
	int rc;

	switch (kf_regex_check(pattern, NULL)) {
	case KF_REGEX_FINE:
		break;
	case KF_REGEX_BACKREF:
		snprintf(why, why_len, "back-references (\\1 to \\9) are not supported: "
			 "matching them can take seconds a line");
		return false;
	case KF_REGEX_STACKED:
		snprintf(why, why_len, "a repetition of a repetition (such as a** or a+?) "
			 "is not supported");
		return false;
	case KF_REGEX_COSTLY:
		snprintf(why, why_len, "its repetitions expand to more than %d elements; "
			 "use smaller {m,n} bounds or fewer nested ones", KF_REGEX_MAX_COST);
		return false;
	}
	if ((rc = regcomp(re, pattern, REG_EXTENDED | REG_NOSUB)) != 0) {
		regerror(rc, re, why, why_len);
		return false;
	}
	return true;
}

bool kf_regex_match(const regex_t *re, const char *s)
{
	size_t len = strnlen(s, KF_REGEX_MATCH_MAX + 1);
	regmatch_t range[1];

	if (len > KF_REGEX_MATCH_MAX) {
		len = KF_REGEX_MATCH_MAX;
		while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
			len--; /* not inside a character */
	}
	/* REG_STARTEND (glibc, the BSDs): range[0] says which bytes to search,
	 * with no copy of the line. */
	range[0].rm_so = 0;
	range[0].rm_eo = (regoff_t)len;
	return regexec(re, s, 1, range, REG_STARTEND) == 0;
}
