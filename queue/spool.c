/* spool.c - segments, group commit, journal and recovery of one shard.
 *
 * Invariants:
 *  - every file keeps its in-flight writes in offset order (wq); the
 *    frontier (offset of the first write not completed, else the tail) only
 *    grows, and a sync covers the frontier it saw when issued;
 *  - a commit is reported durable only when, in every file it wrote to,
 *    durable >= its end and no failure lies below its end (bad_from);
 *  - a segment is pinned by every open transaction and every live message
 *    that has bytes in it, and deleted only when sealed, unpinned and idle;
 *  - a commit record made durable keeps its bytes in memory (sp_ent.crec)
 *    until the next spool_flush or its first spool_msg_load, whichever
 *    comes first: the delivery module loads every new message right after
 *    it is reported, and the record need not be read back from disk.
 * Threads: one spool per shard thread. Panics on nothing; allocation
 * failures are reported as RM_ENOMEM or a failed transaction.
 */
#include "queue/spool.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/sanitize.h"

#define SPOOL_IOV_MAX 64
#define SPOOL_CHUNK_MAX (16u << 20)
#define SPOOL_SEG_DEFAULT (64ull << 20)
#define SPOOL_REQ_BLOCK 1024u /* request slots allocated at a time, as load asks */
#define SPOOL_REQ_DEFAULT (256u * SPOOL_REQ_BLOCK) /* the most in flight at once */
#define SP_IOV_INLINE 4u /* a slot's own iovecs: a header and three slices,
			  * which most appends need; more take a pooled array */
#define SPOOL_NAME_MAX 32
#define SPOOL_HEALTHY UINT64_MAX
#if RM_SANITIZED
#define SP_TX_POOL 0u   /* every transaction freed, for the sanitizers */
#else
#define SP_TX_POOL 256u /* finished transactions kept for reuse */
#endif
#define SP_TX_POOL_EXT 64u /* a pooled transaction keeps at most this many extents */

struct sp_req;

/* One open segment or journal file. */
struct sp_file {
	uint32_t num;
	bool journal;
	int fd;
	uint64_t tail;      /* reserved end: the next append goes here */
	uint64_t durable;   /* synced through this offset */
	uint64_t want;      /* completed commits or journal records end here */
	struct sp_req *held_head, *held_tail; /* journal: records not yet
			     * handed out, waiting for earlier commits (FIFO,
			     * linked by qnext) */
	uint64_t bad_from;  /* first byte a failed write or sync left unknown */
	bool syncing, sealed;
	bool sync_waited;   /* the last flush let writes in flight finish */
	struct sp_req *wq_head, *wq_tail;
	uint32_t pins;
	struct sp_file *next;
};

/* One request slot: a write (header iovec + slices, or an owned record) or
 * a sync. Identified to the host by slot index and generation. */
struct sp_req {
	uint32_t gen;
	uint32_t slot;      /* its index, the low half of its request id */
	bool busy, done;
	enum spool_op op;
	struct sp_file *f;
	uint64_t off, len;  /* SYNC: off is the target */
	struct spool_tx *tx;
	bool is_commit;
	bool lazy;          /* a journal record no one waits for (a deferral) */
	uint64_t dep;       /* journal: written once the commits numbered up
			     * to this have ended (0: at once) */
	char hdr[SPOOL_REC_HDR];
	struct iovec *iov;  /* iov_in, or a pooled sp_iovs' v */
	struct iovec iov_in[SP_IOV_INLINE];
	int iovcnt;
	char *own;
	struct sp_req *fnext, *qnext, *free_next;
};

/* The iovecs of an append with more slices than a slot holds. */
struct sp_iovs {
	struct sp_iovs *next; /* the pool's free list */
	struct iovec v[SPOOL_IOV_MAX + 1];
};

/* Where one transaction wrote in one file. */
struct sp_pin {
	uint32_t seg;
	uint64_t end;
};

struct spool_tx {
	void *cookie;
	uint64_t tag;
	struct spool_extent *ext;
	uint32_t next, ext_cap;
	struct sp_pin *pins;
	uint32_t npins, pin_cap;
	uint32_t inflight;
	int err;
	bool committing, commit_written, aborted, forward;
	uint32_t cseg, clen, nrcpt;
	uint64_t coff;
	uint64_t seq;       /* commit order, from sp_tx_link */
	char id[MSGID_LEN + 1];
	char *crec; /* the commit record, once written */
	char *body; /* copy-forward: the body being rewritten */
	struct spool_tx *clink, *cprev; /* the committing list */
	struct spool_tx *aprev, *anext; /* every transaction not yet freed */
};

/* One live committed message in the index. */
struct sp_ent {
	char id[MSGID_LEN + 1];
	uint32_t seg, len;   /* its commit record */
	uint64_t off;
	uint32_t nrcpt, left;
	uint8_t *state;      /* per recipient: 0 pending, else an outcome */
	uint32_t *segs;      /* segments it pins */
	uint32_t nsegs;
	uint32_t finish_file;
	uint64_t finish_at;
	char *crec;          /* its commit record's bytes, while recent */
	bool finishing, dead;
	uint32_t cand;            /* recovery only: its commit record */
	bool fin;                 /* recovery only: found finished */
	uint32_t next;            /* its body's extents: what loading it takes */
	struct spool_rstate *rs;  /* recovery only: recipients' states */
};

struct spool {
	const struct spool_io *io;
	unsigned shard;
	uint64_t seg_max;
	struct msgid_gen gen;
	struct sp_file *files;
	struct sp_file *cur, *jcur;
	uint32_t next_seg, next_jrn;
	struct sp_req **req_blk;  /* blocks of SPOOL_REQ_BLOCK slots */
	struct sp_req *free_req, *qhead, *qtail;
	unsigned nreq, req_max;   /* slots made, and the most there may be */
	struct sp_iovs *iovs_pool; /* free large iovec arrays */
	struct spool_tx *committing, *committing_tail; /* newest first; commit_seq order */
	struct spool_tx *txs;     /* all, so that closing frees them */
	struct spool_tx *tx_pool; /* freed ones, their arrays kept, for reuse */
	unsigned ntx_pool;
	uint64_t next_tag;
	uint64_t commit_seq;      /* the last commit's number */
	struct sp_ent *ents;
	size_t nent, ent_cap, ndead;
	uint64_t *ht; /* the hash's high half << 32 | entry index + 1; 0 empty */
	size_t ht_cap;
	uint32_t *fin;
	size_t nfin, fin_cap;
	uint32_t *recent;         /* entries holding crec */
	size_t nrecent, recent_cap;
	struct spool_done *done;
	size_t done_head, ndone, done_cap;
	struct spool_stats st;
	bool recovering;          /* entries must not move */
};

/* sp_grow - make room for one more element in a growable array */
static bool sp_grow(void **arr, size_t *cap, size_t n, size_t size)
{
	size_t c;
	void *p;

	if (n < *cap)
		return true;
	c = *cap ? *cap * 2 : 16;
	p = realloc(*arr, c * size);
	if (!p)
		return false;
	*arr = p;
	*cap = c;
	return true;
}

/* sp_name - the file name of segment or journal num */
static void sp_name(char out[SPOOL_NAME_MAX], unsigned shard, uint32_t num, bool journal)
{
	snprintf(out, SPOOL_NAME_MAX, "s%04x-%08x.%s", shard, num, journal ? "jrn" : "seg");
}

/* sp_parse_name - shard, number and kind of a spool file name */
static bool sp_parse_name(const char *name, unsigned *shard, uint32_t *num, bool *journal)
{
	char kind[4], again[SPOOL_NAME_MAX];
	unsigned sh, n;

	if (strlen(name) != 18 || sscanf(name, "s%4x-%8x.%3s", &sh, &n, kind) != 3)
		return false;
	if (strcmp(kind, "seg") != 0 && strcmp(kind, "jrn") != 0)
		return false;
	*journal = kind[0] == 'j';
	sp_name(again, sh, n, *journal);
	if (strcmp(again, name) != 0)
		return false;
	*shard = sh;
	*num = n;
	return true;
}

/* sp_file_find - the open file num of a kind, or NULL */
static struct sp_file *sp_file_find(struct spool *sp, uint32_t num, bool journal)
{
	for (struct sp_file *f = sp->files; f; f = f->next)
		if (f->num == num && f->journal == journal)
			return f;
	return NULL;
}

/* sp_file_open - open (or create, making the name durable) a file */
static struct sp_file *sp_file_open(struct spool *sp, uint32_t num, bool journal, bool create)
{
	char name[SPOOL_NAME_MAX];
	struct sp_file *f = calloc(1, sizeof *f);
	int fd;

