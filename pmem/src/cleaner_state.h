// SPDX-License-Identifier: BSD-2-Clause
//
// The cleaner's progress (private to pmem/src: kv.cpp owns it, cleaner.cpp
// runs it). docs/wal-format.md §The cleaner.
//
// Every vector here is reserved when the state is made (clean(), which
// returns -ENOMEM when it cannot be) and never grows past that capacity in
// the noexcept paths, except `todo`, whose growth is caught (-ENOMEM).
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "daxnet/pmem/kv.h"

namespace daxnet::pmem {

struct KvStore::CleanerState {
	/// Per buffer: kVictim while a victim of the current cycle, kStuck when
	/// the last cycle could not empty it (not chosen again before the next
	/// checkpoint is installed), 0 otherwise.
	static constexpr std::uint8_t kVictim = 1, kStuck = 2;
	std::vector<std::uint8_t> victim;
	std::vector<std::uint32_t> victims; ///< the current cycle's victims (capacity max_victims)
	std::vector<std::uint32_t> waiting; ///< emptied victims not yet seen free (capacity max_victims)
	/// The scan's sparsest buffers so far, a max-heap on live bytes
	/// (capacity max_victims): (live bytes, buffer).
	std::vector<std::pair<std::uint32_t, std::uint32_t>> cand;
	std::vector<std::string_view> todo;
	std::uint32_t stuck = 0;  ///< buffers marked kStuck
	// The victim scan, resumable: a few buffers per call.
	bool scanning = false;
	bool scanned = false;         ///< a scan was completed since the last change it waits for
	/// The last scan's cycle was held back or cut short for want of free
	/// buffers: scan again once free buffers rose (clean_rescan_due()).
	bool short_of_buffers = false;
	std::uint32_t scan_pos = 0;
	std::uint32_t holding = 0;    ///< buffers with live data seen by the scan
	std::uint64_t ncand = 0;      ///< candidates seen by the scan
	std::uint64_t live_all = 0;   ///< their live bytes
	std::size_t free_at_scan = 0;        ///< free buffers when the last scan began
	std::uint64_t forgotten_at_scan = 0; ///< KvStore::forgotten_bytes_ then
	// The cycle: a walk over the victims' keys (KvStore::buf_items_), a
	// few victims per call.
	bool cycle = false;
	std::size_t vi = 0;            ///< next victim to walk
	std::uint32_t need = 0;        ///< destination buffers the cycle was judged to need
	std::uint32_t taken = 0;       ///< destination buffers it took so far
	std::int64_t dest = -1;  ///< destination buffer (we hold one reference)
	std::uint32_t dest_used = 0;
	std::uint64_t relocations = 0;  ///< for CleanerOptions::fault_enomem_every
	/// A checkpoint must cover the log up to here to release the last
	/// cycle's victims (0: none asked for).
	std::uint64_t reclaim_seq = 0;
};

}  // namespace daxnet::pmem
