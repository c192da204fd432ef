// SPDX-License-Identifier: BSD-2-Clause
#include "user_transport.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_set>

namespace daxnet::detail {

namespace {

constexpr std::size_t kAlign = 64;

std::size_t align_up(std::size_t v, std::size_t a) noexcept
{
	return (v + a - 1) / a * a;
}

std::size_t ring_bytes(std::uint32_t slots, std::size_t slot_size) noexcept
{
	return sizeof(daxnet_ring) + align_up(slots * slot_size, kAlign);
}

// Sockets attached to any user-space transport of this process (by inode):
// the kernel refuses a second attach of a socket to any port, so do we.
std::mutex g_attached_mu;
std::unordered_set<std::uint64_t>& attached_set()
{
	static std::unordered_set<std::uint64_t> s;
	return s;
}

bool in_range(std::uint32_t v, std::uint32_t lo, std::uint32_t hi) noexcept
{
	return v >= lo && v <= hi;
}

}  // namespace

/// A pending DATA event whose buffer the transport gives up when it is
/// published (no BUF_HELD): it counts against the spare stock.
bool holds_stock_buffer(const daxnet_slot& ev) noexcept
{
	return (ev.flags & DAXNET_SLOT_DATA) && !(ev.flags & DAXNET_SLOT_BUF_HELD) && ev.buf_idx != DAXNET_NO_BUF;
}

namespace {

}  // namespace

std::size_t region_bytes(const TransportConfig& cfg) noexcept
{
	std::size_t sz = align_up(sizeof(daxnet_region) + cfg.pairs * sizeof(daxnet_pair_desc), kAlign);
	sz += cfg.pairs * (ring_bytes(cfg.rx_slots, sizeof(daxnet_slot)) + ring_bytes(cfg.tx_slots, sizeof(daxnet_slot)) +
			   ring_bytes(cfg.spare_slots, sizeof(std::uint32_t)));
	return align_up(sz, 4096);
}

namespace {

void format_ring(std::byte* base, std::uint64_t ofs, std::uint32_t kind, std::uint32_t pair, std::uint32_t slots,
		 std::uint32_t slot_size) noexcept
{
	// Plays the kernel: writes the fields user space sees as const.
	struct KRing {
		std::uint32_t head, cur, tail, num_slots, kind, pair, slot_size, flags;
		std::uint64_t slots_ofs;
		std::uint64_t reserved[3];
	};
	static_assert(sizeof(KRing) == sizeof(daxnet_ring));
	KRing r{};
	r.head = r.cur = 0;
	r.tail = kind == DAXNET_RING_RX ? 0 : slots - 1;
	r.num_slots = slots;
	r.kind = kind;
	r.pair = pair;
	r.slot_size = slot_size;
	r.slots_ofs = ofs + sizeof(daxnet_ring);
	std::memcpy(base + ofs, &r, sizeof(r));
}

}  // namespace

void region_format(std::byte* base, const TransportConfig& cfg) noexcept
{
	daxnet_region h{};
	h.magic = DAXNET_REGION_MAGIC;
	h.api_version = DAXNET_API;
	h.region_size = region_bytes(cfg);
	h.num_pairs = cfg.pairs;
	h.rx_slots = cfg.rx_slots;
	h.tx_slots = cfg.tx_slots;
	h.spare_slots = cfg.spare_slots;
	h.buf_size = cfg.pool.buffer_size();
	h.buf_count = cfg.pool.buffer_count();
	h.max_conns = cfg.max_conns;
	h.flags = cfg.reg_flags;
	h.pairs_ofs = sizeof(daxnet_region);
	std::memcpy(base, &h, sizeof(h));

	std::uint64_t ofs = align_up(sizeof(daxnet_region) + cfg.pairs * sizeof(daxnet_pair_desc), kAlign);
	for (std::uint32_t p = 0; p < cfg.pairs; p++) {
		daxnet_pair_desc d{};
		d.rx_ofs = ofs;
		format_ring(base, ofs, DAXNET_RING_RX, p, cfg.rx_slots, sizeof(daxnet_slot));
		ofs += ring_bytes(cfg.rx_slots, sizeof(daxnet_slot));
		d.tx_ofs = ofs;
		format_ring(base, ofs, DAXNET_RING_TX, p, cfg.tx_slots, sizeof(daxnet_slot));
		ofs += ring_bytes(cfg.tx_slots, sizeof(daxnet_slot));
		d.spare_ofs = ofs;
		format_ring(base, ofs, DAXNET_RING_SPARE, p, cfg.spare_slots, sizeof(std::uint32_t));
		ofs += ring_bytes(cfg.spare_slots, sizeof(std::uint32_t));
		std::memcpy(base + sizeof(daxnet_region) + p * sizeof(daxnet_pair_desc), &d, sizeof(d));
	}
}

Status check_config(const TransportConfig& cfg)
{
	if (!in_range(cfg.pairs, 1, DAXNET_MAX_PAIRS))
		return make_error(EINVAL, "port: ring pairs " + std::to_string(cfg.pairs) + " not in 1..64");
	for (std::uint32_t s : {cfg.rx_slots, cfg.tx_slots, cfg.spare_slots})
		if (!in_range(s, DAXNET_MIN_SLOTS, DAXNET_MAX_SLOTS))
			return make_error(EINVAL, "port: ring size " + std::to_string(s) + " not in 4..32768");
	if (!in_range(cfg.max_conns, 1, DAXNET_MAX_CONNS - 1))
		return make_error(EINVAL, "port: max_conns " + std::to_string(cfg.max_conns) + " out of range");
	std::uint32_t bs = cfg.pool.buffer_size();
	if (!in_range(bs, DAXNET_MIN_BUF_SIZE, DAXNET_MAX_BUF_SIZE) || (bs & (bs - 1)) != 0)
		return make_error(EINVAL, "port: pool buffer size " + std::to_string(bs) + " unsupported");
	if (cfg.pool.base() == nullptr || cfg.pool.buffer_count() == 0)
		return make_error(EINVAL, "port: pool has no buffers");
	return {};
}

Status check_tcp_socket(int fd)
{
	struct stat st {};
	if (fd < 0 || ::fstat(fd, &st) != 0)
		return make_error(EBADF, "attach: fd " + std::to_string(fd) + " is not an open file");
	if (!S_ISSOCK(st.st_mode))
		return make_error(ENOTSOCK, "attach: fd " + std::to_string(fd) + " is not a socket");
	int v = 0;
	socklen_t l = sizeof(v);
	int domain = 0, type = 0, proto = 0;
	if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l) != 0)
		return make_error(errno, "attach: getsockopt(SO_DOMAIN) failed");
	l = sizeof(type);
	::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l);
	l = sizeof(proto);
	::getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &l);
	if ((domain != AF_INET && domain != AF_INET6) || type != SOCK_STREAM || proto != IPPROTO_TCP)
		return make_error(EPROTONOSUPPORT, "attach: fd " + std::to_string(fd) + " is not a TCP socket");
	l = sizeof(v);
	if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &l) == 0 && v)
		return make_error(ENOTCONN, "attach: fd " + std::to_string(fd) + " is a listening socket");
	sockaddr_storage ss{};
	socklen_t sl = sizeof(ss);
	if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &sl) != 0)
		return make_error(ENOTCONN, "attach: fd " + std::to_string(fd) + " is not connected");
	return {};
}

