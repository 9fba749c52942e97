/* smtp_addr.c - SMTP paths, domains, address literals and ESMTP parameters.
 *
 * Purpose: the RFC 5321 §4.1.2 grammar for Reverse-path / Forward-path with
 * RFC 6531 UTF-8, the §4.1.3 address literals, and the MAIL and RCPT
 * parameters of RFC 1870, 6152, 3030, 6531, 3461 and 4954.
 * Invariants: every scanner takes [p, end) and never reads at or past end;
 * results are slices of the input; lengths are checked after the syntax so
 * a long but well-formed path is TOO_LONG, not SYNTAX. No allocation, no
 * state.
 * Threads: any; pure.
 */
#include "core/smtp_addr.h"

#include "core/swar.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* Byte classes, one table lookup per byte on the hot path. The table is
 * computed by the compiler from the grammar's definitions below. */
#define ACL_ATEXT 0x01    /* RFC 5322 atext, ASCII part */
#define ACL_LETDIG 0x02   /* Let-dig */
#define ACL_QTEXT 0x04    /* qtextSMTP, ASCII part: %d32-33 / %d35-91 / %d93-126 */
#define ACL_DCONTENT 0x08 /* dcontent: %d33-90 / %d94-126 */
#define ACL_XCHAR 0x10    /* xtext's xchar: %d33-42 / %d44-60 / %d62-126 */
#define ACL_VALUE 0x20    /* esmtp-value, ASCII part: %d33-60 / %d62-126 */
#define ACL_KEY 0x40      /* esmtp-keyword after its first byte: Let-dig / "-" */
#define ACL_HEX 0x80      /* HEXDIG, either case (IPv6-hex) */

#define ACL_IS_LETDIG(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z') || ((c) >= '0' && (c) <= '9'))
#define ACL_IS_ATEXT(c)                                                                         \
	(ACL_IS_LETDIG(c) || (c) == '!' || (c) == '#' || (c) == '$' || (c) == '%' || (c) == '&' || \
	 (c) == '\'' || (c) == '*' || (c) == '+' || (c) == '-' || (c) == '/' || (c) == '=' ||      \
	 (c) == '?' || (c) == '^' || (c) == '_' || (c) == '`' || (c) == '{' || (c) == '|' ||       \
	 (c) == '}' || (c) == '~')
#define ACL_PRINT(c) ((c) >= 33 && (c) <= 126)
#define ACL(c)                                                                                  \
	((ACL_IS_ATEXT(c) ? ACL_ATEXT : 0) | (ACL_IS_LETDIG(c) ? ACL_LETDIG | ACL_KEY : 0) |        \
	 ((c) == '-' ? ACL_KEY : 0) |                                                             \
	 (((c) == ' ' || ACL_PRINT(c)) && (c) != '"' && (c) != '\\' ? ACL_QTEXT : 0) |             \
	 (ACL_PRINT(c) && (c) != '[' && (c) != '\\' && (c) != ']' ? ACL_DCONTENT : 0) |            \
	 (ACL_PRINT(c) && (c) != '+' && (c) != '=' ? ACL_XCHAR : 0) |                              \
	 (ACL_PRINT(c) && (c) != '=' ? ACL_VALUE : 0) |                                            \
	 (((c) >= '0' && (c) <= '9') || ((c) >= 'a' && (c) <= 'f') || ((c) >= 'A' && (c) <= 'F')  \
		  ? ACL_HEX                                                                        \
		  : 0))
#define ACL4(b) ACL(b), ACL((b) + 1), ACL((b) + 2), ACL((b) + 3)
#define ACL16(b) ACL4(b), ACL4((b) + 4), ACL4((b) + 8), ACL4((b) + 12)
#define ACL64(b) ACL16(b), ACL16((b) + 16), ACL16((b) + 32), ACL16((b) + 48)
static const uint8_t addr_cls[256] = { ACL64(0), ACL64(64), ACL64(128), ACL64(192) };

/* addr_is - does byte c belong to class cls */
static inline bool addr_is(char c, unsigned cls)
{
	return (addr_cls[(unsigned char)c] & cls) != 0;
}

/* addr_digit - DIGIT */
static inline bool addr_digit(unsigned char c)
{
	return (unsigned)(c - '0') < 10;
}

/* addr_hexval - the value of an upper-case hex digit, -1 if it is none
 * (xtext's hexchar is upper case only, RFC 3461 §4) */
static inline int addr_hexval(unsigned char c)
{
	if (addr_digit(c))
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* addr_utf8_seq - length of the well-formed UTF-8 sequence for a non-ASCII
 * lead byte at p[0..n) (n >= 1), 0 if malformed (RFC 3629 §4) */
static size_t addr_utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xBF;
	size_t len;

	if (c < 0xC2) /* ASCII is not asked for; 80-C1 are continuation or overlong */
		return 0;
	if (c < 0xE0) {
		len = 2;
	} else if (c < 0xF0) {
		len = 3;
		if (c == 0xE0)
			lo = 0xA0; /* overlong */
		else if (c == 0xED)
			hi = 0x9F; /* surrogates */
	} else if (c < 0xF5) {
		len = 4;
		if (c == 0xF0)
			lo = 0x90; /* overlong */
		else if (c == 0xF4)
			hi = 0x8F; /* past U+10FFFF */
	} else {
		return 0;
	}
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if ((p[i] & 0xC0) != 0x80)
			return 0;
	return len;
}

/* addr_utf8_at - UTF-8 sequence length at p if it is non-ASCII and well formed */
static inline size_t addr_utf8_at(const char *p, const char *end)
{
	return addr_utf8_seq((const unsigned char *)p, (size_t)(end - p));
}

