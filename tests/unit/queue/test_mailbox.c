/* test_mailbox.c - the shard inbox: FIFO, full, wake-up signal, the
 * "producer in the middle of a push" state, and a 4-producer stress test
 * that checks every item arrives exactly once and in order per producer,
 * with an eventfd doorbell driven by the wake-up signal (also run under
 * ThreadSanitizer by tools/run-tests).
 */
#include "tests/unit/harness.h"

#include <assert.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "queue/mailbox.h"

static void test_init(void **st)
{
	(void)st;
	struct mbox mb;
	assert_int_equal(mbox_init(&mb, 0), RM_EINVAL);
	assert_int_equal(mbox_init(&mb, MBOX_CAPACITY_MAX + 1), RM_EINVAL);
	assert_int_equal(mbox_init(&mb, 1), RM_OK);
	assert_int_equal(mbox_capacity(&mb), 2); /* 1 would be ambiguous */
	mbox_free(&mb);
	assert_int_equal(mbox_init(&mb, 1000), RM_OK);
	assert_int_equal(mbox_capacity(&mb), 1024);
	mbox_free(&mb);
	assert_int_equal(mbox_init(&mb, 64), RM_OK);
	assert_int_equal(mbox_capacity(&mb), 64);
	mbox_free(&mb);
}

static void test_fifo_full_wrap(void **st)
{
	(void)st;
	struct mbox mb;
	uint64_t v = 12345;
	assert_int_equal(mbox_init(&mb, 8), RM_OK);
	assert_false(mbox_pop(&mb, &v));
	assert_int_equal(v, 12345); /* untouched when empty */

	/* fill, overflow, drain in order */
	for (uint64_t i = 0; i < 8; i++)
		assert_int_equal(mbox_push(&mb, 100 + i), RM_OK);
	assert_int_equal(mbox_push(&mb, 999), RM_AGAIN);
	for (uint64_t i = 0; i < 8; i++) {
		assert_true(mbox_pop(&mb, &v));
		assert_int_equal(v, 100 + i);
	}
	assert_false(mbox_pop(&mb, &v));

	/* many laps at every fill level: positions wrap the slots often */
	uint64_t next_in = 0, next_out = 0, seed = 7;
	for (int round = 0; round < 20000; round++) {
		unsigned n = (unsigned)(test_rand(&seed) % 10);
		for (unsigned i = 0; i < n; i++) {
			int r = mbox_push(&mb, ~next_in);
			if (next_in - next_out == 8) {
				assert_int_equal(r, RM_AGAIN);
				break;
			}
			assert_int_equal(r, RM_OK);
			next_in++;
		}
		unsigned m = (unsigned)(test_rand(&seed) % 10);
		for (unsigned i = 0; i < m; i++) {
			bool got = mbox_pop(&mb, &v);
			assert_int_equal(got, next_out < next_in);
			if (!got)
				break;
			assert_int_equal(v, ~next_out);
			next_out++;
		}
	}
	assert_true(next_out > 50000);
	mbox_free(&mb);
}

static void test_wake_signal(void **st)
{
	(void)st;
	struct mbox mb;
	uint64_t v;
	assert_int_equal(mbox_init(&mb, 4), RM_OK);

	/* an awake consumer needs no doorbell */
	assert_int_equal(mbox_push(&mb, 1), RM_OK);
	assert_true(mbox_pop(&mb, &v));

	/* empty: the consumer may sleep; the first push rings, the next not */
	assert_true(mbox_sleep_begin(&mb));
	assert_int_equal(mbox_push(&mb, 2), MBOX_WAKE);
	assert_int_equal(mbox_push(&mb, 3), RM_OK);
	mbox_sleep_end(&mb);
	assert_int_equal(mbox_push(&mb, 4), RM_OK);

	/* items waiting: do not sleep, and no doorbell is asked for */
	assert_false(mbox_sleep_begin(&mb));
	mbox_sleep_end(&mb);
	assert_int_equal(mbox_push(&mb, 5), RM_OK);
	for (uint64_t i = 2; i <= 5; i++) {
		assert_true(mbox_pop(&mb, &v));
		assert_int_equal(v, i);
	}

	/* woken by other I/O before any push: sleep_end stops the ringing */
	assert_true(mbox_sleep_begin(&mb));
	mbox_sleep_end(&mb);
	assert_int_equal(mbox_push(&mb, 6), RM_OK);
	assert_true(mbox_pop(&mb, &v));

	/* a full inbox queues nothing and rings nothing */
	for (uint64_t i = 0; i < 4; i++)
		assert_int_equal(mbox_push(&mb, i), RM_OK);
	assert_false(mbox_sleep_begin(&mb));
	mbox_sleep_end(&mb);
	assert_int_equal(mbox_push(&mb, 9), RM_AGAIN);
	mbox_free(&mb);
}

