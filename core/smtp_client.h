/* smtp_client.h - the outbound SMTP session engine (RFC 5321, 2920
 * PIPELINING, 3030 CHUNKING, 1870 SIZE, 6152 8BITMIME, 6531 SMTPUTF8, 3461
 * DSN, 3207 STARTTLS, 2034/3463 enhanced codes).
 *
 * Pure (DESIGN.md principle 1), the mirror of smtp_server.h: the host feeds
 * the server's bytes, split anywhere, and gets back commands (appended to a
 * buffer the host owns and sends at its loop boundary) and events it must
 * act on. No fd, no clock, no syscall, no allocation: all state is in
 * struct smtp_client, which the host places where it likes (ringmta-blast
 * keeps thousands in one array).
 *
 * The host's loop, per connection:
 *   smtp_client_init, connect; then on bytes (or with len 0 after any call
 *   below, to let the engine write what that call decided):
 *   ev = smtp_client_feed(c, in, len, &used, out)
 *     SMTP_CL_NONE      all input consumed: send *out, wait for bytes with
 *                       the timeout of smtp_client_phase(c)
 *     SMTP_CL_FLUSH     *out is full: send it, then feed in[used..len)
 *     SMTP_CL_READY     idle between messages: smtp_client_send a message
 *                       or smtp_client_quit
 *     SMTP_CL_RCPT      smtp_client_reply(c) answers RCPT number
 *                       smtp_client_rcpt_index(c); a 4xx/5xx is that
 *                       recipient's final reply, a 2xx is not final
 *     SMTP_CL_RESULT    smtp_client_reply(c) is the final reply of every
 *                       recipient of the message that has none yet (MAIL or
 *                       DATA refused, or the reply to the end of data)
 *     SMTP_CL_BODY      send *out, then the body: if smtp_client_bdat_mode
 *                       then chunks, each after smtp_client_bdat put its
 *                       "BDAT n [LAST]" in *out; else the dot-stuffed body
 *                       with its terminator (smtp_stuff_*), then call
 *                       smtp_client_body_sent (it may be called before the
 *                       body is on the wire, as long as what the engine
 *                       writes next goes out after the terminator)
 *     SMTP_CL_STARTTLS  the server said 220 to STARTTLS: drop every byte
 *                       after in[used] (a plaintext injection: RFC 3207 §5,
 *                       the engine treats any byte fed before the handshake
 *                       as a protocol error), do the handshake, then call
 *                       smtp_client_tls_started
 *     SMTP_CL_CLOSE     send *out (maybe a QUIT), then close; the reason is
 *                       smtp_client_fail(c) (SMTP_CLIENT_FAIL_NONE after a
 *                       QUIT), with the reply behind it at smtp_client_reply
 *                       when there was one. Recipients with no final reply
 *                       yet are deferred by the host.
 * A reply returned by smtp_client_reply stays valid until the next feed.
 * Every recipient gets exactly one final reply per attempt, through RCPT or
 * RESULT events, unless the connection closes first.
 *
 * With cfg.pipeline_next and a server offering PIPELINING, a DATA message's
 * transaction overlaps the next one's: smtp_client_body_sent returns the
 * engine to READY at once, so the next message's MAIL, RCPTs and DATA (or
 * QUIT) are written behind the end of data, in the same write if the host
 * likes (RFC 2920 §3.1: the content may be the first "command" of a group).
 * The first message's final reply then comes as a RESULT before any event of
 * the next. Two messages may be open; an RCPT or RESULT event always belongs
 * to the oldest message whose transaction is not over, and a transaction is
 * over when smtp_client_messages counts it (the host compares the count
 * after each feed). BDAT messages and the lone "." after an unwanted 354 are
 * never overlapped.
 *
 * Design choices:
 *  - With PIPELINING, [RSET] MAIL, every RCPT and DATA go out in one write
 *    (RFC 2920 §3.1); replies are matched in order. Without it, one command
 *    at a time. MAIL refused: the replies to the pipelined RCPTs and DATA
 *    (503s) are swallowed and the MAIL reply is the RESULT. DATA answered 354
 *    although no recipient was accepted: the engine sends a lone "." and
 *    swallows its reply (RFC 2920 §3.1).
 *  - With PIPELINING and CHUNKING, [RSET] MAIL and every RCPT are written
 *    and BODY comes at once, before any reply is read: the host puts
 *    "BDAT n LAST" and the body behind them in the same send (RFC 2920
 *    §3.1 and RFC 3030 §4.1 allow BDAT in a pipelined group), so a message
 *    costs one round trip. Replies are matched in order: MAIL, each RCPT
 *    (RCPT events, possibly after BODY), then each chunk. When MAIL or
 *    every recipient was refused, the chunks' replies (503/554, RFC 3030
 *    §2) are read past with no event, the per-recipient replies already
 *    being final; a message refused for every recipient thus costs its
 *    body bytes, the price of saving a round trip on every other one.
 *    Later calls to smtp_client_bdat then say stop (RM_EPROTO). Without
 *    PIPELINING, BDAT goes out after the RCPT replies are read. Several
 *    chunks may follow one another without waiting when PIPELINING is
 *    offered; after a refused chunk smtp_client_bdat says stop (RFC 3030
 *    §4.2).
 *  - RSET is needed after a transaction that MAIL opened and no end of data
 *    closed; it is sent lazily, at the head of the next message's commands
 *    (pipelined with them when PIPELINING is offered), and not before QUIT.
 *  - MAIL parameters are sent only when the server offers the extension:
 *    SIZE=, BODY= (8BITMIME), SMTPUTF8, RET= and ENVID= (DSN); RCPT NOTIFY=
 *    and ORCPT= only with DSN. Whether a message may go to a server lacking
 *    an extension (8-bit body, UTF-8 address, size over the limit) is the
 *    host's decision, from smtp_client_caps.
 *  - 421 ends the session anywhere (no QUIT); a reply that does not parse,
 *    a 3xx other than 354 to DATA, or a reply nobody asked for is a
 *    protocol error (QUIT is written when the session is still in step).
 *  - EHLO answered 5xx falls back to HELO (RFC 5321 §3.2); 4xx fails.
 */
