// SPDX-License-Identifier: BSD-2-Clause
//
// Fuzzes WAL and checkpoint recovery (pmem/src/wal_recovery.cpp, pmem/src/kv.cpp)
// on hostile pool images, against docs/wal-format.md.
//
// The image is a 1 MiB pool in DRAM (plan_geometry + format_superblock,
// 2 KiB buffers, a 64-slot WAL ring, 64-record checkpoint halves) with a
// persistence domain that only counts. The input is a program that writes
// the WAL and checkpoint areas: log-state slots, log entries (head + CONT
// records), checkpoint headers and entries, payload bytes, raw records,
// byte flips. The program computes every CRC itself from the spec (so it
// reaches deep states and also cross-checks the implementation's CRC
// layout), and each op can deliberately break one field.
//
// Checked after Wal::open (with allow_truncate / read_only from the input):
//   * failure writes nothing (the image is byte-for-byte unchanged) and
//     says EIO/EINVAL; read-only success writes nothing either;
//   * replayed entries are well formed: a known type, slices inside the
//     pool, value slices non-empty, no value for DEL/FLUSHALL, no key for
//     FLUSHALL; checkpoint entries come first (seq 0), then log entries
//     from head_seq with consecutive seqs (one per record);
//   * the report agrees with what was replayed; next_seq/used() agree;
//   * buffer reference counts: every buffer a replayed slice names is
//     referenced at least once per naming slice, exactly that often when
//     nothing was quarantined; the allocator's free list is consistent;
//   * recovery is idempotent: opening the recovered image again (without
//     allow_truncate) succeeds and replays the same entries;
//   * appending one entry and committing after recovery, then recovering,
//     yields the old entries plus exactly the new one (stale records
//     beyond the old tail are never resurrected, §Epochs);
//   * a checkpoint written after recovery round-trips: recovery then
//     replays exactly the checkpointed entries;
//   * KvStore::open on the same image succeeds exactly when Wal::open does
//     and its index equals a model built from the replayed entries (keys,
//     values, expiry at a fixed clock, streams); after KvStore::checkpoint
//     and reopen the index is unchanged.
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "daxnet/pmem/buffer_alloc.h"
#include "daxnet/pmem/crc32c.h"
#include "daxnet/pmem/kv.h"
#include "daxnet/pmem/pool.h"
#include "daxnet/pmem/wal.h"
#include "fuzz.h"

namespace {

using namespace daxnet::pmem;
using daxnet::fuzz::FuzzInput;

constexpr std::uint64_t kPoolSize = 1u << 20;
constexpr std::uint32_t kBufSize = 2048;
constexpr std::uint64_t kWalSize = 4096 + 64 * 64;  // N = 64 slots
constexpr std::uint64_t kCkptSize = 4 * 4096;       // halves of 8 KiB: 64 records each
constexpr std::uint32_t kHotBuffers = 8;             // buffers the program writes payload into
constexpr std::uint64_t kNow = 1000;                 // the store's clock

std::uint64_t fixed_clock() noexcept
{
	return kNow;
}

struct Image {
	Geometry geo{};
	std::byte* mem = nullptr;
	CountingDomain domain;
	PoolView view;
	std::uint32_t seed = 0;
	std::uint64_t nslots = 0;

	Image()
	{
		auto g = plan_geometry(kPoolSize, kBufSize, kWalSize, kCkptSize);
		if (!g)
			std::abort();
		geo = *g;
		mem = static_cast<std::byte*>(std::aligned_alloc(4096, kPoolSize));
		view = PoolView(mem, geo, &domain);
		nslots = (kWalSize - 4096) / 64;
	}

	std::int64_t dirty_buffer = -1;  ///< a buffer outside the hot ones that was written

	void reset()
	{
		static bool first = true;
		if (first)
			std::memset(mem, 0, kPoolSize);
		first = false;
		// Only the metadata and the buffers the program touches change.
		std::memset(mem, 0, geo.buffer_offset);
		if (dirty_buffer >= 0)
			std::memset(view.buffer(static_cast<std::uint32_t>(dirty_buffer)), 0, kBufSize);
		dirty_buffer = -1;
		Uuid u{};
		for (std::size_t i = 0; i < u.size(); ++i)
			u[i] = static_cast<std::uint8_t>(0x5a + 3 * i);
		format_superblock(*reinterpret_cast<Superblock*>(mem), geo, u, 1);
		// §Checksums: pool_seed = crc32c(uuid)
		seed = crc32c(u.data(), u.size());
		for (std::uint32_t b = 0; b < kHotBuffers; ++b)
			for (std::uint32_t i = 0; i < kBufSize; ++i)
				view.buffer(b)[i] = static_cast<std::byte>((b * 31 + i * 7 + (i >> 8)) & 0xff);
	}

