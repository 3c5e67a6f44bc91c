/*
 * health.c — the cached readiness probe (see health.h).
 */
#include "gateway/health.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "broker/migrate.h"
#include "common/clock.h"
#include "telemetry/log.h"

#define TARGET "keyforge::gateway::health"
#define QUERY_TIMEOUT_NS (2ULL * 1000000000ULL)
#define SQLSTATE_UNDEFINED_TABLE "42P01"

struct kf_gw_health {
	char *conninfo;                /* NULL: libpq defaults */
	uint64_t interval_ns;
	int newest;
	pthread_t thread;
	pthread_mutex_t mu;            /* res, stop */
	pthread_cond_t cv;             /* CLOCK_MONOTONIC */
	bool stop;
	struct kf_gw_health_result res;
	/* probe thread only */
	PGconn *conn;
	int last_state;                /* -1 none yet, 0 down, 1 db up */
	bool last_mig_ok;
};

/* The first line of a libpq message, without its trailing newline. */
static void first_line(char *dst, size_t cap, const char *prefix, const char *msg)
{
	size_t n = strcspn(msg ? msg : "", "\n");
	snprintf(dst, cap, "%s%.*s", prefix, (int)n, msg ? msg : "");
}

static PGconn *connect_db(const struct kf_gw_health *h)
{
	/* Later keywords win: the operator's conninfo (dbname, expanded) may
	 * override the timeout. */
	const char *keys[] = { "connect_timeout", "fallback_application_name", "dbname", NULL };
	const char *vals[] = { "2", "keyforge-gateway", h->conninfo, NULL };
	if (!h->conninfo)
		keys[2] = NULL;
	return PQconnectdbParams(keys, vals, 1);
}

enum wait { WAIT_READY, WAIT_TIMEOUT, WAIT_BROKEN };

/* Waits until the connection has a complete result or the deadline passes. */
static enum wait wait_result(PGconn *c, uint64_t deadline)
{
	for (;;) {
		if (!PQconsumeInput(c))
			return WAIT_BROKEN;
		if (!PQisBusy(c))
			return WAIT_READY;
		uint64_t now = kf_clock_mono_ns();
		if (now >= deadline)
			return WAIT_TIMEOUT;
		struct pollfd pfd = { .fd = PQsocket(c), .events = POLLIN };
		int ms = (int)((deadline - now) / 1000000) + 1;
		if (poll(&pfd, 1, ms) < 0 && errno != EINTR)
			return WAIT_BROKEN;
	}
}

/*
 * Reads the applied migration version. 0 when schema_migrations does not
 * exist (nothing migrated yet). false (and detail) when the connection or
 * the query failed or timed out.
 */
static bool query_applied(PGconn *c, int *applied, char *detail, size_t cap)
{
	if (!PQsendQuery(c, "SELECT coalesce(max(version), 0) FROM schema_migrations")) {
		first_line(detail, cap, "query failed: ", PQerrorMessage(c));
		return false;
	}
	uint64_t deadline = kf_clock_mono_ns() + QUERY_TIMEOUT_NS;
	bool ok = false, answered = false;
	for (;;) {
		enum wait w = wait_result(c, deadline);
		if (w == WAIT_TIMEOUT) {
			snprintf(detail, cap, "no answer from the database within 2 s");
			return false;
		}
		if (w == WAIT_BROKEN) {
			first_line(detail, cap, "connection lost: ", PQerrorMessage(c));
			return false;
		}
		PGresult *res = PQgetResult(c);
		if (!res)
			break;
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
			*applied = atoi(PQgetvalue(res, 0, 0));
			ok = answered = true;
		} else if (state && strcmp(state, SQLSTATE_UNDEFINED_TABLE) == 0) {
			*applied = 0;
			ok = answered = true;
		} else if (!answered) {
			first_line(detail, cap, "query failed: ", PQresultErrorMessage(res));
			answered = true;
		}
		PQclear(res);
	}
	return ok;
}

static void log_transitions(struct kf_gw_health *h, const struct kf_gw_health_result *r)
{
	int state = r->db_ok;
	if (state != h->last_state) {
		if (!state)
			KF_ERROR(TARGET, "database connection failed", KF_STR("error", r->db_detail));
		else if (h->last_state == 0)
			KF_INFO(TARGET, "database connection restored");
		else
			KF_INFO(TARGET, "database connected", KF_I64("applied", r->applied),
				KF_I64("newest", r->newest));
	}
	if (state && !r->migrations_ok && (h->last_mig_ok || h->last_state != 1))
		KF_WARN(TARGET, "database schema is not at the newest migration; not ready",
			KF_I64("applied", r->applied), KF_I64("newest", r->newest));
	h->last_state = state;
	h->last_mig_ok = state && r->migrations_ok;
}

