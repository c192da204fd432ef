// SPDX-License-Identifier: BSD-2-Clause
//
// The kernel transport: daxnet.ko does the work. A port is one open file
// of /dev/daxnet; REGISTER pins the pool's buffer area and creates the
// rings, which are mapped from the port fd; ATTACH/DETACH/SYNC/COUNTERS
// are ioctls on it, and the fd itself is the pollable fd (docs/kernel.md).
// The port asks for the per-connection state table (DAXNET_REG_CONNSTATE)
// and answers tx_queued() from it without a syscall; a module without the
// table refuses the flag (EINVAL) and the port opens without it.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "daxnet/fd.h"
#include "transport.h"

namespace daxnet::detail {
namespace {

std::string errno_text(const char* what, int err)
{
	return std::string("kernel transport: ") + what + ": " + std::strerror(err);
}

class KernelTransport final : public Transport {
public:
	KernelTransport() = default;
	KernelTransport(const KernelTransport&) = delete;
	KernelTransport& operator=(const KernelTransport&) = delete;
	~KernelTransport() override
	{
		if (region_)
			::munmap(region_, region_size_);
		// Closing the port detaches every socket still attached.
	}

	Status init(const TransportConfig& cfg)
	{
		std::span<std::byte> area = cfg.pool.buffer_area();
		const std::uint32_t bs = cfg.pool.geometry().buffer_size;
		fd_.reset(::open(DAXNET_DEVICE, O_RDWR | O_CLOEXEC));
		if (!fd_) {
			int e = errno;
			return make_error(e == ENOENT ? ENODEV : e, errno_text("open " DAXNET_DEVICE, e));
		}
		daxnet_register r{};
		r.api_version = DAXNET_API;
		r.flags = cfg.reg_flags | DAXNET_REG_CONNSTATE;
		r.pool_addr = reinterpret_cast<std::uintptr_t>(area.data());
		r.pool_len = area.size();
		r.buf_size = bs;
		r.buf_count = bs ? static_cast<std::uint32_t>(area.size() / bs) : 0;
		r.num_pairs = cfg.pairs;
		r.rx_slots = cfg.rx_slots;
		r.tx_slots = cfg.tx_slots;
		r.spare_slots = cfg.spare_slots;
		r.max_conns = cfg.max_conns;
		int rc = ::ioctl(fd_.get(), DAXNET_IOC_REGISTER, &r);
		if (rc < 0 && errno == EINVAL && !(cfg.reg_flags & DAXNET_REG_CONNSTATE)) {
			// A module older than the table: the same port without it
			// (tx_queued() reports zeros then).
			r.flags = cfg.reg_flags;
			r.region_size = 0;
			rc = ::ioctl(fd_.get(), DAXNET_IOC_REGISTER, &r);
		}
		if (rc < 0) {
			int e = errno;
			return make_error(e, errno_text(e == EPROTO ? "REGISTER (daxnet.ko speaks another DAXNET_API)" : "REGISTER", e));
		}
		void* p = ::mmap(nullptr, r.region_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
		if (p == MAP_FAILED) {
			int e = errno;
			return make_error(e, errno_text("mmap of the ring region", e));
		}
		region_ = static_cast<std::byte*>(p);
		region_size_ = r.region_size;
		const daxnet_region* h = region_header(region_);
		if (region_size_ < sizeof(daxnet_region) || h->magic != DAXNET_REGION_MAGIC ||
		    h->api_version != DAXNET_API)
			return make_error(EPROTO, "kernel transport: region header has a wrong magic or API version");
		if (!layout_ok(cfg))
			return make_error(EPROTO, "kernel transport: the region's layout does not match the registered "
						  "geometry or leaves the mapping");
		// The layout is read once, here, before the application can touch
		// the mapping; nothing after this reads a kernel-owned field of it
		// (Port keeps its own copies of the ring sizes).
		for (std::uint32_t i = 0; i < cfg.pairs; i++) {
			tx_rings_.push_back(region_ring(region_, region_pair(region_, i)->tx_ofs));
			tx_synced_.push_back(0);
		}
		if (h->flags & DAXNET_REG_CONNSTATE) {
			cstate_ = reinterpret_cast<const daxnet_conn_state*>(region_ + h->conn_state_ofs);
			max_conns_ = h->max_conns;
		}
		zerocopy_ = (h->flags & DAXNET_REG_ZEROCOPY) != 0;
		return {};
	}

	TransportKind kind() const noexcept override { return TransportKind::kernel; }
	std::byte* region() const noexcept override { return region_; }

	Result<std::uint32_t> attach(int fd, std::uint32_t pair, std::uint64_t cookie) override
	{
		daxnet_attach a{};
		a.fd = fd;
		a.pair = pair;
		a.cookie = cookie;
		if (::ioctl(fd_.get(), DAXNET_IOC_ATTACH, &a) < 0) {
			int e = errno;
			return make_error(e, errno_text(attach_reason(e), e));
		}
		return a.conn;
	}

	Status detach(std::uint32_t conn, std::uint32_t flags) override
	{
		daxnet_detach d{};
		d.conn = conn;
		d.flags = flags;
		if (::ioctl(fd_.get(), DAXNET_IOC_DETACH, &d) < 0) {
			int e = errno;
			return make_error(e, errno_text(e == EBUSY ? "DETACH (TX bytes still queued)" : "DETACH", e));
		}
		return {};
	}

	int sync(std::uint32_t pair, std::uint32_t flags) noexcept override
	{
		daxnet_sync s{};
		s.pair = pair;
		s.flags = flags;
		// The TX heads this sync hands over (see has_pending()).
		for (std::uint32_t p = 0; p < tx_rings_.size(); p++)
			if (pair == DAXNET_RING_ALL || pair == p)
				tx_synced_[p] = __atomic_load_n(&tx_rings_[p]->head, __ATOMIC_RELAXED);
		syscalls_++;
		if (::ioctl(fd_.get(), DAXNET_IOC_SYNC, &s) < 0)
			return -errno;
		return 0;
	}

	int fd() const noexcept override { return fd_.get(); }
	// What the kernel has buffered shows in poll() on the port fd. What
	// only user space knows: TX slots handed over (head moved) since the
	// last sync, which a sync would send right away.
	bool has_pending() const noexcept override
	{
		for (std::uint32_t p = 0; p < tx_rings_.size(); p++)
			if (__atomic_load_n(&tx_rings_[p]->head, __ATOMIC_RELAXED) != tx_synced_[p])
				return true;
		return false;
	}

	// From the connection's entry of the state table, as of the last sync
	// of its pair: TX slots and bytes the kernel queued because the socket
	// could not take them. In zero-copy mode the bytes TCP took by
	// reference and the peer has not ACKed pin pool buffers too: counted.
	TxQueued tx_queued(std::uint32_t conn) const noexcept override
	{
		const std::uint32_t idx = DAXNET_CONN_INDEX(conn);
		if (!cstate_ || idx >= max_conns_)
			return {};
		const daxnet_conn_state& e = cstate_[idx];
		if (__atomic_load_n(&e.conn, __ATOMIC_RELAXED) != conn)
			return {};
		TxQueued q;
		q.slots = __atomic_load_n(&e.tx_slots, __ATOMIC_RELAXED);
		q.bytes = __atomic_load_n(&e.tx_bytes, __ATOMIC_RELAXED);
		if (zerocopy_)
			q.bytes += __atomic_load_n(&e.tx_unacked, __ATOMIC_RELAXED);
		return q;
	}

	RingCounters counters(std::uint32_t pair) const noexcept override
	{
		RingCounters r;
		daxnet_counters_arg a{};
		a.pair = pair;
		if (::ioctl(fd_.get(), DAXNET_IOC_COUNTERS, &a) < 0)
			return r;
		const daxnet_counters& c = a.c;
		r.syscalls = syscalls_;
		r.syncs = c.syncs;
		r.rx_slots = c.rx_slots;
		r.rx_bytes = c.rx_bytes;
		r.tx_slots = c.tx_slots;
		r.tx_bytes = c.tx_bytes;
		r.cpu_copied = c.rx_copied + c.tx_copied;
		r.rx_ring_full = c.rx_ring_full;
		r.spare_empty = c.spare_empty;
		r.tx_held = c.tx_held;
		r.releases = c.releases;
		r.bad = c.bad_ring + c.bad_slot + c.bad_buf;
		r.rx_zc_bytes = c.rx_zc_bytes;
		r.rx_copy_head = c.rx_copy_head;
		r.rx_copy_other = c.rx_copy_other;
		r.tx_zc_bytes = c.tx_zc_bytes;
		r.tx_zc_batches = c.tx_zc_batches;
		r.tx_zc_early = c.tx_zc_early;
		return r;
	}

private:
	/// True when every offset and size the kernel wrote into the region
	/// header, the pair descriptors and the ring headers matches what was
	/// registered and stays inside the mapping: Port and this transport
	/// index the mapping with them.
	bool layout_ok(const TransportConfig& cfg) const noexcept
	{
		const std::uint64_t size = region_size_;
		auto inside = [size](std::uint64_t ofs, std::uint64_t len) {
			return ofs % 8 == 0 && ofs <= size && len <= size - ofs;
		};
		const daxnet_region* h = region_header(region_);
		if (h->region_size != size || h->num_pairs != cfg.pairs ||
		    !inside(h->pairs_ofs, std::uint64_t{cfg.pairs} * sizeof(daxnet_pair_desc)))
			return false;
		const std::uint32_t max_conns = cfg.max_conns ? cfg.max_conns : 1024;  // REGISTER's default
		if ((h->flags & DAXNET_REG_CONNSTATE) &&
		    (h->max_conns != max_conns ||
		     !inside(h->conn_state_ofs, std::uint64_t{max_conns} * sizeof(daxnet_conn_state))))
			return false;
		for (std::uint32_t p = 0; p < cfg.pairs; p++) {
			const daxnet_pair_desc* d = region_pair(region_, p);
			const struct {
				std::uint64_t ofs;
				std::uint32_t kind, slots, slot_size;
			} want[3] = {
				{d->rx_ofs, DAXNET_RING_RX, cfg.rx_slots, sizeof(daxnet_slot)},
				{d->tx_ofs, DAXNET_RING_TX, cfg.tx_slots, sizeof(daxnet_slot)},
				{d->spare_ofs, DAXNET_RING_SPARE, cfg.spare_slots, sizeof(std::uint32_t)},
			};
			for (const auto& w : want) {
				if (!inside(w.ofs, sizeof(daxnet_ring)))
					return false;
				const daxnet_ring* r = region_ring(region_, w.ofs);
				if (r->kind != w.kind || r->pair != p || r->num_slots != w.slots ||
				    r->slot_size != w.slot_size || r->head >= w.slots || r->cur >= w.slots ||
				    r->tail >= w.slots ||
				    !inside(r->slots_ofs, std::uint64_t{w.slots} * w.slot_size))
					return false;
			}
		}
		return true;
	}

	static const char* attach_reason(int e) noexcept
	{
		switch (e) {
		case EPROTONOSUPPORT:
			return "ATTACH (not a TCP socket)";
		case ENOTCONN:
			return "ATTACH (socket not connected)";
		case EBUSY:
			return "ATTACH (socket already attached or owned)";
		case ENOSPC:
			return "ATTACH (max_conns reached)";
		default:
			return "ATTACH";
		}
	}

	UniqueFd fd_;
	std::vector<daxnet_ring*> tx_rings_;       // per pair
	std::vector<std::uint32_t> tx_synced_;     // TX head at the last sync, per pair
	std::byte* region_ = nullptr;
	std::size_t region_size_ = 0;
	const daxnet_conn_state* cstate_ = nullptr;  // DAXNET_REG_CONNSTATE table
	std::uint32_t max_conns_ = 0;
	bool zerocopy_ = false;
	// Syscalls sync() made (the kernel counts syncs, not syscalls; a
	// counters() ioctl is not a data-path syscall and is not counted).
	std::uint64_t syscalls_ = 0;
};

}  // namespace

Result<std::unique_ptr<Transport>> make_kernel_transport(const TransportConfig& cfg)
{
	auto t = std::make_unique<KernelTransport>();
	if (Status st = t->init(cfg); !st)
		return st.error();
	return std::unique_ptr<Transport>(std::move(t));
}

}  // namespace daxnet::detail
