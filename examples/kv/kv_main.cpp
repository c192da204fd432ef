// SPDX-License-Identifier: BSD-2-Clause
//
// daxnet-kv: a persistent key-value server speaking RESP2 (redis-cli and
// redis-benchmark work unmodified) and, on a second port, a pKVS-style HTTP
// interface (GET/PUT/DELETE /kv/<key>).
//
// Values stay in the pool buffers they were received in: the KV store logs
// (buffer, offset, length) references in the WAL and indexes them in DRAM.
// Every write of one event-loop pass, over all connections, is made durable
// with one commit (one fence) before any reply of that pass is sent.
//
// Limits: keys up to --max-key bytes (default 1024), values up to
// --max-value (default 16 MiB). Writes are refused with
// "-ERR daxnet: pool full ..." when fewer than --reserve buffers are free,
// so that reads (and the transport) keep working.
#include <fmt/format.h>

#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "daxnet/pmem/kv.h"
#include "daxnet/svc/options.h"
#include "daxnet/svc/server.h"

namespace {

using daxnet::pmem::KvStore;
using daxnet::pmem::ScratchArena;
using daxnet::pmem::ValueRef;
using daxnet::proto::StreamRange;
using daxnet::svc::Conn;
using daxnet::svc::Server;
namespace resp = daxnet::proto::resp;
using Slice = daxnet::pmem::Slice;

constexpr std::uint64_t kInlineValueMax = 1024;  ///< larger values go out zero-copy

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
	if (s.empty() || s.size() > 20)
		return false;
	auto r = std::from_chars(s.data(), s.data() + s.size(), v);
	return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

struct KvConfig {
	std::uint32_t max_key = 1024;
	std::uint64_t max_value = 16u << 20;
	std::uint32_t reserve = 0;  ///< free buffers kept for the transport; 0: auto
	std::uint32_t pack_small = 512;  ///< values up to this size are packed (copied once)
	std::string transport_name;
};

class KvService final : public daxnet::svc::Service {
public:
	KvService(KvStore& kv, const daxnet::pmem::PoolView& pool, daxnet::pmem::BufferAllocator& alloc,
		  const KvConfig& cfg)
	    : kv_(kv), pool_(pool), alloc_(alloc), arena_(pool, alloc), cfg_(cfg)
	{
		values_.reserve(64);
		if (cfg_.reserve == 0)
			cfg_.reserve = std::max<std::uint32_t>(32, pool.buffer_count() / 16);
	}

	void on_resp(Server& srv, Conn& c) override;
	void on_http(Server& srv, Conn& c) override;
	void end_of_pass(Server& srv) override;

	std::uint64_t writes() const noexcept { return writes_; }

private:
	// --- helpers
	std::string_view arg(Conn& c, std::size_t i) { return c.view(c.resp.args()[i], i); }
	/// True when fewer than `reserve` buffers are free, after trying to
	/// reclaim the buffers of superseded values with a checkpoint (at most
	/// once per 1024 log records, so a pool of live data does not checkpoint
	/// on every request).
	bool pool_full() noexcept
	{
		if (alloc_.free_count() >= cfg_.reserve)
			return false;
		if (kv_.wal().next_seq() >= last_reclaim_ + 1024) {
			last_reclaim_ = kv_.wal().next_seq();
			++reclaims_;
			(void)kv_.checkpoint();
		}
		return alloc_.free_count() < cfg_.reserve;
	}
	std::string pool_full_msg() const
	{
		return fmt::format("ERR daxnet: pool full ({} of {} buffers free, {} reserved): write refused, "
				   "reads still served",
				   alloc_.free_count(), alloc_.count(), cfg_.reserve);
	}
	/// Key bytes as a pool slice: in place, or copied once into the arena
	/// when they straddle two received slices (or need decoding).
	int key_slice(Conn& c, StreamRange r, Slice& out);
	int bytes_slice(std::string_view bytes, Slice& out);
	void value_slices(Conn& c, StreamRange r);
	/// Key and value slices for a SET: zero-copy, or packed when small.
	int kv_slices(Conn& c, StreamRange key, StreamRange value, Slice& k);
	/// Stages a SET; returns 0 or the RESP error to send.
	const char* stage_set(Conn& c, const Slice& key, std::uint64_t expiry, std::string& err);
	void reply_value(Server& srv, Conn& c, const ValueRef& v);
	bool check_key(Conn& c, StreamRange r);
	void info(Server& srv, Conn& c);

