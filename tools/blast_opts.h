/* blast_opts.h - ringmta-blast's settings (CONTRACT.md "ringmta-blast").
 *
 * Strings point into argv or into constants: valid while main runs.
 */
#ifndef RINGMTA_TOOLS_BLAST_OPTS_H
#define RINGMTA_TOOLS_BLAST_OPTS_H

#include <stdbool.h>
#include <stdint.h>

#include "tools/opttab.h"

struct blast_opts {
	struct opt_hostport target; /* required */
	unsigned connections;       /* concurrent sessions */
	uint64_t messages;          /* in all */
	uint64_t size;              /* whole message in bytes, headers included */
	unsigned rcpts;             /* recipients per message */
	const char *from;           /* "{n}" is replaced by a running number */
	const char *to;
	bool starttls;
	bool bdat;
	unsigned duration; /* seconds; 0: until --messages are sent */
	unsigned rate;     /* messages per second; 0: as fast as possible */
	unsigned threads;
	bool json;
};

/* blast_opts_parse - defaults, then argv. Returns 0, 1 after --help or
 * --version was printed (exit 0), or 2 after one line on stderr (exit 2) */
int blast_opts_parse(struct blast_opts *o, int argc, char **argv);

#endif
