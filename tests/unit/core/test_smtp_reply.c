/* test_smtp_reply.c - the reply parser: a table of replies, each fed whole,
 * split at every byte and one byte at a time in guarded memory; bad replies;
 * huge lines and replies that pass the limits. */
#include "tests/unit/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/smtp_reply.h"

struct rctx {
	struct smtp_reply_parser p;
	char log[4096];
	size_t len;
	bool bad;
	const char *want;
};

/* log_reply - "CODE ENH|line|line[ T]" then ";" */
static void log_reply(struct rctx *x, const struct smtp_reply *r)
{
	char *o = x->log + x->len;
	size_t room = sizeof x->log - x->len;
	int n = r->has_enh ? snprintf(o, room, "%u %u.%u.%u", r->code, r->enh[0], r->enh[1], r->enh[2])
			   : snprintf(o, room, "%u -", r->code);

	for (size_t i = 0; i < r->nlines; i++)
		n += snprintf(o + n, room - (size_t)n, "|%.*s", (int)r->line[i].len, r->line[i].ptr);
	n += snprintf(o + n, room - (size_t)n, "%s;", r->truncated ? " T" : "");
	x->len += (size_t)n;
}

static void rreset(void *ctx)
{
	struct rctx *x = ctx;
	smtp_reply_parser_init(&x->p);
	x->len = 0;
	x->log[0] = 0;
	x->bad = false;
}

static int rfeed(void *ctx, const char *p, size_t n)
{
	struct rctx *x = ctx;

	while (n) {
		const struct smtp_reply *r = NULL;
		size_t used;
		enum smtp_reply_status st = smtp_reply_feed(&x->p, p, n, &used, &r);

		assert_true(used <= n);
		if (st == SMTP_REPLY_BAD) {
			x->len += (size_t)snprintf(x->log + x->len, sizeof x->log - x->len, "BAD;");
			x->bad = true;
			return 1;
		}
		if (st == SMTP_REPLY_READY)
			log_reply(x, r);
		else
			assert_int_equal(used, n);
		p += used;
		n -= used;
	}
	return 0;
}

static void rcheck(void *ctx, size_t k)
{
	struct rctx *x = ctx;
	if (strcmp(x->log, x->want) != 0)
		fail_msg("split %zu: got \"%s\" want \"%s\"", k, x->log, x->want);
}

static const struct {
	const char *in, *want;
} replies[] = {
	{ "250 ok\r\n", "250 -|ok;" },
	{ "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 100\r\n", "250 -|mx.example|PIPELINING|SIZE 100;" },
	{ "250 2.1.0 Sender ok\r\n", "250 2.1.0|Sender ok;" },
	{ "550-5.1.1 no such\r\n550 5.1.1   user\r\n", "550 5.1.1|no such|user;" },
	{ "250\r\n", "250 -|;" },
	{ "250-\r\n250\n", "250 -||;" },
	{ "250 ok\n", "250 -|ok;" },
	{ "354 go ahead\r\n", "354 -|go ahead;" },
	{ "250 5.1.1 class differs\r\n", "250 -|5.1.1 class differs;" },
	{ "250 2.1234.0 x\r\n", "250 -|2.1234.0 x;" },
	{ "250 2.0.0\r\n", "250 2.0.0|;" },
	{ "250 2.0.0x\r\n", "250 -|2.0.0x;" },
	{ "250 2..0 x\r\n", "250 -|2..0 x;" },
	{ "421 4.3.2 shutting down\r\n", "421 4.3.2|shutting down;" },
	{ "250-first\r\n250-4.0.0 x\r\n250 2.0.0 last\r\n", "250 2.0.0|first|4.0.0 x|last;" },
	{ "250 a\rb\r\n", "250 -|a\rb;" },
	{ "250 a\r\r\n", "250 -|a\r;" },
	{ "599 x\r\n", "599 -|x;" },
	{ "220 hi\r\n250 ok\r\n", "220 -|hi;250 -|ok;" },
	{ "250 ok\r\nxyz", "250 -|ok;BAD;" },
	{ "25x ok\r\n", "BAD;" },
	{ "199 x\r\n", "BAD;" },
	{ "600 x\r\n", "BAD;" },
	{ "050 x\r\n", "BAD;" },
	{ "250-a\r\n251 b\r\n", "BAD;" },
	{ "250-a\r\n\r\n", "BAD;" },
	{ "\r\n", "BAD;" },
	{ "250xok\r\n", "BAD;" },
	{ "HTTP/1.1 200 OK\r\n", "BAD;" },
	{ "2500 x\r\n", "BAD;" },
};

