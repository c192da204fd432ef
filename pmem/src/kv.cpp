// SPDX-License-Identifier: BSD-2-Clause
//
// DRAM index over the WAL: keys and stream names are string_views into the
// pool buffers that hold them (docs/wal-format.md §Entries), values are
// slice lists. Rebuilt at open by replaying the checkpoint and the log.
#include "daxnet/pmem/kv.h"

#include <algorithm>
#include <ctime>
#include <new>

#include "daxnet/pmem/crc32c.h"
#include "cleaner_state.h"

namespace daxnet::pmem {

std::uint64_t realtime_ns() noexcept
{
	timespec ts{};
	clock_gettime(CLOCK_REALTIME, &ts);
	return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

namespace {

template <class T>
void assign_slices(T& dst, std::span<const Slice> v, std::span<const std::uint32_t> crc)
{
	dst.nslices = static_cast<std::uint32_t>(v.size());
	dst.size = 0;
	for (const auto& s : v)
		dst.size += s.len;
	if (v.size() == 1) {
		dst.first = v[0];
		dst.first_crc = crc[0];
		dst.many.clear();
		dst.many_crc.clear();
	} else {
		dst.first = Slice{};
		dst.many.assign(v.begin(), v.end());
		dst.many_crc.assign(crc.begin(), crc.end());
	}
}

/// The logged CRCs of a value stored by assign_slices.
template <class T>
std::span<const std::uint32_t> value_crcs(const T& it) noexcept
{
	if (it.nslices == 1)
		return std::span<const std::uint32_t>(&it.first_crc, 1);
	return std::span<const std::uint32_t>(it.many_crc);
}

template <class T>
ValueRef value_ref(const T& it, std::uint64_t expiry) noexcept
{
	ValueRef r;
	r.size = it.size;
	r.expiry_ns = expiry;
	if (it.nslices == 1)
		r.slices = std::span<const Slice>(&it.first, 1);
	else if (it.nslices > 1)
		r.slices = std::span<const Slice>(it.many);
	return r;
}

}  // namespace

ValueRef KvStore::Item::ref() const noexcept
{
	ValueRef r = value_ref(*this, expiry);
	r.typed = typed;
	return r;
}

KvStore::KvStore(const KvOptions& opt) noexcept : opt_(opt) {}

KvStore::~KvStore()
{
	clean_release_dest();
}

std::string_view KvStore::view(const Slice& s) const noexcept
{
	if (s.len == 0)
		return {};
	return {reinterpret_cast<const char*>(wal_.pool().buffer(s.buf) + s.off), s.len};
}

Result<std::unique_ptr<KvStore>> KvStore::open(const PoolView& pool, BufferAllocator& alloc, const KvOptions& opt,
					       RecoveryReport* report)
{
	std::unique_ptr<KvStore> kv(new KvStore(opt));
	kv->wal_.pool_ = pool;  // view() works during replay
	kv->live_bytes_.assign(pool.buffer_count(), 0);
	kv->pinned_bytes_.assign(pool.buffer_count(), 0);
	kv->buf_items_.resize(pool.buffer_count());
	kv->move_limit_ = opt.cleaner.move_limit ? opt.cleaner.move_limit : pool.buffer_size() / 2;
	kv->index_.reserve(ckpt_entries_hint(pool));
	auto w = Wal::open(pool, alloc, opt.wal, [&kv](const Entry& e, std::uint64_t) { kv->apply(e); }, report);
	if (!w)
		return w.error();
	kv->wal_ = std::move(*w);
	// §Capacity: the log room kept for freeing entries; at most N / 4 (an
	// entry may use that much).
	const std::uint64_t n = kv->wal_.nslots();
	kv->log_reserve_ = opt.log_reserve ? std::min<std::uint64_t>(opt.log_reserve, n / 4)
					   : std::max<std::uint64_t>(8, n / 16);
	// Lazy expiry at recovery: drop what expired while we were down.
	const std::uint64_t now = opt.clock();
	KvStore* self = kv.get();
	std::erase_if(kv->index_, [now, self](const auto& kvp) {
		const bool gone = kvp.second.expiry && kvp.second.expiry <= now;
		if (gone)
			self->forget_item(kvp.second);
		return gone;
	});
	return kv;
}

// §Entries: how each record type changes the index. Used by replay and by the
// mutating calls after their append succeeded.
void KvStore::apply(const Entry& e)
{
	if (!e.crc_known) {
		// Only the log and recovery apply entries, and both know the
		// CRCs; compute them for any other caller.
		Entry c = e;
		crc_scratch_.clear();
		for (const Slice& s : e.value)
			crc_scratch_.push_back(crc32c(wal_.pool().buffer(s.buf) + s.off, s.len));
		c.crc_known = true;
		c.key_crc = e.key.len ? crc32c(wal_.pool().buffer(e.key.buf) + e.key.off, e.key.len) : 0;
		c.value_crc = crc_scratch_;
		apply(c);
		return;
	}
	switch (e.type) {
	case RecordType::kv_set:
	case RecordType::kv_set_typed: {
		// Everything that allocates comes first (the new slice lists,
		// the index node): a failure (bad_alloc) leaves the index and
		// its counts as they were, the old value in place.
		Item fresh;
		assign_slices(fresh, e.value, e.value_crc);
		if (movable(fresh.size))
			make_link_room(e.key, e.value);
		const std::string_view k = view(e.key);
		auto it = index_.find(k);
		if (it == index_.end()) {
			it = index_.emplace(k, Item{}).first;
		} else {
			forget_item(it->second);  // §Capacity: the old value's records
		}
		if (k.data() != it->first.data()) {
			// Re-key onto the newest key slice, so the old buffer can be
			// released by the next checkpoint (the map keeps its size:
			// no rehash, nothing allocated).
			auto nh = index_.extract(it);
			nh.key() = k;
			it = index_.insert(std::move(nh)).position;
		}
		Item& item = it->second;
		key_records_ += wal_records_for(e.value.size());
		item.key = e.key;
		item.key_crc = e.key_crc;
		item.expiry = e.aux;
		item.typed = e.type == RecordType::kv_set_typed;
		item.size = fresh.size;
		item.nslices = fresh.nslices;
		item.first = fresh.first;
		item.first_crc = fresh.first_crc;
		item.many.swap(fresh.many);
		item.many_crc.swap(fresh.many_crc);
		account(item.key, item.ref().slices, item.size, 1, movable(item.size));
		if (movable(item.size))
			link(item, true);
		break;
	}
	case RecordType::kv_del:
		if (auto it = index_.find(view(e.key)); it != index_.end()) {
			forget_item(it->second);
			index_.erase(it);
		}
		break;
	case RecordType::kv_flushall:
		for (const auto& kvp : index_)
			forget_item(kvp.second, false);
		for (auto& l : buf_items_)
			l.clear();
		index_.clear();
		key_records_ = 0;
		break;
	case RecordType::stream_append: {
		// Allocations first, as for kv_set: a failure changes nothing.
		StreamEntry se;
		se.stamp = e.aux;
		assign_slices(se, e.value, e.value_crc);
		const std::string_view n = view(e.key);
		auto it = streams_.find(n);
		const bool created = it == streams_.end();
		if (created)
			it = streams_.emplace(n, Stream{}).first;
		Stream& st = it->second;
		try {
			st.entries.push_back(std::move(se));
		} catch (...) {
			if (created)
				streams_.erase(it);  // a stream no pending checkpoint knows
			throw;
		}
		if (created)
			stream_created(st, e.key, e.key_crc);
		const StreamEntry& x = st.entries.back();
		account(Slice{}, value_ref(x, 0).slices, x.size, 1, false);
		stream_records_ += wal_records_for(e.value.size());
		break;
	}
	case RecordType::stream_trim: {
		// §Record, streams: first <- max(first, t); end <- max(end, t).
		Stream& st = stream_for(e.key, e.key_crc);
		while (st.first < e.aux && !st.entries.empty()) {
			const StreamEntry& x = st.entries.front();
			stream_records_ -= wal_records_for(x.nslices);
			account(Slice{}, value_ref(x, 0).slices, x.size, -1, false);
			st.entries.pop_front();
			st.first++;
			trimmed_since_ckpt_++;
		}
		st.first = std::max(st.first, e.aux);
		break;
	}
	case RecordType::cont:
		break;
	}
}

KvStore::Stream& KvStore::stream_for(const Slice& name, std::uint32_t name_crc)
{
	const std::string_view n = view(name);
	auto it = streams_.find(n);
	if (it == streams_.end()) {
		it = streams_.emplace(n, Stream{}).first;  // keyed by the bytes of its first name slice
		stream_created(it->second, name, name_crc);
	}
	return it->second;
}

void KvStore::stream_created(Stream& st, const Slice& name, std::uint32_t name_crc) noexcept
{
	st.name = name;
	st.name_crc = name_crc;
	account(name, {}, 0, 1, false);  // the name slice is kept for good
	stream_records_++;  // §Capacity: its STREAM_TRIM in a checkpoint
}

void KvStore::forget_item(const Item& it, bool unlink) noexcept
{
	key_records_ -= wal_records_for(it.nslices);
	account(it.key, it.ref().slices, it.size, -1, movable(it.size));
	if (unlink && movable(it.size))
		link(it, false);
}

// The movable keys of each buffer (the cleaner's walk): an item is listed
// once in every distinct buffer its key or value slices lie in.
template <class F>
void KvStore::for_distinct_buffers(const Slice& key, std::span<const Slice> value, F&& fn) const
{
	auto seen = [&](std::uint32_t b, std::size_t upto) {
		if (key.len && key.buf == b)
			return true;
		for (std::size_t j = 0; j < upto; j++)
			if (value[j].len && value[j].buf == b)
				return true;
		return false;
	};
	if (key.len && key.buf < buf_items_.size())
		fn(key.buf);
	for (std::size_t i = 0; i < value.size(); i++)
		if (value[i].len && value[i].buf < buf_items_.size() && !seen(value[i].buf, i))
			fn(value[i].buf);
}

void KvStore::make_link_room(const Slice& key, std::span<const Slice> value)
{
	for_distinct_buffers(key, value, [this](std::uint32_t b) {
		auto& l = buf_items_[b];
		if (l.size() == l.capacity())
			l.reserve(std::max<std::size_t>(8, 2 * l.capacity()));  // may throw: nothing changed yet
	});
}

void KvStore::link(const Item& item, bool add) noexcept
{
	for_distinct_buffers(item.key, item.ref().slices, [&](std::uint32_t b) {
		auto& l = buf_items_[b];
		if (add) {
			if (l.size() < l.capacity())  // room made by make_link_room()
				l.push_back(&item);
			return;
		}
		if (auto p = std::find(l.begin(), l.end(), &item); p != l.end()) {
			*p = l.back();
			l.pop_back();
		}
		// A list a burst of keys grew gives its memory back once mostly
		// empty, keeping room to spare (apply() makes room for the new
		// item before it unlinks the old one) -- not inside a batch, whose
		// batch_undo() lists keys again in the room they left.
		if (l.capacity() > 64 && l.size() < l.capacity() / 8 && batch_depth_ == 0) {
			try {
				std::vector<const Item*> s;
				s.reserve(2 * l.size() + 8);
				s.assign(l.begin(), l.end());
				l.swap(s);
			} catch (const std::bad_alloc&) {
				// keeps the larger list
			}
		}
	});
}

// The cleaner's view of the pool (§The cleaner): live bytes per buffer, and
// the part of them it may not move.
void KvStore::account(const Slice& key, std::span<const Slice> value, std::uint64_t size, int sign,
		      bool can_move) noexcept
{
	auto add = [&](const Slice& s) {
		if (s.len == 0 || s.buf >= live_bytes_.size())
			return;
		const std::uint32_t d = s.len;
		if (sign < 0)
			forgotten_bytes_ += d;
		live_bytes_[s.buf] = sign > 0 ? live_bytes_[s.buf] + d : live_bytes_[s.buf] - d;
		if (!can_move)
			pinned_bytes_[s.buf] = sign > 0 ? pinned_bytes_[s.buf] + d : pinned_bytes_[s.buf] - d;
	};
	add(key);
	for (const Slice& s : value)
		add(s);
	live_payload_ = sign > 0 ? live_payload_ + size : live_payload_ - size;
}

// §Capacity: a checkpoint that failed (its live state did not fit a half)
// is not tried again before something was freed, so refusals stay cheap.
int KvStore::checkpoint_if_useful() noexcept
{
	if (live_records() >= ckpt_failed_at_)
		return -ENOSPC;
	const int rc = checkpoint();
	if (rc == -ENOSPC) {
		ckpt_failed_at_ = live_records();
		cap_stats_.ckpt_failures++;
	} else if (rc == 0) {
		ckpt_failed_at_ = UINT64_MAX;
	}
	return rc;
}

int KvStore::log_room(std::uint64_t n, std::uint64_t limit) noexcept
{
	if (failed_)
		return -EIO;  // a checkpoint would make the staged entries durable (failed())
	// Finishing the pending checkpoint frees the ring below its covers_seq
	// (and makes the staged entries durable). When it cannot (its half
	// filled up: a fuzzy checkpoint may hold keys deleted since), a whole
	// checkpoint holds only the live state, which admission keeps within a
	// half.
	if (ckpt_ && ckpt_finish() == 0)
		ckpt_stats_.finished++;
	if (wal_.used() + n > limit)
		(void)checkpoint_if_useful();
	return wal_.used() + n > limit ? -ENOSPC : 0;
}

int KvStore::append_logged(const Entry& e, bool frees) noexcept
{
	if (failed_)
		return -EROFS;  // a group could not be taken back: nothing more is logged
	const std::uint64_t n = wal_records_for(e.value.size());
	if (n > wal_.nslots() / 4)
		return -EMSGSIZE;
	// §Capacity: entries that add data leave log_reserve_ slots for those
	// that free it, so DEL, FLUSHALL and trims are logged even when the
	// store is full. Inside a batch no checkpoint runs to make room: it
	// would make the batch's entries staged so far durable on their own.
	const std::uint64_t limit = frees ? wal_.nslots() : wal_.nslots() - log_reserve_;
	if (wal_.used() + n > limit && (batch_depth_ || log_room(n, limit) < 0)) {
		if (!frees)
			cap_stats_.refused_log++;
		if (batch_depth_)
			batch_refused_ = batch_refused_log_ = true;
		return -ENOSPC;
	}
	if (batch_depth_) {
		try {
			batch_prepare(e);
		} catch (const std::bad_alloc&) {
			return -ENOMEM;
		}
	}
	if (const int rc = wal_.append(e); rc < 0) {
		if (batch_depth_)
			batch_unprepare();
		return rc;
	}
	try {
		if (fault_apply_) {
			fault_apply_ = false;
			throw std::bad_alloc();  // test hook (CleanerOptions::fault_enomem_every)
		}
		// The index keeps the CRCs the records hold: checkpoints reuse
		// them instead of reading every payload again.
		Entry a = e;
		wal_.last_crcs(a.key_crc, crc_scratch_);
		a.crc_known = true;
		a.value_crc = crc_scratch_;
		if (batch_depth_)
			batch_apply(a);
		else
			apply(a);  // all or nothing: a failure leaves the index unchanged
	} catch (const std::bad_alloc&) {
		// All or nothing: the log takes the entry back, so the index and
		// the log agree (no value, no stream position, that a restart
		// would see and this run does not). It is the newest entry and
		// staged: unstage_last() cannot fail here.
		if (batch_depth_)
			batch_unprepare();
		const int u = wal_.unstage_last();
		return u < 0 ? u : -ENOMEM;
	}
	if (frees && live_records() < ckpt_failed_at_)
		ckpt_failed_at_ = UINT64_MAX;  // space was freed: a checkpoint may fit again
	return 0;
}

int KvStore::refuse_capacity() noexcept
{
	cap_stats_.refused_capacity++;
	if (batch_depth_)
		batch_refused_ = true;
	return -ENOSPC;
}

namespace {

// Room for one more element, growing geometrically: reserve(size() + 1)
// reallocates to exactly that, which made a batch of N entries O(N^2).
template <class V>
void reserve_one_more(V& v)
{
	if (v.size() == v.capacity())
		v.reserve(std::max<std::size_t>(16, 2 * v.capacity()));
}

}  // namespace

// Batch mode: every container an undo record needs is grown here, before
// the entry is staged; batch_apply() and batch_undo() allocate nothing.
void KvStore::batch_prepare(const Entry& e)
{
	prep_item_ = prep_map_ = false;
	reserve_one_more(undo_);
	switch (e.type) {
	case RecordType::kv_set:
	case RecordType::kv_set_typed:
		if (auto it = index_.find(view(e.key)); it != index_.end()) {
			reserve_one_more(undo_items_);
			undo_items_.push_back(it->second);  // the item as it was (copies its slice lists)
			prep_item_ = true;
		}
		break;
	case RecordType::kv_del:
		reserve_one_more(undo_nodes_);
		break;
	case RecordType::kv_flushall:
		reserve_one_more(undo_maps_);
		undo_maps_.emplace_back();
		prep_map_ = true;
		break;
	default:
		break;
	}
}

void KvStore::batch_unprepare() noexcept
{
	if (prep_item_)
		undo_items_.pop_back();
	if (prep_map_)
		undo_maps_.pop_back();
	prep_item_ = prep_map_ = false;
}

void KvStore::batch_apply(const Entry& e)
{
	Undo u;
	switch (e.type) {
	case RecordType::kv_set:
	case RecordType::kv_set_typed:
		apply(e);  // may throw: append_logged() unprepares
		u.kind = prep_item_ ? Undo::Kind::restore : Undo::Kind::erase;
		u.key = view(e.key);
		u.at = undo_items_.size() - 1;
		break;
	case RecordType::kv_del: {
		// apply() without the erase: the node is kept for batch_undo().
		auto it = index_.find(view(e.key));
		if (it == index_.end()) {
			u.kind = Undo::Kind::none;  // nothing was there: nothing to put back
			break;
		}
		forget_item(it->second);
		undo_nodes_.push_back(index_.extract(it));  // reserved by batch_prepare()
		u.kind = Undo::Kind::reinsert;
		u.at = undo_nodes_.size() - 1;
		break;
	}
	case RecordType::kv_flushall: {
		// apply() on a swapped-out index: the old one is kept whole.
		auto& [old, records] = undo_maps_.back();
		old.swap(index_);
		records = key_records_;
		for (const auto& kvp : old)
			forget_item(kvp.second, false);
		for (auto& l : buf_items_)
			l.clear();  // keeps their capacity: batch_undo() lists the keys again
		key_records_ = 0;
		u.kind = Undo::Kind::flushall;
		u.at = undo_maps_.size() - 1;
		break;
	}
	case RecordType::stream_append: {
		const std::string_view n = view(e.key);
		const bool created = !streams_.contains(n);
		apply(e);  // may throw: append_logged() unprepares
		u.kind = Undo::Kind::append;
		u.key = streams_.find(n)->first;  // the name's bytes stay held while the stream is
		u.at = created ? 1 : 0;
		u.pos = streams_.find(n)->second.end() - 1;
		break;
	}
	default:
		apply(e);
		u.kind = Undo::Kind::stream;  // stream trims are never taken back
		break;
	}
	prep_item_ = prep_map_ = false;
	undo_.push_back(u);  // reserved by batch_prepare()
}

KvStore::BatchMark KvStore::batch_begin() noexcept
{
	batch_depth_++;
	return {wal_.next_seq(), undo_.size()};
}

void KvStore::batch_end() noexcept
{
	if (batch_depth_ == 0 || --batch_depth_ > 0)
		return;
	batch_refused_ = batch_refused_log_ = false;
	undo_.clear();
	undo_items_.clear();
	undo_nodes_.clear();  // frees the deleted keys' nodes
	undo_maps_.clear();
	if (undo_.capacity() > 1024) {
		// a large batch (MSET of many keys) gives its memory back
		std::vector<Undo>().swap(undo_);
		std::vector<Item>().swap(undo_items_);
		std::vector<Index::node_type>().swap(undo_nodes_);
	}
}

int KvStore::batch_undo(const BatchMark& m) noexcept
{
	if (batch_depth_ == 0)
		return -EINVAL;
	// A group that cannot be taken back must not become durable in part
	// (the caller refuses it): the store fails instead, before anything
	// is undone, and commits nothing more (failed()).
	auto fail = [this](int rc) {
		failed_ = -rc;
		batch_refused_ = true;
		return rc;
	};
	if (m.undo > undo_.size())
		return fail(-EINVAL);
	for (std::size_t i = m.undo; i < undo_.size(); i++) {
		const Undo& u = undo_[i];
		if (u.kind == Undo::Kind::stream)
			return fail(-EBUSY);
		// An append is taken back by popping its stream's last entry:
		// that entry must still be there (nothing pops stream entries
		// inside a batch but a trim, refused above). Checked before
		// anything is undone, never skipped half way.
		if (u.kind == Undo::Kind::append) {
			const auto it = streams_.find(u.key);
			if (it == streams_.end() || u.pos < it->second.first || u.pos >= it->second.end())
				return fail(-EINVAL);
		}
	}
	// The log first: were part of the batch no longer staged (committed),
	// the index must not be rewound past what the log keeps.
	if (!wal_.can_unstage_to(m.seq))
		return fail(-EBUSY);
	// An item back in the index: its records, bytes and lists (its old
	// place in the lists is free again: what the batch added since was
	// taken back first).
	auto relist = [this](const Item& item) {
		key_records_ += wal_records_for(item.nslices);
		account(item.key, item.ref().slices, item.size, 1, movable(item.size));
		if (movable(item.size))
			link(item, true);
	};
	// Newest first: each step finds the index as its entry left it
	// (lazy expiry erases nothing inside a batch).
	while (undo_.size() > m.undo) {
		const Undo u = undo_.back();
		undo_.pop_back();
		switch (u.kind) {
		case Undo::Kind::erase:
			if (auto it = index_.find(u.key); it != index_.end()) {
				forget_item(it->second);
				index_.erase(it);
			}
			break;
		case Undo::Kind::restore: {
			Item& was = undo_items_[u.at];
			auto it = index_.find(u.key);
			if (it != index_.end()) {
				forget_item(it->second);
				Item& item = it->second;
				item.key = was.key;
				item.key_crc = was.key_crc;
				item.expiry = was.expiry;
				item.typed = was.typed;
				item.size = was.size;
				item.nslices = was.nslices;
				item.first = was.first;
				item.first_crc = was.first_crc;
				item.many.swap(was.many);
				item.many_crc.swap(was.many_crc);
				if (const std::string_view k = view(item.key); k.data() != it->first.data()) {
					// Back onto the key slice it had (same size: no rehash).
					auto nh = index_.extract(it);
					nh.key() = k;
					it = index_.insert(std::move(nh)).position;
				}
				relist(it->second);
			}
			undo_items_.pop_back();
			break;
		}
		case Undo::Kind::reinsert: {
			// The size it had before the delete: no rehash, nothing allocated.
			auto it = index_.insert(std::move(undo_nodes_[u.at])).position;
			undo_nodes_.pop_back();
			relist(it->second);
			break;
		}
		case Undo::Kind::flushall: {
			auto& [old, records] = undo_maps_[u.at];
			index_.swap(old);
			key_records_ = 0;
			for (const auto& kvp : index_)
				relist(kvp.second);
			undo_maps_.pop_back();
			break;
		}
		case Undo::Kind::append: {
			// Newest first: the entry is the stream's last; a stream it
			// created goes again (no pending checkpoint knows it: none
			// begins inside a batch).
			// (checked above: the stream holds the entry, its last)
			const auto it = streams_.find(u.key);
			Stream& st = it->second;
			const StreamEntry& x = st.entries.back();
			stream_records_ -= wal_records_for(x.nslices);
			account(Slice{}, value_ref(x, 0).slices, x.size, -1, false);
			st.entries.pop_back();
			if (u.at == 1) {
				account(st.name, {}, 0, -1, false);
				stream_records_--;
				streams_.erase(it);
			}
			break;
		}
		case Undo::Kind::none:
		case Undo::Kind::stream:
			break;
		}
	}
	return wal_.unstage_to(m.seq);  // checked above: cannot fail
}

std::uint64_t KvStore::record_limit() const noexcept
{
	const std::uint64_t cap = wal_.ckpt_capacity();
	const std::uint64_t slack = opt_.ckpt_slack ? opt_.ckpt_slack : cap / 32;
	return cap > slack ? cap - slack : 0;
}

bool KvStore::slice_ok(const Slice& s) const noexcept
{
	const PoolView& p = wal_.pool();
	return s.len == 0 || (p.valid_buffer(s.buf) && s.off <= p.buffer_size() && s.len <= p.buffer_size() - s.off);
}

int KvStore::admit(std::uint64_t new_records, std::uint64_t log_records) noexcept
{
	if (failed_)
		return -EROFS;
	if (live_records() + new_records > record_limit())
		return refuse_capacity();
	const std::uint64_t limit = wal_.nslots() - log_reserve_;
	if (log_records > limit)
		return -EMSGSIZE;
	// Inside a batch no checkpoint makes room (see append_logged()).
	if (wal_.used() + log_records > limit && (batch_depth_ || log_room(log_records, limit) < 0)) {
		cap_stats_.refused_log++;
		if (batch_depth_)
			batch_refused_ = batch_refused_log_ = true;
		return -ENOSPC;
	}
	return 0;
}

int KvStore::admit_frees(std::uint64_t log_records) noexcept
{
	if (failed_)
		return -EROFS;
	const std::uint64_t limit = wal_.nslots();
	if (log_records > limit)
		return -EMSGSIZE;
	if (wal_.used() + log_records <= limit)
		return 0;
	return batch_depth_ ? -ENOSPC : log_room(log_records, limit);
}

std::uint64_t KvStore::batch_log_limit() const noexcept
{
	return wal_.nslots() - log_reserve_;
}

int KvStore::make_room(std::uint64_t log_records) noexcept
{
	if (failed_)
		return -EROFS;
	const std::uint64_t limit = wal_.nslots() - log_reserve_;
	log_records = std::min(log_records, limit);
	if (wal_.used() + log_records <= limit)
		return 0;
	return batch_depth_ ? -ENOSPC : log_room(log_records, limit);
}

int KvStore::reclaim() noexcept
{
	if (failed_)
		return -EIO;
	if (ckpt_ || live_records() >= ckpt_failed_at_ || batch_depth_)
		return 0;  // (inside a batch: after it, see batch_begin())
	return opt_.checkpoint_step ? ckpt_begin() : checkpoint_if_useful();
}

int KvStore::set(const Slice& key, std::span<const Slice> value, std::uint64_t expiry_ns, bool typed) noexcept
{
	if (!slice_ok(key))
		return -EINVAL;
	// §Capacity: admitted against what a checkpoint can hold, before
	// anything is logged (a refusal costs no checkpoint).
	const std::uint64_t n = wal_records_for(value.size());
	if (live_records() + n > record_limit()) {
		// Near the limit only: what the old value frees counts (a lookup
		// that a SET far from the limit does not pay).
		const auto it = index_.find(view(key));
		const std::uint64_t old = it == index_.end() ? 0 : wal_records_for(it->second.nslices);
		if (n > old && live_records() + (n - old) > record_limit())
			return refuse_capacity();
	}
	Entry e;
	e.type = typed ? RecordType::kv_set_typed : RecordType::kv_set;
	e.aux = expiry_ns;
	e.key = key;
	e.value = value;
	return append_logged(e, false);
}

int KvStore::del(const Slice& key) noexcept
{
	if (key.len && !wal_.pool().valid_buffer(key.buf))
		return -EINVAL;
	if (!exists(view(key)))
		return 0;
	Entry e;
	e.type = RecordType::kv_del;
	e.key = key;
	const int rc = append_logged(e, true);
	return rc < 0 ? rc : 1;
}

int KvStore::flushall() noexcept
{
	Entry e;
	e.type = RecordType::kv_flushall;
	return append_logged(e, true);
}

int KvStore::stream_append(const Slice& name, std::span<const Slice> body, std::uint64_t stamp,
			   std::uint64_t* index) noexcept
{
	if (!slice_ok(name))
		return -EINVAL;
	const auto it = streams_.find(view(name));
	if (it != streams_.end() && it->second.end() >= kWalSeqLimit - 1)
		return -EOVERFLOW;  // positions stay below 2^63, like trim targets
	const std::uint64_t n = wal_records_for(body.size()) + (it == streams_.end() ? 1 : 0);
	if (live_records() + n > record_limit())
		return refuse_capacity();
	Entry e;
	e.type = RecordType::stream_append;
	e.aux = stamp;
	e.key = name;
	e.value = body;
	const int rc = append_logged(e, false);
	if (rc == 0 && index)
		*index = stream_length(view(name)) - 1;
	return rc;
}

std::int64_t KvStore::stream_trim(const Slice& name, std::uint64_t first) noexcept
{
	if (name.len && !wal_.pool().valid_buffer(name.buf))
		return -EINVAL;
	auto it = streams_.find(view(name));
	if (it == streams_.end())
		return -ENOENT;
	const Stream& st = it->second;
	if (first > st.end())
		return -ERANGE;
	if (first <= st.first)
		return 0;
	const auto dropped = static_cast<std::int64_t>(first - st.first);
	Entry e;
	e.type = RecordType::stream_trim;
	e.aux = first;
	e.key = name;
	const int rc = append_logged(e, true);
	return rc < 0 ? rc : dropped;
}

int KvStore::commit() noexcept { return commit_impl(nullptr); }

int KvStore::commit_begin(std::uint64_t& ticket) noexcept { return commit_impl(&ticket); }

int KvStore::commit_impl(std::uint64_t* ticket) noexcept
{
	if (failed_)
		return -EIO;  // see failed(): the staged entries never become durable
	if (batch_depth_)
		return -EBUSY;  // would make part of a batch durable (and beyond batch_undo()'s reach)
	// A checkpoint step below drains (and so waits for the batch): only
	// the commit itself is pipelined.
	const int n = ticket ? wal_.commit_begin(*ticket) : wal_.commit();
	if (n < 0)
		return n;
	if (ckpt_) {
		// At least twice the entries this batch logged: the checkpoint
		// outruns the log, so it completes before the ring fills when the
		// live state is smaller than what is left of the ring.
		// With checkpoint_step 0 only the cleaner begins one: it advances
		// by the cleaner's work budget per pass.
		const std::uint64_t step = opt_.checkpoint_step ? opt_.checkpoint_step : opt_.cleaner.max_visits;
		int rc = ckpt_step(std::max<std::uint64_t>(step, 2 * static_cast<std::uint64_t>(n)));
		if (rc == -EAGAIN) {
			ckpt_stats_.restarted++;
			rc = ckpt_begin();  // the index rehashed: begin again from here
		}
		if (rc == 1) {
			rc = wal_.install_checkpoint();
			if (rc == 0) {
				after_install();
				ckpt_stats_.stepped++;
				trimmed_since_ckpt_ -= std::min(trimmed_since_ckpt_, ckpt_->trimmed_at_begin);
				ckpt_.reset();
			}
		}
		if (rc < 0) {
			// e.g. the half filled up (a fuzzy checkpoint may hold keys
			// deleted since begin): a whole checkpoint holds only the
			// live state.
			ckpt_stats_.fallbacks++;
			if (const int w = checkpoint_if_useful(); w < 0)
				return w;
		}
		return n;
	}
	if (static_cast<double>(wal_.used()) > opt_.checkpoint_fraction * static_cast<double>(wal_.nslots()) &&
	    live_records() < ckpt_failed_at_) {
		const int rc = opt_.checkpoint_step ? ckpt_begin() : checkpoint_if_useful();
		if (rc < 0)
			return rc;
	}
	return n;
}

// §Checkpoints, fuzzy. The checkpoint covers covers_seq = next_seq at begin
// and may also reflect later mutations: every key is written with its
// value when the step reaches its bucket (keys gone by then are skipped),
// every stream with a STREAM_TRIM at its first position (at most its end
// at begin) and its entries up to that end only. Replaying the log from
// covers_seq over it then ends in the same state: SET, DEL, FLUSHALL and
// STREAM_TRIM give the same result when replayed over a state that already
// reflects them, and appends are written only up to the end at begin.
int KvStore::ckpt_begin() noexcept
{
	// Inside a batch a checkpoint would persist the part of it staged so
	// far (a fuzzy one writes the index as it is, staged entries
	// included): an error, whatever called it (docs/wal-format.md
	// §Capacity, batch mode).
	if (batch_depth_)
		return -EBUSY;
	try {
		auto p = std::make_unique<CkptProgress>();
		p->buckets = index_.bucket_count();
		p->streams.reserve(streams_.size());
		for (const auto& [name, st] : streams_)
			p->streams.push_back({name, st.end(), 0, false});
		p->trimmed_at_begin = trimmed_since_ckpt_;
		if (const int rc = wal_.begin_checkpoint(); rc < 0)
			return rc;
		ckpt_ = std::move(p);
	} catch (const std::bad_alloc&) {
		return -ENOMEM;
	}
	return 0;
}

int KvStore::ckpt_step(std::uint64_t budget) noexcept
{
	CkptProgress& p = *ckpt_;
	CheckpointWriter& w = *wal_.pending_checkpoint();
	auto fail = [this](int rc) {
		wal_.abort_checkpoint();
		ckpt_.reset();
		return rc;
	};
	std::uint64_t done = 0;
	for (; p.stream_i < p.streams.size(); p.stream_i++) {
		auto& se = p.streams[p.stream_i];
		const Stream& st = streams_.find(se.name)->second;  // streams are never removed
		// A trim since begin (or since the last step) dropped entries not
		// written yet: a STREAM_TRIM moves the replayed stream past them.
		if (!se.started || st.first > se.next) {
			const std::uint64_t t = std::min(st.first, se.end);
			if (!se.started && t == 0 && se.end > 0) {
				se.next = 0;
			} else {
				Entry e;
				e.type = RecordType::stream_trim;
				e.aux = t;
				e.key = st.name;
				e.crc_known = true;
				e.key_crc = st.name_crc;
				if (const int rc = w.add(e); rc < 0)
					return fail(rc);
				se.next = t;
				done++;
			}
			se.started = true;
		}
		for (; se.next < se.end; se.next++) {
			if (done >= budget) {
				w.flush_written();
				return 0;
			}
			const StreamEntry& x = st.entries[se.next - st.first];
			Entry e;
			e.type = RecordType::stream_append;
			e.aux = x.stamp;
			e.key = st.name;
			e.value = value_ref(x, 0).slices;
			e.crc_known = true;
			e.key_crc = st.name_crc;
			e.value_crc = value_crcs(x);
			if (const int rc = w.add(e); rc < 0)
				return fail(rc);
			done++;
		}
	}
	if (index_.bucket_count() != p.buckets)
		return fail(-EAGAIN);  // rehashed: keys moved between buckets
	const std::uint64_t now = opt_.clock();
	// Empty buckets cost too (1/64 of an entry each): an index emptied
	// by deletes keeps its buckets, and a step must stay bounded there.
	std::uint64_t visited = 0;
	for (; p.bucket < p.buckets; p.bucket++, visited++) {
		if (done + visited / 64 >= budget) {
			w.flush_written();
			return 0;
		}
		// Keys deleted since begin are simply not here (the log from
		// covers_seq says so); keys set since are written with their new
		// value (the log sets it again). Expired keys are not carried
		// forward and leave the index now: once this checkpoint is
		// installed nothing references their buffers any more.
		expired_.clear();
		for (auto it = index_.begin(p.bucket); it != index_.end(p.bucket); ++it) {
			const Item& item = it->second;
			if (item.expiry && item.expiry <= now) {
				try {
					expired_.push_back(it->first);
				} catch (const std::bad_alloc&) {
					return fail(-ENOMEM);
				}
				continue;
			}
			Entry e;
			e.type = item.typed ? RecordType::kv_set_typed : RecordType::kv_set;
			e.aux = item.expiry;
			e.key = item.key;
			e.value = item.ref().slices;
			e.crc_known = true;
			e.key_crc = item.key_crc;
			e.value_crc = value_crcs(item);
			if (const int rc = w.add(e); rc < 0)
				return fail(rc);
			done++;
		}
		for (std::string_view k : expired_) {
			auto it = index_.find(k);
			if (expire_hook_)
				expire_hook_(expire_ctx_, k);
			forget_item(it->second);
			index_.erase(it);  // erase never rehashes
		}
	}
	w.flush_written();
	return 1;
}

int KvStore::ckpt_finish() noexcept
{
	if (batch_depth_)
		return -EBUSY;  // as ckpt_begin(): it would install part of the batch
	const int rc = ckpt_step(UINT64_MAX);
	if (rc < 0) {
		// -EAGAIN: the index rehashed; -ENOSPC: the half filled up; a
		// whole checkpoint needs neither.
		ckpt_stats_.fallbacks++;
		return checkpoint_if_useful();
	}
	if (const int i = wal_.install_checkpoint(); i < 0)
		return i;
	after_install();
	trimmed_since_ckpt_ -= std::min(trimmed_since_ckpt_, ckpt_->trimmed_at_begin);
	ckpt_.reset();
	return 0;
}

// A whole checkpoint is an incremental one run to the end at once: nothing
// is logged between its begin and its install, so it holds exactly the
// live state (§Checkpoint header: streams first, then the live keys).
int KvStore::checkpoint() noexcept
{
	if (failed_)
		return -EIO;  // it would make the staged entries durable
	if (batch_depth_)
		return -EBUSY;  // it would make part of the batch durable on its own
	if (ckpt_) {
		wal_.abort_checkpoint();
		ckpt_.reset();
	}
	if (const int rc = ckpt_begin(); rc < 0)
		return rc;
	const int rc = ckpt_step(UINT64_MAX);  // aborts (and resets ckpt_) on failure
	if (rc < 0)
		return rc;
	if (const int i = wal_.install_checkpoint(); i < 0) {
		wal_.abort_checkpoint();
		ckpt_.reset();
		return i;
	}
	after_install();
	ckpt_.reset();
	trimmed_since_ckpt_ = 0;
	return 0;
}

int KvStore::get(std::string_view key, ValueRef& out) noexcept
{
	auto it = index_.find(key);
	if (it == index_.end())
		return 0;
	if (it->second.expiry && it->second.expiry <= opt_.clock()) {
		if (batch_depth_)
			return 0;  // kept until the batch ends: batch_undo() may restore it
		if (expire_hook_)
			expire_hook_(expire_ctx_, it->first);
		forget_item(it->second);
		index_.erase(it);
		return 0;
	}
	out = it->second.ref();
	return 1;
}

bool KvStore::exists(std::string_view key) noexcept
{
	ValueRef v;
	return get(key, v) == 1;
}

std::uint64_t KvStore::stream_length(std::string_view name) const noexcept
{
	auto it = streams_.find(name);
	return it == streams_.end() ? 0 : it->second.end();
}

std::uint64_t KvStore::stream_first(std::string_view name) const noexcept
{
	auto it = streams_.find(name);
	return it == streams_.end() ? 0 : it->second.first;
}

std::size_t KvStore::stream_read(std::string_view name, std::uint64_t from, std::span<StreamEntryRef> out) const noexcept
{
	auto it = streams_.find(name);
	if (it == streams_.end())
		return 0;
	const Stream& st = it->second;
	std::size_t n = 0;
	for (std::uint64_t p = std::max(from, st.first); p < st.end() && n < out.size(); p++, n++) {
		const StreamEntry& se = st.entries[p - st.first];
		out[n].index = p;
		out[n].stamp = se.stamp;
		out[n].body = value_ref(se, 0);
	}
	return n;
}

void KvStore::for_each(const std::function<void(std::string_view, const ValueRef&)>& fn) const
{
	for (const auto& [k, item] : index_)
		fn(k, item.ref());
}

std::size_t KvStore::visit_buckets(std::size_t bucket, std::size_t max_buckets,
				   const std::function<void(std::string_view, const ValueRef&)>& fn) const
{
	const std::size_t n = index_.bucket_count();
	std::size_t b = bucket;
	for (std::size_t done = 0; b < n && done < max_buckets; ++b, ++done) {
		for (auto it = index_.begin(b); it != index_.end(b); ++it)
			fn(it->first, it->second.ref());
	}
	return b < n ? b : 0;
}

std::size_t KvStore::visit_random_bucket(std::uint64_t seed, std::size_t max_buckets,
					 const std::function<void(std::string_view, const ValueRef&)>& fn) const
{
	const std::size_t n = index_.bucket_count();
	if (index_.empty() || n == 0)
		return 0;
	std::size_t b = static_cast<std::size_t>(seed % n);
	for (std::size_t i = 0; i < max_buckets; ++i, b = (b + 1) % n) {
		if (index_.bucket_size(b) == 0)
			continue;
		std::size_t visited = 0;
		for (auto it = index_.begin(b); it != index_.end(b); ++it, ++visited)
			fn(it->first, it->second.ref());
		return visited;
	}
	return 0;
}

void KvStore::for_each_stream(const std::function<void(std::string_view, std::uint64_t)>& fn) const
{
	for (const auto& [n, st] : streams_)
		fn(n, st.end());
}

}  // namespace daxnet::pmem
