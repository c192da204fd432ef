// SPDX-License-Identifier: BSD-2-Clause
#include "daxnet/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace daxnet {

namespace {

bool make_addr(const std::string& host, std::uint16_t port, sockaddr_storage& ss, socklen_t& len)
{
	std::memset(&ss, 0, sizeof(ss));
	auto* a4 = reinterpret_cast<sockaddr_in*>(&ss);
	if (::inet_pton(AF_INET, host.c_str(), &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		len = sizeof(*a4);
		return true;
	}
	auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
	if (::inet_pton(AF_INET6, host.c_str(), &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		len = sizeof(*a6);
		return true;
	}
	return false;
}

std::string where(const std::string& host, std::uint16_t port)
{
	return host + ":" + std::to_string(port);
}

}  // namespace

Result<UniqueFd> listen_tcp(const std::string& host, std::uint16_t port, const ListenOptions& opt)
{
	sockaddr_storage ss;
	socklen_t len;
	if (!make_addr(host, port, ss, len))
		return make_error(EINVAL, "listen: " + host + ": not an IPv4 or IPv6 address");
	int type = SOCK_STREAM | SOCK_CLOEXEC | (opt.nonblocking ? SOCK_NONBLOCK : 0);
	UniqueFd fd(::socket(ss.ss_family, type, IPPROTO_TCP));
	if (!fd)
		return make_error(errno, "listen: socket() failed");
	int one = 1;
	::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (opt.reuseport && ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
		return make_error(errno, "listen: SO_REUSEPORT on " + where(host, port) + ": " + std::strerror(errno));
	if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0)
		return make_error(errno, "listen: bind " + where(host, port) + ": " + std::strerror(errno));
	if (::listen(fd.get(), opt.backlog) != 0)
		return make_error(errno, "listen: listen " + where(host, port) + ": " + std::strerror(errno));
	return fd;
}

Result<UniqueFd> connect_tcp(const std::string& host, std::uint16_t port)
{
	sockaddr_storage ss;
	socklen_t len;
	if (!make_addr(host, port, ss, len))
		return make_error(EINVAL, "connect: " + host + ": not an IPv4 or IPv6 address");
	UniqueFd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP));
	if (!fd)
		return make_error(errno, "connect: socket() failed");
	int r;
	do
		r = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len);
	while (r != 0 && errno == EINTR);
	if (r != 0)
		return make_error(errno, "connect: " + where(host, port) + ": " + std::strerror(errno));
	int one = 1;
	::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

std::uint16_t local_port(int fd) noexcept
{
	sockaddr_storage ss{};
	socklen_t len = sizeof(ss);
	if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
	return 0;
}

int Acceptor::accept_one(UniqueFd& out) noexcept
{
	for (;;) {
		int fd = ::accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
		if (fd >= 0) {
			out.reset(fd);
			return 1;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return -errno;
	}
}

}  // namespace daxnet
