// SPDX-License-Identifier: BSD-2-Clause
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "daxnet/proto/reply.h"
#include "proto_util.h"

using daxnet::proto::Piece;
using daxnet::proto::StreamRange;

TEST_CASE("SliceChain maps stream ranges to pieces, pointers and gathered copies", "[unit][chain]")
{
	daxnet::test::SlicedInput in("abcdefghij", 3);  // abc def ghi j
	auto& c = in.chain;
	REQUIRE(c.size() == 4);
	CHECK(c.begin() == 0);
	CHECK(c.end() == 10);

	std::vector<std::pair<std::uint32_t, std::uint32_t>> seen;
	REQUIRE(c.pieces(StreamRange{2, 5}, [&](const Piece& p) { seen.emplace_back(p.buf(), p.len); }));
	CHECK(seen == std::vector<std::pair<std::uint32_t, std::uint32_t>>{{0, 1}, {1, 3}, {2, 1}});

	CHECK(c.contiguous(StreamRange{3, 3}) != nullptr);
	CHECK(c.contiguous(StreamRange{2, 2}) == nullptr);
	std::vector<char> scratch;
	CHECK(c.view(StreamRange{2, 5}, scratch) == "cdefg");
	CHECK(c.view(StreamRange{4, 2}, scratch) == "ef");
	CHECK(in.str(StreamRange{8, 5}) == "<not held>");

	auto s = c.pop();
	CHECK(s.buf == 0);
	CHECK(c.begin() == 3);
	CHECK(in.str(StreamRange{2, 2}) == "<not held>");
	CHECK(in.str(StreamRange{3, 7}) == "defghij");
}

TEST_CASE("SliceChain grows past its initial capacity and keeps order", "[unit][chain]")
{
	std::string wire;
	for (int i = 0; i < 100; ++i)
		wire += static_cast<char>('a' + i % 26);
	daxnet::test::SlicedInput in(wire, 1);
	for (int i = 0; i < 50; ++i)
		in.chain.pop();
	CHECK(in.str(StreamRange{50, 50}) == wire.substr(50));
	CHECK(in.chain.find(75) == 25);
}

TEST_CASE("RESP reply builders write Redis' exact bytes", "[unit][reply]")
{
	namespace resp = daxnet::proto::resp;
	daxnet::proto::OutBuf o;
	resp::ok(o);
	resp::integer(o, -42);
	resp::bulk(o, "hi");
	resp::nil(o);
	resp::array(o, 2);
	resp::error(o, "ERR bad\r\nthing");
	CHECK(o.view() == "+OK\r\n:-42\r\n$2\r\nhi\r\n$-1\r\n*2\r\n-ERR bad  thing\r\n");

	o.clear();
	std::string_view args[] = {"a", "b"};
	resp::unknown_command(o, "foo", args);
	CHECK(o.view() == "-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n");
	o.clear();
	resp::unknown_command(o, "foo", {});
	CHECK(o.view() == "-ERR unknown command 'foo', with args beginning with: \r\n");
	o.clear();
	resp::wrong_arity(o, "GET");
	CHECK(o.view() == "-ERR wrong number of arguments for 'get' command\r\n");
}

TEST_CASE("HTTP response heads carry status, length and connection", "[unit][reply]")
{
	daxnet::proto::OutBuf o;
	daxnet::proto::http_response(o, 201, "text/plain", "7\n", true);
	CHECK(o.view() ==
	      "HTTP/1.1 201 Created\r\nServer: daxnet\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
	      "Connection: keep-alive\r\n\r\n7\n");
	o.consume(9);
	CHECK(o.view().substr(0, 11) == "201 Created");
}
