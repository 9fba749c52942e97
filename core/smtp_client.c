/* smtp_client.c - the outbound SMTP session engine and its helpers.
 *
 * Invariants:
 *  - commands go to the host's buffer whole or not at all; a command that
 *    does not fit is retried on the next feed (FLUSH in between);
 *  - in TX, positions number the transaction's commands: 0 RSET, 1 MAIL,
 *    2.. RCPT, then DATA (DATA mode only); _rd <= _wr <= _end, and without
 *    pipelining _wr only passes _rd when every reply so far is read;
 *  - an event that a reply caused is returned with that reply still in the
 *    parser; an event decided without one (READY, BODY after the last RCPT)
 *    waits in _ev and is returned by the next feed before any byte is read;
 *  - with _prev_end the next reply belongs to the previous message (its end
 *    of data), whatever the state: it is read before any reply of the
 *    transaction in progress, and only then is that message counted over;
 *  - with _bdat_early the body goes out behind the last RCPT, so the state
 *    is BODY or DATA_END while _rd < _end: replies go to the transaction's
 *    commands first, then to the BDAT chunks, in the order they were sent.
 * Pure; one owner per session; panics on nothing.
 */
#include "core/smtp_client.h"

enum { SEND_NONE = 0, SEND_EHLO, SEND_HELO, SEND_STARTTLS, SEND_QUIT, SEND_DOT };
enum { POS_RSET = 0, POS_MAIL = 1, POS_RCPT0 = 2 };

static const char *const client_state_names[] = {
#define SMTP_CLIENT_NAME(s) #s,
	SMTP_CLIENT_STATES(SMTP_CLIENT_NAME)
};
static const char *const client_phase_names[] = { SMTP_CLIENT_PHASES(SMTP_CLIENT_NAME) };
static const char *const client_fail_names[] = { SMTP_CLIENT_FAILS(SMTP_CLIENT_NAME) };
#undef SMTP_CLIENT_NAME

/* smtp_client_state_name - constant name of a state */
const char *smtp_client_state_name(enum smtp_client_state s)
{
	return (unsigned)s < sizeof client_state_names / sizeof *client_state_names
		       ? client_state_names[s] : "?";
}

/* smtp_client_phase_name - constant name of a phase */
const char *smtp_client_phase_name(enum smtp_client_phase p)
{
	return (unsigned)p < sizeof client_phase_names / sizeof *client_phase_names
		       ? client_phase_names[p] : "?";
}

/* smtp_client_fail_name - constant name of a failure reason */
const char *smtp_client_fail_name(enum smtp_client_fail f)
{
	return (unsigned)f < sizeof client_fail_names / sizeof *client_fail_names
		       ? client_fail_names[f] : "?";
}

/* smtp_client_init - a new session on a fresh connection */
void smtp_client_init(struct smtp_client *c, const struct smtp_client_cfg *cfg)
{
	memset(c, 0, sizeof *c);
	c->_cfg = *cfg;
	smtp_reply_parser_init(&c->_rp);
	c->_state = SMTP_CLIENT_GREETING;
}

/* --- command builders ------------------------------------------------------ */

/* client_put_all - append the pieces of one command, all or nothing */
static int client_put_all(struct buf *out, size_t mark, int rc)
{
	if (rc) {
		out->len = mark;
		return RM_ENOMEM;
	}
	return RM_OK;
}

/* smtp_client_put_mail - "MAIL FROM:<a> [params]\r\n" per the offered caps */
int smtp_client_put_mail(struct buf *out, const struct smtp_client_msg *m,
			 const struct smtp_client_caps *caps)
{
	size_t mark = out->len;
	int rc = buf_put_str(out, "MAIL FROM:<") || buf_put_slice(out, m->from) ||
		 buf_put(out, ">", 1);

	if (!rc && caps->size && m->size)
		rc = buf_put_str(out, " SIZE=") || buf_put_u64(out, m->size);
	if (!rc && caps->eightbitmime && m->body == SMTP_BODY_8BITMIME)
		rc = buf_put_str(out, " BODY=8BITMIME");
	if (!rc && caps->eightbitmime && m->body == SMTP_BODY_7BIT)
		rc = buf_put_str(out, " BODY=7BIT");
	if (!rc && caps->smtputf8 && m->smtputf8)
		rc = buf_put_str(out, " SMTPUTF8");
	if (!rc && caps->dsn && m->ret != SMTP_RET_UNSPEC)
		rc = buf_put_str(out, m->ret == SMTP_RET_HDRS ? " RET=HDRS" : " RET=FULL");
	if (!rc && caps->dsn && m->envid.len)
		rc = buf_put_str(out, " ENVID=") || buf_put_slice(out, m->envid);
	if (!rc)
		rc = buf_put(out, "\r\n", 2);
	return client_put_all(out, mark, rc);
}

