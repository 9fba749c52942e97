/* ringmta.c - the relay daemon's composition root: settings, then either
 * --check-config's listing or the run loop (tools/serve.c). Main thread. */
#include <stdio.h>

#include "tools/opts.h"

/* jemalloc's settings: a background thread purges freed pages while the
 * daemon idles (without it a burst of sessions, once closed, keeps its
 * memory resident until later allocator activity); dirty pages wait at
 * most a second, then go straight back to the kernel. The heap asks for
 * transparent huge pages: a growing queue (a next hop that is down) touches
 * fresh memory with every message, and one fault per 2 MiB instead of per
 * 4 KiB took the receiving path's page faults from 0.44 per message to none
 * (4% of its CPU; bench/README.md, "Receiving relay"). */
const char *malloc_conf = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0,thp:always";

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
