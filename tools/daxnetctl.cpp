// SPDX-License-Identifier: BSD-2-Clause
//
// daxnetctl: what runs on this machine.
//
//   daxnetctl [--json] [status]        module, pools and services together
//   daxnetctl [--json] pool [FILE...]  pool geometry, fill, DAX or not
//   daxnetctl [--json] module          daxnet.ko: loaded, /dev/daxnet, open
//                                      ports, parameters, vnic links
//   daxnetctl [--json] service [ADDR...]
//                                      a service's counters (GET /stats)
//   daxnetctl [--json] ports           daxnet.ko's open ports (root; debugfs)
//   daxnetctl [--json] links           vnic links' counters (ethtool -S)
//
// Without arguments the pools and services come from the configuration
// files in --conf-dir (/etc/daxnet/*.conf: `pool`, `bind`, `port`,
// `http-port`), as the packaged systemd units run them.
//
// What comes from where: a pool's geometry and DAX support from its
// superblock (pmem::inspect_pool, read-only); its fill from a read-only
// recovery when no process holds it, else from the service that holds it
// (its /stats names the pool). The module section shows what sysfs has
// (open files of /dev/daxnet = ports, parameters, the vnic links' counters).
// `ports` reads daxnet.ko's debugfs view, daxnet/ports (root only; not an
// ABI, docs/kernel.md "Inspecting ports"): each open port's owner, pool
// geometry, ring indices as the kernel last saw them and counters, and
// each attached connection (addresses, TCP state, ring pair, bytes and
// segments moved, TX queued, rx_limit). `links` asks each daxnet vnic
// link of this network namespace for its counters the way `ethtool -S`
// does (SIOCETHTOOL: the driver's statistics strings and values).
// GCC 12 reports a false "potential null pointer dereference" inside
// CLI11's split() as inlined here (std::vector<std::string> relocation).
#pragma GCC diagnostic ignored "-Wnull-dereference"

#include <arpa/inet.h>
#include <dirent.h>
#include <fmt/format.h>
#include <grp.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "daxnet/fd.h"
#include "daxnet/pmem/buffer_alloc.h"
#include "daxnet/pmem/kv.h"
#include "daxnet/pmem/pool.h"

