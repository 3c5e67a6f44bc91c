/*
 * Unit tests for spans: nesting on the thread stack, busy and idle time with
 * an injected clock, close events and their ancestry, parents outliving
 * their handle, fields recorded after opening, per-thread stacks, scope
 * guards and NULL (disabled) spans.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "telemetry/log.h"
#include "test_log_util.h"

#define TGT "keyforge::test"

static uint64_t now_ns;
static struct rec rec;

static uint64_t fake_mono(void)
{
	return now_ns;
}

static int setup(void **state)
{
	(void)state;
	struct kf_log_options o = KF_LOG_OPTIONS_INIT;
	o.filter = "debug";
	o.fd = -1;
	o.mode = KF_LOG_MODE_SYNC;
	o.mono_ns = fake_mono;
	now_ns = 1000;
	memset(&rec, 0, sizeof rec);
	if (kf_log_init(&o) != KF_OK || kf_log_sink_add(rec_sink, &rec) != KF_OK)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	kf_log_sink_remove(rec_sink, &rec);
	kf_log_shutdown();
	return 0;
}

static uint64_t u64_field(const struct rec_event *ev, const char *key)
{
	const struct kf_field *f = rec_field(ev, key);
	assert_non_null(f);
	assert_int_equal(f->type, KF_FIELD_U64);
	return f->v.u64;
}

static const char *str_field(const struct rec_event *ev, const char *key)
{
	const struct kf_field *f = rec_field(ev, key);
	assert_non_null(f);
	assert_int_equal(f->type, KF_FIELD_STR);
	return f->v.str;
}

static void test_nesting_and_busy_time(void **state)
{
	(void)state;
	struct kf_span *outer = KF_INFO_SPAN(TGT, "job_execution", KF_U64("job_id", 1));
	now_ns += 5;
	kf_span_enter(outer);                                   /* t=5 */
	now_ns += 5;
	struct kf_span *inner = KF_DEBUG_SPAN(TGT, "annealing_loop"); /* t=10 */
	assert_ptr_equal(kf_span_current(), outer);
	kf_span_enter(inner);
	assert_ptr_equal(kf_span_current(), inner);
	KF_INFO(TGT, "inside");
	now_ns += 20;
	kf_span_exit(inner);                                    /* t=30 */
	assert_int_equal(kf_span_busy_ns(inner), 20);
	now_ns += 10;
	kf_span_close(inner);                                   /* t=40 */
	now_ns += 10;
	kf_span_exit(outer);                                    /* t=50 */
	now_ns += 50;
	kf_span_close(outer);                                   /* t=100 */
	assert_null(kf_span_current());

	assert_int_equal(rec.n, 3);
	assert_string_equal(rec.ev[0].message, "inside");
	assert_int_equal(rec.ev[0].n_spans, 2);
	assert_string_equal(rec.ev[0].span_names[0], "job_execution");
	assert_string_equal(rec.ev[0].span_names[1], "annealing_loop");

	const struct rec_event *ci = &rec.ev[1], *co = &rec.ev[2];
	assert_string_equal(ci->message, "close");
	assert_int_equal(ci->level, KF_LEVEL_DEBUG);
	assert_string_equal(ci->target, TGT);
	assert_int_equal(u64_field(ci, "time.busy_ns"), 20);
	assert_int_equal(u64_field(ci, "time.idle_ns"), 10);
	assert_string_equal(str_field(ci, "time.busy"), "20.0ns");
	assert_string_equal(str_field(ci, "time.idle"), "10.0ns");
	/* a close event's spans are the closed span's ancestry, itself last */
	assert_int_equal(ci->n_spans, 2);
	assert_string_equal(ci->span_names[1], "annealing_loop");

	assert_int_equal(u64_field(co, "time.busy_ns"), 45);
	assert_int_equal(u64_field(co, "time.idle_ns"), 55);
	assert_int_equal(co->n_spans, 1);
	assert_string_equal(co->span_names[0], "job_execution");
}

