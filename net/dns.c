/* dns.c - MX/A/AAAA lookups with c-ares, driven by a shard's io_uring ring.
 *
 * Sockets: c-ares announces each socket it opens, and whether it wants to
 * read or write, through the socket-state callback. Each socket gets a watch
 * slot and one one-shot IORING_OP_POLL_ADD with the events wanted, tagged
 * (slot << 16 | generation). One-shot, level-triggered polls rather than
 * multishot ones: c-ares 1.18 reads a TCP answer one read per
 * ares_process_fd, and a multishot poll only fires on new wake-ups, so data
 * left in the socket would wait for the timeout. The poll is re-armed after
 * ares_process_fd has run. When the wanted events change or the socket goes
 * away the poll is removed and the generation bumped, so the old poll's
 * completion is recognised as stale.
 *
 * Lookups: a slot table maps ids (generation << 32 | slot) to jobs; a job
 * holds the result and one query record per c-ares query it may issue (one
 * MX, then an A and an AAAA per host). c-ares keeps pointers to those
 * records, so a job is freed only when none of its queries is outstanding
 * (job->pending == 0), even when it was cancelled long before. A finished
 * job goes to the done list; dns_tick makes the callbacks, outside c-ares,
 * so c-ares is never re-entered from a user callback and dns_lookup_mx never
 * calls back.
 *
 * Thread: the shard's only. Panics on nothing; running out of slots or
 * memory is RM_ELIMIT / RM_ENOMEM for the caller, a full watch table makes
 * the affected queries time out (temporary failures).
 */
#define _GNU_SOURCE
#include "net/dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/slice.h"
#include "net/ring.h"

#define DNS_WATCH_MAX 256
_Static_assert(DNS_WATCH_MAX <= 256, "a watch index takes 8 of the 24 tag bits");
#define DNS_TAG_IGNORE DNS_TAG_MASK /* poll removals: their completion is dropped */
#define DNS_NO_IDX UINT32_MAX
#define DNS_QUERIES (1 + 2 * DNS_HOSTS_MAX)

enum dns_qkind { Q_MX = 0, Q_A, Q_AAAA };
enum dns_jstate { J_FREE = 0, J_WAIT, J_RUN, J_DONE, J_DEAD };

struct dns_job;

/* What c-ares' callback argument points at. */
struct dns_query {
	struct dns *r;
	struct dns_job *job;
	uint8_t kind;
	uint8_t host;
};

struct dns_job {
	uint8_t state;
	uint16_t pending;       /* c-ares queries outstanding */
	uint32_t slot;
	uint64_t id;
	dns_cb cb;
	void *arg;
	struct dns_job *next_done;  /* the done list, or the wait queue */
	char name[DNS_NAME_MAX + 1];
	struct dns_query q[DNS_QUERIES];
	struct dns_result res;
};

struct dns_slot {
	uint32_t gen;
	uint32_t next_free;
	struct dns_job *job;    /* NULL: free */
};

struct dns_watch {
	int fd;                 /* -1: free */
	uint16_t gen;
	bool armed;
	uint32_t events;        /* wanted: POLLIN / POLLOUT */
	uint32_t armed_events;
};

struct dns {
	struct io_uring *ring;
	ares_channel ch;
	bool channel_up;
	bool closing;
	struct dns_slot *slots;
	uint32_t nslots;
	uint32_t free_head;
	unsigned running;       /* jobs not yet called back nor cancelled */
	unsigned jobs;          /* jobs allocated */
	unsigned active;        /* jobs with queries outstanding */
	unsigned max_active;
	struct dns_job *done_head, *done_tail;
	struct dns_job *wait_head, *wait_tail; /* not started yet */
	struct dns_watch watch[DNS_WATCH_MAX];
	uint64_t rng;
	uint64_t ud_base;       /* user_data = ud_base | tag */
	unsigned watch_full;    /* sockets that found the watch table full */
};

/* --- pure parts -------------------------------------------------------------- */

