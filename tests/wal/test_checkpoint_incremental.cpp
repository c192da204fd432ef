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

KvOptions opts(std::uint32_t step, double fraction = 0.5)
{
	KvOptions o;
	o.clock = kv_test_clock;
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
	CHECK(flatten(**r, kv_test_clock()) == flatten(*kv, kv_test_clock()));
	rx.release();
	for (std::uint32_t b = 0; b < alloc.count(); b++)
		REQUIRE(a2.refcount(b) == alloc.refcount(b));
}

TEST_CASE("an incremental checkpoint over an index emptied by deletes still advances by bounded steps",
	  "[unit][pmem]")
{
	// Regression (issue 14 review): empty buckets did not count against a
	// step, so one commit walked every bucket of an index that deletes had
	// emptied (its bucket array never shrinks) -- a stall proportional to
	// the keys there once were.
	MemPool p({.buffer_size = 2048, .buffers = 2048, .wal_size = 4096 + 64 * 512, .ckpt_size = 1024 * 1024});
	BufferAllocator alloc;
	auto kv = std::move(*KvStore::open(p.view(), alloc, opts(1)));
	RxSim rx(p.view(), alloc);
	for (int i = 0; i < 3000; i++)
		set(*kv, rx, "k" + std::to_string(i), "v" + std::to_string(i));
	REQUIRE(kv->commit() > 0);
	rx.release();
	REQUIRE(kv->checkpoint() == 0);
	for (int i = 2; i < 3000; i++)
		REQUIRE(kv->del(rx.receive_one("k" + std::to_string(i))) == 1);
	REQUIRE(kv->commit() > 0);
	rx.release();
	REQUIRE(kv->checkpoint() == 0);
	REQUIRE(kv->dbsize() == 2);
	int commits = 0;
	while (!kv->checkpoint_pending()) {  // overwrites until the log passes half the ring
		set(*kv, rx, "k0", "w" + std::to_string(commits++));
		REQUIRE(kv->commit() == 1);
		rx.release();
		REQUIRE(commits < 5000);
	}
	commits = 0;
	while (kv->checkpoint_pending()) {
		set(*kv, rx, "k1", "x" + std::to_string(commits++));
		REQUIRE(kv->commit() == 1);
		rx.release();
		REQUIRE(commits < 1000);
	}
	// Steps of 2 entries or 128 empty buckets over 3000+ buckets: at least
	// 3000 / 128 commits (it was 1: the two keys were all the step saw).
	CHECK(commits >= 20);
	MemPool d(p.geometry(), p.shadow()->durable());
	BufferAllocator a2;
	auto r = KvStore::open(d.view(), a2, opts(0));
	REQUIRE(r);
	CHECK(flatten(**r, kv_test_clock()) == flatten(*kv, kv_test_clock()));
}

TEST_CASE("an index rehash during an incremental checkpoint begins it again and loses nothing", "[unit][pmem]")
{
	MemPool p({.buffer_size = 2048, .buffers = 8192, .wal_size = 4096 + 64 * 8192, .ckpt_size = 4 * 1024 * 1024});
	BufferAllocator alloc;
	auto kv = std::move(*KvStore::open(p.view(), alloc, opts(64, 0.25)));
	RxSim rx(p.view(), alloc);
	int n = 0;
	std::uint64_t rehashes_seen = 0;
	std::size_t buckets = 0;
	// Keys keep arriving, so the index grows through several rehashes
	// while checkpoints are in progress.
	for (int batch = 0; batch < 1500; batch++) {
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
	const auto& cs = kv->checkpoint_stats();
	INFO("stepped " << cs.stepped << " finished " << cs.finished << " restarted " << cs.restarted << " fallbacks "
			<< cs.fallbacks);
	CHECK(cs.restarted > 0);  // the -EAGAIN path ran
	CHECK(cs.stepped > 0);    // and checkpoints did complete by steps
	CHECK(cs.fallbacks == 0);
	MemPool d(p.geometry(), p.shadow()->durable());
	BufferAllocator a2;
	auto r = KvStore::open(d.view(), a2, opts(0));
	REQUIRE(r);
	CHECK((*r)->dbsize() == static_cast<std::size_t>(n));
	CHECK(flatten(**r, kv_test_clock()) == flatten(*kv, kv_test_clock()));
}

namespace {
std::uint64_t g_clock = 1'000'000'000'000'000'000ull;
std::uint64_t moving_clock() noexcept
{
	return g_clock;
}
}  // namespace

TEST_CASE("keys that expire during an incremental checkpoint leave the index with their references",
	  "[unit][pmem]")
{
	MemPool p({.buffer_size = 2048, .buffers = 2048, .wal_size = 4096 + 64 * 4096, .ckpt_size = 1024 * 1024});
	BufferAllocator alloc;
	KvOptions o = opts(32);
	o.clock = moving_clock;
	auto kv = std::move(*KvStore::open(p.view(), alloc, o));
	RxSim rx(p.view(), alloc);
	for (int i = 0; i < 2500; i++) {
		const std::string k = "k" + std::to_string(i);
		const std::uint64_t expiry = i % 2 ? g_clock + 1'000'000 : 0;  // half of them expire in 1 ms
		REQUIRE(kv->set(rx.receive_one(k), rx.receive_one("v" + std::to_string(i)), expiry) == 0);
	}
	REQUIRE(kv->commit() > 0);
	rx.release();
	REQUIRE(kv->checkpoint_pending());
	g_clock += 2'000'000;  // now they have expired, before the walk reaches them
	int commits = 0;
	while (kv->checkpoint_pending() && commits < 500) {
		set(*kv, rx, "other" + std::to_string(commits), "x");
		REQUIRE(kv->commit() == 1);
		rx.release();
		commits++;
	}
	REQUIRE_FALSE(kv->checkpoint_pending());
	CHECK(kv->checkpoint_stats().stepped == 1);
	// Every key left in the index is backed by referenced buffers; the
	// expired ones are gone (not just hidden).
	CHECK(kv->dbsize() == 1250 + static_cast<std::size_t>(commits));
	std::uint64_t unbacked = 0;
	kv->for_each([&](std::string_view, const daxnet::pmem::ValueRef& v) {
		for (const Slice& s : v.slices)
			unbacked += alloc.refcount(s.buf) == 0 ? 1 : 0;
	});
	CHECK(unbacked == 0);
	CHECK(alloc.check());
	MemPool d(p.geometry(), p.shadow()->durable());
	BufferAllocator a2;
	KvOptions ro = opts(0);
	ro.clock = moving_clock;
	auto r = KvStore::open(d.view(), a2, ro);
	REQUIRE(r);
	CHECK(flatten(**r, g_clock) == flatten(*kv, g_clock));
	for (std::uint32_t b = 0; b < alloc.count(); b++)
		REQUIRE(a2.refcount(b) == alloc.refcount(b));
}
