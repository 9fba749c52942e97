/* ringmta-queue.c - ringmta-queue's composition root. For now it parses and checks its
 * flags (tools/queue_opts.c); the program's body comes later. Main thread. */
#include <stdio.h>

#include "tools/queue_opts.h"

int main(int argc, char **argv)
{
	struct queue_opts o;
	int rc = queue_opts_parse(&o, argc, argv);

	if (rc)
		return rc == 1 ? 0 : 2;
	fputs("ringmta-queue: not implemented yet\n", stderr);
	return 1;
}
