/* test_sched.c - the delivery scheduler with a fake clock. */
#include "../harness.h"

#include <pthread.h>
#include <string.h>

#include "queue/sched.h"

#define SEC 1000000ull

static const unsigned retry[] = { 1, 5, 10 };

static struct sched_cfg cfg_default(void)
{
	return (struct sched_cfg){ .retry_s = retry, .nretry = 3, .lifetime_us = 60 * SEC, .max_conns = 3,
				   .max_msgs_per_conn = 10, .backoff_us = 30 * SEC };
}

/* A message split over two destinations; every recipient ends once. */
static void test_split_and_exactly_once(void **state)
{
	(void)state;
	struct sched_cfg cfg = cfg_default();
	struct sched_dtab *t = sched_dtab_new(&cfg);
	struct sched *s = sched_new(&cfg, t);
	struct sched_msg m = { .arrival_us = 100 * SEC, .nrcpt = 3, .left = 3 };
	struct sched_ldest *a = sched_ldest(s, slice_cstr("a.test:25"));
	struct sched_ldest *b = sched_ldest(s, slice_cstr("b.test:25"));
	uint32_t ra[] = { 0, 2 }, rb[] = { 1 };

	assert_non_null(a);
	assert_ptr_equal(a, sched_ldest(s, slice_cstr("a.test:25")));
	assert_int_equal(sched_job_add(s, &m, a, ra, 2, 0, 0), RM_OK);
	assert_int_equal(sched_job_add(s, &m, b, rb, 1, 0, 0), RM_OK);
	assert_int_equal(m.jobs, 2);

	/* Both destinations are listed as having work. */
	int seen = 0;
	for (struct sched_ldest *ld = sched_work(s); ld; ld = sched_work_next(s, ld))
		seen++;
	assert_int_equal(seen, 2);

	struct sched_job *ja = sched_take(s, a);
	assert_non_null(ja);
	assert_int_equal(ja->nrcpt, 2);
	assert_null(sched_take(s, a));
	enum sched_rstate st[2] = { SCHED_R_DELIVERED, SCHED_R_DEFERRED };
	uint64_t next;
	assert_false(sched_job_result(s, ja, st, 101 * SEC, &next));
	assert_int_equal(next, 102 * SEC); /* first retry after 1 s */
	assert_int_equal(m.left, 2);
	assert_int_equal(ja->nrcpt, 1);
	assert_int_equal(ja->rcpt[0], 2);

	struct sched_job *jb = sched_take(s, b);
	enum sched_rstate sb[1] = { SCHED_R_BOUNCED };
	assert_true(sched_job_result(s, jb, sb, 101 * SEC, &next));
	assert_int_equal(m.left, 1);
	assert_int_equal(m.jobs, 1);

	/* Not due yet, then due. */
	sched_tick(s, 101 * SEC + 999999);
	assert_null(sched_work(s));
	sched_tick(s, 102 * SEC);
	assert_ptr_equal(sched_work(s), a);
	ja = sched_take(s, a);
	enum sched_rstate s2[1] = { SCHED_R_DELIVERED };
	assert_true(sched_job_result(s, ja, s2, 102 * SEC, &next));
	assert_int_equal(m.left, 0);
	assert_int_equal(m.jobs, 0);
	assert_int_equal(sched_queued(s), 0);
	sched_free(s);
	sched_dtab_free(t);
}

/* The retry schedule's last interval repeats; expiry caps the wait and
 * turns the next deferral into EXPIRED. */
static void test_retry_and_expiry(void **state)
{
	(void)state;
	struct sched_cfg cfg = cfg_default();
	cfg.lifetime_us = 30 * SEC;
	assert_int_equal(sched_retry_delay_us(&cfg, 1), 1 * SEC);
	assert_int_equal(sched_retry_delay_us(&cfg, 2), 5 * SEC);
	assert_int_equal(sched_retry_delay_us(&cfg, 3), 10 * SEC);
	assert_int_equal(sched_retry_delay_us(&cfg, 9), 10 * SEC);

	struct sched_dtab *t = sched_dtab_new(&cfg);
	struct sched *s = sched_new(&cfg, t);
	struct sched_msg m = { .arrival_us = 0, .nrcpt = 1, .left = 1 };
	struct sched_ldest *a = sched_ldest(s, slice_cstr("a:1"));
	uint32_t r = 0;
	assert_int_equal(sched_job_add(s, &m, a, &r, 1, 0, 0), RM_OK);
	uint64_t now = 0, next;
	uint64_t want[] = { 1, 6, 16, 26, 30 };
	for (int i = 0; i < 5; i++) {
		struct sched_job *j = sched_take(s, a);
		assert_non_null(j);
		enum sched_rstate st = SCHED_R_DEFERRED;
		assert_false(sched_job_result(s, j, &st, now, &next));
		assert_int_equal(st, SCHED_R_DEFERRED);
		assert_int_equal(next, want[i] * SEC);
		assert_int_equal(sched_next_due(s), next);
		now = next;
		sched_tick(s, now);
	}
	struct sched_job *j = sched_take(s, a);
	enum sched_rstate st = SCHED_R_DEFERRED;
	assert_true(sched_job_result(s, j, &st, now, &next));
	assert_int_equal(st, SCHED_R_EXPIRED);
	assert_int_equal(m.left, 0);
	assert_int_equal(next, 0);
	sched_free(s);
	sched_dtab_free(t);
}

