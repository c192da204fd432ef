// SPDX-License-Identifier: BSD-2-Clause
//
// The cleaner's progress (private to pmem/src: kv.cpp owns it, cleaner.cpp
// runs it). docs/wal-format.md §The cleaner.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "daxnet/pmem/kv.h"

namespace daxnet::pmem {

struct KvStore::CleanerState {
	std::vector<std::uint8_t> victim;   ///< per buffer: 1 while a victim of the current cycle
	std::vector<std::uint32_t> victims; ///< the current cycle's victims
	std::vector<std::uint32_t> waiting; ///< evacuated victims not yet seen free
	std::vector<std::pair<std::uint32_t, std::uint32_t>> cand;  ///< (live bytes, buffer)
	std::vector<std::string_view> todo;
	bool cycle = false;
	std::size_t buckets = 0, bucket = 0;
	std::int64_t dest = -1;  ///< destination buffer (we hold one reference)
	std::uint32_t dest_used = 0;
	std::uint32_t backoff = 0;
	std::size_t free_at_scan = 0;  ///< free buffers at the last scan
	/// A checkpoint must cover the log up to here to release the last
	/// cycle's victims (0: none asked for).
	std::uint64_t reclaim_seq = 0;
};

}  // namespace daxnet::pmem
