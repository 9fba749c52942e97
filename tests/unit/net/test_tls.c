/* test_tls.c - tls_conn over our own BIOs: ciphertext lent in place and
 * split anywhere, a lent buffer replaced before it was read to the end,
 * pieces gathered into full records, and a send buffer that stays
 * readable while it grows. A client and a server talk in memory; the
 * certificate is made by openssl(1) (skipped without it). */
#include "tests/unit/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/tls.h"

#define MSG_LEN 40000

static char dir[] = "/tmp/ringmta-test-tls-XXXXXX";
static char cert[128], key[128];
static struct tls_ctx *sctx, *cctx;
static char msg[MSG_LEN];

/* setup - a throwaway P-256 certificate and the two contexts */
static int setup(void **st)
{
	(void)st;
	char cmd[512], err[256];
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(cert, sizeof cert, "%s/c.pem", dir);
	snprintf(key, sizeof key, "%s/k.pem", dir);
	snprintf(cmd, sizeof cmd,
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %s "
		 "-out %s -days 2 -subj /CN=localhost >/dev/null 2>&1", key, cert);
	if (system(cmd) != 0)
		return 0; /* no openssl: each test skips */
	sctx = tls_ctx_server_new(cert, key, err, sizeof err);
	cctx = tls_ctx_client_new(false, NULL, err, sizeof err);
	uint64_t r = 7;
	for (size_t i = 0; i < MSG_LEN; i++)
		msg[i] = (char)(' ' + test_rand(&r) % 90);
	return sctx != NULL && cctx != NULL ? 0 : -1;
}

/* teardown - drop the contexts and the files */
static int teardown(void **st)
{
	(void)st;
	sctx = tls_ctx_unref(sctx);
	cctx = tls_ctx_unref(cctx);
	unlink(cert);
	unlink(key);
	rmdir(dir);
	return 0;
}

/* move - what from has to send, pushed (copied) into to */
static void move(struct tls_conn *from, struct tls_conn *to)
{
	struct slice s = tls_conn_out(from);
	if (s.len > 0) {
		assert_int_equal(tls_conn_push(to, s.ptr, s.len), RM_OK);
		tls_conn_sent(from, s.len);
	}
}

/* pair - a client and a server after their handshake */
static void pair(struct tls_conn **c, struct tls_conn **s)
{
	if (sctx == NULL)
		skip();
	*c = tls_conn_new(cctx, "localhost");
	*s = tls_conn_new(sctx, NULL);
	assert_non_null(*c);
	assert_non_null(*s);
	int rc = RM_AGAIN, rs = RM_AGAIN;
	for (int i = 0; i < 20 && (rc != RM_OK || rs != RM_OK); i++) {
		rc = tls_conn_handshake(*c);
		move(*c, *s);
		rs = tls_conn_handshake(*s);
		move(*s, *c);
	}
	assert_int_equal(rc, RM_OK);
	assert_int_equal(rs, RM_OK);
	struct slice pl;
	assert_int_equal(tls_conn_read(*c, &pl), RM_AGAIN); /* takes the tickets */
}

/* drain - read t until it wants more, appending the plaintext to acc */
static void drain(struct tls_conn *t, char *acc, size_t *n)
{
	char buf[TLS_PLAIN_SIZE];
	struct slice pl;
	int rc;
	while ((rc = tls_conn_read_to(t, buf, sizeof buf, &pl)) == RM_OK) {
		assert_true(*n + pl.len <= MSG_LEN * 4);
		memcpy(acc + *n, pl.ptr, pl.len);
		*n += pl.len;
	}
	assert_int_equal(rc, RM_AGAIN);
}

/* sealed - msg written by c as three pieces; returns its ciphertext (malloc) */
static char *sealed(struct tls_conn *c, size_t *len)
{
	struct iovec v[3] = { { msg, 7 }, { msg + 7, 300 }, { msg + 307, MSG_LEN - 307 } };
	assert_int_equal(tls_conn_writev(c, v, 3), RM_OK);
	struct slice s = tls_conn_out(c);
	char *p = malloc(s.len);
	assert_non_null(p);
	memcpy(p, s.ptr, s.len);
	*len = s.len;
	tls_conn_sent(c, s.len);
	assert_false(tls_conn_out_pending(c));
	return p;
}

/* records - how many TLS records the ciphertext holds (whole ones only) */
static unsigned records(const char *p, size_t n)
{
	unsigned k = 0;
	for (size_t at = 0; at + 5 <= n; k++)
		at += 5 + ((size_t)(unsigned char)p[at + 3] << 8 | (unsigned char)p[at + 4]);
	return k;
}

/* test_writev_full_records - small pieces share a record: 40,000 bytes in
 * 7 + 300 + the rest become ceil(40000 / 16384) = 3 records */
