/* smtp_cmd.c - naming the command on one SMTP line (RFC 5321 §4.1).
 *
 * Purpose: split a complete command line (CRLF removed) into a verb and an
 * argument, and recognise HTTP sent to the SMTP port.
 * Invariants: never reads outside line[0..len); every output slice lies
 * inside the line; no allocation, no state.
 * Threads: any; pure.
 */
#include "core/smtp_cmd.h"

#include <stdint.h>

static const struct {
	const char *text;
	size_t len;
} smtp_cmd_names[SMTP_CMD__COUNT] = {
	[SMTP_CMD_UNKNOWN] = { "", 0 },
#define X(name, text) [SMTP_CMD_##name] = { text, sizeof(text) - 1 },
	SMTP_CMD_LIST(X)
#undef X
	[SMTP_CMD_HTTP] = { "HTTP", 4 },
};

/* HTTP request methods that show a web client (or a cross-protocol attack
 * through one) is talking to the SMTP port; each must be followed by SP. */
static const struct slice smtp_cmd_http_methods[] = {
	SLICE_LIT("GET"), SLICE_LIT("POST"), SLICE_LIT("CONNECT"), SLICE_LIT("HEAD"), SLICE_LIT("PUT"),
};

/* smtp_cmd_upper_eq - p[0..n) equals the upper-case letters up[0..n) in any
 * case. Masking 0x20 off maps only a-z and A-Z onto A-Z, so no other byte
 * can match a verb made of letters (as every verb is). */
static inline bool smtp_cmd_upper_eq(const char *p, const char *up, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)p[i] & 0xDF) != (unsigned char)up[i])
			return false;
	return true;
}

/* smtp_cmd_word4 - p[0..4) as a little-endian word with bit 0x20 cleared in
 * each byte. Exact against four upper-case letters (every verb is made of
 * letters): a byte matches a letter only in that letter's two cases. Built
 * from bytes, so it needs no alignment and reads nothing past p[3]. */