UserTransport::UserTransport(const TransportConfig& cfg) : cfg_(cfg) {}

UserTransport::~UserTransport()
{
	{
		std::lock_guard lk(g_attached_mu);
		for (const Conn& c : conns_)
			if (c.id != DAXNET_NO_CONN)
				attached_set().erase(c.sock_ino);
	}
	std::free(region_);
}

Status UserTransport::init_common()
{
	if (Status st = check_config(cfg_); !st)
		return st;
	region_size_ = region_bytes(cfg_);
	region_ = static_cast<std::byte*>(std::aligned_alloc(4096, region_size_));
	if (!region_)
		return make_error(ENOMEM, "port: cannot allocate the ring region");
	std::memset(region_, 0, region_size_);
	region_format(region_, cfg_);

	// Items: 4 per TX slot, plus a share per connection (Port::tx_queued)
	// so that connections whose peers do not read cannot take them all.
	std::uint32_t item_cap = 4 * cfg_.tx_slots + Port::kTxSlotsPerConn * cfg_.max_conns;
	std::uint32_t pend_cap = cfg_.spare_slots + cfg_.rx_slots + 3 * cfg_.max_conns + item_cap + 16;
	pairs_.resize(cfg_.pairs);
	for (std::uint32_t p = 0; p < cfg_.pairs; p++) {
		Pair& P = pairs_[p];
		const daxnet_pair_desc* d = region_pair(region_, p);
		P.rx = region_ring(region_, d->rx_ofs);
		P.tx = region_ring(region_, d->tx_ofs);
		P.spare = region_ring(region_, d->spare_ofs);
		P.rxs = ring_slots(region_, P.rx);
		P.txs = ring_slots(region_, P.tx);
		P.spares = ring_indices(region_, P.spare);
		// The private copies of the kernel-owned fields (region_format
		// wrote the same values; they are never read back).
		P.rx_n = cfg_.rx_slots;
		P.tx_n = cfg_.tx_slots;
		P.spare_n = cfg_.spare_slots;
		P.rx_tail = 0;
		P.tx_tail = P.tx_n - 1;
		P.spare_tail = P.spare_n - 1;
		P.consumed.reserve(cfg_.tx_slots);
		P.pending.resize(pend_cap);
		P.tx_active.reserve(cfg_.max_conns);
	}
	conns_.resize(cfg_.max_conns);
	free_conns_.reserve(cfg_.max_conns);
	for (std::uint32_t i = cfg_.max_conns; i-- > 0;)
		free_conns_.push_back(i);
	items_.resize(item_cap);
	for (std::uint32_t i = 0; i < item_cap; i++)
		items_[i].next = i + 1 < item_cap ? i + 1 : kNil;
	free_items_ = 0;
	return {};
}

