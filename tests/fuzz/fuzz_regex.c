/*
 * fuzz_regex.c — libFuzzer target for the guard of the regular expressions
 * operators type (common/regex_guard.c: keyforgectl logs --regex, the
 * admin's Log Stream filter).
 *
 * Each input is a pattern (cut at its first NUL, as a flag or a typed line
 * would be). Its cost is estimated and it is compiled through the guard;
 * when accepted, it is matched against a line longer than
 * KF_REGEX_MATCH_MAX, in a buffer of exactly its size. Checked invariants
 * (a violation aborts):
 *  - the estimated cost is between 0 and KF_REGEX_MAX_COST + 1;
 *  - a pattern is accepted only when kf_regex_check finds it fine, and so
 *    within the bound;
 *  - a refusal has a reason;
 *  - matching the long line gives what matching its first
 *    KF_REGEX_MATCH_MAX bytes as a string of their own gives.
 * A pattern the guard lets through that is slow to compile or match shows
 * as a slow unit (libFuzzer's -timeout).
 *
 * Built as a libFuzzer binary with -Dfuzz=true (clang) and, in every build,
 * into a replay program (replay.c) over seeds/regex.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/regex_guard.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LINE_LEN (KF_REGEX_MATCH_MAX + 64)

/* A log-like line of LINE_LEN bytes from the pattern's own characters, so
 * that matches are likely, in a buffer without a byte to spare. */
static char *long_line(const char *pattern)
{
	static const char base[] = "12:00:01.5 WARN keyforge::broker job failed job_id=42 é ";
	size_t plen = strlen(pattern);
	char *line = malloc(LINE_LEN + 1);

	if (!line)
		return NULL;
	for (size_t i = 0; i < LINE_LEN; i++)
		line[i] = (i / 64) % 2 && plen ? pattern[i % plen] : base[i % (sizeof base - 1)];
	line[LINE_LEN] = '\0';
	for (size_t i = 0; i < LINE_LEN; i++)
		if (!line[i])
			line[i] = 'x';
	return line;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[256] = "";
	char *pattern, *line, *head;
	regex_t re;
	enum kf_regex_refusal verdict;
	long cost;
	bool ok;

	if (size > 512)
		return 0;
	if (!(pattern = kf_fuzz_text(data, size)))
		return 0;
	verdict = kf_regex_check(pattern, &cost);
	CHECK(cost >= 0 && cost <= KF_REGEX_MAX_COST + 1, "cost in range");
	ok = kf_regex_compile(&re, pattern, why, sizeof why);
	CHECK(!ok || (verdict == KF_REGEX_FINE && cost <= KF_REGEX_MAX_COST),
	      "accepted only when fine, within the bound");
	CHECK(ok || why[0], "a refusal has a reason");
	if (ok && (line = long_line(pattern))) {
		size_t n = KF_REGEX_MATCH_MAX;

		while (n > 0 && ((unsigned char)line[n] & 0xC0) == 0x80)
			n--;
		if ((head = strndup(line, n))) {
			CHECK(kf_regex_match(&re, line) == (regexec(&re, head, 0, NULL, 0) == 0),
			      "the long line matches as its head does");
			free(head);
		}
		free(line);
	}
	if (ok)
		regfree(&re);
	free(pattern);
	return 0;
}