static inline uint32_t smtp_cmd_word4(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;

	return ((uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24) &
	       0xDFDFDFDFu;
}

/* SMTP_CMD_TAG4 - the smtp_cmd_word4 of four upper-case letters */
#define SMTP_CMD_TAG4(a, b, c, d) \
	((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)

/* smtp_cmd_lookup - the id of a verb, SMTP_CMD_UNKNOWN if none. A four-letter
 * verb (all but STARTTLS) is one folded word and a switch; the walk of
 * byte-wise compares over the table is kept for the other lengths (a
 * four-letter verb added to SMTP_CMD_LIST needs its case here too; the unit
 * test names every verb). */
static enum smtp_cmd_id smtp_cmd_lookup(struct slice verb)
{
	if (verb.len == 4) {
		switch (smtp_cmd_word4(verb.ptr)) {
		case SMTP_CMD_TAG4('H', 'E', 'L', 'O'):
			return SMTP_CMD_HELO;
		case SMTP_CMD_TAG4('E', 'H', 'L', 'O'):
			return SMTP_CMD_EHLO;
		case SMTP_CMD_TAG4('M', 'A', 'I', 'L'):
			return SMTP_CMD_MAIL;
		case SMTP_CMD_TAG4('R', 'C', 'P', 'T'):
			return SMTP_CMD_RCPT;
		case SMTP_CMD_TAG4('D', 'A', 'T', 'A'):
			return SMTP_CMD_DATA;
		case SMTP_CMD_TAG4('B', 'D', 'A', 'T'):
			return SMTP_CMD_BDAT;
		case SMTP_CMD_TAG4('R', 'S', 'E', 'T'):
			return SMTP_CMD_RSET;
		case SMTP_CMD_TAG4('N', 'O', 'O', 'P'):
			return SMTP_CMD_NOOP;
		case SMTP_CMD_TAG4('Q', 'U', 'I', 'T'):
			return SMTP_CMD_QUIT;
		case SMTP_CMD_TAG4('V', 'R', 'F', 'Y'):
			return SMTP_CMD_VRFY;
		case SMTP_CMD_TAG4('E', 'X', 'P', 'N'):
			return SMTP_CMD_EXPN;
		case SMTP_CMD_TAG4('H', 'E', 'L', 'P'):
			return SMTP_CMD_HELP;
		case SMTP_CMD_TAG4('A', 'U', 'T', 'H'):
			return SMTP_CMD_AUTH;
		default:
			return SMTP_CMD_UNKNOWN;
		}
	}
	for (int id = SMTP_CMD_UNKNOWN + 1; id < SMTP_CMD_HTTP; id++)
		if (smtp_cmd_names[id].len == verb.len &&
		    smtp_cmd_upper_eq(verb.ptr, smtp_cmd_names[id].text, verb.len))
			return (enum smtp_cmd_id)id;
	return SMTP_CMD_UNKNOWN;
}

/* smtp_cmd_is_http - does the line start like an HTTP request or header */
static bool smtp_cmd_is_http(struct slice line, struct slice verb)
{
	unsigned char c = line.len ? (unsigned char)line.ptr[0] & 0xDF : 0;

	if (c != 'G' && c != 'P' && c != 'C' && c != 'H') /* the common case */
		return false;
	if (slice_starts_nocase(line, SLICE_LIT("Host:")))
		return true;
	if (verb.len == line.len) /* the method must be followed by SP */
		return false;
	for (size_t i = 0; i < sizeof smtp_cmd_http_methods / sizeof smtp_cmd_http_methods[0]; i++)
		if (slice_eq_nocase(verb, smtp_cmd_http_methods[i]))
			return true;
	return false;
}

/* smtp_cmd_path_arg - the argument after "FROM:" or "TO:" (prefix given in
 * upper case); false if absent */
static inline bool smtp_cmd_path_arg(struct slice arg, struct slice prefix, struct slice *out)
{
	if (arg.len < prefix.len || arg.ptr[prefix.len - 1] != ':')
		return false;
	if (prefix.len == 5 ? smtp_cmd_word4(arg.ptr) != SMTP_CMD_TAG4('F', 'R', 'O', 'M')
			    : !smtp_cmd_upper_eq(arg.ptr, prefix.ptr, prefix.len - 1))
		return false;
	*out = slice_make(arg.ptr + prefix.len, arg.len - prefix.len);
	return true;
}

/* smtp_cmd_parse - name the command on one line (no CRLF) */
void smtp_cmd_parse(struct slice line, struct smtp_cmd *out)
{
	const char *p = line.ptr, *end = line.ptr + line.len;
	const char *v;

	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (end - p > 4 && p[4] == ' ' && p[0] != ' ' && p[1] != ' ' && p[2] != ' ' && p[3] != ' ')
		v = p + 4; /* the common four-letter verb and SP */
	else
		for (v = p; v < end && *v != ' '; v++)
			;
	out->verb = slice_make(p, (size_t)(v - p));
	out->syntax_error = 0;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	out->arg = slice_make(v, (size_t)(end - v));
	/* No verb is an HTTP method or "Host:", so only an unknown one is asked */
	out->id = smtp_cmd_lookup(out->verb);
	if (out->id == SMTP_CMD_UNKNOWN) {
		if (smtp_cmd_is_http(line, out->verb))
			out->id = SMTP_CMD_HTTP;
	} else if (out->id == SMTP_CMD_MAIL) {
		out->syntax_error = !smtp_cmd_path_arg(out->arg, SLICE_LIT("FROM:"), &out->arg);
	} else if (out->id == SMTP_CMD_RCPT) {
		out->syntax_error = !smtp_cmd_path_arg(out->arg, SLICE_LIT("TO:"), &out->arg);
	}
}

/* smtp_cmd_name - the verb's canonical text, "" for UNKNOWN */
const char *smtp_cmd_name(enum smtp_cmd_id id)
{
	if ((unsigned)id >= SMTP_CMD__COUNT)
		return "";
	return smtp_cmd_names[id].text;
}
