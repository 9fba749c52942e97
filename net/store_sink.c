/* store_sink.c - the counting (and dumping) store behind ringmta-sink.
 *
 * One instance per shard, used only by that shard's thread; the shared
 * struct store_sink holds the counters (relaxed atomics) and the file
 * sequence (an atomic fetch-add, so shards never pick the same name).
 * Invariants: a handle is on exactly one of: in use by the shard, the
 * done list (committed this turn), the free list; commits are reported
 * only from turn_end, never from inside commit (store.h). Without a dump
 * directory append copies nothing.
 */
#include "net/store_sink.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

struct store_tx {
	uint64_t token;
	int status;            /* reported at turn_end */
	bool failed;           /* an append could not be kept */
	char *data;            /* the body so far (dump only) */
	size_t len, cap;
	struct store_tx *next; /* done list, then free list */
};

struct sink_shard {
	struct store_env env;
	struct store_sink *g;
	uint64_t seq;
	struct store_tx *done;
	struct store_tx *free;
};

#define SINK_ADD(p, n) __atomic_fetch_add((p), (n), __ATOMIC_RELAXED)

/* store_sink_init - a sink that dumps into dir (NULL: keeps nothing) */
void store_sink_init(struct store_sink *g, const char *dir)
{
	memset(g, 0, sizeof *g);
	g->dump_dir = dir;
}

/* store_sink_counts - the counters so far */
void store_sink_counts(const struct store_sink *g, struct store_sink_counts *out)
{
	out->messages = __atomic_load_n(&g->_messages, __ATOMIC_RELAXED);
	out->recipients = __atomic_load_n(&g->_recipients, __ATOMIC_RELAXED);
	out->bytes = __atomic_load_n(&g->_bytes, __ATOMIC_RELAXED);
	out->errors = __atomic_load_n(&g->_errors, __ATOMIC_RELAXED);
}

/* sink_create - one shard's instance */
static void *sink_create(void *global, const struct store_env *env)
{
	struct sink_shard *ss = calloc(1, sizeof *ss);

	if (ss == NULL)
		return NULL;
	ss->env = *env;
	ss->g = global;
	return ss;
}

/* sink_free_list - free a list of handles */
static void sink_free_list(struct store_tx *t)
{
	while (t != NULL) {
		struct store_tx *next = t->next;
		free(t->data);
		free(t);
		t = next;
	}
}

/* sink_destroy - free every handle */
static void sink_destroy(void *st)
{
	struct sink_shard *ss = st;

	if (ss == NULL)
		return;
	sink_free_list(ss->free);
	sink_free_list(ss->done);
	free(ss);
}

/* sink_begin - a handle and a queue ID: S, shard, sequence */
static int sink_begin(void *st, uint64_t token, struct store_tx **tx, char id[STORE_QUEUE_ID_MAX])
{
	struct sink_shard *ss = st;
	struct store_tx *t = ss->free;

	if (t != NULL)
		ss->free = t->next;
	else if ((t = calloc(1, sizeof *t)) == NULL)
		return RM_ENOMEM;
	t->token = token;
	t->status = RM_OK;
	t->failed = false;
	t->len = 0;
	t->next = NULL;
	snprintf(id, STORE_QUEUE_ID_MAX, "S%02X%010llX", ss->env.shard & 0xffu,
		 (unsigned long long)(++ss->seq & 0xffffffffffull));
	*tx = t;
	return RM_OK;
}

/* sink_keep - append n bytes to the handle's body copy */
static int sink_keep(struct store_tx *t, const void *p, size_t n)
{
	if (n > t->cap - t->len) {
		size_t cap = t->cap ? t->cap : 4096;
		while (cap - t->len < n)
			cap *= 2;
		char *d = realloc(t->data, cap);
		if (d == NULL)
			return RM_ENOMEM;
		t->data = d;
		t->cap = cap;
	}
	memcpy(t->data + t->len, p, n);
	t->len += n;
	return RM_OK;
}

/* sink_append - copy the slices when dumping; either way the caller may
 * reuse its memory at once */
static int sink_append(void *st, struct store_tx *tx, const struct iovec *iov, int n, uint64_t tag)
{
	struct sink_shard *ss = st;
	(void)tag;

	if (ss->g->dump_dir == NULL || tx->failed)
		return RM_OK;
	for (int i = 0; i < n; i++) {
		if (sink_keep(tx, iov[i].iov_base, iov[i].iov_len) != RM_OK) {
			tx->failed = true;
			return RM_ENOMEM;
		}
		if (ss->env.body_copied != NULL)
			*ss->env.body_copied += iov[i].iov_len;
	}
	return RM_OK;
}

