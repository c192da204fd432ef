// SPDX-License-Identifier: BSD-2-Clause
//
// Pool file: create, validate, open through libpmem2. Implements
// docs/pool-format.md; section names below refer to it.
#include "daxnet/pmem/pool.h"

#include <fcntl.h>
#include <libpmem2.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "daxnet/fd.h"
#include "daxnet/pmem/crc32c.h"

#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif

namespace daxnet::pmem {

using daxnet::UniqueFd;

std::string_view to_string(Granularity g) noexcept
{
	switch (g) {
	case Granularity::byte:
		return "BYTE";
	case Granularity::cache_line:
		return "CACHE_LINE";
	case Granularity::page:
		return "PAGE";
	}
	return "?";
}

std::string human_bytes(std::uint64_t n)
{
	static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = static_cast<double>(n);
	int u = 0;
	while (v >= 1024.0 && u < 4) {
		v /= 1024.0;
		u++;
	}
	char out[32];
	if (u == 0)
		std::snprintf(out, sizeof out, "%llu B", static_cast<unsigned long long>(n));
	else if (v == static_cast<double>(static_cast<std::uint64_t>(v)))
		std::snprintf(out, sizeof out, "%.0f %s", v, units[u]);  // "32 MiB"
	else
		std::snprintf(out, sizeof out, "%.1f %s", v, units[u]);
	return out;
}

namespace {

constexpr std::uint64_t kMinArea = 64u << 10;
constexpr std::uint64_t kMaxWal = 256ull << 20;
/// docs/pool-format.md §Geometry defaults: each checkpoint half holds one
/// 64-byte record per this many bytes of buffer area (16 per 4 KiB buffer),
/// so the live entries a pool can hold follow its bytes down to entries of
/// about this size (docs/wal-format.md §Capacity).
constexpr std::uint64_t kBytesPerCkptRecord = 256;
constexpr std::uint64_t kCkptHeader = 4096;  ///< wal-format.md §Checkpoint area
constexpr std::uint32_t kMinBuffers = 16;
constexpr std::size_t kChecksummed = offsetof(Superblock, checksum);

std::uint64_t round_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

std::string errno_text(int err) { return std::strerror(err); }

/// True when a MAP_SHARED_VALIDATE|MAP_SYNC mapping of `fd` succeeds; the
/// probe maps one page read-only and never writes.
bool probe_map_sync(int fd, int* err) noexcept
{
	void* p = ::mmap(nullptr, 4096, PROT_READ, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);
	if (p == MAP_FAILED) {
		if (err)
			*err = errno;
		return false;
	}
	::munmap(p, 4096);
	return true;
}

/// The pid holding a flock on (dev, ino), from /proc/locks; -1 if unknown.
long lock_holder(const struct stat& st)
{
	std::ifstream in("/proc/locks");
	std::string line;
	while (std::getline(in, line)) {
		// "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"
		std::istringstream ls(line);
		std::string n, kind, adv, mode, devino;
		long pid = -1;
		if (!(ls >> n >> kind >> adv >> mode >> pid >> devino))
			continue;
		if (kind != "FLOCK")
			continue;
		unsigned maj = 0, min = 0;
		unsigned long long ino = 0;
		if (std::sscanf(devino.c_str(), "%x:%x:%llu", &maj, &min, &ino) != 3)
			continue;
		if (ino == st.st_ino && maj == major(st.st_dev) && min == minor(st.st_dev))
			return pid;
	}
	return -1;
}

Error pool_error(const std::string& path, int code, const std::string& what)
{
	return make_error(code, path + ": " + what);
}

std::string pmem2_text(int ret)
{
	const char* msg = pmem2_errormsg();
	std::string s = (msg && *msg) ? msg : "libpmem2 error";
	if (ret < 0 && ret > -4096)
		s += " (" + errno_text(-ret) + ")";
	return s;
}

/// A device-DAX character device (/dev/daxX.Y, §Device DAX): it has no
/// file size and no read()/write(); libpmem2 gives its size and the
/// alignment every mapping of it must respect.
struct DevDax {
	std::uint64_t size = 0;
	std::uint64_t align = 0;
};

Result<DevDax> devdax_geometry(int fd, const std::string& path)
{
	pmem2_source* src = nullptr;
	int ret = pmem2_source_from_fd(&src, fd);
	if (ret != 0)
		return pool_error(path, EINVAL,
				  "a character device that is not device DAX (/dev/daxX.Y): " + pmem2_text(ret));
	std::size_t size = 0, align = 0;
	ret = pmem2_source_size(src, &size);
	if (ret == 0)
		ret = pmem2_source_alignment(src, &align);
	pmem2_source_delete(&src);
	if (ret != 0)
		return pool_error(path, ret < 0 && ret > -4096 ? -ret : EIO,
				  "cannot read the device-DAX size: " + pmem2_text(ret));
	if (size == 0 || align == 0 || size % align != 0)
		return pool_error(path, EINVAL,
				  "device-DAX size " + std::to_string(size) + " is not a multiple of its alignment " +
					  std::to_string(align));
	return DevDax{size, align};
}

/// Reads the superblock bytes: pread for a file; device DAX has no read(),
/// so through a read-only shared mapping of its first alignment unit.
int read_head(int fd, const DevDax* dd, Superblock& sb) noexcept
{
	if (!dd) {
		ssize_t n = ::pread(fd, &sb, sizeof(sb), 0);
		return n == static_cast<ssize_t>(sizeof(sb)) ? 0 : n < 0 ? errno : EIO;
	}
	void* p = ::mmap(nullptr, dd->align, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return errno;
	std::memcpy(&sb, p, sizeof(sb));
	::munmap(p, dd->align);
	return 0;
}

/// Reads and validates the superblock of an open pool file or device-DAX
/// device (§Validation); `file_size` is the device's size for device DAX.
Result<Geometry> read_superblock(int fd, const std::string& path, Superblock& sb, std::uint64_t& file_size)
{
	struct stat st {};
	if (::fstat(fd, &st) != 0)
		return pool_error(path, errno, "cannot stat: " + errno_text(errno));
	if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode))
		return pool_error(path, EINVAL, "not a regular file or device-DAX device");
	DevDax dd;
	if (S_ISCHR(st.st_mode)) {
		auto d = devdax_geometry(fd, path);
		if (!d)
			return d.error();
		dd = *d;
		file_size = dd.size;
	} else {
		file_size = static_cast<std::uint64_t>(st.st_size);
	}
	if (file_size < kSuperblockSize)
		return pool_error(path, EINVAL,
				  "truncated: " + std::to_string(file_size) + " bytes, a pool needs at least 4096");
	if (int err = read_head(fd, S_ISCHR(st.st_mode) ? &dd : nullptr, sb); err != 0)
		return pool_error(path, EIO, "cannot read superblock: " + errno_text(err));
	auto g = parse_superblock(sb, file_size);
	if (!g)
		return pool_error(path, g.error().code, g.error().message);
	return g;
}

Uuid random_uuid()
{
	std::random_device rd;
	Uuid u{};
	for (std::size_t i = 0; i < u.size(); i += 4) {
		std::uint32_t r = rd();
		std::memcpy(&u[i], &r, 4);
	}
	u[6] = static_cast<std::uint8_t>((u[6] & 0x0f) | 0x40);  // version 4
	u[8] = static_cast<std::uint8_t>((u[8] & 0x3f) | 0x80);  // RFC 4122 variant
	return u;
}

/// libpmem2-backed persistence domain (docs/pool-format.md §Persistence).
/// CACHE_LINE/BYTE: libpmem2's flush/drain. PAGE: flush only widens the
/// batch's dirty span; drain msyncs that span once. With a flusher
/// (start_flusher(), PAGE only) drain_begin() hands the span to the flusher
/// thread and returns; the loop keeps running while it msyncs (§Persistence,
/// pipelined drain). One drain in flight at a time.
class Pmem2Domain final : public PersistDomain {
public:
	Pmem2Domain(pmem2_map* map, Granularity g) noexcept
	    : gran_(g), flush_fn_(pmem2_get_flush_fn(map)), drain_fn_(pmem2_get_drain_fn(map)),
	      persist_fn_(pmem2_get_persist_fn(map))
	{
	}
	~Pmem2Domain() override { stop_flusher(); }

