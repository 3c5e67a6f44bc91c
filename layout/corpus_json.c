/*
 * corpus_json.c — import of the Oxeylyzer n-gram JSON format.
 *
 * The document is one object. Known keys:
 *   "name" | "language"                string
 *   "char_total", "bigram_total",      non-negative integers (0 or absent:
 *   "skipgram_total", "trigram_total"    unknown)
 *   "chars" | "characters"             { "e": 11.2, ... }   1 character per key
 *   "bigrams", "skipgrams"             { "th": 2.98, ... }  2 characters per key
 *   "trigrams"                         { "the": 1.9, ... }  3 characters per key
 * Values of the maps are percentages in [0, 100]. Every other key
 * (skipgrams2, skipgrams3, ...) is skipped, whatever its value. The four maps
 * are required; an n-gram may only use characters of "chars".
 *
 * A small strict reader of RFC 8259 written for this purpose: no allocation
 * per value, nesting bounded by MAX_DEPTH, strings checked for UTF-8 and
 * escapes, numbers checked against the JSON grammar before strtod_l() in the
 * C locale converts them (correctly rounded, whatever the program's locale).
 * The first error stops the parse and is reported as
 * "origin:LINE:COLUMN: message (byte OFFSET)".
 */
#include "layout/corpus.h"
#include "layout/corpus_internal.h"

#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/parse.h"

#define MAX_DEPTH 64
#define MAX_NUMBER_LEN 64
/* Codepoints of a string kept for inspection; longer strings are counted. */
#define STR_KEEP 64

struct raw_gram {
	uint32_t cp[3];
	double freq;
};

struct raw_list {
	struct raw_gram *v;
	size_t n, cap;
	bool seen;
};

enum { MAP_CHARS, MAP_BIGRAMS, MAP_SKIPGRAMS, MAP_TRIGRAMS, NMAPS };

static const struct map_info {
	const char *label;   /* key used in messages */
	const char *what;    /* one entry, for messages */
	unsigned n;          /* characters per key */
} map_info[NMAPS] = {
	[MAP_CHARS] = { "chars", "character", 1 },
	[MAP_BIGRAMS] = { "bigrams", "bigram", 2 },
	[MAP_SKIPGRAMS] = { "skipgrams", "skipgram", 2 },
	[MAP_TRIGRAMS] = { "trigrams", "trigram", 3 },
};

enum field_kind { FIELD_NAME, FIELD_TOTAL, FIELD_MAP };

static const struct field {
	const char *key;
	enum field_kind kind;
	unsigned slot; /* index into totals[] or maps[] */
} fields[] = {
	{ "name", FIELD_NAME, 0 },
	{ "language", FIELD_NAME, 0 },
	{ "char_total", FIELD_TOTAL, 0 },
	{ "bigram_total", FIELD_TOTAL, 1 },
	{ "skipgram_total", FIELD_TOTAL, 2 },
	{ "trigram_total", FIELD_TOTAL, 3 },
	{ "chars", FIELD_MAP, MAP_CHARS },
	{ "characters", FIELD_MAP, MAP_CHARS },
	{ "bigrams", FIELD_MAP, MAP_BIGRAMS },
	{ "skipgrams", FIELD_MAP, MAP_SKIPGRAMS },
	{ "trigrams", FIELD_MAP, MAP_TRIGRAMS },
};

struct parser {
	const unsigned char *s;
	size_t len, pos;
	const char *origin;
	struct kf_strbuf *why;
	enum kf_err err;
	locale_t c_locale;
	uint32_t str[STR_KEEP]; /* the last string read, first STR_KEEP codepoints */
	size_t str_len;         /* its length in codepoints */
	bool have_name, seen_name, seen_total[4];
	uint64_t totals[4];
	struct raw_list maps[NMAPS];
};

/* ---- errors -------------------------------------------------------------- */

