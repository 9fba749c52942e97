/* test_proxy_in.c - the daemon's PROXY front door: the header's client
 * address as a socket address, the bytes after the header left alone, the
 * trusted-peer check and the address text. Every input is fed whole and
 * split at every byte, each piece in guarded memory. */
#include "tests/unit/harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "net/proxy_in.h"

struct feed_ctx {
	struct proxy_parser p;
	struct sockaddr_storage peer;
	int rc;
	size_t consumed; /* bytes of the input the header took */
	size_t fed;
};

/* real_peer - the connection's own address: 127.0.0.1:5555 */
static void real_peer(struct sockaddr_storage *ss)
{
	struct sockaddr_in *in = (struct sockaddr_in *)(void *)ss;
	memset(ss, 0, sizeof *ss);
	in->sin_family = AF_INET;
	in->sin_port = htons(5555);
	in->sin_addr.s_addr = htonl(0x7f000001);
}

static void feed_reset(void *vctx)
{
	struct feed_ctx *c = vctx;
	proxy_init(&c->p);
	real_peer(&c->peer);
	c->rc = RM_AGAIN;
	c->consumed = 0;
	c->fed = 0;
}

static int feed_piece(void *vctx, const char *p, size_t n)
{
	struct feed_ctx *c = vctx;
	if (c->rc == RM_AGAIN) {
		size_t used = 0;
		c->rc = proxy_in_feed(&c->p, p, n, &used, &c->peer);
		assert_true(used <= n);
		if (c->rc == RM_AGAIN)
			assert_int_equal(used, n);
		c->consumed += c->rc == RM_EPROTO ? 0 : used;
	}
	c->fed += n;
	return 0;
}

struct expect {
	int rc;
	size_t header_len;
	const char *addr; /* text of the resulting peer */
	unsigned port;
	int family;
	struct feed_ctx ctx;
};

static void exp_check(void *vctx, size_t k)
{
	struct expect *e = vctx;
	char text[INET6_ADDRSTRLEN];
	(void)k;
	assert_int_equal(e->ctx.rc, e->rc);
	if (e->rc != RM_OK) {
		/* a refused header leaves the real peer in place */
		assert_int_equal(e->ctx.peer.ss_family, AF_INET);
		return;
	}
	assert_int_equal(e->ctx.consumed, e->header_len);
	assert_int_equal(e->ctx.peer.ss_family, e->family);
	proxy_in_addr_text(&e->ctx.peer, text, sizeof text);
	assert_string_equal(text, e->addr);
	unsigned port = e->family == AF_INET ? ntohs(((struct sockaddr_in *)(void *)&e->ctx.peer)->sin_port) :
					      ntohs(((struct sockaddr_in6 *)(void *)&e->ctx.peer)->sin6_port);
	assert_int_equal(port, e->port);
}

static void exp_reset(void *vctx)
{
	feed_reset(&((struct expect *)vctx)->ctx);
}

static int exp_feed(void *vctx, const char *p, size_t n)
{
	return feed_piece(&((struct expect *)vctx)->ctx, p, n);
}

/* run - in (header plus trailing bytes) whole, split everywhere, bytewise */
static void run(const char *in, size_t n, struct expect *e)
{
	split_each(in, n, exp_reset, exp_feed, exp_check, e);
	split_bytes(in, n, exp_reset, exp_feed, exp_check, e);
}

static void test_v1_tcp4(void **st)
{
	(void)st;
	static const char in[] = "PROXY TCP4 192.0.2.7 127.0.0.1 40001 25\r\nEHLO x\r\n";
	struct expect e = { .rc = RM_OK, .header_len = 41, .addr = "192.0.2.7", .port = 40001, .family = AF_INET };
	run(in, sizeof in - 1, &e);
}

static void test_v1_tcp6(void **st)
{
	(void)st;
	static const char in[] = "PROXY TCP6 2001:db8::7 ::1 65535 25\r\nQUIT\r\n";
	struct expect e = { .rc = RM_OK, .header_len = 37, .addr = "2001:db8::7", .port = 65535, .family = AF_INET6 };
	run(in, sizeof in - 1, &e);
}

static void test_v1_unknown_keeps_real_peer(void **st)
{
	(void)st;
	static const char in[] = "PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\nEHLO";
	struct expect e = { .rc = RM_OK, .header_len = 35, .addr = "127.0.0.1", .port = 5555, .family = AF_INET };
	run(in, sizeof in - 1, &e);
}

/* v2 - a v2 header for cmd/fam with the given address block, then tail */
static size_t v2(char *out, uint8_t cmd, uint8_t fam, const void *block, size_t blen, const char *tail)
{
	static const char sig[12] = "\r\n\r\n\0\r\nQUIT\n";
	memcpy(out, sig, 12);
	out[12] = (char)cmd;
	out[13] = (char)fam;
	out[14] = (char)(blen >> 8);
	out[15] = (char)blen;
	memcpy(out + 16, block, blen);
	memcpy(out + 16 + blen, tail, strlen(tail));
	return 16 + blen + strlen(tail);
}

