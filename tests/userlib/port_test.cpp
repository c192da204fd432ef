// SPDX-License-Identifier: BSD-2-Clause
//
// Port API behaviour over loopback, once per transport (harness.h:
// DAXNET_TEST_TRANSPORT selects; the kernel transport inherits every case).
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "daxnet/pmem/crc32c.h"
#include "harness.h"

using namespace dxtest;
using daxnet::Port;

namespace {

struct Pair {
	daxnet::UniqueFd listener;
	daxnet::UniqueFd client;
	daxnet::UniqueFd server;
};

// A connected loopback pair: client (test side) and server (to attach).
Pair connected_pair()
{
	Pair p;
	auto l = daxnet::listen_tcp("127.0.0.1", 0, {.reuseport = false, .backlog = 16, .nonblocking = false});
	REQUIRE(l.ok());
	p.listener = std::move(*l);
	auto c = daxnet::connect_tcp("127.0.0.1", daxnet::local_port(p.listener.get()));
	REQUIRE(c.ok());
	p.client = std::move(*c);
	p.server.reset(::accept4(p.listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
	REQUIRE(p.server);
	return p;
}

std::uint32_t attach(Port& port, int fd, std::uint64_t cookie = 0)
{
	auto id = port.attach(fd, 0, cookie);
	INFO((id ? "" : id.error().message));
	REQUIRE(id.ok());
	return *id;
}

void check_no_leak(DramPool& pool)
{
	CHECK(pool.alloc.free_count() == pool.geo.buffer_count);
	CHECK(pool.alloc.check());
}

// The options of the nearly-full-ring cases: 8 RX and 8 spare slots.
daxnet::PortOptions small_rings()
{
	daxnet::PortOptions opt;
	opt.rx_slots = 8;
	opt.spare_slots = 8;
	return opt;
}

// Small socket buffers: the client receives and the server sends 4 KiB at
// a time, so a peer that does not read stops the TX soon.
void small_socket_buffers(Pair& p)
{
	int small = 4096;
	::setsockopt(p.client.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	::setsockopt(p.server.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
}

// Queues n pool buffers of bs bytes of `fill` on conn id (syncing as the
// TX ring makes room), for a peer that does not read.
void push_unread(Port& port, Collector& col, std::uint32_t id, std::uint32_t n, std::uint32_t bs, char fill)
{
	std::uint32_t pushed = 0;
	REQUIRE(run_until([&] { return pushed == n; },
			  [&] {
				  while (pushed < n && port.tx_space() > 0) {
					  daxnet::BufferLease l = port.alloc();
					  REQUIRE(l);
					  std::memset(port.buffer(l.index()), fill, bs);
					  REQUIRE(port.tx_push(id, l.index(), 0, bs) == 0);
					  pushed++;
				  }
				  REQUIRE(port.sync() >= 0);
				  col.drain(port);
			  }));
}

// The frame of most cases: a port on pool with opt, one loopback pair
// whose server end is attached (with cookie); body(port, pair, id), then the port
// closes and every pool buffer must be back.
template <class Body>
void with_one_conn(DramPool& pool, const std::string& tname, const daxnet::PortOptions& opt, Body&& body,
		   std::uint64_t cookie = 0)
{
	{
		Port port = open_port(pool, tname, opt);
		Pair p = connected_pair();
		std::uint32_t id = attach(port, p.server.get(), cookie);
		body(port, p, id);
	}
	check_no_leak(pool);
}

}  // namespace

TEST_CASE("one connection: NEW_CONN first, 1-byte and 1 MiB messages in order, EOF once", "[unit]")
{
	auto tname = GENERATE(from_range(transports()));
	DramPool pool;
	with_one_conn(pool, tname, {}, [&](Port& port, Pair& p, std::uint32_t id) {
		std::string msg = std::string(1, 'x') + make_stream(1, 1u << 20);
		PeerThread peer(p.client.get(), [&] {
			write_all(p.client.get(), msg.data(), 1);
			std::this_thread::sleep_for(20ms);
			write_all(p.client.get(), msg.data() + 1, msg.size() - 1);
			::shutdown(p.client.get(), SHUT_WR);
		});
		Collector col;
		bool ok = run_until([&] { return col.conns[id].eof > 0; }, [&] { round(port, col); });
		peer.join();
		REQUIRE(ok);
		ConnLog& c = col.conns[id];
		CHECK(c.new_conn == 1);
		CHECK(c.before_new == 0);
		CHECK(c.cookie == 42);
		CHECK(c.eof == 1);
		CHECK(c.error == 0);
		CHECK(c.after_end == 0);
		REQUIRE(c.data.size() == msg.size());
		CHECK(daxnet::pmem::crc32c(c.data.data(), c.data.size()) == daxnet::pmem::crc32c(msg.data(), msg.size()));
		// EOF is reported once: more syncs bring nothing for this conn.
		for (int i = 0; i < 5; i++)
			round(port, col, 1);
		CHECK(col.conns[id].eof == 1);
		auto k = port.counters();
		CHECK(k.rx_bytes == msg.size());
		CHECK(k.syncs > 0);
		CHECK(port.detach(id).ok());
	}, 42);
}

TEST_CASE("echo: TX straight from received buffers, kept buffers and copies reach the peer in order", "[unit]")
{
	auto tname = GENERATE(from_range(transports()));
	DramPool pool;
	with_one_conn(pool, tname, {}, [&](Port& port, Pair& p, std::uint32_t id) {
		std::string msg = make_stream(2, 300000);
		std::string got;
		std::atomic<bool> peer_done{false};
		PeerThread peer(p.client.get(), [&] {
			write_all(p.client.get(), msg.data(), msg.size());
			got = read_n(p.client.get(), msg.size() + 5);
			peer_done = true;
		});
		std::size_t echoed = 0;
		std::vector<daxnet::BufferLease> kept;
		int n = 0;
		bool ok = run_until([&] { return echoed == msg.size(); },
				    [&] {
					    port.wait(5);
					    REQUIRE(port.sync() >= 0);
					    while (port.rx_ready() && port.tx_space() > 1) {
						    const daxnet_slot& s = port.rx_front();
						    if (s.flags & DAXNET_SLOT_DATA) {
							    std::uint32_t buf = s.buf_idx, off = s.offset, len = s.len;
							    if (n++ % 3 == 1) {
								    // keep (swap a spare in), send from the lease
								    auto lease = port.keep();
								    REQUIRE(lease);
								    REQUIRE(port.tx_push(id, lease.index(), off, len) == 0);
								    kept.push_back(std::move(lease));
							    } else if (len > 2) {
								    // two slices of the same buffer
								    REQUIRE(port.tx_push(id, buf, off, 1) == 0);
								    REQUIRE(port.tx_push(id, buf, off + 1, len - 1) == 0);
							    } else {
								    REQUIRE(port.tx_push(id, buf, off, len) == 0);
							    }
							    echoed += len;
						    }
						    port.rx_pop();
					    }
				    });
		REQUIRE(ok);
		const char tail[] = "done!";
		REQUIRE(port.send_copy(id, std::as_bytes(std::span(tail, 5))) == 5);
		REQUIRE(port.shutdown_write(id) == 0);
		kept.clear();  // the kernel's references keep what is still queued
		Collector col;
		bool flushed = run_until([&] { return peer_done.load(); }, [&] { round(port, col, 1); }, 20s);
		peer.join();
		CHECK(flushed);
		REQUIRE(got.size() == msg.size() + 5);
		CHECK((got.substr(0, msg.size()) == msg));
		CHECK(got.substr(msg.size()) == "done!");
		CHECK(port.detach(id).ok());
	});
}

TEST_CASE("1000 concurrent connections each deliver their own checksummed stream", "[unit]")
{
	auto tname = GENERATE(from_range(transports()));
	constexpr int kConns = 1000;
	raise_nofile(2 * kConns + 64);
	DramPool pool(64u << 20);
	{
		daxnet::PortOptions opt;
		opt.max_conns = 1024;
		Port port = open_port(pool, tname, opt);
		auto l = daxnet::listen_tcp("127.0.0.1", 0, {.reuseport = true, .backlog = 2048});
		REQUIRE(l.ok());
		std::uint16_t lport = daxnet::local_port(l->get());
		std::atomic<bool> failed{false};
		std::thread peers([&] {
			std::vector<daxnet::UniqueFd> fds;
			for (int i = 0; i < kConns; i++) {
				auto c = daxnet::connect_tcp("127.0.0.1", lport);
				if (!c) {
					failed = true;
					return;
				}
				fds.push_back(std::move(*c));
			}
			for (int i = 0; i < kConns; i++) {
				auto idx = static_cast<std::uint32_t>(i);
				std::string s = make_stream(idx, 1000 + idx % 7);
				// first 4 bytes name the stream
				std::memcpy(s.data(), &idx, 4);
				if (!write_all(fds[i].get(), s.data(), s.size()))
					failed = true;
			}
			for (auto& f : fds)
				::shutdown(f.get(), SHUT_WR);
			std::this_thread::sleep_for(200ms);
		});
		daxnet::Acceptor acc(l->get());
		std::vector<daxnet::UniqueFd> server_fds;
		Collector col;
		auto eofs = [&] {
			int n = 0;
			for (auto& [id, c] : col.conns)
				n += c.eof;
			return n;
		};
		bool ok = run_until([&] { return eofs() == kConns || failed; },
				    [&] {
					    acc.accept_all(port, 0, [&](std::uint32_t, daxnet::UniqueFd&& fd) {
						    server_fds.push_back(std::move(fd));
					    });
					    round(port, col, 1);
				    },
				    60s);
		peers.join();
		REQUIRE_FALSE(failed);
		REQUIRE(ok);
		REQUIRE(col.conns.size() == kConns);
		int good = 0;
		for (auto& [id, c] : col.conns) {
			REQUIRE(c.data.size() >= 4);
			std::uint32_t idx;
			std::memcpy(&idx, c.data.data(), 4);
			std::string want = make_stream(idx, 1000 + idx % 7);
			std::memcpy(want.data(), &idx, 4);
			good += c.data == want && c.new_conn == 1 && c.eof == 1 && c.after_end == 0 && c.before_new == 0;
		}
		CHECK(good == kConns);
		for (auto& [id, c] : col.conns)
			REQUIRE(port.detach(id).ok());
	}
	check_no_leak(pool);
}

TEST_CASE("byte-at-a-time sender: every byte arrives once, in order", "[unit]")
{
	auto tname = GENERATE(from_range(transports()));
	DramPool pool;
	with_one_conn(pool, tname, {}, [&](Port& port, Pair& p, std::uint32_t id) {
		std::string msg = make_stream(3, 3000);
		PeerThread peer(p.client.get(), [&] {
			for (std::size_t i = 0; i < msg.size(); i++) {
				write_all(p.client.get(), msg.data() + i, 1);
				if (i % 64 == 0)
					std::this_thread::sleep_for(1ms);
			}
			::shutdown(p.client.get(), SHUT_WR);
		});
		Collector col;
		bool ok = run_until([&] { return col.conns[id].eof > 0; }, [&] { round(port, col, 1); });
		peer.join();
		REQUIRE(ok);
		CHECK((col.conns[id].data == msg));
		CHECK(port.detach(id).ok());
	});
}

TEST_CASE("peer close mid-message: all bytes, then EOF once; reset: ERROR once, nothing after", "[unit]")
{
	auto tname = GENERATE(from_range(transports()));
	DramPool pool;
	{
		Port port = open_port(pool, tname);
		Pair a = connected_pair();
		Pair b = connected_pair();
		std::uint32_t ia = attach(port, a.server.get());
		std::uint32_t ib = attach(port, b.server.get());
		std::string msg = make_stream(4, 50000);
		write_all(a.client.get(), msg.data(), msg.size());
		a.client.reset();  // close with the message "half" framed
		write_all(b.client.get(), msg.data(), 1000);
		Collector col;
		REQUIRE(run_until([&] { return col.conns[ia].eof > 0 && col.conns[ib].data.size() == 1000; },
				  [&] { round(port, col); }));
		linger lg{1, 0};
		::setsockopt(b.client.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		b.client.reset();  // RST
		REQUIRE(run_until([&] { return col.conns[ib].error > 0; }, [&] { round(port, col); }));
		for (int i = 0; i < 5; i++)
			round(port, col, 1);
		CHECK((col.conns[ia].data == msg));
		CHECK(col.conns[ia].eof == 1);
		CHECK(col.conns[ia].error == 0);
		CHECK(col.conns[ib].error == 1);
		CHECK(col.conns[ib].err == ECONNRESET);
		CHECK(col.conns[ib].after_end == 0);
		CHECK((col.conns[ib].data == msg.substr(0, 1000)));
		CHECK(port.detach(ia).ok());
		CHECK(port.detach(ib).ok());
	}
	check_no_leak(pool);
}

TEST_CASE("a full RX ring stops reading without losing bytes", "[unit]")
{
	auto tname = GENERATE(from_range(transports()));
	DramPool pool;
	with_one_conn(pool, tname, small_rings(), [&](Port& port, Pair& p, std::uint32_t id) {
		std::string msg = make_stream(5, 4u << 20);
		PeerThread peer = stream_peer(p.client.get(), msg);
		// Do not release anything for a while: the ring fills and stays full.
		for (int i = 0; i < 20; i++) {
			port.wait(5);
			REQUIRE(port.sync() >= 0);
		}
		CHECK(port.rx_ready() == 7);  // n - 1: one slot always empty
		Collector col;
		bool ok = run_until([&] { return col.conns[id].eof > 0; }, [&] { round(port, col, 1); });
		peer.join();
		REQUIRE(ok);
		CHECK(port.counters().rx_ring_full > 0);
		REQUIRE(col.conns[id].data.size() == msg.size());
		CHECK(daxnet::pmem::crc32c(col.conns[id].data.data(), msg.size()) ==
		      daxnet::pmem::crc32c(msg.data(), msg.size()));
		CHECK(port.detach(id).ok());
	});
}

TEST_CASE("an exhausted pool stops reading without losing bytes; kept buffers stay intact", "[unit]")
{
	auto tname = GENERATE(from_range(transports()));
	DramPool pool(4u << 20);  // few hundred buffers
	with_one_conn(pool, tname, {}, [&](Port& port, Pair& p, std::uint32_t id) {
		std::string msg = make_stream(6, 8u << 20);
		PeerThread peer = stream_peer(p.client.get(), msg);
		// Keep every received buffer until the pool runs dry.
		struct Kept {
			daxnet::BufferLease lease;
			std::uint32_t off, len;
		};
		std::vector<Kept> kept;
		std::string data;
		auto flush_kept = [&] {
			for (auto& k : kept)
				data.append(reinterpret_cast<const char*>(port.buffer(k.lease.index()) + k.off), k.len);
			kept.clear();
		};
		bool eof = false;
		bool starved = false;
		bool ok = run_until([&] { return eof; },
				    [&] {
					    port.wait(2);
					    REQUIRE(port.sync() >= 0);
					    for (; port.rx_ready(); port.rx_pop()) {
						    const daxnet_slot& s = port.rx_front();
						    if (s.flags & DAXNET_SLOT_DATA) {
							    std::uint32_t off = s.offset, len = s.len;
							    kept.push_back({port.keep(), off, len});
							    REQUIRE(kept.back().lease);
						    }
						    if (s.flags & DAXNET_SLOT_EOF)
							    eof = true;
					    }
					    // Keep everything until the pool is dry and reading
					    // stopped for lack of spares; then let go.
					    if (!starved && pool.alloc.free_count() == 0 && port.counters().spare_empty > 0)
						    starved = true;
					    if (starved)
						    flush_kept();
				    },
				    60s);
		peer.join();
		REQUIRE(ok);
		flush_kept();
		CHECK(starved);
		CHECK(port.counters().spare_empty > 0);
		REQUIRE(data.size() == msg.size());
		CHECK(daxnet::pmem::crc32c(data.data(), data.size()) == daxnet::pmem::crc32c(msg.data(), msg.size()));
		CHECK(port.detach(id).ok());
	});
}

TEST_CASE("bad input is refused with a clear error", "[unit]")
{
	auto tname = GENERATE(from_range(transports()));
	DramPool pool;
	{
		Port port = open_port(pool, tname);
		int pfd[2];
		REQUIRE(::pipe(pfd) == 0);
		daxnet::UniqueFd r(pfd[0]), w(pfd[1]);
		auto e1 = port.attach(r.get());
		REQUIRE_FALSE(e1.ok());
		CHECK(e1.error().code == ENOTSOCK);
		CHECK_FALSE(e1.error().message.empty());

		daxnet::UniqueFd udp(::socket(AF_INET, SOCK_DGRAM, 0));
		auto e2 = port.attach(udp.get());
		REQUIRE_FALSE(e2.ok());
		CHECK(e2.error().code == EPROTONOSUPPORT);

		auto l = daxnet::listen_tcp("127.0.0.1", 0);
		REQUIRE(l.ok());
		auto e3 = port.attach(l->get());
		REQUIRE_FALSE(e3.ok());
		CHECK(e3.error().code == ENOTCONN);

		daxnet::UniqueFd fresh(::socket(AF_INET, SOCK_STREAM, 0));
		auto e4 = port.attach(fresh.get());
		REQUIRE_FALSE(e4.ok());
		CHECK(e4.error().code == ENOTCONN);

		auto e5 = port.attach(12345);
		REQUIRE_FALSE(e5.ok());
		CHECK(e5.error().code == EBADF);

		Pair p = connected_pair();
		std::uint32_t id = attach(port, p.server.get());
		auto e6 = port.attach(p.server.get());
		REQUIRE_FALSE(e6.ok());
		CHECK(e6.error().code == EBUSY);

		auto e7 = port.attach(p.client.get(), 5);
		REQUIRE_FALSE(e7.ok());
		CHECK(e7.error().code == EINVAL);

		CHECK(port.tx_push(id, pool.geo.buffer_count, 0, 1) == -EINVAL);
		CHECK(port.tx_push(id, 0, 4000, 200) == -EINVAL);
		CHECK(port.tx_push(id, 0, 0, 0) == -EINVAL);

		CHECK(port.detach(id).ok());
		auto e8 = port.detach(id);
		REQUIRE_FALSE(e8.ok());
		CHECK(e8.error().code == ENOENT);
		// The socket can be attached again after detach.
		std::uint32_t id2 = attach(port, p.server.get());
		CHECK(id2 != id);
		CHECK(port.detach(id2).ok());
	}
	check_no_leak(pool);
}

TEST_CASE("a corrupt ring index fails the sync with EINVAL and changes nothing", "[unit]")
{
	auto tname = GENERATE(from_range(transports()));
	DramPool pool;
	with_one_conn(pool, tname, {}, [&](Port& port, Pair&, std::uint32_t id) {
		REQUIRE(port.sync() >= 0);
		// Write the shared ring the way a buggy application would.
		daxnet_ring* ring = port.raw_ring(0, DAXNET_RING_RX);
		REQUIRE(ring != nullptr);
		std::uint32_t saved = ring->head;
		ring->head = ring->num_slots + 3;
		CHECK(port.sync() == -EINVAL);
		ring->head = saved;
		CHECK(port.sync() >= 0);
		CHECK(port.counters().bad >= 1);
		CHECK(port.detach(id).ok());
	});
}

TEST_CASE("kernel-owned ring fields scribbled by the application are never trusted and tails are repaired",
	  "[unit]")
{
	// The ring header fields tagged (k) in daxnet.h (tail, num_slots, kind,
	// slot_size, slots_ofs) sit in memory the application can write. A
	// transport must decide only from its private copies: the old
	// user-space transports published RX slots at a scribbled tail
	// (outside the ring) and walked slots up to a scribbled num_slots.
	auto tname = GENERATE(from_range(transports()));
	DramPool pool;
	{
		Port port = open_port(pool, tname, {.rx_slots = 16, .tx_slots = 16, .spare_slots = 16});
		Pair p = connected_pair();
		std::uint32_t id = attach(port, p.server.get(), 7);
		daxnet_ring* rings[3] = {port.raw_ring(0, DAXNET_RING_RX), port.raw_ring(0, DAXNET_RING_TX),
					 port.raw_ring(0, DAXNET_RING_SPARE)};
		std::uint32_t num[3];  // the real ring sizes
		for (int r = 0; r < 3; r++) {
			REQUIRE(rings[r] != nullptr);
			num[r] = rings[r]->num_slots;
		}
		auto scribble = [&](std::uint32_t salt) {
			for (int r = 0; r < 3; r++) {
				daxnet_ring* g = rings[r];  // the (k) fields are const for user space
				*const_cast<__u32*>(&g->tail) = r == 0 ? num[r] : 0x7fffffffu + salt;
				*const_cast<__u32*>(&g->num_slots) = r == 1 ? 0 : 0xffffffffu - salt;
				*const_cast<__u32*>(&g->kind) = 0xdead0000u + salt;
				*const_cast<__u32*>(&g->slot_size) = 1;
				*const_cast<__u64*>(&g->slots_ofs) = 0x4000000000000000ull + salt;
			}
		};
		auto tails_sane = [&] {
			for (int r = 0; r < 3; r++)
				if (rings[r]->tail >= num[r])
					return false;
			return true;
		};

		// Before the first sync (NEW_CONN waits to be published) and with
		// data arriving: every sync succeeds and writes sane tails back.
		// (Every other round only: Port does not refill the spare ring
		// while its tail is out of range.)
		scribble(0);
		REQUIRE(write_all(p.client.get(), "ping-1", 6));
		Collector col;
		std::uint32_t rounds = 0;
		bool ok = run_until([&] { return col.conns[id].data.size() >= 6; },
				    [&] {
					    port.wait(5);
					    int r = port.sync();
					    REQUIRE(r >= 0);
					    CHECK(tails_sane());
					    col.drain(port);
					    if (++rounds % 2 == 0)
						    scribble(rounds);
				    },
				    10s);
		REQUIRE(ok);
		CHECK(col.conns[id].new_conn == 1);
		CHECK(col.conns[id].data == "ping-1");

		// A bad user index with a scribbled tail: EINVAL and a counter,
		// never a crash; once the index is sane again, the tail is too.
		const std::uint64_t bad_before = port.counters().bad;
		scribble(2);
		daxnet_ring* rx = rings[0];
		const std::uint32_t head = rx->head;
		rx->head = num[0] + 1;
		CHECK(port.sync() == -EINVAL);
		CHECK(port.counters().bad > bad_before);
		rx->head = head;
		REQUIRE(port.sync() >= 0);
		CHECK(tails_sane());

		// TX still works on the scribbled rings: the reply reaches the peer.
		REQUIRE(port.send_copy(id, std::as_bytes(std::span("pong-1", 6))) == 6);
		REQUIRE(port.sync() >= 0);
		CHECK(read_n(p.client.get(), 6, 5) == "pong-1");
		REQUIRE(write_all(p.client.get(), "ping-2", 6));
		ok = run_until([&] { return col.conns[id].data.size() >= 12; }, [&] { round(port, col); }, 10s);
		REQUIRE(ok);
		CHECK(col.conns[id].data == "ping-1ping-2");
		CHECK(tails_sane());
		// The fields nobody repairs stay as the application left them;
		// nothing above read them.
		CHECK(rings[1]->num_slots == 0);
		CHECK(port.detach(id).ok());
	}
	check_no_leak(pool);
}

TEST_CASE("counters: at most one syscall per sync on uring, one on kernel, syscalls counted on epoll", "[unit]")
{
	auto tname = GENERATE(from_range(transports()));
	DramPool pool;
	{
		Port port = open_port(pool, tname);
		constexpr int kConns = 8, kMsgs = 200;
		std::vector<Pair> ps;
		std::vector<std::uint32_t> ids;
		for (int i = 0; i < kConns; i++) {
			ps.push_back(connected_pair());
			ids.push_back(attach(port, ps.back().server.get()));
		}
		std::thread peer([&] {
			char buf[64];
			for (int m = 0; m < kMsgs; m++) {
				for (auto& p : ps)
					write_all(p.client.get(), "ping", 4);
				for (auto& p : ps) {
					std::size_t got = 0;
					while (got < 4) {
						ssize_t r = ::recv(p.client.get(), buf, 4 - got, 0);
						if (r <= 0)
							return;
						got += static_cast<std::size_t>(r);
					}
				}
			}
		});
		std::size_t echoed = 0;
		auto before = port.counters();
		bool ok = run_until([&] { return echoed == std::size_t{kConns} * kMsgs * 4; },
				    [&] {
					    port.wait(5);
					    REQUIRE(port.sync() >= 0);
					    for (; port.rx_ready(); port.rx_pop()) {
						    const daxnet_slot& s = port.rx_front();
						    if (s.flags & DAXNET_SLOT_DATA) {
							    REQUIRE(port.tx_push(s.conn, s.buf_idx, s.offset, s.len) == 0);
							    echoed += s.len;
						    }
					    }
				    });
		// Let the last echoes go out.
		for (int i = 0; i < 3; i++)
			REQUIRE(port.sync() >= 0);
		peer.join();
		REQUIRE(ok);
		auto k = port.counters();
		std::uint64_t syncs = k.syncs - before.syncs, calls = k.syscalls - before.syscalls;
		std::printf("[counters] transport=%s syncs=%llu syscalls=%llu syscalls/sync=%.2f rx_slots=%llu "
			    "tx_slots=%llu cpu_copied=%llu tx_held=%llu releases=%llu\n",
			    tname.c_str(), static_cast<unsigned long long>(syncs), static_cast<unsigned long long>(calls),
			    syncs ? static_cast<double>(calls) / static_cast<double>(syncs) : 0.0,
			    static_cast<unsigned long long>(k.rx_slots), static_cast<unsigned long long>(k.tx_slots),
			    static_cast<unsigned long long>(k.cpu_copied), static_cast<unsigned long long>(k.tx_held),
			    static_cast<unsigned long long>(k.releases));
		CHECK(syncs > 0);
		CHECK(k.tx_bytes == std::uint64_t{kConns} * kMsgs * 4);
		if (tname == "kernel")
			CHECK(calls == syncs);
		else if (tname == "uring")
			CHECK((calls > 0 && calls <= syncs));  // no enter when nothing is due (TASKRUN_FLAG)
		else
			CHECK(calls >= syncs);
		for (auto id : ids)
			CHECK(port.detach(id).ok());
	}
	check_no_leak(pool);
}

TEST_CASE("detach flushes queued TX first; a detached connection gets no more slots", "[unit]")
{
	auto tname = GENERATE(from_range(transports()));
	DramPool pool;
	with_one_conn(pool, tname, {}, [&](Port& port, Pair& p, std::uint32_t id) {
		std::string msg = make_stream(7, 200000);
		REQUIRE(port.send_copy(id, std::as_bytes(std::span(msg))) == static_cast<long>(msg.size()));
		std::string got;
		PeerThread peer(p.client.get(), [&] { got = read_n(p.client.get(), msg.size()); });
		REQUIRE(port.detach(id, false, 10000).ok());
		peer.join();
		CHECK((got == msg));
		write_all(p.client.get(), "late", 4);
		Collector col;
		for (int i = 0; i < 5; i++)
			round(port, col, 2);
		CHECK(col.conns[id].data.empty());
		// The bytes stayed in the socket.
		char buf[8];
		CHECK(::recv(p.server.get(), buf, sizeof(buf), MSG_DONTWAIT) == 4);
	});
}

TEST_CASE("ports with several ring pairs keep connections on their own pair", "[unit]")
{
	auto tname = GENERATE(from_range(transports()));
	DramPool pool;
	{
		daxnet::PortOptions opt;
		opt.pairs = 2;
		Port port = open_port(pool, tname, opt);
		Pair a = connected_pair(), b = connected_pair();
		auto ia = port.attach(a.server.get(), 0);
		auto ib = port.attach(b.server.get(), 1);
		REQUIRE(ia.ok());
		REQUIRE(ib.ok());
		write_all(a.client.get(), "aaaa", 4);
		write_all(b.client.get(), "bbbbbb", 6);
		Collector c0, c1;
		REQUIRE(run_until([&] { return c0.conns[*ia].data.size() == 4 && c1.conns[*ib].data.size() == 6; },
				  [&] {
					  port.wait(5);
					  REQUIRE(port.sync() >= 0);
					  c0.drain(port, 0);
					  c1.drain(port, 1);
				  }));
		CHECK(c0.conns.count(*ib) == 0);
		CHECK(c1.conns.count(*ia) == 0);
		CHECK(port.detach(*ia).ok());
		CHECK(port.detach(*ib).ok());
	}
	check_no_leak(pool);
}

TEST_CASE("detach mid-stream without DISCARD: bytes published before it + bytes left in the socket = the stream",
	  "[unit]")
{
	auto tname = GENERATE(from_range(transports()));
	auto small_ring = GENERATE(false, true);  // small RX ring: detach may meet a full ring (EBUSY, retry)
	DramPool pool;
	const daxnet::PortOptions opt = small_ring ? small_rings() : daxnet::PortOptions{};
	with_one_conn(pool, tname, opt, [&](Port& port, Pair& p, std::uint32_t id) {
		std::string msg = make_stream(8, 6u << 20);
		PeerThread peer = stream_peer(p.client.get(), msg);
		Collector col;
		REQUIRE(run_until([&] { return col.conns[id].data.size() >= (256u << 10); }, [&] { round(port, col, 2); }));
		// More syncs without releasing anything: completions and received
		// buffers pile up inside the transport, unpublished.
		for (int i = 0; i < 3; i++) {
			port.wait(2);
			REQUIRE(port.sync() >= 0);
		}
		daxnet::Status st = port.detach(id, false, 0);
		int busy = 0;
		while (!st && st.error().code == EBUSY && busy < 10000) {
			busy++;
			col.drain(port);
			st = port.detach(id, false, 0);
		}
		INFO((st ? "" : st.error().message));
		REQUIRE(st.ok());
		std::uint32_t published_at_detach = port.rx_ready();
		col.drain(port);
		std::string before = col.conns[id].data;
		// No slot of the connection after detach.
		for (int i = 0; i < 5; i++)
			round(port, col, 1);
		CHECK(col.conns[id].data.size() == before.size());
		// The rest is still in the socket, in order.
		std::string after = read_n(p.server.get(), msg.size());
		peer.join();
		std::printf("[detach] transport=%s small_ring=%d before=%zu (published by detach: %u slots, EBUSY %d) "
			    "after=%zu\n",
			    tname.c_str(), small_ring ? 1 : 0, before.size(), published_at_detach, busy, after.size());
		REQUIRE(before.size() + after.size() == msg.size());
		std::string all = before + after;
		CHECK(daxnet::pmem::crc32c(all.data(), all.size()) == daxnet::pmem::crc32c(msg.data(), msg.size()));
		CHECK(col.conns[id].error == 0);
	});
}

TEST_CASE("detach with DISCARD mid-stream drops unpublished bytes without leaking buffers", "[unit]")
{
	auto tname = GENERATE(from_range(transports()));
	DramPool pool;
	with_one_conn(pool, tname, small_rings(), [&](Port& port, Pair& p, std::uint32_t id) {
		std::string msg = make_stream(9, 2u << 20);
		PeerThread peer = stream_peer(p.client.get(), msg);
		Collector col;
		REQUIRE(run_until([&] { return col.conns[id].data.size() >= (64u << 10); }, [&] { round(port, col, 2); }));
		for (int i = 0; i < 3; i++) {
			port.wait(2);
			REQUIRE(port.sync() >= 0);
		}
		REQUIRE(port.detach(id, true).ok());
		for (int i = 0; i < 5; i++)
			round(port, col, 1);
		std::string rest = read_n(p.server.get(), msg.size());
		peer.join();
		CHECK(col.conns[id].data.size() + rest.size() <= msg.size());
		CHECK(col.conns[id].after_end == 0);
	});
}

namespace {

// Ping-pong echo of `n` messages of `size` bytes; returns per-slot stats.
struct EchoStats {
	std::uint64_t data_slots = 0;
	std::uint64_t fresh = 0;     ///< DATA slots at offset 0: a new buffer
	std::uint64_t held = 0;      ///< DATA slots with BUF_HELD
	std::uint64_t releases = 0;  ///< RELEASE slots
	bool echo_ok = false;
};

EchoStats small_echo(Port& port, Pair& p, std::uint32_t id, int n, std::size_t size)
{
	EchoStats st;
	std::atomic<bool> ok{true};
	PeerThread peer(p.client.get(), [&] {
		std::string m(size, '\0');
		for (int i = 0; i < n && ok; i++) {
			for (std::size_t k = 0; k < size; k++)
				m[k] = static_cast<char>(pattern(static_cast<std::uint32_t>(i), k));
			if (!write_all(p.client.get(), m.data(), m.size()) || read_n(p.client.get(), size, 120) != m)
				ok = false;
		}
		::shutdown(p.client.get(), SHUT_WR);
		read_n(p.client.get(), 1, 120);  // until the echo side closes
	});
	bool eof = false;
	// The limits are hang guards, not speed checks: 2000 round trips
	// under TCG on a loaded host took longer than 30 s.
	bool done = run_until([&] { return eof; },
			      [&] {
				      port.wait(5);
				      REQUIRE(port.sync() >= 0);
				      for (; port.rx_ready() && port.tx_space() > 1; port.rx_pop()) {
					      const daxnet_slot& s = port.rx_front();
					      if (s.flags & DAXNET_SLOT_RELEASE) {
						      st.releases++;
						      continue;
					      }
					      if (s.flags & DAXNET_SLOT_DATA) {
						      st.data_slots++;
						      st.fresh += s.offset == 0;
						      st.held += (s.flags & DAXNET_SLOT_BUF_HELD) != 0;
						      REQUIRE(port.tx_push(id, s.buf_idx, s.offset, s.len) == 0);
					      }
					      if (s.flags & DAXNET_SLOT_EOF) {
						      REQUIRE(port.shutdown_write(id) == 0);
						      eof = true;
					      }
				      }
			      },
			      std::chrono::seconds(600));
	for (int i = 0; i < 5; i++) {
		REQUIRE(port.sync() >= 0);
		for (; port.rx_ready(); port.rx_pop())
			st.releases += (port.rx_front().flags & DAXNET_SLOT_RELEASE) != 0;
	}
	peer.join();
	st.echo_ok = done && ok;
	return st;
}

}  // namespace

TEST_CASE("echo of 64-byte messages: pool buffers per 1000 messages; slices, BUF_HELD and RELEASE leave the pool free",
	  "[unit]")
{
	auto tname = GENERATE(from_range(transports()));
	DramPool pool;
	with_one_conn(pool, tname, {}, [&](Port& port, Pair& p, std::uint32_t id) {
		constexpr int kMsgs = 2000;
		EchoStats st = small_echo(port, p, id, kMsgs, 64);
		std::printf("[packing] transport=%s messages=%d rx_data_slots=%llu pool_buffers=%llu "
			    "buffers_per_1000_msgs=%.1f held_slices=%llu releases=%llu\n",
			    tname.c_str(), kMsgs, static_cast<unsigned long long>(st.data_slots),
			    static_cast<unsigned long long>(st.fresh), 1000.0 * static_cast<double>(st.fresh) / kMsgs,
			    static_cast<unsigned long long>(st.held), static_cast<unsigned long long>(st.releases));
		CHECK(st.echo_ok);
		CHECK(st.data_slots >= st.fresh);
		if (tname == "epoll") {
			// Packing: a 64-byte message lands in the remainder of the
			// buffer the previous one started.
			CHECK(st.held > 0);
			CHECK(st.fresh < st.data_slots);
		}
		if (tname == "uring")
			CHECK(st.held == 0);  // provided buffers are consumed whole
		CHECK(port.detach(id).ok());
	});
}

TEST_CASE("DAXNET_SYNC_TX moves only TX, DAXNET_SYNC_RX only RX", "[unit]")
{
	auto tname = GENERATE(from_range(transports()));
	DramPool pool;
	with_one_conn(pool, tname, {}, [&](Port& port, Pair& p, std::uint32_t id) {
		Collector col;
		REQUIRE(run_until([&] { return col.conns[id].new_conn > 0; }, [&] { round(port, col, 1); }));
		CHECK(port.sync(DAXNET_RING_ALL, 0x80) == -EINVAL);

		// RX waits while only TX is synced.
		write_all(p.client.get(), "abc", 3);
		std::this_thread::sleep_for(30ms);
		for (int i = 0; i < 5; i++) {
			REQUIRE(port.sync(DAXNET_RING_ALL, DAXNET_SYNC_TX) >= 0);
			std::this_thread::sleep_for(2ms);
		}
		CHECK(port.rx_ready() == 0);

		// TX waits while only RX is synced; RX arrives.
		const char out[] = "xyz";
		REQUIRE(port.send_copy(id, std::as_bytes(std::span(out, 3))) == 3);
		REQUIRE(run_until([&] { return col.conns[id].data.size() == 3; },
				  [&] {
					  port.wait(2);
					  REQUIRE(port.sync(DAXNET_RING_ALL, DAXNET_SYNC_RX) >= 0);
					  col.drain(port);
				  },
				  10s));
		CHECK(col.conns[id].data == "abc");
		char buf[8];
		std::this_thread::sleep_for(20ms);
		CHECK(::recv(p.client.get(), buf, sizeof(buf), MSG_DONTWAIT) == -1);

		// A TX sync sends it.
		REQUIRE(port.sync(DAXNET_RING_ALL, DAXNET_SYNC_TX) >= 0);
		CHECK(read_n(p.client.get(), 3, 10) == "xyz");
		CHECK(port.detach(id).ok());
	});
}

TEST_CASE("requests split across two receives and kept by swapping a spare in leave the transport's stock bounded",
	  "[unit]")
{
	// Issue 14: every BUF_CHANGED release went into the stock, unbounded
	// (daxnet-wal on epoll, POSTs sent as header then body: 1,973 pool
	// buffers for 2000 requests). A swapped-in spare beyond the spare
	// ring's size goes straight back with a RELEASE slot.
	auto tname = GENERATE(from_range(transports()));
	DramPool pool;
	daxnet::PortOptions opt;
	opt.rx_slots = 64;
	opt.spare_slots = 32;
	constexpr int kMsgs = 1000;
	std::uint64_t peak = 0;
	{
		Port port = open_port(pool, tname, opt);
		Pair p = connected_pair();
		std::uint32_t id = attach(port, p.server.get());
		Collector col;
		REQUIRE(run_until([&] { return col.conns[id].new_conn > 0; }, [&] { round(port, col, 1); }));
		std::size_t want = 0;
		for (int m = 0; m < kMsgs; m++) {
			// The head: kept (swapped), as a server keeps an incomplete request.
			std::vector<daxnet::BufferLease> kept;
			const char head[] = "POST /log/s HTTP/1.1\r\nContent-Length: 80\r\n\r\n";
			REQUIRE(write_all(p.client.get(), head, sizeof head - 1));
			want += sizeof head - 1;
			REQUIRE(run_until([&] { return col.conns[id].data.size() == want; },
					  [&] {
						  port.wait(2);
						  REQUIRE(port.sync() >= 0);
						  for (; port.rx_ready(); port.rx_pop()) {
							  const daxnet_slot& s = port.rx_front();
							  col.on(port, s);
							  if (s.flags & DAXNET_SLOT_DATA)
								  kept.push_back(port.keep());
						  }
					  }));
			// The body: the request completes, the kept head goes.
			std::string body(80, 'b');
			REQUIRE(write_all(p.client.get(), body.data(), body.size()));
			want += body.size();
			REQUIRE(run_until([&] { return col.conns[id].data.size() == want; }, [&] { round(port, col, 2); }));
			kept.clear();
			peak = std::max<std::uint64_t>(peak, pool.geo.buffer_count - pool.alloc.free_count());
		}
		std::printf("[split] transport=%s requests=%d peak_pool_buffers_in_use=%llu (spare_slots=%u rx_slots=%u)\n",
			    tname.c_str(), kMsgs, static_cast<unsigned long long>(peak), opt.spare_slots, opt.rx_slots);
		// What the port and its transport hold is bounded: the transport at
		// most spare_slots + rx_slots per pair (the ABI's bound; daxnet.ko's
		// stock cap), the spare ring below spare_slots, plus the leases
		// and RX slots held here (a few).
		CHECK(peak <= 2 * opt.spare_slots + opt.rx_slots + 16);
		CHECK(port.detach(id).ok());
	}
	check_no_leak(pool);
}

TEST_CASE("detach with DISCARD returns while a send to a peer that never reads is in flight, and its buffers come back",
	  "[unit]")
{
	// Issue 14: the io_uring detach waited for the send's completion,
	// which a zero-window peer never lets come (SIGTERM could not stop
	// the server). A hang here is reported by the watchdog.
	auto tname = GENERATE(from_range(transports()));
	DramPool pool(64u << 20);
	{
		Port port = open_port(pool, tname);
		Pair p = connected_pair();
		small_socket_buffers(p);
		std::uint32_t id = attach(port, p.server.get());
		Collector col;
		REQUIRE(run_until([&] { return col.conns[id].new_conn > 0; }, [&] { round(port, col, 1); }));
		// 8 MiB the peer never reads.
		constexpr std::uint32_t kBufs = 2048;
		const std::uint32_t bs = pool.view.buffer_size();
		push_unread(port, col, id, kBufs, bs, 'z');
		for (int i = 0; i < 10; i++)
			round(port, col, 1);
		REQUIRE(port.counters().tx_bytes < std::uint64_t{kBufs} * bs);  // still queued
		const std::uint64_t in_use_queued = pool.geo.buffer_count - pool.alloc.free_count();
		std::atomic<bool> returned{false};
		std::thread watchdog([&] {
			for (int i = 0; i < 600 && !returned; i++)
				std::this_thread::sleep_for(100ms);
			if (!returned) {
				std::fprintf(stderr, "detach with DISCARD did not return within 60 s (transport %s)\n",
					     tname.c_str());
				std::_Exit(3);
			}
		});
		daxnet::Status st = port.detach(id, true);
		returned = true;
		watchdog.join();
		CHECK(st.ok());
		p.server.reset();  // the application closes the socket
		// The queued buffers come back (RELEASE slots) at later syncs.
		std::uint64_t in_use = in_use_queued;
		bool back = run_until([&] { return in_use + kBufs / 2 <= in_use_queued; },
				      [&] {
					      round(port, col, 2);
					      in_use = pool.geo.buffer_count - pool.alloc.free_count();
				      });
		std::printf("[zero-window] transport=%s buffers in use: queued %llu, after detach %llu\n", tname.c_str(),
			    static_cast<unsigned long long>(in_use_queued), static_cast<unsigned long long>(in_use));
		CHECK(back);
		CHECK(col.conns[id].after_end == 0);
	}
	check_no_leak(pool);
}

TEST_CASE("auto picks the kernel transport, else io_uring where COOP_TASKRUN works, else epoll", "[unit]")
{
	DramPool pool;
	daxnet::PortOptions opt;  // transport = automatic
	auto p = Port::open(pool.view, pool.src, opt);
	REQUIRE(p.ok());
	daxnet::TransportKind want = daxnet::TransportKind::epoll;
	if (::access(DAXNET_DEVICE, F_OK) == 0) {
		want = daxnet::TransportKind::kernel;
	} else {
		io_uring ring{};
		io_uring_params prm{};
		prm.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
		if (io_uring_queue_init_params(8, &ring, &prm) == 0) {
			io_uring_queue_exit(&ring);
			want = daxnet::TransportKind::uring;
		}
	}
	std::printf("[auto] picked %s\n", std::string(daxnet::to_string(p->transport())).c_str());
	CHECK(p->transport() == want);
}

TEST_CASE("tx_queued counts one connection's unsent TX until its peer reads it, and nobody else's", "[unit]")
{
	// Issue 14: the services bound each connection's share of the port
	// by this count; a peer that never reads keeps it up, reading brings
	// it to zero.
	auto tname = GENERATE(from_range(transports()));
	DramPool pool(64u << 20);
	{
		Port port = open_port(pool, tname);
		Pair p = connected_pair();
		Pair other = connected_pair();
		small_socket_buffers(p);
		std::uint32_t id = attach(port, p.server.get());
		std::uint32_t id2 = attach(port, other.server.get());
		Collector col;
		REQUIRE(run_until([&] { return col.conns[id].new_conn > 0 && col.conns[id2].new_conn > 0; },
				  [&] { round(port, col, 1); }));
		CHECK(port.tx_queued(id).bytes == 0);
		constexpr std::uint32_t kBufs = 48;  // 192 KiB the peer does not read yet
		const std::uint32_t bs = pool.view.buffer_size();
		push_unread(port, col, id, kBufs, bs, 'q');
		for (int i = 0; i < 10; i++)
			round(port, col, 1);
		const daxnet::TxQueued q = port.tx_queued(id);
		const std::uint64_t sent = port.counters().tx_bytes;
		// The kernel transport too: from the connection state table
		// (DAXNET_REG_CONNSTATE), where it used to report zeros.
		CHECK(sent < std::uint64_t{kBufs} * bs);
		CHECK(q.slots > 0);
		CHECK(q.slots <= kBufs);
		CHECK(q.bytes > 0);
		CHECK(q.bytes <= std::uint64_t{kBufs} * bs);
		CHECK(q.bytes >= std::uint64_t{kBufs} * bs - sent);
		CHECK(port.tx_queued(id2).bytes == 0);
		CHECK(port.tx_queued(id2).slots == 0);
		CHECK(port.tx_queued(0x7fffff).slots == 0);  // no such connection
		// The peer reads it all: nothing stays queued.
		::fcntl(p.client.get(), F_SETFL, O_NONBLOCK);
		std::uint64_t got = 0;
		std::vector<char> sink(1 << 16);
		// Open the window again (4 KiB buffers make every window update a
		// persist-timer wait); the limit only bounds the test.
		int big = 1 << 20;
		::setsockopt(p.client.get(), SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
		REQUIRE(run_until([&] { return got == std::uint64_t{kBufs} * bs && port.tx_queued(id).slots == 0; },
				  [&] {
					  ssize_t r;
					  while ((r = ::recv(p.client.get(), sink.data(), sink.size(), 0)) > 0)
						  got += static_cast<std::uint64_t>(r);
					  round(port, col, 1);
				  },
				  std::chrono::minutes(10)));
		CHECK(port.tx_queued(id).bytes == 0);
		REQUIRE(port.detach(id).ok());
		REQUIRE(port.detach(id2).ok());
		for (int i = 0; i < 5; i++)
			round(port, col, 1);
	}
	check_no_leak(pool);
}
