/* blast.c - ringmta-blast's io_uring load engine.
 *
 * Threads: one worker per --threads, each owning a ring and its sessions;
 * they share only the run (read-only after start), the message counter and
 * the stop flag (atomics), and publish their counters with relaxed stores
 * for the progress line. Per session, invariants:
 *  - at most one send in flight; while it is, the engine is not fed (it
 *    would append to the buffer being sent), input waits in the receive
 *    buffer;
 *  - a recv is armed only when every received byte has been fed;
 *  - a message is in flight from smtp_client_send until the engine counts
 *    its transaction over (smtp_client_messages) or the session closes; it
 *    ends counted exactly once as accepted, rejected or (closed first) an
 *    error. With PIPELINING two may be in flight (the engine's
 *    pipeline_next): the next message's MAIL, RCPTs and DATA go out in the
 *    same sendmsg as the previous body and its ".", so a session never
 *    waits a round trip between messages; replies belong to the oldest
 *    message in flight, so each session keeps a two-slot ring of them;
 *  - a message's slot (header, envelope text) stays untouched until it
 *    ends, since the send that carries its body may still be in flight;
 *  - completions carry op and slot in user_data, never a pointer.
 * With --starttls every session goes through STARTTLS (the engine's
 * REQUIRED mode: a server that does not offer it, or a failed handshake,
 * is a session error) and then speaks through a net/tls.h connection over
 * memory buffers: the same sendmsg slices are encrypted into the TLS
 * connection's send buffer (up to one record's worth per send), and
 * received ciphertext is pushed into it and read back as plaintext for the
 * engine. The server's certificate is not verified: a load generator
 * measures, it does not trust. A session's TLS connection lives until the
 * worker ends (a send may still reference its buffer after the close).
 * Panics on nothing: a session that fails is closed and counted.
 */
#define _GNU_SOURCE
#include "tools/blast.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/smtp_client.h"
#include "net/ring.h"
#include "net/tls.h"

#define BLAST_OUT 8192
#define BLAST_IN 4096
#define BLAST_HDR 1536
#define BLAST_IDLE_US (60ll * 1000000) /* a session silent this long fails */
#define BLAST_WAIT_MS 100
#define BLAST_TLS_COALESCE 512 /* ciphertext below this waits for more records */

enum blast_op { OP_CONNECT = 1, OP_RECV, OP_SEND, OP_CLOSE };
enum bconn_state { B_CONNECTING = 0, B_OPEN, B_CLOSING, B_DONE };

/* One message of a session, from its build until its final reply. */
struct bmsg {
	bool ok, rej;
	int64_t start_us;      /* its first command */
	struct smtp_client_msg msg;
	struct smtp_client_rcpt *rcpt;
	char *rtext;           /* recipients' text */
	size_t hdrlen;
	char *hdr;             /* BLAST_HDR bytes: the header block */
	char from[300];
};

#define BLAST_SLOTS 2 /* messages in flight per session, at most */

struct bconn {
	int fd;
	uint8_t state;
	bool recv_armed;
	bool sending;
	bool close_after;    /* close once the send is done */
	bool parked;         /* waiting for --rate (the message is built) */
	bool handshake;      /* STARTTLS accepted, TLS handshake under way */
	uint8_t head, nfly;  /* oldest message in flight, and how many */
	int64_t due_us;      /* parked until */
	int64_t active_us;   /* last completion */
	uint64_t over;       /* transactions the engine has counted over */
	struct smtp_client cl;
	struct buf out;
	struct tls_conn *tls; /* after STARTTLS; NULL before */
	const char *ip;       /* input for the engine: in[], or TLS plaintext */
	size_t inoff, inlen;
	struct iovec lead[3]; /* a DATA body and its ".", to go before out */
	int nlead;
	struct iovec iov[6];
	int niov;
	struct msghdr mh;
	struct bmsg m[BLAST_SLOTS];
	char outmem[BLAST_OUT];
	char in[BLAST_IN];
};

struct blast;

struct worker {
	struct blast *b;
	unsigned idx;
	pthread_t thread;
	struct io_uring ring;
	struct bconn *c;
	unsigned n, live;
	struct blast_result r; /* counters published by relaxed stores */
};

