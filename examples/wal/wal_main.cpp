// SPDX-License-Identifier: BSD-2-Clause
//
// daxnet-wal: an ingestion service. Clients append records to named streams
// over HTTP; a record's body stays in the pool buffers it was received in,
// is flushed in place and referenced from the WAL — never copied.
//
//   POST /log/<stream>            append the body; "201 Created" with the
//                                 record's sequence number (its position in
//                                 the stream, from 0) once durable
//   POST /log/<stream>?batch=lines  every line of the body (NDJSON, log
//                                 lines; LF or CRLF) is a record, all made
//                                 durable before the one reply "<first> <count>"
//   Transfer-Encoding: chunked bodies are accepted (curl -T -, shippers);
//                                 the chunks' data stays in the received
//                                 buffers (no reassembly copy)
//   GET  /log/<stream>?from=N&limit=M[&max_bytes=B][&format=raw]
//                                 records N..N+M-1 (from the stream's first
//                                 retained record when N is below it), at
//                                 most B body bytes (at least one record);
//                                 &wait=ms (at most 60000): when nothing is
//                                 at N yet, the reply waits for the first
//                                 durable append or the time (long poll);
//                                 default format: for each record a line
//                                 "<seq> <length>\n", the body, "\n";
//                                 format=raw: the bodies only
//   DELETE /log/<stream>?before=N trims the stream: drops records below N
//                                 (a consumer is done with them); sequence
//                                 numbers are kept. "200" with the new first
//                                 sequence number once durable. The space
//                                 returns at the next checkpoint, which runs
//                                 at once when the pool runs short
//   GET  /log                     one line per stream: "<name> <length>
//                                 <first>" (length = next sequence number)
//   GET  /stats                   counters (JSON)
//   GET  /metrics                 the same counters, Prometheus text format
//
//   daxnet-wal dump --pool FILE [--stream S] [--from N] [--limit M] [--raw]
//                                 prints a stream (or the list of streams)
//                                 from a pool, offline (read-only recovery)
//
// Every append of one event-loop pass is made durable with one commit (one
// fence) before any reply of the pass is sent.
#include <fmt/format.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include "daxnet/pmem/kv.h"
#include "daxnet/svc/metrics.h"
#include "daxnet/svc/options.h"
#include "daxnet/svc/server.h"

namespace {

using daxnet::pmem::KvStore;
using daxnet::pmem::ScratchArena;
using daxnet::pmem::StreamEntryRef;
using daxnet::proto::StreamRange;
using daxnet::svc::Conn;
using daxnet::svc::Server;
using Slice = daxnet::pmem::Slice;

constexpr std::uint64_t kInlineMax = 1024;
constexpr std::uint64_t kDefaultLimit = 100;
constexpr std::uint64_t kMaxLimit = 10000;
constexpr std::uint64_t kMaxWaitMs = 60000;  ///< longest long poll (GET ...&wait=ms)
constexpr std::size_t kMaxStreamName = 200;
constexpr std::chrono::milliseconds kReclaimGap{50};
constexpr std::chrono::seconds kReclaimBackoff{1};

bool valid_stream_name(std::string_view s) noexcept
{
	if (s.empty() || s.size() > kMaxStreamName)
		return false;
	for (char c : s)
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      c == '.'))
			return false;
	return true;
}

/// Value of query parameter `name` in `q` (without '?'), or empty.
std::string_view query_param(std::string_view q, std::string_view name) noexcept
{
	while (!q.empty()) {
		std::size_t amp = q.find('&');
		std::string_view kv = q.substr(0, amp);
		std::size_t eq = kv.find('=');
		if (kv.substr(0, eq) == name)
			return eq == std::string_view::npos ? std::string_view{} : kv.substr(eq + 1);
		if (amp == std::string_view::npos)
			break;
		q.remove_prefix(amp + 1);
	}
	return {};
}

