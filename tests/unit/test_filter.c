/*
 * Unit tests for KEYFORGE_LOG filtering: the grammar, the precedence rules
 * (a table of directive string, target, span stack, level -> decision, run
 * through the pure filter and through the live macros and spans), invalid
 * directives, and the per-callsite interest cache across filter changes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "telemetry/filter.h"
#include "telemetry/log.h"
#include "test_log_util.h"

/* ---- the precedence table -------------------------------------------------- */

struct span_desc {
	const char *name;
	const char *target; /* NULL = "keyforge::worker" */
	struct kf_field fields[2];
	size_t n_fields;
};

struct row {
	const char *spec;
	const char *target;
	enum kf_log_level level;
	bool expect;
	size_t n_spans;
	struct span_desc spans[2];
};

#define E KF_LEVEL_ERROR
#define W KF_LEVEL_WARN
#define I KF_LEVEL_INFO
#define D KF_LEVEL_DEBUG
#define T KF_LEVEL_TRACE
#define JOB(id) { "job_execution", NULL, { KF_U64("job_id", id) }, 1 }
#define JOBS(id) { "job_execution", NULL, { KF_STRN("job_id", id, sizeof(id) - 1) }, 1 }

static const struct row table[] = {
	/* defaults and plain levels */
	{ "", "keyforge::broker", I, true, 0, { { 0 } } },
	{ "", "keyforge::broker", D, false, 0, { { 0 } } },
	{ "warn", "a", W, true, 0, { { 0 } } },
	{ "warn", "a", I, false, 0, { { 0 } } },
	{ "off", "a", E, false, 0, { { 0 } } },
	{ "2", "a", W, true, 0, { { 0 } } },
	{ "2", "a", I, false, 0, { { 0 } } },
	{ "TRACE", "a", T, true, 0, { { 0 } } },
	/* the longest target prefix wins */
	{ "info,keyforge::broker=debug", "keyforge::broker::rpc", D, true, 0, { { 0 } } },
	{ "info,keyforge::broker=debug", "keyforge::broker::rpc", T, false, 0, { { 0 } } },
	{ "info,keyforge::broker=debug", "keyforge::worker", D, false, 0, { { 0 } } },
	{ "keyforge=trace,keyforge::broker=warn", "keyforge::broker::rpc", I, false, 0, { { 0 } } },
	{ "keyforge::broker=warn,keyforge=trace", "keyforge::broker::rpc", I, false, 0, { { 0 } } },
	{ "keyforge=trace,keyforge::broker=warn", "keyforge::worker", T, true, 0, { { 0 } } },
	{ "trace,keyforge=off", "keyforge::worker", E, false, 0, { { 0 } } },
	{ "trace,keyforge=off", "other", T, true, 0, { { 0 } } },
	/* equal specificity: the later directive wins */
	{ "keyforge=debug,keyforge=warn", "keyforge::x", I, false, 0, { { 0 } } },
	{ "keyforge=warn,keyforge=debug", "keyforge::x", D, true, 0, { { 0 } } },
	/* prefixes are textual, as in tracing */
	{ "keyforge::b=debug", "keyforge::broker", D, true, 0, { { 0 } } },
	/* a bare target means trace; targets are case-sensitive */
	{ "info,keyforge::layout", "keyforge::layout::anneal", T, true, 0, { { 0 } } },
	{ "INFO,Keyforge=DEBUG", "Keyforge::x", D, true, 0, { { 0 } } },
	{ "INFO,Keyforge=DEBUG", "keyforge::x", D, false, 0, { { 0 } } },
	/* no matching directive and no default: disabled */
	{ "keyforge::broker=debug", "keyforge::worker", E, false, 0, { { 0 } } },
	/* whitespace and empty directives */
	{ " info , keyforge::broker=debug ,", "keyforge::broker", D, true, 0, { { 0 } } },
	/* span directives: events inside a matching span */
	{ "info,[job_execution{job_id=42}]=trace", "keyforge::worker", T, true, 1, { JOB(42) } },
	{ "info,[job_execution{job_id=42}]=trace", "keyforge::worker", T, false, 1, { JOB(7) } },
	{ "info,[job_execution{job_id=42}]=trace", "keyforge::worker", T, false, 0, { { 0 } } },
	{ "info,[job_execution{job_id=42}]=trace", "other::target", T, true, 1, { JOB(42) } },
	{ "info,[job_execution{job_id=42}]=trace", "keyforge::worker", T, true, 1, { JOBS("42") } },
	{ "info,[job_execution{job_id=\"42\"}]=trace", "x", T, true, 1, { JOBS("42") } },
	/* the design's example: static and span directives combine (OR) */
	{ "info,keyforge::worker=info,[job_execution{job_id=42}]=trace", "keyforge::worker", T, true,
	  1, { JOB(42) } },
	/* an outer span grants its level to events in inner spans */
	{ "info,[job_execution]=debug", "x", D, true, 2,
	  { JOB(1), { "annealing_loop", NULL, { KF_U64("steps", 5) }, 1 } } },
	{ "info,[annealing_loop]=debug", "x", D, false, 1, { JOB(1) } },
	/* target[span]: the target applies to the span's target */
	{ "warn,keyforge::worker[job_execution]=debug", "other", D, true, 1, { JOB(1) } },
	{ "warn,keyforge::worker[job_execution]=debug", "other", D, false, 1,
	  { { "job_execution", "keyforge::broker", { KF_U64("job_id", 1) }, 1 } } },
	/* span precedence: target, then span name, then number of fields */
	{ "[job_execution]=debug,[job_execution{job_id=42}]=error", "x", D, false, 1, { JOB(42) } },
	{ "[job_execution]=debug,[job_execution{job_id=42}]=error", "x", D, true, 1, { JOB(7) } },
	{ "[{job_id=42}]=trace,[job_execution]=warn", "x", T, false, 1, { JOB(42) } },
	{ "[{job_id=42}]=trace,[job_execution]=warn", "x", W, true, 1, { JOB(42) } },
	{ "keyforge::worker[job_execution]=error,[job_execution]=trace", "x", D, false, 1,
	  { JOB(1) } },
	/* a span directive cannot take away what a static one grants */
	{ "info,[job_execution]=off", "x", I, true, 1, { JOB(1) } },
	/* typed values */
	{ "[job{dry_run=true}]=debug", "x", D, true, 1, { { "job", NULL, { KF_BOOL("dry_run", 1) }, 1 } } },
	{ "[job{dry_run=true}]=debug", "x", D, false, 1,
	  { { "job", NULL, { KF_BOOL("dry_run", 0) }, 1 } } },
	{ "[job{delta=-3}]=debug", "x", D, true, 1, { { "job", NULL, { KF_I64("delta", -3) }, 1 } } },
	{ "[job{t=0.5}]=debug", "x", D, true, 1, { { "job", NULL, { KF_F64("t", 0.5) }, 1 } } },
	{ "[job{t=0.5}]=debug", "x", D, false, 1, { { "job", NULL, { KF_F64("t", 0.25) }, 1 } } },
	{ "[job{a=1,b=2}]=debug", "x", D, true, 1,
	  { { "job", NULL, { KF_U64("a", 1), KF_U64("b", 2) }, 2 } } },
	{ "[job{a=1,b=2}]=debug", "x", D, false, 1,
	  { { "job", NULL, { KF_U64("a", 1), KF_U64("b", 3) }, 2 } } },
	{ "[http_request{path=\"/a,b\"}]=debug", "x", D, true, 1,
	  { { "http_request", NULL, { KF_STRN("path", "/a,b", 4) }, 1 } } },
	/* presence-only matchers and fields not recorded yet */
	{ "[{user_id}]=debug", "x", D, true, 1, { { "http_request", NULL, { KF_EMPTY("user_id") }, 1 } } },
	{ "[{user_id}]=debug", "x", D, false, 1, { { "http_request", NULL, { KF_EMPTY("method") }, 1 } } },
	{ "[{user_id=bob}]=debug", "x", D, false, 1,
	  { { "http_request", NULL, { KF_EMPTY("user_id") }, 1 } } },
	{ "[{user_id=bob}]=debug", "x", D, true, 1,
	  { { "http_request", NULL, { KF_STRN("user_id", "bob", 3) }, 1 } } },
	/* invalid directives are skipped, valid ones kept */
	{ "info,foo=verbose,keyforge=debug", "keyforge::x", D, true, 0, { { 0 } } },
	/* nothing valid: info */
	{ "foo=verbose", "x", I, true, 0, { { 0 } } },
	{ "foo=verbose", "x", D, false, 0, { { 0 } } },
};

