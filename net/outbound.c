/* outbound.c - per-shard delivery: messages -> scheduler jobs -> outbound
 * SMTP connections on the shard's ring (net/outbound.h).
 *
 * A connection slot carries op + generation + slot in the user_data of each
 * operation (tag: 4 bits op, 12 bits generation, 16 bits slot); a slot is
 * freed only when nothing of it is in the kernel. One send at a time per
 * connection; the engine (core/smtp_client.h) is fed only while no send is
 * in flight, because its commands are appended to the buffer being sent.
 *
 * The message goes out as the Received: header kept in the commit record
 * followed by the body read back from the spool segment, one io_uring read
 * of at most OB_RBUF bytes per piece into the connection's buffer (a copy by
 * the kernel; no body byte is copied in user space). With CHUNKING the
 * whole message is one "BDAT n LAST": a body that fits in that buffer is
 * read whole first (one read per extent) and goes out with the BDAT
 * command and the Received: header in one sendmsg; with PIPELINING too,
 * MAIL and the RCPTs are in that sendmsg (the engine returns BODY before
 * their replies). A bigger body streams in pieces. Else DATA with
 * dot-stuffing by slices (core/smtp_client.h smtp_stuff_*), sent by
 * sendmsg from the read buffer: a body that fits is gathered the same way
 * and leaves with its end of data in one sendmsg. splice for plain
 * BDAT would save the read copy (about 1 µs for 10 KB) at the price of a
 * pipe per connection and two operations per extent; not done.
 *
 * Outcomes per recipient: 2xx delivered, 5xx bounced, anything else (4xx,
 * connection lost, timeout) deferred per the retry schedule with the reply
 * kept, past the queue lifetime expired. Each goes to the spool's journal,
 * a log line and the shard's counters. Recipients that end bounced or
 * expired (and, under NOTIFY=SUCCESS, those relayed to a hop without DSN)
 * are gathered on the message; when none of its jobs is in flight any
 * more (the delivery round is over) they become one report
 * (net/outbound_dsn.h), queued through the spool as a new message.
 * MX: a destination without a route or smarthost is "mx:DOMAIN"; its hosts
 * come from net/dns.h, hosted under this module's ring op (O_DNS), looked
 * up when jobs are ready and kept for the answer's TTL (within
 * OB_MX_TTL_MIN_MS and OB_MX_TTL_MAX_MS; a permanent failure
 * OB_MX_KEEP_MS). An expired answer is looked up again and serves on
 * only while that lookup fails temporarily; each new connection takes
 * the addresses in preference order (equal preferences in a random order
 * per connection) on --mx-port and falls back to the next one on a failed
 * connection or a 4xx greeting. A null MX or NXDOMAIN fails the recipients
 * permanently (a bounce), a temporary DNS failure defers them.
 * STARTTLS per --outbound-tls (net/outbound_tls.h): after the 220 to
 * STARTTLS the handshake runs under one deadline for all of it (_tls_ms,
 * 60 s), so a hop that hangs in it frees its slot; then every send is
 * encrypted (with TLS the encryption is the body's one copy) and every
 * recv decrypted into in. A failed opportunistic handshake moves the job
 * at once to a plaintext connection and keeps that hop plaintext for
 * OB_TLS_PLAIN_MS (Postfix's "may"); under required or verify the engine
 * refuses a hop without STARTTLS and a failed handshake defers the job.
 * Timeouts: a deadline per connection from smtp_client_phase; the turn
 * scans the (few) connections; an expired one is shut down, which ends its
 * recv. The connect has a linked timeout.
 * Hand-off between shards (net/outbound.h "Placement"): a struct ob_carry
 * goes from the owner to a carrier and back through their control inboxes,
 * tagged in the reference's low bits (OB_REF_CARRY, OB_REF_RESULT; a plain
 * pointer is a struct outbound_ctl). The carrier wraps it in a proxy
 * ob_msg (carry set, not on the msgs list) with one job in its own
 * scheduler, so the connection code is the same for both; ob_job_done on a
 * proxy posts the replies back instead of journalling.
 * Threads: everything but outbound_global_* runs on the shard's thread; an
 * ob_carry belongs to one shard at a time (the mailbox hands it over), but
 * its cancel flag, which the owner may set while the carrier holds it.
 */
#define _GNU_SOURCE
#include "net/outbound.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include "core/arena.h"
#include "core/smtp_client.h"
#include "net/dns.h"
#include "net/evlog.h"
#include "net/outbound_dsn.h"
#include "net/ring.h"
#include "net/store.h"
#include "queue/mailbox.h"
#include "queue/msgid.h"
#include "queue/spool.h"

#define OB_SLOTS 4096u          /* connections per shard */
#define OB_IN 16384
#define OB_OUT 16384
#define OB_RBUF 65536
#define OB_IOV 128
#define OB_TEXT 256             /* reply text kept per recipient */
#define OB_SMALL_RCPT 32        /* recipients whose index lists fit the stack */
#define OB_MX_KEEP_MS 60000     /* a permanent MX failure is kept */
#define OB_MX_TTL_MIN_MS 1000   /* an MX answer is kept its TTL, at least */
#define OB_MX_TTL_MAX_MS 3600000 /* and at most */
#define OB_MX_STALE_RETRY_MS 5000 /* a refresh failed: the old answer serves, retried after */
#define O_DNS 15u               /* the resolver's operations (net/dns.h ud_base) */
#define OB_CTL_SLOTS 1024u      /* control requests and hand-offs waiting per shard */
#define OB_DELETE_WAIT_MS 5000u /* a deletion not durable by then is reported failed */
#define OB_REPORT_WAIT_MS 3600000 /* a report whose commit has not ended by then
				   * (neither durable nor failed): its recipients
				   * are not journalled */
#define OB_CARRY_GAP 2u         /* load difference that makes a hand-off */
#define OB_CARRY_MAX 256u       /* jobs a shard has with carriers at once */
#define OB_CARRY_SEGS 4u        /* segments of a carried body (more: stays local) */
#define OB_REF_CARRY 1u         /* inbox reference tags (low bits) */
#define OB_REF_RESULT 2u
#define OB_TLS_PLAIN_MS 3600000 /* opportunistic TLS that failed: plaintext to that hop this long */
#define OB_IDLE_GIVE_MS 20      /* idle this long: a slot another shard waits for is given back */

enum ob_op { O_CONNECT = 1, O_LTIMEOUT, O_RECV, O_SEND, O_READ, O_CLOSE, O_TLSREAD, O_WAKE };
enum ob_state { OC_FREE = 0, OC_CONNECTING, OC_OPEN, OC_CLOSING };
enum ob_body { B_NONE = 0, B_BODY, B_DONE, B_GATHER };

/* The journal record of a recipient in a report that is not queued yet. */
struct ob_dsn_j {
	uint32_t attempts;
	enum spool_outcome outcome;
};

/* A queued report not yet durable, and the records of the recipients it
 * reports on: they are journalled once the report is (ob_queued hears of
 * it), so no crash, power cut or failed commit can finish a recipient and
 * lose its report. A failed commit (ob_inject_failed) drops them: those
 * recipients are tried and reported again after a restart. */
struct ob_pend_rec {
	struct spool_jrec jr;      /* id and reply point into the ob_pend */
	char reply[OUTBOUND_DSN_TEXT];
};
struct ob_pend {
	struct ob_pend *next;
	char report[MSGID_LEN + 1];
	char id[MSGID_LEN + 1];    /* the message reported on */
	struct spool *sp;
	int64_t until;             /* ms: given up after this */
	uint32_t n;
	struct ob_pend_rec rec[];
};

struct ob_msg {
	struct sched_msg sm;
	const struct store_spool_ref *ref;
	char id[MSGID_LEN + 1];
	struct arena a;
	struct spool_env env;
	uint64_t total;            /* Received: + body */
	uint32_t busy;             /* jobs taken and not yet finished */
	struct outbound_dsn_item *dsn; /* outcomes for this round's report */
	struct ob_dsn_j *dsn_j;    /* their journal records, written once the
				    * report is queued (ob_dsn_flush) */
	uint32_t ndsn;
	bool deleted;              /* by the control socket: never sent again */
	struct ob_carry *carry;    /* a carrier's proxy of another shard's job */
	struct ob_msg *prev, *next;
};

struct ob;

/* A job carried by another shard. Owner's fields are set before the push
 * and read-only after; the carrier fills the result fields. */
struct ob_carry {
	struct ob *owner;
	unsigned owner_shard;
	struct sched_job *job;     /* the owner's, taken, untouched while away */
	struct ob_msg *m;          /* the owner's */
	struct spool_env env;      /* shallow copy: slices into m's arena */
	char id[MSGID_LEN + 1];
	const char *key;           /* the destination (the shared entry's key) */
	const struct outbound_hop *hop; /* NULL: MX, the carrier looks it up */
	uint32_t attempts;
	int fd[OB_CARRY_SEGS];     /* read-only, the carrier's to close */
	uint32_t seg[OB_CARRY_SEGS];
	uint32_t nseg;
	int cancel;                /* atomic: the owner deleted the message */
	/* the result */
	struct ob_res *res;        /* per recipient, or NULL: every one why */
	char why[256];
	bool hop_dsn;
	struct ob_carry *next;     /* owner: jobs away; carrier: results to post */
	uint32_t nrcpt;
	uint32_t rcpt[];
};

/* A shard's per-destination state, hung on sched_ldest.user. */
enum ob_mx_state { MX_NONE = 0, MX_PENDING, MX_OK, MX_FAIL };

struct ob_dest {
	const struct outbound_hop *hop; /* NULL: MX (needs DNS) */
	/* MX only: the last answer */
	struct ob *ob;
	uint8_t mx_state;
	bool mx_refreshing;        /* MX_PENDING after an MX_OK: the old answer
				    * (still in mx) serves if the lookup fails
				    * temporarily */
	int64_t mx_until;          /* ms: MX_OK and MX_FAIL hold until then */
	struct outbound_hop mx;    /* addresses in preference order */
	uint16_t mx_pref[OUTBOUND_ADDRS_MAX];
	unsigned mx_code;          /* MX_FAIL: code and reply */
	char mx_text[OB_TEXT];
	char mx_name[OUTBOUND_ADDRS_MAX][DNS_NAME_MAX + 1]; /* host of mx.addr[i] */
	int64_t tls_plain_until;   /* ms: opportunistic STARTTLS skipped until */
	struct ob_conn *idle;      /* most recently parked first */
	unsigned nconn;            /* this shard's connections to it, not closing */
	struct ob_dest *next;      /* every one of the shard's, to free */
};

struct ob_res {
	unsigned code;             /* 0: no final reply yet */
	char text[OB_TEXT];
};

struct ob_conn {
	uint32_t gen;
	uint32_t slot;
	uint8_t state;
	bool recv_armed, sending, shut, ever_ready, idle;
	int fd;
	uint16_t inflight;
	size_t addr_i;
	struct sched_ldest *ld;
	struct ob_dest *od;
	const struct outbound_hop *hop; /* od's, or mxhop */
	struct ob_conn *idle_next;
	int64_t idle_at;           /* ms: when it was parked idle */
	int64_t deadline;          /* ms; 0: none */
	unsigned msgs;
	/* STARTTLS (net/outbound_tls.h): from the handshake on, every byte
	 * sent is encrypted and every byte received decrypted into in */
	struct outbound_tls *tls;
	bool tls_hs;               /* the handshake is in progress */
	bool tls_fallback;         /* opportunistic handshake failed: the job
				    * moves to a plaintext connection */
	struct smtp_client cl;
	struct buf out;
	char outmem[OB_OUT];
	char in[OB_IN];
	size_t in_len, in_pos;
	/* the transaction */
	struct sched_job *job;
	bool started;              /* the job's transaction was sent */
	struct ob_msg *m;
	struct smtp_client_rcpt *rc;
	struct smtp_client_msg cm;
	struct ob_res *res;
	/* the body */
	uint8_t body;
	uint64_t boff;             /* bytes of the message handed to sends */
	char *rbuf;
	size_t rlen, rpos;
	struct smtp_stuff stuff;
	struct iovec siov[OB_IOV];
	struct msghdr mh;
	int sn, si;
	struct slice sl[OB_IOV];
	struct outbound_hop mxhop; /* this connection's order of MX addresses */
};

struct ob {
	const struct outbound_cfg *g;
	struct net_deliver_env env;
	struct sched *s;
	struct ob_conn **conns;
	uint32_t nconns;
	uint32_t nhi;              /* slots at and above this were never used:
				    * the per-turn scans stop here */
	uint32_t free_head;
	uint32_t *free_next;
	unsigned pending;
	bool stopped;
	int64_t now;               /* ms, monotonic */
	struct ob_msg *msgs;
	uint64_t nmsgs;
	struct ob_dest *dests;
	struct dns *dns;           /* created at the first MX lookup */
	bool hop_dsn;              /* the hop of the result in hand offers DSN */
	uint64_t rng;
	struct mbox *ctl;          /* control requests (g->_ctl[shard]) */
	struct outbound_ctl *dels; /* deletions waiting for their journal record */
	struct ob_pend *pend;      /* reports waiting to be durable */
	struct ob_carry *away;     /* our jobs other shards carry */
	unsigned naway;
	struct ob_msg *proxies;    /* jobs we carry for others */
	unsigned nproxy;
	unsigned nload;            /* shards below this index published a load */
	uint8_t wake[MSGID_SHARD_MAX + 1]; /* shards to ring at the turn's end */
	struct ob_carry *back;     /* results whose owner's inbox was full */
	char err[160];
};

#define OB_STAT_ADD(d, f, n) __atomic_store_n(&(d)->env.stats->f, (d)->env.stats->f + (n), __ATOMIC_RELAXED)

/* ob_wall_us - wall clock µs: the scheduler's clock (arrival times are) */
static uint64_t ob_wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000ull + (uint64_t)ts.tv_nsec / 1000;
}

