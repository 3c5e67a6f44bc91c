/*
 * auth.c — credentials file and Authorization header checks.
 *
 * Every secret is kept only as its SHA-256 (hashed at load when written in
 * clear), and a presented password or token is hashed before the
 * comparison, so the comparison takes the same time whatever the input.
 */
#include "gateway/auth.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gnutls/crypto.h>

#include "common/parse.h"

#define DIGEST 32
#define MAX_FILE (1u << 20)

enum scheme { SCHEME_BASIC, SCHEME_BEARER };

struct cred {
	enum scheme scheme;
	char name[KF_GW_PRINCIPAL_MAX + 1];
	unsigned char digest[DIGEST];
};

struct kf_gw_creds {
	struct cred *v;
	size_t n;
};

static void sha256(const void *data, size_t len, unsigned char out[DIGEST])
{
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, out) != 0)
		memset(out, 0xff, DIGEST); /* never equal to a real digest by chance */
}

/* Constant-time equality of two digests. */
static bool digest_eq(const unsigned char *a, const unsigned char *b)
{
	unsigned char d = 0;
	for (size_t i = 0; i < DIGEST; i++)
		d |= a[i] ^ b[i];
	return d == 0;
}

static bool name_valid(const char *s, size_t len)
{
	if (!len || len > KF_GW_PRINCIPAL_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e || s[i] == ':')
			return false;
	return true;
}

/* SECRET: "sha256:<64 hex>" or the clear text. */
static bool parse_secret(const char *s, size_t len, unsigned char digest[DIGEST])
{
	if (len == 7 + 2 * DIGEST && strncmp(s, "sha256:", 7) == 0) {
		for (size_t i = 0; i < DIGEST; i++) {
			int hi = kf_hex_digit(s[7 + 2 * i]), lo = kf_hex_digit(s[8 + 2 * i]);
			if (hi < 0 || lo < 0)
				return false;
			digest[i] = (unsigned char)(hi << 4 | lo);
		}
		return true;
	}
	if (!len)
		return false;
	sha256(s, len, digest);
	return true;
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t';
}

/* Splits off the next whitespace-delimited field of [*p, end). */
static bool next_field(const char **p, const char *end, const char **f, size_t *len)
{
	while (*p < end && is_ws(**p))
		(*p)++;
	*f = *p;
	while (*p < end && !is_ws(**p))
		(*p)++;
	*len = (size_t)(*p - *f);
	return *len > 0;
}

static enum kf_err parse_line(struct kf_gw_creds *c, const char *p, const char *end,
			      size_t lineno, struct kf_strbuf *why)
{
	const char *f, *name;
	size_t flen, nlen;
	while (end > p && (is_ws(end[-1]) || end[-1] == '\r'))
		end--;
	if (!next_field(&p, end, &f, &flen) || f[0] == '#')
		return KF_OK;
	enum scheme sch;
	if (flen == 5 && strncmp(f, "basic", 5) == 0)
		sch = SCHEME_BASIC;
	else if (flen == 6 && strncmp(f, "bearer", 6) == 0)
		sch = SCHEME_BEARER;
	else
		goto bad;
	if (!next_field(&p, end, &name, &nlen) || !name_valid(name, nlen))
		goto bad;
	while (p < end && is_ws(*p))
		p++;
	struct cred cr = { .scheme = sch };
	if (!parse_secret(p, (size_t)(end - p), cr.digest))
		goto bad;
	memcpy(cr.name, name, nlen);
	struct cred *v = realloc(c->v, (c->n + 1) * sizeof(*v));
	if (!v)
		return KF_ENOMEM;
	c->v = v;
	c->v[c->n++] = cr;
	return KF_OK;
bad:
	if (why)
		kf_strbuf_addf(why, "credentials line %zu: expected 'basic USER SECRET' or "
			       "'bearer PRINCIPAL SECRET' (SECRET: text or sha256:<64 hex>)",
			       lineno);
	return KF_EINVAL;
}

enum kf_err kf_gw_creds_parse(const char *text, size_t len, struct kf_gw_creds **out,
			      struct kf_strbuf *why)
{
	*out = NULL;
	struct kf_gw_creds *c = calloc(1, sizeof(*c));
	if (!c)
		return KF_ENOMEM;
	enum kf_err err = KF_OK;
	const char *p = text, *end = text + len;
	for (size_t lineno = 1; p < end && !err; lineno++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		if (memchr(p, '\0', (size_t)(le - p))) {
			if (why)
				kf_strbuf_addf(why, "credentials line %zu: NUL byte", lineno);
			err = KF_EINVAL;
			break;
		}
		err = parse_line(c, p, le, lineno, why);
		p = nl ? nl + 1 : end;
	}
	if (!err && !c->n) {
		if (why)
			kf_strbuf_addstr(why, "credentials file holds no credential");
		err = KF_EINVAL;
	}
	if (err) {
		kf_gw_creds_free(c);
		return err;
	}
	*out = c;
	return KF_OK;
}

enum kf_err kf_gw_creds_load(const char *path, struct kf_gw_creds **out, struct kf_strbuf *why)
{
	*out = NULL;
	FILE *f = fopen(path, "rb");
	if (!f) {
		enum kf_err err = errno == ENOENT ? KF_ENOENT : KF_EIO;
		if (why)
			kf_strbuf_addf(why, "cannot read credentials file '%s': %s", path,
				       strerror(errno));
		return err;
	}
	char *buf = malloc(MAX_FILE + 1);
	size_t n = buf ? fread(buf, 1, MAX_FILE + 1, f) : 0;
	bool rerr = ferror(f);
	fclose(f);
	enum kf_err err = KF_OK;
	if (!buf)
		err = KF_ENOMEM;
	else if (rerr)
		err = KF_EIO;
	else if (n > MAX_FILE)
		err = KF_ETOOBIG;
	if (err && why)
		kf_strbuf_addf(why, "cannot read credentials file '%s': %s", path,
			       err == KF_ETOOBIG ? "larger than 1 MiB" : kf_strerror(err));
	if (!err) {
		err = kf_gw_creds_parse(buf, n, out, why);
		if (err == KF_EINVAL && why)
			kf_strbuf_addf(why, " (in '%s')", path);
	}
	free(buf);
	return err;
}

