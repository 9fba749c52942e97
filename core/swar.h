/* swar.h - eight bytes at a time in a uint64_t, for scalar scans of short
 * runs where SIMD set-up would not pay.
 *
 * A word is loaded with its first byte lowest (swar_load), so the lowest
 * flagged byte of a mask is the first in memory (swar_first). A mask flags a
 * byte by its high bit. Each test below flags every byte it matches and, at
 * worst, some bytes above a matching one (a borrow or carry runs upward only
 * from a byte that matches), so the lowest flag of a mask, or of an OR of
 * such masks, is always exact; whether a mask is zero is exact too.
 */
#ifndef RINGMTA_CORE_SWAR_H
#define RINGMTA_CORE_SWAR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SWAR_ONES 0x0101010101010101ull
#define SWAR_HIGHS 0x8080808080808080ull

/* swar_load - the eight bytes at p, the first lowest */
static inline uint64_t swar_load(const char *p)
{
	uint64_t w;
	memcpy(&w, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	w = __builtin_bswap64(w);
#endif
	return w;
}

/* swar_eq - flags the bytes of w equal to c */
static inline uint64_t swar_eq(uint64_t w, unsigned char c)
{
	uint64_t x = w ^ (SWAR_ONES * c);
	return (x - SWAR_ONES) & ~x & SWAR_HIGHS;
}

/* swar_below - flags the bytes of w below c (c at most 0x80) */
static inline uint64_t swar_below(uint64_t w, unsigned char c)
{
	return (w - SWAR_ONES * c) & ~w & SWAR_HIGHS;
}

/* swar_at_least - flags the bytes of w at or above c (c from 1 to 0x80) */
static inline uint64_t swar_at_least(uint64_t w, unsigned char c)
{
	return ((w + SWAR_ONES * (unsigned char)(0x80 - c)) | w) & SWAR_HIGHS;
}

/* swar_first - the index of the first flagged byte of a nonzero mask */
static inline size_t swar_first(uint64_t mask)
{
	return (size_t)__builtin_ctzll(mask) >> 3;
}

#endif
