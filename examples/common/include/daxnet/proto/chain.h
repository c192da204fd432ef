// SPDX-License-Identifier: BSD-2-Clause
//
// A connection's received bytes as a chain of slices.
//
// Every byte a connection receives has a stream offset: its position since
// the connection opened. The parsers (resp.h, http.h) see bytes one slice at
// a time and describe what they found as StreamRanges — offsets, never
// pointers — so a request may span any number of RX slots (a 1 MiB value
// spans 256 buffers of 4 KiB) and nothing is copied to be parsed.
//
// SliceChain keeps the slices a connection still needs (those holding a
// request not yet fully handled, or a value kept by the index) and maps a
// StreamRange back to memory:
//   pieces()     the (slice, offset, length) pieces of a range: what a value
//                reference is built from, zero-copy;
//   contiguous() a pointer when the range sits inside one slice;
//   gather()     copies a range into a caller's scratch buffer — for small
//                things only (keys, numbers) that straddle a slice boundary.
//
// Pure data structure: no I/O, no locking (one connection, one thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

namespace daxnet::proto {

/// Part of a connection's byte stream: `len` bytes starting at stream offset `off`.
struct StreamRange {
	std::uint64_t off = 0;
	std::uint64_t len = 0;

	std::uint64_t end() const noexcept { return off + len; }
	bool operator==(const StreamRange&) const = default;
};

/// One received slice held in memory. `buf` / `buf_off` name where it lives
/// in the pool (an RX slot's buffer index and offset); the chain never
/// interprets them, it hands them back in pieces().
struct RxSlice {
	std::uint64_t stream_off = 0;  ///< stream offset of data[0]
	const std::byte* data = nullptr;
	std::uint32_t len = 0;
	std::uint32_t buf = 0;      ///< pool buffer index (opaque here)
	std::uint32_t buf_off = 0;  ///< offset of data[0] inside that buffer

	std::uint64_t stream_end() const noexcept { return stream_off + len; }
};

/// A piece of a range inside one slice.
struct Piece {
	const RxSlice* slice = nullptr;
	std::uint32_t off = 0;  ///< offset inside slice->data
	std::uint32_t len = 0;

	const std::byte* data() const noexcept { return slice->data + off; }
	std::uint32_t buf() const noexcept { return slice->buf; }
	std::uint32_t buf_off() const noexcept { return slice->buf_off + off; }
};

/// FIFO of slices in stream order, contiguous in stream offsets. A ring over
/// a vector whose capacity only grows (no allocation in steady state).
class SliceChain {
public:
	SliceChain() { ring_.resize(8); }

	bool empty() const noexcept { return count_ == 0; }
	std::size_t size() const noexcept { return count_; }
	/// Stream offset one past the last byte held (the next slice's offset).
	std::uint64_t end() const noexcept { return end_; }
	/// Stream offset of the first byte held (== end() when empty).
	std::uint64_t begin() const noexcept { return count_ ? at(0).stream_off : end_; }
	std::uint64_t bytes() const noexcept { return end() - begin(); }

	const RxSlice& at(std::size_t i) const noexcept { return ring_[(head_ + i) & (ring_.size() - 1)]; }
	const RxSlice& front() const noexcept { return at(0); }
	const RxSlice& back() const noexcept { return at(count_ - 1); }

	/// Appends a slice of `len` bytes; its stream offset is end(). Returns it.
	const RxSlice& push(const std::byte* data, std::uint32_t len, std::uint32_t buf, std::uint32_t buf_off)
	{
		if (count_ == ring_.size())
			grow();
		RxSlice& s = ring_[(head_ + count_) & (ring_.size() - 1)];
		s = RxSlice{end_, data, len, buf, buf_off};
		++count_;
		end_ += len;
		return s;
	}

	/// Restarts an empty chain at stream offset `start` (after compaction).
	void rebase(std::uint64_t start) noexcept
	{
		if (count_ == 0)
			end_ = start;
	}