static bool fail_at(struct parser *p, size_t pos, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static bool fail_at(struct parser *p, size_t pos, const char *fmt, ...)
{
	if (p->err)
		return false;
	p->err = KF_ECORPUS;
	if (!p->why)
		return false;
	size_t line = 1, col = 1;
	for (size_t i = 0; i < pos && i < p->len; i++) {
		if (p->s[i] == '\n')
			line++, col = 1;
		else
			col++;
	}
	va_list ap;
	va_start(ap, fmt);
	kf_strbuf_addf(p->why, "%s:%zu:%zu: ", p->origin, line, col);
	kf_strbuf_vaddf(p->why, fmt, ap);
	kf_strbuf_addf(p->why, " (byte %zu)", pos);
	va_end(ap);
	return false;
}

static bool fail_oom(struct parser *p)
{
	if (!p->err)
		p->err = KF_ENOMEM;
	return false;
}

/* Describes the byte at pos for "unexpected ..." messages. */
static const char *describe_byte(struct parser *p, size_t pos, char buf[16])
{
	if (pos >= p->len)
		return "end of input";
	unsigned char c = p->s[pos];
	if (c > 0x20 && c < 0x7F)
		snprintf(buf, 16, "'%c'", c);
	else
		snprintf(buf, 16, "byte 0x%02X", c);
	return buf;
}

static bool fail_unexpected(struct parser *p, const char *expected)
{
	char buf[16];
	return fail_at(p, p->pos, "expected %s, found %s", expected, describe_byte(p, p->pos, buf));
}

/* ---- lexing -------------------------------------------------------------- */

static void skip_ws(struct parser *p)
{
	while (p->pos < p->len) {
		unsigned char c = p->s[p->pos];
		if (c != ' ' && c != '\n' && c != '\t' && c != '\r')
			break;
		p->pos++;
	}
}

static bool peek(struct parser *p, unsigned char c)
{
	return p->pos < p->len && p->s[p->pos] == c;
}

static bool expect(struct parser *p, unsigned char c, const char *what)
{
	skip_ws(p);
	if (!peek(p, c))
		return fail_unexpected(p, what);
	p->pos++;
	return true;
}

static bool read_hex4(struct parser *p, size_t at, uint32_t *out)
{
	uint32_t v = 0;
	for (size_t i = at; i < at + 4; i++) {
		int h = i < p->len ? kf_hex_digit(p->s[i]) : -1;
		if (h < 0)
			return fail_at(p, at - 2, "invalid \\u escape (four hex digits expected)");
		v = v << 4 | (uint32_t)h;
	}
	*out = v;
	return true;
}

/* An escape at p->s[*i] == '\\'; advances *i past it. */
static bool read_escape(struct parser *p, size_t *i, uint32_t *cp)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	size_t at = *i;
	if (at + 1 >= p->len)
		return fail_at(p, at, "unterminated escape");
	unsigned char e = p->s[at + 1];
	const char *hit = e ? strchr(from, e) : NULL;
	if (hit) {
		*cp = (unsigned char)to[hit - from];
		*i = at + 2;
		return true;
	}
	if (e != 'u')
		return fail_at(p, at, "invalid escape '\\%c'", e >= 0x20 && e < 0x7F ? e : '?');
	uint32_t hi = 0, lo = 0; /* set by read_hex4; GCC -O3 cannot see it */
	if (!read_hex4(p, at + 2, &hi))
		return false;
	*i = at + 6;
	if (hi >= 0xDC00 && hi <= 0xDFFF)
		return fail_at(p, at, "lone low surrogate \\u%04X", hi);
	if (hi < 0xD800 || hi > 0xDBFF) {
		*cp = hi;
		return true;
	}
	if (at + 7 >= p->len || p->s[at + 6] != '\\' || p->s[at + 7] != 'u')
		return fail_at(p, at, "high surrogate \\u%04X not followed by a low one", hi);
	if (!read_hex4(p, at + 8, &lo))
		return false;
	if (lo < 0xDC00 || lo > 0xDFFF)
		return fail_at(p, at, "high surrogate \\u%04X not followed by a low one", hi);
	*cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
	*i = at + 12;
	return true;
}

