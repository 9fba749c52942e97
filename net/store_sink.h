/* store_sink.h - ringmta-sink's message store: counts, and optionally
 * dumps each message to a file.
 *
 * Without a dump directory it keeps nothing (like the null store) and only
 * counts messages, recipients and bytes. With one, each message's body is
 * gathered in memory as it arrives and written at commit, with plain
 * blocking writes on the shard's thread (a test tool: simplicity beats the
 * last microsecond), as DIR/<n>.eml: first "X-Sink-From: <sender>", then
 * one "X-Sink-To: <rcpt>" per recipient, then the message as received (the
 * trace header is not added). n counts from 1 across every shard, in commit
 * order. Commits are reported at the shard's loop boundary; a failed write
 * reports RM_EIO (the client gets 451).
 *
 * struct store_sink is shared by every shard (store_global); its counters
 * are relaxed atomics, readable from any thread with store_sink_counts.
 */
#ifndef RINGMTA_NET_STORE_SINK_H
#define RINGMTA_NET_STORE_SINK_H

#include <stdint.h>

#include "net/store.h"

struct store_sink {
	const char *dump_dir; /* NULL: keep nothing */
	uint64_t _messages;
	uint64_t _recipients;
	uint64_t _bytes;
	uint64_t _files;      /* the last <n> handed out */
	uint64_t _errors;     /* dump writes that failed */
};

struct store_sink_counts {
	uint64_t messages, recipients, bytes, errors;
};

/* store_sink_init - a sink that dumps into dir (NULL: keeps nothing) */
void store_sink_init(struct store_sink *g, const char *dir);

/* store_sink_counts - the counters so far (any thread) */
void store_sink_counts(const struct store_sink *g, struct store_sink_counts *out);

/* The store; give a struct store_sink as store_global. */
extern const struct store_ops store_sink_ops;

#endif