/* ob_ud - user_data of op on c */
static uint64_t ob_ud(struct ob *d, struct ob_conn *c, unsigned op)
{
	(void)d;
	return ((uint64_t)NET_DELIVER_UD_OP << 56) | ((uint64_t)op << 28) | ((uint64_t)(c->gen & 0xfffu) << 16) |
	       c->slot;
}

static void ob_pump(struct ob *d, struct ob_conn *c);
static void ob_tls_step(struct ob *d, struct ob_conn *c, int rc);
static void ob_tls_fail(struct ob *d, struct ob_conn *c, const char *reason);
static void ob_body_next(struct ob *d, struct ob_conn *c);
static void ob_gather_send_data(struct ob *d, struct ob_conn *c);
static bool ob_gather(struct ob *d, struct ob_conn *c);
static void ob_conn_end(struct ob *d, struct ob_conn *c, const char *why, unsigned code);
static void ob_pend_check(struct ob *d, const char *id, int status);

/* --- global ------------------------------------------------------------------- */

/* outbound_hop_resolve - host:port into hop */
int outbound_hop_resolve(const char *host, uint16_t port, struct outbound_hop *hop, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	char portstr[8];

	memset(hop, 0, sizeof *hop);
	snprintf(portstr, sizeof portstr, "%u", port);
	if (strchr(host, ':') != NULL)
		snprintf(hop->text, sizeof hop->text, "[%s]:%u", host, port);
	else
		snprintf(hop->text, sizeof hop->text, "%s:%u", host, port);
	if (getaddrinfo(host, portstr, &hints, &res) != 0 || res == NULL) {
		snprintf(err, errlen, "next hop %s does not resolve", hop->text);
		return RM_EINVAL;
	}
	for (struct addrinfo *a = res; a && hop->naddr < OUTBOUND_ADDRS_MAX; a = a->ai_next) {
		memcpy(&hop->addr[hop->naddr], a->ai_addr, a->ai_addrlen);
		hop->addrlen[hop->naddr++] = a->ai_addrlen;
	}
	freeaddrinfo(res);
	return RM_OK;
}

/* ob_env_ms - a test-only override from the environment, or def */
static unsigned ob_env_ms(const char *name, unsigned def)
{
	const char *v = getenv(name);
	if (v == NULL || *v == '\0')
		return def;
	unsigned long n = strtoul(v, NULL, 10);
	return n > 0 && n < 86400000ul ? (unsigned)n : def;
}

/* outbound_global_init - the shared destination table and the timeouts */
int outbound_global_init(struct outbound_cfg *g)
{
	/* RFC 5321 §4.5.3.2 */
	static const unsigned secs[] = {
		[SMTP_CLIENT_PHASE_NONE] = 300, [SMTP_CLIENT_PHASE_GREETING] = 300,
		[SMTP_CLIENT_PHASE_EHLO] = 300, [SMTP_CLIENT_PHASE_TLS] = 300,
		[SMTP_CLIENT_PHASE_RSET] = 300, [SMTP_CLIENT_PHASE_MAIL] = 300,
		[SMTP_CLIENT_PHASE_RCPT] = 300, [SMTP_CLIENT_PHASE_DATA_INIT] = 120,
		[SMTP_CLIENT_PHASE_DATA_BLOCK] = 180, [SMTP_CLIENT_PHASE_DATA_END] = 600,
		[SMTP_CLIENT_PHASE_QUIT] = 300,
	};
	unsigned t = ob_env_ms("RINGMTA_TEST_OUTBOUND_TIMEOUT_MS", 0);

	for (size_t i = 0; i < sizeof g->_timeout_ms / sizeof g->_timeout_ms[0]; i++)
		g->_timeout_ms[i] = t ? t : (i < sizeof secs / sizeof secs[0] && secs[i] ? secs[i] : 300) * 1000u;
	g->_connect_ms = t ? t : 30000;
	g->_tls_ms = t ? t : 60000;
	g->_idle_ms = ob_env_ms("RINGMTA_TEST_OUTBOUND_IDLE_MS", 2000);
	g->_dtab = sched_dtab_new(&g->sched);
	g->_ctl = calloc(MSGID_SHARD_MAX + 1, sizeof *g->_ctl);
	g->_load = calloc(MSGID_SHARD_MAX + 1, sizeof *g->_load);
	g->_ringfd = calloc(MSGID_SHARD_MAX + 1, sizeof *g->_ringfd);
	for (unsigned i = 0; g->_load != NULL && g->_ringfd != NULL && i <= MSGID_SHARD_MAX; i++) {
		g->_load[i] = UINT_MAX;
		g->_ringfd[i] = -1;
	}
	return g->_dtab && g->_ctl && g->_load && g->_ringfd ? RM_OK : RM_ENOMEM;
}

/* outbound_global_fini - free what init made */
void outbound_global_fini(struct outbound_cfg *g)
{
	g->_dtab = sched_dtab_free(g->_dtab);
	for (unsigned i = 0; g->_ctl != NULL && i <= MSGID_SHARD_MAX; i++)
		if (g->_ctl[i] != NULL) {
			mbox_free(g->_ctl[i]);
			free(g->_ctl[i]);
		}
	free(g->_ctl);
	g->_ctl = NULL;
	free(g->_load);
	g->_load = NULL;
	free(g->_ringfd);
	g->_ringfd = NULL;
}

/* outbound_ctl_post - hand req to the shard's inbox */
int outbound_ctl_post(struct outbound_cfg *g, unsigned shard, struct outbound_ctl *req)
{
	struct mbox *mb = shard <= MSGID_SHARD_MAX && g->_ctl ? __atomic_load_n(&g->_ctl[shard], __ATOMIC_ACQUIRE)
							       : NULL;
	int rc;

	if (mb == NULL)
		return RM_EINVAL;
	__atomic_store_n(&req->_result, OUTBOUND_CTL_PENDING, __ATOMIC_RELAXED);
	rc = mbox_push(mb, (uint64_t)(uintptr_t)req);
	/* MBOX_WAKE: the shard wakes within SHARD_WAIT_MAX_MS anyway */
	return rc == RM_AGAIN ? RM_AGAIN : RM_OK;
}

/* outbound_ctl_result - the shard's answer, or pending */
int outbound_ctl_result(const struct outbound_ctl *req)
{
	return __atomic_load_n(&req->_result, __ATOMIC_ACQUIRE);
}

/* --- messages and routing ------------------------------------------------------- */

/* ob_domain - the domain of a mailbox (after the last '@'), lower-cased
 * into out; empty when none */
static void ob_domain(struct slice addr, char *out, size_t cap)
{
	size_t at = addr.len, n = 0;
	for (size_t i = 0; i < addr.len; i++)
		if (addr.ptr[i] == '@')
			at = i;
	for (size_t i = at + 1; i < addr.len && n + 1 < cap; i++) {
		char ch = addr.ptr[i];
		out[n++] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
	}
	out[n] = '\0';
}

/* ob_key - pre and s into key (cap bytes), cut to fit; once per recipient
 * per queued message, so no printf */
static void ob_key(char *key, size_t cap, const char *pre, const char *s)
{
	size_t a = strlen(pre), b = strlen(s);

	if (a > cap - 1)
		a = cap - 1;
	if (b > cap - 1 - a)
		b = cap - 1 - a;
	memcpy(key, pre, a);
	memcpy(key + a, s, b);
	key[a + b] = '\0';
}

/* ob_route - the destination of a recipient: key and hop (NULL for MX) */
static const struct outbound_hop *ob_route(const struct outbound_cfg *g, struct slice addr, char *key,
					   size_t cap)
{
	char dom[256];
	ob_domain(addr, dom, sizeof dom);
	for (size_t i = 0; i < g->nroutes; i++) {
		if (strcmp(g->routes[i].domain, dom) == 0) {
			ob_key(key, cap, "", g->routes[i].hop.text);
			return &g->routes[i].hop;
		}
	}
	if (g->smarthost != NULL) {
		ob_key(key, cap, "", g->smarthost->text);
		return g->smarthost;
	}
	ob_key(key, cap, "mx:", dom);
	return NULL;
}

/* ob_ldest - this shard's destination for key, with its state */
static struct sched_ldest *ob_ldest(struct ob *d, const char *key, const struct outbound_hop *hop)
{
	struct sched_ldest *ld = sched_ldest(d->s, slice_cstr(key));
	if (ld != NULL && ld->user == NULL) {
		struct ob_dest *od = calloc(1, sizeof *od);
		if (od == NULL)
			return NULL;
		od->hop = hop;
		od->ob = d;
		od->next = d->dests;
		d->dests = od;
		ld->user = od;
	}
	return ld;
}

/* ob_msg_free - a message is finished or dropped */
static void ob_msg_free(struct ob *d, struct ob_msg *m)
{
	if (m->prev)
		m->prev->next = m->next;
	else
		d->msgs = m->next;
	if (m->next)
		m->next->prev = m->prev;
	arena_free(&m->a);
	free(m->dsn);
	free(m->dsn_j);
	free(m);
	d->nmsgs--;
	__atomic_store_n(&d->env.stats->queue_messages, d->nmsgs, __ATOMIC_RELAXED);
}

/* ob_queued - the store's hand-off: load the envelope, split it into jobs
 * per destination (recovered recipients keep their state) */
static void ob_queued(void *arg, const struct store_spool_ref *ref, const char *id, const struct spool_msg *rec)
{
	struct ob *d = arg;
	struct ob_msg *m = calloc(1, sizeof *m);
	char line[200];

	if (rec == NULL && d->pend != NULL)
		ob_pend_check(d, id, RM_OK); /* a report we wait for, durable now? */
	if (m == NULL)
		goto fail;
	/* A queued message keeps only its envelope, in one chunk of just its
	 * size (a fixed 1 KiB chunk left about half of it unused with a few
	 * recipients; a 4 KiB one cost 4.6 KB per queued message). */
	ob_key(m->id, sizeof m->id, "", id);
	size_t need = spool_msg_need(ref->sp, slice_cstr(m->id));
	arena_init(&m->a, &rm_alloc_libc, need ? arena_chunk_for(need) : 1 << 10, SPOOL_REC_MAX * 2ull);
	m->ref = ref;
	if (spool_msg_load(ref->sp, slice_cstr(m->id), &m->a, &m->env) != RM_OK) {
		arena_free(&m->a);
		free(m);
		goto fail;
	}
	m->total = m->env.received.len + spool_env_body_len(&m->env);
	m->sm.arrival_us = m->env.arrival_us;
	m->sm.nrcpt = m->env.nrcpt;
	/* two recipient index lists, todo and grp: on the stack for the
	 * usual few */
	uint32_t small[2 * OB_SMALL_RCPT];
	size_t nidx = m->env.nrcpt + 1u;
	uint32_t *todo = nidx <= OB_SMALL_RCPT ? small : malloc(2 * sizeof(uint32_t) * nidx);
	uint32_t ntodo = 0;
	if (todo == NULL) {
		arena_free(&m->a);
		free(m);
		goto fail;
	}
	uint32_t *grp = todo + nidx;
	for (uint32_t i = 0; i < m->env.nrcpt; i++)
		if (rec == NULL || rec->rs[i].outcome == 0 || rec->rs[i].outcome == SPOOL_OUT_DEFERRED)
			todo[ntodo++] = i;
	m->sm.left = ntodo;
	m->next = d->msgs;
	if (d->msgs)
		d->msgs->prev = m;
	d->msgs = m;
	d->nmsgs++;
	__atomic_store_n(&d->env.stats->queue_messages, d->nmsgs, __ATOMIC_RELAXED);
	/* Group recipients by destination: one job each. */
	while (ntodo) {
		char key[SCHED_KEY_MAX], k2[SCHED_KEY_MAX];
		const struct outbound_hop *hop = ob_route(d->g, m->env.rcpt[todo[0]].addr, key, sizeof key);
		uint32_t n = 0, rest = 0, attempts = 0;
		uint64_t due = 0;
		for (uint32_t i = 0; i < ntodo; i++) {
			bool same = i == 0; /* the first one made the key */
			if (!same) {
				(void)ob_route(d->g, m->env.rcpt[todo[i]].addr, k2, sizeof k2);
				same = strcmp(key, k2) == 0;
			}
			if (same) {
				grp[n++] = todo[i];
				if (rec != NULL) {
					if (rec->rs[todo[i]].attempts > attempts)
						attempts = rec->rs[todo[i]].attempts;
					if (rec->rs[todo[i]].next_attempt_us > due)
						due = rec->rs[todo[i]].next_attempt_us;
				}
			} else {
				todo[rest++] = todo[i];
			}
		}
		ntodo = rest;
		struct sched_ldest *ld = ob_ldest(d, key, hop);
		if (ld == NULL || sched_job_add(d->s, &m->sm, ld, grp, n, due, attempts) != RM_OK) {
			/* Out of memory: these recipients wait for the next start. */
			m->sm.left -= n;
			evlog_msg("error", "delivery", "out of memory queueing a message");
		}
	}
	if (todo != small)
		free(todo);
	if (m->sm.jobs == 0)
		ob_msg_free(d, m);
	return;
fail:
	snprintf(line, sizeof line, "message %s cannot be loaded for delivery; it waits for a restart", id);
	evlog_msg("error", "delivery", line);
}

/* --- outcomes ------------------------------------------------------------------- */

/* ob_hist - count a delivery latency (ms) in the shard's histogram */
static void ob_hist(struct ob *d, uint64_t ms)
{
	unsigned b = 0;
	uint64_t le = 10;
	while (b < NET_DELIVER_BUCKETS - 1 && ms > le) {
		b++;
		le *= 2;
	}
	OB_STAT_ADD(d, deliver_hist[b], 1);
}

/* ob_log - one line per recipient per attempt (batched per loop turn) */
static void ob_log(const struct ob_msg *m, uint32_t r, const char *hop, const char *reply, uint64_t delay_ms,
		   const char *outcome, uint64_t next_us)
{
	char to[512];
	uint64_t now = ob_wall_us();
	const struct slice a = m->env.rcpt[r].addr;
	snprintf(to, sizeof to, "%.*s", (int)a.len, a.ptr);
	evlog_delivery(m->id, to, hop, outcome, delay_ms, reply, next_us > now ? (next_us - now + 999999) / 1000000 : 0);
}

