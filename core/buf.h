/* buf.h - a byte buffer over memory the caller owns.
 *
 * No allocation: the caller gives the storage and its capacity; appending
 * past the capacity fails with RM_ENOMEM and leaves the buffer unchanged.
 */
#ifndef RINGMTA_CORE_BUF_H
#define RINGMTA_CORE_BUF_H

#include <stddef.h>
#include <string.h>

#include "core/err.h"
#include "core/slice.h"

struct buf {
	char *ptr;
	size_t len;
	size_t cap;
};

/* buf_init - an empty buffer over mem[0..cap) */
static inline void buf_init(struct buf *b, char *mem, size_t cap)
{
	b->ptr = mem;
	b->len = 0;
	b->cap = cap;
}

/* buf_room - bytes that can still be appended */
static inline size_t buf_room(const struct buf *b)
{
	return b->cap - b->len;
}

/* buf_put - append n bytes, all or nothing */
RM_MUST_USE static inline int buf_put(struct buf *b, const void *p, size_t n)
{
	if (n > b->cap - b->len)
		return RM_ENOMEM;
	if (n)
		memcpy(b->ptr + b->len, p, n);
	b->len += n;
	return RM_OK;
}

/* buf_put_slice - append a slice, all or nothing */
RM_MUST_USE static inline int buf_put_slice(struct buf *b, struct slice s)
{
	return buf_put(b, s.ptr, s.len);
}

/* buf_put_str - append a NUL-terminated string, all or nothing */
RM_MUST_USE static inline int buf_put_str(struct buf *b, const char *s)
{
	return buf_put(b, s, strlen(s));
}

/* buf_put_u64 - append a decimal number, all or nothing */
RM_MUST_USE int buf_put_u64(struct buf *b, unsigned long long v);

/* buf_consume - drop the first n bytes (n <= len), moving the rest down */
void buf_consume(struct buf *b, size_t n);

/* buf_slice - the contents as a slice, valid until the next change */
static inline struct slice buf_slice(const struct buf *b)
{
	return slice_make(b->ptr, b->len);
}

#endif
