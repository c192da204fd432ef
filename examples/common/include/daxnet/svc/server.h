// SPDX-License-Identifier: BSD-2-Clause
//
// The event loop the three services share, over one daxnet::Port.
//
// One pass of the loop:
//   1. wait (poll on the port fd and the listeners) unless work is pending;
//   2. accept new connections and attach them to the port;
//   3. walk the RX slots: each DATA slot is appended to its connection's
//      SliceChain and parsed in place (daxnet_proto); every complete request
//      goes to the Service, which stages writes and queues replies;
//   4. Service::end_of_pass(): ONE commit (one fence) for every write of
//      the pass, across all connections — group commit;
//   5. queue every connection's replies as TX slots (only now: nothing is
//      acknowledged before it is durable), then sync: TX out, next RX in.
//      With a pipelined commit (Service::commit_ticket(): the pass's drain
//      runs on the pool's flusher thread, page-granularity pools) the
//      pass's replies are held instead, and the loop goes on receiving,
//      parsing and answering reads of later passes; a held connection's
//      replies (and any it queues after them) go out in a later pass once
//      Service::durable() says the ticket is durable, the wait woken by
//      Service::durable_fd().
//
// Buffers: a received slot's buffer is kept (Port::keep) only when a request
// is still incomplete at the end of the slot; a complete request is handled
// while its slot is still in the ring. Kept buffers are released as soon as
// the parser has moved past them; the WAL takes its own references to
// whatever it logs. Replies are copied into fresh TX buffers, except large
// values, which are sent straight from the buffers that hold them.
//
// A connection that trickles bytes (one per packet) would pin one buffer per
// byte: when its chain holds many small slices they are compacted into fresh
// buffers (one copy, counted in bytes_compacted).
//
// Limits and client isolation (docs/design.md, "Limits and client
// isolation"): a connection's queued output (its TxQueue plus what the port
// holds for it, Port::tx_queued) is bounded by the output-buffer limit
// (Redis's client-output-buffer-limit: over the hard limit, or over the soft
// one for its seconds, the client is closed); only a fair share of it is
// handed to the port at a time (tx_share_*), the rest waits in DRAM; the
// bytes an incomplete request pins are bounded per connection (query_limit)
// and over all connections (clients_limit, and the pool's free buffers
// kept above buffer_reserve): beyond, the connection pinning the most is
// closed. Each limit has a counter (ServerCounters).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "daxnet/fd.h"
#include "daxnet/port.h"
#include "daxnet/proto/chain.h"
#include "daxnet/proto/http.h"
#include "daxnet/proto/reply.h"
#include "daxnet/proto/resp.h"
#include "daxnet/svc/refusal.h"

namespace daxnet::svc {

enum class Proto : std::uint8_t { resp, http };

/// Replies of one connection waiting for the end of the pass: bytes to copy
/// into TX buffers, and references to pool bytes to send in place.
class TxQueue {
public:
	proto::OutBuf& bytes() noexcept { return out_; }
	/// Sends [off, off+len) of pool buffer `buf` after what is queued;
	/// takes a reference on `buf` until it is handed to the port.
	void append_ref(BufferSource& src, std::uint32_t buf, std::uint32_t off, std::uint32_t len);
	bool empty() const noexcept { return head_ == segs_.size() && out_.size() == mark_; }
	/// Bytes queued here, not yet handed to the port.
	std::uint64_t queued() const noexcept { return queued_ + (out_.size() - mark_); }
	/// Hands as much as the TX ring takes to `port`, at most `slots` TX
	/// slots and about `bytes` bytes (both decremented by what was handed
	/// over). Returns false when something is left (budget spent, TX ring
	/// full or no free buffer). `zerocopy` accumulates the bytes handed
	/// over in place. Once empty, large buffers are given back (shrink).
	bool flush(Port& port, std::uint32_t conn, std::uint64_t& zerocopy, std::uint32_t& slots,
		   std::uint64_t& bytes) noexcept;
	bool flush(Port& port, std::uint32_t conn, std::uint64_t& zerocopy) noexcept
	{
		std::uint32_t s = UINT32_MAX;
		std::uint64_t b = UINT64_MAX;
		return flush(port, conn, zerocopy, s, b);
	}
	/// Drops everything (connection gone), releasing references.
	void discard(BufferSource& src) noexcept;

private:
	struct Seg {
		bool ref = false;
		std::uint32_t buf = 0;
		std::uint64_t off = 0;  ///< ref: offset in buf; bytes: offset in out_
		std::uint32_t len = 0;
	};
	void seal();  // turns bytes appended since the last seg into a seg
	void reset() noexcept;

