// SPDX-License-Identifier: BSD-2-Clause
//
// daxnet-wal's HTTP API (wal_service.h lists it): appends (single, chunked,
// batch=lines), reads and long polls, trims, the stream list, /stats and
// /metrics.
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>

// GCC 12 reports a false -Wnull-dereference inside CLI11's inlined string
// splitting; only that header is exempted.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include "daxnet/svc/options.h"  // kVersion
#pragma GCC diagnostic pop
#include "daxnet/svc/fatal.h"
#include "wal_service.h"

namespace daxnet::wal {

namespace {

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

/// batch=lines: calls on_line(segments, length) for every non-empty line
/// of the body `ranges` (LF or CRLF ends, a last line without one), its
/// bytes as segments of the received stream (in place: a line may span
/// chunks and received buffers). `segs` is the scratch the segments live in.
template <class Chain, class F>
void split_lines(Chain& chain, std::span<const StreamRange> ranges, std::vector<StreamRange>& segs, F&& on_line)
{
	segs.clear();
	std::uint64_t line_len = 0;
	bool cr_pending = false;  // the last piece ended with CR
	auto flush_line = [&]() {
		if (line_len > 0)
			on_line(std::span<const StreamRange>(segs), line_len);
		segs.clear();
		line_len = 0;
	};
	for (const StreamRange& r : ranges) {
		chain.pieces(r, [&](const daxnet::proto::Piece& p) {
			const auto* d = reinterpret_cast<const char*>(p.data());
			const std::uint64_t base = p.slice->stream_off + p.off;
			std::uint32_t from = 0;
			for (std::uint32_t i = 0; i < p.len; ++i) {
				if (d[i] != '\n')
					continue;
				std::uint32_t end = i;
				if (end > from && d[end - 1] == '\r') {
					--end;  // CRLF line end
				} else if (i == 0 && cr_pending && !segs.empty()) {
					--segs.back().len;  // the CR ended the previous piece
					--line_len;
				}
				if (end > from) {
					segs.push_back(StreamRange{base + from, end - from});
					line_len += end - from;
				}
				flush_line();
				from = i + 1;
			}
			cr_pending = from < p.len && d[p.len - 1] == '\r';
			if (from < p.len) {
				segs.push_back(StreamRange{base + from, p.len - from});
				line_len += p.len - from;
			}
		});
	}
	flush_line();  // a last line without '\n'
}

}  // namespace

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
		core_.staged();
		++appends_;
		append_bytes_ += len;
	}
	return rc;
}

void WalService::end_batch(bool undo) noexcept
{
	if (!in_batch_)
		return;
	in_batch_ = false;
	if (undo) {
		// As daxnet-kv's end_atomic(): a refused batch left staged would
		// be committed in part.
		if (const int rc = kv_.batch_undo(batch_mark_); rc < 0)
			daxnet::svc::stop_on_failed_undo("daxnet-wal", "a refused batch=lines append", rc);
	}
	kv_.batch_end();
}

