// SPDX-License-Identifier: BSD-2-Clause
//
// WAL recovery (docs/wal-format.md §Recovery): Wal::open.
#include "wal_format.h"

namespace daxnet::pmem {

using namespace walfmt;

// ---- recovery (§Recovery) ---------------------------------------------------

WalRecord* Wal::slot(std::uint64_t seq) const noexcept
{
	return reinterpret_cast<WalRecord*>(pool_.wal_area().data() + kWalStatePage + (seq % nslots_) * kWalRecordSize);
}

std::uint64_t Wal::ckpt_capacity() const noexcept
{
	return ckpt_half_capacity(pool_);
}

/// One recovery (§Recovery): the state its steps share and the steps, in the
/// order Wal::open runs them (numbered as §Recovery numbers them). An error
/// from a step ends the open.
class WalRecovery {
public:
	WalRecovery(Wal& w, const PoolView& pool, BufferAllocator& alloc, const WalOptions& opt, const ReplayFn& replay,
		    RecoveryReport& rep) noexcept
	    : w_(w), pool_(pool), alloc_(alloc), opt_(opt), replay_(replay), rep_(rep)
	{
	}

	/// Step 1: §Log state: the newer valid slot, or a fresh log.
	Status read_log_state();
	/// Step 2: the allocator rebuilt from nothing, then the checkpoint
	/// the log state names replayed.
	Status replay_checkpoint();
	/// Step 3: the log scanned from head_seq, whole batches replayed.
	Status scan_log();
	/// Steps 4 and 5: the stop classified (clean, torn tail, corruption)
	/// from the records beyond it; corruption refused or, allow_truncate,
	/// the buffers beyond quarantined.
	Status classify_stop();
	/// Step 6, first: records of an epoch newer than the log state's (a
	/// lost slot) reported; far newer ones refused.
	Status check_ring_epoch();
	/// Step 6: a new epoch above every epoch in the ring (§Epochs), written
	/// before anything is appended.
	Status start_epoch();

private:
	Error fail(std::string msg);
	void quarantine(const WalRecord& r);
	void apply_pending();

	Wal& w_;
	const PoolView& pool_;
	BufferAllocator& alloc_;
	const WalOptions& opt_;
	const ReplayFn& replay_;
	RecoveryReport& rep_;

	// shared by the steps
	std::vector<const WalRecord*> recs_;
	std::vector<Slice> vals_;
	std::vector<std::uint32_t> crcs_;
	std::string why_;
	std::uint32_t saw_flags_ = 0;  // §Log state, flags: keep TRIM / TYPED set while such entries exist