/* dns_rand - xorshift64* step */
static uint64_t dns_rand(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* dns_mx_order - sort m[0..n) by preference, shuffling equal ones */
void dns_mx_order(struct dns_mx *m, size_t n, uint64_t *rng)
{
	struct dns_mx tmp;

	/* Insertion sort: n is at most DNS_MX_SCAN_MAX. */
	for (size_t i = 1; i < n; i++) {
		size_t j = i;
		tmp = m[i];
		while (j > 0 && m[j - 1].pref > tmp.pref) {
			m[j] = m[j - 1];
			j--;
		}
		m[j] = tmp;
	}
	/* Fisher-Yates within each run of equal preference (RFC 5321 §5.1). */
	for (size_t a = 0; a < n;) {
		size_t b = a + 1;
		while (b < n && m[b].pref == m[a].pref)
			b++;
		for (size_t i = b - 1; i > a; i--) {
			size_t k = a + (size_t)(dns_rand(rng) % (i - a + 1));
			tmp = m[i];
			m[i] = m[k];
			m[k] = tmp;
		}
		a = b;
	}
}

/* dns_result_fail - set r to a failure */
void dns_result_fail(struct dns_result *r, enum dns_status st, unsigned code, const char *enh,
		     const char *text)
{
	r->status = st;
	if (st == DNS_TEMP) {
		r->code = 451;
		r->enh = "4.4.3";
		r->text = text ? text : "Directory server failure";
	} else {
		r->code = code;
		r->enh = enh;
		r->text = text;
	}
	r->nhost = 0;
}

/* dns_name_copy - copy a name, without a trailing dot; false if too long */
static bool dns_name_copy(char dst[DNS_NAME_MAX + 1], const char *src)
{
	size_t n = strlen(src);

	if (n > 0 && src[n - 1] == '.')
		n--;
	if (n == 0 || n > DNS_NAME_MAX)
		return false;
	memcpy(dst, src, n);
	dst[n] = '\0';
	return true;
}

/* dns_mx_build - fill r's hosts from an MX answer */
void dns_mx_build(struct dns_result *r, const struct ares_mx_reply *mx, uint64_t *rng)
{
	struct dns_mx scan[DNS_MX_SCAN_MAX];
	size_t n = 0;

	memset(r, 0, sizeof *r);
	r->ttl_s = UINT32_MAX; /* no answer's TTL seen yet */
	for (const struct ares_mx_reply *m = mx; m != NULL; m = m->next) {
		/* RFC 7505 §3: the target "." says the domain takes no mail;
		 * a domain with one MUST NOT publish others, so one is enough.
		 * §4.1 names the status: 556 5.1.10 (RFC 7504 for 556). */
		if (m->host == NULL || m->host[0] == '\0' || strcmp(m->host, ".") == 0) {
			dns_result_fail(r, DNS_PERM, 556, "5.1.10",
					"Recipient address has null MX");
			return;
		}
		if (n < DNS_MX_SCAN_MAX)
			scan[n++] = (struct dns_mx){ m->host, m->priority };
	}
	dns_mx_order(scan, n, rng);
	for (size_t i = 0; i < n && r->nhost < DNS_HOSTS_MAX; i++) {
		struct dns_host *h = &r->host[r->nhost];
		if (!dns_name_copy(h->name, scan[i].name))
			continue;
		bool dup = false;
		for (unsigned j = 0; j < r->nhost && !dup; j++)
			dup = slice_eq_nocase(slice_cstr(r->host[j].name), slice_cstr(h->name));
		if (dup)
			continue;
		h->pref = scan[i].pref;
		r->nhost++;
	}
	r->status = DNS_OK;
}

/* dns_host_add - add one address to h unless a duplicate or over the share */
int dns_host_add(struct dns_host *h, int family, const void *bytes)
{
	size_t len = family == AF_INET ? 4 : 16;
	unsigned *count = family == AF_INET ? &h->nv4 : &h->nv6;

	if (family != AF_INET && family != AF_INET6)
		return RM_EINVAL;
	for (unsigned i = 0; i < h->naddr; i++)
		if (h->addr[i].family == family && memcmp(h->addr[i].bytes, bytes, len) == 0)
			return RM_OK;
	if (*count >= DNS_FAMILY_ADDRS_MAX || h->naddr >= DNS_HOST_ADDRS_MAX)
		return RM_ELIMIT;
	struct dns_addr *a = &h->addr[h->naddr++];
	memset(a, 0, sizeof *a);
	a->family = family;
	memcpy(a->bytes, bytes, len);
	(*count)++;
	return RM_OK;
}

/* dns_result_finish - order addresses, drop empty hosts, decide */
void dns_result_finish(struct dns_result *r)
{
	bool temp = false;
	unsigned kept = 0;

	if (r->status != DNS_OK)
		return;
	for (unsigned i = 0; i < r->nhost; i++) {
		struct dns_host *h = &r->host[i];
		struct dns_addr sorted[DNS_HOST_ADDRS_MAX];
		unsigned k = 0;
		for (unsigned j = 0; j < h->naddr; j++)
			if (h->addr[j].family == AF_INET)
				sorted[k++] = h->addr[j];
		for (unsigned j = 0; j < h->naddr; j++)
			if (h->addr[j].family != AF_INET)
				sorted[k++] = h->addr[j];
		memcpy(h->addr, sorted, k * sizeof sorted[0]);
		temp |= h->temp;
		if (h->naddr == 0)
			continue;
		if (kept != i)
			r->host[kept] = *h;
		kept++;
	}
	r->nhost = kept;
	if (kept > 0)
		return;
	if (temp)
		dns_result_fail(r, DNS_TEMP, 0, NULL, "Directory server failure for the mail exchanger's address");
	else
		dns_result_fail(r, DNS_PERM, 550, "5.4.4", "No address found for the domain's mail exchangers");
}

/* dns_status_text - "ok", "temp", "perm" */
const char *dns_status_text(enum dns_status st)
{
	switch (st) {
	case DNS_OK:
		return "ok";
	case DNS_TEMP:
		return "temp";
	case DNS_PERM:
		return "perm";
	}
	return "?";
}

/* --- sockets on the ring ------------------------------------------------------ */

/* watch_tag - the tag of watch i's current poll (i < 256: 24 bits) */
static uint32_t watch_tag(const struct dns *r, unsigned i)
{
	return ((uint32_t)i << 16) | r->watch[i].gen;
}

/* dns_ud - the user_data of an operation with tag */
static uint64_t dns_ud(const struct dns *r, uint32_t tag)
{
	return r->ud_base | tag;
}

/* watch_disarm - remove watch i's poll; its completion becomes stale */
static void watch_disarm(struct dns *r, unsigned i)
{
	struct dns_watch *w = &r->watch[i];

	if (w->armed) {
		struct io_uring_sqe *sqe = ring_sqe(r->ring);
		io_uring_prep_poll_remove(sqe, dns_ud(r, watch_tag(r, i)));
		io_uring_sqe_set_data64(sqe, dns_ud(r, DNS_TAG_IGNORE));
		w->armed = false;
	}
	w->gen++;
}

/* watch_arm - poll watch i for the events c-ares wants, unless armed */
static void watch_arm(struct dns *r, unsigned i)
{
	struct dns_watch *w = &r->watch[i];

	if (w->fd < 0 || w->events == 0 || r->closing)
		return;
	if (w->armed && w->armed_events == w->events)
		return;
	if (w->armed)
		watch_disarm(r, i);
	struct io_uring_sqe *sqe = ring_sqe(r->ring);
	io_uring_prep_poll_add(sqe, w->fd, w->events);
	io_uring_sqe_set_data64(sqe, dns_ud(r, watch_tag(r, i)));
	w->armed = true;
	w->armed_events = w->events;
}

/* watch_find - the watch of fd, or DNS_NO_IDX */
static unsigned watch_find(const struct dns *r, int fd)
{
	for (unsigned i = 0; i < DNS_WATCH_MAX; i++)
		if (r->watch[i].fd == fd)
			return i;
	return DNS_NO_IDX;
}

/* dns_sock_state - c-ares opened, changed or is closing a socket */
static void dns_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *r = data;
	unsigned i = watch_find(r, fd);
	uint32_t ev = (readable ? POLLIN : 0) | (writable ? POLLOUT : 0);

	if (ev == 0) {
		/* Closing (or idle): the fd number may be reused at once. */
		if (i != DNS_NO_IDX) {
			watch_disarm(r, i);
			r->watch[i].fd = -1;
			r->watch[i].events = 0;
		}
		return;
	}
	if (i == DNS_NO_IDX) {
		i = watch_find(r, -1);
		if (i == DNS_NO_IDX) {
			r->watch_full++;
			return;
		}
		r->watch[i].fd = fd;
		r->watch[i].armed = false;
	}
	r->watch[i].events = ev;
	watch_arm(r, i);
}

