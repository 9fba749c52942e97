/* opts.c - ringmta's settings from defaults, the config file and argv
 * (interface and the "none"/yes-no conventions in opts.h).
 *
 * One table lists every flag with the default CONTRACT.md gives it; the
 * defaults are applied by feeding those same strings through the same
 * setter as flags and file lines, so --help, --check-config and the
 * behaviour cannot disagree. Each list remembers which source (default,
 * file, argv) filled it; the first item from a later source empties it.
 * Main thread, start-up only.
 */
#include "tools/opts.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/slice.h"

enum opts_id {
	O_CONFIG, O_LISTEN, O_LISTEN_TLS, O_HOSTNAME, O_THREADS, O_SPOOL, O_SMARTHOST, O_ROUTE, O_DNS,
	O_MX_PORT, O_RELAY_NET, O_RELAY_DOMAIN, O_AUTH_FILE, O_TLS_CERT, O_TLS_KEY, O_OUTBOUND_TLS,
	O_OUTBOUND_CA, O_PROXY_PROTOCOL, O_PROXY_TRUSTED, O_MAX_MESSAGE_SIZE, O_MAX_RECIPIENTS,
	O_MAX_CONNECTIONS, O_MAX_CONNECTIONS_PER_IP, O_MAX_ERRORS, O_COMMAND_TIMEOUT, O_DATA_TIMEOUT,
	O_DEST_MAX_CONNECTIONS, O_DEST_MAX_MESSAGES, O_RETRY_SCHEDULE, O_MAX_QUEUE_LIFETIME,
	O_RELAY_RECIPIENTS, O_MIN_FREE_SPACE, O_USER, O_DRAIN_GRACE, O_METRICS, O_LOG_FORMAT,
	O_CHECK_CONFIG,
};

/* The lists whose source is tracked (index into _list_src). */
enum { L_LISTEN, L_LISTEN_TLS, L_ROUTE, L_RELAY_NET, L_RELAY_DOMAIN, L_PROXY_TRUSTED };
enum { SRC_DEFAULT = 1, SRC_FILE, SRC_ARGV };

#define OPTS_SYSTEM_HOSTNAME "system host name"
#define OPTS_ONLINE_CPUS "online CPUs"
#define OPTS_DAY 86400ull

