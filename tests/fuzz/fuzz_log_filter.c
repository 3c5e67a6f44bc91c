/*
 * fuzz_log_filter.c — libFuzzer target for the KEYFORGE_LOG parser
 * (telemetry/filter.c), which reads text from the environment.
 *
 * Each input is a filter spec (cut at its first NUL, as getenv would). It is
 * parsed, then evaluated for a few targets and span stacks, some taken from
 * the input itself. Checked invariants (a violation aborts):
 *  - every invalid directive reported lies inside the spec, with a reason;
 *  - reports == kf_log_filter_invalid_count; at least one directive is kept;
 *  - parsing the same spec again gives the same counts and decisions;
 *  - a level that is enabled implies every less verbose level is enabled.
 *
 * Built as a libFuzzer binary with -Dfuzz=true (clang) and, in every build,
 * into a replay program (replay.c) over seeds/log_filter.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telemetry/filter.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct reports {
	const char *spec;
	size_t spec_len;
	size_t n;
};

static void on_invalid(void *ctx, const char *directive, size_t len, const char *reason)
{
	struct reports *r = ctx;
	CHECK(directive >= r->spec && directive + len <= r->spec + r->spec_len,
	      "report inside the spec");
	CHECK(len > 0, "non-empty invalid directive");
	CHECK(reason && *reason, "report has a reason");
	r->n++;
}

/* Decisions for a few events: 5 levels x targets x span stacks, as bits. */
static uint64_t decisions(const struct kf_log_filter *f, const char *word)
{
	const char *targets[] = { "keyforge::broker::rpc", "keyforge::worker", "x", word, "" };
	struct kf_field job_fields[] = {
		KF_U64("job_id", 42), KF_STRN("worker_id", "w-1", 3), KF_EMPTY("user_id"),
	};
	struct kf_field word_fields[] = {
		KF_STRN(word, word, strlen(word)), KF_I64("delta", -3), KF_F64("t", 0.5),
		KF_BOOL("dry_run", 1),
	};
	struct kf_span_info job = { .name = "job_execution", .target = "keyforge::worker",
				    .fields = job_fields, .n_fields = 3 };
	struct kf_span_info other = { .name = word, .target = word, .fields = word_fields,
				      .n_fields = 4 };
	const struct kf_span_info *stack[] = { &job, &other };
	uint64_t bits = 0;
	int bit = 0;
	for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
		for (size_t depth = 0; depth <= 2; depth++) {
			bool prev = true;
			for (int lvl = KF_LEVEL_ERROR; lvl <= KF_LEVEL_TRACE; lvl++) {
				bool on = kf_log_filter_enabled(f, (enum kf_log_level)lvl,
								targets[t], stack, depth);
				CHECK(prev || !on, "levels are monotonic");
				prev = on;
				bits |= (uint64_t)on << (bit++ % 64);
			}
		}
	}
	bits ^= (uint64_t)kf_log_filter_names_span(f, word, word, word_fields, 4) << 63;
	bits ^= (uint64_t)kf_log_filter_span_level(f, "keyforge::worker", "job_execution",
						   job_fields, 3) << 40;
	return bits;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > KF_LOG_FILTER_MAX_SPEC)
		return 0;
	char *spec = kf_fuzz_text(data, size);
	if (!spec)
		return 0;
	size_t len = strlen(spec);
	/* a word from the input, used as a target, span name and field */
	char word[32];
	size_t wlen = strcspn(spec, ",=[]{}");
	snprintf(word, sizeof word, "%.*s", (int)(wlen < sizeof word ? wlen : sizeof word - 1),
		 spec);

	struct reports r = { spec, len, 0 };
	struct kf_log_filter *f = NULL, *g = NULL;
	CHECK(kf_log_filter_parse(spec, &f, on_invalid, &r) == KF_OK, "parse succeeds");
	CHECK(r.n == kf_log_filter_invalid_count(f), "reports match the invalid count");
	CHECK(kf_log_filter_directive_count(f) >= 1, "at least one directive");
	CHECK(kf_log_filter_parse(spec, &g, NULL, NULL) == KF_OK, "parse again");
	CHECK(kf_log_filter_directive_count(f) == kf_log_filter_directive_count(g) &&
	      kf_log_filter_invalid_count(f) == kf_log_filter_invalid_count(g), "same counts");
	CHECK(decisions(f, word) == decisions(g, word), "same decisions");
	kf_log_filter_free(f);
	kf_log_filter_free(g);
	free(spec);
	return 0;
}
