// SPDX-License-Identifier: BSD-2-Clause
//
// The io_uring transport. Per ring pair: one io_uring and one provided-
// buffer ring (group id = pair) whose buffers ARE pool buffers: the spare
// stock lives there. Every connection has one multishot recv armed into
// that group; each completion is one pool buffer = one RX slot. Sends: at
// most one send in flight per connection (ordering): IORING_OP_SEND for one
// queued slot, IORING_OP_SENDMSG gathering several. A sync prepares SQEs,
// then makes at most ONE io_uring_enter (io_uring_submit_and_get_events)
// and reaps completions from the CQ ring without further syscalls; with
// nothing to submit and no task work flagged it makes none.
//
// Ring setup for a network server (docs/design.md, io_uring transport):
// IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG - completions are
// queued as task work without interrupting the task (no IPI, no forced
// kernel entry while it parses requests) and run at its next
// io_uring_enter; IORING_SQ_TASKRUN in the SQ flags says one is due. A
// task asleep in poll() on the ring fd is still woken (the task work
// marks it), so the port fd stays pollable as docs/abi.md promises -
// which is why DEFER_TASKRUN (whose task work only a GETEVENTS enter
// runs) is not used. Sockets are registered files (IOSQE_FIXED_FILE,
// index = conn index) and the ring fd is registered for io_uring_enter by
// the thread that first syncs. Each feature a kernel lacks (EINVAL at
// setup or registration) is dropped and the ring works without it;
// features() says which ones are in use.
//
// liburing 2.3: no io_uring_setup_buf_ring, so the buffer ring is a
// page-aligned mmap registered with io_uring_register_buf_ring. Buffer ids
// are 16 bits, so a bid indexes a table of pool indices.
//
// No packing: a provided buffer is consumed whole by one completion, so
// every RX slot starts a fresh pool buffer (offset 0, no BUF_HELD), even
// for a 64-byte message. Incremental consumption of provided buffers
// (IOU_PBUF_RING_INC) arrived only in Linux 6.12; Debian 12's 6.1 and
// liburing 2.3 have nothing like it. The epoll transport packs.
//
// Detach (without DISCARD) cancels the conn's multishot recv and waits for
// its final completion (a cancel completes at once); every completion
// before it carries bytes already taken from the socket and is published
// as DATA before detach returns. A detach never waits for a send: one still
// in flight (a peer that does not read) is cancelled, the socket shut
// down, and its queued TX items stay with the transport (their buffers in
// use) until the send's completion arrives at a later sync, when RELEASE
// slots give them back.
#include <liburing.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "daxnet/fd.h"
#include "user_transport.h"

namespace daxnet::detail {

namespace {

constexpr std::uint64_t kOpRecv = 1, kOpSend = 2, kOpCancel = 3;

/// One marker per thread: which thread registered a ring fd.
const void* this_thread_tag() noexcept
{
	static thread_local char tag;
	return &tag;
}

std::uint64_t tag(std::uint64_t op, std::uint32_t conn) noexcept
{
	return (std::uint64_t{conn} << 8) | op;
}

std::uint32_t pow2_at_least(std::uint32_t v) noexcept
{
	std::uint32_t p = 1;
	while (p < v)
		p <<= 1;
	return p;
}

class UringTransport final : public UserTransport {
public:
	explicit UringTransport(const TransportConfig& cfg) : UserTransport(cfg) {}

	~UringTransport() override
	{
		for (auto& u : rings_) {
			if (u.ring_ok) {
				release_ring_fd(u);
				if (u.br)
					io_uring_unregister_buf_ring(&u.ring, static_cast<int>(u.bgid));
				io_uring_queue_exit(&u.ring);
			}
			if (u.br)
				::munmap(u.br, u.br_bytes);
		}
	}

