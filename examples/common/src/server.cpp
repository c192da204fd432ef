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

void TxQueue::seal()
{
	if (out_.size() > mark_) {
		segs_.push_back(Seg{false, 0, mark_, static_cast<std::uint32_t>(out_.size() - mark_)});
		mark_ = out_.size();
	}
}

void TxQueue::append_ref(BufferSource& src, std::uint32_t buf, std::uint32_t off, std::uint32_t len)
{
	seal();
	src.ref(buf);
	segs_.push_back(Seg{true, buf, off, len});
}

bool TxQueue::flush(Port& port, std::uint32_t conn, std::uint64_t& zerocopy) noexcept
{
	seal();
	while (head_ < segs_.size()) {
		Seg& s = segs_[head_];
		if (s.ref) {
			if (port.tx_push(conn, s.buf, static_cast<std::uint32_t>(s.off), s.len) < 0)
				return false;
			port.source().unref(s.buf);
			zerocopy += s.len;
		} else {
			long n = port.send_copy(conn, out_.bytes().subspan(s.off, s.len));
			if (n <= 0)
				return false;
			s.off += static_cast<std::uint64_t>(n);
			s.len -= static_cast<std::uint32_t>(n);
			if (s.len != 0)
				return false;
		}
		++head_;
	}
	segs_.clear();
	head_ = 0;
	out_.clear();
	mark_ = 0;
	return true;
}

void TxQueue::discard(BufferSource& src) noexcept
{
	for (std::size_t i = head_; i < segs_.size(); ++i)
		if (segs_[i].ref)
			src.unref(segs_[i].buf);
	segs_.clear();
	head_ = 0;
	out_.clear();
	mark_ = 0;
}

bool single_slice(const proto::SliceChain& chain, proto::StreamRange r, std::uint32_t& buf,
		  std::uint32_t& off) noexcept
{
	if (r.off < chain.begin() || r.end() > chain.end())
		return false;
	std::size_t i = chain.find(r.off);
	if (i == chain.size())
		return false;
	const proto::Slice& s = chain.at(i);
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
		int fd = ::accept4(l.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED)
				fmt::print(stderr, "accept: {}\n", std::strerror(errno));
			return;
		}
		int one = 1;
		::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		auto id = port_.attach(fd, 0, static_cast<std::uint64_t>(l.proto));
		if (!id) {
			fmt::print(stderr, "attach: {}\n", id.error().message);
			::close(fd);
			continue;
		}
		std::uint32_t idx = DAXNET_CONN_INDEX(*id);
		if (idx >= conns_.size())
			conns_.resize(idx + 1);
		if (conns_[idx])
			drop(*conns_[idx], true);  // stale: the port reused the index
		auto c = std::make_unique<Conn>();
		c->id = *id;
		c->fd = fd;
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

void Server::parse(Conn& c, const proto::Slice& s)
{
	std::size_t from = 0;
	while (from < s.len && !c.closing) {
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
		} else if (r.status == proto::ParseStatus::error) {
			++ctr_.protocol_errors;
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
		proto::Slice s = c.chain.pop();
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
	const proto::Slice& sl = c.chain.push(port_.buffer(s.buf_idx) + s.offset, s.len, s.buf_idx, s.offset);
	c.last_kept = false;
	parse(c, sl);
	trim(c);
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
	for (Conn* c : dirty_) {
		bool done;
		if (c->failed) {
			c->tx.discard(source());
			done = true;
		} else {
			done = c->tx.flush(port_, c->id, ctr_.tx_zerocopy);
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

void Server::drop(Conn& c, bool discard)
{
	std::erase(dirty_, &c);
	std::erase(closing_, &c);
	svc_.on_close(*this, c);
	c.tx.discard(source());
	// release every buffer the chain holds
	while (!c.chain.empty()) {
		const bool held = c.chain.size() > 1 || c.last_kept;
		proto::Slice s = c.chain.pop();
		if (held)
			source().unref(s.buf);
	}
	(void)port_.detach(c.id, discard, 0);
	if (c.fd >= 0)
		::close(c.fd);
	c.fd = -1;
	std::uint32_t idx = DAXNET_CONN_INDEX(c.id);
	--ctr_.open_connections;
	conns_[idx].reset();  // destroys c
}

void Server::close_ready()
{
	std::size_t keep = 0;
	for (Conn* c : closing_) {
		if (c->dirty) {
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
		while (!c->chain.empty()) {
			const bool held = c->chain.size() > 1 || c->last_kept;
			proto::Slice s = c->chain.pop();
			if (held)
				source().unref(s.buf);
		}
		::close(c->fd);
		c->fd = -1;
		--ctr_.open_connections;
		conns_[DAXNET_CONN_INDEX(c->id)].reset();
	}
	closing_.resize(keep);
}

int Server::run()
{
	pollfd fds[kMaxListeners + 1] = {};
	const std::size_t nfds = 1 + std::min(listeners_.size(), kMaxListeners);
	fds[0] = {port_.fd(), POLLIN, 0};
	for (std::size_t i = 0; i + 1 < nfds; ++i)
		fds[1 + i] = {listeners_[i].fd, POLLIN, 0};
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
			for (std::size_t i = 0; n > 0 && i + 1 < nfds; ++i)
				if (fds[1 + i].revents & POLLIN)
					accept_all(listeners_[i]);
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
		flush_all();              // only now: replies
		int r = port_.sync();     // TX out, next RX in
		if (r < 0) {
			fmt::print(stderr, "sync: {}\n", std::strerror(-r));
			return -r;
		}
		close_ready();
		if (opt_.idle_timeout_s) {
			const std::uint64_t now = mono_ns();
			if (now >= next_idle_check_ns_) {
				close_idle(now);
				next_idle_check_ns_ = now + 100'000'000ull;  // every 100 ms at most
			}
		}
	}
	// Stop: finish what is queued (acknowledged writes are durable already),
	// then let every connection go.
	svc_.end_of_pass(*this);
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
