// SPDX-License-Identifier: BSD-2-Clause
//
// String commands (Redis 7.0 semantics). A key holding a list or a set (a
// typed value, coll.h) answers WRONGTYPE: one flag test on the value's
// reference, nothing more on the strings' path.
#include <bit>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "kv.h"

namespace daxnet::kv {

namespace resp = daxnet::proto::resp;

namespace {

constexpr std::uint64_t kMaxString = 512ull << 20;  ///< Redis' proto-max-bulk-len default

}  // namespace

bool KvService::parse_expiry(Ctx& x, std::string_view unit, std::string_view val, const char* cmd,
			     std::int64_t& ms)
{
	std::int64_t n = 0;
	if (!parse_i64(val, n)) {
		resp::error(x.o, "ERR value is not an integer or out of range");
		return false;
	}
	const bool secs = ieq(unit, "ex") || ieq(unit, "exat");
	const bool rel = ieq(unit, "ex") || ieq(unit, "px");
	const auto now = static_cast<std::int64_t>(now_ms());
	if (n <= 0 || (secs && n > INT64_MAX / 1000) || (rel && (secs ? n * 1000 : n) > INT64_MAX - now)) {
		resp::error(x.o, fmt::format("ERR invalid expire time in '{}' command", cmd));
		return false;
	}
	ms = (secs ? n * 1000 : n) + (rel ? now : 0);
	return true;
}

void KvService::cmd_get(Ctx& x)
{
	ValueRef v{};
	std::string buf;
	if (kv_.get(skey(x, x.arg(1), buf), v) == 1) {
		if (v.typed) [[unlikely]]
			return wrong_type(x);
		reply_value(x, v);
	} else {
		reply_null(x);
	}
}

void KvService::cmd_set(Ctx& x)
{
	bool nx = false, xx = false, keepttl = false, get = false;
	std::uint64_t expiry = 0;
	std::size_t exp_at = 0;  // argument of a relative / EXAT expiry (propagated as PXAT)
	std::int64_t exp_ms = 0;
	for (std::size_t i = 3; i < x.argc(); ++i) {
		std::string_view o = x.arg(i);
		const bool has_next = i + 1 < x.argc();
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
			std::int64_t ms = 0;
			if (!parse_expiry(x, o, x.arg(i + 1), "set", ms))
				return;
			expiry = expiry_ns_of_ms(ms);
			if (!ieq(o, "pxat"))
				exp_at = i;
			exp_ms = ms;
			++i;
		} else {
			resp::error(x.o, "ERR syntax error");
			return;
		}
	}
	std::string buf;
	ValueRef old{};
	const bool exists = kv_.get(skey(x, x.arg(1), buf), old) == 1;
	if (get && exists && old.typed)
		return wrong_type(x);
	if ((nx && exists) || (xx && !exists)) {
		if (get && exists)
			reply_value(x, old);
		else
			reply_null(x);
		return;
	}
	if (keepttl && exists)
		expiry = old.expiry_ns;
	// SET ... GET replies with the old value before it is replaced (copied
	// now: its slices are invalid after the set); a refused write takes
	// that reply back and sends the refusal instead.
	const std::size_t mark = x.o.size();
	if (get) {
		if (exists)
			reply_value_copy(x, old);
		else
			reply_null(x);
	}
	if (expiry != 0 && expiry <= daxnet::pmem::realtime_ns()) {
		// already expired: nothing is stored and an old value goes (as
		// Redis 7.2 does; 7.0 stored a key nobody could read)
		prop_custom_ = true;
		if (exists) {
			if (const int rc = del_stored(skey(x, x.arg(1), buf)); rc < 0) {
				x.o.truncate(mark);
				resp::error(x.o, fmt::format("ERR daxnet: delete failed ({})", std::strerror(-rc)));
				return;
			}
			++expired_keys_;
			propagate_as(x, {expire_del_name(), std::string(x.arg(1))});
		}
		if (!get)
			resp::ok(x.o);
		return;
	}
	Slice k;
	if (arg_kv_slices(x, 1, 2, k) < 0) {
		x.o.truncate(mark);
		refuse_pool_full(x);
		return;
	}
	if (const auto why = stage_set(k, expiry)) {
		x.o.truncate(mark);
		resp_refusal(x.o, *why);
		return;
	}
	if (exp_at && !replicas_.empty()) {
		// replicas get the absolute time (no drift from their lag)
		std::vector<std::string> argv(x.argv.begin(), x.argv.end());
		argv[exp_at] = "PXAT";
		argv[exp_at + 1] = std::to_string(exp_ms);
		propagate_as(x, std::move(argv));
	}
	if (!get)
		resp::ok(x.o);
}

