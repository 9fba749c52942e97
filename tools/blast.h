/* blast.h - ringmta-blast's load engine: io_uring client sessions driving
 * the pure client engine (core/smtp_client.h).
 *
 * blast_run starts one thread per --threads, each with its own ring and its
 * share of --connections; every session keeps sending messages on its
 * connection (PIPELINING when offered, across transactions too: the next
 * message's commands follow each DATA body's dot in the same write; BDAT
 * with --bdat when offered) until
 * the shared message budget, --duration or a stop request ends it, then
 * QUITs. Message numbers are claimed from one atomic counter, so {n}
 * running numbers and Message-IDs are unique across threads. The body is
 * generated once (lines of text without dots) and shared: each message is
 * its own header block plus the tail of the shared body that makes it
 * exactly --size bytes, sent by sendmsg of slices, never copied.
 */
#ifndef RINGMTA_TOOLS_BLAST_H
#define RINGMTA_TOOLS_BLAST_H

#include <stdbool.h>
#include <stdint.h>

#include "core/hist.h"
#include "tools/blast_opts.h"

/* What a run did (and, while it runs, has done so far). */
struct blast_result {
	uint64_t sent;      /* messages started */
	uint64_t accepted;  /* every recipient got 2xx and the end of data 2xx */
	uint64_t rejected;  /* some final reply was 4xx/5xx */
	uint64_t errors;    /* no final reply (connection lost), or a failed connect */
	uint64_t bytes;     /* message bytes of accepted and rejected messages */
	double seconds;
	struct hist latency; /* microseconds from first command to the final reply */
};

struct blast;

/* blast_start - resolve the target and start the threads; NULL and one
 * line in err when that fails. messages_given: --messages was on the
 * command line (with --duration, the run then stops at whichever comes first). */
struct blast *blast_start(const struct blast_opts *o, bool messages_given, char *err, size_t errlen);

/* blast_stop - ask every session to finish its message and QUIT */
void blast_stop(struct blast *b);

/* blast_done - every thread has finished */
bool blast_done(const struct blast *b);

/* blast_progress - counters so far (latency not filled in) */
void blast_progress(const struct blast *b, struct blast_result *r);

/* blast_finish - join the threads, fill r, free b */
void blast_finish(struct blast *b, struct blast_result *r);

#endif
