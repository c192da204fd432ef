// SPDX-License-Identifier: BSD-2-Clause
//
// Incremental checkpoints (docs/wal-format.md §Checkpoints, fuzzy;
// KvOptions::checkpoint_step): bounded work per commit, mutations during the
// checkpoint, an index rehash in the middle, and recovery at every point.
#include <catch2/catch.hpp>

#include <string>

#include "wal_test_util.h"

using namespace daxnet::test;
using daxnet::pmem::BufferAllocator;
using daxnet::pmem::KvOptions;
using daxnet::pmem::KvStore;
using daxnet::pmem::Slice;

namespace {

std::uint64_t fixed_clock() noexcept
{
	return 1'000'000'000'000'000'000ull;
}

KvOptions opts(std::uint32_t step, double fraction = 0.5)
{
	KvOptions o;
	o.clock = fixed_clock;
	o.checkpoint_step = step;
	o.checkpoint_fraction = fraction;
	return o;
}

void set(KvStore& kv, RxSim& rx, const std::string& k, const std::string& v)
{
	REQUIRE(kv.set(rx.receive_one(k), rx.receive_one(v)) == 0);
}

}  // namespace

TEST_CASE("an incremental checkpoint writes at most about one step per commit and installs at the end",
	  "[unit][pmem]")
{
	MemPool p({.buffer_size = 2048, .buffers = 2048, .wal_size = 4096 + 64 * 4096, .ckpt_size = 1024 * 1024});
	BufferAllocator alloc;
	auto kv = std::move(*KvStore::open(p.view(), alloc, opts(64)));
	RxSim rx(p.view(), alloc);
	for (int i = 0; i < 3000; i++)
		set(*kv, rx, "k" + std::to_string(i), "v" + std::to_string(i));
	REQUIRE(kv->commit() > 0);  // 3000 records > half the ring: a checkpoint begins
	rx.release();
	REQUIRE(kv->checkpoint_pending());
	CHECK(kv->wal().stats().checkpoints == 0);
	const std::uint64_t head0 = kv->wal().head_seq();
	int commits = 0;
	while (kv->checkpoint_pending()) {
		set(*kv, rx, "k" + std::to_string(commits % 50), "w" + std::to_string(commits));
		REQUIRE(kv->commit() == 1);
		rx.release();
		commits++;
		REQUIRE(commits < 200);
	}
	// 3000 keys in steps of 64 entries (a bucket is written whole, so a
	// step may run a few over): about 47 commits, not one.
	CHECK(commits >= 40);
	CHECK(kv->wal().stats().checkpoints == 1);
	CHECK(kv->wal().stats().ckpt_records == 3000);
	// head moved to covers_seq (the next_seq at begin), not to next_seq:
	// the overwrites made during the checkpoint stay in the log.
	CHECK(kv->wal().head_seq() > head0);
	CHECK(kv->wal().head_seq() < kv->wal().next_seq());
	CHECK(kv->wal().used() >= static_cast<std::uint64_t>(commits));
	MemPool d(p.geometry(), p.shadow()->durable());
	BufferAllocator a2;
	auto r = KvStore::open(d.view(), a2, opts(0));
	REQUIRE(r);
	CHECK(flatten(**r, fixed_clock()) == flatten(*kv, fixed_clock()));
	rx.release();
	for (std::uint32_t b = 0; b < alloc.count(); b++)
		REQUIRE(a2.refcount(b) == alloc.refcount(b));
}

TEST_CASE("an index rehash during an incremental checkpoint begins it again and loses nothing", "[unit][pmem]")
{
	MemPool p({.buffer_size = 2048, .buffers = 4096, .wal_size = 4096 + 64 * 2048, .ckpt_size = 2 * 1024 * 1024});
	BufferAllocator alloc;
	auto kv = std::move(*KvStore::open(p.view(), alloc, opts(8, 0.25)));
	RxSim rx(p.view(), alloc);
	int n = 0;
	std::uint64_t rehashes_seen = 0;
	std::size_t buckets = 0;
	// Keys keep arriving, so the index grows through several rehashes
	// while checkpoints are in progress.
	for (int batch = 0; batch < 600; batch++) {
		for (int i = 0; i < 16; i++, n++)
			set(*kv, rx, "key:" + std::to_string(n), std::string(1 + n % 40, 'a' + static_cast<char>(n % 26)));
		REQUIRE(kv->commit() >= 0);
		rx.release();
		if (buckets && kv->checkpoint_pending() && buckets != kv->index_buckets())
			rehashes_seen++;
		buckets = kv->index_buckets();
	}
	CHECK(kv->wal().stats().checkpoints > 3);
	CHECK(rehashes_seen > 0);
	MemPool d(p.geometry(), p.shadow()->durable());
	BufferAllocator a2;
	auto r = KvStore::open(d.view(), a2, opts(0));
	REQUIRE(r);
	CHECK((*r)->dbsize() == static_cast<std::size_t>(n));
	CHECK(flatten(**r, fixed_clock()) == flatten(*kv, fixed_clock()));
}
