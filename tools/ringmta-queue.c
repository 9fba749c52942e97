/* ringmta-queue.c - ringmta-queue's composition root: flags and command
 * (tools/queue_opts.c), then the command carried out on the spool files
 * (tools/queue_offline.c). When the daemon grows its control socket, a
 * client for it goes beside the offline reader and is chosen here when the
 * socket answers. Main thread. */
#include <stdio.h>

#include "tools/queue_offline.h"
#include "tools/queue_opts.h"

int main(int argc, char **argv)
{
	struct queue_opts o;
	int rc = queue_opts_parse(&o, argc, argv);

	if (rc)
		return rc == 1 ? 0 : 2;
	return queue_offline_run(&o);
}
