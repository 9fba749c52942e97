/* ring.c - io_uring setup, feature probing and provided buffer rings.
 *
 * The probe really exercises each feature on a throw-away ring (a loopback
 * listener for multishot accept, a socketpair for multishot recv from a
 * provided buffer ring), because opcode probes cannot see flags such as
 * IORING_ACCEPT_MULTISHOT. Called from one thread; nothing here is shared.
 */
#include "net/ring.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

/* ring_init - set up r with entries SQEs for the calling thread */
int ring_init(struct io_uring *r, unsigned entries)
{
	struct io_uring_params p;

	memset(&p, 0, sizeof p);
	/* Only the shard thread submits: lets the kernel skip submission locking. */
	p.flags = IORING_SETUP_SINGLE_ISSUER;
	/* Run completion task work only when the shard waits, in one batch,
	 * instead of interrupting it (6.1); needs SINGLE_ISSUER. */
	p.flags |= IORING_SETUP_DEFER_TASKRUN;
	/* Keep submitting the rest of a batch when one SQE fails early, so a
	 * bad socket cannot stall every other connection's operations. */
	p.flags |= IORING_SETUP_SUBMIT_ALL;
	/* Room for many multishot completions per turn (accept + recv for
	 * thousands of sockets) without CQ overflow. */
	p.flags |= IORING_SETUP_CQSIZE;
	p.cq_entries = entries * 8;
	/* COOP_TASKRUN is implied by DEFER_TASKRUN, so it is not set. */
	int rc = io_uring_queue_init_params(entries, r, &p);
	return rc < 0 ? RM_EIO : RM_OK;
}

/* ring_bufs_init - allocate and register count (power of two) buffers */
int ring_bufs_init(struct ring_bufs *b, struct io_uring *r, uint16_t bgid, uint16_t count,
		   uint32_t size)
{
	struct io_uring_buf_reg reg;

	memset(b, 0, sizeof *b);
	b->size = size;
	b->count = count;
	b->bgid = bgid;
	b->_ring_bytes = (size_t)count * sizeof(struct io_uring_buf);
	void *ring = mmap(NULL, b->_ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ring == MAP_FAILED)
		return RM_ENOMEM;
	b->_mem = malloc((size_t)count * size);
	if (b->_mem == NULL) {
		munmap(ring, b->_ring_bytes);
		return RM_ENOMEM;
	}
	/* Touch every buffer now: the pool is a fixed cost the first busy
	 * moment would pay anyway, and paid here the resident size is flat
	 * from the start (a flood of input cannot make it grow) and the
	 * kernel's receive copy takes no first-touch page faults. */
	for (size_t off = 0; off < (size_t)count * size; off += 4096)
		((volatile char *)b->_mem)[off] = 0; /* not memset: that becomes calloc */
	b->_br = ring;
	memset(&reg, 0, sizeof reg);
	reg.ring_addr = (unsigned long)ring;
	reg.ring_entries = count;
	reg.bgid = bgid;
	if (io_uring_register_buf_ring(r, &reg, 0) < 0) {
		free(b->_mem);
		munmap(ring, b->_ring_bytes);
		b->_mem = NULL;
		b->_br = NULL;
		return RM_EIO;
	}
	io_uring_buf_ring_init(b->_br);
	for (uint16_t i = 0; i < count; i++)
		io_uring_buf_ring_add(b->_br, ring_bufs_ptr(b, i), size, i, io_uring_buf_ring_mask(count), i);
	io_uring_buf_ring_advance(b->_br, count);
	b->nfree = count;
	return RM_OK;
}

/* ring_bufs_fini - unregister and free */
void ring_bufs_fini(struct ring_bufs *b, struct io_uring *r)
{
	if (b->_br == NULL)
		return;
	(void)io_uring_unregister_buf_ring(r, b->bgid);
	munmap(b->_br, b->_ring_bytes);
	free(b->_mem);
	b->_br = NULL;
	b->_mem = NULL;
}

/* probe_wait - the next completion, or NULL after a short while */
static struct io_uring_cqe *probe_wait(struct io_uring *r)
{
	struct io_uring_cqe *cqe = NULL;
	struct __kernel_timespec ts = { .tv_sec = 1, .tv_nsec = 0 };

	if (io_uring_submit_and_wait_timeout(r, &cqe, 1, &ts, NULL) < 0)
		return NULL;
	return cqe;
}

/* probe_accept - multishot accept on a loopback listener yields a
 * connection and stays armed (IORING_CQE_F_MORE) */
static int probe_accept(struct io_uring *r)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof sa;
	int ok = 0, cfd = -1;
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 4) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &len) < 0)
		goto out;
	struct io_uring_sqe *sqe = ring_sqe(r);
	io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
	sqe->user_data = 1;
	cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (cfd < 0 || connect(cfd, (struct sockaddr *)&sa, sizeof sa) < 0)
		goto out;
	struct io_uring_cqe *cqe = probe_wait(r);
	if (cqe != NULL) {
		ok = cqe->res >= 0 && (cqe->flags & IORING_CQE_F_MORE);
		if (cqe->res >= 0)
			close(cqe->res);
		io_uring_cqe_seen(r, cqe);
	}
out:
	if (cfd >= 0)
		close(cfd);
	if (lfd >= 0)
		close(lfd);
	return ok;
}

/* probe_recv - multishot recv picks a provided buffer and stays armed */
static int probe_recv(struct io_uring *r, struct ring_bufs *b)
{
	int sv[2], ok = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	struct io_uring_sqe *sqe = ring_sqe(r);
	io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = b->bgid;
	sqe->user_data = 2;
	if (write(sv[1], "x", 1) == 1) {
		struct io_uring_cqe *cqe = probe_wait(r);
		if (cqe != NULL) {
			ok = cqe->res == 1 && (cqe->flags & IORING_CQE_F_BUFFER) &&
			     (cqe->flags & IORING_CQE_F_MORE);
			io_uring_cqe_seen(r, cqe);
		}
	}
	close(sv[0]);
	close(sv[1]);
	return ok;
}

/* ring_probe - 0 when the kernel has everything; else RM_EIO and *missing
 * names the first missing feature (a constant string) */
int ring_probe(const char **missing)
{
	struct io_uring r;
	struct ring_bufs b;
	int rc = RM_EIO;

	if (ring_init(&r, 8) != RM_OK) {
		*missing = "io_uring with IORING_SETUP_SINGLE_ISSUER|DEFER_TASKRUN (Linux " RING_MIN_KERNEL ")";
		return RM_EIO;
	}
	if (ring_bufs_init(&b, &r, 0, 4, 64) != RM_OK) {
		*missing = "provided buffer rings (IORING_REGISTER_PBUF_RING, Linux 5.19)";
		goto out_ring;
	}
	if (!probe_accept(&r)) {
		*missing = "multishot accept (IORING_ACCEPT_MULTISHOT, Linux 5.19)";
		goto out;
	}
	if (!probe_recv(&r, &b)) {
		*missing = "multishot recv (IORING_RECV_MULTISHOT, Linux 6.0)";
		goto out;
	}
	*missing = NULL;
	rc = RM_OK;
out:
	ring_bufs_fini(&b, &r);
out_ring:
	io_uring_queue_exit(&r);
	return rc;
}
