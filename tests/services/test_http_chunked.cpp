// SPDX-License-Identifier: BSD-2-Clause
// Transfer-Encoding: chunked in the HTTP parser: the chunks' data as
// ranges in place, however the bytes are sliced.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "proto_util.h"

using daxnet::proto::HttpLimits;
using daxnet::proto::HttpParser;
using daxnet::test::feed_all;
using daxnet::test::kSliceSteps;
using daxnet::test::SlicedInput;

namespace {

struct Decoded {
	std::vector<std::string> bodies;       ///< decoded body of each request
	std::vector<std::size_t> chunk_counts;  ///< ranges per request
	std::vector<std::uint64_t> lengths;     ///< content_length reported
	int status = 0;
	std::string error;
};

Decoded run_chunked(std::string_view wire, std::size_t step, HttpLimits lim = {})
{
	lim.allow_chunked = true;
	SlicedInput in(wire, step);
	HttpParser p(lim);
	Decoded out;
	const bool ok = feed_all(
		in, p,
		[&] {
			std::string body;
			for (auto rg : p.body_ranges())
				body += in.str(rg);
			out.bodies.push_back(body);
			out.chunk_counts.push_back(p.body_ranges().size());
			out.lengths.push_back(p.request().content_length);
		},
		[] {});
	if (!ok) {
		out.status = p.error_status();
		out.error = std::string(p.error_message());
	}
	return out;
}

}  // namespace

TEST_CASE("HTTP chunked bodies decode to their chunks' data however the bytes are sliced", "[unit][http]")
{
	const std::string wire =
		"POST /log/a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		"5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\n\r\n"
		"POST /log/b HTTP/1.1\r\ntransfer-encoding:  Chunked \r\nConnection: close\r\n\r\n"
		"3\nabc\n0\nX-Trailer: t\n\n"
		"GET /log/a HTTP/1.1\r\n\r\n";
	for (std::size_t step : kSliceSteps) {
		CAPTURE(step);
		auto out = run_chunked(wire, step);
		REQUIRE(out.status == 0);
		REQUIRE(out.bodies.size() == 3);
		CHECK(out.bodies[0] == "hello 0123456789");
		CHECK(out.chunk_counts[0] == 3);
		CHECK(out.lengths[0] == 16);
		CHECK(out.bodies[1] == "abc");
		CHECK(out.lengths[1] == 3);
		CHECK(out.bodies[2].empty());
		CHECK(out.chunk_counts[2] == 0);
	}
}

TEST_CASE("HTTP chunked: an empty body and big hex sizes", "[unit][http]")
{
	auto out = run_chunked("PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 1);
	REQUIRE(out.status == 0);
	CHECK(out.bodies == std::vector<std::string>{""});
	const std::string big(0x1aF, 'z');
	out = run_chunked("PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1aF\r\n" + big + "\r\n0\r\n\r\n", 3);
	REQUIRE(out.status == 0);
	CHECK(out.bodies[0] == big);
}

TEST_CASE("HTTP chunked framing errors are refused", "[unit][http]")
{
	const std::string head = "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
	CHECK(run_chunked(head + "zz\r\n", 1).status == 400);               // not hex
	CHECK(run_chunked(head + "3\r\nabcd\r\n0\r\n\r\n", 1).status == 400);  // data longer than size
	CHECK(run_chunked(head + "3\rXabc\r\n", 1).status == 400);           // CR without LF
	CHECK(run_chunked(head + "1000000000000000\r\n", 2).status == 413);  // 16 hex digits
	CHECK(run_chunked("POST /x HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 1).status == 501);
	CHECK(run_chunked("POST /x HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 1).status ==
	      400);  // both: refused (request smuggling)
	HttpLimits lim;
	lim.max_body = 8;
	CHECK(run_chunked(head + "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", 4, lim).status == 413);
	lim = {};
	lim.max_chunks = 2;
	CHECK(run_chunked(head + "1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n", 4, lim).status == 413);
	lim = {};
	lim.max_header_bytes = 64;
	CHECK(run_chunked(head + "0\r\nX: " + std::string(100, 'y') + "\r\n\r\n", 7, lim).status == 431);
}

TEST_CASE("HTTP chunked requests are refused with 501 unless the service allows them", "[unit][http]")
{
	auto out = daxnet::test::run_http("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 1);
	CHECK(out.status == 501);
}