/* dns_complete - a poll fired (or was removed) */
void dns_complete(struct dns *r, uint32_t tag, int res)
{
	unsigned i;

	tag &= DNS_TAG_MASK;
	i = tag >> 16;
	if (r == NULL || tag == DNS_TAG_IGNORE || i >= DNS_WATCH_MAX)
		return;
	struct dns_watch *w = &r->watch[i];
	if (w->fd < 0 || !w->armed || w->gen != (uint16_t)tag)
		return; /* stale: the socket closed or the poll was replaced */
	w->armed = false;
	w->gen++;
	int fd = w->fd;
	/* An error on the poll itself: let c-ares try both ways and find it. */
	uint32_t got = res < 0 ? (POLLIN | POLLOUT) : (uint32_t)res;
	ares_socket_t rfd = (got & (POLLIN | POLLERR | POLLHUP)) && (w->events & POLLIN) ? fd : ARES_SOCKET_BAD;
	ares_socket_t wfd = (got & (POLLOUT | POLLERR | POLLHUP)) && (w->events & POLLOUT) ? fd : ARES_SOCKET_BAD;
	ares_process_fd(r->ch, rfd, wfd);
	if (w->fd == fd)
		watch_arm(r, i);
	dns_tick(r);
}

/* --- lookups ----------------------------------------------------------------- */

