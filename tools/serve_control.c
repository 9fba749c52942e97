/* serve_control.c - the daemon's control socket (tools/serve_control.h).
 *
 * One thread, one client at a time: accept, read one request line (2 s
 * receive timeout), answer, close. The thread never touches shard state:
 * DELETE and FLUSH are struct outbound_ctl requests posted to the shards'
 * lock-free inboxes, and the thread polls their results (a shard answers
 * at its next loop boundary, within about 250 ms; a DELETE once its journal
 * record is durable, one group fdatasync later). A request the shard did
 * not answer in SC_WAIT_MS is given up and leaked (the shard may still
 * write its result). Invariants: the socket exists only while the thread
 * runs; the spool directory is 0700 and the socket 0600, so only the
 * daemon's user (and root) can talk to it.
 */
#define _GNU_SOURCE
#include "tools/serve_control.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "queue/msgid.h"
#include "tools/queue_offline.h"
#include "tools/queue_opts.h"

#define SC_WAIT_MS 10000 /* a shard's answer */
#define SC_POLL_MS 200   /* how often the thread looks at the stop flag */

struct serve_control {
	const char *spool;
	struct outbound_cfg *g;
	unsigned shards;
	int fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	pthread_t thr;
	atomic_bool stop;
};

/* sc_sleep_ms - nap between looks at a result */
static void sc_sleep_ms(unsigned ms)
{
	struct timespec ts = { 0, (long)ms * 1000000L };
	nanosleep(&ts, NULL);
}

/* sc_wait - wait for the shards' answers to req[0..n); false on timeout */
static bool sc_wait(struct serve_control *c, struct outbound_ctl **req, size_t n)
{
	for (unsigned waited = 0; waited < SC_WAIT_MS && !atomic_load(&c->stop); waited += 2) {
		size_t done = 0;
		for (size_t i = 0; i < n; i++)
			done += req[i] == NULL || outbound_ctl_result(req[i]) != OUTBOUND_CTL_PENDING;
		if (done == n)
			return true;
		sc_sleep_ms(2);
	}
	return false;
}

/* sc_delete - DELETE id: to the shard that owns it (the ID names it) */
static int sc_delete(struct serve_control *c, const char *arg, bool json, FILE *out, FILE *err)
{
	char id[MSGID_LEN + 1];
	struct msgid_parts p;
	size_t n = strlen(arg);
	struct outbound_ctl *req;

	for (size_t i = 0; i < n && n == MSGID_LEN; i++)
		id[i] = arg[i] >= 'a' && arg[i] <= 'z' ? (char)(arg[i] - 'a' + 'A') : arg[i];
	id[n == MSGID_LEN ? n : 0] = '\0';
	if (n != MSGID_LEN || !msgid_parse(slice_make(id, n), &p) || p.shard >= c->shards) {
		fprintf(err, "ringmta-queue: %s: no such message\n", arg);
		return 1;
	}
	if ((req = calloc(1, sizeof *req)) == NULL) {
		fprintf(err, "ringmta-queue: %s: the daemon is out of memory\n", c->spool);
		return 1;
	}
	req->op = OUTBOUND_CTL_DELETE;
	memcpy(req->id, id, sizeof id);
	if (outbound_ctl_post(c->g, p.shard, req) != RM_OK) {
		free(req);
		fprintf(err, "ringmta-queue: %s: the daemon is busy; try again\n", c->spool);
		return 1;
	}
	if (!sc_wait(c, &req, 1)) {
		fprintf(err, "ringmta-queue: %s: the daemon did not answer\n", c->spool);
		return 1; /* req stays with the shard */
	}
	int result = outbound_ctl_result(req);
	free(req);
	if (result == OUTBOUND_CTL_NOTFOUND) {
		fprintf(err, "ringmta-queue: %s: no such message\n", arg);
		return 1;
	}
	if (result == OUTBOUND_CTL_BUSY) {
		fprintf(err, "ringmta-queue: %s: the daemon is busy; try again\n", c->spool);
		return 1;
	}
	if (result != OUTBOUND_CTL_DONE) {
		fprintf(err, "ringmta-queue: %s: the spool could not record the deletion (disk error); "
			     "the message is not deleted for good\n", arg);
		return 1;
	}
	queue_offline_delete_text(out, id, json);
	return 0;
}

