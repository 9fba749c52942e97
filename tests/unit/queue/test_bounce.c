/* test_bounce.c - the DSN builder: who is reported, the report's structure
 * (headers, boundary, every RFC 3464 field), line ends and lengths, the
 * original attached per RET and size without being copied, hostile replies,
 * and the same bytes out for the original split at every byte position. */
#define _GNU_SOURCE
#include "tests/unit/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/bounce.h"

static const char ORIG[] = "Received: from client.test by mx.test\r\n"
			   "From: Alice <alice@example.org>\r\n"
			   "To: bob@remote.test\r\n"
			   "Subject: hello\r\n"
			   "\r\n"
			   "body line one\r\n"
			   "body line two\r\n";

/* A built report flattened into one NUL-terminated string. */
struct flat {
	char *p;
	size_t len;
};

static struct flat flatten(const struct bounce_out *o)
{
	struct flat f;
	f.p = malloc(o->len + 1);
	f.len = 0;
	assert_non_null(f.p);
	for (size_t i = 0; i < o->nv; i++) {
		memcpy(f.p + f.len, o->v[i].ptr, o->v[i].len);
		f.len += o->v[i].len;
	}
	assert_int_equal(f.len, o->len);
	f.p[f.len] = '\0';
	return f;
}

/* check_lines - CRLF only, no line over 998 octets, returns the line count */
static size_t check_lines(const struct flat *f)
{
	size_t col = 0, lines = 0;
	for (size_t i = 0; i < f->len; i++) {
		char c = f->p[i];
		if (c == '\r') {
			assert_true(i + 1 < f->len && f->p[i + 1] == '\n');
			i++;
			lines++;
			col = 0;
			continue;
		}
		assert_true(c != '\n');
		col++;
		assert_true(col <= 998);
	}
	assert_int_equal(col, 0); /* ends with CRLF */
	return lines;
}

/* has_line - a whole line equal to s */
static bool has_line(const struct flat *f, const char *s)
{
	size_t n = strlen(s);
	for (const char *p = f->p; (p = strstr(p, s)) != NULL; p++)
		if ((p == f->p || p[-1] == '\n') && p[n] == '\r' && p[n + 1] == '\n')
			return true;
	return false;
}

/* count_lines - whole lines equal to s */
static size_t count_lines(const struct flat *f, const char *s)
{
	size_t n = strlen(s), k = 0;
	for (const char *p = f->p; (p = strstr(p, s)) != NULL; p++)
		if ((p == f->p || p[-1] == '\n') && p[n] == '\r' && p[n + 1] == '\n')
			k++;
	return k;
}

/* boundary_of - the boundary parameter, copied into out */
static void boundary_of(const struct flat *f, char *out, size_t cap)
{
	static const char ct[] = "report-type=delivery-status;\r\n\tboundary=\"";
	const char *p = strstr(f->p, ct);
	assert_non_null(p);
	p += sizeof ct - 1;
	const char *q = strchr(p, '"');
	assert_non_null(q);
	assert_true((size_t)(q - p) < cap && q > p && q - p <= 70);
	memcpy(out, p, (size_t)(q - p));
	out[q - p] = '\0';
}

/* check_structure - the header, three parts and the closing delimiter */
static void check_structure(const struct flat *f, const char *part3_type)
{
	char b[80], d[90];

	check_lines(f);
	assert_true(has_line(f, "Auto-Submitted: auto-replied"));
	assert_true(has_line(f, "MIME-Version: 1.0"));
	assert_non_null(strstr(f->p, "\r\nContent-Type: multipart/report; report-type=delivery-status;"));
	assert_true(strncmp(f->p, "From: Mail Delivery System <MAILER-DAEMON@mx.test>\r\n", 52) == 0);
	assert_non_null(strstr(f->p, "\r\nMessage-ID: <"));
	boundary_of(f, b, sizeof b);
	snprintf(d, sizeof d, "--%s", b);
	assert_int_equal(count_lines(f, d), 3);
	snprintf(d, sizeof d, "--%s--", b);
	assert_int_equal(count_lines(f, d), 1);
	assert_true(f->len > strlen(d) + 2);
	assert_memory_equal(f->p + f->len - strlen(d) - 2, d, strlen(d)); /* last */
	assert_true(has_line(f, "Content-Type: text/plain; charset=us-ascii"));
	assert_true(has_line(f, "Content-Type: message/delivery-status"));
	snprintf(d, sizeof d, "Content-Type: %s", part3_type);
	assert_true(has_line(f, d));
	/* the notification and the report are ASCII */
	const char *rep = strstr(f->p, "Content-Type: message/delivery-status");
	const char *end = strstr(rep, b);
	for (const char *p = f->p; p < end; p++)
		assert_true((unsigned char)*p < 0x80);
}

