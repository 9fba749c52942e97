/* harness.c - guarded allocations and split feeding for the unit tests. */
#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* guard_copy - copy p[0..n) so that it ends right before a PROT_NONE page */
struct guarded guard_copy(const void *p, size_t n)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t data_pages = (n + page - 1) / page;
	size_t maplen = (data_pages + 1) * page;
	char *map = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct guarded g;

	if (map == MAP_FAILED)
		abort();
	if (mprotect(map + data_pages * page, page, PROT_NONE) != 0)
		abort();
	g.ptr = map + data_pages * page - n;
	g.len = n;
	if (n)
		memcpy(g.ptr, p, n);
	g._map = map;
	g._maplen = maplen;
	return g;
}

/* guard_free - unmap a guarded copy */
void guard_free(struct guarded *g)
{
	if (g->_map)
		munmap(g->_map, g->_maplen);
	g->_map = NULL;
	g->ptr = NULL;
}

static int feed_guarded(piece_fn feed, void *ctx, const char *p, size_t n)
{
	struct guarded g = guard_copy(p, n);
	int rc = feed(ctx, g.ptr, g.len);
	guard_free(&g);
	return rc;
}

/* split_each - whole, then split in two at every byte position */
void split_each(const char *in, size_t n, void (*reset)(void *ctx), piece_fn feed,
		void (*check)(void *ctx, size_t k), void *ctx)
{
	reset(ctx);
	feed_guarded(feed, ctx, in, n);
	check(ctx, n);
	for (size_t k = 1; k < n; k++) {
		reset(ctx);
		if (feed_guarded(feed, ctx, in, k) == 0)
			feed_guarded(feed, ctx, in + k, n - k);
		check(ctx, k);
	}
}

/* split_bytes - reset, feed in[] one byte at a time (each guarded), check */
void split_bytes(const char *in, size_t n, void (*reset)(void *ctx), piece_fn feed,
		 void (*check)(void *ctx, size_t k), void *ctx)
{
	reset(ctx);
	for (size_t i = 0; i < n; i++)
		if (feed_guarded(feed, ctx, in + i, 1) != 0)
			break;
	check(ctx, 1);
}

/* test_rand - xorshift64*, seeded by the caller */
uint64_t test_rand(uint64_t *state)
{
	uint64_t x = *state ? *state : 0x9e3779b97f4a7c15ull;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dull;
}