	void cmd_set(Server& srv, Conn& c);
	void cmd_incr(Server& srv, Conn& c, std::int64_t delta, bool by);
	void cmd_config(Server& srv, Conn& c);
	void cmd_command(Server& srv, Conn& c);

	KvStore& kv_;
	daxnet::pmem::PoolView pool_;
	daxnet::pmem::BufferAllocator& alloc_;
	ScratchArena arena_;
	KvConfig cfg_;
	std::vector<Slice> values_;
	std::string scratch_;
	bool staged_ = false;
	std::uint64_t writes_ = 0;
	std::uint64_t commits_ = 0;
	std::uint64_t refused_ = 0;
	std::uint64_t last_reclaim_ = 0;
	std::uint64_t reclaims_ = 0;
	std::uint64_t packed_ = 0;  ///< bytes of small keys+values copied into packed buffers
};

int KvService::bytes_slice(std::string_view bytes, Slice& out)
{
	if (bytes.empty()) {
		out = Slice{};
		return 0;
	}
	return arena_.write(std::as_bytes(std::span<const char>(bytes.data(), bytes.size())), out);
}

int KvService::key_slice(Conn& c, StreamRange r, Slice& out)
{
	if (r.len == 0) {
		out = Slice{};
		return 0;
	}
	std::uint32_t buf = 0, off = 0;
	if (daxnet::svc::single_slice(c.chain, r, buf, off)) {
		out = Slice{buf, off, static_cast<std::uint32_t>(r.len)};
		return 0;
	}
	std::vector<char> tmp;
	std::string_view v = c.chain.view(r, tmp);
	return bytes_slice(v, out);
}

int KvService::kv_slices(Conn& c, StreamRange key, StreamRange value, Slice& k)
{
	if (value.len > cfg_.pack_small || value.len == 0) {
		// zero-copy: key and value stay in the received buffers
		if (key_slice(c, key, k) < 0)
			return -ENOSPC;
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

void KvService::value_slices(Conn& c, StreamRange r)
{
	values_.clear();
	c.chain.pieces(r, [&](const daxnet::proto::Piece& p) { values_.push_back(Slice{p.buf(), p.buf_off(), p.len}); });
}

bool KvService::check_key(Conn& c, StreamRange r)
{
	if (r.len <= cfg_.max_key)
		return true;
	resp::error(c.tx.bytes(), fmt::format("ERR daxnet: key too long ({} bytes, limit {})", r.len, cfg_.max_key));
	return false;
}

void KvService::reply_value(Server& srv, Conn& c, const ValueRef& v)
{
	resp::bulk_header(c.tx.bytes(), v.size);
	if (v.size <= kInlineValueMax) {
		for (const Slice& s : v.slices)
			c.tx.bytes().append(daxnet::pmem::slice_bytes(pool_, s));
	} else {
		for (const Slice& s : v.slices)
			c.tx.append_ref(srv.source(), s.buf, s.off, s.len);
	}
	resp::crlf(c.tx.bytes());
}

const char* KvService::stage_set(Conn&, const Slice& key, std::uint64_t expiry, std::string& err)
{
	int rc = kv_.set(key, values_, expiry);
	if (rc == -ENOSPC) {
		// log ring full: a checkpoint frees it (and commits what is staged)
		if (kv_.checkpoint() == 0)
			rc = kv_.set(key, values_, expiry);
	}
	if (rc == 0) {
		staged_ = true;
		++writes_;
		return nullptr;
	}
	++refused_;
	if (rc == -ENOSPC)
		err = "ERR daxnet: pool full (log and checkpoint areas exhausted): write refused, reads still served";
	else if (rc == -EMSGSIZE)
		err = "ERR daxnet: value too large for the log of this pool";
	else
		err = fmt::format("ERR daxnet: write failed ({})", std::strerror(-rc));
	return err.c_str();
}

void KvService::cmd_set(Server& srv, Conn& c)
{
	auto args = c.resp.args();
	bool nx = false, xx = false, keepttl = false, get = false;
	std::uint64_t expiry = 0;
	for (std::size_t i = 3; i < args.size(); ++i) {
		std::string_view o = arg(c, i);
		const bool has_next = i + 1 < args.size();
		if (ieq(o, "nx") && !xx) {
			nx = true;
		} else if (ieq(o, "xx") && !nx) {
			xx = true;
		} else if (ieq(o, "keepttl") && expiry == 0) {
			keepttl = true;
		} else if (ieq(o, "get")) {
			get = true;
		} else if ((ieq(o, "ex") || ieq(o, "px") || ieq(o, "exat") || ieq(o, "pxat")) && has_next && !keepttl &&
			   expiry == 0) {
			std::int64_t n = 0;
			if (!parse_i64(arg(c, i + 1), n)) {
				resp::error(c.tx.bytes(), "ERR value is not an integer or out of range");
				return;
			}
			if (n <= 0 || n > INT64_MAX / 1000000000) {
				resp::error(c.tx.bytes(), "ERR invalid expire time in 'set' command");
				return;
			}
			const auto un = static_cast<std::uint64_t>(n);
			const std::uint64_t now = daxnet::pmem::realtime_ns();
			if (ieq(o, "ex"))
				expiry = now + un * 1000000000ull;
			else if (ieq(o, "px"))
				expiry = now + un * 1000000ull;
			else if (ieq(o, "exat"))
				expiry = un * 1000000000ull;
			else
				expiry = un * 1000000ull;
			++i;
		} else {
			resp::error(c.tx.bytes(), "ERR syntax error");
			return;
		}
	}
	if (!check_key(c, args[1]))
		return;
	std::string_view key = arg(c, 1);
	ValueRef old{};
	const bool exists = kv_.get(key, old) == 1;
	if ((nx && exists) || (xx && !exists)) {
		if (get && exists)
			reply_value(srv, c, old);
		else
			resp::nil(c.tx.bytes());
		return;
	}
	if (pool_full()) {
		++refused_;
		resp::error(c.tx.bytes(), pool_full_msg());
		return;
	}
	if (keepttl && exists)
		expiry = old.expiry_ns;
	if (get) {
		// reply with the old value before it is replaced (copied now:
		// its slices are invalid after the set)
		if (exists) {
			resp::bulk_header(c.tx.bytes(), old.size);
			for (const Slice& s : old.slices)
				c.tx.bytes().append(daxnet::pmem::slice_bytes(pool_, s));
			resp::crlf(c.tx.bytes());
		} else {
			resp::nil(c.tx.bytes());
		}
	}
	Slice k;
	if (kv_slices(c, args[1], args[2], k) < 0) {
		++refused_;
		resp::error(c.tx.bytes(), pool_full_msg());
		return;
	}
	std::string err;
	if (const char* e = stage_set(c, k, expiry, err)) {
		if (!get)
			resp::error(c.tx.bytes(), e);
		return;
	}
	if (!get)
		resp::ok(c.tx.bytes());
}

void KvService::cmd_incr(Server&, Conn& c, std::int64_t delta, bool by)
{
	auto args = c.resp.args();
	if (by && !parse_i64(arg(c, 2), delta)) {
		resp::error(c.tx.bytes(), "ERR value is not an integer or out of range");
		return;
	}
	if (!check_key(c, args[1]))
		return;
	std::string_view key = arg(c, 1);
	ValueRef old{};
	std::int64_t cur = 0;
	std::uint64_t expiry = 0;
	if (kv_.get(key, old) == 1) {
		char tmp[24];
		if (old.size > 20) {
			resp::error(c.tx.bytes(), "ERR value is not an integer or out of range");
			return;
		}
		std::size_t n = 0;
		for (const Slice& s : old.slices) {
			auto b = daxnet::pmem::slice_bytes(pool_, s);
			std::memcpy(tmp + n, b.data(), b.size());
			n += b.size();
		}
		if (!parse_i64(std::string_view(tmp, n), cur)) {
			resp::error(c.tx.bytes(), "ERR value is not an integer or out of range");
			return;
		}
		expiry = old.expiry_ns;
	}
	if ((delta > 0 && cur > INT64_MAX - delta) || (delta < 0 && cur < INT64_MIN - delta)) {
		resp::error(c.tx.bytes(), "ERR increment or decrement would overflow");
		return;
	}
	cur += delta;
	if (pool_full()) {
		++refused_;
		resp::error(c.tx.bytes(), pool_full_msg());
		return;
	}
	char num[24];
	auto r = std::to_chars(num, num + sizeof num, cur);
	Slice k, v;
	if (key_slice(c, args[1], k) < 0 ||
	    bytes_slice(std::string_view(num, static_cast<std::size_t>(r.ptr - num)), v) < 0) {
		++refused_;
		resp::error(c.tx.bytes(), pool_full_msg());
		return;
	}
	values_.assign(1, v);
	std::string err;
	if (const char* e = stage_set(c, k, expiry, err)) {
		resp::error(c.tx.bytes(), e);
		return;
	}
	resp::integer(c.tx.bytes(), cur);
}

void KvService::cmd_config(Server&, Conn& c)
{
	auto args = c.resp.args();
	std::string_view sub = arg(c, 1);
	if (ieq(sub, "get") && args.size() == 3) {
		std::string_view p = arg(c, 2);
		// What redis-benchmark asks at start; daxnet is durable per write.
		if (ieq(p, "save")) {
			resp::array(c.tx.bytes(), 2);
			resp::bulk(c.tx.bytes(), "save");
			resp::bulk(c.tx.bytes(), "");
		} else if (ieq(p, "appendonly")) {
			resp::array(c.tx.bytes(), 2);
			resp::bulk(c.tx.bytes(), "appendonly");
			resp::bulk(c.tx.bytes(), "yes");
		} else if (ieq(p, "appendfsync")) {
			resp::array(c.tx.bytes(), 2);
			resp::bulk(c.tx.bytes(), "appendfsync");
			resp::bulk(c.tx.bytes(), "always");
		} else if (ieq(p, "databases")) {
			resp::array(c.tx.bytes(), 2);
			resp::bulk(c.tx.bytes(), "databases");
			resp::bulk(c.tx.bytes(), "1");
		} else {
			resp::array(c.tx.bytes(), 0);
		}
	} else if (ieq(sub, "resetstat") && args.size() == 2) {
		resp::ok(c.tx.bytes());
	} else if (ieq(sub, "set")) {
		resp::error(c.tx.bytes(), "ERR daxnet: CONFIG SET is not supported");
	} else {
		resp::error(c.tx.bytes(), fmt::format("ERR unknown subcommand or wrong number of arguments for '{}'. "
						      "Try CONFIG HELP.",
						      sub.substr(0, 64)));
	}
}

struct CmdInfo {
	const char* name;
	int arity;
	bool write;
};

constexpr CmdInfo kCommands[] = {
	{"ping", -1, false},   {"echo", 2, false},     {"set", -3, true},	 {"get", 2, false},
	{"del", -2, true},     {"exists", -2, false},  {"mget", -2, false},	 {"mset", -3, true},
	{"incr", 2, true},     {"decr", 2, true},      {"incrby", 3, true},	 {"decrby", 3, true},
	{"dbsize", 1, false},  {"flushall", -1, true}, {"flushdb", -1, true},	 {"info", -1, false},
	{"command", -1, false}, {"config", -2, false}, {"quit", -1, false},	 {"select", 2, false},
	{"ttl", 2, false},     {"pttl", 2, false},     {"strlen", 2, false},
};

void KvService::cmd_command(Server&, Conn& c)
{
	auto args = c.resp.args();
	auto& o = c.tx.bytes();
	if (args.size() >= 2 && ieq(arg(c, 1), "count")) {
		resp::integer(o, static_cast<std::int64_t>(std::size(kCommands)));
		return;
	}
	if (args.size() >= 2 && ieq(arg(c, 1), "docs")) {
		resp::array(o, 0);  // no docs: redis-cli then just offers no hints
		return;
	}
	if (args.size() >= 2) {
		resp::error(o, "ERR daxnet: only COMMAND, COMMAND COUNT and COMMAND DOCS are supported");
		return;
	}
	resp::array(o, std::size(kCommands));
	for (const CmdInfo& ci : kCommands) {
		// name, arity, flags, first key, last key, step
		const bool keyed = ci.arity != 1 && std::string_view(ci.name) != "ping" &&
				   std::string_view(ci.name) != "echo" && std::string_view(ci.name) != "info" &&
				   std::string_view(ci.name) != "command" && std::string_view(ci.name) != "config" &&
				   std::string_view(ci.name) != "quit" && std::string_view(ci.name) != "select" &&
				   std::string_view(ci.name) != "flushall" && std::string_view(ci.name) != "flushdb";
		resp::array(o, 6);
		resp::bulk(o, ci.name);
		resp::integer(o, ci.arity);
		resp::array(o, 1);
		resp::simple(o, ci.write ? "write" : "readonly");
		resp::integer(o, keyed ? 1 : 0);
		resp::integer(o, keyed ? (ci.arity < 0 ? -1 : 1) : 0);
		resp::integer(o, keyed ? 1 : 0);
	}
}

void KvService::info(Server& srv, Conn& c)
{
	const auto& sc = srv.counters();
	const auto rc = srv.port().counters();
	const auto& pc = pool_.domain().counters();
	const auto& ws = kv_.wal().stats();
	const std::uint64_t syscalls = rc.syscalls + sc.waits;
	const double req = sc.requests ? static_cast<double>(sc.requests) : 1.0;
	const double wr = writes_ ? static_cast<double>(writes_) : 1.0;
	std::string s = fmt::format(
		"# Server\r\nredis_version:7.0.0\r\nredis_mode:standalone\r\ndaxnet_version:{}\r\n"
		"daxnet_transport:{}\r\ndaxnet_granularity:{}\r\ntcp_port:0\r\n"
		"# Clients\r\nconnected_clients:{}\r\n"
		"# Persistence\r\naof_enabled:1\r\ndaxnet_wal_used_records:{}\r\ndaxnet_wal_slots:{}\r\n"
		"daxnet_checkpoints:{}\r\ndaxnet_checkpoint_pending:{}\r\ndaxnet_checkpoints_stepped:{}\r\n"
		"daxnet_checkpoints_finished_early:{}\r\ndaxnet_checkpoints_restarted:{}\r\n"
		"daxnet_checkpoint_fallbacks:{}\r\n"
		"# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\n"
		"daxnet_requests:{}\r\ndaxnet_writes:{}\r\ndaxnet_writes_refused:{}\r\ndaxnet_commits:{}\r\n"
		"daxnet_fences:{}\r\ndaxnet_flushes:{}\r\ndaxnet_flushed_bytes:{}\r\ndaxnet_msyncs:{}\r\n"
		"daxnet_fences_per_write:{:.4f}\r\ndaxnet_fences_per_request:{:.4f}\r\n"
		"daxnet_syscalls:{}\r\ndaxnet_syscalls_per_request:{:.4f}\r\ndaxnet_syncs:{}\r\ndaxnet_waits:{}\r\n"
		"daxnet_passes:{}\r\ndaxnet_rx_bytes:{}\r\ndaxnet_tx_bytes:{}\r\ndaxnet_cpu_copied_bytes:{}\r\n"
		"daxnet_rx_kept:{}\r\ndaxnet_tx_zerocopy_bytes:{}\r\ndaxnet_compacted_bytes:{}\r\n"
		"daxnet_protocol_errors:{}\r\ndaxnet_rx_ring_full:{}\r\ndaxnet_spare_empty:{}\r\n"
		"daxnet_pool_buffers:{}\r\ndaxnet_pool_buffers_free:{}\r\ndaxnet_packed_bytes:{}\r\n"
		"daxnet_reclaim_checkpoints:{}\r\n"
		"daxnet_zerocopy:{}\r\ndaxnet_rx_zc_bytes:{}\r\ndaxnet_tx_zc_bytes:{}\r\n"
		"# Keyspace\r\ndb0:keys={},expires=0,avg_ttl=0\r\n",
		daxnet::svc::kVersion, cfg_.transport_name, daxnet::pmem::to_string(pool_.domain().granularity()),
		sc.open_connections, kv_.wal().used(), kv_.wal().nslots(), ws.checkpoints, kv_.checkpoint_pending() ? 1 : 0,
		kv_.checkpoint_stats().stepped, kv_.checkpoint_stats().finished, kv_.checkpoint_stats().restarted,
		kv_.checkpoint_stats().fallbacks, sc.connections, sc.requests,
		sc.requests, writes_, refused_, commits_, pc.drains, pc.flush_calls, pc.flushed_bytes, pc.msyncs,
		static_cast<double>(pc.drains) / wr, static_cast<double>(pc.drains) / req, syscalls,
		static_cast<double>(syscalls) / req, rc.syncs, sc.waits, sc.passes, rc.rx_bytes, rc.tx_bytes,
		rc.cpu_copied, sc.kept, sc.tx_zerocopy, sc.bytes_compacted, sc.protocol_errors, rc.rx_ring_full,
		rc.spare_empty, alloc_.count(), alloc_.free_count(), packed_, reclaims_,
		srv.port().zerocopy() ? 1 : 0, rc.rx_zc_bytes, rc.tx_zc_bytes, kv_.dbsize());
	resp::bulk(c.tx.bytes(), s);
}

void KvService::on_resp(Server& srv, Conn& c)
{
	auto args = c.resp.args();
	auto& o = c.tx.bytes();
	char name[16];
	std::string_view cmd = arg(c, 0);
	std::size_t n = 0;
	const CmdInfo* ci = nullptr;
	if (cmd.size() < sizeof name) {
		for (char ch : cmd)
			name[n++] = (ch >= 'A' && ch <= 'Z') ? static_cast<char>(ch - 'A' + 'a') : ch;
		const std::string_view lc(name, n);
		for (const CmdInfo& k : kCommands)
			if (lc == k.name) {
				ci = &k;
				break;
			}
	}
	if (!ci) {
		std::string_view shown[4];
		std::size_t ns = 0;
		for (std::size_t i = 1; i < args.size() && ns < 4; ++i)
			shown[ns++] = arg(c, i);
		resp::unknown_command(o, cmd, std::span<const std::string_view>(shown, ns));
		return;
	}
	const auto argc = static_cast<int>(args.size());
	if ((ci->arity > 0 && argc != ci->arity) || (ci->arity < 0 && argc < -ci->arity)) {
		resp::wrong_arity(o, ci->name);
		return;
	}
	const std::string_view nm(ci->name);
	if (nm == "get") {
		if (!check_key(c, args[1]))
			return;
		ValueRef v{};
		if (kv_.get(arg(c, 1), v) == 1)
			reply_value(srv, c, v);
		else
			resp::nil(o);
	} else if (nm == "set") {
		cmd_set(srv, c);
	} else if (nm == "ping") {
		if (argc == 1)
			resp::simple(o, "PONG");
		else if (argc == 2)
			resp::bulk(o, arg(c, 1));
		else
			resp::wrong_arity(o, "ping");
	} else if (nm == "echo") {
		resp::bulk(o, arg(c, 1));
	} else if (nm == "del") {
		std::int64_t deleted = 0;
		for (std::size_t i = 1; i < args.size(); ++i) {
			if (args[i].len > cfg_.max_key)
				continue;  // cannot exist
			Slice k;
			if (!kv_.exists(arg(c, i)))
				continue;
			if (key_slice(c, args[i], k) < 0) {
				resp::error(o, pool_full_msg());
				return;
			}
			int rc = kv_.del(k);
			if (rc == -ENOSPC && kv_.checkpoint() == 0)
				rc = kv_.del(k);
			if (rc < 0) {
				resp::error(o, fmt::format("ERR daxnet: delete failed ({})", std::strerror(-rc)));
				return;
			}
			deleted += rc;
			staged_ = true;
			++writes_;
		}
		resp::integer(o, deleted);
	} else if (nm == "exists") {
		std::int64_t count = 0;
		for (std::size_t i = 1; i < args.size(); ++i)
			if (args[i].len <= cfg_.max_key && kv_.exists(arg(c, i)))
				++count;
		resp::integer(o, count);
	} else if (nm == "mget") {
		resp::array(o, args.size() - 1);
		for (std::size_t i = 1; i < args.size(); ++i) {
			ValueRef v{};
			if (args[i].len <= cfg_.max_key && kv_.get(arg(c, i), v) == 1)
				reply_value(srv, c, v);
			else
				resp::nil(o);
		}
	} else if (nm == "mset") {
		if (argc % 2 == 0) {
			resp::wrong_arity(o, "mset");
			return;
		}
		for (std::size_t i = 1; i < args.size(); i += 2)
			if (!check_key(c, args[i]))
				return;
		if (pool_full()) {
			++refused_;
			resp::error(o, pool_full_msg());
			return;
		}
		for (std::size_t i = 1; i < args.size(); i += 2) {
			Slice k;
			if (kv_slices(c, args[i], args[i + 1], k) < 0) {
				resp::error(o, pool_full_msg());
				return;
			}
			std::string err;
			if (const char* e = stage_set(c, k, 0, err)) {
				resp::error(o, e);
				return;
			}
		}
		resp::ok(o);
	} else if (nm == "incr") {
		cmd_incr(srv, c, 1, false);
	} else if (nm == "decr") {
		cmd_incr(srv, c, -1, false);
	} else if (nm == "incrby") {
		cmd_incr(srv, c, 0, true);
	} else if (nm == "decrby") {
		std::int64_t d = 0;
		if (!parse_i64(arg(c, 2), d) || d == INT64_MIN) {
			resp::error(o, "ERR value is not an integer or out of range");
			return;
		}
		// reuse incr with the negated delta
		if (!check_key(c, args[1]))
			return;
		cmd_incr(srv, c, -d, false);
	} else if (nm == "dbsize") {
		resp::integer(o, static_cast<std::int64_t>(kv_.dbsize()));
	} else if (nm == "flushall" || nm == "flushdb") {
		if (argc > 2 || (argc == 2 && !ieq(arg(c, 1), "sync") && !ieq(arg(c, 1), "async"))) {
			resp::error(o, "ERR syntax error");
			return;
		}
		int rc = kv_.flushall();
		if (rc == -ENOSPC && kv_.checkpoint() == 0)
			rc = kv_.flushall();
		if (rc < 0) {
			resp::error(o, fmt::format("ERR daxnet: flush failed ({})", std::strerror(-rc)));
			return;
		}
		staged_ = true;
		++writes_;
		resp::ok(o);
	} else if (nm == "info") {
		info(srv, c);
	} else if (nm == "command") {
		cmd_command(srv, c);
	} else if (nm == "config") {
		cmd_config(srv, c);
	} else if (nm == "quit") {
		resp::ok(o);
		c.closing = true;
	} else if (nm == "select") {
		std::int64_t db = -1;
		if (!parse_i64(arg(c, 1), db))
			resp::error(o, "ERR value is not an integer or out of range");
		else if (db != 0)
			resp::error(o, "ERR DB index is out of range");
		else
			resp::ok(o);
	} else if (nm == "ttl" || nm == "pttl") {
		ValueRef v{};
		if (args[1].len > cfg_.max_key || kv_.get(arg(c, 1), v) != 1) {
			resp::integer(o, -2);
		} else if (v.expiry_ns == 0) {
			resp::integer(o, -1);
		} else {
			const std::uint64_t now = daxnet::pmem::realtime_ns();
			const std::uint64_t left = v.expiry_ns > now ? v.expiry_ns - now : 0;
			resp::integer(o, static_cast<std::int64_t>(nm == "ttl" ? (left + 500000000) / 1000000000
										 : (left + 500000) / 1000000));
		}
	} else if (nm == "strlen") {
		ValueRef v{};
		resp::integer(o, args[1].len <= cfg_.max_key && kv_.get(arg(c, 1), v) == 1
					 ? static_cast<std::int64_t>(v.size)
					 : 0);
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
	if (path.substr(0, 4) != "/kv/" || path.size() == 4) {
		daxnet::proto::http_response(o, 404, "text/plain", "not found: use /kv/<key>\n", rq.keep_alive);
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
	if (key.size() > cfg_.max_key) {
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
		if (const char* e = stage_set(c, k, 0, err)) {
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
		int rc = encoded ? bytes_slice(key, k) : key_slice(c, key_range, k);
		if (rc == 0) {
			rc = kv_.del(k);
			if (rc == -ENOSPC && kv_.checkpoint() == 0)
				rc = kv_.del(k);
		}
		if (rc < 0) {
			daxnet::proto::http_response(o, 507, "text/plain", "delete failed\n", ka);
			return;
		}
		staged_ = true;
		++writes_;
		daxnet::proto::http_response(o, 200, "text/plain", "1\n", ka);
		return;
	}
	case HttpMethod::other:
		break;
	}
	daxnet::proto::http_response(o, 405, "text/plain", "method not allowed\n", ka, "Allow: GET, HEAD, PUT, POST, DELETE\r\n");
}

void KvService::end_of_pass(Server&)
{
	if (!staged_)
		return;
	staged_ = false;
	++commits_;
	const int rc = kv_.commit();  // one fence for the whole pass
	if (rc < 0)
		fmt::print(stderr, "daxnet-kv: checkpoint after commit failed: {} (the batch is durable)\n",
			   std::strerror(-rc));
	(void)pool_full();  // reclaim superseded values' buffers before the transport runs dry
}

}  // namespace

int main(int argc, char** argv)
{
	CLI::App app{"daxnet-kv: persistent key-value server (Redis protocol + HTTP) on a daxnet pool"};
	daxnet::svc::CommonOptions opt;
	KvConfig cfg;
	int http_port = -1;
	std::string max_value = "16M";
	daxnet::svc::add_common_options(app, opt, 6380);
	app.add_option("--http-port", http_port, "also serve HTTP GET/PUT/DELETE /kv/<key> on this port (0: any; "
						  "-1: off)")
		->capture_default_str();
	app.add_option("--max-key", cfg.max_key, "longest key accepted, bytes")->check(CLI::Range(1u, 2048u))
		->capture_default_str();
	app.add_option("--max-value", max_value, "largest value accepted, e.g. 16M")->capture_default_str();
	app.add_option("--pack-small", cfg.pack_small,
		       "values up to this many bytes are copied once into packed buffers instead of pinning a "
		       "received buffer each (0: never)")
		->capture_default_str();
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
	KvStore& kv = *st->kv;
	daxnet::Port& port = *st->port;
	std::vector<daxnet::svc::Listener> listeners;
	int resp_port = 0, actual_http = 0;
	auto lr = daxnet::svc::listen_tcp(opt.bind, opt.port, &resp_port);
	if (!lr) {
		fmt::print(stderr, "daxnet-kv: {}\n", lr.error().message);
		return 1;
	}
	daxnet::UniqueFd resp_fd = std::move(*lr);
	daxnet::UniqueFd http_fd;
	listeners.push_back({resp_fd.get(), daxnet::svc::Proto::resp});
	if (http_port >= 0) {
		auto lh = daxnet::svc::listen_tcp(opt.bind, http_port, &actual_http);
		if (!lh) {
			fmt::print(stderr, "daxnet-kv: {}\n", lh.error().message);
			return 1;
		}
		http_fd = std::move(*lh);
		listeners.push_back({http_fd.get(), daxnet::svc::Proto::http});
	}
	cfg.transport_name = std::string(daxnet::to_string(port.transport()));

	daxnet::svc::ServerOptions so;
	so.resp.max_bulk = cfg.max_value;
	so.resp.max_request = std::max<std::uint64_t>(cfg.max_value * 2, 1u << 20);
	so.http.max_body = cfg.max_value;
	KvService svc(kv, view, alloc, cfg);
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
