/* glob.c - wildcard matching without recursion.
 *
 * Invariant: p and i only move forward except when a mismatch sends them
 * back to just after the last '*' (star) and one byte further into s
 * (mark), and mark itself only grows: O(len(pattern) * len(s)) at worst,
 * no stack. Pure.
 */
#include "core/glob.h"

#include <stdint.h>

/* glob_match - does all of s match all of pattern */
bool glob_match(struct slice pattern, struct slice s)
{
	size_t p = 0, i = 0, star = SIZE_MAX, mark = 0;

	while (i < s.len) {
		if (p < pattern.len && pattern.ptr[p] == '*') {
			star = ++p;
			mark = i;
		} else if (p < pattern.len &&
			   (pattern.ptr[p] == '?' || ascii_lower(pattern.ptr[p]) == ascii_lower(s.ptr[i]))) {
			p++;
			i++;
		} else if (star != SIZE_MAX) {
			p = star;
			i = ++mark;
		} else {
			return false;
		}
	}
	while (p < pattern.len && pattern.ptr[p] == '*')
		p++;
	return p == pattern.len;
}