std::uint32_t UserTransport::alloc_item() noexcept
{
	std::uint32_t it = free_items_;
	if (it != kNil) {
		free_items_ = items_[it].next;
		items_[it] = TxItem{};
	}
	return it;
}

void UserTransport::free_item(std::uint32_t it) noexcept
{
	items_[it].next = free_items_;
	free_items_ = it;
}

UserTransport::Conn* UserTransport::conn_by_id(std::uint32_t id) noexcept
{
	std::uint32_t idx = DAXNET_CONN_INDEX(id);
	if (idx >= conns_.size() || conns_[idx].id != id)
		return nullptr;
	return &conns_[idx];
}

std::uint32_t UserTransport::rx_room(std::uint32_t pair) const noexcept
{
	const Pair& P = pairs_[pair];
	std::uint32_t n = P.rx_n;
	std::uint32_t room = n - 1 - ring_dist(P.rx_head, P.rx_tail, n);
	return room > P.pend_count ? room - P.pend_count : 0;
}

void UserTransport::push_event(std::uint32_t pair, const daxnet_slot& ev) noexcept
{
	Pair& P = pairs_[pair];
	auto cap = static_cast<std::uint32_t>(P.pending.size());
	if (P.pend_count == cap)
		return;  // cannot happen: capacity covers every source of events
	P.pending[ring_add(P.pend_head, P.pend_count, cap)] = ev;
	P.pend_count++;
	if (holds_stock_buffer(ev))
		P.pend_data++;
}

void UserTransport::push_data(std::uint32_t ci, std::uint32_t buf, std::uint32_t len) noexcept
{
	push_slice(ci, buf, 0, len, false);
}