	if (!f)
		return NULL;
	sp_name(name, sp->shard, num, journal);
	fd = sp->io->open(sp->io->ctx, name, create);
	if (fd < 0 || (create && sp->io->syncdir(sp->io->ctx) < 0)) {
		if (fd >= 0) {
			sp->io->close(sp->io->ctx, fd);
			sp->io->unlink(sp->io->ctx, name);
		}
		free(f);
		return NULL;
	}
	f->num = num;
	f->journal = journal;
	f->fd = fd;
	f->bad_from = SPOOL_HEALTHY;
	f->next = sp->files;
	sp->files = f;
	if (!journal)
		sp->st.segments++;
	return f;
}

/* sp_file_drop - close a file, unlink it if asked, and forget it */
static void sp_file_drop(struct spool *sp, struct sp_file *f, bool unlink)
{
	char name[SPOOL_NAME_MAX];

	for (struct sp_file **pp = &sp->files; *pp; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	sp->io->close(sp->io->ctx, f->fd);
	if (unlink) {
		sp_name(name, sp->shard, f->num, f->journal);
		sp->io->unlink(sp->io->ctx, name);
	}
	if (!f->journal)
		sp->st.segments--;
	if (sp->cur == f)
		sp->cur = NULL;
	if (sp->jcur == f)
		sp->jcur = NULL;
	free(f);
}

/* sp_frontier - offset below which every write of f has completed */
static uint64_t sp_frontier(const struct sp_file *f)
{
	return f->wq_head ? f->wq_head->off : f->tail;
}

/* sp_current - the segment an append of need bytes goes to, rotating */
static struct sp_file *sp_current(struct spool *sp, uint64_t need)
{
	struct sp_file *f = sp->cur;

	if (f && !f->sealed && (f->tail == 0 || f->tail + need <= sp->seg_max))
		return f;
	if (f)
		f->sealed = true;
	sp->cur = sp_file_open(sp, sp->next_seg, false, true);
	if (sp->cur)
		sp->next_seg++;
	return sp->cur;
}

/* sp_journal_file - the journal file appends go to */
static struct sp_file *sp_journal_file(struct spool *sp)
{
	if (sp->jcur && !sp->jcur->sealed)
		return sp->jcur;
	if (sp->jcur)
		sp->jcur->sealed = true;
	sp->jcur = sp_file_open(sp, sp->next_jrn, true, true);
	if (sp->jcur)
		sp->next_jrn++;
	return sp->jcur;
}

/* sp_req_at - the slot numbered slot (< nreq) */
static struct sp_req *sp_req_at(const struct spool *sp, uint32_t slot)
{
	return &sp->req_blk[slot / SPOOL_REQ_BLOCK][slot % SPOOL_REQ_BLOCK];
}

static void sp_req_put(struct spool *sp, struct sp_req *r);

/* sp_req_grow - make the next block of slots (fewer when req_max is near);
 * slots never move, so their pointers and ids stay valid */
static bool sp_req_grow(struct spool *sp)
{
	unsigned nblk = sp->nreq / SPOOL_REQ_BLOCK, n = sp->nreq < sp->req_max ? sp->req_max - sp->nreq : 0;
	struct sp_req **blk, *b;

	if (n == 0)
		return false;
	if (n > SPOOL_REQ_BLOCK)
		n = SPOOL_REQ_BLOCK;
	blk = realloc(sp->req_blk, sizeof *blk * (nblk + 1));
	if (!blk)
		return false;
	sp->req_blk = blk;
	b = calloc(SPOOL_REQ_BLOCK, sizeof *b);
	if (!b)
		return false;
	blk[nblk] = b;
	for (unsigned i = n; i-- > 0;) {
		b[i].slot = sp->nreq + i;
		sp_req_put(sp, &b[i]);
	}
	sp->nreq += SPOOL_REQ_BLOCK; /* whole blocks: sp_req_at stays a division */
	return true;
}

/* sp_req_get - a free request slot, or NULL when req_max are in flight */
static struct sp_req *sp_req_get(struct spool *sp)
{
	struct sp_req *r = sp->free_req;

	if (!r && sp_req_grow(sp))
		r = sp->free_req;
	if (!r)
		return NULL;
	sp->free_req = r->free_next;
	r->busy = true;
	r->done = false;
	r->tx = NULL;
	r->is_commit = false;
	r->lazy = false;
	r->dep = 0;
	r->own = NULL;
	r->fnext = r->qnext = NULL;
	r->iov = r->iov_in;
	r->iovcnt = 0;
	return r;
}

/* sp_req_iovs - room in r for n iovecs: its own, or a pooled array */
static bool sp_req_iovs(struct spool *sp, struct sp_req *r, size_t n)
{
	struct sp_iovs *a = sp->iovs_pool;

	if (n <= SP_IOV_INLINE)
		return true;
	if (a)
		sp->iovs_pool = a->next;
	else if (!(a = malloc(sizeof *a)))
		return false;
	r->iov = a->v;
	return true;
}

/* sp_iovs_of - the pooled array whose iovecs r uses, or NULL */
static struct sp_iovs *sp_iovs_of(struct sp_req *r)
{
	if (r->iov == NULL || r->iov == r->iov_in)
		return NULL;
	return (struct sp_iovs *)(void *)((char *)r->iov - offsetof(struct sp_iovs, v));
}

/* sp_req_put - return a slot; its generation moves on */
static void sp_req_put(struct spool *sp, struct sp_req *r)
{
	struct sp_iovs *a = sp_iovs_of(r);

	if (a) {
		a->next = sp->iovs_pool;
		sp->iovs_pool = a;
	}
	r->iov = r->iov_in;
	free(r->own);
	r->own = NULL;
	r->busy = false;
	r->gen++;
	r->free_next = sp->free_req;
	sp->free_req = r;
}

/* sp_submit - queue a request for the host */
static void sp_submit(struct spool *sp, struct sp_req *r)
{
	if (sp->qtail)
		sp->qtail->qnext = r;
	else
		sp->qhead = r;
	sp->qtail = r;
}

/* sp_reserve - reserve len bytes at f's tail for r, in f's write order */
static void sp_reserve(struct sp_file *f, struct sp_req *r, uint64_t len)
{
	r->op = SPOOL_OP_WRITE;
	r->f = f;
	r->off = f->tail;
	r->len = len;
	f->tail += len;
	if (f->wq_tail)
		f->wq_tail->fnext = r;
	else
		f->wq_head = r;
	f->wq_tail = r;
	if (r->tx)
		r->tx->inflight++;
}

/* sp_write - reserve len bytes at f's tail for r and queue it */
static void sp_write(struct spool *sp, struct sp_file *f, struct sp_req *r, uint64_t len)
{
	sp_reserve(f, r, len);
	sp_submit(sp, r);
}

/* sp_deps_ended - every commit numbered up to dep has ended (durable or
 * failed): the committing list's tail is its oldest */
static bool sp_deps_ended(const struct spool *sp, uint64_t dep)
{
	return dep == 0 || sp->committing_tail == NULL || sp->committing_tail->seq > dep;
}

/* sp_journal_release - hand out the held journal records whose commits
 * have ended, in order */
static void sp_journal_release(struct spool *sp)
{
	for (struct sp_file *f = sp->files; f; f = f->next)
		while (f->held_head && sp_deps_ended(sp, f->held_head->dep)) {
			struct sp_req *r = f->held_head;
			f->held_head = r->qnext;
			if (!f->held_head)
				f->held_tail = NULL;
			r->qnext = NULL;
			sp_submit(sp, r);
		}
}

/* sp_tx_pin - note that tx wrote up to end in segment f */
static bool sp_tx_pin(struct spool_tx *tx, struct sp_file *f, uint64_t end)
{
	for (uint32_t i = 0; i < tx->npins; i++)
		if (tx->pins[i].seg == f->num) {
			tx->pins[i].end = end;
			return true;
		}
	size_t cap = tx->pin_cap;
	if (!sp_grow((void **)&tx->pins, &cap, tx->npins, sizeof *tx->pins))
		return false;
	tx->pin_cap = (uint32_t)cap;
	tx->pins[tx->npins++] = (struct sp_pin){ f->num, end };
	f->pins++;
	return true;
}

/* sp_unpin - release one pin on segment seg */
static void sp_unpin(struct spool *sp, uint32_t seg)
{
	struct sp_file *f = sp_file_find(sp, seg, false);
	if (f && f->pins)
		f->pins--;
}

/* sp_tx_link - tx is committing: put it on the committing list */
static void sp_tx_link(struct spool *sp, struct spool_tx *tx)
{
	tx->committing = true;
	tx->seq = ++sp->commit_seq;
	tx->cprev = NULL;
	tx->clink = sp->committing;
	if (sp->committing)
		sp->committing->cprev = tx;
	else
		sp->committing_tail = tx;
	sp->committing = tx;
}

/* sp_tx_unlink - take tx off the committing list (in O(1): a thousand
 * sessions keep a thousand transactions on it) */
static void sp_tx_unlink(struct spool *sp, struct spool_tx *tx)
{
	if (!tx->committing)
		return;
	if (tx->cprev)
		tx->cprev->clink = tx->clink;
	else if (sp->committing == tx)
		sp->committing = tx->clink;
	if (tx->clink)
		tx->clink->cprev = tx->cprev;
	else if (sp->committing_tail == tx)
		sp->committing_tail = tx->cprev;
	tx->clink = tx->cprev = NULL;
}

/* sp_tx_dispose - give a transaction's memory back */
static void sp_tx_dispose(struct spool_tx *tx)
{
	free(tx->ext);
	free(tx->pins);
	free(tx);
}

/* sp_tx_free - free a transaction (its writes have completed, or the
 * spool is closing) */
static void sp_tx_free(struct spool *sp, struct spool_tx *tx)
{
	if (tx->aprev)
		tx->aprev->anext = tx->anext;
	else
		sp->txs = tx->anext;
	if (tx->anext)
		tx->anext->aprev = tx->aprev;
	sp_tx_unlink(sp, tx); /* a no-op unless it is still committing */
	free(tx->body);
	free(tx->crec);
#if SP_TX_POOL > 0
	if (sp->ntx_pool < SP_TX_POOL) {
		/* kept with its extent and pin arrays: a message per session
		 * per turn would otherwise cost four allocations */
		if (tx->ext_cap > SP_TX_POOL_EXT) {
			free(tx->ext);
			tx->ext = NULL;
			tx->ext_cap = 0;
		}
		tx->anext = sp->tx_pool;
		sp->tx_pool = tx;
		sp->ntx_pool++;
		return;
	}
#endif
	sp_tx_dispose(tx);
}

/* --- the index of live messages ------------------------------------------ */

/* sp_hash - FNV-1a of a queue ID */
static size_t sp_hash(const char *id, size_t len)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)id[i]) * 1099511628211ull;
	return (size_t)h;
}

