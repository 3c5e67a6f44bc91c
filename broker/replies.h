/*
 * broker/replies.h — the recent-replies cache that makes RPCs idempotent.
 *
 * REQ resends a request it got no answer for (timeout, new connection), with
 * the same request id (client, seq). The broker enters each state-changing
 * request here when it starts working on it; a copy that arrives while the
 * first is in flight joins it (it is answered with the same reply), and a
 * copy that arrives later gets the stored bytes again. Transient failures
 * (database away, shutting down) are not stored, so that a later resend is
 * tried for real.
 *
 * Bounded: at most `max_entries` entries and `max_bytes` of stored replies;
 * the oldest finished entries go first. An entry in flight is never evicted.
 * Not thread-safe: the owner thread owns it.
 */
#ifndef KF_BROKER_REPLIES_H
#define KF_BROKER_REPLIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct kf_reply_entry {
	uint64_t client, seq;
	int type;                       /* request type: an id reused for another type misses */
	void *inflight;                 /* the owner's call while in flight, else NULL */
	char *bytes;                    /* the stored reply once finished (owned) */
	size_t len;
	struct kf_reply_entry *hnext;   /* private */
	struct kf_reply_entry *older, *newer;
};

struct kf_replies {
	struct kf_reply_entry **buckets;
	size_t n_buckets;
	struct kf_reply_entry *oldest, *newest;
	size_t n, bytes;
	size_t max_entries, max_bytes;
	uint64_t hits, evictions;
};

enum kf_err kf_replies_init(struct kf_replies *r, size_t max_entries, size_t max_bytes);
void kf_replies_release(struct kf_replies *r);

/* The entry for (client, seq, type), or NULL. */
struct kf_reply_entry *kf_replies_find(struct kf_replies *r, uint64_t client, uint64_t seq,
	int type);

/* Adds an in-flight entry for `call`. NULL on out of memory (then the request
 * simply runs without idempotency). May evict old finished entries. */
struct kf_reply_entry *kf_replies_add(struct kf_replies *r, uint64_t client, uint64_t seq,
	int type, void *call);

/* The request finished with these reply bytes: keep a copy (keep = true) or
 * forget the entry (keep = false, or out of memory). */
void kf_replies_finish(struct kf_replies *r, struct kf_reply_entry *e, const void *bytes,
	size_t len, bool keep);

#endif
