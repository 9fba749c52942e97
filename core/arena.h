/* arena.h - bump allocation for session and transaction lifetimes.
 *
 * An arena hands out memory from chunks it gets from an allocator it is
 * given; everything is freed together by arena_reset or arena_free. A limit
 * caps the total, and reaching it is an ordinary outcome (NULL), which the
 * engines turn into a 4xx reply. Not thread-safe: one owner at a time.
 */
#ifndef RINGMTA_CORE_ARENA_H
#define RINGMTA_CORE_ARENA_H

#include <stddef.h>

#include "core/slice.h"

/* Where chunks come from. The daemon's is jemalloc through malloc. */
struct rm_alloc {
	void *(*alloc)(void *ctx, size_t n);
	void (*free)(void *ctx, void *p, size_t n);
	void *ctx;
};

/* rm_alloc_libc - chunks from malloc/free */
extern const struct rm_alloc rm_alloc_libc;

struct arena_chunk;

struct arena {
	const struct rm_alloc *_al;
	struct arena_chunk *_head; /* newest chunk first */
	char *_cur, *_end;         /* free space in _head */
	size_t _chunk_size;        /* usual chunk size */
	size_t _limit;             /* most bytes of chunks held at once */
	size_t _held;              /* bytes of chunks held now */
};

/* arena_init - an empty arena; nothing is allocated until the first use */
void arena_init(struct arena *a, const struct rm_alloc *al, size_t chunk_size, size_t limit);

/* arena_chunk_for - the chunk_size whose first chunk holds n bytes of
 * allocations, each counted rounded up by arena_round */
size_t arena_chunk_for(size_t n);

/* arena_round - what an allocation of n bytes takes from its chunk (less
 * than n when n is too large to round) */
size_t arena_round(size_t n);

/* arena_alloc - n bytes aligned for any type, or NULL past the limit */
void *arena_alloc(struct arena *a, size_t n);

/* arena_dup - a copy of s in the arena (NUL-terminated), or a NULL slice */
struct slice arena_dup(struct arena *a, struct slice s);

/* arena_reset - free every chunk but the first, which is kept for reuse */
void arena_reset(struct arena *a);

/* arena_free - free every chunk; the arena may be used again */
void arena_free(struct arena *a);

/* arena_held - bytes of chunks the arena holds now */
static inline size_t arena_held(const struct arena *a)
{
	return a->_held;
}

#endif
