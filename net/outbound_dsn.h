/* outbound_dsn.h - delivery status notifications for the delivery module
 * (net/outbound_dsn.c): the outcomes of one message's delivery round become
 * one RFC 3464 report (queue/bounce.h), queued through the spool store as
 * a new durable message from <> to the original sender.
 */
#ifndef RINGMTA_NET_OUTBOUND_DSN_H
#define RINGMTA_NET_OUTBOUND_DSN_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "net/store.h"
#include "queue/bounce.h"
#include "queue/spool_rec.h"

#define OUTBOUND_DSN_TEXT 256

/* One recipient's outcome to report: index into the message's envelope. */
struct outbound_dsn_item {
	uint32_t rcpt;
	enum bounce_action action;
	char status[BOUNCE_STATUS_LEN]; /* "" : from diag's enhanced code */
	char diag[OUTBOUND_DSN_TEXT];   /* the reply, "550 5.1.1 ..." */
	char remote[OUTBOUND_DSN_TEXT]; /* next hop, or "" */
};

/* outbound_dsn_status - the Status for action from a reply text "CODE
 * X.Y.Z ..." (its enhanced code when it has one of the right class) */
void outbound_dsn_status(enum bounce_action act, const char *reply, char out[BOUNCE_STATUS_LEN]);

/* outbound_dsn_send - report it[0..n) of the message env (queue ID id) to
 * its sender, from hostname: the original is read back from ref's spool
 * (blocking; only what the report can hold), the report is built and
 * injected on ref. RM_OK with *queued 0 when nobody is to be told (null
 * sender, NOTIFY rules); *queued 1 when a report was queued, its queue ID
 * then in report[0..MSGID_LEN] (when report is not NULL). Runs on the
 * shard's thread. */
RM_MUST_USE int outbound_dsn_send(const struct store_spool_ref *ref, const char *hostname,
				  const struct spool_env *env, const char *id,
				  const struct outbound_dsn_item *it, size_t n, int *queued, char *report);

#endif
