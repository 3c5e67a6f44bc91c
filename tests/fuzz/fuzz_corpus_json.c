/*
 * fuzz_corpus_json.c — libFuzzer target for the Oxeylyzer JSON reader
 * (layout/corpus_json.c).
 *
 * Any input must either be refused with KF_ECORPUS and a message, or give a
 * corpus that passes kf_corpus_check() and survives a .kfc round trip
 * unchanged (encode, parse, encode again: the same bytes). A violation
 * aborts. The seed corpus is seeds/corpus_json/; replay.c runs it in every
 * build (meson test --suite fuzz-seeds).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layout/corpus.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kf_strbuf why = KF_STRBUF_INIT, a = KF_STRBUF_INIT, b = KF_STRBUF_INIT;
	struct kf_corpus *c = NULL, *back = NULL;
	enum kf_err err = kf_corpus_parse_json(data, size, "fuzz", &c, &why);
	if (err) {
		CHECK(c == NULL, "a failed parse returned a corpus");
		CHECK(err == KF_ECORPUS || err == KF_ENOMEM, "unexpected error code");
		CHECK(err == KF_ENOMEM || why.len > 0, "an error without a message");
	} else {
		CHECK(kf_corpus_check(c, &why) == KF_OK, "a parsed corpus fails kf_corpus_check");
		CHECK(kf_corpus_encode(c, &a) == KF_OK, "encode failed");
		CHECK(kf_corpus_parse_file(a.buf, a.len, "fuzz.kfc", &back, &why) == KF_OK,
		      "the encoded corpus does not load");
		CHECK(kf_corpus_encode(back, &b) == KF_OK, "encode of the reloaded corpus failed");
		CHECK(a.len == b.len && !memcmp(a.buf, b.buf, a.len), "round trip changed the bytes");
	}
	kf_corpus_free(c);
	kf_corpus_free(back);
	kf_strbuf_release(&why);
	kf_strbuf_release(&a);
	kf_strbuf_release(&b);
	return 0;
}