/* The transient state, reproduced deterministically: this white-box test
 * plays a producer that has claimed the head position (advanced _tail) but
 * not yet written and published its item. */
static void test_producer_mid_push(void **st)
{
	(void)st;
	struct mbox mb;
	uint64_t v;
	assert_int_equal(mbox_init(&mb, 4), RM_OK);
	uint64_t claimed = atomic_fetch_add(&mb._tail, 1); /* position 0 */
	assert_int_equal(claimed, 0);
	assert_int_equal(mbox_push(&mb, 77), RM_OK); /* position 1, published */

	/* FIFO: position 1 must not overtake position 0 */
	assert_false(mbox_pop(&mb, &v));
	/* the consumer may sleep: the slow producer will ring */
	assert_true(mbox_sleep_begin(&mb));

	/* another producer rings; the consumer wakes, still finds nothing
	 * ready, and goes back to sleep */
	assert_int_equal(mbox_push(&mb, 78), MBOX_WAKE);
	mbox_sleep_end(&mb);
	assert_false(mbox_pop(&mb, &v));
	assert_true(mbox_sleep_begin(&mb));

	/* the slow producer publishes as mbox_push does, then finds the flag */
	mb._slots[0]._ref = 76;
	atomic_store(&mb._slots[0]._seq, 1);
	assert_int_equal(atomic_exchange(&mb._sleeping, 0), 1);
	mbox_sleep_end(&mb);
	for (uint64_t i = 76; i <= 78; i++) {
		assert_true(mbox_pop(&mb, &v));
		assert_int_equal(v, i);
	}
	assert_false(mbox_pop(&mb, &v));
	mbox_free(&mb);
}

/* --- stress: 4 producers, 1 consumer, eventfd doorbell ------------------- */

#define STRESS_PRODUCERS 4
#define STRESS_ITEMS 1000000u  /* per producer, unless the time runs out */
#define STRESS_LOST_MS 2000    /* asleep this long with an item ready: lost */

struct stress {
	struct mbox mb;
	int efd;                       /* the consumer's doorbell */
	double deadline;               /* CLOCK_MONOTONIC seconds: stop pushing */
	_Atomic bool done;             /* every producer has returned */
	_Atomic unsigned long rings;   /* doorbells rung by producers */
	_Atomic unsigned long full;    /* pushes refused as full */
	uint64_t pushed[STRESS_PRODUCERS];
	/* the consumer's findings */
	uint64_t next[STRESS_PRODUCERS]; /* next sequence expected per producer */
	unsigned long bad, lost, sleeps, sleep_begins;
};

struct stress_arg {
	struct stress *s;
	unsigned id;
};

/* stress_now - monotonic seconds */
static double stress_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* stress_ring - the doorbell */
static void stress_ring(struct stress *s)
{
	uint64_t one = 1;
	ssize_t r = write(s->efd, &one, sizeof one);
	assert(r == (ssize_t)sizeof one);
	(void)r;
}

/* stress_producer - push (id << 32 | seq) for seq = 0, 1, ... in order */
static void *stress_producer(void *arg)
{
	struct stress_arg *a = arg;
	struct stress *s = a->s;
	uint64_t seq;
	for (seq = 0; seq < STRESS_ITEMS; seq++) {
		if ((seq & 4095) == 0 && stress_now() > s->deadline)
			break;
		int r;
		while ((r = mbox_push(&s->mb, (uint64_t)a->id << 32 | seq)) == RM_AGAIN) {
			atomic_fetch_add_explicit(&s->full, 1, memory_order_relaxed);
			sched_yield(); /* a shard would retry on its next loop turn */
		}
		if (r == MBOX_WAKE) {
			atomic_fetch_add_explicit(&s->rings, 1, memory_order_relaxed);
			stress_ring(s);
		}
	}
	s->pushed[a->id] = seq;
	return NULL;
}