	proto::OutBuf out_;
	std::vector<Seg> segs_;
	std::size_t head_ = 0;  ///< first unsent seg
	std::size_t mark_ = 0;  ///< out_ bytes already covered by segs_
	std::uint64_t queued_ = 0;  ///< bytes of segs_[head_..]
};

struct Conn {
	std::uint32_t id = 0;
	UniqueFd fd;
	Proto proto = Proto::resp;
	proto::SliceChain chain;
	bool last_kept = true;        ///< the chain's last slice is held by us
	proto::RespParser resp;
	proto::HttpParser http;
	TxQueue tx;
	bool dirty = false;           ///< on the loop's dirty list
	bool closing = false;         ///< close once tx is flushed
	bool listed_closing = false;  ///< on the loop's closing list
	bool peer_closed = false;
	bool failed = false;          ///< transport error: discard output
	bool sent_continue = false;   ///< HTTP 100 Continue sent for this request
	bool tx_blocked = false;      ///< output waits for its port share to drain
	bool inport_listed = false;   ///< on the loop's list of connections with output in the port
	bool held = false;            ///< replies wait for a pipelined commit (held_ticket)
	std::uint64_t held_ticket = 0;
	TxQueued inport{};            ///< what the port holds for it (as of the last look)
	std::uint64_t rx_pinned = 0;  ///< chain bytes counted in the loop's pinned total
	std::uint64_t soft_since_ns = 0;  ///< over the soft output limit since (0: not over)
	std::uint32_t detach_tries = 0;
	std::uint64_t detach_since_ns = 0;  ///< CLOCK_MONOTONIC of the first detach try
	std::uint64_t last_active_ns = 0;   ///< CLOCK_MONOTONIC of the last data received
	std::vector<std::vector<char>> scratch;  ///< per-argument gather space
	bool scratch_grown = false;   ///< an argument was gathered since the last shrink_scratch
	std::shared_ptr<void> app;    ///< the service's per-connection state

