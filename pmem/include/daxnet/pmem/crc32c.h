// SPDX-License-Identifier: BSD-2-Clause
//
// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as used by the pool
// superblock, WAL records and checkpoints. Hardware (SSE4.2) when the CPU has
// it, chosen once at run time; a table-driven fallback otherwise (QEMU's
// default TCG CPU has no SSE4.2).
#pragma once

#include <cstddef>
#include <cstdint>

namespace daxnet::pmem {

/// Extends `crc` (0 for a fresh checksum) over `n` bytes at `data`.
std::uint32_t crc32c_extend(std::uint32_t crc, const void* data, std::size_t n) noexcept;

inline std::uint32_t crc32c(const void* data, std::size_t n) noexcept
{
	return crc32c_extend(0, data, n);
}

/// LevelDB-style masking for CRCs stored next to data that is itself
/// checksummed: a CRC over bytes that contain CRCs is weak otherwise.
constexpr std::uint32_t crc32c_mask(std::uint32_t crc) noexcept
{
	return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

constexpr std::uint32_t crc32c_unmask(std::uint32_t masked) noexcept
{
	const std::uint32_t rot = masked - 0xa282ead8u;
	return (rot >> 17) | (rot << 15);
}

}  // namespace daxnet::pmem
