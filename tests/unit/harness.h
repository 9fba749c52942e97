/* harness.h - shared helpers for the unit tests (cmocka).
 *
 * guard_copy puts bytes at the very end of a mapping followed by a PROT_NONE
 * page, so a parser that reads one byte past its input crashes instead of
 * passing (picohttpparser's trick). split_each feeds an input whole and then
 * split at every byte position, each piece in its own guarded allocation.
 */
#ifndef RINGMTA_TESTS_HARNESS_H
#define RINGMTA_TESTS_HARNESS_H

#include <setjmp.h> /* cmocka needs these before its header */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* A copy of bytes that ends right before an unreadable page. */
struct guarded {
	char *ptr;   /* the copy; ptr + len is the first unreadable byte */
	size_t len;
	void *_map;
	size_t _maplen;
};

/* guard_copy - copy p[0..n) so that it ends right before a PROT_NONE page */
struct guarded guard_copy(const void *p, size_t n);

/* guard_free - unmap a guarded copy */
void guard_free(struct guarded *g);

/* A streaming consumer: feed one piece, in guarded memory. Returns 0 to go
 * on, nonzero to stop. ctx is the test's own state. */
typedef int (*piece_fn)(void *ctx, const char *p, size_t n);

/* split_each - for the whole input and for every split point k in (0, n),
 * call reset(ctx), then feed(ctx, in[0..k)), feed(ctx, in[k..n)) each in its
 * own guarded copy, then check(ctx, k) (k == n for the whole input). */
void split_each(const char *in, size_t n, void (*reset)(void *ctx), piece_fn feed,
		void (*check)(void *ctx, size_t k), void *ctx);

/* split_bytes - reset, feed in[] one byte at a time (each guarded), check */
void split_bytes(const char *in, size_t n, void (*reset)(void *ctx), piece_fn feed,
		 void (*check)(void *ctx, size_t k), void *ctx);

/* test_rand - a seeded xorshift generator, reproducible across runs */
uint64_t test_rand(uint64_t *state);

#endif
