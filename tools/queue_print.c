/* queue_print.c - ringmta-queue's text and JSON output.
 *
 * Text: list is one line per message, fields separated by one space, the
 * last field (LAST-REPLY) free text; show and stats are "key: value" and
 * "key value" lines. Every byte below 0x20 or 0x7f prints as \xNN, so a
 * message cannot forge lines. JSON: RFC 8259 strings, valid UTF-8 passed
 * through, anything else as \u escapes or U+FFFD. Main thread; output
 * errors are the caller's to check (ferror).
 */
#include "tools/queue_print.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/smtp_addr.h"

/* qp_utf8_len - length of the valid UTF-8 sequence at p[0..n), 0 if none
 * (overlong forms, surrogates and code points past U+10FFFF are invalid) */
static size_t qp_utf8_len(const unsigned char *p, size_t n)
{
	unsigned c = p[0];
	size_t len;
	unsigned cp, min;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, cp = c & 0x1f, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, cp = c & 0x0f, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, cp = c & 0x07, min = 0x10000;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* queue_print_json_str - s as a JSON string literal */
void queue_print_json_str(FILE *out, struct slice s)
{
	const unsigned char *p = (const unsigned char *)s.ptr;

	fputc('"', out);
	for (size_t i = 0; i < s.len;) {
		unsigned c = p[i];
		size_t k;

		if (c == '"' || c == '\\') {
			fputc('\\', out);
			fputc((int)c, out);
			i++;
		} else if (c == '\n' || c == '\r' || c == '\t') {
			fputc('\\', out);
			fputc(c == '\n' ? 'n' : c == '\r' ? 'r' : 't', out);
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			fprintf(out, "\\u%04x", c);
			i++;
		} else if ((k = qp_utf8_len(p + i, s.len - i)) == 0) {
			fputs("\\ufffd", out);
			i++;
		} else {
			fwrite(p + i, 1, k, out);
			i += k;
		}
	}
	fputc('"', out);
}

/* qp_text - s for a text line: control bytes as \xNN */
static void qp_text(FILE *out, struct slice s)
{
	for (size_t i = 0; i < s.len; i++) {
		unsigned char c = (unsigned char)s.ptr[i];
		if (c < 0x20 || c == 0x7f)
			fprintf(out, "\\x%02x", c);
		else
			fputc(c, out);
	}
}

/* queue_print_time - RFC 3339 UTC with seconds */
void queue_print_time(uint64_t us, char out[32])
{
	time_t t = (time_t)(us / 1000000u);
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, 32, "%llu", (unsigned long long)(us / 1000000u));
}

/* queue_print_rcpt_state - a recipient's state as a word */
const char *queue_print_rcpt_state(const struct spool_rstate *rs)
{
	switch (rs->outcome) {
	case 0: return rs->attempts || rs->next_attempt_us ? "deferred" : "pending";
	case SPOOL_OUT_DEFERRED: return "deferred";
	case SPOOL_OUT_DELIVERED: return "delivered";
	case SPOOL_OUT_BOUNCED: return "bounced";
	case SPOOL_OUT_EXPIRED: return "expired";
	case SPOOL_OUT_DELETED: return "deleted";
	}
	return "unknown";
}

/* queue_print_size - Received: header plus body */
uint64_t queue_print_size(const struct spool_msg *m)
{
	return m->env.received.len + spool_env_body_len(&m->env);
}

/* qp_sender - the reverse-path as shown: "<>" when null */
static struct slice qp_sender(const struct spool_msg *m)
{
	return m->env.sender.len ? m->env.sender : SLICE_LIT("<>");
}

/* qp_next - the pending recipient to be tried first (earliest deferral),
 * or -1 when no pending recipient has been deferred yet */
static long qp_next(const struct spool_msg *m)
{
	long best = -1;

	for (uint32_t i = 0; i < m->env.nrcpt; i++) {
		const struct spool_rstate *r = &m->rs[i];
		if (r->outcome || !r->next_attempt_us)
			continue;
		if (best < 0 || r->next_attempt_us < m->rs[best].next_attempt_us)
			best = (long)i;
	}
	return best;
}

/* qp_last_reply - the last reply worth showing for the message: the first
 * deferred recipient's, else any pending recipient's */
static struct slice qp_last_reply(const struct spool_msg *m)
{
	long i = qp_next(m);

