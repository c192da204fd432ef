// SPDX-License-Identifier: BSD-2-Clause
//
// daxnet-kv's store helpers: refusals, admission of multi-key writes, key
// and value slices (in place, packed or copied into the arena), staging
// writes and deletes into the pass's batch, WATCH bookkeeping, the database
// map, expiry and per-database walks.
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "daxnet/svc/fatal.h"
#include "kv.h"

namespace daxnet::kv {

namespace resp = daxnet::proto::resp;

// Redis's wording for a write refused at maxmemory, with what is full.
Refusal KvService::pool_full_refusal() const
{
	++space_refusals_;
	return {Refusal::Code::full,
		fmt::format("command not allowed when used memory > 'maxmemory' (daxnet: pool full, {} of {} buffers free, "
			    "{} reserved; reads still served)",
			    alloc_.free_count(), alloc_.count(), core_.reserve())};
}

Refusal KvService::capacity_refusal() const
{
	++space_refusals_;
	return {Refusal::Code::full,
		fmt::format("command not allowed when used memory > 'maxmemory' (daxnet: pool full, {} of {} checkpoint "
			    "records live, {} log records used of {}; DEL, FLUSHALL and reads still served)",
			    kv_.live_records(), kv_.record_limit(), kv_.wal().used(), kv_.wal().nslots())};
}

Refusal KvService::batch_too_large(std::string_view what, std::uint64_t records, bool frees) const
{
	const std::uint64_t limit = frees ? kv_.wal().nslots() : kv_.batch_log_limit();
	if (records == 0)  // known only as it ran
		return {Refusal::Code::too_large,
			fmt::format("daxnet: {} needs more log records than one batch of this pool's log takes ({}): "
				    "split it",
				    what, limit)};
	return {Refusal::Code::too_large,
		fmt::format("daxnet: {} needs up to {} log records, more than one batch of this pool's log takes ({}): "
			    "split it",
			    what, records, limit)};
}

bool KvService::admit_batch(Ctx& x, std::size_t first)
{
	// Packed pairs and keys that must be copied go into arena buffers as
	// they are staged: refuse up front when those might not be there, so
	// staging cannot fail half way. (An arena buffer fills at least half
	// way; a key split between received slices is copied too, at most
	// one per slice.)
	const std::uint32_t bsize = pool_.buffer_size();
	std::uint64_t recs = 0, copied = 0;
	for (std::size_t i = first + 1; i < x.argc(); i += 2) {
		const std::uint64_t len = x.arg(i).size();
		const bool packed = len != 0 && len <= cfg_.pack_small;
		recs += daxnet::pmem::wal_records_for(packed ? 1 : len / bsize + 2);
		copied += x.arg(i - 1).size() + (packed ? len : 0);
	}
	if (2 * copied / bsize + x.c.chain.size() + 2 > alloc_.free_count()) {
		refuse_pool_full(x);
		return false;
	}
	// Every key counted as new; log room for all entries made now, so no
	// checkpoint runs between them and they commit as one batch.
	if (const int rc = kv_.admit(recs, recs); rc < 0) {
		++refused_;
		// more than one batch takes (-EMSGSIZE): refused for good, its own
		// error; otherwise the pool is full
		resp_refusal(x.o, rc == -EMSGSIZE ? batch_too_large("the command", recs, false) : capacity_refusal());
		return false;
	}
	return true;
}

KvService::Atomic KvService::begin_atomic()
{
	Atomic a;
	a.mark = kv_.batch_begin();
	a.prop = prop_.size();
	a.writes = writes_;
	a.space_refusals = space_refusals_;
	a.store_refused = kv_.batch_refused();
	a.pubs = pubs_.size();
	a.touched = touched_.size();
	a.config = config_undo_.size();
	if (a.mark.undo == 0)
		flushed_in_atomic_ = false;
	return a;
}

bool KvService::atomic_refused(const Atomic& a) const noexcept
{
	return space_refusals_ != a.space_refusals || (kv_.batch_refused() && !a.store_refused);
}

void KvService::end_atomic(const Atomic& a, bool undo) noexcept
{
	const bool flushed = flushed_in_atomic_;
	if (undo) {
		++atomic_undos_;
		// The group was refused (its reply says none of it applied) but,
		// if it stays staged, committing would make half a group durable.
		// Never reached by the commands (they stage no stream trim, and
		// nothing commits in a batch).
		if (const int rc = kv_.batch_undo(a.mark); rc < 0)
			daxnet::svc::stop_on_failed_undo("daxnet-kv", "a refused write group", rc);
		if (prop_.size() > a.prop)
			prop_.erase(prop_.begin() + static_cast<std::ptrdiff_t>(a.prop), prop_.end());
		writes_ = a.writes;
		// Its side effects too: nothing published, WATCHers it dirtied
		// clean again, CONFIG SETs set back (newest first).
		pubs_.resize(std::min(pubs_.size(), a.pubs));
		pubs_bytes_ = 0;
		for (const PendingPub& p : pubs_)
			pubs_bytes_ += p.channel.size() + p.message.size();
		for (std::size_t i = a.touched; i < touched_.size(); ++i)
			if (auto c = clients_.find(touched_[i]); c != clients_.end())
				c->second->dirty_cas = false;
		touched_.resize(std::min(touched_.size(), a.touched));
		try {
			while (config_undo_.size() > a.config) {
				config_apply(config_undo_.back().first, config_undo_.back().second);
				config_undo_.pop_back();
			}
		} catch (const std::exception& e) {
			std::fprintf(stderr, "daxnet-kv: setting back a refused group's CONFIG SET: %s\n", e.what());
		}
	}
	kv_.batch_end();
	if (!kv_.in_batch()) {
		flushed_in_atomic_ = false;
		touched_.clear();
		config_undo_.clear();
		if (!pubs_.empty()) {
			// The outermost group stands: its messages go out now.
			std::vector<PendingPub> pubs;
			pubs.swap(pubs_);
			pubs_bytes_ = 0;
			try {
				for (const PendingPub& p : pubs)
					(void)deliver(p.channel, p.message, true);
			} catch (const std::exception& e) {
				std::fprintf(stderr, "daxnet-kv: delivering a group's PUBLISH: %s\n", e.what());
			}
		}
	}
	if (!undo)
		return;
	// The side state of what was taken back, as the store holds it again:
	// the database map (a SWAPDB or FLUSHALL of the group changed it) and,
	// after a flush, the expiry queue.
	try {
		load_db_map();
		if (flushed) {
			expq_.clear();
			kv_.for_each([&](std::string_view k, const ValueRef& v) {
				if (db_of(k) != 0 || (k.size() >= 2 && k[0] == '\xff' && k[1] == '\xfe'))
					multi_db_ = true;
				if (v.expiry_ns)
					expq_.emplace(v.expiry_ns, std::string(k));
			});
		}
	} catch (const std::exception& e) {
		// Only allocation can fail here; keys missing from the expiry
		// queue still expire when read (lazy expiry).
		std::fprintf(stderr, "daxnet-kv: rebuilding state after a refused batch: %s\n", e.what());
	}
}

void KvService::refuse_pool_full(Ctx& x)
{
	++refused_;
	resp_refusal(x.o, pool_full_refusal());
}

std::string_view KvService::skey(const Ctx& x, std::string_view key, std::string& buf) const
{
	const int p = phys(x.cl.db);
	if (p == 0 && (key.size() < 2 || key[0] != '\xff' || key[1] != '\xfe'))
		return key;
	buf.assign("\xff\xfe");
	buf.push_back(static_cast<char>(p));
	buf.append(key);
	return buf;
}

int KvService::bytes_slice(std::string_view bytes, Slice& out)
{
	if (bytes.empty()) {
		out = Slice{};
		return 0;
	}
	return arena_.write(std::as_bytes(std::span<const char>(bytes.data(), bytes.size())), out);
}

int KvService::key_slice(Ctx& x, std::size_t i, Slice& out)
{
	std::string_view key = x.arg(i);
	std::string_view sk = skey(x, key, keybuf_);
	if (sk.data() == key.data() && x.ranges) {
		const StreamRange r = x.ranges[i];
		if (r.len == 0) {
			out = Slice{};
			return 0;
		}
		std::uint32_t buf = 0, off = 0;
		if (daxnet::svc::single_slice(x.c.chain, r, buf, off)) {
			out = Slice{buf, off, static_cast<std::uint32_t>(r.len)};
			return 0;
		}
	}
	return bytes_slice(sk, out);
}

void KvService::value_slices(Conn& c, StreamRange r)
{
	values_.clear();
	c.chain.pieces(r, [&](const daxnet::proto::Piece& p) { values_.push_back(Slice{p.buf(), p.buf_off(), p.len}); });
}

int KvService::kv_slices(Conn& c, StreamRange key, StreamRange value, Slice& k)
{
	if (value.len > cfg_.pack_small || value.len == 0) {
		// zero-copy: key and value stay in the received buffers
		std::uint32_t buf = 0, off = 0;
		if (key.len == 0) {
			k = Slice{};
		} else if (daxnet::svc::single_slice(c.chain, key, buf, off)) {
			k = Slice{buf, off, static_cast<std::uint32_t>(key.len)};
		} else {
			std::vector<char> tmp;
			if (bytes_slice(c.chain.view(key, tmp), k) < 0)
				return -ENOSPC;
		}
		value_slices(c, value);
		return 0;
	}
	// A small value would pin a whole received buffer: copy key and value
	// once into a packed pool buffer instead (counted in daxnet_packed_bytes).
	std::string_view kv = c.view(key, 62), vv = c.view(value, 63);
	Slice v;
	if (bytes_slice(kv, k) < 0 || bytes_slice(vv, v) < 0)
		return -ENOSPC;
	values_.assign(1, v);
	packed_ += key.len + value.len;
	return 0;
}

int KvService::set_value_bytes(std::string_view bytes)
{
	values_.clear();
	release_held();
	const std::size_t chunk = pool_.buffer_size();
	if (bytes.size() <= chunk) {
		Slice v;
		if (bytes_slice(bytes, v) < 0)
			return -ENOSPC;
		if (v.len)
			values_.push_back(v);
		return 0;
	}
	// Larger than a buffer: whole buffers of its own, held until the
	// write is staged (release_held()). The arena keeps a hold on its
	// current buffer only, so a value it spread over several would have
	// lost its first buffers before the log took them.
	for (std::size_t at = 0; at < bytes.size(); at += chunk) {
		const std::int64_t b = alloc_.alloc();
		if (b < 0) {
			values_.clear();
			release_held();
			return -ENOSPC;
		}
		held_.push_back(static_cast<std::uint32_t>(b));
		const std::string_view part = bytes.substr(at, chunk);
		std::memcpy(pool_.buffer(static_cast<std::uint32_t>(b)), part.data(), part.size());
		values_.push_back(Slice{static_cast<std::uint32_t>(b), 0, static_cast<std::uint32_t>(part.size())});
	}
	return 0;
}

void KvService::release_held() noexcept
{
	for (std::uint32_t b : held_)
		alloc_.unref(b);
	held_.clear();
}

int KvService::arg_kv_slices(Ctx& x, std::size_t i, std::size_t j, Slice& k)
{
	std::string_view key = x.arg(i);
	if (x.ranges && skey(x, key, keybuf_).data() == key.data())
		return kv_slices(x.c, x.ranges[i], x.ranges[j], k);
	if (bytes_slice(skey(x, key, keybuf_), k) < 0)
		return -ENOSPC;
	if (x.ranges && (x.ranges[j].len > cfg_.pack_small || x.ranges[j].len == 0)) {
		value_slices(x.c, x.ranges[j]);
		return 0;
	}
	packed_ += key.size() + x.arg(j).size();
	return set_value_bytes(x.arg(j));
}

MaybeRefusal KvService::stage_set(const Slice& key, std::uint64_t expiry, bool typed)
{
	// The store admits against checkpoint capacity and log room itself
	// (docs/wal-format.md §Capacity); a refusal costs no checkpoint.
	const int rc = kv_.set(key, values_, expiry, typed);
	if (rc == 0) {
		core_.staged();
		++writes_;
		const std::string_view k = key.len ? std::string_view(reinterpret_cast<const char*>(pool_.buffer(key.buf)) + key.off, key.len) : std::string_view();
		if (expiry)
			note_expiry(k, expiry);
		if (!watched_.empty())
			touch(k);
		if (!multi_db_ && k.size() >= 2 && k[0] == '\xff' && k[1] == '\xfe')
			multi_db_ = true;
		return std::nullopt;
	}
	++refused_;
	return Refusal::from_store(rc, rc == -ENOSPC ? capacity_refusal().message : std::string(), "value", "write");
}

MaybeRefusal KvService::checkpoint_now()
{
	if (in_exec_) {
		// A checkpoint makes everything staged durable: inside EXEC it
		// would make the writes queued before it durable without those
		// after (a crash then keeps half the transaction). It runs when
		// the EXEC has staged all of its writes (cmd_exec), as Redis
		// schedules a BGSAVE issued inside a transaction.
		checkpoint_after_exec_ = true;
		return std::nullopt;
	}
	const int rc = kv_.checkpoint();
	if (rc < 0)
		return Refusal{Refusal::Code::failed, fmt::format("daxnet: checkpoint failed ({})", std::strerror(-rc))};
	return std::nullopt;
}

int KvService::stage_del(const Slice& key)
{
	const int rc = kv_.del(key);  // may use the log room kept for frees
	if (rc > 0) {
		core_.staged();
		++writes_;
		if (!watched_.empty())
			touch(std::string_view(reinterpret_cast<const char*>(pool_.buffer(key.buf)) + key.off, key.len));
	}
	return rc;
}

int KvService::lookup(std::string_view stored, ValueRef& v) noexcept
{
	const int rc = kv_.get(stored, v);
	if (rc == 1)
		++hits_;
	else
		++misses_;
	return rc;
}

std::string KvService::value_bytes(const daxnet::pmem::PoolView& pool, const ValueRef& v)
{
	std::string out;
	out.reserve(v.size);
	for (const Slice& s : v.slices) {
		auto b = daxnet::pmem::slice_bytes(pool, s);
		out.append(reinterpret_cast<const char*>(b.data()), b.size());
	}
	return out;
}

MaybeRefusal KvService::put_bytes(std::string_view stored, std::string_view bytes, std::uint64_t expiry, bool typed)
{
	Slice k;
	if (bytes_slice(stored, k) < 0 || set_value_bytes(bytes) < 0) {
		++refused_;
		release_held();
		return pool_full_refusal();
	}
	auto why = stage_set(k, expiry, typed);
	release_held();  // the log holds what it staged
	return why;
}

MaybeRefusal KvService::put_slices(std::string_view stored, std::span<const Slice> value, std::uint64_t expiry,
				   bool typed)
{
	// copy first: `value` may point into the index entry being replaced
	std::vector<Slice> v(value.begin(), value.end());
	Slice k;
	if (bytes_slice(stored, k) < 0) {
		++refused_;
		return pool_full_refusal();
	}
	values_ = std::move(v);
	return stage_set(k, expiry, typed);
}

int KvService::del_stored(std::string_view stored)
{
	if (!kv_.exists(stored))
		return 0;
	Slice k;
	if (bytes_slice(stored, k) < 0)
		return -ENOSPC;
	return stage_del(k);
}

int KvService::flush_all_stored()
{
	const int rc = kv_.flushall();  // may use the log room kept for frees
	if (rc == 0) {
		if (kv_.in_batch())
			flushed_in_atomic_ = true;
		core_.staged();
		++writes_;
		multi_db_ = false;
		expq_.clear();
		set_db_map_identity();  // the map's key went with the rest
	}
	return rc;
}

void KvService::touch(std::string_view stored)
{
	auto it = watched_.find(std::string(stored));
	if (it == watched_.end())
		return;
	for (std::uint64_t id : it->second)
		if (auto c = clients_.find(id); c != clients_.end())
			dirty(*c->second);
}

void KvService::dirty(Client& cl)
{
	if (cl.dirty_cas)
		return;
	if (kv_.in_batch())
		touched_.push_back(cl.id);  // clean again if the group is refused
	cl.dirty_cas = true;
}

void KvService::set_db_map_identity() noexcept
{
	for (int i = 0; i < kDatabases; ++i)
		db_map_[i] = db_unmap_[i] = static_cast<std::uint8_t>(i);
}

void KvService::load_db_map()
{
	set_db_map_identity();
	ValueRef v{};
	if (kv_.get(kDbMapKey, v) != 1 || v.size != kDatabases)
		return;
	const std::string m = value_bytes(pool_, v);
	bool seen[kDatabases] = {};
	for (char ch : m) {
		const auto p = static_cast<unsigned char>(ch);
		if (p >= kDatabases || seen[p]) {
			fmt::print(stderr, "daxnet-kv: malformed database map ignored (identity used)\n");
			return;
		}
		seen[p] = true;
	}
	for (int i = 0; i < kDatabases; ++i) {
		db_map_[i] = static_cast<std::uint8_t>(m[static_cast<std::size_t>(i)]);
		db_unmap_[db_map_[i]] = static_cast<std::uint8_t>(i);
	}
}

void KvService::touch_db(int db)
{
	const int p = db >= 0 ? phys(db) : -1;
	for (auto& [key, ids] : watched_) {
		if (p >= 0 && db_of(key) != p)
			continue;
		if (!kv_.exists(key))
			continue;
		for (std::uint64_t id : ids)
			if (auto c = clients_.find(id); c != clients_.end())
				dirty(*c->second);
	}
}

void KvService::unwatch_all(Client& cl)
{
	for (const Client::Watch& w : cl.watched) {
		auto it = watched_.find(w.key);
		if (it == watched_.end())
			continue;
		std::erase(it->second, cl.id);
		if (it->second.empty())
			watched_.erase(it);
	}
	cl.watched.clear();
}

void KvService::note_expiry(std::string_view stored, std::uint64_t expiry_ns)
{
	expq_.emplace(expiry_ns, std::string(stored));
}

void KvService::active_expire()
{
	const std::uint64_t now = daxnet::pmem::realtime_ns();
	if (now - last_cycle_ns_ < 100000000ull || expq_.begin()->first > now)
		return;
	last_cycle_ns_ = now;
	// Redis expires keys actively, in bounded steps: at most 2000 per cycle
	for (int n = 0; n < 2000 && !expq_.empty() && expq_.begin()->first <= now; ++n) {
		auto it = expq_.begin();
		const std::string key = std::move(it->second);
		expq_.erase(it);
		ValueRef v{};
		// the entry may be stale (key since re-set or deleted); a get of an
		// expired key drops it from the index
		if (kv_.get(key, v) == 0)
			++expired_keys_;
	}
}

void KvService::keys_of_db(int db, std::vector<std::string>& out)
{
	db = phys(db);
	const std::uint64_t now = daxnet::pmem::realtime_ns();
	kv_.for_each([&](std::string_view k, const ValueRef& v) {
		if (v.expiry_ns != 0 && v.expiry_ns <= now)
			return;
		if (db_of(k) == db)
			out.emplace_back(k);
	});
}

std::uint64_t KvService::dbsize_of(int db)
{
	db = phys(db);
	if (!multi_db_)
		return db == 0 ? kv_.dbsize() : 0;
	std::uint64_t n = 0;
	kv_.for_each([&](std::string_view k, const ValueRef&) {
		if (db_of(k) == db)
			++n;
	});
	return n;
}

std::uint64_t KvService::expiry_ns_of_ms(std::int64_t ms) const noexcept
{
	if (ms <= 0)
		return 1;  // in the past (0 would mean "no expiry")
	if (static_cast<std::uint64_t>(ms) > UINT64_MAX / 1000000)
		return UINT64_MAX;  // beyond year 2554: clamped
	return static_cast<std::uint64_t>(ms) * 1000000ull;
}

bool KvService::key_fits(Ctx& x, std::size_t i)
{
	if (x.arg(i).size() <= cfg_.max_key)
		return true;
	resp::error(x.o, fmt::format("ERR daxnet: key too long ({} bytes, limit {})", x.arg(i).size(), cfg_.max_key));
	return false;
}

}  // namespace daxnet::kv