/* job_release - free a job whose queries are all answered and that was
 * called back or cancelled; its slot becomes free */
static void job_release(struct dns *r, struct dns_job *job)
{
	struct dns_slot *s = &r->slots[job->slot];

	s->job = NULL;
	s->gen++;
	s->next_free = r->free_head;
	r->free_head = job->slot;
	r->jobs--;
	free(job);
}

/* job_push - append job to the list head/tail (linked by next_done) */
static void job_push(struct dns_job **head, struct dns_job **tail, struct dns_job *job)
{
	job->next_done = NULL;
	if (*tail)
		(*tail)->next_done = job;
	else
		*head = job;
	*tail = job;
}

/* job_pop - the first job of the list head/tail, or NULL */
static struct dns_job *job_pop(struct dns_job **head, struct dns_job **tail)
{
	struct dns_job *job = *head;

	if (job != NULL) {
		*head = job->next_done;
		if (*head == NULL)
			*tail = NULL;
	}
	return job;
}

/* job_done - the job has its answer: queue the callback */
static void job_done(struct dns *r, struct dns_job *job)
{
	dns_result_finish(&job->res);
	job->state = J_DONE;
	job_push(&r->done_head, &r->done_tail, job);
}

static void dns_on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen);

/* job_query - issue one c-ares query for job */
static void job_query(struct dns *r, struct dns_job *job, unsigned qi, enum dns_qkind kind,
		      unsigned host, const char *name)
{
	struct dns_query *q = &job->q[qi];
	int type = kind == Q_MX ? ns_t_mx : kind == Q_A ? ns_t_a : ns_t_aaaa;

	*q = (struct dns_query){ .r = r, .job = job, .kind = (uint8_t)kind, .host = (uint8_t)host };
	job->pending++;
	ares_query(r->ch, name, ns_c_in, type, dns_on_answer, q);
}

/* job_resolve_hosts - ask A and AAAA for every host found */
static void job_resolve_hosts(struct dns *r, struct dns_job *job)
{
	/* pending covers the loop: a query answered at once (from inside
	 * ares_query) cannot finish the job before the last one is issued. */
	job->pending++;
	for (unsigned h = 0; h < job->res.nhost; h++) {
		job_query(r, job, 1 + 2 * h, Q_A, h, job->res.host[h].name);
		job_query(r, job, 2 + 2 * h, Q_AAAA, h, job->res.host[h].name);
	}
	job->pending--;
}

/* dns_answer_ttl - the smallest answer TTL of a DNS message */
bool dns_answer_ttl(const unsigned char *m, int len, uint32_t *ttl)
{
	ns_msg msg;
	ns_rr rr;
	uint32_t min = UINT32_MAX;
	int n;

	if (m == NULL || len <= 0 || ns_initparse(m, len, &msg) < 0)
		return false;
	n = ns_msg_count(msg, ns_s_an);
	for (int i = 0; i < n; i++) {
		if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
			return false;
		uint32_t t = ns_rr_ttl(rr);
		if (t > INT32_MAX)
			t = 0;
		if (t < min)
			min = t;
	}
	if (n <= 0)
		return false;
	*ttl = min;
	return true;
}

