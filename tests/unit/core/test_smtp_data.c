/* test_smtp_data.c - the DATA/BDAT body scanner, to the byte.
 *
 * Every case is fed whole, split at every byte and one byte at a time, each
 * piece in guarded memory, with roomy and with tiny slice arrays (1 and 2
 * slices, so "out is full" is hit everywhere). Every emitted slice must point
 * into the piece just fed or into the scanner's constants: no copies. A
 * property test compares random inputs and random splits with the naive
 * model in data_ref.h.
 */
#include "tests/unit/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/smtp_data.h"
#include "tests/unit/core/data_ref.h"

/* One table case; out == NULL means "as the input" (nothing to undo). */
struct data_case {
	const char *name;
	const char *in;
	size_t len;        /* 0: strlen(in) */
	const char *out;
	bool done;
	size_t left;       /* bytes after the terminator, left unconsumed */
	uint32_t received;
	uint64_t normalised;
	bool raw;
	size_t olen;       /* 0: strlen(out) */
};

/* The feeding state shared by reset/feed/check. */
struct feed {
	const struct data_case *c;
	const char *in;
	size_t len;
	size_t cap;              /* slice room per call */
	struct smtp_data d;
	char *out;               /* concatenated slices */
	size_t nout, outcap;
	size_t consumed;
	bool broken;             /* a per-call property failed */
	char why[160];
};

static void feed_reset(void *ctx)
{
	struct feed *f = ctx;

	if (f->c->raw)
		smtp_data_init_raw(&f->d);
	else
		smtp_data_init(&f->d);
	f->nout = 0;
	f->consumed = 0;
	f->broken = false;
}

static void feed_fail(struct feed *f, const char *why)
{
	if (!f->broken)
		snprintf(f->why, sizeof f->why, "%s", why);
	f->broken = true;
}

/* feed_piece - scan one piece to its end (or the end of data), checking
 * progress, the "stops early only when full" rule and that no slice is a
 * copy */
static int feed_piece(void *ctx, const char *p, size_t n)
{
	struct feed *f = ctx;
	struct slice v[64];

	while (n > 0 && !smtp_data_done(&f->d)) {
		struct smtp_data_out o = { v, 0, f->cap };
		size_t c = smtp_data_scan(&f->d, p, n, &o);

		if (c > n || o.n > f->cap)
			return feed_fail(f, "scan overran"), 1;
		if (c == 0 && o.n == 0)
			return feed_fail(f, "no progress"), 1;
		if (c < n && !smtp_data_done(&f->d) && o.n < f->cap)
			feed_fail(f, "stopped early with room left");
		for (size_t i = 0; i < o.n; i++) {
			bool inside = v[i].ptr >= p && v[i].ptr + v[i].len <= p + n;
			if (v[i].len == 0)
				feed_fail(f, "empty slice");
			if (!inside && !smtp_data_slice_static(v[i]))
				feed_fail(f, "slice is neither input nor constant");
			if (f->nout + v[i].len > f->outcap)
				return feed_fail(f, "output too long"), 1;
			memcpy(f->out + f->nout, v[i].ptr, v[i].len);
			f->nout += v[i].len;
		}
		p += c;
		n -= c;
		f->consumed += c;
	}
	if (smtp_data_done(&f->d)) {
		struct smtp_data_out o = { v, 0, f->cap };
		if (n > 0 && (smtp_data_scan(&f->d, p, n, &o) != 0 || o.n != 0))
			feed_fail(f, "consumed after the end of data");
		return 1;
	}
	return 0;
}

static void feed_check(void *ctx, size_t k)
{
	struct feed *f = ctx;
	const struct data_case *c = f->c;
	const char *exp = c->out ? c->out : c->in;
	size_t nexp = c->olen ? c->olen : c->out ? strlen(c->out) : f->len - c->left;
	bool ok = !f->broken && f->nout == nexp && memcmp(f->out, exp, nexp) == 0 &&
		  f->consumed == f->len - c->left && smtp_data_done(&f->d) == c->done &&
		  smtp_data_received(&f->d) == c->received &&
		  smtp_data_normalised(&f->d) == c->normalised && smtp_data_bytes(&f->d) == f->nout;

	if (!ok) {
		print_error("case \"%s\" split %zu cap %zu: %s; out %zu/%zu bytes, consumed %zu/%zu, "
			    "done %d, received %u, normalised %llu\n",
			    c->name, k, f->cap, f->broken ? f->why : "wrong result", f->nout, nexp,
			    f->consumed, f->len - c->left, smtp_data_done(&f->d),
			    smtp_data_received(&f->d), (unsigned long long)smtp_data_normalised(&f->d));
		fail();
	}
}

