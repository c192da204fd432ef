// SPDX-License-Identifier: BSD-2-Clause
//
// String commands (Redis 7.0 semantics; the only value type daxnet-kv
// stores).
#include <charconv>
#include <cstring>

#include "kv.h"

namespace daxnet::kv {

namespace resp = daxnet::proto::resp;

void KvService::cmd_get(Ctx& x)
{
	ValueRef v{};
	std::string buf;
	if (kv_.get(skey(x, x.arg(1), buf), v) == 1)
		reply_value(x, v);
	else
		reply_null(x);
}

void KvService::cmd_set(Ctx& x)
{
	bool nx = false, xx = false, keepttl = false, get = false;
	std::uint64_t expiry = 0;
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
			std::int64_t n = 0;
			if (!parse_i64(x.arg(i + 1), n)) {
				resp::error(x.o, "ERR value is not an integer or out of range");
				return;
			}
			if (n <= 0 || n > INT64_MAX / 1000000000) {
				resp::error(x.o, "ERR invalid expire time in 'set' command");
				return;
			}
			const auto un = static_cast<std::uint64_t>(n);
			const std::uint64_t now = daxnet::pmem::realtime_ns();
			if (ieq(o, "ex"))
				expiry = now + un * 1000000000ull;
			else if (ieq(o, "px"))
				expiry = now + un * 1000000ull;
			else if (ieq(o, "exat"))
				expiry = un * 1000000000ull;
			else
				expiry = un * 1000000ull;
			++i;
		} else {
			resp::error(x.o, "ERR syntax error");
			return;
		}
	}
	std::string buf;
	ValueRef old{};
	const bool exists = kv_.get(skey(x, x.arg(1), buf), old) == 1;
	if ((nx && exists) || (xx && !exists)) {
		if (get && exists)
			reply_value(x, old);
		else
			reply_null(x);
		return;
	}
	if (keepttl && exists)
		expiry = old.expiry_ns;
	if (get) {
		// reply with the old value before it is replaced (copied now:
		// its slices are invalid after the set)
		if (exists)
			reply_value_copy(x, old);
		else
			reply_null(x);
	}
	Slice k;
	if (arg_kv_slices(x, 1, 2, k) < 0) {
		if (!get)
			refuse_pool_full(x);
		return;
	}
	std::string err;
	if (const char* e = stage_set(k, expiry, err)) {
		if (!get)
			resp::error(x.o, e);
		return;
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
		if (kv_.get(skey(x, x.arg(i), buf), v) == 1)
			reply_value(x, v);
		else
			reply_null(x);
	}
}

void KvService::cmd_mset(Ctx& x)
{
	if (x.argc() % 2 == 0) {
		resp::wrong_arity(x.o, "mset");
		return;
	}
	if (!admit_batch(x, 1))
		return;
	for (std::size_t i = 1; i < x.argc(); i += 2) {
		Slice k;
		if (arg_kv_slices(x, i, i + 1, k) < 0) {
			refuse_pool_full(x);
			return;
		}
		std::string err;
		if (const char* e = stage_set(k, 0, err)) {
			resp::error(x.o, e);
			return;
		}
	}
	resp::ok(x.o);
}

void KvService::cmd_incr_by(Ctx& x, std::int64_t delta)
{
	std::string buf;
	ValueRef old{};
	std::int64_t cur = 0;
	std::uint64_t expiry = 0;
	if (kv_.get(skey(x, x.arg(1), buf), old) == 1) {
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
	std::string err;
	if (const char* e = stage_set(k, expiry, err)) {
		resp::error(x.o, e);
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
	resp::integer(x.o, kv_.get(skey(x, x.arg(1), buf), v) == 1 ? static_cast<std::int64_t>(v.size) : 0);
}

}  // namespace daxnet::kv
