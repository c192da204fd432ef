// SPDX-License-Identifier: BSD-2-Clause
//
// daxnet-kv as a replication master: SYNC / PSYNC send a snapshot in the
// RDB format (version 10, string keys only: all daxnet-kv stores) and then
// the stream of write commands, as Redis does to its replicas. Writes are
// propagated by their effect (relative expiries as absolute PXAT /
// PEXPIREAT, GETDEL as DEL, INCRBYFLOAT as SET KEEPTTL, ...), a command (or
// an EXEC) with several effects as MULTI ... EXEC, with a SELECT whenever
// the database changes; keys that expire are propagated as UNLINK (DEL with
// `lazyfree-lazy-expire no`). Nothing is kept for partial resynchronisation:
// PSYNC always answers FULLRESYNC.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "daxnet/proto/resp.h"
#include "coll.h"
#include "kv.h"

namespace daxnet::kv {

namespace resp = daxnet::proto::resp;

namespace {

// CRC-64/Jones (reflected, polynomial 0xad93d23594c935a9, initial value
// 0, no final xor): the checksum of RDB files and DUMP payloads.
struct Crc64Table {
	std::array<std::uint64_t, 256> t{};
	constexpr Crc64Table()
	{
		constexpr std::uint64_t kReflected = 0x95ac9329ac4bc9b5ull;  // bit-reversed polynomial
		for (std::uint64_t i = 0; i < 256; ++i) {
			std::uint64_t c = i;
			for (int b = 0; b < 8; ++b)
				c = (c & 1) ? (c >> 1) ^ kReflected : c >> 1;
			t[i] = c;
		}
	}
};
constexpr Crc64Table kCrc64{};

void put_len(std::string& out, std::uint64_t n)
{
	if (n < 64) {
		out.push_back(static_cast<char>(n));
	} else if (n < 16384) {
		out.push_back(static_cast<char>(0x40 | (n >> 8)));
		out.push_back(static_cast<char>(n & 0xff));
	} else if (n <= UINT32_MAX) {
		out.push_back(static_cast<char>(0x80));
		for (int s = 24; s >= 0; s -= 8)
			out.push_back(static_cast<char>((n >> s) & 0xff));
	} else {
		out.push_back(static_cast<char>(0x81));
		for (int s = 56; s >= 0; s -= 8)
			out.push_back(static_cast<char>((n >> s) & 0xff));
	}
}

void put_str(std::string& out, std::string_view s)
{
	put_len(out, s.size());
	out.append(s);
}

void put_le64(std::string& out, std::uint64_t v)
{
	for (int i = 0; i < 8; ++i)
		out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void put_aux(std::string& out, std::string_view k, std::string_view v)
{
	out.push_back(static_cast<char>(0xfa));
	put_str(out, k);
	put_str(out, v);
}

void append_command(std::string& out, std::span<const std::string> argv)
{
	fmt::format_to(std::back_inserter(out), "*{}\r\n", argv.size());
	for (const std::string& a : argv)
		fmt::format_to(std::back_inserter(out), "${}\r\n{}\r\n", a.size(), a);
}

std::string user_key_of(std::string_view stored)
{
	if (stored.size() >= 3 && stored[0] == '\xff' && stored[1] == '\xfe' &&
	    static_cast<unsigned char>(stored[2]) < kDatabases)
		return std::string(stored.substr(3));
	return std::string(stored);
}

}  // namespace

std::uint64_t crc64_jones(std::uint64_t crc, std::string_view data) noexcept
{
	for (unsigned char ch : data)
		crc = kCrc64.t[(crc ^ ch) & 0xff] ^ (crc >> 8);
	return crc;
}

std::string KvService::rdb_snapshot()
{
	std::string out = "REDIS0010";
	put_aux(out, "redis-ver", "7.0.15");
	put_aux(out, "redis-bits", "64");
	put_aux(out, "ctime", std::to_string(now_ms() / 1000));
	put_aux(out, "used-mem", std::to_string((alloc_.count() - alloc_.free_count()) * std::uint64_t{pool_.buffer_size()}));
	put_aux(out, "repl-stream-db", "0");
	put_aux(out, "repl-id", repl_id_);
	put_aux(out, "repl-offset", std::to_string(repl_offset_));
	put_aux(out, "aof-base", "0");
	const std::uint64_t now = daxnet::pmem::realtime_ns();
	struct Key {
		std::string_view stored;
		ValueRef v;
	};
	std::vector<Key> by_db[kDatabases];
	kv_.for_each([&](std::string_view k, const ValueRef& v) {
		const int p = db_of(k);
		if (p < 0 || (v.expiry_ns != 0 && v.expiry_ns <= now))
			return;
		by_db[logical(p)].push_back({k, v});
	});
	for (int db = 0; db < kDatabases; ++db) {
		if (by_db[db].empty())
			continue;
		out.push_back(static_cast<char>(0xfe));  // SELECTDB
		put_len(out, static_cast<std::uint64_t>(db));
		std::uint64_t expires = 0;
		for (const Key& k : by_db[db])
			expires += k.v.expiry_ns != 0;
		out.push_back(static_cast<char>(0xfb));  // RESIZEDB
		put_len(out, by_db[db].size());
		put_len(out, expires);
		for (const Key& k : by_db[db]) {
			std::uint8_t t = 0;
			std::vector<std::string> items;
			if (k.v.typed && !coll::decode(value_bytes(pool_, k.v), t, items))
				continue;  // not a collection this version knows: left out
			if (k.v.expiry_ns) {
				out.push_back(static_cast<char>(0xfc));  // EXPIRETIME_MS
				put_le64(out, k.v.expiry_ns / 1000000);
			}
			if (k.v.typed) {
				// a list as RDB_TYPE_LIST (1), a set as RDB_TYPE_SET (2), a
				// hash as RDB_TYPE_HASH (4; its length in fields, then field,
				// value, ...): the plain forms every Redis loads
				out.push_back(static_cast<char>(t == coll::kList ? 1 : t == coll::kSet ? 2 : 4));
				put_str(out, user_key_of(k.stored));
				put_len(out, t == coll::kHash ? items.size() / 2 : items.size());
				for (const std::string& it : items)
					put_str(out, it);
				continue;
			}
			out.push_back('\0');  // string
			put_str(out, user_key_of(k.stored));
			put_len(out, k.v.size);
			for (const Slice& s : k.v.slices) {
				auto b = daxnet::pmem::slice_bytes(pool_, s);
				out.append(reinterpret_cast<const char*>(b.data()), b.size());
			}
		}
	}
	out.push_back(static_cast<char>(0xff));  // EOF
	put_le64(out, crc64_jones(0, out));
	return out;
}

void KvService::cmd_sync(Ctx& x)
{
	Client& cl = x.cl;
	if (cl.replica)
		return;
	if (ieq(x.arg(0), "psync")) {
		if (x.argc() != 3) {
			resp::wrong_arity(x.o, "psync");
			return;
		}
		// no backlog: always a full resynchronisation
		x.o.append(fmt::format("+FULLRESYNC {} {}\r\n", repl_id_, repl_offset_));
	}
	const std::string rdb = rdb_snapshot();
	x.o.append(fmt::format("${}\r\n", rdb.size()));
	x.o.append(rdb);  // no CRLF after the payload, as Redis sends it
	cl.replica = true;
	cl.repl_ack = repl_offset_;
	replicas_.push_back(cl.id);
	repl_db_ = -1;  // the stream this replica sees starts with a SELECT
	last_repl_ping_ns_ = mono_ns();
}

void KvService::cmd_replconf(Ctx& x)
{
	if (x.argc() % 2 == 0) {
		resp::error(x.o, "ERR syntax error");
		return;
	}
	for (std::size_t i = 1; i < x.argc(); i += 2) {
		const std::string_view o = x.arg(i);
		if (ieq(o, "ack") || ieq(o, "getack"))
			return;  // never answered
		if (!ieq(o, "listening-port") && !ieq(o, "ip-address") && !ieq(o, "capa") && !ieq(o, "rdb-only") &&
		    !ieq(o, "rdb-filter-only")) {
			resp::error(x.o, fmt::format("ERR Unrecognized REPLCONF option: {}", o.substr(0, 128)));
			return;
		}
		if (ieq(o, "listening-port")) {
			std::int64_t p = 0;
			if (parse_i64(x.arg(i + 1), p))
				x.cl.repl_port = static_cast<int>(p);
		}
	}
	resp::ok(x.o);
}

void KvService::cmd_replicaof(Ctx& x)
{
	// daxnet-kv is a master only: NO ONE is what it already is
	if (ieq(x.arg(1), "no") && ieq(x.arg(2), "one")) {
		resp::ok(x.o);
		return;
	}
	resp::error(x.o, "ERR daxnet: this server cannot become a replica (it is a replication master only)");
}

void KvService::replica_input(Ctx& x)
{
	// a replica's requests get no reply (it reads the stream); it sends
	// REPLCONF ACK <offset> and PING
	if (x.argc() >= 3 && ieq(x.arg(0), "replconf") && ieq(x.arg(1), "ack")) {
		std::int64_t off = 0;
		if (parse_i64(x.arg(2), off) && off >= 0)
			x.cl.repl_ack = static_cast<std::uint64_t>(off);
	}
}

void KvService::propagate(int db, std::vector<std::string> argv)
{
	if (replicas_.empty())
		return;
	prop_.push_back({db, std::move(argv)});
}

void KvService::propagate_as(Ctx& x, std::vector<std::string> argv)
{
	prop_custom_ = true;
	propagate(x.cl.db, std::move(argv));
}

void KvService::on_expired(void* ctx, std::string_view stored) noexcept
{
	auto* self = static_cast<KvService*>(ctx);
	if (self->replicas_.empty())
		return;
	const int p = db_of(stored);
	if (p < 0)
		return;
	try {
		std::vector<std::string> argv{self->lazy_expire_unlink_ ? "UNLINK" : "DEL", user_key_of(stored)};
		// sent on its own, ahead of the command that found the key expired
		std::vector<Effect> one;
		one.push_back({self->logical(p), std::move(argv)});
		self->send_unit(one);
	} catch (const std::bad_alloc&) {
		// the replica keeps a key that is expired there too
	}
}

void KvService::send_unit(std::vector<Effect>& unit)
{
	if (unit.empty() || replicas_.empty()) {
		unit.clear();
		return;
	}
	std::string out;
	const bool wrap = unit.size() > 1;
	static const std::string kMulti[] = {"MULTI"}, kExec[] = {"EXEC"};
	if (wrap)
		append_command(out, kMulti);
	for (const Effect& e : unit) {
		if (e.db != repl_db_) {
			const std::string sel[] = {"SELECT", std::to_string(e.db)};
			append_command(out, sel);
			repl_db_ = e.db;
		}
		append_command(out, e.argv);
	}
	if (wrap)
		append_command(out, kExec);
	unit.clear();
	send_replicas(out);
}

void KvService::send_replicas(std::string_view bytes)
{
	repl_offset_ += bytes.size();
	if (!srv_)
		return;
	for (std::uint64_t id : replicas_) {
		auto it = clients_.find(id);
		if (it == clients_.end())
			continue;
		if (Conn* c = srv_->conn(it->second->conn)) {
			c->tx.bytes().append(bytes);
			srv_->wake(*c);
		}
	}
}

void KvService::flush_propagation()
{
	send_unit(prop_);
}

void KvService::repl_tick()
{
	std::uint64_t period_s = 10;
	if (auto it = tuning_.find("repl-ping-replica-period"); it != tuning_.end()) {
		std::int64_t v = 0;
		if (parse_i64(it->second, v) && v > 0)
			period_s = static_cast<std::uint64_t>(v);
	}
	const std::uint64_t now = mono_ns();
	if (now - last_repl_ping_ns_ < period_s * 1000000000ull)
		return;
	last_repl_ping_ns_ = now;
	static const std::string kPing[] = {"PING"};
	std::string out;
	append_command(out, kPing);
	send_replicas(out);
}

void KvService::drop_replica(std::uint64_t id)
{
	std::erase(replicas_, id);
}

}  // namespace daxnet::kv
