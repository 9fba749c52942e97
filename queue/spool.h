/* spool.h - the durable spool of one shard: append-only segment files,
 * group commit, a delivery journal, recovery at start.
 *
 * Files (names relative to the spool directory, mode 0700, locked by
 * spool_lock): "sSSSS-NNNNNNNN.seg" segments and "sSSSS-NNNNNNNN.jrn"
 * journals of shard SSSS (hex). A message's body is appended in chunk
 * records as it streams in (queue/spool_rec.h); its commit record names the
 * chunks; the batch's fdatasync makes it durable. Chunks without a commit
 * record are garbage. A segment past cfg.segment_max is sealed and a new
 * one started; a sealed segment whose messages are all finished is deleted.
 *
 * The spool does no I/O of its own on the hot path: it assigns file offsets
 * (reserving space at the tail) and hands the host requests to submit. The
 * host's loop (an io_uring shard, or spool_run as the blocking twin):
 *   tx = spool_tx_begin(sp, cookie)
 *   spool_tx_append(sp, tx, slices, n)     per body piece (keep the slices'
 *                                           memory until that write completes)
 *   spool_tx_commit(sp, tx, &env)          at end of data
 *   spool_journal(sp, &jrec)               per delivery outcome
 *   while (spool_req_next(sp, &req))       submit: WRITE is pwritev(req.fd,
 *       submit(req)                        req.iov, req.iovcnt, req.off),
 *                                           SYNC is fdatasync(req.fd)
 *   on a completion: spool_req_done(sp, req.id, res)   (bytes, or -errno)
 *   at the end of the loop turn: spool_flush(sp), then submit again: ONE
 *       fdatasync per segment covers every commit that finished this turn
 *   while (spool_done_next(sp, &d))        d.status 0: durable, send
 *       "250 ... queued as d.id"; RM_ELIMIT (disk full): 452 4.3.1;
 *       RM_EIO: 451 4.3.0
 *   now and then (not per message): spool_gc(sp) deletes finished segments
 *
 * Durability rule: a commit is reported durable only when a completed
 * fdatasync was issued after every write below its end in each segment it
 * touches had completed. So everything before an acknowledged commit is on
 * disk, and recovery may stop a segment's scan at the first bad record (a
 * torn write, a hole) without losing an acknowledged message. A failed write
 * (ENOSPC, EIO) or fdatasync seals its segment: transactions with bytes past
 * the failure fail, earlier committed messages are untouched. A record
 * queued with spool_journal_after is written only once every commit queued
 * before it has ended, so not even the kernel's writeback can make it
 * durable before them (a delivery report and the record of the recipient
 * it reports on).
 *
 * Recovery (spool_open) scans every segment of the shard, keeps the commit
 * records whose CRC validates and whose body extents are all present,
 * applies the journals (finished recipients dropped), compacts the journal,
 * deletes segments with nothing unfinished and returns the unfinished
 * messages for the scheduler. Torn tails are ignored (new segments are
 * started instead of appending to old ones).
 *
 * Threads: a spool belongs to its shard's thread. Blocking calls (spool_open,
 * spool_gc, spool_run, spool_read, spool_msg_load, rotation opening a new
 * segment) go through the backend synchronously.
 */
#ifndef RINGMTA_QUEUE_SPOOL_H
#define RINGMTA_QUEUE_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/arena.h"
#include "core/err.h"
#include "core/slice.h"
#include "queue/msgid.h"
#include "queue/spool_rec.h"

/* The narrow I/O interface. Every call is blocking; results are >= 0 or
 * -errno. Names are relative to the spool directory. */
struct spool_io {
	int (*open)(void *ctx, const char *name, bool create);
	int (*close)(void *ctx, int fd);
	int64_t (*pwritev)(void *ctx, int fd, const struct iovec *iov, int n, uint64_t off);
	int64_t (*pread)(void *ctx, int fd, void *p, size_t n, uint64_t off);
	int (*fdatasync)(void *ctx, int fd);
	int (*fsize)(void *ctx, int fd, uint64_t *size);
	int (*unlink)(void *ctx, const char *name);
	int (*rename)(void *ctx, const char *from, const char *to);
	int (*syncdir)(void *ctx); /* make creations, renames, unlinks durable */
	/* call fn for every name in the directory; stop at fn's nonzero */
	int (*list)(void *ctx, int (*fn)(void *arg, const char *name), void *arg);
	void *ctx;
};

/* The blocking POSIX backend over one directory. */
struct spool_posix {
	int dirfd;
	struct spool_io io;
};

/* spool_posix_open - the backend over dir (created 0700 if missing) */
RM_MUST_USE int spool_posix_open(struct spool_posix *p, const char *dir);