void UserTransport::push_slice(std::uint32_t ci, std::uint32_t buf, std::uint32_t off, std::uint32_t len,
			       bool held) noexcept
{
	const Conn& c = conns_[ci];
	daxnet_slot ev{};
	ev.conn = c.id;
	ev.buf_idx = buf;
	ev.offset = off;
	ev.len = len;
	ev.flags = held ? DAXNET_SLOT_DATA | DAXNET_SLOT_BUF_HELD : DAXNET_SLOT_DATA;
	ev.user_data = c.cookie;
	push_event(c.pair, ev);
	pairs_[c.pair].ctr.cpu_copied += len;
}

void UserTransport::push_release(std::uint32_t pair, std::uint32_t buf) noexcept
{
	daxnet_slot ev{};
	ev.conn = DAXNET_NO_CONN;
	ev.buf_idx = buf;
	ev.flags = DAXNET_SLOT_RELEASE;
	push_event(pair, ev);
}

void UserTransport::push_eof(std::uint32_t ci) noexcept
{
	Conn& c = conns_[ci];
	if (c.rx_done)
		return;
	c.rx_done = true;
	daxnet_slot ev{};
	ev.conn = c.id;
	ev.buf_idx = DAXNET_NO_BUF;
	ev.flags = DAXNET_SLOT_EOF;
	ev.user_data = c.cookie;
	push_event(c.pair, ev);
}

void UserTransport::push_error(std::uint32_t ci, int err) noexcept
{
	Conn& c = conns_[ci];
	c.rx_done = true;
	if (!c.err_reported) {
		c.err_reported = true;
		daxnet_slot ev{};
		ev.conn = c.id;
		ev.buf_idx = DAXNET_NO_BUF;
		ev.flags = DAXNET_SLOT_ERROR;
		ev.err = static_cast<std::uint16_t>(err);
		ev.user_data = c.cookie;
		push_event(c.pair, ev);
	}
	while (c.txq_head != kNil) {
		items_[c.txq_head].err = static_cast<std::uint16_t>(err);
		finish_head(ci);
	}
}

void UserTransport::finish_head(std::uint32_t ci) noexcept
{
	Conn& c = conns_[ci];
	std::uint32_t it = c.txq_head;
	TxItem& item = items_[it];
	c.txq_head = item.next;
	if (c.txq_head == kNil)
		c.txq_tail = kNil;
	c.txq_bytes -= (item.flags & DAXNET_SLOT_DATA) ? item.len : 0;
	c.txq_items--;
	item.next = kNil;
	item.done = true;
	if (item.returned) {
		if (item.buf != DAXNET_NO_BUF)
			push_release(c.pair, item.buf);
		free_item(it);
	}
}

void UserTransport::finish_sent_heads(std::uint32_t ci) noexcept
{
	Conn& c = conns_[ci];
	while (c.txq_head != kNil) {
		const TxItem& head = items_[c.txq_head];
		if ((head.flags & DAXNET_SLOT_DATA) && head.sent != head.len)
			return;
		if (head.flags & DAXNET_SLOT_EOF) {
			::shutdown(c.fd, SHUT_WR);
			pairs_[c.pair].ctr.syscalls++;
		}
		finish_head(ci);
	}
}

std::uint32_t UserTransport::gather_tx(std::uint32_t ci, iovec* iov) noexcept
{
	std::uint32_t cnt = 0;
	for (std::uint32_t it = conns_[ci].txq_head; it != kNil && cnt < kMaxIov; it = items_[it].next) {
		const TxItem& x = items_[it];
		if (!(x.flags & DAXNET_SLOT_DATA))
			break;
		iov[cnt].iov_base = cfg_.pool.buffer(x.buf) + x.off + x.sent;
		iov[cnt].iov_len = x.len - x.sent;
		cnt++;
		if (x.flags & DAXNET_SLOT_EOF)
			break;
	}
	return cnt;
}