	if (i >= 0 && m->rs[i].last_reply.len)
		return m->rs[i].last_reply;
	for (uint32_t k = 0; k < m->env.nrcpt; k++)
		if (!m->rs[k].outcome && m->rs[k].last_reply.len)
			return m->rs[k].last_reply;
	return SLICE_NULL;
}

/* qp_json_time - a time as a JSON string, or null for 0 */
static void qp_json_time(FILE *out, uint64_t us)
{
	char t[32];

	if (!us) {
		fputs("null", out);
		return;
	}
	queue_print_time(us, t);
	fprintf(out, "\"%s\"", t);
}

/* qp_json_opt - s as a JSON string, or null when empty */
static void qp_json_opt(FILE *out, struct slice s)
{
	if (s.len)
		queue_print_json_str(out, s);
	else
		fputs("null", out);
}

/* qp_json_rcpts - the "recipients" array; full adds DSN and attempts */
static void qp_json_rcpts(FILE *out, const struct spool_msg *m, bool full)
{
	fputs("\"recipients\":[", out);
	for (uint32_t i = 0; i < m->env.nrcpt; i++) {
		const struct spool_rstate *r = &m->rs[i];
		fputs(i ? ",{\"address\":" : "{\"address\":", out);
		queue_print_json_str(out, m->env.rcpt[i].addr);
		fprintf(out, ",\"state\":\"%s\",\"next_attempt\":", queue_print_rcpt_state(r));
		qp_json_time(out, r->outcome ? 0 : r->next_attempt_us);
		fputs(",\"last_reply\":", out);
		qp_json_opt(out, r->last_reply);
		if (full) {
			fprintf(out, ",\"attempts\":%u,\"notify\":[", (unsigned)r->attempts);
			static const char *const words[] = { "NEVER", "SUCCESS", "FAILURE", "DELAY" };
			bool first = true;
			for (unsigned b = 0; b < 4; b++)
				if (m->env.rcpt[i].notify & (1u << b)) {
					fprintf(out, "%s\"%s\"", first ? "" : ",", words[b]);
					first = false;
				}
			fputs("],\"orcpt\":", out);
			qp_json_opt(out, m->env.rcpt[i].orcpt);
		}
		fputc('}', out);
	}
	fputc(']', out);
}

/* qp_json_head - the keys every message object starts with */
static void qp_json_head(FILE *out, const struct spool_msg *m)
{
	fputs("{\"id\":", out);
	queue_print_json_str(out, m->env.id);
	fprintf(out, ",\"size\":%llu,\"arrival\":", (unsigned long long)queue_print_size(m));
	qp_json_time(out, m->env.arrival_us);
	fputs(",\"sender\":", out);
	queue_print_json_str(out, qp_sender(m));
	fputc(',', out);
}

/* queue_print_list - one line per message, or a JSON array */
void queue_print_list(FILE *out, const struct spool_msg *const *msg, size_t n, bool json)
{
	char t[32];

	if (json)
		fputc('[', out);
	for (size_t i = 0; i < n; i++) {
		const struct spool_msg *m = msg[i];
		if (json) {
			fputs(i ? ",\n" : "\n", out);
			qp_json_head(out, m);
			qp_json_rcpts(out, m, false);
			fputc('}', out);
			continue;
		}
		long nx = qp_next(m);
		struct slice reply = qp_last_reply(m);
		qp_text(out, m->env.id);
		queue_print_time(m->env.arrival_us, t);
		fprintf(out, " %llu %s ", (unsigned long long)queue_print_size(m), t);
		qp_text(out, qp_sender(m));
		fprintf(out, " %u ", (unsigned)m->left);
		if (nx >= 0) {
			queue_print_time(m->rs[nx].next_attempt_us, t);
			fputs(t, out);
		} else {
			fputc('-', out);
		}
		fputc(' ', out);
		if (reply.len)
			qp_text(out, reply);
		else
			fputc('-', out);
		fputc('\n', out);
	}
	if (json)
		fputs(n ? "\n]\n" : "]\n", out);
}

/* qp_show_kv - one "key: value" line, or nothing for an empty value */
static void qp_show_kv(FILE *out, const char *key, struct slice v)
{
	if (!v.len)
		return;
	fprintf(out, "%s: ", key);
	qp_text(out, v);
	fputc('\n', out);
}

