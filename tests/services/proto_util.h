// SPDX-License-Identifier: BSD-2-Clause
//
// Test helpers: feed a byte string to a parser through a SliceChain cut at
// chosen points, the way RX slots would deliver it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "daxnet/proto/chain.h"
#include "daxnet/proto/http.h"
#include "daxnet/proto/resp.h"

namespace daxnet::test {

/// The slice lengths a test cuts its wire into (0: one slice): every way
/// of cutting must give the same outcome.
inline constexpr std::size_t kSliceSteps[] = {0, 1, 2, 3, 5, 7, 64};

/// Splits `wire` into slices of `step` bytes (0: one slice), each in its own
/// heap allocation so that no two slices are adjacent in memory.
struct SlicedInput {
	std::vector<std::string> parts;
	proto::SliceChain chain;

	SlicedInput(std::string_view wire, std::size_t step)
	{
		if (step == 0)
			step = wire.size() ? wire.size() : 1;
		for (std::size_t i = 0; i < wire.size(); i += step)
			parts.emplace_back(wire.substr(i, step));
		std::uint32_t buf = 0;
		for (auto& p : parts)
			chain.push(reinterpret_cast<const std::byte*>(p.data()), static_cast<std::uint32_t>(p.size()), buf++, 0);
	}

	std::string str(proto::StreamRange r) const
	{
		std::string s(r.len, '\0');
		if (!chain.gather(r, std::as_writable_bytes(std::span<char>(s.data(), s.size()))))
			return "<not held>";
		return s;
	}
};

/// Feeds every slice of `in` to the parser `p`: `done()` for each complete
/// request (then p.next()), `other()` after each feed that completed none;
/// stops at a protocol error (false).
template <class Parser, class Done, class Other>
bool feed_all(const SlicedInput& in, Parser& p, Done done, Other other)
{
	for (std::size_t i = 0; i < in.chain.size(); ++i) {
		const proto::RxSlice& s = in.chain.at(i);
		std::size_t from = 0;
		while (from < s.len) {
			auto r = p.feed(s, from);
			from += r.used;
			if (r.status == proto::ParseStatus::done) {
				done();
				p.next();
			} else if (r.status == proto::ParseStatus::error) {
				return false;
			} else {
				other();
			}
		}
	}
	return true;
}

struct RespOutcome {
	std::vector<std::vector<std::string>> requests;
	std::string error;  ///< empty when no protocol error
	bool pending = false;  ///< a request was left incomplete
	std::size_t quoted = 0;  ///< inline requests split by split_inline()
	bool unbalanced = false;  ///< split_inline() refused one
};

inline RespOutcome run_resp(std::string_view wire, std::size_t step, const proto::RespLimits& lim = {})
{
	SlicedInput in(wire, step);
	proto::RespParser p(lim);
	RespOutcome out;
	const bool ok = feed_all(
		in, p,
		[&] {
			std::vector<std::string> args;
			if (p.inline_quoted()) {
				// what the service does: split the line by Redis' rules
				++out.quoted;
				if (!proto::split_inline(in.str(p.inline_line()), args))
					out.unbalanced = true;
			} else {
				for (auto a : p.args())
					args.push_back(in.str(a));
			}
			out.requests.push_back(std::move(args));
		},
		[] {});
	if (!ok) {
		out.error = std::string(p.error_message());
		return out;
	}
	out.pending = p.mid_request();
	return out;
}

struct HttpOutcome {
	struct Req {
		proto::HttpRequest head;
		std::string method, target, body;
	};
	std::vector<Req> requests;
	int status = 0;  ///< error status, 0 when none
	std::string error;
	bool pending = false;
	bool headers_seen_pending = false;  ///< headers complete while body pending
};

inline HttpOutcome run_http(std::string_view wire, std::size_t step, const proto::HttpLimits& lim = {})
{
	SlicedInput in(wire, step);
	proto::HttpParser p(lim);
	HttpOutcome out;
	const bool ok = feed_all(
		in, p,
		[&] {
			const auto& q = p.request();
			out.requests.push_back({q, in.str(q.method_range), in.str(q.target), in.str(q.body)});
		},
		[&] {
			if (p.headers_complete())
				out.headers_seen_pending = true;
		});
	if (!ok) {
		out.status = p.error_status();
		out.error = std::string(p.error_message());
		return out;
	}
	out.pending = p.mid_request();
	return out;
}

}  // namespace daxnet::test
