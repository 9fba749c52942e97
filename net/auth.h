/* auth.h - SMTP AUTH credential checks off the shard loops.
 *
 * The --auth-file holds `user:crypt(3)-hash` lines (SHA-512 `$6$`, yescrypt
 * `$y$`, anything libcrypt knows). A hash costs milliseconds, so checks run
 * on a small pool of worker threads; a shard submits a request (copying the
 * credentials) and later takes the result from its own inbox.
 *
 * Paths between the threads:
 *  - shard -> workers: a mutex + condition variable queue. Taken once per
 *    AUTH command, which is off the hot path (a session authenticates once).
 *  - workers -> shard: lock-free. Each shard has an inbox, a Treiber stack
 *    that workers push onto with a CAS and the shard empties with one atomic
 *    exchange (no ABA: the consumer never pops single nodes), plus an
 *    eventfd the worker writes so the shard's ring wakes (a read on the
 *    eventfd is kept armed in the ring).
 *
 * Unknown users are checked against a dummy hash of the same cost as a
 * real one, so timing does not tell which users exist. Failures are counted
 * per client address (a table only the workers touch, under its own lock):
 * each failure after the first delays the 535 a little more, and past
 * AUTH_FAIL_MAX failures in AUTH_FAIL_WINDOW_S the session gets 421 instead.
 *
 * auth_load may be called from any thread at any time (SIGHUP): the table is
 * swapped under the pool's lock; checks already running finish on the copy
 * of the hash they took.
 */
#ifndef RINGMTA_NET_AUTH_H
#define RINGMTA_NET_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/err.h"
#include "core/slice.h"

#define AUTH_FAIL_MAX 5          /* failures per address, then 421 */
#define AUTH_FAIL_WINDOW_S 600   /* failures older than this are forgotten */
#define AUTH_DELAY_STEP_MS 500   /* added to the 535 per earlier failure */
#define AUTH_DELAY_MAX_MS 5000

struct auth;

/* What a check found, for the shard that asked. */
struct auth_result {
	uint64_t token;     /* the shard's own reference to the session */
	bool ok;
	bool lockout;       /* too many failures from this address: 421 */
	uint32_t delay_ms;  /* wait this long before answering a failure */
	struct auth_result *_next;
};

/* One shard's inbox for results. */
struct auth_inbox {
	int efd;                        /* eventfd; the shard reads it */
	struct auth_result *_head;      /* Treiber stack (atomic) */
};

/* auth_new - the worker pool (threads: 0 picks 2); NULL with one line in
 * err. The user table is empty until auth_load. */
struct auth *auth_new(unsigned threads, char *err, size_t errlen);

/* auth_free - stop the workers (pending requests are dropped) and free;
 * returns NULL */
struct auth *auth_free(struct auth *a);

/* auth_load - read the auth file and make it the table (the old table is
 * kept on error). Lines: user:hash; blank lines and #comments skipped. */
RM_MUST_USE int auth_load(struct auth *a, const char *path, char *err, size_t errlen);

/* auth_users - users in the current table */
size_t auth_users(struct auth *a);

/* auth_inbox_init / _fini - a shard's inbox (an eventfd) */
RM_MUST_USE int auth_inbox_init(struct auth_inbox *in);
void auth_inbox_fini(struct auth_inbox *in);

/* auth_submit - queue a check; the result appears in `in` with token.
 * The credentials are copied (and wiped after the check). RM_ENOMEM when
 * the queue is full or memory is short: answer 454 and move on. */
RM_MUST_USE int auth_submit(struct auth *a, struct auth_inbox *in, uint64_t token,
			    const struct sockaddr_storage *peer, struct slice user, struct slice pass);

/* auth_take - every result waiting in the inbox, as a list linked through
 * _next (NULL: none); the caller frees each with auth_result_free. The
 * caller reads the eventfd itself (a read kept armed in its ring). */
struct auth_result *auth_take(struct auth_inbox *in);

/* auth_result_free - free one result; returns the next */
struct auth_result *auth_result_free(struct auth_result *r);

/* auth_check_now - the blocking twin (tools, tests): check user/pass on the
 * calling thread, without the per-address count */
bool auth_check_now(struct auth *a, struct slice user, struct slice pass);

#endif