static const char *span_target(const struct span_desc *s)
{
	return s->target ? s->target : "keyforge::worker";
}

static void test_table_pure(void **state)
{
	(void)state;
	for (size_t r = 0; r < sizeof table / sizeof table[0]; r++) {
		const struct row *row = &table[r];
		struct kf_log_filter *f;
		assert_int_equal(kf_log_filter_parse(row->spec, &f, NULL, NULL), KF_OK);
		struct kf_span_info infos[2];
		const struct kf_span_info *stack[2];
		for (size_t i = 0; i < row->n_spans; i++) {
			infos[i] = (struct kf_span_info){
				.name = row->spans[i].name,
				.target = span_target(&row->spans[i]),
				.fields = row->spans[i].fields,
				.n_fields = row->spans[i].n_fields,
			};
			stack[i] = &infos[i];
		}
		bool got = kf_log_filter_enabled(f, row->level, row->target, stack, row->n_spans);
		if (got != row->expect)
			fail_msg("row %zu: '%s' target %s level %d: got %d", r, row->spec,
				 row->target, row->level, got);
		kf_log_filter_free(f);
	}
}

/* The same table through the live path: kf_log_set_filter, real spans
 * entered on this thread, and kf_log_enabled. */
static void test_table_live(void **state)
{
	(void)state;
	struct kf_log_options o = KF_LOG_OPTIONS_INIT;
	o.fd = -1;
	o.error_fd = -1;
	o.mode = KF_LOG_MODE_SYNC;
	assert_int_equal(kf_log_init(&o), KF_OK);
	for (size_t r = 0; r < sizeof table / sizeof table[0]; r++) {
		const struct row *row = &table[r];
		assert_int_equal(kf_log_set_filter(row->spec), KF_OK);
		struct kf_span *spans[2] = { NULL, NULL };
		for (size_t i = 0; i < row->n_spans; i++) {
			const struct span_desc *d = &row->spans[i];
			spans[i] = kf_span_new(KF_LEVEL_INFO, span_target(d), d->name, d->fields,
					       d->n_fields);
			kf_span_enter(spans[i]);
		}
		bool got = kf_log_enabled(row->level, row->target);
		if (got != row->expect)
			fail_msg("row %zu: '%s' target %s level %d: got %d", r, row->spec,
				 row->target, row->level, got);
		for (size_t i = row->n_spans; i-- > 0;) {
			kf_span_exit(spans[i]);
			kf_span_close(spans[i]);
		}
		assert_null(kf_span_current());
	}
	kf_log_shutdown();
}

