/*
 * main.c — keyforge-gateway: /metrics and health for Prometheus
 * (DESIGN.md §5-6, docs/gateway.md).
 *
 * Start: config, logging, the aggregator, credentials, the subscriber to the
 * broker's monitor socket, the readiness probe, then HTTP. Stop (SIGTERM/SIGINT):
 * /health/ready answers 503 at once while /metrics is still served for
 * --shutdown-delay (so a load balancer or Kubernetes sees "not ready" before
 * the port closes), then HTTP stops, then the rest; exit 0. A second signal
 * skips the delay.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/sock.h"
#include "gateway/auth.h"
#include "gateway/gateway.h"
#include "gateway/health.h"
#include "kf_config.h"
#include "telemetry/log.h"

static const char *const reserved_prefixes[] = {
	"process_",            /* the gateway's own process metrics */
	"keyforge_gateway_",   /* the gateway's own metrics */
	NULL,
};

static int fail(const char *what, enum kf_err err, const struct kf_strbuf *why)
{
	KF_ERROR(KF__GW_TARGET, "gateway failed to start", KF_STR("step", what), KF_ERR(err),
		 KF_STR("detail", why->len ? why->buf : kf_strerror(err)));
	kf_log_flush();
	fprintf(stderr, "keyforge-gateway: %s: %s\n", what, why->len ? why->buf : kf_strerror(err));
	return 1;
}

static void log_config(const struct kf_gw_config *cfg)
{
	KF_DEBUG(KF__GW_TARGET, "config loaded", KF_STR("http", cfg->http),
		 KF_STR("monitor", cfg->monitor), KF_BOOL("db", cfg->db != NULL),
		 KF_STR("auth_file", cfg->auth_file ? cfg->auth_file : ""),
		 KF_BOOL("tls", cfg->tls_cert != NULL),
		 KF_U64("series_ttl_ms", cfg->series_ttl_ns / 1000000),
		 KF_U64("max_series", cfg->max_series),
		 KF_U64("max_connections", cfg->max_connections),
		 KF_U64("idle_timeout_s", cfg->idle_timeout_s),
		 KF_U64("max_request_bytes", cfg->max_request_bytes),
		 KF_U64("http_threads", cfg->http_threads));
}

/* Waits for SIGTERM/SIGINT (blocked in every thread), then for the drain
 * delay unless a second one arrives. */
static void wait_for_shutdown(struct kf__gw *gw, const sigset_t *set)
{
	int sig = 0;
	while (sigwait(set, &sig) != 0 || (sig != SIGTERM && sig != SIGINT))
		;
	atomic_store(&gw->shutting_down, true);
	KF_INFO(KF__GW_TARGET, "shutdown started; /health/ready now answers 503",
		KF_STR("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"),
		KF_U64("delay_ms", gw->cfg->shutdown_delay_ns / 1000000));
	struct timespec ts = { .tv_sec = (time_t)(gw->cfg->shutdown_delay_ns / 1000000000ULL),
			       .tv_nsec = (long)(gw->cfg->shutdown_delay_ns % 1000000000ULL) };
	while (ts.tv_sec || ts.tv_nsec) {
		int r = sigtimedwait(set, NULL, &ts);
		if (r == SIGTERM || r == SIGINT || (r < 0 && errno == EAGAIN))
			break;
	}
}

static enum kf_err start(struct kf__gw *gw, struct kf_strbuf *why, const char **step)
{
	struct kf_gw_agg_config acfg = KF_GW_AGG_CONFIG_INIT;
	acfg.series_ttl_ns = gw->cfg->series_ttl_ns;
	acfg.max_series = gw->cfg->max_series;
	acfg.reserved_prefixes = reserved_prefixes;
	enum kf_err err;
	*step = "aggregator";
	if ((err = kf_gw_agg_new(&gw->agg, &acfg)))
		return err;
	*step = "metrics";
	if ((err = kf__gw_expose_new(gw)))
		return err;
	if (gw->cfg->auth_file) {
		*step = "credentials";
		if ((err = kf_gw_creds_load(gw->cfg->auth_file, &gw->creds, why)))
			return err;
	}
	*step = "monitor";
	if ((err = kf__gw_ingest_start(gw, why)))
		return err;
	*step = "readiness probe";
	if ((err = kf_gw_health_start(&gw->health, gw->cfg->db, gw->cfg->probe_interval_ns)))
		return err;
	struct kf_strbuf bound = KF_STRBUF_INIT;
	*step = "http";
	err = kf__gw_http_start(gw, &bound, why);
	if (!err)
		KF_INFO(KF__GW_TARGET, "server started", KF_STR("http", bound.buf),
			KF_STR("scheme", gw->cfg->tls_cert ? "https" : "http"),
			KF_STR("monitor", gw->cfg->monitor),
			KF_U64("credentials", kf_gw_creds_count(gw->creds)),
			KF_STR("version", KF_VERSION));
	kf_strbuf_release(&bound);
	return err;
}

static void stop(struct kf__gw *gw)
{
	kf__gw_http_stop(gw);
	kf__gw_ingest_stop(gw);
	kf_gw_health_stop(gw->health);
	gw->health = NULL;
	kf__gw_expose_free(gw);
	kf_gw_creds_free(gw->creds);
	kf_gw_agg_free(gw->agg);
}

int main(int argc, char **argv)
{
	struct kf_gw_config cfg;
	enum kf_gw_config_action action;
	struct kf_strbuf why = KF_STRBUF_INIT;
	kf_gw_config_init(&cfg);
	if (kf_gw_config_parse(&cfg, argc, argv, &action, &why) != KF_OK) {
		fprintf(stderr, "keyforge-gateway: %s\n", why.buf);
		return 2;
	}
	if (action == KF_GW_HELP) {
		fputs(kf_gw_config_usage(), stdout);
		return 0;
	}
	if (action == KF_GW_VERSION) {
		printf("keyforge-gateway %s\n", KF_VERSION);
		return 0;
	}
	/* Signals are taken by sigwait in main only; nobody else sees them. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (kf_log_init_from_env("keyforge-gateway") == KF_OK)
		kf_log_install_fatal_handler("gateway panic");
	log_config(&cfg);

	struct kf__gw gw = { .cfg = &cfg };
	pthread_mutex_init(&gw.lock, NULL);
	pthread_mutex_init(&gw.render_lock, NULL);
	const char *step = "";
	enum kf_err err = start(&gw, &why, &step);
	int rc = 0;
	if (err) {
		rc = fail(step, err, &why);
	} else {
		wait_for_shutdown(&gw, &set);
	}
	stop(&gw);
	if (kf_bus_stuck_closes())
		KF_WARN(KF__GW_TARGET, "sockets left open at exit",
			KF_U64("count", kf_bus_stuck_closes()),
			KF_STR("why", KF_BUS_STUCK_CLOSE_WHY));
	if (!err)
		KF_INFO(KF__GW_TARGET, "server stopped");
	pthread_mutex_destroy(&gw.lock);
	pthread_mutex_destroy(&gw.render_lock);
	kf_strbuf_release(&why);
	kf_log_shutdown();
	return rc;
}
