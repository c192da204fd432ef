// SPDX-License-Identifier: BSD-2-Clause
//
// daxnet-kv's HTTP interface (pKVS style, on --http-port):
// GET|HEAD|PUT|POST|DELETE /kv/<key> on database 0, GET /stats (JSON) and
// GET /metrics (Prometheus text).
#include <fmt/format.h>

#include <string>

#include "kv.h"

namespace daxnet::kv {

// ---- HTTP: GET/HEAD/PUT/POST/DELETE /kv/<key> ---------------------------------

namespace {

int hexval(char ch) noexcept
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

}  // namespace

void KvService::on_http(Server& srv, Conn& c)
{
	using daxnet::proto::HttpMethod;
	const auto& rq = c.http.request();
	auto& o = c.tx.bytes();
	std::string_view target = c.view(rq.target, 0);
	const std::size_t q = target.find('?');
	std::string_view path = target.substr(0, q);
	if ((path == "/stats" || path == "/metrics") &&
	    (rq.method == HttpMethod::get || rq.method == HttpMethod::head)) {
		daxnet::svc::http_metrics(o, metrics(srv), path == "/metrics", rq.keep_alive);
		c.closing = !rq.keep_alive;
		return;
	}
	if (path.substr(0, 4) != "/kv/" || path.size() == 4) {
		http_refusal(o, {Refusal::Code::not_found, "not found: use /kv/<key>, /stats or /metrics"}, rq.keep_alive);
		c.closing = !rq.keep_alive;
		return;
	}
	// key: the rest of the path, percent-decoded
	StreamRange key_range{rq.target.off + 4, path.size() - 4};
	std::string_view raw = path.substr(4);
	bool encoded = raw.find('%') != std::string_view::npos;
	std::string_view key = raw;
	if (encoded) {
		scratch_.clear();
		for (std::size_t i = 0; i < raw.size(); ++i) {
			int h1 = 0, h2 = 0;
			if (raw[i] == '%' && i + 2 < raw.size() + 0 && (h1 = hexval(raw[i + 1])) >= 0 &&
			    (h2 = hexval(raw[i + 2])) >= 0) {
				scratch_.push_back(static_cast<char>(h1 * 16 + h2));
				i += 2;
			} else {
				scratch_.push_back(raw[i]);
			}
		}
		key = scratch_;
	}
	if (phys(0) != 0 || (key.size() >= 2 && key[0] == '\xff' && key[1] == '\xfe')) {
		// database 0 after a SWAPDB, or a key that looks like a prefixed
		// one (kv.h): stored with the prefix
		keybuf_.assign("\xff\xfe");
		keybuf_.push_back(static_cast<char>(phys(0)));
		keybuf_.append(key);
		scratch_ = keybuf_;
		key = scratch_;
		encoded = true;
	}
	if (key.size() > cfg_.max_key + 3) {
		srv.http_error(c, {Refusal::Code::too_long,
				   fmt::format("key too long ({} bytes, limit {})", key.size(), cfg_.max_key)});
		return;
	}
	const bool ka = rq.keep_alive;
	c.closing = !ka;
	switch (rq.method) {
	case HttpMethod::get:
	case HttpMethod::head: {
		ValueRef v{};
		if (kv_.get(key, v) != 1) {
			http_refusal(o, {Refusal::Code::not_found, "no such key"}, ka);
			return;
		}
		if (v.typed) {
			http_refusal(o, {Refusal::Code::bad_request, "the key holds a list or a set, not a string"}, ka);
			return;
		}
		daxnet::proto::http_head(o, 200, "application/octet-stream", v.size, ka);
		if (rq.method != HttpMethod::head)
			daxnet::svc::send_value(srv, c, o, pool_, v.slices, v.size);
		return;
	}
	case HttpMethod::put:
	case HttpMethod::post: {
		if (rq.content_length > cfg_.max_value) {
			srv.http_error(c, {Refusal::Code::too_large, fmt::format("value too large (limit {} bytes)", cfg_.max_value)});
			return;
		}
		core_.reclaim_if_short();
		if (core_.is_full()) {
			++refused_;
			http_refusal(o, pool_full_refusal(), ka);
			return;
		}
		Slice k;
		int rc = 0;
		if (encoded) {
			rc = bytes_slice(key, k);
			value_slices(c, rq.body);
		} else {
			rc = kv_slices(c, key_range, rq.body, k);
		}
		if (rc < 0) {
			http_refusal(o, pool_full_refusal(), ka);
			return;
		}
		if (const auto why = stage_set(k, 0)) {
			http_refusal(o, *why, ka);
			return;
		}
		daxnet::proto::http_response(o, 200, "text/plain", "OK\n", ka);
		return;
	}
	case HttpMethod::del: {
		if (!kv_.exists(key)) {
			http_refusal(o, {Refusal::Code::not_found, "no such key"}, ka);
			return;
		}
		Slice k;
		int rc = 0;
		if (encoded) {
			rc = bytes_slice(key, k);
		} else {
			std::uint32_t buf = 0, off = 0;
			if (daxnet::svc::single_slice(c.chain, key_range, buf, off))
				k = Slice{buf, off, static_cast<std::uint32_t>(key_range.len)};
			else
				rc = bytes_slice(key, k);
		}
		if (rc == 0)
			rc = stage_del(k);
		if (rc < 0) {
			http_refusal(o, {Refusal::Code::failed, "delete failed"}, ka);
			return;
		}
		daxnet::proto::http_response(o, 200, "text/plain", "1\n", ka);
		return;
	}
	case HttpMethod::other:
		break;
	}
	http_refusal(o, {Refusal::Code::not_allowed, "method not allowed"}, ka, "Allow: GET, HEAD, PUT, POST, DELETE\r\n");
}

}  // namespace daxnet::kv
