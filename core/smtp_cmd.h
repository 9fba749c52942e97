/* smtp_cmd.h - SMTP command lines (RFC 5321 §4.1).
 *
 * smtp_cmd_parse takes one complete command line without its CRLF and names
 * the verb; the argument is a slice of the line. Pure; no allocation; any
 * thread. The slices in struct smtp_cmd point into the line and live as long
 * as it does.
 *
 * What the parser does with odd lines (the server picks the reply):
 * - verbs are ASCII case-insensitive and end at SP or at the end of the line;
 *   anything else in the verb (HTAB, NUL, a control byte, 8-bit) makes it
 *   SMTP_CMD_UNKNOWN;
 * - trailing SP and HTAB are trimmed from the argument; the spaces between
 *   the verb and the argument are skipped;
 * - NUL and other control bytes inside the argument are left in arg as they
 *   are: the parser does not judge them, the path and parameter parsers
 *   reject them, and the server rejects them for the other verbs;
 * - an argument given to a verb that takes none (DATA x, QUIT x) is returned
 *   as-is, with syntax_error clear: the server decides it is a 501;
 * - a line that starts like an HTTP request ("GET ", "POST ", "CONNECT ",
 *   "HEAD ", "PUT ", any case) or an HTTP "Host:" header is SMTP_CMD_HTTP.
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
	 * "TO:"; for the others, what follows the verb and its spaces. The one
	 * space Postfix tolerates after the colon ("MAIL FROM: <a@b>") is left
	 * in arg for smtp_path_parse to skip. MAIL without "FROM:" (or RCPT
	 * without "TO:", or either with no argument at all) sets syntax_error
	 * and leaves the whole argument in arg. */
	struct slice arg;
	int syntax_error; /* nonzero: the verb is known but the line is malformed */
};

/* smtp_cmd_parse - name the command on one line (no CRLF) */
void smtp_cmd_parse(struct slice line, struct smtp_cmd *out);

/* smtp_cmd_name - the verb's canonical text, "" for UNKNOWN */
const char *smtp_cmd_name(enum smtp_cmd_id id);

#endif
