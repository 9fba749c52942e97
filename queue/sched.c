/* sched.c - the delivery scheduler (queue/sched.h).
 *
 * Invariants:
 *  - a job is in exactly one place: a destination's ready FIFO, the retry
 *    heap (_heap != SIZE_MAX), or the caller's hands (taken);
 *  - m->left counts recipients without a final state, m->jobs the jobs of
 *    m that are alive; a recipient is carried by at most one job;
 *  - a destination is on the work list iff it has ready jobs (it may stay
 *    listed a little longer: sched_work drops empty ones lazily);
 *  - the shared table's entries live until the table is freed, so a
 *    pointer to one stays valid in every shard.
 * Threads: sched_dtab_* and sched_dest_* from any thread; a struct sched
 * only from its shard's thread.
 */
#include "queue/sched.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SCHED_HASH 256u /* buckets of a shard's destination views */
#define SCHED_BACKOFF_US (60ull * 1000000ull)

struct sched_dtab {
	pthread_mutex_t lock;
	struct sched_dest *head;
	struct sched_cfg cfg;
};

struct sched {
	struct sched_cfg cfg;
	struct sched_dtab *tab;
	struct sched_ldest *hash[SCHED_HASH];
	struct sched_ldest *work;       /* destinations with ready jobs */
	struct sched_job **heap;
	size_t nheap, heap_cap;
	size_t queued;
};

/* sched_key_hash - FNV-1a of a key */
static unsigned sched_key_hash(struct slice k)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < k.len; i++)
		h = (h ^ (uint8_t)k.ptr[i]) * 16777619u;
	return h % SCHED_HASH;
}

/* --- the shared table ------------------------------------------------------ */

/* sched_dtab_new - an empty process-wide table */
struct sched_dtab *sched_dtab_new(const struct sched_cfg *cfg)
{
	struct sched_dtab *t = calloc(1, sizeof *t);
	if (t == NULL)
		return NULL;
	pthread_mutex_init(&t->lock, NULL);
	t->cfg = *cfg;
	return t;
}

/* sched_dtab_free - free the table and its entries */
struct sched_dtab *sched_dtab_free(struct sched_dtab *t)
{
	if (t == NULL)
		return NULL;
	for (struct sched_dest *d = t->head, *n; d != NULL; d = n) {
		n = d->_next;
		free(d);
	}
	pthread_mutex_destroy(&t->lock);
	free(t);
	return NULL;
}

/* sched_dtab_get - the entry for key, created when missing */
struct sched_dest *sched_dtab_get(struct sched_dtab *t, struct slice key)
{
	struct sched_dest *d;

	if (key.len == 0 || key.len >= SCHED_KEY_MAX)
		return NULL;
	pthread_mutex_lock(&t->lock);
	for (d = t->head; d != NULL; d = d->_next)
		if (strlen(d->key) == key.len && memcmp(d->key, key.ptr, key.len) == 0)
			break;
	if (d == NULL && (d = calloc(1, sizeof *d)) != NULL) {
		memcpy(d->key, key.ptr, key.len);
		d->_limit = t->cfg.max_conns ? t->cfg.max_conns : 1;
		d->_eff = d->_limit;
		d->_backoff_us = t->cfg.backoff_us ? t->cfg.backoff_us : SCHED_BACKOFF_US;
		/* Published under the lock; readers of other entries never walk
		 * the list without it. */
		d->_next = t->head;
		t->head = d;
	}
	pthread_mutex_unlock(&t->lock);
	return d;
}

/* sched_dest_limit - the limit now: the back-off's, or the full one once
 * the window has passed */
unsigned sched_dest_limit(struct sched_dest *d, uint64_t now_us)
{
	uint64_t until = __atomic_load_n(&d->_backoff_until, __ATOMIC_RELAXED);
	if (until != 0 && now_us >= until) {
		__atomic_store_n(&d->_eff, d->_limit, __ATOMIC_RELAXED);
		__atomic_compare_exchange_n(&d->_backoff_until, &until, 0, false, __ATOMIC_RELAXED,
					    __ATOMIC_RELAXED);
	}
	return __atomic_load_n(&d->_eff, __ATOMIC_RELAXED);
}

