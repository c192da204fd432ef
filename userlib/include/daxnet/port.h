// SPDX-License-Identifier: BSD-2-Clause
//
// daxnet::Port - the application's view of the ring ABI (docs/abi.md).
//
// A Port is opened on a pool with N ring pairs and one transport:
//   kernel  daxnet.ko behind /dev/daxnet (one ioctl per sync)
//   uring   io_uring: multishot recv into pool buffers, batched sends
//           (at most one io_uring_enter per sync and ring pair)
//   epoll   epoll_wait + recv into pool buffers + writev (the baseline)
//   automatic  kernel if /dev/daxnet exists, else uring if the kernel has
//              IORING_SETUP_COOP_TASKRUN (5.19+), else epoll
// All three fill the same slots with the same flags in the same order.
//
// Threading: a Port belongs to one thread (one port per thread, each with
// its own rings, is the multi-core model; see net.h for SO_REUSEPORT).
// Ports of several threads on one pool take buffers from one
// SharedBufferSource through a LocalBufferSource each (buffer.h).
//
// Event loop:
//
//	for (;;) {
//		port.wait(-1);                       // or busy-poll: skip it
//		port.sync();                         // TX + RX for every connection
//		for (; port.rx_ready(); port.rx_pop()) {
//			const daxnet_slot& s = port.rx_front();
//			if (s.flags & DAXNET_SLOT_DATA)
//				on_data(s.conn, port.payload(s));   // in place, no copy
//			if (s.flags & (DAXNET_SLOT_EOF | DAXNET_SLOT_ERROR))
//				on_close(s.conn);
//		}
//	}
//
// Buffers: the Port takes fresh buffers from the application's BufferSource
// (buffer.h) for the spare ring and reports every reference it takes or
// drops. A payload stays valid until rx_pop() unless kept (keep()).
//
// Errors: setup calls return Result; hot-path calls are noexcept and return
// counts or negative errno values.
#pragma once

#include <linux/daxnet.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "daxnet/buffer.h"
#include "daxnet/pmem/pool.h"
#include "daxnet/result.h"

namespace daxnet {

enum class TransportKind : std::uint8_t { automatic, kernel, uring, epoll };

std::string_view to_string(TransportKind k) noexcept;
/// "auto", "kernel", "uring", "epoll".
Result<TransportKind> parse_transport(std::string_view name);

struct PortOptions {
	TransportKind transport = TransportKind::automatic;
	std::uint32_t pairs = 1;           ///< ring pairs (1..DAXNET_MAX_PAIRS)
	std::uint32_t rx_slots = 1024;
	std::uint32_t tx_slots = 1024;
	std::uint32_t spare_slots = 256;   ///< spare ring entries per pair
	std::uint32_t max_conns = 1024;    ///< per port
	bool zerocopy = false;             ///< kernel transport: DAXNET_REG_ZEROCOPY
	bool busy_poll = false;            ///< wait() never sleeps: the loop spins on sync()
};

/// Per ring pair; sums over pairs for DAXNET_RING_ALL. Counts since open.
struct RingCounters {
	std::uint64_t syscalls = 0;     ///< syscalls made by sync() (incl. the sync itself)
	std::uint64_t syncs = 0;
	std::uint64_t rx_slots = 0;     ///< RX slots published (all kinds)
	std::uint64_t rx_bytes = 0;
	std::uint64_t tx_slots = 0;     ///< TX slots consumed
	std::uint64_t tx_bytes = 0;     ///< payload bytes handed to TCP
	std::uint64_t cpu_copied = 0;   ///< bytes copied by the CPU (kernel or user), RX + TX
	std::uint64_t rx_ring_full = 0; ///< reads stopped: RX ring full
	std::uint64_t spare_empty = 0;  ///< reads stopped: no spare buffer
	std::uint64_t tx_held = 0;      ///< TX slots returned with BUF_HELD
	std::uint64_t releases = 0;     ///< RELEASE slots published
	std::uint64_t bad = 0;          ///< bad ring indices + bad TX slots + refused buffer indices (bad_buf)
	// Kernel transport in zero-copy mode (Port::zerocopy()); zero otherwise.
	std::uint64_t rx_zc_bytes = 0;   ///< RX bytes published in place (never copied)
	std::uint64_t rx_copy_head = 0;  ///< RX bytes copied: TCP left them in an skb head
	std::uint64_t rx_copy_other = 0; ///< RX bytes copied: not in a vnic-filled buffer
	std::uint64_t tx_zc_bytes = 0;   ///< TX bytes handed to TCP by reference
	std::uint64_t tx_zc_batches = 0; ///< zero-copy TX batches completed
	std::uint64_t tx_zc_early = 0;   ///< batches completed before their ACK (held until it)

