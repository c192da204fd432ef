// SPDX-License-Identifier: BSD-2-Clause
//
// docs/wal-format.md §Capacity: writes are admitted against what a
// checkpoint half can hold, freeing entries (DEL, FLUSHALL, STREAM_TRIM)
// keep log room of their own, so a full store never bricks itself: it
// refuses writes cheaply and still deletes, also after a restart.
#include <catch2/catch.hpp>

#include <string>

#include "wal_test_util.h"

using namespace daxnet::test;

namespace {

/// SETs distinct keys until `refusals` SETs in a row were refused; commits
/// every 8. Returns the number of keys stored.
std::size_t fill(KvStore& kv, RxSim& rx, int refusals)
{
	std::size_t stored = 0;
	int in_a_row = 0;
	for (int i = 0; in_a_row < refusals; i++) {
		const std::string key = "key" + std::to_string(i);
		const Slice k = rx.receive_one(key);
		const Slice v = rx.receive_one("sixteen-byte-val");
		REQUIRE(k.len != 0);
		const int rc = kv.set(k, v);
		if (rc == 0) {
			stored++;
			in_a_row = 0;
		} else {
			REQUIRE(rc == -ENOSPC);
			in_a_row++;
		}
		if (i % 8 == 7) {
			REQUIRE(kv.commit() >= 0);
			rx.release();
		}
	}
	REQUIRE(kv.commit() >= 0);
	rx.release();
	return stored;
}

}  // namespace

TEST_CASE("a store full of small entries still deletes and flushes, also after a restart", "[unit][pmem]")
{
	const std::uint32_t step = GENERATE(0u, 16u);
	CAPTURE(step);
	MemPool p(small_ring_layout());
	BufferAllocator alloc;
	auto kv = KvStore::open(p.view(), alloc, kv_test_options(step));
	REQUIRE(kv.ok());
	RxSim rx(p.view(), alloc);
	const std::size_t stored = fill(**kv, rx, 1000);
	// Admitted up to what a checkpoint holds, not stuck below it.
	CHECK(stored == (*kv)->record_limit());
	CHECK((*kv)->live_records() == stored);
	CHECK((*kv)->capacity_stats().refused_capacity >= 1000);
	// 1000 refusals ran no checkpoint that failed.
	CHECK((*kv)->capacity_stats().ckpt_failures == 0);
	// The live state fits a checkpoint.
	REQUIRE((*kv)->checkpoint() == 0);

	// DEL works at once and makes room for exactly one SET.
	REQUIRE((*kv)->del(rx.receive_one("key1")) == 1);
	REQUIRE((*kv)->commit() == 1);
	REQUIRE((*kv)->set(rx.receive_one("newkey"), rx.receive_one("v")) == 0);
	REQUIRE((*kv)->set(rx.receive_one("newkey2"), rx.receive_one("v")) == -ENOSPC);
	REQUIRE((*kv)->commit() == 1);
	rx.release();
	const FlatState before = flatten(**kv, kv_test_clock());

	// After a restart: still full, still deletes (over and over: every
	// DEL is logged, checkpoints free the ring).
	Recovered r(p, kv_test_options(step));
	CHECK(flatten(*r.kv, kv_test_clock()) == before);
	CHECK(r.kv->live_records() == stored);
	RxSim rx2(r.pool.view(), r.alloc);
	REQUIRE(r.kv->set(rx2.receive_one("another"), rx2.receive_one("v")) == -ENOSPC);
	for (int i = 2; i < 400; i++) {
		REQUIRE(r.kv->del(rx2.receive_one("key" + std::to_string(i))) == 1);
		REQUIRE(r.kv->commit() == 1);
		rx2.release();
	}
	REQUIRE(r.kv->flushall() == 0);
	REQUIRE(r.kv->commit() == 1);
	CHECK(r.kv->dbsize() == 0);
	CHECK(r.kv->live_records() == 0);
	// and the space is usable again
	CHECK(fill(*r.kv, rx2, 10) == r.kv->record_limit());
}

