/*
 * test_log_util.h — helpers shared by the logging unit tests: a tiny JSON
 * reader (enough to parse one log line back), an in-memory output file, and
 * a sink that records events.
 */
#ifndef KF_TEST_LOG_UTIL_H
#define KF_TEST_LOG_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "telemetry/log.h"

enum tj_type { TJ_NULL, TJ_BOOL, TJ_NUMBER, TJ_STRING, TJ_ARRAY, TJ_OBJECT };

struct tj {
	enum tj_type type;
	char *text;        /* TJ_STRING: decoded; TJ_NUMBER: as written */
	size_t len;        /* TJ_STRING: decoded length */
	bool b;
	double num;
	char **keys;       /* TJ_OBJECT */
	struct tj **items; /* TJ_OBJECT values / TJ_ARRAY items, in order */
	size_t n;
};

/* Parses exactly one JSON value (surrounding whitespace allowed); NULL if
 * the text is not valid JSON. */
struct tj *tj_parse(const char *text, size_t len);
void tj_free(struct tj *v);
/* Member of an object by key, or NULL. */
struct tj *tj_get(const struct tj *obj, const char *key);
/* Member by dotted path of object keys and array indexes: "spans.1.name".
 * Keys containing dots ("time.busy") cannot be reached this way; use tj_get. */
struct tj *tj_path(const struct tj *v, const char *path);

/* An in-memory file (memfd) to pass as the log output. */
int cap_open(void);
/* Everything written so far (NUL-terminated, static buffer reused per call). */
const char *cap_read(int fd);
/* Empties the file. */
void cap_reset(int fd);
/* Line `i` (0-based) of `text`, copied into a static buffer; NULL if absent. */
const char *cap_line(const char *text, size_t i);
size_t cap_count_lines(const char *text);

/* Events recorded by rec_sink (deep copies of the interesting parts). */
#define REC_MAX 64
struct rec_event {
	enum kf_log_level level;
	char target[64];
	char message[128];
	size_t n_fields;
	struct kf_field fields[8];
	char strs[8][64];
	size_t n_spans;
	char span_names[8][32];
};
struct rec {
	size_t n;
	struct rec_event ev[REC_MAX];
};
void rec_sink(void *ctx, const struct kf_log_record *r);
/* The field `key` of event `ev`, or NULL. */
const struct kf_field *rec_field(const struct rec_event *ev, const char *key);

#endif
