// SPDX-License-Identifier: BSD-2-Clause
//
// Behaviour of the WAL, the KV index and the buffer allocator
// (docs/wal-format.md).
#include <catch2/catch.hpp>

#include <string>

#include "wal_test_util.h"

using namespace daxnet::test;
using daxnet::pmem::BufferAllocator;
using daxnet::pmem::KvOptions;
using daxnet::pmem::KvStore;
using daxnet::pmem::RecoveryReport;
using daxnet::pmem::ScratchArena;
using daxnet::pmem::Slice;
using daxnet::pmem::StreamEntryRef;
using daxnet::pmem::ValueRef;

namespace {

std::uint64_t g_now = 1'000'000'000'000'000'000ull;
std::uint64_t test_clock() noexcept
{
	return g_now;
}

KvOptions opts()
{
	KvOptions o;
	o.clock = test_clock;
	return o;
}


std::string get_str(KvStore& kv, std::string_view key)
{
	ValueRef v;
	if (kv.get(key, v) != 1)
		return "<none>";
	return bytes_of(kv.pool(), v);
}

}  // namespace

TEST_CASE("KV set, get, overwrite and del are visible at once and survive recovery", "[unit][pmem]")
{
	MemPool p({});
	BufferAllocator alloc;
	auto kv = std::move(*KvStore::open(p.view(), alloc, opts()));
	RxSim rx(p.view(), alloc);

	REQUIRE(kv->set(rx.receive_one("alpha"), rx.receive_one("one")) == 0);
	REQUIRE(kv->set(rx.receive_one("beta"), rx.receive_one("two")) == 0);
	REQUIRE(kv->set(rx.receive_one("alpha"), rx.receive_one("uno")) == 0);
	REQUIRE(kv->set(rx.receive_one(""), rx.receive_one("empty key")) == 0);
	REQUIRE(kv->del(rx.receive_one("beta")) == 1);
	REQUIRE(kv->del(rx.receive_one("nope")) == 0);
	CHECK(get_str(*kv, "alpha") == "uno");
	CHECK(get_str(*kv, "beta") == "<none>");
	CHECK(kv->dbsize() == 2);
	CHECK(kv->exists("alpha"));
	CHECK_FALSE(kv->exists("beta"));
	REQUIRE(kv->commit() == 5);

	Recovered r(p, opts());
	CHECK(r.report.log_entries == 5);
	CHECK(r.report.stop == RecoveryReport::Stop::clean);
	CHECK(get_str(*r.kv, "alpha") == "uno");
	CHECK(get_str(*r.kv, "") == "empty key");
	CHECK(get_str(*r.kv, "beta") == "<none>");
	CHECK(r.kv->dbsize() == 2);
}

TEST_CASE("staged but uncommitted entries are not durable", "[unit][pmem]")
{
	MemPool p({});
	BufferAllocator alloc;
	auto kv = std::move(*KvStore::open(p.view(), alloc, opts()));
	RxSim rx(p.view(), alloc);
	REQUIRE(kv->set(rx.receive_one("k1"), rx.receive_one("v1")) == 0);
	REQUIRE(kv->commit() == 1);
	REQUIRE(kv->set(rx.receive_one("k2"), rx.receive_one("v2")) == 0);
	Recovered r(p, opts());
	CHECK(get_str(*r.kv, "k1") == "v1");
	CHECK(get_str(*r.kv, "k2") == "<none>");
}

TEST_CASE("a batch of entries from many connections costs exactly one drain", "[unit][pmem]")
{
	MemPool p({});
	BufferAllocator alloc;
	auto kv = std::move(*KvStore::open(p.view(), alloc, opts()));
	RxSim rx(p.view(), alloc);
	for (int batch = 0; batch < 5; batch++) {
		const auto before = p.domain().counters().drains;
		for (int i = 0; i < 64; i++) {
			const std::string k = "key:" + std::to_string(batch * 64 + i);
			REQUIRE(kv->set(rx.receive_one(k), rx.receive_one(std::string(100, 'x'))) == 0);
		}
		CHECK(p.domain().counters().drains == before);  // staging never fences
		REQUIRE(kv->commit() == 64);
		CHECK(p.domain().counters().drains == before + 1);
	}
	const auto before = p.domain().counters().drains;
	CHECK(kv->commit() == 0);  // empty batch: no fence
	CHECK(p.domain().counters().drains == before);
}

