/* hist.h - a latency histogram with log-linear buckets (HdrHistogram-style).
 *
 * Values below 2^HIST_SUB_BITS are counted exactly; above, every power of
 * two is cut into 2^(HIST_SUB_BITS-1) equal buckets, so a bucket is never
 * wider than 1/64 of its values (1.6 % relative precision) over the whole
 * 64-bit range, in a fixed array: recording is an index and an increment.
 * The unit is the caller's (ringmta-blast records microseconds). Pure; one
 * writer per histogram, merged by hist_add after the writers are done.
 */
#ifndef RINGMTA_CORE_HIST_H
#define RINGMTA_CORE_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_HALF (1u << (HIST_SUB_BITS - 1))
#define HIST_BUCKETS ((1u << HIST_SUB_BITS) + (64 - HIST_SUB_BITS) * HIST_HALF)

struct hist {
	uint64_t count;
	uint64_t max;
	uint64_t bucket[HIST_BUCKETS];
};

/* hist_init - an empty histogram */
void hist_init(struct hist *h);

/* hist_index - the bucket v is counted in */
unsigned hist_index(uint64_t v);

/* hist_upper - the largest value counted in bucket i */
uint64_t hist_upper(unsigned i);

/* hist_record - count one value */
static inline void hist_record(struct hist *h, uint64_t v)
{
	h->bucket[hist_index(v)]++;
	h->count++;
	if (v > h->max)
		h->max = v;
}

/* hist_add - add every count of src to dst */
void hist_add(struct hist *dst, const struct hist *src);

/* hist_percentile - the value below or at which pct percent (0..100) of
 * the recorded values lie, as the upper end of its bucket but never above
 * the largest value recorded; 0 when empty */
uint64_t hist_percentile(const struct hist *h, double pct);

#endif
