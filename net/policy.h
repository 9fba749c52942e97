/* policy.h - the relay rule and the free-space check (CONTRACT.md).
 *
 * A recipient is accepted when its domain is a relay domain (and, with a
 * recipient list, the recipient is listed: otherwise 550 5.1.1 from every
 * client), or when the client is in a relay network or authenticated;
 * otherwise 554 5.7.1. MAIL gets 452 4.3.1 while the spool's file system has
 * less than min_free bytes free. Built once at start-up, then read-only and
 * shared by every shard; only free_bytes changes (one writer, relaxed atomic).
 */
#ifndef RINGMTA_NET_POLICY_H
#define RINGMTA_NET_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/err.h"
#include "core/slice.h"
#include "core/smtp_server.h"

struct policy_cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned prefix;
};

struct policy {
	struct policy_cidr *nets;
	size_t nnets;
	char **domains; /* lower-case, sorted */
	size_t ndomains;
	char **rcpts;   /* lower-case "user@domain" or "@domain", sorted */
	size_t nrcpts;
	bool has_rcpts; /* --relay-recipients given (an empty file lists nobody) */
	uint64_t min_free;
	uint64_t free_bytes; /* last statvfs result; relaxed atomic */
};

/* policy_init - an empty policy (denies relaying to everyone) */
void policy_init(struct policy *p);

/* policy_add_net / policy_add_domain - build up the policy */
RM_MUST_USE int policy_add_net(struct policy *p, const struct policy_cidr *c);
RM_MUST_USE int policy_add_domain(struct policy *p, const char *domain);

/* policy_load_rcpts - read a --relay-recipients file; RM_EIO when it cannot
 * be read (err names the problem) */
RM_MUST_USE int policy_load_rcpts(struct policy *p, const char *path, char *err, size_t errlen);

/* policy_done - sort the tables; call once after building */
void policy_done(struct policy *p);

/* policy_free - release everything */
void policy_free(struct policy *p);

/* policy_client_relays - sa is inside a relay network */
bool policy_client_relays(const struct policy *p, const struct sockaddr *sa);

/* policy_rcpt - the verdict for one recipient (code 0 accepts) */
void policy_rcpt(const struct policy *p, bool client_relays, bool authed, const struct smtp_path *to,
		 struct smtp_verdict *v);

/* policy_mail - the verdict for MAIL (free space) */
void policy_mail(const struct policy *p, struct smtp_verdict *v);

/* policy_refresh_space - statvfs(dir) into free_bytes; call about once a
 * second from one thread */
void policy_refresh_space(struct policy *p, const char *dir);

#endif
