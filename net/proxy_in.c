/* proxy_in.c - the PROXY protocol at the daemon's front door (see
 * proxy_in.h).
 *
 * Invariants: *peer is written only when a complete, valid header names a
 * client address (TCP4 or TCP6); otherwise the connection's own address
 * stays, as the PROXY spec asks for LOCAL and UNKNOWN. The trusted-network
 * match is the relay rule's own (policy_client_relays), so an IPv4-mapped
 * IPv6 peer counts as IPv4 in both. No allocation; any thread; panics on
 * nothing.
 */
#include "net/proxy_in.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* proxy_in_trusted - the real peer lies inside a trusted network */
bool proxy_in_trusted(const struct policy *trusted, const struct sockaddr_storage *peer)
{
	return trusted != NULL && policy_client_relays(trusted, (const struct sockaddr *)peer);
}

/* proxy_in_peer - the header's source as a socket address */
static void proxy_in_peer(const struct proxy_header *h, struct sockaddr_storage *peer)
{
	memset(peer, 0, sizeof *peer);
	if (h->family == PROXY_FAM_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)(void *)peer;
		in->sin_family = AF_INET;
		in->sin_port = htons(h->src.port);
		memcpy(&in->sin_addr, h->src.addr, 4);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)peer;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(h->src.port);
		memcpy(&in6->sin6_addr, h->src.addr, 16);
	}
}

/* proxy_in_feed - feed bytes; on a complete header, the client's address */
int proxy_in_feed(struct proxy_parser *p, const char *in, size_t len, size_t *used,
		  struct sockaddr_storage *peer)
{
	int rc = proxy_feed(p, in, len, used);

	if (rc != RM_OK)
		return rc;
	/* LOCAL is the balancer speaking for itself (a health check); UNKNOWN
	 * and UNSPEC say it could not tell: keep the real peer. */
	if (!p->hdr.local && p->hdr.family != PROXY_FAM_UNSPEC)
		proxy_in_peer(&p->hdr, peer);
	return RM_OK;
}

/* proxy_in_addr_text - the address of sa as text */
void proxy_in_addr_text(const struct sockaddr_storage *sa, char *out, size_t cap)
{
	const void *a = NULL;

	if (sa->ss_family == AF_INET)
		a = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	else if (sa->ss_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	if (a == NULL || cap > (socklen_t)-1 || inet_ntop(sa->ss_family, a, out, (socklen_t)cap) == NULL)
		snprintf(out, cap, "unknown");
}