static void test_writev_full_records(void **st)
{
	(void)st;
	struct tls_conn *c, *s;
	pair(&c, &s);
	size_t n;
	char *ct = sealed(c, &n);
	assert_int_equal(records(ct, n), 3);
	free(ct);
	tls_conn_free(c);
	tls_conn_free(s);
}

/* test_lend_split - the ciphertext lent in two guarded pieces, split at
 * many points (record headers and bodies cut), decrypts to the message */
static void test_lend_split(void **st)
{
	(void)st;
	static char acc[MSG_LEN * 2];
	for (size_t k = 1; k < MSG_LEN + 200; k += k < 40 ? 1 : 1999) {
		struct tls_conn *c, *s;
		pair(&c, &s);
		size_t n, got = 0;
		char *ct = sealed(c, &n);
		size_t cut = k < n ? k : n - 1;
		struct guarded a = guard_copy(ct, cut), b = guard_copy(ct + cut, n - cut);
		assert_int_equal(tls_conn_lend(s, a.ptr, a.len), RM_OK);
		drain(s, acc, &got);
		guard_free(&a); /* "again": all of it was read */
		assert_int_equal(tls_conn_lend(s, b.ptr, b.len), RM_OK);
		drain(s, acc, &got);
		guard_free(&b);
		assert_int_equal(got, MSG_LEN);
		assert_memory_equal(acc, msg, MSG_LEN);
		free(ct);
		tls_conn_free(c);
		tls_conn_free(s);
	}
}

/* test_lend_replaced - a lent buffer replaced after one record: its rest
 * is kept, and the old buffer may go at once */
static void test_lend_replaced(void **st)
{
	(void)st;
	static char acc[MSG_LEN * 2];
	struct tls_conn *c, *s;
	pair(&c, &s);
	size_t n1, n2, got = 0;
	char *ct1 = sealed(c, &n1), *ct2 = sealed(c, &n2);
	struct guarded a = guard_copy(ct1, n1), b = guard_copy(ct2, n2);
	char buf[TLS_PLAIN_SIZE];
	struct slice pl;
	assert_int_equal(tls_conn_lend(s, a.ptr, a.len), RM_OK);
	assert_int_equal(tls_conn_read_to(s, buf, sizeof buf, &pl), RM_OK);
	memcpy(acc, pl.ptr, pl.len);
	got = pl.len;
	assert_int_equal(tls_conn_lend(s, b.ptr, b.len), RM_OK);
	guard_free(&a); /* unmapped: reading it again would crash */
	drain(s, acc, &got);
	guard_free(&b);
	assert_int_equal(got, 2 * MSG_LEN);
	assert_memory_equal(acc, msg, MSG_LEN);
	assert_memory_equal(acc + MSG_LEN, msg, MSG_LEN);
	free(ct1);
	free(ct2);
	tls_conn_free(c);
	tls_conn_free(s);
}

/* test_out_stable - a slice from tls_conn_out stays readable and unchanged
 * while more is written and the send buffer grows; all of it decrypts in
 * order */
static void test_out_stable(void **st)
{
	(void)st;
	static char acc[MSG_LEN * 4];
	struct tls_conn *c, *s;
	pair(&c, &s);
	assert_int_equal(tls_conn_write(c, msg, 100), RM_OK);
	struct slice first = tls_conn_out(c);
	char *snap = malloc(first.len);
	assert_non_null(snap);
	memcpy(snap, first.ptr, first.len);
	for (int i = 0; i < 4; i++) /* 160 KB: the buffer grows several times */
		assert_int_equal(tls_conn_write(c, msg, MSG_LEN), RM_OK);
	assert_memory_equal(first.ptr, snap, first.len); /* a send may still read it */
	size_t got = 0;
	assert_int_equal(tls_conn_push(s, snap, first.len), RM_OK);
	tls_conn_sent(c, first.len);
	drain(s, acc, &got);
	assert_int_equal(got, 100);
	assert_memory_equal(acc, msg, 100);
	got = 0;
	while (tls_conn_out_pending(c)) {
		struct slice rest = tls_conn_out(c);
		size_t part = rest.len < 30000 ? rest.len : 30000; /* partial sends */
		assert_int_equal(tls_conn_push(s, rest.ptr, part), RM_OK);
		tls_conn_sent(c, part);
		drain(s, acc, &got);
	}
	assert_int_equal(got, 4 * MSG_LEN);
	for (int i = 0; i < 4; i++)
		assert_memory_equal(acc + (size_t)i * MSG_LEN, msg, MSG_LEN);
	free(snap);
	tls_conn_free(c);
	tls_conn_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_writev_full_records),
		cmocka_unit_test(test_lend_split),
		cmocka_unit_test(test_lend_replaced),
		cmocka_unit_test(test_out_stable),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