	RingCounters& operator+=(const RingCounters& o) noexcept;
};

/// What one connection has queued for TX and not yet handed to TCP
/// (Port::tx_queued): the service's view for output limits and fairness.
struct TxQueued {
	std::uint64_t bytes = 0;  ///< payload bytes of slots not yet fully sent
	std::uint32_t slots = 0;  ///< TX slots (with or without a buffer) not yet done
};

namespace detail {
class Transport;
}

class Port {
public:
	/// Opens a port over `pool` (not owned; must outlive the Port) taking
	/// buffers from `src` (not owned; must outlive the Port).
	static Result<Port> open(const pmem::PoolView& pool, BufferSource& src, const PortOptions& opt = {});

	Port(Port&&) noexcept;
	Port& operator=(Port&&) noexcept;
	~Port();

	TransportKind transport() const noexcept;
	/// True when the kernel transport runs this port in zero-copy mode
	/// (PortOptions::zerocopy asked for it and daxnet.ko accepted it).
	bool zerocopy() const noexcept;
	std::uint32_t pairs() const noexcept;
	const pmem::PoolView& pool() const noexcept { return pool_; }
	BufferSource& source() const noexcept { return *src_; }

	// ---- setup path ----------------------------------------------------

	/// Attaches a connected TCP socket to ring pair `pair`; the Port does
	/// not take ownership of `fd` (the application closes it after detach).
	/// Errors: EBADF, ENOTSOCK, EPROTONOSUPPORT (not TCP), ENOTCONN
	/// (listening / unconnected), EBUSY (already attached), ENOSPC, EINVAL.
	Result<std::uint32_t> attach(int fd, std::uint32_t pair = 0, std::uint64_t cookie = 0);
	/// Detaches `conn`. Queued TX bytes are flushed first (syncing for at
	/// most `flush_timeout_ms`, then EBUSY) unless `discard`. Without
	/// `discard` no received byte is lost: bytes still in the socket stay
	/// there (read them from the fd afterwards); bytes a user-space
	/// transport already took from the socket are published as RX slots
	/// before detach returns (drain rx_ready() after it). If the RX ring has
	/// no room for them, detach fails with EBUSY once `flush_timeout_ms`
	/// passes, the connection stays attached but reads nothing more:
	/// release RX slots and call detach again.
	Status detach(std::uint32_t conn, bool discard = false, int flush_timeout_ms = 1000);

	// ---- hot path --------------------------------------------------------

	/// One call: TX then RX for every connection of `pair` (or all pairs):
	/// refills the spare ring, hands over TX slots, publishes RX slots.
	/// Returns the number of RX slots ready on the synced pairs, or -errno.
	int sync(std::uint32_t pair = DAXNET_RING_ALL) noexcept;
	/// The same with DAXNET_SYNC_* flags: DAXNET_SYNC_TX moves only TX
	/// (and takes spares), DAXNET_SYNC_RX only RX (and takes spares), 0
	/// both. Returns the RX slots ready, or -errno.
	int sync(std::uint32_t pair, std::uint32_t flags) noexcept;
	/// Blocks until a sync would make progress or `timeout_ms` passes
	/// (-1: forever). Returns >0 ready, 0 timeout, -errno.
	int wait(int timeout_ms) noexcept;
	/// A fd for the application's own poll/epoll loop (readable when a
	/// sync would make progress). Owned by the Port.
	int fd() const noexcept;

