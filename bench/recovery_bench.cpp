// SPDX-License-Identifier: BSD-2-Clause
//
// recovery_bench: how long KvStore::open takes to rebuild the index of N keys
// (default 1,000,000) from (a) the log only, (b) a checkpoint only, (c) a
// checkpoint plus a log tail of overwrites; how many fences a batch costs;
// and (d) how long commits stall while checkpoints run, whole
// (checkpoint_step 0) against incremental (checkpoint_step 4096). The pool
// is a DRAM image with a counting persistence domain, so the figures are
// CPU time (record and payload CRCs, index build), not media time.
//
//   recovery_bench [--keys N] [--value-size B] [--batch K]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "daxnet/pmem/buffer_alloc.h"
#include "daxnet/pmem/kv.h"
#include "daxnet/pmem/pool.h"

using namespace daxnet::pmem;

namespace {

struct Image {
	Geometry geo{};
	std::byte* mem = nullptr;
	std::uint64_t size = 0;
	CountingDomain dom;
	PoolView view;

	Image(std::uint64_t nbufs, std::uint32_t bsize, std::uint64_t wal, std::uint64_t ckpt)
	{
		size = 4096 + wal + ckpt + nbufs * bsize;
		auto g = plan_geometry(size, bsize, wal, ckpt);
		if (!g) {
			std::fprintf(stderr, "plan_geometry: %s\n", g.error().message.c_str());
			std::exit(1);
		}
		geo = *g;
		mem = static_cast<std::byte*>(std::aligned_alloc(4096, size));
		std::memset(mem, 0, size);
		Uuid u{};
		u[0] = 1;
		format_superblock(*reinterpret_cast<Superblock*>(mem), geo, u, 0);
		view = PoolView(mem, geo, &dom);
	}
	~Image() { std::free(mem); }
	Image(const Image&) = delete;
	Image& operator=(const Image&) = delete;
};

constexpr std::uint32_t bsize_of()
{
	return 4096;
}

double cpu_seconds()
{
	timespec ts{};
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double seconds_since(std::chrono::steady_clock::time_point t0)
{
	return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// Packs messages into held buffers like the receive path.
struct Rx {
	const PoolView& pool;
	BufferAllocator& alloc;
	std::int64_t cur = -1;
	std::uint32_t used = 0;
	std::vector<std::uint32_t> held;

	Slice put(const char* p, std::uint32_t n)
	{
		if (cur < 0 || pool.buffer_size() - used < n) {
			cur = alloc.alloc();
			if (cur < 0) {
				std::fprintf(stderr, "out of buffers\n");
				std::exit(1);
			}
			held.push_back(static_cast<std::uint32_t>(cur));
			used = 0;
		}
		const auto b = static_cast<std::uint32_t>(cur);
		std::memcpy(pool.buffer(b) + used, p, n);
		Slice s{b, used, n};
		used += n;
		return s;
	}
	void release()
	{
		for (auto b : held)
			alloc.unref(b);
		held.clear();
		cur = -1;
	}
};

struct Load {
	double seconds = 0;
	std::uint64_t drains = 0;
	std::uint64_t batches = 0;
};

Load load(KvStore& kv, Image& img, BufferAllocator& alloc, std::uint64_t keys, std::uint64_t first, std::uint32_t vsize,
	  std::uint32_t batch, std::vector<double>* commit_us = nullptr)
{
	Rx rx{img.view, alloc, -1, 0, {}};
	std::string value(vsize, 'v');
	char key[32];
	const auto d0 = img.dom.counters().drains;
	const auto t0 = std::chrono::steady_clock::now();
	Load l;
	for (std::uint64_t i = 0; i < keys; i++) {
		const int kn = std::snprintf(key, sizeof(key), "key:%010llu", static_cast<unsigned long long>(first + i));
		std::memcpy(value.data(), key, static_cast<std::size_t>(kn));
		const Slice ks = rx.put(key, static_cast<std::uint32_t>(kn));
		const Slice vs = rx.put(value.data(), vsize);
		if (kv.set(ks, vs) != 0) {
			std::fprintf(stderr, "set failed at key %llu\n", static_cast<unsigned long long>(i));
			std::exit(1);
		}
		if ((i + 1) % batch == 0 || i + 1 == keys) {
			const auto c0 = std::chrono::steady_clock::now();
			if (kv.commit() < 0) {
				std::fprintf(stderr, "commit failed\n");
				std::exit(1);
			}
			if (commit_us)
				commit_us->push_back(seconds_since(c0) * 1e6);
			rx.release();
			l.batches++;
		}
	}
	l.seconds = seconds_since(t0);
	l.drains = img.dom.counters().drains - d0;
	return l;
}

void recover(const char* name, Image& img, std::uint64_t keys)
{
	BufferAllocator alloc;
	RecoveryReport rep;
	KvOptions o;
	o.wal.read_only = true;  // the live store keeps writing this image
	const double c0 = cpu_seconds();
	const auto t0 = std::chrono::steady_clock::now();
	auto kv = KvStore::open(img.view, alloc, o, &rep);
	const double s = seconds_since(t0);
	const double cpu = cpu_seconds() - c0;
	if (!kv) {
		std::fprintf(stderr, "%s: recovery failed: %s\n", name, kv.error().message.c_str());
		std::exit(1);
	}
	if ((*kv)->dbsize() != keys) {
		std::fprintf(stderr, "%s: recovered %zu keys, expected %llu\n", name, (*kv)->dbsize(),
			     static_cast<unsigned long long>(keys));
		std::exit(1);
	}
	std::printf("%-28s %7.3f s wall %7.3f s CPU  %6.2f Mkeys/s  ckpt %llu records, log %llu records, %zu buffers in use\n",
		    name, s, cpu, static_cast<double>(keys) / cpu / 1e6, static_cast<unsigned long long>(rep.ckpt_records),
		    static_cast<unsigned long long>(rep.log_records), alloc.count() - alloc.free_count());
}

/// (d): a store of `keys` keys under steady overwrites (batches of `batch`),
/// checkpointing at half the ring: the commit latency distribution.
void stalls(std::uint64_t keys, std::uint32_t vsize, std::uint32_t batch, std::uint32_t step, std::uint64_t nbufs,
	    std::uint64_t wal, std::uint64_t ckpt)
{
	Image img(nbufs, bsize_of(), wal, ckpt);
	BufferAllocator alloc;
	KvOptions o;
	o.checkpoint_fraction = 0.5;
	o.checkpoint_step = step;
	auto kv = std::move(*KvStore::open(img.view, alloc, o));
	load(*kv, img, alloc, keys, 0, vsize, batch);  // fill
	std::vector<double> us;
	const auto c0 = kv->wal().stats().checkpoints;
	const Load l = load(*kv, img, alloc, keys, 0, vsize, batch, &us);  // overwrite every key once
	std::sort(us.begin(), us.end());
	auto pct = [&us](double p) { return us[std::min(us.size() - 1, static_cast<std::size_t>(p * static_cast<double>(us.size())))]; };
	double sum = 0;
	for (double v : us)
		sum += v;
	std::printf("(d) checkpoint_step %-6u %7.3f s  %llu commits, %llu checkpoints; commit us: mean %.1f p99 %.1f "
		    "p99.9 %.1f max %.1f\n",
		    step, l.seconds, static_cast<unsigned long long>(us.size()),
		    static_cast<unsigned long long>(kv->wal().stats().checkpoints - c0), sum / static_cast<double>(us.size()),
		    pct(0.99), pct(0.999), us.back());
}

}  // namespace

int main(int argc, char** argv)
{
	std::uint64_t keys = 1'000'000;
	std::uint32_t vsize = 100;
	std::uint32_t batch = 32;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!std::strcmp(argv[i], "--keys"))
			keys = std::strtoull(argv[i + 1], nullptr, 10);
		else if (!std::strcmp(argv[i], "--value-size"))
			vsize = static_cast<std::uint32_t>(std::strtoul(argv[i + 1], nullptr, 10));
		else if (!std::strcmp(argv[i], "--batch"))
			batch = static_cast<std::uint32_t>(std::strtoul(argv[i + 1], nullptr, 10));
		else {
			std::fprintf(stderr, "usage: %s [--keys N] [--value-size B] [--batch K]\n", argv[0]);
			return 2;
		}
	}
	if (keys == 0 || batch == 0 || vsize == 0 || vsize > 4000) {
		std::fprintf(stderr, "keys, batch must be > 0; value size 1..4000\n");
		return 2;
	}
	const std::uint32_t bsize = 4096;
	const std::uint64_t per_key = 14 + vsize;
	const std::uint64_t nbufs = 2 * keys * per_key / bsize + keys / (bsize / per_key + 1) + 1024;
	const std::uint64_t wal = 4096 + ((2 * keys * 64 + 4095) / 4096) * 4096;
	const std::uint64_t ckpt = 2 * (4096 + ((keys * 64 + 4095) / 4096) * 4096);
	std::printf("recovery_bench: %llu keys, %u-byte values, %u-byte buffers, batch %u; pool %.0f MiB in DRAM\n",
		    static_cast<unsigned long long>(keys), vsize, bsize, batch,
		    static_cast<double>(4096 + wal + ckpt + nbufs * bsize) / 1048576.0);

