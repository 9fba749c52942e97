/* spool_rec.c - encoding and validating spool records.
 *
 * Pure; any thread. Invariant: a record spool_rec_next accepts has a known
 * type, a payload within SPOOL_REC_MAX and the input, and a matching CRC;
 * the payload decoders accept a payload only if it is consumed exactly.
 */
#include "queue/spool_rec.h"

#include <string.h>

#include "core/crc32c.h"
#include "core/smtp_addr.h"
#include "queue/msgid.h"

/* Little-endian stores and loads. */
static void rec_st16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void rec_st32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void rec_st64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint16_t rec_ld16(const unsigned char *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t rec_ld32(const unsigned char *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

static uint64_t rec_ld64(const unsigned char *p)
{
	return (uint64_t)rec_ld32(p) | ((uint64_t)rec_ld32(p + 4) << 32);
}

/* rec_hdr_fill - the header fields but the CRC */
static void rec_hdr_fill(unsigned char *h, enum spool_rec_type type, uint32_t len, uint64_t tag)
{
	rec_st16(h, SPOOL_REC_MAGIC);
	h[2] = (unsigned char)type;
	h[3] = SPOOL_REC_VERSION;
	rec_st32(h + 4, len);
	rec_st64(h + 8, tag);
}

/* spool_rec_next - the record at the start of p[0..n) */
enum spool_rec_scan spool_rec_next(const char *p, size_t n, struct spool_rec *out, size_t *used)
{
	const unsigned char *h = (const unsigned char *)p;
	uint32_t len, crc;

	*used = SPOOL_REC_HDR;
	if (n < 4) {
		/* judge what is there: a wrong first byte is garbage already */
		if ((n >= 1 && h[0] != (SPOOL_REC_MAGIC & 0xff)) ||
		    (n >= 2 && rec_ld16(h) != SPOOL_REC_MAGIC) ||
		    (n >= 3 && (h[2] < SPOOL_REC_CHUNK || h[2] > SPOOL_REC_JOURNAL)))
			return SPOOL_SCAN_BAD;
		return SPOOL_SCAN_SHORT;
	}
	if (rec_ld16(h) != SPOOL_REC_MAGIC || h[2] < SPOOL_REC_CHUNK || h[2] > SPOOL_REC_JOURNAL ||
	    h[3] != SPOOL_REC_VERSION)
		return SPOOL_SCAN_BAD;
	if (n < 8)
		return SPOOL_SCAN_SHORT;
	len = rec_ld32(h + 4);
	if (len > SPOOL_REC_MAX)
		return SPOOL_SCAN_BAD;
	if (n < SPOOL_REC_HDR)
		return SPOOL_SCAN_SHORT;
	*used = SPOOL_REC_HDR + (size_t)len;
	if (n < *used)
		return SPOOL_SCAN_SHORT;
	crc = crc32c_extend(crc32c(h, 16), h + SPOOL_REC_HDR, len);
	if (crc != rec_ld32(h + 16))
		return SPOOL_SCAN_BAD;
	out->type = (enum spool_rec_type)h[2];
	out->tag = rec_ld64(h + 8);
	out->payload = slice_make(p + SPOOL_REC_HDR, len);
	return SPOOL_SCAN_OK;
}

/* spool_rec_chunk_hdr - the header of a chunk record over v[0..nv) */
void spool_rec_chunk_hdr(char hdr[SPOOL_REC_HDR], uint64_t tag, const struct slice *v, size_t nv)
{
	unsigned char *h = (unsigned char *)hdr;
	size_t len = 0;
	uint32_t crc;

	for (size_t i = 0; i < nv; i++)
		len += v[i].len;
	rec_hdr_fill(h, SPOOL_REC_CHUNK, (uint32_t)len, tag);
	crc = crc32c(h, 16);
	for (size_t i = 0; i < nv; i++)
		crc = crc32c_extend(crc, v[i].ptr, v[i].len);
	rec_st32(h + 16, crc);
}

/* rec_seal - write the header before payload[0..len) already in place */
static void rec_seal(unsigned char *h, enum spool_rec_type type, uint32_t len, uint64_t tag)
{
	rec_hdr_fill(h, type, len, tag);
	rec_st32(h + 16, crc32c_extend(crc32c(h, 16), h + SPOOL_REC_HDR, len));
}

/* A bounds-checked writer into reserved room. */
struct rec_w {
	unsigned char *p;
};

static void w_u8(struct rec_w *w, unsigned v)
{
	*w->p++ = (unsigned char)v;
}

static void w_u32(struct rec_w *w, uint32_t v)
{
	rec_st32(w->p, v);
	w->p += 4;
}

static void w_u64(struct rec_w *w, uint64_t v)
{
	rec_st64(w->p, v);
	w->p += 8;
}

/* w_str - a u16 length and the bytes */
static void w_str(struct rec_w *w, struct slice s)
{
	rec_st16(w->p, (uint16_t)s.len);
	w->p += 2;
	if (s.len)
		memcpy(w->p, s.ptr, s.len);
	w->p += s.len;
}

/* w_lstr - a u32 length and the bytes */
static void w_lstr(struct rec_w *w, struct slice s)
{
	w_u32(w, (uint32_t)s.len);
	if (s.len)
		memcpy(w->p, s.ptr, s.len);
	w->p += s.len;
}

/* w_start - the record's place at the end of out (room checked by the
 * caller); the payload begins with the u8-prefixed queue ID */
static unsigned char *w_start(struct rec_w *w, struct buf *out, struct slice id)
{
	unsigned char *h = (unsigned char *)out->ptr + out->len;

	w->p = h + SPOOL_REC_HDR;
	w_u8(w, (unsigned)id.len);
	if (id.len)
		memcpy(w->p, id.ptr, id.len);
	w->p += id.len;
	return h;
}

/* A bounds-checked reader; any overrun sets bad and yields zeros. */
struct rec_r {
	const unsigned char *p, *end;
	bool bad;
};

static const unsigned char *r_take(struct rec_r *r, size_t n)
{
	const unsigned char *q = r->p;
	if (r->bad || (size_t)(r->end - r->p) < n) {
		r->bad = true;
		return NULL;
	}
	r->p += n;
	return q;
}

static unsigned r_u8(struct rec_r *r)
{
	const unsigned char *q = r_take(r, 1);
	return q ? q[0] : 0;
}

static uint32_t r_u32(struct rec_r *r)
{
	const unsigned char *q = r_take(r, 4);
	return q ? rec_ld32(q) : 0;
}

static uint64_t r_u64(struct rec_r *r)
{
	const unsigned char *q = r_take(r, 8);
	return q ? rec_ld64(q) : 0;
}

static struct slice r_bytes(struct rec_r *r, size_t n)
{
	const unsigned char *q = r_take(r, n);
	return q ? slice_make((const char *)q, n) : SLICE_NULL;
}

static struct slice r_str(struct rec_r *r)
{
	const unsigned char *q = r_take(r, 2);
	return q ? r_bytes(r, rec_ld16(q)) : SLICE_NULL;
}

static struct slice r_lstr(struct rec_r *r)
{
	return r_bytes(r, r_u32(r));
}

/* Fixed parts of the commit payload. */
#define COMMIT_FIXED (1 + 8 + 4 + 8 + 8 + 1 + 1 + 1 + 2 + 2 + 2 + 4 + 4 + 4)
#define RCPT_FIXED (2 + 1 + 2)
#define EXT_SIZE (4 + 8 + 4)
#define COMMIT_HAS_SIZE 0x1u
#define COMMIT_SMTPUTF8 0x2u

/* commit_payload_size - the payload bytes of e, or 0 if e cannot be stored */
static size_t commit_payload_size(const struct spool_env *e)
{
	size_t n = COMMIT_FIXED + e->id.len + e->sender.len + e->envid.len + e->auth.len +
		   e->received.len;

	if (e->id.len > 255 || e->sender.len > 0xffff || e->envid.len > 0xffff ||
	    e->auth.len > 0xffff || e->received.len > SPOOL_REC_MAX || e->nrcpt == 0 ||
	    e->nrcpt > SPOOL_REC_RCPT_MAX || e->next > SPOOL_REC_EXT_MAX)
		return 0;
	for (uint32_t i = 0; i < e->nrcpt; i++) {
		if (e->rcpt[i].addr.len > 0xffff || e->rcpt[i].orcpt.len > 0xffff)
			return 0;
		n += RCPT_FIXED + e->rcpt[i].addr.len + e->rcpt[i].orcpt.len;
	}
	n += (size_t)e->next * EXT_SIZE;
	return n > SPOOL_REC_MAX ? 0 : n;
}

/* spool_rec_commit_size - the bytes spool_rec_commit_encode would append */
size_t spool_rec_commit_size(const struct spool_env *e)
{
	size_t n = commit_payload_size(e);
	return n ? SPOOL_REC_HDR + n : 0;
}

/* spool_env_body_len - the sum of the extents */
uint64_t spool_env_body_len(const struct spool_env *e)
{
	uint64_t n = 0;
	for (uint32_t i = 0; i < e->next; i++)
		n += e->ext[i].len;
	return n;
}

/* spool_rec_commit_encode - append a COMMIT record for e */
int spool_rec_commit_encode(struct buf *out, const struct spool_env *e)
{
	size_t plen = commit_payload_size(e);
	struct rec_w w;
	unsigned char *h;

	if (plen == 0)
		return RM_ELIMIT;
	if (e->body > SMTP_BODY_BINARYMIME || e->ret > SMTP_RET_HDRS)
		return RM_EINVAL;
	if (buf_room(out) < SPOOL_REC_HDR + plen)
		return RM_ENOMEM;
	h = w_start(&w, out, e->id);
	w_u64(&w, e->arrival_us);
	w_u32(&w, e->shard);
	w_u64(&w, e->tag);
	w_u64(&w, e->size);
	w_u8(&w, (e->has_size ? COMMIT_HAS_SIZE : 0) | (e->smtputf8 ? COMMIT_SMTPUTF8 : 0));
	w_u8(&w, e->body);
	w_u8(&w, e->ret);
	w_str(&w, e->sender);
	w_str(&w, e->envid);
	w_str(&w, e->auth);
	w_lstr(&w, e->received);
	w_u32(&w, e->nrcpt);
	for (uint32_t i = 0; i < e->nrcpt; i++) {
		w_str(&w, e->rcpt[i].addr);
		w_u8(&w, e->rcpt[i].notify & 0xf);
		w_str(&w, e->rcpt[i].orcpt);
	}
	w_u32(&w, e->next);
	for (uint32_t i = 0; i < e->next; i++) {
		w_u32(&w, e->ext[i].seg);
		w_u64(&w, e->ext[i].off);
		w_u32(&w, e->ext[i].len);
	}
	rec_seal(h, SPOOL_REC_COMMIT, (uint32_t)plen, 0);
	out->len += SPOOL_REC_HDR + plen;
	return RM_OK;
}

/* spool_rec_commit_decode - a COMMIT payload into *out */
int spool_rec_commit_decode(struct slice payload, struct arena *a, struct spool_env *out)
{
	struct rec_r r = { (const unsigned char *)payload.ptr,
			   (const unsigned char *)payload.ptr + payload.len, false };
	unsigned flags;

	memset(out, 0, sizeof *out);
	out->id = r_bytes(&r, r_u8(&r));
	out->arrival_us = r_u64(&r);
	out->shard = r_u32(&r);
	out->tag = r_u64(&r);
	out->size = r_u64(&r);
	flags = r_u8(&r);
	out->has_size = flags & COMMIT_HAS_SIZE;
	out->smtputf8 = flags & COMMIT_SMTPUTF8;
	out->body = (uint8_t)r_u8(&r);
	out->ret = (uint8_t)r_u8(&r);
	out->sender = r_str(&r);
	out->envid = r_str(&r);
	out->auth = r_str(&r);
	out->received = r_lstr(&r);
	out->nrcpt = r_u32(&r);
	if (r.bad || (flags & ~(COMMIT_HAS_SIZE | COMMIT_SMTPUTF8)) ||
	    out->body > SMTP_BODY_BINARYMIME || out->ret > SMTP_RET_HDRS ||
	    !msgid_parse(out->id, NULL) || out->nrcpt == 0 || out->nrcpt > SPOOL_REC_RCPT_MAX ||
	    (size_t)(r.end - r.p) / RCPT_FIXED < out->nrcpt)
		return RM_EPROTO;
	out->rcpt = arena_alloc(a, sizeof *out->rcpt * out->nrcpt);
	if (!out->rcpt)
		return RM_ENOMEM;
	for (uint32_t i = 0; i < out->nrcpt; i++) {
		out->rcpt[i].addr = r_str(&r);
		out->rcpt[i].notify = r_u8(&r);
		out->rcpt[i].orcpt = r_str(&r);
		if (out->rcpt[i].notify > 0xf)
			r.bad = true;
	}
	out->next = r_u32(&r);
	if (r.bad || out->next > SPOOL_REC_EXT_MAX ||
	    (size_t)(r.end - r.p) != (size_t)out->next * EXT_SIZE)
		return RM_EPROTO;
	if (out->next) {
		out->ext = arena_alloc(a, sizeof *out->ext * out->next);
		if (!out->ext)
			return RM_ENOMEM;
	}
	for (uint32_t i = 0; i < out->next; i++) {
		out->ext[i].seg = r_u32(&r);
		out->ext[i].off = r_u64(&r);
		out->ext[i].len = r_u32(&r);
		if (out->ext[i].off > UINT64_MAX / 2)
			return RM_EPROTO;
	}
	return (r.bad || r.p != r.end) ? RM_EPROTO : RM_OK;
}

#define JOURNAL_FIXED (1 + 4 + 1 + 8 + 4 + 2)

/* spool_rec_journal_encode - append a whole JOURNAL record */
int spool_rec_journal_encode(struct buf *out, const struct spool_jrec *j)
{
	size_t plen = JOURNAL_FIXED + j->id.len + j->reply.len;
	struct rec_w w;
	unsigned char *h;

	if (j->id.len > 255 || j->reply.len > 0xffff)
		return RM_ELIMIT;
	if (j->outcome < SPOOL_OUT_DEFERRED || j->outcome > SPOOL_OUT_DELETED)
		return RM_EINVAL;
	if (buf_room(out) < SPOOL_REC_HDR + plen)
		return RM_ENOMEM;
	h = w_start(&w, out, j->id);
	w_u32(&w, j->rcpt);
	w_u8(&w, j->outcome);
	w_u64(&w, j->next_attempt_us);
	w_u32(&w, j->attempts);
	w_str(&w, j->reply);
	rec_seal(h, SPOOL_REC_JOURNAL, (uint32_t)plen, 0);
	out->len += SPOOL_REC_HDR + plen;
	return RM_OK;
}

/* spool_rec_journal_decode - a JOURNAL payload */
int spool_rec_journal_decode(struct slice payload, struct spool_jrec *out)
{
	struct rec_r r = { (const unsigned char *)payload.ptr,
			   (const unsigned char *)payload.ptr + payload.len, false };
	unsigned oc;

	memset(out, 0, sizeof *out);
	out->id = r_bytes(&r, r_u8(&r));
	out->rcpt = r_u32(&r);
	oc = r_u8(&r);
	out->next_attempt_us = r_u64(&r);
	out->attempts = r_u32(&r);
	out->reply = r_str(&r);
	if (r.bad || r.p != r.end || oc < SPOOL_OUT_DEFERRED || oc > SPOOL_OUT_DELETED ||
	    !msgid_parse(out->id, NULL))
		return RM_EPROTO;
	out->outcome = (enum spool_outcome)oc;
	return RM_OK;
}
