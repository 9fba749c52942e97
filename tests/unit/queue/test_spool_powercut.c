/* test_spool_powercut.c - power cuts at random points, then recovery.
 *
 * An in-memory backend records every write and sync the spool asks for and
 * keeps, per file, what is durable (content as of its last completed
 * fdatasync, names as of the last directory sync) and what is not (the
 * writes since). A host loop drives the spool the way an io_uring shard
 * does: several transactions at once, requests completed in random order,
 * one flush per turn, journal records for acknowledged messages. At a
 * random operation the power goes: the files are rebuilt from their durable
 * state plus a random subset of the unsynced writes, in random order, some
 * torn at random offsets, random garbage appended; unsynced creations and
 * unlinks are kept or undone at random. Recovery must then find every
 * acknowledged message intact (envelope and body byte for byte), nothing
 * that was never committed, every recipient whose finishing journal
 * record was synced still finished, and for every recipient found
 * finished by a bounce the delivery report committed before its record. Seeded; a failure prints the seed
 * (RINGMTA_POWERCUT_SEED=N reruns one case).
 */
#include "tests/unit/harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/spool.h"

/* --- the crash-simulating backend ----------------------------------------- */

struct pc_write {
	uint64_t off;
	size_t len;
	char *data;
};

struct pc_file {
	char name[32];
	char *cur, *dur;        /* page-cache view and durable content */
	size_t cur_len, dur_len;
	struct pc_write *pend;  /* writes since the last fdatasync */
	size_t npend;
	bool exists, dnamed;    /* in the current / durable directory */
};

struct pc_fs {
	struct pc_file *f;
	size_t nf;
	uint64_t ops, limit;    /* the power goes after limit operations */
	bool dead;
	uint64_t rng;
};

static uint64_t pc_rand(struct pc_fs *fs, uint64_t n)
{
	return n ? test_rand(&fs->rng) % n : 0;
}

/* pc_tick - count an operation; false once the power is gone */
static bool pc_tick(struct pc_fs *fs)
{
	if (fs->dead || ++fs->ops > fs->limit) {
		fs->dead = true;
		return false;
	}
	return true;
}

static void pc_put(char **buf, size_t *len, uint64_t off, const char *p, size_t n)
{
	if (n == 0)
		return;
	if (off + n > *len) {
		*buf = realloc(*buf, off + n);
		memset(*buf + *len, 0, off + n - *len);
		*len = off + n;
	}
	memcpy(*buf + off, p, n);
}

static int pc_open(void *ctx, const char *name, bool create)
{
	struct pc_fs *fs = ctx;
	if (!pc_tick(fs))
		return -EIO;
	for (size_t i = 0; i < fs->nf; i++)
		if (fs->f[i].exists && strcmp(fs->f[i].name, name) == 0)
			return (int)i + 3;
	if (!create)
		return -ENOENT;
	fs->f = realloc(fs->f, sizeof *fs->f * (fs->nf + 1));
	struct pc_file *f = &fs->f[fs->nf];
	memset(f, 0, sizeof *f);
	snprintf(f->name, sizeof f->name, "%s", name);
	f->exists = true;
	return (int)fs->nf++ + 3;
}

static int pc_close(void *ctx, int fd)
{
	(void)ctx;
	(void)fd;
	return 0;
}

static int64_t pc_pwritev(void *ctx, int fd, const struct iovec *iov, int n, uint64_t off)
{
	struct pc_fs *fs = ctx;
	struct pc_file *f = &fs->f[fd - 3];
	size_t total = 0;

	if (!pc_tick(fs))
		return -EIO;
	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	struct pc_write w = { off, total, malloc(total ? total : 1) };
	for (int i = 0, k = 0; i < n; k += (int)iov[i].iov_len, i++)
		memcpy(w.data + k, iov[i].iov_base, iov[i].iov_len);
	pc_put(&f->cur, &f->cur_len, off, w.data, total);
	f->pend = realloc(f->pend, sizeof *f->pend * (f->npend + 1));
	f->pend[f->npend++] = w;
	return (int64_t)total;
}

static int64_t pc_pread(void *ctx, int fd, void *p, size_t n, uint64_t off)
{
	struct pc_fs *fs = ctx;
	struct pc_file *f = &fs->f[fd - 3];
	if (off >= f->cur_len)
		return 0;
	if (n > f->cur_len - off)
		n = f->cur_len - off;
	memcpy(p, f->cur + off, n);
	return (int64_t)n;
}

