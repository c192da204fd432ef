// SPDX-License-Identifier: BSD-2-Clause
//
// Port: the user-space half of the ABI, identical for every transport.
// Buffer references follow docs/abi.md: the Port calls BufferSource::ref
// when the kernel gains a reference it must give back (TX handover, an RX
// slot published with BUF_HELD) and unref when one ends (TX slot returned
// without BUF_HELD, RELEASE slot, rx_pop of a slot).
#include "daxnet/port.h"

#include <poll.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "transport.h"

namespace daxnet {

namespace {

std::uint32_t next(std::uint32_t i, std::uint32_t n) noexcept
{
	return daxnet_ring_next(i, n);
}
std::uint32_t load_acq(const std::uint32_t& f) noexcept
{
	return __atomic_load_n(&f, __ATOMIC_ACQUIRE);
}
void store_rel(std::uint32_t& f, std::uint32_t v) noexcept
{
	__atomic_store_n(&f, v, __ATOMIC_RELEASE);
}

}  // namespace

struct Port::PairState {
	daxnet_ring* rx = nullptr;
	daxnet_ring* tx = nullptr;
	daxnet_ring* spare = nullptr;
	daxnet_slot* rxs = nullptr;
	daxnet_slot* txs = nullptr;
	std::uint32_t* spares = nullptr;
	// Ring sizes, read once when the port opens: num_slots is a kernel
	// field in writable shared memory, never read back after that.
	std::uint32_t rx_n = 0;
	std::uint32_t tx_n = 0;
	std::uint32_t spare_n = 0;
	std::uint32_t rx_seen = 0;               ///< RX tail scanned up to
	std::uint32_t tx_seen = 0;               ///< TX tail scanned up to
	std::unique_ptr<std::uint8_t[]> tx_ref;  ///< TX slot handed over with a buffer ref
	std::uint64_t user_copied = 0;
};

Port::Port(const pmem::PoolView& pool, BufferSource& src, std::unique_ptr<detail::Transport> t)
    : pool_(pool), src_(&src), t_(std::move(t))
{
	std::byte* base = t_->region();
	kref_ = std::make_unique<std::uint32_t[]>(pool.buffer_count());
	npairs_ = detail::region_header(base)->num_pairs;
	pairs_ = std::make_unique<PairState[]>(npairs_);
	for (std::uint32_t p = 0; p < npairs_; p++) {
		PairState& S = pairs_[p];
		const daxnet_pair_desc* d = detail::region_pair(base, p);
		S.rx = detail::region_ring(base, d->rx_ofs);
		S.tx = detail::region_ring(base, d->tx_ofs);
		S.spare = detail::region_ring(base, d->spare_ofs);
		S.rxs = detail::ring_slots(base, S.rx);
		S.txs = detail::ring_slots(base, S.tx);
		S.spares = detail::ring_indices(base, S.spare);
		S.rx_n = S.rx->num_slots;
		S.tx_n = S.tx->num_slots;
		S.spare_n = S.spare->num_slots;
		S.rx_seen = S.rx->tail;
		S.tx_seen = S.tx->tail;
		S.tx_ref = std::make_unique<std::uint8_t[]>(S.tx_n);
	}
}

Port::Port(Port&&) noexcept = default;
Port& Port::operator=(Port&&) noexcept = default;

Port::~Port()
{
	if (!t_)
		return;
	// Unreleased RX slots hold one user reference each (a swapped slot:
	// the swapped-in spare, which the kernel never saw: give it back too).
	std::vector<std::uint32_t> drop;
	for (std::uint32_t p = 0; p < npairs_; p++) {
		PairState& S = pairs_[p];
		std::uint32_t n = S.rx_n;
		std::uint32_t h = S.rx->head;
		if (h >= n)
			continue;  // written through raw_ring(): nothing sane to walk
		for (std::uint32_t i = h; i != S.rx_seen; i = next(i, n)) {
			const daxnet_slot& s = S.rxs[i];
			if (!(s.flags & DAXNET_SLOT_RELEASE) && s.buf_idx < pool_.buffer_count())
				drop.push_back(s.buf_idx);
		}
	}
	// Closing the transport ends every kernel reference (docs/abi.md).
	t_.reset();
	for (std::uint32_t b : drop)
		src_->unref(b);
	for (std::uint32_t b = 0; b < pool_.buffer_count(); b++)
		for (std::uint32_t k = kref_[b]; k > 0; k--)
			src_->unref(b);
}

Result<Port> Port::open(const pmem::PoolView& pool, BufferSource& src, const PortOptions& opt)
{
	detail::TransportConfig cfg;
	cfg.pool = pool;
	cfg.pairs = opt.pairs;
	cfg.rx_slots = opt.rx_slots;
	cfg.tx_slots = opt.tx_slots;
	cfg.spare_slots = opt.spare_slots;
	cfg.max_conns = opt.max_conns;
	cfg.reg_flags = opt.zerocopy ? DAXNET_REG_ZEROCOPY : 0;
	auto t = detail::make_transport(opt.transport, cfg);
	if (!t)
		return t.error();
	Port port(pool, src, std::move(*t));
	port.busy_poll_ = opt.busy_poll;
	return port;
}

TransportKind Port::transport() const noexcept
{
	return t_->kind();
}

bool Port::zerocopy() const noexcept
{
	if (t_->kind() != TransportKind::kernel)
		return false;
	const auto* reg = reinterpret_cast<const daxnet_region*>(t_->region());
	return (reg->flags & DAXNET_REG_ZEROCOPY) != 0;
}

std::uint32_t Port::pairs() const noexcept
{
	return npairs_;
}

int Port::fd() const noexcept
{
	return t_->fd();
}

Result<std::uint32_t> Port::attach(int fd, std::uint32_t pair, std::uint64_t cookie)
{
	return t_->attach(fd, pair, cookie);
}

Status Port::detach(std::uint32_t conn, bool discard, int flush_timeout_ms)
{
	auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(flush_timeout_ms);
	// TX slots still in the ring are not queued anywhere yet: hand them over.
	if (!discard) {
		if (int r = sync(); r < 0)
			return make_error(-r, "detach: sync failed while flushing");
	}
	for (;;) {
		Status st = t_->detach(conn, discard ? DAXNET_DETACH_DISCARD : 0);
		// A user-space transport publishes the bytes it had received
		// while detaching: account for the new RX slots.
		for (std::uint32_t p = 0; p < npairs_; p++)
			after_sync(p);
		if (st || st.error().code != EBUSY || discard)
			return st;
		if (std::chrono::steady_clock::now() >= deadline)
			return st;
		int r = sync();
		if (r < 0)
			return make_error(-r, "detach: sync failed while flushing");
		struct pollfd pfd {
			t_->fd(), POLLIN, 0
		};
		if (!t_->has_pending())
			::poll(&pfd, 1, 1);
	}
}

void Port::refill_spares(std::uint32_t pair) noexcept
{
	PairState& S = pairs_[pair];
	std::uint32_t n = S.spare_n;
	std::uint32_t head = S.spare->head;
	std::uint32_t tail = load_acq(S.spare->tail);
	if (head >= n || tail >= n)
		return;  // a scribbled ring: the sync refuses or repairs it
	std::uint32_t idx;
	while (daxnet_ring_space(head, tail, n) > 0 && src_->take(idx)) {
		S.spares[head] = idx;
		kref_[idx]++;
		head = next(head, n);
	}
	S.spare->cur = head;
	store_rel(S.spare->head, head);
}

void Port::after_sync(std::uint32_t pair) noexcept
{
	PairState& S = pairs_[pair];
	const std::uint32_t nbuf = pool_.buffer_count();
	// New RX slots: HELD = the slot gets its own reference; RELEASE = a
	// kernel reference ends.
	// A tail out of range (the application scribbled it and the sync
	// failed before repairing it) moves nothing.
	std::uint32_t n = S.rx_n;
	std::uint32_t tail = load_acq(S.rx->tail);
	if (tail >= n)
		tail = S.rx_seen;
	for (std::uint32_t i = S.rx_seen; i != tail; i = next(i, n)) {
		const daxnet_slot& s = S.rxs[i];
		if (s.buf_idx >= nbuf)
			continue;
		if (s.flags & DAXNET_SLOT_RELEASE) {
			kref_[s.buf_idx]--;
			src_->unref(s.buf_idx);
		} else if (s.flags & DAXNET_SLOT_BUF_HELD) {
			src_->ref(s.buf_idx);  // the slot's own; the kernel keeps its
		} else {
			kref_[s.buf_idx]--;    // the kernel's reference becomes the slot's
		}
	}
	S.rx_seen = tail;
	// TX slots the kernel gave back: its reference ends unless BUF_HELD.
	std::uint32_t tn = S.tx_n;
	std::uint32_t ttail = load_acq(S.tx->tail);
	if (ttail >= tn)
		ttail = S.tx_seen;
	for (std::uint32_t i = S.tx_seen; i != ttail; i = next(i, tn)) {
		if (!S.tx_ref[i])
			continue;
		S.tx_ref[i] = 0;
		const daxnet_slot& s = S.txs[i];
		if (!(s.flags & DAXNET_SLOT_BUF_HELD) && s.buf_idx < nbuf) {
			kref_[s.buf_idx]--;
			src_->unref(s.buf_idx);
		}
	}
	S.tx_seen = ttail;
}

int Port::sync(std::uint32_t pair) noexcept
{
	return sync(pair, 0);
}

int Port::sync(std::uint32_t pair, std::uint32_t flags) noexcept
{
	if ((flags & ~std::uint32_t{DAXNET_SYNC_TX | DAXNET_SYNC_RX}) != 0)
		return -EINVAL;
	std::uint32_t first = 0, last = npairs_;
	if (pair != DAXNET_RING_ALL) {
		if (pair >= npairs_)
			return -EINVAL;
		first = pair;
		last = pair + 1;
	}
	for (std::uint32_t p = first; p < last; p++)
		refill_spares(p);
	if (int r = t_->sync(pair, flags); r < 0)
		return r;
	int ready = 0;
	for (std::uint32_t p = first; p < last; p++) {
		after_sync(p);
		ready += static_cast<int>(rx_ready(p));
	}
	return ready;
}

int Port::wait(int timeout_ms) noexcept
{
	if (busy_poll_ || t_->has_pending())
		return 1;
	struct pollfd pfd {
		t_->fd(), POLLIN, 0
	};
	int r = ::poll(&pfd, 1, timeout_ms);
	if (r < 0)
		return -errno;
	return r;
}

std::uint32_t Port::rx_ready(std::uint32_t pair) const noexcept
{
	const PairState& S = pairs_[pair];
	return daxnet_ring_space(S.rx->head, S.rx_seen, S.rx_n);
}

const daxnet_slot& Port::rx_front(std::uint32_t pair) const noexcept
{
	const PairState& S = pairs_[pair];
	return S.rxs[S.rx->head];
}

const daxnet_slot& Port::rx_at(std::uint32_t i, std::uint32_t pair) const noexcept
{
	const PairState& S = pairs_[pair];
	std::uint32_t n = S.rx_n;
	std::uint32_t k = S.rx->head + i;
	return S.rxs[k >= n ? k - n : k];
}

void Port::rx_pop(std::uint32_t pair) noexcept
{
	PairState& S = pairs_[pair];
	std::uint32_t h = S.rx->head;
	const daxnet_slot& s = S.rxs[h];
	// A swapped slot (BUF_CHANGED) names the spare, whose reference goes
	// to the kernel; the original buffer's reference went to the lease.
	if (s.buf_idx < pool_.buffer_count() && !(s.flags & DAXNET_SLOT_RELEASE)) {
		if (s.flags & DAXNET_SLOT_BUF_CHANGED)
			kref_[s.buf_idx]++;
		else
			src_->unref(s.buf_idx);
	}
	h = next(h, S.rx_n);
	S.rx->cur = h;
	store_rel(S.rx->head, h);
}

BufferLease Port::keep(std::uint32_t pair) noexcept
{
	PairState& S = pairs_[pair];
	daxnet_slot& s = S.rxs[S.rx->head];
	if ((s.flags & (DAXNET_SLOT_RELEASE | DAXNET_SLOT_BUF_CHANGED)) || s.buf_idx >= pool_.buffer_count())
		return {};
	std::uint32_t orig = s.buf_idx;
	std::uint32_t spare;
	if (src_->take(spare)) {
		s.buf_idx = spare;
		s.flags = static_cast<std::uint16_t>(s.flags | DAXNET_SLOT_BUF_CHANGED);
		return {*src_, orig};  // adopts the slot's reference
	}
	src_->ref(orig);
	return {*src_, orig};
}

std::uint32_t Port::tx_space(std::uint32_t pair) const noexcept
{
	const PairState& S = pairs_[pair];
	const std::uint32_t tail = load_acq(S.tx->tail);
	return tail < S.tx_n ? daxnet_ring_space(S.tx->head, tail, S.tx_n) : 0;
}

int Port::tx_push(std::uint32_t conn, std::uint32_t buf, std::uint32_t off, std::uint32_t len, std::uint32_t pair,
		  std::uint16_t flags, std::uint64_t user_data) noexcept
{
	if (pair >= npairs_)
		return -EINVAL;
	if ((flags & ~(DAXNET_SLOT_DATA | DAXNET_SLOT_EOF)) != 0 || flags == 0)
		return -EINVAL;
	bool data = flags & DAXNET_SLOT_DATA;
	if (data && (buf >= pool_.buffer_count() || len == 0 || std::uint64_t{off} + len > pool_.buffer_size()))
		return -EINVAL;
	PairState& S = pairs_[pair];
	std::uint32_t n = S.tx_n;
	std::uint32_t h = S.tx->head;
	const std::uint32_t tail = load_acq(S.tx->tail);
	if (h >= n)
		return -EINVAL;  // written through raw_ring()
	if (tail >= n || daxnet_ring_space(h, tail, n) == 0)
		return -ENOSPC;
	daxnet_slot& s = S.txs[h];
	s.conn = conn;
	s.buf_idx = data ? buf : DAXNET_NO_BUF;
	s.offset = data ? off : 0;
	s.len = data ? len : 0;
	s.flags = flags;
	s.err = 0;
	s.reserved = 0;
	s.user_data = user_data;
	if (data) {
		src_->ref(buf);
		kref_[buf]++;
		S.tx_ref[h] = 1;
	}
	h = next(h, n);
	S.tx->cur = h;
	store_rel(S.tx->head, h);
	return 0;
}

long Port::send_copy(std::uint32_t conn, std::span<const std::byte> bytes, std::uint32_t pair) noexcept
{
	if (pair >= npairs_)
		return -EINVAL;
	std::size_t done = 0;
	const std::uint32_t bs = pool_.buffer_size();
	int why = -ENOSPC;
	while (done < bytes.size()) {
		if (tx_space(pair) == 0) {
			why = -ENOSPC;
			break;
		}
		std::uint32_t b;
		if (!src_->take(b)) {
			why = -ENOBUFS;
			break;
		}
		auto chunk = static_cast<std::uint32_t>(std::min<std::size_t>(bs, bytes.size() - done));
		std::memcpy(pool_.buffer(b), bytes.data() + done, chunk);
		tx_push(conn, b, 0, chunk, pair);
		src_->unref(b);  // the kernel's reference keeps it
		done += chunk;
		pairs_[pair].user_copied += chunk;
	}
	if (done == 0 && !bytes.empty())
		return why;
	return static_cast<long>(done);
}

TxQueued Port::tx_queued(std::uint32_t conn) const noexcept
{
	return t_->tx_queued(conn);
}

int Port::shutdown_write(std::uint32_t conn, std::uint32_t pair) noexcept
{
	return tx_push(conn, DAXNET_NO_BUF, 0, 0, pair, DAXNET_SLOT_EOF);
}

BufferLease Port::alloc() noexcept
{
	std::uint32_t b;
	if (!src_->take(b))
		return {};
	return {*src_, b};
}

daxnet_ring* Port::raw_ring(std::uint32_t pair, std::uint32_t kind) const noexcept
{
	if (pair >= npairs_)
		return nullptr;
	const PairState& S = pairs_[pair];
	return kind == DAXNET_RING_RX ? S.rx : kind == DAXNET_RING_TX ? S.tx : kind == DAXNET_RING_SPARE ? S.spare : nullptr;
}

RingCounters Port::counters(std::uint32_t pair) const noexcept
{
	RingCounters c = t_->counters(pair);
	for (std::uint32_t p = 0; p < npairs_; p++)
		if (pair == DAXNET_RING_ALL || pair == p)
			c.cpu_copied += pairs_[p].user_copied;
	return c;
}

}  // namespace daxnet
