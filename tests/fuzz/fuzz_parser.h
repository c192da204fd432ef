// SPDX-License-Identifier: BSD-2-Clause
//
// What the protocol parser targets (fuzz_resp.cpp, fuzz_http.cpp) share:
// their input is [limits byte][slicing seed byte][wire bytes ...], and the
// wire is parsed three ways -- as one slice, cut into slices by a seeded
// schedule, and one byte at a time (each slice in its own heap allocation,
// so a read past a slice is an ASan error) -- which must give the same
// outcome (the parsers promise it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "daxnet/proto/chain.h"
#include "daxnet/proto/resp.h"  // ParseStatus
#include "fuzz.h"

namespace daxnet::fuzz {

// What both parser fuzzers name.
using proto::ParseStatus;
using proto::RxSlice;
using proto::SliceChain;

/// The wire as a chain of slices: whole (`sl` null), cut by `sl`, or a
/// byte at a time (`bytewise`).
class WireSlices {
public:
	WireSlices(std::span<const std::uint8_t> w, Slicer* sl, bool bytewise)
	{
		for (std::size_t at = 0; at < w.size();) {
			std::size_t n = bytewise ? 1 : sl ? sl->next() : w.size();
			if (n > w.size() - at)
				n = w.size() - at;
			auto& v = store_.emplace_back(n);  // own allocation: ASan sees over-reads
			std::memcpy(v.data(), w.data() + at, n);
			chain_.push(v.data(), static_cast<std::uint32_t>(n), static_cast<std::uint32_t>(store_.size()), 0);
			at += n;
		}
	}
	const proto::SliceChain& chain() const noexcept { return chain_; }

private:
	std::vector<std::vector<std::byte>> store_;
	proto::SliceChain chain_;
};

/// Feeds every slice of `ws` to parser `p`, each from its start until
/// consumed, and checks what every parser promises: a feed() uses at most
/// what it is given. `step(r, s, at, pos)` sees each result (`at`: where in
/// slice `s` the feed started; `pos`: the stream offset after it) and
/// returns false to stop (then feed_wire() does too).
template <class Parser, class Step>
bool feed_wire(const WireSlices& ws, Parser& p, Step step)
{
	const SliceChain& chain = ws.chain();
	for (std::size_t i = 0; i < chain.size(); ++i) {
		const auto& s = chain.at(i);
		for (std::size_t from = 0; from < s.len;) {
			const auto r = p.feed(s, from);
			FUZZ_CHECK(r.used <= s.len - from);
			const std::size_t at = from;
			from += r.used;
			if (!step(r, s, at, s.stream_off + from))
				return false;
		}
	}
	return true;
}

/// A failed parser stays failed: fed more at `pos`, it consumes nothing.
template <class Parser>
void check_stays_failed(Parser& p, std::uint64_t pos)
{
	const std::byte one{'x'};
	const auto again = p.feed(&one, 1, pos);
	FUZZ_CHECK(again.status == ParseStatus::error && again.used == 0);
}

/// One parser target's run: `run(wire, limits, slicer, bytewise)` gives an
/// Outcome (==, and `describe(outcome)` for the message); the sliced and
/// (up to 4 KiB) the bytewise outcome must equal the whole one.
template <class LimitsFrom, class Run, class Describe>
int same_however_sliced(const std::uint8_t* data, std::size_t size, LimitsFrom limits_from, Run run,
			Describe describe)
{
	FuzzInput in(data, size);
	const auto lim = limits_from(in.u8());
	const std::uint8_t seed = in.u8();
	const auto wire = in.rest();

	const auto whole = run(wire, lim, nullptr, false);
	Slicer sl(seed, 1 + (seed & 15));
	const auto cut = run(wire, lim, &sl, false);
	FUZZ_CHECK_MSG(cut == whole, "sliced: " + describe(cut) + " vs whole: " + describe(whole));
	if (wire.size() <= 4096) {
		const auto bytes = run(wire, lim, nullptr, true);
		FUZZ_CHECK_MSG(bytes == whole, "bytewise: " + describe(bytes) + " vs whole: " + describe(whole));
	}
	return 0;
}

}  // namespace daxnet::fuzz
