/* opttab.c - flag tables: scanning argv, usage, diagnostics and strict
 * value parsers, shared by the four programs (interface in opttab.h).
 *
 * Invariant: every error is exactly one line on stderr, naming the flag
 * or key and, when there is one, the offending value. Main thread, start-up
 * only; no state between calls.
 */
#include "tools/opttab.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "core/ipaddr.h"
#include "core/slice.h"

/* opttab_find - the flag called name[0..len), or NULL */
const struct opttab_def *opttab_find(const struct opttab *t, const char *name, size_t len)
{
	for (size_t i = 0; i < t->n_defs; i++)
		if (strlen(t->defs[i].name) == len && memcmp(t->defs[i].name, name, len) == 0)
			return &t->defs[i];
	return NULL;
}

/* opttab_usage - the usage text: synopsis, every flag with its default */
void opttab_usage(const struct opttab *t, FILE *out)
{
	fprintf(out, "Usage: %s %s\n\nOptions:\n", t->prog, t->synopsis);
	for (size_t i = 0; i < t->n_defs; i++) {
		const struct opttab_def *d = &t->defs[i];
		char head[80];

		snprintf(head, sizeof head, "%c%c%s--%s%s%s", d->short_name ? '-' : ' ',
			 d->short_name ? d->short_name : ' ', d->short_name ? ", " : "  ", d->name,
			 d->metavar ? " " : "", d->metavar ? d->metavar : "");
		fprintf(out, "  %-36s %s", head, d->help);
		if (d->deflt)
			fprintf(out, " (default: %s)", d->deflt);
		fputc('\n', out);
	}
	fprintf(out, "  %-36s %s\n  %-36s %s\n", "    --help", "print this help and exit",
		"    --version", "print the version and exit");
	if (t->epilog)
		fprintf(out, "\n%s", t->epilog);
}

/* opttab_put_quoted - end a diagnostic with ": 'VALUE'" (if any) and a
 * newline; control bytes become '?' so it stays one line */
