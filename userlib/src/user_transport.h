// SPDX-License-Identifier: BSD-2-Clause
//
// UserTransport: the part of "the kernel" that the user-space transports
// (epoll, uring) share. It owns a private region laid out as daxnet.h says,
// validates user-written ring indices, turns TX slots into per-connection
// queues, returns TX slots with BUF_HELD while their bytes are still
// queued, emits RELEASE / NEW_CONN / EOF / ERROR events and publishes
// events into the RX ring in order, never beyond its room. The derived
// transport only moves bytes (io()) and keeps the spare stock.
//
// Nothing on the sync path allocates: every queue is sized at creation.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "transport.h"

namespace daxnet::detail {

/// Writes a field that is const in the user-space view of the ABI (the
/// user-space transports play the kernel). Release order: every slot
/// written before is visible to whoever reads the index.
inline void kstore(const std::uint32_t& field, std::uint32_t v) noexcept
{
	__atomic_store_n(const_cast<std::uint32_t*>(&field), v, __ATOMIC_RELEASE);
}
inline std::uint32_t uload(const std::uint32_t& field) noexcept
{
	return __atomic_load_n(&field, __ATOMIC_ACQUIRE);
}
/// Distance from a to b going forward in a ring of n.
inline std::uint32_t ring_dist(std::uint32_t a, std::uint32_t b, std::uint32_t n) noexcept
{
	return b >= a ? b - a : b + n - a;
}
inline std::uint32_t ring_add(std::uint32_t a, std::uint32_t d, std::uint32_t n) noexcept
{
	std::uint32_t r = a + d;
	return r >= n ? r - n : r;
}

/// A DATA event whose buffer reference goes with it (no BUF_HELD): while
/// pending it counts against the spare stock.
bool holds_stock_buffer(const daxnet_slot& ev) noexcept;

/// Bytes of a region for this geometry; formats one at `base` (zeroed).
std::size_t region_bytes(const TransportConfig& cfg) noexcept;
void region_format(std::byte* base, const TransportConfig& cfg) noexcept;
/// Validates the geometry (EINVAL with a message).
Status check_config(const TransportConfig& cfg);
/// Checks that `fd` is a connected TCP socket (ABI attach errors).
Status check_tcp_socket(int fd);

class UserTransport : public Transport {
public:
	~UserTransport() override;
	std::byte* region() const noexcept override { return region_; }
	Result<std::uint32_t> attach(int fd, std::uint32_t pair, std::uint64_t cookie) override;
	Status detach(std::uint32_t conn, std::uint32_t flags) override;
	int sync(std::uint32_t pair, std::uint32_t flags) noexcept override;
	bool has_pending() const noexcept override;
	RingCounters counters(std::uint32_t pair) const noexcept override;
	TxQueued tx_queued(std::uint32_t conn) const noexcept override;

protected:
	static constexpr std::uint32_t kNil = 0xffffffffu;

	struct TxItem {
		std::uint32_t next = kNil;   ///< conn queue / free list link
		std::uint32_t slot = 0;      ///< TX slot it came from
		std::uint32_t conn = 0;      ///< conn index
		std::uint32_t buf = DAXNET_NO_BUF;
		std::uint32_t off = 0;
		std::uint32_t len = 0;
		std::uint32_t sent = 0;      ///< bytes of [off, off+len) sent
		std::uint16_t flags = 0;     ///< the user's DATA / EOF
		std::uint16_t err = 0;
		bool returned = false;       ///< its slot went back (with BUF_HELD)
		bool done = false;
	};

	struct Conn {
		int fd = -1;
		std::uint32_t id = DAXNET_NO_CONN;  ///< full id; NO_CONN when free
		std::uint32_t pair = 0;
		std::uint64_t cookie = 0;
		std::uint64_t sock_ino = 0;
		bool rx_done = false;        ///< EOF or ERROR reported: no more reads
		bool rx_stopped = false;     ///< detach began: no more reads, received bytes still published
		bool err_reported = false;
		bool detaching = false;
		bool tx_listed = false;      ///< in its pair's tx_active list
		std::uint32_t txq_head = kNil;
		std::uint32_t txq_tail = kNil;
		std::uint64_t txq_bytes = 0;  ///< len of queued items not yet done
		std::uint32_t txq_items = 0;  ///< queued items not yet done
		std::uint16_t gen = 0;
	};

	/// Per pair private state. The region is ordinary writable memory:
	/// the application can scribble every field in it, including the ones
	/// the ABI makes kernel-owned (tail, num_slots, slots_ofs, ...). Like
	/// daxnet.ko, the transport therefore keeps its own copy of each of
	/// them here, decides only from these copies, and writes the region's
	/// tails from them (repairing a clobbered one) at every sync. The
	/// pointers below are fixed at creation, from the region it formatted.
	struct Pair {
		daxnet_ring* rx = nullptr;
		daxnet_ring* tx = nullptr;
		daxnet_ring* spare = nullptr;
		daxnet_slot* rxs = nullptr;
		daxnet_slot* txs = nullptr;
		std::uint32_t* spares = nullptr;
		std::uint32_t rx_n = 0;        ///< RX ring slots (private num_slots)
		std::uint32_t tx_n = 0;        ///< TX ring slots
		std::uint32_t spare_n = 0;     ///< spare ring entries
		std::uint32_t rx_tail = 0;     ///< RX tail (private copy of the (k) field)
		std::uint32_t tx_tail = 0;     ///< TX tail
		std::uint32_t spare_tail = 0;  ///< spare ring tail
		std::uint32_t rx_head = 0;     ///< RX head as last validated
		std::uint32_t tx_head = 0;     ///< TX head as last validated
		std::uint32_t tx_cur = 0;      ///< next TX slot to consume
		std::uint32_t spare_head = 0;
		std::uint32_t spare_cur = 0;
		std::vector<std::uint32_t> consumed;   ///< items consumed this sync, ring order
		std::vector<daxnet_slot> pending;      ///< events not yet published (FIFO)
		std::uint32_t pend_head = 0;
		std::uint32_t pend_count = 0;
		std::uint32_t pend_data = 0;           ///< pending DATA events holding a stock buffer (no BUF_HELD)
		std::vector<std::uint32_t> tx_active;  ///< conn indices with queued TX
		RingCounters ctr;
	};

