/* store_spool.c - the durable message store: the spool (queue/spool.h)
 * driven through the shard's io_uring.
 *
 * The spool assigns file offsets and hands out write and sync requests; this
 * store collects the writes of a loop turn and submits them at the loop
 * boundary, coalesced: writes to one file at contiguous offsets (body chunks
 * and commit records of every session alike) go out as one writev of up to
 * IOV_MAX iovecs, straight from the receive buffers' slices, never a copy of
 * body bytes. On ext4 a buffered write cannot be done without blocking, so
 * io_uring hands every write to an io-wq worker; one writev per turn instead
 * of one per chunk and commit saves most of those hand-offs (see the
 * "Receiving relay" section of bench/README.md). Completions are fed back
 * per request, in offset order. At the loop boundary (turn_end) spool_flush asks for one
 * fdatasync per segment covering every commit whose writes completed in the
 * turn (group commit); a commit is reported to the shard (cb.committed, then
 * the 250) only when the spool says it is durable. A failed write or sync
 * reports RM_ELIMIT (ENOSPC, EDQUOT: 452 4.3.1) or RM_EIO (451 4.3.0) for
 * the transactions it touched; earlier acknowledged messages are untouched.
 *
 * Local injection (ref.inject): a message made here, a delivery status
 * notification, is copied into one buffer its transaction owns, appended
 * and committed like a received one, joins the turn's group fdatasync and,
 * once durable, goes to the delivery module through env.queued; the shard
 * hears nothing of it (no session waits for a 250). The buffer is freed
 * when the commit is durable (every write of it has completed); after a
 * failure a write of it may still be in the kernel, so it is left behind
 * (a disk error, and a few kilobytes).
 *
 * create runs the spool's recovery (before the shard arms its listeners, so
 * the daemon is not ready until every shard has recovered) and hands the
 * unfinished messages to the delivery module (env.queued), then frees what
 * recovery decoded.
 *
 * Invariants:
 *  - requests are drained from the spool right after every call that can
 *    queue them, so the WRITE queued by an append is known to be that
 *    append's: its completion releases the caller's buffer (cb.appended);
 *  - an operation slot is indexed by the spool request's slot number (the
 *    spool never has two live requests in one slot); the full request id is
 *    kept to pass back. A coalesced write is a group of slots chained by
 *    gnext in offset order; its ring tag is the first member's slot, which
 *    holds the group's iovec array. The table grows as the spool makes
 *    slots (ss_ops_fit), so no ss_op pointer is kept across a call that
 *    may collect;
 *  - collected writes are submitted before the loop waits: turn_end (and a
 *    drain) emits them, so a write never waits for a later turn;
 *  - a short write is resubmitted for its remainder (files on tmpfs or a
 *    nearly full disk write partly before failing with ENOSPC); when a group
 *    fails, members wholly inside the written prefix still succeed.
 * Threads: one store per shard, used only by that shard's thread; create
 * blocks (recovery). Body bytes are never copied, so body_copied stays 0.
 */
#include "net/store.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <liburing.h>

#include "net/evlog.h"
#include "net/ring.h"
#include "queue/spool.h"

#define SS_MAX_REQUESTS 262144u /* spool requests in flight per shard, at most */
#define SS_OPS_START 1024u     /* ops made at first; more as the spool's slots grow */
#define SS_GC_NS (5ull * 1000000000ull)
#define SS_EXTRA_MAX 64       /* spools of vanished shards one shard adopts */
#define SS_NO_SLOT UINT32_MAX
#define SS_IOV_MAX 1024       /* Linux's UIO_MAXIOV: iovecs per writev */

enum ss_kind { SS_FREE = 0, SS_APPEND, SS_WRITE, SS_SYNC };

/* One spool request in the kernel. */
struct ss_op {
	uint64_t id;          /* the spool's request id */
	uint64_t token;       /* SS_APPEND: the caller's session */
	uint64_t append_tag;  /* SS_APPEND: the caller's buffer tag */
	uint8_t kind;
	int fd;
	uint64_t off;
	uint64_t len;         /* WRITE: this request's bytes */
	const struct iovec *iov;
	int iovcnt;
	uint32_t gnext;       /* WRITE: the next member of its group */
	/* The first member of a group: the writev in the kernel. */
	const struct iovec *giov; /* the unwritten iovecs */
	struct iovec *gown;   /* giov when allocated here */
	int giovcnt;
	uint64_t glen, gdone; /* bytes of the whole group, written so far */
	uint64_t t0;          /* SYNC: submission time, ns */
};

