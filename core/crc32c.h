/* crc32c.h - CRC32C (Castagnoli, RFC 3720 §12.1), the spool records' check.
 *
 * Pure: no state, any thread. The SSE4.2 crc32 instruction is used when the
 * CPU has it, in three interleaved streams joined by PCLMULQDQ when it has
 * that too (chosen once by the dynamic loader through an ifunc, so no
 * mutable global exists), else a table-driven slice-by-8 loop.
 */
#ifndef RINGMTA_CORE_CRC32C_H
#define RINGMTA_CORE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* crc32c_extend - the CRC32C of (bytes whose CRC32C is crc) followed by
 * p[0..n); crc32c_extend(0, p, n) is the CRC32C of p[0..n) */
uint32_t crc32c_extend(uint32_t crc, const void *p, size_t n);

/* crc32c - the CRC32C of p[0..n) */
static inline uint32_t crc32c(const void *p, size_t n)
{
	return crc32c_extend(0, p, n);
}

/* crc32c_sw - the portable slice-by-8 version (for tests and benchmarks) */
uint32_t crc32c_sw(uint32_t crc, const void *p, size_t n);

/* crc32c_hw - the fastest instruction version (three streams with
 * PCLMULQDQ, else one), or NULL when the CPU or build lacks SSE4.2 */
typedef uint32_t (*crc32c_fn)(uint32_t crc, const void *p, size_t n);
crc32c_fn crc32c_hw(void);

/* crc32c_hw1 - the one-stream SSE4.2 version, or NULL (tests, benchmarks) */
crc32c_fn crc32c_hw1(void);

#endif
