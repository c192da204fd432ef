// SPDX-License-Identifier: BSD-2-Clause
//
// The command table: one row per command (kv.h, struct Cmd). dispatch()
// does the checks the flags ask for before calling the handler; COMMAND
// (cmd_server.cpp) reports these rows.
#include <algorithm>
#include <cstring>

#include "kv.h"

namespace daxnet::kv {

namespace {

using S = KvService;

// Flag shorthands.
constexpr std::uint32_t W = kWrite, R = kReadonly, OOM = kDenyOom, F = kFast, L = kLoading, ST = kStale,
			A = kAdmin, NS = kNoscript, NA = kNoAuth;

// name, handler, arity, flags, first key, last key, step, group, since, summary
const Cmd kTable[] = {
	{"command", &S::cmd_command, -1, L | ST, 0, 0, 0, "server", "2.8.13", "Get array of Redis command details"},
	{"config", &S::cmd_config, -2, A | NS | L | ST, 0, 0, 0, "server", "2.0.0", "Get or set configuration parameters"},
	{"dbsize", &S::cmd_dbsize, 1, R | F, 0, 0, 0, "server", "1.0.0", "Return the number of keys in the selected database"},
	{"decr", &S::cmd_decr, 2, W | OOM | F, 1, 1, 1, "string", "1.0.0", "Decrement the integer value of a key by one"},
	{"decrby", &S::cmd_decrby, 3, W | OOM | F, 1, 1, 1, "string", "1.0.0", "Decrement the integer value of a key by the given number"},
	{"del", &S::cmd_del, -2, W, 1, -1, 1, "generic", "1.0.0", "Delete a key"},
	{"echo", &S::cmd_echo, 2, F, 0, 0, 0, "connection", "1.0.0", "Echo the given string"},
	{"exists", &S::cmd_exists, -2, R | F, 1, -1, 1, "generic", "1.0.0", "Determine if a key exists"},
	{"flushall", &S::cmd_flushall, -1, W, 0, 0, 0, "server", "1.0.0", "Remove all keys from all databases"},
	{"flushdb", &S::cmd_flushdb, -1, W, 0, 0, 0, "server", "1.0.0", "Remove all keys from the current database"},
	{"get", &S::cmd_get, 2, R | F, 1, 1, 1, "string", "1.0.0", "Get the value of a key"},
	{"incr", &S::cmd_incr, 2, W | OOM | F, 1, 1, 1, "string", "1.0.0", "Increment the integer value of a key by one"},
	{"incrby", &S::cmd_incrby, 3, W | OOM | F, 1, 1, 1, "string", "1.0.0", "Increment the integer value of a key by the given amount"},
	{"info", &S::cmd_info, -1, L | ST, 0, 0, 0, "server", "1.0.0", "Get information and statistics about the server"},
	{"mget", &S::cmd_mget, -2, R | F, 1, -1, 1, "string", "1.0.0", "Get the values of all the given keys"},
	{"mset", &S::cmd_mset, -3, W | OOM, 1, -1, 2, "string", "1.0.1", "Set multiple keys to multiple values"},
	{"ping", &S::cmd_ping, -1, F, 0, 0, 0, "connection", "1.0.0", "Ping the server"},
	{"pttl", &S::cmd_pttl, 2, R | F, 1, 1, 1, "generic", "2.6.0", "Get the time to live for a key in milliseconds"},
	{"quit", &S::cmd_quit, -1, NA | L | ST | F, 0, 0, 0, "connection", "1.0.0", "Close the connection"},
	{"select", &S::cmd_select, 2, L | ST | F, 0, 0, 0, "connection", "1.0.0", "Change the selected database for the current connection"},
	{"set", &S::cmd_set, -3, W | OOM, 1, 1, 1, "string", "1.0.0", "Set the string value of a key"},
	{"strlen", &S::cmd_strlen, 2, R | F, 1, 1, 1, "string", "2.2.0", "Get the length of the value stored in a key"},
	{"ttl", &S::cmd_ttl, 2, R | F, 1, 1, 1, "generic", "1.0.0", "Get the time to live for a key in seconds"},
};

/// Open-addressed table by FNV-1a of the lower-cased name: one short hash
/// loop and usually one compare per lookup.
constexpr std::size_t kSlots = 1024;

inline std::uint32_t name_hash(const char* p, std::size_t n) noexcept
{
	std::uint32_t h = 2166136261u;
	for (std::size_t i = 0; i < n; ++i)
		h = (h ^ static_cast<unsigned char>(p[i])) * 16777619u;
	return h;
}

struct Index {
	const Cmd* slot[kSlots] = {};
	Index()
	{
		for (const Cmd& c : kTable) {
			std::size_t i = name_hash(c.name, std::strlen(c.name)) & (kSlots - 1);
			while (slot[i])
				i = (i + 1) & (kSlots - 1);
			slot[i] = &c;
		}
	}
};

const Index kIndex;

[[maybe_unused]] const bool kSorted = [] {
	return std::is_sorted(std::begin(kTable), std::end(kTable),
			      [](const Cmd& a, const Cmd& b) { return std::string_view(a.name) < b.name; });
}();

}  // namespace

std::span<const Cmd> command_table() noexcept
{
	return kTable;
}

const Cmd* find_command(std::string_view name) noexcept
{
	char lc[32];
	if (name.size() > sizeof lc)
		return nullptr;
	for (std::size_t i = 0; i < name.size(); ++i) {
		const char ch = name[i];
		lc[i] = (ch >= 'A' && ch <= 'Z') ? static_cast<char>(ch - 'A' + 'a') : ch;
	}
	for (std::size_t i = name_hash(lc, name.size()) & (kSlots - 1);; i = (i + 1) & (kSlots - 1)) {
		const Cmd* c = kIndex.slot[i];
		if (!c)
			return nullptr;
		if (std::strncmp(c->name, lc, name.size()) == 0 && c->name[name.size()] == '\0')
			return c;
	}
}

}  // namespace daxnet::kv