void WalService::append(Server& srv, Conn& c, std::string_view name, StreamRange name_range, std::string_view query)
{
	const auto& rq = c.http.request();
	auto& o = c.tx.bytes();
	const bool ka = rq.keep_alive;
	if (rq.content_length > max_body_) {
		srv.http_error(c, {Refusal::Code::too_large, fmt::format("body too large (limit {} bytes)", max_body_)});
		return;
	}
	const std::string_view batch = query_param(query, "batch");
	if (!batch.empty() && batch != "lines") {
		http_refusal(o, {Refusal::Code::bad_request, "batch=lines (one record per line) is the only batch mode"}, ka);
		return;
	}
	if (core_.is_full())
		core_.reclaim_if_short();  // trimmed records may be holding the space
	if (core_.is_full()) {
		++refused_;
		http_refusal(o,
			     {Refusal::Code::full,
			      fmt::format("daxnet: pool full ({} of {} buffers free): append refused, reads still served",
					  alloc_.free_count(), alloc_.count())},
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
		http_refusal(o, {Refusal::Code::full, "daxnet: pool full"}, ka);
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
		// All or nothing: the records run in the store's batch mode and a
		// refusal takes back every one staged before it (KvStore::batch_undo,
		// Wal::unstage_to). Log room for them is made first (no checkpoint
		// runs inside a batch), counted exactly as stage_record() will
		// stage them: a packed line is one slice, any other its pieces.
		std::uint64_t recs = 0;
		split_lines(c.chain, ranges, segs_, [&](std::span<const StreamRange> segs, std::uint64_t len) {
			if (len <= pack_small_) {
				recs += 1;
				return;
			}
			std::size_t pieces = 0;
			for (const StreamRange& r : segs)
				c.chain.pieces(r, [&](const daxnet::proto::Piece&) { ++pieces; });
			recs += daxnet::pmem::wal_records_for(pieces);
		});
		// More records than the log takes in one batch: refused for good
		// (413, the limit stated), never 507, which a client would retry.
		if (recs > kv_.batch_log_limit()) {
			http_refusal(o,
				     {Refusal::Code::too_large,
				      fmt::format("daxnet: a batch of {} records is more than the log takes at once ({} "
						  "records): send it in smaller batches",
						  recs, kv_.batch_log_limit())},
				     ka);
			return;
		}
		(void)kv_.make_room(recs);
		batch_mark_ = kv_.batch_begin();
		in_batch_ = true;
		const std::uint64_t appends0 = appends_, bytes0 = append_bytes_, packed0 = packed_;
		struct End {
			WalService& s;
			bool undo = true;
			~End() { s.end_batch(undo); }
		} scope{*this};
		split_lines(c.chain, ranges, segs_, [&](std::span<const StreamRange> segs, std::uint64_t len) {
			if (rc == 0) {
				rc = stage_record(c, n, segs, len, stamp, &seq);
				if (rc == 0 && count++ == 0)
					first = seq;
			}
		});
		scope.undo = rc < 0;
		if (rc < 0) {
			appends_ = appends0;
			append_bytes_ = bytes0;
			packed_ = packed0;
			count = 0;  // nothing of the batch is appended
		}
	}
	if (rc < 0) {
		++refused_;
		// A batch is refused whole: none of its records is appended.
		http_refusal(o,
			     Refusal::from_store(rc,
						 "daxnet: pool full (checkpoint capacity or log room): append refused, "
						 "trims and reads still served",
						 "record", "append"),
			     ka);
		return;
	}
	if (!batch.empty()) {
		++batches_;
		if (count == 0) {
			http_refusal(o, {Refusal::Code::bad_request, "batch=lines: the body has no line"}, ka);
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
		http_refusal(o, {Refusal::Code::bad_request, "from, limit, max_bytes and wait must be numbers"}, ka);
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
		http_refusal(o, {Refusal::Code::not_found, "no such stream"}, ka);
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
		daxnet::svc::send_value(srv, c, o, pool_, e.body.slices, e.body.size);
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
		http_refusal(o,
			     {Refusal::Code::bad_request, "DELETE /log/<stream>?before=N: N (a number) is the first record to keep"},
			     ka);
		return;
	}
	if (!kv_.stream_exists(name)) {
		http_refusal(o, {Refusal::Code::not_found, "no such stream"}, ka);
		return;
	}
	const std::uint64_t length = kv_.stream_length(name);
	if (before > length) {
		http_refusal(o,
			     {Refusal::Code::out_of_range,
			      fmt::format("before={} is beyond the stream's end ({} records appended)", before, length)},
			     ka);
		return;
	}
	std::int64_t rc = 0;
	if (before > kv_.stream_first(name)) {
		// a trim frees space: when the log is full, a checkpoint makes
		// room (the name's copy may have failed for want of space too)
		rc = core_.retry_after_checkpoint([&]() -> std::int64_t {
			const Slice n = name_slice(c, name, name_range);
			return n.len ? kv_.stream_trim(n, before) : -ENOSPC;
		});
		if (rc < 0) {
			http_refusal(o,
				     {Refusal::Code::failed,
				      fmt::format("daxnet: trim failed: {}", std::strerror(static_cast<int>(-rc)))},
				     ka);
			return;
		}
		core_.staged();
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
	core_.add_metrics(m);
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
		.gauge("pack_small", pack_small_, "Records up to this size are packed (copied once).")
		.counter("packed_bytes", packed_, "Bytes copied by packing small records.");
	return m;
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
		daxnet::svc::http_metrics(o, metrics(srv), path == "/metrics", ka);
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
		http_refusal(o, {Refusal::Code::not_found, "not found: use /log/<stream>, /stats or /metrics"}, ka);
		return;
	}
	std::string_view name = path.substr(5);
	if (!valid_stream_name(name)) {
		http_refusal(o, {Refusal::Code::bad_request, "stream names are 1-200 characters of A-Z a-z 0-9 . _ -"}, ka);
		return;
	}
	if (rq.method == HttpMethod::post || rq.method == HttpMethod::put)
		append(srv, c, name, StreamRange{rq.target.off + 5, name.size()}, query);
	else if (rq.method == HttpMethod::del)
		trim(srv, c, name, StreamRange{rq.target.off + 5, name.size()}, query);
	else if (get)
		read(srv, c, name, query);
	else
		http_refusal(o, {Refusal::Code::not_allowed, "method not allowed"}, ka, "Allow: GET, HEAD, POST, DELETE\r\n");
}

}  // namespace daxnet::wal