void KvService::cmd_mget(Ctx& x)
{
	resp::array(x.o, x.argc() - 1);
	std::string buf;
	for (std::size_t i = 1; i < x.argc(); ++i) {
		ValueRef v{};
		if (kv_.get(skey(x, x.arg(i), buf), v) == 1 && !v.typed)
			reply_value(x, v);
		else
			reply_null(x);
	}
}

// Stages SET of every key/value pair from argument 1 on (MSET, MSETNX),
// all or nothing: when one cannot be staged, those staged before it are
// taken back (store and replication queue) and the refusal is written.
bool KvService::stage_pairs(Ctx& x)
{
	AtomicGroup grp(*this);
	bool ok = true;
	for (std::size_t i = 1; i < x.argc() && ok; i += 2) {
		Slice k;
		if (arg_kv_slices(x, i, i + 1, k) < 0) {
			refuse_pool_full(x);
			ok = false;
		} else if (const auto why = stage_set(k, 0)) {
			resp_refusal(x.o, *why);
			ok = false;
		}
	}
	grp.end(!ok);
	return ok;
}

void KvService::cmd_mset(Ctx& x)
{
	if (x.argc() % 2 == 0) {
		resp::wrong_arity(x.o, "mset");
		return;
	}
	if (!admit_batch(x, 1))
		return;
	if (!stage_pairs(x))
		return;
	resp::ok(x.o);
}

void KvService::cmd_incr_by(Ctx& x, std::int64_t delta)
{
	std::string buf;
	ValueRef old{};
	std::int64_t cur = 0;
	std::uint64_t expiry = 0;
	if (kv_.get(skey(x, x.arg(1), buf), old) == 1) {
		if (old.typed)
			return wrong_type(x);
		char tmp[24];
		if (old.size > 20) {
			resp::error(x.o, "ERR value is not an integer or out of range");
			return;
		}
		std::size_t n = 0;
		for (const Slice& s : old.slices) {
			auto b = daxnet::pmem::slice_bytes(pool_, s);
			std::memcpy(tmp + n, b.data(), b.size());
			n += b.size();
		}
		if (!parse_i64(std::string_view(tmp, n), cur)) {
			resp::error(x.o, "ERR value is not an integer or out of range");
			return;
		}
		expiry = old.expiry_ns;
	}
	if ((delta > 0 && cur > INT64_MAX - delta) || (delta < 0 && cur < INT64_MIN - delta)) {
		resp::error(x.o, "ERR increment or decrement would overflow");
		return;
	}
	cur += delta;
	char num[24];
	auto r = std::to_chars(num, num + sizeof num, cur);
	Slice k, v;
	if (key_slice(x, 1, k) < 0 || bytes_slice(std::string_view(num, static_cast<std::size_t>(r.ptr - num)), v) < 0) {
		refuse_pool_full(x);
		return;
	}
	values_.assign(1, v);
	if (const auto why = stage_set(k, expiry)) {
		resp_refusal(x.o, *why);
		return;
	}
	resp::integer(x.o, cur);
}

void KvService::cmd_incr(Ctx& x)
{
	cmd_incr_by(x, 1);
}

void KvService::cmd_decr(Ctx& x)
{
	cmd_incr_by(x, -1);
}

