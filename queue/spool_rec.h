/* spool_rec.h - the spool's self-checking record codec.
 *
 * Postfix-style typed, length-prefixed records, each with a CRC32C, all
 * integers little-endian. Every record starts with a 20-byte header:
 *   0  u16 magic 0x6d52 ("Rm")    2  u8 type    3  u8 version (1)
 *   4  u32 payload length         8  u64 tag (chunk: transaction tag)
 *  16  u32 CRC32C of bytes 0..16 and of the payload
 * then the payload. Types:
 *   CHUNK    message bytes as received; the payload is written by writev
 *            straight from the receive buffers' slices, the header being a
 *            separate small iovec (spool_rec_chunk_hdr)
 *   COMMIT   one accepted message: queue ID, arrival, shard, envelope with
 *            the ESMTP parameters, the Received: header text, body extents
 *   JOURNAL  one delivery outcome for one recipient (or the whole message)
 *
 * Decoding trusts no byte: spool_rec_next checks magic, type, version,
 * length bound and CRC before returning a record; the payload decoders check
 * every length against the payload and every value against its range, and
 * reject trailing bytes. Decoded slices point into the payload given (keep it
 * alive); arrays come from the arena given. Pure; any thread.
 */
#ifndef RINGMTA_QUEUE_SPOOL_REC_H
#define RINGMTA_QUEUE_SPOOL_REC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/slice.h"

#define SPOOL_REC_HDR 20
#define SPOOL_REC_MAGIC 0x6d52u
#define SPOOL_REC_VERSION 1
#define SPOOL_REC_MAX (16u << 20)   /* largest payload of any record */
#define SPOOL_REC_RCPT_MAX 100000u  /* recipients in one commit record */
#define SPOOL_REC_EXT_MAX 1000000u  /* body extents in one commit record */

enum spool_rec_type {
	SPOOL_REC_CHUNK = 1,
	SPOOL_REC_COMMIT = 2,
	SPOOL_REC_JOURNAL = 3,
};

/* One record found by spool_rec_next; payload points into the input. */
struct spool_rec {
	enum spool_rec_type type;
	uint64_t tag;
	struct slice payload;
};

enum spool_rec_scan {
	SPOOL_SCAN_OK = 0,  /* a valid record of *used bytes */
	SPOOL_SCAN_SHORT,   /* the header looks right but the input ends first:
			       *used bytes are needed (a torn tail at EOF) */
	SPOOL_SCAN_BAD,     /* garbage: wrong magic, type, length or CRC */
};

/* spool_rec_next - the record at the start of p[0..n) */
enum spool_rec_scan spool_rec_next(const char *p, size_t n, struct spool_rec *out, size_t *used);

/* spool_rec_chunk_hdr - the header of a chunk record whose payload is the
 * concatenation of v[0..nv) (their CRC is computed here) */
void spool_rec_chunk_hdr(char hdr[SPOOL_REC_HDR], uint64_t tag, const struct slice *v, size_t nv);

/* One recipient: forward-path mailbox, DSN NOTIFY bits (SMTP_NOTIFY_*),
 * ORCPT as received (addr-type ";" xtext, or empty). */
struct spool_rcpt {
	struct slice addr;
	unsigned notify;
	struct slice orcpt;
};

/* A run of body bytes: payload offset and length inside segment seg. */
struct spool_extent {
	uint32_t seg;
	uint64_t off;
	uint32_t len;
};

/* The envelope and layout of one committed message. */
struct spool_env {
	struct slice id;          /* queue ID (queue/msgid.h) */
	uint64_t arrival_us;      /* µs since the epoch */
	uint32_t shard;
	uint64_t tag;             /* the transaction tag of its chunks */
	struct slice sender;      /* reverse-path mailbox; empty for <> */
	uint64_t size;            /* SIZE= when has_size */
	bool has_size;
	uint8_t body;             /* enum smtp_body */
	uint8_t ret;              /* enum smtp_ret */
	bool smtputf8;
	struct slice envid;       /* ENVID= xtext, or empty */
	struct slice auth;        /* AUTH= xtext, or empty */
	struct slice received;    /* the Received: header text, CRLF included */
	struct spool_rcpt *rcpt;
	uint32_t nrcpt;
	struct spool_extent *ext; /* the body, in order */
	uint32_t next;
};

/* spool_env_body_len - the body's length: the sum of the extents */
uint64_t spool_env_body_len(const struct spool_env *e);

/* spool_rec_commit_encode - append a whole COMMIT record for e to out; all
 * or nothing (RM_ENOMEM: no room; RM_ELIMIT/RM_EINVAL: e cannot be stored) */
RM_MUST_USE int spool_rec_commit_encode(struct buf *out, const struct spool_env *e);

/* spool_rec_commit_size - the bytes spool_rec_commit_encode would append */
size_t spool_rec_commit_size(const struct spool_env *e);

/* spool_rec_commit_decode - a COMMIT payload into *out (slices into
 * payload, arrays from a); RM_EPROTO on any inconsistency, RM_ENOMEM when
 * the arena is exhausted */
RM_MUST_USE int spool_rec_commit_decode(struct slice payload, struct arena *a,
					struct spool_env *out);

/* Delivery outcomes. DEFERRED is the only one that is not terminal. */
enum spool_outcome {
	SPOOL_OUT_DEFERRED = 1,
	SPOOL_OUT_DELIVERED = 2,
	SPOOL_OUT_BOUNCED = 3,
	SPOOL_OUT_EXPIRED = 4,
	SPOOL_OUT_DELETED = 5,
};
#define SPOOL_RCPT_ALL 0xffffffffu /* a journal record for every recipient */

/* One delivery-journal record. */
struct spool_jrec {
	struct slice id;          /* queue ID */
	uint32_t rcpt;            /* recipient index, or SPOOL_RCPT_ALL */
	enum spool_outcome outcome;
	uint64_t next_attempt_us; /* DEFERRED: when to try again */
	uint32_t attempts;        /* attempts made so far */
	struct slice reply;       /* the last reply text, or empty */
};

/* spool_rec_journal_encode - append a whole JOURNAL record; all or nothing */
RM_MUST_USE int spool_rec_journal_encode(struct buf *out, const struct spool_jrec *j);

/* spool_rec_journal_decode - a JOURNAL payload (slices into payload) */
RM_MUST_USE int spool_rec_journal_decode(struct slice payload, struct spool_jrec *out);

#endif
