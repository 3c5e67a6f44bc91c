/*
 * common/regex_guard.h — regular expressions that people type (keyforgectl logs
 * --regex, the admin's Log Stream filter), compiled and matched so that no
 * pattern can stall the program for seconds.
 *
 * glibc's regex engine is exact but not linear. Four things make it slow,
 * measured on this machine (docs/operations.md, keyforgectl "logs"):
 *  - back-references (\1..\9) are matched by backtracking: one 150-byte line
 *    took 7 s against (.*)(.*)(.*)(.*)\4\3\2\1z;
 *  - bounded repetitions are expanded when the pattern is compiled:
 *    ((a{1,100}){1,100}){1,100} took 6.7 s in regcomp;
 *  - an unanchored search is quadratic in the line's length for patterns
 *    like a.*b.*c.*d: 30 ms on 4 KiB of 'a', 6.5 s on 64 KiB;
 *  - repetitions of repetitions (a**, a+?), which POSIX leaves undefined:
 *    26 of them in a row took glibc 4 minutes to compile.
 * So kf_regex_compile refuses back-references, stacked repetitions and
 * patterns that expand past KF_REGEX_MAX_COST elements, with a reason, and
 * kf_regex_match looks at the first KF_REGEX_MATCH_MAX bytes of a line only.
 */
#ifndef KF_COMMON_REGEX_GUARD_H
#define KF_COMMON_REGEX_GUARD_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

/* Most pattern elements the bounded repetitions may expand to. */
#define KF_REGEX_MAX_COST 1000
/* Bytes of a line a pattern is matched against. */
#define KF_REGEX_MATCH_MAX 4096

/* Compiles a POSIX extended expression (REG_EXTENDED | REG_NOSUB). False,
 * with a reason in why, when it is invalid (regcomp's message) or the guard
 * refuses it (kf_regex_check); re is then not to be freed. */
bool kf_regex_compile(regex_t *re, const char *pattern, char *why, size_t why_len);

/* Whether re matches within the first KF_REGEX_MATCH_MAX bytes of s (cut
 * at a UTF-8 character boundary). */
bool kf_regex_match(const regex_t *re, const char *s);

/* Why the guard refuses a pattern (kf_regex_compile's checks before
 * regcomp), or KF_REGEX_FINE. */
enum kf_regex_refusal {
	KF_REGEX_FINE = 0,
	KF_REGEX_BACKREF,  /* \1 to \9 */
	KF_REGEX_STACKED,  /* a repetition of a repetition: a**, a+?, a{2}* */
	KF_REGEX_COSTLY,   /* expands past KF_REGEX_MAX_COST */
};

/* The guard's verdict on pattern; *cost (NULL: not wanted) gets the
 * expansion it estimates, saturated at KF_REGEX_MAX_COST + 1, when it got
 * that far. For kf_regex_compile and the tests. */
enum kf_regex_refusal kf_regex_check(const char *pattern, long *cost);

#endif
