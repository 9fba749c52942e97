/* arena.c - chunked bump allocator.
 *
 * Invariant: _cur.._end is the free tail of _head; a request larger than a
 * usual chunk gets a chunk of its own. Single owner; panics on nothing.
 */
#include "core/arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>

struct arena_chunk {
	struct arena_chunk *next;
	size_t size; /* whole chunk, header included */
	alignas(max_align_t) char data[];
};

static void *libc_alloc(void *ctx, size_t n)
{
	(void)ctx;
	return malloc(n);
}

static void libc_free(void *ctx, void *p, size_t n)
{
	(void)ctx;
	(void)n;
	free(p);
}

const struct rm_alloc rm_alloc_libc = { libc_alloc, libc_free, NULL };

/* arena_init - an empty arena; nothing is allocated until the first use */
void arena_init(struct arena *a, const struct rm_alloc *al, size_t chunk_size, size_t limit)
{
	a->_al = al;
	a->_head = NULL;
	a->_cur = a->_end = NULL;
	a->_chunk_size = chunk_size < 256 ? 256 : chunk_size;
	a->_limit = limit;
	a->_held = 0;
}

/* arena_round - what an allocation of n bytes takes from its chunk; less
 * than n (0) when rounding would wrap, which arena_alloc refuses */
size_t arena_round(size_t n)
{
	const size_t align = alignof(max_align_t);
	return (n + align - 1) & ~(align - 1);
}

/* arena_chunk_for - the chunk_size whose first chunk holds n bytes */
size_t arena_chunk_for(size_t n)
{
	return sizeof(struct arena_chunk) + n;
}

/* arena_alloc - n bytes aligned for any type, or NULL past the limit */
void *arena_alloc(struct arena *a, size_t n)
{
	size_t need = arena_round(n);

	if (need < n)
		return NULL;
	if ((size_t)(a->_end - a->_cur) < need || a->_cur == NULL) {
		size_t size = sizeof(struct arena_chunk) + need;
		if (size < a->_chunk_size)
			size = a->_chunk_size;
		if (size < need || a->_held + size > a->_limit)
			return NULL;
		struct arena_chunk *c = a->_al->alloc(a->_al->ctx, size);
		if (c == NULL)
			return NULL;
		c->size = size;
		c->next = a->_head;
		a->_head = c;
		a->_held += size;
		a->_cur = c->data;
		a->_end = (char *)c + size;
	}
	void *p = a->_cur;
	a->_cur += need;
	return p;
}

/* arena_dup - a copy of s in the arena (NUL-terminated), or a NULL slice */
struct slice arena_dup(struct arena *a, struct slice s)
{
	char *p = arena_alloc(a, s.len + 1);

	if (p == NULL)
		return SLICE_NULL;
	if (s.len)
		memcpy(p, s.ptr, s.len);
	p[s.len] = '\0';
	return slice_make(p, s.len);
}

/* arena_reset - free every chunk but the oldest, which is kept for reuse */
void arena_reset(struct arena *a)
{
	struct arena_chunk *c = a->_head, *keep = NULL;

	while (c) {
		struct arena_chunk *next = c->next;
		if (next == NULL && c->size == a->_chunk_size) {
			keep = c;
		} else {
			a->_held -= c->size;
			a->_al->free(a->_al->ctx, c, c->size);
		}
		c = next;
	}
	a->_head = keep;
	if (keep) {
		keep->next = NULL;
		a->_cur = keep->data;
		a->_end = (char *)keep + keep->size;
	} else {
		a->_cur = a->_end = NULL;
	}
}

/* arena_free - free every chunk; the arena may be used again */
void arena_free(struct arena *a)
{
	arena_reset(a);
	if (a->_head) {
		a->_held -= a->_head->size;
		a->_al->free(a->_al->ctx, a->_head, a->_head->size);
	}
	a->_head = NULL;
	a->_cur = a->_end = NULL;
}
