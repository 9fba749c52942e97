/* queue_offline.c - ringmta-queue over the spool files themselves.
 *
 * A snapshot is every shard's spool_scan, its messages merged in queue-ID
 * (arrival) order; the read-only backend stays open so show can read a
 * body's headers. A message finished by a running daemon between the scan
 * and the read shows with its headers missing, never as an error. delete
 * runs the shard's full recovery under the lock (as the daemon's start
 * would), journals SPOOL_OUT_DELETED for every recipient, lets the
 * blocking twin write and fdatasync it, and then scans again to prove the
 * message is gone. Main thread.
 */
#include "tools/queue_offline.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queue/msgid.h"
#include "queue/spool.h"
#include "tools/queue_print.h"

#define QO_HDR_MAX (1u << 20) /* header bytes show reads at most */
#define QO_HDR_STEP 4096u

/* Every shard's unfinished messages. */
struct qo_snap {
	struct spool_posix px;            /* read-only */
	struct spool_recovery *rec;       /* one per shard found */
	size_t nrec;
	const struct spool_msg **msg;     /* sorted by queue ID */
	size_t nmsg;
};

/* qo_fail_to - one line on err; returns exit status 1 */
static int qo_fail_to(FILE *err, const char *dir, const char *what, const char *why)
{
	fprintf(err, "ringmta-queue: %s: %s%s%s\n", dir, what, why ? ": " : "", why ? why : "");
	return 1;
}

/* qo_fail - one line on stderr; returns exit status 1 */
static int qo_fail(const char *dir, const char *what, const char *why)
{
	return qo_fail_to(stderr, dir, what, why);
}

/* qo_msg_cmp - messages by queue ID */
static int qo_msg_cmp(const void *a, const void *b)
{
	const struct spool_msg *x = *(const struct spool_msg *const *)a;
	const struct spool_msg *y = *(const struct spool_msg *const *)b;
	size_t n = x->env.id.len < y->env.id.len ? x->env.id.len : y->env.id.len;
	int c = memcmp(x->env.id.ptr, y->env.id.ptr, n);

	return c ? c : (x->env.id.len > y->env.id.len) - (x->env.id.len < y->env.id.len);
}

/* qo_snap_free - free a snapshot */
static void qo_snap_free(struct qo_snap *s)
{
	for (size_t i = 0; i < s->nrec; i++)
		spool_recovery_free(&s->rec[i]);
	free(s->rec);
	free(s->msg);
	spool_posix_close(&s->px);
	memset(s, 0, sizeof *s);
	s->px.dirfd = -1;
}

/* qo_snap_load - scan every shard of dir read-only */
static int qo_snap_load(struct qo_snap *s, const char *dir)
{
	bool present[MSGID_SHARD_MAX + 1] = { false }; /* 1 KiB; the daemon scans again and again */
	int n, err;

	memset(s, 0, sizeof *s);
	s->px.dirfd = -1;
	if (spool_posix_open_ro(&s->px, dir) != RM_OK)
		return RM_EIO;
	n = spool_shards(&s->px.io, present);
	if (n < 0)
		return n;
	s->rec = calloc((size_t)n + 1, sizeof *s->rec);
	if (!s->rec)
		return RM_ENOMEM;
	for (unsigned sh = 0; sh <= MSGID_SHARD_MAX; sh++) {
		struct spool_cfg cfg = { &s->px.io, sh, 0, 0 };
		if (!present[sh])
			continue;
		err = spool_scan(&cfg, &s->rec[s->nrec]);
		if (err != RM_OK)
			return err;
		s->nmsg += s->rec[s->nrec++].nmsg;
	}
	s->msg = calloc(s->nmsg + 1, sizeof *s->msg);
	if (!s->msg)
		return RM_ENOMEM;
	s->nmsg = 0;
	for (size_t i = 0; i < s->nrec; i++)
		for (size_t k = 0; k < s->rec[i].nmsg; k++)
			s->msg[s->nmsg++] = &s->rec[i].msg[k];
	if (s->nmsg > 1)
		qsort(s->msg, s->nmsg, sizeof *s->msg, qo_msg_cmp);
	return RM_OK;
}

/* qo_id - the ID as stored (upper case) into out; false when it cannot
 * be a queue ID at all */
