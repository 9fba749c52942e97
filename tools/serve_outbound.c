/* serve_outbound.c - the daemon's delivery settings (tools/serve_outbound.h).
 *
 * Route and smarthost host names are resolved once here, at start-up, with
 * the system resolver; the addresses found are tried in order. Runs on the
 * main thread before the shards start.
 */
#include "tools/serve_outbound.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* serve_outbound_init - the outbound configuration from the settings */
int serve_outbound_init(struct serve_outbound *so, const struct ringmta_opts *o, const char *helo, char *err,
			size_t errlen)
{
	memset(so, 0, sizeof *so);
	so->routes = calloc(o->n_route ? o->n_route : 1, sizeof *so->routes);
	if (so->routes == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < o->n_route; i++) {
		snprintf(so->routes[i].domain, sizeof so->routes[i].domain, "%s", o->route[i].domain);
		if (outbound_hop_resolve(o->route[i].hop.host, o->route[i].hop.port, &so->routes[i].hop, err,
					 errlen) != RM_OK)
			return -1;
	}
	if (o->has_smarthost &&
	    outbound_hop_resolve(o->smarthost.host, o->smarthost.port, &so->smarthost, err, errlen) != RM_OK)
		return -1;
	so->cfg = (struct outbound_cfg){
		.helo = helo,
		.routes = so->routes,
		.nroutes = o->n_route,
		.smarthost = o->has_smarthost ? &so->smarthost : NULL,
		.mx_port = o->mx_port,
		.dns = o->has_dns ? o->dns.text : NULL,
		.sched = {
			.retry_s = o->retry_schedule,
			.nretry = o->n_retry_schedule,
			.lifetime_us = (uint64_t)o->max_queue_lifetime * 1000000ull,
			.max_conns = o->dest_max_connections,
			.max_msgs_per_conn = o->dest_max_messages_per_connection,
		},
	};
	/* enum opt_outbound_tls and enum outbound_tls_mode list the same
	 * modes in the same order */
	if (outbound_tls_cfg_init(&so->cfg.tls, (enum outbound_tls_mode)o->outbound_tls, o->outbound_ca, err,
				  errlen) != 0)
		return -1;
	if (outbound_global_init(&so->cfg) != RM_OK) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/* serve_outbound_fini - free what init made */
void serve_outbound_fini(struct serve_outbound *so)
{
	outbound_global_fini(&so->cfg);
	outbound_tls_cfg_fini(&so->cfg.tls);
	free(so->routes);
	so->routes = NULL;
}
