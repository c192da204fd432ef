// SPDX-License-Identifier: BSD-2-Clause
//
// Typed values (docs/wal-format.md §Record, KV_SET_TYPED; §Log state, flags
// bit TYPED): a value stored typed reads back typed after a restart, a
// whole or incremental checkpoint and a crash; a plain SET over it makes it
// a string again; the first typed value sets the TYPED flag before it can
// be durable, and a pool that never stored one keeps the flags an older
// daxnet reads. (The crash workload of test_wal_crash mixes typed SETs in
// too, cleaner relocations included.)
#include <catch2/catch.hpp>

#include <cstring>
#include <string>

#include "wal_test_util.h"

using namespace daxnet::test;
using daxnet::pmem::BufferAllocator;
using daxnet::pmem::KvOptions;
using daxnet::pmem::KvStore;
using daxnet::pmem::LogState;
using daxnet::pmem::ValueRef;

namespace {

const LogState* newest_state(MemPool& p)
{
	const auto* a = reinterpret_cast<const LogState*>(p.view().wal_area().data());
	const auto* b = reinterpret_cast<const LogState*>(p.view().wal_area().data() + daxnet::pmem::kWalStateSlotB);
	return a->generation > b->generation ? a : b;
}

/// 1 typed, 0 a string, -1 absent; `bytes` gets the value.
int typed_of(KvStore& kv, const std::string& key, std::string* bytes = nullptr)
{
	ValueRef v;
	if (kv.get(key, v) != 1)
		return -1;
	if (bytes)
		*bytes = bytes_of(kv.pool(), v);
	return v.typed ? 1 : 0;
}

}  // namespace

TEST_CASE("a typed value stays typed across restart, checkpoints and a crash", "[unit][pmem]")
{
	for (const std::uint32_t step : {0u, 4u}) {
		MemPool p({});
		BufferAllocator alloc;
		auto kv = std::move(*KvStore::open(p.view(), alloc, kv_test_options(step)));
		RxSim rx(p.view(), alloc);
		const std::string big(5000, 'x');  // several slices: CONT records
		REQUIRE(kv->set(rx.receive_one("list"), rx.receive(std::string("\x01\x01", 2) + "abc"), 0, true) == 0);
		REQUIRE(kv->set(rx.receive_one("bigset"), rx.receive("\x02\x01" + big), 0, true) == 0);
		REQUIRE(kv->set(rx.receive_one("str"), rx.receive("plain"), 0) == 0);
		REQUIRE(kv->set(rx.receive_one("was"), rx.receive("\x01\x01 typed"), 0, true) == 0);
		REQUIRE(kv->commit() > 0);
		REQUIRE(kv->set(rx.receive_one("was"), rx.receive("a string now"), 0) == 0);
		REQUIRE(kv->commit() > 0);
		rx.release();
		CHECK(typed_of(*kv, "list") == 1);
		CHECK(typed_of(*kv, "str") == 0);
		CHECK(typed_of(*kv, "was") == 0);

		auto check = [&](KvStore& k) {
			std::string b;
			CHECK(typed_of(k, "list", &b) == 1);
			CHECK(b == std::string("\x01\x01", 2) + "abc");
			CHECK(typed_of(k, "bigset", &b) == 1);
			CHECK(b == "\x02\x01" + big);
			CHECK(typed_of(k, "str", &b) == 0);
			CHECK(b == "plain");
			CHECK(typed_of(k, "was", &b) == 0);
			CHECK(b == "a string now");
		};
		{
			INFO("the log replayed, step " << step);
			Recovered r(p, kv_test_options(step));
			check(*r.kv);
		}
		// A checkpoint (whole, or stepped over several commits) writes
		// them again as what they are.
		if (step == 0) {
			REQUIRE(kv->checkpoint() == 0);
		} else {
			REQUIRE(kv->reclaim() == 0);
			for (int i = 0; i < 64 && kv->checkpoint_pending(); i++) {
				REQUIRE(kv->set(rx.receive_one("tick"), rx.receive(std::to_string(i)), 0) == 0);
				REQUIRE(kv->commit() > 0);
				rx.release();
			}
			REQUIRE_FALSE(kv->checkpoint_pending());
		}
		{
			INFO("from the checkpoint, step " << step);
			Recovered r(p, kv_test_options(step));
			CHECK(r.report.ckpt_entries > 0);
			check(*r.kv);
			// and again after that recovery's own checkpoint
			REQUIRE(r.kv->checkpoint() == 0);
			MemPool d2(r.pool.geometry(), r.pool.image());
			BufferAllocator a2;
			auto r2 = KvStore::open(d2.view(), a2, kv_test_options(step));
			REQUIRE(r2);
			check(**r2);
		}
		check(*kv);
	}
}

TEST_CASE("the first typed value sets the TYPED flag before it is durable; strings alone leave flags 0",
	  "[unit][pmem]")
{
	MemPool p({});
	BufferAllocator alloc;
	auto kv = std::move(*KvStore::open(p.view(), alloc, kv_test_options()));
	RxSim rx(p.view(), alloc);
	REQUIRE(kv->set(rx.receive_one("s"), rx.receive("v"), 0) == 0);
	REQUIRE(kv->commit() > 0);
	REQUIRE(kv->checkpoint() == 0);
	CHECK(newest_state(p)->flags == 0);  // an older daxnet still reads this pool

	REQUIRE(kv->set(rx.receive_one("t"), rx.receive("\x02\x01"), 0, true) == 0);
	{
		// persisted with the state, before the record is committed
		MemPool d(p.geometry(), p.shadow()->durable());
		CHECK((newest_state(d)->flags & daxnet::pmem::kStateFlagTyped) != 0);
	}
	REQUIRE(kv->commit() == 1);
	REQUIRE(kv->checkpoint() == 0);
	CHECK(newest_state(p)->flags == daxnet::pmem::kStateFlagTyped);  // kept by later states
}

TEST_CASE("a recovery that replays a typed value sets TYPED even when the state that had it was lost",
	  "[unit][pmem]")
{
	MemPool p({});
	BufferAllocator alloc;
	auto kv = std::move(*KvStore::open(p.view(), alloc, kv_test_options()));
	RxSim rx(p.view(), alloc);
	REQUIRE(kv->set(rx.receive_one("t"), rx.receive("\x01\x01xyz"), 0, true) == 0);
	REQUIRE(kv->commit() == 1);
	MemPool d(p.geometry(), p.shadow()->durable());
	auto* a = reinterpret_cast<LogState*>(d.view().wal_area().data());
	auto* b = reinterpret_cast<LogState*>(d.view().wal_area().data() + daxnet::pmem::kWalStateSlotB);
	LogState* newest = a->generation > b->generation ? a : b;
	REQUIRE((newest->flags & daxnet::pmem::kStateFlagTyped) != 0);
	std::memset(static_cast<void*>(newest), 0xa5, sizeof *newest);
	BufferAllocator a2;
	auto r = KvStore::open(d.view(), a2, kv_test_options());
	REQUIRE(r);
	CHECK(typed_of(**r, "t") == 1);
	CHECK((newest_state(d)->flags & daxnet::pmem::kStateFlagTyped) != 0);
}
