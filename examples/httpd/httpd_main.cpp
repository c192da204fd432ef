// SPDX-License-Identifier: BSD-2-Clause
//
// daxnet-httpd: the HTTP server for the wrk benchmark, with PASTE's two
// workloads:
//   rpc  every GET is answered "200 OK" with a 64-byte body. The response
//        (head + body) is built once in a pool buffer and every reply is a
//        TX slot naming that buffer: nothing is copied per request.
//   wal  every POST body (~1 KiB with wrk's script) is flushed in place in
//        the buffer it was received in and appended to the WAL as a
//        reference, one fence per event-loop pass, then answered with a
//        short "201 Created". The log is rolling, like PASTE's phttpd: when
//        the ring fills, a checkpoint drops the old records and frees their
//        buffers (durability of every acknowledged POST up to then is what
//        counts; retention is daxnet-wal's job). GETs get the rpc answer.
// GET /stats answers the counters (JSON) in both workloads.
//
// --threads N (rpc only): N event loops, each with its own Port and
// SO_REUSEPORT listener, over disjoint ranges of the pool's buffers.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "daxnet/pmem/wal.h"
#include "daxnet/svc/options.h"
#include "daxnet/svc/server.h"

namespace {

using daxnet::svc::Conn;
using daxnet::svc::Server;
using Slice = daxnet::pmem::Slice;

constexpr std::size_t kRpcBody = 64;

/// BufferSource over buffers [base, base + n) of the pool, for one thread.
class RangeSource final : public daxnet::BufferSource {
public:
	RangeSource(std::uint32_t base, std::uint32_t n) : base_(base), alloc_(n) {}
	bool take(std::uint32_t& idx) noexcept override
	{
		std::int64_t b = alloc_.alloc();
		if (b < 0)
			return false;
		idx = base_ + static_cast<std::uint32_t>(b);
		return true;
	}
	void ref(std::uint32_t idx) noexcept override { alloc_.ref(idx - base_); }
	void unref(std::uint32_t idx) noexcept override { (void)alloc_.unref(idx - base_); }

private:
	std::uint32_t base_;
	daxnet::pmem::BufferAllocator alloc_;
};

struct Totals {
	std::uint64_t requests = 0, persisted = 0, syscalls = 0, syncs = 0, rx_bytes = 0, tx_bytes = 0,
		      cpu_copied = 0, tx_zerocopy = 0, connections = 0, protocol_errors = 0;
};

class HttpdService final : public daxnet::svc::Service {
public:
	HttpdService(bool wal_workload, daxnet::pmem::Wal* wal, const daxnet::pmem::PoolView& pool,
		     std::string transport)
	    : wal_workload_(wal_workload), wal_(wal), pool_(pool), transport_(std::move(transport))
	{
		body_.reserve(8);
	}

	/// Builds the rpc response in a buffer of `port`; false when none is free.
	bool prepare(daxnet::Port& port, daxnet::pmem::BufferAllocator* wal_alloc);
	void on_http(Server& srv, Conn& c) override;
	void end_of_pass(Server&) override
	{
		if (staged_ == 0)
			return;
		(void)wal_->commit();  // one fence for every POST of the pass
		persisted_ += staged_;
		staged_ = 0;
		// Rolling log: logged bodies pin their buffers until a checkpoint
		// drops the records; do it before the transport runs out of spares.
		auto& a = wal_->allocator();
		if (a.free_count() < std::max<std::size_t>(64, a.count() / 8))
			(void)wal_->checkpoint([](daxnet::pmem::CheckpointWriter&) { return 0; });
	}
	std::uint64_t persisted() const noexcept { return persisted_; }
	void add_to(Totals& t, Server& srv) const;

	/// Shared by the threads for /stats (each adds its own under the lock).
	static inline std::mutex stats_lock;
	static inline std::vector<std::pair<const HttpdService*, Server*>> all;

private:
	void stats(Server& srv, Conn& c);

