/* tls.h - TLS over memory buffers, for a host that does all socket I/O.
 *
 * The one place the TLS library shows through (BoringSSL today; every SSL_*
 * call is inside tls.c, so OpenSSL 3 can be chosen at build time). The
 * shard's ring reads and writes the socket; a tls_conn only turns
 * ciphertext into plaintext and back:
 *   tls_conn_push(ciphertext from recv), or tls_conn_lend() to have it
 *     read in place from the host's receive buffer
 *   tls_conn_handshake() until RM_OK (RM_AGAIN: push more input and send
 *     what tls_conn_out() holds)
 *   tls_conn_read() -> plaintext in the connection's own buffer (a slice
 *     that stays valid until tls_conn_read is called again), or
 *     tls_conn_read_to() -> plaintext in a buffer the host gives, so it can
 *     decrypt the next record while a store write still reads the last
 *   tls_conn_write(replies) or tls_conn_writev(pieces) -> ciphertext,
 *     then tls_conn_out() / _sent()
 * Nothing blocks and nothing touches a file descriptor.
 *
 * Contexts are refcounted. A tls_slot holds the current one for a role and
 * swaps it atomically on reload (SIGHUP): new connections take the new
 * context, open ones keep a reference to the one they started with.
 *
 * A client context keeps the last sessions it was given per next hop
 * (tls_conn_resume), so a new connection to a hop seen before is a resumed
 * handshake: no certificate chain sent and checked again.
 *
 * Threads: a tls_ctx may be used by every shard at once; a tls_conn belongs
 * to one shard. tls_slot_load may be called from any thread; readers that
 * cache (tls_slot_get) take a lock only when the generation changed.
 */
#ifndef RINGMTA_NET_TLS_H
#define RINGMTA_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/err.h"
#include "core/slice.h"

#define TLS_PLAIN_SIZE 16384 /* one record's plaintext at most */

struct tls_ctx;
struct tls_conn;

/* tls_ctx_server_new - a server context from PEM files (chain and key);
 * TLS 1.2 and 1.3 only, forward-secret AEAD ciphers, session tickets on.
 * NULL with one line in err on failure. */
struct tls_ctx *tls_ctx_server_new(const char *cert_file, const char *key_file, char *err,
				   size_t errlen);

/* tls_ctx_client_new - a client context: with verify, peers are checked
 * against ca_file (NULL: the system store under /etc/ssl/certs) */
struct tls_ctx *tls_ctx_client_new(bool verify, const char *ca_file, char *err, size_t errlen);

/* tls_ctx_ref / tls_ctx_unref - one more / one fewer holder; unref
 * returns NULL */
struct tls_ctx *tls_ctx_ref(struct tls_ctx *c);
struct tls_ctx *tls_ctx_unref(struct tls_ctx *c);

/* The current context of a role, replaceable while shards use it. */
struct tls_slot {
	struct tls_ctx *_cur;   /* under _lock */
	uint64_t _gen;          /* bumped on every store (atomic) */
	void *_lock;            /* pthread_mutex_t, kept out of this header */
};

/* A reader's cached view of a slot (one per shard). */
struct tls_slot_cache {
	struct tls_ctx *ctx;
	uint64_t gen;
};

/* tls_slot_init / tls_slot_fini - an empty slot; fini drops its context */
RM_MUST_USE int tls_slot_init(struct tls_slot *s);
void tls_slot_fini(struct tls_slot *s);

/* tls_slot_store - make ctx (the slot takes the caller's reference) the
 * current context; the old one lives on while connections hold it */
void tls_slot_store(struct tls_slot *s, struct tls_ctx *ctx);

/* tls_slot_get - the slot's current context through a reader's cache: a
 * relaxed generation check, and a lock only after a store. The context is
 * owned by the cache (do not unref); NULL when the slot is empty. */
struct tls_ctx *tls_slot_get(struct tls_slot *s, struct tls_slot_cache *c);

/* tls_slot_cache_fini - drop the cache's reference */
void tls_slot_cache_fini(struct tls_slot_cache *c);

/* tls_conn_new - a connection on ctx (which it references). For a client,
 * host is the SNI name and, with a verifying context, the name checked in
 * the certificate (an IP literal: no SNI, matched against the
 * certificate's IP addresses); servers pass NULL. NULL when out of memory. */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, const char *host);

