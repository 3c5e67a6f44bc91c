/*
 * broker/auth.h — who may change state (DESIGN.md §7).
 *
 * At start the broker draws a random 256-bit token and writes it, as 64 hex
 * digits and a newline, to the token file (mode 0600, written to a temporary
 * file and renamed into place, so a reader never sees half a token). A
 * request is authorised when it carries that token (kf_msg_req.auth_token),
 * or when it arrives over ipc:// from a peer whose uid is the broker's own
 * or root (the kernel vouches for it: SO_PEERCRED). The token changes at
 * every broker start; clients read the file again when refused (KF_EPERM).
 *
 * The broker holds an flock on its token file while it runs: a second
 * broker given the same file refuses to start instead of replacing the
 * token of the first (and locking out its operators).
 *
 * Without a token file authorisation is off: every request is accepted
 * (the broker warns at start).
 *
 * Not thread-safe; the owner thread checks, main creates and releases.
 */
#ifndef KF_BROKER_AUTH_H
#define KF_BROKER_AUTH_H

#include <stdbool.h>
#include <sys/types.h>

#include "bus/sock.h"
#include "common/err.h"
#include "common/strbuf.h"

#define KF_AUTH_TOKEN_HEX 64

struct kf_auth {
	bool enabled;
	char token[KF_AUTH_TOKEN_HEX + 1];
	char *path;                 /* owned; NULL when disabled */
	uid_t uid;                  /* the broker's effective uid */
	int lock_fd;                /* the token file, locked while we run; -1: none */
};

/*
 * path NULL: disabled (KF_OK). Otherwise generates the token and writes and
 * locks the file. KF_OK; KF_EBUSY (another running broker holds the file,
 * for 2 s), KF_EIO (getrandom or the file failed: `why` names the path and
 * errno's text), KF_ENOMEM.
 */
enum kf_err kf_auth_init(struct kf_auth *a, const char *path, struct kf_strbuf *why);

/* Removes the token file when it still holds this broker's token (a newer
 * broker may have replaced it), and forgets the token. */
void kf_auth_release(struct kf_auth *a);

/* True when the request may change state: auth disabled, the token matches
 * (constant time), or a trusted ipc peer. token and peer may be NULL. */
bool kf_auth_check(const struct kf_auth *a, const char *token, const struct kf_bus_peer *peer);

#endif
