// SPDX-License-Identifier: BSD-2-Clause
#include <catch2/catch.hpp>

#include <string>

#include "proto_util.h"

using daxnet::test::kSliceSteps;
using daxnet::test::run_resp;
using Args = std::vector<std::string>;

TEST_CASE("RESP multibulk requests parse to their arguments however the bytes are sliced", "[unit][resp]")
{
	const std::string wire = "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nhello\r\n*1\r\n$4\r\nPING\r\n";
	for (std::size_t step : kSliceSteps) {
		CAPTURE(step);
		auto out = run_resp(wire, step);
		REQUIRE(out.error.empty());
		REQUIRE_FALSE(out.pending);
		REQUIRE(out.requests.size() == 2);
		CHECK(out.requests[0] == Args{"SET", "key", "hello"});
		CHECK(out.requests[1] == Args{"PING"});
	}
}

TEST_CASE("RESP bulk arguments may hold any bytes including CRLF and NUL", "[unit][resp]")
{
	std::string v("a\r\nb\0c", 6);
	const std::string wire = "*2\r\n$4\r\nECHO\r\n$6\r\n" + v + "\r\n";
	for (std::size_t step : kSliceSteps) {
		auto out = run_resp(wire, step);
		REQUIRE(out.requests.size() == 1);
		CHECK(out.requests[0][1] == v);
	}
}

TEST_CASE("RESP empty bulk arguments are allowed", "[unit][resp]")
{
	auto out = run_resp("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n", 1);
	REQUIRE(out.requests.size() == 1);
	CHECK(out.requests[0] == Args{"SET", "k", ""});
}

TEST_CASE("RESP inline commands split on spaces and end at LF or CRLF", "[unit][resp]")
{
	for (std::size_t step : kSliceSteps) {
		auto out = run_resp("PING\r\nset  a\tb\n\r\n\nGET a\r\n", step);
		REQUIRE(out.error.empty());
		REQUIRE(out.requests.size() == 3);
		CHECK(out.requests[0] == Args{"PING"});
		CHECK(out.requests[1] == Args{"set", "a", "b"});
		CHECK(out.requests[2] == Args{"GET", "a"});
	}
}

TEST_CASE("RESP inline commands with quotes are split by Redis' quoting rules", "[unit][resp]")
{
	for (std::size_t step : kSliceSteps) {
		auto out = run_resp("SET \"a b\" 'c\\'d'\r\nSET k \"\\x41\\n\\t\\\"\" \"\"\nGET plain\n", step);
		REQUIRE(out.error.empty());
		REQUIRE(out.requests.size() == 3);
		CHECK(out.quoted == 2);
		CHECK(!out.unbalanced);
		CHECK(out.requests[0] == Args{"SET", "a b", "c'd"});
		CHECK(out.requests[1] == Args{"SET", "k", "A\n\t\"", ""});
		CHECK(out.requests[2] == Args{"GET", "plain"});
	}
}

TEST_CASE("RESP inline quotes that do not close, or close inside a word, are refused", "[unit][resp]")
{
	std::vector<std::string> args;
	CHECK(!daxnet::proto::split_inline("SET \"abc", args));
	CHECK(!daxnet::proto::split_inline("SET 'abc", args));
	CHECK(!daxnet::proto::split_inline("SET \"a\"b", args));
	CHECK(daxnet::proto::split_inline("  ", args));
	CHECK(args.empty());
	CHECK(daxnet::proto::split_inline("a\"b c\" d", args));  // a quote inside a word opens a quoted part
	CHECK(args == Args{"ab c", "d"});
}

TEST_CASE("RESP empty multibulk counts are skipped like Redis does", "[unit][resp]")
{
	auto out = run_resp("*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n", 1);
	REQUIRE(out.error.empty());
	REQUIRE(out.requests.size() == 1);
}

TEST_CASE("RESP incomplete requests are pending, not errors", "[unit][resp]")
{
	auto out = run_resp("*2\r\n$3\r\nGET\r\n$3\r\nab", 1);
	CHECK(out.error.empty());
	CHECK(out.requests.empty());
	CHECK(out.pending);
}

