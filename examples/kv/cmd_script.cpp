// SPDX-License-Identifier: BSD-2-Clause
//
// Scripting: EVAL / EVALSHA / EVAL_RO / EVALSHA_RO and SCRIPT LOAD / EXISTS /
// FLUSH / KILL, on Lua 5.1 (Debian liblua5.1-0) as Redis 7.0 does.
//
// A script runs to completion inside the event-loop pass of its EVAL: no
// other client's command runs in between (Redis' atomicity), and its writes
// are staged into that pass's commit batch like an EXEC's, so after a crash
// all of a script's writes are there or none (docs/design.md). No checkpoint
// runs between a script's writes; a write refused for space (checkpoint
// capacity, free buffers) refuses the whole script (-OOM, none of its writes
// applied -- Redis refuses at maxmemory before a script runs, and never
// undoes), and a run that found only the log short is run again after a
// checkpoint made the room (eval_generic()).
// Replicas get the script's effects (the write commands it ran), wrapped in
// MULTI/EXEC when there are several, never the script itself.
//
// redis.call / redis.pcall go through dispatch() like any request, with the
// reply captured and converted to Lua values (RESP2 conversion rules);
// the script's own return value is converted back to the caller's
// protocol.
//
// Every EVAL runs in a fresh interpreter (compiled from the cached body):
// nothing a script does -- globals, library functions, metatables, memory
// it keeps -- is seen by the next one, at the cost of a compile per call
// (tens of microseconds). Globals are protected (a script cannot create or
// read unknown globals); the io, os, package and debug libraries,
// loadfile, dofile and newproxy (the only way to a __gc finaliser in 5.1)
// are not there; string.rep is bounded.
//
// Lua 5.1 raises errors with longjmp, which skips C++ destructors and,
// outside lua_pcall, ends the process: no C++ object with a destructor is
// alive in a frame a Lua error can cross (redis.call keeps its buffers in
// the service), and outside the script's lua_pcall the heap has headroom
// above the script's cap, so the little the service allocates there
// cannot fail.
//
// Busy scripts: daxnet-kv serves no other client while a script runs (its
// event loop is the script's caller), so it cannot take a SCRIPT KILL from
// another client as Redis does. A script that runs longer than
// busy-reply-threshold (alias lua-time-limit; 5 s by default) is
// stopped with an error instead; writes it made before are kept (Redis
// cannot kill a script that wrote either, only SHUTDOWN NOSAVE). Once
// stopped, every instruction raises again, so pcall/xpcall/coroutines
// cannot catch the stop and go on. Time inside one C library call (a
// pathological string.find pattern) is not interrupted, as in Redis. The
// interpreter's memory is capped (kLuaMemoryLimit): an allocation past it
// fails the script with "not enough memory".
#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>

extern "C" {
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
}

#include "kv.h"

