/*
 * filter.c — parsing and evaluating KEYFORGE_LOG (see filter.h for the
 * grammar and the decision rules).
 *
 * The filter keeps a private copy of the spec; directives point into it as
 * (pointer, length) pairs, so parsing allocates three blocks per directive at
 * most and evaluation allocates nothing.
 */
#include "telemetry/filter.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct field_match {
	const char *name;
	size_t name_len;
	const char *value; /* NULL: presence only */
	size_t value_len;
	bool is_bool, is_u64, is_i64, is_f64;
	bool b;
	uint64_t u64;
	int64_t i64;
	double f64;
};

struct directive {
	const char *target; /* NULL: any target */
	size_t target_len;
	const char *span;   /* NULL: any span name */
	size_t span_len;
	bool dynamic;       /* had a [..] selector */
	struct field_match *fields;
	size_t n_fields;
	enum kf_log_level level;
	size_t order;       /* position in the spec; later wins ties */
};

struct kf_log_filter {
	char *spec;
	struct directive *statics; /* most specific first */
	size_t n_statics;
	struct directive *dynamics; /* most specific first */
	size_t n_dynamics;
	size_t n_invalid;
	enum kf_log_level dynamic_max;
};

/* ---- levels ------------------------------------------------------------- */

static const char *const level_names[] = { "off", "error", "warn", "info", "debug", "trace" };

bool kf_log_level_parse(const char *s, size_t len, enum kf_log_level *out)
{
	if (len == 1 && s[0] >= '0' && s[0] <= '5') {
		*out = (enum kf_log_level)(s[0] - '0');
		return true;
	}
	for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
		if (strlen(level_names[i]) == len && strncasecmp(s, level_names[i], len) == 0) {
			*out = (enum kf_log_level)i;
			return true;
		}
	}
	return false;
}

/* ---- parsing ------------------------------------------------------------ */

struct parser {
	struct kf_log_filter *f;
	const char *caller_spec; /* reports point into the caller's text */
	kf_log_filter_report_fn report;
	void *ctx;
	size_t cap_statics, cap_dynamics;
	size_t order;
};

/* Characters allowed in targets, span names and field names. */
static bool is_name_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && !strchr("[]{}=,\"", c);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t name_span(const char *s, size_t len)
{
	size_t n = 0;
	while (n < len && is_name_char((unsigned char)s[n]))
		n++;
	return n;
}

/* Infers the typed forms of a field value once, at parse time. */
static void classify_value(struct field_match *m)
{
	char tmp[64];
	if (m->value_len == 4 && memcmp(m->value, "true", 4) == 0) {
		m->is_bool = true;
		m->b = true;
		return;
	}
	if (m->value_len == 5 && memcmp(m->value, "false", 5) == 0) {
		m->is_bool = true;
		return;
	}
	if (m->value_len == 0 || m->value_len >= sizeof tmp || is_space(m->value[0]))
		return;
	memcpy(tmp, m->value, m->value_len);
	tmp[m->value_len] = '\0';
	char *end;
	if (tmp[0] != '-' && tmp[0] != '+') {
		unsigned long long u = strtoull(tmp, &end, 10);
		m->is_u64 = *end == '\0';
		m->u64 = u;
	}
	long long i = strtoll(tmp, &end, 10);
	m->is_i64 = *end == '\0';
	m->i64 = i;
	double d = strtod(tmp, &end);
	m->is_f64 = *end == '\0' && !isnan(d);
	m->f64 = d;
}

/* Parses `name[=value]` at s[0..len). Returns a reason on error. */
static const char *parse_field(const char *s, size_t len, struct field_match *m)
{
	memset(m, 0, sizeof *m);
	size_t n = name_span(s, len);
	if (n == 0)
		return "empty field name";
	m->name = s;
	m->name_len = n;
	if (n == len)
		return NULL;
	if (s[n] != '=')
		return "invalid character in field name";
	const char *v = s + n + 1;
	size_t vlen = len - n - 1;
	if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
		v++;
		vlen -= 2;
	}
	for (size_t i = 0; i < vlen; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == '"')
			return "invalid character in field value";
	m->value = v;
	m->value_len = vlen;
	classify_value(m);
	return NULL;
}

