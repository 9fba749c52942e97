/* serve.c - the daemon's composition root: settings -> running shards.
 *
 * Order (CONTRACT.md): probe the kernel, open the HTTP endpoint (/readyz
 * 503), lock the spool, bind every listener, drop privileges, open the
 * control socket (tools/serve_control.c), start the shards (each recovers
 * its spool before it accepts), then /readyz 200 and
 * READY=1 to systemd. The calling thread then only handles signals (all are
 * blocked in the shards) and drives the drain: SIGTERM/SIGINT -> /readyz 503
 * and STOPPING=1 to systemd at once, --drain-grace seconds of normal
 * service, then new sessions get
 * 421 4.3.2 while open ones have at most 30 s to finish, then stop and exit
 * 0. It also refreshes the free-space figure once a second. Exit codes: 0
 * after a drain, 2 on a bad environment
 * at start-up (locked spool, missing kernel feature, unbindable address).
 */
#include "tools/opts.h"

#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "net/auth.h"
#include "net/evlog.h"
#include "net/metrics.h"
#include "net/policy.h"
#include "net/ring.h"
#include "net/shard.h"
#include "net/store.h"
#include "net/tls.h"
#include "queue/spool.h"
#include "tools/serve_control.h"
#include "tools/serve_outbound.h"

#define SERVE_STOP_GRACE_S 30 /* open sessions may finish this long */
#define SERVE_ERR 256

/* serve_fail - one line on stderr; exit code 2 (bad environment) */
static int serve_fail(const char *what)
{
	evlog_msg("error", "start", what);
	return 2;
}

/* serve_now - monotonic seconds */
static double serve_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* serve_spool_lock - create the spool directory and hold its lock
 * (spool_lock); -1 and a message when another instance holds it. The
 * directory and lock file go to --user, who opens the spool later. */
