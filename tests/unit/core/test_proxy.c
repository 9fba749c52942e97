/* test_proxy.c - PROXY protocol v1/v2 headers, and the address text they use. */
#include "tests/unit/harness.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/ipaddr.h"
#include "core/proxy.h"

/* --- addresses ---------------------------------------------------------- */

static void test_ipaddr_parse4(void **st)
{
	(void)st;
	static const char *good[] = { "0.0.0.0", "127.0.0.1", "255.255.255.255", "192.168.0.11", "10.0.100.9" };
	static const char *bad[] = { "", "1", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.04", "01.2.3.4",
				     "1..2.3", ".1.2.3", "1.2.3.", "1.2.3.4 ", " 1.2.3.4", "1.2.3.-4",
				     "1.2.3.0x4", "1234.1.1.1", "a.b.c.d", "1.2.3.4/8" };
	uint8_t a[4];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct guarded g = guard_copy(good[i], strlen(good[i]));
		char text[IPADDR_TEXT_MAX];
		assert_true(ipaddr_parse4(slice_make(g.ptr, g.len), a));
		ipaddr_format(a, 4, text);
		assert_string_equal(text, good[i]);
		guard_free(&g);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct guarded g = guard_copy(bad[i], strlen(bad[i]));
		memset(a, 0xaa, 4);
		assert_false(ipaddr_parse4(slice_make(g.ptr, g.len), a));
		assert_int_equal(a[0], 0xaa); /* nothing written on failure */
		guard_free(&g);
	}
	assert_true(ipaddr_parse4(SLICE_LIT("192.0.2.33"), a));
	assert_memory_equal(a, "\xc0\x00\x02\x21", 4);
}

static void test_ipaddr_parse6(void **st)
{
	(void)st;
	/* input, RFC 5952 text */
	static const char *good[][2] = {
		{ "::", "::" },
		{ "::1", "::1" },
		{ "1::", "1::" },
		{ "2001:DB8::1", "2001:db8::1" },
		{ "2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1" },
		{ "2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1" },
		{ "2001:0:0:1:0:0:0:1", "2001:0:0:1::1" },
		{ "2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1" },
		{ "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" },
		{ "::ffff:192.0.2.1", "::ffff:c000:201" },
		{ "1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304" },
		{ "1::2:3:4:5:6:7", "1:0:2:3:4:5:6:7" },
		{ "fe80::", "fe80::" },
	};
	static const char *bad[] = { "", ":", ":::", "1:2", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9",
				     "1::2::3", ":1::", "1:::2", "12345::", "1:2:3:4:5:6:7:8::", "::1:2:3:4:5:6:7:8",
				     "1:", "::1:", "g::", "fe80::1%eth0", "[::1]", "::1.2.3", "1:2:3:4:5:6:7:1.2.3.4",
				     "::ffff:1.2.3.04", "1.2.3.4", " ::1", "::1 " };
	uint8_t a[16];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct guarded g = guard_copy(good[i][0], strlen(good[i][0]));
		char text[IPADDR_TEXT_MAX];
		uint8_t again[16];
		assert_true(ipaddr_parse6(slice_make(g.ptr, g.len), a));
		ipaddr_format(a, 16, text);
		assert_string_equal(text, good[i][1]);
		assert_true(ipaddr_parse6(slice_cstr(text), again));
		assert_memory_equal(a, again, 16);
		guard_free(&g);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct guarded g = guard_copy(bad[i], strlen(bad[i]));
		memset(a, 0xaa, 16);
		if (ipaddr_parse6(slice_make(g.ptr, g.len), a))
			fail_msg("accepted %s", bad[i]);
		assert_int_equal(a[0], 0xaa);
		guard_free(&g);
	}
	assert_true(ipaddr_parse6(SLICE_LIT("2001:db8::ff00:42:8329"), a));
	assert_memory_equal(a, "\x20\x01\x0d\xb8\0\0\0\0\0\0\xff\x00\x00\x42\x83\x29", 16);
}

