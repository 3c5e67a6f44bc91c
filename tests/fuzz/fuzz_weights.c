/*
 * fuzz_weights.c — libFuzzer target for the job weights parser
 * (layout/score.c kf_weights_parse): weights arrive from users' files and,
 * through keyforgectl submit, from the bus.
 *
 * Any input must either be refused with KF_EWEIGHTS and a message, or give
 * weights that survive a JSON round trip unchanged (kf_weights_add_json,
 * parse again: the same bytes). A violation aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layout/score.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The parser takes NUL-terminated text, as read from a file. */
	char *text = kf_fuzz_text(data, size);
	if (!text)
		return 0;

	struct kf_strbuf why = KF_STRBUF_INIT, a = KF_STRBUF_INIT, b = KF_STRBUF_INIT;
	struct kf_weights w, back;
	kf_weights_default(&w);
	enum kf_err err = kf_weights_parse(&w, text, &why);
	if (err) {
		CHECK(err == KF_EWEIGHTS, "unexpected error code");
		CHECK(why.len > 0, "an error without a message");
	} else {
		kf_weights_add_json(&w, &a);
		kf_weights_default(&back);
		CHECK(kf_weights_parse(&back, a.buf, &why) == KF_OK, "own JSON refused");
		kf_weights_add_json(&back, &b);
		CHECK(a.len == b.len && !memcmp(a.buf, b.buf, a.len), "JSON round trip differs");
	}
	kf_strbuf_release(&why);
	kf_strbuf_release(&a);
	kf_strbuf_release(&b);
	free(text);
	return 0;
}