/* sched_dest_take - one more connection if the limit allows */
bool sched_dest_take(struct sched_dest *d, uint64_t now_us)
{
	unsigned lim = sched_dest_limit(d, now_us);
	unsigned cur = __atomic_load_n(&d->_conns, __ATOMIC_RELAXED);

	while (cur < lim)
		if (__atomic_compare_exchange_n(&d->_conns, &cur, cur + 1, true, __ATOMIC_ACQ_REL,
						__ATOMIC_RELAXED))
			return true;
	return false;
}

/* sched_dest_put - a connection to d closed */
void sched_dest_put(struct sched_dest *d)
{
	__atomic_fetch_sub(&d->_conns, 1, __ATOMIC_ACQ_REL);
}

/* sched_dest_backoff - halve the limit for a while */
void sched_dest_backoff(struct sched_dest *d, uint64_t now_us)
{
	unsigned eff = __atomic_load_n(&d->_eff, __ATOMIC_RELAXED);
	__atomic_store_n(&d->_eff, eff > 1 ? eff / 2 : 1, __ATOMIC_RELAXED);
	__atomic_store_n(&d->_backoff_until, now_us + d->_backoff_us, __ATOMIC_RELAXED);
}

/* sched_dest_want - mark d as waited for */
bool sched_dest_want(struct sched_dest *d)
{
	if (__atomic_load_n(&d->_want, __ATOMIC_RELAXED))
		return false;
	return __atomic_exchange_n(&d->_want, 1u, __ATOMIC_RELAXED) == 0;
}

/* sched_dest_wanted - take the mark */
bool sched_dest_wanted(struct sched_dest *d)
{
	if (!__atomic_load_n(&d->_want, __ATOMIC_RELAXED))
		return false;
	return __atomic_exchange_n(&d->_want, 0u, __ATOMIC_RELAXED) != 0;
}

/* sched_dest_conns - connections open now */
unsigned sched_dest_conns(const struct sched_dest *d)
{
	return __atomic_load_n(&d->_conns, __ATOMIC_RELAXED);
}

/* --- the retry heap ------------------------------------------------------------ */

/* heap_swap - exchange two heap slots, keeping the back-indexes */
static void heap_swap(struct sched *s, size_t a, size_t b)
{
	struct sched_job *t = s->heap[a];
	s->heap[a] = s->heap[b];
	s->heap[b] = t;
	s->heap[a]->_heap = a;
	s->heap[b]->_heap = b;
}