/* Reads the string at p->pos (which must be '"') into p->str/p->str_len. */
static bool read_string(struct parser *p)
{
	size_t start = p->pos, i = start + 1, n = 0;
	const unsigned char *s = p->s;
	for (;;) {
		if (i >= p->len)
			return fail_at(p, start, "unterminated string");
		unsigned char c = s[i];
		uint32_t cp;
		if (c == '"') {
			i++;
			break;
		}
		if (c >= 0x20 && c < 0x80 && c != '\\') {
			cp = c;
			i++;
		} else if (c == '\\') {
			if (!read_escape(p, &i, &cp))
				return false;
		} else if (c < 0x20) {
			return fail_at(p, i, "control character 0x%02X in a string (escape it)", c);
		} else {
			int k = kf__utf8_decode(s + i, p->len - i, &cp);
			if (k <= 0)
				return fail_at(p, i, "invalid UTF-8 in a string");
			i += (size_t)k;
		}
		if (n < STR_KEEP)
			p->str[n] = cp;
		n++;
	}
	p->str_len = n;
	p->pos = i;
	return true;
}

static bool is_digit(struct parser *p, size_t i)
{
	return i < p->len && p->s[i] >= '0' && p->s[i] <= '9';
}

/* Checks the JSON number grammar at p->pos and advances past it. */
static bool scan_number(struct parser *p, bool *integral)
{
	size_t i = p->pos;
	if (i < p->len && p->s[i] == '-')
		i++;
	if (!is_digit(p, i))
		return fail_unexpected(p, "a number");
	if (p->s[i] == '0')
		i++;
	else
		while (is_digit(p, i))
			i++;
	*integral = p->s[p->pos] != '-';
	if (i < p->len && p->s[i] == '.') {
		*integral = false;
		if (!is_digit(p, ++i))
			return fail_at(p, p->pos, "invalid number (digit expected after '.')");
		while (is_digit(p, i))
			i++;
	}
	if (i < p->len && (p->s[i] == 'e' || p->s[i] == 'E')) {
		*integral = false;
		i++;
		if (i < p->len && (p->s[i] == '+' || p->s[i] == '-'))
			i++;
		if (!is_digit(p, i))
			return fail_at(p, p->pos, "invalid number (digit expected in the exponent)");
		while (is_digit(p, i))
			i++;
	}
	p->pos = i;
	return true;
}

/* Clinger's fast path: when the decimal digits fit in 2^53 and the power of
 * ten is exact (|e| <= 22), one IEEE multiplication or division of exact
 * operands is correctly rounded, as strtod would be. Two thirds of the
 * numbers in Oxeylyzer's files qualify; the rest go to strtod_l. `s` holds a
 * number that scan_number() accepted. */
static bool fast_double(const unsigned char *s, size_t n, double *out)
{
#if FLT_EVAL_METHOD == 0
	static const double pow10[] = { 1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
					1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
					1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22 };
	size_t i = s[0] == '-';
	uint64_t m = 0;
	int digits = 0, e = 0, x = 0;
	bool fraction = false;
	for (; i < n && (s[i] == '.' || (s[i] >= '0' && s[i] <= '9')); i++) {
		if (s[i] == '.') {
			fraction = true;
			continue;
		}
		if ((m || s[i] != '0') && ++digits > 19)
			return false;
		m = m * 10 + (unsigned)(s[i] - '0');
		e -= fraction;
	}
	if (i < n) { /* the exponent */
		bool negative = s[++i] == '-';
		for (i += s[i] == '-' || s[i] == '+'; i < n && x < 1000; i++)
			x = x * 10 + (s[i] - '0');
		e += negative ? -x : x;
	}
	if (m > (uint64_t)1 << 53 || e < -22 || e > 22)
		return false;
	double v = e < 0 ? (double)m / pow10[-e] : (double)m * pow10[e];
	*out = s[0] == '-' ? -v : v;
	return true;
#else
	(void)s, (void)n, (void)out;
	return false;
#endif
}

