/* policy.c - relay rule, recipient table, free-space check.
 *
 * Tables are sorted arrays searched with bsearch: built at start-up, read by
 * every shard without locks afterwards. free_bytes is the one value that
 * changes: written by the thread that calls policy_refresh_space, read by
 * the shards, both with relaxed atomics (a second-old value is fine).
 */
#include "net/policy.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

/* policy_init - an empty policy (denies relaying to everyone) */
void policy_init(struct policy *p)
{
	memset(p, 0, sizeof *p);
	p->free_bytes = UINT64_MAX;
}

/* grow - make room for one more element of an array */
static int grow(void **arr, size_t n, size_t elem)
{
	void *np = realloc(*arr, (n + 1) * elem);
	if (np == NULL)
		return RM_ENOMEM;
	*arr = np;
	return RM_OK;
}

/* policy_add_net - one more relay network */
int policy_add_net(struct policy *p, const struct policy_cidr *c)
{
	if (grow((void **)&p->nets, p->nnets, sizeof *p->nets) != RM_OK)
		return RM_ENOMEM;
	p->nets[p->nnets++] = *c;
	return RM_OK;
}

/* lower_dup - a lower-case copy of s[0..n) */
static char *lower_dup(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		d[i] = ascii_lower(s[i]);
	d[n] = '\0';
	return d;
}

/* add_str - append a lower-case copy of s[0..n) to a string table */
static int add_str(char ***tab, size_t *n, const char *s, size_t len)
{
	if (grow((void **)tab, *n, sizeof **tab) != RM_OK)
		return RM_ENOMEM;
	char *d = lower_dup(s, len);
	if (d == NULL)
		return RM_ENOMEM;
	(*tab)[(*n)++] = d;
	return RM_OK;
}

/* policy_add_domain - one more relay domain */
int policy_add_domain(struct policy *p, const char *domain)
{
	return add_str(&p->domains, &p->ndomains, domain, strlen(domain));
}

/* policy_load_rcpts - read a --relay-recipients file */
int policy_load_rcpts(struct policy *p, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char line[1024];

	if (f == NULL) {
		snprintf(err, errlen, "--relay-recipients %s: %s", path, strerror(errno));
		return RM_EIO;
	}
	p->has_rcpts = true;
	while (fgets(line, sizeof line, f) != NULL) {
		struct slice s = slice_trim(slice_cstr(line));
		while (s.len > 0 && (s.ptr[s.len - 1] == '\n' || s.ptr[s.len - 1] == '\r'))
			s.len--;
		s = slice_trim(s);
		if (s.len == 0 || s.ptr[0] == '#' || memchr(s.ptr, '@', s.len) == NULL)
			continue;
		if (add_str(&p->rcpts, &p->nrcpts, s.ptr, s.len) != RM_OK) {
			fclose(f);
			snprintf(err, errlen, "--relay-recipients %s: out of memory", path);
			return RM_ENOMEM;
		}
	}
	fclose(f);
	return RM_OK;
}

/* cmp_str - qsort/bsearch order of string table entries */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* policy_done - sort the tables; call once after building */
void policy_done(struct policy *p)
{
	if (p->ndomains)
		qsort(p->domains, p->ndomains, sizeof *p->domains, cmp_str);
	if (p->nrcpts)
		qsort(p->rcpts, p->nrcpts, sizeof *p->rcpts, cmp_str);
}

/* policy_free - release everything */
void policy_free(struct policy *p)
{
	for (size_t i = 0; i < p->ndomains; i++)
		free(p->domains[i]);
	for (size_t i = 0; i < p->nrcpts; i++)
		free(p->rcpts[i]);
	free(p->domains);
	free(p->rcpts);
	free(p->nets);
	policy_init(p);
}

/* prefix_match - the first bits of a and b agree */
static bool prefix_match(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned whole = bits / 8, rest = bits % 8;

	if (memcmp(a, b, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff00u >> rest);
	return (a[whole] & mask) == (b[whole] & mask);
}

/* policy_client_relays - sa is inside a relay network */
bool policy_client_relays(const struct policy *p, const struct sockaddr *sa)
{
	uint8_t a[16];
	int family = sa->sa_family;

	if (family == AF_INET) {
		memcpy(a, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
	} else if (family == AF_INET6) {
		const uint8_t *v6 = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
		static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		if (memcmp(v6, mapped, 12) == 0) { /* ::ffff:a.b.c.d counts as IPv4 */
			family = AF_INET;
			memcpy(a, v6 + 12, 4);
		} else {
			memcpy(a, v6, 16);
		}
	} else {
		return false;
	}
	for (size_t i = 0; i < p->nnets; i++) {
		const struct policy_cidr *c = &p->nets[i];
		if (c->family == family && prefix_match(a, c->addr, c->prefix))
			return true;
	}
	return false;
}

/* table_has - s[0..n) (lower-cased) is in the sorted table */
static bool table_has(char *const *tab, size_t ntab, const char *s, size_t n)
{
	char key[SMTP_PATH_MAX + 2];
	const char *kp = key;

	if (ntab == 0 || n >= sizeof key)
		return false;
	for (size_t i = 0; i < n; i++)
		key[i] = ascii_lower(s[i]);
	key[n] = '\0';
	return bsearch(&kp, tab, ntab, sizeof *tab, cmp_str) != NULL;
}

/* policy_rcpt - the verdict for one recipient (code 0 accepts) */
void policy_rcpt(const struct policy *p, bool client_relays, bool authed, const struct smtp_path *to,
		 struct smtp_verdict *v)
{
	if (!to->literal && table_has(p->domains, p->ndomains, to->domain.ptr, to->domain.len)) {
		if (!p->has_rcpts)
			return;
		char at[SMTP_DOMAIN_MAX + 2];
		if (table_has(p->rcpts, p->nrcpts, to->mailbox.ptr, to->mailbox.len))
			return;
		if (to->domain.len < sizeof at - 1) {
			at[0] = '@';
			memcpy(at + 1, to->domain.ptr, to->domain.len);
			if (table_has(p->rcpts, p->nrcpts, at, to->domain.len + 1))
				return;
		}
		/* Rejected while talking, never bounced later: no backscatter. */
		*v = (struct smtp_verdict){ 550, "5.1.1", "Recipient address rejected: User unknown" };
		return;
	}
	if (client_relays || authed)
		return;
	*v = (struct smtp_verdict){ 554, "5.7.1", "Relay access denied" };
}

/* policy_mail - the verdict for MAIL (free space) */
void policy_mail(const struct policy *p, struct smtp_verdict *v)
{
	if (__atomic_load_n(&p->free_bytes, __ATOMIC_RELAXED) < p->min_free)
		*v = (struct smtp_verdict){ 452, "4.3.1", "Insufficient system storage" };
}

/* policy_refresh_space - statvfs(dir) into free_bytes */
void policy_refresh_space(struct policy *p, const char *dir)
{
	struct statvfs st;

	if (statvfs(dir, &st) != 0)
		return;
	uint64_t bytes = (uint64_t)st.f_bavail * (uint64_t)st.f_frsize;
	__atomic_store_n(&p->free_bytes, bytes, __ATOMIC_RELAXED);
}