struct store_tx {
	struct spool_tx *stx;
	uint64_t token;
	bool local;            /* injected: no session waits for it */
	void *own;             /* injected: its bytes */
	struct store_tx *next; /* free list */
};

/* An old run's spool this shard keeps open for its messages. */
struct ss_extra {
	struct spool_posix px;
	struct spool *sp;
	struct spool_recovery rec;
	struct store_spool_ref ref; /* for the delivery module */
};

struct spool_store {
	struct store_env env;
	struct spool_posix px;
	struct spool *sp;
	struct spool_recovery rec;  /* unfinished messages, until handed over */
	struct store_spool_ref ref; /* this spool, for the delivery module */
	struct ss_extra *extra;
	size_t nextra;
	struct ss_op *ops;
	unsigned nops;
	unsigned pending;
	uint32_t *wq;               /* collected writes, in the spool's order */
	unsigned nwq;
	struct store_tx *free;
	struct spool_rcpt *rcpt;    /* commit scratch */
	size_t rcpt_cap;
	uint64_t gc_at;
};

#define SS_STAT_ADD(p, n) __atomic_store_n((p), *(p) + (n), __ATOMIC_RELAXED)

/* ss_now_ns - the monotonic clock */
static uint64_t ss_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ss_wall_us - the wall clock in µs (arrival times, queue IDs) */
static uint64_t ss_wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000ull + (uint64_t)ts.tv_nsec / 1000;
}

/* ss_write_sqe - submit the unwritten part of a group's write */
static void ss_write_sqe(struct spool_store *ss, uint32_t slot)
{
	struct ss_op *op = &ss->ops[slot];
	struct io_uring_sqe *sqe = ring_sqe(ss->env.ring);

	io_uring_prep_writev(sqe, op->fd, op->giov, (unsigned)op->giovcnt, op->off + op->gdone);
	io_uring_sqe_set_data64(sqe, store_user_data(slot));
}

/* ss_ops_fit - room in ops (and wq) for the spool's request slot: the
 * spool makes its slots as load asks, and ops follow; false when out of
 * memory. No ss_op pointer is held across a call that may collect. */
static bool ss_ops_fit(struct spool_store *ss, uint32_t slot)
{
	unsigned n = ss->nops;

	if (slot < n)
		return true;
	while (n <= slot)
		n *= 2;
	struct ss_op *ops = realloc(ss->ops, sizeof *ops * n);
	if (ops == NULL)
		return false;
	memset(ops + ss->nops, 0, sizeof *ops * (n - ss->nops));
	ss->ops = ops;
	uint32_t *wq = realloc(ss->wq, sizeof *wq * n);
	if (wq == NULL)
		return false; /* ops grew, wq did not: nops stays, so no slot outgrows wq */
	ss->wq = wq;
	ss->nops = n;
	return true;
}

/* ss_collect - take every request the spool has queued: syncs go on the
 * ring at once, writes wait in wq for ss_emit; the first WRITE found is
 * tagged as an append of (token, tag) when asked. Returns true when such
 * an append write was taken. */
static bool ss_collect(struct spool_store *ss, bool is_append, uint64_t token, uint64_t tag)
{
	struct spool_req q;
	bool took = false;

	while (spool_req_next(ss->sp, &q)) {
		uint32_t slot = (uint32_t)q.id;
		if (!ss_ops_fit(ss, slot)) {
			spool_req_done(ss->sp, q.id, -ENOMEM); /* out of memory: the request fails */
			continue;
		}
		if (ss->ops[slot].kind != SS_FREE)
			__builtin_trap(); /* the spool reused a live slot: broken invariant */
		struct ss_op *op = &ss->ops[slot];
		memset(op, 0, sizeof *op);
		op->id = q.id;
		op->fd = q.fd;
		op->off = q.off;
		ss->pending++;
		if (q.op == SPOOL_OP_SYNC) {
			op->kind = SS_SYNC;
			op->t0 = ss_now_ns();
			struct io_uring_sqe *sqe = ring_sqe(ss->env.ring);
			io_uring_prep_fsync(sqe, q.fd, IORING_FSYNC_DATASYNC);
			io_uring_sqe_set_data64(sqe, store_user_data(slot));
			continue;
		}
		op->kind = SS_WRITE;
		if (is_append && !took) {
			op->kind = SS_APPEND;
			op->token = token;
			op->append_tag = tag;
			took = true;
		}
		op->iov = q.iov;
		op->iovcnt = q.iovcnt;
		op->gnext = SS_NO_SLOT;
		for (int i = 0; i < q.iovcnt; i++)
			op->len += q.iov[i].iov_len;
		ss->wq[ss->nwq++] = slot; /* nwq <= live slots <= nops */
	}
	return took;
}

