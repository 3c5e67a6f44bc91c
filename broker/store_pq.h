/*
 * broker/store_pq.h — small libpq helpers shared by the store and the
 * migrations (component-internal: kf__ names).
 */
#ifndef KF_BROKER_STORE_PQ_H
#define KF_BROKER_STORE_PQ_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "common/err.h"
#include "common/strbuf.h"

/*
 * Classifies a failed command (res may be NULL: out of memory or connection
 * lost) and appends "SQLSTATE: message" to msg (msg may be NULL):
 *   KF_EUNAVAIL  connection broken, or the server is shutting down
 *                (SQLSTATE classes 08, 57P01..57P03): try again later;
 *   KF_EBUSY     serialization failure or deadlock (40001, 40P01): retryable;
 *   KF_EINVAL    the data was refused (class 22 data exception, 23 integrity);
 *   KF_EDB       anything else (a bug or a schema problem).
 */
enum kf_err kf__pq_error(PGconn *conn, const PGresult *res, struct kf_strbuf *msg);

/* Runs sql (one or more statements, no parameters), waiting for its answer
 * at most until deadline_ns (monotonic; 0 = for ever) as kf__pq_result();
 * KF_OK when its status is `want` (PGRES_COMMAND_OK or PGRES_TUPLES_OK),
 * else kf__pq_error(): past the deadline, KF_EUNAVAIL and *timed_out set. */
enum kf_err kf__pq_exec(PGconn *conn, const char *sql, ExecStatusType want,
			uint64_t deadline_ns, bool *timed_out, struct kf_strbuf *msg);

/* PQgetResult(), waiting at most until deadline_ns (monotonic; 0 = for
 * ever). Past it the connection's socket is shut down, *timed_out is set
 * (timed_out may be NULL), and the result is libpq's for a lost connection:
 * every caller's error path then sees KF_EUNAVAIL, and only *timed_out
 * tells a server that stopped answering from one that went away. */
PGresult *kf__pq_result(PGconn *conn, uint64_t deadline_ns, bool *timed_out);

/* PQexec(conn, sql) with a deadline (kf__pq_results); NULL when it could not
 * be sent. */
PGresult *kf__pq_query(PGconn *conn, const char *sql, uint64_t deadline_ns, bool *timed_out);

/* After a PQsend*(): what PQexec() would return — the last result, or the
 * first error — waiting at most until deadline_ns as kf__pq_result(). NULL
 * when nothing came (the connection is gone). PQexec() itself waits for
 * ever, which a stopped or stalled server turns into a hung thread. */
PGresult *kf__pq_results(PGconn *conn, uint64_t deadline_ns, bool *timed_out);

/* Integer and boolean columns in text format; 0/false when NULL. */
long long kf__pq_ll(const PGresult *res, int row, int col);
bool kf__pq_bool(const PGresult *res, int row, int col);
/* NULL when the value is SQL NULL, else a pointer into res. */
const char *kf__pq_str(const PGresult *res, int row, int col);

#endif
