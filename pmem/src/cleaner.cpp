// SPDX-License-Identifier: BSD-2-Clause
//
// The cleaner (docs/wal-format.md §The cleaner): copies the live keys of
// sparsely used buffers into dense buffers and logs each move as a KV_SET
// of the same bytes, so the next checkpoint names only the new location and
// the old buffers come free. A bounded amount per call; it never forces a
// checkpoint or takes the last free buffers.
//
// A cycle: pick victims (the buffers with the lowest live fraction that hold
// nothing unmovable), walk the index bucket by bucket over as many calls as
// it takes, moving every movable key that touches a victim; then ask for a
// checkpoint. Keys set since the walk passed their bucket were received
// into buffers the network layer held, never into a victim (victims are
// allocated), except a victim that was still a receive buffer: it is simply
// not freed this time.
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
	if (!cleaner_ || cleaner_->waiting.empty())
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
}

int KvStore::clean_start() noexcept
{
	CleanerState& c = *cleaner_;
	const CleanerOptions& o = opt_.cleaner;
	const BufferAllocator& a = wal_.allocator();
	const std::uint32_t n = a.count();
	const std::uint32_t bsize = wal_.pool().buffer_size();
	const auto limit = static_cast<std::uint32_t>(o.sparse * bsize);
	c.cand.clear();
	std::uint32_t holding = 0;  // buffers with live data (the rest wait for a checkpoint)
	for (std::uint32_t b = 0; b < n; b++) {
		const std::uint32_t live = live_bytes_[b];
		holding += live != 0;
		if (live == 0 || live >= limit || pinned_bytes_[b] != 0 || a.is_free(b) || b == c.dest)
			continue;
		c.cand.emplace_back(live, b);
	}
	if (c.cand.empty())
		return 0;
	const std::size_t k = std::min<std::size_t>(c.cand.size(), o.max_victims);
	std::partial_sort(c.cand.begin(), c.cand.begin() + static_cast<std::ptrdiff_t>(k), c.cand.end());
	// The victims' live bytes fit in `need` buffers; items are not split
	// across destination buffers, so allow one buffer in eight of waste.
	auto gain_of = [bsize](std::uint64_t live, std::size_t bufs) {
		const std::uint64_t need = (live + live / 8 + bsize - 1) / bsize + 1;
		return static_cast<std::int64_t>(bufs) - static_cast<std::int64_t>(need);
	};
	std::uint64_t live = 0, live_all = 0;
	for (std::size_t i = 0; i < c.cand.size(); i++)
		(i < k ? live : live_all) += c.cand[i].first;
	live_all += live;
	// This cycle wins `gain`; fragmentation is judged on every candidate
	// (later cycles take the rest).
	const std::int64_t gain = gain_of(live, k);
	const std::int64_t gain_all = gain_of(live_all, c.cand.size());
	const bool low = static_cast<double>(a.free_count()) < o.low_free * n;
	const bool frag = gain_all >= 8 && static_cast<double>(gain_all) >= o.frag_gain * holding;
	if (gain < 1 || !(low || frag))
		return 0;
	c.victims.clear();
	for (std::size_t i = 0; i < k; i++) {
		c.victims.push_back(c.cand[i].second);
		c.victim[c.cand[i].second] = 1;
	}
	cleaner_stats_.victims += k;
	c.cycle = true;
	c.buckets = index_.bucket_count();
	c.bucket = 0;
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
	bool touches = item.key.len && c.victim[item.key.buf];
	for (const Slice& s : slices)
		touches |= c.victim[s.buf] != 0;
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
		const std::uint32_t keep = opt_.cleaner.keep_free ? opt_.cleaner.keep_free
								  : std::max<std::uint32_t>(4, a.count() / 64);
		if (a.free_count() <= keep)
			return -EAGAIN;
		clean_release_dest();
		const std::int64_t b = a.alloc();
		if (b < 0)
			return -EAGAIN;
		c.dest = b;
		c.dest_used = 0;
	}
	const PoolView& p = wal_.pool();
	std::byte* dst = p.buffer(static_cast<std::uint32_t>(c.dest)) + c.dest_used;
	// Copy, checking each source slice against the CRC its record holds: a
	// damaged payload is left where it is (recovery reports it), never
	// given a fresh CRC here.
	if (item.key.len) {
		const std::byte* src = p.buffer(item.key.buf) + item.key.off;
		if (crc32c(src, item.key.len) != item.key_crc) {
			cleaner_stats_.skipped_corrupt++;
			return 0;
		}
		std::memcpy(dst, src, item.key.len);
	}
	std::byte* vdst = dst + item.key.len;
	std::uint64_t at = 0;
	const std::uint32_t* crcs = item.nslices == 1 ? &item.first_crc : item.many_crc.data();
	for (std::size_t i = 0; i < slices.size(); i++) {
		const std::byte* src = p.buffer(slices[i].buf) + slices[i].off;
		if (crc32c(src, slices[i].len) != crcs[i]) {
			cleaner_stats_.skipped_corrupt++;
			return 0;
		}
		std::memcpy(vdst + at, src, slices[i].len);
		at += slices[i].len;
	}
	const auto d = static_cast<std::uint32_t>(c.dest);
	const Slice nkey{d, c.dest_used, item.key.len};
	const Slice nval{d, c.dest_used + item.key.len, static_cast<std::uint32_t>(item.size)};
	const std::uint32_t vcrc = slices.size() == 1 ? crcs[0] : crc32c(vdst, item.size);
	Entry e;
	e.type = RecordType::kv_set;
	e.aux = item.expiry;
	e.key = nkey;
	e.value = item.size ? std::span<const Slice>(&nval, 1) : std::span<const Slice>();
	e.crc_known = true;
	e.key_crc = item.key_crc;
	e.value_crc = std::span<const std::uint32_t>(&vcrc, item.size ? 1 : 0);
	// `item` and `key` die with the re-keying in apply(): nothing of
	// them is used after this call.
	if (const int rc = append_logged(e, false); rc < 0)
		return rc == -ENOSPC ? -EAGAIN : rc;
	c.dest_used += static_cast<std::uint32_t>(bytes);
	cleaner_stats_.moved_bytes += bytes;
	cleaner_stats_.moved_entries++;
	return 1;
}