	Status init()
	{
		if (Status st = init_common(); !st)
			return st;
		std::uint32_t entries = pow2_at_least(cfg_.spare_slots + cfg_.rx_slots);
		if (entries > 32768)
			return make_error(EINVAL, "uring transport: spare_slots + rx_slots exceeds 32768 buffer ids");
		rings_.resize(cfg_.pairs);
		for (std::uint32_t p = 0; p < cfg_.pairs; p++) {
			U& u = rings_[p];
			unsigned sq = pow2_at_least(std::min<std::uint32_t>(4096, std::max<std::uint32_t>(64, cfg_.max_conns + cfg_.tx_slots)));
			// The flags a network server wants, dropped one by one
			// while the kernel refuses them (EINVAL: older than 5.19).
			unsigned want = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL;
			if (std::getenv("DAXNET_URING_NO_COOP"))  // measurements: the ring as before (documented)
				want &= ~(IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG);
			int r;
			for (;;) {
				io_uring_params prm{};
				prm.flags = IORING_SETUP_CQSIZE | want;
				prm.cq_entries = 4 * sq;
				r = io_uring_queue_init_params(sq, &u.ring, &prm);
				if (r != -EINVAL || want == 0)
					break;
				if (want & IORING_SETUP_SUBMIT_ALL)
					want &= ~unsigned{IORING_SETUP_SUBMIT_ALL};  // 5.18
				else
					want = 0;  // COOP_TASKRUN and TASKRUN_FLAG: 5.19
			}
			if (r < 0)
				return make_error(-r, std::string("uring transport: io_uring_queue_init: ") + std::strerror(-r));
			u.ring_ok = true;
			u.setup_flags = want;
			// Registered files: one slot per conn index (5.19+; else plain fds).
			u.fixed_files = !std::getenv("DAXNET_URING_NO_FIXED") &&
					io_uring_register_files_sparse(&u.ring, cfg_.max_conns) == 0;
			u.entries = entries;
			u.bgid = p;
			u.br_bytes = (entries * sizeof(io_uring_buf) + 4095) / 4096 * 4096;
			void* m = ::mmap(nullptr, u.br_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (m == MAP_FAILED)
				return make_error(errno, "uring transport: mmap of the buffer ring failed");
			u.br = static_cast<io_uring_buf_ring*>(m);
			io_uring_buf_reg reg{};
			reg.ring_addr = reinterpret_cast<std::uint64_t>(m);
			reg.ring_entries = entries;
			reg.bgid = static_cast<std::uint16_t>(p);
			r = io_uring_register_buf_ring(&u.ring, &reg, 0);
			if (r < 0) {
				::munmap(m, u.br_bytes);
				u.br = nullptr;
				return make_error(-r, std::string("uring transport: provided buffer rings unsupported: ") +
							      std::strerror(-r));
			}
			io_uring_buf_ring_init(u.br);
			u.bid_buf.assign(entries, DAXNET_NO_BUF);
			u.free_bids.reserve(entries);
			for (std::uint32_t b = entries; b-- > 0;)
				u.free_bids.push_back(static_cast<std::uint16_t>(b));
			u.rearm.reserve(cfg_.max_conns);
		}
		state_.resize(cfg_.max_conns);
		if (cfg_.pairs == 1) {
			fd_ = rings_[0].ring.ring_fd;
		} else {
			top_.reset(::epoll_create1(EPOLL_CLOEXEC));
			if (!top_)
				return make_error(errno, "uring transport: epoll_create1 failed");
			for (std::uint32_t p = 0; p < cfg_.pairs; p++) {
				epoll_event ev{};
				ev.events = EPOLLIN;
				ev.data.u32 = p;
				::epoll_ctl(top_.get(), EPOLL_CTL_ADD, rings_[p].ring.ring_fd, &ev);
			}
			fd_ = top_.get();
		}
		return {};
	}

	TransportKind kind() const noexcept override { return TransportKind::uring; }
	int fd() const noexcept override { return fd_; }

	/// True when every ring got task work without interrupts (the setup
	/// `auto` requires before it prefers this transport to epoll).
	bool coop_taskrun() const noexcept
	{
		for (const U& u : rings_)
			if (!(u.setup_flags & IORING_SETUP_COOP_TASKRUN))
				return false;
		return true;
	}

protected:
	struct U {
		io_uring ring{};
		bool ring_ok = false;
		unsigned setup_flags = 0;             ///< IORING_SETUP_* the kernel accepted (beyond CQSIZE)
		bool fixed_files = false;             ///< sockets are registered files (index = conn index)
		const void* reg_owner = nullptr;      ///< thread whose registered ring fd this ring uses
		bool reg_tried = false;               ///< ring fd registration attempted (once)
		int enter_fd_saved = -1;              ///< liburing's state before the registration
		std::uint8_t int_flags_saved = 0;
		io_uring_buf_ring* br = nullptr;
		std::size_t br_bytes = 0;
		std::uint32_t entries = 0;
		std::uint32_t bgid = 0;
		std::uint32_t in_ring = 0;            ///< buffers in the buffer ring
		std::vector<std::uint32_t> bid_buf;   ///< bid -> pool index
		std::vector<std::uint16_t> free_bids;
		std::vector<std::uint32_t> rearm;     ///< conn indices whose recv must be (re)armed
	};
	struct ConnIo {
		bool recv_armed = false;
		bool recv_cancelled = false;          ///< cancel submitted for the armed recv
		bool rearm_listed = false;
		bool send_inflight = false;
		bool fixed = false;                   ///< the socket is registered file `conn index`
		msghdr msg{};
		iovec iov[kMaxIov]{};
	};

	void stock_put(std::uint32_t pair, std::uint32_t buf) noexcept override
	{
		U& u = rings_[pair];
		if (u.free_bids.empty())
			return;  // cannot happen: entries >= spare_slots + rx_slots
		std::uint16_t bid = u.free_bids.back();
		u.free_bids.pop_back();
		u.bid_buf[bid] = buf;
		io_uring_buf_ring_add(u.br, cfg_.pool.buffer(buf), cfg_.pool.buffer_size(), bid,
				      io_uring_buf_ring_mask(u.entries), 0);
		io_uring_buf_ring_advance(u.br, 1);
		u.in_ring++;
	}
	std::uint32_t stock_count(std::uint32_t pair) const noexcept override { return rings_[pair].in_ring; }

	bool io_pending() const noexcept override
	{
		for (std::uint32_t p = 0; p < cfg_.pairs; p++) {
			const Pair& P = pairs_[p];
			for (std::uint32_t ci : P.tx_active)
				if (!state_[ci].send_inflight)
					return true;
			if (!rings_[p].rearm.empty() && rings_[p].in_ring > 0)
				return true;
		}
		return false;
	}

	Status attach_io(std::uint32_t ci) override
	{
		state_[ci] = ConnIo{};
		U& u = rings_[conns_[ci].pair];
		if (u.fixed_files) {
			int fd = conns_[ci].fd;
			own_ring(u);
			state_[ci].fixed = io_uring_register_files_update(&u.ring, ci, &fd, 1) == 1;
			pairs_[conns_[ci].pair].ctr.syscalls++;
		}
		want_rearm(ci);
		return {};
	}

	void stop_rx(std::uint32_t ci) noexcept override
	{
		Conn& c = conns_[ci];
		U& u = rings_[c.pair];
		own_ring(u);
		ConnIo& s = state_[ci];
		s.recv_cancelled = cancel_recv(u, ci) || s.recv_cancelled;
		// Completions before the final one (no IORING_CQE_F_MORE) carry
		// received bytes: on_recv pushes them as DATA (the conn is not
		// detaching yet), and nothing re-arms a stopped conn.
		while (s.recv_armed) {
			int r = io_uring_submit_and_wait(&u.ring, 1);
			pairs_[c.pair].ctr.syscalls++;
			if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY)
				break;
			reap(c.pair);
		}
	}

