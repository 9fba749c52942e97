/* evlog.h - one line per event on stderr, text or JSON (CONTRACT.md).
 *
 * Each line is formatted in a local buffer and written with one write(2),
 * so lines from different shards never interleave. Callable from any thread.
 * A shard's loop may batch the lines of one turn (evlog_batch_begin, then
 * evlog_batch_end at the loop boundary): one write(2) of at most PIPE_BUF
 * bytes carries several whole lines, at the price of losing that turn's
 * lines if the process dies before the end of the turn. Warnings and
 * errors are never held.
 */
#ifndef RINGMTA_NET_EVLOG_H
#define RINGMTA_NET_EVLOG_H

#include <stdbool.h>
#include <stdint.h>

/* evlog_init - choose the format (before any thread starts) */
void evlog_init(bool json);

/* evlog_msg - a free-form event: level is "info", "warn" or "error" */
void evlog_msg(const char *level, const char *event, const char *text);

/* evlog_received - a message was accepted (durably, for a durable store) */
void evlog_received(const char *queue_id, const char *client, const char *from, unsigned nrcpt,
		    uint64_t size);

/* evlog_session - a session ended */
void evlog_session(const char *client, uint64_t duration_ms, unsigned messages, const char *reason);

/* evlog_session_sec - a session ended; tls_version and tls_cipher when it
 * was encrypted, user when it authenticated (NULL or "" leave them out) */
void evlog_session_sec(const char *client, uint64_t duration_ms, unsigned messages, const char *reason,
		       const char *tls_version, const char *tls_cipher, const char *user);

/* evlog_batch_begin - the calling thread's lines wait (in a buffer of
 * PIPE_BUF bytes, written when full) for evlog_batch_end */
void evlog_batch_begin(void);

/* evlog_batch_end - write the calling thread's waiting lines and stop
 * batching; harmless when no batch was begun */
void evlog_batch_end(void);

/* evlog_reopen - SIGHUP: flush and reopen the log (stderr is inherited, so
 * reopening means re-checking it; a file given to us stays ours) */
void evlog_reopen(void);

/* evlog_delivery - one delivery attempt for one recipient: outcome is
 * delivered, deferred, bounced or expired; next_in_s 0 leaves it out */
void evlog_delivery(const char *queue_id, const char *rcpt, const char *hop, const char *outcome,
		    uint64_t delay_ms, const char *reply, uint64_t next_in_s);

#endif
