#include "pgtmp_fixture.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kf_config.h"

int kf_pgtmp_run(const struct kf_pgtmp *pg, const char *cmd, char *out, size_t out_size)
{
	char line[512];
	FILE *p;

	snprintf(line, sizeof(line), "'%s/scripts/pgtmp' %s '%s' 2>&1", KF_SOURCE_ROOT, cmd,
		 pg->dir);
	if (!(p = popen(line, "r")))
		return -1;
	if (out) {
		out[0] = '\0';
		if (fgets(out, (int)out_size, p))
			out[strcspn(out, "\n")] = '\0';
	}
	while (fgets(line, sizeof(line), p))
		;
	return pclose(p);
}

/*
 * A child that outlives us only to stop the cluster: it blocks on a pipe
 * whose write end only this process holds, so however this process ends the
 * read returns and the cluster is removed. After a normal teardown its
 * `pgtmp stop` is a no-op.
 */
static void start_watchdog(const struct kf_pgtmp *pg)
{
	char script[512], buf[1];
	int fds[2];
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) != 0)
		return;
	pid = fork();
	if (pid == 0) {
		/* Out of our process group: meson's timeout kills the group. */
		setsid();
		close(fds[1]);
		while (read(fds[0], buf, 1) > 0)
			;
		snprintf(script, sizeof(script), "%s/scripts/pgtmp", KF_SOURCE_ROOT);
		execl(script, script, "stop", pg->dir, (char *)NULL);
		_exit(127);
	}
	/* The write end stays open until we exit; O_CLOEXEC keeps it out of the
	 * programs we start (pgtmp, and the postmaster it forks). */
	close(fds[0]);
}

int kf_pgtmp_start(struct kf_pgtmp *pg, char *conninfo, size_t conninfo_size)
{
	snprintf(pg->dir, sizeof(pg->dir), "/tmp/keyforge-pg-XXXXXX");
	if (!mkdtemp(pg->dir) || chmod(pg->dir, 0755) != 0) {
		perror("pgtmp fixture: mkdtemp");
		return -1;
	}
	/* Before the start: a death during the start is cleaned up too (pgtmp
	 * stop removes a half-made folder; a start racing with it fails). */
	start_watchdog(pg);
	if (kf_pgtmp_run(pg, "start", conninfo, conninfo_size) != 0 ||
	    strncmp(conninfo, "host=", 5) != 0) {
		fprintf(stderr, "scripts/pgtmp start %s failed: %s\n", pg->dir, conninfo);
		kf_pgtmp_stop(pg);
		return -1;
	}
	return 0;
}

int kf_pgtmp_stop(const struct kf_pgtmp *pg)
{
	return kf_pgtmp_run(pg, "stop", NULL, 0);
}
