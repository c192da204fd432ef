// SPDX-License-Identifier: BSD-2-Clause
//
// List commands (Redis 7.0 semantics and wording). A list is one durable
// value (coll.h), read whole and rewritten whole by every write: O(n) per
// command, bounded by coll::kMaxBytes (docs/design.md §daxnet-kv
// collections). The blocking forms (BLPOP, BLMOVE, ...) park their client
// until a write gives them something (see "LMPOP and the blocking
// commands" below).
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>

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
	if (src == dst ? !write_coll(x, src, coll::kList, s.items, s.expiry)
		       : !write_colls(x, coll::kList, {{src, &s.items, s.expiry}, {dst, &d.items, d.expiry}}))
		return false;  // both or neither
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

// ---- LMPOP and the blocking commands ------------------------------------
//
// A blocking command that finds nothing to take parks its client
// (block()): the client's later requests wait in Client::pending, and the
// event loop goes on serving everybody else. After every command that
// wrote something (dispatch) the parked clients run their command again,
// in the order they blocked (serve_blocked()), now unable to block: the
// first that finds an element takes it -- durably, in the pass's commit,
// before its reply goes out -- and its pending requests run. end_of_pass()
// answers those whose timeout passed (expire_blocked()). Inside MULTI/EXEC
// and scripts (in_exec_) these commands never block: they answer as on a
// timeout.

bool KvService::parse_block_timeout(Ctx& x, std::size_t i, std::uint64_t& deadline)
{
	// Redis: seconds as a long double, to milliseconds rounded up; 0 forever
	const std::string s(x.arg(i));
	char* end = nullptr;
	errno = 0;
	const long double v = s.empty() || std::isspace(static_cast<unsigned char>(s[0])) ? 0.0L : std::strtold(s.c_str(), &end);
	if (s.empty() || end != s.c_str() + s.size() || errno == ERANGE || std::isnan(v)) {
		resp::error(x.o, "ERR timeout is not a float or out of range");
		return false;
	}
	const long double ms = std::ceil(v * 1000.0L);
	if (ms > static_cast<long double>(INT64_MAX)) {
		resp::error(x.o, "ERR timeout is out of range");
		return false;
	}
	if (ms < 0) {
		resp::error(x.o, "ERR timeout is negative");
		return false;
	}
	const auto now_ms = static_cast<std::int64_t>(daxnet::pmem::realtime_ns() / 1000000);
	if (ms > static_cast<long double>(INT64_MAX - now_ms)) {
		resp::error(x.o, "ERR timeout is out of range");
		return false;
	}
	constexpr long double kForever = 1e12L;  // ms: 31 years and more wait for ever
	deadline = ms == 0 || ms > kForever ? 0 : mono_ns() + static_cast<std::uint64_t>(ms) * 1000000u;
	return true;
}

bool KvService::other_type_at(Ctx& x, std::size_t i, std::uint8_t type)
{
	std::string buf;
	ValueRef v{};
	return lookup(skey(x, x.arg(i), buf), v) == 1 && vtype_of(v) != type;
}

int KvService::pop_first(Ctx& x, std::size_t first, std::size_t n, bool left, std::int64_t count, bool mpop)
{
	for (std::size_t i = first; i < first + n; ++i) {
		// a parked client is served from lists only: another type at one of
		// its keys leaves it waiting (Redis 7.0)
		if (retrying_ && other_type_at(x, i, coll::kList))
			continue;
		std::string key;
		CollVal l;
		if (!read_arg_coll(x, i, coll::kList, key, l))
			return -1;
		if (!l.exists)
			continue;
		Items out;
		if (!list_pop(x, key, l, left, count, out))
			return -1;
		std::vector<std::string> argv{left ? "LPOP" : "RPOP", std::string(x.arg(i))};
		if (mpop)
			argv.push_back(std::to_string(count));
		propagate_as(x, std::move(argv));
		resp::array(x.o, 2);
		resp::bulk(x.o, x.arg(i));
		if (mpop)
			reply_items(x, out, false);
		else
			resp::bulk(x.o, out[0]);
		return 1;
	}
	return 0;
}

