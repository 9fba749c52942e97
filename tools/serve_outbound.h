/* serve_outbound.h - the delivery settings of the daemon: --smarthost,
 * --route, --mx-port, --outbound-tls, --dest-max-*, --retry-schedule and
 * --max-queue-lifetime into a struct outbound_cfg (net/outbound.h). */
#ifndef RINGMTA_TOOLS_SERVE_OUTBOUND_H
#define RINGMTA_TOOLS_SERVE_OUTBOUND_H

#include <stddef.h>

#include "net/outbound.h"
#include "tools/opts.h"

struct serve_outbound {
	struct outbound_cfg cfg;
	struct outbound_route *routes;
	struct outbound_hop smarthost;
};

/* serve_outbound_init - resolve the next hops (blocking, at start-up) and
 * set up the shared destination table; -1 with one line in err */
int serve_outbound_init(struct serve_outbound *so, const struct ringmta_opts *o, const char *helo,
			char *err, size_t errlen);

/* serve_outbound_fini - free what init made */
void serve_outbound_fini(struct serve_outbound *so);

#endif
