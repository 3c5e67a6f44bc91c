/* tls.c — building nng TLS configurations from certificate files. */
#include "bus/bus_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/supplemental/tls/tls.h>

/* Certificates and keys are small; anything larger is not one. */
#define PEM_MAX (1u << 20)

static const char *env_or_null(const char *name)
{
	const char *v = getenv(name);

	return (v != NULL && *v != '\0') ? v : NULL;
}

bool kf_bus_tls_opts_from_env(struct kf_bus_tls_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->cert_file = env_or_null("KEYFORGE_TLS_CERT");
	opts->key_file = env_or_null("KEYFORGE_TLS_KEY");
	opts->ca_file = env_or_null("KEYFORGE_TLS_CA");
	opts->server_name = env_or_null("KEYFORGE_TLS_SERVER_NAME");
	opts->verify_peer = KF_BUS_TLS_VERIFY_REQUIRED;
	return opts->cert_file != NULL || opts->ca_file != NULL;
}

/* Reads a whole PEM file, NUL-terminated (nng wants ASCIIZ). */
static enum kf_err read_pem(const char *what, const char *path, char **out,
	size_t *out_len, struct kf_strbuf *why)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0;
	int saved;

	if (f == NULL)
		goto fail;
	buf = malloc(PEM_MAX + 1);
	if (buf == NULL) {
		fclose(f);
		return KF_ENOMEM;
	}
	len = fread(buf, 1, PEM_MAX + 1, f);
	if (ferror(f) || len > PEM_MAX) {
		if (!ferror(f))
			errno = EFBIG;
		goto fail;
	}
	fclose(f);
	buf[len] = '\0';
	*out = buf;
	*out_len = len;
	return KF_OK;
fail:
	saved = errno;
	if (f)
		fclose(f);
	free(buf);
	if (why)
		kf_strbuf_addf(why, "cannot read TLS %s '%s': %s", what, path,
			strerror(saved));
	return saved == ENOENT ? KF_ENOENT : KF_EIO;
}

static void free_secret(char *buf, size_t len)
{
	if (buf == NULL)
		return;
	explicit_bzero(buf, len);
	free(buf);
}

static enum kf_err load_own_cert(nng_tls_config *cfg, const struct kf_bus_tls_opts *o,
	struct kf_strbuf *why)
{
	const char *key_path = o->key_file ? o->key_file : o->cert_file;
	char *cert = NULL, *key = NULL;
	size_t cert_len = 0, key_len = 0;
	enum kf_err err;
	int rv;

	err = read_pem("certificate", o->cert_file, &cert, &cert_len, why);
	if (err == KF_OK)
		err = read_pem("key", key_path, &key, &key_len, why);
	if (err == KF_OK) {
		rv = nng_tls_config_own_cert(cfg, cert, key, o->key_password);
		if (rv != 0) {
			err = KF_EINVAL;
			if (why)
				kf_strbuf_addf(why, "TLS certificate '%s' with key '%s' "
					"rejected: %s", o->cert_file, key_path, nng_strerror(rv));
		}
	}
	free(cert);
	free_secret(key, key_len);
	return err;
}

static enum kf_err load_ca(nng_tls_config *cfg, const char *path, struct kf_strbuf *why)
{
	char *ca = NULL;
	size_t len = 0;
	enum kf_err err = read_pem("CA bundle", path, &ca, &len, why);
	int rv;

	if (err != KF_OK)
		return err;
	rv = nng_tls_config_ca_chain(cfg, ca, NULL);
	free(ca);
	if (rv != 0) {
		if (why)
			kf_strbuf_addf(why, "TLS CA bundle '%s' rejected: %s", path,
				nng_strerror(rv));
		return KF_EINVAL;
	}
	return KF_OK;
}

static const nng_tls_auth_mode auth_modes[] = {
	[KF_BUS_TLS_VERIFY_REQUIRED] = NNG_TLS_AUTH_MODE_REQUIRED,
	[KF_BUS_TLS_VERIFY_OPTIONAL] = NNG_TLS_AUTH_MODE_OPTIONAL,
	[KF_BUS_TLS_VERIFY_NONE] = NNG_TLS_AUTH_MODE_NONE,
};

/* What each side must have before any file is read, so that the message
 * names the missing option rather than an nng error. */
static enum kf_err check_opts(const struct kf_bus_tls_opts *o, bool server,
	const char *url, struct kf_strbuf *why)
{
	const char *missing = NULL;

	if (o == NULL)
		missing = "certificates (KEYFORGE_TLS_CERT, KEYFORGE_TLS_KEY, KEYFORGE_TLS_CA)";
	else if ((unsigned)o->verify_peer > KF_BUS_TLS_VERIFY_NONE)
		missing = "a valid verify_peer mode";
	else if (server && o->cert_file == NULL)
		missing = "a certificate and key (KEYFORGE_TLS_CERT, KEYFORGE_TLS_KEY)";
	else if (o->verify_peer != KF_BUS_TLS_VERIFY_NONE && o->ca_file == NULL)
		missing = "a CA bundle to verify peers (KEYFORGE_TLS_CA)";
	if (missing == NULL)
		return KF_OK;
	if (why)
		kf_strbuf_addf(why, "address '%s' needs %s", url, missing);
	return KF_EINVAL;
}

enum kf_err kf__bus_tls_config(const struct kf_bus_tls_opts *o, bool server,
	const char *url, const char *url_host, nng_tls_config **out, struct kf_strbuf *why)
{
	nng_tls_config *cfg = NULL;
	const char *name;
	enum kf_err err = check_opts(o, server, url, why);
	int rv;

	if (err != KF_OK)
		return err;
	rv = nng_tls_config_alloc(&cfg, server ? NNG_TLS_MODE_SERVER : NNG_TLS_MODE_CLIENT);
	if (rv != 0)
		return kf_bus_err_from_nng(rv);
	rv = nng_tls_config_auth_mode(cfg, auth_modes[o->verify_peer]);
	if (rv == 0 && !server) {
		name = o->server_name ? o->server_name : url_host;
		if (name != NULL && *name != '\0')
			rv = nng_tls_config_server_name(cfg, name);
	}
	if (rv != 0) {
		err = kf_bus_err_from_nng(rv);
		goto fail;
	}
	if (o->ca_file != NULL && (err = load_ca(cfg, o->ca_file, why)) != KF_OK)
		goto fail;
	if (o->cert_file != NULL && (err = load_own_cert(cfg, o, why)) != KF_OK)
		goto fail;
	*out = cfg;
	return KF_OK;
fail:
	nng_tls_config_free(cfg);
	return err;
}