static void pc_drop_pending(struct pc_file *f)
{
	for (size_t i = 0; i < f->npend; i++)
		free(f->pend[i].data);
	f->npend = 0;
}

static int pc_fdatasync(void *ctx, int fd)
{
	struct pc_fs *fs = ctx;
	struct pc_file *f = &fs->f[fd - 3];
	if (!pc_tick(fs))
		return -EIO;
	f->dur_len = 0; /* the durable content becomes the page cache's */
	pc_put(&f->dur, &f->dur_len, 0, f->cur, f->cur_len);
	pc_drop_pending(f);
	return 0;
}

static int pc_fsize(void *ctx, int fd, uint64_t *size)
{
	struct pc_fs *fs = ctx;
	*size = fs->f[fd - 3].cur_len;
	return 0;
}

static int pc_unlink(void *ctx, const char *name)
{
	struct pc_fs *fs = ctx;
	if (!pc_tick(fs))
		return -EIO;
	for (size_t i = 0; i < fs->nf; i++)
		if (fs->f[i].exists && strcmp(fs->f[i].name, name) == 0) {
			fs->f[i].exists = false;
			return 0;
		}
	return -ENOENT;
}

static int pc_rename(void *ctx, const char *from, const char *to)
{
	(void)ctx;
	(void)from;
	(void)to;
	return -ENOSYS;
}

static int pc_syncdir(void *ctx)
{
	struct pc_fs *fs = ctx;
	if (!pc_tick(fs))
		return -EIO;
	for (size_t i = 0; i < fs->nf; i++)
		fs->f[i].dnamed = fs->f[i].exists;
	return 0;
}

static int pc_list(void *ctx, int (*fn)(void *, const char *), void *arg)
{
	struct pc_fs *fs = ctx;
	for (size_t i = 0; i < fs->nf; i++)
		if (fs->f[i].exists) {
			int rc = fn(arg, fs->f[i].name);
			if (rc)
				return rc;
		}
	return 0;
}

static void pc_free(struct pc_fs *fs)
{
	for (size_t i = 0; i < fs->nf; i++) {
		pc_drop_pending(&fs->f[i]);
		free(fs->f[i].pend);
		free(fs->f[i].cur);
		free(fs->f[i].dur);
	}
	free(fs->f);
	memset(fs, 0, sizeof *fs);
}

/* pc_cut - the files as the power cut leaves them, in a new fs */
static void pc_cut(struct pc_fs *fs, struct pc_fs *out, uint64_t *torn_writes)
{
	memset(out, 0, sizeof *out);
	out->limit = UINT64_MAX;
	out->rng = fs->rng;
	for (size_t i = 0; i < fs->nf; i++) {
		struct pc_file *f = &fs->f[i];
		bool keep = f->exists && f->dnamed;
		if (f->exists != f->dnamed) /* an unsynced create or unlink */
			keep = pc_rand(fs, 2);
		if (!keep)
			continue;
		out->f = realloc(out->f, sizeof *out->f * (out->nf + 1));
		struct pc_file *g = &out->f[out->nf++];
		memset(g, 0, sizeof *g);
		memcpy(g->name, f->name, sizeof g->name);
		g->exists = g->dnamed = true;
		pc_put(&g->cur, &g->cur_len, 0, f->dur, f->dur_len);
		/* unsynced writes: a random subset, in random order, some torn */
		for (size_t k = f->npend; k > 1; k--) {
			size_t j = pc_rand(fs, k);
			struct pc_write t = f->pend[k - 1];
			f->pend[k - 1] = f->pend[j];
			f->pend[j] = t;
		}
		for (size_t k = 0; k < f->npend; k++) {
			struct pc_write *w = &f->pend[k];
			uint64_t r = pc_rand(fs, 10);
			if (r < 4)
				continue;
			if (r < 7 && w->len > 1) {
				size_t a = pc_rand(fs, w->len), b = a + 1 + pc_rand(fs, w->len - a);
				pc_put(&g->cur, &g->cur_len, w->off + a, w->data + a, b - a);
				(*torn_writes)++;
				continue;
			}
			pc_put(&g->cur, &g->cur_len, w->off, w->data, w->len);
		}
		if (pc_rand(fs, 3) == 0) { /* garbage after the end */
			char junk[97];
			size_t n = 1 + pc_rand(fs, sizeof junk);
			for (size_t k = 0; k < n; k++)
				junk[k] = (char)pc_rand(fs, 256);
			if (pc_rand(fs, 2)) { /* or something that looks like a header */
				junk[0] = 0x52;
				if (n > 1)
					junk[1] = 0x6d;
			}
			pc_put(&g->cur, &g->cur_len, g->cur_len, junk, n);
		}
		pc_put(&g->dur, &g->dur_len, 0, g->cur, g->cur_len);
	}
}

