// SPDX-License-Identifier: BSD-2-Clause
//
// KvStore's batch mode (kv.h, batch_begin): a group of entries -- an MSET,
// an EXEC, a script's writes -- is admitted whole or refused whole. No
// checkpoint runs inside it (it would make the part staged so far durable
// on its own), and batch_undo() takes back every entry staged since a mark,
// from the index and from the log (Wal::unstage_to).
#include <catch2/catch.hpp>

#include <cerrno>
#include <string>

#include "wal_test_util.h"

using namespace daxnet::test;

namespace {

std::string val(const std::string& key, int gen)
{
	return key + "=v" + std::to_string(gen);
}

int put(KvStore& kv, RxSim& rx, const std::string& key, const std::string& value)
{
	const Slice k = rx.receive_one(key);
	return kv.set(k, rx.receive(value));
}

/// 40 keys k0..k39 (k30.. with two slices), committed and checkpointed.
void base(KvStore& kv, RxSim& rx)
{
	for (int i = 0; i < 40; i++) {
		const std::string key = "k" + std::to_string(i);
		REQUIRE(put(kv, rx, key, i >= 30 ? std::string(3000, 'x') + val(key, 0) : val(key, 0)) == 0);
	}
	const Slice k = rx.receive_one("typed");
	REQUIRE(kv.set(k, rx.receive("a typed value"), 0, true) == 0);
	REQUIRE(kv.commit() >= 0);
	rx.release();
	REQUIRE(kv.checkpoint() == 0);
}

}  // namespace

TEST_CASE("a batch that runs out of log room is taken back whole, with no checkpoint inside it",
	  "[unit][pmem]")
{
	// Regression (issue 14 review): an entry that lacked log room ran a
	// checkpoint, which made the entries of the group staged before it
	// durable on their own (half an EXEC, half a script after a crash).
	const std::uint32_t step = GENERATE(0u, 16u);
	CAPTURE(step);
	MemPool p(small_ring_layout());
	BufferAllocator alloc;
	auto kv = std::move(*KvStore::open(p.view(), alloc, kv_test_options(step)));
	RxSim rx(p.view(), alloc);
	base(*kv, rx);
	const FlatState before = flatten(*kv, kv_test_clock());
	const std::uint64_t records = kv->live_records();
	const std::uint64_t checkpoints = kv->wal().stats().checkpoints;
	const std::uint64_t seq = kv->wal().next_seq();

	const KvStore::BatchMark m = kv->batch_begin();
	CHECK(kv->in_batch());
	// Overwrites (some twice), deletes (one of a key the batch set), new
	// keys, until the log has no room outside its reserve.
	for (int i = 0; i < 10; i++)
		REQUIRE(put(*kv, rx, "k" + std::to_string(i), val("k", 1)) == 0);
	REQUIRE(put(*kv, rx, "k3", std::string(2500, 'y')) == 0);
	REQUIRE(put(*kv, rx, "k31", "short now") == 0);
	REQUIRE(put(*kv, rx, "typed", "a string now") == 0);
	REQUIRE(kv->set(rx.receive_one("k7"), rx.receive("typed now"), 0, true) == 0);
	for (int i = 10; i < 15; i++)
		REQUIRE(kv->del(rx.receive_one("k" + std::to_string(i))) == 1);
	REQUIRE(kv->del(rx.receive_one("k5")) == 1);
	REQUIRE(kv->del(rx.receive_one("k32")) == 1);
	int rc = 0, added = 0;
	for (; added < 1000 && rc == 0; added++) {
		rc = put(*kv, rx, "new" + std::to_string(added % 20), "n");  // no new records
		if (added % 16 == 0)
			rx.release();  // the network layer lets go; the log holds them
	}
	CHECK(rc == -ENOSPC);
	CHECK(kv->batch_refused());
	CHECK(added > 400);
	CHECK(kv->wal().stats().checkpoints == checkpoints);
	CHECK(kv->wal().next_seq() > seq + 400);

	REQUIRE(kv->batch_undo(m) == 0);
	kv->batch_end();
	CHECK(!kv->in_batch());
	CHECK(!kv->batch_refused());
	CHECK(kv->wal().next_seq() == seq);
	CHECK(kv->live_records() == records);
	CHECK(flatten(*kv, kv_test_clock()) == before);
	REQUIRE(kv->commit() >= 0);
	rx.release();
	CHECK(alloc.check());
	{
		Recovered r(p, kv_test_options(step));
		CHECK(r.report.stop == RecoveryReport::Stop::clean);
		CHECK(flatten(*r.kv, kv_test_clock()) == before);
	}
	// Outside a batch the same writes make their room with a checkpoint.
	for (int i = 0; i < 600; i++) {
		REQUIRE(put(*kv, rx, "after" + std::to_string(i % 300), "a") == 0);
		if (i % 16 == 15) {
			REQUIRE(kv->commit() >= 0);
			rx.release();
		}
	}
	REQUIRE(kv->commit() >= 0);
	rx.release();
	CHECK(kv->wal().stats().checkpoints > checkpoints);
	const FlatState now = flatten(*kv, kv_test_clock());
	Recovered r(p, kv_test_options(step));
	CHECK(flatten(*r.kv, kv_test_clock()) == now);
}