bool parse_u64(std::string_view s, std::uint64_t& v) noexcept
{
	if (s.empty())
		return false;
	auto r = std::from_chars(s.data(), s.data() + s.size(), v);
	return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

class WalService final : public daxnet::svc::Service {
public:
	WalService(KvStore& kv, const daxnet::pmem::PoolView& pool, daxnet::pmem::BufferAllocator& alloc,
		   std::string transport, std::uint64_t max_body, std::uint32_t pack_small, std::string pool_path)
	    : kv_(kv), pool_(pool), alloc_(alloc), arena_(pool, alloc), transport_(std::move(transport)),
	      pool_path_(std::move(pool_path)),
	      max_body_(max_body), pack_small_(pack_small),
	      reserve_(std::max<std::uint32_t>(32, pool.buffer_count() / 16))
	{
		entries_.resize(kMaxLimit);
	}

	void on_http(Server& srv, Conn& c) override;
	bool busy() const override { return kv_.checkpoint_pending(); }
	void end_of_pass(Server& srv) override
	{
		staged_ |= kv_.clean() > 0;  // docs/wal-format.md §The cleaner: a bounded step, same fence
		if (staged_ || kv_.checkpoint_pending()) {
			// (a pending checkpoint advances a step per pass, also
			// when nothing was appended)
			staged_ = false;
			const int rc = kv_.commit();  // one fence for every append of the pass
			if (rc < 0)
				fmt::print(stderr, "daxnet-wal: checkpoint after commit failed: {} (the batch is durable)\n",
					   std::strerror(-rc));
		}
		reclaim_if_short();
		answer_waiters(srv, nullptr);  // long polls see only durable records
	}
	void on_close(Server& srv, Conn& c) override;
	std::uint64_t appends() const noexcept { return appends_; }

private:
	void append(Server& srv, Conn& c, std::string_view name, StreamRange name_range, std::string_view query);
	/// Stages one record of `len` bytes held in `segs` (chain ranges):
	/// packed (copied once) when small, else referenced in place.
	int stage_record(Conn& c, const Slice& n, std::span<const StreamRange> segs, std::uint64_t len,
			 std::uint64_t stamp, std::uint64_t* seq);
	void read(Server& srv, Conn& c, std::string_view name, std::string_view query);
	struct ReadArgs {
		std::uint64_t from = 0, limit = 0, max_bytes = 0;
		bool raw = false, head = false, keep_alive = true;
	};
	/// Queues the response to a read of `name` as the stream is now.
	void respond_read(Server& srv, Conn& c, std::string_view name, const ReadArgs& a);
	/// Answers the long polls whose stream has records at `from` now, whose
	/// time ran out, or that are on connection `only` (a new request came).
	void answer_waiters(Server& srv, Conn* only);
	void trim(Server& srv, Conn& c, std::string_view name, StreamRange name_range, std::string_view query);
	Slice name_slice(Conn& c, std::string_view name, StreamRange name_range) noexcept;
	/// Checkpoints when trimmed records hold buffers and the pool runs short
	/// (their space comes back only through a checkpoint). At most one such
	/// checkpoint per kReclaimGap (a consumer trimming after every read
	/// would otherwise rewrite the whole state every pass), and none for
	/// kReclaimBackoff after one failed.
	void reclaim_if_short() noexcept;
	/// Every counter, once: /stats renders it as JSON, /metrics as Prometheus text.
	daxnet::svc::Metrics metrics(Server& srv) const;
	void stats(Server& srv, Conn& c, bool prometheus);

	KvStore& kv_;
	daxnet::pmem::PoolView pool_;
	daxnet::pmem::BufferAllocator& alloc_;
	ScratchArena arena_;
	std::string transport_;
	std::string pool_path_;
	std::uint64_t max_body_;
	std::uint32_t pack_small_;  ///< bodies up to this size are copied once into packed buffers
	std::uint64_t packed_ = 0;  ///< bytes copied by packing (name + body)
	std::uint32_t reserve_;
	std::vector<Slice> body_;
	std::vector<char> gather_;
	std::vector<StreamRange> segs_;
	std::vector<StreamEntryRef> entries_;
	struct Waiter {
		Conn* conn = nullptr;
		std::string stream;
		ReadArgs args;
		std::chrono::steady_clock::time_point deadline;
	};
	std::vector<Waiter> waiters_;  ///< long polls (GET ...&wait=ms), in arrival order
	std::uint64_t long_polls_ = 0;
	bool staged_ = false;
	std::uint64_t appends_ = 0;
	std::uint64_t append_bytes_ = 0;
	std::uint64_t batches_ = 0;
	std::uint64_t refused_ = 0;
	std::uint64_t reads_ = 0;
	std::uint64_t trims_ = 0;
	std::uint64_t trimmed_records_ = 0;
	std::uint64_t reclaims_ = 0;
	std::uint64_t reclaim_failures_ = 0;
	std::chrono::steady_clock::time_point next_reclaim_{};
};

void WalService::reclaim_if_short() noexcept
{
	// "Short": below a quarter of the pool, or near the append reserve
	// (which is above a quarter in pools of fewer than 128 buffers).
	const std::uint64_t low = std::max<std::uint64_t>(alloc_.count() / 4, std::uint64_t{reserve_} * 2);
	if (kv_.reclaimable() == 0 || alloc_.free_count() >= low)
		return;
	const auto now = std::chrono::steady_clock::now();
	if (now < next_reclaim_)
		return;
	// An incremental checkpoint (with --checkpoint-step): begun here,
	// advanced by later passes, never run whole inside this request.
	const int rc = kv_.reclaim();
	if (rc == 0) {
		++reclaims_;
		next_reclaim_ = now + kReclaimGap;
		return;
	}
	if (reclaim_failures_++ == 0 || reclaim_failures_ % 100 == 0)
		fmt::print(stderr, "daxnet-wal: checkpoint to reclaim trimmed records failed: {} ({} times); retrying in {} s\n",
			   std::strerror(-rc), reclaim_failures_, kReclaimBackoff.count());
	next_reclaim_ = now + kReclaimBackoff;
}

Slice WalService::name_slice(Conn& c, std::string_view name, StreamRange name_range) noexcept
{
	Slice n{};
	std::uint32_t buf = 0, off = 0;
	if (daxnet::svc::single_slice(c.chain, name_range, buf, off))
		return Slice{buf, off, static_cast<std::uint32_t>(name_range.len)};
	if (arena_.write(std::as_bytes(std::span<const char>(name.data(), name.size())), n) < 0)
		return Slice{0, 0, 0};
	return n;
}

int WalService::stage_record(Conn& c, const Slice& n, std::span<const StreamRange> segs, std::uint64_t len,
			     std::uint64_t stamp, std::uint64_t* seq)
{
	body_.clear();
	if (len > 0 && len <= pack_small_) {
		// A small record would pin a whole received buffer (uring receives
		// every message into a buffer of its own): copy it once into a
		// packed pool buffer instead.
		gather_.resize(len);
		std::size_t at = 0;
		for (const StreamRange& r : segs)
			c.chain.pieces(r, [&](const daxnet::proto::Piece& p) {
				std::memcpy(gather_.data() + at, p.data(), p.len);
				at += p.len;
			});
		Slice b{};
		if (arena_.write(std::as_bytes(std::span<const char>(gather_.data(), len)), b) < 0)
			return -ENOSPC;
		body_.push_back(b);
		packed_ += len;
	} else {
		for (const StreamRange& r : segs)
			c.chain.pieces(r, [&](const daxnet::proto::Piece& p) {
				body_.push_back(Slice{p.buf(), p.buf_off(), p.len});
			});
	}
	// The store admits against checkpoint capacity and log room itself
	// (docs/wal-format.md §Capacity); a refusal costs no checkpoint.
	const int rc = kv_.stream_append(n, body_, stamp, seq);
	if (rc == 0) {
		staged_ = true;
		++appends_;
		append_bytes_ += len;
	}
	return rc;
}

void WalService::append(Server& srv, Conn& c, std::string_view name, StreamRange name_range, std::string_view query)
{
	const auto& rq = c.http.request();
	auto& o = c.tx.bytes();
	const bool ka = rq.keep_alive;
	if (rq.content_length > max_body_) {
		srv.http_error(c, 413, fmt::format("body too large (limit {} bytes)", max_body_));
		return;
	}
	const std::string_view batch = query_param(query, "batch");
	if (!batch.empty() && batch != "lines") {
		daxnet::proto::http_response(o, 400, "text/plain", "batch=lines (one record per line) is the only batch mode\n",
					     ka);
		return;
	}
	if (alloc_.free_count() < reserve_)
		reclaim_if_short();  // trimmed records may be holding the space
	if (alloc_.free_count() < reserve_) {
		++refused_;
		daxnet::proto::http_response(
			o, 507, "text/plain",
			fmt::format("daxnet: pool full ({} of {} buffers free): append refused, reads still served\n",
				    alloc_.free_count(), alloc_.count()),
			ka);
		return;
	}
	const auto ranges = c.http.body_ranges();
	// The stream name: in place (zero-copy) for one large record; copied
	// once into the arena when records are packed (an in-place name would
	// pin the received buffer) or for a batch (one copy for every record).
	const bool one_packed = batch.empty() && rq.content_length > 0 && rq.content_length <= pack_small_;
	Slice n{};
	if (one_packed || !batch.empty()) {
		if (arena_.write(std::as_bytes(std::span<const char>(name.data(), name.size())), n) < 0)
			n.len = 0;
		else if (one_packed)
			packed_ += name.size();
	} else {
		n = name_slice(c, name, name_range);
	}
	if (n.len == 0) {
		daxnet::proto::http_response(o, 507, "text/plain", "daxnet: pool full\n", ka);
		return;
	}
	const std::uint64_t stamp = daxnet::pmem::realtime_ns();
	std::uint64_t first = 0, seq = 0, count = 0;
	int rc = 0;
	if (batch.empty()) {
		rc = stage_record(c, n, ranges, rq.content_length, stamp, &seq);
		first = seq;
		count = rc == 0 ? 1 : 0;
	} else {
		// batch=lines: every non-empty line (NDJSON, log lines) is a record;
		// its bytes may span chunks and received buffers: segments in place.
		segs_.clear();
		std::uint64_t line_len = 0;
		bool cr_pending = false;  // the last piece ended with CR
		auto flush_line = [&]() {
			if (rc == 0 && line_len > 0) {
				rc = stage_record(c, n, segs_, line_len, stamp, &seq);
				if (rc == 0 && count++ == 0)
					first = seq;
			}
			segs_.clear();
			line_len = 0;
		};
		for (const StreamRange& r : ranges) {
			c.chain.pieces(r, [&](const daxnet::proto::Piece& p) {
				const auto* d = reinterpret_cast<const char*>(p.data());
				const std::uint64_t base = p.slice->stream_off + p.off;
				std::uint32_t from = 0;
				for (std::uint32_t i = 0; i < p.len; ++i) {
					if (d[i] != '\n')
						continue;
					std::uint32_t end = i;
					if (end > from && d[end - 1] == '\r') {
						--end;  // CRLF line end
					} else if (i == 0 && cr_pending && !segs_.empty()) {
						--segs_.back().len;  // the CR ended the previous piece
						--line_len;
					}
					if (end > from) {
						segs_.push_back(StreamRange{base + from, end - from});
						line_len += end - from;
					}
					flush_line();
					from = i + 1;
				}
				cr_pending = from < p.len && d[p.len - 1] == '\r';
				if (from < p.len) {
					segs_.push_back(StreamRange{base + from, p.len - from});
					line_len += p.len - from;
				}
			});
		}
		flush_line();  // a last line without '\n'
	}
	if (rc < 0) {
		++refused_;
		const char* why = rc == -ENOSPC	   ? "daxnet: pool full (checkpoint capacity or log room): append refused, trims and reads still served\n"
				  : rc == -EMSGSIZE ? "daxnet: record too large for the log of this pool\n"
						    : "daxnet: append failed\n";
		// A batch stops at the first record that fails; the records before
		// it are appended (and durable before this reply): say how many.
		daxnet::proto::http_response(o, rc == -EMSGSIZE ? 413 : 507, "text/plain", why, ka,
					     count ? fmt::format("X-Daxnet-Seq: {}\r\nX-Daxnet-Count: {}\r\n", first, count)
						   : std::string());
		return;
	}
	if (!batch.empty()) {
		++batches_;
		if (count == 0) {
			daxnet::proto::http_response(o, 400, "text/plain", "batch=lines: the body has no line\n", ka);
			return;
		}
		daxnet::proto::http_response(
			o, 201, "text/plain", fmt::format("{} {}\n", first, count), ka,
			fmt::format("X-Daxnet-Seq: {}\r\nX-Daxnet-Count: {}\r\nLocation: /log/{}?from={}&limit={}\r\n", first,
				    count, name.substr(0, 64), first, count));
		return;
	}
	char extra[160];
	int len = std::snprintf(extra, sizeof extra, "X-Daxnet-Seq: %llu\r\nLocation: /log/%.*s?from=%llu&limit=1\r\n",
				static_cast<unsigned long long>(seq), static_cast<int>(std::min<std::size_t>(name.size(), 64)),
				name.data(), static_cast<unsigned long long>(seq));
	char body[32];
	int blen = std::snprintf(body, sizeof body, "%llu\n", static_cast<unsigned long long>(seq));
	daxnet::proto::http_response(o, 201, "text/plain", std::string_view(body, static_cast<std::size_t>(blen)), ka,
				     std::string_view(extra, static_cast<std::size_t>(len)));
}

void WalService::read(Server& srv, Conn& c, std::string_view name, std::string_view query)
{
	const auto& rq = c.http.request();
	auto& o = c.tx.bytes();
	const bool ka = rq.keep_alive;
	ReadArgs a;
	a.limit = kDefaultLimit;
	a.max_bytes = UINT64_MAX;
	std::uint64_t wait_ms = 0;
	std::string_view f = query_param(query, "from"), l = query_param(query, "limit"),
			 mb = query_param(query, "max_bytes"), w = query_param(query, "wait");
	if ((!f.empty() && !parse_u64(f, a.from)) || (!l.empty() && !parse_u64(l, a.limit)) ||
	    (!mb.empty() && !parse_u64(mb, a.max_bytes)) || (!w.empty() && !parse_u64(w, wait_ms))) {
		daxnet::proto::http_response(o, 400, "text/plain", "from, limit, max_bytes and wait must be numbers\n", ka);
		return;
	}
	a.limit = std::min(a.limit, kMaxLimit);
	a.raw = query_param(query, "format") == "raw";
	a.head = rq.method == daxnet::proto::HttpMethod::head;
	a.keep_alive = ka;
	++reads_;
	// Long poll: nothing at `from` yet (or no stream yet) and wait=ms: the
	// request waits for an append to the stream (answered in the pass that
	// makes it durable) or for the time to run out (then answered with what
	// there is: no records, or 404).
	const bool nothing = !kv_.stream_exists(name) || std::max(a.from, kv_.stream_first(name)) >= kv_.stream_length(name);
	if (wait_ms > 0 && nothing) {
		Waiter wt;
		wt.conn = &c;
		wt.stream.assign(name);
		wt.args = a;
		wt.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::min(wait_ms, kMaxWaitMs));
		waiters_.push_back(std::move(wt));
		c.closing = false;  // answered later; closes then if it asked to
		++long_polls_;
		return;
	}
	respond_read(srv, c, name, a);
}