static struct spool_io pc_io(struct pc_fs *fs)
{
	return (struct spool_io){ pc_open, pc_close, pc_pwritev, pc_pread, pc_fdatasync, pc_fsize,
				  pc_unlink, pc_rename, pc_syncdir, pc_list, fs };
}

/* --- the workload ---------------------------------------------------------- */

#define PC_MSGS 120
#define PC_OPEN 6

struct pc_msg {
	char sender[32];
	char rcpt[3][32];
	struct spool_rcpt r[3];
	uint32_t nrcpt;
	char *body;
	size_t len, sent;         /* bytes appended so far */
	struct spool_tx *tx;
	bool committed, acked, failed, aborted;
	char id[MSGID_LEN + 1];
	uint8_t journaled[3];     /* terminal outcome journaled */
	bool dsn;                 /* a delivery report: never journaled */
	unsigned report[3];       /* 1 + the report a bounced recipient got */
};

struct pc_run {
	struct pc_fs fs;
	struct spool_io io;
	struct spool *sp;
	struct pc_msg m[PC_MSGS];
	unsigned next;            /* messages begun */
	struct spool_req infl[8192];
	size_t ninfl;
	uint64_t rng;
};

static uint64_t run_rand(struct pc_run *r, uint64_t n)
{
	return n ? test_rand(&r->rng) % n : 0;
}

static void msg_make(struct pc_run *r, unsigned n)
{
	struct pc_msg *m = &r->m[n];
	memset(m, 0, sizeof *m);
	snprintf(m->sender, sizeof m->sender, "pc%u@example.com", n);
	m->nrcpt = 1 + n % 3;
	for (uint32_t i = 0; i < m->nrcpt; i++) {
		snprintf(m->rcpt[i], sizeof m->rcpt[i], "to%u.%u@example.org", n, i);
		m->r[i] = (struct spool_rcpt){ slice_cstr(m->rcpt[i]), 0, SLICE_NULL };
	}
	m->len = 1 + run_rand(r, 6000);
	m->body = malloc(m->len);
	for (size_t i = 0; i < m->len; i++)
		m->body[i] = (char)run_rand(r, 256);
}

static struct spool_env msg_env(struct pc_msg *m, unsigned n)
{
	struct spool_env e = { 0 };
	e.arrival_us = 1700000000000000ull + n;
	e.sender = slice_cstr(m->sender);
	e.received = SLICE_LIT("Received: from powercut\r\n");
	e.rcpt = m->r;
	e.nrcpt = m->nrcpt;
	return e;
}

/* complete - execute in-flight requests in random order, some of them */
static void complete_some(struct pc_run *r, bool all)
{
	size_t n = all ? r->ninfl : run_rand(r, r->ninfl + 1);
	for (size_t k = 0; k < n && r->ninfl; k++) {
		size_t i = run_rand(r, r->ninfl);
		struct spool_req q = r->infl[i];
		r->infl[i] = r->infl[--r->ninfl];
		int64_t res = q.op == SPOOL_OP_WRITE
				      ? r->io.pwritev(r->io.ctx, q.fd, q.iov, q.iovcnt, q.off)
				      : r->io.fdatasync(r->io.ctx, q.fd);
		spool_req_done(r->sp, q.id, res);
	}
}

static void drain(struct pc_run *r)
{
	struct spool_req q;
	while (r->ninfl < 8192 && spool_req_next(r->sp, &q))
		r->infl[r->ninfl++] = q;
}

/* bounce - recipient k of acknowledged message n failed: commit a report
 * for it (a new message, appended and committed in one go), then journal
 * the recipient bounced with spool_journal_after, at once. Whenever
 * recovery finds the recipient finished, it must find the report. */
