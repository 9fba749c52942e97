/* test_smtp_cmd.c - the command-line parser: verbs, arguments, MAIL/RCPT
 * prefixes, HTTP detection, odd bytes. Every line is parsed from guarded
 * memory (it ends right before a PROT_NONE page), and so is every prefix. */
#include "tests/unit/harness.h"

#include <stdio.h>
#include <string.h>

#include "core/smtp_cmd.h"

struct cmd_case {
	const char *line;
	size_t len; /* 0: strlen(line) */
	enum smtp_cmd_id id;
	const char *arg; /* expected argument */
	int syntax_error;
	size_t alen; /* 0: strlen(arg) */
};

#define C(l, i, a, s) { l, 0, SMTP_CMD_##i, a, s, 0 }
/* lines and arguments holding NUL bytes */
#define CN(l, i, a, s) { l, sizeof(l) - 1, SMTP_CMD_##i, a, s, sizeof(a) - 1 }

static const struct cmd_case cmd_cases[] = {
	/* verbs, any case, with and without arguments */
	C("HELO mail.example.com", HELO, "mail.example.com", 0),
	C("helo x", HELO, "x", 0),
	C("HeLo x", HELO, "x", 0),
	C("HELO", HELO, "", 0),
	C("EHLO client.example", EHLO, "client.example", 0),
	C("ehlo [127.0.0.1]", EHLO, "[127.0.0.1]", 0),
	C("EHLO", EHLO, "", 0),
	C("DATA", DATA, "", 0),
	C("data", DATA, "", 0),
	C("DATA x", DATA, "x", 0),
	C("BDAT 100 LAST", BDAT, "100 LAST", 0),
	C("bdat 0", BDAT, "0", 0),
	C("RSET", RSET, "", 0),
	C("rset ", RSET, "", 0),
	C("NOOP", NOOP, "", 0),
	C("NOOP anything at all", NOOP, "anything at all", 0),
	C("QUIT", QUIT, "", 0),
	C("QUIT x", QUIT, "x", 0),
	C("quit\t", QUIT, "", 0),
	C("VRFY postmaster", VRFY, "postmaster", 0),
	C("EXPN list", EXPN, "list", 0),
	C("HELP", HELP, "", 0),
	C("help MAIL", HELP, "MAIL", 0),
	C("STARTTLS", STARTTLS, "", 0),
	C("starttls", STARTTLS, "", 0),
	C("STARTTLS x", STARTTLS, "x", 0),
	C("AUTH PLAIN AGZvbwBiYXI=", AUTH, "PLAIN AGZvbwBiYXI=", 0),
	C("AUTH LOGIN", AUTH, "LOGIN", 0),
	/* spaces: several after the verb are skipped, trailing SP/HTAB trimmed */
	C("HELO   x", HELO, "x", 0),
	C("HELO x  \t ", HELO, "x", 0),
	C("HELO \tx", HELO, "x", 0),
	C("NOOP a  b", NOOP, "a  b", 0),
	C("NOOP     ", NOOP, "", 0),
	/* MAIL and RCPT */
	C("MAIL FROM:<a@b.example>", MAIL, "<a@b.example>", 0),
	C("mail from:<a@b.example>", MAIL, "<a@b.example>", 0),
	C("Mail From:<>", MAIL, "<>", 0),
	C("MAIL FROM: <a@b>", MAIL, " <a@b>", 0),
	C("MAIL FROM:<a@b> SIZE=10 BODY=8BITMIME", MAIL, "<a@b> SIZE=10 BODY=8BITMIME", 0),
	C("MAIL FROM:<a@b>   ", MAIL, "<a@b>", 0),
	C("MAIL  FROM:<a@b>", MAIL, "<a@b>", 0),
	C("MAIL FROM:", MAIL, "", 0),
	C("MAIL", MAIL, "", 1),
	C("MAIL ", MAIL, "", 1),
	C("MAIL TO:<a@b>", MAIL, "TO:<a@b>", 1),
	C("MAIL FROM <a@b>", MAIL, "FROM <a@b>", 1),
	C("MAIL FROM :<a@b>", MAIL, "FROM :<a@b>", 1),
	C("MAIL FRO:<a@b>", MAIL, "FRO:<a@b>", 1),
	C("MAIL <a@b>", MAIL, "<a@b>", 1),
	C("MAILFROM:<a@b>", UNKNOWN, "", 0),
	C("RCPT TO:<a@b.example>", RCPT, "<a@b.example>", 0),
	C("rcpt to:<a@b.example>", RCPT, "<a@b.example>", 0),
	C("RCPT TO: <a@b>", RCPT, " <a@b>", 0),
	C("RCPT TO:<a@b> NOTIFY=NEVER", RCPT, "<a@b> NOTIFY=NEVER", 0),
	C("RCPT TO:", RCPT, "", 0),
	C("RCPT", RCPT, "", 1),
	C("RCPT FROM:<a@b>", RCPT, "FROM:<a@b>", 1),
	C("RCPT T:<a@b>", RCPT, "T:<a@b>", 1),
	C("RCPT TO <a@b>", RCPT, "TO <a@b>", 1),
	/* unknown verbs: the verb ends at SP only */
	C("", UNKNOWN, "", 0),
	C("   ", UNKNOWN, "", 0),
	C(" HELO x", UNKNOWN, "HELO x", 0),
	C("HELOx", UNKNOWN, "", 0),
	C("HEL", UNKNOWN, "", 0),
	C("HELO\tx", UNKNOWN, "", 0),
	C("XYZZY", UNKNOWN, "", 0),
	C("XYZZY plugh", UNKNOWN, "plugh", 0),
	C("STARTTL", UNKNOWN, "", 0),
	C("STARTTLSS", UNKNOWN, "", 0),
	C("\xc3\xa9HLO x", UNKNOWN, "x", 0),
	C("BDATA", UNKNOWN, "", 0),
	C("TURN", UNKNOWN, "", 0),
	C("ETRN x", UNKNOWN, "x", 0),
	/* the folded word compare: only a letter's two cases match it */
	C("MA\x09L FROM:<a@b>", UNKNOWN, "FROM:<a@b>", 0),
	C("\xcd" "AIL FROM:<a@b>", UNKNOWN, "FROM:<a@b>", 0),
	C("M\x01IL x", UNKNOWN, "x", 0),
	C("MAIL FR\x0fM:<a@b>", MAIL, "FR\x0fM:<a@b>", 1),
	C("MAIL fRoM:<a@b>", MAIL, "<a@b>", 0),
	C("MAIL FROM;<a@b>", MAIL, "FROM;<a@b>", 1),
	C("STAR x", UNKNOWN, "x", 0),
	C("StartTls", STARTTLS, "", 0),
	C("HELO  x", HELO, "x", 0),
	/* HTTP */
	C("GET / HTTP/1.1", HTTP, "/ HTTP/1.1", 0),
	C("get / HTTP/1.0", HTTP, "/ HTTP/1.0", 0),
	C("POST /form HTTP/1.1", HTTP, "/form HTTP/1.1", 0),
	C("CONNECT mx.example:25 HTTP/1.1", HTTP, "mx.example:25 HTTP/1.1", 0),
	C("HEAD / HTTP/1.1", HTTP, "/ HTTP/1.1", 0),
	C("PUT /x HTTP/1.1", HTTP, "/x HTTP/1.1", 0),
	C("GET ", HTTP, "", 0),
	C("Host: mail.example.com", HTTP, "mail.example.com", 0),
	C("host:x", HTTP, "", 0),
	C("HOST: x", HTTP, "x", 0),
	C("GET", UNKNOWN, "", 0),
	C("GETS x", UNKNOWN, "x", 0),
	C("Hostname: x", UNKNOWN, "x", 0),
	C("Host x", UNKNOWN, "x", 0),
	C("User-Agent: curl", UNKNOWN, "curl", 0),
	/* control bytes stay in the argument, the verb rejects them */
	CN("NOOP a\0b", NOOP, "a\0b", 0),
	CN("HELO \x01x\x7f", HELO, "\x01x\x7f", 0),
	CN("MAIL FROM:<a\0@b>", MAIL, "<a\0@b>", 0),
	CN("QUIT\0", UNKNOWN, "", 0),
	CN("\0QUIT", UNKNOWN, "", 0),
	CN("HELO x\0", HELO, "x\0", 0),
	C("HELO x\r", HELO, "x\r", 0),
	C("HELO x\ry", HELO, "x\ry", 0),
	C("DATA\r", UNKNOWN, "", 0),
	C("HELO \xff\xfe", HELO, "\xff\xfe", 0),
};