void WalService::respond_read(Server& srv, Conn& c, std::string_view name, const ReadArgs& a)
{
	auto& o = c.tx.bytes();
	const bool ka = a.keep_alive;
	if (!kv_.stream_exists(name)) {
		daxnet::proto::http_response(o, 404, "text/plain", "no such stream\n", ka);
		return;
	}
	const std::uint64_t length = kv_.stream_length(name);
	const std::uint64_t first = kv_.stream_first(name);
	const std::uint64_t from = std::max(a.from, first);
	const bool raw = a.raw;
	std::size_t n = kv_.stream_read(name, from, std::span<StreamEntryRef>(entries_.data(), a.limit));
	// max_bytes: records while their bodies fit, and always the first one
	// (a record larger than max_bytes is not split: the reader moves on).
	std::uint64_t body_bytes = 0;
	for (std::size_t i = 0; i < n; ++i) {
		body_bytes += entries_[i].body.size;
		if (i > 0 && body_bytes > a.max_bytes) {
			n = i;
			break;
		}
	}
	std::uint64_t total = 0;
	char line[48];
	for (std::size_t i = 0; i < n; ++i) {
		total += entries_[i].body.size;
		if (!raw)
			total += static_cast<std::uint64_t>(std::snprintf(line, sizeof line, "%llu %llu\n",
						static_cast<unsigned long long>(entries_[i].index),
						static_cast<unsigned long long>(entries_[i].body.size))) + 1;
	}
	char extra[128];
	int elen = std::snprintf(extra, sizeof extra,
				 "X-Daxnet-Next: %llu\r\nX-Daxnet-Length: %llu\r\nX-Daxnet-First: %llu\r\n",
				 static_cast<unsigned long long>(from + n),
				 static_cast<unsigned long long>(length), static_cast<unsigned long long>(first));
	daxnet::proto::http_head(o, 200, raw ? "application/octet-stream" : "text/plain", total, ka,
				 std::string_view(extra, static_cast<std::size_t>(elen)));
	if (a.head)
		return;
	for (std::size_t i = 0; i < n; ++i) {
		const auto& e = entries_[i];
		if (!raw) {
			int ll = std::snprintf(line, sizeof line, "%llu %llu\n", static_cast<unsigned long long>(e.index),
					       static_cast<unsigned long long>(e.body.size));
			o.append(line, static_cast<std::size_t>(ll));
		}
		if (e.body.size <= kInlineMax) {
			for (const Slice& s : e.body.slices)
				o.append(daxnet::pmem::slice_bytes(pool_, s));
		} else {
			for (const Slice& s : e.body.slices)
				c.tx.append_ref(srv.source(), s.buf, s.off, s.len);
		}
		if (!raw)
			o.put('\n');
	}
}

