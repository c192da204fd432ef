// SPDX-License-Identifier: BSD-2-Clause
//
// daxnet-kv's hashes in the store (examples/kv/coll.h; docs/design.md
// §daxnet-kv collections): the encoding of a hash (fields and values
// alternately, version 1 listpack / 2 hashtable) reads back as written and
// refuses what is not one; a hash rewritten whole by each write is, after
// a crash, the last committed version, whole (never a mix of two), and
// stays a typed value of that encoding across restart and checkpoint.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "coll.h"
#include "wal_test_util.h"

using namespace daxnet::test;
using daxnet::pmem::BufferAllocator;
using daxnet::pmem::KvStore;
using daxnet::pmem::ValueRef;
namespace coll = daxnet::kv::coll;

namespace {

using Items = std::vector<std::string>;

/// The hash stored at `key` (empty: absent, or not a typed hash).
Items hash_of(KvStore& kv, const std::string& key, bool* hashtable = nullptr)
{
	ValueRef v;
	Items items;
	std::uint8_t t = 0;
	if (kv.get(key, v) != 1 || !v.typed || !coll::decode(bytes_of(kv.pool(), v), t, items, hashtable) ||
	    t != coll::kHash)
		return {};
	return items;
}

}  // namespace

TEST_CASE("a hash's encoding reads back as written and refuses what is not a hash", "[unit]")
{
	const Items h{"f1", "v1", "", "empty field", std::string("bin\0ary", 7), std::string(70, 'x')};
	for (const bool ht : {false, true}) {
		const std::string b = coll::encode(coll::kHash, h, ht);
		CHECK(b[0] == 3);
		CHECK(b[1] == (ht ? 2 : 1));
		CHECK(coll::get_u32(b.data() + 2) == h.size());
		std::uint8_t t = 0;
		Items out;
		bool got_ht = !ht;
		REQUIRE(coll::decode(b, t, out, &got_ht));
		CHECK(t == coll::kHash);
		CHECK(got_ht == ht);
		CHECK(out == h);
		CHECK(std::string(coll::type_name(t)) == "hash");
	}
	std::uint8_t t = 0;
	Items out;
	// an odd element count is no hash (a field without its value)
	CHECK_FALSE(coll::decode(coll::encode(coll::kHash, {"f1", "v1", "f2"}), t, out));
	CHECK(coll::decode(coll::encode(coll::kList, {"a", "b", "c"}), t, out));  // a list may have any count
	// an unknown version, a truncated element
	std::string b = coll::encode(coll::kHash, {"f", "v"});
	std::string bad = b;
	bad[1] = 3;
	CHECK_FALSE(coll::decode(bad, t, out));
	CHECK_FALSE(coll::decode(b.substr(0, b.size() - 1), t, out));
	CHECK_FALSE(coll::decode(b + "x", t, out));
}

TEST_CASE("a hash rewritten per write is the last committed version after a crash, restart and checkpoint",
	  "[unit][pmem]")
{
	MemPool p({});
	BufferAllocator alloc;
	auto kv = std::move(*KvStore::open(p.view(), alloc, kv_test_options(0)));
	RxSim rx(p.view(), alloc);
	const auto put = [&](const Items& h, bool ht) {
		REQUIRE(kv->set(rx.receive_one("h"), rx.receive(coll::encode(coll::kHash, h, ht)), 0, true) == 0);
	};
	Items h;
	for (int i = 0; i < 200; i++) {  // 200 fields of 50 bytes: many buffers
		h.push_back("field:" + std::to_string(i));
		h.push_back(std::string(50, static_cast<char>('a' + i % 26)));
	}
	put(h, true);
	REQUIRE(kv->commit() > 0);
	rx.release();
	// a second version written but not committed: a crash now keeps the first
	Items h2 = h;
	h2[1] = "changed";
	h2.push_back("new");
	h2.push_back("field");
	put(h2, true);
	{
		Recovered r(p, kv_test_options(0));
		bool ht = false;
		CHECK(hash_of(*r.kv, "h", &ht) == h);
		CHECK(ht);
	}
	REQUIRE(kv->commit() > 0);
	rx.release();
	{
		Recovered r(p, kv_test_options(0));
		CHECK(hash_of(*r.kv, "h") == h2);
	}
	// a small listpack hash beside it, then a checkpoint: both as they were
	put(h2, true);
	REQUIRE(kv->set(rx.receive_one("small"), rx.receive(coll::encode(coll::kHash, {"a", "1"}, false)), 0, true) == 0);
	REQUIRE(kv->commit() > 0);
	rx.release();
	REQUIRE(kv->checkpoint() == 0);
	Recovered r(p, kv_test_options(0));
	bool ht = true;
	CHECK(hash_of(*r.kv, "small", &ht) == Items{"a", "1"});
	CHECK_FALSE(ht);
	CHECK(hash_of(*r.kv, "h", &ht) == h2);
	CHECK(ht);
}