/* smtp_utf8_valid - s is well-formed UTF-8 */
bool smtp_utf8_valid(struct slice s)
{
	const char *p = s.ptr, *end = s.ptr + s.len;

	while (p < end) {
		size_t n = 1;
		if ((unsigned char)*p >= 0x80 && (n = addr_utf8_at(p, end)) == 0)
			return false;
		p += n;
	}
	return true;
}

/* addr_local_scan - Local-part (Dot-string / Quoted-string) at p; the end of
 * it or NULL; *utf8 set when it holds UTF8-non-ascii */
static const char *addr_local_scan(const char *p, const char *end, bool *utf8)
{
	size_t n;

	if (p < end && *p == '"') {
		for (p++; p < end; p++) {
			unsigned char c = (unsigned char)*p;
			if (c == '"')
				return p + 1;
			if (c == '\\') { /* quoted-pairSMTP: %d92 %d32-126 */
				if (end - p < 2 || (unsigned char)p[1] < 32 || (unsigned char)p[1] > 126)
					return NULL;
				p++;
			} else if (c >= 0x80) {
				if ((n = addr_utf8_at(p, end)) == 0)
					return NULL;
				*utf8 = true;
				p += n - 1;
			} else if (!addr_is((char)c, ACL_QTEXT)) {
				return NULL;
			}
		}
		return NULL; /* no closing quote */
	}
	for (;;) { /* Atom *("." Atom) */
		const char *atom = p;
		while (p < end) {
			unsigned char c = (unsigned char)*p;
			if (addr_is((char)c, ACL_ATEXT)) {
				p++;
			} else if (c >= 0x80) {
				if ((n = addr_utf8_at(p, end)) == 0)
					return NULL;
				*utf8 = true;
				p += n;
			} else {
				break;
			}
		}
		if (p == atom)
			return NULL;
		if (p == end || *p != '.')
			return p;
		p++;
	}
}

/* addr_domain_scan - sub-domain *("." sub-domain) at p; the end of it or
 * NULL. An LDH label starts and ends with Let-dig (Ldh-str may not end in
 * "-") and has at most 63 octets; a U-label (RFC 6531) may also hold
 * well-formed UTF8-non-ascii when allow_utf8. */
static const char *addr_domain_scan(const char *p, const char *end, bool allow_utf8, bool *utf8)
{
	for (;;) {
		const char *label = p;
		bool u = false;
		size_t n;
		for (;;) { /* runs of Let-dig / "-" (ACL_KEY), then UTF-8 */
			while (p < end && addr_is(*p, ACL_KEY))
				p++;
			if (p == end || (unsigned char)*p < 0x80 || !allow_utf8 ||
			    (n = addr_utf8_at(p, end)) == 0)
				break;
			p += n;
			u = true;
		}
		if (p == label || *label == '-' || p[-1] == '-' || (!u && p - label > 63))
			return NULL;
		*utf8 |= u;
		if (p == end || *p != '.')
			return p;
		p++;
	}
}

/* addr_ipv4_valid - IPv4-address-literal: Snum 3("." Snum), Snum 0-255 in
 * 1*3DIGIT */
static bool addr_ipv4_valid(const char *p, const char *end)
{
	for (int part = 0; part < 4; part++) {
		unsigned v = 0;
		int digits = 0;
		if (part > 0) {
			if (p == end || *p != '.')
				return false;
			p++;
		}
		while (p < end && addr_digit((unsigned char)*p) && digits < 3) {
			v = v * 10 + (unsigned)(*p - '0');
			p++;
			digits++;
		}
		if (digits == 0 || v > 255)
			return false;
	}
	return p == end;
}

/* addr_ipv6_valid - IPv6-addr of RFC 5321 §4.1.3: IPv6-full, IPv6-comp,
 * IPv6v4-full, IPv6v4-comp. "::" stands for at least two groups, so at most
 * six groups (an IPv4 tail counting as two) may stand beside it. */
static bool addr_ipv6_valid(const char *p, const char *end)
{
	int groups = 0;
	bool dcolon = false;

	if (end - p >= 2 && p[0] == ':' && p[1] == ':') {
		dcolon = true;
		p += 2;
		if (p == end)
			return true;
	}
	for (;;) {
		const char *g = p;
		while (p < end && addr_is(*p, ACL_HEX))
			p++;
		if (p < end && *p == '.') { /* an IPv4 tail ends the address */
			if (!addr_ipv4_valid(g, end))
				return false;
			groups += 2;
			break;
		}
		if (p == g || p - g > 4)
			return false;
		groups++;
		if (p == end)
			break;
		if (*p != ':' || ++p == end)
			return false;
		if (*p == ':') {
			if (dcolon)
				return false;
			dcolon = true;
			if (++p == end)
				break;
		}
	}
	return dcolon ? groups <= 6 : groups == 8;
}

/* addr_ldh_valid - Ldh-str: *( ALPHA / DIGIT / "-" ) Let-dig */
static bool addr_ldh_valid(const char *p, const char *end)
{
	if (p == end || end[-1] == '-')
		return false;
	for (; p < end; p++)
		if (!addr_is(*p, ACL_LETDIG) && *p != '-')
			return false;
	return true;
}

/* addr_literal_scan - address-literal "[" ... "]" at p (p[0] is "["); the
 * end of it or NULL */
static const char *addr_literal_scan(const char *p, const char *end)
{
	const char *in = p + 1, *close, *colon;

	close = memchr(in, ']', (size_t)(end - in));
	if (!close)
		return NULL;
	if (addr_ipv4_valid(in, close))
		return close + 1;
	colon = memchr(in, ':', (size_t)(close - in));
	if (!colon)
		return NULL;
	if (slice_eq_nocase(slice_make(in, (size_t)(colon - in)), SLICE_LIT("IPv6")))
		return addr_ipv6_valid(colon + 1, close) ? close + 1 : NULL;
	/* General-address-literal: Standardized-tag ":" 1*dcontent */
	if (!addr_ldh_valid(in, colon) || colon + 1 == close)
		return NULL;
	for (const char *c = colon + 1; c < close; c++)
		if (!addr_is(*c, ACL_DCONTENT))
			return NULL;
	return close + 1;
}

