// SPDX-License-Identifier: BSD-2-Clause
//
// The write-ahead log, its A/B log state and the reference-only checkpoints.
// Every rule here is specified in docs/wal-format.md; section names are cited
// as §Name.
#include "daxnet/pmem/wal.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "daxnet/pmem/crc32c.h"

namespace daxnet::pmem {

namespace {

constexpr char kStateMagic[8] = {'D', 'X', 'W', 'L', 'O', 'G', '0', '1'};
constexpr char kCkptMagic[8] = {'D', 'X', 'C', 'K', 'P', 'T', '0', '1'};

/// §Checksums: masked CRC of bytes [0, 60) of a 64-byte structure.
template <class T>
std::uint32_t crc60(const T& obj, std::uint32_t seed) noexcept
{
	static_assert(sizeof(T) == 64);
	return crc32c_mask(crc32c_extend(seed, &obj, 60));
}

bool all_zero(const void* p, std::size_t n) noexcept
{
	const auto* b = static_cast<const unsigned char*>(p);
	return std::all_of(b, b + n, [](unsigned char c) { return c == 0; });
}

bool slice_zero(const WalSlice& s) noexcept
{
	return s.buf == 0 && s.off == 0 && s.len == 0 && s.crc == 0;
}

/// §Record: a used slice stays inside one buffer.
bool slice_in_bounds(const PoolView& pool, std::uint32_t buf, std::uint32_t off, std::uint32_t len) noexcept
{
	return pool.valid_buffer(buf) && off <= pool.buffer_size() && len <= pool.buffer_size() - off;
}

bool known_head_type(std::uint8_t t) noexcept
{
	return t >= static_cast<std::uint8_t>(RecordType::kv_set) &&
	       t <= static_cast<std::uint8_t>(RecordType::stream_trim);
}

WalSlice make_slice(const PoolView& pool, const Slice& s, const std::uint32_t* known = nullptr) noexcept
{
	if (s.len == 0)
		return WalSlice{0, 0, 0, 0};
	return WalSlice{s.buf, s.off, s.len, known ? *known : crc32c(pool.buffer(s.buf) + s.off, s.len)};
}

/// Calls fn(buf) for every used slice of `r` (§Buffer lifetime: one
/// reference per slice).
template <class F>
void for_slices(const WalRecord& r, F&& fn)
{
	for (const auto& s : r.s)
		if (s.len)
			fn(s.buf);
}

/// Encodes `e` as records (§Entries). `dst(i)` gives the storage of record
/// i; `seq0` is the head's seq. Returns the record count.
template <class Dst>
std::uint32_t encode_entry(const PoolView& pool, const Entry& e, std::uint64_t seq0, std::uint32_t epoch,
			   std::uint32_t seed, Dst&& dst) noexcept
{
	const std::uint32_t n = wal_records_for(e.value.size());
	std::size_t vi = 0;
	for (std::uint32_t i = 0; i < n; i++) {
		WalRecord r{};
		r.seq = seq0 + i;
		r.epoch = epoch;
		if (i == 0) {
			r.aux = e.aux;
			r.type = static_cast<std::uint8_t>(e.type);
			r.nslices = static_cast<std::uint16_t>(e.value.size());
			r.count = n;
			r.s[0] = make_slice(pool, e.key, e.crc_known ? &e.key_crc : nullptr);
			if (vi < e.value.size()) {
				r.s[1] = make_slice(pool, e.value[vi], e.crc_known ? &e.value_crc[vi] : nullptr);
				vi++;
			}
		} else {
			r.type = static_cast<std::uint8_t>(RecordType::cont);
			r.count = i;
			std::uint16_t used = 0;
			for (auto& s : r.s)
				if (vi < e.value.size()) {
					s = make_slice(pool, e.value[vi], e.crc_known ? &e.value_crc[vi] : nullptr);
					vi++;
					used++;
				}
			r.nslices = used;
		}
		r.crc = crc60(r, seed);
		std::memcpy(static_cast<void*>(dst(i)), &r, sizeof(r));
	}
	return n;
}

/// Outcome of decoding one entry during recovery.
enum class Decode { ok, bad_record, bad_payload };

struct DecodeCtx {
	const PoolView* pool;
	std::uint32_t seed;
	bool log;                  ///< log records (epoch rules) vs checkpoint records
	std::uint32_t min_epoch;   ///< log: epoch never decreases
	std::uint32_t cur_epoch;   ///< log: the state's epoch
	std::uint64_t epoch_seq;   ///< log: first seq of cur_epoch
	std::uint32_t max_records; ///< §Entries: at most N/4 records (log)
};

bool check_slice(const PoolView& pool, const WalSlice& s, bool may_be_empty) noexcept
{
	if (s.len == 0)
		return may_be_empty && slice_zero(s);
	return slice_in_bounds(pool, s.buf, s.off, s.len);
}

/// Validates the record structure of one record (§Record, §Entries).
/// `head` is null for the head itself; `k` the position within the entry.
bool record_ok(const DecodeCtx& c, const WalRecord& r, std::uint64_t seq, const WalRecord* head, std::uint32_t k,
	       std::string& why)
{
	if (r.seq != seq) {
		why = r.seq == 0 && all_zero(&r, sizeof(r)) ? "empty slot" : "seq " + std::to_string(r.seq) + " in the slot of seq " + std::to_string(seq);
		return false;
	}
	if (r.crc != crc60(r, c.seed)) {
		why = "record CRC mismatch";
		return false;
	}
	if (c.log && seq >= kWalSeqLimit) {
		why = "seq beyond 2^63";  // §WAL area layout: never written
		return false;
	}
	if (c.log) {
		// §Epochs: from epoch_seq on only the current epoch is valid; before
		// it, older epochs in non-decreasing order.
		const bool ok = seq >= c.epoch_seq ? r.epoch == c.cur_epoch
						   : r.epoch < c.cur_epoch && r.epoch >= c.min_epoch;
		if (!ok) {
			why = "epoch " + std::to_string(r.epoch) + " out of order";
			return false;
		}
	} else if (r.epoch != 0 || r.flags != 0) {
		why = "checkpoint record with epoch/flags set";
		return false;
	}
	if (r.flags & ~kRecBatchEnd) {
		why = "unknown flags";
		return false;
	}
	if (!head) {
		if (!known_head_type(r.type)) {
			why = "not an entry head (type " + std::to_string(r.type) + ")";
			return false;
		}
		const auto t = static_cast<RecordType>(r.type);
		if (r.count != wal_records_for(r.nslices) || r.count > c.max_records) {
			why = "bad record count";
			return false;
		}
		const bool has_key = t != RecordType::kv_flushall;
		const bool has_value = t == RecordType::kv_set || t == RecordType::stream_append;
		const bool has_aux = has_value || t == RecordType::stream_trim;
		if ((!has_value && r.nslices) || (!has_key && !slice_zero(r.s[0])) || (!has_aux && r.aux) ||
		    (t == RecordType::stream_trim && r.aux >= kWalSeqLimit)) {
			why = "malformed entry";
			return false;
		}
		if (!check_slice(*c.pool, r.s[0], true) || !check_slice(*c.pool, r.s[1], r.nslices == 0) ||
		    (r.nslices == 0 && !slice_zero(r.s[1]))) {
			why = "slice out of range";
			return false;
		}
		return true;
	}
	if (r.type != static_cast<std::uint8_t>(RecordType::cont) || r.count != k || r.aux != 0) {
		why = "broken chain (record " + std::to_string(k) + " of the entry at seq " + std::to_string(head->seq) + ")";
		return false;
	}
	const std::uint32_t left = static_cast<std::uint32_t>(head->nslices) - 1 - 2 * (k - 1);
	const std::uint16_t want = static_cast<std::uint16_t>(std::min<std::uint32_t>(2, left));
	if (r.nslices != want || !check_slice(*c.pool, r.s[0], false) || !check_slice(*c.pool, r.s[1], want == 1)) {
		why = "malformed continuation";
		return false;
	}
	return true;
}

bool payload_ok(const PoolView& pool, const WalRecord& r) noexcept
{
	for (const auto& s : r.s)
		if (s.len && crc32c(pool.buffer(s.buf) + s.off, s.len) != s.crc)
			return false;
	return true;
}

/// Decodes the entry whose head has seq `seq`; `rec(seq)` gives records.
/// On ok or bad_payload, `recs` holds the entry's records.
template <class Rec>
Decode decode_entry(const DecodeCtx& c, std::uint64_t seq, Rec&& rec, std::vector<const WalRecord*>& recs,
		    std::string& why)
{
	recs.clear();
	const WalRecord* head = rec(seq);
	if (!head || !record_ok(c, *head, seq, nullptr, 0, why))
		return Decode::bad_record;
	recs.push_back(head);
	std::uint32_t epoch = head->epoch;
	for (std::uint32_t k = 1; k < head->count; k++) {
		const WalRecord* r = rec(seq + k);
		DecodeCtx ck = c;
		ck.min_epoch = epoch;
		if (!r || !record_ok(ck, *r, seq + k, head, k, why))
			return Decode::bad_record;
		epoch = r->epoch;
		recs.push_back(r);
	}
	for (const auto* r : recs)
		if (!payload_ok(*c.pool, *r)) {
			why = "payload CRC mismatch at seq " + std::to_string(r->seq);
			return Decode::bad_payload;
		}
	return Decode::ok;
}

/// Turns decoded records into an Entry (slices into `vals`, their CRCs
/// into `crcs`).
Entry to_entry(const std::vector<const WalRecord*>& recs, std::vector<Slice>& vals, std::vector<std::uint32_t>& crcs)
{
	const WalRecord& h = *recs[0];
	vals.clear();
	crcs.clear();
	for (std::size_t i = 0; i < recs.size(); i++)
		for (int j = (i == 0 ? 1 : 0); j < 2; j++) {
			const WalSlice& s = recs[i]->s[j];
			if (s.len) {
				vals.push_back(Slice{s.buf, s.off, s.len});
				crcs.push_back(s.crc);
			}
		}
	Entry e;
	e.type = static_cast<RecordType>(h.type);
	e.aux = h.aux;
	e.key = Slice{h.s[0].buf, h.s[0].off, h.s[0].len};
	e.value = vals;
	e.crc_known = true;
	e.key_crc = h.s[0].crc;
	e.value_crc = crcs;
	return e;
}

}  // namespace

// ---- helpers ----------------------------------------------------------------

std::uint64_t wal_nslots(std::uint64_t wal_size) noexcept
{
	if (wal_size < kWalStatePage + kWalMinSlots * kWalRecordSize)
		return 0;
	return (wal_size - kWalStatePage) / kWalRecordSize;
}

std::uint32_t wal_pool_seed(const PoolView& pool) noexcept
{
	return crc32c(pool.superblock().uuid, sizeof(pool.superblock().uuid));
}

std::uint32_t wal_ckpt_seed(std::uint32_t pool_seed, std::uint64_t gen) noexcept
{
	std::uint8_t le[8];
	for (int i = 0; i < 8; i++)
		le[i] = static_cast<std::uint8_t>(gen >> (8 * i));
	return crc32c_extend(pool_seed, le, sizeof(le));
}

std::uint32_t wal_record_crc(const WalRecord& r, std::uint32_t seed) noexcept
{
	return crc60(r, seed);
}

const LogState* wal_state_slot(const PoolView& pool, int which) noexcept
{
	return reinterpret_cast<const LogState*>(pool.wal_area().data() + (which ? kWalStateSlotB : 0));
}

bool log_state_valid(const LogState& s, std::uint32_t seed, std::uint64_t nslots) noexcept
{
	return std::memcmp(s.magic, kStateMagic, 8) == 0 && s.crc == crc60(s, seed) && s.nslots == nslots &&
	       s.head_seq >= 1 && s.head_seq <= kWalSeqLimit && s.ckpt_half <= 1 &&
	       (s.flags & ~kStateKnownFlags) == 0;
}

std::byte* ckpt_half_base(const PoolView& pool, std::uint32_t h) noexcept
{
	const std::uint64_t half = (pool.geometry().ckpt_size / 2) & ~(kCkptHeaderPage - 1);
	return pool.ckpt_area().data() + h * half;
}

std::uint64_t ckpt_half_capacity(const PoolView& pool) noexcept
{
	const std::uint64_t half = (pool.geometry().ckpt_size / 2) & ~(kCkptHeaderPage - 1);
	return half <= kCkptHeaderPage ? 0 : (half - kCkptHeaderPage) / kWalRecordSize;
}

bool ckpt_header_valid(const CkptHeader& h, std::uint32_t seed) noexcept
{
	return std::memcmp(h.magic, kCkptMagic, 8) == 0 && h.crc == crc60(h, seed);
}

std::uint64_t ckpt_entries_hint(const PoolView& pool) noexcept
{
	const std::uint64_t n = wal_nslots(pool.geometry().wal_size);
	if (n == 0)
		return 0;
	const std::uint32_t seed = wal_pool_seed(pool);
	const LogState* a = wal_state_slot(pool, 0);
	const LogState* b = wal_state_slot(pool, 1);
	const bool va = log_state_valid(*a, seed, n), vb = log_state_valid(*b, seed, n);
	const LogState* cur = va && (!vb || a->generation >= b->generation) ? a : vb ? b : nullptr;
	if (!cur || cur->ckpt_gen == 0)
		return 0;
	const auto* h = reinterpret_cast<const CkptHeader*>(ckpt_half_base(pool, cur->ckpt_half));
	if (!ckpt_header_valid(*h, seed) || h->nrecords > ckpt_half_capacity(pool))
		return 0;
	return h->nentries;
}

std::string_view to_string(RecordType t) noexcept
{
	switch (t) {
	case RecordType::kv_set:
		return "KV_SET";
	case RecordType::kv_del:
		return "KV_DEL";
	case RecordType::kv_flushall:
		return "KV_FLUSHALL";
	case RecordType::stream_append:
		return "STREAM_APPEND";
	case RecordType::stream_trim:
		return "STREAM_TRIM";
	case RecordType::cont:
		return "CONT";
	}
	return "INVALID";
}

std::string_view to_string(RecoveryReport::Stop s) noexcept
{
	switch (s) {
	case RecoveryReport::Stop::clean:
		return "clean";
	case RecoveryReport::Stop::torn_tail:
		return "torn tail";
	case RecoveryReport::Stop::corruption:
		return "corruption";
	}
	return "?";
}

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
	const bool has_value = e.type == RecordType::kv_set || e.type == RecordType::stream_append;
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

