// SPDX-License-Identifier: BSD-2-Clause
//
// Fuzzes the ring ABI validation of the user-space transports
// (userlib/src/user_transport.cpp with transport_epoll.cpp and
// transport_uring.cpp) the way a buggy or hostile application drives them:
// arbitrary heads and curs, TX slots with any conn/buffer/offset/length/
// flags, spare entries and BUF_CHANGED swaps naming any buffer, and sync()
// with any pair and flags, while a real TCP peer sends bytes and closes.
//
// Input: [mode][ops ...]; mode bit 0 picks io_uring instead of epoll,
// bit 1 lets the program also scribble the fields the kernel side owns
// (tail, num_slots, kind), which a user-space transport keeps in writable
// memory.
//
// Checked (docs/abi.md, kernel/include/uapi/linux/daxnet.h):
//   * sync() returns 0 or -EINVAL, and -EINVAL counts a bad index;
//   * the transport never writes beyond its region, never reads beyond the
//     pool (ASan), never blocks;
//   * every RX slot it publishes is well formed: only known flags; DATA
//     names a buffer it was given (spare ring, TX slot, BUF_CHANGED swap)
//     with 1 <= len and offset + len <= buffer size; RELEASE names a
//     buffer it was given; NEW_CONN/EOF/ERROR name no buffer; the tails it
//     writes stay inside their rings.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <string>

#include "daxnet/pmem/pool.h"
#include "fuzz.h"
#include "transport.h"

