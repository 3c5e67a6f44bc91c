/*
 * http.c — the HTTP server (GNU libmicrohttpd) and its routes.
 *
 * Every request is answered on its first call (headers received): the
 * gateway has no endpoint that takes a body, so a request that announces
 * one gets 413 and libmicrohttpd closes the connection without reading it.
 * Limits, all libmicrohttpd options: a connection limit, an idle timeout
 * (also what ends a slow partial request) and a per-connection memory pool
 * that bounds the request line and headers (431/414 beyond it).
 *
 * Each request runs inside the span http_request{method, path, request_id,
 * user_id} (DESIGN.md §5): request_id is the client's X-Request-Id when it
 * is printable ASCII of at most 128 bytes, else a generated one; it is
 * echoed in the response. user_id is recorded once authentication names a
 * principal.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>
#include <zlib.h>

#include "common/clock.h"
#include "common/json.h"
#include "gateway/auth.h"
#include "gateway/gateway.h"
#include "gateway/health.h"
#include "gateway/httputil.h"
#include "telemetry/expo.h"
#include "telemetry/log.h"

#define TARGET "keyforge::gateway::http"
#define LOG_PATH_MAX 256
#define LOG_METHOD_MAX 16
#define AUTH_WARN_EVERY_NS (10ULL * 1000000000ULL)

struct kf__gw_http {
	struct MHD_Daemon *daemon;
	struct kf_strbuf tls_cert;   /* PEM, kept while the daemon runs */
	struct kf_strbuf tls_key;
	_Atomic uint64_t auth_warned_ns;
	_Atomic uint64_t auth_failures_unlogged;
};

/* One request being answered. */
struct request {
	struct kf__gw *gw;
	struct MHD_Connection *conn;
	struct kf_span *span;
	const char *path;
	unsigned status;
	const char *content_type;
	const char *content_encoding;   /* NULL = identity */
	const char *allow;              /* 405 */
	const char *vary;
	bool www_authenticate;          /* 401 */
	struct kf_strbuf body;
};

typedef void (*route_fn)(struct request *r);

static void serve_index(struct request *r);
static void serve_metrics(struct request *r);
static void serve_live(struct request *r);
static void serve_ready(struct request *r);

static const struct route {
	const char *path;
	route_fn fn;
	bool auth;          /* behind the credentials, when configured */
	const char *what;   /* for the index page */
} routes[] = {
	{ "/", serve_index, false, "this list" },
	{ "/metrics", serve_metrics, true,
	  "metrics for Prometheus (text 0.0.4, or OpenMetrics 1.0 when Accept asks)" },
	{ "/health/live", serve_live, false, "200 while the HTTP server runs" },
	{ "/health/ready", serve_ready, false,
	  "200 when PostgreSQL is connected and migrated, else 503 (JSON)" },
};
#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))
#define ROUTE_OTHER N_ROUTES
_Static_assert(N_ROUTES + 1 <= KF__GW_ROUTES_MAX, "route labels exceed the counter cache");

static const char *route_label(size_t i)
{
	return i < N_ROUTES ? routes[i].path : "other";
}

