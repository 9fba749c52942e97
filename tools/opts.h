/* opts.h - ringmta's settings: every flag of CONTRACT.md, from the command
 * line and the config file (same names without the dashes).
 *
 * opts_parse fills a struct ringmta_opts from defaults, then the file named
 * by -c/--config, then the command line (a list flag given at all replaces
 * its default; a list on the command line replaces the file's list). Strings
 * and arrays are owned by the struct until opts_free.
 *
 * The value "none" unsets an optional setting (the contract's "none"
 * defaults: no smarthost, system resolver, system CA store, ...) and empties
 * a list (--relay-net none: no client may relay by address). Booleans are
 * written yes/no (on/off, true/false, 1/0 are accepted too); a bare
 * --proxy-protocol means yes. --check-config prints the settings in the
 * config-file format, so its output is itself a valid config file: lists one
 * line per item, unset settings and empty lists as "key = none", booleans as
 * yes/no, --retry-schedule as one comma-separated line.
 */
#ifndef RINGMTA_TOOLS_OPTS_H
#define RINGMTA_TOOLS_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "tools/opttab.h" /* struct opt_addr, opt_cidr, opt_hostport */

struct opt_route {
	char domain[256]; /* lower-case */
	struct opt_hostport hop;
};

enum opt_outbound_tls { OUTBOUND_TLS_NONE, OUTBOUND_TLS_OPPORTUNISTIC, OUTBOUND_TLS_REQUIRED, OUTBOUND_TLS_VERIFY };
enum opt_log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

#define OPT_LIST(type, name) \
	type *name;          \
	size_t n_##name

struct ringmta_opts {
	char *config;
	OPT_LIST(struct opt_addr, listen);
	OPT_LIST(struct opt_addr, listen_tls);
	char *hostname;
	unsigned threads;
	char *spool;
	bool has_smarthost;
	struct opt_hostport smarthost;
	OPT_LIST(struct opt_route, route);
	bool has_dns;
	struct opt_addr dns;
	uint16_t mx_port;
	OPT_LIST(struct opt_cidr, relay_net);
	OPT_LIST(char *, relay_domain); /* lower-case */
	char *auth_file;
	char *tls_cert;
	char *tls_key;
	enum opt_outbound_tls outbound_tls;
	char *outbound_ca;
	bool proxy_protocol;
	OPT_LIST(struct opt_cidr, proxy_trusted);
	uint64_t max_message_size;
	unsigned max_recipients;
	unsigned max_connections;
	unsigned max_connections_per_ip;
	unsigned max_errors;
	unsigned command_timeout; /* seconds */
	unsigned data_timeout;    /* seconds */
	unsigned dest_max_connections;
	unsigned dest_max_messages_per_connection;
	OPT_LIST(unsigned, retry_schedule); /* seconds */
	unsigned max_queue_lifetime;        /* seconds */
	char *relay_recipients;
	uint64_t min_free_space;
	char *user;
	unsigned drain_grace; /* seconds */
	bool has_metrics;
	struct opt_addr metrics;
	enum opt_log_format log_format;
	bool check_config;
	int _list_src[6]; /* where each list came from: default, file, argv */
};

/* opts_parse - defaults, then the config file, then argv. Returns 0, or 1
 * after --help/--version was printed (exit 0), or 2 after one line naming
 * the bad flag, key or value was printed on stderr (exit 2). */
int opts_parse(struct ringmta_opts *o, int argc, char **argv);

/* opts_print - every effective setting as "key = value" lines (a list: one
 * line per item), for --check-config */
void opts_print(const struct ringmta_opts *o, FILE *out);

/* opts_free - release what opts_parse allocated */
void opts_free(struct ringmta_opts *o);

/* ringmta_serve - run the daemon with these settings until it is told to
 * stop; returns the process exit code. Lives in tools/serve.c. */
int ringmta_serve(const struct ringmta_opts *o);

#endif
