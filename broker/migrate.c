/*
 * migrate.c — apply the embedded migrations once, in one transaction, under
 * an advisory lock; compare what the database recorded with what this
 * binary carries.
 */
#include "broker/migrate.h"

#include <stdio.h>
#include <string.h>

#include "broker/store_pq.h"
#include "sql/migrations.h"

#define LOCK_SQL "SELECT pg_advisory_xact_lock(5424107778338865492)"
_Static_assert(KF_MIGRATE_LOCK_KEY == 5424107778338865492LL, "LOCK_SQL matches the key");

static const char create_sql[] =
	"CREATE TABLE schema_migrations ("
	" version integer PRIMARY KEY,"
	" name text NOT NULL,"
	" checksum text NOT NULL,"
	" applied_at timestamptz NOT NULL DEFAULT clock_timestamp())";

int kf_migrate_newest(void)
{
	return kf_migrations_count;
}

/* true/false in *exists; the table name resolves through search_path. */
static enum kf_err table_exists(PGconn *conn, uint64_t deadline, bool *exists,
				struct kf_strbuf *msg)
{
	PGresult *res = kf__pq_query(conn,
		"SELECT to_regclass('schema_migrations') IS NOT NULL", deadline, NULL);
	enum kf_err err = KF_OK;

	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		err = kf__pq_error(conn, res, msg);
	else
		*exists = kf__pq_bool(res, 0, 0);
	PQclear(res);
	return err;
}

/* Checks one recorded row against the binary's migration of that version. */
static enum kf_err check_row(int row_index, int version, const char *name,
			     const char *checksum, struct kf_strbuf *msg)
{
	const struct kf_migration *m;

	if (version > kf_migrations_count) {
		kf_strbuf_addf(msg, "the database has migration %d but this binary carries "
			       "only up to %d: run a newer keyforge-broker", version,
			       kf_migrations_count);
		return KF_EMIGRATION;
	}
	if (version != row_index + 1) {
		kf_strbuf_addf(msg, "schema_migrations lacks version %d (found %d next): "
			       "the table was edited by hand", row_index + 1, version);
		return KF_EMIGRATION;
	}
	m = &kf_migrations[version - 1];
	if (strcmp(m->checksum, checksum) != 0 || strcmp(m->name, name) != 0) {
		kf_strbuf_addf(msg, "migration '%s' differs from the one applied to the "
			       "database (checksum %.12s... recorded, %.12s... in this binary): "
			       "migrations are append-only, add a new sql/NNN_name.sql instead",
			       m->file, checksum, m->checksum);
		return KF_EMIGRATION;
	}
	return KF_OK;
}

/* Verifies every recorded row; *applied = how many there are. */
static enum kf_err verify_recorded(PGconn *conn, uint64_t deadline, int *applied,
				   struct kf_strbuf *msg)
{
	PGresult *res = kf__pq_query(conn,
		"SELECT version, name, checksum FROM schema_migrations ORDER BY version", deadline,
		NULL);
	enum kf_err err = KF_OK;
	int i;

	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		err = kf__pq_error(conn, res, msg);
		goto out;
	}
	for (i = 0; i < PQntuples(res) && !err; i++)
		err = check_row(i, (int)kf__pq_ll(res, i, 0), PQgetvalue(res, i, 1),
				PQgetvalue(res, i, 2), msg);
	*applied = PQntuples(res);
out:
	PQclear(res);
	return err;
}

static enum kf_err run_one(PGconn *conn, uint64_t deadline, const struct kf_migration *m,
			   struct kf_strbuf *msg)
{
	char version[16];
	const char *params[3] = { version, m->name, m->checksum };
	PGresult *res;
	enum kf_err err;

	err = kf__pq_exec(conn, m->sql, PGRES_COMMAND_OK, deadline, NULL, msg);
	if (err) {
		if (err != KF_EUNAVAIL)
			err = KF_EMIGRATION;
		kf_strbuf_addf(msg, " (in '%s')", m->file);
		return err;
	}
	snprintf(version, sizeof(version), "%d", m->version);
	res = PQsendQueryParams(conn, "INSERT INTO schema_migrations (version, name, checksum) "
				      "VALUES ($1, $2, $3)", 3, NULL, params, NULL, NULL, 0)
		? kf__pq_results(conn, deadline, NULL) : NULL;
	if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
		err = kf__pq_error(conn, res, msg);
	PQclear(res);
	return err;
}

/* The body of the transaction: lock, create, verify, apply. */
static enum kf_err migrate_locked(PGconn *conn, uint64_t deadline, int *applied, int *ran,
				  struct kf_strbuf *msg)
{
	bool exists = false;
	enum kf_err err;
	int v;

	if ((err = kf__pq_exec(conn, LOCK_SQL, PGRES_TUPLES_OK, deadline, NULL, msg)) ||
	    (err = table_exists(conn, deadline, &exists, msg)))
		return err;
	if (!exists && (err = kf__pq_exec(conn, create_sql, PGRES_COMMAND_OK, deadline, NULL, msg)))
		return err;
	if ((err = verify_recorded(conn, deadline, applied, msg)))
		return err;
	for (v = *applied + 1; v <= kf_migrations_count; v++) {
		if ((err = run_one(conn, deadline, &kf_migrations[v - 1], msg)))
			return err;
		(*ran)++;
	}
	*applied = kf_migrations_count;
	return KF_OK;
}

enum kf_err kf_migrate_apply(PGconn *conn, uint64_t deadline, int *applied, int *ran,
			     struct kf_strbuf *msg)
{
	struct kf_strbuf scratch = KF_STRBUF_INIT;
	int n_applied = 0, n_ran = 0;
	enum kf_err err;

	if (!msg)
		msg = &scratch;
	err = kf__pq_exec(conn, "BEGIN", PGRES_COMMAND_OK, deadline, NULL, msg);
	if (!err)
		err = migrate_locked(conn, deadline, &n_applied, &n_ran, msg);
	if (!err)
		err = kf__pq_exec(conn, "COMMIT", PGRES_COMMAND_OK, deadline, NULL, msg);
	else if (PQstatus(conn) == CONNECTION_OK)
		kf__pq_exec(conn, "ROLLBACK", PGRES_COMMAND_OK, deadline, NULL, NULL);
	if (err)
		n_ran = 0;
	if (applied)
		*applied = n_applied;
	if (ran)
		*ran = n_ran;
	kf_strbuf_release(&scratch);
	return err;
}

enum kf_err kf_migrate_applied(PGconn *conn, uint64_t deadline, int *applied,
			       struct kf_strbuf *msg)
{
	bool exists = false;
	PGresult *res;
	enum kf_err err;

	*applied = 0;
	if ((err = table_exists(conn, deadline, &exists, msg)) || !exists)
		return err;
	res = kf__pq_query(conn, "SELECT coalesce(max(version), 0) FROM schema_migrations", deadline,
			   NULL);
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		err = kf__pq_error(conn, res, msg);
	else
		*applied = (int)kf__pq_ll(res, 0, 0);
	PQclear(res);
	return err;
}

bool kf_migrate_ready(PGconn *conn, int *applied)
{
	int version = -1;
	bool ready = false;

	if (conn && PQstatus(conn) == CONNECTION_OK &&
	    kf_migrate_applied(conn, 0, &version, NULL) == KF_OK)
		ready = version == kf_migrations_count;
	else
		version = -1;
	if (applied)
		*applied = version;
	return ready;
}
