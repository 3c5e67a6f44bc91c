/*
 * fuzz_jobjson.c — libFuzzer target for the broker's reader of the job
 * JSON that PostgreSQL keeps (broker/jobjson.c: jobs.params, jobs.result).
 *
 * The broker writes those columns itself, but it reads them back from a
 * database that an operator, a migration or another broker may have
 * touched, and sends what it read to workers (lease) and clients (get,
 * list). So for any text:
 *   - both parsers return KF_OK, KF_EMALFORMED or KF_ENOMEM, never crash;
 *   - what parses writes back to JSON that parses to the same JSON again
 *     (write(parse(x)) is a fixed point);
 *   - the parsed params and result, put into a lease reply and a get reply,
 *     encode on the wire or are refused with a proto error (the broker then
 *     answers with an error), and what encodes decodes.
 * A violation aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/jobjson.h"
#include "proto/proto.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A message built from parsed fields encodes, or is refused cleanly; what
 * encodes decodes. */
static void check_wire(const struct kf_msg *msg)
{
	struct kf_strbuf bytes = KF_STRBUF_INIT;
	struct kf_msg *back = NULL;
	enum kf_err err = kf_msg_encode(msg, &bytes);

	if (err == KF_OK) {
		CHECK(kf_msg_decode(bytes.buf, bytes.len, &back, NULL) == KF_OK,
		      "an encoded reply does not decode");
		CHECK(back->type == msg->type, "type changed on the wire");
	} else {
		CHECK(err == KF_ETOOBIG || err == KF_EUTF8 || err == KF_EINVAL || err == KF_ENOMEM,
		      "unexpected encode error");
	}
	kf_msg_free(back);
	kf_strbuf_release(&bytes);
}

typedef enum kf_err (*parse_fn)(const char *, struct kf_jarena *, void *);
typedef enum kf_err (*write_fn)(const void *, struct kf_strbuf *);

/* write(parse(text)) parses and writes to the same bytes. */
static void check_fixed_point(const void *parsed, size_t struct_size, parse_fn parse,
	write_fn write)
{
	struct kf_strbuf a = KF_STRBUF_INIT, b = KF_STRBUF_INIT;
	struct kf_jarena arena = KF_JARENA_INIT;
	void *again = calloc(1, struct_size);

	CHECK(again != NULL, "out of memory");
	CHECK(write(parsed, &a) == KF_OK, "parsed fields do not write");
	CHECK(parse(a.buf, &arena, again) == KF_OK, "written JSON does not parse");
	CHECK(write(again, &b) == KF_OK, "second write failed");
	CHECK(a.len == b.len && memcmp(a.buf, b.buf, a.len) == 0, "JSON round trip differs");
	kf_jarena_release(&arena);
	kf_strbuf_release(&a);
	kf_strbuf_release(&b);
	free(again);
}

static enum kf_err parse_params(const char *t, struct kf_jarena *a, void *out)
{
	return kf_jobjson_parse_params(t, a, out);
}

static enum kf_err parse_result(const char *t, struct kf_jarena *a, void *out)
{
	return kf_jobjson_parse_result(t, a, out);
}

static enum kf_err write_params(const void *p, struct kf_strbuf *sb)
{
	return kf_jobjson_params(p, sb);
}

static enum kf_err write_result(const void *r, struct kf_strbuf *sb)
{
	return kf_jobjson_result(r, sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The store hands the parsers NUL-terminated text (PQgetvalue). */
	char *text = kf_fuzz_text(data, size);
	struct kf_jarena arena = KF_JARENA_INIT;
	struct kf_msg_job_params params;
	struct kf_msg_job_result result;
	enum kf_err perr, rerr;

	if (!text)
		return 0;

	perr = kf_jobjson_parse_params(text, &arena, &params);
	CHECK(perr == KF_OK || perr == KF_EMALFORMED || perr == KF_ENOMEM, "params: bad error");
	rerr = kf_jobjson_parse_result(text, &arena, &result);
	CHECK(rerr == KF_OK || rerr == KF_EMALFORMED || rerr == KF_ENOMEM, "result: bad error");

	if (perr == KF_OK) {
		struct kf_msg_lease lease = { .job_id = 1, .attempt = 1, .lease_token = 7,
			.params = params };
		struct kf_msg msg;

		check_fixed_point(&params, sizeof params, parse_params, write_params);
		kf_msg_init(&msg, KF_MSG_LEASE_REP, "broker", 1);
		msg.lease_rep.lease = &lease;
		check_wire(&msg);
	}
	if (rerr == KF_OK) {
		struct kf_msg_job job = { .id = 1, .state = KF_JOB_SUCCEEDED, .attempt = 1,
			.max_attempts = 3, .params = perr == KF_OK ? params :
			(struct kf_msg_job_params){ .corpus = "" }, .result = &result };
		struct kf_msg msg;

		check_fixed_point(&result, sizeof result, parse_result, write_result);
		kf_msg_init(&msg, KF_MSG_GET_REP, "broker", 1);
		msg.get_rep.job = &job;
		check_wire(&msg);
	}
	kf_jarena_release(&arena);
	free(text);
	return 0;
}
