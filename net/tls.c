/* tls.c - TLS over memory BIOs (BoringSSL, or OpenSSL 3 when built with
 * -DRINGMTA_TLS_LIB=openssl: the calls used here are common to both but
 * for the cipher list, marked where it differs).
 *
 * Every SSL_* and BIO_* call of the program is here. A connection's two
 * BIOs are our own, so ciphertext is copied as little as the library lets:
 *   - the read BIO hands the library first the bytes kept in the
 *     connection (tls_conn_push copies into it), then the host's lent
 *     receive buffer (tls_conn_lend: read in place, no copy); what the
 *     library left of a lent buffer is kept when the next one is lent;
 *   - the write BIO appends the records the library seals straight to the
 *     connection's send buffer, which tls_conn_out hands to the host as it
 *     is (no second buffer to copy out of, no move after a partial send:
 *     an offset advances).
 * The send buffer grows when needed; one given out by tls_conn_out and not
 * yet _sent is freed only at _sent, as a send may still read it.
 * tls_conn_writev gathers small pieces into full records (a thread's
 * staging buffer), so a message's commands, trace header and body go out
 * in as few records as their size allows. The plaintext buffer of
 * tls_conn_read is allocated on its first use: a host that decrypts into
 * its own buffers (tls_conn_read_to) does not pay for it in every session.
 *
 * Invariants: a tls_conn is used by one thread; the error queue is emptied
 * before each library call (tls_err_reset), so an error seen is this
 * call's. out[out_off..out_len) is
 * unsent ciphertext; in[in_off..in_len) pushed and unread; lent is unread
 * lent ciphertext. A context's refcount is atomic (shards start and end
 * connections concurrently); the slot's lock guards only the swap and the
 * reference taken by a reader whose cached generation is old.
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
	char key[TLS_RESUME_KEY]; /* client: the hop its tickets are kept for */
	char *out;                /* ciphertext to send, on the first write */
	size_t out_off, out_len, out_cap;
	char *out_old;            /* a grown-out send buffer a send may read */
	bool out_lent;            /* tls_conn_out handed out[out_off..] out */
	char *in;                 /* pushed ciphertext the library has not read */
	size_t in_off, in_len, in_cap;
	struct slice lent;        /* the host's receive buffer, read in place */
	char *plain; /* TLS_PLAIN_SIZE, on tls_conn_read's first call */
};

static BIO_METHOD *tls_bio_method; /* our BIOs: see the file's header */
static pthread_once_t tls_bio_once = PTHREAD_ONCE_INIT;
static _Thread_local char tls_stage[TLS_PLAIN_SIZE]; /* tls_conn_writev's records */

/* tls_err_reset - empty this thread's error queue: a look at its head
 * when it is already empty (the common case), as ERR_clear_error walks
 * and wipes every entry each time */
static inline void tls_err_reset(void)
{
	if (ERR_peek_error() != 0)
		ERR_clear_error();
}

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

/* tls_out_room - room for n more bytes of ciphertext in t->out */
static int tls_out_room(struct tls_conn *t, size_t n)
{
	if (t->out_len + n <= t->out_cap)
		return RM_OK;
	if (t->out_off > 0 && !t->out_lent) {
		t->out_len -= t->out_off;
		memmove(t->out, t->out + t->out_off, t->out_len);
		t->out_off = 0;
		if (t->out_len + n <= t->out_cap)
			return RM_OK;
	}
	size_t cap = t->out_cap ? t->out_cap * 2 : TLS_OUT_SIZE;
	while (cap < t->out_len + n)
		cap *= 2;
	char *p = malloc(cap);
	if (p == NULL)
		return RM_ENOMEM;
	if (t->out_len > 0)
		memcpy(p, t->out, t->out_len); /* offsets stay as they were */
	if (t->out_lent && t->out_old == NULL)
		t->out_old = t->out; /* a send may read it: freed at _sent */
	else
		free(t->out);
	t->out = p;
	t->out_cap = cap;
	return RM_OK;
}

