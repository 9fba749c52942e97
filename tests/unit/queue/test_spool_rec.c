/* test_spool_rec.c - spool record codec: round trips, every truncation and
 * every single-byte corruption detected, inputs in guarded memory and fed
 * split at every byte. */
#include "tests/unit/harness.h"

#include <stdlib.h>
#include <string.h>

#include "core/smtp_addr.h"
#include "queue/spool_rec.h"

static struct spool_rcpt rcpts[3] = {
	{ SLICE_LIT("a@example.org"), SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE,
	  SLICE_LIT("rfc822;a@example.org") },
	{ SLICE_LIT("b@example.net"), SMTP_NOTIFY_NEVER, SLICE_LIT("") },
	{ SLICE_LIT("\xc3\xa9@x.test"), 0, SLICE_LIT("utf-8;\\x{E9}@x.test") },
};
static struct spool_extent exts[2] = { { 1, 20, 4000 }, { 2, 4020, 17 } };

static struct spool_env sample_env(void)
{
	struct spool_env e = { 0 };
	e.id = SLICE_LIT("1HE5J3K0A1B2C005");
	e.arrival_us = 1700000000123456ull;
	e.shard = 3;
	e.tag = 0x1122334455667788ull;
	e.sender = SLICE_LIT("sender@example.com");
	e.size = 4017;
	e.has_size = true;
	e.body = SMTP_BODY_8BITMIME;
	e.ret = SMTP_RET_HDRS;
	e.smtputf8 = true;
	e.envid = SLICE_LIT("QQ314159");
	e.auth = SLICE_LIT("<>");
	e.received = SLICE_LIT("Received: from x ([127.0.0.1])\r\n\tby relay; Mon, 1 Jan 2024\r\n");
	e.rcpt = rcpts;
	e.nrcpt = 3;
	e.ext = exts;
	e.next = 2;
	return e;
}

static void assert_env_equal(const struct spool_env *a, const struct spool_env *b)
{
	assert_true(slice_eq(a->id, b->id));
	assert_true(a->arrival_us == b->arrival_us);
	assert_int_equal(a->shard, b->shard);
	assert_true(a->tag == b->tag);
	assert_true(slice_eq(a->sender, b->sender));
	assert_true(a->size == b->size);
	assert_int_equal(a->has_size, b->has_size);
	assert_int_equal(a->body, b->body);
	assert_int_equal(a->ret, b->ret);
	assert_int_equal(a->smtputf8, b->smtputf8);
	assert_true(slice_eq(a->envid, b->envid));
	assert_true(slice_eq(a->auth, b->auth));
	assert_true(slice_eq(a->received, b->received));
	assert_int_equal(a->nrcpt, b->nrcpt);
	for (uint32_t i = 0; i < a->nrcpt; i++) {
		assert_true(slice_eq(a->rcpt[i].addr, b->rcpt[i].addr));
		assert_int_equal(a->rcpt[i].notify, b->rcpt[i].notify);
		assert_true(slice_eq(a->rcpt[i].orcpt, b->rcpt[i].orcpt));
	}
	assert_int_equal(a->next, b->next);
	for (uint32_t i = 0; i < a->next; i++) {
		assert_int_equal(a->ext[i].seg, b->ext[i].seg);
		assert_true(a->ext[i].off == b->ext[i].off);
		assert_int_equal(a->ext[i].len, b->ext[i].len);
	}
}

static const struct spool_jrec sample_jrec = {
	SLICE_LIT("1HE5J3K0A1B2C005"), 2, SPOOL_OUT_DEFERRED, 1700000000999999ull, 4,
	SLICE_LIT("451 4.7.1 greylisted, come back later"),
};