/* smtp_domain_valid - a Domain or an address literal, all of d */
bool smtp_domain_valid(struct slice d, bool allow_utf8)
{
	const char *end = d.ptr + d.len;
	bool utf8 = false;

	if (d.len == 0 || d.len > SMTP_DOMAIN_MAX)
		return false;
	if (d.ptr[0] == '[')
		return addr_literal_scan(d.ptr, end) == end;
	return addr_domain_scan(d.ptr, end, allow_utf8, &utf8) == end;
}

#ifdef __SSE2__
/* The common path, "<" Dot-string "@" Domain ">" in ASCII, is checked a
 * 16-byte block at a time: each part's class, dot and hyphen bytes become
 * bit masks, and the dot-atom and label rules are a few operations on them.
 * The byte-wise scanners below cost a mispredicted loop exit per atom and
 * per label, which was most of a path's time. */

/* addr_load16 - the 16 bytes at p, or, when fewer remain before end, the 16
 * that end at end with *skip the number of them before p; false if [base,
 * end) holds fewer than 16 bytes. Never reads outside [base, end). */
static inline bool addr_load16(const char *base, const char *p, const char *end, __m128i *v,
			       unsigned *skip)
{
	if (end - p >= 16) {
		*v = _mm_loadu_si128((const __m128i *)(const void *)p);
		*skip = 0;
		return true;
	}
	if (end - base < 16)
		return false;
	*v = _mm_loadu_si128((const __m128i *)(const void *)(end - 16));
	*skip = (unsigned)(16 - (end - p));
	return true;
}

/* addr_in16 - mask of the bytes of v in [lo, hi] (both ASCII: bytes past
 * 0x7F are negative and fall outside) */
static inline __m128i addr_in16(__m128i v, char lo, char hi)
{
	return _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8((char)(lo - 1))),
			     _mm_cmplt_epi8(v, _mm_set1_epi8((char)(hi + 1))));
}

/* addr_eq16 - mask of the bytes of v equal to c */
static inline __m128i addr_eq16(__m128i v, char c)
{
	return _mm_cmpeq_epi8(v, _mm_set1_epi8(c));
}

/* addr_dotatom16 - bit mask of the Dot-string bytes (atext / ".") of v */
static inline unsigned addr_dotatom16(__m128i v)
{
	__m128i spec = _mm_or_si128(addr_eq16(v, '"'), addr_in16(v, '(', ')'));

	spec = _mm_or_si128(spec, _mm_or_si128(addr_eq16(v, ','), addr_in16(v, ':', '<')));
	spec = _mm_or_si128(spec, _mm_or_si128(addr_eq16(v, '>'), addr_eq16(v, '@')));
	spec = _mm_or_si128(spec, addr_in16(v, '[', ']'));
	return (unsigned)_mm_movemask_epi8(_mm_andnot_si128(spec, addr_in16(v, '!', '~')));
}

/* addr_ldh16 - bit mask of the Domain bytes (Let-dig / "-" / ".") of v */
static inline unsigned addr_ldh16(__m128i v)
{
	__m128i alpha = addr_in16(_mm_or_si128(v, _mm_set1_epi8(0x20)), 'a', 'z');

	return (unsigned)_mm_movemask_epi8(
		_mm_or_si128(_mm_or_si128(alpha, addr_in16(v, '0', '9')), addr_in16(v, '-', '.')));
}

/* addr_part16 - the length of the run of Dot-string (domain false) or Domain
 * (domain true) bytes at p, under 64, with the masks of its dots and
 * hyphens; -1 if the run reaches end or 64 bytes, or [base, end) is short. */
static inline __attribute__((always_inline)) int addr_part16(const char *base, const char *p, const char *end, bool domain,
			      uint64_t *dots, uint64_t *hyphens)
{
	uint64_t d = 0, h = 0;

	for (unsigned off = 0; off < 64; off += 16) {
		__m128i v;
		unsigned skip, ok, stop, n = (unsigned)(end - p) - off;
		if (n == 0 || !addr_load16(base, p + off, end, &v, &skip))
			return -1;
		ok = (domain ? addr_ldh16(v) : addr_dotatom16(v)) >> skip;
		n = n < 16 ? n : 16;
		stop = ~ok & ((1u << n) - 1);
		if (stop)
			n = (unsigned)__builtin_ctz(stop);
		d |= (uint64_t)(((unsigned)_mm_movemask_epi8(addr_eq16(v, '.')) >> skip) &
				((1u << n) - 1))
		     << off;
		if (domain)
			h |= (uint64_t)(((unsigned)_mm_movemask_epi8(addr_eq16(v, '-')) >> skip) &
					((1u << n) - 1))
			     << off;
		if (!stop && n < 16) /* the run reaches end */
			return -1;
		if (stop) {
			if (off + n >= 64)
				return -1;
			*dots = d;
			*hyphens = h;
			return (int)(off + n);
		}
	}
	return -1;
}

/* addr_path_fast - the common path at mbox (just after "<"): an ASCII
 * Dot-string "@" an ASCII Domain ">", then SP or the end, each part under
 * 64 octets. False (and nothing written) for anything else: quoted or UTF-8
 * local parts, U-labels, literals, source routes, Postmaster, long parts and
 * errors all go to the byte-wise scanners, which decide. */
