/* test_outbound_dsn.c - a delivery round's outcomes into a queued report:
 * Status from the reply, who is told (null sender, NOTIFY), the original
 * read back from a real spool whole or as headers, the report's envelope. */
#include "tests/unit/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/outbound_dsn.h"
#include "queue/spool.h"

/* What the fake store's inject saw. */
struct cap {
	int calls;
	char *body;
	size_t len;
	char sender[64], rcpt[64];
	uint32_t nrcpt;
};

/* cap_inject - the store's injection, recorded */
static int cap_inject(void *ctx, const struct slice *v, size_t n, const struct spool_env *env, char *id)
{
	struct cap *c = ctx;
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += v[i].len;
	c->body = realloc(c->body, len + 1);
	c->len = 0;
	for (size_t i = 0; i < n; i++) {
		memcpy(c->body + c->len, v[i].ptr, v[i].len);
		c->len += v[i].len;
	}
	c->body[c->len] = '\0';
	snprintf(c->sender, sizeof c->sender, "%.*s", (int)env->sender.len, env->sender.ptr);
	snprintf(c->rcpt, sizeof c->rcpt, "%.*s", (int)env->rcpt[0].addr.len, env->rcpt[0].addr.ptr);
	c->nrcpt = env->nrcpt;
	c->calls++;
	if (id != NULL)
		snprintf(id, MSGID_LEN + 1, "%016d", c->calls);
	return RM_OK;
}

static void drain_none(void *ctx)
{
	(void)ctx;
}

struct fx {
	char dir[64];
	struct spool_posix px;
	struct spool *sp;
	struct arena a;
	struct spool_env env;
	struct spool_rcpt rc[2];
	char id[MSGID_LEN + 1];
	struct cap cap;
	struct store_spool_ref ref;
};