static void bounce(struct pc_run *r, unsigned n, uint32_t k)
{
	unsigned q = r->next;
	struct pc_msg *d = &r->m[q];

	if (q >= PC_MSGS)
		return;
	msg_make(r, q);
	d->dsn = true;
	d->tx = spool_tx_begin(r->sp, d);
	r->next++;
	struct slice v = slice_make(d->body, d->len);
	struct spool_env e = msg_env(d, q);
	if (d->tx == NULL || spool_tx_append(r->sp, d->tx, &v, 1) != RM_OK ||
	    spool_tx_commit(r->sp, d->tx, &e) != RM_OK) {
		if (d->tx != NULL)
			spool_tx_abort(r->sp, d->tx);
		d->tx = NULL;
		d->aborted = true;
		return;
	}
	d->sent = d->len;
	d->committed = true;
	struct spool_jrec j = { slice_cstr(r->m[n].id), k, SPOOL_OUT_BOUNCED, 1700000001000000ull, 1,
				SLICE_LIT("550 5.1.1 no") };
	if (spool_journal_after(r->sp, &j) == RM_OK) {
		r->m[n].journaled[k] = SPOOL_OUT_BOUNCED;
		r->m[n].report[k] = q + 1;
	}
}

/* one_turn - one loop turn of the host */
static void one_turn(struct pc_run *r)
{
	unsigned open = 0;

	for (unsigned i = 0; i < r->next; i++)
		open += r->m[i].tx != NULL && !r->m[i].committed;
	if (open < PC_OPEN && r->next < PC_MSGS && run_rand(r, 2)) {
		msg_make(r, r->next);
		r->m[r->next].tx = spool_tx_begin(r->sp, &r->m[r->next]);
		r->next++;
	}
	for (unsigned i = 0; i < r->next; i++) {
		struct pc_msg *m = &r->m[i];
		if (!m->tx || m->committed || run_rand(r, 3) == 0)
			continue;
		if (m->sent < m->len) {
			size_t n = 1 + run_rand(r, m->len - m->sent);
			size_t cut = n > 1 ? run_rand(r, n) : 0;
			struct slice v[2] = { slice_make(m->body + m->sent, cut),
					      slice_make(m->body + m->sent + cut, n - cut) };
			int rc = spool_tx_append(r->sp, m->tx, v, 2);
			if (rc == RM_OK)
				m->sent += n;
		} else if (run_rand(r, 25) == 0) {
			spool_tx_abort(r->sp, m->tx);
			m->tx = NULL;
			m->aborted = true;
		} else {
			struct spool_env e = msg_env(m, i);
			int rc = spool_tx_commit(r->sp, m->tx, &e);
			if (rc != RM_AGAIN)
				m->committed = true;
		}
	}
	/* journal some outcomes of acknowledged messages */
	for (unsigned i = 0; i < r->next; i++) {
		struct pc_msg *m = &r->m[i];
		if (!m->acked || m->dsn || run_rand(r, 8))
			continue;
		uint32_t k = (uint32_t)run_rand(r, m->nrcpt);
		if (!m->journaled[k] && run_rand(r, 6) == 0) {
			bounce(r, i, k);
			continue;
		}
		enum spool_outcome oc = run_rand(r, 3) ? SPOOL_OUT_DELIVERED : SPOOL_OUT_DEFERRED;
		struct spool_jrec j = { slice_cstr(m->id), k, oc, 1700000001000000ull, 1,
					SLICE_LIT("250 2.0.0 ok") };
		if (m->journaled[k])
			continue;
		if (spool_journal(r->sp, &j) == RM_OK && oc != SPOOL_OUT_DEFERRED)
			m->journaled[k] = (uint8_t)oc;
	}
	drain(r);
	complete_some(r, false);
	spool_flush(r->sp);
	drain(r);
	struct spool_done d;
	while (spool_done_next(r->sp, &d)) {
		struct pc_msg *m = d.cookie;
		m->tx = NULL;
		if (d.status == RM_OK) {
			m->acked = true;
			memcpy(m->id, d.id, sizeof m->id);
		} else {
			m->failed = true;
		}
	}
	if (run_rand(r, 10) == 0)
		(void)spool_gc(r->sp);
}

