// SPDX-License-Identifier: BSD-2-Clause
//
// Pool buffer ownership in DRAM (docs/wal-format.md §Buffer lifetime).
//
// Every buffer has a reference count; the free list is exactly the buffers
// whose count is zero. References are held by:
//   * the network layer: alloc() returns a buffer with count 1 (its hold);
//     it unref()s the buffer when it no longer needs it (after staging the
//     slices it keeps with the WAL, or at once if it kept nothing);
//   * the WAL: one per slice of every record in the live log window and of
//     every entry of the active checkpoint (taken and dropped by Wal);
//   * readers: a server transmitting a value straight from its buffers
//     ref()s them until the transmission completes.
// Nothing here is stored on media: recovery rebuilds the counts.
//
// Lock context: single-threaded, like the PersistDomain it is used with.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "daxnet/pmem/pool.h"

namespace daxnet::pmem {

/// A byte range inside one pool buffer: never crosses a buffer boundary.
struct Slice {
	std::uint32_t buf = 0;
	std::uint32_t off = 0;
	std::uint32_t len = 0;

	friend bool operator==(const Slice&, const Slice&) = default;
};

class BufferAllocator {
public:
	BufferAllocator() = default;
	/// `count` buffers, all free.
	explicit BufferAllocator(std::uint32_t count);

	/// Forgets every reference: all buffers free (used before recovery).
	void reset(std::uint32_t count);

	/// Takes a free buffer with count 1 (the caller's hold).
	/// Returns the buffer index, or -ENOSPC when none is free.
	std::int64_t alloc() noexcept;

	/// Adds a reference to buffer `b`, which must be valid. Taking a
	/// reference to a free buffer removes it from the free list (recovery
	/// does this).
	void ref(std::uint32_t b) noexcept;
	/// Drops one reference; the buffer returns to the free list at 0.
	/// Returns the new count, or -EINVAL when the count was already 0.
	int unref(std::uint32_t b) noexcept;

	std::uint32_t refcount(std::uint32_t b) const noexcept { return refs_[b]; }
	std::uint32_t count() const noexcept { return static_cast<std::uint32_t>(refs_.size()); }
	std::size_t free_count() const noexcept { return nfree_; }
	bool is_free(std::uint32_t b) const noexcept { return refs_[b] == 0; }

	/// Debug: the free list holds exactly the unreferenced buffers, once each.
	bool check() const;

private:
	std::vector<std::uint32_t> refs_;
	// Free buffers as a stack; a buffer taken by ref() (recovery) is removed
	// lazily: alloc() skips entries whose count is no longer 0.
	std::vector<std::uint32_t> free_;
	std::vector<std::uint8_t> on_stack_;
	std::size_t nfree_ = 0;
};

/// Packs small values the server writes itself (INCR results, generated
/// replies worth logging) into pool buffers it allocated: each write copies
/// the bytes into the current buffer and returns the Slice to hand to the
/// KV store. The arena holds one reference on its current buffer and drops
/// it when it moves on to a new one (or is destroyed); the WAL's own
/// references keep logged slices alive. Flushing is the WAL's job (it
/// flushes every staged slice in place).
class ScratchArena {
public:
	ScratchArena(const PoolView& pool, BufferAllocator& alloc) noexcept : pool_(pool), alloc_(&alloc) {}
	~ScratchArena();
	ScratchArena(const ScratchArena&) = delete;
	ScratchArena& operator=(const ScratchArena&) = delete;

	/// Copies `bytes` (at most one buffer) into a pool buffer. Returns 0 and
	/// fills `out`, -EMSGSIZE when larger than a buffer, -ENOSPC when no
	/// buffer is free.
	int write(std::span<const std::byte> bytes, Slice& out) noexcept;
	/// Drops the hold on the current buffer.
	void release() noexcept;

private:
	PoolView pool_;
	BufferAllocator* alloc_;
	std::int64_t cur_ = -1;
	std::uint32_t used_ = 0;
};

}  // namespace daxnet::pmem