/* run_case - every feeding pattern and slice room for one case, and the
 * model must agree with the hand-written expectation */
static void run_case(const struct data_case *c)
{
	static const size_t caps[] = { 64, 1, 2 };
	size_t len = c->len ? c->len : strlen(c->in);
	struct feed f = { .c = c, .in = c->in, .len = len, .outcap = 2 * len + 2 };
	struct data_ref r = { .out = malloc(2 * len + 2) };

	f.out = malloc(f.outcap);
	assert_non_null(f.out);
	assert_non_null(r.out);
	for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
		f.cap = caps[i];
		split_each(c->in, len, feed_reset, feed_piece, feed_check, &f);
		split_bytes(c->in, len, feed_reset, feed_piece, feed_check, &f);
	}

	data_ref_run(c->in, len, c->raw, &r);
	if (r.nout != f.nout || memcmp(r.out, f.out, r.nout) != 0 || r.done != c->done ||
	    r.received != c->received || r.normalised != c->normalised) {
		print_error("case \"%s\": the model disagrees with the table\n", c->name);
		fail();
	}
	free(r.out);
	free(f.out);
}

#define TAIL "QUIT\r\n"

/* DC(name, input, output or NULL, done, left, received, normalised) */
#define DC(n, i, o, dn, lf, rc, nm) \
	{ .name = (n), .in = (i), .out = (o), .done = (dn), .left = (lf), .received = (rc), .normalised = (nm) }
#define RAW(n, i, rc) { .name = (n), .in = (i), .received = (rc), .raw = true }

