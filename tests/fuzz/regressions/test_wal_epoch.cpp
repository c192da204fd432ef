// SPDX-License-Identifier: BSD-2-Clause
// needs: daxnet_pmem
//
// A bug the WAL recovery fuzzer (tests/fuzz/fuzz_wal_recovery.cpp) found in
// pmem/src/wal.cpp (now wal_recovery.cpp), as a named regression test; the saved fuzzer inputs are
// in tests/fuzz/regressions/wal_recovery/.
//
// Recovery moves to epoch state.epoch + 1 without looking at the epochs
// already present in the ring. When the ring holds valid records written in
// that epoch (they exist whenever the newest log-state slot is lost: the
// reader falls back to the older slot, whose epoch is one lower), the first
// recovery rejects them ("epoch out of order") and the next recovery, after
// no write at all, accepts them: recovery is not idempotent, and the records
// come back behind entries appended in between.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "daxnet/pmem/buffer_alloc.h"
#include "daxnet/pmem/pool.h"
#include "daxnet/pmem/wal.h"

using namespace daxnet::pmem;

namespace {

class CountOnly final : public PersistDomain {
public:
	Granularity granularity() const noexcept override { return Granularity::byte; }
	void flush(const void*, std::size_t) noexcept override {}
	void drain() noexcept override {}
	using PersistDomain::flush;
};

struct MemImage {
	std::vector<std::byte> mem;
	CountOnly domain;
	PoolView view;

	MemImage()
	{
		auto g = plan_geometry(1u << 20, 2048, 4096 + 64 * 64, 4 * 4096);
		REQUIRE(g.ok());
		mem.assign(1u << 20, std::byte{0});
		Uuid u{};
		u[0] = 7;
		format_superblock(*reinterpret_cast<Superblock*>(mem.data()), *g, u, 1);
		view = PoolView(mem.data(), *g, &domain);
	}
};

std::vector<std::string> recover(MemImage& img, std::uint64_t* next_seq = nullptr)
{
	BufferAllocator alloc;
	std::vector<std::string> keys;
	auto w = Wal::open(img.view, alloc, WalOptions{}, [&](const Entry& e, std::uint64_t) {
		keys.emplace_back(reinterpret_cast<const char*>(img.view.buffer(e.key.buf)) + e.key.off, e.key.len);
	});
	REQUIRE(w.ok());
	if (next_seq)
		*next_seq = w->next_seq();
	return keys;
}

/// Opens, appends SET <key> <value> and commits.
void set_one(MemImage& img, const std::string& key)
{
	BufferAllocator alloc;
	auto w = Wal::open(img.view, alloc, WalOptions{}, [](const Entry&, std::uint64_t) {});
	REQUIRE(w.ok());
	const std::int64_t b = alloc.alloc();
	REQUIRE(b >= 0);
	const auto buf = static_cast<std::uint32_t>(b);
	std::memcpy(img.view.buffer(buf), key.data(), key.size());
	std::memcpy(img.view.buffer(buf) + key.size(), "v", 1);
	const Slice k{buf, 0, static_cast<std::uint32_t>(key.size())};
	const Slice v{buf, static_cast<std::uint32_t>(key.size()), 1};
	Entry e;
	e.type = RecordType::kv_set;
	e.key = k;
	e.value = std::span<const Slice>(&v, 1);
	REQUIRE(w->append(e) == 0);
	REQUIRE(w->commit() == 1);
}

}  // namespace

TEST_CASE("WAL recovery is idempotent when the newest log-state slot is lost", "[unit][fuzz][wal]")
{
	MemImage img;
	set_one(img, "a");  // open 1: slot A, epoch 1; SET a at seq 1
	set_one(img, "b");  // open 2: slot B, epoch 2; SET b at seq 2 (epoch 2)

	// The newest log-state slot (B) is damaged: the reader falls back to A.
	img.view.wal_area()[kWalStateSlotB + 20] ^= std::byte{0x40};

	const auto first = recover(img);   // A: epoch 1; seq 2 has epoch 2: rejected
	const auto second = recover(img);  // after no write at all
	CHECK(second == first);
}

TEST_CASE("WAL records rejected by recovery stay rejected after later appends", "[unit][fuzz][wal]")
{
	MemImage img;
	set_one(img, "a");
	set_one(img, "b");
	set_one(img, "c");  // open 3: slot A again, epoch 3; SET c at seq 3
	img.view.wal_area()[20] ^= std::byte{0x40};  // newest slot (A) damaged: B says epoch 2

	const auto before = recover(img);
	set_one(img, "d");
	const auto after = recover(img);
	std::vector<std::string> want = before;
	want.emplace_back("d");
	CHECK(after == want);
}