static struct bounce_rcpt rcpt_failed(const char *addr)
{
	struct bounce_rcpt r;
	memset(&r, 0, sizeof r);
	r.addr = slice_cstr(addr);
	r.action = BOUNCE_FAILED;
	r.status = SLICE_LIT("5.1.1");
	r.remote_mta = SLICE_LIT("mx.remote.test");
	r.diag = SLICE_LIT("550 5.1.1 <bob@remote.test>: user unknown");
	r.last_attempt = SLICE_LIT("Tue, 14 Nov 2023 22:13:20 +0000");
	return r;
}

static struct bounce_msg msg_base(const struct slice *orig, size_t norig, const struct bounce_rcpt *r,
				  size_t n)
{
	struct bounce_msg m;
	memset(&m, 0, sizeof m);
	m.hostname = SLICE_LIT("mx.test");
	m.sender = SLICE_LIT("alice@example.org");
	m.ret = SMTP_RET_UNSPEC;
	m.arrival_us = 1700000000123456ull;
	m.arrival_date = SLICE_LIT("Tue, 14 Nov 2023 22:13:20 +0000");
	m.date = SLICE_LIT("Wed, 15 Nov 2023 08:00:00 +0000");
	m.token = SLICE_LIT("0QX7Z3K5A0000001");
	m.orig = orig;
	m.norig = norig;
	m.rcpt = r;
	m.nrcpt = n;
	return m;
}

static struct flat build_ok(const struct bounce_msg *m, struct arena *a, struct bounce_out *o)
{
	assert_int_equal(bounce_build(m, a, o), RM_OK);
	return flatten(o);
}

static void test_single_failure(void **st)
{
	(void)st;
	struct arena a;
	struct bounce_out o;
	struct bounce_rcpt r = rcpt_failed("bob@remote.test");
	struct slice orig = slice_make(ORIG, sizeof ORIG - 1);
	struct bounce_msg m = msg_base(&orig, 1, &r, 1);

	arena_init(&a, &rm_alloc_libc, 4096, 1 << 20);
	struct flat f = build_ok(&m, &a, &o);
	check_structure(&f, "message/rfc822");
	assert_true(o.full);
	assert_true(has_line(&f, "To: <alice@example.org>"));
	assert_true(has_line(&f, "Subject: Undelivered Mail Returned to Sender"));
	assert_true(has_line(&f, "Date: Wed, 15 Nov 2023 08:00:00 +0000"));
	assert_true(has_line(&f, "Reporting-MTA: dns; mx.test"));
	assert_true(has_line(&f, "Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000"));
	assert_true(has_line(&f, "Final-Recipient: rfc822; bob@remote.test"));
	assert_true(has_line(&f, "Action: failed"));
	assert_true(has_line(&f, "Status: 5.1.1"));
	assert_true(has_line(&f, "Remote-MTA: dns; mx.remote.test"));
	assert_true(has_line(&f, "Diagnostic-Code: smtp; 550 5.1.1 <bob@remote.test>: user unknown"));
	assert_true(has_line(&f, "Last-Attempt-Date: Tue, 14 Nov 2023 22:13:20 +0000"));
	assert_null(strstr(f.p, "Original-Recipient:"));
	assert_null(strstr(f.p, "Original-Envelope-Id:"));
	assert_null(strstr(f.p, "Will-Retry-Until:"));
	/* the whole original, and not copied: a slice points into it */
	assert_non_null(strstr(f.p, ORIG));
	bool referenced = false;
	for (size_t i = 0; i < o.nv; i++)
		referenced |= o.v[i].ptr == ORIG && o.v[i].len == sizeof ORIG - 1;
	assert_true(referenced);
	/* the text part names the recipient and what the host said */
	assert_true(has_line(&f, "<bob@remote.test>: delivery failed permanently"));
	assert_true(has_line(&f, "    host mx.remote.test said: 550 5.1.1 <bob@remote.test>: user unknown"));
	free(f.p);
	arena_free(&a);
}

