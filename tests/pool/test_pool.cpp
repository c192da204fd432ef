// SPDX-License-Identifier: BSD-2-Clause
//
// Pool file tests (docs/pool-format.md): create/open round trip, addressing,
// batched PAGE persistence, and every refusal of a bad file with the file
// left byte-for-byte untouched. Each case runs on /dev/shm (tmpfs) and on a
// regular file of the build tree's file system.
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <poll.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>
#include <string>
#include <vector>

#include "daxnet/pmem/crc32c.h"
#include "daxnet/pmem/pool.h"

using namespace daxnet;
using namespace daxnet::pmem;

namespace {

/// A unique path under `dir`, removed at scope exit.
struct TempPath {
	std::string path;
	explicit TempPath(const std::string& dir)
	{
		static int seq = 0;
		path = dir + "/daxnet-pool-test-" + std::to_string(::getpid()) + "-" + std::to_string(seq++);
		::unlink(path.c_str());
	}
	~TempPath() { ::unlink(path.c_str()); }
};

std::vector<char> slurp(const std::string& p)
{
	std::ifstream in(p, std::ios::binary);
	return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void patch(const std::string& p, std::uint64_t off, const void* data, std::size_t n)
{
	int fd = ::open(p.c_str(), O_WRONLY);
	REQUIRE(fd >= 0);
	REQUIRE(::pwrite(fd, data, n, static_cast<off_t>(off)) == static_cast<ssize_t>(n));
	::close(fd);
}

Superblock read_sb(const std::string& p)
{
	Superblock sb{};
	int fd = ::open(p.c_str(), O_RDONLY);
	REQUIRE(fd >= 0);
	REQUIRE(::pread(fd, &sb, sizeof(sb), 0) == static_cast<ssize_t>(sizeof(sb)));
	::close(fd);
	return sb;
}

/// Rewrites the superblock with a valid checksum, so that only the semantic
/// check under test can catch the change.
void write_sb_resealed(const std::string& p, Superblock sb)
{
	sb.checksum = crc32c(&sb, offsetof(Superblock, checksum));
	patch(p, 0, &sb, sizeof(sb));
}

// cachestat(2), Linux 6.5; not in every libc's headers
constexpr long kSysCachestat = 451;
struct CachestatRange {
	std::uint64_t off, len;
};
struct Cachestat {
	std::uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

std::string pool_dir()
{
	return GENERATE(as<std::string>{}, "/dev/shm", std::string(DAXNET_BIN_DIR) + "/..");
}

void make_pool(const std::string& path, std::uint64_t size = 8u << 20, std::uint32_t bs = 4096)
{
	Pool::CreateOptions opt;
	opt.size = size;
	opt.buffer_size = bs;
	auto pool = Pool::create(path, opt);
	REQUIRE(pool.ok());
}

/// Opens `path`, expects failure with `code` and a message containing
/// `needle`, and checks that the file did not change.
void expect_refused(const std::string& path, int code, const std::string& needle)
{
	auto before = slurp(path);
	auto r = Pool::open(path);
	REQUIRE_FALSE(r.ok());
	CHECK(r.error().code == code);
	CHECK_THAT(r.error().message, Catch::Contains(needle));
	CHECK_THAT(r.error().message, Catch::Contains(path));
	CHECK(r.error().message.find('\n') == std::string::npos);
	auto info = inspect_pool(path);
	CHECK_FALSE(info.ok());
	CHECK(slurp(path) == before);
}

}  // namespace

TEST_CASE("crc32c matches the Castagnoli check value and masks reversibly", "[unit][pmem]")
{
	CHECK(crc32c("123456789", 9) == 0xE3069283u);
	CHECK(crc32c("", 0) == 0u);
	std::uint32_t split = crc32c_extend(crc32c("12345", 5), "6789", 4);
	CHECK(split == 0xE3069283u);
	std::vector<unsigned char> big(1000);
	for (std::size_t i = 0; i < big.size(); i++)
		big[i] = static_cast<unsigned char>(i * 7);
	CHECK(crc32c_extend(crc32c(big.data(), 333), big.data() + 333, 667) == crc32c(big.data(), 1000));
	CHECK(crc32c_unmask(crc32c_mask(0xdeadbeefu)) == 0xdeadbeefu);
	CHECK(crc32c_mask(0xdeadbeefu) != 0xdeadbeefu);
}

TEST_CASE("plan_geometry lays out page-aligned areas and rejects impossible pools", "[unit][pmem]")
{
	auto g = plan_geometry(1ull << 30, 4096);
	REQUIRE(g.ok());
	CHECK(g->wal_offset == kSuperblockSize);
	CHECK(g->wal_size == 64ull << 20);
	CHECK(g->ckpt_offset == g->wal_offset + g->wal_size);
	// docs/pool-format.md §Geometry defaults: each checkpoint half holds one
	// record per 256 bytes of buffer area (capacity follows bytes).
	CHECK(g->ckpt_size == (320ull << 20) + 8192);
	CHECK(g->buffer_offset % 4096 == 0);
	CHECK(g->buffer_offset + std::uint64_t{g->buffer_count} * 4096 <= g->pool_size);
	CHECK(g->buffer_count == 163837);
	for (std::uint64_t size : {1ull << 20, 64ull << 20, 1ull << 30, 16ull << 30}) {
		auto h = plan_geometry(size, 4096);
		REQUIRE(h.ok());
		const std::uint64_t half_records = (((h->ckpt_size / 2) & ~4095ull) - 4096) / 64;
		CHECK(half_records >= std::uint64_t{h->buffer_count} * 4096 / 256);
	}

	CHECK(plan_geometry(8u << 20, 2048)->buffer_size == 2048);
	CHECK(plan_geometry(8u << 20, 1024).error().code == EINVAL);
	CHECK(plan_geometry(512u << 10, 4096).error().code == EINVAL);
	CHECK_THAT(plan_geometry(1u << 20, 4096, 940u << 10).error().message, Catch::Contains("fewer than 16 buffers"));
	CHECK_THAT(plan_geometry(1u << 20, 4096, 1u << 20).error().message, Catch::Contains("do not fit"));
	CHECK_THAT(plan_geometry(1u << 20, 4096, 2u << 20).error().message, Catch::Contains("larger than the pool"));
}

TEST_CASE("a created pool reopens with the same geometry, uuid and persisted bytes", "[pmem]")
{
	TempPath t(pool_dir());
	Uuid uuid{};
	Geometry geo;
	{
		Pool::CreateOptions opt;
		opt.size = 8u << 20;
		auto pool = Pool::create(t.path, opt);
		REQUIRE(pool.ok());
		geo = pool->geometry();
		uuid = pool->uuid();
		CHECK_FALSE(pool->is_dax());
		CHECK(pool->granularity() == Granularity::page);
		const PoolView& v = pool->view();
		for (std::uint32_t i = 0; i < v.buffer_count(); i += 97) {
			std::memset(v.buffer(i), static_cast<int>(i & 0xff), v.buffer_size());
			pool->domain().flush(v.buffer(i), v.buffer_size());
		}
		pool->domain().drain();
	}
	auto pool = Pool::open(t.path);
	REQUIRE(pool.ok());
	CHECK(pool->uuid() == uuid);
	CHECK(pool->geometry().buffer_count == geo.buffer_count);
	CHECK(pool->geometry().buffer_offset == geo.buffer_offset);
	const PoolView& v = pool->view();
	CHECK(v.superblock().version == kPoolFormatVersion);
	for (std::uint32_t i = 0; i < v.buffer_count(); i += 97) {
		auto* b = reinterpret_cast<unsigned char*>(v.buffer(i));
		CHECK(b[0] == (i & 0xff));
		CHECK(b[v.buffer_size() - 1] == (i & 0xff));
	}
}

TEST_CASE("buffer i sits at buffer_offset + i * buffer_size inside the file", "[unit][pmem]")
{
	TempPath t("/dev/shm");
	make_pool(t.path, 4u << 20, 2048);
	auto pool = Pool::open(t.path);
	REQUIRE(pool.ok());
	const PoolView& v = pool->view();
	const auto& g = v.geometry();
	CHECK(v.buffer(0) == v.base() + g.buffer_offset);
	CHECK(v.buffer(5) - v.buffer(4) == 2048);
	CHECK(v.buffer(g.buffer_count - 1) + g.buffer_size <= v.base() + g.pool_size);
	CHECK(v.buffer_area().size() == std::uint64_t{g.buffer_count} * 2048);
	CHECK(v.wal_area().data() == v.base() + g.wal_offset);
	CHECK(v.ckpt_area().size() == g.ckpt_size);
	CHECK(v.valid_buffer(g.buffer_count - 1));
	CHECK_FALSE(v.valid_buffer(g.buffer_count));
}

TEST_CASE("PAGE granularity gathers a batch of flushes into few msyncs at drain", "[pmem]")
{
	TempPath t(pool_dir());
	make_pool(t.path);
	auto pool = Pool::open(t.path);
	REQUIRE(pool.ok());
	PersistDomain& d = pool->domain();
	REQUIRE(d.granularity() == Granularity::page);
	const PoolView& v = pool->view();
	auto before = d.counters();
	// 64 records of 32 bytes, consecutive: one page range.
	for (int i = 0; i < 64; i++)
		d.flush(v.wal_area().data() + i * 32, 32);
	// Payload in two non-adjacent buffers, flushed out of order.
	d.flush(v.buffer(10), 100);
	d.flush(v.buffer(3), 100);
	d.flush(v.buffer(10) + 200, 50);
	CHECK(d.counters().msyncs == before.msyncs);  // nothing synced before drain
	d.drain();
	auto after = d.counters();
	CHECK(after.drains == before.drains + 1);
	CHECK(after.flush_calls == before.flush_calls + 67);
	CHECK(after.msyncs - before.msyncs == 1);  // one msync spans WAL run, buffer 3, buffer 10
	d.drain();
	CHECK(d.counters().msyncs == after.msyncs);  // an empty batch syncs nothing
}

TEST_CASE("PAGE granularity: after drain every flushed page is written back", "[pmem]")
{
	// The durability of the PAGE path (pool.cpp Pmem2Domain): no page of
	// a flushed range may be left dirty or under write-back once drain()
	// returns, whatever the ranges (a WAL run, scattered buffers, a value
	// across a page boundary). cachestat(2) (Linux 6.5) reads the page
	// cache's dirty and write-back counts of a file range.
	TempPath t(pool_dir());
	make_pool(t.path, 16u << 20);
	{
		// only where pages are written back to a device: ext4, xfs,
		// btrfs (tmpfs pages stay dirty for ever, msync is a no-op)
		struct statfs fs {};
		REQUIRE(::statfs(t.path.c_str(), &fs) == 0);
		if (fs.f_type != 0xEF53 && fs.f_type != 0x58465342 && fs.f_type != 0x9123683E) {
			WARN("not checked on file system type " << std::hex << fs.f_type);
			return;
		}
	}
	auto pool = Pool::open(t.path);
	REQUIRE(pool.ok());
	PersistDomain& d = pool->domain();
	const PoolView& v = pool->view();
	const auto off = [&](const void* p) {
		return static_cast<std::uint64_t>(static_cast<const std::byte*>(p) - v.base());
	};
	for (int round = 0; round < 3; ++round) {
		// a WAL run, scattered buffers (more than fit one range), one
		// value over two pages
		std::vector<std::pair<std::byte*, std::size_t>> flushed;
		for (int i = 0; i < 40; i++)
			flushed.emplace_back(v.wal_area().data() + (round * 40 + i) * 64, 64);
		for (std::uint32_t b = 1; b < v.buffer_count() && b < 200; b += 7)
			flushed.emplace_back(v.buffer(b) + 100, 200);
		flushed.emplace_back(v.buffer(250) + 4000, 200);
		for (auto& [p, n] : flushed) {
			std::memset(p, 0x40 + round, n);
			d.flush(p, n);
		}
		d.drain();
		for (auto& [p, n] : flushed) {
			std::uint64_t o = off(p) & ~std::uint64_t{4095};
			std::uint64_t len = ((off(p) + n + 4095) & ~std::uint64_t{4095}) - o;
			CachestatRange r{o, len};
			Cachestat cs{};
			const long rc = ::syscall(kSysCachestat, pool->fd(), &r, &cs, 0);
			if (rc != 0 && errno == ENOSYS) {
				WARN("no cachestat(2) on this kernel: not checked");
				return;
			}
			REQUIRE(rc == 0);
			INFO("round " << round << ", file offset " << o);
			CHECK(cs.nr_dirty == 0);
			CHECK(cs.nr_writeback == 0);
		}
	}
}

TEST_CASE("a pipelined drain is in flight until the flusher's msync returns", "[unit][pmem]")
{
	// docs/pool-format.md §Persistence, pipelined drain: drain_begin()
	// returns before the flusher thread's msync; durable_ticket() and the
	// completion eventfd move only after it. The hook holds the flush in
	// flight (no timing: a latch the test opens).
	TempPath t(std::string(DAXNET_BIN_DIR) + "/..");
	make_pool(t.path, 8u << 20);
	// Before the pool: its destructor joins the flusher, which may still
	// run the hook.
	std::mutex mu;
	std::condition_variable cv;
	bool open = false;
	std::vector<std::uint64_t> entered;  // tickets the flusher started
	auto pool = Pool::open(t.path);
	REQUIRE(pool.ok());
	if (pool->granularity() != Granularity::page) {
		CHECK(pool->start_flusher() == -EOPNOTSUPP);
		return;
	}
	REQUIRE(pool->start_flusher([&](std::uint64_t ticket) {
		std::unique_lock lk(mu);
		entered.push_back(ticket);
		cv.notify_all();
		cv.wait(lk, [&] { return open; });
	}) == 0);
	CHECK(pool->start_flusher() == -EALREADY);
	PersistDomain& d = pool->domain();
	const PoolView& v = pool->view();
	const int efd = d.completion_fd();
	REQUIRE(efd >= 0);
	const auto readable = [efd] {
		pollfd p{efd, POLLIN, 0};
		return ::poll(&p, 1, 0) == 1;
	};

	std::memset(v.buffer(3), 0x5a, 100);
	d.flush(v.buffer(3), 100);
	const std::uint64_t t1 = d.drain_begin();
	CHECK(t1 == 1);
	{
		std::unique_lock lk(mu);
		cv.wait(lk, [&] { return !entered.empty(); });  // the flusher has it
	}
	CHECK(d.in_flight());
	CHECK(d.durable_ticket() == 0);
	CHECK_FALSE(readable());
	// Stores while the drain is in flight (the loop keeps going).
	std::memset(v.buffer(5), 0x6b, 100);
	d.flush(v.buffer(5), 100);
	CHECK(d.in_flight());
	{
		std::lock_guard lk(mu);
		open = true;
	}
	cv.notify_all();
	d.drain_wait(t1);
	CHECK(d.durable_ticket() == 1);
	CHECK_FALSE(d.in_flight());
	CHECK(readable());
	std::uint64_t n = 0;
	CHECK(::read(efd, &n, sizeof(n)) == sizeof(n));
	CHECK(n == 1);
	// The next drain_begin() takes buffer 5's range; a drain() after it
	// waits for it first (in order), then has nothing left.
	const std::uint64_t t2 = d.drain_begin();
	CHECK(t2 == 2);
	d.drain();
	CHECK(d.durable_ticket() == 2);
	{
		std::lock_guard lk(mu);
		CHECK(entered == std::vector<std::uint64_t>{1, 2});
	}
	// Nothing flushed since: a ticket that is durable at once, no msync.
	const auto msyncs = d.counters().msyncs;
	CHECK(d.drain_begin() == 3);
	CHECK(d.durable_ticket() == 3);
	CHECK(d.counters().msyncs == msyncs);
	// A drain in flight at close completes (the pool joins the flusher).
	std::memset(v.buffer(7), 0x7c, 100);
	d.flush(v.buffer(7), 100);
	CHECK(d.drain_begin() == 4);
}

TEST_CASE("drain_begin() without a flusher is a drain", "[unit][pmem]")
{
	TempPath t("/dev/shm");
	make_pool(t.path);
	auto pool = Pool::open(t.path);
	REQUIRE(pool.ok());
	PersistDomain& d = pool->domain();
	std::memset(pool->view().buffer(1), 1, 10);
	d.flush(pool->view().buffer(1), 10);
	CHECK(d.drain_begin() == 1);
	CHECK(d.durable_ticket() == 1);
	CHECK_FALSE(d.in_flight());
	CHECK(d.completion_fd() == -1);
}

TEST_CASE("typed persist flushes exactly the object", "[unit][pmem]")
{
	TempPath t("/dev/shm");
	make_pool(t.path);
	auto pool = Pool::open(t.path);
	REQUIRE(pool.ok());
	struct Rec {
		std::uint64_t a, b;
	};
	auto* rec = reinterpret_cast<Rec*>(pool->view().wal_area().data());
	auto before = pool->domain().counters();
	pool->domain().persist(*rec);
	CHECK(pool->domain().counters().flushed_bytes - before.flushed_bytes == sizeof(Rec));
	CHECK(pool->domain().counters().drains - before.drains == 1);
}

TEST_CASE("create refuses to overwrite an existing file", "[pmem]")
{
	TempPath t(pool_dir());
	make_pool(t.path);
	auto before = slurp(t.path);
	Pool::CreateOptions opt;
	opt.size = 8u << 20;
	auto r = Pool::create(t.path, opt);
	REQUIRE_FALSE(r.ok());
	CHECK(r.error().code == EEXIST);
	CHECK(slurp(t.path) == before);
}

TEST_CASE("create with --require-dax fails cleanly on a non-DAX file and leaves nothing", "[pmem]")
{
	TempPath t(pool_dir());
	Pool::CreateOptions opt;
	opt.size = 8u << 20;
	opt.require_dax = true;
	auto r = Pool::create(t.path, opt);
	REQUIRE_FALSE(r.ok());
	CHECK(r.error().code == EOPNOTSUPP);
	CHECK_THAT(r.error().message, Catch::Contains("not DAX"));
	CHECK(::access(t.path.c_str(), F_OK) != 0);
}

TEST_CASE("open with require_dax refuses a non-DAX pool without touching it", "[pmem]")
{
	TempPath t(pool_dir());
	make_pool(t.path);
	auto before = slurp(t.path);
	Pool::OpenOptions o;
	o.require_dax = true;
	auto r = Pool::open(t.path, o);
	REQUIRE_FALSE(r.ok());
	CHECK(r.error().code == EOPNOTSUPP);
	CHECK(slurp(t.path) == before);
}

TEST_CASE("a file with the wrong magic is refused untouched", "[pmem]")
{
	TempPath t(pool_dir());
	make_pool(t.path);
	patch(t.path, 0, "NOTAPOOL", 8);
	expect_refused(t.path, EINVAL, "bad magic");
}

TEST_CASE("an unknown format version is refused untouched", "[pmem]")
{
	TempPath t(pool_dir());
	make_pool(t.path);
	Superblock sb = read_sb(t.path);
	sb.version = 7;
	write_sb_resealed(t.path, sb);
	expect_refused(t.path, EPROTONOSUPPORT, "unsupported pool format version 7");
}

TEST_CASE("a corrupt superblock checksum is refused untouched", "[pmem]")
{
	TempPath t(pool_dir());
	make_pool(t.path);
	Superblock sb = read_sb(t.path);
	sb.buffer_count ^= 1;  // a bit flip, checksum not updated
	patch(t.path, 0, &sb, sizeof(sb));
	expect_refused(t.path, EBADMSG, "checksum mismatch");
}

TEST_CASE("a truncated pool file is refused untouched", "[pmem]")
{
	TempPath t(pool_dir());
	make_pool(t.path);
	REQUIRE(::truncate(t.path.c_str(), 6u << 20) == 0);
	expect_refused(t.path, EINVAL, "truncated: file is 6291456 bytes");
}

TEST_CASE("a file shorter than a superblock is refused untouched", "[pmem]")
{
	TempPath t(pool_dir());
	{
		std::ofstream out(t.path, std::ios::binary);
		out << "DAXNETPL but far too short";
	}
	expect_refused(t.path, EINVAL, "a pool needs at least 4096");
}

TEST_CASE("geometry that does not fit the pool is refused untouched", "[pmem]")
{
	TempPath t(pool_dir());
	make_pool(t.path);
	Superblock orig = read_sb(t.path);

	SECTION("too many buffers")
	{
		Superblock sb = orig;
		sb.buffer_count += 1000;
		write_sb_resealed(t.path, sb);
		expect_refused(t.path, EINVAL, "geometry does not fit");
	}
	SECTION("overlapping areas")
	{
		Superblock sb = orig;
		sb.ckpt_offset = sb.wal_offset;
		write_sb_resealed(t.path, sb);
		expect_refused(t.path, EINVAL, "overlap");
	}
	SECTION("unaligned buffer area")
	{
		Superblock sb = orig;
		sb.buffer_offset += 64;
		write_sb_resealed(t.path, sb);
		expect_refused(t.path, EINVAL, "4096-aligned");
	}
	SECTION("odd buffer size")
	{
		Superblock sb = orig;
		sb.buffer_size = 1000;
		write_sb_resealed(t.path, sb);
		expect_refused(t.path, EINVAL, "buffer size 1000");
	}
	SECTION("buffer count overflowing 64 bits")
	{
		Superblock sb = orig;
		sb.buffer_count = UINT32_MAX;
		sb.pool_size = UINT64_MAX;
		write_sb_resealed(t.path, sb);
		expect_refused(t.path, EINVAL, "truncated");
	}
}

TEST_CASE("a pool opened by another process is refused with EBUSY and reported in use", "[pmem]")
{
	TempPath t(pool_dir());
	make_pool(t.path);
	int ready[2], done[2];
	REQUIRE(::pipe(ready) == 0);
	REQUIRE(::pipe(done) == 0);
	pid_t child = ::fork();
	REQUIRE(child >= 0);
	if (child == 0) {
		auto pool = Pool::open(t.path);
		char c = pool.ok() ? 'y' : 'n';
		(void)!::write(ready[1], &c, 1);
		(void)!::read(done[0], &c, 1);
		::_exit(0);
	}
	char c = 0;
	REQUIRE(::read(ready[0], &c, 1) == 1);
	REQUIRE(c == 'y');
	auto before = slurp(t.path);
	auto r = Pool::open(t.path);
	REQUIRE_FALSE(r.ok());
	CHECK(r.error().code == EBUSY);
	CHECK_THAT(r.error().message, Catch::Contains("in use by another process (pid " + std::to_string(child)));
	auto info = inspect_pool(t.path);
	REQUIRE(info.ok());
	CHECK(info->in_use);
	CHECK(info->holder_pid == child);
	CHECK(slurp(t.path) == before);
	(void)!::write(done[1], "x", 1);
	int status = 0;
	::waitpid(child, &status, 0);
	auto again = Pool::open(t.path);
	CHECK(again.ok());
	for (int fd : {ready[0], ready[1], done[0], done[1]})
		::close(fd);
}

TEST_CASE("inspect_pool reports geometry, not-in-use and not-DAX without writing", "[pmem]")
{
	TempPath t(pool_dir());
	make_pool(t.path, 8u << 20, 2048);
	auto before = slurp(t.path);
	auto info = inspect_pool(t.path);
	REQUIRE(info.ok());
	CHECK(info->geometry.buffer_size == 2048);
	CHECK(info->version == 1);
	CHECK_FALSE(info->in_use);
	CHECK_FALSE(info->dax);
	CHECK(info->file_size == 8u << 20);
	CHECK(slurp(t.path) == before);
}
