/*
 * proto/topic.h — pub/sub topics and the topic framing.
 *
 * Framing: a pub/sub message is TOPIC, one NUL byte (0x00), then the msgpack
 * envelope. A topic is 1..KF_TOPIC_MAX bytes in 0x21..0x7e (printable ASCII,
 * no space), so the first NUL unambiguously ends it. nng SUB filters by byte
 * prefix: subscribe to "log." for every log event, to "log.ERROR." for
 * errors, to "job.42" + NUL (a 7-byte subscription) for job 42 alone
 * ("job.42" would also match job 421).
 *
 * Topics:
 *   hb.<worker>            heartbeat           (worker -> broker, ingest)
 *   log.<LEVEL>.<source>   log event           (ingest, and republished on events)
 *   metric.<source>        metric update       (ingest, and republished on events)
 *   job.<id>               job event           (events)
 *   status.cluster         cluster status      (events)
 *   cmd.<worker>           worker command      (events)
 * <LEVEL> is ERROR, WARN, INFO, DEBUG or TRACE. Sources and worker ids are
 * copied with every byte outside 0x21..0x7e replaced by '_' and cut so that
 * the topic fits KF_TOPIC_MAX; the real id is in the message itself.
 *
 * All functions are pure and thread-safe.
 */
#ifndef KF_PROTO_TOPIC_H
#define KF_PROTO_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "proto/telemetry_msgs.h"

#define KF_TOPIC_MAX 128                 /* bytes, without the NUL */
#define KF_TOPIC_SIZE (KF_TOPIC_MAX + 1) /* buffer size for the builders */

#define KF_TOPIC_HB "hb."
#define KF_TOPIC_LOG "log."
#define KF_TOPIC_METRIC "metric."
#define KF_TOPIC_JOB "job."
#define KF_TOPIC_STATUS "status."
#define KF_TOPIC_STATUS_CLUSTER "status.cluster"
#define KF_TOPIC_CMD "cmd."

/* Builders: write a NUL-terminated topic into out and return its length
 * (1..KF_TOPIC_MAX). They never fail; see the sanitising rule above. */
size_t kf_topic_hb(char out[static KF_TOPIC_SIZE], const char *worker_id);
size_t kf_topic_log(char out[static KF_TOPIC_SIZE], enum kf_msg_level level, const char *source);
size_t kf_topic_metric(char out[static KF_TOPIC_SIZE], const char *source);
size_t kf_topic_job(char out[static KF_TOPIC_SIZE], uint64_t job_id);
size_t kf_topic_status(char out[static KF_TOPIC_SIZE], const char *what);
size_t kf_topic_cmd(char out[static KF_TOPIC_SIZE], const char *worker_id);

/* True when s[0..len) is a valid topic (length and byte rules above). */
bool kf_topic_valid(const char *s, size_t len);

/* Whether a topic is one the broker also publishes on its monitor socket
 * (bus/addr.h): metric updates and status, what a gateway reads. */
bool kf_topic_monitored(const char *s, size_t len);

/*
 * Splits a received pub/sub message into its topic and its envelope. The
 * outputs point into buf. KF_ETOPIC when no NUL ends a valid topic within the
 * first KF_TOPIC_SIZE bytes.
 */
enum kf_err kf_topic_split(const void *buf, size_t len, const char **topic, size_t *topic_len,
	const void **envelope, size_t *envelope_len);

#endif