static void test_select_rules(void **st)
{
	(void)st;
	static const struct {
		enum bounce_action act;
		unsigned notify;
		bool reported;
	} t[] = {
		{ BOUNCE_FAILED, 0, true },
		{ BOUNCE_FAILED, SMTP_NOTIFY_FAILURE, true },
		{ BOUNCE_FAILED, SMTP_NOTIFY_DELAY | SMTP_NOTIFY_FAILURE, true },
		{ BOUNCE_FAILED, SMTP_NOTIFY_NEVER, false },
		{ BOUNCE_FAILED, SMTP_NOTIFY_SUCCESS, false },
		{ BOUNCE_FAILED, SMTP_NOTIFY_DELAY, false },
		{ BOUNCE_DELAYED, 0, false },
		{ BOUNCE_DELAYED, SMTP_NOTIFY_DELAY, true },
		{ BOUNCE_DELAYED, SMTP_NOTIFY_FAILURE, false },
		{ BOUNCE_DELAYED, SMTP_NOTIFY_NEVER, false },
		{ BOUNCE_DELIVERED, 0, false },
		{ BOUNCE_DELIVERED, SMTP_NOTIFY_SUCCESS, true },
		{ BOUNCE_RELAYED, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE, true },
		{ BOUNCE_RELAYED, SMTP_NOTIFY_FAILURE, false },
		{ BOUNCE_EXPANDED, SMTP_NOTIFY_SUCCESS, true },
	};
	struct bounce_rcpt r[sizeof t / sizeof t[0]];
	bool sel[sizeof t / sizeof t[0]];
	size_t want = 0;

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		r[i] = rcpt_failed("x@y.test");
		r[i].action = t[i].act;
		r[i].notify = t[i].notify;
		assert_int_equal(bounce_rcpt_reported(&r[i]), t[i].reported);
		want += t[i].reported;
	}
	assert_int_equal(bounce_select(SLICE_LIT("a@b.test"), r, sizeof t / sizeof t[0], sel), want);
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		assert_int_equal(sel[i], t[i].reported);
	/* the null sender never gets a report */
	assert_int_equal(bounce_select(SLICE_NULL, r, sizeof t / sizeof t[0], sel), 0);
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		assert_false(sel[i]);
}

static void test_no_report(void **st)
{
	(void)st;
	struct arena a;
	struct bounce_out o;
	struct bounce_rcpt r[2] = { rcpt_failed("a@x.test"), rcpt_failed("b@x.test") };
	struct slice orig = slice_make(ORIG, sizeof ORIG - 1);
	struct bounce_msg m = msg_base(&orig, 1, r, 2);

	arena_init(&a, &rm_alloc_libc, 4096, 1 << 20);
	m.sender = SLICE_NULL;
	assert_int_equal(bounce_build(&m, &a, &o), RM_EINVAL);
	assert_int_equal(o.nv, 0);
	m.sender = SLICE_LIT("alice@example.org");
	r[0].notify = r[1].notify = SMTP_NOTIFY_NEVER;
	assert_int_equal(bounce_build(&m, &a, &o), RM_EINVAL);
	/* one NEVER, one FAILURE: only the second is listed */
	r[1].notify = SMTP_NOTIFY_FAILURE;
	struct flat f = build_ok(&m, &a, &o);
	check_structure(&f, "message/rfc822");
	assert_null(strstr(f.p, "a@x.test"));
	assert_true(has_line(&f, "Final-Recipient: rfc822; b@x.test"));
	free(f.p);
	arena_free(&a);
}