	Image img(nbufs, bsize, wal, ckpt);
	BufferAllocator alloc;
	KvOptions o;
	o.checkpoint_fraction = 1.0;  // (a) keeps everything in the log
	auto kv = std::move(*KvStore::open(img.view, alloc, o));

	const Load l = load(*kv, img, alloc, keys, 0, vsize, batch);
	std::printf("load: %.3f s, %.2f Mkeys/s, %llu batches, %.3f drains per batch (%.4f per SET)\n", l.seconds,
		    static_cast<double>(keys) / l.seconds / 1e6, static_cast<unsigned long long>(l.batches),
		    static_cast<double>(l.drains) / static_cast<double>(l.batches),
		    static_cast<double>(l.drains) / static_cast<double>(keys));
	recover("(a) log only", img, keys);

	const auto t0 = std::chrono::steady_clock::now();
	const auto d0 = img.dom.counters().drains;
	if (kv->checkpoint() != 0) {
		std::fprintf(stderr, "checkpoint failed\n");
		return 1;
	}
	std::printf("checkpoint of %llu keys: %.3f s, %llu drains\n", static_cast<unsigned long long>(keys),
		    seconds_since(t0), static_cast<unsigned long long>(img.dom.counters().drains - d0));
	recover("(b) checkpoint only", img, keys);

	load(*kv, img, alloc, keys / 4, 0, vsize, batch);  // overwrite a quarter
	recover("(c) checkpoint + 25% tail", img, keys);
	kv.reset();

	for (std::uint32_t step : {0u, 4096u})
		stalls(keys, vsize, batch, step, nbufs, wal, ckpt);
	return 0;
}
