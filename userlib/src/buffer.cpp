// SPDX-License-Identifier: BSD-2-Clause
//
// SharedBufferSource / LocalBufferSource (buffer.h): a thread-safe buffer
// source for several Ports sharing one pool.
//
// Invariant: the allocator holds exactly one reference for the source per
// 0 -> 1 transition of a source count that has not yet been matched by a
// 1 -> 0 transition whose hold was dropped, plus one per buffer waiting in
// a local fresh batch. Transitions are counted, not states, so a buffer
// parked in a dead batch and ref()ed again (0 -> 1) simply takes a second
// hold; flushing the batch drops the first.
#include "daxnet/buffer.h"

#include <algorithm>

namespace daxnet {

SharedBufferSource::SharedBufferSource(pmem::BufferAllocator& a)
    : a_(&a), refs_(std::make_unique<std::atomic<std::uint32_t>[]>(a.count()))
{
	for (std::uint32_t i = 0; i < a.count(); i++)
		refs_[i].store(0, std::memory_order_relaxed);
}

bool SharedBufferSource::take(std::uint32_t& idx) noexcept
{
	std::int64_t b;
	{
		std::lock_guard lk(mu_);
		b = a_->alloc();
	}
	if (b < 0)
		return false;
	idx = static_cast<std::uint32_t>(b);
	refs_[idx].store(1, std::memory_order_relaxed);
	return true;
}

void SharedBufferSource::ref(std::uint32_t idx) noexcept
{
	if (refs_[idx].fetch_add(1, std::memory_order_relaxed) == 0) {
		// Only someone else (the allocator's other users) held it.
		std::lock_guard lk(mu_);
		a_->ref(idx);
	}
}

void SharedBufferSource::unref(std::uint32_t idx) noexcept
{
	if (refs_[idx].fetch_sub(1, std::memory_order_acq_rel) == 1)
		last_unref(idx);
}

void SharedBufferSource::last_unref(std::uint32_t idx) noexcept
{
	std::lock_guard lk(mu_);
	a_->unref(idx);
}

std::uint32_t SharedBufferSource::alloc_batch(std::uint32_t* out, std::uint32_t n, const std::uint32_t* drop,
					      std::uint32_t ndrop) noexcept
{
	std::lock_guard lk(mu_);
	// Dropped first: the allocator's free stack hands the same (cache-
	// warm) buffers straight back.
	for (std::uint32_t i = 0; i < ndrop; i++)
		a_->unref(drop[i]);
	std::uint32_t got = 0;
	while (got < n) {
		std::int64_t b = a_->alloc();
		if (b < 0)
			break;
		out[got++] = static_cast<std::uint32_t>(b);
	}
	return got;
}

void SharedBufferSource::drop_batch(const std::uint32_t* in, std::uint32_t n) noexcept
{
	std::lock_guard lk(mu_);
	for (std::uint32_t i = 0; i < n; i++)
		a_->unref(in[i]);
}

LocalBufferSource::LocalBufferSource(SharedBufferSource& shared, std::uint32_t batch)
    : shared_(&shared), batch_(std::max<std::uint32_t>(1, batch)),
      fresh_(std::make_unique<std::uint32_t[]>(batch_)), dead_(std::make_unique<std::uint32_t[]>(batch_))
{
}

LocalBufferSource::~LocalBufferSource()
{
	flush();
}

bool LocalBufferSource::on_owner() noexcept
{
	std::thread::id me = std::this_thread::get_id();
	std::thread::id o = owner_.load(std::memory_order_relaxed);
	if (o == me)
		return true;
	if (o == std::thread::id{} && owner_.compare_exchange_strong(o, me, std::memory_order_relaxed))
		return true;
	return false;
}

bool LocalBufferSource::take(std::uint32_t& idx) noexcept
{
	if (!on_owner())
		return shared_->take(idx);
	if (nfresh_ == 0) {
		nfresh_ = shared_->alloc_batch(fresh_.get(), batch_, dead_.get(), ndead_);
		ndead_ = 0;
		if (nfresh_ == 0)
			return false;
	}
	idx = fresh_[--nfresh_];
	shared_->refs_[idx].store(1, std::memory_order_relaxed);
	return true;
}

void LocalBufferSource::unref(std::uint32_t idx) noexcept
{
	if (shared_->refs_[idx].fetch_sub(1, std::memory_order_acq_rel) != 1)
		return;
	if (owner_.load(std::memory_order_relaxed) != std::this_thread::get_id()) {
		shared_->last_unref(idx);
		return;
	}
	dead_[ndead_++] = idx;
	if (ndead_ == batch_) {
		shared_->drop_batch(dead_.get(), ndead_);
		ndead_ = 0;
	}
}

void LocalBufferSource::flush() noexcept
{
	shared_->drop_batch(dead_.get(), ndead_);
	ndead_ = 0;
	shared_->drop_batch(fresh_.get(), nfresh_);
	nfresh_ = 0;
}

}  // namespace daxnet
