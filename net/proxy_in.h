/* proxy_in.h - the PROXY protocol at the daemon's front door (CONTRACT.md,
 * "Behind a load balancer").
 *
 * With --proxy-protocol every connection must open with a PROXY v1 or v2
 * header (core/proxy.h parses it) from a peer inside --proxy-trusted. The
 * shard asks proxy_in_trusted at accept, feeds the first bytes through
 * proxy_in_feed until the header is complete, and only then greets: the
 * client address from the header replaces the connection's own for the relay
 * rule, --max-connections-per-ip, logs and the Received: header. Every
 * failure (untrusted peer, missing or malformed header, no header within the
 * command timeout) closes the connection without a byte sent. Pure helpers
 * over a caller-owned parser; any thread.
 */
#ifndef RINGMTA_NET_PROXY_IN_H
#define RINGMTA_NET_PROXY_IN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "core/err.h"
#include "core/proxy.h"
#include "net/policy.h"

/* proxy_in_trusted - the real peer may send a PROXY header: it lies inside
 * one of trusted's networks (a policy used only for its network table) */
bool proxy_in_trusted(const struct policy *trusted, const struct sockaddr_storage *peer);

/* proxy_in_feed - feed in[0..len) to p. On RM_OK the header is complete,
 * *used bytes of in were its last ones (the rest is SMTP), and *peer holds
 * the client's address from the header, or is left as it was for a header
 * that names none (v1 UNKNOWN, v2 LOCAL or UNSPEC). RM_AGAIN: all of in
 * was taken, more is needed. RM_EPROTO: not a valid header. */
RM_MUST_USE int proxy_in_feed(struct proxy_parser *p, const char *in, size_t len, size_t *used,
			      struct sockaddr_storage *peer);

/* proxy_in_addr_text - the address of sa as text into out[cap] ("unknown"
 * for a family other than IPv4 and IPv6) */
void proxy_in_addr_text(const struct sockaddr_storage *sa, char *out, size_t cap);

#endif
