/* store_null.c - a message store that keeps nothing.
 *
 * begin hands out queue IDs (shard, start time and a sequence, in hex) so
 * logs and replies look like the real thing; append forgets the bytes at
 * once (RM_OK: nothing to keep alive); commit is reported at the next
 * turn_end, like a group commit that costs nothing. Not durable, and says
 * so (ops.durable is false). One instance per shard, used by its thread.
 */
#include "net/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct store_tx {
	uint64_t token;
	bool committed;
	struct store_tx *next; /* commit list, then free list */
};

struct null_store {
	struct store_env env;
	uint64_t seq;
	uint64_t epoch;
	struct store_tx *done;  /* committed this turn, reported at turn_end */
	struct store_tx *free;
};

/* null_create - one shard's null store */
static void *null_create(void *global, const struct store_env *env)
{
	(void)global;
	struct null_store *ns = calloc(1, sizeof *ns);
	if (ns == NULL)
		return NULL;
	ns->env = *env;
	ns->epoch = (uint64_t)time(NULL);
	return ns;
}

/* null_destroy - free every handle */
static void null_destroy(void *st)
{
	struct null_store *ns = st;
	struct store_tx *t, *next;

	if (ns == NULL)
		return;
	for (t = ns->free; t != NULL; t = next) {
		next = t->next;
		free(t);
	}
	for (t = ns->done; t != NULL; t = next) {
		next = t->next;
		free(t);
	}
	free(ns);
}

/* null_begin - a handle and a fresh queue ID */
static int null_begin(void *st, uint64_t token, struct store_tx **tx, char id[STORE_QUEUE_ID_MAX])
{
	struct null_store *ns = st;
	struct store_tx *t = ns->free;

	if (t != NULL)
		ns->free = t->next;
	else if ((t = malloc(sizeof *t)) == NULL)
		return RM_ENOMEM;
	t->token = token;
	t->committed = false;
	t->next = NULL;
	snprintf(id, STORE_QUEUE_ID_MAX, "%08llX%02X%06llX", (unsigned long long)ns->epoch & 0xffffffffu,
		 ns->env.shard & 0xffu, (unsigned long long)(++ns->seq & 0xffffffu));
	*tx = t;
	return RM_OK;
}

/* null_append - the bytes are forgotten, so the caller may reuse them now */
static int null_append(void *st, struct store_tx *tx, const struct iovec *iov, int n, uint64_t tag)
{
	(void)st;
	(void)tx;
	(void)iov;
	(void)n;
	(void)tag;
	return RM_OK;
}

/* null_commit - report success at the loop boundary */
static int null_commit(void *st, struct store_tx *tx, const struct smtp_tx *env, struct slice client,
		       struct slice trace)
{
	struct null_store *ns = st;
	(void)env;
	(void)client;
	(void)trace;
	tx->committed = true;
	tx->next = ns->done;
	ns->done = tx;
	return RM_OK;
}

/* null_abort - recycle the handle */
static void null_abort(void *st, struct store_tx *tx)
{
	struct null_store *ns = st;
	tx->next = ns->free;
	ns->free = tx;
}

/* null_turn_end - report every commit of this turn */
static void null_turn_end(void *st)
{
	struct null_store *ns = st;
	struct store_tx *t = ns->done;

	ns->done = NULL;
	while (t != NULL) {
		struct store_tx *next = t->next;
		uint64_t token = t->token;
		t->next = ns->free;
		ns->free = t;
		ns->env.cb.committed(ns->env.cb.ctx, token, 0);
		t = next;
	}
}

/* null_complete - the null store submits nothing */
static void null_complete(void *st, uint32_t tag, int res, uint32_t flags)
{
	(void)st;
	(void)tag;
	(void)res;
	(void)flags;
}

/* null_pending - nothing is ever in flight */
static unsigned null_pending(void *st)
{
	(void)st;
	return 0;
}

const struct store_ops store_null_ops = {
	.name = "null",
	.durable = false,
	.create = null_create,
	.destroy = null_destroy,
	.begin = null_begin,
	.append = null_append,
	.commit = null_commit,
	.abort = null_abort,
	.turn_end = null_turn_end,
	.complete = null_complete,
	.pending = null_pending,
};