static const struct opttab_def opts_defs[] = {
	{ "config", 'c', "FILE", "none", "config file: key = value lines, keys are the flag names", O_CONFIG, 0 },
	{ "listen", 0, "ADDR:PORT", "127.0.0.1:2525", "SMTP listener, repeatable; IPv6 as [::1]:2525", O_LISTEN, 0 },
	{ "listen-tls", 0, "ADDR:PORT", "none", "implicit-TLS SMTP listener (RFC 8314), repeatable", O_LISTEN_TLS, 0 },
	{ "hostname", 0, "NAME", OPTS_SYSTEM_HOSTNAME, "name in the greeting, EHLO reply and Received:", O_HOSTNAME,
	  OPTTAB_DESCRIBED_DEFAULT },
	{ "threads", 0, "N", OPTS_ONLINE_CPUS, "number of shards (one io_uring event loop each), 1-1024", O_THREADS,
	  OPTTAB_DESCRIBED_DEFAULT },
	{ "spool", 0, "DIR", "./spool", "durable queue directory, created if missing", O_SPOOL, 0 },
	{ "smarthost", 0, "HOST:PORT", "none", "deliver all mail to this next hop", O_SMARTHOST, 0 },
	{ "route", 0, "DOMAIN=HOST:PORT", "none", "next hop for one recipient domain, repeatable", O_ROUTE, 0 },
	{ "dns", 0, "ADDR:PORT", "none", "resolver for MX/A/AAAA lookups; none: from /etc/resolv.conf", O_DNS, 0 },
	{ "mx-port", 0, "PORT", "25", "TCP port for hosts found by MX/A/AAAA lookup", O_MX_PORT, 0 },
	{ "relay-net", 0, "CIDR", "127.0.0.0/8, ::1/128", "client networks allowed to relay, repeatable",
	  O_RELAY_NET, 0 },
	{ "relay-domain", 0, "DOMAIN", "none", "recipient domain accepted from any client, repeatable",
	  O_RELAY_DOMAIN, 0 },
	{ "auth-file", 0, "FILE", "none", "user:crypt(3)-hash lines; enables AUTH under TLS", O_AUTH_FILE, 0 },
	{ "tls-cert", 0, "FILE", "none", "PEM certificate chain; enables STARTTLS inbound", O_TLS_CERT, 0 },
	{ "tls-key", 0, "FILE", "none", "PEM private key for --tls-cert", O_TLS_KEY, 0 },
	{ "outbound-tls", 0, "none|opportunistic|required|verify", "opportunistic", "STARTTLS toward next hops",
	  O_OUTBOUND_TLS, 0 },
	{ "outbound-ca", 0, "FILE", "none", "trust anchors for verify; none: the system CA store", O_OUTBOUND_CA, 0 },
	{ "proxy-protocol", 0, NULL, "off", "every connection starts with a PROXY v1 or v2 header",
	  O_PROXY_PROTOCOL, 0 },
	{ "proxy-trusted", 0, "CIDR", "127.0.0.0/8, ::1/128", "peers allowed to send PROXY headers, repeatable",
	  O_PROXY_TRUSTED, 0 },
	{ "max-message-size", 0, "BYTES", "52428800", "advertised as SIZE; larger messages get 552",
	  O_MAX_MESSAGE_SIZE, 0 },
	{ "max-recipients", 0, "N", "1000", "recipients per transaction; more get 452", O_MAX_RECIPIENTS, 0 },
	{ "max-connections", 0, "N", "20000", "connections in total; past it 421", O_MAX_CONNECTIONS, 0 },
	{ "max-connections-per-ip", 0, "N", "200", "connections per client address; past it 421",
	  O_MAX_CONNECTIONS_PER_IP, 0 },
	{ "max-errors", 0, "N", "20", "protocol errors in one session; then 421 and close", O_MAX_ERRORS, 0 },
	{ "command-timeout", 0, "SECONDS", "300", "idle time waiting for a command; then 421", O_COMMAND_TIMEOUT, 0 },
	{ "data-timeout", 0, "SECONDS", "300", "idle time inside DATA or a BDAT chunk; then 421", O_DATA_TIMEOUT, 0 },
	{ "dest-max-connections", 0, "N", "20", "outbound connections per next hop, all shards",
	  O_DEST_MAX_CONNECTIONS, 0 },
	{ "dest-max-messages-per-connection", 0, "N", "100", "messages per outbound connection",
	  O_DEST_MAX_MESSAGES, 0 },
	{ "retry-schedule", 0, "LIST", "60,300,900,3600", "seconds between delivery attempts (last repeats)",
	  O_RETRY_SCHEDULE, 0 },
	{ "max-queue-lifetime", 0, "SECONDS", "432000", "then the message bounces", O_MAX_QUEUE_LIFETIME, 0 },
	{ "relay-recipients", 0, "FILE", "none", "user@domain or @domain lines listing relay-domain recipients",
	  O_RELAY_RECIPIENTS, 0 },
	{ "min-free-space", 0, "BYTES", "1073741824", "below this free spool space MAIL gets 452",
	  O_MIN_FREE_SPACE, 0 },
	{ "user", 0, "NAME", "none", "drop to this user after binding and opening the spool", O_USER, 0 },
	{ "drain-grace", 0, "SECONDS", "5", "after SIGTERM keep serving this long before refusing",
	  O_DRAIN_GRACE, 0 },
	{ "metrics", 0, "ADDR:PORT", "none", "HTTP /metrics, /healthz, /readyz", O_METRICS, 0 },
	{ "log-format", 0, "text|json", "text", "one line per event on stderr", O_LOG_FORMAT, 0 },
	{ "check-config", 0, NULL, NULL, "validate, print every effective setting, exit", O_CHECK_CONFIG, 0 },
};

static const struct opttab opts_table = {
	.prog = "ringmta",
	.synopsis = "[OPTIONS]",
	.defs = opts_defs,
	.n_defs = sizeof(opts_defs) / sizeof(opts_defs[0]),
	.epilog = "Every flag is also a config-file key without the dashes (listen = 127.0.0.1:2525);\n"
		  "repeated keys append; flags override the file; a list given at all replaces its\n"
		  "default, and a list on the command line replaces the file's. The value none unsets\n"
		  "a setting or empties a list. Booleans: yes/no.\n",
};

static const char *const opts_tls_names[] = { "none", "opportunistic", "required", "verify" };
static const char *const opts_log_names[] = { "text", "json" };