static void test_reentry_counts_once(void **state)
{
	(void)state;
	struct kf_span *s = KF_INFO_SPAN(TGT, "recursive");
	kf_span_enter(s);
	now_ns += 10;
	kf_span_enter(s);
	now_ns += 10;
	kf_span_exit(s);
	assert_ptr_equal(kf_span_current(), s);
	now_ns += 10;
	kf_span_exit(s);
	now_ns += 100;
	assert_int_equal(kf_span_busy_ns(s), 30);
	kf_span_close(s);
	assert_int_equal(u64_field(&rec.ev[0], "time.busy_ns"), 30);
	assert_int_equal(u64_field(&rec.ev[0], "time.idle_ns"), 100);
}

static void test_out_of_order_exit(void **state)
{
	(void)state;
	struct kf_span *a = kf_span_enter(KF_INFO_SPAN(TGT, "a"));
	struct kf_span *b = kf_span_enter(KF_INFO_SPAN(TGT, "b"));
	kf_span_exit(a); /* not the innermost: removed anyway */
	assert_ptr_equal(kf_span_current(), b);
	KF_INFO(TGT, "only b");
	assert_int_equal(rec.ev[0].n_spans, 1);
	assert_string_equal(rec.ev[0].span_names[0], "b");
	kf_span_exit(a); /* not entered any more: no-op */
	kf_span_close(b); /* closing an entered span exits it */
	assert_null(kf_span_current());
	kf_span_close(a);
}

static void test_parent_closes_after_child(void **state)
{
	(void)state;
	struct kf_span *parent = kf_span_enter(KF_INFO_SPAN(TGT, "parent"));
	struct kf_span *child = KF_INFO_SPAN(TGT, "child");
	kf_span_exit(parent);
	kf_span_close(parent); /* the child still holds it: no close yet */
	assert_int_equal(rec.n, 0);
	kf_span_enter(child);
	KF_INFO(TGT, "in child");
	kf_span_exit(child);
	/* the event sees only the entered stack, not the closed parent */
	assert_int_equal(rec.ev[0].n_spans, 1);
	kf_span_close(child);
	assert_int_equal(rec.n, 3);
	assert_string_equal(rec.ev[1].message, "close");
	assert_int_equal(rec.ev[1].n_spans, 2);
	assert_string_equal(rec.ev[1].span_names[0], "parent");
	assert_string_equal(rec.ev[1].span_names[1], "child");
	assert_string_equal(rec.ev[2].message, "close");
	assert_int_equal(rec.ev[2].n_spans, 1);
	assert_string_equal(rec.ev[2].span_names[0], "parent");
}

static void test_record_after_open(void **state)
{
	(void)state;
	struct kf_span *req = KF_INFO_SPAN(TGT, "http_request", KF_STR("method", "GET"),
					   KF_STR("path", "/metrics"), KF_EMPTY("user_id"));
	const struct kf_span_info *info = kf_span_info(req);
	assert_int_equal(info->n_fields, 3);
	assert_int_equal(info->fields[2].type, KF_FIELD_EMPTY);
	char user[] = "alice";
	assert_int_equal(kf_span_record(req, KF_STR("user_id", user)), KF_OK);
	user[0] = 'X'; /* the span holds its own copy */
	assert_int_equal(info->fields[2].type, KF_FIELD_STR);
	assert_string_equal(info->fields[2].v.str, "alice");
	assert_int_equal(info->fields[2].len, 5);
	/* re-recording replaces, and may change the type */
	assert_int_equal(kf_span_record(req, KF_U64("user_id", 7)), KF_OK);
	assert_int_equal(info->fields[2].type, KF_FIELD_U64);
	assert_int_equal(info->fields[2].v.u64, 7);
	assert_int_equal(kf_span_record(req, KF_STR("user_id", "bob")), KF_OK);
	assert_string_equal(info->fields[2].v.str, "bob");
	/* undeclared fields are refused, as tracing ignores them */
	assert_int_equal(kf_span_record(req, KF_STR("undeclared", "x")), KF_ENOENT);
	assert_int_equal(info->n_fields, 3);
	assert_string_equal(info->fields[0].v.str, "GET");
	kf_span_close(req);
}