void kf_gw_creds_free(struct kf_gw_creds *creds)
{
	if (!creds)
		return;
	/* The digests are not secrets in clear, but leave nothing behind. */
	if (creds->v)
		memset(creds->v, 0, creds->n * sizeof(*creds->v));
	free(creds->v);
	free(creds);
}

size_t kf_gw_creds_count(const struct kf_gw_creds *creds)
{
	return creds ? creds->n : 0;
}

static int b64val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long kf_gw_base64_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
	if (len % 4)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < len; i += 4) {
		bool last = i + 4 == len;
		int v[4];
		size_t pad = 0;
		for (size_t k = 0; k < 4; k++) {
			v[k] = b64val(in[i + k]);
			if (v[k] < 0) {
				/* '=' only at the end: "xx==" or "xxx=". */
				if (!last || in[i + k] != '=' || k < 2 ||
				    (k == 2 && in[i + 3] != '='))
					return -1;
				v[k] = 0;
				pad++;
			}
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
			     (uint32_t)v[3];
		/* Canonical: the bits under the padding are zero. */
		if ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff)))
			return -1;
		size_t n = 3 - pad;
		if (o + n > cap)
			return -1;
		for (size_t k = 0; k < n; k++)
			out[o++] = (unsigned char)(w >> (16 - 8 * k));
	}
	return (long)o;
}

static const struct cred *find_basic(const struct kf_gw_creds *c, const char *user, size_t ulen,
				     const unsigned char digest[DIGEST])
{
	const struct cred *hit = NULL;
	for (size_t i = 0; i < c->n; i++) {
		const struct cred *cr = &c->v[i];
		if (cr->scheme == SCHEME_BASIC && strlen(cr->name) == ulen &&
		    memcmp(cr->name, user, ulen) == 0 && digest_eq(cr->digest, digest) && !hit)
			hit = cr;
	}
	return hit;
}

static enum kf_err check_basic(const struct kf_gw_creds *c, const char *b64,
			       char principal[KF_GW_PRINCIPAL_MAX + 1])
{
	unsigned char dec[KF_GW_AUTH_HEADER_MAX];
	long n = kf_gw_base64_decode(b64, strlen(b64), dec, sizeof(dec));
	if (n < 0)
		return KF_EINVAL;
	unsigned char *colon = memchr(dec, ':', (size_t)n);
	if (!colon)
		return KF_EINVAL;
	size_t ulen = (size_t)(colon - dec);
	unsigned char digest[DIGEST];
	sha256(colon + 1, (size_t)n - ulen - 1, digest);
	const struct cred *cr = find_basic(c, (const char *)dec, ulen, digest);
	memset(dec, 0, sizeof(dec));
	if (!cr)
		return KF_EPERM;
	strcpy(principal, cr->name);
	return KF_OK;
}

static enum kf_err check_bearer(const struct kf_gw_creds *c, const char *token,
				char principal[KF_GW_PRINCIPAL_MAX + 1])
{
	/* token68 (RFC 9110 §11.2): ALPHA DIGIT -._~+/ then '=' padding. */
	size_t len = strlen(token);
	if (!len)
		return KF_EINVAL;
	for (size_t i = 0; i < len; i++) {
		char ch = token[i];
		bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
			  (ch >= '0' && ch <= '9') || strchr("-._~+/=", ch);
		if (!ok)
			return KF_EINVAL;
	}
	unsigned char digest[DIGEST];
	sha256(token, len, digest);
	const struct cred *hit = NULL;
	for (size_t i = 0; i < c->n; i++)
		if (c->v[i].scheme == SCHEME_BEARER && digest_eq(c->v[i].digest, digest) && !hit)
			hit = &c->v[i];
	if (!hit)
		return KF_EPERM;
	strcpy(principal, hit->name);
	return KF_OK;
}

enum kf_err kf_gw_creds_check(const struct kf_gw_creds *creds, const char *authorization,
			      char principal[KF_GW_PRINCIPAL_MAX + 1])
{
	principal[0] = '\0';
	if (!authorization)
		return KF_ENOENT;
	if (strnlen(authorization, KF_GW_AUTH_HEADER_MAX + 1) > KF_GW_AUTH_HEADER_MAX)
		return KF_EINVAL;
	const char *p = authorization;
	while (*p == ' ' || *p == '\t')
		p++;
	const char *sp = p;
	while (*sp && *sp != ' ')
		sp++;
	size_t slen = (size_t)(sp - p);
	while (*sp == ' ')
		sp++;
	char cred[KF_GW_AUTH_HEADER_MAX + 1];
	size_t clen = strlen(sp);
	while (clen && (sp[clen - 1] == ' ' || sp[clen - 1] == '\t'))
		clen--;
	memcpy(cred, sp, clen);
	cred[clen] = '\0';
	if (slen == 5 && strncasecmp(p, "Basic", 5) == 0)
		return check_basic(creds, cred, principal);
	if (slen == 6 && strncasecmp(p, "Bearer", 6) == 0)
		return check_bearer(creds, cred, principal);
	return KF_EINVAL;
}
