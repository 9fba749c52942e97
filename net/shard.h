/* shard.h - the io_uring SMTP server runtime: shards, listeners, sessions.
 *
 * net_server_new binds, for each of cfg->threads shards, its own
 * SO_REUSEPORT socket on every listener address (so privileges can be
 * dropped afterwards); net_server_start starts one thread per shard, pinned
 * to a CPU, each owning one ring, one provided buffer ring, its sessions and
 * its message store, and returns once every ring is up. The phase (run,
 * refuse new sessions, stop) is set by the controlling thread; shards look
 * at it once per loop turn (they wake at least every 250 ms).
 *
 * Counters are per shard, written only by their shard (relaxed stores) and
 * summed by net_server_stats at scrape time from any thread.
 */
#ifndef RINGMTA_NET_SHARD_H
#define RINGMTA_NET_SHARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/err.h"
#include "net/auth.h"
#include "net/policy.h"
#include "net/store.h"
#include "net/tls.h"

struct net_listener {
	struct sockaddr_storage sa;
	socklen_t salen;
	bool tls;       /* implicit TLS (RFC 8314) */
	char text[64];
};

struct net_cfg {
	const struct net_listener *listen;
	size_t nlisten;
	unsigned threads;
	const char *hostname;
	uint64_t max_message_size;
	unsigned max_recipients;
	unsigned max_errors;
	unsigned max_connections;        /* total across shards */
	unsigned max_connections_per_ip;
	unsigned command_timeout;        /* seconds */
	unsigned data_timeout;           /* seconds */
	const struct policy *policy;     /* shared, read-only */
	const struct store_ops *store;
	void *store_global;              /* given to store->create */
	/* Optional, for programs other than the daemon (ringmta-sink): */
	const struct smtp_server_policy *engine_policy; /* when set, replaces
							  * the relay rule and
							  * the free-space check;
							  * policy may be NULL */
	bool no_chunking;                /* do not offer CHUNKING */
	bool quiet;                      /* no event line per message/session */
	/* Inbound TLS and AUTH (net/tls.h, net/auth.h), both optional and
	 * owned by the caller: tls_server set offers STARTTLS and serves
	 * --listen-tls; auth set (with TLS) offers AUTH PLAIN LOGIN. */
	struct tls_slot *tls_server;
	struct auth *auth;
	/* --proxy-protocol: every session opens with a PROXY header from a
	 * peer inside proxy_trusted (its network table only); see
	 * net/proxy_in.h */
	bool proxy_protocol;
	const struct policy *proxy_trusted;
	/* Optional delivery module, one instance per shard (net/outbound.h):
	 * created before the store (the store hands it every recovered and
	 * every committed message), run once per loop turn. */
	const struct net_deliver_ops *deliver;
	void *deliver_global;
};

/* What a shard's delivery module gets: its ring (operations carry
 * NET_DELIVER_UD_OP in the top byte of user_data and the module's 32-bit
 * tag below), the shard index and the shard's counters it may add to. */
#define NET_DELIVER_UD_OP 9u
struct shard_stats;
struct net_deliver_env {
	struct io_uring *ring;
	unsigned shard;
	struct shard_stats *stats;
};

/* The hooks of a per-shard delivery module. turn runs at a loop boundary
 * before the store's (so journal writes join the turn's group commit):
 * the one after any of its completions or a queued message, else at
 * least every 10 ms; stop is called once when the server stops; pending
 * counts operations in the kernel (the loop ends when it is 0). */
struct net_deliver_ops {
	void *(*create)(void *global, const struct net_deliver_env *env);
	void (*destroy)(void *d);
	void (*complete)(void *d, uint32_t tag, int res, uint32_t flags);
	void (*turn)(void *d, int64_t now_ms);
	void (*stop)(void *d);
	unsigned (*pending)(void *d);
	/* queued - the store's hand-off (struct store_env.queued) */
	void (*queued)(void *d, const struct store_spool_ref *ref, const char *id,
		       const struct spool_msg *recovered);
	/* inject_failed - a message it injected did not become durable
	 * (struct store_env.inject_failed) */
	void (*inject_failed)(void *d, const char *id, int status);
};

