/* data_ref.h - a naive model of the DATA/BDAT body scanner, for tests.
 *
 * Shared by tests/unit/core/test_smtp_data.c and tests/fuzz/fuzz_smtp_data.c
 * as the oracle the real scanner is compared against. It sees the whole input
 * at once and walks it line by line with no automaton, so it shares no logic
 * with core/smtp_data.c beyond the rules it encodes (smtp_data.h):
 *  - DATA: a line is bytes up to and including LF; the line ".CRLF" ends the
 *    data when the line before it ended in CRLF (or it is the first line);
 *    a leading "." is dropped; a line ending in a bare LF gets CRLF; a final
 *    line without LF is emitted as far as it is known (a "." or ".CR" that
 *    may still become the terminator is held back, so not emitted);
 *  - BDAT (raw): the input is the output;
 *  - both: Received: lines (any case) are counted on the output until its
 *    first empty line (optional CR, then LF).
 */
#ifndef RINGMTA_TESTS_DATA_REF_H
#define RINGMTA_TESTS_DATA_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct data_ref {
	char *out;          /* caller's buffer, at least 2 * len + 2 bytes */
	size_t nout;
	size_t consumed;
	bool done;
	uint32_t received;
	uint64_t normalised;
};

/* data_ref_is_received - does line[0..n) start with "Received:", any case */
static inline bool data_ref_is_received(const char *line, size_t n)
{
	static const char name[] = "received:";

	if (n < sizeof name - 1)
		return false;
	for (size_t i = 0; i < sizeof name - 1; i++) {
		char c = line[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != name[i])
			return false;
	}
	return true;
}

/* data_ref_count - Received: lines of o[0..n) before its first empty line */
static inline uint32_t data_ref_count(const char *o, size_t n)
{
	uint32_t count = 0;
	size_t pos = 0;

	while (pos < n) {
		size_t e = pos, clen;
		while (e < n && o[e] != '\n')
			e++;
		clen = e - pos;
		if (e < n) {
			if (clen > 0 && o[e - 1] == '\r')
				clen--;
			if (clen == 0)
				break; /* the empty line: headers are over */
		}
		if (data_ref_is_received(o + pos, clen))
			count++;
		pos = e + 1;
	}
	return count;
}

/* data_ref_put - append bytes to the model's output */
static inline void data_ref_put(struct data_ref *r, const char *p, size_t n)
{
	memcpy(r->out + r->nout, p, n);
	r->nout += n;
}

/* data_ref_run - what the scanner must produce for all of in[0..len) */
static inline void data_ref_run(const char *in, size_t len, bool raw, struct data_ref *r)
{
	size_t pos = 0;
	bool prev_crlf = true; /* the body's start counts as after a CRLF */

	r->nout = 0;
	r->consumed = len;
	r->done = false;
	r->received = 0;
	r->normalised = 0;
	if (raw) {
		data_ref_put(r, in, len);
		r->received = data_ref_count(r->out, r->nout);
		return;
	}
	while (pos < len) {
		size_t e = pos;
		while (e < len && in[e] != '\n')
			e++;
		size_t s = pos + (in[pos] == '.');
		if (e == len) {
			/* unfinished last line: ".CR" after CRLF may still end it */
			bool held = prev_crlf && s > pos && len - s == 1 && in[s] == '\r';
			if (!held)
				data_ref_put(r, in + s, len - s);
			break;
		}
		if (prev_crlf && e - pos == 2 && in[pos] == '.' && in[pos + 1] == '\r') {
			r->done = true;
			r->consumed = e + 1;
			break;
		}
		bool crlf = e > s && in[e - 1] == '\r';
		if (crlf) {
			data_ref_put(r, in + s, e + 1 - s);
		} else {
			data_ref_put(r, in + s, e - s);
			data_ref_put(r, "\r\n", 2);
			r->normalised++;
		}
		prev_crlf = crlf;
		pos = e + 1;
	}
	r->received = data_ref_count(r->out, r->nout);
}

#endif