static const struct data_case data_cases[] = {
	DC("plain", "Subject: x\r\n\r\nhello\r\nworld\r\n.\r\n", "Subject: x\r\n\r\nhello\r\nworld\r\n", true,
	   0, 0, 0),
	DC("rest left unconsumed", "a\r\n.\r\n" TAIL, "a\r\n", true, 6, 0, 0),
	DC("pipelined terminator twice", "a\r\n.\r\n.\r\n", "a\r\n", true, 3, 0, 0),
	DC("empty message", ".\r\n", "", true, 0, 0, 0),
	DC("empty message, then more", ".\r\nMAIL FROM:<>\r\n", "", true, 14, 0, 0),
	DC("stuffed dots", "..a\r\n.b\r\nc.d\r\n...\r\n.\r\n", ".a\r\nb\r\nc.d\r\n..\r\n", true, 0, 0, 0),
	DC("double dot line", "x\r\n..\r\n.\r\n", "x\r\n.\r\n", true, 0, 0, 0),
	DC("double dot at start", "..\r\n.\r\n", ".\r\n", true, 0, 0, 0),
	DC("no terminator yet", "abc\r\ndef", "abc\r\ndef", false, 0, 0, 0),
	DC("unfinished terminator: dot", "abc\r\n.", "abc\r\n", false, 0, 0, 0),
	DC("unfinished terminator: dot CR", "abc\r\n.\r", "abc\r\n", false, 0, 0, 0),
	DC("unfinished: CR at the end", "abc\r", "abc\r", false, 0, 0, 0),
	/* SMTP smuggling (CVE-2023-51764 class): none of these end the data */
	DC("smuggle LF.LF", "a\n.\nMAIL FROM:<x>\r\n", "a\r\n\r\nMAIL FROM:<x>\r\n", false, 0, 0, 2),
	DC("smuggle LF.CRLF", "a\n.\r\nMAIL FROM:<x>\r\n", "a\r\n\r\nMAIL FROM:<x>\r\n", false, 0, 0, 1),
	DC("smuggle CR.CR", "a\r.\rMAIL FROM:<x>\r\n", NULL, false, 0, 0, 0),
	DC("smuggle CRLF.LF", "a\r\n.\nMAIL FROM:<x>\r\n", "a\r\n\r\nMAIL FROM:<x>\r\n", false, 0, 0, 1),
	DC("smuggle CR.CRLF", "a\r.\r\nb\r\n", NULL, false, 0, 0, 0),
	DC("smuggle CRLF.CR", "a\r\n.\rb\r\n", "a\r\n\rb\r\n", false, 0, 0, 0),
	DC("smuggle CRLF.CRCR", "a\r\n.\r\r\nb", "a\r\n\r\r\nb", false, 0, 0, 0),
	DC("smuggle CRLF.CRCRLF then end", "a\r\n.\r\r\n.\r\n", "a\r\n\r\r\n", true, 0, 0, 0),
	DC("smuggle LF.LF at start", ".\n.\r\n", "\r\n\r\n", false, 0, 0, 1),
	{ .name = "smuggle NUL", .in = "a\r\n.\0\r\n", .len = 7, .out = "a\r\n\0\r\n", .olen = 6 },
	DC("smuggle then real end", "a\n.\r\nb\r\n.\r\n" TAIL, "a\r\n\r\nb\r\n", true, 6, 0, 1),
	DC("bare LF normalised", "a\nb\r\nc\n\nd", "a\r\nb\r\nc\r\n\r\nd", false, 0, 0, 3),
	DC("bare LF, stuffed next line", "a\n..b\n", "a\r\n.b\r\n", false, 0, 0, 2),
	DC("bare LF at start", "\n.\r\n", "\r\n\r\n", false, 0, 0, 1),
	DC("bare CR passes", "a\rb\r\r\n\r.\r\n.\r\n", "a\rb\r\r\n\r.\r\n", true, 0, 0, 0),
	DC("Received counted", "Received: a\r\nreceived: b\r\nRECEIVED:c\r\nX: y\r\n\r\nbody\r\n.\r\n",
	   "Received: a\r\nreceived: b\r\nRECEIVED:c\r\nX: y\r\n\r\nbody\r\n", true, 0, 3, 0),
	DC("Received in the body not counted", "Received: a\r\n\r\nReceived: b\r\nReceived: c\r\n.\r\n",
	   "Received: a\r\n\r\nReceived: b\r\nReceived: c\r\n", true, 0, 1, 0),
	DC("Received needs the colon at line start",
	   "Received : a\r\nX-Received: b\r\n Received: c\r\nReceive\r\nReceived:\r\n\r\n", NULL, false, 0, 1, 0),
	DC("stuffed Received is a Received", ".Received: a\r\n\r\n.\r\n", "Received: a\r\n\r\n", true, 0, 1, 0),
	DC("header section ended by a bare LF", "Received: a\n\nReceived: b\r\n",
	   "Received: a\r\n\r\nReceived: b\r\n", false, 0, 1, 2),
	DC("header section ended by LF.LF", "Received: a\n.\nReceived: b\r\n",
	   "Received: a\r\n\r\nReceived: b\r\n", false, 0, 1, 2),
	DC("header CR is not an empty line", "Received: a\r\n\r\r\nReceived: b\r\n", NULL, false, 0, 2, 0),
	RAW("raw: dots and CRLF.CRLF pass", "a\r\n.\r\n..b\nc\r", 0),
	RAW("raw: Received counted in headers", "Received: a\nreceived: b\r\n\nReceived: c\r\n", 2),
	RAW("raw: empty", "", 0),
};

static void test_table(void **st)
{
	(void)st;
	for (size_t i = 0; i < sizeof data_cases / sizeof data_cases[0]; i++)
		run_case(&data_cases[i]);
}

/* build_received - n Received: headers, a body with "Received:" lines too */
static char *build_received(unsigned n, char **out)
{
	size_t cap = 64 * (size_t)n + 256;
	char *in = malloc(cap), *o = malloc(cap);
	size_t len = 0, olen = 0;

	assert_non_null(in);
	assert_non_null(o);
	for (unsigned i = 0; i < n; i++)
		len += (size_t)snprintf(in + len, cap - len, "%seceived: from h%u by x\r\n",
					i % 2 ? "R" : "r", i);
	len += (size_t)snprintf(in + len, cap - len, "Subject: loop\r\n\r\nReceived: body\r\n");
	memcpy(o, in, len);
	olen = len;
	o[olen] = '\0';
	memcpy(in + len, ".\r\n", 4);
	*out = o;
	return in;
}