TEST_CASE("a 1 MiB value spans 512 buffers as chained records and survives recovery", "[unit][pmem]")
{
	MemPool p({.buffer_size = 2048, .buffers = 1200, .wal_size = 128 * 1024, .ckpt_size = 256 * 1024});
	BufferAllocator alloc;
	auto kv = std::move(*KvStore::open(p.view(), alloc, opts()));
	RxSim rx(p.view(), alloc);
	std::string big(1 << 20, '\0');
	for (std::size_t i = 0; i < big.size(); i++)
		big[i] = static_cast<char>('a' + (i * 7919) % 26);
	const Slice key = rx.receive_one("big");
	RxSim rx2(p.view(), alloc);
	const auto val = rx2.receive(big);
	REQUIRE(val.size() == 512);
	REQUIRE(kv->set(key, val) == 0);
	REQUIRE(kv->commit() == 1);
	CHECK(kv->wal().stats().records == 257);
	ValueRef v;
	REQUIRE(kv->get("big", v) == 1);
	CHECK(v.size == big.size());
	CHECK(v.slices.size() == 512);
	CHECK(bytes_of(p.view(), v) == big);

	{
		Recovered r(p, opts());
		CHECK(get_str(*r.kv, "big") == big);
	}
	REQUIRE(kv->checkpoint() == 0);
	Recovered r(p, opts());
	CHECK(r.report.ckpt_records == 257);
	CHECK(get_str(*r.kv, "big") == big);
}

TEST_CASE("an overwritten value's buffer stays allocated until a checkpoint moves the head past it",
	  "[unit][pmem]")
{
	MemPool p({});
	BufferAllocator alloc;
	auto kv = std::move(*KvStore::open(p.view(), alloc, opts()));
	RxSim rx(p.view(), alloc);
	// Two SETs packed in one buffer: 4 slices -> 4 references + the hold.
	const Slice k1 = rx.receive_one("a");
	const Slice v1 = rx.receive_one("first");
	const Slice k2 = rx.receive_one("b");
	const Slice v2 = rx.receive_one("second");
	const std::uint32_t b0 = k1.buf;
	REQUIRE(v2.buf == b0);
	REQUIRE(kv->set(k1, v1) == 0);
	REQUIRE(kv->set(k2, v2) == 0);
	REQUIRE(kv->commit() == 2);
	CHECK(alloc.refcount(b0) == 5);
	rx.release();
	CHECK(alloc.refcount(b0) == 4);

	// Overwrite both keys from another buffer: the old slices stay referenced
	// by the live log window.
	const Slice k1b = rx.receive_one("a");
	REQUIRE(k1b.buf != b0);
	REQUIRE(kv->set(k1b, rx.receive_one("FIRST")) == 0);
	REQUIRE(kv->set(rx.receive_one("b"), rx.receive_one("SECOND")) == 0);
	REQUIRE(kv->commit() == 2);
	CHECK(alloc.refcount(b0) == 4);
	CHECK_FALSE(alloc.is_free(b0));

	REQUIRE(kv->checkpoint() == 0);
	CHECK(alloc.refcount(b0) == 0);
	CHECK(alloc.is_free(b0));
	CHECK(alloc.check());
	CHECK(get_str(*kv, "a") == "FIRST");  // the index was re-keyed onto the new key slice

	// Recovery rebuilds the same counts: the checkpoint's references only.
	Recovered r(p, opts());
	CHECK(r.alloc.refcount(b0) == 0);
	CHECK(r.alloc.refcount(k1b.buf) == alloc.refcount(k1b.buf) - 1);  // minus the rx hold
	CHECK(r.alloc.check());
	CHECK(get_str(*r.kv, "b") == "SECOND");
}

TEST_CASE("the free list is exactly the unreferenced buffers", "[unit][pmem]")
{
	BufferAllocator a(8);
	CHECK(a.free_count() == 8);
	const auto x = a.alloc();
	const auto y = a.alloc();
	REQUIRE(x >= 0);
	REQUIRE(y >= 0);
	CHECK(x != y);
	a.ref(static_cast<std::uint32_t>(x));
	CHECK(a.unref(static_cast<std::uint32_t>(x)) == 1);
	CHECK(a.unref(static_cast<std::uint32_t>(x)) == 0);
	CHECK(a.unref(static_cast<std::uint32_t>(x)) == -EINVAL);
	a.ref(3);  // recovery-style reference to a free buffer
	CHECK(a.free_count() == 6);
	CHECK(a.check());
	std::vector<std::int64_t> got;
	for (std::int64_t b; (b = a.alloc()) >= 0;)
		got.push_back(b);
	CHECK(got.size() == 6);
	CHECK(std::find(got.begin(), got.end(), 3) == got.end());
	CHECK(a.alloc() == -ENOSPC);
	CHECK(a.check());
}