/* fx_open - a spool holding one message with body and two recipients */
static void fx_open(struct fx *f, const char *sender, const char *body, size_t blen, unsigned notify,
		    uint8_t ret)
{
	memset(f, 0, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/rm-dsn-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(spool_posix_open(&f->px, f->dir), 0);
	struct spool_cfg cfg = { .io = &f->px.io, .shard = 0 };
	assert_int_equal(spool_open(&f->sp, &cfg, NULL), 0);
	struct spool_tx *tx = spool_tx_begin(f->sp, f);
	assert_non_null(tx);
	snprintf(f->id, sizeof f->id, "%s", spool_tx_id(f->sp, tx, 1700000000000000ull));
	for (size_t off = 0; off < blen; off += 1u << 20) {
		struct slice s = slice_make(body + off, blen - off < (1u << 20) ? blen - off : 1u << 20);
		assert_int_equal(spool_tx_append(f->sp, tx, &s, 1), 0);
		spool_run(f->sp);
	}
	f->rc[0] = (struct spool_rcpt){ .addr = slice_cstr("bad@dst.test"), .notify = notify };
	f->rc[1] = (struct spool_rcpt){ .addr = slice_cstr("ok@dst.test"), .notify = notify };
	struct spool_env e = {
		.arrival_us = 1700000000000000ull, .sender = slice_cstr(sender), .ret = ret,
		.received = slice_cstr("Received: from x by relay.test; now\r\n"), .rcpt = f->rc, .nrcpt = 2,
	};
	assert_int_equal(spool_tx_commit(f->sp, tx, &e), 0);
	spool_flush(f->sp);
	spool_run(f->sp);
	struct spool_done d;
	assert_true(spool_done_next(f->sp, &d));
	assert_int_equal(d.status, 0);
	arena_init(&f->a, &rm_alloc_libc, 1 << 12, 1 << 24);
	assert_int_equal(spool_msg_load(f->sp, slice_cstr(f->id), &f->a, &f->env), 0);
	f->ref = (struct store_spool_ref){ f->sp, drain_none, NULL, cap_inject, &f->cap };
}

/* fx_close - remove everything */
static void fx_close(struct fx *f)
{
	char cmd[128];
	arena_free(&f->a);
	f->sp = spool_close(f->sp);
	spool_posix_close(&f->px);
	free(f->cap.body);
	snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
}

static struct outbound_dsn_item item(uint32_t r, enum bounce_action act, const char *diag)
{
	struct outbound_dsn_item it = { .rcpt = r, .action = act };
	snprintf(it.diag, sizeof it.diag, "%s", diag);
	snprintf(it.remote, sizeof it.remote, "127.0.0.1:25");
	outbound_dsn_status(act, it.diag, it.status);
	return it;
}

static const char BODY[] = "Subject: hello\r\nFrom: a@src.test\r\n\r\nbody line\r\n";

static void test_status_from_reply(void **state)
{
	(void)state;
	static const struct {
		enum bounce_action act;
		const char *reply, *want;
	} t[] = {
		{ BOUNCE_FAILED, "550 5.1.1 no such user", "5.1.1" },
		{ BOUNCE_FAILED, "554 5.7.1", "5.7.1" },
		{ BOUNCE_FAILED, "550 no enhanced code", "5.0.0" },
		{ BOUNCE_FAILED, "550 5.1 short", "5.0.0" },
		{ BOUNCE_FAILED, "550 5.1.1x glued", "5.0.0" },
		{ BOUNCE_FAILED, "550 2.1.1 wrong class", "5.0.0" },
		{ BOUNCE_FAILED, "", "5.0.0" },
		{ BOUNCE_RELAYED, "250 2.0.0 Ok", "2.0.0" },
		{ BOUNCE_RELAYED, "250 Ok", "2.0.0" },
		{ BOUNCE_FAILED, "556 5.1.10 null MX", "5.1.10" },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		char out[BOUNCE_STATUS_LEN];
		outbound_dsn_status(t[i].act, t[i].reply, out);
		assert_string_equal(out, t[i].want);
	}
	char out[BOUNCE_STATUS_LEN];
	outbound_dsn_status(BOUNCE_FAILED, NULL, out);
	assert_string_equal(out, "5.0.0");
}

static void test_failure_report_queued(void **state)
{
	(void)state;
	struct fx f;
	int q = -1;
	fx_open(&f, "a@src.test", BODY, sizeof BODY - 1, 0, 0);
	struct outbound_dsn_item it = item(0, BOUNCE_FAILED, "550 5.1.1 no such user");
	char report[MSGID_LEN + 1] = "";
	assert_int_equal(outbound_dsn_send(&f.ref, "relay.test", &f.env, f.id, &it, 1, &q, report), 0);
	assert_int_equal(q, 1);
	assert_int_equal(f.cap.calls, 1);
	assert_string_equal(report, "0000000000000001"); /* the store's queue ID of it */
	assert_string_equal(f.cap.sender, "");
	assert_string_equal(f.cap.rcpt, "a@src.test");
	assert_int_equal(f.cap.nrcpt, 1);
	assert_non_null(strstr(f.cap.body, "report-type=delivery-status"));
	assert_non_null(strstr(f.cap.body, "Final-Recipient: rfc822; bad@dst.test"));
	assert_null(strstr(f.cap.body, "ok@dst.test"));
	assert_non_null(strstr(f.cap.body, "Status: 5.1.1"));
	assert_non_null(strstr(f.cap.body, "550 5.1.1 no such user"));
	assert_non_null(strstr(f.cap.body, "message/rfc822"));
	assert_non_null(strstr(f.cap.body, "Received: from x by relay.test"));
	assert_non_null(strstr(f.cap.body, "body line"));
	fx_close(&f);
}

static void test_nobody_told(void **state)
{
	(void)state;
	struct fx f;
	int q = -1;
	struct outbound_dsn_item it;

	fx_open(&f, "", BODY, sizeof BODY - 1, 0, 0); /* null sender */
	it = item(0, BOUNCE_FAILED, "550 5.1.1 no");
	assert_int_equal(outbound_dsn_send(&f.ref, "relay.test", &f.env, f.id, &it, 1, &q, NULL), 0);
	assert_int_equal(q, 0);
	assert_int_equal(f.cap.calls, 0);
	fx_close(&f);

	fx_open(&f, "a@src.test", BODY, sizeof BODY - 1, SMTP_NOTIFY_NEVER, 0);
	assert_int_equal(outbound_dsn_send(&f.ref, "relay.test", &f.env, f.id, &it, 1, &q, NULL), 0);
	assert_int_equal(q, 0);
	assert_int_equal(f.cap.calls, 0);
	/* relayed without NOTIFY=SUCCESS: nobody asked */
	it = item(1, BOUNCE_RELAYED, "250 2.0.0 Ok");
	assert_int_equal(outbound_dsn_send(&f.ref, "relay.test", &f.env, f.id, &it, 1, &q, NULL), 0);
	assert_int_equal(q, 0);
	fx_close(&f);

	fx_open(&f, "a@src.test", BODY, sizeof BODY - 1, SMTP_NOTIFY_SUCCESS, 0);
	assert_int_equal(outbound_dsn_send(&f.ref, "relay.test", &f.env, f.id, &it, 1, &q, NULL), 0);
	assert_int_equal(q, 1);
	assert_non_null(strstr(f.cap.body, "Action: relayed"));
	fx_close(&f);
}

static void test_headers_only(void **state)
{
	(void)state;
	struct fx f;
	int q = -1;
	struct outbound_dsn_item it = item(0, BOUNCE_FAILED, "550 5.1.1 no");

	fx_open(&f, "a@src.test", BODY, sizeof BODY - 1, 0, SMTP_RET_HDRS);
	assert_int_equal(outbound_dsn_send(&f.ref, "relay.test", &f.env, f.id, &it, 1, &q, NULL), 0);
	assert_non_null(strstr(f.cap.body, "text/rfc822-headers"));
	assert_null(strstr(f.cap.body, "body line"));
	fx_close(&f);

	/* larger than the full limit: headers only, and only the head is read */
	size_t big = 3u << 20;
	char *b = malloc(big);
	assert_non_null(b);
	memset(b, 'x', big);
	memcpy(b, BODY, sizeof BODY - 1);
	for (size_t i = sizeof BODY; i + 2 < big; i += 100)
		memcpy(b + i, "\r\n", 2);
	fx_open(&f, "a@src.test", b, big, 0, 0);
	assert_int_equal(outbound_dsn_send(&f.ref, "relay.test", &f.env, f.id, &it, 1, &q, NULL), 0);
	assert_int_equal(q, 1);
	assert_non_null(strstr(f.cap.body, "text/rfc822-headers"));
	assert_non_null(strstr(f.cap.body, "Subject: hello"));
	assert_true(f.cap.len < 20000);
	fx_close(&f);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_from_reply),
		cmocka_unit_test(test_failure_report_queued),
		cmocka_unit_test(test_nobody_told),
		cmocka_unit_test(test_headers_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
