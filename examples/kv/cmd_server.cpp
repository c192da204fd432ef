// SPDX-License-Identifier: BSD-2-Clause
//
// Server commands: INFO, COMMAND, CONFIG and friends.
#include <sys/resource.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "daxnet/svc/options.h"
#include "coll.h"
#include "kv.h"

namespace daxnet::kv {

namespace resp = daxnet::proto::resp;

std::string KvService::info_text(Server& srv, std::span<const std::string_view> wanted)
{
	const daxnet::svc::InfoSelection sel(wanted);
	sample_rates(srv);
	return metrics(srv, &sel).info(sel);
}

daxnet::svc::Metrics KvService::metrics(Server& srv, const daxnet::svc::InfoSelection* tables) const
{
	using daxnet::svc::MetricType;
	const auto& pc = pool_.domain().counters();
	const auto& sc = srv.counters();
	const double req = sc.requests ? static_cast<double>(sc.requests) : 1.0;
	const double wr = writes_ ? static_cast<double>(writes_) : 1.0;
	daxnet::svc::Metrics m;
	m.label("service", "daxnet-kv")
		.label("version", daxnet::svc::kVersion)
		.label("transport", cfg_.transport_name)
		.label("granularity", std::string(daxnet::pmem::to_string(pool_.domain().granularity())))
		.label("pool", cfg_.pool_path);
	daxnet::svc::add_server_metrics(m, srv, pc, alloc_.count(), alloc_.free_count());
	daxnet::svc::add_store_metrics(m, kv_);
	core_.add_metrics(m);
	m.counter("writes", writes_, "Keys written or deleted.")
		.counter("writes_refused", refused_, "Writes refused (pool full, value too large).")
		.counter("atomic_undos", atomic_undos_,
			 "Multi-write commands, EXECs and scripts refused whole: their writes taken back.")
		.ratio("fences_per_write", static_cast<double>(pc.drains) / wr, "Fences per write.")
		.ratio("fences_per_request", static_cast<double>(pc.drains) / req, "Fences per request.")
		.counter("packed_bytes", packed_, "Bytes of small keys and values copied into packed buffers.")
		.gauge("keys", kv_.dbsize(), "Keys in the store (all databases, expired ones not yet dropped).");

	// INFO's Redis sections, with Redis's field names (clients read them:
	// redis-cli, redis-py, the Valkey test suite).
	const std::uint64_t now = daxnet::pmem::realtime_ns();
	const std::uint64_t used = (alloc_.count() - alloc_.free_count()) * std::uint64_t{pool_.buffer_size()};
	m.info_section("Server")
		.info_field("redis_version", "7.0.15")
		.info_field("redis_git_sha1", "00000000")
		.info_field("redis_git_dirty", "0")
		.info_field("redis_mode", "standalone")
		.info_field("os", "Linux")
		.info_field("arch_bits", "64")
		.info_field("multiplexing_api", "daxnet")
		.info_field("process_id", std::to_string(::getpid()))
		.info_field("run_id", run_id_)
		.info_field("tcp_port", std::to_string(cfg_.port))
		.info_field("server_time_usec", std::to_string(now / 1000))
		.gauge("uptime_in_seconds", (now - start_ns_) / 1000000000, "Seconds since the service started.")
		.info_field("uptime_in_days", std::to_string((now - start_ns_) / 86400000000000ull))
		.info_field("executable", "daxnet-kv")
		.info_field("daxnet_version", daxnet::svc::kVersion);
	m.info_section("Clients")
		.info_alias("connected_clients", "open_connections")
		.info_field("blocked_clients", std::to_string(blocked_.size()))
		.info_field("tracking_clients", "0")
		.gauge("maxclients", maxclients_, "Connections accepted at most (CONFIG SET maxclients).");
	m.info_section("Memory")
		.gauge("used_memory", used, "Pool bytes in buffers taken (values, keys, rings, replies).")
		.info_field("used_memory_human", fmt::format("{:.2f}K", static_cast<double>(used) / 1024))
		.info_alias("used_memory_peak", "used_memory")
		.gauge("maxmemory", alloc_.count() * std::uint64_t{pool_.buffer_size()}, "Pool bytes in all buffers.")
		.info_field("maxmemory_policy", "noeviction")
		.info_field("mem_allocator", "daxnet-pool");
	m.info_section("Persistence")
		.info_field("loading", "0")
		.info_field("async_loading", "0")
		.gauge("rdb_changes_since_last_save", writes_ - writes_at_save_, "Writes since the last SAVE.")
		.info_field("rdb_bgsave_in_progress", "0")
		.gauge("rdb_last_save_time", last_save_ns_ / 1000000000, "Unix time of the last SAVE (or the start).")
		.info_field("rdb_last_bgsave_status", "ok")
		.info_field("aof_enabled", "1")
		.info_field("aof_rewrite_in_progress", "0")
		.info_field("aof_last_write_status", "ok");
	m.info_section("Stats")
		.counter("total_connections_received", sc.connections - conns_offset_,
			 "Connections accepted since CONFIG RESETSTAT.")
		.counter("total_commands_processed", ops_ - cmds_offset_, "Commands executed since CONFIG RESETSTAT.")
		.info_alias("total_net_input_bytes", "rx_bytes")
		.info_alias("total_net_output_bytes", "tx_bytes")
		.gauge("instantaneous_ops_per_sec", static_cast<std::uint64_t>(rate_avg(rates_.ops, rates_.filled) + 0.5),
		       "Commands per second, over the last 16 intervals of 100 ms.")
		.real("instantaneous_input_kbps", rate_avg(rates_.in_kbps, rates_.filled),
		      "KiB received per second, over the last 16 intervals of 100 ms.", MetricType::gauge, 2)
		.real("instantaneous_output_kbps", rate_avg(rates_.out_kbps, rates_.filled),
		      "KiB sent per second, over the last 16 intervals of 100 ms.", MetricType::gauge, 2)
		.info_field("rejected_connections", "0")
		.counter("expired_keys", expired_keys_, "Keys dropped at their expiry since CONFIG RESETSTAT.")
		.info_field("evicted_keys", "0")
		.counter("keyspace_hits", hits_, "Reads that found their key since CONFIG RESETSTAT.")
		.counter("keyspace_misses", misses_, "Reads that found no key since CONFIG RESETSTAT.")
		.counter("total_error_replies", errors_, "Error replies since CONFIG RESETSTAT.");
	m.info_section("Replication")
		.info_field("role", "master")
		.gauge("connected_slaves", replicas_.size(), "Replicas attached (SYNC/PSYNC).");
	int n = 0;
	for (std::uint64_t id : replicas_) {
		auto it = clients_.find(id);
		if (it == clients_.end())
			continue;
		const Client& r = *it->second;
		const std::string_view ip = std::string_view(r.addr).substr(0, r.addr.rfind(':'));
		m.info_field(fmt::format("slave{}", n++),
			     fmt::format("ip={},port={},state=online,offset={},lag=0", ip, r.repl_port, r.repl_ack));
	}
	m.info_field("master_failover_state", "no-failover")
		.info_field("master_replid", repl_id_)
		.info_field("master_replid2", "0000000000000000000000000000000000000000")
		.counter("master_repl_offset", repl_offset_, "Bytes of the replication stream.")
		.info_field("second_repl_offset", "-1")
		.info_field("repl_backlog_active", "0");
	rusage self{}, ch{};
	::getrusage(RUSAGE_SELF, &self);
	::getrusage(RUSAGE_CHILDREN, &ch);
	auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
	m.info_section("CPU")
		.real("used_cpu_sys", secs(self.ru_stime), "CPU seconds in the kernel.", MetricType::counter, 6)
		.real("used_cpu_user", secs(self.ru_utime), "CPU seconds in user space.", MetricType::counter, 6)
		.real("used_cpu_sys_children", secs(ch.ru_stime), "CPU seconds of child processes in the kernel.",
		      MetricType::counter, 6)
		.real("used_cpu_user_children", secs(ch.ru_utime), "CPU seconds of child processes in user space.",
		      MetricType::counter, 6);
	// the tables, only when INFO asks for them (the keyspace is a walk)
	if (tables && tables->on("Commandstats")) {
		m.info_section("Commandstats");
		auto tab = command_table();
		for (std::size_t i = 0; i < tab.size(); ++i) {
			const CmdStat& st = cmd_stats_[i];
			if (st.calls == 0 && st.rejected == 0 && st.failed == 0)
				continue;
			m.info_field(fmt::format("cmdstat_{}", tab[i].name),
				     fmt::format("calls={},usec={},usec_per_call={:.2f},rejected_calls={},failed_calls={}",
						 st.calls, st.ns / 1000,
						 st.calls ? static_cast<double>(st.ns) / 1000.0 / static_cast<double>(st.calls)
							  : 0.0,
						 st.rejected, st.failed));
		}
	}
	if (tables && tables->on("Keyspace")) {
		m.info_section("Keyspace");
		std::uint64_t keys[kDatabases] = {}, expires[kDatabases] = {};
		kv_.for_each([&](std::string_view k, const ValueRef& v) {
			if (v.expiry_ns != 0 && v.expiry_ns <= now)
				return;
			const int p = db_of(k);
			if (p < 0)
				return;  // the database map
			const int db = logical(p);
			++keys[db];
			if (v.expiry_ns)
				++expires[db];
		});
		for (int db = 0; db < kDatabases; ++db)
			if (keys[db])
				m.info_field(fmt::format("db{}", db),
					     fmt::format("keys={},expires={},avg_ttl=0", keys[db], expires[db]));
	}
	return m;
}

void KvService::cmd_info(Ctx& x)
{
	std::string s = info_text(x.srv, x.argv.subspan(1));
	reply_verbatim(x, s);
}

// ---- COMMAND -------------------------------------------------------------

namespace {

void flags_reply(OutBuf& o, const Cmd& c, bool resp3)
{
	static constexpr std::pair<std::uint32_t, const char*> kNames[] = {
		{kWrite, "write"},	   {kReadonly, "readonly"}, {kDenyOom, "denyoom"},
		{kAdmin, "admin"},	   {kPubsub, "pubsub"},	    {kNoscript, "noscript"},
		{kBlocking, "blocking"},   {kLoading, "loading"},   {kStale, "stale"},
		{kSkipMonitor, "skip_monitor"}, {kSkipSlowlog, "skip_slowlog"}, {kFast, "fast"},
		{kNoAuth, "no_auth"},	   {kMayReplicate, "may_replicate"}, {kNoMulti, "no_multi"},
		{kAllowBusy, "allow_busy"},   {kMovableKeys, "movablekeys"},
	};
	std::size_t n = 0;
	for (const auto& f : kNames)
		if (c.flags & f.first)
			++n;
	o.put(resp3 ? '~' : '*');
	o.put_u64(n);
	o.append("\r\n");
	for (const auto& f : kNames)
		if (c.flags & f.first)
			resp::simple(o, f.second);
}

void command_info_reply(OutBuf& o, const Cmd& c, bool resp3)
{
	// name, arity, flags, first key, last key, step, ACL categories, tips,
	// key specs, subcommands (Redis 7 layout)
	resp::array(o, 10);
	resp::bulk(o, c.name);
	resp::integer(o, c.arity);
	flags_reply(o, c, resp3);
	resp::integer(o, c.first_key);
	resp::integer(o, c.last_key);
	resp::integer(o, c.step);
	o.append(resp3 ? "~0\r\n" : "*0\r\n");
	resp::array(o, 0);
	resp::array(o, 0);
	resp::array(o, 0);
}

}  // namespace

void KvService::cmd_command(Ctx& x)
{
	auto& o = x.o;
	auto tab = command_table();
	if (x.argc() == 1) {
		resp::array(o, tab.size());
		for (const Cmd& c : tab)
			command_info_reply(o, c, x.resp3());
		return;
	}
	std::string_view sub = x.arg(1);
	if (ieq(sub, "count") && x.argc() == 2) {
		resp::integer(o, static_cast<std::int64_t>(tab.size()));
	} else if (ieq(sub, "info")) {
		if (x.argc() == 2) {
			resp::array(o, tab.size());
			for (const Cmd& c : tab)
				command_info_reply(o, c, x.resp3());
			return;
		}
		resp::array(o, x.argc() - 2);
		for (std::size_t i = 2; i < x.argc(); ++i) {
			if (const Cmd* c = find_command(x.arg(i)))
				command_info_reply(o, *c, x.resp3());
			else
				reply_null_array(x);
		}
	} else if (ieq(sub, "docs")) {
		std::vector<const Cmd*> want;
		if (x.argc() == 2) {
			for (const Cmd& c : tab)
				want.push_back(&c);
		} else {
			for (std::size_t i = 2; i < x.argc(); ++i)
				if (const Cmd* c = find_command(x.arg(i)))
					want.push_back(c);
		}
		reply_map(x, want.size());
		for (const Cmd* c : want) {
			resp::bulk(o, c->name);
			reply_map(x, 3);
			resp::bulk(o, "summary");
			resp::bulk(o, c->summary);
			resp::bulk(o, "since");
			resp::bulk(o, c->since);
			resp::bulk(o, "group");
			resp::bulk(o, c->group);
		}
	} else if (ieq(sub, "list") && x.argc() == 2) {
		resp::array(o, tab.size());
		for (const Cmd& c : tab)
			resp::bulk(o, c.name);
	} else if (ieq(sub, "getkeys") && x.argc() >= 3) {
		const Cmd* c = find_command(x.arg(2));
		if (!c) {
			resp::error(o, "ERR Invalid command specified");
			return;
		}
		const auto n = static_cast<int>(x.argc() - 2);
		if ((c->arity > 0 && n != c->arity) || (c->arity < 0 && n < -c->arity)) {
			resp::error(o, "ERR Invalid number of arguments specified for command");
			return;
		}
		std::vector<std::string_view> keys;
		if (c->flags & kMovableKeys) {
			// numkeys, then the keys: SINTERCARD, LMPOP (argument 1), BLMPOP (2)
			const int at = std::string_view(c->name) == "blmpop" ? 2 : 1;
			std::int64_t nk = 0;
			if (!parse_i64(x.arg(static_cast<std::size_t>(at) + 2), nk) || nk < 1 || nk > n - at - 1) {
				resp::error(o, "ERR Invalid arguments specified for command");
				return;
			}
			for (int i = at + 1; i <= at + nk; ++i)
				keys.push_back(x.arg(static_cast<std::size_t>(i) + 2));
		} else if (c->first_key == 0) {
			resp::error(o, "ERR The command has no key arguments");
			return;
		}
		const int last = c->last_key < 0 ? n + c->last_key : c->last_key;
		for (int i = c->first_key; c->first_key > 0 && i <= last && i < n; i += c->step)
			keys.push_back(x.arg(static_cast<std::size_t>(i) + 2));
		resp::array(o, keys.size());
		for (std::string_view k : keys)
			resp::bulk(o, k);
	} else if (ieq(sub, "help")) {
		resp::array(o, 1);
		resp::simple(o, "COMMAND [<subcommand> [<arg> ...]]: COUNT, INFO, DOCS, LIST, GETKEYS");
	} else {
		resp::error(o, fmt::format("ERR unknown subcommand or wrong number of arguments for '{}'. Try COMMAND "
					   "HELP.",
					   sub.substr(0, 128)));
	}
}

// ---- CONFIG --------------------------------------------------------------

namespace {

std::string lower(std::string_view s)
{
	std::string l(s);
	for (char& c : l)
		c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
	return l;
}

struct Param {
	const char* name;
	std::string value;
	bool settable;
};

}  // namespace

void KvService::config_apply(std::string_view n, std::string_view v)
{
	std::int64_t iv = 0;
	(void)parse_i64(v, iv);
	if (ieq(n, "lua-time-limit") || ieq(n, "busy-reply-threshold"))
		tuning_["lua-time-limit"] = tuning_["busy-reply-threshold"] = std::string(v);  // aliases
	else if (const std::string ln = lower(n); ln.starts_with("hash-max-") || ln.starts_with("zset-max-")) {
		// Redis 7.0's aliases: *-max-ziplist-* is *-max-listpack-*
		std::string other = ln;
		if (const auto z = other.find("ziplist"); z != std::string::npos)
			other.replace(z, 7, "listpack");
		else if (const auto l = other.find("listpack"); l != std::string::npos)
			other.replace(l, 8, "ziplist");
		for (const std::string& name : {ln, other})
			if (auto t = tuning_.find(name); t != tuning_.end())
				t->second.assign(v);
	} else if (auto t = tuning_.find(lower(n)); t != tuning_.end())
		t->second.assign(v);
	else if (ieq(n, "maxmemory"))
		maxmemory_ = *daxnet::parse_size(std::string(v));
	else if (ieq(n, "requirepass"))
		cfg_.requirepass.assign(v);
	else if (ieq(n, "min-replicas-to-write"))
		min_replicas_ = static_cast<std::uint64_t>(iv);
	else if (ieq(n, "maxclients"))
		maxclients_ = static_cast<std::uint64_t>(iv);
	else if (ieq(n, "daxnet-reserve"))
		core_.set_reserve(cfg_.reserve = static_cast<std::uint32_t>(iv));
	else if (ieq(n, "lazyfree-lazy-expire"))
		lazy_expire_unlink_ = ieq(v, "yes");
	else if (ieq(n, "daxnet-pack-small"))
		cfg_.pack_small = static_cast<std::uint32_t>(iv);
	// save: accepted, nothing to schedule (every write is durable)
}

void KvService::cmd_config(Ctx& x)
{
	const std::string_view sub = x.arg(1);
	auto& o = x.o;
	// What CONFIG GET reports; daxnet is durable per write (appendfsync
	// always, no snapshots). Settable ones are marked.
	const Param params[] = {
		{"appendfsync", "always", false},
		{"appendonly", "yes", false},
		{"bind", cfg_.bind, false},
		{"daxnet-max-key", std::to_string(cfg_.max_key), false},
		{"daxnet-pack-small", std::to_string(cfg_.pack_small), true},
		{"daxnet-pool", cfg_.pool_path, false},
		{"daxnet-reserve", std::to_string(cfg_.reserve), true},
		{"daxnet-transport", cfg_.transport_name, false},
		{"databases", std::to_string(kDatabases), false},
		{"dbfilename", "", false},
		{"dir", "/", false},
		{"hz", "10", false},
		// daxnet always frees lazily (a deleted value's buffers return at
		// the next checkpoint); lazyfree-lazy-expire also names what an
		// expiry propagates as: UNLINK (yes) or DEL (no)
		{"lazyfree-lazy-eviction", "yes", false},
		{"lazyfree-lazy-expire", lazy_expire_unlink_ ? "yes" : "no", true},
		{"lazyfree-lazy-server-del", "yes", false},
		{"lazyfree-lazy-user-del", "yes", false},
		{"lazyfree-lazy-user-flush", "yes", false},
		{"io-threads", "1", false},
		{"latency-tracking", "no", false},
		{"loglevel", "notice", false},
		{"maxclients", std::to_string(maxclients_), true},
		{"maxmemory", std::to_string(maxmemory_), true},
		{"maxmemory-policy", "noeviction", false},
		{"min-replicas-to-write", std::to_string(min_replicas_), true},
		{"port", std::to_string(cfg_.port), false},
		{"proto-max-bulk-len", std::to_string(cfg_.max_value), false},
		{"protected-mode", "no", false},
		{"requirepass", cfg_.requirepass, true},
		{"save", "", true},
		{"tcp-keepalive", "300", false},
		{"timeout", "0", false},
	};
	if (ieq(sub, "get") && x.argc() >= 3) {
		std::vector<std::pair<std::string_view, std::string_view>> hits;
		auto seen = [&](std::string_view n) {
			return std::find_if(hits.begin(), hits.end(), [n](const auto& h) { return h.first == n; }) !=
			       hits.end();
		};
		for (std::size_t i = 2; i < x.argc(); ++i) {
			for (const Param& p : params)
				if (glob_match(x.arg(i), p.name, true) && !seen(p.name))
					hits.emplace_back(p.name, p.value);
			for (const auto& [n, v] : tuning_)
				if (glob_match(x.arg(i), n, true) && !seen(n))
					hits.emplace_back(n, v);
		}
		reply_map(x, hits.size());
		for (const auto& [n, v] : hits) {
			resp::bulk(o, n);
			resp::bulk(o, v);
		}
	} else if (ieq(sub, "set") && x.argc() >= 4 && x.argc() % 2 == 0) {
		// validate all, then apply all (Redis: atomic)
		for (std::size_t i = 2; i < x.argc(); i += 2) {
			const Param* p = nullptr;
			for (const Param& q : params)
				if (ieq(x.arg(i), q.name))
					p = &q;
			if (!p && tuning_.contains(lower(x.arg(i)))) {
				std::int64_t v = 0;
				if (!parse_i64(x.arg(i + 1), v)) {
					resp::error(o, fmt::format("ERR CONFIG SET failed (possibly related to argument '{}') - "
								   "argument couldn't be parsed into an integer",
								   x.arg(i).substr(0, 128)));
					return;
				}
				continue;
			}
			if (!p) {
				resp::error(o, fmt::format("ERR Unknown option or number of arguments for CONFIG SET - '{}'",
							   x.arg(i).substr(0, 128)));
				return;
			}
			if (!p->settable) {
				if (p->value == x.arg(i + 1))
					continue;  // setting the value it has: accepted
				resp::error(o, fmt::format("ERR CONFIG SET failed (possibly related to argument '{}') - "
							   "daxnet: not changeable at run time",
							   x.arg(i).substr(0, 128)));
				return;
			}
			std::int64_t v = 0;
			const std::string_view n(p->name);
			if (n == "maxmemory" && !daxnet::parse_size(std::string(x.arg(i + 1)))) {
				resp::error(o, fmt::format("ERR CONFIG SET failed (possibly related to argument '{}') - "
							   "argument must be a memory value",
							   x.arg(i).substr(0, 128)));
				return;
			}
			if (n == "lazyfree-lazy-expire" && !ieq(x.arg(i + 1), "yes") && !ieq(x.arg(i + 1), "no")) {
				resp::error(o, fmt::format("ERR CONFIG SET failed (possibly related to argument '{}') - "
							   "argument must be 'yes' or 'no'",
							   x.arg(i).substr(0, 128)));
				return;
			}
			if ((n == "maxclients" || n == "daxnet-reserve" || n == "daxnet-pack-small" ||
			     n == "min-replicas-to-write") &&
			    (!parse_i64(x.arg(i + 1), v) || v < 0 || v > UINT32_MAX)) {
				resp::error(o, fmt::format("ERR CONFIG SET failed (possibly related to argument '{}') - "
							   "argument couldn't be parsed into an integer",
							   x.arg(i).substr(0, 128)));
				return;
			}
		}
		for (std::size_t i = 2; i < x.argc(); i += 2) {
			if (kv_.in_batch()) {
				// in EXEC: set back if the transaction is refused whole
				std::string was;
				for (const Param& q : params)
					if (ieq(x.arg(i), q.name))
						was = q.value;
				if (auto t = tuning_.find(lower(x.arg(i))); t != tuning_.end())
					was = t->second;
				config_undo_.emplace_back(std::string(x.arg(i)), std::move(was));
			}
			config_apply(x.arg(i), x.arg(i + 1));
		}
		resp::ok(o);
	} else if (ieq(sub, "resetstat") && x.argc() == 2) {
		for (CmdStat& c : cmd_stats_)
			c = CmdStat{};
		cmds_offset_ = ops_;
		conns_offset_ = x.srv.counters().connections;
		expired_keys_ = hits_ = misses_ = errors_ = 0;
		resp::ok(o);
	} else if (ieq(sub, "rewrite") && x.argc() == 2) {
		resp::error(o, "ERR The server is running without a config file");
	} else if (ieq(sub, "help") && x.argc() == 2) {
		resp::array(o, 4);
		resp::simple(o, "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:");
		resp::simple(o, "GET <pattern>");
		resp::simple(o, "SET <directive> <value>");
		resp::simple(o, "RESETSTAT");
	} else {
		resp::error(o, fmt::format("ERR unknown subcommand or wrong number of arguments for '{}'. "
					   "Try CONFIG HELP.",
					   sub.substr(0, 128)));
	}
}

// ---- the rest ---------------------------------------------------------------

void KvService::cmd_time(Ctx& x)
{
	const std::uint64_t now = daxnet::pmem::realtime_ns();
	resp::array(x.o, 2);
	resp::bulk(x.o, std::to_string(now / 1000000000));
	resp::bulk(x.o, std::to_string(now / 1000 % 1000000));
}

void KvService::cmd_memory(Ctx& x)
{
	const std::string_view sub = x.arg(1);
	if (ieq(sub, "help") && x.argc() == 2) {
		resp::array(x.o, 3);
		resp::simple(x.o, "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:");
		resp::simple(x.o, "USAGE <key> [SAMPLES <count>]");
		resp::simple(x.o, "    Return memory in bytes used by <key> and its value.");
		return;
	}
	if (!ieq(sub, "usage") || x.argc() < 3) {
		resp::error(x.o, fmt::format("ERR unknown subcommand or wrong number of arguments for '{}'. Try MEMORY HELP.",
					     sub.substr(0, 128)));
		return;
	}
	for (std::size_t i = 3; i < x.argc(); i += 2) {
		std::int64_t n = 0;
		if (!ieq(x.arg(i), "samples") || i + 1 >= x.argc())
			return syntax_error(x);
		if (!arg_i64(x, i + 1, n))
			return;
		if (n < 0)
			return syntax_error(x);
	}
	// The key and the stored encoding's bytes (coll.h for a collection),
	// plus a fixed index entry: what the value takes in the pool, not in
	// DRAM (samples are not needed: the size is exact).
	std::string buf;
	ValueRef v{};
	if (lookup(skey(x, x.arg(2), buf), v) != 1) {
		reply_null(x);
		return;
	}
	resp::integer(x.o, static_cast<std::int64_t>(x.arg(2).size() + v.size + 64));
}

void KvService::cmd_lastsave(Ctx& x)
{
	resp::integer(x.o, static_cast<std::int64_t>(last_save_ns_ / 1000000000));
}

void KvService::cmd_save(Ctx& x)
{
	// Every acknowledged write is durable already; SAVE takes a checkpoint
	// (which also makes what this pass staged durable).
	if (const auto why = checkpoint_now()) {
		resp_refusal(x.o, *why);
		return;
	}
	last_save_ns_ = daxnet::pmem::realtime_ns();
	writes_at_save_ = writes_;
	resp::ok(x.o);
}

void KvService::cmd_bgsave(Ctx& x)
{
	if (x.argc() > 2 || (x.argc() == 2 && !ieq(x.arg(1), "schedule"))) {
		resp::error(x.o, "ERR syntax error");
		return;
	}
	if (in_exec_) {
		// Redis schedules a BGSAVE inside a transaction: it runs once
		// the EXEC's writes are staged (checkpoint_now()).
		(void)checkpoint_now();
		resp::simple(x.o, "Background saving scheduled");
		return;
	}
	if (const auto why = checkpoint_now()) {
		resp_refusal(x.o, *why);
		return;
	}
	last_save_ns_ = daxnet::pmem::realtime_ns();
	writes_at_save_ = writes_;
	resp::simple(x.o, "Background saving started");
}

void KvService::cmd_shutdown(Ctx& x)
{
	for (std::size_t i = 1; i < x.argc(); ++i) {
		const std::string_view a = x.arg(i);
		if (ieq(a, "abort")) {
			resp::error(x.o, "ERR No shutdown in progress.");
			return;
		}
		if (!ieq(a, "nosave") && !ieq(a, "save") && !ieq(a, "now") && !ieq(a, "force")) {
			resp::error(x.o, "ERR syntax error");
			return;
		}
	}
	// everything acknowledged is durable: stop after this pass (the commit
	// of the pass runs first), closing this connection without a reply
	daxnet::svc::request_stop();
	x.c.closing = true;
}

void KvService::cmd_wait(Ctx& x)
{
	std::int64_t n = 0, t = 0;
	if (!parse_i64(x.arg(1), n) || !parse_i64(x.arg(2), t)) {
		resp::error(x.o, "ERR value is not an integer or out of range");
		return;
	}
	if (t < 0) {
		resp::error(x.o, "ERR timeout is negative");
		return;
	}
	resp::integer(x.o, 0);  // no replicas
}

void KvService::cmd_waitaof(Ctx& x)
{
	std::int64_t local = 0, repl = 0, t = 0;
	if (!parse_i64(x.arg(1), local) || !parse_i64(x.arg(2), repl) || !parse_i64(x.arg(3), t) || local < 0 ||
	    repl < 0) {
		resp::error(x.o, "ERR value is not an integer or out of range");
		return;
	}
	if (t < 0) {
		resp::error(x.o, "ERR timeout is negative");
		return;
	}
	// the writes this client was acknowledged are durable at reply: 1 local
	resp::array(x.o, 2);
	resp::integer(x.o, 1);
	resp::integer(x.o, 0);
}

void KvService::cmd_function(Ctx& x)
{
	const std::string_view sub = x.arg(1);
	if (ieq(sub, "flush") && x.argc() <= 3) {
		if (x.argc() == 3 && !ieq(x.arg(2), "sync") && !ieq(x.arg(2), "async")) {
			resp::error(x.o, "ERR FUNCTION FLUSH only supports SYNC|ASYNC option");
			return;
		}
		resp::ok(x.o);  // no libraries
	} else if (ieq(sub, "list")) {
		resp::array(x.o, 0);
	} else if (ieq(sub, "stats") && x.argc() == 2) {
		reply_map(x, 2);
		resp::bulk(x.o, "running_script");
		reply_null(x);
		resp::bulk(x.o, "engines");
		reply_map(x, 0);
	} else {
		resp::error(x.o, fmt::format("ERR daxnet: FUNCTION {} is not supported (no scripting)", sub.substr(0, 64)));
	}
}

void KvService::cmd_debug(Ctx& x)
{
	const std::string_view sub = x.arg(1);
	if (ieq(sub, "set-active-expire") && x.argc() == 3) {
		active_expire_ = x.arg(2) != "0";
		resp::ok(x.o);
	} else if (ieq(sub, "sleep") && x.argc() == 3) {
		// blocks the event loop, as in Redis; bounded to 10 s
		const double s = std::clamp(std::atof(std::string(x.arg(2)).c_str()), 0.0, 10.0);
		::usleep(static_cast<useconds_t>(s * 1e6));
		resp::ok(x.o);
	} else if (ieq(sub, "reload") || ieq(sub, "loadaof")) {
		// The data lives in the pool: a reload would find what is there
		// now. A checkpoint stands in for the save half, and is a save
		// for LASTSAVE as in Redis (inside EXEC it runs, and counts,
		// after the transaction: cmd_exec).
		if (const auto why = checkpoint_now()) {
			resp_refusal(x.o, *why);
			return;
		}
		if (!in_exec_) {
			last_save_ns_ = daxnet::pmem::realtime_ns();
			writes_at_save_ = writes_;
		}
		resp::ok(x.o);
	} else if (ieq(sub, "object") && x.argc() == 3) {
		std::string buf;
		ValueRef v{};
		if (kv_.get(skey(x, x.arg(2), buf), v) != 1) {
			resp::error(x.o, "ERR no such key");
			return;
		}
		if (v.typed) {
			// a collection: Redis 7.0's fields for its encoding (a list is
			// one quicklist node holding every element)
			std::uint8_t t = 0;
			std::vector<std::string> items;
			bool ht = false;
			if (!coll::decode(value_bytes(pool_, v), t, items, &ht)) {
				resp::error(x.o, "ERR daxnet: malformed collection value");
				return;
			}
			std::string line = fmt::format("Value at:0x0 refcount:1 encoding:{} serializedlength:{} lru:0 "
						       "lru_seconds_idle:0",
						       coll_encoding(t, items, ht), v.size);
			if (t == coll::kList)
				line += fmt::format(" ql_nodes:1 ql_avg_node:{}.00 ql_listpack_max:-2 ql_compressed:0 "
						    "ql_uncompressed_size:{}",
						    items.size(), v.size);
			resp::simple(x.o, line);
			return;
		}
		const char* enc = v.size <= 44 ? "embstr" : "raw";
		std::int64_t n = 0;
		if (v.size <= 20 && parse_i64(value_bytes(pool_, v), n))
			enc = "int";
		resp::simple(x.o, fmt::format("Value at:0x0 refcount:1 encoding:{} serializedlength:{} lru:0 "
					      "lru_seconds_idle:0",
					      enc, v.size));
	} else if (ieq(sub, "protocol") && x.argc() == 3) {
		// the reply types, for client tests (Redis' DEBUG PROTOCOL)
		const std::string_view t = x.arg(2);
		auto& o = x.o;
		const bool r3 = x.resp3();
		if (ieq(t, "string")) {
			resp::bulk(o, "Hello World");
		} else if (ieq(t, "integer")) {
			resp::integer(o, 12345);
		} else if (ieq(t, "double")) {
			resp::dbl(o, 3.141, r3);
		} else if (ieq(t, "bignum")) {
			if (r3)
				o.append("(1234567999999999999999999999999999999\r\n");
			else
				resp::bulk(o, "1234567999999999999999999999999999999");
		} else if (ieq(t, "null")) {
			reply_null(x);
		} else if (ieq(t, "array") || ieq(t, "set")) {
			if (ieq(t, "set"))
				resp::set(o, 3, r3);
			else
				resp::array(o, 3);
			for (int i = 0; i < 3; ++i)
				resp::integer(o, i);
		} else if (ieq(t, "map")) {
			reply_map(x, 3);
			for (int i = 0; i < 3; ++i) {
				resp::integer(o, i);
				resp::boolean(o, i == 1, r3);
			}
		} else if (ieq(t, "attrib")) {
			if (r3) {
				o.append("|1\r\n");
				resp::bulk(o, "key-popularity");
				resp::array(o, 2);
				resp::bulk(o, "key:123");
				resp::integer(o, 90);
			}
			resp::bulk(o, "Some real reply following the attribute");
		} else if (ieq(t, "push")) {
			if (!r3) {
				resp::error(o, "ERR RESP2 is not supported by this command");
				return;
			}
			o.append(">2\r\n");
			resp::bulk(o, "server-cpu-usage");
			resp::integer(o, 42);
			resp::bulk(o, "Some real reply following the push reply");
		} else if (ieq(t, "true") || ieq(t, "false")) {
			resp::boolean(o, ieq(t, "true"), r3);
		} else if (ieq(t, "verbatim")) {
			reply_verbatim(x, "This is a verbatim\nstring");
		} else {
			resp::error(o, "ERR Wrong protocol type name. Please use one of the following: string|integer|double|"
				       "bignum|null|array|set|map|attrib|push|verbatim|true|false");
		}
	} else if (ieq(sub, "change-repl-id")) {
		resp::ok(x.o);
	} else {
		resp::error(x.o, fmt::format("ERR daxnet: DEBUG {} is not supported", sub.substr(0, 64)));
	}
}

}  // namespace daxnet::kv