TEST_CASE("append refuses slices in buffers nobody holds or out of range", "[unit][pmem]")
{
	MemPool p({});
	BufferAllocator alloc;
	auto kv = std::move(*KvStore::open(p.view(), alloc, opts()));
	const std::uint32_t free_buf = 7;
	REQUIRE(alloc.is_free(free_buf));
	CHECK(kv->set(Slice{free_buf, 0, 3}, Slice{free_buf, 3, 3}) == -EINVAL);
	RxSim rx(p.view(), alloc);
	const Slice k = rx.receive_one("k");
	CHECK(kv->set(k, Slice{k.buf, 2040, 100}) == -EINVAL);
	CHECK(kv->set(k, Slice{k.buf, 0, 0}) == -EINVAL);
	CHECK(kv->set(k, Slice{p.view().buffer_count(), 0, 1}) == -EINVAL);
	CHECK(kv->dbsize() == 0);
}

TEST_CASE("expiry is an absolute time in the record, applied lazily and after recovery", "[unit][pmem]")
{
	MemPool p({});
	BufferAllocator alloc;
	auto kv = std::move(*KvStore::open(p.view(), alloc, opts()));
	RxSim rx(p.view(), alloc);
	REQUIRE(kv->set(rx.receive_one("short"), rx.receive_one("v"), g_now + 1000) == 0);
	REQUIRE(kv->set(rx.receive_one("long"), rx.receive_one("v"), g_now + 1'000'000) == 0);
	REQUIRE(kv->set(rx.receive_one("forever"), rx.receive_one("v")) == 0);
	REQUIRE(kv->commit() == 3);
	ValueRef v;
	REQUIRE(kv->get("short", v) == 1);
	CHECK(v.expiry_ns == g_now + 1000);
	g_now += 5000;
	CHECK_FALSE(kv->exists("short"));
	CHECK(kv->exists("long"));
	{
		Recovered r(p, opts());
		CHECK(r.kv->dbsize() == 2);
		CHECK_FALSE(r.kv->exists("short"));
		REQUIRE(r.kv->get("long", v) == 1);
		CHECK(v.expiry_ns == g_now - 5000 + 1'000'000);
	}
	g_now += 2'000'000;
	REQUIRE(kv->checkpoint() == 0);  // expired keys are not carried forward
	Recovered r(p, opts());
	CHECK(r.kv->dbsize() == 1);
	CHECK(r.kv->exists("forever"));
}

TEST_CASE("FLUSHALL is logged: it empties the index after recovery too, streams stay", "[unit][pmem]")
{
	MemPool p({});
	BufferAllocator alloc;
	auto kv = std::move(*KvStore::open(p.view(), alloc, opts()));
	RxSim rx(p.view(), alloc);
	for (int i = 0; i < 10; i++)
		REQUIRE(kv->set(rx.receive_one("k" + std::to_string(i)), rx.receive_one("v")) == 0);
	const Slice body = rx.receive_one("event");
	REQUIRE(kv->stream_append(rx.receive_one("s"), std::span<const Slice>(&body, 1)) == 0);
	REQUIRE(kv->flushall() == 0);
	REQUIRE(kv->set(rx.receive_one("after"), rx.receive_one("x")) == 0);
	REQUIRE(kv->commit() == 13);
	CHECK(kv->dbsize() == 1);
	Recovered r(p, opts());
	CHECK(r.kv->dbsize() == 1);
	CHECK(r.kv->exists("after"));
	CHECK(r.kv->stream_length("s") == 1);
}

