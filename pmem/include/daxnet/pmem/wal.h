// SPDX-License-Identifier: BSD-2-Clause
//
// The write-ahead log over a pool's WAL area, and the reference-only
// checkpoints in its checkpoint area. Specification: docs/wal-format.md; the
// on-media structs below follow it field for field.
//
// Usage (one event-loop pass):
//   for each request: wal.append(entry)      // flushes payload + record lines
//   wal.commit();                            // ONE drain for the whole batch
//   ... only now send the replies ...
//
// The WAL owns the durable references to pool buffers (one per slice of every
// record in the live window and of the active checkpoint) and takes/drops
// them in the BufferAllocator it was opened with.
//
// Lock context: one thread (the PersistDomain's). Hot paths (append, commit)
// are noexcept and return counts or negative errno values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "daxnet/pmem/buffer_alloc.h"
#include "daxnet/pmem/pool.h"
#include "daxnet/result.h"

namespace daxnet::pmem {

// ---- On-media format (docs/wal-format.md) --------------------------------

inline constexpr std::uint64_t kWalStatePage = 4096;          ///< §WAL area layout
inline constexpr std::uint64_t kWalStateSlotB = 2048;         ///< §Log state
inline constexpr std::uint64_t kWalRecordSize = 64;           ///< §Record
inline constexpr std::uint64_t kCkptHeaderPage = 4096;        ///< §Checkpoint area
inline constexpr std::uint32_t kWalMinSlots = 64;
/// §WAL area layout: every log seq and `head_seq` is at most 2^63, so seq
/// arithmetic over a window of N < 2^32 slots never wraps.
inline constexpr std::uint64_t kWalSeqLimit = std::uint64_t{1} << 63;
/// §Epochs: a ring record's epoch exceeds the log state's by at most this
/// much (one per lost newest log-state slot); more means the state is not
/// the one the ring was written under.
inline constexpr std::uint32_t kWalMaxEpochLead = 1u << 16;

/// §Record, record types.
enum class RecordType : std::uint8_t {
	kv_set = 1,
	kv_del = 2,
	kv_flushall = 3,
	stream_append = 4,
	stream_trim = 5,
	kv_set_typed = 6,  ///< KV_SET of a typed (non-string) value
	cont = 15,
};

/// §Log state, `flags`: the log or a checkpoint may hold STREAM_TRIM entries.
inline constexpr std::uint32_t kStateFlagTrim = 1;
/// §Log state, `flags`: the log or a checkpoint may hold KV_SET_TYPED entries.
inline constexpr std::uint32_t kStateFlagTyped = 2;
/// §Log state: every `flags` bit this version knows.
inline constexpr std::uint32_t kStateKnownFlags = kStateFlagTrim | kStateFlagTyped;
/// §Log state, `flags`: the bit a record type needs set (0: none).
constexpr std::uint32_t state_flag_for(RecordType t) noexcept
{
	return t == RecordType::stream_trim ? kStateFlagTrim : t == RecordType::kv_set_typed ? kStateFlagTyped : 0;
}

inline constexpr std::uint8_t kRecBatchEnd = 1;  ///< §Record, flags bit 0

/// §Record: one slice as stored.
struct WalSlice {
	std::uint32_t buf;
	std::uint32_t off;
	std::uint32_t len;
	std::uint32_t crc;  ///< CRC32C of the payload bytes (unmasked)
};

/// §Record: exactly one 64-byte line.
struct alignas(64) WalRecord {
	std::uint64_t seq;
	std::uint64_t aux;
	WalSlice s[2];
	std::uint8_t type;
	std::uint8_t flags;
	std::uint16_t nslices;
	std::uint32_t count;
	std::uint32_t epoch;
	std::uint32_t crc;  ///< masked CRC of bytes [0, 60)
};
static_assert(sizeof(WalRecord) == kWalRecordSize);

/// §Log state: one A/B slot.
struct LogState {
	char magic[8];  ///< "DXWLOG01"
	std::uint64_t generation;
	std::uint64_t head_seq;
	std::uint64_t ckpt_gen;
	std::uint32_t epoch;
	std::uint32_t ckpt_half;
	std::uint32_t nslots;
	std::uint32_t flags;      ///< kStateFlag* bits
	std::uint64_t epoch_seq;  ///< first seq written in `epoch` (§Epochs)
	std::uint32_t reserved;
	std::uint32_t crc;
};
static_assert(sizeof(LogState) == 64);

/// §Checkpoint header.
struct CkptHeader {
	char magic[8];  ///< "DXCKPT01"
	std::uint64_t ckpt_gen;
	std::uint64_t covers_seq;
	std::uint64_t nrecords;
	std::uint64_t nentries;
	std::uint8_t reserved[20];
	std::uint32_t crc;
};
static_assert(sizeof(CkptHeader) == 64);

// ---- Entries --------------------------------------------------------------

/// One logical operation (§Entries): a head record plus CONT records.
/// `key` is the key (KV_SET, KV_DEL) or stream name (STREAM_APPEND,
/// STREAM_TRIM); `value` the value or body slices in order (each len >= 1,
/// within one buffer).
struct Entry {
	RecordType type = RecordType::kv_set;
	std::uint64_t aux = 0;  ///< KV_SET: absolute expiry ns (0 none); STREAM_APPEND: stamp;
				///< STREAM_TRIM: the stream's new first position (< 2^63)
	Slice key{};
	std::span<const Slice> value{};
	/// The slices' payload CRCs when known (replay, and a checkpoint
	/// writing what the log already checksummed: it reuses them instead
	/// of reading every payload again). value_crc has value.size()
	/// entries. Unknown (false): computed from the bytes.
	bool crc_known = false;
	std::uint32_t key_crc = 0;
	std::span<const std::uint32_t> value_crc{};
};

/// Records needed for an entry with `value_slices` value slices.
constexpr std::uint32_t wal_records_for(std::size_t value_slices) noexcept
{
	return value_slices <= 1 ? 1u : 1u + static_cast<std::uint32_t>(value_slices / 2);
}

/// Called by recovery for every accepted entry, in order; `seq` is the head
/// record's log seq (0 for checkpoint entries).
using ReplayFn = std::function<void(const Entry& e, std::uint64_t seq)>;

struct WalOptions {
	/// §Recovery step 5: open at the stop point even when the stop looks
	/// like corruption of acknowledged data (buffers named beyond it are
	/// quarantined). Default: refuse with EIO.
	bool allow_truncate = false;
	/// Recover without writing anything (no epoch bump); append/commit/
	/// checkpoint then fail with -EROFS. For inspection tools.
	bool read_only = false;