void UserTransport::list_tx(std::uint32_t ci) noexcept
{
	Conn& c = conns_[ci];
	if (!c.tx_listed) {
		c.tx_listed = true;
		pairs_[c.pair].tx_active.push_back(ci);
	}
}

int UserTransport::intake(std::uint32_t pair, bool tx, bool rx) noexcept
{
	Pair& P = pairs_[pair];
	// Read every user-written index once, validate all before acting,
	// against the private ring sizes and tails only: the region's copies
	// of those are writable by the application and never read back.
	const std::uint32_t rn = P.rx_n, tn = P.tx_n, sn = P.spare_n;
	std::uint32_t rh = uload(P.rx->head);
	const std::uint32_t rc = uload(P.rx->cur);
	const std::uint32_t th = uload(P.tx->head), tc = uload(P.tx->cur);
	const std::uint32_t sh = uload(P.spare->head), sc = uload(P.spare->cur);
	const std::uint32_t rt = P.rx_tail, tt = P.tx_tail, st = P.spare_tail;
	bool ok = rh < rn && rc < rn && th < tn && tc < tn && sh < sn && sc < sn &&
		  ring_dist(P.rx_head, rh, rn) <= ring_dist(P.rx_head, rt, rn) &&
		  ring_dist(rh, rc, rn) <= ring_dist(rh, rt, rn) &&
		  ring_dist(P.tx_head, th, tn) <= ring_dist(P.tx_head, tt, tn) &&
		  ring_dist(th, tc, tn) <= ring_dist(th, tt, tn) &&
		  ring_dist(P.spare_head, sh, sn) <= ring_dist(P.spare_head, st, sn) &&
		  ring_dist(sh, sc, sn) <= ring_dist(sh, st, sn);
	if (!ok) {
		P.ctr.bad++;
		return -EINVAL;
	}
	const std::uint32_t nbuf = cfg_.pool.buffer_count();
	const std::uint32_t bsize = cfg_.pool.buffer_size();

	// RX releases: a swapped-in buffer (BUF_CHANGED) becomes a spare
	// while the stock is below the spare ring's size (as for the spare
	// ring below); beyond it, a RELEASE slot gives it straight back. The
	// stock stays bounded however many slots the application swaps.
	// A TX-only sync leaves them for the next RX sync.
	if (!rx)
		rh = P.rx_head;
	for (std::uint32_t i = P.rx_head; i != rh; i = daxnet_ring_next(i, rn)) {
		daxnet_slot& s = P.rxs[i];
		if (s.flags & DAXNET_SLOT_BUF_CHANGED) {
			std::uint32_t b = s.buf_idx;
			if (b >= nbuf)
				P.ctr.bad++;
			else if (stock_count(pair) + P.pend_data < cfg_.spare_slots)
				stock_put(pair, b);
			else
				push_release(pair, b);
		}
	}
	P.rx_head = rh;

	// TX: every handed-over slot becomes an item queued on its connection.
	// An RX-only sync leaves them in the ring for the next TX sync.
	if (tx)
		P.tx_head = th;
	while (P.tx_cur != P.tx_head) {
		std::uint32_t it = alloc_item();
		if (it == kNil)
			break;  // item pool exhausted: the rest waits in the ring
		const daxnet_slot& s = P.txs[P.tx_cur];
		TxItem& item = items_[it];
		item.slot = P.tx_cur;
		std::uint32_t conn = s.conn;
		std::uint16_t fl = s.flags;
		item.flags = fl & (DAXNET_SLOT_DATA | DAXNET_SLOT_EOF);
		// A slot without DATA names no buffer (uapi: "a slot with EOF alone
		// names no buffer"): whatever its buf_idx says is never released.
		item.buf = (item.flags & DAXNET_SLOT_DATA) ? s.buf_idx : DAXNET_NO_BUF;
		item.off = s.offset;
		item.len = s.len;
		bool bad = (fl & ~(DAXNET_SLOT_DATA | DAXNET_SLOT_EOF | DAXNET_SLOT_BUF_CHANGED)) != 0 ||
			   s.reserved != 0 || s.err != 0;
		if (item.flags & DAXNET_SLOT_DATA)
			bad = bad || item.buf >= nbuf || item.len == 0 ||
			      std::uint64_t{item.off} + item.len > bsize;
		Conn* c = conn_by_id(conn);
		P.consumed.push_back(it);
		P.tx_cur = daxnet_ring_next(P.tx_cur, tn);
		P.ctr.tx_slots++;
		if (bad) {
			item.done = true;
			item.err = EINVAL;
			P.ctr.bad++;
			continue;
		}
		if (!c || c->pair != pair) {
			item.done = true;
			item.err = ENOTCONN;
			continue;
		}
		if (item.flags == 0) {
			item.done = true;
			continue;
		}
		if (c->err_reported) {
			item.done = true;
			item.err = EPIPE;
			continue;
		}
		item.conn = DAXNET_CONN_INDEX(conn);
		if (c->txq_tail == kNil)
			c->txq_head = it;
		else
			items_[c->txq_tail].next = it;
		c->txq_tail = it;
		c->txq_bytes += (item.flags & DAXNET_SLOT_DATA) ? item.len : 0;
		c->txq_items++;
		list_tx(item.conn);
	}

	// Spares: take while the stock (plus data waiting to be published)
	// stays below the spare ring size; the rest waits in the ring.
	P.spare_head = sh;
	while (P.spare_cur != P.spare_head && stock_count(pair) + P.pend_data < cfg_.spare_slots) {
		std::uint32_t b = P.spares[P.spare_cur];
		if (b < nbuf)
			stock_put(pair, b);
		else
			P.ctr.bad++;
		P.spare_cur = daxnet_ring_next(P.spare_cur, sn);
	}
	P.spare_tail = P.spare_cur == 0 ? sn - 1 : P.spare_cur - 1;
	kstore(P.spare->tail, P.spare_tail);
	return 0;
}

