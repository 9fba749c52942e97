/* smtp_data.c - the DATA body scanner: end of data, unstuffing, CRLF.
 *
 * Purpose: turn a DATA body, fed in pieces split anywhere, into slices of the
 * stored message without copying a byte (DESIGN.md principle 3).
 *
 * How: a small automaton remembers only what a buffer boundary can hide (at a
 * line start? was the last byte CR? a line-start dot just dropped? a CR after
 * it held back?). Inside a buffer the scanner keeps one pending run of input
 * bytes to emit verbatim and only cuts it at an "event": a bare LF (emit the
 * run, then a constant CRLF), a line starting with '.' (emit the run, skip the
 * dot) or the end of the input. Events are found by scanning for LFs that are
 * either not preceded by CR or followed by '.'; ordinary CRLF lines cost no
 * more than the LF search (SSE2 when the compiler has it, AVX2 when the CPU
 * has it too, memchr otherwise).
 *
 * Invariants:
 *  - every emitted slice lies in the current input or in data_const;
 *  - bytes consumed but not yet emitted are always a line-start dot (dropped)
 *    or the CR after one (re-emitted from data_const if it turns out to be
 *    content), so nothing needs a copy;
 *  - when out fills up, the scanner returns at the start of the pending run
 *    with the automaton state it had there, so a retry sees the same bytes in
 *    the same state; counters change only with successful emission;
 *  - Received: counting runs over emitted bytes (the stored message) and only
 *    until the header section ends, so the body costs nothing.
 *
 * Threads: pure; one struct smtp_data per body, used by one thread at a time.
 * Panics on nothing: every input is valid.
 */
#include "core/smtp_data.h"

#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* The automaton: where the scanner stands between two input bytes. */
enum data_state {
	DS_BOL = 0, /* line start after CRLF, or the body's start */
	DS_BOL_LF,  /* line start after a bare LF: a dot here never ends data */
	DS_TEXT,    /* inside a line, the last byte was not CR */
	DS_TEXT_CR, /* inside a line, the last byte was CR (already emitted) */
	DS_DOT,     /* a line-start dot after CRLF was consumed and dropped */
	DS_DOT_CR,  /* ... then a CR, held back: CRLF ends data, else content */
	DS_DONE,    /* CRLF.CRLF consumed */
	DS_RAW,     /* BDAT: everything is content */
};

/* Header-name matcher states (_hdr): 0..8 = bytes of "received" matched at
 * the start of the line, then these. */
enum data_hdr {
	DH_CR = 9,   /* the line so far is one CR: maybe the empty line */
	DH_SKIP = 10 /* nothing more to learn from this line */
};

/* The constant bytes the scanner emits: a CRLF for a bare LF and a CR for a
 * held-back one are both slices of this. */
static const char data_const[2] = { '\r', '\n' };
static const char data_received[] = "received:";

/* smtp_data_init - ready to scan a new body */
void smtp_data_init(struct smtp_data *d)
{
	memset(d, 0, sizeof *d);
	d->_state = DS_BOL;
	d->_hdr = 0;
	d->_in_headers = true;
}

/* smtp_data_init_raw - ready to take a BDAT body verbatim */
void smtp_data_init_raw(struct smtp_data *d)
{
	smtp_data_init(d);
	d->_state = DS_RAW;
}

/* smtp_data_slice_static - the slice lies in data_const */
bool smtp_data_slice_static(struct slice s)
{
	uintptr_t p = (uintptr_t)s.ptr, lo = (uintptr_t)data_const;

	return p >= lo && p + s.len <= lo + sizeof data_const;
}

/* data_hdr_feed - run emitted bytes through the Received: counter until the
 * empty line that ends the header section */
static void data_hdr_feed(struct smtp_data *d, const char *p, size_t n)
{
	const char *end = p + n;
	uint8_t h = d->_hdr;

	while (p < end) {
		char c = *p++;

		if (h == DH_SKIP) {
			const char *lf = c == '\n' ? p - 1 : memchr(p, '\n', (size_t)(end - p));
			if (!lf)
				break;
			p = lf + 1;
			h = 0;
		} else if (c == '\n' && (h == 0 || h == DH_CR)) {
			d->_in_headers = false; /* the empty line: the body begins */
			break;
		} else if (c == '\n') {
			h = 0;
		} else if (h == 0 && c == '\r') {
			h = DH_CR;
		} else if (h < DH_CR && ascii_lower(c) == data_received[h]) {
			if (++h == sizeof data_received - 1) {
				d->_received++;
				h = DH_SKIP;
			}
		} else {
			h = DH_SKIP;
		}
	}
	d->_hdr = h;
}

