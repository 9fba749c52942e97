/* test_smtp_server.c - the inbound session engine: unit cases for every
 * command and error reply, and the golden transcripts of tests/transcripts/.
 *
 * A fake host drives the engine the way the io_uring host does: it flushes
 * replies on FLUSH and at the end of each feed, copies body slices at once
 * (the input piece is unmapped after the feed), commits, finishes TLS
 * handshakes and checks AUTH credentials instantly. Every session is fed
 * whole, split in two at every byte and one byte at a time, each piece in
 * guarded memory, and must give the same replies, bodies and envelopes.
 *
 * Transcript format (one directive per line):
 *   # ...                  comment
 *   !cfg KEY=VAL ...       max_size max_rcpts max_errors tls auth implicit
 *                          tx_arena reply_cap
 *   !commit ok|eio|elimit  result of the next commit (queued; default ok)
 *   !auth-fail             the host refuses the next credentials
 *   !tls-fail              the next handshake fails
 *   !mail-refuse CODE ENH TEXT      policy refuses every MAIL
 *   !rcpt-refuse DOMAIN CODE ENH TEXT  policy refuses RCPT to DOMAIN
 *   !tls                   the TLS handshake happens here: client bytes
 *                          before it that follow STARTTLS are dropped
 *   !msg                   start the next expected message body
 *   C: text                client bytes, CRLF appended
 *   C< text                client bytes, nothing appended
 *   S: text                expected server reply line (CRLF appended)
 *   B: text                expected body line of the current message (CRLF)
 *   B< text                expected body bytes, nothing appended
 *   E: text                expected envelope of the next commit
 * Escapes in text: \r \n \t \\ \xHH and \{N:c} for N copies of c.
 */
#include "tests/unit/harness.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/smtp_reply.h"
#include "core/smtp_server.h"

/* --- a growable string ---------------------------------------------------- */

struct str {
	char *p;
	size_t n, cap;
};

static void str_add(struct str *s, const void *p, size_t n)
{
	if (s->n + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 256;
		while (cap < s->n + n + 1)
			cap *= 2;
		s->p = realloc(s->p, cap);
		assert_non_null(s->p);
		s->cap = cap;
	}
	if (n)
		memcpy(s->p + s->n, p, n);
	s->n += n;
	s->p[s->n] = '\0';
}

static void str_adds(struct str *s, const char *z)
{
	str_add(s, z, strlen(z));
}

static void str_addsl(struct str *s, struct slice x)
{
	str_add(s, x.ptr, x.len);
}

static void str_free(struct str *s)
{
	free(s->p);
	memset(s, 0, sizeof *s);
}

/* --- a session description and the fake host ----------------------------- */

#define MAX_MSGS 16
#define MAX_RULES 4
#define MAX_SEGS 4

struct rule {
	char domain[64];
	unsigned code;
	char enh[16];
	char text[96];
};

struct script {
	struct smtp_server_cfg cfg;
	bool implicit_tls;
	size_t reply_cap;
	struct str client;            /* all client bytes */
	size_t seg_end[MAX_SEGS];     /* handshake offsets into client */
	size_t nseg;
	struct str replies;           /* expected */
	struct str msgs[MAX_MSGS];    /* expected bodies */
	size_t nmsgs;
	struct str env;               /* expected envelopes, one per line */
	int commits[MAX_MSGS];        /* results in order */
	size_t ncommits;
	bool auth_fail, tls_fail;
	bool mail_refuse;
	struct rule mail_rule;
	struct rule rcpt_rule[MAX_RULES];
	size_t nrules;
};

struct host {
	const struct script *sc;
	struct smtp_server *s;
	char *replies_mem;
	struct buf replies;
	struct slice body[8];
	struct str got_replies;
	struct str cur;               /* body of the message in progress */
	struct str got_msgs[MAX_MSGS];
	size_t nmsgs;
	struct str got_env;
	size_t ncommits;
	size_t off;                   /* client bytes fed so far */
	size_t seg;                   /* next handshake to do */
	bool tls_pending, closed;
	unsigned events[SMTP_EV_CLOSE + 1];
};

static void policy_mail(void *ctx, const struct smtp_server *s, const struct smtp_path *from,
			const struct smtp_mail_params *p, struct smtp_verdict *v)
{
	const struct script *sc = ctx;
	(void)s;
	(void)from;
	(void)p;
	if (sc->mail_refuse) {
		v->code = sc->mail_rule.code;
		v->enh = sc->mail_rule.enh;
		v->text = sc->mail_rule.text;
	}
}

static void policy_rcpt(void *ctx, const struct smtp_server *s, const struct smtp_path *to,
			const struct smtp_rcpt_params *p, struct smtp_verdict *v)
{
	const struct script *sc = ctx;
	(void)s;
	(void)p;
	for (size_t i = 0; i < sc->nrules; i++) {
		if (slice_eq_nocase(to->domain, slice_cstr(sc->rcpt_rule[i].domain))) {
			v->code = sc->rcpt_rule[i].code;
			v->enh = sc->rcpt_rule[i].enh;
			v->text = sc->rcpt_rule[i].text;
			return;
		}
	}
}

static void script_init(struct script *sc)
{
	memset(sc, 0, sizeof *sc);
	sc->cfg.hostname = SLICE_LIT("mx.test");
	sc->cfg.alloc = &rm_alloc_libc;
	sc->cfg.policy.mail = policy_mail;
	sc->cfg.policy.rcpt = policy_rcpt;
	sc->cfg.policy.ctx = sc;
	sc->reply_cap = 4096;
}

static void script_free(struct script *sc)
{
	str_free(&sc->client);
	str_free(&sc->replies);
	str_free(&sc->env);
	for (size_t i = 0; i < MAX_MSGS; i++)
		str_free(&sc->msgs[i]);
}

static void host_flush(struct host *h)
{
	str_add(&h->got_replies, h->replies.ptr, h->replies.len);
	h->replies.len = 0;
}