/* tls_bio_write - the library's ciphertext, appended to the send buffer */
static int tls_bio_write(BIO *b, const char *p, int n)
{
	struct tls_conn *t = BIO_get_data(b);
	if (n <= 0)
		return 0;
	if (tls_out_room(t, (size_t)n) != RM_OK)
		return -1;
	memcpy(t->out + t->out_len, p, (size_t)n);
	t->out_len += (size_t)n;
	return n;
}

/* tls_bio_read - ciphertext for the library: kept bytes first, then the
 * lent buffer; none is "retry later" */
static int tls_bio_read(BIO *b, char *p, int n)
{
	struct tls_conn *t = BIO_get_data(b);
	size_t k;

	BIO_clear_retry_flags(b);
	if (n <= 0)
		return 0;
	if (t->in_off < t->in_len) {
		k = t->in_len - t->in_off < (size_t)n ? t->in_len - t->in_off : (size_t)n;
		memcpy(p, t->in + t->in_off, k);
		t->in_off += k;
		if (t->in_off == t->in_len)
			t->in_off = t->in_len = 0;
		return (int)k;
	}
	if (t->lent.len > 0) {
		k = t->lent.len < (size_t)n ? t->lent.len : (size_t)n;
		memcpy(p, t->lent.ptr, k);
		t->lent = slice_make(t->lent.ptr + k, t->lent.len - k);
		return (int)k;
	}
	BIO_set_retry_read(b);
	return -1;
}

/* tls_bio_ctrl - flush succeeds (writes are done when they return);
 * nothing else is known */
static long tls_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

/* tls_bio_init - the BIO method, once per process */
static void tls_bio_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ringmta");
	if (m == NULL || !BIO_meth_set_write(m, tls_bio_write) || !BIO_meth_set_read(m, tls_bio_read) ||
	    !BIO_meth_set_ctrl(m, tls_bio_ctrl)) {
		BIO_meth_free(m);
		return;
	}
	tls_bio_method = m;
}

/* tls_bio_new - one of our BIOs over t */
static BIO *tls_bio_new(struct tls_conn *t)
{
	pthread_once(&tls_bio_once, tls_bio_init);
	if (tls_bio_method == NULL)
		return NULL;
	BIO *b = BIO_new(tls_bio_method);
	if (b == NULL)
		return NULL;
	BIO_set_data(b, t);
	BIO_set_init(b, 1);
	return b;
}

/* tls_conn_new - a connection on ctx */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, const char *host)
{
	struct tls_conn *t = calloc(1, sizeof *t);
	if (t == NULL)
		return NULL;
	ERR_clear_error();
	t->ssl = SSL_new(ctx->ssl);
	BIO *rbio = tls_bio_new(t), *wbio = tls_bio_new(t);
	if (t->ssl == NULL || rbio == NULL || wbio == NULL) {
		BIO_free(rbio);
		BIO_free(wbio);
		goto fail_ssl;
	}
	SSL_set_bio(t->ssl, rbio, wbio);
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
	free(t->out);
	free(t->out_old);
	free(t->in);
	free(t);
	tls_err_reset();
	return NULL;
}

/* tls_in_keep - copy p[0..n) after the kept ciphertext */
static int tls_in_keep(struct tls_conn *t, const char *p, size_t n)
{
	if (n == 0)
		return RM_OK;
	if (t->in_off > 0) {
		t->in_len -= t->in_off;
		memmove(t->in, t->in + t->in_off, t->in_len);
		t->in_off = 0;
	}
	if (t->in_len + n > t->in_cap) {
		size_t cap = t->in_cap ? t->in_cap * 2 : TLS_OUT_SIZE;
		while (cap < t->in_len + n)
			cap *= 2;
		char *q = realloc(t->in, cap);
		if (q == NULL)
			return RM_ENOMEM;
		t->in = q;
		t->in_cap = cap;
	}
	memcpy(t->in + t->in_len, p, n);
	t->in_len += n;
	return RM_OK;
}

