/* test_smtp_addr.c - paths, domains, address literals, UTF-8, ESMTP
 * parameters, xtext. Every input is parsed from guarded memory (ending right
 * before a PROT_NONE page), and so is every prefix of it. */
#include "tests/unit/harness.h"

#include <stdio.h>
#include <string.h>

#include "core/smtp_addr.h"

#define F_NULL 1u
#define F_UTF8 2u
#define F_LIT 4u
#define F_PM 8u

struct path_case {
	const char *in;
	bool allow_null;
	enum smtp_addr_err err;
	const char *local;  /* when OK */
	const char *domain; /* when OK */
	unsigned flags;
	const char *rest;
};

#define M_OK(i, l, d, f, r) { i, true, SMTP_ADDR_OK, l, d, f, r }
#define R_OK(i, l, d, f, r) { i, false, SMTP_ADDR_OK, l, d, f, r }
#define M_BAD(i, e) { i, true, SMTP_ADDR_##e, NULL, NULL, 0, NULL }
#define R_BAD(i, e) { i, false, SMTP_ADDR_##e, NULL, NULL, 0, NULL }

static const struct path_case path_cases[] = {
	M_OK("<a@b.example>", "a", "b.example", 0, ""),
	M_OK(" <a@b.example>", "a", "b.example", 0, ""),
	M_OK("<A@B.EXAMPLE>", "A", "B.EXAMPLE", 0, ""),
	M_OK("<first.last@example.com>", "first.last", "example.com", 0, ""),
	M_OK("<user+tag@example.com>", "user+tag", "example.com", 0, ""),
	M_OK("<bounce-1234@mail.example.com>", "bounce-1234", "mail.example.com", 0, ""),
	M_OK("<!#$%&'*+-/=?^_`{|}~@x>", "!#$%&'*+-/=?^_`{|}~", "x", 0, ""),
	M_OK("<a.b.c.d@x>", "a.b.c.d", "x", 0, ""),
	M_OK("<1@2>", "1", "2", 0, ""),
	M_OK("<\"quoted\"@example.com>", "\"quoted\"", "example.com", 0, ""),
	M_OK("<\"a b\"@x>", "\"a b\"", "x", 0, ""),
	M_OK("<\"a\\\"b\"@x>", "\"a\\\"b\"", "x", 0, ""),
	M_OK("<\"a\\\\\"@x>", "\"a\\\\\"", "x", 0, ""),
	M_OK("<\"\\ \"@x>", "\"\\ \"", "x", 0, ""),
	M_OK("<\"\"@x>", "\"\"", "x", 0, ""),
	M_OK("<\"a@b\"@x>", "\"a@b\"", "x", 0, ""),
	M_OK("<\"a.>.<\"@x>", "\"a.>.<\"", "x", 0, ""),
	M_OK("<\"~!#\"@x>", "\"~!#\"", "x", 0, ""),
	M_OK("<@relay1.example,@relay2.example:user@example.com>", "user", "example.com", 0, ""),
	M_OK("<@a:u@b>", "u", "b", 0, ""),
	M_OK("<@a,@b,@c:u@d>", "u", "d", 0, ""),
	M_OK("<@r\xc3\xa9lay:u@d>", "u", "d", 0, ""), /* a U-label in the route, dropped */
	M_OK("<a@[192.0.2.1]>", "a", "[192.0.2.1]", F_LIT, ""),
	M_OK("<a@[IPv6:2001:db8::1]>", "a", "[IPv6:2001:db8::1]", F_LIT, ""),
	M_OK("<a@[ipv6:::1]>", "a", "[ipv6:::1]", F_LIT, ""),
	M_OK("<a@[tag:stuff]>", "a", "[tag:stuff]", F_LIT, ""),
	M_OK("<a@[x:a@b]>", "a", "[x:a@b]", F_LIT, ""),
	M_OK("<\xc3\xbcser@ex\xc3\xa4mple.de>", "\xc3\xbcser", "ex\xc3\xa4mple.de", F_UTF8, ""),
	M_OK("<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\x85\xac\xe5\x8f\xb8>",
	     "\xe7\x94\xa8\xe6\x88\xb7", "\xe4\xbe\x8b\xe5\xad\x90.\xe5\x85\xac\xe5\x8f\xb8", F_UTF8, ""),
	M_OK("<\"\xc3\xbc\"@x>", "\"\xc3\xbc\"", "x", F_UTF8, ""),
	M_OK("<a@\xf0\x9f\x98\x80.example>", "a", "\xf0\x9f\x98\x80.example", F_UTF8, ""),
	M_OK("<\xf4\x8f\xbf\xbf@x>", "\xf4\x8f\xbf\xbf", "x", F_UTF8, ""),
	M_OK("<a@b> ", "a", "b", 0, " "),
	M_OK("<a@b> SIZE=100", "a", "b", 0, " SIZE=100"),
	M_OK(" <a@b> BODY=8BITMIME x", "a", "b", 0, " BODY=8BITMIME x"),
	M_OK("<a@xn--bcher-kva.example>", "a", "xn--bcher-kva.example", 0, ""),
	M_OK("<a@a-b-c.d1>", "a", "a-b-c.d1", 0, ""),
	M_OK("<>", "", "", F_NULL, ""),
	M_OK(" <>", "", "", F_NULL, ""),
	M_OK("<> SIZE=1", "", "", F_NULL, " SIZE=1"),
	R_OK("<Postmaster>", "Postmaster", "", F_PM, ""),
	R_OK("<postmaster>", "postmaster", "", F_PM, ""),
	R_OK("<POSTMASTER> NOTIFY=NEVER", "POSTMASTER", "", F_PM, " NOTIFY=NEVER"),
	R_OK("<Postmaster@example.com>", "Postmaster", "example.com", 0, ""),
	R_OK("<rcpt1@sink.test>", "rcpt1", "sink.test", 0, ""),
	/* not a path */
	M_BAD("", SYNTAX),
	M_BAD(" ", SYNTAX),
	M_BAD("a@b", SYNTAX),
	M_BAD("  <a@b>", SYNTAX),
	M_BAD("\t<a@b>", SYNTAX),
	M_BAD("<", SYNTAX),
	M_BAD("<a@b", SYNTAX),
	M_BAD("<a@b>x", SYNTAX),
	M_BAD("<a@b>\tSIZE=1", SYNTAX),
	M_BAD("<a@b>>", SYNTAX),
	M_BAD("<<a@b>>", SYNTAX),
	M_BAD("<>x", SYNTAX),
	M_BAD("<>>", SYNTAX),
	M_BAD("< a@b>", SYNTAX),
	M_BAD("<a@b >", SYNTAX),
	M_BAD("<a @b>", SYNTAX),
	M_BAD("<a@ b>", SYNTAX),
	/* local-part */
	M_BAD("<a>", SYNTAX),
	M_BAD("<Postmaster>", SYNTAX), /* only a forward-path */
	M_BAD("<@b>", SYNTAX),
	M_BAD("<a@b@c>", SYNTAX),
	M_BAD("<a..b@c>", SYNTAX),
	M_BAD("<.a@c>", SYNTAX),
	M_BAD("<a.@c>", SYNTAX),
	M_BAD("<a b@c>", SYNTAX),
	M_BAD("<a(comment)@b>", SYNTAX),
	M_BAD("<a,b@c>", SYNTAX),
	M_BAD("<a;b@c>", SYNTAX),
	M_BAD("<a:b@c>", SYNTAX),
	M_BAD("<a[b@c>", SYNTAX),
	M_BAD("<a\\b@c>", SYNTAX),
	M_BAD("<\"a@c>", SYNTAX),
	M_BAD("<\"a\"b@c>", SYNTAX),
	M_BAD("<a\"b\"@c>", SYNTAX),
	M_BAD("<\"a\\\x01\"@c>", SYNTAX),
	M_BAD("<\"a\\\xc3\xbc\"@c>", SYNTAX),
	M_BAD("<\"a\\\xb1\"@c>", SYNTAX), /* quoted-pair takes ASCII only */
	M_BAD("<\"\\\xff\"@c>", SYNTAX),
	M_BAD("<\"a\x7f\"@c>", SYNTAX),
	M_BAD("<\"a\tb\"@c>", SYNTAX),
	M_BAD("<\"a\\\"@c>", SYNTAX),
	M_BAD("<\"a\".b@c>", SYNTAX),
	M_BAD("<a\x7f@c>", SYNTAX),
	M_BAD("<\xc0\xaf@b>", SYNTAX),          /* overlong */
	M_BAD("<\xe0\x80\xaf@b>", SYNTAX),      /* overlong */
	M_BAD("<\xf0\x80\x80\xaf@b>", SYNTAX),  /* overlong */
	M_BAD("<\xed\xa0\x80@b>", SYNTAX),      /* surrogate */
	M_BAD("<\xf4\x90\x80\x80@b>", SYNTAX),  /* past U+10FFFF */
	M_BAD("<\xf5\x80\x80\x80@b>", SYNTAX),
	M_BAD("<\xff@b>", SYNTAX),
	M_BAD("<\x80@b>", SYNTAX),              /* lone continuation */
	M_BAD("<\xc3@b>", SYNTAX),              /* truncated */
	M_BAD("<\xe4\xbe@b>", SYNTAX),          /* truncated */
	M_BAD("<\"\xff\"@b>", SYNTAX),
	M_BAD("<\"\xc3\"@b>", SYNTAX),
	/* domain */
	M_BAD("<a@>", SYNTAX),
	M_BAD("<a@b.>", SYNTAX),
	M_BAD("<a@.b>", SYNTAX),
	M_BAD("<a@b..c>", SYNTAX),
	M_BAD("<a@-b>", SYNTAX),
	M_BAD("<a@b->", SYNTAX),
	M_BAD("<a@b-.c>", SYNTAX),
	M_BAD("<a@b_c>", SYNTAX),
	M_BAD("<a@\xed\xa0\x80.x>", SYNTAX),
	M_BAD("<a@\xc3\xa4->", SYNTAX),
	M_BAD("<a@[1.2.3.4>", SYNTAX),
	M_BAD("<a@[1.2.3.4]x>", SYNTAX),
	M_BAD("<a@[1.2.3.4]", SYNTAX),
	M_BAD("<a@[]>", SYNTAX),
	M_BAD("<a@[256.1.1.1]>", SYNTAX),
	M_BAD("<a@[IPv6:1:2:3]>", SYNTAX),
	M_BAD("<a@[foo]>", SYNTAX),
	M_BAD("<a@b.[1.2.3.4]>", SYNTAX),
	/* source route */
	M_BAD("<@a,b:u@c>", SYNTAX),
	M_BAD("<@a:>", SYNTAX),
	M_BAD("<@:u@b>", SYNTAX),
	M_BAD("<@a,:u@b>", SYNTAX),
	M_BAD("<@a;u@b>", SYNTAX),
	M_BAD("<@[1.2.3.4]:u@b>", SYNTAX),
	M_BAD("<@a.:u@b>", SYNTAX),
	M_BAD("<@a::u@b>", SYNTAX),
	M_BAD("<@a:<u@b>>", SYNTAX),
	R_BAD("<@a:Postmaster>", SYNTAX),
	R_BAD("<\"Postmaster\">", SYNTAX),
	R_BAD("<Postmaster.x>", SYNTAX),
	R_BAD("<Postmaste>", SYNTAX),
	/* control bytes (a NUL: test_path_nul) */
	M_BAD("<a@b\r>", SYNTAX),
	M_BAD("<a\r\n@b>", SYNTAX),
	/* the null path */
	R_BAD("<>", NULL_RCPT),
	R_BAD(" <>", NULL_RCPT),
	R_BAD("<> NOTIFY=NEVER", NULL_RCPT),
	R_BAD("<>x", SYNTAX),
	/* 16 octets and more: the block-wise path check, and its edges */
	M_OK("<abcde@fghij.kl>", "abcde", "fghij.kl", 0, ""),
	M_OK("<first.last@mail.example.com>", "first.last", "mail.example.com", 0, ""),
	M_OK("<first@ma-il.exa--mple.com> SIZE=1", "first", "ma-il.exa--mple.com", 0, " SIZE=1"),
	M_OK("<a.b-c+d_e=f@0.example-1.org>", "a.b-c+d_e=f", "0.example-1.org", 0, ""),
	M_OK("<postmaster@example.example.org>", "postmaster", "example.example.org", 0, ""),
	R_OK("<Postmaster> NOTIFY=NEVER", "Postmaster", "", F_PM, " NOTIFY=NEVER"),
	M_BAD("<.first@mail.example.com>", SYNTAX),
	M_BAD("<first.@mail.example.com>", SYNTAX),
	M_BAD("<fi..rst@mail.example.com>", SYNTAX),
	M_BAD("<first@-mail.example.com>", SYNTAX),
	M_BAD("<first@mail-.example.com>", SYNTAX),
	M_BAD("<first@mail.-example.com>", SYNTAX),
	M_BAD("<first@mail.example.com->", SYNTAX),
	M_BAD("<first@mail..example.com>", SYNTAX),
	M_BAD("<first@.mail.example.com>", SYNTAX),
	M_BAD("<first@mail.example.com.>", SYNTAX),
	M_BAD("<first@mail.exa_mple.com>", SYNTAX),
	M_BAD("<fir\"st@mail.example.com>", SYNTAX),
	M_BAD("<first@@mail.example.com>", SYNTAX),
	M_BAD("<first@mail.example.com>x", SYNTAX),
	M_BAD("<first@mail.example.com>>", SYNTAX),
	M_BAD("<first@mail.example.com", SYNTAX),
	M_BAD("<first mail.example.com>", SYNTAX),
	M_BAD("<first@mail.example.com\x7f>", SYNTAX),
	M_BAD("<first\x7f@mail.example.com>", SYNTAX),
	M_BAD("<first@mail.example.com\xc3>", SYNTAX),
	M_OK("<first@mail.ex\xc3\xa4mple.com>", "first", "mail.ex\xc3\xa4mple.com", F_UTF8, ""),
	M_OK("<abcdefghijklmnopqrstuvwxyz.ABCDEFGHIJKLMNOPQRSTUVWXYZ.0123456789@x>",
	     "abcdefghijklmnopqrstuvwxyz.ABCDEFGHIJKLMNOPQRSTUVWXYZ.0123456789", "x", 0, ""),
	M_OK("<x@abcdefghijklmnopqrstuvwxyz.abcdefghijklmnopqrstuvwxyz.a0123456789>", "x",
	     "abcdefghijklmnopqrstuvwxyz.abcdefghijklmnopqrstuvwxyz.a0123456789", 0, ""),
};