void KvService::cmd_incrby(Ctx& x)
{
	std::int64_t d = 0;
	if (!parse_i64(x.arg(2), d)) {
		resp::error(x.o, "ERR value is not an integer or out of range");
		return;
	}
	cmd_incr_by(x, d);
}

void KvService::cmd_decrby(Ctx& x)
{
	std::int64_t d = 0;
	if (!parse_i64(x.arg(2), d)) {
		resp::error(x.o, "ERR value is not an integer or out of range");
		return;
	}
	if (d == INT64_MIN) {
		resp::error(x.o, "ERR decrement would overflow");
		return;
	}
	cmd_incr_by(x, -d);
}

void KvService::cmd_strlen(Ctx& x)
{
	std::string buf;
	ValueRef v{};
	const bool exists = kv_.get(skey(x, x.arg(1), buf), v) == 1;
	if (exists && v.typed)
		return wrong_type(x);
	resp::integer(x.o, exists ? static_cast<std::int64_t>(v.size) : 0);
}

bool parse_ld(std::string_view s, long double& v) noexcept
{
	if (s.empty() || s.size() > 5000 || std::isspace(static_cast<unsigned char>(s[0])) ||
	    std::isspace(static_cast<unsigned char>(s.back())))
		return false;
	std::string t(s);
	char* end = nullptr;
	errno = 0;
	v = std::strtold(t.c_str(), &end);
	if (end != t.c_str() + t.size() || errno == ERANGE || std::isnan(v))
		return false;
	return true;
}

std::string format_ld(long double v)
{
	// Redis' human form: %.17Lf without trailing zeros (and without a
	// trailing dot); integers in range print as integers.
	char buf[5600];
	int n = std::snprintf(buf, sizeof buf, "%.17Lf", v);
	if (n <= 0 || static_cast<std::size_t>(n) >= sizeof buf)
		return "0";
	std::string s(buf, static_cast<std::size_t>(n));
	if (s.find('.') != std::string::npos) {
		while (!s.empty() && s.back() == '0')
			s.pop_back();
		if (!s.empty() && s.back() == '.')
			s.pop_back();
	}
	if (s == "-0")
		s = "0";
	return s;
}

namespace {

/// Redis' range normalisation for GETRANGE/BITCOUNT/BITPOS: false when empty.
bool norm_range(std::int64_t& start, std::int64_t& end, std::int64_t len) noexcept
{
	if (start < 0 && end < 0 && start > end)
		return false;
	if (start < 0)
		start += len;
	if (end < 0)
		end += len;
	if (start < 0)
		start = 0;
	if (end < 0)
		end = 0;
	if (end >= len)
		end = len - 1;
	return !(start > end || len == 0);
}

}  // namespace

void KvService::cmd_append(Ctx& x)
{
	std::string sk;
	const std::string_view key = skey(x, x.arg(1), sk);
	ValueRef v{};
	std::string cur;
	std::uint64_t expiry = 0;
	if (lookup(key, v) == 1) {
		if (v.typed)
			return wrong_type(x);
		cur = value_bytes(pool_, v);
		expiry = v.expiry_ns;
	}
	if (cur.size() + x.arg(2).size() > std::min<std::uint64_t>(kMaxString, cfg_.max_value)) {
		resp::error(x.o, "ERR string exceeds maximum allowed size (proto-max-bulk-len)");
		return;
	}
	cur.append(x.arg(2));
	if (const auto why = put_bytes(key, cur, expiry)) {
		resp_refusal(x.o, *why);
		return;
	}
	resp::integer(x.o, static_cast<std::int64_t>(cur.size()));
}

void KvService::cmd_getset(Ctx& x)
{
	std::string sk;
	const std::string_view key = skey(x, x.arg(1), sk);
	ValueRef v{};
	const std::size_t mark = x.o.size();  // the old value is taken back if the write is refused
	const int found = lookup(key, v);
	if (found == 1 && v.typed)
		return wrong_type(x);
	if (found == 1)
		reply_value_copy(x, v);
	else
		reply_null(x);
	Slice k;
	if (arg_kv_slices(x, 1, 2, k) < 0) {
		x.o.truncate(mark);
		refuse_pool_full(x);
		return;
	}
	if (const auto why = stage_set(k, 0)) {
		x.o.truncate(mark);
		resp_refusal(x.o, *why);
		return;
	}
	propagate_as(x, {"SET", std::string(x.arg(1)), std::string(x.arg(2))});
}

