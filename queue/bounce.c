/* bounce.c - the RFC 3464 delivery status notification builder.
 *
 * Purpose: build a multipart/report (RFC 6522) DSN as writev-ready slices;
 * decide who is reported (RFC 3461 NOTIFY). The rules and the content
 * decisions are in bounce.h.
 *
 * Invariants: every line this module generates ends in CRLF and has at most
 * 998 octets before it; no CR or LF reaches a line from an input slice except
 * as a CRLF line end of the original message; the original's bytes are only
 * ever referenced, never copied. Inputs are treated as hostile bytes.
 *
 * Threads: pure; any thread, one arena per call. Panics on nothing: running
 * out of arena is RM_ENOMEM.
 */
#include "queue/bounce.h"

#include <string.h>

#include "core/swar.h"

#define BOUNCE_LINE_MAX 998  /* RFC 5322 §2.1.1 */
#define BOUNCE_FOLD_SOFT 78  /* preferred width of generated lines */
#define BOUNCE_TOKEN_MAX 40  /* token characters kept for the boundary */
#define BOUNCE_HOST_MAX 255
#define BOUNCE_TRIES 64      /* boundaries tried against the original */

/* A growing text buffer in the arena; oom sticks once set. */
struct bounce_w {
	struct arena *a;
	char *p;
	size_t len, cap;
	bool oom;
};

/* A growing list of output slices in the arena. */
struct bounce_v {
	struct arena *a;
	struct slice *v;
	size_t n, cap;
	size_t len;
	bool oom;
};

/* bounce_w_init - an empty buffer on arena a */
static void bounce_w_init(struct bounce_w *w, struct arena *a)
{
	w->a = a;
	w->p = NULL;
	w->len = w->cap = 0;
	w->oom = false;
}

/* bounce_w_put - append p[0..n) */
static void bounce_w_put(struct bounce_w *w, const char *p, size_t n)
{
	if (w->oom || n == 0)
		return;
	if (w->len + n > w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 256;
		while (cap < w->len + n)
			cap *= 2;
		char *q = arena_alloc(w->a, cap);
		if (!q) {
			w->oom = true;
			return;
		}
		if (w->len)
			memcpy(q, w->p, w->len);
		w->p = q;
		w->cap = cap;
	}
	memcpy(w->p + w->len, p, n);
	w->len += n;
}

/* bounce_w_puts - append a C string */
static void bounce_w_puts(struct bounce_w *w, const char *s)
{
	bounce_w_put(w, s, strlen(s));
}

/* bounce_w_putsl - append a slice */
static void bounce_w_putsl(struct bounce_w *w, struct slice s)
{
	bounce_w_put(w, s.ptr, s.len);
}

/* bounce_w_slice - what the buffer holds */
static struct slice bounce_w_slice(const struct bounce_w *w)
{
	return slice_make(w->p, w->len);
}

/* bounce_v_push - append s, merged into the last slice when contiguous */
static void bounce_v_push(struct bounce_v *v, struct slice s)
{
	if (v->oom || s.len == 0)
		return;
	if (v->n && v->v[v->n - 1].ptr + v->v[v->n - 1].len == s.ptr) {
		v->v[v->n - 1].len += s.len;
		v->len += s.len;
		return;
	}
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 16;
		struct slice *q = arena_alloc(v->a, cap * sizeof *q);
		if (!q) {
			v->oom = true;
			return;
		}
		if (v->n)
			memcpy(q, v->v, v->n * sizeof *q);
		v->v = q;
		v->cap = cap;
	}
	v->v[v->n++] = s;
	v->len += s.len;
}

/* bounce_utf8_next - the code point at p[0..n) and its length, or -1 when
 * the bytes there are not well-formed UTF-8 (RFC 3629 §4) */