/* ob_journal - write a recipient's journal record to sp; after: once the
 * commits queued before it have ended (a reported recipient's) */
static void ob_journal(struct spool *sp, const struct spool_jrec *jr, bool after)
{
	if ((after ? spool_journal_after(sp, jr) : spool_journal(sp, jr)) != RM_OK)
		evlog_msg("warn", "delivery", "journal record not written: the recipient may be tried again");
}

/* ob_dsn_add - keep a recipient's outcome for the message's report when
 * it is reported on: failed (bounced, expired: Status 4.4.7), or relayed
 * to a hop that does not pass DSN on (NOTIFY=SUCCESS). True when it is
 * kept: its journal record jr then waits for ob_dsn_flush, which queues
 * the report and keeps the record until the report is durable (struct
 * ob_pend), so neither a crash nor a failed commit can finish the
 * recipient and lose the report. */
static bool ob_dsn_add(struct ob *d, struct ob_msg *m, uint32_t r, enum sched_rstate st, const char *text,
		       const char *hop, const struct spool_jrec *jr)
{
	enum bounce_action act;

	if (st == SCHED_R_BOUNCED || st == SCHED_R_EXPIRED)
		act = BOUNCE_FAILED;
	else if (st == SCHED_R_DELIVERED && !d->hop_dsn && (m->env.rcpt[r].notify & SMTP_NOTIFY_SUCCESS))
		act = BOUNCE_RELAYED;
	else
		return false;
	if (m->dsn == NULL) {
		m->dsn = calloc(m->env.nrcpt, sizeof *m->dsn);
		m->dsn_j = calloc(m->env.nrcpt, sizeof *m->dsn_j);
		if (m->dsn == NULL || m->dsn_j == NULL) {
			free(m->dsn);
			free(m->dsn_j);
			m->dsn = NULL;
			m->dsn_j = NULL;
			evlog_msg("error", "bounce", "out of memory: a delivery report is lost");
			return false;
		}
	}
	if (m->ndsn >= m->env.nrcpt)
		return false;
	m->dsn_j[m->ndsn] = (struct ob_dsn_j){ jr->attempts, jr->outcome };
	struct outbound_dsn_item *it = &m->dsn[m->ndsn++];
	memset(it, 0, sizeof *it);
	it->rcpt = r;
	it->action = act;
	snprintf(it->diag, sizeof it->diag, "%s", text ? text : "");
	if (strncmp(hop, "mx:", 3) != 0)
		snprintf(it->remote, sizeof it->remote, "%.200s", hop);
	if (st == SCHED_R_EXPIRED)
		snprintf(it->status, sizeof it->status, "4.4.7");
	else
		outbound_dsn_status(act, it->diag, it->status);
	return true;
}

/* ob_dsn_jrec - the journal record of m's k-th reported recipient (its
 * slices point into m) */
static struct spool_jrec ob_dsn_jrec(const struct ob_msg *m, uint32_t k)
{
	return (struct spool_jrec){ .id = slice_cstr(m->id), .rcpt = m->dsn[k].rcpt,
				    .outcome = m->dsn_j[k].outcome, .attempts = m->dsn_j[k].attempts,
				    .reply = slice_cstr(m->dsn[k].diag) };
}

/* ob_pend_add - keep the records of m's reported recipients until the
 * report is durable; false when out of memory */
static bool ob_pend_add(struct ob *d, struct ob_msg *m, const char *report)
{
	struct ob_pend *p = calloc(1, sizeof *p + m->ndsn * sizeof p->rec[0]);
	if (p == NULL)
		return false;
	memcpy(p->report, report, sizeof p->report);
	memcpy(p->id, m->id, sizeof p->id);
	p->sp = m->ref->sp;
	p->until = d->now + OB_REPORT_WAIT_MS;
	p->n = m->ndsn;
	for (uint32_t k = 0; k < m->ndsn; k++) {
		struct ob_pend_rec *q = &p->rec[k];
		memcpy(q->reply, m->dsn[k].diag, sizeof q->reply);
		q->jr = ob_dsn_jrec(m, k);
		q->jr.id = slice_make(p->id, MSGID_LEN);
		q->jr.reply = slice_cstr(q->reply);
	}
	p->next = d->pend;
	d->pend = p;
	return true;
}

/* ob_pend_done - the report's commit ended (status RM_OK: durable) or was
 * given up on (why says so): journal the records it was waiting with, or
 * say they are not */
static void ob_pend_done(struct ob_pend *p, int status, const char *why)
{
	char line[256];

	for (uint32_t k = 0; status == RM_OK && k < p->n; k++)
		ob_journal(p->sp, &p->rec[k].jr, true);
	if (status != RM_OK) {
		snprintf(line, sizeof line,
			 "message %s: its delivery report %s did not become durable (%s); the recipients "
			 "it reports on are tried again after a restart",
			 p->id, p->report, why);
		evlog_msg("error", "bounce", line);
	}
	free(p);
}

/* ob_pend_check - the commit of the message id ended (status), or (id
 * NULL) time passed: finish the waiting reports it concerns */
static void ob_pend_check(struct ob *d, const char *id, int status)
{
	for (struct ob_pend **pp = &d->pend; *pp != NULL;) {
		struct ob_pend *p = *pp;
		bool ended = id != NULL && memcmp(p->report, id, MSGID_LEN) == 0;
		if (!ended && d->now < p->until) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		if (ended)
			ob_pend_done(p, status, rm_strerror(status));
		else
			ob_pend_done(p, RM_EIO, "its commit took over an hour");
	}
}

/* ob_inject_failed - the store could not commit a message we injected: a
 * report we wait for is given up */
static void ob_inject_failed(void *arg, const char *id, int status)
{
	struct ob *d = arg;

	if (d->pend != NULL)
		ob_pend_check(d, id, status == RM_OK ? RM_EIO : status);
}

/* ob_dsn_flush - the round is over: queue the message's report, if any.
 * The reported recipients' journal records wait for the report to be
 * durable (ob_pend_add); with no report due they are written at once. When
 * it could not be queued they are not written, so a restart tries those
 * recipients again and reports then. */
static void ob_dsn_flush(struct ob *d, struct ob_msg *m)
{
	int queued = 0;
	char line[200], report[MSGID_LEN + 1] = "";

	if (m->ndsn == 0)
		return;
	int rc = outbound_dsn_send(m->ref, d->g->helo, &m->env, m->id, m->dsn, m->ndsn, &queued, report);
	bool wait = rc == RM_OK && queued && report[0] != '\0' && ob_pend_add(d, m, report);
	/* out of memory for the wait: written now, the spool still holds
	 * them until the report's commit has ended */
	for (uint32_t k = 0; rc == RM_OK && !wait && k < m->ndsn; k++) {
		struct spool_jrec jr = ob_dsn_jrec(m, k);
		ob_journal(m->ref->sp, &jr, true);
	}
	m->ref->drain(m->ref->ctx);
	if (rc != RM_OK)
		snprintf(line, sizeof line, "message %s: the delivery report could not be queued: %s", m->id,
			 rm_strerror(rc));
	else if (queued)
		snprintf(line, sizeof line, "message %s: delivery report queued for %u recipient(s) as %s", m->id,
			 m->ndsn, report);
	else if (m->env.sender.len == 0)
		snprintf(line, sizeof line, "message %s from <> not delivered: dropped, never bounced", m->id);
	else
		snprintf(line, sizeof line, "message %s: no delivery report (NOTIFY)", m->id);
	evlog_msg(rc == RM_OK ? "info" : "error", "bounce", line);
	m->ndsn = 0;
}

/* ob_carry_close - close a carried body's fds */
static void ob_carry_close(struct ob_carry *h)
{
	for (uint32_t i = 0; i < h->nseg; i++)
		close(h->fd[i]);
	h->nseg = 0;
}

/* ob_carry_post - send a carried job's result to its owner; false when
 * the owner's inbox is full (the caller keeps it) */
static bool ob_carry_post(struct ob *d, struct ob_carry *h)
{
	struct mbox *mb = __atomic_load_n(&d->g->_ctl[h->owner_shard], __ATOMIC_ACQUIRE);
	return mbox_push(mb, (uint64_t)(uintptr_t)h | OB_REF_RESULT) != RM_AGAIN;
}

/* ob_carry_return - the carrier's attempt of a carried job is over: keep
 * the replies in the reference, drop the proxy, post the result back */
static void ob_carry_return(struct ob *d, struct sched_job *j, struct ob_msg *p, const struct ob_res *res,
			    const char *why)
{
	struct ob_carry *h = p->carry;

	h->res = NULL;
	if (res != NULL && (h->res = malloc(sizeof *res * h->nrcpt)) != NULL)
		memcpy(h->res, res, sizeof *res * h->nrcpt);
	snprintf(h->why, sizeof h->why, "%s", res != NULL && h->res == NULL ? "451 4.3.0 out of memory" : why);
	h->hop_dsn = d->hop_dsn;
	ob_carry_close(h);
	sched_job_drop(d->s, j);
	if (p->prev)
		p->prev->next = p->next;
	else
		d->proxies = p->next;
	if (p->next)
		p->next->prev = p->prev;
	free(p);
	d->nproxy--;
	d->wake[h->owner_shard] = 1;
	if (!ob_carry_post(d, h)) {
		h->next = d->back;
		d->back = h;
	}
}

/* ob_job_done - an attempt of job j is over: res[i] for j->rcpt[i]
 * (code 0: no reply, deferred with why); journal, log, count */
static void ob_job_done(struct ob *d, struct sched_job *j, struct ob_msg *m, const struct ob_res *res,
			const char *why)
{
	uint32_t n = j->nrcpt, attempts = j->attempts + 1;
	size_t one = sizeof(enum sched_rstate) + sizeof(uint32_t) + sizeof(const char *);
	char *mem;

	if (m->carry != NULL) {
		ob_carry_return(d, j, m, res, why);
		return;
	}
	if (m->deleted) {
		/* its recipients are journalled deleted: the job just goes */
		sched_job_drop(d->s, j);
		if (m->sm.jobs == 0)
			ob_msg_free(d, m);
		return;
	}
	mem = malloc(one * (n ? n : 1));
	if (mem == NULL) {
		/* Nothing is journalled: the recipients are tried again after a
		 * restart; keep the job out of the way. */
		sched_job_drop(d->s, j);
		evlog_msg("error", "delivery", "out of memory recording an outcome");
		return;
	}
	const char **text = (const char **)(void *)mem;
	enum sched_rstate *st = (enum sched_rstate *)(void *)(mem + sizeof(const char *) * n);
	uint32_t *rcpt = (uint32_t *)(void *)(mem + (sizeof(const char *) + sizeof(enum sched_rstate)) * n);
	uint64_t now = ob_wall_us(), next = 0;
	uint64_t delay = now > m->env.arrival_us ? (now - m->env.arrival_us) / 1000 : 0;
	const char *hop = j->ld->dest->key;

	for (uint32_t i = 0; i < n; i++) {
		unsigned code = res ? res[i].code : 0;
		rcpt[i] = j->rcpt[i];
		text[i] = code ? res[i].text : why;
		st[i] = code >= 200 && code < 300 ? SCHED_R_DELIVERED
			: code >= 500 && code < 600 ? SCHED_R_BOUNCED
						    : SCHED_R_DEFERRED;
	}
	bool gone = sched_job_result(d->s, j, st, now, &next);
	(void)gone;
	for (uint32_t i = 0; i < n; i++) {
		struct spool_jrec jr = { .id = slice_cstr(m->id), .rcpt = rcpt[i], .attempts = attempts,
					 .reply = slice_cstr(text[i]) };
		const char *outcome;
		switch (st[i]) {
		case SCHED_R_DELIVERED:
			jr.outcome = SPOOL_OUT_DELIVERED;
			outcome = "delivered";
			OB_STAT_ADD(d, delivered, 1);
			ob_hist(d, delay);
			break;
		case SCHED_R_BOUNCED:
			jr.outcome = SPOOL_OUT_BOUNCED;
			outcome = "bounced";
			OB_STAT_ADD(d, bounced, 1);
			break;
		case SCHED_R_EXPIRED:
			jr.outcome = SPOOL_OUT_EXPIRED;
			outcome = "expired";
			OB_STAT_ADD(d, bounced, 1);
			break;
		default:
			jr.outcome = SPOOL_OUT_DEFERRED;
			jr.next_attempt_us = next;
			outcome = "deferred";
			OB_STAT_ADD(d, deferred, 1);
			break;
		}
		if (!ob_dsn_add(d, m, rcpt[i], st[i], text[i], hop, &jr))
			ob_journal(m->ref->sp, &jr, false);
		ob_log(m, rcpt[i], hop, text[i], delay, outcome, jr.next_attempt_us);
	}
	m->ref->drain(m->ref->ctx);
	free(mem);
	if (m->busy)
		m->busy--;
	if (m->busy == 0 || m->sm.jobs == 0)
		ob_dsn_flush(d, m);
	if (m->sm.jobs == 0)
		ob_msg_free(d, m);
}

/* ob_job_fail_all - finish a job without a connection: every recipient
 * gets code and text */
static void ob_job_fail_all(struct ob *d, struct sched_job *j, unsigned code, const char *text)
{
	struct ob_res *res = calloc(j->nrcpt, sizeof *res);
	struct ob_msg *m = (struct ob_msg *)(void *)j->msg;
	if (res != NULL)
		for (uint32_t i = 0; i < j->nrcpt; i++) {
			res[i].code = code;
			snprintf(res[i].text, sizeof res[i].text, "%s", text);
		}
	ob_job_done(d, j, m, res, text);
	free(res);
}