	void detach_io(std::uint32_t ci) noexcept override
	{
		Conn& c = conns_[ci];
		U& u = rings_[c.pair];
		ConnIo& s = state_[ci];
		own_ring(u);
		// Nothing here waits for the socket. A recv completion that comes
		// after the detach names a conn id that no longer exists: its
		// buffer goes back to the stock (on_recv).
		cancel_recv(u, ci);
		if (s.send_inflight) {
			// A peer that does not read keeps a send in flight for ever:
			// cancel it and shut the socket down (a send retried later
			// fails at once). Its queued items, whose buffers the send may
			// still read, leave the conn with it and are released when
			// its completion arrives (on_send of a zombie).
			prep_cancel(u, kOpSend, c.id);
			::shutdown(c.fd, SHUT_RDWR);
			pairs_[c.pair].ctr.syscalls++;
			zombies_.push_back(Zombie{c.id, c.pair, c.txq_head});
			c.txq_head = c.txq_tail = kNil;
			c.txq_bytes = 0;
			c.txq_items = 0;
		}
		if (s.fixed) {
			// The table's reference would keep the socket open after the
			// application closes it; requests in flight hold their own.
			int none = -1;
			(void)io_uring_register_files_update(&u.ring, ci, &none, 1);
			pairs_[c.pair].ctr.syscalls++;
		}
		if (io_uring_sq_ready(&u.ring) > 0) {
			io_uring_submit(&u.ring);  // the cancels go out now; no waiting
			pairs_[c.pair].ctr.syscalls++;
		}
		for (auto& x : u.rearm)
			if (x == ci) {
				x = u.rearm.back();
				u.rearm.pop_back();
				break;
			}
		s = ConnIo{};
	}