/* client_put_notify - " NOTIFY=NEVER" or " NOTIFY=a,b,c" */
static int client_put_notify(struct buf *out, unsigned notify)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = { { SMTP_NOTIFY_SUCCESS, "SUCCESS" },
		      { SMTP_NOTIFY_FAILURE, "FAILURE" },
		      { SMTP_NOTIFY_DELAY, "DELAY" } };
	bool first = true;

	if (notify & SMTP_NOTIFY_NEVER)
		return buf_put_str(out, " NOTIFY=NEVER");
	if (buf_put_str(out, " NOTIFY="))
		return RM_ENOMEM;
	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		if (!(notify & names[i].bit))
			continue;
		if ((!first && buf_put(out, ",", 1)) || buf_put_str(out, names[i].name))
			return RM_ENOMEM;
		first = false;
	}
	return RM_OK;
}

/* smtp_client_put_rcpt - "RCPT TO:<a> [NOTIFY= ORCPT=]\r\n" */
int smtp_client_put_rcpt(struct buf *out, const struct smtp_client_rcpt *r,
			 const struct smtp_client_caps *caps)
{
	size_t mark = out->len;
	int rc = buf_put_str(out, "RCPT TO:<") || buf_put_slice(out, r->addr) ||
		 buf_put(out, ">", 1);

	if (!rc && caps->dsn && r->notify)
		rc = client_put_notify(out, r->notify);
	if (!rc && caps->dsn && r->orcpt.len)
		rc = buf_put_str(out, " ORCPT=") || buf_put_slice(out, r->orcpt);
	if (!rc)
		rc = buf_put(out, "\r\n", 2);
	return client_put_all(out, mark, rc);
}

/* smtp_client_put_bdat - "BDAT n[ LAST]\r\n" */
int smtp_client_put_bdat(struct buf *out, uint64_t n, bool last)
{
	size_t mark = out->len;
	int rc = buf_put_str(out, "BDAT ") || buf_put_u64(out, n) ||
		 (last && buf_put_str(out, " LAST")) || buf_put(out, "\r\n", 2);

	return client_put_all(out, mark, rc);
}

/* client_put_session - one session-level command */
static int client_put_session(const struct smtp_client *c, int what, struct buf *out)
{
	size_t mark = out->len;
	int rc;

	switch (what) {
	case SEND_EHLO:
	case SEND_HELO:
		rc = buf_put_str(out, what == SEND_EHLO ? "EHLO " : "HELO ") ||
		     buf_put_slice(out, c->_cfg.helo_name) || buf_put(out, "\r\n", 2);
		break;
	case SEND_STARTTLS:
		rc = buf_put_str(out, "STARTTLS\r\n");
		break;
	case SEND_QUIT:
		rc = buf_put_str(out, "QUIT\r\n");
		break;
	default:
		rc = buf_put_str(out, ".\r\n");
		break;
	}
	return client_put_all(out, mark, rc);
}

/* client_put_tx - the transaction command at position pos */
static int client_put_tx(const struct smtp_client *c, size_t pos, struct buf *out)
{
	if (pos == POS_RSET)
		return buf_put_str(out, "RSET\r\n");
	if (pos == POS_MAIL)
		return smtp_client_put_mail(out, c->_msg, &c->_caps);
	if (pos - POS_RCPT0 < c->_msg->nrcpt)
		return smtp_client_put_rcpt(out, &c->_msg->rcpt[pos - POS_RCPT0], &c->_caps);
	return buf_put_str(out, "DATA\r\n");
}