void UserTransport::tx_return(std::uint32_t pair) noexcept
{
	Pair& P = pairs_[pair];
	for (std::uint32_t it : P.consumed) {
		TxItem& item = items_[it];
		daxnet_slot& s = P.txs[item.slot];
		std::uint16_t fl = item.flags;
		if (!item.done)
			fl |= DAXNET_SLOT_BUF_HELD;
		if (item.err)
			fl |= DAXNET_SLOT_ERROR;
		s.flags = fl;
		s.err = item.err;
		if (item.done) {
			free_item(it);
		} else {
			item.returned = true;
			P.ctr.tx_held++;
		}
	}
	P.consumed.clear();
	P.tx_tail = P.tx_cur == 0 ? P.tx_n - 1 : P.tx_cur - 1;
	kstore(P.tx->tail, P.tx_tail);
}

void UserTransport::store_tails(std::uint32_t pair) noexcept
{
	const Pair& P = pairs_[pair];
	kstore(P.rx->tail, P.rx_tail);
	kstore(P.tx->tail, P.tx_tail);
	kstore(P.spare->tail, P.spare_tail);
}

void UserTransport::publish(std::uint32_t pair) noexcept
{
	Pair& P = pairs_[pair];
	const std::uint32_t n = P.rx_n;
	std::uint32_t tail = P.rx_tail;
	std::uint32_t room = n - 1 - ring_dist(P.rx_head, tail, n);
	auto cap = static_cast<std::uint32_t>(P.pending.size());
	while (P.pend_count > 0 && room > 0) {
		const daxnet_slot& ev = P.pending[P.pend_head];
		P.rxs[tail] = ev;
		P.ctr.rx_slots++;
		if (ev.flags & DAXNET_SLOT_DATA)
			P.ctr.rx_bytes += ev.len;
		if (holds_stock_buffer(ev))
			P.pend_data--;
		if (ev.flags & DAXNET_SLOT_RELEASE)
			P.ctr.releases++;
		P.pend_head = daxnet_ring_next(P.pend_head, cap);
		P.pend_count--;
		room--;
		tail = daxnet_ring_next(tail, n);
	}
	P.rx_tail = tail;
	kstore(P.rx->tail, tail);
	if (P.pend_count > 0)
		P.ctr.rx_ring_full++;
}

