/*
 * fuzz_text.h — the fuzz input as the NUL-terminated text most of our
 * parsers take (a flag, a file read into memory, a decoded msgpack string).
 * An embedded NUL ends the text there, as it would for the real caller.
 */
#ifndef KF_TESTS_FUZZ_TEXT_H
#define KF_TESTS_FUZZ_TEXT_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A heap copy of data with a NUL after it (free() it); NULL without memory. */
static inline char *kf_fuzz_text(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);

	if (text) {
		memcpy(text, data, size);
		text[size] = '\0';
	}
	return text;
}

#endif