/* sp_ht_slot - the hash slot of id: its entry's or the empty one; *tag
 * gets the high half of its hash, which the slot keeps beside the index so
 * that a probe past another entry (and a miss) need not read the entry */
static size_t sp_ht_slot(const struct spool *sp, struct slice id, uint64_t *tag)
{
	uint64_t h = sp_hash(id.ptr, id.len);
	size_t m = sp->ht_cap - 1, i = (size_t)h & m;

	*tag = h & 0xffffffff00000000ull;
	for (; sp->ht[i]; i = (i + 1) & m) {
		if ((sp->ht[i] & 0xffffffff00000000ull) != *tag)
			continue;
		const struct sp_ent *e = &sp->ents[(uint32_t)sp->ht[i] - 1];
		if (id.len == MSGID_LEN && memcmp(e->id, id.ptr, MSGID_LEN) == 0)
			break;
	}
	return i;
}

/* sp_ent_find - the live entry of id, or NULL */
static struct sp_ent *sp_ent_find(struct spool *sp, struct slice id)
{
	struct sp_ent *e;
	uint64_t tag;

	if (!sp->ht_cap || id.len != MSGID_LEN)
		return NULL;
	size_t i = sp_ht_slot(sp, id, &tag);
	if (!sp->ht[i])
		return NULL;
	e = &sp->ents[(uint32_t)sp->ht[i] - 1];
	return e->dead ? NULL : e;
}

/* sp_ent_free - release an entry's memory */
static void sp_ent_free(struct sp_ent *e)
{
	free(e->state);
	free(e->segs);
	free(e->crec);
	e->state = NULL;
	e->segs = NULL;
	e->crec = NULL;
}

/* sp_recent_drop - free the commit records kept for spool_msg_load */
static void sp_recent_drop(struct spool *sp)
{
	for (size_t i = 0; i < sp->nrecent; i++) {
		struct sp_ent *e = &sp->ents[sp->recent[i]];
		free(e->crec);
		e->crec = NULL;
	}
	sp->nrecent = 0;
}

/* sp_rehash - rebuild the table, dropping dead entries when asked */
static bool sp_rehash(struct spool *sp, size_t cap, bool compact)
{
	uint64_t *ht = calloc(cap, sizeof *ht), tag;
	size_t n = 0;

	if (!ht)
		return false;
	if (compact)
		sp_recent_drop(sp); /* entries move */
	free(sp->ht);
	sp->ht = ht;
	sp->ht_cap = cap;
	for (size_t i = 0; i < sp->nent; i++) {
		if (compact && sp->ents[i].dead)
			continue;
		if (compact)
			sp->ents[n] = sp->ents[i];
		size_t k = compact ? n : i;
		size_t s = sp_ht_slot(sp, slice_make(sp->ents[k].id, MSGID_LEN), &tag);
		sp->ht[s] = tag | ((uint64_t)k + 1);
		n++;
	}
	if (compact) {
		sp->nent = n;
		sp->ndead = 0;
		/* finishing entries moved: find them again */
		sp->nfin = 0;
		for (size_t i = 0; i < sp->nent; i++)
			if (sp->ents[i].finishing)
				sp->fin[sp->nfin++] = (uint32_t)i;
	}
	return true;
}

/* sp_ent_add - a new entry for id (which must not be live); NULL on ENOMEM */
static struct sp_ent *sp_ent_add(struct spool *sp, const char *id)
{
	struct sp_ent *e;
	uint64_t tag;

	if (!sp->recovering && sp->ndead > 1024 && sp->ndead > sp->nent / 2 && sp->nfin == 0)
		if (!sp_rehash(sp, sp->ht_cap, true))
			return NULL;
	if ((sp->nent + 1) * 2 > sp->ht_cap)
		if (!sp_rehash(sp, sp->ht_cap ? sp->ht_cap * 2 : 1024, false))
			return NULL;
	if (!sp_grow((void **)&sp->ents, &sp->ent_cap, sp->nent, sizeof *sp->ents))
		return NULL;
	e = &sp->ents[sp->nent];
	memset(e, 0, sizeof *e);
	memcpy(e->id, id, MSGID_LEN);
	size_t s = sp_ht_slot(sp, slice_make(id, MSGID_LEN), &tag);
	sp->ht[s] = tag | ++sp->nent;
	return e;
}

/* sp_ent_kill - the message is finished or replaced: unpin, mark dead */
static void sp_ent_kill(struct spool *sp, struct sp_ent *e)
{
	for (uint32_t i = 0; i < e->nsegs; i++)
		sp_unpin(sp, e->segs[i]);
	sp_ent_free(e);
	e->nsegs = 0;
	e->dead = true;
	e->finishing = false;
	sp->ndead++;
	sp->st.live--;
}

/* sp_ent_outcome - apply one journal outcome; true when it finished the
 * message just now */
static bool sp_ent_outcome(struct sp_ent *e, uint32_t rcpt, enum spool_outcome oc)
{
	uint32_t lo = rcpt == SPOOL_RCPT_ALL ? 0 : rcpt, hi = rcpt == SPOOL_RCPT_ALL ? e->nrcpt : rcpt + 1;

	if (oc == SPOOL_OUT_DEFERRED || e->left == 0)
		return false;
	for (uint32_t i = lo; i < hi && i < e->nrcpt; i++)
		if (!e->state[i]) {
			e->state[i] = (uint8_t)oc;
			e->left--;
		}
	return e->left == 0;
}

/* --- completions ---------------------------------------------------------- */

/* sp_report - queue the outcome of a commit */
static void sp_report(struct spool *sp, struct spool_tx *tx, int status)
{
	struct spool_done d = { tx->cookie, status, "" };

	memcpy(d.id, tx->id, sizeof d.id);
	if (sp->done_head && sp->done_head == sp->ndone)
		sp->done_head = sp->ndone = 0;
	if (sp_grow((void **)&sp->done, &sp->done_cap, sp->ndone, sizeof *sp->done))
		sp->done[sp->ndone++] = d;
	if (status)
		sp->st.failed++;
	else
		sp->st.commits++;
}