TEST_CASE_METHOD(SmallRingStore<16>, "a multi-key write refused at its k-th key keeps none of the keys before it",
		 "[unit][pmem]")
{
	// MSET's all or nothing (examples/kv stage_pairs): the keys staged
	// before a refused one are taken back, also inside a larger group
	// (a nested mark), which keeps what it staged before.
	base(*kv, rx);
	const KvStore::BatchMark outer = kv->batch_begin();
	REQUIRE(put(*kv, rx, "k1", "outer") == 0);
	const FlatState mid = flatten(*kv, kv_test_clock());
	const KvStore::BatchMark inner = kv->batch_begin();
	REQUIRE(put(*kv, rx, "m1", "1") == 0);
	REQUIRE(put(*kv, rx, "k2", "2") == 0);
	REQUIRE(put(*kv, rx, "m1", "3") == 0);
	// The k-th key: a value with more slices than the log takes.
	std::vector<Slice> huge(2 * 512, rx.receive_one("z"));
	CHECK(kv->set(rx.receive_one("m2"), huge) < 0);
	REQUIRE(kv->batch_undo(inner) == 0);
	kv->batch_end();
	CHECK(flatten(*kv, kv_test_clock()) == mid);
	kv->batch_end();
	REQUIRE(kv->commit() == 1);
	rx.release();
	Recovered r(p, kv_test_options(16));
	CHECK(flatten(*r.kv, kv_test_clock()) == mid);
	(void)outer;
}

TEST_CASE_METHOD(SmallRingStore<16>, "a FLUSHALL inside a batch is taken back whole", "[unit][pmem]")
{
	base(*kv, rx);
	const FlatState before = flatten(*kv, kv_test_clock());
	const std::uint64_t records = kv->live_records();
	const KvStore::BatchMark m = kv->batch_begin();
	REQUIRE(put(*kv, rx, "k1", "changed") == 0);
	REQUIRE(kv->flushall() == 0);
	CHECK(kv->dbsize() == 0);
	REQUIRE(put(*kv, rx, "k2", "after the flush") == 0);
	REQUIRE(put(*kv, rx, "fresh", "x") == 0);
	REQUIRE(kv->batch_undo(m) == 0);
	kv->batch_end();
	CHECK(kv->live_records() == records);
	CHECK(flatten(*kv, kv_test_clock()) == before);
	// The cleaner's per-buffer lists are whole again: a DEL of every key
	// and a checkpoint give every buffer back.
	for (int i = 0; i < 40; i++)
		REQUIRE(kv->del(rx.receive_one("k" + std::to_string(i))) == 1);
	REQUIRE(kv->del(rx.receive_one("typed")) == 1);
	REQUIRE(kv->commit() >= 0);
	rx.release();
	REQUIRE(kv->checkpoint() == 0);
	CHECK(alloc.free_count() == alloc.count());
	CHECK(alloc.check());
}

TEST_CASE_METHOD(SmallRingStore<16>, "a write refused for checkpoint capacity inside a batch is remembered",
		 "[unit][pmem]")
{
	const KvStore::BatchMark m = kv->batch_begin();
	CHECK(kv->admit(kv->record_limit() + 1, 1) == -ENOSPC);
	CHECK(kv->batch_refused());
	REQUIRE(kv->batch_undo(m) == 0);
	kv->batch_end();
	CHECK(!kv->batch_refused());
	CHECK(kv->batch_undo(m) == -EINVAL);  // outside a batch
}

