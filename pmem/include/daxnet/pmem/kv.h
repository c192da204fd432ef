// SPDX-License-Identifier: BSD-2-Clause
//
// Persistent key-value index and stream logs on pool buffers, both on one WAL
// (docs/wal-format.md). Keys, values, stream names and bodies are slices of
// pool buffers -- where the network layer received them, or where the server
// wrote them itself (ScratchArena) -- and are never copied. The index lives
// in DRAM and is rebuilt at open from the latest checkpoint plus the log tail.
//
// Event-loop usage:
//   for each request in the batch:
//     kv.set(key_slice, value_slices, expiry) / kv.del(key_slice) / ...
//     (reads may run any time and see the staged state)
//   kv.commit();            // one drain; only now send the replies
//
// Mutations return 0 (or a count) once staged, and become durable at the
// next commit(). GET exposes the value as slices (buffer, offset, length),
// so a server can transmit straight from the buffers; the slices stay valid
// until the next mutating call (set/del/flushall/commit/checkpoint). To keep
// them longer (asynchronous zero-copy TX), take a reference on each slice's
// buffer with BufferAllocator::ref and drop it when the send completes.
//
// Lock context: one thread. Hot paths are noexcept, return counts or -errno.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "daxnet/pmem/buffer_alloc.h"
#include "daxnet/pmem/cleaner.h"
#include "daxnet/pmem/pool.h"
#include "daxnet/pmem/wal.h"
#include "daxnet/result.h"

namespace daxnet::pmem {

/// CLOCK_REALTIME in nanoseconds (the clock of expiry times).
std::uint64_t realtime_ns() noexcept;

/// A value (or stream body) as a list of slices of pool buffers.
struct ValueRef {
	std::span<const Slice> slices;
	std::uint64_t size = 0;       ///< total bytes
	std::uint64_t expiry_ns = 0;  ///< absolute, CLOCK_REALTIME; 0 = none
	bool typed = false;           ///< stored by a typed set (KV_SET_TYPED): not a plain string
};

/// The bytes of `s` in `pool` (no check: slices from the store are valid).
inline std::span<const std::byte> slice_bytes(const PoolView& pool, const Slice& s) noexcept
{
	return {pool.buffer(s.buf) + s.off, s.len};
}

struct StreamEntryRef {
	std::uint64_t index = 0;  ///< position in the stream, from 0
	std::uint64_t stamp = 0;  ///< caller's stamp given to stream_append
	ValueRef body;
};

struct KvOptions {
	WalOptions wal{};
	/// Checkpoint after a commit once the live log window exceeds this
	/// fraction of the ring (docs/wal-format.md §Checkpoints).
	double checkpoint_fraction = 0.5;
	/// Clock for expiry (tests substitute their own).
	std::uint64_t (*clock)() noexcept = realtime_ns;
	/// 0: a checkpoint runs whole inside the commit() that triggers it
	/// (about 0.5 s per million keys) -- except the one the cleaner asks
	/// for after a cycle, always incremental (CleanerOptions::max_visits
	/// entries per commit). N > 0: it is incremental
	/// (docs/wal-format.md §Checkpoints, fuzzy): begun by that commit and
	/// advanced by max(N, 2 x the entries the commit made durable) entries
	/// per later commit() (an empty index bucket visited counts 1/64 of an
	/// entry), installed when done, so a commit stalls for that
	/// much checkpoint work (plus the installation: one pass over the new
	/// checkpoint's references and the old one's), not for the whole live
	/// state. If the ring fills first (a live state larger than what is
	/// left of the ring), the appending call completes the checkpoint.
	std::uint32_t checkpoint_step = 0;
	/// Capacity (docs/wal-format.md §Capacity): log slots kept for entries
	/// that free space (KV_DEL, KV_FLUSHALL, STREAM_TRIM). SET and appends
	/// are refused with -ENOSPC when they would leave fewer free; 0 picks
	/// max(8, N / 16).
	std::uint32_t log_reserve = 0;
	/// Capacity: checkpoint records kept as slack for a fuzzy checkpoint
	/// (keys added while it runs); 0 picks capacity / 32.
	std::uint64_t ckpt_slack = 0;
	/// The cleaner (docs/wal-format.md §The cleaner): see clean().
	CleanerOptions cleaner{};
};

class KvStore {
public:
	/// Recovers (docs/wal-format.md §Recovery) and returns the store.
	/// `alloc` is reset and rebuilt from the log: open the store before the
	/// network layer takes any buffer from it. Errors: EIO (unreadable log
	/// state or checkpoint, corruption of committed records; `report` says
	/// what), EINVAL (WAL area too small).
	static Result<std::unique_ptr<KvStore>> open(const PoolView& pool, BufferAllocator& alloc,
						     const KvOptions& opt = {}, RecoveryReport* report = nullptr);

