/* proxy.c - the PROXY protocol v1/v2 receiver (format in proxy.h). Pure; no
 * allocation; one owner per parser.
 *
 * Invariants: proxy_feed never reads in[len] or beyond and never consumes a
 * byte after the header's last one; _buf holds at most PROXY_V1_MAX bytes
 * (v1 line, or the v2 16-byte header plus at most 36 address bytes).
 */
#include "core/proxy.h"

#include <string.h>

#include "core/ipaddr.h"
#include "core/slice.h"

enum {
	PROXY_S_START,
	PROXY_S_V1,
	PROXY_S_V2_HDR,
	PROXY_S_V2_ADDR,
	PROXY_S_V2_TLV,
	PROXY_S_V2_SKIP,
	PROXY_S_DONE,
	PROXY_S_FAIL,
};

#define PROXY_V2_HDR 16
static const char proxy_v1_prefix[6] = "PROXY ";
static const char proxy_v2_sig[12] = "\r\n\r\n\0\r\nQUIT\n";

/* proxy_init - ready for a new connection's first byte */
void proxy_init(struct proxy_parser *p)
{
	memset(p, 0, sizeof(*p));
	p->_state = PROXY_S_START;
}

/* proxy_port - a decimal 0..65535 without leading zeros */
static bool proxy_port(struct slice s, uint16_t *out)
{
	unsigned long long v;

	if (s.len > 1 && s.ptr[0] == '0')
		return false;
	if (!slice_to_u64(s, 65535, &v))
		return false;
	*out = (uint16_t)v;
	return true;
}

/* proxy_v1_line - parse the complete v1 line held in _buf (CRLF included) */
static int proxy_v1_line(struct proxy_parser *p)
{
	struct proxy_header *h = &p->hdr;
	struct slice line, tok[4];
	bool v6;

	if (p->_have < sizeof(proxy_v1_prefix) + 2 || p->_buf[p->_have - 2] != '\r')
		return RM_EPROTO;
	line = slice_make(p->_buf + sizeof(proxy_v1_prefix), p->_have - sizeof(proxy_v1_prefix) - 2);
	h->version = 1;
	/* "the receiver must ignore anything presented before the CRLF" (§2.1) */
	if (line.len >= 7 && memcmp(line.ptr, "UNKNOWN", 7) == 0 && (line.len == 7 || line.ptr[7] == ' ')) {
		h->family = PROXY_FAM_UNSPEC;
		return RM_OK;
	}
	if (line.len < 5 || memcmp(line.ptr, "TCP", 3) != 0 || (line.ptr[3] != '4' && line.ptr[3] != '6') ||
	    line.ptr[4] != ' ')
		return RM_EPROTO;
	v6 = line.ptr[3] == '6';
	line = slice_sub(line, 5, line.len);
	for (int i = 0; i < 4; i++) {
		const char *sp = memchr(line.ptr, ' ', line.len);
		size_t n = sp ? (size_t)(sp - line.ptr) : line.len;

		if (n == 0 || (i < 3) != (sp != NULL))
			return RM_EPROTO;
		tok[i] = slice_make(line.ptr, n);
		line = slice_sub(line, n + (sp != NULL), line.len);
	}
	if (v6 ? !ipaddr_parse6(tok[0], h->src.addr) || !ipaddr_parse6(tok[1], h->dst.addr)
	       : !ipaddr_parse4(tok[0], h->src.addr) || !ipaddr_parse4(tok[1], h->dst.addr))
		return RM_EPROTO;
	if (!proxy_port(tok[2], &h->src.port) || !proxy_port(tok[3], &h->dst.port))
		return RM_EPROTO;
	h->family = v6 ? PROXY_FAM_INET6 : PROXY_FAM_INET;
	return RM_OK;
}

/* proxy_v2_header - check the 16-byte v2 header in _buf and pick the next state */
static int proxy_v2_header(struct proxy_parser *p)
{
	const uint8_t *b = (const uint8_t *)p->_buf;
	uint32_t block = (uint32_t)b[14] << 8 | b[15];
	uint32_t alen = 0;

	p->hdr.version = 2;
	p->hdr.local = (b[12] & 0x0f) == 0;
	if (block > PROXY_V2_MAX_BLOCK)
		return RM_EPROTO;
	p->_skip = block;
	if (!p->hdr.local) {
		switch (b[13]) {
		case 0x11: p->hdr.family = PROXY_FAM_INET; alen = 12; break;
		case 0x21: p->hdr.family = PROXY_FAM_INET6; alen = 36; break;
		default: p->hdr.family = PROXY_FAM_UNSPEC; break; /* 0x00, checked earlier */
		}
	}
	if (block < alen)
		return RM_EPROTO;
	p->_skip = block - alen;
	p->_state = alen ? PROXY_S_V2_ADDR : PROXY_S_V2_SKIP;
	return RM_OK;
}

/* proxy_v2_addresses - decode the address block held after the header */
static void proxy_v2_addresses(struct proxy_parser *p)
{
	const uint8_t *a = (const uint8_t *)p->_buf + PROXY_V2_HDR;
	struct proxy_header *h = &p->hdr;
	size_t n = h->family == PROXY_FAM_INET6 ? 16 : 4;

	memcpy(h->src.addr, a, n);
	memcpy(h->dst.addr, a + n, n);
	h->src.port = (uint16_t)(a[2 * n] << 8 | a[2 * n + 1]);
	h->dst.port = (uint16_t)(a[2 * n + 2] << 8 | a[2 * n + 3]);
	p->_state = PROXY_S_V2_TLV;
}