	Granularity granularity() const noexcept override { return gran_; }

	void flush(const void* p, std::size_t n) noexcept override
	{
		if (n == 0)
			return;
		counters_.flush_calls++;
		counters_.flushed_bytes += n;
		if (gran_ != Granularity::page) {
			flush_fn_(p, n);
			return;
		}
		auto a = reinterpret_cast<std::uintptr_t>(p) & ~std::uintptr_t{4095};
		auto e = (reinterpret_cast<std::uintptr_t>(p) + n + 4095) & ~std::uintptr_t{4095};
		lo_ = std::min(lo_, a);
		hi_ = std::max(hi_, e);
	}

	void drain() noexcept override
	{
		counters_.drains++;
		if (gran_ != Granularity::page) {
			drain_fn_();
			return;
		}
		drain_wait_all();  // ranges flushed earlier are durable first
		if (lo_ >= hi_)
			return;
		// One msync spanning the batch. On Linux msync(MS_SYNC) is an fsync
		// of the range (a journal commit on ext4) that writes back only the
		// dirty pages inside it, so one call over [lowest, highest) costs
		// one commit where a call per disjoint range cost one each.
		persist_fn_(reinterpret_cast<const void*>(lo_), hi_ - lo_);
		counters_.msyncs++;
		lo_ = UINTPTR_MAX;
		hi_ = 0;
	}

