/* smtp_addr.h - SMTP paths and ESMTP parameters (RFC 5321 §4.1.2, RFC 6531,
 * RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 3030 BINARYMIME, RFC 3461 DSN,
 * RFC 4954 AUTH=).
 *
 * Parsers follow the one contract (STYLE.md 2): they never read past the
 * input, and their outputs are slices of the input. Pure; no allocation.
 */
#ifndef RINGMTA_CORE_SMTP_ADDR_H
#define RINGMTA_CORE_SMTP_ADDR_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "core/slice.h"

#define SMTP_LOCAL_MAX 64    /* RFC 5321 §4.5.3.1.1 */
#define SMTP_DOMAIN_MAX 255  /* RFC 5321 §4.5.3.1.2 */
#define SMTP_PATH_MAX 256    /* RFC 5321 §4.5.3.1.3, brackets included */
#define SMTP_XTEXT_MAX 100   /* ENVID and ORCPT, RFC 3461 §4.4, §4.2 */

/* A parsed Mailbox: "<" [A-d-l ":"] Mailbox ">" with the source route
 * dropped (RFC 5321 §4.1.2: accepted, ignored). */
struct smtp_path {
	struct slice mailbox; /* local "@" domain as written; empty for <> */
	struct slice local;   /* Local-part as written (quotes kept) */
	struct slice domain;  /* Domain or address literal with its brackets */
	bool null;            /* the null path <> */
	bool utf8;            /* non-ASCII bytes present (needs SMTPUTF8) */
	bool literal;         /* domain is an address literal */
};

/* What went wrong, so the caller can pick the reply. */
enum smtp_addr_err {
	SMTP_ADDR_OK = 0,
	SMTP_ADDR_SYNTAX,      /* 501 5.1.7 (sender) / 501 5.1.3 (recipient) */
	SMTP_ADDR_TOO_LONG,    /* 501 5.1.x: over the §4.5.3.1 limits */
	SMTP_ADDR_NULL_RCPT,   /* 501 5.1.3: <> as a recipient */
	SMTP_ADDR_PARAM_SYNTAX,/* 501 5.5.4: a malformed parameter */
	SMTP_ADDR_PARAM_UNKNOWN,/* 555 5.5.4: parameter not recognised */
	SMTP_ADDR_PARAM_DUP,   /* 501 5.5.4: the same parameter twice */
};

/* smtp_path_parse - parse a path at the start of in.
 *
 * in is what follows "MAIL FROM:" or "RCPT TO:" (one leading space tolerated,
 * as Postfix does). allow_null: <> is allowed (reverse-path). On success sets
 * *out and *rest to what follows the closing ">" (the parameters). */
enum smtp_addr_err smtp_path_parse(struct slice in, bool allow_null, struct smtp_path *out,
				   struct slice *rest);

/* smtp_domain_valid - a Domain (LDH labels, or U-labels under UTF-8) or an
 * address literal ([IPv4], [IPv6:...], [tag:content]) */
bool smtp_domain_valid(struct slice d, bool allow_utf8);

enum smtp_body { SMTP_BODY_UNSPEC = 0, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME, SMTP_BODY_BINARYMIME };
enum smtp_ret { SMTP_RET_UNSPEC = 0, SMTP_RET_FULL, SMTP_RET_HDRS };

/* NOTIFY bits (RFC 3461 §4.1); NEVER excludes the others */
#define SMTP_NOTIFY_NEVER 0x1u
#define SMTP_NOTIFY_SUCCESS 0x2u
#define SMTP_NOTIFY_FAILURE 0x4u
#define SMTP_NOTIFY_DELAY 0x8u

/* MAIL FROM parameters. Slices point into the input. */
struct smtp_mail_params {
	uint64_t size;        /* SIZE=, 0 when absent */
	bool has_size;
	enum smtp_body body;  /* BODY= */
	bool smtputf8;        /* SMTPUTF8 */
	enum smtp_ret ret;    /* RET= */
	struct slice envid;   /* ENVID= as xtext, undecoded */
	struct slice auth;    /* AUTH= as xtext, undecoded */
};

/* RCPT TO parameters. */
struct smtp_rcpt_params {
	unsigned notify;      /* SMTP_NOTIFY_* bits, 0 when absent */
	struct slice orcpt;   /* ORCPT= as written: addr-type ";" xtext */
};

/* smtp_mail_params_parse - parse " KEY[=VALUE]..." after a reverse-path.
 * *bad is set to the offending parameter on error. */
enum smtp_addr_err smtp_mail_params_parse(struct slice in, struct smtp_mail_params *out,
					  struct slice *bad);

/* smtp_rcpt_params_parse - parse " KEY[=VALUE]..." after a forward-path */
enum smtp_addr_err smtp_rcpt_params_parse(struct slice in, struct smtp_rcpt_params *out,
					  struct slice *bad);

/* smtp_xtext_valid - RFC 3461 §4 xtext: printable ASCII but "+" and "=",
 * and "+" followed by two upper-case hex digits */
bool smtp_xtext_valid(struct slice x);

#endif