/* proxy_v2_hdr_byte - take one byte of the fixed v2 header, checking it */
static int proxy_v2_hdr_byte(struct proxy_parser *p, char ch)
{
	size_t k = p->_have;

	if (k < sizeof(proxy_v2_sig) && ch != proxy_v2_sig[k])
		return RM_EPROTO;
	/* version 2 in the high nibble, LOCAL (0) or PROXY (1) in the low */
	if (k == 12 && ((uint8_t)ch >> 4 != 2 || ((uint8_t)ch & 0x0f) > 1))
		return RM_EPROTO;
	/* for PROXY: UNSPEC, TCP4 or TCP6 only; LOCAL ignores the byte */
	if (k == 13 && ((uint8_t)p->_buf[12] & 0x0f) == 1 && ch != 0x00 && ch != 0x11 && ch != 0x21)
		return RM_EPROTO;
	p->_buf[p->_have++] = ch;
	return p->_have == PROXY_V2_HDR ? proxy_v2_header(p) : RM_OK;
}

/* proxy_v2_tlvs - skip TLVs from in[*i..len) while checking their lengths */
static int proxy_v2_tlvs(struct proxy_parser *p, const char *in, size_t len, size_t *i)
{
	while (*i < len && p->_skip > 0) {
		if (p->_tlv_have < 3) {
			p->_tlv[p->_tlv_have++] = (uint8_t)in[(*i)++];
			p->_skip--;
			if (p->_tlv_have < 3) {
				if (p->_skip == 0) /* the block ends inside a TLV header */
					return RM_EPROTO;
				continue;
			}
			p->_tlv_left = (uint16_t)(p->_tlv[1] << 8 | p->_tlv[2]);
			if (p->_tlv_left > p->_skip)
				return RM_EPROTO;
		} else {
			size_t n = len - *i;

			if (n > p->_tlv_left)
				n = p->_tlv_left;
			*i += n;
			p->_skip -= (uint32_t)n;
			p->_tlv_left -= (uint16_t)n;
		}
		if (p->_tlv_left == 0)
			p->_tlv_have = 0;
	}
	return RM_OK;
}

/* proxy_step - consume from in[*i..len) in the current state */
static int proxy_step(struct proxy_parser *p, const char *in, size_t len, size_t *i)
{
	char ch;

	switch (p->_state) {
	case PROXY_S_START:
		if (in[*i] == 'P')
			p->_state = PROXY_S_V1;
		else if (in[*i] == '\r')
			p->_state = PROXY_S_V2_HDR;
		else
			return RM_EPROTO;
		return RM_OK;
	case PROXY_S_V1:
		ch = in[(*i)++];
		if (p->_have == PROXY_V1_MAX)
			return RM_EPROTO;
		if (p->_have < sizeof(proxy_v1_prefix) && ch != proxy_v1_prefix[p->_have])
			return RM_EPROTO;
		p->_buf[p->_have++] = ch;
		if (ch != '\n')
			return RM_OK;
		if (proxy_v1_line(p))
			return RM_EPROTO;
		p->_state = PROXY_S_DONE;
		return RM_OK;
	case PROXY_S_V2_HDR:
		return proxy_v2_hdr_byte(p, in[(*i)++]);
	case PROXY_S_V2_ADDR:
		p->_buf[p->_have++] = in[(*i)++];
		if (p->_have == PROXY_V2_HDR + (p->hdr.family == PROXY_FAM_INET6 ? 36 : 12))
			proxy_v2_addresses(p);
		return RM_OK;
	case PROXY_S_V2_TLV:
		return proxy_v2_tlvs(p, in, len, i);
	case PROXY_S_V2_SKIP: {
		size_t n = len - *i;

		if (n > p->_skip)
			n = p->_skip;
		*i += n;
		p->_skip -= (uint32_t)n;
		return RM_OK;
	}
	}
	return RM_EPROTO;
}

/* proxy_feed - feed in[0..len); RM_OK when the header is complete */
int proxy_feed(struct proxy_parser *p, const char *in, size_t len, size_t *used)
{
	size_t i = 0;

	*used = 0;
	for (;;) {
		if (p->_state == PROXY_S_DONE)
			return RM_OK;
		if (p->_state == PROXY_S_FAIL)
			return RM_EPROTO;
		/* a v2 block ends when nothing is left to skip, even with no input */
		if ((p->_state == PROXY_S_V2_TLV || p->_state == PROXY_S_V2_SKIP) && p->_skip == 0) {
			p->_state = PROXY_S_DONE;
			p->hdr.length += (uint32_t)i;
			*used = i;
			return RM_OK;
		}
		if (i == len)
			break;
		if (proxy_step(p, in, len, &i)) {
			p->_state = PROXY_S_FAIL;
			*used = i;
			return RM_EPROTO;
		}
		if (p->_state == PROXY_S_DONE) {
			p->hdr.length += (uint32_t)i;
			*used = i;
			return RM_OK;
		}
	}
	p->hdr.length += (uint32_t)len;
	*used = len;
	return RM_AGAIN;
}
