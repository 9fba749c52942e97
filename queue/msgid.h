/* msgid.h - queue IDs: unique per spool across restarts and shards,
 * sortable by time, short, [0-9A-Z] only.
 *
 * An ID is 16 characters of base32 (the digits and the capitals without
 * I, L, O, U, which keeps ASCII order equal to numeric order):
 *   11 chars  arrival time in microseconds since the epoch (55 bits)
 *    2 chars  shard (0..1023)
 *    3 chars  per-shard sequence within one microsecond (0..32767)
 * Fixed width with the time first, so sorting the strings sorts by time.
 * The generator never goes backwards: a clock step back or a full sequence
 * reuses the last microsecond or borrows the next one, and recovery seeds it
 * with the highest ID found in the spool, so restarts do not repeat an ID.
 * Pure (the caller passes the clock); one generator per shard thread.
 */
#ifndef RINGMTA_QUEUE_MSGID_H
#define RINGMTA_QUEUE_MSGID_H

#include <stdbool.h>
#include <stdint.h>

#include "core/slice.h"

#define MSGID_LEN 16
#define MSGID_SHARD_MAX 1023u
#define MSGID_SEQ_MAX 32767u

/* A parsed ID. */
struct msgid_parts {
	uint64_t time_us;
	unsigned shard;
	unsigned seq;
};

/* The generator of one shard. */
struct msgid_gen {
	uint64_t _last_us;
	unsigned _seq;
	unsigned _shard;
};

/* msgid_gen_init - a generator for shard (<= MSGID_SHARD_MAX) */
void msgid_gen_init(struct msgid_gen *g, unsigned shard);

/* msgid_gen_seen - never hand out an ID at or below this one of our shard */
void msgid_gen_seen(struct msgid_gen *g, const struct msgid_parts *p);

/* msgid_next - the next ID at time now_us, written NUL-terminated to out */
void msgid_next(struct msgid_gen *g, uint64_t now_us, char out[MSGID_LEN + 1]);

/* msgid_format - the ID of p, NUL-terminated */
void msgid_format(const struct msgid_parts *p, char out[MSGID_LEN + 1]);

/* msgid_parse - true when s is exactly a well-formed ID; fills *out if
 * out is not NULL */
bool msgid_parse(struct slice s, struct msgid_parts *out);

#endif
