// SPDX-License-Identifier: BSD-2-Clause
//
// Test harness for the Port API: a pool in DRAM, a port on the transport
// under test, loopback peers and a collector that checks the per-connection
// event grammar of docs/abi.md (NEW_CONN, DATA*, EOF/ERROR once).
//
// Transport selection: every test case runs once per transport in
// transports(): DAXNET_TEST_TRANSPORT=<kernel|uring|epoll> (comma list
// allowed) or, unset, "epoll,uring" (plus "kernel" when /dev/daxnet exists).
#pragma once

#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <exception>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "daxnet/buffer.h"
#include "daxnet/net.h"
#include "daxnet/pmem/buffer_alloc.h"
#include "daxnet/pmem/pool.h"
#include "daxnet/port.h"

namespace dxtest {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

inline std::vector<std::string> transports()
{
	std::vector<std::string> out;
	const char* env = std::getenv("DAXNET_TEST_TRANSPORT");
	std::string s = env && *env ? env : "";
	if (s.empty()) {
		s = "epoll,uring";
		if (::access(DAXNET_DEVICE, F_OK) == 0)
			s += ",kernel";
	}
	std::size_t pos = 0;
	while (pos <= s.size()) {
		std::size_t c = s.find(',', pos);
		if (c == std::string::npos)
			c = s.size();
		if (c > pos)
			out.push_back(s.substr(pos, c - pos));
		pos = c + 1;
	}
	return out;
}

/// A pool in anonymous DRAM with its allocator.
struct DramPool {
	explicit DramPool(std::uint64_t size = 32u << 20, std::uint32_t buf_size = 4096)
	{
		auto g = daxnet::pmem::plan_geometry(size, buf_size, 1u << 16, 1u << 16);
		REQUIRE(g.ok());
		geo = *g;
		mem = static_cast<std::byte*>(std::aligned_alloc(4096, size));
		REQUIRE(mem != nullptr);
		view = daxnet::pmem::PoolView(mem, geo, nullptr);
		alloc.reset(geo.buffer_count);
	}
	~DramPool() { std::free(mem); }
	DramPool(const DramPool&) = delete;
	DramPool& operator=(const DramPool&) = delete;

	daxnet::pmem::Geometry geo;
	std::byte* mem = nullptr;
	daxnet::pmem::PoolView view;
	daxnet::pmem::BufferAllocator alloc;
	daxnet::AllocatorSource src{alloc};
};

inline daxnet::Port open_port(DramPool& pool, const std::string& transport, daxnet::PortOptions opt = {})
{
	auto k = daxnet::parse_transport(transport);
	REQUIRE(k.ok());
	opt.transport = *k;
	auto p = daxnet::Port::open(pool.view, pool.src, opt);
	INFO("open " << transport << ": " << (p ? "" : p.error().message));
	REQUIRE(p.ok());
	REQUIRE(p->transport() == *k);
	return std::move(*p);
}

inline void raise_nofile(rlim_t want)
{
	rlimit rl{};
	REQUIRE(::getrlimit(RLIMIT_NOFILE, &rl) == 0);
	if (rl.rlim_cur < want) {
		rl.rlim_cur = std::min(want, rl.rlim_max);
		REQUIRE(::setrlimit(RLIMIT_NOFILE, &rl) == 0);
	}
	REQUIRE(rl.rlim_cur >= want);
}

/// Deterministic stream content: byte i of stream `seed`.
inline std::uint8_t pattern(std::uint32_t seed, std::uint64_t i)
{
	std::uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull ^ (std::uint64_t{seed} << 17);
	return static_cast<std::uint8_t>(x >> 29);
}
inline std::string make_stream(std::uint32_t seed, std::size_t n)
{
	std::string s(n, '\0');
	for (std::size_t i = 0; i < n; i++)
		s[i] = static_cast<char>(pattern(seed, i));
	return s;
}

inline bool write_all(int fd, const void* p, std::size_t n)
{
	auto* c = static_cast<const char*>(p);
	while (n > 0) {
		ssize_t r = ::send(fd, c, n, MSG_NOSIGNAL);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		c += r;
		n -= static_cast<std::size_t>(r);
	}
	return true;
}

/// A peer on its own thread, joined when it goes out of scope. When a
/// REQUIRE throws while it runs, the destructor first shuts `fd` down both
/// ways, so that a send or recv the peer is blocked in returns: the test
/// reports its failure instead of std::terminate on a joinable thread or a
/// join that never returns.
class PeerThread {
public:
	template <class F>
	PeerThread(int fd, F&& f) : fd_(fd), t_(std::forward<F>(f))
	{
	}
	PeerThread(const PeerThread&) = delete;
	PeerThread& operator=(const PeerThread&) = delete;
	~PeerThread()
	{
		if (!t_.joinable())
			return;
		if (std::uncaught_exceptions() > 0)
			::shutdown(fd_, SHUT_RDWR);
		t_.join();
	}
	void join()
	{
		if (t_.joinable())
			t_.join();
	}

private:
	int fd_;
	std::thread t_;
};

/// A peer that sends `msg` (which must outlive it) to `fd`, then shuts its
/// write side: the receiver sees the bytes and then EOF.
inline PeerThread stream_peer(int fd, const std::string& msg)
{
	return PeerThread(fd, [fd, &msg] {
		write_all(fd, msg.data(), msg.size());
		::shutdown(fd, SHUT_WR);
	});
}

/// Reads until EOF or `n` bytes (blocking), with a receive timeout.
inline std::string read_n(int fd, std::size_t n, int timeout_s = 20)
{
	timeval tv{timeout_s, 0};
	::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	std::string out;
	char buf[65536];
	while (out.size() < n) {
		ssize_t r = ::recv(fd, buf, std::min(sizeof(buf), n - out.size()), 0);
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			break;
		}
		out.append(buf, static_cast<std::size_t>(r));
	}
	return out;
}

