/* test_hist.c - the log-linear latency histogram. */
#include "tests/unit/harness.h"

#include "core/hist.h"

/* every bucket's values map back to it, and buckets tile the range */
static void test_index_upper(void **st)
{
	(void)st;
	for (unsigned i = 0; i + 1 < HIST_BUCKETS; i++) {
		uint64_t up = hist_upper(i);
		assert_int_equal(hist_index(up), i);
		assert_int_equal(hist_index(up + 1), i + 1);
	}
	assert_int_equal(hist_index(0), 0);
	assert_int_equal(hist_index(127), 127);
	assert_int_equal(hist_index(128), 128);
	assert_int_equal(hist_index(UINT64_MAX), HIST_BUCKETS - 1);
	assert_true(hist_upper(HIST_BUCKETS - 1) == UINT64_MAX);
}

/* relative precision: a bucket is at most 1/64 of its values wide */
static void test_precision(void **st)
{
	(void)st;
	uint64_t seed = 42;
	for (int k = 0; k < 100000; k++) {
		uint64_t v = test_rand(&seed) >> (test_rand(&seed) % 64);
		uint64_t up = hist_upper(hist_index(v));
		assert_true(up >= v);
		assert_true(up - v <= v / 64);
	}
}

/* percentiles of a known distribution: 1..1000 once each */
static void test_percentiles(void **st)
{
	(void)st;
	static struct hist h, a, b;
	hist_init(&h);
	assert_true(hist_percentile(&h, 50) == 0);
	for (uint64_t v = 1; v <= 1000; v++)
		hist_record(&h, v);
	assert_true(h.count == 1000);
	assert_true(h.max == 1000);
	uint64_t p50 = hist_percentile(&h, 50), p99 = hist_percentile(&h, 99);
	assert_true(p50 >= 500 && p50 <= 500 + 500 / 64);
	assert_true(p99 >= 990 && p99 <= 990 + 990 / 64);
	assert_true(hist_percentile(&h, 100) == 1000);
	assert_true(hist_percentile(&h, 0) == 1);
	/* a single outlier is the max and the p100, not an average */
	hist_init(&a);
	hist_init(&b);
	for (int i = 0; i < 99; i++)
		hist_record(&a, 10);
	hist_record(&b, 5000000);
	hist_add(&a, &b);
	assert_true(a.count == 100);
	assert_true(hist_percentile(&a, 90) == 10);
	assert_true(hist_percentile(&a, 99) == 10);
	assert_true(hist_percentile(&a, 100) == 5000000);
	assert_true(a.max == 5000000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_index_upper),
		cmocka_unit_test(test_precision),
		cmocka_unit_test(test_percentiles),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
