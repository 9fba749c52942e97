/* queue_client.c - ringmta-queue through the daemon's control socket.
 *
 * Connects to SPOOL/control, sends one request line, reads the answer
 * ("STATUS OUTLEN ERRLEN\n", then the bytes for stdout and for stderr) to
 * the end and passes it on. No socket or nobody listening means no daemon
 * runs: the caller reads the files instead. A daemon that accepts but
 * answers nothing sensible within the timeouts is an error (exit 1), not
 * a reason to touch the spool behind its back. Main thread.
 */
#include "tools/queue_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "tools/serve_control.h"

#define QC_ANSWER_MAX (256u << 20) /* a list of millions of messages */

/* qc_connect - a connected socket, or -1 when no daemon listens */
static int qc_connect(const char *spool)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if ((size_t)snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s", spool, SERVE_CONTROL_NAME) >=
	    sizeof sa.sun_path)
		return -1;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* qc_request - the request line for o into line */
static void qc_request(const struct queue_opts *o, char *line, size_t cap)
{
	static const char *const verb[] = {
		[QUEUE_CMD_LIST] = "LIST", [QUEUE_CMD_SHOW] = "SHOW", [QUEUE_CMD_DELETE] = "DELETE",
		[QUEUE_CMD_FLUSH] = "FLUSH", [QUEUE_CMD_STATS] = "STATS",
	};
	snprintf(line, cap, "%s%s%s%s\n", verb[o->cmd], o->id ? " " : "", o->id ? o->id : "",
		 o->json ? " JSON" : "");
}

/* qc_fail - one line on stderr; exit status 1 */
static int qc_fail(const struct queue_opts *o, const char *what)
{
	fprintf(stderr, "ringmta-queue: %s: %s\n", o->spool, what);
	return 1;
}

/* queue_client_run - o's command through the daemon */
int queue_client_run(const struct queue_opts *o)
{
	char line[SERVE_CONTROL_LINE + QUEUE_ID_MAX];
	struct timeval tv = { 30, 0 };
	size_t len = 0, cap = 0;
	char *ans = NULL;
	int fd = qc_connect(o->spool), status;
	size_t olen, elen;

	if (fd < 0)
		return -1;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	qc_request(o, line, sizeof line);
	if (send(fd, line, strlen(line), MSG_NOSIGNAL) != (ssize_t)strlen(line)) {
		close(fd);
		return qc_fail(o, "the daemon's control socket does not take the request");
	}
	for (;;) {
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 65536;
			char *n = ncap <= QC_ANSWER_MAX ? realloc(ans, ncap + 1) : NULL;
			if (n == NULL)
				break;
			ans = n;
			cap = ncap;
		}
		ssize_t r = recv(fd, ans + len, cap - len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	char *nl = ans ? memchr(ans, '\n', len) : NULL;
	if (nl == NULL) {
		free(ans);
		return qc_fail(o, "the daemon did not answer");
	}
	*nl = '\0';
	size_t head = (size_t)(nl - ans) + 1;
	if (sscanf(ans, "%d %zu %zu", &status, &olen, &elen) != 3 || olen > len - head ||
	    elen != len - head - olen) {
		free(ans);
		return qc_fail(o, "the daemon's answer is cut short");
	}
	fwrite(ans + head, 1, olen, stdout);
	fwrite(ans + head + olen, 1, elen, stderr);
	free(ans);
	if (fflush(stdout) != 0 || ferror(stdout))
		return qc_fail(o, "cannot write the output");
	return status;
}