/* Length of the next comma-separated part of s[0..len). Only a field list
 * ({...}, or a double-quoted value) can hold a comma, so only braces count;
 * a ']' closes any brace left open, so that "[a{b]=info,c" still splits and
 * an unclosed '[' does not swallow the directives after it. */
static size_t split_part(const char *s, size_t len)
{
	int braces = 0;
	bool quoted = false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '"')
			quoted = !quoted;
		else if (quoted)
			continue;
		else if (c == '{')
			braces++;
		else if (c == '}' && braces > 0)
			braces--;
		else if (c == ']')
			braces = 0;
		else if (c == ',' && braces == 0)
			return i;
	}
	return len;
}

/* Parses the field list between braces. */
static const char *parse_fields(const char *s, size_t len, struct directive *d)
{
	if (len == 0)
		return "empty field list";
	size_t cap = 1;
	for (size_t i = 0; i < len; i++)
		cap += s[i] == ',';
	d->fields = calloc(cap, sizeof *d->fields);
	if (!d->fields)
		return "out of memory";
	while (len) {
		size_t n = split_part(s, len);
		const char *why = parse_field(s, n, &d->fields[d->n_fields]);
		if (why)
			return why;
		d->n_fields++;
		if (n == len)
			break;
		s += n + 1;
		len -= n + 1;
		if (len == 0)
			return "empty field name";
	}
	return NULL;
}

/* Parses `[name{fields}]` starting at s[0] == '['; *used gets its length. */
static const char *parse_selector(const char *s, size_t len, struct directive *d, size_t *used)
{
	size_t i = 1;
	size_t n = name_span(s + i, len - i);
	if (n) {
		d->span = s + i;
		d->span_len = n;
		i += n;
	}
	if (i < len && s[i] == '{') {
		size_t start = ++i;
		bool quoted = false;
		while (i < len && (quoted || s[i] != '}')) {
			if (s[i] == '"')
				quoted = !quoted;
			i++;
		}
		if (i == len)
			return "unclosed '{'";
		const char *why = parse_fields(s + start, i - start, d);
		if (why)
			return why;
		i++;
	}
	if (i == len)
		return "unclosed '['";
	if (s[i] != ']')
		return "invalid character in span selector";
	if (!d->span && !d->n_fields)
		return "empty span selector";
	d->dynamic = true;
	*used = i + 1;
	return NULL;
}

static const char *parse_directive(const char *s, size_t len, struct directive *d)
{
	memset(d, 0, sizeof *d);
	if (kf_log_level_parse(s, len, &d->level))
		return NULL;
	size_t i = name_span(s, len);
	if (i) {
		d->target = s;
		d->target_len = i;
	}
	if (i < len && s[i] == '[') {
		size_t used;
		const char *why = parse_selector(s + i, len - i, d, &used);
		if (why)
			return why;
		i += used;
	}
	if (!d->target && !d->dynamic)
		return i < len && s[i] == '=' ? "missing target before '='" : "invalid character";
	d->level = KF_LEVEL_TRACE;
	if (i == len)
		return NULL;
	if (s[i] != '=')
		return "invalid character";
	if (!kf_log_level_parse(s + i + 1, len - i - 1, &d->level))
		return "unknown level (use off, error, warn, info, debug or trace)";
	return NULL;
}

static bool push_directive(struct parser *p, const struct directive *d)
{
	struct directive **arr = d->dynamic ? &p->f->dynamics : &p->f->statics;
	size_t *n = d->dynamic ? &p->f->n_dynamics : &p->f->n_statics;
	size_t *cap = d->dynamic ? &p->cap_dynamics : &p->cap_statics;
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 8;
		struct directive *grown = realloc(*arr, ncap * sizeof **arr);
		if (!grown)
			return false;
		*arr = grown;
		*cap = ncap;
	}
	(*arr)[(*n)++] = *d;
	return true;
}

