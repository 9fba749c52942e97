/* ring.h - io_uring setup and feature probing for the shards.
 *
 * ring_probe runs once at start-up and names the first kernel feature ringmta
 * relies on that is missing (the daemon then exits 2). ring_init sets up one
 * shard's ring with the flags a single-threaded, completion-driven loop wants;
 * it must be called from the thread that will submit to and wait on the ring
 * (IORING_SETUP_SINGLE_ISSUER + DEFER_TASKRUN tie the ring to that thread).
 * ring_bufs_* manage a provided buffer ring (registered with
 * io_uring_register_buf_ring, as liburing 2.3 has no io_uring_setup_buf_ring).
 */
#ifndef RINGMTA_NET_RING_H
#define RINGMTA_NET_RING_H

#include <liburing.h>
#include <stdint.h>

#include "core/err.h"

/* Minimum kernel: 6.1 (IORING_SETUP_DEFER_TASKRUN). Multishot accept and
 * provided buffer rings came in 5.19, multishot recv in 6.0. */
#define RING_MIN_KERNEL "6.1"

/* ring_probe - 0 when the kernel has everything; else RM_EIO and *missing
 * names the first missing feature (a constant string) */
RM_MUST_USE int ring_probe(const char **missing);

/* ring_init - set up r with entries SQEs for the calling thread */
RM_MUST_USE int ring_init(struct io_uring *r, unsigned entries);

/* ring_sqe - a submission entry, submitting queued ones to make room when
 * the queue is full; never NULL (aborts only if the kernel refuses twice,
 * a broken invariant) */
static inline struct io_uring_sqe *ring_sqe(struct io_uring *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);

	if (__builtin_expect(sqe == NULL, 0)) {
		(void)io_uring_submit(r);
		sqe = io_uring_get_sqe(r);
		if (sqe == NULL)
			__builtin_trap();
	}
	return sqe;
}

/* A provided buffer ring: count buffers of size bytes each, group bgid. */
struct ring_bufs {
	struct io_uring_buf_ring *_br;
	char *_mem;
	uint32_t size;   /* bytes per buffer */
	uint16_t count;  /* a power of two */
	uint16_t bgid;
	uint32_t nfree;  /* buffers the kernel may fill now */
	size_t _ring_bytes;
};

/* ring_bufs_init - allocate and register count (power of two) buffers */
RM_MUST_USE int ring_bufs_init(struct ring_bufs *b, struct io_uring *r, uint16_t bgid, uint16_t count,
			       uint32_t size);

/* ring_bufs_fini - unregister and free */
void ring_bufs_fini(struct ring_bufs *b, struct io_uring *r);

/* ring_bufs_ptr - the memory of buffer bid */
static inline char *ring_bufs_ptr(const struct ring_bufs *b, uint16_t bid)
{
	return b->_mem + (size_t)bid * b->size;
}

/* ring_bufs_put - hand buffer bid back to the kernel */
static inline void ring_bufs_put(struct ring_bufs *b, uint16_t bid)
{
	io_uring_buf_ring_add(b->_br, ring_bufs_ptr(b, bid), b->size, bid,
			      io_uring_buf_ring_mask(b->count), 0);
	io_uring_buf_ring_advance(b->_br, 1);
	b->nfree++;
}

#endif
