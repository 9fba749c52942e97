/* test_msgid.c - queue IDs: format, order, uniqueness, parsing. */
#include "tests/unit/harness.h"

#include <string.h>

#include "queue/msgid.h"

static void test_format_and_parse(void **st)
{
	(void)st;
	struct msgid_gen g;
	struct msgid_parts p;
	char id[MSGID_LEN + 1];

	msgid_gen_init(&g, 7);
	msgid_next(&g, 1700000000123456ull, id);
	assert_int_equal(strlen(id), MSGID_LEN);
	for (int i = 0; i < MSGID_LEN; i++)
		assert_true((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'A' && id[i] <= 'Z'));
	assert_true(msgid_parse(slice_cstr(id), &p));
	assert_true(p.time_us == 1700000000123456ull);
	assert_int_equal(p.shard, 7);
	assert_int_equal(p.seq, 0);

	struct guarded gd = guard_copy(id, MSGID_LEN);
	assert_true(msgid_parse(slice_make(gd.ptr, gd.len), NULL));
	guard_free(&gd);
	assert_false(msgid_parse(slice_make(id, MSGID_LEN - 1), NULL));
	assert_false(msgid_parse(SLICE_LIT("0000000000000000X"), NULL));
	char bad[MSGID_LEN + 1];
	memcpy(bad, id, sizeof bad);
	const char *rejects = "ILOUa-\0 ";
	for (size_t i = 0; i < 8; i++) {
		bad[5] = rejects[i];
		assert_false(msgid_parse(slice_make(bad, MSGID_LEN), NULL));
	}
}

static void test_monotonic_unique(void **st)
{
	(void)st;
	struct msgid_gen g;
	char prev[MSGID_LEN + 1] = "", id[MSGID_LEN + 1];
	uint64_t t = 1700000000000000ull;

	msgid_gen_init(&g, 3);
	/* many in the same microsecond, then the clock steps back */
	for (int i = 0; i < 40000; i++) {
		msgid_next(&g, i < 35000 ? t : t - 1000000, id);
		assert_true(strcmp(id, prev) > 0);
		memcpy(prev, id, sizeof id);
	}
	/* a restart seeded with the highest ID seen continues above it */
	struct msgid_parts p;
	assert_true(msgid_parse(slice_cstr(prev), &p));
	msgid_gen_init(&g, 3);
	msgid_gen_seen(&g, &p);
	msgid_next(&g, t - 5000000, id);
	assert_true(strcmp(id, prev) > 0);
	/* sorted by time across shards */
	struct msgid_gen a, b;
	char ia[MSGID_LEN + 1], ib[MSGID_LEN + 1];
	msgid_gen_init(&a, 1000);
	msgid_gen_init(&b, 0);
	msgid_next(&a, t, ia);
	msgid_next(&b, t + 1, ib);
	assert_true(strcmp(ia, ib) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_and_parse),
		cmocka_unit_test(test_monotonic_unique),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
