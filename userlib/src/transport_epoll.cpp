// SPDX-License-Identifier: BSD-2-Clause
//
// The epoll transport, the baseline: per sync and ring pair one
// epoll_wait(0), then sendmsg (gathering a connection's queued slots into
// one iovec) and recv straight into pool buffers from the spare stock.
// Level-triggered, so a connection left unread for backpressure (RX ring
// full, no spare) is simply reported again by a later sync.
//
// Packing (docs/abi.md, Slices): when a recv fills only part of a buffer,
// the buffer stays with the connection and the next recv of that
// connection lands in the remainder. Every slice but the last of a buffer
// is published with BUF_HELD; the last one (the buffer is full, or the
// remainder is too small to be worth keeping) goes without it. When the
// connection stops reading first (EOF, ERROR, detach) a RELEASE slot
// returns the transport's reference. At most rx_slots buffers per pair are
// held this way, so the transport never holds more than spare_slots +
// rx_slots buffers per pair (the ABI's bound).
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <string>
#include <vector>

#include "daxnet/fd.h"
#include "user_transport.h"

namespace daxnet::detail {

namespace {

constexpr int kMaxEvents = 256;
/// A partly filled buffer is kept for the next recv of its connection
/// only while at least this many bytes are left in it.
constexpr std::uint32_t kMinPackRoom = 256;

class EpollTransport final : public UserTransport {
public:
	explicit EpollTransport(const TransportConfig& cfg) : UserTransport(cfg) {}

	Status init()
	{
		if (Status st = init_common(); !st)
			return st;
		ep_.resize(cfg_.pairs);
		stock_.resize(cfg_.pairs);
		readable_.resize(cfg_.pairs);
		held_.assign(cfg_.pairs, 0);
		for (std::uint32_t p = 0; p < cfg_.pairs; p++) {
			ep_[p].reset(::epoll_create1(EPOLL_CLOEXEC));
			if (!ep_[p])
				return make_error(errno, "epoll transport: epoll_create1 failed");
			stock_[p].reserve(cfg_.spare_slots + cfg_.rx_slots + 1);
			readable_[p].reserve(cfg_.max_conns);
		}
		if (cfg_.pairs == 1) {
			top_fd_ = ep_[0].get();
		} else {
			top_.reset(::epoll_create1(EPOLL_CLOEXEC));
			if (!top_)
				return make_error(errno, "epoll transport: epoll_create1 failed");
			for (std::uint32_t p = 0; p < cfg_.pairs; p++) {
				epoll_event ev{};
				ev.events = EPOLLIN;
				ev.data.u32 = p;
				if (::epoll_ctl(top_.get(), EPOLL_CTL_ADD, ep_[p].get(), &ev) != 0)
					return make_error(errno, "epoll transport: epoll_ctl failed");
			}
			top_fd_ = top_.get();
		}
		state_.resize(cfg_.max_conns);
		return {};
	}

	TransportKind kind() const noexcept override { return TransportKind::epoll; }
	int fd() const noexcept override { return top_fd_; }

protected:
	struct ConnIo {
		std::uint32_t mask = 0;    ///< events registered (0: not registered)
		bool readable = false;
		std::uint32_t pack_buf = DAXNET_NO_BUF;  ///< buffer being packed (held)
		std::uint32_t pack_off = 0;              ///< first unpublished byte of it
	};

	void stock_put(std::uint32_t pair, std::uint32_t buf) noexcept override { stock_[pair].push_back(buf); }
	std::uint32_t stock_count(std::uint32_t pair) const noexcept override
	{
		return static_cast<std::uint32_t>(stock_[pair].size());
	}

	Status attach_io(std::uint32_t ci) override
	{
		state_[ci] = ConnIo{};
		if (int r = set_mask(ci, EPOLLIN); r < 0)
			return make_error(-r, "attach: epoll_ctl failed");
		return {};
	}

	void stop_rx(std::uint32_t ci) noexcept override
	{
		// Reads are synchronous: every received byte is already an event.
		drop_pack(ci);
		update_mask(ci);
	}

	void detach_io(std::uint32_t ci) noexcept override
	{
		drop_pack(ci);
		set_mask(ci, 0);
		state_[ci] = ConnIo{};
	}

	void io(std::uint32_t pair, bool tx, bool rx) noexcept override
	{
		Pair& P = pairs_[pair];
		epoll_event evs[kMaxEvents];
		int n = ::epoll_wait(ep_[pair].get(), evs, kMaxEvents, 0);
		P.ctr.syscalls++;
		auto& rd = readable_[pair];
		for (int i = 0; i < n; i++) {
			Conn* c = conn_by_id(static_cast<std::uint32_t>(evs[i].data.u64));
			if (!c)
				continue;
			std::uint32_t ci = DAXNET_CONN_INDEX(c->id);
			if ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) && !state_[ci].readable) {
				state_[ci].readable = true;
				rd.push_back(ci);
			}
		}
		// TX first: flush every connection with queued slots, in order.
		for (std::size_t k = 0; tx && k < P.tx_active.size();) {
			std::uint32_t ci = P.tx_active[k];
			flush(ci);
			Conn& c = conns_[ci];
			if (c.txq_head == kNil) {
				c.tx_listed = false;
				P.tx_active[k] = P.tx_active.back();
				P.tx_active.pop_back();
			} else {
				k++;
			}
			update_mask(ci);
		}
		// RX: read readable connections while there is room and stock
		// (a TX-only sync keeps them listed for the next RX sync).
		if (!rx)
			return;
		for (std::uint32_t ci : rd) {
			// Listed by an earlier TX-only sync, detached since.
			if (conns_[ci].id == DAXNET_NO_CONN || !state_[ci].readable)
				continue;
			state_[ci].readable = false;
			read_conn(ci);
			update_mask(ci);
		}
		rd.clear();
	}

private:
	int set_mask(std::uint32_t ci, std::uint32_t mask) noexcept
	{
		ConnIo& s = state_[ci];
		Conn& c = conns_[ci];
		if (mask == s.mask)
			return 0;
		epoll_event ev{};
		ev.events = mask;
		ev.data.u64 = c.id;
		int op = s.mask == 0 ? EPOLL_CTL_ADD : mask == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
		int r = ::epoll_ctl(ep_[c.pair].get(), op, c.fd, &ev);
		pairs_[c.pair].ctr.syscalls++;
		if (r != 0 && mask != 0)
			return -errno;
		s.mask = mask;
		return 0;
	}