	explicit UserTransport(const TransportConfig& cfg);
	/// Allocates the region, the tables; call from the derived factory.
	Status init_common();

	// ---- hooks for the derived transport ----------------------------------
	/// Moves bytes: sends queued TX (when `tx`), reads into stock buffers
	/// (when `rx`), pushes events. Counts its syscalls in pair.ctr.
	virtual void io(std::uint32_t pair, bool tx, bool rx) noexcept = 0;
	/// A buffer becomes part of the spare stock of `pair`.
	virtual void stock_put(std::uint32_t pair, std::uint32_t buf) noexcept = 0;
	virtual std::uint32_t stock_count(std::uint32_t pair) const noexcept = 0;
	virtual Status attach_io(std::uint32_t ci) = 0;
	/// Detach without DISCARD, first step (conn.rx_stopped is already set):
	/// stop reading the conn so that whatever the socket still holds stays
	/// there, and push every byte already taken from the socket as DATA
	/// events before returning (and release a buffer held for packing).
	/// May be called again for the same conn (after EBUSY).
	virtual void stop_rx(std::uint32_t ci) noexcept = 0;
	/// Stops all I/O of the conn; after it no buffer of the conn is in use
	/// by the OS except TX items still marked not done.
	virtual void detach_io(std::uint32_t ci) noexcept = 0;
	/// True when the derived transport has work a sync would do at once.
	virtual bool io_pending() const noexcept { return false; }

	// ---- helpers ---------------------------------------------------------
	Conn* conn_by_id(std::uint32_t id) noexcept;
	/// Room for events in the RX ring of `pair` beyond those pending.
	std::uint32_t rx_room(std::uint32_t pair) const noexcept;
	void push_event(std::uint32_t pair, const daxnet_slot& ev) noexcept;
	void push_data(std::uint32_t ci, std::uint32_t buf, std::uint32_t len) noexcept;
	/// A slice [off, off+len) of `buf`; `held`: the transport keeps its
	/// reference (DAXNET_SLOT_BUF_HELD) and will publish more slices of it
	/// or a RELEASE.
	void push_slice(std::uint32_t ci, std::uint32_t buf, std::uint32_t off, std::uint32_t len, bool held) noexcept;
	/// A RELEASE slot for `buf` (conn DAXNET_NO_CONN).
	void push_release(std::uint32_t pair, std::uint32_t buf) noexcept;
	void push_eof(std::uint32_t ci) noexcept;
	/// Reports ERROR once, stops reads and fails every queued TX item.
	void push_error(std::uint32_t ci, int err) noexcept;
	/// Marks the head item of conn done (fully sent or failed) and unlinks it.
	void finish_head(std::uint32_t ci) noexcept;
	/// Most TX items one send takes (the length of its iovec array).
	static constexpr std::uint32_t kMaxIov = 64;
	/// Finishes the head items of conn's TX queue that have no bytes left
	/// to send: EOF markers and the EOF part of sent items (shutting the
	/// write side down first). Afterwards the head, if any, has bytes.
	void finish_sent_heads(std::uint32_t ci) noexcept;
	/// Points iov[0..kMaxIov) at the unsent bytes of the DATA items at the
	/// head of conn's TX queue, up to the first EOF; returns how many.
	std::uint32_t gather_tx(std::uint32_t ci, iovec* iov) noexcept;
	void list_tx(std::uint32_t ci) noexcept;
	void free_item(std::uint32_t it) noexcept;

	TransportConfig cfg_;
	std::byte* region_ = nullptr;
	std::size_t region_size_ = 0;
	std::vector<Pair> pairs_;
	std::vector<Conn> conns_;
	std::vector<std::uint32_t> free_conns_;
	std::vector<TxItem> items_;
	std::uint32_t free_items_ = kNil;

	void publish(std::uint32_t pair) noexcept;

private:
	/// Writes the three tails of `pair` into the region from the private
	/// copies (netmap's finalize: a tail the application clobbered is
	/// repaired).
	void store_tails(std::uint32_t pair) noexcept;
	int intake(std::uint32_t pair, bool tx, bool rx) noexcept;
	void tx_return(std::uint32_t pair) noexcept;
	/// Events of `conn` waiting for room in the RX ring.
	std::uint32_t pending_of(std::uint32_t pair, std::uint32_t conn) const noexcept;
	std::uint32_t alloc_item() noexcept;
};

}  // namespace daxnet::detail
