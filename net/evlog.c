/* evlog.c - event lines on stderr, text or JSON.
 *
 * Invariant: a write(2) carries complete lines only (lines over the
 * buffer are cut, never split), one line, or between evlog_batch_begin and
 * evlog_batch_end on a thread the lines of that span up to PIPE_BUF bytes
 * (so a write to a pipe stays atomic and lines of different threads never
 * interleave); the batch is the calling thread's own. A warning or an
 * error is written at once with what waits before it (a loop that breaks
 * on an error must not keep its reason in a batch). The format is chosen before threads start
 * and read-only afterwards. Values are escaped for JSON; in text form they
 * are printed as key=value with spaces and control bytes replaced by '_'.
 * The time stamp's date and seconds are formatted once a second per thread
 * (a line per message must not cost a strftime each).
 */
#include "net/evlog.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"

#define EVLOG_LINE_MAX 2048
#define EVLOG_BATCH_MAX 4096 /* PIPE_BUF: a write to a pipe is atomic */

_Static_assert(EVLOG_LINE_MAX <= EVLOG_BATCH_MAX, "a line fits a batch");

static bool evlog_json;

/* evlog_init - choose the format (before any thread starts) */
void evlog_init(bool json)
{
	evlog_json = json;
}

struct line {
	char b[EVLOG_LINE_MAX];
	size_t n;
};

/* line_raw - append bytes, silently cut at the end of the buffer */
static void line_raw(struct line *l, const char *s, size_t n)
{
	size_t room = sizeof l->b - 1 - l->n; /* keep one byte for '\n' */
	if (n > room)
		n = room;
	memcpy(l->b + l->n, s, n);
	l->n += n;
}

/* line_plain - the length of v's prefix that needs no escaping */
static size_t line_plain(const char *v)
{
	size_t n = 0;

	for (;; n++) {
		unsigned char c = (unsigned char)v[n];
		if (c <= 0x20 || c == 0x7f || c == '"' || c == '\\')
			break;
	}
	return n;
}

/* line_val - append a value, escaped for the format */
static void line_val(struct line *l, const char *v)
{
	while (*v) {
		size_t run = line_plain(v);
		line_raw(l, v, run);
		v += run;
		if (*v == '\0')
			break;
		unsigned char c = (unsigned char)*v++;
		char esc[8];
		if (evlog_json) {
			if (c == '"' || c == '\\') {
				esc[0] = '\\';
				esc[1] = (char)c;
				line_raw(l, esc, 2);
			} else if (c < 0x20 || c == 0x7f) {
				snprintf(esc, sizeof esc, "\\u%04x", c);
				line_raw(l, esc, 6);
			} else {
				line_raw(l, (const char *)&c, 1);
			}
		} else {
			char o = (c <= 0x20 || c == 0x7f) ? '_' : (char)c;
			line_raw(l, &o, 1);
		}
	}
}

/* line_kv - append one key and value; the first key opens the line */
static void line_kv(struct line *l, const char *k, const char *v)
{
	if (evlog_json) {
		line_raw(l, l->n == 0 ? "{\"" : ",\"", 2);
		line_raw(l, k, strlen(k));
		line_raw(l, "\":\"", 3);
		line_val(l, v);
		line_raw(l, "\"", 1);
	} else {
		if (l->n)
			line_raw(l, " ", 1);
		line_raw(l, k, strlen(k));
		line_raw(l, "=", 1);
		line_val(l, v);
	}
}

/* line_kv_u64 - append one key and a decimal number (no printf: a line per
 * received message) */
static void line_kv_u64(struct line *l, const char *k, uint64_t v)
{
	char num[24];
	struct buf b;

	buf_init(&b, num, sizeof num - 1);
	if (buf_put_u64(&b, v) != RM_OK) /* 20 digits at most: fits */
		b.len = 0;
	num[b.len] = '\0';
	line_kv(l, k, num);
}

/* The last second this thread formatted, as "YYYY-MM-DDTHH:MM:SS". */
struct evlog_sec {
	time_t sec;
	size_t n;
	char s[40];
};
static _Thread_local struct evlog_sec evlog_sec = { .sec = -1 };

/* line_time - "YYYY-MM-DDTHH:MM:SS.mmmZ" for ts into t (40 bytes) */
static void line_time(const struct timespec *ts, char t[40])
{
	struct evlog_sec *c = &evlog_sec;

	if (c->sec != ts->tv_sec) {
		struct tm tm;
		gmtime_r(&ts->tv_sec, &tm);
		c->n = strftime(c->s, sizeof c->s - 6, "%Y-%m-%dT%H:%M:%S", &tm);
		c->sec = ts->tv_sec;
	}
	unsigned ms = (unsigned)(ts->tv_nsec / 1000000) % 1000;
	memcpy(t, c->s, c->n);
	t[c->n] = '.';
	t[c->n + 1] = (char)('0' + ms / 100);
	t[c->n + 2] = (char)('0' + ms / 10 % 10);
	t[c->n + 3] = (char)('0' + ms % 10);
	t[c->n + 4] = 'Z';
	t[c->n + 5] = '\0';
}