static inline bool addr_path_fast(const char *base, const char *mbox, const char *end,
				  struct smtp_path *out, struct slice *rest)
{
	uint64_t d, h, start, last;
	const char *at, *dom, *gt;
	int n;

	/* Dot-string: no dot first, last or after a dot */
	n = addr_part16(base, mbox, end, false, &d, &h);
	if (n <= 0 || mbox[n] != '@' || (d & ((d << 1) | 1 | (1ull << (n - 1)))))
		return false;
	at = mbox + n;
	dom = at + 1;
	/* Domain: no empty label, no label starting or ending with "-"
	 * (labels are under 64 octets as the whole is) */
	n = addr_part16(base, dom, end, true, &d, &h);
	if (n <= 0 || dom[n] != '>')
		return false;
	start = (d << 1) | 1;
	last = 1ull << (n - 1);
	if ((d & (start | last)) | (h & (start | (d >> 1) | last)))
		return false;
	gt = dom + n;
	if (gt + 1 < end && gt[1] != ' ')
		return false;
	*out = (struct smtp_path){
		.mailbox = slice_make(mbox, (size_t)(gt - mbox)),
		.local = slice_make(mbox, (size_t)(at - mbox)),
		.domain = slice_make(dom, (size_t)n),
	};
	*rest = slice_make(gt + 1, (size_t)(end - gt - 1));
	return true;
}
#else
/* addr_path_fast - without SSE2 every path takes the byte-wise scanners */
static inline bool addr_path_fast(const char *base, const char *mbox, const char *end,
				  struct smtp_path *out, struct slice *rest)
{
	(void)base, (void)mbox, (void)end, (void)out, (void)rest;
	return false;
}
#endif

/* smtp_path_parse - parse a path at the start of in */
enum smtp_addr_err smtp_path_parse(struct slice in, bool allow_null, struct smtp_path *out,
				   struct slice *rest)
{
	const char *p = in.ptr, *end = in.ptr + in.len, *open, *mbox, *at = NULL;
	bool utf8 = false, ignored = false;

	*out = (struct smtp_path){ .mailbox = SLICE_NULL };
	*rest = SLICE_NULL;
	if (p < end && *p == ' ')
		p++;
	if (p == end || *p != '<')
		return SMTP_ADDR_SYNTAX;
	open = p++;
	if (p < end && *p == '>') {
		p++;
		if (p < end && *p != ' ')
			return SMTP_ADDR_SYNTAX;
		if (!allow_null)
			return SMTP_ADDR_NULL_RCPT;
		out->null = true;
		out->mailbox = out->local = out->domain = slice_make(open + 1, 0);
		*rest = slice_make(p, (size_t)(end - p));
		return SMTP_ADDR_OK;
	}
	if (addr_path_fast(in.ptr, p, end, out, rest))
		return SMTP_ADDR_OK;
	if (p < end && *p == '@') { /* A-d-l ":" - accepted, then ignored */
		for (;;) {
			p = addr_domain_scan(p + 1, end, true, &ignored);
			if (!p)
				return SMTP_ADDR_SYNTAX;
			if (end - p < 2 || p[0] != ',' || p[1] != '@')
				break;
			p++;
		}
		if (p == end || *p != ':')
			return SMTP_ADDR_SYNTAX;
		p++;
	}
	mbox = p;
	p = addr_local_scan(p, end, &utf8);
	if (!p)
		return SMTP_ADDR_SYNTAX;
	if (p < end && *p == '@') {
		at = p++;
		if (p < end && *p == '[') {
			p = addr_literal_scan(p, end);
			out->literal = true;
		} else {
			p = addr_domain_scan(p, end, true, &utf8);
		}
		if (!p)
			return SMTP_ADDR_SYNTAX;
	} else if (!allow_null && mbox == open + 1 &&
		   slice_eq_nocase(slice_make(mbox, (size_t)(p - mbox)), SLICE_LIT("Postmaster"))) {
		out->postmaster = true; /* RFC 5321 §4.1.1.3 "<Postmaster>" */
	} else {
		return SMTP_ADDR_SYNTAX;
	}
	if (p == end || *p != '>')
		return SMTP_ADDR_SYNTAX;
	out->mailbox = slice_make(mbox, (size_t)(p - mbox));
	out->local = slice_make(mbox, (size_t)((at ? at : p) - mbox));
	out->domain = at ? slice_make(at + 1, (size_t)(p - at - 1)) : slice_make(p, 0);
	out->utf8 = utf8;
	p++;
	if (p < end && *p != ' ')
		return SMTP_ADDR_SYNTAX;
	if (out->local.len > SMTP_LOCAL_MAX || out->domain.len > SMTP_DOMAIN_MAX ||
	    (size_t)(p - open) > SMTP_PATH_MAX)
		return SMTP_ADDR_TOO_LONG;
	*rest = slice_make(p, (size_t)(end - p));
	return SMTP_ADDR_OK;
}

/* smtp_mailbox_domain - the domain of a mailbox as written */
struct slice smtp_mailbox_domain(struct slice mailbox)
{
	const char *end = mailbox.ptr + mailbox.len;
	bool utf8 = false;
	const char *p = addr_local_scan(mailbox.ptr, end, &utf8);

	if (!p || p == end || *p != '@')
		return slice_make(end, 0);
	return slice_make(p + 1, (size_t)(end - p - 1));
}

/* smtp_domain_lower - a lower-cased, NUL-terminated copy of a domain */
int smtp_domain_lower(struct slice domain, char *buf, size_t cap, size_t *len)
{
	if (cap < domain.len + 1)
		return RM_ENOMEM;
	for (size_t i = 0; i < domain.len; i++)
		buf[i] = ascii_lower(domain.ptr[i]);
	buf[domain.len] = '\0';
	*len = domain.len;
	return RM_OK;
}

