/* shard.c - the per-core io_uring SMTP server loop.
 *
 * One thread per shard owns a ring, a provided buffer ring, a table of
 * connection slots and a message store. Nothing here is shared with other
 * shards except: the phase (atomic), the open-connection total (atomic) and
 * the per-address table (a mutex, taken once per accept and per close, never
 * per message).
 *
 * Invariants:
 *  - every SQE carries op + generation + slot in user_data, never a pointer;
 *    a completion whose generation no longer matches its slot is stale: it
 *    is counted, its buffer (if any) returned, and it is dropped;
 *  - a slot is freed only when its in-flight count is zero (recv, send,
 *    shutdown, close, pending store appends and commit each count one);
 *  - a provided buffer is owned by exactly one of: the kernel, a connection's
 *    input queue, a pending store append; buf_ref counts the holders;
 *  - replies are appended to the slot's output buffer and sent once per loop
 *    turn (STYLE.md 9), at most one send in flight per connection;
 *  - the engine's input is fed in order from the queue; while a COMMIT or a
 *    full reply buffer is pending, feeding stops and, past a few queued
 *    buffers, the multishot recv is cancelled (re-armed when drained).
 * Timers: two FIFO lists, one per timeout length (command, data); a session
 * moves to the tail of one when it does something, so each list is sorted by
 * deadline and expiry looks only at the heads. The loop waits with a timeout
 * to the earliest head (io_uring_submit_and_wait_timeout), capped at 250 ms.
 * The delivery module's turn runs only at a boundary after one of its
 * completions or a hand-off from the store, else every
 * SHARD_DELIVER_IDLE_MS.
 * Panics (traps) only on an SQ that cannot be emptied.
 */
#define _GNU_SOURCE /* pthread_setaffinity_np, CPU_SET */
#include "net/shard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "core/buf.h"
#include "core/smtp_reply.h"
#include "core/smtp_server.h"
#include "net/evlog.h"
#include "net/proxy_in.h"
#include "net/ring.h"

#define SHARD_SQ_ENTRIES 4096
#define SHARD_BUF_COUNT 1024    /* provided buffers per shard */
#define SHARD_BUF_SIZE 16384
#define SHARD_OUT_SIZE 2048     /* reply buffer per session */
#define SHARD_SLOT_SPARE 256    /* slots beyond the limit, to send 421s */
#define SHARD_QUEUE_PAUSE 4     /* queued buffers before recv is paused */
#define SHARD_BODY_SLICES 64
#define SHARD_WAIT_MAX_MS 250
#define SHARD_DELIVER_IDLE_MS 10 /* delivery's turn when nothing woke it */
#define SHARD_SESS_HDR 16       /* slot index stored before the engine */
#define SHARD_TLS_BUFS 4        /* plaintext buffers a TLS session may hold */
#define SHARD_TLS_POOL 256      /* idle plaintext buffers a shard keeps */
#define NO_IDX UINT32_MAX
#define NO_BID UINT16_MAX

enum shard_op {
	OP_ACCEPT = 1, /* slot: listener index */
	OP_RECV,
	OP_SEND,
	OP_SHUTDOWN,
	OP_CLOSE,
	OP_CANCEL,
	OP_STORE = STORE_UD_OP, /* slot: the store's own tag */
	OP_AUTH_WAKE = 10,      /* the shard's auth inbox eventfd was written */
	OP_AUTH_DELAY = 11,     /* a failed AUTH's 535 is due */
};

enum conn_state { C_FREE = 0, C_OPEN, C_CLOSING };
enum timer_list { T_NONE = 0, T_CMD, T_DATA };

struct conn {
	uint32_t gen;
	int fd;
	uint8_t state;
	uint8_t tlist;
	bool recv_armed;
	bool recv_cancelled;  /* a cancel for the recv is in flight */
	bool eof;
	bool want_close;      /* close once the replies are sent */
	bool close_started;
	bool commit_wait;
	bool flush_wait;      /* the engine said FLUSH */
	bool in_flush;
	bool relays;          /* client inside --relay-net */
	bool ip_counted;
	bool tx_failed;       /* an append failed: the commit will be refused */
	uint16_t inflight;
	uint16_t qhead, qtail;
	uint16_t qcount;
	uint32_t sending;     /* bytes of out in the send in flight */
	uint32_t counted;     /* bytes of out already counted by class */
	uint32_t tprev, tnext;
	uint32_t flush_next;
	int64_t deadline;
	int64_t start_ms;
	unsigned msgs;
	struct smtp_server *eng; /* NULL for a session refused at accept */
	char *mem;               /* SHARD_SESS_HDR + engine + out buffer */
	struct buf out;
	struct store_tx *tx;
	char qid[STORE_QUEUE_ID_MAX];
	const char *reason;
	struct sockaddr_storage peer;  /* the client: from the PROXY header if any */
	char addr[INET6_ADDRSTRLEN];
	struct tls_conn *tls;         /* set once TLS starts (STARTTLS, --listen-tls) */
	uint8_t tls_phase;            /* enum sess_tls_phase */
	bool tls_lent;                /* qhead is lent to tls (tls_conn_lend) */
	bool auth_wait;               /* a credential check (or its delay) pending */
	bool auth_lockout;            /* ...and its answer is 421 */
	struct __kernel_timespec auth_ts; /* the delay of a failed AUTH's answer */
	uint16_t tls_appends[SHARD_TLS_BUFS]; /* store appends reading each tls_buf */
	char *tls_buf[SHARD_TLS_BUFS];  /* plaintext buffers, from the shard's pool */
	uint8_t tls_cur;              /* the tls_buf that plain points into */
	struct slice plain;           /* decrypted bytes not yet fed to the engine */
	struct proxy_parser *px;      /* set while the PROXY header is awaited
				       * (no greeting yet); lives in mem */
};

struct tlist {
	uint32_t head, tail;
};

struct shard {
	struct net_server *srv;
	unsigned idx;
	pthread_t thread;
	struct io_uring ring;
	struct ring_bufs bufs;
	int *lfd;               /* one per listener */
	struct conn *conns;
	uint32_t nconns;
	uint32_t free_head;     /* free slots linked through flush_next */
	uint32_t nopen;
	uint16_t *buf_ref;
	uint32_t *buf_off;
	uint32_t *buf_len;
	uint16_t *buf_next;
	struct tlist timers[3];
	uint32_t flush_head;
	bool starved;           /* some recv ended with -ENOBUFS */
	int64_t now;
	time_t date_t;          /* when date was formatted */
	char date[64];          /* the Received: header's date */
	void *store;
	void *deliver;          /* the delivery module, or NULL */
	bool deliver_due;       /* a delivery completion or hand-off came */
	int64_t deliver_last;   /* when delivery last had its turn */
	struct smtp_server_cfg ecfg;
	size_t eng_size;
	struct slice body[SHARD_BODY_SLICES];
	struct tls_slot_cache tls_cache; /* this shard's view of cfg.tls_server */
	char *tls_pool[SHARD_TLS_POOL];  /* idle TLS plaintext buffers */
	uint32_t tls_npool;
	struct auth_inbox auth_in;       /* results of this shard's AUTH checks */
	uint64_t auth_efd_val;           /* the eventfd read's target */
	struct shard_stats st;
	int status;             /* 0 running, 1 up, <0 failed at start */
	char err[128];
};

struct ipent {
	uint8_t key[17]; /* family byte + address; key[0] == 0: empty */
	uint32_t count;
};

struct net_server {
	struct net_cfg cfg;
	struct net_listener *listen;
	struct shard *shards;
	int phase;
	unsigned open_total;
	pthread_mutex_t ip_lock;
	struct ipent *ips;
	size_t nips;            /* a power of two */
	bool started;
};

#define STAT_ADD(sh, f, n) __atomic_store_n(&(sh)->st.f, (sh)->st.f + (n), __ATOMIC_RELAXED)

/* TLS on a session (net/tls.h): STARTTLS sends its 220 in clear first
 * (CLEAR_OUT), then both kinds handshake (HS) before the engine sees a
 * byte; once UP, received ciphertext is decrypted one record at a time
 * into one of the session's plaintext buffers (tls_buf, up to
 * SHARD_TLS_BUFS, taken from the shard's pool) and fed from there, and
 * replies are encrypted at the loop boundary. Body slices handed to the
 * store carry SHARD_TAG_TLS | the buffer's index: a buffer is not refilled
 * while an append reads it, but the next record is decrypted into another
 * one meanwhile, so a large body is not serialised behind each spool
 * write. A session holds no buffer once its plaintext is fed and its
 * appends are written: an idle TLS session costs no plaintext memory. */
enum sess_tls_phase { TLS_NONE = 0, TLS_CLEAR_OUT, TLS_HS, TLS_HS_IMPLICIT, TLS_UP };
#define SHARD_TAG_TLS 0x10000u
#define SHARD_TAG_TLS_BUF 0xffu /* the tls_buf index in a SHARD_TAG_TLS tag */

struct conn;
static struct slice sess_out(struct shard *sh, struct conn *c);
static bool sess_tls_sent(struct shard *sh, struct conn *c, size_t n);
static void sess_log_end(struct shard *sh, struct conn *c);
static void sess_tls_begin(struct shard *sh, struct conn *c, bool implicit);
static void sess_tls_feed(struct shard *sh, struct conn *c, struct smtp_server_io *io);
static void sess_tls_appended(struct shard *sh, struct conn *c, unsigned i);
static void sess_tls_trim(struct shard *sh, struct conn *c, bool all);
static void sess_starttls(struct shard *sh, struct conn *c, struct smtp_server_io *io);
static void sess_auth(struct shard *sh, struct conn *c, struct smtp_server_io *io);
static void sess_auth_answer(struct shard *sh, struct conn *c, bool ok);
static void auth_wake_arm(struct shard *sh);
static void auth_wake(struct shard *sh, int res);

/* ud_make - user_data from op, generation and slot */
static inline uint64_t ud_make(unsigned op, uint32_t gen, uint32_t slot)
{
	return ((uint64_t)op << 56) | ((uint64_t)(gen & 0xffffffu) << 32) | slot;
}

/* now_ms - the monotonic clock in milliseconds */
static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- per-address connection counts ---------------------------------------- */