int UserTransport::sync(std::uint32_t pair, std::uint32_t flags) noexcept
{
	if ((flags & ~std::uint32_t{DAXNET_SYNC_TX | DAXNET_SYNC_RX}) != 0)
		return -EINVAL;
	std::uint32_t first = 0, last = cfg_.pairs;
	if (pair != DAXNET_RING_ALL) {
		if (pair >= cfg_.pairs)
			return -EINVAL;
		first = pair;
		last = pair + 1;
	}
	// DAXNET_SYNC_TX: TX and spare intake only; DAXNET_SYNC_RX: RX and
	// spare intake only; 0 or both: everything.
	bool tx = flags == 0 || (flags & DAXNET_SYNC_TX);
	bool rx = flags == 0 || (flags & DAXNET_SYNC_RX);
	for (std::uint32_t p = first; p < last; p++) {
		if (int r = intake(p, tx, rx); r < 0)
			return r;
		io(p, tx, rx);
		if (tx)
			tx_return(p);
		if (rx)
			publish(p);
		// Every tail of the pair, also those this sync did not move: a
		// tail the application scribbled is repaired, as netmap does.
		store_tails(p);
		pairs_[p].ctr.syncs++;
	}
	return 0;
}

std::uint32_t UserTransport::pending_of(std::uint32_t pair, std::uint32_t conn) const noexcept
{
	const Pair& P = pairs_[pair];
	auto cap = static_cast<std::uint32_t>(P.pending.size());
	std::uint32_t n = 0;
	for (std::uint32_t k = 0; k < P.pend_count; k++)
		n += P.pending[ring_add(P.pend_head, k, cap)].conn == conn;
	return n;
}

bool UserTransport::has_pending() const noexcept
{
	for (const Pair& P : pairs_)
		if (P.pend_count > 0)
			return true;
	return io_pending();
}

RingCounters UserTransport::counters(std::uint32_t pair) const noexcept
{
	RingCounters r;
	for (std::uint32_t p = 0; p < cfg_.pairs; p++)
		if (pair == DAXNET_RING_ALL || pair == p)
			r += pairs_[p].ctr;
	return r;
}

TxQueued UserTransport::tx_queued(std::uint32_t conn) const noexcept
{
	std::uint32_t idx = DAXNET_CONN_INDEX(conn);
	if (idx >= conns_.size() || conns_[idx].id != conn)
		return {};
	return {conns_[idx].txq_bytes, conns_[idx].txq_items};
}

Result<std::uint32_t> UserTransport::attach(int fd, std::uint32_t pair, std::uint64_t cookie)
{
	if (pair >= cfg_.pairs)
		return make_error(EINVAL, "attach: ring pair " + std::to_string(pair) + " does not exist");
	if (Status st = check_tcp_socket(fd); !st)
		return st.error();
	struct stat sb {};
	::fstat(fd, &sb);
	auto ino = static_cast<std::uint64_t>(sb.st_ino);
	if (free_conns_.empty())
		return make_error(ENOSPC, "attach: port has max_conns connections already");
	{
		std::lock_guard lk(g_attached_mu);
		if (!attached_set().insert(ino).second)
			return make_error(EBUSY, "attach: fd " + std::to_string(fd) + " is already attached");
	}
	std::uint32_t ci = free_conns_.back();
	free_conns_.pop_back();
	Conn& c = conns_[ci];
	std::uint16_t gen = static_cast<std::uint16_t>((c.gen + 1) & 0xfff);
	if (gen == 0xfff)
		gen = 0;  // keeps ids clear of DAXNET_NO_CONN
	c = Conn{};
	c.gen = gen;
	c.fd = fd;
	c.pair = pair;
	c.cookie = cookie;
	c.sock_ino = ino;
	c.id = (std::uint32_t{gen} << DAXNET_CONN_INDEX_BITS) | ci;
	if (Status st = attach_io(ci); !st) {
		std::lock_guard lk(g_attached_mu);
		attached_set().erase(ino);
		c.id = DAXNET_NO_CONN;
		free_conns_.push_back(ci);
		return st.error();
	}
	daxnet_slot ev{};
	ev.conn = c.id;
	ev.buf_idx = DAXNET_NO_BUF;
	ev.flags = DAXNET_SLOT_NEW_CONN;
	ev.user_data = cookie;
	push_event(pair, ev);
	return c.id;
}