/* spool_posix_open_ro - a read-only backend over an existing dir: files
 * are opened O_RDONLY, nothing is created, and every call that would write,
 * sync, rename or unlink fails with -EROFS. For inspecting a spool another
 * process (the daemon) may hold and be writing. */
RM_MUST_USE int spool_posix_open_ro(struct spool_posix *p, const char *dir);

/* spool_posix_close - close the directory */
void spool_posix_close(struct spool_posix *p);

/* spool_lock - take the spool directory's lock (flock on dir/lock) for this
 * process; *fd keeps it (close to release). RM_AGAIN: another process holds
 * it (the daemon exits 2); RM_EIO: the directory cannot be used */
RM_MUST_USE int spool_lock(const char *dir, int *fd);

struct spool_cfg {
	const struct spool_io *io;
	unsigned shard;          /* <= MSGID_SHARD_MAX */
	uint64_t segment_max;    /* seal a segment past this; 0: 64 MiB */
	unsigned max_requests;   /* the most writes and syncs in flight (their
				  * slots are made as load asks); 0: 262144 */
};

/* One recipient's state, as recovery found it. */
struct spool_rstate {
	unsigned outcome;         /* 0 pending, else enum spool_outcome */
	uint64_t next_attempt_us; /* from the last deferral, else 0 */
	uint32_t attempts;
	struct slice last_reply;
};

/* An unfinished message found by recovery. */
struct spool_msg {
	struct spool_env env;
	struct spool_rstate *rs;  /* env.nrcpt entries */
	uint32_t left;            /* recipients not finished */
};

/* What recovery found; memory in _arena, freed by spool_recovery_free. */
struct spool_recovery {
	struct spool_msg *msg;    /* sorted by queue ID (arrival) */
	size_t nmsg;
	size_t segments;          /* segment files scanned */
	size_t finished;          /* committed messages already finished */
	size_t invalid;           /* commit records with missing extents */
	uint64_t torn_bytes;      /* bytes after the last valid record, summed */
	struct arena _arena;
};

/* spool_recovery_free - free what recovery returned */
void spool_recovery_free(struct spool_recovery *r);

struct spool;
struct spool_tx;

/* spool_open - recover the shard's spool and get ready to append. rec may
 * be NULL when the caller does not want the messages. */
RM_MUST_USE int spool_open(struct spool **out, const struct spool_cfg *cfg,
			   struct spool_recovery *rec);

/* spool_scan - read-only recovery: the unfinished messages of cfg->shard
 * as spool_open would find them, without writing, syncing, compacting or
 * deleting anything (cfg->io may be read-only, no lock is needed). Files
 * removed meanwhile by the lock holder are skipped (their messages were
 * finished); a record being written shows as a torn tail. Only cfg->io and
 * cfg->shard are used. On success free rec with spool_recovery_free. */
RM_MUST_USE int spool_scan(const struct spool_cfg *cfg, struct spool_recovery *rec);

/* spool_shards - mark in present[] every shard that has a segment or
 * journal file in the directory; returns how many, or RM_EIO/RM_ENOMEM */
RM_MUST_USE int spool_shards(const struct spool_io *io, bool present[MSGID_SHARD_MAX + 1]);

/* spool_body_read - the blocking reader without an open spool: n bytes of
 * e's body (e as recovery or spool_scan returned it) from offset off,
 * opening e->shard's segments through io. RM_EINVAL: the body is shorter;
 * RM_EIO: a segment is gone or unreadable. */
RM_MUST_USE int spool_body_read(const struct spool_io *io, const struct spool_env *e,
				uint64_t off, void *dst, size_t n);

/* spool_close - close files and free; pending requests are forgotten (the
 * host must have drained them). Returns NULL. */
struct spool *spool_close(struct spool *sp);

/* spool_tx_begin - a new transaction; NULL when out of memory */
struct spool_tx *spool_tx_begin(struct spool *sp, void *cookie);

/* spool_tx_id - the transaction's queue ID, assigned now (from now_us) if
 * it has none yet; the commit record carries this ID, so a Received: header
 * written before the commit can name it. Valid while the transaction is. */
const char *spool_tx_id(struct spool *sp, struct spool_tx *tx, uint64_t now_us);

/* spool_tx_append - queue the concatenation of v[0..nv) as one chunk
 * record. RM_AGAIN: too many requests in flight (retry after completions);
 * RM_ELIMIT: more than 64 slices or 16 MiB; RM_EIO: no segment could be
 * opened. The transaction fails at commit if a write fails. */
RM_MUST_USE int spool_tx_append(struct spool *sp, struct spool_tx *tx, const struct slice *v,
				size_t nv);

/* spool_tx_commit - queue the commit record: env's envelope fields are
 * copied; the spool sets its id, shard, tag and extents. The outcome comes
 * through spool_done_next; the transaction is gone after that. RM_AGAIN:
 * retry later; other errors: the transaction was failed and reported. */
