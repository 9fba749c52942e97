/* auth.c - the AUTH worker pool, the user table and the failure counts.
 *
 * Invariants: the request queue, the user table pointer and the failure
 * table are touched only under a._lock (never by a shard except the short
 * enqueue in auth_submit). A worker copies the user's hash under the lock
 * and runs crypt_r outside it. Passwords are wiped from every buffer that
 * held them before it is freed. Results go to shards only through their
 * inbox (lock-free, see auth.h).
 * Threads: auth_submit and auth_take from the shard owning the inbox;
 * auth_load from any thread; the workers are this file's own.
 */
#include "net/auth.h"

#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#define AUTH_QUEUE_MAX 1024    /* pending checks; past it 454 */
#define AUTH_USER_MAX 256
#define AUTH_FAIL_SLOTS 4096   /* addresses remembered (direct-mapped, 4-way) */
#define AUTH_FAIL_WAYS 4
#define AUTH_LINE_MAX 4096

/* A fixed $6$ hash for tables without users (its password is random junk). */
#define AUTH_DUMMY_HASH "$6$rm.dummy.salt$"

struct auth_user {
	char *name;
	char *hash;
};

struct auth_table {
	struct auth_user *u;
	size_t n;
};

struct auth_req {
	struct auth_req *next;
	struct auth_inbox *in;
	uint64_t token;
	uint8_t key[17];
	size_t ulen, plen;
	char *pass;          /* NUL-terminated, wiped before free */
	char user[AUTH_USER_MAX + 1];
};

struct auth_fail {
	uint8_t key[17];
	uint32_t count;
	int64_t last;        /* seconds, monotonic */
};

struct auth {
	pthread_mutex_t _lock;
	pthread_cond_t _cond;
	struct auth_req *_qhead, *_qtail;
	size_t _qlen;
	bool _stop;
	struct auth_table *_table;
	struct auth_fail *_fails;   /* AUTH_FAIL_SLOTS */
	pthread_t *_threads;
	unsigned _nthreads;
};

/* auth_now_s - monotonic seconds */
static int64_t auth_now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* auth_wipe_free - zero then free a secret */
static void auth_wipe_free(char *p, size_t n)
{
	if (p == NULL)
		return;
	explicit_bzero(p, n);
	free(p);
}

/* auth_table_free - free a user table */
static void auth_table_free(struct auth_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n; i++) {
		free(t->u[i].name);
		free(t->u[i].hash);
	}
	free(t->u);
	free(t);
}