TEST_CASE_METHOD(SmallRingStore<16>, "a commit inside a batch is refused, so the batch can still be taken back whole",
		 "[unit][pmem]")
{
	// Regression (issue 14 review): commit() inside a batch made its
	// entries durable; batch_undo() then rewound the index but could not
	// take them back from the log (-EINVAL): index and log disagreed.
	base(*kv, rx);
	const FlatState before = flatten(*kv, kv_test_clock());
	const KvStore::BatchMark m = kv->batch_begin();
	REQUIRE(put(*kv, rx, "k1", "changed") == 0);
	REQUIRE(put(*kv, rx, "fresh", "x") == 0);
	CHECK(kv->commit() == -EBUSY);
	REQUIRE(kv->batch_undo(m) == 0);
	kv->batch_end();
	CHECK(flatten(*kv, kv_test_clock()) == before);
	REQUIRE(kv->commit() >= 0);
	rx.release();
	Recovered r(p, kv_test_options(0));
	CHECK(flatten(*r.kv, kv_test_clock()) == before);
}

TEST_CASE_METHOD(SmallRingStore<0>, "deletes admitted before a batch may use the whole ring and are never refused in it",
		 "[unit][pmem]")
{
	// Regression (issue 14): an EXEC of DELs made no log room first, and
	// inside the batch no checkpoint runs: more deletes than the ring had
	// left were refused (EXECABORT OOM) although nothing was full.
	base(*kv, rx);
	for (int i = 0; kv->wal().used() < kv->batch_log_limit(); i++) {
		REQUIRE(put(*kv, rx, "k0", "o" + std::to_string(i)) == 0);  // staged: no commit, no checkpoint
		if (i % 16 == 15)
			rx.release();
	}
	rx.release();
	const std::uint64_t reserve = kv->wal().nslots() - kv->batch_log_limit();
	REQUIRE(reserve < 40);
	{
		// without admission: the deletes run out at the end of the ring
		const KvStore::BatchMark m = kv->batch_begin();
		int rc = 0;
		for (int i = 0; i < 40 && rc >= 0; i++)
			rc = kv->del(rx.receive_one("k" + std::to_string(i)));
		CHECK(rc == -ENOSPC);
		REQUIRE(kv->batch_undo(m) == 0);
		kv->batch_end();
		rx.release();
	}
	CHECK(kv->admit_frees(kv->wal().nslots() + 1) == -EMSGSIZE);  // no batch takes that many
	const std::uint64_t checkpoints = kv->wal().stats().checkpoints;
	REQUIRE(kv->admit_frees(40) == 0);
	CHECK(kv->wal().stats().checkpoints == checkpoints + 1);  // the room was made before the batch
	(void)kv->batch_begin();
	for (int i = 0; i < 40; i++)
		REQUIRE(kv->del(rx.receive_one("k" + std::to_string(i))) == 1);
	CHECK(kv->admit_frees(kv->wal().nslots()) == -ENOSPC);  // inside a batch nothing makes room
	kv->batch_end();
	REQUIRE(kv->commit() >= 0);
	rx.release();
	CHECK(alloc.check());
	Recovered r(p, kv_test_options(0));
	CHECK(r.kv->dbsize() == 1);  // "typed"
}

TEST_CASE_METHOD(SmallRingStore<0>, "a batch that cannot be taken back fails the store, which makes none of it durable",
		 "[unit][pmem]")
{
	// Regression (issue 14): a failed batch_undo() was only logged
	// (daxnet-kv's end_atomic(), daxnet-wal's end_batch()): the group the
	// caller refused stayed staged and was committed with the pass, all
	// of it but the refused entry durable while the reply said none was.
	// A stream trim is never taken back: the undo past it fails.
	base(*kv, rx);
	for (int i = 0; i < 3; i++)
		REQUIRE(kv->stream_append(rx.receive_one("s"), rx.receive("e" + std::to_string(i))) == 0);
	REQUIRE(kv->commit() >= 0);
	rx.release();
	const FlatState before = flatten(*kv, kv_test_clock());
	const KvStore::BatchMark m = kv->batch_begin();
	REQUIRE(put(*kv, rx, "k1", "changed") == 0);
	REQUIRE(kv->stream_trim(rx.receive_one("s"), 2) == 2);
	REQUIRE(put(*kv, rx, "fresh", "x") == 0);
	CHECK(kv->failed() == 0);
	CHECK(kv->batch_undo(m) == -EBUSY);
	CHECK(kv->failed() == EBUSY);
	kv->batch_end();
	// nothing more is logged, committed or checkpointed
	CHECK(put(*kv, rx, "later", "y") == -EROFS);
	CHECK(kv->del(rx.receive_one("k2")) == -EROFS);
	CHECK(kv->commit() == -EIO);
	CHECK(kv->checkpoint() == -EIO);
	CHECK(kv->reclaim() == -EIO);
	CHECK(kv->admit(1, 1) == -EROFS);
	rx.release();
	// what was committed before stays; none of the group is durable
	Recovered r(p, kv_test_options(0));
	CHECK(flatten(*r.kv, kv_test_clock()) == before);
	CHECK(r.kv->failed() == 0);
}