static void env_render(struct str *o, const struct smtp_tx *tx)
{
	char num[64];
	str_adds(o, "from=<");
	str_addsl(o, tx->from.mailbox);
	str_adds(o, ">");
	if (tx->mail.has_size) {
		snprintf(num, sizeof num, " size=%llu", (unsigned long long)tx->mail.size);
		str_adds(o, num);
	}
	static const char *const body[] = { "", " body=7BIT", " body=8BITMIME", " body=BINARYMIME" };
	str_adds(o, body[tx->mail.body]);
	if (tx->mail.smtputf8)
		str_adds(o, " smtputf8");
	if (tx->mail.ret)
		str_adds(o, tx->mail.ret == SMTP_RET_HDRS ? " ret=HDRS" : " ret=FULL");
	if (tx->mail.envid.len) {
		str_adds(o, " envid=");
		str_addsl(o, tx->mail.envid);
	}
	if (tx->mail.auth.len) {
		str_adds(o, " auth=");
		str_addsl(o, tx->mail.auth);
	}
	for (size_t i = 0; i < tx->nrcpt; i++) {
		str_adds(o, " to=<");
		str_addsl(o, tx->rcpt[i].path.mailbox);
		str_adds(o, ">");
		if (tx->rcpt[i].params.notify) {
			snprintf(num, sizeof num, " notify=%u", tx->rcpt[i].params.notify);
			str_adds(o, num);
		}
		if (tx->rcpt[i].params.orcpt.len) {
			str_adds(o, " orcpt=");
			str_addsl(o, tx->rcpt[i].params.orcpt);
		}
	}
	snprintf(num, sizeof num, " received=%u%s\n", tx->received, tx->bdat ? " bdat" : "");
	str_adds(o, num);
}

static struct smtp_server_io host_io(struct host *h)
{
	struct smtp_server_io io = { &h->replies, h->body, 0, 8 };
	return io;
}

static void host_take_body(struct host *h, const struct smtp_server_io *io)
{
	for (size_t i = 0; i < io->nbody; i++)
		str_addsl(&h->cur, io->body[i]);
}

/* host_handshake - the TLS handshake at a segment boundary */
static void host_handshake(struct host *h)
{
	struct smtp_server_io io = host_io(h);
	if (!h->tls_pending)
		return;
	h->tls_pending = false;
	smtp_server_tls_started(h->s, !h->sc->tls_fail, &io);
	if (h->sc->tls_fail)
		h->closed = true;
	host_flush(h);
}

/* host_feed_seg - feed bytes that lie inside one segment */
static void host_feed_seg(struct host *h, const char *p, size_t n)
{
	size_t off = 0;
	struct smtp_server_io io = host_io(h);

	while (!h->closed && !h->tls_pending && off < n) {
		size_t used = 0;
		enum smtp_server_ev ev = smtp_server_feed(h->s, p + off, n - off, &used, &io);
		assert_true(used <= n - off);
		assert_true(ev <= SMTP_EV_CLOSE);
		h->events[ev]++;
		off += used;
		switch (ev) {
		case SMTP_EV_NONE:
			assert_int_equal(io.nbody, 0);
			if (used == 0)
				fail_msg("no progress in state %s", smtp_server_state_name(h->s));
			break;
		case SMTP_EV_FLUSH:
			host_flush(h);
			break;
		case SMTP_EV_BODY:
			assert_true(io.nbody > 0);
			host_take_body(h, &io);
			break;
		case SMTP_EV_COMMIT: {
			const struct smtp_tx *tx = smtp_server_tx(h->s);
			host_take_body(h, &io);
			assert_non_null(tx);
			assert_int_equal(tx->body_bytes, h->cur.n);
			env_render(&h->got_env, tx);
			int st = h->ncommits < h->sc->ncommits ? h->sc->commits[h->ncommits] : 0;
			char id[32];
			snprintf(id, sizeof id, "Q%zu", ++h->ncommits);
			if (st == 0) {
				assert_true(h->nmsgs < MAX_MSGS);
				struct str *m = &h->got_msgs[h->nmsgs++];
				str_add(m, h->cur.p, h->cur.n);
			}
			h->cur.n = 0;
			smtp_server_committed(h->s, st, slice_cstr(id), &io);
			assert_null(smtp_server_tx(h->s));
			break;
		}
		case SMTP_EV_ABORT:
			h->cur.n = 0;
			break;
		case SMTP_EV_STARTTLS:
			host_flush(h);
			h->tls_pending = true; /* the rest of the segment is dropped */
			break;
		case SMTP_EV_AUTH: {
			bool ok = !h->sc->auth_fail && slice_eq(smtp_server_auth_user(h->s), SLICE_LIT("alice")) &&
				  slice_eq(smtp_server_auth_pass(h->s), SLICE_LIT("secret"));
			smtp_server_auth_done(h->s, ok, &io);
			break;
		}
		case SMTP_EV_CLOSE:
			h->closed = true;
			break;
		}
	}
	host_flush(h);
}

/* host_piece - one piece from the splitter; cut it at segment boundaries */
static int host_piece(void *ctx, const char *p, size_t n)
{
	struct host *h = ctx;
	while (n) {
		while (h->seg < h->sc->nseg && h->off >= h->sc->seg_end[h->seg]) {
			host_handshake(h);
			h->seg++;
		}
		size_t take = n;
		if (h->seg < h->sc->nseg && h->off + take > h->sc->seg_end[h->seg])
			take = h->sc->seg_end[h->seg] - h->off;
		struct guarded g = guard_copy(p, take);
		host_feed_seg(h, g.ptr, g.len);
		guard_free(&g);
		h->off += take;
		p += take;
		n -= take;
	}
	return 0;
}

struct run {
	struct host h; /* first: host_piece takes the run as its host */
	const struct script *sc;
	const char *name;
};

static void host_start(struct host *h, const struct script *sc)
{
	memset(h, 0, sizeof *h);
	h->sc = sc;
	h->s = malloc(smtp_server_size());
	h->replies_mem = malloc(sc->reply_cap);
	assert_non_null(h->s);
	buf_init(&h->replies, h->replies_mem, sc->reply_cap);
	smtp_server_init(h->s, &sc->cfg, sc->implicit_tls);
	struct smtp_server_io io = host_io(h);
	assert_int_equal(smtp_server_greet(h->s, &io), 0);
	host_flush(h);
}

static void host_stop(struct host *h)
{
	smtp_server_fini(h->s);
	free(h->s);
	free(h->replies_mem);
	str_free(&h->got_replies);
	str_free(&h->cur);
	str_free(&h->got_env);
	for (size_t i = 0; i < MAX_MSGS; i++)
		str_free(&h->got_msgs[i]);
}

static void run_reset(void *ctx)
{
	struct run *r = ctx;
	host_start(&r->h, r->sc);
}