static void opttab_put_quoted(const char *value)
{
	if (value) {
		fputs(": '", stderr);
		for (const char *p = value; *p; p++)
			fputc((unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p, stderr);
		fputc('\'', stderr);
	}
	fputc('\n', stderr);
}

/* opttab_fail - print one diagnostic line and return 2 */
int opttab_fail(const struct opttab *t, const char *where, const char *name, const char *why,
		const char *value)
{
	fprintf(stderr, "%s: %s%s%s%s%s", t->prog, where, *where || !*name ? "" : "--", name, *name ? ": " : "",
		why);
	opttab_put_quoted(value);
	return 2;
}

/* opttab_scan - split argv into flags and positional arguments */
int opttab_scan(const struct opttab *t, int argc, char **argv, struct opttab_arg *args, size_t *n_args,
		char **pos, size_t *n_pos)
{
	bool only_pos = false;

	*n_args = *n_pos = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *eq = NULL, *name;
		const struct opttab_def *d = NULL;
		size_t len;

		if (only_pos || a[0] != '-' || a[1] == '\0') {
			pos[(*n_pos)++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_pos = true;
			continue;
		}
		if (a[1] == '-') {
			name = a + 2;
			eq = strchr(name, '=');
			len = eq ? (size_t)(eq - name) : strlen(name);
			if (!eq && strcmp(name, "help") == 0) {
				opttab_usage(t, stdout);
				return 1;
			}
			if (!eq && strcmp(name, "version") == 0) {
				printf("%s %s\n", t->prog, RINGMTA_VERSION);
				return 1;
			}
			d = len ? opttab_find(t, name, len) : NULL;
		} else {
			for (size_t k = 0; k < t->n_defs && !d; k++)
				if (t->defs[k].short_name == a[1])
					d = &t->defs[k];
			if (d && a[2]) /* -cFILE */
				eq = a + 1;
			if (d && a[2] && !d->metavar)
				d = NULL;
		}
		if (!d) {
			fprintf(stderr, "%s: unknown flag", t->prog);
			opttab_put_quoted(a);
			return 2;
		}
		args[*n_args].def = d;
		if (d->metavar && !eq) {
			if (i + 1 >= argc)
				return opttab_fail(t, "", d->name, "missing value", NULL);
			args[*n_args].value = argv[++i];
		} else {
			args[*n_args].value = eq ? eq + 1 : NULL;
		}
		(*n_args)++;
	}
	return 0;
}

/* opttab_apply - apply args in order through set; the first reason fails */
int opttab_apply(const struct opttab *t, const struct opttab_arg *args, size_t n, void *ctx, opttab_setter set)
{
	for (size_t i = 0; i < n; i++) {
		const char *why = set(ctx, args[i].def, args[i].value);
		if (why)
			return opttab_fail(t, "", args[i].def->name, why, args[i].value);
	}
	return 0;
}

/* opttab_defaults - every flag's default through set */
void opttab_defaults(const struct opttab *t, void *ctx, opttab_setter set)
{
	for (size_t i = 0; i < t->n_defs; i++) {
		const struct opttab_def *d = &t->defs[i];

		if (!d->deflt || (d->flags & OPTTAB_DESCRIBED_DEFAULT))
			continue;
		for (const char *p = d->deflt; p;) {
			const char *sep = strstr(p, ", ");
			char item[128];
			size_t len = sep ? (size_t)(sep - p) : strlen(p);

			if (len >= sizeof item)
				abort();
			memcpy(item, p, len);
			item[len] = '\0';
			if (set(ctx, d, item)) /* a broken table: every test would see it */
				abort();
			p = sep ? sep + 2 : NULL;
		}
	}
}

/* opttab_parse - defaults, then argv through set */
int opttab_parse(const struct opttab *t, int argc, char **argv, void *ctx, opttab_setter set, char **pos,
		 size_t *n_pos)
{
	struct opttab_arg *args = calloc((size_t)argc + 1, sizeof(*args));
	char **own = pos ? NULL : calloc((size_t)argc + 1, sizeof(*own));
	size_t n_args, n_own;
	int rc;

	if (!args || (!pos && !own)) {
		free(args);
		fprintf(stderr, "%s: out of memory\n", t->prog);
		return 2;
	}
	opttab_defaults(t, ctx, set);
	rc = opttab_scan(t, argc, argv, args, &n_args, pos ? pos : own, pos ? n_pos : &n_own);
	if (!rc && !pos && n_own)
		rc = opttab_fail(t, "", "", "unexpected argument", own[0]);
	if (!rc)
		rc = opttab_apply(t, args, n_args, ctx, set);
	free(args);
	free(own);
	return rc;
}

/* opttab_uint - a plain decimal in [min, max] */
const char *opttab_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;

	if (!s || !slice_to_u64(slice_cstr(s), ~0ull, &v))
		return "not a plain decimal number";
	if (v < min || v > max)
		return "out of range";
	*out = v;
	return NULL;
}

/* opttab_unsigned - opttab_uint into an unsigned */
const char *opttab_unsigned(const char *s, unsigned min, unsigned max, unsigned *out)
{
	uint64_t v;
	const char *why = opttab_uint(s, min, max, &v);

	if (!why)
		*out = (unsigned)v;
	return why;
}

/* opttab_bool - yes/no, on/off, true/false, 1/0; a bare switch is yes */
const char *opttab_bool(const char *s, bool *out)
{
	static const char *yes[] = { "yes", "on", "true", "1" }, *no[] = { "no", "off", "false", "0" };

	if (!s) {
		*out = true;
		return NULL;
	}
	for (size_t i = 0; i < 4; i++) {
		if (strcmp(s, yes[i]) == 0 || strcmp(s, no[i]) == 0) {
			*out = strcmp(s, yes[i]) == 0;
			return NULL;
		}
	}
	return "expected yes or no";
}

/* opttab_split_port - split "HOST:PORT" / "[V6]:PORT"; host without brackets */
static const char *opttab_split_port(const char *s, struct slice *host, bool *bracketed, uint16_t *port)
{
	const char *colon = strrchr(s, ':');
	unsigned long long v;

	if (!colon)
		return "missing :PORT";
	*host = slice_make(s, (size_t)(colon - s));
	*bracketed = host->len >= 2 && host->ptr[0] == '[' && host->ptr[host->len - 1] == ']';
	if (*bracketed)
		*host = slice_sub(*host, 1, host->len - 2);
	else if (memchr(host->ptr, ':', host->len))
		return "IPv6 addresses go in brackets, as [::1]:25";
	if (host->len == 0)
		return "missing host";
	if (colon[1] == '0' || !slice_to_u64(slice_cstr(colon + 1), 65535, &v) || v == 0)
		return "bad port (1-65535)";
	*port = (uint16_t)v;
	return NULL;
}

