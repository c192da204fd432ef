// SPDX-License-Identifier: BSD-2-Clause
//
// Fuzzes the incremental RESP2 parser (examples/common/src/resp.cpp).
//
// Input: [limits byte][slicing seed byte][wire bytes ...]
//
// The wire is parsed three ways: as one slice, cut into slices by a seeded
// schedule (each slice in its own heap allocation, so a read past a slice
// is an ASan error), and one byte at a time. Checked:
//   * every way of slicing gives the same requests, the same error at the
//     same stream offset, and the same pending state (resp.h promises it);
//   * feed() never claims more bytes than given, consumes everything when
//     it asks for more, and consumes nothing once failed;
//   * each argument lies inside its request, arguments are in order and do
//     not overlap; a multibulk request has exactly the announced count and
//     every bulk is followed by CRLF; inline words are non-empty and hold no
//     separator; the limits (args, bulk, inline, request) are honoured;
//   * errors are Redis' "Protocol error: ..." wording.
#include <cstdint>
#include <string>
#include <vector>

#include "daxnet/proto/resp.h"
#include "fuzz_parser.h"

namespace {

using namespace daxnet::fuzz;
using daxnet::proto::RespLimits;
using daxnet::proto::RespParser;
using daxnet::proto::StreamRange;

struct Request {
	std::uint64_t begin = 0;
	std::uint64_t end = 0;  // stream offset after the request's last byte
	std::vector<StreamRange> args;
	bool operator==(const Request&) const = default;
};

struct Outcome {
	std::vector<Request> requests;
	bool failed = false;
	std::string error;
	std::uint64_t error_pos = 0;
	bool pending = false;
	bool operator==(const Outcome&) const = default;
};

std::string describe(const Outcome& o)
{
	std::string s = std::to_string(o.requests.size()) + " requests";
	if (o.failed)
		s += ", error '" + o.error + "' at " + std::to_string(o.error_pos);
	if (o.pending)
		s += ", pending";
	return s;
}

RespLimits limits_from(std::uint8_t b)
{
	RespLimits lim;
	if (b & 1)
		lim.max_args = 1 + (b >> 4);  // 1..16
	if (b & 2)
		lim.max_bulk = 8u << ((b >> 5) & 3);  // 8..64
	if (b & 4)
		lim.max_inline = 4 + (b >> 3);  // 4..35
	if (b & 8)
		lim.max_request = 16u + (b & 0xf0);
	return lim;
}

std::uint64_t parse_count(std::span<const std::uint8_t> w, std::uint64_t at)
{
	// the digits after '*' of a multibulk header (already validated by the parser)
	bool neg = false;
	if (at < w.size() && w[at] == '-') {
		neg = true;
		++at;
	}
	std::uint64_t n = 0;
	while (at < w.size() && w[at] >= '0' && w[at] <= '9')
		n = n * 10 + (w[at++] - '0');
	return neg ? 0 : n;
}

void check_request(const Request& r, std::span<const std::uint8_t> w, const RespLimits& lim)
{
	FUZZ_CHECK(!r.args.empty());
	FUZZ_CHECK(r.begin < r.end && r.end <= w.size());
	FUZZ_CHECK(r.args.size() <= lim.max_args);
	std::uint64_t prev_end = r.begin;
	for (const auto& a : r.args) {
		FUZZ_CHECK_MSG(a.off >= prev_end, "arguments overlap or are out of order");
		FUZZ_CHECK(a.end() <= r.end);
		prev_end = a.end();
	}
	if (w[r.begin] == '*') {
		FUZZ_CHECK(r.end - r.begin <= lim.max_request);
		FUZZ_CHECK_MSG(parse_count(w, r.begin + 1) == r.args.size(), "multibulk count differs from arguments");
		for (const auto& a : r.args) {
			FUZZ_CHECK(a.len <= lim.max_bulk);
			FUZZ_CHECK(a.off >= 1 && w[a.off - 1] == '\n');
			FUZZ_CHECK(a.end() + 2 <= r.end && w[a.end()] == '\r' && w[a.end() + 1] == '\n');
		}
		FUZZ_CHECK(r.args.back().end() + 2 == r.end);
	} else {
		FUZZ_CHECK(r.end - r.begin <= std::uint64_t{lim.max_inline} + 1);
		FUZZ_CHECK(w[r.end - 1] == '\n');
		for (const auto& a : r.args) {
			FUZZ_CHECK_MSG(a.len > 0, "empty inline word");
			for (std::uint64_t i = a.off; i < a.end(); ++i)
				FUZZ_CHECK(w[i] != ' ' && w[i] != '\t' && w[i] != '\r' && w[i] != '\n');
		}
	}
}

// step 0: one slice; otherwise slice lengths from `sl`.
Outcome run(std::span<const std::uint8_t> w, const RespLimits& lim, Slicer* sl, bool bytewise)
{
	RespParser p(lim);
	Outcome out;
	const auto on_feed = [&](const auto& r, const RxSlice& s, std::size_t at, std::uint64_t pos) {
		if (r.status == ParseStatus::need_more) {
			FUZZ_CHECK_MSG(r.used == s.len - at, "need_more without consuming the slice");
			FUZZ_CHECK(!p.mid_request() || p.request_begin() <= s.stream_off + s.len);
		}
		if (r.status == ParseStatus::done) {
			FUZZ_CHECK(r.used > 0);
			Request req{p.request_begin(), pos, {p.args().begin(), p.args().end()}};
			check_request(req, w, lim);
			out.requests.push_back(std::move(req));
			p.next();
		} else if (r.status == ParseStatus::error) {
			out.failed = true;
			out.error = std::string(p.error_message());
			out.error_pos = pos;
			FUZZ_CHECK_MSG(out.error.rfind("Protocol error", 0) == 0, out.error);
			check_stays_failed(p, pos);
			return false;
		}
		return true;
	};
	if (feed_wire(WireSlices(w, sl, bytewise), p, on_feed))
		out.pending = p.mid_request();
	return out;
}

}  // namespace

DAXNET_FUZZ_TARGET(resp)
{
	return same_however_sliced(data, size, limits_from, run, describe);
}
