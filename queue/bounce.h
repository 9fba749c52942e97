/* bounce.h - delivery status notifications (RFC 3464 DSNs, RFC 3461 rules).
 *
 * bounce_build turns an envelope, per-recipient outcomes and the original
 * message into a complete multipart/report message (RFC 6522) as a list of
 * slices ready for writev: constant text, lines built in an arena, and
 * slices of the original message itself (not copied when it is clean).
 *
 * Who is reported (the caller's rules, bounce_rcpt_reported):
 *   - never anything when the envelope sender is null (<>), RFC 5321 §4.5.5;
 *   - NOTIFY=NEVER: never reported;
 *   - failed: when NOTIFY has FAILURE or NOTIFY was not given;
 *   - delayed: only when NOTIFY has DELAY (with no NOTIFY, RFC 3461 §4.1
 *     leaves delay notices to the MTA: we send none, like Postfix's default);
 *   - delivered, relayed, expanded: only when NOTIFY has SUCCESS.
 * One report may list several actions (a failure and a delay together).
 *
 * Content decisions:
 *   - The whole DSN is ASCII except the To: header of a UTF-8 sender (such a
 *     bounce can only travel over SMTPUTF8, RFC 6532). A recipient address
 *     that is not printable ASCII is reported with address type "utf-8" in
 *     RFC 6533's utf-8-addr-xtext form (non-ASCII as \x{HHHH}), so the report
 *     stays message/delivery-status and readable by every DSN parser; the
 *     text part shows the same form.
 *   - ENVID and ORCPT are xtext-decoded (RFC 3461 §6.3 (a), (d)).
 *   - The remote reply is hostile: control bytes and DEL become SP, non-ASCII
 *     becomes "?", it is cut at BOUNCE_DIAG_MAX, and long lines are folded
 *     at spaces (or cut with CRLF SP when there is none), so every line we
 *     generate ends in CRLF and has at most 998 octets.
 *   - The original: the whole message (message/rfc822) when the report has
 *     a failure, RET is not HDRS and it is at most full_limit octets; else
 *     its header section (text/rfc822-headers), also capped near full_limit.
 *     Its line ends are repaired on the way (bare LF -> CRLF, bare CR -> SP,
 *     lines over 998 octets broken: CRLF SP in the header, CRLF in the body)
 *     by cutting slices, never by copying the message.
 *   - The boundary comes from the token and is checked against the original:
 *     if a line of it starts with "--boundary", another boundary is chosen.
 *
 * Pure: no system call, no clock (dates come preformatted). Thread-safe as
 * long as each call has its own arena.
 */
#ifndef RINGMTA_QUEUE_BOUNCE_H
#define RINGMTA_QUEUE_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/err.h"
#include "core/slice.h"
#include "core/smtp_addr.h"

#define BOUNCE_DIAG_MAX 8192           /* octets of a remote reply kept */
#define BOUNCE_FULL_LIMIT_DEFAULT 102400 /* when the caller passes 0 */
#define BOUNCE_STATUS_LEN 16           /* room for "5.123.456" and a NUL */

/* RFC 3464 §2.3.3 actions. */
enum bounce_action {
	BOUNCE_FAILED = 0,
	BOUNCE_DELAYED,
	BOUNCE_DELIVERED,
	BOUNCE_RELAYED,
	BOUNCE_EXPANDED,
};

/* One recipient's outcome. Slices are borrowed for the call. */
struct bounce_rcpt {
	struct slice addr;         /* the recipient mailbox (Final-Recipient) */
	struct slice orcpt;        /* ORCPT as received: addr-type ";" xtext, or empty */
	unsigned notify;           /* SMTP_NOTIFY_* bits, 0 when NOTIFY was not given */
	enum bounce_action action;
	struct slice status;       /* "5.1.1"; empty or malformed: 5.0.0/4.0.0/2.0.0 */
	struct slice remote_mta;   /* next hop host name, or empty */
	struct slice diag;         /* the remote reply text ("550 5.1.1 ..."), or empty */
	struct slice last_attempt; /* RFC 5322 date, or empty */
	struct slice retry_until;  /* RFC 5322 date for delayed, or empty */
};

/* The message being reported on, and the report's own identity. */
struct bounce_msg {
	struct slice hostname;     /* reporting MTA */
	struct slice sender;       /* envelope sender; empty for <> */
	struct slice envid;        /* ENVID= xtext as received, or empty */
	enum smtp_ret ret;
	uint64_t arrival_us;       /* arrival time, µs since the epoch */
	struct slice arrival_date; /* the same as an RFC 5322 date */
	struct slice date;         /* the report's Date: */
	struct slice token;        /* unique per report (a queue ID): boundary, Message-ID */
	const struct slice *orig;  /* the original message, in order */
	size_t norig;
	size_t full_limit;         /* largest original returned whole; 0: default */
	const struct bounce_rcpt *rcpt;
	size_t nrcpt;
};

/* The built report. v and the bytes it points to live in the arena (or in
 * the caller's original message and constants) until the arena is reset. */
struct bounce_out {
	struct slice *v;
	size_t nv;
	size_t len;                /* sum of v[].len */
	bool full;                 /* the whole original is attached */
};

/* bounce_rcpt_reported - does this recipient belong in a report to a non-null
 * sender (the rules above) */
bool bounce_rcpt_reported(const struct bounce_rcpt *r);

/* bounce_select - set sel[i] for each recipient that goes into the report
 * and return how many; 0 (no report at all) for the null sender. sel may be
 * NULL to count only. */
size_t bounce_select(struct slice sender, const struct bounce_rcpt *r, size_t n, bool *sel);

/* bounce_status - the Status for an action and a remote reply's enhanced
 * code (RFC 3463); has_enh false or a class that does not fit the action
 * gives 5.0.0 / 4.0.0 / 2.0.0; written NUL-terminated to out */
void bounce_status(enum bounce_action act, bool has_enh, const unsigned enh[3],
		   char out[BOUNCE_STATUS_LEN]);

/* bounce_build - the report for the selected recipients of m.
 * RM_EINVAL: nobody to report (bounce_select is 0); RM_ENOMEM: the arena
 * ran out. */
RM_MUST_USE int bounce_build(const struct bounce_msg *m, struct arena *a, struct bounce_out *out);

#endif
