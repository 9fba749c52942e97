// bench_msg.h - the header block of the benchmarks' test messages: a
// dozen lines, two of them Received:, and the empty line that ends it.
#ifndef RINGMTA_BENCH_BENCH_MSG_H
#define RINGMTA_BENCH_BENCH_MSG_H

#include <string>

inline std::string bench_header()
{
	return "Received: from a.example (a.example [192.0.2.1]) by mx.example with ESMTP\r\n"
	       "Received: from b.example by a.example; Sat, 28 Nov 2026 15:00:00 +0000\r\n"
	       "From: Sender <sender@example.com>\r\n"
	       "To: Recipient <rcpt@example.net>\r\n"
	       "Subject: quarterly newsletter\r\n"
	       "Date: Sat, 28 Nov 2026 15:00:00 +0000\r\n"
	       "Message-ID: <1234567890.abcdef@example.com>\r\n"
	       "MIME-Version: 1.0\r\n"
	       "Content-Type: text/plain; charset=utf-8\r\n"
	       "Content-Transfer-Encoding: 8bit\r\n"
	       "\r\n";
}

#endif