	void io(std::uint32_t pair, bool tx, bool rx) noexcept override
	{
		Pair& P = pairs_[pair];
		U& u = rings_[pair];
		own_ring(u);
		// Sends: one in flight per connection keeps stream order.
		for (std::size_t k = 0; tx && k < P.tx_active.size();) {
			std::uint32_t ci = P.tx_active[k];
			Conn& c = conns_[ci];
			if (!state_[ci].send_inflight)
				start_send(ci);
			if (c.txq_head == kNil) {
				c.tx_listed = false;
				P.tx_active[k] = P.tx_active.back();
				P.tx_active.pop_back();
			} else {
				k++;
			}
		}
		// (Re)arm multishot recvs while the buffer ring has buffers.
		if (rx && u.in_ring > 0) {
			for (std::uint32_t ci : u.rearm) {
				state_[ci].rearm_listed = false;
				Conn& c = conns_[ci];
				if (c.id == DAXNET_NO_CONN || c.rx_done || c.rx_stopped || state_[ci].recv_armed)
					continue;
				io_uring_sqe* sqe = get_sqe(u);
				io_uring_prep_recv_multishot(sqe, state_[ci].fixed ? static_cast<int>(ci) : c.fd, nullptr, 0,
							     0);
				sqe->flags |= IOSQE_BUFFER_SELECT;
				if (state_[ci].fixed)
					sqe->flags |= IOSQE_FIXED_FILE;
				sqe->buf_group = static_cast<std::uint16_t>(u.bgid);
				io_uring_sqe_set_data64(sqe, tag(kOpRecv, c.id));
				state_[ci].recv_armed = true;
				state_[ci].recv_cancelled = false;
			}
			u.rearm.clear();
		}
		// The one syscall of this sync, when there is anything to enter
		// for: SQEs to submit, task work that would post completions
		// (IORING_SQ_TASKRUN), an overflowed CQ. Without TASKRUN_FLAG the
		// kernel says nothing: always enter.
		const unsigned kflags = IO_URING_READ_ONCE(*u.ring.sq.kflags);
		if (io_uring_sq_ready(&u.ring) > 0 || !(u.setup_flags & IORING_SETUP_TASKRUN_FLAG) ||
		    (kflags & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW))) {
			io_uring_submit_and_get_events(&u.ring);
			P.ctr.syscalls++;
		}
		reap(pair);
	}

private:
	struct Zombie {
		std::uint32_t id;    ///< the detached conn's id (its send's tag)
		std::uint32_t pair;
		std::uint32_t head;  ///< its queued TX items (linked by next)
	};

	/// Registers the ring fd for io_uring_enter on the first call. Such a
	/// registration belongs to the calling thread: a ring later entered
	/// from another thread (a Port opened on one thread and run on
	/// another, or destroyed there) goes back to the plain ring fd.
	void own_ring(U& u) noexcept
	{
		const void* me = this_thread_tag();
		if (u.reg_owner == me)
			return;
		if (!u.reg_tried) {
			u.reg_tried = true;
			if (std::getenv("DAXNET_URING_NO_REGRING"))
				return;
			u.enter_fd_saved = u.ring.enter_ring_fd;
			u.int_flags_saved = u.ring.int_flags;
			if (io_uring_register_ring_fd(&u.ring) == 1)
				u.reg_owner = me;
			return;
		}
		if (u.reg_owner != nullptr) {
			u.ring.enter_ring_fd = u.enter_fd_saved;
			u.ring.int_flags = u.int_flags_saved;
			u.reg_owner = nullptr;
		}
	}