/* --- state changes ---------------------------------------------------------- */

/* client_close - the session is over; QUIT goes out if asked and it fits */
static enum smtp_client_ev client_close(struct smtp_client *c, enum smtp_client_fail why,
					const struct smtp_reply *r, bool quit, struct buf *out)
{
	c->_state = SMTP_CLIENT_CLOSED;
	c->_fail = (uint8_t)why;
	c->_reply = r;
	c->_send = SEND_NONE;
	c->_ev = SMTP_CL_NONE;
	if (quit)
		(void)client_put_session(c, SEND_QUIT, out);
	return SMTP_CL_CLOSE;
}

/* client_ready - idle; READY is returned before anything else is read */
static void client_ready(struct smtp_client *c)
{
	c->_state = SMTP_CLIENT_READY;
	c->_ev = SMTP_CL_READY;
}

/* client_tx_over - the message's transaction is finished */
static void client_tx_over(struct smtp_client *c)
{
	c->_msg = NULL;
	c->_messages++;
	client_ready(c);
}

/* client_after_hello - EHLO or HELO accepted: STARTTLS, or ready */
static enum smtp_client_ev client_after_hello(struct smtp_client *c, const struct smtp_reply *r,
					      struct buf *out)
{
	if (!c->_tls && c->_cfg.tls != SMTP_CLIENT_TLS_NONE && !c->_tls_tried) {
		if (c->_caps.starttls) {
			c->_tls_tried = true;
			c->_send = SEND_STARTTLS;
			c->_state = SMTP_CLIENT_STARTTLS;
			return SMTP_CL_NONE;
		}
		if (c->_cfg.tls == SMTP_CLIENT_TLS_REQUIRED)
			return client_close(c, SMTP_CLIENT_FAIL_TLS_UNAVAILABLE, r, true, out);
	}
	client_ready(c);
	return SMTP_CL_NONE;
}

/* client_auth_mech - the SMTP_AUTH_* bit of a mechanism name */
static unsigned client_auth_mech(struct slice m)
{
	if (slice_eq_nocase(m, SLICE_LIT("PLAIN")))
		return SMTP_AUTH_PLAIN;
	if (slice_eq_nocase(m, SLICE_LIT("LOGIN")))
		return SMTP_AUTH_LOGIN;
	if (slice_eq_nocase(m, SLICE_LIT("CRAM-MD5")))
		return SMTP_AUTH_CRAM_MD5;
	if (slice_eq_nocase(m, SLICE_LIT("XOAUTH2")))
		return SMTP_AUTH_XOAUTH2;
	return SMTP_AUTH_OTHER;
}

/* client_next_word - the next SP-separated word of *s (also '=' after AUTH) */
static struct slice client_next_word(struct slice *s, char also)
{
	size_t i = 0, j;

	while (i < s->len && (s->ptr[i] == ' ' || s->ptr[i] == also))
		i++;
	j = i;
	while (j < s->len && s->ptr[j] != ' ' && s->ptr[j] != also)
		j++;
	struct slice w = slice_make(s->ptr + i, j - i);
	*s = slice_sub(*s, j, s->len - j);
	return w;
}