namespace {

using json = nlohmann::ordered_json;
using daxnet::pmem::human_bytes;

std::string read_file(const std::string& path, bool* ok = nullptr)
{
	std::ifstream f(path);
	if (ok)
		*ok = static_cast<bool>(f);
	std::stringstream ss;
	ss << f.rdbuf();
	std::string s = ss.str();
	while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
		s.pop_back();
	return s;
}

std::vector<std::string> list_dir(const std::string& dir)
{
	std::vector<std::string> out;
	if (DIR* d = ::opendir(dir.c_str())) {
		while (dirent* e = ::readdir(d))
			if (e->d_name[0] != '.')
				out.emplace_back(e->d_name);
		::closedir(d);
	}
	std::sort(out.begin(), out.end());
	return out;
}

// ---- configuration files ----------------------------------------------------

struct ServiceConf {
	std::string file;     ///< the .conf it came from
	std::string name;     ///< kv, wal, kv-a, ...
	std::string pool;
	std::string stats;    ///< host:port of its /stats, empty when none
};

/// `name = value` lines as CLI11 reads them (quotes stripped, # comments).
std::map<std::string, std::string> parse_conf(const std::string& path)
{
	std::map<std::string, std::string> kv;
	std::ifstream f(path);
	std::string line;
	auto trim = [](std::string s) {
		const auto b = s.find_first_not_of(" \t\r");
		const auto e = s.find_last_not_of(" \t\r");
		s = b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
		if (s.size() >= 2 && (s.front() == '"' || s.front() == '\'') && s.back() == s.front())
			s = s.substr(1, s.size() - 2);
		return s;
	};
	while (std::getline(f, line)) {
		const auto t = trim(line);
		if (t.empty() || t[0] == '#' || t[0] == ';' || t[0] == '[')
			continue;
		const auto eq = t.find('=');
		if (eq != std::string::npos)
			kv[trim(t.substr(0, eq))] = trim(t.substr(eq + 1));
	}
	return kv;
}

std::vector<ServiceConf> discover(const std::string& dir)
{
	std::vector<ServiceConf> out;
	for (const auto& f : list_dir(dir)) {
		if (f.size() < 6 || f.substr(f.size() - 5) != ".conf")
			continue;
		auto kv = parse_conf(dir + "/" + f);
		ServiceConf s;
		s.file = dir + "/" + f;
		s.name = f.substr(0, f.size() - 5);
		s.pool = kv["pool"];
		std::string bind = kv.count("bind") ? kv["bind"] : "127.0.0.1";
		if (bind == "0.0.0.0")
			bind = "127.0.0.1";
		// daxnet-kv serves /stats on its HTTP port; daxnet-wal on its port.
		std::string port = s.name.rfind("kv", 0) == 0 ? kv["http-port"] : kv["port"];
		if (s.name.rfind("wal", 0) == 0 && port.empty())
			port = "8080";
		if (!port.empty() && port != "-1" && port != "0")
			s.stats = bind + ":" + port;
		if (!s.pool.empty() || !s.stats.empty())
			out.push_back(s);
	}
	return out;
}

// ---- services ----------------------------------------------------------------

/// GET /stats from host:port; the parsed JSON, or {"error": ...}.
json fetch_stats(const std::string& addr, int timeout_ms)
{
	std::string host = "127.0.0.1", port = addr;
	if (auto c = addr.rfind(':'); c != std::string::npos) {
		host = addr.substr(0, c);
		port = addr.substr(c + 1);
	}
	json err = {{"address", addr}};
	addrinfo hints{}, *res = nullptr;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
		err["error"] = std::string("resolve: ") + ::gai_strerror(rc);
		return err;
	}
	const daxnet::UniqueFd sock(::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
	const int fd = sock.get();
	timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	const int rc = ::connect(fd, res->ai_addr, res->ai_addrlen);
	::freeaddrinfo(res);
	if (rc < 0) {
		err["error"] = std::string("connect: ") + std::strerror(errno);
		return err;
	}
	const std::string req = "GET /stats HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n";
	if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
		err["error"] = std::string("send: ") + std::strerror(errno);
		return err;
	}
	std::string resp;
	char buf[16384];
	for (;;) {
		const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
		if (n <= 0)
			break;
		resp.append(buf, static_cast<std::size_t>(n));
	}
	const auto hdr_end = resp.find("\r\n\r\n");
	if (resp.rfind("HTTP/1.", 0) != 0 || hdr_end == std::string::npos) {
		err["error"] = "no HTTP response";
		return err;
	}
	const int status = std::atoi(resp.c_str() + 9);
	if (status != 200) {
		err["error"] = fmt::format("GET /stats: HTTP {}", status);
		return err;
	}
	try {
		json j = json::parse(resp.substr(hdr_end + 4));
		j["address"] = addr;
		return j;
	} catch (const std::exception& e) {
		err["error"] = std::string("bad JSON from /stats: ") + e.what();
		return err;
	}
}

void print_service(const json& s)
{
	if (s.contains("error")) {
		fmt::print("service {}: not reachable ({})\n", s.value("address", "?"), s["error"].get<std::string>());
		return;
	}
	fmt::print("service {} at {}: version {}, transport {}{}, pool {}\n", s.value("service", "?"),
		   s.value("address", "?"), s.value("version", "?"), s.value("transport", "?"),
		   s.value("zerocopy", 0) ? " (zero-copy)" : "", s.value("pool", "?"));
	fmt::print("  connections    {} open, {} accepted\n", s.value("open_connections", 0), s.value("connections", 0));
	fmt::print("  requests       {} ({} protocol errors)\n", s.value("requests", 0), s.value("protocol_errors", 0));
	fmt::print("  port           {} syncs, rx {} tx {}, cpu-copied {}, rx ring full {}, spare empty {}\n",
		   s.value("syncs", 0), human_bytes(s.value("rx_bytes", 0ull)), human_bytes(s.value("tx_bytes", 0ull)),
		   human_bytes(s.value("cpu_copied_bytes", 0ull)), s.value("rx_ring_full", 0), s.value("spare_empty", 0));
	fmt::print("  pool buffers   {} of {} free\n", s.value("pool_buffers_free", 0), s.value("pool_buffers", 0));
	fmt::print("  wal            {} of {} records used, {} checkpoints, {} fences\n",
		   s.value("wal_used_records", 0), s.value("wal_slots", 0), s.value("checkpoints", 0),
		   s.value("fences", 0));
}

// ---- pools -------------------------------------------------------------------

