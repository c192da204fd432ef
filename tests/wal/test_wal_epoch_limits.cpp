// SPDX-License-Identifier: BSD-2-Clause
//
// Epochs and sequence-number bounds (docs/wal-format.md §Epochs, §WAL area
// layout): a new epoch lies above every epoch in the ring, so records written
// under a lost newest log-state slot never come back; a record far ahead of
// the state, or an exhausted epoch space, refuses to open without writing;
// seqs stay below 2^63 so the window never wraps to 0.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "daxnet/pmem/crc32c.h"
#include "daxnet/pmem/wal.h"
#include "wal_test_util.h"

using namespace daxnet::test;
using namespace daxnet::pmem;

namespace {

/// A pool whose image is the memory itself (flushes only count), so a store
/// that is dropped leaves exactly what it wrote: every reopen is a restart.
struct LogPool {
	MemPool pool{MemPool::Layout{}, false};

	const PoolView& view() const { return pool.view(); }
	std::uint64_t nslots() const { return wal_nslots(pool.geometry().wal_size); }

	struct Opened {
		daxnet::Result<std::unique_ptr<KvStore>> kv{daxnet::make_error(0, "")};
		RecoveryReport rep;
		BufferAllocator alloc;
	};

	std::unique_ptr<Opened> open(bool read_only = false)
	{
		auto o = std::make_unique<Opened>();
		KvOptions opt;
		opt.wal.read_only = read_only;
		o->kv = KvStore::open(view(), o->alloc, opt, &o->rep);
		return o;
	}

	/// Opens, SETs `key` (and commits), closes.
	void set_one(const std::string& key)
	{
		auto o = open();
		REQUIRE(o->kv);
		RxSim rx(view(), o->alloc);
		REQUIRE((*o->kv)->set(rx.receive_one(key), rx.receive_one("v-" + key)) == 0);
		REQUIRE((*o->kv)->commit() == 1);
	}

	/// The keys a (writing) recovery finds, sorted.
	std::vector<std::string> keys()
	{
		auto o = open();
		REQUIRE(o->kv);
		std::vector<std::string> out;
		(*o->kv)->for_each([&](std::string_view k, const ValueRef&) { out.emplace_back(k); });
		std::sort(out.begin(), out.end());
		return out;
	}

	/// Log-state slot A (0) or B (1).
	LogState* slot(int which)
	{
		return reinterpret_cast<LogState*>(view().wal_area().data() + (which ? kWalStateSlotB : 0));
	}

	/// The valid log-state slot with the larger generation (the current one).
	LogState* state()
	{
		const std::uint32_t seed = wal_pool_seed(view());
		const bool va = log_state_valid(*slot(0), seed, nslots());
		const bool vb = log_state_valid(*slot(1), seed, nslots());
		return va && (!vb || slot(0)->generation > slot(1)->generation) ? slot(0) : slot(1);
	}

	/// Recomputes the CRC of a log-state slot after editing it.
	void reseal(LogState* s)
	{
		s->crc = crc32c_mask(crc32c_extend(wal_pool_seed(view()), s, 60));
	}

	/// Writes a valid KV_FLUSHALL record with `seq` and `epoch` into its slot.
	void forge_record(std::uint64_t seq, std::uint32_t epoch)
	{
		WalRecord r{};
		r.seq = seq;
		r.type = static_cast<std::uint8_t>(RecordType::kv_flushall);
		r.count = 1;
		r.epoch = epoch;
		r.flags = kRecBatchEnd;
		r.crc = wal_record_crc(r, wal_pool_seed(view()));
		std::memcpy(view().wal_area().data() + kWalStatePage + (seq % nslots()) * kWalRecordSize, &r, sizeof r);
	}

	std::vector<std::byte> snapshot() { return {pool.image().begin(), pool.image().end()}; }
	bool unchanged(const std::vector<std::byte>& before)
	{
		return std::equal(before.begin(), before.end(), pool.image().begin());
	}

	/// Opening for writing fails with EIO and writes nothing.
	void refuses_to_open()
	{
		const auto before = snapshot();
		auto o = open();
		REQUIRE_FALSE(o->kv);
		CHECK(o->kv.error().code == EIO);
		CHECK(unchanged(before));
	}

	/// A read-only recovery still opens and finds "a" (and writes nothing).
	std::unique_ptr<Opened> read_only_finds_a()
	{
		const auto before = snapshot();
		auto ro = open(true);
		REQUIRE(ro->kv);
		CHECK((*ro->kv)->exists("a"));
		CHECK(unchanged(before));
		return ro;
	}
};

}  // namespace