	std::byte* wal() const { return mem + geo.wal_offset; }
	std::byte* ckpt_half(std::uint32_t h) const { return mem + geo.ckpt_offset + std::uint64_t{h} * 8192; }
	WalRecord* slot(std::uint64_t seq) const
	{
		return reinterpret_cast<WalRecord*>(wal() + 4096 + (seq % nslots) * 64);
	}
	/// Bytes recovery may write: superblock, WAL and checkpoint areas.
	std::size_t meta_bytes() const { return geo.buffer_offset; }
};

template <class T>
std::uint32_t crc60(const T& obj, std::uint32_t seed)
{
	static_assert(sizeof(T) == 64);
	return crc32c_mask(crc32c_extend(seed, &obj, 60));
}

std::uint32_t ckpt_seed(std::uint32_t pool_seed, std::uint64_t gen)
{
	std::uint8_t le[8];
	for (int i = 0; i < 8; ++i)
		le[i] = static_cast<std::uint8_t>(gen >> (8 * i));
	return crc32c_extend(pool_seed, le, 8);
}

// ---- the image-writing program -------------------------------------------

struct Ctx {
	std::uint64_t head = 1;
	std::uint32_t epoch = 1;
};

WalSlice make_slice(Image& img, FuzzInput& in, bool value)
{
	const std::uint8_t sel = in.u8();
	WalSlice s{};
	if (!value && (sel & 0xc0) == 0)
		return s;  // empty key
	s.buf = (sel & 0x30) == 0x30 ? in.u32() : sel % kHotBuffers;
	const std::uint16_t off = in.u16();
	s.off = (sel & 8) ? off : off % kBufSize;
	std::uint32_t len = in.u8();
	if (len == 0 && value)
		len = 1;
	if (s.off < kBufSize && len > kBufSize - s.off && !(sel & 4))
		len = kBufSize - s.off;
	s.len = len;
	if (s.buf < img.geo.buffer_count && s.off <= kBufSize && s.len <= kBufSize - s.off)
		s.crc = crc32c(img.view.buffer(s.buf) + s.off, s.len);
	if (s.len == 0)
		s = WalSlice{};
	return s;
}

/// Writes an entry (head + CONT records). `where(i)` gives record i's storage.
template <class Where>
void write_entry(Image& img, FuzzInput& in, std::uint64_t seq0, std::uint32_t epoch, std::uint32_t seed, bool log,
		 Where&& where)
{
	static const std::uint8_t kTypes[] = {1, 1, 5, 2, 3, 4, 4, 15, 0, 9};
	const std::uint8_t type = kTypes[in.u8() % sizeof kTypes];
	const std::uint32_t nval = in.u8() % 6;
	const std::uint8_t breaks = in.u8();  // which field to break, if any
	const std::uint8_t flags = in.u8();
	std::uint64_t aux = (flags & 2) ? in.u8() * std::uint64_t{8} : 0;
	if (type == 5 && (flags & 4))
		aux = in.u64();  // trim targets up to and past 2^63

	std::vector<WalSlice> vals;
	for (std::uint32_t i = 0; i < nval; ++i)
		vals.push_back(make_slice(img, in, true));
	const WalSlice key = type == 3 ? WalSlice{} : make_slice(img, in, false);
	const bool has_value = type == 1 || type == 4;
	const bool has_aux = has_value || type == 5;
	if (!has_value)
		vals.clear();

	const std::uint32_t n = wal_records_for(vals.size());
	std::size_t vi = 0;
	for (std::uint32_t i = 0; i < n; ++i) {
		WalRecord r{};
		r.seq = seq0 + i;
		r.epoch = log ? epoch : 0;
		if (i == 0) {
			r.type = type;
			r.aux = has_aux ? aux : 0;
			r.nslices = static_cast<std::uint16_t>(vals.size());
			r.count = n;
			r.s[0] = key;
			if (vi < vals.size())
				r.s[1] = vals[vi++];
		} else {
			r.type = 15;
			r.count = i;
			std::uint16_t used = 0;
			for (auto& s : r.s)
				if (vi < vals.size()) {
					s = vals[vi++];
					++used;
				}
			r.nslices = used;
		}
		if (log && i == n - 1 && (flags & 1))
			r.flags = kRecBatchEnd;
		const bool brk = (breaks & 0x80) && (breaks & 7) % n == i;
		if (brk) {
			switch ((breaks >> 3) & 7) {
			case 0: r.count += 1; break;
			case 1: r.nslices = static_cast<std::uint16_t>(r.nslices + 1); break;
			case 2: r.epoch += 1; break;
			case 3: r.s[0].crc ^= 1; break;
			case 4: r.flags = static_cast<std::uint8_t>(r.flags | 0x80); break;
			case 5: r.seq += img.nslots; break;
			case 6: r.type = 15; break;
			default: break;
			}
		}
		r.crc = crc60(r, seed);
		if (brk && ((breaks >> 3) & 7) == 7)
			r.crc ^= 0x100;
		if (brk && (breaks & 0x40))
			continue;  // this record never reached the media
		std::memcpy(static_cast<void*>(where(i)), &r, sizeof r);
	}
}

void run_program(Image& img, FuzzInput& in, Ctx& ctx)
{
	const std::uint8_t hdr = in.u8();
	ctx.head = (hdr & 1) ? in.u64() : 1 + in.u16() % 300;
	ctx.epoch = 1 + in.u8() % 8;
	unsigned ops = 0;
	while (!in.empty() && ops++ < 64) {
		const std::uint8_t op = in.u8();
		switch (op % 9) {
		case 0: {  // log-state slot
			LogState s{};
			std::memcpy(s.magic, "DXWLOG01", 8);
			const std::uint8_t f = in.u8();
			s.generation = in.u8();
			s.head_seq = ctx.head + static_cast<std::int8_t>(in.u8() & 0x87);
			s.ckpt_gen = in.u8() % 4;
			s.epoch = ctx.epoch;
			s.ckpt_half = (f & 2) ? in.u8() : (f >> 2) & 1;
			s.nslots = (f & 8) ? in.u32() : static_cast<std::uint32_t>(img.nslots);
			s.flags = ((f & 16) ? daxnet::pmem::kStateFlagTrim : 0) | ((f & 64) ? 4u : 0u);  // 4: unknown
			s.epoch_seq = s.head_seq + in.u8();
			s.crc = crc60(s, img.seed);
			if (f & 32)
				s.crc ^= 4;
			std::memcpy(img.wal() + ((f & 1) ? kWalStateSlotB : 0), &s, sizeof s);
			break;
		}
		case 1: {  // log entry
			const std::uint64_t seq = ctx.head + in.u8() % 80;
			const std::int8_t de = static_cast<std::int8_t>(in.u8() % 4) - 2;
			const std::uint32_t epoch = ctx.epoch + static_cast<std::uint32_t>(de);
			write_entry(img, in, seq, epoch, img.seed, true, [&](std::uint32_t i) { return img.slot(seq + i); });
			break;
		}
		case 2: {  // checkpoint header
			CkptHeader h{};
			std::memcpy(h.magic, "DXCKPT01", 8);
			const std::uint8_t f = in.u8();
			h.ckpt_gen = in.u8() % 4;
			h.covers_seq = (f & 2) ? ctx.head + in.u8() : ctx.head;
			h.nrecords = (f & 4) ? in.u64() : in.u8() % 70;
			h.nentries = in.u8() % 70;
			h.crc = crc60(h, img.seed);
			if (f & 8)
				h.crc ^= 2;
			std::memcpy(img.ckpt_half(f & 1), &h, sizeof h);
			break;
		}
		case 3: {  // checkpoint entry
			const std::uint8_t f = in.u8();
			const std::uint64_t gen = in.u8() % 4;
			const std::uint64_t pos = 1 + in.u8() % 64;
			auto* base = reinterpret_cast<WalRecord*>(img.ckpt_half(f & 1) + 4096);
			write_entry(img, in, pos, 0, ckpt_seed(img.seed, gen), false, [&](std::uint32_t i) {
				return &base[(pos - 1 + i) % 64];
			});
			break;
		}
		case 4: {  // payload bytes (after records were sealed: may break payload CRCs)
			const std::uint32_t b = in.u8() % kHotBuffers;
			const std::uint32_t off = in.u16() % kBufSize;
			const auto bytes = in.bytes(in.u8() % 32);
			const std::size_t n = std::min<std::size_t>(bytes.size(), kBufSize - off);
			std::memcpy(img.view.buffer(b) + off, bytes.data(), n);
			break;
		}
		case 5: {  // flip a byte of the WAL or checkpoint area
			const std::uint64_t span = img.geo.wal_size + img.geo.ckpt_size;
			const std::uint64_t at = in.u16() % span;
			img.wal()[at] ^= static_cast<std::byte>(in.u8() | 1);
			break;
		}
		case 6: {  // raw record bytes in a log slot, optionally re-sealed
			const std::uint8_t f = in.u8();
			auto* r = img.slot(in.u8());
			const auto bytes = in.bytes(64);
			std::memcpy(static_cast<void*>(r), bytes.data(), bytes.size());
			if (f & 1)
				r->crc = crc60(*r, img.seed);
			break;
		}
		case 7: {  // a record slot that never reached the media
			std::memset(static_cast<void*>(img.slot(ctx.head + in.u8() % 80)), 0, 64);
			break;
		}
		case 8: {  // next epoch / head region for later ops
			const std::uint8_t f = in.u8();
			if (f & 1)
				ctx.epoch += 1;
			if (f & 2)
				ctx.head += f >> 2;
			break;
		}
		}
	}
}

// ---- what recovery replayed ------------------------------------------------

struct Got {
	RecordType type{};
	std::uint64_t aux = 0;
	Slice key{};
	std::vector<Slice> value;
	std::uint64_t seq = 0;
	bool operator==(const Got&) const = default;
};

struct Opened {
	std::vector<Got> entries;
	RecoveryReport report;
};

std::string str(const Image& img, const Slice& s)
{
	if (s.len == 0)
		return {};
	return {reinterpret_cast<const char*>(img.view.buffer(s.buf)) + s.off, s.len};
}

std::string value_str(const Image& img, std::span<const Slice> v)
{
	std::string out;
	for (const auto& s : v)
		out += str(img, s);
	return out;
}

bool slice_ok(const Image& img, const Slice& s)
{
	return s.buf < img.geo.buffer_count && s.off <= kBufSize && s.len <= kBufSize - s.off;
}

daxnet::Result<Wal> open_wal(Image& img, BufferAllocator& alloc, const WalOptions& opt, Opened& o)
{
	o.entries.clear();
	return Wal::open(
		img.view, alloc, opt,
		[&o](const Entry& e, std::uint64_t seq) {
			o.entries.push_back(Got{e.type, e.aux, e.key, {e.value.begin(), e.value.end()}, seq});
		},
		&o.report);
}

/// The highest epoch of any record in the ring with a valid CRC.
std::uint32_t highest_record_epoch(const Image& img)
{
	std::uint32_t max_epoch = 0;
	for (std::uint64_t i = 0; i < img.nslots; ++i) {
		const auto* r = img.slot(i);
		if (r->crc == crc60(*r, img.seed))
			max_epoch = std::max(max_epoch, r->epoch);
	}
	return max_epoch;
}

void check_entries(const Image& img, const Opened& o, const Wal& w, const BufferAllocator& alloc)
{
	const RecoveryReport& rep = o.report;
	std::uint64_t ckpt = 0, log = 0, records = 0;
	std::uint64_t next = rep.head_seq;
	std::vector<std::uint32_t> naming(img.geo.buffer_count, 0);
	for (const auto& g : o.entries) {
		const auto t = static_cast<std::uint8_t>(g.type);
		FUZZ_CHECK_MSG(t >= 1 && t <= 6, "replayed type " + std::to_string(t));
		FUZZ_CHECK(slice_ok(img, g.key));
		if (g.type == RecordType::kv_flushall)
			FUZZ_CHECK(g.key.len == 0);
		if (g.type == RecordType::kv_del || g.type == RecordType::kv_flushall)
			FUZZ_CHECK(g.value.empty() && g.aux == 0);
		if (g.type == RecordType::stream_trim)
			FUZZ_CHECK(g.value.empty() && g.aux < daxnet::pmem::kWalSeqLimit);
		for (const auto& s : g.value)
			FUZZ_CHECK(s.len > 0 && slice_ok(img, s));
		if (g.key.len)
			naming[g.key.buf]++;
		for (const auto& s : g.value)
			naming[s.buf]++;
		if (g.seq == 0) {
			FUZZ_CHECK_MSG(log == 0, "checkpoint entry replayed after log entries");
			++ckpt;
		} else {
			FUZZ_CHECK_MSG(g.seq == next, "log entry at seq " + std::to_string(g.seq) + ", expected " +
							      std::to_string(next));
			const std::uint32_t n = wal_records_for(g.value.size());
			next += n;
			records += n;
			++log;
		}
	}
	FUZZ_CHECK(rep.ckpt_entries == ckpt + rep.ckpt_dropped_entries);
	FUZZ_CHECK(rep.log_entries == log && rep.log_records == records);
	FUZZ_CHECK_MSG(rep.next_seq == next, "report next_seq " + std::to_string(rep.next_seq) + " vs " +
						     std::to_string(next));
	FUZZ_CHECK(w.head_seq() == rep.head_seq && w.next_seq() == rep.next_seq);
	FUZZ_CHECK(w.used() == records);
	FUZZ_CHECK(w.used() <= w.nslots());
	FUZZ_CHECK(alloc.check());
	const bool exact = rep.quarantined.empty() && rep.ckpt_dropped_entries == 0;
	for (std::uint32_t b = 0; b < img.geo.buffer_count; ++b) {
		if (exact)
			FUZZ_CHECK_MSG(alloc.refcount(b) == naming[b], "buffer " + std::to_string(b) + " refcount " +
									 std::to_string(alloc.refcount(b)) + ", " +
									 std::to_string(naming[b]) + " slices name it");
		else
			FUZZ_CHECK(alloc.refcount(b) >= naming[b]);
	}
	for (auto q : rep.quarantined)
		FUZZ_CHECK(q < img.geo.buffer_count && !alloc.is_free(q));
}

// ---- the KV model ------------------------------------------------------------

struct Model {
	std::map<std::string, std::pair<std::string, std::uint64_t>> kv;  // key -> value, expiry
	struct Stream {
		std::uint64_t first = 0;
		std::vector<std::string> bodies;  ///< positions first, first + 1, ...
	};
	std::map<std::string, Stream> streams;
};

Model model_of(const Image& img, const std::vector<Got>& entries)
{
	Model m;
	for (const auto& g : entries) {
		switch (g.type) {
		case RecordType::kv_set:
		case RecordType::kv_set_typed:
			m.kv[str(img, g.key)] = {value_str(img, g.value), g.aux};
			break;
		case RecordType::kv_del:
			m.kv.erase(str(img, g.key));
			break;
		case RecordType::kv_flushall:
			m.kv.clear();
			break;
		case RecordType::stream_append:
			m.streams[str(img, g.key)].bodies.push_back(value_str(img, g.value));
			break;
		case RecordType::stream_trim: {
			// docs/wal-format.md §Record, streams
			auto& st = m.streams[str(img, g.key)];
			const std::uint64_t drop = std::min<std::uint64_t>(g.aux > st.first ? g.aux - st.first : 0,
									   st.bodies.size());
			st.bodies.erase(st.bodies.begin(), st.bodies.begin() + static_cast<std::ptrdiff_t>(drop));
			st.first = std::max(st.first, g.aux);
			break;
		}
		case RecordType::cont:
			break;
		}
	}
	std::erase_if(m.kv, [](const auto& p) { return p.second.second && p.second.second <= kNow; });
	return m;
}

void check_kv(const Image& img, KvStore& kv, const Model& m)
{
	FUZZ_CHECK_MSG(kv.dbsize() == m.kv.size(),
		       "index holds " + std::to_string(kv.dbsize()) + " keys, model " + std::to_string(m.kv.size()));
	for (const auto& [k, v] : m.kv) {
		ValueRef ref;
		FUZZ_CHECK_MSG(kv.get(k, ref) == 1, "key missing from the index");
		FUZZ_CHECK(value_str(img, ref.slices) == v.first && ref.size == v.first.size());
		FUZZ_CHECK(ref.expiry_ns == v.second);
	}
	std::size_t nstreams = 0;
	std::string names;
	kv.for_each_stream([&](std::string_view n, std::uint64_t len) {
		++nstreams;
		names += " '" + std::string(n) + "':" + std::to_string(len);
	});
	std::string mnames;
	for (const auto& [n, st] : m.streams)
		mnames += " '" + n + "':" + std::to_string(st.first + st.bodies.size());
	FUZZ_CHECK_MSG(nstreams == m.streams.size(), "streams in the index:" + names + "; in the model:" + mnames);
	for (const auto& [name, st] : m.streams) {
		const auto& bodies = st.bodies;
		FUZZ_CHECK(kv.stream_exists(name));
		FUZZ_CHECK(kv.stream_first(name) == st.first);
		FUZZ_CHECK(kv.stream_length(name) == st.first + bodies.size());
		std::vector<StreamEntryRef> got(bodies.size());
		FUZZ_CHECK(kv.stream_read(name, 0, got) == bodies.size());
		for (std::size_t i = 0; i < bodies.size(); ++i)
			FUZZ_CHECK(value_str(img, got[i].body.slices) == bodies[i] && got[i].index == st.first + i);
	}
}

}  // namespace