static void test_received_limit(void **st)
{
	(void)st;
	for (unsigned n = SMTP_DATA_MAX_RECEIVED; n <= SMTP_DATA_MAX_RECEIVED + 1; n++) {
		char *out, *in = build_received(n, &out);
		struct data_case c = DC("Received: limit", in, out, true, 0, n, 0);
		run_case(&c);
		free(in);
		free(out);
	}
}

static void test_long_lines(void **st)
{
	(void)st;
	size_t n = 3000;
	char *in = malloc(2 * n + 32), *out = malloc(2 * n + 32);

	assert_non_null(in);
	assert_non_null(out);
	/* a 3000-octet line, then a bare-LF one with dots and CRs in it, so
	 * the ".CRLF" after it is content and the next one ends the data */
	memset(in, 'h', n);
	memcpy(in + n, "\r\n", 2);
	for (size_t i = 0; i < n; i++)
		in[n + 2 + i] = "x.\ry"[i % 4];
	memcpy(in + 2 * n + 2, "\n..\r\n.\r\n", 9);
	memcpy(out, in, 2 * n + 2);
	memcpy(out + 2 * n + 2, "\r\n.\r\n", 6);
	struct data_case c = DC("long lines", in, out, true, 0, 0, 1);
	run_case(&c);
	free(in);
	free(out);
}

static void test_header_across_buffers(void **st)
{
	(void)st;
	/* every split of "Received:" is covered by split_each; here three
	 * pieces cut inside the name and inside the empty line */
	const char *pieces[] = { "X: 1\r\nRe", "ceiv", "ed: x\r\n\r", "\nReceived: y\r\n.\r\n" };
	struct smtp_data d;
	struct slice v[8];

	smtp_data_init(&d);
	for (size_t i = 0; i < 4; i++) {
		struct guarded g = guard_copy(pieces[i], strlen(pieces[i]));
		struct smtp_data_out o = { v, 0, 8 };
		assert_int_equal(smtp_data_scan(&d, g.ptr, g.len, &o), g.len);
		guard_free(&g);
	}
	assert_true(smtp_data_done(&d));
	assert_int_equal(smtp_data_received(&d), 1);
}

static void test_raw_bdat_chunks(void **st)
{
	(void)st;
	/* one BDAT body over chunks: a header count spans them, and a chunk is
	 * always one slice of itself */
	const char *chunks[] = { "Received: a\r\nRec", "eived: b\r\n", "\r\n.\r\n" };
	struct smtp_data d;
	struct slice v[1];

	smtp_data_init_raw(&d);
	for (size_t i = 0; i < 3; i++) {
		struct smtp_data_out o = { v, 0, 1 };
		size_t n = strlen(chunks[i]);
		assert_int_equal(smtp_data_scan(&d, chunks[i], n, &o), n);
		assert_int_equal(o.n, 1);
		assert_ptr_equal(v[0].ptr, chunks[i]);
		assert_int_equal(v[0].len, n);
	}
	assert_false(smtp_data_done(&d));
	assert_int_equal(smtp_data_received(&d), 2);
	assert_int_equal(smtp_data_bytes(&d), 31);
	struct smtp_data_out full = { v, 1, 1 };
	assert_int_equal(smtp_data_scan(&d, "x", 1, &full), 0);
}

/* rand_body - random bytes over an alphabet weighted to what matters */
static size_t rand_body(uint64_t *seed, char *buf, size_t max)
{
	static const char *frags[] = { "\r\n", "\r\n.", "\r\n.\r\n", "\n.\n", "Received:", "rEcEiVeD: x",
				       "\r\n\r\n", "..", "\n", ".\r" };
	size_t len = test_rand(seed) % max, n = 0;
	unsigned dense = (unsigned)(test_rand(seed) % 4); /* 0: long quiet lines */

	while (n < len) {
		uint64_t r = test_rand(seed) % 100;
		if (dense == 0 && r < 85) {
			buf[n++] = (char)('a' + test_rand(seed) % 26);
		} else if (r < 15) {
			const char *f = frags[test_rand(seed) % (sizeof frags / sizeof frags[0])];
			size_t fl = strlen(f);
			if (n + fl > len)
				fl = len - n;
			memcpy(buf + n, f, fl);
			n += fl;
		} else {
			buf[n++] = "\r\n.aR\r\n.\0x"[r % 10];
		}
	}
	return len;
}