/* client_caps_parse - the EHLO keywords, one per line after the first */
static void client_caps_parse(struct smtp_client_caps *caps, const struct smtp_reply *r)
{
	memset(caps, 0, sizeof *caps);
	caps->esmtp = true;
	for (size_t i = 1; i < r->nlines; i++) {
		struct slice rest = r->line[i];
		struct slice kw = client_next_word(&rest, '=');
		struct slice arg;
		unsigned long long v;

		if (slice_eq_nocase(kw, SLICE_LIT("PIPELINING"))) {
			caps->pipelining = true;
		} else if (slice_eq_nocase(kw, SLICE_LIT("SIZE"))) {
			caps->size = true;
			arg = client_next_word(&rest, 0);
			if (slice_to_u64(arg, ~0ull, &v))
				caps->size_max = v;
		} else if (slice_eq_nocase(kw, SLICE_LIT("8BITMIME"))) {
			caps->eightbitmime = true;
		} else if (slice_eq_nocase(kw, SLICE_LIT("SMTPUTF8"))) {
			caps->smtputf8 = true;
		} else if (slice_eq_nocase(kw, SLICE_LIT("CHUNKING"))) {
			caps->chunking = true;
		} else if (slice_eq_nocase(kw, SLICE_LIT("DSN"))) {
			caps->dsn = true;
		} else if (slice_eq_nocase(kw, SLICE_LIT("STARTTLS"))) {
			caps->starttls = true;
		} else if (slice_eq_nocase(kw, SLICE_LIT("ENHANCEDSTATUSCODES"))) {
			caps->enhancedstatuscodes = true;
		} else if (slice_eq_nocase(kw, SLICE_LIT("AUTH"))) {
			/* "AUTH a b" and the old "AUTH=a b" both appear. */
			while ((arg = client_next_word(&rest, 0)).len)
				caps->auth |= client_auth_mech(arg);
		}
	}
}

/* client_tx_finish_check - end the transaction once nothing is left in it */
static void client_tx_finish_check(struct smtp_client *c)
{
	if (c->_state == SMTP_CLIENT_TX && c->_rd >= c->_end)
		client_tx_over(c);
}

/* client_body_start - the body is next; BODY is returned from _ev */
static void client_body_start(struct smtp_client *c)
{
	c->_state = SMTP_CLIENT_BODY;
	c->_ev = SMTP_CL_BODY;
}

/* client_early_refused - early BDAT: the replies read so far refuse the
 * message (MAIL refused, or every RCPT answered and none accepted), so
 * its recipients all have their final reply and the BDAT replies are
 * only read past */
static bool client_early_refused(const struct smtp_client *c)
{
	return c->_bdat_early && c->_rd > POS_MAIL &&
	       (!c->_mail_ok || (c->_rd >= c->_end && c->_accepted == 0));
}

/* client_early_check - early BDAT: the transaction is over once the last
 * chunk went out and every reply to it and to the commands is read */
static void client_early_check(struct smtp_client *c)
{
	if (c->_bdat_early && c->_state == SMTP_CLIENT_DATA_END && c->_bdat_last &&
	    c->_bdat_pending == 0 && c->_rd >= c->_end)
		client_tx_over(c);
}

/* client_tx_reply - a reply to the transaction command at _rd */
static enum smtp_client_ev client_tx_reply(struct smtp_client *c, const struct smtp_reply *r,
					   struct buf *out)
{
	size_t pos = c->_rd++;
	size_t n = c->_msg->nrcpt;
	bool ok = r->code / 100 == 2;
	enum smtp_client_ev ev = SMTP_CL_NONE;

	if (pos == POS_RSET) {
		if (!ok)
			return client_close(c, SMTP_CLIENT_FAIL_RSET, r, true, out);
		c->_need_rset = false;
		return SMTP_CL_NONE;
	}
	if (pos == POS_MAIL) {
		c->_mail_ok = ok;
		if (ok) {
			c->_need_rset = true;
			return SMTP_CL_NONE;
		}
		if (!c->_pipelining)
			c->_end = c->_rd; /* nothing else was written */
		client_tx_finish_check(c);
		client_early_check(c);
		return SMTP_CL_RESULT;
	}
	if (pos - POS_RCPT0 < n) {
		size_t i = pos - POS_RCPT0;

		if (c->_mail_ok) {
			c->_rcpt = i;
			c->_accepted += ok;
			ev = SMTP_CL_RCPT;
		}
		if (i == n - 1 && c->_mail_ok && !c->_bdat_early) {
			if (c->_accepted == 0 && (c->_bdat || !c->_pipelining))
				c->_end = c->_rd; /* no DATA, no BDAT */
			else if (c->_accepted && c->_bdat)
				client_body_start(c);
		}
		client_tx_finish_check(c);
		client_early_check(c);
		return ev;
	}
	/* DATA */
	if (r->code == 354) {
		if (c->_mail_ok && c->_accepted) {
			c->_state = SMTP_CLIENT_BODY;
			return SMTP_CL_BODY;
		}
		c->_dot_only = true;
		c->_send = SEND_DOT;
		c->_state = SMTP_CLIENT_DATA_END;
		return SMTP_CL_NONE;
	}
	if (c->_mail_ok && c->_accepted)
		ev = SMTP_CL_RESULT;
	client_tx_finish_check(c);
	return ev;
}

