/* mailbox.h - the lock-free inbox of a shard: many shards push message
 * references into it, the owning shard pops them (MPSC).
 *
 * Design: a bounded ring of slots, each with a sequence number (after
 * Dmitry Vyukov's bounded queue, specialised to one consumer). Slot i of
 * capacity C serves positions i, i + C, i + 2C, ... Its sequence says
 * whose turn it is:
 *   seq == pos        free for the producer that claims position pos
 *   seq == pos + 1    holds the item of position pos, ready to pop
 * Producers claim a position with a compare-and-swap on a shared tail
 * counter, write the item, then publish it by storing seq = pos + 1. The
 * consumer alone owns the head: it pops position head when its slot says
 * head + 1, and frees the slot for the next lap by storing head + C.
 * No mutex, no allocation after mbox_init. Push is lock-free (a producer
 * retries its CAS only when another producer won it), pop is wait-free.
 *
 * Why bounded and not an intrusive linked list: a bound is a limit (STYLE
 * 10), items need no embedded node (a reference may be an id, not only a
 * pointer), nothing is allocated per item, and "full" is a clear signal
 * where an unbounded list would grow without end behind a stuck shard.
 *
 * Why one MPSC inbox per shard and not an SPSC ring per pair of shards: an
 * SPSC push would save only the tail CAS (the seq_cst store of the wake-up
 * handshake stays), while the consumer would have to scan N - 1 rings per
 * loop turn and keep N - 1 sleeping flags; one inbox keeps the consumer's
 * work and the doorbell logic independent of the number of shards.
 *
 * Full: mbox_push returns RM_AGAIN and the item stays with the producer,
 * which keeps it (in its own local list) and retries on its next loop
 * turn. A full inbox is the receiving shard's back-pressure. Nothing tells
 * a producer when room appears, so a shard holding kept items must not
 * block without a timeout (a short timer, or keep the work locally).
 *
 * In the middle of a push: a producer that has claimed position p but not
 * yet published it blocks the consumer at p (FIFO), even if later positions
 * are already published. mbox_pop then says "nothing" and the consumer may
 * go to sleep: that producer will see the sleeping flag when it publishes
 * (below) and ask for the wake-up. Nothing is lost, nothing is popped early.
 *
 * Wake-up ("doorbell") protocol. The consumer's shard loop, per turn:
 *   while (mbox_pop(mb, &ref)) handle(ref);
 *   ... other work ...
 *   if (mbox_sleep_begin(mb))      flag published, inbox seen empty
 *       block in io_uring_wait / read(eventfd)
 *   mbox_sleep_end(mb);            (also when it did not block)
 * A producer:
 *   r = mbox_push(mb, ref);
 *   if (r == MBOX_WAKE) ring the consumer's doorbell (MSG_RING or eventfd)
 *   if (r == RM_AGAIN)  keep ref, retry next turn
 * The flag is a Dekker handshake: the consumer stores "sleeping" then loads
 * the head slot; a producer stores the slot's sequence then loads the flag;
 * all four are seq_cst, so in their single total order at least one side
 * sees the other's store. Either the consumer sees the item and does not
 * sleep, or the producer sees the flag and rings. A wake-up is never lost.
 * Only the producer that swaps the flag from 1 to 0 gets MBOX_WAKE, so one
 * sleep costs at most one doorbell. A doorbell may be spurious (the consumer
 * saw the item anyway, or woke for other I/O): the loop just finds nothing.
 *
 * Threads: mbox_init/mbox_free while no other thread uses the mailbox;
 * mbox_push from any number of threads; mbox_pop, mbox_sleep_begin and
 * mbox_sleep_end from one consumer thread only.
 */
#ifndef RINGMTA_QUEUE_MAILBOX_H
#define RINGMTA_QUEUE_MAILBOX_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"

#ifdef __cplusplus
/* C++ (the benchmarks) only passes a struct mbox to the functions below;
 * on x86-64 and aarch64 an _Atomic integer has its plain type's size and
 * alignment, so the layout is the same. */
#define MBOX_ATOMIC(T) T
#else
#include <stdatomic.h>
#define MBOX_ATOMIC(T) _Atomic(T)
#endif

#define MBOX_CACHELINE 64
/* mbox_push's "pushed, and the consumer may be asleep: ring its doorbell" */
#define MBOX_WAKE 1
#define MBOX_CAPACITY_MAX (1u << 24)

/* One position's cell: the sequence that says whose turn it is, the item.
 * A cache line each: neighbouring positions belong to different producers
 * and to the consumer at once, and sharing a line would make every handoff
 * bounce it between cores (1024 slots cost 64 KiB). Private to the module
 * (and its white-box test). */
struct mbox_slot {
	MBOX_ATOMIC(uint64_t) _seq;
	uint64_t _ref;
	char _pad[MBOX_CACHELINE - 16];
};

/* A mailbox. The fields both sides only read, the producers' counter, the
 * consumer's head and the flag are kept 64 bytes apart (padding, not
 * alignas, so that a struct mbox may sit in malloc'd memory of ordinary
 * alignment): the sides do not invalidate each other's cache lines except
 * through the slots they hand over. (_slots and _mask once shared the
 * consumer's line, so every pop's store of _head took from the producers
 * the line each push reads first.) */
struct mbox {
	char _pad0[MBOX_CACHELINE];
	struct mbox_slot *_slots; /* read-only after mbox_init */
	uint64_t _mask; /* capacity - 1; read-only after mbox_init */
	char _pad1[MBOX_CACHELINE];
	MBOX_ATOMIC(uint64_t) _tail; /* next position to claim (producers) */
	char _pad2[MBOX_CACHELINE];
	uint64_t _head; /* next position to pop (consumer) */
	char _pad3[MBOX_CACHELINE];
	MBOX_ATOMIC(unsigned) _sleeping; /* 1: the consumer may block */
	char _pad4[MBOX_CACHELINE];
};

/* mbox_init - an empty mailbox of at least capacity slots (rounded up to a
 * power of two, at least 2, at most MBOX_CAPACITY_MAX); RM_EINVAL or
 * RM_ENOMEM on failure */
RM_MUST_USE int mbox_init(struct mbox *mb, uint32_t capacity);

/* mbox_free - release the slots; items still inside are dropped */
void mbox_free(struct mbox *mb);

/* mbox_capacity - the number of slots */
uint32_t mbox_capacity(const struct mbox *mb);

/* mbox_push - append ref (a message reference: an id, or a pointer as
 * uintptr_t). RM_OK: queued. MBOX_WAKE: queued, and the caller must ring
 * the consumer's doorbell. RM_AGAIN: full, nothing queued; keep ref and
 * retry later. Any thread. */
RM_MUST_USE int mbox_push(struct mbox *mb, uint64_t ref);

/* mbox_pop - take the oldest ref into *ref; false when there is none ready
 * (empty, or its producer is in the middle of its push). Consumer only. */
RM_MUST_USE bool mbox_pop(struct mbox *mb, uint64_t *ref);

/* mbox_sleep_begin - announce that the consumer is about to block. true: the
 * inbox is empty and any later push returns MBOX_WAKE to one producer, so
 * blocking is safe. false: items are waiting; do not block. Either way,
 * call mbox_sleep_end afterwards. Consumer only. */
RM_MUST_USE bool mbox_sleep_begin(struct mbox *mb);

/* mbox_sleep_end - the consumer is awake again: producers stop ringing.
 * Consumer only. */
void mbox_sleep_end(struct mbox *mb);

#endif
