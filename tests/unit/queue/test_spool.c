/* test_spool.c - the spool over the POSIX backend on a temporary directory:
 * append/commit/recover round trips, many messages over many segments,
 * group commit, journal application, deletion, copy forward, a full disk,
 * and the directory lock across processes. */
#include "tests/unit/harness.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/smtp_addr.h"
#include "queue/spool.h"

struct fixture {
	char dir[64];
	struct spool_posix px;
	struct spool_io io; /* px.io, possibly wrapped */
	int fail_writes;    /* next writes fail with ENOSPC while > 0 */
	int npread;         /* pread calls */
	struct spool *sp;
};

static int64_t failing_pwritev(void *ctx, int fd, const struct iovec *iov, int n, uint64_t off)
{
	struct fixture *fx = ctx;
	if (fx->fail_writes > 0) {
		fx->fail_writes--;
		return -ENOSPC;
	}
	return fx->px.io.pwritev(fx->px.io.ctx, fd, iov, n, off);
}

/* the POSIX calls with pwritev wrapped; other calls go straight through */
static int w_open(void *c, const char *n, bool cr) { struct fixture *f = c; return f->px.io.open(f->px.io.ctx, n, cr); }
static int w_close(void *c, int fd) { struct fixture *f = c; return f->px.io.close(f->px.io.ctx, fd); }
static int64_t w_pread(void *c, int fd, void *p, size_t n, uint64_t o) { struct fixture *f = c; f->npread++; return f->px.io.pread(f->px.io.ctx, fd, p, n, o); }
static int w_sync(void *c, int fd) { struct fixture *f = c; return f->px.io.fdatasync(f->px.io.ctx, fd); }
static int w_fsize(void *c, int fd, uint64_t *s) { struct fixture *f = c; return f->px.io.fsize(f->px.io.ctx, fd, s); }
static int w_unlink(void *c, const char *n) { struct fixture *f = c; return f->px.io.unlink(f->px.io.ctx, n); }
static int w_rename(void *c, const char *a, const char *b) { struct fixture *f = c; return f->px.io.rename(f->px.io.ctx, a, b); }
static int w_syncdir(void *c) { struct fixture *f = c; return f->px.io.syncdir(f->px.io.ctx); }
static int w_list(void *c, int (*fn)(void *, const char *), void *a) { struct fixture *f = c; return f->px.io.list(f->px.io.ctx, fn, a); }