	KvStore(const KvStore&) = delete;
	KvStore& operator=(const KvStore&) = delete;
	~KvStore();

	// ---- mutations (staged; durable at commit) ----

	/// SET key value [expiry]: logs KV_SET, replaces any old value. `key`
	/// and `value` must lie in buffers someone holds (refcount > 0).
	/// Returns 0, -ENOSPC (log/checkpoint full), -EMSGSIZE (value too large
	/// for the ring), -EINVAL (bad slice).
	/// `typed`: logs KV_SET_TYPED instead (docs/wal-format.md §Record):
	/// the same, but get() reports the value as typed (ValueRef::typed),
	/// and checkpoints and the cleaner keep it so.
	int set(const Slice& key, std::span<const Slice> value, std::uint64_t expiry_ns = 0, bool typed = false) noexcept;
	int set(const Slice& key, const Slice& value, std::uint64_t expiry_ns = 0) noexcept
	{
		return set(key, std::span<const Slice>(&value, 1), expiry_ns);
	}
	/// DEL key: 1 when the key existed (KV_DEL logged), 0 when not (nothing
	/// logged), or -errno.
	int del(const Slice& key) noexcept;
	/// FLUSHALL (KV keys only; streams are kept): logs KV_FLUSHALL. 0/-errno.
	int flushall() noexcept;
	/// Appends a body to stream `name` (created on first append). Returns 0
	/// and the entry's position in `*index`, or -errno (-EOVERFLOW when the
	/// position would reach 2^63 - 1).
	int stream_append(const Slice& name, std::span<const Slice> body, std::uint64_t stamp = 0,
			  std::uint64_t* index = nullptr) noexcept;

	/// Trims stream `name` (docs/wal-format.md §Record, streams): drops its
	/// entries below position `first`; positions are kept (the next append
	/// still gets stream_length()). Returns the number of entries dropped
	/// (0 and nothing logged when `first` <= stream_first()), -ENOENT (no
	/// such stream), -ERANGE (`first` beyond stream_length()), or the WAL's
	/// -errno. The buffers of dropped entries return at the next checkpoint
	/// (see reclaimable()).
	std::int64_t stream_trim(const Slice& name, std::uint64_t first) noexcept;

	/// Makes staged mutations durable with one drain; checkpoints when the
	/// log window passes checkpoint_fraction. Returns the number of entries
	/// made durable, or -errno when a needed checkpoint failed (the batch is
	/// durable regardless); -EBUSY inside a batch (batch_begin()): nothing
	/// is committed before the batch ends.
	int commit() noexcept;
	/// Pipelined commit: as commit(), but the batch's drain is only begun
	/// (Wal::commit_begin()): its entries may be answered once
	/// pool().domain().durable_ticket() >= `ticket`. The next write waits
	/// for it; a checkpoint step it triggers drains (waits) as before.
	int commit_begin(std::uint64_t& ticket) noexcept;
	/// Checkpoints now, whole (two drains); drops a pending incremental one
	/// first. 0 or -errno (-EBUSY inside a batch: see batch_begin()).
	int checkpoint() noexcept;
	/// Starts reclaiming superseded buffers without stalling: begins an
	/// incremental checkpoint when none is pending (checkpoint_step > 0),
	/// otherwise checkpoints whole. 0 or -errno.
	int reclaim() noexcept;