TEST_CASE("stream appends keep their positions across recovery and checkpoints", "[unit][pmem]")
{
	MemPool p({});
	BufferAllocator alloc;
	auto kv = std::move(*KvStore::open(p.view(), alloc, opts()));
	RxSim rx(p.view(), alloc);
	for (int i = 0; i < 30; i++) {
		const std::string name = i % 3 ? "orders" : "clicks";
		const auto body = rx.receive("body-" + std::to_string(i) + std::string(static_cast<std::size_t>(i) * 150, '.'));
		std::uint64_t idx = 99;
		REQUIRE(kv->stream_append(rx.receive_one(name), body, 1000 + static_cast<std::uint64_t>(i), &idx) == 0);
		CHECK(idx == static_cast<std::uint64_t>(i % 3 ? i - i / 3 - 1 : i / 3));
		if (i == 15)
			REQUIRE(kv->checkpoint() == 0);
	}
	REQUIRE(kv->commit() > 0);
	Recovered r(p, opts());
	INFO(r.report.stop_reason << " head " << r.report.head_seq << " next " << r.report.next_seq);
	CHECK(r.kv->stream_length("orders") == 20);
	CHECK(r.kv->stream_length("clicks") == 10);
	std::vector<StreamEntryRef> out(4);
	REQUIRE(r.kv->stream_read("orders", 17, out) == 3);
	CHECK(out[0].index == 17);
	CHECK(bytes_of(r.pool.view(), out[0].body).starts_with("body-26"));
	CHECK(out[0].stamp == 1026);
	CHECK(r.kv->stream_read("nope", 0, out) == 0);
	CHECK(flatten(*r.kv, g_now) == flatten(*kv, g_now));
}

TEST_CASE("values the server writes itself (INCR) go through a scratch arena", "[unit][pmem]")
{
	MemPool p({});
	BufferAllocator alloc;
	auto kv = std::move(*KvStore::open(p.view(), alloc, opts()));
	RxSim rx(p.view(), alloc);
	ScratchArena arena(p.view(), alloc);
	const Slice key = rx.receive_one("counter");
	for (int i = 1; i <= 500; i++) {
		const std::string num = std::to_string(i);
		Slice v;
		REQUIRE(arena.write(std::as_bytes(std::span(num.data(), num.size())), v) == 0);
		REQUIRE(kv->set(key, v) == 0);
		if (i % 50 == 0)
			REQUIRE(kv->commit() >= 0);
	}
	REQUIRE(kv->commit() >= 0);
	CHECK(get_str(*kv, "counter") == "500");
	Recovered r(p, opts());
	CHECK(get_str(*r.kv, "counter") == "500");
	std::string huge(5000, 'x');
	Slice v;
	CHECK(arena.write(std::as_bytes(std::span(huge.data(), huge.size())), v) == -EMSGSIZE);
}

TEST_CASE("the ring wraps many times with automatic checkpoints and recovers the last state", "[unit][pmem]")
{
	MemPool p({.buffer_size = 2048, .buffers = 512, .wal_size = 4096 + 64 * 128, .ckpt_size = 64 * 1024});
	BufferAllocator alloc;
	auto kv = std::move(*KvStore::open(p.view(), alloc, opts()));
	REQUIRE(kv->wal().nslots() == 128);
	RxSim rx(p.view(), alloc);
	for (int i = 0; i < 5000; i++) {
		REQUIRE(kv->set(rx.receive_one("k" + std::to_string(i % 37)), rx.receive_one("v" + std::to_string(i))) == 0);
		if (i % 9 == 0)
			REQUIRE(kv->commit() >= 0);
	}
	REQUIRE(kv->commit() >= 0);
	CHECK(kv->wal().stats().checkpoints > 50);
	CHECK(kv->wal().next_seq() > 5 * 128);
	rx.release();
	CHECK(alloc.check());
	CHECK(alloc.free_count() > 400);  // superseded buffers came back
	Recovered r(p, opts());
	CHECK(get_str(*r.kv, "k0") == "v4995");
	CHECK(flatten(*r.kv, g_now) == flatten(*kv, g_now));
	// Recovery rebuilds the same references, minus the (released) rx hold.
	for (std::uint32_t b = 0; b < alloc.count(); b++)
		REQUIRE(r.alloc.refcount(b) == alloc.refcount(b));
}

TEST_CASE("a fresh pool opens with an empty log and writes state slot A", "[unit][pmem]")
{
	MemPool p({});
	BufferAllocator alloc;
	RecoveryReport rep;
	auto kv = KvStore::open(p.view(), alloc, opts(), &rep);
	REQUIRE(kv);
	CHECK(rep.fresh);
	CHECK(rep.epoch == 1);
	CHECK((*kv)->dbsize() == 0);
	CHECK(alloc.free_count() == p.view().buffer_count());
	const auto* a = daxnet::pmem::wal_state_slot(p.view(), 0);
	CHECK(daxnet::pmem::log_state_valid(*a, daxnet::pmem::wal_pool_seed(p.view()), (*kv)->wal().nslots()));
}
