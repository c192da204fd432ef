// SPDX-License-Identifier: BSD-2-Clause
//
// Helpers for the WAL/KV tests: a pool image in DRAM with a shadow domain,
// a simulated receive path that packs payloads into pool buffers, a flat
// copy of a store's state for comparisons, and the stores tests start from.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <cstring>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daxnet/pmem/buffer_alloc.h"
#include "daxnet/pmem/kv.h"
#include "daxnet/pmem/pool.h"
#include "daxnet/pmem/shadow.h"

namespace daxnet::test {

using namespace daxnet::pmem;

struct AlignedFree {
	void operator()(std::byte* p) const noexcept { std::free(p); }
};

/// A pool image in DRAM: superblock formatted, everything else zero.
class MemPool {
public:
	struct Layout {
		std::uint32_t buffer_size = 2048;
		std::uint32_t buffers = 1024;
		std::uint64_t wal_size = 64 * 1024;
		std::uint64_t ckpt_size = 512 * 1024;
	};

	explicit MemPool(const Layout& l, bool shadow = true)
	{
		const std::uint64_t size = 4096 + l.wal_size + l.ckpt_size + std::uint64_t{l.buffers} * l.buffer_size;
		auto g = plan_geometry(size, l.buffer_size, l.wal_size, l.ckpt_size);
		if (!g)
			throw std::runtime_error(g.error().message);
		geo_ = *g;
		size_ = size;
		mem_.reset(static_cast<std::byte*>(std::aligned_alloc(4096, size)));
		std::memset(mem_.get(), 0, size);
		Uuid u{};
		for (std::size_t i = 0; i < u.size(); i++)
			u[i] = static_cast<std::uint8_t>(0xa0 + i);
		format_superblock(*reinterpret_cast<Superblock*>(mem_.get()), geo_, u, 1);
		make_domain(shadow);
	}

	/// A copy of `image` (e.g. a crash image) as a fresh pool.
	MemPool(const Geometry& g, std::span<const std::byte> image, bool shadow = false) : geo_(g), size_(image.size())
	{
		mem_.reset(static_cast<std::byte*>(std::aligned_alloc(4096, size_)));
		std::memcpy(mem_.get(), image.data(), size_);
		make_domain(shadow);
	}

	std::span<std::byte> image() noexcept { return {mem_.get(), size_}; }
	/// Replaces the whole image (same size), e.g. with a new crash image.
	void load(std::span<const std::byte> image) noexcept { std::memcpy(mem_.get(), image.data(), size_); }
	const PoolView& view() const noexcept { return view_; }
	const Geometry& geometry() const noexcept { return geo_; }
	ShadowDomain* shadow() noexcept { return shadow_.get(); }
	PersistDomain& domain() noexcept { return *domain_; }

private:
	void make_domain(bool shadow)
	{
		if (shadow) {
			shadow_ = std::make_unique<ShadowDomain>(image());
			domain_ = shadow_.get();
		} else {
			counting_ = std::make_unique<CountingDomain>();
			domain_ = counting_.get();
		}
		view_ = PoolView(mem_.get(), geo_, domain_);
	}

	Geometry geo_{};
	std::uint64_t size_ = 0;
	std::unique_ptr<std::byte, AlignedFree> mem_;
	std::unique_ptr<ShadowDomain> shadow_;
	std::unique_ptr<CountingDomain> counting_;
	PersistDomain* domain_ = nullptr;
	PoolView view_{};
};

/// The receive path: packs received bytes into pool buffers it holds (like
/// the kernel copy path packing small messages), splitting large payloads
/// across buffers. Plain stores, no flush: the WAL flushes what it keeps.
class RxSim {
public:
	RxSim(const PoolView& pool, BufferAllocator& alloc) : pool_(pool), alloc_(&alloc) {}
	~RxSim() { release(); }