/* data_emit - append one slice to out; false when out is full */
static inline bool data_emit(struct smtp_data *d, struct smtp_data_out *out, const char *p, size_t n)
{
	if (n == 0)
		return true;
	if (out->n >= out->cap)
		return false;
	out->v[out->n++] = slice_make(p, n);
	d->_bytes += n;
	if (__builtin_expect(d->_in_headers, 0))
		data_hdr_feed(d, p, n);
	return true;
}

/* data_event_scalar - the first LF in in[j..len) that is bare or followed by
 * '.', or len; prev_cr tells whether the byte before in[from] was CR */
static size_t data_event_scalar(const char *in, size_t from, size_t j, size_t len, bool prev_cr)
{
	while (j < len) {
		const char *lf = memchr(in + j, '\n', len - j);
		if (!lf)
			return len;
		j = (size_t)(lf - in);
		if (!(j > from ? in[j - 1] == '\r' : prev_cr))
			return j;
		if (j + 1 < len && in[j + 1] == '.')
			return j;
		j++;
	}
	return len;
}

#ifdef __SSE2__
/* A block scan: from j (in[j - 1] readable), the index of the first event
 * LF, each LF checked against its neighbours with three overlapping loads;
 * or, with *hit false, where too few bytes remain for a whole block. */
typedef size_t (*data_blocks_fn)(const char *in, size_t j, size_t len, bool *hit);

/* data_blocks16 - 16-byte blocks; inlined into both versions */
__attribute__((always_inline)) static inline size_t data_blocks16(const char *in, size_t j, size_t len,
								  bool *hit)
{
	const __m128i lf = _mm_set1_epi8('\n'), cr = _mm_set1_epi8('\r');
	const __m128i dot = _mm_set1_epi8('.');

	while (j + 17 <= len) {
		__m128i cur = _mm_loadu_si128((const __m128i *)(const void *)(in + j));
		__m128i before = _mm_loadu_si128((const __m128i *)(const void *)(in + j - 1));
		__m128i after = _mm_loadu_si128((const __m128i *)(const void *)(in + j + 1));
		/* quiet = CR before and no dot after */
		__m128i quiet = _mm_andnot_si128(_mm_cmpeq_epi8(after, dot), _mm_cmpeq_epi8(before, cr));
		__m128i ev = _mm_andnot_si128(quiet, _mm_cmpeq_epi8(cur, lf));
		unsigned m = (unsigned)_mm_movemask_epi8(ev);
		if (m) {
			*hit = true;
			return j + (size_t)__builtin_ctz(m);
		}
		j += 16;
	}
	*hit = false;
	return j;
}

/* data_blocks_sse2 - 16-byte blocks */
static size_t data_blocks_sse2(const char *in, size_t j, size_t len, bool *hit)
{
	return data_blocks16(in, j, len, hit);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define DATA_HAVE_AVX2 1

/* data_cpu_avx2 - the CPU has AVX2 and the kernel saves its registers
 * (CPUID and XGETBV directly: no runtime symbol, as in core/crc32c.c) */
static bool data_cpu_avx2(void)
{
	unsigned a = 0, b = 0, c = 0, d = 0, lo, hi;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE))
		return false;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	(void)hi;
	if ((lo & 6) != 6) /* XMM and YMM state */
		return false;
	return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_AVX2);
}

/* data_blocks_avx2 - 32-byte blocks, then 16-byte ones: twice the bytes per
 * instruction of the SSE2 loop on a body of ordinary CRLF lines */
__attribute__((target("avx2"))) static size_t data_blocks_avx2(const char *in, size_t j, size_t len, bool *hit)
{
	const __m256i lf = _mm256_set1_epi8('\n'), cr = _mm256_set1_epi8('\r');
	const __m256i dot = _mm256_set1_epi8('.');

	while (j + 33 <= len) {
		__m256i cur = _mm256_loadu_si256((const __m256i *)(const void *)(in + j));
		__m256i before = _mm256_loadu_si256((const __m256i *)(const void *)(in + j - 1));
		__m256i after = _mm256_loadu_si256((const __m256i *)(const void *)(in + j + 1));
		__m256i quiet = _mm256_andnot_si256(_mm256_cmpeq_epi8(after, dot), _mm256_cmpeq_epi8(before, cr));
		__m256i ev = _mm256_andnot_si256(quiet, _mm256_cmpeq_epi8(cur, lf));
		unsigned m = (unsigned)_mm256_movemask_epi8(ev);
		if (m) {
			*hit = true;
			return j + (size_t)__builtin_ctz(m);
		}
		j += 32;
	}
	return data_blocks16(in, j, len, hit);
}
#endif

static size_t data_blocks_pick(const char *in, size_t j, size_t len, bool *hit);

/* The block scan in use: chosen by the CPU at the first call (or by a test) */
static data_blocks_fn data_blocks = data_blocks_pick;

