/* slice.c - helpers over borrowed byte views. Pure; any thread. */
#include "core/slice.h"

/* slice_starts_nocase - does s begin with prefix, ASCII case-insensitively */
bool slice_starts_nocase(struct slice s, struct slice prefix)
{
	return s.len >= prefix.len && slice_eq_nocase(slice_make(s.ptr, prefix.len), prefix);
}

/* slice_sub - s[off..off+len), clamped to s */
struct slice slice_sub(struct slice s, size_t off, size_t len)
{
	if (off > s.len)
		off = s.len;
	if (len > s.len - off)
		len = s.len - off;
	return slice_make(s.ptr + off, len);
}

/* slice_trim - s without leading and trailing SP and HTAB */
struct slice slice_trim(struct slice s)
{
	while (s.len && (s.ptr[0] == ' ' || s.ptr[0] == '\t')) {
		s.ptr++;
		s.len--;
	}
	while (s.len && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t'))
		s.len--;
	return s;
}

/* slice_to_u64 - parse all of s as an unsigned decimal no larger than max */
bool slice_to_u64(struct slice s, unsigned long long max, unsigned long long *out)
{
	unsigned long long v = 0;

	if (s.len == 0)
		return false;
	for (size_t i = 0; i < s.len; i++) {
		unsigned d = (unsigned char)s.ptr[i] - '0';
		if (d > 9 || v > (max - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}
