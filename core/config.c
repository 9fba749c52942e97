/* config.c - walking a "key = value" file held in memory (format in
 * config.h). Pure; no allocation; one owner per parser.
 *
 * Invariant: _off is always the start of a line (or _len); config_next never
 * reads at or past _p + _len.
 */
#include "core/config.h"

#include <string.h>

/* config_init - ready to walk p[0..len) */
void config_init(struct config_parser *c, const char *p, size_t len)
{
	c->_p = p;
	c->_len = len;
	c->_off = 0;
	c->_line = 0;
	c->_failed = 0;
}

/* config_fail - record an error on the current line and stay failed */
static int config_fail(struct config_parser *c, struct config_error *err, const char *msg)
{
	c->_failed = 1;
	err->line = c->_line;
	err->msg = msg;
	return RM_EPROTO;
}

/* config_key_ok - a lower-case letter, then lower-case letters, digits, '-' */
static int config_key_ok(struct slice k)
{
	if (k.len == 0 || k.ptr[0] < 'a' || k.ptr[0] > 'z')
		return 0;
	for (size_t i = 1; i < k.len; i++) {
		char ch = k.ptr[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-'))
			return 0;
	}
	return 1;
}

/* config_next - the next setting, 0 at the end, or RM_EPROTO */
int config_next(struct config_parser *c, struct config_entry *e, struct config_error *err)
{
	if (c->_failed)
		return config_fail(c, err, "earlier error");
	while (c->_off < c->_len) {
		const char *start = c->_p + c->_off;
		size_t rest = c->_len - c->_off;
		const char *nl = memchr(start, '\n', rest);
		size_t len = nl ? (size_t)(nl - start) : rest;
		struct slice line, key, value;
		const char *eq;

		c->_line++;
		c->_off += nl ? len + 1 : len;
		if (len && start[len - 1] == '\r')
			len--;
		if (len > CONFIG_LINE_MAX)
			return config_fail(c, err, "line too long");
		for (size_t i = 0; i < len; i++) {
			unsigned char ch = (unsigned char)start[i];
			if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
				return config_fail(c, err, "control character");
		}
		line = slice_trim(slice_make(start, len));
		if (line.len == 0 || line.ptr[0] == '#')
			continue;
		eq = memchr(line.ptr, '=', line.len);
		if (!eq)
			return config_fail(c, err, "expected key = value");
		key = slice_trim(slice_make(line.ptr, (size_t)(eq - line.ptr)));
		value = slice_make(eq + 1, line.len - (size_t)(eq + 1 - line.ptr));
		for (size_t i = 1; i < value.len; i++) {
			if (value.ptr[i] == '#' && (value.ptr[i - 1] == ' ' || value.ptr[i - 1] == '\t')) {
				value.len = i;
				break;
			}
		}
		value = slice_trim(value);
		if (!config_key_ok(key))
			return config_fail(c, err, "bad key");
		if (value.len == 0)
			return config_fail(c, err, "missing value");
		e->key = key;
		e->value = value;
		e->line = c->_line;
		return 1;
	}
	return 0;
}
