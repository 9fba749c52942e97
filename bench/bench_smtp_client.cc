// bench_smtp_client.cc - the client engine on one pipelined transaction,
// and the dot-stuffer on a realistic body.
//
// BM_client_transaction: a session already past EHLO (PIPELINING, SIZE,
// 8BITMIME, DSN) sends one message to R recipients: MAIL, R RCPTs and DATA
// written in one group, the replies fed in one buffer, the body handed out
// as dot-stuffed slices, the final reply read. Items/s are transactions.
// BM_dot_stuff: slices for a body of N bytes (78-octet lines, one in 40
// starting with "."), 64 slices of room per call. Bytes/s count the body.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

extern "C" {
#include "core/smtp_client.h"
}

namespace {

// make_body - about size bytes of 78-octet CRLF lines, some starting with "."
std::string make_body(size_t size)
{
	std::string b = "From: a@example.com\r\nTo: b@example.net\r\nSubject: bench\r\n\r\n";
	for (unsigned line = 0; b.size() + 78 <= size; line++) {
		std::string l = line % 40 == 39 ? "." : "";
		while (l.size() < 76)
			l += static_cast<char>('a' + (l.size() * 7 + line) % 26);
		b += l + "\r\n";
	}
	return b;
}

// stuff_all - the slices of body, as DATA would send them; returns their count
size_t stuff_all(const std::string &body)
{
	struct smtp_stuff st;
	struct slice v[64];
	size_t off = 0, slices = 0;

	smtp_stuff_init(&st);
	while (off < body.size()) {
		size_t n = 0;
		off += smtp_stuff_feed(&st, body.data() + off, body.size() - off, v, 64, &n);
		slices += n;
	}
	struct slice end = smtp_stuff_end(&st);
	benchmark::DoNotOptimize(end);
	return slices + 1;
}

// feed_all - feed s, expecting event want at the end of it
void feed_all(struct smtp_client *c, const std::string &s, struct buf *out,
	      enum smtp_client_ev want, benchmark::State &state)
{
	size_t pos = 0, used;
	enum smtp_client_ev ev;

	do {
		ev = smtp_client_feed(c, s.data() + pos, s.size() - pos, &used, out);
		pos += used;
	} while (ev == SMTP_CL_RCPT || (ev == SMTP_CL_NONE && pos < s.size()));
	if (ev != want)
		state.SkipWithError("unexpected event");
}

void BM_client_transaction(benchmark::State &state)
{
	size_t nrcpt = static_cast<size_t>(state.range(0));
	std::vector<std::string> addrs;
	std::vector<struct smtp_client_rcpt> rcpts(nrcpt);
	for (size_t i = 0; i < nrcpt; i++)
		addrs.push_back("user" + std::to_string(i) + "@example.net");
	for (size_t i = 0; i < nrcpt; i++)
		rcpts[i] = { { addrs[i].data(), addrs[i].size() }, SMTP_NOTIFY_FAILURE, SLICE_NULL };
	std::string body = make_body(4096);
	struct smtp_client_msg msg = {};
	msg.from = SLICE_LIT("sender@example.com");
	msg.rcpt = rcpts.data();
	msg.nrcpt = nrcpt;
	msg.size = body.size();
	msg.body = SMTP_BODY_8BITMIME;

	struct smtp_client_cfg cfg = { SLICE_LIT("bench.example"), SMTP_CLIENT_TLS_NONE, false, false, false };
	struct smtp_client c;
	static char mem[65536];
	struct buf out;
	buf_init(&out, mem, sizeof mem);
	smtp_client_init(&c, &cfg);
	feed_all(&c,
		 "220 mx ESMTP\r\n250-mx\r\n250-PIPELINING\r\n250-SIZE 100000000\r\n"
		 "250-8BITMIME\r\n250 DSN\r\n",
		 &out, SMTP_CL_READY, state);
	std::string replies = "250 2.1.0 Ok\r\n";
	for (size_t i = 0; i < nrcpt; i++)
		replies += "250 2.1.5 Ok\r\n";
	replies += "354 End data with <CR><LF>.<CR><LF>\r\n";
	std::string done = "250 2.0.0 Ok: queued as 4ZJ1xk2Qz3\r\n";
	size_t bytes = 0;

	for (auto _ : state) {
		out.len = 0;
		if (smtp_client_send(&c, &msg) != 0)
			state.SkipWithError("send");
		feed_all(&c, replies, &out, SMTP_CL_BODY, state);
		bytes += out.len;
		stuff_all(body);
		if (smtp_client_body_sent(&c) != 0)
			state.SkipWithError("body");
		feed_all(&c, done, &out, SMTP_CL_RESULT, state);
		feed_all(&c, "", &out, SMTP_CL_READY, state);
	}
	state.SetItemsProcessed(state.iterations());
	state.counters["cmd_bytes"] = static_cast<double>(bytes) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_client_transaction)->Arg(1)->Arg(10)->Arg(100);

void BM_dot_stuff(benchmark::State &state)
{
	std::string body = make_body(static_cast<size_t>(state.range(0)));
	size_t slices = 0;

	for (auto _ : state)
		slices = stuff_all(body);
	state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
	state.counters["slices"] = static_cast<double>(slices);
}
BENCHMARK(BM_dot_stuff)->Arg(4096)->Arg(1 << 20);

} // namespace

BENCHMARK_MAIN();