namespace daxnet::kv {

namespace resp = daxnet::proto::resp;

namespace {

// ---- SHA-1 (FIPS 180-4), for script ids as Redis names them ----

std::uint32_t rol(std::uint32_t v, int n) noexcept
{
	return (v << n) | (v >> (32 - n));
}

}  // namespace

std::string sha1_hex(std::string_view data)
{
	std::uint32_t h[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
	std::string msg(data);
	const std::uint64_t bits = static_cast<std::uint64_t>(data.size()) * 8;
	msg.push_back('\x80');
	while (msg.size() % 64 != 56)
		msg.push_back('\0');
	for (int i = 7; i >= 0; --i)
		msg.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
	for (std::size_t off = 0; off < msg.size(); off += 64) {
		std::uint32_t w[80];
		for (int i = 0; i < 16; ++i) {
			const auto* p = reinterpret_cast<const unsigned char*>(msg.data() + off + 4 * i);
			w[i] = (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
		}
		for (int i = 16; i < 80; ++i)
			w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
		std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
		for (int i = 0; i < 80; ++i) {
			std::uint32_t f, k;
			if (i < 20) {
				f = (b & c) | (~b & d);
				k = 0x5A827999u;
			} else if (i < 40) {
				f = b ^ c ^ d;
				k = 0x6ED9EBA1u;
			} else if (i < 60) {
				f = (b & c) | (b & d) | (c & d);
				k = 0x8F1BBCDCu;
			} else {
				f = b ^ c ^ d;
				k = 0xCA62C1D6u;
			}
			const std::uint32_t t = rol(a, 5) + f + e + k + w[i];
			e = d;
			d = c;
			c = rol(b, 30);
			b = a;
			a = t;
		}
		h[0] += a;
		h[1] += b;
		h[2] += c;
		h[3] += d;
		h[4] += e;
	}
	std::string out;
	for (std::uint32_t v : h)
		out += fmt::format("{:08x}", v);
	return out;
}

namespace {

constexpr std::size_t kLuaMemoryLimit = std::size_t{512} << 20;
/// Above the script's cap, for what the service allocates outside the
/// script's lua_pcall (arguments, reply conversion): it must not fail.
constexpr std::size_t kLuaHeadroom = std::size_t{64} << 20;
/// KEYS + ARGV bytes an EVAL may hand to a script (within kLuaHeadroom).
constexpr std::size_t kLuaArgsLimit = std::size_t{32} << 20;
/// string.rep results larger than this raise an error.
constexpr double kRepLimit = 64.0 * 1024 * 1024;

struct LuaHeap {
	std::size_t used = 0;
	std::size_t limit = kLuaMemoryLimit + kLuaHeadroom;
};

void* lua_heap_alloc(void* ud, void* ptr, std::size_t osize, std::size_t nsize) noexcept
{
	auto* heap = static_cast<LuaHeap*>(ud);
	if (nsize == 0) {
		std::free(ptr);
		heap->used -= osize;
		return nullptr;
	}
	if (nsize > osize && heap->used + (nsize - osize) > heap->limit)
		return nullptr;
	void* p = std::realloc(ptr, nsize);
	if (p)
		heap->used = heap->used - osize + nsize;
	return p;
}

LuaHeap g_lua_heap;
/// CLOCK_MONOTONIC deadline of the running script (one thread).
std::uint64_t g_script_deadline_ns = 0;
std::uint64_t g_script_limit_ms = 0;
bool g_script_stopped = false;

void script_hook(lua_State* L, lua_Debug*)
{
	if (!g_script_stopped && mono_ns() <= g_script_deadline_ns)
		return;
	if (!g_script_stopped) {
		// from now on every instruction raises: a pcall that catches
		// the stop cannot run on
		g_script_stopped = true;
		lua_sethook(L, script_hook, LUA_MASKCOUNT, 1);
	}
	luaL_error(L, "Script ran longer than lua-time-limit (%d ms) and was stopped: daxnet-kv serves no "
		      "other client while a script runs",
		   static_cast<int>(g_script_limit_ms));
}

KvService* service_of(lua_State* L) noexcept
{
	return static_cast<KvService*>(lua_touserdata(L, lua_upvalueindex(1)));
}

/// Pushes the Lua value of one RESP2/RESP3 reply at `s[pos..]` (Redis'
/// conversion: integer -> number, bulk -> string, null -> false, array ->
/// table, status -> {ok=...}, error -> {err=...}). Returns false when the
/// bytes are not one whole reply (never for a handler's output).
bool push_reply(lua_State* L, std::string_view s, std::size_t& pos)
{
	if (pos >= s.size())
		return false;
	const std::size_t eol = s.find("\r\n", pos);
	if (eol == std::string_view::npos)
		return false;
	const char t = s[pos];
	const std::string_view line = s.substr(pos + 1, eol - pos - 1);
	pos = eol + 2;
	auto num = [&](std::int64_t& v) { return parse_i64(line, v); };
	std::int64_t n = 0;
	switch (t) {
	case '+':
		lua_newtable(L);
		lua_pushlstring(L, line.data(), line.size());
		lua_setfield(L, -2, "ok");
		return true;
	case '-':
		lua_newtable(L);
		lua_pushlstring(L, line.data(), line.size());
		lua_setfield(L, -2, "err");
		return true;
	case ':':
		if (!num(n))
			return false;
		lua_pushnumber(L, static_cast<lua_Number>(n));
		return true;
	case '_':
		lua_pushboolean(L, 0);
		return true;
	case '#':
		lua_pushboolean(L, line == "t");
		return true;
	case ',':
		lua_pushlstring(L, line.data(), line.size());
		return true;
	case '$':
	case '=':
		if (!num(n))
			return false;
		if (n < 0) {
			lua_pushboolean(L, 0);
			return true;
		}
		if (pos + static_cast<std::size_t>(n) + 2 > s.size())
			return false;
		if (t == '=' && n >= 4)
			lua_pushlstring(L, s.data() + pos + 4, static_cast<std::size_t>(n) - 4);
		else
			lua_pushlstring(L, s.data() + pos, static_cast<std::size_t>(n));
		pos += static_cast<std::size_t>(n) + 2;
		return true;
	case '*':
	case '~':
	case '%':
	case '>': {
		if (!num(n))
			return false;
		if (n < 0) {
			lua_pushboolean(L, 0);
			return true;
		}
		const std::int64_t items = t == '%' ? 2 * n : n;
		lua_createtable(L, static_cast<int>(std::min<std::int64_t>(items, 1 << 16)), 0);
		for (std::int64_t i = 1; i <= items; ++i) {
			if (!lua_checkstack(L, 4) || !push_reply(L, s, pos))
				return false;
			lua_rawseti(L, -2, static_cast<int>(i));
		}
		return true;
	}
	default:
		return false;
	}
}

/// redis.call (raise = true) and redis.pcall.
///
/// Lua 5.1 raises errors with longjmp, which skips C++ destructors: no C++
/// object may be alive in a frame when lua_error() (or a Lua allocation
/// that can fail) runs. The command's outcome (the reply or the error) is
/// kept by the service, copied into a Lua string (stack slot argc + 1) and
/// converted from there.
int redis_call(lua_State* L, bool raise)
{
	const int argc = lua_gettop(L);
	bool failed = false;
	// the outcome lives in the service (no C++ object in this frame)
	const std::string& out = service_of(L)->script_call(L, argc, failed);
	lua_pushlstring(L, out.data(), out.size());
	std::size_t n = 0;
	const char* p = lua_tolstring(L, argc + 1, &n);
	if (failed) {
		lua_newtable(L);
		lua_pushvalue(L, argc + 1);
		lua_setfield(L, -2, "err");
		if (raise)
			return lua_error(L);
		return 1;
	}
	std::size_t pos = 0;
	if (!push_reply(L, std::string_view(p, n), pos)) {
		lua_pushstring(L, "ERR reply of the command could not be read");
		return lua_error(L);
	}
	if (raise && lua_istable(L, -1)) {
		lua_getfield(L, -1, "err");
		const bool is_err = lua_isstring(L, -1);
		lua_pop(L, 1);
		if (is_err)
			return lua_error(L);  // the {err=...} table itself
	}
	return 1;
}

int l_call(lua_State* L)
{
	return redis_call(L, true);
}

int l_pcall(lua_State* L)
{
	return redis_call(L, false);
}

int l_sha1hex(lua_State* L)
{
	if (lua_gettop(L) != 1) {
		lua_pushstring(L, "wrong number of arguments");
		return lua_error(L);
	}
	std::size_t n = 0;
	const char* p = lua_tolstring(L, 1, &n);
	char hex[41];
	{
		const std::string h = sha1_hex(p ? std::string_view(p, n) : std::string_view());
		std::memcpy(hex, h.data(), 40);
	}
	lua_pushlstring(L, hex, 40);  // may raise: no C++ object alive here
	return 1;
}

int status_or_error(lua_State* L, const char* field)
{
	if (lua_gettop(L) != 1 || !lua_isstring(L, 1)) {
		lua_pushstring(L, "wrong number or type of arguments");
		return lua_error(L);
	}
	lua_newtable(L);
	lua_pushvalue(L, 1);
	lua_setfield(L, -2, field);
	return 1;
}

int l_status_reply(lua_State* L)
{
	return status_or_error(L, "ok");
}

int l_error_reply(lua_State* L)
{
	return status_or_error(L, "err");
}

int l_log(lua_State* L)
{
	if (lua_gettop(L) < 2) {
		lua_pushstring(L, "redis.log() requires two arguments or more.");
		return lua_error(L);
	}
	return 0;  // daxnet-kv keeps no log file of scripts
}

int l_setresp(lua_State* L)
{
	if (lua_gettop(L) != 1 || lua_tonumber(L, 1) != 2) {
		lua_pushstring(L, "RESP version must be 2 (daxnet-kv scripts speak RESP2)");
		return lua_error(L);
	}
	return 0;
}

void open_lib(lua_State* L, lua_CFunction f, const char* name)
{
	lua_pushcfunction(L, f);
	lua_pushstring(L, name);
	lua_call(L, 1, 0);
}

// Installed after the libraries: unknown globals cannot be read or created.
constexpr const char* kProtect =
	"local dbg_error = error\n"
	"local rep, limit, max, tostr = string.rep, __rep_limit, math.max, tostring\n"
	"string.rep = function(s, n)\n"
	"  if type(n) == 'number' and n * max(#tostr(s), 1) > limit then\n"
	"    dbg_error('string.rep: result larger than 64 MiB', 2)\n"
	"  end\n"
	"  return rep(s, n)\n"
	"end\n"
	"__rep_limit = nil\n"
	"setmetatable(_G, {\n"
	"  __newindex = function(t, n, v) dbg_error(\"Script attempted to create global variable '\" .. tostring(n) .. \"'\", 2) end,\n"
	"  __index = function(t, n) dbg_error(\"Script attempted to access nonexistent global variable '\" .. tostring(n) .. \"'\", 2) end,\n"
	"})\n";

}  // namespace

namespace {

struct LuaClose {
	void operator()(lua_State* L) const noexcept { lua_close(L); }
};
using LuaPtr = std::unique_ptr<lua_State, LuaClose>;

}  // namespace

lua_State* KvService::new_lua()
{
	g_lua_heap = {};  // one interpreter at a time
	lua_State* L = lua_newstate(lua_heap_alloc, &g_lua_heap);
	if (!L)
		return nullptr;
	open_lib(L, luaopen_base, "");
	open_lib(L, luaopen_table, LUA_TABLIBNAME);
	open_lib(L, luaopen_string, LUA_STRLIBNAME);
	open_lib(L, luaopen_math, LUA_MATHLIBNAME);
	for (const char* g : {"loadfile", "dofile", "newproxy"}) {
		lua_pushnil(L);
		lua_setglobal(L, g);
	}
	lua_newtable(L);
	const std::pair<const char*, lua_CFunction> fns[] = {
		{"call", l_call},
		{"pcall", l_pcall},
		{"sha1hex", l_sha1hex},
		{"status_reply", l_status_reply},
		{"error_reply", l_error_reply},
		{"log", l_log},
		{"setresp", l_setresp},
	};
	for (const auto& [name, fn] : fns) {
		lua_pushlightuserdata(L, this);
		lua_pushcclosure(L, fn, 1);
		lua_setfield(L, -2, name);
	}
	const std::pair<const char*, int> levels[] = {
		{"LOG_DEBUG", 0}, {"LOG_VERBOSE", 1}, {"LOG_NOTICE", 2}, {"LOG_WARNING", 3}};
	for (const auto& [name, v] : levels) {
		lua_pushnumber(L, v);
		lua_setfield(L, -2, name);
	}
	lua_setglobal(L, "redis");
	lua_pushnumber(L, kRepLimit);
	lua_setglobal(L, "__rep_limit");
	if (luaL_dostring(L, kProtect) != 0) {
		lua_close(L);
		return nullptr;
	}
	return L;
}

const std::string& KvService::script_call(lua_State* L, int argc, bool& failed)
{
	failed = true;
	script_out_.clear();
	if (!script_.running) {
		script_out_ = "ERR redis.call can only be called inside a script invocation";
		return script_out_;
	}
	if (argc == 0) {
		script_out_ = "ERR Please specify at least one argument for this redis lib call";
		return script_out_;
	}
	try {
		script_args_.clear();
		for (int i = 1; i <= argc; ++i) {
			const int t = lua_type(L, i);
			if (t == LUA_TSTRING) {
				std::size_t n = 0;
				const char* p = lua_tolstring(L, i, &n);  // a string: no allocation, cannot raise
				script_args_.emplace_back(p, n);
			} else if (t == LUA_TNUMBER) {
				script_args_.push_back(fmt::format("{:.14g}", lua_tonumber(L, i)));  // as Lua converts
			} else {
				script_out_ = "ERR Lua redis lib command arguments must be strings or integers";
				return script_out_;
			}
		}
		const Cmd* cmd = find_command(script_args_[0]);
		if (!cmd) {
			script_out_ = "ERR Unknown Redis command called from script";
			return script_out_;
		}
		if (cmd->flags & kNoscript) {
			script_out_ = "ERR This Redis command is not allowed from script";
			return script_out_;
		}
		if (script_.read_only && (cmd->flags & kWrite)) {
			script_out_ = "ERR Write commands are not allowed from read-only scripts.";
			return script_out_;
		}
		std::vector<std::string_view> argv(script_args_.begin(), script_args_.end());
		OutBuf out;
		Ctx y{*script_.caller->srv_ptr, *script_.caller->c_ptr, script_client_, out, argv, nullptr};
		dispatch(y);
		script_out_.assign(out.view());
		failed = false;
	} catch (const std::bad_alloc&) {
		script_out_ = "ERR out of memory";  // never unwound through Lua's C frames
	}
	return script_out_;
}

void KvService::cmd_eval(Ctx& x)
{
	eval_generic(x, false, false);
}

void KvService::cmd_evalsha(Ctx& x)
{
	eval_generic(x, true, false);
}

void KvService::cmd_eval_ro(Ctx& x)
{
	eval_generic(x, false, true);
}

void KvService::cmd_evalsha_ro(Ctx& x)
{
	eval_generic(x, true, true);
}

namespace {

/// The script's return value (top of the stack) as a reply (Redis' Lua to
/// RESP conversion); pops it.
/// The string (or number) at the top of the stack on one line -- CR and LF
/// would end a RESP simple string or error early -- or `fallback`; pops it.
std::string pop_line(lua_State* L, const char* fallback)
{
	std::string s(fallback);
	if (lua_type(L, -1) == LUA_TSTRING) {
		std::size_t n = 0;
		const char* p = lua_tolstring(L, -1, &n);
		s.assign(p, n);
	} else if (lua_type(L, -1) == LUA_TNUMBER) {
		s = fmt::format("{:.14g}", lua_tonumber(L, -1));  // as Lua prints it, no Lua allocation
	}
	lua_pop(L, 1);
	std::replace_if(s.begin(), s.end(), [](char ch) { return ch == '\r' || ch == '\n'; }, ' ');
	return s;
}

/// Pushes t[name] of the table at the top without metamethods: a script's
/// tables may carry any metatable, and an error raised outside lua_pcall
/// would end the process.
void raw_field(lua_State* L, const char* name)
{
	lua_pushstring(L, name);
	lua_rawget(L, -2);
}

/// A Lua number as a RESP integer: truncated, NaN as 0, infinities clamped
/// (a plain cast of those is undefined).
std::int64_t lua_integer(lua_Number v) noexcept
{
	if (!(v == v))
		return 0;
	if (v >= 9.2233720368547758e18)
		return INT64_MAX;
	if (v <= -9.2233720368547758e18)
		return INT64_MIN;
	return static_cast<std::int64_t>(v);
}

void reply_lua(lua_State* L, OutBuf& o, bool resp3, int depth = 0)
{
	switch (lua_type(L, -1)) {
	case LUA_TSTRING: {
		std::size_t n = 0;
		const char* p = lua_tolstring(L, -1, &n);
		resp::bulk(o, std::string_view(p, n));
		break;
	}
	case LUA_TBOOLEAN:
		if (lua_toboolean(L, -1))
			resp::integer(o, 1);
		else
			resp::null(o, resp3);
		break;
	case LUA_TNUMBER:
		resp::integer(o, lua_integer(lua_tonumber(L, -1)));
		break;
	case LUA_TTABLE: {
		for (const char* field : {"err", "ok"}) {
			raw_field(L, field);
			if (lua_isstring(L, -1)) {
				const std::string line = pop_line(L, "");
				if (field[0] == 'e')
					resp::error(o, line);
				else
					resp::simple(o, line);
				lua_pop(L, 1);
				return;
			}
			lua_pop(L, 1);
		}
		if (depth > 100 || !lua_checkstack(L, 4)) {
			resp::error(o, "ERR reached lua stack limit");
			break;
		}
		// an array up to the first nil
		std::size_t n = 0;
		for (;; ++n) {
			lua_rawgeti(L, -1, static_cast<int>(n + 1));
			const bool nil = lua_isnil(L, -1);
			lua_pop(L, 1);
			if (nil)
				break;
		}
		resp::array(o, n);
		for (std::size_t i = 1; i <= n; ++i) {
			lua_rawgeti(L, -1, static_cast<int>(i));
			reply_lua(L, o, resp3, depth + 1);
		}
		break;
	}
	default:
		resp::null(o, resp3);
		break;
	}
	lua_pop(L, 1);
}

}  // namespace

bool KvService::script_load(Ctx& x, std::string_view body, std::string& sha)
{
	sha = sha1_hex(body);
	if (script_bodies_.contains(sha))
		return true;
	LuaPtr st(new_lua());
	if (!st) {
		resp::error(x.o, "ERR the Lua interpreter could not be created");
		return false;
	}
	lua_State* L = st.get();
	if (luaL_loadbuffer(L, body.data(), body.size(), "@user_script") != 0) {
		const std::string msg = pop_line(L, "?");
		resp::error(x.o, "ERR Error compiling script (new function): " + msg);
		return false;
	}
	script_bodies_.emplace(sha, std::string(body));
	return true;
}

void KvService::eval_generic(Ctx& x, bool by_sha, bool read_only)
{
	std::int64_t numkeys = 0;
	if (!parse_i64(x.arg(2), numkeys)) {
		resp::error(x.o, "ERR value is not an integer or out of range");
		return;
	}
	if (numkeys < 0) {
		resp::error(x.o, "ERR Number of keys can't be negative");
		return;
	}
	if (static_cast<std::uint64_t>(numkeys) > x.argc() - 3) {
		resp::error(x.o, "ERR Number of keys can't be greater than number of args");
		return;
	}
	if (script_.running) {
		resp::error(x.o, "ERR This Redis command is not allowed from script");
		return;
	}
	if (!read_only && over_maxmemory()) {
		++refused_;
		resp::error(x.o, "OOM command not allowed when used memory > 'maxmemory'.");
		return;
	}
	std::size_t arg_bytes = 0;
	for (std::size_t i = 3; i < x.argc(); ++i)
		arg_bytes += x.arg(i).size() + 32;
	if (arg_bytes > kLuaArgsLimit) {
		resp::error(x.o, fmt::format("ERR daxnet: script arguments too large ({} bytes, limit {})", arg_bytes,
					     kLuaArgsLimit));
		return;
	}
	std::string sha;
	if (by_sha) {
		sha.assign(x.arg(1));
		for (char& ch : sha)
			ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
		if (!script_bodies_.contains(sha)) {
			resp::error(x.o, "NOSCRIPT No matching script. Please use EVAL.");
			return;
		}
	} else if (!script_load(x, x.arg(1), sha)) {
		return;
	}
	const std::string& body = script_bodies_.at(sha);  // SCRIPT cannot run inside a script
	// The script's writes are one atomic group in batch mode, where no
	// checkpoint may make log room (it would make part of them durable),
	// and what it writes is known only as it runs. Log room is made
	// first for its arguments' worth and a sixteenth of the ring; a run
	// refused for log room alone is taken back whole -- no reply, PUBLISH,
	// replication, WATCHer or CONFIG SET of it was seen (end_atomic()) --
	// and run once more from the start with all the log room one batch
	// can have (KvStore::make_room: the pending checkpoint completed, or
	// a whole one, as a write outside a script makes its room). So a
	// script is refused only for what the pool cannot take: -OOM when
	// its writes pass the checkpoint capacity or the free buffers, and
	// "ERR daxnet: the script needs up to N log records..." when they are
	// more than one batch of the log holds; never for a guess. Inside
	// EXEC the script belongs to the EXEC's group (cmd_exec).
	const bool was_in_exec = in_exec_;
	std::uint64_t room = kv_.wal().nslots() / 16;
	for (std::size_t i = 3; i < x.argc(); ++i)
		room += daxnet::pmem::wal_records_for(x.arg(i).size() / pool_.buffer_size() + 2);
	for (int attempt = 0;; ++attempt) {
		LuaPtr st(new_lua());
		if (!st) {
			resp::error(x.o, "ERR the Lua interpreter could not be created");
			return;
		}
		lua_State* L = st.get();
		auto set_array = [&](const char* name, std::size_t from, std::size_t to) {
			lua_createtable(L, static_cast<int>(to - from), 0);
			for (std::size_t i = from; i < to; ++i) {
				lua_pushlstring(L, x.arg(i).data(), x.arg(i).size());
				lua_rawseti(L, -2, static_cast<int>(i - from + 1));
			}
			lua_pushstring(L, name);
			lua_insert(L, -2);
			lua_rawset(L, LUA_GLOBALSINDEX);
		};
		const std::size_t kend = 3 + static_cast<std::size_t>(numkeys);
		set_array("KEYS", 3, kend);
		set_array("ARGV", kend, x.argc());
		if (luaL_loadbuffer(L, body.data(), body.size(), "@user_script") != 0) {
			const std::string msg = pop_line(L, "?");
			resp::error(x.o, "ERR Error compiling script (new function): " + msg);
			return;
		}

		// the script's commands: a client of its own in the caller's
		// database; its writes join this pass's batch with no checkpoint
		// in between
		script_client_ = Client{};
		script_client_.authed = true;
		script_client_.db = x.cl.db;
		script_client_.id = 0;
		ScriptCaller caller{&x.srv, &x.c};
		script_ = {true, read_only, &caller};
		if (!was_in_exec) {
			if (attempt == 0)
				core_.reclaim_if_short();
			if (!read_only)
				(void)kv_.make_room(room);
		}
		in_exec_ = true;
		AtomicGroup grp(*this);
		std::uint64_t limit_ms = 5000;
		if (auto it = tuning_.find("busy-reply-threshold"); it != tuning_.end()) {
			std::int64_t v = 0;
			if (parse_i64(it->second, v) && v > 0)
				limit_ms = static_cast<std::uint64_t>(v);
		}
		g_script_limit_ms = limit_ms;
		g_script_deadline_ns = mono_ns() + limit_ms * 1000000ull;
		g_script_stopped = false;
		g_lua_heap.limit = kLuaMemoryLimit;  // the script's cap; headroom outside
		lua_sethook(L, script_hook, LUA_MASKCOUNT, 100000);
		const int rc = lua_pcall(L, 0, 1, 0);
		lua_sethook(L, nullptr, 0, 0);
		g_lua_heap.limit = kLuaMemoryLimit + kLuaHeadroom;
		in_exec_ = was_in_exec;
		script_ = {};
		const bool refused = grp.refused();
		const bool log_short = refused && !was_in_exec && kv_.batch_refused_log();
		grp.end(refused);
		if (refused && log_short && attempt == 0 && room < kv_.batch_log_limit()) {
			room = kv_.batch_log_limit();
			continue;
		}
		if (refused) {
			++refused_;
			if (log_short && room >= kv_.batch_log_limit())
				resp_refusal(x.o, batch_too_large("the script", 0, false));
			else
				resp::error(x.o, "OOM command not allowed when used memory > 'maxmemory'. (daxnet: a write of "
						 "the script found the pool full; none of its writes were applied)");
			return;
		}
		if (rc != 0) {
			if (lua_istable(L, -1)) {
				raw_field(L, "err");
				const std::string e = pop_line(L, "ERR unknown error");
				lua_pop(L, 1);
				resp::error(x.o, fmt::format("{} script: {}, on @user_script.", e, sha));
			} else {
				const std::string e = pop_line(L, "unknown error");
				resp::error(x.o, fmt::format("ERR {} script: {}, on @user_script.", e, sha));
			}
		} else {
			reply_lua(L, x.o, x.resp3());
		}
		return;
	}
}

void KvService::cmd_script(Ctx& x)
{
	const std::string_view sub = x.arg(1);
	if (ieq(sub, "load") && x.argc() == 3) {
		std::string sha;
		if (script_load(x, x.arg(2), sha))
			resp::bulk(x.o, sha);
		return;
	}
	if (ieq(sub, "exists") && x.argc() >= 3) {
		resp::array(x.o, x.argc() - 2);
		for (std::size_t i = 2; i < x.argc(); ++i) {
			std::string sha(x.arg(i));
			for (char& ch : sha)
				ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
			resp::integer(x.o, script_bodies_.contains(sha) ? 1 : 0);
		}
		return;
	}
	if (ieq(sub, "flush") && x.argc() <= 3) {
		if (x.argc() == 3 && !ieq(x.arg(2), "sync") && !ieq(x.arg(2), "async")) {
			resp::error(x.o, "ERR SCRIPT FLUSH only support SYNC|ASYNC option");
			return;
		}
		script_bodies_.clear();
		resp::ok(x.o);
		return;
	}
	if (ieq(sub, "kill") && x.argc() == 2) {
		resp::error(x.o, "NOTBUSY No scripts in execution right now.");
		return;
	}
	if (ieq(sub, "help") && x.argc() == 2) {
		static constexpr std::array<std::string_view, 9> kHelp = {
			"SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"EXISTS <sha1> [<sha1> ...]",
			"    Return information about the existence of the scripts in the script cache.",
			"FLUSH [ASYNC|SYNC]",
			"    Flush the Lua scripts cache.",
			"KILL",
			"    Kill the currently executing Lua script (daxnet-kv: there is never one).",
			"LOAD <script>",
			"    Load a script into the scripts cache without executing it.",
		};
		resp::array(x.o, kHelp.size());
		for (std::string_view l : kHelp)
			resp::simple(x.o, l);
		return;
	}
	resp::error(x.o, fmt::format("ERR unknown subcommand or wrong number of arguments for '{}'. Try SCRIPT HELP.",
				     sub));
}

}  // namespace daxnet::kv
