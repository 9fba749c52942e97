/* bounce_gen.c - write the DSN of each named case to DIR/<case>.eml, or
 * DIR/<case>.none when no report is due, for the integration tests to parse
 * with an independent MIME parser.
 *
 * Usage: bounce-gen DIR. Cases: single, mixed, never, nullsender, hdrs,
 * large, orcpt_envid, hostile, utf8. Exit 0 when every file was written.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/bounce.h"

static const char gen_orig[] = "Received: from client.test by mx.test\r\n"
			       "From: Alice <alice@example.org>\r\n"
			       "To: bob@remote.test\r\n"
			       "Subject: hello\r\n"
			       "Message-ID: <orig-1@example.org>\r\n"
			       "\r\n"
			       "body line one\r\n"
			       "body line two\r\n";

/* gen_rcpt - a failed recipient with a remote reply */
static struct bounce_rcpt gen_rcpt(const char *addr)
{
	struct bounce_rcpt r;

	memset(&r, 0, sizeof r);
	r.addr = slice_cstr(addr);
	r.action = BOUNCE_FAILED;
	r.status = SLICE_LIT("5.1.1");
	r.remote_mta = SLICE_LIT("mx.remote.test");
	r.diag = SLICE_LIT("550 5.1.1 <bob@remote.test>: Recipient address rejected");
	r.last_attempt = SLICE_LIT("Tue, 14 Nov 2023 22:13:20 +0000");
	return r;
}

/* gen_write - build m and write it (or the .none marker) under dir */
static int gen_write(const char *dir, const char *name, const struct bounce_msg *m)
{
	struct arena a;
	struct bounce_out o;
	char path[4096];
	int rc;

	arena_init(&a, &rm_alloc_libc, 16384, 64u << 20);
	rc = bounce_build(m, &a, &o);
	snprintf(path, sizeof path, "%s/%s.%s", dir, name, rc == RM_OK ? "eml" : "none");
	FILE *f = fopen(path, "wb");
	if (!f) {
		perror(path);
		arena_free(&a);
		return 1;
	}
	if (rc == RM_OK)
		for (size_t i = 0; i < o.nv; i++)
			fwrite(o.v[i].ptr, 1, o.v[i].len, f);
	else
		fprintf(f, "%s\n", rm_strerror(rc));
	rc = fclose(f) != 0;
	arena_free(&a);
	return rc;
}

int main(int argc, char **argv)
{
	struct bounce_rcpt r[2];
	struct slice orig = slice_make(gen_orig, sizeof gen_orig - 1);
	struct bounce_msg m, base;
	int bad = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: bounce-gen DIR\n");
		return 2;
	}
	memset(&base, 0, sizeof base);
	base.hostname = SLICE_LIT("mx.test");
	base.sender = SLICE_LIT("alice@example.org");
	base.arrival_us = 1700000000123456ull;
	base.arrival_date = SLICE_LIT("Tue, 14 Nov 2023 22:13:20 +0000");
	base.date = SLICE_LIT("Wed, 15 Nov 2023 08:00:00 +0000");
	base.token = SLICE_LIT("0QX7Z3K5A0000001");
	base.orig = &orig;
	base.norig = 1;
	base.rcpt = r;
	base.nrcpt = 1;

	r[0] = gen_rcpt("bob@remote.test");
	m = base;
	bad |= gen_write(argv[1], "single", &m);

	r[1] = gen_rcpt("carol@slow.test");
	r[1].action = BOUNCE_DELAYED;
	r[1].notify = SMTP_NOTIFY_DELAY | SMTP_NOTIFY_FAILURE;
	r[1].status = SLICE_LIT("4.4.1");
	r[1].remote_mta = SLICE_LIT("mx.slow.test");
	r[1].diag = SLICE_LIT("451 4.4.1 try again later");
	r[1].retry_until = SLICE_LIT("Sun, 19 Nov 2023 22:13:20 +0000");
	m.nrcpt = 2;
	bad |= gen_write(argv[1], "mixed", &m);

	r[0].notify = SMTP_NOTIFY_NEVER;
	m.nrcpt = 1;
	bad |= gen_write(argv[1], "never", &m);
	r[0].notify = 0;

	m.sender = SLICE_NULL;
	bad |= gen_write(argv[1], "nullsender", &m);
	m.sender = base.sender;

	m.ret = SMTP_RET_HDRS;
	bad |= gen_write(argv[1], "hdrs", &m);
	m.ret = SMTP_RET_FULL;

	m.full_limit = 64;
	bad |= gen_write(argv[1], "large", &m);
	m.full_limit = 0;

	r[0].orcpt = SLICE_LIT("rfc822;Bob+2Bsales@remote.test");
	m.envid = SLICE_LIT("QQ+2B314159");
	bad |= gen_write(argv[1], "orcpt_envid", &m);
	r[0].orcpt = SLICE_NULL;
	m.envid = SLICE_NULL;

	char *diag = malloc(3100);
	if (!diag)
		return 1;
	static const char head[] = "550 5.1.1 no\r\nBcc: victim@evil.test\r\x00\x7f\n\r\n";
	memcpy(diag, head, sizeof head - 1);
	memset(diag + sizeof head - 1, 'A', 3000);
	r[0].diag = slice_make(diag, sizeof head - 1 + 3000);
	r[0].remote_mta = SLICE_LIT("mx\r\nX-Evil: 1");
	bad |= gen_write(argv[1], "hostile", &m);
	free(diag);
	r[0] = gen_rcpt("\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.test");
	bad |= gen_write(argv[1], "utf8", &m);
	return bad;
}