bool KvService::wait_or_timeout(Ctx& x, std::uint64_t deadline, bool null_array)
{
	if (retrying_)
		return false;  // still nothing: the client waits on
	if (in_exec_) {
		// MULTI/EXEC, scripts: never block
		if (null_array)
			reply_null_array(x);
		else
			reply_null(x);
		return false;
	}
	Client& cl = x.cl;
	cl.blocked = true;
	cl.block_argv.assign(x.argv.begin(), x.argv.end());
	cl.block_cmd = x.cmd;
	cl.block_deadline_ns = deadline;
	blocked_.push_back(cl.id);
	return true;
}

void KvService::bpop_generic(Ctx& x, bool left)
{
	std::uint64_t deadline = 0;
	if (!parse_block_timeout(x, x.argc() - 1, deadline))
		return;
	if (pop_first(x, 1, x.argc() - 2, left, 1, false) == 0)
		(void)wait_or_timeout(x, deadline, true);
}

void KvService::cmd_blpop(Ctx& x)
{
	bpop_generic(x, true);
}

void KvService::cmd_brpop(Ctx& x)
{
	bpop_generic(x, false);
}

void KvService::mpop_generic(Ctx& x, std::size_t numkeys_at, bool block)
{
	std::int64_t numkeys = 0;
	if (!parse_i64(x.arg(numkeys_at), numkeys) || numkeys < 1) {
		resp::error(x.o, "ERR numkeys should be greater than 0");
		return;
	}
	bool left = false;
	if (numkeys >= static_cast<std::int64_t>(x.argc() - numkeys_at - 1) ||
	    !parse_side(x.arg(numkeys_at + static_cast<std::size_t>(numkeys) + 1), left))
		return syntax_error(x);
	std::int64_t count = -1;
	for (std::size_t i = numkeys_at + static_cast<std::size_t>(numkeys) + 2; i < x.argc(); ++i) {
		if (count != -1 || !ieq(x.arg(i), "count") || i + 1 >= x.argc())
			return syntax_error(x);
		if (!parse_i64(x.arg(++i), count) || count < 1) {
			resp::error(x.o, "ERR count should be greater than 0");
			return;
		}
	}
	if (count == -1)
		count = 1;
	std::uint64_t deadline = 0;
	if (block && !parse_block_timeout(x, 1, deadline))
		return;
	if (pop_first(x, numkeys_at + 1, static_cast<std::size_t>(numkeys), left, count, true) != 0)
		return;
	if (block)
		(void)wait_or_timeout(x, deadline, true);
	else
		reply_null_array(x);
}

void KvService::cmd_lmpop(Ctx& x)
{
	mpop_generic(x, 1, false);
}

void KvService::cmd_blmpop(Ctx& x)
{
	mpop_generic(x, 2, true);
}

void KvService::bmove_generic(Ctx& x, bool from_left, bool to_left, std::size_t timeout_at)
{
	std::uint64_t deadline = 0;
	if (!parse_block_timeout(x, timeout_at, deadline))
		return;
	if (retrying_ && other_type_at(x, 1, coll::kList))
		return;
	std::string src;
	CollVal s;
	if (!read_arg_coll(x, 1, coll::kList, src, s))
		return;
	if (!s.exists) {
		(void)wait_or_timeout(x, deadline, false);
		return;
	}
	if (list_move(x, src, s, from_left, to_left))
		propagate_as(x, {"LMOVE", std::string(x.arg(1)), std::string(x.arg(2)), from_left ? "LEFT" : "RIGHT",
				 to_left ? "LEFT" : "RIGHT"});
}

void KvService::cmd_blmove(Ctx& x)
{
	bool from_left = false, to_left = false;
	if (!parse_side(x.arg(3), from_left) || !parse_side(x.arg(4), to_left))
		return syntax_error(x);
	bmove_generic(x, from_left, to_left, 5);
}

void KvService::cmd_brpoplpush(Ctx& x)
{
	bmove_generic(x, false, true, 3);
}

// ---- SORT -------------------------------------------------------------------
//
// SORT / SORT_RO of a list or a set: numeric (or ALPHA: byte order), ASC or
// DESC, LIMIT, STORE (a list, replacing the destination; deleting it when
// the result is empty) and BY with a constant pattern (no sorting). BY and
// GET patterns that read other keys are refused: daxnet-kv has no hashes,
// and a pattern's keys are not declared to the command table.

