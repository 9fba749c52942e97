/* smtp_reply.c - writing and reading SMTP replies. Pure; one owner per parser. */
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