	/// Before io_uring_queue_exit: the registration ends on its thread;
	/// elsewhere liburing must not unregister an index of this thread
	/// (the owner thread's entry goes when that thread exits).
	static void release_ring_fd(U& u) noexcept
	{
		if (u.reg_owner == nullptr)
			return;
		if (u.reg_owner == this_thread_tag()) {
			(void)io_uring_unregister_ring_fd(&u.ring);
		} else {
			u.ring.enter_ring_fd = u.enter_fd_saved;
			u.ring.int_flags = u.int_flags_saved;
		}
		u.reg_owner = nullptr;
	}

	/// The send of a detached conn completed: its items are done, their
	/// buffers go back (RELEASE for those whose slots already returned).
	void on_zombie_send(std::uint32_t id) noexcept
	{
		for (std::size_t k = 0; k < zombies_.size(); k++) {
			if (zombies_[k].id != id)
				continue;
			Zombie z = zombies_[k];
			zombies_[k] = zombies_.back();
			zombies_.pop_back();
			for (std::uint32_t it = z.head; it != kNil;) {
				TxItem& item = items_[it];
				std::uint32_t nx = item.next;
				item.next = kNil;
				item.done = true;
				item.err = ECONNABORTED;
				if (item.returned) {
					if (item.buf != DAXNET_NO_BUF)
						push_release(z.pair, item.buf);
					free_item(it);
				}
				it = nx;
			}
			return;
		}
	}

	/// Queues the cancel of conn id's request `op` (its completion: kOpCancel).
	void prep_cancel(U& u, std::uint64_t op, std::uint32_t id) noexcept
	{
		io_uring_sqe* sqe = get_sqe(u);
		io_uring_prep_cancel64(sqe, tag(op, id), 0);
		io_uring_sqe_set_data64(sqe, tag(kOpCancel, id));
	}

	/// Queues the cancel of conn ci's armed recv unless one is queued
	/// already; true if it queued one.
	bool cancel_recv(U& u, std::uint32_t ci) noexcept
	{
		const ConnIo& s = state_[ci];
		if (!s.recv_armed || s.recv_cancelled)
			return false;
		prep_cancel(u, kOpRecv, conns_[ci].id);
		return true;
	}

	io_uring_sqe* get_sqe(U& u) noexcept
	{
		io_uring_sqe* sqe = io_uring_get_sqe(&u.ring);
		while (!sqe) {
			// SQ full: submit what we have (an extra enter, counted).
			io_uring_submit(&u.ring);
			pairs_[u.bgid].ctr.syscalls++;
			sqe = io_uring_get_sqe(&u.ring);
		}
		return sqe;
	}

	void want_rearm(std::uint32_t ci) noexcept
	{
		ConnIo& s = state_[ci];
		if (s.rearm_listed)
			return;
		s.rearm_listed = true;
		rings_[conns_[ci].pair].rearm.push_back(ci);
	}

	void start_send(std::uint32_t ci) noexcept
	{
		Conn& c = conns_[ci];
		ConnIo& s = state_[ci];
		finish_sent_heads(ci);
		if (c.txq_head == kNil)
			return;
		const std::uint32_t cnt = gather_tx(ci, s.iov);
		io_uring_sqe* sqe = get_sqe(rings_[c.pair]);
		const int fd = s.fixed ? static_cast<int>(ci) : c.fd;
		if (cnt == 1) {
			io_uring_prep_send(sqe, fd, s.iov[0].iov_base, s.iov[0].iov_len, MSG_NOSIGNAL | MSG_WAITALL);
		} else {
			s.msg = msghdr{};
			s.msg.msg_iov = s.iov;
			s.msg.msg_iovlen = cnt;
			io_uring_prep_sendmsg(sqe, fd, &s.msg, MSG_NOSIGNAL | MSG_WAITALL);
		}
		if (s.fixed)
			sqe->flags |= IOSQE_FIXED_FILE;
		io_uring_sqe_set_data64(sqe, tag(kOpSend, c.id));
		s.send_inflight = true;
	}