static void probe_once(struct kf_gw_health *h, struct kf_gw_health_result *r)
{
	r->db_ok = r->migrations_ok = false;
	r->applied = -1;
	r->newest = h->newest;
	snprintf(r->migrations_detail, sizeof(r->migrations_detail), "unknown: no database");
	if (h->conn && PQstatus(h->conn) != CONNECTION_OK) {
		PQfinish(h->conn);
		h->conn = NULL;
	}
	if (!h->conn) {
		h->conn = connect_db(h);
		if (!h->conn || PQstatus(h->conn) != CONNECTION_OK) {
			first_line(r->db_detail, sizeof(r->db_detail), "",
				   h->conn ? PQerrorMessage(h->conn) : "out of memory");
			PQfinish(h->conn);
			h->conn = NULL;
			return;
		}
	}
	int applied = -1;
	if (!query_applied(h->conn, &applied, r->db_detail, sizeof(r->db_detail))) {
		/* Drop it: the next probe starts from a fresh connection. */
		PQfinish(h->conn);
		h->conn = NULL;
		return;
	}
	r->db_ok = true;
	r->applied = applied;
	r->migrations_ok = applied == h->newest;
	snprintf(r->db_detail, sizeof(r->db_detail), "connected");
	snprintf(r->migrations_detail, sizeof(r->migrations_detail),
		 "applied %d, newest %d%s", applied, h->newest,
		 applied < h->newest ? ": the broker applies migrations at start"
		 : applied > h->newest ? ": the database is newer than this gateway" : "");
}

static void *probe_main(void *arg)
{
	struct kf_gw_health *h = arg;

	pthread_setname_np(pthread_self(), "kf:probe");  /* top -H, perf */
	KF_SPAN_SCOPE(KF_INFO_SPAN(TARGET, "readiness_probe",
				   KF_U64("interval_ms", h->interval_ns / 1000000)));
	pthread_mutex_lock(&h->mu);
	while (!h->stop) {
		pthread_mutex_unlock(&h->mu);
		struct kf_gw_health_result r = { .probed = true };
		probe_once(h, &r);
		log_transitions(h, &r);
		r.checked_ns = kf_clock_mono_ns();
		pthread_mutex_lock(&h->mu);
		r.probes = h->res.probes + 1;
		h->res = r;
		uint64_t until = kf_clock_mono_ns() + h->interval_ns;
		struct timespec ts = { .tv_sec = (time_t)(until / 1000000000ULL),
				       .tv_nsec = (long)(until % 1000000000ULL) };
		while (!h->stop && pthread_cond_timedwait(&h->cv, &h->mu, &ts) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&h->mu);
	PQfinish(h->conn);
	h->conn = NULL;
	return NULL;
}

enum kf_err kf_gw_health_start(struct kf_gw_health **out, const char *conninfo,
			       uint64_t interval_ns)
{
	*out = NULL;
	struct kf_gw_health *h = calloc(1, sizeof(*h));
	if (!h)
		return KF_ENOMEM;
	if (conninfo && !(h->conninfo = strdup(conninfo))) {
		free(h);
		return KF_ENOMEM;
	}
	h->interval_ns = interval_ns;
	h->newest = kf_migrate_newest();
	h->last_state = -1;
	h->res.applied = -1;
	h->res.newest = h->newest;
	snprintf(h->res.db_detail, sizeof(h->res.db_detail), "not probed yet");
	snprintf(h->res.migrations_detail, sizeof(h->res.migrations_detail), "not probed yet");
	kf_clock_mono_cond_init(&h->cv);
	pthread_mutex_init(&h->mu, NULL);
	if (pthread_create(&h->thread, NULL, probe_main, h) != 0) {
		pthread_cond_destroy(&h->cv);
		pthread_mutex_destroy(&h->mu);
		free(h->conninfo);
		free(h);
		return KF_EIO;
	}
	*out = h;
	return KF_OK;
}

void kf_gw_health_stop(struct kf_gw_health *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->mu);
	h->stop = true;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->thread, NULL);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	free(h->conninfo);
	free(h);
}

void kf_gw_health_get(struct kf_gw_health *h, struct kf_gw_health_result *out)
{
	pthread_mutex_lock(&h->mu);
	*out = h->res;
	pthread_mutex_unlock(&h->mu);
}

uint64_t kf_gw_health_interval_ns(const struct kf_gw_health *h)
{
	return h->interval_ns;
}

bool kf_gw_health_ready(const struct kf_gw_health_result *r, uint64_t interval_ns,
			uint64_t now_ns)
{
	uint64_t age = now_ns > r->checked_ns ? now_ns - r->checked_ns : 0;
	return r->probed && r->db_ok && r->migrations_ok &&
	       age <= KF_GW_HEALTH_STALE_INTERVALS * interval_ns;
}
