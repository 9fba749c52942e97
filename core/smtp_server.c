/* smtp_server.c - the inbound SMTP session engine.
 *
 * Purpose: turn the bytes a client sends into replies and host events
 * (smtp_server.h has the host loop). Command lines are found here, named by
 * smtp_cmd_parse, their paths and parameters read by smtp_addr; bodies go
 * through smtp_data (DATA scanned, BDAT raw) and leave as slices.
 *
 * Invariants:
 *  - the session state changes only in smtp_server_goto;
 *  - a command line is copied into _line only when it spans feeds; a line
 *    longer than the limit is dropped up to its LF without being stored;
 *  - the envelope lives in the transaction arena (_txa), reset when the
 *    transaction ends; the session arena (_sa) holds only the AUTH buffer
 *    (allocated on AUTH, wiped and freed when it ends) and the user name of
 *    a successful AUTH;
 *  - every step that can queue a reply starts with SMTP_SERVER_REPLY_ROOM
 *    free in io->replies, or with an empty buffer (then a reply that does
 *    not fit is dropped: the host's buffer is too small).
 * Threads: one session belongs to one thread; no shared state.
 * Panics on nothing: bad input, full arenas and host misuse are outcomes.
 */
#include "core/smtp_server.h"

#include <string.h>

#include "core/smtp_reply.h"

#define SMTP_SERVER_STATES(X)                                                                  \
	X(CMD)        /* reading command lines */                                              \
	X(DATA)       /* inside a DATA body */                                                 \
	X(BDAT)       /* inside a BDAT chunk */                                                \
	X(COMMIT)     /* SMTP_EV_COMMIT given; waiting for smtp_server_committed */            \
	X(TLS)        /* SMTP_EV_STARTTLS given; input dropped until the handshake */          \
	X(AUTH_RESP)  /* 334 sent; reading an AUTH response line */                            \
	X(AUTH_CHECK) /* SMTP_EV_AUTH given; waiting for smtp_server_auth_done */              \
	X(CLOSED)     /* SMTP_EV_CLOSE given; nothing more is read */

enum smtp_server_state {
#define X(name) SMTP_SERVER_##name,
	SMTP_SERVER_STATES(X)
#undef X
};

static const char *const smtp_server_state_names[] = {
#define X(name) #name,
	SMTP_SERVER_STATES(X)
#undef X
};

#define SMTP_SERVER_DEF_SIZE 52428800u
#define SMTP_SERVER_DEF_RCPTS 1000u
#define SMTP_SERVER_DEF_ERRORS 20u
#define SMTP_SERVER_HELO_MAX 256
#define SMTP_SERVER_USER_MAX 256          /* longer AUTH user names fail */
#define SMTP_SERVER_SA_LIMIT (64u * 1024) /* session arena: the AUTH buffer */

enum smtp_auth_mech { SMTP_AUTH_NONE = 0, SMTP_AUTH_PLAIN, SMTP_AUTH_LOGIN };

/* A reply kept for later, e.g. after a BDAT chunk that must be consumed. */
struct smtp_server_reply {
	unsigned code;
	const char *enh;
	const char *text;
	bool error; /* counts toward max_errors */
};

struct smtp_server {
	const struct smtp_server_cfg *_cfg;
	uint64_t _max_size;
	unsigned _max_rcpts, _max_errors;
	uint8_t _state;
	bool _helo_done, _esmtp, _tls, _in_tx, _discard, _oversize, _bdat_last, _bdat_drop;
	uint8_t _auth_mech, _auth_step;
	unsigned _errors;
	size_t _line_len;
	uint64_t _bdat_left, _bdat_size;
	const struct smtp_server_reply *_bdat_reply; /* after a dropped chunk */
	struct smtp_tx _tx;
	size_t _rcpt_cap;
	struct smtp_data _data;
	struct arena _txa, _sa;
	char *_auth_buf;          /* 2 * SMTP_AUTH_LINE_MAX in _sa, on demand */
	struct slice _auth_user, _auth_pass, _authed;
	uint16_t _helo_len;
	char _helo[SMTP_SERVER_HELO_MAX];
	char _line[SMTP_CMD_LINE_MAX];
};

/* The command table (STYLE.md 4). */
#define SMTP_F_HELO 0x01u /* needs HELO/EHLO first */
#define SMTP_F_TX 0x02u   /* allowed inside a transaction */
#define SMTP_F_LAST 0x04u /* must be last in a pipelined group (RFC 2920 §3.1) */
#define SMTP_F_TLS 0x08u  /* only under TLS */
#define SMTP_F_SELF 0x10u /* the handler does every check itself */
#define SMTP_F_NOARG 0x20u /* takes no argument: 501 otherwise */

typedef enum smtp_server_ev (*smtp_server_cmd_fn)(struct smtp_server *s, const struct smtp_cmd *c,
						  struct smtp_server_io *io);

struct smtp_server_cmd {
	smtp_server_cmd_fn fn;
	unsigned flags;
	const char *syntax; /* the 501 text */
};

static const struct smtp_server_reply smtp_r_need_mail = { 503, "5.5.1", "Error: need MAIL command", true };
static const struct smtp_server_reply smtp_r_need_helo = { 503, "5.5.1", "Error: send HELO/EHLO first", true };
static const struct smtp_server_reply smtp_r_no_rcpt = { 554, "5.5.1", "Error: no valid recipients", true };
static const struct smtp_server_reply smtp_r_bdat_syntax = { 501, "5.5.4", "Syntax: BDAT size [LAST]", true };
static const struct smtp_server_reply smtp_r_too_big = { 552, "5.3.4", "Error: message file too big", false };
static const struct smtp_server_reply smtp_r_storage = { 452, "4.3.1", "Insufficient system storage", false };

/* smtp_server_goto - the one place the session state changes */
static void smtp_server_goto(struct smtp_server *s, enum smtp_server_state to)
{
	s->_state = (uint8_t)to;
}

/* smtp_server_state_name - the session state's name, for logs and tests */
const char *smtp_server_state_name(const struct smtp_server *s)
{
	return smtp_server_state_names[s->_state];
}

/* smtp_server_size - sizeof(struct smtp_server), for hosts that pool them */
size_t smtp_server_size(void)
{
	return sizeof(struct smtp_server);
}

/* smtp_server_say - queue one reply line; a full buffer drops it (see top) */
static void smtp_server_say(struct smtp_server_io *io, unsigned code, const char *enh,
			    struct slice text, bool more)
{
	if (smtp_reply_put(io->replies, code, enh, text, more) != RM_OK)
		return; /* only when the host's buffer is below SMTP_SERVER_REPLY_ROOM */
}

/* smtp_server_sayc - queue one final reply line from a C string */
static void smtp_server_sayc(struct smtp_server_io *io, unsigned code, const char *enh,
			     const char *text)
{
	smtp_server_say(io, code, enh, slice_cstr(text), false);
}

