/*
 * broker/jobjson.h — job parameters and results as the JSON the job store
 * keeps (jobs.params, jobs.result), and back.
 *
 * An adapter: common/json.h only writes JSON and the store speaks JSON text,
 * while the wire speaks proto structs. The shapes (docs/operations.md):
 *
 *   params: {"corpus":s, "board":"ansi"|"ortho", "start_layout":s?, "steps":u,
 *            "seed":u, "start_temp":f, "restarts":u, "pinned":s?,
 *            "weights":{name:f,...}, "deadline_ms":u, "max_attempts":u,
 *            "priority":i}
 *   result: {"layout":s, "score":f, "stats":{name:f,...},
 *            "finger_usage":[f x10], "steps":u, "steps_per_sec":f,
 *            "elapsed_ms":u}
 *
 * The parser accepts any JSON (PostgreSQL's jsonb reorders keys and
 * rewrites numbers), ignores unknown keys, and never fails on a missing or
 * mistyped key: it leaves the field at its zero value. Strings it returns
 * live in the caller's arena. Pure and reentrant.
 */
#ifndef KF_BROKER_JOBJSON_H
#define KF_BROKER_JOBJSON_H

#include <stddef.h>

#include "common/err.h"
#include "common/strbuf.h"
#include "proto/msg.h"

/* A bump allocator: everything is freed at once by kf_jarena_release. */
struct kf__jchunk;
struct kf_jarena {
	struct kf__jchunk *chunks;
};
#define KF_JARENA_INIT { NULL }

void *kf_jarena_alloc(struct kf_jarena *a, size_t n);
void kf_jarena_release(struct kf_jarena *a);

/* Appends the JSON object. KF_OK or KF_ENOMEM. */
enum kf_err kf_jobjson_params(const struct kf_msg_job_params *p, struct kf_strbuf *out);
enum kf_err kf_jobjson_result(const struct kf_msg_job_result *r, struct kf_strbuf *out);

/* Parses the JSON text. KF_OK; KF_EMALFORMED (not JSON, or not an object,
 * or nesting deeper than 16); KF_ENOMEM. *out is zeroed first; on error it
 * stays zeroed apart from "corpus" = "" (required on the wire). */
enum kf_err kf_jobjson_parse_params(const char *json, struct kf_jarena *a,
	struct kf_msg_job_params *out);
enum kf_err kf_jobjson_parse_result(const char *json, struct kf_jarena *a,
	struct kf_msg_job_result *out);

#endif