/* ss_emit - submit the collected writes: each run of writes to one file at
 * contiguous offsets becomes one writev of at most SS_IOV_MAX iovecs */
static void ss_emit(struct spool_store *ss)
{
	unsigned i = 0;

	while (i < ss->nwq) {
		uint32_t h = ss->wq[i];
		struct ss_op *head = &ss->ops[h], *last = head;
		int cnt = head->iovcnt;
		uint64_t len = head->len;
		unsigned j = i + 1;

		for (; j < ss->nwq; j++) {
			struct ss_op *m = &ss->ops[ss->wq[j]];
			if (m->fd != head->fd || m->off != head->off + len || cnt + m->iovcnt > SS_IOV_MAX)
				break;
			cnt += m->iovcnt;
			len += m->len;
		}
		struct iovec *v = j - i > 1 ? malloc(sizeof *v * (size_t)cnt) : NULL;
		if (v == NULL)
			j = i + 1; /* alone (or out of memory): its own iovecs */
		head->giov = head->iov;
		head->giovcnt = head->iovcnt;
		head->glen = head->len;
		if (v != NULL) {
			int k = 0;
			for (unsigned x = i; x < j; x++) {
				struct ss_op *m = &ss->ops[ss->wq[x]];
				memcpy(v + k, m->iov, sizeof *v * (size_t)m->iovcnt);
				k += m->iovcnt;
				if (x > i) {
					last->gnext = ss->wq[x];
					last = m;
				}
			}
			head->giov = head->gown = v;
			head->giovcnt = cnt;
			head->glen = len;
		}
		ss_write_sqe(ss, h);
		i = j;
	}
	ss->nwq = 0;
}

/* ss_submit - collect what the spool has queued and submit it all now */
static bool ss_submit(struct spool_store *ss, bool is_append, uint64_t token, uint64_t tag)
{
	bool took = ss_collect(ss, is_append, token, tag);
	ss_emit(ss);
	return took;
}

/* ss_short_write - a group's write stopped after res more bytes: resubmit
 * the rest; false when the remainder cannot be described (then it fails) */
static bool ss_short_write(struct spool_store *ss, uint32_t slot, uint64_t res)
{
	struct ss_op *op = &ss->ops[slot];
	struct iovec *v = malloc(sizeof *v * (size_t)op->giovcnt);
	int n = 0;

	if (v == NULL)
		return false;
	for (int i = 0; i < op->giovcnt; i++) {
		if (res >= op->giov[i].iov_len) {
			res -= op->giov[i].iov_len;
			continue;
		}
		v[n].iov_base = (char *)op->giov[i].iov_base + res;
		v[n].iov_len = op->giov[i].iov_len - res;
		res = 0;
		n++;
	}
	free(op->gown);
	op->giov = op->gown = v;
	op->giovcnt = n;
	ss_write_sqe(ss, slot);
	return true;
}

/* ss_sync_hist - count one fdatasync's latency (STORE_SYNC_BUCKETS:
 * <= 0.1 ms doubling up to 102.4 ms, then +Inf) */
static void ss_sync_hist(struct spool_store *ss, uint64_t ns)
{
	unsigned b = 0;
	uint64_t le = 100000;

	while (b < STORE_SYNC_BUCKETS - 1 && ns > le) {
		b++;
		le *= 2;
	}
	SS_STAT_ADD(&ss->env.sync_ns_hist[b], 1);
}

/* ss_tx_put - recycle a transaction handle */
static void ss_tx_put(struct spool_store *ss, struct store_tx *t)
{
	t->stx = NULL;
	t->next = ss->free;
	ss->free = t;
}