void WalService::answer_waiters(Server& srv, Conn* only)
{
	if (waiters_.empty())
		return;
	const auto now = std::chrono::steady_clock::now();
	std::size_t keep = 0;
	for (std::size_t i = 0; i < waiters_.size(); ++i) {
		Waiter& w = waiters_[i];
		bool ready = w.conn == only || now >= w.deadline;
		if (!ready && kv_.stream_exists(w.stream))
			ready = std::max(w.args.from, kv_.stream_first(w.stream)) < kv_.stream_length(w.stream);
		if (!ready) {
			if (keep != i)
				waiters_[keep] = std::move(w);
			++keep;
			continue;
		}
		respond_read(srv, *w.conn, w.stream, w.args);
		w.conn->closing = !w.args.keep_alive;
		srv.wake(*w.conn);
	}
	waiters_.resize(keep);
}

void WalService::on_close(Server&, Conn& c)
{
	std::erase_if(waiters_, [&](const Waiter& w) { return w.conn == &c; });
}

void WalService::trim(Server&, Conn& c, std::string_view name, StreamRange name_range, std::string_view query)
{
	auto& o = c.tx.bytes();
	const bool ka = c.http.request().keep_alive;
	std::uint64_t before = 0;
	if (!parse_u64(query_param(query, "before"), before)) {
		daxnet::proto::http_response(o, 400, "text/plain",
					     "DELETE /log/<stream>?before=N: N (a number) is the first record to keep\n", ka);
		return;
	}
	if (!kv_.stream_exists(name)) {
		daxnet::proto::http_response(o, 404, "text/plain", "no such stream\n", ka);
		return;
	}
	const std::uint64_t length = kv_.stream_length(name);
	if (before > length) {
		daxnet::proto::http_response(
			o, 416, "text/plain",
			fmt::format("before={} is beyond the stream's end ({} records appended)\n", before, length), ka);
		return;
	}
	std::int64_t rc = 0;
	if (before > kv_.stream_first(name)) {
		Slice n = name_slice(c, name, name_range);
		rc = n.len ? kv_.stream_trim(n, before) : -ENOSPC;
		if (rc == -ENOSPC && kv_.checkpoint() == 0) {
			n = name_slice(c, name, name_range);  // may have failed for want of space
			rc = n.len ? kv_.stream_trim(n, before) : -ENOSPC;
		}
		if (rc < 0) {
			daxnet::proto::http_response(o, 507, "text/plain",
						     fmt::format("daxnet: trim failed: {}\n", std::strerror(static_cast<int>(-rc))),
						     ka);
			return;
		}
		staged_ = true;
		++trims_;
		trimmed_records_ += static_cast<std::uint64_t>(rc);
	}
	const std::uint64_t first = kv_.stream_first(name);
	daxnet::proto::http_response(o, 200, "text/plain", fmt::format("{}\n", first), ka,
				     fmt::format("X-Daxnet-First: {}\r\nX-Daxnet-Trimmed: {}\r\n", first, rc));
}

