/*
 * pgtmp_fixture.h — the throwaway PostgreSQL cluster of an integration test
 * (scripts/pgtmp), shared by test_store, test_broker and test_worker.
 *
 * Usage in a group setup:
 *     struct kf_pgtmp pg;
 *     if (kf_pgtmp_start(&pg, conninfo, sizeof conninfo) != 0) return -1;
 * and kf_pgtmp_stop(&pg) in the teardown. Not thread-safe; one per process.
 */
#ifndef KF_TESTS_PGTMP_FIXTURE_H
#define KF_TESTS_PGTMP_FIXTURE_H

#include <stddef.h>

struct kf_pgtmp {
	char dir[64]; /* the cluster's folder, /tmp/keyforge-pg-XXXXXX */
};

/* Runs `scripts/pgtmp CMD DIR` (start, stop, pause, resume, ...). The first
 * line it prints (stdout and stderr) goes to out when out is not NULL.
 * Returns pclose()'s status: 0 on success. */
int kf_pgtmp_run(const struct kf_pgtmp *pg, const char *cmd, char *out, size_t out_size);

/* Makes the folder, arms a watchdog that removes the cluster however this
 * process ends (failed assertion, meson's timeout, kill -9), starts the
 * cluster and writes its libpq connection string to conninfo. 0 on success;
 * on failure prints why on stderr and returns -1. */
int kf_pgtmp_start(struct kf_pgtmp *pg, char *conninfo, size_t conninfo_size);

/* Stops the cluster and removes its folder; 0 on success. */
int kf_pgtmp_stop(const struct kf_pgtmp *pg);

#endif
