/* test_evlog.c - event lines: one write per line, or per batch of whole
 * lines of at most PIPE_BUF bytes between evlog_batch_begin and _end;
 * warnings and errors at once.
 *
 * stderr is pointed at a pipe; each read(2) of the pipe returns what one
 * write put there (the reader drains it between writes).
 */
#define _GNU_SOURCE
#include "tests/unit/harness.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "net/evlog.h"

struct cap {
	int rd, saved;
};

/* cap_start - stderr into a non-blocking pipe */
static void cap_start(struct cap *c)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
	c->saved = dup(STDERR_FILENO);
	assert_true(dup2(p[1], STDERR_FILENO) >= 0);
	close(p[1]);
	c->rd = p[0];
}

/* cap_stop - stderr back */
static void cap_stop(struct cap *c)
{
	dup2(c->saved, STDERR_FILENO);
	close(c->saved);
	close(c->rd);
}

/* cap_read - what is in the pipe now (0: nothing) */
static size_t cap_read(struct cap *c, char *b, size_t cap)
{
	ssize_t n = read(c->rd, b, cap);
	return n > 0 ? (size_t)n : 0;
}

/* lines - the number of '\n' in b[0..n), and that b ends with one */
static size_t lines(const char *b, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += b[i] == '\n';
	assert_true(n == 0 || b[n - 1] == '\n');
	return k;
}

/* test_unbatched - a line goes out at once */
static void test_unbatched(void **st)
{
	(void)st;
	struct cap c;
	char b[8192];

	evlog_init(false);
	cap_start(&c);
	evlog_msg("info", "test", "one line");
	size_t n = cap_read(&c, b, sizeof b);
	assert_int_equal(lines(b, n), 1);
	assert_non_null(memmem(b, n, "event=test msg=one_line\n", 24));
	evlog_batch_end(); /* harmless without a batch */
	assert_int_equal(cap_read(&c, b, sizeof b), 0);
	cap_stop(&c);
}

/* test_batched - lines wait for the end of the batch, then go out whole;
 * a batch over PIPE_BUF goes out in several writes of whole lines */
static void test_batched(void **st)
{
	(void)st;
	struct cap c;
	char b[8192];

	evlog_init(true);
	cap_start(&c);
	evlog_batch_begin();
	evlog_delivery("Q1", "a@x.test", "hop", "delivered", 5, "250 ok", 0);
	evlog_delivery("Q2", "b@x.test", "hop", "bounced", 6, "550 \"no\"", 0);
	evlog_received("Q3", "127.0.0.1", "<s@y.test>", 2, 100);
	assert_int_equal(cap_read(&c, b, sizeof b), 0);
	evlog_batch_end();
	size_t n = cap_read(&c, b, sizeof b);
	assert_int_equal(lines(b, n), 3);
	assert_non_null(memmem(b, n, "\"reply\":\"550 \\\"no\\\"\"}\n", 22));
	assert_int_equal(cap_read(&c, b, sizeof b), 0);

	/* A warning is not held, nor is what waits before it. */
	evlog_batch_begin();
	evlog_msg("info", "test", "first");
	evlog_msg("warn", "test", "second");
	n = cap_read(&c, b, sizeof b);
	assert_int_equal(lines(b, n), 2);
	const char *f = memmem(b, n, "first", 5), *w = memmem(b, n, "second", 6);
	assert_true(f != NULL && w != NULL && f < w);
	evlog_batch_end();

	/* After the end, lines go out one by one again. */
	evlog_msg("info", "test", "after");
	n = cap_read(&c, b, sizeof b);
	assert_int_equal(lines(b, n), 1);

	/* 60 lines of about 200 bytes: writes of whole lines, none over
	 * PIPE_BUF, the early ones while the batch is still open. */
	char reply[160];
	memset(reply, 'r', sizeof reply - 1);
	reply[sizeof reply - 1] = '\0';
	size_t total = 0, writes = 0;
	evlog_batch_begin();
	for (int i = 0; i < 60; i++) {
		evlog_delivery("Q4", "c@x.test", "hop", "delivered", (uint64_t)i, reply, 0);
		while ((n = cap_read(&c, b, sizeof b)) > 0) {
			assert_true(n <= PIPE_BUF);
			total += lines(b, n);
			writes++;
		}
	}
	assert_true(writes > 0 && total < 60);
	evlog_batch_end();
	n = cap_read(&c, b, sizeof b);
	assert_true(n > 0 && n <= PIPE_BUF);
	total += lines(b, n);
	assert_int_equal(total, 60);
	cap_stop(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unbatched),
		cmocka_unit_test(test_batched),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
