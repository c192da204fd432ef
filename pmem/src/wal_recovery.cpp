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
	auto fail = [&rep](std::string msg) {
		rep.problems.push_back(msg);
		return make_error(EIO, std::move(msg));
	};

	// Step 1: §Log state.
	const LogState* a = wal_state_slot(pool, 0);
	const LogState* b = wal_state_slot(pool, 1);
	const bool va = log_state_valid(*a, w.seed_, w.nslots_);
	const bool vb = log_state_valid(*b, w.seed_, w.nslots_);
	if (!va && !vb) {
		if (!all_zero(a, sizeof(*a)) || !all_zero(b, sizeof(*b)))
			return fail("WAL log state unreadable: neither slot A nor slot B is valid");
		rep.fresh = true;
		w.state_ = LogState{};
		std::memcpy(w.state_.magic, kStateMagic, 8);
		w.state_.head_seq = 1;
		w.state_.epoch_seq = 1;
		w.state_.nslots = static_cast<std::uint32_t>(w.nslots_);
		w.state_slot_ = 1;  // the first write goes to slot A
	} else {
		const bool use_b = vb && (!va || b->generation > a->generation);
		w.state_ = use_b ? *b : *a;
		w.state_slot_ = use_b ? 1 : 0;
		if (!(va && vb))
			rep.problems.push_back(std::string("log state slot ") + (use_b ? "A" : "B") +
					       " invalid (harmless: slot " + (use_b ? "B" : "A") + " is current)");
	}
	rep.state_generation = w.state_.generation;
	rep.head_seq = w.state_.head_seq;
	rep.ckpt_gen = w.state_.ckpt_gen;
	rep.ckpt_half = w.state_.ckpt_half;
	w.head_seq_ = w.state_.head_seq;

	alloc.reset(pool.buffer_count());
	std::vector<const WalRecord*> recs;
	std::vector<Slice> vals;
	std::vector<std::uint32_t> crcs;
	std::string why;
	bool saw_trim = false;  // §Log state, flags: keep TRIM set while trims exist
	auto quarantine = [&](const WalRecord& r) {
		for (const auto& s : r.s)
			if (s.len && pool.valid_buffer(s.buf)) {
				alloc.ref(s.buf);
				rep.quarantined.push_back(s.buf);
			}
	};

	// Step 2: the checkpoint.
	if (w.state_.ckpt_gen != 0) {
		const std::uint32_t h = w.state_.ckpt_half;
		const auto* hdr = reinterpret_cast<const CkptHeader*>(ckpt_half_base(pool, h));
		const std::uint64_t cap = ckpt_half_capacity(pool);
		if (!ckpt_header_valid(*hdr, w.seed_) || hdr->ckpt_gen != w.state_.ckpt_gen ||
		    hdr->covers_seq != w.state_.head_seq || hdr->nrecords > cap)
			return fail("checkpoint " + std::to_string(w.state_.ckpt_gen) + " (half " + std::to_string(h) +
				    ") header invalid or does not match the log state");
		const WalRecord* base =
			reinterpret_cast<const WalRecord*>(ckpt_half_base(pool, h) + kCkptHeaderPage);
		const std::uint64_t nrec = hdr->nrecords;
		DecodeCtx c{&pool, wal_ckpt_seed(w.seed_, hdr->ckpt_gen), false, 0, 0, 0, UINT32_MAX};
		auto rec = [&](std::uint64_t seq) -> const WalRecord* {
			return seq >= 1 && seq <= nrec ? &base[seq - 1] : nullptr;
		};
		std::uint64_t pos = 1, entries = 0;
		while (pos <= nrec) {
			const Decode d = decode_entry(c, pos, rec, recs, why);
			if (d == Decode::bad_record)
				return fail("checkpoint " + std::to_string(hdr->ckpt_gen) + " record " +
					    std::to_string(pos) + ": " + why);
			if (d == Decode::bad_payload && !opt.allow_truncate)
				// §Recovery step 2: dropping the entry would lose an
				// acknowledged value or renumber the stream entries
				// after it (positions already returned to clients).
				return fail("checkpoint " + std::to_string(hdr->ckpt_gen) + " entry at record " +
					    std::to_string(pos) + " (" + std::string(to_string(static_cast<RecordType>(recs[0]->type))) +
					    "): " + why + "; refusing to open (allow_truncate drops it)");
			for (const auto* r : recs)
				for_slices(*r, [&](std::uint32_t buf) {
					alloc.ref(buf);
					w.ckpt_refs_.push_back(buf);
				});
			if (d == Decode::bad_payload) {
				rep.ckpt_dropped_entries++;
				rep.problems.push_back("checkpoint entry at record " + std::to_string(pos) +
						       " dropped: " + why);
				for (const auto* r : recs)
					quarantine(*r);
			} else {
				saw_trim |= recs[0]->type == static_cast<std::uint8_t>(RecordType::stream_trim);
				replay(to_entry(recs, vals, crcs), 0);
			}
			pos += recs.size();
			entries++;
		}
		if (entries != hdr->nentries)
			return fail("checkpoint " + std::to_string(hdr->ckpt_gen) + " holds " + std::to_string(entries) +
				    " entries, header says " + std::to_string(hdr->nentries));
		rep.ckpt_entries = entries;
		rep.ckpt_records = nrec;
		w.ckpt_nrecords_ = nrec;
	}

	// Step 3: scan the log.
	DecodeCtx c{&pool, w.seed_, true, 0, w.state_.epoch, w.state_.epoch_seq,
		    static_cast<std::uint32_t>(w.nslots_ / 4)};
	auto rec = [&w](std::uint64_t seq) -> const WalRecord* { return w.slot(seq); };
	std::uint64_t expected = w.head_seq_;
	Decode last = Decode::ok;
	// §Recovery, batches: entries are applied a whole batch at a time (up
	// to a record with BATCH_END, or an epoch change, which ends the batch
	// of a run that crashed before recoveries of this version truncated
	// it); the entries of an unterminated last batch are not recovered.
	struct Pend {
		std::uint64_t seq;
		std::uint32_t n;
	};
	std::vector<Pend> pend;
	std::uint32_t pend_epoch = 0;
	std::vector<const WalRecord*> precs;
	auto apply_pending = [&] {
		for (const Pend& pe : pend) {
			precs.clear();
			for (std::uint32_t k = 0; k < pe.n; k++)
				precs.push_back(w.slot(pe.seq + k));
			for (const auto* r : precs)
				for_slices(*r, [&](std::uint32_t buf) { alloc.ref(buf); });
			saw_trim |= precs[0]->type == static_cast<std::uint8_t>(RecordType::stream_trim);
			replay(to_entry(precs, vals, crcs), pe.seq);
			rep.log_entries++;
			rep.log_records += pe.n;
		}
		pend.clear();
	};
	std::uint64_t batch_end = expected;  // first seq after the last complete batch
	std::uint32_t batch_epoch = 0;       // epoch of the last record of that batch
	while (true) {
		if (!pend.empty() && expected == c.epoch_seq && pend_epoch < c.cur_epoch) {
			// A recovery started the current epoch here: everything
			// before epoch_seq is what it accepted, so this batch is
			// whole (ended by an epoch change that recovery saw).
			batch_end = expected;
			batch_epoch = pend_epoch;
			apply_pending();
		}
		if (expected - w.head_seq_ >= w.nslots_) {
			last = Decode::bad_record;
			why = "log window full";
			break;
		}
		last = decode_entry(c, expected, rec, recs, why);
		if (last == Decode::ok && expected + recs.size() - w.head_seq_ > w.nslots_) {
			last = Decode::bad_record;
			why = "entry overruns the ring";
		}
		if (last != Decode::ok)
			break;
		if (!pend.empty() && recs[0]->epoch != pend_epoch) {
			batch_end = expected;  // an older run's batch, cut by its crash
			batch_epoch = pend_epoch;
			apply_pending();
		}
		try {
			pend.push_back({expected, static_cast<std::uint32_t>(recs.size())});
		} catch (const std::bad_alloc&) {
			return make_error(ENOMEM, "recovery: out of memory");
		}
		pend_epoch = recs.back()->epoch;
		c.min_epoch = recs.back()->epoch;
		expected += recs.size();
		if (recs.back()->flags & kRecBatchEnd) {
			batch_end = expected;
			batch_epoch = recs.back()->epoch;
			apply_pending();
		}
	}
	if (!pend.empty()) {
		// The last batch has no BATCH_END: it was never committed (no
		// reply was sent). Drop it whole; its records are counted
		// beyond the stop below, like any torn tail.
		rep.uncommitted_entries = pend.size();
		why = "uncommitted batch from seq " + std::to_string(batch_end) + " (no BATCH_END; " +
		      std::to_string(pend.size()) + " entries), then " + why;
		pend.clear();
		expected = batch_end;
		c.min_epoch = batch_epoch;
		last = Decode::bad_record;
	}

	// Step 4: classify the stop. The accepted records fill the slots of
	// [head_seq, expected) and this scan visits the others, so together
	// they see every slot once: ring_epoch is the highest epoch of any
	// record with a valid CRC anywhere in the ring (§Epochs).
	const WalRecord* at = w.slot(expected);
	bool torn = last == Decode::bad_payload || (at->seq == expected && why != "log window full");
	bool batch_end_seen = false, corrupt = false;
	std::uint64_t corrupt_seq = 0;
	std::uint32_t ring_epoch = std::max(rep.log_records ? c.min_epoch : 0, pend_epoch);
	std::vector<const WalRecord*> beyond;
	for (std::uint64_t s = expected; s < w.head_seq_ + w.nslots_; s++) {
		const WalRecord* r = w.slot(s);
		if (r->crc != crc60(*r, w.seed_))
			continue;
		ring_epoch = std::max(ring_epoch, r->epoch);
		const bool epoch_ok = s >= c.epoch_seq ? r->epoch == c.cur_epoch
						       : r->epoch < c.cur_epoch && r->epoch >= c.min_epoch;
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
	rep.dropped_records = beyond.size();
	if (!beyond.empty())
		torn = true;
	rep.next_seq = expected;
	if (corrupt) {
		rep.stop = RecoveryReport::Stop::corruption;
		rep.stop_reason = "seq " + std::to_string(expected) + ": " + why + "; committed records follow (seq " +
				  std::to_string(corrupt_seq) + ")";
		rep.problems.push_back("WAL corruption: " + rep.stop_reason);
		if (!opt.allow_truncate)
			return make_error(EIO, "WAL corruption at " + rep.stop_reason +
						       "; refusing to open (allow_truncate salvages up to it)");
		for (const auto* r : beyond)
			quarantine(*r);
	} else if (torn) {
		rep.stop = RecoveryReport::Stop::torn_tail;
		rep.stop_reason = "seq " + std::to_string(expected) + ": " + why;
	}
	w.next_seq_ = expected;
	std::sort(rep.quarantined.begin(), rep.quarantined.end());
	rep.quarantined.erase(std::unique(rep.quarantined.begin(), rep.quarantined.end()), rep.quarantined.end());
	rep.ring_epoch = ring_epoch;
	if (ring_epoch > w.state_.epoch) {
		const std::string msg = "ring holds records of epoch " + std::to_string(ring_epoch) +
					", newer than the log state's epoch " + std::to_string(w.state_.epoch);
		// §Epochs: each lost newest log-state slot puts the ring one epoch
		// ahead; far more cannot come from this state, and jumping there
		// would spend the epoch space a forged record chose.
		if (std::uint64_t{ring_epoch} > std::uint64_t{w.state_.epoch} + kWalMaxEpochLead && !opt.read_only)
			return fail(msg + ": more than " + std::to_string(kWalMaxEpochLead) +
				    " ahead, the log state does not belong to this ring");
		rep.problems.push_back(msg + " (a newer log-state slot was lost); they are not recovered");
	}

	// Step 6: move to a new epoch above every epoch in the ring (§Epochs)
	// before anything is appended, so no record already on media can ever
	// match it.
	if (!opt.read_only) {
		const std::uint32_t top = std::max(w.state_.epoch, ring_epoch);
		if (top == UINT32_MAX)
			return fail("no writer epoch left: the log state or a ring record has epoch " +
				    std::to_string(top));
		LogState next = w.state_;
		next.generation++;
		next.epoch = top + 1;
		next.epoch_seq = expected;
		if (saw_trim)
			next.flags |= kStateFlagTrim;  // lost with a newer slot, or never set
		if (w.write_state(next) != 0)
			return make_error(EIO, "cannot write the WAL log state");
	}
	rep.epoch = w.state_.epoch;
	return w;
}

}  // namespace daxnet::pmem