/* inside - is s a slice of [base, base+n) (an empty slice may sit at its end) */
static bool inside(struct slice s, const char *base, size_t n)
{
	if (s.len == 0)
		return s.ptr == NULL || (s.ptr >= base && s.ptr <= base + n);
	return s.ptr >= base && s.ptr + s.len <= base + n;
}

/* eq_str - slice equals a C string */
static bool eq_str(struct slice s, const char *c)
{
	return slice_eq(s, slice_cstr(c));
}

/* path_check_ok - the invariants of an accepted path over input g */
static void path_check_ok(const struct guarded *g, const struct smtp_path *p, struct slice rest)
{
	assert_true(inside(p->mailbox, g->ptr, g->len));
	assert_true(inside(p->local, g->ptr, g->len));
	assert_true(inside(p->domain, g->ptr, g->len));
	assert_true(inside(rest, g->ptr, g->len));
	assert_true(rest.ptr + rest.len == g->ptr + g->len);
	assert_true(rest.len == 0 || rest.ptr[0] == ' ');
	assert_true(p->local.len <= SMTP_LOCAL_MAX);
	assert_true(p->domain.len <= SMTP_DOMAIN_MAX);
	if (p->null) {
		assert_int_equal(p->mailbox.len, 0);
		return;
	}
	if (p->postmaster) {
		assert_true(slice_eq(p->mailbox, p->local));
		assert_int_equal(p->domain.len, 0);
		return;
	}
	/* mailbox = local "@" domain, all of it one stretch of the input */
	assert_true(p->mailbox.ptr == p->local.ptr);
	assert_int_equal(p->mailbox.len, p->local.len + 1 + p->domain.len);
	assert_int_equal(p->local.ptr[p->local.len], '@');
	assert_true(p->domain.ptr == p->local.ptr + p->local.len + 1);
	assert_true(smtp_domain_valid(p->domain, true));
	assert_int_equal(p->literal, p->domain.ptr[0] == '[');
	assert_true(slice_eq(smtp_mailbox_domain(p->mailbox), p->domain));
}

