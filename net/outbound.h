/* outbound.h - delivery: each shard's scheduler and outbound SMTP
 * connections on the shard's ring (net/outbound.c).
 *
 * One delivery module per shard (the shard's hooks, struct
 * net_deliver_ops): the store hands it every durable message and every
 * unfinished one recovered at start; the message is split per next hop
 * (--route for the recipient's domain, else --smarthost, else MX through
 * DNS) into scheduler jobs (queue/sched.h); each loop turn the module
 * starts due jobs on idle or new connections within the destination's
 * process-wide limit, drives core/smtp_client.h on them and journals every
 * recipient's outcome in the spool.
 *
 * Placement between shards: a shard delivers what it received, unless it
 * is the busier one. Inbound sessions are spread over the shards by
 * SO_REUSEPORT, so a hot smarthost gets connections from every shard, each
 * taking slots from the one shared atomic count of that destination. When
 * mail arrives mostly on one shard (one long session), that shard hands
 * ready jobs to a less loaded one through the same inbox the control
 * requests use (queue/mailbox.h):
 *  - load: each shard publishes, per turn, a relaxed atomic weight of its
 *    ready jobs plus its transactions in flight: 2 for each of its own
 *    messages (it also received them and journals them), 1 for each job
 *    it carries for another shard (the transaction only). A shard is
 *    saturated for this purpose when its weight exceeds another shard's
 *    by OB_CARRY_GAP or more: it then hands that shard its oldest ready
 *    jobs (to any destination: a route, the smarthost or an MX domain,
 *    which the carrier resolves itself) until the two
 *    weights (as it estimates them) are within the gap, at most
 *    OB_CARRY_MAX jobs away at once. Shards with equal work of their own
 *    weigh the same and exchange nothing; a shard that carries jobs for
 *    others hands nothing on.
 *  - the owner (whose spool holds the message) keeps the job taken and
 *    sends a reference: the envelope (slices into the owner's arena,
 *    immutable while the job is away), the recipients, the destination and
 *    a read-only fd per segment of the body, opened by the owner through
 *    /proc/self/fd (a description of the carrier's own; the extents are
 *    committed and never rewritten). The carrier runs the transaction on
 *    one of its connections within the same process-wide limit, closes the
 *    fds and posts the per-recipient replies back to the owner's inbox
 *    (kept and retried each turn while that inbox is full). The owner
 *    journals, logs, retries or bounces as if it had sent the message
 *    itself: only the owner touches its spool.
 *  - DELETE of a message with a job away: the owner journals it deleted at
 *    once and marks the carried reference cancelled; a carrier that has not
 *    begun the transaction drops it, one in flight may still complete, and
 *    the owner ignores whatever comes back (the message is never journalled
 *    delivered).
 *  - shutdown: a message with a job away is not freed (the process ends);
 *    the job is tried again after a restart like any job in flight.
 *  Doorbell: at the end of a turn that pushed anything to another shard's
 *  inbox, the shard posts one IORING_OP_MSG_RING completion to that
 *  shard's ring (its own completion skipped), which ends the other's wait
 *  at once; it takes its inbox at that loop boundary.
 *
 * Control (ringmta-queue through the daemon's control socket): each shard's
 * module owns an inbox (queue/mailbox.h) that any thread may post a struct
 * outbound_ctl to; the shard takes the requests at its loop boundary (it
 * wakes at least every 250 ms) and answers in the request. DELETE marks the
 * message deleted, journals SPOOL_OUT_DELETED for every recipient, ends a
 * transaction of it in flight, and drops each of its jobs from the
 * scheduler when the job next comes up (taken, retried or finished): none
 * is sent again. FLUSH makes every deferred job due now.
 *
 * Test-only environment variables (not part of the contract): 
 * RINGMTA_TEST_OUTBOUND_TIMEOUT_MS replaces every RFC 5321 §4.5.3.2 reply
 * timeout, the connect timeout and the TLS handshake timeout;
 * RINGMTA_TEST_OUTBOUND_IDLE_MS sets how long an idle connection is kept
 * for the next message (default 2000).
 */
#ifndef RINGMTA_NET_OUTBOUND_H
#define RINGMTA_NET_OUTBOUND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/err.h"
#include "net/outbound_tls.h"
#include "net/shard.h"
#include "queue/msgid.h"
#include "queue/sched.h"

