/* test_spool_scan.c - looking at a spool without changing it: spool_scan
 * (read-only recovery) against spool_open, the read-only POSIX backend,
 * spool_shards and spool_body_read, including files that vanish between
 * the listing and the open and a record torn at a segment's tail. */
#include "tests/unit/harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/smtp_addr.h"
#include "queue/spool.h"

#define NMSG 6

struct fixture {
	char dir[64];
	struct spool_posix px; /* writable */
	struct spool *sp;
	char ids[NMSG][MSGID_LEN + 1];
	char body[NMSG][3000];
	size_t len[NMSG];
};

/* A directory listing: names and sizes, to prove nothing changed. */
struct listing {
	char names[64][32];
	long long sizes[64];
	int n;
};

static int rm_fn(void *arg, const char *name)
{
	struct spool_posix *px = arg;
	return px->io.unlink(px->io.ctx, name);
}

static void take_listing(const char *dir, struct listing *l)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[512];
	struct stat st;

	memset(l, 0, sizeof *l);
	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && l->n < 64) {
			snprintf(path, sizeof path, "%.200s/%.255s", dir, e->d_name);
			assert_int_equal(stat(path, &st), 0);
			snprintf(l->names[l->n], sizeof l->names[0], "%.31s", e->d_name);
			l->sizes[l->n++] = (long long)st.st_size;
		}
	closedir(d);
}

static void same_listing(const struct listing *a, const struct listing *b)
{
	assert_int_equal(a->n, b->n);
	for (int i = 0; i < a->n; i++) {
		int k = 0;
		while (k < b->n && strcmp(a->names[i], b->names[k]) != 0)
			k++;
		assert_true(k < b->n);
		assert_true(a->sizes[i] == b->sizes[k]);
	}
}

/* fx_setup - NMSG messages on shard 3 (message i has i % 3 + 1
 * recipients), then: 0 deferred for recipient 0, 1 delivered to all,
 * 2 delivered to recipient 0 of its two; journal records left uncompacted
 * and the writing spool left open, as a running daemon would */