/* stress_take - check one item against its producer's order */
static void stress_take(struct stress *s, uint64_t v)
{
	uint64_t id = v >> 32, seq = v & 0xffffffffu;
	if (id >= STRESS_PRODUCERS || s->next[id] != seq) {
		if (s->bad++ < 5)
			fprintf(stderr, "out of order: producer %llu seq %llu\n",
				(unsigned long long)id, (unsigned long long)seq);
		if (id < STRESS_PRODUCERS)
			s->next[id] = seq + 1;
		return;
	}
	s->next[id]++;
}

/* stress_consumer - a shard loop: drain, then sleep on the doorbell */
static void *stress_consumer(void *arg)
{
	struct stress *s = arg;
	uint64_t v;
	for (;;) {
		while (mbox_pop(&s->mb, &v))
			stress_take(s, v);
		if (atomic_load_explicit(&s->done, memory_order_acquire)) {
			while (mbox_pop(&s->mb, &v)) /* all pushes are published */
				stress_take(s, v);
			return NULL;
		}
		s->sleep_begins++;
		if (mbox_sleep_begin(&s->mb)) {
			s->sleeps++;
			struct pollfd p = { .fd = s->efd, .events = POLLIN };
			int n = poll(&p, 1, STRESS_LOST_MS);
			if (n == 0 && mbox_pop(&s->mb, &v)) {
				/* an item was ready all along and nobody rang */
				s->lost++;
				stress_take(s, v);
			}
			uint64_t cnt;
			if (n > 0) {
				ssize_t r = read(s->efd, &cnt, sizeof cnt);
				assert(r == (ssize_t)sizeof cnt);
				(void)r;
			}
		}
		mbox_sleep_end(&s->mb);
	}
}

/* stress_run - the producers and the consumer on an inbox of capacity,
 * for STRESS_ITEMS per producer or seconds, whichever ends first */
static void stress_run(uint32_t capacity, double seconds)
{
	static struct stress s; /* large; one run at a time */
	memset(&s, 0, sizeof s);
	assert_int_equal(mbox_init(&s.mb, capacity), RM_OK);
	s.efd = eventfd(0, EFD_CLOEXEC);
	assert_true(s.efd >= 0);
	s.deadline = stress_now() + seconds;
	double t0 = stress_now();

	pthread_t cons, prod[STRESS_PRODUCERS];
	struct stress_arg args[STRESS_PRODUCERS];
	assert_int_equal(pthread_create(&cons, NULL, stress_consumer, &s), 0);
	for (unsigned i = 0; i < STRESS_PRODUCERS; i++) {
		args[i] = (struct stress_arg){ &s, i };
		assert_int_equal(pthread_create(&prod[i], NULL, stress_producer, &args[i]), 0);
	}
	for (unsigned i = 0; i < STRESS_PRODUCERS; i++)
		assert_int_equal(pthread_join(prod[i], NULL), 0);
	atomic_store_explicit(&s.done, true, memory_order_release);
	stress_ring(&s);
	assert_int_equal(pthread_join(cons, NULL), 0);
	double t1 = stress_now();

	uint64_t total = 0;
	for (unsigned i = 0; i < STRESS_PRODUCERS; i++) {
		assert_int_equal(s.next[i], s.pushed[i]); /* exactly once, in order */
		assert_true(s.pushed[i] > 0);
		total += s.pushed[i];
	}
	assert_int_equal(s.bad, 0);
	assert_int_equal(s.lost, 0);
	/* one doorbell per announced sleep at most */
	assert_true(atomic_load(&s.rings) <= s.sleep_begins);
	printf("capacity %u: %llu items in %.2f s, %lu sleeps, %lu rings, %lu full\n",
	       mbox_capacity(&s.mb), (unsigned long long)total, t1 - t0, s.sleeps,
	       atomic_load(&s.rings), atomic_load(&s.full));
	close(s.efd);
	mbox_free(&s.mb);
}

static void test_stress(void **st)
{
	(void)st;
	stress_run(1024, 5.0);
}

/* A tiny inbox: full most of the time, slots reused constantly. */
static void test_stress_tiny(void **st)
{
	(void)st;
	stress_run(2, 1.5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init),
		cmocka_unit_test(test_fifo_full_wrap),
		cmocka_unit_test(test_wake_signal),
		cmocka_unit_test(test_producer_mid_push),
		cmocka_unit_test(test_stress),
		cmocka_unit_test(test_stress_tiny),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
