/* metrics.h - the HTTP endpoint: /metrics, /healthz, /readyz.
 *
 * Runs on its own thread with blocking sockets, one request at a time: it
 * must answer before the shards exist (start-up, recovery) and after they
 * are gone, a scrape is rare, and keeping it off the shards keeps their loop
 * free of HTTP. A slow client is cut after 2 s. /metrics sums the shards'
 * counters at scrape time (net_server_stats).
 */
#ifndef RINGMTA_NET_METRICS_H
#define RINGMTA_NET_METRICS_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>

#include "core/err.h"
#include "net/shard.h"

struct metrics;

/* metrics_start - bind addr and start answering (/readyz 503 until
 * metrics_set_ready); NULL on error with one line in err */
struct metrics *metrics_start(const struct sockaddr_storage *addr, socklen_t len, const char *text,
			      char *err, size_t errlen);

/* metrics_set_server - the server whose counters /metrics shows (or NULL) */
void metrics_set_server(struct metrics *m, struct net_server *s);

/* metrics_set_ready - /readyz answers 200 when ready and not draining */
void metrics_set_ready(struct metrics *m, bool ready);

/* metrics_stop - stop the thread and close; returns NULL */
struct metrics *metrics_stop(struct metrics *m);

/* metrics_render - the Prometheus text for st into f (for tests too) */
void metrics_render(const struct shard_stats *st, unsigned open, FILE *f);

#endif
