/* thread.c — per-thread nice values and the kernel's autogroups (see
 * thread.h). */
#include "common/thread.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/io.h"

int kf_thread_set_nice(int nice)
{
	if (nice < -20 || nice > 19)
		return EINVAL;
	/* PRIO_PROCESS with a thread id addresses that one thread on Linux. */
	return setpriority(PRIO_PROCESS, (id_t)gettid(), nice) == 0 ? 0 : errno;
}

/* True when the comma-separated list [s, e) holds the word "cpu". */
static bool has_cpu(const char *s, const char *e)
{
	while (s < e) {
		const char *c = memchr(s, ',', (size_t)(e - s));
		const char *end = c ? c : e;

		if (end - s == 3 && memcmp(s, "cpu", 3) == 0)
			return true;
		s = end + 1;
	}
	return false;
}

static bool copy_path(const char *s, const char *e, char *out, size_t n)
{
	size_t len = (size_t)(e - s);

	if (len == 0 || len >= n)
		return false;
	memcpy(out, s, len);
	out[len] = '\0';
	return true;
}

bool kf_cgroup_cpu_path(const char *text, char *out, size_t n, bool *v2)
{
	const char *line = text, *v2_path = NULL, *v2_end = NULL;

	*v2 = false;
	/* Lines "ID:CONTROLLERS:PATH"; v1's cpu line wins over v2's "0::". */
	while (line && *line) {
		const char *eol = strchr(line, '\n');
		const char *end = eol ? eol : line + strlen(line);
		const char *c1 = memchr(line, ':', (size_t)(end - line));
		const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(end - c1 - 1)) : NULL;

		if (c2) {
			if (has_cpu(c1 + 1, c2))
				return copy_path(c2 + 1, end, out, n);
			if (c1 - line == 1 && line[0] == '0' && c2 == c1 + 1) {
				v2_path = c2 + 1;
				v2_end = end;
			}
		}
		line = eol ? eol + 1 : NULL;
	}
	if (!v2_path)
		return false;
	*v2 = true;
	return copy_path(v2_path, v2_end, out, n);
}

bool kf_thread_in_autogroup(void)
{
	char buf[4096], path[1024], file[1200];
	bool v2;

	if (!kf_read_text("/proc/sys/kernel/sched_autogroup_enabled", buf, sizeof buf) ||
	    buf[0] != '1')
		return false;
	if (!kf_read_text("/proc/self/cgroup", buf, sizeof buf) ||
	    !kf_cgroup_cpu_path(buf, path, sizeof path, &v2))
		return false;
	if (strcmp(path, "/") == 0)
		return true;
	if (!v2)
		return false;
	/* Under v2 a group is its own task group only when its parent hands
	 * it the cpu controller: then "cpu" is in its cgroup.controllers. */
	snprintf(file, sizeof file, "/sys/fs/cgroup%s/cgroup.controllers", path);
	if (!kf_read_text(file, buf, sizeof buf))
		return false;
	buf[strcspn(buf, "\n")] = '\0';
	for (char *save = NULL, *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save))
		if (strcmp(w, "cpu") == 0)
			return false;
	return true;
}
