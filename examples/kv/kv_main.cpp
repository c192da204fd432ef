// SPDX-License-Identifier: BSD-2-Clause
//
// daxnet-kv: a persistent key-value server speaking RESP2/RESP3 (redis-cli,
// redis-benchmark and client libraries work unmodified) and, on a second
// port, a pKVS-style HTTP interface (GET/PUT/DELETE /kv/<key>).
//
// Values stay in the pool buffers they were received in: the KV store logs
// (buffer, offset, length) references in the WAL and indexes them in DRAM.
// Every write of one event-loop pass, over all connections, is made durable
// with one commit (one fence) before any reply of that pass is sent.
//
// The tree of daxnet-kv: kv.h (the service, its clients, the command table's
// types), cmd_table.cpp (one row per command), cmd_*.cpp (handlers by
// family), server.cpp (dispatch, connections, end of pass), store.cpp
// (store helpers), http_api.cpp (the HTTP port); the shared core (event
// loop, commit, reclaim, refusals, metrics) is examples/common. This file:
// options and main().
//
// Limits: keys up to --max-key bytes (default 1024), values up to
// --max-value (default 16 MiB). Writes are refused with
// "-OOM ... (daxnet: pool full ...)" when fewer than --reserve buffers are free,
// so that reads (and the transport) keep working.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

// GCC 12 reports a false -Wnull-dereference inside CLI11's inlined string
// splitting once main() grows; only that header is exempted.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include "daxnet/svc/options.h"
#pragma GCC diagnostic pop
#include "kv.h"

int main(int argc, char** argv)
{
	CLI::App app{"daxnet-kv: persistent key-value server (Redis protocol + HTTP) on a daxnet pool"};
	daxnet::svc::CommonOptions opt;
	daxnet::kv::KvConfig cfg;
	int http_port = -1;
	std::string max_value = "16M";
	daxnet::svc::add_common_options(app, opt, 6380);
	app.add_option("--http-port", http_port, "also serve HTTP GET/PUT/DELETE /kv/<key> on this port (0: any; "
						  "-1: off)")
		->capture_default_str();
	app.add_option("--max-key", cfg.max_key, "longest key accepted, bytes")->check(CLI::Range(1u, 2048u))
		->capture_default_str();
	app.add_option("--max-value", max_value, "largest value accepted, e.g. 16M")->capture_default_str();
	auto* pack_opt = app.add_option("--pack-small", cfg.pack_small,
		       "values up to this many bytes are copied once into packed buffers instead of pinning a "
		       "received buffer each (0: never; default 512, half a buffer on the uring transport)")
		->capture_default_str();
	app.add_option("--requirepass", cfg.requirepass,
		       "password of the `default` user: clients must AUTH (or HELLO ... AUTH) first");
	app.add_option("--reserve", cfg.reserve,
		       "free buffers kept for receiving (writes refused below; the cleaner borrows from them only for "
		       "a cycle that frees more than it takes, never the last half; 0: auto, max(32, buffers/16))");
	bool pipelined = true;
	app.add_option("--pipelined-commit", pipelined,
		       "page-granularity pools (no DAX): each pass's msync runs on a flusher thread; reads are "
		       "answered meanwhile, writes once their batch is durable (docs/design.md, Pipelined commit)")
		->capture_default_str();
	app.set_version_flag("--version", std::string("daxnet-kv ") + daxnet::svc::kVersion);
	CLI11_PARSE(app, argc, argv);

	auto mv = daxnet::svc::parse_size(max_value);
	if (!mv) {
		fmt::print(stderr, "daxnet-kv: --max-value: {}\n", mv.error().message);
		return 2;
	}
	cfg.max_value = *mv;
	daxnet::svc::ServerOptions so;
	so.resp.max_bulk = cfg.max_value;
	so.resp.max_request = std::max<std::uint64_t>(cfg.max_value * 2, 1u << 20);
	so.http.max_body = cfg.max_value;
	std::vector<daxnet::svc::ListenSpec> listen{{opt.port, daxnet::svc::Proto::resp}};
	if (http_port >= 0)
		listen.push_back({http_port, daxnet::svc::Proto::http});
	daxnet::svc::StoreService s;
	if (const int ec = daxnet::svc::open_store_service(opt, "daxnet-kv", listen, so, s))
		return ec;

	const auto& view = s.pool();
	if (cfg.max_key > view.buffer_size())
		cfg.max_key = view.buffer_size();
	cfg.transport_name = s.transport;
	// uring receives every message into a buffer of its own: unless told
	// otherwise, values up to half a buffer are packed there (a 1 KiB SET
	// sent alone pinned a whole 4 KiB buffer: 4.2 pool bytes per byte).
	if (pack_opt->count() == 0 && s.auto_pack_small() != 0)
		cfg.pack_small = s.auto_pack_small();
	cfg.pool_path = s.pool_path;
	cfg.port = s.ports[0];
	cfg.bind = opt.bind;
	daxnet::kv::KvService svc(s.kv(), view, s.alloc(), cfg);
	if (pipelined && s.stack->pool.granularity() == daxnet::pmem::Granularity::page) {
		// Tests hold every flush in flight while the file
		// $DAXNET_TEST_FLUSH_HOLD exists (fault injection, not timing);
		// "<file>.in" says a flush is being held.
		std::function<void(std::uint64_t)> hook;
		if (const char* hold = std::getenv("DAXNET_TEST_FLUSH_HOLD"); hold && *hold)
			hook = [path = std::string(hold)](std::uint64_t) {
				if (::access(path.c_str(), F_OK) != 0)
					return;
				if (std::FILE* f = std::fopen((path + ".in").c_str(), "w"))
					std::fclose(f);
				while (::access(path.c_str(), F_OK) == 0)
					::usleep(1000);
			};
		if (const int rc = s.stack->pool.start_flusher(std::move(hook)); rc < 0) {
			fmt::print(stderr, "daxnet-kv: cannot start the flusher thread: {}\n", std::strerror(-rc));
			return 1;
		}
		svc.set_pipelined(true);
	}
	daxnet::svc::Server server(s.port(), svc, s.listeners, so);
	daxnet::svc::print_startup_line(s, opt, "daxnet-kv", fmt::format("keys={}", s.kv().dbsize()));
	return daxnet::svc::serve_store_service(s, server, "daxnet-kv", svc.writes(), "writes");
}