/* ob_take - the next ready job of ld, counted in flight on its message */
static struct sched_job *ob_take(struct ob *d, struct sched_ldest *ld)
{
	struct sched_job *j = sched_take(d->s, ld);
	if (j != NULL)
		((struct ob_msg *)(void *)j->msg)->busy++;
	return j;
}

/* --- connections -------------------------------------------------------------- */

/* ob_sqe - an SQE for op on c, counted in flight */
static struct io_uring_sqe *ob_sqe(struct ob *d, struct ob_conn *c, unsigned op)
{
	struct io_uring_sqe *sqe = ring_sqe(d->env.ring);
	io_uring_sqe_set_data64(sqe, ob_ud(d, c, op));
	c->inflight++;
	d->pending++;
	return sqe;
}

/* ob_deadline - the timeout of what c waits for now */
static void ob_deadline(struct ob *d, struct ob_conn *c)
{
	enum smtp_client_phase p = smtp_client_phase(&c->cl);
	c->deadline = d->now + d->g->_timeout_ms[p < 16 ? p : 0];
}

/* ob_conn_new - a slot for a connection to od; NULL when none is free */
static struct ob_conn *ob_conn_new(struct ob *d, struct sched_ldest *ld)
{
	if (d->free_head == UINT32_MAX)
		return NULL;
	uint32_t slot = d->free_head;
	struct ob_conn *c = d->conns[slot];
	if (c == NULL) {
		c = calloc(1, sizeof *c);
		if (c == NULL)
			return NULL;
		d->conns[slot] = c;
	}
	d->free_head = d->free_next[slot];
	if (slot >= d->nhi)
		d->nhi = slot + 1;
	uint32_t gen = c->gen;
	char *rbuf = c->rbuf;
	memset(c, 0, offsetof(struct ob_conn, outmem));
	c->gen = gen;
	c->slot = slot;
	c->rbuf = rbuf;
	c->fd = -1;
	c->ld = ld;
	c->od = ld->user;
	c->od->nconn++;
	buf_init(&c->out, c->outmem, sizeof c->outmem);
	c->in_len = c->in_pos = 0;
	c->job = NULL;
	c->m = NULL;
	c->rc = NULL;
	c->res = NULL;
	c->body = B_NONE;
	c->sn = c->si = 0;
	__atomic_store_n(&d->env.stats->outbound_open, d->env.stats->outbound_open + 1, __ATOMIC_RELAXED);
	return c;
}

/* ob_connect - a socket and a connect to the current address, with a
 * linked timeout */
static void ob_connect(struct ob *d, struct ob_conn *c)
{
	const struct outbound_hop *hop = c->hop;
	const struct sockaddr_storage *sa = &hop->addr[c->addr_i];

	c->fd = socket(sa->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->fd < 0) {
		ob_conn_end(d, c, "451 4.4.0 cannot create a socket", 451);
		return;
	}
	/* Commands and body pieces go out as separate sends: with Nagle each
	 * small one waits for the peer's delayed ACK (40 ms a message). */
	int one = 1;
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	c->state = OC_CONNECTING;
	struct io_uring_sqe *sqe = ob_sqe(d, c, O_CONNECT);
	io_uring_prep_connect(sqe, c->fd, (const struct sockaddr *)sa, hop->addrlen[c->addr_i]);
	sqe->flags |= IOSQE_IO_LINK;
	static __thread struct __kernel_timespec ts;
	ts.tv_sec = d->g->_connect_ms / 1000;
	ts.tv_nsec = (long long)(d->g->_connect_ms % 1000) * 1000000;
	sqe = ob_sqe(d, c, O_LTIMEOUT);
	io_uring_prep_link_timeout(sqe, &ts, 0);
}

/* ob_rand - the module's PRNG (xorshift64*): spreading equal MX preferences */
static uint64_t ob_rand(struct ob *d)
{
	if (d->rng == 0)
		d->rng = (uint64_t)ob_wall_us() * 0x9e3779b97f4a7c15ull | 1u;
	d->rng ^= d->rng >> 12;
	d->rng ^= d->rng << 25;
	d->rng ^= d->rng >> 27;
	return d->rng * 0x2545f4914f6cdd1dull;
}

/* ob_conn_hop - the addresses c tries: the route's, or the MX answer's
 * with each run of equal preference shuffled (RFC 5321 §5.1) */
static void ob_conn_hop(struct ob *d, struct ob_conn *c)
{
	const struct ob_dest *od = c->od;
	if (od->hop != NULL) {
		c->hop = od->hop;
		return;
	}
	c->mxhop = od->mx;
	c->hop = &c->mxhop;
	struct outbound_hop *h = &c->mxhop;
	for (size_t i = 0; i < h->naddr;) {
		size_t e = i + 1;
		while (e < h->naddr && od->mx_pref[e] == od->mx_pref[i])
			e++;
		for (size_t k = e - 1; k > i; k--) {
			size_t x = i + (size_t)(ob_rand(d) % (k - i + 1));
			struct sockaddr_storage t = h->addr[k];
			socklen_t tl = h->addrlen[k];
			h->addr[k] = h->addr[x];
			h->addrlen[k] = h->addrlen[x];
			h->addr[x] = t;
			h->addrlen[x] = tl;
		}
		i = e;
	}
}

/* ob_mx_stale - the expired answer serves until the resolver is back
 * (RFC 8767: stale data beats none), looked up again after a while */
static void ob_mx_stale(struct ob *d, struct ob_dest *od)
{
	od->mx_state = MX_OK;
	od->mx_until = d->now + OB_MX_STALE_RETRY_MS;
}

/* ob_mx_done - an MX lookup finished: keep the answer on its destination */
static void ob_mx_done(void *arg, uint64_t id, const struct dns_result *res)
{
	struct ob_dest *od = arg;
	struct ob *d = od->ob;
	bool refresh = od->mx_refreshing;
	(void)id;

	od->mx_refreshing = false;
	if (refresh && res->status == DNS_TEMP) {
		ob_mx_stale(d, od);
		return;
	}
	od->mx_state = MX_FAIL;
	od->mx_until = d->now + OB_MX_KEEP_MS;
	if (res->status == DNS_OK) {
		struct outbound_hop *h = &od->mx;
		h->naddr = 0;
		for (unsigned i = 0; i < res->nhost; i++)
			for (unsigned k = 0; k < res->host[i].naddr && h->naddr < OUTBOUND_ADDRS_MAX; k++) {
				const struct dns_addr *a = &res->host[i].addr[k];
				struct sockaddr_storage *ss = &h->addr[h->naddr];
				memset(ss, 0, sizeof *ss);
				if (a->family == AF_INET) {
					struct sockaddr_in *s4 = (struct sockaddr_in *)(void *)ss;
					s4->sin_family = AF_INET;
					s4->sin_port = htons(d->g->mx_port);
					memcpy(&s4->sin_addr, a->bytes, 4);
					h->addrlen[h->naddr] = sizeof *s4;
				} else {
					struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(void *)ss;
					s6->sin6_family = AF_INET6;
					s6->sin6_port = htons(d->g->mx_port);
					memcpy(&s6->sin6_addr, a->bytes, 16);
					h->addrlen[h->naddr] = sizeof *s6;
				}
				snprintf(od->mx_name[h->naddr], sizeof od->mx_name[0], "%s", res->host[i].name);
				od->mx_pref[h->naddr++] = res->host[i].pref;
			}
		if (h->naddr > 0) {
			/* kept as long as its records' TTL says, within bounds:
			 * TTL 0 would mean a lookup per connection */
			uint64_t keep = (uint64_t)res->ttl_s * 1000u;
			if (keep < OB_MX_TTL_MIN_MS)
				keep = OB_MX_TTL_MIN_MS;
			if (keep > OB_MX_TTL_MAX_MS)
				keep = OB_MX_TTL_MAX_MS;
			od->mx_state = MX_OK;
			od->mx_until = d->now + (int64_t)keep;
			return;
		}
	}
	if (res->status == DNS_PERM) {
		od->mx_code = res->code;
		snprintf(od->mx_text, sizeof od->mx_text, "%u %s %s", res->code, res->enh ? res->enh : "5.4.4",
			 res->text ? res->text : "no route to the domain");
	} else {
		/* temporary: the jobs ready now are deferred, the next ones
		 * look up again */
		od->mx_code = 451;
		snprintf(od->mx_text, sizeof od->mx_text, "451 4.4.3 %s",
			 res->text ? res->text : "DNS lookup failed temporarily");
		od->mx_until = d->now + 1;
	}
}

/* ob_mx_state - where the MX destination od stands: 1 addresses known, 0
 * a lookup is in flight (wait), -1 failed (mx_code/mx_text). An answer past
 * its time is looked up again; it serves on only if that fails
 * temporarily. */
static int ob_mx_state(struct ob *d, struct sched_ldest *ld, struct ob_dest *od)
{
	if (od->mx_state == MX_PENDING)
		return 0;
	if ((od->mx_state == MX_OK || od->mx_state == MX_FAIL) && d->now < od->mx_until)
		return od->mx_state == MX_OK ? 1 : -1;
	if (d->dns == NULL) {
		struct dns_cfg cfg = {
			.servers = d->g->dns,
			.ud_base = ((uint64_t)NET_DELIVER_UD_OP << 56) | ((uint64_t)O_DNS << 28),
		};
		if (dns_new(d->env.ring, &cfg, &d->dns, d->err, sizeof d->err) != RM_OK) {
			evlog_msg("error", "delivery", d->err);
			d->dns = NULL;
		}
	}
	uint64_t id;
	const char *dom = ld->dest->key + 3; /* "mx:" */
	if (d->dns == NULL || dns_lookup_mx(d->dns, dom, ob_mx_done, od, &id) != RM_OK) {
		if (od->mx_state == MX_OK) {
			ob_mx_stale(d, od);
			return 1;
		}
		od->mx_state = MX_FAIL;
		od->mx_code = 451;
		snprintf(od->mx_text, sizeof od->mx_text, "451 4.4.3 DNS not available");
		od->mx_until = d->now + 1;
		return -1;
	}
	od->mx_refreshing = od->mx_state == MX_OK;
	od->mx_state = MX_PENDING;
	return 0;
}

/* ob_conn_start - open a new connection to ld carrying job j */
static bool ob_conn_start(struct ob *d, struct sched_ldest *ld, struct sched_job *j)
{
	struct ob_conn *c = ob_conn_new(d, ld);
	if (c == NULL)
		return false;
	c->job = j;
	c->m = (struct ob_msg *)(void *)j->msg;
	ob_conn_hop(d, c);
	ob_connect(d, c);
	return true;
}

/* ob_send_raw - send v[0..n) as it is (copied), then continue where c's
 * state says */
static void ob_send_raw(struct ob *d, struct ob_conn *c, const struct iovec *v, int n)
{
	memcpy(c->siov, v, sizeof *v * (size_t)n);
	c->sn = n;
	c->si = 0;
	c->sending = true;
	struct io_uring_sqe *sqe = ob_sqe(d, c, O_SEND);
	c->mh = (struct msghdr){ .msg_iov = c->siov, .msg_iovlen = (size_t)n };
	io_uring_prep_sendmsg(sqe, c->fd, &c->mh, MSG_NOSIGNAL);
}

/* ob_tls_push - send the ciphertext waiting on c's TLS; false when none */
static bool ob_tls_push(struct ob *d, struct ob_conn *c)
{
	struct slice o = outbound_tls_out(c->tls);
	if (o.len == 0)
		return false;
	struct iovec v = { (void *)(uintptr_t)o.ptr, o.len };
	ob_send_raw(d, c, &v, 1);
	return true;
}

/* ob_send - send v[0..n): encrypted once TLS is up (the encryption is the
 * copy), else as it is */
static void ob_send(struct ob *d, struct ob_conn *c, const struct iovec *v, int n)
{
	if (c->tls == NULL) {
		ob_send_raw(d, c, v, n);
		return;
	}
	if (outbound_tls_encrypt(c->tls, v, n) != RM_OK) {
		ob_conn_end(d, c, "451 4.4.2 TLS write failed", 0);
		return;
	}
	if (!ob_tls_push(d, c)) {
		struct iovec none = { c->outmem, 0 }; /* completes at once */
		ob_send_raw(d, c, &none, 1);
	}
}

/* ob_send_out - send the command buffer */
static void ob_send_out(struct ob *d, struct ob_conn *c)
{
	struct iovec v = { c->out.ptr, c->out.len };
	ob_send(d, c, &v, 1);
}

/* ob_recv - read more of the server's replies */
static void ob_recv(struct ob *d, struct ob_conn *c)
{
	if (c->recv_armed || c->state != OC_OPEN || c->shut)
		return;
	if (c->in_pos == c->in_len)
		c->in_pos = c->in_len = 0;
	if (c->in_len == sizeof c->in) {
		memmove(c->in, c->in + c->in_pos, c->in_len - c->in_pos);
		c->in_len -= c->in_pos;
		c->in_pos = 0;
	}
	if (c->tls != NULL && !c->tls_hs && outbound_tls_has_plain(c->tls)) {
		/* decrypted bytes wait for room: a no-op brings them in */
		io_uring_prep_nop(ob_sqe(d, c, O_TLSREAD));
		c->recv_armed = true;
		return;
	}
	struct io_uring_sqe *sqe = ob_sqe(d, c, O_RECV);
	io_uring_prep_recv(sqe, c->fd, c->in + c->in_len, sizeof c->in - c->in_len, 0);
	c->recv_armed = true;
}

/* ob_idle_off - take c off its destination's idle list */
static void ob_idle_off(struct ob_conn *c)
{
	if (!c->idle)
		return;
	for (struct ob_conn **p = &c->od->idle; *p; p = &(*p)->idle_next)
		if (*p == c) {
			*p = c->idle_next;
			break;
		}
	c->idle = false;
	c->idle_next = NULL;
}

