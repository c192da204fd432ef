// SPDX-License-Identifier: BSD-2-Clause
//
// Connection commands: PING, ECHO, QUIT, HELLO, AUTH, CLIENT, RESET.
#include <algorithm>

#include "kv.h"

namespace daxnet::kv {

namespace resp = daxnet::proto::resp;

void KvService::cmd_ping(Ctx& x)
{
	if (x.argc() <= 2 && x.cl.resp == 2 && subscriptions(x.cl) > 0) {
		// subscribed mode (RESP2): PING answers as a message would
		resp::array(x.o, 2);
		resp::bulk(x.o, "pong");
		resp::bulk(x.o, x.argc() == 2 ? x.arg(1) : std::string_view());
		return;
	}
	if (x.argc() == 1)
		resp::simple(x.o, "PONG");
	else if (x.argc() == 2)
		resp::bulk(x.o, x.arg(1));
	else
		resp::wrong_arity(x.o, "ping");
}

void KvService::cmd_echo(Ctx& x)
{
	resp::bulk(x.o, x.arg(1));
}

void KvService::cmd_quit(Ctx& x)
{
	resp::ok(x.o);
	x.c.closing = true;
}

}  // namespace daxnet::kv

namespace daxnet::kv {

bool KvService::auth_ok(std::string_view user, std::string_view pass) const
{
	// one user, "default", with --requirepass as its password
	return user == "default" && !cfg_.requirepass.empty() && pass == cfg_.requirepass;
}

void KvService::cmd_auth(Ctx& x)
{
	if (x.argc() > 3) {
		resp::error(x.o, "ERR syntax error");
		return;
	}
	if (x.argc() == 2 && cfg_.requirepass.empty()) {
		resp::error(x.o, "ERR AUTH <password> called without any password configured for the default user. "
				 "Are you sure your configuration is correct?");
		return;
	}
	const std::string_view user = x.argc() == 3 ? x.arg(1) : "default";
	const std::string_view pass = x.argc() == 3 ? x.arg(2) : x.arg(1);
	if (cfg_.requirepass.empty() && user == "default") {
		// no password configured: the default user takes any password
		x.cl.authed = true;
		resp::ok(x.o);
		return;
	}
	if (!auth_ok(user, pass)) {
		resp::error(x.o, "WRONGPASS invalid username-password pair or user is disabled.");
		return;
	}
	x.cl.authed = true;
	resp::ok(x.o);
}

namespace {

bool valid_client_name(std::string_view n) noexcept
{
	for (char c : n)
		if (c < '!' || c > '~')
			return false;
	return true;
}

}  // namespace

void KvService::cmd_hello(Ctx& x)
{
	int proto = x.cl.resp;
	std::size_t i = 1;
	if (x.argc() >= 2) {
		std::int64_t v = 0;
		if (!parse_i64(x.arg(1), v)) {
			resp::error(x.o, "ERR Protocol version is not an integer or out of range");
			return;
		}
		if (v < 2 || v > 3) {
			resp::error(x.o, "NOPROTO unsupported protocol version");
			return;
		}
		proto = static_cast<int>(v);
		i = 2;
	}
	std::string_view setname;
	bool has_name = false;
	for (; i < x.argc(); ++i) {
		if (ieq(x.arg(i), "auth") && i + 2 < x.argc()) {
			if (!auth_ok(x.arg(i + 1), x.arg(i + 2)) && !(cfg_.requirepass.empty() && x.arg(i + 1) == "default")) {
				resp::error(x.o, "WRONGPASS invalid username-password pair or user is disabled.");
				return;
			}
			x.cl.authed = true;
			i += 2;
		} else if (ieq(x.arg(i), "setname") && i + 1 < x.argc()) {
			setname = x.arg(++i);
			has_name = true;
			if (!valid_client_name(setname)) {
				resp::error(x.o, "ERR Client names cannot contain spaces, newlines or special characters.");
				return;
			}
		} else {
			resp::error(x.o, fmt::format("ERR Syntax error in HELLO option '{}'", x.arg(i).substr(0, 128)));
			return;
		}
	}
	if (!x.cl.authed) {
		resp::error(x.o, "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
				 "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select "
				 "the RESP protocol version at the same time");
		return;
	}
	if (has_name)
		x.cl.name.assign(setname);
	x.cl.resp = proto;
	reply_map(x, 7);
	resp::bulk(x.o, "server");
	resp::bulk(x.o, "redis");
	resp::bulk(x.o, "version");
	resp::bulk(x.o, "7.0.15");
	resp::bulk(x.o, "proto");
	resp::integer(x.o, proto);
	resp::bulk(x.o, "id");
	resp::integer(x.o, static_cast<std::int64_t>(x.cl.id));
	resp::bulk(x.o, "mode");
	resp::bulk(x.o, "standalone");
	resp::bulk(x.o, "role");
	resp::bulk(x.o, "master");
	resp::bulk(x.o, "modules");
	resp::array(x.o, 0);
}

std::string KvService::client_line(Server&, const Client& cl, std::string_view cmd)
{
	const std::uint64_t now = daxnet::pmem::realtime_ns();
	std::string flags;
	if (cl.in_multi)
		flags += 'x';
	if (!cl.watched.empty() && cl.dirty_cas)
		flags += 'd';
	if (cl.no_evict)
		flags += 'e';
	if (cl.blocked)
		flags += 'b';
	if (flags.empty())
		flags = "N";
	return fmt::format("id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub=0 psub=0 ssub=0 "
			   "multi={} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 "
			   "tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
			   cl.id, cl.addr, cl.laddr, cl.fd, cl.name, (now - cl.created_ns) / 1000000000,
			   0, flags, cl.db,
			   cl.in_multi ? static_cast<std::int64_t>(cl.queue.size()) : -1, cmd, cl.resp, cl.lib_name,
			   cl.lib_ver);
}

void KvService::cmd_client(Ctx& x)
{
	const std::string_view sub = x.arg(1);
	Client& cl = x.cl;
	auto& o = x.o;
	const auto n = x.argc();
	if (ieq(sub, "id") && n == 2) {
		resp::integer(o, static_cast<std::int64_t>(cl.id));
	} else if (ieq(sub, "setname") && n == 3) {
		if (!valid_client_name(x.arg(2))) {
			resp::error(o, "ERR Client names cannot contain spaces, newlines or special characters.");
			return;
		}
		cl.name.assign(x.arg(2));
		resp::ok(o);
	} else if (ieq(sub, "unblock") && (n == 3 || n == 4)) {
		std::int64_t id = 0;
		if (!arg_i64(x, 2, id))
			return;
		bool as_error = false;
		if (n == 4 && ieq(x.arg(3), "error")) {
			as_error = true;
		} else if (n == 4 && !ieq(x.arg(3), "timeout")) {
			resp::error(o, "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR");
			return;
		}
		resp::integer(o, unblock_client(x.srv, static_cast<std::uint64_t>(id), as_error) ? 1 : 0);
	} else if (ieq(sub, "getname") && n == 2) {
		if (cl.name.empty())
			reply_null(x);
		else
			resp::bulk(o, cl.name);
	} else if (ieq(sub, "setinfo") && n == 4) {
		const std::string_view v = x.arg(3);
		if (!valid_client_name(v)) {
			resp::error(o, fmt::format("ERR {} cannot contain spaces, newlines or special characters.",
						   ieq(x.arg(2), "lib-name") ? "lib-name" : "lib-ver"));
			return;
		}
		if (ieq(x.arg(2), "lib-name"))
			cl.lib_name.assign(v);
		else if (ieq(x.arg(2), "lib-ver"))
			cl.lib_ver.assign(v);
		else {
			resp::error(o, fmt::format("ERR Unrecognized option '{}'", x.arg(2).substr(0, 128)));
			return;
		}
		resp::ok(o);
	} else if (ieq(sub, "info") && n == 2) {
		reply_verbatim(x, client_line(x.srv, cl, "client|info") + "\n");
	} else if (ieq(sub, "list")) {
		std::vector<std::uint64_t> ids;
		for (std::size_t i = 2; i < n; ++i) {
			if (ieq(x.arg(i), "type") && i + 1 < n) {
				const std::string_view t = x.arg(++i);
				if (!ieq(t, "normal") && !ieq(t, "master") && !ieq(t, "replica") && !ieq(t, "slave") &&
				    !ieq(t, "pubsub")) {
					resp::error(o, fmt::format("ERR Unknown client type '{}'", t.substr(0, 128)));
					return;
				}
				if (!ieq(t, "normal")) {
					ids.push_back(0);  // none of those here
				}
			} else if (ieq(x.arg(i), "id") && i + 1 < n) {
				for (++i; i < n; ++i) {
					std::int64_t id = 0;
					if (!parse_i64(x.arg(i), id) || id <= 0) {
						resp::error(o, "ERR Invalid client ID");
						return;
					}
					ids.push_back(static_cast<std::uint64_t>(id));
				}
			} else {
				resp::error(o, "ERR syntax error");
				return;
			}
		}
		std::string s;
		x.srv.for_each_conn([&](Conn& c) {
			if (c.proto != daxnet::svc::Proto::resp)
				return;
			Client& k = client_of(x.srv, c);
			if (!ids.empty() && std::find(ids.begin(), ids.end(), k.id) == ids.end())
				return;
			s += client_line(x.srv, k, &k == &cl ? "client|list" : k.last_cmd);
			s += '\n';
		});
		reply_verbatim(x, s);
	} else if (ieq(sub, "kill") && n >= 3) {
		if (n == 3) {
			// old form: CLIENT KILL addr:port
			bool found = false;
			x.srv.for_each_conn([&](Conn& c) {
				if (c.proto != daxnet::svc::Proto::resp || found)
					return;
				Client& k = client_of(x.srv, c);
				if (k.addr == x.arg(2)) {
					found = true;
					x.srv.close_after_reply(c);
				}
			});
			if (found)
				resp::ok(o);
			else
				resp::error(o, "ERR No such client");
			return;
		}
		std::uint64_t id = 0;
		std::string_view addr, laddr;
		bool skipme = true, by_user = false, user_ok = true, type_ok = true;
		if ((n - 2) % 2 != 0) {
			resp::error(o, "ERR syntax error");
			return;
		}
		for (std::size_t i = 2; i + 1 < n; i += 2) {
			const std::string_view k = x.arg(i), v = x.arg(i + 1);
			if (ieq(k, "id")) {
				std::int64_t t = 0;
				if (!parse_i64(v, t) || t <= 0) {
					resp::error(o, "ERR client-id should be greater than 0");
					return;
				}
				id = static_cast<std::uint64_t>(t);
			} else if (ieq(k, "addr")) {
				addr = v;
			} else if (ieq(k, "laddr")) {
				laddr = v;
			} else if (ieq(k, "skipme")) {
				if (ieq(v, "yes"))
					skipme = true;
				else if (ieq(v, "no"))
					skipme = false;
				else {
					resp::error(o, "ERR syntax error");
					return;
				}
			} else if (ieq(k, "user")) {
				by_user = true;
				user_ok = v == "default";
			} else if (ieq(k, "type")) {
				if (!ieq(v, "normal") && !ieq(v, "master") && !ieq(v, "replica") && !ieq(v, "slave") &&
				    !ieq(v, "pubsub")) {
					resp::error(o, fmt::format("ERR Unknown client type '{}'", v.substr(0, 128)));
					return;
				}
				type_ok = ieq(v, "normal");
			} else if (ieq(k, "maxage")) {
				// accepted; no client is old enough to matter here
			} else {
				resp::error(o, "ERR syntax error");
				return;
			}
		}
		(void)by_user;
		std::int64_t killed = 0;
		x.srv.for_each_conn([&](Conn& c) {
			if (c.proto != daxnet::svc::Proto::resp || !user_ok || !type_ok)
				return;
			Client& k = client_of(x.srv, c);
			if ((id && k.id != id) || (!addr.empty() && k.addr != addr) || (!laddr.empty() && k.laddr != laddr))
				return;
			if (skipme && &k == &cl)
				return;
			x.srv.close_after_reply(c);
			++killed;
		});
		resp::integer(o, killed);
	} else if (ieq(sub, "no-evict") && n == 3) {
		if (ieq(x.arg(2), "on"))
			cl.no_evict = true;
		else if (ieq(x.arg(2), "off"))
			cl.no_evict = false;
		else {
			resp::error(o, "ERR syntax error");
			return;
		}
		resp::ok(o);
	} else if (ieq(sub, "no-touch") && n == 3) {
		resp::ok(o);
	} else if (ieq(sub, "help") && n == 2) {
		static constexpr const char* kHelp[] = {
			"CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"ID", "GETNAME", "SETNAME <name>", "SETINFO <LIB-NAME|LIB-VER> <value>", "INFO",
			"LIST [TYPE <type>] [ID <id> [<id> ...]]",
			"KILL <ip:port> | KILL <option> <value> [<option> <value> [...]]", "NO-EVICT (ON|OFF)",
		};
		resp::array(o, std::size(kHelp));
		for (const char* h : kHelp)
			resp::simple(o, h);
	} else {
		resp::error(o, fmt::format("ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
					   sub.substr(0, 128)));
	}
}

void KvService::cmd_reset(Ctx& x)
{
	Client& cl = x.cl;
	cl.in_multi = cl.multi_error = cl.dirty_cas = false;
	cl.queue.clear();
	unwatch_all(cl);
	unsubscribe_all(cl);
	cl.db = 0;
	cl.resp = 2;
	cl.name.clear();
	cl.no_evict = false;
	cl.authed = cfg_.requirepass.empty();
	resp::simple(x.o, "RESET");
}

}  // namespace daxnet::kv
