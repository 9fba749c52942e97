/* test_config.c - the "key = value" configuration file walker. */
#include "tests/unit/harness.h"

#include <stdio.h>
#include <string.h>

#include "core/config.h"

/* walk - parse in (guarded), render entries as "line:key=value;" into out;
 * returns the final rc (0 at the end, RM_EPROTO) with *err filled */
static int walk(const char *in, size_t n, char *out, size_t cap, struct config_error *err)
{
	struct guarded g = guard_copy(in, n);
	struct config_parser c;
	struct config_entry e;
	size_t len = 0;
	int rc;

	out[0] = '\0';
	config_init(&c, g.ptr, g.len);
	while ((rc = config_next(&c, &e, err)) == 1) {
		assert_true(e.key.ptr >= g.ptr && e.key.ptr + e.key.len <= g.ptr + g.len);
		assert_true(e.value.ptr >= g.ptr && e.value.ptr + e.value.len <= g.ptr + g.len);
		len += (size_t)snprintf(out + len, cap - len, "%u:%.*s=%.*s;", e.line, (int)e.key.len, e.key.ptr,
					(int)e.value.len, e.value.ptr);
		assert_true(len < cap);
	}
	guard_free(&g);
	return rc;
}

#define WALK_OK(in, want)                                                                   \
	do {                                                                                \
		char out_[1024];                                                            \
		struct config_error err_ = { 0, NULL };                                     \
		assert_int_equal(walk(in, sizeof(in) - 1, out_, sizeof(out_), &err_), 0); \
		assert_string_equal(out_, want);                                            \
	} while (0)

#define WALK_BAD(in, want_line, want_msg)                                                           \
	do {                                                                                        \
		char out_[1024];                                                                    \
		struct config_error err_ = { 0, NULL };                                             \
		assert_int_equal(walk(in, sizeof(in) - 1, out_, sizeof(out_), &err_), RM_EPROTO); \
		assert_int_equal(err_.line, want_line);                                             \
		assert_string_equal(err_.msg, want_msg);                                            \
	} while (0)

static void test_config_good(void **st)
{
	(void)st;
	WALK_OK("", "");
	WALK_OK("\n\n  \t\n", "");
	WALK_OK("listen = 127.0.0.1:2525\n", "1:listen=127.0.0.1:2525;");
	WALK_OK("listen=[::1]:2525", "1:listen=[::1]:2525;"); /* no final LF */
	WALK_OK("# a comment\n  # indented comment\nthreads = 4 # trailing\n",
		"3:threads=4;");
	WALK_OK("relay-net = 10.0.0.0/8\r\nrelay-net = ::1/128\r\n",
		"1:relay-net=10.0.0.0/8;2:relay-net=::1/128;");
	WALK_OK("\tspool\t=\t/var/spool/ringmta\t\n", "1:spool=/var/spool/ringmta;");
	WALK_OK("a = b=c\n", "1:a=b=c;");                   /* the first '=' splits */
	WALK_OK("a = x#y\n", "1:a=x#y;");                   /* '#' inside a value */
	WALK_OK("a =#y\n", "1:a=#y;");
	WALK_OK("spool = /srv/sp\xc3\xa4l\n", "1:spool=/srv/sp\xc3\xa4l;"); /* UTF-8 */
	WALK_OK("max-message-size = 1024\n\n\nk2 = v2\n", "1:max-message-size=1024;4:k2=v2;");
}

static void test_config_bad(void **st)
{
	(void)st;
	WALK_BAD("listen 127.0.0.1:2525\n", 1, "expected key = value");
	WALK_BAD("a = 1\n\nb\n", 3, "expected key = value");
	WALK_BAD("= value\n", 1, "bad key");
	WALK_BAD("Listen = x\n", 1, "bad key");
	WALK_BAD("--listen = x\n", 1, "bad key");
	WALK_BAD("1st = x\n", 1, "bad key");
	WALK_BAD("max message size = 1\n", 1, "bad key");
	WALK_BAD("max_message_size = 1\n", 1, "bad key");
	WALK_BAD("a =\n", 1, "missing value");
	WALK_BAD("a = # nothing\n", 1, "missing value");
	WALK_BAD("a = x\0y\n", 1, "control character");
	WALK_BAD("a = x\ry\n", 1, "control character");
	WALK_BAD("ok = 1\na = x\x7f\n", 2, "control character");
	WALK_BAD("a = x\r\r\n", 1, "control character");
}

static void test_config_limits(void **st)
{
	(void)st;
	static char in[CONFIG_LINE_MAX + 64];
	char out[CONFIG_LINE_MAX + 512];
	struct config_error err;
	size_t n;

	/* a line of exactly CONFIG_LINE_MAX bytes passes, one more does not */
	n = (size_t)snprintf(in, sizeof in, "k = ");
	memset(in + n, 'v', CONFIG_LINE_MAX - n);
	in[CONFIG_LINE_MAX] = '\r';
	in[CONFIG_LINE_MAX + 1] = '\n';
	assert_int_equal(walk(in, CONFIG_LINE_MAX + 2, out, sizeof out, &err), 0);
	in[CONFIG_LINE_MAX] = 'v';
	in[CONFIG_LINE_MAX + 1] = '\n';
	assert_int_equal(walk(in, CONFIG_LINE_MAX + 2, out, sizeof out, &err), RM_EPROTO);
	assert_string_equal(err.msg, "line too long");

	/* after an error, it stays failed */
	struct config_parser c;
	struct config_entry e;
	config_init(&c, "x\ny = 1\n", 8);
	assert_int_equal(config_next(&c, &e, &err), RM_EPROTO);
	assert_int_equal(config_next(&c, &e, &err), RM_EPROTO);
}

/* random bytes from a small alphabet never crash or read past the buffer,
 * and every entry respects the rules */
static void test_config_random(void **st)
{
	(void)st;
	static const char alphabet[] = "ab-=# \t\r\n\0#1";
	uint64_t seed = 7;
	char in[64];

	for (int iter = 0; iter < 20000; iter++) {
		size_t n = test_rand(&seed) % sizeof in;
		struct guarded g;
		struct config_parser c;
		struct config_entry e;
		struct config_error err;
		int rc;

		for (size_t i = 0; i < n; i++)
			in[i] = alphabet[test_rand(&seed) % (sizeof alphabet - 1)];
		g = guard_copy(in, n);
		config_init(&c, g.ptr, g.len);
		while ((rc = config_next(&c, &e, &err)) == 1) {
			assert_true(e.key.len > 0 && e.value.len > 0);
			assert_true(e.key.ptr[0] >= 'a' && e.key.ptr[0] <= 'z');
			assert_null(memchr(e.value.ptr, '\n', e.value.len));
			assert_true(e.value.ptr[e.value.len - 1] != ' ');
		}
		assert_true(rc == 0 || rc == RM_EPROTO);
		if (rc)
			assert_true(err.line >= 1 && err.msg != NULL);
		guard_free(&g);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_good),
		cmocka_unit_test(test_config_bad),
		cmocka_unit_test(test_config_limits),
		cmocka_unit_test(test_config_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