/* cmd_case_len - the line length of a case */
static size_t cmd_case_len(const struct cmd_case *c)
{
	return c->len ? c->len : strlen(c->line);
}

/* inside - is s a slice of [base, base+n) */
static bool inside(struct slice s, const char *base, size_t n)
{
	return s.len == 0 ? (s.ptr == NULL || (s.ptr >= base && s.ptr <= base + n))
			  : (s.ptr >= base && s.ptr + s.len <= base + n);
}

/* The verb as parsed, copied out before the guarded line is unmapped. */
static char last_verb[4096];

/* parse_guarded - parse line[0..n) placed right before a PROT_NONE page and
 * check that the outputs lie inside it; copies the argument into arg and the
 * verb into last_verb (the slices in *out dangle afterwards) */
static void parse_guarded(const char *line, size_t n, struct smtp_cmd *out, char *arg, size_t cap)
{
	struct guarded g = guard_copy(line, n);

	memset(out, 0x5a, sizeof *out);
	smtp_cmd_parse(slice_make(g.ptr, g.len), out);
	assert_true(inside(out->verb, g.ptr, g.len));
	assert_true(inside(out->arg, g.ptr, g.len));
	assert_true((unsigned)out->id < SMTP_CMD__COUNT);
	assert_true(out->syntax_error == 0 || out->syntax_error == 1);
	assert_true(out->arg.len < cap);
	memcpy(arg, out->arg.ptr ? out->arg.ptr : "", out->arg.len);
	arg[out->arg.len] = '\0';
	assert_true(out->verb.len < sizeof last_verb);
	memcpy(last_verb, out->verb.ptr ? out->verb.ptr : "", out->verb.len);
	last_verb[out->verb.len] = '\0';
	guard_free(&g);
}

