/* queue_opts.h - ringmta-queue's settings and command (CONTRACT.md
 * "ringmta-queue"): --spool DIR [--json] COMMAND [ID].
 *
 * Strings point into argv: valid while main runs.
 */
#ifndef RINGMTA_TOOLS_QUEUE_OPTS_H
#define RINGMTA_TOOLS_QUEUE_OPTS_H

#include <stdbool.h>

enum queue_cmd { QUEUE_CMD_LIST, QUEUE_CMD_SHOW, QUEUE_CMD_DELETE, QUEUE_CMD_FLUSH, QUEUE_CMD_STATS };

#define QUEUE_ID_MAX 64

struct queue_opts {
	const char *spool; /* an existing directory */
	bool json;
	enum queue_cmd cmd;
	const char *id; /* show and delete: letters and digits; else NULL */
};

/* queue_opts_parse - argv. Returns 0, 1 after --help or --version was
 * printed (exit 0), or 2 after one line on stderr (exit 2) */
int queue_opts_parse(struct queue_opts *o, int argc, char **argv);

#endif
