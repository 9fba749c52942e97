/* dns_lookup.c - a test helper that runs an io_uring ring and a resolver
 * (net/dns.h) and prints what each MX lookup found, for tests/integration.
 *
 * Usage: dns-lookup --dns ADDR:PORT [--timeout-ms N] [--tries N]
 *                   [--repeat N] [--cancel-odd] [--deadline-ms N]
 *                   [--hosted] DOMAIN...
 * Every lookup (each DOMAIN, --repeat times) is started at once; when all
 * have called back, one block per lookup is printed in the order started:
 *   DOMAIN ok implicit=0|1 ms=N
 *     host PREF NAME ADDR...
 *   DOMAIN temp|perm CODE ENH ms=N TEXT
 * then "completed N cancelled M". With --cancel-odd every second lookup is
 * cancelled right after it starts; its callback must never come. Exits 0
 * when every lookup not cancelled called back once, 1 otherwise, 2 on bad
 * usage. --hosted runs the resolver under another module's user_data
 * prefix (dns_cfg.ud_base), as a delivery module hosting it would.
 * Main thread only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net/dns.h"
#include "net/ring.h"

struct dl_lookup {
	const char *domain;
	uint64_t id;
	int64_t start_ms, end_ms;
	bool cancelled;
	unsigned calls;
	char *text; /* the printed block */
};

static unsigned dl_outstanding;

/* dl_now_ms - the monotonic clock in milliseconds */
static int64_t dl_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* dl_done - a lookup's callback: format its block */
static void dl_done(void *arg, uint64_t id, const struct dns_result *res)
{
	struct dl_lookup *l = arg;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (id != l->id)
		fprintf(stderr, "dns-lookup: callback with id %llx, expected %llx\n",
			(unsigned long long)id, (unsigned long long)l->id);
	l->calls++;
	l->end_ms = dl_now_ms();
	if (res->status == DNS_OK) {
		fprintf(f, "%s ok implicit=%d ms=%lld ttl=%lld\n", l->domain, res->implicit_mx ? 1 : 0,
			(long long)(l->end_ms - l->start_ms),
			res->ttl_s == UINT32_MAX ? -1ll : (long long)res->ttl_s);
		for (unsigned i = 0; i < res->nhost; i++) {
			const struct dns_host *h = &res->host[i];
			fprintf(f, "  host %u %s", h->pref, h->name);
			for (unsigned j = 0; j < h->naddr; j++) {
				char a[INET6_ADDRSTRLEN];
				inet_ntop(h->addr[j].family, h->addr[j].bytes, a, sizeof a);
				fprintf(f, " %s", a);
			}
			fputc('\n', f);
		}
	} else {
		fprintf(f, "%s %s %u %s ms=%lld %s\n", l->domain, dns_status_text(res->status), res->code,
			res->enh, (long long)(l->end_ms - l->start_ms), res->text);
	}
	fclose(f);
	free(l->text);
	l->text = buf;
	if (l->calls == 1 && !l->cancelled)
		dl_outstanding--;
}