TEST_CASE_METHOD(SmallRingStore<16>, "no checkpoint begins, advances or installs inside a batch", "[unit][pmem]")
{
	// A checkpoint inside a batch would persist the part of it staged so
	// far (a fuzzy one writes the index as it is): every way to one is an
	// error or a no-op there, and the pending one goes on after it.
	base(*kv, rx);
	for (int i = 0; !kv->checkpoint_pending(); i++) {
		REQUIRE(i < 1000);
		REQUIRE(put(*kv, rx, "k" + std::to_string(i % 40), "p" + std::to_string(i)) == 0);
		if (i % 8 == 7) {
			REQUIRE(kv->commit() >= 0);  // begins one past checkpoint_fraction
			rx.release();
		}
	}
	const auto stats = kv->checkpoint_stats();
	const std::uint64_t checkpoints = kv->wal().stats().checkpoints;
	const FlatState before = flatten(*kv, kv_test_clock());
	const KvStore::BatchMark m = kv->batch_begin();
	CHECK(kv->reclaim() == 0);
	CHECK(kv->checkpoint() == -EBUSY);
	CHECK(kv->commit() == -EBUSY);
	int rc = 0;
	for (int i = 0; i < 2000 && rc == 0; i++) {
		rc = put(*kv, rx, "k" + std::to_string(i % 40), "b" + std::to_string(i));
		if (i % 16 == 15)
			rx.release();
	}
	CHECK(rc == -ENOSPC);  // the ring is full: refused, not finished by a checkpoint
	CHECK(kv->make_room(kv->batch_log_limit()) == -ENOSPC);
	CHECK(kv->admit_frees(kv->wal().nslots()) == -ENOSPC);
	CHECK(kv->checkpoint_pending());
	CHECK(kv->wal().stats().checkpoints == checkpoints);
	CHECK(kv->checkpoint_stats().stepped == stats.stepped);
	CHECK(kv->checkpoint_stats().finished == stats.finished);
	REQUIRE(kv->batch_undo(m) == 0);
	kv->batch_end();
	rx.release();
	CHECK(flatten(*kv, kv_test_clock()) == before);
	// after the batch: it goes on and installs
	for (int i = 0; kv->checkpoint_pending() && i < 100; i++)
		REQUIRE(kv->commit() >= 0);
	CHECK(!kv->checkpoint_pending());
	CHECK(kv->wal().stats().checkpoints > checkpoints);
	CHECK(kv->failed() == 0);
	// A mark of no open batch position fails the store (never a half undo).
	(void)kv->batch_begin();
	const KvStore::BatchMark bogus{kv->wal().next_seq(), 1u << 20};
	CHECK(kv->batch_undo(bogus) == -EINVAL);
	CHECK(kv->failed() == EINVAL);
	kv->batch_end();
}