TEST_CASE_METHOD(SmallRingStore<16>, "a full log and checkpoint still take stream trims", "[unit][pmem]")
{
	std::uint64_t appended = 0;
	for (int i = 0;; i++) {
		const int rc = kv->stream_append(rx.receive_one("s"), rx.receive("record"));
		if (rc == -ENOSPC)
			break;
		REQUIRE(rc == 0);
		appended++;
		if (i % 8 == 7) {
			REQUIRE(kv->commit() >= 0);
			rx.release();
		}
	}
	REQUIRE(kv->commit() >= 0);
	rx.release();
	// one record for the stream's STREAM_TRIM, one per append
	CHECK(appended + 1 == kv->record_limit());
	Recovered r(p, kv_test_options(16));
	RxSim rx2(r.pool.view(), r.alloc);
	REQUIRE(r.kv->stream_append(rx2.receive_one("s"), rx2.receive("x")) == -ENOSPC);
	REQUIRE(r.kv->stream_trim(rx2.receive_one("s"), appended - 10) == static_cast<std::int64_t>(appended - 10));
	REQUIRE(r.kv->commit() == 1);
	// a checkpoint releases the trimmed entries: appends fit again
	REQUIRE(r.kv->checkpoint() == 0);
	REQUIRE(r.kv->stream_append(rx2.receive_one("s"), rx2.receive("x")) == 0);
	REQUIRE(r.kv->commit() == 1);
}

TEST_CASE_METHOD(SmallRingStore<0>,
		 "admit() makes log room first, so a multi-entry batch runs no checkpoint in between",
		 "[unit][pmem]")
{
	// Overwrite a few keys until the log is nearly full (no checkpoint:
	// the fraction is never passed between commits below).
	const std::uint64_t n = kv->wal().nslots();
	while (kv->wal().used() + 40 < n - kv->log_reserve()) {
		REQUIRE(kv->set(rx.receive_one("k" + std::to_string(kv->wal().used() % 8)), rx.receive_one("v")) == 0);
		rx.release();
	}
	const auto ckpts = kv->wal().stats().checkpoints;
	REQUIRE(kv->admit(64, 64) == 0);
	CHECK(kv->wal().stats().checkpoints == ckpts + 1);  // made room now
	for (int i = 0; i < 64; i++)
		REQUIRE(kv->set(rx.receive_one("m" + std::to_string(i)), rx.receive_one("v")) == 0);
	CHECK(kv->wal().stats().checkpoints == ckpts + 1);  // and none in between
	REQUIRE(kv->commit() == 64 + static_cast<int>(0));
	CHECK(kv->admit(kv->record_limit(), 1) == -ENOSPC);
}

TEST_CASE_METHOD(SmallRingStore<0>,
		 "installing a checkpoint drops the old one's references from DRAM, without reading it back",
		 "[unit][pmem]")
{
	std::vector<Slice> old;
	for (int i = 0; i < 10; i++) {
		const Slice k = rx.receive_one("k" + std::to_string(i));
		old.push_back(rx.receive_one("old value " + std::to_string(i)));
		REQUIRE(kv->set(k, old.back()) == 0);
	}
	REQUIRE(kv->commit() == 10);
	rx.release();
	REQUIRE(kv->checkpoint() == 0);  // checkpoint A, in half 0
	REQUIRE(kv->wal().stats().ckpt_records == 10);
	for (int i = 0; i < 10; i++)
		REQUIRE(kv->set(rx.receive_one("k" + std::to_string(i)), rx.receive_one("new value")) == 0);
	REQUIRE(kv->commit() == 10);
	rx.release();
	// Nothing needs A's records any more in this process: wipe them. A
	// writer that read them back to drop their references would now drop
	// none and leak the old values' buffers.
	std::memset(daxnet::pmem::ckpt_half_base(p.view(), 0) + 4096, 0, 10 * 64);
	REQUIRE(kv->checkpoint() == 0);  // checkpoint B, in half 1
	CHECK(alloc.check());
	for (const Slice& s : old)
		CHECK(alloc.is_free(s.buf));
	ValueRef v;
	REQUIRE(kv->get("k3", v) == 1);
	CHECK(bytes_of(p.view(), v) == "new value");
}

TEST_CASE_METHOD(SmallRingStore<0>, "a checkpoint reuses the CRC the log recorded instead of reading the payload again",
		 "[unit][pmem]")
{
	// A payload damaged in the pool after it was logged (and acknowledged)
	// is carried into the checkpoint with the CRC of what was logged, so
	// recovery detects the damage instead of checkpointing the damaged
	// bytes under a fresh CRC.
	const Slice k = rx.receive_one("key");
	const Slice v = rx.receive_one("acknowledged value");
	REQUIRE(kv->set(k, v) == 0);
	REQUIRE(kv->commit() == 1);
	rx.release();
	std::byte* b = p.view().buffer(v.buf) + v.off;
	b[3] ^= std::byte{0x20};
	p.domain().flush(b, 1);
	p.domain().drain();
	REQUIRE(kv->checkpoint() == 0);
	BufferAllocator a2;
	MemPool img(p.geometry(), p.shadow()->durable());
	KvOptions o = kv_test_options(0);
	auto r = KvStore::open(img.view(), a2, o);
	REQUIRE_FALSE(r);
	CHECK(r.error().message.find("payload CRC mismatch") != std::string::npos);
}
