// SPDX-License-Identifier: BSD-2-Clause
//
// daxnet-kv's service core: construction (recovery of the expiry queue and
// the database map), connections and clients, RESP input, the dispatcher
// that applies the command table's flags before every handler (kv.h), reply
// helpers, INFO's rate samples and the end of a pass (StoreCore: one commit
// for every write of the pass, docs/design.md).
#include <fmt/format.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <string>

#include "kv.h"

namespace daxnet::kv {

namespace resp = daxnet::proto::resp;

bool ieq(std::string_view a, std::string_view b) noexcept
{
	if (a.size() != b.size())
		return false;
	for (std::size_t i = 0; i < a.size(); ++i) {
		char x = a[i], y = b[i];
		if (x >= 'A' && x <= 'Z')
			x = static_cast<char>(x - 'A' + 'a');
		if (y >= 'A' && y <= 'Z')
			y = static_cast<char>(y - 'A' + 'a');
		if (x != y)
			return false;
	}
	return true;
}

bool parse_i64(std::string_view s, std::int64_t& v) noexcept
{
	if (s.empty() || s.size() > 20 || (s.size() > 1 && s[0] == '0') || s[0] == '+')
		return false;
	if (s.size() > 1 && s[0] == '-' && s[1] == '0')
		return false;
	auto r = std::from_chars(s.data(), s.data() + s.size(), v);
	return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

KvService::KvService(KvStore& kv, const daxnet::pmem::PoolView& pool, daxnet::pmem::BufferAllocator& alloc,
		     const KvConfig& cfg)
    : kv_(kv), pool_(pool), alloc_(alloc), arena_(pool, alloc), cfg_(cfg),
      core_("daxnet-kv", kv, alloc,
	    cfg.reserve ? cfg.reserve : daxnet::pmem::service_reserve(pool.buffer_count()),
	    // short: below the reserve; a checkpoint only gives back the
	    // buffers of values superseded since the last one
	    daxnet::svc::ReclaimPolicy{.low_buffers = 0, .min_new_entries = 1024})
{
	values_.reserve(64);
	argv_.reserve(16);
	cfg_.reserve = core_.reserve();
	cmd_stats_.resize(command_table().size());
	load_db_map();
	kv_.set_expire_hook(&KvService::on_expired, this);
	kv_.for_each([&](std::string_view k, const ValueRef& v) {
		if (db_of(k) != 0 || (k.size() >= 2 && k[0] == '\xff' && k[1] == '\xfe'))
			multi_db_ = true;
		if (v.expiry_ns)
			expq_.emplace(v.expiry_ns, std::string(k));
	});
	start_ns_ = last_save_ns_ = daxnet::pmem::realtime_ns();
	std::uint64_t r = start_ns_ ^ (static_cast<std::uint64_t>(::getpid()) << 32);
	for (int i = 0; i < 40; ++i) {
		r = r * 6364136223846793005ull + 1442695040888963407ull;
		run_id_.push_back("0123456789abcdef"[(r >> 60) & 15]);
	}
	for (int i = 0; i < 40; ++i) {
		r = r * 6364136223846793005ull + 1442695040888963407ull;
		repl_id_.push_back("0123456789abcdef"[(r >> 60) & 15]);
	}
}

void KvService::reply_null(Ctx& x)
{
	if (x.resp3())
		x.o.append("_\r\n");
	else
		resp::nil(x.o);
}

void KvService::reply_value(Ctx& x, const ValueRef& v)
{
	// send_value() copies into a captured reply (a script's redis.call)
	resp::bulk_header(x.o, v.size);
	daxnet::svc::send_value(x.srv, x.c, x.o, pool_, v.slices, v.size);
	resp::crlf(x.o);
}

void KvService::reply_value_copy(Ctx& x, const ValueRef& v)
{
	resp::bulk_header(x.o, v.size);
	for (const Slice& s : v.slices)
		x.o.append(daxnet::pmem::slice_bytes(pool_, s));
	resp::crlf(x.o);
}

namespace {

std::string sock_name(int fd, bool peer)
{
	sockaddr_storage ss{};
	socklen_t len = sizeof ss;
	auto* sa = reinterpret_cast<sockaddr*>(&ss);
	if ((peer ? ::getpeername(fd, sa, &len) : ::getsockname(fd, sa, &len)) != 0)
		return "?:0";
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (ss.ss_family == AF_INET) {
		auto* in = reinterpret_cast<sockaddr_in*>(&ss);
		::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
		port = ntohs(in->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
		::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
		port = ntohs(in6->sin6_port);
	}
	return fmt::format("{}:{}", host, port);
}

}  // namespace

Client& KvService::client_of(Server&, Conn& c)
{
	if (!c.app) {
		auto cl = std::make_shared<Client>();
		cl->id = next_client_id_++;
		cl->conn = c.id;
		cl->fd = c.fd.get();
		cl->authed = cfg_.requirepass.empty();
		cl->created_ns = cl->last_ns = daxnet::pmem::realtime_ns();
		cl->addr = sock_name(c.fd.get(), true);
		cl->laddr = sock_name(c.fd.get(), false);
		clients_[cl->id] = cl.get();
		c.app = std::move(cl);
	}
	return *static_cast<Client*>(c.app.get());
}

void KvService::on_close(Server&, Conn& c)
{
	if (!c.app)
		return;
	Client& cl = *static_cast<Client*>(c.app.get());
	unwatch_all(cl);
	unsubscribe_all(cl);
	if (cl.blocked)
		std::erase(blocked_, cl.id);
	if (cl.replica)
		drop_replica(cl.id);
	clients_.erase(cl.id);
}

void KvService::on_resp(Server& srv, Conn& c)
{
	Client& cl = client_of(srv, c);
	srv_ = &srv;
	auto args = c.resp.args();
	argv_.clear();
	if (c.resp.inline_quoted()) {
		// an inline request with quotes: split by Redis' rules (copies)
		std::vector<char> tmp;
		const std::string_view line = c.chain.view(c.resp.inline_line(), tmp);
		if (!daxnet::proto::split_inline(line, inline_args_)) {
			resp::error(c.tx.bytes(), "ERR Protocol error: unbalanced quotes in request");
			srv.close_after_reply(c);
			return;
		}
		if (inline_args_.empty())
			return;
		for (const std::string& a : inline_args_)
			argv_.push_back(a);
		Ctx x{srv, c, cl, c.tx.bytes(), argv_, nullptr};
		dispatch(x);
		return;
	}
	for (std::size_t i = 0; i < args.size(); ++i)
		argv_.push_back(c.view(args[i], i));
	Ctx x{srv, c, cl, c.tx.bytes(), argv_, args.data()};
	dispatch(x);
}

namespace {

/// What a RESP2 client in subscribed mode may run.
bool pubsub_context_ok(const Cmd* c) noexcept
{
	const std::string_view n(c->name);
	return n == "subscribe" || n == "psubscribe" || n == "unsubscribe" || n == "punsubscribe" || n == "ping" ||
	       n == "quit" || n == "reset";
}

bool tx_control(const Cmd* c) noexcept
{
	const std::string_view n(c->name);
	return n == "exec" || n == "discard" || n == "multi" || n == "watch" || n == "quit" || n == "reset";
}

}  // namespace

void KvService::dispatch(Ctx& x)
{
	Client& cl = x.cl;
	if (cl.blocked) [[unlikely]] {
		hold_request(x);  // runs once its blocking command is answered
		return;
	}
	if (cl.replica) {
		replica_input(x);
		return;
	}
	const Cmd* cmd = find_command(x.arg(0));
	if (!cmd) {
		std::string_view shown[4];
		std::size_t ns = 0;
		for (std::size_t i = 1; i < x.argc() && ns < 4; ++i)
			shown[ns++] = x.arg(i);
		++errors_;
		if (cl.in_multi)
			cl.multi_error = true;
		if (!cl.authed) {
			resp::error(x.o, "NOAUTH Authentication required.");
			return;
		}
		resp::unknown_command(x.o, x.arg(0), std::span<const std::string_view>(shown, ns));
		return;
	}
	x.cmd = cmd;
	CmdStat& st = cmd_stats_[static_cast<std::size_t>(cmd - command_table().data())];
	if (!cl.authed && !(cmd->flags & kNoAuth)) {
		++st.rejected;
		++errors_;
		resp::error(x.o, "NOAUTH Authentication required.");
		return;
	}
	const auto argc = static_cast<int>(x.argc());
	if ((cmd->arity > 0 && argc != cmd->arity) || (cmd->arity < 0 && argc < -cmd->arity)) {
		++st.rejected;
		++errors_;
		if (cl.in_multi)
			cl.multi_error = true;
		resp::wrong_arity(x.o, cmd->name);
		return;
	}
	if (cl.resp == 2 && subscriptions(cl) > 0 && !pubsub_context_ok(cmd)) {
		++st.rejected;
		++errors_;
		resp::error(x.o, fmt::format("ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / "
					     "QUIT / RESET are allowed in this context",
					     cmd->name));
		return;
	}
	if (cl.in_multi && !tx_control(cmd)) {
		if (cmd->flags & kNoMulti) {
			++st.rejected;
			cl.multi_error = true;
			resp::error(x.o, "ERR Command not allowed inside a transaction");
			return;
		}
		if ((cmd->flags & kDenyOom) && over_maxmemory()) {
			++st.rejected;
			cl.multi_error = true;
			resp::error(x.o, "OOM command not allowed when used memory > 'maxmemory'.");
			return;
		}
		cl.queue.emplace_back(x.argv.begin(), x.argv.end());
		resp::simple(x.o, "QUEUED");
		return;
	}
	if ((cmd->flags & kDenyOom) && cmd->first_key > 0) {
		// stored keys are bounded (--max-key); reads of longer keys just miss
		const int last = cmd->last_key < 0 ? argc + cmd->last_key : cmd->last_key;
		for (int i = cmd->first_key; i <= last && i < argc; i += cmd->step)
			if (!key_fits(x, static_cast<std::size_t>(i))) {
				++st.rejected;
				return;
			}
	}
	if ((cmd->flags & kDenyOom) && !in_exec_)
		core_.reclaim_if_short();  // a checkpoint between EXEC's entries would split its batch
	if ((cmd->flags & kDenyOom) && core_.is_full()) {
		++st.rejected;
		refuse_pool_full(x);
		return;
	}
	if ((cmd->flags & kWrite) && min_replicas_ > replicas_.size()) {
		++st.rejected;
		++errors_;
		resp::error(x.o, "NOREPLICAS Not enough good replicas to write.");
		return;
	}
	if ((cmd->flags & kDenyOom) && over_maxmemory() && !in_exec_) {
		++st.rejected;
		++errors_;
		resp::error(x.o, "OOM command not allowed when used memory > 'maxmemory'.");
		return;
	}
	++st.calls;
	++ops_;
	cl.last_cmd = cmd->name;
	const std::size_t before = x.o.size();
	const std::uint64_t w0 = writes_;
	prop_custom_ = false;
	const std::uint64_t t0 = mono_ns();
	(this->*cmd->fn)(x);
	st.ns += mono_ns() - t0;
	if (!replicas_.empty()) {
		// a write that changed something propagates as itself unless the
		// handler gave its effect (propagate_as); EXEC's effects are its
		// commands'
		if (writes_ != w0 && !prop_custom_ && (cmd->flags & kWrite) && cmd->fn != &KvService::cmd_exec)
			propagate(cl.db, std::vector<std::string>(x.argv.begin(), x.argv.end()));
		prop_custom_ = false;
		if (!in_exec_)
			flush_propagation();
	}
	if (x.o.size() > before && x.o.view()[before] == '-') {
		++st.failed;
		++errors_;
	}
	if (!blocked_.empty() && writes_ != w0 && !in_exec_) [[unlikely]]
		serve_blocked(x.srv);  // what it wrote may serve a parked client
}

void KvService::sample_rates(Server& srv) noexcept
{
	constexpr std::uint64_t kInterval = 100000000ull;  // 100 ms, as Redis samples
	RateSamples& r = rates_;
	const std::uint64_t now = mono_ns();
	const auto pc = srv.port().counters();
	if (r.last_ns == 0) {
		r.last_ns = now;
		r.last_ops = ops_;
		r.last_in = pc.rx_bytes;
		r.last_out = pc.tx_bytes;
		return;
	}
	if (now - r.last_ns < kInterval)
		return;
	const double secs = static_cast<double>(now - r.last_ns) / 1e9;
	const double ops = static_cast<double>(ops_ - r.last_ops) / secs;
	const double in = static_cast<double>(pc.rx_bytes - r.last_in) / secs / 1024;
	const double out = static_cast<double>(pc.tx_bytes - r.last_out) / secs / 1024;
	// a gap of k intervals (idle: no pass ran) fills k slots at its mean rate
	const std::uint64_t k = std::min<std::uint64_t>((now - r.last_ns) / kInterval, RateSamples::kSlots);
	for (std::uint64_t i = 0; i < k; ++i) {
		r.ops[r.next] = ops;
		r.in_kbps[r.next] = in;
		r.out_kbps[r.next] = out;
		r.next = (r.next + 1) % RateSamples::kSlots;
		r.filled = std::min(r.filled + 1, RateSamples::kSlots);
	}
	r.last_ns = now;
	r.last_ops = ops_;
	r.last_in = pc.rx_bytes;
	r.last_out = pc.tx_bytes;
}

double KvService::rate_avg(const double* v, int n) noexcept
{
	if (n == 0)
		return 0;
	double sum = 0;
	for (int i = 0; i < n; ++i)
		sum += v[i];
	return sum / n;
}

void KvService::end_of_pass(Server& srv)
{
	sample_rates(srv);
	release_held();  // a large value's buffers, when a caller staged it itself
	// Vectors a large request grew (MSET of a million keys, a 16 MiB value
	// in 4096 slices) go back after it (issue 14).
	if (argv_.capacity() > 1024)
		std::vector<std::string_view>().swap(argv_);
	if (values_.capacity() > 1024)
		std::vector<Slice>().swap(values_);
	if (inline_args_.capacity() > 1024)
		std::vector<std::string>().swap(inline_args_);
	srv_ = &srv;
	if (!replicas_.empty())
		repl_tick();
	if (active_expire_ && !expq_.empty())
		active_expire();
	if (!blocked_.empty())
		expire_blocked(srv);
	core_.end_of_pass();  // one fence for the whole pass, then reclaim when short
}

}  // namespace daxnet::kv
