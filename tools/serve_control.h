/* serve_control.h - the daemon's control socket (CONTRACT.md
 * "ringmta-queue"): a Unix stream socket "control" in the spool directory,
 * mode 0600, owned by the daemon's user, served by one small thread.
 *
 * Protocol: the client sends one line, COMMAND [ID] [JSON], where COMMAND
 * is LIST, SHOW, DELETE, FLUSH or STATS; the daemon answers
 * "STATUS OUTLEN ERRLEN\n", then OUTLEN bytes for the client's stdout and
 * ERRLEN bytes for its stderr, and closes. STATUS is ringmta-queue's exit
 * status. LIST, SHOW and STATS are a read-only scan of the spool printed by
 * tools/queue_print.c (what ringmta-queue prints offline); DELETE and FLUSH
 * go to the shards through their control inboxes (net/outbound.h).
 */
#ifndef RINGMTA_TOOLS_SERVE_CONTROL_H
#define RINGMTA_TOOLS_SERVE_CONTROL_H

#include <stddef.h>

#include "net/outbound.h"

#define SERVE_CONTROL_NAME "control"  /* the socket's name in the spool */
#define SERVE_CONTROL_LINE 256        /* longest request line */

struct serve_control;

/* serve_control_start - bind the socket (replacing a stale one: the caller
 * holds the spool's lock) and start its thread; NULL with one line in err.
 * Call after privileges are dropped (the socket then belongs to the
 * daemon's user) and before the shards start (the umask is process-wide).
 * g and spool must outlive it. */
struct serve_control *serve_control_start(const char *spool, struct outbound_cfg *g, unsigned shards,
					  char *err, size_t errlen);

/* serve_control_stop - stop the thread, remove the socket; returns NULL */
struct serve_control *serve_control_stop(struct serve_control *c);

#endif