/* ss_local_failed - an injected message did not become durable */
static void ss_local_failed(const char *id, int status)
{
	char line[128];
	snprintf(line, sizeof line, "local message %s not queued: %s", id, rm_strerror(status));
	evlog_msg("error", "spool", line);
}

/* ss_report - tell the shard about every commit the spool has finished */
static void ss_report(struct spool_store *ss)
{
	struct spool_done d;

	while (spool_done_next(ss->sp, &d)) {
		struct store_tx *t = d.cookie;
		uint64_t token = t->token;
		bool local = t->local;
		if (local && d.status == 0)
			free(t->own);
		else if (local) {
			ss_local_failed(d.id, d.status);
			if (ss->env.inject_failed != NULL)
				ss->env.inject_failed(ss->env.qctx, d.id, d.status);
		}
		t->own = NULL;
		ss_tx_put(ss, t);
		if (!local)
			ss->env.cb.committed(ss->env.cb.ctx, token, d.status);
		if (d.status == 0 && ss->env.queued != NULL)
			ss->env.queued(ss->env.qctx, &ss->ref, d.id, NULL);
	}
}

/* ss_drain - the delivery module queued requests on our spool: submit */
static void ss_drain(void *ctx)
{
	(void)ss_submit(ctx, false, 0, 0);
}

/* ss_drain_extra - the same for an adopted spool, which has no ring: the
 * blocking twin */
static void ss_drain_extra(void *ctx)
{
	struct ss_extra *x = ctx;
	spool_flush(x->sp);
	spool_run(x->sp);
}

/* ss_inject - queue a locally made message (ref.inject): the body is
 * copied, the commit joins the turn's group fdatasync */
static int ss_inject(void *ctx, const struct slice *body, size_t n, const struct spool_env *env, char *id)
{
	struct spool_store *ss = ctx;
	struct store_tx *t = ss->free;
	size_t len = 0, at = 0;

	for (size_t i = 0; i < n; i++)
		len += body[i].len;
	char *mem = malloc(len ? len : 1);
	if (mem == NULL)
		return RM_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		memcpy(mem + at, body[i].ptr, body[i].len);
		at += body[i].len;
	}
	if (t != NULL)
		ss->free = t->next;
	else if ((t = malloc(sizeof *t)) == NULL) {
		free(mem);
		return RM_ENOMEM;
	}
	*t = (struct store_tx){ .local = true };
	t->stx = spool_tx_begin(ss->sp, t);
	if (t->stx == NULL) {
		ss_tx_put(ss, t);
		free(mem);
		return RM_ENOMEM;
	}
	const char *qid = spool_tx_id(ss->sp, t->stx, ss_wall_us());
	if (id != NULL)
		memcpy(id, qid, MSGID_LEN + 1);
	struct slice v = slice_make(mem, len);
	int rc = spool_tx_append(ss->sp, t->stx, &v, 1);
	if (rc != RM_OK) {
		/* nothing of it was queued */
		spool_tx_abort(ss->sp, t->stx);
		ss_tx_put(ss, t);
		free(mem);
		return rc;
	}
	rc = spool_tx_commit(ss->sp, t->stx, env);
	if (rc == RM_OK) {
		t->own = mem; /* freed when the commit is reported durable */
	} else if (rc == RM_AGAIN) {
		spool_tx_abort(ss->sp, t->stx);
		ss_tx_put(ss, t);
	}
	/* On an error the done list reports the transaction. mem may still be
	 * in a write in the kernel: left behind. */
	(void)ss_submit(ss, false, 0, 0);
	return rc;
}

/* ss_hand_over - give the delivery module every recovered message */
static void ss_hand_over(struct spool_store *ss)
{
	char id[MSGID_LEN + 1];

	if (ss->env.queued == NULL)
		return;
	for (size_t k = 0; k <= ss->nextra; k++) {
		const struct spool_recovery *r = k == 0 ? &ss->rec : &ss->extra[k - 1].rec;
		const struct store_spool_ref *ref = k == 0 ? &ss->ref : &ss->extra[k - 1].ref;
		for (size_t i = 0; i < r->nmsg; i++) {
			size_t n = r->msg[i].env.id.len < MSGID_LEN ? r->msg[i].env.id.len : MSGID_LEN;
			memcpy(id, r->msg[i].env.id.ptr, n);
			id[n] = '\0';
			ss->env.queued(ss->env.qctx, ref, id, &r->msg[i]);
		}
	}
}

