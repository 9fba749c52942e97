/* test_smtp_client.c - the client engine against golden transcripts.
 *
 * A transcript is a list of blocks, "S..." bytes the server sends and
 * "C..." bytes the client must send, in conversation order. The driver
 * plays the server strictly: it feeds a server block only once the client
 * has sent every client block before it, and fails if the client sends a
 * block early (a command not allowed before a reply) or sends anything that
 * differs. The host's side answers events like outbound delivery would (next
 * message or QUIT on READY, the body on BODY, a handshake on STARTTLS) and
 * logs them; the log must match too. Each transcript is fed whole, split at
 * every byte and one byte at a time, each piece in guarded memory, with a
 * roomy output buffer and with one so small that it fills up (FLUSH).
 * Then: the dot-stuffing helper against a naive reference on random bodies.
 */
#include "tests/unit/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/smtp_client.h"

#define BODY_A "Subject: hi\r\n\r\nhello\r\n.dot line\r\n"
#define BODY_A_STUFFED "Subject: hi\r\n\r\nhello\r\n..dot line\r\n.\r\n"

struct tmsg {
	struct smtp_client_msg m;
	const char *body;
};

static const struct smtp_client_rcpt rcpt_b[] = { { SLICE_LIT("b@y.test"), 0, SLICE_NULL } };
static const struct smtp_client_rcpt rcpt_bc[] = { { SLICE_LIT("b@y.test"), 0, SLICE_NULL },
						   { SLICE_LIT("c@y.test"), 0, SLICE_NULL } };
static const struct smtp_client_rcpt rcpt_bcd[] = { { SLICE_LIT("b@y.test"), 0, SLICE_NULL },
						    { SLICE_LIT("c@y.test"), 0, SLICE_NULL },
						    { SLICE_LIT("d@y.test"), 0, SLICE_NULL } };
static const struct smtp_client_rcpt rcpt_dsn[] = {
	{ SLICE_LIT("b@y.test"), SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE, SLICE_LIT("rfc822;b@y.test") },
	{ SLICE_LIT("c@y.test"), SMTP_NOTIFY_NEVER, SLICE_NULL },
};

#define MSG(rcpts, body_)                                                                   \
	{ { .from = SLICE_LIT("a@x.test"), .rcpt = rcpts, .nrcpt = sizeof rcpts / sizeof *rcpts, \
	    .size = sizeof(body_) - 1 }, body_ }

static const struct tmsg msg_a = MSG(rcpt_b, BODY_A);
static const struct tmsg msg_bc = MSG(rcpt_bc, BODY_A);
static const struct tmsg msg_bcd = MSG(rcpt_bcd, BODY_A);
static const struct tmsg msg_empty = MSG(rcpt_b, "");
static const struct tmsg msg_dsn = {
	{ .from = SLICE_LIT("a@x.test"), .rcpt = rcpt_dsn, .nrcpt = 2, .size = sizeof(BODY_A) - 1,
	  .ret = SMTP_RET_HDRS, .envid = SLICE_LIT("QQ314159"), .body = SMTP_BODY_8BITMIME },
	BODY_A
};

struct transcript {
	const char *name;
	const char *const *blocks; /* NULL-terminated */
	const struct tmsg *const *msgs; /* NULL-terminated */
	enum smtp_client_tls tls;
	bool no_pipelining;
	size_t chunk;              /* BDAT chunk size, 0: all at once */
	const char *log;
	size_t unread;             /* server bytes left unread at a close */
	bool pipeline_next;        /* cfg.pipeline_next; the log then also
				    * says "over" when a transaction ends */
};

#define MAXB 64
struct tctx {
	const struct transcript *t;
	char srv[8192], cli[8192];
	size_t srv_len, cli_len;
	size_t s_end[MAXB], s_creq[MAXB], ns;
	size_t outcap;
	/* one run */
	struct smtp_client c;
	struct smtp_client_cfg cfg;
	char outmem[4096];
	struct buf out;
	char got[8192];
	size_t got_len, fed, next_msg;
	uint64_t over;             /* smtp_client_messages seen */
	char log[1024];
	size_t log_len;
	bool closed;
	char err[512];
};

