// SPDX-License-Identifier: BSD-2-Clause
#include "daxnet/pmem/crc32c.h"

#include <array>
#include <cstring>

namespace daxnet::pmem {
namespace {

constexpr std::uint32_t kPoly = 0x82F63B78u;

constexpr std::array<std::array<std::uint32_t, 256>, 8> make_tables()
{
	std::array<std::array<std::uint32_t, 256>, 8> t{};
	for (std::uint32_t i = 0; i < 256; i++) {
		std::uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
		t[0][i] = c;
	}
	for (std::size_t i = 0; i < 256; i++)
		for (std::size_t s = 1; s < 8; s++)
			t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
	return t;
}

constexpr auto kTables = make_tables();

std::uint32_t crc_soft(std::uint32_t crc, const unsigned char* p, std::size_t n) noexcept
{
	crc = ~crc;
	while (n >= 8) {
		std::uint64_t w;
		std::memcpy(&w, p, 8);
		w ^= crc;
		crc = kTables[7][w & 0xff] ^ kTables[6][(w >> 8) & 0xff] ^
		      kTables[5][(w >> 16) & 0xff] ^ kTables[4][(w >> 24) & 0xff] ^
		      kTables[3][(w >> 32) & 0xff] ^ kTables[2][(w >> 40) & 0xff] ^
		      kTables[1][(w >> 48) & 0xff] ^ kTables[0][w >> 56];
		p += 8;
		n -= 8;
	}
	while (n--)
		crc = (crc >> 8) ^ kTables[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

__attribute__((target("sse4.2"))) std::uint32_t crc_hw(std::uint32_t crc, const unsigned char* p,
							std::size_t n) noexcept
{
	std::uint64_t c = ~crc;
	while (n >= 8) {
		std::uint64_t w;
		std::memcpy(&w, p, 8);
		c = __builtin_ia32_crc32di(c, w);
		p += 8;
		n -= 8;
	}
	auto c32 = static_cast<std::uint32_t>(c);
	while (n--)
		c32 = __builtin_ia32_crc32qi(c32, *p++);
	return ~c32;
}

using CrcFn = std::uint32_t (*)(std::uint32_t, const unsigned char*, std::size_t) noexcept;

CrcFn pick() noexcept
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("sse4.2") ? crc_hw : crc_soft;
}

const CrcFn g_crc = pick();

}  // namespace

std::uint32_t crc32c_extend(std::uint32_t crc, const void* data, std::size_t n) noexcept
{
	return g_crc(crc, static_cast<const unsigned char*>(data), n);
}

}  // namespace daxnet::pmem