struct blast {
	const struct blast_opts *o;
	struct sockaddr_storage sa;
	socklen_t salen;
	uint64_t limit;      /* messages to start in all */
	uint64_t next;       /* atomic: the next message number */
	int stop;            /* atomic */
	unsigned finished;   /* atomic: workers done */
	int64_t t0_us, end_us;
	int64_t last_us;     /* atomic: when the last worker finished */
	char *body;          /* the shared body: o->size bytes of text */
	char date[64];
	unsigned long long run_id;
	struct worker *w;
	unsigned nw;
	struct smtp_client_cfg ccfg;
	struct tls_ctx *tls;  /* --starttls: a client context, no verification */
	const char *sni;      /* the target's name for SNI; NULL for an address */
};

#define PUB(w, f, n) __atomic_store_n(&(w)->r.f, (w)->r.f + (n), __ATOMIC_RELAXED)

/* now_us - the monotonic clock in microseconds */
static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ud - user_data of op on slot */
static inline uint64_t ud(unsigned op, uint32_t slot)
{
	return ((uint64_t)op << 32) | slot;
}

/* --- messages ------------------------------------------------------------- */

/* blast_expand - tmpl with every "{n}" replaced by n, into out[cap]; the
 * length written (cut at cap - 1) */
static size_t blast_expand(const char *tmpl, uint64_t n, char *out, size_t cap)
{
	size_t len = 0;

	for (const char *p = tmpl; *p && len + 1 < cap; p++) {
		if (p[0] == '{' && p[1] == 'n' && p[2] == '}') {
			int k = snprintf(out + len, cap - len, "%llu", (unsigned long long)n);
			len += k > 0 ? (size_t)k : 0;
			if (len >= cap)
				len = cap - 1;
			p += 2;
		} else {
			out[len++] = *p;
		}
	}
	out[len] = '\0';
	return len;
}

/* blast_body_make - o->size bytes of CRLF text lines without any '.', so
 * every tail of it is already dot-stuffed and ends with CRLF */