namespace {

using daxnet::fuzz::FuzzInput;
using namespace daxnet;

constexpr std::uint64_t kPoolSize = 1u << 20;
constexpr std::uint32_t kSlots = 8;

struct Pool {
	std::byte* mem = nullptr;
	pmem::CountingDomain domain;
	pmem::PoolView view;
	Pool()
	{
		auto g = pmem::plan_geometry(kPoolSize, 2048, 0, 0);
		if (!g)
			std::abort();
		mem = static_cast<std::byte*>(std::aligned_alloc(4096, kPoolSize));
		std::memset(mem, 0, kPoolSize);
		view = pmem::PoolView(mem, *g, &domain);
	}
};

/// A connected loopback TCP pair; closed with RST (no TIME_WAIT pile-up).
/// ok() is false when the machine has no port or fd to spare right now
/// (other tests share it): the input is then skipped, not failed.
struct TcpPair {
	int client = -1, server = -1;
	bool ok() const { return client >= 0 && server >= 0; }
	TcpPair()
	{
		static int listener = [] {
			int l = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			sockaddr_in a{};
			a.sin_family = AF_INET;
			a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			if (l < 0 || ::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(l, 64) != 0)
				std::abort();
			return l;
		}();
		sockaddr_in a{};
		socklen_t al = sizeof a;
		::getsockname(listener, reinterpret_cast<sockaddr*>(&a), &al);
		for (int attempt = 0; attempt < 50 && !ok(); ++attempt) {
			if (attempt)
				::usleep(20000);
			close_rst(client);
			client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (client < 0 || !connect_loopback(client, a)) {
				std::fprintf(stderr, "fuzz_ring: loopback connect: %s (retrying)\n", std::strerror(errno));
				continue;
			}
			server = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
		}
		if (!ok())
			return;
		int one = 1;
		::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	/// connect() that survives a signal: libFuzzer's timers interrupt it
	/// (EINTR) while the handshake goes on in the background, so wait for
	/// that handshake instead of starting another one — a retry would leave
	/// the first, reset connection in the listener's queue for accept().
	static bool connect_loopback(int fd, const sockaddr_in& a)
	{
		if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0)
			return true;
		if (errno != EINTR && errno != EINPROGRESS)
			return false;
		pollfd p{fd, POLLOUT, 0};
		int n;
		do
			n = ::poll(&p, 1, 5000);
		while (n < 0 && errno == EINTR);
		int err = 0;
		socklen_t len = sizeof err;
		if (n != 1 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			return false;
		errno = err;
		return err == 0;
	}
	static void close_rst(int& fd)
	{
		if (fd < 0)
			return;
		const linger lg{1, 0};
		::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		::close(fd);
		fd = -1;
	}
	~TcpPair()
	{
		close_rst(client);
		close_rst(server);
	}
};

struct RingView {
	daxnet_ring* ring[3]{};  // rx, tx, spare
	daxnet_slot* rxs = nullptr;
	daxnet_slot* txs = nullptr;
	std::uint32_t* spares = nullptr;
	std::uint32_t num[3]{};
};

std::uint32_t pick_index(FuzzInput& in, std::uint32_t n, std::uint32_t near)
{
	const std::uint8_t sel = in.u8();
	switch (sel & 3) {
	case 0: return (near + (sel >> 2)) % n;       // a small step forward
	case 1: return (sel >> 2) % n;                 // any valid index
	case 2: return n + (sel >> 2);                 // out of range
	default: return in.u32();                      // anything
	}
}

}  // namespace

DAXNET_FUZZ_TARGET(ring)
{
	static Pool pool;
	FuzzInput in(data, size);
	const std::uint8_t mode = in.u8();
	const bool scribble = (mode & 2) != 0;

	detail::TransportConfig cfg;
	cfg.pool = pool.view;
	cfg.pairs = 1 + (mode >> 6 & 1);
	cfg.rx_slots = kSlots;
	cfg.tx_slots = kSlots;
	cfg.spare_slots = kSlots;
	cfg.max_conns = 4;
	auto made = (mode & 1) ? detail::make_uring_transport(cfg) : detail::make_epoll_transport(cfg);
	if (!made)
		return 0;  // io_uring unavailable here: nothing to test
	std::unique_ptr<detail::Transport> t = std::move(*made);
	std::byte* base = t->region();
	const std::uint32_t nbuf = pool.view.buffer_count();
	const std::uint32_t bsize = pool.view.buffer_size();

	TcpPair tcp;
	if (!tcp.ok())
		return 0;
	auto conn = t->attach(tcp.server, 0, 42);
	FUZZ_CHECK_MSG(conn.ok(), conn ? std::string() : conn.error().message);
	const std::uint32_t conn_id = *conn;

	RingView rv[2];
	for (std::uint32_t p = 0; p < cfg.pairs; ++p) {
		const daxnet_pair_desc* d = detail::region_pair(base, p);
		rv[p].ring[0] = detail::region_ring(base, d->rx_ofs);
		rv[p].ring[1] = detail::region_ring(base, d->tx_ofs);
		rv[p].ring[2] = detail::region_ring(base, d->spare_ofs);
		rv[p].rxs = detail::ring_slots(base, rv[p].ring[0]);
		rv[p].txs = detail::ring_slots(base, rv[p].ring[1]);
		rv[p].spares = detail::ring_indices(base, rv[p].ring[2]);
		for (int r = 0; r < 3; ++r)
			rv[p].num[r] = rv[p].ring[r]->num_slots;
	}

	std::set<std::uint32_t> given;  // buffers the application handed over
	std::uint32_t next_fresh = 0;   // well-behaved spare refills use fresh buffers
	std::uint32_t old_tail[2] = {rv[0].ring[0]->tail, cfg.pairs > 1 ? rv[1].ring[0]->tail : 0};
	bool scribbled = false;
	unsigned ops = 0;
	while (!in.empty() && ops++ < 48) {
		const std::uint8_t op = in.u8();
		const std::uint32_t p = (op >> 7) % cfg.pairs;
		RingView& v = rv[p];
		switch (op % 10) {
		case 0: {  // a head
			const int r = in.u8() % 3;
			v.ring[r]->head = pick_index(in, v.num[r], v.ring[r]->head);
			break;
		}
		case 1: {  // a cur
			const int r = in.u8() % 3;
			v.ring[r]->cur = pick_index(in, v.num[r], v.ring[r]->head);
			break;
		}
		case 2: {  // a TX slot
			daxnet_slot& s = v.txs[in.u8() % v.num[1]];
			const std::uint8_t f = in.u8();
			s.conn = (f & 1) ? in.u32() : conn_id;
			s.buf_idx = (f & 2) ? in.u32() : in.u8() % 64;
			s.offset = (f & 4) ? in.u32() : in.u16() % (bsize + 8);
			s.len = (f & 8) ? in.u32() : in.u16() % (bsize + 8);
			s.flags = (f & 16) ? in.u16() : static_cast<std::uint16_t>(DAXNET_SLOT_DATA | ((f & 32) ? DAXNET_SLOT_EOF : 0));
			s.reserved = (f & 64) ? in.u32() : 0;
			s.err = 0;
			given.insert(s.buf_idx);
			break;
		}
		case 3: {  // a spare entry
			const std::uint32_t b = in.flag() ? in.u32() : in.u8() % 64;
			v.spares[in.u8() % v.num[2]] = b;
			given.insert(b);
			break;
		}
		case 4: {  // an RX slot swapped (BUF_CHANGED)
			daxnet_slot& s = v.rxs[in.u8() % v.num[0]];
			s.buf_idx = in.flag() ? in.u32() : in.u8() % 64;
			s.flags = static_cast<std::uint16_t>(s.flags | DAXNET_SLOT_BUF_CHANGED);
			given.insert(s.buf_idx);
			break;
		}
		case 5: {  // sync
			const std::uint8_t f = in.u8();
			const std::uint32_t pair = (f & 0x80) ? DAXNET_RING_ALL : (f & 0x40) ? in.u32() : p;
			const std::uint32_t flags = (f & 0x20) ? in.u32() : (f & 3);
			// Whatever the rings name now may be taken by this sync: slots
			// the program never wrote hold zeros, and those count too.
			for (std::uint32_t q = 0; q < cfg.pairs; ++q) {
				for (std::uint32_t i = 0; i < rv[q].num[2]; ++i)
					given.insert(rv[q].spares[i]);
				for (std::uint32_t i = 0; i < rv[q].num[1]; ++i)
					given.insert(rv[q].txs[i].buf_idx);
				for (std::uint32_t i = 0; i < rv[q].num[0]; ++i)
					if (rv[q].rxs[i].flags & DAXNET_SLOT_BUF_CHANGED)
						given.insert(rv[q].rxs[i].buf_idx);
			}
			const std::uint64_t bad_before = t->counters(DAXNET_RING_ALL).bad;
			const int rc = t->sync(pair, flags);
			if (std::getenv("DAXNET_FUZZ_VERBOSE"))
				for (int r = 0; r < 3; ++r)
					std::fprintf(stderr, "sync -> %d: ring %d head %u cur %u tail %u\n", rc, r, v.ring[r]->head,
						     v.ring[r]->cur, v.ring[r]->tail);
			FUZZ_CHECK_MSG(rc == 0 || rc == -EINVAL, std::to_string(rc));
			if (rc == -EINVAL && pair < cfg.pairs && (flags & ~3u) == 0)
				FUZZ_CHECK_MSG(t->counters(DAXNET_RING_ALL).bad > bad_before, "-EINVAL without counting");
			if (scribbled)
				break;  // the kernel-owned fields are garbage: only crash-freedom is checked
			for (std::uint32_t q = 0; q < cfg.pairs; ++q) {
				RingView& w = rv[q];
				for (int r = 0; r < 3; ++r)
					FUZZ_CHECK(w.ring[r]->tail < w.num[r]);
				for (std::uint32_t i = old_tail[q]; i != w.ring[0]->tail; i = (i + 1) % w.num[0]) {
					const daxnet_slot& s = w.rxs[i];
					const std::uint16_t known = DAXNET_SLOT_DATA | DAXNET_SLOT_EOF | DAXNET_SLOT_ERROR |
								    DAXNET_SLOT_NEW_CONN | DAXNET_SLOT_BUF_HELD |
								    DAXNET_SLOT_RELEASE;
					FUZZ_CHECK_MSG((s.flags & ~known) == 0, "flags " + std::to_string(s.flags));
					if (s.flags & DAXNET_SLOT_DATA) {
						FUZZ_CHECK(s.buf_idx < nbuf && s.len >= 1 &&
							   std::uint64_t{s.offset} + s.len <= bsize);
						FUZZ_CHECK_MSG(given.count(s.buf_idx),
							       "DATA in buffer " + std::to_string(s.buf_idx) +
								       " that was never handed over");
					} else if (s.flags & DAXNET_SLOT_RELEASE) {
						FUZZ_CHECK_MSG(s.buf_idx < nbuf && given.count(s.buf_idx),
							       "RELEASE of buffer " + std::to_string(s.buf_idx) +
								       " that was never handed over (slot " +
								       std::to_string(i) + ", conn " + std::to_string(s.conn) +
								       ", len " + std::to_string(s.len) + ")");
					} else {
						FUZZ_CHECK(s.buf_idx == DAXNET_NO_BUF && s.len == 0);
					}
				}
				old_tail[q] = w.ring[0]->tail;
			}
			break;
		}
		case 6: {  // the peer sends
			const auto bytes = in.bytes(1 + in.u8() % 64);
			(void)!::send(tcp.client, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
			break;
		}
		case 7: {  // the peer closes its side, or resets
			if (in.flag())
				::shutdown(tcp.client, SHUT_WR);
			else {
				TcpPair::close_rst(tcp.client);
			}
			break;
		}
		case 8: {  // a well-behaved step: release all RX slots, refill spares
			daxnet_ring* rx = v.ring[0];
			rx->head = rx->cur = rx->tail % v.num[0];
			daxnet_ring* sp = v.ring[2];
			std::uint32_t h = sp->head % v.num[2];  // the program may have left garbage there
			while ((h + 1) % v.num[2] != sp->tail % v.num[2] && next_fresh < 64) {
				v.spares[h] = 64 + next_fresh;
				given.insert(64 + next_fresh++);
				h = (h + 1) % v.num[2];
			}
			sp->head = sp->cur = h;
			break;
		}
		case 9: {  // kernel-owned fields (only with mode bit 1)
			if (!scribble)
				break;
			daxnet_ring* r = v.ring[in.u8() % 3];
			switch (in.u8() % 3) {
			case 0: *const_cast<std::uint32_t*>(&r->tail) = in.u32(); break;
			case 1: *const_cast<std::uint32_t*>(&r->num_slots) = in.u32(); break;
			default: *const_cast<std::uint32_t*>(&r->kind) = in.u32(); break;
			}
			scribbled = true;
			break;
		}
		}
	}
	if (std::getenv("DAXNET_FUZZ_VERBOSE")) {
		const RingCounters c = t->counters(DAXNET_RING_ALL);
		std::fprintf(stderr, "syncs %llu rx_slots %llu rx_bytes %llu tx_slots %llu tx_bytes %llu bad %llu\n",
			     static_cast<unsigned long long>(c.syncs), static_cast<unsigned long long>(c.rx_slots),
			     static_cast<unsigned long long>(c.rx_bytes), static_cast<unsigned long long>(c.tx_slots),
			     static_cast<unsigned long long>(c.tx_bytes), static_cast<unsigned long long>(c.bad));
	}
	(void)t->detach(conn_id, DAXNET_DETACH_DISCARD);
	return 0;
}