/* client_bdat_reply - a reply to one BDAT chunk */
static enum smtp_client_ev client_bdat_reply(struct smtp_client *c, const struct smtp_reply *r,
					     struct buf *out)
{
	enum smtp_client_ev ev = SMTP_CL_NONE;

	if (c->_bdat_pending == 0)
		return client_close(c, SMTP_CLIENT_FAIL_PROTOCOL, r, true, out);
	c->_bdat_pending--;
	if (client_early_refused(c)) {
		/* RFC 3030 §2: with no valid recipient the chunk is refused
		 * (503/554); every recipient already has its final reply.
		 * A MAIL that was accepted leaves a transaction to RSET. */
		c->_bdat_failed = true;
		client_early_check(c);
		return SMTP_CL_NONE;
	}
	if (r->code / 100 != 2 && !c->_bdat_failed) {
		c->_bdat_failed = true;
		/* After LAST the server has closed the transaction itself. */
		c->_need_rset = !(c->_bdat_last && c->_bdat_pending == 0);
		ev = SMTP_CL_RESULT;
	}
	if (c->_bdat_last && c->_bdat_pending == 0) {
		if (!c->_bdat_failed) {
			c->_need_rset = false;
			ev = SMTP_CL_RESULT;
		}
		client_tx_over(c);
	}
	return ev;
}

/* client_awaits_354 - the next reply is the one to DATA */
static bool client_awaits_354(const struct smtp_client *c)
{
	return c->_state == SMTP_CLIENT_TX && !c->_prev_end && c->_rd == POS_RCPT0 + c->_msg->nrcpt &&
	       !c->_bdat;
}

/* client_prev_reply - the final reply to the previous message's end of data,
 * read while the next message is already under way (pipeline_next) */
static enum smtp_client_ev client_prev_reply(struct smtp_client *c)
{
	c->_prev_end = false;
	c->_messages++;
	return SMTP_CL_RESULT;
}

/* client_on_reply - one complete reply from the server */
static enum smtp_client_ev client_on_reply(struct smtp_client *c, const struct smtp_reply *r,
					   struct buf *out)
{
	bool ok = r->code / 100 == 2;

	c->_reply = r;
	if (r->code == 421)
		return client_close(c, SMTP_CLIENT_FAIL_SHUTDOWN, r, false, out);
	if (r->code / 100 == 3 && !(r->code == 354 && client_awaits_354(c)))
		return client_close(c, SMTP_CLIENT_FAIL_PROTOCOL, r, true, out);
	if (c->_prev_end)
		return client_prev_reply(c);
	switch (c->_state) {
	case SMTP_CLIENT_GREETING:
		if (r->code != 220)
			return client_close(c, SMTP_CLIENT_FAIL_GREETING, r, true, out);
		c->_send = SEND_EHLO;
		c->_state = SMTP_CLIENT_EHLO;
		return SMTP_CL_NONE;
	case SMTP_CLIENT_EHLO:
		if (ok) {
			client_caps_parse(&c->_caps, r);
			return client_after_hello(c, r, out);
		}
		if (r->code / 100 == 5) {
			c->_send = SEND_HELO;
			c->_state = SMTP_CLIENT_HELO;
			return SMTP_CL_NONE;
		}
		return client_close(c, SMTP_CLIENT_FAIL_HELO, r, true, out);
	case SMTP_CLIENT_HELO:
		if (!ok)
			return client_close(c, SMTP_CLIENT_FAIL_HELO, r, true, out);
		memset(&c->_caps, 0, sizeof c->_caps);
		return client_after_hello(c, r, out);
	case SMTP_CLIENT_STARTTLS:
		if (ok) {
			c->_state = SMTP_CLIENT_TLS;
			return SMTP_CL_STARTTLS;
		}
		if (c->_cfg.tls == SMTP_CLIENT_TLS_REQUIRED)
			return client_close(c, SMTP_CLIENT_FAIL_TLS_FAILED, r, true, out);
		client_ready(c);
		return SMTP_CL_NONE;
	case SMTP_CLIENT_TX:
		return client_tx_reply(c, r, out);
	case SMTP_CLIENT_BODY:
		if (c->_bdat_early && c->_rd < c->_end)
			return client_tx_reply(c, r, out);
		if (c->_bdat)
			return client_bdat_reply(c, r, out);
		break;
	case SMTP_CLIENT_DATA_END:
		if (c->_bdat_early && c->_rd < c->_end)
			return client_tx_reply(c, r, out);
		if (c->_bdat)
			return client_bdat_reply(c, r, out);
		c->_need_rset = false; /* the end of data closed the transaction */
		if (c->_dot_only) {
			client_tx_over(c);
			return SMTP_CL_NONE;
		}
		client_tx_over(c);
		return SMTP_CL_RESULT;
	case SMTP_CLIENT_QUIT:
		return client_close(c, SMTP_CLIENT_FAIL_NONE, r, false, out);
	default:
		break;
	}
	return client_close(c, SMTP_CLIENT_FAIL_PROTOCOL, r, true, out);
}