static const char *header(struct request *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

static void set_text(struct request *r, unsigned status, const char *text)
{
	r->status = status;
	r->content_type = "text/plain; charset=utf-8";
	kf_strbuf_addstr(&r->body, text);
}

/* ---- routes ------------------------------------------------------------- */

static void serve_index(struct request *r)
{
	r->status = MHD_HTTP_OK;
	r->content_type = "text/html; charset=utf-8";
	kf_strbuf_addstr(&r->body,
		"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
		"<title>keyforge-gateway</title></head>\n<body><h1>keyforge-gateway</h1>\n<ul>\n");
	for (size_t i = 1; i < N_ROUTES; i++)
		kf_strbuf_addf(&r->body, "<li><a href=\"%s\">%s</a> — %s</li>\n", routes[i].path,
			       routes[i].path, routes[i].what);
	kf_strbuf_addstr(&r->body, "</ul>\n</body></html>\n");
}

static void serve_live(struct request *r)
{
	r->status = MHD_HTTP_OK;
	r->content_type = "application/json";
	kf_strbuf_addstr(&r->body, "{\"status\":\"live\"}\n");
}

static void add_check(struct kf_strbuf *sb, bool *first, const char *name, bool ok,
		      const char *detail)
{
	kf_strbuf_addstr(sb, *first ? "" : ",");
	*first = false;
	kf_strbuf_addstr(sb, "{\"name\":");
	kf_json_add_cstr(sb, name);
	kf_strbuf_addf(sb, ",\"ok\":%s,\"detail\":", ok ? "true" : "false");
	kf_json_add_cstr(sb, detail);
	kf_strbuf_addch(sb, '}');
}

static void serve_ready(struct request *r)
{
	struct kf__gw *gw = r->gw;
	struct kf_gw_health_result h;
	kf_gw_health_get(gw->health, &h);
	uint64_t now = kf_clock_mono_ns(), interval = kf_gw_health_interval_ns(gw->health);
	bool stopping = atomic_load(&gw->shutting_down);
	bool ready = !stopping && kf_gw_health_ready(&h, interval, now);
	uint64_t age_ms = h.probed && now > h.checked_ns ? (now - h.checked_ns) / 1000000 : 0;
	bool fresh = h.probed && age_ms * 1000000 <= KF_GW_HEALTH_STALE_INTERVALS * interval;
	char probe[96];
	if (!h.probed)
		snprintf(probe, sizeof(probe), "not probed yet");
	else
		snprintf(probe, sizeof(probe), "%s %llu ms ago", fresh ? "checked" : "stuck: last result",
			 (unsigned long long)age_ms);

	struct kf_strbuf *b = &r->body;
	bool first = true;
	kf_strbuf_addf(b, "{\"status\":\"%s\",\"checks\":[", ready ? "ready" : "not ready");
	add_check(b, &first, "shutdown", !stopping, stopping ? "shutting down" : "serving");
	add_check(b, &first, "database", h.db_ok, h.db_detail);
	add_check(b, &first, "migrations", h.migrations_ok, h.migrations_detail);
	add_check(b, &first, "probe", fresh, probe);
	kf_strbuf_addf(b, "],\"applied_migration\":%d,\"newest_migration\":%d}\n", h.applied,
		       h.newest);
	r->status = ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
	r->content_type = "application/json";
}

/*
 * Each libmicrohttpd thread keeps one deflate state and resets it per
 * response: deflateInit2 allocates and clears ~270 KiB, which cost more than
 * compressing a typical /metrics body. Freed when the thread exits.
 */
#define GZIP_LEVEL 6
static pthread_key_t zkey;
static pthread_once_t zkey_once = PTHREAD_ONCE_INIT;

static void zstream_free(void *p)
{
	deflateEnd(p);
	free(p);
}

static void zkey_create(void)
{
	pthread_key_create(&zkey, zstream_free);
}

static z_stream *thread_zstream(void)
{
	pthread_once(&zkey_once, zkey_create);
	z_stream *z = pthread_getspecific(zkey);
	if (z)
		return deflateReset(z) == Z_OK ? z : NULL;
	z = calloc(1, sizeof(*z));
	if (!z)
		return NULL;
	if (deflateInit2(z, GZIP_LEVEL, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		free(z);
		return NULL;
	}
	if (pthread_setspecific(zkey, z) != 0) {
		zstream_free(z);
		return NULL;
	}
	return z;
}

/* gzip (RFC 1952) of in into out; false when zlib fails. */
static bool gzip_body(const struct kf_strbuf *in, struct kf_strbuf *out)
{
	z_stream *z = thread_zstream();
	if (!z)
		return false;
	uLong bound = deflateBound(z, (uLong)in->len);
	if (!kf_strbuf_grow(out, bound))
		return false;
	z->next_in = (Bytef *)in->buf;
	z->avail_in = (uInt)in->len;
	z->next_out = (Bytef *)out->buf;
	z->avail_out = (uInt)bound;
	bool ok = deflate(z, Z_FINISH) == Z_STREAM_END;
	out->len = ok ? z->total_out : 0;
	out->buf[out->len] = '\0';
	return ok;
}

static void serve_metrics(struct request *r)
{
	const char *ctype;
	enum kf_expo_format fmt = kf_expo_negotiate(header(r, MHD_HTTP_HEADER_ACCEPT), &ctype);
	if (kf__gw_render_metrics(r->gw, (int)fmt, &r->body) != KF_OK) {
		KF_ERROR(TARGET, "out of memory rendering /metrics");
		kf_strbuf_reset(&r->body);
		set_text(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
		return;
	}
	r->status = MHD_HTTP_OK;
	r->content_type = ctype;
	r->vary = "Accept, Accept-Encoding";
	if (!kf_gw_accept_gzip(header(r, MHD_HTTP_HEADER_ACCEPT_ENCODING)))
		return;
	struct kf_strbuf gz = KF_STRBUF_INIT;
	if (gzip_body(&r->body, &gz)) {
		kf_strbuf_release(&r->body);
		r->body = gz;
		r->content_encoding = "gzip";
	} else {
		kf_strbuf_release(&gz); /* serve it uncompressed */
	}
}

/* ---- authentication --------------------------------------------------------- */

static void warn_auth_failure(struct kf__gw_http *h, const char *reason)
{
	uint64_t now = kf_clock_mono_ns();
	uint64_t last = atomic_load(&h->auth_warned_ns);
	atomic_fetch_add(&h->auth_failures_unlogged, 1);
	if (last && now - last < AUTH_WARN_EVERY_NS)
		return;
	if (!atomic_compare_exchange_strong(&h->auth_warned_ns, &last, now))
		return;
	KF_WARN(TARGET, "authentication failed", KF_STR("reason", reason),
		KF_U64("failures_since_last_warning", atomic_exchange(&h->auth_failures_unlogged, 0)));
}

/* True when the request may proceed; else r holds the 401. */
static bool authenticate(struct request *r)
{
	char principal[KF_GW_PRINCIPAL_MAX + 1];
	enum kf_err err = kf_gw_creds_check(r->gw->creds,
					    header(r, MHD_HTTP_HEADER_AUTHORIZATION), principal);
	if (!err) {
		kf_span_record(r->span, KF_STR("user_id", principal));
		KF_DEBUG(TARGET, "user authenticated", KF_STR("user_id", principal));
		return true;
	}
	const char *reason = err == KF_ENOENT ? "missing" : err == KF_EINVAL ? "malformed"
									     : "denied";
	kf__gw_count_auth_failure(r->gw, reason);
	if (err != KF_ENOENT)
		warn_auth_failure(r->gw->http, reason);
	set_text(r, MHD_HTTP_UNAUTHORIZED, "authentication required\n");
	r->www_authenticate = true;
	return false;
}

/* ---- dispatch ------------------------------------------------------------- */

/* Content-Length is 1*DIGIT (RFC 9110 §8.6; libmicrohttpd answers 400 to
 * anything else before we are called), so "00" is no body either. */
static bool has_body(struct request *r)
{
	const char *cl = header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
	return header(r, MHD_HTTP_HEADER_TRANSFER_ENCODING) || (cl && cl[strspn(cl, "0")] != '\0');
}

/* Routes the request and fills the response; returns the route index. */
static size_t dispatch(struct request *r, const char *method, bool body)
{
	size_t i = 0;
	while (i < N_ROUTES && strcmp(routes[i].path, r->path) != 0)
		i++;
	if (i == N_ROUTES) {
		set_text(r, MHD_HTTP_NOT_FOUND, "not found; GET / lists the endpoints\n");
		return ROUTE_OTHER;
	}
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
		set_text(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed; use GET or HEAD\n");
		r->allow = "GET, HEAD";
		return i;
	}
	if (body) {
		set_text(r, 413, "request body not allowed\n");
		return i;
	}
	if (routes[i].auth && r->gw->creds && !authenticate(r))
		return i;
	routes[i].fn(r);
	return i;
}

static enum MHD_Result respond(struct request *r, const char *request_id)
{
	size_t len = r->body.len;
	struct MHD_Response *resp;
	if (r->body.oom)
		len = 0;
	if (len) {
		char *buf = kf_strbuf_detach(&r->body, &len);
		resp = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
		if (!resp)
			free(buf);
	} else {
		resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	}
	if (!resp)
		return MHD_NO; /* out of memory: libmicrohttpd closes the connection */
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
	MHD_add_response_header(resp, "X-Request-Id", request_id);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (r->content_encoding)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING, r->content_encoding);
	if (r->vary)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, r->vary);
	if (r->allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
	if (r->www_authenticate) {
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					"Basic realm=\"keyforge-gateway\", charset=\"UTF-8\"");
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					"Bearer realm=\"keyforge-gateway\"");
	}
	if (atomic_load(&r->gw->shutting_down))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	enum MHD_Result res = MHD_queue_response(r->conn, r->status, resp);
	MHD_destroy_response(resp);
	return res;
}

