// SPDX-License-Identifier: BSD-2-Clause
//
// The write-ahead log, its A/B log state and the reference-only checkpoints.
// Every rule here is specified in docs/wal-format.md; section names are cited
// as §Name. The sources are split as LevelDB splits its log:
//   wal_format.h      the on-media codec (encode, validate, decode)
//   wal.cpp           geometry, seeds, state and checkpoint-header helpers
//   wal_recovery.cpp  Wal::open: §Recovery
//   wal_writer.cpp    append, commit, the log state: §Appending and group commit
//   wal_checkpoint.cpp  CheckpointWriter and installing checkpoints: §Checkpoints
#include "wal_format.h"

namespace daxnet::pmem {

using namespace walfmt;

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
	case RecordType::kv_set_typed:
		return "KV_SET_TYPED";
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

Wal::Wal() = default;
Wal::Wal(Wal&&) noexcept = default;
Wal& Wal::operator=(Wal&&) noexcept = default;
Wal::~Wal() = default;

}  // namespace daxnet::pmem
