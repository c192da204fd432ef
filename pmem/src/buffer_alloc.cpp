// SPDX-License-Identifier: BSD-2-Clause
//
// Buffer reference counts and free list (docs/wal-format.md §Buffer lifetime).
#include "daxnet/pmem/buffer_alloc.h"

#include <cstring>

namespace daxnet::pmem {

BufferAllocator::BufferAllocator(std::uint32_t count)
{
	reset(count);
}

void BufferAllocator::reset(std::uint32_t count)
{
	refs_.assign(count, 0);
	on_stack_.assign(count, 1);
	free_.resize(count);
	// Lowest index on top: fresh pools hand out buffer 0, 1, 2, ...
	for (std::uint32_t i = 0; i < count; i++)
		free_[i] = count - 1 - i;
	nfree_ = count;
}

std::int64_t BufferAllocator::alloc() noexcept
{
	while (!free_.empty()) {
		const std::uint32_t b = free_.back();
		free_.pop_back();
		on_stack_[b] = 0;
		if (refs_[b] != 0)
			continue;  // taken by ref() while on the stack (recovery)
		refs_[b] = 1;
		nfree_--;
		return b;
	}
	return -ENOSPC;
}

void BufferAllocator::ref(std::uint32_t b) noexcept
{
	if (refs_[b]++ == 0)
		nfree_--;
}

int BufferAllocator::unref(std::uint32_t b) noexcept
{
	if (refs_[b] == 0)
		return -EINVAL;
	if (--refs_[b] == 0) {
		nfree_++;
		if (!on_stack_[b]) {
			on_stack_[b] = 1;
			free_.push_back(b);
		}
	}
	return static_cast<int>(refs_[b]);
}

bool BufferAllocator::check() const
{
	std::size_t zero = 0;
	for (std::uint32_t b = 0; b < refs_.size(); b++) {
		if (refs_[b] == 0) {
			zero++;
			if (!on_stack_[b])
				return false;  // unreferenced but not allocatable
		}
	}
	std::vector<std::uint8_t> seen(refs_.size(), 0);
	for (auto b : free_) {
		if (seen[b]++)
			return false;  // twice on the free list
		if (!on_stack_[b])
			return false;
	}
	return zero == nfree_;
}

ScratchArena::~ScratchArena()
{
	release();
}

void ScratchArena::release() noexcept
{
	if (cur_ >= 0)
		alloc_->unref(static_cast<std::uint32_t>(cur_));
	cur_ = -1;
	used_ = 0;
}

int ScratchArena::write(std::span<const std::byte> bytes, Slice& out) noexcept
{
	const std::uint32_t bsize = pool_.buffer_size();
	if (bytes.size() > bsize)
		return -EMSGSIZE;
	const auto n = static_cast<std::uint32_t>(bytes.size());
	if (cur_ < 0 || bsize - used_ < n) {
		const std::int64_t b = alloc_->alloc();
		if (b < 0)
			return static_cast<int>(b);
		release();
		cur_ = b;
	}
	const auto b = static_cast<std::uint32_t>(cur_);
	if (n)
		std::memcpy(pool_.buffer(b) + used_, bytes.data(), n);
	out = Slice{b, used_, n};
	used_ += n;
	return 0;
}

}  // namespace daxnet::pmem