	if (trim && !(state_.flags & kStateFlagTrim)) {
		// §Log state, flags: readers that do not know STREAM_TRIM must
		// refuse this log before the first trim can be durable.
		LogState next = state_;
		next.generation++;
		next.flags |= kStateFlagTrim;
		write_state(next);
	}

	const bool inject = opt_.fault != WalOptions::Fault::none && (fault_counter_++ % 7) == 3;
	PersistDomain& d = pool_.domain();
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

int Wal::commit() noexcept
{
	if (staged_entries_ == 0)
		return 0;
	// §Recovery step 4 relies on BATCH_END marking where a batch ended.
	WalRecord* r = last_staged_;
	r->flags |= kRecBatchEnd;
	r->crc = crc60(*r, seed_);
	PersistDomain& d = pool_.domain();
	d.flush(*r);
	d.drain();  // the one fence of the batch
	const auto n = static_cast<int>(staged_entries_);
	staged_entries_ = 0;
	last_staged_ = nullptr;
	stats_.commits++;
	return n;
}

// ---- checkpoints (§Checkpoints) ---------------------------------------------

int CheckpointWriter::add(const Entry& e) noexcept
{
	if (e.type != RecordType::kv_set && e.type != RecordType::stream_append && e.type != RecordType::stream_trim)
		return -EINVAL;
	if (e.type == RecordType::stream_trim) {
		if (e.aux >= kWalSeqLimit)
			return -EINVAL;
		has_trim_ = true;
	}
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

struct Wal::Pending {
	CheckpointWriter w;
	std::vector<std::uint32_t> refs;  ///< one per slice added (taken at install)
	std::uint64_t gen = 0;
	std::uint32_t half = 0;
	std::uint64_t covers = 0;  ///< covers_seq: next_seq at begin
};

Wal::Wal() = default;
Wal::Wal(Wal&&) noexcept = default;
Wal& Wal::operator=(Wal&&) noexcept = default;
Wal::~Wal() = default;

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
	if (wr.has_trim_)
		next.flags |= kStateFlagTrim;  // §Log state, flags
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
