/* auth.c — the token file and the authorisation check. */
#include "common/io.h"
#include "broker/auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* How long a starting broker waits for the token file's lock: a broker
 * being restarted on the same addresses lets its sockets go a moment
 * before its token file. */
#define LOCK_WAIT_MS 2000
#define LOCK_POLL_MS 20

static enum kf_err random_hex(char out[KF_AUTH_TOKEN_HEX + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[KF_AUTH_TOKEN_HEX / 2];
	size_t got = 0;

	while (got < sizeof raw) {
		ssize_t n = getrandom(raw + got, sizeof raw - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return KF_EIO;
		got += (size_t)n;
	}
	for (size_t i = 0; i < sizeof raw; i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[KF_AUTH_TOKEN_HEX] = '\0';
	return KF_OK;
}

/*
 * The token file is locked (flock) by the broker that wrote it, for as long
 * as it runs; the kernel drops the lock when that process ends, however it
 * ends. A second broker given the same file — on other addresses, so that
 * binding did not stop it — would otherwise overwrite the running broker's
 * token and lock its operators out.
 *
 * Fails with KF_EBUSY when the file at path is locked by a live broker for
 * LOCK_WAIT_MS; a missing or unlocked file is fine.
 */
static enum kf_err check_unowned(const char *path, struct kf_strbuf *why)
{
	struct timespec pause = { 0, LOCK_POLL_MS * 1000000L };
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	bool locked = true;

	if (fd < 0)
		return KF_OK; /* none yet; any other problem shows when writing */
	for (int waited = 0; waited <= LOCK_WAIT_MS; waited += LOCK_POLL_MS) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK) {
			locked = false;
			break;
		}
		nanosleep(&pause, NULL);
	}
	close(fd); /* and with it the lock taken on the old file, if any */
	if (!locked)
		return KF_OK;
	kf_strbuf_addf(why, "token file '%s' belongs to another running broker; give each broker "
		       "its own --token-file", path);
	return KF_EBUSY;
}

/* Writes token + "\n" to a temporary file beside `path` with mode 0600,
 * locks it and renames it over `path`: readers see the old token or the
 * new, never half, and the file in place is locked from the start. The
 * locked descriptor is left in *lock_fd. */
static enum kf_err write_token(const char *path, const char *token, int *lock_fd,
	struct kf_strbuf *why)
{
	struct kf_strbuf tmp = KF_STRBUF_INIT;
	enum kf_err err = KF_OK;
	int fd;

	kf_strbuf_addf(&tmp, "%s.tmp.%ld", path, (long)getpid());
	if (tmp.oom)
		return KF_ENOMEM;
	unlink(tmp.buf);
	fd = open(tmp.buf, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || fchmod(fd, 0600) != 0 || flock(fd, LOCK_EX | LOCK_NB) != 0 ||
	    !kf_write_all(fd, token, strlen(token)) || !kf_write_all(fd, "\n", 1) ||
	    fsync(fd) != 0 || rename(tmp.buf, path) != 0)
		err = KF_EIO;
	if (err) {
		kf_strbuf_addf(why, "cannot write the token file '%s': %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		unlink(tmp.buf);
	} else {
		*lock_fd = fd;
	}
	kf_strbuf_release(&tmp);
	return err;
}

enum kf_err kf_auth_init(struct kf_auth *a, const char *path, struct kf_strbuf *why)
{
	enum kf_err err;

	memset(a, 0, sizeof(*a));
	a->uid = geteuid();
	a->lock_fd = -1;
	if (!path)
		return KF_OK;
	if ((err = check_unowned(path, why)))
		return err;
	if ((err = random_hex(a->token))) {
		kf_strbuf_addf(why, "cannot draw a random token: %s", strerror(errno));
		return err;
	}
	if (!(a->path = strdup(path)))
		return KF_ENOMEM;
	if ((err = write_token(path, a->token, &a->lock_fd, why))) {
		free(a->path);
		a->path = NULL;
		return err;
	}
	a->enabled = true;
	return KF_OK;
}

void kf_auth_release(struct kf_auth *a)
{
	char buf[KF_AUTH_TOKEN_HEX + 2];
	FILE *f;

	if (a->path) {
		if ((f = fopen(a->path, "re"))) {
			size_t n = fread(buf, 1, sizeof buf, f);

			fclose(f);
			if (n >= KF_AUTH_TOKEN_HEX && !memcmp(buf, a->token, KF_AUTH_TOKEN_HEX))
				unlink(a->path);
		}
		if (a->lock_fd >= 0)
			close(a->lock_fd);
	}
	free(a->path);
	memset(a, 0, sizeof(*a));
	a->lock_fd = -1;
}

/* Compares every byte whatever the first difference: the time taken says
 * nothing about how much of a guess was right. */
static bool token_equal(const char *given, const char *token)
{
	size_t n = strnlen(given, KF_AUTH_TOKEN_HEX + 1);
	unsigned char diff = n != KF_AUTH_TOKEN_HEX;

	for (size_t i = 0; i < KF_AUTH_TOKEN_HEX; i++)
		diff |= (unsigned char)((i < n ? given[i] : 0) ^ token[i]);
	return diff == 0;
}

bool kf_auth_check(const struct kf_auth *a, const char *token, const struct kf_bus_peer *peer)
{
	if (!a->enabled)
		return true;
	if (token && token_equal(token, a->token))
		return true;
	return peer && peer->transport == KF_BUS_IPC && peer->has_cred &&
	       (peer->uid == (uint64_t)a->uid || peer->uid == 0);
}
