/* outbound_tls.h - STARTTLS toward next hops (--outbound-tls,
 * --outbound-ca), for net/outbound.c.
 *
 * The policy and the record layer of one outbound connection, kept out of
 * the delivery module: outbound.c asks which mode the SMTP client engine
 * runs in, starts a handshake when the engine says SMTP_CL_STARTTLS, and
 * from then on passes every byte it sends through outbound_tls_encrypt and
 * every byte it receives through outbound_tls_decrypt. The socket I/O stays
 * on the shard's ring; nothing here blocks or touches a descriptor.
 *
 * Modes (CONTRACT.md): none never asks for STARTTLS; opportunistic uses it
 * when offered and goes on in plaintext when not; required encrypts without
 * checking the certificate (Postfix's "encrypt"); verify also checks the
 * chain against --outbound-ca (or /etc/ssl/certs) and the next hop's name.
 * With required or verify, a hop without STARTTLS, a failed handshake or a
 * bad certificate ends the connection before any envelope is sent: the
 * mail is deferred, never sent in the clear.
 *
 * Threads: the configuration is made on the main thread before the shards
 * start and only read after; a struct outbound_tls belongs to one shard.
 */
#ifndef RINGMTA_NET_OUTBOUND_TLS_H
#define RINGMTA_NET_OUTBOUND_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

#include "core/err.h"
#include "core/slice.h"
#include "core/smtp_client.h"

enum outbound_tls_mode {
	OUTBOUND_TLS_MODE_NONE = 0,
	OUTBOUND_TLS_MODE_OPPORTUNISTIC,
	OUTBOUND_TLS_MODE_REQUIRED,
	OUTBOUND_TLS_MODE_VERIFY,
};

struct tls_ctx;

struct outbound_tls_cfg {
	enum outbound_tls_mode mode;
	struct tls_ctx *_ctx;      /* client context; NULL for none */
};

/* outbound_tls_cfg_init - the client context for mode; ca_file NULL means
 * the system store (verify only). -1 with one line in err on a bad CA. */
RM_MUST_USE int outbound_tls_cfg_init(struct outbound_tls_cfg *cfg, enum outbound_tls_mode mode,
				      const char *ca_file, char *err, size_t errlen);

/* outbound_tls_cfg_fini - drop the context */
void outbound_tls_cfg_fini(struct outbound_tls_cfg *cfg);

/* outbound_tls_engine_mode - how the SMTP client engine treats STARTTLS
 * on a new connection; plain: opportunistic TLS to this hop failed lately,
 * so it is skipped (required and verify never skip it) */
enum smtp_client_tls outbound_tls_engine_mode(const struct outbound_tls_cfg *cfg, bool plain);

/* outbound_tls_mode_name - "none", "opportunistic", "required", "verify" */
const char *outbound_tls_mode_name(enum outbound_tls_mode mode);

/* outbound_tls_hop_host - the host name of a "HOST:PORT" or "[V6]:PORT"
 * next hop, as the certificate must name it */
void outbound_tls_hop_host(const char *hop, char *out, size_t cap);

/* One connection's TLS, from the 220 to STARTTLS on. */
struct outbound_tls;

/* outbound_tls_new - a client connection to host (SNI, and the name
 * checked under verify); NULL when out of memory */
struct outbound_tls *outbound_tls_new(const struct outbound_tls_cfg *cfg, const char *host);

/* outbound_tls_free - free; returns NULL */
struct outbound_tls *outbound_tls_free(struct outbound_tls *t);

/* outbound_tls_handshake - ciphertext p[0..n) received (n may be 0 to
 * start); RM_OK done, RM_AGAIN send outbound_tls_out and receive more,
 * RM_EPROTO failed (no TLS, refused, or a certificate verify rejects) */
RM_MUST_USE int outbound_tls_handshake(struct outbound_tls *t, const char *p, size_t n);

/* outbound_tls_encrypt - encrypt v[0..n) (all of it) for sending */
RM_MUST_USE int outbound_tls_encrypt(struct outbound_tls *t, const struct iovec *v, int n);

/* outbound_tls_out - ciphertext to send, stable until outbound_tls_sent;
 * empty when nothing waits */
struct slice outbound_tls_out(struct outbound_tls *t);

/* outbound_tls_sent - n bytes of outbound_tls_out went out */
void outbound_tls_sent(struct outbound_tls *t, size_t n);

/* outbound_tls_decrypt - push ciphertext p[0..n) (n may be 0) and copy
 * plaintext into dst[0..cap), *got bytes: RM_OK (maybe *got 0: more
 * ciphertext is needed), RM_EIO the peer closed, RM_EPROTO a bad record.
 * Plaintext that did not fit is kept for the next call. */
RM_MUST_USE int outbound_tls_decrypt(struct outbound_tls *t, const char *p, size_t n, char *dst, size_t cap,
				     size_t *got);

/* outbound_tls_has_plain - plaintext may wait: call decrypt again before
 * receiving more */
bool outbound_tls_has_plain(const struct outbound_tls *t);

/* outbound_tls_version / outbound_tls_cipher - the negotiated protocol
 * and suite ("" before the handshake) */
const char *outbound_tls_version(const struct outbound_tls *t);
const char *outbound_tls_cipher(const struct outbound_tls *t);

/* outbound_tls_resumed - after the handshake: the hop took a session
 * ticket of an earlier connection */
bool outbound_tls_resumed(const struct outbound_tls *t);

/* outbound_tls_verify_error - why verify rejected the certificate, or "" */
const char *outbound_tls_verify_error(const struct outbound_tls *t);

#endif
