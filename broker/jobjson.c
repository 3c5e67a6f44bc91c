/* jobjson.c — params/result <-> JSON, with a small JSON reader. */
#include "broker/jobjson.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"

/* ---- arena ------------------------------------------------------------------ */

struct kf__jchunk {
	struct kf__jchunk *next;
	size_t used, cap;
	max_align_t data[];
};

void *kf_jarena_alloc(struct kf_jarena *a, size_t n)
{
	struct kf__jchunk *c = a->chunks;
	size_t need = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);

	if (!c || c->cap - c->used < need) {
		size_t cap = need > 4096 ? need : 4096;

		if (!(c = malloc(sizeof(*c) + cap)))
			return NULL;
		c->next = a->chunks;
		c->used = 0;
		c->cap = cap;
		a->chunks = c;
	}
	void *p = (char *)c->data + c->used;
	c->used += need;
	memset(p, 0, n);
	return p;
}

void kf_jarena_release(struct kf_jarena *a)
{
	while (a->chunks) {
		struct kf__jchunk *next = a->chunks->next;

		free(a->chunks);
		a->chunks = next;
	}
}

/* ---- writing ------------------------------------------------------------------ */

static void key(struct kf_strbuf *sb, const char *k, bool *first)
{
	if (!*first)
		kf_strbuf_addch(sb, ',');
	*first = false;
	kf_json_add_cstr(sb, k);
	kf_strbuf_addch(sb, ':');
}

static void named_object(struct kf_strbuf *sb, const struct kf_msg_named_value *v, size_t n)
{
	bool first = true;

	kf_strbuf_addch(sb, '{');
	for (size_t i = 0; i < n; i++) {
		key(sb, v[i].name ? v[i].name : "", &first);
		kf_json_add_double(sb, v[i].value);
	}
	kf_strbuf_addch(sb, '}');
}

enum kf_err kf_jobjson_params(const struct kf_msg_job_params *p, struct kf_strbuf *sb)
{
	bool first = true;

	kf_strbuf_addch(sb, '{');
	key(sb, "corpus", &first);
	kf_json_add_cstr(sb, p->corpus ? p->corpus : "");
	key(sb, "board", &first);
	kf_json_add_cstr(sb, kf_msg_board_name(p->board));
	if (p->start_layout) {
		key(sb, "start_layout", &first);
		kf_json_add_cstr(sb, p->start_layout);
	}
	key(sb, "steps", &first);
	kf_strbuf_addf(sb, "%llu", (unsigned long long)p->steps);
	key(sb, "seed", &first);
	kf_strbuf_addf(sb, "%llu", (unsigned long long)p->seed);
	key(sb, "start_temp", &first);
	kf_json_add_double(sb, p->start_temp);
	key(sb, "restarts", &first);
	kf_strbuf_addf(sb, "%u", p->restarts);
	if (p->pinned) {
		key(sb, "pinned", &first);
		kf_json_add_cstr(sb, p->pinned);
	}
	key(sb, "weights", &first);
	named_object(sb, p->weights, p->n_weights);
	key(sb, "deadline_ms", &first);
	kf_strbuf_addf(sb, "%llu", (unsigned long long)p->deadline_ms);
	key(sb, "max_attempts", &first);
	kf_strbuf_addf(sb, "%u", p->max_attempts);
	key(sb, "priority", &first);
	kf_strbuf_addf(sb, "%d", p->priority);
	kf_strbuf_addch(sb, '}');
	return sb->oom ? KF_ENOMEM : KF_OK;
}

enum kf_err kf_jobjson_result(const struct kf_msg_job_result *r, struct kf_strbuf *sb)
{
	bool first = true;

