// SPDX-License-Identifier: BSD-2-Clause
//
// List commands (Redis 7.0 semantics and wording). A list is one durable
// value (coll.h), read whole and rewritten whole by every write: O(n) per
// command, bounded by coll::kMaxBytes (docs/design.md §daxnet-kv
// collections). No blocking forms (BLPOP, BLMOVE, ...).
#include <algorithm>

#include "coll.h"
#include "kv.h"

namespace daxnet::kv {

namespace resp = daxnet::proto::resp;

namespace {

using Items = std::vector<std::string>;

bool parse_side(std::string_view s, bool& left)
{
	if (ieq(s, "left"))
		left = true;
	else if (ieq(s, "right"))
		left = false;
	else
		return false;
	return true;
}

}  // namespace

void KvService::push_generic(Ctx& x, bool left, bool only_existing)
{
	std::string key;
	CollVal l;
	if (!read_arg_coll(x, 1, coll::kList, key, l))
		return;
	if (only_existing && !l.exists) {
		resp::integer(x.o, 0);
		return;
	}
	if (left) {
		Items add;
		add.reserve(x.argc() - 2);
		for (std::size_t i = x.argc() - 1; i >= 2; --i)
			add.emplace_back(x.arg(i));
		l.items.insert(l.items.begin(), std::make_move_iterator(add.begin()), std::make_move_iterator(add.end()));
	} else {
		for (std::size_t i = 2; i < x.argc(); ++i)
			l.items.emplace_back(x.arg(i));
	}
	if (!write_coll(x, key, coll::kList, l.items, l.expiry))
		return;
	resp::integer(x.o, static_cast<std::int64_t>(l.items.size()));
}

void KvService::cmd_lpush(Ctx& x)
{
	push_generic(x, true, false);
}

void KvService::cmd_rpush(Ctx& x)
{
	push_generic(x, false, false);
}

void KvService::cmd_lpushx(Ctx& x)
{
	push_generic(x, true, true);
}

void KvService::cmd_rpushx(Ctx& x)
{
	push_generic(x, false, true);
}

void KvService::pop_generic(Ctx& x, bool left)
{
	const bool has_count = x.argc() == 3;
	std::int64_t count = 1;
	std::string key;
	CollVal l;
	if (!pop_args(x, coll::kList, count, key, l))
		return;
	if (!l.exists) {
		if (has_count)
			reply_null_array(x);
		else
			reply_null(x);
		return;
	}
	Items out;
	if (!list_pop(x, key, l, left, count, out))
		return;
	if (has_count)
		reply_items(x, out, false);
	else
		resp::bulk(x.o, out[0]);
}

bool KvService::list_pop(Ctx& x, std::string_view key, CollVal& l, bool left, std::int64_t count,
			 std::vector<std::string>& out)
{
	const auto n = static_cast<std::size_t>(std::min<std::int64_t>(count, static_cast<std::int64_t>(l.items.size())));
	out.clear();
	if (left) {
		out.assign(std::make_move_iterator(l.items.begin()), std::make_move_iterator(l.items.begin() + static_cast<std::ptrdiff_t>(n)));
		l.items.erase(l.items.begin(), l.items.begin() + static_cast<std::ptrdiff_t>(n));
	} else {
		for (std::size_t i = 0; i < n; ++i) {
			out.push_back(std::move(l.items.back()));
			l.items.pop_back();
		}
	}
	return n == 0 || write_coll(x, key, coll::kList, l.items, l.expiry);
}

void KvService::cmd_lpop(Ctx& x)
{
	pop_generic(x, true);
}

void KvService::cmd_rpop(Ctx& x)
{
	pop_generic(x, false);
}

void KvService::cmd_llen(Ctx& x)
{
	std::string key;
	CollVal l;
	if (read_arg_coll(x, 1, coll::kList, key, l))
		resp::integer(x.o, static_cast<std::int64_t>(l.items.size()));
}

bool KvService::list_range_args(Ctx& x, std::int64_t& start, std::int64_t& end, std::string& key, CollVal& l)
{
	std::int64_t r[2] = {};
	if (!list_args(x, r, key, l))
		return false;
	// Redis's clamping: [start, end] within [0, n), or empty (start > end)
	const auto n = static_cast<std::int64_t>(l.items.size());
	start = r[0] < 0 ? std::max<std::int64_t>(r[0] + n, 0) : r[0];
	end = r[1] < 0 ? r[1] + n : std::min(r[1], n - 1);
	return true;
}

void KvService::cmd_lrange(Ctx& x)
{
	std::int64_t start = 0, end = 0;
	std::string key;
	CollVal l;
	if (!list_range_args(x, start, end, key, l))
		return;
	const auto n = static_cast<std::int64_t>(l.items.size());
	if (start > end || start >= n) {
		resp::array(x.o, 0);
		return;
	}
	reply_items(x, std::span(l.items).subspan(static_cast<std::size_t>(start), static_cast<std::size_t>(end - start + 1)),
		    false);
}

void KvService::cmd_lindex(Ctx& x)
{
	std::int64_t i = 0;
	std::string key;
	CollVal l;
	if (!list_args(x, std::span(&i, 1), key, l))
		return;
	const auto n = static_cast<std::int64_t>(l.items.size());
	if (i < 0)
		i += n;
	if (i < 0 || i >= n)
		reply_null(x);
	else
		resp::bulk(x.o, l.items[static_cast<std::size_t>(i)]);
}

void KvService::cmd_lset(Ctx& x)
{
	std::int64_t i = 0;
	std::string key;
	CollVal l;
	if (!list_args(x, std::span(&i, 1), key, l))
		return;
	if (!l.exists) {
		resp::error(x.o, "ERR no such key");
		return;
	}
	const auto n = static_cast<std::int64_t>(l.items.size());
	if (i < 0)
		i += n;
	if (i < 0 || i >= n) {
		resp::error(x.o, "ERR index out of range");
		return;
	}
	l.items[static_cast<std::size_t>(i)] = std::string(x.arg(3));
	if (write_coll(x, key, coll::kList, l.items, l.expiry))
		resp::ok(x.o);
}

void KvService::cmd_lrem(Ctx& x)
{
	std::int64_t count = 0;
	std::string key;
	CollVal l;
	if (!list_args(x, std::span(&count, 1), key, l))
		return;
	const std::string_view el = x.arg(3);
	std::int64_t removed = 0;
	const std::int64_t limit = count == 0 ? INT64_MAX : (count < 0 ? -count : count);
	Items keep;
	keep.reserve(l.items.size());
	if (count >= 0) {
		for (auto& s : l.items) {
			if (removed < limit && s == el)
				++removed;
			else
				keep.push_back(std::move(s));
		}
	} else {
		for (auto it = l.items.rbegin(); it != l.items.rend(); ++it) {
			if (removed < limit && *it == el)
				++removed;
			else
				keep.push_back(std::move(*it));
		}
		std::reverse(keep.begin(), keep.end());
	}
	if (removed && !write_coll(x, key, coll::kList, keep, l.expiry))
		return;
	resp::integer(x.o, removed);
}

void KvService::cmd_ltrim(Ctx& x)
{
	std::int64_t start = 0, end = 0;
	std::string key;
	CollVal l;
	if (!list_range_args(x, start, end, key, l))
		return;
	if (!l.exists) {
		resp::ok(x.o);
		return;
	}
	const auto n = static_cast<std::int64_t>(l.items.size());
	Items keep;
	if (start <= end && start < n)
		keep.assign(std::make_move_iterator(l.items.begin() + start),
			    std::make_move_iterator(l.items.begin() + end + 1));
	if (keep.size() != l.items.size() && !write_coll(x, key, coll::kList, keep, l.expiry))
		return;
	resp::ok(x.o);
}

void KvService::cmd_linsert(Ctx& x)
{
	bool after = false;
	if (ieq(x.arg(2), "after")) {
		after = true;
	} else if (!ieq(x.arg(2), "before")) {
		resp::error(x.o, "ERR syntax error");
		return;
	}
	std::string key;
	CollVal l;
	if (!read_arg_coll(x, 1, coll::kList, key, l))
		return;
	if (!l.exists) {
		resp::integer(x.o, 0);
		return;
	}
	const auto it = std::find(l.items.begin(), l.items.end(), x.arg(3));
	if (it == l.items.end()) {
		resp::integer(x.o, -1);
		return;
	}
	l.items.insert(after ? it + 1 : it, std::string(x.arg(4)));
	if (write_coll(x, key, coll::kList, l.items, l.expiry))
		resp::integer(x.o, static_cast<std::int64_t>(l.items.size()));
}

void KvService::cmd_lpos(Ctx& x)
{
	std::int64_t rank = 1, count = -1, maxlen = 0;
	for (std::size_t i = 3; i < x.argc(); i += 2) {
		const std::string_view o = x.arg(i);
		if (i + 1 >= x.argc())
			return syntax_error(x);
		std::int64_t v = 0;
		if (!arg_i64(x, i + 1, v))
			return;
		if (ieq(o, "rank")) {
			if (v == 0 || v == INT64_MIN) {
				resp::error(x.o, v == 0 ? "ERR RANK can't be zero: use 1 to start from the first match, 2 from the "
							  "second ... or use negative to start from the end of the list"
							: "ERR value is out of range");
				return;
			}
			rank = v;
		} else if (ieq(o, "count")) {
			if (v < 0) {
				resp::error(x.o, "ERR COUNT can't be negative");
				return;
			}
			count = v;
		} else if (ieq(o, "maxlen")) {
			if (v < 0) {
				resp::error(x.o, "ERR MAXLEN can't be negative");
				return;
			}
			maxlen = v;
		} else {
			return syntax_error(x);
		}
	}
	std::string key;
	CollVal l;
	if (!read_arg_coll(x, 1, coll::kList, key, l))
		return;
	std::vector<std::int64_t> found;
	const auto n = static_cast<std::int64_t>(l.items.size());
	const std::int64_t want = count < 0 ? 1 : (count == 0 ? INT64_MAX : count);
	std::int64_t matches = 0, looked = 0;
	const std::int64_t skip = (rank < 0 ? -rank : rank) - 1;
	for (std::int64_t k = 0; k < n && static_cast<std::int64_t>(found.size()) < want; ++k) {
		if (maxlen && looked++ >= maxlen)
			break;
		const std::int64_t i = rank > 0 ? k : n - 1 - k;
		if (l.items[static_cast<std::size_t>(i)] == x.arg(2) && matches++ >= skip)
			found.push_back(i);
	}
	if (count < 0) {
		if (found.empty())
			reply_null(x);
		else
			resp::integer(x.o, found[0]);
		return;
	}
	resp::array(x.o, found.size());
	for (const std::int64_t i : found)
		resp::integer(x.o, i);
}

bool KvService::list_move(Ctx& x, std::string_view src, CollVal& s, bool from_left, bool to_left)
{
	std::string dst;
	CollVal d;
	if (!read_arg_coll(x, 2, coll::kList, dst, d))
		return false;
	std::string el;
	if (from_left) {
		el = std::move(s.items.front());
		s.items.erase(s.items.begin());
	} else {
		el = std::move(s.items.back());
		s.items.pop_back();
	}
	Items& target = src == dst ? s.items : d.items;
	if (to_left)
		target.insert(target.begin(), el);
	else
		target.push_back(el);
	if (!write_coll(x, src, coll::kList, s.items, s.expiry))
		return false;
	if (src != dst && !write_coll(x, dst, coll::kList, d.items, d.expiry))
		return false;
	resp::bulk(x.o, el);
	return true;
}

void KvService::cmd_lmove(Ctx& x)
{
	bool from_left = false, to_left = false;
	if (!parse_side(x.arg(3), from_left) || !parse_side(x.arg(4), to_left))
		return syntax_error(x);
	std::string src;
	CollVal s;
	if (!read_arg_coll(x, 1, coll::kList, src, s))
		return;
	if (!s.exists) {
		reply_null(x);
		return;
	}
	(void)list_move(x, src, s, from_left, to_left);
}

void KvService::cmd_rpoplpush(Ctx& x)
{
	const std::string_view argv[] = {"lmove", x.arg(1), x.arg(2), "right", "left"};
	Ctx y{x.srv, x.c, x.cl, x.o, argv, nullptr, x.cmd};
	cmd_lmove(y);
}

}  // namespace daxnet::kv
