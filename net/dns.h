/* dns.h - asynchronous MX/A/AAAA resolution for delivery, on a shard's ring.
 *
 * One resolver per shard, used only by that shard's thread. It wraps a c-ares
 * channel: c-ares reports the sockets it opens (ARES_OPT_SOCK_STATE_CB), the
 * resolver arms an IORING_OP_POLL_ADD for each on the shard's ring with
 * user_data dns_user_data(tag), and the shard hands every completion whose
 * top byte is DNS_UD_OP to dns_complete. c-ares' own timeouts are driven by
 * the shard's loop: it sleeps at most dns_wait_ms and calls dns_tick once
 * per turn. Nothing blocks: c-ares sends and reads on non-blocking sockets
 * only when the ring said they are ready.
 *
 * The host's loop, per shard:
 *   dns_new(ring, cfg)                       once, on the shard's thread
 *   dns_lookup_mx(r, domain, cb, arg, &id)   any time; never calls back
 *                                            from inside itself
 *   on a completion with op DNS_UD_OP:       dns_complete(r, tag, res)
 *   before sleeping:                         wait = min(wait, dns_wait_ms)
 *   once per turn, after the completions:    dns_tick(r)
 *   the caller goes away:                    dns_cancel(r, id)
 *   shutdown:                                dns_free(r)
 * Callbacks are made only from dns_complete and dns_tick, never from
 * dns_lookup_mx or dns_cancel, so the caller never sees re-entry; a callback
 * may start or cancel lookups, but must not free the resolver.
 *
 * What a lookup does (RFC 5321 §5.1): query MX for the domain; sort the
 * records by preference, equal preferences in random order (§5.1: "randomize
 * them to spread the load"); resolve each host's A and AAAA. No MX record
 * (NODATA): the domain itself is the one host, preference 0 (implicit MX).
 * A null MX (RFC 7505, target ".") fails permanently; so does NXDOMAIN.
 * SERVFAIL, REFUSED, a timeout or a malformed answer fail temporarily.
 * A host whose addresses cannot be found is dropped; when no host is left the
 * lookup fails, temporarily if any of their lookups failed temporarily.
 * CNAME chains are followed by c-ares.
 *
 * The result is bounded: at most DNS_HOSTS_MAX hosts (the most preferred),
 * each with at most DNS_FAMILY_ADDRS_MAX addresses per family, IPv4 before
 * IPv6. It is valid only during the callback.
 */
#ifndef RINGMTA_NET_DNS_H
#define RINGMTA_NET_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct io_uring;
struct ares_mx_reply;
struct dns;

/* The resolver's ring operations carry DNS_UD_OP in the top byte of
 * user_data and the resolver's tag (DNS_TAG_BITS wide) in the low bits,
 * next to the store's STORE_UD_OP. A module that owns the resolver and has
 * an op of its own (delivery) can host it there instead: dns_cfg.ud_base
 * is then its user_data prefix, and it passes the low DNS_TAG_BITS of each
 * such completion to dns_complete. */
#define DNS_UD_OP 8u
#define DNS_TAG_BITS 24
#define DNS_TAG_MASK ((1u << DNS_TAG_BITS) - 1)

/* dns_user_data - the user_data of a resolver operation with this tag */
static inline uint64_t dns_user_data(uint32_t tag)
{
	return ((uint64_t)DNS_UD_OP << 56) | tag;
}

#define DNS_NAME_MAX 253         /* a domain name in text, without the NUL */
#define DNS_HOSTS_MAX 16         /* next hops kept per lookup */
#define DNS_FAMILY_ADDRS_MAX 4   /* addresses kept per host and family */
#define DNS_HOST_ADDRS_MAX (2 * DNS_FAMILY_ADDRS_MAX)
#define DNS_MX_SCAN_MAX 64       /* MX records looked at before sorting */

#define DNS_TIMEOUT_MS_DEFAULT 3000 /* first try; c-ares doubles it per round */
#define DNS_TRIES_DEFAULT 2
#define DNS_LOOKUPS_DEFAULT 4096    /* lookups in flight per resolver */
#define DNS_ACTIVE_DEFAULT 32       /* of them, querying at once; the rest
				     * wait (FIFO) so a burst does not
				     * overflow the server's socket buffer */

struct dns_cfg {
	const char *servers;  /* "ADDR:PORT[,ADDR:PORT...]" (IPv6 as
			       * "[ADDR]:PORT"); NULL: /etc/resolv.conf */
	unsigned timeout_ms;  /* 0: DNS_TIMEOUT_MS_DEFAULT */
	unsigned tries;       /* 0: DNS_TRIES_DEFAULT */
	unsigned max_lookups; /* 0: DNS_LOOKUPS_DEFAULT; past it RM_ELIMIT */
	unsigned max_active;  /* 0: DNS_ACTIVE_DEFAULT */
	uint64_t seed;        /* shuffles equal preferences; 0: random */
	uint64_t ud_base;     /* 0: dns_user_data(0); else a user_data prefix
			       * whose low DNS_TAG_BITS are zero */
};

enum dns_status {
	DNS_OK = 0,   /* hosts[0..nhost) hold at least one address each */
	DNS_TEMP = 1, /* try again later (4.4.3) */
	DNS_PERM = 2, /* bounce: code/enh/text say why */
};