static void show_diff(const char *what, const char *name, size_t k, const struct str *want,
		      const struct str *got)
{
	print_error("%s: %s differ (split %zu)\n--- want\n%s--- got\n%s---\n", name, what, k,
		    want->p ? want->p : "", got->p ? got->p : "");
}

static void run_check(void *ctx, size_t k)
{
	struct run *r = ctx;
	struct host *h = &r->h;
	const struct script *sc = r->sc;

	/* the end of the client's stream: a handshake still due happens */
	while (h->seg < sc->nseg) {
		host_handshake(h);
		h->seg++;
	}
	if (!slice_eq(slice_make(h->got_replies.p ? h->got_replies.p : "", h->got_replies.n),
		      slice_make(sc->replies.p ? sc->replies.p : "", sc->replies.n))) {
		show_diff("replies", r->name, k, &sc->replies, &h->got_replies);
		fail();
	}
	if (h->nmsgs != sc->nmsgs) {
		print_error("%s: %zu messages, want %zu (split %zu)\n", r->name, h->nmsgs, sc->nmsgs, k);
		fail();
	}
	for (size_t i = 0; i < sc->nmsgs; i++) {
		if (h->got_msgs[i].n != sc->msgs[i].n ||
		    (sc->msgs[i].n && memcmp(h->got_msgs[i].p, sc->msgs[i].p, sc->msgs[i].n))) {
			show_diff("message", r->name, k, &sc->msgs[i], &h->got_msgs[i]);
			fail();
		}
	}
	if (sc->env.n && (h->got_env.n != sc->env.n || memcmp(h->got_env.p, sc->env.p, sc->env.n))) {
		show_diff("envelopes", r->name, k, &sc->env, &h->got_env);
		fail();
	}
	host_stop(h);
}

/* run_script - whole, split at every byte, one byte at a time */
static void run_script(const struct script *sc, const char *name)
{
	struct run r = { .sc = sc, .name = name };
	split_each(sc->client.p ? sc->client.p : "", sc->client.n, run_reset, host_piece, run_check, &r);
	split_bytes(sc->client.p ? sc->client.p : "", sc->client.n, run_reset, host_piece, run_check, &r);
}

/* --- the transcript reader ------------------------------------------------ */

/* unescape - text with \r \n \t \\ \xHH \{N:c} */
static void unescape(struct str *o, const char *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (t[i] != '\\' || i + 1 >= n) {
			str_add(o, &t[i], 1);
			continue;
		}
		char c = t[++i];
		if (c == 'r') {
			str_adds(o, "\r");
		} else if (c == 'n') {
			str_adds(o, "\n");
		} else if (c == 't') {
			str_adds(o, "\t");
		} else if (c == 'x' && i + 2 < n) {
			char hex[3] = { t[i + 1], t[i + 2], 0 };
			char b = (char)strtoul(hex, NULL, 16);
			str_add(o, &b, 1);
			i += 2;
		} else if (c == '{') {
			char *end;
			unsigned long rep = strtoul(t + i + 1, &end, 10);
			char ch = end[1];
			for (unsigned long j = 0; j < rep; j++)
				str_add(o, &ch, 1);
			i = (size_t)(end - t) + 2; /* at '}' */
		} else {
			str_add(o, &c, 1);
		}
	}
}

static int commit_status(const char *w)
{
	if (strncmp(w, "eio", 3) == 0)
		return RM_EIO;
	if (strncmp(w, "elimit", 6) == 0)
		return RM_ELIMIT;
	return 0;
}

static void parse_rule(struct rule *r, const char *p, bool with_domain)
{
	int used = 0;
	if (with_domain)
		assert_int_equal(sscanf(p, "%63s %u %15s %n", r->domain, &r->code, r->enh, &used), 3);
	else
		assert_int_equal(sscanf(p, "%u %15s %n", &r->code, r->enh, &used), 2);
	snprintf(r->text, sizeof r->text, "%s", p + used);
}

static void parse_cfg(struct script *sc, char *p)
{
	for (char *tok = strtok(p, " "); tok; tok = strtok(NULL, " ")) {
		char *eq = strchr(tok, '=');
		assert_non_null(eq);
		*eq = '\0';
		unsigned long long v = strtoull(eq + 1, NULL, 10);
		if (!strcmp(tok, "max_size"))
			sc->cfg.max_message_size = v;
		else if (!strcmp(tok, "max_rcpts"))
			sc->cfg.max_recipients = (unsigned)v;
		else if (!strcmp(tok, "max_errors"))
			sc->cfg.max_errors = (unsigned)v;
		else if (!strcmp(tok, "tls"))
			sc->cfg.tls_available = v != 0;
		else if (!strcmp(tok, "auth"))
			sc->cfg.auth_available = v != 0;
		else if (!strcmp(tok, "implicit"))
			sc->implicit_tls = v != 0;
		else if (!strcmp(tok, "no_chunking"))
			sc->cfg.no_chunking = v != 0;
		else if (!strcmp(tok, "tx_arena"))
			sc->cfg.tx_arena_limit = v;
		else if (!strcmp(tok, "reply_cap"))
			sc->reply_cap = v;
		else
			fail_msg("unknown !cfg key %s", tok);
	}
}

