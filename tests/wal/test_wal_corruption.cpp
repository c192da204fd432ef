// SPDX-License-Identifier: BSD-2-Clause
//
// Recovery from damaged media (docs/wal-format.md §Recovery): bit flips,
// zeroed (truncated) log, torn last record, torn or bad log state, bad
// checkpoint, foreign pool identity. Recovery stops at the last valid record,
// reports what it dropped and never writes to an image it refuses.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "wal_test_util.h"

using namespace daxnet::test;
using daxnet::pmem::BufferAllocator;
using daxnet::pmem::CkptHeader;
using daxnet::pmem::KvOptions;
using daxnet::pmem::KvStore;
using daxnet::pmem::LogState;
using daxnet::pmem::RecoveryReport;
using daxnet::pmem::Slice;
using daxnet::pmem::ValueRef;
using daxnet::pmem::WalRecord;

namespace {

/// A store with `batches` committed batches of 4 SETs each ("k<batch>.<i>"),
/// optionally a checkpoint after the first half. Returns the seq of the
/// first record of each batch.
struct Fixture {
	MemPool pool{MemPool::Layout{}};
	BufferAllocator alloc;
	std::unique_ptr<KvStore> kv;
	std::vector<std::uint64_t> batch_seq;
	std::vector<Slice> values;  ///< value slice of every SET, in order

	explicit Fixture(int batches, bool checkpoint_midway = false)
	{
		kv = std::move(*KvStore::open(pool.view(), alloc));
		RxSim rx(pool.view(), alloc);
		for (int b = 0; b < batches; b++) {
			batch_seq.push_back(kv->wal().next_seq());
			for (int i = 0; i < 4; i++) {
				const std::string k = "k" + std::to_string(b) + "." + std::to_string(i);
				const Slice v = rx.receive_one("value of " + k);
				values.push_back(v);
				REQUIRE(kv->set(rx.receive_one(k), v) == 0);
			}
			REQUIRE(kv->commit() == 4);
			rx.release();
			if (checkpoint_midway && b == batches / 2)
				REQUIRE(kv->checkpoint() == 0);
		}
	}

	/// The durable image, as a separate pool to damage and recover.
	MemPool image() { return MemPool(pool.geometry(), pool.shadow()->durable()); }
};

WalRecord* record(MemPool& p, std::uint64_t seq)
{
	const std::uint64_t n = daxnet::pmem::wal_nslots(p.geometry().wal_size);
	return reinterpret_cast<WalRecord*>(p.view().wal_area().data() + 4096 + (seq % n) * 64);
}

struct Opened {
	daxnet::Result<std::unique_ptr<KvStore>> kv;
	RecoveryReport rep;
	BufferAllocator alloc;
};

std::unique_ptr<Opened> open_copy(MemPool& p, bool truncate = false)
{
	auto o = std::make_unique<Opened>(Opened{daxnet::make_error(0, ""), {}, {}});
	KvOptions opt;
	opt.wal.allow_truncate = truncate;
	o->kv = KvStore::open(p.view(), o->alloc, opt, &o->rep);
	return o;
}

std::vector<std::byte> snapshot(MemPool& p)
{
	return {p.image().begin(), p.image().end()};
}

bool unchanged(MemPool& p, const std::vector<std::byte>& before)
{
	return std::equal(before.begin(), before.end(), p.image().begin());
}

}  // namespace

TEST_CASE("a bit flip in a committed record mid-log refuses to open and writes nothing", "[unit][pmem]")
{
	Fixture f(6);
	MemPool img = f.image();
	WalRecord* r = record(img, f.batch_seq[2] + 1);
	reinterpret_cast<unsigned char*>(r)[20] ^= 0x10;  // s0.off
	const auto before = snapshot(img);
	auto o = open_copy(img);
	REQUIRE_FALSE(o->kv);
	CHECK(o->kv.error().code == EIO);
	CHECK(o->rep.stop == RecoveryReport::Stop::corruption);
	// §Recovery, batches: the log ends where the damaged batch begins.
	CHECK(o->rep.next_seq == f.batch_seq[2]);
	CHECK(o->rep.stop_reason.find("record CRC mismatch") != std::string::npos);
	CHECK(unchanged(img, before));
}

