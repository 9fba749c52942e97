/* ipaddr.c - IP address text to bytes and back, strictly. Pure; any thread.
 *
 * Invariant: a parse that returns false has not written a byte to out.
 */
#include "core/ipaddr.h"

#include <string.h>

/* ipaddr_hex - the value of a hex digit, or -1 */
static int ipaddr_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = ascii_lower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* ipaddr_parse4 - all of s as a dotted quad into out[4] (network order) */
bool ipaddr_parse4(struct slice s, uint8_t out[4])
{
	uint8_t b[4];
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		size_t start = i;
		unsigned v = 0;

		if (part > 0) {
			if (i >= s.len || s.ptr[i] != '.')
				return false;
			start = ++i;
		}
		while (i < s.len && s.ptr[i] >= '0' && s.ptr[i] <= '9' && i - start < 3)
			v = v * 10 + (unsigned)(s.ptr[i++] - '0');
		if (i == start || v > 255 || (s.ptr[start] == '0' && i - start > 1))
			return false;
		b[part] = (uint8_t)v;
	}
	if (i != s.len)
		return false;
	memcpy(out, b, 4);
	return true;
}

/* ipaddr_parse6 - all of s as IPv6 text into out[16] (network order) */
bool ipaddr_parse6(struct slice s, uint8_t out[16])
{
	uint8_t b[16] = { 0 };
	size_t i = 0, n = 0;
	long gap = -1; /* byte offset where "::" stands, if any */

	if (s.len < 2)
		return false;
	if (s.ptr[0] == ':') {
		if (s.ptr[1] != ':')
			return false;
		gap = 0;
		i = 2;
	}
	while (i < s.len) {
		size_t start = i;
		unsigned v = 0;
		int d;

		while (i < s.len && i - start < 5 && (d = ipaddr_hex(s.ptr[i])) >= 0) {
			v = v * 16 + (unsigned)d;
			i++;
		}
		if (i < s.len && s.ptr[i] == '.') {
			/* a dotted IPv4 tail takes the last 32 bits (RFC 4291 §2.2 3.) */
			if (n > 12 || !ipaddr_parse4(slice_make(s.ptr + start, s.len - start), b + n))
				return false;
			n += 4;
			break;
		}
		if (i == start || i - start > 4 || n == 16)
			return false;
		b[n++] = (uint8_t)(v >> 8);
		b[n++] = (uint8_t)v;
		if (i == s.len)
			break;
		if (s.ptr[i++] != ':' || i == s.len)
			return false;
		if (s.ptr[i] == ':') {
			if (gap >= 0)
				return false;
			gap = (long)n;
			i++;
		}
	}
	if (gap >= 0) {
		size_t tail = n - (size_t)gap;

		if (n == 16) /* "::" stands for at least one group */
			return false;
		memmove(b + 16 - tail, b + gap, tail);
		memset(b + gap, 0, 16 - tail - (size_t)gap);
	} else if (n != 16) {
		return false;
	}
	memcpy(out, b, 16);
	return true;
}

/* ipaddr_put_dec - append v (0..255) in decimal */
static size_t ipaddr_put_dec(char *o, unsigned v)
{
	size_t n = 0;

	if (v >= 100)
		o[n++] = (char)('0' + v / 100);
	if (v >= 10)
		o[n++] = (char)('0' + v / 10 % 10);
	o[n++] = (char)('0' + v % 10);
	return n;
}

/* ipaddr_format - write an address as text (RFC 5952 for IPv6) */
size_t ipaddr_format(const uint8_t *addr, size_t alen, char out[IPADDR_TEXT_MAX])
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;
	int best = -1, best_len = 1;

	if (alen == 4) {
		for (int i = 0; i < 4; i++) {
			if (i)
				out[n++] = '.';
			n += ipaddr_put_dec(out + n, addr[i]);
		}
		out[n] = '\0';
		return n;
	}
	if (alen != 16) {
		out[0] = '\0';
		return 0;
	}
	for (int g = 0; g < 8;) {
		int run = 0;

		while (g + run < 8 && addr[2 * (g + run)] == 0 && addr[2 * (g + run) + 1] == 0)
			run++;
		if (run > best_len) {
			best = g;
			best_len = run;
		}
		g += run ? run : 1;
	}
	for (int g = 0; g < 8; g++) {
		unsigned v = (unsigned)addr[2 * g] << 8 | addr[2 * g + 1];
		int shift = 12;

		if (g == best) {
			out[n++] = ':';
			out[n++] = ':';
			g += best_len - 1;
			continue;
		}
		if (g && g != best + best_len) /* after "::" no separator */
			out[n++] = ':';
		while (shift > 0 && (v >> shift) == 0)
			shift -= 4;
		for (; shift >= 0; shift -= 4)
			out[n++] = hex[(v >> shift) & 15];
	}
	out[n] = '\0';
	return n;
}