json pool_info(const std::string& given, const std::vector<json>& services, bool configured)
{
	std::error_code ec;
	const std::string path = std::filesystem::absolute(given, ec).lexically_normal().string();
	json j = {{"path", path}};
	struct stat st{};
	if (::stat(path.c_str(), &st) != 0 && errno == ENOENT && configured) {
		// A configured pool its service has not created yet: not an error.
		j["exists"] = false;
		return j;
	}
	auto info = daxnet::pmem::inspect_pool(path);
	if (!info) {
		j["error"] = info.error().message;
		return j;
	}
	const auto& g = info->geometry;
	j["pool_size"] = g.pool_size;
	j["file_size"] = info->file_size;
	j["buffer_size"] = g.buffer_size;
	j["buffer_count"] = g.buffer_count;
	j["wal_size"] = g.wal_size;
	j["ckpt_size"] = g.ckpt_size;
	j["dax"] = info->dax;
	j["in_use"] = info->in_use;
	if (info->holder_pid > 0)
		j["holder_pid"] = info->holder_pid;
	if (info->in_use) {
		// Its service knows the fill; find it by the pool path in /stats.
		for (const auto& s : services)
			if (!s.contains("error") && s.value("pool", "") == path) {
				j["fill_source"] = "service " + s.value("address", "");
				j["buffers_used"] = s.value("pool_buffers", 0ull) - s.value("pool_buffers_free", 0ull);
				j["wal_used_records"] = s.value("wal_used_records", 0ull);
				j["wal_slots"] = s.value("wal_slots", 0ull);
			}
		if (!j.contains("fill_source"))
			j["fill_source"] = "none (in use by a process that serves no /stats found here)";
		return j;
	}
	// Not in use: recover it read-only, as `daxnet-wal dump` does.
	auto pool = daxnet::pmem::Pool::open(path);
	if (!pool) {
		j["fill_source"] = "none (" + pool.error().message + ")";
		return j;
	}
	const auto& view = pool->view();
	daxnet::pmem::BufferAllocator alloc(view.buffer_count());
	daxnet::pmem::KvOptions ko;
	ko.wal.read_only = true;
	daxnet::pmem::RecoveryReport report;
	auto kv = daxnet::pmem::KvStore::open(view, alloc, ko, &report);
	if (!kv) {
		j["fill_source"] = "none (recovery: " + kv.error().message + ")";
		return j;
	}
	std::uint64_t streams = 0;
	(*kv)->for_each_stream([&](std::string_view, std::uint64_t) { ++streams; });
	j["fill_source"] = "read-only recovery";
	j["buffers_used"] = alloc.count() - alloc.free_count();
	j["wal_used_records"] = (*kv)->wal().used();
	j["wal_slots"] = (*kv)->wal().nslots();
	j["keys"] = (*kv)->dbsize();
	j["streams"] = streams;
	return j;
}

void print_pool(const json& p)
{
	if (p.contains("exists")) {
		fmt::print("pool {}: not created yet (its service creates it at first start)\n",
			   p["path"].get<std::string>());
		return;
	}
	if (p.contains("error")) {
		fmt::print("pool {}: {}\n", p["path"].get<std::string>(), p["error"].get<std::string>());
		return;
	}
	fmt::print("pool {}: {}, {} buffers x {}, dax={}, in use={}{}\n", p["path"].get<std::string>(),
		   human_bytes(p["pool_size"].get<std::uint64_t>()), p["buffer_count"].get<std::uint64_t>(),
		   p["buffer_size"].get<std::uint64_t>(), p["dax"].get<bool>() ? "yes" : "no",
		   p["in_use"].get<bool>() ? "yes" : "no",
		   p.contains("holder_pid") ? fmt::format(" (pid {})", p["holder_pid"].get<long>()) : std::string());
	if (p.contains("buffers_used")) {
		const auto used = p["buffers_used"].get<std::uint64_t>();
		const auto n = p["buffer_count"].get<std::uint64_t>();
		fmt::print("  fill           {} of {} buffers used ({:.1f}%), wal {} of {} records [{}]\n", used, n,
			   n ? 100.0 * static_cast<double>(used) / static_cast<double>(n) : 0.0,
			   p.value("wal_used_records", 0ull), p.value("wal_slots", 0ull), p["fill_source"].get<std::string>());
	} else {
		fmt::print("  fill           unknown: {}\n", p["fill_source"].get<std::string>());
	}
	if (p.contains("keys"))
		fmt::print("  contents       {} keys, {} streams\n", p["keys"].get<std::uint64_t>(),
			   p["streams"].get<std::uint64_t>());
}