/* data_blocks_pick - choose the block scan for this CPU, then run it */
static size_t data_blocks_pick(const char *in, size_t j, size_t len, bool *hit)
{
	data_blocks_fn f = data_blocks_sse2;
#ifdef DATA_HAVE_AVX2
	if (data_cpu_avx2())
		f = data_blocks_avx2;
#endif
	__atomic_store_n(&data_blocks, f, __ATOMIC_RELAXED);
	return f(in, j, len, hit);
}
#endif

/* smtp_data_avx2 - tests: use the AVX2 block scan or not */
bool smtp_data_avx2(bool on)
{
#if defined(__SSE2__) && defined(DATA_HAVE_AVX2)
	if (on && !data_cpu_avx2())
		return false;
	__atomic_store_n(&data_blocks, on ? data_blocks_avx2 : data_blocks_sse2, __ATOMIC_RELAXED);
	return true;
#else
	return !on;
#endif
}

/* data_next_event - as data_event_scalar, skipping uneventful blocks */
static inline size_t data_next_event(const char *in, size_t from, size_t len, bool prev_cr)
{
	size_t j = from;

#ifdef __SSE2__
	if (j < len) {
		/* in[from] depends on prev_cr: leave it to the scalar check */
		if (in[j] == '\n')
			return data_event_scalar(in, from, j, len, prev_cr);
		bool hit;
		j = __atomic_load_n(&data_blocks, __ATOMIC_RELAXED)(in, j + 1, len, &hit);
		if (hit)
			return j;
	}
#endif
	return data_event_scalar(in, from, j, len, prev_cr);
}

/* data_scan_raw - BDAT: the whole input is content */
static size_t data_scan_raw(struct smtp_data *d, const char *in, size_t len, struct smtp_data_out *out)
{
	return data_emit(d, out, in, len) ? len : 0;
}

/* smtp_data_scan - scan in[0..len); append body slices to out */
size_t smtp_data_scan(struct smtp_data *d, const char *in, size_t len, struct smtp_data_out *out)
{
	enum data_state st = d->_state;
	size_t i = 0, run = 0;          /* in[run..i) is pending verbatim content */
	enum data_state run_st = st;    /* the state at in[run] */

	if (st == DS_RAW)
		return data_scan_raw(d, in, len, out);
	if (st == DS_DONE)
		return 0;

	while (i < len) {
		switch (st) {
		case DS_BOL:
		case DS_BOL_LF:
			if (in[i] == '.') {
				if (!data_emit(d, out, in + run, i - run))
					goto full;
				i++; /* dot-unstuffing: the first dot goes */
				st = st == DS_BOL ? DS_DOT : DS_TEXT;
				run = i;
				run_st = st;
				continue;
			}
			st = DS_TEXT;
			break;
		case DS_DOT:
			if (in[i] == '\r') {
				/* the run is empty here: the dot began it */
				i++;
				st = DS_DOT_CR;
				run = i;
				run_st = st;
				continue;
			}
			/* ".LF" and ".x": content (an LF here is bare) */
			st = DS_TEXT;
			break;
		case DS_DOT_CR:
			if (in[i] == '\n') {
				/* CRLF "." CRLF (RFC 5321 §4.1.1.4); nothing pending */
				d->_state = DS_DONE;
				d->_done = true;
				return i + 1;
			}
			/* the held CR was content after all ("CRLF.CR x") */
			if (!data_emit(d, out, data_const, 1))
				goto full;
			st = DS_TEXT_CR;
			run_st = st;
			break;
		case DS_TEXT:
		case DS_TEXT_CR:
			break;
		case DS_DONE:
		case DS_RAW:
			goto out; /* unreachable */
		}

		/* Inside a line at in[i]: jump to the next LF that needs work. */
		size_t j = data_next_event(in, i, len, st == DS_TEXT_CR);
		if (j == len) {
			char last = in[len - 1];
			/* no event: the tail ends in a CRLF, a CR or other text */
			st = last == '\n' ? DS_BOL : last == '\r' ? DS_TEXT_CR : DS_TEXT;
			i = len;
			break;
		}
		bool cr = j > i ? in[j - 1] == '\r' : st == DS_TEXT_CR;
		if (cr) {
			/* CRLF followed by a line-start dot */
			i = j + 1;
			st = DS_BOL;
			continue;
		}
		/* A bare LF: emit the line, then a constant CRLF for the LF. */
		if (!data_emit(d, out, in + run, j - run))
			goto full;
		run = j;
		run_st = DS_TEXT; /* a retry sees the LF as bare again */
		if (!data_emit(d, out, data_const, 2))
			goto full;
		d->_normalised++;
		i = run = j + 1;
		st = run_st = DS_BOL_LF;
	}
	if (!data_emit(d, out, in + run, i - run))
		goto full;
out:
	d->_state = (uint8_t)st;
	return i;
full:
	/* resume where the unemitted bytes start, in the state they start in */
	d->_state = (uint8_t)run_st;
	return run;
}
