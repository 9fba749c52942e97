/* fuzz_smtp_addr.c - libFuzzer target for the path and parameter parsers.
 *
 * The first byte picks reverse-path (bit 0 set: <> allowed) or forward-path;
 * the rest is what follows "MAIL FROM:" or "RCPT TO:". An accepted path must
 * lie inside the input, keep the RFC 5321 length limits and name a domain
 * that smtp_domain_valid accepts on its own; the parameters after it go to
 * both parameter parsers, and the whole input goes to every other entry
 * point. Any violation aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/smtp_addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fuzz_inside - is s a slice of [base, base+n) */
static int fuzz_inside(struct slice s, const char *base, size_t n)
{
	if (s.len == 0)
		return s.ptr == NULL || (s.ptr >= base && s.ptr <= base + n);
	return s.ptr >= base && s.ptr + s.len <= base + n;
}

/* fuzz_check - abort unless cond */
static void fuzz_check(int cond)
{
	if (!cond)
		abort();
}

/* fuzz_params - both parameter parsers over in */
static void fuzz_params(struct slice in)
{
	struct smtp_mail_params mp;
	struct smtp_rcpt_params rp;
	struct slice bad;
	char dec[SMTP_ORCPT_MAX];
	size_t len;

	if (smtp_mail_params_parse(in, &mp, &bad) == SMTP_ADDR_OK) {
		fuzz_check(bad.ptr == NULL && bad.len == 0);
		fuzz_check(fuzz_inside(mp.envid, in.ptr, in.len) && mp.envid.len <= SMTP_XTEXT_MAX);
		fuzz_check(fuzz_inside(mp.auth, in.ptr, in.len));
		fuzz_check(smtp_xtext_valid(mp.envid) && smtp_xtext_valid(mp.auth));
		fuzz_check(smtp_xtext_decode(mp.envid, dec, sizeof dec, &len) == RM_OK);
		for (size_t i = 0; i < len; i++)
			fuzz_check(dec[i] >= 32 && dec[i] <= 126);
	} else {
		fuzz_check(bad.len > 0 && fuzz_inside(bad, in.ptr, in.len));
	}
	if (smtp_rcpt_params_parse(in, &rp, &bad) == SMTP_ADDR_OK) {
		fuzz_check(fuzz_inside(rp.orcpt, in.ptr, in.len) && rp.orcpt.len <= SMTP_ORCPT_MAX);
		fuzz_check(!(rp.notify & SMTP_NOTIFY_NEVER) || rp.notify == SMTP_NOTIFY_NEVER);
	} else {
		fuzz_check(fuzz_inside(bad, in.ptr, in.len));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_path p;
	struct slice in, rest;
	char buf[SMTP_DOMAIN_MAX + 1];
	size_t len;

	if (size == 0)
		return 0;
	in = slice_make((const char *)data + 1, size - 1);
	if (smtp_path_parse(in, data[0] & 1, &p, &rest) == SMTP_ADDR_OK) {
		fuzz_check(fuzz_inside(p.mailbox, in.ptr, in.len));
		fuzz_check(fuzz_inside(p.local, in.ptr, in.len));
		fuzz_check(fuzz_inside(p.domain, in.ptr, in.len));
		fuzz_check(fuzz_inside(rest, in.ptr, in.len) && rest.ptr + rest.len == in.ptr + in.len);
		fuzz_check(rest.len == 0 || rest.ptr[0] == ' ');
		fuzz_check(p.local.len <= SMTP_LOCAL_MAX && p.domain.len <= SMTP_DOMAIN_MAX);
		fuzz_check(p.mailbox.len + 2 <= SMTP_PATH_MAX);
		fuzz_check(!p.null || (data[0] & 1));
		if (!p.null && !p.postmaster) {
			fuzz_check(p.mailbox.len == p.local.len + 1 + p.domain.len);
			fuzz_check(smtp_domain_valid(p.domain, true));
			fuzz_check(p.utf8 || smtp_domain_valid(p.domain, false));
			fuzz_check(p.literal == (p.domain.ptr[0] == '['));
			fuzz_check(slice_eq(smtp_mailbox_domain(p.mailbox), p.domain));
			fuzz_check(smtp_domain_lower(p.domain, buf, sizeof buf, &len) == RM_OK);
			fuzz_check(len == p.domain.len);
		}
		fuzz_check(p.utf8 || smtp_utf8_valid(p.mailbox));
		fuzz_check(smtp_utf8_valid(p.mailbox));
		fuzz_params(rest);
	}
	fuzz_params(in);
	(void)smtp_domain_valid(in, data[0] & 2);
	(void)smtp_mailbox_domain(in);
	(void)smtp_utf8_valid(in);
	{
		char *dec = malloc(in.len + 1);
		if (dec && smtp_xtext_decode(in, dec, in.len, &len) == RM_OK)
			fuzz_check(len <= in.len);
		free(dec);
	}
	return 0;
}
