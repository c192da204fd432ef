// SPDX-License-Identifier: BSD-2-Clause
// needs: daxnet_pmem
//
// Bugs the superblock fuzzer (tests/fuzz/fuzz_superblock.cpp) found in
// pmem/src/pool.cpp, as named regression tests. Each builds the offending
// superblock or planning request by hand; the saved fuzzer inputs are in
// tests/fuzz/regressions/superblock/.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>

#include "daxnet/pmem/crc32c.h"
#include "daxnet/pmem/pool.h"

using daxnet::pmem::Geometry;
using daxnet::pmem::Superblock;

namespace {

Superblock superblock_for(const Geometry& g)
{
	Superblock sb{};
	daxnet::pmem::format_superblock(sb, g, daxnet::pmem::Uuid{}, 1);
	return sb;
}

void reseal(Superblock& sb)
{
	sb.checksum = daxnet::pmem::crc32c(&sb, offsetof(Superblock, checksum));
}

}  // namespace

TEST_CASE("parse_superblock refuses a checkpoint area whose end wraps past 2^64", "[unit][fuzz][pool]")
{
	// 64 MiB pool, 2 KiB buffers. The WAL area claims almost 2^64 bytes and
	// the checkpoint area starts where it ends; ckpt_offset + ckpt_size
	// overflows to a small number, so "buffer_offset < ckpt_offset +
	// ckpt_size" passes and the areas are accepted although they lie far
	// outside the pool (a WAL over them reads unmapped memory).
	Geometry g{};
	g.pool_size = 64ull << 20;
	g.buffer_size = 2048;
	g.buffer_count = 24606;
	g.buffer_offset = 16715776;
	g.wal_offset = 4096;
	g.wal_size = 0xffffffffffff0000ull;     // 2^64 - 64 KiB
	g.ckpt_offset = 0xffffffffffff1000ull;  // wal_offset + wal_size
	g.ckpt_size = 16ull << 20;              // ckpt_offset + ckpt_size wraps to buffer_offset
	Superblock sb = superblock_for(g);
	reseal(sb);
	auto r = daxnet::pmem::parse_superblock(sb, g.pool_size);
	CHECK_FALSE(r.ok());
}

TEST_CASE("parse_superblock refuses a WAL area whose end wraps past 2^64", "[unit][fuzz][pool]")
{
	Geometry g{};
	g.pool_size = 1ull << 20;
	g.buffer_size = 4096;
	g.buffer_count = 16;
	g.wal_offset = 8192;
	g.wal_size = 0xfffffffffffff000ull;  // wal_offset + wal_size wraps to 4096
	g.ckpt_offset = 4096 * 2;
	g.ckpt_size = 4096;
	g.buffer_offset = 4096 * 3;
	Superblock sb = superblock_for(g);
	reseal(sb);
	auto r = daxnet::pmem::parse_superblock(sb, g.pool_size);
	CHECK_FALSE(r.ok());
}

TEST_CASE("plan_geometry refuses WAL and checkpoint sizes that overflow when rounded or added",
	  "[unit][fuzz][pool]")
{
	// round_up(2^64 - 1, 4096) wraps to 0; offsets summed from huge sizes wrap.
	auto a = daxnet::pmem::plan_geometry(1ull << 20, 4096, ~0ull, 0);
	if (a.ok()) {
		CHECK(a->wal_size >= (~0ull - 4095));
	}
	auto b = daxnet::pmem::plan_geometry(1ull << 20, 4096, 1ull << 63, 1ull << 63);
	if (b.ok()) {
		CHECK(b->ckpt_offset >= b->wal_offset + (1ull << 63));
	}
	CHECK_FALSE(a.ok());
	CHECK_FALSE(b.ok());
}

TEST_CASE("plan_geometry refuses a WAL size that rounds past 2^64 in a pool of nearly 2^64 bytes",
	  "[unit][fuzz][pool]")
{
	// wal_size <= pool_size passes the size check, then round_up(2^64 - 1,
	// 4096) wraps to 0 and a geometry with an empty WAL area is returned
	// (saved input: regressions/superblock/plan-wal-size-rounds-to-zero).
	auto g = daxnet::pmem::plan_geometry(~0ull, 2048, ~0ull, 18446744073695395839ull);
	if (g.ok()) {
		INFO("wal_size " << g->wal_size << " ckpt_size " << g->ckpt_size);
		CHECK(g->wal_size >= ~0ull - 4095);
	}
	CHECK_FALSE(g.ok());
}