/* sp_tx_durable - tx is durable: index it and report success */
static int sp_tx_durable(struct spool *sp, struct spool_tx *tx)
{
	struct sp_ent *old = sp_ent_find(sp, slice_make(tx->id, MSGID_LEN));
	struct sp_ent *e;
	uint32_t *segs = malloc(sizeof *segs * (tx->npins ? tx->npins : 1));
	uint8_t *state = calloc(tx->nrcpt ? tx->nrcpt : 1, 1);
	uint32_t left = tx->nrcpt;

	if (old && old->nrcpt == tx->nrcpt) {
		/* a copy forward: the journal so far still applies */
		memcpy(state, old->state, tx->nrcpt);
		left = old->left;
	}
	if (old)
		sp_ent_kill(sp, old);
	e = segs && state ? sp_ent_add(sp, tx->id) : NULL;
	if (!e) {
		free(segs);
		free(state);
		return RM_ENOMEM;
	}
	e->seg = tx->cseg;
	e->off = tx->coff;
	e->len = tx->clen;
	e->nrcpt = tx->nrcpt;
	e->next = tx->next;
	e->left = left;
	e->state = state;
	for (uint32_t i = 0; i < tx->npins; i++)
		segs[i] = tx->pins[i].seg;
	e->segs = segs;
	e->nsegs = tx->npins;
	tx->npins = 0; /* the entry holds the pins now */
	if (tx->crec && sp_grow((void **)&sp->recent, &sp->recent_cap, sp->nrecent, sizeof *sp->recent)) {
		e->crec = tx->crec;
		tx->crec = NULL;
		sp->recent[sp->nrecent++] = (uint32_t)(e - sp->ents);
	}
	sp->st.live++;
	return RM_OK;
}

/* sp_tx_end - report tx's outcome and free it */
static void sp_tx_end(struct spool *sp, struct spool_tx *tx, int status)
{
	if (status == RM_OK)
		status = sp_tx_durable(sp, tx);
	for (uint32_t i = 0; i < tx->npins; i++)
		sp_unpin(sp, tx->pins[i].seg);
	tx->npins = 0;
	sp_tx_unlink(sp, tx);
	sp_report(sp, tx, status);
	sp_tx_free(sp, tx);
}

/* sp_tx_check - report tx if all its writes are done and it is durable or
 * cannot become so */
static void sp_tx_check(struct spool *sp, struct spool_tx *tx)
{
	bool waiting = false;

	if (!tx->committing || tx->inflight)
		return;
	if (tx->err) {
		sp_tx_end(sp, tx, tx->err);
		return;
	}
	for (uint32_t i = 0; i < tx->npins; i++) {
		struct sp_file *f = sp_file_find(sp, tx->pins[i].seg, false);
		if (!f || f->bad_from < tx->pins[i].end) {
			sp_tx_end(sp, tx, RM_EIO);
			return;
		}
		if (f->durable < tx->pins[i].end)
			waiting = true;
	}
	if (!waiting)
		sp_tx_end(sp, tx, RM_OK);
}

/* sp_check_all - re-examine every committing transaction */
static void sp_check_all(struct spool *sp)
{
	struct spool_tx *tx = sp->committing, *next;

	for (; tx; tx = next) {
		next = tx->clink;
		sp_tx_check(sp, tx);
	}
}

/* sp_finish_synced - messages whose finishing journal record is durable
 * stop pinning their segments */
static void sp_finish_synced(struct spool *sp)
{
	size_t k = 0;

	for (size_t i = 0; i < sp->nfin; i++) {
		struct sp_ent *e = &sp->ents[sp->fin[i]];
		struct sp_file *f = sp_file_find(sp, e->finish_file, true);
		if (!e->finishing)
			continue;
		if (f && f->durable >= e->finish_at && f->bad_from >= e->finish_at)
			sp_ent_kill(sp, e);
		else
			sp->fin[k++] = sp->fin[i];
	}
	sp->nfin = k;
}

/* sp_write_done - a write completed with res */
static void sp_write_done(struct spool *sp, struct sp_req *r, int64_t res)
{
	struct sp_file *f = r->f;
	struct spool_tx *tx = r->tx;

	r->done = true;
	if (res != (int64_t)r->len) {
		int err = (res == -ENOSPC || res == -EDQUOT) ? RM_ELIMIT : RM_EIO;
		if (r->off < f->bad_from)
			f->bad_from = r->off;
		f->sealed = true;
		if (tx && !tx->err)
			tx->err = err;
	} else if (tx && r->is_commit) {
		tx->commit_written = true;
		free(tx->crec);
		tx->crec = r->own; /* kept for spool_msg_load */
		r->own = NULL;
		for (uint32_t i = 0; i < tx->npins; i++) {
			struct sp_file *g = sp_file_find(sp, tx->pins[i].seg, false);
			if (g && g->want < tx->pins[i].end)
				g->want = tx->pins[i].end;
		}
	} else if (f->journal && !r->lazy && f->want < r->off + r->len) {
		f->want = r->off + r->len;
	}
	r->tx = NULL;
	while (f->wq_head && f->wq_head->done) {
		struct sp_req *h = f->wq_head;
		f->wq_head = h->fnext;
		if (!f->wq_head)
			f->wq_tail = NULL;
		sp_req_put(sp, h);
	}
	if (tx) {
		tx->inflight--;
		if (tx->aborted) {
			if (!tx->inflight)
				sp_tx_free(sp, tx);
		} else {
			sp_tx_check(sp, tx);
		}
	}
}

/* sp_sync_done - a sync completed with res */
static void sp_sync_done(struct spool *sp, struct sp_req *r, int64_t res)
{
	struct sp_file *f = r->f;

	f->syncing = false;
	if (res == 0) {
		if (f->durable < r->off)
			f->durable = r->off;
		sp->st.syncs++;
	} else {
		/* after a failed fdatasync nothing unsynced can be trusted */
		if (f->durable < f->bad_from)
			f->bad_from = f->durable;
		f->sealed = true;
	}
	sp_req_put(sp, r);
	if (f->journal)
		sp_finish_synced(sp);
	else
		sp_check_all(sp);
}

/* spool_req_done - a request completed */
void spool_req_done(struct spool *sp, uint64_t id, int64_t res)
{
	uint32_t slot = (uint32_t)id, gen = (uint32_t)(id >> 32);
	struct sp_req *r = slot < sp->nreq ? sp_req_at(sp, slot) : NULL;

	if (!r || !r->busy || r->gen != gen || r->done) {
		sp->st.stale++;
		return;
	}
	if (r->op == SPOOL_OP_WRITE)
		sp_write_done(sp, r, res);
	else
		sp_sync_done(sp, r, res);
}

/* spool_req_next - the next request to submit */
bool spool_req_next(struct spool *sp, struct spool_req *out)
{
	struct sp_req *r = sp->qhead;

	if (!r)
		return false;
	sp->qhead = r->qnext;
	if (!sp->qhead)
		sp->qtail = NULL;
	out->id = ((uint64_t)r->gen << 32) | r->slot;
	out->op = r->op;
	out->fd = r->f->fd;
	out->off = r->off;
	out->iov = r->iov;
	out->iovcnt = r->op == SPOOL_OP_WRITE ? r->iovcnt : 0;
	return true;
}

/* spool_flush - queue one fdatasync per file with completed work waiting */
void spool_flush(struct spool *sp)
{
	sp_recent_drop(sp);
	sp_journal_release(sp);
	for (struct sp_file *f = sp->files; f; f = f->next) {
		uint64_t fr = sp_frontier(f);
		struct sp_req *r;
		if (f->syncing || f->want <= f->durable || fr <= f->durable)
			continue;
		if (f->wq_head && !f->sync_waited) {
			/* Writes of this file are in flight (those of this
			 * turn, as a rule): the sync waits one flush for them
			 * to join the group rather than start the next group
			 * one fdatasync later. Once only, so a steady stream
			 * of writes cannot hold it back. */
			f->sync_waited = true;
			continue;
		}
		f->sync_waited = false;
		r = sp_req_get(sp);
		if (!r)
			return; /* the next turn will do it */
		r->op = SPOOL_OP_SYNC;
		r->f = f;
		r->off = fr;
		r->len = 0;
		f->syncing = true;
		sp_submit(sp, r);
	}
}

/* spool_done_next - the next finished commit */
bool spool_done_next(struct spool *sp, struct spool_done *out)
{
	if (sp->done_head >= sp->ndone)
		return false;
	*out = sp->done[sp->done_head++];
	return true;
}

/* spool_run - execute every request through the backend until idle */
void spool_run(struct spool *sp)
{
	const struct spool_io *io = sp->io;
	struct spool_req q;

	for (;;) {
		while (spool_req_next(sp, &q)) {
			int64_t res = q.op == SPOOL_OP_WRITE
					      ? io->pwritev(io->ctx, q.fd, q.iov, q.iovcnt, q.off)
					      : io->fdatasync(io->ctx, q.fd);
			spool_req_done(sp, q.id, res);
		}
		spool_flush(sp);
		if (!sp->qhead)
			return;
	}
}

/* --- transactions ---------------------------------------------------------- */

/* spool_tx_begin - a new transaction */
struct spool_tx *spool_tx_begin(struct spool *sp, void *cookie)
{
	struct spool_tx *tx = sp->tx_pool;