// ---- the module --------------------------------------------------------------

json module_info(const std::string& sys, const std::string& dev)
{
	json j;
	const std::string mod = sys + "/module/daxnet";
	struct stat st{};
	j["loaded"] = ::stat(mod.c_str(), &st) == 0;
	if (j["loaded"].get<bool>()) {
		bool ok = false;
		std::string v = read_file(mod + "/version", &ok);
		if (ok)
			j["version"] = v;
		v = read_file(mod + "/srcversion", &ok);
		if (ok)
			j["srcversion"] = v;
		v = read_file(mod + "/refcnt", &ok);
		if (ok)
			j["refcnt"] = std::strtoll(v.c_str(), nullptr, 10);
		json params = json::object();
		for (const auto& p : list_dir(mod + "/parameters"))
			params[p] = read_file(mod + "/parameters/" + p);
		j["parameters"] = params;
	}
	if (::stat(dev.c_str(), &st) == 0) {
		const passwd* pw = ::getpwuid(st.st_uid);
		const group* gr = ::getgrgid(st.st_gid);
		j["device"] = {{"path", dev},
			       {"owner", pw ? pw->pw_name : std::to_string(st.st_uid)},
			       {"group", gr ? gr->gr_name : std::to_string(st.st_gid)},
			       {"mode", fmt::format("{:04o}", st.st_mode & 07777)},
			       {"accessible", ::access(dev.c_str(), R_OK | W_OK) == 0}};
	} else {
		j["device"] = nullptr;
	}
	// vnic links: net devices with a daxnet/ counter group.
	json links = json::array();
	const std::string net = sys + "/class/net";
	for (const auto& ifc : list_dir(net)) {
		const std::string dir = net + "/" + ifc + "/daxnet";
		if (::stat(dir.c_str(), &st) != 0)
			continue;
		json l = {{"name", ifc}, {"operstate", read_file(net + "/" + ifc + "/operstate")}};
		json c = json::object();
		for (const auto& f : list_dir(dir))
			c[f] = std::strtoull(read_file(dir + "/" + f).c_str(), nullptr, 10);
		l["counters"] = c;
		links.push_back(l);
	}
	j["vnic_links"] = links;
	return j;
}

void print_module(const json& m)
{
	if (!m["loaded"].get<bool>()) {
		fmt::print("daxnet.ko: not loaded (services use io_uring or epoll; `modprobe daxnet` with daxnet-dkms)\n");
	} else {
		fmt::print("daxnet.ko: loaded{}{}\n", m.contains("version") ? ", version " + m["version"].get<std::string>() : "",
			   m.contains("refcnt") ? fmt::format(", {} references (open ports)", m["refcnt"].get<long long>())
						: std::string());
		for (const auto& [k, v] : m["parameters"].items())
			fmt::print("  parameter      {} = {}\n", k, v.get<std::string>());
	}
	if (m["device"].is_null())
		fmt::print("  device         no /dev/daxnet\n");
	else
		fmt::print("  device         {} {}:{} {}{}\n", m["device"]["path"].get<std::string>(),
			   m["device"]["owner"].get<std::string>(), m["device"]["group"].get<std::string>(),
			   m["device"]["mode"].get<std::string>(),
			   m["device"]["accessible"].get<bool>() ? "" : " (not accessible to this user)");
	for (const auto& l : m["vnic_links"]) {
		fmt::print("  vnic           {} ({})\n", l["name"].get<std::string>(), l["operstate"].get<std::string>());
		for (const auto& [k, v] : l["counters"].items())
			fmt::print("    {:<20} {}\n", k, v.get<std::uint64_t>());
	}
}

// ---- ports (debugfs) -----------------------------------------------------------

/// One `key=value ...` line of daxnet/ports; numbers become numbers.
json parse_kv_line(const std::string& line)
{
	json j = json::object();
	std::istringstream in(line);
	std::string w;
	while (in >> w) {
		const auto eq = w.find('=');
		if (eq == std::string::npos)
			continue;
		const std::string k = w.substr(0, eq), v = w.substr(eq + 1);
		char* end = nullptr;
		errno = 0;
		const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
		if (!v.empty() && v[0] != '-' && end && *end == '\0' && errno == 0)
			j[k] = n;
		else
			j[k] = v;
	}
	return j;
}

