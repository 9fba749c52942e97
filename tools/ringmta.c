/* ringmta.c - the relay daemon's composition root: settings, then either
 * --check-config's listing or the run loop (tools/serve.c). Main thread. */
#include <stdio.h>

#include "tools/opts.h"

int main(int argc, char **argv)
{
	struct ringmta_opts o;
	int rc = opts_parse(&o, argc, argv);

	if (rc)
		return rc == 1 ? 0 : 2;
	if (o.check_config) {
		opts_print(&o, stdout);
		rc = fflush(stdout) == 0 ? 0 : 1;
	} else {
		rc = ringmta_serve(&o);
	}
	opts_free(&o);
	return rc;
}
