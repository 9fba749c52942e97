/* proxy.h - the HAProxy PROXY protocol header, versions 1 and 2, as a
 * receiver (haproxy doc/proxy-protocol.txt).
 *
 * A connection from a load balancer starts with this header; the SMTP
 * session begins right after it. proxy_feed is resumable: feed the bytes as
 * they arrive, split anywhere; it consumes exactly the header and not one
 * byte more, so what follows can go straight to the SMTP engine.
 *
 *  v1: "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" with single spaces, strict
 *      addresses of the named family, ports 0..65535 without leading zeros;
 *      or "PROXY UNKNOWN" with anything up to the CRLF. At most 107 bytes.
 *  v2: the 12-byte signature, version 2, command LOCAL or PROXY, then for
 *      PROXY: TCP over IPv4 (0x11), TCP over IPv6 (0x21) or UNSPEC (0x00);
 *      other families and datagram transports are refused. The address
 *      block must hold the addresses; the TLVs after it must fill the block
 *      exactly and are skipped. LOCAL ignores the whole block (health checks
 *      from the balancer itself). The block is at most PROXY_V2_MAX_BLOCK.
 * Anything else, starting with the very first byte, is RM_EPROTO: the caller
 * closes the connection without a reply (CONTRACT.md).
 *
 * The result says whose addresses to use: PROXY_FAM_UNSPEC (v1 UNKNOWN, v2
 * LOCAL or UNSPEC) means "use the real connection's endpoints". Pure; no
 * allocation; one owner per parser.
 */
#ifndef RINGMTA_CORE_PROXY_H
#define RINGMTA_CORE_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define PROXY_V1_MAX 107          /* bytes, CRLF included (spec §2.1) */
#define PROXY_V2_MAX_BLOCK 4096   /* bytes after the 16-byte v2 header */

enum proxy_family {
	PROXY_FAM_UNSPEC = 0, /* use the connection's own endpoints */
	PROXY_FAM_INET = 4,
	PROXY_FAM_INET6 = 6,
};

struct proxy_addr {
	uint8_t addr[16]; /* network order; the first 4 bytes for INET */
	uint16_t port;    /* host order */
};

struct proxy_header {
	uint8_t version;          /* 1 or 2 */
	bool local;               /* v2 LOCAL command */
	enum proxy_family family;
	struct proxy_addr src;    /* the client */
	struct proxy_addr dst;    /* the address the client connected to */
	uint32_t length;          /* bytes of the whole header */
};

struct proxy_parser {
	struct proxy_header hdr; /* filled when proxy_feed returned RM_OK */
	uint8_t _state;
	uint16_t _have;          /* bytes in _buf */
	uint32_t _skip;          /* v2: bytes of the block still to skip or read */
	uint16_t _tlv_have;      /* bytes of the current TLV's 3-byte header seen */
	uint16_t _tlv_left;      /* bytes of the current TLV's value still to skip */
	uint8_t _tlv[3];
	char _buf[PROXY_V1_MAX + 1];
};

/* proxy_init - ready for a new connection's first byte */
void proxy_init(struct proxy_parser *p);

/* proxy_feed - feed in[0..len). Returns RM_OK when the header is complete
 * (p->hdr filled; *used = bytes of in that belonged to it, the rest is the
 * session's), RM_AGAIN when all of in was consumed and more is needed, or
 * RM_EPROTO when the input cannot be a valid header (and again on every
 * later call). After RM_OK, further calls return RM_OK with *used = 0. */
RM_MUST_USE int proxy_feed(struct proxy_parser *p, const char *in, size_t len, size_t *used);

#endif
