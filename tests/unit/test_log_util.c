/* test_log_util.c — see test_log_util.h. */
#include "test_log_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- tiny JSON reader ----------------------------------------------------- */

struct tj_parser {
	const char *p, *end;
	int depth;
};

static struct tj *tj_value(struct tj_parser *ps);

static void tj_ws(struct tj_parser *ps)
{
	while (ps->p < ps->end && strchr(" \t\r\n", *ps->p))
		ps->p++;
}

static bool tj_lit(struct tj_parser *ps, const char *lit)
{
	size_t n = strlen(lit);
	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, lit, n) != 0)
		return false;
	ps->p += n;
	return true;
}

static void put_utf8(char *out, size_t *len, unsigned cp)
{
	if (cp < 0x80) {
		out[(*len)++] = (char)cp;
	} else if (cp < 0x800) {
		out[(*len)++] = (char)(0xC0 | cp >> 6);
		out[(*len)++] = (char)(0x80 | (cp & 0x3F));
	} else if (cp < 0x10000) {
		out[(*len)++] = (char)(0xE0 | cp >> 12);
		out[(*len)++] = (char)(0x80 | (cp >> 6 & 0x3F));
		out[(*len)++] = (char)(0x80 | (cp & 0x3F));
	} else {
		out[(*len)++] = (char)(0xF0 | cp >> 18);
		out[(*len)++] = (char)(0x80 | (cp >> 12 & 0x3F));
		out[(*len)++] = (char)(0x80 | (cp >> 6 & 0x3F));
		out[(*len)++] = (char)(0x80 | (cp & 0x3F));
	}
}

static bool tj_hex4(struct tj_parser *ps, unsigned *cp)
{
	if (ps->end - ps->p < 4)
		return false;
	*cp = 0;
	for (int i = 0; i < 4; i++) {
		char c = *ps->p++;
		unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0') :
			     c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10) :
			     c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16;
		if (d == 16)
			return false;
		*cp = *cp * 16 + d;
	}
	return true;
}

static bool tj_escape(struct tj_parser *ps, char *out, size_t *len)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	char c = *ps->p++;
	const char *hit = strchr(from, c);
	if (c && hit) {
		out[(*len)++] = to[hit - from];
		return true;
	}
	unsigned cp, lo;
	if (c != 'u' || !tj_hex4(ps, &cp))
		return false;
	if (cp >= 0xD800 && cp < 0xDC00) {
		if (!tj_lit(ps, "\\u") || !tj_hex4(ps, &lo) || lo < 0xDC00 || lo > 0xDFFF)
			return false;
		cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
	}
	put_utf8(out, len, cp);
	return true;
}

static char *tj_string(struct tj_parser *ps, size_t *out_len)
{
	if (ps->p >= ps->end || *ps->p != '"')
		return NULL;
	ps->p++;
	char *out = malloc((size_t)(ps->end - ps->p) + 1);
	size_t len = 0;
	while (ps->p < ps->end && *ps->p != '"') {
		unsigned char c = (unsigned char)*ps->p;
		if (c < 0x20)
			goto fail;
		if (c == '\\') {
			ps->p++;
			if (ps->p >= ps->end || !tj_escape(ps, out, &len))
				goto fail;
		} else {
			out[len++] = (char)c;
			ps->p++;
		}
	}
	if (ps->p >= ps->end)
		goto fail;
	ps->p++;
	out[len] = '\0';
	*out_len = len;
	return out;
fail:
	free(out);
	return NULL;
}

static bool tj_push(struct tj *v, char *key, struct tj *item)
{
	v->items = realloc(v->items, (v->n + 1) * sizeof *v->items);
	if (v->type == TJ_OBJECT) {
		v->keys = realloc(v->keys, (v->n + 1) * sizeof *v->keys);
		v->keys[v->n] = key;
	}
	v->items[v->n++] = item;
	return true;
}

static struct tj *tj_container(struct tj_parser *ps, struct tj *v, char close)
{
	ps->p++;
	tj_ws(ps);
	if (ps->p < ps->end && *ps->p == close) {
		ps->p++;
		return v;
	}
	for (;;) {
		char *key = NULL;
		size_t klen;
		tj_ws(ps);
		if (v->type == TJ_OBJECT) {
			if (!(key = tj_string(ps, &klen)))
				goto fail;
			tj_ws(ps);
			if (!tj_lit(ps, ":")) {
				free(key);
				goto fail;
			}
		}
		struct tj *item = tj_value(ps);
		if (!item) {
			free(key);
			goto fail;
		}
		tj_push(v, key, item);
		tj_ws(ps);
		if (tj_lit(ps, ","))
			continue;
		if (ps->p < ps->end && *ps->p == close) {
			ps->p++;
			return v;
		}
		goto fail;
	}
fail:
	tj_free(v);
	return NULL;
}

