/*
 * fuzz.h — what the fuzz targets share: their input as text, and the check
 * that aborts on a broken invariant.
 */
#ifndef KF_TESTS_FUZZ_H
#define KF_TESTS_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The fuzz input as the NUL-terminated text most of our parsers take (a
 * flag, a file read into memory, a decoded msgpack string): a heap copy of
 * data with a NUL after it (free() it); NULL without memory. An embedded
 * NUL ends the text there, as it would for the real caller.
 */
static inline char *kf_fuzz_text(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);

	if (text) {
		memcpy(text, data, size);
		text[size] = '\0';
	}
	return text;
}

/* Unless ok, says which invariant broke (what, and where) and aborts:
 * libFuzzer, or replay.c for the seeds, then reports the input. */
#define CHECK(ok, what) kf_fuzz_check((ok), __FILE__, __LINE__, (what))

static inline void kf_fuzz_check(int ok, const char *file, int line, const char *what)
{
	if (!ok) {
		fprintf(stderr, "%s:%d: invariant broken: %s\n", file, line, what);
		abort();
	}
}

#endif
