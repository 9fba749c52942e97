/* sched.h - the delivery scheduler: destinations, ready queues, retries,
 * expiry and per-destination connection limits.
 *
 * Pure in the sense of DESIGN.md principle 1: the clock is a parameter
 * (µs since the epoch), nothing here does I/O. Two levels:
 *
 *  - struct sched_dtab, one per process: every next hop ever seen (a
 *    route or smarthost "host:port", or "mx:domain"), each with an atomic
 *    count of open connections across all shards and its back-off state.
 *    Creating an entry takes a mutex (rare: once per next hop per process);
 *    taking and releasing a connection is one CAS, no lock, so the limit
 *    --dest-max-connections holds process-wide while any shard may use the
 *    whole of it (one hot smarthost still keeps every shard's connections
 *    busy up to the limit).
 *  - struct sched, one per shard, used only by that shard's thread: its
 *    local view of each destination (a FIFO of ready jobs), a min-heap of
 *    deferred jobs keyed by their next attempt, and the list of destinations
 *    that have ready work.
 *
 * A message (struct sched_msg, embedded by the caller) is split into jobs,
 * one per destination, each naming the recipients it carries. A job's
 * recipients end exactly once: sched_job_result gives every one of them a
 * final state (delivered, bounced, expired) or defers the ones that got a
 * temporary failure; the job then goes to the retry heap with the survivors
 * and the message's count of unfinished recipients drops by the rest. When
 * it reaches zero the message is finished.
 *
 * Retry: the n-th deferral waits retry_s[min(n, nretry) - 1] seconds (the
 * last interval repeats), never past arrival + lifetime; a deferral at or
 * after that moment expires the recipients instead.
 *
 * Back-off: a destination that refuses connections or answers 421 has its
 * connection limit halved (down to 1) for backoff_us; each further failure
 * halves it again and restarts the window; when the window ends the full
 * limit is back.
 */
#ifndef RINGMTA_QUEUE_SCHED_H
#define RINGMTA_QUEUE_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/slice.h"

#define SCHED_KEY_MAX 300

struct sched_cfg {
	const unsigned *retry_s;   /* seconds; at least one entry */
	size_t nretry;
	uint64_t lifetime_us;      /* --max-queue-lifetime */
	unsigned max_conns;        /* --dest-max-connections, process-wide */
	unsigned max_msgs_per_conn;/* --dest-max-messages-per-connection */
	uint64_t backoff_us;       /* how long a back-off lasts; 0: 60 s */
};

/* A next hop, shared by every shard. */
struct sched_dest {
	char key[SCHED_KEY_MAX];
	unsigned _limit;           /* configured limit */
	unsigned _conns;           /* atomic: open connections, all shards */
	unsigned _eff;             /* atomic: the limit now (back-off) */
	uint64_t _backoff_until;   /* atomic: µs */
	unsigned _want;            /* atomic: a shard had jobs and no slot */
	uint64_t _backoff_us;
	struct sched_dest *_next;
};

struct sched_dtab;

/* sched_dtab_new - an empty process-wide table; NULL when out of memory */
struct sched_dtab *sched_dtab_new(const struct sched_cfg *cfg);

/* sched_dtab_free - free the table and its entries; returns NULL */
struct sched_dtab *sched_dtab_free(struct sched_dtab *t);

/* sched_dtab_get - the entry for key, created when missing (takes the
 * table's lock); NULL when out of memory or key is too long */
struct sched_dest *sched_dtab_get(struct sched_dtab *t, struct slice key);

/* sched_dest_take - one more connection if the limit allows (lock-free) */
bool sched_dest_take(struct sched_dest *d, uint64_t now_us);

/* sched_dest_put - a connection to d closed */
void sched_dest_put(struct sched_dest *d);

/* sched_dest_backoff - d refused a connection or said 421: halve its limit */
void sched_dest_backoff(struct sched_dest *d, uint64_t now_us);

/* sched_dest_want - a shard has ready jobs for d and found no slot; true
 * when no shard had said so since the last sched_dest_wanted (lock-free) */
bool sched_dest_want(struct sched_dest *d);

/* sched_dest_wanted - whether a shard waits for a slot of d, clearing the
 * mark: the caller gives one back (lock-free) */
bool sched_dest_wanted(struct sched_dest *d);

/* sched_dest_conns - connections open now; sched_dest_limit - the limit now */
unsigned sched_dest_conns(const struct sched_dest *d);
unsigned sched_dest_limit(struct sched_dest *d, uint64_t now_us);