/* tls_conn_push - ciphertext from the peer, copied */
int tls_conn_push(struct tls_conn *t, const char *p, size_t n)
{
	if (tls_in_keep(t, t->lent.ptr, t->lent.len) != RM_OK)
		return RM_ENOMEM;
	t->lent = SLICE_NULL;
	return tls_in_keep(t, p, n);
}

/* tls_conn_lend - ciphertext from the peer, read in place */
int tls_conn_lend(struct tls_conn *t, const char *p, size_t n)
{
	if (tls_in_keep(t, t->lent.ptr, t->lent.len) != RM_OK)
		return RM_ENOMEM;
	t->lent = slice_make(p, n);
	return RM_OK;
}

/* tls_conn_unlend - forget the lent buffer's unread rest */
void tls_conn_unlend(struct tls_conn *t)
{
	t->lent = SLICE_NULL;
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
	tls_err_reset();
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
	tls_err_reset();
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

/* tls_conn_write - encrypt p[0..n) into the send buffer */
int tls_conn_write(struct tls_conn *t, const char *p, size_t n)
{
	while (n > 0) {
		int chunk = n > TLS_PLAIN_SIZE ? TLS_PLAIN_SIZE : (int)n;
		tls_err_reset();
		int r = SSL_write(t->ssl, p, chunk);
		if (r <= 0)
			return RM_EPROTO; /* a memory BIO never pushes back */
		p += r;
		n -= (size_t)r;
	}
	return RM_OK;
}

/* tls_conn_writev - encrypt v[0..n) in records as full as the pieces
 * allow: pieces that fill a record alone are sealed in place, the rest
 * gathered in the thread's staging buffer */
int tls_conn_writev(struct tls_conn *t, const struct iovec *v, int n)
{
	size_t staged = 0;

	for (int i = 0; i < n; i++) {
		const char *p = v[i].iov_base;
		size_t len = v[i].iov_len;
		while (len > 0) {
			if (staged == 0 && len >= TLS_PLAIN_SIZE) {
				size_t k = len - len % TLS_PLAIN_SIZE;
				if (tls_conn_write(t, p, k) != RM_OK)
					return RM_EPROTO;
				p += k;
				len -= k;
				continue;
			}
			size_t k = TLS_PLAIN_SIZE - staged < len ? TLS_PLAIN_SIZE - staged : len;
			memcpy(tls_stage + staged, p, k);
			staged += k;
			p += k;
			len -= k;
			if (staged == TLS_PLAIN_SIZE) {
				if (tls_conn_write(t, tls_stage, staged) != RM_OK)
					return RM_EPROTO;
				staged = 0;
			}
		}
	}
	return staged > 0 ? tls_conn_write(t, tls_stage, staged) : RM_OK;
}

/* tls_conn_out - the ciphertext waiting in the send buffer */
struct slice tls_conn_out(struct tls_conn *t)
{
	if (t->out_off == t->out_len)
		return slice_make(t->out, 0);
	t->out_lent = true;
	return slice_make(t->out + t->out_off, t->out_len - t->out_off);
}

/* tls_conn_sent - n bytes of the send buffer went out: the send is over */
void tls_conn_sent(struct tls_conn *t, size_t n)
{
	t->out_lent = false;
	free(t->out_old);
	t->out_old = NULL;
	t->out_off += n < t->out_len - t->out_off ? n : t->out_len - t->out_off;
	if (t->out_off == t->out_len)
		t->out_off = t->out_len = 0;
}

/* tls_conn_out_pending - ciphertext waits to be sent */
bool tls_conn_out_pending(const struct tls_conn *t)
{
	return t->out_off < t->out_len;
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
