/*
 * fuzz_corpus_file.c — libFuzzer target for the compact corpus format
 * (layout/corpus_file.c), the bytes a worker loads from disk.
 *
 * Any input must either be refused (KF_ECORPUS or KF_ECORPUS_VERSION, with a
 * message) or be a canonical .kfc: encoding the loaded corpus gives back the
 * input byte for byte (the reader admits no slack: padding, reserved fields
 * and the name's tail must be zero). A violation aborts. The seed corpus is
 * seeds/corpus_file/; replay.c runs it in every build.
 *
 * Random mutations almost never keep the CRC-32 right, which would stop the
 * fuzzer at the checksum; so each input is also tried with its trailer
 * rewritten to the right checksum, which lets mutations reach the checks of
 * counts, ids, percentages, order and duplicates behind it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layout/corpus.h"
#include "layout/corpus_internal.h" /* kf__crc32 */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void try_input(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	try_input(data, size);
	if (size >= 168) {
		uint8_t *fixed = malloc(size);
		if (!fixed)
			return 0;
		memcpy(fixed, data, size);
		uint32_t crc = kf__crc32(0, fixed, size - 8);
		memcpy(fixed + size - 8, &crc, 4);
		try_input(fixed, size);
		free(fixed);
	}
	return 0;
}

static void try_input(const uint8_t *data, size_t size)
{
	struct kf_strbuf why = KF_STRBUF_INIT, again = KF_STRBUF_INIT;
	struct kf_corpus *c = NULL;
	enum kf_err err = kf_corpus_parse_file(data, size, "fuzz.kfc", &c, &why);
	if (err) {
		CHECK(c == NULL, "a failed load returned a corpus");
		CHECK(err == KF_ECORPUS || err == KF_ECORPUS_VERSION || err == KF_ENOMEM,
		      "unexpected error code");
		CHECK(err == KF_ENOMEM || why.len > 0, "an error without a message");
	} else {
		/* Touch every array the way the engine will. */
		double sum = 0;
		for (uint32_t i = 0; i < c->nchars; i++)
			sum += c->chars[i] + kf_corpus_char_id(c, c->codepoints[i]);
		for (size_t i = 0; i < c->ntrigrams; i++)
			sum += c->chars[c->trigrams[i].a] + c->chars[c->trigrams[i].c];
		CHECK(sum >= 0, "negative percentages");
		CHECK(kf_corpus_encode(c, &again) == KF_OK, "encode failed");
		CHECK(again.len == size && !memcmp(again.buf, data, size),
		      "a loaded file does not encode to itself");
	}
	kf_corpus_free(c);
	kf_strbuf_release(&why);
	kf_strbuf_release(&again);
}
