// SPDX-License-Identifier: BSD-2-Clause
//
// Fuzzes the incremental HTTP/1.1 request parser (examples/common/src/http.cpp).
//
// Input: [limits byte][slicing seed byte][wire bytes ...]
//
// As fuzz_resp.cpp: the wire is parsed whole, cut by a seeded schedule (each
// slice its own heap allocation) and byte by byte. Checked:
//   * the same requests (every field), the same error status, message and
//     stream offset, and the same pending state however the bytes are cut;
//   * feed() consumes at most what it is given, all of it when it needs
//     more (except right after the blank line ending the headers, where it
//     stops so the caller may send "100 Continue"), nothing once failed;
//   * a request's head starts with its method and ends with a line end, the
//     target is non-empty without spaces, the body is exactly
//     Content-Length bytes right after the head; the method enum agrees with
//     the method text; the limits hold; error statuses are the documented
//     ones (400, 413, 414, 431, 501, 505).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "daxnet/proto/http.h"
#include "fuzz_parser.h"

namespace {

using namespace daxnet::fuzz;
using daxnet::proto::HttpLimits;
using daxnet::proto::HttpMethod;
using daxnet::proto::HttpParser;
using daxnet::proto::HttpRequest;

struct Request {
	HttpRequest r;
	std::uint64_t end = 0;
	bool operator==(const Request& o) const
	{
		return end == o.end && r.method == o.r.method && r.method_range == o.r.method_range &&
		       r.target == o.r.target && r.version_minor == o.r.version_minor &&
		       r.keep_alive == o.r.keep_alive && r.expect_continue == o.r.expect_continue &&
		       r.has_content_length == o.r.has_content_length && r.content_length == o.r.content_length &&
		       r.head == o.r.head && r.body == o.r.body;
	}
};

struct Outcome {
	std::vector<Request> requests;
	int status = 0;
	std::string error;
	std::uint64_t error_pos = 0;
	bool pending = false;
	bool headers_complete = false;  // at the end, when pending
	bool operator==(const Outcome&) const = default;
};

std::string describe(const Outcome& o)
{
	std::string s = std::to_string(o.requests.size()) + " requests";
	if (o.status)
		s += ", " + std::to_string(o.status) + " '" + o.error + "' at " + std::to_string(o.error_pos);
	if (o.pending)
		s += o.headers_complete ? ", pending body" : ", pending head";
	return s;
}

HttpLimits limits_from(std::uint8_t b)
{
	HttpLimits lim;
	if (b & 1)
		lim.max_header_bytes = 16 + (b & 0xf0);
	if (b & 2)
		lim.max_body = (b >> 2) & 63;
	return lim;
}

std::string_view text(std::span<const std::uint8_t> w, daxnet::proto::StreamRange r)
{
	return {reinterpret_cast<const char*>(w.data()) + r.off, r.len};
}

void check_request(const Request& q, std::span<const std::uint8_t> w, const HttpLimits& lim)
{
	const HttpRequest& r = q.r;
	FUZZ_CHECK(r.head.end() <= w.size() && r.body.end() == q.end && q.end <= w.size());
	FUZZ_CHECK(r.head.len <= lim.max_header_bytes);
	FUZZ_CHECK(r.method_range.off == r.head.off && r.method_range.len > 0);
	FUZZ_CHECK(r.target.off == r.method_range.end() + 1 && r.target.len > 0);
	FUZZ_CHECK(r.target.end() < r.head.end());
	for (char c : text(w, r.target))
		FUZZ_CHECK(static_cast<unsigned char>(c) > 0x20 && c != 0x7f);
	FUZZ_CHECK(w[r.head.end() - 1] == '\n');
	FUZZ_CHECK(r.version_minor <= 1);
	FUZZ_CHECK(r.body.off == r.head.end() && r.body.len == r.content_length);
	FUZZ_CHECK(r.content_length <= lim.max_body);
	FUZZ_CHECK(r.has_content_length || r.content_length == 0);
	const std::string_view m = text(w, r.method_range);
	const HttpMethod want = m == "GET"      ? HttpMethod::get
				: m == "HEAD"   ? HttpMethod::head
				: m == "POST"   ? HttpMethod::post
				: m == "PUT"    ? HttpMethod::put
				: m == "DELETE" ? HttpMethod::del
						: HttpMethod::other;
	FUZZ_CHECK_MSG(r.method == want, "method enum disagrees with '" + std::string(m) + "'");
}

Outcome run(std::span<const std::uint8_t> w, const HttpLimits& lim, Slicer* sl, bool bytewise)
{
	HttpParser p(lim);
	Outcome out;
	const auto on_feed = [&](const auto& r, const RxSlice& s, std::size_t at, std::uint64_t pos) {
		// need_more stops early only right after the blank line, so the
		// caller can answer "100 Continue" before the body arrives.
		if (r.status == ParseStatus::need_more && r.used < s.len - at)
			FUZZ_CHECK_MSG(p.headers_complete() && r.used > 0 && s.data[at + r.used - 1] == std::byte{'\n'},
				       "need_more without consuming the slice");
		if (r.status == ParseStatus::done) {
			FUZZ_CHECK(p.headers_complete());
			Request q{p.request(), pos};
			check_request(q, w, lim);
			out.requests.push_back(q);
			p.next();
		} else if (r.status == ParseStatus::error) {
			out.status = p.error_status();
			out.error = std::string(p.error_message());
			out.error_pos = pos;
			const int st = out.status;
			FUZZ_CHECK_MSG(st == 400 || st == 413 || st == 414 || st == 431 || st == 501 || st == 505,
				       std::to_string(st));
			FUZZ_CHECK(!out.error.empty());
			check_stays_failed(p, pos);
			return false;
		}
		return true;
	};
	if (feed_wire(WireSlices(w, sl, bytewise), p, on_feed)) {
		out.pending = p.mid_request();
		out.headers_complete = p.headers_complete();
	}
	return out;
}

}  // namespace

DAXNET_FUZZ_TARGET(http)
{
	return same_however_sliced(data, size, limits_from, run, describe);
}
