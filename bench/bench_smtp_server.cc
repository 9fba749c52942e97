// bench_smtp_server.cc - one pipelined 10 KB transaction through the server
// engine per iteration: MAIL, RCPT, DATA, a 10 KB body of 78-octet lines,
// the end of data and the commit (goal: under 4 us). EHLO runs once, outside
// the loop; the host's work (flushing replies, appending body slices) is
// reduced to counting, so the figure is the engine's own cost.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <string>

extern "C" {
#include "core/smtp_server.h"
}

namespace {

std::string make_transaction(size_t body_bytes)
{
	std::string t = "MAIL FROM:<bounce-1234@mail.example.com> SIZE=10240 BODY=8BITMIME\r\n"
			"RCPT TO:<rcpt1@sink.test> NOTIFY=SUCCESS,FAILURE\r\n"
			"DATA\r\n"
			"From: bench@mail.example.com\r\nTo: rcpt1@sink.test\r\nSubject: bench\r\n\r\n";
	std::string line(76, 'x');
	line += "\r\n";
	for (size_t n = 0; t.size() < body_bytes; n++) {
		if (n % 40 == 39)
			t += "." + line.substr(1); // a dot-stuffed line now and then
		else
			t += line;
	}
	t += ".\r\n";
	return t;
}

struct Session {
	smtp_server_cfg cfg{};
	smtp_server *s;
	char mem[8192];
	buf replies;
	slice body[64];
	smtp_server_io io;

	Session()
	{
		cfg.hostname = SLICE_LIT("mx.bench");
		cfg.alloc = &rm_alloc_libc;
		s = static_cast<smtp_server *>(std::malloc(smtp_server_size()));
		buf_init(&replies, mem, sizeof mem);
		io = { &replies, body, 0, 64 };
		smtp_server_init(s, &cfg, false);
		if (smtp_server_greet(s, &io) != RM_OK)
			std::abort();
		feed("EHLO client.bench\r\n", 19);
	}
	~Session()
	{
		smtp_server_fini(s);
		std::free(s);
	}
	// feed - one client write, handled as the host would; returns body bytes
	size_t feed(const char *p, size_t n)
	{
		size_t off = 0, got = 0;
		while (off < n) {
			size_t used;
			smtp_server_ev ev = smtp_server_feed(s, p + off, n - off, &used, &io);
			off += used;
			if (ev == SMTP_EV_BODY || ev == SMTP_EV_COMMIT)
				for (size_t i = 0; i < io.nbody; i++)
					got += io.body[i].len;
			if (ev == SMTP_EV_COMMIT)
				smtp_server_committed(s, 0, SLICE_LIT("0123456789AB"), &io);
			else if (ev == SMTP_EV_FLUSH)
				replies.len = 0;
			else if (ev != SMTP_EV_NONE && ev != SMTP_EV_BODY)
				std::abort();
		}
		replies.len = 0;
		return got;
	}
};

void BM_server_transaction(benchmark::State &state)
{
	std::string t = make_transaction(size_t(state.range(0)));
	Session sess;
	for (auto _ : state) {
		size_t got = sess.feed(t.data(), t.size());
		benchmark::DoNotOptimize(got);
	}
	state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(t.size()));
	state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_server_transaction)->Arg(10240);

// The same transaction by BDAT: the body is one raw chunk.
void BM_server_transaction_bdat(benchmark::State &state)
{
	size_t n = size_t(state.range(0));
	std::string t = "MAIL FROM:<bounce-1234@mail.example.com>\r\nRCPT TO:<rcpt1@sink.test>\r\n"
			"BDAT " + std::to_string(n) + " LAST\r\n" + std::string(n, 'x');
	Session sess;
	for (auto _ : state) {
		size_t got = sess.feed(t.data(), t.size());
		benchmark::DoNotOptimize(got);
	}
	state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(t.size()));
	state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_server_transaction_bdat)->Arg(10240);

// The command phase alone: MAIL, RCPT, RSET.
void BM_server_envelope(benchmark::State &state)
{
	static const char t[] = "MAIL FROM:<bounce-1234@mail.example.com> SIZE=10240\r\n"
				"RCPT TO:<rcpt1@sink.test> NOTIFY=SUCCESS,FAILURE\r\nRSET\r\n";
	Session sess;
	for (auto _ : state) {
		size_t got = sess.feed(t, sizeof t - 1);
		benchmark::DoNotOptimize(got);
	}
	state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_server_envelope);

} // namespace

BENCHMARK_MAIN();