/* one_random - feed in[0..len) in random pieces with random room, compare
 * with the model; fails the test on any difference */
static void one_random(uint64_t *seed, const char *in, size_t len, bool raw, unsigned iter)
{
	struct data_case c = { .name = "random", .in = in, .raw = raw };
	struct feed f = { .c = &c, .in = in, .len = len, .outcap = 2 * len + 2 };
	struct data_ref r = { .out = malloc(2 * len + 2) };
	size_t pos = 0;

	f.out = malloc(f.outcap);
	assert_non_null(f.out);
	assert_non_null(r.out);
	f.cap = test_rand(seed) % 2 ? 64 : 1 + test_rand(seed) % 3;
	feed_reset(&f);
	while (pos < len) {
		size_t k = 1 + test_rand(seed) % (test_rand(seed) % 2 ? 8 : len - pos);
		if (k > len - pos)
			k = len - pos;
		struct guarded g = guard_copy(in + pos, k);
		int stop = feed_piece(&f, g.ptr, g.len);
		guard_free(&g);
		pos += k;
		if (stop)
			break;
	}
	data_ref_run(in, len, raw, &r);
	if (f.broken || f.nout != r.nout || memcmp(f.out, r.out, r.nout) != 0 || f.consumed != r.consumed ||
	    smtp_data_done(&f.d) != r.done || smtp_data_received(&f.d) != r.received ||
	    smtp_data_normalised(&f.d) != r.normalised || smtp_data_bytes(&f.d) != r.nout) {
		print_error("random input %u (len %zu, raw %d) differs from the model: %s\n", iter, len, raw,
			    f.broken ? f.why : "result");
		fail();
	}
	free(f.out);
	free(r.out);
}

static void test_random_vs_model(void **st)
{
	(void)st;
	uint64_t seed = 0x5eed0da7aull;
	static char buf[4096];

	for (unsigned iter = 0; iter < 20000; iter++) {
		size_t len = rand_body(&seed, buf, iter % 10 == 0 ? sizeof buf : 160);
		one_random(&seed, buf, len, iter % 16 == 0, iter);
	}
}

/* test_events_in_blocks - a bare LF, a line-start dot or the terminator at
 * every offset of a run of quiet CRLF lines: the block scan finds each
 * wherever it falls in its 32- and 16-byte blocks, fed in random pieces */
static void test_events_in_blocks(void **st)
{
	(void)st;
	uint64_t seed = 0xb10c5ull;
	char buf[256];

	for (unsigned kind = 0; kind < 3; kind++) {
		for (size_t k = 2; k < 180; k++) {
			size_t len = 200;
			for (size_t i = 0; i < len; i++)
				buf[i] = i % 31 == 29 ? '\r' : i % 31 == 30 ? '\n' : (char)('a' + i % 26);
			if (kind == 0) {
				buf[k - 1] = 'x';
				buf[k] = '\n'; /* bare */
			} else {
				buf[k - 1] = '\r';
				buf[k] = '\n';
				buf[k + 1] = '.';
				if (kind == 2) {
					buf[k + 2] = '\r';
					buf[k + 3] = '\n';
				}
			}
			memcpy(buf + len, "\r\n.\r\n", 5);
			one_random(&seed, buf, len + 5, false, (unsigned)(kind * 1000 + k));
		}
	}
}

/* test_sse2_blocks - the table, the random bodies and the block offsets
 * again with the SSE2 block scan (the rest ran with the CPU's best) */
static void test_sse2_blocks(void **st)
{
	bool avx2 = smtp_data_avx2(true);
	assert_true(smtp_data_avx2(false));
	test_table(st);
	test_random_vs_model(st);
	test_events_in_blocks(st);
	if (avx2)
		assert_true(smtp_data_avx2(true));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_received_limit),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_header_across_buffers),
		cmocka_unit_test(test_raw_bdat_chunks),
		cmocka_unit_test(test_random_vs_model),
		cmocka_unit_test(test_events_in_blocks),
		cmocka_unit_test(test_sse2_blocks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
