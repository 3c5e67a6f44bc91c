/*
 * topic.c — building topics and splitting the topic + NUL framing.
 */
#include "proto/topic.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static bool topic_byte(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e;
}

bool kf_topic_valid(const char *s, size_t len)
{
	if (len == 0 || len > KF_TOPIC_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!topic_byte((unsigned char)s[i]))
			return false;
	return true;
}

static bool has_prefix(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && memcmp(s, prefix, n) == 0;
}

bool kf_topic_monitored(const char *s, size_t len)
{
	return has_prefix(s, len, KF_TOPIC_METRIC) || has_prefix(s, len, KF_TOPIC_STATUS);
}

/* Writes prefix then a sanitised copy of id, cut to fit; "_" for an empty id. */
static size_t build(char out[static KF_TOPIC_SIZE], const char *prefix, const char *id)
{
	size_t n = strlen(prefix);
	memcpy(out, prefix, n);
	if (!id || !*id)
		id = "_";
	for (; *id && n < KF_TOPIC_MAX; id++)
		out[n++] = topic_byte((unsigned char)*id) ? *id : '_';
	out[n] = '\0';
	return n;
}

size_t kf_topic_hb(char out[static KF_TOPIC_SIZE], const char *worker_id)
{
	return build(out, KF_TOPIC_HB, worker_id);
}

size_t kf_topic_log(char out[static KF_TOPIC_SIZE], enum kf_msg_level level, const char *source)
{
	char prefix[32];
	snprintf(prefix, sizeof prefix, KF_TOPIC_LOG "%s.", kf_msg_level_name(level));
	return build(out, prefix, source);
}

size_t kf_topic_metric(char out[static KF_TOPIC_SIZE], const char *source)
{
	return build(out, KF_TOPIC_METRIC, source);
}

size_t kf_topic_job(char out[static KF_TOPIC_SIZE], uint64_t job_id)
{
	return (size_t)snprintf(out, KF_TOPIC_SIZE, KF_TOPIC_JOB "%" PRIu64, job_id);
}

size_t kf_topic_status(char out[static KF_TOPIC_SIZE], const char *what)
{
	return build(out, KF_TOPIC_STATUS, what);
}

size_t kf_topic_cmd(char out[static KF_TOPIC_SIZE], const char *worker_id)
{
	return build(out, KF_TOPIC_CMD, worker_id);
}

enum kf_err kf_topic_split(const void *buf, size_t len, const char **topic, size_t *topic_len,
	const void **envelope, size_t *envelope_len)
{
	const char *p = buf;
	size_t scan = len < KF_TOPIC_SIZE ? len : KF_TOPIC_SIZE;
	const char *nul = p ? memchr(p, '\0', scan) : NULL;
	if (!nul || !kf_topic_valid(p, (size_t)(nul - p)))
		return KF_ETOPIC;
	*topic = p;
	*topic_len = (size_t)(nul - p);
	*envelope = nul + 1;
	*envelope_len = len - *topic_len - 1;
	return KF_OK;
}