#define OUTBOUND_ADDRS_MAX 8

/* A next hop with its addresses, resolved once at start-up. */
struct outbound_hop {
	char text[SCHED_KEY_MAX];  /* HOST:PORT, the destination key */
	struct sockaddr_storage addr[OUTBOUND_ADDRS_MAX];
	socklen_t addrlen[OUTBOUND_ADDRS_MAX];
	size_t naddr;
};

struct outbound_route {
	char domain[256];          /* lower case */
	struct outbound_hop hop;
};

struct mbox;

struct outbound_cfg {
	const char *helo;          /* our host name */
	const struct outbound_route *routes;
	size_t nroutes;
	const struct outbound_hop *smarthost; /* or NULL */
	uint16_t mx_port;
	const char *dns;           /* --dns ADDR:PORT, or NULL: /etc/resolv.conf */
	struct outbound_tls_cfg tls; /* --outbound-tls, --outbound-ca
				    * (net/outbound_tls.h; the caller's) */
	struct sched_cfg sched;
	/* Filled by outbound_global_init: */
	struct sched_dtab *_dtab;
	unsigned _timeout_ms[16];  /* per enum smtp_client_phase */
	unsigned _connect_ms;
	unsigned _tls_ms;          /* the whole STARTTLS handshake */
	unsigned _idle_ms;
	struct mbox **_ctl;        /* per shard index: its control inbox
				    * (published by the shard, atomic) */
	unsigned *_load;           /* per shard index: ready jobs + transactions
				    * in flight (relaxed atomics; UINT_MAX: no
				    * such shard) */
	int *_ringfd;              /* per shard index: its ring's fd, for the
				    * hand-off doorbell (-1: none; atomic) */
	unsigned _nshard;          /* shard indexes below this have a module
				    * (atomic): the per-turn load scan's end */
};

enum outbound_ctl_op { OUTBOUND_CTL_DELETE = 1, OUTBOUND_CTL_FLUSH };

/* outbound_ctl result: still with the shard; done (a DELETE only once the
 * journal record of it is durable); no such message; not deleted, the spool
 * is busy; the spool could not record the deletion (disk error) */
enum {
	OUTBOUND_CTL_PENDING = 0,
	OUTBOUND_CTL_DONE = 1,
	OUTBOUND_CTL_NOTFOUND = 2,
	OUTBOUND_CTL_BUSY = 3,
	OUTBOUND_CTL_FAILED = 4,
};

/* A control request; the poster owns it and must keep it alive until its
 * result is no longer pending (leak it when giving up). */
struct outbound_ctl {
	enum outbound_ctl_op op;
	char id[MSGID_LEN + 1];    /* DELETE: the queue ID, upper case */
	int _result;               /* atomic */
	/* the shard's, while a DELETE waits for its journal record */
	struct outbound_ctl *_next;
	struct spool *_sp;
	int64_t _until;            /* ms: given up as FAILED after this */
};

/* outbound_hop_resolve - host:port into hop (getaddrinfo, blocking: only
 * at start-up); RM_EINVAL with one line in err when it does not resolve */
RM_MUST_USE int outbound_hop_resolve(const char *host, uint16_t port, struct outbound_hop *hop,
				     char *err, size_t errlen);

/* outbound_global_init - the shared destination table and the timeouts;
 * g must outlive the server */
RM_MUST_USE int outbound_global_init(struct outbound_cfg *g);

/* outbound_global_fini - free what init made */
void outbound_global_fini(struct outbound_cfg *g);

/* outbound_ctl_post - hand req to shard's delivery module; RM_EINVAL when
 * that shard has none, RM_AGAIN when its inbox is full. Any thread. */
RM_MUST_USE int outbound_ctl_post(struct outbound_cfg *g, unsigned shard, struct outbound_ctl *req);

/* outbound_ctl_result - OUTBOUND_CTL_PENDING until the shard answered.
 * Any thread. */
int outbound_ctl_result(const struct outbound_ctl *req);

/* The shard hooks; global is a struct outbound_cfg. */
extern const struct net_deliver_ops outbound_ops;

#endif