/* build_stream - a chunk, a commit and a journal record back to back */
static size_t build_stream(char *mem, size_t cap)
{
	struct buf b;
	struct spool_env e = sample_env();
	struct slice parts[2] = { SLICE_LIT("Subject: hi\r\n\r\n"), SLICE_LIT("body\r\n") };
	char hdr[SPOOL_REC_HDR];

	buf_init(&b, mem, cap);
	spool_rec_chunk_hdr(hdr, 77, parts, 2);
	assert_int_equal(buf_put(&b, hdr, sizeof hdr), 0);
	assert_int_equal(buf_put_slice(&b, parts[0]), 0);
	assert_int_equal(buf_put_slice(&b, parts[1]), 0);
	assert_int_equal(spool_rec_commit_encode(&b, &e), 0);
	assert_int_equal(spool_rec_journal_encode(&b, &sample_jrec), 0);
	return b.len;
}

static void test_round_trip(void **st)
{
	(void)st;
	char mem[2048];
	size_t n = build_stream(mem, sizeof mem);
	struct guarded g = guard_copy(mem, n);
	struct spool_rec r;
	struct spool_env want = sample_env(), got;
	struct spool_jrec j;
	struct arena a;
	size_t used, off = 0;

	arena_init(&a, &rm_alloc_libc, 4096, 1 << 20);
	assert_int_equal(spool_rec_next(g.ptr, n, &r, &used), SPOOL_SCAN_OK);
	assert_int_equal(r.type, SPOOL_REC_CHUNK);
	assert_true(r.tag == 77);
	assert_true(slice_eq(r.payload, SLICE_LIT("Subject: hi\r\n\r\nbody\r\n")));
	off += used;
	assert_int_equal(spool_rec_next(g.ptr + off, n - off, &r, &used), SPOOL_SCAN_OK);
	assert_int_equal(r.type, SPOOL_REC_COMMIT);
	assert_int_equal(used, spool_rec_commit_size(&want));
	assert_int_equal(spool_rec_commit_decode(r.payload, &a, &got), 0);
	assert_env_equal(&want, &got);
	assert_true(spool_env_body_len(&got) == 4017);
	off += used;
	assert_int_equal(spool_rec_next(g.ptr + off, n - off, &r, &used), SPOOL_SCAN_OK);
	assert_int_equal(r.type, SPOOL_REC_JOURNAL);
	assert_int_equal(spool_rec_journal_decode(r.payload, &j), 0);
	assert_true(slice_eq(j.id, sample_jrec.id));
	assert_int_equal(j.rcpt, 2);
	assert_int_equal(j.outcome, SPOOL_OUT_DEFERRED);
	assert_true(j.next_attempt_us == sample_jrec.next_attempt_us);
	assert_int_equal(j.attempts, 4);
	assert_true(slice_eq(j.reply, sample_jrec.reply));
	assert_int_equal(off + used, n);
	guard_free(&g);
	arena_free(&a);

	/* null sender, no extents, minimal fields */
	struct spool_env e = sample_env();
	e.sender = SLICE_NULL;
	e.envid = e.auth = e.received = SLICE_NULL;
	e.next = 0;
	e.nrcpt = 1;
	e.has_size = e.smtputf8 = false;
	struct buf b;
	buf_init(&b, mem, sizeof mem);
	assert_int_equal(spool_rec_commit_encode(&b, &e), 0);
	g = guard_copy(mem, b.len);
	arena_init(&a, &rm_alloc_libc, 4096, 1 << 20);
	assert_int_equal(spool_rec_next(g.ptr, g.len, &r, &used), SPOOL_SCAN_OK);
	assert_int_equal(spool_rec_commit_decode(r.payload, &a, &got), 0);
	assert_env_equal(&e, &got);
	guard_free(&g);
	arena_free(&a);
}

static void test_encode_limits(void **st)
{
	(void)st;
	char mem[64];
	struct buf b;
	struct spool_env e = sample_env();

	buf_init(&b, mem, sizeof mem);
	assert_int_equal(spool_rec_commit_encode(&b, &e), RM_ENOMEM);
	assert_int_equal(b.len, 0); /* all or nothing */
	assert_int_equal(spool_rec_journal_encode(&b, &sample_jrec), RM_ENOMEM);
	assert_int_equal(b.len, 0);
	e.nrcpt = 0;
	assert_int_equal(spool_rec_commit_encode(&b, &e), RM_ELIMIT);
	e = sample_env();
	e.body = 9;
	char big[4096];
	buf_init(&b, big, sizeof big);
	assert_int_equal(spool_rec_commit_encode(&b, &e), RM_EINVAL);
	struct spool_jrec j = sample_jrec;
	j.outcome = 0;
	assert_int_equal(spool_rec_journal_encode(&b, &j), RM_EINVAL);
}

