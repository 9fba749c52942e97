/* test_dns.c - the pure parts of the resolver: MX ordering, null MX, the
 * bounds of a result, address de-duplication and the final verdict. */
#include "tests/unit/harness.h"

#include <ares.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/dns.h"

/* mx_list - an ares_mx_reply chain from parallel arrays */
static struct ares_mx_reply *mx_list(struct ares_mx_reply *m, const char *const *names,
				     const unsigned short *prefs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		m[i].host = (char *)(uintptr_t)names[i];
		m[i].priority = prefs[i];
		m[i].next = i + 1 < n ? &m[i + 1] : NULL;
	}
	return n ? m : NULL;
}

static void test_order_sorts_and_shuffles_equal_preferences(void **st)
{
	(void)st;
	uint64_t rng = 42;
	unsigned first_b = 0;

	for (int round = 0; round < 200; round++) {
		struct dns_mx m[] = { { "c", 30 }, { "b", 10 }, { "x", 20 }, { "a", 10 },
				      { "y", 20 }, { "z", 20 }, { "d", 40 } };
		dns_mx_order(m, 7, &rng);
		for (size_t i = 1; i < 7; i++)
			assert_true(m[i - 1].pref <= m[i].pref);
		assert_string_equal(m[5].name, "c");
		assert_string_equal(m[6].name, "d");
		/* the equal ones are a permutation of their set */
		assert_true((strcmp(m[0].name, "a") == 0 && strcmp(m[1].name, "b") == 0) ||
			    (strcmp(m[0].name, "b") == 0 && strcmp(m[1].name, "a") == 0));
		first_b += strcmp(m[0].name, "b") == 0;
	}
	/* both orders come up, roughly evenly */
	assert_true(first_b > 60 && first_b < 140);
	/* a single record and none are fine */
	struct dns_mx one = { "only", 5 };
	dns_mx_order(&one, 1, &rng);
	dns_mx_order(NULL, 0, &rng);
	assert_string_equal(one.name, "only");
}

static void test_build_keeps_most_preferred_and_drops_duplicates(void **st)
{
	(void)st;
	static struct dns_result r;
	struct ares_mx_reply m[40];
	const char *names[40];
	unsigned short prefs[40];
	char buf[40][32];
	uint64_t rng = 7;

	for (int i = 0; i < 40; i++) {
		snprintf(buf[i], sizeof buf[i], "mx%02d.example.", i);
		names[i] = buf[i];
		prefs[i] = (unsigned short)(100 - i); /* the last ones are preferred */
	}
	names[39] = "MX38.example"; /* a duplicate of mx38 in another case */
	dns_mx_build(&r, mx_list(m, names, prefs, 40), &rng);
	assert_int_equal(r.status, DNS_OK);
	assert_int_equal(r.nhost, DNS_HOSTS_MAX);
	assert_string_equal(r.host[0].name, "MX38.example");
	assert_int_equal(r.host[0].pref, 61);
	assert_string_equal(r.host[1].name, "mx37.example"); /* trailing dot gone */
	for (unsigned i = 1; i < r.nhost; i++) {
		assert_true(r.host[i - 1].pref <= r.host[i].pref);
		assert_int_equal(r.host[i].naddr, 0);
	}
	assert_int_equal(r.host[DNS_HOSTS_MAX - 1].pref, 61 + DNS_HOSTS_MAX);
}

static void test_build_null_mx_and_bad_names(void **st)
{
	(void)st;
	static struct dns_result r;
	struct ares_mx_reply m[3];
	uint64_t rng = 1;
	const char *null_names[] = { "" };
	const unsigned short zero[] = { 0, 0, 0 };

	dns_mx_build(&r, mx_list(m, null_names, zero, 1), &rng);
	assert_int_equal(r.status, DNS_PERM);
	assert_int_equal(r.code, 556);
	assert_string_equal(r.enh, "5.1.10");
	assert_int_equal(r.nhost, 0);

	/* "." among others still means null MX */
	const char *mixed[] = { "mx.example", "." };
	dns_mx_build(&r, mx_list(m, mixed, zero, 2), &rng);
	assert_int_equal(r.status, DNS_PERM);
	assert_string_equal(r.enh, "5.1.10");

	/* a name longer than DNS_NAME_MAX is dropped, not truncated */
	char longname[DNS_NAME_MAX + 8];
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	const char *lng[] = { longname, "ok.example" };
	dns_mx_build(&r, mx_list(m, lng, zero, 2), &rng);
	assert_int_equal(r.status, DNS_OK);
	assert_int_equal(r.nhost, 1);
	assert_string_equal(r.host[0].name, "ok.example");
}