	// the log scan (step 3), read by steps 4 to 6
	DecodeCtx c_{};
	std::uint64_t expected_ = 0;  ///< the first seq not recovered
	Decode last_ = Decode::ok;
	// §Recovery, batches: entries are applied a whole batch at a time (up
	// to a record with BATCH_END, or an epoch change, which ends the batch
	// of a run that crashed before recoveries of this version truncated
	// it); the entries of an unterminated last batch are not recovered.
	struct Pend {
		std::uint64_t seq;
		std::uint32_t n;
	};
	std::vector<Pend> pend_;
	std::uint32_t pend_epoch_ = 0;
	std::vector<const WalRecord*> precs_;
	std::uint32_t ring_epoch_ = 0;  ///< step 4: the highest epoch of any valid record in the ring
};

Error WalRecovery::fail(std::string msg)
{
	rep_.problems.push_back(msg);
	return make_error(EIO, std::move(msg));
}

void WalRecovery::quarantine(const WalRecord& r)
{
	for (const auto& s : r.s)
		if (s.len && pool_.valid_buffer(s.buf)) {
			alloc_.ref(s.buf);
			rep_.quarantined.push_back(s.buf);
		}
}

Status WalRecovery::read_log_state()
{
	const LogState* a = wal_state_slot(pool_, 0);
	const LogState* b = wal_state_slot(pool_, 1);
	const bool va = log_state_valid(*a, w_.seed_, w_.nslots_);
	const bool vb = log_state_valid(*b, w_.seed_, w_.nslots_);
	if (!va && !vb) {
		if (!all_zero(a, sizeof(*a)) || !all_zero(b, sizeof(*b)))
			return fail("WAL log state unreadable: neither slot A nor slot B is valid");
		rep_.fresh = true;
		w_.state_ = LogState{};
		std::memcpy(w_.state_.magic, kStateMagic, 8);
		w_.state_.head_seq = 1;
		w_.state_.epoch_seq = 1;
		w_.state_.nslots = static_cast<std::uint32_t>(w_.nslots_);
		w_.state_slot_ = 1;  // the first write goes to slot A
	} else {
		const bool use_b = vb && (!va || b->generation > a->generation);
		w_.state_ = use_b ? *b : *a;
		w_.state_slot_ = use_b ? 1 : 0;
		if (!(va && vb))
			rep_.problems.push_back(std::string("log state slot ") + (use_b ? "A" : "B") +
						" invalid (harmless: slot " + (use_b ? "B" : "A") + " is current)");
	}
	rep_.state_generation = w_.state_.generation;
	rep_.head_seq = w_.state_.head_seq;
	rep_.ckpt_gen = w_.state_.ckpt_gen;
	rep_.ckpt_half = w_.state_.ckpt_half;
	w_.head_seq_ = w_.state_.head_seq;
	return {};
}

Status WalRecovery::replay_checkpoint()
{
	alloc_.reset(pool_.buffer_count());
	if (w_.state_.ckpt_gen == 0)
		return {};
	const std::uint32_t h = w_.state_.ckpt_half;
	const auto* hdr = reinterpret_cast<const CkptHeader*>(ckpt_half_base(pool_, h));
	const std::uint64_t cap = ckpt_half_capacity(pool_);
	if (!ckpt_header_valid(*hdr, w_.seed_) || hdr->ckpt_gen != w_.state_.ckpt_gen ||
	    hdr->covers_seq != w_.state_.head_seq || hdr->nrecords > cap)
		return fail("checkpoint " + std::to_string(w_.state_.ckpt_gen) + " (half " + std::to_string(h) +
			    ") header invalid or does not match the log state");
	const WalRecord* base = reinterpret_cast<const WalRecord*>(ckpt_half_base(pool_, h) + kCkptHeaderPage);
	const std::uint64_t nrec = hdr->nrecords;
	DecodeCtx c{&pool_, wal_ckpt_seed(w_.seed_, hdr->ckpt_gen), false, 0, 0, 0, UINT32_MAX};
	auto rec = [&](std::uint64_t seq) -> const WalRecord* {
		return seq >= 1 && seq <= nrec ? &base[seq - 1] : nullptr;
	};
	std::uint64_t pos = 1, entries = 0;
	while (pos <= nrec) {
		const Decode d = decode_entry(c, pos, rec, recs_, why_);
		if (d == Decode::bad_record)
			return fail("checkpoint " + std::to_string(hdr->ckpt_gen) + " record " + std::to_string(pos) +
				    ": " + why_);
		if (d == Decode::bad_payload && !opt_.allow_truncate)
			// §Recovery step 2: dropping the entry would lose an
			// acknowledged value or renumber the stream entries
			// after it (positions already returned to clients).
			return fail("checkpoint " + std::to_string(hdr->ckpt_gen) + " entry at record " +
				    std::to_string(pos) + " (" +
				    std::string(to_string(static_cast<RecordType>(recs_[0]->type))) + "): " + why_ +
				    "; refusing to open (allow_truncate drops it)");
		for (const auto* r : recs_)
			for_slices(*r, [&](std::uint32_t buf) {
				alloc_.ref(buf);
				w_.ckpt_refs_.push_back(buf);
			});
		if (d == Decode::bad_payload) {
			rep_.ckpt_dropped_entries++;
			rep_.problems.push_back("checkpoint entry at record " + std::to_string(pos) + " dropped: " + why_);
			for (const auto* r : recs_)
				quarantine(*r);
		} else {
			saw_flags_ |= state_flag_for(static_cast<RecordType>(recs_[0]->type));
			replay_(to_entry(recs_, vals_, crcs_), 0);
		}
		pos += recs_.size();
		entries++;
	}
	if (entries != hdr->nentries)
		return fail("checkpoint " + std::to_string(hdr->ckpt_gen) + " holds " + std::to_string(entries) +
			    " entries, header says " + std::to_string(hdr->nentries));
	rep_.ckpt_entries = entries;
	rep_.ckpt_records = nrec;
	w_.ckpt_nrecords_ = nrec;
	return {};
}

void WalRecovery::apply_pending()
{
	for (const Pend& pe : pend_) {
		precs_.clear();
		for (std::uint32_t k = 0; k < pe.n; k++)
			precs_.push_back(w_.slot(pe.seq + k));
		for (const auto* r : precs_)
			for_slices(*r, [&](std::uint32_t buf) { alloc_.ref(buf); });
		saw_flags_ |= state_flag_for(static_cast<RecordType>(precs_[0]->type));
		replay_(to_entry(precs_, vals_, crcs_), pe.seq);
		rep_.log_entries++;
		rep_.log_records += pe.n;
	}
	pend_.clear();
}

Status WalRecovery::scan_log()
{
	c_ = DecodeCtx{&pool_, w_.seed_, true, 0, w_.state_.epoch, w_.state_.epoch_seq,
		       static_cast<std::uint32_t>(w_.nslots_ / 4)};
	auto rec = [this](std::uint64_t seq) -> const WalRecord* { return w_.slot(seq); };
	expected_ = w_.head_seq_;
	last_ = Decode::ok;
	std::uint64_t batch_end = expected_;  // first seq after the last complete batch
	std::uint32_t batch_epoch = 0;        // epoch of the last record of that batch
	while (true) {
		if (!pend_.empty() && expected_ == c_.epoch_seq && pend_epoch_ < c_.cur_epoch) {
			// A recovery started the current epoch here: everything
			// before epoch_seq is what it accepted, so this batch is
			// whole (ended by an epoch change that recovery saw).
			batch_end = expected_;
			batch_epoch = pend_epoch_;
			apply_pending();
		}
		if (expected_ - w_.head_seq_ >= w_.nslots_) {
			last_ = Decode::bad_record;
			why_ = "log window full";
			break;
		}
		last_ = decode_entry(c_, expected_, rec, recs_, why_);
		if (last_ == Decode::ok && expected_ + recs_.size() - w_.head_seq_ > w_.nslots_) {
			last_ = Decode::bad_record;
			why_ = "entry overruns the ring";
		}
		if (last_ != Decode::ok)
			break;
		if (!pend_.empty() && recs_[0]->epoch != pend_epoch_) {
			batch_end = expected_;  // an older run's batch, cut by its crash
			batch_epoch = pend_epoch_;
			apply_pending();
		}
		try {
			pend_.push_back({expected_, static_cast<std::uint32_t>(recs_.size())});
		} catch (const std::bad_alloc&) {
			return make_error(ENOMEM, "recovery: out of memory");
		}
		pend_epoch_ = recs_.back()->epoch;
		c_.min_epoch = recs_.back()->epoch;
		expected_ += recs_.size();
		if (recs_.back()->flags & kRecBatchEnd) {
			batch_end = expected_;
			batch_epoch = recs_.back()->epoch;
			apply_pending();
		}
	}
	if (!pend_.empty()) {
		// The last batch has no BATCH_END: it was never committed (no
		// reply was sent). Drop it whole; its records are counted
		// beyond the stop below, like any torn tail.
		rep_.uncommitted_entries = pend_.size();
		why_ = "uncommitted batch from seq " + std::to_string(batch_end) + " (no BATCH_END; " +
		       std::to_string(pend_.size()) + " entries), then " + why_;
		pend_.clear();
		expected_ = batch_end;
		c_.min_epoch = batch_epoch;
		last_ = Decode::bad_record;
	}
	return {};
}

Status WalRecovery::classify_stop()
{
	// The accepted records fill the slots of [head_seq, expected) and this
	// scan visits the others, so together they see every slot once:
	// ring_epoch is the highest epoch of any record with a valid CRC
	// anywhere in the ring (§Epochs).
	const WalRecord* at = w_.slot(expected_);
	bool torn = last_ == Decode::bad_payload || (at->seq == expected_ && why_ != "log window full");
	bool batch_end_seen = false, corrupt = false;
	std::uint64_t corrupt_seq = 0;
	ring_epoch_ = std::max(rep_.log_records ? c_.min_epoch : 0, pend_epoch_);
	std::vector<const WalRecord*> beyond;
	for (std::uint64_t s = expected_; s < w_.head_seq_ + w_.nslots_; s++) {
		const WalRecord* r = w_.slot(s);
		if (r->crc != crc60(*r, w_.seed_))
			continue;
		ring_epoch_ = std::max(ring_epoch_, r->epoch);
		const bool epoch_ok = s >= c_.epoch_seq ? r->epoch == c_.cur_epoch
							: r->epoch < c_.cur_epoch && r->epoch >= c_.min_epoch;
		if (r->seq != s || s >= kWalSeqLimit || !epoch_ok)
			continue;
		beyond.push_back(r);
		if (batch_end_seen && !corrupt) {
			corrupt = true;
			corrupt_seq = s;
		}
		if (r->flags & kRecBatchEnd)
			batch_end_seen = true;
	}
	rep_.dropped_records = beyond.size();
	if (!beyond.empty())
		torn = true;
	rep_.next_seq = expected_;
	if (corrupt) {
		rep_.stop = RecoveryReport::Stop::corruption;
		rep_.stop_reason = "seq " + std::to_string(expected_) + ": " + why_ +
				   "; committed records follow (seq " + std::to_string(corrupt_seq) + ")";
		rep_.problems.push_back("WAL corruption: " + rep_.stop_reason);
		if (!opt_.allow_truncate)
			return make_error(EIO, "WAL corruption at " + rep_.stop_reason +
						       "; refusing to open (allow_truncate salvages up to it)");
		for (const auto* r : beyond)
			quarantine(*r);
	} else if (torn) {
		rep_.stop = RecoveryReport::Stop::torn_tail;
		rep_.stop_reason = "seq " + std::to_string(expected_) + ": " + why_;
	}
	w_.next_seq_ = expected_;
	std::sort(rep_.quarantined.begin(), rep_.quarantined.end());
	rep_.quarantined.erase(std::unique(rep_.quarantined.begin(), rep_.quarantined.end()), rep_.quarantined.end());
	return {};
}

Status WalRecovery::check_ring_epoch()
{
	rep_.ring_epoch = ring_epoch_;
	if (ring_epoch_ <= w_.state_.epoch)
		return {};
	const std::string msg = "ring holds records of epoch " + std::to_string(ring_epoch_) +
				", newer than the log state's epoch " + std::to_string(w_.state_.epoch);
	// §Epochs: each lost newest log-state slot puts the ring one epoch
	// ahead; far more cannot come from this state, and jumping there
	// would spend the epoch space a forged record chose.
	if (std::uint64_t{ring_epoch_} > std::uint64_t{w_.state_.epoch} + kWalMaxEpochLead && !opt_.read_only)
		return fail(msg + ": more than " + std::to_string(kWalMaxEpochLead) +
			    " ahead, the log state does not belong to this ring");
	rep_.problems.push_back(msg + " (a newer log-state slot was lost); they are not recovered");
	return {};
}

Status WalRecovery::start_epoch()
{
	// Before anything is appended, so no record already on media can ever
	// match the new epoch.
	if (!opt_.read_only) {
		const std::uint32_t top = std::max(w_.state_.epoch, ring_epoch_);
		if (top == UINT32_MAX)
			return fail("no writer epoch left: the log state or a ring record has epoch " +
				    std::to_string(top));
		LogState next = w_.state_;
		next.generation++;
		next.epoch = top + 1;
		next.epoch_seq = expected_;
		next.flags |= saw_flags_;  // lost with a newer slot, or never set
		if (w_.write_state(next) != 0)
			return make_error(EIO, "cannot write the WAL log state");
	}
	rep_.epoch = w_.state_.epoch;
	return {};
}

Result<Wal> Wal::open(const PoolView& pool, BufferAllocator& alloc, const WalOptions& opt, const ReplayFn& replay,
		      RecoveryReport* report)
{
	RecoveryReport local;
	RecoveryReport& rep = report ? *report : local;
	rep = RecoveryReport{};

	Wal w;
	w.pool_ = pool;
	w.alloc_ = &alloc;
	w.opt_ = opt;
	w.nslots_ = wal_nslots(pool.geometry().wal_size);
	if (w.nslots_ == 0)
		return make_error(EINVAL, "WAL area of " + std::to_string(pool.geometry().wal_size) +
						  " bytes is too small (needs 4096 + 64 records of 64 bytes)");
	w.seed_ = wal_pool_seed(pool);

	WalRecovery r(w, pool, alloc, opt, replay, rep);
	for (Status (WalRecovery::*step)() : {&WalRecovery::read_log_state, &WalRecovery::replay_checkpoint,
					      &WalRecovery::scan_log, &WalRecovery::classify_stop,
					      &WalRecovery::check_ring_epoch, &WalRecovery::start_epoch})
		if (Status st = (r.*step)(); !st)
			return st.error();
	return w;
}

}  // namespace daxnet::pmem
