// SPDX-License-Identifier: BSD-2-Clause
//
// daxnet-kv's HTTP interface (pKVS style, on --http-port):
// GET|HEAD|PUT|POST|DELETE /kv/<key> on database 0, GET /stats (JSON) and
// GET /metrics (Prometheus text).
#include <fmt/format.h>

#include <string>

#include "coll.h"
#include "kv.h"

namespace daxnet::kv {

namespace {

/// Appends `s` as a JSON string; false when it is not valid UTF-8 (JSON
/// strings hold text, not arbitrary bytes).
bool json_string(std::string& out, std::string_view s)
{
	out.push_back('"');
	for (std::size_t i = 0; i < s.size();) {
		const auto c = static_cast<unsigned char>(s[i]);
		if (c < 0x80) {
			if (c == '"' || c == '\\') {
				out.push_back('\\');
				out.push_back(static_cast<char>(c));
			} else if (c < 0x20) {
				out += fmt::format("\\u{:04x}", c);
			} else {
				out.push_back(static_cast<char>(c));
			}
			++i;
			continue;
		}
		// a UTF-8 sequence: lead byte, continuation bytes, no overlong
		// form, no surrogate, at most U+10FFFF
		const std::size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
		if (n == 0 || s.size() - i < n)
			return false;
		std::uint32_t cp = c & (n == 2 ? 0x1f : n == 3 ? 0x0f : 0x07);
		for (std::size_t k = 1; k < n; ++k) {
			const auto cc = static_cast<unsigned char>(s[i + k]);
			if ((cc & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (cc & 0x3f);
		}
		if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		out.append(s.substr(i, n));
		i += n;
	}
	out.push_back('"');
	return true;
}

}  // namespace

MaybeRefusal KvService::coll_json(const ValueRef& v, std::string& body) const
{
	std::uint8_t t = 0;
	std::vector<std::string> items;
	if (!coll::decode(value_bytes(pool_, v), t, items))
		return Refusal{Refusal::Code::failed, "malformed collection value"};
	body = fmt::format("{{\"type\":\"{}\",\"items\":[", coll::type_name(t));
	for (std::size_t i = 0; i < items.size(); ++i) {
		if (i)
			body.push_back(',');
		if (!json_string(body, items[i]))
			return Refusal{Refusal::Code::bad_request,
				       fmt::format("the {} holds an element that is not UTF-8 text, which JSON cannot carry: "
						   "read it over RESP ({})",
						   coll::type_name(t), t == coll::kList ? "LRANGE" : t == coll::kSet ? "SMEMBERS" : "HGETALL")};
	}
	body += "]}";
	return std::nullopt;
}

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
			// a list or a set: as JSON (docs/design.md §collections)
			std::string body;
			if (const auto why = coll_json(v, body)) {
				http_refusal(o, *why, ka);
				return;
			}
			daxnet::proto::http_head(o, 200, "application/json", body.size(), ka);
			if (rq.method != HttpMethod::head)
				o.append(body);
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