void KvService::cmd_getdel(Ctx& x)
{
	std::string sk;
	const std::string_view key = skey(x, x.arg(1), sk);
	ValueRef v{};
	if (lookup(key, v) != 1) {
		reply_null(x);
		return;
	}
	if (v.typed)
		return wrong_type(x);
	reply_value_copy(x, v);
	if (del_stored(key) > 0)
		propagate_as(x, {"DEL", std::string(x.arg(1))});
}

void KvService::cmd_getex(Ctx& x)
{
	std::uint64_t expiry = 0;
	bool persist = false, change = false;
	for (std::size_t i = 2; i < x.argc(); ++i) {
		std::string_view o = x.arg(i);
		if ((ieq(o, "ex") || ieq(o, "px") || ieq(o, "exat") || ieq(o, "pxat")) && i + 1 < x.argc() && !change) {
			std::int64_t ms = 0;
			if (!parse_expiry(x, o, x.arg(i + 1), "getex", ms))
				return;
			expiry = expiry_ns_of_ms(ms);
			change = true;
			++i;
		} else if (ieq(o, "persist") && !change) {
			persist = change = true;
		} else {
			resp::error(x.o, "ERR syntax error");
			return;
		}
	}
	std::string sk;
	const std::string_view key = skey(x, x.arg(1), sk);
	ValueRef v{};
	if (lookup(key, v) != 1) {
		reply_null(x);
		return;
	}
	if (v.typed)
		return wrong_type(x);
	const std::size_t mark = x.o.size();  // taken back if the change is refused
	reply_value_copy(x, v);
	if (!change || (persist && v.expiry_ns == 0))
		return;
	if (!persist && expiry <= daxnet::pmem::realtime_ns()) {
		if (const int rc = del_stored(key); rc > 0) {
			propagate_as(x, {expire_del_name(), std::string(x.arg(1))});
		} else if (rc < 0) {
			x.o.truncate(mark);
			resp::error(x.o, fmt::format("ERR daxnet: delete failed ({})", std::strerror(-rc)));
		}
	} else if (const auto why = put_slices(key, v.slices, persist ? 0 : expiry)) {
		x.o.truncate(mark);
		resp_refusal(x.o, *why);
	} else if (persist) {
		propagate_as(x, {"PERSIST", std::string(x.arg(1))});
	} else {
		propagate_as(x, {"PEXPIREAT", std::string(x.arg(1)), std::to_string(expiry / 1000000)});
	}
}

void KvService::cmd_setnx(Ctx& x)
{
	std::string sk;
	if (kv_.exists(skey(x, x.arg(1), sk))) {
		resp::integer(x.o, 0);
		return;
	}
	Slice k;
	if (arg_kv_slices(x, 1, 2, k) < 0) {
		refuse_pool_full(x);
		return;
	}
	if (const auto why = stage_set(k, 0)) {
		resp_refusal(x.o, *why);
		return;
	}
	resp::integer(x.o, 1);
}

void KvService::set_with_expiry(Ctx& x, bool seconds)
{
	std::int64_t n = 0;
	if (!parse_i64(x.arg(2), n)) {
		resp::error(x.o, "ERR value is not an integer or out of range");
		return;
	}
	const char* name = seconds ? "setex" : "psetex";
	const auto now = static_cast<std::int64_t>(now_ms());
	if (n <= 0 || (seconds && n > INT64_MAX / 1000) || (seconds ? n * 1000 : n) > INT64_MAX - now) {
		resp::error(x.o, fmt::format("ERR invalid expire time in '{}' command", name));
		return;
	}
	const std::uint64_t expiry = expiry_ns_of_ms((seconds ? n * 1000 : n) + now);
	Slice k;
	if (arg_kv_slices(x, 1, 3, k) < 0) {
		refuse_pool_full(x);
		return;
	}
	if (const auto why = stage_set(k, expiry)) {
		resp_refusal(x.o, *why);
		return;
	}
	propagate_as(x, {"SET", std::string(x.arg(1)), std::string(x.arg(3)), "PXAT",
			 std::to_string((seconds ? n * 1000 : n) + now)});
	resp::ok(x.o);
}