	/// `r` as a string_view: in place or gathered (scratch slot `i`).
	std::string_view view(proto::StreamRange r, std::size_t i)
	{
		if (scratch.size() <= i) {
			scratch.resize(i + 1);
			scratch_grown = true;
		}
		std::vector<char>& v = scratch[i];
		const std::string_view out = chain.view(r, v);
		if (!v.empty() && out.data() == v.data())
			scratch_grown = true;
		return out;
	}
};

struct ServerCounters {
	std::uint64_t passes = 0;
	std::uint64_t requests = 0;
	std::uint64_t connections = 0;     ///< accepted
	std::uint64_t open_connections = 0;
	std::uint64_t protocol_errors = 0;
	std::uint64_t kept = 0;            ///< RX buffers kept past their slot
	std::uint64_t bytes_compacted = 0; ///< trickled bytes copied to compact a chain
	std::uint64_t tx_zerocopy = 0;     ///< reply bytes sent from stored buffers
	std::uint64_t waits = 0;
	std::uint64_t idle_timeouts = 0;   ///< connections closed by --timeout
	std::uint64_t output_limit_closes = 0;  ///< closed over the output-buffer limit (hard, or soft for its seconds)
	std::uint64_t query_limit_closes = 0;   ///< closed: an incomplete request over the query-buffer limit
	std::uint64_t proto_limit_closes = 0;   ///< refused at a header: bulk, argument count or body over its limit
	std::uint64_t evicted_clients = 0;      ///< closed: pinned the most when all clients pinned too much
	std::uint64_t tx_share_waits = 0;       ///< output held back: the connection's port share was full
	std::uint64_t rx_pinned_bytes = 0;      ///< now: bytes incomplete requests pin
	std::uint64_t tx_inport_bytes = 0;      ///< now: bytes the port holds for connections (user-space transports)
};

class Server;

/// The range `r` as one pool slice when it lies inside one chain slice.
bool single_slice(const proto::SliceChain& chain, proto::StreamRange r, std::uint32_t& buf,
		  std::uint32_t& off) noexcept;

/// What a service does with complete requests.
class Service {
public:
	virtual ~Service() = default;
	/// A complete RESP request (args in c.resp.args()). Queue the reply on
	/// c.tx; set c.closing to close after it.
	virtual void on_resp(Server&, Conn&) {}
	/// A complete HTTP request (c.http.request()).
	virtual void on_http(Server&, Conn&) {}
	/// After every RX slot of a pass: make staged writes durable (one
	/// fence) before any reply goes out.
	virtual void end_of_pass(Server&) {}
	/// A connection is about to be destroyed (its app state with it).
	virtual void on_close(Server&, Conn&) {}
	/// Background work is pending (e.g. an incremental checkpoint): the
	/// loop runs more passes without waiting, a bounded step each.
	virtual bool busy() const { return false; }
	/// Pipelined commit: the ticket of the commit the last end_of_pass()
	/// began and that is not durable yet, 0 when the pass's replies may go
	/// now. The loop holds the pass's replies until durable(ticket).
	virtual std::uint64_t commit_ticket() const { return 0; }
	virtual bool durable(std::uint64_t ticket) const
	{
		(void)ticket;
		return true;
	}
	/// Readable when a pipelined commit completed (-1: none ever runs).
	virtual int durable_fd() const { return -1; }
	/// Waits until every commit begun is durable (the stop).
	virtual void wait_durable() {}
};

struct Listener {
	int fd = -1;
	Proto proto = Proto::resp;
};

struct ServerOptions {
	proto::RespLimits resp{};
	proto::HttpLimits http{};
	std::uint32_t compact_slices = 32;  ///< compact a chain of more small slices
	/// Close a connection whose incomplete request spans more slices. 0
	/// (default): enough for the largest request the limits above allow
	/// (resp.max_request, http.max_body + headers) at the lowest density
	/// compaction leaves (a quarter of each buffer).
	std::uint32_t max_slices = 0;
	/// Close a connection idle (nothing received) this many seconds, as
	/// Redis's `timeout`; 0: never.
	std::uint32_t idle_timeout_s = 0;
	/// Redis's client-output-buffer-limit (normal class): a connection whose
	/// queued output exceeds `output_hard` bytes, or `output_soft` bytes for
	/// `output_soft_s` seconds in a row, is closed (its output discarded).
	/// 0: no such limit. Queued output = its TxQueue + Port::tx_queued.
	std::uint64_t output_hard = 32ull << 20;
	std::uint64_t output_soft = 0;
	std::uint32_t output_soft_s = 0;
	/// Fair share of TX capacity: at most this many slots / bytes of one
	/// connection are queued in the port at a time; the rest waits in its
	/// TxQueue until the peer reads.
	std::uint32_t tx_share_slots = 64;
	std::uint64_t tx_share_bytes = 256u << 10;
	/// Redis's client-query-buffer-limit: bytes a connection's incomplete
	/// request (and what follows it) may pin; over it the connection is
	/// closed. 0: no limit beyond the parsers' (resp.max_request).
	std::uint64_t query_limit = 0;
	/// Like Redis's maxmemory-clients, for pool bytes: what all connections
	/// together may pin with incomplete requests and output queued in the
	/// port; beyond it the connection pinning the most is closed. 0: none.
	std::uint64_t clients_limit = 0;
	/// Free pool buffers held for new requests and replies: below it, a
	/// connection whose port share is partly used queues no more copies,
	/// and the connection pinning the most with an incomplete request is
	/// closed. 0: auto (max(32, buffers / 32)).
	std::uint32_t buffer_reserve = 0;
	/// The pool's free buffers now; unset: the reserve is not checked.
	std::function<std::uint64_t()> free_buffers;
};

class Server {
public:
	Server(Port& port, Service& svc, std::vector<Listener> listeners, const ServerOptions& opt);
	~Server();
	Server(const Server&) = delete;
	Server& operator=(const Server&) = delete;

	/// Runs passes until stop_requested(); then flushes, detaches and
	/// closes every connection. Returns 0, or an errno on a fatal error.
	int run();

