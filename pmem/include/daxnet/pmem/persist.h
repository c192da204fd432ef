// SPDX-License-Identifier: BSD-2-Clause
//
// Persistence domain: the one place through which bytes in a pool become
// durable. Everything that writes to a pool (recv into a buffer, the kernel's
// copy, a WAL record, a superblock) must later pass the written range through
// flush() and then drain() before it may be treated as durable.
//
//   flush(p, n)  schedule write-back of [p, p+n); not yet durable.
//   drain()      fence: every range flushed before it is durable after it.
//   persist(p,n) flush + drain.
//   drain_begin() pipelined drain: starts making every range flushed so far
//                durable and returns a ticket without waiting for it; the
//                ranges are durable once durable_ticket() >= the ticket
//                (drain_wait(), or completion_fd() turning readable).
//                docs/pool-format.md §Persistence, pipelined drain.
//
// Implementations:
//   * Pmem2Domain (pool.cpp): libpmem2. CACHE_LINE/BYTE granularity flush with
//     CLWB/CLFLUSHOPT and drain with SFENCE. PAGE granularity (ordinary files)
//     gathers the dirty ranges of a batch and msyncs each merged range once at
//     drain(), never once per flush call.
//   * ShadowDomain (tests): a durable image that only flush+drain update, for
//     crash-point testing.
//   * CountingDomain (below): memory that is not persistent at all (a pool
//     image in DRAM for a benchmark, a fuzzer or a recovering copy): counts
//     the calls, makes nothing durable.
//
// Lock context: a domain is used by one thread at a time (one per port /
// worker); it is not internally synchronised. A pipelined drain's flush may
// run on a flusher thread of the domain; only durable_ticket() is shared
// with it (atomic).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <type_traits>

namespace daxnet::pmem {

/// Store granularity reported by libpmem2 (the largest unit that must be
/// flushed explicitly for a store to become durable).
enum class Granularity : std::uint8_t {
	byte,        ///< eADR: stores are durable once globally visible (fence only)
	cache_line,  ///< ADR + MAP_SYNC: CLWB/CLFLUSHOPT + SFENCE
	page,        ///< no MAP_SYNC: msync of whole pages
};

std::string_view to_string(Granularity g) noexcept;

/// Counters every domain keeps; read them for fences/request figures.
struct PersistCounters {
	std::uint64_t flush_calls = 0;    ///< flush() calls
	std::uint64_t flushed_bytes = 0;  ///< bytes passed to flush()
	std::uint64_t drains = 0;         ///< drain() calls = fences
	std::uint64_t msyncs = 0;         ///< msync ranges issued (PAGE granularity)
	std::uint64_t drain_begins = 0;   ///< pipelined drains begun (drain_begin())
	std::uint64_t drain_waits = 0;    ///< times the caller had to wait for one
};

class PersistDomain {
public:
	virtual ~PersistDomain() = default;
	PersistDomain() = default;
	PersistDomain(const PersistDomain&) = delete;
	PersistDomain& operator=(const PersistDomain&) = delete;

	virtual Granularity granularity() const noexcept = 0;
	virtual void flush(const void* p, std::size_t n) noexcept = 0;
	virtual void drain() noexcept = 0;

	void persist(const void* p, std::size_t n) noexcept
	{
		flush(p, n);
		drain();
	}

	/// Typed forms: flush exactly the object, so nobody flushes the wrong
	/// address or size.
	template <class T>
	void flush(const T& obj) noexcept
	{
		static_assert(std::is_trivially_copyable_v<T>, "only plain data lives in a pool");
		flush(&obj, sizeof(T));
	}
	template <class T>
	void persist(const T& obj) noexcept
	{
		flush(obj);
		drain();
	}
	template <class T>
	void flush(std::span<T> s) noexcept
	{
		static_assert(std::is_trivially_copyable_v<T>, "only plain data lives in a pool");
		flush(s.data(), s.size_bytes());
	}
	template <class T>
	void persist(std::span<T> s) noexcept
	{
		flush(s);
		drain();
	}

	/// Pipelined drain: begins making every range flushed so far durable
	/// and returns its ticket (1, 2, ...). The caller may keep working, but
	/// treats those ranges as durable only once durable_ticket() reaches
	/// the ticket. Begun drains complete in order; a drain() or a second
	/// drain_begin() first waits for the one in flight. Default (every
	/// domain without a flusher): a drain(), so the ticket is durable on
	/// return.
	virtual std::uint64_t drain_begin() noexcept
	{
		drain();
		counters_.drain_begins++;
		durable_ticket_.store(++submitted_, std::memory_order_release);
		return submitted_;
	}
	/// Waits until durable_ticket() >= `ticket` (a ticket not yet begun:
	/// the one in flight).
	virtual void drain_wait(std::uint64_t ticket) noexcept { (void)ticket; }
	/// Readable (eventfd) whenever a pipelined drain completed since the
	/// last read; -1 when drain_begin() never leaves one in flight.
	virtual int completion_fd() const noexcept { return -1; }
	/// The newest ticket whose ranges are durable (0: none yet).
	std::uint64_t durable_ticket() const noexcept { return durable_ticket_.load(std::memory_order_acquire); }
	/// The newest ticket drain_begin() returned.
	std::uint64_t submitted_ticket() const noexcept { return submitted_; }
	/// A pipelined drain is in flight: its ranges are not durable yet.
	bool in_flight() const noexcept { return durable_ticket() < submitted_; }
	/// Waits for the drain in flight, if any.
	void drain_wait_all() noexcept
	{
		if (in_flight())
			drain_wait(submitted_);
	}

	const PersistCounters& counters() const noexcept { return counters_; }

protected:
	PersistCounters counters_;
	std::uint64_t submitted_ = 0;             ///< newest ticket begun (owner thread)
	std::atomic<std::uint64_t> durable_ticket_{0};///< newest ticket durable (flusher writes)
};

/// A domain over memory that is not persistent: flush() and drain() only
/// count (counters()). For pool images in DRAM (benchmarks, fuzzers,
/// recovering a copy); never for a pool whose contents must survive.
class CountingDomain final : public PersistDomain {
public:
	explicit CountingDomain(Granularity g = Granularity::byte) noexcept : granularity_(g) {}
	Granularity granularity() const noexcept override { return granularity_; }
	void flush(const void*, std::size_t n) noexcept override
	{
		counters_.flush_calls++;
		counters_.flushed_bytes += n;
	}
	void drain() noexcept override { counters_.drains++; }
	using PersistDomain::flush;

private:
	Granularity granularity_;
};

}  // namespace daxnet::pmem