/* --- the parser under every split --------------------------------------- */

struct feed_ctx {
	struct proxy_parser p;
	int rc;
	size_t used;     /* bytes the parser consumed */
	size_t leftover; /* bytes after the header, left for the session */
	bool done;
};

static void feed_reset(void *c)
{
	struct feed_ctx *f = c;
	proxy_init(&f->p);
	f->rc = RM_AGAIN;
	f->used = f->leftover = 0;
	f->done = false;
}

static int feed_piece(void *c, const char *p, size_t n)
{
	struct feed_ctx *f = c;
	size_t u = 12345;

	if (f->done) {
		f->leftover += n;
		return 0;
	}
	f->rc = proxy_feed(&f->p, p, n, &u);
	assert_true(u <= n);
	f->used += u;
	if (f->rc == RM_OK) {
		f->done = true;
		f->leftover += n - u;
	} else if (f->rc == RM_AGAIN) {
		assert_int_equal(u, n); /* need more means everything was taken */
	}
	return f->rc == RM_EPROTO;
}

struct expect {
	size_t hdr_len; /* 0: the input is malformed */
	struct proxy_header hdr;
	size_t total;
};

struct split_ctx {
	struct feed_ctx f;
	const struct expect *want;
};

static void split_reset(void *c)
{
	feed_reset(&((struct split_ctx *)c)->f);
}

static int split_feed(void *c, const char *p, size_t n)
{
	return feed_piece(&((struct split_ctx *)c)->f, p, n);
}

static void assert_hdr_equal(const struct proxy_header *a, const struct proxy_header *b)
{
	assert_int_equal(a->version, b->version);
	assert_int_equal(a->local, b->local);
	assert_int_equal(a->family, b->family);
	assert_int_equal(a->length, b->length);
	if (a->family != PROXY_FAM_UNSPEC) {
		assert_memory_equal(a->src.addr, b->src.addr, a->family == PROXY_FAM_INET ? 4 : 16);
		assert_memory_equal(a->dst.addr, b->dst.addr, a->family == PROXY_FAM_INET ? 4 : 16);
		assert_int_equal(a->src.port, b->src.port);
		assert_int_equal(a->dst.port, b->dst.port);
	}
}

static void split_check(void *c, size_t k)
{
	struct split_ctx *s = c;
	(void)k;
	if (s->want->hdr_len == 0) {
		assert_int_equal(s->f.rc, RM_EPROTO);
		return;
	}
	assert_int_equal(s->f.rc, RM_OK);
	assert_int_equal(s->f.used, s->want->hdr_len);
	assert_int_equal(s->f.leftover, s->want->total - s->want->hdr_len);
	assert_hdr_equal(&s->f.p.hdr, &s->want->hdr);
}

/* check_input - in whole, split at every point, byte by byte, and every
 * truncation of a valid header (need more, all consumed) */
static void check_input(const char *in, size_t n, const struct expect *want)
{
	struct split_ctx s = { .want = want };

	split_each(in, n, split_reset, split_feed, split_check, &s);
	split_bytes(in, n, split_reset, split_feed, split_check, &s);
	for (size_t k = 0; want->hdr_len && k < want->hdr_len; k++) {
		struct guarded g = guard_copy(in, k);
		size_t u;
		proxy_init(&s.f.p);
		assert_int_equal(proxy_feed(&s.f.p, g.ptr, g.len, &u), RM_AGAIN);
		assert_int_equal(u, k);
		guard_free(&g);
	}
}

