/* config.h - the "key = value" configuration file format, over a buffer.
 *
 * The caller reads the whole file into memory; config_next walks it one
 * setting at a time. Rules:
 *  - lines end in LF; a CR right before the LF is dropped; the last line
 *    needs no LF;
 *  - SP and HTAB around keys and values are ignored; a line that is blank or
 *    whose first other byte is '#' is a comment;
 *  - a setting is KEY = VALUE. KEY is a lower-case letter followed by
 *    lower-case letters, digits and '-'. VALUE is what follows the first
 *    '=', up to a '#' that follows SP or HTAB (a trailing comment), trimmed,
 *    and must not be empty;
 *  - control bytes other than HTAB (NUL, a CR not before LF, DEL) are errors;
 *    bytes >= 0x80 may appear in values (UTF-8 file names);
 *  - lines are at most CONFIG_LINE_MAX bytes.
 * The meaning of keys and values is the caller's business (repeated keys are
 * reported each time, in order). Entries are slices into the buffer, valid as
 * long as it is. Pure; no allocation; one owner per parser.
 */
#ifndef RINGMTA_CORE_CONFIG_H
#define RINGMTA_CORE_CONFIG_H

#include <stddef.h>

#include "core/err.h"
#include "core/slice.h"

#define CONFIG_LINE_MAX 4096 /* bytes, line ending excluded */

struct config_entry {
	struct slice key;
	struct slice value;
	unsigned line; /* 1-based */
};

struct config_error {
	unsigned line;   /* 1-based line of the error */
	const char *msg; /* a constant phrase, e.g. "missing '='" */
};

struct config_parser {
	const char *_p;
	size_t _len;
	size_t _off;    /* start of the next line */
	unsigned _line; /* lines consumed so far */
	int _failed;    /* an error was returned; stay failed */
};

/* config_init - ready to walk p[0..len) */
void config_init(struct config_parser *c, const char *p, size_t len);

/* config_next - the next setting: 1 with *e filled, 0 at the end of the
 * buffer, RM_EPROTO with *err filled (and again on every later call) */
RM_MUST_USE int config_next(struct config_parser *c, struct config_entry *e, struct config_error *err);

#endif