/* Parses one trimmed, non-empty directive; false only when out of memory. */
static bool add_directive(struct parser *p, const char *s, size_t len)
{
	struct directive d;
	const char *why = parse_directive(s, len, &d);
	if (why) {
		free(d.fields);
		if (strcmp(why, "out of memory") == 0)
			return false;
		p->f->n_invalid++;
		if (p->report)
			p->report(p->ctx, p->caller_spec + (s - p->f->spec), len, why);
		return true;
	}
	d.order = p->order++;
	if (!push_directive(p, &d)) {
		free(d.fields);
		return false;
	}
	return true;
}

/* Target length as a sort key: a directive with a target beats one without. */
static long target_key(const struct directive *d)
{
	return d->target ? (long)d->target_len : -1;
}

/* qsort comparators: most specific first, later first on ties. */
static int cmp_static(const void *a, const void *b)
{
	const struct directive *x = a, *y = b;
	if (target_key(x) != target_key(y))
		return target_key(x) > target_key(y) ? -1 : 1;
	return x->order > y->order ? -1 : 1;
}

static int cmp_dynamic(const void *a, const void *b)
{
	const struct directive *x = a, *y = b;
	if (target_key(x) != target_key(y))
		return target_key(x) > target_key(y) ? -1 : 1;
	if ((x->span != NULL) != (y->span != NULL))
		return x->span ? -1 : 1;
	if (x->n_fields != y->n_fields)
		return x->n_fields > y->n_fields ? -1 : 1;
	return x->order > y->order ? -1 : 1;
}

static enum kf_err parse_all(struct parser *p, const char *s, size_t len)
{
	while (len) {
		size_t n = split_part(s, len);
		const char *d = s;
		size_t dlen = n;
		while (dlen && is_space(*d)) {
			d++;
			dlen--;
		}
		while (dlen && is_space(d[dlen - 1]))
			dlen--;
		if (dlen && !add_directive(p, d, dlen))
			return KF_ENOMEM;
		if (n == len)
			break;
		s += n + 1;
		len -= n + 1;
	}
	if (p->f->n_statics + p->f->n_dynamics == 0) {
		struct directive info = { .level = KF_LEVEL_INFO };
		if (!push_directive(p, &info))
			return KF_ENOMEM;
	}
	return KF_OK;
}

enum kf_err kf_log_filter_parse(const char *spec, struct kf_log_filter **out,
				kf_log_filter_report_fn report, void *ctx)
{
	*out = NULL;
	if (!spec)
		spec = "";
	size_t len = strnlen(spec, KF_LOG_FILTER_MAX_SPEC + 1);
	if (len > KF_LOG_FILTER_MAX_SPEC)
		return KF_ETOOBIG;
	struct kf_log_filter *f = calloc(1, sizeof *f);
	if (!f || !(f->spec = strndup(spec, len))) {
		free(f);
		return KF_ENOMEM;
	}
	struct parser p = { .f = f, .caller_spec = spec, .report = report, .ctx = ctx };
	enum kf_err err = parse_all(&p, f->spec, len);
	if (err) {
		kf_log_filter_free(f);
		return err;
	}
	if (f->n_statics)
		qsort(f->statics, f->n_statics, sizeof *f->statics, cmp_static);
	if (f->n_dynamics)
		qsort(f->dynamics, f->n_dynamics, sizeof *f->dynamics, cmp_dynamic);
	for (size_t i = 0; i < f->n_dynamics; i++)
		if (f->dynamics[i].level > f->dynamic_max)
			f->dynamic_max = f->dynamics[i].level;
	*out = f;
	return KF_OK;
}

void kf_log_filter_free(struct kf_log_filter *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n_statics; i++)
		free(f->statics[i].fields);
	for (size_t i = 0; i < f->n_dynamics; i++)
		free(f->dynamics[i].fields);
	free(f->statics);
	free(f->dynamics);
	free(f->spec);
	free(f);
}

size_t kf_log_filter_directive_count(const struct kf_log_filter *f)
{
	return f->n_statics + f->n_dynamics;
}

size_t kf_log_filter_invalid_count(const struct kf_log_filter *f)
{
	return f->n_invalid;
}

/* ---- evaluation --------------------------------------------------------- */