	std::uint64_t drain_begin() noexcept override
	{
		if (!thread_.joinable())
			return PersistDomain::drain_begin();
		counters_.drains++;
		counters_.drain_begins++;
		drain_wait_all();  // one in flight: drains complete in order
		const std::uint64_t t = ++submitted_;
		if (lo_ >= hi_) {
			durable_ticket_.store(t, std::memory_order_release);  // nothing to write back
			return t;
		}
		{
			std::lock_guard lk(mu_);
			job_lo_ = lo_;
			job_hi_ = hi_;
			job_ticket_ = t;
		}
		cv_.notify_one();
		counters_.msyncs++;
		lo_ = UINTPTR_MAX;
		hi_ = 0;
		return t;
	}

	void drain_wait(std::uint64_t ticket) noexcept override
	{
		if (durable_ticket() >= ticket)
			return;
		counters_.drain_waits++;
		std::unique_lock lk(mu_);
		done_cv_.wait(lk, [&] { return durable_ticket() >= std::min(ticket, submitted_); });
	}

	int completion_fd() const noexcept override { return efd_.get(); }

	int start_flusher(std::function<void(std::uint64_t)> hook)
	{
		if (gran_ != Granularity::page)
			return -EOPNOTSUPP;
		if (thread_.joinable())
			return -EALREADY;
		efd_ = UniqueFd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
		if (efd_.get() < 0)
			return -errno;
		hook_ = std::move(hook);
		try {
			thread_ = std::thread([this] { run(); });
		} catch (const std::system_error& e) {
			efd_ = UniqueFd();
			return -e.code().value();
		}
		return 0;
	}

private:
	void run() noexcept
	{
		std::unique_lock lk(mu_);
		for (;;) {
			cv_.wait(lk, [&] { return stop_ || job_ticket_ != 0; });
			if (job_ticket_ == 0)
				return;  // stopping, nothing in flight
			const std::uintptr_t lo = job_lo_, hi = job_hi_;
			const std::uint64_t t = job_ticket_;
			lk.unlock();
			if (hook_)
				hook_(t);  // tests: hold the flush in flight
			persist_fn_(reinterpret_cast<const void*>(lo), hi - lo);
			lk.lock();
			job_ticket_ = 0;
			durable_ticket_.store(t, std::memory_order_release);
			done_cv_.notify_all();
			const std::uint64_t one = 1;
			[[maybe_unused]] auto w = ::write(efd_.get(), &one, sizeof(one));
		}
	}

	void stop_flusher() noexcept
	{
		if (!thread_.joinable())
			return;
		{
			std::lock_guard lk(mu_);
			stop_ = true;
		}
		cv_.notify_one();
		thread_.join();  // completes a drain in flight first
	}

	Granularity gran_;
	pmem2_flush_fn flush_fn_;
	pmem2_drain_fn drain_fn_;
	pmem2_persist_fn persist_fn_;
	std::uintptr_t lo_ = UINTPTR_MAX;  ///< dirty span of the batch (PAGE)
	std::uintptr_t hi_ = 0;
	// The flusher (start_flusher()): one job at a time, under mu_.
	std::thread thread_;
	std::mutex mu_;
	std::condition_variable cv_;       ///< a job or stop_
	std::condition_variable done_cv_;  ///< a job completed
	std::uintptr_t job_lo_ = 0;
	std::uintptr_t job_hi_ = 0;
	std::uint64_t job_ticket_ = 0;  ///< 0: no job
	bool stop_ = false;
	UniqueFd efd_;
	std::function<void(std::uint64_t)> hook_;
};

Granularity from_pmem2(pmem2_granularity g)
{
	switch (g) {
	case PMEM2_GRANULARITY_BYTE:
		return Granularity::byte;
	case PMEM2_GRANULARITY_CACHE_LINE:
		return Granularity::cache_line;
	case PMEM2_GRANULARITY_PAGE:
		break;
	}
	return Granularity::page;
}

}  // namespace

