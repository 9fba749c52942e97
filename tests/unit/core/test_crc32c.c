/* test_crc32c.c - CRC32C against RFC 3720 appendix B.4 and across paths. */
#include "tests/unit/harness.h"

#include <string.h>

#include "core/crc32c.h"

/* The iSCSI Read (10) command PDU of RFC 3720 B.4. */
static const unsigned char iscsi_read[48] = {
	0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
	0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

static void check_all(const void *p, size_t n, uint32_t want)
{
	crc32c_fn hw = crc32c_hw();
	struct guarded g = guard_copy(p, n);
	assert_int_equal(crc32c(g.ptr, n), want);
	assert_int_equal(crc32c_sw(0, g.ptr, n), want);
	if (hw)
		assert_int_equal(hw(0, g.ptr, n), want);
	/* split anywhere: extending gives the same value */
	for (size_t k = 0; k <= n; k++) {
		uint32_t c = crc32c_extend(crc32c(g.ptr, k), g.ptr + k, n - k);
		assert_int_equal(c, want);
		assert_int_equal(crc32c_sw(crc32c_sw(0, g.ptr, k), g.ptr + k, n - k), want);
	}
	guard_free(&g);
}

static void test_rfc3720_vectors(void **st)
{
	(void)st;
	unsigned char b[32];

	memset(b, 0, sizeof b);
	check_all(b, 32, 0x8a9136aa);
	memset(b, 0xff, sizeof b);
	check_all(b, 32, 0x62a8ab43);
	for (int i = 0; i < 32; i++)
		b[i] = (unsigned char)i;
	check_all(b, 32, 0x46dd794e);
	for (int i = 0; i < 32; i++)
		b[i] = (unsigned char)(31 - i);
	check_all(b, 32, 0x113fdb5c);
	check_all(iscsi_read, sizeof iscsi_read, 0xd9963a56);
	check_all("123456789", 9, 0xe3069283);
	check_all("", 0, 0);
}

static void test_paths_agree(void **st)
{
	(void)st;
	uint64_t seed = 0x3720;
	static unsigned char buf[4099];
	crc32c_fn hw = crc32c_hw();

	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (unsigned char)test_rand(&seed);
	for (size_t off = 0; off < 9; off++)
		for (size_t n = 0; n + off <= sizeof buf; n += 1 + n / 3) {
			uint32_t s = crc32c_sw(0, buf + off, n);
			assert_int_equal(crc32c(buf + off, n), s);
			if (hw)
				assert_int_equal(hw(0, buf + off, n), s);
		}
	/* a flipped bit changes the value */
	uint32_t a = crc32c(buf, sizeof buf);
	buf[2000] ^= 0x10;
	assert_int_not_equal(crc32c(buf, sizeof buf), a);
}

/* crc32c_zeros - the state c advanced over n zero bytes, bit by bit */
static uint32_t crc32c_zeros(uint32_t c, size_t n)
{
	for (size_t i = 0; i < 8 * n; i++)
		c = (c >> 1) ^ ((c & 1) ? 0x82f63b78u : 0);
	return c;
}

/* The interleaved path: lengths around its stream boundaries (3 x 128 and
 * 3 x 1024 bytes), every alignment, against the tables and the one-stream
 * instruction; and its joining constants, which must advance a CRC over
 * 128 and 1024 zero bytes. */
static void test_interleaved(void **st)
{
	(void)st;
	uint64_t seed = 0x82f6;
	static unsigned char buf[3 * 3 * 1024 + 3 * 3 * 128 + 64];
	crc32c_fn hw = crc32c_hw(), hw1 = crc32c_hw1();
	static const size_t lens[] = { 383, 384, 385, 767, 768, 775, 3071, 3072, 3073, 3456, 3457,
				      6144, 6151, 6528, 9216, 10240, 10249, sizeof buf - 8 };

	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (unsigned char)test_rand(&seed);
	for (size_t off = 0; off < 8; off++)
		for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
			size_t n = lens[i];
			struct guarded g = guard_copy(buf + off, n);
			uint32_t s = crc32c_sw(0x1234u, g.ptr, n);
			assert_int_equal(crc32c_extend(0x1234u, g.ptr, n), s);
			if (hw)
				assert_int_equal(hw(0x1234u, g.ptr, n), s);
			if (hw1)
				assert_int_equal(hw1(0x1234u, g.ptr, n), s);
			guard_free(&g);
		}
	/* zero bytes: the state after 128 (1024) zeros is what the joining
	 * step computes; a sum over zeros checks it end to end */
	static unsigned char zeros[3 * 1024 + 3];
	uint32_t want = ~crc32c_zeros(~0xdeadbeefu, sizeof zeros);
	assert_int_equal(crc32c_sw(0xdeadbeefu, zeros, sizeof zeros), want);
	if (hw)
		assert_int_equal(hw(0xdeadbeefu, zeros, sizeof zeros), want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc3720_vectors),
		cmocka_unit_test(test_paths_agree),
		cmocka_unit_test(test_interleaved),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