/* path_run - parse in[0..n) from guarded memory; check invariants when OK */
static enum smtp_addr_err path_run(const char *in, size_t n, bool allow_null, struct smtp_path *out,
				   char *local, char *domain, char *rest)
{
	struct guarded g = guard_copy(in, n);
	struct slice r;
	enum smtp_addr_err e = smtp_path_parse(slice_make(g.ptr, g.len), allow_null, out, &r);

	if (e == SMTP_ADDR_OK) {
		path_check_ok(&g, out, r);
		if (local) {
			snprintf(local, 512, "%.*s", (int)out->local.len, out->local.ptr);
			snprintf(domain, 512, "%.*s", (int)out->domain.len, out->domain.ptr);
			snprintf(rest, 512, "%.*s", (int)r.len, r.ptr);
		}
	}
	guard_free(&g);
	return e;
}

static void test_path_table(void **st)
{
	(void)st;
	for (size_t i = 0; i < sizeof path_cases / sizeof path_cases[0]; i++) {
		const struct path_case *c = &path_cases[i];
		size_t n = strlen(c->in);
		struct smtp_path p;
		char local[512], domain[512], rest[512];
		enum smtp_addr_err e;

		e = path_run(c->in, n, c->allow_null, &p, local, domain, rest);
		if (e != c->err)
			fail_msg("case %zu \"%s\": err %d, want %d", i, c->in, e, c->err);
		if (e != SMTP_ADDR_OK)
			continue;
		if (strcmp(local, c->local) || strcmp(domain, c->domain) || strcmp(rest, c->rest))
			fail_msg("case %zu \"%s\": local \"%s\" domain \"%s\" rest \"%s\"", i, c->in, local,
				 domain, rest);
		assert_int_equal(p.null, !!(c->flags & F_NULL));
		assert_int_equal(p.utf8, !!(c->flags & F_UTF8));
		assert_int_equal(p.literal, !!(c->flags & F_LIT));
		assert_int_equal(p.postmaster, !!(c->flags & F_PM));
		/* an ordinary mailbox is the same as a reverse- or forward-path */
		if (!(c->flags & (F_NULL | F_PM))) {
			struct smtp_path q;
			assert_int_equal(path_run(c->in, n, !c->allow_null, &q, NULL, NULL, NULL),
					 SMTP_ADDR_OK);
		}
	}
}

/* NUL bytes anywhere in a path are refused. */
static void test_path_nul(void **st)
{
	(void)st;
	static const char good[] = "<a.b@c.example> SIZE=1";
	struct smtp_path p;
	char buf[sizeof good];

	for (size_t k = 0; k < sizeof good - 1; k++) {
		memcpy(buf, good, sizeof good);
		buf[k] = '\0';
		enum smtp_addr_err e = path_run(buf, sizeof good - 1, true, &p, NULL, NULL, NULL);
		if (k < 15) /* inside the path */
			assert_int_equal(e, SMTP_ADDR_SYNTAX);
		else /* in the parameters: the path parser leaves them alone */
			assert_int_equal(e, k == 15 ? SMTP_ADDR_SYNTAX : SMTP_ADDR_OK);
	}
}

/* Every prefix of every case parses or fails cleanly from guarded memory;
 * a prefix of an accepted path that stops before its ">" is refused. */
static void test_path_prefixes(void **st)
{
	(void)st;
	for (size_t i = 0; i < sizeof path_cases / sizeof path_cases[0]; i++) {
		const struct path_case *c = &path_cases[i];
		size_t n = strlen(c->in);
		const char *close = c->err == SMTP_ADDR_OK ? strrchr(c->in, '>') : NULL;
		if (close && c->rest[0]) /* the path's own ">" is before the rest */
			close = c->in + n - strlen(c->rest) - 1;
		for (size_t k = 0; k < n; k++) {
			struct smtp_path p;
			enum smtp_addr_err e = path_run(c->in, k, c->allow_null, &p, NULL, NULL, NULL);
			assert_true(e <= SMTP_ADDR_NULL_RCPT);
			if (close && k <= (size_t)(close - c->in))
				assert_int_equal(e, SMTP_ADDR_SYNTAX);
		}
	}
}

/* fill - n copies of ch followed by a NUL */
static char *fill(char *p, char ch, size_t n)
{
	memset(p, ch, n);
	p[n] = '\0';
	return p + n;
}

/* The limits of RFC 5321 §4.5.3.1: at the limit accepted, past it TOO_LONG. */
static void test_path_limits(void **st)
{
	(void)st;
	char buf[1024], *p;
	struct smtp_path path;

	/* local-part 64 / 65 */
	for (size_t local = 63; local <= 66; local++) {
		p = buf;
		*p++ = '<';
		p = fill(p, 'l', local);
		strcpy(p, "@example.com>");
		assert_int_equal(path_run(buf, strlen(buf), true, &path, NULL, NULL, NULL),
				 local <= 64 ? SMTP_ADDR_OK : SMTP_ADDR_TOO_LONG);
	}
	/* a quoted local-part counts its quotes */
	p = buf;
	*p++ = '<';
	*p++ = '"';
	p = fill(p, 'q', 63);
	strcpy(p, "\"@x>");
	assert_int_equal(path_run(buf, strlen(buf), true, &path, NULL, NULL, NULL), SMTP_ADDR_TOO_LONG);
	/* whole path 256 / 257: "<a@" + labels + ">" */
	for (size_t total = 255; total <= 258; total++) {
		size_t dom = total - 4;
		p = buf;
		p += sprintf(p, "<a@");
		while (dom > 0) {
			size_t l = dom > 60 ? 50 : dom;
			if (dom - l == 1)
				l--; /* never leave a one-byte tail that cannot hold ".x" */
			p = fill(p, 'd', l);
			dom -= l;
			if (dom) {
				*p++ = '.';
				dom--;
			}
		}
		strcpy(p, ">");
		assert_int_equal(strlen(buf), total);
		assert_int_equal(path_run(buf, strlen(buf), true, &path, NULL, NULL, NULL),
				 total <= SMTP_PATH_MAX ? SMTP_ADDR_OK : SMTP_ADDR_TOO_LONG);
	}
	/* the source route counts toward the path length */
	p = buf;
	p += sprintf(p, "<@");
	p = fill(p, 'r', 60);
	p += sprintf(p, ",@");
	p = fill(p, 'r', 60);
	p += sprintf(p, ",@");
	p = fill(p, 'r', 60);
	p += sprintf(p, ":");
	p = fill(p, 'l', 64);
	sprintf(p, "@b>");
	assert_int_equal(strlen(buf), 254);
	assert_int_equal(path_run(buf, strlen(buf), true, &path, NULL, NULL, NULL), SMTP_ADDR_OK);
	memmove(buf + 3, buf, strlen(buf) + 1); /* "<@r..." -> "<@a,@r..." */
	memcpy(buf, "<@a,@", 5);
	assert_int_equal(strlen(buf), 257);
	assert_int_equal(path_run(buf, strlen(buf), true, &path, NULL, NULL, NULL), SMTP_ADDR_TOO_LONG);
	/* a label of 63 is fine, 64 is not a label at all */
	p = buf;
	p += sprintf(p, "<a@");
	p = fill(p, 'x', 63);
	strcpy(p, ".example>");
	assert_int_equal(path_run(buf, strlen(buf), true, &path, NULL, NULL, NULL), SMTP_ADDR_OK);
	p = buf;
	p += sprintf(p, "<a@");
	p = fill(p, 'x', 64);
	strcpy(p, ".example>");
	assert_int_equal(path_run(buf, strlen(buf), true, &path, NULL, NULL, NULL), SMTP_ADDR_SYNTAX);
	/* a huge local-part of valid bytes is TOO_LONG, not a crash or SYNTAX */
	p = buf;
	*p++ = '<';
	p = fill(p, 'z', 900);
	strcpy(p, "@b>");
	assert_int_equal(path_run(buf, strlen(buf), true, &path, NULL, NULL, NULL), SMTP_ADDR_TOO_LONG);
}

