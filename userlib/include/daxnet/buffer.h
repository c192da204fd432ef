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
// it. Ports of several threads sharing one pool need a thread-safe source
// (or one allocator per thread over disjoint buffer ranges); the adapter
// below is single-threaded, like BufferAllocator.
#pragma once

#include <cstdint>
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
