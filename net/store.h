/* store.h - the narrow message-store interface the inbound path calls.
 *
 * One store instance per shard, used only by that shard's thread. The shard
 * drives a transaction through it:
 *   begin    -> a transaction handle and the queue ID it will carry
 *   append   -> body slices, as an iovec; the store writes them where it
 *               likes (a spool writes them by writev at offsets it assigns).
 *               Returns RM_OK when the bytes are already out of the caller's
 *               memory, or RM_AGAIN when the caller must keep that memory
 *               until the store reports the append done (cb.appended).
 *   commit   -> the envelope and the trace header; the store reports later,
 *               through cb.committed, whether the message is durable (0) or
 *               not (RM_EIO, RM_ELIMIT). The 250 waits for that report.
 *   abort    -> forget the transaction; pending appends still report.
 *   turn_end -> the shard's loop boundary (STYLE.md 9): a durable store
 *               submits its group fdatasync for everything committed in the
 *               turn here; the null store reports its commits here.
 *   complete -> a completion from the shard's ring with op SHARD_OP_STORE
 *               (the store encodes its own meaning in the 32-bit tag).
 * Callbacks are never made from inside begin/append/commit/abort, only from
 * turn_end and complete, so the caller never sees re-entry.
 */
#ifndef RINGMTA_NET_STORE_H
#define RINGMTA_NET_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/err.h"
#include "core/slice.h"
#include "core/smtp_server.h"

struct io_uring;
struct store_tx;
struct spool;
struct spool_msg;
struct spool_env;

/* A spool as the delivery module sees it: after queueing requests on sp
 * (spool_journal) it calls drain(ctx) at once, which submits them (on the
 * ring for the shard's own spool, blocking for an adopted one). */
struct store_spool_ref {
	struct spool *sp;
	void (*drain)(void *ctx);
	void *ctx;
	/* inject - queue a message made locally (a DSN) on the shard's own
	 * spool: body[0..n) is copied, env is the envelope (its received
	 * slice may be empty). Group-committed like a received message and,
	 * once durable, handed to the delivery module like one (its queue ID
	 * into id[0..MSGID_LEN] when id is not NULL). RM_OK or an error
	 * (nothing queued). */
	int (*inject)(void *ictx, const struct slice *body, size_t n, const struct spool_env *env, char *id);
	void *ictx;
};

#define STORE_QUEUE_ID_MAX 32

/* What the shard learns from its store; ctx is the shard's. token is the
 * caller's value given to begin/append (a connection reference). */
struct store_cb {
	void (*appended)(void *ctx, uint64_t token, uint64_t append_tag);
	void (*committed)(void *ctx, uint64_t token, int status);
	void *ctx;
};

/* Where the store may submit its own operations and what it reports. */
struct store_env {
	struct io_uring *ring; /* the shard's ring */
	unsigned shard;        /* shard index, for file names and IDs */
	struct store_cb cb;
	/* Store-wide counters the shard publishes as metrics. */
	uint64_t *syncs;          /* fdatasync calls that acknowledged messages */
	uint64_t *sync_ns_hist;   /* fdatasync latency histogram, STORE_SYNC_BUCKETS */
	uint64_t *body_copied;    /* body bytes copied in user space */
	uint64_t *in_flight;      /* optional gauge: writes and syncs in the kernel */
	/* Optional: every message made durable (and every unfinished one
	 * recovered in create, with its recipients' states) goes here. */
	void (*queued)(void *qctx, const struct store_spool_ref *ref, const char *id,
		       const struct spool_msg *recovered);
	/* Optional: a message made by ref.inject whose commit failed after
	 * inject returned RM_OK (a write or fdatasync error, a full disk):
	 * it is not queued, and status says why. */
	void (*inject_failed)(void *qctx, const char *id, int status);
	void *qctx;
};

#define STORE_SYNC_BUCKETS 12 /* <=0.1ms .. <=204.8ms doubling, then +Inf */

struct store_ops {
	const char *name;
	bool durable; /* commits are fdatasync'd before they are reported */
	/* create - one shard's store over env; NULL when it cannot */
	void *(*create)(void *global, const struct store_env *env);
	void (*destroy)(void *st);
	RM_MUST_USE int (*begin)(void *st, uint64_t token, struct store_tx **tx, char id[STORE_QUEUE_ID_MAX]);
	RM_MUST_USE int (*append)(void *st, struct store_tx *tx, const struct iovec *iov, int n,
				  uint64_t append_tag);
	RM_MUST_USE int (*commit)(void *st, struct store_tx *tx, const struct smtp_tx *env,
				  struct slice client_addr, struct slice trace_header);
	void (*abort)(void *st, struct store_tx *tx);
	void (*turn_end)(void *st);
	void (*complete)(void *st, uint32_t tag, int res, uint32_t flags);
	/* pending - operations still in the kernel (teardown waits for 0) */
	unsigned (*pending)(void *st);
};

/* A store's own ring operations carry STORE_UD_OP in the top byte of
 * user_data and the store's 32-bit tag in the low bits; the shard hands
 * every such completion to ops.complete. */
#define STORE_UD_OP 7u

/* store_user_data - the user_data of a store operation with this tag */
static inline uint64_t store_user_data(uint32_t tag)
{
	return ((uint64_t)STORE_UD_OP << 56) | tag;
}

/* The durable spool store (net/store_spool.c): body slices written by
 * io_uring writev at the offsets the spool assigns, one group fdatasync per
 * segment per loop turn, recovery in create. global is a store_spool_cfg. */
struct store_spool_cfg {
	const char *dir;      /* the spool directory (locked by the caller) */
	unsigned threads;     /* shards running: shard i also recovers the
			       * spools of shard numbers i + k * threads left
			       * by an earlier run with more shards */
	uint64_t segment_max; /* 0: the spool's default */
};
extern const struct store_ops store_spool_ops;

/* The null store: acknowledges at the loop boundary and keeps nothing. Not
 * durable; ringmta-sink and tests use it. */
extern const struct store_ops store_null_ops;

#endif