	if (tx) {
		struct spool_extent *ext = tx->ext;
		struct sp_pin *pins = tx->pins;
		uint32_t ext_cap = tx->ext_cap, pin_cap = tx->pin_cap;
		sp->tx_pool = tx->anext;
		sp->ntx_pool--;
		*tx = (struct spool_tx){ .ext = ext, .ext_cap = ext_cap, .pins = pins, .pin_cap = pin_cap };
	} else if (!(tx = calloc(1, sizeof *tx))) {
		return NULL;
	}
	tx->cookie = cookie;
	tx->tag = ++sp->next_tag;
	tx->anext = sp->txs;
	if (sp->txs)
		sp->txs->aprev = tx;
	sp->txs = tx;
	return tx;
}

/* spool_tx_id - the transaction's queue ID, assigned on first use */
const char *spool_tx_id(struct spool *sp, struct spool_tx *tx, uint64_t now_us)
{
	if (tx->id[0] == '\0')
		msgid_next(&sp->gen, now_us, tx->id);
	return tx->id;
}

/* spool_tx_append - queue a chunk record over v[0..nv) */
int spool_tx_append(struct spool *sp, struct spool_tx *tx, const struct slice *v, size_t nv)
{
	uint64_t total = 0;
	struct sp_file *f;
	struct sp_req *r;
	size_t cap = tx->ext_cap;

	for (size_t i = 0; i < nv; i++)
		total += v[i].len;
	if (nv > SPOOL_IOV_MAX || total > SPOOL_CHUNK_MAX)
		return RM_ELIMIT;
	if (tx->err || total == 0)
		return RM_OK;
	if (!sp_grow((void **)&tx->ext, &cap, tx->next, sizeof *tx->ext))
		return RM_ENOMEM;
	tx->ext_cap = (uint32_t)cap;
	r = sp_req_get(sp);
	if (!r)
		return RM_AGAIN;
	if (!sp_req_iovs(sp, r, nv + 1)) {
		sp_req_put(sp, r);
		return RM_ENOMEM;
	}
	f = sp_current(sp, SPOOL_REC_HDR + total);
	if (!f || !sp_tx_pin(tx, f, f->tail + SPOOL_REC_HDR + total)) {
		sp_req_put(sp, r);
		return f ? RM_ENOMEM : RM_EIO;
	}
	spool_rec_chunk_hdr(r->hdr, tx->tag, v, nv);
	r->iov[0] = (struct iovec){ r->hdr, SPOOL_REC_HDR };
	for (size_t i = 0; i < nv; i++)
		r->iov[i + 1] = (struct iovec){ (void *)(uintptr_t)v[i].ptr, v[i].len };
	r->iovcnt = (int)nv + 1;
	tx->ext[tx->next++] = (struct spool_extent){ f->num, f->tail + SPOOL_REC_HDR, (uint32_t)total };
	r->tx = tx;
	sp_write(sp, f, r, SPOOL_REC_HDR + total);
	return RM_OK;
}

/* sp_tx_fail_now - fail a transaction at commit time */
static int sp_tx_fail_now(struct spool *sp, struct spool_tx *tx, int err)
{
	if (!tx->err)
		tx->err = err;
	sp_tx_link(sp, tx);
	sp_tx_check(sp, tx);
	return err;
}

/* spool_tx_commit - queue the commit record */
int spool_tx_commit(struct spool *sp, struct spool_tx *tx, const struct spool_env *env)
{
	struct spool_env e = *env;
	struct sp_req *r;
	struct sp_file *f;
	struct buf b;
	size_t size;

	if (tx->id[0] == '\0') /* not given by spool_tx_id or a copy forward */
		msgid_next(&sp->gen, env->arrival_us, tx->id);
	e.id = slice_make(tx->id, MSGID_LEN);
	e.shard = sp->shard;
	e.tag = tx->tag;
	e.ext = tx->ext;
	e.next = tx->next;
	if (tx->err)
		return sp_tx_fail_now(sp, tx, tx->err);
	size = spool_rec_commit_size(&e);
	if (size == 0)
		return sp_tx_fail_now(sp, tx, RM_ELIMIT);
	r = sp_req_get(sp);
	if (!r)
		return RM_AGAIN;
	r->own = malloc(size);
	buf_init(&b, r->own, size);
	if (!r->own || spool_rec_commit_encode(&b, &e) != RM_OK) {
		sp_req_put(sp, r);
		return sp_tx_fail_now(sp, tx, RM_EINVAL);
	}
	f = sp_current(sp, size);
	if (!f || !sp_tx_pin(tx, f, f->tail + size)) {
		sp_req_put(sp, r);
		return sp_tx_fail_now(sp, tx, f ? RM_ENOMEM : RM_EIO);
	}
	r->iov[0] = (struct iovec){ r->own, size };
	r->iovcnt = 1;
	r->tx = tx;
	r->is_commit = true;
	tx->cseg = f->num;
	tx->coff = f->tail;
	tx->clen = (uint32_t)size;
	tx->nrcpt = e.nrcpt;
	sp_tx_link(sp, tx);
	sp_write(sp, f, r, size);
	return RM_OK;
}

/* spool_tx_abort - forget the transaction */
void spool_tx_abort(struct spool *sp, struct spool_tx *tx)
{
	for (uint32_t i = 0; i < tx->npins; i++)
		sp_unpin(sp, tx->pins[i].seg);
	tx->npins = 0;
	tx->aborted = true;
	if (!tx->inflight)
		sp_tx_free(sp, tx);
}

/* --- journal, reading, deletion -------------------------------------------- */

/* sp_jrec_buf - encode j into a new buffer of *len bytes */
static char *sp_jrec_buf(const struct spool_jrec *j, size_t *len)
{
	size_t cap = SPOOL_REC_HDR + 32 + j->id.len + j->reply.len;
	char *p = malloc(cap);
	struct buf b;

	if (!p)
		return NULL;
	buf_init(&b, p, cap);
	if (spool_rec_journal_encode(&b, j) != RM_OK) {
		free(p);
		return NULL;
	}
	*len = b.len;
	return p;
}

/* sp_journal - queue a delivery-journal record; after: held until the
 * commits queued before it have ended */
static int sp_journal(struct spool *sp, const struct spool_jrec *j, bool after)
{
	struct sp_ent *e = sp_ent_find(sp, j->id);
	struct sp_file *f;
	struct sp_req *r;
	size_t len;

	if (!e || (j->rcpt != SPOOL_RCPT_ALL && j->rcpt >= e->nrcpt))
		return RM_EINVAL;
	r = sp_req_get(sp);
	if (!r)
		return RM_AGAIN;
	r->own = sp_jrec_buf(j, &len);
	f = r->own ? sp_journal_file(sp) : NULL;
	if (!f) {
		int err = r->own ? RM_EIO : RM_EINVAL;
		sp_req_put(sp, r);
		return err;
	}
	if (!sp_grow((void **)&sp->fin, &sp->fin_cap, sp->nfin, sizeof *sp->fin)) {
		sp_req_put(sp, r);
		return RM_ENOMEM;
	}
	r->iov[0] = (struct iovec){ r->own, len };
	r->iovcnt = 1;
	r->lazy = j->outcome == SPOOL_OUT_DEFERRED;
	/* Held: written only after every commit queued before it has ended,
	 * so the kernel cannot make it durable before them. Records queued
	 * later without the hold go out at once: the durable frontier stays
	 * below the held one until it is written. */
	r->dep = after ? sp->commit_seq : 0;
	sp_reserve(f, r, len);
	if (after && (f->held_head || !sp_deps_ended(sp, r->dep))) {
		if (f->held_tail)
			f->held_tail->qnext = r;
		else
			f->held_head = r;
		f->held_tail = r;
	} else {
		sp_submit(sp, r);
	}
	if (sp_ent_outcome(e, j->rcpt, j->outcome)) {
		e->finishing = true;
		e->finish_file = f->num;
		e->finish_at = r->off + len;
		sp->fin[sp->nfin++] = (uint32_t)(e - sp->ents);
	}
	return RM_OK;
}

/* spool_journal - queue a delivery-journal record */
int spool_journal(struct spool *sp, const struct spool_jrec *j)
{
	return sp_journal(sp, j, false);
}

/* spool_journal_after - the same, written after earlier commits end */
int spool_journal_after(struct spool *sp, const struct spool_jrec *j)
{
	return sp_journal(sp, j, true);
}

/* spool_msg_live - whether id is still kept */
bool spool_msg_live(struct spool *sp, struct slice id)
{
	return sp_ent_find(sp, id) != NULL;
}

/* spool_gc - delete sealed segments no message needs any more */
int spool_gc(struct spool *sp)
{
	struct sp_file *f = sp->files, *next;
	int n = 0;

	for (; f; f = next) {
		next = f->next;
		if (f->journal || f == sp->cur || f->pins || f->wq_head || f->syncing)
			continue;
		sp_file_drop(sp, f, true);
		n++;
	}
	if (n)
		(void)sp->io->syncdir(sp->io->ctx);
	return n;
}