/* ---- grammar ---------------------------------------------------------------- */

struct reports {
	size_t n;
	char text[16][64];
	const char *reason[16];
};

static void collect(void *ctx, const char *directive, size_t len, const char *reason)
{
	struct reports *r = ctx;
	if (r->n < 16) {
		snprintf(r->text[r->n], sizeof r->text[0], "%.*s", (int)len, directive);
		r->reason[r->n++] = reason;
	}
}

static void test_invalid_directives(void **state)
{
	(void)state;
	static const struct {
		const char *directive;
		const char *reason;
	} cases[] = {
		{ "foo=verbose", "unknown level (use off, error, warn, info, debug or trace)" },
		{ "a=info=debug", "unknown level (use off, error, warn, info, debug or trace)" },
		{ "=info", "missing target before '='" },
		{ "[job", "unclosed '['" },
		{ "[job{a=1]=info", "unclosed '{'" },
		{ "[]=info", "empty span selector" },
		{ "[{}]=info", "empty field list" },
		{ "[job{=1}]", "empty field name" },
		{ "[job{a=1,}]", "empty field name" },
		{ "a b=info", "invalid character" },
		{ "a[job]x=info", "invalid character" },
		{ "[job x]", "invalid character in span selector" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char spec[128];
		snprintf(spec, sizeof spec, "warn,%s,keyforge=debug", cases[i].directive);
		struct reports r = { 0 };
		struct kf_log_filter *f;
		assert_int_equal(kf_log_filter_parse(spec, &f, collect, &r), KF_OK);
		if (r.n != 1)
			fail_msg("'%s': %zu reports", cases[i].directive, r.n);
		assert_string_equal(r.text[0], cases[i].directive);
		assert_string_equal(r.reason[0], cases[i].reason);
		assert_int_equal(kf_log_filter_invalid_count(f), 1);
		assert_int_equal(kf_log_filter_directive_count(f), 2);
		/* the valid neighbours survive */
		assert_int_equal(kf_log_filter_static_level(f, "keyforge::x"), KF_LEVEL_DEBUG);
		assert_int_equal(kf_log_filter_static_level(f, "other"), KF_LEVEL_WARN);
		kf_log_filter_free(f);
	}
}

static void test_grammar_counts(void **state)
{
	(void)state;
	struct kf_log_filter *f;
	assert_int_equal(kf_log_filter_parse("info,,keyforge=debug, ,[a{b=1,c}]=trace", &f, NULL,
					     NULL), KF_OK);
	assert_int_equal(kf_log_filter_directive_count(f), 3);
	assert_int_equal(kf_log_filter_invalid_count(f), 0);
	assert_true(kf_log_filter_has_dynamic(f));
	assert_int_equal(kf_log_filter_dynamic_max(f), KF_LEVEL_TRACE);
	kf_log_filter_free(f);

	assert_int_equal(kf_log_filter_parse(NULL, &f, NULL, NULL), KF_OK);
	assert_int_equal(kf_log_filter_directive_count(f), 1);
	assert_int_equal(kf_log_filter_static_level(f, "anything"), KF_LEVEL_INFO);
	assert_false(kf_log_filter_has_dynamic(f));
	kf_log_filter_free(f);

	static char huge[KF_LOG_FILTER_MAX_SPEC + 2];
	memset(huge, 'a', sizeof huge - 1);
	assert_int_equal(kf_log_filter_parse(huge, &f, NULL, NULL), KF_ETOOBIG);
	assert_null(f);
}

static void test_level_parse(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		bool ok;
		enum kf_log_level level;
	} cases[] = {
		{ "off", true, KF_LEVEL_OFF },   { "ERROR", true, KF_LEVEL_ERROR },
		{ "Warn", true, KF_LEVEL_WARN }, { "info", true, KF_LEVEL_INFO },
		{ "debug", true, KF_LEVEL_DEBUG }, { "trace", true, KF_LEVEL_TRACE },
		{ "0", true, KF_LEVEL_OFF },     { "5", true, KF_LEVEL_TRACE },
		{ "6", false, 0 },               { "warning", false, 0 },
		{ "", false, 0 },                { "inf", false, 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		enum kf_log_level lvl = KF_LEVEL_OFF;
		assert_int_equal(kf_log_level_parse(cases[i].text, strlen(cases[i].text), &lvl),
				 cases[i].ok);
		if (cases[i].ok)
			assert_int_equal(lvl, cases[i].level);
	}
}

/* ---- live behaviour: interest cache, spans, reports ---------------------------- */

static struct rec rec;

static void init_live(const char *filter, int error_fd)
{
	struct kf_log_options o = KF_LOG_OPTIONS_INIT;
	o.filter = filter;
	o.fd = -1;
	o.error_fd = error_fd;
	o.mode = KF_LOG_MODE_SYNC;
	memset(&rec, 0, sizeof rec);
	assert_int_equal(kf_log_init(&o), KF_OK);
	assert_int_equal(kf_log_sink_add(rec_sink, &rec), KF_OK);
}

static void fini_live(void)
{
	assert_int_equal(kf_log_sink_remove(rec_sink, &rec), KF_OK);
	kf_log_shutdown();
}

/* One callsite, evaluated under changing filters. */
static void trace_site(unsigned i)
{
	KF_TRACE("keyforge::worker", "site", KF_U64("i", i));
}

static void test_interest_follows_filter(void **state)
{
	(void)state;
	trace_site(0); /* before init: discarded, callsite registered as never */
	init_live("info", -1);
	trace_site(1);
	assert_int_equal(rec.n, 0);
	assert_int_equal(kf_log_set_filter("keyforge::worker=trace"), KF_OK);
	trace_site(2);
	assert_int_equal(rec.n, 1);
	assert_int_equal(rec_field(&rec.ev[0], "i")->v.u64, 2);
	assert_int_equal(kf_log_set_filter("info,[job_execution{job_id=42}]=trace"), KF_OK);
	trace_site(3);
	struct kf_span *job = kf_span_enter(KF_INFO_SPAN("keyforge::worker", "job_execution",
							 KF_U64("job_id", 42)));
	trace_site(4);
	kf_span_exit(job);
	kf_span_close(job);
	job = kf_span_enter(KF_INFO_SPAN("keyforge::worker", "job_execution", KF_U64("job_id", 7)));
	trace_site(5);
	kf_span_close(job);
	/* site 4 inside job 42, then job 42's close event (DEBUG, granted by
	 * the span itself); nothing from job 7 */
	assert_int_equal(rec.n, 3);
	assert_int_equal(rec_field(&rec.ev[1], "i")->v.u64, 4);
	assert_int_equal(rec.ev[1].n_spans, 1);
	assert_string_equal(rec.ev[1].span_names[0], "job_execution");
	assert_string_equal(rec.ev[2].message, "close");
	assert_int_equal(rec.ev[2].level, KF_LEVEL_DEBUG);
	fini_live();
	trace_site(6); /* after shutdown: discarded */
	assert_int_equal(rec.n, 3);
}

static void test_spans_are_filtered(void **state)
{
	(void)state;
	init_live("warn", -1);
	assert_null(KF_INFO_SPAN("keyforge::worker", "job_execution", KF_U64("job_id", 1)));
	assert_null(KF_DEBUG_SPAN("keyforge::worker", "inner"));
	assert_int_equal(kf_log_set_filter("warn,[job_execution]=debug"), KF_OK);
	struct kf_span *job = KF_INFO_SPAN("keyforge::worker", "job_execution", KF_U64("job_id", 1));
	assert_non_null(job);
	assert_null(KF_INFO_SPAN("keyforge::worker", "other"));
	kf_span_enter(job);
	/* inside a span granted debug, a debug span is enabled, a trace one not */
	struct kf_span *inner = KF_DEBUG_SPAN("keyforge::worker", "inner");
	assert_non_null(inner);
	assert_null(KF_TRACE_SPAN("keyforge::worker", "deeper"));
	kf_span_close(inner);
	kf_span_close(job);
	fini_live();
}

static void test_invalid_reported_once_on_init(void **state)
{
	(void)state;
	int fd = cap_open();
	init_live("info,foo=verbose,[x", fd);
	KF_INFO("a", "one");
	KF_INFO("a", "two");
	const char *out = cap_read(fd);
	assert_string_equal(out,
			    "keyforge: KEYFORGE_LOG: ignoring invalid directive 'foo=verbose': "
			    "unknown level (use off, error, warn, info, debug or trace)\n"
			    "keyforge: KEYFORGE_LOG: ignoring invalid directive '[x': unclosed '['\n");
	assert_int_equal(rec.n, 2);
	fini_live();
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_pure),
		cmocka_unit_test(test_table_live),
		cmocka_unit_test(test_invalid_directives),
		cmocka_unit_test(test_grammar_counts),
		cmocka_unit_test(test_level_parse),
		cmocka_unit_test(test_interest_follows_filter),
		cmocka_unit_test(test_spans_are_filtered),
		cmocka_unit_test(test_invalid_reported_once_on_init),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