	/// The cleaner (docs/wal-format.md §The cleaner): moves live keys out
	/// of sparsely used buffers into dense ones, a bounded amount per call
	/// (KvOptions::cleaner), staging relocation entries like set() does.
	/// Call it once per event-loop pass, before commit(). Returns the
	/// entries it staged (0 when it had nothing to do or could make no
	/// progress), or -errno. The old buffers come free at a later
	/// checkpoint, which it requests itself once a cycle is done.
	int clean() noexcept;
	const CleanerStats& cleaner_stats() const noexcept { return cleaner_stats_; }
	/// The free buffers the cleaner leaves alone (CleanerOptions::keep_free):
	/// a service passes the reserve it keeps for receiving.
	void set_cleaner_keep_free(std::uint32_t n) noexcept { opt_.cleaner.keep_free = n; }
	/// Whether a cleaning cycle is under way (scan done, index walk not)
	/// or waits for the checkpoint that releases its buffers.
	bool cleaner_busy() const noexcept;
	/// Value and stream-body bytes the live state holds (keys and stream
	/// names not included): the denominator of the space figure.
	std::uint64_t live_payload_bytes() const noexcept { return live_payload_; }
	/// Bytes of live keys, values, stream names and bodies in buffer `b`.
	std::uint32_t buffer_live_bytes(std::uint32_t b) const noexcept
	{
		return b < live_bytes_.size() ? live_bytes_[b] : 0;
	}

	// ---- capacity (docs/wal-format.md §Capacity) ----

	/// Records a whole checkpoint of the current state needs at most (one
	/// per stream for its STREAM_TRIM, plus every live key's and stream
	/// entry's records).
	std::uint64_t live_records() const noexcept { return key_records_ + stream_records_; }
	/// What live_records() may reach: the checkpoint half's capacity less
	/// the fuzzy-checkpoint slack. Writes that would pass it are refused.
	std::uint64_t record_limit() const noexcept;
	/// Log slots kept for freeing entries (KvOptions::log_reserve).
	std::uint64_t log_reserve() const noexcept { return log_reserve_; }
	/// Admission for a command that stages several entries as one batch
	/// (MSET): -ENOSPC when `new_records` more live records would pass
	/// record_limit() or `log_records` do not fit the log outside the
	/// reserve even after a pending checkpoint is completed; otherwise
	/// makes sure the log has that room now, so staging them runs no
	/// checkpoint in between (which would make part of the batch durable
	/// on its own). 0 or -errno.
	int admit(std::uint64_t new_records, std::uint64_t log_records) noexcept;
	/// Makes `log_records` of log room outside the reserve now when it can
	/// (completing a pending checkpoint, or checkpointing whole), for a
	/// batch whose entries are not known up front (a script): 0, or
	/// -ENOSPC (inside a batch, or the room cannot be made). Refuses and
	/// counts nothing: the batch's own entries are admitted as they come.
	int make_room(std::uint64_t log_records) noexcept;
	/// Admission for a batch of `log_records` records of entries that only
	/// free space (KV_DEL, KV_FLUSHALL, STREAM_TRIM: an EXEC of DELs),
	/// which may use the whole ring, the reserve included: makes that room
	/// now (completing a pending checkpoint, or checkpointing whole), so
	/// they are never refused inside the batch, where no checkpoint can
	/// run. 0; -EMSGSIZE when they are more than the ring holds (no batch
	/// can take them at once); -ENOSPC inside a batch without the room,
	/// or when no checkpoint could make it. Counts no refusal.
	int admit_frees(std::uint64_t log_records) noexcept;
	/// The most log records one batch can stage: the log outside the
	/// reserve. A batch needing more is refused whatever the pool holds.
	std::uint64_t batch_log_limit() const noexcept;
	// ---- batches admitted whole or refused whole ----
	/// Where a batch (or a part of one) began: batch_undo() takes back
	/// everything staged since.
	struct BatchMark {
		std::uint64_t seq = 0;   ///< the WAL's next_seq()
		std::size_t undo = 0;    ///< undo records then
	};
	/// Enters batch mode (calls nest; each is matched by batch_end()).
	/// Until the outermost batch_end(), an entry that lacks log room is
	/// refused with -ENOSPC instead of running a checkpoint (which would
	/// make the part of the batch staged so far durable on its own), a
	/// refusal for space is remembered (batch_refused()), lazy expiry drops
	/// nothing from the index, and every KV entry staged can be taken back
	/// with batch_undo(). Returns the mark of this point.
	BatchMark batch_begin() noexcept;
	/// Takes back, from the index and the log, every entry staged since
	/// `m` (newest first): KV entries and stream appends. 0; -EBUSY when a
	/// stream trim was staged since or the log no longer holds them all
	/// staged, -EINVAL for a mark of no open batch: nothing is undone,
	/// and the store then fails (failed()), so that the group it could
	/// not take back never becomes durable in part; -EINVAL outside a
	/// batch (nothing failed).
	int batch_undo(const BatchMark& m) noexcept;
	/// 0, or the errno of the batch_undo() that failed: the store holds
	/// staged entries of a group that was to be taken back, and makes
	/// none of them durable. From then on commit(), checkpoint() and
	/// reclaim() return -EIO and every mutation -EROFS; reads still see
	/// the staged state. What was committed before stays, and a reopen
	/// recovers it (the uncommitted entries are dropped, as after a crash).
	int failed() const noexcept { return failed_; }
	/// Leaves batch mode; the outermost call forgets the undo records and
	/// batch_refused().
	void batch_end() noexcept;
	bool in_batch() const noexcept { return batch_depth_ > 0; }
	/// Whether an entry was refused with -ENOSPC since the outermost
	/// batch_begin() (checkpoint capacity or log room).
	bool batch_refused() const noexcept { return batch_refused_; }
	/// Whether such a refusal was for log room (no checkpoint may make
	/// it inside the batch): the same group may fit after one
	/// (make_room()), unlike one refused for checkpoint capacity.
	bool batch_refused_log() const noexcept { return batch_refused_log_; }

