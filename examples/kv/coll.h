// SPDX-License-Identifier: BSD-2-Clause
//
// daxnet-kv's collections (lists, sets, hashes): the encoding of a typed value
// (docs/design.md §daxnet-kv collections). A collection is one value,
// stored with KvStore::set(..., typed = true) (a KV_SET_TYPED entry,
// docs/wal-format.md §Record) and rewritten whole by every write:
//
//   byte 0     type: 1 list, 2 set, 3 hash
//   byte 1     version of this encoding: 1
//   bytes 2-5  element count n, u32 little-endian
//   then n times: u32 little-endian length, then that many bytes
//
// A list's elements are in list order (head first); a set's members are
// distinct, in the order SMEMBERS reports (ascending for an all-integer
// set of at most set-max-intset-entries members, as Redis's intset;
// otherwise insertion order). Nothing else may follow the last element.
//
// Version 2 (sets only; the same layout) marks a set that left the intset
// encoding: Redis never converts a hashtable back to an intset, so such a
// set keeps insertion order and reports `hashtable` even once its members
// are few integers again.
//
// A hash's elements are its fields and values, alternately (field, value,
// field, value, ...: n is twice the number of fields), fields distinct, in
// insertion order. Version 1 is a hash in Redis's listpack encoding,
// version 2 (the same layout) one that left it (more fields than
// hash-max-listpack-entries, or a field or value longer than
// hash-max-listpack-value, at some write): it reports `hashtable` for good.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace daxnet::kv::coll {

inline constexpr std::uint8_t kList = 1;
inline constexpr std::uint8_t kSet = 2;
inline constexpr std::uint8_t kHash = 3;
inline constexpr std::uint8_t kVersion = 1;
inline constexpr std::uint8_t kSetHashtable = 2;  ///< version byte of a set or hash in hashtable encoding
inline constexpr std::size_t kHeader = 6;
/// Encoded size a collection may reach (a write beyond it is refused): every
/// write rewrites the whole value, so this bounds a write's cost.
inline constexpr std::size_t kMaxBytes = 1u << 20;

/// The service's random engine (SRANDMEMBER, SPOP, HRANDFIELD, RANDOMKEY),
/// seeded once per process; the loop thread only.
std::mt19937_64& rng();

inline const char* type_name(std::uint8_t t) noexcept
{
	return t == kList ? "list" : t == kSet ? "set" : t == kHash ? "hash" : "unknown";
}

/// Encoded size of `items`.
inline std::size_t encoded_size(const std::vector<std::string>& items) noexcept
{
	std::size_t n = kHeader;
	for (const auto& s : items)
		n += 4 + s.size();
	return n;
}

inline void put_u32(std::string& out, std::uint32_t v)
{
	const char b[4] = {static_cast<char>(v & 0xff), static_cast<char>((v >> 8) & 0xff),
			   static_cast<char>((v >> 16) & 0xff), static_cast<char>((v >> 24) & 0xff)};
	out.append(b, 4);
}

inline std::uint32_t get_u32(const char* p) noexcept
{
	const auto* u = reinterpret_cast<const unsigned char*>(p);
	return static_cast<std::uint32_t>(u[0]) | static_cast<std::uint32_t>(u[1]) << 8 |
	       static_cast<std::uint32_t>(u[2]) << 16 | static_cast<std::uint32_t>(u[3]) << 24;
}

inline std::string encode(std::uint8_t type, const std::vector<std::string>& items, bool hashtable = false)
{
	std::string out;
	out.reserve(encoded_size(items));
	out.push_back(static_cast<char>(type));
	out.push_back(static_cast<char>((type == kSet || type == kHash) && hashtable ? kSetHashtable : kVersion));
	put_u32(out, static_cast<std::uint32_t>(items.size()));
	for (const auto& s : items) {
		put_u32(out, static_cast<std::uint32_t>(s.size()));
		out.append(s);
	}
	return out;
}

/// Decodes `b`: its type, and its elements into `items` (`hashtable`: a
/// set or hash of version 2). False when `b` is not a collection of these
/// versions (a type or version not known, a count or a length that does not
/// match the bytes, a hash with an odd count).
inline bool decode(std::string_view b, std::uint8_t& type, std::vector<std::string>& items, bool* hashtable = nullptr)
{
	items.clear();
	if (b.size() < kHeader || (b[0] != kList && b[0] != kSet && b[0] != kHash) ||
	    (b[1] != kVersion && !((b[0] == kSet || b[0] == kHash) && b[1] == kSetHashtable)))
		return false;
	type = static_cast<std::uint8_t>(b[0]);
	if (hashtable)
		*hashtable = b[1] == kSetHashtable;
	const std::uint32_t n = get_u32(b.data() + 2);
	if (n > (b.size() - kHeader) / 4 || (b[0] == kHash && n % 2 != 0))
		return false;
	items.reserve(n);
	std::size_t at = kHeader;
	for (std::uint32_t i = 0; i < n; i++) {
		if (b.size() - at < 4)
			return false;
		const std::uint32_t len = get_u32(b.data() + at);
		at += 4;
		if (b.size() - at < len)
			return false;
		items.emplace_back(b.substr(at, len));
		at += len;
	}
	return at == b.size();
}

}  // namespace daxnet::kv::coll