Status UserTransport::detach(std::uint32_t conn, std::uint32_t flags)
{
	Conn* c = conn_by_id(conn);
	if (!c)
		return make_error(ENOENT, "detach: connection " + std::to_string(conn) + " is not attached");
	if ((flags & ~std::uint32_t{DAXNET_DETACH_DISCARD}) != 0)
		return make_error(EINVAL, "detach: unknown flags");
	const bool discard = flags & DAXNET_DETACH_DISCARD;
	if (c->txq_head != kNil && !discard)
		return make_error(EBUSY, "detach: connection " + std::to_string(conn) + " still has queued TX bytes");
	std::uint32_t ci = DAXNET_CONN_INDEX(conn);
	Pair& P = pairs_[c->pair];
	if (!discard) {
		// Bytes still in the socket stay there; bytes already taken from
		// it (a recv completion, a packed buffer) cannot go back, so they
		// are published now, in stream order, before the detach completes
		// (docs/abi.md, DETACH on the user-space transports).
		c->rx_stopped = true;
		stop_rx(ci);
		publish(c->pair);
		store_tails(c->pair);  // Port reads every tail after a detach
		if (pending_of(c->pair, conn) > 0)
			return make_error(EBUSY, "detach: connection " + std::to_string(conn) +
							 " has received bytes the full RX ring cannot take yet "
							 "(release RX slots, sync, retry)");
	}
	c->detaching = true;
	detach_io(ci);
	while (c->txq_head != kNil) {
		items_[c->txq_head].err = ECONNABORTED;
		finish_head(ci);
	}
	// DISCARD: drop unpublished events of this connection (RELEASE slots
	// carry DAXNET_NO_CONN and stay). A DATA event's buffer may already
	// hold published slices (packing), so it is never reused as a spare
	// here: its reference goes back with a RELEASE slot instead. BUF_HELD
	// slices carry no reference of their own.
	auto cap = static_cast<std::uint32_t>(P.pending.size());
	std::uint32_t kept = 0;
	for (std::uint32_t k = 0; k < P.pend_count; k++) {
		daxnet_slot ev = P.pending[ring_add(P.pend_head, k, cap)];
		if (ev.conn == conn) {
			if (!holds_stock_buffer(ev))
				continue;
			P.pend_data--;
			std::uint32_t b = ev.buf_idx;
			ev = daxnet_slot{};
			ev.conn = DAXNET_NO_CONN;
			ev.buf_idx = b;
			ev.flags = DAXNET_SLOT_RELEASE;
		}
		P.pending[ring_add(P.pend_head, kept++, cap)] = ev;
	}
	P.pend_count = kept;
	if (c->tx_listed) {
		for (auto& x : P.tx_active)
			if (x == ci) {
				x = P.tx_active.back();
				P.tx_active.pop_back();
				break;
			}
		c->tx_listed = false;
	}
	{
		std::lock_guard lk(g_attached_mu);
		attached_set().erase(c->sock_ino);
	}
	store_tails(c->pair);
	c->id = DAXNET_NO_CONN;
	c->fd = -1;
	free_conns_.push_back(ci);
	return {};
}

}  // namespace daxnet::detail