/* sink_put_path - "NAME: <mailbox>\r\n" */
static int sink_put_path(struct buf *b, const char *name, const struct smtp_path *p)
{
	if (buf_put_str(b, name) != RM_OK || buf_put_str(b, ": <") != RM_OK ||
	    buf_put_slice(b, p->mailbox) != RM_OK || buf_put_str(b, ">\r\n") != RM_OK)
		return RM_ENOMEM;
	return RM_OK;
}

/* sink_write_all - write every byte of iov (short writes resumed) */
static int sink_write_all(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = writev(fd, iov, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return RM_EIO;
		}
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return RM_OK;
}

/* sink_dump - write DIR/<n>.eml: the envelope lines, then the body */
static int sink_dump(struct sink_shard *ss, struct store_tx *tx, const struct smtp_tx *env)
{
	char path[PATH_MAX];
	struct buf hdr;
	size_t cap = 64 + SMTP_PATH_MAX + env->nrcpt * (SMTP_PATH_MAX + 16);
	char *mem = malloc(cap);
	int rc = RM_ENOMEM;

	if (mem == NULL)
		return RM_ENOMEM;
	buf_init(&hdr, mem, cap);
	if (sink_put_path(&hdr, "X-Sink-From", &env->from) != RM_OK)
		goto out;
	for (size_t i = 0; i < env->nrcpt; i++)
		if (sink_put_path(&hdr, "X-Sink-To", &env->rcpt[i].path) != RM_OK)
			goto out;
	uint64_t n = SINK_ADD(&ss->g->_files, 1) + 1;
	snprintf(path, sizeof path, "%s/%llu.eml", ss->g->dump_dir, (unsigned long long)n);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = RM_EIO;
		goto out;
	}
	struct iovec iov[2] = { { hdr.ptr, hdr.len }, { tx->data, tx->len } };
	rc = sink_write_all(fd, iov, tx->len ? 2 : 1);
	if (close(fd) != 0)
		rc = RM_EIO;
out:
	free(mem);
	return rc;
}

/* sink_commit - count (and dump) now; report at the loop boundary */
static int sink_commit(void *st, struct store_tx *tx, const struct smtp_tx *env, struct slice client,
		       struct slice trace)
{
	struct sink_shard *ss = st;
	(void)client;
	(void)trace;

	tx->status = RM_OK;
	if (tx->failed)
		tx->status = RM_EIO;
	else if (ss->g->dump_dir != NULL)
		tx->status = sink_dump(ss, tx, env) == RM_OK ? RM_OK : RM_EIO;
	if (tx->status == RM_OK) {
		SINK_ADD(&ss->g->_messages, 1);
		SINK_ADD(&ss->g->_recipients, env->nrcpt);
		SINK_ADD(&ss->g->_bytes, env->body_bytes);
	} else {
		SINK_ADD(&ss->g->_errors, 1);
	}
	tx->next = ss->done;
	ss->done = tx;
	return RM_OK;
}

/* sink_recycle - back to the free list; a large body buffer is dropped */
static void sink_recycle(struct sink_shard *ss, struct store_tx *tx)
{
	if (tx->cap > (1u << 20)) {
		free(tx->data);
		tx->data = NULL;
		tx->cap = 0;
	}
	tx->len = 0;
	tx->next = ss->free;
	ss->free = tx;
}

/* sink_abort - forget the transaction */
static void sink_abort(void *st, struct store_tx *tx)
{
	sink_recycle(st, tx);
}

/* sink_turn_end - report every commit of this turn */
static void sink_turn_end(void *st)
{
	struct sink_shard *ss = st;
	struct store_tx *t = ss->done;

	ss->done = NULL;
	while (t != NULL) {
		struct store_tx *next = t->next;
		uint64_t token = t->token;
		int status = t->status;
		sink_recycle(ss, t);
		ss->env.cb.committed(ss->env.cb.ctx, token, status);
		t = next;
	}
}

/* sink_complete - the sink submits nothing to the ring */
static void sink_complete(void *st, uint32_t tag, int res, uint32_t flags)
{
	(void)st;
	(void)tag;
	(void)res;
	(void)flags;
}

/* sink_pending - nothing is ever in flight */
static unsigned sink_pending(void *st)
{
	(void)st;
	return 0;
}

const struct store_ops store_sink_ops = {
	.name = "sink",
	.durable = false,
	.create = sink_create,
	.destroy = sink_destroy,
	.begin = sink_begin,
	.append = sink_append,
	.commit = sink_commit,
	.abort = sink_abort,
	.turn_end = sink_turn_end,
	.complete = sink_complete,
	.pending = sink_pending,
};
