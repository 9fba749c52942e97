/* smtp_data.h - the DATA body scanner (RFC 5321 §4.1.1.4, §4.5.2).
 *
 * Resumable: feed the body as it arrives, split anywhere. The scanner finds
 * the end of data and undoes dot-stuffing by emitting slices, never copying:
 *  - a slice points into the caller's input, or into a static constant (the
 *    CRLF that replaces a bare LF, and any bytes held back at a buffer
 *    boundary, which are always a known pattern such as CR, CRLF);
 *  - the end of data is exactly CRLF "." CRLF, where the first CRLF may be the
 *    end of the previous line or the very start of the body (a body that is
 *    just ".\r\n" is empty). LF.LF, LF.CRLF, CR.CR and friends never end it
 *    (SMTP smuggling, CVE-2023-51764 class);
 *  - a line ending in a bare LF is normalised to CRLF (Postfix's
 *    smtpd_forbid_bare_newline = normalize); a bare CR passes unchanged;
 *  - the first "." of any line is removed (dot-unstuffing);
 *  - in the header section (up to the first empty line) lines starting with
 *    "Received:" (any case) are counted, for mail-loop detection.
 * Emitted slices, concatenated, are the message as it will be stored: CRLF
 * line endings, no stuffing, no terminating ".CRLF". Pure; no allocation.
 *
 * Raw mode (smtp_data_init_raw) is for BDAT bodies (RFC 3030): binary
 * transparent, so no unstuffing, no end marker and no normalisation; every
 * input is emitted as one slice and only Received: headers are counted (a
 * header line there ends at LF, with or without CR). The caller knows where
 * each chunk ends and calls smtp_data_init_raw once per message, not per
 * chunk, so the header count spans chunks.
 */
#ifndef RINGMTA_CORE_SMTP_DATA_H
#define RINGMTA_CORE_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/slice.h"

#define SMTP_DATA_MAX_RECEIVED 50 /* more Received: headers: 554 5.4.6 */

struct smtp_data {
	uint8_t _state;        /* position in the line-start / CRLF automaton */
	uint8_t _hdr;          /* header-name match state */
	bool _in_headers;      /* still before the first empty line */
	bool _done;            /* CRLF.CRLF seen */
	uint32_t _received;    /* Received: headers counted so far */
	uint64_t _bytes;       /* bytes emitted so far */
	uint64_t _normalised;  /* bare LFs turned into CRLF */
};

/* A place for emitted slices, filled from v[n] up to v[cap]. */
struct smtp_data_out {
	struct slice *v;
	size_t n;
	size_t cap;
};

/* smtp_data_init - ready to scan a new body */
void smtp_data_init(struct smtp_data *d);

/* smtp_data_init_raw - ready to take a BDAT body verbatim (see above) */
void smtp_data_init_raw(struct smtp_data *d);

/* smtp_data_scan - scan in[0..len); append body slices to out.
 *
 * Returns the bytes of in consumed. It stops early, with fewer than len
 * consumed, when the end of data was reached (the rest belongs to the next
 * command) or when out is full (call again with the rest and with room).
 * Every call with room for at least one slice makes progress: it consumes
 * bytes or emits slices. It may emit a slice and consume nothing, when a
 * byte held back at the end of the previous input turns out to be content.
 * After the end of data it consumes nothing. Slices into in are valid as
 * long as in is; slices into constants forever (smtp_data_slice_static). */
size_t smtp_data_scan(struct smtp_data *d, const char *in, size_t len, struct smtp_data_out *out);

/* smtp_data_slice_static - the slice lies in the scanner's own constants
 * (a normalised CRLF or a re-emitted held-back byte), not in any input */
bool smtp_data_slice_static(struct slice s);

/* smtp_data_avx2 - for tests and benchmarks: scan with the AVX2 blocks (on)
 * or the SSE2 ones; false when the CPU or the build cannot do as asked. The
 * default is the CPU's best. Not for use while another thread scans. */
bool smtp_data_avx2(bool on);

/* smtp_data_done - the terminating CRLF.CRLF has been consumed */
static inline bool smtp_data_done(const struct smtp_data *d)
{
	return d->_done;
}

/* smtp_data_received - Received: headers counted in the header section */
static inline uint32_t smtp_data_received(const struct smtp_data *d)
{
	return d->_received;
}

/* smtp_data_bytes - bytes emitted so far (the stored message size) */
static inline uint64_t smtp_data_bytes(const struct smtp_data *d)
{
	return d->_bytes;
}

/* smtp_data_normalised - bare LF line endings turned into CRLF so far */
static inline uint64_t smtp_data_normalised(const struct smtp_data *d)
{
	return d->_normalised;
}

#endif