static bool read_double(struct parser *p, double *out)
{
	size_t start = p->pos;
	bool integral;
	if (!scan_number(p, &integral))
		return false;
	size_t n = p->pos - start;
	if (fast_double(p->s + start, n, out))
		return true;
	if (n >= MAX_NUMBER_LEN)
		return fail_at(p, start, "number longer than %d characters", MAX_NUMBER_LEN - 1);
	char tmp[MAX_NUMBER_LEN];
	memcpy(tmp, p->s + start, n);
	tmp[n] = '\0';
	*out = strtod_l(tmp, NULL, p->c_locale);
	if (!isfinite(*out))
		return fail_at(p, start, "number out of range");
	return true;
}

static bool read_u64(struct parser *p, uint64_t *out)
{
	size_t start = p->pos;
	bool integral;
	if (!scan_number(p, &integral))
		return false;
	if (!integral)
		return fail_at(p, start, "expected a non-negative integer");
	uint64_t v = 0;
	for (size_t i = start; i < p->pos; i++) {
		unsigned d = p->s[i] - '0';
		if (v > (UINT64_MAX - d) / 10)
			return fail_at(p, start, "integer too large");
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

static bool read_literal(struct parser *p, const char *word)
{
	size_t n = strlen(word);
	if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n))
		return fail_unexpected(p, "a value");
	p->pos += n;
	return true;
}

static bool skip_value(struct parser *p, int depth);

/* Skips the members of an object or elements of an array; p->pos is just
 * past the opening bracket. */
static bool skip_container(struct parser *p, int depth, unsigned char close)
{
	skip_ws(p);
	if (peek(p, close)) {
		p->pos++;
		return true;
	}
	for (;;) {
		if (close == '}') {
			skip_ws(p);
			if (!peek(p, '"'))
				return fail_unexpected(p, "a string key");
			if (!read_string(p) || !expect(p, ':', "':'"))
				return false;
		}
		if (!skip_value(p, depth + 1))
			return false;
		skip_ws(p);
		if (peek(p, ',')) {
			p->pos++;
			continue;
		}
		if (peek(p, close)) {
			p->pos++;
			return true;
		}
		return fail_unexpected(p, close == '}' ? "',' or '}'" : "',' or ']'");
	}
}

static bool skip_value(struct parser *p, int depth)
{
	bool integral;
	if (depth > MAX_DEPTH)
		return fail_at(p, p->pos, "nesting deeper than %d levels", MAX_DEPTH);
	skip_ws(p);
	if (p->pos >= p->len)
		return fail_unexpected(p, "a value");
	switch (p->s[p->pos]) {
	case '{':
	case '[':
		p->pos++;
		return skip_container(p, depth, p->s[p->pos - 1] == '{' ? '}' : ']');
	case '"':
		return read_string(p);
	case 't':
		return read_literal(p, "true");
	case 'f':
		return read_literal(p, "false");
	case 'n':
		return read_literal(p, "null");
	default:
		return scan_number(p, &integral);
	}
}

/* ---- the document -------------------------------------------------------- */

static void add_string_for_humans(struct kf_strbuf *sb, const struct parser *p)
{
	for (size_t i = 0; i < p->str_len && i < STR_KEEP; i++)
		kf__add_char_for_humans(sb, p->str[i]);
	if (p->str_len > STR_KEEP)
		kf_strbuf_addstr(sb, "...");
}

static bool push_gram(struct parser *p, struct raw_list *list, double freq)
{
	if (list->n == list->cap) {
		size_t cap = list->cap ? list->cap * 2 : 256;
		struct raw_gram *v = realloc(list->v, cap * sizeof *v);
		if (!v)
			return fail_oom(p);
		list->v = v, list->cap = cap;
	}
	struct raw_gram *g = &list->v[list->n++];
	g->cp[0] = p->str[0];
	g->cp[1] = p->str_len > 1 ? p->str[1] : 0;
	g->cp[2] = p->str_len > 2 ? p->str[2] : 0;
	g->freq = freq;
	return true;
}