struct opts_ctx {
	struct ringmta_opts *o;
	int src;
};

/* opts_grow - room for one more element of size elem after n of them */
static void *opts_grow(void *arr, size_t n, size_t elem)
{
	void *p = realloc(arr, (n + 1) * elem);

	if (!p) {
		fputs("ringmta: out of memory\n", stderr);
		exit(1);
	}
	return p;
}

/* opts_strdup - a heap copy, exiting on failure */
static char *opts_strdup(const char *s)
{
	char *p = opts_grow(NULL, strlen(s), 1);

	return memcpy(p, s, strlen(s) + 1);
}

/* opts_is_none - the value that unsets a setting or empties a list */
static bool opts_is_none(const char *v)
{
	return v && strcmp(v, "none") == 0;
}

/* opts_list_turn - before an item of list `which` from the current source:
 * empty the list if an earlier source filled it (freeing strings when strs
 * is given); true when value is "none" (the list stays empty) */
static bool opts_list_turn(struct opts_ctx *c, int which, size_t *n, char **strs, const char *value)
{
	if (c->o->_list_src[which] != c->src || opts_is_none(value)) {
		for (size_t i = 0; strs && i < *n; i++)
			free(strs[i]);
		*n = 0;
		c->o->_list_src[which] = c->src;
	}
	return opts_is_none(value);
}

/* opts_set_str - an owned string setting; none unsets it */
static const char *opts_set_str(char **dst, const char *value)
{
	const char *why = opttab_nonempty(value);

	if (why)
		return why;
	free(*dst);
	*dst = opts_is_none(value) ? NULL : opts_strdup(value);
	return NULL;
}

/* opts_set_enum - one of names[0..n) */
static const char *opts_set_enum(int *dst, const char *value, const char *const *names, int n)
{
	for (int i = 0; value && i < n; i++) {
		if (strcmp(value, names[i]) == 0) {
			*dst = i;
			return NULL;
		}
	}
	return "not one of the allowed values";
}

/* opts_set_retry - a comma-separated list of 1..64 delays in seconds */
static const char *opts_set_retry(struct ringmta_opts *o, const char *value)
{
	size_t n = 0;
	unsigned v[64];

	for (const char *p = value; p; n++) {
		const char *comma = strchr(p, ',');
		char item[16];
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		const char *why;

		if (n == 64)
			return "more than 64 delays";
		if (len == 0 || len >= sizeof item)
			return "expected seconds separated by commas";
		memcpy(item, p, len);
		item[len] = '\0';
		if ((why = opttab_unsigned(item, 1, (unsigned)(30 * OPTS_DAY), &v[n])))
			return why;
		p = comma ? comma + 1 : NULL;
	}
	free(o->retry_schedule);
	o->retry_schedule = opts_grow(NULL, n - 1, sizeof(unsigned));
	memcpy(o->retry_schedule, v, n * sizeof(unsigned));
	o->n_retry_schedule = n;
	return NULL;
}

/* opts_set_route - DOMAIN=HOST:PORT appended to the routes */
static const char *opts_set_route(struct opts_ctx *c, const char *value)
{
	struct ringmta_opts *o = c->o;
	const char *eq = strchr(value, '=');
	struct opt_route r;
	const char *why;

	if (opts_list_turn(c, L_ROUTE, &o->n_route, NULL, value))
		return NULL;
	if (!eq)
		return "expected DOMAIN=HOST:PORT";
	if ((why = opttab_domain(value, (size_t)(eq - value), r.domain, sizeof r.domain)) ||
	    (why = opttab_hostport(eq + 1, &r.hop)))
		return why;
	o->route = opts_grow(o->route, o->n_route, sizeof r);
	o->route[o->n_route++] = r;
	return NULL;
}

/* opts_add_addr - append ADDR:PORT to a listener list */
static const char *opts_add_addr(struct opts_ctx *c, int which, struct opt_addr **arr, size_t *n,
				 const char *value)
{
	struct opt_addr a;
	const char *why;

	if (opts_list_turn(c, which, n, NULL, value))
		return NULL;
	if ((why = opttab_addr(value, &a)))
		return why;
	*arr = opts_grow(*arr, *n, sizeof a);
	(*arr)[(*n)++] = a;
	return NULL;
}

