// SPDX-License-Identifier: BSD-2-Clause
//
// The command line every service shares, the pool it runs on, the startup
// line and clean shutdown on SIGINT/SIGTERM. Setup path only (CLI11, fmt
// and std::string live here, never in the event loop).
#pragma once

#include <CLI/CLI.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "daxnet/buffer.h"
#include "daxnet/fd.h"
#include "daxnet/net.h"
#include "daxnet/pmem/kv.h"
#include "daxnet/pmem/pool.h"
#include "daxnet/port.h"
#include "daxnet/result.h"
#include "daxnet/size.h"
#include "daxnet/svc/server.h"

namespace daxnet::svc {

inline constexpr const char* kVersion = "0.1.0";

struct CommonOptions {
	std::string pool;                    ///< --pool FILE
	std::string pool_size = "256M";      ///< --pool-size, used when creating
	std::uint32_t buffer_size = 4096;    ///< --buffer-size, used when creating
	int port = 0;                        ///< --port (0: the kernel picks one)
	std::string bind = "127.0.0.1";      ///< --bind
	std::string transport = "auto";      ///< --transport auto|kernel|uring|epoll
	unsigned threads = 1;                ///< --threads
	std::uint32_t max_conns = 16384;     ///< --max-conns, per event loop
	bool require_dax = false;            ///< --require-dax
	bool zerocopy = false;               ///< --zerocopy (kernel transport)
	std::uint32_t checkpoint_step = 4096; ///< --checkpoint-step (KvOptions::checkpoint_step)
	std::uint32_t timeout = 0;            ///< --timeout: close connections idle this many seconds (0: never)
	bool cleaner = true;                  ///< --cleaner (KvOptions::cleaner.enabled)
	/// --client-output-buffer-limit "HARD SOFT SECONDS" (Redis's normal
	/// class; "normal" may lead, sizes as parse_size, 0: no limit).
	std::string client_output_buffer_limit = "32mb 0 0";
	/// --client-query-buffer-limit SIZE: bytes an incomplete request may
	/// pin ("auto": the largest request the service accepts).
	std::string client_query_buffer_limit = "auto";
	/// --maxmemory-clients SIZE or N%: pool bytes all clients may pin
	/// (incomplete requests + output queued in the port); 0: no limit.
	std::string maxmemory_clients = "50%";
	bool version = false;
};

/// Adds --pool, --pool-size, --buffer-size, --port, --bind, --transport,
/// --threads, --max-conns, --require-dax, --zerocopy, --checkpoint-step, --version to `app` (on the app itself or a
/// subcommand). `default_port` is the --port default.
/// Also adds --config FILE: every option of `app` (these and the service's
/// own) can be set there as `name = value` (the long option name without
/// "--"; flags take true/false); the command line overrides the file, and
/// an unknown name in the file is an error.
void add_common_options(CLI::App& app, CommonOptions& o, int default_port);

/// Parses "4096", "64K", "64M", "1G" (binary multiples).
using daxnet::parse_size;

/// Sets the client limits of `so` from `o` (--timeout,
/// --client-output-buffer-limit, --client-query-buffer-limit,
/// --maxmemory-clients; percentages of
/// `pool`'s buffer bytes) and, when `alloc` is given, the pool's free
/// buffer count for the reserve. EINVAL naming the option on a bad value.
Status apply_client_limits(const CommonOptions& o, const pmem::PoolView& pool, const pmem::BufferAllocator* alloc,
			   ServerOptions& so);

/// Opens the pool at o.pool, creating it (o.pool_size, o.buffer_size) when
/// the file does not exist. `created` tells which happened.
Result<pmem::Pool> open_or_create_pool(const CommonOptions& o, bool* created = nullptr);

/// What a store-backed service (daxnet-kv, daxnet-wal) opens at start, in
/// this order: the pool (created when absent), the store recovered from it
/// (recovery rebuilds the allocator, so it comes before any buffer is
/// taken) and the port, which takes its buffers from the same allocator.
struct StoreStack {
	pmem::Pool pool;
	bool created = false;
	std::unique_ptr<pmem::BufferAllocator> alloc;
	pmem::RecoveryReport report;
	std::unique_ptr<pmem::KvStore> kv;
	std::unique_ptr<AllocatorSource> src;
	std::unique_ptr<Port> port;
};

/// Opens the stack for `o`. On failure prints "<prog>: <reason>" (and the
/// recovery report's problems) to stderr and returns nullptr.
std::unique_ptr<StoreStack> open_store_stack(const CommonOptions& o, const char* prog);

/// A socket a store service listens on: the port asked for (0: any) and
/// the protocol spoken there.
struct ListenSpec {
	int port = 0;
	Proto proto = Proto::resp;
};

/// A store service (daxnet-kv, daxnet-wal) ready to serve: what its main()
/// opens after parsing the options (open_store_service()).
struct StoreService {
	std::unique_ptr<StoreStack> stack;
	std::vector<UniqueFd> fds;        ///< the listening sockets, one per ListenSpec
	std::vector<Listener> listeners;  ///< the same, for the Server
	std::vector<int> ports;           ///< each ListenSpec's port as bound
	std::string transport;            ///< the port's transport by name ("uring", ...)
	std::string pool_path;            ///< the pool's absolute, normalized path

