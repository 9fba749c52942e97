/* crc32c.c - CRC32C by the SSE4.2 instruction or slice-by-8 tables.
 *
 * Pure; any thread. The choice between them is made by the loader
 * (GNU ifunc) with CPUID, which is inline assembly and pulls in no symbol.
 * With PCLMULQDQ too, long inputs run as three interleaved streams: the
 * crc32 instruction has a latency of three cycles and a throughput of one,
 * so one dependent chain uses a third of it. The three partial CRCs are
 * joined by a carry-less multiply with a constant x^(8L-33) mod P (bit
 * reflected), which advances a CRC over L zero bytes.
 * The resolver runs before a sanitizer runtime is initialised, so sanitizer
 * and fuzzing builds use the tables instead.
 */
#include "core/crc32c.h"

#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#define CRC32C_HAVE_X86 1
#endif

#include "core/crc32c_table.h"
#include "core/sanitize.h"

/* crc32c_load64 - an unaligned little-endian 64-bit load */
static inline uint64_t crc32c_load64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof v);
	return v;
}

/* crc32c_sw - the portable slice-by-8 version */
uint32_t crc32c_sw(uint32_t crc, const void *p, size_t n)
{
	const unsigned char *b = p;
	uint32_t c = ~crc;

	while (n && ((uintptr_t)b & 7)) {
		c = crc32c_tab[0][(c ^ *b++) & 0xff] ^ (c >> 8);
		n--;
	}
	while (n >= 8) {
		uint64_t v = crc32c_load64(b) ^ c;
		c = crc32c_tab[7][v & 0xff] ^ crc32c_tab[6][(v >> 8) & 0xff] ^
		    crc32c_tab[5][(v >> 16) & 0xff] ^ crc32c_tab[4][(v >> 24) & 0xff] ^
		    crc32c_tab[3][(v >> 32) & 0xff] ^ crc32c_tab[2][(v >> 40) & 0xff] ^
		    crc32c_tab[1][(v >> 48) & 0xff] ^ crc32c_tab[0][v >> 56];
		b += 8;
		n -= 8;
	}
	while (n--)
		c = crc32c_tab[0][(c ^ *b++) & 0xff] ^ (c >> 8);
	return ~c;
}

#ifdef CRC32C_HAVE_X86
/* crc32c_sse42 - the crc32 instruction, 8 bytes at a time */
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const void *p,
								size_t n)
{
	const unsigned char *b = p;
	uint64_t c = (uint32_t)~crc;

	while (n && ((uintptr_t)b & 7)) {
		c = __builtin_ia32_crc32qi((uint32_t)c, *b++);
		n--;
	}
	while (n >= 8) {
		c = __builtin_ia32_crc32di(c, crc32c_load64(b));
		b += 8;
		n -= 8;
	}
	while (n--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *b++);
	return ~(uint32_t)c;
}

/* Stream lengths of the interleaved path and their joining constants
 * x^(8L-33) mod P, bit reflected (checked by tests/unit/core/test_crc32c.c
 * against the tables). */
#define CRC32C_LONG 1024
#define CRC32C_K_LONG 0x170076fau
#define CRC32C_SHORT 128
#define CRC32C_K_SHORT 0x0d3b6092u

/* crc32c_shift - crc state c advanced over the L zero bytes k stands for */
__attribute__((target("sse4.2,pclmul"))) static inline uint64_t crc32c_shift(uint64_t c, uint32_t k)
{
	__m128i m = _mm_clmulepi64_si128(_mm_set_epi64x(0, (long long)(uint32_t)c),
					 _mm_set_epi64x(0, (long long)k), 0);
	return __builtin_ia32_crc32di(0, (uint64_t)_mm_cvtsi128_si64(m));
}

/* crc32c_3way - state c over 3 * len bytes at b (len a multiple of 8) as
 * three independent streams, joined */