/* line_start - the time stamp, the level and the event name */
static void line_start(struct line *l, const char *level, const char *event)
{
	struct timespec ts;
	char t[40];

	l->n = 0;
	clock_gettime(CLOCK_REALTIME, &ts);
	line_time(&ts, t);
	line_kv(l, "time", t);
	line_kv(l, "level", level);
	line_kv(l, "event", event);
}

/* Lines waiting for this thread's batch to be written. */
struct evlog_batch {
	bool on;
	size_t n;
	char b[EVLOG_BATCH_MAX];
};
static _Thread_local struct evlog_batch evlog_batch;

/* batch_write - write the batched lines, if any */
static void batch_write(struct evlog_batch *bt)
{
	if (bt->n == 0)
		return;
	ssize_t w = write(STDERR_FILENO, bt->b, bt->n);
	(void)w; /* nowhere to report a failing log */
	bt->n = 0;
}

/* evlog_batch_begin - lines of this thread wait for evlog_batch_end */
void evlog_batch_begin(void)
{
	evlog_batch.on = true;
}

/* evlog_batch_end - write this thread's waiting lines; lines go out one by
 * one again */
void evlog_batch_end(void)
{
	batch_write(&evlog_batch);
	evlog_batch.on = false;
}

/* line_end - close the line and write it, or add it to the batch; an
 * urgent line (a warning, an error) goes out at once, behind the batch */
static void line_end(struct line *l, bool urgent)
{
	struct evlog_batch *bt = &evlog_batch;

	if (evlog_json)
		line_raw(l, "}", 1);
	l->b[l->n++] = '\n';
	if (urgent)
		batch_write(bt);
	if (!bt->on || urgent) {
		ssize_t w = write(STDERR_FILENO, l->b, l->n);
		(void)w; /* nowhere to report a failing log */
		return;
	}
	if (bt->n + l->n > sizeof bt->b)
		batch_write(bt);
	memcpy(bt->b + bt->n, l->b, l->n);
	bt->n += l->n;
}

/* evlog_msg - a free-form event */
void evlog_msg(const char *level, const char *event, const char *text)
{
	struct line l;
	line_start(&l, level, event);
	line_kv(&l, "msg", text);
	line_end(&l, strcmp(level, "info") != 0);
}

/* evlog_received - a message was accepted */
void evlog_received(const char *queue_id, const char *client, const char *from, unsigned nrcpt,
		    uint64_t size)
{
	struct line l;

	line_start(&l, "info", "received");
	line_kv(&l, "id", queue_id);
	line_kv(&l, "client", client);
	line_kv(&l, "from", from);
	line_kv_u64(&l, "nrcpt", nrcpt);
	line_kv_u64(&l, "size", size);
	line_end(&l, false);
}

/* evlog_session - a session ended */
void evlog_session(const char *client, uint64_t duration_ms, unsigned messages, const char *reason)
{
	evlog_session_sec(client, duration_ms, messages, reason, NULL, NULL, NULL);
}

/* evlog_session_sec - a session ended, with its TLS and AUTH facts */
void evlog_session_sec(const char *client, uint64_t duration_ms, unsigned messages, const char *reason,
		       const char *tls_version, const char *tls_cipher, const char *user)
{
	struct line l;

	line_start(&l, "info", "session");
	line_kv(&l, "client", client);
	line_kv_u64(&l, "duration_ms", duration_ms);
	line_kv_u64(&l, "messages", messages);
	if (tls_version != NULL && tls_version[0] != '\0') {
		line_kv(&l, "tls", tls_version);
		line_kv(&l, "cipher", tls_cipher ? tls_cipher : "");
	}
	if (user != NULL && user[0] != '\0')
		line_kv(&l, "user", user);
	line_kv(&l, "end", reason);
	line_end(&l, false);
}

/* evlog_reopen - SIGHUP */
void evlog_reopen(void)
{
	/* The log is stderr, owned by whoever started us (systemd's journal, a
	 * shell redirection): a rotating redirection is reopened by its owner.
	 * All we hold is unbuffered, so there is nothing to flush either. */
	evlog_msg("info", "reopen", "log reopened (stderr)");
}

/* evlog_delivery - one delivery attempt for one recipient */
void evlog_delivery(const char *queue_id, const char *rcpt, const char *hop, const char *outcome,
		    uint64_t delay_ms, const char *reply, uint64_t next_in_s)
{
	struct line l;

	line_start(&l, "info", "delivery");
	line_kv(&l, "id", queue_id);
	line_kv(&l, "to", rcpt);
	line_kv(&l, "hop", hop);
	line_kv(&l, "outcome", outcome);
	line_kv_u64(&l, "delay_ms", delay_ms);
	if (next_in_s)
		line_kv_u64(&l, "next_in_s", next_in_s);
	line_kv(&l, "reply", reply);
	line_end(&l, false);
}
