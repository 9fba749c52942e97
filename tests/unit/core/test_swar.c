/* test_swar.c - the eight-bytes-at-a-time tests against their one-byte
 * definitions: a mask is nonzero exactly when some byte matches, and its
 * first flag is the first match. */
#include "tests/unit/harness.h"

#include "core/swar.h"

enum { T_EQ, T_BELOW, T_AT_LEAST };

/* check_word - every test with every argument on the word w[0..8) */
static void check_word(const unsigned char *w)
{
	uint64_t x = swar_load((const char *)w);

	for (unsigned c = 0; c < 256; c++)
		for (int t = T_EQ; t <= T_AT_LEAST; t++) {
			uint64_t m;
			if (t == T_EQ)
				m = swar_eq(x, (unsigned char)c);
			else if (c > 0x80 || (t == T_AT_LEAST && c == 0))
				continue; /* outside the test's domain */
			else
				m = t == T_BELOW ? swar_below(x, (unsigned char)c)
						 : swar_at_least(x, (unsigned char)c);
			size_t first = 8;
			for (size_t i = 0; i < 8 && first == 8; i++)
				if (t == T_EQ ? w[i] == c : t == T_BELOW ? w[i] < c : w[i] >= c)
					first = i;
			if (first == 8) {
				assert_true(m == 0);
			} else {
				assert_true(m != 0);
				assert_int_equal(swar_first(m), first);
			}
		}
}

/* every byte value at every position, the other bytes the worst case for
 * borrows and carries (0x00, 0x7f, 0x80, 0xff) or the value's neighbours */
static void test_each_byte_each_place(void **st)
{
	static const unsigned char fill[] = { 0x00, 0x7f, 0x80, 0xff, 0x20, 0x3d };
	(void)st;
	for (size_t f = 0; f < sizeof fill; f++)
		for (unsigned v = 0; v < 256; v++)
			for (size_t pos = 0; pos < 8; pos++) {
				unsigned char w[8];
				memset(w, fill[f], sizeof w);
				w[pos] = (unsigned char)v;
				check_word(w);
				if (pos + 1 < 8) {
					w[pos + 1] = (unsigned char)(v - 1);
					check_word(w);
				}
			}
}

/* random words: the first match among several, anywhere */
static void test_random_words(void **st)
{
	uint64_t seed = 20261129;
	(void)st;
	for (int k = 0; k < 20000; k++) {
		uint64_t r = test_rand(&seed);
		unsigned char w[8];
		memcpy(w, &r, sizeof w);
		check_word(w);
	}
}

/* swar_load reads unaligned bytes, first byte lowest */
static void test_load_order(void **st)
{
	char buf[16];
	(void)st;
	for (int i = 0; i < 16; i++)
		buf[i] = (char)i;
	for (int off = 0; off < 8; off++) {
		uint64_t x = swar_load(buf + off);
		for (int i = 0; i < 8; i++)
			assert_int_equal((x >> (8 * i)) & 0xff, off + i);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_byte_each_place),
		cmocka_unit_test(test_random_words),
		cmocka_unit_test(test_load_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
