// SPDX-License-Identifier: BSD-2-Clause
//
// Fuzzes pool superblock validation and geometry planning
// (pmem/src/pool.cpp: parse_superblock, plan_geometry, format_superblock)
// against docs/pool-format.md.
//
// Input: [mode byte][128 superblock bytes][u64 file size]
//        [u64 pool size][u32 buffer size][u64 wal size][u64 ckpt size]
// mode bit 0: recompute the superblock checksum (so validation gets past
//             it and the geometry checks are exercised);
// mode bit 1: force a valid magic, version, header size, zero flags and
//             reserved bytes (geometry only);
// mode bit 2: small pool sizes (pool size taken in 4 KiB pages, < 4 GiB);
// mode bit 3: buffer size taken as given (otherwise 2048 or 4096).
//
// Checked:
//   * a superblock parse_superblock accepts describes a geometry that fits:
//     page-aligned areas in order superblock < WAL < checkpoint < buffers,
//     none empty, all inside pool_size (computed without overflow), pool_size
//     <= file size, buffer size 2048/4096, at least one buffer; the geometry
//     equals the fields;
//   * what plan_geometry accepts fits the same way, follows the documented
//     defaults, and survives format_superblock -> parse_superblock unchanged;
//     the same superblock on a file one byte shorter is refused.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>

#include "daxnet/pmem/crc32c.h"
#include "daxnet/pmem/pool.h"
#include "fuzz.h"

