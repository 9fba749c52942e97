/* hist.c - log-linear latency histogram.
 *
 * Bucket layout: index v for v < 2^SUB; above, with m the position of v's
 * highest bit and shift = m - (SUB - 1), the index is 2^SUB +
 * (shift - 1) * HALF + ((v >> shift) - HALF), which keeps the top SUB bits
 * of v. Pure; no invariant can be broken by input, nothing panics.
 */
#include "core/hist.h"

#include <string.h>

/* hist_init - an empty histogram */
void hist_init(struct hist *h)
{
	memset(h, 0, sizeof *h);
}

/* hist_index - the bucket v is counted in */
unsigned hist_index(uint64_t v)
{
	if (v < (1u << HIST_SUB_BITS))
		return (unsigned)v;
	unsigned m = 63u - (unsigned)__builtin_clzll(v);
	unsigned shift = m - (HIST_SUB_BITS - 1);
	return (1u << HIST_SUB_BITS) + (shift - 1) * HIST_HALF + (unsigned)((v >> shift) - HIST_HALF);
}

/* hist_upper - the largest value counted in bucket i */
uint64_t hist_upper(unsigned i)
{
	if (i < (1u << HIST_SUB_BITS))
		return i;
	if (i >= HIST_BUCKETS)
		return UINT64_MAX;
	unsigned j = i - (1u << HIST_SUB_BITS);
	unsigned shift = j / HIST_HALF + 1;
	uint64_t top = (uint64_t)(j % HIST_HALF + HIST_HALF);
	return ((top + 1) << shift) - 1;
}

/* hist_add - add every count of src to dst */
void hist_add(struct hist *dst, const struct hist *src)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		dst->bucket[i] += src->bucket[i];
	dst->count += src->count;
	if (src->max > dst->max)
		dst->max = src->max;
}

/* hist_percentile - the value at pct percent, bucket upper end, capped */
uint64_t hist_percentile(const struct hist *h, double pct)
{
	if (h->count == 0)
		return 0;
	if (pct < 0)
		pct = 0;
	if (pct > 100)
		pct = 100;
	/* The rank of the value wanted, rounded up: at least the first one. */
	double rank = (double)h->count * pct / 100.0;
	uint64_t want = (uint64_t)rank;
	if ((double)want < rank)
		want++;
	if (want == 0)
		want = 1;
	if (want > h->count)
		want = h->count;
	uint64_t seen = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= want) {
			uint64_t up = hist_upper(i);
			return up < h->max ? up : h->max;
		}
	}
	return h->max;
}