/* synced_finishes - the terminal journal records in durable journal bytes */
static void synced_finishes(struct pc_run *r, uint8_t (*fin)[3])
{
	for (size_t i = 0; i < r->fs.nf; i++) {
		struct pc_file *f = &r->fs.f[i];
		size_t off = 0, used;
		struct spool_rec rec;
		struct spool_jrec j;
		if (!strstr(f->name, ".jrn") || !f->dnamed)
			continue;
		while (off < f->dur_len &&
		       spool_rec_next(f->dur + off, f->dur_len - off, &rec, &used) == SPOOL_SCAN_OK) {
			off += used;
			if (spool_rec_journal_decode(rec.payload, &j) != RM_OK ||
			    j.outcome == SPOOL_OUT_DEFERRED)
				continue;
			for (unsigned n = 0; n < r->next; n++)
				if (r->m[n].acked && slice_eq(j.id, slice_cstr(r->m[n].id)) &&
				    j.rcpt < 3)
					fin[n][j.rcpt] = 1;
		}
	}
}

struct pc_totals {
	uint64_t cuts, acked, found, torn_writes, torn_bytes, finished_kept, recut, reports;
};

/* check_recovered - recover fs and check every promise; fails the test
 * with the seed on a broken one */
static void check_recovered(struct pc_run *r, struct pc_fs *fs, const struct spool_cfg *base,
			    uint8_t (*fin)[3], uint64_t seed, struct pc_totals *tot)
{
	struct spool_io io = pc_io(fs);
	struct spool_cfg cfg = *base;
	struct spool_recovery rec;
	struct spool *sp = NULL;
	static bool seen[PC_MSGS];
	int rc;

	cfg.io = &io;
	rc = spool_open(&sp, &cfg, &rec);
	if (rc != RM_OK)
		fail_msg("seed %llu: recovery failed: %d", (unsigned long long)seed, rc);
	tot->cuts++;
	tot->torn_bytes += rec.torn_bytes;
	/* nothing that was never committed; bodies and envelopes exact */
	memset(seen, 0, sizeof seen);
	for (size_t i = 0; i < rec.nmsg; i++) {
		const struct spool_msg *g = &rec.msg[i];
		unsigned n;
		if (sscanf(g->env.sender.ptr, "pc%u@", &n) != 1 || n >= r->next)
			fail_msg("seed %llu: unknown message recovered", (unsigned long long)seed);
		struct pc_msg *m = &r->m[n];
		if (!m->committed || seen[n])
			fail_msg("seed %llu: message %u recovered but never committed (or twice)",
				 (unsigned long long)seed, n);
		seen[n] = true;
		char *buf = malloc(m->len + 1);
		if (spool_env_body_len(&g->env) != m->len ||
		    spool_read(sp, &g->env, 0, buf, m->len) != RM_OK ||
		    memcmp(buf, m->body, m->len) != 0)
			fail_msg("seed %llu: message %u body differs", (unsigned long long)seed, n);
		free(buf);
		if (g->env.nrcpt != m->nrcpt ||
		    !slice_eq(g->env.received, SLICE_LIT("Received: from powercut\r\n")))
			fail_msg("seed %llu: message %u envelope differs", (unsigned long long)seed, n);
		for (uint32_t k = 0; k < m->nrcpt; k++) {
			if (!slice_eq(g->env.rcpt[k].addr, m->r[k].addr))
				fail_msg("seed %llu: message %u recipient differs",
					 (unsigned long long)seed, n);
			if (g->rs[k].outcome && !m->journaled[k])
				fail_msg("seed %llu: message %u rcpt %u finished but never journaled",
					 (unsigned long long)seed, n, k);
			if (fin[n][k] && !g->rs[k].outcome)
				fail_msg("seed %llu: message %u rcpt %u synced finished, found pending",
					 (unsigned long long)seed, n, k);
			tot->finished_kept += fin[n][k];
		}
		if (m->acked && !slice_eq(g->env.id, slice_cstr(m->id)))
			fail_msg("seed %llu: message %u has another ID", (unsigned long long)seed, n);
	}
	/* every acknowledged message is there, unless all its recipients
	 * were journaled finished */
	for (unsigned n = 0; n < r->next; n++) {
		struct pc_msg *m = &r->m[n];
		bool all = true;
		if (!m->acked)
			continue;
		tot->acked++;
		tot->found += seen[n];
		for (uint32_t k = 0; k < m->nrcpt; k++)
			all &= m->journaled[k] != 0;
		if (!seen[n] && !all)
			fail_msg("seed %llu: acknowledged message %u (%s) lost",
				 (unsigned long long)seed, n, m->id);
	}
	/* a recipient found finished by a bounce has its report */
	for (unsigned n = 0; n < r->next; n++) {
		const struct pc_msg *m = &r->m[n];
		const struct spool_msg *g = NULL;
		for (size_t i = 0; i < rec.nmsg && m->acked; i++)
			if (slice_eq(rec.msg[i].env.id, slice_cstr(m->id)))
				g = &rec.msg[i];
		for (uint32_t k = 0; k < m->nrcpt && m->acked; k++) {
			if (!m->report[k] || (g != NULL && !g->rs[k].outcome))
				continue;
			tot->reports++;
			if (!seen[m->report[k] - 1])
				fail_msg("seed %llu: message %u rcpt %u finished by a bounce, its report lost",
					 (unsigned long long)seed, n, k);
		}
	}
	spool_recovery_free(&rec);
	spool_close(sp);
}

