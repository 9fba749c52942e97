/* tls.c - TLS over memory BIOs (BoringSSL, or OpenSSL 3 when built with
 * -DRINGMTA_TLS_LIB=openssl: the calls used here are common to both but
 * for the cipher list, marked where it differs).
 *
 * Every SSL_* and BIO_* call of the program is here. A connection owns two
 * memory BIOs: rbio holds ciphertext pushed by the host until the library
 * reads it, wbio holds what the library wrote until the host takes it into
 * the connection's send buffer. The host pushes one receive buffer at a
 * time and reads plaintext before pushing more, so rbio stays around one
 * buffer's size. The plaintext buffer of tls_conn_read is allocated on
 * its first use: a host that decrypts into its own buffers
 * (tls_conn_read_to) does not pay for it in every session.
 *
 * Invariants: a tls_conn is used by one thread; ERR_clear_error before each
 * library call, so an error seen is this call's. A context's refcount is
 * atomic (shards start and end connections concurrently); the slot's lock
 * guards only the swap and the reference taken by a reader whose cached
 * generation is old.
 */
#include "net/tls.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define TLS_OUT_SIZE (TLS_PLAIN_SIZE + 1024) /* one record and its overhead */
#define TLS_SYSTEM_CA_DIR "/etc/ssl/certs"

/* Forward-secret AEAD suites for TLS 1.2 (TLS 1.3's are fixed and all good). */
#define TLS_CIPHERS12 "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
		      "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"  \
		      "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

#define TLS_RESUME_SLOTS 64 /* next hops a client context keeps sessions for */
#define TLS_RESUME_PER_HOP 4 /* sessions kept per hop: TLS 1.3 tickets are used
			      * once, and connections to a hop open together */
#define TLS_RESUME_KEY 128

/* One next hop's sessions, oldest first: a direct-mapped slot, a
 * colliding hop replaces them. */
struct tls_resume_slot {
	char key[TLS_RESUME_KEY];
	SSL_SESSION *sess[TLS_RESUME_PER_HOP];
	unsigned n;
};

struct tls_ctx {
	SSL_CTX *ssl;
	unsigned refs; /* atomic */
	bool client;
	pthread_mutex_t resume_lock; /* client: guards resume[] (per connection and
				      * per ticket, never per message) */
	struct tls_resume_slot *resume;
};

struct tls_conn {
	struct tls_ctx *ctx;
	SSL *ssl;
	BIO *rbio, *wbio; /* owned by ssl */
	char key[TLS_RESUME_KEY]; /* client: the hop its tickets are kept for */
	size_t out_len;
	char *plain; /* TLS_PLAIN_SIZE, on tls_conn_read's first call */
	char out[TLS_OUT_SIZE];
};

/* tls_err - the library's last error as one line */
static void tls_err(char *err, size_t errlen, const char *what, const char *file)
{
	char lib[160];
	unsigned long e = ERR_peek_last_error();

	ERR_error_string_n(e, lib, sizeof lib);
	snprintf(err, errlen, "%s %s: %s", what, file ? file : "", e ? lib : "failed");
	ERR_clear_error();
}

/* tls_ctx_wrap - a context around a configured SSL_CTX */
static struct tls_ctx *tls_ctx_wrap(SSL_CTX *ssl, bool client, char *err, size_t errlen)
{
	struct tls_ctx *c = calloc(1, sizeof *c);
	if (c == NULL) {
		SSL_CTX_free(ssl);
		snprintf(err, errlen, "tls: out of memory");
		return NULL;
	}
	c->ssl = ssl;
	c->refs = 1;
	c->client = client;
	if (client) {
		c->resume = calloc(TLS_RESUME_SLOTS, sizeof *c->resume);
		if (c->resume == NULL) {
			SSL_CTX_free(ssl);
			free(c);
			snprintf(err, errlen, "tls: out of memory");
			return NULL;
		}
		pthread_mutex_init(&c->resume_lock, NULL);
	}
	return c;
}