/* Jobs due at different times come out of the heap in order. */
static void test_heap_order(void **state)
{
	(void)state;
	struct sched_cfg cfg = cfg_default();
	struct sched_dtab *t = sched_dtab_new(&cfg);
	struct sched *s = sched_new(&cfg, t);
	struct sched_msg m[50];
	struct sched_ldest *a = sched_ldest(s, slice_cstr("a:1"));
	uint64_t rng = 7;
	for (uint32_t i = 0; i < 50; i++) {
		m[i] = (struct sched_msg){ .nrcpt = 1, .left = 1 };
		uint32_t r = i;
		assert_int_equal(sched_job_add(s, &m[i], a, &r, 1, 1 + test_rand(&rng) % 1000, 0), RM_OK);
	}
	uint64_t last = 0;
	for (uint64_t now = 0; now <= 1000; now++) {
		sched_tick(s, now);
		struct sched_job *j;
		while ((j = sched_take(s, a)) != NULL) {
			assert_true(j->due_us <= now);
			assert_true(j->due_us >= last);
			last = j->due_us;
			sched_job_drop(s, j);
		}
	}
	assert_int_equal(sched_queued(s), 0);
	sched_free(s);
	sched_dtab_free(t);
}

/* The connection limit is shared by every shard's scheduler. */
static void test_limit_across_shards(void **state)
{
	(void)state;
	struct sched_cfg cfg = cfg_default();
	struct sched_dtab *t = sched_dtab_new(&cfg);
	struct sched *s1 = sched_new(&cfg, t), *s2 = sched_new(&cfg, t);
	struct sched_ldest *a1 = sched_ldest(s1, slice_cstr("hub:25"));
	struct sched_ldest *a2 = sched_ldest(s2, slice_cstr("hub:25"));
	assert_ptr_not_equal(a1, a2);
	assert_ptr_equal(a1->dest, a2->dest);
	assert_true(sched_dest_take(a1->dest, 0));
	assert_true(sched_dest_take(a2->dest, 0));
	assert_true(sched_dest_take(a1->dest, 0));
	assert_false(sched_dest_take(a2->dest, 0));
	assert_false(sched_dest_take(a1->dest, 0));
	sched_dest_put(a2->dest);
	assert_true(sched_dest_take(a2->dest, 0));
	assert_int_equal(sched_dest_conns(a1->dest), 3);
	for (int i = 0; i < 3; i++)
		sched_dest_put(a1->dest);
	sched_free(s1);
	sched_free(s2);
	sched_dtab_free(t);
}

/* Back-off halves the limit for a while, then the full limit is back. */
static void test_backoff(void **state)
{
	(void)state;
	struct sched_cfg cfg = cfg_default();
	cfg.max_conns = 8;
	struct sched_dtab *t = sched_dtab_new(&cfg);
	struct sched_dest *d = sched_dtab_get(t, slice_cstr("x:25"));
	assert_int_equal(sched_dest_limit(d, 0), 8);
	sched_dest_backoff(d, 10 * SEC);
	assert_int_equal(sched_dest_limit(d, 11 * SEC), 4);
	sched_dest_backoff(d, 12 * SEC);
	sched_dest_backoff(d, 12 * SEC);
	sched_dest_backoff(d, 12 * SEC);
	assert_int_equal(sched_dest_limit(d, 13 * SEC), 1);
	assert_true(sched_dest_take(d, 13 * SEC));
	assert_false(sched_dest_take(d, 13 * SEC));
	assert_int_equal(sched_dest_limit(d, 42 * SEC), 8);
	assert_true(sched_dest_take(d, 42 * SEC));
	sched_dest_put(d);
	sched_dest_put(d);
	sched_dtab_free(t);
}

struct race {
	struct sched_dest *d;
	unsigned max_seen;
	unsigned limit;
};

static void *race_thread(void *arg)
{
	struct race *r = arg;
	for (int i = 0; i < 200000; i++) {
		if (sched_dest_take(r->d, 0)) {
			unsigned n = sched_dest_conns(r->d);
			if (n > r->limit)
				__atomic_store_n(&r->max_seen, n, __ATOMIC_RELAXED);
			sched_dest_put(r->d);
		}
	}
	return NULL;
}

/* Threads taking and putting never see more than the limit. */
static void test_limit_race(void **state)
{
	(void)state;
	struct sched_cfg cfg = cfg_default();
	cfg.max_conns = 2;
	struct sched_dtab *t = sched_dtab_new(&cfg);
	struct race r = { .d = sched_dtab_get(t, slice_cstr("r:1")), .limit = 2 };
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, race_thread, &r);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(r.max_seen, 0);
	assert_int_equal(sched_dest_conns(r.d), 0);
	sched_dtab_free(t);
}

/* Keys that cannot be stored are refused. */
static void test_bad_keys(void **state)
{
	(void)state;
	struct sched_cfg cfg = cfg_default();
	struct sched_dtab *t = sched_dtab_new(&cfg);
	char big[SCHED_KEY_MAX + 1];
	memset(big, 'a', sizeof big);
	assert_null(sched_dtab_get(t, slice_make(big, sizeof big)));
	assert_null(sched_dtab_get(t, slice_make(big, 0)));
	struct sched *s = sched_new(&cfg, t);
	struct sched_msg m = { .nrcpt = 1, .left = 1 };
	struct sched_ldest *a = sched_ldest(s, slice_cstr("a:1"));
	assert_int_equal(sched_job_add(s, &m, a, NULL, 0, 0, 0), RM_EINVAL);
	assert_int_equal(m.jobs, 0);
	sched_free(s);
	sched_dtab_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_and_exactly_once),
		cmocka_unit_test(test_retry_and_expiry),
		cmocka_unit_test(test_heap_order),
		cmocka_unit_test(test_limit_across_shards),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_limit_race),
		cmocka_unit_test(test_bad_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
