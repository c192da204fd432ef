// SPDX-License-Identifier: BSD-2-Clause
//
// The cleaner (docs/wal-format.md §The cleaner): copies the live keys of
// sparsely used buffers into dense buffers and logs each move as a KV_SET
// of the same bytes, so the next checkpoint names only the new location and
// the old buffers come free. A bounded amount of work per call; it takes
// from the buffers the service reserves only for a cycle that frees more
// than it takes (never the last half of them), and asks for one checkpoint
// per cycle that emptied a buffer, none for a cycle that emptied nothing.
//
// A cycle: scan the buffers for victims (the lowest live fraction, nothing
// unmovable), a bounded number per call; walk the victims over as many
// calls as it takes, moving every movable key that has a slice in one (the
// keys of a buffer are listed in buf_items_, so a cycle costs what its
// victims hold, not what the index holds); then, if it emptied a victim,
// ask for a checkpoint. Keys set since the walk passed their victim were
// received into buffers the network layer held, never into a victim
// (victims are allocated), except a victim that was still a receive
// buffer: it is simply not freed this time.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

#include "daxnet/pmem/crc32c.h"
#include "daxnet/pmem/kv.h"
#include "cleaner_state.h"

namespace daxnet::pmem {


void KvStore::clean_release_dest() noexcept
{
	if (cleaner_ && cleaner_->dest >= 0) {
		(void)wal_.allocator().unref(static_cast<std::uint32_t>(cleaner_->dest));
		cleaner_->dest = -1;
		cleaner_->dest_used = 0;
	}
}

void KvStore::after_install() noexcept
{
	if (!cleaner_)
		return;
	CleanerState& c = *cleaner_;
	const BufferAllocator& a = wal_.allocator();
	std::erase_if(c.waiting, [&](std::uint32_t b) {
		if (!a.is_free(b))
			return false;
		cleaner_stats_.freed_buffers++;
		return true;
	});
	// Once a checkpoint covers the whole cycle, what is still allocated is
	// held by someone else (a receive buffer, a reader) or got live data
	// again: it is no longer ours to count.
	if (wal_.head_seq() >= c.reclaim_seq)
		c.waiting.clear();
	// A checkpoint drops expired keys and may have changed what the
	// buffers a cycle could not empty hold: they are candidates again.
	if (c.stuck) {
		for (std::uint8_t& v : c.victim)
			if (v == CleanerState::kStuck)
				v = 0;
		c.stuck = 0;
		c.scanned = false;
	}
}

bool KvStore::cleaner_busy() const noexcept
{
	return cleaner_ && (cleaner_->cycle || cleaner_->reclaim_seq != 0);
}

bool KvStore::clean_candidate(std::uint32_t b) const noexcept
{
	const CleanerState& c = *cleaner_;
	const auto limit = static_cast<std::uint32_t>(opt_.cleaner.sparse * wal_.pool().buffer_size());
	const std::uint32_t live = live_bytes_[b];
	return live != 0 && live < limit && pinned_bytes_[b] == 0 && c.victim[b] == 0 && b != c.dest &&
	       !wal_.allocator().is_free(b);
}

// A scan that found nothing is repeated only when what it judged changed
// enough for a cycle to be worth it: a buffer's worth of key and value
// bytes left the index (one when space is low, eight otherwise: the
// fragmentation trigger wants at least 8 buffers), or 1/64 of the pool was
// taken since it began.
bool KvStore::clean_rescan_due() const noexcept
{
	const CleanerState& c = *cleaner_;
	if (!c.scanned)
		return true;
	const BufferAllocator& a = wal_.allocator();
	const std::uint32_t n = a.count();
	const std::uint64_t bsize = wal_.pool().buffer_size();
	const bool low = static_cast<double>(a.free_count()) < opt_.cleaner.low_free * n;
	if (low && a.free_count() + std::max<std::size_t>(1, n / 64) <= c.free_at_scan)
		return true;
	// A cycle it judged worth it was held back (or cut) for want of free
	// buffers: again once enough came back.
	if (c.short_of_buffers && a.free_count() >= c.free_at_scan + std::max<std::size_t>(1, n / 64))
		return true;
	const std::uint64_t forgotten = forgotten_bytes_ - c.forgotten_at_scan;
	if (!low) {
		// Space is not low: a cycle for fragmentation alone asks for a
		// checkpoint, which rewrites every live entry. Paced by what was
		// superseded since the last scan (frag_pace times the live
		// payload), that checkpoint costs at most about 1/frag_pace
		// entries per entry written.
		const auto paced =
			static_cast<std::uint64_t>(opt_.cleaner.frag_pace * static_cast<double>(live_payload_));
		return forgotten >= std::max<std::uint64_t>(8 * bsize, paced);
	}
	return forgotten >= bsize;
}

// Cost: a scan looks at every buffer of the pool once (a few hundred
// nanoseconds each, `budget` per call), so a 1 GiB pool of 4 KiB buffers
// takes 64 calls of the default 4096 to scan; it is repeated only when
// clean_rescan_due() says the state changed enough, so an idle or dense
// store pays nothing after its first scan.
std::uint64_t KvStore::clean_scan(std::uint64_t budget) noexcept
{
	CleanerState& c = *cleaner_;
	const std::uint32_t n = wal_.allocator().count();
	// Within what was reserved: victims are copied from here.
	const std::size_t k = std::min(c.cand.capacity(), c.victims.capacity());
	std::uint64_t done = 0;
	for (; c.scan_pos < n && done < budget; c.scan_pos++, done++) {
		const std::uint32_t b = c.scan_pos;
		const std::uint32_t live = live_bytes_[b];
		c.holding += live != 0;
		if (!clean_candidate(b))
			continue;
		c.ncand++;
		c.live_all += live;
		// Keep the k sparsest: the heap's front is the fullest of them.
		if (c.cand.size() < k) {
			c.cand.emplace_back(live, b);  // within the reserved capacity
			std::push_heap(c.cand.begin(), c.cand.end());
		} else if (k && live < c.cand.front().first) {
			std::pop_heap(c.cand.begin(), c.cand.end());
			c.cand.back() = {live, b};
			std::push_heap(c.cand.begin(), c.cand.end());
		}
	}
	return done;
}

std::uint32_t KvStore::clean_keep() const noexcept
{
	return opt_.cleaner.keep_free ? opt_.cleaner.keep_free : service_reserve(wal_.allocator().count());
}

int KvStore::clean_start() noexcept
{
	CleanerState& c = *cleaner_;
	const CleanerOptions& o = opt_.cleaner;
	const BufferAllocator& a = wal_.allocator();
	const std::uint32_t n = a.count();
	const std::uint32_t bsize = wal_.pool().buffer_size();
	// The scan took several calls: judge its choice as the buffers are now.
	std::erase_if(c.cand, [this](std::pair<std::uint32_t, std::uint32_t>& x) {
		if (!clean_candidate(x.second))
			return true;
		x.first = live_bytes_[x.second];
		return false;
	});
	if (c.cand.empty())
		return 0;
	// Sparsest first: a cycle cut short (no destination buffer left) has
	// emptied the victims that cost least to empty.
	std::sort(c.cand.begin(), c.cand.end());
	// The destination buffers the victims' keys fill, an estimate: items
	// are not split across buffers, so next-fit packing leaves about one
	// average item of each buffer unused (the keys of a buffer are listed
	// in buf_items_: their count is known without walking them).
	auto need_of = [bsize](std::uint64_t live, std::uint64_t items) -> std::uint64_t {
		if (live == 0)
			return 0;
		const std::uint64_t avg = std::min<std::uint64_t>(live / std::max<std::uint64_t>(items, 1), bsize / 2);
		const std::uint64_t per = bsize - avg;
		return (live + per - 1) / per;
	};
	std::uint64_t live = 0, items = 0;
	for (const auto& x : c.cand) {
		live += x.first;
		items += buf_items_[x.second].size();
	}
	// Fragmentation is judged on every candidate the scan saw (later
	// cycles take the rest).
	const std::uint64_t k_all = std::max<std::uint64_t>(c.ncand, c.cand.size());
	const std::uint64_t live_all = std::max(c.live_all, live);
	const std::uint64_t items_all = live ? items * live_all / live : items;
	const std::int64_t gain_all =
		static_cast<std::int64_t>(k_all) - static_cast<std::int64_t>(need_of(live_all, items_all));
	const bool low = static_cast<double>(a.free_count()) < o.low_free * n;
	const bool frag = gain_all >= 8 && static_cast<double>(gain_all) >= o.frag_gain * c.holding;
	if (!(low || frag))
		return 0;
	// This cycle takes the sparsest victims whose keys fit in the
	// destination buffers it may take: the room left in the one it holds,
	// and the free buffers down to half the service reserve (below which
	// it never takes one, see clean_move()). A cycle judged to need more
	// than that would stall with its victims half moved and never ask for
	// the checkpoint that gives them back.
	const std::uint32_t keep = clean_keep();
	const std::size_t fr = a.free_count();
	const std::uint64_t avail = fr > keep / 2 ? fr - keep / 2 : 0;
	const std::uint64_t room = c.dest >= 0 ? bsize - c.dest_used : 0;
	std::size_t k = 0;
	std::uint64_t need = 0;
	live = items = 0;
	for (const auto& x : c.cand) {
		const std::uint64_t l = live + x.first, i = items + buf_items_[x.second].size();
		const std::uint64_t nd = need_of(l > room ? l - room : 0, i);
		if (nd > avail)
			break;
		live = l;
		items = i;
		need = nd;
		k++;
	}
	if (static_cast<std::int64_t>(k) - static_cast<std::int64_t>(need) < 1) {
		c.short_of_buffers = k < c.cand.size();
		return 0;
	}
	c.short_of_buffers = false;
	c.victims.clear();
	for (std::size_t i = 0; i < k; i++) {
		c.victims.push_back(c.cand[i].second);  // capacity max_victims >= k
		c.victim[c.cand[i].second] = CleanerState::kVictim;
	}
	cleaner_stats_.victims += k;
	c.cycle = true;
	c.vi = 0;
	c.need = static_cast<std::uint32_t>(need);
	c.taken = 0;
	return 1;
}

int KvStore::clean_move(std::string_view key) noexcept
{
	CleanerState& c = *cleaner_;
	auto it = index_.find(key);
	if (it == index_.end())
		return 0;
	const Item& item = it->second;
	if (item.expiry && item.expiry <= opt_.clock())
		return 0;
	if (!movable(item.size))
		return 0;
	const auto slices = item.ref().slices;
	constexpr std::uint8_t kV = CleanerState::kVictim;
	bool touches = item.key.len && c.victim[item.key.buf] == kV;
	for (const Slice& s : slices)
		touches |= c.victim[s.buf] == kV;
	if (!touches)
		return 0;
	const std::uint32_t bsize = wal_.pool().buffer_size();
	const std::uint64_t bytes = item.key.len + item.size;
	if (bytes > bsize)
		return 0;
	// Never force a checkpoint: room outside the freeing entries' reserve
	// and an eighth of the ring (§Capacity rule 2).
	if (wal_.used() + 1 + log_reserve_ + wal_.nslots() / 8 > wal_.nslots())
		return -EAGAIN;
	BufferAllocator& a = wal_.allocator();
	if (c.dest < 0 || bsize - c.dest_used < bytes) {
		// What the service keeps for receiving is not ours to take --
		// except by a cycle known to free more than it takes (its gain
		// was >= 1 when it started): it may take the destination buffers
		// it was judged to need, down to half the reserve. Without that
		// a fragmented pool full to the reserve, which refuses writes,
		// would never be cleaned.
		const std::uint32_t keep = clean_keep();
		const bool from_reserve = a.free_count() <= keep;
		if (from_reserve && (c.taken >= c.need || a.free_count() <= keep / 2))
			return -ENOBUFS;
		clean_release_dest();
		const std::int64_t b = a.alloc();
		if (b < 0)
			return -ENOBUFS;
		c.dest = b;
		c.dest_used = 0;
		c.taken++;
		cleaner_stats_.reserve_buffers += from_reserve;
	}
	const PoolView& p = wal_.pool();
	std::byte* dst = p.buffer(static_cast<std::uint32_t>(c.dest)) + c.dest_used;
	// Copy, then check the copy -- the bytes the relocation will name --
	// against the CRC each source record holds: a damaged source, or one
	// that changed under the copy, is left where it is (recovery reports
	// it), never given a fresh CRC here. The bytes written so far are
	// not named by anything and are overwritten by the next move.
	if (item.key.len) {
		std::memcpy(dst, p.buffer(item.key.buf) + item.key.off, item.key.len);
		if (crc32c(dst, item.key.len) != item.key_crc) {
			cleaner_stats_.skipped_corrupt++;
			return 0;
		}
	}
	std::byte* vdst = dst + item.key.len;
	std::uint64_t at = 0;
	const std::uint32_t* crcs = item.nslices == 1 ? &item.first_crc : item.many_crc.data();
	for (std::size_t i = 0; i < slices.size(); i++) {
		std::memcpy(vdst + at, p.buffer(slices[i].buf) + slices[i].off, slices[i].len);
		if (crc32c(vdst + at, slices[i].len) != crcs[i]) {
			cleaner_stats_.skipped_corrupt++;
			return 0;
		}
		at += slices[i].len;
	}
	const auto d = static_cast<std::uint32_t>(c.dest);
	const Slice nkey{d, c.dest_used, item.key.len};
	const Slice nval{d, c.dest_used + item.key.len, static_cast<std::uint32_t>(item.size)};
	const std::uint32_t vcrc = slices.size() == 1 ? crcs[0] : crc32c(vdst, item.size);
	Entry e;
	e.type = item.typed ? RecordType::kv_set_typed : RecordType::kv_set;
	e.aux = item.expiry;
	e.key = nkey;
	e.value = item.size ? std::span<const Slice>(&nval, 1) : std::span<const Slice>();
	e.crc_known = true;
	e.key_crc = item.key_crc;
	e.value_crc = std::span<const std::uint32_t>(&vcrc, item.size ? 1 : 0);
	// The bytes are taken before the entry is staged: an append that
	// fails after the WAL took the entry (-ENOMEM while indexing it)
	// leaves a staged record naming them, which the next move must not
	// overwrite. A failure before staging only wastes them.
	c.dest_used += static_cast<std::uint32_t>(bytes);
	// `item` and `key` die with the re-keying in apply(): nothing of
	// them is used after this point.
	if (opt_.cleaner.fault_enomem_every && ++c.relocations % opt_.cleaner.fault_enomem_every == 0)
		fault_apply_ = true;  // test hook: staged, then indexing it "runs out of memory"
	const int rc = append_logged(e, false);
	fault_apply_ = false;
	if (rc < 0)
		return rc == -ENOSPC ? -EAGAIN : rc;
	cleaner_stats_.moved_bytes += bytes;
	cleaner_stats_.moved_entries++;
	return 1;
}

int KvStore::clean() noexcept
{
	const CleanerOptions& o = opt_.cleaner;
	if (!o.enabled || opt_.wal.read_only || batch_depth_ || failed_)
		return 0;
	if (!cleaner_) {
		// Everything the noexcept paths below add to is reserved here.
		try {
			const std::uint32_t n = wal_.allocator().count();
			const std::size_t k = std::clamp<std::size_t>(o.max_victims, 1, n ? n : 1);
			auto c = std::make_unique<CleanerState>();
			c->victim.assign(n, 0);
			c->victims.reserve(k);
			c->waiting.reserve(k);
			c->cand.reserve(k);
			c->todo.reserve(64);
			cleaner_ = std::move(c);
		} catch (const std::bad_alloc&) {
			return -ENOMEM;
		}
	}
	CleanerState& c = *cleaner_;
	// The last cycle's victims come free at a checkpoint that covers it:
	// ask for one, once per cycle that emptied a buffer. It is always
	// incremental, a bounded step per pass (commit()), also when the
	// store otherwise checkpoints whole (checkpoint_step 0).
	if (c.reclaim_seq && !checkpoint_pending()) {
		if (wal_.head_seq() >= c.reclaim_seq)
			c.reclaim_seq = 0;
		else if (live_records() < ckpt_failed_at_)
			(void)ckpt_begin();
	}
	std::uint64_t work = 0;
	if (!c.cycle) {
		if (index_.empty())
			return 0;  // nothing it could move (stream data never moves)
		if (c.reclaim_seq)
			return 0;  // the last cycle's buffers are not back yet
		const BufferAllocator& a = wal_.allocator();
		if (!c.scanning) {
			if (!clean_rescan_due())
				return 0;
			c.scanning = true;
			c.scan_pos = 0;
			c.holding = 0;
			c.ncand = 0;
			c.live_all = 0;
			c.cand.clear();
			c.free_at_scan = a.free_count();
			c.forgotten_at_scan = forgotten_bytes_;
		}
		work += clean_scan(o.max_visits);
		cleaner_stats_.work += work;
		if (c.scan_pos < a.count())
			return 0;  // the scan goes on next call
		c.scanning = false;
		c.scanned = true;
		cleaner_stats_.scans++;
		if (clean_start() <= 0)
			return 0;
	}
	int moved = 0;
	const std::uint64_t bytes0 = cleaner_stats_.moved_bytes;
	const std::uint64_t work0 = work;
	auto done = [&](int rc) {
		cleaner_stats_.work += work - work0;
		return rc;
	};
	bool cut = false;
	for (; c.vi < c.victims.size() && !cut; c.vi++) {
		if (work >= o.max_visits || static_cast<std::uint32_t>(moved) >= o.max_entries ||
		    cleaner_stats_.moved_bytes - bytes0 >= o.max_bytes)
			return done(moved);
		// The movable keys with a slice in this victim. Moving one
		// unlinks it from here (and links it to the destination), so
		// the list is copied first.
		c.todo.clear();
		try {
			for (const Item* it : buf_items_[c.victims[c.vi]])
				c.todo.push_back(view(it->key));
		} catch (const std::bad_alloc&) {
			return done(moved ? moved : -ENOMEM);
		}
		work += 1 + c.todo.size();
		// A victim is finished even past the budget.
		for (std::size_t i = 0; i < c.todo.size(); i++) {
			const int rc = clean_move(c.todo[i]);
			if (rc == -EAGAIN) {
				cleaner_stats_.stalls++;
				return done(moved);  // this victim again next time (log room comes back)
			}
			if (rc == -ENOBUFS) {
				// No destination buffer it may take: the estimate was
				// short or the network layer took the free buffers.
				// Waiting would hold the victims half moved for good
				// (nothing else frees them): the cycle ends here, the
				// victims it emptied are released by its checkpoint and
				// the others are candidates again.
				cleaner_stats_.stalls++;
				cleaner_stats_.cut_cycles++;
				c.short_of_buffers = true;
				c.free_at_scan = wal_.allocator().free_count();  // rescan once buffers come back
				cut = true;
				break;
			}
			if (rc < 0) {
				// -ENOMEM: the victim again next time (a key already
				// moved is no longer listed there).
				return done(moved ? moved : rc);
			}
			moved += rc;
		}
	}
	// The walk is done (every movable key of the victims was moved) or
	// was cut short after victim vi - 1 (the loop's increment passed it).
	std::uint32_t emptied = 0;
	for (std::size_t i = 0; i < c.victims.size(); i++) {
		const std::uint32_t b = c.victims[i];
		if (live_bytes_[b] == 0) {
			c.victim[b] = 0;
			emptied++;
			if (c.waiting.size() < c.waiting.capacity())
				c.waiting.push_back(b);  // never grows: reserved for max_victims
		} else if (cut && i + 1 >= c.vi) {
			c.victim[b] = 0;  // not (wholly) walked: a candidate again
		} else {
			// Something here cannot move (an expired key, a damaged
			// payload) or arrived since: not a victim again before the
			// next checkpoint.
			c.victim[b] = CleanerState::kStuck;
			c.stuck++;
		}
	}
	c.victims.clear();
	c.cycle = false;
	cleaner_stats_.cycles++;
	if (emptied == 0) {
		// A futile cycle: nothing to reclaim, so no checkpoint.
		cleaner_stats_.futile_cycles++;
		return done(moved);
	}
	c.reclaim_seq = wal_.next_seq();
	return done(moved);
}

}  // namespace daxnet::pmem