struct domain_case {
	const char *d;
	bool ascii_ok; /* valid with allow_utf8 false */
	bool utf8_ok;  /* valid with allow_utf8 true */
};

static const struct domain_case domain_cases[] = {
	{ "a", true, true },
	{ "example.com", true, true },
	{ "EXAMPLE.COM", true, true },
	{ "a-b.c", true, true },
	{ "a--b.c", true, true },
	{ "xn--bcher-kva.example", true, true },
	{ "1.2.3.4", true, true },
	{ "123", true, true },
	{ "a1-b2-c3", true, true },
	{ "a.b.c.d.e.f", true, true },
	{ "", false, false },
	{ ".", false, false },
	{ "a.", false, false },
	{ ".a", false, false },
	{ "a..b", false, false },
	{ "-a", false, false },
	{ "a-", false, false },
	{ "a-.b", false, false },
	{ "a.-b", false, false },
	{ "a_b", false, false },
	{ "a b", false, false },
	{ "a\tb", false, false },
	{ "a/b", false, false },
	{ "a@b", false, false },
	{ "a,b", false, false },
	{ "a:b", false, false },
	{ "ex\xc3\xa4mple.de", false, true },
	{ "\xc3\xa4", false, true },
	{ "\xe4\xbe\x8b\xe5\xad\x90.\xe6\xb5\x8b\xe8\xaf\x95", false, true },
	{ "\xef\xbf\xbf.x", false, true },
	{ "\xf0\x90\x80\x80.x", false, true },
	{ "\xf4\x8f\xbf\xbf.x", false, true },
	{ "\xc3\xa4-\xc3\xb6", false, true },
	{ "-\xc3\xa4", false, false },
	{ "\xc3\xa4-", false, false },
	{ "\xc0\xaf.x", false, false },
	{ "\xc1\xbf.x", false, false },
	{ "\xe0\x80\x80.x", false, false },
	{ "\xe0\x9f\xbf.x", false, false },
	{ "\xed\xa0\x80.x", false, false },
	{ "\xed\xbf\xbf.x", false, false },
	{ "\xf0\x8f\xbf\xbf.x", false, false },
	{ "\xf4\x90\x80\x80.x", false, false },
	{ "\xf5\x80\x80\x80.x", false, false },
	{ "\xf8\x88\x80\x80\x80.x", false, false },
	{ "\xc3", false, false },
	{ "\xe4\xbe", false, false },
	{ "\xf0\x9f\x98", false, false },
	{ "\x80x", false, false },
	{ "x\xbf", false, false },
	{ "\xc3\x28", false, false },
	{ "\xe2\x28\xa1", false, false },
	{ "\xe2\x82\x28", false, false },
	{ "\xf0\x28\x8c\xbc", false, false },
	/* address literals: IPv4 */
	{ "[192.0.2.1]", true, true },
	{ "[0.0.0.0]", true, true },
	{ "[255.255.255.255]", true, true },
	{ "[001.002.003.004]", true, true },
	{ "[256.1.1.1]", false, false },
	{ "[1.2.3.256]", false, false },
	{ "[1.2.3]", false, false },
	{ "[1.2.3.4.5]", false, false },
	{ "[1.2.3.]", false, false },
	{ "[.1.2.3]", false, false },
	{ "[1..2.3]", false, false },
	{ "[1234.1.1.1]", false, false },
	{ "[0001.1.1.1]", false, false },
	{ "[ 1.2.3.4]", false, false },
	{ "[1.2.3.4 ]", false, false },
	{ "[-1.2.3.4]", false, false },
	{ "[]", false, false },
	{ "[", false, false },
	{ "[1.2.3.4", false, false },
	{ "[1.2.3.4]]", false, false },
	{ "[1.2.3.4]x", false, false },
	/* IPv6 */
	{ "[IPv6:::1]", true, true },
	{ "[IPv6:::]", true, true },
	{ "[IPv6:1:2:3:4:5:6:7:8]", true, true },
	{ "[IPv6:2001:db8::1]", true, true },
	{ "[IPv6:2001:DB8::]", true, true },
	{ "[IPv6:abcd:ef01:2345:6789:ABCD:EF01:2345:6789]", true, true },
	{ "[IPv6:0:0:0:0:0:0:0:0]", true, true },
	{ "[IPv6:1::2:3:4:5:6]", true, true },
	{ "[IPv6:1:2:3:4:5:6::]", true, true },
	{ "[IPv6:::1:2:3:4:5:6]", true, true },
	{ "[IPv6:1:2:3::4:5:6]", true, true },
	{ "[IPv6:::ffff:192.0.2.1]", true, true },
	{ "[IPv6:::192.0.2.1]", true, true },
	{ "[IPv6:1:2:3:4:5:6:192.0.2.1]", true, true },
	{ "[IPv6:1:2:3:4::192.0.2.1]", true, true },
	{ "[IPv6:1::2:3:4:192.0.2.1]", true, true },
	{ "[ipv6:fe80::1]", true, true },
	{ "[IPV6:fe80::1]", true, true },
	{ "[IPv6:1:2:3:4:5:6:7]", false, false },
	{ "[IPv6:1:2:3:4:5:6:7:8:9]", false, false },
	{ "[IPv6:1::2:3:4:5:6:7]", false, false }, /* "::" is at least two groups */
	{ "[IPv6:1:2:3:4:5:6:7::]", false, false },
	{ "[IPv6:::1:2:3:4:5:6:7]", false, false },
	{ "[IPv6::1]", false, false },
	{ "[IPv6:1:]", false, false },
	{ "[IPv6::]", false, false },
	{ "[IPv6:1:::2]", false, false },
	{ "[IPv6:1::2::3]", false, false },
	{ "[IPv6:::1::]", false, false },
	{ "[IPv6:12345::1]", false, false },
	{ "[IPv6:g::1]", false, false },
	{ "[IPv6:1:2:3:4:5:6:7:192.0.2.1]", false, false },
	{ "[IPv6:1:2:3:4:5::192.0.2.1]", false, false },
	{ "[IPv6:1:2:3:4:5:192.0.2.1]", false, false },
	{ "[IPv6:::192.0.2.256]", false, false },
	{ "[IPv6:::1.2.3]", false, false },
	{ "[IPv6:::1.2.3.4:5]", false, false },
	{ "[IPv6:::1.2.3.4.5]", false, false },
	{ "[IPv6:::1a.2.3.4]", false, false },
	{ "[IPv6:1.2.3.4]", false, false },
	{ "[IPv6:]", false, false },
	{ "[IPv6:::1:]", false, false },
	{ "[IPv6: ::1]", false, false },
	{ "[IPv6:::1 ]", false, false },
	{ "[IPv6:::%eth0]", false, false },
	{ "[IPv6:::1", false, false },
	{ "[IPv4:1.2.3.4]", true, true }, /* a general literal with tag IPv4 */
	/* general literals */
	{ "[tag:stuff]", true, true },
	{ "[x400:c=us;a=att]", true, true },
	{ "[x:a@b]", true, true },
	{ "[a-b:x]", true, true },
	{ "[-a:x]", true, true }, /* Ldh-str may start with "-" */
	{ "[123:x]", true, true },
	{ "[t:!~]", true, true },
	{ "[t:a:b]", true, true },
	{ "[a-:x]", false, false },
	{ "[:x]", false, false },
	{ "[tag:]", false, false },
	{ "[tag]", false, false },
	{ "[foo]", false, false },
	{ "[tag:a b]", false, false },
	{ "[tag:a\\b]", false, false },
	{ "[tag:[x]", false, false },
	{ "[ta_g:x]", false, false },
	{ "[t\xc3\xa4g:x]", false, false },
	{ "[tag:\xc3\xa4]", false, false },
	{ "[tag:\x7f]", false, false },
};

