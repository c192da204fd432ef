// SPDX-License-Identifier: BSD-2-Clause
// needs: daxnet_user
//
// Bugs the ring fuzzer (tests/fuzz/fuzz_ring.cpp) found in
// userlib/src/user_transport.cpp, as named regression tests; the saved
// fuzzer inputs are in tests/fuzz/regressions/ring/.
//
// 1. scribbled-rx-tail-uring. The user-space transports keep the rings in ordinary writable memory and
// read the fields "the kernel" owns (tail, num_slots) back from it at every
// sync. An application that scribbles one of them (a stray store, an
// off-by-one) makes sync() index the slot arrays with it: publish() writes
// an RX slot at the scribbled tail, outside the ring (heap overflow under
// ASan with a large value). daxnet.ko keeps its own copies and answers
// -EINVAL; the user-space transports should do the same (keep tail and
// num_slots in Pair, compare or ignore the region's copy).
//
// 2. eof-only-tx-slot-buf-idx-released (found by the 10-minute slow run).
// A TX slot with EOF alone names no buffer (uapi), but the transport kept
// its buf_idx and, once the shutdown went out, published a RELEASE slot
// for it: garbage beyond the pool, or worse a buffer the application still
// owns, whose reference the Port would then drop (a premature free).
// daxnet.ko queues EOF with DAXNET_NO_BUF and was not affected.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "daxnet/pmem/pool.h"
#include "transport.h"

using namespace daxnet;

namespace {

class NoPersist final : public pmem::PersistDomain {
public:
	pmem::Granularity granularity() const noexcept override { return pmem::Granularity::byte; }
	void flush(const void*, std::size_t) noexcept override {}
	void drain() noexcept override {}
	using pmem::PersistDomain::flush;
};

struct Loopback {
	int l = -1, c = -1, s = -1;
	Loopback()
	{
		l = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		sockaddr_in a{};
		a.sin_family = AF_INET;
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		REQUIRE(::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
		REQUIRE(::listen(l, 4) == 0);
		socklen_t al = sizeof a;
		::getsockname(l, reinterpret_cast<sockaddr*>(&a), &al);
		c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		REQUIRE(::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
		s = ::accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
		REQUIRE(s >= 0);
	}
	~Loopback()
	{
		for (int fd : {s, c, l})
			if (fd >= 0)
				::close(fd);
	}
};

/// Runs `fn(transport, loopback)` on the epoll and (where available) the
/// io_uring transport over a 1 MiB DRAM pool of 2 KiB buffers, 8-slot rings.
template <class Fn>
void on_both_transports(Fn&& fn)
{
	std::vector<std::byte> mem(1u << 20);
	NoPersist dom;
	auto g = pmem::plan_geometry(mem.size(), 2048, 0, 0);
	REQUIRE(g.ok());
	for (int kind = 0; kind < 2; ++kind) {
		CAPTURE(kind == 0 ? "epoll" : "uring");
		detail::TransportConfig cfg;
		cfg.pool = pmem::PoolView(mem.data(), *g, &dom);
		cfg.rx_slots = cfg.tx_slots = cfg.spare_slots = 8;
		cfg.max_conns = 4;
		auto t = kind == 0 ? detail::make_epoll_transport(cfg) : detail::make_uring_transport(cfg);
		if (!t)
			continue;  // io_uring unavailable here
		Loopback lb;
		fn(**t, lb);
	}
}

}  // namespace

TEST_CASE("A user-space transport does not publish RX slots at a tail the application scribbled",
	  "[unit][fuzz][ring]")
{
	on_both_transports([](detail::Transport& tr, Loopback& lb) {
		auto conn = tr.attach(lb.s, 0, 1);  // a NEW_CONN event waits to be published
		REQUIRE(conn.ok());
		std::byte* base = tr.region();
		const daxnet_pair_desc* d = detail::region_pair(base, 0);
		daxnet_ring* rx = detail::region_ring(base, d->rx_ofs);
		daxnet_ring* tx = detail::region_ring(base, d->tx_ofs);
		const daxnet_ring tx_before = *tx;

		// One past the end: what follows the RX slots in the region (the
		// TX ring's header) is where the next RX slot would be written.
		REQUIRE(reinterpret_cast<std::byte*>(tx) ==
			reinterpret_cast<std::byte*>(detail::ring_slots(base, rx) + rx->num_slots));
		*const_cast<std::uint32_t*>(&rx->tail) = rx->num_slots;
		const int rc = tr.sync(0, 0);
		CHECK((rc == -EINVAL || rx->tail < rx->num_slots));
		CHECK(std::memcmp(&tx_before, tx, sizeof tx_before) == 0);
		std::memcpy(static_cast<void*>(tx), &tx_before, sizeof tx_before);  // let detach run on sane rings
		(void)tr.detach(*conn, DAXNET_DETACH_DISCARD);
	});
}

TEST_CASE("A TX slot with EOF alone never comes back as a RELEASE of its buf_idx", "[unit][fuzz][ring]")
{
	on_both_transports([](detail::Transport& tr, Loopback& lb) {
		auto conn = tr.attach(lb.s, 0, 1);
		REQUIRE(conn.ok());
		std::byte* base = tr.region();
		const daxnet_pair_desc* d = detail::region_pair(base, 0);
		daxnet_ring* rx = detail::region_ring(base, d->rx_ofs);
		daxnet_ring* tx = detail::region_ring(base, d->tx_ofs);
		daxnet_slot* rxs = detail::ring_slots(base, rx);
		daxnet_slot* txs = detail::ring_slots(base, tx);
		// DATA then EOF alone: while the DATA is in flight (uring sends
		// asynchronously) the EOF item waits, is handed back held, and
		// finishes in a later sync; that is when its buf_idx was released.
		for (std::uint32_t bogus : {5u, 0xb6685e36u}) {  // a pool buffer the app keeps; garbage
			CAPTURE(bogus);
			daxnet_slot& dslot = txs[tx->head];
			dslot = daxnet_slot{};
			dslot.conn = *conn;
			dslot.buf_idx = 7;
			dslot.len = 10;
			dslot.flags = DAXNET_SLOT_DATA;
			tx->head = (tx->head + 1) % tx->num_slots;
			daxnet_slot& s = txs[tx->head];
			s = daxnet_slot{};
			s.conn = *conn;
			s.buf_idx = bogus;
			s.flags = DAXNET_SLOT_EOF;
			tx->head = tx->cur = (tx->head + 1) % tx->num_slots;
			std::uint32_t seen = rx->tail;
			for (int round = 0; round < 20; ++round) {
				REQUIRE(tr.sync(0, DAXNET_SYNC_TX | DAXNET_SYNC_RX) == 0);
				for (; seen != rx->tail; seen = (seen + 1) % rx->num_slots)
					CHECK_FALSE(((rxs[seen].flags & DAXNET_SLOT_RELEASE) && rxs[seen].buf_idx == bogus));
				rx->head = rx->cur = rx->tail;
				::usleep(1000);
			}
		}
		char b[32];
		CHECK(::recv(lb.c, b, sizeof b, MSG_WAITALL) == 10);  // the first DATA, then the EOF
		CHECK(::recv(lb.c, b, sizeof b, 0) == 0);
		(void)tr.detach(*conn, DAXNET_DETACH_DISCARD);
	});
}
