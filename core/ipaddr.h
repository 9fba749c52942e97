/* ipaddr.h - IPv4 and IPv6 address text, parsed and written without libc's
 * resolver functions (core/ may not call inet_pton).
 *
 * Parsing is strict: IPv4 is exactly four decimal parts 0..255 without
 * leading zeros (as glibc's inet_pton); IPv6 is RFC 4291 §2.2 text (groups
 * of 1-4 hex digits, at most one "::", an optional dotted IPv4 tail), no zone
 * index, no brackets. Writing follows RFC 5952 (lower case, the longest run
 * of two or more zero groups compressed, the first of equal runs). Pure; any
 * thread; no allocation.
 */
#ifndef RINGMTA_CORE_IPADDR_H
#define RINGMTA_CORE_IPADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/slice.h"

#define IPADDR_TEXT_MAX 46 /* INET6_ADDRSTRLEN: the longest text plus NUL */

/* ipaddr_parse4 - all of s as a dotted quad into out[4] (network order) */
bool ipaddr_parse4(struct slice s, uint8_t out[4]);

/* ipaddr_parse6 - all of s as IPv6 text into out[16] (network order) */
bool ipaddr_parse6(struct slice s, uint8_t out[16]);

/* ipaddr_format - write a 4- or 16-byte address as NUL-terminated text into
 * out (IPADDR_TEXT_MAX bytes); returns its length, 0 for another alen */
size_t ipaddr_format(const uint8_t *addr, size_t alen, char out[IPADDR_TEXT_MAX]);

#endif