/* ob_txn_clear - forget the transaction's arrays */
static void ob_txn_clear(struct ob_conn *c)
{
	free(c->rc);
	free(c->res);
	c->rc = NULL;
	c->res = NULL;
	c->job = NULL;
	c->started = false;
	c->m = NULL;
	c->body = B_NONE;
}

/* ob_conn_end - the connection is over: the job in hand (if any) is
 * deferred with why (or retried on the next address when the hop never
 * answered), the slot closes */
static void ob_conn_end(struct ob *d, struct ob_conn *c, const char *why, unsigned code)
{
	bool moved = false;

	if (c->state == OC_CLOSING || c->state == OC_FREE)
		return;
	c->od->nconn--;
	ob_idle_off(c);
	if (c->job != NULL && !d->stopped && !c->ever_ready && c->hop != NULL &&
	    (c->addr_i + 1 < c->hop->naddr || c->tls_fallback)) {
		/* RFC 5321 §5.1: on a connection failure or a 4xx greeting try
		 * the next address; the new slot keeps this one's place in the
		 * destination's limit. */
		struct ob_conn *n = ob_conn_new(d, c->ld);
		if (n != NULL) {
			n->job = c->job;
			n->m = c->m;
			/* a failed opportunistic handshake: the same address
			 * again, in plaintext (ob_dest.tls_plain_until) */
			n->addr_i = c->addr_i + (c->tls_fallback ? 0 : 1);
			n->mxhop = c->mxhop;
			n->hop = c->hop == &c->mxhop ? &n->mxhop : c->hop;
			c->job = NULL;
			moved = true;
			ob_connect(d, n);
		}
	}
	if (c->job != NULL && !d->stopped)
		ob_job_done(d, c->job, c->m, c->res, why);
	if (!moved && !d->stopped && (code == 421 || !c->ever_ready))
		sched_dest_backoff(c->ld->dest, ob_wall_us());
	ob_txn_clear(c);
	c->state = OC_CLOSING;
	if (c->fd >= 0) {
		(void)shutdown(c->fd, SHUT_RDWR);
		struct io_uring_sqe *sqe = ob_sqe(d, c, O_CLOSE);
		io_uring_prep_close(sqe, c->fd);
		c->fd = -1;
	}
	if (!moved)
		sched_dest_put(c->ld->dest);
}

/* ob_conn_free - a closing slot with nothing in flight goes back */
static void ob_conn_maybe_free(struct ob *d, struct ob_conn *c, uint32_t slot)
{
	if (c->state != OC_CLOSING || c->inflight)
		return;
	c->state = OC_FREE;
	c->tls = outbound_tls_free(c->tls); /* no send of its buffer is in flight */
	c->gen = (c->gen + 1) & 0xfffu;
	d->free_next[slot] = d->free_head;
	d->free_head = slot;
	__atomic_store_n(&d->env.stats->outbound_open, d->env.stats->outbound_open - 1, __ATOMIC_RELAXED);
}

/* ob_reply_text - "CODE TEXT" of a reply's first line into out */
static void ob_reply_text(const struct smtp_reply *r, char *out, size_t cap)
{
	if (r == NULL) {
		snprintf(out, cap, "no reply");
		return;
	}
	struct slice l = r->nlines ? r->line[0] : slice_make("", 0);
	/* the enhanced code stays in: the DSN's Status and Diagnostic-Code */
	int k = r->has_enh ? snprintf(out, cap, "%u %u.%u.%u ", r->code, r->enh[0] % 10, r->enh[1] % 1000,
				      r->enh[2] % 1000)
			   : snprintf(out, cap, "%u ", r->code);
	size_t n = l.len < cap - (size_t)k - 1 ? l.len : cap - (size_t)k - 1;
	for (size_t i = 0; i < n; i++)
		out[k + (int)i] = (l.ptr[i] >= 32 && l.ptr[i] < 127 && l.ptr[i] != '"') ? l.ptr[i] : ' ';
	out[k + (int)n] = '\0';
}

/* ob_txn_begin - start job j on the ready connection c; false when the
 * job was settled without sending (too big, SMTPUTF8) */
static bool ob_txn_begin(struct ob *d, struct ob_conn *c, struct sched_job *j)
{
	struct ob_msg *m = (struct ob_msg *)(void *)j->msg;
	const struct smtp_client_caps *caps = smtp_client_caps(&c->cl);

	if (m->deleted || (m->carry != NULL && __atomic_load_n(&m->carry->cancel, __ATOMIC_ACQUIRE))) {
		ob_job_done(d, j, m, NULL, "451 4.3.0 deleted"); /* dropped, nothing sent */
		return false;
	}
	if (caps->size && caps->size_max && m->total > caps->size_max) {
		ob_job_fail_all(d, j, 552, "552 5.3.4 message too big for the next hop");
		return false;
	}
	if (m->env.smtputf8 && !caps->smtputf8) {
		ob_job_fail_all(d, j, 550, "550 5.6.7 next hop does not support SMTPUTF8");
		return false;
	}
	c->job = j;
	c->m = m;
	c->rc = calloc(j->nrcpt, sizeof *c->rc);
	c->res = calloc(j->nrcpt, sizeof *c->res);
	if (c->rc == NULL || c->res == NULL) {
		ob_job_done(d, j, m, NULL, "451 4.3.0 out of memory");
		ob_txn_clear(c);
		return false;
	}
	for (uint32_t i = 0; i < j->nrcpt; i++) {
		const struct spool_rcpt *r = &m->env.rcpt[j->rcpt[i]];
		c->rc[i] = (struct smtp_client_rcpt){ r->addr, r->notify, r->orcpt };
	}
	c->cm = (struct smtp_client_msg){
		.from = m->env.sender, .rcpt = c->rc, .nrcpt = j->nrcpt, .size = m->total,
		.body = (enum smtp_body)m->env.body, .smtputf8 = m->env.smtputf8,
		.ret = (enum smtp_ret)m->env.ret, .envid = m->env.envid,
	};
	if (smtp_client_send(&c->cl, &c->cm) != RM_OK) {
		ob_job_done(d, j, m, NULL, "451 4.3.0 client engine refused the message");
		ob_txn_clear(c);
		return false;
	}
	c->boff = 0;
	c->rpos = c->rlen = 0;
	c->body = B_NONE;
	c->started = true;
	return true;
}

/* ob_next_job - give the ready connection c its next job, QUIT, or park
 * it idle; false when it went idle */
static void ob_next(struct ob *d, struct ob_conn *c)
{
	const struct sched_cfg *sc = sched_cfg_of(d->s);
	while (!d->stopped && c->msgs < sc->max_msgs_per_conn) {
		struct sched_job *j = ob_take(d, c->ld);
		if (j == NULL)
			break;
		c->msgs++;
		if (ob_txn_begin(d, c, j))
			return;
	}
	if (d->stopped || c->msgs >= sc->max_msgs_per_conn) {
		if (smtp_client_quit(&c->cl) != RM_OK)
			ob_conn_end(d, c, "quit", 0);
		return;
	}
	/* idle: kept for the next message to this destination */
	c->idle = true;
	c->idle_at = d->now;
	c->idle_next = c->od->idle;
	c->od->idle = c;
}

/* --- STARTTLS (net/outbound_tls.h) ------------------------------------------------ */

/* ob_tls_host - the name c's next hop must have in its certificate: the
 * configured host of a route or smarthost, the MX host for MX */
static void ob_tls_host(const struct ob_conn *c, char *out, size_t cap)
{
	const struct ob_dest *od = c->od;
	out[0] = '\0';
	if (od->hop != NULL) {
		outbound_tls_hop_host(od->hop->text, out, cap);
		return;
	}
	const struct sockaddr_storage *sa = &c->hop->addr[c->addr_i];
	for (size_t i = 0; i < od->mx.naddr; i++)
		if (od->mx.addrlen[i] == c->hop->addrlen[c->addr_i] &&
		    memcmp(&od->mx.addr[i], sa, od->mx.addrlen[i]) == 0) {
			snprintf(out, cap, "%s", od->mx_name[i]);
			return;
		}
}