static struct tj *tj_number(struct tj_parser *ps, struct tj *v)
{
	const char *start = ps->p;
	while (ps->p < ps->end && strchr("+-0123456789.eE", *ps->p))
		ps->p++;
	v->type = TJ_NUMBER;
	v->text = strndup(start, (size_t)(ps->p - start));
	char *endp;
	v->num = strtod(v->text, &endp);
	if (ps->p == start || *endp) {
		tj_free(v);
		return NULL;
	}
	return v;
}

static struct tj *tj_value(struct tj_parser *ps)
{
	tj_ws(ps);
	if (ps->p >= ps->end || ++ps->depth > 64)
		return NULL;
	struct tj *v = calloc(1, sizeof *v);
	struct tj *res = v;
	char c = *ps->p;
	if (c == '{' || c == '[') {
		v->type = c == '{' ? TJ_OBJECT : TJ_ARRAY;
		res = tj_container(ps, v, c == '{' ? '}' : ']');
	} else if (c == '"') {
		v->type = TJ_STRING;
		if (!(v->text = tj_string(ps, &v->len)))
			res = NULL;
	} else if (tj_lit(ps, "true") || tj_lit(ps, "false")) {
		v->type = TJ_BOOL;
		v->b = ps->p[-1] == 'e' && ps->p[-2] == 'u';
	} else if (tj_lit(ps, "null")) {
		v->type = TJ_NULL;
	} else {
		res = tj_number(ps, v);
		v = NULL;
	}
	if (!res)
		tj_free(v);
	ps->depth--;
	return res;
}

struct tj *tj_parse(const char *text, size_t len)
{
	struct tj_parser ps = { text, text + len, 0 };
	struct tj *v = tj_value(&ps);
	tj_ws(&ps);
	if (v && ps.p != ps.end) {
		tj_free(v);
		return NULL;
	}
	return v;
}

void tj_free(struct tj *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n; i++) {
		if (v->keys)
			free(v->keys[i]);
		tj_free(v->items[i]);
	}
	free(v->keys);
	free(v->items);
	free(v->text);
	free(v);
}

struct tj *tj_get(const struct tj *obj, const char *key)
{
	if (!obj || obj->type != TJ_OBJECT)
		return NULL;
	for (size_t i = 0; i < obj->n; i++)
		if (strcmp(obj->keys[i], key) == 0)
			return obj->items[i];
	return NULL;
}

struct tj *tj_path(const struct tj *v, const char *path)
{
	char buf[256];
	snprintf(buf, sizeof buf, "%s", path);
	struct tj *cur = (struct tj *)v;
	for (char *save, *part = strtok_r(buf, ".", &save); part && cur;
	     part = strtok_r(NULL, ".", &save)) {
		if (cur->type == TJ_ARRAY) {
			size_t i = strtoul(part, NULL, 10);
			cur = i < cur->n ? cur->items[i] : NULL;
		} else {
			cur = tj_get(cur, part);
		}
	}
	return cur;
}

/* ---- captured output --------------------------------------------------------- */

int cap_open(void)
{
	return memfd_create("kf-log-test", 0);
}

const char *cap_read(int fd)
{
	static char buf[1 << 20];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

void cap_reset(int fd)
{
	if (ftruncate(fd, 0) != 0)
		abort();
	lseek(fd, 0, SEEK_SET);
}

const char *cap_line(const char *text, size_t i)
{
	static char line[1 << 16];
	for (; i > 0; i--) {
		text = strchr(text, '\n');
		if (!text)
			return NULL;
		text++;
	}
	const char *nl = strchr(text, '\n');
	if (!nl)
		return NULL;
	snprintf(line, sizeof line, "%.*s", (int)(nl - text), text);
	return line;
}

size_t cap_count_lines(const char *text)
{
	size_t n = 0;
	for (; *text; text++)
		n += *text == '\n';
	return n;
}

/* ---- recording sink ---------------------------------------------------------- */

void rec_sink(void *ctx, const struct kf_log_record *r)
{
	struct rec *rec = ctx;
	if (rec->n >= REC_MAX)
		return;
	struct rec_event *ev = &rec->ev[rec->n++];
	memset(ev, 0, sizeof *ev);
	ev->level = r->level;
	snprintf(ev->target, sizeof ev->target, "%s", r->target);
	snprintf(ev->message, sizeof ev->message, "%s", r->message);
	for (size_t i = 0; i < r->n_fields && i < 8; i++) {
		ev->fields[i] = r->fields[i];
		if (r->fields[i].type == KF_FIELD_STR) {
			snprintf(ev->strs[i], sizeof ev->strs[i], "%.*s", (int)r->fields[i].len,
				 r->fields[i].v.str);
			ev->fields[i].v.str = ev->strs[i];
		}
		ev->n_fields++;
	}
	for (size_t i = 0; i < r->n_spans && i < 8; i++) {
		snprintf(ev->span_names[i], sizeof ev->span_names[i], "%s", r->spans[i]->name);
		ev->n_spans++;
	}
}

const struct kf_field *rec_field(const struct rec_event *ev, const char *key)
{
	for (size_t i = 0; i < ev->n_fields; i++)
		if (strcmp(ev->fields[i].key, key) == 0)
			return &ev->fields[i];
	return NULL;
}
