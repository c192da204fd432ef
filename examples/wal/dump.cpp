// SPDX-License-Identifier: BSD-2-Clause
//
// daxnet-wal dump (alias export): a stream, or the list of streams, from a
// pool recovered read-only -- offline, while no service has the pool open.
#include <fmt/format.h>

#include <cstdio>

#include "daxnet/pmem/pool.h"
// GCC 12 reports a false -Wnull-dereference inside CLI11's inlined string
// splitting; only that header is exempted.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include "daxnet/svc/options.h"
#pragma GCC diagnostic pop
#include "wal_service.h"

namespace daxnet::wal {

int dump(int argc, char** argv)
{
	CLI::App app{"daxnet-wal dump: print a stream (or the list of streams) from a pool, offline"};
	std::string pool_path, stream;
	std::uint64_t from = 0, limit = UINT64_MAX;
	bool raw = false;
	app.add_option("--pool", pool_path, "pool file")->required()->check(CLI::ExistingFile);
	app.add_option("--stream", stream, "stream to print (default: list the streams)");
	app.add_option("--from", from, "first sequence number")->capture_default_str();
	app.add_option("--limit", limit, "records to print");
	app.add_flag("--raw", raw, "bodies only, no \"<seq> <length>\" lines");
	try {
		app.parse(argc, argv);
	} catch (const CLI::ParseError& e) {
		return app.exit(e);
	}
	auto pool = daxnet::pmem::Pool::open(pool_path);
	if (!pool) {
		fmt::print(stderr, "daxnet-wal dump: {}\n", pool.error().message);
		return 1;
	}
	const auto& view = pool->view();
	daxnet::pmem::BufferAllocator alloc(view.buffer_count());
	daxnet::pmem::KvOptions ko;
	ko.wal.read_only = true;
	daxnet::pmem::RecoveryReport report;
	auto kv = KvStore::open(view, alloc, ko, &report);
	if (!kv) {
		fmt::print(stderr, "daxnet-wal dump: {}: {}\n", pool_path, kv.error().message);
		return 1;
	}
	if (stream.empty()) {
		(*kv)->for_each_stream([&kv](std::string_view name, std::uint64_t len) {
			fmt::print("{} {} {}\n", name, len, (*kv)->stream_first(name));
		});
		return 0;
	}
	const std::uint64_t length = (*kv)->stream_length(stream);
	from = std::max(from, (*kv)->stream_first(stream));
	if (!(*kv)->stream_exists(stream)) {
		fmt::print(stderr, "daxnet-wal dump: no stream '{}' in {}\n", stream, pool_path);
		return 1;
	}
	std::vector<StreamEntryRef> buf(256);
	std::uint64_t printed = 0;
	while (from < length && printed < limit) {
		const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), limit - printed));
		const std::size_t n = (*kv)->stream_read(stream, from, std::span<StreamEntryRef>(buf.data(), want));
		if (n == 0)
			break;
		for (std::size_t i = 0; i < n; ++i) {
			if (!raw)
				std::printf("%llu %llu\n", static_cast<unsigned long long>(buf[i].index),
					    static_cast<unsigned long long>(buf[i].body.size));
			for (const Slice& s : buf[i].body.slices) {
				auto b = daxnet::pmem::slice_bytes(view, s);
				std::fwrite(b.data(), 1, b.size(), stdout);
			}
			if (!raw)
				std::putchar('\n');
		}
		from = buf[n - 1].index + 1;
		printed += n;
	}
	return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace daxnet::wal