/// daxnet/ports: {"ports": [...]} or {"error": ...}.
json ports_info(const std::string& debugfs)
{
	const std::string path = debugfs + "/daxnet/ports";
	std::ifstream f(path);
	if (!f) {
		return {{"path", path},
			{"error", fmt::format("cannot read {}: {} (root only; daxnet.ko loaded, debugfs mounted?)",
					      path, std::strerror(errno))}};
	}
	json ports = json::array();
	std::string line;
	while (std::getline(f, line)) {
		// The first word says what the line is: a port, one of its
		// ring pairs, or one of its connections (after the port's line).
		const std::string kind = line.substr(0, line.find('='));
		json j = parse_kv_line(line);
		if (kind == "port") {
			j["pairs"] = json::array();
			j["connections"] = json::array();
			ports.push_back(j);
		} else if ((kind == "pair" || kind == "conn") && j.contains("port")) {
			for (auto& p : ports)
				if (p["port"] == j["port"]) {
					j.erase("port");
					p[kind == "pair" ? "pairs" : "connections"].push_back(j);
				}
		}
	}
	return {{"path", path}, {"ports", ports}};
}

void print_ports_table(const json& r);

void print_ports(const json& r)
{
	// The format is the module's, not an ABI: a word this version does
	// not expect is reported, not fatal (--json shows what was read).
	try {
		print_ports_table(r);
	} catch (const json::exception& e) {
		fmt::print("ports: unexpected daxnet/ports format ({}); try --json\n", e.what());
	}
}

void print_ports_table(const json& r)
{
	if (r.contains("error")) {
		fmt::print("ports: {}\n", r.at("error").get<std::string>());
		return;
	}
	if (r.at("ports").empty())
		fmt::print("ports: none open\n");
	for (const auto& p : r.at("ports")) {
		if (p.value("busy", 0ULL) != 0) {
			fmt::print("port {}: busy (its owner is in an ioctl; read again)\n", p.at("port").get<std::uint64_t>());
			continue;
		}
		if (p.value("registered", 0ULL) == 0) {
			fmt::print("port {}: open, not registered\n", p.at("port").get<std::uint64_t>());
			continue;
		}
		fmt::print("port {}: pid {} uid {}, {} mode, {} pool of {} x {}, {} pair(s), {} of {} connections\n",
			   p.at("port").get<std::uint64_t>(), p.at("pid").get<std::uint64_t>(), p.at("uid").get<std::uint64_t>(),
			   p.at("mode").get<std::string>(), p.at("mem").get<std::string>(),
			   p.at("buf_count").get<std::uint64_t>(), human_bytes(p.at("buf_size").get<std::uint64_t>()),
			   p.at("pairs").size(), p.at("conns").get<std::uint64_t>(), p.at("max_conns").get<std::uint64_t>());
		for (const auto& q : p.at("pairs")) {
			fmt::print("  pair {}: {} connections", q.at("pair").get<std::uint64_t>(), q.at("conns").get<std::uint64_t>());
			for (const char* ring : {"rx", "tx", "spare"}) {
				const std::string k = ring;
				// RX has no kernel cursor: the module prints none for it.
				if (q.contains(k + "_cur"))
					fmt::print(", {} head/cur/tail {}/{}/{} of {}", k, q.at(k + "_head").get<std::uint64_t>(),
						   q.at(k + "_cur").get<std::uint64_t>(), q.at(k + "_tail").get<std::uint64_t>(),
						   q.at(k + "_slots").get<std::uint64_t>());
				else
					fmt::print(", {} head/tail {}/{} of {}", k, q.at(k + "_head").get<std::uint64_t>(),
						   q.at(k + "_tail").get<std::uint64_t>(), q.at(k + "_slots").get<std::uint64_t>());
			}
			fmt::print("\n");
		}
		for (const auto& c : p.at("connections")) {
			fmt::print("  conn {}: {} -> {} {}", c.at("conn").get<std::uint64_t>(),
				   c.at("local").get<std::string>(), c.at("remote").get<std::string>(),
				   c.at("state").get<std::string>());
			if (c.value("err", 0ULL) != 0)
				fmt::print(" (error {})", std::strerror(static_cast<int>(c.at("err").get<std::uint64_t>())));
			fmt::print(", pair {}, rx {} bytes, tx {} bytes, segments in/out {}/{}, tx queued {} bytes, rx_limit {}\n",
				   c.at("pair").get<std::uint64_t>(), c.at("rx_bytes").get<std::uint64_t>(),
				   c.at("tx_bytes").get<std::uint64_t>(), c.at("segs_in").get<std::uint64_t>(),
				   c.at("segs_out").get<std::uint64_t>(), c.at("tx_queued").get<std::uint64_t>(),
				   c.at("rx_limit").get<std::uint64_t>() ? std::to_string(c.at("rx_limit").get<std::uint64_t>())
									 : std::string("none"));
		}
		for (const auto& [k, v] : p.items()) {
			static const char* skip[] = {"port", "registered", "pid", "uid", "mode", "mem", "buf_size",
						     "buf_count", "pairs", "conns", "max_conns", "connstate"};
			if (std::find_if(std::begin(skip), std::end(skip), [&](const char* x) { return k == x; }) !=
			    std::end(skip))
				continue;
			if (v.is_number())
				fmt::print("  {:<20} {}\n", k, v.get<std::uint64_t>());
		}
	}
}

