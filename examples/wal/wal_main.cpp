// SPDX-License-Identifier: BSD-2-Clause
//
// daxnet-wal: HTTP record ingestion on a daxnet pool. The service and its
// API are described in wal_service.h; this file: options and main().
#include <fmt/format.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

// GCC 12 reports a false -Wnull-dereference inside CLI11's inlined string
// splitting; only that header is exempted.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include "daxnet/svc/options.h"
#pragma GCC diagnostic pop
#include "wal_service.h"

using daxnet::wal::WalService;
using daxnet::wal::KvStore;

int main(int argc, char** argv)
{
	if (argc > 1 && (std::strcmp(argv[1], "dump") == 0 || std::strcmp(argv[1], "export") == 0))
		return daxnet::wal::dump(argc - 1, argv + 1);

	CLI::App app{"daxnet-wal: record ingestion over HTTP on a daxnet pool\n"
		     "  POST /log/<stream>[?batch=lines] (Content-Length or chunked),\n"
		     "  GET /log/<stream>?from=N&limit=M[&max_bytes=B][&wait=ms][&format=raw],\n"
		     "  DELETE /log/<stream>?before=N, GET /log, GET /stats, GET /metrics\n"
		     "  offline: daxnet-wal dump --pool FILE [--stream S] [--from N] [--limit M] [--raw]"};
	daxnet::svc::CommonOptions opt;
	std::string max_body = "16M";
	std::string pack_small = "auto";
	daxnet::svc::add_common_options(app, opt, 8080);
	app.add_option("--max-body", max_body, "largest record accepted, e.g. 16M")->capture_default_str();
	app.add_option("--pack-small", pack_small,
		       "records up to this many bytes are copied once into packed buffers instead of pinning a "
		       "received buffer each; auto: half a buffer on the uring transport (its receive cannot pack), 0 "
		       "(never) on kernel and epoll, which pack small messages as they receive")
		->capture_default_str();
	app.set_version_flag("--version", std::string("daxnet-wal ") + daxnet::svc::kVersion);
	CLI11_PARSE(app, argc, argv);

	auto mb = daxnet::svc::parse_size(max_body);
	if (!mb) {
		fmt::print(stderr, "daxnet-wal: --max-body: {}\n", mb.error().message);
		return 2;
	}
	if (opt.threads != 1) {
		fmt::print(stderr, "daxnet-wal: --threads {}: one WAL per pool, one thread in this version; use --threads 1\n",
			   opt.threads);
		return 2;
	}
	std::uint64_t pack_bytes = 0;  // --pack-small as a number (checked again against the pool's buffers)
	if (pack_small != "auto") {
		auto ps = daxnet::svc::parse_size(pack_small);
		if (!ps || *ps > 2048) {
			fmt::print(stderr, "daxnet-wal: --pack-small {}: a size up to half a buffer (at most 2048 bytes), or auto\n",
				   pack_small);
			return 2;
		}
		pack_bytes = *ps;
	}
	daxnet::svc::install_stop_signals();
	auto st = daxnet::svc::open_store_stack(opt, "daxnet-wal");
	if (!st)
		return 1;
	const auto& view = st->pool.view();
	auto& alloc = *st->alloc;
	KvStore& kv = *st->kv;
	daxnet::Port& port = *st->port;
	auto lf = daxnet::listen_tcp(opt.bind, static_cast<std::uint16_t>(opt.port));
	if (!lf) {
		fmt::print(stderr, "daxnet-wal: {}\n", lf.error().message);
		return 1;
	}
	daxnet::UniqueFd lfd = std::move(*lf);
	const int actual = daxnet::local_port(lfd.get());
	const std::string tname(daxnet::to_string(port.transport()));
	// uring receives every message into a buffer of its own: records up to
	// half a buffer are copied once into packed buffers (a 1 KiB record
	// would otherwise pin 4 KiB).
	std::uint32_t pack = port.transport() == daxnet::TransportKind::uring ? view.buffer_size() / 2 : 0;
	if (pack_small != "auto") {
		if (pack_bytes > view.buffer_size() / 2) {
			fmt::print(stderr, "daxnet-wal: --pack-small {}: a size up to half a buffer ({} bytes), or auto\n",
				   pack_small, view.buffer_size() / 2);
			return 2;
		}
		pack = static_cast<std::uint32_t>(pack_bytes);
	}
	daxnet::svc::ServerOptions so;
	so.http.max_body = *mb;
	so.http.allow_chunked = true;  // streamed uploads (curl -T -, shippers): chunks stay in place
	if (daxnet::Status ls = daxnet::svc::apply_client_limits(opt, view, &alloc, so); !ls) {
		fmt::print(stderr, "daxnet-wal: {}\n", ls.error().message);
		return 2;
	}
	WalService svc(kv, view, alloc, tname, *mb, pack, std::filesystem::absolute(st->pool.path()).lexically_normal());
	daxnet::svc::Server server(port, svc, {{lfd.get(), daxnet::svc::Proto::http}}, so);
	std::uint64_t streams = 0;
	kv.for_each_stream([&](std::string_view, std::uint64_t) { ++streams; });
	fmt::print("daxnet-wal {}: transport={} {} http={} threads=1 streams={} recovered_log_entries={} "
		   "ckpt_entries={} pack_small={}\n",
		   daxnet::svc::kVersion, tname, daxnet::svc::describe_pool(st->pool, st->created),
		   daxnet::svc::host_port(opt.bind, actual), streams, st->report.log_entries, st->report.ckpt_entries, pack);
	const int rc = daxnet::svc::serve(server);
	fmt::print("daxnet-wal: stopping: {} requests, {} appends, {} fences\n", server.counters().requests,
		   svc.appends(), view.domain().counters().drains);
	return rc == 0 ? 0 : 1;
}