/* One "key": percentage member of an n-gram map. */
static bool read_map_member(struct parser *p, unsigned slot)
{
	const struct map_info *mi = &map_info[slot];
	skip_ws(p);
	if (!peek(p, '"'))
		return fail_unexpected(p, "a string key");
	size_t key_pos = p->pos;
	if (!read_string(p))
		return false;
	if (p->str_len != mi->n) {
		struct kf_strbuf s = KF_STRBUF_INIT;
		add_string_for_humans(&s, p);
		fail_at(p, key_pos, "\"%s\" key '%s' has %zu characters, expected %u", mi->label,
			s.buf, p->str_len, mi->n);
		kf_strbuf_release(&s);
		return false;
	}
	if (!expect(p, ':', "':'"))
		return false;
	skip_ws(p);
	size_t value_pos = p->pos;
	double freq = 0.0;
	if (!read_double(p, &freq))
		return false;
	if (freq < 0.0 || freq > 100.0 + 1e-9)
		return fail_at(p, value_pos, "percentage %g not in [0, 100]", freq);
	return push_gram(p, &p->maps[slot], freq);
}

/* '{' '}' or '{' member (',' member)* '}', each member read by `member`;
 * `what` names the object in the error when the '{' is missing. */
static bool read_object(struct parser *p, const char *what,
			bool (*member)(struct parser *p, void *arg), void *arg)
{
	if (!expect(p, '{', what))
		return false;
	skip_ws(p);
	if (peek(p, '}')) {
		p->pos++;
		return true;
	}
	for (;;) {
		if (!member(p, arg))
			return false;
		skip_ws(p);
		if (peek(p, ',')) {
			p->pos++;
			continue;
		}
		if (peek(p, '}')) {
			p->pos++;
			return true;
		}
		return fail_unexpected(p, "',' or '}'");
	}
}

static bool map_member(struct parser *p, void *slot)
{
	return read_map_member(p, *(const unsigned *)slot);
}

static bool read_map(struct parser *p, unsigned slot)
{
	return read_object(p, "an object", map_member, &slot);
}

static const struct field *find_field(const struct parser *p)
{
	for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
		const char *key = fields[f].key;
		size_t n = strlen(key), i = 0;
		if (n != p->str_len)
			continue;
		while (i < n && p->str[i] == (unsigned char)key[i])
			i++;
		if (i == n)
			return &fields[f];
	}
	return NULL;
}

static bool read_name(struct parser *p, struct kf_corpus *c)
{
	skip_ws(p);
	if (!peek(p, '"'))
		return fail_unexpected(p, "a string");
	if (!read_string(p))
		return false;
	char buf[STR_KEEP * 4];
	size_t len = 0;
	for (size_t i = 0; i < p->str_len && i < STR_KEEP; i++)
		len += kf__utf8_put(buf + len, p->str[i]);
	kf__corpus_set_name(c, buf, len);
	p->have_name = true;
	return true;
}

static bool *field_seen(struct parser *p, const struct field *f)
{
	switch (f->kind) {
	case FIELD_NAME:
		return &p->seen_name;
	case FIELD_TOTAL:
		return &p->seen_total[f->slot];
	default:
		return &p->maps[f->slot].seen;
	}
}

static bool read_member(struct parser *p, struct kf_corpus *c)
{
	skip_ws(p);
	if (!peek(p, '"'))
		return fail_unexpected(p, "a string key");
	size_t key_pos = p->pos;
	if (!read_string(p))
		return false;
	const struct field *f = find_field(p);
	if (!expect(p, ':', "':'"))
		return false;
	if (!f)
		return skip_value(p, 2);
	bool *seen = field_seen(p, f);
	if (*seen)
		return fail_at(p, key_pos, "duplicate key \"%s\"", f->key);
	*seen = true;
	switch (f->kind) {
	case FIELD_NAME:
		return read_name(p, c);
	case FIELD_TOTAL:
		skip_ws(p);
		return read_u64(p, &p->totals[f->slot]);
	default:
		return read_map(p, f->slot);
	}
}

