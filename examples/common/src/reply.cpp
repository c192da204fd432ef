// SPDX-License-Identifier: BSD-2-Clause
#include "daxnet/proto/reply.h"

#include <algorithm>
#include <charconv>

namespace daxnet::proto {

void OutBuf::put_u64(std::uint64_t v)
{
	char tmp[24];
	auto r = std::to_chars(tmp, tmp + sizeof tmp, v);
	append(tmp, static_cast<std::size_t>(r.ptr - tmp));
}

void OutBuf::put_i64(std::int64_t v)
{
	char tmp[24];
	auto r = std::to_chars(tmp, tmp + sizeof tmp, v);
	append(tmp, static_cast<std::size_t>(r.ptr - tmp));
}

namespace resp {

void simple(OutBuf& o, std::string_view s)
{
	o.put('+');
	o.append(s);
	o.append("\r\n");
}

void error(OutBuf& o, std::string_view msg)
{
	o.put('-');
	// A reply line must not contain CR or LF.
	for (char c : msg)
		o.put(c == '\r' || c == '\n' ? ' ' : c);
	o.append("\r\n");
}

void integer(OutBuf& o, std::int64_t v)
{
	o.put(':');
	o.put_i64(v);
	o.append("\r\n");
}

void bulk_header(OutBuf& o, std::uint64_t len)
{
	o.put('$');
	o.put_u64(len);
	o.append("\r\n");
}

void bulk(OutBuf& o, std::string_view s)
{
	bulk_header(o, s.size());
	o.append(s);
	o.append("\r\n");
}

void crlf(OutBuf& o)
{
	o.append("\r\n");
}

void nil(OutBuf& o)
{
	o.append("$-1\r\n");
}

void array(OutBuf& o, std::uint64_t n)
{
	o.put('*');
	o.put_u64(n);
	o.append("\r\n");
}

void ok(OutBuf& o)
{
	o.append("+OK\r\n");
}

void null(OutBuf& o, bool resp3)
{
	o.append(resp3 ? "_\r\n" : "$-1\r\n");
}

void null_array(OutBuf& o, bool resp3)
{
	o.append(resp3 ? "_\r\n" : "*-1\r\n");
}

void map(OutBuf& o, std::uint64_t n, bool resp3)
{
	o.put(resp3 ? '%' : '*');
	o.put_u64(resp3 ? n : 2 * n);
	o.append("\r\n");
}

void set(OutBuf& o, std::uint64_t n, bool resp3)
{
	o.put(resp3 ? '~' : '*');
	o.put_u64(n);
	o.append("\r\n");
}

void verbatim(OutBuf& o, std::string_view s, bool resp3)
{
	if (!resp3) {
		bulk(o, s);
		return;
	}
	o.put('=');
	o.put_u64(s.size() + 4);
	o.append("\r\ntxt:");
	o.append(s);
	o.append("\r\n");
}

void boolean(OutBuf& o, bool v, bool resp3)
{
	if (resp3)
		o.append(v ? "#t\r\n" : "#f\r\n");
	else
		o.append(v ? ":1\r\n" : ":0\r\n");
}

void dbl(OutBuf& o, double v, bool resp3)
{
	char tmp[64];
	auto r = std::to_chars(tmp, tmp + sizeof tmp, v);
	const std::string_view s(tmp, static_cast<std::size_t>(r.ptr - tmp));
	if (resp3) {
		o.put(',');
		o.append(s);
		o.append("\r\n");
	} else {
		bulk(o, s);
	}
}

namespace {

void put_clean(OutBuf& o, std::string_view s)
{
	for (char c : s.substr(0, 128))
		o.put(c == '\r' || c == '\n' ? ' ' : c);
}

}  // namespace

void unknown_command(OutBuf& o, std::string_view cmd, std::span<const std::string_view> args)
{
	o.append("-ERR unknown command '");
	put_clean(o, cmd);
	o.append("', with args beginning with: ");
	for (std::string_view a : args) {
		o.put('\'');
		put_clean(o, a);
		o.append("' ");
	}
	o.append("\r\n");
}

void wrong_arity(OutBuf& o, std::string_view cmd)
{
	o.append("-ERR wrong number of arguments for '");
	for (char c : cmd.substr(0, 128))
		o.put(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : (c == '\r' || c == '\n' ? ' ' : c));
	o.append("' command\r\n");
}

}  // namespace resp

std::string_view http_reason(int status) noexcept
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	case 507: return "Insufficient Storage";
	default: return "Unknown";
	}
}

void http_head(OutBuf& o, int status, std::string_view content_type, std::uint64_t content_length,
	       bool keep_alive, std::string_view extra_headers)
{
	o.append("HTTP/1.1 ");
	o.put_i64(status);
	o.put(' ');
	o.append(http_reason(status));
	o.append("\r\nServer: daxnet\r\n");
	if (!content_type.empty()) {
		o.append("Content-Type: ");
		o.append(content_type);
		o.append("\r\n");
	}
	o.append("Content-Length: ");
	o.put_u64(content_length);
	o.append(keep_alive ? "\r\nConnection: keep-alive\r\n" : "\r\nConnection: close\r\n");
	o.append(extra_headers);
	o.append("\r\n");
}

void http_response(OutBuf& o, int status, std::string_view content_type, std::string_view body, bool keep_alive,
		   std::string_view extra_headers)
{
	http_head(o, status, content_type, body.size(), keep_alive, extra_headers);
	o.append(body);
}

}  // namespace daxnet::proto
