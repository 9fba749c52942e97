// bench_mailbox.cc - the shard inbox (queue/mailbox.c) against the queue
// everyone writes first: a ring of the same capacity (1024) under one
// pthread mutex with two condition variables (not empty, not full).
//
// BM_mbox/P and BM_mutex_ring/P: P producer threads (started inside each
// iteration) push kItems message references between them; the benchmark's
// own thread is the consumer and pops them all. items_per_second counts
// references handed over per wall-clock second (UseRealTime: the work is
// on several threads); cpu_ns_per_item is the CPU time of all threads per
// item. Both consumers block when there is nothing to take. The inbox's
// consumer behaves as a shard loop would: after an empty pop it checks
// again for about a loop turn (kSpin pauses, a few microseconds), then
// announces its sleep (mbox_sleep_begin) and blocks on an eventfd that a
// producer writes only when mbox_push says MBOX_WAKE. A producer facing a
// full inbox keeps its item and retries after a short sleep (usleep(1),
// some 50 us with the default timer slack: "on its next loop turn"); the
// baseline's producers wait on "not full". Counters: sleeps, rings and
// full are per iteration.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern "C" {
#include "queue/mailbox.h"
}

namespace {

// process_cpu_ns - CPU time of every thread of the process so far
double process_cpu_ns()
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e9 +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e3;
}

// cpu_relax - a spin-wait hint to the core
inline void cpu_relax()
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

constexpr uint32_t kCapacity = 1024;
constexpr uint64_t kItems = 1 << 20; // per iteration, over all producers
constexpr unsigned kSpin = 256; // empty pops before the consumer sleeps

// set_rates - items/s, and the CPU of all threads per item since cpu0 (less
// sensitive than wall time to the other load on a shared machine)
void set_rates(benchmark::State &state, double cpu0)
{
	double items = (double)state.iterations() * (double)kItems;
	state.SetItemsProcessed((int64_t)items);
	state.counters["cpu_ns_per_item"] = (process_cpu_ns() - cpu0) / items;
}

// --- the lock-free inbox ----------------------------------------------------

struct MboxRun {
	struct mbox mb;
	int efd;
	std::atomic<uint64_t> rings{0}, full{0};
};

// mbox_ring - the consumer's doorbell
void mbox_ring(int efd)
{
	uint64_t one = 1;
	if (write(efd, &one, sizeof one) != (ssize_t)sizeof one)
		std::abort();
}

// mbox_producer - push n references; a full inbox is retried a moment later
void mbox_producer(MboxRun *r, uint64_t first, uint64_t n)
{
	for (uint64_t i = first; i < first + n; i++) {
		int rc;
		while ((rc = mbox_push(&r->mb, i)) == RM_AGAIN) {
			r->full.fetch_add(1, std::memory_order_relaxed);
			usleep(1);
		}
		if (rc == MBOX_WAKE) {
			r->rings.fetch_add(1, std::memory_order_relaxed);
			mbox_ring(r->efd);
		}
	}
}

// BM_mbox - P producers, the benchmark thread consuming as a shard would
void BM_mbox(benchmark::State &state)
{
	const unsigned producers = (unsigned)state.range(0);
	static MboxRun r;
	r.rings = 0;
	r.full = 0;
	if (mbox_init(&r.mb, kCapacity) != RM_OK)
		std::abort();
	r.efd = eventfd(0, EFD_CLOEXEC);
	uint64_t sum = 0, sleeps = 0;
	double cpu0 = process_cpu_ns();
	for (auto _ : state) {
		std::vector<std::thread> th;
		for (unsigned p = 0; p < producers; p++)
			th.emplace_back(mbox_producer, &r, p * (kItems / producers), kItems / producers);
		uint64_t got = 0, v;
		unsigned idle = 0;
		while (got < kItems) {
			if (mbox_pop(&r.mb, &v)) {
				sum += v;
				got++;
				idle = 0;
				continue;
			}
			if (++idle < kSpin) {
				cpu_relax();
				continue;
			}
			idle = 0;
			if (mbox_sleep_begin(&r.mb)) {
				sleeps++;
				uint64_t cnt;
				if (read(r.efd, &cnt, sizeof cnt) != (ssize_t)sizeof cnt)
					std::abort();
			}
			mbox_sleep_end(&r.mb);
		}
		for (auto &t : th)
			t.join();
	}
	benchmark::DoNotOptimize(sum);
	set_rates(state, cpu0);
	// per iteration: how often the consumer slept, a producer rang the
	// doorbell, a push found the inbox full
	state.counters["sleeps"] = benchmark::Counter((double)sleeps, benchmark::Counter::kAvgIterations);
	state.counters["rings"] = benchmark::Counter((double)r.rings, benchmark::Counter::kAvgIterations);
	state.counters["full"] = benchmark::Counter((double)r.full, benchmark::Counter::kAvgIterations);
	close(r.efd);
	mbox_free(&r.mb);
}
BENCHMARK(BM_mbox)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

// --- the baseline: mutex + condition variables ------------------------------

struct MutexRing {
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER;
	pthread_cond_t not_full = PTHREAD_COND_INITIALIZER;
	uint64_t buf[kCapacity];
	uint64_t head = 0, tail = 0;
};

// mutex_push - wait for room, append, signal "not empty"
void mutex_push(MutexRing *q, uint64_t v)
{
	pthread_mutex_lock(&q->mu);
	while (q->tail - q->head == kCapacity)
		pthread_cond_wait(&q->not_full, &q->mu);
	q->buf[q->tail++ % kCapacity] = v;
	pthread_cond_signal(&q->not_empty);
	pthread_mutex_unlock(&q->mu);
}

// mutex_pop - wait for an item, take it, signal "not full"
uint64_t mutex_pop(MutexRing *q)
{
	pthread_mutex_lock(&q->mu);
	while (q->tail == q->head)
		pthread_cond_wait(&q->not_empty, &q->mu);
	uint64_t v = q->buf[q->head++ % kCapacity];
	pthread_cond_signal(&q->not_full);
	pthread_mutex_unlock(&q->mu);
	return v;
}

// mutex_producer - push n references
void mutex_producer(MutexRing *q, uint64_t first, uint64_t n)
{
	for (uint64_t i = first; i < first + n; i++)
		mutex_push(q, i);
}

// BM_mutex_ring - P producers, the benchmark thread consuming
void BM_mutex_ring(benchmark::State &state)
{
	const unsigned producers = (unsigned)state.range(0);
	auto *q = new MutexRing;
	uint64_t sum = 0;
	double cpu0 = process_cpu_ns();
	for (auto _ : state) {
		std::vector<std::thread> th;
		for (unsigned p = 0; p < producers; p++)
			th.emplace_back(mutex_producer, q, p * (kItems / producers), kItems / producers);
		for (uint64_t got = 0; got < kItems; got++)
			sum += mutex_pop(q);
		for (auto &t : th)
			t.join();
	}
	benchmark::DoNotOptimize(sum);
	set_rates(state, cpu0);
	delete q;
}
BENCHMARK(BM_mutex_ring)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

} // namespace

BENCHMARK_MAIN();
