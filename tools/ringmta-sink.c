/* ringmta-sink.c - ringmta-sink's composition root. For now it parses and checks its
 * flags (tools/sink_opts.c); the program's body comes later. Main thread. */
#include <stdio.h>

#include "tools/sink_opts.h"

int main(int argc, char **argv)
{
	struct sink_opts o;
	int rc = sink_opts_parse(&o, argc, argv);

	if (rc)
		return rc == 1 ? 0 : 2;
	fputs("ringmta-sink: not implemented yet\n", stderr);
	return 1;
}
