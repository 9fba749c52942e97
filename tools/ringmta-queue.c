/* ringmta-queue.c - ringmta-queue's composition root: flags and command
 * (tools/queue_opts.c), then the command sent to the daemon's control
 * socket when a daemon answers there (tools/queue_client.c), else carried
 * out on the spool files (tools/queue_offline.c). Main thread. */
#include <stdio.h>

#include "tools/queue_client.h"
#include "tools/queue_offline.h"
#include "tools/queue_opts.h"

int main(int argc, char **argv)
{
	struct queue_opts o;
	int rc = queue_opts_parse(&o, argc, argv);

	if (rc)
		return rc == 1 ? 0 : 2;
	rc = queue_client_run(&o);
	return rc >= 0 ? rc : queue_offline_run(&o);
}