	kf_strbuf_addch(sb, '{');
	key(sb, "layout", &first);
	kf_json_add_cstr(sb, r->layout ? r->layout : "");
	key(sb, "score", &first);
	kf_json_add_double(sb, r->cost);
	key(sb, "stats", &first);
	named_object(sb, r->stats, r->n_stats);
	key(sb, "finger_usage", &first);
	kf_strbuf_addch(sb, '[');
	for (size_t i = 0; i < KF_MSG_FINGERS; i++) {
		if (i)
			kf_strbuf_addch(sb, ',');
		kf_json_add_double(sb, r->finger_usage[i]);
	}
	kf_strbuf_addch(sb, ']');
	key(sb, "steps", &first);
	kf_strbuf_addf(sb, "%llu", (unsigned long long)r->steps);
	key(sb, "steps_per_sec", &first);
	kf_json_add_double(sb, r->steps_per_sec);
	key(sb, "elapsed_ms", &first);
	kf_strbuf_addf(sb, "%llu", (unsigned long long)r->elapsed_ms);
	kf_strbuf_addch(sb, '}');
	return sb->oom ? KF_ENOMEM : KF_OK;
}

/* ---- reading --------------------------------------------------------------------- */

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jv {
	enum jtype t;
	const char *s;        /* J_STR: unescaped, NUL-terminated; J_NUM: the text */
	bool b;
	const char *key;      /* member of an object */
	struct jv *first;     /* J_ARR, J_OBJ children */
	struct jv *next;
};

struct jparser {
	const char *p;
	struct kf_jarena *a;
	enum kf_err err;
};

#define MAX_DEPTH 16