/* sp_pread_all - read exactly n bytes at off */
static int sp_pread_all(struct spool *sp, int fd, void *dst, size_t n, uint64_t off)
{
	int64_t r = sp->io->pread(sp->io->ctx, fd, dst, n, off);
	return r == (int64_t)n ? RM_OK : RM_EIO;
}

/* spool_msg_need - the arena bytes spool_msg_load of id takes */
size_t spool_msg_need(struct spool *sp, struct slice id)
{
	const struct sp_ent *e = sp_ent_find(sp, id);

	if (!e)
		return 0;
	/* spool_msg_load's allocations: the record, then its decoder's arrays */
	return arena_round(e->len) + arena_round(sizeof(struct spool_rcpt) * e->nrcpt) +
	       (e->next ? arena_round(sizeof(struct spool_extent) * e->next) : 0);
}

/* spool_msg_load - read a live message's commit record back */
int spool_msg_load(struct spool *sp, struct slice id, struct arena *a, struct spool_env *out)
{
	struct sp_ent *e = sp_ent_find(sp, id);
	struct sp_file *f;
	struct spool_rec rec;
	size_t used;
	char *p;

	if (!e)
		return RM_EINVAL;
	f = sp_file_find(sp, e->seg, false);
	p = arena_alloc(a, e->len);
	if (!f || !p)
		return f ? RM_ENOMEM : RM_EIO;
	if (e->crec != NULL) {
		/* just made durable: the bytes this spool encoded, still in
		 * memory and never read back, so no CRC to check */
		memcpy(p, e->crec, e->len);
		free(e->crec);
		e->crec = NULL;
		return spool_rec_commit_decode(slice_make(p + SPOOL_REC_HDR, e->len - SPOOL_REC_HDR), a, out);
	}
	if (sp_pread_all(sp, f->fd, p, e->len, e->off) != RM_OK) {
		return RM_EIO;
	}
	if (spool_rec_next(p, e->len, &rec, &used) != SPOOL_SCAN_OK || rec.type != SPOOL_REC_COMMIT)
		return RM_EIO;
	return spool_rec_commit_decode(rec.payload, a, out);
}

/* spool_extent_fd - the fd of segment seg */
int spool_extent_fd(struct spool *sp, uint32_t seg)
{
	struct sp_file *f = sp_file_find(sp, seg, false);
	return f ? f->fd : -1;
}

/* sp_extents_read - walk e's extents for n body bytes from off, reading
 * each piece through rd (segment, file offset, destination, length) */
static int sp_extents_read(const struct spool_env *e, uint64_t off, void *dst, size_t n,
			   int (*rd)(void *arg, uint32_t seg, uint64_t at, void *d, size_t k),
			   void *arg)
{
	char *d = dst;

	for (uint32_t i = 0; i < e->next && n; i++) {
		const struct spool_extent *x = &e->ext[i];
		if (off >= x->len) {
			off -= x->len;
			continue;
		}
		size_t k = x->len - off < n ? (size_t)(x->len - off) : n;
		if (rd(arg, x->seg, x->off + off, d, k) != RM_OK)
			return RM_EIO;
		d += k;
		n -= k;
		off = 0;
	}
	return n ? RM_EINVAL : RM_OK;
}

/* sp_read_open - read a piece from one of the open spool's segments */
static int sp_read_open(void *arg, uint32_t seg, uint64_t at, void *d, size_t k)
{
	struct spool *sp = arg;
	int fd = spool_extent_fd(sp, seg);

	return fd < 0 ? RM_EIO : sp_pread_all(sp, fd, d, k, at);
}

/* spool_read - n bytes of e's body from offset off */
int spool_read(struct spool *sp, const struct spool_env *e, uint64_t off, void *dst, size_t n)
{
	return sp_extents_read(e, off, dst, n, sp_read_open, sp);
}

/* spool_copy_forward - rewrite a live message into the current segment */
int spool_copy_forward(struct spool *sp, struct slice id, void *cookie)
{
	struct arena a;
	struct spool_env env;
	struct spool_tx *tx;
	uint64_t len;
	int rc;

	arena_init(&a, &rm_alloc_libc, 1 << 16, SPOOL_REC_MAX * 2ull);
	rc = spool_msg_load(sp, id, &a, &env);
	if (rc != RM_OK)
		goto out;
	len = spool_env_body_len(&env);
	tx = spool_tx_begin(sp, cookie);
	if (!tx || !(tx->body = malloc(len ? len : 1))) {
		if (tx)
			sp_tx_free(sp, tx);
		rc = RM_ENOMEM;
		goto out;
	}
	tx->forward = true;
	memcpy(tx->id, id.ptr, MSGID_LEN);
	tx->id[MSGID_LEN] = '\0';
	rc = spool_read(sp, &env, 0, tx->body, len);
	for (uint64_t off = 0; rc == RM_OK && off < len; off += SPOOL_CHUNK_MAX) {
		struct slice s = slice_make(tx->body + off,
					    len - off < SPOOL_CHUNK_MAX ? len - off : SPOOL_CHUNK_MAX);
		rc = spool_tx_append(sp, tx, &s, 1);
	}
	if (rc != RM_OK) {
		spool_tx_abort(sp, tx);
		goto out;
	}
	rc = spool_tx_commit(sp, tx, &env);
out:
	arena_free(&a);
	return rc;
}

/* spool_stats - the counters */
void spool_stats(const struct spool *sp, struct spool_stats *out)
{
	*out = sp->st;
}

/* spool_recovery_free - free what recovery returned */
void spool_recovery_free(struct spool_recovery *r)
{
	arena_free(&r->_arena);
	r->msg = NULL;
	r->nmsg = 0;
}

/* spool_close - close files and free */
struct spool *spool_close(struct spool *sp)
{
	if (!sp)
		return NULL;
	while (sp->txs)
		sp_tx_free(sp, sp->txs);
	while (sp->tx_pool) {
		struct spool_tx *tx = sp->tx_pool;
		sp->tx_pool = tx->anext;
		sp_tx_dispose(tx);
	}
	while (sp->files)
		sp_file_drop(sp, sp->files, false);
	for (unsigned i = 0; i < sp->nreq; i++) {
		free(sp_req_at(sp, i)->own);
		free(sp_iovs_of(sp_req_at(sp, i)));
	}
	while (sp->iovs_pool) {
		struct sp_iovs *a = sp->iovs_pool;
		sp->iovs_pool = a->next;
		free(a);
	}
	for (unsigned i = 0; i < sp->nreq / SPOOL_REQ_BLOCK; i++)
		free(sp->req_blk[i]);
	for (size_t i = 0; i < sp->nent; i++)
		sp_ent_free(&sp->ents[i]);
	free(sp->req_blk);
	free(sp->ents);
	free(sp->ht);
	free(sp->fin);
	free(sp->recent);
	free(sp->done);
	free(sp);
	return NULL;
}


/* --- recovery ------------------------------------------------------------- */

/* A chunk record found: payload offset and length in segment seg. */
struct rc_chunk {
	uint32_t seg;
	uint64_t off;
	uint32_t len;
	uint64_t tag;
};

/* A commit record found. */
struct rc_cand {
	struct spool_env env;
	uint32_t seg, len;
	uint64_t off;
};

struct rc {
	struct spool *sp;
	struct arena *a;
	uint32_t *segs, *jrns;
	size_t nseg, seg_cap, njrn, jrn_cap;
	struct rc_chunk *ch;
	size_t nch, ch_cap;
	struct rc_cand *cand;
	size_t ncand, cand_cap;
	struct spool_jrec *jr;
	size_t njr, jr_cap;
	uint64_t torn;
	int err;
	bool readonly;            /* spool_scan: look, change nothing */
};

/* rc_list_fn - collect the shard's segment and journal numbers */
static int rc_list_fn(void *arg, const char *name)
{
	struct rc *rc = arg;
	unsigned shard;
	uint32_t num;
	bool journal;

	if (!sp_parse_name(name, &shard, &num, &journal) || shard != rc->sp->shard)
		return 0;
	if (journal ? !sp_grow((void **)&rc->jrns, &rc->jrn_cap, rc->njrn, sizeof *rc->jrns)
		    : !sp_grow((void **)&rc->segs, &rc->seg_cap, rc->nseg, sizeof *rc->segs))
		return RM_ENOMEM;
	if (journal)
		rc->jrns[rc->njrn++] = num;
	else
		rc->segs[rc->nseg++] = num;
	return 0;
}

/* rc_u32cmp - ascending order of file numbers */
static int rc_u32cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* rc_chunk_cmp - chunks by segment, then offset */
static int rc_chunk_cmp(const void *a, const void *b)
{
	const struct rc_chunk *x = a, *y = b;
	if (x->seg != y->seg)
		return x->seg < y->seg ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* rc_sort - qsort that accepts an empty, NULL array */
static void rc_sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
	if (n > 1)
		qsort(base, n, size, cmp);
}