/* domain_valid_guarded - smtp_domain_valid over a guarded copy */
static bool domain_valid_guarded(const char *d, size_t n, bool utf8)
{
	struct guarded g = guard_copy(d, n);
	bool ok = smtp_domain_valid(slice_make(g.ptr, g.len), utf8);
	guard_free(&g);
	return ok;
}

static void test_domains(void **st)
{
	(void)st;
	for (size_t i = 0; i < sizeof domain_cases / sizeof domain_cases[0]; i++) {
		const struct domain_case *c = &domain_cases[i];
		size_t n = strlen(c->d);
		if (domain_valid_guarded(c->d, n, false) != c->ascii_ok ||
		    domain_valid_guarded(c->d, n, true) != c->utf8_ok)
			fail_msg("domain case %zu \"%s\"", i, c->d);
		for (size_t k = 0; k < n; k++) { /* prefixes: no over-read */
			(void)domain_valid_guarded(c->d, k, false);
			(void)domain_valid_guarded(c->d, k, true);
		}
		/* the same domain inside a path */
		if (c->utf8_ok) {
			char buf[600];
			struct smtp_path p;
			snprintf(buf, sizeof buf, "<u@%s>", c->d);
			assert_int_equal(path_run(buf, strlen(buf), true, &p, NULL, NULL, NULL), SMTP_ADDR_OK);
			assert_int_equal(p.utf8, !c->ascii_ok && c->d[0] != '[');
		}
	}
	/* 255 octets is the most a domain may have */
	char d[300];
	size_t n = 0;
	while (n < 255) {
		size_t l = 255 - n >= 50 ? 49 : 255 - n;
		memset(d + n, 'a', l);
		n += l;
		if (n < 255)
			d[n++] = '.';
	}
	assert_true(domain_valid_guarded(d, 255, false));
	d[255] = 'b';
	assert_false(domain_valid_guarded(d, 256, false));
}

/* A path with every valid domain and every UTF-8 byte sequence class, run
 * through smtp_utf8_valid against an independent decoder. */
static void test_utf8(void **st)
{
	(void)st;
	uint64_t seed = 42;
	for (int i = 0; i < 200000; i++) {
		unsigned char b[4];
		size_t n = 1 + test_rand(&seed) % 4;
		for (size_t k = 0; k < n; k++)
			b[k] = (unsigned char)test_rand(&seed);
		if (i & 1) /* bias towards plausible sequences */
			for (size_t k = 1; k < n; k++)
				b[k] = (unsigned char)(0x80 | (b[k] & 0x3f));
		/* reference: decode by the book */
		bool ref;
		uint32_t cp = 0;
		size_t need = 0, k = 0;
		ref = true;
		while (k < n && ref) {
			unsigned char c = b[k];
			if (c < 0x80) {
				k++;
				continue;
			}
			if (c >= 0xC0 && c < 0xE0) {
				need = 1;
				cp = c & 0x1f;
			} else if (c >= 0xE0 && c < 0xF0) {
				need = 2;
				cp = c & 0x0f;
			} else if (c >= 0xF0 && c < 0xF8) {
				need = 3;
				cp = c & 0x07;
			} else {
				ref = false;
				break;
			}
			if (k + need >= n) {
				ref = false;
				break;
			}
			for (size_t j = 1; j <= need; j++) {
				if ((b[k + j] & 0xc0) != 0x80)
					ref = false;
				cp = cp << 6 | (b[k + j] & 0x3f);
			}
			if (ref) {
				uint32_t min = need == 1 ? 0x80 : need == 2 ? 0x800 : 0x10000;
				if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
					ref = false;
			}
			k += need + 1;
		}
		struct guarded g = guard_copy(b, n);
		bool got = smtp_utf8_valid(slice_make(g.ptr, g.len));
		guard_free(&g);
		if (got != ref)
			fail_msg("utf8 %02x %02x %02x %02x (%zu): got %d", b[0], b[1], b[2], b[3], n, got);
	}
}

struct mail_case {
	const char *in;
	enum smtp_addr_err err;
	const char *bad;
	uint64_t size;
	bool has_size;
	enum smtp_body body;
	bool smtputf8;
	enum smtp_ret ret;
	const char *envid;
	const char *auth;
};

#define ENVID100 "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"