/* A message as the scheduler sees it; the caller embeds it and owns it. */
struct sched_msg {
	uint64_t arrival_us;
	uint32_t nrcpt;
	uint32_t left;             /* recipients without a final state */
	uint32_t jobs;             /* jobs alive */
};

struct sched_ldest;

/* One destination's share of a message. */
struct sched_job {
	struct sched_msg *msg;
	struct sched_ldest *ld;
	uint32_t attempts;         /* attempts finished */
	uint64_t due_us;           /* next attempt (in the heap) */
	uint32_t nrcpt;            /* recipients still carried */
	struct sched_job *_next;   /* ready FIFO */
	size_t _heap;              /* index in the heap, or SIZE_MAX */
	uint32_t rcpt[];           /* message recipient indexes */
};

/* A shard's view of one destination. */
struct sched_ldest {
	struct sched_dest *dest;   /* the shared entry */
	void *user;                /* the caller's (its hop, idle connections) */
	size_t ready;              /* jobs in the FIFO */
	struct sched_job *_head, *_tail;
	bool _listed;
	struct sched_ldest *_wnext; /* destinations with ready work */
	struct sched_ldest *_hnext; /* hash chain */
};

/* Final states of one recipient after an attempt. */
enum sched_rstate {
	SCHED_R_DELIVERED = 1,
	SCHED_R_BOUNCED,
	SCHED_R_DEFERRED,          /* in: a temporary failure */
	SCHED_R_EXPIRED,           /* out: deferred past the lifetime */
};

struct sched;

/* sched_new - a shard's scheduler over the shared table (cfg is copied;
 * cfg->retry_s must outlive it); NULL when out of memory */
struct sched *sched_new(const struct sched_cfg *cfg, struct sched_dtab *t);

/* sched_free - free every job and destination view; returns NULL */
struct sched *sched_free(struct sched *s);

/* sched_cfg_of - the configuration */
const struct sched_cfg *sched_cfg_of(const struct sched *s);

/* sched_ldest - this shard's view of the destination key (created when
 * missing: a hash lookup, the shared table only on the first use) */
struct sched_ldest *sched_ldest(struct sched *s, struct slice key);

/* sched_job_add - a job carrying rcpt[0..n) of m to ld, ready at due_us
 * (0 or a past time: ready now), after attempts earlier attempts. RM_ENOMEM
 * when out of memory (nothing changed). */
RM_MUST_USE int sched_job_add(struct sched *s, struct sched_msg *m, struct sched_ldest *ld,
			      const uint32_t *rcpt, uint32_t n, uint64_t due_us, uint32_t attempts);

/* sched_tick - move every job due at now_us from the heap to its ready
 * queue */
void sched_tick(struct sched *s, uint64_t now_us);

/* sched_next_due - the earliest due time in the heap, or UINT64_MAX */
uint64_t sched_next_due(const struct sched *s);

/* sched_work - the first destination with ready jobs, or NULL; the
 * caller takes jobs from it (sched_take) or, when it cannot (no connection
 * free), moves on with sched_work_next */
struct sched_ldest *sched_work(struct sched *s);
struct sched_ldest *sched_work_next(struct sched *s, struct sched_ldest *ld);

/* sched_take - the oldest ready job of ld, or NULL; the caller owns it
 * until sched_job_result */
struct sched_job *sched_take(struct sched *s, struct sched_ldest *ld);

/* sched_job_result - the attempt of job j is over; st[i] is the state of
 * j->rcpt[i] (DELIVERED, BOUNCED or DEFERRED). Deferred recipients become
 * EXPIRED (st[] is rewritten) when the message is past its lifetime, else
 * the job is queued again with them; *next_us gets that time (0 if none).
 * Returns true when the job is gone (freed): no recipient left in it. The
 * message is finished when m->left is 0 and m->jobs is 0 afterwards. */
bool sched_job_result(struct sched *s, struct sched_job *j, enum sched_rstate *st, uint64_t now_us,
		      uint64_t *next_us);

/* sched_job_drop - forget a job whose recipients stay unfinished (shutdown,
 * delete): it is freed, the message's counts are left alone but jobs */
void sched_job_drop(struct sched *s, struct sched_job *j);

/* sched_retry_delay_us - the wait after the n-th deferral (n >= 1) */
uint64_t sched_retry_delay_us(const struct sched_cfg *cfg, uint32_t n);

/* sched_queued - jobs held (ready and deferred) */
size_t sched_queued(const struct sched *s);

#endif