static long bounce_utf8_next(const unsigned char *p, size_t n, size_t *used)
{
	unsigned c = p[0];
	size_t k;
	unsigned long cp, min;

	if (c < 0x80) {
		*used = 1;
		return (long)c;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		k = 2;
		cp = c & 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		k = 3;
		cp = c & 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		k = 4;
		cp = c & 0x07;
		min = 0x10000;
	} else {
		return -1;
	}
	if (n < k)
		return -1;
	for (size_t i = 1; i < k; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*used = k;
	return (long)cp;
}

/* bounce_ascii_addr - s is non-empty printable ASCII without SP */
static bool bounce_ascii_addr(struct slice s)
{
	if (s.len == 0)
		return false;
	for (size_t i = 0; i < s.len; i++) {
		unsigned char c = (unsigned char)s.ptr[i];
		if (c < 0x21 || c > 0x7e)
			return false;
	}
	return true;
}

/* bounce_u8xtext - s in RFC 6533 utf-8-addr-xtext form: QCHAR as itself,
 * everything else as \x{HHHH}; a byte that is not UTF-8 as \x{FFFD} */
static void bounce_u8xtext(struct bounce_w *w, struct slice s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)s.ptr;
	size_t i = 0;

	while (i < s.len) {
		size_t used = 1;
		long cp = bounce_utf8_next(p + i, s.len - i, &used);
		if (cp < 0) {
			cp = 0xfffd;
			used = 1;
		}
		if (cp >= 0x21 && cp <= 0x7e && cp != '+' && cp != '=' && cp != '\\') {
			char c = (char)cp;
			bounce_w_put(w, &c, 1);
		} else {
			char buf[16];
			size_t n = 0, d = 0;
			unsigned long v = (unsigned long)cp;
			char digits[8];
			do {
				digits[d++] = hex[v & 15];
				v >>= 4;
			} while (v);
			if (d < 2)
				digits[d++] = '0';
			buf[n++] = '\\';
			buf[n++] = 'x';
			buf[n++] = '{';
			while (d)
				buf[n++] = digits[--d];
			buf[n++] = '}';
			bounce_w_put(w, buf, n);
		}
		i += used;
	}
}

/* bounce_addr - an address for a DSN field or the text part: the address
 * type ("rfc822" or "utf-8") in *type and the value in the arena */
static struct slice bounce_addr(struct arena *a, struct slice addr, const char **type)
{
	struct bounce_w w;

	if (bounce_ascii_addr(addr)) {
		*type = "rfc822";
		return addr;
	}
	*type = "utf-8";
	bounce_w_init(&w, a);
	if (addr.len == 0)
		bounce_w_puts(&w, "\\x{20}"); /* an empty value would not parse */
	bounce_u8xtext(&w, addr);
	return w.oom ? SLICE_NULL : bounce_w_slice(&w);
}

/* bounce_clean - hostile text as one line of printable ASCII: controls and
 * DEL become SP, non-ASCII "?", runs of SP one SP, no SP at either end, at
 * most max octets */
static struct slice bounce_clean(struct arena *a, struct slice s, size_t max)
{
	char *out = arena_alloc(a, s.len + 1);
	size_t n = 0;

	if (!out)
		return SLICE_NULL;
	for (size_t i = 0; i < s.len && n < max; i++) {
		unsigned char c = (unsigned char)s.ptr[i];
		if (c < 0x20 || c == 0x7f)
			c = ' ';
		else if (c >= 0x80)
			c = '?';
		if (c == ' ' && (n == 0 || out[n - 1] == ' '))
			continue;
		out[n++] = (char)c;
	}
	while (n && out[n - 1] == ' ')
		n--;
	return slice_make(out, n);
}

/* bounce_fold - append text (one line, from bounce_clean or an address) at
 * column col, breaking lines before a SP where one fits in the preferred
 * width, else at the first SP that keeps the line within 998 octets, else
 * hard; continuation lines start with cont (field folding: " "; the text
 * part: an indent). Ends with CRLF. */
static void bounce_fold(struct bounce_w *w, size_t col, struct slice t, const char *cont, bool keep_sp)
{
	size_t i = 0, clen = strlen(cont);

	for (;;) {
		size_t left = t.len - i, brk = 0;
		if (col + left <= BOUNCE_FOLD_SOFT) {
			bounce_w_put(w, t.ptr + i, left);
			break;
		}
		/* the last SP within the preferred width, not at the line's start */
		for (size_t j = i + 1; j < t.len && col + (j - i) <= BOUNCE_FOLD_SOFT; j++)
			if (t.ptr[j] == ' ')
				brk = j;
		/* else the first SP that keeps the line within the limit */
		for (size_t j = i + 1; !brk && j < t.len && col + (j - i) <= BOUNCE_LINE_MAX; j++)
			if (t.ptr[j] == ' ')
				brk = j;
		if (!brk && col + left <= BOUNCE_LINE_MAX) {
			bounce_w_put(w, t.ptr + i, left);
			break;
		}
		if (brk) {
			bounce_w_put(w, t.ptr + i, brk - i);
			bounce_w_puts(w, "\r\n");
			if (keep_sp) {
				/* the SP becomes the folding white space */
				i = brk;
				col = 0;
			} else {
				bounce_w_puts(w, cont);
				i = brk + 1;
				col = clen;
			}
			continue;
		}
		/* no SP at all: cut (a field unfolds with an extra SP there) */
		size_t n = BOUNCE_LINE_MAX - col;
		bounce_w_put(w, t.ptr + i, n);
		bounce_w_puts(w, "\r\n");
		bounce_w_puts(w, cont);
		i += n;
		col = clen;
	}
	bounce_w_puts(w, "\r\n");
}

