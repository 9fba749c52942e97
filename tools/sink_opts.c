/* sink_opts.c - ringmta-sink's flags. Main thread, start-up only. */
#include "tools/sink_opts.h"

#include <string.h>

enum { S_LISTEN, S_THREADS, S_DUMP, S_FAIL_RCPT, S_CHUNKING, S_TLS_CERT, S_TLS_KEY };

static const struct opttab_def sink_defs[] = {
	{ "listen", 0, "ADDR:PORT", "127.0.0.1:2526", "SMTP listener; IPv6 as [::1]:2526", S_LISTEN, 0 },
	{ "threads", 0, "N", "1", "server threads (one io_uring each)", S_THREADS, 0 },
	{ "dump", 0, "DIR", NULL, "write each message as DIR/<n>.eml with X-Sink-From:/X-Sink-To:", S_DUMP, 0 },
	{ "fail-rcpt", 0, "PATTERN=CODE", NULL, "answer CODE (4xx or 5xx) to matching recipients, repeatable",
	  S_FAIL_RCPT, 0 },
	{ "advertise-chunking", 0, "on|off", "on", "offer CHUNKING (BDAT) in the EHLO reply", S_CHUNKING, 0 },
	{ "tls-cert", 0, "FILE", NULL, "PEM certificate chain; enables STARTTLS (with --tls-key)", S_TLS_CERT, 0 },
	{ "tls-key", 0, "FILE", NULL, "PEM private key", S_TLS_KEY, 0 },
};

static const struct opttab sink_table = {
	.prog = "ringmta-sink",
	.synopsis = "[OPTIONS]",
	.defs = sink_defs,
	.n_defs = sizeof(sink_defs) / sizeof(sink_defs[0]),
	.epilog = "Accepts every message; prints a running count on SIGUSR1 and at exit.\n",
};

/* sink_fail_rcpt - PATTERN=CODE, split at the last '=' */
static const char *sink_fail_rcpt(struct sink_opts *o, const char *v)
{
	const char *eq = strrchr(v, '=');
	struct sink_fail_rcpt *f;
	uint64_t code;
	size_t n;

	if (o->n_fail_rcpt == SINK_FAIL_RCPT_MAX)
		return "too many patterns";
	if (!eq || eq == v)
		return "expected PATTERN=CODE";
	n = (size_t)(eq - v);
	if (n >= sizeof(f->_pattern))
		return "pattern too long";
	if (opttab_uint(eq + 1, 400, 599, &code))
		return "CODE must be a 4xx or 5xx reply code";
	f = &o->fail_rcpt[o->n_fail_rcpt++];
	memcpy(f->_pattern, v, n);
	f->_pattern[n] = '\0';
	f->pattern = f->_pattern;
	f->code = (unsigned)code;
	return NULL;
}

/* sink_set - one flag */
static const char *sink_set(void *ctx, const struct opttab_def *d, const char *v)
{
	struct sink_opts *o = ctx;
	const char *why;

	switch (d->id) {
	case S_LISTEN: return opttab_addr(v, &o->listen);
	case S_THREADS: return opttab_unsigned(v, 1, 1024, &o->threads);
	case S_DUMP: return (why = opttab_nonempty(v)) ? why : (o->dump = v, NULL);
	case S_FAIL_RCPT: return sink_fail_rcpt(o, v);
	case S_CHUNKING:
		if (!v || (strcmp(v, "on") && strcmp(v, "off")))
			return "expected on or off";
		o->advertise_chunking = strcmp(v, "on") == 0;
		return NULL;
	case S_TLS_CERT: return (why = opttab_nonempty(v)) ? why : (o->tls_cert = v, NULL);
	case S_TLS_KEY: return (why = opttab_nonempty(v)) ? why : (o->tls_key = v, NULL);
	}
	return "not settable";
}

/* sink_opts_parse - defaults, then argv */
int sink_opts_parse(struct sink_opts *o, int argc, char **argv)
{
	int rc;

	memset(o, 0, sizeof(*o));
	rc = opttab_parse(&sink_table, argc, argv, o, sink_set, NULL, NULL);
	if (!rc && !o->tls_cert != !o->tls_key)
		rc = opttab_fail(&sink_table, "", o->tls_cert ? "tls-key" : "tls-cert",
				 "--tls-cert and --tls-key go together", NULL);
	return rc;
}