	void on_send(std::uint32_t ci, int res) noexcept
	{
		Conn& c = conns_[ci];
		Pair& P = pairs_[c.pair];
		state_[ci].send_inflight = false;
		if (res < 0) {
			push_error(ci, -res);
			return;
		}
		auto left = static_cast<std::uint64_t>(res);
		P.ctr.tx_bytes += left;
		P.ctr.cpu_copied += left;
		while (c.txq_head != kNil) {
			TxItem& x = items_[c.txq_head];
			if (!(x.flags & DAXNET_SLOT_DATA))
				break;
			std::uint64_t want = x.len - x.sent;
			if (left < want) {
				x.sent += static_cast<std::uint32_t>(left);
				break;
			}
			left -= want;
			x.sent = x.len;
			if (x.flags & DAXNET_SLOT_EOF)
				break;
			finish_head(ci);
			if (left == 0)
				break;
		}
		if (c.txq_head != kNil && !c.detaching)
			list_tx(ci);
	}

	void on_recv(std::uint32_t pair, std::uint32_t ci, const io_uring_cqe* cqe) noexcept
	{
		U& u = rings_[pair];
		Pair& P = pairs_[pair];
		std::uint32_t buf = DAXNET_NO_BUF;
		if (cqe->flags & IORING_CQE_F_BUFFER) {
			auto bid = static_cast<std::uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
			buf = u.bid_buf[bid];
			u.bid_buf[bid] = DAXNET_NO_BUF;
			u.free_bids.push_back(bid);
			u.in_ring--;
		}
		bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
		Conn* c = ci == kNil ? nullptr : &conns_[ci];
		if (c && !more) {
			state_[ci].recv_armed = false;
			state_[ci].recv_cancelled = false;
		}
		if (!c || c->detaching || c->rx_done) {
			if (buf != DAXNET_NO_BUF)
				stock_put(pair, buf);  // stale completion: recycle
			return;
		}
		int res = cqe->res;
		if (res > 0 && buf != DAXNET_NO_BUF) {
			push_data(ci, buf, static_cast<std::uint32_t>(res));
		} else {
			if (buf != DAXNET_NO_BUF)
				stock_put(pair, buf);
			if (res == 0)
				push_eof(ci);
			else if (res == -ENOBUFS)
				P.ctr.spare_empty++;
			else if (res < 0 && res != -ECANCELED)
				push_error(ci, -res);
		}
		if (!more && !c->rx_done && !c->rx_stopped)
			want_rearm(ci);
	}

	void reap(std::uint32_t pair) noexcept
	{
		U& u = rings_[pair];
		io_uring_cqe* cqe;
		unsigned head, n = 0;
		io_uring_for_each_cqe(&u.ring, head, cqe)
		{
			n++;
			std::uint64_t ud = io_uring_cqe_get_data64(cqe);
			auto id = static_cast<std::uint32_t>(ud >> 8);
			std::uint64_t op = ud & 0xff;
			Conn* c = conn_by_id(id);
			std::uint32_t ci = c ? DAXNET_CONN_INDEX(id) : kNil;
			if (op == kOpRecv)
				on_recv(pair, ci, cqe);
			else if (op == kOpSend && c)
				on_send(ci, cqe->res);
			else if (op == kOpSend && !zombies_.empty())
				on_zombie_send(id);
		}
		io_uring_cq_advance(&u.ring, n);
	}

	std::vector<U> rings_;
	std::vector<ConnIo> state_;
	std::vector<Zombie> zombies_;
	int fd_ = -1;
	UniqueFd top_;
};

}  // namespace

Result<std::unique_ptr<Transport>> make_uring_transport(const TransportConfig& cfg, bool for_auto)
{
	auto t = std::make_unique<UringTransport>(cfg);
	if (Status st = t->init(); !st)
		return st.error();
	if (for_auto && !t->coop_taskrun())
		return make_error(ENOTSUP, "uring transport: no IORING_SETUP_COOP_TASKRUN on this kernel (epoll is cheaper)");
	return std::unique_ptr<Transport>(std::move(t));
}

}  // namespace daxnet::detail