void KvService::cmd_setex(Ctx& x)
{
	set_with_expiry(x, true);
}

void KvService::cmd_psetex(Ctx& x)
{
	set_with_expiry(x, false);
}

void KvService::cmd_msetnx(Ctx& x)
{
	if (x.argc() % 2 == 0) {
		resp::wrong_arity(x.o, "msetnx");
		return;
	}
	std::string sk;
	for (std::size_t i = 1; i < x.argc(); i += 2)
		if (kv_.exists(skey(x, x.arg(i), sk))) {
			resp::integer(x.o, 0);
			return;
		}
	// admitted whole like MSET: log room made now, no checkpoint between
	// its entries, so none is refused where it would have fit
	if (!admit_batch(x, 1))
		return;
	if (!stage_pairs(x))
		return;
	resp::integer(x.o, 1);
}

void KvService::cmd_incrbyfloat(Ctx& x)
{
	std::string sk;
	const std::string_view key = skey(x, x.arg(1), sk);
	ValueRef v{};
	long double cur = 0, incr = 0;
	std::uint64_t expiry = 0;
	if (lookup(key, v) == 1) {
		if (v.typed)
			return wrong_type(x);
		if (!parse_ld(value_bytes(pool_, v), cur)) {
			resp::error(x.o, "ERR value is not a valid float");
			return;
		}
		expiry = v.expiry_ns;
	}
	if (!parse_ld(x.arg(2), incr)) {
		resp::error(x.o, "ERR value is not a valid float");
		return;
	}
	cur += incr;
	if (std::isnan(cur) || std::isinf(cur)) {
		resp::error(x.o, "ERR increment would produce NaN or Infinity");
		return;
	}
	const std::string out = format_ld(cur);
	if (const auto why = put_bytes(key, out, expiry)) {
		resp_refusal(x.o, *why);
		return;
	}
	// the result, not the increment: float formatting may differ on a replica
	propagate_as(x, {"SET", std::string(x.arg(1)), out, "KEEPTTL"});
	resp::bulk(x.o, out);
}

void KvService::cmd_getrange(Ctx& x)
{
	std::int64_t start = 0, end = 0;
	if (!parse_i64(x.arg(2), start) || !parse_i64(x.arg(3), end)) {
		resp::error(x.o, "ERR value is not an integer or out of range");
		return;
	}
	std::string sk;
	ValueRef v{};
	if (lookup(skey(x, x.arg(1), sk), v) != 1) {
		resp::bulk(x.o, "");
		return;
	}
	if (v.typed)
		return wrong_type(x);
	const std::string val = value_bytes(pool_, v);
	if (!norm_range(start, end, static_cast<std::int64_t>(val.size()))) {
		resp::bulk(x.o, "");
		return;
	}
	resp::bulk(x.o, std::string_view(val).substr(static_cast<std::size_t>(start),
						     static_cast<std::size_t>(end - start + 1)));
}