/* ss_max_shard - the highest shard number among the spool's files */
static unsigned ss_max_shard(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned max = 0, sh;
	char kind[4];

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		uint32_t num;
		if (strlen(e->d_name) == 18 && sscanf(e->d_name, "s%4x-%8" SCNx32 ".%3s", &sh, &num, kind) == 3 &&
		    sh > max && sh <= MSGID_SHARD_MAX)
			max = sh;
	}
	closedir(d);
	return max;
}

/* ss_open_one - the posix backend and the spool of shard number id */
static int ss_open_one(const char *dir, unsigned id, uint64_t segmax, struct spool_posix *px,
		       struct spool **sp, struct spool_recovery *rec)
{
	px->dirfd = -1;
	if (spool_posix_open(px, dir) != RM_OK)
		return RM_EIO;
	struct spool_cfg cfg = {
		.io = &px->io, .shard = id, .segment_max = segmax, .max_requests = SS_MAX_REQUESTS,
	};
	int rc = spool_open(sp, &cfg, rec);
	if (rc != RM_OK)
		spool_posix_close(px);
	return rc;
}

/* ss_log_recovery - one line about what recovery found for shard number id */
static void ss_log_recovery(unsigned shard, unsigned id, const struct spool_recovery *r)
{
	char line[256];
	snprintf(line, sizeof line,
		 "shard %u: spool %u recovered %zu unfinished messages (%zu segments, %zu finished, "
		 "%zu invalid, %" PRIu64 " torn bytes)",
		 shard, id, r->nmsg, r->segments, r->finished, r->invalid, r->torn_bytes);
	evlog_msg("info", "recovery", line);
}

/* ss_create - open and recover this shard's spool (and any spool an earlier
 * run with more shards left for it) */
static void *ss_create(void *global, const struct store_env *env)
{
	const struct store_spool_cfg *cfg = global;
	struct spool_store *ss = calloc(1, sizeof *ss);
	char line[256];
	int rc;

	if (ss == NULL || cfg == NULL || cfg->dir == NULL) {
		free(ss);
		return NULL;
	}
	ss->env = *env;
	ss->nops = SS_OPS_START;
	ss->ops = calloc(ss->nops, sizeof *ss->ops);
	ss->wq = calloc(ss->nops, sizeof *ss->wq);
	if (ss->ops == NULL || ss->wq == NULL) {
		free(ss->ops);
		free(ss->wq);
		free(ss);
		return NULL;
	}
	rc = ss_open_one(cfg->dir, env->shard, cfg->segment_max, &ss->px, &ss->sp, &ss->rec);
	if (rc != RM_OK) {
		snprintf(line, sizeof line, "shard %u: spool %s cannot be opened: %s", env->shard, cfg->dir,
			 rm_strerror(rc));
		evlog_msg("error", "recovery", line);
		free(ss->ops);
		free(ss->wq);
		free(ss);
		return NULL;
	}
	ss_log_recovery(env->shard, env->shard, &ss->rec);
	unsigned threads = cfg->threads ? cfg->threads : 1, max = ss_max_shard(cfg->dir);
	for (unsigned id = env->shard + threads; id <= max && ss->nextra < SS_EXTRA_MAX; id += threads) {
		struct ss_extra *x = realloc(ss->extra, sizeof *x * (ss->nextra + 1));
		if (x == NULL)
			break;
		ss->extra = x;
		x = &ss->extra[ss->nextra];
		if (ss_open_one(cfg->dir, id, cfg->segment_max, &x->px, &x->sp, &x->rec) != RM_OK) {
			snprintf(line, sizeof line, "shard %u: spool %u cannot be recovered", env->shard, id);
			evlog_msg("warn", "recovery", line);
			continue;
		}
		ss_log_recovery(env->shard, id, &x->rec);
		ss->nextra++;
	}
	ss->ref = (struct store_spool_ref){ ss->sp, ss_drain, ss, ss_inject, ss };
	for (size_t i = 0; i < ss->nextra; i++)
		ss->extra[i].ref = (struct store_spool_ref){ ss->extra[i].sp, ss_drain_extra, &ss->extra[i],
							     ss_inject, ss };
	ss_hand_over(ss);
	/* delivery loaded what it needs; the envelopes recovery decoded
	 * (about 0.7 KB per unfinished message) are not read again */
	spool_recovery_free(&ss->rec);
	for (size_t i = 0; i < ss->nextra; i++)
		spool_recovery_free(&ss->extra[i].rec);
	ss->gc_at = ss_now_ns() + SS_GC_NS;
	return ss;
}