#ifndef RINGMTA_CORE_SMTP_CLIENT_H
#define RINGMTA_CORE_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/slice.h"
#include "core/smtp_addr.h"
#include "core/smtp_reply.h"

/* What the server offered in its EHLO reply (all false after HELO). */
#define SMTP_AUTH_PLAIN 0x1u
#define SMTP_AUTH_LOGIN 0x2u
#define SMTP_AUTH_CRAM_MD5 0x4u
#define SMTP_AUTH_XOAUTH2 0x8u
#define SMTP_AUTH_OTHER 0x80u

struct smtp_client_caps {
	bool esmtp;               /* EHLO was accepted */
	bool pipelining;
	bool size;
	uint64_t size_max;        /* SIZE's argument; 0 when none was given */
	bool eightbitmime;
	bool smtputf8;
	bool chunking;
	bool dsn;
	bool starttls;
	bool enhancedstatuscodes;
	unsigned auth;            /* SMTP_AUTH_* bits */
};

enum smtp_client_tls {
	SMTP_CLIENT_TLS_NONE = 0,      /* never STARTTLS */
	SMTP_CLIENT_TLS_OPPORTUNISTIC, /* when offered; go on in plaintext if not */
	SMTP_CLIENT_TLS_REQUIRED,      /* fail the connection without TLS */
};

struct smtp_client_cfg {
	struct slice helo_name;   /* EHLO/HELO argument; must outlive the session */
	enum smtp_client_tls tls;
	bool no_pipelining;       /* one command at a time even if offered */
	bool no_chunking;         /* DATA even if CHUNKING is offered */
	bool pipeline_next;       /* with PIPELINING, READY right after a DATA
				   * body: the next message's commands may
				   * follow its end of data (RFC 2920 §3.1) */
};