/* opts_add_cidr - append a CIDR to a network list */
static const char *opts_add_cidr(struct opts_ctx *c, int which, struct opt_cidr **arr, size_t *n,
				 const char *value)
{
	struct opt_cidr a;
	const char *why;

	if (opts_list_turn(c, which, n, NULL, value))
		return NULL;
	if ((why = opttab_cidr(value, &a)))
		return why;
	*arr = opts_grow(*arr, *n, sizeof a);
	(*arr)[(*n)++] = a;
	return NULL;
}

/* opts_set_optional_addr - ADDR:PORT or none */
static const char *opts_set_optional_addr(bool *has, struct opt_addr *a, const char *value)
{
	*has = !opts_is_none(value);
	return *has ? opttab_addr(value, a) : NULL;
}

/* opts_set_user - a user name: letters, digits, '.', '_', '-', not first '-' */
static const char *opts_set_user(struct ringmta_opts *o, const char *value)
{
	size_t n = strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-");

	if (value[0] == '-' || value[0] == '\0' || value[n] != '\0' || n > 32)
		return "bad user name";
	return opts_set_str(&o->user, value);
}

/* opts_set - apply one setting from any source; NULL or a reason */
static const char *opts_set(void *ctx, const struct opttab_def *d, const char *v)
{
	struct opts_ctx *c = ctx;
	struct ringmta_opts *o = c->o;
	uint64_t u;
	const char *why;
	char domain[256];
	int e;

	if (d->metavar && !v)
		return "missing value";
	switch ((enum opts_id)d->id) {
	case O_CONFIG: return NULL; /* read before everything else */
	case O_CHECK_CONFIG: return opttab_bool(v, &o->check_config);
	case O_LISTEN: return opts_add_addr(c, L_LISTEN, &o->listen, &o->n_listen, v);
	case O_LISTEN_TLS: return opts_add_addr(c, L_LISTEN_TLS, &o->listen_tls, &o->n_listen_tls, v);
	case O_HOSTNAME:
		if ((why = opttab_domain(v, strlen(v), domain, sizeof domain)))
			return why;
		return opts_set_str(&o->hostname, domain);
	case O_THREADS: return opttab_unsigned(v, 1, 1024, &o->threads);
	case O_SPOOL:
		return opts_is_none(v) ? "a spool is required" : opts_set_str(&o->spool, v);
	case O_SMARTHOST:
		o->has_smarthost = !opts_is_none(v);
		return o->has_smarthost ? opttab_hostport(v, &o->smarthost) : NULL;
	case O_ROUTE: return opts_set_route(c, v);
	case O_DNS: return opts_set_optional_addr(&o->has_dns, &o->dns, v);
	case O_MX_PORT:
		if ((why = opttab_uint(v, 1, 65535, &u)))
			return why;
		o->mx_port = (uint16_t)u;
		return NULL;
	case O_RELAY_NET: return opts_add_cidr(c, L_RELAY_NET, &o->relay_net, &o->n_relay_net, v);
	case O_PROXY_TRUSTED:
		return opts_add_cidr(c, L_PROXY_TRUSTED, &o->proxy_trusted, &o->n_proxy_trusted, v);
	case O_RELAY_DOMAIN:
		if (opts_list_turn(c, L_RELAY_DOMAIN, &o->n_relay_domain, o->relay_domain, v))
			return NULL;
		if ((why = opttab_domain(v, strlen(v), domain, sizeof domain)))
			return why;
		o->relay_domain = opts_grow(o->relay_domain, o->n_relay_domain, sizeof(char *));
		o->relay_domain[o->n_relay_domain++] = opts_strdup(domain);
		return NULL;
	case O_AUTH_FILE: return opts_set_str(&o->auth_file, v);
	case O_TLS_CERT: return opts_set_str(&o->tls_cert, v);
	case O_TLS_KEY: return opts_set_str(&o->tls_key, v);
	case O_OUTBOUND_CA: return opts_set_str(&o->outbound_ca, v);
	case O_RELAY_RECIPIENTS: return opts_set_str(&o->relay_recipients, v);
	case O_USER: return opts_is_none(v) ? opts_set_str(&o->user, v) : opts_set_user(o, v);
	case O_OUTBOUND_TLS:
		why = opts_set_enum(&e, v, opts_tls_names, 4);
		if (!why)
			o->outbound_tls = (enum opt_outbound_tls)e;
		return why;
	case O_LOG_FORMAT:
		why = opts_set_enum(&e, v, opts_log_names, 2);
		if (!why)
			o->log_format = (enum opt_log_format)e;
		return why;
	case O_PROXY_PROTOCOL: return opttab_bool(v, &o->proxy_protocol);
	case O_MAX_MESSAGE_SIZE: return opttab_uint(v, 1, 1ull << 40, &o->max_message_size);
	case O_MIN_FREE_SPACE: return opttab_uint(v, 0, 1ull << 50, &o->min_free_space);
	case O_MAX_RECIPIENTS: return opttab_unsigned(v, 1, 100000, &o->max_recipients);
	case O_MAX_CONNECTIONS: return opttab_unsigned(v, 1, 10000000, &o->max_connections);
	case O_MAX_CONNECTIONS_PER_IP: return opttab_unsigned(v, 1, 10000000, &o->max_connections_per_ip);
	case O_MAX_ERRORS: return opttab_unsigned(v, 1, 100000, &o->max_errors);
	case O_COMMAND_TIMEOUT: return opttab_unsigned(v, 1, (unsigned)OPTS_DAY, &o->command_timeout);
	case O_DATA_TIMEOUT: return opttab_unsigned(v, 1, (unsigned)OPTS_DAY, &o->data_timeout);
	case O_DEST_MAX_CONNECTIONS: return opttab_unsigned(v, 1, 100000, &o->dest_max_connections);
	case O_DEST_MAX_MESSAGES: return opttab_unsigned(v, 1, 10000000, &o->dest_max_messages_per_connection);
	case O_RETRY_SCHEDULE: return opts_set_retry(o, v);
	case O_MAX_QUEUE_LIFETIME: return opttab_unsigned(v, 1, (unsigned)(365 * OPTS_DAY), &o->max_queue_lifetime);
	case O_DRAIN_GRACE: return opttab_unsigned(v, 0, 3600, &o->drain_grace);
	case O_METRICS: return opts_set_optional_addr(&o->has_metrics, &o->metrics, v);
	}
	return "not settable";
}