	const pmem::PoolView& pool() const noexcept { return stack->pool.view(); }
	pmem::BufferAllocator& alloc() noexcept { return *stack->alloc; }
	pmem::KvStore& kv() noexcept { return *stack->kv; }
	Port& port() noexcept { return *stack->port; }
	/// --pack-small's automatic value: half a buffer on uring, whose
	/// receive puts every message in a buffer of its own (a 1 KiB value
	/// would pin 4 KiB), 0 (never) on kernel and epoll, which pack small
	/// messages as they receive.
	std::uint32_t auto_pack_small() const noexcept;
};

/// What both store services' main() do after parsing their options, in
/// order: --threads must be 1 (one store per pool, one thread in this
/// version); the stop signals (install_stop_signals()); the store stack
/// (open_store_stack()); a listener on --bind for each of `listen`; the
/// client limits of `so` (apply_client_limits(), after the service set
/// its protocol limits). Returns 0, or the exit code after printing
/// "<prog>: <reason>" to stderr: 2 for a bad option, 1 when the pool, the
/// store, the transport or a listener cannot be opened.
int open_store_service(const CommonOptions& o, const char* prog, std::span<const ListenSpec> listen, ServerOptions& so,
		       StoreService& out);

/// Prints the startup line (a contract: tests/lib/daxnet_testlib.py):
/// "<prog> <version>: transport=<t> pool=<...> resp=<host:port> http=<host:port>
///  threads=1 <facts> recovered_log_entries=N ckpt_entries=M<tail>", the
/// addresses those of s's listeners.
void print_startup_line(const StoreService& s, const CommonOptions& o, const char* prog, std::string_view facts,
			std::string_view tail = {});

/// Runs `server` (serve()), then prints "<prog>: stopping (<signal>): N
/// requests, <done> <what>, N fences". Returns main()'s exit code.
int serve_store_service(const StoreService& s, Server& server, const char* prog, std::uint64_t done,
			std::string_view what);

/// "pool=/p/kv.pool (256 MiB, 58982 buffers x 4096, granularity=page, dax=no, created)"
std::string describe_pool(const pmem::Pool& pool, bool created);

/// "host:port" as the startup line writes it: an IPv6 host in brackets
/// ("[::1]:6380"; tests/lib/daxnet_testlib.py, the startup line contract).
std::string host_port(std::string_view host, int port);

/// Port ring sizes scaled to the pool (a small pool must not hand every
/// buffer to the spare ring).
PortOptions port_options_for(const CommonOptions& o, const pmem::PoolView& pool);

/// sd_notify(3) without libsystemd: sends `state` (e.g. "READY=1\nSTATUS=...")
/// as one datagram to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or
/// "@name" for the abstract namespace). Returns 0 when sent or when
/// $NOTIFY_SOCKET is unset (no supervisor), else -errno.
int notify_supervisor(std::string_view state) noexcept;

/// After the startup line: flushes stdout, tells a supervisor the service
/// is ready (systemd Type=notify), runs `server` until asked to stop and
/// says it is stopping. Returns Server::run()'s result.
int serve(Server& server);

/// Installs SIGINT/SIGTERM handlers that set stop_requested() (and ignores
/// SIGPIPE). Handlers are installed without SA_RESTART so blocking waits
/// return EINTR promptly.
void install_stop_signals();
bool stop_requested() noexcept;
/// The signal that asked to stop (0 if none).
int stop_signal() noexcept;
/// Asks every loop to stop (tests, fatal errors in one thread).
void request_stop() noexcept;

}  // namespace daxnet::svc