/* script_parse - read a transcript from text (NUL-terminated, modified) */
static void script_parse(struct script *sc, char *text)
{
	struct str *msg = NULL;
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		size_t n = strlen(line);
		if (n && line[n - 1] == '\r')
			line[--n] = '\0';
		if (n == 0 || line[0] == '#')
			continue;
		const char *t = line + 3;
		size_t tn = n >= 3 ? n - 3 : 0;
		if (!strncmp(line, "C: ", 3) || !strcmp(line, "C:")) {
			unescape(&sc->client, t, tn);
			str_adds(&sc->client, "\r\n");
		} else if (!strncmp(line, "C< ", 3)) {
			unescape(&sc->client, t, tn);
		} else if (!strncmp(line, "S: ", 3) || !strcmp(line, "S:")) {
			unescape(&sc->replies, t, tn);
			str_adds(&sc->replies, "\r\n");
		} else if (!strncmp(line, "B: ", 3) || !strcmp(line, "B:")) {
			assert_non_null(msg);
			unescape(msg, t, tn);
			str_adds(msg, "\r\n");
		} else if (!strncmp(line, "B< ", 3)) {
			assert_non_null(msg);
			unescape(msg, t, tn);
		} else if (!strncmp(line, "E: ", 3)) {
			unescape(&sc->env, t, tn);
			str_adds(&sc->env, "\n");
		} else if (!strcmp(line, "!msg")) {
			assert_true(sc->nmsgs < MAX_MSGS);
			msg = &sc->msgs[sc->nmsgs++];
			str_add(msg, "", 0);
		} else if (!strcmp(line, "!tls")) {
			assert_true(sc->nseg < MAX_SEGS);
			sc->seg_end[sc->nseg++] = sc->client.n;
		} else if (!strncmp(line, "!commit ", 8)) {
			sc->commits[sc->ncommits++] = commit_status(line + 8);
		} else if (!strcmp(line, "!auth-fail")) {
			sc->auth_fail = true;
		} else if (!strcmp(line, "!tls-fail")) {
			sc->tls_fail = true;
		} else if (!strncmp(line, "!mail-refuse ", 13)) {
			sc->mail_refuse = true;
			parse_rule(&sc->mail_rule, line + 13, false);
		} else if (!strncmp(line, "!rcpt-refuse ", 13)) {
			assert_true(sc->nrules < MAX_RULES);
			parse_rule(&sc->rcpt_rule[sc->nrules++], line + 13, true);
		} else if (!strncmp(line, "!cfg ", 5)) {
			parse_cfg(sc, line + 5);
		} else {
			fail_msg("bad transcript line: %s", line);
		}
	}
}

/* run_text - parse and run one inline session */
static void run_text(const char *name, const char *text)
{
	struct script sc;
	char *copy = strdup(text);
	script_init(&sc);
	script_parse(&sc, copy);
	run_script(&sc, name);
	script_free(&sc);
	free(copy);
}

static void test_transcripts(void **st)
{
	(void)st;
	const char *src = getenv("RINGMTA_SOURCE");
	char dir[4096];
	snprintf(dir, sizeof dir, "%s/tests/transcripts", src ? src : ".");
	DIR *d = opendir(dir);
	assert_non_null(d);
	size_t count = 0;
	for (struct dirent *e; (e = readdir(d));) {
		size_t n = strlen(e->d_name);
		if (n < 5 || strcmp(e->d_name + n - 4, ".txt"))
			continue;
		char path[8192];
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		FILE *f = fopen(path, "rb");
		assert_non_null(f);
		struct str t = { 0 };
		char chunk[4096];
		size_t got;
		while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
			str_add(&t, chunk, got);
		fclose(f);
		run_text(e->d_name, t.p ? t.p : "");
		str_free(&t);
		count++;
	}
	closedir(d);
	assert_true(count >= 10);
}

/* --- unit cases ------------------------------------------------------------ */

#define GREET "S: 220 mx.test ESMTP ringmta\n"
#define EHLO_PLAIN                                                                             \
	"C: EHLO client.test\n"                                                                \
	"S: 250-mx.test\nS: 250-PIPELINING\nS: 250-SIZE 52428800\nS: 250-8BITMIME\n"         \
	"S: 250-ENHANCEDSTATUSCODES\nS: 250-CHUNKING\nS: 250-SMTPUTF8\nS: 250 DSN\n"
#define HELO "C: HELO client.test\nS: 250 mx.test\n"

static void test_size(void **st)
{
	(void)st;
	/* an idle session must be cheap: well under 4 KB with its line buffer */
	assert_true(smtp_server_size() < 3 * 1024);
	assert_true(smtp_server_size() > SMTP_CMD_LINE_MAX);
}

static void test_helo_ehlo(void **st)
{
	(void)st;
	run_text("ehlo", GREET EHLO_PLAIN HELO
		 "C: EHLO\nS: 501 5.5.4 Syntax: EHLO hostname\n"
		 "C: HELO bad_name!\nS: 501 5.5.4 Syntax: HELO hostname\n"
		 "C: EHLO [192.0.2.1]\nS: 250-mx.test\nS: 250-PIPELINING\nS: 250-SIZE 52428800\n"
		 "S: 250-8BITMIME\nS: 250-ENHANCEDSTATUSCODES\nS: 250-CHUNKING\nS: 250-SMTPUTF8\n"
		 "S: 250 DSN\n"
		 "C: ehlo client.test\nS: 250-mx.test\nS: 250-PIPELINING\nS: 250-SIZE 52428800\n"
		 "S: 250-8BITMIME\nS: 250-ENHANCEDSTATUSCODES\nS: 250-CHUNKING\nS: 250-SMTPUTF8\n"
		 "S: 250 DSN\n");
	run_text("ehlo-tls", "!cfg tls=1 auth=1 max_size=1000\n" GREET
		 "C: EHLO c.test\nS: 250-mx.test\nS: 250-PIPELINING\nS: 250-SIZE 1000\n"
		 "S: 250-8BITMIME\nS: 250-ENHANCEDSTATUSCODES\nS: 250-CHUNKING\nS: 250-SMTPUTF8\n"
		 "S: 250-DSN\nS: 250 STARTTLS\n");
	run_text("ehlo-implicit", "!cfg tls=1 auth=1 implicit=1\n" GREET
		 "C: EHLO c.test\nS: 250-mx.test\nS: 250-PIPELINING\nS: 250-SIZE 52428800\n"
		 "S: 250-8BITMIME\nS: 250-ENHANCEDSTATUSCODES\nS: 250-CHUNKING\nS: 250-SMTPUTF8\n"
		 "S: 250-DSN\nS: 250 AUTH PLAIN LOGIN\n");
	/* no_chunking (ringmta-sink --advertise-chunking off) drops only CHUNKING */
	run_text("ehlo-no-chunking", "!cfg no_chunking=1\n" GREET
		 "C: EHLO c.test\nS: 250-mx.test\nS: 250-PIPELINING\nS: 250-SIZE 52428800\n"
		 "S: 250-8BITMIME\nS: 250-ENHANCEDSTATUSCODES\nS: 250-SMTPUTF8\nS: 250 DSN\n");
	/* EHLO resets a transaction: RCPT then needs MAIL again */
	run_text("ehlo-reset", GREET HELO "C: MAIL FROM:<a@b.test>\nS: 250 2.1.0 Ok\n" HELO
		 "C: RCPT TO:<c@d.test>\nS: 503 5.5.1 Error: need MAIL command\n");
}

