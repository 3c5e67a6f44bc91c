/*
 * broker/migrate.h — applying the embedded migrations (sql/) and the "ready"
 * check (DESIGN.md §4, docs/database.md).
 *
 * Rules:
 *  - kf_migrate_apply() runs every migration the database lacks, in order,
 *    inside ONE transaction under a transaction-scoped advisory lock, so two
 *    brokers starting together apply them once, and a failure leaves the
 *    database as it was.
 *  - Applied migrations are recorded in schema_migrations(version, name,
 *    checksum, applied_at). Before applying anything, every recorded row is
 *    compared with the binary's copy: a different checksum or name, or a
 *    version the binary does not carry (the database is newer than the
 *    binary), is KF_EMIGRATION with a message naming the file.
 *  - These calls are blocking libpq calls: call them from a database thread
 *    (the store's, or a tool's main thread), never from the broker's owner
 *    thread or an nng callback. The PGconn stays owned by the caller and is
 *    left outside any transaction.
 *  - `deadline` (CLOCK_MONOTONIC ns, 0 = none) bounds every wait for the
 *    server: past it the connection's socket is shut down and the call
 *    returns KF_EUNAVAIL, the connection unusable. A stopped server, or a
 *    lock on the tables held by another session, would otherwise hang the
 *    calling thread for good. A migration longer than the deadline never
 *    gets through: give it time (keyforge-broker: --db-timeout).
 *
 * `msg`, where given, receives a human-readable cause on failure (appended;
 * lower-case, names the file or the SQL error). It may be NULL.
 */
#ifndef KF_BROKER_MIGRATE_H
#define KF_BROKER_MIGRATE_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "common/err.h"
#include "common/strbuf.h"

/* Key of pg_advisory_xact_lock() held while migrating ("KFMIGRAT"). */
#define KF_MIGRATE_LOCK_KEY 0x4b464d4947524154LL

/* Newest migration version this binary carries (>= 1). Any thread. */
int kf_migrate_newest(void);

/*
 * Brings the database to kf_migrate_newest().
 * Returns KF_OK (and *applied = newest; *ran = how many were applied now,
 * 0 on a second start), KF_EMIGRATION (checksum/name mismatch, database
 * newer than the binary, or a migration's SQL failed), KF_EUNAVAIL (the
 * connection is broken, or no answer came by `deadline`: see below).
 * `applied` and `ran` may be NULL.
 */
enum kf_err kf_migrate_apply(PGconn *conn, uint64_t deadline, int *applied, int *ran,
			     struct kf_strbuf *msg);

/*
 * The version the database has applied: the highest recorded version, 0 when
 * schema_migrations does not exist yet. Read-only, no lock.
 * Returns KF_OK, KF_EUNAVAIL (connection broken, or past `deadline`) or KF_EDB.
 */
enum kf_err kf_migrate_applied(PGconn *conn, uint64_t deadline, int *applied,
			       struct kf_strbuf *msg);

/*
 * The gateway's "ready" check: the connection works and the applied version
 * equals the newest this binary carries. `applied` (may be NULL) receives
 * the applied version, -1 when it could not be read.
 */
bool kf_migrate_ready(PGconn *conn, int *applied);

#endif