	/// Testing only: fault injection for the crash checker's own test.
	enum class Fault : std::uint8_t {
		none,
		skip_payload_flush,  ///< drop the payload flush of every 7th entry
		skip_record_flush,   ///< drop the record flush of every 7th entry
	};
	Fault fault = Fault::none;
};

/// What recovery found (docs/wal-format.md §Recovery).
struct RecoveryReport {
	enum class Stop : std::uint8_t { clean, torn_tail, corruption };

	std::uint64_t state_generation = 0;
	std::uint32_t epoch = 0;          ///< epoch after open (bumped unless read-only)
	std::uint32_t ring_epoch = 0;     ///< highest epoch of any record in the ring with a valid CRC
	std::uint64_t head_seq = 0;
	std::uint64_t next_seq = 0;       ///< first seq after the accepted log
	std::uint64_t ckpt_gen = 0;
	std::uint32_t ckpt_half = 0;
	std::uint64_t ckpt_entries = 0;
	std::uint64_t ckpt_records = 0;
	std::uint64_t log_entries = 0;
	std::uint64_t log_records = 0;
	Stop stop = Stop::clean;
	std::string stop_reason;          ///< why the scan stopped (empty when clean)
	std::uint64_t dropped_records = 0;  ///< valid-looking records beyond the stop
	std::uint64_t ckpt_dropped_entries = 0;  ///< checkpoint entries with bad payload
	std::uint64_t uncommitted_entries = 0;   ///< entries of an unterminated last batch (not recovered)
	std::vector<std::uint32_t> quarantined;  ///< buffers never handed out again
	std::vector<std::string> problems;  ///< one line per problem found
	bool fresh = false;               ///< the log state was all zero (new pool)
};

std::string_view to_string(RecoveryReport::Stop s) noexcept;

struct WalStats {
	std::uint64_t entries = 0;      ///< entries appended
	std::uint64_t records = 0;      ///< records appended
	std::uint64_t commits = 0;      ///< commits that drained (non-empty batches)
	std::uint64_t checkpoints = 0;
	std::uint64_t ckpt_records = 0; ///< records written by the last checkpoint
};

/// Writes one checkpoint's entries (docs/wal-format.md §Checkpoints).
class CheckpointWriter {
public:
	/// Adds an entry; KV_DEL/KV_FLUSHALL are not allowed. Returns 0,
	/// -ENOSPC when the checkpoint half is full, -EINVAL on a bad entry.
	int add(const Entry& e) noexcept;
	/// Flushes the records added since the last call (an incremental
	/// checkpoint spreads this over its steps; install flushes the rest).
	void flush_written() noexcept;
	std::uint64_t records() const noexcept { return nrecords_; }
	std::uint64_t entries() const noexcept { return nentries_; }

private:
	friend class Wal;
	CheckpointWriter() = default;
	PoolView pool_{};  ///< a copy: a pending writer outlives moves of its Wal
	std::byte* half_ = nullptr;
	std::uint64_t capacity_ = 0;  ///< records
	std::uint64_t nrecords_ = 0;
	std::uint64_t nentries_ = 0;
	std::uint64_t flushed_ = 0;  ///< records flushed by flush_written()
	std::uint32_t seed_ = 0;
	std::uint32_t state_flags_ = 0;  ///< kStateFlag* bits its entries need (§Log state, flags)
	std::vector<std::uint32_t>* refs_ = nullptr;  ///< buffers referenced
};

class Wal {
public:
	/// Recovers the log of `pool` (§Recovery), replaying every accepted
	/// entry through `replay`, rebuilding `alloc`'s counts (it is reset
	/// first), and moving to a new epoch above every epoch in the ring
	/// (§Epochs). Fails with EIO (and fills `report`) when the state, the
	/// checkpoint or committed records are unreadable, when the ring holds
	/// a record more than kWalMaxEpochLead epochs ahead of the state, or
	/// when no epoch is left (state epoch 2^32 - 1).
	static Result<Wal> open(const PoolView& pool, BufferAllocator& alloc, const WalOptions& opt,
				const ReplayFn& replay, RecoveryReport* report = nullptr);