int KvStore::clean() noexcept
{
	const CleanerOptions& o = opt_.cleaner;
	if (!o.enabled || opt_.wal.read_only)
		return 0;
	if (!cleaner_) {
		try {
			cleaner_ = std::make_unique<CleanerState>();
			cleaner_->victim.assign(wal_.allocator().count(), 0);
		} catch (const std::bad_alloc&) {
			cleaner_.reset();
			return -ENOMEM;
		}
	}
	CleanerState& c = *cleaner_;
	// The last cycle's victims come free at a checkpoint that covers it:
	// ask for one (incremental; never a whole one from here).
	if (c.reclaim_seq && !checkpoint_pending()) {
		if (wal_.head_seq() >= c.reclaim_seq)
			c.reclaim_seq = 0;
		else if (opt_.checkpoint_step)
			(void)reclaim();
	}
	if (!c.cycle) {
		if (index_.empty())
			return 0;  // nothing it could move (stream data never moves)
		if (c.reclaim_seq)
			return 0;  // the last cycle's buffers are not back yet
		// After a scan that found nothing worth a cycle, wait: `backoff`
		// calls, 16 when space is low, none once 1/64 of the pool was
		// taken since.
		const BufferAllocator& a = wal_.allocator();
		const bool low = static_cast<double>(a.free_count()) < o.low_free * a.count();
		if (c.backoff && a.free_count() + a.count() / 64 >= c.free_at_scan) {
			c.backoff--;
			if (!low || c.backoff % 16 != 0)
				return 0;
		}
		c.free_at_scan = a.free_count();
		if (clean_start() <= 0) {
			c.backoff = o.backoff;
			return 0;
		}
		c.backoff = 0;
	}
	if (index_.bucket_count() != c.buckets) {
		c.buckets = index_.bucket_count();  // rehashed: walk again
		c.bucket = 0;
	}
	int moved = 0;
	std::uint64_t visits = 0;
	const std::uint64_t bytes0 = cleaner_stats_.moved_bytes;
	for (; c.bucket < c.buckets; c.bucket++) {
		if (visits >= o.max_visits || static_cast<std::uint32_t>(moved) >= o.max_entries ||
		    cleaner_stats_.moved_bytes - bytes0 >= o.max_bytes)
			return moved;
		c.todo.clear();
		try {
			for (auto it = index_.begin(c.bucket); it != index_.end(c.bucket); ++it)
				c.todo.push_back(it->first);
		} catch (const std::bad_alloc&) {
			return moved ? moved : -ENOMEM;
		}
		visits += c.todo.size();
		// Moving re-keys onto the new key slice (same bucket, no
		// rehash); a bucket is finished even past the budget.
		for (std::size_t i = 0; i < c.todo.size(); i++) {
			const int rc = clean_move(c.todo[i]);
			if (rc == -EAGAIN) {
				cleaner_stats_.stalls++;
				return moved;  // this bucket again next time
			}
			if (rc < 0)
				return moved ? moved : rc;
			moved += rc;
		}
	}
	// The walk is done: every movable key of the victims was moved.
	for (std::uint32_t b : c.victims) {
		c.victim[b] = 0;
		if (live_bytes_[b] == 0)
			c.waiting.push_back(b);
	}
	c.victims.clear();
	c.cycle = false;
	cleaner_stats_.cycles++;
	c.reclaim_seq = wal_.next_seq();
	return moved;
}

}  // namespace daxnet::pmem