	struct CapacityStats {
		std::uint64_t refused_capacity = 0;  ///< writes refused: checkpoint capacity
		std::uint64_t refused_log = 0;       ///< writes refused: log room (reserve kept)
		std::uint64_t ckpt_failures = 0;     ///< checkpoints that failed (live state did not fit)
	};
	const CapacityStats& capacity_stats() const noexcept { return cap_stats_; }
	/// Whether an incremental checkpoint is in progress.
	bool checkpoint_pending() const noexcept { return ckpt_ != nullptr; }
	/// How incremental checkpoints ended (diagnostics, /stats).
	struct CheckpointStats {
		std::uint64_t stepped = 0;   ///< completed and installed by steps
		std::uint64_t finished = 0;  ///< completed at once: the ring ran full first
		std::uint64_t restarted = 0; ///< begun again after an index rehash
		std::uint64_t fallbacks = 0; ///< given up for a whole checkpoint (an error)
	};
	const CheckpointStats& checkpoint_stats() const noexcept { return ckpt_stats_; }
	/// Stream entries trimmed since the last checkpoint: their buffers are
	/// still referenced (log window, active checkpoint) until checkpoint().
	std::uint64_t reclaimable() const noexcept { return trimmed_since_ckpt_; }

	// ---- reads (see the staged state) ----

	/// 1 and the value when `key` is present and not expired, 0 otherwise.
	/// An expired key is dropped from the index (lazy expiry).
	int get(std::string_view key, ValueRef& out) noexcept;
	bool exists(std::string_view key) noexcept;
	/// Keys in the index (expired keys not yet dropped are counted).
	std::size_t dbsize() const noexcept { return index_.size(); }
	/// Buckets of the DRAM key index (diagnostics: a change is a rehash).
	std::size_t index_buckets() const noexcept { return index_.bucket_count(); }
	/// End of stream `name`: the position the next append gets, i.e. the
	/// entries ever appended (trimmed ones included); 0 when it does not
	/// exist.
	std::uint64_t stream_length(std::string_view name) const noexcept;
	/// First retained position of stream `name` (0 until trimmed).
	std::uint64_t stream_first(std::string_view name) const noexcept;
	/// Whether stream `name` exists (an append or a trim created it).
	bool stream_exists(std::string_view name) const noexcept { return streams_.contains(name); }
	/// Fills `out` with up to out.size() entries from position
	/// max(from, stream_first()). Returns the number filled.
	std::size_t stream_read(std::string_view name, std::uint64_t from, std::span<StreamEntryRef> out) const noexcept;

