/* queue_print.h - ringmta-queue's output: list, show and stats of queued
 * messages as text or JSON (CONTRACT.md "ringmta-queue").
 *
 * The printers take messages in the spool's own terms (struct spool_msg,
 * as recovery or a read-only scan returns them), whoever produced them: the
 * offline reader today, a control-socket client later. They never fail on
 * odd bytes: text output shows control bytes as \xNN, JSON strings are
 * escaped and invalid UTF-8 becomes U+FFFD. Main thread.
 */
#ifndef RINGMTA_TOOLS_QUEUE_PRINT_H
#define RINGMTA_TOOLS_QUEUE_PRINT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/slice.h"
#include "queue/spool.h"

/* queue_print_json_str - s as a JSON string literal, quotes included */
void queue_print_json_str(FILE *out, struct slice s);

/* queue_print_time - µs since the epoch as RFC 3339 UTC ("...Z") into
 * out (at least 32 bytes) */
void queue_print_time(uint64_t us, char out[32]);

/* queue_print_rcpt_state - "pending", "deferred", "delivered", "bounced",
 * "expired" or "deleted" */
const char *queue_print_rcpt_state(const struct spool_rstate *rs);

/* queue_print_size - the message's size as it will be relayed: the
 * Received: header plus the stored body */
uint64_t queue_print_size(const struct spool_msg *m);

/* queue_print_list - every message: one text line each, or a JSON array */
void queue_print_list(FILE *out, const struct spool_msg *const *msg, size_t n, bool json);

/* queue_print_show - one message's envelope, recipients and headers
 * (hdr[0..hlen), or hdr NULL when the body could not be read) */
void queue_print_show(FILE *out, const struct spool_msg *m, const char *hdr, size_t hlen,
		      bool json);

/* queue_print_stats - counts of the recipients still queued by state and
 * by next hop (offline: the recipient's domain) */
void queue_print_stats(FILE *out, const struct spool_msg *const *msg, size_t n, bool json);

#endif