static void test_mail(void **st)
{
	(void)st;
	run_text("mail", "!cfg max_size=1000\n" GREET
		 "C: MAIL FROM:<a@b.test>\nS: 503 5.5.1 Error: send HELO/EHLO first\n"
		 "C: HELO c.test\nS: 250 mx.test\n"
		 "C: MAIL FROM:<a@b.test> SIZE=1001\nS: 552 5.3.4 Message size exceeds fixed limit\n"
		 "C: MAIL FROM:<a@@b.test>\nS: 501 5.1.7 Bad sender address syntax\n"
		 "C: MAIL FROM:a@b.test\nS: 501 5.1.7 Bad sender address syntax\n"
		 "C: MAIL TO:<a@b.test>\nS: 501 5.5.4 Syntax: MAIL FROM:<address>\n"
		 "C: MAIL FROM:<a@b.test> BODY=9BIT\nS: 501 5.5.4 Bad parameter syntax\n"
		 "C: MAIL FROM:<a@b.test> FOO=BAR\nS: 555 5.5.4 Unsupported option\n"
		 "C: MAIL FROM:<j\xc3\xb6@b.test>\nS: 553 5.6.7 Must declare SMTPUTF8 to send UTF-8 addresses\n"
		 "C: MAIL FROM:<j\xc3\xb6@b.test> SMTPUTF8\nS: 250 2.1.0 Ok\n"
		 "C: MAIL FROM:<>\nS: 503 5.5.1 Error: nested MAIL command\n"
		 "C: RSET\nS: 250 2.0.0 Ok\n"
		 "C: MAIL FROM:<> SIZE=1000 BODY=8BITMIME RET=HDRS ENVID=x+2By AUTH=<>\nS: 250 2.1.0 Ok\n"
		 "C: RCPT TO:<c@d.test>\nS: 250 2.1.5 Ok\n"
		 "C: DATA\nS: 354 End data with <CR><LF>.<CR><LF>\n"
		 "C: .\nS: 250 2.0.0 Ok: queued as Q1\n"
		 "!msg\n"
		 "E: from=<> size=1000 body=8BITMIME ret=HDRS envid=x+2By auth=<> to=<c@d.test> received=0\n");
	run_text("mail-policy", "!mail-refuse 452 4.3.1 Insufficient system storage\n" GREET HELO
		 "C: MAIL FROM:<a@b.test>\nS: 452 4.3.1 Insufficient system storage\n"
		 "C: RCPT TO:<c@d.test>\nS: 503 5.5.1 Error: need MAIL command\n");
}

static void test_rcpt(void **st)
{
	(void)st;
	run_text("rcpt", "!cfg max_rcpts=2\n"
		 "!rcpt-refuse far.test 554 5.7.1 Relay access denied\n"
		 "!rcpt-refuse local.test 550 5.1.1 User unknown\n" GREET HELO
		 "C: RCPT TO:<c@d.test>\nS: 503 5.5.1 Error: need MAIL command\n"
		 "C: MAIL FROM:<a@b.test>\nS: 250 2.1.0 Ok\n"
		 "C: RCPT TO:<x@far.test>\nS: 554 5.7.1 Relay access denied\n"
		 "C: RCPT TO:<x@local.test>\nS: 550 5.1.1 User unknown\n"
		 "C: RCPT TO:<>\nS: 501 5.1.3 Bad recipient address syntax\n"
		 "C: RCPT TO:<x@>\nS: 501 5.1.3 Bad recipient address syntax\n"
		 "C: RCPT FROM:<x@d.test>\nS: 501 5.5.4 Syntax: RCPT TO:<address>\n"
		 "C: RCPT TO:<x@d.test> NOTIFY=SOMETIMES\nS: 501 5.5.4 Bad parameter syntax\n"
		 "C: RCPT TO:<x@d.test> XYZ\nS: 555 5.5.4 Unsupported option\n"
		 "C: RCPT TO:<\xc3\xa9@d.test>\nS: 553 5.6.7 Must declare SMTPUTF8 to send UTF-8 addresses\n"
		 "C: RCPT TO:<c1@d.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c1+40d.test\nS: 250 2.1.5 Ok\n"
		 "C: RCPT TO:<Postmaster>\nS: 250 2.1.5 Ok\n"
		 "C: RCPT TO:<c3@d.test>\nS: 452 4.5.3 Error: too many recipients\n"
		 "C: DATA\nS: 354 End data with <CR><LF>.<CR><LF>\n"
		 "C: Subject: x\nC:\nC: hi\nC: .\nS: 250 2.0.0 Ok: queued as Q1\n"
		 "!msg\nB: Subject: x\nB:\nB: hi\n"
		 "E: from=<a@b.test> to=<c1@d.test> notify=6 orcpt=rfc822;c1+40d.test to=<Postmaster> received=0\n");
}

static void test_data(void **st)
{
	(void)st;
	run_text("data", GREET HELO "C: DATA\nS: 503 5.5.1 Error: need RCPT command\n"
		 "C: MAIL FROM:<a@b.test>\nS: 250 2.1.0 Ok\n"
		 "C: DATA\nS: 554 5.5.1 Error: no valid recipients\n"
		 "C: RCPT TO:<c@d.test>\nS: 250 2.1.5 Ok\n"
		 "C: DATA now\nS: 501 5.5.4 Syntax: DATA\n"
		 "C: DATA\nS: 354 End data with <CR><LF>.<CR><LF>\n"
		 "C: ..dot\nC: bare\\nlf\nC: .\nS: 250 2.0.0 Ok: queued as Q1\n"
		 "!msg\nB: .dot\nB: bare\nB: lf\n");
	run_text("data-commit-fail", "!commit eio\n!commit elimit\n" GREET HELO
		 "C: MAIL FROM:<a@b.test>\nC: RCPT TO:<c@d.test>\nC: DATA\nC: x\nC: .\n"
		 "C: MAIL FROM:<a@b.test>\nC: RCPT TO:<c@d.test>\nC: DATA\nC: x\nC: .\n"
		 "C: MAIL FROM:<a@b.test>\nC: RCPT TO:<c@d.test>\nC: DATA\nC: y\nC: .\n"
		 "S: 250 2.1.0 Ok\nS: 250 2.1.5 Ok\nS: 354 End data with <CR><LF>.<CR><LF>\n"
		 "S: 451 4.3.0 Error: queue file write error\n"
		 "S: 250 2.1.0 Ok\nS: 250 2.1.5 Ok\nS: 354 End data with <CR><LF>.<CR><LF>\n"
		 "S: 452 4.3.1 Insufficient system storage\n"
		 "S: 250 2.1.0 Ok\nS: 250 2.1.5 Ok\nS: 354 End data with <CR><LF>.<CR><LF>\n"
		 "S: 250 2.0.0 Ok: queued as Q3\n"
		 "!msg\nB: y\n");
	run_text("data-size", "!cfg max_size=10\n" GREET HELO
		 "C: MAIL FROM:<a@b.test>\nC: RCPT TO:<c@d.test>\nC: DATA\n"
		 "C: 0123456789\nC: .\nC: NOOP\n"
		 "S: 250 2.1.0 Ok\nS: 250 2.1.5 Ok\nS: 354 End data with <CR><LF>.<CR><LF>\n"
		 "S: 552 5.3.4 Error: message file too big\nS: 250 2.0.0 Ok\n");
	run_text("data-binarymime", GREET HELO
		 "C: MAIL FROM:<a@b.test> BODY=BINARYMIME\nC: RCPT TO:<c@d.test>\nC: DATA\n"
		 "S: 250 2.1.0 Ok\nS: 250 2.1.5 Ok\nS: 503 5.5.1 Error: BINARYMIME requires BDAT\n");
}

