/* fuzz_smtp_reply.c - the reply parser, then the client engine, on a
 * fuzzed server stream.
 *
 * Input: one control byte (bits 0-1: piece length bound 1, 7, 64 or all;
 * bit 2: the handshake fails; bit 3: STARTTLS wanted; bit 4: no pipelining;
 * bit 5: tiny output buffer), then the server's bytes. Each piece is fed
 * from its own exact-size allocation so ASan sees any read past it.
 * Properties: the parser never consumes more than it is given, READY
 * replies have a code in 200..599 and line slices inside the parser; the
 * engine consumes all input unless it returns an event, never loops, and
 * gives every recipient of a finished message exactly one final reply.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/smtp_client.h"
#include "core/smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fuzz_check - abort (a finding) when a property does not hold */
static void fuzz_check(int ok)
{
	if (!ok)
		abort();
}

/* next_piece - a piece length from a generator seeded by the input */
static size_t next_piece(uint64_t *seed, size_t bound, size_t left)
{
	*seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
	size_t n = bound ? 1 + (size_t)(*seed >> 33) % bound : left;
	return n < left ? n : left;
}

/* fuzz_parser - the reply parser over the stream in pieces */
static void fuzz_parser(const char *in, size_t len, size_t bound)
{
	struct smtp_reply_parser *p = malloc(sizeof *p);
	uint64_t seed = len;
	size_t pos = 0;

	smtp_reply_parser_init(p);
	while (pos < len) {
		size_t n = next_piece(&seed, bound, len - pos), off = 0;
		char *piece = malloc(n);
		memcpy(piece, in + pos, n);
		while (off < n) {
			const struct smtp_reply *r;
			size_t used;
			enum smtp_reply_status st = smtp_reply_feed(p, piece + off, n - off, &used, &r);
			fuzz_check(used <= n - off);
			off += used;
			if (st == SMTP_REPLY_BAD)
				break;
			if (st == SMTP_REPLY_NEED_MORE) {
				fuzz_check(off == n);
				continue;
			}
			fuzz_check(r->code >= 200 && r->code <= 599 && r->nlines >= 1 &&
				   r->nlines <= SMTP_REPLY_LINES_MAX);
			for (size_t i = 0; i < r->nlines; i++)
				fuzz_check(r->line[i].ptr >= p->_text &&
					   r->line[i].ptr + r->line[i].len <= p->_text + SMTP_REPLY_MAX);
		}
		free(piece);
		if (off < n)
			break;
		pos += n;
	}
	free(p);
}

static const struct smtp_client_rcpt rcpts[] = {
	{ SLICE_LIT("a@x.test"), SMTP_NOTIFY_FAILURE, SLICE_LIT("rfc822;a@x.test") },
	{ SLICE_LIT("b@x.test"), 0, SLICE_NULL },
	{ SLICE_LIT("c@x.test"), SMTP_NOTIFY_NEVER, SLICE_NULL },
};
static const struct smtp_client_msg msg = {
	.from = SLICE_LIT("s@y.test"), .rcpt = rcpts, .nrcpt = 3, .size = 100,
	.ret = SMTP_RET_HDRS, .envid = SLICE_LIT("ID1"), .body = SMTP_BODY_8BITMIME,
};

/* fuzz_last - send the LAST chunk of a body in two (split); false while
 * the engine wants the first chunk's reply first (no PIPELINING) */
static bool fuzz_last(struct smtp_client *c, struct buf *out)
{
	int rc = smtp_client_bdat(c, out, msg.size - 40, true);

	/* a refused chunk or message stops the body; EINVAL: the session
	 * closed meanwhile */
	fuzz_check(rc == 0 || rc == RM_AGAIN || rc == RM_EPROTO || rc == RM_EINVAL);
	return rc != RM_AGAIN;
}

/* fuzz_host - act on one event; false when the session is over. With
 * split, a BDAT body goes in two chunks, the second maybe later (*last). */