	/// RX: slots [head, tail) of `pair`.
	std::uint32_t rx_ready(std::uint32_t pair = 0) const noexcept;
	const daxnet_slot& rx_front(std::uint32_t pair = 0) const noexcept;
	/// The i-th ready slot (0 = front), i < rx_ready().
	const daxnet_slot& rx_at(std::uint32_t i, std::uint32_t pair = 0) const noexcept;
	/// Releases the front slot (drops its buffer reference unless kept).
	void rx_pop(std::uint32_t pair = 0) noexcept;
	/// Keeps the front slot's buffer beyond rx_pop(): swaps a spare into the
	/// slot (BUF_CHANGED) when the source has one, else takes a reference.
	/// Empty lease when the slot names no buffer.
	BufferLease keep(std::uint32_t pair = 0) noexcept;

	std::span<const std::byte> payload(const daxnet_slot& s) const noexcept
	{
		return {pool_.buffer(s.buf_idx) + s.offset, s.len};
	}
	std::byte* buffer(std::uint32_t idx) const noexcept { return pool_.buffer(idx); }

	/// TX: free slots of `pair`.
	std::uint32_t tx_space(std::uint32_t pair = 0) const noexcept;
	/// Queues [off, off+len) of buffer `buf` (any pool buffer: fresh, kept,
	/// a slice) on `conn`; sent by the next sync. The Port takes the
	/// kernel's reference itself: the caller keeps its own. flags:
	/// DAXNET_SLOT_DATA and/or DAXNET_SLOT_EOF. Returns 0, -ENOSPC (TX ring
	/// full: sync first), -EINVAL (bad range).
	int tx_push(std::uint32_t conn, std::uint32_t buf, std::uint32_t off, std::uint32_t len,
		    std::uint32_t pair = 0, std::uint16_t flags = DAXNET_SLOT_DATA, std::uint64_t user_data = 0) noexcept;
	/// Copies `bytes` into fresh buffers and queues them (counted as CPU
	/// copies). Returns bytes queued (maybe fewer than asked: TX ring full
	/// or no free buffer; sync and retry the rest), or -ENOSPC/-ENOBUFS
	/// when nothing could be queued.
	long send_copy(std::uint32_t conn, std::span<const std::byte> bytes, std::uint32_t pair = 0) noexcept;
	/// Per-connection send accounting: what `conn` has queued in the
	/// transport (consumed from the TX ring, not yet fully handed to TCP).
	/// A peer that does not read keeps it from shrinking. The user-space
	/// transports count exactly and queue at least kTxSlotsPerConn slots
	/// per connection beyond 4 x tx_slots in all (so a connection that
	/// keeps its queue within that share never finds the queue full
	/// because of others); the kernel transport reads the connection's
	/// entry of the state table (DAXNET_REG_CONNSTATE, docs/abi.md) as of
	/// the last sync, no syscall: the slots and bytes daxnet.ko queued
	/// because the socket could not take them (in zero-copy mode plus
	/// the bytes TCP holds by reference until ACKed); zeros with a module
	/// that has no such table.
	TxQueued tx_queued(std::uint32_t conn) const noexcept;
	static constexpr std::uint32_t kTxSlotsPerConn = 4;
	/// Queues shutdown(SHUT_WR) after everything queued before on `conn`.
	int shutdown_write(std::uint32_t conn, std::uint32_t pair = 0) noexcept;
	/// A fresh buffer (count 1, the lease's), empty when none is free.
	BufferLease alloc() noexcept;

	/// Escape hatch: the shared ring of `kind` (DAXNET_RING_RX/TX/SPARE) of
	/// `pair`, for tools and tests; writing it bypasses every Port rule.
	daxnet_ring* raw_ring(std::uint32_t pair, std::uint32_t kind) const noexcept;

	/// Transport + port counters for `pair` or all (DAXNET_RING_ALL).
	RingCounters counters(std::uint32_t pair = DAXNET_RING_ALL) const noexcept;

private:
	struct PairState;
	Port(const pmem::PoolView& pool, BufferSource& src, std::unique_ptr<detail::Transport> t);
	void after_sync(std::uint32_t pair) noexcept;
	void refill_spares(std::uint32_t pair) noexcept;

	pmem::PoolView pool_;
	BufferSource* src_ = nullptr;
	std::unique_ptr<detail::Transport> t_;
	std::unique_ptr<PairState[]> pairs_;
	std::unique_ptr<std::uint32_t[]> kref_;  ///< mirror of K(b), docs/abi.md
	std::uint32_t npairs_ = 0;
	bool busy_poll_ = false;
};

}  // namespace daxnet
