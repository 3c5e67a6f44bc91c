/*
 * fuzz_bus_bundle.c — libFuzzer target for the parser of bundles
 * (bus/bundle.c): every subscriber takes apart, in nng's callback, the
 * bundles that reach it — from the broker on events, and from anything that
 * can dial a broker's ingest.
 *
 * Any input is either refused with one of the documented errors, or is a
 * bundle of 1..KF_BUS_BUNDLE_MAX_PARTS non-empty parts, each inside the
 * input, whose parts written out again give back the input byte for byte.
 * The iterator and kf_bus_bundle_check agree. A violation aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bundle.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kf_bus_part parts[KF_BUS_BUNDLE_MAX_PARTS];
	struct kf_bus_bundle_iter it;
	enum kf_err err, checked;
	size_t n = 0, counted = 0;
	unsigned char *again;

	kf_bus_bundle_iter_init(&it, data, size);
	while ((err = kf_bus_bundle_next(&it, &parts[n])) == KF_OK) {
		const uint8_t *p = parts[n].buf;

		CHECK(n < KF_BUS_BUNDLE_MAX_PARTS, "more parts than a bundle may carry");
		CHECK(parts[n].len > 0, "an empty part");
		CHECK(p > data && p + parts[n].len <= data + size, "a part outside the input");
		n++;
	}
	CHECK(kf_bus_bundle_next(&it, &parts[0]) == err, "the iterator moved after its end");
	checked = kf_bus_bundle_check(data, size, &counted);
	CHECK(counted == n, "check counts other parts than the iterator");
	if (err != KF_ENOENT) {
		CHECK(err == KF_ETOPIC || err == KF_EMALFORMED || err == KF_ETRUNCATED ||
		      err == KF_ETOOBIG, "an undocumented error");
		CHECK(checked == err, "check and the iterator disagree");
		CHECK(err != KF_ETOPIC || !kf_bus_bundle_is(data, size), "a bundle refused as a topic");
		return 0;
	}
	CHECK(checked == KF_OK && n > 0, "a bundle without parts accepted");
	CHECK(kf_bus_bundle_size(parts, n) == size, "the parts do not add up to the input");
	again = malloc(size);
	if (!again)
		return 0;
	kf_bus_bundle_write(again, parts, n);
	CHECK(memcmp(again, data, size) == 0, "written again, the bundle differs");
	free(again);
	return 0;
}
