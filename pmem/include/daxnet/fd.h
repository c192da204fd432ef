// SPDX-License-Identifier: BSD-2-Clause
//
// UniqueFd: owns one file descriptor, closes it on destruction (RAII). The
// one fd wrapper of the tree (pool files, sockets, eventfds, /dev/daxnet):
// header-only, in the lowest layer so that every library can use it.
#pragma once

#include <unistd.h>

#include <utility>

namespace daxnet {

class UniqueFd {
public:
	UniqueFd() noexcept = default;
	explicit UniqueFd(int fd) noexcept : fd_(fd) {}
	UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
	UniqueFd& operator=(UniqueFd&& o) noexcept
	{
		if (this != &o)
			reset(std::exchange(o.fd_, -1));
		return *this;
	}
	UniqueFd(const UniqueFd&) = delete;
	UniqueFd& operator=(const UniqueFd&) = delete;
	~UniqueFd() { reset(); }

	int get() const noexcept { return fd_; }
	explicit operator bool() const noexcept { return fd_ >= 0; }
	/// Gives up ownership without closing.
	int release() noexcept { return std::exchange(fd_, -1); }
	void reset(int fd = -1) noexcept
	{
		if (fd_ >= 0)
			::close(fd_);
		fd_ = fd;
	}

private:
	int fd_ = -1;
};

}  // namespace daxnet