static const struct mail_case mail_cases[] = {
	{ .in = "" },
	{ .in = " " },
	{ .in = " SIZE=0", .has_size = true },
	{ .in = " SIZE=10240", .size = 10240, .has_size = true },
	{ .in = " size=1", .size = 1, .has_size = true },
	{ .in = " SiZe=007", .size = 7, .has_size = true },
	{ .in = " SIZE=18446744073709551615", .size = UINT64_MAX, .has_size = true },
	{ .in = " SIZE=18446744073709551616", .size = UINT64_MAX, .has_size = true },
	{ .in = " SIZE=99999999999999999999", .size = UINT64_MAX, .has_size = true },
	{ .in = " SIZE=1844674407370955161", .size = 1844674407370955161ull, .has_size = true },
	{ .in = " BODY=7BIT", .body = SMTP_BODY_7BIT },
	{ .in = " BODY=8bitmime", .body = SMTP_BODY_8BITMIME },
	{ .in = " BODY=8BITMIME", .body = SMTP_BODY_8BITMIME },
	{ .in = " body=BinaryMime", .body = SMTP_BODY_BINARYMIME },
	{ .in = " SMTPUTF8", .smtputf8 = true },
	{ .in = " smtputf8", .smtputf8 = true },
	{ .in = " RET=FULL", .ret = SMTP_RET_FULL },
	{ .in = " ret=hdrs", .ret = SMTP_RET_HDRS },
	{ .in = " ENVID=QQ314159", .envid = "QQ314159" },
	{ .in = " ENVID=a+2Bb+3D", .envid = "a+2Bb+3D" },
	{ .in = " ENVID=a+20b", .envid = "a+20b" },
	{ .in = " ENVID=" ENVID100, .envid = ENVID100 },
	{ .in = " ENVID=<>;:~", .envid = "<>;:~" },
	{ .in = " AUTH=<>", .auth = "<>" },
	{ .in = " AUTH=user+40example.com", .auth = "user+40example.com" },
	{ .in = " SIZE=1 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x AUTH=<>", .size = 1, .has_size = true,
	  .body = SMTP_BODY_8BITMIME, .smtputf8 = true, .ret = SMTP_RET_HDRS, .envid = "x", .auth = "<>" },
	{ .in = " AUTH=a ENVID=b RET=FULL SMTPUTF8 BODY=7BIT SIZE=2", .size = 2, .has_size = true,
	  .body = SMTP_BODY_7BIT, .smtputf8 = true, .ret = SMTP_RET_FULL, .envid = "b", .auth = "a" },
	{ .in = "  SIZE=1   BODY=7BIT  ", .size = 1, .has_size = true, .body = SMTP_BODY_7BIT },
	/* malformed */
	{ .in = "SIZE=1", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "SIZE=1" },
	{ .in = "x SIZE=1", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "x" },
	{ .in = " SIZE", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "SIZE" },
	{ .in = " SIZE=", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "SIZE=" },
	{ .in = " SIZE= 1", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "SIZE=" },
	{ .in = " SIZE=-1", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "SIZE=-1" },
	{ .in = " SIZE=+1", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "SIZE=+1" },
	{ .in = " SIZE=1x", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "SIZE=1x" },
	{ .in = " SIZE=1.5", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "SIZE=1.5" },
	{ .in = " SIZE=123456789012345678901", .err = SMTP_ADDR_PARAM_SYNTAX,
	  .bad = "SIZE=123456789012345678901" },
	{ .in = " SIZE=1=2", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "SIZE=1=2" },
	{ .in = " SIZE=1\t", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "SIZE=1\t" },
	{ .in = " SIZE=1\tBODY=7BIT", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "SIZE=1\tBODY=7BIT" },
	{ .in = " BODY=8BIT", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "BODY=8BIT" },
	{ .in = " BODY=7BITS", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "BODY=7BITS" },
	{ .in = " BODY", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "BODY" },
	{ .in = " SMTPUTF8=yes", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "SMTPUTF8=yes" },
	{ .in = " SMTPUTF8=", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "SMTPUTF8=" },
	{ .in = " RET=NONE", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "RET=NONE" },
	{ .in = " RET", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "RET" },
	{ .in = " ENVID=", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "ENVID=" },
	{ .in = " ENVID", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "ENVID" },
	{ .in = " ENVID=a+2b", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "ENVID=a+2b" },
	{ .in = " ENVID=a+0D", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "ENVID=a+0D" },
	{ .in = " ENVID=a+0A", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "ENVID=a+0A" },
	{ .in = " ENVID=a+7F", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "ENVID=a+7F" },
	{ .in = " ENVID=a+", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "ENVID=a+" },
	{ .in = " ENVID=a+4", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "ENVID=a+4" },
	{ .in = " ENVID=a+GG", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "ENVID=a+GG" },
	{ .in = " ENVID=" ENVID100 "x", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "ENVID=" ENVID100 "x" },
	{ .in = " ENVID=\xc3\xa4", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "ENVID=\xc3\xa4" },
	{ .in = " ENVID=\x01", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "ENVID=\x01" },
	{ .in = " AUTH=", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "AUTH=" },
	{ .in = " AUTH", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "AUTH" },
	{ .in = " AUTH=a+0Db", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "AUTH=a+0Db" },
	{ .in = " AUTH=a b", .err = SMTP_ADDR_PARAM_UNKNOWN, .bad = "b" },
	{ .in = " -X=1", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "-X=1" },
	{ .in = " =1", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "=1" },
	{ .in = " S_ZE=1", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "S_ZE=1" },
	{ .in = " SIZE\xc3\xa4=1", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "SIZE\xc3\xa4=1" },
	{ .in = " FOO=\xc0\xaf", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "FOO=\xc0\xaf" },
	{ .in = " FOO=\x7f", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "FOO=\x7f" },
	/* unknown */
	{ .in = " FOO=1", .err = SMTP_ADDR_PARAM_UNKNOWN, .bad = "FOO=1" },
	{ .in = " FOO=\xc3\xa4", .err = SMTP_ADDR_PARAM_UNKNOWN, .bad = "FOO=\xc3\xa4" },
	{ .in = " X-FOO", .err = SMTP_ADDR_PARAM_UNKNOWN, .bad = "X-FOO" },
	{ .in = " 9", .err = SMTP_ADDR_PARAM_UNKNOWN, .bad = "9" },
	{ .in = " NOTIFY=NEVER", .err = SMTP_ADDR_PARAM_UNKNOWN, .bad = "NOTIFY=NEVER" },
	{ .in = " ORCPT=rfc822;a@b", .err = SMTP_ADDR_PARAM_UNKNOWN, .bad = "ORCPT=rfc822;a@b" },
	{ .in = " SIZES=1", .err = SMTP_ADDR_PARAM_UNKNOWN, .bad = "SIZES=1" },
	{ .in = " SIZE=1 FOO", .err = SMTP_ADDR_PARAM_UNKNOWN, .bad = "FOO" },
	{ .in = " FOO SIZE=x", .err = SMTP_ADDR_PARAM_UNKNOWN, .bad = "FOO" },
	/* duplicates */
	{ .in = " SIZE=1 SIZE=2", .err = SMTP_ADDR_PARAM_DUP, .bad = "SIZE=2" },
	{ .in = " size=1 SIZE=1", .err = SMTP_ADDR_PARAM_DUP, .bad = "SIZE=1" },
	{ .in = " SMTPUTF8 smtputf8", .err = SMTP_ADDR_PARAM_DUP, .bad = "smtputf8" },
	{ .in = " BODY=7BIT BODY=7BIT", .err = SMTP_ADDR_PARAM_DUP, .bad = "BODY=7BIT" },
	{ .in = " RET=FULL RET=HDRS", .err = SMTP_ADDR_PARAM_DUP, .bad = "RET=HDRS" },
	{ .in = " ENVID=a ENVID=b", .err = SMTP_ADDR_PARAM_DUP, .bad = "ENVID=b" },
	{ .in = " AUTH=<> AUTH=<>", .err = SMTP_ADDR_PARAM_DUP, .bad = "AUTH=<>" },
	/* the word-at-a-time keyword and value compares: letters in either
	 * case, every other byte only itself */
	{ .in = " smtputf8 size=1234567890123456789 body=8bitmime ret=full envid=Q auth=x",
	  .size = 1234567890123456789u, .has_size = true, .body = SMTP_BODY_8BITMIME,
	  .smtputf8 = true, .ret = SMTP_RET_FULL, .envid = "Q", .auth = "x" },
	{ .in = " SIZE=12345678901234567890", .size = 12345678901234567890u, .has_size = true },
	{ .in = " SIZE=00000000000000000001", .size = 1, .has_size = true },
	{ .in = " ENVID=QQ314159 BODY=7bit", .envid = "QQ314159", .body = SMTP_BODY_7BIT },
	{ .in = " ENVID=a+41b+2Bc RET=HDRS", .envid = "a+41b+2Bc", .ret = SMTP_RET_HDRS },
	{ .in = " AUTH=user@example.com", .auth = "user@example.com" },
	{ .in = " SIZE\x1d" "10240", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "SIZE\x1d" "10240" },
	{ .in = " BODY=\x17" "BIT 1234", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "BODY=\x17" "BIT" },
	{ .in = " BODY=\x18" "bitmime", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "BODY=\x18" "bitmime" },
	{ .in = " BODY=8BITMIM\x05", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "BODY=8BITMIM\x05" },
	{ .in = " BODY=8BITMIMEX", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "BODY=8BITMIMEX" },
	{ .in = " RET\x1d" "HDRS", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "RET\x1d" "HDRS" },
	{ .in = " RET=HDRSX", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "RET=HDRSX" },
	{ .in = " RET=HDR", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "RET=HDR" },
	{ .in = " ENVID\x1d" "abc", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "ENVID\x1d" "abc" },
	{ .in = " ENVI\x04=abc", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "ENVI\x04=abc" },
	{ .in = " SMTPUTF\x18", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "SMTPUTF\x18" },
	{ .in = " SMTPUTF8X", .err = SMTP_ADDR_PARAM_UNKNOWN, .bad = "SMTPUTF8X" },
	{ .in = " SIZE=10240\x01", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "SIZE=10240\x01" },
	{ .in = " SIZE=10240 SIZE=10240", .err = SMTP_ADDR_PARAM_DUP, .bad = "SIZE=10240" },
	{ .in = " SIZE=10240 FOO=1 BODY=8BITMIME", .err = SMTP_ADDR_PARAM_UNKNOWN, .bad = "FOO=1" },
	{ .in = " ENVID=QQ314159 ENVID=QQ314159", .err = SMTP_ADDR_PARAM_DUP, .bad = "ENVID=QQ314159" },
	{ .in = " SMTPUTF8 SMTPUTF8", .err = SMTP_ADDR_PARAM_DUP, .bad = "SMTPUTF8" },
	{ .in = " ENVID=QQ3=4159", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "ENVID=QQ3=4159" },
};

