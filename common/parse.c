#include "common/parse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"

enum kf_err kf_parse_u32(const char *text, uint32_t lo, uint32_t hi, const char *what,
			 uint32_t *out, struct kf_strbuf *msg)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(text, &end, 10);
	if (!*text || *end || errno || text[0] == '-' || v < lo || v > hi) {
		kf_strbuf_addf(msg, "%s: '%s' is not a number from %u to %u", what, text, lo, hi);
		return KF_EINVAL;
	}
	*out = (uint32_t)v;
	return KF_OK;
}

bool kf_parse_duration_ns(const char *text, uint64_t bare_unit_ns, uint64_t max_ns,
			  uint64_t *out_ns)
{
	static const struct {
		const char *suffix;
		uint64_t ns;
	} units[] = {
		{ "ms", KF_NS_PER_MS }, { "s", KF_NS_PER_S }, { "m", 60 * KF_NS_PER_S },
		{ "h", 3600 * KF_NS_PER_S },
	};
	const char *p = text;
	uint64_t whole = 0, unit = bare_unit_ns, ns, part;
	double frac = 0, scale = 1;
	size_t digits = 0;
	bool too_big = false;

	/* The whole part is exact (integers); only the fraction, worth less
	 * than one unit (an hour at most, < 2^42 ns), goes through a double. */
	for (; *p >= '0' && *p <= '9'; p++, digits++) {
		too_big |= whole > (UINT64_MAX - 9) / 10;
		whole = whole * 10 + (uint64_t)(*p - '0');
	}
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++, digits++)
			frac += (*p - '0') * (scale /= 10);
	if (digits == 0)
		return false;
	if (*p) {
		size_t i = 0;

		while (i < sizeof units / sizeof units[0] && strcmp(p, units[i].suffix) != 0)
			i++;
		if (i == sizeof units / sizeof units[0])
			return false;
		unit = units[i].ns;
	}
	if (too_big || (unit && whole > max_ns / unit))
		return false;
	ns = whole * unit;
	part = (uint64_t)(frac * (double)unit + 0.5);
	if (part > max_ns - ns)
		return false;
	*out_ns = ns + part;
	return true;
}

bool kf_parse_duration_ms(const char *text, uint64_t bare_unit_ns, uint64_t max_ms,
			  uint64_t *out_ms)
{
	uint64_t ns;

	if (max_ms > UINT64_MAX / KF_NS_PER_MS ||
	    !kf_parse_duration_ns(text, bare_unit_ns, max_ms * KF_NS_PER_MS, &ns))
		return false;
	*out_ms = (ns + KF_NS_PER_MS / 2) / KF_NS_PER_MS;
	return true;
}

enum kf_err kf_parse_ms(const char *text, uint32_t lo_ms, uint32_t hi_ms, const char *what,
			uint32_t *out_ms, struct kf_strbuf *msg)
{
	uint64_t ms;

	if (!kf_parse_duration_ms(text, KF_NS_PER_MS, hi_ms, &ms) || ms < lo_ms) {
		kf_strbuf_addf(msg, "%s: '%s' is not a duration from %u ms to %u ms "
			       "(e.g. 250, 250ms, 30s)", what, text, lo_ms, hi_ms);
		return KF_EINVAL;
	}
	*out_ms = (uint32_t)ms;
	return KF_OK;
}

int kf_hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool kf_text_has_control(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return true;
	return false;
}