/* opts_defaults - CONTRACT.md's defaults, through the setter; the system
 * host name and the online CPU count */
static void opts_defaults(struct ringmta_opts *o)
{
	struct opts_ctx c = { o, SRC_DEFAULT };
	char host[256] = "";
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	memset(o, 0, sizeof(*o));
	opttab_defaults(&opts_table, &c, opts_set);
	if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0')
		strcpy(host, "localhost");
	o->hostname = opts_strdup(host);
	o->threads = cpus < 1 ? 1 : cpus > 1024 ? 1024 : (unsigned)cpus;
}

/* opts_read_file - apply every setting of the config file at path */
static int opts_read_file(struct ringmta_opts *o, const char *path)
{
	struct opts_ctx c = { o, SRC_FILE };
	FILE *f = fopen(path, "rb");
	char *buf = NULL, where[600];
	size_t len = 0, cap = 0, got;
	struct config_parser cp;
	struct config_entry e;
	struct config_error err;
	int rc;

	if (!f)
		return opttab_fail(&opts_table, "", "config", strerror(errno), path);
	do {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			buf = opts_grow(buf, cap - 1, 1);
		}
		got = fread(buf + len, 1, cap - len, f);
		len += got;
	} while (got > 0 && len <= (1u << 20));
	rc = ferror(f);
	fclose(f);
	if (rc || len > (1u << 20)) {
		free(buf);
		return opttab_fail(&opts_table, "", "config", rc ? "read error" : "larger than 1 MiB", path);
	}
	config_init(&cp, buf, len);
	while ((rc = config_next(&cp, &e, &err)) == 1) {
		const struct opttab_def *d = opttab_find(&opts_table, e.key.ptr, e.key.len);
		char key[64], *value;
		const char *why;

		snprintf(where, sizeof where, "%s:%u: ", path, e.line);
		snprintf(key, sizeof key, "%.*s", (int)(e.key.len < 60 ? e.key.len : 60), e.key.ptr);
		if (!d || d->id == O_CONFIG || d->id == O_CHECK_CONFIG) {
			free(buf);
			return opttab_fail(&opts_table, where, key, "unknown key", NULL);
		}
		value = opts_grow(NULL, e.value.len, 1);
		memcpy(value, e.value.ptr, e.value.len);
		value[e.value.len] = '\0';
		why = opts_set(&c, d, value);
		if (why) {
			rc = opttab_fail(&opts_table, where, key, why, value);
			free(value);
			free(buf);
			return rc;
		}
		free(value);
	}
	free(buf);
	if (rc) {
		snprintf(where, sizeof where, "%s:%u: ", path, err.line);
		return opttab_fail(&opts_table, where, "", err.msg, NULL);
	}
	return 0;
}