Result<Geometry> plan_geometry(std::uint64_t pool_size, std::uint32_t buffer_size, std::uint64_t wal_size,
			       std::uint64_t ckpt_size)
{
	if (buffer_size != 2048 && buffer_size != 4096)
		return make_error(EINVAL, "buffer size must be 2048 or 4096, not " + std::to_string(buffer_size));
	if (pool_size < kMinPoolSize)
		return make_error(EINVAL, "pool size " + std::to_string(pool_size) +
						  " is below the minimum of 1 MiB");
	Geometry g;
	g.pool_size = pool_size;
	g.buffer_size = buffer_size;
	// Explicit sizes larger than the pool can never fit; refusing them here
	// also keeps the rounding and the sums below from overflowing.
	if (wal_size > pool_size || ckpt_size > pool_size || wal_size > UINT64_MAX - kAreaAlign ||
	    ckpt_size > UINT64_MAX - kAreaAlign)
		return make_error(EINVAL, "WAL or checkpoint area larger than the pool");
	g.wal_size = round_up(wal_size ? wal_size : std::clamp(pool_size / 16, kMinArea, kMaxWal), kAreaAlign);
	if (ckpt_size == 0) {
		// Buffer bytes X and two halves of (header page + X / 256 records
		// of 64 bytes) share what the WAL leaves: X + 2 * 4096 + X / 2.
		const std::uint64_t rest = pool_size - std::min(pool_size, kSuperblockSize + g.wal_size + 2 * kCkptHeader);
		const std::uint64_t x = rest / 3 * 2;
		const std::uint64_t half =
			round_up(kCkptHeader + (x + kBytesPerCkptRecord - 1) / kBytesPerCkptRecord * 64, kAreaAlign);
		ckpt_size = std::max(kMinArea, 2 * half);
	}
	g.ckpt_size = round_up(ckpt_size, kAreaAlign);
	if (g.wal_size > pool_size || g.ckpt_size > pool_size - g.wal_size)
		return make_error(EINVAL, "WAL and checkpoint areas do not fit in a pool of " +
						  std::to_string(pool_size) + " bytes");
	g.wal_offset = kSuperblockSize;
	g.ckpt_offset = g.wal_offset + g.wal_size;
	g.buffer_offset = g.ckpt_offset + g.ckpt_size;
	if (g.buffer_offset >= pool_size ||
	    (pool_size - g.buffer_offset) / buffer_size < kMinBuffers)
		return make_error(EINVAL, "pool size " + std::to_string(pool_size) +
						  " leaves room for fewer than 16 buffers after the WAL and checkpoint areas");
	std::uint64_t count = (pool_size - g.buffer_offset) / buffer_size;
	if (count > UINT32_MAX)
		return make_error(EINVAL, "pool too large: more than 2^32-1 buffers");
	g.buffer_count = static_cast<std::uint32_t>(count);
	return g;
}

void format_superblock(Superblock& sb, const Geometry& g, const Uuid& uuid, std::uint64_t create_time_ns) noexcept
{
	std::memset(&sb, 0, sizeof(sb));
	std::memcpy(sb.magic, kPoolMagic.data(), sizeof(sb.magic));
	sb.version = kPoolFormatVersion;
	sb.header_size = sizeof(Superblock);
	std::memcpy(sb.uuid, uuid.data(), sizeof(sb.uuid));
	sb.pool_size = g.pool_size;
	sb.buffer_size = g.buffer_size;
	sb.buffer_count = g.buffer_count;
	sb.buffer_offset = g.buffer_offset;
	sb.wal_offset = g.wal_offset;
	sb.wal_size = g.wal_size;
	sb.ckpt_offset = g.ckpt_offset;
	sb.ckpt_size = g.ckpt_size;
	sb.create_time_ns = create_time_ns;
	sb.checksum = crc32c(&sb, kChecksummed);
}

