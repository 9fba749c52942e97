/* smtp_reply.c - writing and reading SMTP replies (RFC 5321 §4.2, RFC 2034).
 *
 * The reader is a byte automaton: CODE digits, a separator, text, CR LF. It
 * never reads past its input and keeps everything it needs between feeds in
 * the parser, so a reply may arrive split anywhere. Text is copied into the
 * parser's fixed buffer (replies are short and must outlive the receive
 * buffer); what does not fit is dropped and flagged, never allocated.
 *
 * Pure; one owner per parser; panics on nothing.
 */
#include "core/smtp_reply.h"

/* smtp_reply_put - append "CODE[-| ]ENH TEXT\r\n" (all or nothing) */
int smtp_reply_put(struct buf *b, unsigned code, const char *enh, struct slice text, bool more)
{
	size_t mark = b->len;
	char head[4] = { (char)('0' + code / 100 % 10), (char)('0' + code / 10 % 10),
			 (char)('0' + code % 10), more ? '-' : ' ' };

	if (buf_put(b, head, 4) || (enh && (buf_put_str(b, enh) || buf_put(b, " ", 1))) ||
	    buf_put_slice(b, text) || buf_put(b, "\r\n", 2)) {
		b->len = mark;
		return RM_ENOMEM;
	}
	return RM_OK;
}

enum {
	RP_CODE0 = 0, /* first digit of a line's code */
	RP_CODE1,
	RP_CODE2,
	RP_SEP,       /* '-', ' ', or the end of the line */
	RP_TEXT,
	RP_CR,        /* a CR in text: the end of the line if LF follows */
	RP_DONE,      /* a reply was returned; the next feed starts another */
	RP_BAD,
};

#define RP_LINE_TEXT_MAX (SMTP_REPLY_LINE_MAX - 6)

/* reply_reset - forget the last reply, ready for the first line of a new one */
static void reply_reset(struct smtp_reply_parser *p)
{
	p->_r.code = 0;
	p->_r.enh[0] = p->_r.enh[1] = p->_r.enh[2] = 0;
	p->_r.has_enh = false;
	p->_r.nlines = 0;
	p->_r.truncated = false;
	p->_len = 0;
	p->_line_start = 0;
	p->_code = 0;
	p->_more = false;
	p->_state = RP_CODE0;
}

/* smtp_reply_parser_init - ready for a new reply stream */
void smtp_reply_parser_init(struct smtp_reply_parser *p)
{
	reply_reset(p);
}

/* reply_text - keep one text byte of the current line, if it fits */
static void reply_text(struct smtp_reply_parser *p, char ch)
{
	if (p->_r.nlines >= SMTP_REPLY_LINES_MAX || p->_len - p->_line_start >= RP_LINE_TEXT_MAX ||
	    p->_len >= SMTP_REPLY_MAX) {
		p->_r.truncated = true;
		return;
	}
	p->_text[p->_len++] = ch;
}

/* reply_digits - 1 to 3 digits at t[*i]; false if none or more than 3 */
static bool reply_digits(struct slice t, size_t *i, unsigned *out)
{
	unsigned v = 0;
	size_t n = 0;

	while (*i < t.len && t.ptr[*i] >= '0' && t.ptr[*i] <= '9') {
		if (++n > 3)
			return false;
		v = v * 10 + (unsigned)(t.ptr[*i] - '0');
		(*i)++;
	}
	*out = v;
	return n > 0;
}

/* reply_enh - strip an enhanced status code from the start of *t, if any */
static bool reply_enh(struct slice *t, unsigned code, unsigned enh[3])
{
	size_t i = 1;
	unsigned v[3];

	/* RFC 3463 §2: the class must agree with the reply code's class. */
	if (t->len < 5 || t->ptr[0] != (char)('0' + code / 100) || t->ptr[1] != '.')
		return false;
	v[0] = code / 100;
	i = 2;
	if (!reply_digits(*t, &i, &v[1]) || i >= t->len || t->ptr[i] != '.')
		return false;
	i++;
	if (!reply_digits(*t, &i, &v[2]) || (i < t->len && t->ptr[i] != ' '))
		return false;
	while (i < t->len && t->ptr[i] == ' ')
		i++;
	*t = slice_sub(*t, i, t->len - i);
	enh[0] = v[0];
	enh[1] = v[1];
	enh[2] = v[2];
	return true;
}

/* reply_end_line - finish the current line; true when the reply is done */
static bool reply_end_line(struct smtp_reply_parser *p)
{
	struct smtp_reply *r = &p->_r;

	if (r->nlines < SMTP_REPLY_LINES_MAX) {
		struct slice t = slice_make(p->_text + p->_line_start, p->_len - p->_line_start);
		unsigned enh[3];

		if (reply_enh(&t, r->code, enh) && !r->has_enh) {
			r->has_enh = true;
			r->enh[0] = enh[0];
			r->enh[1] = enh[1];
			r->enh[2] = enh[2];
		}
		r->line[r->nlines++] = t;
	} else {
		r->truncated = true;
	}
	p->_line_start = p->_len;
	if (!p->_more) {
		p->_state = RP_DONE;
		return true;
	}
	p->_code = 0;
	p->_state = RP_CODE0;
	return false;
}

/* reply_digit - one code digit; false if it cannot be part of a valid code */
static bool reply_digit(struct smtp_reply_parser *p, char ch)
{
	unsigned d = (unsigned)(unsigned char)ch - '0';

	if (d > 9 || (p->_state == RP_CODE0 && (d < 2 || d > 5)))
		return false;
	p->_code = p->_code * 10 + d;
	if (++p->_state == RP_SEP) {
		if (p->_r.nlines == 0 && p->_r.code == 0)
			p->_r.code = p->_code;
		else if (p->_code != p->_r.code)
			return false; /* every line of a reply carries one code */
	}
	return true;
}

/* smtp_reply_feed - consume in[0..len) up to the end of one reply */
enum smtp_reply_status smtp_reply_feed(struct smtp_reply_parser *p, const char *in, size_t len,
				       size_t *consumed, const struct smtp_reply **out)
{
	size_t i = 0;

	*consumed = 0;
	if (p->_state == RP_BAD)
		return SMTP_REPLY_BAD;
	if (p->_state == RP_DONE)
		reply_reset(p);
	while (i < len) {
		char ch = in[i++];

		switch (p->_state) {
		case RP_CODE0:
		case RP_CODE1:
		case RP_CODE2:
			if (!reply_digit(p, ch))
				goto bad;
			continue;
		case RP_SEP:
			if (ch == '-' || ch == ' ') {
				p->_more = ch == '-';
				p->_state = RP_TEXT;
				continue;
			}
			p->_more = false;
			if (ch == '\r') {
				p->_state = RP_CR;
				continue;
			}
			if (ch != '\n')
				goto bad;
			break;
		case RP_TEXT:
			if (ch == '\r') {
				p->_state = RP_CR;
				continue;
			}
			if (ch != '\n') {
				reply_text(p, ch);
				continue;
			}
			break;
		case RP_CR:
			if (ch == '\n')
				break;
			/* A bare CR is text; ch is looked at again as text. */
			reply_text(p, '\r');
			p->_state = RP_TEXT;
			i--;
			continue;
		default:
			goto bad;
		}
		if (reply_end_line(p)) {
			*consumed = i;
			*out = &p->_r;
			return SMTP_REPLY_READY;
		}
	}
	*consumed = i;
	return SMTP_REPLY_NEED_MORE;
bad:
	p->_state = RP_BAD;
	*consumed = i - 1;
	return SMTP_REPLY_BAD;
}