TEST_CASE_METHOD(SmallRingStore<16>, "stream appends inside a batch are taken back: entries, a created stream, positions",
		 "[unit][pmem]")
{
	// batch_undo() pops the appended entries of an existing stream again
	// and drops a stream the batch created (daxnet-wal's batch=lines
	// refused whole relies on it); the positions are given again.
	base(*kv, rx);
	for (int i = 0; i < 3; i++)
		REQUIRE(kv->stream_append(rx.receive_one("old"), rx.receive("o" + std::to_string(i))) == 0);
	REQUIRE(kv->commit() >= 0);
	rx.release();
	const FlatState before = flatten(*kv, kv_test_clock());
	const std::uint64_t records = kv->live_records(), payload = kv->live_payload_bytes();
	const KvStore::BatchMark outer = kv->batch_begin();
	std::uint64_t pos = 0;
	REQUIRE(kv->stream_append(rx.receive_one("old"), rx.receive("kept"), 0, &pos) == 0);
	CHECK(pos == 3);
	const KvStore::BatchMark m = kv->batch_begin();
	for (int i = 0; i < 5; i++) {
		REQUIRE(kv->stream_append(rx.receive_one("old"), rx.receive(std::string(3000, 'b')), 0, &pos) == 0);
		CHECK(pos == 4u + static_cast<unsigned>(i));
		REQUIRE(kv->stream_append(rx.receive_one("new"), rx.receive("n" + std::to_string(i)), 0, &pos) == 0);
		CHECK(pos == static_cast<unsigned>(i));
	}
	REQUIRE(put(*kv, rx, "k1", "changed") == 0);
	CHECK(kv->stream_length("old") == 9);
	CHECK(kv->stream_exists("new"));
	REQUIRE(kv->batch_undo(m) == 0);
	kv->batch_end();
	CHECK(kv->stream_length("old") == 4);  // "kept", before the mark, stays
	CHECK(!kv->stream_exists("new"));
	CHECK(kv->stream_length("new") == 0);
	daxnet::pmem::StreamEntryRef e[8];
	REQUIRE(kv->stream_read("old", 0, e) == 4);
	CHECK(bytes_of(p.view(), e[3].body) == "kept");
	// the part before the mark taken back too: as before the batch
	REQUIRE(kv->batch_undo(outer) == 0);
	kv->batch_end();
	CHECK(flatten(*kv, kv_test_clock()) == before);
	CHECK(kv->live_records() == records);
	CHECK(kv->live_payload_bytes() == payload);
	// positions are given again, durably
	REQUIRE(kv->stream_append(rx.receive_one("old"), rx.receive("again"), 0, &pos) == 0);
	CHECK(pos == 3);
	REQUIRE(kv->commit() >= 0);
	rx.release();
	CHECK(alloc.check());
	const FlatState now = flatten(*kv, kv_test_clock());
	Recovered r(p, kv_test_options(16));
	CHECK(flatten(*r.kv, kv_test_clock()) == now);
	CHECK(r.kv->stream_length("old") == 4);
	CHECK(!r.kv->stream_exists("new"));
}

TEST_CASE_METHOD(SmallRingStore<0>, "a rename staged as one admitted batch is never split by a checkpoint",
		 "[unit][pmem]")
{
	// daxnet-kv's RENAME/MOVE (move_stored()): log room for both entries
	// admitted first, then the source's KV_DEL and the destination's
	// KV_SET of the same value slices in batch mode. Staged as two plain
	// writes with the ring one record short (issue 14), the KV_SET made
	// its room with a checkpoint that made the KV_DEL durable on its own:
	// a crash then lost the key under both names.
	base(*kv, rx);
	for (int i = 0; kv->wal().used() + 1 < kv->batch_log_limit(); i++) {
		REQUIRE(put(*kv, rx, "k0", "o" + std::to_string(i)) == 0);  // staged: no commit, no checkpoint
		if (i % 16 == 15)
			rx.release();
	}
	rx.release();
	ValueRef v;
	REQUIRE(kv->get("k5", v) == 1);
	const std::vector<Slice> slices(v.slices.begin(), v.slices.end());
	REQUIRE(kv->admit(0, daxnet::pmem::wal_records_for(slices.size()) + 1) == 0);  // the room, made now
	(void)kv->batch_begin();
	REQUIRE(kv->del(rx.receive_one("k5")) == 1);
	REQUIRE(kv->set(rx.receive_one("k5-renamed"), slices) == 0);
	kv->batch_end();
	rx.release();
	ValueRef a, b;
	{
		Recovered r(p, kv_test_options(0));  // a crash before the commit: the old name
		CHECK(r.kv->get("k5", a) == 1);
		CHECK(r.kv->get("k5-renamed", b) == 0);
	}
	REQUIRE(kv->commit() >= 0);
	Recovered r(p, kv_test_options(0));  // after it: the new name
	CHECK(r.kv->get("k5", a) == 0);
	REQUIRE(r.kv->get("k5-renamed", b) == 1);
	CHECK(bytes_of(r.kv->pool(), b) == val("k5", 0));
	CHECK(alloc.check());
}