static void test_mixed_failed_delayed(void **st)
{
	(void)st;
	struct arena a;
	struct bounce_out o;
	struct bounce_rcpt r[2] = { rcpt_failed("a@x.test"), rcpt_failed("b@y.test") };
	struct slice orig = slice_make(ORIG, sizeof ORIG - 1);
	struct bounce_msg m = msg_base(&orig, 1, r, 2);

	r[1].action = BOUNCE_DELAYED;
	r[1].notify = SMTP_NOTIFY_DELAY | SMTP_NOTIFY_FAILURE;
	r[1].status = SLICE_NULL; /* no enhanced code: 4.0.0 */
	r[1].diag = SLICE_LIT("451 try later");
	r[1].retry_until = SLICE_LIT("Sun, 19 Nov 2023 22:13:20 +0000");
	arena_init(&a, &rm_alloc_libc, 4096, 1 << 20);
	struct flat f = build_ok(&m, &a, &o);
	check_structure(&f, "message/rfc822");
	assert_true(has_line(&f, "Subject: Undelivered Mail Returned to Sender"));
	assert_true(has_line(&f, "Action: failed"));
	assert_true(has_line(&f, "Action: delayed"));
	assert_true(has_line(&f, "Status: 4.0.0"));
	assert_true(has_line(&f, "Will-Retry-Until: Sun, 19 Nov 2023 22:13:20 +0000"));
	free(f.p);

	/* only the delay: a delay notice with headers only */
	r[0].notify = SMTP_NOTIFY_NEVER;
	f = build_ok(&m, &a, &o);
	check_structure(&f, "text/rfc822-headers");
	assert_true(has_line(&f, "Subject: Delayed Mail (still being retried)"));
	assert_null(strstr(f.p, "body line one"));
	free(f.p);

	/* success notices */
	r[1].action = BOUNCE_DELIVERED;
	r[1].notify = SMTP_NOTIFY_SUCCESS;
	r[1].status = SLICE_NULL;
	f = build_ok(&m, &a, &o);
	assert_true(has_line(&f, "Subject: Successful Mail Delivery Report"));
	assert_true(has_line(&f, "Status: 2.0.0"));
	free(f.p);
	r[1].action = BOUNCE_RELAYED;
	f = build_ok(&m, &a, &o);
	assert_true(has_line(&f, "Subject: Relayed Mail Delivery Report"));
	assert_true(has_line(&f, "Action: relayed"));
	free(f.p);
	arena_free(&a);
}

static void test_ret_hdrs_and_large(void **st)
{
	(void)st;
	struct arena a;
	struct bounce_out o;
	struct bounce_rcpt r = rcpt_failed("bob@remote.test");
	struct slice orig = slice_make(ORIG, sizeof ORIG - 1);
	struct bounce_msg m = msg_base(&orig, 1, &r, 1);
	size_t hdr_len = (size_t)(strstr(ORIG, "\r\n\r\n") - ORIG) + 4;

	arena_init(&a, &rm_alloc_libc, 4096, 1 << 20);
	m.ret = SMTP_RET_HDRS;
	struct flat f = build_ok(&m, &a, &o);
	check_structure(&f, "text/rfc822-headers");
	assert_false(o.full);
	assert_true(has_line(&f, "Subject: hello"));
	assert_null(strstr(f.p, "body line"));
	assert_non_null(memmem(f.p, f.len, ORIG, hdr_len));
	free(f.p);

	/* RET=FULL but over the limit: headers only */
	m.ret = SMTP_RET_FULL;
	m.full_limit = sizeof ORIG - 2;
	f = build_ok(&m, &a, &o);
	check_structure(&f, "text/rfc822-headers");
	assert_null(strstr(f.p, "body line"));
	free(f.p);
	m.full_limit = sizeof ORIG - 1;
	f = build_ok(&m, &a, &o);
	check_structure(&f, "message/rfc822");
	assert_non_null(strstr(f.p, "body line two"));
	free(f.p);

	/* a header section larger than the limit is cut at a line end */
	m.full_limit = 50;
	f = build_ok(&m, &a, &o);
	check_structure(&f, "text/rfc822-headers");
	assert_non_null(strstr(f.p, "From: Alice"));
	assert_null(strstr(f.p, "Subject: hello"));
	free(f.p);
	arena_free(&a);
}

