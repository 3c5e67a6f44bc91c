/*
 * events.h — what the broker publishes, as an integration test reads it.
 *
 * The broker's events socket carries its metric updates, the logs it
 * republishes and the commands to workers. These helpers subscribe to it
 * and pick messages out by topic; test_broker.c and test_worker.c share
 * them. kf_test_sub_on fails the running test (a cmocka assertion) when
 * the socket does not connect.
 */
#ifndef KF_TESTS_EVENTS_H
#define KF_TESTS_EVENTS_H

#include <stddef.h>

#include "bus/bus.h"
#include "proto/proto.h"

/* A subscriber dialled to url for topics starting with prefix (len bytes),
 * returned once it is connected. */
struct kf_bus_sub *kf_test_sub_on(const char *url, const char *prefix, size_t len);

/* The next message on sub whose topic starts with prefix, decoded; NULL
 * when none came within ms. Messages of other topics are dropped. */
struct kf_msg *kf_test_next_event(struct kf_bus_sub *sub, const char *prefix, int ms);

/* The value of a series in the broker's metric updates (topic
 * metric.broker), waiting 8 s at most for one that carries it at min or
 * more. label=value (and label2=value2 when label2 is not NULL) select the
 * series; NAN when none came. */
double kf_test_broker_metric(struct kf_bus_sub *sub, const char *name, const char *label,
	const char *value, const char *label2, const char *value2, double min);

#endif