static void test_host_add_bounds_and_duplicates(void **st)
{
	(void)st;
	struct dns_host h;
	uint8_t a4[4] = { 192, 0, 2, 0 };
	uint8_t a6[16] = { 0x20, 0x01, 0x0d, 0xb8 };

	memset(&h, 0, sizeof h);
	for (int i = 0; i < DNS_FAMILY_ADDRS_MAX; i++) {
		a4[3] = (uint8_t)i;
		assert_int_equal(dns_host_add(&h, AF_INET, a4), RM_OK);
		assert_int_equal(dns_host_add(&h, AF_INET, a4), RM_OK); /* duplicate */
	}
	assert_int_equal(h.naddr, DNS_FAMILY_ADDRS_MAX);
	a4[3] = 200;
	assert_int_equal(dns_host_add(&h, AF_INET, a4), RM_ELIMIT);
	/* IPv6 has its own share */
	for (int i = 0; i < DNS_FAMILY_ADDRS_MAX; i++) {
		a6[15] = (uint8_t)i;
		assert_int_equal(dns_host_add(&h, AF_INET6, a6), RM_OK);
	}
	assert_int_equal(dns_host_add(&h, AF_INET6, a6), RM_OK); /* a duplicate */
	a6[15] = 99;
	assert_int_equal(dns_host_add(&h, AF_INET6, a6), RM_ELIMIT);
	assert_int_equal(h.naddr, DNS_HOST_ADDRS_MAX);
	assert_int_equal(dns_host_add(&h, 12345, a6), RM_EINVAL);
}

static void test_finish_orders_addresses_and_drops_empty_hosts(void **st)
{
	(void)st;
	static struct dns_result r;
	uint8_t a4[4] = { 192, 0, 2, 1 };
	uint8_t a6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };

	memset(&r, 0, sizeof r);
	r.nhost = 3;
	strcpy(r.host[0].name, "empty.example");
	r.host[0].temp = true;
	strcpy(r.host[1].name, "both.example");
	assert_int_equal(dns_host_add(&r.host[1], AF_INET6, a6), RM_OK);
	assert_int_equal(dns_host_add(&r.host[1], AF_INET, a4), RM_OK);
	strcpy(r.host[2].name, "v6.example");
	assert_int_equal(dns_host_add(&r.host[2], AF_INET6, a6), RM_OK);
	dns_result_finish(&r);
	assert_int_equal(r.status, DNS_OK);
	assert_int_equal(r.nhost, 2);
	assert_string_equal(r.host[0].name, "both.example");
	assert_int_equal(r.host[0].addr[0].family, AF_INET);
	assert_int_equal(r.host[0].addr[1].family, AF_INET6);
	assert_string_equal(r.host[1].name, "v6.example");

	/* nothing left: temporary if any host failed temporarily */
	memset(&r, 0, sizeof r);
	r.nhost = 2;
	r.host[1].temp = true;
	dns_result_finish(&r);
	assert_int_equal(r.status, DNS_TEMP);
	assert_int_equal(r.code, 451);
	assert_string_equal(r.enh, "4.4.3");
	/* ...else permanent */
	memset(&r, 0, sizeof r);
	r.nhost = 2;
	dns_result_finish(&r);
	assert_int_equal(r.status, DNS_PERM);
	assert_int_equal(r.code, 550);
	assert_string_equal(r.enh, "5.4.4");
	/* a failure stays as it was */
	dns_result_fail(&r, DNS_PERM, 556, "5.1.10", "null");
	dns_result_finish(&r);
	assert_int_equal(r.code, 556);
	assert_string_equal(dns_status_text(r.status), "perm");
}

static void test_user_data_carries_the_tag(void **st)
{
	(void)st;
	uint64_t ud = dns_user_data(0xdeadbeefu);
	assert_int_equal(ud >> 56, DNS_UD_OP);
	assert_int_equal((uint32_t)ud, 0xdeadbeefu);
}

/* msg_put - append n bytes to a message under construction */
static void msg_put(unsigned char *m, size_t *len, const void *p, size_t n)
{
	memcpy(m + *len, p, n);
	*len += n;
}

/* msg_rr - one answer record: name (a pointer to the question's name),
 * type, class IN, ttl, rdata */