static bool qo_id(const char *id, char out[MSGID_LEN + 1], struct msgid_parts *p)
{
	size_t n = strlen(id);

	if (n != MSGID_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		out[i] = id[i] >= 'a' && id[i] <= 'z' ? (char)(id[i] - 'a' + 'A') : id[i];
	out[n] = '\0';
	return msgid_parse(slice_make(out, n), p);
}

/* qo_find - the snapshot's message with this ID, or NULL */
static const struct spool_msg *qo_find(const struct qo_snap *s, const char *id)
{
	char want[MSGID_LEN + 1];
	struct msgid_parts p;

	if (!qo_id(id, want, &p))
		return NULL;
	for (size_t i = 0; i < s->nmsg; i++)
		if (slice_eq(s->msg[i]->env.id, slice_make(want, MSGID_LEN)))
			return s->msg[i];
	return NULL;
}

/* qo_headers - the message's header section: its Received: header and
 * the body up to the empty line (or the first QO_HDR_MAX bytes); NULL when
 * the body cannot be read. *len gets the length; free the result. */
static char *qo_headers(const struct spool_io *io, const struct spool_msg *m, size_t *len)
{
	uint64_t blen = spool_env_body_len(&m->env);
	size_t rl = m->env.received.len, got = 0, end = 0;
	char *h = malloc(rl + QO_HDR_MAX + 1), *b;
	bool found = false;

	if (!h)
		return NULL;
	memcpy(h, m->env.received.ptr, rl);
	b = h + rl;
	while (!found && got < blen && got < QO_HDR_MAX) {
		size_t k = blen - got < QO_HDR_STEP ? (size_t)(blen - got) : QO_HDR_STEP;
		if (k > QO_HDR_MAX - got)
			k = QO_HDR_MAX - got;
		if (spool_body_read(io, &m->env, got, b + got, k) != RM_OK) {
			free(h);
			return NULL;
		}
		/* the empty line, rescanning a CR the last step ended on */
		for (size_t i = got > 2 ? got - 2 : 0; !found && i < got + k; i++)
			if ((i == 0 || b[i - 1] == '\n') &&
			    (b[i] == '\n' || (b[i] == '\r' && i + 1 < got + k && b[i + 1] == '\n'))) {
				end = i;
				found = true;
			}
		got += k;
	}
	*len = rl + (found ? end : got);
	return h;
}

/* qo_show - the show command */
static int qo_show(const struct queue_opts *o, FILE *out, FILE *ferr)
{
	struct qo_snap s;
	const struct spool_msg *m;
	char *hdr = NULL;
	size_t hlen = 0;
	int err = qo_snap_load(&s, o->spool), rc = 0;

	if (err != RM_OK) {
		rc = qo_fail_to(ferr, o->spool, "cannot read the spool", rm_strerror(err));
	} else if (!(m = qo_find(&s, o->id))) {
		fprintf(ferr, "ringmta-queue: %s: no such message\n", o->id);
		rc = 1;
	} else {
		hdr = qo_headers(&s.px.io, m, &hlen);
		queue_print_show(out, m, hdr, hlen, o->json);
	}
	free(hdr);
	qo_snap_free(&s);
	return rc;
}

/* qo_list_stats - the list and stats commands */
static int qo_list_stats(const struct queue_opts *o, FILE *out, FILE *ferr)
{
	struct qo_snap s;
	int err = qo_snap_load(&s, o->spool), rc = 0;

	if (err != RM_OK)
		rc = qo_fail_to(ferr, o->spool, "cannot read the spool", rm_strerror(err));
	else if (o->cmd == QUEUE_CMD_LIST)
		queue_print_list(out, s.msg, s.nmsg, o->json);
	else
		queue_print_stats(out, s.msg, s.nmsg, o->json);
	qo_snap_free(&s);
	return rc;
}

/* qo_lock - take the spool's lock: 0, or the exit status after a message
 * (a daemon holding it makes `busy` the reason) */
static int qo_lock(const struct queue_opts *o, int *fd, const char *busy)
{
	int err = spool_lock(o->spool, fd);

	if (err == RM_AGAIN)
		return qo_fail(o->spool, "a daemon runs on this spool", busy);
	if (err != RM_OK)
		return qo_fail(o->spool, "cannot lock the spool", rm_strerror(err));
	return 0;
}

/* qo_still_there - does a read-only scan of the shard still find id */
static int qo_still_there(const struct spool_io *io, unsigned shard, struct slice id)
{
	struct spool_cfg cfg = { io, shard, 0, 0 };
	struct spool_recovery rec;
	int err = spool_scan(&cfg, &rec);

	if (err != RM_OK)
		return err;
	for (size_t i = 0; i < rec.nmsg; i++)
		if (slice_eq(rec.msg[i].env.id, id))
			err = 1;
	spool_recovery_free(&rec);
	return err;
}

/* qo_delete_locked - delete id from its shard; we hold the lock */
static int qo_delete_locked(const struct queue_opts *o, const char *id, unsigned shard)
{
	static bool present[MSGID_SHARD_MAX + 1];
	struct spool_posix px;
	struct spool *sp = NULL;
	struct spool_cfg cfg;
	struct spool_jrec j = { slice_make(id, MSGID_LEN), SPOOL_RCPT_ALL, SPOOL_OUT_DELETED, 0, 0,
				SLICE_NULL };
	int err, rc = 0;

	if (spool_posix_open(&px, o->spool) != RM_OK)
		return qo_fail(o->spool, "cannot open the spool", NULL);
	err = spool_shards(&px.io, present);
	cfg = (struct spool_cfg){ &px.io, shard, 0, 0 };
	if (err < 0) {
		rc = qo_fail(o->spool, "cannot read the spool", rm_strerror(err));
	} else if (!present[shard]) {
		err = RM_EINVAL;
	} else if ((err = spool_open(&sp, &cfg, NULL)) != RM_OK) {
		rc = qo_fail(o->spool, "cannot recover the spool", rm_strerror(err));
	} else if ((err = spool_journal(sp, &j)) == RM_OK) {
		spool_run(sp); /* the write and its fdatasync */
		(void)spool_gc(sp);
		sp = spool_close(sp);
		err = qo_still_there(&px.io, shard, j.id);
		if (err != 0)
			rc = qo_fail(o->spool, "the deletion was not recorded",
				     err < 0 ? rm_strerror(err) : NULL);
	} else if (err != RM_EINVAL) {
		rc = qo_fail(o->spool, "cannot journal the deletion", rm_strerror(err));
	}
	if (!rc && err == RM_EINVAL) {
		fprintf(stderr, "ringmta-queue: %s: no such message\n", o->id);
		rc = 1;
	}
	spool_close(sp);
	spool_posix_close(&px);
	return rc;
}

/* qo_delete - the delete command */
static int qo_delete(const struct queue_opts *o)
{
	char id[MSGID_LEN + 1];
	struct msgid_parts p;
	int fd = -1, rc = qo_lock(o, &fd, "its control socket does not answer");

	if (rc)
		return rc;
	if (!qo_id(o->id, id, &p)) {
		fprintf(stderr, "ringmta-queue: %s: no such message\n", o->id);
		rc = 1;
	} else {
		rc = qo_delete_locked(o, id, p.shard);
	}
	close(fd);
	if (!rc)
		queue_offline_delete_text(stdout, id, o->json);
	return rc;
}

/* qo_flush - the flush command: only a daemon can retry */
static int qo_flush(const struct queue_opts *o)
{
	int fd = -1, rc = qo_lock(o, &fd, "its control socket does not answer");

	if (rc)
		return rc;
	close(fd);
	return qo_fail(o->spool, "no daemon runs on this spool", "nothing to flush");
}

/* queue_offline_report - list, show or stats into out and err */
int queue_offline_report(const struct queue_opts *o, FILE *out, FILE *err)
{
	return o->cmd == QUEUE_CMD_SHOW ? qo_show(o, out, err) : qo_list_stats(o, out, err);
}

/* queue_offline_delete_text - what delete prints once id is deleted */
void queue_offline_delete_text(FILE *out, const char *id, bool json)
{
	if (json)
		fprintf(out, "{\"deleted\":\"%s\"}\n", id);
	else
		fprintf(out, "%s deleted\n", id);
}

/* queue_offline_run - carry out o's command on the spool files */
int queue_offline_run(const struct queue_opts *o)
{
	int rc;

	switch (o->cmd) {
	case QUEUE_CMD_DELETE: rc = qo_delete(o); break;
	case QUEUE_CMD_FLUSH: rc = qo_flush(o); break;
	case QUEUE_CMD_SHOW:
	case QUEUE_CMD_LIST:
	case QUEUE_CMD_STATS:
	default: rc = queue_offline_report(o, stdout, stderr); break;
	}
	if (fflush(stdout) != 0 || ferror(stdout))
		rc = qo_fail(o->spool, "cannot write the output", strerror(errno));
	return rc;
}
