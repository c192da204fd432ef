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

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

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
		       "free buffers kept for receiving (writes refused below, the cleaner takes none of them; "
		       "0: auto, max(32, buffers/16))");
	app.set_version_flag("--version", std::string("daxnet-kv ") + daxnet::svc::kVersion);
	CLI11_PARSE(app, argc, argv);

	auto mv = daxnet::svc::parse_size(max_value);
	if (!mv) {
		fmt::print(stderr, "daxnet-kv: --max-value: {}\n", mv.error().message);
		return 2;
	}
	cfg.max_value = *mv;
	if (opt.threads != 1) {
		fmt::print(stderr, "daxnet-kv: --threads {}: the store is single-threaded in this version; use --threads 1\n",
			   opt.threads);
		return 2;
	}
	daxnet::svc::install_stop_signals();

	auto st = daxnet::svc::open_store_stack(opt, "daxnet-kv");
	if (!st)
		return 1;
	const auto& view = st->pool.view();
	if (cfg.max_key > view.buffer_size())
		cfg.max_key = view.buffer_size();
	auto& alloc = *st->alloc;
	daxnet::pmem::KvStore& kv = *st->kv;
	daxnet::Port& port = *st->port;
	std::vector<daxnet::svc::Listener> listeners;
	int resp_port = 0, actual_http = 0;
	auto lr = daxnet::listen_tcp(opt.bind, static_cast<std::uint16_t>(opt.port));
	if (!lr) {
		fmt::print(stderr, "daxnet-kv: {}\n", lr.error().message);
		return 1;
	}
	daxnet::UniqueFd resp_fd = std::move(*lr);
	resp_port = daxnet::local_port(resp_fd.get());
	daxnet::UniqueFd http_fd;
	listeners.push_back({resp_fd.get(), daxnet::svc::Proto::resp});
	if (http_port >= 0) {
		auto lh = daxnet::listen_tcp(opt.bind, static_cast<std::uint16_t>(http_port));
		if (!lh) {
			fmt::print(stderr, "daxnet-kv: {}\n", lh.error().message);
			return 1;
		}
		http_fd = std::move(*lh);
		actual_http = daxnet::local_port(http_fd.get());
		listeners.push_back({http_fd.get(), daxnet::svc::Proto::http});
	}
	cfg.transport_name = std::string(daxnet::to_string(port.transport()));
	// uring receives every message into a buffer of its own: unless told
	// otherwise, values up to half a buffer are packed there (a 1 KiB SET
	// sent alone pinned a whole 4 KiB buffer: 4.2 pool bytes per byte).
	if (pack_opt->count() == 0 && port.transport() == daxnet::TransportKind::uring)
		cfg.pack_small = view.buffer_size() / 2;
	cfg.pool_path = std::filesystem::absolute(opt.pool).lexically_normal().string();
	cfg.port = resp_port;
	cfg.bind = opt.bind;

	daxnet::svc::ServerOptions so;
	so.resp.max_bulk = cfg.max_value;
	so.resp.max_request = std::max<std::uint64_t>(cfg.max_value * 2, 1u << 20);
	so.http.max_body = cfg.max_value;
	if (daxnet::Status ls = daxnet::svc::apply_client_limits(opt, view, &alloc, so); !ls) {
		fmt::print(stderr, "daxnet-kv: {}\n", ls.error().message);
		return 2;
	}
	daxnet::kv::KvService svc(kv, view, alloc, cfg);
	daxnet::svc::Server server(port, svc, std::move(listeners), so);

	std::string http_addr = http_port >= 0 ? " http=" + daxnet::svc::host_port(opt.bind, actual_http) : "";
	fmt::print("daxnet-kv {}: transport={} {} resp={}{} threads=1 keys={} recovered_log_entries={} "
		   "ckpt_entries={}\n",
		   daxnet::svc::kVersion, cfg.transport_name, daxnet::svc::describe_pool(st->pool, st->created),
		   daxnet::svc::host_port(opt.bind, resp_port), http_addr, kv.dbsize(), st->report.log_entries,
		   st->report.ckpt_entries);
	const int rc = daxnet::svc::serve(server);
	const auto& pc = view.domain().counters();
	fmt::print("daxnet-kv: stopping ({}): {} requests, {} writes, {} fences\n",
		   daxnet::svc::stop_signal() ? strsignal(daxnet::svc::stop_signal()) : "error",
		   server.counters().requests, svc.writes(), pc.drains);
	return rc == 0 ? 0 : 1;
}
