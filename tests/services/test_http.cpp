// SPDX-License-Identifier: BSD-2-Clause
#include <catch2/catch.hpp>

#include <string>
#include <utility>

#include "proto_util.h"

using daxnet::proto::HttpMethod;
using daxnet::test::kSliceSteps;
using daxnet::test::run_http;

TEST_CASE("HTTP requests with and without bodies parse however the bytes are sliced", "[unit][http]")
{
	const std::string wire =
		"GET /kv/foo HTTP/1.1\r\nHost: x\r\n\r\n"
		"POST /log/s1 HTTP/1.1\r\nhost: x\r\ncontent-LENGTH:  5 \r\n\r\nhello"
		"PUT /kv/a%20b HTTP/1.0\r\nContent-Length: 0\r\nConnection: Keep-Alive\r\n\r\n";
	for (std::size_t step : kSliceSteps) {
		CAPTURE(step);
		auto out = run_http(wire, step);
		REQUIRE(out.status == 0);
		REQUIRE(out.requests.size() == 3);
		CHECK(out.requests[0].head.method == HttpMethod::get);
		CHECK(out.requests[0].target == "/kv/foo");
		CHECK(out.requests[0].head.keep_alive);
		CHECK(out.requests[0].body.empty());
		CHECK(out.requests[1].head.method == HttpMethod::post);
		CHECK(out.requests[1].target == "/log/s1");
		CHECK(out.requests[1].body == "hello");
		CHECK(out.requests[2].head.method == HttpMethod::put);
		CHECK(out.requests[2].head.version_minor == 0);
		CHECK(out.requests[2].head.keep_alive);
	}
}

TEST_CASE("HTTP connection persistence follows the version and the Connection header", "[unit][http]")
{
	CHECK_FALSE(run_http("GET / HTTP/1.0\r\n\r\n", 1).requests.at(0).head.keep_alive);
	CHECK_FALSE(run_http("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 1).requests.at(0).head.keep_alive);
	CHECK(run_http("GET / HTTP/1.1\r\n\r\n", 1).requests.at(0).head.keep_alive);
}

TEST_CASE("HTTP bare LF line ends and leading empty lines are tolerated", "[unit][http]")
{
	auto out = run_http("\r\nGET /x HTTP/1.1\nA: b\n\n", 1);
	REQUIRE(out.status == 0);
	REQUIRE(out.requests.size() == 1);
	CHECK(out.requests[0].target == "/x");
}

TEST_CASE("HTTP Expect 100-continue is reported once the headers are complete", "[unit][http]")
{
	auto out = run_http("POST /log/a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nab", 1);
	CHECK(out.requests.empty());
	CHECK(out.pending);
	CHECK(out.headers_seen_pending);
	auto full = run_http("POST /log/a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nabcd", 3);
	REQUIRE(full.requests.size() == 1);
	CHECK(full.requests[0].head.expect_continue);
}

TEST_CASE("HTTP malformed requests are refused with the matching status", "[unit][http]")
{
	const std::pair<std::string, int> cases[] = {
		{"GET\r\n\r\n", 400},
		{"GET  HTTP/1.1\r\n\r\n", 400},
		{"GET / HTTP/2.0\r\n\r\n", 505},
		{"GET / FOO/1.1\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400},
		{"GET / HTTP/1.1\rX", 400},
		{"POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
		{"G\x01T / HTTP/1.1\r\n\r\n", 400},
	};
	for (const auto& [wire, status] : cases) {
		CAPTURE(wire);
		CHECK(run_http(wire, 1).status == status);
	}
}

TEST_CASE("HTTP header and body limits give 414, 431 and 413", "[unit][http]")
{
	daxnet::proto::HttpLimits lim;
	lim.max_header_bytes = 64;
	lim.max_body = 8;
	CHECK(run_http("GET /" + std::string(100, 'a') + " HTTP/1.1\r\n\r\n", 1, lim).status == 414);
	CHECK(run_http("GET / HTTP/1.1\r\nX: " + std::string(100, 'a') + "\r\n\r\n", 7, lim).status == 431);
	auto big = run_http("POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\n123456789", 1, lim);
	CHECK(big.status == 413);
	CHECK(run_http("POST / HTTP/1.1\r\nContent-Length: 8\r\n\r\n12345678", 1, lim).requests.size() == 1);
}

TEST_CASE("HTTP body spanning many slices is one range", "[unit][http]")
{
	std::string body(100000, 'x');
	body[4095] = 'y';
	const std::string wire = "POST /log/s HTTP/1.1\r\nContent-Length: 100000\r\n\r\n" + body;
	auto out = run_http(wire, 4096);
	REQUIRE(out.requests.size() == 1);
	CHECK(out.requests[0].body == body);
}
