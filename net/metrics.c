/* metrics.c - a minimal HTTP/1.1 responder for metrics and health checks.
 *
 * One thread; accepts with poll so it can notice stop; reads one request
 * (up to 4 KiB, 2 s), answers it with Connection: close and closes. The
 * server pointer and the ready flag are written by the controlling thread
 * and read here with atomics.
 */
#define _GNU_SOURCE /* accept4, open_memstream */
#include "net/metrics.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

struct metrics {
	int fd;
	pthread_t thread;
	struct net_server *srv;
	int ready;
	int stop;
};

/* metrics_start - bind addr and start answering */
static void *metrics_main(void *arg);

struct metrics *metrics_start(const struct sockaddr_storage *addr, socklen_t len, const char *text,
			      char *err, size_t errlen)
{
	int one = 1;
	struct metrics *m = calloc(1, sizeof *m);

	if (m == NULL) {
		snprintf(err, errlen, "metrics: out of memory");
		return NULL;
	}
	m->fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (m->fd < 0 || setsockopt(m->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(m->fd, (const struct sockaddr *)addr, len) < 0 || listen(m->fd, 64) < 0) {
		snprintf(err, errlen, "--metrics %s: %s", text, strerror(errno));
		if (m->fd >= 0)
			close(m->fd);
		free(m);
		return NULL;
	}
	if (pthread_create(&m->thread, NULL, metrics_main, m) != 0) {
		snprintf(err, errlen, "--metrics %s: cannot start thread", text);
		close(m->fd);
		free(m);
		return NULL;
	}
	return m;
}

/* metrics_set_server - the server whose counters /metrics shows */
void metrics_set_server(struct metrics *m, struct net_server *s)
{
	if (m != NULL)
		__atomic_store_n(&m->srv, s, __ATOMIC_RELEASE);
}

/* metrics_set_ready - /readyz answers 200 when ready */
void metrics_set_ready(struct metrics *m, bool ready)
{
	if (m != NULL)
		__atomic_store_n(&m->ready, ready ? 1 : 0, __ATOMIC_RELEASE);
}

/* metrics_stop - stop the thread and close */
struct metrics *metrics_stop(struct metrics *m)
{
	if (m == NULL)
		return NULL;
	__atomic_store_n(&m->stop, 1, __ATOMIC_RELEASE);
	pthread_join(m->thread, NULL);
	close(m->fd);
	free(m);
	return NULL;
}

/* metric - one sample with its HELP and TYPE lines */
static void metric(FILE *f, const char *name, const char *type, const char *help, uint64_t v)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
		(unsigned long long)v);
}