/* expect_ok - a header of hdr_len bytes, with "EHLO x\r\n" after it */
static void expect_ok(const char *hdr, size_t hdr_len, const struct proxy_header *want)
{
	static const char tail[] = "EHLO client.example\r\n";
	char in[8192];
	struct expect e = { .hdr_len = hdr_len, .hdr = *want, .total = hdr_len };

	e.hdr.length = (uint32_t)hdr_len;
	assert_true(hdr_len + sizeof(tail) < sizeof(in));
	memcpy(in, hdr, hdr_len);
	check_input(in, hdr_len, &e);
	memcpy(in + hdr_len, tail, sizeof(tail) - 1);
	e.total = hdr_len + sizeof(tail) - 1;
	check_input(in, e.total, &e);
}

static void expect_bad(const char *in, size_t n)
{
	struct expect e = { 0 };
	check_input(in, n, &e);
}

/* hdr_ip - an expected header for addresses given as text */
static struct proxy_header hdr_ip(int version, enum proxy_family fam, const char *src, unsigned sport,
				  const char *dst, unsigned dport)
{
	struct proxy_header h = { .version = (uint8_t)version, .family = fam };
	bool (*parse)(struct slice, uint8_t *) = fam == PROXY_FAM_INET ? ipaddr_parse4 : ipaddr_parse6;

	assert_true(parse(slice_cstr(src), h.src.addr));
	assert_true(parse(slice_cstr(dst), h.dst.addr));
	h.src.port = (uint16_t)sport;
	h.dst.port = (uint16_t)dport;
	return h;
}

#define hdr4(v, s, sp, d, dp) hdr_ip(v, PROXY_FAM_INET, s, sp, d, dp)
#define hdr6(v, s, sp, d, dp) hdr_ip(v, PROXY_FAM_INET6, s, sp, d, dp)

#define V1_OK(text, h) expect_ok(text, sizeof(text) - 1, h)
#define V1_BAD(text) expect_bad(text, sizeof(text) - 1)

#define FFFF6 "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"

static void test_v1_spec_examples(void **st)
{
	(void)st;
	struct proxy_header h;
	struct proxy_header unknown = { .version = 1, .family = PROXY_FAM_UNSPEC };

	/* the examples and worst cases of the spec, §2.1 */
	h = hdr4(1, "255.255.255.255", 65535, "255.255.255.255", 65535);
	V1_OK("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", &h);
	h = hdr6(1, FFFF6, 65535, FFFF6, 65535);
	V1_OK("PROXY TCP6 " FFFF6 " " FFFF6 " 65535 65535\r\n", &h);
	V1_OK("PROXY UNKNOWN\r\n", &unknown);
	V1_OK("PROXY UNKNOWN " FFFF6 " " FFFF6 " 65535 65535\r\n", &unknown);
	assert_int_equal(sizeof("PROXY UNKNOWN " FFFF6 " " FFFF6 " 65535 65535\r\n") - 1, PROXY_V1_MAX);
	h = hdr4(1, "192.168.0.1", 56324, "192.168.0.11", 443);
	V1_OK("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", &h);
	h = hdr6(1, "2001:db8::1", 0, "::ffff:192.0.2.1", 25);
	V1_OK("PROXY TCP6 2001:db8::1 ::ffff:192.0.2.1 0 25\r\n", &h);
	h = hdr4(1, "0.0.0.0", 0, "10.0.0.1", 2525);
	V1_OK("PROXY TCP4 0.0.0.0 10.0.0.1 0 2525\r\n", &h);
	V1_OK("PROXY UNKNOWN anything at all \x01\r\n", &unknown);
}