/* ss_destroy - close the spools and free; nothing may be in flight */
static void ss_destroy(void *st)
{
	struct spool_store *ss = st;
	struct store_tx *t, *next;

	if (ss == NULL)
		return;
	for (size_t i = 0; i < ss->nextra; i++) {
		spool_recovery_free(&ss->extra[i].rec);
		ss->extra[i].sp = spool_close(ss->extra[i].sp);
		spool_posix_close(&ss->extra[i].px);
	}
	free(ss->extra);
	spool_recovery_free(&ss->rec);
	ss->sp = spool_close(ss->sp);
	spool_posix_close(&ss->px);
	for (unsigned i = 0; i < ss->nops; i++)
		free(ss->ops[i].gown);
	for (t = ss->free; t != NULL; t = next) {
		next = t->next;
		free(t);
	}
	free(ss->ops);
	free(ss->wq);
	free(ss->rcpt);
	free(ss);
}

/* ss_begin - a spool transaction and its queue ID */
static int ss_begin(void *st, uint64_t token, struct store_tx **tx, char id[STORE_QUEUE_ID_MAX])
{
	struct spool_store *ss = st;
	struct store_tx *t = ss->free;

	if (t != NULL)
		ss->free = t->next;
	else if ((t = malloc(sizeof *t)) == NULL)
		return RM_ENOMEM;
	t->token = token;
	t->local = false;
	t->own = NULL;
	t->next = NULL;
	t->stx = spool_tx_begin(ss->sp, t);
	if (t->stx == NULL) {
		ss_tx_put(ss, t);
		return RM_ENOMEM;
	}
	_Static_assert(MSGID_LEN < STORE_QUEUE_ID_MAX, "a queue ID fits the caller's buffer");
	memcpy(id, spool_tx_id(ss->sp, t->stx, ss_wall_us()), MSGID_LEN + 1);
	*tx = t;
	return RM_OK;
}

/* ss_append - one chunk record written from the caller's slices; RM_AGAIN
 * (keep the memory) until cb.appended */
static int ss_append(void *st, struct store_tx *tx, const struct iovec *iov, int n, uint64_t tag)
{
	struct spool_store *ss = st;
	struct slice v[64];

	if (n < 0 || n > 64)
		return RM_ELIMIT;
	for (int i = 0; i < n; i++)
		v[i] = slice_make(iov[i].iov_base, iov[i].iov_len);
	int rc = spool_tx_append(ss->sp, tx->stx, v, (size_t)n);
	bool kept = ss_collect(ss, rc == RM_OK, tx->token, tag);
	if (rc != RM_OK)
		return rc == RM_AGAIN ? RM_EIO : rc; /* no request slot: this message fails (451) */
	return kept ? RM_AGAIN : RM_OK;
}

/* ss_commit - queue the commit record; the verdict comes through
 * cb.committed once the group fdatasync covering it completes */
static int ss_commit(void *st, struct store_tx *tx, const struct smtp_tx *env, struct slice client,
		     struct slice trace)
{
	struct spool_store *ss = st;
	(void)client;

	if (env == NULL || env->nrcpt == 0)
		return RM_EINVAL;
	if (env->nrcpt > ss->rcpt_cap) {
		struct spool_rcpt *r = realloc(ss->rcpt, sizeof *r * env->nrcpt);
		if (r == NULL)
			return RM_ENOMEM;
		ss->rcpt = r;
		ss->rcpt_cap = env->nrcpt;
	}
	for (size_t i = 0; i < env->nrcpt; i++)
		ss->rcpt[i] = (struct spool_rcpt){ env->rcpt[i].path.mailbox, env->rcpt[i].params.notify,
						   env->rcpt[i].params.orcpt };
	struct spool_env e = {
		.arrival_us = ss_wall_us(),
		.sender = env->from.mailbox,
		.size = env->mail.size,
		.has_size = env->mail.has_size,
		.body = (uint8_t)env->mail.body,
		.ret = (uint8_t)env->mail.ret,
		.smtputf8 = env->mail.smtputf8,
		.envid = env->mail.envid,
		.auth = env->mail.auth,
		.received = trace,
		.rcpt = ss->rcpt,
		.nrcpt = (uint32_t)env->nrcpt,
	};
	int rc = spool_tx_commit(ss->sp, tx->stx, &e);
	(void)ss_collect(ss, false, 0, 0);
	/* Any error but RM_AGAIN has already been reported through the done
	 * list (turn_end passes it on); RM_AGAIN leaves the transaction ours. */
	return rc == RM_AGAIN ? RM_EIO : RM_OK;
}

