/* fuzz_spool_rec.c - the spool record scanner and payload decoders on
 * arbitrary bytes, as recovery meets them in a damaged segment: scan record
 * after record, decode every commit and journal payload, and check that a
 * decoded commit re-encodes to the very same record. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/spool_rec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	struct arena a;
	size_t off = 0, used;
	struct spool_rec r;

	arena_init(&a, &rm_alloc_libc, 1 << 16, 1 << 24);
	while (off < size && spool_rec_next(p + off, size - off, &r, &used) == SPOOL_SCAN_OK) {
		if (r.type == SPOOL_REC_COMMIT) {
			struct spool_env e;
			if (spool_rec_commit_decode(r.payload, &a, &e) == RM_OK) {
				size_t n = spool_rec_commit_size(&e);
				char *mem = malloc(n ? n : 1);
				struct buf b;
				buf_init(&b, mem, n);
				if (n != used || spool_rec_commit_encode(&b, &e) != RM_OK ||
				    memcmp(mem, p + off, n) != 0)
					abort();
				free(mem);
			}
			arena_reset(&a);
		} else if (r.type == SPOOL_REC_JOURNAL) {
			struct spool_jrec j;
			(void)spool_rec_journal_decode(r.payload, &j);
		}
		off += used;
	}
	arena_free(&a);
	return 0;
}