/* smtp_server_host_reply - "CODE [ENH ]<hostname> TEXT", as 421 and 220 say */
static void smtp_server_host_reply(struct smtp_server *s, struct smtp_server_io *io,
				   unsigned code, const char *enh, const char *text)
{
	char tmp[SMTP_REPLY_LINE_MAX];
	struct buf b;

	buf_init(&b, tmp, sizeof tmp - 32);
	if (buf_put_slice(&b, s->_cfg->hostname) != RM_OK)
		b.len = 0;
	if (buf_put(&b, " ", 1) != RM_OK || buf_put_str(&b, text) != RM_OK)
		b.len = 0;
	smtp_server_say(io, code, enh, buf_slice(&b), false);
}

/* smtp_server_close - end the session with a reply already queued */
static enum smtp_server_ev smtp_server_close(struct smtp_server *s)
{
	smtp_server_goto(s, SMTP_SERVER_CLOSED);
	return SMTP_EV_CLOSE;
}

/* smtp_server_error - queue an error reply and count it; past the budget
 * add 421 and close (Postfix's smtpd_hard_error_limit) */
static enum smtp_server_ev smtp_server_error(struct smtp_server *s, struct smtp_server_io *io,
					     unsigned code, const char *enh, const char *text)
{
	smtp_server_sayc(io, code, enh, text);
	if (++s->_errors <= s->_max_errors)
		return SMTP_EV_NONE;
	smtp_server_host_reply(s, io, 421, "4.7.0", "Error: too many errors");
	return smtp_server_close(s);
}

/* smtp_server_answer - queue a kept reply, counting it when it is an error */
static enum smtp_server_ev smtp_server_answer(struct smtp_server *s, struct smtp_server_io *io,
					      const struct smtp_server_reply *r)
{
	if (r->error)
		return smtp_server_error(s, io, r->code, r->enh, r->text);
	smtp_server_sayc(io, r->code, r->enh, r->text);
	return SMTP_EV_NONE;
}

/* smtp_server_tx_reset - end the transaction and free its envelope */
static void smtp_server_tx_reset(struct smtp_server *s)
{
	arena_reset(&s->_txa);
	memset(&s->_tx, 0, sizeof s->_tx);
	s->_rcpt_cap = 0;
	s->_in_tx = false;
	s->_oversize = false;
}

/* smtp_server_auth_wipe - forget AUTH credentials and free their buffer */
static void smtp_server_auth_wipe(struct smtp_server *s)
{
	if (s->_auth_buf)
		memset(s->_auth_buf, 0, 2 * (size_t)SMTP_AUTH_LINE_MAX);
	s->_auth_buf = NULL;
	s->_auth_user = s->_auth_pass = SLICE_NULL;
	s->_auth_mech = SMTP_AUTH_NONE;
	s->_auth_step = 0;
	arena_free(&s->_sa);
}

/* smtp_server_init - a new session on s; tls for implicit TLS listeners */
void smtp_server_init(struct smtp_server *s, const struct smtp_server_cfg *cfg, bool tls)
{
	size_t limit;

	memset(s, 0, offsetof(struct smtp_server, _helo));
	s->_helo_len = 0;
	s->_cfg = cfg;
	s->_max_size = cfg->max_message_size ? cfg->max_message_size : SMTP_SERVER_DEF_SIZE;
	s->_max_rcpts = cfg->max_recipients ? cfg->max_recipients : SMTP_SERVER_DEF_RCPTS;
	s->_max_errors = cfg->max_errors ? cfg->max_errors : SMTP_SERVER_DEF_ERRORS;
	s->_tls = tls;
	limit = cfg->tx_arena_limit ? cfg->tx_arena_limit
				    : 64u * 1024 + (size_t)s->_max_rcpts * 1024;
	arena_init(&s->_txa, cfg->alloc ? cfg->alloc : &rm_alloc_libc, 1024, limit);
	arena_init(&s->_sa, cfg->alloc ? cfg->alloc : &rm_alloc_libc, 1024, SMTP_SERVER_SA_LIMIT);
	smtp_server_goto(s, SMTP_SERVER_CMD);
}

/* smtp_server_fini - free the session's memory; s may be reused */
void smtp_server_fini(struct smtp_server *s)
{
	smtp_server_auth_wipe(s);
	s->_authed = SLICE_NULL;
	arena_free(&s->_txa);
	memset(&s->_tx, 0, sizeof s->_tx);
	s->_in_tx = false;
	smtp_server_goto(s, SMTP_SERVER_CLOSED);
}

/* smtp_server_greet - queue the 220 greeting */
int smtp_server_greet(struct smtp_server *s, struct smtp_server_io *io)
{
	size_t before = io->replies->len;

	smtp_server_host_reply(s, io, 220, NULL, "ESMTP ringmta");
	return io->replies->len > before ? RM_OK : RM_ENOMEM;
}