static void ws(struct jparser *jp)
{
	while (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' || *jp->p == '\r')
		jp->p++;
}

static struct jv *fail(struct jparser *jp, enum kf_err err)
{
	if (!jp->err)
		jp->err = err;
	return NULL;
}

static int hex4(const char *s)
{
	int v = 0;

	for (int i = 0; i < 4; i++) {
		char c = s[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
			c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xC0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xE0 | cp >> 12);
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | cp >> 18);
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	o[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* One \uXXXX escape (or a surrogate pair) at jp->p (after the 'u');
 * \u0000 and lone surrogates become '?' (proto strings hold no NUL). */
static unsigned unicode_escape(struct jparser *jp)
{
	int hi = hex4(jp->p), lo;

	if (hi < 0)
		return (unsigned)-1;
	jp->p += 4;
	if (hi >= 0xD800 && hi <= 0xDBFF && jp->p[0] == '\\' && jp->p[1] == 'u' &&
	    (lo = hex4(jp->p + 2)) >= 0xDC00 && lo <= 0xDFFF) {
		jp->p += 6;
		return 0x10000u + (((unsigned)hi - 0xD800u) << 10) + ((unsigned)lo - 0xDC00u);
	}
	if (hi == 0 || (hi >= 0xD800 && hi <= 0xDFFF))
		return '?';
	return (unsigned)hi;
}

static const char *string(struct jparser *jp)
{
	const char *start = ++jp->p, *q;
	char *out, *o;

	for (q = start; *q && *q != '"'; q++)
		if (*q == '\\' && q[1])
			q++;
	if (*q != '"')
		return (const char *)fail(jp, KF_EMALFORMED);
	/* Unescaped text is never longer than the escaped (a 6-byte \u escape
	 * yields at most 3 bytes; a 12-byte pair yields 4). */
	if (!(o = out = kf_jarena_alloc(jp->a, (size_t)(q - start) + 1)))
		return (const char *)fail(jp, KF_ENOMEM);
	while (*jp->p != '"') {
		char c = *jp->p++;
		unsigned cp;

		if (c != '\\') {
			*o++ = c;
			continue;
		}
		c = *jp->p++;
		switch (c) {
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u':
			if ((cp = unicode_escape(jp)) == (unsigned)-1)
				return (const char *)fail(jp, KF_EMALFORMED);
			o += put_utf8(o, cp);
			break;
		default: *o++ = c; break; /* \" \\ \/ */
		}
	}
	jp->p++;
	*o = '\0';
	return out;
}

static struct jv *value(struct jparser *jp, int depth);

/* Members of an array or object up to `close`. */
static struct jv *container(struct jparser *jp, struct jv *v, char close, int depth)
{
	struct jv **tail = &v->first;

	jp->p++;
	ws(jp);
	if (*jp->p == close) {
		jp->p++;
		return v;
	}
	for (;;) {
		const char *k = NULL;
		struct jv *child;

		ws(jp);
		if (close == '}') {
			if (*jp->p != '"' || !(k = string(jp)))
				return fail(jp, KF_EMALFORMED);
			ws(jp);
			if (*jp->p++ != ':')
				return fail(jp, KF_EMALFORMED);
		}
		if (!(child = value(jp, depth + 1)))
			return NULL;
		child->key = k;
		*tail = child;
		tail = &child->next;
		ws(jp);
		if (*jp->p == ',') {
			jp->p++;
			continue;
		}
		if (*jp->p++ != close)
			return fail(jp, KF_EMALFORMED);
		return v;
	}
}

static struct jv *value(struct jparser *jp, int depth)
{
	struct jv *v;

	if (depth > MAX_DEPTH)
		return fail(jp, KF_EMALFORMED);
	if (!(v = kf_jarena_alloc(jp->a, sizeof(*v))))
		return fail(jp, KF_ENOMEM);
	ws(jp);
	switch (*jp->p) {
	case '{': v->t = J_OBJ; return container(jp, v, '}', depth);
	case '[': v->t = J_ARR; return container(jp, v, ']', depth);
	case '"':
		v->t = J_STR;
		return (v->s = string(jp)) ? v : NULL;
	case 't': case 'f': case 'n': {
		static const char *const words[] = { "true", "false", "null" };
		for (int i = 0; i < 3; i++) {
			size_t n = strlen(words[i]);
			if (!strncmp(jp->p, words[i], n)) {
				jp->p += n;
				v->t = i == 2 ? J_NULL : J_BOOL;
				v->b = i == 0;
				return v;
			}
		}
		return fail(jp, KF_EMALFORMED);
	}
	default: {
		const char *start = jp->p;
		char *text;

		while (strchr("+-0123456789.eE", *jp->p) && *jp->p)
			jp->p++;
		if (jp->p == start)
			return fail(jp, KF_EMALFORMED);
		if (!(text = kf_jarena_alloc(jp->a, (size_t)(jp->p - start) + 1)))
			return fail(jp, KF_ENOMEM);
		memcpy(text, start, (size_t)(jp->p - start));
		v->t = J_NUM;
		v->s = text;
		return v;
	}
	}
}

static enum kf_err parse_object(const char *json, struct kf_jarena *a, struct jv **out)
{
	struct jparser jp = { .p = json ? json : "", .a = a };
	struct jv *v = value(&jp, 1);

	if (v) {
		ws(&jp);
		if (*jp.p || v->t != J_OBJ)
			jp.err = KF_EMALFORMED;
	}
	*out = jp.err ? NULL : v;
	return jp.err ? jp.err : (v ? KF_OK : KF_EMALFORMED);
}

/* ---- typed access: a wrong type leaves the zero value ----------------------- */

static double num_f64(const struct jv *v)
{
	return v && v->t == J_NUM ? strtod(v->s, NULL) : v && v->t == J_NULL ? NAN : 0.0;
}

static uint64_t num_u64(const struct jv *v)
{
	if (!v || v->t != J_NUM || v->s[0] == '-')
		return 0;
	if (strpbrk(v->s, ".eE")) {
		double d = strtod(v->s, NULL);
		return d >= 0 && d < 18446744073709551616.0 ? (uint64_t)d : 0;
	}
	errno = 0;
	unsigned long long u = strtoull(v->s, NULL, 10);
	return errno ? 0 : (uint64_t)u;
}

static int64_t num_i64(const struct jv *v)
{
	if (!v || v->t != J_NUM)
		return 0;
	errno = 0;
	long long i = strtoll(v->s, NULL, 10);
	return errno ? 0 : (int64_t)i;
}

static const char *str_or_null(const struct jv *v)
{
	return v && v->t == J_STR ? v->s : NULL;
}

static const struct jv *member(const struct jv *obj, const char *k)
{
	const struct jv *found = NULL;

	for (const struct jv *c = obj->first; c; c = c->next)
		if (!strcmp(c->key, k))
			found = c; /* the last duplicate wins, as in jsonb */
	return found;
}

static enum kf_err named_values(const struct jv *obj, struct kf_jarena *a,
	const struct kf_msg_named_value **out, size_t *n_out)
{
	struct kf_msg_named_value *vals;
	size_t n = 0;

	*out = NULL;
	*n_out = 0;
	if (!obj || obj->t != J_OBJ)
		return KF_OK;
	for (const struct jv *c = obj->first; c; c = c->next)
		n++;
	if (n > KF_MSG_MAX_NAMED)
		n = KF_MSG_MAX_NAMED;
	if (!n)
		return KF_OK;
	if (!(vals = kf_jarena_alloc(a, n * sizeof(*vals))))
		return KF_ENOMEM;
	n = 0;
	for (const struct jv *c = obj->first; c && n < KF_MSG_MAX_NAMED; c = c->next, n++) {
		vals[n].name = c->key;
		vals[n].value = num_f64(c);
	}
	*out = vals;
	*n_out = n;
	return KF_OK;
}

static uint32_t clamp_u32(uint64_t v)
{
	return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

enum kf_err kf_jobjson_parse_params(const char *json, struct kf_jarena *a,
	struct kf_msg_job_params *out)
{
	const char *board;
	struct jv *o;
	enum kf_err err;
	int64_t pr;

	memset(out, 0, sizeof(*out));
	out->corpus = "";
	if ((err = parse_object(json, a, &o)))
		return err;
	if (str_or_null(member(o, "corpus")))
		out->corpus = member(o, "corpus")->s;
	if ((board = str_or_null(member(o, "board"))) &&
	    kf_msg_board_parse(board, &out->board) != KF_OK)
		out->board = KF_MSG_BOARD_ANSI;
	out->start_layout = str_or_null(member(o, "start_layout"));
	out->steps = num_u64(member(o, "steps"));
	out->seed = num_u64(member(o, "seed"));
	out->start_temp = num_f64(member(o, "start_temp"));
	if (isnan(out->start_temp))
		out->start_temp = 0;
	out->restarts = clamp_u32(num_u64(member(o, "restarts")));
	out->pinned = str_or_null(member(o, "pinned"));
	out->deadline_ms = num_u64(member(o, "deadline_ms"));
	out->max_attempts = clamp_u32(num_u64(member(o, "max_attempts")));
	pr = num_i64(member(o, "priority"));
	out->priority = pr > INT32_MAX ? INT32_MAX : pr < INT32_MIN ? INT32_MIN : (int32_t)pr;
	return named_values(member(o, "weights"), a, &out->weights, &out->n_weights);
}

enum kf_err kf_jobjson_parse_result(const char *json, struct kf_jarena *a,
	struct kf_msg_job_result *out)
{
	const struct jv *fu;
	struct jv *o;
	enum kf_err err;
	size_t i = 0;

	memset(out, 0, sizeof(*out));
	out->layout = "";
	if ((err = parse_object(json, a, &o)))
		return err;
	if (str_or_null(member(o, "layout")))
		out->layout = member(o, "layout")->s;
	out->cost = num_f64(member(o, "score"));
	if ((fu = member(o, "finger_usage")) && fu->t == J_ARR)
		for (const struct jv *c = fu->first; c && i < KF_MSG_FINGERS; c = c->next)
			out->finger_usage[i++] = num_f64(c);
	out->steps = num_u64(member(o, "steps"));
	out->steps_per_sec = num_f64(member(o, "steps_per_sec"));
	out->elapsed_ms = num_u64(member(o, "elapsed_ms"));
	return named_values(member(o, "stats"), a, &out->stats, &out->n_stats);
}