static void msg_rr(unsigned char *m, size_t *len, unsigned type, uint32_t ttl, const void *rd, size_t rdlen)
{
	unsigned char h[12] = { 0xc0, 12, (unsigned char)(type >> 8), (unsigned char)type, 0, 1,
				(unsigned char)(ttl >> 24), (unsigned char)(ttl >> 16), (unsigned char)(ttl >> 8),
				(unsigned char)ttl, (unsigned char)(rdlen >> 8), (unsigned char)rdlen };
	msg_put(m, len, h, sizeof h);
	msg_put(m, len, rd, rdlen);
}

/* msg_answer - a response to "ex.test A" with an answer per ttls[i]: a
 * CNAME first when cname, then A records */
static size_t msg_answer(unsigned char *m, const uint32_t *ttls, unsigned n, bool cname)
{
	size_t len = 0;
	unsigned char hdr[12] = { 0x12, 0x34, 0x81, 0x80, 0, 1, 0, (unsigned char)n, 0, 0, 0, 0 };
	static const unsigned char q[] = { 2, 'e', 'x', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1 };
	static const unsigned char target[] = { 1, 'a', 0xc0, 12 };
	msg_put(m, &len, hdr, sizeof hdr);
	msg_put(m, &len, q, sizeof q);
	for (unsigned i = 0; i < n; i++) {
		unsigned char a[4] = { 192, 0, 2, (unsigned char)i };
		if (i == 0 && cname)
			msg_rr(m, &len, 5, ttls[i], target, sizeof target);
		else
			msg_rr(m, &len, 1, ttls[i], a, sizeof a);
	}
	return len;
}

static void test_answer_ttl_is_the_smallest(void **st)
{
	(void)st;
	unsigned char m[512];
	uint32_t ttl = 7;

	const uint32_t t1[] = { 300, 60, 3600 };
	size_t len = msg_answer(m, t1, 3, false);
	assert_true(dns_answer_ttl(m, (int)len, &ttl));
	assert_int_equal(ttl, 60);
	/* a CNAME in the chain counts like the others */
	const uint32_t t2[] = { 5, 60 };
	len = msg_answer(m, t2, 2, true);
	assert_true(dns_answer_ttl(m, (int)len, &ttl));
	assert_int_equal(ttl, 5);
	/* RFC 2181 §8: a TTL with the top bit set is zero */
	const uint32_t t3[] = { 0x80000000u, 90 };
	len = msg_answer(m, t3, 2, false);
	assert_true(dns_answer_ttl(m, (int)len, &ttl));
	assert_int_equal(ttl, 0);
	/* no answer: nothing to tell */
	ttl = 7;
	len = msg_answer(m, NULL, 0, false);
	assert_false(dns_answer_ttl(m, (int)len, &ttl));
	assert_int_equal(ttl, 7);
	assert_false(dns_answer_ttl(NULL, 0, &ttl));
}

/* Every cut of a message is refused, never read past; random bytes do not
 * crash the parser (run under the sanitizers in CI). */
static void test_answer_ttl_hostile_input(void **st)
{
	(void)st;
	unsigned char m[512], junk[64];
	const uint32_t t[] = { 300, 60, 3600 };
	size_t len = msg_answer(m, t, 3, true);
	uint32_t ttl;
	uint64_t rng = 7;

	for (size_t cut = 0; cut < len; cut++) {
		unsigned char *p = malloc(cut ? cut : 1);
		assert_non_null(p);
		memcpy(p, m, cut);
		assert_false(dns_answer_ttl(p, (int)cut, &ttl));
		free(p);
	}
	for (int round = 0; round < 20000; round++) {
		size_t n = 12 + (size_t)(round % 52);
		for (size_t i = 0; i < n; i++) {
			rng = rng * 6364136223846793005ull + 1442695040888963407ull;
			junk[i] = (unsigned char)(rng >> 56);
		}
		junk[6] = 0;
		junk[7] = (unsigned char)(round % 3); /* a few answers claimed */
		unsigned char *p = malloc(n);
		assert_non_null(p);
		memcpy(p, junk, n);
		(void)dns_answer_ttl(p, (int)n, &ttl);
		free(p);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_sorts_and_shuffles_equal_preferences),
		cmocka_unit_test(test_build_keeps_most_preferred_and_drops_duplicates),
		cmocka_unit_test(test_build_null_mx_and_bad_names),
		cmocka_unit_test(test_host_add_bounds_and_duplicates),
		cmocka_unit_test(test_finish_orders_addresses_and_drops_empty_hosts),
		cmocka_unit_test(test_user_data_carries_the_tag),
		cmocka_unit_test(test_answer_ttl_is_the_smallest),
		cmocka_unit_test(test_answer_ttl_hostile_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