/* tls_conn_resume - a client connection resumes a session the context
 * keeps for key (its next hop: the host name a verifying context checks
 * is part of it) when it has one, and stores the tickets the server sends
 * under key. A TLS 1.3 session is taken out of the cache when used (RFC
 * 8446 §C.4: a ticket once); a TLS 1.2 one stays. Call before the first
 * tls_conn_handshake; no-op for a server or a key that does not fit. */
void tls_conn_resume(struct tls_conn *t, const char *key);

/* tls_conn_free - free; returns NULL */
struct tls_conn *tls_conn_free(struct tls_conn *t);

/* tls_conn_push - ciphertext received from the peer (copied: p may be
 * reused when this returns) */
RM_MUST_USE int tls_conn_push(struct tls_conn *t, const char *p, size_t n);

/* tls_conn_lend - ciphertext received from the peer, read in place: p[0..n)
 * must stay valid and unchanged until tls_conn_handshake or tls_conn_read*
 * returned RM_AGAIN (all of it was read then), or until the next
 * _push/_lend/_free (what was left of it is copied then). Never lend a
 * buffer that plaintext is decrypted into. RM_ENOMEM when keeping the
 * previous buffer's rest failed. */
RM_MUST_USE int tls_conn_lend(struct tls_conn *t, const char *p, size_t n);

/* tls_conn_unlend - the lent buffer is taken back unread (the input is
 * being dropped: the connection closes) */
void tls_conn_unlend(struct tls_conn *t);

/* tls_conn_handshake - advance the handshake: RM_OK done, RM_AGAIN wants
 * more input, RM_EPROTO failed (the peer spoke no TLS or was refused) */
RM_MUST_USE int tls_conn_handshake(struct tls_conn *t);

/* tls_conn_read - decrypt into the connection's plaintext buffer: RM_OK
 * with *plain non-empty, RM_AGAIN no complete record yet, RM_EIO the peer
 * closed (close_notify), RM_EPROTO a bad record. *plain stays valid until
 * the next tls_conn_read; callers that keep slices of it (a spool append
 * in flight) wait before reading again. */
RM_MUST_USE int tls_conn_read(struct tls_conn *t, struct slice *plain);

/* tls_conn_read_to - tls_conn_read into dst[0..cap) (cap TLS_PLAIN_SIZE
 * holds any record) instead of the connection's buffer, which is then
 * never allocated; *plain points into dst */
RM_MUST_USE int tls_conn_read_to(struct tls_conn *t, char *dst, size_t cap, struct slice *plain);

/* tls_conn_write - encrypt p[0..n) (all of it) into the pending output,
 * in records of at most TLS_PLAIN_SIZE */
RM_MUST_USE int tls_conn_write(struct tls_conn *t, const char *p, size_t n);

/* tls_conn_writev - encrypt the pieces v[0..n) in order, gathered into
 * full records (a message's pieces do not each become a record) */
RM_MUST_USE int tls_conn_writev(struct tls_conn *t, const struct iovec *v, int n);

/* tls_conn_out - ciphertext to send: everything the library produced,
 * in the connection's send buffer; stable until _sent, even when more is
 * written meanwhile */
struct slice tls_conn_out(struct tls_conn *t);

/* tls_conn_sent - n bytes of tls_conn_out went out */
void tls_conn_sent(struct tls_conn *t, size_t n);

/* tls_conn_out_pending - ciphertext is waiting to be sent */
bool tls_conn_out_pending(const struct tls_conn *t);

/* tls_conn_version / tls_conn_cipher - after the handshake, e.g. "TLSv1.3"
 * and "TLS_AES_128_GCM_SHA256"; "" before */
const char *tls_conn_version(const struct tls_conn *t);
const char *tls_conn_cipher(const struct tls_conn *t);

/* tls_conn_verify_error - a verifying client's reason for rejecting the
 * peer's certificate ("" when it was not rejected) */
const char *tls_conn_verify_error(const struct tls_conn *t);

/* tls_conn_is13 - the handshake chose TLS 1.3 */
bool tls_conn_is13(const struct tls_conn *t);

/* tls_conn_resumed - the session was resumed (ticket or cache) */
bool tls_conn_resumed(const struct tls_conn *t);

#endif