static void test_v1_malformed(void **st)
{
	(void)st;
	V1_BAD("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\n");    /* bare LF */
	V1_BAD("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\r\n"); /* stray CR */
	V1_BAD("PROXY TCP4 192.168.0.1  192.168.0.11 56324 443\r\n");  /* two spaces */
	V1_BAD("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443 \r\n");  /* trailing space */
	V1_BAD("PROXY TCP4 192.168.0.1 192.168.0.11 56324\r\n");       /* a field missing */
	V1_BAD("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443 1\r\n"); /* one too many */
	V1_BAD("PROXY TCP4 192.168.0.1 192.168.0.11 56324 0443\r\n");  /* leading zero */
	V1_BAD("PROXY TCP4 192.168.0.1 192.168.0.11 56324 65536\r\n");
	V1_BAD("PROXY TCP4 192.168.0.1 192.168.0.11 -1 443\r\n");
	V1_BAD("PROXY TCP4 192.168.0.1 192.168.0.11 +1 443\r\n");
	V1_BAD("PROXY TCP4 192.168.0.01 192.168.0.11 56324 443\r\n");
	V1_BAD("PROXY TCP4 192.168.0.256 192.168.0.11 56324 443\r\n");
	V1_BAD("PROXY TCP4 ::1 ::1 56324 443\r\n");                     /* family mismatch */
	V1_BAD("PROXY TCP6 192.168.0.1 192.168.0.11 56324 443\r\n");
	V1_BAD("PROXY TCP6 fe80::1%eth0 ::1 56324 443\r\n");
	V1_BAD("PROXY TCP5 192.168.0.1 192.168.0.11 56324 443\r\n");
	V1_BAD("PROXY tcp4 192.168.0.1 192.168.0.11 56324 443\r\n");
	V1_BAD("PROXY  TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
	V1_BAD("PROXYTCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
	V1_BAD("proxy TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
	V1_BAD("PROXY TCP4\r\n");
	V1_BAD("PROXY \r\n");
	V1_BAD("PROXY\r\n");
	V1_BAD("PROXY UNKNOWNX\r\n");
	V1_BAD("PROXY UDP4 192.168.0.1 192.168.0.11 56324 443\r\n");
	/* 108 bytes with no end in sight */
	V1_BAD("PROXY UNKNOWN " FFFF6 " " FFFF6 " 65535 655355\r\n");
	V1_BAD("PROXY UNKNOWN " FFFF6 " " FFFF6 " 65535 65535 1234567890\r\n");
	/* not a PROXY header at all: closed at once */
	V1_BAD("EHLO client.example\r\n");
	V1_BAD("GET / HTTP/1.0\r\n");
	V1_BAD("\r\n\r\n\r\n"); /* a v2 signature going wrong */
	V1_BAD("P\r\n");
}

/* v2 - build a v2 header: command byte, family byte, block */
static size_t v2(char *out, uint8_t ver_cmd, uint8_t fam, const void *block, size_t n)
{
	memcpy(out, "\r\n\r\n\0\r\nQUIT\n", 12);
	out[12] = (char)ver_cmd;
	out[13] = (char)fam;
	out[14] = (char)(n >> 8);
	out[15] = (char)n;
	memcpy(out + 16, block, n);
	return 16 + n;
}

static const char v2_ip4[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 0x04, 0xd2, 0x00, 0x19 }; /* 1234 -> 25 */

static void test_v2_valid(void **st)
{
	(void)st;
	char in[8192], block[5000];
	struct proxy_header h = hdr4(2, "1.2.3.4", 1234, "5.6.7.8", 25);
	struct proxy_header h6 = hdr6(2, "2001:db8::1", 40000, "2001:db8::25", 25);
	struct proxy_header unspec = { .version = 2, .family = PROXY_FAM_UNSPEC };
	struct proxy_header local = { .version = 2, .local = true, .family = PROXY_FAM_UNSPEC };
	size_t n, b;

	expect_ok(in, v2(in, 0x21, 0x11, v2_ip4, 12), &h);

	memset(block, 0, 36);
	block[0] = 0x20, block[1] = 0x01, block[2] = 0x0d, block[3] = (char)0xb8, block[15] = 1;
	block[16] = 0x20, block[17] = 0x01, block[18] = 0x0d, block[19] = (char)0xb8, block[31] = 0x25;
	block[32] = (char)0x9c, block[33] = 0x40, block[34] = 0, block[35] = 25;
	expect_ok(in, v2(in, 0x21, 0x21, block, 36), &h6);

	/* TLVs: ALPN, AUTHORITY, CRC32C, NOOP (empty), SSL with sub-TLVs, all skipped */
	memcpy(block, v2_ip4, 12);
	b = 12;
	memcpy(block + b, "\x01\x00\x04smtp", 7), b += 7;
	memcpy(block + b, "\x02\x00\x0bmx.test.org", 14), b += 14;
	memcpy(block + b, "\x03\x00\x04\x12\x34\x56\x78", 7), b += 7;
	memcpy(block + b, "\x04\x00\x00", 3), b += 3;
	memcpy(block + b, "\x20\x00\x0d\x07\x00\x00\x00\x00\x21\x00\x05TLSv1", 16), b += 16;
	expect_ok(in, v2(in, 0x21, 0x11, block, b), &h);

	/* the largest block allowed: one NOOP TLV filling it */
	memcpy(block, v2_ip4, 12);
	n = PROXY_V2_MAX_BLOCK - 12 - 3;
	block[12] = 0x04, block[13] = (char)(n >> 8), block[14] = (char)n;
	memset(block + 15, 'x', n);
	expect_ok(in, v2(in, 0x21, 0x11, block, PROXY_V2_MAX_BLOCK), &h);

	/* LOCAL: health checks; the block and the family are ignored */
	expect_ok(in, v2(in, 0x20, 0x00, "", 0), &local);
	expect_ok(in, v2(in, 0x20, 0x11, v2_ip4, 12), &local);
	memset(block, 'u', 216);
	expect_ok(in, v2(in, 0x20, 0x31, block, 216), &local); /* AF_UNIX block */
	expect_ok(in, v2(in, 0x20, 0x11, v2_ip4, 5), &local);   /* short: still ignored */
	/* PROXY over UNSPEC: use the real endpoints */
	expect_ok(in, v2(in, 0x21, 0x00, "", 0), &unspec);
	expect_ok(in, v2(in, 0x21, 0x00, "abcdef", 6), &unspec);
}

static void test_v2_malformed(void **st)
{
	(void)st;
	char in[8192], block[5000];
	size_t n;

	/* every byte of the signature matters */
	for (int i = 0; i < 12; i++) {
		n = v2(in, 0x21, 0x11, v2_ip4, 12);
		in[i] ^= 0x40;
		expect_bad(in, n);
	}
	static const uint8_t bad_vc[] = { 0x11, 0x31, 0x01, 0x22, 0x2f, 0x10, 0xf1 };
	for (size_t i = 0; i < sizeof(bad_vc); i++)
		expect_bad(in, v2(in, bad_vc[i], 0x11, v2_ip4, 12));
	/* UDP, UNIX and unknown families under PROXY */
	static const uint8_t bad_fam[] = { 0x12, 0x22, 0x31, 0x32, 0x01, 0x10, 0x20, 0x13, 0x41, 0xff };
	for (size_t i = 0; i < sizeof(bad_fam); i++)
		expect_bad(in, v2(in, 0x21, bad_fam[i], v2_ip4, 12));
	/* blocks too short for their addresses */
	expect_bad(in, v2(in, 0x21, 0x11, v2_ip4, 11));
	expect_bad(in, v2(in, 0x21, 0x11, v2_ip4, 0));
	memset(block, 0, 36);
	expect_bad(in, v2(in, 0x21, 0x21, block, 35));
	expect_bad(in, v2(in, 0x21, 0x21, block, 12));
	/* a block over the bound, even a LOCAL one */
	memset(block, 0, sizeof(block));
	expect_bad(in, v2(in, 0x21, 0x11, block, PROXY_V2_MAX_BLOCK + 1));
	expect_bad(in, v2(in, 0x20, 0x00, block, PROXY_V2_MAX_BLOCK + 1));
	/* TLVs that do not fill the block exactly */
	memcpy(block, v2_ip4, 12);
	memcpy(block + 12, "\x01\x00\x05smtp", 7); /* value runs past the block */
	expect_bad(in, v2(in, 0x21, 0x11, block, 19));
	memcpy(block + 12, "\x01\x00\x04smtp\x04", 8); /* one stray byte */
	expect_bad(in, v2(in, 0x21, 0x11, block, 20));
	memcpy(block + 12, "\x01\x00\x04smtp\x04\x00", 9); /* two stray bytes */
	expect_bad(in, v2(in, 0x21, 0x11, block, 21));
	memcpy(block + 12, "\x04\xff\xff", 3); /* 65535-byte TLV in a small block */
	expect_bad(in, v2(in, 0x21, 0x11, block, 15 + 100));
}

static void test_feed_after_end(void **st)
{
	(void)st;
	struct proxy_parser p;
	size_t u;
	char in[64];
	size_t n = v2(in, 0x21, 0x11, v2_ip4, 12);

	proxy_init(&p);
	assert_int_equal(proxy_feed(&p, in, n, &u), RM_OK);
	assert_int_equal(u, 28);
	assert_int_equal(proxy_feed(&p, "EHLO", 4, &u), RM_OK);
	assert_int_equal(u, 0);
	assert_int_equal(p.hdr.length, 28);
	proxy_init(&p);
	assert_int_equal(proxy_feed(&p, "", 0, &u), RM_AGAIN);
	assert_int_equal(u, 0);
	assert_int_equal(proxy_feed(&p, "HELO", 4, &u), RM_EPROTO);
	assert_int_equal(u, 0); /* refused at the first byte */
	assert_int_equal(proxy_feed(&p, "PROXY ", 6, &u), RM_EPROTO);
	proxy_init(&p);
	assert_int_equal(proxy_feed(&p, "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nQUIT", 36, &u), RM_OK);
	assert_int_equal(u, 32);
	assert_int_equal(p.hdr.src.port, 1);
	assert_int_equal(p.hdr.dst.port, 2);
}

/* random inputs near valid ones: whole and byte-by-byte agree, no crash */
static void test_random_agreement(void **st)
{
	(void)st;
	uint64_t seed = 42;
	char base[3][128];
	size_t blen[3];

	blen[0] = v2(base[0], 0x21, 0x11, v2_ip4, 12);
	memcpy(base[1], "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", 47), blen[1] = 47;
	memcpy(base[2], "PROXY TCP6 2001:db8::1 ::1 1 2\r\n", 32), blen[2] = 32;
	for (int iter = 0; iter < 20000; iter++) {
		int which = (int)(test_rand(&seed) % 3);
		char in[128];
		size_t n = blen[which];
		struct feed_ctx whole, bytes;

		memcpy(in, base[which], n);
		for (int m = (int)(test_rand(&seed) % 3); m >= 0; m--)
			in[test_rand(&seed) % n] = (char)test_rand(&seed);
		n = 1 + test_rand(&seed) % n;
		feed_reset(&whole);
		feed_piece(&whole, in, n);
		feed_reset(&bytes);
		for (size_t i = 0; i < n && !feed_piece(&bytes, in + i, 1); i++)
			;
		assert_int_equal(whole.rc, bytes.rc);
		if (whole.rc == RM_OK) {
			assert_int_equal(whole.used, bytes.used);
			assert_hdr_equal(&whole.p.hdr, &bytes.p.hdr);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipaddr_parse4),
		cmocka_unit_test(test_ipaddr_parse6),
		cmocka_unit_test(test_v1_spec_examples),
		cmocka_unit_test(test_v1_malformed),
		cmocka_unit_test(test_v2_valid),
		cmocka_unit_test(test_v2_malformed),
		cmocka_unit_test(test_feed_after_end),
		cmocka_unit_test(test_random_agreement),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