/* bounce_field - "Name: value" folded, value already one clean line */
static void bounce_field(struct bounce_w *w, const char *name, struct slice value)
{
	bounce_w_puts(w, name);
	bounce_w_puts(w, ": ");
	bounce_fold(w, strlen(name) + 2, value, " ", true);
}

/* bounce_field2 - "Name: prefix value" folded */
static void bounce_field2(struct bounce_w *w, struct arena *a, const char *name, const char *prefix,
			  struct slice value)
{
	struct bounce_w t;

	bounce_w_init(&t, a);
	bounce_w_puts(&t, prefix);
	bounce_w_putsl(&t, value);
	if (t.oom) {
		w->oom = true;
		return;
	}
	bounce_field(w, name, bounce_w_slice(&t));
}

/* bounce_rcpt_reported - does r belong in a report (bounce.h rules) */
bool bounce_rcpt_reported(const struct bounce_rcpt *r)
{
	unsigned n = r->notify;

	if (n & SMTP_NOTIFY_NEVER)
		return false;
	switch (r->action) {
	case BOUNCE_FAILED:
		return n == 0 || (n & SMTP_NOTIFY_FAILURE);
	case BOUNCE_DELAYED:
		return (n & SMTP_NOTIFY_DELAY) != 0;
	case BOUNCE_DELIVERED:
	case BOUNCE_RELAYED:
	case BOUNCE_EXPANDED:
		return (n & SMTP_NOTIFY_SUCCESS) != 0;
	}
	return false;
}

/* bounce_select - mark and count the recipients of a report */
size_t bounce_select(struct slice sender, const struct bounce_rcpt *r, size_t n, bool *sel)
{
	size_t count = 0;

	for (size_t i = 0; i < n; i++) {
		bool on = sender.len != 0 && bounce_rcpt_reported(&r[i]);
		if (sel)
			sel[i] = on;
		count += on;
	}
	return count;
}

/* bounce_class - the status class an action reports by default */
static unsigned bounce_class(enum bounce_action act)
{
	return act == BOUNCE_FAILED ? 5 : act == BOUNCE_DELAYED ? 4 : 2;
}

/* bounce_status - the Status for an action and an enhanced code */
void bounce_status(enum bounce_action act, bool has_enh, const unsigned enh[3],
		   char out[BOUNCE_STATUS_LEN])
{
	unsigned c = bounce_class(act), s = 0, d = 0;

	if (has_enh && enh && enh[1] <= 999 && enh[2] <= 999 &&
	    (enh[0] == c || (act == BOUNCE_FAILED && enh[0] == 4))) {
		c = enh[0];
		s = enh[1];
		d = enh[2];
	}
	size_t n = 0;
	unsigned parts[3] = { c, s, d };
	for (int k = 0; k < 3; k++) {
		char tmp[4];
		size_t t = 0;
		unsigned v = parts[k];
		do {
			tmp[t++] = (char)('0' + v % 10);
			v /= 10;
		} while (v);
		if (k)
			out[n++] = '.';
		while (t)
			out[n++] = tmp[--t];
	}
	out[n] = '\0';
}

/* bounce_status_ok - s is class "." subject "." detail (RFC 3463 §2) with
 * class 2, 4 or 5 and one to three digits each after it */
static bool bounce_status_ok(struct slice s)
{
	if (s.len < 5 || (s.ptr[0] != '2' && s.ptr[0] != '4' && s.ptr[0] != '5') || s.ptr[1] != '.')
		return false;
	size_t i = 2;
	for (int part = 0; part < 2; part++) {
		size_t d = 0;
		while (i < s.len && s.ptr[i] >= '0' && s.ptr[i] <= '9') {
			i++;
			d++;
		}
		if (d < 1 || d > 3)
			return false;
		if (part == 0) {
			if (i >= s.len || s.ptr[i] != '.')
				return false;
			i++;
		}
	}
	return i == s.len;
}