/* Every prefix of every record is incomplete or garbage, never a record. */
static void test_every_truncation(void **st)
{
	(void)st;
	char mem[2048];
	size_t n = build_stream(mem, sizeof mem), off = 0, used;
	struct spool_rec r;

	while (off < n) {
		assert_int_equal(spool_rec_next(mem + off, n - off, &r, &used), SPOOL_SCAN_OK);
		for (size_t k = 0; k < used; k++) {
			struct guarded g = guard_copy(mem + off, k);
			size_t need;
			assert_int_equal(spool_rec_next(g.ptr, k, &r, &need), SPOOL_SCAN_SHORT);
			assert_true(need > k);
			guard_free(&g);
		}
		off += used;
	}
}

/* Every single-byte change of every record is detected. */
static void test_every_corruption(void **st)
{
	(void)st;
	char mem[2048];
	size_t n = build_stream(mem, sizeof mem), off = 0, used;
	struct spool_rec r;
	static const unsigned char flips[] = { 0x01, 0x80, 0xff, 0x5a, 0x20 };

	while (off < n) {
		assert_int_equal(spool_rec_next(mem + off, n - off, &r, &used), SPOOL_SCAN_OK);
		struct guarded g = guard_copy(mem + off, used);
		for (size_t i = 0; i < used; i++)
			for (size_t f = 0; f < sizeof flips; f++) {
				size_t need;
				g.ptr[i] ^= (char)flips[f];
				assert_int_not_equal(spool_rec_next(g.ptr, used, &r, &need), SPOOL_SCAN_OK);
				g.ptr[i] ^= (char)flips[f];
			}
		assert_int_equal(spool_rec_next(g.ptr, used, &r, &used), SPOOL_SCAN_OK);
		guard_free(&g);
		off += used;
	}
}

/* Payloads that pass the CRC but lie inside are refused by the decoders:
 * every truncation of a valid payload, and fields pointing past the end. */
static void test_payload_validation(void **st)
{
	(void)st;
	char mem[2048];
	struct buf b;
	struct spool_env e = sample_env(), got;
	struct spool_jrec j;
	struct arena a;

	buf_init(&b, mem, sizeof mem);
	assert_int_equal(spool_rec_commit_encode(&b, &e), 0);
	struct slice p = slice_make(mem + SPOOL_REC_HDR, b.len - SPOOL_REC_HDR);
	arena_init(&a, &rm_alloc_libc, 4096, 1 << 20);
	for (size_t k = 0; k < p.len; k++) {
		struct guarded g = guard_copy(p.ptr, k);
		assert_int_equal(spool_rec_commit_decode(slice_make(g.ptr, k), &a, &got), RM_EPROTO);
		guard_free(&g);
		arena_reset(&a);
	}
	/* a trailing byte is refused too */
	char more[2048];
	memcpy(more, p.ptr, p.len);
	more[p.len] = 0;
	assert_int_equal(spool_rec_commit_decode(slice_make(more, p.len + 1), &a, &got), RM_EPROTO);
	/* any single-byte change either decodes to something in range or is
	 * refused, and never reads outside the payload */
	for (size_t i = 0; i < p.len; i++) {
		struct guarded g = guard_copy(p.ptr, p.len);
		g.ptr[i] ^= (char)0xff;
		int rc = spool_rec_commit_decode(slice_make(g.ptr, g.len), &a, &got);
		assert_true(rc == RM_OK || rc == RM_EPROTO);
		if (rc == RM_OK)
			assert_true(got.body <= SMTP_BODY_BINARYMIME && got.nrcpt > 0);
		guard_free(&g);
		arena_reset(&a);
	}
	/* an arena too small is a handled outcome */
	struct arena tiny;
	arena_init(&tiny, &rm_alloc_libc, 16, 16);
	assert_int_equal(spool_rec_commit_decode(p, &tiny, &got), RM_ENOMEM);
	arena_free(&tiny);
	arena_free(&a);

	buf_init(&b, mem, sizeof mem);
	assert_int_equal(spool_rec_journal_encode(&b, &sample_jrec), 0);
	p = slice_make(mem + SPOOL_REC_HDR, b.len - SPOOL_REC_HDR);
	for (size_t k = 0; k < p.len; k++) {
		struct guarded g = guard_copy(p.ptr, k);
		assert_int_equal(spool_rec_journal_decode(slice_make(g.ptr, k), &j), RM_EPROTO);
		guard_free(&g);
	}
	/* a bad queue ID */
	mem[SPOOL_REC_HDR + 1] = 'I';
	assert_int_equal(spool_rec_journal_decode(p, &j), RM_EPROTO);
}