/* Recording a value can make a span match a dynamic directive. */
static void test_record_changes_filter_match(void **state)
{
	(void)state;
	assert_int_equal(kf_log_set_filter("info,[http_request{user_id=bob}]=trace"), KF_OK);
	struct kf_span *req = kf_span_enter(KF_INFO_SPAN(TGT, "http_request", KF_EMPTY("user_id")));
	KF_TRACE(TGT, "before");
	kf_span_record(req, KF_STR("user_id", "bob"));
	KF_TRACE(TGT, "after");
	kf_span_close(req);
	assert_int_equal(rec.n, 2);
	assert_string_equal(rec.ev[0].message, "after");
	assert_string_equal(rec.ev[1].message, "close");
}

static void *other_thread(void *arg)
{
	(void)arg;
	KF_INFO(TGT, "from other thread");
	return kf_span_current();
}

static void test_stacks_are_per_thread(void **state)
{
	(void)state;
	struct kf_span *s = kf_span_enter(KF_INFO_SPAN(TGT, "main_only"));
	pthread_t t;
	void *seen = s;
	assert_int_equal(pthread_create(&t, NULL, other_thread, NULL), 0);
	assert_int_equal(pthread_join(t, &seen), 0);
	assert_null(seen);
	assert_int_equal(rec.ev[0].n_spans, 0);
	kf_span_close(s);
}

static void test_scope_guard(void **state)
{
	(void)state;
	{
		KF_SPAN_SCOPE(KF_INFO_SPAN(TGT, "scoped", KF_U64("n", 1)));
		assert_non_null(kf_span_current());
		now_ns += 7;
	}
	assert_null(kf_span_current());
	assert_int_equal(rec.n, 1);
	assert_string_equal(rec.ev[0].message, "close");
	assert_int_equal(u64_field(&rec.ev[0], "time.busy_ns"), 7);
}

static void test_null_spans_are_harmless(void **state)
{
	(void)state;
	assert_int_equal(kf_log_set_filter("warn"), KF_OK);
	struct kf_span *s = KF_INFO_SPAN(TGT, "disabled", KF_U64("n", 1));
	assert_null(s);
	assert_null(kf_span_enter(s));
	kf_span_exit(s);
	assert_int_equal(kf_span_record(s, KF_U64("n", 2)), KF_OK);
	assert_null(kf_span_info(s));
	assert_int_equal(kf_span_busy_ns(s), 0);
	assert_null(kf_span_ref(s));
	kf_span_close(s);
	assert_null(kf_span_current());
	assert_int_equal(rec.n, 0);
}

/* Close events obey the filter: not below DEBUG. */
static void test_close_event_filtered(void **state)
{
	(void)state;
	assert_int_equal(kf_log_set_filter("info"), KF_OK);
	kf_span_close(KF_INFO_SPAN(TGT, "quiet"));
	assert_int_equal(rec.n, 0);
	assert_int_equal(kf_log_set_filter("info,keyforge::test=debug"), KF_OK);
	kf_span_close(KF_INFO_SPAN(TGT, "loud"));
	assert_int_equal(rec.n, 1);
}

static void test_deep_nesting_beyond_stack(void **state)
{
	(void)state;
	struct kf_span *spans[KF_SPAN_MAX_DEPTH + 3];
	size_t n = sizeof spans / sizeof spans[0];
	for (size_t i = 0; i < n; i++)
		spans[i] = kf_span_enter(kf_span_new(KF_LEVEL_INFO, TGT, "deep", NULL, 0));
	KF_INFO(TGT, "deep event");
	assert_int_equal(rec.ev[0].n_spans, 8); /* rec keeps 8 names */
	for (size_t i = n; i-- > 0;) {
		kf_span_exit(spans[i]);
		kf_span_close(spans[i]);
	}
	assert_null(kf_span_current());
	assert_int_equal(rec.n, 1 + n < REC_MAX ? 1 + n : REC_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_nesting_and_busy_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reentry_counts_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_order_exit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parent_closes_after_child, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_after_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_changes_filter_match, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stacks_are_per_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scope_guard, setup, teardown),
		cmocka_unit_test_setup_teardown(test_null_spans_are_harmless, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_event_filtered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deep_nesting_beyond_stack, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