/* sc_flush - FLUSH: every shard makes its deferred mail due */
static int sc_flush(struct serve_control *c, bool json, FILE *out, FILE *err)
{
	struct outbound_ctl **req = calloc(c->shards, sizeof *req);
	unsigned posted = 0;
	int rc = 0;

	if (req == NULL) {
		fprintf(err, "ringmta-queue: %s: the daemon is out of memory\n", c->spool);
		return 1;
	}
	for (unsigned i = 0; i < c->shards; i++) {
		if ((req[i] = calloc(1, sizeof *req[i])) == NULL)
			continue;
		req[i]->op = OUTBOUND_CTL_FLUSH;
		if (outbound_ctl_post(c->g, i, req[i]) != RM_OK) {
			free(req[i]);
			req[i] = NULL;
			rc = 1;
			continue;
		}
		posted++;
	}
	if (!sc_wait(c, req, c->shards)) {
		fprintf(err, "ringmta-queue: %s: the daemon did not answer\n", c->spool);
		free(req); /* the requests stay with the shards */
		return 1;
	}
	for (unsigned i = 0; i < c->shards; i++)
		free(req[i]);
	free(req);
	if (rc) {
		fprintf(err, "ringmta-queue: %s: %u of %u shards flushed; try again\n", c->spool, posted,
			c->shards);
		return 1;
	}
	if (json)
		fprintf(out, "{\"flushed\":%u}\n", c->shards);
	else
		fprintf(out, "flushed: deferred mail is due now on %u shards\n", c->shards);
	return 0;
}

/* sc_request - carry out one request line into out and err; the status */
static int sc_request(struct serve_control *c, char *line, FILE *out, FILE *err)
{
	static const struct { const char *name; enum queue_cmd cmd; bool id; } cmds[] = {
		{ "LIST", QUEUE_CMD_LIST, false },     { "STATS", QUEUE_CMD_STATS, false },
		{ "SHOW", QUEUE_CMD_SHOW, true },      { "DELETE", QUEUE_CMD_DELETE, true },
		{ "FLUSH", QUEUE_CMD_FLUSH, false },
	};
	char *save = NULL, *verb = strtok_r(line, " \t\r\n", &save), *arg = NULL, *tok;
	struct queue_opts o = { .spool = c->spool };
	size_t k;

	for (k = 0; verb != NULL && k < sizeof cmds / sizeof cmds[0]; k++)
		if (strcasecmp(verb, cmds[k].name) == 0)
			break;
	if (verb == NULL || k == sizeof cmds / sizeof cmds[0]) {
		fprintf(err, "ringmta-queue: unknown control request\n");
		return 2;
	}
	o.cmd = cmds[k].cmd;
	if (cmds[k].id && (arg = strtok_r(NULL, " \t\r\n", &save)) == NULL) {
		fprintf(err, "ringmta-queue: %s needs a queue ID\n", cmds[k].name);
		return 2;
	}
	o.id = arg;
	while ((tok = strtok_r(NULL, " \t\r\n", &save)) != NULL)
		if (strcasecmp(tok, "JSON") == 0)
			o.json = true;
	switch (o.cmd) {
	case QUEUE_CMD_DELETE: return sc_delete(c, arg, o.json, out, err);
	case QUEUE_CMD_FLUSH: return sc_flush(c, o.json, out, err);
	default: return queue_offline_report(&o, out, err);
	}
}

/* sc_write_all - the whole buffer to fd (a client that stops reading
 * meets the send timeout) */
