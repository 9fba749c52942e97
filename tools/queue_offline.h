/* queue_offline.h - ringmta-queue without a daemon to talk to: the spool
 * files read directly.
 *
 * list, show and stats scan every shard read-only (spool_scan over the
 * read-only POSIX backend), so they work and change nothing even while a
 * daemon holds the spool. delete and flush need the spool's lock: delete
 * takes it and appends a synced journal record marking every recipient
 * deleted; while a daemon holds the lock both report that the operation
 * needs the daemon's control socket and fail. The control-socket client
 * (tools/queue_client.c) is tried first; the daemon's end of the socket
 * (tools/serve_control.c) answers list, show and stats with this module's
 * report, so both print the same. Any one thread at a time.
 */
#ifndef RINGMTA_TOOLS_QUEUE_OFFLINE_H
#define RINGMTA_TOOLS_QUEUE_OFFLINE_H

#include <stdbool.h>
#include <stdio.h>

#include "tools/queue_opts.h"

/* queue_offline_run - carry out o's command on o->spool; returns the exit
 * status: 0 done, 1 no such message or the spool cannot be used (one line
 * on stderr) */
int queue_offline_run(const struct queue_opts *o);

/* queue_offline_report - list, show or stats (o->cmd) from a read-only
 * scan, the output to out and the one-line error to err; the exit status
 * as queue_offline_run's. The daemon's control socket answers with it
 * too. */
int queue_offline_report(const struct queue_opts *o, FILE *out, FILE *err);

/* queue_offline_delete_text - the line delete prints for a deleted id */
void queue_offline_delete_text(FILE *out, const char *id, bool json);

#endif