static void test_orcpt_envid(void **st)
{
	(void)st;
	struct arena a;
	struct bounce_out o;
	struct bounce_rcpt r = rcpt_failed("bob@remote.test");
	struct slice orig = slice_make(ORIG, sizeof ORIG - 1);
	struct bounce_msg m = msg_base(&orig, 1, &r, 1);

	r.orcpt = SLICE_LIT("rfc822;Bob+2Bsales@remote.test");
	m.envid = SLICE_LIT("QQ+2B314159");
	arena_init(&a, &rm_alloc_libc, 4096, 1 << 20);
	struct flat f = build_ok(&m, &a, &o);
	check_structure(&f, "message/rfc822");
	assert_true(has_line(&f, "Original-Envelope-Id: QQ+314159"));
	assert_true(has_line(&f, "Original-Recipient: rfc822; Bob+sales@remote.test"));
	/* Original-Recipient comes before Final-Recipient in the block */
	assert_true(strstr(f.p, "Original-Recipient:") < strstr(f.p, "Final-Recipient:"));
	free(f.p);

	/* a utf-8 ORCPT (RFC 6533) is reported in utf-8-addr-xtext form */
	r.orcpt = SLICE_LIT("utf-8;j\xc3\xb6rg@remote.test");
	f = build_ok(&m, &a, &o);
	check_structure(&f, "message/rfc822");
	assert_true(has_line(&f, "Original-Recipient: utf-8; j\\x{F6}rg@remote.test"));
	free(f.p);
	arena_free(&a);
}

static void test_hostile_reply(void **st)
{
	(void)st;
	struct arena a;
	struct bounce_out o;
	struct bounce_rcpt r = rcpt_failed("bob@remote.test");
	struct slice orig = slice_make(ORIG, sizeof ORIG - 1);
	struct bounce_msg m = msg_base(&orig, 1, &r, 1);
	char diag[3200];

	/* CR, LF, NUL, DEL and an injected header, then a 3000-octet word */
	static const char head[] = "550 5.1.1 no\r\nBcc: victim@evil.test\r\x00\x7f\n\r\nx";
	memcpy(diag, head, sizeof head - 1);
	memset(diag + sizeof head - 1, 'A', 3000);
	memcpy(diag + sizeof head - 1 + 3000, " tail\xff", 6);
	r.diag = slice_make(diag, sizeof head - 1 + 3006);
	r.remote_mta = SLICE_LIT("mx\r\nX-Evil: 1");
	arena_init(&a, &rm_alloc_libc, 4096, 1 << 20);
	struct flat f = build_ok(&m, &a, &o);
	check_structure(&f, "message/rfc822");
	assert_null(strstr(f.p, "\nBcc:"));
	assert_null(strstr(f.p, "\nX-Evil"));
	assert_non_null(strstr(f.p, "Diagnostic-Code: smtp; 550 5.1.1 no Bcc: victim@evil.test\r\n xAAAA"));
	assert_non_null(strstr(f.p, "Remote-MTA: dns; mx X-Evil: 1\r\n"));
	/* the long word is cut and folded: unfolding gives it back with one SP */
	assert_non_null(strstr(f.p, " tail?\r\n"));
	free(f.p);
	arena_free(&a);
}