static bool sc_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* sc_serve_one - one client: its request line, our answer */
static void sc_serve_one(struct serve_control *c, int fd)
{
	struct timeval tv = { 2, 0 }, stv = { 10, 0 };
	char line[SERVE_CONTROL_LINE + 1], head[64];
	size_t len = 0, olen = 0, elen = 0;
	char *obuf = NULL, *ebuf = NULL;
	FILE *out = NULL, *err = NULL;
	int status;

	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &stv, sizeof stv);
	while (len < SERVE_CONTROL_LINE && memchr(line, '\n', len) == NULL) {
		ssize_t r = recv(fd, line + len, SERVE_CONTROL_LINE - len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	line[len] = '\0';
	if (memchr(line, '\n', len) == NULL)
		return; /* no complete request: nothing to answer */
	out = open_memstream(&obuf, &olen);
	err = open_memstream(&ebuf, &elen);
	if (out == NULL || err == NULL) {
		if (out)
			fclose(out);
		if (err)
			fclose(err);
		free(obuf);
		free(ebuf);
		return;
	}
	status = sc_request(c, line, out, err);
	fclose(out);
	fclose(err);
	int hl = snprintf(head, sizeof head, "%d %zu %zu\n", status, olen, elen);
	if (sc_write_all(fd, head, (size_t)hl) && sc_write_all(fd, obuf, olen))
		(void)sc_write_all(fd, ebuf, elen);
	free(obuf);
	free(ebuf);
}

/* sc_thread - accept and serve until told to stop */
static void *sc_thread(void *arg)
{
	struct serve_control *c = arg;

	while (!atomic_load(&c->stop)) {
		struct pollfd pfd = { c->fd, POLLIN, 0 };
		if (poll(&pfd, 1, SC_POLL_MS) <= 0)
			continue;
		int fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		sc_serve_one(c, fd);
		close(fd);
	}
	return NULL;
}

/* serve_control_start - bind and start the thread */
struct serve_control *serve_control_start(const char *spool, struct outbound_cfg *g, unsigned shards,
					  char *err, size_t errlen)
{
	struct serve_control *c = calloc(1, sizeof *c);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	sigset_t all, old;

	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->spool = spool;
	c->g = g;
	c->shards = shards;
	c->fd = -1;
	atomic_init(&c->stop, false);
	if ((size_t)snprintf(c->path, sizeof c->path, "%s/%s", spool, SERVE_CONTROL_NAME) >= sizeof c->path) {
		snprintf(err, errlen, "--spool %s: path too long for its control socket", spool);
		goto fail;
	}
	memcpy(sa.sun_path, c->path, sizeof c->path);
	(void)chmod(spool, 0700);
	(void)unlink(c->path); /* left by a killed daemon; we hold the lock */
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		snprintf(err, errlen, "control socket: %s", strerror(errno));
		goto fail;
	}
	mode_t um = umask(0177); /* born 0600: no window where others may connect */
	int brc = bind(c->fd, (struct sockaddr *)&sa, sizeof sa);
	umask(um);
	if (brc != 0 || listen(c->fd, 16) != 0) {
		snprintf(err, errlen, "control socket %s: %s", c->path, strerror(errno));
		goto fail;
	}
	/* the thread inherits a mask with every signal blocked */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int trc = pthread_create(&c->thr, NULL, sc_thread, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (trc != 0) {
		snprintf(err, errlen, "control socket: cannot start its thread");
		unlink(c->path);
		goto fail;
	}
	return c;
fail:
	if (c->fd >= 0)
		close(c->fd);
	free(c);
	return NULL;
}

/* serve_control_stop - stop the thread and remove the socket */
struct serve_control *serve_control_stop(struct serve_control *c)
{
	if (c == NULL)
		return NULL;
	atomic_store(&c->stop, true);
	pthread_join(c->thr, NULL);
	unlink(c->path);
	close(c->fd);
	free(c);
	return NULL;
}