/*
 * libmicrohttpd calls this once when the headers are in, then again when the
 * request is complete. Answering in the first call would make it close the
 * connection (it has not seen the end of the request), so a request without
 * a body is answered in the second call and keeps its connection alive. A
 * request that announces a body is refused in the first call: the body is
 * never read and the connection is closed.
 */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	static char seen;
	(void)version;
	(void)upload_data;
	struct kf__gw *gw = cls;
	struct request r = { .gw = gw, .conn = conn, .path = url, .body = KF_STRBUF_INIT };
	bool refuse_body = !*con_cls && has_body(&r);
	if (!*con_cls && !refuse_body) {
		*con_cls = &seen;
		return MHD_YES;
	}
	if (*upload_data_size)
		return MHD_NO; /* unreachable: bodies are refused before they arrive */
	uint64_t t0 = kf_clock_mono_ns();
	char generated[KF_GW_REQUEST_ID_GEN_SIZE];
	const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
	if (!kf_gw_request_id_valid(rid)) {
		kf_gw_request_id_new(generated);
		rid = generated;
	}
	r.span = kf_span_enter(KF_INFO_SPAN(TARGET, "http_request",
		KF_STRN("method", method, strnlen(method, LOG_METHOD_MAX)),
		KF_STRN("path", url, strnlen(url, LOG_PATH_MAX)),
		KF_STR("request_id", rid), KF_EMPTY("user_id")));
	size_t route = dispatch(&r, method, refuse_body);
	size_t bytes = r.body.len;
	unsigned status = r.status;
	enum MHD_Result res = respond(&r, rid);
	kf_strbuf_release(&r.body);
	kf__gw_count_request(gw, (unsigned)route, route_label(route), status);
	if (status >= 500 && status != MHD_HTTP_SERVICE_UNAVAILABLE)
		KF_ERROR(TARGET, "request failed", KF_U64("status", status));
	else
		KF_DEBUG(TARGET, "request served", KF_U64("status", status), KF_U64("bytes", bytes),
			 KF_U64("elapsed_us", (kf_clock_mono_ns() - t0) / 1000));
	kf_span_close(r.span);
	return res;
}

