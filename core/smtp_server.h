/* smtp_server.h - the inbound SMTP session engine (RFC 5321, 2920, 3030,
 * 1870, 6152, 6531, 3461, 2034/3463, 3207, 4954).
 *
 * Pure (DESIGN.md principle 1): the host feeds bytes, split anywhere, and
 * gets back replies (appended to a buffer the host owns and flushes at its
 * loop boundary) and events it must act on. No fd, no clock, no syscall;
 * memory only from the allocator in the config, through the session's arenas.
 *
 * The host's loop, per connection:
 *   smtp_server_init, smtp_server_greet                 -> send replies
 *   on bytes: ev = smtp_server_feed(...)
 *     SMTP_EV_NONE      all consumed; send replies
 *     SMTP_EV_FLUSH     reply buffer full; send it, then feed the rest
 *     SMTP_EV_BODY      io->body[0..nbody) are message bytes, slices of the
 *                       input (or constants): append them to the spool, keep
 *                       the input alive until written, then feed the rest
 *     SMTP_EV_COMMIT    end of the message: io->body[0..nbody) are its
 *                       last bytes (often none): append them, make the
 *                       transaction durable (smtp_server_tx describes it),
 *                       then call smtp_server_committed; only then feed
 *                       the rest
 *     SMTP_EV_ABORT     the message was refused (size, loop) or the
 *                       transaction reset (RSET/EHLO between BDAT chunks)
 *                       after body bytes may have gone out: discard what
 *                       was appended for it; the reply is queued
 *     SMTP_EV_STARTTLS  "220" is queued; send it, drop every byte already
 *                       received after the command (CVE-2011-0411), do the
 *                       handshake, then call smtp_server_tls_started
 *     SMTP_EV_AUTH      check smtp_server_auth_user/pass off the loop, then
 *                       call smtp_server_auth_done
 *     SMTP_EV_CLOSE     send replies, then close the connection
 * While a COMMIT or AUTH is pending the engine consumes nothing (feed returns
 * SMTP_EV_NONE with *consumed 0); while STARTTLS is pending it consumes and
 * drops everything fed (plaintext injected after the command is never
 * interpreted). After SMTP_EV_CLOSE every feed returns SMTP_EV_CLOSE.
 *
 * Room: before each step that may queue a reply the engine wants
 * SMTP_SERVER_REPLY_ROOM free bytes in io->replies; with less (and something
 * queued) it returns SMTP_EV_FLUSH. io->body_cap must be at least 1.
 * Zero limits in the config mean the CONTRACT.md defaults.
 */
#ifndef RINGMTA_CORE_SMTP_SERVER_H
#define RINGMTA_CORE_SMTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/slice.h"
#include "core/smtp_addr.h"
#include "core/smtp_cmd.h"
#include "core/smtp_data.h"

/* A policy answer: code 0 accepts; otherwise the reply to send. */
struct smtp_verdict {
	unsigned code;
	const char *enh;
	const char *text;
};

struct smtp_server;

/* Host policy, synchronous and pure as far as the engine is concerned
 * (relay rule, recipient table, free space). NULL accepts. */
struct smtp_server_policy {
	void (*mail)(void *ctx, const struct smtp_server *s, const struct smtp_path *from,
		     const struct smtp_mail_params *p, struct smtp_verdict *v);
	void (*rcpt)(void *ctx, const struct smtp_server *s, const struct smtp_path *to,
		     const struct smtp_rcpt_params *p, struct smtp_verdict *v);
	void *ctx;
};

#define SMTP_SERVER_REPLY_ROOM 512 /* the longest reply one step queues */

struct smtp_server_cfg {
	struct slice hostname;      /* greeting, EHLO reply */
	uint64_t max_message_size;  /* SIZE; larger gets 552 5.3.4 */
	unsigned max_recipients;    /* more get 452 4.5.3 */
	unsigned max_errors;        /* then 421 4.7.0 and close */
	bool tls_available;         /* a certificate is set: offer STARTTLS */
	bool auth_available;        /* an auth file is set: AUTH under TLS */
	bool no_chunking;           /* leave CHUNKING out of the EHLO reply
				     * (BDAT is still understood) */
	struct smtp_server_policy policy;
	const struct rm_alloc *alloc;
	size_t tx_arena_limit;      /* bytes for one envelope; 0: sized from
				     * max_recipients; past it 452 4.3.1 */
};

/* One recipient of the transaction, copied into the transaction arena. */
struct smtp_rcpt {
	struct smtp_path path;          /* slices in the transaction arena */
	struct smtp_rcpt_params params; /* slices in the transaction arena */
};

/* The envelope of the current transaction. Valid from MAIL until the reply
 * to the end of the message has been produced (or RSET). */
struct smtp_tx {
	struct smtp_path from;
	struct smtp_mail_params mail;
	struct smtp_rcpt *rcpt;
	size_t nrcpt;
	uint64_t body_bytes;   /* message bytes emitted so far */
	uint32_t received;     /* Received: headers in the message */
	bool bdat;             /* body came by BDAT */
};