	Port& port() noexcept { return port_; }
	BufferSource& source() noexcept { return port_.source(); }
	const ServerCounters& counters() const noexcept { return ctr_; }
	const ServerOptions& options() const noexcept { return opt_; }

	/// Queues a RESP error reply (message without the leading '-').
	void resp_error(Conn& c, std::string_view msg) { proto::resp::error(c.tx.bytes(), msg); }
	/// Queues an HTTP error response and closes the connection after it.
	void http_error(Conn& c, int status, std::string_view msg);
	/// The same for a service's refusal (its status and message), when
	/// the request cannot be read on (a body over the limit).
	void http_error(Conn& c, const Refusal& r) { http_error(c, r.http_status(), r.message); }
	/// A reply was queued on `c` outside on_resp/on_http (e.g. from
	/// end_of_pass, for a request that waited): send it this pass.
	void wake(Conn& c) { mark_dirty(c); }
	/// Output queued on `c` outside its own requests (a PUBLISH to a
	/// subscriber), or `held` bytes of replies the service builds for it
	/// elsewhere first (an EXEC's): closes it now when over the
	/// client-output-buffer-limit and returns true, as the check after a
	/// request would.
	bool check_output_limit(Conn& c, std::uint64_t held = 0) { return output_over(c, 0, held); }
	/// The connection with this id, or nullptr.
	Conn* conn(std::uint32_t id) noexcept { return find(id); }
	/// Closes `c` once what is queued for it is sent.
	void close_after_reply(Conn& c)
	{
		c.closing = true;
		mark_dirty(c);
	}
	/// Visits every open connection.
	template <class F> void for_each_conn(F&& fn)
	{
		for (auto& c : conns_)
			if (c)
				fn(*c);
	}

private:
	void accept_all(const Listener& l);
	void on_slot(const daxnet_slot& s);
	void on_data(Conn& c, const daxnet_slot& s);
	void parse(Conn& c, const proto::RxSlice& s);
	void trim(Conn& c);
	void on_data_tail(Conn& c);
	void shrink_scratch(Conn& c) noexcept;
	void compact(Conn& c);
	void mark_dirty(Conn& c);
	void flush_all();
	/// End of a pass: hold the pass's replies when its commit is in
	/// flight, release held connections whose commit is durable, flush.
	void flush_replies();
	void release_held(bool all);
	void close_ready();
	void close_idle(std::uint64_t now_ns);
	void drop(Conn& c, bool discard);
	/// Closes `c` at once for a limit (output discarded, pins released),
	/// counting it in `counter`.
	void kill(Conn& c, std::uint64_t& counter, const char* why);
	void release_chain(Conn& c) noexcept;
	/// Updates the loop's pinned total after c's chain changed.
	void account_rx(Conn& c) noexcept;
	/// Output-buffer limit: true (and `c` closed) when over it.
	bool output_over(Conn& c, std::uint64_t now_ns, std::uint64_t held = 0);
	/// TX budget of `c` for this pass (fair share, reserve).
	void tx_budget(Conn& c, std::uint32_t& slots, std::uint64_t& bytes) noexcept;
	/// Refreshes what the port holds per connection; wakes connections
	/// waiting for their share that have room again.
	void check_inport();
	/// Closes the biggest pinner while clients pin beyond the limits.
	void evict();
	bool reserve_low() const;
	Conn* find(std::uint32_t id) noexcept;

	Port& port_;
	Service& svc_;
	std::vector<Listener> listeners_;
	ServerOptions opt_;
	std::vector<std::unique_ptr<Conn>> conns_;  ///< by DAXNET_CONN_INDEX(id)
	std::vector<Conn*> dirty_;
	std::vector<Conn*> closing_;
	std::vector<Conn*> inport_;   ///< connections with output queued in the port (inport_listed)
	std::vector<Conn*> held_;     ///< replies waiting for a pipelined commit (Conn::held)
	std::uint32_t tx_slots_ = 0;  ///< TX ring size (the port queues 4x that beyond the per-connection share)
	ServerCounters ctr_;
	std::uint64_t next_idle_check_ns_ = 0;
	std::uint64_t inport_extra_ = 0;  ///< slots connections hold in the port beyond Port::kTxSlotsPerConn each
};

}  // namespace daxnet::svc
