// SPDX-License-Identifier: BSD-2-Clause
//
// Reading and writing daxnet-kv's collections (coll.h; docs/design.md
// §daxnet-kv collections): one typed value per key, decoded whole by a
// command and rewritten whole by a write.
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "coll.h"
#include "kv.h"

namespace daxnet::kv {

namespace resp = daxnet::proto::resp;

void KvService::wrong_type(Ctx& x)
{
	resp::error(x.o, "WRONGTYPE Operation against a key holding the wrong kind of value");
}

bool KvService::read_coll(Ctx& x, std::string_view stored, std::uint8_t type, CollVal& out)
{
	out.exists = false;
	out.hashtable = false;
	out.expiry = 0;
	out.items.clear();
	ValueRef v{};
	if (lookup(stored, v) != 1)
		return true;
	if (vtype_of(v) != type) {
		wrong_type(x);
		return false;
	}
	std::uint8_t t = 0;
	if (!coll::decode(value_bytes(pool_, v), t, out.items, &out.hashtable) || t != type) {
		resp::error(x.o, "ERR daxnet: malformed collection value");
		return false;
	}
	out.exists = true;
	out.expiry = v.expiry_ns;
	return true;
}

bool KvService::read_arg_coll(Ctx& x, std::size_t i, std::uint8_t type, std::string& key, CollVal& out)
{
	std::string buf;
	key.assign(skey(x, x.arg(i), buf));
	return read_coll(x, key, type, out);
}

void KvService::syntax_error(Ctx& x)
{
	resp::error(x.o, "ERR syntax error");
}

std::mt19937_64& coll::rng()
{
	static std::mt19937_64 r{std::random_device{}()};
	return r;
}

bool KvService::arg_cursor(Ctx& x, std::size_t i, std::uint64_t& cursor)
{
	const std::string_view c = x.arg(i);
	auto r = std::from_chars(c.data(), c.data() + c.size(), cursor);
	if (c.empty() || r.ec != std::errc() || r.ptr != c.data() + c.size()) {
		resp::error(x.o, "ERR invalid cursor");
		return false;
	}
	return true;
}

bool KvService::arg_i64(Ctx& x, std::size_t i, std::int64_t& v)
{
	if (parse_i64(x.arg(i), v))
		return true;
	resp::error(x.o, "ERR value is not an integer or out of range");
	return false;
}

bool KvService::list_args(Ctx& x, std::span<std::int64_t> ints, std::string& key, CollVal& l)
{
	for (std::size_t i = 0; i < ints.size(); ++i)
		if (!arg_i64(x, 2 + i, ints[i]))
			return false;
	return read_arg_coll(x, 1, coll::kList, key, l);
}

bool KvService::pop_args(Ctx& x, std::uint8_t type, std::int64_t& count, std::string& key, CollVal& out)
{
	if (x.argc() > 3) {
		// LPOP/RPOP: arity; SPOP: syntax (Redis 7.0)
		if (type == coll::kList)
			resp::wrong_arity(x.o, x.cmd ? x.cmd->name : "lpop");
		else
			resp::error(x.o, "ERR syntax error");
		return false;
	}
	count = 1;
	if (x.argc() == 3) {
		if (!arg_i64(x, 2, count))
			return false;
		if (count < 0) {
			resp::error(x.o, "ERR value is out of range, must be positive");
			return false;
		}
	}
	return read_arg_coll(x, 1, type, key, out);
}

void KvService::reply_items(Ctx& x, std::span<const std::string> items, bool as_set)
{
	if (as_set)
		resp::set(x.o, items.size(), x.resp3());
	else
		resp::array(x.o, items.size());
	for (const auto& s : items)
		resp::bulk(x.o, s);
}

bool KvService::write_coll(Ctx& x, std::string_view stored, std::uint8_t type, const std::vector<std::string>& items,
			   std::uint64_t expiry, bool hashtable)
{
	if (items.empty()) {
		const int rc = del_stored(stored);
		if (rc < 0) {
			resp::error(x.o, fmt::format("ERR daxnet: delete failed ({})", std::strerror(-rc)));
			return false;
		}
		return true;
	}
	const std::size_t size = coll::encoded_size(items);
	if (size > coll::kMaxBytes) {
		++refused_;
		resp::error(x.o, fmt::format("ERR daxnet: {} too large ({} bytes encoded, limit {}: every write "
					     "rewrites a collection whole)",
					     coll::type_name(type), size, coll::kMaxBytes));
		return false;
	}
	if (const auto why = put_bytes(stored, coll::encode(type, items, hashtable), expiry, true)) {
		resp_refusal(x.o, *why);
		return false;
	}
	return true;
}

bool KvService::write_colls(Ctx& x, std::uint8_t type, std::initializer_list<CollWrite> w)
{
	// Admitted whole (log room made now: no checkpoint between the
	// writes), counting what each adds beyond the value it replaces.
	const std::uint32_t bsize = pool_.buffer_size();
	std::uint64_t recs = 0, added = 0;
	for (const CollWrite& cw : w) {
		if (cw.items->empty())
			continue;  // a delete: logged in the room kept for frees
		const std::uint64_t n = daxnet::pmem::wal_records_for(coll::encoded_size(*cw.items) / bsize + 2);
		ValueRef v{};
		const std::uint64_t old =
			kv_.get(cw.stored, v) == 1 ? daxnet::pmem::wal_records_for(v.size / bsize + 2) : 0;
		recs += n;
		added += n > old ? n - old : 0;
	}
	if (const int rc = recs ? kv_.admit(added, recs) : 0; rc < 0) {
		++refused_;
		resp_refusal(x.o, rc == -EMSGSIZE ? batch_too_large("the command", recs, false) : capacity_refusal());
		return false;
	}
	AtomicGroup grp(*this);
	bool ok = true;
	for (const CollWrite& cw : w)
		if (ok)
			ok = write_coll(x, cw.stored, type, *cw.items, cw.expiry, cw.hashtable);
	grp.end(!ok);
	return ok;
}

namespace {

bool all_integers(const std::vector<std::string>& v)
{
	std::int64_t n = 0;
	return std::all_of(v.begin(), v.end(), [&](const std::string& s) { return parse_i64(s, n) && s == std::to_string(n); });
}

}  // namespace

std::int64_t KvService::intset_limit() const
{
	const auto it = tuning_.find("set-max-intset-entries");
	std::int64_t limit = 512;
	if (it != tuning_.end())
		(void)parse_i64(it->second, limit);
	return limit;
}

void KvService::order_set(std::vector<std::string>& members, bool& hashtable) const
{
	if (hashtable)
		return;  // one way, as in Redis
	if (static_cast<std::int64_t>(members.size()) > intset_limit() || !all_integers(members)) {
		hashtable = true;
		return;
	}
	std::sort(members.begin(), members.end(), [](const std::string& a, const std::string& b) {
		std::int64_t x = 0, y = 0;
		(void)parse_i64(a, x);
		(void)parse_i64(b, y);
		return x < y;
	});
}

std::string KvService::coll_encoding(std::uint8_t type, const std::vector<std::string>& items, bool hashtable) const
{
	if (type == coll::kList)
		return "quicklist";  // Redis 7.0: every list
	if (type == coll::kHash)
		return hashtable ? "hashtable" : "listpack";  // as order_hash() chose at the last write
	return !hashtable && static_cast<std::int64_t>(items.size()) <= intset_limit() && all_integers(items) ? "intset"
														: "hashtable";
}

}  // namespace daxnet::kv
