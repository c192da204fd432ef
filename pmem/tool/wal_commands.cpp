// SPDX-License-Identifier: BSD-2-Clause
//
// daxnet-pool subcommands for the WAL and KV layers (docs/wal-format.md
// §Tools):
//   daxnet-pool check FILE    (via daxnet_pool_check_layers) recovers the log
//                             and index read-only and checks references
//   daxnet-pool dump FILE [--checkpoint] [--from SEQ] [--count N] [--ring]
//
// Both map the file privately and read-only: they never write to the pool.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "daxnet/pmem/crc32c.h"
#include "daxnet/pmem/kv.h"
#include "daxnet/pmem/pool.h"
#include "daxnet/pmem/wal.h"
#include "pool_tool.h"

using namespace daxnet;
using namespace daxnet::pmem;

namespace {

/// Flush/drain that do nothing: the mapping is read-only.
class ReadOnlyDomain final : public PersistDomain {
public:
	Granularity granularity() const noexcept override { return Granularity::byte; }
	void flush(const void*, std::size_t) noexcept override {}
	void drain() noexcept override {}
	using PersistDomain::flush;
};

/// A private, read-only mapping of a pool file.
class ReadOnlyPool {
public:
	static Result<std::unique_ptr<ReadOnlyPool>> open(const std::string& path)
	{
		auto info = inspect_pool(path);
		if (!info)
			return info.error();
		const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return make_error(errno, path + ": " + std::strerror(errno));
		// Device DAX refuses private mappings and maps only whole
		// alignment units: map all of it, shared (read-only all the same).
		struct stat st {};
		const bool device = ::fstat(fd, &st) == 0 && S_ISCHR(st.st_mode);
		const std::uint64_t size = device ? info->file_size : info->geometry.pool_size;
		void* p = ::mmap(nullptr, size, PROT_READ, device ? MAP_SHARED : MAP_PRIVATE, fd, 0);
		const int err = errno;
		::close(fd);
		if (p == MAP_FAILED)
			return make_error(err, path + ": mmap: " + std::strerror(err));
		auto rp = std::unique_ptr<ReadOnlyPool>(new ReadOnlyPool);
		rp->base_ = p;
		rp->size_ = size;
		rp->view_ = PoolView(static_cast<std::byte*>(p), info->geometry, &rp->domain_);
		return rp;
	}
	~ReadOnlyPool()
	{
		if (base_)
			::munmap(base_, size_);
	}
	ReadOnlyPool(const ReadOnlyPool&) = delete;
	ReadOnlyPool& operator=(const ReadOnlyPool&) = delete;
	const PoolView& view() const noexcept { return view_; }

private:
	ReadOnlyPool() = default;
	void* base_ = nullptr;
	std::uint64_t size_ = 0;
	ReadOnlyDomain domain_;
	PoolView view_{};
};

std::string slice_text(const WalSlice& s)
{
	if (s.len == 0)
		return "-";
	return fmt::format("{}+{}:{}", s.buf, s.off, s.len);
}

std::string state_text(const LogState& s, bool valid)
{
	if (!valid)
		return "invalid";
	return fmt::format("generation {} head {} epoch {} (from seq {}) ckpt_gen {} half {}", s.generation,
			   s.head_seq, s.epoch, s.epoch_seq, s.ckpt_gen, s.ckpt_half);
}

void print_record(const PoolView& pool, const WalRecord& r, std::uint32_t seed, const char* where)
{
	const bool crc_ok = r.crc == wal_record_crc(r, seed);
	bool payload_ok = true;
	for (const auto& s : r.s)
		if (s.len && (!pool.valid_buffer(s.buf) || s.off > pool.buffer_size() ||
			      s.len > pool.buffer_size() - s.off ||
			      crc32c(pool.buffer(s.buf) + s.off, s.len) != s.crc))
			payload_ok = false;
	fmt::print("{} seq {:>8} {:<13} {} count {:>3} nslices {:>3} epoch {:>3} aux {:>20} s0 {:<18} s1 {:<18} "
		   "crc {} payload {}\n",
		   where, r.seq, to_string(static_cast<RecordType>(r.type)),
		   (r.flags & kRecBatchEnd) ? "E" : ".", r.count, r.nslices, r.epoch, r.aux, slice_text(r.s[0]),
		   slice_text(r.s[1]), crc_ok ? "ok" : "BAD", payload_ok ? "ok" : "BAD");
}

int cmd_dump(const std::string& path, bool ckpt, std::uint64_t from, std::uint64_t count, bool ring)
{
	auto rp = ReadOnlyPool::open(path);
	if (!rp) {
		std::fprintf(stderr, "daxnet-pool: %s\n", rp.error().message.c_str());
		return 1;
	}
	const PoolView& pool = (*rp)->view();
	const std::uint64_t n = wal_nslots(pool.geometry().wal_size);
	const std::uint32_t seed = wal_pool_seed(pool);
	const LogState* a = wal_state_slot(pool, 0);
	const LogState* b = wal_state_slot(pool, 1);
	const bool va = log_state_valid(*a, seed, n), vb = log_state_valid(*b, seed, n);
	fmt::print("log state A: {}\n", state_text(*a, va));
	fmt::print("log state B: {}\n", state_text(*b, vb));
	fmt::print("ring: {} slots of 64 bytes\n", n);
	const LogState* cur = va && (!vb || a->generation >= b->generation) ? a : vb ? b : nullptr;

	if (ckpt) {
		if (!cur || cur->ckpt_gen == 0) {
			fmt::print("no active checkpoint\n");
			return 0;
		}
		const auto* h = reinterpret_cast<const CkptHeader*>(ckpt_half_base(pool, cur->ckpt_half));
		const bool hv = ckpt_header_valid(*h, seed);
		fmt::print("checkpoint half {}: header {} gen {} covers_seq {} records {} entries {}\n", cur->ckpt_half,
			   hv ? "ok" : "BAD", h->ckpt_gen, h->covers_seq, h->nrecords, h->nentries);
		if (!hv)
			return 1;
		const auto* recs = reinterpret_cast<const WalRecord*>(ckpt_half_base(pool, cur->ckpt_half) + 4096);
		const std::uint32_t cseed = wal_ckpt_seed(seed, h->ckpt_gen);
		const std::uint64_t cap = ckpt_half_capacity(pool);
		const std::uint64_t nrec = std::min(h->nrecords, cap);
		for (std::uint64_t i = from ? from - 1 : 0, k = 0; i < nrec && (!count || k < count); i++, k++)
			print_record(pool, recs[i], cseed, "ckpt");
		return 0;
	}
	if (ring) {
		for (std::uint64_t i = 0; i < n && (!count || i < count); i++) {
			const auto* r = reinterpret_cast<const WalRecord*>(pool.wal_area().data() + 4096 + i * 64);
			print_record(pool, *r, seed, fmt::format("slot {:>6}", i).c_str());
		}
		return 0;
	}
	std::uint64_t seq = from ? from : cur ? cur->head_seq : 1;
	for (std::uint64_t k = 0; !count || k < count; k++, seq++) {
		const auto* r = reinterpret_cast<const WalRecord*>(pool.wal_area().data() + 4096 + (seq % n) * 64);
		if (r->seq != seq) {
			fmt::print("end: slot of seq {} holds seq {}\n", seq, r->seq);
			break;
		}
		print_record(pool, *r, seed, "log");
	}
	return 0;
}

}  // namespace

