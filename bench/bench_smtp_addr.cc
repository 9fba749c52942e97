// bench_smtp_addr.cc - command line + path + parameters, as the server
// engine runs them for every MAIL and RCPT (goal: a MAIL line under 100 ns).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>

extern "C" {
#include "core/smtp_addr.h"
#include "core/smtp_cmd.h"
}

namespace {

const char kMail[] =
	"MAIL FROM:<bounce-1234@mail.example.com> SIZE=10240 BODY=8BITMIME RET=HDRS ENVID=QQ314159";
const char kRcpt[] =
	"RCPT TO:<rcpt1@sink.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;rcpt1+40sink.test";
const char kRcptPlain[] = "RCPT TO:<rcpt1@sink.test>";
const char kUtf8[] = "MAIL FROM:<\xc3\xbcser@ex\xc3\xa4mple.de> SMTPUTF8";

// The whole MAIL line: verb, reverse-path, parameters.
void BM_MailLine(benchmark::State &state, const char *text)
{
	struct slice line = slice_make(text, strlen(text));
	for (auto _ : state) {
		struct smtp_cmd cmd;
		struct smtp_path path;
		struct smtp_mail_params params;
		struct slice rest, bad;
		benchmark::DoNotOptimize(line.ptr);
		smtp_cmd_parse(line, &cmd);
		if (cmd.id != SMTP_CMD_MAIL || cmd.syntax_error ||
		    smtp_path_parse(cmd.arg, true, &path, &rest) != SMTP_ADDR_OK ||
		    smtp_mail_params_parse(rest, &params, &bad) != SMTP_ADDR_OK)
			std::abort();
		benchmark::DoNotOptimize(params);
		benchmark::DoNotOptimize(path);
	}
	state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(line.len));
}

// The whole RCPT line: verb, forward-path, parameters.
void BM_RcptLine(benchmark::State &state, const char *text)
{
	struct slice line = slice_make(text, strlen(text));
	for (auto _ : state) {
		struct smtp_cmd cmd;
		struct smtp_path path;
		struct smtp_rcpt_params params;
		struct slice rest, bad;
		benchmark::DoNotOptimize(line.ptr);
		smtp_cmd_parse(line, &cmd);
		if (cmd.id != SMTP_CMD_RCPT || cmd.syntax_error ||
		    smtp_path_parse(cmd.arg, false, &path, &rest) != SMTP_ADDR_OK ||
		    smtp_rcpt_params_parse(rest, &params, &bad) != SMTP_ADDR_OK)
			std::abort();
		benchmark::DoNotOptimize(params);
		benchmark::DoNotOptimize(path);
	}
	state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(line.len));
}

// The verb alone, for a line the engine sees most (a pipelined RCPT).
void BM_CmdOnly(benchmark::State &state)
{
	struct slice line = slice_make(kRcptPlain, strlen(kRcptPlain));
	for (auto _ : state) {
		struct smtp_cmd cmd;
		benchmark::DoNotOptimize(line.ptr);
		smtp_cmd_parse(line, &cmd);
		benchmark::DoNotOptimize(cmd);
	}
}

// The reverse-path alone.
void BM_PathOnly(benchmark::State &state)
{
	struct slice arg = slice_make(kMail + 10, 30);
	for (auto _ : state) {
		struct smtp_path path;
		struct slice rest;
		benchmark::DoNotOptimize(arg.ptr);
		if (smtp_path_parse(arg, true, &path, &rest) != SMTP_ADDR_OK)
			std::abort();
		benchmark::DoNotOptimize(path);
	}
}

// The MAIL parameters alone.
void BM_MailParamsOnly(benchmark::State &state)
{
	struct slice in = slice_make(kMail + 40, strlen(kMail) - 40);
	for (auto _ : state) {
		struct smtp_mail_params params;
		struct slice bad;
		benchmark::DoNotOptimize(in.ptr);
		if (smtp_mail_params_parse(in, &params, &bad) != SMTP_ADDR_OK)
			std::abort();
		benchmark::DoNotOptimize(params);
	}
}

} // namespace

BENCHMARK_CAPTURE(BM_MailLine, dsn_params, kMail);
BENCHMARK_CAPTURE(BM_MailLine, utf8, kUtf8);
BENCHMARK_CAPTURE(BM_RcptLine, notify_orcpt, kRcpt);
BENCHMARK_CAPTURE(BM_RcptLine, plain, kRcptPlain);
BENCHMARK(BM_CmdOnly);
BENCHMARK(BM_PathOnly);
BENCHMARK(BM_MailParamsOnly);

BENCHMARK_MAIN();
