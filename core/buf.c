/* buf.c - appending to caller-owned byte buffers. Pure; any thread. */
#include "core/buf.h"

/* buf_put_u64 - append a decimal number, all or nothing */
int buf_put_u64(struct buf *b, unsigned long long v)
{
	char tmp[20];
	size_t n = 0;

	do {
		tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return buf_put(b, tmp + sizeof(tmp) - n, n);
}

/* buf_consume - drop the first n bytes (n <= len), moving the rest down */
void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->ptr, b->ptr + n, b->len - n);
	b->len -= n;
}