void KvService::cmd_setrange(Ctx& x)
{
	std::int64_t off = 0;
	if (!parse_i64(x.arg(2), off)) {
		resp::error(x.o, "ERR value is not an integer or out of range");
		return;
	}
	if (off < 0) {
		resp::error(x.o, "ERR offset is out of range");
		return;
	}
	std::string sk;
	const std::string_view key = skey(x, x.arg(1), sk);
	const std::string_view add = x.arg(3);
	ValueRef v{};
	const bool exists = lookup(key, v) == 1;
	if (exists && v.typed)
		return wrong_type(x);
	if (add.empty()) {
		resp::integer(x.o, exists ? static_cast<std::int64_t>(v.size) : 0);
		return;
	}
	if (static_cast<std::uint64_t>(off) + add.size() > std::min<std::uint64_t>(kMaxString, cfg_.max_value)) {
		resp::error(x.o, "ERR string exceeds maximum allowed size (proto-max-bulk-len)");
		return;
	}
	std::string cur = exists ? value_bytes(pool_, v) : std::string();
	const std::uint64_t expiry = exists ? v.expiry_ns : 0;
	const auto o = static_cast<std::size_t>(off);
	if (cur.size() < o + add.size())
		cur.resize(o + add.size(), '\0');
	cur.replace(o, add.size(), add);
	if (const auto why = put_bytes(key, cur, expiry)) {
		resp_refusal(x.o, *why);
		return;
	}
	resp::integer(x.o, static_cast<std::int64_t>(cur.size()));
}

namespace {

bool parse_bit_offset(std::string_view s, std::uint64_t& off) noexcept
{
	std::int64_t n = 0;
	if (!parse_i64(s, n) || n < 0 || static_cast<std::uint64_t>(n) >= (512ull << 20) * 8)
		return false;
	off = static_cast<std::uint64_t>(n);
	return true;
}

// The BYTE | BIT unit of BITCOUNT and BITPOS; false (syntax error) otherwise.
bool parse_bit_unit(std::string_view s, bool& bits) noexcept
{
	bits = ieq(s, "bit");
	return bits || ieq(s, "byte");
}

}  // namespace

void KvService::cmd_setbit(Ctx& x)
{
	std::uint64_t off = 0;
	if (!parse_bit_offset(x.arg(2), off)) {
		resp::error(x.o, "ERR bit offset is not an integer or out of range");
		return;
	}
	const std::string_view b = x.arg(3);
	if (b != "0" && b != "1") {
		resp::error(x.o, "ERR bit is not an integer or out of range");
		return;
	}
	std::string sk;
	const std::string_view key = skey(x, x.arg(1), sk);
	ValueRef v{};
	const bool exists = lookup(key, v) == 1;
	if (exists && v.typed)
		return wrong_type(x);
	std::string cur = exists ? value_bytes(pool_, v) : std::string();
	const std::uint64_t byte = off >> 3;
	if (byte + 1 > cfg_.max_value) {
		resp::error(x.o, "ERR string exceeds maximum allowed size (proto-max-bulk-len)");
		return;
	}
	if (cur.size() < byte + 1)
		cur.resize(byte + 1, '\0');
	const int bit = 7 - static_cast<int>(off & 7);
	auto& ch = reinterpret_cast<unsigned char&>(cur[byte]);
	const int old = (ch >> bit) & 1;
	if (b == "1")
		ch = static_cast<unsigned char>(ch | (1u << bit));
	else
		ch = static_cast<unsigned char>(ch & ~(1u << bit));
	if (const auto why = put_bytes(key, cur, exists ? v.expiry_ns : 0)) {
		resp_refusal(x.o, *why);
		return;
	}
	resp::integer(x.o, old);
}

void KvService::cmd_getbit(Ctx& x)
{
	std::uint64_t off = 0;
	if (!parse_bit_offset(x.arg(2), off)) {
		resp::error(x.o, "ERR bit offset is not an integer or out of range");
		return;
	}
	std::string sk;
	ValueRef v{};
	const bool exists = lookup(skey(x, x.arg(1), sk), v) == 1;
	if (exists && v.typed)
		return wrong_type(x);
	if (!exists || (off >> 3) >= v.size) {
		resp::integer(x.o, 0);
		return;
	}
	const std::string cur = value_bytes(pool_, v);
	resp::integer(x.o, (static_cast<unsigned char>(cur[off >> 3]) >> (7 - (off & 7))) & 1);
}