/* qp_word - a BODY= or RET= value as its keyword, or NULL when unset */
static const char *qp_word(bool ret, unsigned v)
{
	static const char *const body[] = { NULL, "7BIT", "8BITMIME", "BINARYMIME" };
	static const char *const rets[] = { NULL, "FULL", "HDRS" };

	if (ret)
		return v < 3 ? rets[v] : NULL;
	return v < 4 ? body[v] : NULL;
}

/* qp_show_text - show as "key: value" lines, then the headers */
static void qp_show_text(FILE *out, const struct spool_msg *m, const char *hdr, size_t hlen)
{
	char t[32];
	const char *w;

	qp_show_kv(out, "id", m->env.id);
	queue_print_time(m->env.arrival_us, t);
	fprintf(out, "arrival: %s\nsize: %llu\n", t, (unsigned long long)queue_print_size(m));
	fputs("sender: ", out);
	qp_text(out, qp_sender(m));
	fputc('\n', out);
	if (m->env.has_size)
		fprintf(out, "size-param: %llu\n", (unsigned long long)m->env.size);
	if ((w = qp_word(false, m->env.body)))
		fprintf(out, "body: %s\n", w);
	if ((w = qp_word(true, m->env.ret)))
		fprintf(out, "ret: %s\n", w);
	if (m->env.smtputf8)
		fputs("smtputf8: yes\n", out);
	qp_show_kv(out, "envid", m->env.envid);
	qp_show_kv(out, "auth", m->env.auth);
	fprintf(out, "recipients-left: %u\n", (unsigned)m->left);
	for (uint32_t i = 0; i < m->env.nrcpt; i++) {
		const struct spool_rstate *r = &m->rs[i];
		static const char *const words[] = { "NEVER", "SUCCESS", "FAILURE", "DELAY" };
		fputs("recipient: ", out);
		qp_text(out, m->env.rcpt[i].addr);
		fprintf(out, "\n  state: %s\n", queue_print_rcpt_state(r));
		if (m->env.rcpt[i].notify) {
			fputs("  notify:", out);
			for (unsigned b = 0; b < 4; b++)
				if (m->env.rcpt[i].notify & (1u << b))
					fprintf(out, " %s", words[b]);
			fputc('\n', out);
		}
		qp_show_kv(out, "  orcpt", m->env.rcpt[i].orcpt);
		if (r->attempts)
			fprintf(out, "  attempts: %u\n", (unsigned)r->attempts);
		if (!r->outcome && r->next_attempt_us) {
			queue_print_time(r->next_attempt_us, t);
			fprintf(out, "  next-attempt: %s\n", t);
		}
		qp_show_kv(out, "  last-reply", r->last_reply);
	}
	if (!hdr) {
		fputs("headers: (the message body could not be read)\n", out);
		return;
	}
	fputs("headers:\n", out);
	/* header lines as stored, CRLF shown as line ends */
	for (size_t i = 0; i < hlen;) {
		size_t e = i;
		while (e < hlen && hdr[e] != '\n')
			e++;
		size_t end = e > i && hdr[e - 1] == '\r' ? e - 1 : e;
		fputs("  ", out);
		qp_text(out, slice_make(hdr + i, end - i));
		fputc('\n', out);
		i = e + 1;
	}
}

/* queue_print_show - one message in full */
void queue_print_show(FILE *out, const struct spool_msg *m, const char *hdr, size_t hlen,
		      bool json)
{
	const char *w;

	if (!json) {
		qp_show_text(out, m, hdr, hlen);
		return;
	}
	qp_json_head(out, m);
	fputs("\"size_param\":", out);
	if (m->env.has_size)
		fprintf(out, "%llu", (unsigned long long)m->env.size);
	else
		fputs("null", out);
	fputs(",\"body\":", out);
	w = qp_word(false, m->env.body);
	fprintf(out, w ? "\"%s\"" : "null", w ? w : "");
	fputs(",\"ret\":", out);
	w = qp_word(true, m->env.ret);
	fprintf(out, w ? "\"%s\"" : "null", w ? w : "");
	fprintf(out, ",\"smtputf8\":%s,\"envid\":", m->env.smtputf8 ? "true" : "false");
	qp_json_opt(out, m->env.envid);
	fputs(",\"auth\":", out);
	qp_json_opt(out, m->env.auth);
	fprintf(out, ",\"recipients_left\":%u,", (unsigned)m->left);
	qp_json_rcpts(out, m, true);
	fputs(",\"headers\":", out);
	if (hdr)
		queue_print_json_str(out, slice_make(hdr, hlen));
	else
		fputs("null", out);
	fputs("}\n", out);
}