int daxnet_pool_check_layers(const std::string& path, bool verbose)
{
	auto rp = ReadOnlyPool::open(path);
	if (!rp) {
		std::fprintf(stderr, "daxnet-pool: %s\n", rp.error().message.c_str());
		return 1;
	}
	const PoolView& pool = (*rp)->view();
	BufferAllocator alloc;
	RecoveryReport rep;
	KvOptions opt;
	opt.wal.read_only = true;
	opt.wal.allow_truncate = true;  // report everything instead of stopping at the first error
	auto kv = KvStore::open(pool, alloc, opt, &rep);
	int rc = 0;
	auto problem = [&](const std::string& s) {
		fmt::print("{}: PROBLEM: {}\n", path, s);
		rc = 1;
	};
	if (!kv) {
		problem(kv.error().message);
		return rc;
	}
	fmt::print("{}: WAL state generation {} epoch {}, head {}, next {}{}\n", path, rep.state_generation, rep.epoch,
		   rep.head_seq, rep.next_seq, rep.fresh ? " (fresh)" : "");
	if (rep.ckpt_gen)
		fmt::print("{}: checkpoint {} (half {}): {} entries, {} records\n", path, rep.ckpt_gen, rep.ckpt_half,
			   rep.ckpt_entries, rep.ckpt_records);
	fmt::print("{}: log: {} entries, {} records; end: {}{}{}\n", path, rep.log_entries, rep.log_records,
		   to_string(rep.stop), rep.stop_reason.empty() ? "" : " at ", rep.stop_reason);
	if (rep.stop == RecoveryReport::Stop::torn_tail)
		fmt::print("{}: torn tail of an uncommitted batch: {} record(s) would be dropped (normal after a crash)\n",
			   path, rep.dropped_records);
	if (rep.stop == RecoveryReport::Stop::corruption)
		problem(fmt::format("committed records from seq {} on are unreadable ({} valid-looking records beyond); "
				    "a server refuses to open this pool",
				    rep.next_seq, rep.dropped_records));
	if (rep.ckpt_dropped_entries)
		problem(fmt::format("{} checkpoint entries have bad payloads", rep.ckpt_dropped_entries));
	for (const auto& p : rep.problems)
		if (verbose)
			fmt::print("{}: note: {}\n", path, p);

	// Index consistency: every slice is inside a referenced buffer.
	std::uint64_t keys = 0, streams = 0, stream_entries = 0, bad = 0;
	auto check_slices = [&](std::span<const Slice> slices) {
		for (const auto& s : slices)
			if (!pool.valid_buffer(s.buf) || s.off + s.len > pool.buffer_size() || alloc.refcount(s.buf) == 0)
				bad++;
	};
	(*kv)->for_each([&](std::string_view, const ValueRef& v) {
		keys++;
		check_slices(v.slices);
	});
	(*kv)->for_each_stream([&](std::string_view name, std::uint64_t len) {
		streams++;
		const std::uint64_t first = (*kv)->stream_first(name);
		stream_entries += len - first;
		std::vector<StreamEntryRef> ents(64);
		for (std::uint64_t from = first; from < len;) {
			const std::size_t got = (*kv)->stream_read(name, from, ents);
			for (std::size_t i = 0; i < got; i++)
				check_slices(ents[i].body.slices);
			from = got ? ents[got - 1].index + 1 : len;
		}
	});
	if (bad)
		problem(fmt::format("{} index slices point outside referenced buffers", bad));
	if (!alloc.check())
		problem("buffer free list does not match the reference counts");
	fmt::print("{}: index: {} keys, {} streams ({} entries); buffers: {} referenced, {} free, {} quarantined\n",
		   path, keys, streams, stream_entries, alloc.count() - alloc.free_count(), alloc.free_count(),
		   rep.quarantined.size());
	return rc;
}

void daxnet_pool_register_commands(CLI::App& app, int& rc)
{
	struct DumpArgs {
		std::string path;
		bool ckpt = false;
		bool ring = false;
		std::uint64_t from = 0;
		std::uint64_t count = 0;
	};
	static DumpArgs d;
	auto* dump = app.add_subcommand("dump", "print WAL (or checkpoint) records, one per line");
	dump->add_option("FILE", d.path, "pool file")->required();
	dump->add_flag("--checkpoint", d.ckpt, "print the active checkpoint instead of the log");
	dump->add_flag("--ring", d.ring, "print every ring slot in slot order, valid or not");
	dump->add_option("--from", d.from, "first seq (log) or record number (checkpoint)");
	dump->add_option("--count", d.count, "print at most this many records");
	dump->callback([&rc] { rc = cmd_dump(d.path, d.ckpt, d.from, d.count, d.ring); });
}