	void update_mask(std::uint32_t ci) noexcept
	{
		const Conn& c = conns_[ci];
		std::uint32_t m = 0;
		if (!c.rx_done && !c.rx_stopped)
			m |= EPOLLIN;
		if (c.txq_head != kNil)
			m |= EPOLLOUT;
		set_mask(ci, m);
	}

	void flush(std::uint32_t ci) noexcept
	{
		Conn& c = conns_[ci];
		Pair& P = pairs_[c.pair];
		for (;;) {
			finish_sent_heads(ci);
			if (c.txq_head == kNil)
				break;
			iovec iov[kMaxIov];
			const std::uint32_t cnt = gather_tx(ci, iov);
			msghdr msg{};
			msg.msg_iov = iov;
			msg.msg_iovlen = cnt;
			ssize_t r = ::sendmsg(c.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
			P.ctr.syscalls++;
			if (r < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					return;
				drop_pack(ci);
				push_error(ci, errno);
				return;
			}
			auto left = static_cast<std::uint64_t>(r);
			P.ctr.tx_bytes += left;
			P.ctr.cpu_copied += left;
			bool partial = false;
			while (c.txq_head != kNil) {
				TxItem& x = items_[c.txq_head];
				if (!(x.flags & DAXNET_SLOT_DATA))
					break;
				std::uint64_t want = x.len - x.sent;
				if (left < want) {
					x.sent += static_cast<std::uint32_t>(left);
					partial = true;
					break;
				}
				left -= want;
				x.sent = x.len;
				if (x.flags & DAXNET_SLOT_EOF)
					break;  // shutdown handled at the top of the loop
				finish_head(ci);
				if (left == 0)
					break;
			}
			if (partial)
				return;  // socket full: EPOLLOUT brings us back
		}
	}

	/// Gives up the buffer held for packing (RELEASE slot), if any.
	void drop_pack(std::uint32_t ci) noexcept
	{
		ConnIo& s = state_[ci];
		if (s.pack_buf == DAXNET_NO_BUF)
			return;
		std::uint32_t pair = conns_[ci].pair;
		push_release(pair, s.pack_buf);
		held_[pair]--;
		s.pack_buf = DAXNET_NO_BUF;
		s.pack_off = 0;
	}

	void read_conn(std::uint32_t ci) noexcept
	{
		Conn& c = conns_[ci];
		Pair& P = pairs_[c.pair];
		ConnIo& s = state_[ci];
		auto& stock = stock_[c.pair];
		const std::uint32_t bsize = cfg_.pool.buffer_size();
		while (!c.rx_done && !c.rx_stopped) {
			if (rx_room(c.pair) == 0) {
				P.ctr.rx_ring_full++;
				return;
			}
			std::uint32_t buf = s.pack_buf, off = s.pack_off;
			if (buf == DAXNET_NO_BUF) {
				if (stock.empty()) {
					P.ctr.spare_empty++;
					return;
				}
				buf = stock.back();
				off = 0;
			}
			const std::uint32_t room = bsize - off;
			ssize_t r = ::recv(c.fd, cfg_.pool.buffer(buf) + off, room, MSG_DONTWAIT);
			P.ctr.syscalls++;
			if (r > 0) {
				auto n = static_cast<std::uint32_t>(r);
				if (s.pack_buf == DAXNET_NO_BUF)
					stock.pop_back();
				// Keep the buffer for the next bytes of this conn while
				// enough of it is left (and the held bound allows).
				bool keep = room - n >= kMinPackRoom &&
					    (s.pack_buf != DAXNET_NO_BUF || held_[c.pair] < cfg_.rx_slots);
				if (keep && s.pack_buf == DAXNET_NO_BUF) {
					s.pack_buf = buf;
					held_[c.pair]++;
				} else if (!keep && s.pack_buf != DAXNET_NO_BUF) {
					s.pack_buf = DAXNET_NO_BUF;
					held_[c.pair]--;
				}
				s.pack_off = keep ? off + n : 0;
				push_slice(ci, buf, off, n, keep);
				if (n < room)
					return;  // drained (level-triggered epoll tells if not)
				continue;
			}
			if (r == 0) {
				drop_pack(ci);
				push_eof(ci);
				return;
			}
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				drop_pack(ci);
				push_error(ci, errno);
			}
			return;
		}
	}

	std::vector<UniqueFd> ep_;
	UniqueFd top_;
	int top_fd_ = -1;
	std::vector<std::vector<std::uint32_t>> stock_;
	std::vector<std::vector<std::uint32_t>> readable_;
	std::vector<std::uint32_t> held_;  ///< per pair: buffers held for packing
	std::vector<ConnIo> state_;
};

}  // namespace

Result<std::unique_ptr<Transport>> make_epoll_transport(const TransportConfig& cfg)
{
	auto t = std::make_unique<EpollTransport>(cfg);
	if (Status st = t->init(); !st)
		return st.error();
	return std::unique_ptr<Transport>(std::move(t));
}

}  // namespace daxnet::detail