/* ss_abort - forget the transaction; its writes still complete */
static void ss_abort(void *st, struct store_tx *tx)
{
	struct spool_store *ss = st;
	spool_tx_abort(ss->sp, tx->stx);
	ss_tx_put(ss, tx);
}

/* ss_turn_end - the loop boundary: pass on finished commits, then one
 * fdatasync per segment for everything committed since the last one */
static void ss_turn_end(void *st)
{
	struct spool_store *ss = st;

	ss_report(ss);
	spool_flush(ss->sp);
	(void)ss_submit(ss, false, 0, 0);
	if (ss->env.in_flight != NULL)
		__atomic_store_n(ss->env.in_flight, ss->pending, __ATOMIC_RELAXED);
	if (ss->pending == 0) {
		uint64_t now = ss_now_ns();
		if (now >= ss->gc_at) {
			ss->gc_at = now + SS_GC_NS;
			(void)spool_gc(ss->sp);
		}
	}
}

/* ss_finish - a request is done: free its slot and tell the spool (res:
 * bytes or -errno) and, for an append, the caller */
static void ss_finish(struct spool_store *ss, uint32_t slot, int64_t res)
{
	struct ss_op *op = &ss->ops[slot];
	uint64_t id = op->id, token = op->token, atag = op->append_tag;
	uint8_t kind = op->kind;

	free(op->gown);
	op->gown = NULL;
	op->kind = SS_FREE;
	ss->pending--;
	spool_req_done(ss->sp, id, res);
	if (kind == SS_APPEND)
		ss->env.cb.appended(ss->env.cb.ctx, token, atag);
}

/* ss_complete - a completion of one of our requests (a sync, or a write
 * group: tag is its first member) */
static void ss_complete(void *st, uint32_t tag, int res, uint32_t flags)
{
	struct spool_store *ss = st;
	(void)flags;

	if (tag >= ss->nops || ss->ops[tag].kind == SS_FREE)
		return;
	struct ss_op *op = &ss->ops[tag];
	if (op->kind == SS_SYNC) {
		if (res == 0) {
			SS_STAT_ADD(ss->env.syncs, 1);
			ss_sync_hist(ss, ss_now_ns() - op->t0);
		}
		ss_finish(ss, tag, res);
		ss_report(ss);
		return;
	}
	if (res > 0) {
		op->gdone += (uint64_t)res;
		if (op->gdone < op->glen && ss_short_write(ss, tag, (uint64_t)res))
			return;
		if (op->gdone < op->glen)
			res = -ENOMEM;
	} else if (res == 0) {
		res = -EIO; /* a write that makes no progress */
	}
	/* Members in offset order; a member wholly inside the written prefix
	 * succeeded even when the rest failed. Read the next member before a
	 * callback can reuse this slot. */
	uint64_t base = op->off, done = op->gdone;
	for (uint32_t m = tag, next; m != SS_NO_SLOT; m = next) {
		struct ss_op *o = &ss->ops[m];
		bool ok = res > 0 || o->off + o->len - base <= done;
		next = o->gnext;
		ss_finish(ss, m, ok ? (int64_t)o->len : (int64_t)(res < 0 ? res : -EIO));
	}
	ss_report(ss);
}

/* ss_pending - requests still in the kernel */
static unsigned ss_pending(void *st)
{
	const struct spool_store *ss = st;
	return ss->pending;
}

const struct store_ops store_spool_ops = {
	.name = "spool",
	.durable = true,
	.create = ss_create,
	.destroy = ss_destroy,
	.begin = ss_begin,
	.append = ss_append,
	.commit = ss_commit,
	.abort = ss_abort,
	.turn_end = ss_turn_end,
	.complete = ss_complete,
	.pending = ss_pending,
};