/* A scanner over a stream fed in pieces, as recovery reads a segment. */
struct scan_ctx {
	char acc[4096];
	size_t len;
	int types[8];
	int nrec;
	bool bad;
};

static void scan_reset(void *c)
{
	struct scan_ctx *s = c;
	s->len = 0;
	s->nrec = 0;
	s->bad = false;
}

static int scan_feed(void *c, const char *p, size_t n)
{
	struct scan_ctx *s = c;
	struct spool_rec r;
	size_t used, off = 0;

	memcpy(s->acc + s->len, p, n);
	s->len += n;
	for (;;) {
		struct guarded g = guard_copy(s->acc + off, s->len - off);
		enum spool_rec_scan rc = spool_rec_next(g.ptr, g.len, &r, &used);
		guard_free(&g);
		if (rc == SPOOL_SCAN_BAD)
			s->bad = true;
		if (rc != SPOOL_SCAN_OK)
			break;
		s->types[s->nrec++] = r.type;
		off += used;
	}
	memmove(s->acc, s->acc + off, s->len - off);
	s->len -= off;
	return 0;
}

static void scan_check(void *c, size_t k)
{
	struct scan_ctx *s = c;
	(void)k;
	assert_false(s->bad);
	assert_int_equal(s->nrec, 3);
	assert_int_equal(s->types[0], SPOOL_REC_CHUNK);
	assert_int_equal(s->types[1], SPOOL_REC_COMMIT);
	assert_int_equal(s->types[2], SPOOL_REC_JOURNAL);
	assert_int_equal(s->len, 0);
}

static void test_split_stream(void **st)
{
	(void)st;
	char mem[2048];
	size_t n = build_stream(mem, sizeof mem);
	struct scan_ctx *s = calloc(1, sizeof *s);

	split_each(mem, n, scan_reset, scan_feed, scan_check, s);
	split_bytes(mem, n, scan_reset, scan_feed, scan_check, s);
	free(s);
}

/* Garbage is never taken for a record. */
static void test_random_garbage(void **st)
{
	(void)st;
	uint64_t seed = 12345;
	char buf[512];
	struct spool_rec r;
	size_t used;

	for (int i = 0; i < 20000; i++) {
		size_t n = test_rand(&seed) % sizeof buf;
		for (size_t k = 0; k < n; k++)
			buf[k] = (char)test_rand(&seed);
		if (n >= 4 && (i & 1)) { /* a plausible header start */
			buf[0] = 0x52;
			buf[1] = 0x6d;
			buf[2] = (char)(1 + i % 3);
			buf[3] = 1;
		}
		assert_int_not_equal(spool_rec_next(buf, n, &r, &used), SPOOL_SCAN_OK);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_encode_limits),
		cmocka_unit_test(test_every_truncation),
		cmocka_unit_test(test_every_corruption),
		cmocka_unit_test(test_payload_validation),
		cmocka_unit_test(test_split_stream),
		cmocka_unit_test(test_random_garbage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