	bool wal_workload_;
	daxnet::pmem::Wal* wal_;
	daxnet::pmem::PoolView pool_;
	std::string transport_;
	daxnet::BufferLease rpc_;
	std::uint32_t rpc_len_ = 0;
	Slice name_{};
	std::vector<Slice> body_;
	std::uint64_t staged_ = 0;
	std::uint64_t persisted_ = 0;
	std::uint64_t refused_ = 0;
};

bool HttpdService::prepare(daxnet::Port& port, daxnet::pmem::BufferAllocator* wal_alloc)
{
	rpc_ = port.alloc();
	if (!rpc_)
		return false;
	daxnet::proto::OutBuf o;
	std::string body(kRpcBody - 1, 'x');
	body += '\n';
	daxnet::proto::http_response(o, 200, "", body, true);
	rpc_len_ = static_cast<std::uint32_t>(o.size());
	std::memcpy(port.buffer(rpc_.index()), o.data(), o.size());
	if (wal_workload_) {
		// the stream name every record is logged under, in a pool buffer
		std::int64_t b = wal_alloc->alloc();
		if (b < 0)
			return false;
		const char nm[] = "httpd";
		std::memcpy(pool_.buffer(static_cast<std::uint32_t>(b)), nm, sizeof nm - 1);
		name_ = Slice{static_cast<std::uint32_t>(b), 0, sizeof nm - 1};
	}
	return true;
}

void HttpdService::add_to(Totals& t, Server& srv) const
{
	const auto& sc = srv.counters();
	const auto rc = srv.port().counters();
	t.requests += sc.requests;
	t.persisted += persisted_;
	t.syscalls += rc.syscalls + sc.waits;
	t.syncs += rc.syncs;
	t.rx_bytes += rc.rx_bytes;
	t.tx_bytes += rc.tx_bytes;
	t.cpu_copied += rc.cpu_copied;
	t.tx_zerocopy += sc.tx_zerocopy;
	t.connections += sc.connections;
	t.protocol_errors += sc.protocol_errors;
}

void HttpdService::stats(Server& srv, Conn& c)
{
	Totals t;
	{
		std::lock_guard<std::mutex> g(stats_lock);
		for (auto& [svc, s] : all)
			if (svc == this)
				add_to(t, srv);
			else
				svc->add_to(t, *s);  // racy read of plain counters: good enough for stats
	}
	const auto& pc = pool_.domain().counters();
	const double req = t.requests ? static_cast<double>(t.requests) : 1.0;
	std::string body = fmt::format(
		"{{\"service\":\"daxnet-httpd\",\"version\":\"{}\",\"workload\":\"{}\",\"transport\":\"{}\","
		"\"granularity\":\"{}\",\"requests\":{},\"persisted\":{},\"refused\":{},\"fences\":{},\"flushes\":{},"
		"\"msyncs\":{},\"fences_per_request\":{:.4f},\"syscalls\":{},\"syscalls_per_request\":{:.4f},"
		"\"syncs\":{},\"rx_bytes\":{},\"tx_bytes\":{},\"cpu_copied_bytes\":{},\"tx_zerocopy_bytes\":{},"
		"\"connections\":{},\"protocol_errors\":{},\"checkpoints\":{}}}\n",
		daxnet::svc::kVersion, wal_workload_ ? "wal" : "rpc", transport_,
		daxnet::pmem::to_string(pool_.domain().granularity()), t.requests, t.persisted, refused_, pc.drains,
		pc.flush_calls, pc.msyncs, static_cast<double>(pc.drains) / req, t.syscalls,
		static_cast<double>(t.syscalls) / req, t.syncs, t.rx_bytes, t.tx_bytes, t.cpu_copied, t.tx_zerocopy,
		t.connections, t.protocol_errors, wal_ ? wal_->stats().checkpoints : 0);
	daxnet::proto::http_response(c.tx.bytes(), 200, "application/json", body, c.http.request().keep_alive);
}

void HttpdService::on_http(Server& srv, Conn& c)
{
	using daxnet::proto::HttpMethod;
	const auto& rq = c.http.request();
	const bool ka = rq.keep_alive;
	c.closing = !ka;
	if (rq.target.len == 6 && c.view(rq.target, 0) == "/stats") {
		stats(srv, c);
		return;
	}
	if (wal_workload_ && (rq.method == HttpMethod::post || rq.method == HttpMethod::put)) {
		body_.clear();
		c.chain.pieces(rq.body, [&](const daxnet::proto::Piece& p) { body_.push_back(Slice{p.buf(), p.buf_off(), p.len}); });
		daxnet::pmem::Entry e;
		e.type = daxnet::pmem::RecordType::stream_append;
		e.aux = persisted_ + staged_;
		e.key = name_;
		e.value = body_;
		int rc = wal_->append(e);
		if (rc == -ENOSPC) {
			// rolling log: drop every old record (their buffers return to
			// the pool); staged records become durable as part of it
			if (wal_->checkpoint([](daxnet::pmem::CheckpointWriter&) { return 0; }) == 0) {
				persisted_ += staged_;
				staged_ = 0;
				rc = wal_->append(e);
			}
		}
		if (rc < 0) {
			++refused_;
			daxnet::svc::http_refusal(c.tx.bytes(), {daxnet::svc::Refusal::Code::full, "daxnet: log full"}, ka);
			return;
		}
		++staged_;
		daxnet::proto::http_response(c.tx.bytes(), 201, "", "", ka);
		return;
	}
	if (rq.method != HttpMethod::get && rq.method != HttpMethod::head) {
		daxnet::svc::http_refusal(c.tx.bytes(), {daxnet::svc::Refusal::Code::not_allowed, "method not allowed"}, ka);
		return;
	}
	if (ka && rq.method == HttpMethod::get) {
		c.tx.append_ref(srv.source(), rpc_.index(), 0, rpc_len_);  // zero-copy: a TX slot naming the buffer
		return;
	}
	std::string body(kRpcBody - 1, 'x');
	body += '\n';
	if (rq.method == HttpMethod::head)
		daxnet::proto::http_head(c.tx.bytes(), 200, "", body.size(), ka);
	else
		daxnet::proto::http_response(c.tx.bytes(), 200, "", body, ka);
}

struct Worker {
	std::unique_ptr<daxnet::BufferSource> src;
	std::optional<daxnet::Port> port;
	daxnet::UniqueFd lfd;
	std::unique_ptr<HttpdService> svc;
	std::unique_ptr<Server> server;
	int rc = 0;
};

}  // namespace

