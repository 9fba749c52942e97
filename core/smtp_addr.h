/* smtp_addr.h - SMTP paths and ESMTP parameters (RFC 5321 §4.1.2, RFC 6531,
 * RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 3030 BINARYMIME, RFC 3461 DSN,
 * RFC 4954 AUTH=).
 *
 * Parsers follow the one contract (STYLE.md 2): they never read past the
 * input, and their outputs are slices of the input (valid as long as it is).
 * Pure; no allocation; any thread.
 *
 * The grammar is RFC 5321 §4.1.2 and §4.1.3 as written, widened by RFC 6531
 * §3.3 (UTF8-non-ascii in atoms, quoted strings and U-label domains; the
 * UTF-8 must be well formed: no overlong forms, surrogates or code points
 * past U+10FFFF). A path with non-ASCII bytes is accepted and flagged utf8:
 * the server decides (SMTPUTF8 may come later on the same line). Labels of
 * an ASCII domain are at most 63 octets (RFC 1035 §2.3.4); a U-label is not
 * converted to its A-label, so only the domain's total length bounds it.
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
#define SMTP_XTEXT_MAX 100   /* ENVID, RFC 3461 §4.4 */
#define SMTP_ORCPT_MAX 500   /* the whole ORCPT value, RFC 3461 §4.2 */
#define SMTP_ADDRTYPE_MAX 32 /* ORCPT addr-type; registered ones are short */

/* A parsed Mailbox: "<" [A-d-l ":"] Mailbox ">" with the source route
 * dropped (RFC 5321 §4.1.2: accepted, ignored). */
struct smtp_path {
	struct slice mailbox; /* local "@" domain as written; empty for <> */
	struct slice local;   /* Local-part as written (quotes kept) */
	struct slice domain;  /* Domain or address literal with its brackets */
	bool null;            /* the null path <> */
	bool utf8;            /* non-ASCII bytes present (needs SMTPUTF8) */
	bool literal;         /* domain is an address literal */
	bool postmaster;      /* RCPT TO:<Postmaster> with no domain (RFC 5321 §4.1.1.3);
				 local and mailbox are "Postmaster", domain is empty */
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
 * as Postfix does). allow_null: <> is allowed (a reverse-path); when false
 * the path is a forward-path, which also takes "<Postmaster>" without a
 * domain. On success sets *out and *rest to what follows the closing ">"
 * (empty, or the parameters starting with SP); anything else after ">" is
 * SMTP_ADDR_SYNTAX. Too long (local-part, domain, whole path) is checked
 * after the syntax, so a well-formed but long path gets SMTP_ADDR_TOO_LONG. */
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

/* MAIL FROM parameters. Slices point into the input. SIZE takes 1 to 20
 * digits (RFC 1870); a value past UINT64_MAX saturates to it, so the server
 * answers 552 rather than 501. ENVID and AUTH must be xtext whose decoded
 * bytes are printable ASCII (RFC 3461 §4.4, RFC 4954 §5; no CR or LF can
 * reach a DSN or a header that way), ENVID at most SMTP_XTEXT_MAX octets. */
struct smtp_mail_params {
	uint64_t size;        /* SIZE=, 0 when absent */
	bool has_size;
	enum smtp_body body;  /* BODY= */
	bool smtputf8;        /* SMTPUTF8 */
	enum smtp_ret ret;    /* RET= */
	struct slice envid;   /* ENVID= as xtext, undecoded */
	struct slice auth;    /* AUTH= as xtext, undecoded */
};

/* RCPT TO parameters. NOTIFY is NEVER alone or a comma list of SUCCESS,
 * FAILURE, DELAY (any case). ORCPT is addr-type ";" xtext, addr-type an atom
 * of at most SMTP_ADDRTYPE_MAX octets, the xtext non-empty and decoding to
 * printable ASCII; with addr-type "utf-8" (RFC 6533 §3) well-formed UTF-8 is
 * allowed in it too. The whole value is at most SMTP_ORCPT_MAX octets. */
struct smtp_rcpt_params {
	unsigned notify;      /* SMTP_NOTIFY_* bits, 0 when absent */
	struct slice orcpt;   /* ORCPT= as written: addr-type ";" xtext */
};

/* smtp_mail_params_parse - parse " KEY[=VALUE]..." after a reverse-path.
 *
 * Parameters are separated by one or more SP; keywords are case-insensitive;
 * a value is 1*(%d33-60 / %d62-126 / UTF8-non-ascii). Errors, first one
 * from the left wins: a malformed keyword or value is PARAM_SYNTAX, an
 * unknown keyword PARAM_UNKNOWN, a repeated one PARAM_DUP; *bad is set to
 * the offending "KEY[=VALUE]" (SLICE_NULL on success). */
enum smtp_addr_err smtp_mail_params_parse(struct slice in, struct smtp_mail_params *out,
					  struct slice *bad);

/* smtp_rcpt_params_parse - parse " KEY[=VALUE]..." after a forward-path */
enum smtp_addr_err smtp_rcpt_params_parse(struct slice in, struct smtp_rcpt_params *out,
					  struct slice *bad);

/* smtp_xtext_valid - RFC 3461 §4 xtext: printable ASCII but "+" and "=",
 * and "+" followed by two upper-case hex digits */
bool smtp_xtext_valid(struct slice x);

/* smtp_xtext_decode - decode xtext x into out[0..cap), *len the decoded
 * length (never more than x.len). RM_EPROTO if x is not xtext, RM_ENOMEM if
 * cap is too small; out is not NUL-terminated and may hold any byte. */
RM_MUST_USE int smtp_xtext_decode(struct slice x, char *out, size_t cap, size_t *len);

/* smtp_utf8_valid - s is well-formed UTF-8 (RFC 3629 §4) */
bool smtp_utf8_valid(struct slice s);

/* smtp_mailbox_domain - the domain of a mailbox "local@domain" as written
 * (the part after the "@" that ends the local-part; an address literal keeps
 * its brackets); empty if there is none */
struct slice smtp_mailbox_domain(struct slice mailbox);

/* smtp_domain_lower - copy domain into buf lower-cased (ASCII letters only;
 * UTF-8 bytes are copied as they are) and NUL-terminate it; *len the length
 * without the NUL. RM_ENOMEM when cap < domain.len + 1. For routing keys. */
RM_MUST_USE int smtp_domain_lower(struct slice domain, char *buf, size_t cap, size_t *len);

#endif