	/// Called with the key when get()/exists() or a checkpoint step drops
	/// an expired key from the index (a server propagates the deletion to
	/// its replicas). Runs before the key's entry is erased.
	using ExpireHook = void (*)(void* ctx, std::string_view key) noexcept;
	void set_expire_hook(ExpireHook fn, void* ctx) noexcept
	{
		expire_hook_ = fn;
		expire_ctx_ = ctx;
	}

	/// Visits every key (unordered), including expired ones not yet dropped.
	void for_each(const std::function<void(std::string_view key, const ValueRef& v)>& fn) const;
	/// Visits the keys of up to `max_buckets` index buckets, from bucket
	/// `bucket` on (expired ones not yet dropped included). Returns the
	/// bucket to continue from, 0 after the last. Without a rehash (see
	/// index_buckets()) a key never changes bucket, so a walk from 0 to 0
	/// visits every key present throughout it once.
	std::size_t visit_buckets(std::size_t bucket, std::size_t max_buckets,
				  const std::function<void(std::string_view key, const ValueRef& v)>& fn) const;
	/// Visits the keys of one index bucket chosen from `seed` (the first
	/// non-empty one from there, at most `max_buckets` looked at): a cheap
	/// random sample for RANDOMKEY. Returns the number of keys visited.
	std::size_t visit_random_bucket(std::uint64_t seed, std::size_t max_buckets,
					const std::function<void(std::string_view key, const ValueRef& v)>& fn) const;
	/// Visits every stream name with its stream_length() (unordered).
	void for_each_stream(const std::function<void(std::string_view name, std::uint64_t length)>& fn) const;

	const PoolView& pool() const noexcept { return wal_.pool(); }
	const Wal& wal() const noexcept { return wal_; }
	BufferAllocator& allocator() const noexcept { return wal_.allocator(); }

private:
	int commit_impl(std::uint64_t* ticket) noexcept;
	struct Item {
		Slice key{};
		std::uint64_t expiry = 0;
		std::uint64_t size = 0;
		std::uint32_t nslices = 0;
		bool typed = false;       ///< logged as KV_SET_TYPED
		Slice first{};            ///< the value when nslices == 1
		std::vector<Slice> many;  ///< the value when nslices > 1
		/// Payload CRCs as logged (a checkpoint reuses them, never
		/// reading the payload again): key, first / many as above.
		std::uint32_t key_crc = 0, first_crc = 0;
		std::vector<std::uint32_t> many_crc;
		ValueRef ref() const noexcept;
	};
	using Index = std::unordered_map<std::string_view, Item>;
	/// How to take back one entry staged in a batch (batch_undo()).
	struct Undo {
		/// erase: a SET of a new key; restore: a SET over a key; reinsert:
		/// a DEL; flushall; append: a stream append (its entry popped
		/// again); stream: a stream trim (never taken back); none: nothing
		/// changed.
		enum class Kind : std::uint8_t { erase, restore, reinsert, flushall, append, stream, none };
		Kind kind = Kind::erase;
		std::string_view key;  ///< erase, restore: the key's bytes; append: the stream's name
		/// restore: undo_items_, reinsert: undo_nodes_, flushall:
		/// undo_maps_; append: 1 when the append created the stream
		std::size_t at = 0;
		std::uint64_t pos = 0;  ///< append: the entry's position in its stream
	};
	struct StreamEntry {
		std::uint64_t stamp = 0;
		std::uint64_t size = 0;
		std::uint32_t nslices = 0;
		Slice first{};            ///< as in Item
		std::vector<Slice> many;
		std::uint32_t first_crc = 0;  ///< as in Item
		std::vector<std::uint32_t> many_crc;
	};
	struct Stream {
		Slice name{};
		std::uint32_t name_crc = 0;
		std::uint64_t first = 0;          ///< position of entries.front()
		std::deque<StreamEntry> entries;  ///< positions [first, first + size)
		std::uint64_t end() const noexcept { return first + entries.size(); }
	};

