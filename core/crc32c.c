/* crc32c.c - CRC32C by the SSE4.2 instruction or slice-by-8 tables.
 *
 * Pure; any thread. The choice between the two is made by the loader
 * (GNU ifunc) with CPUID, which is inline assembly and pulls in no symbol.
 * The resolver runs before a sanitizer runtime is initialised, so sanitizer
 * and fuzzing builds use the tables instead.
 */
#include "core/crc32c.h"

#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#define CRC32C_HAVE_X86 1
#endif

#include "core/crc32c_table.h"

#if defined(__SANITIZE_ADDRESS__)
#define CRC32C_INSTRUMENTED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define CRC32C_INSTRUMENTED 1
#endif
#endif
#ifndef CRC32C_INSTRUMENTED
#define CRC32C_INSTRUMENTED 0
#endif

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

/* crc32c_cpu_has_sse42 - CPUID leaf 1, ECX bit 20 */
static int crc32c_cpu_has_sse42(void)
{
	unsigned a = 0, b = 0, c = 0, d = 0;
	if (!__get_cpuid(1, &a, &b, &c, &d))
		return 0;
	return (c & bit_SSE4_2) != 0;
}

/* crc32c_hw - the SSE4.2 version, or NULL when the CPU lacks it */
crc32c_fn crc32c_hw(void)
{
	return crc32c_cpu_has_sse42() ? crc32c_sse42 : NULL;
}

#if defined(__SSE4_2__)
/* crc32c_extend - the build targets SSE4.2: no choice to make */
uint32_t crc32c_extend(uint32_t crc, const void *p, size_t n)
{
	return crc32c_sse42(crc, p, n);
}
#elif CRC32C_INSTRUMENTED
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
	return crc32c_cpu_has_sse42() ? crc32c_sse42 : crc32c_sw;
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

/* crc32c_extend - tables only */
uint32_t crc32c_extend(uint32_t crc, const void *p, size_t n)
{
	return crc32c_sw(crc, p, n);
}
#endif