/* A counted key of the stats. */
struct qp_count {
	char *key;
	size_t n;
};

/* qp_count_cmp - most first, then by name */
static int qp_count_cmp(const void *a, const void *b)
{
	const struct qp_count *x = a, *y = b;
	if (x->n != y->n)
		return x->n > y->n ? -1 : 1;
	return strcmp(x->key, y->key);
}

/* qp_str_cmp - strings in byte order */
static int qp_str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* qp_domain - the lower-cased domain of an address, NUL-terminated, or
 * NULL when out of memory */
static char *qp_domain(struct slice addr)
{
	size_t at = addr.len;
	char *d;

	while (at > 0 && addr.ptr[at - 1] != '@')
		at--;
	d = malloc(addr.len - at + 1);
	if (!d)
		return NULL;
	for (size_t i = at; i < addr.len; i++)
		d[i - at] = ascii_lower(addr.ptr[i]) ? ascii_lower(addr.ptr[i]) : '?';
	d[addr.len - at] = '\0';
	return d;
}

/* qp_stats_out - one group of counts as text lines or a JSON object */
static void qp_stats_out(FILE *out, const char *name, const struct qp_count *c, size_t n,
			 bool json)
{
	if (json)
		fprintf(out, ",\"%s\":{", name);
	for (size_t i = 0; i < n; i++) {
		if (json) {
			fputs(i ? "," : "", out);
			queue_print_json_str(out, slice_cstr(c[i].key));
			fprintf(out, ":%zu", c[i].n);
		} else {
			fprintf(out, "%s ", name);
			qp_text(out, slice_cstr(c[i].key));
			fprintf(out, " %zu\n", c[i].n);
		}
	}
	if (json)
		fputc('}', out);
}

/* queue_print_stats - counts by state and by next hop */
void queue_print_stats(FILE *out, const struct spool_msg *const *msg, size_t n, bool json)
{
	static const char *const states[] = { "pending", "deferred" };
	struct qp_count st[2] = { { (char *)"pending", 0 }, { (char *)"deferred", 0 } };
	struct qp_count *hops = NULL;
	char **doms = NULL;
	size_t nd = 0, nh = 0, cap = 0, rcpts = 0;

	for (size_t i = 0; i < n; i++)
		for (uint32_t k = 0; k < msg[i]->env.nrcpt; k++) {
			const struct spool_rstate *r = &msg[i]->rs[k];
			if (r->outcome)
				continue;
			rcpts++;
			st[strcmp(queue_print_rcpt_state(r), states[0]) != 0].n++;
			if (nd == cap) {
				char **p = realloc(doms, sizeof *doms * (cap = cap ? cap * 2 : 64));
				if (!p)
					break;
				doms = p;
			}
			if ((doms[nd] = qp_domain(msg[i]->env.rcpt[k].addr)))
				nd++;
		}
	if (nd > 1)
		qsort(doms, nd, sizeof *doms, qp_str_cmp);
	hops = calloc(nd ? nd : 1, sizeof *hops);
	for (size_t i = 0; hops && i < nd; i++) {
		if (nh && strcmp(hops[nh - 1].key, doms[i]) == 0)
			hops[nh - 1].n++;
		else
			hops[nh++] = (struct qp_count){ doms[i], 1 };
	}
	if (nh > 1)
		qsort(hops, nh, sizeof *hops, qp_count_cmp);
	if (json)
		fprintf(out, "{\"messages\":%zu,\"recipients\":%zu", n, rcpts);
	else
		fprintf(out, "messages %zu\nrecipients %zu\n", n, rcpts);
	qp_stats_out(out, json ? "by_state" : "state", st, 2, json);
	qp_stats_out(out, json ? "by_next_hop" : "next-hop", hops, nh, json);
	if (json)
		fputs("}\n", out);
	for (size_t i = 0; i < nd; i++)
		free(doms[i]);
	free(doms);
	free(hops);
}