static void test_table(void **st)
{
	(void)st;
	struct rctx *x = calloc(1, sizeof *x);
	for (size_t i = 0; i < sizeof replies / sizeof *replies; i++) {
		x->want = replies[i].want;
		split_each(replies[i].in, strlen(replies[i].in), rreset, rfeed, rcheck, x);
		split_bytes(replies[i].in, strlen(replies[i].in), rreset, rfeed, rcheck, x);
	}
	free(x);
}

/* test_consumed_stops - feed stops right after a reply; BAD is sticky */
static void test_consumed_stops(void **st)
{
	(void)st;
	struct smtp_reply_parser p;
	const struct smtp_reply *r;
	size_t used;
	const char in[] = "250 a\r\n251 b\r\n";

	smtp_reply_parser_init(&p);
	assert_int_equal(smtp_reply_feed(&p, in, sizeof in - 1, &used, &r), SMTP_REPLY_READY);
	assert_int_equal(used, 7);
	assert_int_equal(r->code, 250);
	assert_int_equal(smtp_reply_feed(&p, in + 7, sizeof in - 8, &used, &r), SMTP_REPLY_READY);
	assert_int_equal(r->code, 251);
	assert_int_equal(smtp_reply_feed(&p, "x", 1, &used, &r), SMTP_REPLY_BAD);
	assert_int_equal(used, 0);
	assert_int_equal(smtp_reply_feed(&p, "250 ok\r\n", 8, &used, &r), SMTP_REPLY_BAD);
	assert_int_equal(used, 0);
}

/* test_huge_line - 64 KB with no LF keeps parsing in fixed memory */
static void test_huge_line(void **st)
{
	(void)st;
	size_t n = 65536;
	char *big = malloc(n);
	struct smtp_reply_parser p;
	const struct smtp_reply *r;
	size_t used;

	memcpy(big, "250 ", 4);
	memset(big + 4, 'x', n - 4);
	struct guarded g = guard_copy(big, n);
	smtp_reply_parser_init(&p);
	assert_int_equal(smtp_reply_feed(&p, g.ptr, g.len, &used, &r), SMTP_REPLY_NEED_MORE);
	assert_int_equal(used, n);
	assert_int_equal(smtp_reply_feed(&p, "\r\n", 2, &used, &r), SMTP_REPLY_READY);
	assert_int_equal(r->code, 250);
	assert_int_equal(r->nlines, 1);
	assert_int_equal(r->line[0].len, SMTP_REPLY_LINE_MAX - 6);
	assert_true(r->truncated);
	guard_free(&g);
	free(big);
}

/* test_many_lines - lines past SMTP_REPLY_LINES_MAX and bytes past
 * SMTP_REPLY_MAX are dropped; codes are still checked on dropped lines */
static void test_many_lines(void **st)
{
	(void)st;
	char *in = malloc(100 * 600);
	size_t len = 0;
	struct smtp_reply_parser p;
	const struct smtp_reply *r;
	size_t used, total = 0;

	for (int i = 0; i < 100; i++) {
		len += (size_t)sprintf(in + len, "250%c", i == 99 ? ' ' : '-');
		memset(in + len, 'a' + i % 26, 100);
		len += 100;
		len += (size_t)sprintf(in + len, "\r\n");
	}
	smtp_reply_parser_init(&p);
	assert_int_equal(smtp_reply_feed(&p, in, len, &used, &r), SMTP_REPLY_READY);
	assert_int_equal(used, len);
	assert_true(r->truncated);
	assert_true(r->nlines <= SMTP_REPLY_LINES_MAX);
	for (size_t i = 0; i < r->nlines; i++)
		total += r->line[i].len;
	assert_true(total <= SMTP_REPLY_MAX);
	assert_int_equal(total, SMTP_REPLY_MAX); /* the 41st line is cut at the limit */
	assert_int_equal(r->line[0].ptr[0], 'a');

	/* The same, but line 80 (dropped) carries another code. */
	memcpy(in + 79 * 106, "251", 3);
	smtp_reply_parser_init(&p);
	assert_int_equal(smtp_reply_feed(&p, in, len, &used, &r), SMTP_REPLY_BAD);
	assert_int_equal(used, 79 * 106 + 2);
	free(in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_consumed_stops),
		cmocka_unit_test(test_huge_line),
		cmocka_unit_test(test_many_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
