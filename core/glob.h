/* glob.h - shell-style wildcard matching of addresses ('*' any run of
 * bytes, '?' any one byte, everything else itself, ASCII case-insensitive).
 *
 * Used for ringmta-sink's --fail-rcpt patterns. Linear time and no
 * recursion (the classic two-pointer walk that backtracks only to the last
 * '*'), so a hostile pattern or address cannot make it slow. Pure.
 */
#ifndef RINGMTA_CORE_GLOB_H
#define RINGMTA_CORE_GLOB_H

#include <stdbool.h>

#include "core/slice.h"

/* glob_match - does all of s match all of pattern */
bool glob_match(struct slice pattern, struct slice s);

#endif
