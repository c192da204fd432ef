// SPDX-License-Identifier: BSD-2-Clause
//
// daxnet-kv: a persistent key-value server speaking RESP2/RESP3 (redis-cli,
// redis-benchmark and client libraries work unmodified) and, on a second
// port, a pKVS-style HTTP interface (GET/PUT/DELETE /kv/<key>).
//
// Values stay in the pool buffers they were received in: the KV store logs
// (buffer, offset, length) references in the WAL and indexes them in DRAM.
// Every write of one event-loop pass, over all connections, is made durable
// with one commit (one fence) before any reply of that pass is sent.
//
// Commands: a Redis-style table (kv.h, cmd_table.cpp), handlers by family in
// cmd_*.cpp. This file: the service core (dispatch, store helpers), HTTP and
// main().
//
// Limits: keys up to --max-key bytes (default 1024), values up to
// --max-value (default 16 MiB). Writes are refused with
// "-OOM ... (daxnet: pool full ...)" when fewer than --reserve buffers are free,
// so that reads (and the transport) keep working.
#include <fmt/format.h>

#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

// GCC 12 reports a false -Wnull-dereference inside CLI11's inlined string
// splitting once main() grows; only that header is exempted.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include "daxnet/svc/options.h"
#pragma GCC diagnostic pop
#include "kv.h"