static void fx_setup(struct fixture *fx)
{
	struct spool_cfg cfg;
	struct spool_rcpt r[3] = {
		{ SLICE_LIT("a@example.org"), SMTP_NOTIFY_FAILURE, SLICE_NULL },
		{ SLICE_LIT("\"q \\\"x\"@b.example"), 0, SLICE_LIT("rfc822;x@y") },
		{ SLICE_LIT("j\xc3\xb6rg@c.example"), 0, SLICE_NULL },
	};
	struct spool_done d;
	uint64_t seed = 11;

	memset(fx, 0, sizeof *fx);
	strcpy(fx->dir, "/tmp/ringmta-scan-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	strcat(fx->dir, "/q");
	assert_int_equal(spool_posix_open(&fx->px, fx->dir), 0);
	cfg = (struct spool_cfg){ &fx->px.io, 3, 8 << 10, 0 };
	assert_int_equal(spool_open(&fx->sp, &cfg, NULL), 0);
	for (int i = 0; i < NMSG; i++) {
		struct spool_env env = { 0 };
		struct spool_tx *tx = spool_tx_begin(fx->sp, &fx->ids[i]);
		struct slice s;

		fx->len[i] = 100 + test_rand(&seed) % 2800;
		for (size_t k = 0; k < fx->len[i]; k++)
			fx->body[i][k] = (char)('a' + test_rand(&seed) % 26);
		s = slice_make(fx->body[i], fx->len[i]);
		assert_non_null(tx);
		assert_int_equal(spool_tx_append(fx->sp, tx, &s, 1), 0);
		env.arrival_us = 1700000000000000ull + (uint64_t)i;
		env.sender = i == 4 ? SLICE_NULL : SLICE_LIT("from@example.com");
		env.received = SLICE_LIT("Received: from test\r\n");
		env.rcpt = r;
		env.nrcpt = (uint32_t)(i % 3 + 1);
		assert_int_equal(spool_tx_commit(fx->sp, tx, &env), 0);
		spool_run(fx->sp);
	}
	for (int i = 0; i < NMSG; i++) {
		assert_true(spool_done_next(fx->sp, &d));
		assert_int_equal(d.status, 0);
		memcpy(d.cookie, d.id, sizeof d.id);
	}
	struct spool_jrec j = { slice_cstr(fx->ids[0]), 0, SPOOL_OUT_DEFERRED, 1700000000999999ull, 1,
				SLICE_LIT("451 4.3.0 later") };
	assert_int_equal(spool_journal(fx->sp, &j), 0);
	j = (struct spool_jrec){ slice_cstr(fx->ids[1]), SPOOL_RCPT_ALL, SPOOL_OUT_DELIVERED, 0, 1,
				 SLICE_LIT("250 ok") };
	assert_int_equal(spool_journal(fx->sp, &j), 0);
	j = (struct spool_jrec){ slice_cstr(fx->ids[2]), 0, SPOOL_OUT_DELIVERED, 0, 1, SLICE_LIT("250 ok") };
	assert_int_equal(spool_journal(fx->sp, &j), 0);
	spool_run(fx->sp);
}

static void fx_teardown(struct fixture *fx)
{
	fx->sp = spool_close(fx->sp);
	fx->px.io.list(fx->px.io.ctx, rm_fn, &fx->px);
	spool_posix_close(&fx->px);
	rmdir(fx->dir);
	*strrchr(fx->dir, '/') = '\0';
	rmdir(fx->dir);
}

/* check_found - what a scan or a recovery of the fixture must find */
static void check_found(const struct fixture *fx, const struct spool_recovery *rec)
{
	assert_int_equal(rec->nmsg, NMSG - 1); /* message 1 is finished */
	assert_true(slice_eq(rec->msg[0].env.id, slice_cstr(fx->ids[0])));
	assert_int_equal(rec->msg[0].left, 1);
	assert_int_equal(rec->msg[0].rs[0].outcome, 0);
	assert_true(rec->msg[0].rs[0].next_attempt_us == 1700000000999999ull);
	assert_true(slice_eq(rec->msg[0].rs[0].last_reply, SLICE_LIT("451 4.3.0 later")));
	assert_true(slice_eq(rec->msg[1].env.id, slice_cstr(fx->ids[2])));
	assert_int_equal(rec->msg[1].left, 2);
	assert_int_equal(rec->msg[1].rs[0].outcome, SPOOL_OUT_DELIVERED);
	assert_true(slice_eq(rec->msg[1].env.rcpt[1].addr, SLICE_LIT("\"q \\\"x\"@b.example")));
	assert_true(slice_eq(rec->msg[1].env.rcpt[1].orcpt, SLICE_LIT("rfc822;x@y")));
	assert_int_equal(rec->msg[3].env.sender.len, 0); /* message 4: <> */
	for (size_t i = 0; i < rec->nmsg; i++)
		assert_int_equal(rec->msg[i].env.shard, 3);
}

/* the scan sees what recovery would, while the writer is open, and
 * changes no file; a later full recovery agrees */
static void test_scan_matches_recovery(void **st)
{
	(void)st;
	struct fixture fx;
	struct spool_posix ro;
	struct spool_recovery rec;
	struct listing before, after;

	fx_setup(&fx);
	take_listing(fx.dir, &before);
	assert_int_equal(spool_posix_open_ro(&ro, fx.dir), 0);
	struct spool_cfg cfg = { &ro.io, 3, 0, 0 };
	assert_int_equal(spool_scan(&cfg, &rec), 0);
	check_found(&fx, &rec);
	assert_true(rec.segments > 1);
	spool_recovery_free(&rec);
	take_listing(fx.dir, &after);
	same_listing(&before, &after);

	/* another shard of the same directory has nothing */
	cfg.shard = 4;
	assert_int_equal(spool_scan(&cfg, &rec), 0);
	assert_int_equal(rec.nmsg, 0);
	spool_recovery_free(&rec);
	spool_posix_close(&ro);

	/* the writer's own recovery finds the same */
	fx.sp = spool_close(fx.sp);
	cfg = (struct spool_cfg){ &fx.px.io, 3, 8 << 10, 0 };
	assert_int_equal(spool_open(&fx.sp, &cfg, &rec), 0);
	check_found(&fx, &rec);
	spool_recovery_free(&rec);
	fx_teardown(&fx);
}

/* the read-only backend refuses every change: a full open fails and the
 * directory is as it was */
static void test_readonly_backend_refuses(void **st)
{
	(void)st;
	struct fixture fx;
	struct spool_posix ro;
	struct spool *sp = NULL;
	struct listing before, after;
	struct iovec v = { (void *)"x", 1 };

	fx_setup(&fx);
	fx.sp = spool_close(fx.sp);
	take_listing(fx.dir, &before);
	assert_int_equal(spool_posix_open_ro(&ro, fx.dir), 0);
	struct spool_cfg cfg = { &ro.io, 3, 0, 0 };
	assert_int_not_equal(spool_open(&sp, &cfg, NULL), 0);
	assert_null(sp);
	assert_int_equal(ro.io.open(ro.io.ctx, "new", true), -EROFS);
	int fd = ro.io.open(ro.io.ctx, "lock", false);
	if (fd >= 0) {
		assert_int_equal(ro.io.pwritev(ro.io.ctx, fd, &v, 1, 0), -EROFS);
		assert_int_equal(ro.io.fdatasync(ro.io.ctx, fd), -EROFS);
		ro.io.close(ro.io.ctx, fd);
	}
	assert_int_equal(ro.io.unlink(ro.io.ctx, "s0003-00000001.seg"), -EROFS);
	assert_int_equal(ro.io.rename(ro.io.ctx, "s0003-00000001.seg", "x"), -EROFS);
	assert_int_equal(ro.io.syncdir(ro.io.ctx), -EROFS);
	take_listing(fx.dir, &after);
	same_listing(&before, &after);
	spool_posix_close(&ro);
	assert_int_not_equal(spool_posix_open_ro(&ro, "/nonexistent/ringmta-spool"), 0);
	fx_teardown(&fx);
}

/* spool_shards finds each shard that has files */
static void test_shards(void **st)
{
	(void)st;
	struct fixture fx;
	bool present[MSGID_SHARD_MAX + 1];
	struct spool *other;

	fx_setup(&fx);
	assert_int_equal(spool_shards(&fx.px.io, present), 1);
	assert_true(present[3]);
	struct spool_cfg cfg = { &fx.px.io, 1023, 0, 0 };
	assert_int_equal(spool_open(&other, &cfg, NULL), 0); /* makes a journal */
	other = spool_close(other);
	int fd = openat(fx.px.dirfd, "s0005-notours.seg", O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(spool_shards(&fx.px.io, present), 2);
	assert_true(present[3] && present[1023] && !present[5] && !present[0]);
	fx_teardown(&fx);
}

/* bodies read back by name, from any offset; too long or gone fails */
static void test_body_read(void **st)
{
	(void)st;
	struct fixture fx;
	struct spool_posix ro;
	struct spool_recovery rec;
	char buf[4000];

	fx_setup(&fx);
	assert_int_equal(spool_posix_open_ro(&ro, fx.dir), 0);
	struct spool_cfg cfg = { &ro.io, 3, 0, 0 };
	assert_int_equal(spool_scan(&cfg, &rec), 0);
	for (size_t i = 0; i < rec.nmsg; i++) {
		int m = i == 0 ? 0 : (int)i + 1;
		const struct spool_env *e = &rec.msg[i].env;
		assert_true(spool_env_body_len(e) == fx.len[m]);
		assert_int_equal(spool_body_read(&ro.io, e, 0, buf, fx.len[m]), 0);
		assert_memory_equal(buf, fx.body[m], fx.len[m]);
		assert_int_equal(spool_body_read(&ro.io, e, 50, buf, 10), 0);
		assert_memory_equal(buf, fx.body[m] + 50, 10);
		assert_int_equal(spool_body_read(&ro.io, e, 0, buf, fx.len[m] + 1), RM_EINVAL);
	}
	/* the segment of the last message is removed under us */
	char name[32];
	snprintf(name, sizeof name, "s0003-%08x.seg", rec.msg[rec.nmsg - 1].env.ext[0].seg);
	assert_int_equal(fx.px.io.unlink(fx.px.io.ctx, name), 0);
	assert_int_equal(spool_body_read(&ro.io, &rec.msg[rec.nmsg - 1].env, 0, buf, 1), RM_EIO);
	spool_recovery_free(&rec);
	spool_posix_close(&ro);
	fx_teardown(&fx);
}

/* A backend whose listing also names a file that is gone by the open. */
struct ghost {
	struct spool_io io;
	const struct spool_io *real;
	int (*fn)(void *, const char *);
};

static int ghost_list(void *ctx, int (*fn)(void *, const char *), void *arg)
{
	struct ghost *g = ctx;
	int rc = fn(arg, "s0003-000000ff.seg");
	if (rc == 0)
		rc = fn(arg, "s0003-000000fe.jrn");
	return rc ? rc : g->real->list(g->real->ctx, fn, arg);
}

static int g_open(void *c, const char *n, bool cr) { struct ghost *g = c; return g->real->open(g->real->ctx, n, cr); }
static int g_close(void *c, int fd) { struct ghost *g = c; return g->real->close(g->real->ctx, fd); }
static int64_t g_pread(void *c, int fd, void *p, size_t n, uint64_t o) { struct ghost *g = c; return g->real->pread(g->real->ctx, fd, p, n, o); }
static int g_fsize(void *c, int fd, uint64_t *s) { struct ghost *g = c; return g->real->fsize(g->real->ctx, fd, s); }

/* files deleted by the lock holder after the listing are skipped; a torn
 * record at a segment's tail is counted and ignored */
static void test_vanished_and_torn(void **st)
{
	(void)st;
	struct fixture fx;
	struct spool_posix ro;
	struct spool_recovery rec;
	struct ghost g;
	struct spool_rec_hdr_bytes { char b[SPOOL_REC_HDR + 5]; } torn;

	fx_setup(&fx);
	assert_int_equal(spool_posix_open_ro(&ro, fx.dir), 0);
	g.real = &ro.io;
	g.io = (struct spool_io){ g_open, g_close, ro.io.pwritev, g_pread, ro.io.fdatasync, g_fsize,
				  ro.io.unlink, ro.io.rename, ro.io.syncdir, ghost_list, &g };
	struct spool_cfg cfg = { &g.io, 3, 0, 0 };
	assert_int_equal(spool_scan(&cfg, &rec), 0);
	check_found(&fx, &rec);
	spool_recovery_free(&rec);

	/* half a chunk record appended to the newest segment, as a write in
	 * progress would look */
	struct slice s = SLICE_LIT("hello world, not all here");
	spool_rec_chunk_hdr(torn.b, 99, &s, 1);
	memcpy(torn.b + SPOOL_REC_HDR, s.ptr, 5);
	char name[32];
	snprintf(name, sizeof name, "%s", "");
	DIR *d = opendir(fx.dir);
	struct dirent *e;
	while ((e = readdir(d)))
		if (strstr(e->d_name, ".seg") && strcmp(e->d_name, name) > 0)
			snprintf(name, sizeof name, "%.31s", e->d_name);
	closedir(d);
	int fd = openat(fx.px.dirfd, name, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, torn.b, sizeof torn.b), (ssize_t)sizeof torn.b);
	close(fd);
	cfg.io = &ro.io;
	assert_int_equal(spool_scan(&cfg, &rec), 0);
	check_found(&fx, &rec);
	assert_true(rec.torn_bytes == sizeof torn.b);
	spool_recovery_free(&rec);

	/* an unreadable file is an error, not a skip */
	char jname[32];
	d = opendir(fx.dir);
	jname[0] = '\0';
	while ((e = readdir(d)))
		if (strstr(e->d_name, ".jrn"))
			snprintf(jname, sizeof jname, "%.31s", e->d_name);
	closedir(d);
	assert_true(jname[0]);
	if (geteuid() != 0) {
		assert_int_equal(fchmodat(fx.px.dirfd, jname, 0, 0), 0);
		assert_int_equal(spool_scan(&cfg, &rec), RM_EIO);
		assert_int_equal(fchmodat(fx.px.dirfd, jname, 0600, 0), 0);
	}
	spool_posix_close(&ro);
	fx_teardown(&fx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scan_matches_recovery),
		cmocka_unit_test(test_readonly_backend_refuses),
		cmocka_unit_test(test_shards),
		cmocka_unit_test(test_body_read),
		cmocka_unit_test(test_vanished_and_torn),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
