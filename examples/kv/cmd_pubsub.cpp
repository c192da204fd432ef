// SPDX-License-Identifier: BSD-2-Clause
//
// Publish/subscribe: SUBSCRIBE / UNSUBSCRIBE / PSUBSCRIBE / PUNSUBSCRIBE /
// PUBLISH / PUBSUB CHANNELS|NUMSUB|NUMPAT, with Redis 7.0's replies.
//
// Messages are not stored (fire and forget, as in Redis): PUBLISH appends
// the message to every subscriber's output at once and answers how many
// received it. A subscriber's output is bounded like any reply
// (--client-output-buffer-limit), checked after every message: one that
// never reads is closed, others go on.
// RESP2 clients in subscribed mode may only (un)subscribe, PING, QUIT and
// RESET (dispatch() refuses the rest); RESP3 clients get messages as push
// replies and may run any command. PUBLISH propagates to replicas.
#include <algorithm>

#include "kv.h"

namespace daxnet::kv {

namespace resp = daxnet::proto::resp;

namespace {

void push_header(OutBuf& o, std::size_t n, bool resp3)
{
	if (resp3)
		o.append(fmt::format(">{}\r\n", n));
	else
		resp::array(o, n);
}

}  // namespace

std::size_t KvService::subscriptions(const Client& cl) noexcept
{
	return cl.channels.size() + cl.patterns.size();
}

void KvService::subscribe_generic(Ctx& x, bool pattern)
{
	Client& cl = x.cl;
	auto& mine = pattern ? cl.patterns : cl.channels;
	auto& all = pattern ? patterns_ : channels_;
	for (std::size_t i = 1; i < x.argc(); ++i) {
		std::string ch(x.arg(i));
		if (mine.insert(ch).second)
			all[ch].push_back(cl.id);
		push_header(x.o, 3, x.resp3());
		resp::bulk(x.o, pattern ? "psubscribe" : "subscribe");
		resp::bulk(x.o, ch);
		resp::integer(x.o, static_cast<std::int64_t>(subscriptions(cl)));
	}
}

void KvService::drop_subscription(Client& cl, const std::string& ch, bool pattern)
{
	auto& all = pattern ? patterns_ : channels_;
	auto it = all.find(ch);
	if (it == all.end())
		return;
	std::erase(it->second, cl.id);
	if (it->second.empty())
		all.erase(it);
}

void KvService::unsubscribe_generic(Ctx& x, bool pattern)
{
	Client& cl = x.cl;
	auto& mine = pattern ? cl.patterns : cl.channels;
	const char* kind = pattern ? "punsubscribe" : "unsubscribe";
	std::vector<std::string> names;
	if (x.argc() == 1)
		names.assign(mine.begin(), mine.end());
	else
		for (std::size_t i = 1; i < x.argc(); ++i)
			names.emplace_back(x.arg(i));
	if (names.empty()) {
		push_header(x.o, 3, x.resp3());
		resp::bulk(x.o, kind);
		resp::null(x.o, x.resp3());
		resp::integer(x.o, static_cast<std::int64_t>(subscriptions(cl)));
		return;
	}
	for (const std::string& ch : names) {
		if (mine.erase(ch))
			drop_subscription(cl, ch, pattern);
		push_header(x.o, 3, x.resp3());
		resp::bulk(x.o, kind);
		resp::bulk(x.o, ch);
		resp::integer(x.o, static_cast<std::int64_t>(subscriptions(cl)));
	}
}

void KvService::unsubscribe_all(Client& cl)
{
	for (const std::string& ch : cl.channels)
		drop_subscription(cl, ch, false);
	for (const std::string& p : cl.patterns)
		drop_subscription(cl, p, true);
	cl.channels.clear();
	cl.patterns.clear();
}

void KvService::cmd_subscribe(Ctx& x)
{
	subscribe_generic(x, false);
}

void KvService::cmd_psubscribe(Ctx& x)
{
	subscribe_generic(x, true);
}

void KvService::cmd_unsubscribe(Ctx& x)
{
	unsubscribe_generic(x, false);
}

void KvService::cmd_punsubscribe(Ctx& x)
{
	unsubscribe_generic(x, true);
}

std::int64_t KvService::publish(std::string_view channel, std::string_view message)
{
	// Inside an atomic group (EXEC, a script) the message waits until the
	// group stands: a group refused whole has published nothing
	// (end_atomic()). The reply counts the receivers as of now.
	// Only messages that have a receiver are held, and their bytes are
	// bounded like a receiver's output buffer: past the bound the PUBLISH
	// is refused (-1), so a script cannot hold more than that in memory.
	if (kv_.in_batch()) {
		const std::int64_t receivers = deliver(channel, message, false);
		if (receivers == 0)
			return 0;
		const std::uint64_t held = channel.size() + message.size();
		if (pubs_bytes_ + held > held_pub_limit())
			return -1;
		pubs_.push_back({std::string(channel), std::string(message)});
		pubs_bytes_ += held;
		return receivers;
	}
	return deliver(channel, message, true);
}

std::uint64_t KvService::held_pub_limit() const noexcept
{
	const std::uint64_t hard = srv_ ? srv_->options().output_hard : 0;
	return hard ? hard : kHeldPubDefault;
}

std::int64_t KvService::deliver(std::string_view channel, std::string_view message, bool send)
{
	std::int64_t receivers = 0;
	auto deliver = [&](std::uint64_t id, const std::string* pattern) {
		auto it = clients_.find(id);
		if (it == clients_.end() || !srv_)
			return;
		Conn* c = srv_->conn(it->second->conn);
		if (!c || c->closing || c->failed)
			return;
		if (!send) {
			++receivers;
			return;
		}
		OutBuf& o = c->tx.bytes();
		const bool r3 = it->second->resp >= 3;
		push_header(o, pattern ? 4 : 3, r3);
		resp::bulk(o, pattern ? "pmessage" : "message");
		if (pattern)
			resp::bulk(o, *pattern);
		resp::bulk(o, channel);
		resp::bulk(o, message);
		++receivers;
		// the limit holds within the pass too: one PUBLISH to a client
		// with many matching patterns must not queue gigabytes
		if (!srv_->check_output_limit(*c))
			srv_->wake(*c);
	};
	if (auto it = channels_.find(std::string(channel)); it != channels_.end())
		for (std::uint64_t id : it->second)
			deliver(id, nullptr);
	for (const auto& [pat, ids] : patterns_)
		if (glob_match(pat, channel))
			for (std::uint64_t id : ids)
				deliver(id, &pat);
	return receivers;
}

void KvService::cmd_publish(Ctx& x)
{
	srv_ = &x.srv;
	const std::int64_t n = publish(x.arg(1), x.arg(2));
	if (n < 0) {
		resp::error(x.o, "ERR messages published in one transaction or script exceed the output buffer limit");
		return;
	}
	resp::integer(x.o, n);
	propagate_as(x, std::vector<std::string>(x.argv.begin(), x.argv.end()));
}

void KvService::cmd_pubsub(Ctx& x)
{
	const std::string_view sub = x.arg(1);
	if (ieq(sub, "channels") && x.argc() <= 3) {
		std::vector<std::string_view> out;
		for (const auto& [ch, ids] : channels_)
			if (x.argc() == 2 || glob_match(x.arg(2), ch))
				out.push_back(ch);
		resp::array(x.o, out.size());
		for (std::string_view ch : out)
			resp::bulk(x.o, ch);
		return;
	}
	if (ieq(sub, "numsub")) {
		resp::array(x.o, 2 * (x.argc() - 2));  // a flat array in RESP3 too, as Redis 7.0
		for (std::size_t i = 2; i < x.argc(); ++i) {
			resp::bulk(x.o, x.arg(i));
			auto it = channels_.find(std::string(x.arg(i)));
			resp::integer(x.o, it == channels_.end() ? 0 : static_cast<std::int64_t>(it->second.size()));
		}
		return;
	}
	if (ieq(sub, "numpat") && x.argc() == 2) {
		resp::integer(x.o, static_cast<std::int64_t>(patterns_.size()));
		return;
	}
	if ((ieq(sub, "shardchannels") && x.argc() <= 3) || ieq(sub, "shardnumsub")) {
		// no cluster, no shard channels
		if (ieq(sub, "shardchannels"))
			resp::array(x.o, 0);
		else {
			resp::array(x.o, 2 * (x.argc() - 2));
			for (std::size_t i = 2; i < x.argc(); ++i) {
				resp::bulk(x.o, x.arg(i));
				resp::integer(x.o, 0);
			}
		}
		return;
	}
	resp::error(x.o, fmt::format("ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
				     sub));
}

}  // namespace daxnet::kv