Result<Geometry> parse_superblock(const Superblock& sb, std::uint64_t file_size)
{
	if (std::memcmp(sb.magic, kPoolMagic.data(), sizeof(sb.magic)) != 0)
		return make_error(EINVAL, "not a daxnet pool (bad magic)");
	if (sb.version != kPoolFormatVersion)
		return make_error(EPROTONOSUPPORT, "unsupported pool format version " + std::to_string(sb.version) +
							   " (this build reads " +
							   std::to_string(kPoolFormatVersion) + ")");
	if (crc32c(&sb, kChecksummed) != sb.checksum)
		return make_error(EBADMSG, "superblock checksum mismatch (corrupt superblock)");
	if (sb.header_size != sizeof(Superblock) || sb.flags != 0 ||
	    std::any_of(std::begin(sb.reserved), std::end(sb.reserved), [](std::uint8_t b) { return b != 0; }))
		return make_error(EBADMSG, "superblock has unknown header size, flags or reserved bytes");

	Geometry g;
	g.pool_size = sb.pool_size;
	g.buffer_size = sb.buffer_size;
	g.buffer_count = sb.buffer_count;
	g.buffer_offset = sb.buffer_offset;
	g.wal_offset = sb.wal_offset;
	g.wal_size = sb.wal_size;
	g.ckpt_offset = sb.ckpt_offset;
	g.ckpt_size = sb.ckpt_size;

	auto bad = [](const std::string& why) { return make_error(EINVAL, "geometry does not fit: " + why); };
	if (g.buffer_size != 2048 && g.buffer_size != 4096)
		return bad("buffer size " + std::to_string(g.buffer_size));
	if (g.buffer_count == 0)
		return bad("no buffers");
	if (g.wal_offset % kAreaAlign || g.ckpt_offset % kAreaAlign || g.buffer_offset % kAreaAlign)
		return bad("area offsets are not 4096-aligned");
	// Every area must end inside the pool; compared by subtraction so that
	// no sum of hostile values can wrap past 2^64.
	auto ends_within = [&](std::uint64_t off, std::uint64_t size) {
		return off <= g.pool_size && size <= g.pool_size - off;
	};
	if (!ends_within(g.wal_offset, g.wal_size) || !ends_within(g.ckpt_offset, g.ckpt_size))
		return bad("WAL or checkpoint area ends beyond the pool");
	if (g.wal_offset < kSuperblockSize || g.wal_size == 0 || g.ckpt_size == 0 ||
	    g.ckpt_offset < g.wal_offset + g.wal_size || g.buffer_offset < g.ckpt_offset + g.ckpt_size)
		return bad("areas overlap or are out of order");
	// Overflow-safe form of buffer_offset + count * size > pool_size.
	if (g.buffer_offset > g.pool_size ||
	    std::uint64_t{g.buffer_count} > (g.pool_size - g.buffer_offset) / g.buffer_size)
		return bad(std::to_string(g.buffer_count) + " buffers of " + std::to_string(g.buffer_size) +
			   " bytes at offset " + std::to_string(g.buffer_offset) + " exceed pool size " +
			   std::to_string(g.pool_size));
	if (file_size < g.pool_size)
		return make_error(EINVAL, "truncated: file is " + std::to_string(file_size) +
						  " bytes, the superblock says " + std::to_string(g.pool_size));
	return g;
}

Result<PoolInfo> inspect_pool(const std::string& path)
{
	UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
	if (fd.get() < 0)
		return pool_error(path, errno, "cannot open: " + errno_text(errno));
	Superblock sb{};
	PoolInfo info;
	auto g = read_superblock(fd.get(), path, sb, info.file_size);
	if (!g)
		return g.error();
	info.geometry = *g;
	std::memcpy(info.uuid.data(), sb.uuid, info.uuid.size());
	info.version = sb.version;
	info.create_time_ns = sb.create_time_ns;
	if (::flock(fd.get(), LOCK_SH | LOCK_NB) != 0) {
		info.in_use = true;
		struct stat st {};
		if (::fstat(fd.get(), &st) == 0)
			info.holder_pid = lock_holder(st);
	}
	struct stat st {};
	info.dax = (::fstat(fd.get(), &st) == 0 && S_ISCHR(st.st_mode)) || probe_map_sync(fd.get(), nullptr);
	return info;
}