struct dns_addr {
	int family;        /* AF_INET or AF_INET6 */
	uint8_t bytes[16]; /* network order; 4 used for AF_INET */
};

struct dns_host {
	char name[DNS_NAME_MAX + 1];
	uint16_t pref;
	bool temp;         /* an A or AAAA lookup failed temporarily */
	unsigned nv4, nv6;
	struct dns_addr addr[DNS_HOST_ADDRS_MAX]; /* after dns_result_finish:
						   * [0..naddr), IPv4 first */
	unsigned naddr;
};

struct dns_result {
	enum dns_status status;
	unsigned code;     /* failures: the SMTP reply code for the DSN */
	const char *enh;   /* failures: the enhanced status code */
	const char *text;  /* failures: a constant description */
	bool implicit_mx;  /* no MX: the domain is its own host */
	uint32_t ttl_s;    /* DNS_OK: the smallest TTL (seconds) of the answer
			    * records it was built from, CNAMEs included;
			    * UINT32_MAX when no answer gave one */
	unsigned nhost;
	struct dns_host host[DNS_HOSTS_MAX];
};

/* dns_cb - a lookup finished; res is valid only during the call */
typedef void (*dns_cb)(void *arg, uint64_t id, const struct dns_result *res);

/* dns_new - a resolver on ring (the calling thread's). On error returns
 * RM_EINVAL (bad server list) or RM_EIO/RM_ENOMEM with one line in err. */
RM_MUST_USE int dns_new(struct io_uring *ring, const struct dns_cfg *cfg, struct dns **out,
			char *err, size_t errlen);

/* dns_free - drop every lookup without calling back, close the sockets,
 * remove the polls. Completions with DNS_UD_OP that arrive afterwards must
 * be dropped by the caller. Returns NULL. */
struct dns *dns_free(struct dns *r);

/* dns_lookup_mx - start resolving domain's next hops; *id (never 0) names
 * the lookup until its callback. RM_EINVAL for an empty or too long name,
 * RM_ELIMIT when max_lookups are in flight, RM_ENOMEM. */
RM_MUST_USE int dns_lookup_mx(struct dns *r, const char *domain, dns_cb cb, void *arg,
			      uint64_t *id);

/* dns_cancel - the callback of lookup id will not be made; false when id is
 * not pending (already called back, cancelled, or never issued) */
bool dns_cancel(struct dns *r, uint64_t id);

/* dns_complete - a completion of one of the resolver's ring operations */
void dns_complete(struct dns *r, uint32_t tag, int res);

/* dns_wait_ms - how long the loop may sleep, at most max_ms */
int64_t dns_wait_ms(struct dns *r, int64_t max_ms);

/* dns_tick - once per loop turn: expire c-ares timeouts, make callbacks */
void dns_tick(struct dns *r);

/* dns_pending - lookups in flight (not yet called back or cancelled) */
unsigned dns_pending(const struct dns *r);

/* --- the pure parts, exposed for tests ------------------------------------ */

/* dns_mx_build - fill r's hosts from an MX answer (list as c-ares parses
 * it): null MX -> DNS_PERM 556 5.1.10; else the hosts, sorted by preference
 * with equal ones shuffled by *rng, duplicates and names too long dropped,
 * at most DNS_HOSTS_MAX kept (the first DNS_MX_SCAN_MAX records are looked
 * at); status DNS_OK, no addresses and no TTL yet (nhost may be 0) */
void dns_mx_build(struct dns_result *r, const struct ares_mx_reply *mx, uint64_t *rng);

/* One MX record: a borrowed name and its preference. */
struct dns_mx {
	const char *name;
	uint16_t pref;
};

/* dns_mx_order - sort m[0..n) by preference, shuffling equal ones */
void dns_mx_order(struct dns_mx *m, size_t n, uint64_t *rng);

/* dns_host_add - add one address of family (AF_INET/AF_INET6) to h;
 * duplicates are ignored; RM_ELIMIT when the family's share is full */
RM_MUST_USE int dns_host_add(struct dns_host *h, int family, const void *bytes);

/* dns_result_fail - set r to a failure: DNS_TEMP 451 4.4.3, or DNS_PERM
 * with the given code, enhanced code and text */
void dns_result_fail(struct dns_result *r, enum dns_status st, unsigned code, const char *enh,
		     const char *text);

/* dns_result_finish - after every address lookup: IPv4 before IPv6 in each
 * host, hosts without addresses dropped (order kept); none left -> DNS_TEMP
 * if any host failed temporarily, else DNS_PERM 550 5.4.4 */
void dns_result_finish(struct dns_result *r);

/* dns_answer_ttl - the smallest TTL in the answer section of the DNS
 * message m[0..len) (RFC 1035 §4.1.3), into *ttl; false when the message
 * does not parse or its answer section is empty. TTLs above 2^31 - 1 count
 * as 0 (RFC 2181 §8). */
bool dns_answer_ttl(const unsigned char *m, int len, uint32_t *ttl);

/* dns_status_text - "ok", "temp", "perm" */
const char *dns_status_text(enum dns_status st);

#endif