/* addr_xtext_check - xtext (RFC 3461 §4); printable: every decoded byte is
 * printable ASCII (%d32-126); utf8: well-formed UTF-8 is allowed as well
 * (RFC 6533 utf-8-addr-unitext) */
static bool addr_xtext_check(struct slice x, bool printable, bool utf8)
{
	const char *p = x.ptr, *end = x.ptr + x.len;

	while (p < end) {
		unsigned char c = (unsigned char)*p;
		size_t n;
		if (c == '+') {
			int hi, lo;
			if (end - p < 3 || (hi = addr_hexval((unsigned char)p[1])) < 0 ||
			    (lo = addr_hexval((unsigned char)p[2])) < 0)
				return false;
			if (printable && (hi * 16 + lo < 32 || hi * 16 + lo > 126))
				return false;
			p += 3;
		} else if (c >= 33 && c <= 126 && c != '=') {
			p++;
		} else if (c >= 0x80 && utf8 && (n = addr_utf8_at(p, end)) != 0) {
			p += n;
		} else {
			return false;
		}
	}
	return true;
}

/* smtp_xtext_valid - RFC 3461 §4 xtext */
bool smtp_xtext_valid(struct slice x)
{
	return addr_xtext_check(x, false, false);
}

/* smtp_xtext_decode - decode xtext into a caller buffer */
int smtp_xtext_decode(struct slice x, char *out, size_t cap, size_t *len)
{
	size_t n = 0;

	if (!smtp_xtext_valid(x))
		return RM_EPROTO;
	for (size_t i = 0; i < x.len; n++) {
		if (n == cap)
			return RM_ENOMEM;
		if (x.ptr[i] == '+') {
			out[n] = (char)(addr_hexval((unsigned char)x.ptr[i + 1]) * 16 +
					addr_hexval((unsigned char)x.ptr[i + 2]));
			i += 3;
		} else {
			out[n] = x.ptr[i++];
		}
	}
	*len = n;
	return RM_OK;
}

/* One "KEY[=VALUE]" of a parameter list. */
struct addr_param {
	struct slice all; /* KEY[=VALUE] */
	struct slice key;
	struct slice val; /* empty when there is no "=" */
	bool has_val;
};

/* addr_value_span - the first byte at or after p that is not an ASCII
 * esmtp-value byte (%d33-60 / %d62-126), or end. Eight bytes a step while
 * eight remain (core/swar.h): a byte is flagged if it is below 33, above
 * 126 or "=". The tail goes through the class table. */
static inline const char *addr_value_span(const char *p, const char *end)
{
	while (end - p >= 8) {
		uint64_t x = swar_load(p);
		uint64_t bad = swar_below(x, 33) | swar_at_least(x, 127) | swar_eq(x, '=');
		if (bad)
			return p + swar_first(bad);
		p += 8;
	}
	while (p < end && addr_is(*p, ACL_VALUE))
		p++;
	return p;
}

/* addr_key_valid - esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
static bool addr_key_valid(struct slice key)
{
	if (key.len == 0 || !addr_is(key.ptr[0], ACL_LETDIG))
		return false;
	for (size_t i = 1; i < key.len; i++)
		if (!addr_is(key.ptr[i], ACL_KEY))
			return false;
	return true;
}

/* addr_param_next - the next parameter of *in; 1 got one, 0 at the end,
 * -1 malformed (pm->all still names it). Separators are runs of SP. One
 * pass: a keyword of esmtp-value bytes other than UTF-8 (its esmtp-keyword
 * syntax is left to addr_key_valid), then optionally "=" esmtp-value,
 * 1*(%d33-60 / %d62-126 / UTF8-non-ascii) (RFC 6531 §3.3). */
static inline int addr_param_next(struct slice *in, struct addr_param *pm)
{
	const char *p = in->ptr, *end = in->ptr + in->len, *start, *eq = NULL;
	int rc = 1;

	if (p == end)
		return 0;
	if (*p != ' ') { /* the path or the previous value ended without SP */
		rc = -1;
	} else {
		while (p < end && *p == ' ')
			p++;
		if (p == end)
			return 0;
	}
	start = p;
	if (rc > 0) {
		/* The keyword is only delimited here: its bytes are checked by
		 * addr_key_valid when no keyword matches (a match implies them). */
		p = addr_value_span(p, end);
		if (p < end && *p == '=') {
			const char *v = eq = p++;
			size_t n;
			for (;;) {
				p = addr_value_span(p, end);
				if (p == end || (unsigned char)*p < 0x80 || (n = addr_utf8_at(p, end)) == 0)
					break;
				p += n;
			}
			if (p == v + 1)
				rc = -1;
		}
		if (p < end && *p != ' ')
			rc = -1;
	} else {
		rc = -1;
	}
	while (p < end && *p != ' ') /* a malformed parameter runs to the next SP */
		p++;
	*in = slice_make(p, (size_t)(end - p));
	pm->all = slice_make(start, (size_t)(p - start));
	pm->key = slice_make(start, (size_t)((eq ? eq : p) - start));
	pm->has_val = eq != NULL;
	pm->val = eq ? slice_make(eq + 1, (size_t)(p - eq - 1)) : slice_make(p, 0);
	return rc;
}

/* addr_fold4 - four bytes at p as a little-endian word with bit 0x20 set in
 * each (ASCII letters folded to lower case). Exact against a target of
 * lower-case letters and digits for bytes already checked to be keyword or
 * value bytes: only upper-case letters lack that bit among them, the other
 * bytes it changes become control characters or punctuation no target holds.
 * Built from bytes so it reads nothing past p[3] and needs no alignment. */
