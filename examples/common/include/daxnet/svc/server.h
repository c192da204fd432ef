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
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "daxnet/port.h"
#include "daxnet/proto/chain.h"
#include "daxnet/proto/http.h"
#include "daxnet/proto/reply.h"
#include "daxnet/proto/resp.h"

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
	bool empty() const noexcept { return segs_.empty() && out_.size() == mark_; }
	/// Hands as much as the TX ring takes to `port`. Returns false when
	/// something is left (TX ring full or no free buffer).
	/// `zerocopy` accumulates the bytes handed over in place.
	bool flush(Port& port, std::uint32_t conn, std::uint64_t& zerocopy) noexcept;
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

	proto::OutBuf out_;
	std::vector<Seg> segs_;
	std::size_t head_ = 0;  ///< first unsent seg
	std::size_t mark_ = 0;  ///< out_ bytes already covered by segs_
};

struct Conn {
	std::uint32_t id = 0;
	int fd = -1;
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
	std::uint32_t detach_tries = 0;
	std::uint64_t detach_since_ns = 0;  ///< CLOCK_MONOTONIC of the first detach try
	std::uint64_t last_active_ns = 0;   ///< CLOCK_MONOTONIC of the last data received
	std::vector<std::vector<char>> scratch;  ///< per-argument gather space
	std::shared_ptr<void> app;    ///< the service's per-connection state

	/// `r` as a string_view: in place or gathered (scratch slot `i`).
	std::string_view view(proto::StreamRange r, std::size_t i)
	{
		if (scratch.size() <= i)
			scratch.resize(i + 1);
		return chain.view(r, scratch[i]);
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
	/// A reply was queued on `c` outside on_resp/on_http (e.g. from
	/// end_of_pass, for a request that waited): send it this pass.
	void wake(Conn& c) { mark_dirty(c); }
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
	void parse(Conn& c, const proto::Slice& s);
	void trim(Conn& c);
	void compact(Conn& c);
	void mark_dirty(Conn& c);
	void flush_all();
	void close_ready();
	void close_idle(std::uint64_t now_ns);
	void drop(Conn& c, bool discard);
	Conn* find(std::uint32_t id) noexcept;

	Port& port_;
	Service& svc_;
	std::vector<Listener> listeners_;
	ServerOptions opt_;
	std::vector<std::unique_ptr<Conn>> conns_;  ///< by DAXNET_CONN_INDEX(id)
	std::vector<Conn*> dirty_;
	std::vector<Conn*> closing_;
	ServerCounters ctr_;
	std::uint64_t next_idle_check_ns_ = 0;
};

}  // namespace daxnet::svc
