// SPDX-License-Identifier: BSD-2-Clause
//
// Transport selection: the one place a TransportKind becomes a transport.
#include <unistd.h>

#include <cerrno>
#include <string>

#include "transport.h"

namespace daxnet {

std::string_view to_string(TransportKind k) noexcept
{
	switch (k) {
	case TransportKind::automatic:
		return "auto";
	case TransportKind::kernel:
		return "kernel";
	case TransportKind::uring:
		return "uring";
	case TransportKind::epoll:
		return "epoll";
	}
	return "?";
}

Result<TransportKind> parse_transport(std::string_view name)
{
	for (TransportKind k : {TransportKind::automatic, TransportKind::kernel, TransportKind::uring, TransportKind::epoll})
		if (name == to_string(k))
			return k;
	return make_error(EINVAL, "unknown transport '" + std::string(name) + "' (auto, kernel, uring, epoll)");
}

RingCounters& RingCounters::operator+=(const RingCounters& o) noexcept
{
	syscalls += o.syscalls;
	syncs += o.syncs;
	rx_slots += o.rx_slots;
	rx_bytes += o.rx_bytes;
	tx_slots += o.tx_slots;
	tx_bytes += o.tx_bytes;
	cpu_copied += o.cpu_copied;
	rx_ring_full += o.rx_ring_full;
	spare_empty += o.spare_empty;
	tx_held += o.tx_held;
	releases += o.releases;
	bad += o.bad;
	rx_zc_bytes += o.rx_zc_bytes;
	rx_copy_head += o.rx_copy_head;
	rx_copy_other += o.rx_copy_other;
	tx_zc_bytes += o.tx_zc_bytes;
	tx_zc_batches += o.tx_zc_batches;
	tx_zc_early += o.tx_zc_early;
	return *this;
}

namespace detail {

Result<std::unique_ptr<Transport>> make_transport(TransportKind kind, const TransportConfig& cfg)
{
	switch (kind) {
	case TransportKind::kernel:
		return make_kernel_transport(cfg);
	case TransportKind::uring:
		return make_uring_transport(cfg);
	case TransportKind::epoll:
		return make_epoll_transport(cfg);
	case TransportKind::automatic:
		break;
	}
	if (::access(DAXNET_DEVICE, F_OK) == 0) {
		// /dev/daxnet exists: the kernel transport, unless it is not built.
		auto k = make_kernel_transport(cfg);
		if (k || k.error().code != ENODEV)
			return k;
	}
	// io_uring only where completions arrive without interrupting the
	// task (COOP_TASKRUN, Linux 5.19+): there it costs less per request
	// than epoll; without it more (docs/design.md, "auto").
	auto u = make_uring_transport(cfg, true);
	if (u)
		return u;
	return make_epoll_transport(cfg);
}

}  // namespace detail
}  // namespace daxnet
