// bench_smtp_data.cc - DATA/BDAT body scanner throughput.
//
// Bodies are realistic: a dozen header lines (two Received:), an empty line,
// then 78-octet lines (76 text octets and CRLF, RFC 5322's recommended
// width), one line in 40 starting with a stuffed dot, and the terminating
// ".CRLF". Bytes/s counts the input scanned. Cases: the body in one buffer,
// the body in 16 KiB pieces (one receive buffer each), the BDAT raw mode,
// and a memchr walk over the lines as a floor to compare with.
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>

#include "bench/bench_msg.h"

extern "C" {
#include "core/smtp_data.h"
}

namespace {

// make_body - about size bytes of realistic dot-stuffed DATA body
std::string make_body(size_t size)
{
	std::string b = bench_header();
	for (unsigned line = 0; b.size() + 78 + 3 <= size; line++) {
		std::string l;
		if (line % 40 == 39)
			l = ".."; // a stuffed dot: the line really starts with "."
		while (l.size() < 76)
			l += static_cast<char>('a' + (l.size() * 7 + line) % 26);
		b += l + "\r\n";
	}
	b += ".\r\n";
	return b;
}

// scan_all - feed body in pieces of at most piece bytes until end of data
size_t scan_all(const std::string &body, size_t piece, bool raw)
{
	struct slice v[256];
	struct smtp_data d;
	size_t pos = 0, slices = 0;

	if (raw)
		smtp_data_init_raw(&d);
	else
		smtp_data_init(&d);
	while (pos < body.size() && !smtp_data_done(&d)) {
		size_t n = std::min(piece, body.size() - pos);
		struct smtp_data_out o = { v, 0, 256 };
		pos += smtp_data_scan(&d, body.data() + pos, n, &o);
		slices += o.n;
		benchmark::DoNotOptimize(v);
	}
	return slices + smtp_data_bytes(&d);
}

void BM_data_scan(benchmark::State &state)
{
	std::string body = make_body(static_cast<size_t>(state.range(0)));
	for (auto _ : state)
		benchmark::DoNotOptimize(scan_all(body, body.size(), false));
	state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_data_scan)->Arg(10 << 10)->Arg(1 << 20);

// The same with the 16-byte SSE2 blocks only (the default is the CPU's best).
void BM_data_scan_sse2(benchmark::State &state)
{
	std::string body = make_body(static_cast<size_t>(state.range(0)));
	(void)smtp_data_avx2(false);
	for (auto _ : state)
		benchmark::DoNotOptimize(scan_all(body, body.size(), false));
	(void)smtp_data_avx2(true);
	state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_data_scan_sse2)->Arg(10 << 10)->Arg(1 << 20);

void BM_data_scan_16k_pieces(benchmark::State &state)
{
	std::string body = make_body(static_cast<size_t>(state.range(0)));
	for (auto _ : state)
		benchmark::DoNotOptimize(scan_all(body, 16 << 10, false));
	state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_data_scan_16k_pieces)->Arg(1 << 20);

void BM_bdat_raw(benchmark::State &state)
{
	std::string body = make_body(static_cast<size_t>(state.range(0)));
	for (auto _ : state)
		benchmark::DoNotOptimize(scan_all(body, 16 << 10, true));
	state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_bdat_raw)->Arg(1 << 20);

// The floor: find every LF with memchr and look at its neighbours.
void BM_memchr_lines(benchmark::State &state)
{
	std::string body = make_body(static_cast<size_t>(state.range(0)));
	for (auto _ : state) {
		const char *p = body.data(), *end = p + body.size();
		size_t events = 0;
		while (const char *lf = static_cast<const char *>(memchr(p, '\n', static_cast<size_t>(end - p)))) {
			events += lf + 1 < end && lf[1] == '.';
			p = lf + 1;
		}
		benchmark::DoNotOptimize(events);
	}
	state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_memchr_lines)->Arg(1 << 20);

} // namespace

BENCHMARK_MAIN();
