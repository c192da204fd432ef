// SPDX-License-Identifier: BSD-2-Clause
//
// Keyspace commands: keys as a whole (existence, expiry, databases).
#include <cstring>

#include "kv.h"

namespace daxnet::kv {

namespace resp = daxnet::proto::resp;

void KvService::cmd_del(Ctx& x)
{
	std::int64_t deleted = 0;
	std::string buf;
	for (std::size_t i = 1; i < x.argc(); ++i) {
		if (!kv_.exists(skey(x, x.arg(i), buf)))
			continue;
		Slice k;
		if (key_slice(x, i, k) < 0) {
			refuse_pool_full(x);
			return;
		}
		const int rc = stage_del(k);
		if (rc < 0) {
			resp::error(x.o, fmt::format("ERR daxnet: delete failed ({})", std::strerror(-rc)));
			return;
		}
		deleted += rc;
	}
	resp::integer(x.o, deleted);
}

void KvService::cmd_exists(Ctx& x)
{
	std::int64_t count = 0;
	std::string buf;
	for (std::size_t i = 1; i < x.argc(); ++i)
		if (kv_.exists(skey(x, x.arg(i), buf)))
			++count;
	resp::integer(x.o, count);
}

void KvService::cmd_dbsize(Ctx& x)
{
	resp::integer(x.o, static_cast<std::int64_t>(kv_.dbsize()));
}

void KvService::cmd_flushall(Ctx& x)
{
	if (x.argc() > 2 || (x.argc() == 2 && !ieq(x.arg(1), "sync") && !ieq(x.arg(1), "async"))) {
		resp::error(x.o, "ERR syntax error");
		return;
	}
	const int rc = kv_.flushall();  // may use the log room kept for frees
	if (rc < 0) {
		resp::error(x.o, fmt::format("ERR daxnet: flush failed ({})", std::strerror(-rc)));
		return;
	}
	staged_ = true;
	++writes_;
	resp::ok(x.o);
}

void KvService::cmd_flushdb(Ctx& x)
{
	cmd_flushall(x);
}

void KvService::cmd_select(Ctx& x)
{
	std::int64_t db = -1;
	if (!parse_i64(x.arg(1), db))
		resp::error(x.o, "ERR value is not an integer or out of range");
	else if (db != 0)
		resp::error(x.o, "ERR DB index is out of range");
	else
		resp::ok(x.o);
}

namespace {

void reply_ttl(OutBuf& o, KvStore& kv, std::string_view key, bool ms)
{
	ValueRef v{};
	if (kv.get(key, v) != 1) {
		resp::integer(o, -2);
	} else if (v.expiry_ns == 0) {
		resp::integer(o, -1);
	} else {
		const std::uint64_t now = daxnet::pmem::realtime_ns();
		const std::uint64_t left = v.expiry_ns > now ? v.expiry_ns - now : 0;
		resp::integer(o, static_cast<std::int64_t>(ms ? (left + 500000) / 1000000 : (left + 500000000) / 1000000000));
	}
}

}  // namespace

void KvService::cmd_ttl(Ctx& x)
{
	std::string buf;
	reply_ttl(x.o, kv_, skey(x, x.arg(1), buf), false);
}

void KvService::cmd_pttl(Ctx& x)
{
	std::string buf;
	reply_ttl(x.o, kv_, skey(x, x.arg(1), buf), true);
}

}  // namespace daxnet::kv
