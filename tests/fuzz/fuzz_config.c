/* fuzz_config.c - the config file walker: any bytes, no crash, no read past
 * the buffer, every entry within the rules of core/config.h. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size ? size : 1); /* exact size: ASan sees overreads */
	struct config_parser c;
	struct config_entry e;
	struct config_error err;
	unsigned last_line = 0;
	int rc;

	memcpy(copy, data, size);
	config_init(&c, copy, size);
	while ((rc = config_next(&c, &e, &err)) == 1) {
		if (e.key.len == 0 || e.value.len == 0 || e.line <= last_line)
			abort();
		if (e.key.ptr < copy || e.value.ptr + e.value.len > copy + size)
			abort();
		if (memchr(e.value.ptr, '\n', e.value.len) || memchr(e.key.ptr, '=', e.key.len))
			abort();
		last_line = e.line;
	}
	if (rc != 0 && (rc != RM_EPROTO || err.msg == NULL || err.line == 0))
		abort();
	free(copy);
	return 0;
}