static void tlog(struct tctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tlog(struct tctx *x, const char *fmt, ...)
{
	va_list ap;

	if (x->log_len)
		x->log[x->log_len++] = ' ';
	va_start(ap, fmt);
	x->log_len += (size_t)vsnprintf(x->log + x->log_len, sizeof x->log - x->log_len, fmt, ap);
	va_end(ap);
}

static void terr(struct tctx *x, const char *what)
{
	if (!x->err[0])
		snprintf(x->err, sizeof x->err, "%s (fed %zu, client wrote %zu: \"%.*s\")", what, x->fed,
			 x->got_len, (int)x->got_len, x->got);
}

/* avail - server bytes the conversation allows so far */
static size_t avail(const struct tctx *x)
{
	size_t a = 0;
	for (size_t j = 0; j < x->ns && x->s_creq[j] <= x->got_len; j++)
		a = x->s_end[j];
	return a;
}

/* emit - the client sent p[0..n): check it against the transcript */
static void emit(struct tctx *x, const char *p, size_t n)
{
	size_t limit = x->cli_len;

	for (size_t j = 0; j < x->ns; j++)
		if (x->s_end[j] > x->fed) {
			limit = x->s_creq[j];
			break;
		}
	if (x->got_len + n > x->cli_len || memcmp(x->cli + x->got_len, p, n) != 0) {
		memcpy(x->got + x->got_len, p, n < sizeof x->got - x->got_len ? n : 0);
		x->got_len += n < sizeof x->got - x->got_len ? n : 0;
		terr(x, "client sent something else");
		return;
	}
	memcpy(x->got + x->got_len, p, n);
	x->got_len += n;
	if (x->got_len > limit)
		terr(x, "client sent before the server's reply");
}

static void drain(struct tctx *x)
{
	emit(x, x->out.ptr, x->out.len);
	x->out.len = 0;
}

static void send_body(struct tctx *x)
{
	const struct tmsg *m = x->t->msgs[x->next_msg - 1];
	size_t len = strlen(m->body);

	if (smtp_client_bdat_mode(&x->c)) {
		size_t chunk = x->t->chunk ? x->t->chunk : len, off = 0;
		do {
			size_t n = len - off < chunk ? len - off : chunk;
			bool last = off + n == len;
			int rc = smtp_client_bdat(&x->c, &x->out, n, last);
			if (rc == RM_ENOMEM) {
				drain(x);
				rc = smtp_client_bdat(&x->c, &x->out, n, last);
			}
			assert_int_equal(rc, 0);
			drain(x);
			emit(x, m->body + off, n);
			off += n;
		} while (off < len);
		return;
	}
	struct smtp_stuff st;
	struct slice v[2];
	size_t off = 0;
	smtp_stuff_init(&st);
	while (off < len) {
		size_t nv = 0;
		off += smtp_stuff_feed(&st, m->body + off, len - off, v, 2, &nv);
		for (size_t i = 0; i < nv; i++)
			emit(x, v[i].ptr, v[i].len);
	}
	struct slice end = smtp_stuff_end(&st);
	emit(x, end.ptr, end.len);
	assert_int_equal(smtp_client_body_sent(&x->c), 0);
}

static unsigned long flushes; /* FLUSH events seen: the small buffer fills */

/* on_event - the host's side; returns 1 when the session is over */
static int on_event(struct tctx *x, enum smtp_client_ev ev)
{
	const struct smtp_reply *r = smtp_client_reply(&x->c);

	switch (ev) {
	case SMTP_CL_FLUSH:
		flushes++;
		return 0;
	case SMTP_CL_NONE:
		return 0;
	case SMTP_CL_READY:
		tlog(x, "ready");
		if (x->t->msgs[x->next_msg])
			assert_int_equal(smtp_client_send(&x->c, &x->t->msgs[x->next_msg++]->m), 0);
		else
			assert_int_equal(smtp_client_quit(&x->c), 0);
		return 0;
	case SMTP_CL_RCPT:
		tlog(x, "rcpt%u=%u", (unsigned)smtp_client_rcpt_index(&x->c), r->code);
		return 0;
	case SMTP_CL_RESULT:
		tlog(x, "result=%u", r->code);
		return 0;
	case SMTP_CL_BODY:
		tlog(x, "body");
		send_body(x);
		return 0;
	case SMTP_CL_STARTTLS:
		tlog(x, "tls");
		smtp_client_tls_started(&x->c, true);
		return 0;
	case SMTP_CL_CLOSE:
		tlog(x, "close=%s", smtp_client_fail_name(smtp_client_fail(&x->c)));
		x->closed = true;
		return 1;
	}
	return 1;
}

static void treset(void *ctx)
{
	struct tctx *x = ctx;
	memset(&x->cfg, 0, sizeof x->cfg);
	x->cfg.helo_name = SLICE_LIT("client.test");
	x->cfg.tls = x->t->tls;
	x->cfg.no_pipelining = x->t->no_pipelining;
	x->cfg.pipeline_next = x->t->pipeline_next;
	smtp_client_init(&x->c, &x->cfg);
	buf_init(&x->out, x->outmem, x->outcap);
	x->got_len = x->fed = x->next_msg = x->log_len = 0;
	x->over = 0;
	x->log[0] = x->err[0] = 0;
	x->closed = false;
}

static int tfeed(void *ctx, const char *p, size_t n)
{
	struct tctx *x = ctx;
	size_t pos = 0;
	enum smtp_client_ev ev = SMTP_CL_NONE;
	int guard = 0;

	if (x->closed)
		return 1;
	do {
		size_t a = avail(x) - x->fed, used, wrote = x->got_len;
		if (a > n - pos)
			a = n - pos;
		ev = smtp_client_feed(&x->c, p + pos, a, &used, &x->out);
		assert_true(used <= a);
		pos += used;
		x->fed += used;
		drain(x);
		/* As a host must: an RCPT or RESULT belongs to the oldest open
		 * message, so it is taken before that message is counted over;
		 * anything else (READY) comes after. */
		bool reply_ev = ev == SMTP_CL_RCPT || ev == SMTP_CL_RESULT;
		if (reply_ev && on_event(x, ev))
			return 1;
		if (x->t->pipeline_next)
			for (; x->over < smtp_client_messages(&x->c); x->over++)
				tlog(x, "over");
		if (!reply_ev && on_event(x, ev))
			return 1;
		if (ev == SMTP_CL_NONE && a == 0 && pos < n && x->got_len == wrote) {
			terr(x, "stalled: the client waits, the server waits");
			return 1;
		}
		if (x->err[0] || ++guard > 100000)
			return 1;
	} while (pos < n || ev != SMTP_CL_NONE);
	return 0;
}

static void tcheck(void *ctx, size_t k)
{
	struct tctx *x = ctx;

	if (!x->err[0] && x->got_len != x->cli_len)
		terr(x, "client output incomplete");
	if (!x->err[0] && x->fed + x->t->unread != x->srv_len)
		terr(x, "server bytes left over");
	if (!x->err[0] && strcmp(x->log, x->t->log) != 0)
		terr(x, "event log differs");
	if (x->err[0])
		fail_msg("%s, split %zu, out %zu: %s\n  log: %s\n want: %s", x->t->name, k, x->outcap,
			 x->err, x->log, x->t->log);
}

static void run_transcript(const struct transcript *t)
{
	struct tctx *x = calloc(1, sizeof *x);
	x->t = t;
	for (const char *const *b = t->blocks; *b; b++) {
		size_t n = strlen(*b + 1);
		if (**b == 'S') {
			memcpy(x->srv + x->srv_len, *b + 1, n);
			x->srv_len += n;
			x->s_end[x->ns] = x->srv_len;
			x->s_creq[x->ns++] = x->cli_len;
		} else {
			memcpy(x->cli + x->cli_len, *b + 1, n);
			x->cli_len += n;
		}
	}
	size_t caps[] = { sizeof x->outmem, 70 };
	for (size_t i = 0; i < 2; i++) {
		x->outcap = caps[i];
		split_each(x->srv, x->srv_len, treset, tfeed, tcheck, x);
		split_bytes(x->srv, x->srv_len, treset, tfeed, tcheck, x);
	}
	free(x);
}

#define EHLO_PIPE "S250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250 8BITMIME\r\n"
#define GREET "S220 mx.test ESMTP\r\n", "CEHLO client.test\r\n"
#define QUIT "CQUIT\r\n", "S221 2.0.0 bye\r\n"

static const struct tmsg *const only_a[] = { &msg_a, NULL };

static const char *const t_pipelined[] = {
	GREET, EHLO_PIPE,
	"CMAIL FROM:<a@x.test> SIZE=33\r\nRCPT TO:<b@y.test>\r\nDATA\r\n",
	"S250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n",
	"C" BODY_A_STUFFED, "S250 2.0.0 queued\r\n", QUIT, NULL
};

static const char *const t_nopipe[] = {
	GREET, "S250-mx.test\r\n250 SIZE\r\n",
	"CMAIL FROM:<a@x.test> SIZE=33\r\n", "S250 ok\r\n",
	"CRCPT TO:<b@y.test>\r\n", "S250 ok\r\n",
	"CRCPT TO:<c@y.test>\r\n", "S250 ok\r\n",
	"CDATA\r\n", "S354 go\r\n",
	"C" BODY_A_STUFFED, "S250 queued\r\n", QUIT, NULL
};
static const struct tmsg *const only_bc[] = { &msg_bc, NULL };

/* The server offers PIPELINING; the configuration says not to use it. */
static const char *const t_nopipe_cfg[] = {
	GREET, EHLO_PIPE,
	"CMAIL FROM:<a@x.test> SIZE=33\r\n", "S250 ok\r\n",
	"CRCPT TO:<b@y.test>\r\n", "S250 ok\r\n",
	"CRCPT TO:<c@y.test>\r\n", "S250 ok\r\n",
	"CDATA\r\n", "S354 go\r\n",
	"C" BODY_A_STUFFED, "S250 queued\r\n", QUIT, NULL
};

static const char *const t_helo[] = {
	GREET, "S502 5.5.1 no EHLO here\r\n", "CHELO client.test\r\n", "S250 mx.test\r\n",
	"CMAIL FROM:<a@x.test>\r\n", "S250 ok\r\n", "CRCPT TO:<b@y.test>\r\n", "S250 ok\r\n",
	"CDATA\r\n", "S354 go\r\n", "C" BODY_A_STUFFED, "S250 queued\r\n", QUIT, NULL
};

static const char *const t_starttls[] = {
	GREET, "S250-mx.test\r\n250-STARTTLS\r\n250 SIZE 10000\r\n", "CSTARTTLS\r\n",
	"S220 2.0.0 go ahead\r\n", "CEHLO client.test\r\n", EHLO_PIPE,
	"CMAIL FROM:<a@x.test> SIZE=33\r\nRCPT TO:<b@y.test>\r\nDATA\r\n",
	"S250 ok\r\n250 ok\r\n354 go\r\n", "C" BODY_A_STUFFED, "S250 queued\r\n", QUIT, NULL
};

static const char *const t_tls_missing[] = {
	GREET, "S250-mx.test\r\n250 PIPELINING\r\n", "CQUIT\r\n", NULL
};

/* PIPELINING and CHUNKING: MAIL, the RCPTs, BDAT and the body in one
 * group; the replies come in the same order. */
#define EHLO_CHUNK "S250-mx.test\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 SIZE\r\n"
#define BDAT_A "BDAT 33 LAST\r\n" BODY_A
static const char *const t_bdat[] = {
	GREET, EHLO_CHUNK,
	"CMAIL FROM:<a@x.test> SIZE=33\r\nRCPT TO:<b@y.test>\r\n" BDAT_A,
	"S250 ok\r\n250 ok\r\n250 2.0.0 queued\r\n", QUIT, NULL
};

static const char *const t_bdat_chunks[] = {
	GREET, "S250-mx.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n",
	"CMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"
	"BDAT 20\r\nSubject: hi\r\n\r\nhelloBDAT 13 LAST\r\n\r\n.dot line\r\n",
	"S250 ok\r\n250 ok\r\n250 2.0.0 20 octets\r\n250 2.0.0 queued\r\n", QUIT, NULL
};

/* Refusals in the middle of the group keep their per-recipient meaning. */
static const char *const t_bdat_mixed[] = {
	GREET, EHLO_CHUNK,
	"CMAIL FROM:<a@x.test> SIZE=33\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\n"
	"RCPT TO:<d@y.test>\r\n" BDAT_A,
	"S250 ok\r\n450 4.2.0 later\r\n250 ok\r\n550 5.1.1 unknown\r\n250 2.0.0 queued\r\n", QUIT, NULL
};

/* Every recipient refused: the BDAT's 554 is read past, the open
 * transaction gets an RSET at the head of the next group. */
static const char *const t_bdat_none[] = {
	GREET, EHLO_CHUNK,
	"CMAIL FROM:<a@x.test> SIZE=33\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\n" BDAT_A,
	"S250 ok\r\n550 5.1.1 no\r\n450 4.2.1 later\r\n554 5.5.1 no valid recipients\r\n",
	"CRSET\r\nMAIL FROM:<a@x.test> SIZE=33\r\nRCPT TO:<b@y.test>\r\n" BDAT_A,
	"S250 reset\r\n250 ok\r\n250 ok\r\n250 queued\r\n", QUIT, NULL
};

/* MAIL refused: the RCPTs and the BDAT get 503, MAIL's reply is the result. */
static const char *const t_bdat_mail_refused[] = {
	GREET, EHLO_CHUNK,
	"CMAIL FROM:<a@x.test> SIZE=33\r\nRCPT TO:<b@y.test>\r\n" BDAT_A,
	"S550 5.7.1 sender refused\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n",
	"CMAIL FROM:<a@x.test> SIZE=33\r\nRCPT TO:<b@y.test>\r\n" BDAT_A,
	"S250 ok\r\n250 ok\r\n250 queued\r\n", QUIT, NULL
};

/* Every recipient refused with the body in two chunks: both replies read past. */
static const char *const t_bdat_none_chunks[] = {
	GREET, "S250-mx.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n",
	"CMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"
	"BDAT 20\r\nSubject: hi\r\n\r\nhelloBDAT 13 LAST\r\n\r\n.dot line\r\n",
	"S250 ok\r\n550 5.1.1 no\r\n554 5.5.1 no valid recipients\r\n503 5.5.1 no\r\n", QUIT, NULL
};

/* 421 in the middle of the group ends the session. */
static const char *const t_bdat_421[] = {
	GREET, EHLO_CHUNK,
	"CMAIL FROM:<a@x.test> SIZE=33\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\n" BDAT_A,
	"S250 ok\r\n250 ok\r\n421 4.3.2 shutting down\r\n", NULL
};

/* CHUNKING without PIPELINING: one command at a time, BDAT last. */
static const char *const t_bdat_nopipe[] = {
	GREET, "S250-mx.test\r\n250 CHUNKING\r\n",
	"CMAIL FROM:<a@x.test>\r\n", "S250 ok\r\n", "CRCPT TO:<b@y.test>\r\n", "S550 no\r\n",
	"CRCPT TO:<c@y.test>\r\n", "S250 ok\r\n", "CBDAT 33 LAST\r\n" BODY_A, "S250 queued\r\n", QUIT,
	NULL
};

static const char *const t_mixed[] = {
	GREET, EHLO_PIPE,
	"CMAIL FROM:<a@x.test> SIZE=33\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\n"
	"RCPT TO:<d@y.test>\r\nDATA\r\n",
	"S250 ok\r\n250 ok\r\n450 4.2.0 later\r\n550 5.1.1 unknown\r\n354 go\r\n",
	"C" BODY_A_STUFFED, "S250 queued\r\n", QUIT, NULL
};
static const struct tmsg *const only_bcd[] = { &msg_bcd, NULL };

static const char *const t_refused[] = {
	GREET, EHLO_PIPE,
	"CMAIL FROM:<a@x.test> SIZE=33\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n",
	"S250 ok\r\n550 5.1.1 no\r\n550 5.1.1 no\r\n554 5.5.1 no valid recipients\r\n",
	"CRSET\r\nMAIL FROM:<a@x.test> SIZE=33\r\nRCPT TO:<b@y.test>\r\nDATA\r\n",
	"S250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", "C" BODY_A_STUFFED, "S250 queued\r\n",
	QUIT, NULL
};
static const struct tmsg *const bc_then_a[] = { &msg_bc, &msg_a, NULL };

static const char *const t_refused_nopipe[] = {
	GREET, "S250 mx.test\r\n",
	"CMAIL FROM:<a@x.test>\r\n", "S250 ok\r\n", "CRCPT TO:<b@y.test>\r\n", "S550 no\r\n",
	"CRCPT TO:<c@y.test>\r\n", "S450 later\r\n", QUIT, NULL
};

/* Without PIPELINING the RSET waits for its own reply before MAIL. */
static const char *const t_rset_nopipe[] = {
	GREET, "S250 mx.test\r\n",
	"CMAIL FROM:<a@x.test>\r\n", "S250 ok\r\n", "CRCPT TO:<b@y.test>\r\n", "S550 no\r\n",
	"CRCPT TO:<c@y.test>\r\n", "S550 no\r\n",
	"CRSET\r\n", "S250 reset\r\n",
	"CMAIL FROM:<a@x.test>\r\n", "S250 ok\r\n", "CRCPT TO:<b@y.test>\r\n", "S250 ok\r\n",
	"CDATA\r\n", "S354 go\r\n", "C" BODY_A_STUFFED, "S250 queued\r\n", QUIT, NULL
};

static const char *const t_354_none[] = {
	GREET, EHLO_PIPE,
	"CMAIL FROM:<a@x.test> SIZE=33\r\nRCPT TO:<b@y.test>\r\nDATA\r\n",
	"S250 ok\r\n550 no\r\n354 go\r\n", "C.\r\n", "S554 no valid recipients\r\n",
	"CMAIL FROM:<a@x.test> SIZE=33\r\nRCPT TO:<b@y.test>\r\nDATA\r\n",
	"S250 ok\r\n250 ok\r\n354 go\r\n", "C" BODY_A_STUFFED, "S250 queued\r\n", QUIT, NULL
};
static const struct tmsg *const a_then_a[] = { &msg_a, &msg_a, NULL };

static const char *const t_mail_refused[] = {
	GREET, EHLO_PIPE,
	"CMAIL FROM:<a@x.test> SIZE=33\r\nRCPT TO:<b@y.test>\r\nDATA\r\n",
	"S550 5.7.1 sender refused\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n", QUIT, NULL
};

static const char *const t_421[] = {
	GREET, EHLO_PIPE,
	"CMAIL FROM:<a@x.test> SIZE=33\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n",
	"S250 ok\r\n250 ok\r\n421 4.3.2 shutting down\r\n", NULL
};

static const char *const t_two[] = {
	GREET, EHLO_PIPE,
	"CMAIL FROM:<a@x.test> SIZE=33\r\nRCPT TO:<b@y.test>\r\nDATA\r\n",
	"S250 ok\r\n250 ok\r\n354 go\r\n", "C" BODY_A_STUFFED, "S250 queued 1\r\n",
	"CMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n",
	"S250 ok\r\n250 ok\r\n354 go\r\n", "C.\r\n", "S250 queued 2\r\n", QUIT, NULL
};
static const struct tmsg *const a_then_empty[] = { &msg_a, &msg_empty, NULL };

static const char *const t_dsn[] = {
	GREET, "S250-mx.test\r\n250-PIPELINING\r\n250-DSN\r\n250-8BITMIME\r\n250 SIZE 100\r\n",
	"CMAIL FROM:<a@x.test> SIZE=33 BODY=8BITMIME RET=HDRS ENVID=QQ314159\r\n"
	"RCPT TO:<b@y.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@y.test\r\n"
	"RCPT TO:<c@y.test> NOTIFY=NEVER\r\nDATA\r\n",
	"S250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", "C" BODY_A_STUFFED, "S250 queued\r\n", QUIT, NULL
};

static const char *const t_no_dsn[] = {
	GREET, "S250-mx.test\r\n250-PIPELINING\r\n250 SIZE 100\r\n",
	"CMAIL FROM:<a@x.test> SIZE=33\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n",
	"S250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", "C" BODY_A_STUFFED, "S250 queued\r\n", QUIT, NULL
};
static const struct tmsg *const only_dsn[] = { &msg_dsn, NULL };

static const char *const t_greeting_refused[] = {
	"S554 5.3.2 no service here\r\n", "CQUIT\r\n", NULL
};
static const struct tmsg *const none[] = { NULL };

static const char *const t_bad_reply[] = {
	GREET, "S250 mx\r\n", "CMAIL FROM:<a@x.test>\r\n", "SHELLO\r\n", NULL
};

/* pipeline_next: each message's commands follow the previous end of data,
 * QUIT the last one; the final replies come first in the next group. */
#define CMDS_A "MAIL FROM:<a@x.test> SIZE=33\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"
static const char *const t_chain[] = {
	GREET, EHLO_PIPE, "C" CMDS_A, "S250 ok\r\n250 ok\r\n354 go\r\n",
	"C" BODY_A_STUFFED CMDS_A, "S250 queued 1\r\n250 ok\r\n250 ok\r\n354 go\r\n",
	"C" BODY_A_STUFFED "QUIT\r\n", "S250 queued 2\r\n221 bye\r\n", NULL
};

/* Refusals inside a chain: the end of data (554), then a MAIL (the RCPT and
 * DATA behind it get 503), then the only recipient (DATA gets 554 and the
 * open transaction an RSET before the next MAIL). */
static const char *const t_chain_refused[] = {
	GREET, EHLO_PIPE, "C" CMDS_A, "S250 ok\r\n250 ok\r\n354 go\r\n",
	"C" BODY_A_STUFFED CMDS_A,
	"S554 5.7.1 spam\r\n550 5.7.1 sender refused\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n",
	"C" CMDS_A, "S250 ok\r\n550 5.1.1 no\r\n554 5.5.1 no valid recipients\r\n",
	"CRSET\r\n" CMDS_A, "S250 reset\r\n250 ok\r\n250 ok\r\n354 go\r\n",
	"C" BODY_A_STUFFED "QUIT\r\n", "S250 queued\r\n221 bye\r\n", NULL
};
static const struct tmsg *const a_x4[] = { &msg_a, &msg_a, &msg_a, &msg_a, NULL };

/* 421 as the final reply of a chained message: the next is lost too. */
static const char *const t_chain_421[] = {
	GREET, EHLO_PIPE, "C" CMDS_A, "S250 ok\r\n250 ok\r\n354 go\r\n",
	"C" BODY_A_STUFFED CMDS_A, "S421 4.3.2 shutting down\r\n", NULL
};

/* A reply nobody asked for after a chained end of data: 354 is no final reply. */
static const char *const t_chain_354[] = {
	GREET, EHLO_PIPE, "C" CMDS_A, "S250 ok\r\n250 ok\r\n354 go\r\n",
	"C" BODY_A_STUFFED CMDS_A, "S354 go\r\n", "CQUIT\r\n", NULL
};

static const struct transcript transcripts[] = {
	{ "chain", t_chain, a_then_a, 0, false, 0,
	  "ready rcpt0=250 body ready result=250 over rcpt0=250 body ready result=250 over close=NONE",
	  0, true },
	{ "chain refusals", t_chain_refused, a_x4, 0, false, 0,
	  "ready rcpt0=250 body ready result=554 over result=550 over ready rcpt0=550 over ready "
	  "rcpt0=250 body ready result=250 over close=NONE", 0, true },
	{ "chain, 421", t_chain_421, a_then_a, 0, false, 0, "ready rcpt0=250 body ready close=SHUTDOWN",
	  0, true },
	{ "chain, 354", t_chain_354, a_then_a, 0, false, 0, "ready rcpt0=250 body ready close=PROTOCOL",
	  0, true },
	{ "chain, no pipelining", t_nopipe, only_bc, 0, false, 0,
	  "ready rcpt0=250 rcpt1=250 body result=250 over ready close=NONE", 0, true },
	{ "chain, bdat", t_bdat, only_a, 0, false, 0,
	  "ready body rcpt0=250 result=250 over ready close=NONE", 0, true },
	{ "pipelined", t_pipelined, only_a, 0, false, 0, "ready rcpt0=250 body result=250 ready close=NONE", 0, false },
	{ "non-pipelining", t_nopipe, only_bc, 0, false, 0,
	  "ready rcpt0=250 rcpt1=250 body result=250 ready close=NONE", 0, false },
	{ "pipelining not used", t_nopipe_cfg, only_bc, 0, true, 0,
	  "ready rcpt0=250 rcpt1=250 body result=250 ready close=NONE", 0, false },
	{ "helo fallback", t_helo, only_a, 0, false, 0, "ready rcpt0=250 body result=250 ready close=NONE", 0, false },
	{ "starttls", t_starttls, only_a, SMTP_CLIENT_TLS_OPPORTUNISTIC, false, 0,
	  "tls ready rcpt0=250 body result=250 ready close=NONE", 0, false },
	{ "tls required, not offered", t_tls_missing, only_a, SMTP_CLIENT_TLS_REQUIRED, false, 0,
	  "close=TLS_UNAVAILABLE", 0, false },
	{ "bdat", t_bdat, only_a, 0, false, 0, "ready body rcpt0=250 result=250 ready close=NONE", 0, false },
	{ "bdat chunks", t_bdat_chunks, only_a, 0, false, 20,
	  "ready body rcpt0=250 result=250 ready close=NONE", 0, false },
	{ "bdat, mixed recipients", t_bdat_mixed, only_bcd, 0, false, 0,
	  "ready body rcpt0=450 rcpt1=250 rcpt2=550 result=250 ready close=NONE", 0, false },
	{ "bdat, all refused, then RSET", t_bdat_none, bc_then_a, 0, false, 0,
	  "ready body rcpt0=550 rcpt1=450 ready body rcpt0=250 result=250 ready close=NONE", 0, false },
	{ "bdat, mail refused", t_bdat_mail_refused, a_then_a, 0, false, 0,
	  "ready body result=550 ready body rcpt0=250 result=250 ready close=NONE", 0, false },
	{ "bdat chunks, all refused", t_bdat_none_chunks, only_a, 0, false, 20,
	  "ready body rcpt0=550 ready close=NONE", 0, false },
	{ "bdat, 421", t_bdat_421, only_bc, 0, false, 0, "ready body rcpt0=250 close=SHUTDOWN", 0, false },
	{ "bdat, not pipelined", t_bdat_nopipe, only_bc, 0, false, 0,
	  "ready rcpt0=550 rcpt1=250 body result=250 ready close=NONE", 0, false },
	{ "mixed recipients", t_mixed, only_bcd, 0, false, 0,
	  "ready rcpt0=250 rcpt1=450 rcpt2=550 body result=250 ready close=NONE", 0, false },
	{ "all refused, then RSET", t_refused, bc_then_a, 0, false, 0,
	  "ready rcpt0=550 rcpt1=550 ready rcpt0=250 body result=250 ready close=NONE", 0, false },
	{ "all refused, not pipelined", t_refused_nopipe, only_bc, 0, false, 0,
	  "ready rcpt0=550 rcpt1=450 ready close=NONE", 0, false },
	{ "RSET, not pipelined", t_rset_nopipe, bc_then_a, 0, false, 0,
	  "ready rcpt0=550 rcpt1=550 ready rcpt0=250 body result=250 ready close=NONE", 0, false },
	{ "354 with no recipient", t_354_none, a_then_a, 0, false, 0,
	  "ready rcpt0=550 ready rcpt0=250 body result=250 ready close=NONE", 0, false },
	{ "mail refused", t_mail_refused, only_a, 0, false, 0, "ready result=550 ready close=NONE", 0, false },
	{ "421 mid-session", t_421, only_bc, 0, false, 0, "ready rcpt0=250 close=SHUTDOWN", 0, false },
	{ "two messages", t_two, a_then_empty, 0, false, 0,
	  "ready rcpt0=250 body result=250 ready rcpt0=250 body result=250 ready close=NONE", 0, false },
	{ "dsn offered", t_dsn, only_dsn, 0, false, 0,
	  "ready rcpt0=250 rcpt1=250 body result=250 ready close=NONE", 0, false },
	{ "dsn not offered", t_no_dsn, only_dsn, 0, false, 0,
	  "ready rcpt0=250 rcpt1=250 body result=250 ready close=NONE", 0, false },
	{ "greeting refused", t_greeting_refused, none, 0, false, 0, "close=GREETING", 0, false },
	{ "bad reply", t_bad_reply, only_a, 0, false, 0, "ready close=PROTOCOL", 7, false },
};

static void test_transcripts(void **st)
{
	(void)st;
	for (size_t i = 0; i < sizeof transcripts / sizeof *transcripts; i++)
		run_transcript(&transcripts[i]);
	assert_true(flushes > 0);
}

/* step - feed one string whole; return the event, check all was consumed
 * unless an event stopped it */
static enum smtp_client_ev step(struct smtp_client *c, struct buf *out, const char *in)
{
	size_t used, len = strlen(in);
	enum smtp_client_ev ev = smtp_client_feed(c, in, len, &used, out);
	if (ev == SMTP_CL_NONE)
		assert_int_equal(used, len);
	return ev;
}

static const struct smtp_client_cfg plain_cfg = { SLICE_LIT("h.test"), SMTP_CLIENT_TLS_NONE, false, false,
						   false };

/* test_phases - the phase the host times out on, at every step */
static void test_phases(void **st)
{
	(void)st;
	struct smtp_client c;
	char mem[512];
	struct buf out;

	buf_init(&out, mem, sizeof mem);
	smtp_client_init(&c, &plain_cfg);
	assert_int_equal(smtp_client_phase(&c), SMTP_CLIENT_PHASE_GREETING);
	assert_int_equal(step(&c, &out, "220 x\r\n"), SMTP_CL_NONE);
	assert_int_equal(smtp_client_phase(&c), SMTP_CLIENT_PHASE_EHLO);
	assert_int_equal(step(&c, &out, "250 x\r\n"), SMTP_CL_READY);
	assert_int_equal(smtp_client_phase(&c), SMTP_CLIENT_PHASE_NONE);
	assert_false(smtp_client_caps(&c)->pipelining);
	assert_int_equal(smtp_client_send(&c, &msg_a.m), 0);
	assert_int_equal(smtp_client_send(&c, &msg_a.m), RM_EINVAL);
	assert_int_equal(step(&c, &out, ""), SMTP_CL_NONE);
	assert_int_equal(smtp_client_phase(&c), SMTP_CLIENT_PHASE_MAIL);
	assert_int_equal(step(&c, &out, "250 ok\r\n"), SMTP_CL_NONE);
	assert_int_equal(smtp_client_phase(&c), SMTP_CLIENT_PHASE_RCPT);
	assert_int_equal(step(&c, &out, "250 ok\r\n"), SMTP_CL_RCPT);
	assert_int_equal(step(&c, &out, ""), SMTP_CL_NONE);
	assert_int_equal(smtp_client_phase(&c), SMTP_CLIENT_PHASE_DATA_INIT);
	assert_int_equal(step(&c, &out, "354 go\r\n"), SMTP_CL_BODY);
	assert_false(smtp_client_bdat_mode(&c));
	assert_int_equal(smtp_client_phase(&c), SMTP_CLIENT_PHASE_DATA_BLOCK);
	assert_int_equal(smtp_client_body_sent(&c), 0);
	assert_int_equal(smtp_client_phase(&c), SMTP_CLIENT_PHASE_DATA_END);
	assert_int_equal(step(&c, &out, "250 2.0.0 ok\r\n"), SMTP_CL_RESULT);
	assert_int_equal(smtp_client_reply(&c)->enh[1], 0);
	assert_int_equal(step(&c, &out, ""), SMTP_CL_READY);
	assert_int_equal(smtp_client_messages(&c), 1);
	assert_int_equal(smtp_client_quit(&c), 0);
	assert_int_equal(step(&c, &out, ""), SMTP_CL_NONE);
	assert_int_equal(smtp_client_phase(&c), SMTP_CLIENT_PHASE_QUIT);
	assert_int_equal(step(&c, &out, "221 bye\r\n"), SMTP_CL_CLOSE);
	assert_int_equal(smtp_client_fail(&c), SMTP_CLIENT_FAIL_NONE);
	assert_int_equal(step(&c, &out, "250 more\r\n"), SMTP_CL_CLOSE);
	assert_string_equal(smtp_client_phase_name(SMTP_CLIENT_PHASE_DATA_END), "DATA_END");
	assert_string_equal(smtp_client_state_name(SMTP_CLIENT_CLOSED), "CLOSED");
}

/* test_starttls_injection - bytes after "220" to STARTTLS and before the
 * handshake are refused (RFC 3207 §5); capabilities are relearnt after */
static void test_starttls_injection(void **st)
{
	(void)st;
	struct smtp_client c;
	struct smtp_client_cfg cfg = plain_cfg;
	char mem[512];
	struct buf out;
	size_t used;
	const char inj[] = "220 go\r\n250 injected\r\n";

	cfg.tls = SMTP_CLIENT_TLS_OPPORTUNISTIC;
	buf_init(&out, mem, sizeof mem);
	smtp_client_init(&c, &cfg);
	assert_int_equal(step(&c, &out, "220 x\r\n250-x\r\n250-PIPELINING\r\n250 STARTTLS\r\n"),
			 SMTP_CL_NONE);
	assert_true(smtp_client_caps(&c)->pipelining);
	assert_int_equal(smtp_client_feed(&c, inj, sizeof inj - 1, &used, &out), SMTP_CL_STARTTLS);
	assert_int_equal(used, 8);
	assert_int_equal(smtp_client_phase(&c), SMTP_CLIENT_PHASE_TLS);
	assert_int_equal(smtp_client_feed(&c, inj + used, sizeof inj - 1 - used, &used, &out),
			 SMTP_CL_CLOSE);
	assert_int_equal(smtp_client_fail(&c), SMTP_CLIENT_FAIL_PROTOCOL);

	/* The honest path: the handshake, then EHLO again with fresh caps. */
	out.len = 0;
	smtp_client_init(&c, &cfg);
	assert_int_equal(step(&c, &out, "220 x\r\n250-x\r\n250-PIPELINING\r\n250 STARTTLS\r\n"),
			 SMTP_CL_NONE);
	assert_int_equal(step(&c, &out, "220 go\r\n"), SMTP_CL_STARTTLS);
	out.len = 0;
	smtp_client_tls_started(&c, true);
	assert_int_equal(step(&c, &out, ""), SMTP_CL_NONE);
	assert_true(slice_eq(buf_slice(&out), SLICE_LIT("EHLO h.test\r\n")));
	assert_false(smtp_client_caps(&c)->pipelining);
	assert_int_equal(step(&c, &out, "250-x\r\n250-AUTH PLAIN LOGIN XFOO\r\n250 STARTTLS\r\n"),
			 SMTP_CL_READY);
	assert_true(smtp_client_tls(&c));
	assert_int_equal(smtp_client_caps(&c)->auth, SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN | SMTP_AUTH_OTHER);

	/* A failed handshake ends the session. */
	smtp_client_init(&c, &cfg);
	assert_int_equal(step(&c, &out, "220 x\r\n250-x\r\n250 STARTTLS\r\n220 go\r\n"), SMTP_CL_STARTTLS);
	smtp_client_tls_started(&c, false);
	assert_int_equal(step(&c, &out, ""), SMTP_CL_CLOSE);
	assert_int_equal(smtp_client_fail(&c), SMTP_CLIENT_FAIL_TLS_FAILED);

	/* Required, refused: QUIT and close. */
	cfg.tls = SMTP_CLIENT_TLS_REQUIRED;
	smtp_client_init(&c, &cfg);
	out.len = 0;
	assert_int_equal(step(&c, &out, "220 x\r\n250-x\r\n250 STARTTLS\r\n454 4.7.0 no\r\n"), SMTP_CL_CLOSE);
	assert_int_equal(smtp_client_fail(&c), SMTP_CLIENT_FAIL_TLS_FAILED);
	assert_true(slice_eq(buf_slice(&out), SLICE_LIT("EHLO h.test\r\nSTARTTLS\r\nQUIT\r\n")));
}

/* chunking_ready - c set up and greeted by a server with PIPELINING and
 * CHUNKING, ready for a message */
static void chunking_ready(struct smtp_client *c, struct buf *out)
{
	smtp_client_init(c, &plain_cfg);
	assert_int_equal(step(c, out, "220 x\r\n250-x\r\n250-PIPELINING\r\n250 CHUNKING\r\n"), SMTP_CL_READY);
}

/* test_bdat_refused - a refused chunk stops the body and costs an RSET */
static void test_bdat_refused(void **st)
{
	(void)st;
	struct smtp_client c;
	char mem[512];
	struct buf out;

	buf_init(&out, mem, sizeof mem);
	chunking_ready(&c, &out);
	assert_int_equal(smtp_client_send(&c, &msg_a.m), 0);
	assert_int_equal(step(&c, &out, ""), SMTP_CL_BODY); /* before any reply */
	assert_true(smtp_client_bdat_mode(&c));
	assert_int_equal(smtp_client_phase(&c), SMTP_CLIENT_PHASE_DATA_BLOCK);
	assert_int_equal(smtp_client_body_sent(&c), RM_EINVAL);
	assert_int_equal(smtp_client_bdat(&c, &out, 10, false), 0);
	assert_int_equal(smtp_client_bdat(&c, &out, 10, false), 0); /* pipelined */
	assert_int_equal(step(&c, &out, "250 ok\r\n250 ok\r\n"), SMTP_CL_RCPT);
	assert_int_equal(step(&c, &out, "552 5.3.4 too big\r\n"), SMTP_CL_RESULT);
	assert_int_equal(smtp_client_reply(&c)->code, 552);
	assert_int_equal(smtp_client_bdat(&c, &out, 13, true), RM_EPROTO);
	assert_int_equal(step(&c, &out, "503 5.5.1 no\r\n"), SMTP_CL_READY);
	out.len = 0;
	assert_int_equal(smtp_client_send(&c, &msg_a.m), 0);
	assert_int_equal(step(&c, &out, ""), SMTP_CL_BODY);
	assert_true(slice_starts_nocase(buf_slice(&out), SLICE_LIT("RSET\r\nMAIL FROM:<a@x.test>\r\n")));

	/* Without PIPELINING a chunk waits for the last one's reply. */
	out.len = 0;
	smtp_client_init(&c, &plain_cfg);
	assert_int_equal(step(&c, &out, "220 x\r\n250-x\r\n250 CHUNKING\r\n"), SMTP_CL_READY);
	assert_int_equal(smtp_client_send(&c, &msg_a.m), 0);
	assert_int_equal(step(&c, &out, "250 ok\r\n"), SMTP_CL_NONE);
	assert_int_equal(step(&c, &out, "250 ok\r\n"), SMTP_CL_RCPT);
	assert_int_equal(step(&c, &out, ""), SMTP_CL_BODY);
	assert_int_equal(smtp_client_bdat(&c, &out, 10, false), 0);
	assert_int_equal(smtp_client_bdat(&c, &out, 23, true), RM_AGAIN);
	assert_int_equal(step(&c, &out, "250 ok\r\n"), SMTP_CL_NONE);
	assert_int_equal(smtp_client_bdat(&c, &out, 23, true), 0);
	assert_int_equal(smtp_client_bdat(&c, &out, 1, true), RM_EINVAL);
	assert_int_equal(step(&c, &out, "250 2.0.0 queued\r\n"), SMTP_CL_RESULT);
	assert_int_equal(smtp_client_reply(&c)->enh[0], 2);
}

/* early_start - send m and its first chunk of n bytes, before any reply */
static void early_start(struct smtp_client *c, struct buf *out, const struct smtp_client_msg *m, uint64_t n,
			bool last)
{
	out->len = 0;
	assert_int_equal(smtp_client_send(c, m), 0);
	assert_int_equal(step(c, out, ""), SMTP_CL_BODY);
	assert_int_equal(smtp_client_bdat(c, out, n, last), 0);
}

/* test_bdat_early - the body behind the RCPTs: phases while their replies
 * are read, and a body stopped once the replies refuse the message */
static void test_bdat_early(void **st)
{
	(void)st;
	struct smtp_client c;
	char mem[512];
	struct buf out;

	buf_init(&out, mem, sizeof mem);
	chunking_ready(&c, &out);
	early_start(&c, &out, &msg_bc.m, 33, true);
	assert_true(slice_eq(buf_slice(&out), SLICE_LIT("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"
							 "RCPT TO:<c@y.test>\r\nBDAT 33 LAST\r\n")));
	assert_int_equal(smtp_client_phase(&c), SMTP_CLIENT_PHASE_MAIL);
	assert_int_equal(step(&c, &out, "250 ok\r\n"), SMTP_CL_NONE);
	assert_int_equal(smtp_client_phase(&c), SMTP_CLIENT_PHASE_RCPT);
	assert_int_equal(step(&c, &out, "250 ok\r\n"), SMTP_CL_RCPT);
	assert_int_equal(step(&c, &out, "250 ok\r\n"), SMTP_CL_RCPT);
	assert_int_equal(smtp_client_phase(&c), SMTP_CLIENT_PHASE_DATA_END);
	assert_int_equal(step(&c, &out, "250 queued\r\n"), SMTP_CL_RESULT);
	assert_int_equal(step(&c, &out, ""), SMTP_CL_READY);
	assert_int_equal(smtp_client_messages(&c), 1);

	/* A body in chunks stops once MAIL is refused; the replies to what
	 * went out are read past. */
	early_start(&c, &out, &msg_a.m, 10, false);
	assert_int_equal(step(&c, &out, "550 5.7.1 no\r\n"), SMTP_CL_RESULT);
	assert_int_equal(smtp_client_bdat(&c, &out, 23, true), RM_EPROTO);
	assert_int_equal(step(&c, &out, "503 5.5.1 need MAIL\r\n"), SMTP_CL_NONE);
	assert_int_equal(step(&c, &out, "503 5.5.1 need MAIL\r\n"), SMTP_CL_READY);
	assert_int_equal(smtp_client_messages(&c), 2);

	/* Every recipient refused: the chunk after them is not sent. */
	early_start(&c, &out, &msg_a.m, 10, false);
	assert_int_equal(step(&c, &out, "250 ok\r\n550 no\r\n"), SMTP_CL_RCPT);
	assert_int_equal(smtp_client_bdat(&c, &out, 23, true), RM_EPROTO);
	assert_int_equal(step(&c, &out, "554 5.5.1 no valid recipients\r\n"), SMTP_CL_READY);
	early_start(&c, &out, &msg_a.m, 33, true);
	assert_true(slice_starts_nocase(buf_slice(&out), SLICE_LIT("RSET\r\nMAIL FROM:<a@x.test>\r\n")));

	/* A reply more than was asked for is a protocol error. */
	assert_int_equal(step(&c, &out, "250 ok\r\n250 ok\r\n250 ok\r\n"), SMTP_CL_RCPT);
	assert_int_equal(step(&c, &out, "250 queued\r\n"), SMTP_CL_RESULT);
	assert_int_equal(step(&c, &out, ""), SMTP_CL_READY);
	assert_int_equal(step(&c, &out, "250 extra\r\n"), SMTP_CL_CLOSE);
	assert_int_equal(smtp_client_fail(&c), SMTP_CLIENT_FAIL_PROTOCOL);
}

/* test_small_output - a command that cannot fit an empty buffer closes */
static void test_small_output(void **st)
{
	(void)st;
	struct smtp_client c;
	char mem[8];
	struct buf out;

	buf_init(&out, mem, sizeof mem);
	smtp_client_init(&c, &plain_cfg);
	assert_int_equal(step(&c, &out, "220 x\r\n"), SMTP_CL_CLOSE);
	assert_int_equal(smtp_client_fail(&c), SMTP_CLIENT_FAIL_OUTPUT);
}

/* naive_stuff - the reference: a "." before every line-initial "." */
static size_t naive_stuff(const char *in, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (in[i] == '.' && (i == 0 || in[i - 1] == '\n'))
			out[o++] = '.';
		out[o++] = in[i];
	}
	if (n >= 2 && in[n - 2] == '\r' && in[n - 1] == '\n')
		memcpy(out + o, ".\r\n", 3), o += 3;
	else if (n == 0)
		memcpy(out + o, ".\r\n", 3), o += 3;
	else
		memcpy(out + o, "\r\n.\r\n", 5), o += 5;
	return o;
}