/* One recipient. Slices are the host's and must stay valid until the
 * message's transaction is over (the next READY or CLOSE). */
struct smtp_client_rcpt {
	struct slice addr;        /* mailbox without the angle brackets */
	unsigned notify;          /* SMTP_NOTIFY_* bits, 0 for none */
	struct slice orcpt;       /* "rfc822;xtext" as it goes on the wire, or empty */
};

/* One message, owned by the host until the transaction is over. */
struct smtp_client_msg {
	struct slice from;        /* reverse-path mailbox; empty for <> */
	const struct smtp_client_rcpt *rcpt;
	size_t nrcpt;             /* at least 1 */
	uint64_t size;            /* body bytes, unstuffed: SIZE= and BDAT */
	enum smtp_body body;      /* BODY= */
	bool smtputf8;
	enum smtp_ret ret;        /* RET=, with DSN only */
	struct slice envid;       /* ENVID= as xtext, with DSN only; or empty */
};

/* Session states, listed once (STYLE.md practice 4). */
#define SMTP_CLIENT_STATES(X)                                                          \
	X(GREETING) /* waiting for the 220 */                                          \
	X(EHLO)     /* EHLO sent */                                                    \
	X(HELO)     /* HELO sent after EHLO got 5xx */                                 \
	X(STARTTLS) /* STARTTLS sent */                                                \
	X(TLS)      /* the host is doing the handshake */                              \
	X(READY)    /* idle between messages */                                        \
	X(TX)       /* [RSET] MAIL RCPT... [DATA] commands and replies */              \
	X(BODY)     /* the host is sending the body */                                 \
	X(DATA_END) /* body sent; waiting for the final reply (or BDAT replies) */     \
	X(QUIT)     /* QUIT sent */                                                    \
	X(CLOSED)

enum smtp_client_state {
#define SMTP_CLIENT_STATE_ENUM(s) SMTP_CLIENT_##s,
	SMTP_CLIENT_STATES(SMTP_CLIENT_STATE_ENUM)
#undef SMTP_CLIENT_STATE_ENUM
};

/* What the engine waits for, so the host can pick the timeout (RFC 5321
 * §4.5.3.2: greeting 5 min, MAIL 5, RCPT 5, DATA initiation 2, data block 3,
 * DATA termination 10). NONE: it is the host's turn. */
#define SMTP_CLIENT_PHASES(X)                                                          \
	X(NONE)                                                                        \
	X(GREETING)                                                                    \
	X(EHLO)       /* EHLO, HELO or STARTTLS reply */                               \
	X(TLS)        /* the host's handshake */                                       \
	X(RSET)                                                                        \
	X(MAIL)                                                                        \
	X(RCPT)                                                                        \
	X(DATA_INIT)  /* the reply to DATA */                                          \
	X(DATA_BLOCK) /* the host is sending body bytes; replies to BDAT chunks */     \
	X(DATA_END)   /* the reply to the end of data or to BDAT LAST */               \
	X(QUIT)

enum smtp_client_phase {
#define SMTP_CLIENT_PHASE_ENUM(s) SMTP_CLIENT_PHASE_##s,
	SMTP_CLIENT_PHASES(SMTP_CLIENT_PHASE_ENUM)
#undef SMTP_CLIENT_PHASE_ENUM
};

/* Why a session closed. */
#define SMTP_CLIENT_FAILS(X)                                                           \
	X(NONE)            /* QUIT answered: a normal end */                           \
	X(GREETING)        /* the greeting was not 220 */                              \
	X(HELO)            /* EHLO 4xx, or HELO refused */                             \
	X(TLS_UNAVAILABLE) /* TLS required, STARTTLS not offered */                    \
	X(TLS_FAILED)      /* STARTTLS refused while required, or the handshake failed */ \
	X(SHUTDOWN)        /* 421 */                                                   \
	X(PROTOCOL)        /* a bad or unexpected reply */                             \
	X(RSET)            /* RSET refused: the session is out of step */              \
	X(OUTPUT)          /* the output buffer cannot hold one command */

