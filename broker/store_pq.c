/*
 * store_pq.c — libpq helpers: error classification and text-format values.
 */
#include "broker/store_pq.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/clock.h"

static bool sqlstate_is(const char *state, const char *prefix)
{
	return state && strncmp(state, prefix, strlen(prefix)) == 0;
}

enum kf_err kf__pq_error(PGconn *conn, const PGresult *res, struct kf_strbuf *msg)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *text = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	enum kf_err err = KF_EDB;

	if (!text || !*text)
		text = PQerrorMessage(conn);
	if (msg) {
		if (msg->len)
			kf_strbuf_addstr(msg, ": ");
		kf_strbuf_addf(msg, "%s%s%s", state ? state : "", state ? ": " : "",
			       text && *text ? text : "no response from the server");
		/* libpq messages end with a newline; messages here do not. */
		while (msg->len && msg->buf[msg->len - 1] == '\n')
			msg->buf[--msg->len] = '\0';
	}
	if (PQstatus(conn) != CONNECTION_OK || !res || sqlstate_is(state, "08") ||
	    sqlstate_is(state, "57P01") || sqlstate_is(state, "57P02") ||
	    sqlstate_is(state, "57P03"))
		err = KF_EUNAVAIL;
	else if (sqlstate_is(state, "40001") || sqlstate_is(state, "40P01"))
		err = KF_EBUSY;
	else if (sqlstate_is(state, "22") || sqlstate_is(state, "23"))
		err = KF_EINVAL;
	return err;
}

enum kf_err kf__pq_exec(PGconn *conn, const char *sql, ExecStatusType want,
			uint64_t deadline_ns, bool *timed_out, struct kf_strbuf *msg)
{
	PGresult *res = kf__pq_query(conn, sql, deadline_ns, timed_out);
	enum kf_err err = KF_OK;

	if (!res || PQresultStatus(res) != want)
		err = kf__pq_error(conn, res, msg);
	PQclear(res);
	return err;
}

PGresult *kf__pq_query(PGconn *conn, const char *sql, uint64_t deadline_ns, bool *timed_out)
{
	return PQsendQuery(conn, sql) ? kf__pq_results(conn, deadline_ns, timed_out) : NULL;
}

PGresult *kf__pq_results(PGconn *conn, uint64_t deadline_ns, bool *timed_out)
{
	PGresult *kept = NULL, *res;

	while ((res = kf__pq_result(conn, deadline_ns, timed_out))) {
		if (kept && PQresultStatus(kept) == PGRES_FATAL_ERROR) {
			PQclear(res); /* the first error is the one to report */
			continue;
		}
		PQclear(kept);
		kept = res;
	}
	return kept;
}

PGresult *kf__pq_result(PGconn *conn, uint64_t deadline_ns, bool *timed_out)
{
	while (deadline_ns && PQisBusy(conn)) {
		uint64_t now = kf_clock_mono_ns();
		struct pollfd pfd = { .fd = PQsocket(conn), .events = POLLIN };
		int n;

		if (now >= deadline_ns) {
			/* libpq then reads end-of-file: "server closed the
			 * connection unexpectedly", CONNECTION_BAD. */
			shutdown(pfd.fd, SHUT_RDWR);
			if (timed_out)
				*timed_out = true;
			break;
		}
		n = poll(&pfd, 1, (int)((deadline_ns - now) / 1000000u) + 1);
		if ((n < 0 && errno != EINTR) || (n > 0 && !PQconsumeInput(conn)))
			break; /* PQgetResult reports it */
	}
	return PQgetResult(conn);
}

long long kf__pq_ll(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return 0;
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

bool kf__pq_bool(const PGresult *res, int row, int col)
{
	return !PQgetisnull(res, row, col) && PQgetvalue(res, row, col)[0] == 't';
}

const char *kf__pq_str(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}