/* rc_msg_cmp - messages by queue ID, which is by arrival */
static int rc_msg_cmp(const void *a, const void *b)
{
	const struct spool_msg *x = a, *y = b;
	return memcmp(x->env.id.ptr, y->env.id.ptr, MSGID_LEN);
}

/* rc_keep - copy a payload into the recovery arena */
static struct slice rc_keep(struct rc *rc, struct slice p)
{
	char *q = arena_alloc(rc->a, p.len ? p.len : 1);
	if (!q)
		return SLICE_NULL;
	memcpy(q, p.ptr, p.len);
	return slice_make(q, p.len);
}

/* rc_record - take one valid record of file f at offset off */
static int rc_record(struct rc *rc, struct sp_file *f, const struct spool_rec *r, uint64_t off,
		     size_t used)
{
	struct slice p;

	if (!f->journal && r->type == SPOOL_REC_CHUNK) {
		if (!sp_grow((void **)&rc->ch, &rc->ch_cap, rc->nch, sizeof *rc->ch))
			return RM_ENOMEM;
		rc->ch[rc->nch++] = (struct rc_chunk){ f->num, off + SPOOL_REC_HDR,
						       (uint32_t)r->payload.len, r->tag };
		return RM_OK;
	}
	if (r->type == SPOOL_REC_CHUNK || r->type != (f->journal ? SPOOL_REC_JOURNAL : SPOOL_REC_COMMIT))
		return RM_OK;
	p = rc_keep(rc, r->payload);
	if (!p.ptr)
		return RM_ENOMEM;
	if (f->journal) {
		if (!sp_grow((void **)&rc->jr, &rc->jr_cap, rc->njr, sizeof *rc->jr))
			return RM_ENOMEM;
		if (spool_rec_journal_decode(p, &rc->jr[rc->njr]) == RM_OK)
			rc->njr++;
		return RM_OK;
	}
	if (!sp_grow((void **)&rc->cand, &rc->cand_cap, rc->ncand, sizeof *rc->cand))
		return RM_ENOMEM;
	struct rc_cand *c = &rc->cand[rc->ncand];
	int err = spool_rec_commit_decode(p, rc->a, &c->env);
	if (err == RM_ENOMEM)
		return err;
	if (err == RM_OK) {
		c->seg = f->num;
		c->off = off;
		c->len = (uint32_t)used;
		rc->ncand++;
	}
	return RM_OK;
}

/* rc_scan - read file num and take its records up to the first bad one */
static int rc_scan(struct rc *rc, uint32_t num, bool journal)
{
	struct spool *sp = rc->sp;
	struct sp_file *f;
	uint64_t size, off = 0;
	char *buf;
	int err = RM_OK;

	if (rc->readonly) {
		/* the lock holder may have deleted it since the listing: a
		 * segment only when all its messages were finished, a journal
		 * only after compacting it into a newer one */
		char name[SPOOL_NAME_MAX];
		int fd;

		sp_name(name, sp->shard, num, journal);
		fd = sp->io->open(sp->io->ctx, name, false);
		if (fd == -ENOENT)
			return RM_OK;
		if (fd >= 0)
			sp->io->close(sp->io->ctx, fd);
	}
	f = sp_file_open(sp, num, journal, false);
	if (!f)
		return RM_EIO;
	f->sealed = true;
	if (sp->io->fsize(sp->io->ctx, f->fd, &size) < 0)
		return RM_EIO;
	buf = malloc(size ? size : 1);
	if (!buf)
		return RM_ENOMEM;
	if (sp_pread_all(sp, f->fd, buf, size, 0) != RM_OK) {
		free(buf);
		return RM_EIO;
	}
	while (off < size && err == RM_OK) {
		struct spool_rec r;
		size_t used;
		if (spool_rec_next(buf + off, size - off, &r, &used) != SPOOL_SCAN_OK)
			break;
		err = rc_record(rc, f, &r, off, used);
		off += used;
	}
	free(buf);
	rc->torn += size - off;
	f->tail = f->durable = f->want = size;
	return err;
}

/* rc_extents_ok - every extent of c names a valid chunk of its transaction */
static bool rc_extents_ok(struct rc *rc, const struct rc_cand *c)
{
	for (uint32_t i = 0; i < c->env.next; i++) {
		struct rc_chunk key = { c->env.ext[i].seg, c->env.ext[i].off, 0, 0 };
		const struct rc_chunk *k = bsearch(&key, rc->ch, rc->nch, sizeof *rc->ch, rc_chunk_cmp);
		if (!k || k->len != c->env.ext[i].len || k->tag != c->env.tag)
			return false;
	}
	return true;
}

/* rc_index - index the candidates whose bodies are whole; a later commit
 * of the same ID (a copy forward) replaces an earlier one */
static int rc_index(struct rc *rc, struct spool_recovery *out)
{
	struct spool *sp = rc->sp;

	for (size_t i = 0; i < rc->ncand; i++) {
		struct rc_cand *c = &rc->cand[i];
		struct msgid_parts idp;
		struct sp_ent *e, *old;

		if (!msgid_parse(c->env.id, &idp) || !rc_extents_ok(rc, c)) {
			out->invalid++;
			continue;
		}
		msgid_gen_seen(&sp->gen, &idp);
		old = sp_ent_find(sp, c->env.id);
		if (old)
			sp_ent_kill(sp, old);
		e = sp_ent_add(sp, c->env.id.ptr);
		if (!e)
			return RM_ENOMEM;
		e->seg = c->seg;
		e->off = c->off;
		e->len = c->len;
		e->nrcpt = e->left = c->env.nrcpt;
		e->next = c->env.next;
		e->cand = (uint32_t)i;
		e->state = calloc(e->nrcpt, 1);
		e->rs = arena_alloc(rc->a, sizeof *e->rs * e->nrcpt);
		e->segs = malloc(sizeof *e->segs * (c->env.next + 1));
		sp->st.live++;
		if (!e->state || !e->rs || !e->segs)
			return RM_ENOMEM;
		memset(e->rs, 0, sizeof *e->rs * e->nrcpt);
		e->segs[e->nsegs++] = c->seg;
		for (uint32_t k = 0; k < c->env.next; k++) {
			uint32_t s = c->env.ext[k].seg;
			bool have = false;
			for (uint32_t m = 0; m < e->nsegs; m++)
				have |= e->segs[m] == s;
			if (!have)
				e->segs[e->nsegs++] = s;
		}
		for (uint32_t m = 0; m < e->nsegs; m++) {
			struct sp_file *f = sp_file_find(sp, e->segs[m], false);
			if (f)
				f->pins++;
		}
	}
	return RM_OK;
}

/* rc_apply - apply the journal records in order */
static void rc_apply(struct rc *rc)
{
	for (size_t i = 0; i < rc->njr; i++) {
		const struct spool_jrec *j = &rc->jr[i];
		struct sp_ent *e = sp_ent_find(rc->sp, j->id);
		if (!e || (j->rcpt != SPOOL_RCPT_ALL && j->rcpt >= e->nrcpt))
			continue;
		uint32_t lo = j->rcpt == SPOOL_RCPT_ALL ? 0 : j->rcpt;
		uint32_t hi = j->rcpt == SPOOL_RCPT_ALL ? e->nrcpt : j->rcpt + 1;
		for (uint32_t k = lo; k < hi; k++) {
			struct spool_rstate *s = &e->rs[k];
			if (s->outcome)
				continue;
			s->attempts = j->attempts;
			s->last_reply = j->reply;
			if (j->outcome == SPOOL_OUT_DEFERRED)
				s->next_attempt_us = j->next_attempt_us;
			else
				s->outcome = j->outcome;
		}
		(void)sp_ent_outcome(e, j->rcpt, j->outcome);
	}
}

/* rc_compact - write the state of the live messages into a new journal,
 * make it durable, then remove the old journals */
