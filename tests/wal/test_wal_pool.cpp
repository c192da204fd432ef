// SPDX-License-Identifier: BSD-2-Clause
//
// The WAL and KV store over a real pool file (libpmem2 mapping), reopened
// like a restarted server, and `daxnet-pool check` / `dump` on it.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <sys/wait.h>
#include <string>

#include "wal_test_util.h"

using namespace daxnet::test;
using daxnet::pmem::BufferAllocator;
using daxnet::pmem::KvStore;
using daxnet::pmem::Pool;
using daxnet::pmem::RecoveryReport;
using daxnet::pmem::ValueRef;

namespace {

struct TempPool {
	std::string path;
	TempPool() : path("/tmp/daxnet-wal-test-" + std::to_string(::getpid()) + ".pool") { std::remove(path.c_str()); }
	~TempPool() { std::remove(path.c_str()); }
};

/// The pool file reopened like a restarted server and its store recovered
/// (both REQUIREd to succeed); rep says how recovery ended.
struct Restarted {
	daxnet::Result<Pool> pool;
	BufferAllocator alloc;
	RecoveryReport rep;
	std::unique_ptr<KvStore> kv;

	explicit Restarted(const std::string& path) : pool(Pool::open(path))
	{
		REQUIRE(pool);
		auto k = KvStore::open(pool->view(), alloc, {}, &rep);
		REQUIRE(k);
		kv = std::move(*k);
	}
};

struct Run {
	int rc = -1;
	std::string out;
};

Run run(const std::string& args)
{
	Run r;
	const std::string cmd = std::string(DAXNET_BIN_DIR) + "/daxnet-pool " + args + " 2>&1";
	FILE* f = ::popen(cmd.c_str(), "r");
	REQUIRE(f);
	char buf[4096];
	for (std::size_t n; (n = std::fread(buf, 1, sizeof(buf), f)) > 0;)
		r.out.append(buf, n);
	const int st = ::pclose(f);
	r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	return r;
}

std::string file_bytes(const std::string& path)
{
	std::string s;
	FILE* f = std::fopen(path.c_str(), "rb");
	REQUIRE(f);
	char buf[65536];
	for (std::size_t n; (n = std::fread(buf, 1, sizeof(buf), f)) > 0;)
		s.append(buf, n);
	std::fclose(f);
	return s;
}

}  // namespace

TEST_CASE("a KV store on a pool file survives reopening, and daxnet-pool check/dump read it", "[pmem]")
{
	TempPool tp;
	{
		auto pool = Pool::create(tp.path, {.size = 8u << 20});
		REQUIRE(pool);
		BufferAllocator alloc;
		auto kv = KvStore::open(pool->view(), alloc);
		REQUIRE(kv);
		RxSim rx(pool->view(), alloc);
		for (int i = 0; i < 2000; i++) {
			REQUIRE((*kv)->set(rx.receive_one("key" + std::to_string(i % 500)),
					   rx.receive_one("value" + std::to_string(i))) == 0);
			if (i % 16 == 15) {
				REQUIRE((*kv)->commit() >= 0);
				rx.release();
			}
		}
		REQUIRE((*kv)->commit() >= 0);
	}
	{
		Restarted r(tp.path);
		CHECK(r.rep.stop == RecoveryReport::Stop::clean);
		CHECK(r.kv->dbsize() == 500);
		ValueRef v;
		REQUIRE(r.kv->get("key7", v) == 1);
		CHECK(bytes_of(r.pool->view(), v) == "value1507");
	}

	const std::string before = file_bytes(tp.path);
	const Run ok = run("check " + tp.path);
	INFO(ok.out);
	CHECK(ok.rc == 0);
	CHECK(ok.out.find("index: 500 keys") != std::string::npos);
	CHECK(file_bytes(tp.path) == before);

	const Run dump = run("dump " + tp.path + " --count 3");
	INFO(dump.out);
	CHECK(dump.rc == 0);
	CHECK(dump.out.find("KV_SET") != std::string::npos);

	// Flip a bit in a committed record that later batches follow.
	{
		Restarted r(tp.path);
		r.kv.reset();
		auto& pool = r.pool;
		auto& rep = r.rep;
		const std::uint64_t n = daxnet::pmem::wal_nslots(pool->geometry().wal_size);
		const std::uint64_t seq = rep.head_seq + (rep.next_seq - rep.head_seq) / 2;
		auto* rec = pool->view().wal_area().data() + 4096 + (seq % n) * 64;
		rec[30] ^= std::byte{4};
		pool->domain().persist(rec, 64);
	}
	const std::string damaged = file_bytes(tp.path);
	const Run bad = run("check " + tp.path);
	INFO(bad.out);
	CHECK(bad.rc != 0);
	CHECK(bad.out.find("PROBLEM") != std::string::npos);
	CHECK(file_bytes(tp.path) == damaged);  // check never writes
	auto pool = Pool::open(tp.path);
	REQUIRE(pool);
	BufferAllocator alloc;
	CHECK_FALSE(KvStore::open(pool->view(), alloc));
}