// ---- links (ethtool) -------------------------------------------------------------

/// SIOCETHTOOL on ifc with cmd (any struct starting with a u32 cmd).
bool ethtool_ioctl(int s, const std::string& ifc, void* cmd)
{
	ifreq ifr{};
	if (ifc.size() >= sizeof(ifr.ifr_name))
		return false;
	std::memcpy(ifr.ifr_name, ifc.c_str(), ifc.size());
	ifr.ifr_data = static_cast<char*>(cmd);
	return ::ioctl(s, SIOCETHTOOL, &ifr) == 0;
}

/// The daxnet vnic links of this network namespace with their `ethtool -S`
/// counters: {"links": [...]}.
json links_info(const std::string& sys)
{
	json links = json::array();
	daxnet::UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
	if (!s)
		return {{"error", fmt::format("socket: {}", std::strerror(errno))}};
	const std::string net = sys + "/class/net";
	for (const auto& ifc : list_dir(net)) {
		ethtool_drvinfo di{};
		di.cmd = ETHTOOL_GDRVINFO;
		if (!ethtool_ioctl(s.get(), ifc, &di) || std::strcmp(di.driver, "daxnet") != 0)
			continue;
		json l = {{"name", ifc}, {"operstate", read_file(net + "/" + ifc + "/operstate")}};
		const std::uint32_t n = di.n_stats;
		std::unique_ptr<std::uint8_t[]> sbuf(new std::uint8_t[sizeof(ethtool_gstrings) + n * ETH_GSTRING_LEN]());
		std::unique_ptr<std::uint8_t[]> vbuf(new std::uint8_t[sizeof(ethtool_stats) + n * sizeof(std::uint64_t)]());
		auto* gs = reinterpret_cast<ethtool_gstrings*>(sbuf.get());
		auto* st = reinterpret_cast<ethtool_stats*>(vbuf.get());
		gs->cmd = ETHTOOL_GSTRINGS;
		gs->string_set = ETH_SS_STATS;
		gs->len = n;
		st->cmd = ETHTOOL_GSTATS;
		st->n_stats = n;
		json c = json::object();
		if (ethtool_ioctl(s.get(), ifc, gs) && ethtool_ioctl(s.get(), ifc, st)) {
			for (std::uint32_t i = 0; i < std::min(n, gs->len); i++) {
				const char* name = reinterpret_cast<const char*>(gs->data + i * ETH_GSTRING_LEN);
				c[std::string(name, ::strnlen(name, ETH_GSTRING_LEN))] = st->data[i];
			}
		} else {
			l["error"] = fmt::format("SIOCETHTOOL statistics: {}", std::strerror(errno));
		}
		l["counters"] = c;
		links.push_back(l);
	}
	return {{"links", links}};
}

void print_links(const json& r)
{
	if (r.contains("error")) {
		fmt::print("links: {}\n", r["error"].get<std::string>());
		return;
	}
	if (r["links"].empty())
		fmt::print("links: no daxnet vnic link in this network namespace\n");
	for (const auto& l : r["links"]) {
		fmt::print("vnic {} ({})\n", l["name"].get<std::string>(), l["operstate"].get<std::string>());
		if (l.contains("error"))
			fmt::print("  {}\n", l["error"].get<std::string>());
		for (const auto& [k, v] : l["counters"].items())
			fmt::print("  {:<20} {}\n", k, v.get<std::uint64_t>());
	}
}

}  // namespace

