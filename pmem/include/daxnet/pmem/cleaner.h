// SPDX-License-Identifier: BSD-2-Clause
//
// The cleaner's knobs and counters (docs/wal-format.md §The cleaner). The
// cleaner itself is KvStore::clean() (pmem/src/cleaner.cpp): it copies the
// live keys of sparsely used buffers into dense ones, logging each move as
// a KV_SET of the same bytes, a bounded amount per event-loop pass, and
// lets the next checkpoint release the old buffers.
#pragma once

#include <cstdint>

namespace daxnet::pmem {

struct CleanerOptions {
	bool enabled = true;
	/// Per call: at most this many payload bytes copied ...
	std::uint32_t max_bytes = 64 * 1024;
	/// ... this many entries moved ...
	std::uint32_t max_entries = 256;
	/// ... and this many index entries visited (a bucket is finished).
	std::uint32_t max_visits = 4096;
	/// Values larger than this are never moved (stay zero-copy where they
	/// were received). 0: half a buffer.
	std::uint32_t move_limit = 0;
	/// A buffer is a victim candidate when its live bytes are below this
	/// fraction of its size.
	double sparse = 0.5;
	/// Victims per cleaning cycle, at most.
	std::uint32_t max_victims = 1024;
	/// Never take a destination buffer when no more than this many are
	/// free (0: 4, or 1/64 of the pool when larger).
	std::uint32_t keep_free = 0;
	/// A cycle starts when free buffers are below this fraction of the
	/// pool (space is low) and it can win at least one buffer ...
	double low_free = 0.25;
	/// ... or, whatever is free, when it can win at least 8 buffers and
	/// this fraction of the buffers holding live data (fragmentation is high).
	double frag_gain = 0.25;
	/// Calls to wait after finding nothing worth a cycle.
	std::uint32_t backoff = 256;
};

struct CleanerStats {
	std::uint64_t moved_bytes = 0;     ///< key and value bytes copied
	std::uint64_t moved_entries = 0;   ///< relocation entries staged
	std::uint64_t freed_buffers = 0;   ///< victims that came free at a checkpoint
	std::uint64_t cycles = 0;          ///< cleaning cycles completed
	std::uint64_t victims = 0;         ///< buffers chosen as victims
	std::uint64_t skipped_corrupt = 0; ///< slices left in place: payload CRC mismatch
	std::uint64_t stalls = 0;          ///< calls stopped early: no log room or no free buffer
};

}  // namespace daxnet::pmem