/* smtp_server_has_ctl - any NUL, CR, LF or other control byte but HTAB */
static bool smtp_server_has_ctl(struct slice a)
{
	for (size_t i = 0; i < a.len; i++) {
		unsigned char c = (unsigned char)a.ptr[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return true;
	}
	return false;
}

/* --- HELO, EHLO ---------------------------------------------------------- */

/* smtp_server_set_helo - validate and keep the HELO/EHLO name */
static bool smtp_server_set_helo(struct smtp_server *s, struct slice arg)
{
	if (arg.len == 0 || arg.len >= sizeof s->_helo || !smtp_domain_valid(arg, true))
		return false;
	memcpy(s->_helo, arg.ptr, arg.len);
	s->_helo_len = (uint16_t)arg.len;
	return true;
}

/* smtp_server_reset_abort - end the transaction; ABORT if body bytes left */
static enum smtp_server_ev smtp_server_reset_abort(struct smtp_server *s)
{
	bool emitted = s->_in_tx && s->_tx.body_bytes > 0;

	smtp_server_tx_reset(s);
	return emitted ? SMTP_EV_ABORT : SMTP_EV_NONE;
}

/* smtp_server_cmd_helo - HELO and EHLO (RFC 5321 §4.1.1.1) */
static enum smtp_server_ev smtp_server_cmd_helo(struct smtp_server *s, const struct smtp_cmd *c,
						struct smtp_server_io *io)
{
	bool ehlo = c->id == SMTP_CMD_EHLO;
	struct slice host = s->_cfg->hostname;

	if (!smtp_server_set_helo(s, c->arg))
		return smtp_server_error(s, io, 501, "5.5.4",
					 ehlo ? "Syntax: EHLO hostname" : "Syntax: HELO hostname");
	s->_helo_done = true;
	s->_esmtp = ehlo;
	if (!ehlo) {
		smtp_server_say(io, 250, NULL, host, false);
		return smtp_server_reset_abort(s);
	}
	char size[40];
	struct buf sb;
	buf_init(&sb, size, sizeof size);
	if (buf_put_str(&sb, "SIZE ") != RM_OK || buf_put_u64(&sb, s->_max_size) != RM_OK)
		sb.len = 0;
	struct slice lines[12];
	size_t n = 0;
	lines[n++] = host;
	lines[n++] = SLICE_LIT("PIPELINING");
	lines[n++] = buf_slice(&sb);
	lines[n++] = SLICE_LIT("8BITMIME");
	lines[n++] = SLICE_LIT("ENHANCEDSTATUSCODES");
	if (!s->_cfg->no_chunking)
		lines[n++] = SLICE_LIT("CHUNKING");
	lines[n++] = SLICE_LIT("SMTPUTF8");
	lines[n++] = SLICE_LIT("DSN");
	if (s->_cfg->tls_available && !s->_tls)
		lines[n++] = SLICE_LIT("STARTTLS");
	if (s->_tls && s->_cfg->auth_available && s->_authed.len == 0)
		lines[n++] = SLICE_LIT("AUTH PLAIN LOGIN");
	for (size_t i = 0; i < n; i++)
		smtp_server_say(io, 250, NULL, lines[i], i + 1 < n);
	return smtp_server_reset_abort(s);
}

/* --- MAIL, RCPT ---------------------------------------------------------- */

/* smtp_server_dup - s copied into the transaction arena; false when full */
static bool smtp_server_dup(struct smtp_server *s, struct slice *s_io)
{
	if (s_io->len == 0) {
		*s_io = SLICE_NULL;
		return true;
	}
	*s_io = arena_dup(&s->_txa, *s_io);
	return s_io->ptr != NULL;
}

/* smtp_server_rebase - a slice of old moved to the same place in copy */
static bool smtp_server_rebase(struct slice *part, struct slice old, struct slice copy)
{
	if (part->len == 0) {
		*part = SLICE_NULL;
		return true;
	}
	if (part->ptr >= old.ptr && part->ptr + part->len <= old.ptr + old.len) {
		*part = slice_make(copy.ptr + (part->ptr - old.ptr), part->len);
		return true;
	}
	return false;
}

/* smtp_server_copy_path - a path's slices copied into the transaction arena */
static bool smtp_server_copy_path(struct smtp_server *s, struct smtp_path *p)
{
	struct slice old = p->mailbox;

	if (!smtp_server_dup(s, &p->mailbox))
		return false;
	if (!smtp_server_rebase(&p->local, old, p->mailbox) && !smtp_server_dup(s, &p->local))
		return false;
	if (!smtp_server_rebase(&p->domain, old, p->mailbox) && !smtp_server_dup(s, &p->domain))
		return false;
	return true;
}

/* smtp_server_param_error - the reply for a parameter error */
static enum smtp_server_ev smtp_server_param_error(struct smtp_server *s, struct smtp_server_io *io,
						   enum smtp_addr_err e)
{
	if (e == SMTP_ADDR_PARAM_UNKNOWN)
		return smtp_server_error(s, io, 555, "5.5.4", "Unsupported option");
	return smtp_server_error(s, io, 501, "5.5.4", "Bad parameter syntax");
}

/* smtp_server_verdict - send a policy refusal; 5xx counts as an error */
static enum smtp_server_ev smtp_server_verdict(struct smtp_server *s, struct smtp_server_io *io,
					       const struct smtp_verdict *v)
{
	const char *text = v->text ? v->text : "Error: refused";

	if (v->code >= 500)
		return smtp_server_error(s, io, v->code, v->enh, text);
	smtp_server_sayc(io, v->code, v->enh, text);
	return SMTP_EV_NONE;
}

/* smtp_server_cmd_mail - MAIL FROM (RFC 5321 §4.1.1.2, RFC 1870, 6152,
 * 6531, 3461, 4954) */
static enum smtp_server_ev smtp_server_cmd_mail(struct smtp_server *s, const struct smtp_cmd *c,
						struct smtp_server_io *io)
{
	struct smtp_path from;
	struct smtp_mail_params p;
	struct slice rest, bad;
	enum smtp_addr_err e;

	if (s->_in_tx)
		return smtp_server_error(s, io, 503, "5.5.1", "Error: nested MAIL command");
	e = smtp_path_parse(c->arg, true, &from, &rest);
	if (e != SMTP_ADDR_OK)
		return smtp_server_error(s, io, 501, "5.1.7", "Bad sender address syntax");
	memset(&p, 0, sizeof p);
	e = smtp_mail_params_parse(rest, &p, &bad);
	if (e != SMTP_ADDR_OK)
		return smtp_server_param_error(s, io, e);
	if (from.utf8 && !p.smtputf8)
		return smtp_server_error(s, io, 553, "5.6.7",
					 "Must declare SMTPUTF8 to send UTF-8 addresses");
	if (p.has_size && p.size > s->_max_size) {
		smtp_server_sayc(io, 552, "5.3.4", "Message size exceeds fixed limit");
		return SMTP_EV_NONE;
	}
	if (s->_cfg->policy.mail) {
		struct smtp_verdict v = { 0, NULL, NULL };
		s->_cfg->policy.mail(s->_cfg->policy.ctx, s, &from, &p, &v);
		if (v.code)
			return smtp_server_verdict(s, io, &v);
	}
	if (!smtp_server_copy_path(s, &from) || !smtp_server_dup(s, &p.envid) ||
	    !smtp_server_dup(s, &p.auth)) {
		smtp_server_tx_reset(s);
		return smtp_server_answer(s, io, &smtp_r_storage);
	}
	s->_tx.from = from;
	s->_tx.mail = p;
	s->_in_tx = true;
	smtp_server_sayc(io, 250, "2.1.0", "Ok");
	return SMTP_EV_NONE;
}

/* smtp_server_add_rcpt - append a recipient to the envelope */
static bool smtp_server_add_rcpt(struct smtp_server *s, const struct smtp_path *to,
				 const struct smtp_rcpt_params *p)
{
	struct smtp_rcpt r = { *to, *p };

	if (s->_tx.nrcpt == s->_rcpt_cap) {
		size_t cap = s->_rcpt_cap ? s->_rcpt_cap * 2 : 4;
		struct smtp_rcpt *v = arena_alloc(&s->_txa, cap * sizeof *v);
		if (v == NULL)
			return false;
		if (s->_tx.nrcpt)
			memcpy(v, s->_tx.rcpt, s->_tx.nrcpt * sizeof *v);
		s->_tx.rcpt = v;
		s->_rcpt_cap = cap;
	}
	if (!smtp_server_copy_path(s, &r.path) || !smtp_server_dup(s, &r.params.orcpt))
		return false;
	s->_tx.rcpt[s->_tx.nrcpt++] = r;
	return true;
}

/* smtp_server_cmd_rcpt - RCPT TO (RFC 5321 §4.1.1.3, RFC 3461 §4) */
static enum smtp_server_ev smtp_server_cmd_rcpt(struct smtp_server *s, const struct smtp_cmd *c,
						struct smtp_server_io *io)
{
	struct smtp_path to;
	struct smtp_rcpt_params p;
	struct slice rest, bad;
	enum smtp_addr_err e;

	if (!s->_in_tx)
		return smtp_server_answer(s, io, &smtp_r_need_mail);
	if (s->_tx.bdat)
		return smtp_server_error(s, io, 503, "5.5.1", "Error: BDAT in progress");
	e = smtp_path_parse(c->arg, false, &to, &rest);
	if (e != SMTP_ADDR_OK)
		return smtp_server_error(s, io, 501, "5.1.3", "Bad recipient address syntax");
	memset(&p, 0, sizeof p);
	e = smtp_rcpt_params_parse(rest, &p, &bad);
	if (e != SMTP_ADDR_OK)
		return smtp_server_param_error(s, io, e);
	if (to.utf8 && !s->_tx.mail.smtputf8)
		return smtp_server_error(s, io, 553, "5.6.7",
					 "Must declare SMTPUTF8 to send UTF-8 addresses");
	if (s->_tx.nrcpt >= s->_max_rcpts) {
		smtp_server_sayc(io, 452, "4.5.3", "Error: too many recipients");
		return SMTP_EV_NONE;
	}
	if (s->_cfg->policy.rcpt) {
		struct smtp_verdict v = { 0, NULL, NULL };
		s->_cfg->policy.rcpt(s->_cfg->policy.ctx, s, &to, &p, &v);
		if (v.code)
			return smtp_server_verdict(s, io, &v);
	}
	if (!smtp_server_add_rcpt(s, &to, &p))
		return smtp_server_answer(s, io, &smtp_r_storage);
	smtp_server_sayc(io, 250, "2.1.5", "Ok");
	return SMTP_EV_NONE;
}

/* --- DATA, BDAT ---------------------------------------------------------- */

/* smtp_server_cmd_data - DATA (RFC 5321 §4.1.1.4) */
static enum smtp_server_ev smtp_server_cmd_data(struct smtp_server *s, const struct smtp_cmd *c,
						struct smtp_server_io *io)
{
	(void)c;
	if (!s->_in_tx)
		return smtp_server_error(s, io, 503, "5.5.1", "Error: need RCPT command");
	if (s->_tx.bdat)
		return smtp_server_error(s, io, 503, "5.5.1", "Error: DATA after BDAT");
	if (s->_tx.mail.body == SMTP_BODY_BINARYMIME) /* RFC 3030 §3 */
		return smtp_server_error(s, io, 503, "5.5.1", "Error: BINARYMIME requires BDAT");
	if (s->_tx.nrcpt == 0)
		return smtp_server_answer(s, io, &smtp_r_no_rcpt);
	smtp_data_init(&s->_data);
	smtp_server_sayc(io, 354, NULL, "End data with <CR><LF>.<CR><LF>");
	smtp_server_goto(s, SMTP_SERVER_DATA);
	return SMTP_EV_NONE;
}

/* smtp_server_bdat_args - "n" or "n LAST"; false when not even n parses */
static bool smtp_server_bdat_args(struct slice a, uint64_t *n, bool *last, bool *ok)
{
	size_t i = 0;
	unsigned long long v;

	while (i < a.len && a.ptr[i] >= '0' && a.ptr[i] <= '9')
		i++;
	if (i == 0 || i > 18 || !slice_to_u64(slice_make(a.ptr, i), ~0ull, &v))
		return false;
	*n = v;
	struct slice rest = slice_make(a.ptr + i, a.len - i);
	*last = false;
	*ok = true;
	if (rest.len == 0)
		return true;
	if (rest.ptr[0] != ' ') {
		*ok = false;
		return false; /* "12x": no size known */
	}
	rest = slice_trim(rest);
	if (slice_eq_nocase(rest, SLICE_LIT("LAST")))
		*last = true;
	else
		*ok = false;
	return true;
}

/* smtp_server_end_message - the whole body is in: refuse it or commit it */
static enum smtp_server_ev smtp_server_end_message(struct smtp_server *s, struct smtp_server_io *io)
{
	s->_tx.received = smtp_data_received(&s->_data);
	smtp_server_goto(s, SMTP_SERVER_CMD);
	if (s->_oversize) {
		io->nbody = 0;
		smtp_server_tx_reset(s);
		smtp_server_answer(s, io, &smtp_r_too_big);
		return SMTP_EV_ABORT;
	}
	if (s->_tx.received > SMTP_DATA_MAX_RECEIVED) {
		io->nbody = 0;
		smtp_server_tx_reset(s);
		smtp_server_sayc(io, 554, "5.4.6", "Error: too many hops");
		return SMTP_EV_ABORT;
	}
	smtp_server_goto(s, SMTP_SERVER_COMMIT);
	return SMTP_EV_COMMIT;
}

static enum smtp_server_ev smtp_server_bdat_end(struct smtp_server *s, struct smtp_server_io *io);

/* smtp_server_cmd_bdat - BDAT n [LAST] (RFC 3030 §2); every check happens
 * after the size is known, so a refused chunk is still consumed, except a
 * chunk larger than the whole size limit: skipping it would let one short
 * command hold the session until n bytes (up to 10^18) came or the data
 * timeout struck, so it gets 552 at once and the session is closed */
static enum smtp_server_ev smtp_server_cmd_bdat(struct smtp_server *s, const struct smtp_cmd *c,
						struct smtp_server_io *io)
{
	uint64_t n = 0;
	bool last = false, ok = false;
	const struct smtp_server_reply *r = NULL;

	if (!smtp_server_bdat_args(c->arg, &n, &last, &ok))
		return smtp_server_answer(s, io, &smtp_r_bdat_syntax);
	if (n > s->_max_size) {
		smtp_server_sayc(io, 552, "5.3.4", "Message size exceeds fixed limit");
		return smtp_server_close(s);
	}
	if (!ok)
		r = &smtp_r_bdat_syntax;
	else if (!s->_helo_done)
		r = &smtp_r_need_helo;
	else if (!s->_in_tx)
		r = &smtp_r_need_mail;
	else if (s->_tx.nrcpt == 0)
		r = &smtp_r_no_rcpt;
	else if (s->_oversize || s->_tx.body_bytes + n > s->_max_size)
		r = &smtp_r_too_big;
	if (r == NULL && !s->_tx.bdat) {
		s->_tx.bdat = true;
		smtp_data_init_raw(&s->_data);
	}
	if (r == &smtp_r_too_big)
		s->_oversize = true;
	s->_bdat_left = s->_bdat_size = n;
	s->_bdat_last = last;
	s->_bdat_drop = r != NULL;
	s->_bdat_reply = r;
	smtp_server_goto(s, SMTP_SERVER_BDAT);
	if (n == 0) /* BDAT 0 LAST: nothing to read, finish now */
		return smtp_server_bdat_end(s, io);
	return SMTP_EV_NONE;
}

/* smtp_server_bdat_end - a chunk has been consumed: reply or finish */
static enum smtp_server_ev smtp_server_bdat_end(struct smtp_server *s, struct smtp_server_io *io)
{
	enum smtp_server_ev ev = io->nbody ? SMTP_EV_BODY : SMTP_EV_NONE;

	smtp_server_goto(s, SMTP_SERVER_CMD);
	if (s->_bdat_reply == &smtp_r_too_big)
		return smtp_server_end_message(s, io);
	if (s->_bdat_reply) {
		enum smtp_server_ev e2 = smtp_server_answer(s, io, s->_bdat_reply);
		return e2 != SMTP_EV_NONE ? e2 : ev;
	}
	if (s->_bdat_last)
		return smtp_server_end_message(s, io);
	char text[48];
	struct buf b;
	buf_init(&b, text, sizeof text);
	if (buf_put_u64(&b, s->_bdat_size) != RM_OK || buf_put_str(&b, " octets received"))
		b.len = 0;
	smtp_server_say(io, 250, "2.0.0", buf_slice(&b), false);
	return ev;
}

/* smtp_server_bdat_step - take chunk bytes; raw, one slice per feed */
static enum smtp_server_ev smtp_server_bdat_step(struct smtp_server *s, const char *in, size_t len,
						 size_t *off, struct smtp_server_io *io)
{
	size_t k = len - *off;

	if (k > s->_bdat_left)
		k = (size_t)s->_bdat_left;
	if (k && !s->_bdat_drop) {
		struct smtp_data_out out = { io->body, io->nbody, io->body_cap };
		size_t used = smtp_data_scan(&s->_data, in + *off, k, &out);
		if (used == 0)
			return io->nbody ? SMTP_EV_BODY : SMTP_EV_FLUSH; /* no room for a slice */
		k = used;
		io->nbody = out.n;
		s->_tx.body_bytes += k;
	}
	*off += k;
	s->_bdat_left -= k;
	if (s->_bdat_left)
		return io->nbody ? SMTP_EV_BODY : SMTP_EV_NONE;
	return smtp_server_bdat_end(s, io);
}

/* smtp_server_data_step - scan DATA body bytes up to the end of data */
static enum smtp_server_ev smtp_server_data_step(struct smtp_server *s, const char *in, size_t len,
						 size_t *off, struct smtp_server_io *io)
{
	struct smtp_data_out out = { io->body, io->nbody, io->body_cap };
	size_t used = smtp_data_scan(&s->_data, in + *off, len - *off, &out);

	*off += used;
	s->_tx.body_bytes = smtp_data_bytes(&s->_data);
	if (s->_tx.body_bytes > s->_max_size)
		s->_oversize = true; /* RFC 1870 §6.3: read to the end, then 552 */
	if (s->_oversize)
		out.n = 0;
	io->nbody = out.n;
	if (smtp_data_done(&s->_data))
		return smtp_server_end_message(s, io);
	if (out.n == out.cap || (used == 0 && out.n == 0))
		return out.n ? SMTP_EV_BODY : SMTP_EV_FLUSH;
	return SMTP_EV_NONE;
}

/* --- the small commands -------------------------------------------------- */

/* smtp_server_cmd_rset - RSET (RFC 5321 §4.1.1.5) */
static enum smtp_server_ev smtp_server_cmd_rset(struct smtp_server *s, const struct smtp_cmd *c,
						struct smtp_server_io *io)
{
	(void)c;
	smtp_server_sayc(io, 250, "2.0.0", "Ok");
	return smtp_server_reset_abort(s);
}

/* smtp_server_cmd_noop - NOOP (RFC 5321 §4.1.1.9); an argument is allowed */
static enum smtp_server_ev smtp_server_cmd_noop(struct smtp_server *s, const struct smtp_cmd *c,
						struct smtp_server_io *io)
{
	(void)s;
	(void)c;
	smtp_server_sayc(io, 250, "2.0.0", "Ok");
	return SMTP_EV_NONE;
}

/* smtp_server_cmd_quit - QUIT (RFC 5321 §4.1.1.10) */
static enum smtp_server_ev smtp_server_cmd_quit(struct smtp_server *s, const struct smtp_cmd *c,
						struct smtp_server_io *io)
{
	(void)c;
	smtp_server_sayc(io, 221, "2.0.0", "Bye");
	return smtp_server_close(s);
}

/* smtp_server_cmd_vrfy - VRFY: never confirms an address (RFC 5321 §3.5.3) */
static enum smtp_server_ev smtp_server_cmd_vrfy(struct smtp_server *s, const struct smtp_cmd *c,
						struct smtp_server_io *io)
{
	if (c->arg.len == 0)
		return smtp_server_error(s, io, 501, "5.5.4", "Syntax: VRFY address");
	smtp_server_sayc(io, 252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery");
	return SMTP_EV_NONE;
}

/* smtp_server_cmd_expn - EXPN: mailing lists are not disclosed */
static enum smtp_server_ev smtp_server_cmd_expn(struct smtp_server *s, const struct smtp_cmd *c,
						struct smtp_server_io *io)
{
	(void)c;
	return smtp_server_error(s, io, 502, "5.5.1", "Error: EXPN command is disabled");
}

/* smtp_server_cmd_help - HELP */
static enum smtp_server_ev smtp_server_cmd_help(struct smtp_server *s, const struct smtp_cmd *c,
						struct smtp_server_io *io)
{
	(void)s;
	(void)c;
	smtp_server_sayc(io, 214, "2.0.0",
			 "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH");
	return SMTP_EV_NONE;
}

/* smtp_server_cmd_starttls - STARTTLS (RFC 3207) */
static enum smtp_server_ev smtp_server_cmd_starttls(struct smtp_server *s, const struct smtp_cmd *c,
						    struct smtp_server_io *io)
{
	(void)c;
	if (s->_tls)
		return smtp_server_error(s, io, 503, "5.5.1", "Error: TLS already active");
	if (!s->_cfg->tls_available)
		return smtp_server_error(s, io, 502, "5.5.1", "Error: command not implemented");
	smtp_server_sayc(io, 220, "2.0.0", "Ready to start TLS");
	s->_line_len = 0;
	s->_discard = false;
	smtp_server_goto(s, SMTP_SERVER_TLS);
	return SMTP_EV_STARTTLS;
}

/* --- AUTH (RFC 4954, RFC 4616 PLAIN, the LOGIN draft) -------------------- */

/* smtp_server_b64_value - the 6-bit value of a base64 letter, or -1 */
static int smtp_server_b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* smtp_server_b64_decode - strict base64 (RFC 4648 §4) into out, which may
 * be in itself (decoding never overtakes reading); false on bad input */
static bool smtp_server_b64_decode(struct slice in, char *out, size_t *outlen)
{
	size_t o = 0;

	if (in.len % 4)
		return false;
	for (size_t i = 0; i < in.len; i += 4) {
		int v[4];
		size_t pad = 0;
		for (size_t j = 0; j < 4; j++) {
			unsigned char ch = (unsigned char)in.ptr[i + j];
			if (ch == '=' && i + 4 == in.len && j >= 2) {
				v[j] = 0;
				pad++;
				continue;
			}
			if (pad)
				return false; /* data after '=' */
			v[j] = smtp_server_b64_value(ch);
			if (v[j] < 0)
				return false;
		}
		unsigned long w = (unsigned long)v[0] << 18 | (unsigned long)v[1] << 12 |
				  (unsigned long)v[2] << 6 | (unsigned long)v[3];
		out[o++] = (char)(w >> 16);
		if (pad < 2)
			out[o++] = (char)(w >> 8 & 0xff);
		if (pad < 1)
			out[o++] = (char)(w & 0xff);
	}
	*outlen = o;
	return true;
}

/* smtp_server_auth_end - AUTH is over without a check: reply, forget it */
static enum smtp_server_ev smtp_server_auth_fail(struct smtp_server *s, struct smtp_server_io *io,
						 unsigned code, const char *enh, const char *text)
{
	smtp_server_auth_wipe(s);
	smtp_server_goto(s, SMTP_SERVER_CMD);
	return smtp_server_error(s, io, code, enh, text);
}

/* smtp_server_auth_check - credentials complete: ask the host */
static enum smtp_server_ev smtp_server_auth_check(struct smtp_server *s, struct smtp_server_io *io)
{
	if (s->_auth_user.len == 0 || s->_auth_user.len > SMTP_SERVER_USER_MAX)
		return smtp_server_auth_fail(s, io, 535, "5.7.8", "Error: authentication failed");
	smtp_server_goto(s, SMTP_SERVER_AUTH_CHECK);
	return SMTP_EV_AUTH;
}

/* smtp_server_auth_data - one base64 response (initial or to a 334) */
static enum smtp_server_ev smtp_server_auth_data(struct smtp_server *s, struct slice resp,
						 struct smtp_server_io *io)
{
	char *user_area = s->_auth_buf + SMTP_AUTH_LINE_MAX;
	size_t n = 0;

	if (slice_eq(resp, SLICE_LIT("*")))
		return smtp_server_auth_fail(s, io, 501, "5.0.0", "Authentication cancelled");
	if (slice_eq(resp, SLICE_LIT("=")))
		resp.len = 0; /* an empty initial response, RFC 4954 §4 */
	if (s->_auth_mech == SMTP_AUTH_PLAIN || s->_auth_step == 1) {
		if (!smtp_server_b64_decode(resp, user_area, &n))
			return smtp_server_auth_fail(s, io, 501, "5.5.2", "Error: invalid base64 data");
	} else {
		if (!smtp_server_b64_decode(resp, s->_auth_buf, &n))
			return smtp_server_auth_fail(s, io, 501, "5.5.2", "Error: invalid base64 data");
	}
	if (s->_auth_mech == SMTP_AUTH_PLAIN) {
		/* authzid NUL authcid NUL passwd (RFC 4616 §2) */
		const char *z1 = memchr(user_area, '\0', n);
		const char *z2 = z1 ? memchr(z1 + 1, '\0', n - (size_t)(z1 + 1 - user_area)) : NULL;
		if (z2 == NULL)
			return smtp_server_auth_fail(s, io, 501, "5.5.2", "Error: invalid PLAIN data");
		struct slice authz = slice_make(user_area, (size_t)(z1 - user_area));
		s->_auth_user = slice_make(z1 + 1, (size_t)(z2 - z1 - 1));
		s->_auth_pass = slice_make(z2 + 1, n - (size_t)(z2 + 1 - user_area));
		if (authz.len && !slice_eq(authz, s->_auth_user)) /* no proxy authorisation */
			return smtp_server_auth_fail(s, io, 535, "5.7.8", "Error: authentication failed");
		return smtp_server_auth_check(s, io);
	}
	if (s->_auth_step == 1) {
		s->_auth_user = slice_make(user_area, n);
		s->_auth_step = 2;
		smtp_server_sayc(io, 334, NULL, "UGFzc3dvcmQ6");
		smtp_server_goto(s, SMTP_SERVER_AUTH_RESP);
		return SMTP_EV_NONE;
	}
	s->_auth_pass = slice_make(s->_auth_buf, n);
	return smtp_server_auth_check(s, io);
}

/* smtp_server_cmd_auth - AUTH mechanism [initial-response] */
static enum smtp_server_ev smtp_server_cmd_auth(struct smtp_server *s, const struct smtp_cmd *c,
						struct smtp_server_io *io)
{
	struct slice a = c->arg, mech, ir = SLICE_NULL;
	const char *sp = memchr(a.ptr ? a.ptr : "", ' ', a.len);

	if (!s->_cfg->auth_available)
		return smtp_server_error(s, io, 503, "5.5.1", "Error: authentication not enabled");
	if (s->_authed.len)
		return smtp_server_error(s, io, 503, "5.5.1", "Error: already authenticated");
	if (s->_in_tx)
		return smtp_server_error(s, io, 503, "5.5.1", "Error: MAIL transaction in progress");
	mech = sp ? slice_make(a.ptr, (size_t)(sp - a.ptr)) : a;
	if (sp)
		ir = slice_trim(slice_make(sp + 1, a.len - (size_t)(sp + 1 - a.ptr)));
	if (mech.len == 0)
		return smtp_server_error(s, io, 501, "5.5.4", "Syntax: AUTH mechanism");
	if (slice_eq_nocase(mech, SLICE_LIT("PLAIN")))
		s->_auth_mech = SMTP_AUTH_PLAIN;
	else if (slice_eq_nocase(mech, SLICE_LIT("LOGIN")))
		s->_auth_mech = SMTP_AUTH_LOGIN;
	else
		return smtp_server_error(s, io, 504, "5.5.4", "Unsupported authentication mechanism");
	s->_auth_buf = arena_alloc(&s->_sa, 2 * (size_t)SMTP_AUTH_LINE_MAX);
	if (s->_auth_buf == NULL) {
		s->_auth_mech = SMTP_AUTH_NONE;
		smtp_server_sayc(io, 454, "4.7.0", "Temporary authentication failure");
		return SMTP_EV_NONE;
	}
	s->_auth_step = 1;
	s->_line_len = 0;
	if (ir.len)
		return smtp_server_auth_data(s, ir, io);
	smtp_server_sayc(io, 334, NULL, s->_auth_mech == SMTP_AUTH_PLAIN ? "" : "VXNlcm5hbWU6");
	smtp_server_goto(s, SMTP_SERVER_AUTH_RESP);
	return SMTP_EV_NONE;
}

/* smtp_server_auth_user - the user name of a pending AUTH */
struct slice smtp_server_auth_user(const struct smtp_server *s)
{
	return s->_state == SMTP_SERVER_AUTH_CHECK ? s->_auth_user : SLICE_NULL;
}

/* smtp_server_auth_pass - the password of a pending AUTH */
struct slice smtp_server_auth_pass(const struct smtp_server *s)
{
	return s->_state == SMTP_SERVER_AUTH_CHECK ? s->_auth_pass : SLICE_NULL;
}

/* smtp_server_auth_done - the host's verdict on the credentials */
void smtp_server_auth_done(struct smtp_server *s, bool ok, struct smtp_server_io *io)
{
	char user[SMTP_SERVER_USER_MAX];
	size_t n = s->_auth_user.len;

	if (s->_state != SMTP_SERVER_AUTH_CHECK)
		return;
	if (!ok) {
		(void)smtp_server_auth_fail(s, io, 535, "5.7.8", "Error: authentication failed");
		return;
	}
	memcpy(user, s->_auth_user.ptr, n); /* n <= USER_MAX: auth_check */
	smtp_server_auth_wipe(s);
	s->_authed = arena_dup(&s->_sa, slice_make(user, n));
	memset(user, 0, sizeof user);
	smtp_server_goto(s, SMTP_SERVER_CMD);
	if (s->_authed.ptr == NULL) {
		smtp_server_sayc(io, 454, "4.7.0", "Temporary authentication failure");
		return;
	}
	smtp_server_sayc(io, 235, "2.7.0", "Authentication successful");
}

/* --- the command table and the line reader ------------------------------- */

static const struct smtp_server_cmd smtp_server_cmds[SMTP_CMD__COUNT] = {
	[SMTP_CMD_HELO] = { smtp_server_cmd_helo, SMTP_F_TX | SMTP_F_LAST, "Syntax: HELO hostname" },
	[SMTP_CMD_EHLO] = { smtp_server_cmd_helo, SMTP_F_TX | SMTP_F_LAST, "Syntax: EHLO hostname" },
	[SMTP_CMD_MAIL] = { smtp_server_cmd_mail, SMTP_F_HELO | SMTP_F_TX, "Syntax: MAIL FROM:<address>" },
	[SMTP_CMD_RCPT] = { smtp_server_cmd_rcpt, SMTP_F_HELO | SMTP_F_TX, "Syntax: RCPT TO:<address>" },
	[SMTP_CMD_DATA] = { smtp_server_cmd_data,
			    SMTP_F_HELO | SMTP_F_TX | SMTP_F_LAST | SMTP_F_NOARG, "Syntax: DATA" },
	[SMTP_CMD_BDAT] = { smtp_server_cmd_bdat, SMTP_F_TX | SMTP_F_SELF, "Syntax: BDAT size [LAST]" },
	[SMTP_CMD_RSET] = { smtp_server_cmd_rset, SMTP_F_TX | SMTP_F_NOARG, "Syntax: RSET" },
	[SMTP_CMD_NOOP] = { smtp_server_cmd_noop, SMTP_F_TX | SMTP_F_LAST, "Syntax: NOOP" },
	[SMTP_CMD_QUIT] = { smtp_server_cmd_quit, SMTP_F_TX | SMTP_F_LAST | SMTP_F_NOARG, "Syntax: QUIT" },
	[SMTP_CMD_VRFY] = { smtp_server_cmd_vrfy, SMTP_F_TX | SMTP_F_LAST, "Syntax: VRFY address" },
	[SMTP_CMD_EXPN] = { smtp_server_cmd_expn, SMTP_F_TX | SMTP_F_LAST, "Syntax: EXPN list" },
	[SMTP_CMD_HELP] = { smtp_server_cmd_help, SMTP_F_TX, "Syntax: HELP" },
	[SMTP_CMD_STARTTLS] = { smtp_server_cmd_starttls, SMTP_F_LAST | SMTP_F_NOARG, "Syntax: STARTTLS" },
	[SMTP_CMD_AUTH] = { smtp_server_cmd_auth, SMTP_F_HELO | SMTP_F_LAST | SMTP_F_TLS,
			    "Syntax: AUTH mechanism" },
};

/* smtp_server_command - act on one complete command line (no line end) */
static enum smtp_server_ev smtp_server_command(struct smtp_server *s, struct slice line,
					       struct smtp_server_io *io)
{
	struct smtp_cmd c;
	const struct smtp_server_cmd *t;

	smtp_cmd_parse(line, &c);
	if (c.id == SMTP_CMD_HTTP) {
		smtp_server_sayc(io, 500, "5.5.1", "Error: HTTP request on the SMTP port");
		return smtp_server_close(s);
	}
	if (c.id <= SMTP_CMD_UNKNOWN || c.id >= SMTP_CMD__COUNT ||
	    smtp_server_cmds[c.id].fn == NULL)
		return smtp_server_error(s, io, 500, "5.5.1", "Error: command not recognized");
	if (memchr(line.ptr, '\0', line.len))
		return smtp_server_error(s, io, 500, "5.5.2", "Error: NUL in command line");
	t = &smtp_server_cmds[c.id];
	if (t->flags & SMTP_F_SELF)
		return t->fn(s, &c, io);
	if ((t->flags & SMTP_F_TLS) && !s->_tls && s->_cfg->auth_available)
		return smtp_server_error(s, io, 530, "5.7.0", "Must issue a STARTTLS command first");
	if ((t->flags & SMTP_F_HELO) && !s->_helo_done)
		return smtp_server_answer(s, io, &smtp_r_need_helo);
	if (!(t->flags & SMTP_F_TX) && s->_in_tx)
		return smtp_server_error(s, io, 503, "5.5.1", "Error: MAIL transaction in progress");
	if (c.syntax_error || ((t->flags & SMTP_F_NOARG) && c.arg.len) ||
	    smtp_server_has_ctl(c.arg))
		return smtp_server_error(s, io, 501, "5.5.4", t->syntax);
	return t->fn(s, &c, io);
}

/* smtp_server_line_step - gather one line (CRLF or bare LF) and act on it */
static enum smtp_server_ev smtp_server_line_step(struct smtp_server *s, const char *in, size_t len,
						 size_t *off, struct smtp_server_io *io)
{
	bool auth = s->_state == SMTP_SERVER_AUTH_RESP;
	size_t limit = auth ? SMTP_AUTH_LINE_MAX : SMTP_CMD_LINE_MAX;
	char *lb = auth ? s->_auth_buf : s->_line;
	const char *p = in + *off;
	size_t n = len - *off;
	const char *lf = memchr(p, '\n', n);
	size_t k = lf ? (size_t)(lf - p) : n;
	struct slice line;

	if (lf == NULL) {
		if (!s->_discard && k > limit - 1 - s->_line_len)
			s->_discard = true; /* over the limit: drop it up to its LF */
		if (!s->_discard) {
			memcpy(lb + s->_line_len, p, k);
			s->_line_len += k;
		}
		*off = len;
		return SMTP_EV_NONE;
	}
	*off += k + 1;
	if (s->_discard || k > limit - 1 - s->_line_len) {
		s->_discard = false;
		s->_line_len = 0;
		if (auth)
			return smtp_server_auth_fail(s, io, 500, "5.5.2", "Error: line too long");
		return smtp_server_error(s, io, 500, "5.5.2", "Error: line too long");
	}
	if (s->_line_len == 0) {
		line = slice_make(p, k);
	} else {
		memcpy(lb + s->_line_len, p, k);
		line = slice_make(lb, s->_line_len + k);
		s->_line_len = 0;
	}
	if (line.len && line.ptr[line.len - 1] == '\r')
		line.len--;
	if (auth)
		return smtp_server_auth_data(s, slice_trim(line), io);
	return smtp_server_command(s, line, io);
}

/* smtp_server_feed - consume in[0..len) as far as the next event */
enum smtp_server_ev smtp_server_feed(struct smtp_server *s, const char *in, size_t len,
				     size_t *consumed, struct smtp_server_io *io)
{
	enum smtp_server_ev ev = SMTP_EV_NONE;
	size_t off = 0;

	io->nbody = 0;
	switch (s->_state) {
	case SMTP_SERVER_CLOSED:
		*consumed = len;
		return SMTP_EV_CLOSE;
	case SMTP_SERVER_TLS:
		*consumed = len; /* plaintext after STARTTLS (CVE-2011-0411) */
		return SMTP_EV_NONE;
	case SMTP_SERVER_COMMIT:
	case SMTP_SERVER_AUTH_CHECK:
		*consumed = 0;
		return SMTP_EV_NONE;
	default:
		break;
	}
	while (off < len && ev == SMTP_EV_NONE) {
		if (io->replies->len && buf_room(io->replies) < SMTP_SERVER_REPLY_ROOM) {
			ev = SMTP_EV_FLUSH;
			break;
		}
		switch (s->_state) {
		case SMTP_SERVER_CMD:
		case SMTP_SERVER_AUTH_RESP:
			ev = smtp_server_line_step(s, in, len, &off, io);
			break;
		case SMTP_SERVER_DATA:
			ev = smtp_server_data_step(s, in, len, &off, io);
			break;
		case SMTP_SERVER_BDAT:
			ev = smtp_server_bdat_step(s, in, len, &off, io);
			break;
		default:
			*consumed = off;
			return s->_state == SMTP_SERVER_CLOSED ? SMTP_EV_CLOSE : SMTP_EV_NONE;
		}
	}
	if (ev == SMTP_EV_NONE && io->nbody)
		ev = SMTP_EV_BODY;
	if (s->_state == SMTP_SERVER_TLS)
		off = len;
	*consumed = off;
	return ev;
}

/* smtp_server_committed - the COMMIT's outcome */
void smtp_server_committed(struct smtp_server *s, int status, struct slice queue_id,
			   struct smtp_server_io *io)
{
	char text[SMTP_REPLY_LINE_MAX - 32];
	struct buf b;

	if (s->_state != SMTP_SERVER_COMMIT)
		return;
	smtp_server_goto(s, SMTP_SERVER_CMD);
	smtp_server_tx_reset(s);
	if (status == RM_ELIMIT) {
		smtp_server_answer(s, io, &smtp_r_storage);
		return;
	}
	if (status != RM_OK) {
		smtp_server_sayc(io, 451, "4.3.0", "Error: queue file write error");
		return;
	}
	buf_init(&b, text, sizeof text);
	if (buf_put_str(&b, "Ok: queued as ") != RM_OK ||
	    buf_put_slice(&b, slice_sub(queue_id, 0, 128)) != RM_OK)
		b.len = 0;
	smtp_server_say(io, 250, "2.0.0", buf_slice(&b), false);
}

/* smtp_server_tls_started - the handshake finished (ok) or failed */
void smtp_server_tls_started(struct smtp_server *s, bool ok, struct smtp_server_io *io)
{
	(void)io;
	if (s->_state != SMTP_SERVER_TLS)
		return;
	if (!ok) {
		smtp_server_goto(s, SMTP_SERVER_CLOSED);
		return;
	}
	/* RFC 3207 §4.2: forget everything learnt before, EHLO again */
	s->_tls = true;
	s->_helo_done = false;
	s->_esmtp = false;
	s->_helo_len = 0;
	s->_line_len = 0;
	s->_discard = false;
	smtp_server_tx_reset(s);
	smtp_server_goto(s, SMTP_SERVER_CMD);
}

/* smtp_server_timeout - the host's idle timer fired: 421 4.4.2, then CLOSE */
void smtp_server_timeout(struct smtp_server *s, struct smtp_server_io *io)
{
	if (s->_state == SMTP_SERVER_CLOSED)
		return;
	smtp_server_host_reply(s, io, 421, "4.4.2", "Error: timeout exceeded");
	smtp_server_goto(s, SMTP_SERVER_CLOSED);
}

/* smtp_server_in_body - inside DATA or a BDAT chunk */
bool smtp_server_in_body(const struct smtp_server *s)
{
	return s->_state == SMTP_SERVER_DATA || s->_state == SMTP_SERVER_BDAT;
}

/* smtp_server_tx - the current transaction's envelope, or NULL */
const struct smtp_tx *smtp_server_tx(const struct smtp_server *s)
{
	return s->_in_tx ? &s->_tx : NULL;
}

/* smtp_server_helo - the HELO/EHLO name given, empty before one */
struct slice smtp_server_helo(const struct smtp_server *s)
{
	return s->_helo_done ? slice_make(s->_helo, s->_helo_len) : SLICE_NULL;
}

/* smtp_server_esmtp - EHLO (not HELO) was used */
bool smtp_server_esmtp(const struct smtp_server *s)
{
	return s->_esmtp;
}

/* smtp_server_tls - the session is encrypted */
bool smtp_server_tls(const struct smtp_server *s)
{
	return s->_tls;
}

/* smtp_server_authed - the authenticated user, or an empty slice */
struct slice smtp_server_authed(const struct smtp_server *s)
{
	return s->_authed;
}

/* smtp_server_errors - protocol errors counted so far in the session */
unsigned smtp_server_errors(const struct smtp_server *s)
{
	return s->_errors;
}

/* --- the Received: header ------------------------------------------------ */

/* smtp_received_text - append s with control bytes written as '?' */
static int smtp_received_text(struct buf *b, struct slice s)
{
	if (s.len > buf_room(b))
		return RM_ENOMEM;
	for (size_t i = 0; i < s.len; i++) {
		unsigned char c = (unsigned char)s.ptr[i];
		b->ptr[b->len++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	return RM_OK;
}

/* smtp_received_proto - the "with" keyword (RFC 3848 §2, RFC 6531 §4.3) */
static const char *smtp_received_proto(const struct smtp_received *r)
{
	static const char *const esmtp[2][2][2] = {
		/* [utf8][tls][authed] */
		{ { "ESMTP", "ESMTPA" }, { "ESMTPS", "ESMTPSA" } },
		{ { "UTF8SMTP", "UTF8SMTPA" }, { "UTF8SMTPS", "UTF8SMTPSA" } },
	};

	if (!r->esmtp)
		return "SMTP";
	return esmtp[r->utf8][r->tls][r->authed];
}

/* smtp_received_put - append the whole Received: field, all or nothing */
int smtp_received_put(struct buf *b, const struct smtp_received *r)
{
	size_t mark = b->len;
	int rc = buf_put_str(b, "Received: from ");

	if (!rc)
		rc = smtp_received_text(b, r->helo.len ? r->helo : SLICE_LIT("unknown"));
	if (!rc && r->client.len)
		rc = buf_put(b, " (", 2) || smtp_received_text(b, r->client) || buf_put(b, ")", 1);
	if (!rc)
		rc = buf_put_str(b, "\r\n\tby ") || smtp_received_text(b, r->hostname) ||
		     buf_put_str(b, " (ringmta) with ") || buf_put_str(b, smtp_received_proto(r)) ||
		     buf_put_str(b, " id ") || smtp_received_text(b, r->queue_id);
	if (!rc && r->rcpt.len)
		rc = buf_put_str(b, "\r\n\tfor <") || smtp_received_text(b, r->rcpt) ||
		     buf_put(b, ">", 1);
	if (!rc)
		rc = buf_put(b, ";", 1) || buf_put_str(b, r->rcpt.len ? " " : "\r\n\t") ||
		     smtp_received_text(b, r->date) || buf_put(b, "\r\n", 2);
	if (rc) {
		b->len = mark;
		return RM_ENOMEM;
	}
	return RM_OK;
}

/* smtp_server_received - smtp_received_put with what the session knows */
int smtp_server_received(const struct smtp_server *s, struct buf *b, struct slice client,
			 struct slice queue_id, struct slice date)
{
	struct smtp_received r = {
		.helo = smtp_server_helo(s),
		.client = client,
		.hostname = s->_cfg->hostname,
		.queue_id = queue_id,
		.date = date,
		.esmtp = s->_esmtp,
		.tls = s->_tls,
		.authed = s->_authed.len > 0,
	};

	if (s->_in_tx) {
		r.utf8 = s->_tx.mail.smtputf8;
		if (s->_tx.nrcpt == 1)
			r.rcpt = s->_tx.rcpt[0].path.mailbox;
	}
	return smtp_received_put(b, &r);
}