static inline uint32_t addr_fold4(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;

	return ((uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24) |
	       0x20202020u;
}

/* ADDR_TAG4 - the addr_fold4 word of four lower-case characters */
#define ADDR_TAG4(a, b, c, d) \
	((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)

/* addr_keyword - index of key in names (case-insensitive), -1 if absent */
static int addr_keyword(struct slice key, const struct slice *names, int count)
{
	for (int i = 0; i < count; i++)
		if (slice_eq_nocase(key, names[i]))
			return i;
	return -1;
}

/* addr_size_parse - size-value = 1*20DIGIT (RFC 1870), saturating */
static bool addr_size_parse(struct slice v, uint64_t *out)
{
	uint64_t n = 0;

	if (v.len == 0 || v.len > 20)
		return false;
	for (size_t i = 0; i < v.len; i++) {
		unsigned d = (unsigned)((unsigned char)v.ptr[i] - '0');
		if (d > 9)
			return false;
		/* 19 digits always fit; only a 20th can overflow (no division
		 * per digit: it was the costliest part of a MAIL line) */
		if (i < 19)
			n = n * 10 + d;
		else if (__builtin_mul_overflow(n, 10u, &n) || __builtin_add_overflow(n, d, &n))
			n = UINT64_MAX;
	}
	*out = n;
	return true;
}

enum { MAIL_SIZE, MAIL_BODY, MAIL_SMTPUTF8, MAIL_RET, MAIL_ENVID, MAIL_AUTH };

/* addr_mail_keyword - the MAIL parameter a keyword names, -1 if none.
 * Dispatch on the length, then one folded word compare per candidate. */
static inline int addr_mail_keyword(struct slice key)
{
	const char *k = key.ptr;

	switch (key.len) {
	case 3:
		return ((uint32_t)((unsigned char)k[0] | (unsigned char)k[1] << 8 |
				   (unsigned char)k[2] << 16) | 0x202020u) == ADDR_TAG4('r', 'e', 't', 0)
			       ? MAIL_RET
			       : -1;
	case 4:
		switch (addr_fold4(k)) {
		case ADDR_TAG4('s', 'i', 'z', 'e'):
			return MAIL_SIZE;
		case ADDR_TAG4('b', 'o', 'd', 'y'):
			return MAIL_BODY;
		case ADDR_TAG4('a', 'u', 't', 'h'):
			return MAIL_AUTH;
		default:
			return -1;
		}
	case 5:
		return addr_fold4(k) == ADDR_TAG4('e', 'n', 'v', 'i') && ((unsigned char)k[4] | 0x20) == 'd'
			       ? MAIL_ENVID
			       : -1;
	case 8:
		return addr_fold4(k) == ADDR_TAG4('s', 'm', 't', 'p') &&
				       addr_fold4(k + 4) == ADDR_TAG4('u', 't', 'f', '8')
			       ? MAIL_SMTPUTF8
			       : -1;
	default:
		return -1;
	}
}

/* addr_body_value - BODY= 7BIT / 8BITMIME / BINARYMIME, any case */
static inline enum smtp_body addr_body_value(struct slice v)
{
	const char *p = v.ptr;

	if (v.len == 4 && addr_fold4(p) == ADDR_TAG4('7', 'b', 'i', 't'))
		return SMTP_BODY_7BIT;
	if (v.len == 8 && addr_fold4(p) == ADDR_TAG4('8', 'b', 'i', 't') &&
	    addr_fold4(p + 4) == ADDR_TAG4('m', 'i', 'm', 'e'))
		return SMTP_BODY_8BITMIME;
	if (v.len == 10 && addr_fold4(p) == ADDR_TAG4('b', 'i', 'n', 'a') &&
	    addr_fold4(p + 4) == ADDR_TAG4('r', 'y', 'm', 'i') && (p[8] | 0x20) == 'm' &&
	    (p[9] | 0x20) == 'e')
		return SMTP_BODY_BINARYMIME;
	return SMTP_BODY_UNSPEC;
}

/* addr_ret_value - RET= FULL / HDRS, any case */
static inline enum smtp_ret addr_ret_value(struct slice v)
{
	if (v.len != 4)
		return SMTP_RET_UNSPEC;
	switch (addr_fold4(v.ptr)) {
	case ADDR_TAG4('f', 'u', 'l', 'l'):
		return SMTP_RET_FULL;
	case ADDR_TAG4('h', 'd', 'r', 's'):
		return SMTP_RET_HDRS;
	default:
		return SMTP_RET_UNSPEC;
	}
}

/* Names one parameter's keyword (-1 if unknown; a match must imply a
 * well-formed esmtp-keyword, as the folded compares do); checks and stores its
 * value (false if malformed). */
typedef int (*addr_keyword_fn)(struct slice key);
typedef bool (*addr_value_fn)(int kw, const struct addr_param *pm, void *out);

/* addr_params_parse - the parameter loop shared by MAIL and RCPT: keyword
 * lookup, duplicates, then value(kw). Always inlined into its two callers so
 * that keyword() and value() become direct, inlined code: the indirect calls
 * and the table walk were most of a MAIL line's cost. */
static inline __attribute__((always_inline)) enum smtp_addr_err
addr_params_parse(struct slice in, addr_keyword_fn keyword, addr_value_fn value, unsigned seen,
		  void *out, struct slice *bad)
{
	struct addr_param pm;
	int rc, kw;

	enum smtp_addr_err err = SMTP_ADDR_OK;

	/* *bad is written only on error: storing pm.all every turn and reading
	 * it back at once costs a store-forwarding stall per parameter. */
	while (err == SMTP_ADDR_OK && (rc = addr_param_next(&in, &pm)) != 0) {
		if (rc < 0)
			err = SMTP_ADDR_PARAM_SYNTAX;
		else if ((kw = keyword(pm.key)) < 0)
			err = addr_key_valid(pm.key) ? SMTP_ADDR_PARAM_UNKNOWN : SMTP_ADDR_PARAM_SYNTAX;
		else if (seen & (1u << kw))
			err = SMTP_ADDR_PARAM_DUP;
		else if (seen |= 1u << kw, !value(kw, &pm, out))
			err = SMTP_ADDR_PARAM_SYNTAX;
	}
	*bad = err == SMTP_ADDR_OK ? SLICE_NULL : pm.all;
	return err;
}

/* addr_mail_value - check and store one MAIL parameter's value */
static inline bool addr_mail_value(int kw, const struct addr_param *pm, void *outp)
{
	struct smtp_mail_params *out = outp;
	struct slice v = pm->val;

	if (kw == MAIL_SMTPUTF8) {
		out->smtputf8 = true;
		return !pm->has_val;
	}
	if (!pm->has_val)
		return false;
	switch (kw) {
	case MAIL_SIZE:
		out->has_size = true;
		return addr_size_parse(v, &out->size);
	case MAIL_BODY:
		out->body = addr_body_value(v);
		return out->body != SMTP_BODY_UNSPEC;
	case MAIL_RET:
		out->ret = addr_ret_value(v);
		return out->ret != SMTP_RET_UNSPEC;
	case MAIL_ENVID:
		out->envid = v;
		return v.len <= SMTP_XTEXT_MAX && addr_xtext_check(v, true, false);
	case MAIL_AUTH:
		out->auth = v;
		return addr_xtext_check(v, true, false);
	default:
		return false;
	}
}

/* ADDR_TAG8 - the little-endian word of eight characters */
#define ADDR_TAG8(a, b, c, d, e, f, g, h) \
	((uint64_t)ADDR_TAG4(a, b, c, d) | (uint64_t)ADDR_TAG4(e, f, g, h) << 32)

/* addr_sep - p is the end or a SP: where a parameter must stop */
static inline bool addr_sep(const char *p, const char *end)
{
	return p == end || *p == ' ';
}

/* addr_xchar_span - the end of the run of xchar bytes at p (printable ASCII
 * but "+" and "=") */
static inline const char *addr_xchar_span(const char *p, const char *end)
{
	while (p < end && addr_is(*p, ACL_XCHAR))
		p++;
	return p;
}

/* addr_mail_fast - one well-formed MAIL parameter of the usual shapes at k
 * (just past its SP): SIZE=1*19DIGIT, BODY=7BIT / 8BITMIME, RET=FULL / HDRS,
 * ENVID= or AUTH= xtext without "+", SMTPUTF8, not seen before, followed by
 * SP or the end. Stores it and returns where it ends, or NULL (nothing
 * stored) for anything else, which the general loop then parses and judges.
 * The keyword is named from one folded word: bit 0x20 is set only in letter
 * positions, so each compare is exact (a letter matches in its two cases,
 * every other byte only itself). */
static inline const char *addr_mail_fast(const char *k, const char *end, unsigned *seen,
					 struct smtp_mail_params *out)
{
	const uint64_t L4 = 0x20202020u;
	const char *v, *e;
	uint64_t w;
	int kw;

	if (end - k < 8)
		return NULL;
	w = swar_load(k);
	if (((w | L4) & 0xFFFFFFFFFFull) == (ADDR_TAG4('s', 'i', 'z', 'e') | (uint64_t)'=' << 32))
		kw = MAIL_SIZE;
	else if (((w | L4) & 0xFFFFFFFFFFull) == (ADDR_TAG4('b', 'o', 'd', 'y') | (uint64_t)'=' << 32))
		kw = MAIL_BODY;
	else if ((w | 0x202020u) == (ADDR_TAG4('r', 'e', 't', '=') | (w & ~0xFFFFFFFFull)))
		kw = MAIL_RET;
	else if (((w | 0x2020202020ull) & 0xFFFFFFFFFFFFull) ==
		 (ADDR_TAG4('e', 'n', 'v', 'i') | (uint64_t)'d' << 32 | (uint64_t)'=' << 40))
		kw = MAIL_ENVID;
	else if (((w | L4) & 0xFFFFFFFFFFull) == (ADDR_TAG4('a', 'u', 't', 'h') | (uint64_t)'=' << 32))
		kw = MAIL_AUTH;
	else if ((w | 0x0020202020202020ull) == ADDR_TAG8('s', 'm', 't', 'p', 'u', 't', 'f', '8'))
		kw = MAIL_SMTPUTF8;
	else
		return NULL;
	if (*seen & (1u << kw))
		return NULL;
	switch (kw) {
	case MAIL_SIZE: {
		uint64_t n = 0;
		for (v = e = k + 5; e < end && addr_digit((unsigned char)*e) && e - v < 19; e++)
			n = n * 10 + (unsigned)(*e - '0');
		if (e == v || !addr_sep(e, end))
			return NULL;
		out->size = n;
		out->has_size = true;
		break;
	}
	case MAIL_BODY:
		v = k + 5;
		if (end - v >= 8 && (swar_load(v) | 0x2020202020202000ull) ==
					    ADDR_TAG8('8', 'b', 'i', 't', 'm', 'i', 'm', 'e')) {
			e = v + 8;
			out->body = SMTP_BODY_8BITMIME;
		} else if (end - v >= 4 && v[0] == '7' &&
			   addr_fold4(v) == ADDR_TAG4('7', 'b', 'i', 't')) {
			e = v + 4;
			out->body = SMTP_BODY_7BIT;
		} else {
			return NULL;
		}
		if (!addr_sep(e, end)) {
			out->body = SMTP_BODY_UNSPEC;
			return NULL;
		}
		break;
	case MAIL_RET:
		v = k + 4;
		e = v + 4;
		if (end - v < 4 || !addr_sep(e, end))
			return NULL;
		switch (addr_fold4(v) | L4) {
		case ADDR_TAG4('f', 'u', 'l', 'l'):
			out->ret = SMTP_RET_FULL;
			break;
		case ADDR_TAG4('h', 'd', 'r', 's'):
			out->ret = SMTP_RET_HDRS;
			break;
		default:
			return NULL;
		}
		break;
	case MAIL_ENVID:
	case MAIL_AUTH:
		v = k + (kw == MAIL_ENVID ? 6 : 5);
		e = addr_xchar_span(v, end);
		if (e == v || !addr_sep(e, end) || (kw == MAIL_ENVID && e - v > SMTP_XTEXT_MAX))
			return NULL;
		if (kw == MAIL_ENVID)
			out->envid = slice_make(v, (size_t)(e - v));
		else
			out->auth = slice_make(v, (size_t)(e - v));
		break;
	default: /* MAIL_SMTPUTF8 */
		e = k + 8;
		if (!addr_sep(e, end))
			return NULL;
		out->smtputf8 = true;
		break;
	}
	*seen |= 1u << kw;
	return e;
}

/* smtp_mail_params_parse - parse " KEY[=VALUE]..." after a reverse-path.
 * The usual parameters go through addr_mail_fast; the first one it does not
 * take sends the rest of the line through the general loop, which also
 * picks every error. */
enum smtp_addr_err smtp_mail_params_parse(struct slice in, struct smtp_mail_params *out,
					  struct slice *bad)
{
	const char *p = in.ptr, *end = in.ptr + in.len, *k, *e;
	unsigned seen = 0;

	*out = (struct smtp_mail_params){ .size = 0 };
	for (;;) {
		if (p == end) {
			*bad = SLICE_NULL;
			return SMTP_ADDR_OK;
		}
		if (*p != ' ')
			break;
		for (k = p + 1; k < end && *k == ' '; k++)
			;
		if (k == end || (e = addr_mail_fast(k, end, &seen, out)) == NULL)
			break;
		p = e;
	}
	return addr_params_parse(slice_make(p, (size_t)(end - p)), addr_mail_keyword,
				 addr_mail_value, seen, out, bad);
}

/* addr_notify_parse - "NEVER" or a comma list of SUCCESS / FAILURE / DELAY */
static bool addr_notify_parse(struct slice v, unsigned *out)
{
	static const struct slice names[] = { SLICE_LIT("SUCCESS"), SLICE_LIT("FAILURE"),
					      SLICE_LIT("DELAY") };
	static const unsigned bits[] = { SMTP_NOTIFY_SUCCESS, SMTP_NOTIFY_FAILURE, SMTP_NOTIFY_DELAY };
	const char *p = v.ptr, *end = v.ptr + v.len;
	unsigned n = 0;

	if (slice_eq_nocase(v, SLICE_LIT("NEVER"))) {
		*out = SMTP_NOTIFY_NEVER;
		return true;
	}
	for (;;) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *e = comma ? comma : end;
		int i = addr_keyword(slice_make(p, (size_t)(e - p)), names, 3);
		if (i < 0)
			return false;
		n |= bits[i];
		if (!comma)
			break;
		p = comma + 1;
	}
	*out = n;
	return true;
}

/* addr_orcpt_valid - addr-type ";" xtext (RFC 3461 §4.2, RFC 6533 §3) */
static bool addr_orcpt_valid(struct slice v)
{
	const char *semi = memchr(v.ptr, ';', v.len);
	struct slice type, addr;

	if (!semi || v.len > SMTP_ORCPT_MAX)
		return false;
	type = slice_make(v.ptr, (size_t)(semi - v.ptr));
	addr = slice_make(semi + 1, v.len - type.len - 1);
	if (type.len == 0 || type.len > SMTP_ADDRTYPE_MAX || addr.len == 0)
		return false;
	for (size_t i = 0; i < type.len; i++) /* addr-type = atom */
		if (!addr_is(type.ptr[i], ACL_ATEXT))
			return false;
	return addr_xtext_check(addr, true, slice_eq_nocase(type, SLICE_LIT("utf-8")));
}

enum { RCPT_NOTIFY, RCPT_ORCPT };

/* addr_rcpt_keyword - the RCPT parameter a keyword names, -1 if none */
static inline int addr_rcpt_keyword(struct slice key)
{
	const char *k = key.ptr;

	if (key.len == 6 && addr_fold4(k) == ADDR_TAG4('n', 'o', 't', 'i') &&
	    ((unsigned char)k[4] | 0x20) == 'f' && ((unsigned char)k[5] | 0x20) == 'y')
		return RCPT_NOTIFY;
	if (key.len == 5 && addr_fold4(k) == ADDR_TAG4('o', 'r', 'c', 'p') &&
	    ((unsigned char)k[4] | 0x20) == 't')
		return RCPT_ORCPT;
	return -1;
}

/* addr_rcpt_value - check and store one RCPT parameter's value */
static inline bool addr_rcpt_value(int kw, const struct addr_param *pm, void *outp)
{
	struct smtp_rcpt_params *out = outp;

	if (!pm->has_val)
		return false;
	if (kw == RCPT_NOTIFY)
		return addr_notify_parse(pm->val, &out->notify);
	out->orcpt = pm->val;
	return addr_orcpt_valid(pm->val);
}

/* smtp_rcpt_params_parse - parse " KEY[=VALUE]..." after a forward-path */
enum smtp_addr_err smtp_rcpt_params_parse(struct slice in, struct smtp_rcpt_params *out,
					  struct slice *bad)
{
	*out = (struct smtp_rcpt_params){ .notify = 0 };
	return addr_params_parse(in, addr_rcpt_keyword, addr_rcpt_value, 0, out, bad);
}
