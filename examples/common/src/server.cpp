// SPDX-License-Identifier: BSD-2-Clause
#include "daxnet/svc/server.h"

#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "daxnet/svc/options.h"

namespace daxnet::svc {

namespace {
constexpr std::size_t kMaxListeners = 4;
constexpr std::uint64_t kCloseLingerNs = 10'000'000'000ull;  ///< 10 s for a closing peer to read its reply

std::uint64_t mono_ns() noexcept
{
	timespec ts{};
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}
}  // namespace

// ---- TxQueue ---------------------------------------------------------------

namespace {
/// Capacity an empty TxQueue keeps; beyond it its buffers are given back
/// (a 16 MiB reply must not pin 16 MiB of DRAM for the connection's life).
constexpr std::size_t kKeepOutBytes = 64u << 10;
constexpr std::size_t kKeepSegs = 1024;
}  // namespace

void TxQueue::seal()
{
	while (out_.size() > mark_) {
		// A seg's length is 32-bit: a larger run of bytes becomes several.
		const auto len = static_cast<std::uint32_t>(std::min<std::size_t>(out_.size() - mark_, 1u << 30));
		segs_.push_back(Seg{false, 0, mark_, len});
		queued_ += len;
		mark_ += len;
	}
}

void TxQueue::append_ref(BufferSource& src, std::uint32_t buf, std::uint32_t off, std::uint32_t len)
{
	seal();
	src.ref(buf);
	segs_.push_back(Seg{true, buf, off, len});
	queued_ += len;
}

void TxQueue::reset() noexcept
{
	segs_.clear();
	head_ = 0;
	out_.clear();
	mark_ = 0;
	queued_ = 0;
	out_.shrink(kKeepOutBytes);
	if (segs_.capacity() > kKeepSegs)
		std::vector<Seg>().swap(segs_);
}

bool TxQueue::flush(Port& port, std::uint32_t conn, std::uint64_t& zerocopy, std::uint32_t& slots,
		    std::uint64_t& bytes) noexcept
{
	seal();
	const std::uint64_t bsize = port.pool().buffer_size();
	while (head_ < segs_.size()) {
		if (slots == 0 || bytes == 0)
			break;
		Seg& s = segs_[head_];
		if (s.ref) {
			if (port.tx_push(conn, s.buf, static_cast<std::uint32_t>(s.off), s.len) < 0)
				break;
			port.source().unref(s.buf);
			zerocopy += s.len;
			queued_ -= s.len;
			--slots;
			bytes -= std::min<std::uint64_t>(bytes, s.len);
		} else {
			const std::uint64_t cap = std::min<std::uint64_t>({s.len, slots * bsize, bytes});
			long n = port.send_copy(conn, out_.bytes().subspan(s.off, cap));
			if (n <= 0)
				break;
			const auto un = static_cast<std::uint64_t>(n);
			s.off += un;
			s.len -= static_cast<std::uint32_t>(un);
			queued_ -= un;
			slots -= static_cast<std::uint32_t>(std::min<std::uint64_t>(slots, (un + bsize - 1) / bsize));
			bytes -= std::min<std::uint64_t>(bytes, un);
			if (s.len != 0)
				break;
		}
		++head_;
	}
	if (head_ == segs_.size()) {
		reset();
		return true;
	}
	// Something is left. Sent bytes at the front of out_ are dead: once
	// they are most of it, move the rest down, so a reader that keeps up
	// only partly does not grow out_ for as long as it is never empty.
	std::size_t first = mark_;
	for (std::size_t i = head_; i < segs_.size(); ++i)
		if (!segs_[i].ref) {
			first = segs_[i].off;
			break;
		}
	if (first > kKeepOutBytes && first > out_.size() / 2) {
		out_.consume(first);
		for (std::size_t i = head_; i < segs_.size(); ++i)
			if (!segs_[i].ref)
				segs_[i].off -= first;
		mark_ -= first;
	}
	if (head_ > kKeepSegs && head_ > segs_.size() / 2) {
		segs_.erase(segs_.begin(), segs_.begin() + static_cast<std::ptrdiff_t>(head_));
		head_ = 0;
	}
	return false;
}

void TxQueue::discard(BufferSource& src) noexcept
{
	for (std::size_t i = head_; i < segs_.size(); ++i)
		if (segs_[i].ref)
			src.unref(segs_[i].buf);
	reset();
}

bool single_slice(const proto::SliceChain& chain, proto::StreamRange r, std::uint32_t& buf,
		  std::uint32_t& off) noexcept
{
	if (r.off < chain.begin() || r.end() > chain.end())
		return false;
	std::size_t i = chain.find(r.off);
	if (i == chain.size())
		return false;
	const proto::RxSlice& s = chain.at(i);
	if (r.end() > s.stream_end())
		return false;
	buf = s.buf;
	off = s.buf_off + static_cast<std::uint32_t>(r.off - s.stream_off);
	return true;
}

// ---- Server ----------------------------------------------------------------

Server::Server(Port& port, Service& svc, std::vector<Listener> listeners, const ServerOptions& opt)
    : port_(port), svc_(svc), listeners_(std::move(listeners)), opt_(opt)
{
	if (opt_.max_slices == 0) {
		// A 16 MiB value in 4 KiB buffers is 4096 slices: the old fixed
		// 1024 reset the connection of any request above 4 MiB.
		const std::uint64_t bsize = port_.pool().buffer_size();
		const std::uint64_t largest =
			std::max<std::uint64_t>(opt_.resp.max_request, opt_.http.max_body + opt_.http.max_header_bytes);
		opt_.max_slices = static_cast<std::uint32_t>(
			std::min<std::uint64_t>(UINT32_MAX, 4 * (largest / bsize + 2) + opt_.compact_slices));
	}
	if (opt_.query_limit && opt_.resp.max_request > opt_.query_limit)
		opt_.resp.max_request = opt_.query_limit;  // refused at the header, before it pins anything
	if (opt_.buffer_reserve == 0)
		opt_.buffer_reserve = std::max<std::uint32_t>(32, port_.pool().buffer_count() / 32);
	opt_.tx_share_slots = std::max(opt_.tx_share_slots, Port::kTxSlotsPerConn);
	if (opt_.tx_share_bytes == 0)
		opt_.tx_share_bytes = port_.pool().buffer_size();
	if (const daxnet_ring* tx = port_.raw_ring(0, DAXNET_RING_TX))
		tx_slots_ = tx->num_slots;
	dirty_.reserve(64);
	closing_.reserve(16);
}

Server::~Server()
{
	for (auto& c : conns_)
		if (c)
			drop(*c, true);
}

Conn* Server::find(std::uint32_t id) noexcept
{
	std::uint32_t i = DAXNET_CONN_INDEX(id);
	if (i >= conns_.size() || !conns_[i] || conns_[i]->id != id)
		return nullptr;
	return conns_[i].get();
}

void Server::accept_all(const Listener& l)
{
	for (;;) {
		UniqueFd fd(::accept4(l.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
		if (!fd) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED)
				fmt::print(stderr, "accept: {}\n", std::strerror(errno));
			return;
		}
		int one = 1;
		::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		auto id = port_.attach(fd.get(), 0, static_cast<std::uint64_t>(l.proto));
		if (!id) {
			fmt::print(stderr, "attach: {}\n", id.error().message);
			continue;  // fd closes here
		}
		std::uint32_t idx = DAXNET_CONN_INDEX(*id);
		if (idx >= conns_.size())
			conns_.resize(idx + 1);
		if (conns_[idx])
			drop(*conns_[idx], true);  // stale: the port reused the index
		auto c = std::make_unique<Conn>();
		c->id = *id;
		c->fd = std::move(fd);
		c->proto = l.proto;
		c->resp = proto::RespParser(opt_.resp);
		c->http = proto::HttpParser(opt_.http);
		conns_[idx] = std::move(c);
		conns_[idx]->last_active_ns = mono_ns();
		++ctr_.connections;
		++ctr_.open_connections;
	}
}

void Server::mark_dirty(Conn& c)
{
	if (!c.dirty) {
		c.dirty = true;
		dirty_.push_back(&c);
	}
}

void Server::http_error(Conn& c, int status, std::string_view msg)
{
	std::string body = fmt::format("{}\n", msg);
	proto::http_response(c.tx.bytes(), status, "text/plain", body, false);
	c.closing = true;
	mark_dirty(c);
}

void Server::on_slot(const daxnet_slot& s)
{
	Conn* c = find(s.conn);
	if (!c)
		return;  // a slot of a connection already dropped
	if ((s.flags & DAXNET_SLOT_DATA) && s.len != 0 && !c->closing)
		on_data(*c, s);
	if (s.flags & DAXNET_SLOT_ERROR) {
		c->failed = true;
		c->closing = true;
	}
	if (s.flags & DAXNET_SLOT_EOF) {
		c->peer_closed = true;
		c->closing = true;
	}
	if (c->closing) {
		mark_dirty(*c);  // flush what is queued, then close
	}
}

void Server::parse(Conn& c, const proto::RxSlice& s)
{
	std::size_t from = 0;
	while (!c.closing && from < s.len) {
		proto::FeedResult r = c.proto == Proto::resp ? c.resp.feed(s, from) : c.http.feed(s, from);
		from += r.used;
		if (r.status == proto::ParseStatus::done) {
			++ctr_.requests;
			if (c.proto == Proto::resp) {
				svc_.on_resp(*this, c);
				c.resp.next();
			} else {
				svc_.on_http(*this, c);
				c.http.next();
				c.sent_continue = false;
			}
			mark_dirty(c);
			shrink_scratch(c);
			// Redis checks the output limit as replies are added: a
			// pipeline of 20,000 GETs must not build 20 MB first.
			if ((opt_.output_hard || opt_.output_soft) && output_over(c, 0))
				return;
		} else if (r.status == proto::ParseStatus::error) {
			++ctr_.protocol_errors;
			if (c.proto == Proto::resp && c.resp.limit_error() == proto::RespParser::kQueryLimit)
				++ctr_.query_limit_closes;
			else if (c.proto == Proto::resp ? c.resp.limit_error() != 0 : c.http.limit_error())
				++ctr_.proto_limit_closes;
			if (c.proto == Proto::resp) {
				std::string msg = fmt::format("ERR {}", c.resp.error_message());
				proto::resp::error(c.tx.bytes(), msg);
				c.closing = true;
				mark_dirty(c);
			} else {
				http_error(c, c.http.error_status(), c.http.error_message());
			}
		} else if (c.proto == Proto::http && !c.sent_continue && c.http.headers_complete() &&
			   c.http.request().expect_continue) {
			c.tx.bytes().append("HTTP/1.1 100 Continue\r\n\r\n");
			c.sent_continue = true;
			mark_dirty(c);
		}
	}
}

void Server::shrink_scratch(Conn& c) noexcept
{
	// Gather space of a large argument (or many) goes back after it.
	// Nothing to look at unless view() gathered or grew the slots (a
	// packed SET names slots 62 and 63: a walk of 64 per request).
	if (!c.scratch_grown)
		return;
	c.scratch_grown = false;
	if (c.scratch.size() > 64) {
		std::vector<std::vector<char>>().swap(c.scratch);
		return;
	}
	for (auto& v : c.scratch)
		if (v.capacity() > (64u << 10))
			std::vector<char>().swap(v);
}

void Server::trim(Conn& c)
{
	std::uint64_t keep_from = c.chain.end();
	if (!c.closing) {
		if (c.proto == Proto::resp && c.resp.mid_request())
			keep_from = c.resp.request_begin();
		else if (c.proto == Proto::http && c.http.mid_request())
			keep_from = c.http.request().head.off;
	}
	while (!c.chain.empty() && c.chain.front().stream_end() <= keep_from) {
		const bool held = c.chain.size() > 1 || c.last_kept;
		proto::RxSlice s = c.chain.pop();
		if (held)
			source().unref(s.buf);
		if (c.chain.empty())
			c.last_kept = true;
	}
}

void Server::compact(Conn& c)
{
	// Everything in the chain is held by us here (the slot was kept).
	const std::uint32_t bsize = port_.pool().buffer_size();
	proto::SliceChain fresh;
	fresh.rebase(c.chain.begin());
	std::uint64_t pos = c.chain.begin();
	while (pos < c.chain.end()) {
		BufferLease l = port_.alloc();
		if (!l)
			return;  // no buffer now: try again later
		std::uint64_t n = c.chain.end() - pos;
		if (n > bsize)
			n = bsize;
		std::byte* dst = port_.buffer(l.index());
		(void)c.chain.gather(proto::StreamRange{pos, n}, std::span<std::byte>(dst, n));
		fresh.push(dst, static_cast<std::uint32_t>(n), l.release(), 0);
		pos += n;
	}
	ctr_.bytes_compacted += c.chain.bytes();
	while (!c.chain.empty())
		source().unref(c.chain.pop().buf);
	c.chain = std::move(fresh);
	c.last_kept = true;
}

void Server::release_chain(Conn& c) noexcept
{
	while (!c.chain.empty()) {
		const bool held = c.chain.size() > 1 || c.last_kept;
		proto::RxSlice s = c.chain.pop();
		if (held)
			source().unref(s.buf);
	}
	c.last_kept = true;
	account_rx(c);
}

void Server::account_rx(Conn& c) noexcept
{
	const std::uint64_t now = c.chain.bytes();
	ctr_.rx_pinned_bytes = ctr_.rx_pinned_bytes - c.rx_pinned + now;
	c.rx_pinned = now;
}

bool Server::reserve_low() const
{
	return opt_.free_buffers && opt_.free_buffers() < opt_.buffer_reserve;
}

void Server::kill(Conn& c, std::uint64_t& counter, const char* why)
{
	if (c.failed && c.closing)
		return;
	++counter;
	fmt::print(stderr, "closing connection {}: {} (input pinned {} bytes, output queued {} bytes)\n", c.id, why,
		   c.rx_pinned, c.tx.queued() + c.inport.bytes);
	c.failed = true;  // output discarded, detached without flushing
	c.closing = true;
	c.tx.discard(source());
	release_chain(c);
	mark_dirty(c);
}

bool Server::output_over(Conn& c, std::uint64_t now_ns, std::uint64_t held)
{
	if (c.failed)
		return false;
	const std::uint64_t q = c.tx.queued() + c.inport.bytes + held;
	if (opt_.output_hard && q > opt_.output_hard) {
		kill(c, ctr_.output_limit_closes, "output buffer over the hard limit (client-output-buffer-limit)");
		return true;
	}
	if (opt_.output_soft && q > opt_.output_soft) {
		if (now_ns == 0)
			now_ns = mono_ns();
		if (c.soft_since_ns == 0) {
			c.soft_since_ns = now_ns;
		} else if (now_ns - c.soft_since_ns > std::uint64_t{opt_.output_soft_s} * 1000000000ull) {
			kill(c, ctr_.output_limit_closes, "output buffer over the soft limit for too long "
							  "(client-output-buffer-limit)");
			return true;
		}
	} else {
		c.soft_since_ns = 0;
	}
	return false;
}

void Server::tx_budget(Conn& c, std::uint32_t& slots, std::uint64_t& bytes) noexcept
{
	const TxQueued q = c.inport;
	slots = q.slots < opt_.tx_share_slots ? opt_.tx_share_slots - q.slots : 0;
	bytes = q.bytes < opt_.tx_share_bytes ? opt_.tx_share_bytes - q.bytes : 0;
	// Beyond its guaranteed slots (the port keeps kTxSlotsPerConn per
	// connection), a connection takes from what all share: not while
	// those are mostly held, nor while the pool's free buffers are down
	// to the reserve kept for new requests and replies.
	const std::uint32_t g = Port::kTxSlotsPerConn;
	if (inport_extra_ >= 2ull * tx_slots_ || reserve_low())
		slots = std::min(slots, q.slots < g ? g - q.slots : 0);
}

void Server::check_inport()
{
	const std::uint32_t g = Port::kTxSlotsPerConn;
	std::uint64_t extra = 0, bytes = 0;
	std::size_t keep = 0;
	for (Conn* c : inport_) {
		c->inport = port_.tx_queued(c->id);
		if (c->tx_blocked) {
			std::uint32_t slots;
			std::uint64_t b;
			tx_budget(*c, slots, b);
			if (slots != 0 && b != 0) {
				c->tx_blocked = false;
				mark_dirty(*c);
			}
		}
		if (c->inport.slots == 0 && !c->tx_blocked) {
			c->inport_listed = false;
			continue;
		}
		extra += c->inport.slots > g ? c->inport.slots - g : 0;
		bytes += c->inport.bytes;
		inport_[keep++] = c;
	}
	inport_.resize(keep);
	inport_extra_ = extra;
	ctr_.tx_inport_bytes = bytes;
}

void Server::evict()
{
	const bool over = opt_.clients_limit && ctr_.rx_pinned_bytes + ctr_.tx_inport_bytes > opt_.clients_limit;
	const bool low = ctr_.rx_pinned_bytes > 0 && reserve_low();
	if (!over && !low)
		return;
	// One per pass: the connection pinning the most (Redis's client
	// eviction picks the biggest too). On a low pool only incomplete
	// requests count, and only one worth a few buffers.
	Conn* big = nullptr;
	std::uint64_t most = low && !over ? 16ull * port_.pool().buffer_size() : 0;
	for (auto& c : conns_) {
		if (!c || c->failed)
			continue;
		const std::uint64_t p = c->rx_pinned + (over ? c->inport.bytes : 0);
		if (p > most) {
			most = p;
			big = c.get();
		}
	}
	if (big)
		kill(*big, ctr_.evicted_clients,
		     over ? "clients pin more pool bytes than the limit (maxmemory-clients), this one the most"
			  : "pool free buffers below the reserve, this incomplete request pins the most");
}

void Server::close_idle(std::uint64_t now_ns)
{
	const std::uint64_t limit = std::uint64_t{opt_.idle_timeout_s} * 1000000000ull;
	for (auto& c : conns_)
		if (c && !c->closing && now_ns - c->last_active_ns > limit) {
			++ctr_.idle_timeouts;
			c->closing = true;
			mark_dirty(*c);
		}
}

void Server::on_data(Conn& c, const daxnet_slot& s)
{
	if (opt_.idle_timeout_s)
		c.last_active_ns = mono_ns();
	const proto::RxSlice& sl = c.chain.push(port_.buffer(s.buf_idx) + s.offset, s.len, s.buf_idx, s.offset);
	c.last_kept = false;
	parse(c, sl);
	trim(c);
	on_data_tail(c);
	account_rx(c);
}

void Server::on_data_tail(Conn& c)
{
	if (c.chain.empty())
		c.chain.shrink();
	if (!c.chain.empty() && !c.last_kept) {
		// The slot holds part of an incomplete request: keep its buffer.
		BufferLease l = port_.keep();
		if (!l) {
			// cannot happen for a DATA slot; refuse the connection rather
			// than reference a buffer we do not hold
			c.closing = true;
			c.failed = true;
			return;
		}
		(void)l.release();  // the chain slice owns this reference now
		c.last_kept = true;
		++ctr_.kept;
		if (opt_.query_limit && c.chain.bytes() > opt_.query_limit) {
			kill(c, ctr_.query_limit_closes, "incomplete request over the query buffer limit "
							 "(client-query-buffer-limit)");
			return;
		}
		const std::uint32_t bsize = port_.pool().buffer_size();
		if (c.chain.size() > opt_.compact_slices &&
		    c.chain.bytes() * 4 < std::uint64_t{c.chain.size()} * bsize)
			compact(c);
		if (c.chain.size() > opt_.max_slices) {
			++ctr_.protocol_errors;
			if (c.proto == Proto::resp) {
				proto::resp::error(c.tx.bytes(), "ERR daxnet: request spread over too many packets");
				c.closing = true;
				mark_dirty(c);
			} else {
				http_error(c, 400, "request spread over too many packets");
			}
		}
	}
}

void Server::flush_all()
{
	std::size_t keep = 0;
	for (std::size_t i = 0; i < dirty_.size(); ++i) {
		Conn* c = dirty_[i];
		bool done;
		if (c->held && !c->failed) {
			c->dirty = false;  // goes out behind its held replies (release_held)
			continue;
		}
		if (!c->failed && (opt_.output_hard || opt_.output_soft))
			(void)output_over(*c, 0);
		if (c->failed) {
			c->tx.discard(source());
			done = true;
		} else {
			std::uint32_t slots;
			std::uint64_t bytes;
			tx_budget(*c, slots, bytes);
			const std::uint32_t slots0 = slots;
			const std::uint64_t queued0 = c->tx.queued();
			done = c->tx.flush(port_, c->id, ctr_.tx_zerocopy, slots, bytes);
			if (slots != slots0) {
				c->inport.slots += slots0 - slots;
				c->inport.bytes += queued0 - c->tx.queued();
				if (!c->inport_listed) {
					c->inport_listed = true;
					inport_.push_back(c);
				}
			}
			if (!done && (slots == 0 || bytes == 0)) {
				// Its share of the port is full: wait until the peer
				// reads (check_inport), without spinning the loop.
				c->tx_blocked = true;
				c->dirty = false;
				++ctr_.tx_share_waits;
				if (!c->inport_listed) {
					c->inport_listed = true;
					inport_.push_back(c);
				}
				continue;
			}
		}
		if (done) {
			c->dirty = false;
			if (c->closing && !c->listed_closing) {
				closing_.push_back(c);
				c->listed_closing = true;
			}
		} else {
			dirty_[keep++] = c;
		}
	}
	dirty_.resize(keep);
}

void Server::flush_replies()
{
	if (!held_.empty())
		release_held(false);
	if (const std::uint64_t t = svc_.commit_ticket(); t != 0 && !svc_.durable(t)) {
		// The pass's commit is in flight: none of its replies may go
		// before it is durable (a write's, or a read's that saw it).
		for (Conn* c : dirty_) {
			c->dirty = false;
			if (c->failed)
				continue;
			c->held_ticket = t;
			if (!c->held) {
				c->held = true;
				held_.push_back(c);
			}
		}
		dirty_.erase(std::remove_if(dirty_.begin(), dirty_.end(), [](Conn* c) { return !c->failed; }),
			     dirty_.end());
		for (Conn* c : dirty_)
			c->dirty = true;
	}
	flush_all();
}

void Server::release_held(bool all)
{
	std::size_t keep = 0;
	for (Conn* c : held_) {
		if (!all && !svc_.durable(c->held_ticket)) {
			held_[keep++] = c;
			continue;
		}
		c->held = false;
		mark_dirty(*c);
	}
	held_.resize(keep);
}

void Server::drop(Conn& c, bool discard)
{
	std::erase(dirty_, &c);
	std::erase(held_, &c);
	std::erase(closing_, &c);
	std::erase(inport_, &c);
	svc_.on_close(*this, c);
	c.tx.discard(source());
	release_chain(c);  // every buffer the chain holds
	// Never wait for a peer: what it has not taken by now is dropped.
	if (!port_.detach(c.id, discard, 0).ok() && !discard)
		(void)port_.detach(c.id, true, 0);
	c.fd.reset();
	std::uint32_t idx = DAXNET_CONN_INDEX(c.id);
	--ctr_.open_connections;
	conns_[idx].reset();  // destroys c
}

void Server::close_ready()
{
	std::size_t keep = 0;
	for (Conn* c : closing_) {
		if (c->dirty || c->held) {
			closing_[keep++] = c;  // more output queued since: flush first
			continue;
		}
		// Detach without waiting: EBUSY while the port still holds bytes
		// of this connection; retry on later passes, then give up on them.
		// Give up on a peer that has not taken the rest of its reply
		// within kCloseLinger (a pass count gave up on a 16 MiB reply to
		// a live reader after 2000 fast passes, truncating it).
		const std::uint64_t now = mono_ns();
		if (c->detach_tries++ == 0)
			c->detach_since_ns = now;
		const bool discard = c->failed || now - c->detach_since_ns > kCloseLingerNs;
		Status st = port_.detach(c->id, discard, 0);
		if (!st.ok() && st.error().code == EBUSY) {
			closing_[keep++] = c;
			continue;
		}
		svc_.on_close(*this, *c);
		c->tx.discard(source());
		release_chain(*c);
		if (c->inport_listed)
			std::erase(inport_, c);
		c->fd.reset();
		--ctr_.open_connections;
		conns_[DAXNET_CONN_INDEX(c->id)].reset();
	}
	closing_.resize(keep);
}

int Server::run()
{
	pollfd fds[kMaxListeners + 2] = {};
	const std::size_t nl = std::min(listeners_.size(), kMaxListeners);
	fds[0] = {port_.fd(), POLLIN, 0};
	for (std::size_t i = 0; i < nl; ++i)
		fds[1 + i] = {listeners_[i].fd, POLLIN, 0};
	// A pipelined commit completing wakes the wait (held replies go out).
	const int dfd = svc_.durable_fd();
	const std::size_t nfds = 1 + nl + (dfd >= 0 ? 1 : 0);
	if (dfd >= 0)
		fds[1 + nl] = {dfd, POLLIN, 0};
	unsigned spin = 0;
	while (!stop_requested()) {
		const bool busy = port_.rx_ready() > 0 || !dirty_.empty() || !closing_.empty() || svc_.busy();
		if (!busy || (++spin & 63) == 0) {
			int n = ::poll(fds, nfds, busy ? 0 : 100);
			++ctr_.waits;
			if (n < 0 && errno != EINTR) {
				int e = errno;
				fmt::print(stderr, "poll: {}\n", std::strerror(e));
				return e;
			}
			for (std::size_t i = 0; n > 0 && i < nl; ++i)
				if (fds[1 + i].revents & POLLIN)
					accept_all(listeners_[i]);
			if (n > 0 && dfd >= 0 && (fds[1 + nl].revents & POLLIN)) {
				std::uint64_t v;
				[[maybe_unused]] auto r = ::read(dfd, &v, sizeof(v));
			}
		}
		if (port_.rx_ready() == 0) {
			int r = port_.sync();
			if (r < 0) {
				fmt::print(stderr, "sync: {}\n", std::strerror(-r));
				return -r;
			}
		}
		++ctr_.passes;
		for (; port_.rx_ready() > 0; port_.rx_pop())
			on_slot(port_.rx_front());
		svc_.end_of_pass(*this);  // one fence for the whole pass
		flush_replies();          // only now (or once durable): replies
		int r = port_.sync();     // TX out, next RX in
		if (r < 0) {
			fmt::print(stderr, "sync: {}\n", std::strerror(-r));
			return -r;
		}
		check_inport();
		evict();
		close_ready();
		if (opt_.idle_timeout_s || opt_.output_soft) {
			const std::uint64_t now = mono_ns();
			if (now >= next_idle_check_ns_) {
				if (opt_.idle_timeout_s)
					close_idle(now);
				if (opt_.output_soft)
					for (auto& c : conns_)
						if (c && !c->closing && c->tx.queued() + c->inport.bytes > opt_.output_soft)
							(void)output_over(*c, now);
				next_idle_check_ns_ = now + 100'000'000ull;  // every 100 ms at most
			}
		}
	}
	// Stop: finish what is queued (acknowledged writes are durable already),
	// then let every connection go.
	svc_.end_of_pass(*this);
	svc_.wait_durable();
	release_held(true);
	for (int i = 0; i < 20 && !dirty_.empty(); ++i) {
		flush_all();
		(void)port_.sync();
	}
	(void)port_.sync();
	for (auto& c : conns_)
		if (c)
			drop(*c, false);
	closing_.clear();
	dirty_.clear();
	return 0;
}

}  // namespace daxnet::svc
