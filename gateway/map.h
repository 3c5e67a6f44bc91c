/*
 * gateway/map.h — a small open-addressing hash map from byte strings to
 * pointers, for the aggregator's families, series and sources.
 *
 * Rules:
 *  - The map does not own keys or values: a key's bytes must stay valid and
 *    unchanged while it is in the map (the aggregator points into the value
 *    object that holds them).
 *  - Values are non-NULL pointers.
 *  - Deletion leaves a tombstone, so deleting the entry under an iterator
 *    (kf__gw_map_next) is safe; tombstones are cleaned when the table is
 *    rebuilt on growth.
 *  - The hash is seeded per map (kf__gw_map_init's seed), so that label
 *    values chosen by a remote publisher cannot be aimed at one bucket chain
 *    across gateway restarts. Caps on families and series bound the rest.
 *  - Not thread-safe: the aggregator's owner serialises access.
 */
#ifndef KF_GATEWAY_MAP_H
#define KF_GATEWAY_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct kf__gw_slot {
	uint64_t hash;
	const void *key;
	size_t len;
	void *val;      /* NULL = never used; KF__GW_TOMB = deleted */
};

struct kf__gw_map {
	struct kf__gw_slot *slots;
	size_t cap;     /* 0 or a power of two */
	size_t n;       /* live entries */
	size_t used;    /* live entries + tombstones */
	uint64_t seed;
};

void kf__gw_map_init(struct kf__gw_map *m, uint64_t seed);
/* Frees the table (not the keys or values). */
void kf__gw_map_release(struct kf__gw_map *m);

/* The value stored under key, or NULL. */
void *kf__gw_map_get(const struct kf__gw_map *m, const void *key, size_t len);

/* Stores val under key. KF_EEXIST when the key is present (nothing changes),
 * KF_EINVAL for a NULL val, KF_ENOMEM. */
enum kf_err kf__gw_map_put(struct kf__gw_map *m, const void *key, size_t len, void *val);

/* Removes key; returns its value, or NULL when absent. */
void *kf__gw_map_del(struct kf__gw_map *m, const void *key, size_t len);

/*
 * Iteration: size_t it = 0; void *v; while ((v = kf__gw_map_next(m, &it)))
 * Visits every live value once, in table order. The visited entry may be
 * deleted during the walk; inserting during a walk is not allowed (it may
 * rebuild the table).
 */
void *kf__gw_map_next(const struct kf__gw_map *m, size_t *it);

/* 64-bit hash of key under seed (exposed for tests). */
uint64_t kf__gw_hash(uint64_t seed, const void *key, size_t len);

#endif
