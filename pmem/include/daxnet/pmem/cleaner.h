// SPDX-License-Identifier: BSD-2-Clause
//
// The cleaner's knobs and counters (docs/wal-format.md §The cleaner). The
// cleaner itself is KvStore::clean() (pmem/src/cleaner.cpp): it copies the
// live keys of sparsely used buffers into dense ones, logging each move as
// a KV_SET of the same bytes, a bounded amount per event-loop pass, and
// lets the next checkpoint release the old buffers.
#pragma once

#include <algorithm>
#include <cstdint>

namespace daxnet::pmem {

/// Free buffers a service keeps for receiving requests and replies: writes
/// are refused below it (daxnet-kv `--reserve` default, daxnet-wal), and
/// the cleaner takes a destination buffer at or below it only for a cycle
/// that frees more than it takes, never the last half of it
/// (CleanerOptions::keep_free). One formula for all of them:
/// max(32, buffers / 16).
inline std::uint32_t service_reserve(std::uint32_t buffers) noexcept
{
	return std::max<std::uint32_t>(32, buffers / 16);
}

struct CleanerOptions {
	bool enabled = true;
	/// Per call: at most this many payload bytes copied ...
	std::uint32_t max_bytes = 64 * 1024;
	/// ... this many entries moved ...
	std::uint32_t max_entries = 256;
	/// ... and this many units of work done: a buffer looked at by the
	/// victim scan, a victim visited and a key of a victim visited each
	/// count one (a victim's keys are finished, so a call may pass it by
	/// the keys of one buffer). The same budget bounds the entries a
	/// checkpoint the cleaner asked for writes per pass when the store
	/// otherwise checkpoints whole (checkpoint_step 0).
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
	/// free (0: service_reserve(), what the services keep for receiving;
	/// they pass their own reserve when it is set by an option) -- except
	/// a cycle known to free more buffers than it takes: it may take the
	/// destination buffers it was estimated to need from that reserve,
	/// never the last half of it (a fragmented pool full to the reserve is
	/// exactly the one cleaning gives buffers back to). A cycle takes only
	/// the victims that fit what it may take, and one that runs out all
	/// the same ends early (CleanerStats::cut_cycles) rather than wait.
	std::uint32_t keep_free = 0;
	/// A cycle starts when free buffers are below this fraction of the
	/// pool (space is low) and it can win at least one buffer ...
	double low_free = 0.25;
	/// ... or, whatever is free, when it can win at least 8 buffers and
	/// this fraction of the buffers holding live data (fragmentation is high).
	double frag_gain = 0.25;
	/// While space is not low, the victim scan is repeated only once the
	/// key and value bytes superseded (deleted, overwritten, expired)
	/// since the last one reach this multiple of the live payload (and 8
	/// buffers): each cycle asks for a checkpoint that rewrites every live
	/// entry, so overwrites of a small key set would otherwise pay about
	/// two checkpoint entries per write (issue 15).
	double frag_pace = 2.0;
	/// Test hook, off (0) in every service: every Nth relocation is
	/// staged and then fails with -ENOMEM, as when indexing it runs out of
	/// memory after the WAL took it (the log takes it back: all or
	/// nothing). Checked on the cleaner's path only.
	std::uint32_t fault_enomem_every = 0;
};

struct CleanerStats {
	std::uint64_t moved_bytes = 0;     ///< key and value bytes copied
	std::uint64_t moved_entries = 0;   ///< relocation entries staged
	std::uint64_t freed_buffers = 0;   ///< victims that came free at a checkpoint
	std::uint64_t cycles = 0;          ///< cleaning cycles completed
	std::uint64_t victims = 0;         ///< buffers chosen as victims
	std::uint64_t skipped_corrupt = 0; ///< slices left in place: payload CRC mismatch
	std::uint64_t stalls = 0;          ///< calls stopped early: no log room or no free buffer
	std::uint64_t futile_cycles = 0;   ///< cycles that emptied no victim (no checkpoint asked)
	std::uint64_t scans = 0;           ///< victim scans completed
	std::uint64_t work = 0;            ///< units of work done (see CleanerOptions::max_visits)
	/// Destination buffers taken from the service reserve (by a cycle known
	/// to free more buffers than it takes).
	std::uint64_t reserve_buffers = 0;
	/// Cycles ended before all their victims were walked: no destination
	/// buffer was left to take (their emptied victims are still released).
	std::uint64_t cut_cycles = 0;
};

}  // namespace daxnet::pmem