/* ob_tls_addr - the address c is connected to, as text */
static void ob_tls_addr(const struct ob_conn *c, char *out, size_t cap)
{
	const struct sockaddr_storage *sa = &c->hop->addr[c->addr_i];
	const void *a = sa->ss_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr
						  : (const void *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	if (inet_ntop(sa->ss_family, a, out, (socklen_t)cap) == NULL)
		snprintf(out, cap, "?");
}

/* ob_tls_log_plain - the log line of a session that stays in plaintext */
static void ob_tls_log_plain(struct ob *d, struct ob_conn *c)
{
	char addr[INET6_ADDRSTRLEN], line[400];
	bool offered = smtp_client_caps(&c->cl)->starttls;
	const char *why = d->g->tls.mode == OUTBOUND_TLS_MODE_NONE ? "--outbound-tls none"
			  : d->now < c->od->tls_plain_until ? "after a failed TLS handshake"
			  : offered ? "" : "STARTTLS not offered";
	ob_tls_addr(c, addr, sizeof addr);
	snprintf(line, sizeof line, "outbound session to %.200s [%s] in plaintext (%s)", c->ld->dest->key, addr,
		 why[0] ? why : "no TLS");
	evlog_msg("info", "tls", line);
}

/* ob_tls_begin - the 220 to STARTTLS came: drop what followed it (RFC 3207
 * §5: a plaintext injection), start the handshake under its own deadline */
static void ob_tls_begin(struct ob *d, struct ob_conn *c)
{
	char host[DNS_NAME_MAX + 1];

	c->in_pos = c->in_len = 0;
	ob_tls_host(c, host, sizeof host);
	c->tls = outbound_tls_new(&d->g->tls, host);
	if (c->tls == NULL) {
		ob_conn_end(d, c, "451 4.3.0 out of memory starting TLS", 0);
		return;
	}
	c->tls_hs = true;
	c->deadline = d->now + d->g->_tls_ms; /* the whole handshake: a hung hop frees its slot */
	ob_tls_step(d, c, outbound_tls_handshake(c->tls, NULL, 0));
}

/* ob_tls_fail - the handshake failed or timed out (reason, or ""): count,
 * log, end the connection; under opportunistic TLS the job moves at once
 * to a plaintext connection and the hop stays plaintext OB_TLS_PLAIN_MS
 * (Postfix's "may" also goes on in the clear) */
static void ob_tls_fail(struct ob *d, struct ob_conn *c, const char *reason)
{
	char why[OB_TEXT], addr[INET6_ADDRSTRLEN];

	ob_tls_addr(c, addr, sizeof addr);
	OB_STAT_ADD(d, outbound_tls_handshake_failures, 1);
	snprintf(why, sizeof why, "451 4.7.5 TLS handshake with %.80s [%s] failed%s%.80s", c->ld->dest->key, addr,
		 reason[0] ? ": " : "", reason);
	evlog_msg("warn", "tls", why + 10);
	if (d->g->tls.mode == OUTBOUND_TLS_MODE_OPPORTUNISTIC) {
		c->od->tls_plain_until = d->now + OB_TLS_PLAIN_MS;
		c->tls_fallback = true;
	}
	ob_conn_end(d, c, why, 0);
}

/* ob_tls_step - act on the handshake's verdict rc */
static void ob_tls_step(struct ob *d, struct ob_conn *c, int rc)
{
	char addr[INET6_ADDRSTRLEN], line[400];

	if (rc == RM_AGAIN) {
		if (!c->sending)
			(void)ob_tls_push(d, c);
		ob_recv(d, c);
		return;
	}
	if (rc != RM_OK) {
		ob_tls_fail(d, c, outbound_tls_verify_error(c->tls));
		return;
	}
	ob_tls_addr(c, addr, sizeof addr);
	c->tls_hs = false;
	OB_STAT_ADD(d, outbound_tls_handshakes, 1);
	bool resumed = outbound_tls_resumed(c->tls);
	if (resumed)
		OB_STAT_ADD(d, outbound_tls_resumed, 1);
	snprintf(line, sizeof line, "outbound session to %.200s [%s] over %s %s%s (%s, certificate %s)",
		 c->ld->dest->key, addr, outbound_tls_version(c->tls), outbound_tls_cipher(c->tls),
		 resumed ? " resumed" : "",
		 outbound_tls_mode_name(d->g->tls.mode),
		 d->g->tls.mode == OUTBOUND_TLS_MODE_VERIFY ? "verified" : "not checked");
	evlog_msg("info", "tls", line);
	smtp_client_tls_started(&c->cl, true);
	ob_deadline(d, c);
	if (c->sending)
		return; /* the handshake's last flight: EHLO follows it */
	if (!ob_tls_push(d, c))
		ob_pump(d, c);
}

/* ob_tls_in - n ciphertext bytes arrived at in[in_len] (or 0: plaintext
 * kept from before): decrypt them into in; false when c ended or only
 * TLS-internal records came (a recv is armed again) */
static bool ob_tls_in(struct ob *d, struct ob_conn *c, size_t n)
{
	size_t got = 0;
	int rc = outbound_tls_decrypt(c->tls, c->in + c->in_len, n, c->in + c->in_len, sizeof c->in - c->in_len,
				      &got);
	if (rc != RM_OK) {
		ob_conn_end(d, c, rc == RM_EIO ? "451 4.4.2 TLS closed by the next hop" : "451 4.4.2 bad TLS record",
			    0);
		return false;
	}
	c->in_len += got;
	if (got == 0) {
		/* a session ticket or a partial record: wait for more */
		ob_recv(d, c);
		return false;
	}
	return true;
}

/* ob_tls_why - the deferral reason when TLS was required and did not
 * happen (the engine's reply is the EHLO or STARTTLS one) */
static void ob_tls_why(struct ob *d, struct ob_conn *c, enum smtp_client_fail f, const struct smtp_reply *r,
		       char *why, size_t cap)
{
	char addr[INET6_ADDRSTRLEN], rt[OB_TEXT];
	ob_tls_addr(c, addr, sizeof addr);
	if (f == SMTP_CLIENT_FAIL_TLS_UNAVAILABLE) {
		snprintf(why, cap, "451 4.7.5 %.80s [%s] offers no STARTTLS and --outbound-tls is %s",
			 c->ld->dest->key, addr, outbound_tls_mode_name(d->g->tls.mode));
	} else {
		ob_reply_text(r, rt, sizeof rt);
		snprintf(why, cap, "451 4.7.5 %.80s [%s] refused STARTTLS: %.90s", c->ld->dest->key, addr, rt);
	}
	evlog_msg("warn", "tls", why + 10);
}

/* ob_send_now - a last command (QUIT) without waiting: written at once,
 * through TLS when the session has it */
static void ob_send_now(struct ob_conn *c)
{
	if (c->tls == NULL) {
		(void)send(c->fd, c->out.ptr, c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		return;
	}
	struct iovec v = { c->out.ptr, c->out.len };
	if (c->tls_hs || c->sending || outbound_tls_encrypt(c->tls, &v, 1) != RM_OK)
		return;
	struct slice o = outbound_tls_out(c->tls);
	(void)send(c->fd, o.ptr, o.len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* ob_pump - feed the engine and act on its events until it waits */
static void ob_pump(struct ob *d, struct ob_conn *c)
{
	while (c->state == OC_OPEN && !c->sending && c->body == B_NONE) {
		size_t used = 0;
		enum smtp_client_ev ev = smtp_client_feed(&c->cl, c->in + c->in_pos, c->in_len - c->in_pos, &used,
							  &c->out);
		c->in_pos += used;
		switch (ev) {
		case SMTP_CL_NONE:
			if (c->out.len) {
				ob_send_out(d, c);
				return;
			}
			if (c->idle)
				c->deadline = d->now + d->g->_idle_ms;
			else
				ob_deadline(d, c);
			ob_recv(d, c);
			return;
		case SMTP_CL_FLUSH:
			ob_send_out(d, c);
			return;
		case SMTP_CL_READY:
			if (!c->ever_ready && c->tls == NULL)
				ob_tls_log_plain(d, c);
			c->ever_ready = true;
			if (c->job != NULL && !c->started) {
				/* the job this connection was opened for */
				struct sched_job *j = c->job;
				c->job = NULL;
				c->msgs++;
				if (ob_txn_begin(d, c, j))
					break;
			} else if (c->job != NULL) {
				struct sched_job *j = c->job;
				struct ob_msg *m = c->m;
				struct ob_res *res = c->res;
				c->res = NULL;
				d->hop_dsn = smtp_client_caps(&c->cl)->dsn;
				ob_txn_clear(c);
				ob_job_done(d, j, m, res, "451 4.4.2 no reply");
				d->hop_dsn = true;
				free(res);
			}
			ob_next(d, c);
			break;
		case SMTP_CL_RCPT: {
			size_t i = smtp_client_rcpt_index(&c->cl);
			const struct smtp_reply *r = smtp_client_reply(&c->cl);
			if (c->res && c->job && i < c->job->nrcpt && r && r->code >= 400) {
				c->res[i].code = r->code;
				ob_reply_text(r, c->res[i].text, sizeof c->res[i].text);
			}
			break;
		}
		case SMTP_CL_RESULT: {
			const struct smtp_reply *r = smtp_client_reply(&c->cl);
			for (uint32_t i = 0; c->res && c->job && i < c->job->nrcpt; i++) {
				if (c->res[i].code == 0 && r != NULL) {
					c->res[i].code = r->code;
					ob_reply_text(r, c->res[i].text, sizeof c->res[i].text);
				}
			}
			c->body = B_NONE;
			break;
		}
		case SMTP_CL_BODY:
			if (smtp_client_bdat_mode(&c->cl)) {
				if (smtp_client_bdat(&c->cl, &c->out, c->m->total, true) != RM_OK) {
					ob_conn_end(d, c, "451 4.3.0 BDAT could not be started", 0);
					return;
				}
			} else {
				smtp_stuff_init(&c->stuff);
			}
			c->body = B_BODY;
			c->boff = 0;
			c->rpos = c->rlen = 0;
			if (ob_gather(d, c))
				return;
			if (c->out.len) {
				ob_send_out(d, c);
				return;
			}
			ob_body_next(d, c);
			return;
		case SMTP_CL_STARTTLS:
			ob_tls_begin(d, c);
			return;
		case SMTP_CL_CLOSE: {
			char why[OB_TEXT];
			const struct smtp_reply *r = smtp_client_reply(&c->cl);
			enum smtp_client_fail f = smtp_client_fail(&c->cl);
			if (f == SMTP_CLIENT_FAIL_TLS_UNAVAILABLE || f == SMTP_CLIENT_FAIL_TLS_FAILED)
				ob_tls_why(d, c, f, r, why, sizeof why);
			else if (r != NULL)
				ob_reply_text(r, why, sizeof why);
			else
				snprintf(why, sizeof why, "451 4.4.2 session ended: %s", smtp_client_fail_name(f));
			if (f == SMTP_CLIENT_FAIL_GREETING && r != NULL && r->code >= 400 && r->code < 500)
				c->ever_ready = false; /* try the next address */
			if (c->out.len) {
				/* a QUIT: send it and close after; nothing is
				 * waited for */
				ob_send_now(c);
				c->out.len = 0;
			}
			ob_conn_end(d, c, why, r ? r->code : 0);
			return;
		}
		}
	}
}

/* ob_extent - the file position of message byte off (off past the
 * Received: header): fd, file offset and bytes left in that extent */
static bool ob_extent(struct ob_msg *m, uint64_t off, int *fd, uint64_t *at, uint64_t *left)
{
	for (uint32_t i = 0; i < m->env.next; i++) {
		const struct spool_extent *x = &m->env.ext[i];
		if (off >= x->len) {
			off -= x->len;
			continue;
		}
		*fd = -1;
		for (uint32_t k = 0; m->carry != NULL && k < m->carry->nseg; k++)
			if (m->carry->seg[k] == x->seg)
				*fd = m->carry->fd[k];
		if (m->carry == NULL)
			*fd = spool_extent_fd(m->ref->sp, x->seg);
		*at = x->off + off;
		*left = x->len - off;
		return *fd >= 0;
	}
	return false;
}

/* ob_gather_read - read the next piece of a gathered body into rbuf at
 * rlen */
static void ob_gather_read(struct ob *d, struct ob_conn *c)
{
	int fd;
	uint64_t at, left;
	size_t room = OB_RBUF - c->rlen;

	if (!ob_extent(c->m, c->rlen, &fd, &at, &left)) {
		ob_conn_end(d, c, "451 4.3.0 the spool cannot be read", 0);
		return;
	}
	struct io_uring_sqe *sqe = ob_sqe(d, c, O_READ);
	io_uring_prep_read(sqe, fd, c->rbuf + c->rlen, (unsigned)(left < room ? left : room), at);
}

/* ob_gather - a body that fits in rbuf is read whole before anything of
 * it goes out; then the commands in out (with PIPELINING and CHUNKING:
 * MAIL, the RCPTs and "BDAT n LAST"), the Received: header and the body
 * leave in one sendmsg, for DATA dot-stuffed by slices and with the end
 * of data (ob_gather_send). Streaming them took three sends or more per
 * message, each a completion and a loop turn. false: the body is too big
 * (or empty, or no buffer): stream it. */
static bool ob_gather(struct ob *d, struct ob_conn *c)
{
	uint64_t blen = c->m->total - c->m->env.received.len;

	if (blen == 0 || blen > OB_RBUF)
		return false;
	if (c->rbuf == NULL && (c->rbuf = malloc(OB_RBUF)) == NULL)
		return false;
	c->body = B_GATHER;
	ob_gather_read(d, c);
	return true;
}

/* ob_gather_send_data - a gathered DATA body: the Received: header and the
 * body dot-stuffed into slices and, when they all fit in one sendmsg, the
 * end of data behind them; a body with more line-initial dots than slots
 * sends what fits and streams the rest from rbuf (ob_body_next) */
static void ob_gather_send_data(struct ob *d, struct ob_conn *c)
{
	struct ob_msg *m = c->m;
	struct iovec v[OB_IOV];
	size_t ns = 0, nv = 0, hl = m->env.received.len, cap = OB_IOV - 2;

	if (smtp_stuff_feed(&c->stuff, m->env.received.ptr, hl, c->sl, cap, &ns) < hl) {
		/* a header this dotty: stream all of it as before */
		smtp_stuff_init(&c->stuff);
		c->rpos = c->rlen = 0;
		c->boff = 0;
		c->body = B_BODY;
		ob_body_next(d, c);
		return;
	}
	size_t used = smtp_stuff_feed(&c->stuff, c->rbuf, c->rlen, c->sl, cap, &ns);
	if (c->out.len)
		v[nv++] = (struct iovec){ c->out.ptr, c->out.len };
	for (size_t i = 0; i < ns; i++)
		v[nv++] = (struct iovec){ (void *)(uintptr_t)c->sl[i].ptr, c->sl[i].len };
	c->boff = hl + used;
	c->rpos = used;
	c->body = B_BODY;
	if (used == c->rlen) {
		struct slice t = smtp_stuff_end(&c->stuff);
		if (smtp_client_body_sent(&c->cl) != RM_OK) {
			ob_conn_end(d, c, "451 4.3.0 body out of step", 0);
			return;
		}
		v[nv++] = (struct iovec){ (void *)(uintptr_t)t.ptr, t.len };
		c->rpos = c->rlen = 0;
		c->body = B_DONE;
	}
	ob_send(d, c, v, (int)nv);
}

/* ob_gather_send - a read of a gathered body completed with n bytes: read
 * on, or send the whole chunk */
static void ob_gather_send(struct ob *d, struct ob_conn *c, size_t n)
{
	struct ob_msg *m = c->m;

	c->rlen += n;
	if (c->rlen < m->total - m->env.received.len) {
		ob_gather_read(d, c); /* the next extent, or a short read's rest */
		return;
	}
	if (!smtp_client_bdat_mode(&c->cl)) {
		ob_gather_send_data(d, c);
		return;
	}
	struct iovec v[3] = {
		{ c->out.ptr, c->out.len },
		{ (void *)(uintptr_t)m->env.received.ptr, m->env.received.len },
		{ c->rbuf, c->rlen },
	};
	/* all of it handed to the send: ob_after_send finds the body done */
	c->boff = m->total;
	c->rpos = c->rlen = 0;
	c->body = B_BODY;
	ob_send(d, c, v, 3);
}

/* ob_body_piece - send p[0..n) of the message (dot-stuffed for DATA);
 * returns the bytes of p the send covers */
static size_t ob_body_piece(struct ob *d, struct ob_conn *c, const char *p, size_t n)
{
	struct iovec v[OB_IOV];
	size_t ns = 0, used = n;

	if (smtp_client_bdat_mode(&c->cl)) {
		v[0] = (struct iovec){ (void *)(uintptr_t)p, n };
		ns = 1;
	} else {
		used = smtp_stuff_feed(&c->stuff, p, n, c->sl, OB_IOV, &ns);
		for (size_t i = 0; i < ns; i++)
			v[i] = (struct iovec){ (void *)(uintptr_t)c->sl[i].ptr, c->sl[i].len };
	}
	c->boff += used;
	ob_send(d, c, v, (int)ns);
	return used;
}

/* ob_body_next - the next piece of the message, or its end */
static void ob_body_next(struct ob *d, struct ob_conn *c)
{
	struct ob_msg *m = c->m;
	uint64_t hl = m->env.received.len;

	if (c->rpos < c->rlen) {
		c->rpos += ob_body_piece(d, c, c->rbuf + c->rpos, c->rlen - c->rpos);
		return;
	}
	if (c->boff < hl) {
		(void)ob_body_piece(d, c, m->env.received.ptr + c->boff, (size_t)(hl - c->boff));
		return;
	}
	if (c->boff < m->total) {
		int fd;
		uint64_t at, left;
		if (c->rbuf == NULL && (c->rbuf = malloc(OB_RBUF)) == NULL) {
			ob_conn_end(d, c, "451 4.3.0 out of memory", 0);
			return;
		}
		if (!ob_extent(m, c->boff - hl, &fd, &at, &left)) {
			ob_conn_end(d, c, "451 4.3.0 the spool cannot be read", 0);
			return;
		}
		struct io_uring_sqe *sqe = ob_sqe(d, c, O_READ);
		io_uring_prep_read(sqe, fd, c->rbuf, (unsigned)(left < OB_RBUF ? left : OB_RBUF), at);
		return;
	}
	if (!smtp_client_bdat_mode(&c->cl)) {
		struct slice t = smtp_stuff_end(&c->stuff);
		if (smtp_client_body_sent(&c->cl) != RM_OK) {
			ob_conn_end(d, c, "451 4.3.0 body out of step", 0);
			return;
		}
		c->body = B_DONE;
		struct iovec v = { (void *)(uintptr_t)t.ptr, t.len };
		ob_send(d, c, &v, 1);
		return;
	}
	c->body = B_NONE;
	ob_pump(d, c);
}

/* ob_after_send - a send finished: go on with the body or the engine */
static void ob_after_send(struct ob *d, struct ob_conn *c)
{
	if (c->body == B_BODY) {
		c->out.len = 0;
		if (c->rpos >= c->rlen)
			c->rpos = c->rlen = 0;
		ob_body_next(d, c);
		return;
	}
	if (c->body == B_DONE) {
		c->body = B_NONE;
		c->out.len = 0;
		ob_pump(d, c);
		return;
	}
	c->out.len = 0;
	ob_pump(d, c);
}

/* --- the shard hooks ---------------------------------------------------------- */

/* ob_create - a shard's delivery module */
static void *ob_create(void *global, const struct net_deliver_env *env)
{
	struct ob *d = calloc(1, sizeof *d);
	if (d == NULL)
		return NULL;
	d->g = global;
	d->env = *env;
	d->s = sched_new(&d->g->sched, d->g->_dtab);
	d->nconns = OB_SLOTS;
	d->conns = calloc(d->nconns, sizeof *d->conns);
	d->free_next = calloc(d->nconns, sizeof *d->free_next);
	if (d->s == NULL || d->conns == NULL || d->free_next == NULL) {
		sched_free(d->s);
		free(d->conns);
		free(d->free_next);
		free(d);
		return NULL;
	}
	for (uint32_t i = 0; i < d->nconns; i++)
		d->free_next[i] = i + 1 < d->nconns ? i + 1 : UINT32_MAX;
	d->hop_dsn = true;
	d->free_head = 0;
	if (env->shard <= MSGID_SHARD_MAX && d->g->_ctl != NULL) {
		/* the inbox belongs to the global configuration: a poster may
		 * still hold it after this shard is gone */
		d->ctl = __atomic_load_n(&d->g->_ctl[env->shard], __ATOMIC_ACQUIRE);
		if (d->ctl == NULL && (d->ctl = calloc(1, sizeof *d->ctl)) != NULL) {
			if (mbox_init(d->ctl, OB_CTL_SLOTS) != RM_OK) {
				free(d->ctl);
				d->ctl = NULL;
			} else {
				__atomic_store_n(&d->g->_ctl[env->shard], d->ctl, __ATOMIC_RELEASE);
			}
		}
		if (d->g->_ringfd != NULL)
			__atomic_store_n(&d->g->_ringfd[env->shard], env->ring->ring_fd, __ATOMIC_RELAXED);
		struct outbound_cfg *g = global;
		unsigned hi = __atomic_load_n(&g->_nshard, __ATOMIC_RELAXED);
		while (hi < env->shard + 1 &&
		       !__atomic_compare_exchange_n(&g->_nshard, &hi, env->shard + 1, false, __ATOMIC_RELAXED,
						    __ATOMIC_RELAXED))
			;
	}
	return d;
}

/* ob_destroy - free everything; the ring is about to go */
static void ob_destroy(void *arg)
{
	struct ob *d = arg;
	if (d == NULL)
		return;
	if (d->g->_ringfd != NULL && d->env.shard <= MSGID_SHARD_MAX)
		__atomic_store_n(&d->g->_ringfd[d->env.shard], -1, __ATOMIC_RELAXED);
	for (uint32_t i = 0; i < d->nconns; i++) {
		struct ob_conn *c = d->conns[i];
		if (c == NULL)
			continue;
		if (c->fd >= 0)
			close(c->fd);
		outbound_tls_free(c->tls);
		free(c->rc);
		free(c->res);
		free(c->rbuf);
		free(c);
	}
	d->dns = dns_free(d->dns);
	for (struct ob_pend *p = d->pend, *n; p != NULL; p = n) {
		n = p->next; /* not journalled: tried again after the restart */
		free(p);
	}
	for (struct ob_msg *m = d->msgs, *n; m != NULL; m = n) {
		n = m->next;
		bool away = false;
		for (struct ob_carry *h = d->away; h != NULL && !away; h = h->next)
			away = h->m == m;
		if (!away) /* a carrier may still read an away message's envelope */
			ob_msg_free(d, m);
	}
	for (struct ob_msg *p = d->proxies, *n; p != NULL; p = n) {
		n = p->next;
		ob_carry_close(p->carry);
		free(p);
	}
	for (struct ob_dest *od = d->dests, *n; od != NULL; od = n) {
		n = od->next;
		free(od);
	}
	d->s = sched_free(d->s);
	free(d->conns);
	free(d->free_next);
	free(d);
}

/* ob_complete - a completion of one of our operations */
static void ob_complete(void *arg, uint32_t tag, int res, uint32_t flags)
{
	struct ob *d = arg;
	unsigned op = (tag >> 28) & 0xfu;
	uint32_t gen = (tag >> 16) & 0xfffu, slot = tag & 0xffffu;
	(void)flags;

	if (op == O_WAKE)
		return; /* another shard's doorbell (or a failed one of ours) */
	if (op == O_DNS) {
		/* the resolver's; dropped once it is gone (dns_free) */
		if (d->dns != NULL)
			dns_complete(d->dns, tag & DNS_TAG_MASK, res);
		return;
	}
	d->pending--;
	if (slot >= d->nconns || d->conns[slot] == NULL || d->conns[slot]->gen != gen)
		return;
	struct ob_conn *c = d->conns[slot];
	c->inflight--;
	switch (op) {
	case O_LTIMEOUT:
		break;
	case O_CONNECT:
		if (c->state != OC_CONNECTING)
			break;
		if (res < 0) {
			char why[OB_TEXT];
			snprintf(why, sizeof why, "451 4.4.1 connect to %.160s failed: %s", c->ld->dest->key,
				 res == -ECANCELED ? "timed out" : strerror(-res));
			ob_conn_end(d, c, why, 0);
			break;
		}
		c->state = OC_OPEN;
		struct smtp_client_cfg cc = {
			.helo_name = slice_cstr(d->g->helo),
			.tls = outbound_tls_engine_mode(&d->g->tls, d->now < c->od->tls_plain_until),
		};
		smtp_client_init(&c->cl, &cc);
		ob_pump(d, c);
		break;
	case O_RECV:
		c->recv_armed = false;
		if (c->state != OC_OPEN)
			break;
		if (res <= 0) {
			ob_conn_end(d, c, res == 0 ? "451 4.4.2 connection closed by the next hop"
						   : "451 4.4.2 connection lost", 0);
			break;
		}
		if (c->tls != NULL) {
			if (c->tls_hs) {
				ob_tls_step(d, c, outbound_tls_handshake(c->tls, c->in + c->in_len, (size_t)res));
				break;
			}
			if (!ob_tls_in(d, c, (size_t)res))
				break;
		} else {
			c->in_len += (size_t)res;
		}
		if (c->idle) {
			/* an idle connection that hears something: the server is going */
			ob_conn_end(d, c, "idle connection closed", 0);
			break;
		}
		ob_pump(d, c);
		break;
	case O_SEND:
		if (c->state != OC_OPEN)
			break;
		if (res < 0) {
			c->sending = false;
			ob_conn_end(d, c, "451 4.4.2 connection lost while sending", 0);
			break;
		}
		if (c->tls != NULL) {
			/* ciphertext: what is left of it, then what follows */
			outbound_tls_sent(c->tls, (size_t)res);
			if (ob_tls_push(d, c))
				break;
			c->sending = false;
			if (c->tls_hs)
				break; /* the handshake goes on as replies come */
			ob_deadline(d, c);
			ob_after_send(d, c);
			break;
		}
		{
			size_t left = (size_t)res;
			while (c->si < c->sn && left >= c->siov[c->si].iov_len)
				left -= c->siov[c->si++].iov_len;
			if (c->si < c->sn) {
				c->siov[c->si].iov_base = (char *)c->siov[c->si].iov_base + left;
				c->siov[c->si].iov_len -= left;
				struct iovec rest[OB_IOV];
				int n = c->sn - c->si;
				memcpy(rest, &c->siov[c->si], sizeof *rest * (size_t)n);
				ob_send_raw(d, c, rest, n);
				break;
			}
		}
		c->sending = false;
		ob_deadline(d, c);
		ob_after_send(d, c);
		break;
	case O_READ:
		if (c->state != OC_OPEN)
			break;
		if (res <= 0) {
			ob_conn_end(d, c, "451 4.3.0 the spool cannot be read", 0);
			break;
		}
		if (c->body == B_GATHER) {
			ob_gather_send(d, c, (size_t)res);
			break;
		}
		c->rlen = (size_t)res;
		c->rpos = ob_body_piece(d, c, c->rbuf, c->rlen);
		break;
	case O_TLSREAD:
		c->recv_armed = false;
		if (c->state != OC_OPEN)
			break;
		if (ob_tls_in(d, c, 0) && !c->idle)
			ob_pump(d, c);
		break;
	case O_CLOSE:
		break;
	default:
		break;
	}
	ob_conn_maybe_free(d, c, slot);
}

/* ob_timeouts - connections past their deadline */
static void ob_timeouts(struct ob *d)
{
	for (uint32_t i = 0; i < d->nhi; i++) {
		struct ob_conn *c = d->conns[i];
		if (c == NULL || c->state != OC_OPEN || c->deadline == 0 || c->deadline > d->now)
			continue;
		if (c->idle) {
			ob_idle_off(c);
			c->deadline = 0;
			if (smtp_client_quit(&c->cl) == RM_OK)
				ob_pump(d, c);
			else
				ob_conn_end(d, c, "idle", 0);
			continue;
		}
		if (c->tls_hs) {
			ob_tls_fail(d, c, "timed out");
			continue;
		}
		char why[OB_TEXT];
		snprintf(why, sizeof why, "451 4.4.2 timeout waiting for %s",
			 smtp_client_phase_name(smtp_client_phase(&c->cl)));
		ob_conn_end(d, c, why, 0);
	}
}

/* --- control requests ---------------------------------------------------------- */

/* ob_ctl_delete - the control socket's DELETE: journal every recipient
 * deleted, end a transaction of the message in flight, let its jobs drop
 * as they come up. The answer waits (d->dels) until the journal record is
 * durable, so a deletion reported done survives a crash. */
static int ob_ctl_delete(struct ob *d, struct outbound_ctl *req)
{
	struct ob_msg *m = d->msgs;
	char line[200];

	while (m != NULL && (m->deleted || strcmp(m->id, req->id) != 0))
		m = m->next;
	if (m == NULL)
		return OUTBOUND_CTL_NOTFOUND;
	struct spool_jrec jr = { .id = slice_cstr(m->id), .rcpt = SPOOL_RCPT_ALL, .outcome = SPOOL_OUT_DELETED,
				 .reply = slice_cstr("deleted by ringmta-queue") };
	int rc = spool_journal(m->ref->sp, &jr);
	if (rc != RM_OK) {
		snprintf(line, sizeof line, "message %s not deleted: its journal record cannot be written", m->id);
		evlog_msg("warn", "delete", line);
		return rc == RM_AGAIN ? OUTBOUND_CTL_BUSY : OUTBOUND_CTL_FAILED;
	}
	m->ref->drain(m->ref->ctx);
	m->deleted = true;
	for (struct ob_carry *h = d->away; h != NULL; h = h->next)
		if (h->m == m)
			__atomic_store_n(&h->cancel, 1, __ATOMIC_RELEASE);
	snprintf(line, sizeof line, "message %s deleted", m->id);
	evlog_msg("info", "delete", line);
	/* A transaction of it stops before its end of data can be sent. The
	 * message stays allocated until its last job is dropped. */
	for (uint32_t i = 0; i < d->nhi; i++) {
		struct ob_conn *c = d->conns[i];
		if (c != NULL && c->state == OC_OPEN && c->m == m && c->job != NULL)
			ob_conn_end(d, c, "451 4.3.0 message deleted", 0);
	}
	req->_sp = m->ref->sp;
	req->_until = d->now + OB_DELETE_WAIT_MS;
	req->_next = d->dels;
	d->dels = req;
	return OUTBOUND_CTL_PENDING;
}

/* ob_dels_check - answer the deletions whose journal record is durable
 * (the spool no longer keeps the message), and give up on those past
 * their time: a record that failed to write or sync never becomes durable */
static void ob_dels_check(struct ob *d)
{
	struct outbound_ctl **pp = &d->dels;

	while (*pp != NULL) {
		struct outbound_ctl *req = *pp;
		int result = OUTBOUND_CTL_PENDING;
		if (!spool_msg_live(req->_sp, slice_make(req->id, MSGID_LEN))) {
			result = OUTBOUND_CTL_DONE;
		} else if (d->now >= req->_until) {
			char line[200];
			snprintf(line, sizeof line,
				 "message %s: the deletion is not durable; it is delivered after a restart", req->id);
			evlog_msg("error", "delete", line);
			result = OUTBOUND_CTL_FAILED;
		}
		if (result == OUTBOUND_CTL_PENDING) {
			pp = &req->_next;
			continue;
		}
		*pp = req->_next;
		__atomic_store_n(&req->_result, result, __ATOMIC_RELEASE);
	}
}

/* --- hand-off between shards ------------------------------------------------------ */

/* ob_carry_take - a carrier's inbox brought another shard's job: a proxy
 * message with one job in this shard's scheduler */
static void ob_carry_take(struct ob *d, struct ob_carry *h)
{
	struct ob_msg *p = calloc(1, sizeof *p);
	struct sched_ldest *ld = p != NULL ? ob_ldest(d, h->key, h->hop) : NULL;

	if (ld != NULL) {
		p->carry = h;
		p->env = h->env;
		snprintf(p->id, sizeof p->id, "%s", h->id);
		p->total = p->env.received.len + spool_env_body_len(&p->env);
		p->sm.arrival_us = p->env.arrival_us;
		p->sm.nrcpt = p->env.nrcpt;
		p->sm.left = h->nrcpt;
		p->next = d->proxies;
		if (d->proxies)
			d->proxies->prev = p;
		d->proxies = p;
		d->nproxy++;
		if (sched_job_add(d->s, &p->sm, ld, h->rcpt, h->nrcpt, 0, h->attempts) == RM_OK)
			return;
		d->proxies = p->next;
		if (d->proxies)
			d->proxies->prev = NULL;
		d->nproxy--;
	}
	free(p);
	ob_carry_close(h);
	h->res = NULL;
	snprintf(h->why, sizeof h->why, "451 4.3.0 out of memory");
	h->hop_dsn = true;
	if (!ob_carry_post(d, h)) {
		h->next = d->back;
		d->back = h;
	}
}

/* ob_carry_result - the owner's inbox brought a carried job's result:
 * journal it as if this shard had sent the message */
static void ob_carry_result(struct ob *d, struct ob_carry *h)
{
	for (struct ob_carry **pp = &d->away; *pp != NULL; pp = &(*pp)->next)
		if (*pp == h) {
			*pp = h->next;
			break;
		}
	d->naway--;
	d->hop_dsn = h->hop_dsn;
	ob_job_done(d, h->job, h->m, h->res, h->why);
	d->hop_dsn = true;
	free(h->res);
	free(h);
}

/* ob_carry_make - the reference for carrying job j of m: the recipients
 * and a read-only fd of each body segment; NULL when it cannot be made
 * (the job stays here) */
static struct ob_carry *ob_carry_make(struct ob *d, struct sched_ldest *ld, struct sched_job *j)
{
	struct ob_msg *m = (struct ob_msg *)(void *)j->msg;
	struct ob_carry *h = calloc(1, sizeof *h + sizeof(uint32_t) * j->nrcpt);
	char path[64];

	if (h == NULL)
		return NULL;
	for (uint32_t i = 0; i < m->env.next; i++) {
		uint32_t seg = m->env.ext[i].seg, k = 0;
		while (k < h->nseg && h->seg[k] != seg)
			k++;
		if (k < h->nseg)
			continue;
		int sfd = spool_extent_fd(m->ref->sp, seg), fd = -1;
		if (sfd >= 0 && h->nseg < OB_CARRY_SEGS) {
			snprintf(path, sizeof path, "/proc/self/fd/%d", sfd);
			fd = open(path, O_RDONLY | O_CLOEXEC);
		}
		if (fd < 0) {
			ob_carry_close(h);
			free(h);
			return NULL;
		}
		h->seg[h->nseg] = seg;
		h->fd[h->nseg++] = fd;
	}
	h->owner = d;
	h->owner_shard = d->env.shard;
	h->job = j;
	h->m = m;
	h->env = m->env;
	snprintf(h->id, sizeof h->id, "%s", m->id);
	h->key = ld->dest->key;
	h->hop = ((struct ob_dest *)ld->user)->hop;
	h->attempts = j->attempts;
	h->nrcpt = j->nrcpt;
	memcpy(h->rcpt, j->rcpt, sizeof(uint32_t) * j->nrcpt);
	return h;
}

/* ob_job_requeue - put a taken job back at the end of ld's ready queue */
static void ob_job_requeue(struct ob *d, struct sched_ldest *ld, struct sched_job *j)
{
	struct ob_msg *m = (struct ob_msg *)(void *)j->msg;

	if (sched_job_add(d->s, &m->sm, ld, j->rcpt, j->nrcpt, 0, j->attempts) != RM_OK) {
		ob_job_fail_all(d, j, 0, "451 4.3.0 out of memory");
		return;
	}
	sched_job_drop(d->s, j);
	if (m->busy)
		m->busy--;
}

/* ob_load - this shard's load: its ready jobs and transactions in flight,
 * each of its own messages counted twice (this shard also received and
 * journals it), each one carried for another shard once (the transaction
 * only). Two shards with the same own work weigh the same: nothing goes
 * back and forth between them. */
static unsigned ob_load(struct ob *d)
{
	unsigned n = 0;
	for (struct sched_ldest *ld = sched_work(d->s); ld != NULL; ld = sched_work_next(d->s, ld))
		n += (unsigned)ld->ready;
	for (uint32_t i = 0; i < d->nhi; i++)
		if (d->conns[i] != NULL && d->conns[i]->job != NULL &&
		    (d->conns[i]->state == OC_OPEN || d->conns[i]->state == OC_CONNECTING))
			n++;
	return 2 * (n - (d->nproxy < n ? d->nproxy : n)) + d->nproxy;
}

/* ob_carry_target - the least loaded other shard whose load is at least
 * OB_CARRY_GAP below mine, or UINT_MAX */
static unsigned ob_carry_target(struct ob *d, const unsigned *load, unsigned mine)
{
	unsigned best = UINT_MAX, bl = UINT_MAX;
	for (unsigned i = 0; i < d->nload; i++)
		if (i != d->env.shard && load[i] != UINT_MAX && load[i] < bl) {
			best = i;
			bl = load[i];
		}
	return best != UINT_MAX && bl + OB_CARRY_GAP <= mine ? best : UINT_MAX;
}

/* ob_carry_out - hand ready jobs of ld to less loaded shards while this
 * one is the busier by OB_CARRY_GAP; load[] is this turn's estimate,
 * updated as jobs go. MX destinations too: the carrier looks the domain
 * up on its own ring (its own answer, kept like ours) and takes its
 * connections from the same shared count. */
static void ob_carry_out(struct ob *d, struct sched_ldest *ld, unsigned *load)
{
	unsigned me = d->env.shard;

	if (d->nproxy != 0)
		return;
	while (ld->ready && d->naway < OB_CARRY_MAX) {
		unsigned t = ob_carry_target(d, load, load[me]);
		if (t == UINT_MAX)
			return;
		struct mbox *mb = __atomic_load_n(&d->g->_ctl[t], __ATOMIC_ACQUIRE);
		struct sched_job *j = ob_take(d, ld);
		if (j != NULL && ((struct ob_msg *)(void *)j->msg)->deleted) {
			/* deleted: the job just goes (ob_job_done drops it) */
			ob_job_done(d, j, (struct ob_msg *)(void *)j->msg, NULL, "deleted");
			continue;
		}
		struct ob_carry *h = mb != NULL && j != NULL ? ob_carry_make(d, ld, j) : NULL;
		if (h == NULL || mbox_push(mb, (uint64_t)(uintptr_t)h | OB_REF_CARRY) == RM_AGAIN) {
			/* no hand-off: the job runs here (first in the turn's
			 * loop, as the oldest) */
			if (h != NULL) {
				ob_carry_close(h);
				free(h);
			}
			if (j != NULL)
				ob_job_requeue(d, ld, j);
			return;
		}
		h->next = d->away;
		d->away = h;
		d->naway++;
		d->wake[t] = 1;
		load[me] = load[me] > 2 ? load[me] - 2 : 0;
		load[t]++;
	}
}

/* ob_carry_back - post the results kept while their owner's inbox was full */
static void ob_carry_back(struct ob *d)
{
	struct ob_carry *h = d->back, *keep = NULL;
	d->back = NULL;
	while (h != NULL) {
		struct ob_carry *n = h->next;
		if (!ob_carry_post(d, h)) {
			h->next = keep;
			keep = h;
		}
		h = n;
	}
	d->back = keep;
}

/* ob_ring - ring the doorbell of every shard this turn gave something to:
 * a CQE on its ring (IORING_OP_MSG_RING) ends its wait at once; ours is
 * skipped unless the message failed */
static void ob_ring(struct ob *d)
{
	for (unsigned i = 0; i < d->nload; i++) {
		if (!d->wake[i])
			continue;
		d->wake[i] = 0;
		int fd = __atomic_load_n(&d->g->_ringfd[i], __ATOMIC_RELAXED);
		if (fd < 0 || i == d->env.shard)
			continue;
		uint64_t ud = ((uint64_t)NET_DELIVER_UD_OP << 56) | ((uint64_t)O_WAKE << 28);
		struct io_uring_sqe *sqe = ring_sqe(d->env.ring);
		io_uring_prep_msg_ring(sqe, fd, 0, ud, 0);
		io_uring_sqe_set_data64(sqe, ud);
		sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	}
}

/* ob_ctl_take - answer the requests in the shard's control inbox */
static void ob_ctl_take(struct ob *d)
{
	uint64_t ref;

	while (d->ctl != NULL && mbox_pop(d->ctl, &ref)) {
		if (ref & OB_REF_CARRY) {
			ob_carry_take(d, (struct ob_carry *)(uintptr_t)(ref & ~(uint64_t)3));
			continue;
		}
		if (ref & OB_REF_RESULT) {
			ob_carry_result(d, (struct ob_carry *)(uintptr_t)(ref & ~(uint64_t)3));
			continue;
		}
		struct outbound_ctl *req = (struct outbound_ctl *)(uintptr_t)ref;
		int result = OUTBOUND_CTL_DONE;
		if (req->op == OUTBOUND_CTL_DELETE)
			result = ob_ctl_delete(d, req);
		else if (req->op == OUTBOUND_CTL_FLUSH)
			sched_tick(d->s, UINT64_MAX); /* every deferred job is due */
		if (result != OUTBOUND_CTL_PENDING)
			__atomic_store_n(&req->_result, result, __ATOMIC_RELEASE);
	}
	ob_dels_check(d);
}

/* ob_idle_release - an idle connection (this shard has no work for its
 * destination) gives its slot back at once while the destination is at its
 * process-wide limit and another shard has said it waits for a slot
 * (sched_dest_want), and this shard either holds more than its share of
 * the limit or has had the connection idle for OB_IDLE_GIVE_MS: the idle
 * time would keep that shard waiting for nothing. One connection per mark:
 * a shard still short marks again in its next turn. Otherwise the
 * connection stays for this shard's next message: under steady load both
 * shards wait for slots now and then and each is idle for a moment between
 * messages, and giving slots back then cost a connect, EHLO and QUIT every
 * few messages (about 5 messages per connection instead of 100). Runs
 * after the turn's work, so this shard's own ready jobs had the idle
 * connections first. */
static void ob_idle_release(struct ob *d, uint64_t now)
{
	unsigned nshard = d->nload ? d->nload : 1;

	for (struct ob_dest *od = d->dests; od != NULL; od = od->next)
		if (od->idle != NULL) {
			struct ob_conn *c = od->idle;
			while (c->idle_next != NULL) /* the one idle longest */
				c = c->idle_next;
			unsigned lim = sched_dest_limit(c->ld->dest, now);
			if (sched_dest_conns(c->ld->dest) < lim ||
			    (od->nconn <= (lim + nshard - 1) / nshard && d->now - c->idle_at < OB_IDLE_GIVE_MS) ||
			    !sched_dest_wanted(c->ld->dest))
				continue;
			ob_idle_off(c);
			c->deadline = 0;
			if (smtp_client_quit(&c->cl) == RM_OK)
				ob_pump(d, c);
			else
				ob_conn_end(d, c, "idle", 0);
		}
}

/* ob_turn - the loop boundary: due retries, then start what can start */
static void ob_turn(void *arg, int64_t now_ms)
{
	struct ob *d = arg;
	uint64_t now = ob_wall_us();

	d->now = now_ms;
	if (d->stopped)
		return;
	ob_ctl_take(d);
	if (d->pend != NULL)
		ob_pend_check(d, NULL, RM_OK); /* reports whose commit never ended */
	if (d->dns != NULL)
		dns_tick(d->dns);
	ob_timeouts(d);
	sched_tick(d->s, now);
	ob_carry_back(d);
	unsigned load[MSGID_SHARD_MAX + 1];
	unsigned me = d->env.shard <= MSGID_SHARD_MAX ? d->env.shard : 0;
	unsigned nshard = __atomic_load_n(&d->g->_nshard, __ATOMIC_RELAXED);
	d->nload = 0;
	for (unsigned i = 0; i < nshard && i <= MSGID_SHARD_MAX; i++)
		if ((load[i] = d->g->_load ? __atomic_load_n(&d->g->_load[i], __ATOMIC_RELAXED) : UINT_MAX) != UINT_MAX)
			d->nload = i + 1;
	load[me] = ob_load(d);
	for (struct sched_ldest *ld = sched_work(d->s); ld != NULL; ld = sched_work_next(d->s, ld)) {
		struct ob_dest *od = ld->user;
		if (d->g->_load != NULL && d->env.shard <= MSGID_SHARD_MAX)
			ob_carry_out(d, ld, load);
		while (ld->ready) {
			if (od->hop == NULL) {
				int mx = ob_mx_state(d, ld, od);
				if (mx == 0)
					break;
				if (mx < 0) {
					ob_job_fail_all(d, ob_take(d, ld), od->mx_code, od->mx_text);
					continue;
				}
			}
			if (od->idle != NULL) {
				struct ob_conn *c = od->idle;
				ob_idle_off(c);
				ob_next(d, c);
				ob_pump(d, c);
				continue;
			}
			if (!sched_dest_take(ld->dest, now)) {
				/* ask the shards holding idle slots for one */
				if (sched_dest_want(ld->dest))
					for (unsigned i = 0; i < d->nload; i++)
						d->wake[i] = 1;
				break;
			}
			struct sched_job *j = ob_take(d, ld);
			if (!ob_conn_start(d, ld, j)) {
				sched_dest_put(ld->dest);
				/* no slot: deferred like a failed connection */
				ob_job_done(d, j, (struct ob_msg *)(void *)j->msg, NULL,
					    "451 4.3.0 no outbound connection slot");
				break;
			}
		}
	}
	ob_idle_release(d, now);
	if (d->g->_load != NULL && d->env.shard <= MSGID_SHARD_MAX) {
		__atomic_store_n(&d->g->_load[d->env.shard], ob_load(d), __ATOMIC_RELAXED);
		ob_ring(d);
	}
}

/* ob_stop - the server stops: close every connection, journal nothing */
static void ob_stop(void *arg)
{
	struct ob *d = arg;
	d->stopped = true;
	d->dns = dns_free(d->dns);
	/* outcomes already journalled must not lose their report: the round
	 * ends here (the jobs in flight are dropped, tried again after a
	 * restart) */
	for (struct ob_msg *m = d->msgs; m != NULL; m = m->next)
		ob_dsn_flush(d, m);
	for (uint32_t i = 0; i < d->nhi; i++) {
		struct ob_conn *c = d->conns[i];
		if (c != NULL && (c->state == OC_OPEN || c->state == OC_CONNECTING)) {
			if (c->job != NULL) {
				sched_job_drop(d->s, c->job);
				c->job = NULL;
			}
			ob_conn_end(d, c, "shutdown", 0);
		}
	}
}

/* ob_pending - operations in the kernel */
static unsigned ob_pending(void *arg)
{
	const struct ob *d = arg;
	return d->pending;
}

const struct net_deliver_ops outbound_ops = {
	.create = ob_create,
	.destroy = ob_destroy,
	.complete = ob_complete,
	.turn = ob_turn,
	.stop = ob_stop,
	.pending = ob_pending,
	.queued = ob_queued,
	.inject_failed = ob_inject_failed,
};