/* dl_usage - the usage line */
static int dl_usage(void)
{
	fprintf(stderr, "usage: dns-lookup --dns ADDR:PORT [--timeout-ms N] [--tries N] [--repeat N] "
			"[--cancel-odd] [--deadline-ms N] DOMAIN...\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct dns_cfg cfg = { 0 };
	unsigned repeat = 1;
	bool cancel_odd = false, hosted = false;
	int64_t deadline_ms = 30000;
	int i;

	for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (strcmp(argv[i], "--hosted") == 0) {
			hosted = true;
			continue;
		}
		if (i + 1 >= argc && strcmp(argv[i], "--cancel-odd") != 0)
			return dl_usage();
		if (strcmp(argv[i], "--dns") == 0)
			cfg.servers = argv[++i];
		else if (strcmp(argv[i], "--timeout-ms") == 0)
			cfg.timeout_ms = (unsigned)atoi(argv[++i]);
		else if (strcmp(argv[i], "--tries") == 0)
			cfg.tries = (unsigned)atoi(argv[++i]);
		else if (strcmp(argv[i], "--repeat") == 0)
			repeat = (unsigned)atoi(argv[++i]);
		else if (strcmp(argv[i], "--deadline-ms") == 0)
			deadline_ms = atoi(argv[++i]);
		else if (strcmp(argv[i], "--cancel-odd") == 0)
			cancel_odd = true;
		else
			return dl_usage();
	}
	if (i >= argc || repeat == 0)
		return dl_usage();
	if (hosted)
		cfg.ud_base = ((uint64_t)9 << 56) | ((uint64_t)0xab << 24);
	uint64_t base = hosted ? cfg.ud_base : dns_user_data(0);
	size_t nl = (size_t)(argc - i) * repeat;
	struct dl_lookup *ls = calloc(nl, sizeof *ls);
	struct io_uring ring;
	struct dns *r;
	char err[160];

	if (ls == NULL || ring_init(&ring, 256) != RM_OK) {
		fprintf(stderr, "dns-lookup: no ring\n");
		return 1;
	}
	if (dns_new(&ring, &cfg, &r, err, sizeof err) != RM_OK) {
		fprintf(stderr, "dns-lookup: %s\n", err);
		io_uring_queue_exit(&ring);
		free(ls);
		return 2;
	}
	unsigned cancelled = 0;
	for (size_t k = 0; k < nl; k++) {
		struct dl_lookup *l = &ls[k];
		l->domain = argv[i + (int)(k % (size_t)(argc - i))];
		l->start_ms = dl_now_ms();
		int rc = dns_lookup_mx(r, l->domain, dl_done, l, &l->id);
		if (rc != RM_OK) {
			fprintf(stderr, "dns-lookup: %s: %s\n", l->domain, rm_strerror(rc));
			return 1;
		}
		dl_outstanding++;
		if (cancel_odd && k % 2 == 1) {
			if (!dns_cancel(r, l->id) || dns_cancel(r, l->id)) {
				fprintf(stderr, "dns-lookup: cancel misbehaved\n");
				return 1;
			}
			l->cancelled = true;
			dl_outstanding--;
			cancelled++;
		}
	}
	int64_t end = dl_now_ms() + deadline_ms;
	while (dl_outstanding > 0 && dl_now_ms() < end) {
		struct io_uring_cqe *cqe;
		int64_t w = dns_wait_ms(r, 250);
		struct __kernel_timespec ts = { .tv_sec = w / 1000, .tv_nsec = (w % 1000) * 1000000 };
		int rc = io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL);
		if (rc < 0 && rc != -ETIME && rc != -EINTR) {
			fprintf(stderr, "dns-lookup: ring: %s\n", strerror(-rc));
			return 1;
		}
		unsigned head, n = 0;
		io_uring_for_each_cqe(&ring, head, cqe) {
			if ((cqe->user_data & ~(uint64_t)DNS_TAG_MASK) == base)
				dns_complete(r, (uint32_t)cqe->user_data & DNS_TAG_MASK, cqe->res);
			else
				fprintf(stderr, "dns-lookup: foreign completion %llx\n",
					(unsigned long long)cqe->user_data);
			n++;
		}
		io_uring_cq_advance(&ring, n);
		dns_tick(r);
	}
	int status = dl_outstanding == 0 && dns_pending(r) == 0 ? 0 : 1;
	unsigned completed = 0;
	for (size_t k = 0; k < nl; k++) {
		struct dl_lookup *l = &ls[k];
		if (l->calls > 0)
			completed++;
		if ((l->cancelled && l->calls > 0) || l->calls > 1) {
			fprintf(stderr, "dns-lookup: %s: %u callbacks%s\n", l->domain, l->calls,
				l->cancelled ? " after cancel" : "");
			status = 1;
		}
		if (l->text)
			fputs(l->text, stdout);
		else if (!l->cancelled)
			printf("%s none\n", l->domain);
		free(l->text);
	}
	printf("completed %u cancelled %u\n", completed, cancelled);
	r = dns_free(r);
	io_uring_queue_exit(&ring);
	free(ls);
	return status;
}