static char *blast_body_make(uint64_t size)
{
	static const char alpha[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ";
	char *b = malloc(size ? size : 1);

	if (b == NULL)
		return NULL;
	for (uint64_t i = 0, col = 0; i < size; i++, col++) {
		if (col == 76 || i + 2 == size) {
			b[i++] = '\r';
			if (i < size)
				b[i] = '\n';
			col = (uint64_t)-1;
			continue;
		}
		b[i] = alpha[(i * 7 + col) % (sizeof alpha - 1)];
	}
	if (size == 1)
		b[0] = '\n';
	return b;
}

/* msg_slot - the session's slot for the next message */
static struct bmsg *msg_slot(struct bconn *c)
{
	return &c->m[(c->head + c->nfly) % BLAST_SLOTS];
}

/* msg_head - the oldest message in flight */
static struct bmsg *msg_head(struct bconn *c)
{
	return &c->m[c->head];
}

/* msg_build - envelope and header block of message number n (0-based), in
 * the session's next slot */
static int msg_build(struct blast *b, struct bconn *c, uint64_t n)
{
	const struct blast_opts *o = b->o;
	size_t rlen = strlen(o->to) + 24;
	struct bmsg *m = msg_slot(c);

	if (m->rcpt == NULL) {
		m->rcpt = calloc(o->rcpts, sizeof *m->rcpt);
		m->rtext = malloc((size_t)o->rcpts * rlen);
		m->hdr = malloc(BLAST_HDR);
		if (m->rcpt == NULL || m->rtext == NULL || m->hdr == NULL)
			return RM_ENOMEM;
	}
	size_t flen = blast_expand(o->from, n + 1, m->from, sizeof m->from);
	for (unsigned j = 0; j < o->rcpts; j++) {
		char *t = m->rtext + (size_t)j * rlen;
		size_t len = blast_expand(o->to, n * o->rcpts + j + 1, t, rlen);
		m->rcpt[j] = (struct smtp_client_rcpt){ .addr = slice_make(t, len) };
	}
	/* A second pass with one more space when the body's tail would start
	 * between a CR and its LF (a bare LF the server would rewrite). */
	for (int pad = 0; pad < 2; pad++) {
		int h = snprintf(m->hdr, BLAST_HDR,
				 "From: <%s>\r\nTo: <%s>\r\nSubject:%s ringmta-blast message %llu\r\n"
				 "Date: %s\r\nMessage-ID: <%llu.%llx@blast.test>\r\n\r\n",
				 m->from, m->rtext, pad ? " " : "", (unsigned long long)(n + 1), b->date,
				 (unsigned long long)(n + 1), b->run_id);
		m->hdrlen = h > 0 && (size_t)h < BLAST_HDR ? (size_t)h : 0;
		if (o->size <= m->hdrlen + 1 || b->body[o->size - (o->size - m->hdrlen)] != '\n')
			break;
	}
	m->msg = (struct smtp_client_msg){
		.from = slice_make(m->from, flen),
		.rcpt = m->rcpt,
		.nrcpt = o->rcpts,
		.size = m->hdrlen + (o->size > m->hdrlen + 1 ? o->size - m->hdrlen : 0),
	};
	return RM_OK;
}

/* msg_tail - the shared body's tail that completes message m */
static struct iovec msg_tail(struct blast *b, const struct bmsg *m)
{
	size_t tail = m->msg.size - m->hdrlen;
	return (struct iovec){ b->body + (b->o->size - tail), tail };
}

/* --- I/O -------------------------------------------------------------------- */

/* conn_sqe - an SQE for c's op */
static struct io_uring_sqe *conn_sqe(struct worker *w, struct bconn *c, unsigned op)
{
	struct io_uring_sqe *sqe = ring_sqe(&w->ring);
	io_uring_sqe_set_data64(sqe, ud(op, (uint32_t)(c - w->c)));
	return sqe;
}

/* send_iov - sendmsg of the slices left in c->iov */
static void send_iov(struct worker *w, struct bconn *c)
{
	memset(&c->mh, 0, sizeof c->mh);
	c->mh.msg_iov = c->iov;
	c->mh.msg_iovlen = (size_t)c->niov;
	io_uring_prep_sendmsg(conn_sqe(w, c, OP_SEND), c->fd, &c->mh, MSG_NOSIGNAL);
	c->sending = true;
}

/* iov_advance - drop the first n bytes of c->iov */
static void iov_advance(struct bconn *c, size_t n)
{
	int i = 0;

	while (i < c->niov && n >= c->iov[i].iov_len)
		n -= c->iov[i++].iov_len;
	memmove(c->iov, c->iov + i, (size_t)(c->niov - i) * sizeof *c->iov);
	c->niov -= i;
	if (c->niov > 0) {
		c->iov[0].iov_base = (char *)c->iov[0].iov_base + n;
		c->iov[0].iov_len -= n;
	}
}

/* tls_send - encrypt up to one record's worth of the slices left in c->iov
 * as one record (when little ciphertext waits, so small records share a
 * send) and send the ciphertext: 1 a send started, 0 nothing left, -1 the
 * library failed */
static int tls_send(struct worker *w, struct bconn *c)
{
	struct slice s = tls_conn_out(c->tls);

	if (s.len < BLAST_TLS_COALESCE && c->niov > 0) {
		struct iovec v[sizeof c->iov / sizeof c->iov[0]];
		size_t budget = TLS_PLAIN_SIZE, took = 0;
		int n = 0;
		for (; n < c->niov && took < budget; n++) {
			v[n] = c->iov[n];
			if (v[n].iov_len > budget - took)
				v[n].iov_len = budget - took;
			took += v[n].iov_len;
		}
		if (tls_conn_writev(c->tls, v, n) != RM_OK)
			return -1;
		iov_advance(c, took);
		s = tls_conn_out(c->tls);
	}
	if (s.len == 0)
		return 0;
	io_uring_prep_send(conn_sqe(w, c, OP_SEND), c->fd, s.ptr, s.len, MSG_NOSIGNAL);
	c->sending = true;
	return 1;
}

/* send_start - send the lead slices, out and, when given, more slices
 * after it, through the session's TLS connection once it has one; false
 * when that failed */
static bool send_start(struct worker *w, struct bconn *c, const struct iovec *more, int nmore)
{
	c->niov = 0;
	for (int i = 0; i < c->nlead; i++)
		if (c->lead[i].iov_len)
			c->iov[c->niov++] = c->lead[i];
	c->nlead = 0;
	if (c->out.len)
		c->iov[c->niov++] = (struct iovec){ c->out.ptr, c->out.len };
	for (int i = 0; i < nmore; i++)
		if (more[i].iov_len)
			c->iov[c->niov++] = more[i];
	if (c->tls != NULL)
		return tls_send(w, c) >= 0;
	if (c->niov == 0) {
		c->out.len = 0;
		return true;
	}
	send_iov(w, c);
	return true;
}

/* recv_arm - wait for the server's next bytes */
static void recv_arm(struct worker *w, struct bconn *c)
{
	c->inoff = c->inlen = 0;
	io_uring_prep_recv(conn_sqe(w, c, OP_RECV), c->fd, c->in, sizeof c->in, 0);
	c->recv_armed = true;
}

/* conn_close - close c's socket (once) */
static void conn_close(struct worker *w, struct bconn *c)
{
	if (c->state >= B_CLOSING)
		return;
	c->state = B_CLOSING;
	c->parked = false;
	io_uring_prep_close(conn_sqe(w, c, OP_CLOSE), c->fd);
}

/* conn_lost - the session ends with messages in flight (and maybe a TLS
 * handshake under way): each is an error */
static void conn_lost(struct worker *w, struct bconn *c)
{
	unsigned n = c->nfly + c->handshake;

	c->nfly = 0;
	c->handshake = false;
	if (n)
		PUB(w, errors, n);
}

/* conn_fail - the session is lost */
static void conn_fail(struct worker *w, struct bconn *c)
{
	conn_lost(w, c);
	conn_close(w, c);
}

/* msg_reap - count every message whose transaction the engine has counted
 * over: the oldest in flight first, as the replies came */
static void msg_reap(struct worker *w, struct bconn *c, int64_t now)
{
	while (c->nfly > 0 && c->over < smtp_client_messages(&c->cl)) {
		struct bmsg *m = msg_head(c);
		c->over++;
		hist_record(&w->r.latency, (uint64_t)(now - m->start_us));
		PUB(w, bytes, m->msg.size);
		if (m->ok && !m->rej)
			PUB(w, accepted, 1);
		else
			PUB(w, rejected, 1);
		c->head = (uint8_t)((c->head + 1) % BLAST_SLOTS);
		c->nfly--;
	}
}

/* msg_next - claim and start the next message, park for --rate, or QUIT */
static bool msg_next(struct worker *w, struct bconn *c, int64_t now)
{
	struct blast *b = w->b;

	if (c->nfly >= BLAST_SLOTS) { /* the engine would not allow it */
		conn_fail(w, c);
		return false;
	}
	if (!c->parked) {
		uint64_t n = __atomic_fetch_add(&b->next, 1, __ATOMIC_RELAXED);
		if (n >= b->limit || __atomic_load_n(&b->stop, __ATOMIC_RELAXED) ||
		    (b->end_us && now >= b->end_us) || msg_build(b, c, n) != RM_OK) {
			if (smtp_client_quit(&c->cl) != RM_OK)
				conn_close(w, c);
			return false;
		}
		if (b->o->rate) {
			c->due_us = b->t0_us + (int64_t)(n * 1000000 / b->o->rate);
			if (c->due_us > now) {
				c->parked = true;
				return true;
			}
		}
	}
	c->parked = false;
	struct bmsg *m = msg_slot(c);
	if (smtp_client_send(&c->cl, &m->msg) != RM_OK) {
		conn_fail(w, c);
		return false;
	}
	c->nfly++;
	m->ok = m->rej = false;
	m->start_us = now;
	PUB(w, sent, 1);
	return false;
}

static void pump(struct worker *w, struct bconn *c, int64_t now);

/* tls_step - advance the handshake with the ciphertext pushed so far;
 * once done the engine sends EHLO again (RFC 3207 §4.2) */
static void tls_step(struct worker *w, struct bconn *c, int64_t now)
{
	int rc = tls_conn_handshake(c->tls);

	if (rc == RM_OK) {
		c->handshake = false;
		smtp_client_tls_started(&c->cl, true);
		pump(w, c, now); /* the client's last flight goes out with EHLO */
		return;
	}
	if (rc != RM_AGAIN || (!c->sending && tls_send(w, c) < 0)) {
		conn_fail(w, c);
		return;
	}
	if (!c->recv_armed)
		recv_arm(w, c);
}

/* tls_start - STARTTLS was accepted: a TLS connection and its first flight */
static void tls_start(struct worker *w, struct bconn *c, int64_t now)
{
	/* RFC 3207 §5: whatever the server sent after its 220 is dropped. */
	c->inoff = c->inlen;
	c->handshake = true;
	c->tls = tls_conn_new(w->b->tls, w->b->sni);
	if (c->tls == NULL) {
		conn_fail(w, c);
		return;
	}
	tls_step(w, c, now);
}

/* input_more - with TLS, the next plaintext for the engine: true when
 * there is some, false when a recv must bring more (or the session failed) */
static bool input_more(struct worker *w, struct bconn *c)
{
	struct slice p;

	if (c->tls == NULL || c->inoff != c->inlen)
		return false;
	int rc = tls_conn_read(c->tls, &p);
	if (rc == RM_OK) {
		c->ip = p.ptr;
		c->inoff = 0;
		c->inlen = p.len;
		return true;
	}
	if (rc != RM_AGAIN)
		conn_fail(w, c); /* a bad record, or close_notify mid-session */
	return false;
}

/* pump - feed the engine until it waits for the network */
static void pump(struct worker *w, struct bconn *c, int64_t now)
{
	struct blast *b = w->b;

	while (c->state == B_OPEN && !c->sending && !c->parked && !c->handshake) {
		size_t used = 0;
		enum smtp_client_ev ev = smtp_client_feed(&c->cl, c->ip + c->inoff, c->inlen - c->inoff, &used,
							  &c->out);
		c->inoff += used;
		const struct smtp_reply *r = smtp_client_reply(&c->cl);
		/* A reply event is the oldest message's; it may also be the
		 * last of it, counted over by the same feed. */
		if (ev == SMTP_CL_RCPT && c->nfly && (r == NULL || r->code / 100 != 2))
			msg_head(c)->rej = true;
		if (ev == SMTP_CL_RESULT && c->nfly) {
			if (r != NULL && r->code / 100 == 2)
				msg_head(c)->ok = true;
			else
				msg_head(c)->rej = true;
		}
		msg_reap(w, c, now);
		switch (ev) {
		case SMTP_CL_NONE:
			if (c->out.len || c->nlead || (c->tls != NULL && tls_conn_out_pending(c->tls))) {
				if (!send_start(w, c, NULL, 0))
					conn_fail(w, c);
				break;
			}
			if (input_more(w, c))
				break;
			if (c->state == B_OPEN && c->inoff == c->inlen && !c->recv_armed)
				recv_arm(w, c);
			return;
		case SMTP_CL_FLUSH:
			if (!send_start(w, c, NULL, 0))
				conn_fail(w, c);
			break;
		case SMTP_CL_READY:
			if (msg_next(w, c, now))
				return; /* parked */
			break;
		case SMTP_CL_RCPT:
		case SMTP_CL_RESULT:
			break;
		case SMTP_CL_BODY: {
			/* The newest message in flight: an older one has had its
			 * final reply before this one's 354. */
			struct bmsg *m = &c->m[(c->head + c->nfly + BLAST_SLOTS - 1) % BLAST_SLOTS];
			struct iovec body[3] = { { m->hdr, m->hdrlen }, msg_tail(b, m), { (void *)".\r\n", 3 } };
			if (c->nfly == 0) {
				conn_fail(w, c);
				return;
			}
			if (smtp_client_bdat_mode(&c->cl)) {
				if (smtp_client_bdat(&c->cl, &c->out, m->msg.size, true) != RM_OK ||
				    !send_start(w, c, body, 2)) {
					conn_fail(w, c);
					return;
				}
				break;
			}
			/* The body goes before whatever the engine writes next (with
			 * PIPELINING, the next message's commands or QUIT): one
			 * sendmsg for both. Out is empty here, as the 354 is only
			 * read once every command before it was sent. */
			if (c->out.len && !send_start(w, c, NULL, 0)) {
				conn_fail(w, c);
				return;
			}
			memcpy(c->lead, body, sizeof body);
			c->nlead = 3;
			if (smtp_client_body_sent(&c->cl) != RM_OK) {
				conn_fail(w, c);
				return;
			}
			break;
		}
		case SMTP_CL_STARTTLS:
			tls_start(w, c, now);
			return;
		case SMTP_CL_CLOSE: {
			/* --starttls against a server without it (or refusing it)
			 * is a failed session even with no message started. */
			enum smtp_client_fail f = smtp_client_fail(&c->cl);
			if (c->nfly == 0 && (f == SMTP_CLIENT_FAIL_TLS_UNAVAILABLE || f == SMTP_CLIENT_FAIL_TLS_FAILED))
				PUB(w, errors, 1);
			conn_lost(w, c);
			c->close_after = true;
			if (!c->out.len || !send_start(w, c, NULL, 0) || !c->sending)
				conn_close(w, c);
			return;
		}
		}
	}
}

/* on_send - a sendmsg finished, maybe partly */
static void on_send(struct worker *w, struct bconn *c, int res, int64_t now)
{
	c->sending = false;
	if (res < 0) {
		conn_fail(w, c);
		return;
	}
	if (c->tls != NULL) {
		/* The ciphertext went (partly); more of it, or more slices to
		 * encrypt, go out before anything else. */
		tls_conn_sent(c->tls, (size_t)res);
		int st = tls_send(w, c);
		if (st != 0) {
			if (st < 0)
				conn_fail(w, c);
			return;
		}
	} else {
		iov_advance(c, (size_t)res);
		if (c->niov > 0) {
			send_iov(w, c); /* a short send: the rest goes out first */
			return;
		}
	}
	c->out.len = 0;
	if (c->close_after) {
		conn_close(w, c);
		return;
	}
	if (c->handshake)
		return; /* the handshake goes on when the server answers */
	pump(w, c, now);
}

/* on_cqe - one completion */
static void on_cqe(struct worker *w, const struct io_uring_cqe *cqe, int64_t now)
{
	unsigned op = (unsigned)(cqe->user_data >> 32);
	uint32_t slot = (uint32_t)cqe->user_data;

	if (slot >= w->n)
		return;
	struct bconn *c = &w->c[slot];
	c->active_us = now;
	switch (op) {
	case OP_CONNECT:
		if (cqe->res < 0) {
			PUB(w, errors, 1);
			conn_close(w, c);
			return;
		}
		c->state = B_OPEN;
		pump(w, c, now);
		break;
	case OP_RECV:
		c->recv_armed = false;
		if (c->state != B_OPEN)
			return;
		if (cqe->res <= 0) {
			conn_fail(w, c);
			return;
		}
		if (c->tls != NULL) {
			c->inoff = c->inlen = 0;
			if (tls_conn_push(c->tls, c->in, (size_t)cqe->res) != RM_OK)
				conn_fail(w, c);
			else if (c->handshake)
				tls_step(w, c, now);
			else
				pump(w, c, now);
			break;
		}
		c->ip = c->in;
		c->inoff = 0;
		c->inlen = (size_t)cqe->res;
		pump(w, c, now);
		break;
	case OP_SEND:
		if (c->state == B_OPEN)
			on_send(w, c, cqe->res, now);
		else
			c->sending = false;
		break;
	case OP_CLOSE:
		c->state = B_DONE;
		w->live--;
		break;
	}
}

/* worker_turn_end - parked sessions whose time came, idle sessions */
static int64_t worker_turn_end(struct worker *w, int64_t now)
{
	int64_t wait = BLAST_WAIT_MS * 1000;

	for (unsigned i = 0; i < w->n; i++) {
		struct bconn *c = &w->c[i];
		if (c->state != B_OPEN)
			continue;
		if (c->parked) {
			if (c->due_us <= now) {
				(void)msg_next(w, c, now);
				pump(w, c, now);
			} else if (c->due_us - now < wait) {
				wait = c->due_us - now;
			}
			continue;
		}
		if (now - c->active_us > BLAST_IDLE_US)
			conn_fail(w, c);
	}
	return wait;
}

/* worker_conn - a socket for slot i and its connect */
static void worker_conn(struct worker *w, unsigned i, int64_t now)
{
	struct blast *b = w->b;
	struct bconn *c = &w->c[i];
	int one = 1;

	c->fd = socket(b->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	c->active_us = now;
	if (c->fd < 0) {
		PUB(w, errors, 1);
		c->state = B_DONE;
		w->live--;
		return;
	}
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	buf_init(&c->out, c->outmem, sizeof c->outmem);
	c->ip = c->in;
	smtp_client_init(&c->cl, &b->ccfg);
	io_uring_prep_connect(conn_sqe(w, c, OP_CONNECT), c->fd, (const struct sockaddr *)&b->sa, b->salen);
}

/* worker_main - one thread's ring and sessions */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	unsigned entries = 64;

	while (entries < 2 * w->n + 16 && entries < 4096)
		entries *= 2;
	if (w->n == 0 || ring_init(&w->ring, entries) != RM_OK) {
		PUB(w, errors, w->n);
		goto out;
	}
	w->live = w->n;
	int64_t now = now_us();
	for (unsigned i = 0; i < w->n; i++)
		worker_conn(w, i, now);
	int64_t wait = BLAST_WAIT_MS * 1000;
	while (w->live > 0) {
		struct io_uring_cqe *cqe = NULL;
		struct __kernel_timespec ts = { .tv_sec = wait / 1000000, .tv_nsec = (wait % 1000000) * 1000 };
		int rc = io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL);
		if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN)
			break;
		now = now_us();
		unsigned head, n = 0;
		io_uring_for_each_cqe(&w->ring, head, cqe) {
			on_cqe(w, cqe, now);
			n++;
		}
		io_uring_cq_advance(&w->ring, n);
		wait = worker_turn_end(w, now);
	}
	io_uring_queue_exit(&w->ring); /* no send references a buffer any more */