daxnet::svc::Metrics WalService::metrics(Server& srv) const
{
	const auto& pc = pool_.domain().counters();
	std::uint64_t streams = 0;
	kv_.for_each_stream([&](std::string_view, std::uint64_t) { ++streams; });
	daxnet::svc::Metrics m;
	m.label("service", "daxnet-wal")
		.label("version", daxnet::svc::kVersion)
		.label("transport", transport_)
		.label("granularity", std::string(daxnet::pmem::to_string(pool_.domain().granularity())))
		.label("pool", pool_path_);
	daxnet::svc::add_server_metrics(m, srv, pc, alloc_.count(), alloc_.free_count());
	daxnet::svc::add_store_metrics(m, kv_);
	m.counter("appends", appends_, "Records appended.")
		.counter("append_bytes", append_bytes_, "Record bytes appended.")
		.counter("batches", batches_, "Batch appends (batch=lines requests).")
		.counter("appends_refused", refused_, "Appends refused (pool full, record too large).")
		.ratio("fences_per_append", static_cast<double>(pc.drains) / static_cast<double>(appends_ ? appends_ : 1),
		       "Fences per appended record (group commit drives it below 1).")
		.counter("reads", reads_, "Stream reads.")
		.counter("long_polls", long_polls_, "Reads that waited for records (wait=ms).")
		.gauge("long_polls_waiting", waiters_.size(), "Long polls waiting now.")
		.gauge("streams", streams, "Streams in the pool.")
		.counter("trims", trims_, "Trims that dropped records.")
		.counter("trimmed_records", trimmed_records_, "Records dropped by trims.")
		.gauge("reclaimable_records", kv_.reclaimable(), "Trimmed records whose space returns at the next checkpoint.")
		.counter("reclaim_checkpoints", reclaims_, "Checkpoints run to reclaim trimmed records' space.")
		.counter("reclaim_failures", reclaim_failures_, "Reclaim checkpoints that failed.")
		.gauge("pack_small", pack_small_, "Records up to this size are packed (copied once).")
		.counter("packed_bytes", packed_, "Bytes copied by packing small records.");
	return m;
}