/* bounce_xtext - decode xtext to printable text; what is not xtext is kept
 * as it is (and cleaned by the caller) */
static struct slice bounce_xtext(struct arena *a, struct slice x)
{
	char *out = arena_alloc(a, x.len + 1);
	size_t n = 0;

	if (!out)
		return SLICE_NULL;
	if (smtp_xtext_decode(x, out, x.len + 1, &n) != RM_OK)
		return x;
	return slice_make(out, n);
}

/* Per-walk state over the original message (see bounce_walk). */
struct bounce_walker {
	struct bounce_v *out;
	struct slice pat;     /* "--boundary" */
	size_t limit;         /* stop at a line start past this many input bytes */
	bool hdrs_only;
	bool in_body;
	bool cr;              /* the previous byte was CR */
	bool cr_held;         /* ...and it was held back at a slice end */
	size_t col;           /* octets on the current output line */
	size_t pm;            /* pattern octets matched at line start */
	bool pm_live;
	size_t consumed;
	bool collide;
	bool eightbit;
	bool done;
};

/* bounce_walk_line - a new output line begins */
static void bounce_walk_line(struct bounce_walker *k, size_t col)
{
	k->col = col;
	k->pm = 0;
	k->pm_live = col == 0;
}

/* bounce_walk_break - end a line that is too long: fold in the header,
 * break in the body */
static void bounce_walk_break(struct bounce_walker *k)
{
	if (k->in_body) {
		bounce_v_push(k->out, SLICE_LIT("\r\n"));
		bounce_walk_line(k, 0);
	} else {
		bounce_v_push(k->out, SLICE_LIT("\r\n "));
		bounce_walk_line(k, 1);
	}
}

/* bounce_plain_run - how many of p[0..n) come before the first CR, LF or
 * 8-bit octet: eight at a time (core/swar.h), then one at a time */
static size_t bounce_plain_run(const char *p, size_t n)
{
	size_t j = 0;

	for (; j + 8 <= n; j += 8) {
		uint64_t w = swar_load(p + j);
		if (swar_eq(w, '\r') | swar_eq(w, '\n') | swar_at_least(w, 0x80))
			break;
	}
	while (j < n && p[j] != '\r' && p[j] != '\n' && (unsigned char)p[j] < 0x80)
		j++;
	return j;
}

/* bounce_walk_slice - feed one slice of the original; see bounce.h for the
 * repairs. Output is cut from s itself where nothing changes. */
static void bounce_walk_slice(struct bounce_walker *k, struct slice s)
{
	const char *rs = s.ptr; /* start of the pending run of original bytes */
	size_t i;

	for (i = 0; i < s.len && !k->done; i++) {
		const char *p = s.ptr + i;
		unsigned char c = (unsigned char)*p;

		if (!k->cr && !k->pm_live) {
			/* the body of a line: plain octets pass through until
			 * a CR, an LF, an 8-bit octet or the line's limit, in
			 * a loop over locals (most of a message is this) */
			size_t room = k->col < BOUNCE_LINE_MAX ? BOUNCE_LINE_MAX - k->col : 0;
			size_t n = s.len - i < room ? s.len - i : room;
			size_t j = bounce_plain_run(p, n);
			if (j > 0) {
				k->col += j;
				k->consumed += j;
				i += j - 1;
				continue;
			}
		}
		k->consumed++;
		if (k->cr && c != '\n') {
			/* bare CR: becomes SP (the run before it is out already
			 * when the CR was held back at a slice end) */
			if (!k->cr_held)
				bounce_v_push(k->out, slice_make(rs, (size_t)(p - 1 - rs)));
			rs = p;
			if (k->col >= BOUNCE_LINE_MAX)
				bounce_walk_break(k);
			bounce_v_push(k->out, SLICE_LIT(" "));
			k->cr = k->cr_held = false;
			k->col++;
			k->pm_live = false;
		}
		if (c == '\n') {
			bool empty = k->col == 0;
			if (k->cr_held) {
				bounce_v_push(k->out, SLICE_LIT("\r"));
			} else if (!k->cr) {
				/* bare LF: CRLF */
				bounce_v_push(k->out, slice_make(rs, (size_t)(p - rs)));
				bounce_v_push(k->out, SLICE_LIT("\r\n"));
				rs = p + 1;
			}
			k->cr = k->cr_held = false;
			bounce_walk_line(k, 0);
			if (empty && !k->in_body) {
				k->in_body = true;
				if (k->hdrs_only)
					k->done = true;
			}
			if (k->consumed >= k->limit)
				k->done = true;
			continue;
		}
		if (c == '\r') {
			k->cr = true;
			continue;
		}
		if (k->col >= BOUNCE_LINE_MAX) {
			/* too long: fold in the header, break in the body */
			bounce_v_push(k->out, slice_make(rs, (size_t)(p - rs)));
			rs = p;
			bounce_walk_break(k);
		}
		if (c >= 0x80)
			k->eightbit = true;
		if (k->pm_live) {
			if (k->pm < k->pat.len && (char)c == k->pat.ptr[k->pm]) {
				if (++k->pm == k->pat.len) {
					k->collide = true;
					k->pm_live = false;
				}
			} else {
				k->pm_live = false;
			}
		}
		k->col++;
	}
	/* i is where the walk stopped; a CR at the very end is held back */
	const char *end = s.ptr + i;
	if (k->cr && !k->cr_held && i == s.len && !k->done) {
		bounce_v_push(k->out, slice_make(rs, (size_t)(end - 1 - rs)));
		k->cr_held = true;
	} else {
		bounce_v_push(k->out, slice_make(rs, (size_t)(end - rs)));
	}
}