/* opts_check - rules between settings */
static int opts_check(const struct ringmta_opts *o)
{
	if (!o->tls_cert != !o->tls_key)
		return opttab_fail(&opts_table, "", o->tls_cert ? "tls-key" : "tls-cert",
				   "--tls-cert and --tls-key go together", NULL);
	if (o->n_listen_tls && !o->tls_cert)
		return opttab_fail(&opts_table, "", "listen-tls", "needs --tls-cert and --tls-key", NULL);
	if (o->n_listen + o->n_listen_tls == 0)
		return opttab_fail(&opts_table, "", "listen", "no SMTP listener left", NULL);
	return 0;
}

/* opts_parse - defaults, then the config file, then argv */
int opts_parse(struct ringmta_opts *o, int argc, char **argv)
{
	struct opttab_arg *args = opts_grow(NULL, (size_t)argc, sizeof(*args));
	char **pos = opts_grow(NULL, (size_t)argc, sizeof(*pos));
	struct opts_ctx c = { o, SRC_ARGV };
	size_t n_args, n_pos;
	int rc;

	opts_defaults(o);
	rc = opttab_scan(&opts_table, argc, argv, args, &n_args, pos, &n_pos);
	if (!rc && n_pos)
		rc = opttab_fail(&opts_table, "", "", "unexpected argument", pos[0]);
	for (size_t i = 0; !rc && i < n_args; i++) {
		const char *why;

		if (args[i].def->id == O_CONFIG && (why = opts_set_str(&o->config, args[i].value)))
			rc = opttab_fail(&opts_table, "", "config", why, args[i].value);
	}
	if (!rc && o->config)
		rc = opts_read_file(o, o->config);
	if (!rc)
		rc = opttab_apply(&opts_table, args, n_args, &c, opts_set);
	if (!rc)
		rc = opts_check(o);
	free(args);
	free(pos);
	if (rc)
		opts_free(o);
	return rc;
}

/* opts_route_text - DOMAIN=HOST:PORT into out[cap] */
static const char *opts_route_text(const struct opt_route *r, char *out, size_t cap)
{
	size_t n = strlen(r->domain);

	if (n + 2 > cap)
		return "";
	memcpy(out, r->domain, n);
	out[n] = '=';
	opttab_hostport_text(&r->hop, out + n + 1, cap - n - 1);
	return out;
}

/* opts_line - one "key = value" line */
static void opts_line(FILE *out, const char *key, const char *value)
{
	fprintf(out, "%s = %s\n", key, value ? value : "none");
}

