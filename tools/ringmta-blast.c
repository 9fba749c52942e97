/* ringmta-blast.c - ringmta-blast's composition root: flags, the run
 * (tools/blast.c), a live progress line on a terminal, and the summary
 * (CONTRACT.md "ringmta-blast"). The main thread only waits: for signals
 * (SIGINT/SIGTERM ask the sessions to finish their message and QUIT) and
 * for the workers. Exit 0 when every message got a 2xx, 1 otherwise (a
 * session that could not start TLS with --starttls included), 2 on a bad
 * flag or environment.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tools/blast.h"
#include "tools/blast_opts.h"

#define BLAST_TICK_MS 200

/* blast_rate - per second over r's time */
static double blast_rate(double v, const struct blast_result *r)
{
	return r->seconds > 0 ? v / r->seconds : 0;
}

/* blast_ms - microseconds as milliseconds */
static double blast_ms(uint64_t us)
{
	return (double)us / 1000.0;
}

/* blast_report - the summary, text or one JSON object, on stdout */
static void blast_report(const struct blast_result *r, bool json)
{
	double done = (double)(r->accepted + r->rejected);
	double mps = blast_rate(done, r), mbps = blast_rate((double)r->bytes / 1e6, r);
	double p50 = blast_ms(hist_percentile(&r->latency, 50)), p90 = blast_ms(hist_percentile(&r->latency, 90));
	double p99 = blast_ms(hist_percentile(&r->latency, 99)), max = blast_ms(r->latency.max);

	if (json) {
		printf("{\"sent\":%llu,\"accepted\":%llu,\"rejected\":%llu,\"errors\":%llu,\"seconds\":%.6f,"
		       "\"msgs_per_sec\":%.1f,\"mb_per_sec\":%.3f,"
		       "\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"max\":%.3f}}\n",
		       (unsigned long long)r->sent, (unsigned long long)r->accepted, (unsigned long long)r->rejected,
		       (unsigned long long)r->errors, r->seconds, mps, mbps, p50, p90, p99, max);
		return;
	}
	printf("sent %llu, accepted %llu, rejected %llu, errors %llu in %.3f s\n", (unsigned long long)r->sent,
	       (unsigned long long)r->accepted, (unsigned long long)r->rejected, (unsigned long long)r->errors,
	       r->seconds);
	printf("%.1f messages/s, %.3f MB/s\n", mps, mbps);
	printf("latency of the final reply: p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms\n", p50, p90, p99, max);
}

/* blast_progress_line - one overwritten line on the terminal */
static void blast_progress_line(const struct blast *b)
{
	struct blast_result r;

	blast_progress(b, &r);
	fprintf(stderr, "\r%8.1f s  sent %llu  accepted %llu  rejected %llu  errors %llu  %.0f msgs/s   ", r.seconds,
		(unsigned long long)r.sent, (unsigned long long)r.accepted, (unsigned long long)r.rejected,
		(unsigned long long)r.errors, blast_rate((double)(r.accepted + r.rejected), &r));
}

/* blast_messages_given - --messages was on the command line */
static bool blast_messages_given(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strncmp(argv[i], "--messages", 10) == 0 && (argv[i][10] == '\0' || argv[i][10] == '='))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	struct blast_opts o;
	struct blast_result r;
	char err[256];
	sigset_t set;
	int rc = blast_opts_parse(&o, argc, argv);

	if (rc)
		return rc == 1 ? 0 : 2;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* the workers inherit the mask */
	signal(SIGPIPE, SIG_IGN);

	struct blast *b = blast_start(&o, blast_messages_given(argc, argv), err, sizeof err);
	if (b == NULL) {
		fprintf(stderr, "ringmta-blast: %s\n", err);
		return 2;
	}
	bool tty = isatty(STDERR_FILENO);
	struct timespec tick = { 0, BLAST_TICK_MS * 1000000L };
	while (!blast_done(b)) {
		int sig = sigtimedwait(&set, NULL, &tick);
		if (sig == SIGINT || sig == SIGTERM)
			blast_stop(b);
		if (tty)
			blast_progress_line(b);
	}
	if (tty)
		fputs("\r\033[K", stderr);
	blast_finish(b, &r);
	blast_report(&r, o.json);
	return r.sent > 0 && r.accepted == r.sent && r.errors == 0 ? 0 : 1;
}