/* slice_str_eq - a slice against an optional C string (NULL: empty) */
static bool slice_str_eq(struct slice s, const char *c)
{
	return c ? eq_str(s, c) : s.len == 0;
}

static void test_mail_params(void **st)
{
	(void)st;
	for (size_t i = 0; i < sizeof mail_cases / sizeof mail_cases[0]; i++) {
		const struct mail_case *c = &mail_cases[i];
		size_t n = strlen(c->in);
		struct guarded g = guard_copy(c->in, n);
		struct smtp_mail_params p;
		struct slice bad;
		enum smtp_addr_err e = smtp_mail_params_parse(slice_make(g.ptr, g.len), &p, &bad);

		if (e != c->err || !slice_str_eq(bad, c->bad))
			fail_msg("mail case %zu \"%s\": err %d bad \"%.*s\"", i, c->in, e, (int)bad.len,
				 bad.ptr);
		assert_true(inside(bad, g.ptr, g.len));
		if (e == SMTP_ADDR_OK) {
			if (p.size != c->size || p.has_size != c->has_size || p.body != c->body ||
			    p.smtputf8 != c->smtputf8 || p.ret != c->ret || !slice_str_eq(p.envid, c->envid) ||
			    !slice_str_eq(p.auth, c->auth))
				fail_msg("mail case %zu \"%s\": values", i, c->in);
			assert_true(inside(p.envid, g.ptr, g.len));
			assert_true(inside(p.auth, g.ptr, g.len));
		}
		guard_free(&g);
		for (size_t k = 0; k < n; k++) { /* prefixes */
			struct guarded h = guard_copy(c->in, k);
			e = smtp_mail_params_parse(slice_make(h.ptr, h.len), &p, &bad);
			assert_true(inside(bad, h.ptr, h.len));
			assert_true((e == SMTP_ADDR_OK) == (bad.len == 0 && bad.ptr == NULL));
			guard_free(&h);
		}
	}
}

struct rcpt_case {
	const char *in;
	enum smtp_addr_err err;
	const char *bad;
	unsigned notify;
	const char *orcpt;
};

#define T31 "abcdefghijklmnopqrstuvwxyz01234"
static const struct rcpt_case rcpt_cases[] = {
	{ .in = "" },
	{ .in = " NOTIFY=NEVER", .notify = SMTP_NOTIFY_NEVER },
	{ .in = " notify=never", .notify = SMTP_NOTIFY_NEVER },
	{ .in = " NOTIFY=SUCCESS", .notify = SMTP_NOTIFY_SUCCESS },
	{ .in = " NOTIFY=FAILURE", .notify = SMTP_NOTIFY_FAILURE },
	{ .in = " NOTIFY=DELAY", .notify = SMTP_NOTIFY_DELAY },
	{ .in = " NOTIFY=SUCCESS,FAILURE,DELAY",
	  .notify = SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY },
	{ .in = " NOTIFY=delay,failure", .notify = SMTP_NOTIFY_DELAY | SMTP_NOTIFY_FAILURE },
	{ .in = " NOTIFY=SUCCESS,SUCCESS", .notify = SMTP_NOTIFY_SUCCESS },
	{ .in = " ORCPT=rfc822;a@b.example", .orcpt = "rfc822;a@b.example" },
	{ .in = " ORCPT=RFC822;a+2Bb@x", .orcpt = "RFC822;a+2Bb@x" },
	{ .in = " ORCPT=rfc822;a;b", .orcpt = "rfc822;a;b" },
	{ .in = " ORCPT=utf-8;\xc3\xbc@x", .orcpt = "utf-8;\xc3\xbc@x" },
	{ .in = " ORCPT=UTF-8;a\\x{FC}@x", .orcpt = "UTF-8;a\\x{FC}@x" },
	{ .in = " ORCPT=x400;c=us", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "ORCPT=x400;c=us" },
	{ .in = " ORCPT=x-400;c+3Dus", .orcpt = "x-400;c+3Dus" },
	{ .in = " ORCPT=" T31 "x;a", .orcpt = T31 "x;a" },
	{ .in = " NOTIFY=NEVER ORCPT=rfc822;a@b", .notify = SMTP_NOTIFY_NEVER, .orcpt = "rfc822;a@b" },
	{ .in = " ORCPT=rfc822;a@b NOTIFY=FAILURE,DELAY",
	  .notify = SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY, .orcpt = "rfc822;a@b" },
	/* malformed */
	{ .in = "NOTIFY=NEVER", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "NOTIFY=NEVER" },
	{ .in = " NOTIFY=", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "NOTIFY=" },
	{ .in = " NOTIFY", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "NOTIFY" },
	{ .in = " NOTIFY=NEVER,SUCCESS", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "NOTIFY=NEVER,SUCCESS" },
	{ .in = " NOTIFY=SUCCESS,NEVER", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "NOTIFY=SUCCESS,NEVER" },
	{ .in = " NOTIFY=SUCCESS,", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "NOTIFY=SUCCESS," },
	{ .in = " NOTIFY=,SUCCESS", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "NOTIFY=,SUCCESS" },
	{ .in = " NOTIFY=SUCCESS,,DELAY", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "NOTIFY=SUCCESS,,DELAY" },
	{ .in = " NOTIFY=SOMETIMES", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "NOTIFY=SOMETIMES" },
	{ .in = " NOTIFY=NEVERMORE", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "NOTIFY=NEVERMORE" },
	{ .in = " NOTIFY=SUCCESS;DELAY", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "NOTIFY=SUCCESS;DELAY" },
	{ .in = " ORCPT", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "ORCPT" },
	{ .in = " ORCPT=", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "ORCPT=" },
	{ .in = " ORCPT=rfc822", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "ORCPT=rfc822" },
	{ .in = " ORCPT=;a@b", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "ORCPT=;a@b" },
	{ .in = " ORCPT=rfc822;", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "ORCPT=rfc822;" },
	{ .in = " ORCPT=rfc 822;a", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "ORCPT=rfc" },
	{ .in = " ORCPT=rf(c;a@b", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "ORCPT=rf(c;a@b" },
	{ .in = " ORCPT=" T31 "xy;a", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "ORCPT=" T31 "xy;a" },
	{ .in = " ORCPT=rfc822;a+0Ab", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "ORCPT=rfc822;a+0Ab" },
	{ .in = " ORCPT=rfc822;a+2bb", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "ORCPT=rfc822;a+2bb" },
	{ .in = " ORCPT=rfc822;\xc3\xbc@x", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "ORCPT=rfc822;\xc3\xbc@x" },
	{ .in = " ORCPT=utf-8;\xc0\xaf@x", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "ORCPT=utf-8;\xc0\xaf@x" },
	{ .in = " ORCPT=utf-8;a+0Db", .err = SMTP_ADDR_PARAM_SYNTAX, .bad = "ORCPT=utf-8;a+0Db" },
	/* unknown, duplicate */
	{ .in = " SIZE=1", .err = SMTP_ADDR_PARAM_UNKNOWN, .bad = "SIZE=1" },
	{ .in = " FOO", .err = SMTP_ADDR_PARAM_UNKNOWN, .bad = "FOO" },
	{ .in = " NOTIFY=NEVER BAR=1", .err = SMTP_ADDR_PARAM_UNKNOWN, .bad = "BAR=1" },
	{ .in = " NOTIFY=NEVER NOTIFY=NEVER", .err = SMTP_ADDR_PARAM_DUP, .bad = "NOTIFY=NEVER" },
	{ .in = " ORCPT=rfc822;a orcpt=rfc822;b", .err = SMTP_ADDR_PARAM_DUP, .bad = "orcpt=rfc822;b" },
};

