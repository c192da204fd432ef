// SPDX-License-Identifier: BSD-2-Clause
//
// Hash commands (Redis 7.0 semantics and wording). A hash is one durable
// value (coll.h: fields and values alternately, insertion order), read
// whole and rewritten whole by every write: O(n) per command, bounded by
// coll::kMaxBytes (docs/design.md §daxnet-kv collections), so a write is
// durable before its reply and atomic after a crash, as a list's.
// HINCRBYFLOAT propagates to replicas as the HSET of its result.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_map>

#include "coll.h"
#include "kv.h"

namespace daxnet::kv {

namespace resp = daxnet::proto::resp;

namespace {

using Items = std::vector<std::string>;


/// Index (of the field) of `f` in hash `h`, or h.size().
std::size_t find_field(const Items& h, std::string_view f) noexcept
{
	for (std::size_t i = 0; i + 1 < h.size(); i += 2)
		if (h[i] == f)
			return i;
	return h.size();
}

/// Field -> index in `h`: views into `h` (valid while `h` does not reallocate).
std::unordered_map<std::string_view, std::size_t> field_index(const Items& h)
{
	std::unordered_map<std::string_view, std::size_t> m;
	m.reserve(h.size() / 2);
	for (std::size_t i = 0; i + 1 < h.size(); i += 2)
		m.emplace(h[i], i);
	return m;
}

/// HSCAN's order of a hash in hashtable encoding: a 63-bit FNV-1a of the
/// field, the same in every process (a cursor survives a restart).
std::uint64_t field_hash(std::string_view f) noexcept
{
	std::uint64_t h = 1469598103934665603ull;
	for (const char ch : f) {
		h ^= static_cast<unsigned char>(ch);
		h *= 1099511628211ull;
	}
	return h >> 1;
}

}  // namespace

std::int64_t KvService::tuning_i64(std::string_view name, std::int64_t dflt) const
{
	std::int64_t v = dflt;
	if (const auto it = tuning_.find(name); it != tuning_.end() && !parse_i64(it->second, v))
		v = dflt;
	return v;
}

void KvService::order_hash(const std::vector<std::string>& items, bool& hashtable) const
{
	if (hashtable)
		return;  // one way, as in Redis
	const std::int64_t entries = tuning_i64("hash-max-listpack-entries", 128);
	const std::int64_t value = tuning_i64("hash-max-listpack-value", 64);
	if (static_cast<std::int64_t>(items.size() / 2) > entries) {
		hashtable = true;
		return;
	}
	hashtable = std::any_of(items.begin(), items.end(),
				[&](const std::string& s) { return static_cast<std::int64_t>(s.size()) > value; });
}

std::int64_t KvService::hash_set_args(Ctx& x)
{
	if (x.argc() % 2 != 0) {
		resp::wrong_arity(x.o, x.cmd ? x.cmd->name : "hset");
		return -1;
	}
	std::string key;
	CollVal h;
	if (!read_arg_coll(x, 1, coll::kHash, key, h))
		return -1;
	h.items.reserve(h.items.size() + x.argc() - 2);  // no reallocation: `at` keeps its views
	auto at = field_index(h.items);
	std::int64_t added = 0;
	for (std::size_t i = 2; i + 1 < x.argc(); i += 2) {
		const auto it = at.find(x.arg(i));
		if (it != at.end()) {
			h.items[it->second + 1].assign(x.arg(i + 1));
			continue;
		}
		h.items.emplace_back(x.arg(i));
		h.items.emplace_back(x.arg(i + 1));
		at.emplace(h.items[h.items.size() - 2], h.items.size() - 2);
		++added;
	}
	order_hash(h.items, h.hashtable);
	if (!write_coll(x, key, coll::kHash, h.items, h.expiry, h.hashtable))
		return -1;
	return added;
}

void KvService::cmd_hset(Ctx& x)
{
	const std::int64_t added = hash_set_args(x);
	if (added >= 0)
		resp::integer(x.o, added);
}

void KvService::cmd_hmset(Ctx& x)
{
	if (hash_set_args(x) >= 0)
		resp::ok(x.o);
}

void KvService::cmd_hsetnx(Ctx& x)
{
	std::string key;
	CollVal h;
	if (!read_arg_coll(x, 1, coll::kHash, key, h))
		return;
	if (find_field(h.items, x.arg(2)) != h.items.size()) {
		resp::integer(x.o, 0);
		return;
	}
	h.items.emplace_back(x.arg(2));
	h.items.emplace_back(x.arg(3));
	order_hash(h.items, h.hashtable);
	if (!write_coll(x, key, coll::kHash, h.items, h.expiry, h.hashtable))
		return;
	resp::integer(x.o, 1);
}

void KvService::cmd_hget(Ctx& x)
{
	std::string key;
	CollVal h;
	if (!read_arg_coll(x, 1, coll::kHash, key, h))
		return;
	const std::size_t i = find_field(h.items, x.arg(2));
	if (i == h.items.size())
		reply_null(x);
	else
		resp::bulk(x.o, h.items[i + 1]);
}

void KvService::cmd_hmget(Ctx& x)
{
	std::string key;
	CollVal h;
	if (!read_arg_coll(x, 1, coll::kHash, key, h))
		return;
	const auto at = field_index(h.items);
	resp::array(x.o, x.argc() - 2);
	for (std::size_t i = 2; i < x.argc(); ++i) {
		const auto it = at.find(x.arg(i));
		if (it == at.end())
			reply_null(x);
		else
			resp::bulk(x.o, h.items[it->second + 1]);
	}
}

void KvService::cmd_hdel(Ctx& x)
{
	std::string key;
	CollVal h;
	if (!read_arg_coll(x, 1, coll::kHash, key, h))
		return;
	std::unordered_map<std::string_view, bool> del;
	for (std::size_t i = 2; i < x.argc(); ++i)
		del.emplace(x.arg(i), true);
	Items keep;
	keep.reserve(h.items.size());
	for (std::size_t i = 0; i + 1 < h.items.size(); i += 2) {
		if (del.contains(h.items[i]))
			continue;
		keep.push_back(std::move(h.items[i]));
		keep.push_back(std::move(h.items[i + 1]));
	}
	const auto removed = static_cast<std::int64_t>((h.items.size() - keep.size()) / 2);
	if (removed && !write_coll(x, key, coll::kHash, keep, h.expiry, h.hashtable))
		return;
	resp::integer(x.o, removed);
}

void KvService::cmd_hlen(Ctx& x)
{
	std::string key;
	CollVal h;
	if (read_arg_coll(x, 1, coll::kHash, key, h))
		resp::integer(x.o, static_cast<std::int64_t>(h.items.size() / 2));
}

void KvService::cmd_hexists(Ctx& x)
{
	std::string key;
	CollVal h;
	if (read_arg_coll(x, 1, coll::kHash, key, h))
		resp::integer(x.o, find_field(h.items, x.arg(2)) != h.items.size() ? 1 : 0);
}

void KvService::cmd_hstrlen(Ctx& x)
{
	std::string key;
	CollVal h;
	if (!read_arg_coll(x, 1, coll::kHash, key, h))
		return;
	const std::size_t i = find_field(h.items, x.arg(2));
	resp::integer(x.o, i == h.items.size() ? 0 : static_cast<std::int64_t>(h.items[i + 1].size()));
}

namespace {

/// HKEYS (`values` false) / HVALS: every field's name or value.
void reply_half(Ctx& x, const Items& h, bool values)
{
	resp::array(x.o, h.size() / 2);
	for (std::size_t i = values ? 1 : 0; i < h.size(); i += 2)
		resp::bulk(x.o, h[i]);
}

}  // namespace

void KvService::cmd_hkeys(Ctx& x)
{
	std::string key;
	CollVal h;
	if (read_arg_coll(x, 1, coll::kHash, key, h))
		reply_half(x, h.items, false);
}

void KvService::cmd_hvals(Ctx& x)
{
	std::string key;
	CollVal h;
	if (read_arg_coll(x, 1, coll::kHash, key, h))
		reply_half(x, h.items, true);
}

void KvService::cmd_hgetall(Ctx& x)
{
	std::string key;
	CollVal h;
	if (!read_arg_coll(x, 1, coll::kHash, key, h))
		return;
	resp::map(x.o, h.items.size() / 2, x.resp3());
	for (const auto& s : h.items)
		resp::bulk(x.o, s);
}

void KvService::cmd_hincrby(Ctx& x)
{
	std::int64_t incr = 0;
	if (!arg_i64(x, 3, incr))
		return;
	std::string key;
	CollVal h;
	if (!read_arg_coll(x, 1, coll::kHash, key, h))
		return;
	std::int64_t cur = 0;
	std::size_t i = find_field(h.items, x.arg(2));
	if (i != h.items.size() && !parse_i64(h.items[i + 1], cur)) {
		resp::error(x.o, "ERR hash value is not an integer");
		return;
	}
	std::int64_t out = 0;
	if (__builtin_add_overflow(cur, incr, &out)) {
		resp::error(x.o, "ERR increment or decrement would overflow");
		return;
	}
	if (i == h.items.size()) {
		h.items.emplace_back(x.arg(2));
		h.items.emplace_back();
	}
	h.items[i + 1] = std::to_string(out);
	order_hash(h.items, h.hashtable);
	if (!write_coll(x, key, coll::kHash, h.items, h.expiry, h.hashtable))
		return;
	resp::integer(x.o, out);
}

void KvService::cmd_hincrbyfloat(Ctx& x)
{
	long double incr = 0;
	if (!parse_ld(x.arg(3), incr)) {
		resp::error(x.o, "ERR value is not a valid float");
		return;
	}
	if (std::isinf(incr)) {
		resp::error(x.o, "ERR value is NaN or Infinity");
		return;
	}
	std::string key;
	CollVal h;
	if (!read_arg_coll(x, 1, coll::kHash, key, h))
		return;
	long double cur = 0;
	const std::size_t i = find_field(h.items, x.arg(2));
	if (i != h.items.size() && !parse_ld(h.items[i + 1], cur)) {
		resp::error(x.o, "ERR hash value is not a float");
		return;
	}
	cur += incr;
	if (std::isnan(cur) || std::isinf(cur)) {
		resp::error(x.o, "ERR increment would produce NaN or Infinity");
		return;
	}
	std::string out = format_ld(cur);
	if (i == h.items.size()) {
		h.items.emplace_back(x.arg(2));
		h.items.emplace_back(out);
	} else {
		h.items[i + 1] = out;
	}
	order_hash(h.items, h.hashtable);
	if (!write_coll(x, key, coll::kHash, h.items, h.expiry, h.hashtable))
		return;
	// the result, not the increment: float formatting may differ on a replica
	propagate_as(x, {"HSET", std::string(x.arg(1)), std::string(x.arg(2)), out});
	resp::bulk(x.o, out);
}

void KvService::cmd_hrandfield(Ctx& x)
{
	if (x.argc() == 2) {
		std::string key;
		CollVal h;
		if (!read_arg_coll(x, 1, coll::kHash, key, h))
			return;
		if (h.items.empty())
			reply_null(x);
		else
			resp::bulk(x.o, h.items[2 * (coll::rng()() % (h.items.size() / 2))]);
		return;
	}
	std::int64_t count = 0;
	if (!arg_i64(x, 2, count))
		return;
	if (count == INT64_MIN) {
		resp::error(x.o, "ERR value is out of range, must be between -9223372036854775807 and 9223372036854775807");
		return;
	}
	bool withvalues = false;
	if (x.argc() > 4 || (x.argc() == 4 && !ieq(x.arg(3), "withvalues")))
		return syntax_error(x);
	if (x.argc() == 4) {
		withvalues = true;
		if (count < -INT64_MAX / 2 || count > INT64_MAX / 2) {
			resp::error(x.o, "ERR value is out of range");
			return;
		}
	}
	std::string key;
	CollVal h;
	if (!read_arg_coll(x, 1, coll::kHash, key, h))
		return;
	const std::size_t n = h.items.size() / 2;
	if (n == 0 || count == 0) {
		resp::array(x.o, 0);
		return;
	}
	const auto pair = [&](std::size_t f) {
		if (withvalues && x.resp3())
			resp::array(x.o, 2);
		resp::bulk(x.o, h.items[2 * f]);
		if (withvalues)
			resp::bulk(x.o, h.items[2 * f + 1]);
	};
	const auto header = [&](std::uint64_t k) { resp::array(x.o, withvalues && !x.resp3() ? 2 * k : k); };
	if (count < 0) {
		// repeats allowed
		const auto k = static_cast<std::uint64_t>(-count);
		header(k);
		for (std::uint64_t j = 0; j < k; ++j)
			pair(coll::rng()() % n);
		return;
	}
	std::vector<std::size_t> pick(n);
	for (std::size_t j = 0; j < n; ++j)
		pick[j] = j;
	const auto k = static_cast<std::size_t>(std::min<std::int64_t>(count, static_cast<std::int64_t>(n)));
	if (k < n) {
		// a uniform sample of k distinct fields: a partial shuffle
		for (std::size_t j = 0; j < k; ++j)
			std::swap(pick[j], pick[j + coll::rng()() % (n - j)]);
		pick.resize(k);
	}
	header(k);
	for (const std::size_t f : pick)
		pair(f);
}

void KvService::cmd_hscan(Ctx& x)
{
	std::uint64_t cursor = 0;
	if (!arg_cursor(x, 2, cursor))
		return;
	std::string key;
	CollVal h;
	if (!read_arg_coll(x, 1, coll::kHash, key, h))
		return;
	std::string_view pat;
	std::int64_t count = 10;
	for (std::size_t i = 3; i < x.argc(); ++i) {
		if (ieq(x.arg(i), "match") && i + 1 < x.argc()) {
			pat = x.arg(++i);
		} else if (ieq(x.arg(i), "count") && i + 1 < x.argc()) {
			if (!arg_i64(x, ++i, count))
				return;
			if (count < 1)
				return syntax_error(x);
		} else {
			return syntax_error(x);
		}
	}
	// A listpack hash answers whole at once (cursor 0), as Redis does. A
	// hashtable one is walked in the order of field_hash(): the cursor is
	// the hash to go on from, so a field present for the whole scan is
	// returned exactly once whatever was added or deleted meanwhile (fields
	// of equal hash go out in the same reply).
	const std::size_t n = h.items.size() / 2;
	std::vector<std::pair<std::uint64_t, std::size_t>> order;  // (hash, field index)
	order.reserve(n);
	for (std::size_t f = 0; f < n; ++f) {
		const std::uint64_t fh = h.hashtable ? field_hash(h.items[2 * f]) : 0;
		if (fh >= cursor || !h.hashtable)
			order.emplace_back(fh, f);
	}
	std::uint64_t next = 0;
	if (h.hashtable) {
		std::sort(order.begin(), order.end());
		const auto want = static_cast<std::size_t>(count);
		if (order.size() > want) {
			std::size_t end = want;
			while (end < order.size() && order[end].first == order[end - 1].first)
				++end;
			if (end < order.size())
				next = order[end - 1].first + 1;
			order.resize(end);
		}
	}
	std::vector<std::size_t> out;
	for (const auto& [fh, f] : order)
		if (pat.empty() || glob_match(pat, h.items[2 * f]))
			out.push_back(f);
	resp::array(x.o, 2);
	resp::bulk(x.o, std::to_string(next));
	resp::array(x.o, 2 * out.size());
	for (const std::size_t f : out) {
		resp::bulk(x.o, h.items[2 * f]);
		resp::bulk(x.o, h.items[2 * f + 1]);
	}
}

}  // namespace daxnet::kv
