// SPDX-License-Identifier: BSD-2-Clause
//
// The core the store services (daxnet-kv, daxnet-wal) share on top of the
// event loop (server.h), over one pmem::KvStore:
//   - the commit at the end of a pass: one cleaner step, then ONE commit
//     (one fence) for every write staged in the pass, which also advances
//     a pending incremental checkpoint (StoreCore::end_of_pass);
//   - one reclaim policy: is_full() says whether writes are refused (no
//     work); reclaim_if_short() starts an incremental checkpoint when the
//     pool runs short and a checkpoint can give buffers back (the work);
//   - one retry-after-checkpoint for a write refused with ENOSPC;
//   - send_value(): a stored value into a reply, copied when small, sent
//     from the buffers that hold it (zero-copy) when large;
//   - the counters of all this, added to the service's Metrics list.
#pragma once

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <span>

#include "daxnet/pmem/kv.h"
#include "daxnet/svc/metrics.h"
#include "daxnet/svc/refusal.h"
#include "daxnet/svc/server.h"

namespace daxnet::svc {

/// Values up to this size are copied into the reply; larger ones go out
/// from the pool buffers that hold them.
inline constexpr std::uint64_t kInlineValueMax = 1024;

/// Appends the stored value `slices` (`size` bytes in all) to the reply
/// `o`: copied when at most kInlineValueMax bytes or when `o` is not c's
/// reply stream (c.tx.bytes()), else sent from the buffers holding it, as
/// TX slots after what `o` holds (a reference on each until it is handed to
/// the port).
void send_value(Server& srv, Conn& c, proto::OutBuf& o, const pmem::PoolView& pool,
		std::span<const pmem::Slice> slices, std::uint64_t size);

/// When reclaim_if_short() starts a checkpoint.
struct ReclaimPolicy {
	/// Short: fewer free buffers than this (0: the reserve).
	std::uint64_t low_buffers = 0;
	/// And at least this many log entries since the last reclaim (writes
	/// that may have superseded values); 0: no such condition.
	std::uint64_t min_new_entries = 0;
	/// And only when trimmed stream records hold buffers
	/// (KvStore::reclaimable() > 0).
	bool only_trimmed = false;
	/// At most one reclaim per `gap`, none for `backoff` after a failed one.
	std::chrono::milliseconds gap{0};
	std::chrono::milliseconds backoff{0};
};

class StoreCore {
public:
	/// `prog` names the service in messages; below `reserve` free buffers
	/// writes are refused (is_full()), and the cleaner takes one of them
	/// only for a cycle that frees more than it takes, never the last half
	/// (CleanerOptions::keep_free; default: pmem::service_reserve()).
	StoreCore(const char* prog, pmem::KvStore& kv, pmem::BufferAllocator& alloc, std::uint32_t reserve,
		  const ReclaimPolicy& policy) noexcept
	    : prog_(prog), kv_(kv), alloc_(alloc), reserve_(reserve), policy_(policy)
	{
		kv_.set_cleaner_keep_free(reserve_);
	}

	/// Pipelined commit (the pool has a flusher: Pool::start_flusher()):
	/// end_of_pass() begins the pass's commit (KvStore::commit_begin())
	/// instead of waiting for it; the service returns commit_ticket() etc.
	/// to the loop, which holds the pass's replies until durable(). Only
	/// for a service that does (daxnet-kv).
	void set_pipelined(bool on) noexcept { pipelined_ = on; }
	bool pipelined() const noexcept { return pipelined_; }
	/// The commit the last end_of_pass() began, when not durable yet
	/// (0: the pass's replies may go).
	std::uint64_t commit_ticket() const noexcept
	{
		return pass_ticket_ && !durable(pass_ticket_) ? pass_ticket_ : 0;
	}
	bool durable(std::uint64_t ticket) const noexcept
	{
		return kv_.pool().domain().durable_ticket() >= ticket;
	}
	int durable_fd() const noexcept { return pipelined_ ? kv_.pool().domain().completion_fd() : -1; }
	void wait_durable() noexcept { kv_.pool().domain().drain_wait_all(); }

	/// A write was staged in this pass: end_of_pass() commits it.
	void staged() noexcept { staged_ = true; }
	/// End of an event-loop pass, before any reply goes out: a cleaner
	/// step, one commit for the pass's writes (also when only a pending
	/// checkpoint needs a step), then reclaim_if_short(). Returns true
	/// when it committed.
	bool end_of_pass() noexcept;
	/// Background work pending (an incremental checkpoint): the loop runs
	/// more passes without waiting.
	bool busy() const noexcept { return kv_.checkpoint_pending(); }

	/// Fewer than reserve() buffers are free: writes are refused so that
	/// reads and the transport keep working. Does no work.
	bool is_full() const noexcept { return alloc_.free_count() < reserve_; }
	std::uint32_t reserve() const noexcept { return reserve_; }
	void set_reserve(std::uint32_t reserve) noexcept
	{
		reserve_ = reserve;
		kv_.set_cleaner_keep_free(reserve);
	}
	/// Starts reclaiming (an incremental checkpoint, advanced by later
	/// passes; never a whole one inside a request) when the pool is short
	/// by the policy. docs/wal-format.md §Capacity.
	void reclaim_if_short() noexcept;

	/// Runs `op` (a store write: 0 / count or -errno); when it fails with
	/// -ENOSPC, checkpoints whole once (the log's room comes back) and runs
	/// it again. For writes that free space (a trim), which must not be
	/// refused for want of log room.
	template <class Op> auto retry_after_checkpoint(Op&& op)
	{
		auto rc = op();
		if (rc == -ENOSPC && kv_.checkpoint() == 0) {
			++retries_;
			rc = op();
		}
		return rc;
	}

	/// commits, reclaim_checkpoints, reclaim_failures, checkpoint_retries.
	void add_metrics(Metrics& m) const;
	std::uint64_t commits() const noexcept { return commits_; }

private:
	const char* prog_;
	pmem::KvStore& kv_;
	pmem::BufferAllocator& alloc_;
	std::uint32_t reserve_;
	ReclaimPolicy policy_;
	bool staged_ = false;
	bool pipelined_ = false;
	std::uint64_t pass_ticket_ = 0;  ///< commit begun by the last end_of_pass (pipelined)
	std::uint64_t commits_ = 0;
	std::uint64_t reclaims_ = 0;
	std::uint64_t reclaim_failures_ = 0;
	std::uint64_t retries_ = 0;
	std::uint64_t last_reclaim_seq_ = 0;
	std::chrono::steady_clock::time_point next_reclaim_{};
};

}  // namespace daxnet::svc