static void test_utf8_recipient(void **st)
{
	(void)st;
	struct arena a;
	struct bounce_out o;
	struct bounce_rcpt r = rcpt_failed("\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.test");
	struct slice orig = slice_make(ORIG, sizeof ORIG - 1);
	struct bounce_msg m = msg_base(&orig, 1, &r, 1);

	arena_init(&a, &rm_alloc_libc, 4096, 1 << 20);
	struct flat f = build_ok(&m, &a, &o);
	check_structure(&f, "message/rfc822"); /* also: the report is ASCII */
	assert_true(has_line(&f, "Final-Recipient: utf-8; \\x{7528}\\x{6237}@\\x{4F8B}\\x{5B50}.test"));
	free(f.p);
	/* broken UTF-8 and an ASCII "+" or "=" in a utf-8 address are escaped */
	r.addr = SLICE_LIT("a+b=\xff@x.test");
	f = build_ok(&m, &a, &o);
	check_structure(&f, "message/rfc822");
	assert_true(has_line(&f, "Final-Recipient: utf-8; a\\x{2B}b\\x{3D}\\x{FFFD}@x.test"));
	free(f.p);
	arena_free(&a);
}

/* Split-point test: the original in two guarded pieces gives the same
 * report as whole, including its repairs. */
struct split_ctx {
	const char *orig;
	size_t n;
	enum smtp_ret ret;
	struct flat whole;
	const char *must; /* a string the report must hold */
};

static void run_split(struct split_ctx *c)
{
	struct bounce_rcpt r = rcpt_failed("bob@remote.test");
	struct arena a;
	struct bounce_out o;

	arena_init(&a, &rm_alloc_libc, 4096, 1 << 22);
	for (size_t k = 0; k <= c->n; k++) {
		struct guarded g1 = guard_copy(c->orig, k);
		struct guarded g2 = guard_copy(c->orig + k, c->n - k);
		struct slice s[2] = { slice_make(g1.ptr, k), slice_make(g2.ptr, c->n - k) };
		struct bounce_msg m = msg_base(s, 2, &r, 1);
		m.ret = c->ret;
		struct flat f = build_ok(&m, &a, &o);
		check_lines(&f);
		if (k == 0) {
			c->whole = f;
			if (c->must)
				assert_non_null(strstr(f.p, c->must));
		} else {
			assert_int_equal(f.len, c->whole.len);
			assert_memory_equal(f.p, c->whole.p, f.len);
			free(f.p);
		}
		guard_free(&g1);
		guard_free(&g2);
		arena_reset(&a);
	}
	free(c->whole.p);
	arena_free(&a);
}

static void test_split_every_byte(void **st)
{
	(void)st;
	static const char ugly[] = "Subject: bare\nX-CR: a\rb\r\n\r\nline\n\rend\r";
	char longhdr[2400];
	struct split_ctx c;

	memset(&c, 0, sizeof c);
	c.orig = ORIG;
	c.n = sizeof ORIG - 1;
	c.must = ORIG;
	run_split(&c);
	c.ret = SMTP_RET_HDRS;
	c.must = "Subject: hello\r\n\r\n";
	run_split(&c);

	/* bare LF -> CRLF, bare CR -> SP, a CR at the end ends the line */
	c.orig = ugly;
	c.n = sizeof ugly - 1;
	c.ret = SMTP_RET_FULL;
	c.must = "Subject: bare\r\nX-CR: a b\r\n\r\nline\r\n end\r\n\r\n--";
	run_split(&c);

	/* a 2000-octet header line is folded, a 2000-octet body line broken */
	memcpy(longhdr, "X-Long: ", 8);
	memset(longhdr + 8, 'h', 2000);
	memcpy(longhdr + 2008, "\r\n\r\n", 4);
	memset(longhdr + 2012, 'b', 300);
	memcpy(longhdr + 2312, "\r\n", 2);
	c.orig = longhdr;
	c.n = 2314;
	c.must = "hhhh\r\n hhhh";
	run_split(&c);

	/* a bare CR at octet 998 of a line: the SP it becomes starts a fold */
	memcpy(longhdr, "X: ", 3);
	memset(longhdr + 3, 'h', 995);
	memcpy(longhdr + 998, "\rz\r\n\r\nbody\r\n", 12);
	c.n = 1010;
	c.must = "hhh\r\n  z\r\n\r\nbody\r\n";
	run_split(&c);
}

