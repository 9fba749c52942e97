/* sink_opts.h - ringmta-sink's settings (CONTRACT.md "ringmta-sink").
 *
 * Strings point into argv or into constants: valid while main runs.
 */
#ifndef RINGMTA_TOOLS_SINK_OPTS_H
#define RINGMTA_TOOLS_SINK_OPTS_H

#include <stdbool.h>
#include <stddef.h>

#include "tools/opttab.h"

#define SINK_FAIL_RCPT_MAX 64

/* --fail-rcpt PATTERN=CODE: recipients matching PATTERN ('*' any run) get CODE */
struct sink_fail_rcpt {
	const char *pattern; /* points into the argument, NUL-terminated copy below */
	char _pattern[256];
	unsigned code; /* 400..599 */
};

struct sink_opts {
	struct opt_addr listen;
	unsigned threads;
	const char *dump; /* directory for <n>.eml files, or NULL */
	struct sink_fail_rcpt fail_rcpt[SINK_FAIL_RCPT_MAX];
	size_t n_fail_rcpt;
	bool advertise_chunking;
	const char *tls_cert; /* both or neither */
	const char *tls_key;
};

/* sink_opts_parse - defaults, then argv. Returns 0, 1 after --help or
 * --version was printed (exit 0), or 2 after one line on stderr (exit 2) */
int sink_opts_parse(struct sink_opts *o, int argc, char **argv);

#endif