static void test_cmd_table(void **st)
{
	(void)st;
	for (size_t i = 0; i < sizeof cmd_cases / sizeof cmd_cases[0]; i++) {
		const struct cmd_case *c = &cmd_cases[i];
		size_t n = cmd_case_len(c);
		size_t alen = c->alen ? c->alen : strlen(c->arg);
		struct smtp_cmd out;
		char arg[4096];

		parse_guarded(c->line, n, &out, arg, sizeof arg);
		if (out.id != c->id || out.syntax_error != c->syntax_error)
			fail_msg("case %zu \"%s\": id %d syntax %d, want %d %d", i, c->line, out.id,
				 out.syntax_error, c->id, c->syntax_error);
		if (out.arg.len != alen || memcmp(arg, c->arg, alen) != 0) {
			fail_msg("case %zu \"%s\": arg \"%s\", want \"%s\"", i, c->line, arg, c->arg);
		}
	}
}

/* The NUL-bearing cases need their exact argument lengths. */
static void test_cmd_nul_lengths(void **st)
{
	(void)st;
	struct smtp_cmd out;
	char arg[64];

	parse_guarded("NOOP a\0b", 8, &out, arg, sizeof arg);
	assert_int_equal(out.id, SMTP_CMD_NOOP);
	assert_int_equal(out.arg.len, 3);
	assert_memory_equal(arg, "a\0b", 3);
	parse_guarded("MAIL FROM:<a\0@b>", 16, &out, arg, sizeof arg);
	assert_int_equal(out.id, SMTP_CMD_MAIL);
	assert_int_equal(out.arg.len, 6);
	assert_memory_equal(arg, "<a\0@b>", 6);
	parse_guarded("QUIT\0", 5, &out, arg, sizeof arg);
	assert_int_equal(out.id, SMTP_CMD_UNKNOWN);
	assert_int_equal(out.verb.len, 5);
}

/* Every prefix of every case parses without reading past it, and a prefix
 * that is itself a whole known line gives the same verb as the table. */