/* ip_key - the table key of a peer address */
static void ip_key(const struct sockaddr_storage *sa, uint8_t key[17])
{
	memset(key, 0, 17);
	if (sa->ss_family == AF_INET6) {
		key[0] = 6;
		memcpy(key + 1, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
	} else {
		key[0] = 4;
		memcpy(key + 1, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
	}
}

/* ip_hash - FNV-1a over the key */
static size_t ip_hash(const uint8_t key[17])
{
	uint64_t h = 1469598103934665603ull;
	for (int i = 0; i < 17; i++)
		h = (h ^ key[i]) * 1099511628211ull;
	return (size_t)h;
}

/* ip_take - count one more session from sa; false past the limit */
static bool ip_take(struct net_server *s, const struct sockaddr_storage *sa)
{
	uint8_t key[17];
	bool ok = false;

	ip_key(sa, key);
	pthread_mutex_lock(&s->ip_lock);
	size_t mask = s->nips - 1;
	for (size_t i = ip_hash(key) & mask;; i = (i + 1) & mask) {
		struct ipent *e = &s->ips[i];
		if (e->key[0] == 0) {
			memcpy(e->key, key, 17);
			e->count = 0;
		}
		if (memcmp(e->key, key, 17) == 0) {
			if (e->count < s->cfg.max_connections_per_ip) {
				e->count++;
				ok = true;
			}
			break;
		}
	}
	pthread_mutex_unlock(&s->ip_lock);
	return ok;
}

/* ip_release - one session from sa ended. Entries stay (count 0) and are
 * reused by the same address: the table has room for twice the limit of
 * sessions, and is rebuilt when it fills with stale entries. */
static void ip_release(struct net_server *s, const struct sockaddr_storage *sa)
{
	uint8_t key[17];

	ip_key(sa, key);
	pthread_mutex_lock(&s->ip_lock);
	size_t mask = s->nips - 1;
	for (size_t i = ip_hash(key) & mask; s->ips[i].key[0] != 0; i = (i + 1) & mask) {
		if (memcmp(s->ips[i].key, key, 17) == 0) {
			if (s->ips[i].count)
				s->ips[i].count--;
			break;
		}
	}
	pthread_mutex_unlock(&s->ip_lock);
}

/* ip_compact - drop entries whose count is zero, when the table is more
 * than half full (called under no lock from the controlling thread is not
 * allowed: called from ip_take's caller with the lock free) */
static void ip_compact(struct net_server *s)
{
	pthread_mutex_lock(&s->ip_lock);
	size_t used = 0;
	for (size_t i = 0; i < s->nips; i++)
		used += s->ips[i].key[0] != 0;
	if (used * 2 > s->nips) {
		struct ipent *old = malloc(s->nips * sizeof *old);
		if (old != NULL) {
			memcpy(old, s->ips, s->nips * sizeof *old);
			memset(s->ips, 0, s->nips * sizeof *old);
			size_t mask = s->nips - 1;
			for (size_t j = 0; j < s->nips; j++) {
				if (old[j].key[0] == 0 || old[j].count == 0)
					continue;
				size_t i = ip_hash(old[j].key) & mask;
				while (s->ips[i].key[0] != 0)
					i = (i + 1) & mask;
				s->ips[i] = old[j];
			}
			free(old);
		}
	}
	pthread_mutex_unlock(&s->ip_lock);
}

/* --- timers ------------------------------------------------------------------ */

/* timer_unlink - take c off its timer list */
static void timer_unlink(struct shard *sh, struct conn *c)
{
	if (c->tlist == T_NONE)
		return;
	struct tlist *l = &sh->timers[c->tlist];
	uint32_t self = (uint32_t)(c - sh->conns);
	if (c->tprev != NO_IDX)
		sh->conns[c->tprev].tnext = c->tnext;
	else
		l->head = c->tnext;
	if (c->tnext != NO_IDX)
		sh->conns[c->tnext].tprev = c->tprev;
	else
		l->tail = c->tprev;
	(void)self;
	c->tlist = T_NONE;
}

/* timer_touch - restart c's idle timer with the timeout for its phase; a
 * session waiting for us (commit) or going away has none */
static void timer_touch(struct shard *sh, struct conn *c)
{
	timer_unlink(sh, c);
	if (c->state != C_OPEN || c->want_close || c->commit_wait || c->eng == NULL)
		return;
	bool body = smtp_server_in_body(c->eng);
	unsigned secs = body ? sh->srv->cfg.data_timeout : sh->srv->cfg.command_timeout;
	enum timer_list which = body ? T_DATA : T_CMD;
	struct tlist *l = &sh->timers[which];
	uint32_t self = (uint32_t)(c - sh->conns);

	c->deadline = sh->now + (int64_t)secs * 1000;
	c->tlist = (uint8_t)which;
	c->tnext = NO_IDX;
	c->tprev = l->tail;
	if (l->tail != NO_IDX)
		sh->conns[l->tail].tnext = self;
	else
		l->head = self;
	l->tail = self;
}

/* --- buffers ------------------------------------------------------------------ */

/* buf_unref - one holder of bid is done; the last gives it back */
static void buf_unref(struct shard *sh, uint16_t bid)
{
	if (--sh->buf_ref[bid] == 0)
		ring_bufs_put(&sh->bufs, bid);
}

/* queue_drop - release every queued input buffer of c */
static void queue_drop(struct shard *sh, struct conn *c)
{
	if (c->tls_lent) {
		tls_conn_unlend(c->tls); /* its unread rest is dropped with it */
		c->tls_lent = false;
	}
	while (c->qhead != NO_BID) {
		uint16_t bid = c->qhead;
		c->qhead = sh->buf_next[bid];
		buf_unref(sh, bid);
	}
	c->qtail = NO_BID;
	c->qcount = 0;
}

/* queue_pop - c is done with its first queued buffer */
static void queue_pop(struct shard *sh, struct conn *c)
{
	uint16_t bid = c->qhead;

	c->qhead = sh->buf_next[bid];
	if (c->qhead == NO_BID)
		c->qtail = NO_BID;
	c->qcount--;
	buf_unref(sh, bid);
}

/* --- sending and closing ------------------------------------------------------ */

/* flush_mark - c has something to send or to close at the loop boundary */
static void flush_mark(struct shard *sh, struct conn *c)
{
	if (c->in_flush)
		return;
	c->in_flush = true;
	c->flush_next = sh->flush_head;
	sh->flush_head = (uint32_t)(c - sh->conns);
}

/* count_replies - count final reply lines appended since the last count */
static void count_replies(struct shard *sh, struct conn *c)
{
	const char *p = c->out.ptr + c->counted, *end = c->out.ptr + c->out.len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			break;
		if (nl - p >= 4 && p[3] == ' ' && p[0] >= '2' && p[0] <= '5')
			STAT_ADD(sh, replies[p[0] - '2'], 1);
		p = nl + 1;
	}
	c->counted = (uint32_t)(p - c->out.ptr);
}

/* conn_sqe - an SQE for c's operation op, counted in flight */
static struct io_uring_sqe *conn_sqe(struct shard *sh, struct conn *c, unsigned op)
{
	struct io_uring_sqe *sqe = ring_sqe(&sh->ring);
	c->inflight++;
	io_uring_sqe_set_data64(sqe, ud_make(op, c->gen, (uint32_t)(c - sh->conns)));
	return sqe;
}

/* conn_close_start - shutdown then close (hard-linked: close runs even if
 * shutdown fails); the recv ends with the shutdown */
static void conn_close_start(struct shard *sh, struct conn *c, const char *reason)
{
	if (c->close_started)
		return;
	if (c->reason == NULL)
		c->reason = reason;
	c->close_started = true;
	c->state = C_CLOSING;
	timer_unlink(sh, c);
	queue_drop(sh, c);
	struct io_uring_sqe *sqe = conn_sqe(sh, c, OP_SHUTDOWN);
	io_uring_prep_shutdown(sqe, c->fd, SHUT_RDWR);
	sqe->flags |= IOSQE_IO_HARDLINK;
	sqe = conn_sqe(sh, c, OP_CLOSE);
	io_uring_prep_close(sqe, c->fd);
}

/* conn_free - the last operation of a closing slot finished */
static void conn_maybe_free(struct shard *sh, struct conn *c)
{
	if (c->state != C_CLOSING || c->inflight != 0)
		return;
	struct net_server *s = sh->srv;
	if (c->tx != NULL) {
		s->cfg.store->abort(sh->store, c->tx);
		c->tx = NULL;
	}
	if (c->eng != NULL) {
		if (!s->cfg.quiet)
			sess_log_end(sh, c);
		smtp_server_fini(c->eng);
		__atomic_fetch_sub(&s->open_total, 1, __ATOMIC_RELAXED);
	}
	c->tls = tls_conn_free(c->tls);
	c->tls_lent = false;
	sess_tls_trim(sh, c, true);
	if (c->ip_counted)
		ip_release(s, &c->peer);
	free(c->mem);
	c->mem = NULL;
	c->eng = NULL;
	c->state = C_FREE;
	c->gen = (c->gen + 1) & 0xffffffu;
	c->flush_next = sh->free_head;
	sh->free_head = (uint32_t)(c - sh->conns);
	sh->nopen--;
	STAT_ADD(sh, connections_closed, 1);
}

/* flush_all - at the loop boundary: one send per session with replies,
 * and closes for sessions that have said everything */
static void flush_all(struct shard *sh)
{
	while (sh->flush_head != NO_IDX) {
		struct conn *c = &sh->conns[sh->flush_head];
		sh->flush_head = c->flush_next;
		c->in_flush = false;
		if (c->state != C_OPEN || c->sending)
			continue;
		count_replies(sh, c);
		struct slice o = sess_out(sh, c);
		if (c->state != C_OPEN)
			continue;
		if (o.len) {
			struct io_uring_sqe *sqe = conn_sqe(sh, c, OP_SEND);
			io_uring_prep_send(sqe, c->fd, o.ptr, o.len, MSG_NOSIGNAL);
			c->sending = (uint32_t)o.len;
		} else if (c->want_close) {
			conn_close_start(sh, c, NULL);
		}
	}
}

/* --- receiving ---------------------------------------------------------------- */

/* recv_arm - start the multishot recv into the shard's buffer ring */
static void recv_arm(struct shard *sh, struct conn *c)
{
	struct io_uring_sqe *sqe = conn_sqe(sh, c, OP_RECV);
	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = sh->bufs.bgid;
	c->recv_armed = true;
	c->recv_cancelled = false;
}

/* recv_pause - too much input queued: stop the recv (backpressure) */
static void recv_pause(struct shard *sh, struct conn *c)
{
	if (!c->recv_armed || c->recv_cancelled)
		return;
	struct io_uring_sqe *sqe = conn_sqe(sh, c, OP_CANCEL);
	io_uring_prep_cancel64(sqe, ud_make(OP_RECV, c->gen, (uint32_t)(c - sh->conns)), 0);
	c->recv_cancelled = true;
}

/* recv_resume - re-arm the recv of an open session that has room again */
static void recv_resume(struct shard *sh, struct conn *c)
{
	if (c->state == C_OPEN && !c->recv_armed && !c->eof && !c->want_close && c->eng != NULL &&
	    c->qcount < SHARD_QUEUE_PAUSE && sh->bufs.nfree > 0)
		recv_arm(sh, c);
}

/* --- driving the engine -------------------------------------------------------- */

/* sess_io - the engine's view of c's buffers */
static struct smtp_server_io sess_io(struct shard *sh, struct conn *c)
{
	return (struct smtp_server_io){ .replies = &c->out, .body = sh->body, .nbody = 0,
					.body_cap = SHARD_BODY_SLICES };
}

/* sess_token - a store token naming c (generation + slot) */
static uint64_t sess_token(struct shard *sh, struct conn *c)
{
	return ((uint64_t)c->gen << 32) | (uint32_t)(c - sh->conns);
}

/* sess_by_token - the session a store token names, or NULL when stale */
static struct conn *sess_by_token(struct shard *sh, uint64_t token)
{
	uint32_t slot = (uint32_t)token;
	if (slot >= sh->nconns || sh->conns[slot].gen != (uint32_t)(token >> 32) ||
	    sh->conns[slot].state == C_FREE) {
		STAT_ADD(sh, stale_completions, 1);
		return NULL;
	}
	return &sh->conns[slot];
}

/* sess_begin - a store transaction for the message now starting */
static void sess_begin(struct shard *sh, struct conn *c)
{
	if (c->tx != NULL || c->tx_failed)
		return;
	if (sh->srv->cfg.store->begin(sh->store, sess_token(sh, c), &c->tx, c->qid) != RM_OK) {
		c->tx = NULL;
		c->tx_failed = true;
	}
}

/* sess_body - hand body slices to the store; keep bid while it writes */
static void sess_body(struct shard *sh, struct conn *c, const struct smtp_server_io *io, uint16_t bid)
{
	struct iovec iov[SHARD_BODY_SLICES];
	const char *lo = bid != NO_BID ? ring_bufs_ptr(&sh->bufs, bid) : NULL;
	const char *hi = lo ? lo + sh->bufs.size : NULL;
	bool uses_bid = false;

	sess_begin(sh, c);
	if (c->tx == NULL || io->nbody == 0)
		return;
	for (size_t i = 0; i < io->nbody; i++) {
		iov[i].iov_base = (void *)(uintptr_t)io->body[i].ptr;
		iov[i].iov_len = io->body[i].len;
		if (io->body[i].ptr >= lo && io->body[i].ptr < hi)
			uses_bid = true;
	}
	/* Under TLS the slices are in the session's current plaintext
	 * buffer, which is not refilled until the store is done with them. */
	uint64_t tag = c->tls != NULL ? SHARD_TAG_TLS | c->tls_cur : uses_bid ? bid : NO_BID;
	int rc = sh->srv->cfg.store->append(sh->store, c->tx, iov, (int)io->nbody, tag);
	if (rc == RM_AGAIN) {
		c->inflight++;
		if (c->tls != NULL)
			c->tls_appends[c->tls_cur]++;
		else if (uses_bid)
			sh->buf_ref[bid]++;
	} else if (rc != RM_OK) {
		c->tx_failed = true;
	}
}

/* received_date - the Received: header's date, formatted once a second
 * (localtime_r and strftime per message were a visible share of its CPU) */
static const char *received_date(struct shard *sh)
{
	time_t t = time(NULL);
	struct tm tm;

	if (t != sh->date_t || sh->date[0] == '\0') {
		localtime_r(&t, &tm);
		strftime(sh->date, sizeof sh->date, "%a, %d %b %Y %H:%M:%S %z", &tm);
		sh->date_t = t;
	}
	return sh->date;
}

/* received_header - the RFC 5321 §4.4 trace header for c's message, by
 * the engine's helper; 0 when it does not fit */
static size_t received_header(struct shard *sh, struct conn *c, char *out, size_t cap)
{
	char client[INET6_ADDRSTRLEN + 8];
	struct buf b;
	const char *date = received_date(sh);

	size_t k = 0, alen = strnlen(c->addr, sizeof c->addr);

	/* "[addr]" or "[IPv6:addr]" (RFC 5321 §4.1.3), without a printf */
	client[k++] = '[';
	if (c->peer.ss_family == AF_INET6) {
		memcpy(client + k, "IPv6:", 5);
		k += 5;
	}
	memcpy(client + k, c->addr, alen);
	k += alen;
	client[k++] = ']';
	buf_init(&b, out, cap);
	if (smtp_server_received(c->eng, &b, slice_make(client, k), slice_cstr(c->qid), slice_cstr(date)) != RM_OK)
		return 0;
	return b.len;
}

/* sess_commit - the end of a message: make it durable, then answer */
static void sess_commit(struct shard *sh, struct conn *c, struct smtp_server_io *io, uint16_t bid)
{
	char hdr[2048];

	if (io->nbody)
		sess_body(sh, c, io, bid); /* the message's last bytes */
	sess_begin(sh, c);
	if (c->tx == NULL || c->tx_failed) {
		if (c->tx != NULL)
			sh->srv->cfg.store->abort(sh->store, c->tx);
		c->tx = NULL;
		c->tx_failed = false;
		STAT_ADD(sh, commits_failed, 1);
		smtp_server_committed(c->eng, RM_EIO, SLICE_NULL, io);
		return;
	}
	size_t n = received_header(sh, c, hdr, sizeof hdr);
	int rc = sh->srv->cfg.store->commit(sh->store, c->tx, smtp_server_tx(c->eng), slice_cstr(c->addr),
					   slice_make(hdr, n));
	if (rc != RM_OK) {
		sh->srv->cfg.store->abort(sh->store, c->tx);
		c->tx = NULL;
		STAT_ADD(sh, commits_failed, 1);
		smtp_server_committed(c->eng, rc == RM_ELIMIT ? RM_ELIMIT : RM_EIO, SLICE_NULL, io);
		return;
	}
	c->commit_wait = true;
	c->inflight++;
}

static void sess_proxy(struct shard *sh, struct conn *c);

/* sess_event - act on what one feed of the engine returned; bid is the
 * receive buffer fed (NO_BID for TLS plaintext) */
static void sess_event(struct shard *sh, struct conn *c, enum smtp_server_ev ev,
		       struct smtp_server_io *io, uint16_t bid)
{
	switch (ev) {
	case SMTP_EV_NONE:
		break;
	case SMTP_EV_FLUSH:
		c->flush_wait = true;
		break;
	case SMTP_EV_BODY:
		sess_body(sh, c, io, bid);
		break;
	case SMTP_EV_COMMIT:
		sess_commit(sh, c, io, bid);
		break;
	case SMTP_EV_ABORT:
		if (c->tx != NULL)
			sh->srv->cfg.store->abort(sh->store, c->tx);
		c->tx = NULL;
		c->tx_failed = false;
		break;
	case SMTP_EV_STARTTLS:
		sess_starttls(sh, c, io);
		break;
	case SMTP_EV_AUTH:
		sess_auth(sh, c, io);
		break;
	case SMTP_EV_CLOSE:
		c->want_close = true;
		c->reason = c->reason ? c->reason : "engine";
		break;
	}
}

/* sess_pump - feed queued input to the engine until it is consumed or the
 * engine must wait; then arrange replies, timers and the recv */
static void sess_pump(struct shard *sh, struct conn *c)
{
	struct smtp_server_io io = sess_io(sh, c);

	if (c->px != NULL)
		sess_proxy(sh, c);
	if (c->state != C_OPEN)
		return;
	if (c->tls != NULL)
		sess_tls_feed(sh, c, &io);
	else while (c->qhead != NO_BID && c->state == C_OPEN && !c->want_close && !c->commit_wait &&
	       !c->flush_wait && c->px == NULL) {
		uint16_t bid = c->qhead;
		const char *p = ring_bufs_ptr(&sh->bufs, bid) + sh->buf_off[bid];
		size_t used = 0;

		io.nbody = 0;
		enum smtp_server_ev ev = smtp_server_feed(c->eng, p, sh->buf_len[bid], &used, &io);
		if (used > sh->buf_len[bid])
			used = sh->buf_len[bid];
		sh->buf_off[bid] += (uint32_t)used;
		sh->buf_len[bid] -= (uint32_t)used;
		sess_event(sh, c, ev, &io, bid);
		if (sh->buf_len[bid] == 0 || c->want_close) {
			if (c->qhead == bid)
				queue_pop(sh, c);
		} else if (ev == SMTP_EV_NONE && used == 0) {
			break; /* the engine takes nothing more now */
		}
	}
	if (c->want_close)
		queue_drop(sh, c);
	if (c->out.len > c->sending || c->want_close || (c->tls && tls_conn_out_pending(c->tls)))
		flush_mark(sh, c);
	if (c->px == NULL) /* the header's deadline runs from accept, not from its last byte */
		timer_touch(sh, c);
	if (c->qcount >= SHARD_QUEUE_PAUSE)
		recv_pause(sh, c);
	else
		recv_resume(sh, c);
}

/* store_appended - the store wrote an append: release its buffer */
static void store_appended(void *ctx, uint64_t token, uint64_t tag)
{
	struct shard *sh = ctx;
	if (tag != NO_BID && !(tag & SHARD_TAG_TLS))
		buf_unref(sh, (uint16_t)tag);
	struct conn *c = sess_by_token(sh, token);
	if (c == NULL)
		return;
	c->inflight--;
	if (tag & SHARD_TAG_TLS)
		sess_tls_appended(sh, c, (unsigned)(tag & SHARD_TAG_TLS_BUF));
	conn_maybe_free(sh, c);
}

/* store_queued - the store hands a durable message to delivery, which
 * gets its turn at this loop boundary */
static void store_queued(void *ctx, const struct store_spool_ref *ref, const char *id,
			 const struct spool_msg *recovered)
{
	struct shard *sh = ctx;

	sh->deliver_due = true;
	sh->srv->cfg.deliver->queued(sh->deliver, ref, id, recovered);
}

/* store_inject_failed - a message delivery injected was not queued */
static void store_inject_failed(void *ctx, const char *id, int status)
{
	struct shard *sh = ctx;

	if (sh->srv->cfg.deliver->inject_failed != NULL)
		sh->srv->cfg.deliver->inject_failed(sh->deliver, id, status);
}

/* sess_received - c's message is durable and queued: count it and log it,
 * whether or not the client is still there to hear the 250 */
static void sess_received(struct shard *sh, struct conn *c)
{
	const struct smtp_tx *tx = smtp_server_tx(c->eng);
	char from[SMTP_PATH_MAX + 1] = "";
	uint64_t size = tx ? tx->body_bytes : 0;

	c->msgs++;
	STAT_ADD(sh, messages_received, 1);
	STAT_ADD(sh, received_bytes, size);
	if (sh->srv->cfg.quiet)
		return;
	if (tx != NULL) {
		/* fits: a mailbox is at most SMTP_PATH_MAX - 2 */
		struct buf b;
		buf_init(&b, from, sizeof from - 1);
		if (buf_put(&b, "<", 1) != RM_OK || buf_put_slice(&b, tx->from.mailbox) != RM_OK ||
		    buf_put(&b, ">", 1) != RM_OK)
			b.len = 0;
		from[b.len] = '\0';
	}
	evlog_received(c->qid, c->addr, from, tx ? (unsigned)tx->nrcpt : 0, size);
}

/* store_committed - the store's verdict on a commit: answer the client. A
 * message made durable after its client left is queued all the same (it
 * will be delivered), so it is counted and logged like any other. */
static void store_committed(void *ctx, uint64_t token, int status)
{
	struct shard *sh = ctx;
	struct conn *c = sess_by_token(sh, token);
	if (c == NULL)
		return;
	c->inflight--;
	c->commit_wait = false;
	c->tx = NULL;
	if (status == RM_OK)
		sess_received(sh, c);
	else
		STAT_ADD(sh, commits_failed, 1);
	if (c->state != C_OPEN) {
		conn_maybe_free(sh, c);
		return;
	}
	struct smtp_server_io io = sess_io(sh, c);
	smtp_server_committed(c->eng, status, slice_cstr(c->qid), &io);
	sess_pump(sh, c);
}

/* --- policy callbacks ------------------------------------------------------------ */

/* sess_of - the session an engine belongs to */
static struct conn *sess_of(struct shard *sh, const struct smtp_server *s)
{
	uint32_t slot;
	memcpy(&slot, (const char *)s - SHARD_SESS_HDR, sizeof slot);
	return &sh->conns[slot];
}

/* policy_cb_mail - free space on the spool */
static void policy_cb_mail(void *ctx, const struct smtp_server *s, const struct smtp_path *from,
			   const struct smtp_mail_params *p, struct smtp_verdict *v)
{
	struct shard *sh = ctx;
	(void)s;
	(void)from;
	(void)p;
	policy_mail(sh->srv->cfg.policy, v);
}

/* policy_cb_rcpt - the relay rule */
static void policy_cb_rcpt(void *ctx, const struct smtp_server *s, const struct smtp_path *to,
			   const struct smtp_rcpt_params *p, struct smtp_verdict *v)
{
	struct shard *sh = ctx;
	struct conn *c = sess_of(sh, s);
	(void)p;
	policy_rcpt(sh->srv->cfg.policy, c->relays, smtp_server_authed(s).len > 0, to, v);
}

/* --- TLS and AUTH on a session ---------------------------------------------------- */

static void sess_greet(struct shard *sh, struct conn *c);

/* sess_tls_begin - TLS starts on c: after STARTTLS (its 220 still goes out
 * in clear) or on an implicit-TLS listener (handshake at once) */
static void sess_tls_begin(struct shard *sh, struct conn *c, bool implicit)
{
	struct tls_slot *slot = sh->srv->cfg.tls_server;
	struct tls_ctx *ctx = slot != NULL ? tls_slot_get(slot, &sh->tls_cache) : NULL;

	c->tls = ctx != NULL ? tls_conn_new(ctx, NULL) : NULL;
	c->plain = SLICE_NULL;
	if (c->tls == NULL) {
		if (implicit) {
			c->want_close = true;
			conn_close_start(sh, c, "tls: unavailable");
		}
		return;
	}
	c->tls_phase = implicit ? TLS_HS_IMPLICIT : TLS_CLEAR_OUT;
	if (implicit)
		timer_touch(sh, c); /* the handshake has the command timeout */
}

/* sess_starttls - SMTP_EV_STARTTLS: the 220 is queued. Every byte already
 * received after the command is dropped unread (CVE-2011-0411: a command
 * injected in clear must not run inside the TLS session). */
static void sess_starttls(struct shard *sh, struct conn *c, struct smtp_server_io *io)
{
	queue_drop(sh, c);
	sess_tls_begin(sh, c, false);
	if (c->tls == NULL)
		smtp_server_tls_started(c->eng, false, io);
}

/* sess_tls_up - the handshake finished: count it, then greet (implicit
 * TLS) or tell the engine (STARTTLS) */
static void sess_tls_up(struct shard *sh, struct conn *c, struct smtp_server_io *io)
{
	bool implicit = c->tls_phase == TLS_HS_IMPLICIT;

	c->tls_phase = TLS_UP;
	STAT_ADD(sh, tls_handshakes, 1);
	if (tls_conn_is13(c->tls))
		STAT_ADD(sh, tls_sessions_13, 1);
	else
		STAT_ADD(sh, tls_sessions_12, 1);
	if (tls_conn_resumed(c->tls))
		STAT_ADD(sh, tls_resumed, 1);
	if (implicit)
		sess_greet(sh, c);
	else
		smtp_server_tls_started(c->eng, true, io);
}

/* sess_tls_fail - the handshake or a record failed, or the peer closed */
static void sess_tls_fail(struct shard *sh, struct conn *c, int rc)
{
	if (c->tls_phase != TLS_UP) {
		STAT_ADD(sh, tls_handshake_failures, 1);
		conn_close_start(sh, c, "tls: handshake failed");
	} else if (rc == RM_EIO) {
		c->want_close = true; /* close_notify */
		c->reason = c->reason ? c->reason : "client closed";
	} else {
		conn_close_start(sh, c, "tls: bad record");
	}
}

/* sess_tls_pool_put - a plaintext buffer back to the shard's pool */
static void sess_tls_pool_put(struct shard *sh, char *p)
{
	if (sh->tls_npool < SHARD_TLS_POOL)
		sh->tls_pool[sh->tls_npool++] = p;
	else
		free(p);
}

/* sess_tls_trim - give back c's plaintext buffers no append reads, but
 * the one holding unfed plaintext; all: every buffer (the slot is freed,
 * nothing reads them any more) */
static void sess_tls_trim(struct shard *sh, struct conn *c, bool all)
{
	for (unsigned i = 0; i < SHARD_TLS_BUFS; i++) {
		if (c->tls_buf[i] == NULL || (!all && c->tls_appends[i] != 0) ||
		    (!all && i == c->tls_cur && c->plain.len != 0))
			continue;
		sess_tls_pool_put(sh, c->tls_buf[i]);
		c->tls_buf[i] = NULL;
		c->tls_appends[i] = 0;
	}
}

/* sess_tls_buf - a plaintext buffer of c that no append reads, made
 * current: the current one when free, else another (from the pool, or
 * allocated); NULL when all are being written (or out of memory) */
static char *sess_tls_buf(struct shard *sh, struct conn *c)
{
	unsigned pick = SHARD_TLS_BUFS;

	for (unsigned k = 0; k < SHARD_TLS_BUFS; k++) {
		unsigned i = (c->tls_cur + k) % SHARD_TLS_BUFS;
		if (c->tls_appends[i] != 0)
			continue;
		if (c->tls_buf[i] != NULL) {
			pick = i;
			break;
		}
		if (pick == SHARD_TLS_BUFS)
			pick = i; /* empty: used if no allocated one is free */
	}
	if (pick == SHARD_TLS_BUFS)
		return NULL;
	if (c->tls_buf[pick] == NULL) {
		c->tls_buf[pick] = sh->tls_npool ? sh->tls_pool[--sh->tls_npool] : malloc(TLS_PLAIN_SIZE);
		if (c->tls_buf[pick] == NULL)
			return NULL;
	}
	c->tls_cur = (uint8_t)pick;
	return c->tls_buf[pick];
}

/* sess_tls_appended - an append from c's plaintext buffer i was written:
 * when it was the last, the buffer is free and feeding may go on */
static void sess_tls_appended(struct shard *sh, struct conn *c, unsigned i)
{
	if (i >= SHARD_TLS_BUFS || c->tls_appends[i] == 0)
		return;
	if (--c->tls_appends[i] == 0 && c->state == C_OPEN && c->tls != NULL)
		sess_pump(sh, c); /* decrypts into it, or gives it back */
}

/* sess_tls_read - decrypt the next record into a free plaintext buffer:
 * RM_AGAIN also when every buffer is still being written (*busy) */
static int sess_tls_read(struct shard *sh, struct conn *c, bool *busy)
{
	char *p = sess_tls_buf(sh, c);

	*busy = p == NULL;
	if (p == NULL) {
		for (unsigned i = 0; i < SHARD_TLS_BUFS; i++)
			if (c->tls_appends[i] != 0)
				return RM_AGAIN; /* an append's completion pumps again */
		return RM_ENOMEM;
	}
	return tls_conn_read_to(c->tls, p, TLS_PLAIN_SIZE, &c->plain);
}

/* sess_tls_feed - the TLS twin of sess_pump's loop: handshake, then
 * decrypt queued ciphertext one receive buffer at a time and feed the
 * plaintext to the engine */
static void sess_tls_feed(struct shard *sh, struct conn *c, struct smtp_server_io *io)
{
	while (c->state == C_OPEN && !c->want_close && !c->commit_wait && !c->flush_wait &&
	       !c->auth_wait && c->tls_phase != TLS_CLEAR_OUT) {
		if (c->plain.len == 0) {
			int rc;
			bool busy = false;
			if (c->tls_phase != TLS_UP)
				rc = tls_conn_handshake(c->tls);
			else
				rc = sess_tls_read(sh, c, &busy);
			if (busy && rc == RM_AGAIN)
				break; /* the store still reads every plaintext buffer */
			if (rc == RM_ENOMEM) {
				conn_close_start(sh, c, "tls: out of memory");
				return;
			}
			if (rc == RM_AGAIN) {
				/* The head buffer is lent to the library (read in
				 * place, no copy) until it says "again": it has
				 * read all of it then, and the buffer goes back. */
				if (c->tls_lent) {
					c->tls_lent = false;
					queue_pop(sh, c);
				}
				if (c->qhead == NO_BID)
					break;
				uint16_t bid = c->qhead;
				if (tls_conn_lend(c->tls, ring_bufs_ptr(&sh->bufs, bid) + sh->buf_off[bid],
						  sh->buf_len[bid]) != RM_OK) {
					conn_close_start(sh, c, "tls: out of memory");
					return;
				}
				c->tls_lent = true;
				continue;
			}
			if (rc != RM_OK) {
				sess_tls_fail(sh, c, rc);
				return;
			}
			if (c->tls_phase != TLS_UP)
				sess_tls_up(sh, c, io);
			continue;
		}
		size_t used = 0;
		io->nbody = 0;
		enum smtp_server_ev ev = smtp_server_feed(c->eng, c->plain.ptr, c->plain.len, &used, io);
		if (used > c->plain.len)
			used = c->plain.len;
		c->plain = slice_make(c->plain.ptr + used, c->plain.len - used);
		sess_event(sh, c, ev, io, NO_BID);
		if (ev == SMTP_EV_NONE && used == 0 && c->plain.len)
			break; /* the engine takes nothing more now */
	}
	sess_tls_trim(sh, c, false);
}

/* sess_out - what c's next send carries: its replies, or under TLS the
 * ciphertext they become (encrypted here, at the loop boundary) */
static struct slice sess_out(struct shard *sh, struct conn *c)
{
	if (c->tls == NULL || c->tls_phase == TLS_CLEAR_OUT)
		return buf_slice(&c->out);
	if (c->out.len && c->tls_phase == TLS_UP) {
		if (tls_conn_write(c->tls, c->out.ptr, c->out.len) != RM_OK) {
			conn_close_start(sh, c, "tls: write failed");
			return SLICE_NULL;
		}
		c->out.len = 0;
		c->counted = 0;
	}
	return tls_conn_out(c->tls);
}

/* sess_tls_sent - a send of a TLS session finished with n bytes; false
 * when c is not one (the caller handles the plain case) */
static bool sess_tls_sent(struct shard *sh, struct conn *c, size_t n)
{
	if (c->tls == NULL)
		return false;
	if (c->tls_phase == TLS_CLEAR_OUT) {
		buf_consume(&c->out, n);
		c->counted = c->counted > n ? c->counted - (uint32_t)n : 0;
		if (c->out.len) {
			flush_mark(sh, c);
			return true;
		}
		c->tls_phase = TLS_HS; /* the 220 is out: ciphertext from now on */
		sess_pump(sh, c);
		return true;
	}
	tls_conn_sent(c->tls, n);
	if (tls_conn_out_pending(c->tls) || c->out.len || c->want_close)
		flush_mark(sh, c);
	if (c->flush_wait && buf_room(&c->out) >= SMTP_SERVER_REPLY_ROOM) {
		c->flush_wait = false;
		sess_pump(sh, c);
	}
	return true;
}

/* sess_printable - src[0..n) into dst (cap > 0) with bytes outside
 * printable ASCII as '?': user names come from the client */
static void sess_printable(char *dst, size_t cap, struct slice src)
{
	size_t n = src.len < cap - 1 ? src.len : cap - 1;
	for (size_t i = 0; i < n; i++)
		dst[i] = src.ptr[i] > 0x20 && src.ptr[i] < 0x7f ? src.ptr[i] : '?';
	dst[n] = '\0';
}

/* sess_log_end - the session's end line: TLS version and cipher, user */
static void sess_log_end(struct shard *sh, struct conn *c)
{
	char user[260];
	bool up = c->tls != NULL && c->tls_phase == TLS_UP;

	sess_printable(user, sizeof user, smtp_server_authed(c->eng));
	evlog_session_sec(c->addr, (uint64_t)(sh->now - c->start_ms), c->msgs,
			  c->reason ? c->reason : "closed", up ? tls_conn_version(c->tls) : NULL,
			  up ? tls_conn_cipher(c->tls) : NULL, user);
}

/* sess_auth - SMTP_EV_AUTH: hand the credentials to the worker pool; the
 * engine takes no input until sess_auth_answer */
static void sess_auth(struct shard *sh, struct conn *c, struct smtp_server_io *io)
{
	struct auth *a = sh->srv->cfg.auth;

	if (a == NULL || auth_submit(a, &sh->auth_in, sess_token(sh, c), &c->peer,
				     smtp_server_auth_user(c->eng), smtp_server_auth_pass(c->eng)) != RM_OK) {
		smtp_server_auth_done(c->eng, false, io);
		return;
	}
	c->auth_wait = true;
}

/* sess_auth_answer - the check's verdict reaches the client: 235, 535, or
 * 421 and close for an address past the failure limit */
static void sess_auth_answer(struct shard *sh, struct conn *c, bool ok)
{
	char user[260], line[400];

	if (c->state != C_OPEN || !c->auth_wait)
		return;
	c->auth_wait = false;
	sess_printable(user, sizeof user, smtp_server_auth_user(c->eng));
	if (c->auth_lockout) {
		STAT_ADD(sh, auth_failures, 1);
		STAT_ADD(sh, auth_lockouts, 1);
		if (smtp_reply_puts(&c->out, 421, "4.7.0", "Too many failed authentication attempts") != RM_OK)
			c->out.len = 0;
		c->want_close = true;
		c->reason = "auth: too many failures";
	} else {
		struct smtp_server_io io = sess_io(sh, c);
		if (ok)
			STAT_ADD(sh, auth_successes, 1);
		else
			STAT_ADD(sh, auth_failures, 1);
		smtp_server_auth_done(c->eng, ok, &io);
	}
	if (!sh->srv->cfg.quiet) {
		snprintf(line, sizeof line, "client=%s user=%s result=%s", c->addr, user,
			 ok ? "ok" : c->auth_lockout ? "locked-out" : "failed");
		evlog_msg("info", "auth", line);
	}
	sess_pump(sh, c);
}

/* auth_wake_arm - wait (in the ring) for the auth inbox's doorbell */
static void auth_wake_arm(struct shard *sh)
{
	struct io_uring_sqe *sqe = ring_sqe(&sh->ring);
	io_uring_prep_read(sqe, sh->auth_in.efd, &sh->auth_efd_val, sizeof sh->auth_efd_val, 0);
	io_uring_sqe_set_data64(sqe, ud_make(OP_AUTH_WAKE, 0, 0));
}

/* auth_wake - results arrived: answer now, or after the failure delay */
static void auth_wake(struct shard *sh, int res)
{
	for (struct auth_result *r = auth_take(&sh->auth_in); r != NULL; r = auth_result_free(r)) {
		struct conn *c = sess_by_token(sh, r->token);
		if (c == NULL || c->state != C_OPEN || !c->auth_wait)
			continue;
		c->auth_lockout = r->lockout;
		if (!r->ok && r->delay_ms > 0) {
			c->auth_ts.tv_sec = r->delay_ms / 1000;
			c->auth_ts.tv_nsec = (long long)(r->delay_ms % 1000) * 1000000;
			io_uring_prep_timeout(conn_sqe(sh, c, OP_AUTH_DELAY), &c->auth_ts, 0, 0);
			continue;
		}
		sess_auth_answer(sh, c, r->ok);
	}
	if (res != -ECANCELED)
		auth_wake_arm(sh);
}

/* --- accepting ---------------------------------------------------------------------- */

/* accept_arm - multishot accept on listener i */
static void accept_arm(struct shard *sh, unsigned i)
{
	struct io_uring_sqe *sqe = ring_sqe(&sh->ring);
	io_uring_prep_multishot_accept(sqe, sh->lfd[i], NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, ud_make(OP_ACCEPT, 0, i));
}

/* refuse - answer a session we will not serve, then close it */
static void refuse(struct shard *sh, struct conn *c, const char *enh, const char *text)
{
	if (smtp_reply_puts(&c->out, 421, enh, text) != RM_OK)
		c->out.len = 0;
	c->want_close = true;
	c->reason = "refused";
	flush_mark(sh, c);
}

/* sess_greet - the client's address is final: the relay rule, then the
 * greeting */
static void sess_greet(struct shard *sh, struct conn *c)
{
	const struct policy *pol = sh->srv->cfg.policy;
	struct smtp_server_io io = sess_io(sh, c);

	if (c->tls == NULL && smtp_server_tls(c->eng)) {
		sess_tls_begin(sh, c, true); /* RFC 8314: the greeting comes encrypted */
		return;
	}
	c->relays = pol != NULL && policy_client_relays(pol, (const struct sockaddr *)&c->peer);
	if (smtp_server_greet(c->eng, &io) != RM_OK) {
		c->want_close = true;
		c->reason = "greeting";
	}
	flush_mark(sh, c);
	timer_touch(sh, c);
}

/* sess_proxy - feed queued input to c's PROXY header parser. A bad header
 * closes without a reply; a complete one replaces the client's address,
 * then the per-address limit applies to it and the session is greeted.
 * The bytes after the header stay queued for the engine. */
static void sess_proxy(struct shard *sh, struct conn *c)
{
	while (c->px != NULL && c->qhead != NO_BID && c->state == C_OPEN && !c->want_close) {
		uint16_t bid = c->qhead;
		const char *p = ring_bufs_ptr(&sh->bufs, bid) + sh->buf_off[bid];
		size_t used = 0;
		int rc = proxy_in_feed(c->px, p, sh->buf_len[bid], &used, &c->peer);

		if (rc == RM_EPROTO) {
			STAT_ADD(sh, proxy_invalid, 1);
			conn_close_start(sh, c, "proxy: bad header");
			return;
		}
		if (used > sh->buf_len[bid])
			used = sh->buf_len[bid];
		sh->buf_off[bid] += (uint32_t)used;
		sh->buf_len[bid] -= (uint32_t)used;
		if (sh->buf_len[bid] == 0 || rc == RM_AGAIN)
			queue_pop(sh, c);
		if (rc != RM_OK)
			continue;
		STAT_ADD(sh, proxy_accepted, 1);
		c->px = NULL;
		proxy_in_addr_text(&c->peer, c->addr, sizeof c->addr);
		if (!ip_take(sh->srv, &c->peer)) {
			STAT_ADD(sh, rejected_per_ip, 1);
			refuse(sh, c, "4.7.0", "Too many connections from your address");
			return;
		}
		c->ip_counted = true;
		sess_greet(sh, c);
	}
}

/* on_accept - a new connection on listener li */
static void on_accept(struct shard *sh, unsigned li, int fd)
{
	struct net_server *s = sh->srv;

	STAT_ADD(sh, connections_total, 1);
	if (sh->free_head == NO_IDX) {
		/* Every slot, spares included, is busy: no room even for a 421. */
		STAT_ADD(sh, rejected_max_conn, 1);
		close(fd);
		return;
	}
	struct conn *c = &sh->conns[sh->free_head];
	uint32_t slot = sh->free_head;
	sh->free_head = c->flush_next;
	sh->nopen++;
	uint32_t gen = c->gen;
	memset(c, 0, sizeof *c);
	c->gen = gen;
	c->fd = fd;
	c->state = C_OPEN;
	c->qhead = c->qtail = NO_BID;
	c->tprev = c->tnext = c->flush_next = NO_IDX;
	c->start_ms = sh->now;
	socklen_t alen = sizeof c->peer;
	if (getpeername(fd, (struct sockaddr *)&c->peer, &alen) != 0)
		c->peer.ss_family = AF_UNSPEC;
	proxy_in_addr_text(&c->peer, c->addr, sizeof c->addr);
	if (s->cfg.proxy_protocol && !proxy_in_trusted(s->cfg.proxy_trusted, &c->peer)) {
		STAT_ADD(sh, proxy_untrusted, 1); /* closed without a reply */
		conn_close_start(sh, c, "proxy: untrusted peer");
		return;
	}
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

	c->mem = malloc(SHARD_SESS_HDR + sh->eng_size + SHARD_OUT_SIZE +
			(s->cfg.proxy_protocol ? sizeof(struct proxy_parser) : 0));
	if (c->mem == NULL) {
		c->want_close = true;
		conn_close_start(sh, c, "no memory");
		return;
	}
	memcpy(c->mem, &slot, sizeof slot);
	buf_init(&c->out, c->mem + SHARD_SESS_HDR + sh->eng_size, SHARD_OUT_SIZE);

	int phase = __atomic_load_n(&s->phase, __ATOMIC_RELAXED);
	if (phase != NET_RUN) {
		STAT_ADD(sh, rejected_draining, 1);
		refuse(sh, c, "4.3.2", "Service shutting down, try again later");
		return;
	}
	if (__atomic_add_fetch(&s->open_total, 1, __ATOMIC_RELAXED) > s->cfg.max_connections) {
		__atomic_fetch_sub(&s->open_total, 1, __ATOMIC_RELAXED);
		STAT_ADD(sh, rejected_max_conn, 1);
		refuse(sh, c, "4.7.0", "Too many connections, try again later");
		return;
	}
	if (s->cfg.proxy_protocol) {
		/* The client's address comes with the header: the per-address
		 * limit, the relay rule and the greeting wait for it
		 * (sess_proxy), within the command timeout. */
		c->eng = (struct smtp_server *)(void *)(c->mem + SHARD_SESS_HDR);
		smtp_server_init(c->eng, &sh->ecfg, s->listen[li].tls);
		c->px = (struct proxy_parser *)(void *)(c->mem + SHARD_SESS_HDR + sh->eng_size + SHARD_OUT_SIZE);
		proxy_init(c->px);
		timer_touch(sh, c);
		recv_arm(sh, c);
		return;
	}
	if (!ip_take(s, &c->peer)) {
		__atomic_fetch_sub(&s->open_total, 1, __ATOMIC_RELAXED);
		STAT_ADD(sh, rejected_per_ip, 1);
		refuse(sh, c, "4.7.0", "Too many connections from your address");
		return;
	}
	c->ip_counted = true;
	c->eng = (struct smtp_server *)(void *)(c->mem + SHARD_SESS_HDR);
	smtp_server_init(c->eng, &sh->ecfg, s->listen[li].tls);
	sess_greet(sh, c);
	if (!c->want_close)
		recv_arm(sh, c);
}

/* --- completions --------------------------------------------------------------------- */

/* on_recv - bytes (or the end) of a session's multishot recv */
static void on_recv(struct shard *sh, struct conn *c, int res, uint32_t flags)
{
	bool more = flags & IORING_CQE_F_MORE;

	if (flags & IORING_CQE_F_BUFFER) {
		uint16_t bid = (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT);
		sh->bufs.nfree--;
		sh->buf_ref[bid] = 1;
		if (res <= 0 || c->state != C_OPEN || c->want_close) {
			buf_unref(sh, bid);
		} else {
			STAT_ADD(sh, socket_bytes, (uint64_t)res);
			sh->buf_off[bid] = 0;
			sh->buf_len[bid] = (uint32_t)res;
			sh->buf_next[bid] = NO_BID;
			if (c->qtail != NO_BID)
				sh->buf_next[c->qtail] = bid;
			else
				c->qhead = bid;
			c->qtail = bid;
			c->qcount++;
		}
	}
	if (!more) {
		c->recv_armed = false;
		c->inflight--;
		if (res == -ENOBUFS) {
			STAT_ADD(sh, enobufs, 1);
			sh->starved = true; /* backpressure: re-armed when buffers return */
		} else if (res == 0) {
			c->eof = true;
			c->want_close = true;
			if (c->reason == NULL)
				c->reason = "client closed";
		} else if (res < 0 && res != -ECANCELED) {
			c->eof = true;
			if (c->state == C_OPEN)
				conn_close_start(sh, c, "recv error");
		}
	}
	if (c->state == C_OPEN)
		sess_pump(sh, c);
	else
		conn_maybe_free(sh, c);
}

/* on_send - a send finished (maybe partly) */
static void on_send(struct shard *sh, struct conn *c, int res)
{
	c->inflight--;
	uint32_t sent = c->sending;
	c->sending = 0;
	if (c->state != C_OPEN) {
		conn_maybe_free(sh, c);
		return;
	}
	if (res < 0) {
		conn_close_start(sh, c, "send error");
		return;
	}
	if ((uint32_t)res > sent)
		res = (int)sent;
	if (sess_tls_sent(sh, c, (size_t)res))
		return;
	buf_consume(&c->out, (size_t)res);
	c->counted = c->counted > (uint32_t)res ? c->counted - (uint32_t)res : 0;
	if (c->out.len || c->want_close)
		flush_mark(sh, c);
	if (c->flush_wait && buf_room(&c->out) >= SMTP_SERVER_REPLY_ROOM) {
		c->flush_wait = false;
		sess_pump(sh, c);
	}
}

/* on_cqe - one completion: a single switch on the op (STYLE.md 7) */
static void on_cqe(struct shard *sh, const struct io_uring_cqe *cqe)
{
	uint64_t ud = cqe->user_data;
	unsigned op = (unsigned)(ud >> 56);
	uint32_t gen = (uint32_t)(ud >> 32) & 0xffffffu, slot = (uint32_t)ud;

	if (op == OP_ACCEPT) {
		if (cqe->res >= 0)
			on_accept(sh, slot, cqe->res);
		if (!(cqe->flags & IORING_CQE_F_MORE) &&
		    __atomic_load_n(&sh->srv->phase, __ATOMIC_RELAXED) != NET_STOP)
			accept_arm(sh, slot);
		return;
	}
	if (op == OP_STORE) {
		sh->srv->cfg.store->complete(sh->store, slot, cqe->res, cqe->flags);
		return;
	}
	if (op == NET_DELIVER_UD_OP) {
		if (sh->deliver != NULL)
			sh->srv->cfg.deliver->complete(sh->deliver, (uint32_t)ud, cqe->res, cqe->flags);
		sh->deliver_due = true;
		return;
	}
	if (op == OP_AUTH_WAKE) {
		auth_wake(sh, cqe->res);
		return;
	}
	if (slot >= sh->nconns || sh->conns[slot].gen != gen || sh->conns[slot].state == C_FREE) {
		STAT_ADD(sh, stale_completions, 1);
		if (cqe->flags & IORING_CQE_F_BUFFER) {
			sh->bufs.nfree--;
			ring_bufs_put(&sh->bufs, (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
		}
		return;
	}
	struct conn *c = &sh->conns[slot];
	switch (op) {
	case OP_AUTH_DELAY:
		c->inflight--;
		sess_auth_answer(sh, c, false);
		conn_maybe_free(sh, c);
		break;
	case OP_RECV:
		on_recv(sh, c, cqe->res, cqe->flags);
		break;
	case OP_SEND:
		on_send(sh, c, cqe->res);
		break;
	case OP_SHUTDOWN:
	case OP_CLOSE:
	case OP_CANCEL:
		c->inflight--;
		if (op == OP_CANCEL && c->state == C_OPEN)
			sess_pump(sh, c);
		conn_maybe_free(sh, c);
		break;
	default:
		STAT_ADD(sh, stale_completions, 1);
		break;
	}
}

/* timers_expire - idle sessions get 421 4.4.2 and are closed */
static void timers_expire(struct shard *sh)
{
	for (int t = T_CMD; t <= T_DATA; t++) {
		while (sh->timers[t].head != NO_IDX) {
			struct conn *c = &sh->conns[sh->timers[t].head];
			if (c->deadline > sh->now)
				break;
			timer_unlink(sh, c);
			if (c->tls != NULL && c->tls_phase != TLS_UP) {
				/* No handshake in time: nothing can be said. */
				STAT_ADD(sh, tls_handshake_failures, 1);
				conn_close_start(sh, c, "tls: handshake timeout");
				continue;
			}
			if (c->px != NULL) {
				/* No PROXY header in time: no reply either. */
				STAT_ADD(sh, proxy_timeout, 1);
				conn_close_start(sh, c, "proxy: timeout");
				continue;
			}
			struct smtp_server_io io = sess_io(sh, c);
			smtp_server_timeout(c->eng, &io);
			STAT_ADD(sh, timeouts, 1);
			c->want_close = true;
			c->reason = "timeout";
			queue_drop(sh, c);
			flush_mark(sh, c);
		}
	}
}

/* wait_ms - how long the loop may sleep */
static int64_t wait_ms(struct shard *sh)
{
	int64_t w = SHARD_WAIT_MAX_MS;
	for (int t = T_CMD; t <= T_DATA; t++) {
		if (sh->timers[t].head != NO_IDX) {
			int64_t d = sh->conns[sh->timers[t].head].deadline - sh->now;
			if (d < w)
				w = d < 0 ? 0 : d;
		}
	}
	return w;
}

/* starved_rearm - buffers came back: re-arm recvs that ran out */
static void starved_rearm(struct shard *sh)
{
	if (!sh->starved || sh->bufs.nfree < sh->bufs.count / 8)
		return;
	sh->starved = false;
	for (uint32_t i = 0; i < sh->nconns; i++)
		if (sh->conns[i].state == C_OPEN)
			recv_resume(sh, &sh->conns[i]);
}

/* stop_all - NET_STOP: close every session and stop accepting */
static void stop_all(struct shard *sh)
{
	for (uint32_t i = 0; i < sh->nconns; i++) {
		struct conn *c = &sh->conns[i];
		if (c->state == C_OPEN) {
			c->reason = "shutdown";
			conn_close_start(sh, c, "shutdown");
		}
	}
	for (size_t i = 0; i < sh->srv->cfg.nlisten; i++) {
		struct io_uring_sqe *sqe = ring_sqe(&sh->ring);
		io_uring_prep_cancel64(sqe, ud_make(OP_ACCEPT, 0, (uint32_t)i), 0);
		io_uring_sqe_set_data64(sqe, 0);
	}
}

/* publish - copy gauges into the counters the scraper reads */
static void publish(struct shard *sh)
{
	__atomic_store_n(&sh->st.buffers_free, sh->bufs.nfree, __ATOMIC_RELAXED);
}

/* deliver_turn_due - whether delivery gets this loop boundary's turn: when
 * one of its operations completed or the store handed it a message, else
 * every SHARD_DELIVER_IDLE_MS for its clocks (retries, timeouts, DNS, the
 * control inbox, load sharing). A receive-only turn then skips its scan of
 * every outbound slot (the largest user-space cost of a durable message). */
static bool deliver_turn_due(const struct shard *sh)
{
	return sh->deliver_due || sh->now - sh->deliver_last >= SHARD_DELIVER_IDLE_MS;
}

/* shard_loop - the event loop: completions, then the loop boundary */
static void shard_loop(struct shard *sh)
{
	bool stopping = false;
	int64_t stop_deadline = 0;

	evlog_batch_begin(); /* a turn's log lines go out in one write */
	for (;;) {
		sh->now = now_ms();
		int phase = __atomic_load_n(&sh->srv->phase, __ATOMIC_RELAXED);
		if (phase == NET_STOP && !stopping) {
			stopping = true;
			stop_deadline = sh->now + 2000;
			stop_all(sh);
			if (sh->deliver != NULL)
				sh->srv->cfg.deliver->stop(sh->deliver);
		}
		if (stopping && ((sh->nopen == 0 && sh->srv->cfg.store->pending(sh->store) == 0 &&
				  (sh->deliver == NULL || sh->srv->cfg.deliver->pending(sh->deliver) == 0)) ||
				 sh->now > stop_deadline))
			break;
		timers_expire(sh);
		flush_all(sh);

		struct io_uring_cqe *cqe = NULL;
		int64_t w = wait_ms(sh);
		struct __kernel_timespec ts = { .tv_sec = w / 1000, .tv_nsec = (w % 1000) * 1000000 };
		int rc = io_uring_submit_and_wait_timeout(&sh->ring, &cqe, 1, &ts, NULL);
		if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN) {
			evlog_msg("error", "ring", strerror(-rc));
			break;
		}
		sh->now = now_ms();
		unsigned head, n = 0;
		io_uring_for_each_cqe(&sh->ring, head, cqe) {
			on_cqe(sh, cqe);
			n++;
		}
		io_uring_cq_advance(&sh->ring, n);
		/* The loop boundary (STYLE.md 9): the store's group commit, then
		 * the replies it made possible, then re-arming. Delivery runs
		 * first so its journal records join the group commit. */
		if (sh->deliver != NULL && !stopping && deliver_turn_due(sh)) {
			sh->deliver_due = false;
			sh->deliver_last = sh->now;
			sh->srv->cfg.deliver->turn(sh->deliver, sh->now);
		}
		sh->srv->cfg.store->turn_end(sh->store);
		flush_all(sh);
		starved_rearm(sh);
		publish(sh);
		evlog_batch_end();
		if (!stopping)
			evlog_batch_begin();
	}
	evlog_batch_end();
}

/* shard_setup - the ring, buffers, slots and store of one shard */
static int shard_setup(struct shard *sh)
{
	struct net_server *s = sh->srv;

	if (ring_init(&sh->ring, SHARD_SQ_ENTRIES) != RM_OK) {
		snprintf(sh->err, sizeof sh->err, "shard %u: io_uring setup failed", sh->idx);
		return RM_EIO;
	}
	if (ring_bufs_init(&sh->bufs, &sh->ring, 0, SHARD_BUF_COUNT, SHARD_BUF_SIZE) != RM_OK) {
		snprintf(sh->err, sizeof sh->err, "shard %u: buffer ring setup failed", sh->idx);
		return RM_EIO;
	}
	sh->st.buffers_total = sh->bufs.count;
	sh->buf_ref = calloc(SHARD_BUF_COUNT, sizeof *sh->buf_ref);
	sh->buf_off = calloc(SHARD_BUF_COUNT, sizeof *sh->buf_off);
	sh->buf_len = calloc(SHARD_BUF_COUNT, sizeof *sh->buf_len);
	sh->buf_next = calloc(SHARD_BUF_COUNT, sizeof *sh->buf_next);
	sh->nconns = s->cfg.max_connections + SHARD_SLOT_SPARE;
	sh->conns = calloc(sh->nconns, sizeof *sh->conns);
	if (!sh->buf_ref || !sh->buf_off || !sh->buf_len || !sh->buf_next || !sh->conns) {
		snprintf(sh->err, sizeof sh->err, "shard %u: out of memory", sh->idx);
		return RM_ENOMEM;
	}
	for (uint32_t i = 0; i < sh->nconns; i++)
		sh->conns[i].flush_next = i + 1 < sh->nconns ? i + 1 : NO_IDX;
	sh->free_head = 0;
	sh->flush_head = NO_IDX;
	for (int t = 0; t < 3; t++)
		sh->timers[t].head = sh->timers[t].tail = NO_IDX;
	sh->eng_size = (smtp_server_size() + 15) & ~(size_t)15;
	sh->ecfg = (struct smtp_server_cfg){
		.hostname = slice_cstr(s->cfg.hostname),
		.max_message_size = s->cfg.max_message_size,
		.max_recipients = s->cfg.max_recipients,
		.max_errors = s->cfg.max_errors,
		.tls_available = s->cfg.tls_server != NULL,
		.auth_available = s->cfg.auth != NULL && s->cfg.tls_server != NULL,
		.no_chunking = s->cfg.no_chunking,
		.policy = { .mail = policy_cb_mail, .rcpt = policy_cb_rcpt, .ctx = sh },
		.alloc = &rm_alloc_libc,
	};
	if (s->cfg.engine_policy != NULL)
		sh->ecfg.policy = *s->cfg.engine_policy;
	struct store_env env = {
		.ring = &sh->ring,
		.shard = sh->idx,
		.cb = { .appended = store_appended, .committed = store_committed, .ctx = sh },
		.syncs = &sh->st.spool_syncs,
		.sync_ns_hist = sh->st.sync_hist,
		.body_copied = &sh->st.body_copied,
		.in_flight = &sh->st.spool_in_flight,
	};
	if (s->cfg.deliver != NULL) {
		struct net_deliver_env denv = { .ring = &sh->ring, .shard = sh->idx, .stats = &sh->st };
		sh->deliver = s->cfg.deliver->create(s->cfg.deliver_global, &denv);
		if (sh->deliver == NULL) {
			snprintf(sh->err, sizeof sh->err, "shard %u: delivery failed to start", sh->idx);
			return RM_EIO;
		}
		env.queued = store_queued;
		env.inject_failed = store_inject_failed;
		env.qctx = sh;
		sh->deliver_due = true;
	}
	if (s->cfg.auth != NULL) {
		if (auth_inbox_init(&sh->auth_in) != RM_OK) {
			snprintf(sh->err, sizeof sh->err, "shard %u: eventfd failed", sh->idx);
			return RM_EIO;
		}
		auth_wake_arm(sh);
	}
	sh->store = s->cfg.store->create(s->cfg.store_global, &env);
	if (sh->store == NULL) {
		snprintf(sh->err, sizeof sh->err, "shard %u: message store %s failed to start", sh->idx,
			 s->cfg.store->name);
		return RM_EIO;
	}
	for (unsigned i = 0; i < s->cfg.nlisten; i++)
		accept_arm(sh, i);
	if (io_uring_submit(&sh->ring) < 0) {
		snprintf(sh->err, sizeof sh->err, "shard %u: submit failed", sh->idx);
		return RM_EIO;
	}
	return RM_OK;
}

/* shard_teardown - free what shard_setup made */
static void shard_teardown(struct shard *sh)
{
	if (sh->deliver != NULL)
		sh->srv->cfg.deliver->destroy(sh->deliver);
	sh->deliver = NULL;
	if (sh->store != NULL)
		sh->srv->cfg.store->destroy(sh->store);
	sh->store = NULL;
	for (uint32_t i = 0; sh->conns && i < sh->nconns; i++) {
		struct conn *c = &sh->conns[i];
		if (c->state == C_FREE)
			continue;
		if (c->eng != NULL) {
			smtp_server_fini(c->eng);
			__atomic_fetch_sub(&sh->srv->open_total, 1, __ATOMIC_RELAXED);
		}
		if (c->ip_counted)
			ip_release(sh->srv, &c->peer);
		if (!c->close_started)
			close(c->fd);
		free(c->mem);
		c->state = C_FREE;
	}
	for (uint32_t i = 0; sh->conns && i < sh->nconns; i++) {
		sh->conns[i].tls = tls_conn_free(sh->conns[i].tls);
		sess_tls_trim(sh, &sh->conns[i], true);
	}
	while (sh->tls_npool)
		free(sh->tls_pool[--sh->tls_npool]);
	tls_slot_cache_fini(&sh->tls_cache);
	if (sh->ring.ring_fd > 0) {
		ring_bufs_fini(&sh->bufs, &sh->ring);
		io_uring_queue_exit(&sh->ring);
	}
	free(sh->conns);
	free(sh->buf_ref);
	free(sh->buf_off);
	free(sh->buf_len);
	free(sh->buf_next);
	sh->conns = NULL;
	sh->buf_ref = NULL;
	sh->buf_off = NULL;
	sh->buf_len = NULL;
	sh->buf_next = NULL;
}

/* shard_main - the shard thread */
static void *shard_main(void *arg)
{
	struct shard *sh = arg;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t set;

	if (ncpu > 0) {
		CPU_ZERO(&set);
		CPU_SET((int)(sh->idx % (unsigned long)ncpu), &set);
		(void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);
	}
	sh->ring.ring_fd = -1;
	if (shard_setup(sh) != RM_OK) {
		__atomic_store_n(&sh->status, -1, __ATOMIC_RELEASE);
		shard_teardown(sh);
		return NULL;
	}
	__atomic_store_n(&sh->status, 1, __ATOMIC_RELEASE);
	shard_loop(sh);
	shard_teardown(sh);
	return NULL;
}

/* --- the server ------------------------------------------------------------------------- */

/* listen_one - one SO_REUSEPORT listening socket on l */
static int listen_one(const struct net_listener *l, bool reuseport, char *err, size_t errlen)
{
	int one = 1;
	int fd = socket(l->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		snprintf(err, errlen, "listen %s: socket: %s", l->text, strerror(errno));
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (reuseport)
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
	if (l->sa.ss_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (bind(fd, (const struct sockaddr *)&l->sa, l->salen) < 0 || listen(fd, 4096) < 0) {
		snprintf(err, errlen, "listen %s: %s", l->text, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* net_server_new - check cfg and bind every shard's listeners */
int net_server_new(const struct net_cfg *cfg, struct net_server **out, char *err, size_t errlen)
{
	*out = NULL;
	if (cfg->threads == 0 || cfg->nlisten == 0 || cfg->store == NULL ||
	    (cfg->policy == NULL && cfg->engine_policy == NULL)) {
		snprintf(err, errlen, "server: nothing to listen on, no shard or no store");
		return RM_EINVAL;
	}
	struct net_server *s = calloc(1, sizeof *s);
	if (s == NULL)
		goto nomem;
	s->cfg = *cfg;
	pthread_mutex_init(&s->ip_lock, NULL);
	s->listen = calloc(cfg->nlisten, sizeof *s->listen);
	s->shards = calloc(cfg->threads, sizeof *s->shards);
	s->nips = 64;
	while (s->nips < 2 * (size_t)cfg->max_connections + 64)
		s->nips *= 2;
	s->ips = calloc(s->nips, sizeof *s->ips);
	if (s->listen == NULL || s->shards == NULL || s->ips == NULL)
		goto nomem;
	memcpy(s->listen, cfg->listen, cfg->nlisten * sizeof *s->listen);
	s->cfg.listen = s->listen;
	for (unsigned i = 0; i < cfg->threads; i++) {
		struct shard *sh = &s->shards[i];
		sh->srv = s;
		sh->idx = i;
		sh->lfd = malloc(cfg->nlisten * sizeof *sh->lfd);
		if (sh->lfd == NULL)
			goto nomem;
		for (size_t j = 0; j < cfg->nlisten; j++)
			sh->lfd[j] = -1;
	}
	for (size_t j = 0; j < cfg->nlisten; j++) {
		/* A plain bind first: SO_REUSEPORT would otherwise let us join
		 * another process's listener on the same port unnoticed. */
		int probe = listen_one(&s->listen[j], false, err, errlen);
		if (probe < 0)
			goto fail;
		close(probe);
		for (unsigned i = 0; i < cfg->threads; i++) {
			s->shards[i].lfd[j] = listen_one(&s->listen[j], true, err, errlen);
			if (s->shards[i].lfd[j] < 0)
				goto fail;
		}
	}
	*out = s;
	return RM_OK;
nomem:
	snprintf(err, errlen, "server: out of memory");
fail:
	net_server_free(s);
	return RM_EIO;
}

/* net_server_start - start the shard threads; wait until they are up */
int net_server_start(struct net_server *s, char *err, size_t errlen)
{
	int rc = RM_OK;

	for (unsigned i = 0; i < s->cfg.threads; i++) {
		if (pthread_create(&s->shards[i].thread, NULL, shard_main, &s->shards[i]) != 0) {
			snprintf(err, errlen, "shard %u: cannot start thread", i);
			for (unsigned j = 0; j < i; j++)
				s->shards[j].status = s->shards[j].status; /* joined below */
			__atomic_store_n(&s->phase, NET_STOP, __ATOMIC_RELAXED);
			for (unsigned j = 0; j < i; j++)
				pthread_join(s->shards[j].thread, NULL);
			return RM_EIO;
		}
	}
	s->started = true;
	for (unsigned i = 0; i < s->cfg.threads; i++) {
		int st;
		while ((st = __atomic_load_n(&s->shards[i].status, __ATOMIC_ACQUIRE)) == 0)
			usleep(1000);
		if (st < 0 && rc == RM_OK) {
			snprintf(err, errlen, "%s", s->shards[i].err);
			rc = RM_EIO;
		}
	}
	if (rc != RM_OK) {
		net_server_set_phase(s, NET_STOP);
		net_server_join(s);
	}
	return rc;
}

/* net_server_set_phase - move to a later phase (never back) */
void net_server_set_phase(struct net_server *s, enum net_phase ph)
{
	int cur = __atomic_load_n(&s->phase, __ATOMIC_RELAXED);
	if ((int)ph > cur)
		__atomic_store_n(&s->phase, (int)ph, __ATOMIC_RELAXED);
	if (ph == NET_REFUSE)
		ip_compact(s);
}

/* net_server_open - sessions open now, across shards */
unsigned net_server_open(const struct net_server *s)
{
	return __atomic_load_n(&s->open_total, __ATOMIC_RELAXED);
}

/* net_server_stats - every shard's counters summed */
void net_server_stats(const struct net_server *s, struct shard_stats *sum)
{
	memset(sum, 0, sizeof *sum);
	for (unsigned i = 0; i < s->cfg.threads; i++) {
		const uint64_t *src = (const uint64_t *)(const void *)&s->shards[i].st;
		uint64_t *dst = (uint64_t *)(void *)sum;
		for (size_t k = 0; k < sizeof *sum / sizeof(uint64_t); k++)
			dst[k] += __atomic_load_n(&src[k], __ATOMIC_RELAXED);
	}
}

/* net_server_join - wait for the shard threads (after NET_STOP) */
void net_server_join(struct net_server *s)
{
	if (!s->started)
		return;
	for (unsigned i = 0; i < s->cfg.threads; i++)
		pthread_join(s->shards[i].thread, NULL);
	s->started = false;
}

/* net_server_free - close listeners and free */
struct net_server *net_server_free(struct net_server *s)
{
	if (s == NULL)
		return NULL;
	for (unsigned i = 0; s->shards && i < s->cfg.threads; i++) {
		if (s->cfg.auth != NULL && s->shards[i].auth_in.efd > 0)
			auth_inbox_fini(&s->shards[i].auth_in);
		for (size_t j = 0; s->shards[i].lfd && j < s->cfg.nlisten; j++)
			if (s->shards[i].lfd[j] >= 0)
				close(s->shards[i].lfd[j]);
		free(s->shards[i].lfd);
	}
	pthread_mutex_destroy(&s->ip_lock);
	free(s->shards);
	free(s->listen);
	free(s->ips);
	free(s);
	return NULL;
}

/* net_notify - send state to systemd when NOTIFY_SOCKET is set */
static void net_notify(const char *state)
{
#ifdef HAVE_SYSTEMD
	if (getenv("NOTIFY_SOCKET") != NULL)
		(void)sd_notify(0, state);
#else
	(void)state;
#endif
}

/* net_notify_ready - tell systemd we are ready when NOTIFY_SOCKET is set */
void net_notify_ready(void)
{
	net_notify("READY=1");
}

/* net_notify_stopping - tell systemd the drain has begun (Type=notify) */
void net_notify_stopping(void)
{
	net_notify("STOPPING=1");
}

/* net_raise_nofile - raise RLIMIT_NOFILE to at least want descriptors */
int net_raise_nofile(unsigned long want, char *err, size_t errlen)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return RM_OK;
	if (rl.rlim_cur >= want)
		return RM_OK;
	if (rl.rlim_max < want) {
		struct rlimit hard = { want, want };
		if (setrlimit(RLIMIT_NOFILE, &hard) == 0)
			return RM_OK;
	}
	rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < want) {
		snprintf(err, errlen, "RLIMIT_NOFILE is %llu, --max-connections needs %lu",
			 (unsigned long long)rl.rlim_cur, want);
		return RM_ELIMIT;
	}
	return RM_OK;
}
