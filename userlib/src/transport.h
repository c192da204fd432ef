// SPDX-License-Identifier: BSD-2-Clause
//
// The internal transport interface: one implementation per transport
// (kernel, uring, epoll). A transport plays "the kernel" of docs/abi.md:
// it owns a region laid out exactly as daxnet.h describes (the kernel
// transport mmaps it from /dev/daxnet; the user-space transports allocate
// it), and its sync() obeys every ring rule of the ABI. Port does the
// user-space half (walking slots, buffer references, spare refill).
//
// The kernel transport (transport_kernel.cpp) opens DAXNET_DEVICE, REGISTERs
// the pool, mmaps the region and maps ATTACH/DETACH/SYNC/COUNTERS onto the
// module's ioctls; its fd() is the port fd. The user-space transports share
// the ring emulation in user_transport.cpp. HACKING.md says how to add one.
#pragma once

#include <linux/daxnet.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "daxnet/pmem/pool.h"
#include "daxnet/port.h"
#include "daxnet/result.h"

namespace daxnet::detail {

struct TransportConfig {
	pmem::PoolView pool;           ///< buffer area = pool.buffer_area()
	std::uint32_t pairs = 1;
	std::uint32_t rx_slots = 1024;
	std::uint32_t tx_slots = 1024;
	std::uint32_t spare_slots = 256;
	std::uint32_t max_conns = 1024;
	std::uint32_t reg_flags = 0;   ///< DAXNET_REG_*
};

class Transport {
public:
	virtual ~Transport() = default;

	virtual TransportKind kind() const noexcept = 0;
	/// Base of the region (struct daxnet_region at offset 0), valid for the
	/// transport's lifetime.
	virtual std::byte* region() const noexcept = 0;

	/// DAXNET_IOC_ATTACH semantics; returns the conn id.
	virtual Result<std::uint32_t> attach(int fd, std::uint32_t pair, std::uint64_t cookie) = 0;
	/// DAXNET_IOC_DETACH semantics (flags: DAXNET_DETACH_*).
	virtual Status detach(std::uint32_t conn, std::uint32_t flags) = 0;
	/// DAXNET_IOC_SYNC semantics: 0 or -errno. Never blocks.
	virtual int sync(std::uint32_t pair, std::uint32_t flags) noexcept = 0;
	/// Pollable fd: readable when a sync would make progress.
	virtual int fd() const noexcept = 0;
	/// True when a sync would make progress without waiting (work the
	/// transport has buffered itself, e.g. events waiting for RX room).
	virtual bool has_pending() const noexcept = 0;
	/// Counters of `pair` or all pairs (DAXNET_RING_ALL).
	virtual RingCounters counters(std::uint32_t pair) const noexcept = 0;
	/// What `conn` has queued for TX inside the transport (Port::tx_queued);
	/// zeros when the transport cannot tell.
	virtual TxQueued tx_queued(std::uint32_t /*conn*/) const noexcept { return {}; }
};

/// One factory per transport. Each fails with a clear Error when the
/// transport cannot work here (ENODEV: no /dev/daxnet; ENOSYS/EINVAL:
/// io_uring or provided buffer rings unavailable).
Result<std::unique_ptr<Transport>> make_kernel_transport(const TransportConfig& cfg);
/// `for_auto`: refuse (ENOTSUP) a ring without task work free of
/// interrupts (kernel < 5.19: no IORING_SETUP_COOP_TASKRUN), where io_uring
/// costs more per request than epoll; `auto` then takes epoll.
Result<std::unique_ptr<Transport>> make_uring_transport(const TransportConfig& cfg, bool for_auto = false);
Result<std::unique_ptr<Transport>> make_epoll_transport(const TransportConfig& cfg);

/// The one place a TransportKind becomes a transport (auto resolved here).
Result<std::unique_ptr<Transport>> make_transport(TransportKind kind, const TransportConfig& cfg);

// ---- region helpers (both sides) ---------------------------------------

inline daxnet_region* region_header(std::byte* base) noexcept
{
	return reinterpret_cast<daxnet_region*>(base);
}
inline daxnet_pair_desc* region_pair(std::byte* base, std::uint32_t pair) noexcept
{
	return reinterpret_cast<daxnet_pair_desc*>(base + region_header(base)->pairs_ofs) + pair;
}
inline daxnet_ring* region_ring(std::byte* base, std::uint64_t ofs) noexcept
{
	return reinterpret_cast<daxnet_ring*>(base + ofs);
}
inline daxnet_slot* ring_slots(std::byte* base, const daxnet_ring* r) noexcept
{
	return reinterpret_cast<daxnet_slot*>(base + r->slots_ofs);
}
inline std::uint32_t* ring_indices(std::byte* base, const daxnet_ring* r) noexcept
{
	return reinterpret_cast<std::uint32_t*>(base + r->slots_ofs);
}

}  // namespace daxnet::detail