void KvService::sort_generic(Ctx& x, bool read_only)
{
	bool desc = false, alpha = false, nosort = false;
	std::int64_t offset = 0, count = -1;
	std::string_view store;
	bool has_store = false;
	for (std::size_t i = 2; i < x.argc(); ++i) {
		const std::string_view o = x.arg(i);
		const std::size_t left = x.argc() - i - 1;
		if (ieq(o, "asc")) {
			desc = false;
		} else if (ieq(o, "desc")) {
			desc = true;
		} else if (ieq(o, "alpha")) {
			alpha = true;
		} else if (ieq(o, "limit") && left >= 2) {
			if (!arg_i64(x, i + 1, offset) || !arg_i64(x, i + 2, count))
				return;
			i += 2;
		} else if (ieq(o, "store") && left >= 1 && !read_only) {
			store = x.arg(++i);
			has_store = true;
		} else if (ieq(o, "by") && left >= 1) {
			const std::string_view pat = x.arg(++i);
			if (pat.find('*') != std::string_view::npos) {
				resp::error(x.o, "ERR daxnet: SORT BY a pattern of other keys is not supported");
				return;
			}
			nosort = true;  // a constant pattern: Redis does not sort
		} else if (ieq(o, "get") && left >= 1) {
			resp::error(x.o, "ERR daxnet: SORT GET is not supported");
			return;
		} else {
			return syntax_error(x);
		}
	}
	std::string buf;
	ValueRef v{};
	CollVal c;
	if (lookup(skey(x, x.arg(1), buf), v) == 1) {
		const std::uint8_t t = vtype_of(v);
		if (t != coll::kList && t != coll::kSet)
			return wrong_type(x);
		std::string key;
		if (!read_arg_coll(x, 1, t, key, c))
			return;
	}
	Items& items = c.items;
	if (!nosort) {
		if (alpha) {
			std::sort(items.begin(), items.end());
		} else {
			std::vector<std::pair<double, std::string>> scored;
			scored.reserve(items.size());
			for (auto& e : items) {
				const std::string z(e);
				char* end = nullptr;
				errno = 0;
				const double d = z.empty() ? 0.0 : std::strtod(z.c_str(), &end);
				if (z.empty() || end != z.c_str() + z.size() || std::isnan(d) || std::isspace(static_cast<unsigned char>(z[0]))) {
					resp::error(x.o, "ERR One or more scores can't be converted into double");
					return;
				}
				scored.emplace_back(d, std::move(e));
			}
			// equal scores: byte order, so that the result is deterministic (Redis)
			std::sort(scored.begin(), scored.end());
			for (std::size_t i = 0; i < items.size(); ++i)
				items[i] = std::move(scored[i].second);
		}
		if (desc)
			std::reverse(items.begin(), items.end());
	}
	// Redis's LIMIT clamping
	const auto n = static_cast<std::int64_t>(items.size());
	std::int64_t start = offset < 0 ? 0 : offset;
	std::int64_t end = 0;
	if (start >= n) {
		start = n - 1;
		end = n - 2;
	} else {
		end = count < 0 || count > n - start ? n - 1 : start + count - 1;
	}
	Items out;
	if (start >= 0 && end >= start)
		out.assign(std::make_move_iterator(items.begin() + start), std::make_move_iterator(items.begin() + end + 1));
	if (!has_store)
		return reply_items(x, out, false);
	// the destination is replaced whatever its type (and loses its TTL)
	std::string dbuf;
	const std::string dst(skey(x, store, dbuf));
	if (write_coll(x, dst, coll::kList, out, 0))
		resp::integer(x.o, static_cast<std::int64_t>(out.size()));
}

void KvService::cmd_sort(Ctx& x)
{
	sort_generic(x, false);
}

void KvService::cmd_sort_ro(Ctx& x)
{
	sort_generic(x, true);
}

// ---- parked clients --------------------------------------------------------

void KvService::hold_request(Ctx& x)
{
	Client& cl = x.cl;
	std::vector<std::string> argv(x.argv.begin(), x.argv.end());
	for (const auto& a : argv)
		cl.pending_bytes += a.size() + 16;
	cl.pending.push_back(std::move(argv));
	if (cl.pending_bytes > kMaxPendingBytes) {
		// as Redis's client-query-buffer-limit: a client that pipelines
		// this much behind a blocked command is closed
		cl.pending.clear();
		cl.pending_bytes = 0;
		x.srv.close_after_reply(x.c);
	}
}

