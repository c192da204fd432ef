// SPDX-License-Identifier: BSD-2-Clause
//
// Keyspace commands: keys as a whole (existence, expiry, names, databases).
#include <algorithm>
#include <cerrno>
#include <cctype>
#include <cstring>
#include <functional>

#include "coll.h"
#include "kv.h"

namespace daxnet::kv {

namespace resp = daxnet::proto::resp;

namespace {

bool parse_db(std::string_view s, int& db, OutBuf& o)
{
	std::int64_t n = 0;
	if (!parse_i64(s, n)) {
		resp::error(o, "ERR value is not an integer or out of range");
		return false;
	}
	if (n < 0 || n >= kDatabases) {
		resp::error(o, "ERR DB index is out of range");
		return false;
	}
	db = static_cast<int>(n);
	return true;
}

/// The user key of a stored key.
std::string_view user_key(std::string_view stored) noexcept
{
	if (stored.size() >= 3 && stored[0] == '\xff' && stored[1] == '\xfe' &&
	    static_cast<unsigned char>(stored[2]) < kDatabases)
		return stored.substr(3);
	return stored;
}

std::string stored_in(int db, std::string_view key)
{
	if (db == 0 && (key.size() < 2 || key[0] != '\xff' || key[1] != '\xfe'))
		return std::string(key);
	std::string s("\xff\xfe");
	s.push_back(static_cast<char>(db));
	s.append(key);
	return s;
}

}  // namespace

bool glob_match(std::string_view p, std::string_view s, bool nocase) noexcept
{
	auto lower = [nocase](char c) {
		return nocase ? static_cast<char>(std::tolower(static_cast<unsigned char>(c))) : c;
	};
	std::size_t pi = 0, si = 0;
	std::size_t star_p = std::string_view::npos, star_s = 0;
	while (si < s.size()) {
		bool matched = false;
		std::size_t next_p = pi;
		if (pi < p.size()) {
			const char pc = p[pi];
			if (pc == '*') {
				while (pi < p.size() && p[pi] == '*')
					++pi;
				if (pi == p.size())
					return true;
				star_p = pi;
				star_s = si;
				continue;
			}
			if (pc == '?') {
				matched = true;
				next_p = pi + 1;
			} else if (pc == '[') {
				std::size_t q = pi + 1;
				bool neg = false;
				if (q < p.size() && p[q] == '^') {
					neg = true;
					++q;
				}
				bool hit = false;
				while (q < p.size() && p[q] != ']') {
					if (p[q] == '\\' && q + 1 < p.size()) {
						++q;
						if (lower(p[q]) == lower(s[si]))
							hit = true;
					} else if (q + 2 < p.size() && p[q + 1] == '-' && p[q + 2] != ']') {
						char a = lower(p[q]), b = lower(p[q + 2]);
						if (a > b)
							std::swap(a, b);
						const char c = lower(s[si]);
						if (c >= a && c <= b)
							hit = true;
						q += 2;
					} else if (lower(p[q]) == lower(s[si])) {
						hit = true;
					}
					++q;
				}
				matched = neg ? !hit : hit;
				next_p = q < p.size() ? q + 1 : q;
			} else if (pc == '\\' && pi + 1 < p.size()) {
				matched = lower(p[pi + 1]) == lower(s[si]);
				next_p = pi + 2;
			} else {
				matched = lower(pc) == lower(s[si]);
				next_p = pi + 1;
			}
		}
		if (matched) {
			pi = next_p;
			++si;
		} else if (star_p != std::string_view::npos) {
			pi = star_p;
			si = ++star_s;
		} else {
			return false;
		}
	}
	while (pi < p.size() && p[pi] == '*')
		++pi;
	return pi == p.size();
}

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

void KvService::cmd_touch(Ctx& x)
{
	cmd_exists(x);
}

void KvService::cmd_dbsize(Ctx& x)
{
	resp::integer(x.o, static_cast<std::int64_t>(dbsize_of(x.cl.db)));
}

namespace {

bool flush_args_ok(Ctx& x)
{
	if (x.argc() > 2 || (x.argc() == 2 && !ieq(x.arg(1), "sync") && !ieq(x.arg(1), "async"))) {
		resp::error(x.o, "ERR syntax error");
		return false;
	}
	return true;
}

}  // namespace

void KvService::cmd_flushall(Ctx& x)
{
	if (!flush_args_ok(x))
		return;
	touch_db(-1);
	const int rc = flush_all_stored();
	if (rc < 0) {
		resp::error(x.o, fmt::format("ERR daxnet: flush failed ({})", std::strerror(-rc)));
		return;
	}
	resp::ok(x.o);
}

void KvService::cmd_flushdb(Ctx& x)
{
	if (!flush_args_ok(x))
		return;
	touch_db(x.cl.db);
	if (!multi_db_ || dbsize_of(x.cl.db) == kv_.dbsize()) {
		// this database holds every key: one FLUSHALL record
		const int rc = flush_all_stored();
		if (rc < 0) {
			resp::error(x.o, fmt::format("ERR daxnet: flush failed ({})", std::strerror(-rc)));
			return;
		}
		resp::ok(x.o);
		return;
	}
	std::vector<std::string> keys;
	const int db = phys(x.cl.db);
	kv_.for_each([&](std::string_view k, const ValueRef&) {
		if (db_of(k) == db)
			keys.emplace_back(k);
	});
	for (const std::string& k : keys) {
		const int rc = del_stored(k);
		if (rc < 0) {
			resp::error(x.o, fmt::format("ERR daxnet: flush failed ({})", std::strerror(-rc)));
			return;
		}
	}
	resp::ok(x.o);
}

void KvService::cmd_select(Ctx& x)
{
	int db = 0;
	if (!parse_db(x.arg(1), db, x.o))
		return;
	x.cl.db = db;
	resp::ok(x.o);
}

namespace {

void reply_ttl(OutBuf& o, int rc, const ValueRef& v, bool ms, bool absolute)
{
	if (rc != 1) {
		resp::integer(o, -2);
	} else if (v.expiry_ns == 0) {
		resp::integer(o, -1);
	} else if (absolute) {
		resp::integer(o, static_cast<std::int64_t>(ms ? v.expiry_ns / 1000000 : v.expiry_ns / 1000000000));
	} else {
		const std::uint64_t now_ms = daxnet::pmem::realtime_ns() / 1000000;
		const std::uint64_t exp_ms = v.expiry_ns / 1000000;
		const std::uint64_t left = exp_ms > now_ms ? exp_ms - now_ms : 0;
		resp::integer(o, static_cast<std::int64_t>(ms ? left : (left + 500) / 1000));
	}
}

}  // namespace

void KvService::ttl_generic(Ctx& x, bool ms, bool absolute)
{
	std::string buf;
	ValueRef v{};
	const int rc = lookup(skey(x, x.arg(1), buf), v);
	reply_ttl(x.o, rc, v, ms, absolute);
}

void KvService::cmd_ttl(Ctx& x)
{
	ttl_generic(x, false, false);
}

void KvService::cmd_pttl(Ctx& x)
{
	ttl_generic(x, true, false);
}

void KvService::cmd_expiretime(Ctx& x)
{
	ttl_generic(x, false, true);
}

void KvService::cmd_pexpiretime(Ctx& x)
{
	ttl_generic(x, true, true);
}

void KvService::expire_generic(Ctx& x, std::uint64_t base_ms, bool seconds)
{
	std::int64_t when = 0;
	if (!parse_i64(x.arg(2), when)) {
		resp::error(x.o, "ERR value is not an integer or out of range");
		return;
	}
	bool nx = false, xx = false, gt = false, lt = false;
	for (std::size_t i = 3; i < x.argc(); ++i) {
		std::string_view o = x.arg(i);
		if (ieq(o, "nx"))
			nx = true;
		else if (ieq(o, "xx"))
			xx = true;
		else if (ieq(o, "gt"))
			gt = true;
		else if (ieq(o, "lt"))
			lt = true;
		else {
			resp::error(x.o, fmt::format("ERR Unsupported option {}", o.substr(0, 128)));
			return;
		}
	}
	if (nx && (xx || gt || lt)) {
		resp::error(x.o, "ERR NX and XX, GT or LT options at the same time are not compatible");
		return;
	}
	if (gt && lt) {
		resp::error(x.o, "ERR GT and LT options at the same time are not compatible");
		return;
	}
	const std::string cmd(x.cmd->name);
	if (seconds) {
		if (when > INT64_MAX / 1000 || when < INT64_MIN / 1000) {
			resp::error(x.o, fmt::format("ERR invalid expire time in '{}' command", cmd));
			return;
		}
		when *= 1000;
	}
	const auto base = static_cast<std::int64_t>(base_ms);
	if (when > INT64_MAX - base) {
		resp::error(x.o, fmt::format("ERR invalid expire time in '{}' command", cmd));
		return;
	}
	when += base;
	std::string buf;
	const std::string_view key = skey(x, x.arg(1), buf);
	ValueRef v{};
	if (lookup(key, v) != 1) {
		resp::integer(x.o, 0);
		return;
	}
	const std::uint64_t new_ns = expiry_ns_of_ms(when);
	const bool has = v.expiry_ns != 0;
	if ((nx && has) || (xx && !has) || (gt && (!has || new_ns <= v.expiry_ns)) ||
	    (lt && has && new_ns >= v.expiry_ns)) {
		resp::integer(x.o, 0);
		return;
	}
	if (when <= static_cast<std::int64_t>(now_ms())) {
		// a time in the past deletes the key
		const int rc = del_stored(key);
		if (rc < 0) {
			resp::error(x.o, fmt::format("ERR daxnet: delete failed ({})", std::strerror(-rc)));
			return;
		}
		++expired_keys_;
		propagate_as(x, {expire_del_name(), std::string(x.arg(1))});
		resp::integer(x.o, 1);
		return;
	}
	if (const auto why = put_slices(key, v.slices, new_ns, v.typed)) {
		resp_refusal(x.o, *why);
		return;
	}
	// replicas get the absolute time (no drift from their lag)
	propagate_as(x, {"PEXPIREAT", std::string(x.arg(1)), std::to_string(when)});
	resp::integer(x.o, 1);
}

void KvService::cmd_expire(Ctx& x)
{
	expire_generic(x, now_ms(), true);
}

void KvService::cmd_pexpire(Ctx& x)
{
	expire_generic(x, now_ms(), false);
}

void KvService::cmd_expireat(Ctx& x)
{
	expire_generic(x, 0, true);
}

void KvService::cmd_pexpireat(Ctx& x)
{
	expire_generic(x, 0, false);
}

void KvService::cmd_persist(Ctx& x)
{
	std::string buf;
	const std::string_view key = skey(x, x.arg(1), buf);
	ValueRef v{};
	if (lookup(key, v) != 1 || v.expiry_ns == 0) {
		resp::integer(x.o, 0);
		return;
	}
	if (const auto why = put_slices(key, v.slices, 0, v.typed)) {
		resp_refusal(x.o, *why);
		return;
	}
	resp::integer(x.o, 1);
}

void KvService::cmd_type(Ctx& x)
{
	std::string buf;
	ValueRef v{};
	if (kv_.get(skey(x, x.arg(1), buf), v) != 1)
		resp::simple(x.o, "none");
	else
		resp::simple(x.o, v.typed ? coll::type_name(vtype_of(v)) : "string");
}

void KvService::rename_impl(Ctx& x, bool nx)
{
	std::string b1;
	const std::string src(skey(x, x.arg(1), b1));
	const std::string dst = stored_in(phys(x.cl.db), x.arg(2));
	ValueRef v{};
	if (lookup(src, v) != 1) {
		resp::error(x.o, "ERR no such key");
		return;
	}
	if (x.arg(2).size() > cfg_.max_key) {
		resp::error(x.o, fmt::format("ERR daxnet: key too long ({} bytes, limit {})", x.arg(2).size(), cfg_.max_key));
		return;
	}
	if (src == dst) {
		if (nx)
			resp::integer(x.o, 0);
		else
			resp::ok(x.o);
		return;
	}
	if (nx && kv_.exists(dst)) {
		resp::integer(x.o, 0);
		return;
	}
	if (!move_stored(x, src, dst, v))
		return;
	if (nx)
		resp::integer(x.o, 1);
	else
		resp::ok(x.o);
}

bool KvService::move_stored(Ctx& x, std::string_view src, std::string_view dst, const ValueRef& v)
{
	// Copied first: v.slices points into the source's index entry.
	const std::vector<Slice> value(v.slices.begin(), v.slices.end());
	const std::uint64_t expiry = v.expiry_ns;
	const bool typed = v.typed;
	// Log room for both entries made now, so no checkpoint runs between
	// them (one would make the first durable on its own); they stage in
	// one atomic group and commit in one batch: after a crash the key is
	// under one of its names, never both or neither (issue 14).
	const std::uint64_t recs = daxnet::pmem::wal_records_for(value.size()) + 1;
	if (const int rc = kv_.admit(0, recs); rc < 0) {
		++refused_;
		resp_refusal(x.o, rc == -EMSGSIZE ? batch_too_large("the command", recs, false) : capacity_refusal());
		return false;
	}
	AtomicGroup grp(*this);
	// The delete first: the destination then takes the records the source
	// gave back, so a full pool still renames (RENAME and MOVE are not
	// denyoom in Redis). Inside the group no checkpoint runs, so the log
	// keeps the value's buffers referenced between the two.
	MaybeRefusal why;
	if (const int rc = del_stored(src); rc < 0) {
		++refused_;
		why = rc == -ENOSPC ? pool_full_refusal() : Refusal::from_store(rc, std::string(), "key", "delete");
	} else {
		why = put_slices(dst, value, expiry, typed);
	}
	const bool undo = why.has_value() || grp.refused();
	grp.end(undo);
	if (undo) {
		resp_refusal(x.o, why ? *why : capacity_refusal());
		return false;
	}
	return true;
}

void KvService::cmd_rename(Ctx& x)
{
	rename_impl(x, false);
}

void KvService::cmd_renamenx(Ctx& x)
{
	rename_impl(x, true);
}

void KvService::cmd_copy(Ctx& x)
{
	int db = x.cl.db;
	bool replace = false;
	for (std::size_t i = 3; i < x.argc(); ++i) {
		if (ieq(x.arg(i), "replace")) {
			replace = true;
		} else if (ieq(x.arg(i), "db") && i + 1 < x.argc()) {
			if (!parse_db(x.arg(++i), db, x.o))
				return;
		} else {
			resp::error(x.o, "ERR syntax error");
			return;
		}
	}
	std::string b1;
	const std::string src(skey(x, x.arg(1), b1));
	const std::string dst = stored_in(phys(db), x.arg(2));
	if (src == dst) {
		resp::error(x.o, "ERR source and destination objects are the same");
		return;
	}
	if (x.arg(2).size() > cfg_.max_key) {
		resp::error(x.o, fmt::format("ERR daxnet: key too long ({} bytes, limit {})", x.arg(2).size(), cfg_.max_key));
		return;
	}
	ValueRef v{};
	if (lookup(src, v) != 1 || (!replace && kv_.exists(dst))) {
		resp::integer(x.o, 0);
		return;
	}
	// The copy shares the source's value slices (no bytes copied, one
	// KV_SET): the store counts them once per key, in the cleaner's live
	// bytes and the live payload (docs/wal-format.md §The cleaner).
	if (const auto why = put_slices(dst, v.slices, v.expiry_ns, v.typed)) {
		resp_refusal(x.o, *why);
		return;
	}
	resp::integer(x.o, 1);
}

void KvService::cmd_move(Ctx& x)
{
	int db = 0;
	if (!parse_db(x.arg(2), db, x.o))
		return;
	if (db == x.cl.db) {
		resp::error(x.o, "ERR source and destination objects are the same");
		return;
	}
	std::string b1;
	const std::string src(skey(x, x.arg(1), b1));
	const std::string dst = stored_in(phys(db), x.arg(1));
	ValueRef v{};
	if (lookup(src, v) != 1 || kv_.exists(dst)) {
		resp::integer(x.o, 0);
		return;
	}
	if (!move_stored(x, src, dst, v))
		return;
	resp::integer(x.o, 1);
}

void KvService::cmd_swapdb(Ctx& x)
{
	int a = 0, b = 0;
	std::int64_t na = 0, nb = 0;
	if (!parse_i64(x.arg(1), na)) {
		resp::error(x.o, "ERR invalid first DB index");
		return;
	}
	if (!parse_i64(x.arg(2), nb)) {
		resp::error(x.o, "ERR invalid second DB index");
		return;
	}
	if (na < 0 || na >= kDatabases || nb < 0 || nb >= kDatabases) {
		resp::error(x.o, "ERR DB index is out of range");
		return;
	}
	a = static_cast<int>(na);
	b = static_cast<int>(nb);
	if (a == b) {
		resp::ok(x.o);
		return;
	}
	// Swaps the two entries of the database map and stores it: one record
	// (kv.h), however many keys either database holds.
	const int pa = phys(a), pb = phys(b);
	// watchers (as Redis): a watched key of either database that exists in
	// either database changes -- once the swap is staged (a refused one
	// changes nothing), through dirty(), so that a group taken back
	// (EXEC, a script) cleans them again
	std::vector<std::uint64_t> to_dirty;
	for (auto& [key, ids] : watched_) {
		const int d = db_of(key);
		if (d != pa && d != pb)
			continue;
		const std::string other = stored_in(d == pa ? pb : pa, user_key(key));
		if (kv_.exists(key) || kv_.exists(other))
			to_dirty.insert(to_dirty.end(), ids.begin(), ids.end());
	}
	std::swap(db_map_[a], db_map_[b]);
	if (const auto why = put_bytes(kDbMapKey, std::string_view(reinterpret_cast<const char*>(db_map_), kDatabases),
				      0)) {
		std::swap(db_map_[a], db_map_[b]);
		resp_refusal(x.o, *why);
		return;
	}
	for (std::uint64_t id : to_dirty)
		if (auto c = clients_.find(id); c != clients_.end())
			dirty(*c->second);
	db_unmap_[pa] = static_cast<std::uint8_t>(b);
	db_unmap_[pb] = static_cast<std::uint8_t>(a);
	multi_db_ = true;
	// a watch is on a key of a database as SELECTed: follow it to its new
	// physical database
	std::unordered_map<std::string, std::vector<std::uint64_t>> moved;
	for (auto it = watched_.begin(); it != watched_.end();) {
		const int d = db_of(it->first);
		if (d != pa && d != pb) {
			++it;
			continue;
		}
		moved.emplace(stored_in(d == pa ? pb : pa, user_key(it->first)), std::move(it->second));
		it = watched_.erase(it);
	}
	for (auto& [key, ids] : moved)
		watched_[key] = std::move(ids);
	for (auto& [id, cl] : clients_)
		for (Client::Watch& w : cl->watched) {
			const int d = db_of(w.key);
			if (d == pa || d == pb)
				w.key = stored_in(d == pa ? pb : pa, user_key(w.key));
		}
	resp::ok(x.o);
}

void KvService::cmd_keys(Ctx& x)
{
	const std::string_view pat = x.arg(1);
	const std::uint64_t now = daxnet::pmem::realtime_ns();
	const int db = phys(x.cl.db);
	std::vector<std::string_view> out;
	kv_.for_each([&](std::string_view k, const ValueRef& v) {
		if (v.expiry_ns != 0 && v.expiry_ns <= now)
			return;
		if (KvService::db_of(k) != db)
			return;
		const std::string_view uk = user_key(k);
		if (pat == "*" || glob_match(pat, uk))
			out.push_back(uk);
	});
	resp::array(x.o, out.size());
	for (std::string_view k : out)
		resp::bulk(x.o, k);
}

void KvService::cmd_scan(Ctx& x)
{
	std::uint64_t cursor = 0;
	if (!arg_cursor(x, 1, cursor))
		return;
	std::string_view pat;
	std::int64_t count = 10;
	bool type_filter = false;
	std::uint8_t type_want = 0xff;  // 0 string, coll::kList/kSet/kHash; 0xff: a type never stored
	for (std::size_t i = 2; i < x.argc(); ++i) {
		if (ieq(x.arg(i), "match") && i + 1 < x.argc()) {
			pat = x.arg(++i);
		} else if (ieq(x.arg(i), "count") && i + 1 < x.argc()) {
			if (!parse_i64(x.arg(++i), count)) {
				resp::error(x.o, "ERR value is not an integer or out of range");
				return;
			}
			if (count < 1) {
				resp::error(x.o, "ERR syntax error");
				return;
			}
		} else if (ieq(x.arg(i), "type") && i + 1 < x.argc()) {
			type_filter = true;
			const std::string_view t = x.arg(++i);
			type_want = ieq(t, "string") ? 0 : ieq(t, "list") ? coll::kList : ieq(t, "set") ? coll::kSet : ieq(t, "hash") ? coll::kHash : 0xff;
		} else {
			resp::error(x.o, "ERR syntax error");
			return;
		}
	}
	// The cursor is the next index bucket (low 32 bits) and the bucket
	// count when it was issued (high 32 bits). Without a rehash a key never
	// changes bucket, so a key present for the whole scan is returned at
	// least once; after a rehash the walk starts again from bucket 0
	// (duplicates, as Redis allows). The index only grows, so a scan ends.
	// Each call looks at no more than 10 x COUNT buckets (Redis's bound),
	// whatever the size of the keyspace.
	const int db = phys(x.cl.db);
	const std::uint64_t nb = kv_.index_buckets() & 0xffffffffu;
	std::size_t bucket = 0;
	if (cursor != 0 && (cursor >> 32) == nb)
		bucket = static_cast<std::size_t>(cursor & 0xffffffffu);
	const std::size_t want = static_cast<std::size_t>(std::min<std::int64_t>(count, 1 << 20));
	std::vector<std::string_view> out;
	const std::function<void(std::string_view, const ValueRef&)> take = [&](std::string_view k, const ValueRef& v) {
		if (db_of(k) != db)
			return;
		const std::string_view uk = user_key(k);
		if (!pat.empty() && !glob_match(pat, uk))
			return;
		if (type_filter && vtype_of(v) != type_want)
			return;
		out.push_back(uk);
	};
	std::size_t looked = 0;
	do {
		bucket = kv_.visit_buckets(bucket, 1, take);
	} while (bucket != 0 && out.size() < want && ++looked < want * 10);
	const std::uint64_t next = bucket == 0 ? 0 : (nb << 32) | bucket;
	// expired keys are dropped (and not returned) as in Redis
	std::vector<std::string> keep;
	for (std::string_view k : out) {
		if (kv_.exists(stored_in(db, k)))
			keep.emplace_back(k);
	}
	resp::array(x.o, 2);
	resp::bulk(x.o, std::to_string(next));
	resp::array(x.o, keep.size());
	for (const std::string& k : keep)
		resp::bulk(x.o, k);
}

void KvService::cmd_randomkey(Ctx& x)
{
	// A random bucket of the index, then a random key of this database in
	// it: O(1) expected, as Redis's. Expired keys met on the way are
	// dropped (as Redis does). Only when 64 samples found nothing (the
	// database is a small share of the index, or mostly expired) is the
	// whole index walked.
	const std::uint64_t now = daxnet::pmem::realtime_ns();
	const int db = phys(x.cl.db);
	if (!multi_db_ && db != 0) {
		reply_null(x);  // no key was ever stored outside physical database 0
		return;
	}
	std::string pick;
	std::vector<std::string> expired;
	std::uint64_t seen = 0;
	auto visit = [&](std::string_view k, const ValueRef& v) {
		if (db_of(k) != db)
			return;
		if (v.expiry_ns != 0 && v.expiry_ns <= now) {
			if (expired.size() < 64)
				expired.emplace_back(k);
			return;
		}
		if (coll::rng()() % ++seen == 0)
			pick.assign(k);
	};
	for (int i = 0; i < 64 && seen == 0 && kv_.dbsize() != 0; ++i)
		kv_.visit_random_bucket(coll::rng()(), 64, visit);
	if (seen == 0)
		kv_.for_each(visit);
	for (const std::string& k : expired)
		(void)kv_.exists(k);  // drops it (and tells replicas)
	if (seen == 0) {
		reply_null(x);
		return;
	}
	resp::bulk(x.o, user_key(pick));
}

void KvService::cmd_object(Ctx& x)
{
	const std::string_view sub = x.arg(1);
	if (ieq(sub, "help")) {
		resp::array(x.o, 5);
		resp::simple(x.o, "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:");
		resp::simple(x.o, "ENCODING <key>");
		resp::simple(x.o, "FREQ <key>");
		resp::simple(x.o, "IDLETIME <key>");
		resp::simple(x.o, "REFCOUNT <key>");
		return;
	}
	if (x.argc() != 3) {
		resp::error(x.o, fmt::format("ERR unknown subcommand or wrong number of arguments for '{}'. Try OBJECT HELP.",
					     sub.substr(0, 128)));
		return;
	}
	std::string buf;
	ValueRef v{};
	if (lookup(skey(x, x.arg(2), buf), v) != 1) {
		reply_null(x);
		return;
	}
	if (ieq(sub, "encoding") && v.typed) {
		std::uint8_t t = 0;
		std::vector<std::string> items;
		bool ht = false;
		if (!coll::decode(value_bytes(pool_, v), t, items, &ht))
			resp::error(x.o, "ERR daxnet: malformed collection value");
		else
			resp::bulk(x.o, coll_encoding(t, items, ht));
	} else if (ieq(sub, "encoding")) {
		std::int64_t n = 0;
		const std::string val = v.size <= 20 ? value_bytes(pool_, v) : std::string();
		if (v.size <= 20 && parse_i64(val, n))
			resp::bulk(x.o, "int");
		else if (v.size <= 44)
			resp::bulk(x.o, "embstr");
		else
			resp::bulk(x.o, "raw");
	} else if (ieq(sub, "refcount")) {
		resp::integer(x.o, 1);
	} else if (ieq(sub, "idletime")) {
		resp::integer(x.o, 0);
	} else if (ieq(sub, "freq")) {
		resp::error(x.o, "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note "
				 "that when switching between policies at runtime LRU and LFU data will take some time to "
				 "adjust.");
	} else {
		resp::error(x.o, fmt::format("ERR unknown subcommand or wrong number of arguments for '{}'. Try OBJECT HELP.",
					     sub.substr(0, 128)));
	}
}

}  // namespace daxnet::kv
