// SPDX-License-Identifier: BSD-2-Clause
//
// daxnet-kv internals: the service, its per-connection state and the
// Redis-style command table (docs/design.md §daxnet-kv commands).
//
// Every RESP request goes through KvService::dispatch(): one table lookup
// (case-insensitive name), then, once for every command, the checks the
// table's flags ask for -- arity, authentication, MULTI queueing, the pool
// reserve for `denyoom` commands, key length for the key positions -- and
// only then the handler. Handlers are grouped by family in cmd_*.cpp.
//
// Keys of physical database 0 are stored as given; keys of physical
// databases 1..15 (and keys of physical database 0 that begin with the two
// marker bytes FF FE) are stored with a three-byte prefix FF FE <db>.
// Recovery keeps them as any other key. The databases clients SELECT are
// mapped onto physical ones by a permutation (identity until a SWAPDB),
// stored in the reserved key FF FE 10 "dbmap" (16 bytes): SWAPDB swaps two
// entries and rewrites that one key -- one record, atomic, whatever the
// number of keys.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <ctime>
#include <deque>
#include <initializer_list>
#include <map>
#include <set>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "daxnet/pmem/kv.h"
#include "daxnet/svc/metrics.h"
#include "daxnet/svc/server.h"
#include "daxnet/svc/store_core.h"

struct lua_State;

namespace daxnet::kv {

using daxnet::pmem::KvStore;
using daxnet::pmem::Slice;
using daxnet::pmem::ValueRef;
using daxnet::proto::OutBuf;
using daxnet::proto::StreamRange;
using daxnet::svc::Conn;
using daxnet::svc::http_refusal;
using daxnet::svc::MaybeRefusal;
using daxnet::svc::Refusal;
using daxnet::svc::resp_refusal;
using daxnet::svc::Server;

inline constexpr int kDatabases = 16;

/// Command flags (the names COMMAND INFO reports).
enum CmdFlag : std::uint32_t {
	kWrite = 1u << 0,
	kReadonly = 1u << 1,
	kDenyOom = 1u << 2,
	kAdmin = 1u << 3,
	kPubsub = 1u << 4,
	kNoscript = 1u << 5,
	kBlocking = 1u << 6,
	kLoading = 1u << 7,
	kStale = 1u << 8,
	kSkipMonitor = 1u << 9,
	kSkipSlowlog = 1u << 10,
	kFast = 1u << 11,
	kNoAuth = 1u << 12,
	kMayReplicate = 1u << 13,
	kNoMulti = 1u << 14,
	kAllowBusy = 1u << 15,
	kMovableKeys = 1u << 16,  ///< keys after a numkeys argument (movable_keys())
};

class KvService;
struct Ctx;
using Handler = void (KvService::*)(Ctx&);

/// One row of the command table.
struct Cmd {
	const char* name;
	Handler fn;
	int arity;            ///< N: exactly N arguments (name included); -N: at least N
	std::uint32_t flags;  ///< CmdFlag
	int first_key, last_key, step;  ///< key positions (last -1: to the end), 0: no keys
	const char* group;    ///< COMMAND DOCS group
	const char* since;    ///< Redis version that introduced it
	const char* summary;
};

/// The table (cmd_table.cpp), sorted by name.
std::span<const Cmd> command_table() noexcept;
/// Case-insensitive lookup; nullptr when unknown.
const Cmd* find_command(std::string_view name) noexcept;

/// Per-connection state (Conn::app).
struct Client {
	std::uint64_t id = 0;
	std::uint32_t conn = 0;  ///< Conn::id
	int fd = -1;
	int db = 0;
	int resp = 2;
	bool authed = false;
	bool in_multi = false;
	bool multi_error = false;  ///< a command was refused while queueing: EXEC aborts
	bool dirty_cas = false;    ///< a watched key changed: EXEC fails
	bool no_evict = false;
	std::string name, lib_name, lib_ver;
	std::uint64_t created_ns = 0, last_ns = 0;
	const char* last_cmd = "NULL";
	std::vector<std::vector<std::string>> queue;  ///< MULTI: queued commands
	struct Watch {
		std::string key;            ///< stored key
		std::uint64_t expiry = 0;   ///< its expiry when watched, if alive then
		bool alive = false;         ///< present and not expired when watched
	};
	std::vector<Watch> watched;
	bool replica = false;          ///< SYNC/PSYNC done: gets the write stream, no replies
	std::uint64_t repl_ack = 0;    ///< last REPLCONF ACK offset
	int repl_port = 0;             ///< REPLCONF listening-port
	std::string addr;  ///< peer ip:port
	std::set<std::string> channels, patterns;  ///< SUBSCRIBE / PSUBSCRIBE (cmd_pubsub.cpp)
	std::string laddr;  ///< local ip:port
	// A blocking command waiting (cmd_list.cpp): the command, its deadline
	// (CLOCK_MONOTONIC; 0: none), and the requests sent after it, run once
	// it is answered.
	bool blocked = false;
	std::vector<std::string> block_argv;
	const Cmd* block_cmd = nullptr;
	std::uint64_t block_deadline_ns = 0;
	std::deque<std::vector<std::string>> pending;
	std::uint64_t pending_bytes = 0;
};

/// A request being executed: straight from the connection's buffers, or
/// replayed from a MULTI queue (no stream ranges: values are copied).
struct Ctx {
	Server& srv;
	Conn& c;
	Client& cl;
	OutBuf& o;
	std::span<const std::string_view> argv;
	const StreamRange* ranges;  ///< nullptr when replayed
	const Cmd* cmd = nullptr;