bool KvService::retry_blocked(Server& srv, Conn& c, Client& cl)
{
	const std::vector<std::string_view> argv(cl.block_argv.begin(), cl.block_argv.end());
	Ctx y{srv, c, cl, c.tx.bytes(), argv, nullptr, cl.block_cmd};
	const std::size_t before = y.o.size();
	const std::uint64_t w0 = writes_;
	retrying_ = true;
	prop_custom_ = false;
	try {
		(this->*cl.block_cmd->fn)(y);
	} catch (...) {
		retrying_ = false;
		throw;
	}
	retrying_ = false;
	if (!replicas_.empty()) {
		if (writes_ != w0 && !prop_custom_)
			propagate(cl.db, std::vector<std::string>(cl.block_argv.begin(), cl.block_argv.end()));
		prop_custom_ = false;
		flush_propagation();
	}
	return y.o.size() > before;
}

void KvService::unblock(Server& srv, Conn& c, Client& cl)
{
	cl.blocked = false;
	cl.block_argv.clear();
	cl.block_cmd = nullptr;
	std::erase(blocked_, cl.id);
	srv.wake(c);
	// what it sent meanwhile, in order, until one blocks again
	while (!cl.blocked && !cl.pending.empty() && !c.closing) {
		std::vector<std::string> a = std::move(cl.pending.front());
		cl.pending.pop_front();
		for (const auto& s : a)
			cl.pending_bytes -= std::min<std::uint64_t>(cl.pending_bytes, s.size() + 16);
		const std::vector<std::string_view> argv(a.begin(), a.end());
		Ctx y{srv, c, cl, c.tx.bytes(), argv, nullptr};
		dispatch(y);
	}
}

void KvService::serve_blocked(Server& srv)
{
	if (serving_)
		return;  // the loop below goes on from the start
	serving_ = true;
	try {
		for (std::size_t i = 0; i < blocked_.size();) {
			const auto it = clients_.find(blocked_[i]);
			Conn* c = it == clients_.end() ? nullptr : srv.conn(it->second->conn);
			if (!c) {
				blocked_.erase(blocked_.begin() + static_cast<std::ptrdiff_t>(i));
				continue;
			}
			if (!retry_blocked(srv, *c, *it->second)) {
				++i;
				continue;
			}
			unblock(srv, *c, *it->second);
			i = 0;  // what it wrote may serve a client that blocked before it
		}
	} catch (...) {
		serving_ = false;
		throw;
	}
	serving_ = false;
}

bool KvService::unblock_client(Server& srv, std::uint64_t id, bool as_error)
{
	const auto it = clients_.find(id);
	Conn* c = it == clients_.end() ? nullptr : srv.conn(it->second->conn);
	if (!c || !it->second->blocked)
		return false;
	Client& cl = *it->second;
	if (as_error)
		resp::error(c->tx.bytes(), "UNBLOCKED client unblocked via CLIENT UNBLOCK");
	else
		resp::null_array(c->tx.bytes(), cl.resp >= 3);
	unblock(srv, *c, cl);
	return true;
}

void KvService::expire_blocked(Server& srv)
{
	const std::uint64_t now = mono_ns();
	std::vector<std::uint64_t> due;
	for (const std::uint64_t id : blocked_) {
		const auto it = clients_.find(id);
		if (it != clients_.end() && it->second->block_deadline_ns && it->second->block_deadline_ns <= now)
			due.push_back(id);
	}
	const std::uint64_t w0 = writes_;
	for (const std::uint64_t id : due) {
		const auto it = clients_.find(id);
		Conn* c = it == clients_.end() ? nullptr : srv.conn(it->second->conn);
		if (!c || !it->second->blocked)
			continue;
		Client& cl = *it->second;
		cl.blocked = false;  // answered below; unblock() runs what waited
		resp::null_array(c->tx.bytes(), cl.resp >= 3);
		unblock(srv, *c, cl);
	}
	if (writes_ != w0 && !blocked_.empty())
		serve_blocked(srv);
}

}  // namespace daxnet::kv