static bool document_member(struct parser *p, void *corpus)
{
	return read_member(p, corpus);
}

static bool read_document(struct parser *p, struct kf_corpus *c)
{
	if (p->len >= 3 && !memcmp(p->s, "\xEF\xBB\xBF", 3))
		p->pos = 3; /* a UTF-8 byte order mark, which RFC 8259 lets us ignore */
	if (!read_object(p, "a JSON object", document_member, c))
		return false;
	skip_ws(p);
	if (p->pos != p->len)
		return fail_unexpected(p, "end of input after the top-level object");
	for (unsigned m = 0; m < NMAPS; m++)
		if (!p->maps[m].seen)
			return fail_at(p, p->pos, "missing \"%s\"", map_info[m].label);
	return true;
}

/* ---- from raw lists to a corpus ------------------------------------------ */

static int cmp_raw_char(const void *pa, const void *pb)
{
	const struct raw_gram *a = pa, *b = pb;
	if (a->freq != b->freq)
		return a->freq > b->freq ? -1 : 1;
	return (a->cp[0] > b->cp[0]) - (a->cp[0] < b->cp[0]);
}

/* Oxeylyzer writes its maps by descending frequency already: then the
 * file's order is kept (a sort would only reorder ties) and the sort, the
 * largest cost after number conversion, is skipped. */
static bool raw_sorted(const struct raw_list *list)
{
	for (size_t i = 1; i < list->n; i++)
		if (list->v[i].freq > list->v[i - 1].freq)
			return false;
	return true;
}

static enum kf_err build_chars(struct parser *p, struct kf_corpus *c)
{
	struct raw_list *chars = &p->maps[MAP_CHARS];
	if (chars->n > KF_CORPUS_MAX_CHARS) {
		kf__corpus_fail(p->why, p->origin, "too many characters (%zu)", chars->n);
		return KF_ECORPUS;
	}
	if (!raw_sorted(chars))
		qsort(chars->v, chars->n, sizeof *chars->v, cmp_raw_char);
	c->nchars = (uint32_t)chars->n;
	c->codepoints = malloc((chars->n + 1) * sizeof *c->codepoints);
	c->chars = malloc((chars->n + 1) * sizeof *c->chars);
	if (!c->codepoints || !c->chars)
		return KF_ENOMEM;
	for (size_t i = 0; i < chars->n; i++) {
		c->codepoints[i] = chars->v[i].cp[0];
		c->chars[i] = chars->v[i].freq;
	}
	return kf__corpus_index(c, p->origin, p->why);
}

/* Char ids of a raw n-gram; KF_ECORPUS when one is not in "chars". */
static enum kf_err resolve(struct parser *p, const struct kf_corpus *c, unsigned slot,
			   const struct raw_gram *g, uint32_t ids[3])
{
	for (unsigned k = 0; k < map_info[slot].n; k++) {
		int32_t id = kf_corpus_char_id(c, g->cp[k]);
		if (id >= 0) {
			ids[k] = (uint32_t)id;
			continue;
		}
		struct kf_strbuf gram = KF_STRBUF_INIT, ch = KF_STRBUF_INIT;
		for (unsigned j = 0; j < map_info[slot].n; j++)
			kf__add_char_for_humans(&gram, g->cp[j]);
		kf__add_char_for_humans(&ch, g->cp[k]);
		kf__corpus_fail(p->why, p->origin, "%s '%s' uses '%s', which is not in \"chars\"",
				map_info[slot].what, gram.buf, ch.buf);
		kf_strbuf_release(&gram);
		kf_strbuf_release(&ch);
		return KF_ECORPUS;
	}
	return KF_OK;
}

