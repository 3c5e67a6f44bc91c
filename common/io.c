#include "common/io.h"

#include <errno.h>
#include <stdio.h>
#include <unistd.h>

bool kf_write_all(int fd, const void *p, size_t len)
{
	const char *c = p;

	while (len) {
		ssize_t n = write(fd, c, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		c += n;
		len -= (size_t)n;
	}
	return true;
}

bool kf_read_text(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "re");
	size_t n;
	bool err;

	if (!f)
		return false;
	n = fread(buf, 1, cap - 1, f);
	err = ferror(f);
	fclose(f);
	if (err)
		return false;
	buf[n] = '\0';
	return true;
}