/* job_ttl - an answer the result is built from: its TTL bounds the result's */
static void job_ttl(struct dns_job *job, const unsigned char *abuf, int alen)
{
	uint32_t t;
	if (dns_answer_ttl(abuf, alen, &t) && t < job->res.ttl_s)
		job->res.ttl_s = t;
}

/* on_mx - the MX answer */
static void on_mx(struct dns *r, struct dns_job *job, int status, const unsigned char *abuf, int alen)
{
	struct ares_mx_reply *mx = NULL;

	if (status == ARES_SUCCESS) {
		status = ares_parse_mx_reply(abuf, alen, &mx);
		if (status == ARES_SUCCESS) {
			dns_mx_build(&job->res, mx, &r->rng);
			job_ttl(job, abuf, alen);
			ares_free_data(mx);
			if (job->res.status == DNS_OK)
				job_resolve_hosts(r, job);
			return;
		}
	}
	switch (status) {
	case ARES_ENODATA:
		/* RFC 5321 §5.1: no MX, the domain is its own implicit MX. */
		job->res.status = DNS_OK;
		job->res.implicit_mx = true;
		job->res.nhost = 1;
		job->res.host[0].pref = 0;
		job_resolve_hosts(r, job);
		break;
	case ARES_ENOTFOUND:
		dns_result_fail(&job->res, DNS_PERM, 550, "5.1.2", "Recipient domain does not exist");
		break;
	default:
		dns_result_fail(&job->res, DNS_TEMP, 0, NULL, NULL);
		break;
	}
}

/* on_addr - an A or AAAA answer for host h */
static void on_addr(struct dns_job *job, unsigned h, bool v6, int status, const unsigned char *abuf,
		    int alen)
{
	struct dns_host *host = &job->res.host[h];
	struct ares_addrttl a4[DNS_FAMILY_ADDRS_MAX * 4];
	struct ares_addr6ttl a6[DNS_FAMILY_ADDRS_MAX * 4];
	int n = DNS_FAMILY_ADDRS_MAX * 4;

	if (status == ARES_SUCCESS)
		status = v6 ? ares_parse_aaaa_reply(abuf, alen, NULL, a6, &n)
			    : ares_parse_a_reply(abuf, alen, NULL, a4, &n);
	if (status == ARES_ENODATA || status == ARES_ENOTFOUND)
		return;
	if (status != ARES_SUCCESS) {
		host->temp = true;
		return;
	}
	if (n > 0)
		job_ttl(job, abuf, alen);
	for (int i = 0; i < n; i++) {
		const void *b = v6 ? (const void *)&a6[i].ip6addr : (const void *)&a4[i].ipaddr;
		if (dns_host_add(host, v6 ? AF_INET6 : AF_INET, b) == RM_ELIMIT)
			break;
	}
}

/* dns_on_answer - c-ares finished one query */
static void dns_on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_query *q = arg;
	struct dns *r = q->r;
	struct dns_job *job = q->job;

	(void)timeouts;
	job->pending--;
	if (job->state == J_RUN && status != ARES_EDESTRUCTION && status != ARES_ECANCELLED) {
		if (q->kind == Q_MX)
			on_mx(r, job, status, abuf, alen);
		else
			on_addr(job, q->host, q->kind == Q_AAAA, status, abuf, alen);
	}
	if (job->pending > 0)
		return;
	r->active--;
	if (job->state == J_RUN)
		job_done(r, job);
	else if (job->state == J_DEAD)
		job_release(r, job);
}