/* opts_print - every setting as "key = value" lines, in table order */
void opts_print(const struct ringmta_opts *o, FILE *out)
{
	char tmp[600];

	if (o->config)
		fprintf(out, "# config file: %s\n", o->config);
	for (size_t i = 0; i < opts_table.n_defs; i++) {
		const char *k = opts_defs[i].name;
		size_t n = 0;

#define OPTS_NUM(v) (snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)(v)), tmp)
#define OPTS_EACH(count, text)                          \
	for (n = 0; n < (count); n++)                   \
		opts_line(out, k, (text));              \
	if ((count) == 0)                               \
		opts_line(out, k, NULL);
		switch ((enum opts_id)opts_defs[i].id) {
		case O_CONFIG: break;
		case O_CHECK_CONFIG: break;
		case O_LISTEN: OPTS_EACH(o->n_listen, o->listen[n].text) break;
		case O_LISTEN_TLS: OPTS_EACH(o->n_listen_tls, o->listen_tls[n].text) break;
		case O_RELAY_NET: OPTS_EACH(o->n_relay_net, o->relay_net[n].text) break;
		case O_PROXY_TRUSTED: OPTS_EACH(o->n_proxy_trusted, o->proxy_trusted[n].text) break;
		case O_RELAY_DOMAIN: OPTS_EACH(o->n_relay_domain, o->relay_domain[n]) break;
		case O_ROUTE: OPTS_EACH(o->n_route, opts_route_text(&o->route[n], tmp, sizeof tmp)) break;
		case O_HOSTNAME: opts_line(out, k, o->hostname); break;
		case O_THREADS: opts_line(out, k, OPTS_NUM(o->threads)); break;
		case O_SPOOL: opts_line(out, k, o->spool); break;
		case O_SMARTHOST:
			if (o->has_smarthost)
				opttab_hostport_text(&o->smarthost, tmp, sizeof tmp);
			opts_line(out, k, o->has_smarthost ? tmp : NULL);
			break;
		case O_DNS: opts_line(out, k, o->has_dns ? o->dns.text : NULL); break;
		case O_METRICS: opts_line(out, k, o->has_metrics ? o->metrics.text : NULL); break;
		case O_MX_PORT: opts_line(out, k, OPTS_NUM(o->mx_port)); break;
		case O_AUTH_FILE: opts_line(out, k, o->auth_file); break;
		case O_TLS_CERT: opts_line(out, k, o->tls_cert); break;
		case O_TLS_KEY: opts_line(out, k, o->tls_key); break;
		case O_OUTBOUND_CA: opts_line(out, k, o->outbound_ca); break;
		case O_RELAY_RECIPIENTS: opts_line(out, k, o->relay_recipients); break;
		case O_USER: opts_line(out, k, o->user); break;
		case O_OUTBOUND_TLS: opts_line(out, k, opts_tls_names[o->outbound_tls]); break;
		case O_LOG_FORMAT: opts_line(out, k, opts_log_names[o->log_format]); break;
		case O_PROXY_PROTOCOL: opts_line(out, k, o->proxy_protocol ? "yes" : "no"); break;
		case O_MAX_MESSAGE_SIZE: opts_line(out, k, OPTS_NUM(o->max_message_size)); break;
		case O_MIN_FREE_SPACE: opts_line(out, k, OPTS_NUM(o->min_free_space)); break;
		case O_MAX_RECIPIENTS: opts_line(out, k, OPTS_NUM(o->max_recipients)); break;
		case O_MAX_CONNECTIONS: opts_line(out, k, OPTS_NUM(o->max_connections)); break;
		case O_MAX_CONNECTIONS_PER_IP: opts_line(out, k, OPTS_NUM(o->max_connections_per_ip)); break;
		case O_MAX_ERRORS: opts_line(out, k, OPTS_NUM(o->max_errors)); break;
		case O_COMMAND_TIMEOUT: opts_line(out, k, OPTS_NUM(o->command_timeout)); break;
		case O_DATA_TIMEOUT: opts_line(out, k, OPTS_NUM(o->data_timeout)); break;
		case O_DEST_MAX_CONNECTIONS: opts_line(out, k, OPTS_NUM(o->dest_max_connections)); break;
		case O_DEST_MAX_MESSAGES: opts_line(out, k, OPTS_NUM(o->dest_max_messages_per_connection)); break;
		case O_MAX_QUEUE_LIFETIME: opts_line(out, k, OPTS_NUM(o->max_queue_lifetime)); break;
		case O_DRAIN_GRACE: opts_line(out, k, OPTS_NUM(o->drain_grace)); break;
		case O_RETRY_SCHEDULE:
			fprintf(out, "%s = ", k);
			for (n = 0; n < o->n_retry_schedule; n++)
				fprintf(out, "%s%u", n ? "," : "", o->retry_schedule[n]);
			fputc('\n', out);
			break;
		}
#undef OPTS_NUM
#undef OPTS_EACH
	}
}

/* opts_free - release what opts_parse allocated; the struct is zeroed */
void opts_free(struct ringmta_opts *o)
{
	for (size_t i = 0; i < o->n_relay_domain; i++)
		free(o->relay_domain[i]);
	free(o->config);
	free(o->listen);
	free(o->listen_tls);
	free(o->hostname);
	free(o->spool);
	free(o->route);
	free(o->relay_net);
	free(o->relay_domain);
	free(o->auth_file);
	free(o->tls_cert);
	free(o->tls_key);
	free(o->outbound_ca);
	free(o->proxy_trusted);
	free(o->retry_schedule);
	free(o->relay_recipients);
	free(o->user);
	memset(o, 0, sizeof(*o));
}