static void test_bdat(void **st)
{
	(void)st;
	run_text("bdat-errors", GREET
		 "C< BDAT 3\\r\\nabcNOOP\\r\\n\n"
		 "S: 503 5.5.1 Error: send HELO/EHLO first\nS: 250 2.0.0 Ok\n" HELO
		 "C< BDAT 3\\r\\nabcBDAT x\\r\\nBDAT 2 LASTX\\r\\nxyBDAT 0 LAST\\r\\n\n"
		 "S: 503 5.5.1 Error: need MAIL command\n"
		 "S: 501 5.5.4 Syntax: BDAT size [LAST]\nS: 501 5.5.4 Syntax: BDAT size [LAST]\n"
		 "S: 503 5.5.1 Error: need MAIL command\n"
		 "C: MAIL FROM:<a@b.test>\nS: 250 2.1.0 Ok\n"
		 "C< BDAT 2\\r\\nxy\n"
		 "S: 554 5.5.1 Error: no valid recipients\n"
		 "C: RCPT TO:<c@d.test>\nS: 250 2.1.5 Ok\n"
		 "C< BDAT 4\\r\\nab\\r\\n\n"
		 "S: 250 2.0.0 4 octets received\n"
		 "C: DATA\nS: 503 5.5.1 Error: DATA after BDAT\n"
		 "C< BDAT 0 LAST\\r\\n\n"
		 "S: 250 2.0.0 Ok: queued as Q1\n"
		 "!msg\nB< ab\\r\\n\n");
	run_text("bdat-size", "!cfg max_size=5\n" GREET HELO
		 "C: MAIL FROM:<a@b.test>\nC: RCPT TO:<c@d.test>\n"
		 "C< BDAT 3\\r\\nabcBDAT 3 LAST\\r\\ndefNOOP\\r\\n\n"
		 "S: 250 2.1.0 Ok\nS: 250 2.1.5 Ok\nS: 250 2.0.0 3 octets received\n"
		 "S: 552 5.3.4 Error: message file too big\nS: 250 2.0.0 Ok\n");
	/* a chunk larger than the whole limit is not skipped: 552 and close,
	 * whatever the state; a size with too many digits is a syntax error */
	run_text("bdat-absurd", "!cfg max_size=5\n" GREET HELO
		 "C: BDAT 99999999999999999999\nS: 501 5.5.4 Syntax: BDAT size [LAST]\n"
		 "C: MAIL FROM:<a@b.test>\nC: RCPT TO:<c@d.test>\n"
		 "C: BDAT 1000000000000 LAST\nC: NOOP\n"
		 "S: 250 2.1.0 Ok\nS: 250 2.1.5 Ok\n"
		 "S: 552 5.3.4 Message size exceeds fixed limit\n");
	run_text("bdat-absurd-first", "!cfg max_size=5\n" GREET "C: BDAT 6\nC: NOOP\n"
		 "S: 552 5.3.4 Message size exceeds fixed limit\n");
	run_text("bdat-rset", GREET HELO
		 "C: MAIL FROM:<a@b.test>\nC: RCPT TO:<c@d.test>\n"
		 "C< BDAT 3\\r\\nabcRSET\\r\\n\n"
		 "C: MAIL FROM:<a@b.test>\nC: RCPT TO:<c@d.test>\n"
		 "C< BDAT 3 LAST\\r\\nxyz\n"
		 "S: 250 2.1.0 Ok\nS: 250 2.1.5 Ok\nS: 250 2.0.0 3 octets received\nS: 250 2.0.0 Ok\n"
		 "S: 250 2.1.0 Ok\nS: 250 2.1.5 Ok\nS: 250 2.0.0 Ok: queued as Q1\n"
		 "!msg\nB< xyz\n"
		 "E: from=<a@b.test> to=<c@d.test> received=0 bdat\n");
}

static void test_small_commands(void **st)
{
	(void)st;
	run_text("small", GREET "C: NOOP\nS: 250 2.0.0 Ok\n"
		 "C: NOOP anything\nS: 250 2.0.0 Ok\n"
		 "C: RSET\nS: 250 2.0.0 Ok\n"
		 "C: RSET x\nS: 501 5.5.4 Syntax: RSET\n"
		 "C: VRFY postmaster\nS: 252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery\n"
		 "C: VRFY\nS: 501 5.5.4 Syntax: VRFY address\n"
		 "C: EXPN list\nS: 502 5.5.1 Error: EXPN command is disabled\n"
		 "C: HELP\nS: 214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH\n"
		 "C: STARTTLS\nS: 502 5.5.1 Error: command not implemented\n"
		 "C: AUTH PLAIN\nS: 503 5.5.1 Error: send HELO/EHLO first\n"
		 "C: FOO\nS: 500 5.5.1 Error: command not recognized\n"
		 "C: QUIT now\nS: 501 5.5.4 Syntax: QUIT\n"
		 "C: QUIT\nS: 221 2.0.0 Bye\n"
		 "C: NOOP\n");
}