enum smtp_server_ev {
	SMTP_EV_NONE = 0,
	SMTP_EV_FLUSH,
	SMTP_EV_BODY,
	SMTP_EV_COMMIT,
	SMTP_EV_ABORT,
	SMTP_EV_STARTTLS,
	SMTP_EV_AUTH,
	SMTP_EV_CLOSE,
};

/* What a feed gives back besides the event. */
struct smtp_server_io {
	struct buf *replies; /* host-owned; the engine appends */
	struct slice *body;  /* host-owned room for body slices */
	size_t nbody;        /* set by the engine */
	size_t body_cap;
};

/* smtp_server_size - sizeof(struct smtp_server), for hosts that pool them */
size_t smtp_server_size(void);

/* smtp_server_init - a new session on s (sizeof smtp_server_size()); tls is
 * true for implicit TLS (RFC 8314) listeners */
void smtp_server_init(struct smtp_server *s, const struct smtp_server_cfg *cfg, bool tls);

/* smtp_server_fini - free the session's memory; s may be reused */
void smtp_server_fini(struct smtp_server *s);

/* smtp_server_greet - queue the 220 greeting */
RM_MUST_USE int smtp_server_greet(struct smtp_server *s, struct smtp_server_io *io);

/* smtp_server_feed - consume in[0..len) as far as the next event */
enum smtp_server_ev smtp_server_feed(struct smtp_server *s, const char *in, size_t len,
				     size_t *consumed, struct smtp_server_io *io);

/* smtp_server_committed - the COMMIT's outcome: status 0 durable (then
 * "250 2.0.0 Ok: queued as ID"), RM_EIO 451 4.3.0, RM_ELIMIT 452 4.3.1 */
void smtp_server_committed(struct smtp_server *s, int status, struct slice queue_id,
			   struct smtp_server_io *io);

/* smtp_server_tls_started - the handshake finished (ok) or failed */
void smtp_server_tls_started(struct smtp_server *s, bool ok, struct smtp_server_io *io);

/* smtp_server_auth_user / _pass - the credentials of a pending AUTH */
struct slice smtp_server_auth_user(const struct smtp_server *s);
struct slice smtp_server_auth_pass(const struct smtp_server *s);

/* smtp_server_auth_done - the credentials were right (235) or not (535) */
void smtp_server_auth_done(struct smtp_server *s, bool ok, struct smtp_server_io *io);

/* smtp_server_timeout - the host's idle timer fired: 421 4.4.2, then CLOSE */
void smtp_server_timeout(struct smtp_server *s, struct smtp_server_io *io);

/* smtp_server_in_body - true inside DATA or a BDAT chunk (the host then
 * applies --data-timeout, else --command-timeout) */
bool smtp_server_in_body(const struct smtp_server *s);

/* smtp_server_tx - the current transaction's envelope, or NULL */
const struct smtp_tx *smtp_server_tx(const struct smtp_server *s);

/* smtp_server_helo - the HELO/EHLO name given, empty before one */
struct slice smtp_server_helo(const struct smtp_server *s);

/* smtp_server_esmtp - EHLO (not HELO) was used; smtp_server_tls - the
 * session is encrypted; smtp_server_authed - the authenticated user or an
 * empty slice. For the Received: header's "with" clause (RFC 3848). */
bool smtp_server_esmtp(const struct smtp_server *s);
bool smtp_server_tls(const struct smtp_server *s);
struct slice smtp_server_authed(const struct smtp_server *s);

/* smtp_server_state_name - the session state's name, for logs and tests */
const char *smtp_server_state_name(const struct smtp_server *s);

/* smtp_server_errors - protocol errors counted so far in the session */
unsigned smtp_server_errors(const struct smtp_server *s);

/* What the Received: trace header says (RFC 5321 §4.4, RFC 3848, RFC 6531
 * §4.3). Every slice is borrowed; control bytes in them are written as '?'. */
struct smtp_received {
	struct slice helo;     /* HELO/EHLO name; empty: "unknown" */
	struct slice client;   /* client address text, e.g. "[192.0.2.1]" */
	struct slice hostname; /* this host */
	struct slice queue_id;
	struct slice rcpt;     /* the one recipient, or empty: no "for" clause */
	struct slice date;     /* RFC 5322 date-time, supplied by the host */
	bool esmtp, tls, authed, utf8;
};

/* smtp_received_put - append the whole Received: field (CRLF-terminated
 * lines, continuation lines folded with a TAB), all or nothing */
RM_MUST_USE int smtp_received_put(struct buf *b, const struct smtp_received *r);

/* smtp_server_received - smtp_received_put with what the session knows
 * (HELO name, protocol flags, the recipient when there is exactly one);
 * call between SMTP_EV_COMMIT and smtp_server_committed */
RM_MUST_USE int smtp_server_received(const struct smtp_server *s, struct buf *b,
				     struct slice client, struct slice queue_id,
				     struct slice date);

#endif
