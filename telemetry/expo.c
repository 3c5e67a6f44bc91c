/*
 * expo.c — Prometheus text 0.0.4 and OpenMetrics 1.0 writers, Accept
 * negotiation.
 */
#include "telemetry/expo.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define OM_001_CONTENT_TYPE "application/openmetrics-text; version=0.0.1; charset=utf-8"

const char *kf_expo_content_type(enum kf_expo_format fmt)
{
	return fmt == KF_EXPO_OPENMETRICS ? KF_EXPO_OPENMETRICS_CONTENT_TYPE
					  : KF_EXPO_TEXT_CONTENT_TYPE;
}

/* --- numbers ------------------------------------------------------------------ */

/*
 * Go's strconv.FormatFloat(v, 'g', -1, 64), which Prometheus's clients use:
 * the fewest significant digits that read back to v (glibc rounds
 * correctly, so the first precision that round-trips is the shortest), in
 * exponent form when the decimal exponent is < -4 or >= 6 (Go's switch point
 * for the shortest form; C's %g would switch at the digit count), else plain.
 */
static void format_shortest(char *out, size_t cap, double v)
{
	char e[40];
	int digits;
	for (digits = 1; digits <= 17; digits++) {
		snprintf(e, sizeof e, "%.*e", digits - 1, v);
		if (strtod(e, NULL) == v)
			break;
	}
	int exp = atoi(strchr(e, 'e') + 1);
	if (exp < -4 || exp >= 6) {
		snprintf(out, cap, "%s", e);
		return;
	}
	int decimals = digits - 1 - exp;
	snprintf(out, cap, "%.*f", decimals > 0 ? decimals : 0, v);
}