/* client_write - write what is decided and not yet written */
static enum smtp_client_ev client_write(struct smtp_client *c, struct buf *out)
{
	bool full = false;

	if (c->_send) {
		if (client_put_session(c, c->_send, out))
			full = true;
		else
			c->_send = SEND_NONE;
	}
	while (!full && c->_state == SMTP_CLIENT_TX && c->_wr < c->_end &&
	       (c->_pipelining || c->_wr == c->_rd)) {
		if (client_put_tx(c, c->_wr, out))
			full = true;
		else
			c->_wr++;
	}
	if (!full && c->_bdat_early && c->_state == SMTP_CLIENT_TX && c->_wr == c->_end)
		client_body_start(c); /* BDAT follows the last RCPT in the same write */
	if (!full)
		return SMTP_CL_NONE;
	if (out->len == 0)
		return client_close(c, SMTP_CLIENT_FAIL_OUTPUT, NULL, false, out);
	return SMTP_CL_FLUSH;
}

/* smtp_client_feed - consume in[0..len) as far as the next event */
enum smtp_client_ev smtp_client_feed(struct smtp_client *c, const char *in, size_t len,
				     size_t *consumed, struct buf *out)
{
	enum smtp_client_ev ev = SMTP_CL_NONE;
	size_t used = 0;

	for (;;) {
		const struct smtp_reply *r;
		enum smtp_reply_status st;
		size_t n;

		if (c->_state == SMTP_CLIENT_CLOSED) {
			ev = SMTP_CL_CLOSE;
			break;
		}
		ev = client_write(c, out);
		if (ev != SMTP_CL_NONE)
			break;
		if (c->_ev != SMTP_CL_NONE) {
			ev = (enum smtp_client_ev)c->_ev;
			c->_ev = SMTP_CL_NONE;
			break;
		}
		if (used == len)
			break;
		if (c->_state == SMTP_CLIENT_TLS) {
			/* Bytes between "220" and the handshake: an injection. */
			ev = client_close(c, SMTP_CLIENT_FAIL_PROTOCOL, NULL, false, out);
			break;
		}
		st = smtp_reply_feed(&c->_rp, in + used, len - used, &n, &r);
		used += n;
		if (st == SMTP_REPLY_NEED_MORE)
			continue;
		if (st == SMTP_REPLY_BAD) {
			ev = client_close(c, SMTP_CLIENT_FAIL_PROTOCOL, NULL, false, out);
			break;
		}
		ev = client_on_reply(c, r, out);
		if (ev != SMTP_CL_NONE)
			break;
	}
	*consumed = used;
	return ev;
}