static void test_rcpt_params(void **st)
{
	(void)st;
	for (size_t i = 0; i < sizeof rcpt_cases / sizeof rcpt_cases[0]; i++) {
		const struct rcpt_case *c = &rcpt_cases[i];
		size_t n = strlen(c->in);
		struct guarded g = guard_copy(c->in, n);
		struct smtp_rcpt_params p;
		struct slice bad;
		enum smtp_addr_err e = smtp_rcpt_params_parse(slice_make(g.ptr, g.len), &p, &bad);

		if (e != c->err || !slice_str_eq(bad, c->bad))
			fail_msg("rcpt case %zu \"%s\": err %d bad \"%.*s\"", i, c->in, e, (int)bad.len,
				 bad.ptr);
		if (e == SMTP_ADDR_OK && (p.notify != c->notify || !slice_str_eq(p.orcpt, c->orcpt)))
			fail_msg("rcpt case %zu \"%s\": values", i, c->in);
		assert_true(inside(bad, g.ptr, g.len));
		guard_free(&g);
		for (size_t k = 0; k < n; k++) {
			struct guarded h = guard_copy(c->in, k);
			e = smtp_rcpt_params_parse(slice_make(h.ptr, h.len), &p, &bad);
			assert_true(inside(bad, h.ptr, h.len));
			assert_true(inside(p.orcpt, h.ptr, h.len));
			guard_free(&h);
		}
	}
	/* ORCPT: 500 octets in all is the most */
	char buf[600];
	struct smtp_rcpt_params p;
	struct slice bad;
	for (size_t total = 499; total <= 501; total++) {
		int off = snprintf(buf, sizeof buf, " ORCPT=rfc822;");
		memset(buf + off, 'x', total - 7); /* "rfc822;" is 7 octets */
		buf[off + total - 7] = '\0';
		struct guarded g = guard_copy(buf, strlen(buf));
		assert_int_equal(smtp_rcpt_params_parse(slice_make(g.ptr, g.len), &p, &bad),
				 total <= SMTP_ORCPT_MAX ? SMTP_ADDR_OK : SMTP_ADDR_PARAM_SYNTAX);
		guard_free(&g);
	}
}

static void test_xtext(void **st)
{
	(void)st;
	static const struct {
		const char *x;
		bool ok;
		const char *dec;
		size_t dlen;
	} cases[] = {
		{ "", true, "", 0 },
		{ "abc", true, "abc", 3 },
		{ "+2B", true, "+", 1 },
		{ "a+3Db", true, "a=b", 3 },
		{ "~!<>", true, "~!<>", 4 },
		{ "+00", true, "\0", 1 },
		{ "+FF+0D+0A", true, "\xff\r\n", 3 },
		{ "+41+42", true, "AB", 2 },
		{ "a b", false, NULL, 0 },
		{ "+", false, NULL, 0 },
		{ "+2", false, NULL, 0 },
		{ "+2b", false, NULL, 0 },
		{ "+G0", false, NULL, 0 },
		{ "a=b", false, NULL, 0 },
		{ "\xc3\xa4", false, NULL, 0 },
		{ "\x7f", false, NULL, 0 },
		{ "a\tb", false, NULL, 0 },
		{ "ab+", false, NULL, 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t n = strlen(cases[i].x), len = 99;
		struct guarded g = guard_copy(cases[i].x, n);
		char out[16];
		assert_int_equal(smtp_xtext_valid(slice_make(g.ptr, g.len)), cases[i].ok);
		int rc = smtp_xtext_decode(slice_make(g.ptr, g.len), out, sizeof out, &len);
		assert_int_equal(rc, cases[i].ok ? RM_OK : RM_EPROTO);
		if (cases[i].ok) {
			assert_int_equal(len, cases[i].dlen);
			assert_memory_equal(out, cases[i].dec, len);
			/* a buffer one byte short runs out; an exact one does not */
			if (len > 0)
				assert_int_equal(smtp_xtext_decode(slice_make(g.ptr, g.len), out, len - 1, &len),
						 RM_ENOMEM);
			assert_int_equal(smtp_xtext_decode(slice_make(g.ptr, g.len), out, cases[i].dlen, &len),
					 RM_OK);
		}
		guard_free(&g);
		for (size_t k = 0; k < n; k++) {
			struct guarded h = guard_copy(cases[i].x, k);
			(void)smtp_xtext_valid(slice_make(h.ptr, h.len));
			if (smtp_xtext_decode(slice_make(h.ptr, h.len), out, sizeof out, &len) == RM_OK)
				assert_true(len <= k);
			guard_free(&h);
		}
	}
}

static void test_domain_helpers(void **st)
{
	(void)st;
	char buf[64];
	size_t len = 0;

	assert_true(eq_str(smtp_mailbox_domain(SLICE_LIT("a@b.example")), "b.example"));
	assert_true(eq_str(smtp_mailbox_domain(SLICE_LIT("\"x@y\"@z")), "z"));
	assert_true(eq_str(smtp_mailbox_domain(SLICE_LIT("a@[t:x@y]")), "[t:x@y]"));
	assert_true(eq_str(smtp_mailbox_domain(SLICE_LIT("Postmaster")), ""));
	assert_true(eq_str(smtp_mailbox_domain(SLICE_LIT("")), ""));
	assert_true(eq_str(smtp_mailbox_domain(SLICE_LIT("\"unterminated@x")), ""));
	assert_int_equal(smtp_domain_lower(SLICE_LIT("ExAmple.COM"), buf, sizeof buf, &len), RM_OK);
	assert_int_equal(len, 11);
	assert_string_equal(buf, "example.com");
	assert_int_equal(smtp_domain_lower(SLICE_LIT("[IPv6:FE80::1]"), buf, sizeof buf, &len), RM_OK);
	assert_string_equal(buf, "[ipv6:fe80::1]");
	assert_int_equal(smtp_domain_lower(SLICE_LIT("\xc3\x84X.DE"), buf, sizeof buf, &len), RM_OK);
	assert_string_equal(buf, "\xc3\x84x.de");
	assert_int_equal(smtp_domain_lower(SLICE_LIT("abc"), buf, 3, &len), RM_ENOMEM);
	assert_int_equal(smtp_domain_lower(SLICE_LIT("abc"), buf, 4, &len), RM_OK);
	assert_int_equal(smtp_domain_lower(SLICE_LIT(""), buf, 1, &len), RM_OK);
	assert_int_equal(len, 0);
}

/* Random paths from an alphabet of the grammar's pieces: never a crash, and
 * accepted ones keep every invariant (path_check_ok). */
static void test_path_random(void **st)
{
	(void)st;
	static const char *pieces[] = { "<", ">", "@", ".", "a", "b-", "\"", "\\", " ", ":", ",",
					"[", "]", "1", "IPv6:", "::", "\xc3\xa4", "\xed\xa0", "x" };
	uint64_t seed = 7;
	int ok = 0;

	for (int i = 0; i < 50000; i++) {
		char buf[128];
		size_t n = 0;
		int count = (int)(test_rand(&seed) % 16);
		if (test_rand(&seed) & 1)
			buf[n++] = '<';
		for (int k = 0; k < count; k++) {
			const char *s = pieces[test_rand(&seed) % (sizeof pieces / sizeof pieces[0])];
			size_t l = strlen(s);
			memcpy(buf + n, s, l);
			n += l;
		}
		if (test_rand(&seed) & 1)
			buf[n++] = '>';
		struct smtp_path p;
		if (path_run(buf, n, (test_rand(&seed) & 1) != 0, &p, NULL, NULL, NULL) == SMTP_ADDR_OK)
			ok++;
	}
	assert_true(ok > 100); /* the generator does reach accepted paths */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_table),
		cmocka_unit_test(test_path_nul),
		cmocka_unit_test(test_path_prefixes),
		cmocka_unit_test(test_path_limits),
		cmocka_unit_test(test_domains),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_mail_params),
		cmocka_unit_test(test_rcpt_params),
		cmocka_unit_test(test_xtext),
		cmocka_unit_test(test_domain_helpers),
		cmocka_unit_test(test_path_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