TEST_CASE("allow_truncate salvages up to the bad record and quarantines the buffers beyond it", "[unit][pmem]")
{
	Fixture f(6);
	MemPool img = f.image();
	reinterpret_cast<unsigned char*>(record(img, f.batch_seq[3]))[9] ^= 0x01;  // aux
	auto o = open_copy(img, true);
	REQUIRE(o->kv);
	CHECK(o->rep.stop == RecoveryReport::Stop::corruption);
	CHECK(o->rep.log_entries == 12);  // batches 0..2
	CHECK(o->rep.dropped_records == 11);
	CHECK((*o->kv)->dbsize() == 12);
	CHECK_FALSE((*o->kv)->exists("k3.0"));
	CHECK_FALSE(o->rep.quarantined.empty());
	// Buffers named beyond the stop are never handed out again.
	for (auto b : o->rep.quarantined)
		CHECK_FALSE(o->alloc.is_free(b));
	CHECK(o->alloc.check());
}

TEST_CASE("a payload bit flip in a committed entry is detected by its payload CRC", "[unit][pmem]")
{
	Fixture f(5);
	MemPool img = f.image();
	const Slice v = f.values[9];  // batch 2, SET 1
	img.view().buffer(v.buf)[v.off + 2] ^= std::byte{0x40};
	auto o = open_copy(img);
	REQUIRE_FALSE(o->kv);
	CHECK(o->rep.stop == RecoveryReport::Stop::corruption);
	CHECK(o->rep.stop_reason.find("payload CRC mismatch") != std::string::npos);
	CHECK(o->rep.next_seq == f.batch_seq[2]);
}

TEST_CASE("a torn last record drops only the last batch and reports it", "[unit][pmem]")
{
	Fixture f(4);
	MemPool img = f.image();
	// The last record of the last batch reached media only in its first
	// 8-byte words (failure atomicity is 8 bytes).
	WalRecord* r = record(img, f.batch_seq[3] + 3);
	std::memset(reinterpret_cast<unsigned char*>(r) + 24, 0, 40);
	auto o = open_copy(img);
	REQUIRE(o->kv);
	CHECK(o->rep.stop == RecoveryReport::Stop::torn_tail);
	// The whole batch goes: its first three records are intact but it has
	// no BATCH_END (it was never committed), so none of it is applied.
	CHECK(o->rep.log_entries == 12);
	CHECK(o->rep.uncommitted_entries == 3);
	CHECK(o->rep.dropped_records == 3);
	CHECK((*o->kv)->dbsize() == 12);
	CHECK_FALSE((*o->kv)->exists("k3.0"));
	CHECK_FALSE((*o->kv)->exists("k3.2"));
	CHECK_FALSE((*o->kv)->exists("k3.3"));
	CHECK(o->alloc.check());
}

TEST_CASE("a zeroed (truncated) log tail recovers the prefix before it", "[unit][pmem]")
{
	Fixture f(5);
	MemPool img = f.image();
	for (std::uint64_t s = f.batch_seq[3]; s < f.kv->wal().next_seq(); s++)
		std::memset(static_cast<void*>(record(img, s)), 0, 64);
	auto o = open_copy(img);
	REQUIRE(o->kv);
	CHECK(o->rep.stop == RecoveryReport::Stop::clean);  // indistinguishable from never written
	CHECK((*o->kv)->dbsize() == 12);
}

TEST_CASE("a torn log-state update falls back to the other slot", "[unit][pmem]")
{
	Fixture f(4, true);
	MemPool img = f.image();
	// Damage the slot the last open/checkpoint wrote (the newer one).
	auto* a = reinterpret_cast<LogState*>(img.view().wal_area().data());
	auto* b = reinterpret_cast<LogState*>(img.view().wal_area().data() + 2048);
	LogState* newer = a->generation > b->generation ? a : b;
	reinterpret_cast<unsigned char*>(newer)[17] ^= 0xff;
	auto o = open_copy(img);
	REQUIRE(o->kv);
	CHECK((*o->kv)->dbsize() == 16);
	CHECK_FALSE(o->rep.problems.empty());
}

TEST_CASE("both log-state slots bad refuses to open and writes nothing", "[unit][pmem]")
{
	Fixture f(3);
	MemPool img = f.image();
	img.view().wal_area()[3] ^= std::byte{1};
	img.view().wal_area()[2048 + 3] ^= std::byte{1};
	const auto before = snapshot(img);
	auto o = open_copy(img);
	REQUIRE_FALSE(o->kv);
	CHECK(o->kv.error().code == EIO);
	CHECK(unchanged(img, before));
}

TEST_CASE("a log from another pool (different uuid) is never accepted or overwritten", "[unit][pmem]")
{
	Fixture f(3);
	MemPool img = f.image();
	auto* sb = reinterpret_cast<daxnet::pmem::Superblock*>(img.image().data());
	sb->uuid[0] ^= 1;
	const auto before = snapshot(img);
	auto o = open_copy(img);
	REQUIRE_FALSE(o->kv);
	CHECK(o->kv.error().code == EIO);
	CHECK(unchanged(img, before));
}

