/* ringmta-sink.c - ringmta-sink's composition root: a fast SMTP sink for
 * benchmarks and tests (CONTRACT.md "ringmta-sink").
 *
 * The io_uring server runtime (net/shard.h) with the sink store
 * (net/store_sink.h: counts, and with --dump writes each message to a file)
 * and a policy that relays everything except recipients matching a
 * --fail-rcpt pattern, which get that pattern's code (first match wins).
 * The main thread only handles signals: SIGUSR1 prints the running count on
 * stdout, SIGTERM/SIGINT stop the shards, print the count and exit 0.
 * With --tls-cert/--tls-key the runtime offers STARTTLS (net/tls.h), as the
 * daemon does; the certificate is read once at start. Exit 2 on a bad flag
 * or environment (a certificate or key that does not load included).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/glob.h"
#include "net/ring.h"
#include "net/shard.h"
#include "net/store_sink.h"
#include "net/tls.h"
#include "tools/sink_opts.h"

#define SINK_MAX_CONNECTIONS 20000
#define SINK_MAX_RECIPIENTS 100000
#define SINK_MAX_SIZE (1ull << 30)
#define SINK_TIMEOUT_S 300

/* sink_rcpt - the --fail-rcpt table: the first matching pattern's code */
static void sink_rcpt(void *ctx, const struct smtp_server *s, const struct smtp_path *to,
		      const struct smtp_rcpt_params *p, struct smtp_verdict *v)
{
	const struct sink_opts *o = ctx;
	(void)s;
	(void)p;

	for (size_t i = 0; i < o->n_fail_rcpt; i++) {
		if (glob_match(slice_cstr(o->fail_rcpt[i].pattern), to->mailbox)) {
			bool temp = o->fail_rcpt[i].code < 500;
			v->code = o->fail_rcpt[i].code;
			v->enh = temp ? "4.0.0" : "5.0.0";
			v->text = temp ? "Recipient deferred by --fail-rcpt" : "Recipient refused by --fail-rcpt";
			return;
		}
	}
}

/* sink_print - the running count, one line on stdout */
static void sink_print(const struct store_sink *g, const char *when)
{
	struct store_sink_counts n;

	store_sink_counts(g, &n);
	printf("ringmta-sink: %s messages=%llu recipients=%llu bytes=%llu errors=%llu\n", when,
	       (unsigned long long)n.messages, (unsigned long long)n.recipients, (unsigned long long)n.bytes,
	       (unsigned long long)n.errors);
	fflush(stdout);
}

/* sink_dump_dir - create --dump DIR if missing; it must be a writable directory */
static int sink_dump_dir(const char *dir)
{
	struct stat sb;

	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "ringmta-sink: --dump %s: %s\n", dir, strerror(errno));
		return -1;
	}
	if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode) || access(dir, W_OK | X_OK) != 0) {
		fprintf(stderr, "ringmta-sink: --dump %s: not a writable directory\n", dir);
		return -1;
	}
	return 0;
}

/* sink_tls - the server context from --tls-cert/--tls-key into tls, or
 * nothing without them; -1 with err when they do not load */
static int sink_tls(const struct sink_opts *o, struct tls_slot *tls, char *err, size_t errlen)
{
	if (o->tls_cert == NULL)
		return 0;
	struct tls_ctx *ctx = tls_ctx_server_new(o->tls_cert, o->tls_key, err, errlen);
	if (ctx == NULL)
		return -1;
	tls_slot_store(tls, ctx);
	return 0;
}

/* sink_run - serve until SIGTERM/SIGINT */
static int sink_run(struct sink_opts *o)
{
	char err[256], host[256];
	const char *missing = NULL;
	struct net_server *srv = NULL;
	struct store_sink g;
	struct tls_slot tls = { 0 };
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* the shards inherit the mask */
	signal(SIGPIPE, SIG_IGN);

	if (ring_probe(&missing) != RM_OK) {
		fprintf(stderr, "ringmta-sink: kernel lacks %s; needs Linux %s or later\n", missing,
			RING_MIN_KERNEL);
		return 2;
	}
	if (o->dump != NULL && sink_dump_dir(o->dump) != 0)
		return 2;
	if (tls_slot_init(&tls) != RM_OK) {
		fputs("ringmta-sink: out of memory\n", stderr);
		return 2;
	}
	if (sink_tls(o, &tls, err, sizeof err) != 0) {
		fprintf(stderr, "ringmta-sink: %s\n", err);
		tls_slot_fini(&tls);
		return 2;
	}
	/* As many descriptors as we may get: past them accept fails, which
	 * the runtime handles, so a low limit is not an error. */
	if (net_raise_nofile(SINK_MAX_CONNECTIONS, err, sizeof err) != RM_OK)
		err[0] = '\0';
	if (gethostname(host, sizeof host) != 0)
		snprintf(host, sizeof host, "localhost");
	host[sizeof host - 1] = '\0';
	store_sink_init(&g, o->dump);

	struct net_listener l = { .sa = o->listen.sa, .salen = o->listen.salen, .tls = false };
	snprintf(l.text, sizeof l.text, "%s", o->listen.text);
	struct smtp_server_policy pol = { .mail = NULL, .rcpt = sink_rcpt, .ctx = o };
	struct net_cfg cfg = {
		.listen = &l,
		.nlisten = 1,
		.threads = o->threads ? o->threads : 1,
		.hostname = host,
		.max_message_size = SINK_MAX_SIZE,
		.max_recipients = SINK_MAX_RECIPIENTS,
		.max_errors = 0,
		.max_connections = SINK_MAX_CONNECTIONS,
		.max_connections_per_ip = SINK_MAX_CONNECTIONS,
		.command_timeout = SINK_TIMEOUT_S,
		.data_timeout = SINK_TIMEOUT_S,
		.policy = NULL,
		.store = &store_sink_ops,
		.store_global = &g,
		.engine_policy = &pol,
		.no_chunking = !o->advertise_chunking,
		.quiet = true,
		.tls_server = o->tls_cert != NULL ? &tls : NULL,
	};
	if (net_server_new(&cfg, &srv, err, sizeof err) != RM_OK ||
	    net_server_start(srv, err, sizeof err) != RM_OK) {
		fprintf(stderr, "ringmta-sink: %s\n", err);
		net_server_free(srv);
		tls_slot_fini(&tls);
		return 2;
	}
	fprintf(stderr, "ringmta-sink %s listening on %s with %u thread%s%s%s%s\n", RINGMTA_VERSION,
		o->listen.text, cfg.threads, cfg.threads == 1 ? "" : "s", o->tls_cert ? ", STARTTLS" : "",
		o->dump ? ", dumping to " : "", o->dump ? o->dump : "");

	for (;;) {
		int sig = sigwaitinfo(&set, NULL);
		if (sig == SIGUSR1)
			sink_print(&g, "running");
		else if (sig == SIGTERM || sig == SIGINT)
			break;
	}
	net_server_set_phase(srv, NET_STOP);
	net_server_join(srv);
	sink_print(&g, "exit");
	net_server_free(srv);
	tls_slot_fini(&tls);
	return 0;
}

int main(int argc, char **argv)
{
	struct sink_opts o;
	int rc = sink_opts_parse(&o, argc, argv);

	if (rc)
		return rc == 1 ? 0 : 2;
	return sink_run(&o);
}
