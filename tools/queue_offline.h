/* queue_offline.h - ringmta-queue without a daemon to talk to: the spool
 * files read directly.
 *
 * list, show and stats scan every shard read-only (spool_scan over the
 * read-only POSIX backend), so they work and change nothing even while a
 * daemon holds the spool. delete and flush need the spool's lock: delete
 * takes it and appends a synced journal record marking every recipient
 * deleted; while a daemon holds the lock both report that the operation
 * needs the daemon's control socket and fail. A control-socket client goes
 * beside this module and uses the same printers (tools/queue_print.h).
 * Main thread.
 */
#ifndef RINGMTA_TOOLS_QUEUE_OFFLINE_H
#define RINGMTA_TOOLS_QUEUE_OFFLINE_H

#include "tools/queue_opts.h"

/* queue_offline_run - carry out o's command on o->spool; returns the exit
 * status: 0 done, 1 no such message or the spool cannot be used (one line
 * on stderr) */
int queue_offline_run(const struct queue_opts *o);

#endif