/* auth_key - the failure table key of an address (family + bytes) */
static void auth_key(const struct sockaddr_storage *sa, uint8_t key[17])
{
	memset(key, 0, 17);
	if (sa == NULL)
		return;
	if (sa->ss_family == AF_INET6) {
		key[0] = 6;
		memcpy(key + 1, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
	} else if (sa->ss_family == AF_INET) {
		key[0] = 4;
		memcpy(key + 1, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
	}
}

/* auth_fail_slot - the failure entry of key (claiming the stalest of its
 * ways when absent); under _lock */
static struct auth_fail *auth_fail_slot(struct auth *a, const uint8_t key[17], int64_t now)
{
	uint64_t h = 1469598103934665603ull;
	for (int i = 0; i < 17; i++)
		h = (h ^ key[i]) * 1099511628211ull;
	struct auth_fail *set = &a->_fails[(h % (AUTH_FAIL_SLOTS / AUTH_FAIL_WAYS)) * AUTH_FAIL_WAYS];
	struct auth_fail *victim = &set[0];
	for (int w = 0; w < AUTH_FAIL_WAYS; w++) {
		if (memcmp(set[w].key, key, 17) == 0 && set[w].count > 0) {
			if (now - set[w].last > AUTH_FAIL_WINDOW_S)
				set[w].count = 0;
			return &set[w];
		}
		if (set[w].count == 0 || set[w].last < victim->last)
			victim = &set[w];
	}
	memcpy(victim->key, key, 17);
	victim->count = 0;
	victim->last = now;
	return victim;
}

/* auth_same - constant-time comparison of two NUL-terminated hashes */
static bool auth_same(const char *x, const char *y)
{
	size_t nx = strlen(x), ny = strlen(y);
	unsigned char d = nx != ny;
	for (size_t i = 0; i < nx && i < ny; i++)
		d |= (unsigned char)(x[i] ^ y[i]);
	return d == 0;
}

/* auth_crypt_check - pass against hash with crypt_r; a hash crypt cannot
 * use (a locked account "!", "*") never matches */
static bool auth_crypt_check(struct crypt_data *cd, const char *pass, const char *hash)
{
	memset(cd, 0, sizeof *cd);
	const char *out = crypt_r(pass, hash, cd);
	bool ok = out != NULL && out[0] != '*' && hash[0] == '$' && auth_same(out, hash);
	explicit_bzero(cd, sizeof *cd);
	return ok;
}

/* auth_lookup - copy the hash to check pass against (the user's, or the
 * dummy of the same cost); under _lock. Returns whether the user exists. */
static bool auth_lookup(struct auth *a, const char *user, size_t ulen, char *hash, size_t cap)
{
	const struct auth_table *t = a->_table;
	const char *h = NULL, *dummy = AUTH_DUMMY_HASH;

	for (size_t i = 0; t != NULL && i < t->n; i++) {
		if (strlen(t->u[i].name) == ulen && memcmp(t->u[i].name, user, ulen) == 0) {
			h = t->u[i].hash;
			break;
		}
	}
	if (h == NULL && t != NULL && t->n > 0)
		dummy = t->u[0].hash; /* same algorithm and cost as real users */
	snprintf(hash, cap, "%s", h ? h : dummy);
	return h != NULL;
}

/* auth_inbox_push - hand a result to its shard and ring its doorbell */
static void auth_inbox_push(struct auth_inbox *in, struct auth_result *r)
{
	struct auth_result *head = __atomic_load_n(&in->_head, __ATOMIC_RELAXED);
	do {
		r->_next = head;
	} while (!__atomic_compare_exchange_n(&in->_head, &head, r, true, __ATOMIC_RELEASE,
					      __ATOMIC_RELAXED));
	uint64_t one = 1;
	ssize_t w;
	do
		w = write(in->efd, &one, sizeof one);
	while (w < 0 && errno == EINTR);
}

/* auth_run - one check: crypt, count failures, answer the shard */
static void auth_run(struct auth *a, struct auth_req *q, struct crypt_data *cd)
{
	char hash[CRYPT_OUTPUT_SIZE];
	struct auth_result *r = calloc(1, sizeof *r);

	pthread_mutex_lock(&a->_lock);
	bool known = auth_lookup(a, q->user, q->ulen, hash, sizeof hash);
	pthread_mutex_unlock(&a->_lock);

	bool ok = auth_crypt_check(cd, q->pass, hash) && known;
	bool lockout = false;
	uint32_t delay = 0;

	pthread_mutex_lock(&a->_lock);
	int64_t now = auth_now_s();
	struct auth_fail *f = auth_fail_slot(a, q->key, now);
	if (!ok) {
		f->count++;
		f->last = now;
		if (f->count >= AUTH_FAIL_MAX)
			lockout = true;
		uint64_t d = (uint64_t)(f->count - 1) * AUTH_DELAY_STEP_MS;
		delay = d > AUTH_DELAY_MAX_MS ? AUTH_DELAY_MAX_MS : (uint32_t)d;
	} else if (f->count >= AUTH_FAIL_MAX) {
		/* Locked out: right credentials do not help until the window
		 * passes (else guessing would continue at full speed). */
		ok = false;
		lockout = true;
	}
	pthread_mutex_unlock(&a->_lock);

	explicit_bzero(hash, sizeof hash);
	auth_wipe_free(q->pass, q->plen + 1);
	if (r != NULL) {
		r->token = q->token;
		r->ok = ok;
		r->lockout = lockout;
		r->delay_ms = delay;
		auth_inbox_push(q->in, r);
	}
	/* An out-of-memory result is lost: the session times out. */
	free(q);
}

/* auth_worker - a pool thread */
static void *auth_worker(void *arg)
{
	struct auth *a = arg;
	struct crypt_data *cd = malloc(sizeof *cd);

	for (;;) {
		pthread_mutex_lock(&a->_lock);
		while (!a->_stop && a->_qhead == NULL)
			pthread_cond_wait(&a->_cond, &a->_lock);
		if (a->_stop) {
			pthread_mutex_unlock(&a->_lock);
			break;
		}
		struct auth_req *q = a->_qhead;
		a->_qhead = q->next;
		if (a->_qhead == NULL)
			a->_qtail = NULL;
		a->_qlen--;
		pthread_mutex_unlock(&a->_lock);
		if (cd != NULL) {
			auth_run(a, q, cd);
		} else {
			auth_wipe_free(q->pass, q->plen + 1);
			free(q);
		}
	}
	free(cd);
	return NULL;
}

/* auth_new - the worker pool */
struct auth *auth_new(unsigned threads, char *err, size_t errlen)
{
	struct auth *a = calloc(1, sizeof *a);
	if (threads == 0)
		threads = 2;
	if (a == NULL)
		goto nomem;
	pthread_mutex_init(&a->_lock, NULL);
	pthread_cond_init(&a->_cond, NULL);
	a->_fails = calloc(AUTH_FAIL_SLOTS, sizeof *a->_fails);
	a->_threads = calloc(threads, sizeof *a->_threads);
	if (a->_fails == NULL || a->_threads == NULL)
		goto nomem;
	for (unsigned i = 0; i < threads; i++) {
		if (pthread_create(&a->_threads[i], NULL, auth_worker, a) != 0) {
			snprintf(err, errlen, "auth: cannot start worker threads");
			return auth_free(a);
		}
		a->_nthreads++;
	}
	return a;
nomem:
	snprintf(err, errlen, "auth: out of memory");
	return auth_free(a);
}

/* auth_free - stop the workers and free */
struct auth *auth_free(struct auth *a)
{
	if (a == NULL)
		return NULL;
	pthread_mutex_lock(&a->_lock);
	a->_stop = true;
	pthread_cond_broadcast(&a->_cond);
	pthread_mutex_unlock(&a->_lock);
	for (unsigned i = 0; i < a->_nthreads; i++)
		pthread_join(a->_threads[i], NULL);
	while (a->_qhead != NULL) {
		struct auth_req *q = a->_qhead;
		a->_qhead = q->next;
		auth_wipe_free(q->pass, q->plen + 1);
		free(q);
	}
	auth_table_free(a->_table);
	pthread_cond_destroy(&a->_cond);
	pthread_mutex_destroy(&a->_lock);
	free(a->_fails);
	free(a->_threads);
	free(a);
	return NULL;
}

/* auth_parse_line - one `user:hash` line into t; RM_EPROTO when bad */
static int auth_parse_line(struct auth_table *t, size_t *cap, char *line)
{
	size_t n = strcspn(line, "\r\n");
	line[n] = '\0';
	char *p = line;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0' || *p == '#')
		return RM_OK;
	char *colon = strchr(p, ':');
	if (colon == NULL || colon == p || (size_t)(colon - p) > AUTH_USER_MAX || colon[1] == '\0')
		return RM_EPROTO;
	*colon = '\0';
	char *hash = colon + 1;
	hash[strcspn(hash, ": \t")] = '\0'; /* /etc/shadow style trailing fields */
	if (t->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		struct auth_user *u = realloc(t->u, nc * sizeof *u);
		if (u == NULL)
			return RM_ENOMEM;
		t->u = u;
		*cap = nc;
	}
	t->u[t->n].name = strdup(p);
	t->u[t->n].hash = strdup(hash);
	if (t->u[t->n].name == NULL || t->u[t->n].hash == NULL) {
		free(t->u[t->n].name);
		free(t->u[t->n].hash);
		return RM_ENOMEM;
	}
	t->n++;
	return RM_OK;
}

/* auth_load - read path and swap it in as the user table */
int auth_load(struct auth *a, const char *path, char *err, size_t errlen)
{
	char line[AUTH_LINE_MAX];
	size_t cap = 0;
	unsigned lineno = 0;
	int rc = RM_OK;
	FILE *f = fopen(path, "re");

	if (f == NULL) {
		snprintf(err, errlen, "auth-file %s: %s", path, strerror(errno));
		return RM_EIO;
	}
	struct auth_table *t = calloc(1, sizeof *t);
	if (t == NULL)
		rc = RM_ENOMEM;
	while (rc == RM_OK && fgets(line, sizeof line, f) != NULL) {
		lineno++;
		rc = auth_parse_line(t, &cap, line);
	}
	explicit_bzero(line, sizeof line);
	fclose(f);
	if (rc != RM_OK) {
		if (rc == RM_EPROTO)
			snprintf(err, errlen, "auth-file %s: line %u: expected user:hash", path, lineno);
		else
			snprintf(err, errlen, "auth-file %s: out of memory", path);
		auth_table_free(t);
		return rc;
	}
	pthread_mutex_lock(&a->_lock);
	struct auth_table *old = a->_table;
	a->_table = t;
	pthread_mutex_unlock(&a->_lock);
	auth_table_free(old);
	return RM_OK;
}

/* auth_users - users in the current table */
size_t auth_users(struct auth *a)
{
	pthread_mutex_lock(&a->_lock);
	size_t n = a->_table ? a->_table->n : 0;
	pthread_mutex_unlock(&a->_lock);
	return n;
}

/* auth_inbox_init - a shard's inbox */
int auth_inbox_init(struct auth_inbox *in)
{
	in->_head = NULL;
	in->efd = eventfd(0, EFD_CLOEXEC); /* blocking: the ring's read waits on it */
	return in->efd < 0 ? RM_EIO : RM_OK;
}

/* auth_inbox_fini - close the eventfd and drop unread results */
void auth_inbox_fini(struct auth_inbox *in)
{
	struct auth_result *r = auth_take(in);
	while (r != NULL)
		r = auth_result_free(r);
	if (in->efd >= 0)
		close(in->efd);
	in->efd = -1;
}

/* auth_submit - queue a check for a worker */
int auth_submit(struct auth *a, struct auth_inbox *in, uint64_t token,
		const struct sockaddr_storage *peer, struct slice user, struct slice pass)
{
	struct auth_req *q = calloc(1, sizeof *q);
	if (q == NULL)
		return RM_ENOMEM;
	q->pass = malloc(pass.len + 1);
	if (q->pass == NULL) {
		free(q);
		return RM_ENOMEM;
	}
	if (pass.len)
		memcpy(q->pass, pass.ptr, pass.len);
	q->pass[pass.len] = '\0'; /* a NUL inside ends the password early: crypt's rule */
	q->plen = pass.len;
	/* A name too long matches nobody: checked as empty (still hashed). */
	q->ulen = user.len > AUTH_USER_MAX ? 0 : user.len;
	if (q->ulen)
		memcpy(q->user, user.ptr, q->ulen);
	q->in = in;
	q->token = token;
	auth_key(peer, q->key);

	pthread_mutex_lock(&a->_lock);
	if (a->_qlen >= AUTH_QUEUE_MAX || a->_stop) {
		pthread_mutex_unlock(&a->_lock);
		auth_wipe_free(q->pass, q->plen + 1);
		free(q);
		return RM_ENOMEM;
	}
	if (a->_qtail)
		a->_qtail->next = q;
	else
		a->_qhead = q;
	a->_qtail = q;
	a->_qlen++;
	pthread_cond_signal(&a->_cond);
	pthread_mutex_unlock(&a->_lock);
	return RM_OK;
}

/* auth_take - every waiting result (the shard's ring read drains the
 * eventfd; a result pushed after that read rings it again) */
struct auth_result *auth_take(struct auth_inbox *in)
{
	return __atomic_exchange_n(&in->_head, NULL, __ATOMIC_ACQUIRE);
}

/* auth_result_free - free one result; the next */
struct auth_result *auth_result_free(struct auth_result *r)
{
	struct auth_result *next = r->_next;
	free(r);
	return next;
}

/* auth_check_now - the blocking twin, without failure counts */
bool auth_check_now(struct auth *a, struct slice user, struct slice pass)
{
	char hash[CRYPT_OUTPUT_SIZE], *pw = malloc(pass.len + 1);
	struct crypt_data *cd = malloc(sizeof *cd);
	bool ok = false;

	if (pw != NULL && cd != NULL && user.len <= AUTH_USER_MAX) {
		memcpy(pw, pass.ptr ? pass.ptr : "", pass.len);
		pw[pass.len] = '\0';
		pthread_mutex_lock(&a->_lock);
		bool known = auth_lookup(a, user.ptr ? user.ptr : "", user.len, hash, sizeof hash);
		pthread_mutex_unlock(&a->_lock);
		ok = auth_crypt_check(cd, pw, hash) && known;
		explicit_bzero(hash, sizeof hash);
	}
	if (pw != NULL)
		auth_wipe_free(pw, pass.len + 1);
	free(cd);
	return ok;
}
