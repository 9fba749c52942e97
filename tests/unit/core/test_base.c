/* test_base.c - slices, buffers, arenas, replies written. */
#include "tests/unit/harness.h"

#include "core/arena.h"
#include "core/buf.h"
#include "core/slice.h"
#include "core/smtp_reply.h"

static void test_slice(void **st)
{
	(void)st;
	unsigned long long v;
	assert_true(slice_eq_nocase(SLICE_LIT("MaIl"), SLICE_LIT("mail")));
	assert_false(slice_eq_nocase(SLICE_LIT("mail"), SLICE_LIT("mai")));
	assert_true(slice_starts_nocase(SLICE_LIT("FROM:<a@b>"), SLICE_LIT("from:")));
	assert_true(slice_eq(slice_trim(SLICE_LIT(" \tx y\t ")), SLICE_LIT("x y")));
	assert_true(slice_to_u64(SLICE_LIT("18446744073709551615"), ~0ull, &v));
	assert_true(v == ~0ull);
	assert_false(slice_to_u64(SLICE_LIT("18446744073709551616"), ~0ull, &v));
	assert_false(slice_to_u64(SLICE_LIT("1x"), ~0ull, &v));
	assert_false(slice_to_u64(SLICE_LIT(""), ~0ull, &v));
	assert_false(slice_to_u64(SLICE_LIT("101"), 100, &v));
	assert_true(slice_eq(slice_sub(SLICE_LIT("abc"), 1, 99), SLICE_LIT("bc")));
}

static void test_buf_and_reply(void **st)
{
	(void)st;
	char mem[32];
	struct buf b;
	buf_init(&b, mem, sizeof mem);
	assert_int_equal(smtp_reply_puts(&b, 250, "2.1.0", "Ok"), 0);
	assert_true(slice_eq(buf_slice(&b), SLICE_LIT("250 2.1.0 Ok\r\n")));
	assert_int_equal(smtp_reply_put(&b, 250, NULL, SLICE_LIT("PIPELINING"), true), 0);
	assert_true(slice_eq(buf_slice(&b), SLICE_LIT("250 2.1.0 Ok\r\n250-PIPELINING\r\n")));
	size_t before = b.len;
	assert_int_equal(smtp_reply_puts(&b, 250, NULL, "too long to fit"), RM_ENOMEM);
	assert_int_equal(b.len, before); /* all or nothing */
	buf_consume(&b, 14);
	assert_true(slice_eq(buf_slice(&b), SLICE_LIT("250-PIPELINING\r\n")));
	assert_int_equal(buf_put_u64(&b, 0), 0);
	assert_int_equal(buf_put_u64(&b, 1234567), 0);
	assert_true(slice_eq(buf_slice(&b), SLICE_LIT("250-PIPELINING\r\n01234567")));
}

static void test_arena(void **st)
{
	(void)st;
	struct arena a;
	arena_init(&a, &rm_alloc_libc, 1024, 4096);
	char *p = arena_alloc(&a, 10);
	assert_non_null(p);
	assert_true(((uintptr_t)p % _Alignof(max_align_t)) == 0);
	struct slice s = arena_dup(&a, SLICE_LIT("hello"));
	assert_true(slice_eq(s, SLICE_LIT("hello")));
	assert_int_equal(s.ptr[5], '\0');
	assert_non_null(arena_alloc(&a, 2000)); /* a chunk of its own */
	assert_null(arena_alloc(&a, 4096));     /* past the limit */
	arena_reset(&a);
	assert_int_equal(arena_held(&a), 1024);
	assert_non_null(arena_alloc(&a, 100));
	arena_free(&a);
	assert_int_equal(arena_held(&a), 0);
	/* a chunk made for known allocations holds them exactly */
	size_t need = arena_round(300) + arena_round(1) + arena_round(48);
	assert_true(arena_round(1) >= 1 && arena_round(300) >= 300 && arena_round(48) == 48);
	assert_true(arena_round(SIZE_MAX) < SIZE_MAX); /* too large to round */
	arena_init(&a, &rm_alloc_libc, arena_chunk_for(need), 4096);
	assert_non_null(arena_alloc(&a, 300));
	assert_non_null(arena_alloc(&a, 1));
	assert_non_null(arena_alloc(&a, 48));
	assert_true(arena_held(&a) == arena_chunk_for(need));
	assert_non_null(arena_alloc(&a, 1));
	assert_true(arena_held(&a) > arena_chunk_for(need));
	arena_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slice),
		cmocka_unit_test(test_buf_and_reply),
		cmocka_unit_test(test_arena),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
