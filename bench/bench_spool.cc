// bench_spool.cc - the spool's codec, its checksum, and group commit.
//
// BM_commit_encode / BM_commit_decode: a typical commit record (3
// recipients with NOTIFY and ORCPT, ENVID, a 190-byte Received: header,
// 3 body extents), encoded into a buffer / scanned (CRC checked) and
// decoded into an arena. Items/s are records.
// BM_crc32c / BM_crc32c_tables: CRC32C of N bytes by the path the loader
// picked (SSE4.2 here) and by the slice-by-8 tables. Bytes/s.
// BM_group_commit/B: the POSIX backend on this machine's disk, messages of
// 10 KB (two chunks each) committed B at a time, then spool_run: one
// fdatasync per batch. Items/s are durable messages; B=1 is one fdatasync
// per message. The spool lives in a temporary directory next to the
// binary (the build tree, on the real disk), removed afterwards.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>
#include <vector>

extern "C" {
#include "core/crc32c.h"
#include "queue/spool.h"
}

namespace {

struct spool_rcpt kRcpt[3] = {
	{ SLICE_LIT("rcpt1@sink.test"), 6, SLICE_LIT("rfc822;rcpt1@sink.test") },
	{ SLICE_LIT("rcpt2@sink.test"), 6, SLICE_LIT("rfc822;rcpt2@sink.test") },
	{ SLICE_LIT("rcpt3@sink.test"), 2, SLICE_NULL },
};
struct spool_extent kExt[3] = { { 7, 20, 4096 }, { 7, 4136, 4096 }, { 8, 20, 1808 } };

struct spool_env sample_env()
{
	struct spool_env e;
	std::memset(&e, 0, sizeof e);
	e.id = SLICE_LIT("1HE5J3K0A1B2C005");
	e.arrival_us = 1700000000123456ull;
	e.shard = 1;
	e.tag = 42;
	e.sender = SLICE_LIT("bounce-1234@mail.example.com");
	e.size = 10000;
	e.has_size = true;
	e.body = 2;
	e.ret = 2;
	e.envid = SLICE_LIT("QQ314159");
	e.received = SLICE_LIT("Received: from client.example.com (client.example.com [192.0.2.1])\r\n"
			       "\tby relay.example.net (ringmta) with ESMTPS id 1HE5J3K0A1B2C005\r\n"
			       "\tfor <rcpt1@sink.test>; Sat, 28 Nov 2026 15:41:00 +0000\r\n");
	e.rcpt = kRcpt;
	e.nrcpt = 3;
	e.ext = kExt;
	e.next = 3;
	return e;
}

void BM_commit_encode(benchmark::State &state)
{
	struct spool_env e = sample_env();
	char mem[4096];
	for (auto _ : state) {
		struct buf b;
		buf_init(&b, mem, sizeof mem);
		if (spool_rec_commit_encode(&b, &e) != RM_OK)
			std::abort();
		benchmark::DoNotOptimize(mem);
	}
	state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_commit_encode);

void BM_commit_decode(benchmark::State &state)
{
	struct spool_env e = sample_env(), out;
	char mem[4096];
	struct buf b;
	struct arena a;
	buf_init(&b, mem, sizeof mem);
	if (spool_rec_commit_encode(&b, &e) != RM_OK)
		std::abort();
	arena_init(&a, &rm_alloc_libc, 4096, 1 << 20);
	for (auto _ : state) {
		struct spool_rec r;
		size_t used;
		if (spool_rec_next(mem, b.len, &r, &used) != SPOOL_SCAN_OK ||
		    spool_rec_commit_decode(r.payload, &a, &out) != RM_OK)
			std::abort();
		benchmark::DoNotOptimize(out);
		arena_reset(&a);
	}
	arena_free(&a);
	state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_commit_decode);

void BM_crc32c(benchmark::State &state)
{
	std::vector<char> buf(size_t(state.range(0)), 'x');
	for (auto _ : state)
		benchmark::DoNotOptimize(crc32c(buf.data(), buf.size()));
	state.SetBytesProcessed(int64_t(state.iterations()) * state.range(0));
}
BENCHMARK(BM_crc32c)->Arg(64)->Arg(4096)->Arg(65536);

void BM_crc32c_tables(benchmark::State &state)
{
	std::vector<char> buf(size_t(state.range(0)), 'x');
	for (auto _ : state)
		benchmark::DoNotOptimize(crc32c_sw(0, buf.data(), buf.size()));
	state.SetBytesProcessed(int64_t(state.iterations()) * state.range(0));
}
BENCHMARK(BM_crc32c_tables)->Arg(64)->Arg(4096)->Arg(65536);

int rm_entry(void *arg, const char *name)
{
	auto *px = static_cast<struct spool_posix *>(arg);
	return px->io.unlink(px->io.ctx, name);
}

void BM_group_commit(benchmark::State &state)
{
	const int batch = int(state.range(0));
	char tmpl[] = "spool-bench-XXXXXX";
	std::string dir;
	struct spool_posix px;
	struct spool *sp = nullptr;
	struct spool_cfg cfg = {};
	std::vector<char> body(10240);
	struct spool_env e = sample_env();

	for (size_t i = 0; i < body.size(); i++)
		body[i] = char('a' + i % 26);
	if (!mkdtemp(tmpl))
		std::abort();
	dir = std::string(tmpl) + "/q";
	if (spool_posix_open(&px, dir.c_str()) != RM_OK)
		std::abort();
	cfg.io = &px.io;
	cfg.shard = 0;
	if (spool_open(&sp, &cfg, nullptr) != RM_OK)
		std::abort();
	struct slice half[2] = { slice_make(body.data(), 5120), slice_make(body.data() + 5120, 5120) };
	int64_t msgs = 0;
	for (auto _ : state) {
		for (int i = 0; i < batch; i++) {
			struct spool_tx *tx = spool_tx_begin(sp, nullptr);
			if (!tx || spool_tx_append(sp, tx, &half[0], 1) != RM_OK ||
			    spool_tx_append(sp, tx, &half[1], 1) != RM_OK ||
			    spool_tx_commit(sp, tx, &e) != RM_OK)
				std::abort();
		}
		spool_run(sp);
		struct spool_done d;
		while (spool_done_next(sp, &d))
			if (d.status != RM_OK)
				std::abort();
		msgs += batch;
	}
	struct spool_stats st;
	spool_stats(sp, &st);
	state.counters["syncs_per_msg"] = double(st.syncs) / double(msgs ? msgs : 1);
	state.SetItemsProcessed(msgs);
	sp = spool_close(sp);
	px.io.list(px.io.ctx, rm_entry, &px);
	spool_posix_close(&px);
	rmdir(dir.c_str());
	rmdir(tmpl);
}
// Fixed message counts keep the disk use bounded (about 100 MB a run).
BENCHMARK(BM_group_commit)->Arg(1)->Iterations(3000)->UseRealTime();
BENCHMARK(BM_group_commit)->Arg(50)->Iterations(200)->UseRealTime();

} // namespace

BENCHMARK_MAIN();