	/// Receives `bytes`; returns the slices holding them (empty on ENOSPC).
	std::vector<Slice> receive(std::string_view bytes)
	{
		std::vector<Slice> out;
		std::size_t done = 0;
		do {
			if (cur_ < 0 || used_ == pool_.buffer_size()) {
				const auto b = alloc_->alloc();
				if (b < 0)
					return {};
				held_.push_back(static_cast<std::uint32_t>(b));
				cur_ = b;
				used_ = 0;
			}
			const auto buf = static_cast<std::uint32_t>(cur_);
			const std::size_t n = std::min<std::size_t>(bytes.size() - done, pool_.buffer_size() - used_);
			std::memcpy(pool_.buffer(buf) + used_, bytes.data() + done, n);
			out.push_back(Slice{buf, used_, static_cast<std::uint32_t>(n)});
			used_ += static_cast<std::uint32_t>(n);
			done += n;
		} while (done < bytes.size());
		return out;
	}
	/// Receives `bytes` into one buffer (a key: never split).
	Slice receive_one(std::string_view bytes)
	{
		if (cur_ >= 0 && pool_.buffer_size() - used_ < bytes.size())
			used_ = pool_.buffer_size();  // start a new buffer
		auto v = receive(bytes);
		return v.empty() ? Slice{} : v[0];
	}
	/// Drops the holds on every buffer received into so far (the network
	/// layer does this once the WAL has staged what it keeps); the next
	/// receive takes a new buffer.
	void release()
	{
		for (auto b : held_)
			alloc_->unref(b);
		held_.clear();
		cur_ = -1;
		used_ = 0;
	}

private:
	PoolView pool_;
	BufferAllocator* alloc_;
	std::int64_t cur_ = -1;
	std::uint32_t used_ = 0;
	std::vector<std::uint32_t> held_;
};

inline std::string bytes_of(const PoolView& pool, const ValueRef& v)
{
	std::string s;
	for (const auto& sl : v.slices) {
		auto b = slice_bytes(pool, sl);
		s.append(reinterpret_cast<const char*>(b.data()), b.size());
	}
	return s;
}

/// A store's state as plain values.
struct FlatState {
	std::map<std::string, std::pair<std::string, std::uint64_t>> kv;  ///< key -> (value, expiry)
	std::map<std::string, std::vector<std::pair<std::string, std::uint64_t>>> streams;  ///< name -> retained (body, stamp)
	std::map<std::string, std::uint64_t> stream_first;  ///< name -> first retained position
	std::set<std::string> typed;  ///< keys whose value was stored typed (KV_SET_TYPED)

	friend bool operator==(const FlatState&, const FlatState&) = default;
};

/// Flattens `kv`, leaving out keys expired at `now`.
inline FlatState flatten(const KvStore& kv, std::uint64_t now)
{
	FlatState f;
	kv.for_each([&](std::string_view k, const ValueRef& v) {
		if (v.expiry_ns && v.expiry_ns <= now)
			return;
		f.kv[std::string(k)] = {bytes_of(kv.pool(), v), v.expiry_ns};
		if (v.typed)
			f.typed.emplace(k);
	});
	kv.for_each_stream([&](std::string_view name, std::uint64_t len) {
		auto& out = f.streams[std::string(name)];
		f.stream_first[std::string(name)] = kv.stream_first(name);
		std::vector<StreamEntryRef> ents(len);
		const std::size_t n = kv.stream_read(name, 0, ents);
		for (std::size_t i = 0; i < n; i++)
			out.emplace_back(bytes_of(kv.pool(), ents[i].body), ents[i].stamp);
	});
	return f;
}

/// A clock that stands still (KvOptions::clock for tests without expiry
/// timing): 10^18 ns.
inline std::uint64_t kv_test_clock() noexcept
{
	return 1'000'000'000'000'000'000ull;
}

/// KvOptions of the tests: the standing clock, a checkpoint every `step`
/// entries (0: the store's default).
inline KvOptions kv_test_options(std::uint32_t step = 0)
{
	KvOptions o;
	o.clock = kv_test_clock;
	o.checkpoint_step = step;
	return o;
}

/// A small pool whose log is a ring of 512 slots (32 kept for freeing
/// entries) and whose checkpoint halves hold 448 records.
inline MemPool::Layout small_ring_layout()
{
	return {.buffer_size = 2048, .buffers = 1024, .wal_size = 4096 + 64 * 512, .ckpt_size = 64 * 1024};
}

/// Opens a store on `pool` (REQUIREd to succeed).
inline std::unique_ptr<KvStore> open_kv(MemPool& pool, BufferAllocator& alloc, const KvOptions& o)
{
	auto kv = KvStore::open(pool.view(), alloc, o);
	REQUIRE(kv.ok());
	return std::move(*kv);
}

/// A store on a small_ring_layout() pool checkpointing every Step entries,
/// for TEST_CASE_METHOD (the body sees p, alloc, kv and rx).
template <std::uint32_t Step> struct SmallRingStore {
	MemPool p{small_ring_layout()};
	BufferAllocator alloc;
	std::unique_ptr<KvStore> kv = open_kv(p, alloc, kv_test_options(Step));
	RxSim rx{p.view(), alloc};
};

/// Recovers a copy of `src`'s durable image (what survives power loss now).
struct Recovered {
	MemPool pool;
	pmem::BufferAllocator alloc;
	std::unique_ptr<pmem::KvStore> kv;
	pmem::RecoveryReport report;

	Recovered(MemPool& src, const pmem::KvOptions& o) : pool(src.geometry(), src.shadow()->durable())
	{
		auto r = pmem::KvStore::open(pool.view(), alloc, o, &report);
		if (!r)
			throw std::runtime_error("recovery failed: " + r.error().message);
		kv = std::move(*r);
	}
};

inline std::string describe(const FlatState& f)
{
	std::string s = std::to_string(f.kv.size()) + " keys (" + std::to_string(f.typed.size()) + " typed), " +
			std::to_string(f.streams.size()) + " streams (";
	for (const auto& [n, v] : f.streams)
		s += n + ":" + std::to_string(v.size()) + " ";
	return s + ")";
}

}  // namespace daxnet::test
