/* slice.h - a view of bytes owned by someone else.
 *
 * A slice never owns its bytes. Whoever hands one out says in its header how
 * long the bytes stay valid (usually: until the next call into that module).
 */
#ifndef RINGMTA_CORE_SLICE_H
#define RINGMTA_CORE_SLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct slice {
	const char *ptr;
	size_t len;
};

#define SLICE_LIT(s) ((struct slice){ (s), sizeof(s) - 1 })
#define SLICE_NULL ((struct slice){ NULL, 0 })

/* slice_make - a slice of ptr[0..len) */
static inline struct slice slice_make(const char *ptr, size_t len)
{
	return (struct slice){ ptr, len };
}

/* slice_cstr - a slice of a NUL-terminated string (without the NUL) */
static inline struct slice slice_cstr(const char *s)
{
	return (struct slice){ s, strlen(s) };
}

/* slice_eq - byte-for-byte equality */
static inline bool slice_eq(struct slice a, struct slice b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* ascii_lower - ASCII lower-casing that ignores the locale */
static inline char ascii_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

/* slice_eq_nocase - ASCII case-insensitive equality (inline: the command
 * and parameter parsers compare keywords with it on every line) */
static inline bool slice_eq_nocase(struct slice a, struct slice b)
{
	if (a.len != b.len)
		return false;
	for (size_t i = 0; i < a.len; i++)
		if (ascii_lower(a.ptr[i]) != ascii_lower(b.ptr[i]))
			return false;
	return true;
}

/* slice_starts_nocase - does s begin with prefix, ASCII case-insensitively */
bool slice_starts_nocase(struct slice s, struct slice prefix);

/* slice_sub - s[off..off+len), clamped to s */
struct slice slice_sub(struct slice s, size_t off, size_t len);

/* slice_trim - s without leading and trailing SP and HTAB */
struct slice slice_trim(struct slice s);

/* slice_to_u64 - parse all of s as a decimal number without sign; false on
 * an empty slice, any other byte or overflow past max */
bool slice_to_u64(struct slice s, unsigned long long max, unsigned long long *out);

#endif
