#include "common/parse.h"

#include <errno.h>
#include <stdlib.h>

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