__attribute__((target("sse4.2,pclmul"))) static inline uint64_t crc32c_3way(uint64_t c,
									   const unsigned char *b,
									   size_t len, uint32_t k)
{
	uint64_t c1 = 0, c2 = 0;

	for (size_t i = 0; i < len; i += 8) {
		c = __builtin_ia32_crc32di(c, crc32c_load64(b + i));
		c1 = __builtin_ia32_crc32di(c1, crc32c_load64(b + len + i));
		c2 = __builtin_ia32_crc32di(c2, crc32c_load64(b + 2 * len + i));
	}
	c = crc32c_shift(c, k) ^ c1;
	return crc32c_shift(c, k) ^ c2;
}

/* crc32c_clmul - three streams while the input is long, then one */
__attribute__((target("sse4.2,pclmul"))) static uint32_t crc32c_clmul(uint32_t crc, const void *p,
								      size_t n)
{
	const unsigned char *b = p;
	size_t head = (size_t)(-(uintptr_t)b & 7) < n ? (size_t)(-(uintptr_t)b & 7) : n;
	uint64_t c = (uint32_t)~crc32c_sse42(crc, b, head); /* to an 8-byte boundary */

	b += head;
	n -= head;
	for (; n >= 3 * CRC32C_LONG; b += 3 * CRC32C_LONG, n -= 3 * CRC32C_LONG)
		c = crc32c_3way(c, b, CRC32C_LONG, CRC32C_K_LONG);
	for (; n >= 3 * CRC32C_SHORT; b += 3 * CRC32C_SHORT, n -= 3 * CRC32C_SHORT)
		c = crc32c_3way(c, b, CRC32C_SHORT, CRC32C_K_SHORT);
	return crc32c_sse42(~(uint32_t)c, b, n);
}

/* crc32c_cpu_ecx - CPUID leaf 1's ECX feature bits, 0 when unknown */
static unsigned crc32c_cpu_ecx(void)
{
	unsigned a = 0, b = 0, c = 0, d = 0;
	if (!__get_cpuid(1, &a, &b, &c, &d))
		return 0;
	return c;
}

/* crc32c_pick - the best instruction path, or NULL when the CPU has none */
static crc32c_fn crc32c_pick(void)
{
	unsigned ecx = crc32c_cpu_ecx();

	if (!(ecx & bit_SSE4_2))
		return NULL;
	return (ecx & bit_PCLMUL) ? crc32c_clmul : crc32c_sse42;
}

/* crc32c_hw - the instruction version, or NULL when the CPU lacks it */
crc32c_fn crc32c_hw(void)
{
	return crc32c_pick();
}

/* crc32c_hw1 - the one-stream instruction version, or NULL */
crc32c_fn crc32c_hw1(void)
{
	return (crc32c_cpu_ecx() & bit_SSE4_2) ? crc32c_sse42 : NULL;
}

#if defined(__SSE4_2__) && defined(__PCLMUL__)
/* crc32c_extend - the build targets both instructions: no choice to make */
uint32_t crc32c_extend(uint32_t crc, const void *p, size_t n)
{
	return crc32c_clmul(crc, p, n);
}
#elif RM_SANITIZED
/* crc32c_extend - sanitizer and fuzzing builds: an ifunc resolver would run
 * before their runtime is set up, so they use the tables (the instruction
 * is still tested through crc32c_hw) */
uint32_t crc32c_extend(uint32_t crc, const void *p, size_t n)
{
	return crc32c_sw(crc, p, n);
}
#else
/* crc32c_resolve - the loader's pick for crc32c_extend */
__attribute__((used)) static crc32c_fn crc32c_resolve(void)
{
	crc32c_fn f = crc32c_pick();
	return f != NULL ? f : crc32c_sw;
}

uint32_t crc32c_extend(uint32_t crc, const void *p, size_t n)
	__attribute__((ifunc("crc32c_resolve")));
#endif
#else /* !CRC32C_HAVE_X86 */
/* crc32c_hw - no instruction on this architecture */
crc32c_fn crc32c_hw(void)
{
	return NULL;
}

/* crc32c_hw1 - no instruction on this architecture */
crc32c_fn crc32c_hw1(void)
{
	return NULL;
}

/* crc32c_extend - tables only */
uint32_t crc32c_extend(uint32_t crc, const void *p, size_t n)
{
	return crc32c_sw(crc, p, n);
}
#endif
