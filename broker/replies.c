/* replies.c — a hash of request ids with FIFO eviction. */
#include "broker/replies.h"

#include <stdlib.h>
#include <string.h>

static size_t bucket_of(const struct kf_replies *r, uint64_t client, uint64_t seq)
{
	uint64_t h = client * 0x9E3779B97F4A7C15ull ^ (seq + 0x632BE59BD9B4E019ull);

	h ^= h >> 29;
	h *= 0xBF58476D1CE4E5B9ull;
	h ^= h >> 32;
	return (size_t)(h & (r->n_buckets - 1));
}

enum kf_err kf_replies_init(struct kf_replies *r, size_t max_entries, size_t max_bytes)
{
	size_t nb = 64;

	memset(r, 0, sizeof(*r));
	while (nb < max_entries)
		nb <<= 1;
	if (!(r->buckets = calloc(nb, sizeof(*r->buckets))))
		return KF_ENOMEM;
	r->n_buckets = nb;
	r->max_entries = max_entries;
	r->max_bytes = max_bytes;
	return KF_OK;
}

static void unlink_entry(struct kf_replies *r, struct kf_reply_entry *e)
{
	struct kf_reply_entry **pp = &r->buckets[bucket_of(r, e->client, e->seq)];

	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = e->hnext;
	if (e->older)
		e->older->newer = e->newer;
	else
		r->oldest = e->newer;
	if (e->newer)
		e->newer->older = e->older;
	else
		r->newest = e->older;
	r->n--;
	r->bytes -= e->len;
	free(e->bytes);
	free(e);
}

void kf_replies_release(struct kf_replies *r)
{
	while (r->oldest)
		unlink_entry(r, r->oldest);
	free(r->buckets);
	memset(r, 0, sizeof(*r));
}

struct kf_reply_entry *kf_replies_find(struct kf_replies *r, uint64_t client, uint64_t seq,
	int type)
{
	struct kf_reply_entry *e;

	for (e = r->buckets[bucket_of(r, client, seq)]; e; e = e->hnext) {
		if (e->client == client && e->seq == seq) {
			if (e->type != type)
				return NULL;
			r->hits++;
			return e;
		}
	}
	return NULL;
}

/* Evicts finished entries, oldest first, until both limits hold. */
static void evict(struct kf_replies *r)
{
	struct kf_reply_entry *e = r->oldest;

	while (e && (r->n > r->max_entries || r->bytes > r->max_bytes)) {
		struct kf_reply_entry *next = e->newer;

		if (!e->inflight) {
			unlink_entry(r, e);
			r->evictions++;
		}
		e = next;
	}
}

struct kf_reply_entry *kf_replies_add(struct kf_replies *r, uint64_t client, uint64_t seq,
	int type, void *call)
{
	struct kf_reply_entry *e = calloc(1, sizeof(*e));
	size_t b;

	if (!e)
		return NULL;
	e->client = client;
	e->seq = seq;
	e->type = type;
	e->inflight = call;
	b = bucket_of(r, client, seq);
	e->hnext = r->buckets[b];
	r->buckets[b] = e;
	e->older = r->newest;
	if (r->newest)
		r->newest->newer = e;
	else
		r->oldest = e;
	r->newest = e;
	r->n++;
	evict(r);
	return e;
}

void kf_replies_finish(struct kf_replies *r, struct kf_reply_entry *e, const void *bytes,
	size_t len, bool keep)
{
	e->inflight = NULL;
	if (!keep || !(e->bytes = malloc(len ? len : 1))) {
		unlink_entry(r, e);
		return;
	}
	memcpy(e->bytes, bytes, len);
	e->len = len;
	r->bytes += len;
	evict(r);
}
