// bench_bounce.cc - building a delivery report (queue/bounce.h).
//
// The original is a 10 KB (or 1 MB) message of 78-octet CRLF lines, the
// shape most mail has, in one slice or in 16 KiB pieces (one spool extent
// read each); one failed recipient. Bytes/s counts the original's bytes.
// RET=FULL walks the whole original (line ends, long lines, the boundary
// check), RET=HDRS only its header.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <string>
#include <vector>

#include "bench/bench_msg.h"

extern "C" {
#include "core/arena.h"
#include "queue/bounce.h"
}

namespace {

std::string make_orig(size_t size)
{
	std::string b = bench_header();
	for (unsigned line = 0; b.size() + 78 <= size; line++) {
		std::string l;
		while (l.size() < 76)
			l += static_cast<char>('a' + (l.size() * 7 + line) % 26);
		b += l + "\r\n";
	}
	return b;
}

void BM_bounce_build(benchmark::State &state)
{
	const std::string orig = make_orig(static_cast<size_t>(state.range(0)));
	const size_t piece = static_cast<size_t>(state.range(1));
	const bool hdrs = state.range(2) != 0;
	std::vector<struct slice> v;
	for (size_t pos = 0; pos < orig.size(); pos += piece)
		v.push_back(slice_make(orig.data() + pos, std::min(piece, orig.size() - pos)));
	struct bounce_rcpt r = {};
	r.addr = SLICE_LIT("bob@remote.test");
	r.action = BOUNCE_FAILED;
	r.status = SLICE_LIT("5.1.1");
	r.remote_mta = SLICE_LIT("mx.remote.test");
	r.diag = SLICE_LIT("550 5.1.1 <bob@remote.test>: user unknown");
	r.last_attempt = SLICE_LIT("Sat, 28 Nov 2026 15:00:01 +0000");
	struct bounce_msg m = {};
	m.hostname = SLICE_LIT("mx.test");
	m.sender = SLICE_LIT("sender@example.com");
	m.ret = hdrs ? SMTP_RET_HDRS : SMTP_RET_FULL;
	m.arrival_us = 1800000000000000ull;
	m.arrival_date = SLICE_LIT("Sat, 28 Nov 2026 15:00:00 +0000");
	m.date = SLICE_LIT("Sat, 28 Nov 2026 15:00:02 +0000");
	m.token = SLICE_LIT("0QX7Z3K5A0000001");
	m.orig = v.data();
	m.norig = v.size();
	m.full_limit = 1 << 21;
	m.rcpt = &r;
	m.nrcpt = 1;
	struct arena a;
	arena_init(&a, &rm_alloc_libc, 1 << 16, 1 << 24);
	for (auto _ : state) {
		struct bounce_out o;
		arena_reset(&a);
		if (bounce_build(&m, &a, &o) != RM_OK) {
			state.SkipWithError("bounce_build failed");
			break;
		}
		benchmark::DoNotOptimize(o.len);
	}
	arena_free(&a);
	state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(orig.size()));
}

} // namespace

// {original size, piece size, RET=HDRS}
BENCHMARK(BM_bounce_build)->Args({10240, 1 << 20, 0})->Args({10240, 16384, 0})->Args({10240, 1 << 20, 1})
	->Args({1 << 20, 16384, 0});

BENCHMARK_MAIN();
