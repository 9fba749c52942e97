/* smtp_cmd.h - SMTP command lines (RFC 5321 §4.1).
 *
 * smtp_cmd_parse takes one complete command line without its CRLF and names
 * the verb; the argument is a slice of the line. Pure; no allocation.
 */
#ifndef RINGMTA_CORE_SMTP_CMD_H
#define RINGMTA_CORE_SMTP_CMD_H

#include "core/slice.h"

#define SMTP_CMD_LINE_MAX 2048   /* octets, CRLF included (Postfix line_length_limit) */
#define SMTP_AUTH_LINE_MAX 12288 /* AUTH responses, RFC 4954 §4 */

/* X(name, text): every verb once; the enum and the names come from here. */
#define SMTP_CMD_LIST(X)                                                                         \
	X(HELO, "HELO") X(EHLO, "EHLO") X(MAIL, "MAIL") X(RCPT, "RCPT") X(DATA, "DATA")      \
	X(BDAT, "BDAT") X(RSET, "RSET") X(NOOP, "NOOP") X(QUIT, "QUIT") X(VRFY, "VRFY")      \
	X(EXPN, "EXPN") X(HELP, "HELP") X(STARTTLS, "STARTTLS") X(AUTH, "AUTH")

enum smtp_cmd_id {
	SMTP_CMD_UNKNOWN = 0,
#define X(name, text) SMTP_CMD_##name,
	SMTP_CMD_LIST(X)
#undef X
	SMTP_CMD_HTTP, /* "GET ", "POST ", "CONNECT ", "Host:": close the session */
	SMTP_CMD__COUNT
};

struct smtp_cmd {
	enum smtp_cmd_id id;
	struct slice verb; /* as written */
	/* The argument: for MAIL, what follows "FROM:"; for RCPT, what follows
	 * "TO:"; for the others, what follows the verb and its spaces. An
	 * argument of MAIL without "FROM:" (or RCPT without "TO:") is a syntax
	 * error, flagged by syntax_error. */
	struct slice arg;
	int syntax_error;  /* nonzero: the verb is known but the line is malformed */
};

/* smtp_cmd_parse - name the command on one line (no CRLF) */
void smtp_cmd_parse(struct slice line, struct smtp_cmd *out);

/* smtp_cmd_name - the verb's canonical text, "" for UNKNOWN */
const char *smtp_cmd_name(enum smtp_cmd_id id);

#endif