TEST_CASE("RESP malformed input gives Redis' protocol error messages", "[unit][resp]")
{
	CHECK(run_resp("*x\r\n", 1).error == "Protocol error: invalid multibulk length");
	CHECK(run_resp("*1\r\n+PING\r\n", 1).error == "Protocol error: expected '$', got '+'");
	CHECK(run_resp("*1\r\n$-1\r\n", 1).error == "Protocol error: invalid bulk length");
	CHECK(run_resp("*1\r\n$abc\r\n", 1).error == "Protocol error: invalid bulk length");
	CHECK(run_resp("*1\r\n$3\r\nabcd\r\n", 2).error == "Protocol error: expected CRLF after bulk data");
	CHECK(run_resp("*1\r", 1).error.empty());
	CHECK(run_resp("*1\rx", 1).error == "Protocol error: invalid multibulk length");
	CHECK(run_resp("*99999999999999999999999\r\n", 1).error == "Protocol error: invalid multibulk length");
}

TEST_CASE("RESP limits on argument count, bulk size, inline size and request size are enforced", "[unit][resp]")
{
	daxnet::proto::RespLimits lim;
	lim.max_args = 2;
	lim.max_bulk = 10;
	lim.max_inline = 16;
	lim.max_request = 30;
	CHECK(run_resp("*3\r\n", 1, lim).error == "Protocol error: invalid multibulk length");
	CHECK(run_resp("*1\r\n$11\r\n", 1, lim).error == "Protocol error: invalid bulk length");  // Redis's wording
	CHECK(run_resp("*1\r\n$10\r\n0123456789\r\n", 1, lim).error.empty());
	CHECK(run_resp("aaaaaaaaaaaaaaaaaaaaaaaa\r\n", 3, lim).error == "Protocol error: too big inline request");
	CHECK(run_resp("a b c\r\n", 1, lim).error == "Protocol error: too many arguments in inline request");
	CHECK(run_resp("*2\r\n$10\r\n0123456789\r\n$10\r\n", 1, lim).error ==
	      "Protocol error: request exceeds the limit of 30 bytes");
}

TEST_CASE("RESP limit refusals say which limit: argument count or bulk length, or the request's bytes",
	  "[unit][resp]")
{
	// The server counts them apart (proto_limit_closes, query_limit_closes).
	using daxnet::proto::RespParser;
	daxnet::proto::RespLimits lim;
	lim.max_args = 2;
	lim.max_bulk = 10;
	lim.max_request = 30;
	auto kind = [&](std::string_view wire) {
		RespParser p(lim);
		auto r = p.feed(reinterpret_cast<const std::byte*>(wire.data()), wire.size(), 0);
		REQUIRE(r.status == daxnet::proto::ParseStatus::error);
		return p.limit_error();
	};
	CHECK(kind("*3\r\n") == RespParser::kProtoLimit);
	CHECK(kind("*1\r\n$11\r\n") == RespParser::kProtoLimit);
	CHECK(kind("*2\r\n$10\r\n0123456789\r\n$10\r\n") == RespParser::kQueryLimit);
	CHECK(kind("*x\r\n") == 0);
	CHECK(kind("*1\r\n+PING\r\n") == 0);
}

TEST_CASE("RESP a 1 MiB value spanning 256 slices comes out as one range, untouched", "[unit][resp]")
{
	std::string value(1u << 20, 'v');
	for (std::size_t i = 0; i < value.size(); i += 4093)
		value[i] = static_cast<char>('a' + i % 26);
	const std::string wire = "*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$1048576\r\n" + value + "\r\n";
	daxnet::test::SlicedInput in(wire, 4096);
	REQUIRE(in.chain.size() == wire.size() / 4096 + 1);
	daxnet::proto::RespParser p;
	std::size_t feeds = 0;
	bool done = false;
	for (std::size_t i = 0; i < in.chain.size() && !done; ++i) {
		auto r = p.feed(in.chain.at(i));
		++feeds;
		done = r.status == daxnet::proto::ParseStatus::done;
	}
	REQUIRE(done);
	REQUIRE(p.args().size() == 3);
	const auto r = p.args()[2];
	CHECK(r.len == value.size());
	std::size_t pieces = 0;
	std::string back;
	in.chain.pieces(r, [&](const daxnet::proto::Piece& pc) {
		++pieces;
		back.append(reinterpret_cast<const char*>(pc.data()), pc.len);
	});
	CHECK(pieces >= 256);
	CHECK(back == value);
}
