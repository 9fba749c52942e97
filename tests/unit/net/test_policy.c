/* test_policy.c - the relay rule, the recipient table and free space. */
#include "tests/unit/harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "net/policy.h"

/* path - a parsed recipient path for local@domain */
static struct smtp_path path(const char *mailbox)
{
	struct smtp_path p = { 0 };
	const char *at = strchr(mailbox, '@');
	p.mailbox = slice_cstr(mailbox);
	p.local = slice_make(mailbox, (size_t)(at - mailbox));
	p.domain = slice_cstr(at + 1);
	p.literal = at[1] == '[';
	return p;
}

static unsigned verdict(const struct policy *p, bool relays, bool authed, const char *rcpt)
{
	struct smtp_verdict v = { 0, NULL, NULL };
	struct smtp_path to = path(rcpt);
	policy_rcpt(p, relays, authed, &to, &v);
	return v.code;
}

static void test_relay_rule(void **st)
{
	(void)st;
	struct policy p;
	policy_init(&p);
	assert_int_equal(policy_add_domain(&p, "Local.TEST"), 0);
	policy_done(&p);
	assert_int_equal(verdict(&p, false, false, "u@elsewhere.test"), 554);
	assert_int_equal(verdict(&p, true, false, "u@elsewhere.test"), 0);
	assert_int_equal(verdict(&p, false, true, "u@elsewhere.test"), 0);
	assert_int_equal(verdict(&p, false, false, "u@LOCAL.test"), 0);
	assert_int_equal(verdict(&p, false, false, "u@[127.0.0.1]"), 554);
	policy_free(&p);
}

static void test_relay_recipients(void **st)
{
	(void)st;
	char name[] = "/tmp/rcptsXXXXXX";
	int fd = mkstemp(name);
	assert_true(fd >= 0);
	const char text[] = "# comment\nKnown@local.test\n@open.test\n\n";
	assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
	close(fd);
	struct policy p;
	char err[128];
	policy_init(&p);
	assert_int_equal(policy_add_domain(&p, "local.test"), 0);
	assert_int_equal(policy_add_domain(&p, "open.test"), 0);
	assert_int_equal(policy_load_rcpts(&p, name, err, sizeof err), 0);
	policy_done(&p);
	unlink(name);
	assert_int_equal(verdict(&p, false, false, "known@local.test"), 0);
	assert_int_equal(verdict(&p, false, false, "other@local.test"), 550);
	/* 550 from every client, relay network included: no backscatter. */
	assert_int_equal(verdict(&p, true, false, "other@local.test"), 550);
	assert_int_equal(verdict(&p, false, false, "anyone@open.test"), 0);
	assert_int_equal(policy_load_rcpts(&p, "/nonexistent/x", err, sizeof err), RM_EIO);
	policy_free(&p);
}

static void test_client_nets(void **st)
{
	(void)st;
	struct policy p;
	struct policy_cidr c4 = { .family = AF_INET, .addr = { 10, 1, 0, 0 }, .prefix = 15 };
	struct policy_cidr c6 = { .family = AF_INET6, .prefix = 128 };
	c6.addr[15] = 1; /* ::1 */
	policy_init(&p);
	assert_int_equal(policy_add_net(&p, &c4), 0);
	assert_int_equal(policy_add_net(&p, &c6), 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	inet_pton(AF_INET, "10.0.255.255", &a.sin_addr);
	assert_true(policy_client_relays(&p, (struct sockaddr *)&a));
	inet_pton(AF_INET, "10.2.0.0", &a.sin_addr);
	assert_false(policy_client_relays(&p, (struct sockaddr *)&a));
	struct sockaddr_in6 b = { .sin6_family = AF_INET6 };
	inet_pton(AF_INET6, "::1", &b.sin6_addr);
	assert_true(policy_client_relays(&p, (struct sockaddr *)&b));
	inet_pton(AF_INET6, "::ffff:10.1.2.3", &b.sin6_addr); /* mapped IPv4 */
	assert_true(policy_client_relays(&p, (struct sockaddr *)&b));
	inet_pton(AF_INET6, "::2", &b.sin6_addr);
	assert_false(policy_client_relays(&p, (struct sockaddr *)&b));
	policy_free(&p);
}

static void test_free_space(void **st)
{
	(void)st;
	struct policy p;
	struct smtp_verdict v = { 0, NULL, NULL };
	policy_init(&p);
	p.min_free = 1000;
	p.free_bytes = 999;
	policy_mail(&p, &v);
	assert_int_equal(v.code, 452);
	v.code = 0;
	p.free_bytes = 1000;
	policy_mail(&p, &v);
	assert_int_equal(v.code, 0);
	policy_refresh_space(&p, "/");
	assert_true(p.free_bytes != 1000);
	policy_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_relay_rule),
		cmocka_unit_test(test_relay_recipients),
		cmocka_unit_test(test_client_nets),
		cmocka_unit_test(test_free_space),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
