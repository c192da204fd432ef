// SPDX-License-Identifier: BSD-2-Clause
//
// Several threads on one pool: SharedBufferSource / LocalBufferSource
// (buffer.h) under concurrent take/ref/unref, and the multi-core model of
// port.h - one Port per thread, each with its own SO_REUSEPORT listener on
// the same TCP port, one shared pool. Runs under TSan (label `threads`,
// preset tsan).
#include <sys/socket.h>

#include <atomic>
#include <cstdio>
#include <deque>
#include <mutex>
#include <thread>

#include "daxnet/pmem/crc32c.h"
#include "harness.h"

using namespace dxtest;
using daxnet::LocalBufferSource;
using daxnet::Port;
using daxnet::SharedBufferSource;

namespace {

void check_all_free(DramPool& pool)
{
	CHECK(pool.alloc.free_count() == pool.geo.buffer_count);
	CHECK(pool.alloc.check());
}

}  // namespace

TEST_CASE("SharedBufferSource: threads take, share, hand over and drop buffers, no buffer is handed out twice",
	  "[unit][threads]")
{
	DramPool pool(8u << 20);  // 2048 buffers: the threads compete for them
	constexpr int kThreads = 4, kRounds = 20000;
	{
		SharedBufferSource shared(pool.alloc);
		// Buffers handed from one thread to another (the receiver drops
		// the reference: a lease dropped on a foreign thread).
		std::mutex mu;
		std::deque<std::uint32_t> handed;
		std::atomic<int> bad{0};
		std::atomic<std::uint64_t> took{0};
		auto worker = [&](int t) {
			LocalBufferSource src(shared, 32);
			std::vector<std::pair<std::uint32_t, std::uint64_t>> mine;  // (buf, stamp)
			std::uint64_t seq = 0;
			auto stamp_of = [&](std::uint32_t b) {
				std::uint64_t v;
				std::memcpy(&v, pool.view.buffer(b), sizeof(v));
				return v;
			};
			for (int r = 0; r < kRounds; r++) {
				std::uint32_t b;
				if (src.take(b)) {
					took++;
					// A buffer we own alone: stamp it, nobody may touch it.
					std::uint64_t st = (std::uint64_t(t) << 48) | ++seq;
					std::memcpy(pool.view.buffer(b), &st, sizeof(st));
					if (r % 3 == 0) {
						src.ref(b);  // a second reference, dropped at once
						src.unref(b);
					}
					mine.emplace_back(b, st);
				}
				if (mine.size() > 24 || (r % 5 == 0 && !mine.empty())) {
					auto [ob, ost] = mine.front();
					mine.erase(mine.begin());
					if (stamp_of(ob) != ost)
						bad++;
					if (r % 7 == 0) {
						std::lock_guard lk(mu);
						handed.push_back(ob);  // the reference travels
					} else {
						src.unref(ob);
					}
				}
				// Drop a reference another thread handed over.
				std::uint32_t hb = 0xffffffffu;
				{
					std::lock_guard lk(mu);
					if (!handed.empty() && r % 2 == 0) {
						hb = handed.front();
						handed.pop_front();
					}
				}
				if (hb != 0xffffffffu)
					src.unref(hb);
			}
			for (auto [ob, ost] : mine) {
				if (stamp_of(ob) != ost)
					bad++;
				src.unref(ob);
			}
		};
		std::vector<std::thread> ts;
		for (int t = 0; t < kThreads; t++)
			ts.emplace_back(worker, t);
		for (auto& t : ts)
			t.join();
		for (std::uint32_t b : handed)
			shared.unref(b);
		CHECK(bad == 0);
		CHECK(took > std::uint64_t{kRounds});
		for (std::uint32_t b = 0; b < pool.geo.buffer_count; b++)
			REQUIRE(shared.refcount(b) == 0);
	}
	check_all_free(pool);
}

TEST_CASE("SharedBufferSource composes with direct allocator references (the WAL's)", "[unit][threads]")
{
	DramPool pool(1u << 20);
	{
		SharedBufferSource shared(pool.alloc);
		LocalBufferSource src(shared, 8);
		std::uint32_t b;
		REQUIRE(src.take(b));
		// The WAL keeps the buffer through the allocator itself.
		shared.with_allocator([&](daxnet::pmem::BufferAllocator& a) { a.ref(b); });
		src.unref(b);
		src.flush();
		CHECK_FALSE(pool.alloc.is_free(b));
		// A later reference through the source (sending the value) and its end.
		src.ref(b);
		std::thread([&] { src.unref(b); }).join();  // dropped on another thread
		src.flush();
		CHECK_FALSE(pool.alloc.is_free(b));
		shared.with_allocator([&](daxnet::pmem::BufferAllocator& a) { a.unref(b); });
		CHECK(pool.alloc.is_free(b));
	}
	check_all_free(pool);
}