int main(int argc, char** argv)
{
	CLI::App app{"daxnetctl: daxnet pools, the daxnet.ko module and running services"};
	app.set_version_flag("--version", std::string("daxnetctl ") + DAXNET_VERSION);
	bool as_json = false;
	std::string conf_dir = "/etc/daxnet", sys = "/sys", dev = "/dev/daxnet";
	int timeout_ms = 2000;
	app.add_flag("--json", as_json, "print one JSON object");
	app.add_option("--conf-dir", conf_dir, "where the services' configuration files are (pools and ports)")
		->capture_default_str();
	app.add_option("--timeout", timeout_ms, "milliseconds to wait for each service")->capture_default_str();
	app.add_option("--sysfs", sys, "sysfs mount (tests)")->capture_default_str()->group("");
	app.add_option("--device", dev, "the module's device")->capture_default_str();
	std::string debugfs = "/sys/kernel/debug";
	app.add_option("--debugfs", debugfs, "debugfs mount (daxnet/ports)")->capture_default_str();
	std::vector<std::string> pools, addrs;
	auto* st = app.add_subcommand("status", "module, pools and services (the default)");
	auto* pl = app.add_subcommand("pool", "pool geometry, fill and DAX (default: the configured pools)");
	pl->add_option("FILE", pools, "pool files");
	auto* md = app.add_subcommand("module", "daxnet.ko: /dev/daxnet, open ports, parameters, vnic links");
	auto* sv = app.add_subcommand("service", "services' counters from GET /stats (default: the configured ones)");
	sv->add_option("ADDR", addrs, "host:port of a service's HTTP port (daxnet-kv: --http-port)");
	auto* po = app.add_subcommand("ports", "daxnet.ko's open ports: owner, pool, rings, counters (root; debugfs)");
	auto* li = app.add_subcommand("links", "daxnet vnic links and their counters (as ethtool -S)");
	app.require_subcommand(0, 1);
	CLI11_PARSE(app, argc, argv);

	const bool all = st->parsed() || app.get_subcommands().empty();
	const auto confs = discover(conf_dir);
	json out = json::object();
	std::vector<json> services;
	if (all || sv->parsed() || pl->parsed()) {
		std::vector<std::string> want = addrs;
		if (want.empty())
			for (const auto& c : confs)
				if (!c.stats.empty())
					want.push_back(c.stats);
		for (const auto& a : want)
			services.push_back(fetch_stats(a, timeout_ms));
	}
	if (all || md->parsed())
		out["module"] = module_info(sys, dev);
	if (all || pl->parsed()) {
		std::vector<std::string> want = pools;
		if (want.empty())
			for (const auto& c : confs)
				if (!c.pool.empty() && std::find(want.begin(), want.end(), c.pool) == want.end())
					want.push_back(c.pool);
		json arr = json::array();
		for (const auto& p : want)
			arr.push_back(pool_info(p, services, pools.empty()));
		out["pools"] = arr;
	}
	if (all || sv->parsed())
		out["services"] = services;
	if (po->parsed())
		out["ports"] = ports_info(debugfs);
	if (li->parsed())
		out["links"] = links_info(sys);

	if (as_json) {
		fmt::print("{}\n", out.dump(2));
	} else {
		if (out.contains("module"))
			print_module(out["module"]);
		if (out.contains("pools")) {
			if (out["pools"].empty())
				fmt::print("pools: none configured in {} (daxnetctl pool FILE...)\n", conf_dir);
			for (const auto& p : out["pools"])
				print_pool(p);
		}
		if (out.contains("services")) {
			if (out["services"].empty())
				fmt::print("services: none configured in {} (daxnetctl service HOST:PORT...)\n", conf_dir);
			for (const auto& s : out["services"])
				print_service(s);
		}
		if (out.contains("ports"))
			print_ports(out["ports"]);
		if (out.contains("links"))
			print_links(out["links"]);
	}
	// Exit 1 when something asked for explicitly could not be read.
	bool bad = false;
	if (out.contains("pools"))
		for (const auto& p : out["pools"])
			bad |= p.contains("error");
	if (sv->parsed())
		for (const auto& s : out["services"])
			bad |= s.contains("error");
	if (po->parsed())
		bad |= out["ports"].contains("error");
	if (li->parsed()) {
		bad |= out["links"].contains("error");
		for (const auto& l : out["links"].value("links", json::array()))
			bad |= l.contains("error");
	}
	return bad ? 1 : 0;
}