	Wal(Wal&&) noexcept;
	Wal& operator=(Wal&&) noexcept;
	~Wal();

	/// Stages one entry: flushes its payload lines and records; takes one
	/// buffer reference per slice. Not durable before commit(). Returns 0
	/// and the head seq in `*seq`; -ENOSPC when the ring lacks room (a
	/// checkpoint frees it), -EMSGSIZE when the entry exceeds N/4 records,
	/// -EINVAL on a bad slice (out of range, or a buffer nobody holds),
	/// -EOVERFLOW when the entry's seqs would pass kWalSeqLimit, -EROFS
	/// when opened read-only.
	int append(const Entry& e, std::uint64_t* seq = nullptr) noexcept;

	/// The payload CRCs of the entry the last successful append() staged
	/// (key, then value slices in order), as its records hold them.
	void last_crcs(std::uint32_t& key_crc, std::vector<std::uint32_t>& out) const;

	/// Takes back the entry the last successful append() staged, when it is
	/// still the newest and not committed (docs/wal-format.md §Appending:
	/// a caller that cannot index it makes the append all or nothing). Its
	/// buffer references are dropped, its records overwritten with an
	/// invalid one (zeros) and made durable (one drain: a valid leftover
	/// after a later BATCH_END would mislead recovery), and its seqs are
	/// given again by the next append. Returns 0, or -EINVAL when there is
	/// nothing to take back.
	int unstage_last() noexcept;
	/// Takes back every entry staged from `seq` on (a seq an append returned
	/// since the last commit, or next_seq(): nothing), newest first, as
	/// unstage_last() does for one: a caller that refuses a batch of
	/// entries as a whole. One drain. Returns 0, or -EINVAL when `seq` is
	/// not within the staged, uncommitted entries.
	int unstage_to(std::uint64_t seq) noexcept;
	/// Whether unstage_to(seq) would succeed (changes nothing).
	bool can_unstage_to(std::uint64_t seq) const noexcept { return unstage_entries(seq) != UINT64_MAX; }

	/// Makes every staged entry durable with one drain (none when nothing is
	/// staged). Returns the number of entries committed.
	int commit() noexcept;
	/// Pipelined commit (docs/wal-format.md §Appending and group commit):
	/// as commit(), but the batch's drain is begun (PersistDomain::
	/// drain_begin()), not waited for: the entries are durable, and may be
	/// answered, once the domain's durable_ticket() reaches `ticket`. The
	/// next append() waits for it. With nothing staged, `ticket` is the
	/// last one begun.
	int commit_begin(std::uint64_t& ticket) noexcept;

	/// Writes a checkpoint of the live state produced by `emit` (which calls
	/// CheckpointWriter::add for every live entry and returns 0 or a
	/// negative errno), installs it and moves head_seq to next_seq. Staged
	/// entries become durable as part of it. Two drains. Returns 0 or
	/// -errno (-ENOSPC: the live state does not fit a checkpoint half).
	int checkpoint(const std::function<int(CheckpointWriter&)>& emit) noexcept;

	// Incremental checkpoints (docs/wal-format.md §Checkpoints, fuzzy):
	// begin_checkpoint() fixes covers_seq = next_seq; the caller adds the
	// entries through pending_checkpoint() over any number of commits
	// (appends go on meanwhile) and install_checkpoint() writes the header,
	// drains, installs the state with head_seq = covers_seq (two drains)
	// and releases the old checkpoint and the records below covers_seq.
	// What the entries must hold for that to be a valid checkpoint is the
	// caller's contract (§Checkpoints). checkpoint(emit) is begin + emit +
	// install; it drops a pending one first.

