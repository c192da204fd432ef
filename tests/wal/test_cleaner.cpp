// SPDX-License-Identifier: BSD-2-Clause
//
// docs/wal-format.md §The cleaner: live keys in sparsely used buffers are
// moved into dense ones (logged as KV_SET of the same bytes), so a pool
// fragmented by deletes and overwrites gets its buffers back and keeps
// accepting writes; large values are never moved; recovery is exact.
#include <catch2/catch.hpp>

#include <string>

#include "wal_test_util.h"

using namespace daxnet::test;

namespace {

// 256 buffers of 2 KiB, a ring of 2048 slots, checkpoint halves of ~4000
// records.
MemPool::Layout frag_pool()
{
	return {.buffer_size = 2048, .buffers = 256, .wal_size = 4096 + 64 * 2048, .ckpt_size = 512 * 1024};
}

KvOptions opts(bool cleaner)
{
	KvOptions o;
	o.clock = kv_test_clock;
	o.checkpoint_step = 64;
	o.cleaner.enabled = cleaner;
	return o;
}

std::string value_of(std::size_t i, std::size_t len)
{
	std::string v(len, '\0');
	for (std::size_t j = 0; j < len; j++)
		v[j] = static_cast<char>('a' + (i * 7 + j) % 26);
	return v;
}

/// One event-loop pass as the services run it: the cleaner, then the
/// commit, then the network layer drops its holds.
void end_of_pass(KvStore& kv, RxSim& rx)
{
	REQUIRE(kv.clean() >= 0);
	REQUIRE(kv.commit() >= 0);
	rx.release();
}

/// SETs keys [from, from + n) with `len`-byte values, 16 per pass. Returns
/// how many were stored before the first one that could not be received
/// (no free buffer) or was refused.
std::size_t write_keys(KvStore& kv, RxSim& rx, std::size_t from, std::size_t n, std::size_t len)
{
	std::size_t stored = 0;
	for (std::size_t i = from; i < from + n; i++) {
		const std::string key = "key:" + std::to_string(i);
		const Slice k = rx.receive_one(key);
		const auto v = rx.receive(value_of(i, len));
		if (k.len == 0 || v.empty() || kv.set(k, v) != 0) {
			end_of_pass(kv, rx);
			return stored;
		}
		stored++;
		if (stored % 16 == 0)
			end_of_pass(kv, rx);
	}
	end_of_pass(kv, rx);
	return stored;
}

/// Fills most of the pool with 100-byte values, then deletes 15 keys of
/// every 16 and checkpoints: every buffer keeps one live key. Returns the
/// keys written.
std::size_t fragment(KvStore& kv, RxSim& rx)
{
	const std::size_t n = 200 * 16;
	REQUIRE(write_keys(kv, rx, 0, n, 100) == n);
	for (std::size_t i = 0; i < n; i++) {
		if (i % 16 == 0)
			continue;
		REQUIRE(kv.del(rx.receive_one("key:" + std::to_string(i))) == 1);
		if (i % 16 == 15)
			REQUIRE(kv.commit() >= 0);
	}
	REQUIRE(kv.commit() >= 0);
	rx.release();  // the deletes' keys were packed densely
	REQUIRE(kv.checkpoint() == 0);
	return n;
}

void check_values(KvStore& kv, std::size_t n_old, std::size_t from, std::size_t n_new)
{
	for (std::size_t i = 0; i < n_old; i += 16) {
		ValueRef v;
		REQUIRE(kv.get("key:" + std::to_string(i), v) == 1);
		REQUIRE(bytes_of(kv.pool(), v) == value_of(i, 100));
	}
	for (std::size_t i = from; i < from + n_new; i++) {
		ValueRef v;
		REQUIRE(kv.get("key:" + std::to_string(i), v) == 1);
		REQUIRE(bytes_of(kv.pool(), v) == value_of(i, 100));
	}
}

}  // namespace