static void test_cmd_prefixes(void **st)
{
	(void)st;
	for (size_t i = 0; i < sizeof cmd_cases / sizeof cmd_cases[0]; i++) {
		const struct cmd_case *c = &cmd_cases[i];
		size_t n = cmd_case_len(c);
		for (size_t k = 0; k <= n; k++) {
			struct smtp_cmd out;
			char arg[4096];
			parse_guarded(c->line, k, &out, arg, sizeof arg);
			assert_true(out.verb.len <= k);
			assert_true(out.arg.len <= k);
		}
	}
}

/* Every verb in every case mix, with and without arguments and trailing
 * blanks, names itself; smtp_cmd_name gives the canonical text back. */
static void test_cmd_every_verb(void **st)
{
	(void)st;
	static const char *tails[] = { "", " ", "\t", " x", "  x y ", " \t" };
	int checked = 0;

	for (int id = SMTP_CMD_UNKNOWN + 1; id < SMTP_CMD_HTTP; id++) {
		const char *name = smtp_cmd_name((enum smtp_cmd_id)id);
		size_t nlen = strlen(name);
		assert_true(nlen > 0);
		for (unsigned mask = 0; mask < 4; mask++) {
			for (size_t t = 0; t < sizeof tails / sizeof tails[0]; t++) {
				char line[64];
				char arg[64];
				struct smtp_cmd out;
				for (size_t k = 0; k < nlen; k++) {
					char ch = name[k];
					bool low = (mask == 1) || (mask == 2 && (k & 1)) || (mask == 3 && !(k & 1));
					line[k] = low ? ascii_lower(ch) : ch;
				}
				snprintf(line + nlen, sizeof line - nlen, "%s", tails[t]);
				parse_guarded(line, strlen(line), &out, arg, sizeof arg);
				assert_int_equal(out.id, id);
				assert_int_equal(out.verb.len, nlen);
				assert_true(slice_eq_nocase(slice_cstr(last_verb), slice_cstr(name)));
				if (id == SMTP_CMD_MAIL || id == SMTP_CMD_RCPT) {
					assert_int_equal(out.syntax_error, 1);
				} else {
					assert_int_equal(out.syntax_error, 0);
					const char *want = strchr(tails[t], 'x') ? strchr(tails[t], 'x') : "";
					size_t wl = strlen(want);
					while (wl && (want[wl - 1] == ' ' || want[wl - 1] == '\t'))
						wl--;
					assert_int_equal(out.arg.len, wl);
					assert_memory_equal(arg, want, wl);
				}
				checked++;
			}
		}
		/* a verb with one byte more or less is unknown */
		char longer[64];
		struct smtp_cmd out;
		char arg[64];
		snprintf(longer, sizeof longer, "%sX", name);
		parse_guarded(longer, strlen(longer), &out, arg, sizeof arg);
		assert_int_equal(out.id, SMTP_CMD_UNKNOWN);
		parse_guarded(name, nlen - 1, &out, arg, sizeof arg);
		assert_int_equal(out.id, SMTP_CMD_UNKNOWN);
	}
	assert_true(checked > 300);
	assert_string_equal(smtp_cmd_name(SMTP_CMD_UNKNOWN), "");
	assert_string_equal(smtp_cmd_name(SMTP_CMD_STARTTLS), "STARTTLS");
	assert_string_equal(smtp_cmd_name(SMTP_CMD__COUNT), "");
	assert_string_equal(smtp_cmd_name((enum smtp_cmd_id)-1), "");
}

/* Random bytes, random lengths: never a crash, outputs inside the line. */
static void test_cmd_random(void **st)
{
	(void)st;
	uint64_t seed = 0x5eed0001;
	static const char alphabet[] = "MAILRCPTFROM:TO:<>@ \t\r\n\0\x80\xff" "abcGETHost";

	for (int i = 0; i < 20000; i++) {
		char line[40];
		size_t n = test_rand(&seed) % sizeof line;
		for (size_t k = 0; k < n; k++)
			line[k] = alphabet[test_rand(&seed) % (sizeof alphabet - 1)];
		struct smtp_cmd out;
		char arg[64];
		parse_guarded(line, n, &out, arg, sizeof arg);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cmd_table),
		cmocka_unit_test(test_cmd_nul_lengths),
		cmocka_unit_test(test_cmd_prefixes),
		cmocka_unit_test(test_cmd_every_verb),
		cmocka_unit_test(test_cmd_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