/* tls_resume_slot - the slot of key in c's session cache (FNV-1a) */
static struct tls_resume_slot *tls_resume_slot(struct tls_ctx *c, const char *key)
{
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 16777619u;
	return &c->resume[h % TLS_RESUME_SLOTS];
}

/* tls_resume_new - the library has a new session (a ticket) for a client
 * connection: keep it under the connection's hop; 1 = the reference is
 * taken */
static int tls_resume_new(SSL *ssl, SSL_SESSION *sess)
{
	struct tls_conn *t = SSL_get_app_data(ssl);
	if (t == NULL || t->key[0] == '\0')
		return 0;
	struct tls_ctx *c = t->ctx;
	struct tls_resume_slot *r = tls_resume_slot(c, t->key);
	SSL_SESSION *old[TLS_RESUME_PER_HOP];
	unsigned nold = 0;
	pthread_mutex_lock(&c->resume_lock);
	if (strcmp(r->key, t->key) != 0) {
		while (r->n > 0)
			old[nold++] = r->sess[--r->n]; /* another hop's */
		memcpy(r->key, t->key, sizeof r->key);
	} else if (r->n == TLS_RESUME_PER_HOP) {
		old[nold++] = r->sess[0]; /* the oldest goes */
		memmove(r->sess, r->sess + 1, sizeof r->sess[0] * --r->n);
	}
	r->sess[r->n++] = sess;
	pthread_mutex_unlock(&c->resume_lock);
	while (nold > 0)
		SSL_SESSION_free(old[--nold]);
	return 1;
}

/* tls_ctx_ciphers - the TLS 1.2 suites, every name known to the library
 * (TLS 1.3's suites are the library's defaults: all AEAD, all PFS) */
static int tls_ctx_ciphers(SSL_CTX *ssl)
{
#ifdef RINGMTA_TLS_OPENSSL
	return SSL_CTX_set_cipher_list(ssl, TLS_CIPHERS12);
#else
	return SSL_CTX_set_strict_cipher_list(ssl, TLS_CIPHERS12);
#endif
}

/* tls_ctx_policy - the protocol and cipher policy both roles share */
static int tls_ctx_policy(SSL_CTX *ssl)
{
	if (!SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ssl, TLS1_3_VERSION) ||
	    !tls_ctx_ciphers(ssl))
		return RM_EINVAL;
	return RM_OK;
}

/* tls_ctx_server_new - a server context from PEM files */
struct tls_ctx *tls_ctx_server_new(const char *cert_file, const char *key_file, char *err,
				   size_t errlen)
{
	ERR_clear_error();
	SSL_CTX *ssl = SSL_CTX_new(TLS_server_method());
	if (ssl == NULL) {
		tls_err(err, errlen, "tls: context", NULL);
		return NULL;
	}
	if (tls_ctx_policy(ssl) != RM_OK) {
		tls_err(err, errlen, "tls: cipher policy", NULL);
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ssl, cert_file) != 1) {
		tls_err(err, errlen, "tls: certificate", cert_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ssl, key_file, SSL_FILETYPE_PEM) != 1) {
		tls_err(err, errlen, "tls: key", key_file);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ssl) != 1) {
		tls_err(err, errlen, "tls: key does not match certificate", key_file);
		goto fail;
	}
	/* Resumption: the server-side cache and tickets (on by default; said
	 * here so a later library choice keeps them). */
	SSL_CTX_set_session_cache_mode(ssl, SSL_SESS_CACHE_SERVER);
	SSL_CTX_clear_options(ssl, SSL_OP_NO_TICKET);
	static const unsigned char sid[] = "ringmta";
	(void)SSL_CTX_set_session_id_context(ssl, sid, sizeof sid - 1);
	return tls_ctx_wrap(ssl, false, err, errlen);
fail:
	SSL_CTX_free(ssl);
	return NULL;
}

