/* fuzz_proxy.c - the PROXY header parser: any bytes, fed whole and split at
 * a point the input chooses, must agree and never read past the input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fuzz_proxy_split - feed in two pieces, each in its own heap copy (ASan
 * catches a read past either) */
static int fuzz_proxy_split(struct proxy_parser *p, const uint8_t *d, size_t n, size_t k, size_t *used)
{
	size_t u1 = 0, u2 = 0;
	char *a = malloc(k ? k : 1), *b = malloc(n - k ? n - k : 1);
	int rc;

	memcpy(a, d, k);
	memcpy(b, d + k, n - k);
	rc = proxy_feed(p, a, k, &u1);
	if (rc == RM_AGAIN) {
		if (u1 != k)
			abort();
		rc = proxy_feed(p, b, n - k, &u2);
	}
	*used = u1 + u2;
	free(a);
	free(b);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_parser whole, split;
	size_t uw = 0, us = 0, k;
	int rw, rs;

	if (size < 1)
		return 0;
	k = data[0] % size; /* the first byte picks the split point */
	data++, size--;
	if (k > size)
		k = size;
	proxy_init(&whole);
	proxy_init(&split);
	rw = fuzz_proxy_split(&whole, data, size, size, &uw);
	rs = fuzz_proxy_split(&split, data, size, k, &us);
	if (rw != rs || uw > size)
		abort();
	if (rw == RM_OK && (uw != us || whole.hdr.length != uw || split.hdr.length != us ||
			    whole.hdr.family != split.hdr.family ||
			    memcmp(&whole.hdr.src, &split.hdr.src, sizeof(whole.hdr.src)) != 0 ||
			    memcmp(&whole.hdr.dst, &split.hdr.dst, sizeof(whole.hdr.dst)) != 0))
		abort();
	if (rw == RM_OK && whole.hdr.version == 1 && uw > PROXY_V1_MAX)
		abort();
	if (rw == RM_OK && whole.hdr.version == 2 && uw > 16 + PROXY_V2_MAX_BLOCK)
		abort();
	return 0;
}
