/*
 * sql/migrations.h — the migrations this binary carries, embedded at build
 * time from sql/NNN_name.sql by sql/embed.py (see docs/database.md).
 *
 * kf_migrations[i].version == i + 1: versions start at 1 and have no gaps
 * (the generator refuses to build otherwise). Read-only; any thread.
 * broker/migrate.h applies them; nothing else should need this header.
 */
#ifndef KF_SQL_MIGRATIONS_H
#define KF_SQL_MIGRATIONS_H

#include <stddef.h>

struct kf_migration {
	int version;           /* 1, 2, ... (NNN of the file name) */
	const char *name;      /* "initial" */
	const char *file;      /* "sql/001_initial.sql", for messages */
	const char *checksum;  /* SHA-256 of the file's bytes, 64 lower-case hex digits */
	const char *sql;       /* the file's text, NUL-terminated */
	size_t sql_len;
};

extern const struct kf_migration kf_migrations[];
extern const int kf_migrations_count;

#endif