/* heap_up - restore order from slot i towards the root */
static void heap_up(struct sched *s, size_t i)
{
	while (i > 0 && s->heap[(i - 1) / 2]->due_us > s->heap[i]->due_us) {
		heap_swap(s, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

/* heap_down - restore order from slot i towards the leaves */
static void heap_down(struct sched *s, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < s->nheap && s->heap[l]->due_us < s->heap[m]->due_us)
			m = l;
		if (r < s->nheap && s->heap[r]->due_us < s->heap[m]->due_us)
			m = r;
		if (m == i)
			return;
		heap_swap(s, i, m);
		i = m;
	}
}

/* heap_push - add j; false when out of memory */
static bool heap_push(struct sched *s, struct sched_job *j)
{
	if (s->nheap == s->heap_cap) {
		size_t cap = s->heap_cap ? s->heap_cap * 2 : 64;
		struct sched_job **h = realloc(s->heap, cap * sizeof *h);
		if (h == NULL)
			return false;
		s->heap = h;
		s->heap_cap = cap;
	}
	j->_heap = s->nheap;
	s->heap[s->nheap++] = j;
	heap_up(s, j->_heap);
	return true;
}

/* heap_pop - remove and return the root */
static struct sched_job *heap_pop(struct sched *s)
{
	struct sched_job *j = s->heap[0];
	heap_swap(s, 0, s->nheap - 1);
	s->nheap--;
	if (s->nheap)
		heap_down(s, 0);
	j->_heap = SIZE_MAX;
	return j;
}

/* --- a shard's scheduler ------------------------------------------------------- */

/* sched_new - a shard's scheduler over the shared table */
struct sched *sched_new(const struct sched_cfg *cfg, struct sched_dtab *t)
{
	struct sched *s = calloc(1, sizeof *s);
	if (s == NULL)
		return NULL;
	s->cfg = *cfg;
	s->tab = t;
	return s;
}

/* sched_free - free every job and destination view */
struct sched *sched_free(struct sched *s)
{
	if (s == NULL)
		return NULL;
	for (unsigned i = 0; i < SCHED_HASH; i++) {
		for (struct sched_ldest *ld = s->hash[i], *n; ld != NULL; ld = n) {
			n = ld->_hnext;
			for (struct sched_job *j = ld->_head, *jn; j != NULL; j = jn) {
				jn = j->_next;
				free(j);
			}
			free(ld);
		}
	}
	for (size_t i = 0; i < s->nheap; i++)
		free(s->heap[i]);
	free(s->heap);
	free(s);
	return NULL;
}

/* sched_cfg_of - the configuration */
const struct sched_cfg *sched_cfg_of(const struct sched *s)
{
	return &s->cfg;
}

/* sched_ldest - this shard's view of a destination */
struct sched_ldest *sched_ldest(struct sched *s, struct slice key)
{
	unsigned h = sched_key_hash(key);

	for (struct sched_ldest *ld = s->hash[h]; ld != NULL; ld = ld->_hnext)
		if (strlen(ld->dest->key) == key.len && memcmp(ld->dest->key, key.ptr, key.len) == 0)
			return ld;
	struct sched_dest *d = sched_dtab_get(s->tab, key);
	struct sched_ldest *ld = d ? calloc(1, sizeof *ld) : NULL;
	if (ld == NULL)
		return NULL;
	ld->dest = d;
	ld->_hnext = s->hash[h];
	s->hash[h] = ld;
	return ld;
}

/* ready_push - append j to its destination's FIFO and list the destination */
static void ready_push(struct sched *s, struct sched_job *j)
{
	struct sched_ldest *ld = j->ld;

	j->_next = NULL;
	if (ld->_tail)
		ld->_tail->_next = j;
	else
		ld->_head = j;
	ld->_tail = j;
	ld->ready++;
	if (!ld->_listed) {
		ld->_listed = true;
		ld->_wnext = s->work;
		s->work = ld;
	}
}

/* sched_job_add - a job for rcpt[0..n) of m to ld */
int sched_job_add(struct sched *s, struct sched_msg *m, struct sched_ldest *ld, const uint32_t *rcpt,
		  uint32_t n, uint64_t due_us, uint32_t attempts)
{
	struct sched_job *j = malloc(sizeof *j + sizeof(uint32_t) * (n ? n : 1));

	if (j == NULL || n == 0) {
		free(j);
		return j == NULL ? RM_ENOMEM : RM_EINVAL;
	}
	*j = (struct sched_job){ .msg = m, .ld = ld, .attempts = attempts, .due_us = due_us, .nrcpt = n,
				 ._heap = SIZE_MAX };
	memcpy(j->rcpt, rcpt, sizeof(uint32_t) * n);
	if (due_us != 0) {
		if (!heap_push(s, j)) {
			free(j);
			return RM_ENOMEM;
		}
	} else {
		ready_push(s, j);
	}
	m->jobs++;
	s->queued++;
	return RM_OK;
}

/* sched_tick - due retries become ready */
void sched_tick(struct sched *s, uint64_t now_us)
{
	while (s->nheap && s->heap[0]->due_us <= now_us)
		ready_push(s, heap_pop(s));
}

/* sched_next_due - the earliest due time in the heap */
uint64_t sched_next_due(const struct sched *s)
{
	return s->nheap ? s->heap[0]->due_us : UINT64_MAX;
}

/* sched_work_skip - from ld on, the first listed destination with ready
 * jobs; empty ones are unlisted on the way */
static struct sched_ldest *sched_work_skip(struct sched *s, struct sched_ldest **link)
{
	while (*link != NULL) {
		struct sched_ldest *ld = *link;
		if (ld->ready)
			return ld;
		*link = ld->_wnext;
		ld->_listed = false;
		ld->_wnext = NULL;
	}
	(void)s;
	return NULL;
}

/* sched_work - the first destination with ready jobs */
struct sched_ldest *sched_work(struct sched *s)
{
	return sched_work_skip(s, &s->work);
}

/* sched_work_next - the destination with ready jobs after ld */
struct sched_ldest *sched_work_next(struct sched *s, struct sched_ldest *ld)
{
	return sched_work_skip(s, &ld->_wnext);
}

/* sched_take - the oldest ready job of ld */
struct sched_job *sched_take(struct sched *s, struct sched_ldest *ld)
{
	struct sched_job *j = ld->_head;

	if (j == NULL)
		return NULL;
	ld->_head = j->_next;
	if (ld->_head == NULL)
		ld->_tail = NULL;
	ld->ready--;
	j->_next = NULL;
	(void)s;
	return j;
}

/* sched_retry_delay_us - the wait after the n-th deferral */
uint64_t sched_retry_delay_us(const struct sched_cfg *cfg, uint32_t n)
{
	if (cfg->nretry == 0)
		return 60ull * 1000000ull;
	size_t i = n == 0 ? 0 : n - 1;
	if (i >= cfg->nretry)
		i = cfg->nretry - 1;
	return (uint64_t)cfg->retry_s[i] * 1000000ull;
}

/* job_free - the job is gone */
static void job_free(struct sched *s, struct sched_job *j)
{
	j->msg->jobs--;
	s->queued--;
	free(j);
}

/* sched_job_result - the attempt of j is over */
bool sched_job_result(struct sched *s, struct sched_job *j, enum sched_rstate *st, uint64_t now_us,
		      uint64_t *next_us)
{
	struct sched_msg *m = j->msg;
	uint64_t expiry = m->arrival_us + s->cfg.lifetime_us;
	bool expired = now_us >= expiry;
	uint32_t keep = 0;

	*next_us = 0;
	j->attempts++;
	for (uint32_t i = 0; i < j->nrcpt; i++) {
		if (st[i] == SCHED_R_DEFERRED && expired)
			st[i] = SCHED_R_EXPIRED;
		if (st[i] == SCHED_R_DEFERRED) {
			j->rcpt[keep++] = j->rcpt[i];
		} else if (m->left) {
			m->left--;
		}
	}
	j->nrcpt = keep;
	if (keep == 0) {
		job_free(s, j);
		return true;
	}
	uint64_t due = now_us + sched_retry_delay_us(&s->cfg, j->attempts);
	j->due_us = due < expiry ? due : expiry;
	if (!heap_push(s, j)) {
		/* No memory for the heap: retry from the ready queue instead of
		 * losing the job (it is tried again at once). */
		ready_push(s, j);
		*next_us = now_us;
		return false;
	}
	*next_us = j->due_us;
	return false;
}

/* sched_job_drop - forget a job whose recipients stay unfinished */
void sched_job_drop(struct sched *s, struct sched_job *j)
{
	if (j->_heap != SIZE_MAX) {
		size_t i = j->_heap;
		heap_swap(s, i, s->nheap - 1);
		s->nheap--;
		if (i < s->nheap) {
			heap_down(s, i);
			heap_up(s, i);
		}
	}
	job_free(s, j);
}

/* sched_queued - jobs held */
size_t sched_queued(const struct sched *s)
{
	return s->queued;
}
