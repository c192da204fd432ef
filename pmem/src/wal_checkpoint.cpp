// SPDX-License-Identifier: BSD-2-Clause
//
// WAL checkpoints (docs/wal-format.md §Checkpoints): CheckpointWriter and
// beginning, installing and aborting a checkpoint.
#include "wal_format.h"

namespace daxnet::pmem {

using namespace walfmt;

// ---- checkpoints (§Checkpoints) ---------------------------------------------

int CheckpointWriter::add(const Entry& e) noexcept
{
	if (e.type != RecordType::kv_set && e.type != RecordType::kv_set_typed && e.type != RecordType::stream_append &&
	    e.type != RecordType::stream_trim)
		return -EINVAL;
	if (e.type == RecordType::stream_trim && e.aux >= kWalSeqLimit)
		return -EINVAL;
	state_flags_ |= state_flag_for(e.type);
	if (e.value.size() > UINT16_MAX)
		return -EMSGSIZE;
	const std::uint32_t n = wal_records_for(e.value.size());
	if (nrecords_ + n > capacity_)
		return -ENOSPC;
	auto* base = reinterpret_cast<WalRecord*>(half_ + kCkptHeaderPage);
	const std::uint64_t first = nrecords_;
	encode_entry(pool_, e, first + 1, 0, seed_, [base, first](std::uint32_t i) { return &base[first + i]; });
	const std::size_t nrefs = refs_->size();
	try {
		for (std::uint32_t i = 0; i < n; i++)
			for_slices(base[first + i], [this](std::uint32_t buf) { refs_->push_back(buf); });
	} catch (const std::bad_alloc&) {
		refs_->resize(nrefs);  // not counted: the next add overwrites these records
		return -ENOMEM;
	}
	nrecords_ += n;
	nentries_++;
	return 0;
}

void CheckpointWriter::flush_written() noexcept
{
	auto* base = reinterpret_cast<std::byte*>(half_ + kCkptHeaderPage);
	pool_.domain().flush(base + flushed_ * kWalRecordSize, (nrecords_ - flushed_) * kWalRecordSize);
	flushed_ = nrecords_;
}

int Wal::begin_checkpoint() noexcept
{
	if (opt_.read_only)
		return -EROFS;
	if (pending_)
		return -EBUSY;
	try {
		auto p = std::make_unique<Pending>();
		p->half = state_.ckpt_gen ? 1 - state_.ckpt_half : 0;
		p->gen = state_.ckpt_gen + 1;
		p->covers = next_seq_;
		p->w.pool_ = pool_;
		p->w.half_ = ckpt_half_base(pool_, p->half);
		p->w.capacity_ = ckpt_half_capacity(pool_);
		p->w.seed_ = wal_ckpt_seed(seed_, p->gen);
		p->w.refs_ = &p->refs;
		pending_ = std::move(p);
		return 0;
	} catch (const std::bad_alloc&) {
		return -ENOMEM;
	}
}

CheckpointWriter* Wal::pending_checkpoint() noexcept
{
	return pending_ ? &pending_->w : nullptr;
}

std::uint64_t Wal::pending_covers() const noexcept
{
	return pending_ ? pending_->covers : 0;
}

void Wal::abort_checkpoint() noexcept
{
	pending_.reset();  // the inactive half is garbage now; nothing references it
}

int Wal::install_checkpoint() noexcept
{
	if (!pending_)
		return -EINVAL;
	Pending& p = *pending_;
	CheckpointWriter& wr = p.w;
	// Step 1: records and header, one fence (also covers staged entries).
	CkptHeader h{};
	std::memcpy(h.magic, kCkptMagic, 8);
	h.ckpt_gen = p.gen;
	h.covers_seq = p.covers;
	h.nrecords = wr.nrecords_;
	h.nentries = wr.nentries_;
	h.crc = crc60(h, seed_);
	auto* hdr = reinterpret_cast<CkptHeader*>(wr.half_);
	std::memcpy(static_cast<void*>(hdr), &h, sizeof(h));
	PersistDomain& d = pool_.domain();
	wr.flush_written();  // the records not flushed by the steps
	d.flush(*hdr);
	d.drain();

	// Step 2: install it.
	LogState next = state_;
	next.generation++;
	next.head_seq = p.covers;
	next.ckpt_gen = p.gen;
	next.ckpt_half = p.half;
	next.flags |= wr.state_flags_;  // §Log state, flags
	write_state(next);

	// Step 3: swap references (§Buffer lifetime); new ones first so a
	// shared buffer never passes through the free list. Records from
	// covers_seq on stay in the live window and keep theirs.
	for (auto b : p.refs)
		alloc_->ref(b);
	for (auto b : ckpt_refs_)
		alloc_->unref(b);  // the old checkpoint's, kept in DRAM
	ckpt_refs_.swap(p.refs);
	for (std::uint64_t s = head_seq_; s < p.covers; s++)
		for_slices(*slot(s), [this](std::uint32_t b) { alloc_->unref(b); });
	head_seq_ = p.covers;
	if (p.covers == next_seq_) {
		staged_entries_ = 0;  // made durable by fence 1
		last_staged_ = nullptr;
	}
	ckpt_nrecords_ = wr.nrecords_;
	stats_.checkpoints++;
	stats_.ckpt_records = wr.nrecords_;
	pending_.reset();
	return 0;
}

int Wal::checkpoint(const std::function<int(CheckpointWriter&)>& emit) noexcept
{
	abort_checkpoint();
	if (const int rc = begin_checkpoint(); rc < 0)
		return rc;
	int rc = 0;
	try {
		rc = emit(pending_->w);
	} catch (const std::bad_alloc&) {
		rc = -ENOMEM;
	}
	if (rc < 0) {
		abort_checkpoint();
		return rc;
	}
	return install_checkpoint();
}

}  // namespace daxnet::pmem