static void test_bad_input(void **st)
{
	(void)st;
	/* 2046 octets + CRLF = 2048: the longest line allowed; one more is not */
	run_text("line-limit", GREET "C: NOOP \\{2041:x}\nS: 250 2.0.0 Ok\n"
		 "C: NOOP \\{2042:x}\nS: 500 5.5.2 Error: line too long\n"
		 "C< NOOP \\{2042:x}\\n\nS: 250 2.0.0 Ok\n"
		 "C: NOOP \\{9000:y}\nS: 500 5.5.2 Error: line too long\n"
		 "C< NOOP\\n\nS: 250 2.0.0 Ok\n"
		 "C< NO\\x00OP\\r\\nNOOP \\x00\\r\\n\n"
		 "S: 500 5.5.1 Error: command not recognized\nS: 500 5.5.2 Error: NUL in command line\n"
		 "C< \\r\\n\nS: 500 5.5.1 Error: command not recognized\n");
	run_text("errors", "!cfg max_errors=3\n" GREET
		 "C: A\nC: B\nC: C\nC: D\nC: NOOP\n"
		 "S: 500 5.5.1 Error: command not recognized\nS: 500 5.5.1 Error: command not recognized\n"
		 "S: 500 5.5.1 Error: command not recognized\nS: 500 5.5.1 Error: command not recognized\n"
		 "S: 421 4.7.0 mx.test Error: too many errors\n");
	run_text("http", GREET "C: GET / HTTP/1.1\nC: Host: x\nC: \n"
		 "S: 500 5.5.1 Error: HTTP request on the SMTP port\n");
}

static void test_starttls(void **st)
{
	(void)st;
	run_text("starttls", "!cfg tls=1\n" GREET HELO
		 "C: MAIL FROM:<a@b.test>\nS: 250 2.1.0 Ok\n"
		 "C: STARTTLS\nS: 503 5.5.1 Error: MAIL transaction in progress\n"
		 "C: RSET\nS: 250 2.0.0 Ok\n"
		 "C: STARTTLS x\nS: 501 5.5.4 Syntax: STARTTLS\n"
		 "C: STARTTLS\nC: MAIL FROM:<evil@x.test>\n!tls\n"
		 "S: 220 2.0.0 Ready to start TLS\n"
		 "C: MAIL FROM:<a@b.test>\nS: 503 5.5.1 Error: send HELO/EHLO first\n"
		 "C: STARTTLS\nS: 503 5.5.1 Error: TLS already active\n");
	run_text("starttls-fail", "!cfg tls=1\n!tls-fail\n" GREET
		 "C: STARTTLS\n!tls\nC: NOOP\nS: 220 2.0.0 Ready to start TLS\n");
}

static void test_auth(void **st)
{
	(void)st;
	/* "\0alice\0secret" = AGFsaWNlAHNlY3JldA== ; alice = YWxpY2U= ; secret = c2VjcmV0 */
	run_text("auth-pretls", "!cfg tls=1 auth=1\n" GREET HELO
		 "C: AUTH PLAIN AGFsaWNlAHNlY3JldA==\nS: 530 5.7.0 Must issue a STARTTLS command first\n");
	run_text("auth", "!cfg tls=1 auth=1 implicit=1\n" GREET
		 "C: AUTH PLAIN AGFsaWNlAHNlY3JldA==\nS: 503 5.5.1 Error: send HELO/EHLO first\n" HELO
		 "C: AUTH\nS: 501 5.5.4 Syntax: AUTH mechanism\n"
		 "C: AUTH CRAM-MD5\nS: 504 5.5.4 Unsupported authentication mechanism\n"
		 "C: AUTH PLAIN !!!!\nS: 501 5.5.2 Error: invalid base64 data\n"
		 "C: AUTH PLAIN\nS: 334 \n"
		 "C: *\nS: 501 5.0.0 Authentication cancelled\n"
		 "C: AUTH LOGIN\nS: 334 VXNlcm5hbWU6\nC: YWxpY2U=\nS: 334 UGFzc3dvcmQ6\n"
		 "C: c2VjcmV4\nS: 535 5.7.8 Error: authentication failed\n"
		 "C: MAIL FROM:<a@b.test>\nS: 250 2.1.0 Ok\n"
		 "C: AUTH PLAIN AGFsaWNlAHNlY3JldA==\nS: 503 5.5.1 Error: MAIL transaction in progress\n"
		 "C: RSET\nS: 250 2.0.0 Ok\n"
		 "C: AUTH PLAIN\nS: 334 \nC: AGFsaWNlAHNlY3JldA==\nS: 235 2.7.0 Authentication successful\n"
		 "C: AUTH LOGIN\nS: 503 5.5.1 Error: already authenticated\n");
	run_text("auth-login-ir", "!cfg tls=1 auth=1 implicit=1\n" GREET HELO
		 "C: AUTH LOGIN YWxpY2U=\nS: 334 UGFzc3dvcmQ6\nC: c2VjcmV0\n"
		 "S: 235 2.7.0 Authentication successful\n");
	run_text("auth-host-fail", "!cfg tls=1 auth=1 implicit=1\n!auth-fail\n" GREET HELO
		 "C: AUTH PLAIN AGFsaWNlAHNlY3JldA==\nS: 535 5.7.8 Error: authentication failed\n"
		 "C: AUTH LOGIN\nS: 334 VXNlcm5hbWU6\nC: \\{13000:Q}\nS: 500 5.5.2 Error: line too long\n"
		 "C: NOOP\nS: 250 2.0.0 Ok\n");
}

static void test_limits(void **st)
{
	(void)st;
	/* a transaction arena too small for the envelope: 452 4.3.1, no abort */
	run_text("arena", "!cfg tx_arena=1500\n" GREET HELO
		 "C: MAIL FROM:<a@b.test>\nS: 250 2.1.0 Ok\n"
		 "C: RCPT TO:<\\{60:r}@d.test>\nS: 250 2.1.5 Ok\n"
		 "C: RCPT TO:<\\{60:s}@d.test>\nS: 250 2.1.5 Ok\n"
		 "C: RCPT TO:<\\{60:t}@\\{60:d}.\\{60:e}.\\{60:f}.test>\nS: 250 2.1.5 Ok\n"
		 "C: RCPT TO:<\\{60:u}@\\{60:d}.\\{60:e}.\\{60:f}.test>\nS: 250 2.1.5 Ok\n"
		 "C: RCPT TO:<\\{60:v}@\\{60:d}.\\{60:e}.\\{60:f}.test>\nS: 452 4.3.1 Insufficient system storage\n"
		 "C: RSET\nS: 250 2.0.0 Ok\n");
	/* a reply buffer with room for little more than one reply: FLUSH */
	run_text("flush", "!cfg reply_cap=600\n" GREET EHLO_PLAIN
		 "C: NOOP\nC: NOOP\nC: NOOP\nC: NOOP\nC: NOOP\nC: NOOP\n"
		 "S: 250 2.0.0 Ok\nS: 250 2.0.0 Ok\nS: 250 2.0.0 Ok\nS: 250 2.0.0 Ok\n"
		 "S: 250 2.0.0 Ok\nS: 250 2.0.0 Ok\n");
}

