/* queue_client.h - ringmta-queue through a running daemon's control
 * socket (tools/serve_control.h has the protocol).
 * Main thread.
 */
#ifndef RINGMTA_TOOLS_QUEUE_CLIENT_H
#define RINGMTA_TOOLS_QUEUE_CLIENT_H

#include "tools/queue_opts.h"

/* queue_client_run - send o's command to the daemon on o->spool and print
 * its answer; the exit status, or -1 when no daemon answers on the socket
 * (no socket, or nobody listening: read the files instead) */
int queue_client_run(const struct queue_opts *o);

#endif