void KvService::cmd_bitcount(Ctx& x)
{
	std::int64_t start = 0, end = -1;
	bool bits = false;
	if (x.argc() == 3 || x.argc() > 5) {
		resp::error(x.o, "ERR syntax error");
		return;
	}
	if (x.argc() >= 4) {
		if (!parse_i64(x.arg(2), start) || !parse_i64(x.arg(3), end)) {
			resp::error(x.o, "ERR value is not an integer or out of range");
			return;
		}
		if (x.argc() == 5 && !parse_bit_unit(x.arg(4), bits)) {
			resp::error(x.o, "ERR syntax error");
			return;
		}
	}
	std::string sk;
	ValueRef v{};
	if (lookup(skey(x, x.arg(1), sk), v) != 1) {
		resp::integer(x.o, 0);
		return;
	}
	if (v.typed)
		return wrong_type(x);
	const std::string cur = value_bytes(pool_, v);
	const auto len = static_cast<std::int64_t>(cur.size()) * (bits ? 8 : 1);
	if (!norm_range(start, end, len)) {
		resp::integer(x.o, 0);
		return;
	}
	std::int64_t n = 0;
	for (std::int64_t i = start; i <= end; ++i) {
		if (bits)
			n += (static_cast<unsigned char>(cur[static_cast<std::size_t>(i >> 3)]) >> (7 - (i & 7))) & 1;
		else
			n += std::popcount(static_cast<unsigned char>(cur[static_cast<std::size_t>(i)]));
	}
	resp::integer(x.o, n);
}

void KvService::cmd_bitpos(Ctx& x)
{
	const std::string_view b = x.arg(2);
	if (b != "0" && b != "1") {
		resp::error(x.o, "ERR The bit argument must be 1 or 0.");
		return;
	}
	const int want = b == "1" ? 1 : 0;
	std::int64_t start = 0, end = -1;
	bool end_given = false, bits = false;
	if (x.argc() > 6) {
		resp::error(x.o, "ERR syntax error");
		return;
	}
	if (x.argc() >= 4 && !parse_i64(x.arg(3), start)) {
		resp::error(x.o, "ERR value is not an integer or out of range");
		return;
	}
	if (x.argc() >= 5) {
		if (!parse_i64(x.arg(4), end)) {
			resp::error(x.o, "ERR value is not an integer or out of range");
			return;
		}
		end_given = true;
	}
	if (x.argc() == 6 && !parse_bit_unit(x.arg(5), bits)) {
		resp::error(x.o, "ERR syntax error");
		return;
	}
	std::string sk;
	ValueRef v{};
	if (lookup(skey(x, x.arg(1), sk), v) != 1) {
		resp::integer(x.o, want ? -1 : 0);
		return;
	}
	if (v.typed)
		return wrong_type(x);
	const std::string cur = value_bytes(pool_, v);
	const auto len = static_cast<std::int64_t>(cur.size()) * (bits ? 8 : 1);
	if (!norm_range(start, end, len)) {
		resp::integer(x.o, -1);
		return;
	}
	const std::int64_t first_bit = bits ? start : start * 8, last_bit = bits ? end : end * 8 + 7;
	for (std::int64_t i = first_bit; i <= last_bit; ++i) {
		const int bit = (static_cast<unsigned char>(cur[static_cast<std::size_t>(i >> 3)]) >> (7 - (i & 7))) & 1;
		if (bit == want) {
			resp::integer(x.o, i);
			return;
		}
	}
	// looking for a clear bit past the end of a string that has none: the
	// string is considered padded with zeros on the right, unless an end
	// was given
	resp::integer(x.o, (want == 0 && !end_given) ? last_bit + 1 : -1);
}