static bool target_matches(const struct directive *d, const char *target)
{
	return !d->target || strncmp(target, d->target, d->target_len) == 0;
}

static bool name_equals(const char *a, size_t alen, const char *b)
{
	return strlen(b) == alen && memcmp(a, b, alen) == 0;
}

enum kf_log_level kf_log_filter_static_level(const struct kf_log_filter *f, const char *target)
{
	for (size_t i = 0; i < f->n_statics; i++)
		if (target_matches(&f->statics[i], target))
			return f->statics[i].level;
	return KF_LEVEL_OFF;
}

enum kf_log_level kf_log_filter_dynamic_max(const struct kf_log_filter *f)
{
	return f->dynamic_max;
}

bool kf_log_filter_has_dynamic(const struct kf_log_filter *f)
{
	return f->n_dynamics != 0;
}

static bool value_matches(const struct field_match *m, const struct kf_field *fl)
{
	switch (fl->type) {
	case KF_FIELD_STR:
		return fl->len == m->value_len && memcmp(fl->v.str, m->value, m->value_len) == 0;
	case KF_FIELD_U64:
		return (m->is_u64 && m->u64 == fl->v.u64) ||
		       (m->is_f64 && !m->is_u64 && m->f64 == (double)fl->v.u64);
	case KF_FIELD_I64:
		return (m->is_i64 && m->i64 == fl->v.i64) ||
		       (m->is_f64 && !m->is_i64 && m->f64 == (double)fl->v.i64);
	case KF_FIELD_F64:
		return m->is_f64 && m->f64 == fl->v.f64;
	case KF_FIELD_BOOL:
		return m->is_bool && m->b == fl->v.b;
	case KF_FIELD_EMPTY:
		return false;
	}
	return false;
}

/* The span field named by `m`, or NULL. */
static const struct kf_field *find_field(const struct field_match *m,
					 const struct kf_field *fields, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fields[i].key && name_equals(m->name, m->name_len, fields[i].key))
			return &fields[i];
	return NULL;
}

static bool names_span(const struct directive *d, const char *target, const char *name,
		       const struct kf_field *fields, size_t n)
{
	if (!target_matches(d, target))
		return false;
	if (d->span && !name_equals(d->span, d->span_len, name))
		return false;
	for (size_t i = 0; i < d->n_fields; i++)
		if (!find_field(&d->fields[i], fields, n))
			return false;
	return true;
}

static bool matches_span(const struct directive *d, const char *target, const char *name,
			 const struct kf_field *fields, size_t n)
{
	if (!names_span(d, target, name, fields, n))
		return false;
	for (size_t i = 0; i < d->n_fields; i++) {
		const struct field_match *m = &d->fields[i];
		if (m->value && !value_matches(m, find_field(m, fields, n)))
			return false;
	}
	return true;
}

int kf_log_filter_span_level(const struct kf_log_filter *f, const char *target, const char *name,
			     const struct kf_field *fields, size_t n)
{
	for (size_t i = 0; i < f->n_dynamics; i++)
		if (matches_span(&f->dynamics[i], target, name, fields, n))
			return (int)f->dynamics[i].level;
	return -1;
}

bool kf_log_filter_names_span(const struct kf_log_filter *f, const char *target, const char *name,
			      const struct kf_field *fields, size_t n)
{
	for (size_t i = 0; i < f->n_dynamics; i++)
		if (names_span(&f->dynamics[i], target, name, fields, n))
			return true;
	return false;
}

bool kf_log_filter_enabled(const struct kf_log_filter *f, enum kf_log_level level,
			   const char *target, const struct kf_span_info *const *spans,
			   size_t n_spans)
{
	if (level == KF_LEVEL_OFF)
		return false;
	if (kf_log_filter_static_level(f, target) >= level)
		return true;
	if (f->dynamic_max < level)
		return false;
	for (size_t i = 0; i < n_spans; i++) {
		const struct kf_span_info *s = spans[i];
		if (kf_log_filter_span_level(f, s->target, s->name, s->fields, s->n_fields) >=
		    (int)level)
			return true;
	}
	return false;
}
