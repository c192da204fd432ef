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
// worker); it is not internally synchronised.
#pragma once

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

	const PersistCounters& counters() const noexcept { return counters_; }

protected:
	PersistCounters counters_;
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