enum net_phase {
	NET_RUN = 0,    /* normal service */
	NET_REFUSE = 1, /* new sessions get 421 4.3.2 and are closed */
	NET_STOP = 2,   /* close everything and return */
};

/* Delivery latency buckets: <= 0.01 s doubling up to 10.24 s, then +Inf. */
#define NET_DELIVER_BUCKETS 12

/* Reply classes counted per shard (2xx..5xx). */
#define NET_REPLY_CLASSES 4

struct shard_stats {
	uint64_t connections_total;     /* accepted, rejected ones included */
	uint64_t connections_closed;
	uint64_t rejected_max_conn;     /* --max-connections */
	uint64_t rejected_per_ip;       /* --max-connections-per-ip */
	uint64_t rejected_draining;     /* 421 4.3.2 while draining */
	uint64_t messages_received;
	uint64_t received_bytes;        /* message bytes accepted */
	uint64_t socket_bytes;          /* bytes read from sockets */
	uint64_t replies[NET_REPLY_CLASSES];
	uint64_t timeouts;
	uint64_t tls_handshakes;        /* finished handshakes */
	uint64_t tls_handshake_failures;
	uint64_t tls_sessions_12;       /* sessions by TLS version */
	uint64_t tls_sessions_13;
	uint64_t tls_resumed;           /* handshakes that resumed a session */
	uint64_t auth_successes;
	uint64_t auth_failures;
	uint64_t auth_lockouts;         /* sessions closed with 421 after failures */
	uint64_t stale_completions;
	uint64_t enobufs;               /* recv found the buffer ring empty */
	uint64_t buffers_total;
	uint64_t buffers_free;
	uint64_t spool_syncs;
	uint64_t spool_in_flight;       /* gauge: spool writes and syncs in the kernel */
	uint64_t sync_hist[STORE_SYNC_BUCKETS];
	uint64_t body_copied;
	uint64_t commits_failed;
	uint64_t proxy_accepted;        /* valid PROXY headers */
	uint64_t proxy_invalid;         /* missing or malformed: closed silently */
	uint64_t proxy_untrusted;       /* peer outside --proxy-trusted */
	uint64_t proxy_timeout;         /* no header within the command timeout */
	/* Delivery (net/outbound.c), per recipient attempt outcome. */
	uint64_t delivered;
	uint64_t deferred;
	uint64_t bounced;
	uint64_t queue_messages;        /* gauge: messages not finished */
	uint64_t outbound_open;         /* gauge: outbound connections */
	uint64_t outbound_tls_handshakes;         /* outbound STARTTLS finished */
	uint64_t outbound_tls_resumed;            /* of them, resumed sessions */
	uint64_t outbound_tls_handshake_failures; /* failed, timed out or rejected */
	uint64_t deliver_hist[NET_DELIVER_BUCKETS]; /* arrival to delivery */
};

struct net_server;

/* net_server_new - check cfg and bind every shard's listeners. On error
 * returns RM_EIO/RM_EINVAL with one line in err. */
RM_MUST_USE int net_server_new(const struct net_cfg *cfg, struct net_server **out, char *err,
			       size_t errlen);

/* net_server_start - start the shard threads; returns once every ring is
 * set up and accepting, or an error (then the started ones are stopped) */
RM_MUST_USE int net_server_start(struct net_server *s, char *err, size_t errlen);

/* net_server_set_phase - move to a later phase (never back) */
void net_server_set_phase(struct net_server *s, enum net_phase ph);

/* net_server_open - sessions open now, across shards */
unsigned net_server_open(const struct net_server *s);

/* net_server_stats - every shard's counters summed */
void net_server_stats(const struct net_server *s, struct shard_stats *sum);

/* net_server_join - wait for the shard threads (after NET_STOP) */
void net_server_join(struct net_server *s);

/* net_server_free - close listeners and free; s must be joined or never
 * started. Returns NULL. */
struct net_server *net_server_free(struct net_server *s);

/* net_notify_ready - tell systemd we are ready when NOTIFY_SOCKET is set */
void net_notify_ready(void);

/* net_notify_stopping - tell systemd the drain has begun (Type=notify) */
void net_notify_stopping(void);

/* net_raise_nofile - raise RLIMIT_NOFILE to at least want descriptors */
RM_MUST_USE int net_raise_nofile(unsigned long want, char *err, size_t errlen);

#endif