/* ---- daemon --------------------------------------------------------------- */

static size_t unescape_cb(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	return kf_gw_unescape(s);
}

/* libmicrohttpd's own messages (malformed requests, resource limits):
 * DEBUG, since clients control how many there are. */
static void mhd_logger(void *cls, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char msg[256];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	KF_DEBUG(TARGET, "libmicrohttpd", KF_STR("detail", msg));
}

static bool sockaddr_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(a) ||
		       (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

static void format_addr(const struct sockaddr *sa, struct kf_strbuf *out)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		kf_strbuf_addf(out, "%s:%u", host, port);
	} else {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		kf_strbuf_addf(out, "[%s]:%u", host, port);
	}
}

/* Binds and listens on cfg->http; -1 with why on failure. */
static int listen_http(const struct kf_gw_config *cfg, struct kf_strbuf *bound,
		       struct kf_strbuf *why)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV }, *res = NULL;
	char port[8];
	snprintf(port, sizeof(port), "%u", cfg->http_port);
	int gai = getaddrinfo(cfg->http_host[0] ? cfg->http_host : NULL, port, &hints, &res);
	if (gai) {
		kf_strbuf_addf(why, "cannot resolve HTTP address '%s': %s", cfg->http,
			       gai_strerror(gai));
		return -1;
	}
	int fd = -1, last_errno = 0;
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		int one = 1, zero = 0;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ai->ai_family == AF_INET6 && !cfg->http_host[0])
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 128) != 0) {
			last_errno = errno;
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0) {
		kf_strbuf_addf(why, "cannot listen on HTTP address '%s': %s%s", cfg->http,
			       strerror(last_errno),
			       last_errno == EADDRINUSE ? " (is another gateway running?)" : "");
		return -1;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
		format_addr((struct sockaddr *)&ss, bound);
		if (!sockaddr_loopback((struct sockaddr *)&ss))
			KF_WARN(TARGET, "HTTP server reachable from other hosts (not loopback)",
				KF_STR("http", bound->buf));
	}
	return fd;
}