	/// An empty chain gives back the ring a long request grew (a 16 MiB
	/// value spans 4096 slices).
	void shrink()
	{
		if (count_ == 0 && ring_.size() > 64) {
			std::vector<RxSlice>(8).swap(ring_);
			head_ = 0;
		}
	}

	/// Removes the front slice (the caller releases its buffer).
	RxSlice pop() noexcept
	{
		RxSlice s = ring_[head_];
		head_ = (head_ + 1) & (ring_.size() - 1);
		--count_;
		return s;
	}

	/// Index of the slice holding stream offset `off`, or size() if none.
	std::size_t find(std::uint64_t off) const noexcept
	{
		// Chains are short and lookups go to the recent end; linear from
		// the back would also do, binary search keeps the worst case small.
		std::size_t lo = 0, hi = count_;
		while (lo < hi) {
			std::size_t mid = (lo + hi) / 2;
			const RxSlice& s = at(mid);
			if (off < s.stream_off)
				hi = mid;
			else if (off >= s.stream_end())
				lo = mid + 1;
			else
				return mid;
		}
		return count_;
	}

	/// Calls fn(const Piece&) for each piece of `r` in order. Returns false
	/// (calling nothing) when `r` is not entirely held.
	template <class Fn>
	bool pieces(StreamRange r, Fn&& fn) const
	{
		if (r.len == 0)
			return true;
		if (r.off < begin() || r.end() > end())
			return false;
		std::size_t i = find(r.off);
		std::uint64_t pos = r.off;
		while (pos < r.end()) {
			const RxSlice& s = at(i++);
			auto off = static_cast<std::uint32_t>(pos - s.stream_off);
			std::uint64_t n = s.len - off;
			if (n > r.end() - pos)
				n = r.end() - pos;
			if (n != 0)
				fn(Piece{&s, off, static_cast<std::uint32_t>(n)});
			pos += n;
		}
		return true;
	}

	/// Pointer to `r` when it lies inside one slice, else nullptr.
	const std::byte* contiguous(StreamRange r) const noexcept
	{
		if (r.off < begin() || r.end() > end())
			return nullptr;
		std::size_t i = find(r.off);
		if (i == count_) {
			// an empty range at end()
			return r.len == 0 && count_ ? back().data + back().len : nullptr;
		}
		const RxSlice& s = at(i);
		if (r.end() > s.stream_end())
			return nullptr;
		return s.data + (r.off - s.stream_off);
	}

	/// Copies `r` into `dst` (which must hold r.len bytes). Returns false
	/// when `r` is not entirely held or dst is too small.
	bool gather(StreamRange r, std::span<std::byte> dst) const noexcept
	{
		if (dst.size() < r.len)
			return false;
		std::size_t at_ = 0;
		return pieces(r, [&](const Piece& p) {
			std::memcpy(dst.data() + at_, p.data(), p.len);
			at_ += p.len;
		});
	}

	/// `r` as a string_view: in place when contiguous, else gathered into
	/// `scratch` (resized as needed; keep r small). Empty view on failure.
	std::string_view view(StreamRange r, std::vector<char>& scratch) const
	{
		if (const std::byte* p = contiguous(r))
			return {reinterpret_cast<const char*>(p), r.len};
		if (r.off < begin() || r.end() > end())
			return {};
		if (scratch.size() < r.len)
			scratch.resize(r.len);
		(void)gather(r, std::as_writable_bytes(std::span<char>(scratch.data(), r.len)));
		return {scratch.data(), r.len};
	}

private:
	void grow()
	{
		std::vector<RxSlice> n(ring_.size() * 2);
		for (std::size_t i = 0; i < count_; ++i)
			n[i] = at(i);
		ring_ = std::move(n);
		head_ = 0;
	}

	std::vector<RxSlice> ring_;
	std::size_t head_ = 0;
	std::size_t count_ = 0;
	std::uint64_t end_ = 0;
};

}  // namespace daxnet::proto
