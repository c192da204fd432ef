// SPDX-License-Identifier: BSD-2-Clause
//
// Private to the WAL's sources (wal.cpp, wal_recovery.cpp, wal_writer.cpp,
// wal_checkpoint.cpp), as LevelDB's log_format.h is to its log reader and
// writer: the on-media codec of docs/wal-format.md (§Checksums, §Record,
// §Entries) -- encoding an entry into records, validating and decoding
// them -- and the in-memory state of a checkpoint being written.
#pragma once

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "daxnet/pmem/crc32c.h"
#include "daxnet/pmem/wal.h"

namespace daxnet::pmem {

namespace walfmt {


inline constexpr char kStateMagic[8] = {'D', 'X', 'W', 'L', 'O', 'G', '0', '1'};
inline constexpr char kCkptMagic[8] = {'D', 'X', 'C', 'K', 'P', 'T', '0', '1'};

/// §Checksums: masked CRC of bytes [0, 60) of a 64-byte structure.
template <class T>
std::uint32_t crc60(const T& obj, std::uint32_t seed) noexcept
{
	static_assert(sizeof(T) == 64);
	return crc32c_mask(crc32c_extend(seed, &obj, 60));
}

inline bool all_zero(const void* p, std::size_t n) noexcept
{
	const auto* b = static_cast<const unsigned char*>(p);
	return std::all_of(b, b + n, [](unsigned char c) { return c == 0; });
}

inline bool slice_zero(const WalSlice& s) noexcept
{
	return s.buf == 0 && s.off == 0 && s.len == 0 && s.crc == 0;
}

/// §Record: a used slice stays inside one buffer.
inline bool slice_in_bounds(const PoolView& pool, std::uint32_t buf, std::uint32_t off, std::uint32_t len) noexcept
{
	return pool.valid_buffer(buf) && off <= pool.buffer_size() && len <= pool.buffer_size() - off;
}

inline bool known_head_type(std::uint8_t t) noexcept
{
	return t >= static_cast<std::uint8_t>(RecordType::kv_set) &&
	       t <= static_cast<std::uint8_t>(RecordType::kv_set_typed);
}

inline WalSlice make_slice(const PoolView& pool, const Slice& s, const std::uint32_t* known = nullptr) noexcept
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

inline bool check_slice(const PoolView& pool, const WalSlice& s, bool may_be_empty) noexcept
{
	if (s.len == 0)
		return may_be_empty && slice_zero(s);
	return slice_in_bounds(pool, s.buf, s.off, s.len);
}

/// Validates the record structure of one record (§Record, §Entries).
/// `head` is null for the head itself; `k` the position within the entry.
inline bool record_ok(const DecodeCtx& c, const WalRecord& r, std::uint64_t seq, const WalRecord* head, std::uint32_t k,
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
		const bool has_value = t == RecordType::kv_set || t == RecordType::kv_set_typed || t == RecordType::stream_append;
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

inline bool payload_ok(const PoolView& pool, const WalRecord& r) noexcept
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
inline Entry to_entry(const std::vector<const WalRecord*>& recs, std::vector<Slice>& vals, std::vector<std::uint32_t>& crcs)
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


}  // namespace walfmt

/// A checkpoint being written incrementally (§Checkpoints).
struct Wal::Pending {
	CheckpointWriter w;
	std::vector<std::uint32_t> refs;  ///< one per slice added (taken at install)
	std::uint64_t gen = 0;
	std::uint32_t half = 0;
	std::uint64_t covers = 0;  ///< covers_seq: next_seq at begin
};

}  // namespace daxnet::pmem
