/*
 * arena.c — one bump allocator per decoded message.
 *
 * The budget is what bounds the decoder's memory against hostile input:
 * every allocation a decode makes goes through here, and the arena refuses
 * (KF_ETOOBIG) past its budget. Chunks are capped in size so that the unused
 * tail of the last chunk stays small.
 */
#include "proto/internal.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK_MIN 1024u
#define CHUNK_MAX (64u * 1024u)

struct chunk {
	struct chunk *next;
	size_t size;   /* bytes in data[] */
	size_t used;
	_Alignas(8) unsigned char data[];
};

struct kf__arena {
	struct chunk *head;
	size_t budget;
	size_t handed;  /* bytes handed out, alignment padding included */
	size_t next_chunk;
};

struct kf__arena *kf__arena_new(size_t budget)
{
	struct kf__arena *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->budget = budget;
	a->next_chunk = CHUNK_MIN;
	return a;
}

void kf__arena_free(struct kf__arena *a)
{
	if (!a)
		return;
	struct chunk *c = a->head;
	while (c) {
		struct chunk *next = c->next;
		free(c);
		c = next;
	}
	free(a);
}

static struct chunk *chunk_new(struct kf__arena *a, size_t need)
{
	size_t size = a->next_chunk;
	if (size < need)
		size = need;
	struct chunk *c = malloc(sizeof(*c) + size);
	if (!c)
		return NULL;
	c->size = size;
	c->used = 0;
	c->next = a->head;
	a->head = c;
	if (a->next_chunk < CHUNK_MAX)
		a->next_chunk *= 2;
	return c;
}

enum kf_err kf__arena_alloc(struct kf__arena *a, size_t size, size_t align, void **out)
{
	*out = NULL;
	struct chunk *c = a->head;
	size_t pad = c ? (align - c->used % align) % align : 0;
	/* a->handed <= a->budget always holds, so neither side underflows. */
	if (size > a->budget - a->handed || pad > a->budget - a->handed - size)
		return KF_ETOOBIG;
	if (!c || c->size - c->used < size + pad) {
		c = chunk_new(a, size);
		if (!c)
			return KF_ENOMEM;
		pad = 0;
	}
	void *p = c->data + c->used + pad;
	c->used += pad + size;
	a->handed += pad + size;
	memset(p, 0, size);
	*out = p;
	return KF_OK;
}