TEST_CASE("one Port per thread, SO_REUSEPORT listeners on one port, one shared pool: checksummed echo streams",
	  "[unit][threads]")
{
	auto tname = GENERATE(from_range(transports()));
	constexpr int kServers = 3, kClients = 4, kConnsPerClient = 30;
	constexpr int kConns = kClients * kConnsPerClient;
	raise_nofile(4 * kConns + 64);
	DramPool pool(64u << 20);
	{
		SharedBufferSource shared(pool.alloc);
		std::vector<daxnet::UniqueFd> listeners;
		std::uint16_t lport = 0;
		for (int i = 0; i < kServers; i++) {
			auto l = daxnet::listen_tcp("127.0.0.1", lport, {.reuseport = true, .backlog = 1024});
			REQUIRE(l.ok());
			lport = daxnet::local_port(l->get());
			listeners.push_back(std::move(*l));
		}
		std::atomic<bool> stop{false};
		std::atomic<int> server_fail{0};
		std::vector<int> accepted(kServers, 0);
		std::vector<std::uint64_t> echoed(kServers, 0);
		auto server = [&](int t) {
			LocalBufferSource src(shared);
			daxnet::PortOptions opt;
			opt.transport = *daxnet::parse_transport(tname);
			opt.rx_slots = 256;
			opt.tx_slots = 256;
			opt.spare_slots = 64;
			auto port = Port::open(pool.view, src, opt);
			if (!port) {
				server_fail++;
				return;
			}
			daxnet::Acceptor acc(listeners[t].get());
			std::vector<daxnet::UniqueFd> fds;
			std::vector<std::uint32_t> ids;
			std::vector<daxnet::BufferLease> kept;
			std::uint64_t n = 0;
			while (!stop) {
				acc.accept_all(*port, 0, [&](std::uint32_t id, daxnet::UniqueFd&& fd) {
					fds.push_back(std::move(fd));
					ids.push_back(id);
					accepted[t]++;
				});
				port->wait(2);
				if (port->sync() < 0) {
					server_fail++;
					return;
				}
				for (; port->rx_ready() && port->tx_space() > 2; port->rx_pop()) {
					const daxnet_slot& s = port->rx_front();
					if (s.flags & DAXNET_SLOT_DATA) {
						std::uint32_t conn = s.conn, off = s.offset, len = s.len;
						if (n++ % 5 == 0) {
							// Keep the buffer (a fresh spare swapped in) and
							// send from the lease.
							daxnet::BufferLease l = port->keep();
							if (!l || port->tx_push(conn, l.index(), off, len) != 0)
								server_fail++;
							kept.push_back(std::move(l));
							if (kept.size() > 16)
								kept.erase(kept.begin());
						} else if (port->tx_push(conn, s.buf_idx, off, len) != 0) {
							server_fail++;
						}
						echoed[t] += len;
					}
					if (s.flags & DAXNET_SLOT_EOF)
						port->shutdown_write(s.conn);
					if (s.flags & DAXNET_SLOT_ERROR)
						server_fail++;
				}
			}
			kept.clear();
			for (std::uint32_t id : ids)
				if (!port->detach(id, false, 5000))
					server_fail++;
		};
		std::atomic<int> good{0}, client_fail{0};
		auto client = [&](int c) {
			std::vector<daxnet::UniqueFd> fds;
			std::vector<std::string> msgs;
			for (int i = 0; i < kConnsPerClient; i++) {
				auto fd = daxnet::connect_tcp("127.0.0.1", lport);
				if (!fd) {
					client_fail++;
					return;
				}
				auto seed = static_cast<std::uint32_t>(c * kConnsPerClient + i);
				msgs.push_back(make_stream(seed, 8000 + 1000 * (seed % 17)));
				fds.push_back(std::move(*fd));
			}
			for (int i = 0; i < kConnsPerClient; i++) {
				if (!write_all(fds[i].get(), msgs[i].data(), msgs[i].size()))
					client_fail++;
				::shutdown(fds[i].get(), SHUT_WR);
			}
			for (int i = 0; i < kConnsPerClient; i++) {
				std::string got = read_n(fds[i].get(), msgs[i].size() + 1, 30);
				if (got.size() == msgs[i].size() &&
				    daxnet::pmem::crc32c(got.data(), got.size()) ==
					    daxnet::pmem::crc32c(msgs[i].data(), msgs[i].size()))
					good++;
				else
					client_fail++;
			}
		};
		std::vector<std::thread> servers, clients;
		for (int t = 0; t < kServers; t++)
			servers.emplace_back(server, t);
		for (int c = 0; c < kClients; c++)
			clients.emplace_back(client, c);
		for (auto& t : clients)
			t.join();
		stop = true;
		for (auto& t : servers)
			t.join();
		std::printf("[threads] transport=%s accepted per thread:", tname.c_str());
		for (int t = 0; t < kServers; t++)
			std::printf(" %d (%llu B)", accepted[t], static_cast<unsigned long long>(echoed[t]));
		std::printf("\n");
		CHECK(server_fail == 0);
		CHECK(client_fail == 0);
		CHECK(good == kConns);
		int total = 0;
		for (int t = 0; t < kServers; t++) {
			CHECK(accepted[t] > 0);  // SO_REUSEPORT spread the connections
			total += accepted[t];
		}
		CHECK(total == kConns);
		for (std::uint32_t b = 0; b < pool.geo.buffer_count; b++)
			REQUIRE(shared.refcount(b) == 0);
	}
	check_all_free(pool);
}
