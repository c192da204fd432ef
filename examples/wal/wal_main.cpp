// SPDX-License-Identifier: BSD-2-Clause
//
// daxnet-wal: HTTP record ingestion on a daxnet pool. The service and its
// API are described in wal_service.h; this file: options and main().
#include <fmt/format.h>

#include <cstdio>
#include <cstring>
#include <string>

// GCC 12 reports a false -Wnull-dereference inside CLI11's inlined string
// splitting; only that header is exempted.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include "daxnet/svc/options.h"
#pragma GCC diagnostic pop
#include "wal_service.h"

using daxnet::wal::WalService;

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
	daxnet::svc::ServerOptions so;
	so.http.max_body = *mb;
	so.http.allow_chunked = true;  // streamed uploads (curl -T -, shippers): chunks stay in place
	const daxnet::svc::ListenSpec listen[] = {{opt.port, daxnet::svc::Proto::http}};
	daxnet::svc::StoreService s;
	if (const int ec = daxnet::svc::open_store_service(opt, "daxnet-wal", listen, so, s))
		return ec;

	std::uint32_t pack = s.auto_pack_small();
	if (pack_small != "auto") {
		if (pack_bytes > s.pool().buffer_size() / 2) {
			fmt::print(stderr, "daxnet-wal: --pack-small {}: a size up to half a buffer ({} bytes), or auto\n",
				   pack_small, s.pool().buffer_size() / 2);
			return 2;
		}
		pack = static_cast<std::uint32_t>(pack_bytes);
	}
	WalService svc(s.kv(), s.pool(), s.alloc(), s.transport, *mb, pack, s.pool_path);
	daxnet::svc::Server server(s.port(), svc, s.listeners, so);
	std::uint64_t streams = 0;
	s.kv().for_each_stream([&](std::string_view, std::uint64_t) { ++streams; });
	daxnet::svc::print_startup_line(s, opt, "daxnet-wal", fmt::format("streams={}", streams),
					fmt::format(" pack_small={}", pack));
	return daxnet::svc::serve_store_service(s, server, "daxnet-wal", svc.appends(), "appends");
}
