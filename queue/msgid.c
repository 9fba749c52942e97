/* msgid.c - queue ID generation and parsing.
 *
 * Pure; a generator belongs to one thread. Invariant: every ID a generator
 * returns is greater (as a number and as a string) than the previous one and
 * than any ID passed to msgid_gen_seen for its shard.
 */
#include "queue/msgid.h"

#include <string.h>

static const char msgid_digits[32] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

#define MSGID_TIME_CHARS 11
#define MSGID_SHARD_CHARS 2
#define MSGID_SEQ_CHARS 3

/* msgid_put - v as exactly n base32 digits, most significant first */
static void msgid_put(char *out, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		out[i] = msgid_digits[v & 31];
		v >>= 5;
	}
}

/* msgid_digit - the value of one base32 digit, or -1 */
static int msgid_digit(char c)
{
	const char *p = memchr(msgid_digits, c, sizeof msgid_digits);
	return (c && p) ? (int)(p - msgid_digits) : -1;
}

/* msgid_get - n base32 digits as a number; false on a bad digit */
static bool msgid_get(const char *s, int n, uint64_t *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		int d = msgid_digit(s[i]);
		if (d < 0)
			return false;
		*v = (*v << 5) | (uint64_t)d;
	}
	return true;
}

/* msgid_gen_init - a generator for shard */
void msgid_gen_init(struct msgid_gen *g, unsigned shard)
{
	g->_last_us = 0;
	g->_seq = 0;
	g->_shard = shard & MSGID_SHARD_MAX;
}

/* msgid_gen_seen - never hand out an ID at or below this one */
void msgid_gen_seen(struct msgid_gen *g, const struct msgid_parts *p)
{
	if (p->shard != g->_shard)
		return;
	if (p->time_us > g->_last_us || (p->time_us == g->_last_us && p->seq >= g->_seq)) {
		g->_last_us = p->time_us;
		g->_seq = p->seq + 1;
	}
}

/* msgid_format - the ID of p */
void msgid_format(const struct msgid_parts *p, char out[MSGID_LEN + 1])
{
	msgid_put(out, p->time_us, MSGID_TIME_CHARS);
	msgid_put(out + MSGID_TIME_CHARS, p->shard, MSGID_SHARD_CHARS);
	msgid_put(out + MSGID_TIME_CHARS + MSGID_SHARD_CHARS, p->seq, MSGID_SEQ_CHARS);
	out[MSGID_LEN] = '\0';
}

/* msgid_next - the next ID at time now_us */
void msgid_next(struct msgid_gen *g, uint64_t now_us, char out[MSGID_LEN + 1])
{
	struct msgid_parts p;

	now_us &= (1ull << (5 * MSGID_TIME_CHARS)) - 1;
	if (now_us > g->_last_us) {
		g->_last_us = now_us;
		g->_seq = 0;
	} else if (g->_seq > MSGID_SEQ_MAX) {
		/* more than 32768 IDs in one microsecond: borrow the next */
		g->_last_us++;
		g->_seq = 0;
	}
	p.time_us = g->_last_us;
	p.shard = g->_shard;
	p.seq = g->_seq++;
	msgid_format(&p, out);
}

/* msgid_parse - true when s is exactly a well-formed ID */
bool msgid_parse(struct slice s, struct msgid_parts *out)
{
	uint64_t t, sh, sq;

	if (s.len != MSGID_LEN)
		return false;
	if (!msgid_get(s.ptr, MSGID_TIME_CHARS, &t) ||
	    !msgid_get(s.ptr + MSGID_TIME_CHARS, MSGID_SHARD_CHARS, &sh) ||
	    !msgid_get(s.ptr + MSGID_TIME_CHARS + MSGID_SHARD_CHARS, MSGID_SEQ_CHARS, &sq))
		return false;
	if (out) {
		out->time_us = t;
		out->shard = (unsigned)sh;
		out->seq = (unsigned)sq;
	}
	return true;
}