/// Per-connection record of what the port delivered, grammar-checked.
struct ConnLog {
	std::string data;
	int new_conn = 0;
	int eof = 0;
	int error = 0;
	int err = 0;
	int after_end = 0;  ///< slots after ERROR or DATA after EOF (must stay 0)
	int before_new = 0; ///< slots before NEW_CONN (must stay 0)
	std::uint64_t cookie = 0;
};

struct Collector {
	std::map<std::uint32_t, ConnLog> conns;
	std::uint64_t slots = 0;

	void on(const daxnet::Port& port, const daxnet_slot& s)
	{
		slots++;
		if (s.flags & DAXNET_SLOT_RELEASE)
			return;
		ConnLog& c = conns[s.conn];
		if (c.error)
			c.after_end++;
		if (s.flags & DAXNET_SLOT_NEW_CONN) {
			c.new_conn++;
			c.cookie = s.user_data;
			return;
		}
		if (!c.new_conn)
			c.before_new++;
		if (s.flags & DAXNET_SLOT_DATA) {
			if (c.eof)
				c.after_end++;
			auto p = port.payload(s);
			c.data.append(reinterpret_cast<const char*>(p.data()), p.size());
		}
		if (s.flags & DAXNET_SLOT_EOF)
			c.eof++;
		if (s.flags & DAXNET_SLOT_ERROR) {
			c.error++;
			c.err = s.err;
		}
	}

	/// Drains every ready RX slot of pair 0 (releasing them).
	void drain(daxnet::Port& port, std::uint32_t pair = 0)
	{
		for (; port.rx_ready(pair); port.rx_pop(pair))
			on(port, port.rx_front(pair));
	}
};

/// Runs `step` (wait + sync + whatever) until `done` or the deadline.
template <class Done, class Step>
bool run_until(Done&& done, Step&& step, std::chrono::milliseconds limit = 30s)
{
	auto end = Clock::now() + limit;
	while (!done()) {
		if (Clock::now() > end)
			return false;
		step();
	}
	return true;
}

/// One sync round: wait briefly, sync, drain into the collector.
inline void round(daxnet::Port& port, Collector& col, int wait_ms = 5)
{
	port.wait(wait_ms);
	int r = port.sync();
	REQUIRE(r >= 0);
	col.drain(port);
}

}  // namespace dxtest
