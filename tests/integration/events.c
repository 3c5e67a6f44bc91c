/* events.c — reading the broker's events socket in a test (events.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "events.h"
#include "common/clock.h"

struct kf_bus_sub *kf_test_sub_on(const char *url, const char *prefix, size_t len)
{
	struct kf_bus_sub *sub;

	assert_int_equal(kf_bus_sub_new(&sub, KF_BUS_DIAL, url, NULL, NULL), KF_OK);
	assert_int_equal(kf_bus_sub_subscribe(sub, prefix, len), KF_OK);
	for (int i = 0; i < 200 && kf_bus_sock_peers(kf_bus_sub_sock(sub)) == 0; i++)
		kf_sleep_ms(10);
	assert_true(kf_bus_sock_peers(kf_bus_sub_sock(sub)) > 0);
	/* Connected is not yet subscribed at the publisher: give the
	 * subscription a moment to arrive. */
	kf_sleep_ms(50);
	return sub;
}

struct kf_msg *kf_test_next_event(struct kf_bus_sub *sub, const char *prefix, int ms)
{
	uint64_t end = kf_clock_mono_ns() + (uint64_t)ms * KF_NS_PER_MS;

	while (kf_clock_mono_ns() < end) {
		struct kf_msg *msg;
		nng_msg *m;

		if (kf_bus_sub_recv(sub, 100, &m) != KF_OK)
			continue;
		if (kf_msg_decode_pub(nng_msg_body(m), nng_msg_len(m), &msg, NULL) == KF_OK) {
			if (!strncmp(msg->topic, prefix, strlen(prefix))) {
				nng_msg_free(m);
				return msg;
			}
			kf_msg_free(msg);
		}
		nng_msg_free(m);
	}
	return NULL;
}

/* Whether series s carries label=value (when label is not NULL; a series
 * without that label matches). */
static bool label_matches(const struct kf_msg_series *s, const char *label, const char *value)
{
	for (size_t k = 0; label && k < s->n_labels; k++)
		if (!strcmp(s->labels[k].name, label))
			return !strcmp(s->labels[k].value, value);
	return true;
}

double kf_test_broker_metric(struct kf_bus_sub *sub, const char *name, const char *label,
	const char *value, const char *label2, const char *value2, double min)
{
	uint64_t end = kf_clock_mono_ns() + 8000 * KF_NS_PER_MS;
	double last = NAN;

	while (kf_clock_mono_ns() < end && !(last >= min)) {
		struct kf_msg *m = kf_test_next_event(sub, "metric.broker", 1500);

		if (!m)
			continue;
		for (size_t i = 0; i < m->metric.n_series; i++) {
			const struct kf_msg_series *s = &m->metric.series[i];

			if (!strcmp(s->name, name) && label_matches(s, label, value) &&
			    label_matches(s, label2, value2))
				last = s->value;
		}
		kf_msg_free(m);
	}
	return last;
}