static enum kf_err build_grams2(struct parser *p, struct kf_corpus *c, unsigned slot,
				struct kf_ngram2 **out, size_t *count)
{
	const struct raw_list *list = &p->maps[slot];
	struct kf_ngram2 *g = malloc((list->n + 1) * sizeof *g);
	if (!g)
		return KF_ENOMEM;
	*out = g;
	*count = list->n;
	for (size_t i = 0; i < list->n; i++) {
		uint32_t ids[3];
		enum kf_err err = resolve(p, c, slot, &list->v[i], ids);
		if (err)
			return err;
		g[i] = (struct kf_ngram2){ .a = ids[0], .b = ids[1], .freq = list->v[i].freq };
	}
	if (!raw_sorted(list))
		kf__sort_ngram2(g, list->n);
	return KF_OK;
}

static enum kf_err build_grams3(struct parser *p, struct kf_corpus *c)
{
	const struct raw_list *list = &p->maps[MAP_TRIGRAMS];
	struct kf_ngram3 *g = calloc(list->n + 1, sizeof *g);
	if (!g)
		return KF_ENOMEM;
	c->trigrams = g;
	c->ntrigrams = list->n;
	for (size_t i = 0; i < list->n; i++) {
		uint32_t ids[3];
		enum kf_err err = resolve(p, c, MAP_TRIGRAMS, &list->v[i], ids);
		if (err)
			return err;
		g[i].a = ids[0], g[i].b = ids[1], g[i].c = ids[2];
		g[i].freq = list->v[i].freq;
	}
	if (!raw_sorted(list))
		kf__sort_ngram3(g, list->n);
	return KF_OK;
}

static enum kf_err build_corpus(struct parser *p, struct kf_corpus *c)
{
	c->char_total = p->totals[0];
	c->bigram_total = p->totals[1];
	c->skipgram_total = p->totals[2];
	c->trigram_total = p->totals[3];
	enum kf_err err = build_chars(p, c);
	if (!err)
		err = build_grams2(p, c, MAP_BIGRAMS, &c->bigrams, &c->nbigrams);
	if (!err)
		err = build_grams2(p, c, MAP_SKIPGRAMS, &c->skipgrams, &c->nskipgrams);
	if (!err)
		err = build_grams3(p, c);
	if (!err)
		err = kf__corpus_check(c, p->origin, p->why);
	return err;
}

enum kf_err kf__corpus_from_json(const char *data, size_t len, const char *origin,
				 const char *default_name, struct kf_corpus **out,
				 struct kf_strbuf *why)
{
	*out = NULL;
	struct parser p = {
		.s = (const unsigned char *)data, .len = len, .origin = origin, .why = why,
	};
	struct kf_corpus *c = calloc(1, sizeof *c);
	p.c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
	if (!c || !p.c_locale) {
		free(c);
		if (p.c_locale)
			freelocale(p.c_locale);
		return KF_ENOMEM;
	}
	enum kf_err err = read_document(&p, c) ? KF_OK : p.err;
	if (!err && !p.have_name)
		kf__corpus_name_from_path(c, default_name);
	if (!err)
		err = build_corpus(&p, c);
	for (unsigned m = 0; m < NMAPS; m++)
		free(p.maps[m].v);
	freelocale(p.c_locale);
	if (err) {
		kf_corpus_free(c);
		return err;
	}
	*out = c;
	return KF_OK;
}

enum kf_err kf_corpus_parse_json(const void *data, size_t len, const char *origin,
				 struct kf_corpus **out, struct kf_strbuf *why)
{
	return kf__corpus_from_json(data, len, origin, origin, out, why);
}

enum kf_err kf_corpus_load_json(const char *path, struct kf_corpus **out, struct kf_strbuf *why)
{
	struct kf__filebuf buf;
	*out = NULL;
	enum kf_err err = kf__read_file(path, &buf, why);
	if (err)
		return err;
	err = kf__corpus_from_json(buf.data, buf.len, path, path, out, why);
	kf__filebuf_release(&buf);
	return err;
}