DAXNET_FUZZ_TARGET(wal_recovery)
{
	static Image img;
	img.reset();
	FuzzInput in(data, size);
	const std::uint8_t mode = in.u8();
	WalOptions opt;
	opt.allow_truncate = (mode & 1) != 0;
	opt.read_only = (mode & 2) != 0;
	Ctx ctx;
	run_program(img, in, ctx);

	const std::vector<std::byte> before(img.mem, img.mem + img.meta_bytes());
	auto unchanged = [&] { return std::memcmp(before.data(), img.mem, before.size()) == 0; };

	BufferAllocator alloc;
	Opened first;
	auto w = open_wal(img, alloc, opt, first);
	static const bool verbose = std::getenv("DAXNET_FUZZ_VERBOSE") != nullptr;
	if (verbose) {
		const auto& rep = first.report;
		std::fprintf(stderr, "open: %s; head %llu next %llu ckpt %llu+%llu log %llu stop '%s' (%s) dropped %llu\n",
			     w ? "ok" : w.error().message.c_str(), static_cast<unsigned long long>(rep.head_seq),
			     static_cast<unsigned long long>(rep.next_seq), static_cast<unsigned long long>(rep.ckpt_entries),
			     static_cast<unsigned long long>(rep.ckpt_dropped_entries),
			     static_cast<unsigned long long>(rep.log_entries), std::string(to_string(rep.stop)).c_str(),
			     rep.stop_reason.c_str(), static_cast<unsigned long long>(rep.dropped_records));
		std::fprintf(stderr, "  epoch after open %u, highest record epoch %u\n", w ? w->epoch() : 0,
			     highest_record_epoch(img));
		for (const auto& g : first.entries)
			std::fprintf(stderr, "  seq %llu %s aux %llu key '%s' value '%s'\n",
				     static_cast<unsigned long long>(g.seq), std::string(to_string(g.type)).c_str(),
				     static_cast<unsigned long long>(g.aux), str(img, g.key).c_str(),
				     value_str(img, g.value).c_str());
	}
	if (!w) {
		FUZZ_CHECK_MSG(w.error().code == EIO || w.error().code == EINVAL, w.error().message);
		FUZZ_CHECK_MSG(unchanged(), "failed recovery wrote to the pool");
		// The KV store refuses the same image.
		BufferAllocator a2;
		KvOptions ko;
		ko.wal = opt;
		ko.clock = fixed_clock;
		FUZZ_CHECK(!KvStore::open(img.view, a2, ko).ok());
		FUZZ_CHECK(unchanged());
		return 0;
	}
	check_entries(img, first, *w, alloc);
	if (!opt.read_only) {
		// §Recovery step 6: a writable recovery that replayed a trim leaves
		// the TRIM flag in the state it wrote (older readers must refuse).
		const bool trims = std::any_of(first.entries.begin(), first.entries.end(),
					       [](const Got& g) { return g.type == RecordType::stream_trim; });
		const auto* a = daxnet::pmem::wal_state_slot(img.view, 0);
		const auto* b = daxnet::pmem::wal_state_slot(img.view, 1);
		const bool va = daxnet::pmem::log_state_valid(*a, img.seed, img.nslots);
		const bool vb = daxnet::pmem::log_state_valid(*b, img.seed, img.nslots);
		FUZZ_CHECK(va || vb);
		const auto* cur = va && (!vb || a->generation > b->generation) ? a : b;
		if (trims)
			FUZZ_CHECK_MSG(cur->flags & daxnet::pmem::kStateFlagTrim, "replayed a trim, state lacks TRIM");
	}
	if (opt.read_only) {
		FUZZ_CHECK_MSG(unchanged(), "read-only recovery wrote to the pool");
		FUZZ_CHECK(w->append(Entry{}, nullptr) == -EROFS);
	}
	const Model model = model_of(img, first.entries);

	// The KV store over the same (restored) image agrees with the model.
	{
		std::vector<std::byte> now(img.mem, img.mem + img.meta_bytes());
		std::memcpy(img.mem, before.data(), before.size());
		BufferAllocator a2;
		KvOptions ko;
		ko.wal = opt;
		ko.clock = fixed_clock;
		auto kv = KvStore::open(img.view, a2, ko);
		FUZZ_CHECK_MSG(kv.ok(), "KvStore::open refuses what Wal::open accepted: " +
						(kv ? std::string() : kv.error().message));
		check_kv(img, **kv, model);
		if (!opt.read_only) {
			// A checkpoint of the recovered state round-trips.
			const int rc = (*kv)->checkpoint();
			FUZZ_CHECK_MSG(rc == 0 || rc == -ENOSPC, std::to_string(rc));
			kv->reset();
			BufferAllocator a3;
			KvOptions k3;
			k3.clock = fixed_clock;
			auto again = KvStore::open(img.view, a3, k3);
			FUZZ_CHECK_MSG(again.ok(), "reopening after a checkpoint failed: " +
							   (again ? std::string() : again.error().message));
			check_kv(img, **again, model);
		}
		std::memcpy(img.mem, now.data(), now.size());
	}
	if (opt.read_only)
		return 0;

	// Idempotent: the recovered image opens again, without allow_truncate,
	// to the same entries.
	Opened second;
	BufferAllocator alloc2;
	auto w2 = open_wal(img, alloc2, WalOptions{}, second);
	FUZZ_CHECK_MSG(w2.ok(), "second recovery failed: " + (w2 ? std::string() : w2.error().message));
	FUZZ_CHECK_MSG(second.entries == first.entries, "second recovery replays " +
								std::to_string(second.entries.size()) + " entries, first " +
								std::to_string(first.entries.size()));
	check_entries(img, second, *w2, alloc2);

	// Append one entry after recovery: it and nothing else joins the log.
	const std::int64_t b = alloc2.alloc();
	if (b < 0)
		return 0;
	const auto buf = static_cast<std::uint32_t>(b);
	if (buf >= kHotBuffers)
		img.dirty_buffer = buf;
	std::memcpy(img.view.buffer(buf), "knew-value", 10);
	const Slice key{buf, 0, 4}, val{buf, 4, 6};
	Entry e;
	e.type = RecordType::kv_set;
	e.key = key;
	e.value = std::span<const Slice>(&val, 1);
	std::uint64_t seq = 0;
	const int rc = w2->append(e, &seq);
	if (rc == -ENOSPC)
		return 0;
	FUZZ_CHECK_MSG(rc == 0, std::to_string(rc));
	FUZZ_CHECK(seq == second.report.next_seq);
	FUZZ_CHECK(w2->commit() == 1);
	alloc2.unref(buf);

	Opened third;
	BufferAllocator alloc3;
	auto w3 = open_wal(img, alloc3, WalOptions{}, third);
	FUZZ_CHECK_MSG(w3.ok(), "recovery after an append failed: " + (w3 ? std::string() : w3.error().message));
	std::vector<Got> want = first.entries;
	want.push_back(Got{RecordType::kv_set, 0, key, {val}, seq});
	FUZZ_CHECK_MSG(third.entries == want, "after one append recovery replays " +
							std::to_string(third.entries.size()) + " entries, expected " +
							std::to_string(want.size()));
	check_entries(img, third, *w3, alloc3);
	return 0;
}