int main(int argc, char** argv)
{
	CLI::App app{"daxnet-httpd: HTTP server for the wrk benchmark on a daxnet pool (workloads rpc and wal)"};
	daxnet::svc::CommonOptions opt;
	std::string workload = "rpc";
	daxnet::svc::add_common_options(app, opt, 8081);
	app.add_option("--workload", workload, "rpc: GET -> 64-byte body; wal: POST body persisted in place")
		->check(CLI::IsMember({"rpc", "wal"}))
		->capture_default_str();
	app.set_version_flag("--version", std::string("daxnet-httpd ") + daxnet::svc::kVersion);
	CLI11_PARSE(app, argc, argv);
	const bool wal_workload = workload == "wal";
	if (wal_workload && opt.threads != 1) {
		fmt::print(stderr, "daxnet-httpd: --workload wal: one WAL per pool, use --threads 1\n");
		return 2;
	}
	daxnet::svc::install_stop_signals();
	bool created = false;
	auto pool = daxnet::svc::open_or_create_pool(opt, &created);
	if (!pool) {
		fmt::print(stderr, "daxnet-httpd: {}\n", pool.error().message);
		return 1;
	}
	const auto& view = pool->view();

	// wal workload: one allocator and WAL over the whole pool.
	std::unique_ptr<daxnet::pmem::BufferAllocator> alloc;
	std::optional<daxnet::pmem::Wal> wal;
	daxnet::pmem::RecoveryReport report;
	if (wal_workload) {
		alloc = std::make_unique<daxnet::pmem::BufferAllocator>(view.buffer_count());
		auto w = daxnet::pmem::Wal::open(view, *alloc, {}, [](const daxnet::pmem::Entry&, std::uint64_t) {}, &report);
		if (!w) {
			fmt::print(stderr, "daxnet-httpd: {}: WAL recovery failed: {}\n", opt.pool, w.error().message);
			return 1;
		}
		wal.emplace(std::move(*w));
	}

	const unsigned n = opt.threads;
	std::vector<Worker> workers(n);
	int actual = opt.port;
	const std::uint32_t per = view.buffer_count() / n;
	for (unsigned i = 0; i < n; ++i) {
		Worker& w = workers[i];
		if (wal_workload)
			w.src = std::make_unique<daxnet::AllocatorSource>(*alloc);
		else
			w.src = std::make_unique<RangeSource>(i * per, per);
		auto port = daxnet::Port::open(view, *w.src, daxnet::svc::port_options_for(opt, view));
		if (!port) {
			fmt::print(stderr, "daxnet-httpd: transport {}: {}\n", opt.transport, port.error().message);
			return 1;
		}
		w.port.emplace(std::move(*port));
		auto lf = daxnet::listen_tcp(opt.bind, static_cast<std::uint16_t>(actual), {.reuseport = n > 1});
		if (!lf) {
			fmt::print(stderr, "daxnet-httpd: {}\n", lf.error().message);
			return 1;
		}
		w.lfd = std::move(*lf);
		actual = daxnet::local_port(w.lfd.get());
		w.svc = std::make_unique<HttpdService>(wal_workload, wal ? &*wal : nullptr, view,
						       std::string(daxnet::to_string(w.port->transport())));
		if (!w.svc->prepare(*w.port, alloc.get())) {
			fmt::print(stderr, "daxnet-httpd: no free buffer in the pool\n");
			return 1;
		}
		w.server = std::make_unique<Server>(*w.port, *w.svc,
						    std::vector<daxnet::svc::Listener>{{w.lfd.get(), daxnet::svc::Proto::http}},
						    daxnet::svc::ServerOptions{});
		HttpdService::all.emplace_back(w.svc.get(), w.server.get());
	}
	fmt::print("daxnet-httpd {}: transport={} {} http={} threads={} workload={}\n", daxnet::svc::kVersion,
		   daxnet::to_string(workers[0].port->transport()), daxnet::svc::describe_pool(*pool, created),
		   daxnet::svc::host_port(opt.bind, actual), n, workload);
	std::fflush(stdout);
	daxnet::svc::notify_supervisor("READY=1\nSTATUS=serving");  // systemd Type=notify

	std::vector<std::thread> threads;
	for (unsigned i = 1; i < n; ++i)
		threads.emplace_back([&w = workers[i]] { w.rc = w.server->run(); });
	workers[0].rc = workers[0].server->run();
	daxnet::svc::request_stop();
	for (auto& t : threads)
		t.join();
	std::uint64_t requests = 0, persisted = 0;
	int rc = 0;
	for (auto& w : workers) {
		requests += w.server->counters().requests;
		persisted += w.svc->persisted();
		rc |= w.rc;
	}
	fmt::print("daxnet-httpd: stopping: {} requests, {} persisted, {} fences\n", requests, persisted,
		   view.domain().counters().drains);
	// servers go before their ports, ports before sources (reverse order of members)
	for (auto& w : workers) {
		w.server.reset();
		w.svc.reset();
		w.port.reset();
	}
	return rc == 0 ? 0 : 1;
}