/* v2_tcp4 - a v2 TCP4 header from 198.51.100.9:40001 with command cmd,
 * then an EHLO; e says what should come of it */
static void v2_tcp4(uint8_t cmd, struct expect *e)
{
	char in[128];
	const uint8_t block[12] = { 198, 51, 100, 9, 127, 0, 0, 1, 0x9c, 0x41, 0, 25 };
	size_t n = v2(in, cmd, 0x11, block, sizeof block, "EHLO x\r\n");
	run(in, n, e);
}

static void test_v2_tcp4(void **st)
{
	(void)st;
	struct expect e = { .rc = RM_OK, .header_len = 28, .addr = "198.51.100.9", .port = 40001, .family = AF_INET };
	v2_tcp4(0x21, &e);
}

static void test_v2_tcp6(void **st)
{
	(void)st;
	char in[128];
	uint8_t block[36] = { 0x20, 0x01, 0x0d, 0xb8 };
	block[15] = 0x44;
	block[31] = 1;
	block[32] = 0x01;
	block[33] = 0x02;
	block[35] = 25;
	size_t n = v2(in, 0x21, 0x21, block, sizeof block, "QUIT\r\n");
	struct expect e = { .rc = RM_OK, .header_len = 52, .addr = "2001:db8::44", .port = 258, .family = AF_INET6 };
	run(in, n, &e);
}

static void test_v2_local_keeps_real_peer(void **st)
{
	(void)st;
	struct expect e = { .rc = RM_OK, .header_len = 28, .addr = "127.0.0.1", .port = 5555, .family = AF_INET };
	v2_tcp4(0x20, &e);
}

static void test_bad_headers(void **st)
{
	(void)st;
	static const char *const bad[] = {
		"EHLO client.test\r\n",
		"PROXY TCP4 192.0.2.1 127.0.0.1 01 25\r\n",
		"PROXY TCP6 192.0.2.1 127.0.0.1 1 25\r\n",
		"PROXY TCP4 192.0.2.1 127.0.0.1 1 25\n",
		"\r\n\r\n\0\r\nQUIT\r",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct expect e = { .rc = RM_EPROTO };
		size_t n = i == 4 ? 12 : strlen(bad[i]);
		run(bad[i], n, &e);
	}
}

static void test_trusted(void **st)
{
	(void)st;
	struct policy t;
	struct policy_cidr lo = { .family = AF_INET, .addr = { 127 }, .prefix = 8 };
	struct policy_cidr six = { .family = AF_INET6, .addr = { [15] = 1 }, .prefix = 128 };
	struct sockaddr_storage ss;

	policy_init(&t);
	assert_int_equal(policy_add_net(&t, &lo), 0);
	assert_int_equal(policy_add_net(&t, &six), 0);
	policy_done(&t);
	real_peer(&ss);
	assert_true(proxy_in_trusted(&t, &ss));
	assert_false(proxy_in_trusted(NULL, &ss));
	((struct sockaddr_in *)(void *)&ss)->sin_addr.s_addr = htonl(0x0a000001);
	assert_false(proxy_in_trusted(&t, &ss));

	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)&ss;
	memset(&ss, 0, sizeof ss);
	in6->sin6_family = AF_INET6;
	in6->sin6_addr = in6addr_loopback;
	assert_true(proxy_in_trusted(&t, &ss));
	/* ::ffff:127.0.0.2 is IPv4 loopback seen by a dual-stack socket */
	assert_int_equal(inet_pton(AF_INET6, "::ffff:127.0.0.2", &in6->sin6_addr), 1);
	assert_true(proxy_in_trusted(&t, &ss));
	assert_int_equal(inet_pton(AF_INET6, "::2", &in6->sin6_addr), 1);
	assert_false(proxy_in_trusted(&t, &ss));
	policy_free(&t);

	policy_init(&t); /* an empty list trusts nobody */
	policy_done(&t);
	real_peer(&ss);
	assert_false(proxy_in_trusted(&t, &ss));
	policy_free(&t);
}

static void test_addr_text(void **st)
{
	(void)st;
	struct sockaddr_storage ss;
	char text[INET6_ADDRSTRLEN];

	memset(&ss, 0, sizeof ss);
	ss.ss_family = AF_UNSPEC;
	proxy_in_addr_text(&ss, text, sizeof text);
	assert_string_equal(text, "unknown");
	real_peer(&ss);
	proxy_in_addr_text(&ss, text, sizeof text);
	assert_string_equal(text, "127.0.0.1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1_tcp4),
		cmocka_unit_test(test_v1_tcp6),
		cmocka_unit_test(test_v1_unknown_keeps_real_peer),
		cmocka_unit_test(test_v2_tcp4),
		cmocka_unit_test(test_v2_tcp6),
		cmocka_unit_test(test_v2_local_keeps_real_peer),
		cmocka_unit_test(test_bad_headers),
		cmocka_unit_test(test_trusted),
		cmocka_unit_test(test_addr_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
