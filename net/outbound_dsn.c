/* outbound_dsn.c - one message's delivery round into a DSN queued on the
 * spool (net/outbound_dsn.h).
 *
 * The rules of who is told live in queue/bounce.h (bounce_select): never
 * the null sender, so a report that cannot be delivered (itself from <>)
 * is never reported on again; NOTIFY=NEVER never; failures when NOTIFY has
 * FAILURE or was not given; relayed notices only under NOTIFY=SUCCESS.
 * The original goes in whole when it fits the builder's full limit (and
 * RET is not HDRS), else only its header section: we read at most one byte
 * past the limit from the spool, which is enough for the builder to choose.
 * The report's envelope: MAIL FROM:<>, one RCPT (the sender), NOTIFY
 * absent, no ENVID; its body is copied by the store (a report is small
 * and rare), so nothing here outlives the call.
 * Threads: the shard's; blocking reads of the spool (bounces are rare).
 */
#include "net/outbound_dsn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/arena.h"
#include "queue/spool.h"

/* outbound_dsn_status - the Status for act from a reply's enhanced code */
void outbound_dsn_status(enum bounce_action act, const char *reply, char out[BOUNCE_STATUS_LEN])
{
	unsigned enh[3] = { 0, 0, 0 };
	bool has = false;
	const char *p = reply ? strchr(reply, ' ') : NULL;

	if (p != NULL) {
		p++;
		unsigned k = 0;
		while (k < 3) {
			unsigned v = 0, nd = 0;
			while (*p >= '0' && *p <= '9' && nd < 4) {
				v = v * 10 + (unsigned)(*p++ - '0');
				nd++;
			}
			if (nd == 0 || (k < 2 && *p != '.'))
				break;
			enh[k++] = v;
			if (k < 3)
				p++;
		}
		has = k == 3 && (*p == ' ' || *p == '\0');
	}
	bounce_status(act, has, enh, out);
}

/* outbound_dsn_date - an RFC 5322 date of t (µs since the epoch) */
static void outbound_dsn_date(uint64_t us, char *out, size_t cap)
{
	time_t t = (time_t)(us / 1000000u);
	struct tm tm;
	gmtime_r(&t, &tm);
	if (strftime(out, cap, "%a, %d %b %Y %H:%M:%S +0000", &tm) == 0)
		out[0] = '\0';
}

/* outbound_dsn_send - report it[0..n) of env to its sender */
int outbound_dsn_send(const struct store_spool_ref *ref, const char *hostname, const struct spool_env *env,
		      const char *id, const struct outbound_dsn_item *it, size_t n, int *queued, char *report)
{
	struct bounce_rcpt *r = calloc(n ? n : 1, sizeof *r);
	bool *sel = calloc(n ? n : 1, sizeof *sel);
	char now_date[64], arr_date[64];
	struct timespec ts;
	int rc = RM_OK;

	*queued = 0;
	if (r == NULL || sel == NULL) {
		free(r);
		free(sel);
		return RM_ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		const struct spool_rcpt *sr = &env->rcpt[it[i].rcpt];
		r[i] = (struct bounce_rcpt){
			.addr = sr->addr, .orcpt = sr->orcpt, .notify = sr->notify, .action = it[i].action,
			.status = slice_cstr(it[i].status), .remote_mta = slice_cstr(it[i].remote),
			.diag = slice_cstr(it[i].diag),
		};
	}
	if (bounce_select(env->sender, r, n, sel) == 0 || ref->inject == NULL)
		goto out;
	/* only the selected recipients go in */
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (sel[i])
			r[k++] = r[i];

	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t now_us = (uint64_t)ts.tv_sec * 1000000ull + (uint64_t)ts.tv_nsec / 1000;
	outbound_dsn_date(now_us, now_date, sizeof now_date);
	outbound_dsn_date(env->arrival_us, arr_date, sizeof arr_date);
	for (size_t i = 0; i < k; i++)
		r[i].last_attempt = slice_cstr(now_date);

	uint64_t blen = spool_env_body_len(env);
	size_t want = blen > BOUNCE_FULL_LIMIT_DEFAULT ? BOUNCE_FULL_LIMIT_DEFAULT + 1 : (size_t)blen;
	char *body = malloc(want ? want : 1);
	struct arena a;
	arena_init(&a, &rm_alloc_libc, 1 << 14, 4u << 20);
	if (body == NULL) {
		rc = RM_ENOMEM;
		goto out_a;
	}
	if (want && (rc = spool_read(ref->sp, env, 0, body, want)) != RM_OK)
		goto out_a;
	struct slice orig[2] = { env->received, slice_make(body, want) };
	struct bounce_msg bm = {
		.hostname = slice_cstr(hostname),
		.sender = env->sender,
		.envid = env->envid,
		.ret = (enum smtp_ret)env->ret,
		.arrival_us = env->arrival_us,
		.arrival_date = slice_cstr(arr_date),
		.date = slice_cstr(now_date),
		.token = slice_cstr(id),
		.orig = orig,
		.norig = 2,
		.rcpt = r,
		.nrcpt = k,
	};
	struct bounce_out bo;
	rc = bounce_build(&bm, &a, &bo);
	if (rc == RM_EINVAL) {
		rc = RM_OK; /* nobody to report after all */
		goto out_a;
	}
	if (rc != RM_OK)
		goto out_a;
	struct spool_rcpt to = { .addr = env->sender };
	struct spool_env de = {
		.arrival_us = now_us,
		.sender = slice_make("", 0),
		.body = env->body >= SMTP_BODY_8BITMIME ? SMTP_BODY_8BITMIME : SMTP_BODY_UNSPEC,
		.smtputf8 = env->smtputf8,
		.rcpt = &to,
		.nrcpt = 1,
	};
	rc = ref->inject(ref->ictx, bo.v, bo.nv, &de, report);
	if (rc == RM_OK)
		*queued = 1;
out_a:
	arena_free(&a);
	free(body);
out:
	free(r);
	free(sel);
	return rc;
}
