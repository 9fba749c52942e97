/* fuzz_smtp_data.c - the DATA/BDAT scanner against the naive model.
 *
 * Input: one control byte (bit 0: BDAT raw mode; bits 1-2: slice room 1, 2,
 * 3 or 64), then the body. The body is fed in pieces whose lengths come from
 * a generator seeded by the body itself, each piece in its own exact-size
 * allocation so ASan sees any read past it. The concatenated slices, bytes
 * consumed, done flag and counters must equal data_ref_run's on the whole
 * body, and every slice must lie in its piece or in the scanner's constants.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/smtp_data.h"
#include "tests/unit/core/data_ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fuzz_check - abort (a finding) when a property does not hold */
static void fuzz_check(int ok)
{
	if (!ok)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t caps[] = { 1, 2, 3, 64 };
	struct slice v[64];
	struct smtp_data d;
	struct data_ref r;
	uint64_t seed = 0x9e3779b97f4a7c15ull;

	if (size < 1)
		return 0;
	bool raw = data[0] & 1;
	size_t cap = caps[(data[0] >> 1) & 3];
	const char *in = (const char *)data + 1;
	size_t len = size - 1, pos = 0, consumed = 0, nout = 0;
	char *out = malloc(2 * len + 2);
	r.out = malloc(2 * len + 2);
	fuzz_check(out && r.out);

	for (size_t i = 0; i < len; i++)
		seed = (seed ^ (uint8_t)in[i]) * 0x100000001b3ull;
	raw ? smtp_data_init_raw(&d) : smtp_data_init(&d);
	while (pos < len && !smtp_data_done(&d)) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		size_t k = 1 + (size_t)(seed >> 33) % (seed & 1 ? 7 : len - pos);
		if (k > len - pos)
			k = len - pos;
		char *piece = malloc(k);
		fuzz_check(piece != NULL);
		memcpy(piece, in + pos, k);
		const char *p = piece;
		size_t n = k;
		while (n > 0 && !smtp_data_done(&d)) {
			struct smtp_data_out o = { v, 0, cap };
			size_t c = smtp_data_scan(&d, p, n, &o);
			fuzz_check(c <= n && o.n <= cap && (c > 0 || o.n > 0));
			fuzz_check(c == n || smtp_data_done(&d) || o.n == cap);
			for (size_t i = 0; i < o.n; i++) {
				bool inside = v[i].ptr >= piece && v[i].ptr + v[i].len <= piece + k;
				fuzz_check(v[i].len > 0 && (inside || smtp_data_slice_static(v[i])));
				fuzz_check(nout + v[i].len <= 2 * len + 2);
				memcpy(out + nout, v[i].ptr, v[i].len);
				nout += v[i].len;
			}
			p += c;
			n -= c;
			consumed += c;
		}
		free(piece);
		pos += k;
	}

	data_ref_run(in, len, raw, &r);
	fuzz_check(nout == r.nout && memcmp(out, r.out, nout) == 0);
	fuzz_check(consumed == r.consumed && smtp_data_done(&d) == r.done);
	fuzz_check(smtp_data_received(&d) == r.received && smtp_data_normalised(&d) == r.normalised);
	fuzz_check(smtp_data_bytes(&d) == nout);
	free(out);
	free(r.out);
	return 0;
}