void WalService::stats(Server& srv, Conn& c, bool prometheus)
{
	const auto m = metrics(srv);
	if (prometheus)
		daxnet::proto::http_response(c.tx.bytes(), 200, daxnet::svc::kPrometheusContentType, m.prometheus(),
					     c.http.request().keep_alive);
	else
		daxnet::proto::http_response(c.tx.bytes(), 200, "application/json", m.json(), c.http.request().keep_alive);
}

void WalService::on_http(Server& srv, Conn& c)
{
	using daxnet::proto::HttpMethod;
	const auto& rq = c.http.request();
	auto& o = c.tx.bytes();
	const bool ka = rq.keep_alive;
	for (const Waiter& w : waiters_)
		if (w.conn == &c) {
			answer_waiters(srv, &c);  // pipelined after a long poll: answer it first, in order
			break;
		}
	c.closing = !ka;
	std::string_view target = c.view(rq.target, 0);
	const std::size_t q = target.find('?');
	std::string_view path = target.substr(0, q);
	std::string_view query = q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
	const bool get = rq.method == HttpMethod::get || rq.method == HttpMethod::head;
	if ((path == "/stats" || path == "/metrics") && get) {
		stats(srv, c, path == "/metrics");
		return;
	}
	if (path == "/log" && get) {
		std::string body;
		kv_.for_each_stream([&](std::string_view name, std::uint64_t len) {
			body += fmt::format("{} {} {}\n", name, len, kv_.stream_first(name));
		});
		daxnet::proto::http_response(o, 200, "text/plain", body, ka);
		return;
	}
	if (path.substr(0, 5) != "/log/") {
		daxnet::proto::http_response(o, 404, "text/plain", "not found: use /log/<stream>, /stats or /metrics\n", ka);
		return;
	}
	std::string_view name = path.substr(5);
	if (!valid_stream_name(name)) {
		daxnet::proto::http_response(o, 400, "text/plain",
					     "stream names are 1-200 characters of A-Z a-z 0-9 . _ -\n", ka);
		return;
	}
	if (rq.method == HttpMethod::post || rq.method == HttpMethod::put)
		append(srv, c, name, StreamRange{rq.target.off + 5, name.size()}, query);
	else if (rq.method == HttpMethod::del)
		trim(srv, c, name, StreamRange{rq.target.off + 5, name.size()}, query);
	else if (get)
		read(srv, c, name, query);
	else
		daxnet::proto::http_response(o, 405, "text/plain", "method not allowed\n", ka,
					     "Allow: GET, HEAD, POST, DELETE\r\n");
}