	/// 0, -EBUSY (one is pending), -EROFS, -ENOMEM.
	int begin_checkpoint() noexcept;
	/// The pending checkpoint's writer, or nullptr.
	CheckpointWriter* pending_checkpoint() noexcept;
	/// covers_seq of the pending checkpoint (0 when none).
	std::uint64_t pending_covers() const noexcept;
	/// 0 or -EINVAL (none pending).
	int install_checkpoint() noexcept;
	/// Drops the pending checkpoint (nothing on media refers to it).
	void abort_checkpoint() noexcept;

	std::uint64_t head_seq() const noexcept { return head_seq_; }
	std::uint64_t next_seq() const noexcept { return next_seq_; }
	std::uint64_t nslots() const noexcept { return nslots_; }
	/// Records in the live window [head_seq, next_seq).
	std::uint64_t used() const noexcept { return next_seq_ - head_seq_; }
	std::uint64_t staged_entries() const noexcept { return staged_entries_; }
	std::uint64_t ckpt_capacity() const noexcept;  ///< records per checkpoint half
	std::uint32_t epoch() const noexcept { return state_.epoch; }
	const WalStats& stats() const noexcept { return stats_; }
	const PoolView& pool() const noexcept { return pool_; }
	BufferAllocator& allocator() const noexcept { return *alloc_; }

private:
	friend class KvStore;  // constructs an empty Wal, then opens into it
	friend class WalRecovery;  // Wal::open's steps (wal_recovery.cpp)
	struct Pending;
	Wal();
	WalRecord* slot(std::uint64_t seq) const noexcept;
	int write_state(const LogState& next) noexcept;
	int commit_impl(std::uint64_t* ticket) noexcept;

	PoolView pool_{};
	BufferAllocator* alloc_ = nullptr;
	WalOptions opt_{};
	LogState state_{};
	std::uint32_t state_slot_ = 0;  ///< 0 = A, 1 = B: holds state_
	std::uint32_t seed_ = 0;
	std::uint64_t nslots_ = 0;
	std::uint64_t head_seq_ = 1;
	std::uint64_t next_seq_ = 1;
	std::uint64_t ckpt_nrecords_ = 0;  ///< records in the active checkpoint
	/// One buffer per slice of the active checkpoint (§Buffer lifetime):
	/// installing the next one drops these from DRAM instead of reading
	/// the old checkpoint back from the pool.
	std::vector<std::uint32_t> ckpt_refs_;
	WalRecord* last_staged_ = nullptr;
	std::uint64_t last_seq0_ = 0;  ///< head seq of the last appended entry
	std::uint32_t last_n_ = 0;     ///< its records
	std::uint64_t staged_entries_ = 0;
	/// unstage_to(seq)'s entries (0: none), UINT64_MAX when it would fail.
	std::uint64_t unstage_entries(std::uint64_t seq) const noexcept;
	std::uint64_t staged_from_ = 0;  ///< head seq of the first staged entry (when any)
	std::uint64_t fault_counter_ = 0;
	WalStats stats_{};
	std::unique_ptr<Pending> pending_;
};

// ---- Inspection helpers (daxnet-pool dump/check, tests) --------------------

/// Record slots N of a WAL area of `wal_size` bytes (0 when too small).
std::uint64_t wal_nslots(std::uint64_t wal_size) noexcept;
/// CRC seed of `pool` (§Checksums).
std::uint32_t wal_pool_seed(const PoolView& pool) noexcept;
/// Seed of checkpoint records of generation `gen`.
std::uint32_t wal_ckpt_seed(std::uint32_t pool_seed, std::uint64_t gen) noexcept;
/// Masked CRC a record must carry under `seed`.
std::uint32_t wal_record_crc(const WalRecord& r, std::uint32_t seed) noexcept;
/// The two log-state slots (A, B) of `pool`; validity is checked by the caller
/// via log_state_valid.
const LogState* wal_state_slot(const PoolView& pool, int which) noexcept;
bool log_state_valid(const LogState& s, std::uint32_t seed, std::uint64_t nslots) noexcept;
/// The checkpoint half `h` (header at the start, records from +4096) and its
/// capacity in records.
std::byte* ckpt_half_base(const PoolView& pool, std::uint32_t h) noexcept;
std::uint64_t ckpt_half_capacity(const PoolView& pool) noexcept;
bool ckpt_header_valid(const CkptHeader& h, std::uint32_t seed) noexcept;
/// Entries in the active checkpoint of `pool` (0 when none or unreadable);
/// a sizing hint for the index before recovery.
std::uint64_t ckpt_entries_hint(const PoolView& pool) noexcept;
std::string_view to_string(RecordType t) noexcept;

}  // namespace daxnet::pmem