static bool fuzz_host(struct smtp_client *c, enum smtp_client_ev ev, struct buf *out,
		      bool *final, unsigned *sent, bool tls_ok, bool chain, bool split, bool *last)
{
	const struct smtp_reply *r = smtp_client_reply(c);

	switch (ev) {
	case SMTP_CL_NONE:
	case SMTP_CL_FLUSH:
		break;
	case SMTP_CL_READY:
		/* With pipeline_next READY may come before the final replies:
		 * they are checked when the message is counted over. */
		if (*sent && !chain)
			for (size_t i = 0; i < msg.nrcpt; i++)
				fuzz_check(final[i]);
		if (!chain)
			memset(final, 0, msg.nrcpt);
		if (*sent < 3) {
			(*sent)++;
			fuzz_check(smtp_client_send(c, &msg) == 0);
		} else {
			fuzz_check(smtp_client_quit(c) == 0);
		}
		break;
	case SMTP_CL_RCPT:
		fuzz_check(r && smtp_client_rcpt_index(c) < msg.nrcpt);
		fuzz_check(!final[smtp_client_rcpt_index(c)]);
		final[smtp_client_rcpt_index(c)] = r->code / 100 != 2;
		break;
	case SMTP_CL_RESULT:
		fuzz_check(r != NULL);
		memset(final, 1, msg.nrcpt);
		break;
	case SMTP_CL_BODY:
		if (smtp_client_bdat_mode(c) && split) {
			out->len = 0;
			fuzz_check(smtp_client_bdat(c, out, 40, false) == 0);
			*last = !fuzz_last(c, out);
		} else if (smtp_client_bdat_mode(c)) {
			out->len = 0;
			fuzz_check(smtp_client_bdat(c, out, msg.size, true) == 0);
		} else {
			fuzz_check(smtp_client_body_sent(c) == 0);
		}
		break;
	case SMTP_CL_STARTTLS:
		smtp_client_tls_started(c, tls_ok);
		break;
	case SMTP_CL_CLOSE:
		return false;
	}
	return true;
}

/* fuzz_client - the client engine with the stream as the server's */
static void fuzz_client(const char *in, size_t len, size_t bound, uint8_t ctl)
{
	struct smtp_client *c = malloc(sizeof *c);
	struct smtp_client_cfg cfg = { SLICE_LIT("fuzz.test"),
				       (ctl & 8) ? SMTP_CLIENT_TLS_OPPORTUNISTIC : SMTP_CLIENT_TLS_NONE,
				       (ctl & 16) != 0, false, (ctl & 64) != 0 };
	char mem[256];
	struct buf out;
	bool final[3] = { false, false, false };
	bool last = false; /* a split body's LAST chunk is still to send */
	unsigned sent = 0;
	uint64_t over = 0;
	uint64_t seed = len ^ 0x5555;
	size_t pos = 0;

	buf_init(&out, mem, (ctl & 32) ? 40 : sizeof mem);
	smtp_client_init(c, &cfg);
	while (pos < len) {
		size_t n = next_piece(&seed, bound, len - pos), off = 0;
		char *piece = malloc(n);
		bool live = true;
		enum smtp_client_ev ev;
		memcpy(piece, in + pos, n);
		do {
			size_t used;
			ev = smtp_client_feed(c, piece + off, n - off, &used, &out);
			fuzz_check(used <= n - off);
			fuzz_check(ev != SMTP_CL_NONE || used == n - off);
			off += used;
			out.len = 0;
			/* A reply event belongs to the oldest open message: take
			 * it before that message is counted over, READY after. */
			bool reply_ev = ev == SMTP_CL_RCPT || ev == SMTP_CL_RESULT;
			if (reply_ev)
				live = fuzz_host(c, ev, &out, final, &sent, !(ctl & 4), cfg.pipeline_next,
						 (ctl & 128) != 0, &last);
			for (; cfg.pipeline_next && over < smtp_client_messages(c); over++) {
				for (size_t i = 0; i < msg.nrcpt; i++)
					fuzz_check(final[i]);
				memset(final, 0, msg.nrcpt);
			}
			if (!reply_ev)
				live = fuzz_host(c, ev, &out, final, &sent, !(ctl & 4), cfg.pipeline_next,
						 (ctl & 128) != 0, &last);
			if (live && last)
				last = !fuzz_last(c, &out);
			out.len = 0;
		} while (live && (off < n || ev != SMTP_CL_NONE));
		free(piece);
		if (!live)
			break;
		pos += n;
	}
	(void)smtp_client_phase_name(smtp_client_phase(c));
	free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t bounds[] = { 1, 7, 64, 0 };

	if (size < 1)
		return 0;
	size_t bound = bounds[data[0] & 3];
	fuzz_parser((const char *)data + 1, size - 1, bound);
	fuzz_client((const char *)data + 1, size - 1, bound, data[0]);
	return 0;
}