	std::size_t argc() const noexcept { return argv.size(); }
	std::string_view arg(std::size_t i) const noexcept { return argv[i]; }
	bool resp3() const noexcept { return cl.resp >= 3; }
};

struct KvConfig {
	std::uint32_t max_key = 1024;
	std::uint64_t max_value = 16u << 20;
	std::uint32_t reserve = 0;  ///< free buffers kept for the transport; 0: auto
	std::uint32_t pack_small = 512;  ///< values up to this size are packed (copied once)
	std::string transport_name;
	std::string requirepass;
	std::string pool_path;
	std::string bind;
	int port = 0;
};

/// CLOCK_MONOTONIC in nanoseconds (command timings, rates).
inline std::uint64_t mono_ns() noexcept
{
	timespec ts{};
	::clock_gettime(CLOCK_MONOTONIC, &ts);
	return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

bool ieq(std::string_view a, std::string_view b) noexcept;
bool parse_i64(std::string_view s, std::int64_t& v) noexcept;
/// Redis's string2ld (INCRBYFLOAT, HINCRBYFLOAT): no surrounding space, no
/// NaN, nothing after the number (cmd_string.cpp).
bool parse_ld(std::string_view s, long double& v) noexcept;
/// Redis's human form of a long double (%.17Lf without trailing zeros).
std::string format_ld(long double v);
/// Redis' glob matching (*, ?, [..], \x), optionally case-insensitive.
bool glob_match(std::string_view pattern, std::string_view s, bool nocase = false) noexcept;
/// CRC-64/Jones (RDB files, DUMP payloads), continuing from `crc`.
std::uint64_t crc64_jones(std::uint64_t crc, std::string_view data) noexcept;
/// SHA-1 of `data` in lower-case hex (script ids).
std::string sha1_hex(std::string_view data);

class KvService final : public daxnet::svc::Service {
public:
	KvService(KvStore& kv, const daxnet::pmem::PoolView& pool, daxnet::pmem::BufferAllocator& alloc,
		  const KvConfig& cfg);

	void on_resp(Server& srv, Conn& c) override;
	void on_http(Server& srv, Conn& c) override;
	void end_of_pass(Server& srv) override;
	bool busy() const override { return core_.busy(); }
	void on_close(Server& srv, Conn& c) override;
	// Pipelined commit (svc::StoreCore::set_pipelined; kv_main.cpp starts
	// the pool's flusher on page-granularity pools).
	void set_pipelined(bool on) noexcept { core_.set_pipelined(on); }
	std::uint64_t commit_ticket() const override { return core_.commit_ticket(); }
	bool durable(std::uint64_t ticket) const override { return core_.durable(ticket); }
	int durable_fd() const override { return core_.durable_fd(); }
	void wait_durable() override { core_.wait_durable(); }

	std::uint64_t writes() const noexcept { return writes_; }
	/// Every counter, once: INFO (its Redis sections and its daxnet
	/// section), GET /stats (JSON) and GET /metrics (Prometheus) on the HTTP
	/// port render it. INFO's tables (commandstats, keyspace) are added only
	/// when `tables` selects their section.
	daxnet::svc::Metrics metrics(Server& srv, const daxnet::svc::InfoSelection* tables = nullptr) const;

	// ---- handlers (cmd_*.cpp) ----
	// strings
	void cmd_get(Ctx&);
	void cmd_set(Ctx&);
	void cmd_mget(Ctx&);
	void cmd_mset(Ctx&);
	void cmd_incr(Ctx&);
	void cmd_decr(Ctx&);
	void cmd_incrby(Ctx&);
	void cmd_decrby(Ctx&);
	void cmd_strlen(Ctx&);
	void cmd_append(Ctx&);
	void cmd_getset(Ctx&);
	void cmd_getdel(Ctx&);
	void cmd_getex(Ctx&);
	void cmd_setnx(Ctx&);
	void cmd_setex(Ctx&);
	void cmd_psetex(Ctx&);
	void cmd_msetnx(Ctx&);
	void cmd_incrbyfloat(Ctx&);
	void cmd_getrange(Ctx&);
	void cmd_setrange(Ctx&);
	void cmd_setbit(Ctx&);
	void cmd_getbit(Ctx&);
	void cmd_bitcount(Ctx&);
	void cmd_bitpos(Ctx&);
	void cmd_lcs(Ctx&);
	// keyspace
	void cmd_del(Ctx&);
	void cmd_exists(Ctx&);
	void cmd_dbsize(Ctx&);
	void cmd_flushall(Ctx&);
	void cmd_flushdb(Ctx&);
	void cmd_select(Ctx&);
	void cmd_ttl(Ctx&);
	void cmd_pttl(Ctx&);
	void cmd_expire(Ctx&);
	void cmd_pexpire(Ctx&);
	void cmd_expireat(Ctx&);
	void cmd_pexpireat(Ctx&);
	void cmd_persist(Ctx&);
	void cmd_expiretime(Ctx&);
	void cmd_pexpiretime(Ctx&);
	void cmd_type(Ctx&);
	void cmd_rename(Ctx&);
	void cmd_renamenx(Ctx&);
	void cmd_copy(Ctx&);
	void cmd_touch(Ctx&);
	void cmd_keys(Ctx&);
	void cmd_scan(Ctx&);
	void cmd_randomkey(Ctx&);
	void cmd_swapdb(Ctx&);
	void cmd_move(Ctx&);
	void cmd_object(Ctx&);
	// transactions
	void cmd_multi(Ctx&);
	void cmd_exec(Ctx&);
	void cmd_discard(Ctx&);
	void cmd_watch(Ctx&);
	void cmd_unwatch(Ctx&);
	// connection
	void cmd_ping(Ctx&);
	void cmd_echo(Ctx&);
	void cmd_quit(Ctx&);
	void cmd_hello(Ctx&);
	void cmd_auth(Ctx&);
	void cmd_client(Ctx&);
	void cmd_reset(Ctx&);
	// server
	void cmd_info(Ctx&);
	void cmd_command(Ctx&);
	void cmd_config(Ctx&);
	void cmd_time(Ctx&);
	void cmd_lastsave(Ctx&);
	void cmd_memory(Ctx&);
	void cmd_save(Ctx&);
	void cmd_bgsave(Ctx&);
	void cmd_shutdown(Ctx&);
	void cmd_wait(Ctx&);
	void cmd_waitaof(Ctx&);
	void cmd_function(Ctx&);
	void cmd_debug(Ctx&);
	// replication (cmd_repl.cpp)
	void cmd_sync(Ctx&);
	void cmd_replconf(Ctx&);
	void cmd_replicaof(Ctx&);
	// scripting (cmd_script.cpp)
	void cmd_eval(Ctx&);
	void cmd_evalsha(Ctx&);
	void cmd_eval_ro(Ctx&);
	void cmd_evalsha_ro(Ctx&);
	void cmd_script(Ctx&);
	/// redis.call from a script: runs the command given by the Lua stack's
	/// `argc` arguments and returns its reply (RESP), or the error text
	/// with `failed` set. The text lives in the service (a Lua error may
	/// longjmp past the caller's frame).
	const std::string& script_call(lua_State* L, int argc, bool& failed);
	// publish/subscribe (cmd_pubsub.cpp)
	void cmd_subscribe(Ctx&);
	void cmd_unsubscribe(Ctx&);
	void cmd_psubscribe(Ctx&);
	void cmd_punsubscribe(Ctx&);
	void cmd_publish(Ctx&);
	void cmd_pubsub(Ctx&);
	// lists (cmd_list.cpp)
	void cmd_lpush(Ctx&);
	void cmd_rpush(Ctx&);
	void cmd_lpushx(Ctx&);
	void cmd_rpushx(Ctx&);
	void cmd_lpop(Ctx&);
	void cmd_rpop(Ctx&);
	void cmd_llen(Ctx&);
	void cmd_lrange(Ctx&);
	void cmd_lindex(Ctx&);
	void cmd_lset(Ctx&);
	void cmd_lrem(Ctx&);
	void cmd_ltrim(Ctx&);
	void cmd_linsert(Ctx&);
	void cmd_lpos(Ctx&);
	void cmd_lmove(Ctx&);
	void cmd_rpoplpush(Ctx&);
	void cmd_lmpop(Ctx&);
	void cmd_blpop(Ctx&);
	void cmd_brpop(Ctx&);
	void cmd_blmpop(Ctx&);
	void cmd_blmove(Ctx&);
	void cmd_brpoplpush(Ctx&);
	void cmd_sort(Ctx&);
	void cmd_sort_ro(Ctx&);
	// sets (cmd_set.cpp)
	void cmd_sadd(Ctx&);
	void cmd_srem(Ctx&);
	void cmd_smembers(Ctx&);
	void cmd_sismember(Ctx&);
	void cmd_smismember(Ctx&);
	void cmd_scard(Ctx&);
	void cmd_spop(Ctx&);
	void cmd_srandmember(Ctx&);
	void cmd_sinter(Ctx&);
	void cmd_sunion(Ctx&);
	void cmd_sdiff(Ctx&);
	void cmd_sinterstore(Ctx&);
	void cmd_sunionstore(Ctx&);
	void cmd_sdiffstore(Ctx&);
	void cmd_sintercard(Ctx&);
	void cmd_smove(Ctx&);
	// hashes (cmd_hash.cpp)
	void cmd_hset(Ctx&);
	void cmd_hmset(Ctx&);
	void cmd_hsetnx(Ctx&);
	void cmd_hget(Ctx&);
	void cmd_hmget(Ctx&);
	void cmd_hdel(Ctx&);
	void cmd_hlen(Ctx&);
	void cmd_hexists(Ctx&);
	void cmd_hkeys(Ctx&);
	void cmd_hvals(Ctx&);
	void cmd_hgetall(Ctx&);
	void cmd_hincrby(Ctx&);
	void cmd_hincrbyfloat(Ctx&);
	void cmd_hstrlen(Ctx&);
	void cmd_hrandfield(Ctx&);
	void cmd_hscan(Ctx&);

private:
	friend struct Ctx;
	// ---- replication (cmd_repl.cpp) ----
	struct Effect {
		int db;
		std::vector<std::string> argv;
	};
	/// RDB (version 10) of every database.
	std::string rdb_snapshot();
	/// A replica's request: no reply (REPLCONF ACK noted).
	void replica_input(Ctx& x);
	/// Records a write's effect for the replicas (nothing without any).
	void propagate(int db, std::vector<std::string> argv);
	/// The running command propagates as `argv` instead of itself.
	void propagate_as(Ctx& x, std::vector<std::string> argv);
	/// Sends the effects of one command / EXEC (MULTI-wrapped when several).
	void send_unit(std::vector<Effect>& unit);
	void send_replicas(std::string_view bytes);
	void flush_propagation();
	void repl_tick();
	void drop_replica(std::uint64_t id);
	static void on_expired(void* ctx, std::string_view stored) noexcept;
	Server* srv_ = nullptr;
	std::vector<std::uint64_t> replicas_;  ///< client ids
	std::vector<Effect> prop_;             ///< effects of the running command (or EXEC)
	bool prop_custom_ = false;             ///< the handler called propagate_as()
	int repl_db_ = -1;                     ///< database the stream last SELECTed
	std::uint64_t repl_offset_ = 0;
	std::string repl_id_;
	std::uint64_t last_repl_ping_ns_ = 0;
	bool lazy_expire_unlink_ = true;  ///< lazyfree-lazy-expire: expiries as UNLINK (else DEL)
	void dispatch(Ctx& x);
	Client& client_of(Server& srv, Conn& c);

	// ---- scripting (cmd_script.cpp) ----
	struct ScriptCaller {
		Server* srv_ptr = nullptr;
		Conn* c_ptr = nullptr;
	};
	struct ScriptRun {
		bool running = false;
		bool read_only = false;  ///< EVAL_RO / EVALSHA_RO
		ScriptCaller* caller = nullptr;
	};
	/// A fresh interpreter for one script (nullptr when it cannot be made).
	lua_State* new_lua();
	/// Checks that `body` compiles and caches it (sha1 -> body); false
	/// after replying the compile error.
	bool script_load(Ctx& x, std::string_view body, std::string& sha);
	void eval_generic(Ctx& x, bool by_sha, bool read_only);
	std::unordered_map<std::string, std::string> script_bodies_;  ///< sha1 -> body
	std::string script_out_;                ///< script_call()'s result
	std::vector<std::string> script_args_;  ///< script_call()'s arguments
	Client script_client_;  ///< the client a script's commands run as
	ScriptRun script_;

	// ---- publish/subscribe (cmd_pubsub.cpp) ----
	static std::size_t subscriptions(const Client& cl) noexcept;
	void subscribe_generic(Ctx& x, bool pattern);
	void unsubscribe_generic(Ctx& x, bool pattern);
	void drop_subscription(Client& cl, const std::string& ch, bool pattern);
	/// RESET, close: leaves every channel and pattern.
	void unsubscribe_all(Client& cl);
	/// Delivers to every subscriber; the number that got it.
	std::int64_t publish(std::string_view channel, std::string_view message);
	std::map<std::string, std::vector<std::uint64_t>> channels_;  ///< channel -> client ids
	std::map<std::string, std::vector<std::uint64_t>> patterns_;            ///< pattern -> client ids

	// ---- collections (coll.cpp; the encoding: coll.h) ----
	/// The type of a stored value: 0 a string, else coll::kList / kSet.
	std::uint8_t vtype_of(const ValueRef& v) const noexcept
	{
		if (!v.typed || v.slices.empty()) [[likely]]
			return 0;
		return static_cast<std::uint8_t>(pool_.buffer(v.slices[0].buf)[v.slices[0].off]);
	}
	/// Redis's WRONGTYPE error.
	static void wrong_type(Ctx& x);
	/// A collection read for a command.
	struct CollVal {
		bool exists = false;
		bool hashtable = false;  ///< a set that left the intset encoding (coll.h, version 2)
		std::uint64_t expiry = 0;
		std::vector<std::string> items;
	};
	/// Reads stored key `stored` as a collection of type `type` (absent:
	/// exists false, no items). False after replying WRONGTYPE (a value of
	/// another type) or an error (a malformed value).
	bool read_coll(Ctx& x, std::string_view stored, std::uint8_t type, CollVal& out);
	/// Stores `items` as the collection `stored` of type `type` (deletes the
	/// key when empty: Redis has no empty collections), with `expiry`.
	/// False after replying the refusal (too large: coll::kMaxBytes; pool
	/// or log full).
	bool write_coll(Ctx& x, std::string_view stored, std::uint8_t type, const std::vector<std::string>& items,
			std::uint64_t expiry, bool hashtable = false);
	/// One write_coll() of a command that rewrites two collections (LMOVE,
	/// SMOVE: the source and the destination).
	struct CollWrite {
		std::string_view stored;
		const std::vector<std::string>* items;
		std::uint64_t expiry;
		bool hashtable = false;
	};
	/// write_coll() of every `w` as one batch, admitted whole and applied
	/// whole or not at all (a refusal or a crash between them must neither
	/// lose nor duplicate a moved element). False after replying.
	bool write_colls(Ctx& x, std::uint8_t type, std::initializer_list<CollWrite> w);
	/// A set's members in their stored order (coll.h): ascending while
	/// all are integers and fit set-max-intset-entries (intset); else
	/// `hashtable` becomes true, for good (insertion order).
	void order_set(std::vector<std::string>& members, bool& hashtable) const;
	std::int64_t intset_limit() const;
	/// The encoding OBJECT ENCODING reports for a collection (Redis 7.0).
	std::string coll_encoding(std::uint8_t type, const std::vector<std::string>& items, bool hashtable) const;
	/// A hash (fields and values alternately, coll.h) leaves the listpack
	/// encoding (`hashtable` true, for good) when it has more fields than
	/// hash-max-listpack-entries or a field or value longer than
	/// hash-max-listpack-value (Redis 7.0).
	void order_hash(const std::vector<std::string>& items, bool& hashtable) const;
	/// HSET/HMSET: stores the field/value pairs from argument 2 on; the
	/// number of fields added, -1 after replying an error.
	std::int64_t hash_set_args(Ctx& x);
	/// A tuning_ value as an integer (`dflt` when absent or not one).
	std::int64_t tuning_i64(std::string_view name, std::int64_t dflt) const;
	/// read_coll() of the key in argument `i`; `key` its stored form.
	bool read_arg_coll(Ctx& x, std::size_t i, std::uint8_t type, std::string& key, CollVal& out);
	/// Redis's "ERR syntax error".
	static void syntax_error(Ctx& x);
	/// Argument `i` as an integer; false after replying Redis's error.
	static bool arg_i64(Ctx& x, std::size_t i, std::int64_t& v);
	/// Argument `i` as a SCAN-family cursor; false after "ERR invalid cursor".
	static bool arg_cursor(Ctx& x, std::size_t i, std::uint64_t& cursor);
	/// Arguments 2.. as integers (as many as `ints`), then read_arg_coll()
	/// of the list in argument 1; false after replying an error.
	bool list_args(Ctx& x, std::span<std::int64_t> ints, std::string& key, CollVal& l);
	/// LRANGE/LTRIM's arguments: list_args() and the range clamped as Redis
	/// does ([start, end] within [0, n), or empty: start > end).
	bool list_range_args(Ctx& x, std::int64_t& start, std::int64_t& end, std::string& key, CollVal& l);
	/// LPOP/RPOP/SPOP's arguments: the optional COUNT (argument 2, >= 0;
	/// else 1), then read_arg_coll() of argument 1; false after replying.
	bool pop_args(Ctx& x, std::uint8_t type, std::int64_t& count, std::string& key, CollVal& out);
	/// `items` as an array (a set under RESP3 when `as_set`) of bulks.
	static void reply_items(Ctx& x, std::span<const std::string> items, bool as_set);
	void push_generic(Ctx& x, bool left, bool only_existing);
	void pop_generic(Ctx& x, bool left);
	/// Pops up to `count` elements of list `l` (stored key `key`) from one
	/// end into `out` and stores the rest; false after replying a refusal.
	bool list_pop(Ctx& x, std::string_view key, CollVal& l, bool left, std::int64_t count,
		      std::vector<std::string>& out);
	void set_algebra_reply(Ctx& x, int op);
	/// A list or a set as JSON for HTTP GET: {"type":"list","items":[...]}
	/// (elements in LRANGE / SMEMBERS order); bad_request when an element is
	/// not UTF-8 text.
	MaybeRefusal coll_json(const ValueRef& v, std::string& body) const;
	/// LMOVE's move of one element from `s` (stored key `src`, non-empty)
	/// to the list of argument 2; replies it. False after replying an error.
	bool list_move(Ctx& x, std::string_view src, CollVal& s, bool from_left, bool to_left);

	// ---- blocking commands (cmd_list.cpp) ----
	/// The deadline of a blocking command's timeout (argument `i`: seconds,
	/// Redis's parsing and errors); 0 for none. False after replying.
	bool parse_block_timeout(Ctx& x, std::size_t i, std::uint64_t& deadline);
	/// Argument `i` names a key holding a value of another type than `type`.
	bool other_type_at(Ctx& x, std::size_t i, std::uint8_t type);
	/// Pops from the first non-empty list of arguments [first, first+n) and
	/// replies [key, element] (mpop: [key, [elements]]). 1 served, 0 all
	/// empty (nothing replied), -1 an error replied.
	int pop_first(Ctx& x, std::size_t first, std::size_t n, bool left, std::int64_t count, bool mpop);
	/// Nothing to take: parks the client until `deadline` (true), or, where
	/// it may not block (MULTI/EXEC, scripts), answers the timeout's null.
	/// While a parked client's command is retried: does nothing (false).
	bool wait_or_timeout(Ctx& x, std::uint64_t deadline, bool null_array);
	void bpop_generic(Ctx& x, bool left);
	void mpop_generic(Ctx& x, std::size_t numkeys_at, bool block);
	void bmove_generic(Ctx& x, bool from_left, bool to_left, std::size_t timeout_at);
	void sort_generic(Ctx& x, bool read_only);
	/// A request of a parked client: kept for after its blocking command.
	void hold_request(Ctx& x);
	/// Runs a parked client's command again; true when it answered.
	bool retry_blocked(Server& srv, Conn& c, Client& cl);
	/// Un-parks `cl` (answered) and runs the requests it sent meanwhile.
	void unblock(Server& srv, Conn& c, Client& cl);
	/// After a write: retries the parked clients in the order they blocked.
	void serve_blocked(Server& srv);
	/// CLIENT UNBLOCK: answers parked client `id` as on a timeout (or with
	/// an UNBLOCKED error); false when no such client is parked.
	bool unblock_client(Server& srv, std::uint64_t id, bool as_error);
	/// Answers the parked clients whose timeout passed.
	void expire_blocked(Server& srv);
	/// Requests a parked client may pipeline behind its blocking command.
	static constexpr std::uint64_t kMaxPendingBytes = 64u << 20;
	std::vector<std::uint64_t> blocked_;  ///< parked clients' ids, in the order they blocked
	bool retrying_ = false;  ///< a parked client's command runs again (may not block)
	bool serving_ = false;   ///< serve_blocked() runs
	/// SINTER/SUNION/SDIFF of the keys from argument `first` (`op` 0, 1,
	/// 2); false after replying an error.
	bool set_algebra(Ctx& x, std::size_t first, int op, std::vector<std::string>& out);
	void set_algebra_store(Ctx& x, int op);

	// ---- store helpers (store.cpp) ----
	/// Redis's OOM refusal, saying what is full: the pool's buffers, or the
	/// checkpoint/log capacity (docs/wal-format.md §Capacity).
	Refusal pool_full_refusal() const;
	Refusal capacity_refusal() const;
	/// A group (`what`: "the transaction", "the script", ...) of `records`
	/// log records (0: not known, more than the limit) that no batch can
	/// take at once (-EMSGSIZE): refused for good, not "pool full"
	/// (`frees`: freeing entries only, which may use the whole ring).
	Refusal batch_too_large(std::string_view what, std::uint64_t records, bool frees) const;
	/// The stored form of `key` in the client's database (see the top).
	std::string_view skey(const Ctx& x, std::string_view key, std::string& buf) const;
	/// Key bytes of argument i as a pool slice: in place when possible.
	int key_slice(Ctx& x, std::size_t i, Slice& out);
	int bytes_slice(std::string_view bytes, Slice& out);
	void value_slices(Conn& c, StreamRange r);
	int kv_slices(Conn& c, StreamRange key, StreamRange value, Slice& k);
	/// values_ = `bytes` copied into pool buffers (several when large:
	/// then held in held_ until release_held(), after staging).
	int set_value_bytes(std::string_view bytes);
	void release_held() noexcept;
	std::vector<std::uint32_t> held_;  ///< buffers of a large value being written
	/// Key and value slices for argument i (key) and j (value).
	int arg_kv_slices(Ctx& x, std::size_t i, std::size_t j, Slice& k);
	/// Stages a SET of values_; nullopt or why not.
	MaybeRefusal stage_set(const Slice& key, std::uint64_t expiry, bool typed = false);
	/// A whole checkpoint now (SAVE, BGSAVE, DEBUG RELOAD); nullopt or why not.
	/// Inside EXEC it is only scheduled: EXEC takes it once all of its
	/// writes are staged, so it never makes part of a transaction durable.
	MaybeRefusal checkpoint_now();
	/// Stages a DEL; 1, 0 or -errno.
	int stage_del(const Slice& key);
	void reply_value(Ctx& x, const ValueRef& v);
	void reply_value_copy(Ctx& x, const ValueRef& v);
	void reply_null(Ctx& x);
	void reply_null_array(Ctx& x) { daxnet::proto::resp::null_array(x.o, x.resp3()); }
	void reply_map(Ctx& x, std::uint64_t n) { daxnet::proto::resp::map(x.o, n, x.resp3()); }
	void reply_verbatim(Ctx& x, std::string_view s) { daxnet::proto::resp::verbatim(x.o, s, x.resp3()); }
	/// The physical database a stored key belongs to (see the top); -1 for
	/// the reserved keys (FF FE <byte >= 16>: the database map).
	static int db_of(std::string_view stored) noexcept
	{
		if (stored.size() >= 3 && stored[0] == '\xff' && stored[1] == '\xfe')
			return static_cast<unsigned char>(stored[2]) < kDatabases ? static_cast<unsigned char>(stored[2]) : -1;
		return 0;
	}
	/// Physical database of database `db` (as SELECTed).
	int phys(int db) const noexcept { return db_map_[static_cast<std::size_t>(db)]; }
	/// Database (as SELECTed) of physical database `p`.
	int logical(int p) const noexcept { return db_unmap_[static_cast<std::size_t>(p)]; }
	/// The stored key of the database map (see the top).
	static constexpr std::string_view kDbMapKey{"\xff\xfe\x10" "dbmap", 8};
	/// Reads the database map (identity when absent or malformed).
	void load_db_map();
	void set_db_map_identity() noexcept;
	std::string info_text(Server& srv, std::span<const std::string_view> sections);
	bool key_fits(Ctx& x, std::size_t i);
	void cmd_incr_by(Ctx& x, std::int64_t delta);
	bool auth_ok(std::string_view user, std::string_view pass) const;
	std::string client_line(Server& srv, const Client& cl, std::string_view cmd);
	bool config_get(std::string_view name, std::string& out) const;
	void expire_generic(Ctx& x, std::uint64_t base_ms, bool seconds);
	/// TTL, PTTL, EXPIRETIME, PEXPIRETIME: `ms` or seconds, left or `absolute`.
	void ttl_generic(Ctx& x, bool ms, bool absolute);
	void getrange_impl(Ctx& x);
	void rename_impl(Ctx& x, bool nx);
	/// RENAME, RENAMENX, MOVE: the source's delete and the destination's
	/// write (value `v`, the source's) as one atomic group, admitted whole:
	/// a refusal or a crash never loses or duplicates the key. False after
	/// replying the refusal.
	bool move_stored(Ctx& x, std::string_view src, std::string_view dst, const ValueRef& v);
	/// SETEX (`seconds`) and PSETEX: key, time (argument 2), value.
	void set_with_expiry(Ctx& x, bool seconds);
	/// EX/PX/EXAT/PXAT value -> absolute ms; false after replying the error.
	bool parse_expiry(Ctx& x, std::string_view unit, std::string_view val, const char* cmd, std::int64_t& ms);
	/// The name an expiry deletion propagates as (lazyfree-lazy-expire).
	const char* expire_del_name() const noexcept { return lazy_expire_unlink_ ? "UNLINK" : "DEL"; }
	std::uint64_t now_ms() const noexcept { return daxnet::pmem::realtime_ns() / 1000000; }

	// ---- stored-key helpers ----
	/// The value of a stored key (1), or 0.
	int lookup(std::string_view stored, ValueRef& v) noexcept;
	static std::string value_bytes(const daxnet::pmem::PoolView& pool, const ValueRef& v);
	/// Stores `bytes` under `stored` (copied into pool buffers); nullopt or why not.
	/// `typed`: a collection (coll.h), stored as a typed value.
	MaybeRefusal put_bytes(std::string_view stored, std::string_view bytes, std::uint64_t expiry, bool typed = false);
	/// Stores existing value slices under `stored` (no value copy), typed
	/// when `typed` (the source's ValueRef::typed).
	MaybeRefusal put_slices(std::string_view stored, std::span<const Slice> value, std::uint64_t expiry,
				bool typed = false);
	/// Deletes a stored key: 1, 0, -errno.
	int del_stored(std::string_view stored);
	/// Stages a FLUSHALL; 0 or -errno.
	int flush_all_stored();
	/// WATCH: a stored key was (or may have been) modified.
	void touch(std::string_view stored);
	/// WATCH: every watched key of database `db` (-1: all) that exists now.
	void touch_db(int db);
	/// WATCH: marks `cl`'s transaction to abort (dirty_cas), noted in an
	/// atomic group (touched_).
	void dirty(Client& cl);
	void unwatch_all(Client& cl);
	void note_expiry(std::string_view stored, std::uint64_t expiry_ns);
	void active_expire();
	/// Stored keys of database `db` (not expired), in any order.
	void keys_of_db(int db, std::vector<std::string>& out);
	std::uint64_t dbsize_of(int db);
	std::uint64_t expiry_ns_of_ms(std::int64_t ms) const noexcept;
	void refuse_pool_full(Ctx& x);
	/// Admission of a multi-key write (key/value pairs from argument
	/// `first`) as one batch, all or nothing (docs/wal-format.md
	/// §Capacity). Replies and returns false when refused.
	bool admit_batch(Ctx& x, std::size_t first);
	bool stage_pairs(Ctx& x);
	/// A group of writes admitted whole or refused whole (MSET, EXEC, a
	/// script): the store's batch mode (KvStore::batch_begin(): no
	/// checkpoint in between, every entry can be taken back) and what the
	/// service queued for replicas and counted meanwhile. Nests.
	struct Atomic {
		KvStore::BatchMark mark;
		std::size_t prop = 0;
		std::size_t pubs = 0, touched = 0, config = 0;  ///< pubs_, touched_, config_undo_ then
		std::uint64_t writes = 0, space_refusals = 0;
		bool store_refused = false;
	};
	Atomic begin_atomic();
	/// Whether a write was refused for space since `a` began (pool full,
	/// checkpoint capacity, log room): the group is then refused whole.
	bool atomic_refused(const Atomic& a) const noexcept;
	/// Ends `a`; `undo`: takes back every write staged since it began
	/// (store, replication queue, counters, the database map). Never
	/// throws: batch mode always ends.
	void end_atomic(const Atomic& a, bool undo) noexcept;
	/// An atomic group as a scope. end() ends it; leaving the scope
	/// without end() (an exception such as bad_alloc on the way) takes
	/// the group back, so batch mode never outlives the command.
	class AtomicGroup {
	public:
		explicit AtomicGroup(KvService& s) : s_(s), a_(s.begin_atomic()) {}
		AtomicGroup(const AtomicGroup&) = delete;
		AtomicGroup& operator=(const AtomicGroup&) = delete;
		~AtomicGroup()
		{
			if (!ended_)
				s_.end_atomic(a_, true);
		}
		bool refused() const noexcept { return s_.atomic_refused(a_); }
		void end(bool undo) noexcept
		{
			ended_ = true;
			s_.end_atomic(a_, undo);
		}

	private:
		KvService& s_;
		Atomic a_;
		bool ended_ = false;
	};

	KvStore& kv_;
	daxnet::pmem::PoolView pool_;
	daxnet::pmem::BufferAllocator& alloc_;
	daxnet::pmem::ScratchArena arena_;
	KvConfig cfg_;
	daxnet::svc::StoreCore core_;  ///< commit per pass, reclaim policy
	std::vector<Slice> values_;
	std::vector<std::string_view> argv_;
	std::vector<std::string> inline_args_;
	std::string scratch_;
	std::string keybuf_;
	std::uint64_t next_client_id_ = 1;
	std::uint64_t writes_ = 0;
	std::uint64_t refused_ = 0;
	/// Refusals for space (pool full, checkpoint capacity, log room): an
	/// atomic group that saw one is refused whole (atomic_refused()).
	mutable std::uint64_t space_refusals_ = 0;
	std::uint64_t atomic_undos_ = 0;  ///< atomic groups taken back whole
	bool flushed_in_atomic_ = false;  ///< a FLUSHALL/FLUSHDB ran in an atomic group
	/// The side effects of an atomic group, held or noted until it stands
	/// (docs/design.md §Capacity and limits): PUBLISHes are delivered when
	/// the outermost group ends (dropped when it is refused), WATCHers it
	/// dirtied are clean again and CONFIG SETs are set back when refused.
	struct PendingPub {
		std::string channel, message;
	};
	std::vector<PendingPub> pubs_;
	std::uint64_t pubs_bytes_ = 0;  ///< channel + message bytes in pubs_
	/// Bound on pubs_bytes_: the hard output limit, or this without one.
	static constexpr std::uint64_t kHeldPubDefault = 64ull << 20;
	std::uint64_t held_pub_limit() const noexcept;
	std::vector<std::uint64_t> touched_;  ///< clients a group's writes made dirty_cas
	std::vector<std::pair<std::string, std::string>> config_undo_;  ///< (name, value before) of CONFIG SETs
	/// Sets one CONFIG SET parameter (validated): name, value.
	void config_apply(std::string_view n, std::string_view v);
	/// PUBLISH's delivery to every subscriber of `channel` (now): receivers.
	std::int64_t deliver(std::string_view channel, std::string_view message, bool send);
	daxnet::proto::OutBuf exec_out_;  ///< EXEC's replies until it is known to stand
	std::uint64_t packed_ = 0;  ///< bytes of small keys+values copied into packed buffers
	std::uint64_t expired_keys_ = 0, hits_ = 0, misses_ = 0, errors_ = 0;
	std::uint64_t start_ns_ = 0, last_save_ns_ = 0, writes_at_save_ = 0;
	std::uint64_t maxclients_ = 10000;
	std::uint64_t maxmemory_ = 0;
	std::uint64_t min_replicas_ = 0;  ///< CONFIG SET min-replicas-to-write: > 0 refuses writes (no replicas)  ///< CONFIG SET maxmemory: denyoom commands refused above (0: none)
	/// Redis tuning parameters (encodings of types daxnet-kv does not
	/// store, and the like): CONFIG SET accepts integers, CONFIG GET shows
	/// them; they change nothing.
	std::map<std::string, std::string, std::less<>> tuning_ = {
		{"hash-max-listpack-entries", "128"}, {"hash-max-listpack-value", "64"},
		{"hash-max-ziplist-entries", "128"},  {"hash-max-ziplist-value", "64"},
		{"list-compress-depth", "0"},	      {"list-max-listpack-size", "-2"},
		{"list-max-ziplist-size", "-2"},      {"set-max-intset-entries", "512"},
		{"set-max-listpack-entries", "128"},  {"set-max-listpack-value", "64"},
		{"slowlog-log-slower-than", "10000"}, {"slowlog-max-len", "128"},
		{"stream-node-max-bytes", "4096"},    {"stream-node-max-entries", "100"},
		{"zset-max-listpack-entries", "128"}, {"zset-max-listpack-value", "64"},
		{"zset-max-ziplist-entries", "128"},  {"zset-max-ziplist-value", "64"},
		{"active-expire-effort", "1"},	      {"lua-time-limit", "5000"},
		{"busy-reply-threshold", "5000"},     {"repl-ping-replica-period", "10"},
		{"min-replicas-max-lag", "10"},
	};
	bool over_maxmemory() const noexcept
	{
		return maxmemory_ != 0 &&
		       (alloc_.count() - alloc_.free_count()) * std::uint64_t{pool_.buffer_size()} > maxmemory_;
	}
	std::string run_id_;
	struct CmdStat {
		std::uint64_t calls = 0, rejected = 0, failed = 0;
		std::uint64_t ns = 0;  ///< time in the handler (CLOCK_MONOTONIC)
	};
	/// INFO instantaneous_*: rates over the last 16 intervals of >= 100 ms
	/// (sampled at the end of a pass and at INFO; an idle gap counts as
	/// intervals of nothing).
	struct RateSamples {
		static constexpr int kSlots = 16;
		std::uint64_t last_ns = 0, last_ops = 0, last_in = 0, last_out = 0;
		double ops[kSlots] = {}, in_kbps[kSlots] = {}, out_kbps[kSlots] = {};
		int next = 0, filled = 0;
	};
	RateSamples rates_;
	std::uint64_t ops_ = 0;  ///< commands executed (handlers run)
	void sample_rates(Server& srv) noexcept;
	static double rate_avg(const double* v, int n) noexcept;
	std::vector<CmdStat> cmd_stats_;  ///< by command_table() index
	std::unordered_map<std::uint64_t, Client*> clients_;  ///< by Client::id
	std::unordered_map<std::string, std::vector<std::uint64_t>> watched_;  ///< stored key -> client ids
	std::multimap<std::uint64_t, std::string> expq_;  ///< expiry ns -> stored key (may be stale)
	std::uint64_t last_cycle_ns_ = 0;
	bool active_expire_ = true;
	bool in_exec_ = false;
	bool checkpoint_after_exec_ = false;  ///< a command inside EXEC asked for a checkpoint
	bool multi_db_ = false;  ///< keys of databases other than 0 (or the map) may exist
	std::uint8_t db_map_[kDatabases] = {}, db_unmap_[kDatabases] = {};  ///< logical -> physical, inverse
	std::uint64_t cmds_offset_ = 0, conns_offset_ = 0;  ///< CONFIG RESETSTAT
};

}  // namespace daxnet::kv