// ---- offline dump ------------------------------------------------------------

int dump(int argc, char** argv)
{
	CLI::App app{"daxnet-wal dump: print a stream (or the list of streams) from a pool, offline"};
	std::string pool_path, stream;
	std::uint64_t from = 0, limit = UINT64_MAX;
	bool raw = false;
	app.add_option("--pool", pool_path, "pool file")->required()->check(CLI::ExistingFile);
	app.add_option("--stream", stream, "stream to print (default: list the streams)");
	app.add_option("--from", from, "first sequence number")->capture_default_str();
	app.add_option("--limit", limit, "records to print");
	app.add_flag("--raw", raw, "bodies only, no \"<seq> <length>\" lines");
	try {
		app.parse(argc, argv);
	} catch (const CLI::ParseError& e) {
		return app.exit(e);
	}
	auto pool = daxnet::pmem::Pool::open(pool_path);
	if (!pool) {
		fmt::print(stderr, "daxnet-wal dump: {}\n", pool.error().message);
		return 1;
	}
	const auto& view = pool->view();
	daxnet::pmem::BufferAllocator alloc(view.buffer_count());
	daxnet::pmem::KvOptions ko;
	ko.wal.read_only = true;
	daxnet::pmem::RecoveryReport report;
	auto kv = KvStore::open(view, alloc, ko, &report);
	if (!kv) {
		fmt::print(stderr, "daxnet-wal dump: {}: {}\n", pool_path, kv.error().message);
		return 1;
	}
	if (stream.empty()) {
		(*kv)->for_each_stream([&kv](std::string_view name, std::uint64_t len) {
			fmt::print("{} {} {}\n", name, len, (*kv)->stream_first(name));
		});
		return 0;
	}
	const std::uint64_t length = (*kv)->stream_length(stream);
	from = std::max(from, (*kv)->stream_first(stream));
	if (!(*kv)->stream_exists(stream)) {
		fmt::print(stderr, "daxnet-wal dump: no stream '{}' in {}\n", stream, pool_path);
		return 1;
	}
	std::vector<StreamEntryRef> buf(256);
	std::uint64_t printed = 0;
	while (from < length && printed < limit) {
		const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), limit - printed));
		const std::size_t n = (*kv)->stream_read(stream, from, std::span<StreamEntryRef>(buf.data(), want));
		if (n == 0)
			break;
		for (std::size_t i = 0; i < n; ++i) {
			if (!raw)
				std::printf("%llu %llu\n", static_cast<unsigned long long>(buf[i].index),
					    static_cast<unsigned long long>(buf[i].body.size));
			for (const Slice& s : buf[i].body.slices) {
				auto b = daxnet::pmem::slice_bytes(view, s);
				std::fwrite(b.data(), 1, b.size(), stdout);
			}
			if (!raw)
				std::putchar('\n');
		}
		from = buf[n - 1].index + 1;
		printed += n;
	}
	return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv)
{
	if (argc > 1 && (std::strcmp(argv[1], "dump") == 0 || std::strcmp(argv[1], "export") == 0))
		return dump(argc - 1, argv + 1);

	CLI::App app{"daxnet-wal: record ingestion over HTTP on a daxnet pool\n"
		     "  POST /log/<stream>[?batch=lines] (Content-Length or chunked),\n"
		     "  GET /log/<stream>?from=N&limit=M[&max_bytes=B][&wait=ms][&format=raw],\n"
		     "  DELETE /log/<stream>?before=N, GET /log, GET /stats, GET /metrics\n"
		     "  offline: daxnet-wal dump --pool FILE [--stream S] [--from N] [--limit M] [--raw]"};
	daxnet::svc::CommonOptions opt;
	std::string max_body = "16M";
	std::string pack_small = "auto";
	daxnet::svc::add_common_options(app, opt, 8080);
	app.add_option("--max-body", max_body, "largest record accepted, e.g. 16M")->capture_default_str();
	app.add_option("--pack-small", pack_small,
		       "records up to this many bytes are copied once into packed buffers instead of pinning a "
		       "received buffer each; auto: half a buffer on the uring transport (its receive cannot pack), 0 "
		       "(never) on kernel and epoll, which pack small messages as they receive")
		->capture_default_str();
	app.set_version_flag("--version", std::string("daxnet-wal ") + daxnet::svc::kVersion);
	CLI11_PARSE(app, argc, argv);

	auto mb = daxnet::svc::parse_size(max_body);
	if (!mb) {
		fmt::print(stderr, "daxnet-wal: --max-body: {}\n", mb.error().message);
		return 2;
	}
	if (opt.threads != 1) {
		fmt::print(stderr, "daxnet-wal: --threads {}: one WAL per pool, one thread in this version; use --threads 1\n",
			   opt.threads);
		return 2;
	}
	std::uint64_t pack_bytes = 0;  // --pack-small as a number (checked again against the pool's buffers)
	if (pack_small != "auto") {
		auto ps = daxnet::svc::parse_size(pack_small);
		if (!ps || *ps > 2048) {
			fmt::print(stderr, "daxnet-wal: --pack-small {}: a size up to half a buffer (at most 2048 bytes), or auto\n",
				   pack_small);
			return 2;
		}
		pack_bytes = *ps;
	}
	daxnet::svc::install_stop_signals();
	auto st = daxnet::svc::open_store_stack(opt, "daxnet-wal");
	if (!st)
		return 1;
	const auto& view = st->pool.view();
	auto& alloc = *st->alloc;
	KvStore& kv = *st->kv;
	daxnet::Port& port = *st->port;
	auto lf = daxnet::listen_tcp(opt.bind, static_cast<std::uint16_t>(opt.port));
	if (!lf) {
		fmt::print(stderr, "daxnet-wal: {}\n", lf.error().message);
		return 1;
	}
	daxnet::UniqueFd lfd = std::move(*lf);
	const int actual = daxnet::local_port(lfd.get());
	const std::string tname(daxnet::to_string(port.transport()));
	// uring receives every message into a buffer of its own: records up to
	// half a buffer are copied once into packed buffers (a 1 KiB record
	// would otherwise pin 4 KiB).
	std::uint32_t pack = port.transport() == daxnet::TransportKind::uring ? view.buffer_size() / 2 : 0;
	if (pack_small != "auto") {
		if (pack_bytes > view.buffer_size() / 2) {
			fmt::print(stderr, "daxnet-wal: --pack-small {}: a size up to half a buffer ({} bytes), or auto\n",
				   pack_small, view.buffer_size() / 2);
			return 2;
		}
		pack = static_cast<std::uint32_t>(pack_bytes);
	}
	daxnet::svc::ServerOptions so;
	so.idle_timeout_s = opt.timeout;
	so.http.max_body = *mb;
	so.http.allow_chunked = true;  // streamed uploads (curl -T -, shippers): chunks stay in place
	if (daxnet::Status ls = daxnet::svc::apply_client_limits(opt, view, &alloc, so); !ls) {
		fmt::print(stderr, "daxnet-wal: {}\n", ls.error().message);
		return 2;
	}
	WalService svc(kv, view, alloc, tname, *mb, pack, std::filesystem::absolute(st->pool.path()).lexically_normal());
	daxnet::svc::Server server(port, svc, {{lfd.get(), daxnet::svc::Proto::http}}, so);
	std::uint64_t streams = 0;
	kv.for_each_stream([&](std::string_view, std::uint64_t) { ++streams; });
	fmt::print("daxnet-wal {}: transport={} {} http={}:{} threads=1 streams={} recovered_log_entries={} "
		   "ckpt_entries={} pack_small={}\n",
		   daxnet::svc::kVersion, tname, daxnet::svc::describe_pool(st->pool, st->created), opt.bind, actual, streams,
		   st->report.log_entries, st->report.ckpt_entries, pack);
	std::fflush(stdout);
	daxnet::svc::notify_supervisor("READY=1\nSTATUS=serving");  // systemd Type=notify
	const int rc = server.run();
	daxnet::svc::notify_supervisor("STOPPING=1");
	fmt::print("daxnet-wal: stopping: {} requests, {} appends, {} fences\n", server.counters().requests,
		   svc.appends(), view.domain().counters().drains);
	return rc == 0 ? 0 : 1;
}