/* smtp_client_send - start a message */
int smtp_client_send(struct smtp_client *c, const struct smtp_client_msg *msg)
{
	if (c->_state != SMTP_CLIENT_READY || msg->nrcpt == 0)
		return RM_EINVAL;
	c->_msg = msg;
	c->_ev = SMTP_CL_NONE;
	c->_state = SMTP_CLIENT_TX;
	c->_pipelining = c->_caps.pipelining && !c->_cfg.no_pipelining;
	c->_bdat = c->_caps.chunking && !c->_cfg.no_chunking;
	c->_bdat_early = c->_bdat && c->_pipelining;
	c->_mail_ok = false;
	c->_dot_only = false;
	c->_bdat_failed = false;
	c->_bdat_last = false;
	c->_bdat_pending = 0;
	c->_accepted = 0;
	c->_rcpt = 0;
	c->_rd = c->_wr = c->_need_rset ? POS_RSET : POS_MAIL;
	c->_end = POS_RCPT0 + msg->nrcpt + (c->_bdat ? 0 : 1);
	return RM_OK;
}

/* smtp_client_quit - end the session politely */
int smtp_client_quit(struct smtp_client *c)
{
	if (c->_state != SMTP_CLIENT_READY)
		return RM_EINVAL;
	c->_ev = SMTP_CL_NONE;
	c->_send = SEND_QUIT;
	c->_state = SMTP_CLIENT_QUIT;
	return RM_OK;
}

/* smtp_client_tls_started - the handshake finished or failed */
void smtp_client_tls_started(struct smtp_client *c, bool ok)
{
	if (c->_state != SMTP_CLIENT_TLS)
		return;
	if (!ok) {
		c->_state = SMTP_CLIENT_CLOSED;
		c->_fail = SMTP_CLIENT_FAIL_TLS_FAILED;
		c->_reply = NULL;
		return;
	}
	/* RFC 3207 §4.2: forget everything learnt before TLS. */
	c->_tls = true;
	memset(&c->_caps, 0, sizeof c->_caps);
	smtp_reply_parser_init(&c->_rp);
	c->_send = SEND_EHLO;
	c->_state = SMTP_CLIENT_EHLO;
}

/* smtp_client_bdat_mode - BODY goes as BDAT chunks */
bool smtp_client_bdat_mode(const struct smtp_client *c)
{
	return c->_bdat;
}

/* smtp_client_body_sent - DATA mode: body and terminator are out */
int smtp_client_body_sent(struct smtp_client *c)
{
	if (c->_state != SMTP_CLIENT_BODY || c->_bdat)
		return RM_EINVAL;
	if (c->_pipelining && c->_cfg.pipeline_next) {
		/* The end of data closes the transaction whatever its reply,
		 * so the next MAIL needs no RSET (RFC 5321 §4.1.1.4). */
		c->_need_rset = false;
		c->_prev_end = true;
		c->_msg = NULL;
		client_ready(c);
		return RM_OK;
	}
	c->_state = SMTP_CLIENT_DATA_END;
	return RM_OK;
}

/* smtp_client_bdat - BDAT mode: announce one chunk */
int smtp_client_bdat(struct smtp_client *c, struct buf *out, uint64_t n, bool last)
{
	if (c->_state != SMTP_CLIENT_BODY || !c->_bdat)
		return RM_EINVAL;
	if (c->_bdat_failed || client_early_refused(c)) {
		/* a refused MAIL left no transaction to reset */
		c->_need_rset = c->_bdat_failed || c->_mail_ok;
		c->_bdat_failed = true;
		c->_bdat_last = true;
		if (c->_bdat_pending == 0 && c->_rd >= c->_end)
			client_tx_over(c);
		else
			c->_state = SMTP_CLIENT_DATA_END;
		return RM_EPROTO;
	}
	if (!c->_pipelining && c->_bdat_pending)
		return RM_AGAIN;
	if (smtp_client_put_bdat(out, n, last))
		return RM_ENOMEM;
	c->_bdat_pending++;
	if (last) {
		c->_bdat_last = true;
		c->_state = SMTP_CLIENT_DATA_END;
	}
	return RM_OK;
}

/* smtp_client_reply - the reply behind the last event */
const struct smtp_reply *smtp_client_reply(const struct smtp_client *c)
{
	return c->_reply;
}