/* bounce_walk_end - finish the last line */
static void bounce_walk_end(struct bounce_walker *k)
{
	/* a CR at the very end was held back: it becomes a line end too */
	if (k->cr || k->col > 0)
		bounce_v_push(k->out, SLICE_LIT("\r\n"));
}

/* bounce_walk - the original (whole or headers) as repaired slices into
 * out; true when no line starts with pat */
static bool bounce_walk(const struct bounce_msg *m, bool hdrs_only, size_t limit, struct slice pat,
			struct bounce_v *out, bool *eightbit)
{
	struct bounce_walker k;

	memset(&k, 0, sizeof k);
	k.out = out;
	k.pat = pat;
	k.limit = limit;
	k.hdrs_only = hdrs_only;
	bounce_walk_line(&k, 0);
	for (size_t i = 0; i < m->norig && !k.done; i++)
		bounce_walk_slice(&k, m->orig[i]);
	bounce_walk_end(&k);
	*eightbit = k.eightbit;
	return !k.collide;
}

/* bounce_hex - v in lower-case hex */
static void bounce_hex(struct bounce_w *w, uint64_t v)
{
	char buf[16];
	size_t n = 0;

	do {
		buf[n++] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	while (n) {
		char c = buf[--n];
		bounce_w_put(w, &c, 1);
	}
}

/* bounce_keep - s with only the bytes in the set kept (for tokens and
 * host names in headers), at most max */
static struct slice bounce_keep(struct arena *a, struct slice s, const char *extra, size_t max)
{
	char *out = arena_alloc(a, s.len + 1);
	size_t n = 0;

	if (!out)
		return SLICE_NULL;
	for (size_t i = 0; i < s.len && n < max; i++) {
		char c = s.ptr[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    (c && strchr(extra, c)))
			out[n++] = c;
	}
	return slice_make(out, n);
}

/* bounce_action_name - RFC 3464 §2.3.3 */
static const char *bounce_action_name(enum bounce_action act)
{
	switch (act) {
	case BOUNCE_FAILED:
		return "failed";
	case BOUNCE_DELAYED:
		return "delayed";
	case BOUNCE_DELIVERED:
		return "delivered";
	case BOUNCE_RELAYED:
		return "relayed";
	case BOUNCE_EXPANDED:
		return "expanded";
	}
	return "failed";
}

/* bounce_action_text - the human phrase for the text part */
static const char *bounce_action_text(enum bounce_action act)
{
	switch (act) {
	case BOUNCE_FAILED:
		return "delivery failed permanently";
	case BOUNCE_DELAYED:
		return "delivery delayed, still being retried";
	case BOUNCE_DELIVERED:
		return "delivered";
	case BOUNCE_RELAYED:
		return "relayed to a system that sends no further notices";
	case BOUNCE_EXPANDED:
		return "delivered and expanded to further recipients";
	}
	return "";
}

/* bounce_text_part - the human-readable explanation */
static void bounce_text_part(struct bounce_w *w, struct arena *a, const struct bounce_msg *m,
			     struct slice host, bool failed, bool delayed, bool delivered, bool full)
{
	bounce_w_puts(w, "This is the mail system at host ");
	bounce_w_putsl(w, host);
	bounce_w_puts(w, ".\r\n\r\n");
	if (failed)
		bounce_w_puts(w, full ? "Your message could not be delivered to one or more recipients.\r\n"
					"It is attached below. The details follow.\r\n"
				      : "Your message could not be delivered to one or more recipients.\r\n"
					"Its header is attached below. The details follow.\r\n");
	else if (delayed)
		bounce_w_puts(w, "Your message has not been delivered yet to one or more\r\n"
				 "recipients. Delivery is still being retried; you do not\r\n"
				 "need to send it again.\r\n");
	else if (delivered)
		bounce_w_puts(w, "Your message was delivered to the recipients below,\r\n"
				 "as you asked to be told.\r\n");
	else
		bounce_w_puts(w, "Your message was relayed to the recipients below. The next\r\n"
				 "system may send no further notices about it.\r\n");
	for (size_t i = 0; i < m->nrcpt; i++) {
		const struct bounce_rcpt *r = &m->rcpt[i];
		const char *type;
		if (!bounce_rcpt_reported(r))
			continue;
		struct slice addr = bounce_addr(a, r->addr, &type);
		struct bounce_w t;
		bounce_w_init(&t, a);
		bounce_w_puts(&t, "<");
		bounce_w_putsl(&t, addr);
		bounce_w_puts(&t, ">: ");
		bounce_w_puts(&t, bounce_action_text(r->action));
		if (t.oom) {
			w->oom = true;
			return;
		}
		bounce_w_puts(w, "\r\n");
		bounce_fold(w, 0, bounce_w_slice(&t), "    ", false);
		if (r->diag.len) {
			struct slice mta = bounce_clean(a, r->remote_mta, BOUNCE_HOST_MAX);
			struct slice d = bounce_clean(a, r->diag, BOUNCE_DIAG_MAX);
			bounce_w_init(&t, a);
			if (mta.len) {
				bounce_w_puts(&t, "host ");
				bounce_w_putsl(&t, mta);
				bounce_w_puts(&t, " said: ");
			} else {
				bounce_w_puts(&t, "the reply was: ");
			}
			bounce_w_putsl(&t, d);
			if (t.oom) {
				w->oom = true;
				return;
			}
			bounce_w_puts(w, "    ");
			bounce_fold(w, 4, bounce_w_slice(&t), "    ", false);
		}
	}
}

/* bounce_orcpt - Original-Recipient from ORCPT (RFC 3461 §6.3 (d)): the
 * addr-type kept, the xtext decoded; non-ASCII values as utf-8 */
static void bounce_orcpt(struct bounce_w *w, struct arena *a, struct slice orcpt)
{
	const char *semi = memchr(orcpt.ptr, ';', orcpt.len);
	struct slice type = SLICE_LIT("rfc822"), val = orcpt;
	struct bounce_w t;

	if (semi) {
		type = bounce_keep(a, slice_make(orcpt.ptr, (size_t)(semi - orcpt.ptr)), "-._", 64);
		val = slice_make(semi + 1, orcpt.len - (size_t)(semi + 1 - orcpt.ptr));
	}
	val = bounce_xtext(a, val);
	bounce_w_init(&t, a);
	if (type.len && !slice_eq_nocase(type, SLICE_LIT("utf-8")) && bounce_ascii_addr(val)) {
		bounce_w_putsl(&t, type);
		bounce_w_puts(&t, "; ");
		bounce_w_putsl(&t, val);
	} else {
		bounce_w_puts(&t, "utf-8; ");
		if (val.len == 0)
			bounce_w_puts(&t, "\\x{20}");
		bounce_u8xtext(&t, val);
	}
	if (t.oom) {
		w->oom = true;
		return;
	}
	bounce_field(w, "Original-Recipient", bounce_w_slice(&t));
}

/* bounce_status_part - the message/delivery-status body */
static void bounce_status_part(struct bounce_w *w, struct arena *a, const struct bounce_msg *m,
			       struct slice host)
{
	bounce_field2(w, a, "Reporting-MTA", "dns; ", host);
	if (m->envid.len) {
		struct slice e = bounce_clean(a, bounce_xtext(a, m->envid), BOUNCE_DIAG_MAX);
		if (e.len)
			bounce_field(w, "Original-Envelope-Id", e);
	}
	if (m->arrival_date.len)
		bounce_field(w, "Arrival-Date", bounce_clean(a, m->arrival_date, 200));
	for (size_t i = 0; i < m->nrcpt; i++) {
		const struct bounce_rcpt *r = &m->rcpt[i];
		const char *type;
		char st[BOUNCE_STATUS_LEN];
		if (!bounce_rcpt_reported(r))
			continue;
		bounce_w_puts(w, "\r\n");
		if (r->orcpt.len)
			bounce_orcpt(w, a, r->orcpt);
		struct slice addr = bounce_addr(a, r->addr, &type);
		struct bounce_w t;
		bounce_w_init(&t, a);
		bounce_w_puts(&t, type);
		bounce_w_puts(&t, "; ");
		bounce_w_putsl(&t, addr);
		if (t.oom) {
			w->oom = true;
			return;
		}
		bounce_field(w, "Final-Recipient", bounce_w_slice(&t));
		bounce_field(w, "Action", slice_cstr(bounce_action_name(r->action)));
		if (bounce_status_ok(r->status)) {
			bounce_field(w, "Status", r->status);
		} else {
			bounce_status(r->action, false, NULL, st);
			bounce_field(w, "Status", slice_cstr(st));
		}
		struct slice mta = bounce_clean(a, r->remote_mta, BOUNCE_HOST_MAX);
		if (mta.len)
			bounce_field2(w, a, "Remote-MTA", "dns; ", mta);
		struct slice d = bounce_clean(a, r->diag, BOUNCE_DIAG_MAX);
		if (d.len)
			bounce_field2(w, a, "Diagnostic-Code", "smtp; ", d);
		if (r->last_attempt.len)
			bounce_field(w, "Last-Attempt-Date", bounce_clean(a, r->last_attempt, 200));
		if (r->action == BOUNCE_DELAYED && r->retry_until.len)
			bounce_field(w, "Will-Retry-Until", bounce_clean(a, r->retry_until, 200));
	}
}

/* bounce_build - the report for the selected recipients of m */
int bounce_build(const struct bounce_msg *m, struct arena *a, struct bounce_out *out)
{
	bool failed = false, delayed = false, delivered = false;
	size_t total = 0;

	memset(out, 0, sizeof *out);
	if (bounce_select(m->sender, m->rcpt, m->nrcpt, NULL) == 0)
		return RM_EINVAL;
	for (size_t i = 0; i < m->nrcpt; i++) {
		if (!bounce_rcpt_reported(&m->rcpt[i]))
			continue;
		failed |= m->rcpt[i].action == BOUNCE_FAILED;
		delayed |= m->rcpt[i].action == BOUNCE_DELAYED;
		delivered |= m->rcpt[i].action == BOUNCE_DELIVERED ||
			     m->rcpt[i].action == BOUNCE_EXPANDED;
	}
	for (size_t i = 0; i < m->norig; i++)
		total += m->orig[i].len;
	size_t limit = m->full_limit ? m->full_limit : BOUNCE_FULL_LIMIT_DEFAULT;
	bool full = failed && m->ret != SMTP_RET_HDRS && total <= limit;

	struct slice host = bounce_keep(a, m->hostname, "-._[]:", BOUNCE_HOST_MAX);
	struct slice token = bounce_keep(a, m->token, "", BOUNCE_TOKEN_MAX);
	if (host.len == 0)
		host = SLICE_LIT("localhost");
	if (token.len == 0)
		token = SLICE_LIT("0");

	/* the original first: its boundary must not appear in it */
	struct bounce_v orig;
	struct bounce_w bnd;
	bool eightbit = false, ok = false;
	for (unsigned attempt = 0; attempt < BOUNCE_TRIES && !ok; attempt++) {
		bounce_w_init(&bnd, a);
		bounce_w_puts(&bnd, "--=_rm_");
		bounce_w_putsl(&bnd, token);
		bounce_w_puts(&bnd, "_");
		bounce_hex(&bnd, m->arrival_us + attempt * 0x9e3779b97f4a7c15ull);
		memset(&orig, 0, sizeof orig);
		orig.a = a;
		if (bnd.oom)
			return RM_ENOMEM;
		ok = bounce_walk(m, !full, full ? SIZE_MAX : limit, bounce_w_slice(&bnd), &orig,
				 &eightbit);
		if (orig.oom)
			return RM_ENOMEM;
	}
	if (!ok)
		return RM_EPROTO;
	struct slice dash_b = bounce_w_slice(&bnd);            /* "--boundary" */
	struct slice b = slice_make(dash_b.ptr + 2, dash_b.len - 2);

	/* the message header and parts 1 and 2 */
	struct bounce_w w;
	bounce_w_init(&w, a);
	{
		struct bounce_w t;
		bounce_w_init(&t, a);
		bounce_w_puts(&t, "Mail Delivery System <MAILER-DAEMON@");
		bounce_w_putsl(&t, host);
		bounce_w_puts(&t, ">");
		if (t.oom)
			return RM_ENOMEM;
		bounce_field(&w, "From", bounce_w_slice(&t));
	}
	{
		struct bounce_w t;
		bounce_w_init(&t, a);
		bounce_w_puts(&t, "<");
		for (size_t i = 0; i < m->sender.len && !t.oom; i++) {
			unsigned char c = (unsigned char)m->sender.ptr[i];
			char o = (c < 0x21 || c == 0x7f) ? '?' : (char)c;
			bounce_w_put(&t, &o, 1);
		}
		bounce_w_puts(&t, ">");
		struct slice to = bounce_w_slice(&t);
		if (!smtp_utf8_valid(m->sender)) {
			/* not UTF-8 either: keep the header ASCII */
			to = bounce_clean(a, to, SIZE_MAX);
		}
		if (t.oom)
			return RM_ENOMEM;
		bounce_field(&w, "To", to);
	}
	bounce_field(&w, "Subject",
		     slice_cstr(failed	  ? "Undelivered Mail Returned to Sender"
				: delayed ? "Delayed Mail (still being retried)"
				: delivered ? "Successful Mail Delivery Report"
					    : "Relayed Mail Delivery Report"));
	if (m->date.len)
		bounce_field(&w, "Date", bounce_clean(a, m->date, 200));
	{
		struct bounce_w t;
		bounce_w_init(&t, a);
		bounce_w_puts(&t, "<");
		bounce_w_putsl(&t, token);
		bounce_w_puts(&t, ".");
		bounce_hex(&t, m->arrival_us);
		bounce_w_puts(&t, ".dsn@");
		bounce_w_putsl(&t, host);
		bounce_w_puts(&t, ">");
		if (t.oom)
			return RM_ENOMEM;
		bounce_field(&w, "Message-ID", bounce_w_slice(&t));
	}
	bounce_w_puts(&w, "Auto-Submitted: auto-replied\r\n"
			  "MIME-Version: 1.0\r\n"
			  "Content-Type: multipart/report; report-type=delivery-status;\r\n"
			  "\tboundary=\"");
	bounce_w_putsl(&w, b);
	bounce_w_puts(&w, "\"\r\n");
	if (eightbit)
		bounce_w_puts(&w, "Content-Transfer-Encoding: 8bit\r\n");
	bounce_w_puts(&w, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");
	bounce_w_putsl(&w, dash_b);
	bounce_w_puts(&w, "\r\nContent-Description: Notification\r\n"
			  "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
	bounce_text_part(&w, a, m, host, failed, delayed, delivered, full);
	bounce_w_puts(&w, "\r\n");
	bounce_w_putsl(&w, dash_b);
	bounce_w_puts(&w, "\r\nContent-Description: Delivery report\r\n"
			  "Content-Type: message/delivery-status\r\n\r\n");
	bounce_status_part(&w, a, m, host);
	bounce_w_puts(&w, "\r\n");
	bounce_w_putsl(&w, dash_b);
	if (full)
		bounce_w_puts(&w, "\r\nContent-Description: Undelivered Message\r\n"
				  "Content-Type: message/rfc822\r\n");
	else
		bounce_w_puts(&w, "\r\nContent-Description: Message Headers\r\n"
				  "Content-Type: text/rfc822-headers\r\n");
	if (eightbit)
		bounce_w_puts(&w, "Content-Transfer-Encoding: 8bit\r\n");
	bounce_w_puts(&w, "\r\n");
	if (w.oom)
		return RM_ENOMEM;

	struct bounce_w tail;
	bounce_w_init(&tail, a);
	bounce_w_puts(&tail, "\r\n");
	bounce_w_putsl(&tail, dash_b);
	bounce_w_puts(&tail, "--\r\n");
	if (tail.oom)
		return RM_ENOMEM;

	struct bounce_v v;
	memset(&v, 0, sizeof v);
	v.a = a;
	bounce_v_push(&v, bounce_w_slice(&w));
	for (size_t i = 0; i < orig.n; i++)
		bounce_v_push(&v, orig.v[i]);
	bounce_v_push(&v, bounce_w_slice(&tail));
	if (v.oom)
		return RM_ENOMEM;
	out->v = v.v;
	out->nv = v.n;
	out->len = v.len;
	out->full = full;
	return RM_OK;
}
