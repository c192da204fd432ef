// SPDX-License-Identifier: BSD-2-Clause
//
// svc::Refusal: one type for every refused request, rendered as RESP error
// text or as an HTTP status with the message as the body.
#include <catch2/catch.hpp>

#include <cerrno>
#include <string>

#include "daxnet/proto/reply.h"
#include "daxnet/svc/refusal.h"

using daxnet::svc::Refusal;
using Code = Refusal::Code;

TEST_CASE("a refusal's code maps to Redis's prefix and to an HTTP status", "[unit][refusal]")
{
	struct Want {
		Code code;
		const char* prefix;
		int status;
	};
	const Want want[] = {
		{Code::error, "ERR", 500},	 {Code::full, "OOM", 507},	   {Code::too_large, "ERR", 413},
		{Code::failed, "ERR", 507},	 {Code::bad_request, "ERR", 400},  {Code::not_found, "ERR", 404},
		{Code::not_allowed, "ERR", 405}, {Code::too_long, "ERR", 414},	   {Code::out_of_range, "ERR", 416},
	};
	for (const auto& w : want) {
		const Refusal r{w.code, "daxnet: no"};
		CAPTURE(w.status);
		CHECK(r.resp_prefix() == w.prefix);
		CHECK(r.resp() == std::string(w.prefix) + " daxnet: no");
		CHECK(r.http_status() == w.status);
	}
}

TEST_CASE("the protocol layer renders a refusal", "[unit][refusal]")
{
	daxnet::proto::OutBuf o;
	daxnet::svc::resp_refusal(o, {Code::full, "daxnet: pool full"});
	CHECK(o.view() == "-OOM daxnet: pool full\r\n");

	daxnet::proto::OutBuf h;
	daxnet::svc::http_refusal(h, {Code::not_found, "no such key"}, true);
	const std::string out(h.view());
	CHECK(out.rfind("HTTP/1.1 404 ", 0) == 0);
	CHECK(out.find("\r\nContent-Length: 12\r\n") != std::string::npos);
	CHECK(out.size() >= 14);
	CHECK(out.substr(out.size() - 14) == "\r\nno such key\n");

	daxnet::proto::OutBuf a;
	daxnet::svc::http_refusal(a, {Code::not_allowed, "method not allowed"}, false, "Allow: GET\r\n");
	CHECK(std::string(a.view()).find("\r\nAllow: GET\r\n") != std::string::npos);
}

TEST_CASE("a store's errno becomes the refusal of its write", "[unit][refusal]")
{
	CHECK(Refusal::from_store(-ENOSPC, "full!", "value", "write").code == Code::full);
	CHECK(Refusal::from_store(-ENOSPC, "full!", "value", "write").message == "full!");
	const Refusal big = Refusal::from_store(-EMSGSIZE, "", "value", "write");
	CHECK(big.code == Code::too_large);
	CHECK(big.message == "daxnet: value too large for the log of this pool");
	const Refusal io = Refusal::from_store(-EIO, "", "value", "write");
	CHECK(io.code == Code::failed);
	CHECK(io.message.rfind("daxnet: write failed (", 0) == 0);
}