/* client_tx_phase - the reply awaited for the transaction command at _rd */
static enum smtp_client_phase client_tx_phase(const struct smtp_client *c)
{
	if (c->_rd == POS_RSET)
		return SMTP_CLIENT_PHASE_RSET;
	if (c->_rd == POS_MAIL)
		return SMTP_CLIENT_PHASE_MAIL;
	if (c->_rd - POS_RCPT0 < c->_msg->nrcpt)
		return SMTP_CLIENT_PHASE_RCPT;
	return SMTP_CLIENT_PHASE_DATA_INIT;
}

/* smtp_client_phase - what the engine is waiting for */
enum smtp_client_phase smtp_client_phase(const struct smtp_client *c)
{
	if (c->_prev_end && (c->_state == SMTP_CLIENT_READY || c->_state == SMTP_CLIENT_TX))
		return SMTP_CLIENT_PHASE_DATA_END;
	switch (c->_state) {
	case SMTP_CLIENT_GREETING:
		return SMTP_CLIENT_PHASE_GREETING;
	case SMTP_CLIENT_EHLO:
	case SMTP_CLIENT_HELO:
	case SMTP_CLIENT_STARTTLS:
		return SMTP_CLIENT_PHASE_EHLO;
	case SMTP_CLIENT_TLS:
		return SMTP_CLIENT_PHASE_TLS;
	case SMTP_CLIENT_DATA_END:
		if (!c->_bdat_early || c->_rd >= c->_end)
			return SMTP_CLIENT_PHASE_DATA_END;
		return client_tx_phase(c); /* the commands' replies come first */
	case SMTP_CLIENT_TX:
		return client_tx_phase(c);
	case SMTP_CLIENT_BODY:
		return SMTP_CLIENT_PHASE_DATA_BLOCK;
	case SMTP_CLIENT_QUIT:
		return SMTP_CLIENT_PHASE_QUIT;
	default:
		return SMTP_CLIENT_PHASE_NONE;
	}
}

/* --- dot-stuffing ------------------------------------------------------------ */

static const char client_dot_crlf[] = "\r\n.\r\n";

/* smtp_stuff_init - ready for a new body */
void smtp_stuff_init(struct smtp_stuff *st)
{
	memset(st, 0, sizeof *st);
}

/* stuff_pass - record that in[0..n) went out */
static void stuff_pass(struct smtp_stuff *st, const char *p, size_t n)
{
	if (n == 0)
		return;
	st->_b2 = n >= 2 ? p[n - 2] : st->_b1;
	st->_b1 = p[n - 1];
	st->_any = true;
	st->_stuffed = false;
}

/* smtp_stuff_feed - emit slices for in[0..len) with line-initial dots doubled */
size_t smtp_stuff_feed(struct smtp_stuff *st, const char *in, size_t len, struct slice *out,
		       size_t cap, size_t *n)
{
	size_t start = 0, i = 0;

	while (i < len) {
		bool bol = i > 0 ? in[i - 1] == '\n' : (!st->_any || st->_b1 == '\n');

		if (bol && in[i] == '.' && !(i == start && st->_stuffed)) {
			if (cap - *n < (i > start) + 1u)
				return start;
			if (i > start) {
				out[(*n)++] = slice_make(in + start, i - start);
				stuff_pass(st, in + start, i - start);
			}
			out[(*n)++] = slice_make(client_dot_crlf + 2, 1);
			st->_stuffed = true;
			start = i;
		}
		const char *lf = memchr(in + i, '\n', len - i);
		i = lf ? (size_t)(lf - in) + 1 : len;
	}
	if (i > start) {
		if (*n == cap)
			return start;
		out[(*n)++] = slice_make(in + start, i - start);
		stuff_pass(st, in + start, i - start);
	}
	return i;
}

/* smtp_stuff_end - the terminator to send after the body */
struct slice smtp_stuff_end(const struct smtp_stuff *st)
{
	if (!st->_any || (st->_b2 == '\r' && st->_b1 == '\n'))
		return slice_make(client_dot_crlf + 2, 3);
	return slice_make(client_dot_crlf, 5);
}
