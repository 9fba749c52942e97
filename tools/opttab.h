/* opttab.h - flag tables shared by the four programs: --help text built
 * from the table, argv scanning (--flag VALUE, --flag=VALUE, -x VALUE),
 * --help/--version, one-line diagnostics, and strict parsers for the value
 * types the flags take (ADDR:PORT, HOST:PORT, CIDR, numbers, switches).
 *
 * A program declares its flags once as a table; the table's names are also
 * the config-file keys (ringmta). Values are checked by the program's own
 * setter, which returns NULL or a short reason; the reason is printed as
 * "PROG: --flag: REASON: 'VALUE'" and the program exits 2 (CONTRACT.md).
 * Called from main's thread at start-up only.
 */
#ifndef RINGMTA_TOOLS_OPTTAB_H
#define RINGMTA_TOOLS_OPTTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

/* A parsed ADDR:PORT (IPv4, or IPv6 as [addr]:port). */
struct opt_addr {
	struct sockaddr_storage sa;
	socklen_t salen;
	char text[64]; /* as given, normalised: 127.0.0.1:2525 or [::1]:2525 */
};

/* A parsed CIDR (host bits are refused, so addr is the network). */
struct opt_cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned prefix;
	char text[64]; /* normalised: 10.0.0.0/8, 2001:db8::/32 */
};

/* HOST:PORT of a next hop (HOST a name or an address literal). An IPv6
 * literal is written [addr]:port and kept in host without the brackets. */
struct opt_hostport {
	char host[256]; /* a name in lower case, or an address literal */
	uint16_t port;
};

struct opttab_def {
	const char *name;    /* long name without dashes; the config-file key */
	char short_name;     /* 0: none */
	const char *metavar; /* NULL: a switch (on when given; --x=yes|no too) */
	const char *deflt;   /* shown by --help; NULL: no default */
	const char *help;
	int id;              /* the program's code for the setting */
	unsigned flags;      /* OPTTAB_* */
};

/* deflt is a description for --help (e.g. "online CPUs"), not a value */
#define OPTTAB_DESCRIBED_DEFAULT 1u

struct opttab {
	const char *prog;     /* "ringmta" */
	const char *synopsis; /* after the program name in the usage line */
	const struct opttab_def *defs;
	size_t n_defs;
	const char *epilog;   /* more --help text, or NULL */
};

/* One flag as given, in argv order. value is NULL for a bare switch. */
struct opttab_arg {
	const struct opttab_def *def;
	const char *value;
};

/* opttab_scan - split argv into flags (args, in order) and positional
 * arguments (pos); each array needs room for argc entries. Returns 0, 1
 * after --help or --version was printed on stdout, 2 after a line naming an
 * unknown flag or a missing value was printed on stderr. */
int opttab_scan(const struct opttab *t, int argc, char **argv, struct opttab_arg *args, size_t *n_args,
		char **pos, size_t *n_pos);

/* opttab_setter - apply one flag's value (NULL for a bare switch) to the
 * program's settings in ctx; NULL or a short reason */
typedef const char *(*opttab_setter)(void *ctx, const struct opttab_def *d, const char *value);

/* opttab_defaults - feed every flag's default (split at ", " for lists)
 * through set; a default the setter refuses is a bug, and aborts */
void opttab_defaults(const struct opttab *t, void *ctx, opttab_setter set);

/* opttab_parse - defaults, then argv through set; positional arguments go
 * to pos (room for argc entries), or are refused when pos is NULL. Returns 0, 1 after --help/--version, or
 * 2 after one diagnostic line */
int opttab_parse(const struct opttab *t, int argc, char **argv, void *ctx, opttab_setter set, char **pos,
		 size_t *n_pos);

/* opttab_find - the flag called name[0..len), or NULL */
const struct opttab_def *opttab_find(const struct opttab *t, const char *name, size_t len);

/* opttab_usage - the usage text: synopsis, every flag with its default */
void opttab_usage(const struct opttab *t, FILE *out);

/* opttab_fail - print "PROG: WHERE--NAME: WHY: 'VALUE'" (one line; WHERE
 * is "" or "FILE:LINE: ", and then the key is shown without dashes; NAME
 * "" leaves out the name; VALUE may be NULL) and return 2 */
int opttab_fail(const struct opttab *t, const char *where, const char *name, const char *why,
		const char *value);

/* opttab_apply - apply args in order through set; on the first
 * reason print it and return 2, else 0 */
int opttab_apply(const struct opttab *t, const struct opttab_arg *args, size_t n, void *ctx, opttab_setter set);

/* Value parsers: each returns NULL on success or a short reason. */

/* opttab_uint - a plain decimal in [min, max] */
const char *opttab_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* opttab_unsigned - opttab_uint into an unsigned (max must fit) */
const char *opttab_unsigned(const char *s, unsigned min, unsigned max, unsigned *out);

/* opttab_bool - yes/no, on/off, true/false, 1/0; NULL s (a bare switch) is yes */
const char *opttab_bool(const char *s, bool *out);

/* opttab_addr - ADDR:PORT with a literal address, port 1..65535 */
const char *opttab_addr(const char *s, struct opt_addr *out);

/* opttab_hostport - HOST:PORT, HOST a DNS name or an address literal */
const char *opttab_hostport(const char *s, struct opt_hostport *out);

/* opttab_hostport_text - HOST:PORT back as text, brackets around IPv6 */
void opttab_hostport_text(const struct opt_hostport *hp, char *out, size_t cap);

/* opttab_cidr - ADDR/PREFIX (a bare address is /32 or /128) */
const char *opttab_cidr(const char *s, struct opt_cidr *out);

/* opttab_domain - a DNS name (LDH labels of 1-63, at most 253 in all),
 * copied in lower case into out[cap] */
const char *opttab_domain(const char *s, size_t len, char *out, size_t cap);

/* opttab_nonempty - a non-empty string (paths, names) */
const char *opttab_nonempty(const char *s);

#endif