TEST_CASE("a bad checkpoint header refuses to open", "[unit][pmem]")
{
	Fixture f(4, true);
	MemPool img = f.image();
	REQUIRE(f.kv->wal().stats().checkpoints == 1);
	auto* h = reinterpret_cast<CkptHeader*>(daxnet::pmem::ckpt_half_base(img.view(), 0));
	h->nrecords ^= 4;
	const auto before = snapshot(img);
	auto o = open_copy(img);
	REQUIRE_FALSE(o->kv);
	CHECK(o->kv.error().message.find("checkpoint") != std::string::npos);
	CHECK(unchanged(img, before));
}

TEST_CASE("a checkpoint entry with a bad payload refuses to open, naming it, and writes nothing", "[unit][pmem]")
{
	// Dropping it would lose an acknowledged value, or renumber the later
	// entries of its stream (positions already returned to clients).
	Fixture f(4, true);
	MemPool img = f.image();
	const Slice v = f.values[0];  // k0.0, carried by the checkpoint
	img.view().buffer(v.buf)[v.off] ^= std::byte{0x01};
	const auto before = snapshot(img);
	auto o = open_copy(img);
	REQUIRE_FALSE(o->kv);
	CHECK(o->kv.error().code == EIO);
	CAPTURE(o->kv.error().message);
	CHECK(o->kv.error().message.find("checkpoint 1 entry at record ") != std::string::npos);
	CHECK(o->kv.error().message.find("(KV_SET): payload CRC mismatch") != std::string::npos);
	CHECK(unchanged(img, before));
}

TEST_CASE("allow_truncate drops a checkpoint entry with a bad payload, reports it and quarantines its buffer",
	  "[unit][pmem]")
{
	Fixture f(4, true);
	MemPool img = f.image();
	const Slice v = f.values[0];  // k0.0, carried by the checkpoint
	img.view().buffer(v.buf)[v.off] ^= std::byte{0x01};
	auto o = open_copy(img, true);
	REQUIRE(o->kv);
	CHECK(o->rep.ckpt_dropped_entries == 1);
	CHECK_FALSE((*o->kv)->exists("k0.0"));
	CHECK((*o->kv)->exists("k0.1"));
	CHECK((*o->kv)->dbsize() == 15);
	CHECK_FALSE(o->alloc.is_free(v.buf));
	// A checkpoint afterwards does not release the quarantined buffer.
	REQUIRE((*o->kv)->checkpoint() == 0);
	CHECK_FALSE(o->alloc.is_free(v.buf));
}

TEST_CASE("stale records from an abandoned tail are not resurrected after a second crash", "[unit][pmem]")
{
	// Run 1: batch of 3 SETs; only the last two records reach media.
	Fixture f(2);
	MemPool img = f.image();
	RxSim rx0(f.pool.view(), f.alloc);
	const std::uint64_t t = f.kv->wal().next_seq();
	for (int i = 0; i < 3; i++)
		REQUIRE(f.kv->set(rx0.receive_one("ghost" + std::to_string(i)), rx0.receive_one("boo")) == 0);
	REQUIRE(f.kv->commit() == 3);
	MemPool img2(f.pool.geometry(), f.pool.shadow()->durable(), true);
	// Crash image: record t lost.
	std::memcpy(static_cast<void*>(record(img2, t)), record(img, t), 64);
	img2.shadow()->sync_all();
	{
		BufferAllocator a2;
		RecoveryReport rep;
		auto kv2 = KvStore::open(img2.view(), a2, {}, &rep);
		REQUIRE(kv2);
		CHECK(rep.stop == RecoveryReport::Stop::torn_tail);
		CHECK(rep.dropped_records == 2);
		CHECK((*kv2)->dbsize() == 8);
		// Run 2 rewrites seq t only, then crashes.
		RxSim rx(img2.view(), a2);
		REQUIRE((*kv2)->set(rx.receive_one("new"), rx.receive_one("value")) == 0);
		REQUIRE((*kv2)->commit() == 1);
	}
	MemPool img3(img2.geometry(), img2.shadow()->durable());
	auto o = open_copy(img3);
	REQUIRE(o->kv);
	CHECK((*o->kv)->exists("new"));
	CHECK_FALSE((*o->kv)->exists("ghost1"));  // seq t+1 of run 1 has a lower epoch
	CHECK_FALSE((*o->kv)->exists("ghost2"));
	CHECK((*o->kv)->dbsize() == 9);
}