enum smtp_client_fail {
#define SMTP_CLIENT_FAIL_ENUM(s) SMTP_CLIENT_FAIL_##s,
	SMTP_CLIENT_FAILS(SMTP_CLIENT_FAIL_ENUM)
#undef SMTP_CLIENT_FAIL_ENUM
};

enum smtp_client_ev {
	SMTP_CL_NONE = 0,
	SMTP_CL_FLUSH,
	SMTP_CL_READY,
	SMTP_CL_RCPT,
	SMTP_CL_RESULT,
	SMTP_CL_BODY,
	SMTP_CL_STARTTLS,
	SMTP_CL_CLOSE,
};

struct smtp_client {
	struct smtp_client_cfg _cfg;
	struct smtp_client_caps _caps;
	struct smtp_reply_parser _rp;
	const struct smtp_client_msg *_msg;  /* the message in progress */
	const struct smtp_reply *_reply;     /* the reply behind the last event */
	uint8_t _state;          /* enum smtp_client_state */
	uint8_t _fail;           /* enum smtp_client_fail */
	uint8_t _send;           /* a session command still to write */
	uint8_t _ev;             /* an event to return before reading on */
	bool _tls;               /* the session is encrypted */
	bool _tls_tried;         /* STARTTLS was sent on this connection */
	bool _pipelining;        /* this transaction is pipelined */
	bool _bdat;              /* this transaction uses BDAT */
	bool _bdat_early;        /* BDAT and PIPELINING: the body follows the
				  * RCPTs without waiting for their replies */
	bool _need_rset;         /* a transaction is open on the server */
	bool _mail_ok;           /* MAIL got 2xx */
	bool _dot_only;          /* a lone "." went after an unwanted 354 */
	bool _bdat_failed;       /* a BDAT chunk was refused */
	bool _bdat_last;         /* the LAST chunk went out */
	bool _prev_end;          /* the previous message's end-of-data reply
				  * is still to come (pipeline_next) */
	size_t _wr, _rd, _end;   /* transaction commands written, replies read, total */
	size_t _accepted;        /* recipients that got 2xx */
	size_t _rcpt;            /* recipient of the last RCPT event */
	uint32_t _bdat_pending;  /* BDAT chunks sent and not answered */
	uint64_t _messages;      /* transactions finished on this connection */
};

/* smtp_client_init - a new session on a fresh connection; cfg is copied */
void smtp_client_init(struct smtp_client *c, const struct smtp_client_cfg *cfg);

/* smtp_client_feed - consume in[0..len) as far as the next event; commands
 * go to out, all or nothing each. len may be 0. */
enum smtp_client_ev smtp_client_feed(struct smtp_client *c, const char *in, size_t len,
				     size_t *consumed, struct buf *out);

/* smtp_client_send - start a message (only after READY). RM_EINVAL when not
 * ready or without recipients. */
RM_MUST_USE int smtp_client_send(struct smtp_client *c, const struct smtp_client_msg *msg);

/* smtp_client_quit - end the session politely (only after READY) */
RM_MUST_USE int smtp_client_quit(struct smtp_client *c);

/* smtp_client_tls_started - the handshake after SMTP_CL_STARTTLS finished
 * (ok: EHLO is sent again and the capabilities renewed) or failed (the
 * connection is useless: CLOSE with TLS_FAILED) */
void smtp_client_tls_started(struct smtp_client *c, bool ok);

/* smtp_client_bdat_mode - during BODY: true for BDAT chunks (no stuffing),
 * false for DATA (dot-stuffed body and terminator) */
bool smtp_client_bdat_mode(const struct smtp_client *c);

/* smtp_client_body_sent - DATA mode: the body and its terminator were sent
 * (or are queued ahead of anything the engine writes next); with
 * pipeline_next and PIPELINING the engine is READY again at once */
RM_MUST_USE int smtp_client_body_sent(struct smtp_client *c);