/* dns_lookup_mx - start resolving domain's next hops */
int dns_lookup_mx(struct dns *r, const char *domain, dns_cb cb, void *arg, uint64_t *id)
{
	char name[DNS_NAME_MAX + 1];

	if (r->closing || domain == NULL || !dns_name_copy(name, domain) || cb == NULL)
		return RM_EINVAL;
	if (r->free_head == DNS_NO_IDX)
		return RM_ELIMIT;
	struct dns_job *job = malloc(sizeof *job);
	if (job == NULL)
		return RM_ENOMEM;
	memset(job, 0, offsetof(struct dns_job, q));
	memset(&job->res, 0, sizeof job->res);
	job->res.ttl_s = UINT32_MAX;
	uint32_t slot = r->free_head;
	struct dns_slot *s = &r->slots[slot];
	r->free_head = s->next_free;
	s->job = job;
	job->slot = slot;
	job->id = ((uint64_t)s->gen << 32) | slot;
	job->cb = cb;
	job->arg = arg;
	job->state = J_WAIT;
	memcpy(job->name, name, sizeof name);
	memcpy(job->res.host[0].name, name, sizeof name);
	r->jobs++;
	r->running++;
	*id = job->id;
	/* Started by dns_tick, at most max_active at a time: a burst of
	 * thousands of queries overflows a resolver's socket buffer (answers
	 * lost, then a retry after the timeout). The wait is FIFO. */
	job_push(&r->wait_head, &r->wait_tail, job);
	return RM_OK;
}

/* dns_cancel - forget lookup id's callback */
bool dns_cancel(struct dns *r, uint64_t id)
{
	uint32_t slot = (uint32_t)id;

	if (slot >= r->nslots)
		return false;
	struct dns_slot *s = &r->slots[slot];
	struct dns_job *job = s->job;
	if (job == NULL || job->id != id || job->state == J_DEAD)
		return false;
	r->running--;
	/* A job on the done list or the wait queue is released when it is
	 * taken off; a running one when its last query answers. */
	job->state = J_DEAD;
	return true;
}

/* dns_start - start waiting lookups while fewer than max_active run */
static void dns_start(struct dns *r)
{
	while (r->active < r->max_active && r->wait_head != NULL) {
		struct dns_job *job = job_pop(&r->wait_head, &r->wait_tail);
		if (job->state == J_DEAD) {
			job_release(r, job);
			continue;
		}
		job->state = J_RUN;
		r->active++;
		job_query(r, job, 0, Q_MX, 0, job->name);
	}
}

/* dns_drain - make the callbacks of finished lookups */
static void dns_drain(struct dns *r)
{
	struct dns_job *job;

	while ((job = job_pop(&r->done_head, &r->done_tail)) != NULL) {
		if (job->state == J_DONE) {
			r->running--;
			job->state = J_DEAD;
			job->cb(job->arg, job->id, &job->res);
		}
		job_release(r, job);
	}
}

/* dns_tick - expire c-ares timeouts, make callbacks */
void dns_tick(struct dns *r)
{
	if (r == NULL)
		return;
	if (r->jobs > 0) {
		/* Cancelled jobs count too: their queries still time out. */
		struct timeval tv, *t = ares_timeout(r->ch, NULL, &tv);
		if (t != NULL && t->tv_sec == 0 && t->tv_usec == 0)
			ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	}
	/* Callbacks first: they may cancel waiting lookups. Lookups answered
	 * at once (inside dns_start) are called back at the next tick. */
	dns_drain(r);
	dns_start(r);
}

/* dns_wait_ms - how long the loop may sleep, at most max_ms */
int64_t dns_wait_ms(struct dns *r, int64_t max_ms)
{
	if (r == NULL)
		return max_ms;
	if (r->done_head != NULL || (r->wait_head != NULL && r->active < r->max_active))
		return 0;
	if (r->jobs == 0)
		return max_ms;
	struct timeval tv, *t = ares_timeout(r->ch, NULL, &tv);
	if (t == NULL)
		return max_ms;
	/* Round up: waking a little early only costs an idle turn. */
	int64_t ms = (int64_t)t->tv_sec * 1000 + (t->tv_usec + 999) / 1000;
	return ms < max_ms ? ms : max_ms;
}

/* dns_pending - lookups in flight */
unsigned dns_pending(const struct dns *r)
{
	return r ? r->running : 0;
}

/* --- set-up ------------------------------------------------------------------ */

static pthread_once_t dns_once = PTHREAD_ONCE_INIT;
static int dns_lib_status;

/* dns_lib_init - c-ares' process-wide initialisation, once */
static void dns_lib_init(void)
{
	dns_lib_status = ares_library_init(ARES_LIB_INIT_ALL);
}