static void test_timeout(void **st)
{
	(void)st;
	struct script sc;
	struct host h;
	script_init(&sc);
	host_start(&h, &sc);
	static const char a[] = "HELO x.test\r\nDATA\r\n";
	static const char b[] = "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\npartial";
	host_piece(&h, a, sizeof a - 1);
	assert_false(smtp_server_in_body(h.s));
	host_piece(&h, b, sizeof b - 1);
	assert_true(smtp_server_in_body(h.s));
	struct smtp_server_io io = host_io(&h);
	smtp_server_timeout(h.s, &io);
	host_flush(&h);
	assert_non_null(strstr(h.got_replies.p, "421 4.4.2 mx.test Error: timeout exceeded\r\n"));
	size_t used;
	assert_int_equal(smtp_server_feed(h.s, "NOOP\r\n", 6, &used, &io), SMTP_EV_CLOSE);
	host_stop(&h);
	script_free(&sc);
}

static void test_received(void **st)
{
	(void)st;
	char mem[1024];
	struct buf b;
	struct smtp_received r = {
		.helo = SLICE_LIT("client.test"),
		.client = SLICE_LIT("[192.0.2.1]"),
		.hostname = SLICE_LIT("mx.test"),
		.queue_id = SLICE_LIT("ABC123"),
		.rcpt = SLICE_LIT("bob@d.test"),
		.date = SLICE_LIT("Tue, 2 Jan 2024 10:00:00 +0000"),
		.esmtp = true,
	};
	buf_init(&b, mem, sizeof mem);
	assert_int_equal(smtp_received_put(&b, &r), 0);
	assert_true(slice_eq(buf_slice(&b),
			     SLICE_LIT("Received: from client.test ([192.0.2.1])\r\n"
				       "\tby mx.test (ringmta) with ESMTP id ABC123\r\n"
				       "\tfor <bob@d.test>; Tue, 2 Jan 2024 10:00:00 +0000\r\n")));
	static const struct {
		bool esmtp, tls, authed, utf8;
		const char *with;
	} kw[] = {
		{ false, false, false, false, "with SMTP id" },   { true, true, false, false, "with ESMTPS id" },
		{ true, false, true, false, "with ESMTPA id" },   { true, true, true, false, "with ESMTPSA id" },
		{ true, false, false, true, "with UTF8SMTP id" }, { true, true, true, true, "with UTF8SMTPSA id" },
		{ true, true, false, true, "with UTF8SMTPS id" }, { true, false, true, true, "with UTF8SMTPA id" },
	};
	for (size_t i = 0; i < sizeof kw / sizeof kw[0]; i++) {
		r.esmtp = kw[i].esmtp;
		r.tls = kw[i].tls;
		r.authed = kw[i].authed;
		r.utf8 = kw[i].utf8;
		buf_init(&b, mem, sizeof mem - 1);
		assert_int_equal(smtp_received_put(&b, &r), 0);
		mem[b.len] = '\0';
		assert_non_null(strstr(mem, kw[i].with));
	}
	/* no recipient: no "for"; control bytes neutralised; all or nothing */
	r.rcpt = SLICE_NULL;
	r.helo = SLICE_LIT("x\r\ny");
	r.esmtp = false;
	buf_init(&b, mem, sizeof mem);
	assert_int_equal(smtp_received_put(&b, &r), 0);
	assert_true(slice_eq(buf_slice(&b),
			     SLICE_LIT("Received: from x??y ([192.0.2.1])\r\n"
				       "\tby mx.test (ringmta) with SMTP id ABC123;\r\n"
				       "\tTue, 2 Jan 2024 10:00:00 +0000\r\n")));
	buf_init(&b, mem, 40);
	assert_int_equal(smtp_received_put(&b, &r), RM_ENOMEM);
	assert_int_equal(b.len, 0);
}

static void test_server_received(void **st)
{
	(void)st;
	struct script sc;
	struct host h;
	script_init(&sc);
	host_start(&h, &sc);
	struct smtp_server_io io = host_io(&h);
	size_t used;
	const char *in = "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<bob@d.test>\r\nDATA\r\nx\r\n.\r\n";
	size_t off = 0, n = strlen(in);
	enum smtp_server_ev ev = SMTP_EV_NONE;
	while (off < n && (ev = smtp_server_feed(h.s, in + off, n - off, &used, &io)) != SMTP_EV_COMMIT)
		off += used;
	assert_int_equal(ev, SMTP_EV_COMMIT);
	char mem[512];
	struct buf b;
	buf_init(&b, mem, sizeof mem);
	assert_int_equal(smtp_server_received(h.s, &b, SLICE_LIT("[127.0.0.1]"), SLICE_LIT("Q9"),
					      SLICE_LIT("D")), 0);
	assert_true(slice_eq(buf_slice(&b), SLICE_LIT("Received: from c.test ([127.0.0.1])\r\n"
						      "\tby mx.test (ringmta) with ESMTP id Q9\r\n"
						      "\tfor <bob@d.test>; D\r\n")));
	smtp_server_committed(h.s, 0, SLICE_LIT("Q9"), &io);
	host_stop(&h);
	script_free(&sc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_size),         cmocka_unit_test(test_helo_ehlo),
		cmocka_unit_test(test_mail),         cmocka_unit_test(test_rcpt),
		cmocka_unit_test(test_data),         cmocka_unit_test(test_bdat),
		cmocka_unit_test(test_small_commands), cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_starttls),     cmocka_unit_test(test_auth),
		cmocka_unit_test(test_limits),       cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_received),     cmocka_unit_test(test_server_received),
		cmocka_unit_test(test_transcripts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