static void test_boundary_collision(void **st)
{
	(void)st;
	struct arena a;
	struct bounce_out o;
	struct bounce_rcpt r = rcpt_failed("bob@remote.test");
	struct slice orig = slice_make(ORIG, sizeof ORIG - 1);
	struct bounce_msg m = msg_base(&orig, 1, &r, 1);
	char b[80], evil[512];

	arena_init(&a, &rm_alloc_libc, 4096, 1 << 20);
	struct flat f = build_ok(&m, &a, &o);
	boundary_of(&f, b, sizeof b);
	free(f.p);
	/* an original that holds the boundary we would pick gets another */
	int n = snprintf(evil, sizeof evil, "Subject: x\r\n\r\n--%s\r\n--%s--\r\n", b, b);
	orig = slice_make(evil, (size_t)n);
	f = build_ok(&m, &a, &o);
	check_structure(&f, "message/rfc822");
	char b2[80];
	boundary_of(&f, b2, sizeof b2);
	assert_string_not_equal(b, b2);
	assert_non_null(strstr(f.p, evil));
	free(f.p);
	arena_free(&a);
}

static void test_status_and_oom(void **st)
{
	(void)st;
	char s[BOUNCE_STATUS_LEN];
	unsigned e511[3] = { 5, 1, 1 }, e421[3] = { 4, 2, 1 }, e250[3] = { 2, 0, 0 },
		 big[3] = { 5, 999, 999 };

	bounce_status(BOUNCE_FAILED, true, e511, s);
	assert_string_equal(s, "5.1.1");
	bounce_status(BOUNCE_FAILED, false, e511, s);
	assert_string_equal(s, "5.0.0");
	bounce_status(BOUNCE_FAILED, true, e421, s); /* e.g. expired after 4xx */
	assert_string_equal(s, "4.2.1");
	bounce_status(BOUNCE_DELAYED, true, e511, s);
	assert_string_equal(s, "4.0.0");
	bounce_status(BOUNCE_DELAYED, true, e421, s);
	assert_string_equal(s, "4.2.1");
	bounce_status(BOUNCE_DELIVERED, true, e250, s);
	assert_string_equal(s, "2.0.0");
	bounce_status(BOUNCE_FAILED, true, big, s);
	assert_string_equal(s, "5.999.999");

	/* a malformed given status falls back to the default */
	struct bounce_rcpt r = rcpt_failed("bob@remote.test");
	struct slice orig = slice_make(ORIG, sizeof ORIG - 1);
	struct bounce_msg m = msg_base(&orig, 1, &r, 1);
	struct arena a;
	struct bounce_out o;
	arena_init(&a, &rm_alloc_libc, 4096, 1 << 20);
	r.status = SLICE_LIT("5.1.1\r\nX: y");
	struct flat f = build_ok(&m, &a, &o);
	assert_true(has_line(&f, "Status: 5.0.0"));
	free(f.p);
	arena_free(&a);

	/* every arena limit is a clean RM_ENOMEM or a whole report */
	for (size_t lim = 64; lim < 16384; lim += 64) {
		arena_init(&a, &rm_alloc_libc, 64, lim);
		int rc = bounce_build(&m, &a, &o);
		assert_true(rc == RM_OK || rc == RM_ENOMEM);
		if (rc == RM_OK) {
			f = flatten(&o);
			check_lines(&f);
			free(f.p);
		}
		arena_free(&a);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_failure),
		cmocka_unit_test(test_select_rules),
		cmocka_unit_test(test_no_report),
		cmocka_unit_test(test_mixed_failed_delayed),
		cmocka_unit_test(test_ret_hdrs_and_large),
		cmocka_unit_test(test_orcpt_envid),
		cmocka_unit_test(test_hostile_reply),
		cmocka_unit_test(test_utf8_recipient),
		cmocka_unit_test(test_split_every_byte),
		cmocka_unit_test(test_boundary_collision),
		cmocka_unit_test(test_status_and_oom),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