static int rc_compact(struct rc *rc)
{
	struct spool *sp = rc->sp;
	struct sp_file *f;
	char *mem = NULL;
	size_t len = 0, cap = 0;
	int err = RM_OK;

	for (size_t i = 0; i < sp->nent && err == RM_OK; i++) {
		struct sp_ent *e = &sp->ents[i];
		/* a finished message whose segment is still there (other
		 * messages pin it) must stay finished */
		bool keep = !e->dead || (e->fin && sp_file_find(sp, e->seg, false));
		for (uint32_t k = 0; keep && k < e->nrcpt && err == RM_OK; k++) {
			const struct spool_rstate *s = &e->rs[k];
			struct spool_jrec j = { slice_make(e->id, MSGID_LEN), k,
						s->outcome ? (enum spool_outcome)s->outcome : SPOOL_OUT_DEFERRED,
						s->next_attempt_us, s->attempts, s->last_reply };
			size_t n;
			char *p;
			if (!s->outcome && !s->attempts && !s->next_attempt_us)
				continue;
			p = sp_jrec_buf(&j, &n);
			if (!p || (len + n > cap && !(cap = (len + n) * 2, mem = realloc(mem, cap))))
				err = RM_ENOMEM;
			else
				memcpy(mem + len, p, n);
			len += n;
			free(p);
		}
	}
	if (err != RM_OK) {
		free(mem);
		return err;
	}
	f = sp_file_open(sp, sp->next_jrn, true, true);
	bool written = f != NULL;
	if (written && len) {
		struct iovec v = { mem, len };
		written = sp->io->pwritev(sp->io->ctx, f->fd, &v, 1, 0) == (int64_t)len &&
			  sp->io->fdatasync(sp->io->ctx, f->fd) >= 0;
	}
	free(mem);
	if (!written) {
		/* A full or failing disk must not keep the daemon from starting
		 * (it then answers 452 and recovers when space returns): the
		 * journals as found were synced above and say the same thing,
		 * so keep them and journal into a new file later. */
		if (f)
			sp_file_drop(sp, f, true);
		sp->next_jrn++;
		return RM_OK;
	}
	sp->next_jrn++;
	f->tail = f->durable = f->want = len;
	sp->jcur = f;
	for (struct sp_file *g = sp->files, *next; g; g = next) {
		next = g->next;
		if (g->journal && g != f)
			sp_file_drop(sp, g, true);
	}
	return sp->io->syncdir(sp->io->ctx) < 0 ? RM_EIO : RM_OK;
}

/* rc_output - the unfinished messages, sorted by ID; finished ones are
 * dropped from the index */
static int rc_output(struct rc *rc, struct spool_recovery *out)
{
	struct spool *sp = rc->sp;
	size_t n = 0;

	for (size_t i = 0; i < sp->nent; i++)
		if (!sp->ents[i].dead)
			n += sp->ents[i].left > 0;
	out->msg = arena_alloc(rc->a, sizeof *out->msg * (n ? n : 1));
	if (!out->msg)
		return RM_ENOMEM;
	for (size_t i = 0; i < sp->nent; i++) {
		struct sp_ent *e = &sp->ents[i];
		if (e->dead)
			continue;
		if (e->left == 0) {
			out->finished++;
			continue;
		}
		out->msg[out->nmsg++] = (struct spool_msg){ rc->cand[e->cand].env, e->rs, e->left };
	}
	rc_sort(out->msg, out->nmsg, sizeof *out->msg, rc_msg_cmp);
	return RM_OK;
}

/* rc_run - the whole recovery */
static int rc_run(struct rc *rc, struct spool_recovery *out)
{
	struct spool *sp = rc->sp;
	int err = sp->io->list(sp->io->ctx, rc_list_fn, rc);

	if (err < 0)
		return err == RM_ENOMEM ? RM_ENOMEM : RM_EIO;
	rc_sort(rc->segs, rc->nseg, sizeof *rc->segs, rc_u32cmp);
	rc_sort(rc->jrns, rc->njrn, sizeof *rc->jrns, rc_u32cmp);
	for (size_t i = 0; i < rc->nseg && err == RM_OK; i++)
		err = rc_scan(rc, rc->segs[i], false);
	for (size_t i = 0; i < rc->njrn && err == RM_OK; i++)
		err = rc_scan(rc, rc->jrns[i], true);
	if (err != RM_OK)
		return err;
	sp->next_seg = rc->nseg ? rc->segs[rc->nseg - 1] + 1 : 1;
	sp->next_jrn = rc->njrn ? rc->jrns[rc->njrn - 1] + 1 : 1;
	out->segments = rc->nseg;
	out->torn_bytes = rc->torn;
	rc_sort(rc->ch, rc->nch, sizeof *rc->ch, rc_chunk_cmp);
	err = rc_index(rc, out);
	if (err != RM_OK)
		return err;
	rc_apply(rc);
	err = rc_output(rc, out);
	if (err != RM_OK || rc->readonly)
		return err;
	/* finished per the journals as found: make them durable before the
	 * segments they free are deleted */
	for (struct sp_file *f = sp->files; f; f = f->next)
		if (f->journal && sp->io->fdatasync(sp->io->ctx, f->fd) < 0)
			return RM_EIO;
	for (size_t i = 0; i < sp->nent; i++)
		if (!sp->ents[i].dead && sp->ents[i].left == 0) {
			sp_ent_kill(sp, &sp->ents[i]);
			sp->ents[i].fin = true;
		}
	(void)spool_gc(sp);
	return rc_compact(rc);
}

/* sp_recover - a new spool over cfg with recovery run into rec (which
 * the caller frees); readonly: scan and index only */
static int sp_recover(struct spool **out, const struct spool_cfg *cfg, struct spool_recovery *rec,
		      bool readonly)
{
	struct spool *sp = calloc(1, sizeof *sp);
	struct rc rc;
	int err;

	*out = NULL;
	memset(rec, 0, sizeof *rec);
	arena_init(&rec->_arena, &rm_alloc_libc, 1 << 20, SIZE_MAX);
	if (!sp)
		return RM_ENOMEM;
	sp->io = cfg->io;
	sp->shard = cfg->shard & MSGID_SHARD_MAX;
	sp->seg_max = cfg->segment_max ? cfg->segment_max : SPOOL_SEG_DEFAULT;
	sp->req_max = readonly ? 0 : cfg->max_requests ? cfg->max_requests : SPOOL_REQ_DEFAULT;
	msgid_gen_init(&sp->gen, sp->shard);
	memset(&rc, 0, sizeof rc);
	rc.sp = sp;
	rc.a = &rec->_arena;
	rc.readonly = readonly;
	sp->recovering = true;
	err = rc_run(&rc, rec);
	sp->recovering = false;
	free(rc.segs);
	free(rc.jrns);
	free(rc.ch);
	free(rc.cand);
	free(rc.jr);
	for (size_t i = 0; i < sp->nent; i++)
		sp->ents[i].rs = NULL;
	if (err != RM_OK) {
		spool_close(sp);
		return err;
	}
	*out = sp;
	return RM_OK;
}

/* spool_open - recover the shard's spool and get ready to append */
int spool_open(struct spool **out, const struct spool_cfg *cfg, struct spool_recovery *rec)
{
	struct spool_recovery local;
	int err = sp_recover(out, cfg, rec ? rec : &local, false);

	if (!rec || err != RM_OK)
		spool_recovery_free(rec ? rec : &local);
	return err;
}

/* spool_scan - read-only recovery of one shard */
int spool_scan(const struct spool_cfg *cfg, struct spool_recovery *rec)
{
	struct spool *sp;
	int err = sp_recover(&sp, cfg, rec, true);

	if (err != RM_OK)
		spool_recovery_free(rec);
	spool_close(sp);
	return err;
}

/* sp_shards_fn - mark the shard of one spool file name */
static int sp_shards_fn(void *arg, const char *name)
{
	bool *present = arg;
	unsigned shard;
	uint32_t num;
	bool journal;

	if (sp_parse_name(name, &shard, &num, &journal) && shard <= MSGID_SHARD_MAX)
		present[shard] = true;
	return 0;
}

/* spool_shards - the shards with files in the directory */
int spool_shards(const struct spool_io *io, bool present[MSGID_SHARD_MAX + 1])
{
	int n = 0;

	memset(present, 0, sizeof(bool) * (MSGID_SHARD_MAX + 1));
	if (io->list(io->ctx, sp_shards_fn, present) < 0)
		return RM_EIO;
	for (unsigned i = 0; i <= MSGID_SHARD_MAX; i++)
		n += present[i];
	return n;
}

/* A segment reader by name, for spool_body_read. */
struct sp_byname {
	const struct spool_io *io;
	unsigned shard;
};

/* sp_read_byname - open the segment, read a piece, close it */
static int sp_read_byname(void *arg, uint32_t seg, uint64_t at, void *d, size_t k)
{
	const struct sp_byname *b = arg;
	char name[SPOOL_NAME_MAX];
	int64_t r;
	int fd;

	sp_name(name, b->shard, seg, false);
	fd = b->io->open(b->io->ctx, name, false);
	if (fd < 0)
		return RM_EIO;
	r = b->io->pread(b->io->ctx, fd, d, k, at);
	b->io->close(b->io->ctx, fd);
	return r == (int64_t)k ? RM_OK : RM_EIO;
}

/* spool_body_read - n bytes of e's body from off, opening segments by name */
int spool_body_read(const struct spool_io *io, const struct spool_env *e, uint64_t off,
		    void *dst, size_t n)
{
	struct sp_byname b = { io, e->shard & MSGID_SHARD_MAX };

	return sp_extents_read(e, off, dst, n, sp_read_byname, &b);
}