/* one_case - a workload cut at a random point, recovery and checks; then
 * a second cut in the middle of a recovery (journal compaction, segment
 * deletion) and the same checks again */
static void one_case(uint64_t seed, struct pc_totals *tot)
{
	struct pc_run *r = calloc(1, sizeof *r);
	struct spool_cfg cfg;
	struct pc_fs after, again;
	static uint8_t fin[PC_MSGS][3];

	r->rng = seed;
	r->fs.rng = seed ^ 0x5bd1e995;
	r->fs.limit = 50 + test_rand(&r->rng) % 1500;
	r->io = pc_io(&r->fs);
	cfg = (struct spool_cfg){ &r->io, 1, 8192 + run_rand(r, 32768), 0 };
	if (spool_open(&r->sp, &cfg, NULL) != RM_OK)
		goto cut; /* the power went during the first start */
	for (int t = 0; t < 4000 && !r->fs.dead; t++)
		one_turn(r);
cut:
	memset(fin, 0, sizeof fin);
	synced_finishes(r, fin);
	r->sp = spool_close(r->sp);
	pc_cut(&r->fs, &after, &tot->torn_writes);
	check_recovered(r, &after, &cfg, fin, seed, tot);

	/* the recovery above changed the files; cut the next one short */
	struct pc_fs *mid = calloc(1, sizeof *mid);
	pc_cut(&after, mid, &tot->torn_writes); /* the first recovery's state */
	struct spool_io mio = pc_io(mid);
	struct spool_cfg mcfg = cfg;
	struct spool *sp = NULL;
	mid->limit = 1 + test_rand(&r->rng) % 40;
	mcfg.io = &mio;
	if (spool_open(&sp, &mcfg, NULL) == RM_OK)
		spool_close(sp);
	tot->recut += mid->dead;
	pc_cut(mid, &again, &tot->torn_writes);
	check_recovered(r, &again, &cfg, fin, seed, tot);

	pc_free(mid);
	free(mid);
	pc_free(&again);
	pc_free(&after);
	pc_free(&r->fs);
	for (unsigned n = 0; n < r->next; n++)
		free(r->m[n].body);
	free(r);
}

static void test_power_cuts(void **st)
{
	(void)st;
	struct pc_totals tot = { 0 };
	const char *one = getenv("RINGMTA_POWERCUT_SEED");
	uint64_t base = 20240601;
	int cases = 400;

	if (one) {
		base = strtoull(one, NULL, 10);
		cases = 1;
	}
	for (int i = 0; i < cases; i++) {
		uint64_t seed = base + (uint64_t)i;
		one_case(seed, &tot);
	}
	printf("power cuts: %llu cases, %llu acknowledged messages checked (%llu still queued), "
	       "%llu torn writes, %llu torn bytes skipped, %llu synced finishes kept, "
	       "%llu recoveries cut short, %llu bounced recipients' reports found\n",
	       (unsigned long long)tot.cuts, (unsigned long long)tot.acked,
	       (unsigned long long)tot.found, (unsigned long long)tot.torn_writes,
	       (unsigned long long)tot.torn_bytes, (unsigned long long)tot.finished_kept,
	       (unsigned long long)tot.recut, (unsigned long long)tot.reports);
	if (!one) {
		/* the test must have bitten: messages acknowledged, tails torn */
		assert_true(tot.acked > 1000);
		assert_true(tot.torn_writes > 100);
		assert_true(tot.torn_bytes > 0);
		assert_true(tot.finished_kept > 0);
		assert_true(tot.recut > 100);
		assert_true(tot.reports > 100);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_power_cuts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