out:
	for (unsigned i = 0; i < w->n; i++) {
		for (unsigned j = 0; j < BLAST_SLOTS; j++) {
			free(w->c[i].m[j].rcpt);
			free(w->c[i].m[j].rtext);
			free(w->c[i].m[j].hdr);
		}
		w->c[i].tls = tls_conn_free(w->c[i].tls);
	}
	/* The run ends when its last worker does, not at the caller's next
	 * progress tick: the summary's seconds must not depend on that. */
	int64_t t = now_us(), prev = __atomic_load_n(&w->b->last_us, __ATOMIC_RELAXED);
	while (prev < t && !__atomic_compare_exchange_n(&w->b->last_us, &prev, t, false, __ATOMIC_RELAXED,
							   __ATOMIC_RELAXED))
		;
	__atomic_fetch_add(&w->b->finished, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* --- the run ---------------------------------------------------------------- */

/* blast_resolve - the target's first address */
static int blast_resolve(struct blast *b, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res = NULL;
	char port[8];

	snprintf(port, sizeof port, "%u", b->o->target.port);
	int rc = getaddrinfo(b->o->target.host, port, &hints, &res);
	if (rc != 0 || res == NULL) {
		snprintf(err, errlen, "--target %s: %s", b->o->target.host, gai_strerror(rc));
		return -1;
	}
	memcpy(&b->sa, res->ai_addr, res->ai_addrlen);
	b->salen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* blast_tls - the client context for --starttls: no certificate check
 * (a load generator measures, it does not trust); SNI only for a name, as
 * RFC 6066 §3 forbids address literals there */
static int blast_tls(struct blast *b, char *err, size_t errlen)
{
	unsigned char a[sizeof(struct in6_addr)];
	const char *host = b->o->target.host;

	b->tls = tls_ctx_client_new(false, NULL, err, errlen);
	if (b->tls == NULL)
		return -1;
	bool literal = inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
	b->sni = literal ? NULL : host;
	return 0;
}

/* blast_free - free what blast_start made */
static void blast_free(struct blast *b)
{
	for (unsigned i = 0; b->w && i < b->nw; i++)
		free(b->w[i].c);
	free(b->w);
	free(b->body);
	tls_ctx_unref(b->tls);
	free(b);
}

/* blast_start - resolve the target and start the threads */
struct blast *blast_start(const struct blast_opts *o, bool messages_given, char *err, size_t errlen)
{
	struct blast *b = calloc(1, sizeof *b);
	time_t t = time(NULL);
	struct tm tm;

	if (b == NULL)
		goto nomem;
	b->o = o;
	if (blast_resolve(b, err, errlen) != 0)
		goto fail;
	b->limit = o->duration && !messages_given ? UINT64_MAX : o->messages;
	b->body = blast_body_make(o->size);
	b->nw = o->threads ? o->threads : 1;
	b->w = calloc(b->nw, sizeof *b->w);
	if (b->body == NULL || b->w == NULL)
		goto nomem;
	localtime_r(&t, &tm);
	strftime(b->date, sizeof b->date, "%a, %d %b %Y %H:%M:%S %z", &tm);
	b->ccfg = (struct smtp_client_cfg){ .helo_name = SLICE_LIT("blast.test"),
					    .tls = o->starttls ? SMTP_CLIENT_TLS_REQUIRED : SMTP_CLIENT_TLS_NONE,
					    .no_chunking = !o->bdat,
					    /* --rate parks sessions between messages:
					     * one in flight keeps the latency honest */
					    .pipeline_next = o->rate == 0 };
	if (o->starttls && blast_tls(b, err, errlen) != 0)
		goto fail;
	for (unsigned i = 0; i < b->nw; i++) {
		struct worker *w = &b->w[i];
		w->b = b;
		w->idx = i;
		w->n = o->connections / b->nw + (i < o->connections % b->nw);
		w->c = calloc(w->n ? w->n : 1, sizeof *w->c);
		if (w->c == NULL)
			goto nomem;
		hist_init(&w->r.latency);
	}
	b->t0_us = now_us();
	b->run_id = ((unsigned long long)t << 20) ^ (unsigned long long)getpid() ^ (unsigned long long)b->t0_us;
	b->end_us = o->duration ? b->t0_us + (int64_t)o->duration * 1000000 : 0;
	for (unsigned i = 0; i < b->nw; i++) {
		if (pthread_create(&b->w[i].thread, NULL, worker_main, &b->w[i]) != 0) {
			snprintf(err, errlen, "cannot start thread %u", i);
			__atomic_store_n(&b->stop, 1, __ATOMIC_RELAXED);
			for (unsigned j = 0; j < i; j++)
				pthread_join(b->w[j].thread, NULL);
			goto fail;
		}
	}
	return b;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	if (b != NULL)
		blast_free(b);
	return NULL;
}

/* blast_stop - ask every session to finish its message and QUIT */
void blast_stop(struct blast *b)
{
	__atomic_store_n(&b->stop, 1, __ATOMIC_RELAXED);
}

/* blast_done - every thread has finished */
bool blast_done(const struct blast *b)
{
	return __atomic_load_n(&b->finished, __ATOMIC_ACQUIRE) == b->nw;
}

/* blast_progress - counters so far */
void blast_progress(const struct blast *b, struct blast_result *r)
{
	memset(r, 0, offsetof(struct blast_result, latency));
	for (unsigned i = 0; i < b->nw; i++) {
		const struct blast_result *x = &b->w[i].r;
		r->sent += __atomic_load_n(&x->sent, __ATOMIC_RELAXED);
		r->accepted += __atomic_load_n(&x->accepted, __ATOMIC_RELAXED);
		r->rejected += __atomic_load_n(&x->rejected, __ATOMIC_RELAXED);
		r->errors += __atomic_load_n(&x->errors, __ATOMIC_RELAXED);
		r->bytes += __atomic_load_n(&x->bytes, __ATOMIC_RELAXED);
	}
	int64_t end = blast_done(b) ? __atomic_load_n(&b->last_us, __ATOMIC_RELAXED) : now_us();
	r->seconds = (double)(end - b->t0_us) / 1e6;
}

/* blast_finish - join the threads, fill r, free b */
void blast_finish(struct blast *b, struct blast_result *r)
{
	for (unsigned i = 0; i < b->nw; i++)
		pthread_join(b->w[i].thread, NULL);
	blast_progress(b, r);
	hist_init(&r->latency);
	for (unsigned i = 0; i < b->nw; i++)
		hist_add(&r->latency, &b->w[i].r.latency);
	blast_free(b);
}