/* dns_new - a resolver on ring */
int dns_new(struct io_uring *ring, const struct dns_cfg *cfg, struct dns **out, char *err,
	    size_t errlen)
{
	struct ares_options o;
	int rc;

	*out = NULL;
	pthread_once(&dns_once, dns_lib_init);
	if (dns_lib_status != ARES_SUCCESS) {
		snprintf(err, errlen, "dns: %s", ares_strerror(dns_lib_status));
		return RM_EIO;
	}
	struct dns *r = calloc(1, sizeof *r);
	if (r == NULL) {
		snprintf(err, errlen, "dns: out of memory");
		return RM_ENOMEM;
	}
	r->ring = ring;
	r->nslots = cfg->max_lookups ? cfg->max_lookups : DNS_LOOKUPS_DEFAULT;
	r->max_active = cfg->max_active ? cfg->max_active : DNS_ACTIVE_DEFAULT;
	r->slots = calloc(r->nslots, sizeof *r->slots);
	if (r->slots == NULL) {
		snprintf(err, errlen, "dns: out of memory");
		free(r);
		return RM_ENOMEM;
	}
	for (uint32_t i = 0; i < r->nslots; i++) {
		r->slots[i].next_free = i + 1 < r->nslots ? i + 1 : DNS_NO_IDX;
		r->slots[i].gen = 1; /* ids are never 0 */
	}
	for (unsigned i = 0; i < DNS_WATCH_MAX; i++)
		r->watch[i].fd = -1;
	r->rng = cfg->seed;
	r->ud_base = cfg->ud_base ? cfg->ud_base & ~(uint64_t)DNS_TAG_MASK : dns_user_data(0);
	if (r->rng == 0 && getrandom(&r->rng, sizeof r->rng, GRND_NONBLOCK) != (ssize_t)sizeof r->rng)
		r->rng = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)r;

	memset(&o, 0, sizeof o);
	o.sock_state_cb = dns_sock_state;
	o.sock_state_cb_data = r;
	o.timeout = (int)(cfg->timeout_ms ? cfg->timeout_ms : DNS_TIMEOUT_MS_DEFAULT);
	o.tries = (int)(cfg->tries ? cfg->tries : DNS_TRIES_DEFAULT);
	/* EDNS0 for MX answers with many records; a truncated one is retried
	 * over TCP by c-ares. Recipient domains are absolute: no search list. */
	o.flags = ARES_FLAG_EDNS | ARES_FLAG_NOSEARCH;
	o.ndomains = 0;
	o.domains = NULL;
	rc = ares_init_options(&r->ch, &o,
			       ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS |
				       ARES_OPT_DOMAINS);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "dns: %s", ares_strerror(rc));
		free(r->slots);
		free(r);
		return rc == ARES_ENOMEM ? RM_ENOMEM : RM_EIO;
	}
	r->channel_up = true;
	if (cfg->servers != NULL) {
		rc = ares_set_servers_ports_csv(r->ch, cfg->servers);
		if (rc != ARES_SUCCESS) {
			snprintf(err, errlen, "dns: bad server list '%s': %s", cfg->servers, ares_strerror(rc));
			(void)dns_free(r);
			return RM_EINVAL;
		}
	}
	*out = r;
	return RM_OK;
}

/* dns_free - drop every lookup, close the sockets, remove the polls */
struct dns *dns_free(struct dns *r)
{
	if (r == NULL)
		return NULL;
	for (uint32_t i = 0; i < r->nslots; i++)
		if (r->slots[i].job != NULL && r->slots[i].job->state != J_FREE)
			r->slots[i].job->state = J_DEAD;
	r->running = 0;
	if (r->channel_up)
		ares_destroy(r->ch); /* answers every query with ARES_EDESTRUCTION
				      * and reports each socket closed */
	r->closing = true;
	struct dns_job *job;
	while ((job = job_pop(&r->done_head, &r->done_tail)) != NULL)
		job_release(r, job);
	while ((job = job_pop(&r->wait_head, &r->wait_tail)) != NULL)
		job_release(r, job);
	for (unsigned i = 0; i < DNS_WATCH_MAX; i++)
		if (r->watch[i].fd >= 0)
			watch_disarm(r, i);
	free(r->slots);
	free(r);
	return NULL;
}
