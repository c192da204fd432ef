// SPDX-License-Identifier: BSD-2-Clause
//
// Shadow-image persistence domain for crash-consistency tests (model of
// shared/research/pmem.md §2.4).
//
// The program works on a DRAM image V (what it sees). A second image D holds
// what would survive power loss. Only this domain moves bytes from V to D:
//   flush(p, n)  snapshots every 64-byte line covering [p, p+n) as it is in V
//                now (CLWB writes back the line as of the flush);
//   drain()      commits every pending snapshot into D.
// A store after its line's flush makes the line dirty again; it becomes
// durable only through another flush + drain.
//
// A crash image is D, optionally plus any subset of the lines that differ
// from D (pending snapshots or never-flushed stores): the cache may have
// evicted any of them. crash_image() builds one. Hooks run at every drain
// (before and after the commit), i.e. at every persist point, so a test can
// take a crash image there and recover it on a copy.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <random>
#include <span>
#include <unordered_map>
#include <vector>

#include "daxnet/pmem/persist.h"

namespace daxnet::pmem {

class ShadowDomain final : public PersistDomain {
public:
	static constexpr std::size_t kLine = 64;

	/// Shadows `image` (V); D starts as a copy of it (everything in it now
	/// counts as durable). The image must outlive the domain.
	explicit ShadowDomain(std::span<std::byte> image);

	Granularity granularity() const noexcept override { return Granularity::cache_line; }
	void flush(const void* p, std::size_t n) noexcept override;
	void drain() noexcept override;
	using PersistDomain::flush;

	/// Pipelined drains (docs/pool-format.md §Persistence, pipelined
	/// drain) modelled: with set_pipelined(true), drain_begin() moves the
	/// pending snapshots into a drain in flight that only
	/// complete_in_flight() (or a drain_wait(), a drain(), the next
	/// drain_begin()) commits to D; crash_image() treats its lines like
	/// pending ones. Off (the default): drain_begin() is a drain().
	void set_pipelined(bool on) noexcept { pipelined_ = on; }
	std::uint64_t drain_begin() noexcept override;
	void drain_wait(std::uint64_t ticket) noexcept override;
	/// The flusher finishing: commits the drain in flight (hooks run).
	void complete_in_flight() noexcept;
	/// Lines of the drain in flight.
	std::size_t in_flight_lines() const noexcept { return in_flight_.size(); }

	/// Called at every drain: before_drain with the pending set intact,
	/// after_drain once it has been committed. Keep them cheap.
	std::function<void()> before_drain;
	std::function<void()> after_drain;

	/// The durable image D.
	std::span<const std::byte> durable() const noexcept { return durable_; }
	/// Lines flushed but not yet drained.
	std::size_t pending_lines() const noexcept { return pending_.size(); }

	enum class Extra : std::uint8_t {
		none,        ///< D only
		all,         ///< D + every pending snapshot + every dirty line of V
		random,      ///< D + a random subset of pending snapshots and dirty lines
		torn,        ///< like random, but per aligned 8-byte word (failure atomicity is 8 B)
	};
	/// Writes a crash image into `out` (same size as V): D plus the lines
	/// chosen by `extra`. A dirty line is taken either as its pending
	/// snapshot or as V's current content.
	void crash_image(std::span<std::byte> out, Extra extra, std::mt19937_64* rng = nullptr) const;

	/// Marks all of V durable (e.g. after formatting a test pool).
	void sync_all();

private:
	std::span<std::byte> image_;
	std::vector<std::byte> durable_;
	std::unordered_map<std::size_t, std::array<std::byte, kLine>> pending_;  ///< line index -> snapshot
	std::unordered_map<std::size_t, std::array<std::byte, kLine>> in_flight_;  ///< drain_begin()'s snapshots
	bool pipelined_ = false;
	void commit_lines(const std::unordered_map<std::size_t, std::array<std::byte, kLine>>& lines) noexcept;
};

}  // namespace daxnet::pmem
