/* outbound_tls.c - STARTTLS toward next hops (net/outbound_tls.h).
 *
 * A thin layer over net/tls.h: the mode decides the engine's STARTTLS
 * policy and whether the client context verifies; a connection wraps a
 * tls_conn and keeps the one record's plaintext that did not fit the
 * caller's receive buffer (a tls_conn_read slice stays valid until the
 * next read, so "pending" is a slice into it, never a copy).
 *
 * Sessions are resumed per next hop name (tls_conn_resume): after the
 * first connection to a hop, the next ones skip the certificate exchange.
 *
 * Invariants: pending is non-empty only between decrypt calls; nothing is
 * read from the tls_conn while pending holds bytes.
 * Threads: see the header.
 */
#include "net/outbound_tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/tls.h"

struct outbound_tls {
	struct tls_conn *conn;
	struct slice pending;      /* plaintext not yet given to the caller */
	bool full;                 /* the last decrypt filled dst: records may wait */
};

/* outbound_tls_cfg_init - the client context for mode */
int outbound_tls_cfg_init(struct outbound_tls_cfg *cfg, enum outbound_tls_mode mode, const char *ca_file,
			  char *err, size_t errlen)
{
	cfg->mode = mode;
	cfg->_ctx = NULL;
	if (mode == OUTBOUND_TLS_MODE_NONE)
		return 0;
	cfg->_ctx = tls_ctx_client_new(mode == OUTBOUND_TLS_MODE_VERIFY, ca_file, err, errlen);
	return cfg->_ctx != NULL ? 0 : -1;
}

/* outbound_tls_cfg_fini - drop the context */
void outbound_tls_cfg_fini(struct outbound_tls_cfg *cfg)
{
	cfg->_ctx = tls_ctx_unref(cfg->_ctx);
}

/* outbound_tls_engine_mode - the engine's STARTTLS policy */
enum smtp_client_tls outbound_tls_engine_mode(const struct outbound_tls_cfg *cfg, bool plain)
{
	switch (cfg->mode) {
	case OUTBOUND_TLS_MODE_REQUIRED:
	case OUTBOUND_TLS_MODE_VERIFY:
		return SMTP_CLIENT_TLS_REQUIRED;
	case OUTBOUND_TLS_MODE_OPPORTUNISTIC:
		return plain || cfg->_ctx == NULL ? SMTP_CLIENT_TLS_NONE : SMTP_CLIENT_TLS_OPPORTUNISTIC;
	default:
		return SMTP_CLIENT_TLS_NONE;
	}
}

/* outbound_tls_mode_name - the flag's word for mode */
const char *outbound_tls_mode_name(enum outbound_tls_mode mode)
{
	static const char *const names[] = { "none", "opportunistic", "required", "verify" };
	return (unsigned)mode < sizeof names / sizeof names[0] ? names[mode] : "?";
}

/* outbound_tls_hop_host - "HOST:PORT" or "[V6]:PORT" -> HOST / V6 */
void outbound_tls_hop_host(const char *hop, char *out, size_t cap)
{
	size_t n;

	if (cap == 0)
		return;
	if (hop[0] == '[') {
		const char *e = strchr(hop, ']');
		hop++;
		n = e != NULL ? (size_t)(e - hop) : strlen(hop);
	} else {
		const char *e = strrchr(hop, ':');
		n = e != NULL ? (size_t)(e - hop) : strlen(hop);
	}
	if (n >= cap)
		n = cap - 1;
	memcpy(out, hop, n);
	out[n] = '\0';
}

/* outbound_tls_new - a client connection to host */
struct outbound_tls *outbound_tls_new(const struct outbound_tls_cfg *cfg, const char *host)
{
	if (cfg->_ctx == NULL)
		return NULL;
	struct outbound_tls *t = calloc(1, sizeof *t);
	if (t == NULL)
		return NULL;
	t->conn = tls_conn_new(cfg->_ctx, host != NULL && host[0] ? host : NULL);
	if (t->conn == NULL) {
		free(t);
		return NULL;
	}
	if (host != NULL && host[0])
		tls_conn_resume(t->conn, host); /* a hop seen before: resumed */
	return t;
}

/* outbound_tls_free - free; returns NULL */
struct outbound_tls *outbound_tls_free(struct outbound_tls *t)
{
	if (t != NULL) {
		tls_conn_free(t->conn);
		free(t);
	}
	return NULL;
}

/* outbound_tls_handshake - push p[0..n) and advance the handshake */
int outbound_tls_handshake(struct outbound_tls *t, const char *p, size_t n)
{
	if (n > 0 && tls_conn_push(t->conn, p, n) != RM_OK)
		return RM_ENOMEM;
	return tls_conn_handshake(t->conn);
}

/* outbound_tls_encrypt - encrypt the pieces of v together: commands, the
 * trace header and the body (or a dot-stuffed run of lines) share full
 * records instead of one record each */
int outbound_tls_encrypt(struct outbound_tls *t, const struct iovec *v, int n)
{
	return tls_conn_writev(t->conn, v, n);
}

/* outbound_tls_out - ciphertext to send */
struct slice outbound_tls_out(struct outbound_tls *t)
{
	return tls_conn_out(t->conn);
}

/* outbound_tls_sent - n bytes went out */
void outbound_tls_sent(struct outbound_tls *t, size_t n)
{
	tls_conn_sent(t->conn, n);
}

/* outbound_tls_take - copy as much of pending as fits */
static size_t outbound_tls_take(struct outbound_tls *t, char *dst, size_t cap)
{
	size_t k = t->pending.len < cap ? t->pending.len : cap;
	memcpy(dst, t->pending.ptr, k);
	t->pending.ptr += k;
	t->pending.len -= k;
	return k;
}

/* outbound_tls_decrypt - push ciphertext, copy out plaintext */
int outbound_tls_decrypt(struct outbound_tls *t, const char *p, size_t n, char *dst, size_t cap, size_t *got)
{
	*got = 0;
	if (n > 0 && tls_conn_push(t->conn, p, n) != RM_OK)
		return RM_ENOMEM;
	while (*got < cap) {
		if (t->pending.len > 0) {
			*got += outbound_tls_take(t, dst + *got, cap - *got);
			continue;
		}
		struct slice pl;
		int rc = tls_conn_read(t->conn, &pl);
		if (rc == RM_AGAIN)
			break;
		if (rc != RM_OK)
			return *got > 0 ? RM_OK : rc; /* report the end on the next call */
		t->pending = pl;
	}
	t->full = *got == cap;
	return RM_OK;
}

/* outbound_tls_has_plain - decrypted bytes (or whole records) wait */
bool outbound_tls_has_plain(const struct outbound_tls *t)
{
	return t->pending.len > 0 || t->full;
}

/* outbound_tls_version - the negotiated protocol */
const char *outbound_tls_version(const struct outbound_tls *t)
{
	return tls_conn_version(t->conn);
}

/* outbound_tls_resumed - the session was resumed */
bool outbound_tls_resumed(const struct outbound_tls *t)
{
	return tls_conn_resumed(t->conn);
}

/* outbound_tls_cipher - the negotiated suite */
const char *outbound_tls_cipher(const struct outbound_tls *t)
{
	return tls_conn_cipher(t->conn);
}

/* outbound_tls_verify_error - why the certificate was rejected */
const char *outbound_tls_verify_error(const struct outbound_tls *t)
{
	return tls_conn_verify_error(t->conn);
}
