// SPDX-License-Identifier: BSD-2-Clause
//
// Where a Port gets pool buffers from, and how it gives them back.
//
// The application owns the pool. A Port never decides on its own that a
// buffer is free: it asks a BufferSource for fresh buffers (to put on the
// spare ring, for send_copy) and reports every reference it takes or drops.
// The counts follow the release rule of docs/abi.md: one count per buffer
// that is the sum of the user references (unreleased RX slots, kept
// leases, WAL references) and the kernel references (spares, handed-over TX
// slots, BUF_HELD slots). A buffer is free exactly when its count is 0.
//
//   take(idx)   a free buffer with count 1 (that reference goes to the caller)
//   ref(idx)    count + 1
//   unref(idx)  count - 1; at 0 the buffer is free again
//
// pmem::BufferAllocator has exactly these operations: AllocatorSource adapts
// it, single-threaded like BufferAllocator. Ports of several threads
// sharing one pool (one Port per thread, SO_REUSEPORT) use a
// SharedBufferSource over the allocator and one LocalBufferSource per
// thread (per Port) over that: see below.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include "daxnet/pmem/buffer_alloc.h"

namespace daxnet {

struct BufferSource {
	virtual ~BufferSource() = default;
	/// Takes a free buffer (count 1). False when none is free.
	virtual bool take(std::uint32_t& idx) noexcept = 0;
	virtual void ref(std::uint32_t idx) noexcept = 0;
	virtual void unref(std::uint32_t idx) noexcept = 0;
};

/// BufferSource over a pmem::BufferAllocator (not owned).
class AllocatorSource final : public BufferSource {
public:
	explicit AllocatorSource(pmem::BufferAllocator& a) noexcept : a_(&a) {}
	bool take(std::uint32_t& idx) noexcept override
	{
		std::int64_t b = a_->alloc();
		if (b < 0)
			return false;
		idx = static_cast<std::uint32_t>(b);
		return true;
	}
	void ref(std::uint32_t idx) noexcept override { a_->ref(idx); }
	void unref(std::uint32_t idx) noexcept override { a_->unref(idx); }
	pmem::BufferAllocator& allocator() const noexcept { return *a_; }

private:
	pmem::BufferAllocator* a_;
};

/// Thread-safe BufferSource over a pmem::BufferAllocator (not owned) that
/// several threads share. Every call may come from any thread.
///
/// Counting is two-level. The source keeps its own atomic count per
/// buffer (the references taken through it); the allocator sees a single
/// hold for a buffer whose source count is > 0 (taken when the count goes
/// 0 -> 1, by take() or by ref() of a buffer only someone else held, and
/// dropped when it goes back to 0). So ref/unref are one atomic operation;
/// the allocator, under a mutex, is touched only on those transitions.
/// Code that references buffers through the allocator directly (the WAL)
/// composes with this, but must then call it under the same lock:
/// with_allocator().
///
/// The hot path belongs to LocalBufferSource: per-thread batches of fresh
/// buffers and of buffers whose count reached 0, exchanged with the
/// allocator under one lock per batch.
class SharedBufferSource final : public BufferSource {
public:
	explicit SharedBufferSource(pmem::BufferAllocator& a);
	SharedBufferSource(const SharedBufferSource&) = delete;
	SharedBufferSource& operator=(const SharedBufferSource&) = delete;

	bool take(std::uint32_t& idx) noexcept override;
	void ref(std::uint32_t idx) noexcept override;
	void unref(std::uint32_t idx) noexcept override;

	/// References taken through this source (not the allocator's count).
	std::uint32_t refcount(std::uint32_t idx) const noexcept
	{
		return refs_[idx].load(std::memory_order_relaxed);
	}
	/// Runs f(allocator) under the source's lock: the only safe way to use
	/// the allocator directly while other threads use the source.
	template <class F>
	decltype(auto) with_allocator(F&& f)
	{
		std::lock_guard lk(mu_);
		return f(*a_);
	}

private:
	friend class LocalBufferSource;
	/// Allocator holds for up to n buffers into out; returns how many.
	std::uint32_t alloc_batch(std::uint32_t* out, std::uint32_t n, const std::uint32_t* drop,
				  std::uint32_t ndrop) noexcept;
	/// Drops the allocator holds of n buffers (source count 0).
	void drop_batch(const std::uint32_t* in, std::uint32_t n) noexcept;
	/// The source count of idx reached 0: drop the allocator hold.
	void last_unref(std::uint32_t idx) noexcept;

