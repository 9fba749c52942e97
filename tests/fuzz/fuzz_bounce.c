/* fuzz_bounce.c - the DSN builder on a fuzzed remote reply, recipient
 * address, ORCPT, ENVID and original message.
 *
 * Input: flags (bit 0: RET=HDRS; bit 1: a second, delayed recipient;
 * bit 2: tiny full_limit; bits 4-7: original split bound), the reply's length
 * (2 bytes, big-endian), the address's, ORCPT's and ENVID's (1 byte each),
 * those fields, then the original. Each piece lives in its own exact-size
 * allocation so ASan sees any read past it.
 * Properties: the report is RM_OK (or RM_EPROTO for an original holding
 * every boundary tried); every line ends in CRLF with no CR or LF elsewhere
 * and has at most 998 octets; the boundary delimits exactly three parts
 * and closes once, at the end; the lengths add up.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/bounce.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fuzz_check - abort (a finding) when a property does not hold */
static void fuzz_check(int ok)
{
	if (!ok)
		abort();
}

/* fuzz_take - the next n bytes of the input as a slice (clamped) */
static struct slice fuzz_take(const uint8_t **p, size_t *left, size_t n)
{
	if (n > *left)
		n = *left;
	struct slice s = slice_make((const char *)*p, n);
	*p += n;
	*left -= n;
	return s;
}

/* fuzz_count_lines - whole lines of f[0..n) equal to s */
static size_t fuzz_count_lines(const char *f, size_t n, const char *s, size_t sl)
{
	size_t k = 0;
	for (size_t i = 0; i + sl + 2 <= n; i++)
		if ((i == 0 || f[i - 1] == '\n') && memcmp(f + i, s, sl) == 0 && f[i + sl] == '\r')
			k++;
	return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 6)
		return 0;
	uint8_t flags = data[0];
	size_t dl = ((size_t)data[1] << 8) | data[2], al = data[3], ol = data[4], el = data[5];
	const uint8_t *p = data + 6;
	size_t left = size - 6;
	struct bounce_rcpt r[2];

	memset(r, 0, sizeof r);
	r[0].diag = fuzz_take(&p, &left, dl);
	r[0].addr = fuzz_take(&p, &left, al);
	r[0].orcpt = fuzz_take(&p, &left, ol);
	r[0].remote_mta = r[0].orcpt;
	r[0].status = r[0].orcpt;
	r[0].action = BOUNCE_FAILED;
	r[1] = r[0];
	r[1].action = BOUNCE_DELAYED;
	r[1].notify = SMTP_NOTIFY_DELAY;
	r[1].retry_until = r[0].diag;

	struct bounce_msg m;
	memset(&m, 0, sizeof m);
	m.envid = fuzz_take(&p, &left, el);
	m.hostname = SLICE_LIT("mx.test");
	m.sender = r[0].addr.len ? r[0].addr : SLICE_LIT("a@b.test");
	m.ret = (flags & 1) ? SMTP_RET_HDRS : SMTP_RET_FULL;
	m.arrival_us = size;
	m.arrival_date = m.envid;
	m.date = SLICE_LIT("Wed, 15 Nov 2023 08:00:00 +0000");
	m.token = SLICE_LIT("FUZZ");
	m.full_limit = (flags & 4) ? 40 : 0;
	m.rcpt = r;
	m.nrcpt = (flags & 2) ? 2 : 1;

	/* the original in pieces, each its own allocation */
	size_t bound = ((size_t)(flags >> 4) + 1) * 7, npieces = left / bound + 1;
	struct slice *pieces = calloc(npieces, sizeof *pieces);
	fuzz_check(pieces != NULL);
	size_t np = 0;
	while (left) {
		struct slice s = fuzz_take(&p, &left, bound);
		char *c = malloc(s.len);
		fuzz_check(c != NULL);
		memcpy(c, s.ptr, s.len);
		pieces[np++] = slice_make(c, s.len);
	}
	m.orig = pieces;
	m.norig = np;

	struct arena a;
	struct bounce_out o;
	arena_init(&a, &rm_alloc_libc, 4096, 64u << 20);
	int rc = bounce_build(&m, &a, &o);
	fuzz_check(rc == RM_OK || rc == RM_EPROTO);
	if (rc == RM_OK) {
		char *f = malloc(o.len + 1);
		size_t n = 0, col = 0;
		fuzz_check(f != NULL);
		for (size_t i = 0; i < o.nv; i++) {
			memcpy(f + n, o.v[i].ptr, o.v[i].len);
			n += o.v[i].len;
		}
		fuzz_check(n == o.len);
		for (size_t i = 0; i < n; i++) {
			if (f[i] == '\r') {
				fuzz_check(i + 1 < n && f[i + 1] == '\n');
				i++;
				col = 0;
			} else {
				fuzz_check(f[i] != '\n');
				fuzz_check(++col <= 998);
			}
		}
		fuzz_check(col == 0);
		f[n] = '\0';
		static const char ct[] = "report-type=delivery-status;\r\n\tboundary=\"";
		const char *b = strstr(f, ct);
		fuzz_check(b != NULL);
		b += sizeof ct - 1;
		const char *e = memchr(b, '"', n - (size_t)(b - f));
		fuzz_check(e != NULL && e > b && e - b <= 70);
		char d[80];
		size_t bl = (size_t)(e - b);
		d[0] = d[1] = '-';
		memcpy(d + 2, b, bl);
		fuzz_check(fuzz_count_lines(f, n, d, bl + 2) == 3);
		memcpy(d + 2 + bl, "--\r\n", 4);
		fuzz_check(n >= bl + 6 && memcmp(f + n - bl - 6, d, bl + 6) == 0);
		free(f);
	}
	arena_free(&a);
	for (size_t i = 0; i < np; i++)
		free((void *)pieces[i].ptr);
	free(pieces);
	return 0;
}