/* smtp_client_bdat - BDAT mode: append "BDAT n[ LAST]\r\n" to out; the host
 * sends out, then exactly n body bytes. RM_ENOMEM: out is full, send it and
 * retry. RM_AGAIN: without PIPELINING the last chunk's reply must be read
 * first. RM_EPROTO: a chunk was refused, send no more (RFC 3030 §4.2) and
 * feed on. RM_EINVAL: not in BDAT mode, or LAST already sent. */
RM_MUST_USE int smtp_client_bdat(struct smtp_client *c, struct buf *out, uint64_t n, bool last);

/* smtp_client_reply - the reply behind the last RCPT, RESULT or CLOSE
 * event, or NULL; valid until the next feed */
const struct smtp_reply *smtp_client_reply(const struct smtp_client *c);

/* smtp_client_rcpt_index - the recipient of the last RCPT event */
static inline size_t smtp_client_rcpt_index(const struct smtp_client *c)
{
	return c->_rcpt;
}

/* smtp_client_caps - what the server offered (valid after READY) */
static inline const struct smtp_client_caps *smtp_client_caps(const struct smtp_client *c)
{
	return &c->_caps;
}

/* smtp_client_tls - the session went through STARTTLS */
static inline bool smtp_client_tls(const struct smtp_client *c)
{
	return c->_tls;
}

/* smtp_client_fail - why the session closed */
static inline enum smtp_client_fail smtp_client_fail(const struct smtp_client *c)
{
	return (enum smtp_client_fail)c->_fail;
}

/* smtp_client_messages - transactions finished on this connection */
static inline uint64_t smtp_client_messages(const struct smtp_client *c)
{
	return c->_messages;
}

/* smtp_client_phase - what the engine is waiting for (the host's timeout) */
enum smtp_client_phase smtp_client_phase(const struct smtp_client *c);

/* smtp_client_phase_name, _fail_name, _state_name - constant names for logs */
const char *smtp_client_phase_name(enum smtp_client_phase p);
const char *smtp_client_fail_name(enum smtp_client_fail f);
const char *smtp_client_state_name(enum smtp_client_state s);

/* Command builders, all or nothing (RM_ENOMEM leaves out unchanged). The
 * caps decide which parameters go out. */
RM_MUST_USE int smtp_client_put_mail(struct buf *out, const struct smtp_client_msg *m,
				     const struct smtp_client_caps *caps);
RM_MUST_USE int smtp_client_put_rcpt(struct buf *out, const struct smtp_client_rcpt *r,
				     const struct smtp_client_caps *caps);
RM_MUST_USE int smtp_client_put_bdat(struct buf *out, uint64_t n, bool last);

/* Dot-stuffing by slices (RFC 5321 §4.5.2), for DATA: the body's slices go
 * through unchanged, with a slice of a constant "." before every "." that
 * starts a line (the first byte of the body, or any byte after LF), then
 * smtp_stuff_end gives the terminator: ".\r\n" when the body ends in CRLF
 * (or is empty), else "\r\n.\r\n". Output slices point into the input or
 * into constants; nothing is copied. */
struct smtp_stuff {
	char _b1, _b2;  /* the last two body bytes passed, _b1 the last */
	bool _any;      /* any body byte passed */
	bool _stuffed;  /* the "." for the line starting at the next input byte
			 * has already been emitted */
};

/* smtp_stuff_init - ready for a new body */
void smtp_stuff_init(struct smtp_stuff *st);

/* smtp_stuff_feed - emit slices for in[0..len) into out[*n..cap), *n
 * advanced; returns the bytes of in covered. Fewer than len when out is
 * full: call again with the rest and more room (two free slots always make
 * progress). */
size_t smtp_stuff_feed(struct smtp_stuff *st, const char *in, size_t len, struct slice *out,
		       size_t cap, size_t *n);

/* smtp_stuff_end - the terminator to send after the body */
struct slice smtp_stuff_end(const struct smtp_stuff *st);

#endif