	/// An incremental checkpoint's progress (§Checkpoints, fuzzy).
	struct CkptProgress {
		struct StreamEnd {
			std::string_view name;
			std::uint64_t end = 0;   ///< the stream's end at covers_seq
			std::uint64_t next = 0;  ///< next position to write
			bool started = false;
		};
		std::vector<StreamEnd> streams;
		std::size_t stream_i = 0;
		/// The keys are walked bucket by bucket: without a rehash an
		/// element never changes bucket, so every key present at begin is
		/// visited (keys inserted since are in the log from covers_seq).
		std::size_t buckets = 0, bucket = 0;
		std::uint64_t trimmed_at_begin = 0;
	};

	explicit KvStore(const KvOptions& opt) noexcept;
	void apply(const Entry& e);
	/// The stream named by `name`, created (empty, first 0) when missing.
	Stream& stream_for(const Slice& name, std::uint32_t name_crc);
	/// A stream just added to streams_: its name and counts.
	void stream_created(Stream& st, const Slice& name, std::uint32_t name_crc) noexcept;
	int ckpt_begin() noexcept;
	/// Writes up to `budget` more entries (a bucket is written whole); 1
	/// when complete, 0 when not, -EAGAIN when the index rehashed (begin
	/// again), -errno.
	int ckpt_step(std::uint64_t budget) noexcept;
	/// Completes and installs the pending checkpoint. 0 or -errno.
	int ckpt_finish() noexcept;
	std::string_view view(const Slice& s) const noexcept;
	/// Appends and applies `e`. `frees`: a freeing entry, which may use the
	/// reserved log room (§Capacity).
	int append_logged(const Entry& e, bool frees) noexcept;
	/// A write refused for checkpoint capacity (§Capacity).
	int refuse_capacity() noexcept;
	/// Batch mode: makes room for taking `e` back, and applies it so that
	/// it can be (kv_del keeps the key's node, kv_flushall the index).
	/// prepare: may throw bad_alloc (nothing changed); apply: after the
	/// WAL staged `e`.
	void batch_prepare(const Entry& e);
	/// Drops what batch_prepare() made for an entry that was not applied.
	void batch_unprepare() noexcept;
	void batch_apply(const Entry& e);
	/// Makes room for `n` more log records below `limit` (completes the
	/// pending checkpoint, or checkpoints whole). 0 or -ENOSPC.
	int log_room(std::uint64_t n, std::uint64_t limit) noexcept;
	/// A whole checkpoint unless the last one failed and nothing was freed
	/// since (a failed checkpoint is not retried on every request).
	int checkpoint_if_useful() noexcept;
	bool slice_ok(const Slice& s) const noexcept;
	/// An item leaves the index: its records (§Capacity) and its bytes
	/// (the cleaner's per-buffer live counts).
	/// `unlink`: also drop it from buf_items_ (FLUSHALL clears those whole).
	void forget_item(const Item& it, bool unlink = true) noexcept;
	/// Calls fn(b) once for each distinct buffer of `key` and `value`.
	template <class F>
	void for_distinct_buffers(const Slice& key, std::span<const Slice> value, F&& fn) const;
	/// Makes room in buf_items_ for an item with these slices (may throw
	/// bad_alloc, changing nothing), so that link() allocates nothing.
	void make_link_room(const Slice& key, std::span<const Slice> value);
	/// Lists (`add`) or unlists a movable item in buf_items_.
	void link(const Item& item, bool add) noexcept;
	/// Adds (`sign` 1) or removes (-1) the live bytes of a key / stream
	/// entry; `movable`: the cleaner may move it (small KV values only).
	void account(const Slice& key, std::span<const Slice> value, std::uint64_t size, int sign,
		     bool movable) noexcept;
	bool movable(std::uint64_t size) const noexcept { return size <= move_limit_; }
	/// After a checkpoint was installed: counts the cleaner's victims
	/// that came free.
	void after_install() noexcept;
	// cleaner.cpp
	struct CleanerState;
	int clean_start() noexcept;
	/// Looks at up to `budget` more buffers for the victim scan; returns
	/// how many it looked at.
	std::uint64_t clean_scan(std::uint64_t budget) noexcept;
	bool clean_candidate(std::uint32_t b) const noexcept;
	bool clean_rescan_due() const noexcept;
	/// The free buffers the cleaner leaves alone (CleanerOptions::keep_free).
	std::uint32_t clean_keep() const noexcept;
	/// Moves item `key` when it touches a victim; 1 moved, 0 skipped,
	/// -EAGAIN: stop for this call (no log room), -ENOBUFS: no destination
	/// buffer it may take (the cycle ends early).
	int clean_move(std::string_view key) noexcept;
	void clean_release_dest() noexcept;

