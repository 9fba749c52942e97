/* mailbox.c - a bounded MPSC ring with per-slot sequence numbers and a
 * sleeping flag for doorbells (the design is in mailbox.h).
 *
 * Invariants: _head <= _tail <= _head + capacity (as positions, modulo
 * 2^64, which no run reaches); slot (pos & _mask) has seq == pos while
 * position pos is free to claim, seq == pos + 1 while it holds pos's item,
 * and the consumer stores pos + capacity when it takes it. _sleeping is 1
 * only between a consumer's mbox_sleep_begin and the first of its
 * mbox_sleep_end or a producer swapping it to 0.
 *
 * Memory ordering, each acquire with the release it pairs with:
 *   A. push loads slot.seq (acquire) == pos  pairs with  pop's store of
 *      seq = head + capacity (release): the consumer's read of the old item
 *      happens before the producer overwrites it.
 *   B. pop loads slot.seq (acquire) == head + 1  pairs with  push's store of
 *      seq = pos + 1 (seq_cst, so also release): the item written by the
 *      producer is visible to the consumer.
 *   C. The tail CAS is relaxed: it only decides which producer owns a
 *      position; no data is passed through it (A and B carry the data).
 *   D. Dekker pair, all seq_cst: the consumer's store _sleeping = 1 then
 *      load of the head slot's seq (mbox_sleep_begin), against the
 *      producer's publishing store of seq then load of _sleeping
 *      (mbox_push). seq_cst operations, not standalone fences, because
 *      ThreadSanitizer does not model atomic_thread_fence.
 *   E. The swap of _sleeping 1 -> 0 and the consumer's store of 0 are
 *      relaxed: they only choose who rings; the doorbell itself (a syscall
 *      or a ring message) orders the wake-up, and B orders the item.
 *
 * Threads: see mailbox.h. Panics on nothing; bad capacities are RM_EINVAL.
 */
#include "queue/mailbox.h"

#include <stdlib.h>

/* mbox_init - an empty mailbox of at least capacity slots */
int mbox_init(struct mbox *mb, uint32_t capacity)
{
	if (capacity == 0 || capacity > MBOX_CAPACITY_MAX)
		return RM_EINVAL;
	/* Capacity 1 would make "free for pos + 1" equal "full at pos". */
	uint64_t cap = 2;
	while (cap < capacity)
		cap <<= 1;
	/* aligned_alloc wants a multiple of the alignment: a slot is a line */
	_Static_assert(sizeof(struct mbox_slot) == MBOX_CACHELINE, "slot size");
	size_t bytes = (size_t)cap * sizeof(struct mbox_slot);
	struct mbox_slot *s = aligned_alloc(MBOX_CACHELINE, bytes);
	if (!s)
		return RM_ENOMEM;
	for (uint64_t i = 0; i < cap; i++) {
		atomic_init(&s[i]._seq, i);
		s[i]._ref = 0;
	}
	atomic_init(&mb->_tail, 0);
	mb->_head = 0;
	mb->_slots = s;
	mb->_mask = cap - 1;
	atomic_init(&mb->_sleeping, 0);
	return RM_OK;
}

/* mbox_free - release the slots */
void mbox_free(struct mbox *mb)
{
	free(mb->_slots);
	mb->_slots = NULL;
}

/* mbox_capacity - the number of slots */
uint32_t mbox_capacity(const struct mbox *mb)
{
	return (uint32_t)(mb->_mask + 1);
}

/* mbox_push - claim a position, write ref, publish it, say whether to wake */
int mbox_push(struct mbox *mb, uint64_t ref)
{
	uint64_t pos = atomic_load_explicit(&mb->_tail, memory_order_relaxed);
	struct mbox_slot *s;
	for (;;) {
		s = &mb->_slots[pos & mb->_mask];
		uint64_t seq = atomic_load_explicit(&s->_seq, memory_order_acquire); /* A */
		int64_t diff = (int64_t)(seq - pos);
		if (diff == 0) {
			/* C: on failure pos is reloaded with the winner's value. */
			if (atomic_compare_exchange_weak_explicit(&mb->_tail, &pos, pos + 1,
								  memory_order_relaxed,
								  memory_order_relaxed))
				break;
		} else if (diff < 0) {
			return RM_AGAIN; /* the slot still holds pos - capacity's item */
		} else {
			/* another producer took pos already; catch up */
			pos = atomic_load_explicit(&mb->_tail, memory_order_relaxed);
		}
	}
	s->_ref = ref;
	atomic_store_explicit(&s->_seq, pos + 1, memory_order_seq_cst); /* B, D */
	if (!atomic_load_explicit(&mb->_sleeping, memory_order_seq_cst)) /* D */
		return RM_OK;
	/* E: of all producers that saw the flag, one rings. */
	if (atomic_exchange_explicit(&mb->_sleeping, 0, memory_order_relaxed))
		return MBOX_WAKE;
	return RM_OK;
}

/* mbox_pop - take the item at the head if it is published */
bool mbox_pop(struct mbox *mb, uint64_t *ref)
{
	uint64_t head = mb->_head;
	struct mbox_slot *s = &mb->_slots[head & mb->_mask];
	if (atomic_load_explicit(&s->_seq, memory_order_acquire) != head + 1) /* B */
		return false;
	*ref = s->_ref;
	atomic_store_explicit(&s->_seq, head + mb->_mask + 1, memory_order_release); /* A */
	mb->_head = head + 1;
	return true;
}

/* mbox_sleep_begin - publish the flag, then look at the head slot once more */
bool mbox_sleep_begin(struct mbox *mb)
{
	uint64_t head = mb->_head;
	struct mbox_slot *s = &mb->_slots[head & mb->_mask];
	atomic_store_explicit(&mb->_sleeping, 1, memory_order_seq_cst); /* D */
	if (atomic_load_explicit(&s->_seq, memory_order_seq_cst) == head + 1) { /* D */
		atomic_store_explicit(&mb->_sleeping, 0, memory_order_relaxed); /* E */
		return false;
	}
	return true;
}

/* mbox_sleep_end - clear the flag so producers stop ringing */
void mbox_sleep_end(struct mbox *mb)
{
	atomic_store_explicit(&mb->_sleeping, 0, memory_order_relaxed); /* E */
}