static void fx_setup(struct fixture *fx)
{
	memset(fx, 0, sizeof *fx);
	strcpy(fx->dir, "/tmp/ringmta-spool-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	strcat(fx->dir, "/q");
	assert_int_equal(spool_posix_open(&fx->px, fx->dir), 0);
	fx->io = (struct spool_io){ w_open, w_close, failing_pwritev, w_pread, w_sync, w_fsize,
				    w_unlink, w_rename, w_syncdir, w_list, fx };
}

static int rm_fn(void *arg, const char *name)
{
	struct fixture *fx = arg;
	return fx->px.io.unlink(fx->px.io.ctx, name);
}

static void fx_teardown(struct fixture *fx)
{
	fx->sp = spool_close(fx->sp);
	fx->px.io.list(fx->px.io.ctx, rm_fn, fx);
	spool_posix_close(&fx->px);
	rmdir(fx->dir);
	*strrchr(fx->dir, '/') = '\0';
	rmdir(fx->dir);
}

static void fx_open(struct fixture *fx, uint64_t segmax, struct spool_recovery *rec)
{
	struct spool_cfg cfg = { &fx->io, 2, segmax, 0 };
	fx->sp = spool_close(fx->sp);
	assert_int_equal(spool_open(&fx->sp, &cfg, rec), 0);
}

static int count_files(struct fixture *fx, const char *suffix)
{
	DIR *d = opendir(fx->dir);
	struct dirent *e;
	int n = 0;
	assert_non_null(d);
	while ((e = readdir(d)))
		if (strstr(e->d_name, suffix))
			n++;
	closedir(d);
	return n;
}

/* A message of the tests: envelope and body made from a number. */
struct tmsg {
	char id[MSGID_LEN + 1];
	char sender[64], rcpt[3][64];
	struct spool_rcpt r[3];
	uint32_t nrcpt;
	char *body;
	size_t len;
	struct spool_env env;
};

static void tmsg_make(struct tmsg *m, unsigned n, uint64_t *seed)
{
	memset(m, 0, sizeof *m);
	snprintf(m->sender, sizeof m->sender, "sender%u@example.com", n);
	m->nrcpt = 1 + n % 3;
	for (uint32_t i = 0; i < m->nrcpt; i++) {
		snprintf(m->rcpt[i], sizeof m->rcpt[i], "r%u.%u@example.org", n, i);
		m->r[i] = (struct spool_rcpt){ slice_cstr(m->rcpt[i]), SMTP_NOTIFY_FAILURE,
					       i ? SLICE_LIT("rfc822;x@y") : SLICE_NULL };
	}
	m->len = 1 + test_rand(seed) % 9000;
	m->body = malloc(m->len);
	for (size_t i = 0; i < m->len; i++)
		m->body[i] = (char)test_rand(seed);
	m->env.arrival_us = 1700000000000000ull + n;
	m->env.sender = n % 5 ? slice_cstr(m->sender) : SLICE_NULL;
	m->env.body = SMTP_BODY_8BITMIME;
	m->env.ret = n % 2 ? SMTP_RET_HDRS : SMTP_RET_UNSPEC;
	m->env.envid = SLICE_LIT("ENV1");
	m->env.received = SLICE_LIT("Received: from test\r\n");
	m->env.rcpt = m->r;
	m->env.nrcpt = m->nrcpt;
}

/* tmsg_send - append the body in up to three chunks of up to three slices */
static struct spool_tx *tmsg_send(struct spool *sp, struct tmsg *m)
{
	struct spool_tx *tx = spool_tx_begin(sp, m);
	size_t a = m->len / 3, b = 2 * m->len / 3;
	struct slice s1[2] = { slice_make(m->body, a / 2), slice_make(m->body + a / 2, a - a / 2) };
	struct slice s2[3] = { slice_make(m->body + a, 1), slice_make(m->body + a + 1, 0),
			       slice_make(m->body + a + 1, b - a - 1) };
	struct slice s3 = slice_make(m->body + b, m->len - b);

	assert_non_null(tx);
	assert_int_equal(spool_tx_append(sp, tx, s1, 2), 0);
	if (b > a)
		assert_int_equal(spool_tx_append(sp, tx, s2, 3), 0);
	assert_int_equal(spool_tx_append(sp, tx, &s3, 1), 0);
	return tx;
}

static void check_env(const struct spool_env *got, const struct tmsg *m)
{
	assert_true(slice_eq(got->sender, m->env.sender));
	assert_int_equal(got->nrcpt, m->nrcpt);
	for (uint32_t i = 0; i < m->nrcpt; i++) {
		assert_true(slice_eq(got->rcpt[i].addr, m->r[i].addr));
		assert_true(slice_eq(got->rcpt[i].orcpt, m->r[i].orcpt));
		assert_int_equal(got->rcpt[i].notify, m->r[i].notify);
	}
	assert_true(got->arrival_us == m->env.arrival_us);
	assert_int_equal(got->ret, m->env.ret);
	assert_true(slice_eq(got->received, m->env.received));
	assert_true(slice_eq(got->id, slice_cstr(m->id)));
}

static void check_body(struct spool *sp, const struct spool_env *e, const struct tmsg *m)
{
	char *buf = malloc(m->len + 1);
	assert_true(spool_env_body_len(e) == m->len);
	assert_int_equal(spool_read(sp, e, 0, buf, m->len), 0);
	assert_memory_equal(buf, m->body, m->len);
	if (m->len > 10) { /* from an offset inside */
		assert_int_equal(spool_read(sp, e, 7, buf, m->len - 7), 0);
		assert_memory_equal(buf, m->body + 7, m->len - 7);
	}
	assert_int_equal(spool_read(sp, e, 0, buf, m->len + 1), RM_EINVAL);
	free(buf);
}

/* collect - run and take every done event, all of which must succeed */
/* collect_done - count the finished commits reported so far (all ok) */
static int collect_done(struct spool *sp)
{
	struct spool_done d;
	int n = 0;

	while (spool_done_next(sp, &d)) {
		assert_int_equal(d.status, 0);
		memcpy(((struct tmsg *)d.cookie)->id, d.id, sizeof d.id);
		n++;
	}
	return n;
}

static int collect(struct spool *sp, int want)
{
	struct spool_done d;
	int n = 0;
	spool_run(sp);
	while (spool_done_next(sp, &d)) {
		struct tmsg *m = d.cookie;
		assert_int_equal(d.status, want);
		memcpy(m->id, d.id, sizeof m->id);
		n++;
	}
	return n;
}

/* run_requests - execute the queued requests through fx's backend, without
 * spool_flush (so no new sync is asked for) */
static void run_requests(struct fixture *fx)
{
	struct spool_req q;

	while (spool_req_next(fx->sp, &q)) {
		int64_t res = q.op == SPOOL_OP_WRITE ? fx->io.pwritev(fx->io.ctx, q.fd, q.iov, q.iovcnt, q.off)
						     : fx->io.fdatasync(fx->io.ctx, q.fd);
		spool_req_done(fx->sp, q.id, res);
	}
}

/* load_check - spool_msg_load of m gives its envelope, in one arena
 * chunk of spool_msg_need's size; returns the preads it took */
static int load_check(struct fixture *fx, struct tmsg *m)
{
	struct arena a;
	struct spool_env e;
	int before = fx->npread;
	size_t need = spool_msg_need(fx->sp, slice_cstr(m->id));

	assert_true(need > 0);
	arena_init(&a, &rm_alloc_libc, arena_chunk_for(need), 1 << 20);
	assert_int_equal(spool_msg_load(fx->sp, slice_cstr(m->id), &a, &e), 0);
	check_env(&e, m);
	assert_true(arena_held(&a) == arena_chunk_for(need)); /* no second chunk */
	assert_non_null(arena_alloc(&a, 16)); /* nothing spare in it: a new chunk */
	assert_true(arena_held(&a) > arena_chunk_for(need));
	arena_free(&a);
	return fx->npread - before;
}

/* A message just made durable is loaded from the record kept in memory
 * (the delivery module loads each one right after the report); a second
 * load, or one after the next spool_flush, reads the file. */
static void test_load_recent_from_memory(void **st)
{
	(void)st;
	struct fixture fx;
	struct tmsg m[3];
	uint64_t seed = 7;
	struct spool_recovery rec;
	struct spool_done d;

	fx_setup(&fx);
	fx_open(&fx, 0, &rec);
	spool_recovery_free(&rec);
	for (int i = 0; i < 3; i++) {
		tmsg_make(&m[i], (unsigned)i + 1, &seed);
		assert_int_equal(spool_tx_commit(fx.sp, tmsg_send(fx.sp, &m[i]), &m[i].env), 0);
	}
	run_requests(&fx);
	spool_flush(fx.sp); /* the batch's sync */
	run_requests(&fx);
	for (int i = 0; i < 3; i++) {
		assert_true(spool_done_next(fx.sp, &d));
		assert_int_equal(d.status, 0);
		memcpy(((struct tmsg *)d.cookie)->id, d.id, sizeof m[0].id);
	}
	assert_int_equal(load_check(&fx, &m[0]), 0);
	assert_int_equal(load_check(&fx, &m[1]), 0);
	assert_true(load_check(&fx, &m[0]) > 0); /* used once, then dropped */
	spool_flush(fx.sp);                      /* the turn ends */
	assert_true(load_check(&fx, &m[2]) > 0);
	fx_open(&fx, 0, &rec); /* recovered entries are sized alike */
	spool_recovery_free(&rec);
	for (int i = 0; i < 3; i++)
		assert_true(load_check(&fx, &m[i]) > 0);
	assert_true(spool_msg_need(fx.sp, SLICE_LIT("1K1CDN4JFHW00000")) == 0); /* not live */
	for (int i = 0; i < 3; i++)
		free(m[i].body);
	fx_teardown(&fx);
}

/* take_requests - move the queued requests into q[] (not executed) */
static int take_requests(struct spool *sp, struct spool_req *q, int cap, int *nsync)
{
	int n = 0;

	*nsync = 0;
	while (n < cap && spool_req_next(sp, &q[n]))
		*nsync += q[n++].op == SPOOL_OP_SYNC;
	return n;
}

/* A flush that finds writes of the file still in flight lets them join
 * the group: the sync waits for one flush, never two. */
static void test_sync_waits_for_writes_once(void **st)
{
	(void)st;
	struct fixture fx;
	struct tmsg m[4];
	uint64_t seed = 11;
	struct spool_recovery rec;
	struct spool_req q[64];
	struct spool_stats s;
	int n, nsync;

	fx_setup(&fx);
	fx_open(&fx, 0, &rec);
	spool_recovery_free(&rec);
	for (int i = 0; i < 4; i++)
		tmsg_make(&m[i], (unsigned)i + 1, &seed);
	assert_int_equal(spool_tx_commit(fx.sp, tmsg_send(fx.sp, &m[0]), &m[0].env), 0);
	run_requests(&fx); /* m[0] written, not synced */
	assert_int_equal(spool_tx_commit(fx.sp, tmsg_send(fx.sp, &m[1]), &m[1].env), 0);
	spool_flush(fx.sp); /* m[1]'s writes are queued: no sync yet */
	n = take_requests(fx.sp, q, 64, &nsync);
	assert_true(n > 0);
	assert_int_equal(nsync, 0);
	for (int i = 0; i < n; i++)
		spool_req_done(fx.sp, q[i].id,
			       fx.io.pwritev(fx.io.ctx, q[i].fd, q[i].iov, q[i].iovcnt, q[i].off));
	spool_flush(fx.sp); /* now one sync covers both */
	n = take_requests(fx.sp, q, 64, &nsync);
	assert_int_equal(n, 1);
	assert_int_equal(nsync, 1);
	spool_req_done(fx.sp, q[0].id, fx.io.fdatasync(fx.io.ctx, q[0].fd));
	assert_int_equal(collect_done(fx.sp), 2);
	/* m[2] written, m[3]'s writes still out at two flushes: the second
	 * flush syncs m[2] anyway */
	assert_int_equal(spool_tx_commit(fx.sp, tmsg_send(fx.sp, &m[2]), &m[2].env), 0);
	run_requests(&fx);
	assert_int_equal(spool_tx_commit(fx.sp, tmsg_send(fx.sp, &m[3]), &m[3].env), 0);
	struct spool_req w[64];
	int nw = take_requests(fx.sp, w, 64, &nsync);
	assert_true(nw > 0);
	spool_flush(fx.sp);
	assert_int_equal(take_requests(fx.sp, q, 64, &nsync), 0);
	spool_flush(fx.sp);
	assert_int_equal(take_requests(fx.sp, q, 64, &nsync), 1);
	assert_int_equal(nsync, 1);
	spool_req_done(fx.sp, q[0].id, fx.io.fdatasync(fx.io.ctx, q[0].fd));
	assert_int_equal(collect_done(fx.sp), 1); /* m[2] */
	for (int i = 0; i < nw; i++)
		spool_req_done(fx.sp, w[i].id,
			       fx.io.pwritev(fx.io.ctx, w[i].fd, w[i].iov, w[i].iovcnt, w[i].off));
	assert_int_equal(collect(fx.sp, 0), 1); /* m[3], by its own sync */
	spool_stats(fx.sp, &s);
	assert_int_equal(s.syncs, 3);
	for (int i = 0; i < 4; i++)
		free(m[i].body);
	fx_teardown(&fx);
}

static void test_round_trip_group_commit(void **st)
{
	(void)st;
	struct fixture fx;
	struct tmsg m[3];
	uint64_t seed = 1;
	struct spool_stats s;
	struct spool_recovery rec;
	struct stat sb;

	fx_setup(&fx);
	assert_int_equal(stat(fx.dir, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	fx_open(&fx, 0, &rec);
	assert_int_equal(rec.nmsg, 0);
	spool_recovery_free(&rec);
	for (int i = 0; i < 3; i++) {
		tmsg_make(&m[i], (unsigned)i + 1, &seed);
		assert_int_equal(spool_tx_commit(fx.sp, tmsg_send(fx.sp, &m[i]), &m[i].env), 0);
	}
	/* nothing is durable before the sync */
	struct spool_done d;
	assert_false(spool_done_next(fx.sp, &d));
	assert_int_equal(collect(fx.sp, 0), 3);
	spool_stats(fx.sp, &s);
	assert_int_equal(s.syncs, 1); /* one fdatasync for the batch */
	assert_int_equal(s.commits, 3);
	assert_int_equal(s.live, 3);
	assert_true(strcmp(m[0].id, m[1].id) < 0 && strcmp(m[1].id, m[2].id) < 0);
	for (int i = 0; i < 3; i++) {
		struct arena a;
		struct spool_env e;
		arena_init(&a, &rm_alloc_libc, 4096, 1 << 20);
		assert_int_equal(spool_msg_load(fx.sp, slice_cstr(m[i].id), &a, &e), 0);
		check_env(&e, &m[i]);
		check_body(fx.sp, &e, &m[i]);
		arena_free(&a);
	}
	/* an uncommitted and an aborted transaction leave only garbage */
	struct tmsg x;
	tmsg_make(&x, 99, &seed);
	struct spool_tx *open = tmsg_send(fx.sp, &x);
	spool_tx_abort(fx.sp, tmsg_send(fx.sp, &x));
	spool_run(fx.sp);
	spool_tx_abort(fx.sp, open); /* its chunks are on disk, no commit */

	fx_open(&fx, 0, &rec);
	assert_int_equal(rec.nmsg, 3);
	for (int i = 0; i < 3; i++) {
		check_env(&rec.msg[i].env, &m[i]);
		check_body(fx.sp, &rec.msg[i].env, &m[i]);
		assert_int_equal(rec.msg[i].left, m[i].nrcpt);
		free(m[i].body);
	}
	spool_recovery_free(&rec);
	free(x.body);
	fx_teardown(&fx);
}

static void test_many_segments(void **st)
{
	(void)st;
	struct fixture fx;
	enum { N = 600 };
	struct tmsg *m = calloc(N, sizeof *m);
	uint64_t seed = 42;
	struct spool_recovery rec;
	struct spool_stats s;

	fx_setup(&fx);
	fx_open(&fx, 64 << 10, NULL);
	for (int b = 0; b < N; b += 50) {
		for (int i = b; i < b + 50; i++) {
			tmsg_make(&m[i], (unsigned)i, &seed);
			assert_int_equal(spool_tx_commit(fx.sp, tmsg_send(fx.sp, &m[i]), &m[i].env), 0);
		}
		assert_int_equal(collect(fx.sp, 0), 50);
	}
	spool_stats(fx.sp, &s);
	assert_true(s.segments > 20);
	assert_true(s.syncs < N / 10); /* batches, not messages */
	fx_open(&fx, 64 << 10, &rec);
	assert_int_equal(rec.nmsg, N);
	assert_true(rec.segments > 20);
	assert_int_equal(rec.invalid, 0);
	for (int i = 0; i < N; i++) {
		check_env(&rec.msg[i].env, &m[i]);
		check_body(fx.sp, &rec.msg[i].env, &m[i]);
	}
	/* IDs keep growing after a restart */
	struct tmsg y;
	tmsg_make(&y, 7, &seed);
	y.env.arrival_us = 1000; /* the clock went back */
	assert_int_equal(spool_tx_commit(fx.sp, tmsg_send(fx.sp, &y), &y.env), 0);
	assert_int_equal(collect(fx.sp, 0), 1);
	assert_true(strcmp(y.id, m[N - 1].id) > 0);
	spool_recovery_free(&rec);
	for (int i = 0; i < N; i++)
		free(m[i].body);
	free(y.body);
	free(m);
	fx_teardown(&fx);
}

static void test_journal_and_deletion(void **st)
{
	(void)st;
	struct fixture fx;
	enum { N = 40 };
	struct tmsg m[N];
	uint64_t seed = 7;
	struct spool_recovery rec;

	fx_setup(&fx);
	fx_open(&fx, 16 << 10, NULL);
	for (int i = 0; i < N; i++) {
		tmsg_make(&m[i], 3 * (unsigned)i + 2, &seed); /* three recipients */
		assert_int_equal(spool_tx_commit(fx.sp, tmsg_send(fx.sp, &m[i]), &m[i].env), 0);
	}
	assert_int_equal(collect(fx.sp, 0), N);
	int segs = count_files(&fx, ".seg");
	assert_true(segs > 3);
	/* message 0: delivered to 0, deferred for 1; messages 1..N-1: done */
	struct spool_jrec j = { slice_cstr(m[0].id), 0, SPOOL_OUT_DELIVERED, 0, 1, SLICE_LIT("250 ok") };
	assert_int_equal(spool_journal(fx.sp, &j), 0);
	j = (struct spool_jrec){ slice_cstr(m[0].id), 1, SPOOL_OUT_DEFERRED, 1700000000999ull, 2,
				 SLICE_LIT("451 4.3.0 try later") };
	assert_int_equal(spool_journal(fx.sp, &j), 0);
	j.rcpt = 3;
	assert_int_equal(spool_journal(fx.sp, &j), RM_EINVAL);
	j.id = SLICE_LIT("0000000000000000");
	assert_int_equal(spool_journal(fx.sp, &j), RM_EINVAL);
	for (int i = 1; i < N; i++) {
		for (uint32_t r = 0; r < 2; r++) {
			j = (struct spool_jrec){ slice_cstr(m[i].id), r, SPOOL_OUT_DELIVERED, 0, 1,
						 SLICE_LIT("250 ok") };
			assert_int_equal(spool_journal(fx.sp, &j), 0);
		}
		j = (struct spool_jrec){ slice_cstr(m[i].id), 2,
					 i % 2 ? SPOOL_OUT_BOUNCED : SPOOL_OUT_EXPIRED, 0, 1,
					 SLICE_LIT("550 no") };
		assert_int_equal(spool_journal(fx.sp, &j), 0);
	}
	spool_run(fx.sp);
	assert_true(spool_gc(fx.sp) > 0);
	struct spool_stats s;
	spool_stats(fx.sp, &s);
	assert_int_equal(s.live, 1);
	/* only message 0's segment and the current one remain */
	assert_true(count_files(&fx, ".seg") <= 2);

	fx_open(&fx, 16 << 10, &rec);
	assert_int_equal(rec.nmsg, 1);
	assert_int_equal(rec.msg[0].left, 2);
	assert_int_equal(rec.msg[0].rs[0].outcome, SPOOL_OUT_DELIVERED);
	assert_int_equal(rec.msg[0].rs[1].outcome, 0);
	assert_true(rec.msg[0].rs[1].next_attempt_us == 1700000000999ull);
	assert_int_equal(rec.msg[0].rs[1].attempts, 2);
	assert_true(slice_eq(rec.msg[0].rs[1].last_reply, SLICE_LIT("451 4.3.0 try later")));
	check_body(fx.sp, &rec.msg[0].env, &m[0]);
	spool_recovery_free(&rec);
	assert_int_equal(count_files(&fx, ".jrn"), 1); /* compacted */

	/* the compacted journal still knows, across another restart */
	fx_open(&fx, 16 << 10, &rec);
	assert_int_equal(rec.nmsg, 1);
	assert_int_equal(rec.msg[0].left, 2);
	spool_recovery_free(&rec);
	/* deleting the whole message finishes it */
	j = (struct spool_jrec){ slice_cstr(m[0].id), SPOOL_RCPT_ALL, SPOOL_OUT_DELETED, 0, 0, SLICE_NULL };
	assert_int_equal(spool_journal(fx.sp, &j), 0);
	spool_run(fx.sp);
	fx_open(&fx, 16 << 10, &rec);
	assert_int_equal(rec.nmsg, 0);
	assert_int_equal(count_files(&fx, ".seg"), 0);
	spool_recovery_free(&rec);
	for (int i = 0; i < N; i++)
		free(m[i].body);
	fx_teardown(&fx);
}

static void test_copy_forward(void **st)
{
	(void)st;
	struct fixture fx;
	struct tmsg m, f[20];
	uint64_t seed = 9;
	struct spool_recovery rec;

	fx_setup(&fx);
	fx_open(&fx, 8 << 10, NULL);
	tmsg_make(&m, 2, &seed); /* three recipients */
	assert_int_equal(spool_tx_commit(fx.sp, tmsg_send(fx.sp, &m), &m.env), 0);
	assert_int_equal(collect(fx.sp, 0), 1);
	struct spool_jrec j = { slice_cstr(m.id), 1, SPOOL_OUT_DELIVERED, 0, 1, SLICE_LIT("250") };
	assert_int_equal(spool_journal(fx.sp, &j), 0);
	for (int i = 0; i < 20; i++) { /* fill more segments */
		tmsg_make(&f[i], 100 + (unsigned)i, &seed);
		assert_int_equal(spool_tx_commit(fx.sp, tmsg_send(fx.sp, &f[i]), &f[i].env), 0);
	}
	assert_int_equal(collect(fx.sp, 0), 20);
	for (int i = 0; i < 20; i++) {
		j = (struct spool_jrec){ slice_cstr(f[i].id), SPOOL_RCPT_ALL, SPOOL_OUT_DELIVERED, 0, 1, SLICE_NULL };
		assert_int_equal(spool_journal(fx.sp, &j), 0);
	}
	spool_run(fx.sp);
	(void)spool_gc(fx.sp);
	int before = count_files(&fx, ".seg");
	assert_true(before >= 2); /* m's old segment is pinned */
	char id[MSGID_LEN + 1];
	memcpy(id, m.id, sizeof id);
	assert_int_equal(spool_copy_forward(fx.sp, slice_cstr(id), &m), 0);
	assert_int_equal(collect(fx.sp, 0), 1);
	assert_string_equal(m.id, id); /* same ID */
	assert_true(spool_gc(fx.sp) > 0);
	assert_int_equal(count_files(&fx, ".seg"), 1);
	fx_open(&fx, 8 << 10, &rec);
	assert_int_equal(rec.nmsg, 1);
	check_env(&rec.msg[0].env, &m);
	check_body(fx.sp, &rec.msg[0].env, &m);
	assert_int_equal(rec.msg[0].left, 2);
	assert_int_equal(rec.msg[0].rs[1].outcome, SPOOL_OUT_DELIVERED);
	spool_recovery_free(&rec);
	free(m.body);
	for (int i = 0; i < 20; i++)
		free(f[i].body);
	fx_teardown(&fx);
}

static void test_disk_full(void **st)
{
	(void)st;
	struct fixture fx;
	struct tmsg m[4];
	uint64_t seed = 11;
	struct spool_recovery rec;

	fx_setup(&fx);
	fx_open(&fx, 0, NULL);
	tmsg_make(&m[0], 1, &seed);
	assert_int_equal(spool_tx_commit(fx.sp, tmsg_send(fx.sp, &m[0]), &m[0].env), 0);
	assert_int_equal(collect(fx.sp, 0), 1);
	/* a body write fails: that transaction fails with 452, and one whose
	 * bytes lie after the failure in the same segment cannot be kept */
	tmsg_make(&m[1], 2, &seed);
	tmsg_make(&m[2], 3, &seed);
	fx.fail_writes = 1;
	struct spool_tx *t1 = tmsg_send(fx.sp, &m[1]);
	assert_int_equal(spool_tx_commit(fx.sp, t1, &m[1].env), 0);
	spool_run(fx.sp);
	struct spool_done d;
	assert_true(spool_done_next(fx.sp, &d));
	assert_int_equal(d.status, RM_ELIMIT);
	assert_false(spool_done_next(fx.sp, &d));
	/* the segment was sealed; the next message goes to a new one */
	assert_int_equal(spool_tx_commit(fx.sp, tmsg_send(fx.sp, &m[2]), &m[2].env), 0);
	assert_int_equal(collect(fx.sp, 0), 1);
	/* a failing commit record write */
	tmsg_make(&m[3], 4, &seed);
	struct spool_tx *t3 = tmsg_send(fx.sp, &m[3]);
	spool_run(fx.sp);
	fx.fail_writes = 1;
	assert_int_equal(spool_tx_commit(fx.sp, t3, &m[3].env), 0);
	spool_run(fx.sp);
	assert_true(spool_done_next(fx.sp, &d));
	assert_int_equal(d.status, RM_ELIMIT);

	fx_open(&fx, 0, &rec);
	assert_int_equal(rec.nmsg, 2);
	check_env(&rec.msg[0].env, &m[0]);
	check_body(fx.sp, &rec.msg[0].env, &m[0]);
	check_env(&rec.msg[1].env, &m[2]);
	check_body(fx.sp, &rec.msg[1].env, &m[2]);
	spool_recovery_free(&rec);
	for (int i = 0; i < 4; i++)
		free(m[i].body);
	fx_teardown(&fx);
}

/* A deferral asks for no fdatasync; a final outcome does, and its sync
 * covers the deferral written before it. */
static void test_deferral_needs_no_sync(void **st)
{
	(void)st;
	struct fixture fx;
	struct tmsg m;
	uint64_t seed = 31;
	struct spool_stats s0, s;
	struct spool_recovery rec;

	fx_setup(&fx);
	fx_open(&fx, 0, NULL);
	tmsg_make(&m, 2, &seed); /* three recipients */
	assert_int_equal(spool_tx_commit(fx.sp, tmsg_send(fx.sp, &m), &m.env), 0);
	assert_int_equal(collect(fx.sp, 0), 1);
	spool_stats(fx.sp, &s0);
	struct spool_jrec j = { slice_cstr(m.id), 0, SPOOL_OUT_DEFERRED, 1700000000999ull, 1,
				SLICE_LIT("451 4.3.0 try later") };
	for (uint32_t r = 0; r < 3; r++) {
		j.rcpt = r;
		assert_int_equal(spool_journal(fx.sp, &j), 0);
	}
	spool_run(fx.sp);
	spool_stats(fx.sp, &s);
	assert_int_equal(s.syncs, s0.syncs);
	j = (struct spool_jrec){ slice_cstr(m.id), 1, SPOOL_OUT_DELIVERED, 0, 2, SLICE_LIT("250 ok") };
	assert_int_equal(spool_journal(fx.sp, &j), 0);
	spool_run(fx.sp);
	spool_stats(fx.sp, &s);
	assert_int_equal(s.syncs, s0.syncs + 1);

	fx_open(&fx, 0, &rec);
	assert_int_equal(rec.nmsg, 1);
	assert_int_equal(rec.msg[0].left, 2);
	assert_int_equal(rec.msg[0].rs[1].outcome, SPOOL_OUT_DELIVERED);
	assert_int_equal(rec.msg[0].rs[0].attempts, 1);
	assert_int_equal(rec.msg[0].rs[2].attempts, 1);
	spool_recovery_free(&rec);
	free(m.body);
	fx_teardown(&fx);
}

/* Recovery on a full disk: compacting the journal cannot be written, yet
 * the spool opens with every message and its journal state, and journals
 * again once writes succeed. */
static void test_recover_on_full_disk(void **st)
{
	(void)st;
	struct fixture fx;
	struct tmsg m[2];
	uint64_t seed = 23;
	struct spool_recovery rec;

	fx_setup(&fx);
	fx_open(&fx, 0, NULL);
	for (unsigned i = 0; i < 2; i++) {
		tmsg_make(&m[i], 10 + i, &seed);
		assert_int_equal(spool_tx_commit(fx.sp, tmsg_send(fx.sp, &m[i]), &m[i].env), 0);
	}
	assert_int_equal(collect(fx.sp, 0), 2);
	struct spool_jrec j = { slice_cstr(m[0].id), 0, SPOOL_OUT_DEFERRED, 1700000000999ull, 1,
				SLICE_LIT("451 4.3.0 try later") };
	assert_int_equal(spool_journal(fx.sp, &j), 0);
	spool_run(fx.sp);

	fx.fail_writes = 1000000; /* every write fails, as on a full disk */
	fx_open(&fx, 0, &rec);
	assert_int_equal(rec.nmsg, 2);
	for (unsigned i = 0; i < 2; i++) {
		check_env(&rec.msg[i].env, &m[i]);
		check_body(fx.sp, &rec.msg[i].env, &m[i]);
	}
	assert_int_equal(rec.msg[0].rs[0].attempts, 1);
	assert_true(slice_eq(rec.msg[0].rs[0].last_reply, SLICE_LIT("451 4.3.0 try later")));
	spool_recovery_free(&rec);

	fx.fail_writes = 0; /* space returns */
	j = (struct spool_jrec){ slice_cstr(m[1].id), 0, SPOOL_OUT_DELIVERED, 0, 1, SLICE_LIT("250 ok") };
	assert_int_equal(spool_journal(fx.sp, &j), 0);
	spool_run(fx.sp);
	fx_open(&fx, 0, &rec);
	assert_int_equal(rec.nmsg, 2 - (m[1].nrcpt == 1));
	check_env(&rec.msg[0].env, &m[0]);
	assert_int_equal(rec.msg[0].rs[0].attempts, 1);
	spool_recovery_free(&rec);
	for (int i = 0; i < 2; i++)
		free(m[i].body);
	fx_teardown(&fx);
}

static void test_lock_exclusion(void **st)
{
	(void)st;
	struct fixture fx;
	int fd, fd2, status;
	pid_t pid;

	fx_setup(&fx);
	assert_int_equal(spool_lock(fx.dir, &fd), 0);
	pid = fork();
	if (pid == 0) {
		int f;
		_exit(spool_lock(fx.dir, &f) == RM_AGAIN ? 0 : 1);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(fd);
	pid = fork();
	if (pid == 0) {
		int f;
		_exit(spool_lock(fx.dir, &f) == RM_OK ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(spool_lock(fx.dir, &fd2), 0);
	close(fd2);
	unlink(strcat(fx.dir, "/lock"));
	*strrchr(fx.dir, '/') = '\0';
	fx_teardown(&fx);
}

static void test_stale_completion(void **st)
{
	(void)st;
	struct fixture fx;
	struct spool_req q;
	struct spool_stats s;
	struct tmsg m;
	uint64_t seed = 3;

	fx_setup(&fx);
	fx_open(&fx, 0, NULL);
	tmsg_make(&m, 1, &seed);
	struct spool_tx *tx = tmsg_send(fx.sp, &m);
	assert_true(spool_req_next(fx.sp, &q));
	spool_req_done(fx.sp, q.id ^ (1ull << 32), (int64_t)0); /* wrong generation */
	spool_req_done(fx.sp, 999999, 0);
	spool_stats(fx.sp, &s);
	assert_int_equal(s.stale, 2);
	int64_t res = fx.io.pwritev(fx.io.ctx, q.fd, q.iov, q.iovcnt, q.off);
	spool_req_done(fx.sp, q.id, res);
	spool_req_done(fx.sp, q.id, res); /* twice */
	spool_stats(fx.sp, &s);
	assert_int_equal(s.stale, 3);
	assert_int_equal(spool_tx_commit(fx.sp, tx, &m.env), 0);
	assert_int_equal(collect(fx.sp, 0), 1);
	free(m.body);
	fx_teardown(&fx);
}

/* The ID can be taken before the commit (for the Received: header); the
 * commit record and the done event carry that same ID. */
static void test_id_before_commit(void **st)
{
	(void)st;
	struct fixture fx;
	struct tmsg m;
	uint64_t seed = 5;
	struct spool_recovery rec;

	fx_setup(&fx);
	fx_open(&fx, 0, NULL);
	tmsg_make(&m, 1, &seed);
	struct spool_tx *tx = tmsg_send(fx.sp, &m);
	char early[MSGID_LEN + 1];
	snprintf(early, sizeof early, "%s", spool_tx_id(fx.sp, tx, m.env.arrival_us));
	assert_true(msgid_parse(slice_cstr(early), NULL));
	assert_string_equal(spool_tx_id(fx.sp, tx, m.env.arrival_us + 99), early); /* stable */
	assert_int_equal(spool_tx_commit(fx.sp, tx, &m.env), 0);
	assert_int_equal(collect(fx.sp, 0), 1);
	assert_string_equal(m.id, early);
	fx_open(&fx, 0, &rec);
	assert_int_equal(rec.nmsg, 1);
	assert_true(slice_eq(rec.msg[0].env.id, slice_cstr(early)));
	spool_recovery_free(&rec);
	free(m.body);
	fx_teardown(&fx);
}

/* do_requests - execute q[0..n) through fx's backend */
static void do_requests(struct fixture *fx, const struct spool_req *q, int n)
{
	for (int i = 0; i < n; i++)
		spool_req_done(fx->sp, q[i].id,
			       q[i].op == SPOOL_OP_WRITE
				       ? fx->io.pwritev(fx->io.ctx, q[i].fd, q[i].iov, q[i].iovcnt, q[i].off)
				       : fx->io.fdatasync(fx->io.ctx, q[i].fd));
}

/* A record queued with spool_journal_after is written only after every
 * commit queued before it has ended (a delivery report before the record
 * of the recipient it reports on), so not even the kernel's writeback can
 * make it durable first; a record queued after it without the hold goes
 * out at once, but counts as durable only behind it. */
static void test_journal_waits_for_earlier_commits(void **st)
{
	(void)st;
	struct fixture fx;
	struct tmsg m[3];
	uint64_t seed = 41;
	struct spool_recovery rec;
	struct spool_req w[64], q[64];
	int nw, n, nsync;

	fx_setup(&fx);
	fx_open(&fx, 0, &rec);
	spool_recovery_free(&rec);
	for (int i = 0; i < 3; i++)
		tmsg_make(&m[i], 1, &seed);
	assert_int_equal(spool_tx_commit(fx.sp, tmsg_send(fx.sp, &m[0]), &m[0].env), 0);
	assert_int_equal(spool_tx_commit(fx.sp, tmsg_send(fx.sp, &m[2]), &m[2].env), 0);
	assert_int_equal(collect(fx.sp, 0), 2);
	/* m[1] (the report) committed, its writes still in the kernel */
	assert_int_equal(spool_tx_commit(fx.sp, tmsg_send(fx.sp, &m[1]), &m[1].env), 0);
	nw = take_requests(fx.sp, w, 64, &nsync);
	assert_true(nw > 0);
	int segfd = w[0].fd;
	/* then the record that finishes m[0] (held), and one finishing m[2]
	 * behind it without the hold (written at once) */
	struct spool_jrec j = { slice_cstr(m[0].id), SPOOL_RCPT_ALL, SPOOL_OUT_BOUNCED, 0, 1,
				SLICE_LIT("550 5.1.1 no such user") };
	assert_int_equal(spool_journal_after(fx.sp, &j), 0);
	struct spool_jrec dj = { slice_cstr(m[2].id), SPOOL_RCPT_ALL, SPOOL_OUT_DELIVERED, 0, 1,
				 SLICE_LIT("250 ok") };
	assert_int_equal(spool_journal(fx.sp, &dj), 0);
	n = take_requests(fx.sp, q, 64, &nsync);
	assert_int_equal(n, 1);
	assert_int_equal(q[0].op, SPOOL_OP_WRITE);
	int jfd = q[0].fd;
	assert_int_not_equal(jfd, segfd);
	uint64_t doff = q[0].off;
	do_requests(&fx, q, n);
	for (int round = 0; round < 3; round++) {
		spool_flush(fx.sp); /* no sync: the held record is below it */
		assert_int_equal(take_requests(fx.sp, q, 64, &nsync), 0);
		assert_true(spool_msg_live(fx.sp, slice_make(m[2].id, MSGID_LEN)));
	}
	do_requests(&fx, w, nw);
	spool_flush(fx.sp);
	n = take_requests(fx.sp, q, 64, &nsync);
	assert_int_equal(n, 1); /* the segment's sync alone */
	assert_int_equal(q[0].op, SPOOL_OP_SYNC);
	assert_int_equal(q[0].fd, segfd);
	do_requests(&fx, q, n);
	assert_int_equal(collect_done(fx.sp), 1);
	spool_flush(fx.sp);
	n = take_requests(fx.sp, q, 64, &nsync);
	assert_int_equal(n, 1); /* now the held record, below the other */
	assert_true(q[0].op == SPOOL_OP_WRITE && q[0].fd == jfd && q[0].off < doff);
	do_requests(&fx, q, n);
	spool_flush(fx.sp);
	n = take_requests(fx.sp, q, 64, &nsync);
	assert_int_equal(n, 1); /* and its sync */
	assert_int_equal(q[0].op, SPOOL_OP_SYNC);
	assert_int_equal(q[0].fd, jfd);
	do_requests(&fx, q, n);

	fx_open(&fx, 0, &rec);
	assert_int_equal(rec.nmsg, 1); /* m[0] and m[2] finished, m[1] kept */
	assert_memory_equal(rec.msg[0].env.id.ptr, m[1].id, MSGID_LEN);
	spool_recovery_free(&rec);
	for (int i = 0; i < 3; i++)
		free(m[i].body);
	fx_teardown(&fx);
}

/* A message stays live until the record that finishes it is durable: the
 * control socket answers a deletion only then. A failed record keeps it
 * live (it comes back at the next start). */
static void test_live_until_record_durable(void **st)
{
	(void)st;
	struct fixture fx;
	struct tmsg m[2];
	uint64_t seed = 43;
	struct spool_recovery rec;
	struct spool_req q[64];
	int n, nsync;

	fx_setup(&fx);
	fx_open(&fx, 0, &rec);
	spool_recovery_free(&rec);
	for (int i = 0; i < 2; i++) {
		tmsg_make(&m[i], 2, &seed);
		assert_int_equal(spool_tx_commit(fx.sp, tmsg_send(fx.sp, &m[i]), &m[i].env), 0);
	}
	assert_int_equal(collect(fx.sp, 0), 2);
	assert_true(spool_msg_live(fx.sp, slice_make(m[0].id, MSGID_LEN)));
	assert_false(spool_msg_live(fx.sp, SLICE_LIT("0000000000000000")));
	struct spool_jrec j = { slice_cstr(m[0].id), SPOOL_RCPT_ALL, SPOOL_OUT_DELETED, 0, 0, SLICE_NULL };
	assert_int_equal(spool_journal(fx.sp, &j), 0);
	n = take_requests(fx.sp, q, 64, &nsync);
	assert_int_equal(n, 1);
	assert_int_equal(q[0].op, SPOOL_OP_WRITE);
	do_requests(&fx, q, n);
	assert_true(spool_msg_live(fx.sp, slice_make(m[0].id, MSGID_LEN))); /* written, not synced */
	spool_flush(fx.sp);
	n = take_requests(fx.sp, q, 64, &nsync);
	assert_int_equal(nsync, 1);
	assert_true(spool_msg_live(fx.sp, slice_make(m[0].id, MSGID_LEN)));
	do_requests(&fx, q, n);
	assert_false(spool_msg_live(fx.sp, slice_make(m[0].id, MSGID_LEN)));
	assert_true(spool_msg_live(fx.sp, slice_make(m[1].id, MSGID_LEN)));

	/* the record of m[1] cannot be written */
	j.id = slice_cstr(m[1].id);
	assert_int_equal(spool_journal(fx.sp, &j), 0);
	fx.fail_writes = 1;
	for (int round = 0; round < 3; round++)
		spool_run(fx.sp);
	assert_true(spool_msg_live(fx.sp, slice_make(m[1].id, MSGID_LEN)));
	fx_open(&fx, 0, &rec);
	assert_int_equal(rec.nmsg, 1); /* m[1] comes back */
	assert_memory_equal(rec.msg[0].env.id.ptr, m[1].id, MSGID_LEN);
	spool_recovery_free(&rec);
	for (int i = 0; i < 2; i++)
		free(m[i].body);
	fx_teardown(&fx);
}

/* Request slots are made as load asks, a block at a time, up to the
 * configured most: more writes than one block can be in flight at once,
 * each with its own id, and past the most an append is told RM_AGAIN
 * until some complete. */
static void test_requests_grow_with_load(void **st)
{
	(void)st;
	enum { NTX = 1250, MAX = 2 * NTX }; /* two requests each, over two blocks */
	struct fixture fx;
	struct tmsg m;
	uint64_t seed = 17;
	struct spool_recovery rec;
	static struct spool_req q[MAX + 1];
	static bool seen[4096];
	static struct spool_tx *tx[NTX];
	struct spool_cfg cfg = { &fx.io, 2, 0, MAX };
	int n, nsync;

	fx_setup(&fx);
	assert_int_equal(spool_open(&fx.sp, &cfg, NULL), 0);
	tmsg_make(&m, 1, &seed);
	for (int i = 0; i < NTX; i++) {
		struct slice v = slice_make(m.body, m.len);
		tx[i] = spool_tx_begin(fx.sp, &m);
		assert_non_null(tx[i]);
		assert_int_equal(spool_tx_append(fx.sp, tx[i], &v, 1), RM_OK);
		assert_int_equal(spool_tx_commit(fx.sp, tx[i], &m.env), RM_OK);
	}
	struct slice v = slice_make(m.body, m.len);
	struct spool_tx *late = spool_tx_begin(fx.sp, &m);
	assert_int_equal(spool_tx_append(fx.sp, late, &v, 1), RM_AGAIN);
	n = take_requests(fx.sp, q, MAX + 1, &nsync);
	assert_int_equal(n, MAX);
	for (int i = 0; i < n; i++) {
		uint32_t slot = (uint32_t)q[i].id;
		assert_true(slot < 4096);
		assert_false(seen[slot]);
		seen[slot] = true;
	}
	do_requests(&fx, q, n);
	assert_int_equal(spool_tx_append(fx.sp, late, &v, 1), RM_OK);
	spool_tx_abort(fx.sp, late);
	assert_int_equal(collect(fx.sp, 0), NTX);
	fx_open(&fx, 0, &rec);
	assert_int_equal(rec.nmsg, NTX);
	check_body(fx.sp, &rec.msg[NTX - 1].env, &m);
	spool_recovery_free(&rec);
	free(m.body);
	fx_teardown(&fx);
}

/* An append of many slices (a dot-stuffed body cut at every line) takes
 * a pooled iovec array: three such appends in flight at once, then again
 * with the arrays back in the pool, and the body reads back whole. */
static void test_append_many_slices(void **st)
{
	(void)st;
	enum { NS = 64, ROUNDS = 2, PER = 3 };
	struct fixture fx;
	struct tmsg m;
	uint64_t seed = 23;
	struct spool_recovery rec;
	struct spool_req q[16];
	struct slice v[NS];
	int n, nsync;

	fx_setup(&fx);
	fx_open(&fx, 0, NULL);
	tmsg_make(&m, 2, &seed);
	free(m.body);
	m.len = (size_t)NS * ROUNDS * PER * 3;
	m.body = malloc(m.len);
	for (size_t i = 0; i < m.len; i++)
		m.body[i] = (char)('a' + i % 26);
	struct spool_tx *tx = spool_tx_begin(fx.sp, &m);
	size_t at = 0;
	for (int r = 0; r < ROUNDS; r++) {
		for (int k = 0; k < PER; k++) {
			for (int i = 0; i < NS; i++, at += 3)
				v[i] = slice_make(m.body + at, 3);
			assert_int_equal(spool_tx_append(fx.sp, tx, v, NS), RM_OK);
		}
		n = take_requests(fx.sp, q, 16, &nsync);
		assert_int_equal(n, PER);
		for (int i = 0; i < n; i++) {
			assert_int_equal(q[i].iovcnt, NS + 1);
			assert_ptr_equal(q[i].iov[NS].iov_base, m.body + at - (size_t)(PER - i) * NS * 3 + (NS - 1) * 3);
		}
		do_requests(&fx, q, n);
	}
	assert_int_equal(spool_tx_commit(fx.sp, tx, &m.env), RM_OK);
	assert_int_equal(collect(fx.sp, 0), 1);
	fx_open(&fx, 0, &rec);
	assert_int_equal(rec.nmsg, 1);
	check_body(fx.sp, &rec.msg[0].env, &m);
	spool_recovery_free(&rec);
	/* closed with such an append still in flight: its array is freed
	 * (the sanitizer build's leak check would say otherwise) */
	struct spool_tx *open = spool_tx_begin(fx.sp, &m);
	for (int i = 0; i < NS; i++)
		v[i] = slice_make(m.body + 3 * i, 3);
	assert_int_equal(spool_tx_append(fx.sp, open, v, NS), RM_OK);
	free(m.body);
	fx_teardown(&fx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_group_commit),
		cmocka_unit_test(test_load_recent_from_memory),
		cmocka_unit_test(test_sync_waits_for_writes_once),
		cmocka_unit_test(test_many_segments),
		cmocka_unit_test(test_journal_and_deletion),
		cmocka_unit_test(test_copy_forward),
		cmocka_unit_test(test_disk_full),
		cmocka_unit_test(test_deferral_needs_no_sync),
		cmocka_unit_test(test_recover_on_full_disk),
		cmocka_unit_test(test_lock_exclusion),
		cmocka_unit_test(test_stale_completion),
		cmocka_unit_test(test_id_before_commit),
		cmocka_unit_test(test_journal_waits_for_earlier_commits),
		cmocka_unit_test(test_live_until_record_durable),
		cmocka_unit_test(test_requests_grow_with_load),
		cmocka_unit_test(test_append_many_slices),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
