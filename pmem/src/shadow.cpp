// SPDX-License-Identifier: BSD-2-Clause
//
// Shadow-image persistence domain (see shadow.h; pmem.md §2.4).
#include "daxnet/pmem/shadow.h"

#include <algorithm>
#include <cstring>

namespace daxnet::pmem {

ShadowDomain::ShadowDomain(std::span<std::byte> image) : image_(image), durable_(image.begin(), image.end()) {}

void ShadowDomain::flush(const void* p, std::size_t n) noexcept
{
	counters_.flush_calls++;
	counters_.flushed_bytes += n;
	if (n == 0)
		return;
	const auto* b = static_cast<const std::byte*>(p);
	// Outside the image (e.g. DRAM the caller flushes by mistake): ignored,
	// but it never becomes durable either.
	if (b < image_.data() || b + n > image_.data() + image_.size())
		return;
	const std::size_t first = static_cast<std::size_t>(b - image_.data()) / kLine;
	const std::size_t last = (static_cast<std::size_t>(b - image_.data()) + n - 1) / kLine;
	for (std::size_t l = first; l <= last; l++) {
		std::array<std::byte, kLine> snap{};
		const std::size_t off = l * kLine;
		const std::size_t len = std::min(kLine, image_.size() - off);
		std::memcpy(snap.data(), image_.data() + off, len);
		pending_[l] = snap;
	}
}

void ShadowDomain::commit_lines(const std::unordered_map<std::size_t, std::array<std::byte, kLine>>& lines) noexcept
{
	for (const auto& [l, snap] : lines) {
		const std::size_t off = l * kLine;
		std::memcpy(durable_.data() + off, snap.data(), std::min(kLine, durable_.size() - off));
	}
}

std::uint64_t ShadowDomain::drain_begin() noexcept
{
	if (!pipelined_)
		return PersistDomain::drain_begin();
	counters_.drains++;
	counters_.drain_begins++;
	drain_wait_all();  // one in flight, completing in order
	in_flight_ = std::move(pending_);
	pending_.clear();
	return ++submitted_;
}

void ShadowDomain::drain_wait(std::uint64_t ticket) noexcept
{
	if (durable_ticket() >= ticket)
		return;
	counters_.drain_waits++;
	complete_in_flight();
}

void ShadowDomain::complete_in_flight() noexcept
{
	if (!in_flight())
		return;
	if (before_drain)
		before_drain();
	commit_lines(in_flight_);
	in_flight_.clear();
	durable_ticket_.store(submitted_, std::memory_order_release);
	if (after_drain)
		after_drain();
}

void ShadowDomain::drain() noexcept
{
	counters_.drains++;
	drain_wait_all();
	if (before_drain)
		before_drain();
	for (const auto& [l, snap] : pending_) {
		const std::size_t off = l * kLine;
		std::memcpy(durable_.data() + off, snap.data(), std::min(kLine, durable_.size() - off));
	}
	pending_.clear();
	if (after_drain)
		after_drain();
}

void ShadowDomain::sync_all()
{
	std::memcpy(durable_.data(), image_.data(), image_.size());
	pending_.clear();
	in_flight_.clear();
	durable_ticket_.store(submitted_, std::memory_order_release);
}

void ShadowDomain::crash_image(std::span<std::byte> out, Extra extra, std::mt19937_64* rng) const
{
	std::memcpy(out.data(), durable_.data(), durable_.size());
	if (extra == Extra::none)
		return;
	std::mt19937_64 local(12345);
	std::mt19937_64& r = rng ? *rng : local;
	auto pick = [&]() { return extra == Extra::all || (r() & 1); };
	// Copies `len` bytes of a line from `src`: all of it, or under torn
	// a random subset of its aligned 8-byte words.
	auto take = [&](std::size_t off, const std::byte* src, std::size_t len) {
		if (extra != Extra::torn) {
			std::memcpy(out.data() + off, src, len);
			return;
		}
		const std::uint64_t mask = r();
		for (std::size_t w = 0; w < len; w += 8)
			if (mask >> (w / 8) & 1)
				std::memcpy(out.data() + off + w, src + w, std::min<std::size_t>(8, len - w));
	};
	// Snapshots of a drain in flight, then pending ones: the line may
	// have reached media as flushed.
	for (const auto& [l, snap] : in_flight_) {
		if (!pick())
			continue;
		const std::size_t off = l * kLine;
		take(off, snap.data(), std::min(kLine, out.size() - off));
	}
	for (const auto& [l, snap] : pending_) {
		if (!pick())
			continue;
		const std::size_t off = l * kLine;
		take(off, snap.data(), std::min(kLine, out.size() - off));
	}
	// Dirty lines (V differs from D): the cache may have evicted V's
	// current content. Under "all", V wins over the pending snapshot.
	const std::size_t nlines = (image_.size() + kLine - 1) / kLine;
	for (std::size_t l = 0; l < nlines; l++) {
		const std::size_t off = l * kLine;
		const std::size_t len = std::min(kLine, image_.size() - off);
		if (std::memcmp(image_.data() + off, durable_.data() + off, len) == 0)
			continue;
		if (!pick())
			continue;
		take(off, image_.data() + off, len);
	}
}

}  // namespace daxnet::pmem
