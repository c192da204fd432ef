// SPDX-License-Identifier: BSD-2-Clause
//
// WAL writer (docs/wal-format.md §Appending and group commit): the A/B log
// state, append, commit.
#include "wal_format.h"

namespace daxnet::pmem {

using namespace walfmt;

int Wal::write_state(const LogState& next) noexcept
{
	LogState s = next;
	std::memcpy(s.magic, kStateMagic, 8);
	s.nslots = static_cast<std::uint32_t>(nslots_);
	s.crc = crc60(s, seed_);
	const std::uint32_t target = 1 - state_slot_;
	auto* dst = reinterpret_cast<LogState*>(pool_.wal_area().data() + (target ? kWalStateSlotB : 0));
	std::memcpy(static_cast<void*>(dst), &s, sizeof(s));
	pool_.domain().persist(*dst);
	state_ = s;
	state_slot_ = target;
	return 0;
}

// ---- appending (§Appending and group commit) --------------------------------

int Wal::append(const Entry& e, std::uint64_t* seq) noexcept
{
	if (opt_.read_only)
		return -EROFS;
	const auto t = static_cast<std::uint8_t>(e.type);
	if (!known_head_type(t))
		return -EINVAL;
	const bool has_value =
		e.type == RecordType::kv_set || e.type == RecordType::kv_set_typed || e.type == RecordType::stream_append;
	const bool trim = e.type == RecordType::stream_trim;
	if ((!has_value && !e.value.empty()) || (e.type == RecordType::kv_flushall && e.key.len) ||
	    (!has_value && !trim && e.aux) || (trim && e.aux >= kWalSeqLimit))
		return -EINVAL;
	if (e.value.size() > UINT16_MAX)
		return -EMSGSIZE;
	const std::uint32_t n = wal_records_for(e.value.size());
	if (n > nslots_ / 4)
		return -EMSGSIZE;
	if (used() + n > nslots_)
		return -ENOSPC;
	if (next_seq_ + n > kWalSeqLimit)
		return -EOVERFLOW;  // §WAL area layout: seqs stay below 2^63
	auto held = [this](const Slice& s) {
		return slice_in_bounds(pool_, s.buf, s.off, s.len) && alloc_->refcount(s.buf) > 0;
	};
	if (e.key.len && !held(e.key))
		return -EINVAL;
	for (const auto& s : e.value)
		if (s.len == 0 || !held(s))
			return -EINVAL;

	if (const std::uint32_t need = state_flag_for(e.type); need && !(state_.flags & need)) {
		// §Log state, flags: readers that do not know STREAM_TRIM (or
		// KV_SET_TYPED) must refuse this log before the first such entry
		// can be durable.
		LogState next = state_;
		next.generation++;
		next.flags |= need;
		write_state(next);
	}

	const bool inject = opt_.fault != WalOptions::Fault::none && (fault_counter_++ % 7) == 3;
	PersistDomain& d = pool_.domain();
	// §Appending, pipelined commit: no record is staged while the previous
	// batch's drain is in flight (a durable record after its BATCH_END
	// would make a torn batch read as corruption).
	d.drain_wait_all();
	// The payload is already in the buffers (received or written by the
	// server): flush it in place, never copy it.
	if (!(inject && opt_.fault == WalOptions::Fault::skip_payload_flush)) {
		if (e.key.len)
			d.flush(pool_.buffer(e.key.buf) + e.key.off, e.key.len);
		for (const auto& s : e.value)
			d.flush(pool_.buffer(s.buf) + s.off, s.len);
	}
	const std::uint64_t seq0 = next_seq_;
	encode_entry(pool_, e, seq0, state_.epoch, seed_, [this, seq0](std::uint32_t i) { return slot(seq0 + i); });
	for (std::uint32_t i = 0; i < n; i++) {
		WalRecord* r = slot(seq0 + i);
		if (!(inject && opt_.fault == WalOptions::Fault::skip_record_flush))
			d.flush(*r);
		for_slices(*r, [this](std::uint32_t buf) { alloc_->ref(buf); });
	}
	last_staged_ = slot(seq0 + n - 1);
	last_seq0_ = seq0;
	last_n_ = n;
	next_seq_ += n;
	if (staged_entries_ == 0)
		staged_from_ = seq0;
	staged_entries_++;
	stats_.entries++;
	stats_.records += n;
	if (seq)
		*seq = seq0;
	return 0;
}

void Wal::last_crcs(std::uint32_t& key_crc, std::vector<std::uint32_t>& out) const
{
	out.clear();
	key_crc = 0;
	for (std::uint32_t i = 0; i < last_n_; i++) {
		const WalRecord& r = *slot(last_seq0_ + i);
		if (i == 0)
			key_crc = r.s[0].crc;
		for (int j = (i == 0 ? 1 : 0); j < 2; j++)
			if (r.s[j].len)
				out.push_back(r.s[j].crc);
	}
}

int Wal::unstage_last() noexcept
{
	if (last_n_ == 0 || staged_entries_ == 0 || last_seq0_ + last_n_ != next_seq_)
		return -EINVAL;
	// The records may already be durable in their slots (flushed at
	// append). A valid record right after the next BATCH_END would read
	// as "a later batch was started" (§Recovery step 4) and make a torn
	// payload before it look like corruption: overwrite them with an
	// invalid record (zeros) and make that durable now, before anything
	// else is committed. Rare (an allocation failed): one drain.
	PersistDomain& d = pool_.domain();
	for (std::uint32_t i = 0; i < last_n_; i++) {
		WalRecord* r = slot(last_seq0_ + i);
		for_slices(*r, [this](std::uint32_t buf) { alloc_->unref(buf); });
		std::memset(static_cast<void*>(r), 0, sizeof(*r));
		d.flush(*r);
	}
	d.drain();
	next_seq_ = last_seq0_;
	staged_entries_--;
	stats_.entries--;
	stats_.records -= last_n_;
	// The previous staged entry (if any) ends right before: it is the one
	// commit() marks with BATCH_END.
	last_staged_ = staged_entries_ ? slot(next_seq_ - 1) : nullptr;
	last_n_ = 0;
	return 0;
}

std::uint64_t Wal::unstage_entries(std::uint64_t seq) const noexcept
{
	if (seq == next_seq_)
		return 0;
	if (seq > next_seq_ || staged_entries_ == 0 || seq < staged_from_)
		return UINT64_MAX;
	std::uint64_t entries = 0;
	for (std::uint64_t q = seq; q < next_seq_; q++)
		entries += slot(q)->type != static_cast<std::uint8_t>(RecordType::cont);
	if (entries == 0 || entries > staged_entries_ ||
	    slot(seq)->type == static_cast<std::uint8_t>(RecordType::cont))
		return UINT64_MAX;  // not an entry's head record
	return entries;
}

int Wal::unstage_to(std::uint64_t seq) noexcept
{
	const std::uint64_t entries = unstage_entries(seq);
	if (entries == 0)
		return 0;
	if (entries == UINT64_MAX)
		return -EINVAL;
	// As unstage_last(): no valid record may stay after the next BATCH_END.
	PersistDomain& d = pool_.domain();
	for (std::uint64_t q = next_seq_; q-- > seq;) {
		WalRecord* r = slot(q);
		for_slices(*r, [this](std::uint32_t buf) { alloc_->unref(buf); });
		std::memset(static_cast<void*>(r), 0, sizeof(*r));
		d.flush(*r);
	}
	d.drain();
	stats_.entries -= entries;
	stats_.records -= next_seq_ - seq;
	next_seq_ = seq;
	staged_entries_ -= entries;
	last_staged_ = staged_entries_ ? slot(next_seq_ - 1) : nullptr;
	last_n_ = 0;
	return 0;
}

int Wal::commit() noexcept { return commit_impl(nullptr); }

int Wal::commit_begin(std::uint64_t& ticket) noexcept { return commit_impl(&ticket); }

int Wal::commit_impl(std::uint64_t* ticket) noexcept
{
	if (staged_entries_ == 0) {
		if (ticket)
			*ticket = pool_.domain().submitted_ticket();  // nothing new to wait for
		return 0;
	}
	// §Recovery step 4 relies on BATCH_END marking where a batch ended.
	WalRecord* r = last_staged_;
	r->flags |= kRecBatchEnd;
	r->crc = crc60(*r, seed_);
	PersistDomain& d = pool_.domain();
	d.flush(*r);
	if (ticket)
		*ticket = d.drain_begin();  // the one fence of the batch, in flight
	else
		d.drain();  // the one fence of the batch
	const auto n = static_cast<int>(staged_entries_);
	staged_entries_ = 0;
	last_staged_ = nullptr;
	stats_.commits++;
	return n;
}

}  // namespace daxnet::pmem