struct Pool::Impl {
	std::string path;
	UniqueFd fd;
	pmem2_config* cfg = nullptr;
	pmem2_source* src = nullptr;
	pmem2_map* map = nullptr;
	std::unique_ptr<Pmem2Domain> domain;
	PoolView view;
	bool dax = false;
	bool devdax = false;  ///< path is a device-DAX device (§Device DAX)
	Uuid uuid{};

	~Impl()
	{
		domain.reset();
		if (map)
			pmem2_map_delete(&map);
		if (src)
			pmem2_source_delete(&src);
		if (cfg)
			pmem2_config_delete(&cfg);
	}

	/// Maps the whole file of `size` bytes (device DAX: the whole device,
	/// a multiple of its alignment); caller holds the flock.
	Status map_file(std::uint64_t size, bool require_dax)
	{
		int err = 0;
		dax = devdax || probe_map_sync(fd.get(), &err);
		if (require_dax && !dax)
			return pool_error(path, EOPNOTSUPP,
					  "not DAX: MAP_SYNC is not supported for this file (" + errno_text(err) +
						  "); put the pool on a file system mounted -o dax over NVDIMM");
		int ret = pmem2_config_new(&cfg);
		if (ret == 0)
			ret = pmem2_config_set_required_store_granularity(cfg, PMEM2_GRANULARITY_PAGE);
		if (ret == 0)
			ret = pmem2_config_set_length(cfg, size);
		if (ret == 0)
			ret = pmem2_source_from_fd(&src, fd.get());
		if (ret == 0)
			ret = pmem2_map_new(&map, cfg, src);
		if (ret != 0)
			return pool_error(path, ret < 0 && ret > -4096 ? -ret : EIO, "cannot map: " + pmem2_text(ret));
		domain = std::make_unique<Pmem2Domain>(map, from_pmem2(pmem2_map_get_store_granularity(map)));
		return {};
	}
};