/* metrics_render - the Prometheus text for st into f */
void metrics_render(const struct shard_stats *st, unsigned open, FILE *f)
{
	static const char *const classes[NET_REPLY_CLASSES] = { "2xx", "3xx", "4xx", "5xx" };

	metric(f, "ringmta_connections_total", "counter", "SMTP connections accepted", st->connections_total);
	metric(f, "ringmta_connections_open", "gauge", "SMTP sessions open now", open);
	fprintf(f, "# HELP ringmta_connections_rejected_total Connections refused with 421\n"
		   "# TYPE ringmta_connections_rejected_total counter\n"
		   "ringmta_connections_rejected_total{reason=\"max_connections\"} %llu\n"
		   "ringmta_connections_rejected_total{reason=\"max_connections_per_ip\"} %llu\n"
		   "ringmta_connections_rejected_total{reason=\"draining\"} %llu\n",
		(unsigned long long)st->rejected_max_conn, (unsigned long long)st->rejected_per_ip,
		(unsigned long long)st->rejected_draining);
	fprintf(f, "# HELP ringmta_proxy_headers_total PROXY protocol headers, by outcome\n"
		   "# TYPE ringmta_proxy_headers_total counter\n"
		   "ringmta_proxy_headers_total{result=\"accepted\"} %llu\n"
		   "ringmta_proxy_headers_total{result=\"invalid\"} %llu\n"
		   "ringmta_proxy_headers_total{result=\"untrusted\"} %llu\n"
		   "ringmta_proxy_headers_total{result=\"timeout\"} %llu\n",
		(unsigned long long)st->proxy_accepted, (unsigned long long)st->proxy_invalid,
		(unsigned long long)st->proxy_untrusted, (unsigned long long)st->proxy_timeout);
	metric(f, "ringmta_messages_received_total", "counter", "Messages accepted", st->messages_received);
	metric(f, "ringmta_messages_delivered_total", "counter", "Recipients delivered", st->delivered);
	metric(f, "ringmta_messages_deferred_total", "counter", "Recipient delivery attempts deferred",
	       st->deferred);
	metric(f, "ringmta_messages_bounced_total", "counter", "Recipients bounced or expired", st->bounced);
	metric(f, "ringmta_queue_messages", "gauge", "Messages in the queue", st->queue_messages);
	metric(f, "ringmta_outbound_connections_open", "gauge", "Outbound SMTP connections open",
	       st->outbound_open);
	metric(f, "ringmta_outbound_tls_handshakes_total", "counter", "Outbound STARTTLS handshakes finished",
	       st->outbound_tls_handshakes);
	metric(f, "ringmta_outbound_tls_resumed_total", "counter",
	       "Outbound STARTTLS handshakes that resumed an earlier session", st->outbound_tls_resumed);
	metric(f, "ringmta_outbound_tls_handshake_failures_total", "counter",
	       "Outbound STARTTLS handshakes that failed, timed out or met a rejected certificate",
	       st->outbound_tls_handshake_failures);
	fprintf(f, "# HELP ringmta_delivery_seconds Arrival to delivery, per recipient\n"
		   "# TYPE ringmta_delivery_seconds histogram\n");
	uint64_t dcum = 0;
	double dle = 0.01;
	for (int i = 0; i < NET_DELIVER_BUCKETS; i++, dle *= 2) {
		dcum += st->deliver_hist[i];
		if (i == NET_DELIVER_BUCKETS - 1)
			fprintf(f, "ringmta_delivery_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)dcum);
		else
			fprintf(f, "ringmta_delivery_seconds_bucket{le=\"%g\"} %llu\n", dle, (unsigned long long)dcum);
	}
	fprintf(f, "ringmta_delivery_seconds_count %llu\n", (unsigned long long)dcum);
	metric(f, "ringmta_received_bytes_total", "counter", "Message bytes accepted", st->received_bytes);
	metric(f, "ringmta_socket_received_bytes_total", "counter", "Bytes read from SMTP sockets",
	       st->socket_bytes);
	metric(f, "ringmta_body_bytes_copied_total", "counter", "Body bytes copied in user space on the way in",
	       st->body_copied);
	metric(f, "ringmta_spool_syncs_total", "counter", "fdatasync calls that acknowledged messages",
	       st->spool_syncs);
	metric(f, "ringmta_spool_requests_in_flight", "gauge",
	       "Spool writes and fdatasyncs in the kernel (a backlog here is a slow disk)", st->spool_in_flight);
	metric(f, "ringmta_spool_commits_failed_total", "counter", "Messages whose commit failed",
	       st->commits_failed);
	fprintf(f, "# HELP ringmta_replies_total SMTP replies sent, by class\n# TYPE ringmta_replies_total counter\n");
	for (int i = 0; i < NET_REPLY_CLASSES; i++)
		fprintf(f, "ringmta_replies_total{class=\"%s\"} %llu\n", classes[i],
			(unsigned long long)st->replies[i]);
	metric(f, "ringmta_timeouts_total", "counter", "Sessions closed by an idle timeout", st->timeouts);
	metric(f, "ringmta_tls_handshakes_total", "counter", "Inbound TLS handshakes finished",
	       st->tls_handshakes);
	metric(f, "ringmta_tls_handshake_failures_total", "counter",
	       "Inbound TLS handshakes that failed or timed out", st->tls_handshake_failures);
	metric(f, "ringmta_tls_resumed_total", "counter", "Inbound TLS sessions resumed", st->tls_resumed);
	fprintf(f, "# HELP ringmta_tls_sessions_total Inbound TLS sessions, by protocol version\n"
		   "# TYPE ringmta_tls_sessions_total counter\n"
		   "ringmta_tls_sessions_total{version=\"TLSv1.2\"} %llu\n"
		   "ringmta_tls_sessions_total{version=\"TLSv1.3\"} %llu\n",
		(unsigned long long)st->tls_sessions_12, (unsigned long long)st->tls_sessions_13);
	fprintf(f, "# HELP ringmta_auth_total AUTH attempts checked, by result\n"
		   "# TYPE ringmta_auth_total counter\n"
		   "ringmta_auth_total{result=\"success\"} %llu\n"
		   "ringmta_auth_total{result=\"failure\"} %llu\n",
		(unsigned long long)st->auth_successes, (unsigned long long)st->auth_failures);
	metric(f, "ringmta_auth_lockouts_total", "counter",
	       "Sessions closed with 421 after too many failed AUTH attempts", st->auth_lockouts);
	metric(f, "ringmta_stale_completions_total", "counter", "Completions for a reused slot, dropped",
	       st->stale_completions);
	metric(f, "ringmta_recv_enobufs_total", "counter", "Receives that found no free buffer", st->enobufs);
	metric(f, "ringmta_buffers", "gauge", "Provided receive buffers", st->buffers_total);
	metric(f, "ringmta_buffers_in_use", "gauge", "Receive buffers held by sessions or writes",
	       st->buffers_total - st->buffers_free);
	fprintf(f, "# HELP ringmta_spool_sync_seconds fdatasync latency\n# TYPE ringmta_spool_sync_seconds histogram\n");
	uint64_t cum = 0;
	double le = 0.0001;
	for (int i = 0; i < STORE_SYNC_BUCKETS; i++) {
		cum += st->sync_hist[i];
		if (i == STORE_SYNC_BUCKETS - 1)
			fprintf(f, "ringmta_spool_sync_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
		else
			fprintf(f, "ringmta_spool_sync_seconds_bucket{le=\"%g\"} %llu\n", le, (unsigned long long)cum);
		le *= 2;
	}
	fprintf(f, "ringmta_spool_sync_seconds_count %llu\n", (unsigned long long)cum);
}

/* respond - write a whole response and ignore a vanished client */
static void respond(int fd, int code, const char *reason, const char *ctype, const char *body, size_t n)
{
	char head[256];
	int h = snprintf(head, sizeof head,
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
			 code, reason, ctype, n);
	if (write(fd, head, (size_t)h) != h)
		return;
	while (n > 0) {
		ssize_t w = write(fd, body, n);
		if (w <= 0)
			return;
		body += w;
		n -= (size_t)w;
	}
}

/* serve_one - read one request from fd and answer it */
static void serve_one(struct metrics *m, int fd)
{
	char req[4096];
	size_t n = 0;
	struct timeval tv = { 2, 0 };

	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	while (n < sizeof req - 1) {
		ssize_t r = read(fd, req + n, sizeof req - 1 - n);
		if (r <= 0)
			return;
		n += (size_t)r;
		req[n] = '\0';
		if (strstr(req, "\r\n\r\n") != NULL || strstr(req, "\n\n") != NULL)
			break;
	}
	req[n] = '\0';
	char method[8], path[256];
	if (sscanf(req, "%7s %255s", method, path) != 2) {
		respond(fd, 400, "Bad Request", "text/plain", "bad request\n", 12);
		return;
	}
	char *q = strchr(path, '?');
	if (q != NULL)
		*q = '\0';
	bool head = strcmp(method, "HEAD") == 0;
	if (strcmp(method, "GET") != 0 && !head) {
		respond(fd, 405, "Method Not Allowed", "text/plain", "GET only\n", 9);
		return;
	}
	if (strcmp(path, "/healthz") == 0) {
		respond(fd, 200, "OK", "text/plain", "ok\n", head ? 0 : 3);
	} else if (strcmp(path, "/readyz") == 0) {
		if (__atomic_load_n(&m->ready, __ATOMIC_ACQUIRE))
			respond(fd, 200, "OK", "text/plain", "ready\n", head ? 0 : 6);
		else
			respond(fd, 503, "Service Unavailable", "text/plain", "not ready\n", head ? 0 : 10);
	} else if (strcmp(path, "/metrics") == 0) {
		char *body = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&body, &len);
		if (f == NULL) {
			respond(fd, 500, "Internal Server Error", "text/plain", "no memory\n", 10);
			return;
		}
		struct shard_stats st;
		unsigned open = 0;
		struct net_server *s = __atomic_load_n(&m->srv, __ATOMIC_ACQUIRE);
		memset(&st, 0, sizeof st);
		if (s != NULL) {
			net_server_stats(s, &st);
			open = net_server_open(s);
		}
		metrics_render(&st, open, f);
		fclose(f);
		respond(fd, 200, "OK", "text/plain; version=0.0.4", body, head ? 0 : len);
		free(body);
	} else {
		respond(fd, 404, "Not Found", "text/plain", "not found\n", head ? 0 : 10);
	}
}

/* metrics_main - the endpoint's thread */
static void *metrics_main(void *arg)
{
	struct metrics *m = arg;

	while (!__atomic_load_n(&m->stop, __ATOMIC_ACQUIRE)) {
		struct pollfd p = { .fd = m->fd, .events = POLLIN };
		if (poll(&p, 1, 200) <= 0)
			continue;
		int fd = accept4(m->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		serve_one(m, fd);
		close(fd);
	}
	return NULL;
}