/* tls_ctx_client_new - a client context, verifying or not */
struct tls_ctx *tls_ctx_client_new(bool verify, const char *ca_file, char *err, size_t errlen)
{
	ERR_clear_error();
	SSL_CTX *ssl = SSL_CTX_new(TLS_client_method());
	if (ssl == NULL || tls_ctx_policy(ssl) != RM_OK) {
		tls_err(err, errlen, "tls: client context", NULL);
		SSL_CTX_free(ssl);
		return NULL;
	}
	if (verify) {
		int ok = ca_file ? SSL_CTX_load_verify_locations(ssl, ca_file, NULL)
				 : SSL_CTX_load_verify_locations(ssl, NULL, TLS_SYSTEM_CA_DIR);
		if (ok != 1) {
			tls_err(err, errlen, "tls: CA", ca_file ? ca_file : TLS_SYSTEM_CA_DIR);
			SSL_CTX_free(ssl);
			return NULL;
		}
		SSL_CTX_set_verify(ssl, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_CTX_set_verify(ssl, SSL_VERIFY_NONE, NULL);
	}
	/* Resumption toward next hops: the library hands each new session to
	 * tls_resume_new, which keeps it per hop (tls_conn_resume). */
	SSL_CTX_set_session_cache_mode(ssl, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
	SSL_CTX_sess_set_new_cb(ssl, tls_resume_new);
	return tls_ctx_wrap(ssl, true, err, errlen);
}

/* tls_ctx_ref - one more holder */
struct tls_ctx *tls_ctx_ref(struct tls_ctx *c)
{
	if (c != NULL)
		__atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
	return c;
}

/* tls_ctx_unref - one fewer holder; the last frees */
struct tls_ctx *tls_ctx_unref(struct tls_ctx *c)
{
	if (c != NULL && __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		if (c->resume != NULL) {
			for (unsigned i = 0; i < TLS_RESUME_SLOTS; i++)
				while (c->resume[i].n > 0)
					SSL_SESSION_free(c->resume[i].sess[--c->resume[i].n]);
			free(c->resume);
			pthread_mutex_destroy(&c->resume_lock);
		}
		SSL_CTX_free(c->ssl);
		free(c);
	}
	return NULL;
}

/* --- the slot ------------------------------------------------------------ */

/* tls_slot_init - an empty slot */
int tls_slot_init(struct tls_slot *s)
{
	pthread_mutex_t *m = malloc(sizeof *m);
	if (m == NULL)
		return RM_ENOMEM;
	pthread_mutex_init(m, NULL);
	s->_cur = NULL;
	s->_gen = 1;
	s->_lock = m;
	return RM_OK;
}

/* tls_slot_fini - drop the slot's context */
void tls_slot_fini(struct tls_slot *s)
{
	if (s->_lock == NULL)
		return;
	s->_cur = tls_ctx_unref(s->_cur);
	pthread_mutex_destroy(s->_lock);
	free(s->_lock);
	s->_lock = NULL;
}

/* tls_slot_store - swap in ctx; the old context lives while it is held */
void tls_slot_store(struct tls_slot *s, struct tls_ctx *ctx)
{
	pthread_mutex_lock(s->_lock);
	struct tls_ctx *old = s->_cur;
	s->_cur = ctx;
	__atomic_add_fetch(&s->_gen, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(s->_lock);
	tls_ctx_unref(old);
}

/* tls_slot_get - the current context through a reader's cache */
struct tls_ctx *tls_slot_get(struct tls_slot *s, struct tls_slot_cache *c)
{
	uint64_t gen = __atomic_load_n(&s->_gen, __ATOMIC_ACQUIRE);
	if (gen == c->gen)
		return c->ctx;
	pthread_mutex_lock(s->_lock);
	struct tls_ctx *cur = tls_ctx_ref(s->_cur);
	c->gen = __atomic_load_n(&s->_gen, __ATOMIC_RELAXED);
	pthread_mutex_unlock(s->_lock);
	tls_ctx_unref(c->ctx);
	c->ctx = cur;
	return cur;
}

/* tls_slot_cache_fini - drop the cache's reference */
void tls_slot_cache_fini(struct tls_slot_cache *c)
{
	c->ctx = tls_ctx_unref(c->ctx);
	c->gen = 0;
}

/* --- connections ------------------------------------------------------- */

/* tls_host_setup - SNI and the name a verifying client checks. An IP
 * literal is matched against the certificate's IP addresses and sent
 * without SNI (RFC 6066 §3 allows host names only). */
static int tls_host_setup(SSL *ssl, const char *host)
{
	unsigned char ip[16];
	bool literal = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;

	if (!literal && !SSL_set_tlsext_host_name(ssl, host))
		return RM_EINVAL;
	if (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
		int ok = literal ? X509_VERIFY_PARAM_set1_ip_asc(vp, host)
				 : X509_VERIFY_PARAM_set1_host(vp, host, strlen(host));
		if (!ok)
			return RM_EINVAL;
	}
	return RM_OK;
}

/* tls_conn_new - a connection on ctx */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, const char *host)
{
	struct tls_conn *t = malloc(sizeof *t);
	if (t == NULL)
		return NULL;
	ERR_clear_error();
	t->out_len = 0;
	t->plain = NULL;
	t->key[0] = '\0';
	t->ssl = SSL_new(ctx->ssl);
	t->rbio = BIO_new(BIO_s_mem());
	t->wbio = BIO_new(BIO_s_mem());
	if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL)
		goto fail;
	BIO_set_mem_eof_return(t->rbio, -1); /* empty means "more later" */
	BIO_set_mem_eof_return(t->wbio, -1);
	SSL_set_bio(t->ssl, t->rbio, t->wbio);
	SSL_set_app_data(t->ssl, t);
	if (ctx->client) {
		SSL_set_connect_state(t->ssl);
		if (host != NULL && tls_host_setup(t->ssl, host) != RM_OK)
			goto fail_ssl;
	} else {
		SSL_set_accept_state(t->ssl);
	}
	t->ctx = tls_ctx_ref(ctx);
	return t;
fail:
	BIO_free(t->rbio);
	BIO_free(t->wbio);
fail_ssl:
	SSL_free(t->ssl);
	ERR_clear_error();
	free(t);
	return NULL;
}

/* tls_conn_resume - resume key's session, and keep new ones under key */
void tls_conn_resume(struct tls_conn *t, const char *key)
{
	struct tls_ctx *c = t->ctx;
	size_t n = strlen(key);

	if (!c->client || c->resume == NULL || n == 0 || n >= sizeof t->key)
		return;
	memcpy(t->key, key, n + 1);
	struct tls_resume_slot *r = tls_resume_slot(c, key);
	SSL_SESSION *sess = NULL;
	pthread_mutex_lock(&c->resume_lock);
	if (r->n > 0 && strcmp(r->key, key) == 0) {
		sess = r->sess[r->n - 1]; /* the newest */
		if (SSL_SESSION_get_protocol_version(sess) >= TLS1_3_VERSION)
			r->n--; /* a 1.3 ticket is used once */
		else
			SSL_SESSION_up_ref(sess);
	}
	pthread_mutex_unlock(&c->resume_lock);
	if (sess == NULL)
		return;
	ERR_clear_error();
	(void)SSL_set_session(t->ssl, sess); /* takes its own reference */
	SSL_SESSION_free(sess);
	ERR_clear_error();
}

/* tls_conn_free - free the connection and its context reference */
struct tls_conn *tls_conn_free(struct tls_conn *t)
{
	if (t == NULL)
		return NULL;
	SSL_free(t->ssl); /* frees both BIOs */
	tls_ctx_unref(t->ctx);
	free(t->plain);
	free(t);
	ERR_clear_error();
	return NULL;
}

/* tls_conn_push - ciphertext from the peer into rbio */
int tls_conn_push(struct tls_conn *t, const char *p, size_t n)
{
	while (n > 0) {
		int chunk = n > 1u << 30 ? 1 << 30 : (int)n;
		int w = BIO_write(t->rbio, p, chunk);
		if (w <= 0)
			return RM_ENOMEM;
		p += w;
		n -= (size_t)w;
	}
	return RM_OK;
}

/* tls_conn_status - map the library's verdict on a call that returned r */
static int tls_conn_status(struct tls_conn *t, int r)
{
	switch (SSL_get_error(t->ssl, r)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return RM_AGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return RM_EIO;
	default:
		ERR_clear_error();
		return RM_EPROTO;
	}
}

/* tls_conn_handshake - advance the handshake */
int tls_conn_handshake(struct tls_conn *t)
{
	ERR_clear_error();
	int r = SSL_do_handshake(t->ssl);
	if (r == 1)
		return RM_OK;
	int st = tls_conn_status(t, r);
	return st == RM_EIO ? RM_EPROTO : st;
}

/* tls_conn_read_to - decrypt what has arrived into dst */
int tls_conn_read_to(struct tls_conn *t, char *dst, size_t cap, struct slice *plain)
{
	*plain = SLICE_NULL;
	ERR_clear_error();
	int r = SSL_read(t->ssl, dst, cap > INT32_MAX ? INT32_MAX : (int)cap);
	if (r > 0) {
		*plain = slice_make(dst, (size_t)r);
		return RM_OK;
	}
	return tls_conn_status(t, r);
}

/* tls_conn_read - decrypt what has arrived into the connection's buffer */
int tls_conn_read(struct tls_conn *t, struct slice *plain)
{
	if (t->plain == NULL && (t->plain = malloc(TLS_PLAIN_SIZE)) == NULL) {
		*plain = SLICE_NULL;
		return RM_ENOMEM;
	}
	return tls_conn_read_to(t, t->plain, TLS_PLAIN_SIZE, plain);
}

/* tls_conn_write - encrypt p[0..n) into wbio */
int tls_conn_write(struct tls_conn *t, const char *p, size_t n)
{
	while (n > 0) {
		int chunk = n > TLS_PLAIN_SIZE ? TLS_PLAIN_SIZE : (int)n;
		ERR_clear_error();
		int r = SSL_write(t->ssl, p, chunk);
		if (r <= 0)
			return RM_EPROTO; /* a memory BIO never pushes back */
		p += r;
		n -= (size_t)r;
	}
	return RM_OK;
}

/* tls_conn_out - move produced ciphertext into the send buffer */
struct slice tls_conn_out(struct tls_conn *t)
{
	size_t room = sizeof t->out - t->out_len;
	if (room > 0 && BIO_ctrl_pending(t->wbio) > 0) {
		int r = BIO_read(t->wbio, t->out + t->out_len, (int)room);
		if (r > 0)
			t->out_len += (size_t)r;
	}
	return slice_make(t->out, t->out_len);
}

/* tls_conn_sent - n bytes of the send buffer went out */
void tls_conn_sent(struct tls_conn *t, size_t n)
{
	if (n >= t->out_len) {
		t->out_len = 0;
		return;
	}
	memmove(t->out, t->out + n, t->out_len - n);
	t->out_len -= n;
}

/* tls_conn_out_pending - ciphertext waits to be sent */
bool tls_conn_out_pending(const struct tls_conn *t)
{
	return t->out_len > 0 || BIO_ctrl_pending(t->wbio) > 0;
}

/* tls_conn_version - "TLSv1.2", "TLSv1.3"; "" before the handshake */
const char *tls_conn_version(const struct tls_conn *t)
{
	return SSL_is_init_finished(t->ssl) ? SSL_get_version(t->ssl) : "";
}

/* tls_conn_cipher - the negotiated suite's standard name; "" before */
const char *tls_conn_cipher(const struct tls_conn *t)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(t->ssl);
	const char *n = c && SSL_is_init_finished(t->ssl) ? SSL_CIPHER_standard_name(c) : NULL;
	return n ? n : "";
}

/* tls_conn_verify_error - why the peer's certificate was rejected */
const char *tls_conn_verify_error(const struct tls_conn *t)
{
	long v = SSL_get_verify_result(t->ssl);
	return v == X509_V_OK ? "" : X509_verify_cert_error_string(v);
}

/* tls_conn_is13 - TLS 1.3 was negotiated */
bool tls_conn_is13(const struct tls_conn *t)
{
	return SSL_version(t->ssl) == TLS1_3_VERSION;
}

/* tls_conn_resumed - the session was resumed */
bool tls_conn_resumed(const struct tls_conn *t)
{
	return SSL_session_reused(t->ssl) == 1;
}