/* opttab_addr - ADDR:PORT with a literal address */
const char *opttab_addr(const char *s, struct opt_addr *out)
{
	struct slice host;
	bool br;
	uint16_t port;
	const char *why = opttab_split_port(s, &host, &br, &port);
	char text[IPADDR_TEXT_MAX];

	if (why)
		return why;
	memset(out, 0, sizeof(*out));
	if (br) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->sa;
		if (!ipaddr_parse6(host, sin6->sin6_addr.s6_addr))
			return "bad IPv6 address";
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		out->salen = sizeof(*sin6);
		ipaddr_format(sin6->sin6_addr.s6_addr, 16, text);
		snprintf(out->text, sizeof out->text, "[%s]:%u", text, port);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&out->sa;
		if (!ipaddr_parse4(host, (uint8_t *)&sin->sin_addr.s_addr))
			return "bad IPv4 address";
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		out->salen = sizeof(*sin);
		ipaddr_format((const uint8_t *)&sin->sin_addr.s_addr, 4, text);
		snprintf(out->text, sizeof out->text, "%s:%u", text, port);
	}
	return NULL;
}

/* opttab_domain - a DNS name in LDH labels, lower-cased into out */
const char *opttab_domain(const char *s, size_t len, char *out, size_t cap)
{
	size_t label = 0;

	if (len == 0 || len > 253 || len >= cap)
		return "bad domain name length";
	for (size_t i = 0; i < len; i++) {
		char ch = ascii_lower(s[i]);

		if (ch == '.') {
			if (label == 0 || s[i - 1] == '-')
				return "bad domain name";
			label = 0;
		} else if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || (ch == '-' && label > 0) ||
			   ch == '_') {
			if (++label > 63)
				return "domain label longer than 63";
		} else {
			return "bad domain name";
		}
		out[i] = ch;
	}
	if (label == 0 || s[len - 1] == '-')
		return "bad domain name";
	out[len] = '\0';
	return NULL;
}

/* opttab_hostport - HOST:PORT, HOST a DNS name or an address literal */
const char *opttab_hostport(const char *s, struct opt_hostport *out)
{
	struct slice host;
	bool br;
	uint8_t a[16];
	const char *why = opttab_split_port(s, &host, &br, &out->port);

	if (why)
		return why;
	if (br) {
		if (!ipaddr_parse6(host, a))
			return "bad IPv6 address";
		ipaddr_format(a, 16, out->host);
		return NULL;
	}
	if (ipaddr_parse4(host, a)) {
		ipaddr_format(a, 4, out->host);
		return NULL;
	}
	return opttab_domain(host.ptr, host.len, out->host, sizeof out->host);
}

/* opttab_hostport_text - HOST:PORT back as text, brackets around IPv6 */
void opttab_hostport_text(const struct opt_hostport *hp, char *out, size_t cap)
{
	bool v6 = strchr(hp->host, ':') != NULL;

	snprintf(out, cap, "%s%s%s:%u", v6 ? "[" : "", hp->host, v6 ? "]" : "", hp->port);
}

/* opttab_cidr - ADDR/PREFIX, host bits refused */
const char *opttab_cidr(const char *s, struct opt_cidr *out)
{
	const char *slash = strchr(s, '/');
	struct slice addr = slice_make(s, slash ? (size_t)(slash - s) : strlen(s));
	unsigned long long prefix;
	char text[IPADDR_TEXT_MAX];
	size_t alen;

	memset(out, 0, sizeof(*out));
	if (ipaddr_parse4(addr, out->addr)) {
		out->family = AF_INET;
		alen = 4;
	} else if (ipaddr_parse6(addr, out->addr)) {
		out->family = AF_INET6;
		alen = 16;
	} else {
		return "expected ADDRESS/PREFIX";
	}
	prefix = alen * 8;
	if (slash && ((slash[1] == '0' && slash[2]) || !slice_to_u64(slice_cstr(slash + 1), alen * 8, &prefix)))
		return "bad prefix length";
	out->prefix = (unsigned)prefix;
	for (size_t bit = prefix; bit < alen * 8; bit++)
		if (out->addr[bit / 8] & (0x80 >> (bit % 8)))
			return "host bits set after the prefix";
	ipaddr_format(out->addr, alen, text);
	snprintf(out->text, sizeof out->text, "%s/%u", text, out->prefix);
	return NULL;
}

/* opttab_nonempty - a non-empty string */
const char *opttab_nonempty(const char *s)
{
	return s && *s ? NULL : "empty value";
}