namespace daxnet::kv {

namespace resp = daxnet::proto::resp;

bool ieq(std::string_view a, std::string_view b) noexcept
{
	if (a.size() != b.size())
		return false;
	for (std::size_t i = 0; i < a.size(); ++i) {
		char x = a[i], y = b[i];
		if (x >= 'A' && x <= 'Z')
			x = static_cast<char>(x - 'A' + 'a');
		if (y >= 'A' && y <= 'Z')
			y = static_cast<char>(y - 'A' + 'a');
		if (x != y)
			return false;
	}
	return true;
}

bool parse_i64(std::string_view s, std::int64_t& v) noexcept
{
	if (s.empty() || s.size() > 20 || (s.size() > 1 && s[0] == '0') || s[0] == '+')
		return false;
	if (s.size() > 1 && s[0] == '-' && s[1] == '0')
		return false;
	auto r = std::from_chars(s.data(), s.data() + s.size(), v);
	return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

KvService::KvService(KvStore& kv, const daxnet::pmem::PoolView& pool, daxnet::pmem::BufferAllocator& alloc,
		     const KvConfig& cfg)
    : kv_(kv), pool_(pool), alloc_(alloc), arena_(pool, alloc), cfg_(cfg)
{
	values_.reserve(64);
	argv_.reserve(16);
	if (cfg_.reserve == 0)
		cfg_.reserve = std::max<std::uint32_t>(32, pool.buffer_count() / 16);
	cmd_stats_.resize(command_table().size());
	load_db_map();
	kv_.set_expire_hook(&KvService::on_expired, this);
	kv_.for_each([&](std::string_view k, const ValueRef& v) {
		if (db_of(k) != 0 || (k.size() >= 2 && k[0] == '\xff' && k[1] == '\xfe'))
			multi_db_ = true;
		if (v.expiry_ns)
			expq_.emplace(v.expiry_ns, std::string(k));
	});
	start_ns_ = last_save_ns_ = daxnet::pmem::realtime_ns();
	std::uint64_t r = start_ns_ ^ (static_cast<std::uint64_t>(::getpid()) << 32);
	for (int i = 0; i < 40; ++i) {
		r = r * 6364136223846793005ull + 1442695040888963407ull;
		run_id_.push_back("0123456789abcdef"[(r >> 60) & 15]);
	}
	for (int i = 0; i < 40; ++i) {
		r = r * 6364136223846793005ull + 1442695040888963407ull;
		repl_id_.push_back("0123456789abcdef"[(r >> 60) & 15]);
	}
}

// Starts reclaiming the buffers of superseded values when short: an
// incremental checkpoint the loop advances on later passes, never a whole
// one inside the request (docs/wal-format.md §Capacity).
bool KvService::pool_full() noexcept
{
	if (alloc_.free_count() >= cfg_.reserve)
		return false;
	if (!in_exec_ && kv_.wal().next_seq() >= last_reclaim_ + 1024) {
		last_reclaim_ = kv_.wal().next_seq();
		++reclaims_;
		(void)kv_.reclaim();
	}
	return alloc_.free_count() < cfg_.reserve;
}

// Redis's wording for a write refused at maxmemory, with what is full.
std::string KvService::pool_full_msg() const
{
	return fmt::format("OOM command not allowed when used memory > 'maxmemory' (daxnet: pool full, "
			   "{} of {} buffers free, {} reserved; reads still served)",
			   alloc_.free_count(), alloc_.count(), cfg_.reserve);
}

std::string KvService::capacity_msg() const
{
	return fmt::format("OOM command not allowed when used memory > 'maxmemory' (daxnet: pool full, "
			   "{} of {} checkpoint records live, {} log records used of {}; DEL, FLUSHALL and reads "
			   "still served)",
			   kv_.live_records(), kv_.record_limit(), kv_.wal().used(), kv_.wal().nslots());
}

bool KvService::admit_batch(Ctx& x, std::size_t first)
{
	// Packed pairs and keys that must be copied go into arena buffers as
	// they are staged: refuse up front when those might not be there, so
	// staging cannot fail half way. (An arena buffer fills at least half
	// way; a key split between received slices is copied too, at most
	// one per slice.)
	const std::uint32_t bsize = pool_.buffer_size();
	std::uint64_t recs = 0, copied = 0;
	for (std::size_t i = first + 1; i < x.argc(); i += 2) {
		const std::uint64_t len = x.arg(i).size();
		const bool packed = len != 0 && len <= cfg_.pack_small;
		recs += daxnet::pmem::wal_records_for(packed ? 1 : len / bsize + 2);
		copied += x.arg(i - 1).size() + (packed ? len : 0);
	}
	if (2 * copied / bsize + x.c.chain.size() + 2 > alloc_.free_count()) {
		refuse_pool_full(x);
		return false;
	}
	// Every key counted as new; log room for all entries made now, so no
	// checkpoint runs between them and they commit as one batch.
	if (kv_.admit(recs, recs) < 0) {
		++refused_;
		resp::error(x.o, capacity_msg());
		return false;
	}
	return true;
}

void KvService::refuse_pool_full(Ctx& x)
{
	++refused_;
	resp::error(x.o, pool_full_msg());
}

std::string_view KvService::skey(const Ctx& x, std::string_view key, std::string& buf) const
{
	const int p = phys(x.cl.db);
	if (p == 0 && (key.size() < 2 || key[0] != '\xff' || key[1] != '\xfe'))
		return key;
	buf.assign("\xff\xfe");
	buf.push_back(static_cast<char>(p));
	buf.append(key);
	return buf;
}

int KvService::bytes_slice(std::string_view bytes, Slice& out)
{
	if (bytes.empty()) {
		out = Slice{};
		return 0;
	}
	return arena_.write(std::as_bytes(std::span<const char>(bytes.data(), bytes.size())), out);
}

int KvService::key_slice(Ctx& x, std::size_t i, Slice& out)
{
	std::string_view key = x.arg(i);
	std::string_view sk = skey(x, key, keybuf_);
	if (sk.data() == key.data() && x.ranges) {
		const StreamRange r = x.ranges[i];
		if (r.len == 0) {
			out = Slice{};
			return 0;
		}
		std::uint32_t buf = 0, off = 0;
		if (daxnet::svc::single_slice(x.c.chain, r, buf, off)) {
			out = Slice{buf, off, static_cast<std::uint32_t>(r.len)};
			return 0;
		}
	}
	return bytes_slice(sk, out);
}

void KvService::value_slices(Conn& c, StreamRange r)
{
	values_.clear();
	c.chain.pieces(r, [&](const daxnet::proto::Piece& p) { values_.push_back(Slice{p.buf(), p.buf_off(), p.len}); });
}

int KvService::kv_slices(Conn& c, StreamRange key, StreamRange value, Slice& k)
{
	if (value.len > cfg_.pack_small || value.len == 0) {
		// zero-copy: key and value stay in the received buffers
		std::uint32_t buf = 0, off = 0;
		if (key.len == 0) {
			k = Slice{};
		} else if (daxnet::svc::single_slice(c.chain, key, buf, off)) {
			k = Slice{buf, off, static_cast<std::uint32_t>(key.len)};
		} else {
			std::vector<char> tmp;
			if (bytes_slice(c.chain.view(key, tmp), k) < 0)
				return -ENOSPC;
		}
		value_slices(c, value);
		return 0;
	}
	// A small value would pin a whole received buffer: copy key and value
	// once into a packed pool buffer instead (counted in daxnet_packed_bytes).
	std::string_view kv = c.view(key, 62), vv = c.view(value, 63);
	Slice v;
	if (bytes_slice(kv, k) < 0 || bytes_slice(vv, v) < 0)
		return -ENOSPC;
	values_.assign(1, v);
	packed_ += key.len + value.len;
	return 0;
}

int KvService::set_value_bytes(std::string_view bytes)
{
	values_.clear();
	const std::size_t chunk = pool_.buffer_size();
	for (std::size_t at = 0; at < bytes.size(); at += chunk) {
		Slice v;
		if (bytes_slice(bytes.substr(at, chunk), v) < 0)
			return -ENOSPC;
		values_.push_back(v);
	}
	return 0;
}

int KvService::arg_kv_slices(Ctx& x, std::size_t i, std::size_t j, Slice& k)
{
	std::string_view key = x.arg(i);
	if (x.ranges && skey(x, key, keybuf_).data() == key.data())
		return kv_slices(x.c, x.ranges[i], x.ranges[j], k);
	if (bytes_slice(skey(x, key, keybuf_), k) < 0)
		return -ENOSPC;
	if (x.ranges && (x.ranges[j].len > cfg_.pack_small || x.ranges[j].len == 0)) {
		value_slices(x.c, x.ranges[j]);
		return 0;
	}
	packed_ += key.size() + x.arg(j).size();
	return set_value_bytes(x.arg(j));
}

const char* KvService::stage_set(const Slice& key, std::uint64_t expiry, std::string& err)
{
	// The store admits against checkpoint capacity and log room itself
	// (docs/wal-format.md §Capacity); a refusal costs no checkpoint.
	const int rc = kv_.set(key, values_, expiry);
	if (rc == 0) {
		staged_ = true;
		++writes_;
		const std::string_view k = key.len ? std::string_view(reinterpret_cast<const char*>(pool_.buffer(key.buf)) + key.off, key.len) : std::string_view();
		if (expiry)
			note_expiry(k, expiry);
		if (!watched_.empty())
			touch(k);
		if (!multi_db_ && k.size() >= 2 && k[0] == '\xff' && k[1] == '\xfe')
			multi_db_ = true;
		return nullptr;
	}
	++refused_;
	if (rc == -ENOSPC)
		err = capacity_msg();
	else if (rc == -EMSGSIZE)
		err = "ERR daxnet: value too large for the log of this pool";
	else
		err = fmt::format("ERR daxnet: write failed ({})", std::strerror(-rc));
	return err.c_str();
}

int KvService::stage_del(const Slice& key)
{
	const int rc = kv_.del(key);  // may use the log room kept for frees
	if (rc > 0) {
		staged_ = true;
		++writes_;
		if (!watched_.empty())
			touch(std::string_view(reinterpret_cast<const char*>(pool_.buffer(key.buf)) + key.off, key.len));
	}
	return rc;
}

int KvService::lookup(std::string_view stored, ValueRef& v) noexcept
{
	const int rc = kv_.get(stored, v);
	if (rc == 1)
		++hits_;
	else
		++misses_;
	return rc;
}

std::string KvService::value_bytes(const daxnet::pmem::PoolView& pool, const ValueRef& v)
{
	std::string out;
	out.reserve(v.size);
	for (const Slice& s : v.slices) {
		auto b = daxnet::pmem::slice_bytes(pool, s);
		out.append(reinterpret_cast<const char*>(b.data()), b.size());
	}
	return out;
}

const char* KvService::put_bytes(std::string_view stored, std::string_view bytes, std::uint64_t expiry,
				 std::string& err)
{
	Slice k;
	if (bytes_slice(stored, k) < 0 || set_value_bytes(bytes) < 0) {
		++refused_;
		err = pool_full_msg();
		return err.c_str();
	}
	return stage_set(k, expiry, err);
}

const char* KvService::put_slices(std::string_view stored, std::span<const Slice> value, std::uint64_t expiry,
				  std::string& err)
{
	// copy first: `value` may point into the index entry being replaced
	std::vector<Slice> v(value.begin(), value.end());
	Slice k;
	if (bytes_slice(stored, k) < 0) {
		++refused_;
		err = pool_full_msg();
		return err.c_str();
	}
	values_ = std::move(v);
	return stage_set(k, expiry, err);
}

int KvService::del_stored(std::string_view stored)
{
	if (!kv_.exists(stored))
		return 0;
	Slice k;
	if (bytes_slice(stored, k) < 0)
		return -ENOSPC;
	return stage_del(k);
}

int KvService::flush_all_stored()
{
	const int rc = kv_.flushall();  // may use the log room kept for frees
	if (rc == 0) {
		staged_ = true;
		++writes_;
		multi_db_ = false;
		expq_.clear();
		set_db_map_identity();  // the map's key went with the rest
	}
	return rc;
}

void KvService::touch(std::string_view stored)
{
	auto it = watched_.find(std::string(stored));
	if (it == watched_.end())
		return;
	for (std::uint64_t id : it->second)
		if (auto c = clients_.find(id); c != clients_.end())
			c->second->dirty_cas = true;
}

void KvService::set_db_map_identity() noexcept
{
	for (int i = 0; i < kDatabases; ++i)
		db_map_[i] = db_unmap_[i] = static_cast<std::uint8_t>(i);
}

void KvService::load_db_map()
{
	set_db_map_identity();
	ValueRef v{};
	if (kv_.get(kDbMapKey, v) != 1 || v.size != kDatabases)
		return;
	const std::string m = value_bytes(pool_, v);
	bool seen[kDatabases] = {};
	for (char ch : m) {
		const auto p = static_cast<unsigned char>(ch);
		if (p >= kDatabases || seen[p]) {
			fmt::print(stderr, "daxnet-kv: malformed database map ignored (identity used)\n");
			return;
		}
		seen[p] = true;
	}
	for (int i = 0; i < kDatabases; ++i) {
		db_map_[i] = static_cast<std::uint8_t>(m[static_cast<std::size_t>(i)]);
		db_unmap_[db_map_[i]] = static_cast<std::uint8_t>(i);
	}
}

void KvService::touch_db(int db)
{
	const int p = db >= 0 ? phys(db) : -1;
	for (auto& [key, ids] : watched_) {
		if (p >= 0 && db_of(key) != p)
			continue;
		if (!kv_.exists(key))
			continue;
		for (std::uint64_t id : ids)
			if (auto c = clients_.find(id); c != clients_.end())
				c->second->dirty_cas = true;
	}
}

void KvService::unwatch_all(Client& cl)
{
	for (const Client::Watch& w : cl.watched) {
		auto it = watched_.find(w.key);
		if (it == watched_.end())
			continue;
		std::erase(it->second, cl.id);
		if (it->second.empty())
			watched_.erase(it);
	}
	cl.watched.clear();
}

void KvService::note_expiry(std::string_view stored, std::uint64_t expiry_ns)
{
	expq_.emplace(expiry_ns, std::string(stored));
}

void KvService::active_expire()
{
	const std::uint64_t now = daxnet::pmem::realtime_ns();
	if (now - last_cycle_ns_ < 100000000ull || expq_.begin()->first > now)
		return;
	last_cycle_ns_ = now;
	// Redis expires keys actively, in bounded steps: at most 2000 per cycle
	for (int n = 0; n < 2000 && !expq_.empty() && expq_.begin()->first <= now; ++n) {
		auto it = expq_.begin();
		const std::string key = std::move(it->second);
		expq_.erase(it);
		ValueRef v{};
		// the entry may be stale (key since re-set or deleted); a get of an
		// expired key drops it from the index
		if (kv_.get(key, v) == 0)
			++expired_keys_;
	}
}

void KvService::keys_of_db(int db, std::vector<std::string>& out)
{
	db = phys(db);
	const std::uint64_t now = daxnet::pmem::realtime_ns();
	kv_.for_each([&](std::string_view k, const ValueRef& v) {
		if (v.expiry_ns != 0 && v.expiry_ns <= now)
			return;
		if (db_of(k) == db)
			out.emplace_back(k);
	});
}

std::uint64_t KvService::dbsize_of(int db)
{
	db = phys(db);
	if (!multi_db_)
		return db == 0 ? kv_.dbsize() : 0;
	std::uint64_t n = 0;
	kv_.for_each([&](std::string_view k, const ValueRef&) {
		if (db_of(k) == db)
			++n;
	});
	return n;
}

std::uint64_t KvService::expiry_ns_of_ms(std::int64_t ms) const noexcept
{
	if (ms <= 0)
		return 1;  // in the past (0 would mean "no expiry")
	if (static_cast<std::uint64_t>(ms) > UINT64_MAX / 1000000)
		return UINT64_MAX;  // beyond year 2554: clamped
	return static_cast<std::uint64_t>(ms) * 1000000ull;
}

bool KvService::key_fits(Ctx& x, std::size_t i)
{
	if (x.arg(i).size() <= cfg_.max_key)
		return true;
	resp::error(x.o, fmt::format("ERR daxnet: key too long ({} bytes, limit {})", x.arg(i).size(), cfg_.max_key));
	return false;
}

void KvService::reply_null(Ctx& x)
{
	if (x.resp3())
		x.o.append("_\r\n");
	else
		resp::nil(x.o);
}

void KvService::reply_value(Ctx& x, const ValueRef& v)
{
	resp::bulk_header(x.o, v.size);
	if (v.size <= kInlineValueMax) {
		for (const Slice& s : v.slices)
			x.o.append(daxnet::pmem::slice_bytes(pool_, s));
	} else {
		for (const Slice& s : v.slices)
			x.c.tx.append_ref(x.srv.source(), s.buf, s.off, s.len);
	}
	resp::crlf(x.o);
}

void KvService::reply_value_copy(Ctx& x, const ValueRef& v)
{
	resp::bulk_header(x.o, v.size);
	for (const Slice& s : v.slices)
		x.o.append(daxnet::pmem::slice_bytes(pool_, s));
	resp::crlf(x.o);
}

namespace {

std::string sock_name(int fd, bool peer)
{
	sockaddr_storage ss{};
	socklen_t len = sizeof ss;
	auto* sa = reinterpret_cast<sockaddr*>(&ss);
	if ((peer ? ::getpeername(fd, sa, &len) : ::getsockname(fd, sa, &len)) != 0)
		return "?:0";
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (ss.ss_family == AF_INET) {
		auto* in = reinterpret_cast<sockaddr_in*>(&ss);
		::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
		port = ntohs(in->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
		::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
		port = ntohs(in6->sin6_port);
	}
	return fmt::format("{}:{}", host, port);
}

}  // namespace

Client& KvService::client_of(Server&, Conn& c)
{
	if (!c.app) {
		auto cl = std::make_shared<Client>();
		cl->id = next_client_id_++;
		cl->conn = c.id;
		cl->fd = c.fd.get();
		cl->authed = cfg_.requirepass.empty();
		cl->created_ns = cl->last_ns = daxnet::pmem::realtime_ns();
		cl->addr = sock_name(c.fd.get(), true);
		cl->laddr = sock_name(c.fd.get(), false);
		clients_[cl->id] = cl.get();
		c.app = std::move(cl);
	}
	return *static_cast<Client*>(c.app.get());
}

void KvService::on_close(Server&, Conn& c)
{
	if (!c.app)
		return;
	Client& cl = *static_cast<Client*>(c.app.get());
	unwatch_all(cl);
	if (cl.replica)
		drop_replica(cl.id);
	clients_.erase(cl.id);
}

void KvService::on_resp(Server& srv, Conn& c)
{
	Client& cl = client_of(srv, c);
	srv_ = &srv;
	auto args = c.resp.args();
	argv_.clear();
	if (c.resp.inline_quoted()) {
		// an inline request with quotes: split by Redis' rules (copies)
		std::vector<char> tmp;
		const std::string_view line = c.chain.view(c.resp.inline_line(), tmp);
		if (!daxnet::proto::split_inline(line, inline_args_)) {
			resp::error(c.tx.bytes(), "ERR Protocol error: unbalanced quotes in request");
			srv.close_after_reply(c);
			return;
		}
		if (inline_args_.empty())
			return;
		for (const std::string& a : inline_args_)
			argv_.push_back(a);
		Ctx x{srv, c, cl, c.tx.bytes(), argv_, nullptr};
		dispatch(x);
		return;
	}
	for (std::size_t i = 0; i < args.size(); ++i)
		argv_.push_back(c.view(args[i], i));
	Ctx x{srv, c, cl, c.tx.bytes(), argv_, args.data()};
	dispatch(x);
}

namespace {

bool tx_control(const Cmd* c) noexcept
{
	const std::string_view n(c->name);
	return n == "exec" || n == "discard" || n == "multi" || n == "watch" || n == "quit" || n == "reset";
}

}  // namespace

void KvService::dispatch(Ctx& x)
{
	Client& cl = x.cl;
	if (cl.replica) {
		replica_input(x);
		return;
	}
	const Cmd* cmd = find_command(x.arg(0));
	if (!cmd) {
		std::string_view shown[4];
		std::size_t ns = 0;
		for (std::size_t i = 1; i < x.argc() && ns < 4; ++i)
			shown[ns++] = x.arg(i);
		++errors_;
		if (cl.in_multi)
			cl.multi_error = true;
		if (!cl.authed) {
			resp::error(x.o, "NOAUTH Authentication required.");
			return;
		}
		resp::unknown_command(x.o, x.arg(0), std::span<const std::string_view>(shown, ns));
		return;
	}
	x.cmd = cmd;
	CmdStat& st = cmd_stats_[static_cast<std::size_t>(cmd - command_table().data())];
	if (!cl.authed && !(cmd->flags & kNoAuth)) {
		++st.rejected;
		++errors_;
		resp::error(x.o, "NOAUTH Authentication required.");
		return;
	}
	const auto argc = static_cast<int>(x.argc());
	if ((cmd->arity > 0 && argc != cmd->arity) || (cmd->arity < 0 && argc < -cmd->arity)) {
		++st.rejected;
		++errors_;
		if (cl.in_multi)
			cl.multi_error = true;
		resp::wrong_arity(x.o, cmd->name);
		return;
	}
	if (cl.in_multi && !tx_control(cmd)) {
		if (cmd->flags & kNoMulti) {
			++st.rejected;
			cl.multi_error = true;
			resp::error(x.o, "ERR Command not allowed inside a transaction");
			return;
		}
		if ((cmd->flags & kDenyOom) && over_maxmemory()) {
			++st.rejected;
			cl.multi_error = true;
			resp::error(x.o, "OOM command not allowed when used memory > 'maxmemory'.");
			return;
		}
		cl.queue.emplace_back(x.argv.begin(), x.argv.end());
		resp::simple(x.o, "QUEUED");
		return;
	}
	if ((cmd->flags & kDenyOom) && cmd->first_key > 0) {
		// stored keys are bounded (--max-key); reads of longer keys just miss
		const int last = cmd->last_key < 0 ? argc + cmd->last_key : cmd->last_key;
		for (int i = cmd->first_key; i <= last && i < argc; i += cmd->step)
			if (!key_fits(x, static_cast<std::size_t>(i))) {
				++st.rejected;
				return;
			}
	}
	if ((cmd->flags & kDenyOom) && pool_full()) {
		++st.rejected;
		refuse_pool_full(x);
		return;
	}
	if ((cmd->flags & kWrite) && min_replicas_ > replicas_.size()) {
		++st.rejected;
		++errors_;
		resp::error(x.o, "NOREPLICAS Not enough good replicas to write.");
		return;
	}
	if ((cmd->flags & kDenyOom) && over_maxmemory() && !in_exec_) {
		++st.rejected;
		++errors_;
		resp::error(x.o, "OOM command not allowed when used memory > 'maxmemory'.");
		return;
	}
	++st.calls;
	++ops_;
	cl.last_cmd = cmd->name;
	const std::size_t before = x.o.size();
	const std::uint64_t w0 = writes_;
	prop_custom_ = false;
	const std::uint64_t t0 = mono_ns();
	(this->*cmd->fn)(x);
	st.ns += mono_ns() - t0;
	if (!replicas_.empty()) {
		// a write that changed something propagates as itself unless the
		// handler gave its effect (propagate_as); EXEC's effects are its
		// commands'
		if (writes_ != w0 && !prop_custom_ && (cmd->flags & kWrite) && cmd->fn != &KvService::cmd_exec)
			propagate(cl.db, std::vector<std::string>(x.argv.begin(), x.argv.end()));
		prop_custom_ = false;
		if (!in_exec_)
			flush_propagation();
	}
	if (x.o.size() > before && x.o.view()[before] == '-') {
		++st.failed;
		++errors_;
	}
}

// ---- HTTP: GET/HEAD/PUT/POST/DELETE /kv/<key> ---------------------------------

int hexval(char ch) noexcept
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

void KvService::on_http(Server& srv, Conn& c)
{
	using daxnet::proto::HttpMethod;
	const auto& rq = c.http.request();
	auto& o = c.tx.bytes();
	std::string_view target = c.view(rq.target, 0);
	const std::size_t q = target.find('?');
	std::string_view path = target.substr(0, q);
	if ((path == "/stats" || path == "/metrics") &&
	    (rq.method == HttpMethod::get || rq.method == HttpMethod::head)) {
		const auto m = metrics(srv);
		if (path == "/metrics")
			daxnet::proto::http_response(o, 200, daxnet::svc::kPrometheusContentType, m.prometheus(),
						     rq.keep_alive);
		else
			daxnet::proto::http_response(o, 200, "application/json", m.json(), rq.keep_alive);
		c.closing = !rq.keep_alive;
		return;
	}
	if (path.substr(0, 4) != "/kv/" || path.size() == 4) {
		daxnet::proto::http_response(o, 404, "text/plain", "not found: use /kv/<key>, /stats or /metrics\n",
					     rq.keep_alive);
		c.closing = !rq.keep_alive;
		return;
	}
	// key: the rest of the path, percent-decoded
	StreamRange key_range{rq.target.off + 4, path.size() - 4};
	std::string_view raw = path.substr(4);
	bool encoded = raw.find('%') != std::string_view::npos;
	std::string_view key = raw;
	if (encoded) {
		scratch_.clear();
		for (std::size_t i = 0; i < raw.size(); ++i) {
			int h1 = 0, h2 = 0;
			if (raw[i] == '%' && i + 2 < raw.size() + 0 && (h1 = hexval(raw[i + 1])) >= 0 &&
			    (h2 = hexval(raw[i + 2])) >= 0) {
				scratch_.push_back(static_cast<char>(h1 * 16 + h2));
				i += 2;
			} else {
				scratch_.push_back(raw[i]);
			}
		}
		key = scratch_;
	}
	if (phys(0) != 0 || (key.size() >= 2 && key[0] == '\xff' && key[1] == '\xfe')) {
		// database 0 after a SWAPDB, or a key that looks like a prefixed
		// one (kv.h): stored with the prefix
		keybuf_.assign("\xff\xfe");
		keybuf_.push_back(static_cast<char>(phys(0)));
		keybuf_.append(key);
		scratch_ = keybuf_;
		key = scratch_;
		encoded = true;
	}
	if (key.size() > cfg_.max_key + 3) {
		srv.http_error(c, 414, fmt::format("key too long ({} bytes, limit {})", key.size(), cfg_.max_key));
		return;
	}
	const bool ka = rq.keep_alive;
	c.closing = !ka;
	switch (rq.method) {
	case HttpMethod::get:
	case HttpMethod::head: {
		ValueRef v{};
		if (kv_.get(key, v) != 1) {
			daxnet::proto::http_response(o, 404, "text/plain", "no such key\n", ka);
			return;
		}
		daxnet::proto::http_head(o, 200, "application/octet-stream", v.size, ka);
		if (rq.method == HttpMethod::head)
			return;
		if (v.size <= kInlineValueMax) {
			for (const Slice& s : v.slices)
				o.append(daxnet::pmem::slice_bytes(pool_, s));
		} else {
			for (const Slice& s : v.slices)
				c.tx.append_ref(srv.source(), s.buf, s.off, s.len);
		}
		return;
	}
	case HttpMethod::put:
	case HttpMethod::post: {
		if (rq.content_length > cfg_.max_value) {
			srv.http_error(c, 413, fmt::format("value too large (limit {} bytes)", cfg_.max_value));
			return;
		}
		if (pool_full()) {
			++refused_;
			daxnet::proto::http_response(o, 507, "text/plain", pool_full_msg().substr(4) + "\n", ka);
			return;
		}
		Slice k;
		int rc = 0;
		if (encoded) {
			rc = bytes_slice(key, k);
			value_slices(c, rq.body);
		} else {
			rc = kv_slices(c, key_range, rq.body, k);
		}
		if (rc < 0) {
			daxnet::proto::http_response(o, 507, "text/plain", pool_full_msg().substr(4) + "\n", ka);
			return;
		}
		std::string err;
		if (const char* e = stage_set(k, 0, err)) {
			daxnet::proto::http_response(o, 507, "text/plain", std::string(e + 4) + "\n", ka);
			return;
		}
		daxnet::proto::http_response(o, 200, "text/plain", "OK\n", ka);
		return;
	}
	case HttpMethod::del: {
		if (!kv_.exists(key)) {
			daxnet::proto::http_response(o, 404, "text/plain", "no such key\n", ka);
			return;
		}
		Slice k;
		int rc = 0;
		if (encoded) {
			rc = bytes_slice(key, k);
		} else {
			std::uint32_t buf = 0, off = 0;
			if (daxnet::svc::single_slice(c.chain, key_range, buf, off))
				k = Slice{buf, off, static_cast<std::uint32_t>(key_range.len)};
			else
				rc = bytes_slice(key, k);
		}
		if (rc == 0)
			rc = stage_del(k);
		if (rc < 0) {
			daxnet::proto::http_response(o, 507, "text/plain", "delete failed\n", ka);
			return;
		}
		daxnet::proto::http_response(o, 200, "text/plain", "1\n", ka);
		return;
	}
	case HttpMethod::other:
		break;
	}
	daxnet::proto::http_response(o, 405, "text/plain", "method not allowed\n", ka, "Allow: GET, HEAD, PUT, POST, DELETE\r\n");
}

void KvService::sample_rates(Server& srv) noexcept
{
	constexpr std::uint64_t kInterval = 100000000ull;  // 100 ms, as Redis samples
	RateSamples& r = rates_;
	const std::uint64_t now = mono_ns();
	const auto pc = srv.port().counters();
	if (r.last_ns == 0) {
		r.last_ns = now;
		r.last_ops = ops_;
		r.last_in = pc.rx_bytes;
		r.last_out = pc.tx_bytes;
		return;
	}
	if (now - r.last_ns < kInterval)
		return;
	const double secs = static_cast<double>(now - r.last_ns) / 1e9;
	const double ops = static_cast<double>(ops_ - r.last_ops) / secs;
	const double in = static_cast<double>(pc.rx_bytes - r.last_in) / secs / 1024;
	const double out = static_cast<double>(pc.tx_bytes - r.last_out) / secs / 1024;
	// a gap of k intervals (idle: no pass ran) fills k slots at its mean rate
	const std::uint64_t k = std::min<std::uint64_t>((now - r.last_ns) / kInterval, RateSamples::kSlots);
	for (std::uint64_t i = 0; i < k; ++i) {
		r.ops[r.next] = ops;
		r.in_kbps[r.next] = in;
		r.out_kbps[r.next] = out;
		r.next = (r.next + 1) % RateSamples::kSlots;
		r.filled = std::min(r.filled + 1, RateSamples::kSlots);
	}
	r.last_ns = now;
	r.last_ops = ops_;
	r.last_in = pc.rx_bytes;
	r.last_out = pc.tx_bytes;
}

double KvService::rate_avg(const double* v, int n) noexcept
{
	if (n == 0)
		return 0;
	double sum = 0;
	for (int i = 0; i < n; ++i)
		sum += v[i];
	return sum / n;
}

void KvService::end_of_pass(Server& srv)
{
	sample_rates(srv);
	// Vectors a large request grew (MSET of a million keys, a 16 MiB value
	// in 4096 slices) go back after it (issue 14).
	if (argv_.capacity() > 1024)
		std::vector<std::string_view>().swap(argv_);
	if (values_.capacity() > 1024)
		std::vector<Slice>().swap(values_);
	if (inline_args_.capacity() > 1024)
		std::vector<std::string>().swap(inline_args_);
	srv_ = &srv;
	if (!replicas_.empty())
		repl_tick();
	if (active_expire_ && !expq_.empty())
		active_expire();
	staged_ |= kv_.clean() > 0;  // docs/wal-format.md §The cleaner: a bounded step, same fence
	if (!staged_ && !kv_.checkpoint_pending())
		return;  // (a pending checkpoint advances a step per pass)
	staged_ = false;
	++commits_;
	const int rc = kv_.commit();  // one fence for the whole pass
	if (rc < 0)
		fmt::print(stderr, "daxnet-kv: checkpoint after commit failed: {} (the batch is durable)\n",
			   std::strerror(-rc));
	(void)pool_full();  // reclaim superseded values' buffers before the transport runs dry
}

}  // namespace daxnet::kv

int main(int argc, char** argv)
{
	CLI::App app{"daxnet-kv: persistent key-value server (Redis protocol + HTTP) on a daxnet pool"};
	daxnet::svc::CommonOptions opt;
	daxnet::kv::KvConfig cfg;
	int http_port = -1;
	std::string max_value = "16M";
	daxnet::svc::add_common_options(app, opt, 6380);
	app.add_option("--http-port", http_port, "also serve HTTP GET/PUT/DELETE /kv/<key> on this port (0: any; "
						  "-1: off)")
		->capture_default_str();
	app.add_option("--max-key", cfg.max_key, "longest key accepted, bytes")->check(CLI::Range(1u, 2048u))
		->capture_default_str();
	app.add_option("--max-value", max_value, "largest value accepted, e.g. 16M")->capture_default_str();
	auto* pack_opt = app.add_option("--pack-small", cfg.pack_small,
		       "values up to this many bytes are copied once into packed buffers instead of pinning a "
		       "received buffer each (0: never; default 512, half a buffer on the uring transport)")
		->capture_default_str();
	app.add_option("--requirepass", cfg.requirepass,
		       "password of the `default` user: clients must AUTH (or HELLO ... AUTH) first");
	app.add_option("--reserve", cfg.reserve, "free buffers kept for receiving (writes refused below; 0: auto)");
	app.set_version_flag("--version", std::string("daxnet-kv ") + daxnet::svc::kVersion);
	CLI11_PARSE(app, argc, argv);

	auto mv = daxnet::svc::parse_size(max_value);
	if (!mv) {
		fmt::print(stderr, "daxnet-kv: --max-value: {}\n", mv.error().message);
		return 2;
	}
	cfg.max_value = *mv;
	if (opt.threads != 1) {
		fmt::print(stderr, "daxnet-kv: --threads {}: the store is single-threaded in this version; use --threads 1\n",
			   opt.threads);
		return 2;
	}
	daxnet::svc::install_stop_signals();

	auto st = daxnet::svc::open_store_stack(opt, "daxnet-kv");
	if (!st)
		return 1;
	const auto& view = st->pool.view();
	if (cfg.max_key > view.buffer_size())
		cfg.max_key = view.buffer_size();
	auto& alloc = *st->alloc;
	daxnet::pmem::KvStore& kv = *st->kv;
	daxnet::Port& port = *st->port;
	std::vector<daxnet::svc::Listener> listeners;
	int resp_port = 0, actual_http = 0;
	auto lr = daxnet::listen_tcp(opt.bind, static_cast<std::uint16_t>(opt.port));
	if (!lr) {
		fmt::print(stderr, "daxnet-kv: {}\n", lr.error().message);
		return 1;
	}
	daxnet::UniqueFd resp_fd = std::move(*lr);
	resp_port = daxnet::local_port(resp_fd.get());
	daxnet::UniqueFd http_fd;
	listeners.push_back({resp_fd.get(), daxnet::svc::Proto::resp});
	if (http_port >= 0) {
		auto lh = daxnet::listen_tcp(opt.bind, static_cast<std::uint16_t>(http_port));
		if (!lh) {
			fmt::print(stderr, "daxnet-kv: {}\n", lh.error().message);
			return 1;
		}
		http_fd = std::move(*lh);
		actual_http = daxnet::local_port(http_fd.get());
		listeners.push_back({http_fd.get(), daxnet::svc::Proto::http});
	}
	cfg.transport_name = std::string(daxnet::to_string(port.transport()));
	// uring receives every message into a buffer of its own: unless told
	// otherwise, values up to half a buffer are packed there (a 1 KiB SET
	// sent alone pinned a whole 4 KiB buffer: 4.2 pool bytes per byte).
	if (pack_opt->count() == 0 && port.transport() == daxnet::TransportKind::uring)
		cfg.pack_small = view.buffer_size() / 2;
	cfg.pool_path = std::filesystem::absolute(opt.pool).lexically_normal().string();
	cfg.port = resp_port;
	cfg.bind = opt.bind;

	daxnet::svc::ServerOptions so;
	so.idle_timeout_s = opt.timeout;
	so.resp.max_bulk = cfg.max_value;
	so.resp.max_request = std::max<std::uint64_t>(cfg.max_value * 2, 1u << 20);
	so.http.max_body = cfg.max_value;
	if (daxnet::Status ls = daxnet::svc::apply_client_limits(opt, view, &alloc, so); !ls) {
		fmt::print(stderr, "daxnet-kv: {}\n", ls.error().message);
		return 2;
	}
	daxnet::kv::KvService svc(kv, view, alloc, cfg);
	daxnet::svc::Server server(port, svc, std::move(listeners), so);

	std::string http_addr = http_port >= 0 ? fmt::format(" http={}:{}", opt.bind, actual_http) : "";
	fmt::print("daxnet-kv {}: transport={} {} resp={}:{}{} threads=1 keys={} recovered_log_entries={} "
		   "ckpt_entries={}\n",
		   daxnet::svc::kVersion, cfg.transport_name, daxnet::svc::describe_pool(st->pool, st->created), opt.bind,
		   resp_port, http_addr, kv.dbsize(), st->report.log_entries, st->report.ckpt_entries);
	std::fflush(stdout);
	daxnet::svc::notify_supervisor("READY=1\nSTATUS=serving");  // systemd Type=notify

	const int rc = server.run();
	daxnet::svc::notify_supervisor("STOPPING=1");
	const auto& pc = view.domain().counters();
	fmt::print("daxnet-kv: stopping ({}): {} requests, {} writes, {} fences\n",
		   daxnet::svc::stop_signal() ? strsignal(daxnet::svc::stop_signal()) : "error",
		   server.counters().requests, svc.writes(), pc.drains);
	return rc == 0 ? 0 : 1;
}