void kf_expo_add_double(struct kf_strbuf *sb, double v, enum kf_expo_format fmt)
{
	if (isnan(v)) {
		kf_strbuf_addstr(sb, "NaN");
		return;
	}
	if (isinf(v)) {
		kf_strbuf_addstr(sb, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	char tmp[48];
	if (v == 0)
		v = 0; /* -0 is written as 0, as the Go clients do */
	format_shortest(tmp, sizeof tmp, v);
	kf_strbuf_addstr(sb, tmp);
	/* OpenMetrics floats look like floats: 1.0, not 1. */
	if (fmt == KF_EXPO_OPENMETRICS && !strpbrk(tmp, ".e"))
		kf_strbuf_addstr(sb, ".0");
}

static void add_u64(struct kf_strbuf *sb, uint64_t n)
{
	kf_strbuf_addf(sb, "%llu", (unsigned long long)n);
}

/* --- text -------------------------------------------------------------------- */

static void add_escaped(struct kf_strbuf *sb, const char *s, bool quotes)
{
	const char *run = s;
	for (; *s; s++) {
		const char *rep = NULL;
		if (*s == '\\')
			rep = "\\\\";
		else if (*s == '\n')
			rep = "\\n";
		else if (*s == '"' && quotes)
			rep = "\\\"";
		if (!rep)
			continue;
		kf_strbuf_add(sb, run, (size_t)(s - run));
		kf_strbuf_addstr(sb, rep);
		run = s + 1;
	}
	kf_strbuf_add(sb, run, (size_t)(s - run));
}

void kf_expo_add_label_value(struct kf_strbuf *sb, const char *s)
{
	add_escaped(sb, s, true);
}

void kf_expo_add_help(struct kf_strbuf *sb, const char *s, enum kf_expo_format fmt)
{
	add_escaped(sb, s, fmt == KF_EXPO_OPENMETRICS);
}

/* --- families ------------------------------------------------------------------ */

/* The name in the HELP/TYPE lines: OpenMetrics counters drop "_total". */
static size_t family_name_len(const struct kf_msnap_family *f, enum kf_expo_format fmt)
{
	size_t len = strlen(f->name), sfx = strlen("_total");
	if (fmt == KF_EXPO_OPENMETRICS && f->type == KF_METRIC_COUNTER && len > sfx &&
	    strcmp(f->name + len - sfx, "_total") == 0)
		return len - sfx;
	return len;
}

static void write_meta(struct kf_strbuf *sb, const struct kf_msnap_family *f,
		       enum kf_expo_format fmt)
{
	size_t len = family_name_len(f, fmt);
	bool help = f->help && f->help[0];
	if (fmt == KF_EXPO_OPENMETRICS) {
		kf_strbuf_addf(sb, "# TYPE %.*s %s\n", (int)len, f->name,
			       kf_metric_type_name(f->type));
	}
	if (help) {
		kf_strbuf_addf(sb, "# HELP %.*s ", (int)len, f->name);
		kf_expo_add_help(sb, f->help, fmt);
		kf_strbuf_addch(sb, '\n');
	}
	if (fmt == KF_EXPO_TEXT)
		kf_strbuf_addf(sb, "# TYPE %s %s\n", f->name, kf_metric_type_name(f->type));
}

/* name{labels[,le="bound"]} — le_bound NULL for no le label. */
static void write_series_name(struct kf_strbuf *sb, const struct kf_msnap_family *f,
			      const struct kf_msnap_series *s, const char *sample_name,
			      size_t sample_len, const char *suffix, const char *le)
{
	kf_strbuf_add(sb, sample_name, sample_len);
	kf_strbuf_addstr(sb, suffix);
	if (f->n_labels == 0 && !le)
		return;
	kf_strbuf_addch(sb, '{');
	for (size_t i = 0; i < f->n_labels; i++) {
		if (i)
			kf_strbuf_addch(sb, ',');
		kf_strbuf_addstr(sb, f->label_names[i]);
		kf_strbuf_addstr(sb, "=\"");
		kf_expo_add_label_value(sb, s->label_values[i]);
		kf_strbuf_addch(sb, '"');
	}
	if (le)
		kf_strbuf_addf(sb, "%sle=\"%s\"", f->n_labels ? "," : "", le);
	kf_strbuf_addch(sb, '}');
}

static void write_histogram(struct kf_strbuf *sb, const struct kf_msnap_family *f,
			    const struct kf_msnap_series *s, enum kf_expo_format fmt)
{
	size_t len = strlen(f->name);
	struct kf_strbuf le = KF_STRBUF_INIT;
	for (size_t b = 0; b < f->n_bounds; b++) {
		kf_strbuf_reset(&le);
		kf_expo_add_double(&le, f->bounds[b], fmt);
		write_series_name(sb, f, s, f->name, len, "_bucket", le.oom ? "+Inf" : le.buf);
		kf_strbuf_addch(sb, ' ');
		add_u64(sb, s->buckets[b]);
		kf_strbuf_addch(sb, '\n');
	}
	kf_strbuf_release(&le);
	write_series_name(sb, f, s, f->name, len, "_bucket", "+Inf");
	kf_strbuf_addch(sb, ' ');
	add_u64(sb, s->count);
	kf_strbuf_addch(sb, '\n');
	write_series_name(sb, f, s, f->name, len, "_sum", NULL);
	kf_strbuf_addch(sb, ' ');
	kf_expo_add_double(sb, s->sum, fmt);
	kf_strbuf_addch(sb, '\n');
	write_series_name(sb, f, s, f->name, len, "_count", NULL);
	kf_strbuf_addch(sb, ' ');
	add_u64(sb, s->count);
	kf_strbuf_addch(sb, '\n');
}

static void write_family(struct kf_strbuf *sb, const struct kf_msnap_family *f,
			 enum kf_expo_format fmt)
{
	write_meta(sb, f, fmt);
	size_t len = family_name_len(f, fmt);
	/* OpenMetrics counter samples are <family>_total. */
	const char *suffix = fmt == KF_EXPO_OPENMETRICS && f->type == KF_METRIC_COUNTER ? "_total"
											: "";
	for (size_t i = 0; i < f->n_series; i++) {
		const struct kf_msnap_series *s = f->series[i];
		if (f->type == KF_METRIC_HISTOGRAM) {
			write_histogram(sb, f, s, fmt);
			continue;
		}
		write_series_name(sb, f, s, f->name, len, suffix, NULL);
		kf_strbuf_addch(sb, ' ');
		kf_expo_add_double(sb, s->value, fmt);
		kf_strbuf_addch(sb, '\n');
	}
}

void kf_expo_write_families(struct kf_strbuf *sb, const struct kf_msnap *snap,
			    enum kf_expo_format fmt)
{
	for (size_t i = 0; i < snap->n_families; i++)
		write_family(sb, snap->families[i], fmt);
}

enum kf_err kf_expo_write_end(struct kf_strbuf *sb, enum kf_expo_format fmt)
{
	if (fmt == KF_EXPO_OPENMETRICS)
		kf_strbuf_addstr(sb, "# EOF\n");
	return sb->oom ? KF_ENOMEM : KF_OK;
}

enum kf_err kf_expo_write(struct kf_strbuf *sb, const struct kf_msnap *snap,
			  enum kf_expo_format fmt)
{
	kf_expo_write_families(sb, snap, fmt);
	return kf_expo_write_end(sb, fmt);
}

/* --- Accept negotiation ---------------------------------------------------------- */

struct media_range {
	const char *type;      /* not NUL-terminated */
	size_t type_len;
	const char *version;   /* parameter value, unquoted; NULL when absent */
	size_t version_len;
	int q;                 /* thousandths, -1 when unparsable */
};

/* First c in [p, end), or NULL. (memchr with end - p trips GCC's
 * -Wstringop-overread, which cannot see that p <= end.) */
static const char *find_char(const char *p, const char *end, char c)
{
	for (; p < end; p++)
		if (*p == c)
			return p;
	return NULL;
}

static const char *skip_ows(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

static size_t trim_len(const char *p, const char *end)
{
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	return (size_t)(end - p);
}

/* RFC 9110 qvalue: 0[.ddd] or 1[.000]. Returns thousandths or -1. */
static int parse_q(const char *p, size_t len)
{
	if (len == 0 || (p[0] != '0' && p[0] != '1'))
		return -1;
	int q = (p[0] - '0') * 1000, scale = 100;
	if (len == 1)
		return q;
	if (p[1] != '.' || len > 5)
		return -1;
	for (size_t i = 2; i < len; i++, scale /= 10) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		q += (p[i] - '0') * scale;
	}
	return q > 1000 ? -1 : q;
}

/* One parameter "name=value" in [p, end); fills version or q. */
static void parse_param(const char *p, const char *end, struct media_range *r)
{
	const char *eq = find_char(p, end, '=');
	if (!eq)
		return;
	size_t name_len = trim_len(p, eq);
	const char *v = skip_ows(eq + 1, end);
	size_t v_len = trim_len(v, end);
	if (v_len >= 2 && v[0] == '"' && v[v_len - 1] == '"') {
		v++;
		v_len -= 2;
	}
	if (name_len == 1 && (*p == 'q' || *p == 'Q'))
		r->q = parse_q(v, v_len);
	else if (name_len == 7 && strncasecmp(p, "version", 7) == 0) {
		r->version = v;
		r->version_len = v_len;
	}
}

static void parse_range(const char *p, const char *end, struct media_range *r)
{
	*r = (struct media_range){ .q = 1000 };
	p = skip_ows(p, end);
	const char *semi = find_char(p, end, ';');
	const char *type_end = semi ? semi : end;
	r->type = p;
	r->type_len = trim_len(p, type_end);
	while (semi) {
		const char *param = semi + 1;
		semi = find_char(param, end, ';');
		parse_param(skip_ows(param, end), semi ? semi : end, r);
	}
}

static bool eq_ci(const char *s, size_t len, const char *lit)
{
	return len == strlen(lit) && strncasecmp(s, lit, len) == 0;
}

static bool version_is(const struct media_range *r, const char *v)
{
	return r->version && r->version_len == strlen(v) && memcmp(r->version, v, r->version_len) == 0;
}

/*
 * What a range offers: sets *fmt, *ctype and returns its specificity (2
 * exact, 1 type/ *, 0 * / *), or -1 when it names nothing we can write.
 */
static int range_match(const struct media_range *r, enum kf_expo_format *fmt, const char **ctype)
{
	*fmt = KF_EXPO_TEXT;
	*ctype = KF_EXPO_TEXT_CONTENT_TYPE;
	if (eq_ci(r->type, r->type_len, "application/openmetrics-text")) {
		*fmt = KF_EXPO_OPENMETRICS;
		if (!r->version || version_is(r, "1.0.0")) {
			*ctype = KF_EXPO_OPENMETRICS_CONTENT_TYPE;
			return 2;
		}
		*ctype = OM_001_CONTENT_TYPE;
		return version_is(r, "0.0.1") ? 2 : -1;
	}
	if (eq_ci(r->type, r->type_len, "text/plain"))
		return !r->version || version_is(r, "0.0.4") ? 2 : -1;
	if (eq_ci(r->type, r->type_len, "text/*"))
		return 1;
	if (eq_ci(r->type, r->type_len, "*/*"))
		return 0;
	return -1;
}

enum kf_expo_format kf_expo_negotiate(const char *accept, const char **content_type)
{
	enum kf_expo_format best = KF_EXPO_TEXT;
	const char *best_ctype = KF_EXPO_TEXT_CONTENT_TYPE;
	int best_q = 0, best_spec = -1;

	for (const char *p = accept; p && *p;) {
		const char *comma = strchr(p, ',');
		const char *end = comma ? comma : p + strlen(p);
		struct media_range r;
		enum kf_expo_format fmt;
		const char *ctype;
		parse_range(p, end, &r);
		int spec = range_match(&r, &fmt, &ctype);
		if (spec >= 0 && r.q > 0 &&
		    (r.q > best_q || (r.q == best_q && spec > best_spec))) {
			best = fmt;
			best_ctype = ctype;
			best_q = r.q;
			best_spec = spec;
		}
		p = comma ? comma + 1 : end;
	}
	if (content_type)
		*content_type = best_ctype;
	return best;
}