/* test_dot_stuffing - random bodies, random input pieces, random room */
static void test_dot_stuffing(void **st)
{
	(void)st;
	uint64_t seed = 20261128;
	static const char alphabet[] = ".\r\na";
	char body[300], want[700], got[700];

	for (int round = 0; round < 20000; round++) {
		size_t n = test_rand(&seed) % 200, wn, gn = 0, off = 0;
		struct smtp_stuff stf;

		for (size_t i = 0; i < n; i++)
			body[i] = alphabet[test_rand(&seed) % 4];
		wn = naive_stuff(body, n, want);
		smtp_stuff_init(&stf);
		while (off < n) {
			size_t piece = 1 + test_rand(&seed) % (n - off);
			size_t pend = off + piece;
			while (off < pend) {
				struct guarded g = guard_copy(body + off, pend - off);
				struct slice v[5];
				size_t cap = 2 + test_rand(&seed) % 4, nv = 0;
				size_t used = smtp_stuff_feed(&stf, g.ptr, g.len, v, cap, &nv);
				assert_true(used > 0 || nv > 0);
				assert_true(nv <= cap);
				for (size_t i = 0; i < nv; i++) {
					assert_true(v[i].len > 0);
					/* slices point into the input or are the constant "." */
					assert_true((v[i].ptr >= g.ptr && v[i].ptr + v[i].len <= g.ptr + g.len) ||
						    (v[i].len == 1 && v[i].ptr[0] == '.'));
					memcpy(got + gn, v[i].ptr, v[i].len);
					gn += v[i].len;
				}
				guard_free(&g);
				off += used;
			}
		}
		struct slice end = smtp_stuff_end(&stf);
		memcpy(got + gn, end.ptr, end.len);
		gn += end.len;
		if (gn != wn || memcmp(got, want, wn) != 0)
			fail_msg("round %d: body of %zu bytes stuffed wrong", round, n);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transcripts),
		cmocka_unit_test(test_phases),
		cmocka_unit_test(test_starttls_injection),
		cmocka_unit_test(test_bdat_refused),
		cmocka_unit_test(test_bdat_early),
		cmocka_unit_test(test_small_output),
		cmocka_unit_test(test_dot_stuffing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
