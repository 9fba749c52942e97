/* smtp_reply.h - SMTP replies, written by the server and read by the client
 * (RFC 5321 §4.2, enhanced status codes RFC 2034 / RFC 3463).
 *
 * Writing: smtp_reply_put appends one reply line to a caller-owned buffer.
 * Reading: smtp_reply_parser is resumable over the reply stream, split
 * anywhere; a complete reply (all its lines) is kept in the parser's own
 * fixed buffer, so its slices stay valid until the next feed. Pure.
 */
#ifndef RINGMTA_CORE_SMTP_REPLY_H
#define RINGMTA_CORE_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/slice.h"

#define SMTP_REPLY_LINE_MAX 512 /* RFC 5321 §4.5.3.1.5, CRLF included */
#define SMTP_REPLY_MAX 4096     /* text kept of one (multi-line) reply */
#define SMTP_REPLY_LINES_MAX 64 /* lines kept of one reply */

/* smtp_reply_put - append "CODE[-| ]ENH TEXT\r\n".
 * more: a continuation line ("250-"); enh may be NULL for no enhanced code
 * (the greeting, HELO/EHLO). */
RM_MUST_USE int smtp_reply_put(struct buf *b, unsigned code, const char *enh, struct slice text,
			       bool more);

/* smtp_reply_puts - one final reply line from a C string */
RM_MUST_USE static inline int smtp_reply_puts(struct buf *b, unsigned code, const char *enh,
					      const char *text)
{
	return smtp_reply_put(b, code, enh, slice_cstr(text), false);
}

/* A reply as read by a client.
 *
 * Every line of a reply carries the same code, else the reply is BAD. Each
 * line's text starts after "CODE-" / "CODE " (a bare "CODE" line has empty
 * text). An enhanced status code at the start of a line's text (RFC 2034:
 * class "." subject "." detail, class 2, 4 or 5 and equal to the first digit
 * of the reply code, subject and detail 1-3 digits, followed by SP or the end
 * of the line) is removed from that line's text with the spaces after it; the
 * first line that has one sets enh. Lines end at LF, with or without CR. */
struct smtp_reply {
	unsigned code;          /* 200..599 */
	unsigned enh[3];        /* class.subject.detail, all 0 when absent */
	bool has_enh;
	size_t nlines;          /* lines kept in line[] */
	struct slice line[SMTP_REPLY_LINES_MAX]; /* text of each line */
	bool truncated;         /* lines or bytes past the limits were dropped */
};

enum smtp_reply_status {
	SMTP_REPLY_NEED_MORE = 0, /* all input consumed, no complete reply */
	SMTP_REPLY_READY,         /* *reply is complete */
	SMTP_REPLY_BAD,           /* not an SMTP reply: the peer is broken */
};

/* Limits: a line keeps at most SMTP_REPLY_LINE_MAX - 6 text bytes (the line
 * less "CODE-" and CRLF), a reply at most SMTP_REPLY_MAX text bytes and
 * SMTP_REPLY_LINES_MAX lines; the rest is parsed (codes still checked) but
 * dropped, and truncated is set. A line with no end never grows memory. */
struct smtp_reply_parser {
	struct smtp_reply _r;
	size_t _len;              /* bytes of _text used */
	size_t _line_start;       /* start of the line being read in _text */
	unsigned _code;           /* code of the line being read */
	uint8_t _state;
	bool _more;               /* the line being read is a "CODE-" line */
	char _text[SMTP_REPLY_MAX];
};

/* smtp_reply_parser_init - ready for a new reply stream */
void smtp_reply_parser_init(struct smtp_reply_parser *p);

/* smtp_reply_feed - consume in[0..len) up to the end of one reply.
 * *consumed is set to the bytes used; on READY the reply is at *out and stays
 * valid until the next feed (which starts the next reply). BAD is sticky:
 * every later feed returns BAD and consumes nothing. */
enum smtp_reply_status smtp_reply_feed(struct smtp_reply_parser *p, const char *in, size_t len,
				       size_t *consumed, const struct smtp_reply **out);

#endif
