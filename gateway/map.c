/*
 * map.c — open addressing, linear probing, tombstone deletion.
 */
#include "gateway/map.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* A distinct non-NULL address marks a deleted slot. */
static char tomb_marker;
#define KF__GW_TOMB ((void *)&tomb_marker)

#define MIN_CAP 16

uint64_t kf__gw_hash(uint64_t seed, const void *key, size_t len)
{
	/* FNV-1a over the bytes, then a murmur3 finaliser so that the low bits
	 * (the slot index) depend on every byte. */
	const unsigned char *p = key;
	uint64_t h = 0xcbf29ce484222325ULL ^ seed;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

void kf__gw_map_init(struct kf__gw_map *m, uint64_t seed)
{
	memset(m, 0, sizeof(*m));
	m->seed = seed;
}

void kf__gw_map_release(struct kf__gw_map *m)
{
	free(m->slots);
	m->slots = NULL;
	m->cap = m->n = m->used = 0;
}

static bool slot_matches(const struct kf__gw_slot *s, uint64_t h, const void *key, size_t len)
{
	return s->val != KF__GW_TOMB && s->hash == h && s->len == len &&
	       (len == 0 || memcmp(s->key, key, len) == 0);
}

/* Index of the live slot holding key, or SIZE_MAX. */
static size_t find(const struct kf__gw_map *m, uint64_t h, const void *key, size_t len)
{
	if (!m->cap)
		return SIZE_MAX;
	size_t mask = m->cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		const struct kf__gw_slot *s = &m->slots[i];
		if (!s->val)
			return SIZE_MAX;
		if (slot_matches(s, h, key, len))
			return i;
	}
}

void *kf__gw_map_get(const struct kf__gw_map *m, const void *key, size_t len)
{
	size_t i = find(m, kf__gw_hash(m->seed, key, len), key, len);
	return i == SIZE_MAX ? NULL : m->slots[i].val;
}

/* Rebuilds into new_cap slots, dropping tombstones. */
static enum kf_err rebuild(struct kf__gw_map *m, size_t new_cap)
{
	struct kf__gw_slot *slots = calloc(new_cap, sizeof(*slots));
	if (!slots)
		return KF_ENOMEM;
	for (size_t i = 0; i < m->cap; i++) {
		struct kf__gw_slot *s = &m->slots[i];
		if (!s->val || s->val == KF__GW_TOMB)
			continue;
		size_t j = s->hash & (new_cap - 1);
		while (slots[j].val)
			j = (j + 1) & (new_cap - 1);
		slots[j] = *s;
	}
	free(m->slots);
	m->slots = slots;
	m->cap = new_cap;
	m->used = m->n;
	return KF_OK;
}

enum kf_err kf__gw_map_put(struct kf__gw_map *m, const void *key, size_t len, void *val)
{
	if (!val)
		return KF_EINVAL;
	uint64_t h = kf__gw_hash(m->seed, key, len);
	if (find(m, h, key, len) != SIZE_MAX)
		return KF_EEXIST;
	/* Keep used (live + tombstones) under 70% so probes stay short and
	 * always end at an empty slot. */
	if ((m->used + 1) * 10 > m->cap * 7) {
		size_t cap = m->cap ? m->cap : MIN_CAP;
		while ((m->n + 1) * 10 > cap * 5)
			cap *= 2;
		enum kf_err err = rebuild(m, cap);
		if (err)
			return err;
	}
	size_t mask = m->cap - 1;
	size_t i = h & mask;
	while (m->slots[i].val && m->slots[i].val != KF__GW_TOMB)
		i = (i + 1) & mask;
	if (!m->slots[i].val)
		m->used++;
	m->slots[i] = (struct kf__gw_slot){ .hash = h, .key = key, .len = len, .val = val };
	m->n++;
	return KF_OK;
}

void *kf__gw_map_del(struct kf__gw_map *m, const void *key, size_t len)
{
	size_t i = find(m, kf__gw_hash(m->seed, key, len), key, len);
	if (i == SIZE_MAX)
		return NULL;
	void *val = m->slots[i].val;
	m->slots[i].val = KF__GW_TOMB;
	m->slots[i].key = NULL;
	m->n--;
	return val;
}

void *kf__gw_map_next(const struct kf__gw_map *m, size_t *it)
{
	while (*it < m->cap) {
		void *v = m->slots[(*it)++].val;
		if (v && v != KF__GW_TOMB)
			return v;
	}
	return NULL;
}