void KvService::cmd_lcs(Ctx& x)
{
	bool len_only = false, idx = false, withlen = false;
	std::int64_t minlen = 0;
	for (std::size_t i = 3; i < x.argc(); ++i) {
		if (ieq(x.arg(i), "len"))
			len_only = true;
		else if (ieq(x.arg(i), "idx"))
			idx = true;
		else if (ieq(x.arg(i), "withmatchlen"))
			withlen = true;
		else if (ieq(x.arg(i), "minmatchlen") && i + 1 < x.argc()) {
			if (!parse_i64(x.arg(++i), minlen)) {
				resp::error(x.o, "ERR value is not an integer or out of range");
				return;
			}
			if (minlen < 0)
				minlen = 0;
		} else {
			resp::error(x.o, "ERR syntax error");
			return;
		}
	}
	if (len_only && idx) {
		resp::error(x.o, "ERR If you want both the length and indexes, please just use IDX.");
		return;
	}
	std::string sk;
	ValueRef v{};
	std::string a, b;
	for (int i = 1; i <= 2; ++i) {
		if (lookup(skey(x, x.arg(static_cast<std::size_t>(i)), sk), v) != 1)
			continue;
		if (v.typed) {
			resp::error(x.o, "ERR The specified keys must contain string values");
			return;
		}
		(i == 1 ? a : b) = value_bytes(pool_, v);
	}
	if (a.size() >= 1u << 16 || b.size() >= 1u << 16 || (a.size() + 1) * (b.size() + 1) > (64u << 20)) {
		resp::error(x.o, "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len");
		return;
	}
	const std::size_t al = a.size(), bl = b.size();
	std::vector<std::uint32_t> t((al + 1) * (bl + 1), 0);
	auto at = [&](std::size_t i, std::size_t j) -> std::uint32_t& { return t[j * (al + 1) + i]; };
	for (std::size_t i = 1; i <= al; ++i)
		for (std::size_t j = 1; j <= bl; ++j)
			at(i, j) = a[i - 1] == b[j - 1] ? at(i - 1, j - 1) + 1 : std::max(at(i - 1, j), at(i, j - 1));
	const std::uint32_t n = at(al, bl);
	if (len_only) {
		resp::integer(x.o, n);
		return;
	}
	// walk back: the sequence and, for IDX, the matching ranges
	std::string seq(n, '\0');
	struct Match {
		std::size_t a0, a1, b0, b1;
	};
	std::vector<Match> matches;
	std::size_t i = al, j = bl, k = n;
	bool in_range = false;
	Match cur{};
	while (i > 0 && j > 0) {
		bool emit = false;
		if (a[i - 1] == b[j - 1]) {
			seq[--k] = a[i - 1];
			if (!in_range) {
				cur = {i - 1, i - 1, j - 1, j - 1};
				in_range = true;
			} else if (cur.a0 == i && cur.b0 == j) {
				cur.a0 = i - 1;
				cur.b0 = j - 1;
			} else {
				emit = true;
			}
			if (emit) {
				matches.push_back(cur);
				cur = {i - 1, i - 1, j - 1, j - 1};
			}
			--i;
			--j;
		} else {
			if (in_range) {
				matches.push_back(cur);
				in_range = false;
			}
			if (at(i - 1, j) > at(i, j - 1))
				--i;
			else
				--j;
		}
	}
	if (in_range)
		matches.push_back(cur);
	if (!idx) {
		resp::bulk(x.o, seq);
		return;
	}
	std::vector<Match> shown;
	for (const Match& m : matches)
		if (static_cast<std::int64_t>(m.a1 - m.a0 + 1) >= minlen)
			shown.push_back(m);
	reply_map(x, 2);
	resp::bulk(x.o, "matches");
	resp::array(x.o, shown.size());
	for (const Match& m : shown) {
		resp::array(x.o, withlen ? 3 : 2);
		resp::array(x.o, 2);
		resp::integer(x.o, static_cast<std::int64_t>(m.a0));
		resp::integer(x.o, static_cast<std::int64_t>(m.a1));
		resp::array(x.o, 2);
		resp::integer(x.o, static_cast<std::int64_t>(m.b0));
		resp::integer(x.o, static_cast<std::int64_t>(m.b1));
		if (withlen)
			resp::integer(x.o, static_cast<std::int64_t>(m.a1 - m.a0 + 1));
	}
	resp::bulk(x.o, "len");
	resp::integer(x.o, n);
}

}  // namespace daxnet::kv
