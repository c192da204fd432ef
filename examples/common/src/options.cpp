// SPDX-License-Identifier: BSD-2-Clause
#include "daxnet/svc/options.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <vector>

#include "daxnet/svc/server.h"
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace daxnet::svc {

namespace {

std::atomic<int> g_stop_signal{0};
std::atomic<bool> g_stop{false};

extern "C" void on_stop_signal(int sig)
{
	g_stop_signal.store(sig, std::memory_order_relaxed);
	g_stop.store(true, std::memory_order_release);
}

/// Every attached connection holds a socket fd: raise the soft limit on
/// open files towards the hard limit so --max-conns is reachable.
void raise_nofile_limit(std::uint32_t conns)
{
	struct rlimit rl {};
	if (::getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	const rlim_t want = std::min<rlim_t>(rl.rlim_max, rlim_t{conns} + 256);
	if (rl.rlim_cur < want) {
		rl.rlim_cur = want;
		::setrlimit(RLIMIT_NOFILE, &rl);
	}
}

}  // namespace

void add_common_options(CLI::App& app, CommonOptions& o, int default_port)
{
	o.port = default_port;
	app.set_config("--config", "", "read options from FILE: lines `name = value` (long option names without "
			       "\"--\"); the command line overrides the file")
		->type_name("FILE");
	app.allow_config_extras(CLI::config_extras_mode::error);
	app.add_option("--pool", o.pool, "pool file (created when absent)")->required();
	app.add_option("--pool-size", o.pool_size, "size of a newly created pool, e.g. 256M, 4G")
		->capture_default_str();
	app.add_option("--buffer-size", o.buffer_size, "packet buffer size of a newly created pool")
		->check(CLI::IsMember({2048, 4096}))
		->capture_default_str();
	app.add_option("--port", o.port, "TCP port to listen on (0: any free port)")
		->check(CLI::Range(0, 65535))
		->capture_default_str();
	app.add_option("--bind", o.bind, "address to listen on")->capture_default_str();
	app.add_option("--transport", o.transport, "auto, kernel (daxnet.ko), uring or epoll")
		->check(CLI::IsMember({"auto", "kernel", "uring", "epoll"}))
		->capture_default_str();
	app.add_option("--threads", o.threads, "event-loop threads")
		->check(CLI::Range(1u, 64u))
		->capture_default_str();
	app.add_option("--max-conns", o.max_conns,
		       "connections each event loop attaches at once; more are accepted and closed")
		->check(CLI::Range(1u, 1u << 20))
		->capture_default_str();
	app.add_flag("--require-dax", o.require_dax, "refuse to run unless the pool maps with MAP_SYNC");
	app.add_flag("--zerocopy", o.zerocopy,
		     "kernel transport: zero-copy mode (payload lands in the pool via a daxnet vnic, "
		     "TX by reference); see docs/kernel.md");
	app.add_option("--timeout", o.timeout,
		       "close a client connection after this many seconds without a request (Redis's timeout; 0: never)")
		->capture_default_str();
	app.add_option("--client-output-buffer-limit", o.client_output_buffer_limit,
		       "\"HARD SOFT SECONDS\" (or HARD alone) as Redis's client-output-buffer-limit for normal "
		       "clients: a client whose unsent replies exceed HARD bytes, or SOFT bytes for SECONDS in a row, "
		       "is closed (0: no limit; default 32mb: twice the largest value, since replies take pool buffers)")
		->capture_default_str();
	app.add_option("--client-query-buffer-limit", o.client_query_buffer_limit,
		       "bytes one client's incomplete request may pin (Redis's client-query-buffer-limit); larger "
		       "requests are refused at their header and the client closed (auto: the largest request the "
		       "service accepts)")
		->capture_default_str();
	app.add_option("--maxmemory-clients", o.maxmemory_clients,
		       "pool bytes all clients together may pin with incomplete requests and unsent replies, as a size "
		       "or N% of the pool; beyond it the client pinning the most is closed (0: no limit)")
		->capture_default_str();
	app.add_option("--checkpoint-step", o.checkpoint_step,
		       "daxnet-kv/daxnet-wal: a checkpoint writes this many entries per event-loop pass, so no "
		       "pass stalls for a whole one (0: whole checkpoints, ~0.5 s per million keys -- except the one "
		       "the cleaner asks for after a cycle that emptied buffers, always written a bounded step per pass)")
		->capture_default_str();
	app.add_option("--cleaner", o.cleaner,
		       "daxnet-kv/daxnet-wal: move small live values out of sparsely used buffers into dense "
		       "ones in the background (docs/wal-format.md, the cleaner)")
		->capture_default_str();
}

Status apply_client_limits(const CommonOptions& o, const pmem::PoolView& pool, const pmem::BufferAllocator* alloc,
			   ServerOptions& so)
{
	so.idle_timeout_s = o.timeout;
	// --client-output-buffer-limit [normal] HARD SOFT SECONDS
	std::istringstream in(o.client_output_buffer_limit);
	std::vector<std::string> w;
	for (std::string t; in >> t;)
		w.push_back(t);
	if (!w.empty() && (w[0] == "normal" || w[0] == "NORMAL"))
		w.erase(w.begin());
	const std::string bad = "--client-output-buffer-limit '" + o.client_output_buffer_limit +
				"': expected \"HARD SOFT SECONDS\", e.g. \"32mb 0 0\"";
	if (w.size() == 1) {  // HARD alone: no soft limit
		w.push_back("0");
		w.push_back("0");
	}
	if (w.size() != 3)
		return make_error(EINVAL, bad);
	auto hard = parse_size(w[0]);
	auto soft = parse_size(w[1]);
	if (!hard || !soft)
		return make_error(EINVAL, bad + ": " + (hard ? soft.error() : hard.error()).message);
	char* end = nullptr;
	const unsigned long secs = std::strtoul(w[2].c_str(), &end, 10);
	if (w[2].empty() || *end != '\0' || secs > 86400ul * 365)
		return make_error(EINVAL, bad);
	so.output_hard = *hard;
	so.output_soft = *soft;
	so.output_soft_s = static_cast<std::uint32_t>(secs);

	if (o.client_query_buffer_limit != "auto") {
		auto q = parse_size(o.client_query_buffer_limit);
		if (!q)
			return make_error(EINVAL, "--client-query-buffer-limit: " + q.error().message);
		if (*q != 0 && *q < 1024)
			return make_error(EINVAL, "--client-query-buffer-limit: at least 1kb (or 0: no limit)");
		so.query_limit = *q;
	} else {
		// The largest request a parser lets through, and the slot that
		// may end with the next one's first bytes.
		so.query_limit = std::max<std::uint64_t>(so.resp.max_request,
							 so.http.max_body + so.http.max_header_bytes) +
				 pool.buffer_size();
	}

	const std::uint64_t pool_bytes = std::uint64_t{pool.buffer_count()} * pool.buffer_size();
	const std::string& mc = o.maxmemory_clients;
	if (!mc.empty() && mc.back() == '%') {
		const std::string num = mc.substr(0, mc.size() - 1);
		const unsigned long pct = std::strtoul(num.c_str(), &end, 10);
		if (num.empty() || *end != '\0' || pct > 100)
			return make_error(EINVAL, "--maxmemory-clients '" + mc + "': a size or 0% .. 100%");
		so.clients_limit = pool_bytes / 100 * pct;
	} else {
		auto m = parse_size(mc);
		if (!m)
			return make_error(EINVAL, "--maxmemory-clients: " + m.error().message);
		so.clients_limit = *m;
	}
	if (alloc)
		so.free_buffers = [alloc] { return static_cast<std::uint64_t>(alloc->free_count()); };
	return {};
}

Result<pmem::Pool> open_or_create_pool(const CommonOptions& o, bool* created)
{
	struct stat st{};
	if (created)
		*created = false;
	if (::stat(o.pool.c_str(), &st) == 0) {
		pmem::Pool::OpenOptions oo;
		oo.require_dax = o.require_dax;
		return pmem::Pool::open(o.pool, oo);
	}
	if (errno != ENOENT)
		return make_error(errno, o.pool + ": " + std::strerror(errno));
	auto size = parse_size(o.pool_size);
	if (!size)
		return make_error(EINVAL, "--pool-size: " + size.error().message);
	pmem::Pool::CreateOptions co;
	co.size = *size;
	co.buffer_size = o.buffer_size;
	co.require_dax = o.require_dax;
	auto p = pmem::Pool::create(o.pool, co);
	if (p && created)
		*created = true;
	return p;
}

std::unique_ptr<StoreStack> open_store_stack(const CommonOptions& o, const char* prog)
{
	bool created = false;
	auto pool = open_or_create_pool(o, &created);
	if (!pool) {
		fmt::print(stderr, "{}: {}\n", prog, pool.error().message);
		return nullptr;
	}
	auto st = std::unique_ptr<StoreStack>(new StoreStack{std::move(*pool), created, {}, {}, {}, {}, {}});
	const auto& view = st->pool.view();
	st->alloc = std::make_unique<pmem::BufferAllocator>(view.buffer_count());
	pmem::KvOptions ko;
	ko.checkpoint_step = o.checkpoint_step;
	ko.cleaner.enabled = o.cleaner;
	auto kv = pmem::KvStore::open(view, *st->alloc, ko, &st->report);
	if (!kv) {
		fmt::print(stderr, "{}: {}: recovery failed: {}\n", prog, o.pool, kv.error().message);
		for (const auto& p : st->report.problems)
			fmt::print(stderr, "  {}\n", p);
		return nullptr;
	}
	st->kv = std::move(*kv);
	st->src = std::make_unique<AllocatorSource>(*st->alloc);
	auto port = Port::open(view, *st->src, port_options_for(o, view));
	if (!port) {
		fmt::print(stderr, "{}: transport {}: {}\n", prog, o.transport, port.error().message);
		return nullptr;
	}
	st->port = std::make_unique<Port>(std::move(*port));
	return st;
}

std::uint32_t StoreService::auto_pack_small() const noexcept
{
	return stack->port->transport() == TransportKind::uring ? pool().buffer_size() / 2 : 0;
}

int open_store_service(const CommonOptions& o, const char* prog, std::span<const ListenSpec> listen, ServerOptions& so,
		       StoreService& out)
{
	if (o.threads != 1) {
		fmt::print(stderr, "{}: --threads {}: one store per pool, one thread in this version; use --threads 1\n",
			   prog, o.threads);
		return 2;
	}
	install_stop_signals();
	out.stack = open_store_stack(o, prog);
	if (!out.stack)
		return 1;
	for (const ListenSpec& l : listen) {
		auto fd = listen_tcp(o.bind, static_cast<std::uint16_t>(l.port));
		if (!fd) {
			fmt::print(stderr, "{}: {}\n", prog, fd.error().message);
			return 1;
		}
		out.ports.push_back(local_port(fd->get()));
		out.listeners.push_back({fd->get(), l.proto});
		out.fds.push_back(std::move(*fd));
	}
	out.transport = std::string(to_string(out.port().transport()));
	out.pool_path = std::filesystem::absolute(out.stack->pool.path()).lexically_normal().string();
	if (Status ls = apply_client_limits(o, out.pool(), out.stack->alloc.get(), so); !ls) {
		fmt::print(stderr, "{}: {}\n", prog, ls.error().message);
		return 2;
	}
	return 0;
}

void print_startup_line(const StoreService& s, const CommonOptions& o, const char* prog, std::string_view facts,
			std::string_view tail)
{
	std::string addrs;
	for (std::size_t i = 0; i < s.listeners.size(); ++i)
		addrs += fmt::format("{}{}={}", i ? " " : "", s.listeners[i].proto == Proto::resp ? "resp" : "http",
				     host_port(o.bind, s.ports[i]));
	fmt::print("{} {}: transport={} {} {} threads=1 {} recovered_log_entries={} ckpt_entries={}{}\n", prog, kVersion,
		   s.transport, describe_pool(s.stack->pool, s.stack->created), addrs, facts,
		   s.stack->report.log_entries, s.stack->report.ckpt_entries, tail);
}

int serve_store_service(const StoreService& s, Server& server, const char* prog, std::uint64_t done,
			std::string_view what)
{
	const int rc = serve(server);
	fmt::print("{}: stopping ({}): {} requests, {} {}, {} fences\n", prog,
		   stop_signal() ? strsignal(stop_signal()) : "error", server.counters().requests, done, what,
		   s.pool().domain().counters().drains);
	return rc == 0 ? 0 : 1;
}

std::string describe_pool(const pmem::Pool& pool, bool created)
{
	const auto& g = pool.geometry();
	return fmt::format("pool={} ({}, {} buffers x {}, granularity={}, dax={}{})", pool.path(),
			   pmem::human_bytes(g.pool_size), g.buffer_count, g.buffer_size, pmem::to_string(pool.granularity()),
			   pool.is_dax() ? "yes" : "no", created ? ", created" : "");
}

PortOptions port_options_for(const CommonOptions& o, const pmem::PoolView& pool)
{
	PortOptions po;
	auto t = parse_transport(o.transport);
	po.transport = t ? *t : TransportKind::automatic;
	po.zerocopy = o.zerocopy;
	po.max_conns = o.max_conns;
	raise_nofile_limit(o.max_conns);
	const std::uint32_t n = pool.buffer_count();
	auto pow2_at_most = [](std::uint32_t v, std::uint32_t cap) {
		std::uint32_t p = 4;
		while (p * 2 <= v && p * 2 <= cap)
			p *= 2;
		return p;
	};
	po.rx_slots = pow2_at_most(n / 4, 1024);
	po.tx_slots = pow2_at_most(n / 4, 1024);
	po.spare_slots = pow2_at_most(n / 16, 256);
	return po;
}

int notify_supervisor(std::string_view state) noexcept
{
	const char* path = std::getenv("NOTIFY_SOCKET");
	if (!path || !*path)
		return 0;
	sockaddr_un sa{};
	sa.sun_family = AF_UNIX;
	const std::size_t len = std::strlen(path);
	if (len >= sizeof sa.sun_path)
		return -ENAMETOOLONG;
	if (path[0] != '/' && path[0] != '@')
		return -EAFNOSUPPORT;  // e.g. vsock: not supported
	std::memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';  // abstract namespace; the length excludes a trailing NUL
	const UniqueFd sock(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
	if (!sock)
		return -errno;
	const int fd = sock.get();
	const auto salen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);
	const ssize_t n = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&sa),
				   salen);
	return n < 0 ? -errno : 0;
}

std::string host_port(std::string_view host, int port)
{
	if (host.find(':') != std::string_view::npos)
		return fmt::format("[{}]:{}", host, port);
	return fmt::format("{}:{}", host, port);
}

int serve(Server& server)
{
	std::fflush(stdout);
	notify_supervisor("READY=1\nSTATUS=serving");  // systemd Type=notify
	const int rc = server.run();
	notify_supervisor("STOPPING=1");
	return rc;
}

void install_stop_signals()
{
	struct sigaction sa{};
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;  // no SA_RESTART: waits return EINTR
	::sigaction(SIGINT, &sa, nullptr);
	::sigaction(SIGTERM, &sa, nullptr);
	struct sigaction ign{};
	ign.sa_handler = SIG_IGN;
	sigemptyset(&ign.sa_mask);
	::sigaction(SIGPIPE, &ign, nullptr);
}

bool stop_requested() noexcept
{
	return g_stop.load(std::memory_order_acquire);
}

int stop_signal() noexcept
{
	return g_stop_signal.load(std::memory_order_relaxed);
}

void request_stop() noexcept
{
	g_stop.store(true, std::memory_order_release);
}

}  // namespace daxnet::svc