	Wal wal_;
	KvOptions opt_;
	Index index_;
	std::unordered_map<std::string_view, Stream> streams_;
	std::vector<Slice> scratch_;
	std::uint64_t trimmed_since_ckpt_ = 0;
	std::unique_ptr<CkptProgress> ckpt_;
	CheckpointStats ckpt_stats_{};
	std::vector<std::string_view> expired_;  ///< scratch of ckpt_step
	std::vector<std::uint32_t> crc_scratch_;  ///< CRCs of the entry being applied
	std::uint64_t key_records_ = 0;     ///< §Capacity: records of the live keys
	std::uint64_t stream_records_ = 0;  ///< §Capacity: one per stream + its entries' records
	std::uint64_t log_reserve_ = 8;
	/// live_records() when a checkpoint last failed (UINT64_MAX: none
	/// failed); no whole checkpoint is tried again until it drops below.
	std::uint64_t ckpt_failed_at_ = UINT64_MAX;
	CapacityStats cap_stats_{};
	// The cleaner (cleaner.cpp): live bytes per buffer, and how many of
	// them belong to what it never moves (stream data, large values).
	std::vector<std::uint32_t> live_bytes_;
	std::vector<std::uint32_t> pinned_bytes_;
	/// Per buffer, the movable keys with a slice in it (each listed once
	/// per buffer): the cleaner walks its victims' lists, so a cycle costs
	/// what the victims hold, not the index's size or bucket count.
	std::vector<std::vector<const Item*>> buf_items_;
	std::uint64_t live_payload_ = 0;
	/// Key and value bytes that left the index so far (deleted,
	/// overwritten, expired): the cleaner scans again when enough did.
	std::uint64_t forgotten_bytes_ = 0;
	std::uint64_t move_limit_ = 0;
	std::unique_ptr<CleanerState> cleaner_;
	CleanerStats cleaner_stats_{};
	/// Test hook: the next append_logged() fails to index its entry
	/// (bad_alloc) after the WAL staged it (CleanerOptions::fault_enomem_every).
	bool fault_apply_ = false;
	// Batch mode (batch_begin()).
	int failed_ = 0;  ///< failed()
	std::uint32_t batch_depth_ = 0;
	bool batch_refused_ = false;
	bool batch_refused_log_ = false;  ///< batch_refused_log()
	bool prep_item_ = false, prep_map_ = false;  ///< what batch_prepare() made
	std::vector<Undo> undo_;
	std::vector<Item> undo_items_;          ///< items as they were before a SET
	std::vector<Index::node_type> undo_nodes_;  ///< deleted keys' nodes
	std::vector<std::pair<Index, std::uint64_t>> undo_maps_;  ///< index and key_records_ before a FLUSHALL
	ExpireHook expire_hook_ = nullptr;
	void* expire_ctx_ = nullptr;
};

}  // namespace daxnet::pmem