namespace {

using daxnet::fuzz::FuzzInput;
using daxnet::pmem::Geometry;
using daxnet::pmem::Superblock;
__extension__ typedef unsigned __int128 u128;  // sums of u64 offsets, exact

std::string geo_str(const Geometry& g)
{
	return "pool " + std::to_string(g.pool_size) + " buf " + std::to_string(g.buffer_size) + "x" +
	       std::to_string(g.buffer_count) + "@" + std::to_string(g.buffer_offset) + " wal " +
	       std::to_string(g.wal_size) + "@" + std::to_string(g.wal_offset) + " ckpt " +
	       std::to_string(g.ckpt_size) + "@" + std::to_string(g.ckpt_offset);
}

/// docs/pool-format.md §Layout and §Validation on open, rule 6.
void check_fits(const Geometry& g)
{
	const std::string s = geo_str(g);
	FUZZ_CHECK_MSG(g.buffer_size == 2048 || g.buffer_size == 4096, s);
	FUZZ_CHECK_MSG(g.buffer_count > 0, s);
	FUZZ_CHECK_MSG(g.wal_offset % 4096 == 0 && g.ckpt_offset % 4096 == 0 && g.buffer_offset % 4096 == 0, s);
	FUZZ_CHECK_MSG(g.wal_size > 0 && g.ckpt_size > 0, s);
	FUZZ_CHECK_MSG(g.wal_offset >= 4096, s);
	FUZZ_CHECK_MSG(u128{g.wal_offset} + g.wal_size <= g.ckpt_offset, "WAL area runs into the checkpoint area: " + s);
	FUZZ_CHECK_MSG(u128{g.ckpt_offset} + g.ckpt_size <= g.buffer_offset,
		       "checkpoint area runs into the buffers: " + s);
	FUZZ_CHECK_MSG(u128{g.buffer_offset} + u128{g.buffer_count} * g.buffer_size <= g.pool_size,
		       "buffers end beyond pool_size: " + s);
}

bool same(const Geometry& a, const Geometry& b)
{
	return a.pool_size == b.pool_size && a.buffer_size == b.buffer_size && a.buffer_count == b.buffer_count &&
	       a.buffer_offset == b.buffer_offset && a.wal_offset == b.wal_offset && a.wal_size == b.wal_size &&
	       a.ckpt_offset == b.ckpt_offset && a.ckpt_size == b.ckpt_size;
}

std::uint64_t round4k(std::uint64_t v)
{
	return (v + 4095) / 4096 * 4096;
}

std::uint64_t clamp(std::uint64_t v, std::uint64_t lo, std::uint64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

}  // namespace

DAXNET_FUZZ_TARGET(superblock)
{
	FuzzInput in(data, size);
	const std::uint8_t mode = in.u8();

	// ---- parse_superblock on arbitrary bytes ----
	Superblock sb{};
	const auto raw = in.bytes(sizeof sb);
	std::memcpy(&sb, raw.data(), raw.size());
	const std::uint64_t file_size = in.u64();
	if (mode & 2) {
		std::memcpy(sb.magic, "DAXNETPL", 8);
		sb.version = 1;
		sb.header_size = sizeof(Superblock);
		sb.flags = 0;
		std::memset(sb.reserved, 0, sizeof sb.reserved);
	}
	if (mode & 1)
		sb.checksum = daxnet::pmem::crc32c(&sb, offsetof(Superblock, checksum));
	if (auto g = daxnet::pmem::parse_superblock(sb, file_size)) {
		FUZZ_CHECK(std::memcmp(sb.magic, "DAXNETPL", 8) == 0 && sb.version == 1);
		FUZZ_CHECK(sb.checksum == daxnet::pmem::crc32c(&sb, offsetof(Superblock, checksum)));
		FUZZ_CHECK(sb.header_size == 128 && sb.flags == 0);
		check_fits(*g);
		FUZZ_CHECK(g->pool_size <= file_size);
		const Geometry want{sb.pool_size,    sb.buffer_size, sb.buffer_count, sb.buffer_offset,
				    sb.wal_offset,   sb.wal_size,    sb.ckpt_offset,  sb.ckpt_size};
		FUZZ_CHECK(same(*g, want));
	} else {
		FUZZ_CHECK(g.error().code > 0 && !g.error().message.empty());
	}

	// ---- plan_geometry -> format_superblock -> parse_superblock ----
	std::uint64_t pool_size = in.u64();
	if (mode & 4)
		pool_size = (pool_size & 0xfffff) * 4096 + (pool_size >> 60);
	std::uint32_t buffer_size = in.u32();
	if (!(mode & 8))
		buffer_size = (buffer_size & 1) ? 2048 : 4096;
	std::uint64_t wal_size = in.u64();
	std::uint64_t ckpt_size = in.u64();
	if (mode & 16)
		wal_size &= 0xffffff;
	if (mode & 32)
		ckpt_size &= 0xffffff;
	if (mode & 64)
		wal_size = 0;
	if (mode & 128)
		ckpt_size = 0;

	auto g = daxnet::pmem::plan_geometry(pool_size, buffer_size, wal_size, ckpt_size);
	if (!g) {
		FUZZ_CHECK(g.error().code == EINVAL && !g.error().message.empty());
		return 0;
	}
	check_fits(*g);
	FUZZ_CHECK(g->pool_size == pool_size && g->buffer_size == buffer_size);
	FUZZ_CHECK(g->buffer_count >= 16);
	FUZZ_CHECK_MSG(g->buffer_count == (pool_size - g->buffer_offset) / buffer_size, geo_str(*g));
	if (wal_size == 0)
		FUZZ_CHECK(g->wal_size == round4k(clamp(pool_size / 16, 64u << 10, 256u << 20)));
	else
		FUZZ_CHECK_MSG(g->wal_size >= wal_size && g->wal_size - wal_size < 4096, geo_str(*g));
	if (ckpt_size == 0)
	{
		// docs/pool-format.md §Geometry defaults: one checkpoint record
		// per 256 bytes of (estimated) buffer area in each half.
		const std::uint64_t used = 4096 + g->wal_size + 8192;
		const std::uint64_t x = (pool_size > used ? pool_size - used : 0) / 3 * 2;
		FUZZ_CHECK_MSG(g->ckpt_size == std::max<std::uint64_t>(64u << 10, 2 * round4k(4096 + (x + 255) / 256 * 64)),
			       geo_str(*g));
	}
	else
		FUZZ_CHECK_MSG(g->ckpt_size >= ckpt_size && g->ckpt_size - ckpt_size < 4096, geo_str(*g));

	Superblock fresh{};
	daxnet::pmem::Uuid uuid{};
	for (std::size_t i = 0; i < uuid.size(); ++i)
		uuid[i] = static_cast<std::uint8_t>(mode + i);
	daxnet::pmem::format_superblock(fresh, *g, uuid, 12345);
	auto back = daxnet::pmem::parse_superblock(fresh, pool_size);
	FUZZ_CHECK_MSG(back.ok(), "planned geometry refused: " + (back ? std::string() : back.error().message) + ": " +
					  geo_str(*g));
	FUZZ_CHECK_MSG(same(*back, *g), geo_str(*back) + " vs " + geo_str(*g));
	FUZZ_CHECK_MSG(!daxnet::pmem::parse_superblock(fresh, pool_size - 1).ok(), "truncated file accepted");
	return 0;
}