static enum kf_err read_pem(const char *path, struct kf_strbuf *out, struct kf_strbuf *why)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		kf_strbuf_addf(why, "cannot read TLS file '%s': %s", path, strerror(errno));
		return KF_EIO;
	}
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0 && out->len < (1u << 20))
		kf_strbuf_add(out, buf, n);
	bool bad = ferror(f) || out->oom || out->len == 0;
	fclose(f);
	if (bad) {
		kf_strbuf_addf(why, "cannot read TLS file '%s' (empty or unreadable)", path);
		return KF_EIO;
	}
	return KF_OK;
}

static enum kf_err load_tls(const struct kf_gw_config *cfg, struct kf__gw_http *h,
			    struct kf_strbuf *why)
{
	if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		kf_strbuf_addstr(why, "this libmicrohttpd was built without TLS (GnuTLS): "
			       "--tls-cert cannot be used");
		return KF_EHTTP;
	}
	enum kf_err err = read_pem(cfg->tls_cert, &h->tls_cert, why);
	if (!err)
		err = read_pem(cfg->tls_key ? cfg->tls_key : cfg->tls_cert, &h->tls_key, why);
	return err;
}

static void http_free(struct kf__gw_http *h)
{
	kf_strbuf_release(&h->tls_cert);
	/* The private key: wipe before freeing. */
	if (h->tls_key.alloc)
		memset(h->tls_key.buf, 0, h->tls_key.alloc);
	kf_strbuf_release(&h->tls_key);
	free(h);
}

enum kf_err kf__gw_http_start(struct kf__gw *gw, struct kf_strbuf *bound, struct kf_strbuf *why)
{
	const struct kf_gw_config *cfg = gw->cfg;
	struct kf__gw_http *h = calloc(1, sizeof(*h));
	if (!h)
		return KF_ENOMEM;
	kf_strbuf_init(&h->tls_cert, 0);
	kf_strbuf_init(&h->tls_key, 0);
	enum kf_err err = cfg->tls_cert ? load_tls(cfg, h, why) : KF_OK;
	struct kf_strbuf addr = KF_STRBUF_INIT;
	int fd = err ? -1 : listen_http(cfg, &addr, why);
	if (fd < 0) {
		kf_strbuf_release(&addr);
		http_free(h);
		return err ? err : KF_EHTTP;
	}
	/* MHD_USE_ITC: each pool thread gets an inter-thread channel in its
	 * epoll set, which MHD_stop_daemon signals. Without it, stopping wakes
	 * the threads only by shutting the listen socket, and a thread at its
	 * share of the connection limit has taken that socket out of its set:
	 * it slept until one of its connections had an event or timed out
	 * (the idle timeout, or for ever at a share of 0, which config.c now
	 * refuses). */
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC;
	if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES)
		flags |= MHD_USE_EPOLL;
	struct MHD_OptionItem tls_opts[] = {
		{ MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert.buf },
		{ MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key.buf },
		{ MHD_OPTION_END, 0, NULL },
	};
	if (cfg->tls_cert)
		flags |= MHD_USE_TLS;
	else
		tls_opts[0].option = MHD_OPTION_END;
	gw->http = h;
	h->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, gw,
		/* First, so that every message of libmicrohttpd reaches it. */
		MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL,
		MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cfg->max_connections,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->idle_timeout_s,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)cfg->max_request_bytes,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)cfg->http_threads,
		MHD_OPTION_UNESCAPE_CALLBACK, unescape_cb, NULL,
		/* RFC 9112 strictness: 400 for HTTP/1.1 without Host, bare LF, ... */
		MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
		MHD_OPTION_ARRAY, tls_opts,
		MHD_OPTION_END);
	if (!h->daemon) {
		kf_strbuf_addf(why, "libmicrohttpd could not start on '%s'%s", addr.buf,
			       cfg->tls_cert ? " (check the TLS certificate and key)" : "");
		close(fd);
		kf_strbuf_release(&addr);
		gw->http = NULL;
		http_free(h);
		return KF_EHTTP;
	}
	if (bound)
		kf_strbuf_addstr(bound, addr.buf);
	kf_strbuf_release(&addr);
	return KF_OK;
}

void kf__gw_http_stop(struct kf__gw *gw)
{
	struct kf__gw_http *h = gw->http;
	if (!h)
		return;
	MHD_stop_daemon(h->daemon);
	http_free(h);
	gw->http = NULL;
}
