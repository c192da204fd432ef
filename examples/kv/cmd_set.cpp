// SPDX-License-Identifier: BSD-2-Clause
//
// Set commands (Redis 7.0 semantics and wording). A set is one durable
// value (coll.h), read whole and rewritten whole by every write: O(n) per
// command, bounded by coll::kMaxBytes (docs/design.md §daxnet-kv
// collections). SPOP propagates to replicas as the SREM of what it took.
#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "coll.h"
#include "kv.h"

namespace daxnet::kv {

namespace resp = daxnet::proto::resp;

namespace {

using Items = std::vector<std::string>;

}  // namespace

void KvService::cmd_sadd(Ctx& x)
{
	std::string key;
	CollVal s;
	if (!read_arg_coll(x, 1, coll::kSet, key, s))
		return;
	std::unordered_set<std::string_view> have(s.items.begin(), s.items.end());
	Items add;
	for (std::size_t i = 2; i < x.argc(); ++i)
		if (have.insert(x.arg(i)).second)
			add.emplace_back(x.arg(i));
	if (!add.empty()) {
		have.clear();  // views into s.items
		const auto added = static_cast<std::int64_t>(add.size());
		for (auto& m : add)
			s.items.push_back(std::move(m));
		order_set(s.items, s.hashtable);
		if (!write_coll(x, key, coll::kSet, s.items, s.expiry, s.hashtable))
			return;
		resp::integer(x.o, added);
		return;
	}
	resp::integer(x.o, 0);
}

void KvService::cmd_srem(Ctx& x)
{
	std::string key;
	CollVal s;
	if (!read_arg_coll(x, 1, coll::kSet, key, s))
		return;
	std::unordered_set<std::string_view> del;
	for (std::size_t i = 2; i < x.argc(); ++i)
		del.insert(x.arg(i));
	Items keep;
	keep.reserve(s.items.size());
	for (auto& m : s.items)
		if (!del.contains(m))
			keep.push_back(std::move(m));
	const auto removed = static_cast<std::int64_t>(s.items.size() - keep.size());
	if (removed && !write_coll(x, key, coll::kSet, keep, s.expiry, s.hashtable))
		return;
	resp::integer(x.o, removed);
}

void KvService::cmd_smembers(Ctx& x)
{
	std::string key;
	CollVal s;
	if (!read_arg_coll(x, 1, coll::kSet, key, s))
		return;
	reply_items(x, s.items, true);
}

void KvService::cmd_sismember(Ctx& x)
{
	std::string key;
	CollVal s;
	if (!read_arg_coll(x, 1, coll::kSet, key, s))
		return;
	resp::integer(x.o, std::find(s.items.begin(), s.items.end(), x.arg(2)) != s.items.end() ? 1 : 0);
}

void KvService::cmd_smismember(Ctx& x)
{
	std::string key;
	CollVal s;
	if (!read_arg_coll(x, 1, coll::kSet, key, s))
		return;
	const std::unordered_set<std::string_view> have(s.items.begin(), s.items.end());
	resp::array(x.o, x.argc() - 2);
	for (std::size_t i = 2; i < x.argc(); ++i)
		resp::integer(x.o, have.contains(x.arg(i)) ? 1 : 0);
}

void KvService::cmd_scard(Ctx& x)
{
	std::string key;
	CollVal s;
	if (read_arg_coll(x, 1, coll::kSet, key, s))
		resp::integer(x.o, static_cast<std::int64_t>(s.items.size()));
}

void KvService::cmd_spop(Ctx& x)
{
	const bool has_count = x.argc() == 3;
	std::int64_t count = 1;
	std::string key;
	CollVal s;
	if (!pop_args(x, coll::kSet, count, key, s))
		return;
	prop_custom_ = true;  // propagated as the SREM of what it took
	if (!s.exists || count == 0) {
		if (has_count)
			resp::set(x.o, 0, x.resp3());
		else
			reply_null(x);
		return;
	}
	const auto n = static_cast<std::size_t>(std::min<std::int64_t>(count, static_cast<std::int64_t>(s.items.size())));
	std::shuffle(s.items.begin(), s.items.end(), coll::rng());
	Items out(std::make_move_iterator(s.items.end() - static_cast<std::ptrdiff_t>(n)),
		  std::make_move_iterator(s.items.end()));
	s.items.resize(s.items.size() - n);
	order_set(s.items, s.hashtable);
	if (!write_coll(x, key, coll::kSet, s.items, s.expiry, s.hashtable))
		return;
	std::vector<std::string> argv{"SREM", std::string(x.arg(1))};
	argv.insert(argv.end(), out.begin(), out.end());
	propagate_as(x, std::move(argv));
	if (!has_count) {
		resp::bulk(x.o, out[0]);
		return;
	}
	reply_items(x, out, true);
}

void KvService::cmd_srandmember(Ctx& x)
{
	if (x.argc() > 3)
		return syntax_error(x);
	const bool has_count = x.argc() == 3;
	std::int64_t count = 1;
	if (has_count && (!parse_i64(x.arg(2), count) || count == INT64_MIN)) {
		resp::error(x.o, "ERR value is out of range");
		return;
	}
	std::string key;
	CollVal s;
	if (!read_arg_coll(x, 1, coll::kSet, key, s))
		return;
	if (!has_count) {
		if (s.items.empty())
			reply_null(x);
		else
			resp::bulk(x.o, s.items[coll::rng()() % s.items.size()]);
		return;
	}
	if (s.items.empty() || count == 0) {
		resp::array(x.o, 0);
		return;
	}
	if (count < 0) {
		// repeats allowed
		resp::array(x.o, static_cast<std::uint64_t>(-count));
		for (std::int64_t i = 0; i < -count; ++i)
			resp::bulk(x.o, s.items[coll::rng()() % s.items.size()]);
		return;
	}
	const auto n = static_cast<std::size_t>(std::min<std::int64_t>(count, static_cast<std::int64_t>(s.items.size())));
	std::shuffle(s.items.begin(), s.items.end(), coll::rng());
	resp::array(x.o, n);
	for (std::size_t i = 0; i < n; ++i)
		resp::bulk(x.o, s.items[i]);
}

bool KvService::set_algebra(Ctx& x, std::size_t first, int op, std::vector<std::string>& out)
{
	out.clear();
	std::string buf;
	std::vector<Items> sets;
	for (std::size_t i = first; i < x.argc(); ++i) {
		CollVal s;
		if (!read_coll(x, skey(x, x.arg(i), buf), coll::kSet, s))
			return false;
		sets.push_back(std::move(s.items));
	}
	if (sets.empty())
		return true;
	if (op == 0) {  // SINTER: members of the first found in every other
		for (const auto& m : sets[0]) {
			bool all = true;
			for (std::size_t i = 1; i < sets.size() && all; ++i)
				all = std::find(sets[i].begin(), sets[i].end(), m) != sets[i].end();
			if (all)
				out.push_back(m);
		}
	} else if (op == 1) {  // SUNION
		std::unordered_set<std::string> seen;
		for (auto& s : sets)
			for (auto& m : s)
				if (seen.insert(m).second)
					out.push_back(std::move(m));
	} else {  // SDIFF: members of the first in no other
		std::unordered_set<std::string_view> other;
		for (std::size_t i = 1; i < sets.size(); ++i)
			other.insert(sets[i].begin(), sets[i].end());
		for (const auto& m : sets[0])
			if (!other.contains(m))
				out.push_back(m);
	}
	bool hashtable = false;
	order_set(out, hashtable);
	return true;
}

void KvService::set_algebra_reply(Ctx& x, int op)
{
	Items out;
	if (set_algebra(x, 1, op, out))
		reply_items(x, out, true);
}

void KvService::cmd_sinter(Ctx& x)
{
	set_algebra_reply(x, 0);
}

void KvService::cmd_sunion(Ctx& x)
{
	set_algebra_reply(x, 1);
}

void KvService::cmd_sdiff(Ctx& x)
{
	set_algebra_reply(x, 2);
}

void KvService::set_algebra_store(Ctx& x, int op)
{
	Items out;
	if (!set_algebra(x, 2, op, out))
		return;
	std::string buf;
	const std::string dst(skey(x, x.arg(1), buf));
	// the destination is replaced whatever its type (and loses its TTL);
	// write_coll() deletes it when `out` is empty
	bool hashtable = false;
	order_set(out, hashtable);
	if (!write_coll(x, dst, coll::kSet, out, 0, hashtable))
		return;
	resp::integer(x.o, static_cast<std::int64_t>(out.size()));
}

void KvService::cmd_sinterstore(Ctx& x)
{
	set_algebra_store(x, 0);
}

void KvService::cmd_sunionstore(Ctx& x)
{
	set_algebra_store(x, 1);
}

void KvService::cmd_sdiffstore(Ctx& x)
{
	set_algebra_store(x, 2);
}

void KvService::cmd_sintercard(Ctx& x)
{
	std::int64_t numkeys = 0;
	if (!parse_i64(x.arg(1), numkeys)) {
		resp::error(x.o, "ERR numkeys should be greater than 0");
		return;
	}
	if (numkeys <= 0) {
		resp::error(x.o, "ERR numkeys should be greater than 0");
		return;
	}
	if (numkeys > static_cast<std::int64_t>(x.argc() - 2)) {
		resp::error(x.o, "ERR Number of keys can't be greater than number of args");
		return;
	}
	const auto last = static_cast<std::size_t>(2 + numkeys);
	std::int64_t limit = 0;
	for (std::size_t i = last; i < x.argc(); ++i) {
		if (ieq(x.arg(i), "limit") && i + 1 < x.argc()) {
			if (!arg_i64(x, ++i, limit))
				return;
			if (limit < 0) {
				resp::error(x.o, "ERR LIMIT can't be negative");
				return;
			}
		} else {
			return syntax_error(x);
		}
	}
	// SINTER over exactly the keys (a view of the arguments without the
	// count and the LIMIT clause)
	std::vector<std::string_view> argv(x.argv.begin() + 1, x.argv.begin() + static_cast<std::ptrdiff_t>(last));
	Ctx y{x.srv, x.c, x.cl, x.o, argv, nullptr, x.cmd};
	Items out;
	if (!set_algebra(y, 1, 0, out))
		return;
	const auto n = static_cast<std::int64_t>(out.size());
	resp::integer(x.o, limit ? std::min(limit, n) : n);
}

void KvService::cmd_smove(Ctx& x)
{
	std::string b1, b2;
	const std::string src(skey(x, x.arg(1), b1));
	const std::string dst(skey(x, x.arg(2), b2));
	CollVal s, d;
	if (!read_coll(x, src, coll::kSet, s) || !read_coll(x, dst, coll::kSet, d))
		return;
	const auto it = std::find(s.items.begin(), s.items.end(), x.arg(3));
	if (it == s.items.end()) {
		resp::integer(x.o, 0);
		return;
	}
	if (src == dst) {
		resp::integer(x.o, 1);
		return;
	}
	s.items.erase(it);
	bool ok = true;
	if (std::find(d.items.begin(), d.items.end(), x.arg(3)) == d.items.end()) {
		d.items.emplace_back(x.arg(3));
		order_set(d.items, d.hashtable);
		ok = write_colls(x, coll::kSet,
				 {{src, &s.items, s.expiry, s.hashtable}, {dst, &d.items, d.expiry, d.hashtable}});  // both or neither
	} else {
		ok = write_coll(x, src, coll::kSet, s.items, s.expiry, s.hashtable);
	}
	if (!ok)
		return;
	resp::integer(x.o, 1);
}

}  // namespace daxnet::kv