RM_MUST_USE int spool_tx_commit(struct spool *sp, struct spool_tx *tx, const struct spool_env *env);

/* spool_tx_abort - forget the transaction (its chunks become garbage) */
void spool_tx_abort(struct spool *sp, struct spool_tx *tx);

/* An I/O request for the host. iov stays valid until spool_req_done. */
enum spool_op { SPOOL_OP_WRITE = 1, SPOOL_OP_SYNC = 2 };
struct spool_req {
	uint64_t id;              /* slot and generation; pass back */
	enum spool_op op;
	int fd;
	uint64_t off;
	const struct iovec *iov;
	int iovcnt;
};

/* spool_req_next - the next request to submit, if any */
bool spool_req_next(struct spool *sp, struct spool_req *out);

/* spool_req_done - a request completed: res is the bytes written (WRITE),
 * 0 (SYNC) or -errno. A stale or unknown id is counted and ignored. */
void spool_req_done(struct spool *sp, uint64_t id, int64_t res);

/* spool_flush - the loop turn ends: queue one fdatasync per file that has
 * completed commits or journal records waiting */
void spool_flush(struct spool *sp);

/* A finished commit. */
struct spool_done {
	void *cookie;
	int status;               /* 0 durable, RM_ELIMIT, RM_EIO */
	char id[MSGID_LEN + 1];
};

/* spool_done_next - the next finished commit, if any */
bool spool_done_next(struct spool *sp, struct spool_done *out);

/* spool_run - the blocking twin of the host loop: submit every request
 * through the backend until none is left (flushes included) */
void spool_run(struct spool *sp);

/* spool_journal - queue a delivery-journal record for a known message;
 * when every recipient is finished and the record is durable, the message
 * stops pinning its segments. A final outcome (delivered, failed, deleted)
 * asks for the journal's next group fdatasync; a deferral does not: it
 * becomes durable with the next final record or by the kernel's writeback,
 * and one lost in a crash only brings the next attempt forward. So a
 * destination that defers thousands of messages costs no fdatasync.
 * RM_EINVAL: unknown ID or recipient index; RM_AGAIN: retry later. */
RM_MUST_USE int spool_journal(struct spool *sp, const struct spool_jrec *j);

/* spool_journal_after - spool_journal, but the record is handed out only
 * once every commit queued before it has ended (durable or failed): for the
 * record of a recipient a report speaks for. Records queued after it
 * without the hold are written at once; they count as durable only when
 * everything before them in the journal is. */
RM_MUST_USE int spool_journal_after(struct spool *sp, const struct spool_jrec *j);

/* spool_msg_live - whether the spool still keeps the message: true until
 * every recipient is finished and the journal record that finished the
 * last one is durable (for ever, when that record's write or sync failed:
 * the message comes back at the next start). False for an unknown ID. */
bool spool_msg_live(struct spool *sp, struct slice id);

/* spool_gc - delete sealed segments no message needs any more (blocking);
 * returns how many were deleted */
int spool_gc(struct spool *sp);

/* spool_msg_need - the arena bytes spool_msg_load of a live message takes
 * (arena_chunk_for of it: one chunk, nothing spare); 0 when not live */
size_t spool_msg_need(struct spool *sp, struct slice id);

/* spool_msg_load - read a live message's commit record back (blocking):
 * slices and arrays in a */
RM_MUST_USE int spool_msg_load(struct spool *sp, struct slice id, struct arena *a,
			       struct spool_env *out);

/* spool_extent_fd - the fd of segment seg, to read or splice an extent
 * from (owned by the spool; -1 if it is not open) */
int spool_extent_fd(struct spool *sp, uint32_t seg);

/* spool_read - the blocking reader: n bytes of e's body from offset off */
RM_MUST_USE int spool_read(struct spool *sp, const struct spool_env *e, uint64_t off, void *dst,
			   size_t n);

/* spool_copy_forward - rewrite a live message into the current segment
 * (same ID, same envelope) so it stops pinning an old one; blocking reads,
 * then an ordinary commit reported through spool_done_next with cookie */
RM_MUST_USE int spool_copy_forward(struct spool *sp, struct slice id, void *cookie);

/* Counters. */
struct spool_stats {
	uint64_t commits;         /* commits reported durable */
	uint64_t syncs;           /* fdatasync requests completed */
	uint64_t failed;          /* commits reported failed */
	uint64_t stale;           /* completions for unknown requests */
	uint64_t live;            /* messages not finished */
	uint64_t segments;        /* segment files open */
};

/* spool_stats - the counters */
void spool_stats(const struct spool *sp, struct spool_stats *out);

#endif