TEST_CASE("a pool fragmented by deletes keeps accepting writes through the cleaner", "[unit][pmem]")
{
	const bool cleaner = GENERATE(true, false);
	CAPTURE(cleaner);
	MemPool p(frag_pool());
	BufferAllocator alloc;
	auto kv = std::move(*KvStore::open(p.view(), alloc, opts(cleaner)));
	RxSim rx(p.view(), alloc);
	const std::size_t n = fragment(*kv, rx);
	// 200 buffers hold one 106-byte key and value each: 5 % live.
	CHECK(alloc.free_count() < 64);
	CHECK(kv->live_payload_bytes() == (n / 16) * 100);

	// 2,400 more such keys need 150 buffers: only a pool whose sparse
	// buffers were compacted has them.
	const std::size_t want = 2400;
	const std::size_t got = write_keys(*kv, rx, n, want, 100);
	const auto& cs = kv->cleaner_stats();
	if (!cleaner) {
		CHECK(got < want);  // refused: no free buffer although the pool is 5 % live
		CHECK(cs.moved_entries == 0);
		return;
	}
	CHECK(got == want);
	CHECK(cs.cycles >= 1);
	CHECK(cs.moved_entries >= 190);
	CHECK(cs.freed_buffers >= 150);
	check_values(*kv, n, n, want);

	// Recovery is exact, and recovering the same image twice agrees.
	const FlatState live = flatten(*kv, kv_test_clock());
	Recovered r1(p, opts(false));
	CHECK(flatten(*r1.kv, kv_test_clock()) == live);
	CHECK(r1.alloc.check());
	Recovered r2(p, opts(false));
	CHECK(flatten(*r2.kv, kv_test_clock()) == live);
	CHECK(r2.alloc.free_count() == r1.alloc.free_count());
}

TEST_CASE("the cleaner never moves a value above its move limit", "[unit][pmem]")
{
	MemPool p(frag_pool());
	BufferAllocator alloc;
	KvOptions o = opts(true);
	o.cleaner.move_limit = 512;
	o.cleaner.low_free = 2.0;  // always "short of space"
	auto kv = std::move(*KvStore::open(p.view(), alloc, o));
	RxSim rx(p.view(), alloc);
	// Two 700-byte values per buffer; delete one of each pair: every
	// buffer is a third live, but what is live may not move.
	for (std::size_t i = 0; i < 200; i++) {
		REQUIRE(kv->set(rx.receive_one("k" + std::to_string(i)), rx.receive(value_of(i, 700))) == 0);
		if (i % 2 == 1)
			end_of_pass(*kv, rx);
	}
	for (std::size_t i = 0; i < 200; i += 2)
		REQUIRE(kv->del(rx.receive_one("k" + std::to_string(i))) == 1);
	end_of_pass(*kv, rx);
	REQUIRE(kv->checkpoint() == 0);
	for (int pass = 0; pass < 2000; pass++)
		end_of_pass(*kv, rx);
	CHECK(kv->cleaner_stats().moved_entries == 0);
	CHECK(kv->cleaner_stats().victims == 0);
}

TEST_CASE("the cleaner does nothing in a dense pool and bounds its work per call", "[unit][pmem]")
{
	MemPool p(frag_pool());
	BufferAllocator alloc;
	KvOptions o = opts(true);
	o.cleaner.max_entries = 10;
	auto kv = std::move(*KvStore::open(p.view(), alloc, o));
	RxSim rx(p.view(), alloc);
	// Dense: nothing deleted.
	REQUIRE(write_keys(*kv, rx, 0, 1600, 100) == 1600);
	for (int pass = 0; pass < 1000; pass++)
		end_of_pass(*kv, rx);
	CHECK(kv->cleaner_stats().victims == 0);
	CHECK(kv->cleaner_stats().moved_entries == 0);

	// Sparse: each call stages at most max_entries relocations.
	for (std::size_t i = 0; i < 1600; i++)
		if (i % 16)
			REQUIRE(kv->del(rx.receive_one("key:" + std::to_string(i))) == 1);
	REQUIRE(kv->commit() >= 0);
	rx.release();
	REQUIRE(kv->checkpoint() == 0);
	std::uint64_t calls = 0;
	for (int pass = 0; pass < 4000 && kv->cleaner_stats().cycles == 0; pass++) {
		const int moved = kv->clean();
		REQUIRE(moved >= 0);
		CHECK(moved <= 10);
		calls += moved > 0 ? 1 : 0;
		REQUIRE(kv->commit() >= 0);
	}
	CHECK(kv->cleaner_stats().cycles == 1);
	CHECK(kv->cleaner_stats().moved_entries == 100);
	CHECK(calls >= 10);
}
