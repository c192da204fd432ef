// SPDX-License-Identifier: BSD-2-Clause
//
// Small socket helpers for services built on Ports: SO_REUSEPORT listeners
// (one per thread, each feeding that thread's Port: the multi-core model)
// and an acceptor that accepts and attaches in one go.
#pragma once

#include <cstdint>
#include <string>

#include "daxnet/fd.h"
#include "daxnet/port.h"
#include "daxnet/result.h"

namespace daxnet {

struct ListenOptions {
	bool reuseport = false;  ///< SO_REUSEPORT: several listeners, one per thread
	int backlog = 1024;
	bool nonblocking = true; ///< needed by Acceptor
};

/// A listening TCP socket on `host` ("127.0.0.1", "::", "0.0.0.0") and
/// `port` (0: ephemeral; read it back with local_port()).
Result<UniqueFd> listen_tcp(const std::string& host, std::uint16_t port, const ListenOptions& opt = {});
/// A connected (blocking) TCP socket, TCP_NODELAY set.
Result<UniqueFd> connect_tcp(const std::string& host, std::uint16_t port);
/// The local port of a bound socket, 0 on error.
std::uint16_t local_port(int fd) noexcept;

/// Accepts every pending connection of a non-blocking listener and
/// attaches it to a Port. The accepted fds are owned by the Acceptor's
/// caller through the callback.
class Acceptor {
public:
	explicit Acceptor(int listen_fd) noexcept : lfd_(listen_fd) {}

	/// For each pending connection: accept4, Port::attach(fd, pair,
	/// cookie = fd), then on_conn(conn_id, UniqueFd&&). Connections the
	/// port refuses are closed. Returns connections attached, or -errno of
	/// a failing accept (EAGAIN is not a failure).
	template <class F>
	int accept_all(Port& port, std::uint32_t pair, F&& on_conn)
	{
		int n = 0;
		for (;;) {
			UniqueFd fd;
			int r = accept_one(fd);
			if (r <= 0)
				return r < 0 && n == 0 ? r : n;
			auto id = port.attach(fd.get(), pair, static_cast<std::uint64_t>(fd.get()));
			if (!id)
				continue;  // refused: fd closes here
			on_conn(*id, std::move(fd));
			n++;
		}
	}

	int fd() const noexcept { return lfd_; }

private:
	/// 1: accepted into `out`; 0: none pending; -errno.
	int accept_one(UniqueFd& out) noexcept;
	int lfd_;
};

}  // namespace daxnet
