/* fuzz_smtp_server.c - whole inbound sessions from fuzz bytes.
 *
 * The first byte picks the configuration (TLS/AUTH offered, implicit TLS,
 * small limits, a small reply buffer), the second seeds the split points;
 * the rest is the client's byte stream, fed in pieces each copied into an
 * exact-size allocation (ASan sees any read past it). A fake host commits,
 * finishes handshakes and checks credentials instantly, alternately
 * succeeding and failing. Invariants: consumed never exceeds the piece;
 * every reply is a well-formed line ("DDD" SP or "-", no CR or LF inside,
 * CRLF-terminated, at most 512 octets); body slices lie in the piece or in
 * the scanner's constants; the bytes handed out for a committed message
 * equal the envelope's count; nothing is pending when a feed returns NONE.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/smtp_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz {
	struct smtp_server *s;
	struct buf replies;
	char mem[1024];
	struct slice body[4];
	uint64_t body_len;
	unsigned flip;
	bool tls_pending, closed;
};

/* fz_check_replies - every queued reply is a well-formed line; then drop */
static void fz_check_replies(struct fz *f)
{
	const char *p = f->replies.ptr, *end = p + f->replies.len;

	while (p < end) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		if (lf == NULL || lf - p < 5 || lf - p > 511 || lf[-1] != '\r')
			abort();
		if (p[0] < '2' || p[0] > '5' || p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9' ||
		    (p[3] != ' ' && p[3] != '-'))
			abort();
		if (memchr(p, '\r', (size_t)(lf - 1 - p)))
			abort();
		p = lf + 1;
	}
	f->replies.len = 0;
}

/* fz_take_body - slices must lie in the piece or be the scanner's own */
static void fz_take_body(struct fz *f, const struct smtp_server_io *io, const char *in, size_t n)
{
	if (io->nbody > io->body_cap)
		abort();
	for (size_t i = 0; i < io->nbody; i++) {
		struct slice b = io->body[i];
		bool inside = b.ptr >= in && b.ptr + b.len <= in + n;
		if (!inside && !smtp_data_slice_static(b))
			abort();
		f->body_len += b.len;
	}
}

/* fz_feed - one piece, handling every event as a host would */
static void fz_feed(struct fz *f, const char *in, size_t n)
{
	struct smtp_server_io io = { &f->replies, f->body, 0, 4 };
	size_t off = 0;
	int guard = 0;

	while (!f->closed && !f->tls_pending && off < n) {
		size_t used = 0;
		enum smtp_server_ev ev = smtp_server_feed(f->s, in + off, n - off, &used, &io);
		if (used > n - off || ++guard > 1000000)
			abort();
		switch (ev) {
		case SMTP_EV_NONE:
			if (io.nbody || used == 0)
				abort();
			break;
		case SMTP_EV_FLUSH:
			fz_check_replies(f);
			break;
		case SMTP_EV_BODY:
			fz_take_body(f, &io, in + off, used);
			break;
		case SMTP_EV_COMMIT: {
			fz_take_body(f, &io, in + off, used);
			const struct smtp_tx *tx = smtp_server_tx(f->s);
			if (tx == NULL || tx->body_bytes != f->body_len || tx->nrcpt == 0)
				abort();
			char hdr[2048];
			struct buf b;
			buf_init(&b, hdr, sizeof hdr);
			if (smtp_server_received(f->s, &b, SLICE_LIT("[192.0.2.1]"), SLICE_LIT("Q1"),
						 SLICE_LIT("Mon, 1 Jan 2024 00:00:00 +0000")) != RM_OK)
				abort();
			f->body_len = 0;
			int st = (f->flip++ % 3) == 2 ? RM_EIO : RM_OK;
			smtp_server_committed(f->s, st, SLICE_LIT("Q1"), &io);
			break;
		}
		case SMTP_EV_ABORT:
			f->body_len = 0;
			break;
		case SMTP_EV_STARTTLS:
			f->tls_pending = true;
			break;
		case SMTP_EV_AUTH: {
			struct slice u = smtp_server_auth_user(f->s);
			if (u.len == 0 && smtp_server_auth_pass(f->s).len > 12288)
				abort();
			smtp_server_auth_done(f->s, (f->flip++ & 1) == 0, &io);
			break;
		}
		case SMTP_EV_CLOSE:
			f->closed = true;
			break;
		default:
			abort();
		}
		off += used;
		if (f->replies.len > f->replies.cap)
			abort();
	}
	fz_check_replies(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint8_t conf = data[0];
	uint64_t rnd = (uint64_t)data[1] * 0x9e3779b97f4a7c15ull + 1;
	struct smtp_server_cfg cfg = {
		.hostname = SLICE_LIT("mx.test"),
		.max_message_size = (conf & 0x08) ? 64 : 0,
		.max_recipients = (conf & 0x10) ? 2 : 0,
		.max_errors = (conf & 0x20) ? 3 : 0,
		.tls_available = conf & 0x01,
		.auth_available = conf & 0x02,
		.alloc = &rm_alloc_libc,
		.tx_arena_limit = (conf & 0x40) ? 2048 : 0,
	};
	struct fz *f = calloc(1, sizeof *f);
	f->s = malloc(smtp_server_size());
	buf_init(&f->replies, f->mem, (conf & 0x80) ? 600 : sizeof f->mem);
	smtp_server_init(f->s, &cfg, conf & 0x04);
	struct smtp_server_io io = { &f->replies, f->body, 0, 4 };
	if (smtp_server_greet(f->s, &io) != RM_OK)
		abort();
	fz_check_replies(f);

	const char *in = (const char *)data + 2;
	size_t n = size - 2, off = 0;
	while (off < n && !f->closed) {
		rnd ^= rnd << 13;
		rnd ^= rnd >> 7;
		rnd ^= rnd << 17;
		size_t take = 1 + (size_t)(rnd % 64);
		if (rnd & 0x100000)
			take = n - off; /* sometimes the rest at once */
		if (take > n - off)
			take = n - off;
		char *piece = malloc(take);
		memcpy(piece, in + off, take);
		fz_feed(f, piece, take);
		free(piece);
		off += take;
		if (f->tls_pending) {
			/* the handshake: alternately it works and fails */
			f->tls_pending = false;
			bool ok = (f->flip++ & 1) == 0;
			smtp_server_tls_started(f->s, ok, &io);
			if (!ok)
				f->closed = true;
			fz_check_replies(f);
		}
	}
	if (!f->closed && (rnd & 1)) {
		smtp_server_timeout(f->s, &io);
		fz_check_replies(f);
	}
	smtp_server_fini(f->s);
	free(f->s);
	free(f);
	return 0;
}
