/* blast_opts.c - ringmta-blast's flags. Main thread, start-up only. */
#include "tools/blast_opts.h"

#include <string.h>

enum { B_TARGET, B_CONNECTIONS, B_MESSAGES, B_SIZE, B_RCPTS, B_FROM, B_TO, B_STARTTLS, B_BDAT, B_DURATION,
       B_RATE, B_THREADS, B_JSON };

static const struct opttab_def blast_defs[] = {
	{ "target", 0, "HOST:PORT", NULL, "SMTP server to load (required)", B_TARGET, 0 },
	{ "connections", 0, "C", "10", "concurrent SMTP sessions", B_CONNECTIONS, 0 },
	{ "messages", 0, "N", "1000", "messages to send in all", B_MESSAGES, 0 },
	{ "size", 0, "BYTES", "1024", "whole message size, headers included", B_SIZE, 0 },
	{ "rcpts", 0, "R", "1", "recipients per message", B_RCPTS, 0 },
	{ "from", 0, "ADDR", "blast@blast.test", "envelope sender; {n} is a running number", B_FROM, 0 },
	{ "to", 0, "ADDR", "rcpt{n}@sink.test", "recipient; {n} is a running number", B_TO, 0 },
	{ "starttls", 0, NULL, "no", "STARTTLS on every session (required; the certificate is not verified)",
	  B_STARTTLS, 0 },
	{ "bdat", 0, NULL, "no", "send bodies with BDAT (CHUNKING) instead of DATA", B_BDAT, 0 },
	{ "duration", 0, "S", "0", "run this many seconds; 0: until --messages are sent", B_DURATION, 0 },
	{ "rate", 0, "MSGS_PER_S", "0", "messages per second; 0: as fast as possible", B_RATE, 0 },
	{ "threads", 0, "N", "1", "client threads (one io_uring each)", B_THREADS, 0 },
	{ "json", 0, NULL, "no", "print the summary as one JSON object", B_JSON, 0 },
};

static const struct opttab blast_table = {
	.prog = "ringmta-blast",
	.synopsis = "--target HOST:PORT [OPTIONS]",
	.defs = blast_defs,
	.n_defs = sizeof(blast_defs) / sizeof(blast_defs[0]),
	.epilog = "Against a server that offers PIPELINING, each session keeps two messages\n"
		  "in flight (the next envelope follows the end of data; RFC 2920), except\n"
		  "with --rate or --bdat.\n"
		  "Exit 0 when every message got a 2xx reply, 1 otherwise.\n",
};

/* blast_mailbox - a plausible envelope address: local@domain, printable,
 * no spaces or angle brackets */
static const char *blast_mailbox(const char *v)
{
	const char *at = strrchr(v, '@');

	if (!at || at == v || !at[1] || strlen(v) > 254)
		return "expected local@domain";
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == '<' || *p == '>' || *p == 0x7f)
			return "expected local@domain";
	return NULL;
}

/* blast_set - one flag */
static const char *blast_set(void *ctx, const struct opttab_def *d, const char *v)
{
	struct blast_opts *o = ctx;
	const char *why;

	switch (d->id) {
	case B_TARGET: return opttab_hostport(v, &o->target);
	case B_CONNECTIONS: return opttab_unsigned(v, 1, 1000000, &o->connections);
	case B_MESSAGES: return opttab_uint(v, 1, 1ull << 40, &o->messages);
	case B_SIZE: return opttab_uint(v, 1, 1ull << 32, &o->size);
	case B_RCPTS: return opttab_unsigned(v, 1, 100000, &o->rcpts);
	case B_FROM:
	case B_TO:
		if ((why = blast_mailbox(v)))
			return why;
		/* A default arrives in a scratch buffer: keep the table's constant. */
		if (d->deflt && strcmp(v, d->deflt) == 0)
			v = d->deflt;
		*(d->id == B_FROM ? &o->from : &o->to) = v;
		return NULL;
	case B_STARTTLS: return opttab_bool(v, &o->starttls);
	case B_BDAT: return opttab_bool(v, &o->bdat);
	case B_DURATION: return opttab_unsigned(v, 0, 7 * 86400, &o->duration);
	case B_RATE: return opttab_unsigned(v, 0, 100000000, &o->rate);
	case B_THREADS: return opttab_unsigned(v, 1, 1024, &o->threads);
	case B_JSON: return opttab_bool(v, &o->json);
	}
	return "not settable";
}

/* blast_opts_parse - defaults, then argv */
int blast_opts_parse(struct blast_opts *o, int argc, char **argv)
{
	int rc;

	memset(o, 0, sizeof(*o));
	rc = opttab_parse(&blast_table, argc, argv, o, blast_set, NULL, NULL);
	if (!rc && o->target.port == 0)
		rc = opttab_fail(&blast_table, "", "target", "required", NULL);
	return rc;
}