TEST_CASE("records written under a lost newest log-state slot stay lost through a checkpoint and later appends",
	  "[pmem][unit]")
{
	LogPool p;
	p.set_one("a");  // epoch 1
	p.set_one("b");  // epoch 2, in the slot written by this open
	LogState* newest = p.state();
	REQUIRE(newest->epoch == 2);
	reinterpret_cast<unsigned char*>(newest)[20] ^= 0x40;  // lost: fall back to epoch 1

	{
		auto o = p.open();
		REQUIRE(o->kv);
		CHECK((*o->kv)->exists("a"));
		CHECK_FALSE((*o->kv)->exists("b"));
		CHECK(o->rep.ring_epoch == 2);
		CHECK(o->rep.epoch == 3);  // above the ring, not just the state
		CHECK(std::any_of(o->rep.problems.begin(), o->rep.problems.end(),
				  [](const std::string& s) { return s.find("epoch 2, newer") != std::string::npos; }));
		// A checkpoint moves head_seq onto the rejected record's seq.
		REQUIRE((*o->kv)->checkpoint() == 0);
	}
	CHECK(p.keys() == std::vector<std::string>{"a"});
	CHECK(p.keys() == std::vector<std::string>{"a"});
	p.set_one("c");
	CHECK(p.keys() == std::vector<std::string>{"a", "c"});
}

TEST_CASE("a ring record more than 2^16 epochs ahead of the log state refuses to open and writes nothing",
	  "[pmem][unit]")
{
	LogPool p;
	p.set_one("a");
	const std::uint32_t epoch = p.state()->epoch;
	const std::uint64_t next = p.state()->epoch_seq + 1;

	SECTION("2^16 ahead is a lost slot's worth: it opens above it and reopens")
	{
		p.forge_record(next, epoch + kWalMaxEpochLead);
		auto o = p.open();
		REQUIRE(o->kv);
		CHECK(o->rep.epoch == epoch + kWalMaxEpochLead + 1);
		CHECK((*o->kv)->dbsize() == 1);  // the forged FLUSHALL is not applied
		o.reset();
		CHECK(p.keys() == std::vector<std::string>{"a"});
	}
	SECTION("2^16 + 1 ahead: EIO, image untouched; read-only recovery still reports")
	{
		p.forge_record(next, epoch + kWalMaxEpochLead + 1);
		p.refuses_to_open();
		auto ro = p.read_only_finds_a();
		CHECK(ro->rep.ring_epoch == epoch + kWalMaxEpochLead + 1);
	}
}

TEST_CASE("a log state at the last epoch refuses to open for writing and writes nothing", "[pmem][unit]")
{
	LogPool p;
	p.set_one("a");
	LogState* s = p.state();
	s->epoch = UINT32_MAX;
	s->epoch_seq = s->head_seq + 10;  // "a" (epoch 1) stays below epoch_seq
	p.reseal(s);
	p.refuses_to_open();
	p.read_only_finds_a();
}

TEST_CASE("sequence numbers stop below 2^63: appends past it fail and the head never wraps to 0", "[pmem][unit]")
{
	LogPool p;
	p.set_one("old");
	// Move the log next to the limit: head 2^63 - 2, nothing in the window.
	LogState* s = p.state();
	s->head_seq = kWalSeqLimit - 2;
	s->epoch_seq = s->head_seq;
	p.reseal(s);
	{
		auto o = p.open();
		REQUIRE(o->kv);
		CHECK(o->rep.next_seq == kWalSeqLimit - 2);
		RxSim rx(p.view(), o->alloc);
		KvStore& kv = **o->kv;
		REQUIRE(kv.set(rx.receive_one("x"), rx.receive_one("1")) == 0);  // seq 2^63 - 2
		REQUIRE(kv.set(rx.receive_one("y"), rx.receive_one("2")) == 0);  // seq 2^63 - 1
		CHECK(kv.set(rx.receive_one("z"), rx.receive_one("3")) == -EOVERFLOW);
		REQUIRE(kv.commit() == 2);
		CHECK(kv.wal().next_seq() == kWalSeqLimit);
		// The checkpoint's head_seq is exactly 2^63: still a valid state.
		REQUIRE(kv.checkpoint() == 0);
		CHECK(kv.wal().head_seq() == kWalSeqLimit);
	}
	// A forged record at seq 2^63 (never written by a writer) is not accepted.
	p.forge_record(kWalSeqLimit, p.state()->epoch);
	{
		auto o = p.open();
		REQUIRE(o->kv);
		CHECK(o->rep.next_seq == kWalSeqLimit);
		CHECK((*o->kv)->dbsize() == 2);
	}
	CHECK(p.keys() == std::vector<std::string>{"x", "y"});
}

TEST_CASE("a log-state slot whose head_seq is above 2^63 is invalid", "[pmem][unit]")
{
	LogPool p;
	p.set_one("a");
	p.set_one("b");
	// The newest slot claims a head near 2^64 (where seq + N would wrap).
	LogState* s = p.state();
	s->head_seq = ~std::uint64_t{0};
	s->epoch_seq = s->head_seq;
	p.reseal(s);
	CHECK_FALSE(log_state_valid(*s, wal_pool_seed(p.view()), p.nslots()));
	{
		auto o = p.open();  // falls back to the older slot
		REQUIRE(o->kv);
		CHECK(o->rep.head_seq == 1);
		CHECK((*o->kv)->exists("a"));
	}
	// Both slots that far: unreadable, nothing written.
	for (int i = 0; i < 2; i++) {
		p.slot(i)->head_seq = kWalSeqLimit + 1;
		p.reseal(p.slot(i));
	}
	p.refuses_to_open();
}