static int serve_spool_lock(const char *dir, const struct passwd *pw, char *err, size_t errlen)
{
	char path[4096];
	int fd = -1;
	int rc = spool_lock(dir, &fd);

	if (rc == RM_AGAIN) {
		snprintf(err, errlen, "spool %s is locked: another ringmta runs on it", dir);
		return -1;
	}
	if (rc != RM_OK) {
		snprintf(err, errlen, "--spool %s: cannot create or lock it", dir);
		return -1;
	}
	snprintf(path, sizeof path, "%s/lock", dir);
	if (pw != NULL && (chown(dir, pw->pw_uid, pw->pw_gid) != 0 || chown(path, pw->pw_uid, pw->pw_gid) != 0)) {
		snprintf(err, errlen, "--spool %s: chown to %s: %s", dir, pw->pw_name, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* serve_nets - add a list of networks to p's network table */
static int serve_nets(struct policy *p, const struct opt_cidr *nets, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct policy_cidr c = { .family = nets[i].family, .prefix = nets[i].prefix };
		memcpy(c.addr, nets[i].addr, sizeof c.addr);
		if (policy_add_net(p, &c) != RM_OK)
			return RM_ENOMEM;
	}
	return RM_OK;
}

/* serve_policy - the relay rule's tables from the settings; trusted gets
 * --proxy-trusted (only its network table is used, by net/proxy_in.c) */
static int serve_policy(const struct ringmta_opts *o, struct policy *p, struct policy *trusted, char *err,
			size_t errlen)
{
	policy_init(p);
	policy_init(trusted);
	p->min_free = o->min_free_space;
	if (serve_nets(p, o->relay_net, o->n_relay_net) != RM_OK ||
	    serve_nets(trusted, o->proxy_trusted, o->n_proxy_trusted) != RM_OK)
		goto nomem;
	policy_done(trusted);
	for (size_t i = 0; i < o->n_relay_domain; i++)
		if (policy_add_domain(p, o->relay_domain[i]) != RM_OK)
			goto nomem;
	if (o->relay_recipients != NULL && policy_load_rcpts(p, o->relay_recipients, err, errlen) != RM_OK)
		return -1;
	policy_done(p);
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
	return -1;
}

/* serve_listeners - the listener table from --listen and --listen-tls */
static struct net_listener *serve_listeners(const struct ringmta_opts *o, size_t *n)
{
	*n = o->n_listen + o->n_listen_tls;
	struct net_listener *l = calloc(*n ? *n : 1, sizeof *l);
	if (l == NULL)
		return NULL;
	for (size_t i = 0; i < *n; i++) {
		bool tls = i >= o->n_listen;
		const struct opt_addr *a = tls ? &o->listen_tls[i - o->n_listen] : &o->listen[i];
		l[i].sa = a->sa;
		l[i].salen = a->salen;
		l[i].tls = tls;
		snprintf(l[i].text, sizeof l[i].text, "%s", a->text);
	}
	return l;
}

/* serve_drop - become --user (after binding and opening the spool) */
static int serve_drop(const struct passwd *pw, char *err, size_t errlen)
{
	if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
		snprintf(err, errlen, "--user %s: %s", pw->pw_name, strerror(errno));
		return -1;
	}
	return 0;
}

/* serve_secrets - load (or, on SIGHUP, reload) the TLS certificate and
 * the auth file. On a reload an error keeps the old ones and is logged; at
 * start it is fatal (-1 with err). */
static int serve_secrets(const struct ringmta_opts *o, struct tls_slot *tls, struct auth *auth,
			 char *err, size_t errlen)
{
	if (o->tls_cert != NULL) {
		struct tls_ctx *ctx = tls_ctx_server_new(o->tls_cert, o->tls_key, err, errlen);
		if (ctx == NULL)
			return -1;
		tls_slot_store(tls, ctx);
	}
	if (auth != NULL && auth_load(auth, o->auth_file, err, errlen) != RM_OK)
		return -1;
	return 0;
}

/* serve_reload - SIGHUP: new sessions get the new certificate and users;
 * open sessions keep the context they started with */
static void serve_reload(const struct ringmta_opts *o, struct tls_slot *tls, struct auth *auth)
{
	char err[SERVE_ERR];

	if (serve_secrets(o, tls, auth, err, sizeof err) != 0)
		evlog_msg("warn", "reload", err);
	else if (o->tls_cert != NULL || auth != NULL)
		evlog_msg("info", "reload", "TLS certificate and auth file reloaded");
}

/* serve_signals - block the daemon's signals in this and every later thread */
static void serve_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* serve_wait - handle signals and drive the drain until it is time to stop */
static void serve_wait(const struct ringmta_opts *o, struct net_server *srv, struct metrics *m,
		       struct policy *pol, struct tls_slot *tls, struct auth *auth, const sigset_t *set)
{
	struct timespec tick = { 0, 100 * 1000000 };
	double drain_at = 0, refuse_at = 0, space_at = 0;

	for (;;) {
		int sig = sigtimedwait(set, NULL, &tick);
		double now = serve_now();
		if ((sig == SIGTERM || sig == SIGINT) && drain_at == 0) {
			drain_at = now;
			metrics_set_ready(m, false);
			net_notify_stopping();
			evlog_msg("info", "drain", "signal received: draining");
		} else if (sig == SIGHUP) {
			evlog_reopen();
			serve_reload(o, tls, auth);
		}
		if (drain_at != 0 && refuse_at == 0 && now - drain_at >= o->drain_grace) {
			refuse_at = now;
			net_server_set_phase(srv, NET_REFUSE);
		}
		if (refuse_at != 0 && (net_server_open(srv) == 0 || now - refuse_at >= SERVE_STOP_GRACE_S))
			break;
		if (now - space_at >= 1.0) {
			space_at = now;
			policy_refresh_space(pol, o->spool);
		}
	}
	net_server_set_phase(srv, NET_STOP);
}

/* ringmta_serve - run the daemon with these settings until it is told to stop */
int ringmta_serve(const struct ringmta_opts *o)
{
	char err[SERVE_ERR], host[256];
	const char *missing = NULL;
	struct passwd *pw = NULL;
	struct metrics *m = NULL;
	struct net_server *srv = NULL;
	struct net_listener *listen = NULL;
	struct policy pol, trusted;
	struct serve_outbound so = { 0 };
	struct serve_control *ctl = NULL;
	struct tls_slot tls = { 0 };
	struct auth *auth = NULL;
	sigset_t set;
	int rc = 2, lockfd = -1;

	evlog_init(o->log_format == LOG_FORMAT_JSON);
	policy_init(&pol);
	policy_init(&trusted);
	serve_signals(&set);
	if (ring_probe(&missing) != RM_OK) {
		snprintf(err, sizeof err, "kernel lacks %s; ringmta needs Linux %s or later", missing,
			 RING_MIN_KERNEL);
		return serve_fail(err);
	}
	unsigned threads = o->threads ? o->threads : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	if (threads == 0)
		threads = 1;
	/* Each session is one socket; listeners, the ring, spool files and
	 * the HTTP endpoint need a few more. */
	unsigned long want = (unsigned long)o->max_connections + 64 * threads + 64;
	if (net_raise_nofile(want, err, sizeof err) != RM_OK)
		evlog_msg("warn", "start", err); /* accept then fails past it: handled */
	if (o->user != NULL && (pw = getpwnam(o->user)) == NULL) {
		snprintf(err, sizeof err, "--user %s: no such user", o->user);
		return serve_fail(err);
	}
	if (o->has_metrics) {
		m = metrics_start(&o->metrics.sa, o->metrics.salen, o->metrics.text, err, sizeof err);
		if (m == NULL)
			return serve_fail(err);
	}
	if ((lockfd = serve_spool_lock(o->spool, pw, err, sizeof err)) < 0)
		goto out;
	if (serve_policy(o, &pol, &trusted, err, sizeof err) != 0)
		goto out;
	policy_refresh_space(&pol, o->spool);
	if (o->hostname == NULL) {
		if (gethostname(host, sizeof host) != 0)
			snprintf(host, sizeof host, "localhost");
		host[sizeof host - 1] = '\0';
	}
	/* Certificate and users are read before privileges are dropped. */
	if (tls_slot_init(&tls) != RM_OK) {
		snprintf(err, sizeof err, "out of memory");
		goto out;
	}
	if (o->auth_file != NULL && (auth = auth_new(0, err, sizeof err)) == NULL)
		goto out;
	if (serve_secrets(o, &tls, auth, err, sizeof err) != 0)
		goto out;
	size_t nlisten;
	if ((listen = serve_listeners(o, &nlisten)) == NULL) {
		snprintf(err, sizeof err, "out of memory");
		goto out;
	}
	/* Each shard recovers its spool in net_server_start, before it accepts:
	 * /readyz stays 503 until every shard has. */
	struct store_spool_cfg spool_cfg = { .dir = o->spool, .threads = threads };
	if (serve_outbound_init(&so, o, o->hostname ? o->hostname : host, err, sizeof err) != 0)
		goto out;
	struct net_cfg cfg = {
		.listen = listen,
		.nlisten = nlisten,
		.threads = threads,
		.hostname = o->hostname ? o->hostname : host,
		.max_message_size = o->max_message_size,
		.max_recipients = o->max_recipients,
		.max_errors = o->max_errors,
		.max_connections = o->max_connections,
		.max_connections_per_ip = o->max_connections_per_ip,
		.command_timeout = o->command_timeout,
		.data_timeout = o->data_timeout,
		.policy = &pol,
		.store = &store_spool_ops,
		.store_global = &spool_cfg,
		.deliver = &outbound_ops,
		.deliver_global = &so.cfg,
		.proxy_protocol = o->proxy_protocol,
		.proxy_trusted = &trusted,
		.tls_server = o->tls_cert != NULL ? &tls : NULL,
		.auth = auth,
	};
	if (net_server_new(&cfg, &srv, err, sizeof err) != RM_OK)
		goto out;
	if (pw != NULL && serve_drop(pw, err, sizeof err) != 0)
		goto out;
	if ((ctl = serve_control_start(o->spool, &so.cfg, threads, err, sizeof err)) == NULL)
		goto out;
	if (net_server_start(srv, err, sizeof err) != RM_OK)
		goto out;
	metrics_set_server(m, srv);
	metrics_set_ready(m, true);
	net_notify_ready();
	snprintf(err, sizeof err, "ringmta %s listening with %u shards", RINGMTA_VERSION, threads);
	evlog_msg("info", "ready", err);

	serve_wait(o, srv, m, &pol, &tls, auth, &set);
	ctl = serve_control_stop(ctl);
	net_server_join(srv);
	evlog_msg("info", "stop", "drained, exiting");
	rc = 0;
out:
	if (rc != 0)
		serve_fail(err);
	ctl = serve_control_stop(ctl);
	metrics_set_server(m, NULL);
	m = metrics_stop(m);
	auth = auth_free(auth); /* its workers write to the shards' inboxes */
	srv = net_server_free(srv);
	serve_outbound_fini(&so);
	tls_slot_fini(&tls);
	free(listen);
	policy_free(&pol);
	policy_free(&trusted);
	if (lockfd >= 0)
		close(lockfd);
	return rc;
}