Pool::Pool(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
Pool::Pool(Pool&&) noexcept = default;
Pool& Pool::operator=(Pool&&) noexcept = default;
Pool::~Pool() = default;

const PoolView& Pool::view() const noexcept { return impl_->view; }
Granularity Pool::granularity() const noexcept { return impl_->domain->granularity(); }
int Pool::start_flusher(std::function<void(std::uint64_t)> hook)
{
	return impl_->domain->start_flusher(std::move(hook));
}
bool Pool::is_dax() const noexcept { return impl_->dax; }
const std::string& Pool::path() const noexcept { return impl_->path; }
Uuid Pool::uuid() const noexcept { return impl_->uuid; }
int Pool::fd() const noexcept { return impl_->fd.get(); }

Result<Pool> Pool::create(const std::string& path, const CreateOptions& opt)
{
	// Device DAX (§Device DAX): the device exists and keeps its size; the
	// pool takes all of it unless `opt.size` says less, and an existing
	// pool on it is kept unless `opt.overwrite`.
	if (struct stat st {}; ::stat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode)) {
		auto impl = std::make_unique<Impl>();
		impl->path = path;
		impl->devdax = true;
		impl->fd = UniqueFd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
		if (impl->fd.get() < 0)
			return pool_error(path, errno, "cannot open: " + errno_text(errno));
		if (::flock(impl->fd.get(), LOCK_EX | LOCK_NB) != 0)
			return pool_error(path, EBUSY, "pool is in use by another process");
		auto dd = devdax_geometry(impl->fd.get(), path);
		if (!dd)
			return dd.error();
		if (opt.size > dd->size)
			return pool_error(path, EINVAL,
					  "pool size " + std::to_string(opt.size) + " exceeds the device's " +
						  std::to_string(dd->size) + " bytes");
		auto g = plan_geometry(opt.size ? opt.size : dd->size, opt.buffer_size, opt.wal_size, opt.ckpt_size);
		if (!g)
			return pool_error(path, g.error().code, g.error().message);
		Superblock sb;
		if (int err = read_head(impl->fd.get(), &*dd, sb); err != 0)
			return pool_error(path, err, "cannot read the device: " + errno_text(err));
		if (!opt.overwrite && std::memcmp(sb.magic, kPoolMagic.data(), sizeof(sb.magic)) == 0)
			return pool_error(path, EEXIST, "the device already holds a daxnet pool (overwrite it explicitly)");
		if (auto ms = impl->map_file(dd->size, opt.require_dax); !ms)
			return ms.error();

		// A device keeps what an earlier pool wrote: clear the superblock
		// first (a crash from here on leaves no pool), then the WAL and
		// checkpoint areas, as a new file has them; buffers need no clearing.
		auto* base = static_cast<std::byte*>(pmem2_map_get_address(impl->map));
		std::memset(base, 0, sizeof(Superblock));
		impl->domain->persist(base, sizeof(Superblock));
		std::memset(base + g->wal_offset, 0, g->buffer_offset - g->wal_offset);
		impl->domain->persist(base + g->wal_offset, g->buffer_offset - g->wal_offset);
		impl->view = PoolView(base, *g, impl->domain.get());
		impl->uuid = random_uuid();
		timespec ts{};
		::clock_gettime(CLOCK_REALTIME, &ts);
		format_superblock(sb, *g, impl->uuid,
				  static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec));
		std::memcpy(base, &sb, sizeof(sb));
		impl->domain->persist(base, sizeof(sb));
		return Pool(std::move(impl));
	}
	auto g = plan_geometry(opt.size, opt.buffer_size, opt.wal_size, opt.ckpt_size);
	if (!g)
		return pool_error(path, g.error().code, g.error().message);

	auto impl = std::make_unique<Impl>();
	impl->path = path;
	impl->fd = UniqueFd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
	if (impl->fd.get() < 0)
		return pool_error(path, errno, "cannot create: " + errno_text(errno));
	// From here on the file is ours: remove it on any failure.
	struct Unlinker {
		const std::string& p;
		bool armed = true;
		~Unlinker()
		{
			if (armed)
				::unlink(p.c_str());
		}
	} unlinker{path};

	if (::flock(impl->fd.get(), LOCK_EX | LOCK_NB) != 0)
		return pool_error(path, EBUSY, "pool is in use by another process");
	int err = ::posix_fallocate(impl->fd.get(), 0, static_cast<off_t>(opt.size));
	if (err == EOPNOTSUPP || err == EINVAL)
		err = ::ftruncate(impl->fd.get(), static_cast<off_t>(opt.size)) == 0 ? 0 : errno;
	if (err != 0)
		return pool_error(path, err, "cannot size the file to " + std::to_string(opt.size) +
						     " bytes: " + errno_text(err));
	if (auto st = impl->map_file(opt.size, opt.require_dax); !st)
		return st.error();

	auto* base = static_cast<std::byte*>(pmem2_map_get_address(impl->map));
	impl->view = PoolView(base, *g, impl->domain.get());
	impl->uuid = random_uuid();
	timespec ts{};
	::clock_gettime(CLOCK_REALTIME, &ts);
	Superblock sb;
	format_superblock(sb, *g, impl->uuid,
			  static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec));
	std::memcpy(base, &sb, sizeof(sb));
	impl->domain->persist(base, sizeof(sb));
	unlinker.armed = false;
	return Pool(std::move(impl));
}

Result<Pool> Pool::open(const std::string& path, const OpenOptions& opt)
{
	auto impl = std::make_unique<Impl>();
	impl->path = path;
	impl->fd = UniqueFd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
	if (impl->fd.get() < 0)
		return pool_error(path, errno, "cannot open: " + errno_text(errno));
	if (::flock(impl->fd.get(), LOCK_EX | LOCK_NB) != 0) {
		struct stat st {};
		long pid = ::fstat(impl->fd.get(), &st) == 0 ? lock_holder(st) : -1;
		return pool_error(path, EBUSY,
				  "pool is in use by another process" +
					  (pid > 0 ? " (pid " + std::to_string(pid) + ")" : std::string()));
	}
	Superblock sb{};
	std::uint64_t file_size = 0;
	auto g = read_superblock(impl->fd.get(), path, sb, file_size);
	if (!g)
		return g.error();
	struct stat fst {};
	impl->devdax = ::fstat(impl->fd.get(), &fst) == 0 && S_ISCHR(fst.st_mode);
	// Device DAX is mapped whole (file_size is the device's size).
	if (auto ms = impl->map_file(impl->devdax ? file_size : g->pool_size, opt.require_dax); !ms)
		return ms.error();
	auto* base = static_cast<std::byte*>(pmem2_map_get_address(impl->map));
	impl->view = PoolView(base, *g, impl->domain.get());
	std::memcpy(impl->uuid.data(), sb.uuid, impl->uuid.size());
	return Pool(std::move(impl));
}

}  // namespace daxnet::pmem