	pmem::BufferAllocator* a_;
	std::mutex mu_;
	std::unique_ptr<std::atomic<std::uint32_t>[]> refs_;
};

/// The per-thread face of a SharedBufferSource: give each Port its own.
/// On its owner thread (the first thread that calls take()) take() pops a
/// local batch of fresh buffers and a count reaching 0 parks the buffer in
/// a local batch; either batch meets the allocator under one lock per
/// `batch` buffers. From any other thread every call is still correct
/// (it goes to the SharedBufferSource), so a BufferLease may be dropped
/// anywhere. At most 2 * batch buffers wait in the batches; flush() (and
/// the destructor) gives them back. Not to be destroyed while in use.
class LocalBufferSource final : public BufferSource {
public:
	explicit LocalBufferSource(SharedBufferSource& shared, std::uint32_t batch = 64);
	~LocalBufferSource() override;
	LocalBufferSource(const LocalBufferSource&) = delete;
	LocalBufferSource& operator=(const LocalBufferSource&) = delete;

	bool take(std::uint32_t& idx) noexcept override;
	void ref(std::uint32_t idx) noexcept override { shared_->ref(idx); }
	void unref(std::uint32_t idx) noexcept override;

	/// Returns the batches to the allocator (owner thread, or when no
	/// thread uses the source).
	void flush() noexcept;
	/// Buffers waiting in the batches (fresh + released).
	std::uint32_t cached() const noexcept { return nfresh_ + ndead_; }
	SharedBufferSource& shared() const noexcept { return *shared_; }

private:
	bool on_owner() noexcept;

	SharedBufferSource* shared_;
	std::uint32_t batch_;
	std::atomic<std::thread::id> owner_{};
	std::unique_ptr<std::uint32_t[]> fresh_;  ///< allocator-held, source count 0
	std::unique_ptr<std::uint32_t[]> dead_;   ///< source count reached 0, hold not dropped yet
	std::uint32_t nfresh_ = 0;
	std::uint32_t ndead_ = 0;
};

/// One reference to one pool buffer, dropped on destruction (RAII).
class BufferLease {
public:
	static constexpr std::uint32_t kNone = 0xffffffffu;

	BufferLease() noexcept = default;
	/// Adopts a reference the caller already holds.
	BufferLease(BufferSource& src, std::uint32_t idx) noexcept : src_(&src), idx_(idx) {}
	BufferLease(BufferLease&& o) noexcept : src_(std::exchange(o.src_, nullptr)), idx_(std::exchange(o.idx_, kNone)) {}
	BufferLease& operator=(BufferLease&& o) noexcept
	{
		if (this != &o) {
			reset();
			src_ = std::exchange(o.src_, nullptr);
			idx_ = std::exchange(o.idx_, kNone);
		}
		return *this;
	}
	BufferLease(const BufferLease&) = delete;
	BufferLease& operator=(const BufferLease&) = delete;
	~BufferLease() { reset(); }

	explicit operator bool() const noexcept { return src_ != nullptr; }
	std::uint32_t index() const noexcept { return idx_; }
	/// A second, independent reference to the same buffer.
	BufferLease share() const noexcept
	{
		if (!src_)
			return {};
		src_->ref(idx_);
		return {*src_, idx_};
	}
	/// Gives up the reference without dropping it (caller now owns it).
	std::uint32_t release() noexcept
	{
		src_ = nullptr;
		return std::exchange(idx_, kNone);
	}
	void reset() noexcept
	{
		if (src_)
			src_->unref(idx_);
		src_ = nullptr;
		idx_ = kNone;
	}

private:
	BufferSource* src_ = nullptr;
	std::uint32_t idx_ = kNone;
};

}  // namespace daxnet
